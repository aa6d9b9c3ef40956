/* SPDX-License-Identifier: BSD-3-Clause */
/* ebbrt-bench-kv-node: the ebbrt side of the key-value comparison, one
 * binary for both nodes of `ebbrt run --nodes 2 --wire`: node 2 serves
 * ebb-kv (apps/kv's engine on the ebbrt TCP stack) on its end of the
 * wire, node 1 runs the memcached load of bench/kvload.c over ebbrt TCP
 * connections to it, kernel bypass at both ends. Node 1 preloads the
 * keys, runs one test, prints one RESULT line and stops the cluster. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_mbuf.h>

#include <ebbrt/ebbrt.h>
#include <ebbrt/net.h>
#include <ebbrt/nic.h>
#include <ebbrt/tcp.h>

#include "kv_server.h"
#include "kvload.h"

#define KV_PORT 11211
/* Request bytes TCP did not take yet, per connection: as the Linux
 * transport's queue in bench/kv.c. */
#define OUT_CAP (64u << 10)
#define CONNECT_TIMEOUT_NS 10000000000ull

/* --- the test, from the command line --- */

static struct {
	enum loadgen_mode mode;
	uint32_t window;
	double rate;
	uint64_t duration_ms, warmup_ms;
	uint32_t conns, keys;
	double get_ratio;
	enum kvload_dist dist;
	unsigned long mem_mb;
} opt = { .mode = LOADGEN_CLOSED, .window = 1, .duration_ms = 5000,
	  .warmup_ms = 1000, .conns = 64, .keys = 100000, .get_ratio = 0.9,
	  .dist = KVLOAD_UNIFORM, .mem_mb = 1024 };

/* --- node 1: the generator's connections --- */

struct nconn {
	struct ebb_tcp_conn *tc;
	bool up;		/* established */
	bool dirty;		/* has bytes in out, in the dirty list */
	uint32_t off, len;	/* out[off, len): in order after what TCP has */
	char *out;
};

enum phase { P_WAIT, P_CONNECT_ONE, P_CONNECT, P_PRELOAD, P_TEST, P_DONE };

static struct ebb_nic *wire;
static struct ebb_net_if *nif;
static uint32_t server_ip;
static struct nconn *conns;
static uint32_t *dirty, ndirty, nup;
static struct kvload *kl;
static struct kvload_config kcfg;
static enum phase phase = P_WAIT;
static uint64_t t_connect, t_connected;
static int fatal;		/* the first fatal transport error */
static const char *fatal_what = "";
static int idle_handle = -1;
static bool failed;

static void set_fatal(int err, const char *what)
{
	if (fatal == 0) {
		fatal = err;
		fatal_what = what;
	}
}

static void mark_dirty(uint32_t conn)
{
	struct nconn *c = &conns[conn];

	if (!c->dirty) {
		c->dirty = true;
		dirty[ndirty++] = conn;
	}
}

/* Hand what @c holds to TCP; false when some is left. Never called from
 * a TCP callback of @c's connection (writable() only marks it dirty): a
 * send there would run while an outer push of the same bytes has not yet
 * moved @c->off past them. */
static bool push(struct nconn *c)
{
	while (c->off < c->len) {
		ssize_t n = ebb_tcp_send_buf(c->tc, c->out + c->off,
					     c->len - c->off);

		if (n == -EAGAIN)
			return false;	/* writable() will mark it */
		if (n < 0) {
			set_fatal((int)n, "send");
			return false;
		}
		c->off += (uint32_t)n;
	}
	c->off = c->len = 0;
	return true;
}

/*
 * The transport. send() gives the request to TCP at once (no Nagle in
 * this stack: it leaves at the end of the current receive burst, or at
 * once outside one); what TCP does not take (a full send buffer, no mbuf)
 * is kept after the bytes already waiting and pushed by flush() on every
 * step, so a request is never cut. A request is refused (-EAGAIN, lost)
 * only when the connection's OUT_CAP bytes of backlog are full.
 */
static int t_send(void *ctx, uint32_t conn, const void *buf, size_t len)
{
	struct nconn *c = &conns[conn];
	size_t taken = 0;

	(void)ctx;
	if (fatal)
		return fatal;
	if (c->off == c->len) {
		ssize_t n;

		c->off = c->len = 0;
		n = ebb_tcp_send_buf(c->tc, buf, len);
		if (n == (ssize_t)len)
			return 0;
		if (n < 0 && n != -EAGAIN) {
			set_fatal((int)n, "send");
			return (int)n;
		}
		taken = n > 0 ? (size_t)n : 0;
	}
	if (c->len + (len - taken) > OUT_CAP && c->off > 0) {
		memmove(c->out, c->out + c->off, c->len - c->off);
		c->len -= c->off;
		c->off = 0;
	}
	/* Part taken means out was empty: the rest always fits. */
	if (c->len + (len - taken) > OUT_CAP)
		return -EAGAIN;
	memcpy(c->out + c->len, (const char *)buf + taken, len - taken);
	c->len += (uint32_t)(len - taken);
	mark_dirty(conn);
	return 0;
}

static void t_flush(void *ctx)
{
	uint32_t keep = 0;

	(void)ctx;
	for (uint32_t i = 0; i < ndirty; i++) {
		struct nconn *c = &conns[dirty[i]];

		if (push(c))
			c->dirty = false;
		else
			dirty[keep++] = dirty[i];
	}
	ndirty = keep;
}

static uint64_t t_now(void *ctx)
{
	(void)ctx;
	return ebb_time_ns();
}

static const struct kvload_transport transport = {
	.send = t_send,
	.flush = t_flush,
	.poll = NULL,	/* on_recv() feeds kvload */
	.now_ns = t_now,
};

/* Replies in order on connection @arg: each segment's bytes to kvload. */
static void on_recv(void *arg, struct ebb_tcp_conn *tc, struct rte_mbuf *m)
{
	uint32_t conn = (uint32_t)(uintptr_t)arg;

	(void)tc;
	if (m == NULL) {
		set_fatal(-ECONNRESET, "the server closed a connection");
		return;
	}
	for (struct rte_mbuf *s = m; s != NULL; s = s->next)
		if (kl != NULL && s->data_len != 0)
			kvload_input(kl, conn, rte_pktmbuf_mtod(s, void *),
				     s->data_len);
	rte_pktmbuf_free(m);
}

static void on_writable(void *arg, struct ebb_tcp_conn *tc)
{
	uint32_t conn = (uint32_t)(uintptr_t)arg;

	(void)tc;
	if (conns[conn].off < conns[conn].len)
		mark_dirty(conn);
}

static void on_connected(void *arg, struct ebb_tcp_conn *tc)
{
	uint32_t conn = (uint32_t)(uintptr_t)arg;

	(void)tc;
	if (!conns[conn].up) {
		conns[conn].up = true;
		nup++;
	}
}

static void on_error(void *arg, struct ebb_tcp_conn *tc, int err)
{
	uint32_t conn = (uint32_t)(uintptr_t)arg;

	(void)tc;
	conns[conn].tc = NULL;	/* freed when we return */
	set_fatal(err, "connection");
}

static const struct ebb_tcp_ops conn_ops = {
	.recv = on_recv,
	.writable = on_writable,
	.connected = on_connected,
	.error = on_error,
};

/* --- node 1: the jobs --- */

static void print_result(const struct kvload_result *r)
{
	const struct loadgen_result *g = &r->lg;

	/* Every key with a space before it: " errors=" is not
	 * " proto_errors=". The server's core polls all the time: its cpu
	 * time over the test is the test's wall time. */
	printf("RESULT mode=%s window=%u rate=%.0f duration_s=%.6f "
	       "offered=%.3f sent_rps=%.3f achieved=%.3f sent=%" PRIu64
	       " replied=%" PRIu64 " lost=%" PRIu64 " send_errors=%" PRIu64
	       " late=%" PRIu64 " bad=%" PRIu64 " max_lag_ns=%" PRIu64
	       " p50_ns=%.0f p99_ns=%.0f p999_ns=%.0f mean_ns=%.0f "
	       "min_ns=%.0f max_ns=%.0f gets=%" PRIu64 " sets=%" PRIu64
	       " hits=%" PRIu64 " misses=%" PRIu64 " stored=%" PRIu64
	       " errors=%" PRIu64 " proto_errors=%" PRIu64
	       " send_full=%" PRIu64 " elapsed_ns=%" PRIu64 " status=%d "
	       "server_cpu_ns=%" PRIu64 "\n",
	       opt.mode == LOADGEN_OPEN ? "open" : "closed", opt.window,
	       opt.rate, g->duration_s, g->offered_rps, g->sent_rps,
	       g->achieved_rps, g->sent, g->replied, g->lost, g->send_errors,
	       g->late, g->bad, g->max_lag_ns, g->p50_ns, g->p99_ns,
	       g->p999_ns, g->mean_ns, g->min_ns, g->max_ns, r->gets, r->sets,
	       r->hits, r->misses, r->stored, r->errors, r->proto_errors,
	       r->send_full, r->elapsed_ns, r->status, r->elapsed_ns);
	fflush(stdout);
}

/* This node's TCP trouble, for the driver's notes: a lost segment of a
 * request or reply costs a retransmission timeout (no SACK here, and one
 * request in flight gives no duplicate ACKs). */
static void print_net(void)
{
	struct ebb_net_stats st;

	if (ebb_net_if_stats(nif, &st) != 0)
		return;
	printf("NET node=%u tcp_retransmits=%" PRIu64 " tcp_timeouts=%" PRIu64
	       " tcp_fast_retransmits=%" PRIu64 " tcp_ooo=%" PRIu64
	       " tcp_dropped=%" PRIu64 " drop_tx_full=%" PRIu64
	       " arp_pending_full=%" PRIu64 "\n",
	       ebb_node_id(), st.tcp_retransmits, st.tcp_timeouts,
	       st.tcp_fast_retransmits, st.tcp_ooo, st.tcp_dropped,
	       st.drop_tx_full, st.arp_pending_full);
	fflush(stdout);
}

/* Close the connections and stop the cluster. */
static void finish(void)
{
	phase = P_DONE;
	print_net();
	kvload_destroy(kl);
	kl = NULL;
	for (uint32_t i = 0; i < opt.conns; i++) {
		if (conns[i].tc != NULL)
			ebb_tcp_close(conns[i].tc);
		conns[i].tc = NULL;
	}
	ebb_idle_remove(idle_handle);
	ebb_cluster_stop();
}

static void fail(const char *what, int err)
{
	printf("ERROR %s: %s\n", what, strerror(-err));
	fflush(stdout);
	failed = true;
	finish();
}

static bool start_test(void)
{
	struct loadgen_config lc;
	int rc;

	loadgen_config_default(&lc);
	lc.mode = opt.mode;
	lc.window = opt.window;
	lc.rate = opt.rate;
	lc.warmup_ns = opt.warmup_ms * 1000000u;
	lc.duration_ns = opt.duration_ms * 1000000u;
	/* A fresh generator, as the Linux side makes for each test: the
	 * same sequence of requests from the same seed. */
	kvload_destroy(kl);
	kl = kvload_create(&kcfg, &transport, NULL);
	if (kl == NULL) {
		fail("kvload_create", -errno);
		return false;
	}
	rc = kvload_start_test(kl, &lc);
	if (rc != 0) {
		fail("kvload_start_test", rc);
		return false;
	}
	phase = P_TEST;
	return true;
}

static bool connect_one(uint32_t i)
{
	conns[i].tc = ebb_tcp_connect(nif, server_ip, KV_PORT, &conn_ops,
				      (void *)(uintptr_t)i);
	if (conns[i].tc == NULL) {
		set_fatal(-errno, "ebb_tcp_connect");
		return false;
	}
	return true;
}

/* Every loop iteration of node 1's core: the generator's clock. */
static bool drive(void *arg)
{
	struct kvload_result r;

	(void)arg;
	if (fatal && phase != P_DONE) {
		printf("ERROR %s: %s (%u of %u connections up)\n", fatal_what,
		       strerror(-fatal), nup, opt.conns);
		fflush(stdout);
		failed = true;
		finish();
		return false;
	}
	switch (phase) {
	case P_CONNECT_ONE:
		/* The first connection's SYN waited for ARP over the wire;
		 * the others now go straight out instead of overflowing the
		 * ARP queue and waiting out the SYN's 1 s timeout. */
		if (nup == 1) {
			phase = P_CONNECT;
			for (uint32_t i = 1; i < opt.conns; i++) {
				if (!connect_one(i))
					break;
			}
			return true;
		}
		/* fall through */
	case P_CONNECT:
		if (nup == opt.conns) {
			t_connected = ebb_time_ns();
			kl = kvload_create(&kcfg, &transport, NULL);
			if (kl == NULL) {
				fail("kvload_create", -errno);
				return false;
			}
			kvload_start_preload(kl);
			phase = P_PRELOAD;
		} else if (ebb_time_ns() - t_connect > CONNECT_TIMEOUT_NS) {
			printf("ERROR connect: %u of %u connections up in "
			       "%.0f s\n",
			       nup, opt.conns, CONNECT_TIMEOUT_NS / 1e9);
			failed = true;
			finish();
			return false;
		}
		return true;
	case P_PRELOAD:
		if (!kvload_step(kl))
			return true;
		kvload_result(kl, &r);
		if (r.status != 0 || r.stored != kcfg.keys) {
			printf("ERROR preload: %s, %" PRIu64 " of %u keys "
			       "stored, %" PRIu64 " errors\n",
			       r.status ? strerror(-r.status) : "incomplete",
			       r.stored, kcfg.keys,
			       r.errors + r.proto_errors);
			failed = true;
			finish();
			return false;
		}
		printf("PRELOAD keys=%u elapsed_ns=%" PRIu64 " connect_ns=%"
		       PRIu64 "\n",
		       kcfg.keys, r.elapsed_ns, t_connected - t_connect);
		fflush(stdout);
		return start_test();
	case P_TEST:
		if (!kvload_step(kl))
			return true;
		kvload_result(kl, &r);
		print_result(&r);
		if (r.status != 0)
			failed = true;
		finish();
		return false;
	default:
		return true;
	}
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

/* Node 1, every 10 ms until node 2 serves: then open the connections
 * (their SYNs wait in the stack for ARP over the wire). */
static void begin(struct ebb_timer *t, void *arg)
{
	(void)arg;
	if (start_tries++ < 500 &&
	    ebb_cluster_node_state(2) != EBB_NODE_READY) {
		ebb_timer_start(t, 10000000u, 0);
		return;
	}
	t_connect = ebb_time_ns();
	phase = P_CONNECT_ONE;
	connect_one(0);
	idle_handle = ebb_idle_add(drive, NULL);
	if (idle_handle < 0) {
		printf("ERROR ebb_idle_add: %s\n", strerror(-idle_handle));
		failed = true;
		ebb_cluster_stop();
	}
}

static void generator(void *arg)
{
	(void)arg;
	attach(NULL);
	ebb_timer_init(&start_timer, begin, NULL);
	ebb_timer_start(&start_timer, 0, 0);
}

/* --- main --- */

static bool parse_test(const char *s)
{
	char *end;

	if (strncmp(s, "closed:", 7) == 0) {
		opt.mode = LOADGEN_CLOSED;
		opt.window = (uint32_t)strtoul(s + 7, &end, 10);
		return *end == '\0' && opt.window > 0;
	}
	if (strncmp(s, "open:", 5) == 0) {
		opt.mode = LOADGEN_OPEN;
		opt.rate = strtod(s + 5, &end);
		return *end == '\0' && opt.rate > 0;
	}
	return false;
}

static void usage(FILE *to, const char *me)
{
	fprintf(to,
		"usage: ebbrt run --nodes 2 --wire -- %s [options]\n"
		"Node 2 serves ebb-kv on the wire; node 1 preloads every key "
		"and runs one\nmemcached load test against it, then prints a "
		"RESULT line.\n"
		"  --test closed:W|open:RATE  W requests in flight per "
		"connection, or\n"
		"                             Poisson arrivals at RATE/s "
		"(default closed:1)\n"
		"  --duration-ms N, --warmup-ms N (default 5000, 1000)\n"
		"  --conns N (64)  --keys N (100000)  --get-ratio R (0.9)\n"
		"  --dist uniform|zipf (uniform)  -m, --memory MiB (1024: "
		"the server's store)\n",
		me);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "test", required_argument, NULL, 't' },
		{ "duration-ms", required_argument, NULL, 'd' },
		{ "warmup-ms", required_argument, NULL, 'w' },
		{ "conns", required_argument, NULL, 'c' },
		{ "keys", required_argument, NULL, 'k' },
		{ "get-ratio", required_argument, NULL, 'g' },
		{ "dist", required_argument, NULL, 'D' },
		{ "memory", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ebb_net_config nc = { .netmask = 0xffffff00u };
	struct kv_store_config sc = { 0 };
	struct kv_proto_stats ps = { 0 };
	struct kv_store *store = NULL;
	int c, rc = 1;

	while ((c = getopt_long(argc, argv, "m:h", lo, NULL)) != -1) {
		switch (c) {
		case 't':
			if (!parse_test(optarg)) {
				fprintf(stderr, "bad --test %s\n", optarg);
				return 2;
			}
			break;
		case 'd':
			opt.duration_ms = strtoull(optarg, NULL, 10);
			break;
		case 'w':
			opt.warmup_ms = strtoull(optarg, NULL, 10);
			break;
		case 'c':
			opt.conns = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 'k':
			opt.keys = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 'g':
			opt.get_ratio = strtod(optarg, NULL);
			break;
		case 'D':
			if (strcmp(optarg, "uniform") == 0) {
				opt.dist = KVLOAD_UNIFORM;
			} else if (strcmp(optarg, "zipf") == 0) {
				opt.dist = KVLOAD_ZIPF;
			} else {
				fprintf(stderr, "bad --dist %s\n", optarg);
				return 2;
			}
			break;
		case 'm':
			opt.mem_mb = strtoul(optarg, NULL, 10);
			break;
		default:
			usage(c == 'h' ? stdout : stderr, argv[0]);
			return c == 'h' ? 0 : 2;
		}
	}
	kvload_config_default(&kcfg);
	kcfg.conns = opt.conns;
	kcfg.keys = opt.keys;
	kcfg.get_ratio = opt.get_ratio;
	kcfg.dist = opt.dist;
	{
		/* Refuse a bad load before a cluster waits on us. */
		struct kvload *probe = kvload_create(&kcfg, &transport, NULL);

		if (probe == NULL || opt.mem_mb == 0) {
			fprintf(stderr, "bad load: %s\n", strerror(errno));
			return 2;
		}
		kvload_destroy(probe);
	}
	if (ebb_init(NULL) != 0)
		return 1;
	wire = ebb_nic_node_wire();
	if (!ebb_cluster_mode() || wire == NULL ||
	    ebb_cluster_nodes() < 2) {
		fprintf(stderr, "run me with `ebbrt run --nodes 2 --wire`\n");
		ebb_fini();
		return 2;
	}
	nc.ip = ebb_cluster_node_wire_ip(ebb_node_id());
	nif = ebb_net_if_open(wire, &nc);
	if (nif == NULL) {
		printf("ERROR net_if: %s\n", strerror(errno));
		goto out;
	}
	server_ip = ebb_cluster_node_wire_ip(2);
	if (ebb_node_id() == 2) {
		sc.mem_limit = (size_t)opt.mem_mb << 20;
		store = kv_store_create(&sc);
		if (store == NULL) {
			printf("ERROR store: %s\n", strerror(errno));
			goto out;
		}
		ps.threads = ebb_core_count();
		c = kv_server_start(nif, KV_PORT, store, &ps);
		if (c != 0) {
			printf("ERROR kv_server_start: %s\n", strerror(-c));
			goto out;
		}
	} else {
		conns = calloc(opt.conns, sizeof(*conns));
		dirty = calloc(opt.conns, sizeof(*dirty));
		if (conns == NULL || dirty == NULL)
			goto nomem;
		for (uint32_t i = 0; i < opt.conns; i++) {
			conns[i].out = malloc(OUT_CAP);
			if (conns[i].out == NULL)
				goto nomem;
		}
	}
	if (ebb_start() != 0)
		goto out;
	if (ebb_node_id() == 2) {
		/* The server polls, as a kernel-bypass server does under
		 * load (and as bench/udp_node.c's): its cpu time is the wall
		 * time, which node 1 reports as server_cpu_ns. */
		for (unsigned i = 0; i < ebb_core_count(); i++) {
			ebb_core_set_spin(i, UINT32_MAX / 2);
			ebb_spawn_remote(i, attach, NULL);
		}
	} else {
		ebb_spawn_remote(0, generator, NULL);
	}
	ebb_wait();
	if (ebb_node_id() == 2) {
		print_net();
		printf("SERVER connections=%" PRIu64 " bytes_read=%" PRIu64
		       " bytes_written=%" PRIu64 "\n",
		       ps.total_connections, ps.bytes_read, ps.bytes_written);
	}
	rc = failed ? 1 : 0;
	goto out;
nomem:
	printf("ERROR node 1: %s\n", strerror(ENOMEM));
out:
	ebb_net_if_close(nif);
	ebb_nic_close(wire);
	ebb_fini();
	kv_store_destroy(store);
	for (uint32_t i = 0; conns != NULL && i < opt.conns; i++)
		free(conns[i].out);
	free(conns);
	free(dirty);
	return rc;
}
