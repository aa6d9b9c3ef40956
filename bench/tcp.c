/* SPDX-License-Identifier: BSD-3-Clause */
/* TCP benchmark: 64-byte request/response on one connection (round trip)
 * and on 64 (rate), and a one-connection stream (throughput at the
 * receiver), for each system under test (Linux epoll and io_uring
 * servers over loopback, ebbrt between two cluster nodes on a virtual
 * wire), with a table, JSON and a gnuplot plot. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ebbrt/ebbrt.h>

#include "common.h"
#include "loadgen.h"

/*
 * The client runs in this process on CPU_CLIENT, each server on
 * CPU_SERVER. Every system under test (struct sut) answers the same three
 * tests; the first one selected is the baseline of the ratio column, and
 * the targets compare a system that is not a Linux baseline (ebbrt) with
 * the best Linux figure of the run.
 */
#define CPU_CLIENT 0
#define CPU_SERVER 1
#define SERVER_ADDR "127.0.0.1"

#define MSG_SIZE 64u		/* request and reply bytes */
#define MANY_CONNS 64u		/* the rate test */
#define STREAM_CHUNK (64u << 10)	/* bytes per write of the stream */
#define RR_TIMEOUT_NS 1000000000ull	/* TCP loses nothing: a reply
					 * later than this is a stall */
#define RX_BUF 4096u		/* client: reply bytes read at once */
#define TX_PEND 4096u		/* client: request bytes a connection may
				 * hold back when its socket is full */
#define READY_TIMEOUT_S 5.0
#define LINE_TIMEOUT_S 5.0

/* Targets of the issue, for a system that is not a Linux baseline. */
#define TARGET_RTT_RATIO 0.25	/* 1-conn p50 <= 1/4 of Linux's */
#define TARGET_STREAM_RATIO 1.0	/* stream >= Linux's */

/* --- options --- */

static struct {
	bool quick;
	bool no_plot;
	const char *json;	/* default <out>/tcp.json */
	const char *out;
	const char *suts;	/* NULL: the default ones */
	double duration_s;
	double warmup_s;
} opt = { .out = "results" };

static char self_dir[PATH_MAX];
static char json_path[PATH_MAX];

/* ===================================================================
 * Systems under test
 *
 * A system answers two kinds of test through its ops:
 *
 * rr(s, cfg, out): request/response. @cfg is a closed-loop
 *   loadgen_config: cfg->flows connections to an echo server, window 1
 *   (one request in flight per connection), cfg->payload (64) bytes a
 *   request, warm-up, measured duration and timeout. The system runs
 *   the generator of loadgen.h over its own TCP, flow i on connection i,
 *   a reply being exactly cfg->payload bytes of that connection's byte
 *   stream (see the Linux client below), and fills @out as
 *   loadgen_result() does: achieved_rps, sent, replied, lost, late, bad,
 *   p50/p99/p99.9/mean/max_ns, duration_s; and hist when it has it (the
 *   plot draws a latency CDF from it; a zero hist just leaves the system
 *   out of that panel).
 *
 * stream(s, cfg, out): one connection to a sink that reads and drops;
 *   the sender writes cfg->chunk bytes at a time for cfg->warmup_ns (not
 *   measured; the Linux client uses a connection of its own for it),
 *   then for cfg->duration_ns, and closes. @out gets the receiver's
 *   count (rx_bytes after its first read, rx_ns from the end of that read
 *   to the end of its last) and the sender's (tx_bytes over tx_ns).
 *   The figure is the receiver's: rx_bytes * 8 / rx_ns Gbit/s.
 *
 * start(s) brings the server up, stop(s) brings it down (called after a
 * failed start too) and may add notes with bench_note(); s->path is the
 * system's own account of its io path, printed under the table. Each op
 * returns 0, or -1 having said why on stderr.
 *
 * The ebbrt system (below) is one more entry of suts[] with
 * linux_baseline false, like ebbrt-bench-udp's: its ops run `ebbrt run
 * --nodes 2 --wire --cpus 0,1` of a node program (ebbrt-bench-tcp-node)
 * per test, node 1 the client on cpu 0 (the same loadgen.c over the
 * ebbrt TCP API; the stream sender), node 2 the echo server and the sink
 * on cpu 1, and parse one line node 1 prints per test:
 *   RESULT test=rr conns=64 achieved=R sent=N replied=N lost=N late=N
 *          bad=N p50_ns=X p99_ns=X p999_ns=X mean_ns=X max_ns=X
 *   RESULT test=stream rx_bytes=B rx_ns=T tx_bytes=B tx_ns=T
 * (the sink's counts reach node 1 by a Messenger message). The driver
 * reads the load of cpus 0 and 1 around each test, so the nodes must run
 * there. The table, JSON, plot and targets take results from any system.
 * =================================================================== */

struct stream_config {
	uint32_t chunk;		/* bytes per write */
	uint64_t warmup_ns, duration_ns;
};

struct stream_result {
	uint64_t rx_bytes, rx_ns;	/* at the receiver: the figure */
	uint64_t tx_bytes, tx_ns;	/* at the sender */
};

struct sut;

struct sut_ops {
	const char *key;	/* short name: --sut, table, JSON, plot */
	const char *what;	/* one line on what it runs */
	bool linux_baseline;	/* a baseline, not a system with targets */
	int (*start)(struct sut *s);
	int (*rr)(struct sut *s, const struct loadgen_config *cfg,
		  struct loadgen_result *out);
	int (*stream)(struct sut *s, const struct stream_config *cfg,
		      struct stream_result *out);
	void (*stop)(struct sut *s);
};

struct sut {
	const struct sut_ops *ops;
	bool selected;
	/* Linux servers: the process, its ports and its stdout. */
	const char *mode;
	pid_t pid;
	int echo_port, sink_port;
	int out_fd;
	char path[200];
};

/* --- small helpers --- */

static int pin_self(int cpu, cpu_set_t *old)
{
	int rc = bench_pin_self(cpu, old);

	if (rc != 0) {
		fprintf(stderr, "\ntcp: cannot pin to cpu %d: %s\n", cpu,
			strerror(-rc));
		return -1;
	}
	return 0;
}

/* A connected TCP socket to SERVER_ADDR:@port, blocking, with
 * TCP_NODELAY when @nodelay; -1 (said why) on failure. */
static int tcp_connect(int port, bool nodelay)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	inet_pton(AF_INET, SERVER_ADDR, &sa.sin_addr);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		fprintf(stderr, "\ntcp: connect to port %d: %s\n", port,
			strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (nodelay)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/* ===================================================================
 * The Linux client of the request/response tests: a loadgen transport
 * over one non-blocking TCP socket per flow. TCP is a byte stream: a
 * reply is the next MSG_SIZE bytes of its connection, however the reads
 * cut them.
 * =================================================================== */

struct lx_conn {
	int fd;
	uint32_t rx_len;		/* bytes in rx, from rx[0] */
	uint32_t tx_off, tx_len;	/* held back: tx[tx_off..tx_len) */
	uint8_t rx[RX_BUF];
	uint8_t tx[TX_PEND];
};

struct lx_client {
	unsigned nconn;
	uint32_t msg;		/* bytes a reply */
	int ep;			/* epoll of the connections when > 1 */
	unsigned nheld;		/* connections with bytes held back */
	struct lx_conn *conn;
	uint64_t reads, held;
};

/* Write what @c holds back; 0 or -errno. */
static int lx_push(struct lx_client *cl, struct lx_conn *c)
{
	while (c->tx_off < c->tx_len) {
		ssize_t w = send(c->fd, c->tx + c->tx_off, c->tx_len - c->tx_off,
				 MSG_DONTWAIT | MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? 0 : -errno;
		}
		c->tx_off += (uint32_t)w;
	}
	c->tx_off = c->tx_len = 0;
	cl->nheld--;
	return 0;
}

static int lx_send(void *ctx, uint32_t flow, const void *buf, size_t len)
{
	struct lx_client *cl = ctx;
	struct lx_conn *c = &cl->conn[flow];
	ssize_t w = 0;

	_Static_assert(TX_PEND >= LOADGEN_MAX_PAYLOAD, "a request fits");
	if (c->tx_len == 0) {
		w = send(c->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w == (ssize_t)len)
			return 0;
		if (w < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		if (w < 0)
			w = 0;
		cl->nheld++;
	} else if (c->tx_len + len > TX_PEND) {
		/* Nothing of it sent: the generator counts it lost. */
		return -EAGAIN;
	}
	/* The socket is full: keep the rest, in order, for flush(). */
	memcpy(c->tx + c->tx_len, (const uint8_t *)buf + w, len - (size_t)w);
	c->tx_len += (uint32_t)(len - (size_t)w);
	cl->held++;
	return 0;
}

static void lx_flush(void *ctx)
{
	struct lx_client *cl = ctx;

	for (unsigned i = 0; i < cl->nconn && cl->nheld > 0; i++)
		if (cl->conn[i].tx_len > 0)
			lx_push(cl, &cl->conn[i]);
}

/* Read what @flow's connection has and hand every whole reply over;
 * how many, or -errno (the server closed or failed). */
static int lx_read(struct lx_client *cl, struct loadgen *lg, uint32_t flow)
{
	struct lx_conn *c = &cl->conn[flow];
	uint32_t off = 0;
	int got = 0;
	ssize_t n;

	n = recv(c->fd, c->rx + c->rx_len, RX_BUF - c->rx_len, MSG_DONTWAIT);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	if (n == 0)
		return -ECONNRESET;
	cl->reads++;
	c->rx_len += (uint32_t)n;
	while (c->rx_len - off >= cl->msg) {
		loadgen_on_reply(lg, flow, c->rx + off, cl->msg);
		off += cl->msg;
		got++;
	}
	memmove(c->rx, c->rx + off, c->rx_len - off);
	c->rx_len -= off;
	return got;
}

static int lx_poll(void *ctx, struct loadgen *lg)
{
	struct lx_client *cl = ctx;
	struct epoll_event ev[MANY_CONNS];
	int n, total = 0;

	/* One connection: its recv is the cheapest poll. */
	if (cl->nconn == 1)
		return lx_read(cl, lg, 0);
	n = epoll_wait(cl->ep, ev, MANY_CONNS, 0);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (int i = 0; i < n; i++) {
		int got = lx_read(cl, lg, ev[i].data.u32);

		if (got < 0)
			return got;
		total += got;
	}
	return total;
}

static uint64_t lx_now(void *ctx)
{
	(void)ctx;
	return bench_now_ns();
}

static const struct loadgen_transport lx_transport = {
	.send = lx_send,
	.flush = lx_flush,
	.poll = lx_poll,
	.now_ns = lx_now,
};

/* Close the write sides and read until the server has closed too, for
 * up to @ms: requests sent after the measured window may still have
 * replies coming, and closing on unread bytes resets the connection (the
 * server would count an error). */
static void lx_client_drain(struct lx_client *cl, int ms)
{
	uint64_t end = bench_now_ns() + (uint64_t)ms * 1000000;
	unsigned open = cl->nconn;
	bool *done = calloc(cl->nconn, sizeof(*done));

	if (done == NULL)
		return;
	for (unsigned i = 0; i < cl->nconn; i++)
		shutdown(cl->conn[i].fd, SHUT_WR);
	while (open > 0 && bench_now_ns() < end) {
		for (unsigned i = 0; i < cl->nconn; i++) {
			uint8_t sink[RX_BUF];
			ssize_t n;

			if (done[i])
				continue;
			n = recv(cl->conn[i].fd, sink, sizeof(sink), MSG_DONTWAIT);
			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
				done[i] = true;
				open--;
			}
		}
		if (open > 0)
			bench_sleep_ns(100000);
	}
	free(done);
}

static void lx_client_close(struct lx_client *cl)
{
	if (cl == NULL)
		return;
	for (unsigned i = 0; cl->conn != NULL && i < cl->nconn; i++)
		if (cl->conn[i].fd >= 0)
			close(cl->conn[i].fd);
	if (cl->ep >= 0)
		close(cl->ep);
	free(cl->conn);
	free(cl);
}

/* @nconn connections to the echo server at @port. */
static struct lx_client *lx_client_open(int port, unsigned nconn,
					uint32_t msg)
{
	struct lx_client *cl = calloc(1, sizeof(*cl));

	if (cl == NULL)
		return NULL;
	cl->ep = -1;
	cl->msg = msg;
	cl->conn = calloc(nconn, sizeof(*cl->conn));
	if (cl->conn == NULL)
		goto fail_errno;
	cl->nconn = nconn;
	for (unsigned i = 0; i < nconn; i++)
		cl->conn[i].fd = -1;
	if (nconn > 1) {
		cl->ep = epoll_create1(EPOLL_CLOEXEC);
		if (cl->ep < 0)
			goto fail_errno;
	}
	for (unsigned i = 0; i < nconn; i++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = i };

		cl->conn[i].fd = tcp_connect(port, true);
		if (cl->conn[i].fd < 0)
			goto fail;	/* said why */
		if (cl->ep >= 0 &&
		    epoll_ctl(cl->ep, EPOLL_CTL_ADD, cl->conn[i].fd, &ev) != 0)
			goto fail_errno;
	}
	return cl;
fail_errno:
	fprintf(stderr, "\ntcp: client: %s\n", strerror(errno));
fail:
	lx_client_close(cl);
	return NULL;
}

/* ===================================================================
 * Linux servers: ebbrt-tcp-linux --mode M, one per system, both tests
 * ===================================================================*/

static int lxs_start(struct sut *s)
{
	char server[PATH_MAX + 32], cpu[16], line[256], how[32];
	int pfd[2];

	snprintf(server, sizeof(server), "%s/ebbrt-tcp-linux", self_dir);
	snprintf(cpu, sizeof(cpu), "%d", CPU_SERVER);
	if (pipe2(pfd, O_CLOEXEC) != 0) {
		fprintf(stderr, "\ntcp: pipe: %s\n", strerror(errno));
		return -1;
	}
	fflush(NULL);
	s->pid = fork();
	if (s->pid < 0) {
		fprintf(stderr, "\ntcp: fork: %s\n", strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (s->pid == 0) {
		/* Ports 0: the server takes free ones and says which. */
		char *argv[] = { server, "--mode", (char *)s->mode, "--addr",
				 SERVER_ADDR, "--cpu", cpu, NULL };

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(pfd[1], STDOUT_FILENO);
		execv(server, argv);
		fprintf(stderr, "tcp: cannot run %s: %s\n", server,
			strerror(errno));
		_exit(127);
	}
	close(pfd[1]);
	s->out_fd = pfd[0];
	if (!bench_read_line(s->out_fd, line, sizeof(line),
			bench_deadline(READY_TIMEOUT_S)) ||
	    sscanf(line, "ready echo %d sink %d %31s", &s->echo_port,
		   &s->sink_port, how) != 3) {
		fprintf(stderr, "\ntcp: %s server did not start\n", s->mode);
		return -1;
	}
	return 0;
}

static void lxs_stop(struct sut *s)
{
	char line[512];
	int status;

	if (s->pid > 0) {
		bool said = false;

		kill(s->pid, SIGTERM);
		/* Sink lines of connections nobody asked about come first. */
		while (s->out_fd >= 0 &&
		       bench_read_line(s->out_fd, line, sizeof(line),
				bench_deadline(LINE_TIMEOUT_S))) {
			uint64_t echoed, sunk, reads, conns, errs, waits;
			char *q = strstr(line, "path \"");

			if (sscanf(line,
				   "echoed %" SCNu64 " sunk %" SCNu64
				   " reads %" SCNu64 " conns %" SCNu64
				   " errors %" SCNu64 " waits %" SCNu64,
				   &echoed, &sunk, &reads, &conns, &errs,
				   &waits) != 6)
				continue;
			said = true;
			bench_note("%s server: %" PRIu64 " connections, %.1f MB "
				   "echoed in %" PRIu64 " reads, %.1f GB sunk, "
				   "blocked %" PRIu64 " times, %" PRIu64
				   " connection errors",
				   s->ops->key, conns, (double)echoed / 1e6,
				   reads, (double)sunk / 1e9, waits, errs);
			if (q != NULL) {
				snprintf(s->path, sizeof(s->path), "%s", q + 6);
				s->path[strcspn(s->path, "\"")] = '\0';
			}
			break;
		}
		if (!said)
			kill(s->pid, SIGKILL);
		while (waitpid(s->pid, &status, 0) < 0 && errno == EINTR)
			;
		s->pid = 0;
	}
	if (s->out_fd >= 0)
		close(s->out_fd);
	s->out_fd = -1;
}

static int lxs_rr(struct sut *s, const struct loadgen_config *cfg,
		  struct loadgen_result *out)
{
	struct lx_client *cl;
	struct loadgen *lg = NULL;
	cpu_set_t old;
	int rc = -1;

	cl = lx_client_open(s->echo_port, cfg->flows, cfg->payload);
	if (cl == NULL)
		return -1;
	lg = loadgen_create(cfg, &lx_transport, cl);
	if (lg == NULL) {
		fprintf(stderr, "\ntcp: loadgen_create: %s\n", strerror(errno));
		goto out;
	}
	if (pin_self(CPU_CLIENT, &old) != 0)
		goto out;
	rc = loadgen_run(lg);
	sched_setaffinity(0, sizeof(old), &old);
	if (rc != 0) {
		fprintf(stderr, "\ntcp: client: %s\n", strerror(-rc));
		rc = -1;
		goto out;
	}
	loadgen_result(lg, out);
	lx_client_drain(cl, 500);
	if (cl->held)
		bench_note("%s rr %u conns: the client held back %" PRIu64
			   " requests its sockets had no room for",
			   s->ops->key, cfg->flows, cl->held);
out:
	loadgen_destroy(lg);
	lx_client_close(cl);
	return rc;
}

/* One connection to the sink: write for @ns, close, and take the sink's
 * account of it into @out. */
static int lxs_stream_once(struct sut *s, uint32_t chunk, uint64_t ns,
			   struct stream_result *out)
{
	static uint8_t buf[STREAM_CHUNK];
	uint64_t t0, now, bytes = 0, rx_bytes, rx_ns;
	char line[256];
	int fd = tcp_connect(s->sink_port, false);

	if (fd < 0)
		return -1;
	memset(buf, 0x5a, sizeof(buf));
	t0 = now = bench_now_ns();
	while (now - t0 < ns) {
		ssize_t w = send(fd, buf, chunk, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			fprintf(stderr, "\ntcp: stream send: %s\n",
				strerror(errno));
			close(fd);
			return -1;
		}
		bytes += (uint64_t)w;
		now = bench_now_ns();
	}
	close(fd);
	if (!bench_read_line(s->out_fd, line, sizeof(line),
			bench_deadline(LINE_TIMEOUT_S)) ||
	    sscanf(line, "sink bytes %" SCNu64 " ns %" SCNu64, &rx_bytes,
		   &rx_ns) != 2) {
		fprintf(stderr, "\ntcp: no count from the %s sink\n", s->mode);
		return -1;
	}
	*out = (struct stream_result){ .rx_bytes = rx_bytes, .rx_ns = rx_ns,
				       .tx_bytes = bytes, .tx_ns = now - t0 };
	return 0;
}

static int lxs_stream(struct sut *s, const struct stream_config *cfg,
		      struct stream_result *out)
{
	struct stream_result warm;
	cpu_set_t old;
	int rc = 0;

	if (pin_self(CPU_CLIENT, &old) != 0)
		return -1;
	if (cfg->warmup_ns > 0)
		rc = lxs_stream_once(s, cfg->chunk, cfg->warmup_ns, &warm);
	if (rc == 0)
		rc = lxs_stream_once(s, cfg->chunk, cfg->duration_ns, out);
	sched_setaffinity(0, sizeof(old), &old);
	return rc;
}

static const struct sut_ops lx_epoll_ops = {
	.key = "epoll",
	.what = "Linux epoll server, loopback",
	.linux_baseline = true,
	.start = lxs_start,
	.rr = lxs_rr,
	.stream = lxs_stream,
	.stop = lxs_stop,
};

static const struct sut_ops lx_uring_ops = {
	.key = "io_uring",
	.what = "Linux io_uring server, loopback",
	.linux_baseline = true,
	.start = lxs_start,
	.rr = lxs_rr,
	.stream = lxs_stream,
	.stop = lxs_stop,
};

/* ===================================================================
 * ebbrt: two nodes over the virtual wire, one cluster per test
 *
 * `ebbrt run --nodes 2 --wire --cpus 0,1` of ebbrt-bench-tcp-node: node 1
 * (cpu 0) is the client, the same loadgen.c over the ebbrt TCP API, and
 * the stream's sender; node 2 (cpu 1) the echo server and the sink. The
 * net_ring wire between them is kernel bypass at both ends. Node 1 prints
 * a RESULT line per test (the sink's count reaches it by the Messenger),
 * the rr latency histogram on HIST lines, and both nodes their TCP
 * counters on STATS lines.
 * =================================================================== */

#define EB_CLUSTER "benchtcp"
#define EB_SUBNET "10.85.0.0"
#define EB_LINE_MAX 1100	/* the frontend relays lines of < 1024 */

static char eb_ebbrt[PATH_MAX + 32], eb_node[PATH_MAX + 32];

static int eb_start(struct sut *s)
{
	snprintf(eb_ebbrt, sizeof(eb_ebbrt), "%s/../frontend/ebbrt", self_dir);
	snprintf(eb_node, sizeof(eb_node), "%s/ebbrt-bench-tcp-node",
		 self_dir);
	if (access(eb_ebbrt, X_OK) != 0 || access(eb_node, X_OK) != 0) {
		fprintf(stderr, "\ntcp: no %s or %s: build the tree\n",
			eb_ebbrt, eb_node);
		return -1;
	}
	snprintf(s->path, sizeof(s->path),
		 "two nodes on a net_ring wire (MTU 1500), one core each, "
		 "both polling");
	return 0;
}

static void eb_stop(struct sut *s)
{
	(void)s;
}

/* The number after @key in @line, 0 without it. */
static double field(const char *line, const char *key)
{
	const char *p = strstr(line, key);

	return p ? strtod(p + strlen(key), NULL) : 0;
}

/* HIST lines of node 1: "n= min= max= sum=", then "b= i:count ...". */
static void eb_hist_line(const char *h, struct loadgen_hist *hist)
{
	const char *p = strstr(h, "b=");

	if (p == NULL) {
		hist->n = (uint64_t)field(h, "n=");
		hist->min = (uint64_t)field(h, "min=");
		hist->max = (uint64_t)field(h, "max=");
		hist->sum = field(h, "sum=");
		return;
	}
	for (p += 2;;) {
		unsigned i;
		uint64_t c;
		int used;

		if (sscanf(p, " %u:%" SCNu64 "%n", &i, &c, &used) != 2)
			break;
		if (i < LOADGEN_HIST_BUCKETS)
			hist->count[i] = c;
		p += used;
	}
}

/*
 * The last STATS line of a node (its counters since it started) and the
 * share of its core's time spent waiting for the cpu, from its last line
 * printed on that core: a note when the stack had to send again or could
 * not send, or when the core waited (other work on its cpu: a polling
 * node then stalls its peer for whole time slices), and always for the
 * stream (what limits it).
 */
static void eb_stats_note(const char *spec, unsigned node, const char *l,
			  double waited)
{
	uint64_t re = (uint64_t)field(l, "tcp_retransmits=");
	uint64_t to = (uint64_t)field(l, "tcp_timeouts=");
	uint64_t full = (uint64_t)field(l, "drop_tx_full=");
	char wait[64] = "";

	if (re == 0 && to == 0 && full == 0 && waited < 5 &&
	    strcmp(spec, "stream") != 0)
		return;
	if (waited >= 0)
		snprintf(wait, sizeof(wait), "; its core waited %.0f%% of "
			 "its time for the cpu", waited);
	bench_note("ebbrt %s, node %u: %.0f segments sent, %" PRIu64
		   " retransmitted (%" PRIu64 " timeouts, %.0f fast), %.0f "
		   "received out of order, %" PRIu64 " not taken by the "
		   "wire (tx full)%s",
		   spec, node, field(l, "tcp_tx="), re, to,
		   field(l, "tcp_fast_retransmits="), field(l, "tcp_ooo="),
		   full, wait);
}

/*
 * Run one test in a cluster of its own: node 1 runs `--test @spec`; the
 * RESULT line goes to *@result (NUL when none came), HIST lines into
 * @hist (may be NULL). Returns 0 with a RESULT, -1 (said why) without.
 */
static int eb_run(const char *spec, uint64_t warmup_ns, uint64_t duration_ns,
		  uint64_t timeout_ns, uint32_t chunk, char *result, size_t len,
		  struct loadgen_hist *hist)
{
	char dur[32], warm[32], tmo[32], chk[32], line[EB_LINE_MAX];
	char stats[3][EB_LINE_MAX] = { "", "", "" };
	double waited[3] = { -1, -1, -1 };
	char *argv[] = { eb_ebbrt, "run", "--nodes", "2", "--wire",
			 "--cpus", "0,1", "--name", EB_CLUSTER, "--subnet",
			 EB_SUBNET, "--", eb_node, "--test", (char *)spec,
			 "--duration-ms", dur, "--warmup-ms", warm,
			 "--timeout-ms", tmo, "--chunk", chk, NULL };
	double limit = (double)(duration_ns + 2 * warmup_ns + timeout_ns) / 1e9 +
		       20;
	int po[2], status = 0;
	pid_t pid;

	result[0] = '\0';
	snprintf(dur, sizeof(dur), "%" PRIu64, duration_ns / 1000000);
	snprintf(warm, sizeof(warm), "%" PRIu64, warmup_ns / 1000000);
	snprintf(tmo, sizeof(tmo), "%" PRIu64, timeout_ns / 1000000);
	snprintf(chk, sizeof(chk), "%u", chunk);
	if (hist != NULL)
		loadgen_hist_reset(hist);
	if (pipe2(po, O_CLOEXEC) != 0) {
		fprintf(stderr, "\ntcp: pipe: %s\n", strerror(errno));
		return -1;
	}
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		dup2(po[1], STDOUT_FILENO);
		dup2(po[1], STDERR_FILENO);
		execv(eb_ebbrt, argv);
		_exit(127);
	}
	close(po[1]);
	if (pid < 0) {
		fprintf(stderr, "\ntcp: fork: %s\n", strerror(errno));
		close(po[0]);
		return -1;
	}
	while (bench_read_line(po[0], line, sizeof(line),
			bench_deadline(limit))) {
		const char *r = strstr(line, "RESULT ");
		const char *h = strstr(line, "HIST ");
		const char *st = strstr(line, "STATS ");

		/* What went wrong, not the usual start and stop lines. */
		if (strstr(line, "ERROR") != NULL ||
		    (strstr(line, "ebbrt:") != NULL &&
		     strstr(line, "stopping the cluster") == NULL &&
		     strstr(line, "stopped") == NULL))
			bench_note("ebbrt %s: %s", spec, line);
		if (r != NULL)
			snprintf(result, len, "%s", r);
		else if (h != NULL && hist != NULL)
			eb_hist_line(h + 5, hist);
		else if (st != NULL) {
			unsigned n = (unsigned)field(st, "node=");
			double run = field(st, "run_ns=");
			double wait = field(st, "wait_ns=");

			if (n < 3) {
				snprintf(stats[n], sizeof(stats[n]), "%s", st);
				if (run + wait > 0)
					waited[n] = wait / (run + wait) * 100;
			}
		}
	}
	close(po[0]);
	for (unsigned n = 1; n < 3; n++)
		if (stats[n][0] != '\0')
			eb_stats_note(spec, n, stats[n], waited[n]);
	if (result[0] == '\0') {
		/* Silent for too long: stop it rather than wait for ever. */
		char *stop[] = { eb_ebbrt, "stop", "--name", EB_CLUSTER, NULL };
		pid_t k = fork();

		if (k == 0) {
			execv(eb_ebbrt, stop);
			_exit(127);
		}
		if (k > 0)
			waitpid(k, NULL, 0);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		/* The figures came; what failed after them is noted. */
		if (result[0] != '\0')
			bench_note("ebbrt %s: the cluster ended with status %d "
				   "after its result",
				   spec,
				   WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		else
			fprintf(stderr, "\ntcp: the ebbrt cluster failed (%s)",
				spec);
	}
	if (result[0] == '\0') {
		fprintf(stderr, "\ntcp: no RESULT from the ebbrt node (%s)\n",
			spec);
		return -1;
	}
	return 0;
}

static int eb_rr(struct sut *s, const struct loadgen_config *cfg,
		 struct loadgen_result *out)
{
	char spec[32], r[EB_LINE_MAX];

	(void)s;
	snprintf(spec, sizeof(spec), "rr:%u", cfg->flows);
	memset(out, 0, sizeof(*out));
	if (eb_run(spec, cfg->warmup_ns, cfg->duration_ns, cfg->timeout_ns,
		   STREAM_CHUNK, r, sizeof(r), &out->hist) != 0)
		return -1;
	out->mode = cfg->mode;
	out->duration_s = (double)cfg->duration_ns / 1e9;
	out->achieved_rps = field(r, "achieved=");
	out->sent = (uint64_t)field(r, "sent=");
	out->replied = (uint64_t)field(r, "replied=");
	out->lost = (uint64_t)field(r, "lost=");
	out->late = (uint64_t)field(r, "late=");
	out->bad = (uint64_t)field(r, "bad=");
	out->offered_rps = out->sent_rps = (double)out->sent / out->duration_s;
	out->p50_ns = field(r, "p50_ns=");
	out->p99_ns = field(r, "p99_ns=");
	out->p999_ns = field(r, "p999_ns=");
	out->mean_ns = field(r, "mean_ns=");
	out->max_ns = field(r, "max_ns=");
	out->min_ns = (double)out->hist.min;
	if (out->hist.n != out->replied)
		loadgen_hist_reset(&out->hist);	/* lines lost: no CDF */
	return 0;
}

static int eb_stream(struct sut *s, const struct stream_config *cfg,
		     struct stream_result *out)
{
	char r[EB_LINE_MAX];

	(void)s;
	if (eb_run("stream", cfg->warmup_ns, cfg->duration_ns, 0, cfg->chunk,
		   r, sizeof(r), NULL) != 0)
		return -1;
	out->rx_bytes = (uint64_t)field(r, "rx_bytes=");
	out->rx_ns = (uint64_t)field(r, "rx_ns=");
	out->tx_bytes = (uint64_t)field(r, "tx_bytes=");
	out->tx_ns = (uint64_t)field(r, "tx_ns=");
	return 0;
}

static const struct sut_ops ebbrt_ops = {
	.key = "ebbrt",
	.what = "ebbrt TCP: client node -> server node over a virtual wire",
	.linux_baseline = false,
	.start = eb_start,
	.rr = eb_rr,
	.stream = eb_stream,
	.stop = eb_stop,
};

/* The systems, baseline first. */
static struct sut suts[] = {
	{ .ops = &lx_epoll_ops, .mode = "epoll", .out_fd = -1 },
	{ .ops = &lx_uring_ops, .mode = "uring", .out_fd = -1 },
	{ .ops = &ebbrt_ops, .mode = "ebbrt", .out_fd = -1 },
};
#define NSUT (sizeof(suts) / sizeof(suts[0]))

/* ===================================================================
 * Tests and results
 * =================================================================== */

enum { T_RR1, T_RRN, T_STREAM, NTESTS };

struct row {
	bool ok;
	struct loadgen_result r;	/* T_RR1, T_RRN */
	struct stream_result sr;	/* T_STREAM */
	double gbps, tx_gbps;		/* T_STREAM */
	double client_cpu, server_cpu;	/* % busy during the test */
};

static struct row rows[NSUT][NTESTS];

static const char *test_name(unsigned t)
{
	static char many[32];

	switch (t) {
	case T_RR1:
		return "rr 1 conn";
	case T_RRN:
		snprintf(many, sizeof(many), "rr %u conns", MANY_CONNS);
		return many;
	default:
		return "stream";
	}
}

/* The first selected system: the baseline of the ratio column. */
static int base_sut(void)
{
	for (unsigned si = 0; si < NSUT; si++)
		if (suts[si].selected)
			return (int)si;
	return -1;
}

/* Busy time of one cpu from /proc/stat (ns); @irq gets the part spent in
 * interrupts and softirqs (loopback's packet processing), which no
 * process is charged with. */
static double cpu_busy_ns(int which, double *irq)
{
	struct bench_cpu_stat st;

	if (bench_cpu_stat(&which, 1, &st) != 1)
		return -1;
	*irq = st.irq;
	return st.busy;
}

static double steal_ns(void)
{
	static const int cpus[] = { CPU_CLIENT, CPU_SERVER };
	struct bench_cpu_stat st;

	bench_cpu_stat(cpus, 2, &st);
	return st.steal;
}

/* utime + stime of @pid, ns; of this process for 0, with its children
 * waited for (an ebbrt cluster: the frontend and, through it, the
 * nodes). */
static double proc_cpu_ns(pid_t pid)
{
	double tick = 1e9 / (double)sysconf(_SC_CLK_TCK);
	unsigned long long ut = 0, st = 0, cut = 0, cst = 0;
	char path[64], buf[1024], *p;
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid ? (int)pid : getpid());
	f = fopen(path, "r");
	if (f == NULL)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* Fields after the command name: utime is the 14th. */
	p = strrchr(buf, ')');
	if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u "
				       "%*u %*u %llu %llu %llu %llu",
				&ut, &st, &cut, &cst) != 4)
		return 0;
	if (pid != 0)
		cut = cst = 0;
	return (double)(ut + st + cut + cst) * tick;
}

static int run_test(unsigned si, unsigned t)
{
	struct sut *s = &suts[si];
	struct row *w = &rows[si][t];
	uint64_t t0 = bench_now_ns();
	double ci0 = 0, si0 = 0, ci1 = 0, si1 = 0;
	double c0 = cpu_busy_ns(CPU_CLIENT, &ci0);
	double s0 = cpu_busy_ns(CPU_SERVER, &si0);
	double st0 = steal_ns(), self0 = proc_cpu_ns(0);
	double srv0 = s->pid > 0 ? proc_cpu_ns(s->pid) : 0;
	double wall, other, steal;
	int rc;

	if (t == T_STREAM) {
		struct stream_config cfg = {
			.chunk = STREAM_CHUNK,
			.warmup_ns = (uint64_t)(opt.warmup_s * 1e9),
			.duration_ns = (uint64_t)(opt.duration_s * 1e9),
		};

		rc = s->ops->stream(s, &cfg, &w->sr);
		if (rc == 0 && (w->sr.rx_ns == 0 || w->sr.tx_ns == 0)) {
			fprintf(stderr, "\ntcp: %s stream: no time measured",
				s->ops->key);
			rc = -1;
		}
		if (rc == 0) {
			w->gbps = (double)w->sr.rx_bytes * 8 / (double)w->sr.rx_ns;
			w->tx_gbps =
				(double)w->sr.tx_bytes * 8 / (double)w->sr.tx_ns;
		}
	} else {
		struct loadgen_config cfg;

		loadgen_config_default(&cfg);
		cfg.mode = LOADGEN_CLOSED;
		cfg.flows = t == T_RR1 ? 1 : MANY_CONNS;
		cfg.window = 1;
		cfg.payload = MSG_SIZE;
		cfg.warmup_ns = (uint64_t)(opt.warmup_s * 1e9);
		cfg.duration_ns = (uint64_t)(opt.duration_s * 1e9);
		cfg.timeout_ns = RR_TIMEOUT_NS;
		rc = s->ops->rr(s, &cfg, &w->r);
	}
	wall = (double)(bench_now_ns() - t0);
	if (rc != 0)
		return rc;
	w->client_cpu = (cpu_busy_ns(CPU_CLIENT, &ci1) - c0) / wall * 100;
	w->server_cpu = (cpu_busy_ns(CPU_SERVER, &si1) - s0) / wall * 100;
	w->ok = true;
	/* Busy time no process of ours accounts for: someone else's
	 * (ticks: only a share well above their resolution tells). */
	other = (w->client_cpu + w->server_cpu) / 100 * wall -
		(ci1 - ci0) - (si1 - si0) - (proc_cpu_ns(0) - self0) -
		(s->pid > 0 ? proc_cpu_ns(s->pid) - srv0 : 0);
	other = other / (2 * wall) * 100;
	steal = (steal_ns() - st0) / (2 * wall) * 100;
	if (other >= 10 || steal >= 5)
		bench_note("%s %s: other work used ~%.0f%% and the hypervisor "
			   "stole %.0f%% of cpus %d,%d: figures skewed",
			   s->ops->key, test_name(t), other > 0 ? other : 0,
			   steal, CPU_CLIENT, CPU_SERVER);
	if (t != T_STREAM && (w->r.lost || w->r.late || w->r.bad))
		bench_note("%s %s: %" PRIu64 " of %" PRIu64 " requests lost "
			   "(no reply within %.0f ms), %" PRIu64 " late, %" PRIu64
			   " bad replies",
			   s->ops->key, test_name(t), w->r.lost, w->r.sent,
			   RR_TIMEOUT_NS / 1e6, w->r.late, w->r.bad);
	return 0;
}

/* ===================================================================
 * Output
 * =================================================================== */

/* The figure a test is compared by, and whether more is better. */
static double key_figure(const struct row *w, unsigned t, bool *more)
{
	*more = t != T_RR1;
	switch (t) {
	case T_RR1:
		return w->r.p50_ns;
	case T_RRN:
		return w->r.achieved_rps;
	default:
		return w->gbps;
	}
}

static const char *key_stat(unsigned t)
{
	return t == T_RR1 ? "p50" : t == T_RRN ? "rate" : "Gbit/s";
}

/*
 * The best Linux figure of test @t (lowest p50, highest rate or Gbit/s),
 * into *@v; the system's index, or -1 when no Linux system ran it.
 */
static int best_linux(unsigned t, double *v)
{
	int best = -1;

	for (unsigned si = 0; si < NSUT; si++) {
		const struct row *w = &rows[si][t];
		bool more;
		double x;

		if (!suts[si].selected || !suts[si].ops->linux_baseline ||
		    !w->ok)
			continue;
		x = key_figure(w, t, &more);
		if (best < 0 || (more ? x > *v : x < *v)) {
			best = (int)si;
			*v = x;
		}
	}
	return best;
}

/* The targets: a system that is not a Linux baseline against the
 * best Linux figure of this run; without one, what it would need. */
static void print_targets(void)
{
	double rtt = 0, gbps = 0;
	int br = best_linux(T_RR1, &rtt), bs = best_linux(T_STREAM, &gbps);
	bool any = false;

	printf("\ntargets (against the best Linux figure of this run):\n");
	for (unsigned si = 0; si < NSUT; si++) {
		const struct row *w = rows[si];

		if (!suts[si].selected || suts[si].ops->linux_baseline)
			continue;
		any = true;
		if (br >= 0 && w[T_RR1].ok)
			printf("  %s 1-conn round trip p50: %.1f us = %.2fx %s's "
			       "(target <= %.2fx): %s\n",
			       suts[si].ops->key, w[T_RR1].r.p50_ns / 1e3,
			       w[T_RR1].r.p50_ns / rtt, suts[br].ops->key,
			       TARGET_RTT_RATIO,
			       w[T_RR1].r.p50_ns / rtt <= TARGET_RTT_RATIO
				       ? "ok"
				       : "miss");
		if (bs >= 0 && w[T_STREAM].ok)
			printf("  %s stream: %.2f Gbit/s = %.2fx %s's (target "
			       ">= %.2fx): %s\n",
			       suts[si].ops->key, w[T_STREAM].gbps,
			       w[T_STREAM].gbps / gbps, suts[bs].ops->key,
			       TARGET_STREAM_RATIO,
			       w[T_STREAM].gbps / gbps >= TARGET_STREAM_RATIO
				       ? "ok"
				       : "miss");
	}
	if (any)
		return;
	if (br >= 0)
		printf("  1-conn round trip p50 <= %.2fx %s's %.1f us: at most "
		       "%.1f us (no ebbrt system in this run)\n",
		       TARGET_RTT_RATIO, suts[br].ops->key, rtt / 1e3,
		       rtt * TARGET_RTT_RATIO / 1e3);
	if (bs >= 0)
		printf("  stream >= %.2fx %s's: at least %.2f Gbit/s (no ebbrt "
		       "system in this run)\n",
		       TARGET_STREAM_RATIO, suts[bs].ops->key,
		       gbps * TARGET_STREAM_RATIO);
}

static void print_table(void)
{
	int b = base_sut();

	printf("\n%-9s %-12s %9s %8s %8s %8s %8s %8s %8s %5s %5s %12s\n",
	       "system", "test", "rate k/s", "p50 us", "p99 us", "p99.9",
	       "mean us", "max us", "Gbit/s", "cli%", "srv%", "vs base");
	for (unsigned si = 0; si < NSUT; si++) {
		if (!suts[si].selected)
			continue;
		for (unsigned t = 0; t < NTESTS; t++) {
			const struct row *w = &rows[si][t];
			const struct row *bw = b >= 0 ? &rows[b][t] : NULL;
			char vs[32] = "-";
			bool more;

			if (!w->ok) {
				printf("%-9s %-12s %9s\n", suts[si].ops->key,
				       test_name(t), "failed");
				continue;
			}
			if (bw != NULL && bw->ok && (int)si != b &&
			    key_figure(bw, t, &more) > 0)
				snprintf(vs, sizeof(vs), "%s %.2fx",
					 key_stat(t),
					 key_figure(w, t, &more) /
						 key_figure(bw, t, &more));
			if (t == T_STREAM)
				printf("%-9s %-12s %9s %8s %8s %8s %8s %8s "
				       "%8.2f %5.0f %5.0f %12s\n",
				       suts[si].ops->key, test_name(t), "-",
				       "-", "-", "-", "-", "-", w->gbps,
				       w->client_cpu, w->server_cpu, vs);
			else
				printf("%-9s %-12s %9.1f %8.1f %8.1f %8.1f "
				       "%8.1f %8.0f %8s %5.0f %5.0f %12s\n",
				       suts[si].ops->key, test_name(t),
				       w->r.achieved_rps / 1e3,
				       w->r.p50_ns / 1e3, w->r.p99_ns / 1e3,
				       w->r.p999_ns / 1e3, w->r.mean_ns / 1e3,
				       w->r.max_ns / 1e3, "-", w->client_cpu,
				       w->server_cpu, vs);
		}
	}
	printf("\n%u-byte requests over TCP on %s (ebbrt: node to node on a "
	       "virtual wire),\nclient on cpu %d, server on cpu %d. rr N "
	       "conn(s): closed loop, one request in\nflight per connection; "
	       "latency from send to the last byte of the reply.\nstream: one "
	       "connection, %u KiB writes; Gbit/s as the receiver counted "
	       "(bytes /\ntime between its first and last read). cli%%/srv%%: "
	       "busy time of the\nclient/server cpu (ebbrt: its cluster's start "
	       "and stop included). vs base:\nagainst %s (p50 below 1: "
	       "faster).\n",
	       MSG_SIZE, SERVER_ADDR, CPU_CLIENT, CPU_SERVER,
	       STREAM_CHUNK >> 10, b >= 0 ? suts[b].ops->key : "-");
	for (unsigned si = 0; si < NSUT; si++)
		if (suts[si].selected)
			printf("%-9s %s%s%s\n", suts[si].ops->key,
			       suts[si].ops->what, suts[si].path[0] ? ": " : "",
			       suts[si].path);
	for (unsigned si = 0; si < NSUT; si++) {
		const struct row *w = &rows[si][T_STREAM];

		if (suts[si].selected && w->ok)
			bench_note("%s stream: the sender wrote %.2f Gbit/s, the "
				   "receiver read %.2f Gbit/s",
				   suts[si].ops->key, w->tx_gbps, w->gbps);
	}
	print_targets();
	bench_print_notes();
}

/* One JSON object per (system, test, statistic), micro's shape; the
 * baseline is the first selected system's figure. A system with targets
 * gets two more objects against the best Linux figures. */
static int write_json(const char *path)
{
	FILE *f = bench_json_open(path, "tcp");
	char metric[96], base_name[64];
	bool first = true;
	int b = base_sut();

	if (f == NULL)
		return -1;
	snprintf(base_name, sizeof(base_name), "%s server, same client and test",
		 b >= 0 ? suts[b].ops->key : "-");
	for (unsigned si = 0; si < NSUT; si++) {
		if (!suts[si].selected)
			continue;
		for (unsigned t = 0; t < NTESTS; t++) {
			const struct row *w = &rows[si][t];
			const struct row *bw = &rows[b][t];
			struct stat_of {
				const char *stat, *unit;
				double v, base;
			} m[12];
			unsigned nm = 0;

#define PUT(s_, u_, field_, scale_)                                         \
	m[nm++] = (struct stat_of){ s_, u_, (double)w->field_ / (scale_),   \
				    (double)bw->field_ / (scale_) }
			if (!w->ok)
				continue;
			if (t == T_STREAM) {
				PUT("rx", "Gbit/s", gbps, 1);
				PUT("tx", "Gbit/s", tx_gbps, 1);
			} else {
				PUT("rate", "kreq/s", r.achieved_rps, 1e3);
				PUT("p50", "us", r.p50_ns, 1e3);
				PUT("p99", "us", r.p99_ns, 1e3);
				PUT("p99.9", "us", r.p999_ns, 1e3);
				PUT("mean", "us", r.mean_ns, 1e3);
				PUT("max", "us", r.max_ns, 1e3);
				PUT("lost", "requests", r.lost, 1);
			}
			PUT("client cpu", "%", client_cpu, 1);
			PUT("server cpu", "%", server_cpu, 1);
#undef PUT
			for (unsigned k = 0; k < nm; k++) {
				struct bench_json_row row = {
					.metric = metric,
					.value = m[k].v,
					.unit = m[k].unit,
					.baseline = m[k].base,
					.no_baseline = !bw->ok,
					.baseline_name = base_name,
					.stat = m[k].stat,
				};

				snprintf(metric, sizeof(metric), "tcp %s %s %s",
					 suts[si].ops->key, test_name(t),
					 m[k].stat);
				bench_json_put(f, &row, &first);
			}
		}
	}
	for (unsigned si = 0; si < NSUT; si++) {
		const struct row *w = rows[si];
		double rtt = 0, gbps = 0;
		int br = best_linux(T_RR1, &rtt), bs = best_linux(T_STREAM, &gbps);
		char target[32], bname[64];

		if (!suts[si].selected || suts[si].ops->linux_baseline)
			continue;
		if (br >= 0 && w[T_RR1].ok) {
			struct bench_json_row row = {
				.metric = metric, .value = w[T_RR1].r.p50_ns / 1e3,
				.unit = "us", .baseline = rtt / 1e3,
				.baseline_name = bname, .stat = "p50",
				.target = target,
				.ok = w[T_RR1].r.p50_ns / rtt <= TARGET_RTT_RATIO,
			};

			snprintf(metric, sizeof(metric),
				 "tcp %s rr 1 conn p50 vs best Linux",
				 suts[si].ops->key);
			snprintf(bname, sizeof(bname), "%s rr 1 conn p50",
				 suts[br].ops->key);
			snprintf(target, sizeof(target), "<=%.2fx",
				 TARGET_RTT_RATIO);
			bench_json_put(f, &row, &first);
		}
		if (bs >= 0 && w[T_STREAM].ok) {
			struct bench_json_row row = {
				.metric = metric, .value = w[T_STREAM].gbps,
				.unit = "Gbit/s", .baseline = gbps,
				.baseline_name = bname, .stat = "rx",
				.target = target,
				.ok = w[T_STREAM].gbps / gbps >= TARGET_STREAM_RATIO,
			};

			snprintf(metric, sizeof(metric),
				 "tcp %s stream rx vs best Linux",
				 suts[si].ops->key);
			snprintf(bname, sizeof(bname), "%s stream rx",
				 suts[bs].ops->key);
			snprintf(target, sizeof(target), ">=%.2fx",
				 TARGET_STREAM_RATIO);
			bench_json_put(f, &row, &first);
		}
	}
	return bench_json_close(f, path, "tcp") == 0 ? 0 : -1;
}

/* The quantiles of the latency CDF the plot draws. */
static double cdf_q(unsigned i)
{
	static const double tail[] = { 0.995, 0.999, 0.9995, 0.9999 };

	return i < 99 ? (double)(i + 1) / 100 : tail[i - 99];
}
#define NCDF (99 + 4)

/* tcp.dat (latency CDF blocks, then one block of bars), tcp.gp and its
 * image under --out: the round-trip CDFs of the two rr tests, the rate
 * of 64 connections and the stream's Gbit/s, per system. */
static int write_plot(void)
{
	char path[PATH_MAX], cmd[PATH_MAX + 64];
	unsigned block = 0, ncdf = 0;
	int cdf_block[NSUT][2];
	const char *term;
	FILE *f;

	snprintf(path, sizeof(path), "%s/tcp.dat", opt.out);
	f = fopen(path, "w");
	if (f == NULL) {
		fprintf(stderr, "tcp: %s: %s\n", path, strerror(errno));
		return -1;
	}
	fprintf(f, "# ebbrt-bench-tcp: %u-byte request/response latency CDFs, "
		   "then rates and stream\n", MSG_SIZE);
	for (unsigned si = 0; si < NSUT; si++) {
		for (unsigned k = 0; k < 2; k++) {
			const struct row *w = &rows[si][k ? T_RRN : T_RR1];

			cdf_block[si][k] = -1;
			if (!suts[si].selected || !w->ok || w->r.hist.n == 0)
				continue;
			fprintf(f, "%s# %s %s\n# latency_us fraction\n",
				block ? "\n\n" : "", suts[si].ops->key,
				test_name(k ? T_RRN : T_RR1));
			for (unsigned i = 0; i < NCDF; i++)
				fprintf(f, "%.3f %.4f\n",
					loadgen_hist_quantile(&w->r.hist,
							      cdf_q(i)) / 1e3,
					cdf_q(i));
			cdf_block[si][k] = (int)block++;
			ncdf++;
		}
	}
	fprintf(f, "%s# bars\n# system rr%u_kreqs stream_gbps\n",
		block ? "\n\n" : "", MANY_CONNS);
	for (unsigned si = 0; si < NSUT; si++) {
		const struct row *w = rows[si];

		if (suts[si].selected)
			fprintf(f, "%s %.3f %.3f\n", suts[si].ops->key,
				w[T_RRN].ok ? w[T_RRN].r.achieved_rps / 1e3 : 0,
				w[T_STREAM].ok ? w[T_STREAM].gbps : 0);
	}
	fclose(f);

	term = bench_plot_terminal();
	snprintf(path, sizeof(path), "%s/tcp.gp", opt.out);
	f = fopen(path, "w");
	if (f == NULL) {
		fprintf(stderr, "tcp: %s: %s\n", path, strerror(errno));
		return -1;
	}
	fprintf(f, "# ebbrt-bench-tcp: run with `gnuplot tcp.gp` in this "
		   "folder\n");
	if (term == NULL || strcmp(term, "svg") == 0)
		fprintf(f, "set terminal svg size 1400,500 dynamic\n"
			   "set output 'tcp.svg'\n");
	else
		fprintf(f, "set terminal %s size 1400,500\n"
			   "set output 'tcp.png'\n", term);
	fprintf(f, "set termoption noenhanced\n"
		   "set multiplot layout 1,3 title '%u-byte TCP "
		   "request/response and stream (Linux over loopback, ebbrt "
		   "over a virtual wire; client cpu %d, server cpu %d)'\n"
		   "set grid\n",
		MSG_SIZE, CPU_CLIENT, CPU_SERVER);
	/* Panel 1: latency CDFs. */
	fprintf(f, "set title 'round-trip latency (closed loop)'\n"
		   "set xlabel 'latency (us)'\n"
		   "set ylabel 'fraction of requests'\n"
		   "set logscale x\n"
		   "set yrange [0:1]\n"
		   "set key below\n");
	if (ncdf == 0) {
		fprintf(f, "set label 1 'no latency data' at graph 0.3,0.5\n"
			   "plot NaN notitle\nunset label 1\n");
	} else {
		bool firstp = true;

		fprintf(f, "plot ");
		for (unsigned si = 0; si < NSUT; si++)
			for (unsigned k = 0; k < 2; k++) {
				if (cdf_block[si][k] < 0)
					continue;
				fprintf(f,
					"%s'tcp.dat' index %d using 1:2 with "
					"lines lw 2 lc %u dt %u title '%s %s'",
					firstp ? "" : ", \\\n     ",
					cdf_block[si][k], si + 1, k ? 2 : 1,
					suts[si].ops->key,
					test_name(k ? T_RRN : T_RR1));
				firstp = false;
			}
		fprintf(f, "\n");
	}
	/* Panels 2 and 3: bars. */
	fprintf(f, "unset logscale x\n"
		   "set xlabel ''\n"
		   "set yrange [0:*]\n"
		   "set style fill solid 0.6\n"
		   "set boxwidth 0.6\n"
		   "set xrange [-0.5:*]\n"
		   "set title 'rate, %u connections'\n"
		   "set ylabel 'k requests/s'\n"
		   "plot 'tcp.dat' index %u using 0:2:($0+1):xtic(1) with "
		   "boxes lc variable notitle\n"
		   "set title 'stream, one connection (at the receiver)'\n"
		   "set ylabel 'Gbit/s'\n"
		   "plot 'tcp.dat' index %u using 0:3:($0+1):xtic(1) with "
		   "boxes lc variable notitle\n"
		   "unset multiplot\n",
		MANY_CONNS, block, block);
	fclose(f);
	if (term == NULL) {
		bench_note("gnuplot not found: wrote %s/tcp.gp and .dat, no "
			   "image (apt-get install gnuplot-nox)", opt.out);
		return 0;
	}
	snprintf(cmd, sizeof(cmd), "cd '%s' && gnuplot tcp.gp", opt.out);
	if (system(cmd) != 0) {
		fprintf(stderr, "tcp: gnuplot failed on %s\n", path);
		return -1;
	}
	printf("plot: %s/tcp.%s (gnuplot script tcp.gp)\n", opt.out,
	       strcmp(term, "svg") == 0 ? "svg" : "png");
	return 0;
}

/* ===================================================================
 * main
 * =================================================================== */

static void usage(FILE *to)
{
	fprintf(to,
		"usage: ebbrt-bench-tcp [--quick] [--duration S] [--sut LIST] "
		"[--out DIR]\n"
		"                       [--json PATH] [--no-plot]\n"
		"TCP, one client (cpu %d) against each server (cpu %d; Linux "
		"over loopback,\nebbrt between two nodes on a virtual wire, "
		"as root): %u-byte\nrequest/response on 1 connection (round "
		"trip) and on %u (rate), closed loop,\none request in flight "
		"per connection; and a one-connection stream of %u KiB\nwrites "
		"(Gbit/s at the receiver).\n"
		"  --quick        0.5 s per test after 0.2 s of warm-up: a "
		"smoke run (< 10 s)\n"
		"  --duration S   seconds measured per test (default 5; "
		"warm-up 1 s)\n"
		"  --sut LIST     systems, comma-separated, first is the "
		"baseline:",
		CPU_CLIENT, CPU_SERVER, MSG_SIZE, MANY_CONNS,
		STREAM_CHUNK >> 10);
	for (unsigned si = 0; si < NSUT; si++)
		fprintf(to, "%s%s", si ? "," : " ", suts[si].ops->key);
	fprintf(to,
		"\n                 (default all)\n"
		"  --out DIR      results: tcp.json, the plot tcp.png, its "
		"script and data\n"
		"                 (default results)\n"
		"  --json PATH    the JSON elsewhere (default DIR/tcp.json)\n"
		"  --no-plot      no plot\n"
		"  --help         this text\n"
		"See docs/bench.md.\n");
}

/* --sut: select and order the systems named in @list. */
static void select_suts(const char *list)
{
	struct sut picked[NSUT];
	unsigned n = 0;
	char *copy = strdup(list), *save = NULL;

	if (copy == NULL)
		exit(1);
	for (char *w = strtok_r(copy, ",", &save); w != NULL;
	     w = strtok_r(NULL, ",", &save)) {
		unsigned si;

		if (strcmp(w, "uring") == 0)
			w = "io_uring";
		for (si = 0; si < NSUT && strcmp(suts[si].ops->key, w) != 0;
		     si++)
			;
		if (si == NSUT) {
			fprintf(stderr, "tcp: unknown system '%s'\n", w);
			usage(stderr);
			exit(2);
		}
		for (unsigned k = 0; k < n; k++)
			if (picked[k].ops == suts[si].ops) {
				fprintf(stderr, "tcp: '%s' twice\n", w);
				exit(2);
			}
		picked[n] = suts[si];
		picked[n++].selected = true;
	}
	free(copy);
	if (n == 0) {
		fprintf(stderr, "tcp: no system in '%s'\n", list);
		exit(2);
	}
	/* The picked ones first, in their order; the rest unselected. */
	for (unsigned si = 0, k = n; si < NSUT; si++) {
		bool in = false;

		for (unsigned j = 0; j < n; j++)
			in |= picked[j].ops == suts[si].ops;
		if (!in)
			picked[k++] = suts[si];
	}
	memcpy(suts, picked, sizeof(suts));
}

static void parse_args(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "quick", no_argument, NULL, 'q' },
		{ "duration", required_argument, NULL, 'd' },
		{ "sut", required_argument, NULL, 's' },
		{ "out", required_argument, NULL, 'o' },
		{ "json", required_argument, NULL, 'j' },
		{ "no-plot", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool dur_set = false;
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (c) {
		case 'q':
			opt.quick = true;
			break;
		case 'd':
			opt.duration_s = strtod(optarg, &end);
			if (*end != '\0' || !(opt.duration_s >= 0.05) ||
			    opt.duration_s > 3600) {
				fprintf(stderr, "tcp: bad duration '%s' (0.05 "
						"to 3600 s)\n", optarg);
				exit(2);
			}
			dur_set = true;
			break;
		case 's':
			opt.suts = optarg;
			break;
		case 'o':
			opt.out = optarg;
			break;
		case 'j':
			opt.json = optarg;
			break;
		case 'n':
			opt.no_plot = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (optind < argc) {
		fprintf(stderr, "tcp: unexpected argument '%s'\n",
			argv[optind]);
		usage(stderr);
		exit(2);
	}
	if (opt.suts != NULL)
		select_suts(opt.suts);
	else
		for (unsigned si = 0; si < NSUT; si++)
			suts[si].selected = true;
	if (!dur_set)
		opt.duration_s = opt.quick ? 0.5 : 5.0;
	opt.warmup_s = opt.quick ? 0.2 : 1.0;
	if (opt.warmup_s > opt.duration_s)
		opt.warmup_s = opt.duration_s;
	if (opt.json == NULL) {
		snprintf(json_path, sizeof(json_path), "%s/tcp.json", opt.out);
		opt.json = json_path;
	}
}

int main(int argc, char **argv)
{
	unsigned nsteps = 0, step = 0;
	int failed = 0, rc;

	parse_args(argc, argv);
	for (unsigned si = 0; si < NSUT; si++)
		nsteps += suts[si].selected ? NTESTS : 0;
	rc = bench_self_dir(self_dir, sizeof(self_dir));
	if (rc != 0) {
		fprintf(stderr, "tcp: /proc/self/exe: %s\n", strerror(-rc));
		return 1;
	}
	if (mkdir(opt.out, 0755) != 0 && errno != EEXIST) {
		fprintf(stderr, "tcp: %s: %s\n", opt.out, strerror(errno));
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	printf("ebbrt TCP benchmark %s: client cpu %d, server cpu %d, %s run, "
	       "%.1f s per test after %.1f s warm-up, %u-byte requests, load "
	       "average %.2f\n",
	       EBBRT_VERSION, CPU_CLIENT, CPU_SERVER,
	       opt.quick ? "quick" : "full", opt.duration_s, opt.warmup_s,
	       MSG_SIZE, bench_loadavg());
	fflush(stdout);

	for (unsigned si = 0; si < NSUT; si++) {
		struct sut *s = &suts[si];

		if (!s->selected)
			continue;
		if (s->ops->start(s) != 0) {
			fprintf(stderr, "tcp: %s did not start\n", s->ops->key);
			s->ops->stop(s);
			failed++;
			step += NTESTS;
			continue;
		}
		for (unsigned t = 0; t < NTESTS; t++) {
			uint64_t t0 = bench_now_ns();
			const struct row *w = &rows[si][t];

			fprintf(stderr, "[%u/%u] %s: %s...", ++step, nsteps,
				s->ops->key, test_name(t));
			if (run_test(si, t) != 0) {
				fprintf(stderr, " FAILED\n");
				failed++;
				continue;
			}
			if (t == T_STREAM)
				fprintf(stderr, " %.2f Gbit/s", w->gbps);
			else
				fprintf(stderr, " %.1f k/s, p50 %.1f us, p99 "
						"%.1f us",
					w->r.achieved_rps / 1e3,
					w->r.p50_ns / 1e3, w->r.p99_ns / 1e3);
			fprintf(stderr, ", %.1f s\n",
				(double)(bench_now_ns() - t0) / 1e9);
		}
		s->ops->stop(s);
	}
	if (!opt.no_plot)
		write_plot();
	print_table();
	if (write_json(opt.json) == 0)
		printf("results: %s\n", opt.json);
	else
		failed++;
	if (failed)
		fprintf(stderr, "tcp: %d step(s) failed\n", failed);
	return failed ? 1 : 0;
}
