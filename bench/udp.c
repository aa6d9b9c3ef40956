/* SPDX-License-Identifier: BSD-3-Clause */
/* UDP echo benchmark: round-trip latency, peak request rate and latency
 * against offered load of each system under test (Linux epoll and
 * io_uring servers for now), one load generator for all, with a table,
 * JSON and a gnuplot plot. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ebbrt/ebbrt.h>

#include "common.h"
#include "loadgen.h"

/*
 * The load generator runs in this process on CPU_CLIENT; each server on
 * CPU_SERVER. Every system under test (struct sut) answers the same
 * tests from the same generator; the first system is the baseline the
 * others are compared with.
 */
#define CPU_CLIENT 0
#define CPU_SERVER 1
#define SERVER_ADDR "127.0.0.1"

#define PEAK_FLOWS 32
#define PEAK_WINDOW 8
#define SWEEP_FLOWS 32
#define NSWEEP 8
static const double sweep_frac[NSWEEP] = { 0.10, 0.25, 0.40, 0.50,
					   0.70, 0.80, 0.90, 1.00 };

#define BATCH 32		/* recvmmsg/sendmmsg of the Linux client */
#define RBUF_SIZE 2048
#define SOCK_BUF (4 << 20)
#define MAX_CLIENT_SOCKS 4
#define READY_TIMEOUT_S 5.0
#define STOP_TIMEOUT_S 5.0

/* --- options --- */

static struct {
	bool quick;
	bool no_plot;
	bool spin;
	const char *json;
	const char *out;
	double duration_s;
	double warmup_s;
	uint32_t payload;
} opt = { .out = "results", .payload = 64 };

static char self_dir[PATH_MAX];

/* --- small helpers --- */

static int pin_self(int cpu, cpu_set_t *old)
{
	int rc = bench_pin_self(cpu, old);

	if (rc != 0) {
		fprintf(stderr, "\nudp: cannot pin to cpu %d: %s\n", cpu,
			strerror(-rc));
		return -1;
	}
	return 0;
}

/* Busy time of one cpu from /proc/stat (ns), to tell how loaded the
 * client and server cpus were during a test; @irq (may be NULL) gets the
 * part spent in interrupts and softirqs, which no process is charged
 * with (the loopback's packet processing). */
static double cpu_busy_ns(int which, double *irq)
{
	struct bench_cpu_stat st;

	if (bench_cpu_stat(&which, 1, &st) != 1)
		return -1;
	if (irq)
		*irq = st.irq;
	return st.busy;
}

/* Steal time of both cpus (ns), and the cpu time of this process and of
 * @pid (0: none) from their utime+stime: with the busy time of the cpus
 * they tell whether anything else ran during a test. */
static double steal_ns(void)
{
	static const int cpus[] = { CPU_CLIENT, CPU_SERVER };
	struct bench_cpu_stat st;

	bench_cpu_stat(cpus, 2, &st);
	return st.steal;
}

static double proc_cpu_ns(pid_t pid)
{
	double tick = 1e9 / (double)sysconf(_SC_CLK_TCK);
	unsigned long long ut = 0, st = 0;
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
	/* Fields after the command name: state is the 3rd, utime the 14th. */
	p = strrchr(buf, ')');
	if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u "
				       "%*u %*u %llu %llu",
				&ut, &st) != 2)
		return 0;
	return (double)(ut + st) * tick;
}

/* A UDP port free right now on the server address. */
static int free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), port = -1;

	inet_pton(AF_INET, SERVER_ADDR, &sa.sin_addr);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		port = ntohs(sa.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

/* ===================================================================
 * The Linux client transport: connected UDP sockets, sendmmsg batches
 * queued by send() and pushed by flush(), recvmmsg batches in poll().
 * =================================================================== */

struct lx_sock {
	int fd;
	unsigned nq;
	struct mmsghdr q[BATCH];
	struct iovec qiov[BATCH];
	char qbuf[BATCH][LOADGEN_MAX_PAYLOAD];
};

struct lx_client {
	unsigned nsock;
	struct lx_sock sock[MAX_CLIENT_SOCKS];
	struct mmsghdr rmsg[BATCH];
	struct iovec riov[BATCH];
	char rbuf[BATCH][RBUF_SIZE];
	uint64_t tx_drops, rx_calls, rx_msgs, tx_calls;
};

static void lx_flush_sock(struct lx_client *c, struct lx_sock *s)
{
	unsigned done = 0;

	while (done < s->nq) {
		int k = sendmmsg(s->fd, s->q + done, s->nq - done, 0);

		c->tx_calls++;
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			/* Socket full: the requests are lost, and the
			 * generator counts them when they time out. */
			c->tx_drops += s->nq - done;
			break;
		}
		done += (unsigned)k;
	}
	s->nq = 0;
}

static int lx_send(void *ctx, uint32_t flow, const void *buf, size_t len)
{
	struct lx_client *c = ctx;
	struct lx_sock *s = &c->sock[flow % c->nsock];

	memcpy(s->qbuf[s->nq], buf, len);
	s->qiov[s->nq].iov_len = len;
	if (++s->nq == BATCH)
		lx_flush_sock(c, s);
	return 0;
}

static void lx_flush(void *ctx)
{
	struct lx_client *c = ctx;

	for (unsigned i = 0; i < c->nsock; i++)
		if (c->sock[i].nq)
			lx_flush_sock(c, &c->sock[i]);
}

static int lx_poll(void *ctx, struct loadgen *lg)
{
	struct lx_client *c = ctx;
	int total = 0;

	for (unsigned i = 0; i < c->nsock; i++) {
		int got;

		for (unsigned k = 0; k < BATCH; k++)
			c->rmsg[k].msg_hdr.msg_iov[0].iov_len = RBUF_SIZE;
		got = recvmmsg(c->sock[i].fd, c->rmsg, BATCH, MSG_DONTWAIT,
			       NULL);
		c->rx_calls++;
		if (got < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			/* Loopback says ECONNREFUSED when the server is
			 * gone: the requests time out. */
			if (errno == ECONNREFUSED)
				continue;
			return -errno;
		}
		c->rx_msgs += (uint64_t)got;
		for (int k = 0; k < got; k++)
			loadgen_on_reply(lg, LOADGEN_FLOW_ANY, c->rbuf[k],
					 c->rmsg[k].msg_len);
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

static void lx_client_close(struct lx_client *c)
{
	if (c == NULL)
		return;
	for (unsigned i = 0; i < c->nsock; i++)
		if (c->sock[i].fd >= 0)
			close(c->sock[i].fd);
	free(c);
}

/* @nsock sockets connected to the server at @port. */
static struct lx_client *lx_client_open(int port, unsigned nsock)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons((uint16_t)port) };
	struct lx_client *c = calloc(1, sizeof(*c));
	int bytes = SOCK_BUF;

	if (c == NULL)
		return NULL;
	inet_pton(AF_INET, SERVER_ADDR, &sa.sin_addr);
	c->nsock = nsock;
	for (unsigned i = 0; i < nsock; i++)
		c->sock[i].fd = -1;
	for (unsigned i = 0; i < nsock; i++) {
		struct lx_sock *s = &c->sock[i];
		int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

		if (fd < 0)
			goto fail;
		s->fd = fd;
		if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes,
			       sizeof(bytes)) != 0)
			setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes,
				   sizeof(bytes));
		if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bytes,
			       sizeof(bytes)) != 0)
			setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes,
				   sizeof(bytes));
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
			goto fail;
		for (unsigned k = 0; k < BATCH; k++) {
			s->qiov[k].iov_base = s->qbuf[k];
			s->q[k].msg_hdr = (struct msghdr){
				.msg_iov = &s->qiov[k], .msg_iovlen = 1 };
		}
	}
	for (unsigned k = 0; k < BATCH; k++) {
		c->riov[k] = (struct iovec){ c->rbuf[k], RBUF_SIZE };
		c->rmsg[k].msg_hdr = (struct msghdr){ .msg_iov = &c->riov[k],
						      .msg_iovlen = 1 };
	}
	return c;
fail:
	fprintf(stderr, "\nudp: client socket: %s\n", strerror(errno));
	lx_client_close(c);
	return NULL;
}

/* ===================================================================
 * Systems under test
 * =================================================================== */

struct sut;

struct sut_ops {
	const char *key;	/* short name: table, JSON, plot */
	const char *what;	/* one line on what it runs */
	/* Bring the server up. 0 or -1 (said why). */
	int (*start)(struct sut *s);
	/* One test: run the generator with @cfg against the server and
	 * fill @out. 0 or -1 (said why). */
	int (*run)(struct sut *s, const struct loadgen_config *cfg,
		   struct loadgen_result *out);
	/* Bring it down; may add notes. Called after a failed start too. */
	void (*stop)(struct sut *s);
};

struct sut {
	const struct sut_ops *ops;
	/* Linux servers: the process and its port. */
	const char *mode;
	bool spin;		/* the server polls instead of blocking */
	bool skip;		/* not selected in this run */
	pid_t pid;
	int port;
	int out_fd;
	char path[200];		/* the server's own account of its io path */
};

/* --- Linux servers: ebbrt-udp-linux --mode M --- */

static int lxs_start(struct sut *s)
{
	char server[PATH_MAX + 32], port[16], cpu[16], line[256];
	int pfd[2];

	snprintf(server, sizeof(server), "%s/ebbrt-udp-linux", self_dir);
	s->port = free_port();
	if (s->port < 0) {
		fprintf(stderr, "\nudp: no free UDP port\n");
		return -1;
	}
	snprintf(port, sizeof(port), "%d", s->port);
	snprintf(cpu, sizeof(cpu), "%d", CPU_SERVER);
	if (pipe2(pfd, O_CLOEXEC) != 0) {
		fprintf(stderr, "\nudp: pipe: %s\n", strerror(errno));
		return -1;
	}
	fflush(NULL);
	s->pid = fork();
	if (s->pid < 0) {
		fprintf(stderr, "\nudp: fork: %s\n", strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (s->pid == 0) {
		char *argv[] = { server, "--mode", (char *)s->mode, "--addr",
				 SERVER_ADDR, "--port", port, "--cpu", cpu,
				 s->spin ? "--spin" : NULL, NULL };

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(pfd[1], STDOUT_FILENO);
		execv(server, argv);
		fprintf(stderr, "udp: cannot run %s: %s\n", server,
			strerror(errno));
		_exit(127);
	}
	close(pfd[1]);
	s->out_fd = pfd[0];
	if (!bench_read_line(s->out_fd, line, sizeof(line),
			bench_deadline(READY_TIMEOUT_S)) ||
	    strncmp(line, "ready ", 6) != 0) {
		fprintf(stderr, "\nudp: %s server did not start\n", s->mode);
		return -1;
	}
	return 0;
}

static void lxs_stop(struct sut *s)
{
	char line[512];
	int status;

	if (s->pid > 0) {
		kill(s->pid, SIGTERM);
		if (s->out_fd >= 0 &&
		    bench_read_line(s->out_fd, line, sizeof(line),
				bench_deadline(STOP_TIMEOUT_S))) {
			uint64_t served = 0, drops = 0, trunc = 0, waits = 0;
			char *q = strstr(line, "path \"");

			if (sscanf(line,
				   "served %" SCNu64 " drops %" SCNu64
				   " truncated %" SCNu64 " waits %" SCNu64,
				   &served, &drops, &trunc, &waits) == 4)
				bench_note("%s server: echoed %" PRIu64 ", dropped %" PRIu64
				     ", blocked %" PRIu64 " times (%.2f echoes "
				     "per wake-up)",
				     s->mode, served, drops, waits,
				     waits ? (double)served / (double)waits
					   : 0.0);
			if (q != NULL) {
				snprintf(s->path, sizeof(s->path), "%s", q + 6);
				s->path[strcspn(s->path, "\"")] = '\0';
			}
		} else {
			kill(s->pid, SIGKILL);
		}
		while (waitpid(s->pid, &status, 0) < 0 && errno == EINTR)
			;
		s->pid = 0;
	}
	if (s->out_fd >= 0)
		close(s->out_fd);
	s->out_fd = -1;
}

/* The generator on CPU_CLIENT over Linux sockets. */
static int lxs_run(struct sut *s, const struct loadgen_config *cfg,
		   struct loadgen_result *out)
{
	unsigned nsock = cfg->flows < MAX_CLIENT_SOCKS ? cfg->flows
						       : MAX_CLIENT_SOCKS;
	struct lx_client *c = lx_client_open(s->port, nsock);
	struct loadgen *lg = NULL;
	cpu_set_t old;
	int rc = -1;

	if (c == NULL)
		return -1;
	lg = loadgen_create(cfg, &lx_transport, c);
	if (lg == NULL) {
		fprintf(stderr, "\nudp: loadgen_create: %s\n", strerror(errno));
		goto out;
	}
	if (pin_self(CPU_CLIENT, &old) != 0)
		goto out;
	rc = loadgen_run(lg);
	sched_setaffinity(0, sizeof(old), &old);
	if (rc != 0) {
		fprintf(stderr, "\nudp: client: %s\n", strerror(-rc));
		rc = -1;
		goto out;
	}
	loadgen_result(lg, out);
	if (c->tx_drops)
		bench_note("%s: the client's sockets refused %" PRIu64 " requests",
		     s->mode, c->tx_drops);
out:
	loadgen_destroy(lg);
	lx_client_close(c);
	return rc;
}

static const struct sut_ops lx_epoll_ops = {
	.key = "epoll",
	.what = "Linux epoll + recvmmsg/sendmmsg (batch 32)",
	.start = lxs_start,
	.run = lxs_run,
	.stop = lxs_stop,
};

static const struct sut_ops lx_uring_ops = {
	.key = "io_uring",
	.what = "Linux io_uring multishot recvmsg + batched sendmsg",
	.start = lxs_start,
	.run = lxs_run,
	.stop = lxs_stop,
};

static const struct sut_ops lx_epoll_spin_ops = {
	.key = "epoll-spin",
	.what = "the epoll server polling: epoll_wait with timeout 0",
	.start = lxs_start,
	.run = lxs_run,
	.stop = lxs_stop,
};

static const struct sut_ops lx_uring_spin_ops = {
	.key = "uring-spin",
	.what = "the io_uring server polling its completion queue",
	.start = lxs_start,
	.run = lxs_run,
	.stop = lxs_stop,
};

/* --- ebbrt: two nodes over the virtual wire, one cluster per test ---
 *
 * `ebbrt run --nodes 2 --wire` of ebbrt-bench-udp-node: node 1 (cpu 0)
 * runs the same generator over the ebbrt stack, node 2 (cpu 1) the echo
 * server of apps/echo; the net_ring wire between them is kernel bypass at
 * both ends. Node 1 prints the figures on a RESULT line. */

#define EB_CLUSTER "benchudp"
#define EB_SUBNET "10.86.0.0"

static char eb_ebbrt[PATH_MAX + 32], eb_node[PATH_MAX + 32];

static int eb_start(struct sut *s)
{
	snprintf(eb_ebbrt, sizeof(eb_ebbrt), "%s/../frontend/ebbrt", self_dir);
	snprintf(eb_node, sizeof(eb_node), "%s/ebbrt-bench-udp-node",
		 self_dir);
	if (access(eb_ebbrt, X_OK) != 0 || access(eb_node, X_OK) != 0) {
		fprintf(stderr, "\nudp: no %s or %s: build the tree\n",
			eb_ebbrt, eb_node);
		return -1;
	}
	snprintf(s->path, sizeof(s->path),
		 "two nodes on a net_ring wire, one core each");
	return 0;
}

static void eb_stop(struct sut *s)
{
	(void)s;
}

static double field(const char *line, const char *key)
{
	const char *p = strstr(line, key);

	return p ? strtod(p + strlen(key), NULL) : 0;
}

static int eb_run(struct sut *s, const struct loadgen_config *cfg,
		  struct loadgen_result *out)
{
	char spec[64], dur[32], warm[32], pay[32], line[1024];
	char *argv[] = { eb_ebbrt, "run", "--nodes", "2", "--wire",
			 "--cpus", "0,1", "--name", EB_CLUSTER, "--subnet",
			 EB_SUBNET, "--", eb_node, "--test", spec,
			 "--duration-ms", dur, "--warmup-ms", warm,
			 "--payload", pay, NULL };
	double limit = opt.duration_s + opt.warmup_s + 20;
	bool got = false;
	int po[2], status = 0;
	pid_t pid;

	(void)s;
	if (cfg->mode == LOADGEN_OPEN)
		snprintf(spec, sizeof(spec), "open:%.0f", cfg->rate);
	else
		snprintf(spec, sizeof(spec), "closed:%u:%u", cfg->flows,
			 cfg->window);
	snprintf(dur, sizeof(dur), "%.0f", opt.duration_s * 1e3);
	snprintf(warm, sizeof(warm), "%.0f", opt.warmup_s * 1e3);
	snprintf(pay, sizeof(pay), "%u", opt.payload);
	if (pipe2(po, O_CLOEXEC) != 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		dup2(po[1], STDOUT_FILENO);
		dup2(po[1], STDERR_FILENO);
		execv(eb_ebbrt, argv);
		_exit(127);
	}
	close(po[1]);
	if (pid < 0) {
		close(po[0]);
		return -1;
	}
	while (bench_read_line(po[0], line, sizeof(line),
			bench_deadline(limit))) {
		const char *r = strstr(line, "RESULT ");

		/* What went wrong, not the usual start and stop lines. */
		if (strstr(line, "ERROR") != NULL ||
		    (strstr(line, "ebbrt:") != NULL &&
		     strstr(line, "stopping the cluster") == NULL &&
		     strstr(line, "stopped") == NULL))
			bench_note("ebbrt %s: %s", spec, line);
		if (r == NULL)
			continue;
		memset(out, 0, sizeof(*out));
		out->mode = cfg->mode;
		out->duration_s = opt.duration_s;
		out->offered_rps = field(r, "offered=");
		out->achieved_rps = field(r, "achieved=");
		out->sent = (uint64_t)field(r, "sent=");
		out->replied = (uint64_t)field(r, "replied=");
		out->lost = (uint64_t)field(r, "lost=");
		out->sent_rps = (double)out->sent / opt.duration_s;
		out->p50_ns = field(r, "p50_ns=");
		out->p99_ns = field(r, "p99_ns=");
		out->p999_ns = field(r, "p999_ns=");
		out->mean_ns = field(r, "mean_ns=");
		out->max_ns = field(r, "max_ns=");
		got = true;
	}
	close(po[0]);
	if (!got) {
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
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0) {
		/* The figures came; what failed after them is noted. */
		if (got)
			bench_note("ebbrt %s: the cluster ended with status %d after "
			     "its result",
			     spec, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		else
			fprintf(stderr, "\nudp: the ebbrt cluster failed (%s)\n",
				spec);
	}
	if (!got)
		fprintf(stderr, "\nudp: no RESULT from the ebbrt node\n");
	return got ? 0 : -1;
}

static const struct sut_ops ebbrt_ops = {
	.key = "ebbrt",
	.what = "ebbrt: generator node -> echo node over a virtual wire",
	.start = eb_start,
	.run = eb_run,
	.stop = eb_stop,
};

/* The systems, baseline first. An ebbrt server adds its own ops here:
 * start its server, run a test with the same generator over its own
 * transport (loadgen.h), stop. The spinning servers run with --spin. */
static struct sut suts[] = {
	{ .ops = &lx_epoll_ops, .mode = "epoll", .out_fd = -1 },
	{ .ops = &lx_uring_ops, .mode = "uring", .out_fd = -1 },
	{ .ops = &ebbrt_ops, .mode = "ebbrt", .out_fd = -1 },
	{ .ops = &lx_epoll_spin_ops, .mode = "epoll", .spin = true,
	  .out_fd = -1 },
	{ .ops = &lx_uring_spin_ops, .mode = "uring", .spin = true,
	  .out_fd = -1 },
};
#define NSUT (sizeof(suts) / sizeof(suts[0]))

/* ===================================================================
 * Tests and results
 * =================================================================== */

enum test_kind { T_RTT, T_PEAK, T_SWEEP, T_HALF_BASE };
/* The last test: open loop at half the baseline's (epoll's) peak, the
 * same offered load for every system. */
#define NTESTS (2 + NSWEEP + 1)

struct row {
	bool ok;
	enum test_kind kind;
	double frac;		/* sweep: fraction of the peak */
	struct loadgen_result r;
	double client_cpu, server_cpu;	/* % busy during the test */
};

static struct row rows[NSUT][NTESTS];

static void test_name(const struct row *w, char *buf, size_t len)
{
	switch (w->kind) {
	case T_RTT:
		snprintf(buf, len, "closed 1x1 (RTT)");
		break;
	case T_PEAK:
		snprintf(buf, len, "closed %dx%d (peak)", PEAK_FLOWS,
			 PEAK_WINDOW);
		break;
	case T_SWEEP:
		snprintf(buf, len, "open %3.0f%% of peak", w->frac * 100);
		break;
	case T_HALF_BASE:
		snprintf(buf, len, "open 50%% of %s pk", suts[0].ops->key);
		break;
	}
}

static void base_config(struct loadgen_config *cfg)
{
	loadgen_config_default(cfg);
	cfg->payload = opt.payload;
	cfg->warmup_ns = (uint64_t)(opt.warmup_s * 1e9);
	cfg->duration_ns = (uint64_t)(opt.duration_s * 1e9);
}

/* Test @t of system @si; its sweep points need the peak (test 1). */
static int run_test(unsigned si, unsigned t)
{
	struct sut *s = &suts[si];
	struct row *w = &rows[si][t];
	struct loadgen_config cfg;
	uint64_t t0 = bench_now_ns();
	double ci0 = 0, si0 = 0, ci1 = 0, si1 = 0;
	double c0 = cpu_busy_ns(CPU_CLIENT, &ci0);
	double s0 = cpu_busy_ns(CPU_SERVER, &si0);
	double st0 = steal_ns(), self0 = proc_cpu_ns(0);
	double srv0 = s->pid > 0 ? proc_cpu_ns(s->pid) : 0;
	double wall, other, steal;
	char name[48];
	int rc;

	base_config(&cfg);
	if (t == 0) {
		w->kind = T_RTT;
	} else if (t == 1) {
		w->kind = T_PEAK;
		cfg.flows = PEAK_FLOWS;
		cfg.window = PEAK_WINDOW;
	} else if (t == NTESTS - 1) {
		double peak = rows[0][1].ok ? rows[0][1].r.achieved_rps : 0;

		w->kind = T_HALF_BASE;
		w->frac = 0.5;
		if (peak <= 0) {
			fprintf(stderr, "no %s peak rate", suts[0].ops->key);
			return -1;
		}
		cfg.mode = LOADGEN_OPEN;
		cfg.flows = SWEEP_FLOWS;
		cfg.rate = peak * 0.5;
	} else {
		double peak = rows[si][1].ok ? rows[si][1].r.achieved_rps : 0;

		w->kind = T_SWEEP;
		w->frac = sweep_frac[t - 2];
		if (peak <= 0) {
			fprintf(stderr, "no peak rate to sweep from");
			return -1;
		}
		cfg.mode = LOADGEN_OPEN;
		cfg.flows = SWEEP_FLOWS;
		cfg.rate = peak * w->frac;
	}
	rc = s->ops->run(s, &cfg, &w->r);
	wall = (double)(bench_now_ns() - t0);
	if (rc != 0)
		return rc;
	w->client_cpu = (cpu_busy_ns(CPU_CLIENT, &ci1) - c0) / wall * 100;
	w->server_cpu = (cpu_busy_ns(CPU_SERVER, &si1) - s0) / wall * 100;
	w->ok = true;
	test_name(w, name, sizeof(name));
	/* Ticks: only a share well above their resolution tells. */
	other = (w->client_cpu + w->server_cpu) / 100 * wall -
		(ci1 - ci0) - (si1 - si0) - (proc_cpu_ns(0) - self0) -
		(s->pid > 0 ? proc_cpu_ns(s->pid) - srv0 : 0);
	other = other / (2 * wall) * 100;
	steal = (steal_ns() - st0) / (2 * wall) * 100;
	if (other >= 10 || steal >= 5)
		bench_note("%s %s: other work used ~%.0f%% and the hypervisor stole "
		     "%.0f%% of cpus %d,%d: figures skewed",
		     s->ops->key, name, other > 0 ? other : 0, steal,
		     CPU_CLIENT, CPU_SERVER);
	if (w->r.lost || w->r.late || w->r.bad) {
		bench_note("%s %s: %" PRIu64 " of %" PRIu64 " lost, %" PRIu64
		     " late, %" PRIu64 " bad replies",
		     s->ops->key, name, w->r.lost, w->r.sent, w->r.late,
		     w->r.bad);
	}
	return 0;
}

/* ===================================================================
 * Output
 * =================================================================== */

static void fmt_x(char *buf, size_t len, double v, double base, bool ok)
{
	if (!ok || base <= 0)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.2fx", v / base);
}

/* Issue 4's targets, from this run: ebbrt's peak per server core against
 * each Linux server's, and its p99 at half of epoll's peak against
 * epoll's there. */
static void print_targets(void)
{
	int eb = -1, ep = -1, ur = -1;
	const unsigned half = NTESTS - 1;

	for (unsigned si = 0; si < NSUT; si++) {
		if (suts[si].skip)
			continue;
		if (suts[si].ops == &ebbrt_ops)
			eb = (int)si;
		else if (suts[si].ops == &lx_epoll_ops)
			ep = (int)si;
		else if (suts[si].ops == &lx_uring_ops)
			ur = (int)si;
	}
	if (eb < 0 || !rows[eb][1].ok)
		return;
	printf("\ntargets (one server core each):\n");
	if (ep >= 0 && rows[ep][1].ok)
		printf("  peak rate vs epoll:    %6.2fx (target >= 5x)\n",
		       rows[eb][1].r.achieved_rps / rows[ep][1].r.achieved_rps);
	if (ur >= 0 && rows[ur][1].ok)
		printf("  peak rate vs io_uring: %6.2fx (target >= 3x)\n",
		       rows[eb][1].r.achieved_rps / rows[ur][1].r.achieved_rps);
	if (ep >= 0 && rows[ep][half].ok && rows[eb][half].ok)
		printf("  p99 at half of epoll's peak vs epoll: %.3fx "
		       "(%.1f us vs %.1f us; target <= 0.33x)\n",
		       rows[eb][half].r.p99_ns / rows[ep][half].r.p99_ns,
		       rows[eb][half].r.p99_ns / 1e3,
		       rows[ep][half].r.p99_ns / 1e3);
}

static void print_table(void)
{
	printf("\n%-10s %-20s %9s %9s %8s %8s %8s %8s %8s %6s %5s %5s %7s %7s\n",
	       "system", "test", "offered", "achieved", "p50", "p99",
	       "p99.9", "mean", "max", "lost", "cli%", "srv%", "rate x",
	       "p50 x");
	for (unsigned si = 0; si < NSUT; si++) {
		if (suts[si].skip)
			continue;
		for (unsigned t = 0; t < NTESTS; t++) {
			const struct row *w = &rows[si][t];
			const struct row *b = &rows[0][t];
			char name[48], rx[16], px[16];

			test_name(w, name, sizeof(name));
			if (!w->ok) {
				printf("%-10s %-20s %9s\n", suts[si].ops->key,
				       name, "failed");
				continue;
			}
			fmt_x(rx, sizeof(rx), w->r.achieved_rps,
			      b->r.achieved_rps, b->ok);
			fmt_x(px, sizeof(px), w->r.p50_ns, b->r.p50_ns, b->ok);
			printf("%-10s %-20s %9.1f %9.1f %8.1f %8.1f %8.1f %8.1f "
			       "%8.0f %6" PRIu64 " %5.0f %5.0f %7s %7s\n",
			       suts[si].ops->key, name,
			       w->r.offered_rps / 1e3, w->r.achieved_rps / 1e3,
			       w->r.p50_ns / 1e3, w->r.p99_ns / 1e3,
			       w->r.p999_ns / 1e3, w->r.mean_ns / 1e3,
			       w->r.max_ns / 1e3, w->r.lost, w->client_cpu,
			       w->server_cpu, rx, px);
		}
	}
	printf("\nrates in k requests/s, latencies in us; %u-byte UDP echo "
	       "over loopback, client on cpu %d,\nserver on cpu %d. "
	       "Closed FxW: F flows with W requests each in flight; open: "
	       "Poisson\narrivals over %d flows at a fraction of the "
	       "system's own peak, latency from the\nscheduled arrival. "
	       "cli%%/srv%%: busy time of the client/server cpu over the "
	       "test.\nrate x, p50 x: against %s on the same test (below 1 "
	       "for p50: faster).\n",
	       opt.payload, CPU_CLIENT, CPU_SERVER, SWEEP_FLOWS,
	       suts[0].ops->key);
	for (unsigned si = 0; si < NSUT; si++)
		if (!suts[si].skip)
			printf("%-10s %s%s%s%s\n", suts[si].ops->key, suts[si].ops->what,
		       suts[si].path[0] ? " (" : "", suts[si].path,
		       suts[si].path[0] ? ")" : "");
	for (unsigned si = 0; si < NSUT; si++) {
		const struct row *p = &rows[si][1];

		if (p->ok && p->server_cpu > 0)
			bench_note("%s peak: %.1f k requests/s at %.0f%% of the server "
			     "cpu = %.1f k/s per busy server core",
			     suts[si].ops->key, p->r.achieved_rps / 1e3,
			     p->server_cpu,
			     p->r.achieved_rps / 1e3 / (p->server_cpu / 100));
	}
	print_targets();
	bench_print_notes();
}

/* One JSON object per (system, test, statistic), in the shape of
 * ebbrt-bench-micro's; the baseline is the first system's figure. */
static int write_json(const char *path)
{
	FILE *f = bench_json_open(path, "udp");
	char metric[96], base_name[64];
	bool first = true;

	if (f == NULL)
		return -1;
	snprintf(base_name, sizeof(base_name),
		 "%s server, same client and test", suts[0].ops->key);
	for (unsigned si = 0; si < NSUT; si++) {
		if (suts[si].skip)
			continue;
		for (unsigned t = 0; t < NTESTS; t++) {
			const struct row *w = &rows[si][t];
			const struct row *b = &rows[0][t];
			struct {
				const char *stat, *unit;
				double v, base;
			} m[] = {
				{ "offered", "kreq/s", w->r.offered_rps / 1e3,
				  b->r.offered_rps / 1e3 },
				{ "achieved", "kreq/s",
				  w->r.achieved_rps / 1e3,
				  b->r.achieved_rps / 1e3 },
				{ "p50", "us", w->r.p50_ns / 1e3,
				  b->r.p50_ns / 1e3 },
				{ "p99", "us", w->r.p99_ns / 1e3,
				  b->r.p99_ns / 1e3 },
				{ "p99.9", "us", w->r.p999_ns / 1e3,
				  b->r.p999_ns / 1e3 },
				{ "mean", "us", w->r.mean_ns / 1e3,
				  b->r.mean_ns / 1e3 },
				{ "max", "us", w->r.max_ns / 1e3,
				  b->r.max_ns / 1e3 },
				{ "lost", "requests", (double)w->r.lost,
				  (double)b->r.lost },
				{ "server cpu", "%", w->server_cpu,
				  b->server_cpu },
			};
			char name[48];

			if (!w->ok)
				continue;
			test_name(w, name, sizeof(name));
			for (size_t k = 0; k < sizeof(m) / sizeof(m[0]); k++) {
				struct bench_json_row row = {
					.metric = metric,
					.value = m[k].v,
					.unit = m[k].unit,
					.baseline = m[k].base,
					.no_baseline = !b->ok,
					.baseline_name = base_name,
					.stat = m[k].stat,
				};

				snprintf(metric, sizeof(metric),
					 "udp echo %s %s %s", suts[si].ops->key,
					 name, m[k].stat);
				bench_json_put(f, &row, &first);
			}
		}
	}
	return bench_json_close(f, path, "udp") == 0 ? 0 : -1;
}

/* udp-latency.dat (one block per system), udp-latency.gp and its image
 * under --out. */
static int write_plot(void)
{
	char path[PATH_MAX], cmd[PATH_MAX + 64];
	unsigned nblocks = 0, block = 0;
	const char *term;
	FILE *f;

	if (mkdir(opt.out, 0755) != 0 && errno != EEXIST) {
		fprintf(stderr, "udp: %s: %s\n", opt.out, strerror(errno));
		return -1;
	}
	snprintf(path, sizeof(path), "%s/udp-latency.dat", opt.out);
	f = fopen(path, "w");
	if (f == NULL) {
		fprintf(stderr, "udp: %s: %s\n", path, strerror(errno));
		return -1;
	}
	fprintf(f, "# ebbrt-bench-udp: latency vs offered load, %u-byte UDP "
		   "echo, open loop\n",
		opt.payload);
	for (unsigned si = 0; si < NSUT; si++) {
		if (suts[si].skip)
			continue;
		fprintf(f, "%s# %s\n# offered_kreqs achieved_kreqs p50_us "
			   "p99_us p999_us lost\n",
			nblocks++ ? "\n\n" : "", suts[si].ops->key);
		for (unsigned t = 2; t < NTESTS; t++) {
			const struct row *w = &rows[si][t];

			if (w->ok)
				fprintf(f, "%.3f %.3f %.3f %.3f %.3f %" PRIu64
					   "\n",
					w->r.offered_rps / 1e3,
					w->r.achieved_rps / 1e3,
					w->r.p50_ns / 1e3, w->r.p99_ns / 1e3,
					w->r.p999_ns / 1e3, w->r.lost);
		}
	}
	fclose(f);

	term = bench_plot_terminal();
	snprintf(path, sizeof(path), "%s/udp-latency.gp", opt.out);
	f = fopen(path, "w");
	if (f == NULL) {
		fprintf(stderr, "udp: %s: %s\n", path, strerror(errno));
		return -1;
	}
	fprintf(f, "# ebbrt-bench-udp: run with `gnuplot udp-latency.gp` in "
		   "this folder\n");
	if (term == NULL || strcmp(term, "svg") == 0)
		fprintf(f, "set terminal svg size 900,600 dynamic\n"
			   "set output 'udp-latency.svg'\n");
	else
		fprintf(f, "set terminal %s size 900,600\n"
			   "set output 'udp-latency.png'\n",
			term);
	fprintf(f,
		"set title '%u-byte UDP echo: latency vs offered load (open "
		"loop, client cpu %d, server cpu %d)'\n"
		"set xlabel 'offered load (k requests/s)'\n"
		"set ylabel 'latency (us)'\n"
		"set logscale y\n"
		"set grid\n"
		"set termoption noenhanced\n"
		"set key top left\n"
		"plot ",
		opt.payload, CPU_CLIENT, CPU_SERVER);
	for (unsigned si = 0; si < NSUT; si++) {
		if (suts[si].skip)
			continue;
		fprintf(f,
			"%s'udp-latency.dat' index %u using 1:3 with "
			"linespoints lc %u pt 7 title '%s p50', \\\n"
			"     'udp-latency.dat' index %u using 1:4 with "
			"linespoints lc %u pt 5 dt 2 title '%s p99'",
			block ? ", \\\n     " : "", block, block + 1,
			suts[si].ops->key, block, block + 1,
			suts[si].ops->key);
		block++;
	}
	fprintf(f, "\n");
	fclose(f);
	if (term == NULL) {
		bench_note("gnuplot not found: wrote %s/udp-latency.gp and .dat, no "
		     "image (apt-get install gnuplot-nox)",
		     opt.out);
		return 0;
	}
	snprintf(cmd, sizeof(cmd), "cd '%s' && gnuplot udp-latency.gp",
		 opt.out);
	if (system(cmd) != 0) {
		fprintf(stderr, "udp: gnuplot failed on %s\n", path);
		return -1;
	}
	printf("plot: %s/udp-latency.%s (gnuplot script udp-latency.gp)\n",
	       opt.out, strcmp(term, "svg") == 0 ? "svg" : "png");
	return 0;
}

/* ===================================================================
 * main
 * =================================================================== */

static void usage(FILE *to)
{
	fprintf(to,
		"usage: ebbrt-bench-udp [--quick] [--duration S] [--json PATH] "
		"[--out DIR]\n"
		"                       [--no-plot] [--spin] [--payload N]\n"
		"UDP echo request/response over loopback, one load generator "
		"(cpu %d) against\neach server (cpu %d): Linux epoll and "
		"io_uring. Per server: 1-flow round trip,\npeak rate (closed "
		"loop %dx%d), and latency against offered load (open loop,\n"
		"%d points up to the peak).\n"
		"  --quick        0.5 s per test after 0.2 s of warm-up: a "
		"smoke run\n"
		"  --duration S   seconds measured per test (default 5; "
		"warm-up 1 s)\n"
		"  --json PATH    also write the results as a JSON array\n"
		"  --out DIR      plot data, gnuplot script and image "
		"(default results)\n"
		"  --no-plot      no plot\n"
		"  --spin         also the two servers polling instead of "
		"blocking\n"
		"  --payload N    request bytes, %u..%u (default 64)\n"
		"  --help         this text\n"
		"See docs/bench.md.\n",
		CPU_CLIENT, CPU_SERVER, PEAK_FLOWS, PEAK_WINDOW, NSWEEP,
		LOADGEN_HDR_SIZE, LOADGEN_MAX_PAYLOAD);
}

static void parse_args(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "quick", no_argument, NULL, 'q' },
		{ "duration", required_argument, NULL, 'd' },
		{ "json", required_argument, NULL, 'j' },
		{ "out", required_argument, NULL, 'o' },
		{ "no-plot", no_argument, NULL, 'n' },
		{ "spin", no_argument, NULL, 's' },
		{ "payload", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool dur_set = false;
	char *end;
	long v;
	int c;

	while ((c = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (c) {
		case 'q':
			opt.quick = true;
			break;
		case 'd':
			opt.duration_s = strtod(optarg, &end);
			if (*end != '\0' || !(opt.duration_s > 0) ||
			    opt.duration_s > 3600) {
				fprintf(stderr, "udp: bad duration '%s'\n",
					optarg);
				exit(2);
			}
			dur_set = true;
			break;
		case 'j':
			opt.json = optarg;
			break;
		case 'o':
			opt.out = optarg;
			break;
		case 'n':
			opt.no_plot = true;
			break;
		case 's':
			opt.spin = true;
			break;
		case 'p':
			v = strtol(optarg, &end, 10);
			if (*end != '\0' || v < (long)LOADGEN_HDR_SIZE ||
			    v > (long)LOADGEN_MAX_PAYLOAD) {
				fprintf(stderr, "udp: bad payload '%s'\n",
					optarg);
				exit(2);
			}
			opt.payload = (uint32_t)v;
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
		fprintf(stderr, "udp: unexpected argument '%s'\n",
			argv[optind]);
		usage(stderr);
		exit(2);
	}
	for (unsigned si = 0; si < NSUT; si++)
		suts[si].skip = suts[si].spin && !opt.spin;
	if (!dur_set)
		opt.duration_s = opt.quick ? 0.5 : 5.0;
	opt.warmup_s = opt.quick ? 0.2 : 1.0;
	if (opt.warmup_s > opt.duration_s)
		opt.warmup_s = opt.duration_s;
}

static int find_self_dir(void)
{
	int rc = bench_self_dir(self_dir, sizeof(self_dir));

	if (rc != 0) {
		fprintf(stderr, "udp: /proc/self/exe: %s\n", strerror(-rc));
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	unsigned nsteps = 0, step = 0;
	int failed = 0;

	parse_args(argc, argv);
	for (unsigned si = 0; si < NSUT; si++)
		nsteps += suts[si].skip ? 0 : NTESTS;
	if (find_self_dir() != 0)
		return 1;
	signal(SIGPIPE, SIG_IGN);
	printf("ebbrt UDP echo benchmark %s: client cpu %d, server cpu %d, "
	       "%s run, %.1f s per test after %.1f s warm-up, %u-byte "
	       "requests, load average %.2f\n",
	       EBBRT_VERSION, CPU_CLIENT, CPU_SERVER,
	       opt.quick ? "quick" : "full", opt.duration_s, opt.warmup_s,
	       opt.payload, bench_loadavg());
	fflush(stdout);

	for (unsigned si = 0; si < NSUT; si++) {
		struct sut *s = &suts[si];

		if (s->skip)
			continue;
		if (s->ops->start(s) != 0) {
			s->ops->stop(s);
			failed++;
			step += NTESTS;
			continue;
		}
		for (unsigned t = 0; t < NTESTS; t++) {
			uint64_t t0 = bench_now_ns();
			char name[48];
			struct row probe = { .kind = t == 0	  ? T_RTT
						     : t == 1 ? T_PEAK
						     : t == NTESTS - 1 ? T_HALF_BASE
							      : T_SWEEP,
					     .frac = t >= 2 ? sweep_frac[t - 2]
							    : 0 };

			test_name(&probe, name, sizeof(name));
			fprintf(stderr, "[%u/%u] %s: %s...", ++step, nsteps,
				s->ops->key, name);
			if (run_test(si, t) != 0) {
				fprintf(stderr, " FAILED\n");
				failed++;
				continue;
			}
			fprintf(stderr, " %.1f k/s, p50 %.1f us, %.1f s\n",
				rows[si][t].r.achieved_rps / 1e3,
				rows[si][t].r.p50_ns / 1e3,
				(double)(bench_now_ns() - t0) / 1e9);
		}
		s->ops->stop(s);
	}
	if (!opt.no_plot)
		write_plot();
	print_table();
	if (opt.json != NULL && write_json(opt.json) == 0)
		printf("results: %s\n", opt.json);
	if (failed)
		fprintf(stderr, "udp: %d step(s) failed\n", failed);
	return failed ? 1 : 0;
}
