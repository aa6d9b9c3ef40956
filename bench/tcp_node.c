/* SPDX-License-Identifier: BSD-3-Clause */
/* ebbrt-bench-tcp-node: the ebbrt side of ebbrt-bench-tcp, one binary for
 * both nodes of `ebbrt run --nodes 2 --wire`: node 2 is a 64-byte echo
 * server and a stream sink on the ebbrt TCP stack, node 1 the client
 * over the virtual wire (the same loadgen core as the Linux client, and
 * the stream's sender). Node 1 prints one RESULT line per test, then
 * stops the cluster. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rte_mbuf.h>

#include <ebbrt/ebbrt.h>
#include <ebbrt/messenger.h>
#include <ebbrt/net.h>
#include <ebbrt/nic.h>
#include <ebbrt/tcp.h>

#include "loadgen.h"

#define ECHO_PORT 7
#define SINK_PORT 9
#define MAX_TESTS 8
#define MAX_CONNS 256
#define MSG_MAX 1024u		/* largest request (and reply) */
#define CHUNK_MAX (1u << 20)	/* largest stream write */
/* The sink's count of a stream goes to node 1 by the Messenger: node 1
 * has closed its end by then, so the connection cannot carry it. */
#define SINK_MSG_ID (EBB_ID_STATIC_END + 21)
#define START_TRIES 500		/* 10 ms apart: node 2 serves within 5 s */

enum test_kind { T_RR, T_STREAM };

struct test {
	enum test_kind kind;
	uint32_t conns;		/* rr */
};

static struct test tests[MAX_TESTS];
static unsigned ntests, cur;
static struct {
	uint64_t duration_ms, warmup_ms, timeout_ms;
	uint32_t msg;		/* rr: request and reply bytes */
	uint32_t chunk;		/* stream: bytes per write */
	bool send_mbufs;	/* stream: ebb_tcp_send() of filled mbufs */
	struct ebb_tcp_config tcp;
} opt = { .duration_ms = 3000, .warmup_ms = 500, .timeout_ms = 1000,
	  .msg = 64, .chunk = 64u << 10 };

static pid_t core_tid;		/* core 0's thread: its schedstat */
static struct ebb_nic *wire;
static struct ebb_net_if *nif;
static uint32_t server_ip;
static int idle_handle = -1;
static bool failed;

/* Print the interface's TCP counters that explain a slow or stalled
 * test: what the stack sent again, and what did not leave; and how long
 * core 0 ran and how long it waited for its cpu (other work on it). */
static void print_stats(const char *when)
{
	unsigned long long run_ns = 0, wait_ns = 0;
	struct ebb_core_stats cs = { 0 };
	struct ebb_net_stats st;
	char path[64];
	FILE *f;

	if (ebb_net_if_stats(nif, &st) != 0)
		return;
	snprintf(path, sizeof(path), "/proc/self/task/%d/schedstat",
		 (int)core_tid);
	f = core_tid > 0 ? fopen(path, "r") : NULL;
	if (f != NULL) {
		if (fscanf(f, "%llu %llu", &run_ns, &wait_ns) != 2)
			run_ns = wait_ns = 0;
		fclose(f);
	}
	/* Loop iterations of core 0: segments per iteration near the rx
	 * burst mean that core is the bottleneck, near 1 that it waits. */
	(void)ebb_core_stats(0, &cs);
	printf("STATS node=%u when=%s run_ns=%llu wait_ns=%llu loops=%" PRIu64
	       " tcp_tx=%" PRIu64
	       " tcp_rx=%" PRIu64
	       " tcp_retransmits=%" PRIu64 " tcp_fast_retransmits=%" PRIu64
	       " tcp_timeouts=%" PRIu64 " tcp_ooo=%" PRIu64
	       " tcp_dropped=%" PRIu64 " drop_tx_full=%" PRIu64
	       " tcp_rst_sent=%" PRIu64 " tcp_rst_rcvd=%" PRIu64 "\n",
	       ebb_node_id(), when, run_ns, wait_ns, cs.iterations, st.tcp_tx,
	       st.tcp_rx,
	       st.tcp_retransmits,
	       st.tcp_fast_retransmits, st.tcp_timeouts, st.tcp_ooo,
	       st.tcp_dropped, st.drop_tx_full, st.tcp_rst_sent,
	       st.tcp_rst_rcvd);
	fflush(stdout);
}

/* ===================================================================
 * Node 2: the echo server and the sink
 * =================================================================== */

struct srv_stats {
	uint64_t echoed, conns, held, errors, sunk;
	unsigned open;		/* echo connections */
};

static struct srv_stats srv;

/* An echo connection: what its send buffer had no room for, in order. */
struct echo_conn {
	struct rte_mbuf *held;
};

static void echo_push(struct ebb_tcp_conn *c, struct echo_conn *e)
{
	if (e->held != NULL && ebb_tcp_send(c, e->held) == 0)
		e->held = NULL;
}

/* The request goes back as it came, segments and all: the stack copies
 * a small payload into its own frame. */
static void echo_recv(void *arg, struct ebb_tcp_conn *c, struct rte_mbuf *m)
{
	struct echo_conn *e = arg;
	int rc;

	if (m == NULL) {
		rte_pktmbuf_free(e->held);
		free(e);
		ebb_tcp_close(c);
		if (--srv.open == 0)
			print_stats("rr");
		return;
	}
	srv.echoed += rte_pktmbuf_pkt_len(m);
	if (e->held == NULL) {
		rc = ebb_tcp_send(c, m);
		if (rc == 0)
			return;
		if (rc != -EAGAIN) {
			rte_pktmbuf_free(m);
			return;
		}
		e->held = m;
		srv.held++;
		return;
	}
	/* Behind a held chain: after it, or the stream would reorder. */
	if (rte_pktmbuf_chain(e->held, m) != 0) {
		srv.errors++;
		rte_pktmbuf_free(m);
		ebb_tcp_abort(c);
		rte_pktmbuf_free(e->held);
		free(e);
		srv.open--;
	}
}

static void echo_writable(void *arg, struct ebb_tcp_conn *c)
{
	echo_push(c, arg);
}

static void echo_error(void *arg, struct ebb_tcp_conn *c, int err)
{
	struct echo_conn *e = arg;

	(void)c;
	(void)err;
	srv.errors++;
	srv.open--;
	rte_pktmbuf_free(e->held);
	free(e);
}

static const struct ebb_tcp_ops echo_ops = {
	.recv = echo_recv,
	.writable = echo_writable,
	.error = echo_error,
};

static int echo_accept(void *arg, struct ebb_tcp_conn *c)
{
	struct echo_conn *e = calloc(1, sizeof(*e));

	(void)arg;
	if (e == NULL)
		return -1;
	srv.conns++;
	srv.open++;
	ebb_tcp_set_ops(c, &echo_ops, e);
	return 0;
}

/* A sink connection counts as the Linux sink does: the bytes after its
 * first read, over the time from the end of that read to the end of its
 * last one. */
struct sink_conn {
	uint64_t first_ns, last_ns, bytes;
	bool started;
};

struct sink_report {
	uint64_t rx_bytes, rx_ns;
};

/* The sender closed: its count goes to node 1. */
static void sink_report(const struct sink_conn *s)
{
	struct sink_report r = { .rx_bytes = s->bytes,
				 .rx_ns = s->last_ns - s->first_ns };
	struct rte_mbuf *msg = ebb_msg_alloc();
	int rc = -ENOMEM;

	if (msg != NULL) {
		memcpy(rte_pktmbuf_append(msg, sizeof(r)), &r, sizeof(r));
		rc = ebb_msg_send_retry(1, SINK_MSG_ID, msg);
	}
	if (rc != 0)
		printf("ERROR sink report: %s\n", strerror(-rc));
}

static void sink_recv(void *arg, struct ebb_tcp_conn *c, struct rte_mbuf *m)
{
	struct sink_conn *s = arg;
	uint64_t now = ebb_time_ns();

	if (m != NULL) {
		srv.sunk += rte_pktmbuf_pkt_len(m);
		if (s->started)
			s->bytes += rte_pktmbuf_pkt_len(m);
		else
			s->first_ns = now;
		s->started = true;
		s->last_ns = now;
		rte_pktmbuf_free(m);
		return;
	}
	sink_report(s);
	free(s);
	ebb_tcp_close(c);
	print_stats("stream");
}

static void sink_error(void *arg, struct ebb_tcp_conn *c, int err)
{
	(void)c;
	printf("ERROR sink connection: %s\n", strerror(-err));
	srv.errors++;
	free(arg);
}

static const struct ebb_tcp_ops sink_ops = {
	.recv = sink_recv,
	.error = sink_error,
};

static int sink_accept(void *arg, struct ebb_tcp_conn *c)
{
	struct sink_conn *s = calloc(1, sizeof(*s));

	(void)arg;
	if (s == NULL)
		return -1;
	srv.conns++;
	ebb_tcp_set_ops(c, &sink_ops, s);
	return 0;
}

/* ===================================================================
 * Node 1: the client
 * =================================================================== */

/* One connection of the request/response tests: a reply is exactly the
 * next opt.msg bytes of its byte stream, however the segments cut it. */
struct cli_conn {
	struct ebb_tcp_conn *c;
	uint32_t flow;
	uint32_t rx_len;	/* bytes of a reply gathered in rx */
	uint8_t rx[MSG_MAX];
};

static struct cli_conn conns[MAX_CONNS];
static unsigned nconns, nconnected;
static struct loadgen *lg;

/* The stream: one connection, for the warm-up, then one measured. */
static struct {
	struct ebb_tcp_conn *c;
	bool warm;		/* the warm-up connection */
	bool sending;
	uint64_t t0, end_ns, t_close;
	uint64_t bytes;
	uint32_t off;		/* into the current chunk */
} st;

static uint8_t chunk_buf[CHUNK_MAX];

static void next_test(void);

static int t_send(void *ctx, uint32_t flow, const void *buf, size_t len)
{
	struct cli_conn *k = &conns[flow];
	ssize_t n;

	(void)ctx;
	/* A request goes whole or not at all (the generator counts a
	 * refused one lost): part of one would shift every later reply. */
	if (k->c == NULL || ebb_tcp_send_space(k->c) < len)
		return -EAGAIN;
	n = ebb_tcp_send_buf(k->c, buf, len);
	if (n == (ssize_t)len)
		return 0;
	if (n >= 0) {
		/* No mbuf for the rest: this connection is broken now. */
		printf("ERROR rr: %zd of %zu request bytes queued\n", n, len);
		failed = true;
		return -EIO;
	}
	return (int)n;
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

static void cli_recv(void *arg, struct ebb_tcp_conn *c, struct rte_mbuf *m)
{
	struct cli_conn *k = arg;

	(void)c;
	if (m == NULL) {
		printf("ERROR rr: the server closed connection %u\n", k->flow);
		failed = true;
		return;
	}
	for (struct rte_mbuf *x = m; x != NULL; x = x->next) {
		const uint8_t *p = rte_pktmbuf_mtod(x, const uint8_t *);
		uint32_t left = x->data_len;

		while (left > 0) {
			uint32_t n;

			/* A whole reply in place: no copy. */
			if (k->rx_len == 0 && left >= opt.msg) {
				if (lg != NULL)
					loadgen_on_reply(lg, k->flow, p,
							 opt.msg);
				p += opt.msg;
				left -= opt.msg;
				continue;
			}
			n = RTE_MIN(left, opt.msg - k->rx_len);
			memcpy(k->rx + k->rx_len, p, n);
			k->rx_len += n;
			p += n;
			left -= n;
			if (k->rx_len == opt.msg) {
				if (lg != NULL)
					loadgen_on_reply(lg, k->flow, k->rx,
							 opt.msg);
				k->rx_len = 0;
			}
		}
	}
	rte_pktmbuf_free(m);
}

static void cli_error(void *arg, struct ebb_tcp_conn *c, int err)
{
	struct cli_conn *k = arg;

	(void)c;
	printf("ERROR rr connection %u: %s\n", k->flow, strerror(-err));
	k->c = NULL;
	failed = true;
}

static bool rr_drive(void *arg);

static void cli_open(unsigned from, unsigned to);

static void cli_connected(void *arg, struct ebb_tcp_conn *c)
{
	struct loadgen_config cfg;
	const struct test *t = &tests[cur];

	(void)arg;
	(void)c;
	/* The first one has resolved node 2's MAC: the others now. */
	if (++nconnected == 1 && nconns > 1)
		cli_open(1, nconns);
	if (nconnected < nconns)
		return;
	loadgen_config_default(&cfg);
	cfg.mode = LOADGEN_CLOSED;
	cfg.flows = t->conns;
	cfg.window = 1;
	cfg.payload = opt.msg;
	cfg.warmup_ns = opt.warmup_ms * 1000000u;
	cfg.duration_ns = opt.duration_ms * 1000000u;
	cfg.timeout_ns = opt.timeout_ms * 1000000u;
	lg = loadgen_create(&cfg, &transport, NULL);
	if (lg == NULL) {
		printf("ERROR loadgen: %s\n", strerror(errno));
		failed = true;
		ebb_cluster_stop();
		return;
	}
	loadgen_start(lg);
	idle_handle = ebb_idle_add(rr_drive, NULL);
}

static const struct ebb_tcp_ops cli_ops = {
	.recv = cli_recv,
	.connected = cli_connected,
	.error = cli_error,
};

static void print_hist(const struct loadgen_hist *h)
{
	char line[900];
	size_t n = 0;

	/* Lines under the frontend's 1024 bytes: the buckets in pieces. */
	printf("HIST n=%" PRIu64 " min=%" PRIu64 " max=%" PRIu64 " sum=%.0f\n",
	       h->n, h->min, h->max, h->sum);
	for (unsigned i = 0; i < LOADGEN_HIST_BUCKETS; i++) {
		if (h->count[i] == 0)
			continue;
		n += (size_t)snprintf(line + n, sizeof(line) - n, " %u:%" PRIu64,
				      i, h->count[i]);
		if (n > sizeof(line) - 40) {
			printf("HIST b=%s\n", line);
			n = 0;
		}
	}
	if (n > 0)
		printf("HIST b=%s\n", line);
}

static bool rr_drive(void *arg)
{
	struct loadgen_result r;

	(void)arg;
	if (lg == NULL || !loadgen_step(lg))
		return true;	/* keep polling: never halt mid-test */
	loadgen_result(lg, &r);
	print_hist(&r.hist);
	printf("RESULT test=rr conns=%u achieved=%.0f sent=%" PRIu64
	       " replied=%" PRIu64 " lost=%" PRIu64 " late=%" PRIu64
	       " bad=%" PRIu64 " p50_ns=%.0f p99_ns=%.0f p999_ns=%.0f "
	       "mean_ns=%.0f max_ns=%.0f\n",
	       tests[cur].conns, r.achieved_rps, r.sent, r.replied, r.lost,
	       r.late, r.bad, r.p50_ns, r.p99_ns, r.p999_ns, r.mean_ns,
	       r.max_ns);
	print_stats("rr");
	loadgen_destroy(lg);
	lg = NULL;
	ebb_idle_remove(idle_handle);
	idle_handle = -1;
	for (unsigned i = 0; i < nconns; i++) {
		ebb_tcp_close(conns[i].c);
		conns[i].c = NULL;
	}
	cur++;
	next_test();
	return false;
}

static void cli_open(unsigned from, unsigned to)
{
	for (unsigned i = from; i < to; i++) {
		conns[i] = (struct cli_conn){ .flow = i };
		conns[i].c = ebb_tcp_connect(nif, server_ip, ECHO_PORT,
					     &cli_ops, &conns[i]);
		if (conns[i].c == NULL) {
			printf("ERROR connect: %s\n", strerror(errno));
			failed = true;
			ebb_cluster_stop();
			return;
		}
	}
}

/* One connection first: SYNs waiting for ARP past the first 8 would be
 * dropped, and sent again only after the 1 s initial RTO. */
static void rr_begin(void)
{
	nconns = tests[cur].conns;
	nconnected = 0;
	cli_open(0, 1);
}

/* The stream's sender: as many bytes as the send buffer takes, until the
 * end of its time; writable() calls again when a quarter is free. */
static void stream_push(void)
{
	while (st.sending && st.c != NULL && ebb_time_ns() < st.end_ns) {
		if (opt.send_mbufs) {
			/* A chain of full-MSS mbufs: no copy, each one
			 * segment's payload. */
			struct rte_mbuf *h = NULL, *m;
			uint32_t len = 0;
			int rc;

			while (len < opt.chunk) {
				uint16_t n = (uint16_t)RTE_MIN(
					1460u, opt.chunk - len);

				m = ebb_net_alloc(nif);
				if (m == NULL ||
				    rte_pktmbuf_append(m, n) == NULL ||
				    (h != NULL && rte_pktmbuf_chain(h, m))) {
					rte_pktmbuf_free(m);
					break;
				}
				if (h == NULL)
					h = m;
				len += n;
			}
			if (h == NULL)
				return;	/* no mbuf: the next ACK frees some */
			rc = ebb_tcp_send(st.c, h);
			if (rc != 0) {
				rte_pktmbuf_free(h);
				return;
			}
			st.bytes += len;
		} else {
			ssize_t n = ebb_tcp_send_buf(st.c, chunk_buf + st.off,
						     opt.chunk - st.off);

			if (n <= 0)
				return;
			st.bytes += (uint64_t)n;
			st.off += (uint32_t)n;
			if (st.off == opt.chunk)
				st.off = 0;
		}
	}
}

static void stream_writable(void *arg, struct ebb_tcp_conn *c)
{
	(void)arg;
	(void)c;
	stream_push();
}

static void stream_connected(void *arg, struct ebb_tcp_conn *c)
{
	(void)arg;
	(void)c;
	st.t0 = ebb_time_ns();
	st.end_ns = st.t0 + (st.warm ? opt.warmup_ms : opt.duration_ms) *
				    1000000u;
	st.sending = true;
	stream_push();
}

static void stream_recv(void *arg, struct ebb_tcp_conn *c, struct rte_mbuf *m)
{
	(void)arg;
	(void)c;
	rte_pktmbuf_free(m);	/* the sink sends nothing; NULL at its FIN */
}

static void stream_error(void *arg, struct ebb_tcp_conn *c, int err)
{
	(void)arg;
	(void)c;
	printf("ERROR stream connection: %s\n", strerror(-err));
	st.c = NULL;
	failed = true;
	ebb_cluster_stop();
}

static const struct ebb_tcp_ops stream_ops = {
	.recv = stream_recv,
	.writable = stream_writable,
	.connected = stream_connected,
	.error = stream_error,
};

static void stream_open(bool warm)
{
	memset(&st, 0, sizeof(st));
	st.warm = warm;
	st.c = ebb_tcp_connect(nif, server_ip, SINK_PORT, &stream_ops, NULL);
	if (st.c == NULL) {
		printf("ERROR connect: %s\n", strerror(errno));
		failed = true;
		ebb_cluster_stop();
	}
}

/* Every loop iteration: the sender's clock, and its retry when the pool
 * ran dry (writable() follows a full send buffer only). */
static bool stream_drive(void *arg)
{
	(void)arg;
	if (!st.sending || st.c == NULL)
		return true;
	if (ebb_time_ns() < st.end_ns) {
		if (ebb_tcp_send_space(st.c) >= opt.chunk / 4)
			stream_push();
		return true;
	}
	st.sending = false;
	st.t_close = ebb_time_ns();
	ebb_tcp_close(st.c);
	st.c = NULL;
	return true;
}

/* The sink's count of the connection that just ended. */
static void on_sink_report(void *arg, unsigned src, struct rte_mbuf *m)
{
	struct sink_report r;

	(void)arg;
	(void)src;
	if (rte_pktmbuf_data_len(m) != sizeof(r)) {
		rte_pktmbuf_free(m);
		return;
	}
	memcpy(&r, rte_pktmbuf_mtod(m, void *), sizeof(r));
	rte_pktmbuf_free(m);
	if (st.warm) {
		stream_open(false);
		return;
	}
	printf("RESULT test=stream rx_bytes=%" PRIu64 " rx_ns=%" PRIu64
	       " tx_bytes=%" PRIu64 " tx_ns=%" PRIu64 "\n",
	       r.rx_bytes, r.rx_ns, st.bytes, st.t_close - st.t0);
	print_stats("stream");
	ebb_idle_remove(idle_handle);
	idle_handle = -1;
	cur++;
	next_test();
}

static void next_test(void)
{
	fflush(stdout);
	if (cur == ntests || failed) {
		ebb_cluster_stop();
		return;
	}
	if (tests[cur].kind == T_RR) {
		rr_begin();
		return;
	}
	idle_handle = ebb_idle_add(stream_drive, NULL);
	stream_open(opt.warmup_ms == 0 ? false : true);
}

static void attach(void *arg)
{
	int rc = ebb_net_if_attach(nif, ebb_core_id());

	(void)arg;
	if (ebb_core_id() == 0)
		core_tid = gettid();
	if (rc) {
		printf("ERROR attach: %s\n", strerror(-rc));
		failed = true;
	}
}

static struct ebb_timer start_timer;
static unsigned start_tries;

/* Node 1, every 10 ms until node 2 serves; the first SYN resolves node
 * 2's MAC (it waits in the ARP queue meanwhile). */
static void begin(struct ebb_timer *t, void *arg)
{
	(void)arg;
	if (++start_tries < START_TRIES &&
	    ebb_cluster_node_state(2) != EBB_NODE_READY) {
		ebb_timer_start(t, 10000000u, 0);
		return;
	}
	next_test();
}

static void client(void *arg)
{
	(void)arg;
	attach(NULL);
	if (failed) {
		ebb_cluster_stop();
		return;
	}
	ebb_timer_init(&start_timer, begin, NULL);
	ebb_timer_start(&start_timer, 0, 0);
}

/* ===================================================================
 * main
 * =================================================================== */

static bool parse_test(const char *s)
{
	struct test *t = &tests[ntests];
	char *end;

	if (ntests == MAX_TESTS)
		return false;
	if (strncmp(s, "rr:", 3) == 0) {
		t->kind = T_RR;
		t->conns = (uint32_t)strtoul(s + 3, &end, 10);
		if (*end || t->conns == 0 || t->conns > MAX_CONNS)
			return false;
	} else if (strcmp(s, "stream") == 0) {
		t->kind = T_STREAM;
	} else {
		return false;
	}
	ntests++;
	return true;
}

static void usage(FILE *to, const char *argv0)
{
	fprintf(to,
		"usage: ebbrt run --nodes 2 --wire -- %s [--test rr:CONNS|"
		"stream]...\n"
		"       [--duration-ms N] [--warmup-ms N] [--timeout-ms N] "
		"[--msg B] [--chunk B]\n"
		"       [--send buf|mbufs] [--sndbuf B] [--rcvbuf B]\n"
		"Node 2: TCP echo (port %d) and sink (port %d) on the wire; "
		"node 1: the client.\nSee docs/bench.md.\n",
		argv0, ECHO_PORT, SINK_PORT);
}

static bool parse_args(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "test", required_argument, NULL, 't' },
		{ "duration-ms", required_argument, NULL, 'd' },
		{ "warmup-ms", required_argument, NULL, 'w' },
		{ "timeout-ms", required_argument, NULL, 'T' },
		{ "msg", required_argument, NULL, 'm' },
		{ "chunk", required_argument, NULL, 'c' },
		{ "send", required_argument, NULL, 's' },
		{ "sndbuf", required_argument, NULL, 'S' },
		{ "rcvbuf", required_argument, NULL, 'R' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 't':
			if (!parse_test(optarg)) {
				fprintf(stderr, "bad --test %s\n", optarg);
				return false;
			}
			break;
		case 'd':
			opt.duration_ms = strtoull(optarg, NULL, 10);
			break;
		case 'w':
			opt.warmup_ms = strtoull(optarg, NULL, 10);
			break;
		case 'T':
			opt.timeout_ms = strtoull(optarg, NULL, 10);
			break;
		case 'm':
			opt.msg = (uint32_t)strtoul(optarg, NULL, 10);
			if (opt.msg < LOADGEN_HDR_SIZE || opt.msg > MSG_MAX) {
				fprintf(stderr, "--msg: %u to %u bytes\n",
					LOADGEN_HDR_SIZE, MSG_MAX);
				return false;
			}
			break;
		case 'c':
			opt.chunk = (uint32_t)strtoul(optarg, NULL, 10);
			if (opt.chunk == 0 || opt.chunk > CHUNK_MAX) {
				fprintf(stderr, "--chunk: 1 to %u bytes\n",
					CHUNK_MAX);
				return false;
			}
			break;
		case 's':
			if (strcmp(optarg, "buf") != 0 &&
			    strcmp(optarg, "mbufs") != 0) {
				fprintf(stderr, "--send buf or mbufs\n");
				return false;
			}
			opt.send_mbufs = strcmp(optarg, "mbufs") == 0;
			break;
		case 'S':
			opt.tcp.sndbuf = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'R':
			opt.tcp.rcvbuf = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'h':
			usage(stdout, argv[0]);
			exit(0);
		default:
			usage(stderr, argv[0]);
			return false;
		}
	}
	if (ntests == 0)
		return parse_test("rr:1");
	return true;
}

int main(int argc, char **argv)
{
	struct ebb_net_config nc = { .netmask = 0xffffff00u };
	struct ebb_tcp_listen_config echo_lc = { .accept = echo_accept };
	struct ebb_tcp_listen_config sink_lc = { .accept = sink_accept };
	struct ebb_tcp_listener *echo_l = NULL, *sink_l = NULL;
	int rc;

	if (!parse_args(argc, argv))
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
	rc = ebb_tcp_configure(nif, &opt.tcp);
	if (rc != 0) {
		printf("ERROR tcp_configure: %s\n", strerror(-rc));
		return 1;
	}
	server_ip = ebb_cluster_node_wire_ip(2);
	if (ebb_node_id() == 2) {
		echo_l = ebb_tcp_listen(nif, ECHO_PORT, &echo_lc);
		sink_l = ebb_tcp_listen(nif, SINK_PORT, &sink_lc);
		if (echo_l == NULL || sink_l == NULL) {
			printf("ERROR listen: %s\n", strerror(errno));
			return 1;
		}
	} else {
		memset(chunk_buf, 0x5a, sizeof(chunk_buf));
		rc = ebb_msg_register(SINK_MSG_ID, on_sink_report, NULL);
		if (rc != 0) {
			printf("ERROR msg_register: %s\n", strerror(-rc));
			return 1;
		}
	}
	if (ebb_start() != 0)
		return 1;
	if (ebb_node_id() == 2) {
		/* The server polls, as a kernel-bypass server does under
		 * load: a halt and a wake-up between two requests would be
		 * measured instead of the stack. srv% shows the cost. */
		for (unsigned i = 0; i < ebb_core_count(); i++) {
			ebb_core_set_spin(i, UINT32_MAX / 2);
			ebb_spawn_remote(i, attach, NULL);
		}
	} else {
		ebb_spawn_remote(0, client, NULL);
	}
	ebb_wait();
	if (ebb_node_id() == 2) {
		printf("SERVER conns=%" PRIu64 " echoed=%" PRIu64 " sunk=%" PRIu64
		       " held=%" PRIu64 " errors=%" PRIu64 "\n",
		       srv.conns, srv.echoed, srv.sunk, srv.held, srv.errors);
		print_stats("end");
	}
	ebb_tcp_unlisten(echo_l);
	ebb_tcp_unlisten(sink_l);
	ebb_net_if_close(nif);
	ebb_nic_close(wire);
	ebb_fini();
	return failed ? 1 : 0;
}
