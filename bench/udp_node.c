/* SPDX-License-Identifier: BSD-3-Clause */
/* ebbrt-bench-udp-node: the ebbrt side of the UDP echo comparison, one
 * binary for both nodes of `ebbrt run --nodes 2 --wire`: node 2 is the
 * echo server (apps/echo's logic), node 1 the load generator (the same
 * loadgen core as the Linux side) over the virtual wire, kernel bypass at
 * both ends. Node 1 prints one RESULT line per test, then stops the
 * cluster. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_mbuf.h>

#include <ebbrt/ebbrt.h>
#include <ebbrt/net.h>
#include <ebbrt/nic.h>

#include "echo_server.h"
#include "loadgen.h"

#define ECHO_PORT 7
#define MAX_TESTS 32
#define MAX_FLOWS 256

struct test {
	enum loadgen_mode mode;
	uint32_t flows, window;
	double rate;
};

static struct test tests[MAX_TESTS];
static unsigned ntests, cur;
static uint64_t duration_ms = 3000, warmup_ms = 500;
static uint32_t payload = 64;

static struct ebb_nic *wire;
static struct ebb_net_if *nif;
static struct ebb_udp_sock *sock[MAX_FLOWS];
static uint32_t server_ip;
static struct loadgen *lg;
static int idle_handle = -1;
static bool failed;

/* --- the transport: one UDP socket (source port) per flow --- */

static int t_send(void *ctx, uint32_t flow, const void *buf, size_t len)
{
	(void)ctx;
	return ebb_udp_send_buf(sock[flow], server_ip, ECHO_PORT, buf, len);
}

static uint64_t t_now(void *ctx)
{
	(void)ctx;
	return ebb_time_ns();
}

static const struct loadgen_transport transport = {
	.send = t_send,
	.now_ns = t_now,
};

static void on_reply(void *arg, struct ebb_udp_sock *s, struct rte_mbuf *m,
		     uint32_t src_ip, uint16_t src_port)
{
	(void)s;
	(void)src_ip;
	(void)src_port;
	if (lg != NULL)
		loadgen_on_reply(lg, (uint32_t)(uintptr_t)arg,
				 rte_pktmbuf_mtod(m, void *),
				 rte_pktmbuf_data_len(m));
	rte_pktmbuf_free(m);
}

static void print_result(const struct test *t)
{
	struct loadgen_result r;

	loadgen_result(lg, &r);
	printf("RESULT mode=%s flows=%u window=%u offered=%.0f achieved=%.0f "
	       "sent=%lu replied=%lu lost=%lu p50_ns=%.0f p99_ns=%.0f "
	       "p999_ns=%.0f mean_ns=%.0f max_ns=%.0f\n",
	       t->mode == LOADGEN_OPEN ? "open" : "closed", t->flows,
	       t->window, r.offered_rps, r.achieved_rps,
	       (unsigned long)r.sent, (unsigned long)r.replied,
	       (unsigned long)r.lost, r.p50_ns, r.p99_ns, r.p999_ns,
	       r.mean_ns, r.max_ns);
	fflush(stdout);
}

static bool start_test(void)
{
	struct loadgen_config cfg;
	const struct test *t = &tests[cur];

	loadgen_config_default(&cfg);
	cfg.mode = t->mode;
	cfg.flows = t->flows;
	cfg.window = t->window;
	cfg.rate = t->rate;
	cfg.payload = payload;
	cfg.warmup_ns = warmup_ms * 1000000u;
	cfg.duration_ns = duration_ms * 1000000u;
	lg = loadgen_create(&cfg, &transport, NULL);
	if (lg == NULL) {
		printf("ERROR loadgen: %s\n", strerror(errno));
		return false;
	}
	loadgen_start(lg);
	return true;
}

/* Every loop iteration of core 0 on node 1: the generator's clock. */
static bool drive(void *arg)
{
	(void)arg;
	if (lg == NULL || !loadgen_step(lg))
		return true;	/* keep polling: never halt mid-test */
	print_result(&tests[cur]);
	loadgen_destroy(lg);
	lg = NULL;
	if (++cur < ntests && start_test())
		return true;
	ebb_idle_remove(idle_handle);
	ebb_cluster_stop();
	return false;
}

static void attach(void *arg)
{
	int rc = ebb_net_if_attach(nif, ebb_core_id());

	(void)arg;
	if (rc) {
		printf("ERROR attach: %s\n", strerror(-rc));
		failed = true;
	}
}

static struct ebb_timer start_timer;
static unsigned start_tries;

/* Node 1, every 10 ms until node 2 serves: then a first datagram makes
 * the stack resolve node 2's MAC over the wire, and 100 ms later (the
 * loop meanwhile handles the ARP reply) the tests begin. */
static void begin(struct ebb_timer *t, void *arg)
{
	int rc;

	(void)arg;
	if (start_tries++ < 500 &&
	    ebb_cluster_node_state(2) != EBB_NODE_READY) {
		ebb_timer_start(t, 10000000u, 0);
		return;
	}
	if (start_tries < 1000) {
		rc = ebb_udp_send_buf(sock[0], server_ip, 9, "x", 1);
		if (rc)
			printf("note: first datagram: %s\n", strerror(-rc));
		start_tries = 1000;
		ebb_timer_start(t, 100000000u, 0);
		return;
	}
	if (!start_test()) {
		ebb_cluster_stop();
		return;
	}
	idle_handle = ebb_idle_add(drive, NULL);
}

static void generator(void *arg)
{
	(void)arg;
	attach(NULL);
	ebb_timer_init(&start_timer, begin, NULL);
	ebb_timer_start(&start_timer, 0, 0);
}

static bool parse_test(const char *s)
{
	struct test *t = &tests[ntests];
	char *end;

	if (ntests == MAX_TESTS)
		return false;
	if (strncmp(s, "closed:", 7) == 0) {
		t->mode = LOADGEN_CLOSED;
		t->flows = (uint32_t)strtoul(s + 7, &end, 10);
		t->window = *end == ':' ? (uint32_t)strtoul(end + 1, &end, 10) :
					  1;
		if (*end || t->flows == 0 || t->flows > MAX_FLOWS ||
		    t->window == 0)
			return false;
	} else if (strncmp(s, "open:", 5) == 0) {
		t->mode = LOADGEN_OPEN;
		t->rate = strtod(s + 5, &end);
		t->flows = 32;
		t->window = 1;
		if (*end || !(t->rate > 0))
			return false;
	} else {
		return false;
	}
	ntests++;
	return true;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "test", required_argument, NULL, 't' },
		{ "duration-ms", required_argument, NULL, 'd' },
		{ "warmup-ms", required_argument, NULL, 'w' },
		{ "payload", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ebb_net_config nc = { .netmask = 0xffffff00u };
	uint32_t maxflows = 1;
	int c;

	while ((c = getopt_long(argc, argv, "t:d:w:p:h", lo, NULL)) != -1) {
		switch (c) {
		case 't':
			if (!parse_test(optarg)) {
				fprintf(stderr, "bad --test %s\n", optarg);
				return 2;
			}
			break;
		case 'd':
			duration_ms = strtoull(optarg, NULL, 10);
			break;
		case 'w':
			warmup_ms = strtoull(optarg, NULL, 10);
			break;
		case 'p':
			payload = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		default:
			printf("usage: ebbrt run --nodes 2 --wire -- %s "
			       "--test closed:FLOWS:WINDOW|open:RATE ... "
			       "[--duration-ms N] [--warmup-ms N] "
			       "[--payload B]\n",
			       argv[0]);
			return c == 'h' ? 0 : 2;
		}
	}
	if (ntests == 0 && !parse_test("closed:1:1"))
		return 2;
	if (ebb_init(NULL) != 0)
		return 1;
	wire = ebb_nic_node_wire();
	if (!ebb_cluster_mode() || wire == NULL) {
		fprintf(stderr, "run me with `ebbrt run --nodes 2 --wire`\n");
		return 2;
	}
	nc.ip = ebb_cluster_node_wire_ip(ebb_node_id());
	nif = ebb_net_if_open(wire, &nc);
	if (nif == NULL) {
		printf("ERROR net_if: %s\n", strerror(errno));
		return 1;
	}
	server_ip = ebb_cluster_node_wire_ip(2);
	if (ebb_node_id() == 2) {
		if (echo_server_start(nif, ECHO_PORT) != 0)
			return 1;
	} else {
		for (unsigned i = 0; i < ntests; i++)
			maxflows = RTE_MAX(maxflows, tests[i].flows);
		for (uint32_t f = 0; f < maxflows; f++) {
			sock[f] = ebb_udp_bind(nif, 0, on_reply,
					       (void *)(uintptr_t)f);
			if (sock[f] == NULL) {
				printf("ERROR bind: %s\n", strerror(errno));
				return 1;
			}
		}
	}
	if (ebb_start() != 0)
		return 1;
	if (ebb_node_id() == 2) {
		/* The server polls, as a kernel-bypass server does under
		 * load: a halt and a wake-up (tens of microseconds on this
		 * VM) between two requests would be measured instead of the
		 * stack. srv% in the table shows the cost. */
		for (unsigned i = 0; i < ebb_core_count(); i++) {
			ebb_core_set_spin(i, UINT32_MAX / 2);
			ebb_spawn_remote(i, attach, NULL);
		}
	} else {
		ebb_spawn_remote(0, generator, NULL);
	}
	ebb_wait();
	if (ebb_node_id() == 2) {
		struct echo_stats st;

		echo_server_stats(&st);
		printf("SERVER echoed=%lu refused=%lu\n",
		       (unsigned long)st.echoed, (unsigned long)st.refused);
	}
	for (uint32_t f = 0; f < maxflows; f++)
		ebb_udp_close(sock[f]);
	ebb_net_if_close(nif);
	ebb_nic_close(wire);
	ebb_fini();
	return failed ? 1 : 0;
}
