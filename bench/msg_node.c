/* SPDX-License-Identifier: BSD-3-Clause */
/* Node side of the message round-trip benchmark: node 1 pings node 2
 * through the Messenger, first with both cores polling, then with node 2
 * halted between pings, and prints one RESULT line per mode. Started by
 * ebbrt-bench-msg as `ebbrt run --nodes 2 -- ebbrt-bench-msg-node`. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_mbuf.h>

#include <ebbrt/ebbrt.h>
#include <ebbrt/messenger.h>

#include "common.h"

/* The benchmark's own control messages, node 1 <-> node 2. */
#define CTL_ID (EBB_ID_STATIC_END + 11)

/* Idle iterations before a halt: never, or at the first idle one. */
#define SPIN_POLL (UINT32_MAX >> 1)
#define SPIN_HALT 1u

/* Longest wait for node 2 to answer a control message or come up. */
#define CTL_TIMEOUT_NS 5000000000ull
#define READY_TIMEOUT_MS 10000u
#define PING_TIMEOUT_NS 2000000000ull

static struct {
	uint64_t count;
	uint64_t gap_ns;
} opt = { .count = 20000, .gap_ns = 200000 };

static int exit_code;

/* --- control: node 1 sets node 2's spin, node 2 acks with its counters */

enum { CTL_SET_SPIN = 1, CTL_ACK };

struct ctl_msg {
	uint32_t op;
	uint32_t spin;		/* CTL_SET_SPIN: idle iterations */
	uint64_t seq;		/* echoed by the ack */
	uint64_t halts;		/* CTL_ACK: node 2 core 0, cumulative */
	uint64_t wakes;
};

/* Node 1's pending request. Only core 0 of node 1 touches it: the
 * waiting event, the ack handler (node 2's core 0 sends to our core 0)
 * and the timeout timer all run there. */
static struct {
	struct ebb_future *f;
	uint64_t seq;
	struct ctl_msg reply;
} ctl;

static void ctl_receive(void *arg, unsigned src, struct rte_mbuf *m)
{
	struct ctl_msg *c = rte_pktmbuf_mtod(m, struct ctl_msg *);
	struct ebb_core_stats st;

	(void)arg;
	if (rte_pktmbuf_data_len(m) < sizeof(*c))
		goto drop;
	if (c->op == CTL_SET_SPIN) {
		for (unsigned i = 0; i < ebb_core_count(); i++)
			ebb_core_set_spin(i, c->spin);
		memset(&st, 0, sizeof(st));
		ebb_core_stats(0, &st);
		c->op = CTL_ACK;
		c->halts = st.halts;
		c->wakes = st.wakes;
		/* Answer in the same buffer; on an error node 1 times out. */
		if (ebb_msg_send(src, CTL_ID, m) == 0)
			return;
	} else if (c->op == CTL_ACK && ctl.f != NULL && c->seq == ctl.seq) {
		ctl.reply = *c;
		ebb_future_fulfil(ctl.f, 0);
	}
drop:
	rte_pktmbuf_free(m);
}

static void fulfil_timeout(struct ebb_timer *t, void *arg)
{
	(void)t;
	ebb_future_fulfil(arg, -ETIMEDOUT);
}

/* Set node 2's spin to @spin and wait for its ack; @out gets its
 * counters. 0, or -ETIMEDOUT or -errno of the send (an ERROR line says
 * so). Node 1, core 0. */
static int peer_set_spin(unsigned spin, struct ctl_msg *out)
{
	struct rte_mbuf *m = ebb_msg_alloc();
	struct ctl_msg *c;
	struct ebb_timer t;
	intptr_t v = -EIO;
	int rc;

	if (m == NULL) {
		printf("ERROR control message: %s\n", strerror(errno));
		return -ENOMEM;
	}
	c = (struct ctl_msg *)rte_pktmbuf_append(m, sizeof(*c));
	ctl.f = ebb_future_create();
	if (c == NULL || ctl.f == NULL) {
		rte_pktmbuf_free(m);
		ebb_future_destroy(ctl.f);
		ctl.f = NULL;
		printf("ERROR control message: out of memory\n");
		return -ENOMEM;
	}
	*c = (struct ctl_msg){ .op = CTL_SET_SPIN, .spin = spin,
			       .seq = ++ctl.seq };
	while ((rc = ebb_msg_send(2, CTL_ID, m)) == -EAGAIN)
		;
	if (rc) {
		rte_pktmbuf_free(m);
		ebb_future_destroy(ctl.f);
		ctl.f = NULL;
		printf("ERROR control message to node 2: %s\n", strerror(-rc));
		return rc;
	}
	ebb_timer_init(&t, fulfil_timeout, ctl.f);
	ebb_timer_start(&t, CTL_TIMEOUT_NS, 0);
	rc = ebb_future_wait(ctl.f, &v);
	ebb_timer_cancel(&t);
	ebb_future_destroy(ctl.f);
	ctl.f = NULL;
	if (rc == 0)
		rc = (int)v;
	if (rc == 0 && out != NULL)
		*out = ctl.reply;
	if (rc)
		printf("ERROR control message to node 2: %s\n",
		       rc == -ETIMEDOUT ? "no answer" : strerror(-rc));
	return rc;
}

/* --- node 1: the measurement --- */

static void timer_done(struct ebb_timer *t, void *arg)
{
	(void)t;
	ebb_future_fulfil(arg, 0);
}

/* Block the calling event for @ns; the core polls meanwhile. */
static int sleep_ns(uint64_t ns)
{
	struct ebb_future *f = ebb_future_create();
	struct ebb_timer t;
	int rc;

	if (f == NULL)
		return -ENOMEM;
	ebb_timer_init(&t, timer_done, f);
	rc = ebb_timer_start(&t, ns, 0);
	if (rc == 0)
		rc = ebb_future_wait(f, NULL);
	ebb_future_destroy(f);
	return rc;
}

/* One Messenger round trip to node 2, in TSC cycles, or -errno. A reply
 * that never comes (node 2 died) times out; the Messenger may still
 * fulfil that future, so on a failed wait it is left allocated (the run
 * ends there anyway). */
static int64_t ping_once(void)
{
	struct ebb_future *f = ebb_msg_ping(2);
	struct ebb_timer t;
	intptr_t v = -ENOMEM;
	int rc;

	if (f == NULL)
		return -ENOMEM;
	/* Armed while the ping is in flight; it is not in the figure,
	 * which the Messenger takes from send to reply. */
	ebb_timer_init(&t, fulfil_timeout, f);
	ebb_timer_start(&t, PING_TIMEOUT_NS, 0);
	rc = ebb_future_wait(f, &v);
	ebb_timer_cancel(&t);
	if (rc)
		return rc;		/* the reply may still come: f stays */
	if (v == -ETIMEDOUT)
		return -ETIMEDOUT;
	ebb_future_destroy(f);
	return (int64_t)v;
}

struct rtt_stats {
	double p50, p99, mean, min, max;	/* ns */
	uint64_t n;
};

/* @warm unrecorded pings, then @n recorded ones into @rtt, each after a
 * pause of @gap_ns (0: back to back); @st gets the figures. 0 or -errno
 * (an ERROR line says why). */
static int measure(const char *mode, uint64_t warm, uint64_t n,
		   uint64_t gap_ns, uint64_t *rtt, struct rtt_stats *st)
{
	double ns_per_cycle = 1e9 / (double)ebb_tsc_hz();
	double sum = 0;
	int rc;

	for (uint64_t i = 0; i < warm + n; i++) {
		int64_t c;

		if (gap_ns) {
			rc = sleep_ns(gap_ns);
			if (rc) {
				printf("ERROR %s: timer: %s\n", mode,
				       strerror(-rc));
				return rc;
			}
		}
		c = ping_once();
		if (c < 0) {
			printf("ERROR %s: ping %" PRIu64 " to node 2: %s\n",
			       mode, i, strerror((int)-c));
			return (int)c;
		}
		if (i >= warm)
			rtt[i - warm] = (uint64_t)c;
	}
	if (n == 0)
		return 0;	/* a warm-up */
	for (uint64_t i = 0; i < n; i++)
		sum += (double)rtt[i];
	qsort(rtt, n, sizeof(rtt[0]), bench_cmp_u64);
	st->p50 = (double)bench_pct_u64(rtt, n, 0.50) * ns_per_cycle;
	st->p99 = (double)bench_pct_u64(rtt, n, 0.99) * ns_per_cycle;
	st->mean = sum / (double)n * ns_per_cycle;
	st->min = (double)rtt[0] * ns_per_cycle;
	st->max = (double)rtt[n - 1] * ns_per_cycle;
	st->n = n;
	return 0;
}

/* One machine-readable line per mode: ebbrt-bench-msg parses it. */
static void print_result(const char *mode, const struct rtt_stats *st,
			 const char *extra)
{
	printf("RESULT %s p50_ns=%.0f p99_ns=%.0f mean_ns=%.0f min_ns=%.0f "
	       "max_ns=%.0f n=%" PRIu64 "%s%s\n",
	       mode, st->p50, st->p99, st->mean, st->min, st->max, st->n,
	       extra[0] ? " " : "", extra);
	fflush(stdout);
}

static bool peer_ready(void)
{
	return ebb_cluster_node_state(2) == EBB_NODE_READY;
}

static int run_all(void)
{
	uint64_t n = opt.count, warm = n / 10 < 100 ? 100 : n / 10;
	uint64_t *rtt = malloc(n * sizeof(*rtt));
	struct rtt_stats st;
	struct ctl_msg a, b;
	char extra[128];
	int rc;

	if (rtt == NULL) {
		printf("ERROR out of memory for %" PRIu64 " samples\n", n);
		goto fail;
	}
	for (unsigned i = 0; i < READY_TIMEOUT_MS && !peer_ready(); i++)
		sleep_ns(1000000);
	if (!peer_ready()) {
		printf("ERROR node 2 is not ready (%s)\n",
		       ebb_node_state_name(ebb_cluster_node_state(2)));
		goto fail;
	}

	/* (a) polled: both cores spin. Node 2 set its own spin at start;
	 * the ack says it did and that its handler works. Its counters
	 * bracket the pings: it should never halt. */
	rc = peer_set_spin(SPIN_POLL, &a);
	if (rc == 0)
		rc = measure("polled", warm, n, 0, rtt, &st);
	if (rc == 0)
		rc = peer_set_spin(SPIN_HALT, &b);
	if (rc)
		goto fail;
	snprintf(extra, sizeof(extra),
		 "peer_wakes=%" PRIu64 " peer_halts=%" PRIu64
		 " peer_msgs=%" PRIu64,
		 b.wakes - a.wakes, b.halts - a.halts, warm + n + 1);
	print_result("polled", &st, extra);

	/* (b) from halt: node 2 halts at its first idle iteration, and the
	 * gap gives it time to get there before each ping; we keep polling.
	 * Its counters bracket the recorded pings: the closing control
	 * message wakes it once more. */
	if (rc == 0)
		rc = measure("halt", warm / 10 + 10, 0, opt.gap_ns, rtt, &st);
	if (rc == 0)
		rc = peer_set_spin(SPIN_HALT, &a);
	if (rc == 0)
		rc = measure("halt", 0, n, opt.gap_ns, rtt, &st);
	if (rc == 0)
		rc = peer_set_spin(SPIN_POLL, &b);
	if (rc)
		goto fail;
	snprintf(extra, sizeof(extra),
		 "gap_ns=%" PRIu64 " peer_wakes=%" PRIu64 " peer_halts=%" PRIu64
		 " peer_msgs=%" PRIu64,
		 opt.gap_ns, b.wakes - a.wakes, b.halts - a.halts, n + 1);
	print_result("halt", &st, extra);
	free(rtt);
	return 0;
fail:
	fflush(stdout);
	free(rtt);
	return -1;
}

static void bench_main(void *arg)
{
	int rc;

	(void)arg;
	exit_code = run_all() ? 1 : 0;
	/* Stops node 2 and the frontend too; `ebbrt run` then exits 0. */
	rc = ebb_cluster_stop();
	if (rc) {
		fprintf(stderr, "msg-node: ebb_cluster_stop: %s\n",
			strerror(-rc));
		exit_code = 1;
		ebb_stop();
	}
}

/* --- main --- */

static void usage(FILE *to, const char *argv0)
{
	fprintf(to,
		"usage: ebbrt run --nodes 2 -- %s [--count N] [--gap-us N]\n"
		"Node 1 measures Messenger round trips to node 2: polled, then "
		"with node 2\nhalted between pings; prints one RESULT line per "
		"mode and stops the cluster.\n"
		"  --count N    round trips per mode (default 20000)\n"
		"  --gap-us N   pause between pings from halt (default 200)\n"
		"Run by ebbrt-bench-msg; see docs/bench.md.\n",
		argv0);
}

static bool parse_u64(const char *s, uint64_t lo, uint64_t hi,
		      uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (end == s || *end != '\0' || errno || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

static int parse_args(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "count", required_argument, NULL, 'n' },
		{ "gap-us", required_argument, NULL, 'g' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t us;
	int c;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'n':
			if (!parse_u64(optarg, 10, 100000000, &opt.count))
				goto bad;
			break;
		case 'g':
			if (!parse_u64(optarg, 1, 1000000, &us))
				goto bad;
			opt.gap_ns = us * 1000;
			break;
		case 'h':
			usage(stdout, argv[0]);
			exit(0);
		default:
			goto bad;
		}
	}
	if (optind == argc)
		return 0;
bad:
	usage(stderr, argv[0]);
	return 2;
}

int main(int argc, char **argv)
{
	int rc = parse_args(argc, argv);

	if (rc)
		return rc;
	rc = ebb_init(NULL);
	if (rc) {
		fprintf(stderr, "msg-node: ebb_init: %s\n", strerror(-rc));
		return 1;
	}
	if (!ebb_cluster_mode() || ebb_cluster_nodes() < 3) {
		fprintf(stderr, "msg-node: start me with `ebbrt run --nodes 2 "
				"-- %s`\n",
			argv[0]);
		ebb_fini();
		return 2;
	}
	rc = ebb_msg_register(CTL_ID, ctl_receive, NULL);
	if (rc == 0)
		rc = ebb_start();
	if (rc) {
		fprintf(stderr, "msg-node: set-up: %s\n", strerror(-rc));
		ebb_fini();
		return 1;
	}
	for (unsigned i = 0; i < ebb_core_count(); i++)
		ebb_core_set_spin(i, SPIN_POLL);
	if (ebb_node_id() == 1) {
		rc = ebb_spawn_remote(0, bench_main, NULL);
		if (rc) {
			fprintf(stderr, "msg-node: ebb_spawn_remote: %s\n",
				strerror(-rc));
			exit_code = 1;
			ebb_cluster_stop();
		}
	}
	ebb_wait();
	ebb_fini();
	return exit_code;
}
