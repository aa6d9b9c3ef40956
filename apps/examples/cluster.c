/* SPDX-License-Identifier: BSD-3-Clause */
/* ebbrt-demo: the example app of a cluster. Each node answers ARP and
 * ping on its port; node 1 then measures message round trips to node 2
 * and to the frontend and publishes a value in the GlobalIdMap, which
 * node 2 reads. Run it with `ebbrt run -- ebbrt-demo`. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ebbrt/ebbrt.h>
#include <ebbrt/gidmap.h>
#include <ebbrt/messenger.h>
#include <ebbrt/net.h>
#include <ebbrt/nic.h>

#define DEMO_GID (EBB_ID_STATIC_END + 7)
#define DEMO_PINGS 200

static struct ebb_nic *nic;
static struct ebb_slab *slab;
static struct ebb_net_if *net;
static bool exit_after_checks;
static int checks_failed;

/* Block the calling event for @ms milliseconds. */
static void timer_done(struct ebb_timer *t, void *arg)
{
	(void)t;
	ebb_future_fulfil(arg, 0);
}

static void sleep_ms(unsigned ms)
{
	struct ebb_future *f = ebb_future_create();
	struct ebb_timer t;

	ebb_timer_init(&t, timer_done, f);
	ebb_timer_start(&t, (uint64_t)ms * 1000000u, 0);
	ebb_future_wait(f, NULL);
	ebb_future_destroy(f);
}

static void check(bool ok, const char *what)
{
	printf("demo: node %u: %s %s\n", ebb_node_id(), what,
	       ok ? "ok" : "FAILED");
	fflush(stdout);
	if (!ok)
		checks_failed++;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* @DEMO_PINGS message round trips to @node; false if one failed. */
static bool ping_node(unsigned node)
{
	static uint64_t rtt[DEMO_PINGS];
	double hz = (double)ebb_tsc_hz() / 1e6;

	for (unsigned i = 0; i < DEMO_PINGS; i++) {
		struct ebb_future *f = ebb_msg_ping(node);
		intptr_t v = -1;

		if (f == NULL || ebb_future_wait(f, &v) != 0 || v < 0) {
			printf("demo: node %u: ping %u to node %u: %s\n",
			       ebb_node_id(), i, node,
			       strerror(v < 0 ? (int)-v : ENOMEM));
			ebb_future_destroy(f);
			return false;
		}
		ebb_future_destroy(f);
		rtt[i] = (uint64_t)v;
	}
	qsort(rtt, DEMO_PINGS, sizeof(rtt[0]), cmp_u64);
	printf("demo: node %u: message round trip to node %u: p50 %.1f us, "
	       "p99 %.1f us (%d pings)\n",
	       ebb_node_id(), node, (double)rtt[DEMO_PINGS / 2] / hz,
	       (double)rtt[DEMO_PINGS * 99 / 100] / hz, DEMO_PINGS);
	return true;
}

static bool all_ready(void)
{
	for (unsigned n = 1; n < ebb_cluster_nodes(); n++)
		if (ebb_cluster_node_state(n) != EBB_NODE_READY)
			return false;
	return true;
}

/* Node 1 talks to node 2 and the frontend; node 2 reads what node 1
 * published. A blocking event on core 0. */
static void checks(void *arg)
{
	char want[64], got[EBB_GID_VALUE_MAX];
	unsigned me = ebb_node_id();

	(void)arg;
	for (unsigned i = 0; i < 1000 && !all_ready(); i++)
		sleep_ms(10);
	snprintf(want, sizeof(want), "hello from node 1");
	if (me == 1) {
		struct ebb_future *f;
		intptr_t v = -1;

		if (ebb_cluster_nodes() > 2)
			check(ping_node(2), "message ping-pong with node 2");
		check(ping_node(0), "message ping-pong with the frontend");
		f = ebb_gid_set(DEMO_GID, want, strlen(want) + 1);
		check(f && ebb_future_wait(f, &v) == 0 && v == 0,
		      "GlobalIdMap set");
		ebb_future_destroy(f);
	} else if (me == 2) {
		bool seen = false;

		check(ping_node(1), "message ping-pong with node 1");
		for (unsigned i = 0; i < 500 && !seen; i++) {
			struct ebb_future *f =
				ebb_gid_get(DEMO_GID, got, sizeof(got));
			intptr_t v = -1;

			ebb_future_ready(f, &v);
			ebb_future_destroy(f);
			seen = v > 0 && strcmp(got, want) == 0;
			if (!seen)
				sleep_ms(10);
		}
		check(seen, "GlobalIdMap get of node 1's value");
	}
	if (exit_after_checks) {
		/* Let the peers finish their pings to us. */
		sleep_ms(500);
		ebb_stop();
	}
}

static void attach_queue(void *arg)
{
	unsigned core = ebb_core_id();
	int rc = ebb_net_if_attach(net, core);

	(void)arg;
	if (rc)
		fprintf(stderr, "demo: core %u cannot attach its queue: %s\n",
			core, strerror(-rc));
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "exit-after-checks", no_argument, NULL, 'x' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ebb_net_config nc = { 0 };
	int c, rc;

	while ((c = getopt_long(argc, argv, "xh", lo, NULL)) != -1) {
		if (c == 'x') {
			exit_after_checks = true;
		} else {
			printf("usage: ebbrt run [options] -- %s "
			       "[--exit-after-checks]\n"
			       "Each node answers ping on its port; nodes 1 "
			       "and 2 exchange messages and a GlobalIdMap "
			       "value.\n",
			       argv[0]);
			return c == 'h' ? 0 : 2;
		}
	}
	rc = ebb_init(NULL);
	if (rc)
		return 1;
	if (!ebb_cluster_mode()) {
		fprintf(stderr, "demo: start me with `ebbrt run -- %s`\n",
			argv[0]);
		ebb_fini();
		return 2;
	}
	/* A slab pool of the node's own, in the shared heap: its name is
	 * per node, and the frontend frees it if the node dies (so a
	 * restarted node makes it again). */
	slab = ebb_slab_create("demo", 64, 1024);
	if (slab == NULL) {
		fprintf(stderr, "demo: slab: %s\n", strerror(errno));
		return 1;
	}
	nic = ebb_nic_node_port();
	nc.ip = ebb_cluster_node_ip(ebb_node_id());
	nc.netmask = ebb_cluster_node_netmask(ebb_node_id());
	nc.gateway = ebb_cluster_node_gateway(ebb_node_id());
	if (nic != NULL && nc.ip != 0)
		net = ebb_net_if_open(nic, &nc);
	rc = ebb_start();
	if (rc)
		return 1;
	for (unsigned i = 0; net != NULL && i < ebb_core_count(); i++)
		ebb_spawn_remote(i, attach_queue, NULL);
	ebb_spawn_remote(0, checks, NULL);
	ebb_wait();
	ebb_net_if_close(net);
	ebb_nic_close(nic);
	ebb_slab_destroy(slab);
	ebb_fini();
	return checks_failed ? 1 : 0;
}
