/* SPDX-License-Identifier: BSD-3-Clause */
/* A cluster app for test/cluster.sh (case messenger): node 1 sends
 * numbered messages to node 2, whose handler is slow at first so its
 * inbox fills; node 1 must see back-pressure (-EAGAIN) and node 2 every
 * message once, in order. Then errors: an unknown node, a node that has
 * exited. Prints "msgtest: ... ok" lines; exits non-zero on a failure. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_mbuf.h>

#include <ebbrt/ebbrt.h>
#include <ebbrt/messenger.h>

#define SEQ_ID (EBB_ID_STATIC_END + 21)
#define COUNT 20000u

static unsigned expected;
static unsigned out_of_order;
static int failed;

static void report(bool ok, const char *what)
{
	printf("msgtest: node %u: %s %s\n", ebb_node_id(), what,
	       ok ? "ok" : "FAILED");
	fflush(stdout);
	failed += !ok;
}

static void on_seq(void *arg, unsigned src, struct rte_mbuf *m)
{
	uint32_t seq;

	(void)arg;
	(void)src;
	memcpy(&seq, rte_pktmbuf_mtod(m, void *), sizeof(seq));
	rte_pktmbuf_free(m);
	if (seq == 0) {
		/* Slow at first: the sender fills our inbox meanwhile. */
		uint64_t end = rte_rdtsc() + rte_get_tsc_hz() / 10;

		while (rte_rdtsc() < end)
			;
	}
	if (seq != expected)
		out_of_order++;
	expected = seq + 1;
	if (expected == COUNT) {
		report(out_of_order == 0, "20000 messages in order, none lost");
		ebb_stop();
	}
}

static void sender(void *arg)
{
	unsigned again = 0;
	struct rte_mbuf *m;
	int rc;

	(void)arg;
	while (ebb_cluster_node_state(2) != EBB_NODE_READY)
		rte_pause();
	for (uint32_t seq = 0; seq < COUNT; seq++) {
		m = ebb_msg_alloc();
		if (m == NULL) {
			report(false, "message allocation");
			ebb_stop();
			return;
		}
		memcpy(rte_pktmbuf_append(m, sizeof(seq)), &seq, sizeof(seq));
		while ((rc = ebb_msg_send(2, SEQ_ID, m)) == -EAGAIN)
			again++;
		if (rc) {
			printf("msgtest: send %u: %s\n", seq, strerror(-rc));
			rte_pktmbuf_free(m);
			failed++;
			break;
		}
	}
	printf("msgtest: node 1: %u sends met a full inbox\n", again);
	report(again > 0, "back-pressure on a full inbox");
	m = ebb_msg_alloc();
	rc = ebb_msg_send(99, SEQ_ID, m);
	report(rc == -ENODEV, "send to an unknown node fails with ENODEV");
	/* Node 2 exits once it has everything. */
	for (unsigned i = 0; i < 5000 &&
	     ebb_cluster_node_state(2) == EBB_NODE_READY; i++)
		rte_delay_ms(1);
	rc = ebb_msg_send(2, SEQ_ID, m);
	report(rc == -EHOSTDOWN, "send to an exited node fails with EHOSTDOWN");
	rte_pktmbuf_free(m);
	ebb_stop();
}

int main(void)
{
	int rc = ebb_init(NULL);

	if (rc)
		return 1;
	if (!ebb_cluster_mode() || ebb_cluster_nodes() < 3) {
		fprintf(stderr, "msgtest: run me with `ebbrt run --nodes 2`\n");
		return 2;
	}
	if (ebb_node_id() == 2 &&
	    ebb_msg_register(SEQ_ID, on_seq, NULL) != 0)
		return 1;
	if (ebb_start() != 0)
		return 1;
	if (ebb_node_id() == 1)
		ebb_spawn_remote(0, sender, NULL);
	ebb_wait();
	ebb_fini();
	return failed ? 1 : 0;
}
