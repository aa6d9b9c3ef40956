/* SPDX-License-Identifier: BSD-3-Clause */
/* Key-value benchmark: memcached text protocol, 90% get / 10% set of
 * 100-byte values, uniform and Zipf keys, 64 connections; peak rate,
 * rate at a p99 of 500 us and server cpu per request of each system
 * under test (Debian's memcached, ebbrt-kv-linux, ebb-kv on an ebbrt
 * node), one load generator for all, with a table, JSON and a gnuplot
 * plot. */
#include <arpa/inet.h>
#include <dirent.h>
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
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ebbrt/ebbrt.h>

#include "common.h"
#include "kvload.h"

/*
 * The generator runs in this process on CPU_CLIENT, each server on
 * CPU_SERVER. Every system under test (struct sut) answers the same tests
 * from the same generator (kvload.c over loadgen.c); memcached, when it
 * runs, is the baseline the others are compared with.
 */
#define CPU_CLIENT 0
#define CPU_SERVER 1
#define SERVER_ADDR "127.0.0.1"
#define SERVER_MEM_MB "1024"

#define SLO_NS 500000.0		/* the p99 the rate is read at */
#define SLO_LOSS 0.001		/* ... losing at most this share */
#define NPEAK 3
static const uint32_t peak_window[NPEAK] = { 1, 2, 4 };
#define NSWEEP 8
static const double sweep_frac[NSWEEP] = { 0.10, 0.25, 0.40, 0.55,
					   0.70, 0.80, 0.90, 1.00 };
#define MAX_REFINE 2
#define MAX_TESTS (NPEAK + NSWEEP + MAX_REFINE)

#define OUT_CAP (64u << 10)	/* queued request bytes per connection */
#define RBUF_SIZE (64u << 10)
#define MAX_EVENTS 256
#define READY_TIMEOUT_S 5.0
#define STOP_TIMEOUT_S 5.0

/* --- options --- */

static struct {
	bool quick;
	bool no_plot;
	const char *json;
	const char *out;
	const char *suts;
	double duration_s;
	double warmup_s;
	double get_ratio;
	uint32_t conns;
	uint32_t keys;
	bool dist[2];		/* uniform, zipf */
} opt = { .out = "results", .suts = "memcached,linux-kv,ebbrt", .conns = 64,
	  .keys = 100000, .get_ratio = 0.9, .dist = { true, true } };

static const char *const dist_name[2] = { "uniform", "zipf" };
static char self_dir[PATH_MAX];

/* ===================================================================
 * The Linux transport: one non-blocking TCP connection per kvload
 * connection, TCP_NODELAY, requests queued per connection and written
 * once per generator step, replies read from those epoll says are ready.
 * =================================================================== */

struct lx_conn {
	int fd;
	bool dirty;		/* has queued bytes, in the dirty list */
	uint32_t off, len;	/* queued: out[off, len) */
	char *out;
};

struct lx_kv {
	int ep;
	int err;		/* a fatal error seen by flush */
	uint32_t n;
	struct lx_conn *c;
	uint32_t *dirty;
	uint32_t ndirty;
	struct epoll_event ev[MAX_EVENTS];
	char rbuf[RBUF_SIZE];
};

static int lx_send(void *ctx, uint32_t conn, const void *buf, size_t len)
{
	struct lx_kv *x = ctx;
	struct lx_conn *c = &x->c[conn];

	if (c->len + len > OUT_CAP && c->off > 0) {
		memmove(c->out, c->out + c->off, c->len - c->off);
		c->len -= c->off;
		c->off = 0;
	}
	if (c->len + len > OUT_CAP)
		return -EAGAIN;
	memcpy(c->out + c->len, buf, len);
	c->len += (uint32_t)len;
	if (!c->dirty) {
		c->dirty = true;
		x->dirty[x->ndirty++] = conn;
	}
	return 0;
}

static void lx_flush(void *ctx)
{
	struct lx_kv *x = ctx;
	uint32_t keep = 0;

	for (uint32_t i = 0; i < x->ndirty; i++) {
		struct lx_conn *c = &x->c[x->dirty[i]];
		ssize_t k = send(c->fd, c->out + c->off, c->len - c->off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (k > 0)
			c->off += (uint32_t)k;
		else if (k < 0 && errno != EAGAIN && errno != EINTR &&
			 x->err == 0)
			x->err = -errno;
		if (c->off == c->len) {
			c->off = c->len = 0;
			c->dirty = false;
		} else {
			/* The socket is full: the rest goes next step. */
			x->dirty[keep++] = x->dirty[i];
		}
	}
	x->ndirty = keep;
}

static int lx_poll(void *ctx, struct kvload *kl)
{
	struct lx_kv *x = ctx;
	int k, got = 0;

	if (x->err)
		return x->err;
	k = epoll_wait(x->ep, x->ev, MAX_EVENTS, 0);
	if (k < 0)
		return errno == EINTR ? 0 : -errno;
	for (int i = 0; i < k; i++) {
		uint32_t conn = x->ev[i].data.u32;
		ssize_t n = recv(x->c[conn].fd, x->rbuf, sizeof(x->rbuf),
				 MSG_DONTWAIT);

		if (n == 0)
			return -ECONNRESET;	/* the server went away */
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			return -errno;
		}
		kvload_input(kl, conn, x->rbuf, (size_t)n);
		got++;
	}
	return got;
}

static uint64_t lx_now(void *ctx)
{
	(void)ctx;
	return bench_now_ns();
}

static const struct kvload_transport lx_transport = {
	.send = lx_send,
	.flush = lx_flush,
	.poll = lx_poll,
	.now_ns = lx_now,
};

static void lx_close(struct lx_kv *x)
{
	if (x == NULL)
		return;
	for (uint32_t i = 0; x->c != NULL && i < x->n; i++) {
		if (x->c[i].fd >= 0)
			close(x->c[i].fd);
		free(x->c[i].out);
	}
	if (x->ep >= 0)
		close(x->ep);
	free(x->c);
	free(x->dirty);
	free(x);
}

/* One TCP connection to @port; -1 (errno) when it cannot. */
static int tcp_connect(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), e;

	if (fd < 0)
		return -1;
	inet_pton(AF_INET, SERVER_ADDR, &sa.sin_addr);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* @n connections to the server at @port. */
static struct lx_kv *lx_open(int port, uint32_t n)
{
	struct lx_kv *x = calloc(1, sizeof(*x));
	int one = 1;

	if (x == NULL)
		goto fail;
	x->ep = -1;
	x->n = n;
	x->c = calloc(n, sizeof(*x->c));
	x->dirty = calloc(n, sizeof(*x->dirty));
	if (x->c == NULL || x->dirty == NULL)
		goto fail;
	for (uint32_t i = 0; i < n; i++)
		x->c[i].fd = -1;
	x->ep = epoll_create1(EPOLL_CLOEXEC);
	if (x->ep < 0)
		goto fail;
	for (uint32_t i = 0; i < n; i++) {
		struct lx_conn *c = &x->c[i];
		struct epoll_event ev = { .events = EPOLLIN,
					  .data.u32 = i };

		c->out = malloc(OUT_CAP);
		if (c->out == NULL)
			goto fail;
		c->fd = tcp_connect(port);
		if (c->fd < 0 ||
		    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one,
			       sizeof(one)) != 0 ||
		    fcntl(c->fd, F_SETFL, O_NONBLOCK) != 0 ||
		    epoll_ctl(x->ep, EPOLL_CTL_ADD, c->fd, &ev) != 0)
			goto fail;
	}
	return x;
fail:
	fprintf(stderr, "\nkv: client connections: %s\n", strerror(errno));
	lx_close(x);
	return NULL;
}

/* ===================================================================
 * Systems under test
 * =================================================================== */

struct sut;

/* What one test gives back. */
struct kv_out {
	struct kvload_result r;	/* the generator's figures */
	/* The server's cpu time over the whole job (warm-up, measurement,
	 * drain) in ns, for every request of the job (r.gets + r.sets);
	 * negative when unknown. */
	double server_cpu_ns;
	/* All the cpu time of what run() started for the test (an ebbrt
	 * cluster: its frontend and both nodes, from start to stop) in ns,
	 * for telling other work on the two cpus apart; negative when run()
	 * started nothing (then server_cpu_ns is what counts). */
	double started_cpu_ns;
};

/*
 * A system under test. The driver calls start() once, then run() for
 * each test (both key distributions, closed and open loop), then stop().
 *
 * The Linux systems start a server process pinned to CPU_SERVER, open
 * the connections and preload the keys in start(), and run kvload over
 * the Linux transport above on CPU_CLIENT in run().
 *
 * The ebbrt system (ebbrt_ops, the shape of the ebbrt side of
 * bench/udp.c): its start() checks that `ebbrt` and the node program
 * exist; its run() launches one cluster per test, `ebbrt run --nodes 2
 * --wire --cpus 0,1 -- ebbrt-bench-kv-node <test>` (bench/kv_node.c),
 * where node 2 runs the ebb-kv server (apps/kv's engine on the ebbrt TCP
 * stack, `-m 1024`, one polling core) and node 1 runs this same kvload
 * over a struct kvload_transport of its own: send() hands the request to
 * the connection's TCP (ebb_tcp_send_buf(); what it does not take waits
 * in a per-connection queue), flush() pushes those queues, poll() is NULL
 * (the TCP receive callback calls kvload_input() for each segment's
 * bytes, in order, per connection), now_ns() is ebb_time_ns(). Node 1
 * opens kcfg->conns connections, preloads every key, runs the test with
 * kvload_step() on every loop iteration of its core (as udp_node.c's
 * drive()), and prints one RESULT line with the fields of struct
 * kvload_result and, as server_cpu_ns, the test's wall time: node 2's
 * core polls, so it is busy all the time. run() parses that line into
 * @out, and print_targets() prints the target line against memcached.
 */
struct sut_ops {
	const char *key;	/* short name: --sut, table, JSON, plot */
	const char *what;	/* one line on what it runs */
	/* Bring the system up, ready for tests on @kcfg's key space (the
	 * distribution there is not yet set). 0 or -1 (said why). */
	int (*start)(struct sut *s, const struct kvload_config *kcfg);
	/* One test: kvload with @kcfg (keys, distribution, mix) and @lcfg
	 * (loop, window or rate, phases). 0 or -1 (said why). */
	int (*run)(struct sut *s, const struct kvload_config *kcfg,
		   const struct loadgen_config *lcfg, struct kv_out *out);
	/* Bring it down; may add notes. Called after a failed start too. */
	void (*stop)(struct sut *s);
	/* Its server core polls: busy all the time whatever the load, so
	 * its cpu per request is its wall time per request. */
	bool server_polls;
};

struct sut {
	const struct sut_ops *ops;
	bool selected;
	/* Linux servers: the process, its port, our connections. */
	pid_t pid;
	int port;
	struct lx_kv *lx;
	char cmd[256];		/* the server's command line, for the table */
	bool noted_preload;	/* ebbrt: the first preload is noted */
	/* ebbrt: both nodes' TCP trouble over all its tests (NET lines). */
	uint64_t eb_tests, eb_retx, eb_rto, eb_tx_full;
};

/* --- Linux servers --- */

/* A TCP port that binds right now, below the ephemeral range: a probe
 * connect to a port in that range can connect to itself. */
static int free_port(void)
{
	unsigned seed = (unsigned)(bench_now_ns() ^ (uint64_t)getpid());

	for (int tries = 0; tries < 200; tries++) {
		struct sockaddr_in sa = { .sin_family = AF_INET };
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		int port = 20000 + (int)(rand_r(&seed) % 10000), ok;

		if (fd < 0)
			return -1;
		sa.sin_port = htons((uint16_t)port);
		inet_pton(AF_INET, SERVER_ADDR, &sa.sin_addr);
		ok = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
		close(fd);
		if (ok)
			return port;
	}
	return -1;
}

/* @name on PATH into @out; false when it is not there. */
static bool find_on_path(const char *name, char *out, size_t len)
{
	const char *path = getenv("PATH");
	char dirs[4096], *save = NULL;

	snprintf(dirs, sizeof(dirs), "%s",
		 path ? path : "/usr/local/bin:/usr/bin:/bin");
	for (char *d = strtok_r(dirs, ":", &save); d != NULL;
	     d = strtok_r(NULL, ":", &save)) {
		snprintf(out, len, "%s/%s", d, name);
		if (access(out, X_OK) == 0)
			return true;
	}
	/* Debian puts it in /usr/bin, but root's PATH may be odd. */
	snprintf(out, len, "/usr/bin/%s", name);
	return access(out, X_OK) == 0;
}

/* The server's cpu time in ns: the sum of its threads' on-cpu time from
 * /proc/PID/task/TID/schedstat, else utime+stime of /proc/PID/stat (clock
 * ticks); -1 when neither can be read. */
static double proc_cpu_ns(pid_t pid)
{
	double tick = 1e9 / (double)sysconf(_SC_CLK_TCK), sum = 0;
	unsigned long long ut = 0, st = 0;
	char path[300], buf[1024], *p;
	struct dirent *de;
	bool any = false;
	DIR *d;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	while (d != NULL && (de = readdir(d)) != NULL) {
		unsigned long long ns;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%.32s/schedstat",
			 (int)pid, de->d_name);
		f = fopen(path, "r");
		if (f == NULL)
			continue;
		if (fscanf(f, "%llu", &ns) == 1) {
			sum += (double)ns;
			any = true;
		}
		fclose(f);
	}
	if (d != NULL)
		closedir(d);
	if (any)
		return sum;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* Fields after the command name: state is the 3rd, utime the 14th. */
	p = strrchr(buf, ')');
	if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u "
				       "%*u %*u %llu %llu",
				&ut, &st) != 2)
		return -1;
	return (double)(ut + st) * tick;
}

/* Fork and exec @argv pinned to CPU_SERVER, its stdout to /dev/null. */
static pid_t spawn_pinned(char *const argv[])
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid != 0)
		return pid;
	{
		cpu_set_t set;
		int null = open("/dev/null", O_WRONLY);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		CPU_ZERO(&set);
		CPU_SET(CPU_SERVER, &set);
		if (sched_setaffinity(0, sizeof(set), &set) != 0) {
			fprintf(stderr, "kv: cannot pin %s to cpu %d: %s\n",
				argv[0], CPU_SERVER, strerror(errno));
			_exit(126);
		}
		if (null >= 0)
			dup2(null, STDOUT_FILENO);
		execv(argv[0], argv);
		fprintf(stderr, "kv: cannot run %s: %s\n", argv[0],
			strerror(errno));
		_exit(127);
	}
}

/* Until the server at @s->port takes connections (or it died). */
static bool wait_ready(struct sut *s)
{
	uint64_t end = bench_now_ns() + (uint64_t)(READY_TIMEOUT_S * 1e9);
	int status;

	while (bench_now_ns() < end) {
		int fd = tcp_connect(s->port);

		if (fd >= 0) {
			close(fd);
			return true;
		}
		if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
			s->pid = 0;
			return false;
		}
		bench_sleep_ns(20000000);
	}
	return false;
}

/* Start the server of @argv (its port already in @s->port), connect,
 * preload. */
static int lxs_launch(struct sut *s, char *const argv[],
		      const struct kvload_config *kcfg)
{
	struct kvload_result r;
	struct kvload *kl;
	size_t off = 0;
	int rc;

	for (int i = 0; argv[i] != NULL && off < sizeof(s->cmd); i++)
		off += (size_t)snprintf(s->cmd + off, sizeof(s->cmd) - off,
					"%s%s", i ? " " : "", argv[i]);
	s->pid = spawn_pinned(argv);
	if (s->pid < 0) {
		fprintf(stderr, "\nkv: fork: %s\n", strerror(errno));
		s->pid = 0;
		return -1;
	}
	if (!wait_ready(s)) {
		fprintf(stderr, "\nkv: %s did not take connections on port "
				"%d within %.0f s\n",
			argv[0], s->port, READY_TIMEOUT_S);
		return -1;
	}
	s->lx = lx_open(s->port, kcfg->conns);
	if (s->lx == NULL)
		return -1;
	kl = kvload_create(kcfg, &lx_transport, s->lx);
	if (kl == NULL) {
		fprintf(stderr, "\nkv: kvload_create: %s\n", strerror(errno));
		return -1;
	}
	rc = kvload_start_preload(kl);
	if (rc == 0)
		rc = kvload_run(kl);
	kvload_result(kl, &r);
	kvload_destroy(kl);
	if (rc != 0 || r.stored != kcfg->keys) {
		fprintf(stderr, "\nkv: %s: preload: %s, %" PRIu64 " of %u "
				"keys stored, %" PRIu64 " errors\n",
			s->ops->key, rc ? strerror(-rc) : "incomplete",
			r.stored, kcfg->keys, r.errors + r.proto_errors);
		return -1;
	}
	bench_note("%s: preloaded %u keys in %.2f s (%.0f k sets/s)",
		   s->ops->key, kcfg->keys, (double)r.elapsed_ns / 1e9,
		   (double)kcfg->keys / ((double)r.elapsed_ns / 1e9) / 1e3);
	return 0;
}

static int memcached_start(struct sut *s, const struct kvload_config *kcfg)
{
	char bin[PATH_MAX], port[16], conns[16];
	bool root = geteuid() == 0;
	/* memcached refuses to run as root unless told which user. */
	char *argv[] = { bin, "-t", "1", "-U", "0", "-l", SERVER_ADDR,
			 "-p", port, "-m", SERVER_MEM_MB, "-c", conns,
			 root ? "-u" : NULL, "root", NULL };

	if (!find_on_path("memcached", bin, sizeof(bin))) {
		fprintf(stderr, "\nkv: memcached not found (apt-get install "
				"memcached, or scripts/setup.sh)\n");
		return -1;
	}
	s->port = free_port();
	if (s->port < 0) {
		fprintf(stderr, "\nkv: no free TCP port\n");
		return -1;
	}
	snprintf(port, sizeof(port), "%d", s->port);
	/* Its default limit of 1024 connections, or ours and some. */
	snprintf(conns, sizeof(conns), "%u",
		 kcfg->conns + 64 > 1024 ? kcfg->conns + 64 : 1024);
	return lxs_launch(s, argv, kcfg);
}

static int linux_kv_start(struct sut *s, const struct kvload_config *kcfg)
{
	char bin[PATH_MAX + 32], port[16];
	char *argv[] = { bin, "-t", "1", "-l", SERVER_ADDR, "-p", port,
			 "-m", SERVER_MEM_MB, NULL };

	/* The build tree, then an installed copy beside us. */
	snprintf(bin, sizeof(bin), "%s/../apps/kv/ebbrt-kv-linux", self_dir);
	if (access(bin, X_OK) != 0)
		snprintf(bin, sizeof(bin), "%s/ebbrt-kv-linux", self_dir);
	if (access(bin, X_OK) != 0) {
		fprintf(stderr, "\nkv: no ebbrt-kv-linux in %s/../apps/kv or "
				"%s: build the tree\n",
			self_dir, self_dir);
		return -1;
	}
	s->port = free_port();
	if (s->port < 0) {
		fprintf(stderr, "\nkv: no free TCP port\n");
		return -1;
	}
	snprintf(port, sizeof(port), "%d", s->port);
	return lxs_launch(s, argv, kcfg);
}

static void lxs_stop(struct sut *s)
{
	int status;

	lx_close(s->lx);
	s->lx = NULL;
	if (s->pid <= 0)
		return;
	kill(s->pid, SIGTERM);
	if (!bench_wait_for(s->pid, STOP_TIMEOUT_S, &status)) {
		bench_note("%s: did not stop within %.0f s of SIGTERM: killed",
			   s->ops->key, STOP_TIMEOUT_S);
		kill(s->pid, SIGKILL);
		while (waitpid(s->pid, &status, 0) < 0 && errno == EINTR)
			;
	}
	s->pid = 0;
}

/* One test: kvload on this thread (pinned to CPU_CLIENT) over the
 * connections start() opened. */
static int lxs_run(struct sut *s, const struct kvload_config *kcfg,
		   const struct loadgen_config *lcfg, struct kv_out *out)
{
	struct kvload *kl;
	double c0, c1;
	int rc;

	if (s->lx == NULL) {
		fprintf(stderr, "\nkv: %s: no connections (an earlier test "
				"broke them)\n",
			s->ops->key);
		return -1;
	}
	kl = kvload_create(kcfg, &lx_transport, s->lx);
	if (kl == NULL) {
		fprintf(stderr, "\nkv: kvload_create: %s\n", strerror(errno));
		return -1;
	}
	c0 = proc_cpu_ns(s->pid);
	rc = kvload_start_test(kl, lcfg);
	if (rc == 0)
		rc = kvload_run(kl);
	c1 = proc_cpu_ns(s->pid);
	kvload_result(kl, &out->r);
	kvload_destroy(kl);
	out->server_cpu_ns = c0 >= 0 && c1 >= 0 ? c1 - c0 : -1;
	if (rc != 0) {
		/* Replies may still be on their way: these connections are
		 * out of step for good. */
		fprintf(stderr, "\nkv: %s: %s\n", s->ops->key, strerror(-rc));
		lx_close(s->lx);
		s->lx = NULL;
		return -1;
	}
	return 0;
}

static const struct sut_ops memcached_ops = {
	.key = "memcached",
	.what = "Debian's memcached -t 1 (one worker thread), epoll",
	.start = memcached_start,
	.run = lxs_run,
	.stop = lxs_stop,
};

static const struct sut_ops linux_kv_ops = {
	.key = "linux-kv",
	.what = "ebbrt-kv-linux -t 1: apps/kv's engine behind one epoll "
		"thread",
	.start = linux_kv_start,
	.run = lxs_run,
	.stop = lxs_stop,
};

/* --- ebbrt: two nodes over the virtual wire, one cluster per test ---
 *
 * `ebbrt run --nodes 2 --wire` of ebbrt-bench-kv-node (bench/kv_node.c):
 * node 2 (cpu CPU_SERVER) serves ebb-kv, apps/kv's engine on the ebbrt
 * TCP stack, from a store of SERVER_MEM_MB; node 1 (cpu CPU_CLIENT) opens
 * the connections over the wire, preloads every key, runs the test with
 * the same kvload as here and prints one RESULT line. Kernel bypass at
 * both ends, as bench/udp.c's ebbrt system. */

#define EB_CLUSTER "benchkv"
#define EB_SUBNET "10.84.0.0"
/* Besides warm-up and measurement: start, connections, preload, drain
 * (kvload's 10 s at most), stop. */
#define EB_SLACK_S 40.0

static char eb_ebbrt[PATH_MAX + 32], eb_node[PATH_MAX + 32];

static int eb_start(struct sut *s, const struct kvload_config *kcfg)
{
	(void)kcfg;
	/* The build tree (as bench/udp.c), then an installed copy beside
	 * us. */
	snprintf(eb_ebbrt, sizeof(eb_ebbrt), "%s/../frontend/ebbrt", self_dir);
	if (access(eb_ebbrt, X_OK) != 0)
		snprintf(eb_ebbrt, sizeof(eb_ebbrt), "%s/ebbrt", self_dir);
	snprintf(eb_node, sizeof(eb_node), "%s/ebbrt-bench-kv-node", self_dir);
	if (access(eb_ebbrt, X_OK) != 0 || access(eb_node, X_OK) != 0) {
		fprintf(stderr, "\nkv: no %s/../frontend/ebbrt (or %s/ebbrt) "
				"or %s: build the tree\n",
			self_dir, self_dir, eb_node);
		return -1;
	}
	snprintf(s->cmd, sizeof(s->cmd),
		 "ebbrt run --nodes 2 --wire --cpus %d,%d -- "
		 "ebbrt-bench-kv-node -m %s, one cluster per test",
		 CPU_CLIENT, CPU_SERVER, SERVER_MEM_MB);
	return 0;
}

static void eb_stop(struct sut *s)
{
	if (s->eb_retx || s->eb_tx_full)
		bench_note("ebbrt: over its %" PRIu64 " tests TCP sent %" PRIu64
			   " segments again (%" PRIu64 " retransmission "
			   "timeouts, 50 ms at least) and the wire refused %"
			   PRIu64 " frames (ring full): overload, or a node "
			   "descheduled",
			   s->eb_tests, s->eb_retx, s->eb_rto, s->eb_tx_full);
}

/* The value after " @key=" in @line; 0 when it is not there. */
static double fnum(const char *line, const char *key)
{
	char k[48];
	const char *p;

	snprintf(k, sizeof(k), " %s=", key);
	p = strstr(line, k);
	return p ? strtod(p + strlen(k), NULL) : 0;
}

static uint64_t fu64(const char *line, const char *key)
{
	char k[48];
	const char *p;

	snprintf(k, sizeof(k), " %s=", key);
	p = strstr(line, k);
	return p ? strtoull(p + strlen(k), NULL, 10) : 0;
}

static void eb_parse(const char *r, struct kv_out *out)
{
	struct loadgen_result *g = &out->r.lg;

	memset(&out->r, 0, sizeof(out->r));
	loadgen_hist_reset(&g->hist);	/* not carried over */
	g->mode = strstr(r, " mode=open") ? LOADGEN_OPEN : LOADGEN_CLOSED;
	g->duration_s = fnum(r, "duration_s");
	g->offered_rps = fnum(r, "offered");
	g->sent_rps = fnum(r, "sent_rps");
	g->achieved_rps = fnum(r, "achieved");
	g->sent = fu64(r, "sent");
	g->replied = fu64(r, "replied");
	g->lost = fu64(r, "lost");
	g->send_errors = fu64(r, "send_errors");
	g->late = fu64(r, "late");
	g->bad = fu64(r, "bad");
	g->max_lag_ns = fu64(r, "max_lag_ns");
	g->p50_ns = fnum(r, "p50_ns");
	g->p99_ns = fnum(r, "p99_ns");
	g->p999_ns = fnum(r, "p999_ns");
	g->mean_ns = fnum(r, "mean_ns");
	g->min_ns = fnum(r, "min_ns");
	g->max_ns = fnum(r, "max_ns");
	out->r.gets = fu64(r, "gets");
	out->r.sets = fu64(r, "sets");
	out->r.hits = fu64(r, "hits");
	out->r.misses = fu64(r, "misses");
	out->r.stored = fu64(r, "stored");
	out->r.errors = fu64(r, "errors");
	out->r.proto_errors = fu64(r, "proto_errors");
	out->r.send_full = fu64(r, "send_full");
	out->r.elapsed_ns = fu64(r, "elapsed_ns");
	out->r.status = (int)fnum(r, "status");
	out->server_cpu_ns = strstr(r, " server_cpu_ns=") ?
				     fnum(r, "server_cpu_ns") : -1;
}

/* `ebbrt stop` of our cluster: for one that went silent. */
static void eb_stop_cluster(void)
{
	char *argv[] = { eb_ebbrt, "stop", "--name", EB_CLUSTER, NULL };
	pid_t k;

	fflush(NULL);
	k = fork();
	if (k == 0) {
		int null = open("/dev/null", O_WRONLY);

		if (null >= 0) {
			dup2(null, STDOUT_FILENO);
			dup2(null, STDERR_FILENO);
		}
		execv(eb_ebbrt, argv);
		_exit(127);
	}
	if (k > 0)
		while (waitpid(k, NULL, 0) < 0 && errno == EINTR)
			;
}

static int eb_run(struct sut *s, const struct kvload_config *kcfg,
		  const struct loadgen_config *lcfg, struct kv_out *out)
{
	char spec[64], dur[32], warm[32], conns[16], keys[16], ratio[32];
	char line[2048], last[2][240] = { "", "" };
	char cpus[16];
	char *argv[] = { eb_ebbrt, "run", "--nodes", "2", "--wire",
			 "--cpus", cpus, "--name", EB_CLUSTER, "--subnet",
			 EB_SUBNET, "--", eb_node, "--test", spec,
			 "--duration-ms", dur, "--warmup-ms", warm,
			 "--conns", conns, "--keys", keys, "--get-ratio",
			 ratio, "--dist",
			 kcfg->dist == KVLOAD_ZIPF ? "zipf" : "uniform",
			 "-m", SERVER_MEM_MB, NULL };
	uint64_t end = bench_now_ns() +
		       (uint64_t)((opt.duration_s + opt.warmup_s + EB_SLACK_S) *
				  1e9);
	bool got = false, ok = false;
	int po[2], status = 0;
	struct rusage ru;
	unsigned nlast = 0;
	pid_t pid, w;

	if (lcfg->mode == LOADGEN_OPEN)
		snprintf(spec, sizeof(spec), "open:%.0f", lcfg->rate);
	else
		snprintf(spec, sizeof(spec), "closed:%u", lcfg->window);
	snprintf(cpus, sizeof(cpus), "%d,%d", CPU_CLIENT, CPU_SERVER);
	snprintf(dur, sizeof(dur), "%.0f", (double)lcfg->duration_ns / 1e6);
	snprintf(warm, sizeof(warm), "%.0f", (double)lcfg->warmup_ns / 1e6);
	snprintf(conns, sizeof(conns), "%u", kcfg->conns);
	snprintf(keys, sizeof(keys), "%u", kcfg->keys);
	snprintf(ratio, sizeof(ratio), "%.6f", kcfg->get_ratio);
	if (pipe2(po, O_CLOEXEC) != 0) {
		fprintf(stderr, "\nkv: pipe: %s\n", strerror(errno));
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
		fprintf(stderr, "\nkv: fork: %s\n", strerror(errno));
		close(po[0]);
		return -1;
	}
	while (bench_read_line(po[0], line, sizeof(line), end)) {
		const char *r = strstr(line, "RESULT ");
		const char *p = strstr(line, "PRELOAD ");
		const char *n = strstr(line, "NET node=");

		if (n != NULL) {
			s->eb_retx += fu64(n, "tcp_retransmits");
			s->eb_rto += fu64(n, "tcp_timeouts");
			s->eb_tx_full += fu64(n, "drop_tx_full");
			continue;
		}
		if (r == NULL && p == NULL) {
			/* Kept for a failure: what the cluster said last. */
			snprintf(last[nlast++ % 2], sizeof(last[0]), "%.200s",
				 line);
			if (strstr(line, "ERROR") != NULL ||
			    (strstr(line, "ebbrt:") != NULL &&
			     strstr(line, "stopping the cluster") == NULL &&
			     strstr(line, "stopped") == NULL))
				bench_note("ebbrt %s: %.180s", spec, line);
			continue;
		}
		if (p != NULL) {
			double ns = fnum(p, "elapsed_ns");

			if (!s->noted_preload && ns > 0) {
				s->noted_preload = true;
				bench_note("ebbrt: preloaded %u keys in %.2f s "
					   "(%.0f k sets/s; again before "
					   "every test)",
					   kcfg->keys, ns / 1e9,
					   (double)kcfg->keys / (ns / 1e9) /
						   1e3);
			}
			continue;
		}
		eb_parse(r, out);
		got = true;
		s->eb_tests++;
	}
	close(po[0]);
	if (!got)
		eb_stop_cluster();	/* silent too long, or it failed */
	/* Its rusage holds the nodes too: the frontend reaps them. */
	for (;;) {
		w = wait4(pid, &status, WNOHANG, &ru);
		if (w == pid || (w < 0 && errno != EINTR))
			break;
		if (bench_now_ns() > end + (uint64_t)(STOP_TIMEOUT_S * 4e9)) {
			kill(pid, SIGKILL);
			while ((w = wait4(pid, &status, 0, &ru)) < 0 &&
			       errno == EINTR)
				;
			break;
		}
		bench_sleep_ns(10000000);
	}
	out->started_cpu_ns = w == pid ? bench_rusage_ns(&ru) : -1;
	if (w != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		/* The figures came; what failed after them is noted. */
		if (got)
			bench_note("ebbrt %s: the cluster ended with status %d "
				   "after its result",
				   spec,
				   WIFEXITED(status) ? WEXITSTATUS(status)
						     : -1);
	}
	if (!got) {
		fprintf(stderr, "\nkv: ebbrt %s: no RESULT from node 1; the "
				"cluster said last:\n  %s\n  %s\n",
			spec, last[nlast % 2], last[(nlast + 1) % 2]);
		return -1;
	}
	ok = out->r.status == 0;
	if (!ok)
		fprintf(stderr, "\nkv: ebbrt %s: %s\n", spec,
			strerror(-out->r.status));
	return ok ? 0 : -1;
}

static const struct sut_ops ebbrt_ops = {
	.key = "ebbrt",
	.what = "ebbrt-bench-kv-node: ebb-kv on the ebbrt TCP stack, one "
		"polling core; generator node over a virtual wire",
	.start = eb_start,
	.run = eb_run,
	.stop = eb_stop,
	.server_polls = true,
};

/* The systems, baseline first; --sut picks among them by key. */
static struct sut suts[] = {
	{ .ops = &memcached_ops },
	{ .ops = &linux_kv_ops },
	{ .ops = &ebbrt_ops },
};
#define NSUT (sizeof(suts) / sizeof(suts[0]))

/* ===================================================================
 * Tests and results
 * =================================================================== */

enum test_kind { T_CLOSED, T_OPEN };

struct row {
	bool ok;
	enum test_kind kind;
	uint32_t window;	/* closed: requests in flight per connection */
	double frac;		/* open: fraction of the system's peak */
	double rate;		/* open: offered requests/s */
	struct kv_out o;
	double wall_ns;
	double cli_pct, srv_pct;	/* busy share of the two cpus */
	double other_pct, steal_pct;	/* of both cpus: others, hypervisor */
	double us_per_req;	/* server cpu per request, -1 unknown */
};

struct series {
	unsigned n;
	struct row row[MAX_TESTS];
	int peak;		/* the closed row of the highest rate */
	int slo;		/* the open row of the highest rate within the
				 * SLO, -1 when none */
};

static struct series results[NSUT][2];

static void test_name(const struct row *w, char *buf, size_t len)
{
	if (w->kind == T_CLOSED)
		snprintf(buf, len, "closed %ux%u", opt.conns, w->window);
	else
		snprintf(buf, len, "open %3.0f%% of peak", w->frac * 100);
}

static bool within_slo(const struct row *w)
{
	const struct loadgen_result *r = &w->o.r.lg;

	return w->ok && w->kind == T_OPEN && r->replied > 0 &&
	       r->p99_ns <= SLO_NS &&
	       (double)r->lost <= SLO_LOSS * (double)r->sent &&
	       w->o.r.errors + w->o.r.proto_errors == 0;
}

static void kv_config(struct kvload_config *kc, int dist)
{
	kvload_config_default(kc);
	kc->conns = opt.conns;
	kc->keys = opt.keys;
	kc->get_ratio = opt.get_ratio;
	kc->dist = dist ? KVLOAD_ZIPF : KVLOAD_UNIFORM;
}

/* Busy time of cpu @which from /proc/stat, ns; @irq gets the part in
 * interrupts and softirqs (charged to no process), @steal the
 * hypervisor's. */
static double cpu_busy_ns(int which, double *irq, double *steal)
{
	struct bench_cpu_stat st;

	*irq = *steal = 0;
	if (bench_cpu_stat(&which, 1, &st) != 1)
		return -1;
	*irq = st.irq;
	*steal = st.steal;
	return st.busy;
}

static double self_cpu_ns(void)
{
	struct rusage ru;

	return getrusage(RUSAGE_SELF, &ru) == 0 ? bench_rusage_ns(&ru) : 0;
}

/* Run @w (kind, window or frac filled) on system @si with distribution
 * @dist. */
static int run_row(unsigned si, int dist, struct row *w)
{
	struct sut *s = &suts[si];
	struct kvload_config kc;
	struct loadgen_config lc;
	double ci0, cs0, si0, ss0, ci1, cs1, si1, ss1, self0, wall, other;
	double c0 = cpu_busy_ns(CPU_CLIENT, &ci0, &cs0);
	double s0 = cpu_busy_ns(CPU_SERVER, &si0, &ss0);
	uint64_t t0 = bench_now_ns(), requests;
	char name[48];

	self0 = self_cpu_ns();
	kv_config(&kc, dist);
	loadgen_config_default(&lc);
	lc.warmup_ns = (uint64_t)(opt.warmup_s * 1e9);
	lc.duration_ns = (uint64_t)(opt.duration_s * 1e9);
	if (w->kind == T_CLOSED) {
		lc.mode = LOADGEN_CLOSED;
		lc.window = w->window;
	} else {
		lc.mode = LOADGEN_OPEN;
		lc.rate = w->rate;
	}
	w->o.started_cpu_ns = -1;
	if (s->ops->run(s, &kc, &lc, &w->o) != 0)
		return -1;
	wall = (double)(bench_now_ns() - t0);
	w->wall_ns = wall;
	w->cli_pct = (cpu_busy_ns(CPU_CLIENT, &ci1, &cs1) - c0) / wall * 100;
	w->srv_pct = (cpu_busy_ns(CPU_SERVER, &si1, &ss1) - s0) / wall * 100;
	requests = w->o.r.gets + w->o.r.sets;
	w->us_per_req = w->o.server_cpu_ns >= 0 && requests
				? w->o.server_cpu_ns / 1e3 / (double)requests
				: -1;
	w->ok = true;
	test_name(w, name, sizeof(name));
	/* What ran on the two cpus that is neither us, the server (or the
	 * cluster run() started), nor interrupts; ticks: only a share well
	 * above their resolution tells. */
	other = (w->cli_pct + w->srv_pct) / 100 * wall - (ci1 - ci0) -
		(si1 - si0) - (self_cpu_ns() - self0) -
		(w->o.started_cpu_ns >= 0 ? w->o.started_cpu_ns
		 : w->o.server_cpu_ns > 0 ? w->o.server_cpu_ns : 0);
	w->other_pct = other / (2 * wall) * 100;
	w->steal_pct = (cs1 - cs0 + ss1 - ss0) / (2 * wall) * 100;
	if (w->o.r.errors || w->o.r.proto_errors)
		bench_note("%s %s %s: %" PRIu64 " error replies, %" PRIu64
			   " protocol errors",
			   s->ops->key, dist_name[dist], name, w->o.r.errors,
			   w->o.r.proto_errors);
	/* The generator is one busy core that never blocks: its cpu is
	 * always busy, and how late it sent is what says it fell behind. */
	if (w->kind == T_OPEN && w->o.r.lg.max_lag_ns > 1000000 &&
	    within_slo(w))
		bench_note("%s %s %s: the generator sent up to %.1f ms behind "
			   "its schedule (counted in the latencies)",
			   s->ops->key, dist_name[dist], name,
			   (double)w->o.r.lg.max_lag_ns / 1e6);
	if (w->o.r.send_full)
		bench_note("%s %s %s: %" PRIu64 " requests refused by full "
			   "send queues (counted lost)",
			   s->ops->key, dist_name[dist], name,
			   w->o.r.send_full);
	return 0;
}

static unsigned nsteps, step;
static int failed;

/* One row with its progress line. */
static void progress_row(unsigned si, int dist, struct row *w)
{
	uint64_t t0 = bench_now_ns();
	char name[48];

	test_name(w, name, sizeof(name));
	fprintf(stderr, "[%u/%u] %s %s: %s...", ++step, nsteps,
		suts[si].ops->key, dist_name[dist], name);
	if (run_row(si, dist, w) != 0) {
		fprintf(stderr, " FAILED\n");
		failed++;
		return;
	}
	fprintf(stderr, " %.1f k/s, p99 %.0f us", w->o.r.lg.achieved_rps / 1e3,
		w->o.r.lg.p99_ns / 1e3);
	if (w->o.r.lg.lost)
		fprintf(stderr, ", %" PRIu64 " lost", w->o.r.lg.lost);
	fprintf(stderr, ", %.1f s\n", (double)(bench_now_ns() - t0) / 1e9);
}

/* All the tests of system @si with distribution @dist. */
static void run_series(unsigned si, int dist)
{
	struct series *S = &results[si][dist];
	double peak = 0, lo = 0, hi = 0, worst = 0, steal = 0;
	unsigned skewed = 0, overloaded = 0;

	S->peak = S->slo = -1;
	for (unsigned k = 0; k < NPEAK; k++) {
		struct row *w = &S->row[S->n++];

		w->kind = T_CLOSED;
		w->window = peak_window[k];
		progress_row(si, dist, w);
		if (w->ok && w->o.r.lg.achieved_rps > peak) {
			peak = w->o.r.lg.achieved_rps;
			S->peak = (int)(S->n - 1);
		}
	}
	if (peak <= 0) {
		step += NSWEEP + (opt.quick ? 1 : MAX_REFINE);
		return;
	}
	for (unsigned k = 0; k < NSWEEP; k++) {
		struct row *w;

		/* Two points in a row that lost a tenth of their requests:
		 * overload, and higher rates only take longer to drain. */
		if (overloaded >= 2) {
			step += NSWEEP - k;
			bench_note("%s %s: sweep stopped at %.0f%% of the peak, "
				   "overloaded",
				   suts[si].ops->key, dist_name[dist],
				   sweep_frac[k - 1] * 100);
			break;
		}
		w = &S->row[S->n++];
		w->kind = T_OPEN;
		w->frac = sweep_frac[k];
		w->rate = peak * w->frac;
		progress_row(si, dist, w);
		if (w->ok && (double)w->o.r.lg.lost > 0.1 * (double)w->o.r.lg.sent)
			overloaded++;
		else
			overloaded = 0;
		if (within_slo(w)) {
			lo = w->frac;
			hi = 0;
		} else if (hi == 0 && w->ok) {
			hi = w->frac;
		}
	}
	/* Halve the gap between the last fraction within the SLO and the
	 * first above it. */
	for (unsigned k = 0; k < (opt.quick ? 1u : MAX_REFINE); k++) {
		struct row *w;

		if (lo == 0 || hi == 0) {
			step++;
			continue;
		}
		w = &S->row[S->n++];
		w->kind = T_OPEN;
		w->frac = (lo + hi) / 2;
		w->rate = peak * w->frac;
		progress_row(si, dist, w);
		if (within_slo(w))
			lo = w->frac;
		else
			hi = w->frac;
	}
	for (unsigned i = 0; i < S->n; i++) {
		const struct row *w = &S->row[i];

		if (w->ok && (w->other_pct >= 10 || w->steal_pct >= 5)) {
			skewed++;
			worst = w->other_pct > worst ? w->other_pct : worst;
			steal = w->steal_pct > steal ? w->steal_pct : steal;
		}
	}
	if (skewed)
		bench_note("%s %s: in %u of %u tests other work used up to "
			   "~%.0f%% and the hypervisor stole up to %.0f%% of "
			   "cpus %d,%d: figures skewed",
			   suts[si].ops->key, dist_name[dist], skewed, S->n,
			   worst, steal, CPU_CLIENT, CPU_SERVER);
	for (unsigned i = 0; i < S->n; i++)
		if (within_slo(&S->row[i]) &&
		    (S->slo < 0 || S->row[i].o.r.lg.achieved_rps >
					   S->row[S->slo].o.r.lg.achieved_rps))
			S->slo = (int)i;
}

/* ===================================================================
 * Output
 * =================================================================== */

static int baseline_sut(void)
{
	for (unsigned si = 0; si < NSUT; si++)
		if (suts[si].selected && suts[si].ops == &memcached_ops)
			return (int)si;
	return -1;
}

static double peak_rps(const struct series *S)
{
	return S->peak >= 0 ? S->row[S->peak].o.r.lg.achieved_rps : 0;
}

static double slo_rps(const struct series *S)
{
	return S->slo >= 0 ? S->row[S->slo].o.r.lg.achieved_rps : 0;
}

static void fmt_us_req(char *buf, size_t len, const struct series *S,
		       int i)
{
	if (i < 0 || S->row[i].us_per_req < 0)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.2f", S->row[i].us_per_req);
}

static void print_table(void)
{
	int b = baseline_sut();

	printf("\n%-10s %-8s %-18s %9s %9s %8s %8s %8s %8s %6s %5s %6s %8s "
	       "%5s %5s\n",
	       "system", "keys", "test", "offered", "achieved", "p50", "p99",
	       "p99.9", "max", "lost", "errs", "hit%", "srv us/r", "cli%",
	       "srv%");
	for (unsigned si = 0; si < NSUT; si++) {
		if (!suts[si].selected)
			continue;
		for (int d = 0; d < 2; d++) {
			const struct series *S = &results[si][d];

			for (unsigned i = 0; i < S->n; i++) {
				const struct row *w = &S->row[i];
				const struct kvload_result *r = &w->o.r;
				char name[48], us[16];
				double gets = (double)(r->hits + r->misses);

				test_name(w, name, sizeof(name));
				if (!w->ok) {
					printf("%-10s %-8s %-18s %9s\n",
					       suts[si].ops->key, dist_name[d],
					       name, "failed");
					continue;
				}
				fmt_us_req(us, sizeof(us), S, (int)i);
				printf("%-10s %-8s %-18s %9.1f %9.1f %8.1f "
				       "%8.1f %8.1f %8.0f %6" PRIu64
				       " %5" PRIu64 " %6.1f %8s %5.0f %5.0f%s\n",
				       suts[si].ops->key, dist_name[d], name,
				       r->lg.offered_rps / 1e3,
				       r->lg.achieved_rps / 1e3,
				       r->lg.p50_ns / 1e3, r->lg.p99_ns / 1e3,
				       r->lg.p999_ns / 1e3, r->lg.max_ns / 1e3,
				       r->lg.lost, r->errors + r->proto_errors,
				       gets > 0 ? (double)r->hits / gets * 100
						: 0,
				       us, w->cli_pct, w->srv_pct,
				       (int)i == S->slo ? "  <- p99 SLO" : "");
			}
		}
	}
	printf("\nrates in k requests/s, latencies in us. memcached text "
	       "protocol over loopback TCP (ebbrt:\nover its virtual wire), "
	       "%u connections, %u keys of 32 bytes, 100-byte values,\n"
	       "%.0f%% get / %.0f%% set; client on cpu %d, server on cpu %d. "
	       "Closed CxW: C connections\nwith W requests each in flight; "
	       "open: Poisson arrivals at a fraction of the\nsystem's own "
	       "closed-loop peak, latency from the scheduled arrival. srv "
	       "us/r:\nserver process cpu time per request over the whole "
	       "test (ebbrt: its polling\ncore's wall time); cli%%/srv%%: "
	       "busy time of the client/server cpu. <- p99 SLO:\nthe "
	       "highest rate with p99 <= %.0f us, at most %.1f%% lost and no "
	       "errors.\n",
	       opt.conns, opt.keys, opt.get_ratio * 100,
	       (1 - opt.get_ratio) * 100, CPU_CLIENT, CPU_SERVER,
	       SLO_NS / 1e3, SLO_LOSS * 100);
	for (unsigned si = 0; si < NSUT; si++)
		if (suts[si].selected)
			printf("%-10s %s\n%-10s   (%s)\n", suts[si].ops->key,
			       suts[si].ops->what, "",
			       suts[si].cmd[0] ? suts[si].cmd : "not started");

	printf("\n%-10s %-8s %10s %14s %12s %14s %10s %12s\n", "system",
	       "keys", "peak k/s", "p99<=500us k/s", "us/r @peak",
	       "us/r @p99<=500", "peak x", "@500us x");
	for (unsigned si = 0; si < NSUT; si++) {
		if (!suts[si].selected)
			continue;
		for (int d = 0; d < 2; d++) {
			const struct series *S = &results[si][d];
			const struct series *B = b >= 0 ? &results[b][d] : NULL;
			char up[16], us[16], px[16], sx[16];

			if (!opt.dist[d])
				continue;
			fmt_us_req(up, sizeof(up), S, S->peak);
			fmt_us_req(us, sizeof(us), S, S->slo);
			if (B != NULL && peak_rps(B) > 0)
				snprintf(px, sizeof(px), "%.2fx",
					 peak_rps(S) / peak_rps(B));
			else
				snprintf(px, sizeof(px), "-");
			if (B != NULL && slo_rps(B) > 0)
				snprintf(sx, sizeof(sx), "%.2fx",
					 slo_rps(S) / slo_rps(B));
			else
				snprintf(sx, sizeof(sx), "-");
			printf("%-10s %-8s %10.1f %14.1f %12s %14s %10s %12s\n",
			       suts[si].ops->key, dist_name[d],
			       peak_rps(S) / 1e3, slo_rps(S) / 1e3, up, us, px,
			       sx);
			/* A polling server's cpu is busy whatever the load. */
			if (S->peak >= 0 && !suts[si].ops->server_polls &&
			    S->row[S->peak].srv_pct < 90)
				bench_note("%s %s: the server cpu was %.0f%% "
					   "busy at the peak: the generator "
					   "(cpu %d %.0f%% busy) may set it",
					   suts[si].ops->key, dist_name[d],
					   S->row[S->peak].srv_pct,
					   CPU_CLIENT,
					   S->row[S->peak].cli_pct);
			if (S->n > NPEAK && S->slo < 0)
				bench_note("%s %s: no open-loop rate met p99 <= "
					   "%.0f us",
					   suts[si].ops->key, dist_name[d],
					   SLO_NS / 1e3);
		}
	}
	if (b >= 0)
		printf("x: against memcached with the same keys\n");
}

/* The ratios the issue asks for, from what ran. */
static void print_targets(void)
{
	int b = baseline_sut();

	if (b < 0) {
		printf("\nno memcached in this run: no ratios\n");
		return;
	}
	printf("\n");
	for (unsigned si = 0; si < NSUT; si++) {
		if (!suts[si].selected || (int)si == b)
			continue;
		for (int d = 0; d < 2; d++) {
			const struct series *S = &results[si][d];
			const struct series *B = &results[b][d];

			if (!opt.dist[d])
				continue;
			if (slo_rps(B) > 0 && slo_rps(S) > 0)
				printf("%s / memcached, %s keys, throughput at "
				       "p99 500us: %.2fx (%.1f vs %.1f k/s)\n",
				       suts[si].ops->key, dist_name[d],
				       slo_rps(S) / slo_rps(B),
				       slo_rps(S) / 1e3, slo_rps(B) / 1e3);
			else
				printf("%s / memcached, %s keys, throughput at "
				       "p99 500us: n/a (%s has none)\n",
				       suts[si].ops->key, dist_name[d],
				       slo_rps(B) > 0 ? suts[si].ops->key
						      : "memcached");
		}
	}
	/* The target of the issue: ebb-kv on an ebbrt node at 3x, one
	 * server core each (memcached -t 1, one ebbrt core). */
	for (unsigned si = 0; si < NSUT; si++) {
		if (!suts[si].selected ||
		    strcmp(suts[si].ops->key, "ebbrt") != 0)
			continue;
		for (int d = 0; d < 2; d++) {
			double e = slo_rps(&results[si][d]);
			double m = slo_rps(&results[b][d]);

			if (!opt.dist[d])
				continue;
			if (m > 0)
				printf("target: ebbrt >= 3x memcached "
				       "throughput at p99 500us per server "
				       "core, %s keys: %.2fx (%.1f vs %.1f "
				       "k/s) %s\n",
				       dist_name[d], e / m, e / 1e3, m / 1e3,
				       e >= 3 * m ? "ok" : "miss");
			else
				printf("target: ebbrt >= 3x memcached "
				       "throughput at p99 500us per server "
				       "core, %s keys: n/a (memcached met "
				       "no p99 <= 500 us; ebbrt %.1f k/s)\n",
				       dist_name[d], e / 1e3);
		}
	}
}

/* One JSON object per (system, keys, test, statistic) and the summary
 * figures, in the shape of ebbrt-bench-micro's; the baseline is
 * memcached's figure on the same test when it ran one. */
static int write_json(const char *path)
{
	FILE *f = bench_json_open(path, "kv");
	int b = baseline_sut();
	char metric[128], base_name[64];
	bool first = true;

	if (f == NULL)
		return -1;
	snprintf(base_name, sizeof(base_name),
		 "memcached, same client and test");
	for (unsigned si = 0; si < NSUT; si++) {
		if (!suts[si].selected)
			continue;
		for (int d = 0; d < 2; d++) {
			const struct series *S = &results[si][d];
			const struct series *B = b >= 0 ? &results[b][d] : NULL;
			const char *key = suts[si].ops->key;
			struct {
				const char *stat, *unit;
				double v, base;
				bool has_base;
			} sum[] = {
				{ "peak", "kreq/s", peak_rps(S) / 1e3,
				  B ? peak_rps(B) / 1e3 : 0,
				  B && B->peak >= 0 },
				{ "throughput at p99<=500us", "kreq/s",
				  slo_rps(S) / 1e3, B ? slo_rps(B) / 1e3 : 0,
				  B && B->slo >= 0 },
				{ "server cpu per request at peak", "us",
				  S->peak >= 0 ? S->row[S->peak].us_per_req
					       : -1,
				  B && B->peak >= 0
					  ? B->row[B->peak].us_per_req
					  : 0,
				  B && B->peak >= 0 },
				{ "server cpu per request at p99<=500us", "us",
				  S->slo >= 0 ? S->row[S->slo].us_per_req : -1,
				  B && B->slo >= 0 ? B->row[B->slo].us_per_req
						   : 0,
				  B && B->slo >= 0 },
			};
			uint64_t errors = 0;

			if (!opt.dist[d])
				continue;
			for (size_t k = 0; k < sizeof(sum) / sizeof(sum[0]);
			     k++) {
				bool eb = strcmp(key, "ebbrt") == 0 && k == 1;
				struct bench_json_row row = {
					.metric = metric,
					.value = sum[k].v,
					.unit = sum[k].unit,
					.baseline = sum[k].base,
					.no_baseline = !sum[k].has_base,
					.baseline_name = base_name,
					.stat = sum[k].stat,
					.target = eb ? ">=3x" : NULL,
					.ok = eb && sum[k].has_base &&
							      sum[k].base > 0
						      ? sum[k].v >=
								3 * sum[k].base
						      : -1,
				};

				snprintf(metric, sizeof(metric), "kv %s %s %s",
					 key, dist_name[d], sum[k].stat);
				bench_json_put(f, &row, &first);
			}
			for (unsigned i = 0; i < S->n; i++)
				errors += S->row[i].o.r.errors +
					  S->row[i].o.r.proto_errors;
			{
				struct bench_json_row row = {
					.metric = metric,
					.value = (double)errors,
					.unit = "replies",
					.no_baseline = true,
					.baseline_name = base_name,
					.stat = "errors",
				};

				snprintf(metric, sizeof(metric),
					 "kv %s %s errors", key, dist_name[d]);
				bench_json_put(f, &row, &first);
			}
			for (unsigned i = 0; i < S->n; i++) {
				const struct row *w = &S->row[i];
				const struct row *bw = NULL;
				char name[48], bname[48];

				if (!w->ok)
					continue;
				test_name(w, name, sizeof(name));
				/* memcached's row of the same name. */
				for (unsigned j = 0; B != NULL && j < B->n;
				     j++) {
					test_name(&B->row[j], bname,
						  sizeof(bname));
					if (B->row[j].ok &&
					    strcmp(name, bname) == 0)
						bw = &B->row[j];
				}
				struct {
					const char *stat, *unit;
					double v, base;
				} m[] = {
					{ "offered", "kreq/s",
					  w->o.r.lg.offered_rps / 1e3,
					  bw ? bw->o.r.lg.offered_rps / 1e3
					     : 0 },
					{ "achieved", "kreq/s",
					  w->o.r.lg.achieved_rps / 1e3,
					  bw ? bw->o.r.lg.achieved_rps / 1e3
					     : 0 },
					{ "p50", "us", w->o.r.lg.p50_ns / 1e3,
					  bw ? bw->o.r.lg.p50_ns / 1e3 : 0 },
					{ "p99", "us", w->o.r.lg.p99_ns / 1e3,
					  bw ? bw->o.r.lg.p99_ns / 1e3 : 0 },
					{ "p99.9", "us",
					  w->o.r.lg.p999_ns / 1e3,
					  bw ? bw->o.r.lg.p999_ns / 1e3 : 0 },
					{ "lost", "requests",
					  (double)w->o.r.lg.lost,
					  bw ? (double)bw->o.r.lg.lost : 0 },
					{ "server cpu per request", "us",
					  w->us_per_req,
					  bw ? bw->us_per_req : 0 },
				};

				for (size_t k = 0; k < sizeof(m) / sizeof(m[0]);
				     k++) {
					struct bench_json_row row = {
						.metric = metric,
						.value = m[k].v,
						.unit = m[k].unit,
						.baseline = m[k].base,
						.no_baseline = bw == NULL,
						.baseline_name = base_name,
						.stat = m[k].stat,
					};

					snprintf(metric, sizeof(metric),
						 "kv %s %s %s %s", key,
						 dist_name[d], name,
						 m[k].stat);
					bench_json_put(f, &row, &first);
				}
			}
		}
	}
	return bench_json_close(f, path, "kv") == 0 ? 0 : -1;
}

static int cmp_row_rate(const void *a, const void *b)
{
	const struct row *x = *(const struct row *const *)a;
	const struct row *y = *(const struct row *const *)b;

	return (x->rate > y->rate) - (x->rate < y->rate);
}

/* kv-latency.dat (one block per system and keys: the open-loop rows by
 * offered rate), kv-latency.gp and its image under --out. */
static int write_plot(void)
{
	char path[PATH_MAX], cmd[PATH_MAX + 64];
	unsigned block = 0;
	const char *term;
	FILE *f;

	if (mkdir(opt.out, 0755) != 0 && errno != EEXIST) {
		fprintf(stderr, "kv: %s: %s\n", opt.out, strerror(errno));
		return -1;
	}
	snprintf(path, sizeof(path), "%s/kv-latency.dat", opt.out);
	f = fopen(path, "w");
	if (f == NULL) {
		fprintf(stderr, "kv: %s: %s\n", path, strerror(errno));
		return -1;
	}
	fprintf(f, "# ebbrt-bench-kv: p99 vs throughput, open loop\n");
	for (unsigned si = 0; si < NSUT; si++) {
		for (int d = 0; d < 2; d++) {
			const struct series *S = &results[si][d];
			const struct row *sorted[MAX_TESTS];
			unsigned n = 0;

			if (!suts[si].selected || !opt.dist[d])
				continue;
			/* A test that lost everything has no p99. */
			for (unsigned i = 0; i < S->n; i++)
				if (S->row[i].ok && S->row[i].kind == T_OPEN &&
				    S->row[i].o.r.lg.replied > 0)
					sorted[n++] = &S->row[i];
			qsort(sorted, n, sizeof(sorted[0]), cmp_row_rate);
			fprintf(f,
				"%s# %s %s\n# offered_kreqs achieved_kreqs "
				"p50_us p99_us p999_us lost\n",
				block++ ? "\n\n" : "", suts[si].ops->key,
				dist_name[d]);
			for (unsigned i = 0; i < n; i++) {
				const struct loadgen_result *r =
					&sorted[i]->o.r.lg;

				fprintf(f,
					"%.3f %.3f %.3f %.3f %.3f %" PRIu64
					"\n",
					r->offered_rps / 1e3,
					r->achieved_rps / 1e3, r->p50_ns / 1e3,
					r->p99_ns / 1e3, r->p999_ns / 1e3,
					r->lost);
			}
			/* gnuplot wants a point in every block. */
			if (n == 0)
				fprintf(f, "NaN NaN NaN NaN NaN 0\n");
		}
	}
	fclose(f);

	term = bench_plot_terminal();
	snprintf(path, sizeof(path), "%s/kv-latency.gp", opt.out);
	f = fopen(path, "w");
	if (f == NULL) {
		fprintf(stderr, "kv: %s: %s\n", path, strerror(errno));
		return -1;
	}
	fprintf(f, "# ebbrt-bench-kv: run with `gnuplot kv-latency.gp` in "
		   "this folder\n");
	if (term == NULL || strcmp(term, "svg") == 0)
		fprintf(f, "set terminal svg size 900,600 dynamic\n"
			   "set output 'kv-latency.svg'\n");
	else
		fprintf(f, "set terminal %s size 900,600\n"
			   "set output 'kv-latency.png'\n",
			term);
	fprintf(f,
		"set title \"memcached text protocol, %.0f%% get, %u "
		"connections: p99 vs throughput\\n(open loop, Poisson "
		"arrivals; client cpu %d, server cpu %d)\"\n"
		"set xlabel 'achieved throughput (k requests/s)'\n"
		"set ylabel 'p99 latency (us)'\n"
		"set logscale y\n"
		"set grid\n"
		"set termoption noenhanced\n"
		"set key top left\n"
		"plot %.0f with lines lc rgb 'dark-red' dt 3 lw 1.5 title "
		"'p99 = %.0f us'",
		opt.get_ratio * 100, opt.conns, CPU_CLIENT, CPU_SERVER,
		SLO_NS / 1e3, SLO_NS / 1e3);
	block = 0;
	for (unsigned si = 0; si < NSUT; si++) {
		for (int d = 0; d < 2; d++) {
			if (!suts[si].selected || !opt.dist[d])
				continue;
			fprintf(f,
				", \\\n     'kv-latency.dat' index %u using 2:4 "
				"with linespoints lc %u pt %d dt %d title "
				"'%s %s'",
				block, si + 1, d ? 5 : 7, d ? 2 : 1,
				suts[si].ops->key, dist_name[d]);
			block++;
		}
	}
	fprintf(f, "\n");
	fclose(f);
	if (term == NULL) {
		bench_note("gnuplot not found: wrote %s/kv-latency.gp and .dat, "
			   "no image (apt-get install gnuplot-nox)",
			   opt.out);
		return 0;
	}
	snprintf(cmd, sizeof(cmd), "cd '%s' && gnuplot kv-latency.gp",
		 opt.out);
	if (system(cmd) != 0) {
		fprintf(stderr, "kv: gnuplot failed on %s\n", path);
		return -1;
	}
	printf("plot: %s/kv-latency.%s (gnuplot script kv-latency.gp)\n",
	       opt.out, strcmp(term, "svg") == 0 ? "svg" : "png");
	return 0;
}

/* ===================================================================
 * main
 * =================================================================== */

static void usage(FILE *to)
{
	fprintf(to,
		"usage: ebbrt-bench-kv [--quick] [--duration S] [--conns N] "
		"[--keys N]\n"
		"                      [--dist uniform|zipf|both] [--sut "
		"LIST] [--get-ratio R]\n"
		"                      [--out DIR] [--json PATH] [--no-plot]\n"
		"memcached text protocol over loopback TCP (ebbrt: a virtual "
		"wire), one load\ngenerator (cpu %d) against each server "
		"(cpu %d). Per server\nand key distribution: preload every "
		"key, peak rate (closed loop, 1, 2 and 4\nrequests in flight "
		"per connection), then an open-loop sweep up to the peak for\n"
		"the highest rate with p99 <= %.0f us.\n"
		"  --quick          0.5 s per test after 0.2 s of warm-up: a "
		"smoke run\n"
		"  --duration S     seconds measured per test (default 5; "
		"warm-up 1 s)\n"
		"  --conns N        TCP connections (default 64)\n"
		"  --keys N         key space (default 100000)\n"
		"  --dist D         uniform, zipf (0.99) or both (default)\n"
		"  --sut LIST       systems, comma-separated: memcached, "
		"linux-kv, ebbrt\n"
		"                   (default all three; ebbrt runs a cluster "
		"per test, as root)\n"
		"  --get-ratio R    share of gets, 0..1 (default 0.9)\n"
		"  --out DIR        JSON, plot data, gnuplot script and image "
		"(default results)\n"
		"  --json PATH      the JSON elsewhere (default DIR/kv.json)\n"
		"  --no-plot        no plot\n"
		"  --help           this text\n"
		"See docs/bench.md.\n",
		CPU_CLIENT, CPU_SERVER, SLO_NS / 1e3);
}

static uint32_t parse_u32(const char *what, const char *s, uint32_t lo,
			  uint32_t hi)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end != '\0' || end == s || v < lo || v > hi) {
		fprintf(stderr, "kv: bad %s '%s' (%u..%u)\n", what, s, lo, hi);
		exit(2);
	}
	return (uint32_t)v;
}

static void select_suts(const char *list)
{
	char buf[256], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", list);
	for (char *k = strtok_r(buf, ",", &save); k != NULL;
	     k = strtok_r(NULL, ",", &save)) {
		unsigned si;

		for (si = 0; si < NSUT; si++)
			if (strcmp(k, suts[si].ops->key) == 0)
				break;
		if (si == NSUT) {
			fprintf(stderr, "kv: unknown system '%s'; known:", k);
			for (si = 0; si < NSUT; si++)
				fprintf(stderr, " %s", suts[si].ops->key);
			fprintf(stderr, "\n");
			exit(2);
		}
		suts[si].selected = true;
	}
}

static void parse_args(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "quick", no_argument, NULL, 'q' },
		{ "duration", required_argument, NULL, 'd' },
		{ "conns", required_argument, NULL, 'c' },
		{ "keys", required_argument, NULL, 'k' },
		{ "dist", required_argument, NULL, 'D' },
		{ "sut", required_argument, NULL, 's' },
		{ "get-ratio", required_argument, NULL, 'g' },
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
			if (*end != '\0' || !(opt.duration_s > 0) ||
			    opt.duration_s > 3600) {
				fprintf(stderr, "kv: bad duration '%s'\n",
					optarg);
				exit(2);
			}
			dur_set = true;
			break;
		case 'c':
			opt.conns = parse_u32("connection count", optarg, 1,
					      1024);
			break;
		case 'k':
			opt.keys = parse_u32("key count", optarg, 1,
					     100000000);
			break;
		case 'D':
			opt.dist[0] = strcmp(optarg, "uniform") == 0 ||
				      strcmp(optarg, "both") == 0;
			opt.dist[1] = strcmp(optarg, "zipf") == 0 ||
				      strcmp(optarg, "both") == 0;
			if (!opt.dist[0] && !opt.dist[1]) {
				fprintf(stderr, "kv: bad distribution '%s' "
						"(uniform, zipf, both)\n",
					optarg);
				exit(2);
			}
			break;
		case 's':
			opt.suts = optarg;
			break;
		case 'g':
			opt.get_ratio = strtod(optarg, &end);
			if (*end != '\0' || !(opt.get_ratio >= 0) ||
			    opt.get_ratio > 1) {
				fprintf(stderr, "kv: bad get ratio '%s'\n",
					optarg);
				exit(2);
			}
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
		fprintf(stderr, "kv: unexpected argument '%s'\n",
			argv[optind]);
		usage(stderr);
		exit(2);
	}
	select_suts(opt.suts);
	if (!dur_set)
		opt.duration_s = opt.quick ? 0.5 : 5.0;
	opt.warmup_s = opt.quick ? 0.2 : 1.0;
	if (opt.warmup_s > opt.duration_s)
		opt.warmup_s = opt.duration_s;
}

int main(int argc, char **argv)
{
	static char json_path[PATH_MAX];
	struct kvload_config kc;
	unsigned ndist = 0;
	int rc;

	parse_args(argc, argv);
	rc = bench_self_dir(self_dir, sizeof(self_dir));
	if (rc != 0) {
		fprintf(stderr, "kv: /proc/self/exe: %s\n", strerror(-rc));
		return 1;
	}
	if (suts[0].selected) {
		char bin[PATH_MAX];

		if (!find_on_path("memcached", bin, sizeof(bin))) {
			fprintf(stderr, "kv: memcached not found (apt-get "
					"install memcached, or "
					"scripts/setup.sh)\n");
			return 1;
		}
	}
	/* A key of 32 bytes: "k" and 31 digits hold any key count. */
	kv_config(&kc, 0);
	{
		struct kvload *probe = kvload_create(&kc, &lx_transport, NULL);

		if (probe == NULL) {
			fprintf(stderr, "kv: bad load: %s\n", strerror(errno));
			return 2;
		}
		kvload_destroy(probe);
	}
	rc = bench_pin_self(CPU_CLIENT, NULL);
	if (rc != 0) {
		fprintf(stderr, "kv: cannot pin to cpu %d: %s\n", CPU_CLIENT,
			strerror(-rc));
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	for (int d = 0; d < 2; d++)
		ndist += opt.dist[d];
	for (unsigned si = 0; si < NSUT; si++)
		if (suts[si].selected)
			nsteps += ndist * (NPEAK + NSWEEP +
					   (opt.quick ? 1 : MAX_REFINE));
	printf("ebbrt key-value benchmark %s: client cpu %d, server cpu %d, "
	       "%s run, %.1f s per test after %.1f s warm-up, %u "
	       "connections, %u keys, load average %.2f\n",
	       EBBRT_VERSION, CPU_CLIENT, CPU_SERVER,
	       opt.quick ? "quick" : "full", opt.duration_s, opt.warmup_s,
	       opt.conns, opt.keys, bench_loadavg());
	fflush(stdout);

	for (unsigned si = 0; si < NSUT; si++) {
		struct sut *s = &suts[si];

		if (!s->selected)
			continue;
		fprintf(stderr, "%s: starting and preloading %u keys...",
			s->ops->key, opt.keys);
		if (s->ops->start(s, &kc) != 0) {
			fprintf(stderr, " FAILED\n");
			s->ops->stop(s);
			failed++;
			step += ndist * (NPEAK + NSWEEP +
					 (opt.quick ? 1 : MAX_REFINE));
			continue;
		}
		fprintf(stderr, " done\n");
		for (int d = 0; d < 2; d++)
			if (opt.dist[d])
				run_series(si, d);
		s->ops->stop(s);
	}
	if (!opt.no_plot)
		write_plot();
	print_table();
	print_targets();
	bench_print_notes();
	if (opt.json == NULL) {
		if (mkdir(opt.out, 0755) != 0 && errno != EEXIST)
			fprintf(stderr, "kv: %s: %s\n", opt.out,
				strerror(errno));
		snprintf(json_path, sizeof(json_path), "%s/kv.json", opt.out);
		opt.json = json_path;
	}
	if (write_json(opt.json) == 0)
		printf("results: %s\n", opt.json);
	else
		failed++;
	if (failed)
		fprintf(stderr, "kv: %d step(s) failed\n", failed);
	return failed ? 1 : 0;
}
