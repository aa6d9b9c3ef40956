/* SPDX-License-Identifier: BSD-3-Clause */
/* A cluster app for test/cluster.sh (case messenger): node 1 sends
 * numbered messages to node 2, whose handler is slow at first so its
 * inbox fills; node 1 must see back-pressure (-EAGAIN) and node 2 every
 * message once, in order. Then errors: an unknown node, a node that has
 * exited. Prints "msgtest: ... ok" lines; exits non-zero on a failure. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_mbuf.h>

#include <ebbrt/ebbrt.h>
#include <ebbrt/messenger.h>
#include <ebbrt/nic.h>

#define SEQ_ID (EBB_ID_STATIC_END + 21)
#define WIRE_DONE_ID (EBB_ID_STATIC_END + 22)
#define WIRE_FRAMES 3000u
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

/* --- --wire: frames from node 1 to node 2 over the virtual wire, with
 * random idle gaps so that node 2's core halts and must be kicked --- */

static struct ebb_nic *wire;
static _Atomic uint64_t wire_rx;
static uint64_t wire_sent;

static void wire_rx_fn(void *arg, struct rte_mbuf **pkts, uint16_t n)
{
	(void)arg;
	atomic_fetch_add(&wire_rx, n);
	rte_pktmbuf_free_bulk(pkts, n);
}

static void wire_attach(void *arg)
{
	(void)arg;
	if (ebb_nic_attach(wire, 0, wire_rx_fn, NULL) != 0)
		report(false, "attach to the wire");
}

static void wire_check(void *arg)
{
	uint64_t end = rte_rdtsc() + rte_get_tsc_hz();
	struct ebb_core_stats st;

	(void)arg;
	while (atomic_load(&wire_rx) < wire_sent && rte_rdtsc() < end)
		rte_pause();
	ebb_core_stats(0, &st);
	printf("msgtest: node 2: %lu of %lu frames over the wire, %lu "
	       "wakes\n",
	       (unsigned long)atomic_load(&wire_rx), (unsigned long)wire_sent,
	       (unsigned long)st.wakes);
	report(atomic_load(&wire_rx) == wire_sent && st.wakes > 10,
	       "every frame over the wire reached a halting receiver");
	ebb_nic_detach(wire, 0);
	ebb_stop();
}

static void on_wire_done(void *arg, unsigned src, struct rte_mbuf *m)
{
	(void)arg;
	(void)src;
	memcpy(&wire_sent, rte_pktmbuf_mtod(m, void *), sizeof(wire_sent));
	rte_pktmbuf_free(m);
	/* The frames may still be on their way: check from an event. */
	ebb_spawn_local(wire_check, NULL);
}

static void wire_sender(void *arg)
{
	struct rte_mempool *mp = ebb_nic_pool(wire);
	uint64_t sent = 0, seed = 12345;
	struct rte_mbuf *m;

	(void)arg;
	while (ebb_cluster_node_state(2) != EBB_NODE_READY)
		rte_pause();
	rte_delay_ms(50);	/* node 2 attaches its queue */
	while (sent < WIRE_FRAMES) {
		struct rte_mbuf *b[32];
		unsigned n, k;

		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		n = 1 + (unsigned)((seed >> 33) % 32);
		n = RTE_MIN(n, WIRE_FRAMES - (unsigned)sent);
		for (k = 0; k < n; k++) {
			b[k] = rte_pktmbuf_alloc(mp);
			if (b[k] == NULL ||
			    rte_pktmbuf_append(b[k], 64) == NULL)
				break;
		}
		if (k < n) {
			rte_pktmbuf_free_bulk(b, k + (b[k] != NULL));
			report(false, "wire frame allocation");
			break;
		}
		k = 0;
		while (k < n)
			k += ebb_nic_tx(wire, 0, b + k, (uint16_t)(n - k));
		sent += n;
		/* An idle gap of 0 to 2 ms: long enough for node 2 to halt. */
		if ((seed >> 20) % 3)
			rte_delay_us((unsigned)((seed >> 40) % 2000));
	}
	m = ebb_msg_alloc();
	memcpy(rte_pktmbuf_append(m, sizeof(sent)), &sent, sizeof(sent));
	while (ebb_msg_send(2, WIRE_DONE_ID, m) == -EAGAIN)
		rte_pause();
	ebb_stop();
}

static int wire_main(void)
{
	wire = ebb_nic_node_wire();
	if (wire == NULL) {
		fprintf(stderr, "msgtest: no wire (ebbrt run --wire)\n");
		return 1;
	}
	if (ebb_node_id() == 2) {
		if (ebb_msg_register(WIRE_DONE_ID, on_wire_done, NULL) != 0)
			return 1;
		/* Halt at once when idle: the sender's kick must wake us. */
		if (ebb_start() != 0)
			return 1;
		ebb_core_set_spin(0, 1);
		ebb_spawn_remote(0, wire_attach, NULL);
	} else {
		if (ebb_start() != 0)
			return 1;
		ebb_spawn_remote(0, wire_sender, NULL);
	}
	ebb_wait();
	ebb_nic_close(wire);
	ebb_fini();
	return failed ? 1 : 0;
}

int main(int argc, char **argv)
{
	int rc = ebb_init(NULL);

	if (rc)
		return 1;
	if (!ebb_cluster_mode() || ebb_cluster_nodes() < 3) {
		fprintf(stderr, "msgtest: run me with `ebbrt run --nodes 2`\n");
		return 2;
	}
	if (argc > 1 && strcmp(argv[1], "--wire") == 0)
		return wire_main();
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
