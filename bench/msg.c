/* SPDX-License-Identifier: BSD-3-Clause */
/* Message round-trip benchmark of a cluster: Messenger pings between two
 * nodes (ebbrt-bench-msg-node under `ebbrt run`), polled and to a halted
 * node, against a Linux socketpair ping-pong on the same two CPUs. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <glob.h>
#include <inttypes.h>
#include <limits.h>
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
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ebbrt/ebbrt.h>

#include "common.h"

/*
 * The Linux baselines run first, while the CPUs are free: the parent
 * pinned on CPU_A pings a child pinned on CPU_B. Then the cluster: `ebbrt
 * run` puts node 1 on CPU_A and node 2 on CPU_B (its frontend core, which
 * sleeps, shares CPU_B), node 1 measures and prints RESULT lines, which
 * the frontend relays to us as "[node 1] RESULT ...".
 */
#define CPU_A 0
#define CPU_B 1
#define CLUSTER_NAME "benchmsg"

/* Payload of a Messenger ping (struct ping_msg in ebbs/messenger.c: op,
 * pad, tag, tsc); the Linux ping-pong sends as many bytes. */
#define MSG_PAYLOAD 24

/* Pause between pings from halt: long enough for the receiver to block. */
#define GAP_NS 200000ull

/* Seconds the cluster may take beyond its pings, and for `ebbrt stop`. */
#define CLUSTER_SLACK_S 60.0
#define STOP_GRACE_S 20.0

/* --- options --- */

static struct {
	bool quick;
	const char *json;
	const char *ebbrt;
} opt;

/* Room for what find_programs() puts after our own directory. */
static char ebbrt_path[PATH_MAX + 32];
static char node_path[PATH_MAX + 32];

static uint64_t count(void)
{
	return opt.quick ? 2000 : 20000;
}

/* --- results --- */

enum { MODE_POLLED, MODE_HALT, NMODES };

static const char *const mode_key[NMODES] = { "polled", "halt" };
static const char *const mode_name[NMODES] = { "polled", "from halt" };
static const char *const baseline_name[NMODES] = {
	"unix socketpair ping-pong, blocking",
	"socketpair ping-pong, receiver blocked",
};

struct rtt {
	double p50, p99, mean, min, max;	/* ns */
	uint64_t n;
	bool ok;
};

static struct rtt ebb[NMODES], lx[NMODES];

/* Extra figures that explain the rows: node 2's counters over each
 * mode, and how often the Linux echo process blocked from halt. */
static struct {
	uint64_t peer_wakes[NMODES], peer_halts[NMODES], peer_msgs[NMODES];
	bool have_peer[NMODES];
	long lx_blocks;		/* voluntary switches of the echo process */
	uint64_t lx_msgs;
} why;

/* --- time and small helpers --- */

static void summarize(uint64_t *v, uint64_t n, struct rtt *out)
{
	double sum = 0;

	for (uint64_t i = 0; i < n; i++)
		sum += (double)v[i];
	qsort(v, n, sizeof(v[0]), bench_cmp_u64);
	out->p50 = (double)bench_pct_u64(v, n, 0.50);
	out->p99 = (double)bench_pct_u64(v, n, 0.99);
	out->mean = sum / (double)n;
	out->min = (double)v[0];
	out->max = (double)v[n - 1];
	out->n = n;
	out->ok = true;
}

static int pin_self(int cpu)
{
	int rc = bench_pin_self(cpu, NULL);

	if (rc != 0) {
		fprintf(stderr, "\nmsg: cannot pin to cpu %d: %s\n", cpu,
			strerror(-rc));
		return -1;
	}
	return 0;
}

/* ===================================================================
 * Linux baseline: two processes ping-ponging over a socketpair
 * =================================================================== */

/* The child on CPU_B: echo every message until EOF. */
static __attribute__((noreturn)) void lx_echo(int fd)
{
	char buf[MSG_PAYLOAD];
	ssize_t k;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (pin_self(CPU_B) != 0)
		_exit(1);
	while ((k = read(fd, buf, sizeof(buf))) > 0)
		if (write(fd, buf, (size_t)k) != k)
			_exit(1);
	_exit(k == 0 ? 0 : 1);
}

/* @warm unrecorded then @n recorded round trips, each after a pause of
 * @gap_ns (0: back to back). 0 or -1 (said why). */
static int lx_pingpong(uint64_t warm, uint64_t n, uint64_t gap_ns,
		       struct rtt *out)
{
	uint64_t *lat = malloc(n * sizeof(*lat));
	char buf[MSG_PAYLOAD];
	struct rusage ru;
	int sv[2] = { -1, -1 }, status, rc = -1;
	cpu_set_t old;
	pid_t pid;

	if (lat == NULL ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
		fprintf(stderr, "\nmsg: socketpair: %s\n", strerror(errno));
		free(lat);
		return -1;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "\nmsg: fork: %s\n", strerror(errno));
		goto out_fds;
	}
	if (pid == 0) {
		close(sv[0]);
		lx_echo(sv[1]);
	}
	close(sv[1]);
	sv[1] = -1;
	sched_getaffinity(0, sizeof(old), &old);
	if (pin_self(CPU_A) != 0)
		goto out_child;
	memset(buf, 0x5a, sizeof(buf));
	for (uint64_t i = 0; i < warm + n; i++) {
		uint64_t t0;

		if (gap_ns)
			bench_sleep_ns(gap_ns);
		t0 = bench_now_ns();
		if (write(sv[0], buf, sizeof(buf)) != (ssize_t)sizeof(buf) ||
		    read(sv[0], buf, sizeof(buf)) != (ssize_t)sizeof(buf)) {
			fprintf(stderr, "\nmsg: socketpair ping-pong: %s\n",
				strerror(errno));
			goto out_affinity;
		}
		if (i >= warm)
			lat[i - warm] = bench_now_ns() - t0;
	}
	summarize(lat, n, out);
	rc = 0;
out_affinity:
	sched_setaffinity(0, sizeof(old), &old);
out_child:
	close(sv[0]);	/* the child reads EOF and exits */
	sv[0] = -1;
	while (wait4(pid, &status, 0, &ru) < 0 && errno == EINTR)
		;
	if (gap_ns && rc == 0) {
		why.lx_blocks = ru.ru_nvcsw;
		why.lx_msgs = warm + n;
	}
out_fds:
	if (sv[0] >= 0)
		close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	free(lat);
	return rc;
}

/* ===================================================================
 * The cluster
 * =================================================================== */

/* The last lines of the cluster's output, shown when it fails. */
#define TAIL_LINES 40
static char tail[TAIL_LINES][256];
static unsigned ntail;
static unsigned node_errors;

static void keep_line(const char *line)
{
	snprintf(tail[ntail % TAIL_LINES], sizeof(tail[0]), "%s", line);
	ntail++;
}

static void show_tail(void)
{
	unsigned first = ntail > TAIL_LINES ? ntail - TAIL_LINES : 0;

	fprintf(stderr, "msg: last lines of `ebbrt run`:\n");
	for (unsigned i = first; i < ntail; i++)
		fprintf(stderr, "  %s\n", tail[i % TAIL_LINES]);
}

/* "RESULT <mode> key=value ..." from node 1. */
static void parse_result(const char *s)
{
	char copy[512], *save = NULL, *tok;
	struct rtt r = { 0 };
	int mode = -1;
	bool has_p50 = false;

	snprintf(copy, sizeof(copy), "%s", s);
	tok = strtok_r(copy, " ", &save);	/* RESULT */
	tok = strtok_r(NULL, " ", &save);
	for (int m = 0; tok != NULL && m < NMODES; m++)
		if (strcmp(tok, mode_key[m]) == 0)
			mode = m;
	if (mode < 0)
		return;
	while ((tok = strtok_r(NULL, " ", &save)) != NULL) {
		char *eq = strchr(tok, '=');
		double v;

		if (eq == NULL)
			continue;
		*eq = '\0';
		v = strtod(eq + 1, NULL);
		if (strcmp(tok, "p50_ns") == 0) {
			r.p50 = v;
			has_p50 = true;
		} else if (strcmp(tok, "p99_ns") == 0) {
			r.p99 = v;
		} else if (strcmp(tok, "mean_ns") == 0) {
			r.mean = v;
		} else if (strcmp(tok, "min_ns") == 0) {
			r.min = v;
		} else if (strcmp(tok, "max_ns") == 0) {
			r.max = v;
		} else if (strcmp(tok, "n") == 0) {
			r.n = (uint64_t)v;
		} else if (strcmp(tok, "peer_wakes") == 0) {
			why.peer_wakes[mode] = (uint64_t)v;
			why.have_peer[mode] = true;
		} else if (strcmp(tok, "peer_halts") == 0) {
			why.peer_halts[mode] = (uint64_t)v;
		} else if (strcmp(tok, "peer_msgs") == 0) {
			why.peer_msgs[mode] = (uint64_t)v;
		}
	}
	r.ok = has_p50 && r.n > 0;
	ebb[mode] = r;
}

static void on_line(char *line)
{
	char *r;

	keep_line(line);
	/* Only node 1's lines: another node printing RESULT is not ours. */
	if (strncmp(line, "[node 1] ", 9) != 0)
		return;
	r = line + 9;
	if (strncmp(r, "RESULT ", 7) == 0)
		parse_result(r);
	else if (strncmp(r, "ERROR", 5) == 0)
		node_errors++;
}

struct linebuf {
	int fd;
	size_t len;
	char buf[1024];
};

/* Read what @lb's pipe has; false at EOF. */
static bool drain(struct linebuf *lb)
{
	ssize_t k = read(lb->fd, lb->buf + lb->len,
			 sizeof(lb->buf) - 1 - lb->len);
	char *start = lb->buf, *nl;

	if (k < 0 && (errno == EINTR || errno == EAGAIN))
		return true;
	if (k <= 0) {
		if (lb->len) {
			lb->buf[lb->len] = '\0';
			on_line(lb->buf);
			lb->len = 0;
		}
		return false;
	}
	lb->len += (size_t)k;
	lb->buf[lb->len] = '\0';
	while ((nl = strchr(start, '\n')) != NULL) {
		*nl = '\0';
		on_line(start);
		start = nl + 1;
	}
	lb->len -= (size_t)(start - lb->buf);
	memmove(lb->buf, start, lb->len);
	if (lb->len == sizeof(lb->buf) - 1) {
		lb->buf[lb->len] = '\0';
		on_line(lb->buf);
		lb->len = 0;
	}
	return true;
}

/* Run `ebbrt ARGS...` with stdout and stderr to @out/@err (or ours when
 * -1). Returns its pid, or -1. */
static pid_t spawn_ebbrt(char *const argv[], int out, int err)
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "\nmsg: fork: %s\n", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		if (out >= 0)
			dup2(out, STDOUT_FILENO);
		if (err >= 0)
			dup2(err, STDERR_FILENO);
		/* The cluster places its own cores. */
		unsetenv("EBBRT_CPUS");
		unsetenv("EBBRT_SPIN");
		if (strchr(argv[0], '/') != NULL)
			execv(argv[0], argv);
		else
			execvp(argv[0], argv);
		fprintf(stderr, "msg: cannot run %s: %s\n", argv[0],
			strerror(errno));
		_exit(127);
	}
	return pid;
}

/* A cluster that will not end: `ebbrt stop`, then kill its frontend
 * (the nodes die with it). */
static void stop_cluster(pid_t fe)
{
	char *argv[] = { ebbrt_path, "stop", "--name", CLUSTER_NAME,
			 "--timeout", "10", NULL };
	pid_t pid = spawn_ebbrt(argv, -1, -1);
	int status;

	if (pid > 0 && !bench_wait_for(pid, STOP_GRACE_S, &status)) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	if (!bench_wait_for(fe, STOP_GRACE_S, &status)) {
		fprintf(stderr, "msg: `ebbrt stop` did not end the cluster; "
				"killing its frontend\n");
		kill(fe, SIGKILL);
		waitpid(fe, &status, 0);
	}
}

/* Run the cluster for @n round trips per mode. 0, or -1 (said why). */
static int run_cluster(uint64_t n)
{
	char cnt[32];
	/* Its own subnet: a cluster on the default one may be running. */
	char *argv[] = { ebbrt_path, "run", "--nodes", "2", "--cpus",
			 "0,1", "--name", CLUSTER_NAME, "--subnet",
			 "10.81.0.0", "--", node_path, "--count", cnt, NULL };
	/* Node start, both modes and the stop, generously. */
	double limit = CLUSTER_SLACK_S + (double)n * 2.0 * 1e-3;
	uint64_t end = bench_now_ns() + (uint64_t)(limit * 1e9);
	static struct linebuf lb[2];
	int po[2], pe[2], status = 0;
	bool open_out = true, open_err = true;
	pid_t pid;

	snprintf(cnt, sizeof(cnt), "%" PRIu64, n);
	if (pipe2(po, O_CLOEXEC) != 0 || pipe2(pe, O_CLOEXEC) != 0) {
		fprintf(stderr, "\nmsg: pipe: %s\n", strerror(errno));
		return -1;
	}
	pid = spawn_ebbrt(argv, po[1], pe[1]);
	close(po[1]);
	close(pe[1]);
	if (pid < 0) {
		close(po[0]);
		close(pe[0]);
		return -1;
	}
	lb[0] = (struct linebuf){ .fd = po[0] };
	lb[1] = (struct linebuf){ .fd = pe[0] };
	while (open_out || open_err) {
		struct pollfd pfd[2] = {
			{ .fd = open_out ? po[0] : -1, .events = POLLIN },
			{ .fd = open_err ? pe[0] : -1, .events = POLLIN },
		};
		int64_t left = (int64_t)(end - bench_now_ns()) / 1000000;
		int k;

		if (left <= 0) {
			fprintf(stderr, "\nmsg: the cluster did not finish in "
					"%.0f s; stopping it\n",
				limit);
			stop_cluster(pid);
			close(po[0]);
			close(pe[0]);
			show_tail();
			return -1;
		}
		k = poll(pfd, 2, (int)left);
		if (k < 0 && errno != EINTR)
			break;
		if (k <= 0)
			continue;
		if (pfd[0].revents && !drain(&lb[0]))
			open_out = false;
		if (pfd[1].revents && !drain(&lb[1]))
			open_err = false;
	}
	close(po[0]);
	close(pe[0]);
	if (!bench_wait_for(pid, STOP_GRACE_S, &status)) {
		fprintf(stderr, "\nmsg: `ebbrt run` closed its output but "
				"did not exit; stopping it\n");
		stop_cluster(pid);
		show_tail();
		return -1;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || node_errors ||
	    !ebb[MODE_POLLED].ok || !ebb[MODE_HALT].ok) {
		fprintf(stderr, "\nmsg: the cluster failed (");
		if (WIFSIGNALED(status))
			fprintf(stderr, "`ebbrt run` killed by signal %d",
				WTERMSIG(status));
		else
			fprintf(stderr, "`ebbrt run` exit %d",
				WEXITSTATUS(status));
		fprintf(stderr, ", %u node error(s), results: polled %s, "
				"halt %s)\n",
			node_errors, ebb[MODE_POLLED].ok ? "yes" : "no",
			ebb[MODE_HALT].ok ? "yes" : "no");
		show_tail();
		return -1;
	}
	return 0;
}

/* What a cluster that ended cleanly must not leave behind. */
static void check_leftovers(void)
{
	glob_t g;

	if (glob("/dev/hugepages/ebbrt-" CLUSTER_NAME "*", 0, NULL, &g) ==
	    0) {
		bench_note("%zu hugepage file(s) left in /dev/hugepages (%s...): the "
		     "frontend did not clean up",
		     g.gl_pathc, g.gl_pathv[0]);
		globfree(&g);
	}
}

/* ===================================================================
 * output
 * =================================================================== */

static void fmt_us(char *buf, size_t len, const struct rtt *r, double ns)
{
	if (!r->ok)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.2f", ns / 1e3);
}

static void fmt_ratio(char *buf, size_t len, double v, double base, bool ok)
{
	if (!ok || base <= 0)
		snprintf(buf, len, "n/a");
	else
		snprintf(buf, len, "%.2fx", v / base);
}

static void print_table(void)
{
	char c[7][32];

	printf("\n%-10s %10s %10s %10s %10s %10s %10s %9s %9s\n", "mode",
	       "ebbrt p50", "ebbrt p99", "ebbrt mean", "linux p50",
	       "linux p99", "linux mean", "ratio p50", "ratio p99");
	for (int m = 0; m < NMODES; m++) {
		bool ok = ebb[m].ok && lx[m].ok;

		fmt_us(c[0], sizeof(c[0]), &ebb[m], ebb[m].p50);
		fmt_us(c[1], sizeof(c[1]), &ebb[m], ebb[m].p99);
		fmt_us(c[2], sizeof(c[2]), &ebb[m], ebb[m].mean);
		fmt_us(c[3], sizeof(c[3]), &lx[m], lx[m].p50);
		fmt_us(c[4], sizeof(c[4]), &lx[m], lx[m].p99);
		fmt_us(c[5], sizeof(c[5]), &lx[m], lx[m].mean);
		fmt_ratio(c[6], sizeof(c[6]), ebb[m].p50, lx[m].p50, ok);
		printf("%-10s %10s %10s %10s %10s %10s %10s %9s ", mode_name[m],
		       c[0], c[1], c[2], c[3], c[4], c[5], c[6]);
		fmt_ratio(c[6], sizeof(c[6]), ebb[m].p99, lx[m].p99, ok);
		printf("%9s\n", c[6]);
	}
	printf("\nus per round trip of a %d-byte message, node 1 (cpu %d) -> "
	       "node 2 (cpu %d) -> node 1;\n"
	       "linux: the same over a unix socketpair between two "
	       "processes on the same cpus.\n"
	       "ratio = ebbrt / linux (below 1: ebbrt is faster). From halt: "
	       "a %.0f us pause before each ping.\n",
	       MSG_PAYLOAD, CPU_A, CPU_B, (double)GAP_NS / 1e3);
	if (why.have_peer[MODE_POLLED])
		bench_note("polled: node 2 halted %" PRIu64 " times during %" PRIu64
		     " messages (0 expected)",
		     why.peer_halts[MODE_POLLED], why.peer_msgs[MODE_POLLED]);
	if (why.have_peer[MODE_HALT])
		bench_note("from halt: node 2 woke %" PRIu64 " times (halted %" PRIu64
		     ") for %" PRIu64 " messages (%" PRIu64 " pings + 1 "
		     "control); fewer wakes than messages means some pings "
		     "found it still polling",
		     why.peer_wakes[MODE_HALT], why.peer_halts[MODE_HALT],
		     why.peer_msgs[MODE_HALT], why.peer_msgs[MODE_HALT] - 1);
	if (why.lx_msgs)
		bench_note("from halt: the linux echo process blocked %ld times for "
		     "%" PRIu64 " pings",
		     why.lx_blocks, why.lx_msgs);
	bench_print_notes();
}

/* One object per (mode, statistic), in the shape of ebbrt-bench-micro's
 * JSON. */
static int write_json(const char *path)
{
	static const char *const stat[] = { "p50", "p99", "mean" };
	FILE *f = bench_json_open(path, "msg");
	bool first = true;
	char metric[64];

	if (f == NULL)
		return -1;
	for (int m = 0; m < NMODES; m++) {
		const double v[3] = { ebb[m].p50, ebb[m].p99, ebb[m].mean };
		const double b[3] = { lx[m].p50, lx[m].p99, lx[m].mean };

		if (!ebb[m].ok || !lx[m].ok)
			continue;
		for (int s = 0; s < 3; s++) {
			struct bench_json_row row = {
				.metric = metric,
				.value = v[s] / 1e3,
				.unit = "us",
				.baseline = b[s] / 1e3,
				.baseline_name = baseline_name[m],
				.stat = stat[s],
			};

			snprintf(metric, sizeof(metric), "message RTT %s %s",
				 mode_name[m], stat[s]);
			bench_json_put(f, &row, &first);
		}
	}
	return bench_json_close(f, path, "msg") == 0 ? 0 : -1;
}

/* ===================================================================
 * main
 * =================================================================== */

static void usage(FILE *to)
{
	fprintf(to,
		"usage: ebbrt-bench-msg [--quick] [--json PATH] "
		"[--ebbrt PATH]\n"
		"Message round trips between two nodes of a cluster (Messenger "
		"ping), polled\nand to a halted node, against a Linux "
		"socketpair ping-pong on the same two\nCPUs (%d and %d).\n"
		"  --quick        2000 round trips per mode instead of 20000: "
		"a smoke run\n"
		"  --json PATH    also write the results as a JSON array\n"
		"  --ebbrt PATH   the ebbrt command (default: "
		"../frontend/ebbrt beside this\n"
		"                 program, else ebbrt from PATH)\n"
		"  --help         this text\n"
		"Runs as root: the cluster needs hugepages and tap devices. "
		"See docs/bench.md.\n",
		CPU_A, CPU_B);
}

static void parse_args(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "quick", no_argument, NULL, 'q' },
		{ "json", required_argument, NULL, 'j' },
		{ "ebbrt", required_argument, NULL, 'e' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (c) {
		case 'q':
			opt.quick = true;
			break;
		case 'j':
			opt.json = optarg;
			break;
		case 'e':
			opt.ebbrt = optarg;
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
		fprintf(stderr, "msg: unexpected argument '%s'\n",
			argv[optind]);
		usage(stderr);
		exit(2);
	}
}

/* The node program beside us, and the ebbrt command: --ebbrt, else the
 * build tree's (../frontend/ebbrt), else the one on PATH. */
static int find_programs(void)
{
	char dir[PATH_MAX];
	int rc = bench_self_dir(dir, sizeof(dir));

	if (rc != 0) {
		fprintf(stderr, "msg: /proc/self/exe: %s\n", strerror(-rc));
		return -1;
	}
	snprintf(node_path, sizeof(node_path), "%s/ebbrt-bench-msg-node",
		 dir);
	if (access(node_path, X_OK) != 0) {
		fprintf(stderr, "msg: cannot run %s: %s\n", node_path,
			strerror(errno));
		return -1;
	}
	if (opt.ebbrt != NULL) {
		snprintf(ebbrt_path, sizeof(ebbrt_path), "%s", opt.ebbrt);
		if (strchr(ebbrt_path, '/') && access(ebbrt_path, X_OK) != 0) {
			fprintf(stderr, "msg: cannot run %s: %s\n", ebbrt_path,
				strerror(errno));
			return -1;
		}
		return 0;
	}
	snprintf(ebbrt_path, sizeof(ebbrt_path), "%s/../frontend/ebbrt", dir);
	if (access(ebbrt_path, X_OK) != 0)
		snprintf(ebbrt_path, sizeof(ebbrt_path), "ebbrt");
	return 0;
}

/* Notes when other work shared CPU_A and CPU_B during @step. */
static void note_contention(const char *step, struct bench_cpu_use u0)
{
	struct bench_cpu_use u1 = bench_cpu_use(CPU_A, CPU_B);
	char buf[240];

	if (bench_contention_note(&u0, &u1, step, buf, sizeof(buf)))
		bench_note("%s", buf);
}

struct step {
	const char *name;
	int (*run)(void);
};

static int step_lx_polled(void)
{
	uint64_t n = count();

	return lx_pingpong(n / 10, n, 0, &lx[MODE_POLLED]);
}

static int step_lx_halt(void)
{
	uint64_t n = count();

	return lx_pingpong(n / 100 + 10, n, GAP_NS, &lx[MODE_HALT]);
}

static int step_cluster(void)
{
	return run_cluster(count());
}

static const struct step steps[] = {
	{ "linux socketpair ping-pong, back to back", step_lx_polled },
	{ "linux socketpair ping-pong, receiver blocked", step_lx_halt },
	{ "ebbrt cluster of 2 nodes: polled, then from halt", step_cluster },
};
#define NSTEPS (sizeof(steps) / sizeof(steps[0]))

int main(int argc, char **argv)
{
	int failed = 0;

	parse_args(argc, argv);
	if (geteuid() != 0) {
		fprintf(stderr, "msg: must run as root: the cluster needs "
				"hugepages, tap devices and\nDPDK "
				"multi-process files (try sudo %s)\n",
			argv[0]);
		return 1;
	}
	if (find_programs() != 0)
		return 1;
	if (!bench_hugepages_free()) {
		fprintf(stderr,
			"msg: no free 2 MiB hugepage. As root:\n"
			BENCH_HUGEPAGE_FIX);
		return 1;
	}
	printf("ebbrt message benchmark %s: cpus %d,%d, %s run, %" PRIu64
	       " round trips per mode, load average %.2f\n"
	       "ebbrt: %s\n",
	       EBBRT_VERSION, CPU_A, CPU_B, opt.quick ? "quick" : "full",
	       count(), bench_loadavg(), ebbrt_path);
	fflush(stdout);

	for (unsigned i = 0; i < NSTEPS; i++) {
		struct bench_cpu_use u0 = bench_cpu_use(CPU_A, CPU_B);
		uint64_t t0 = bench_now_ns();
		int rc;

		fprintf(stderr, "[%u/%zu] %s...", i + 1, NSTEPS, steps[i].name);
		rc = steps[i].run();
		note_contention(steps[i].name, u0);
		if (rc != 0) {
			fprintf(stderr, "[%u/%zu] FAILED\n", i + 1, NSTEPS);
			failed++;
			continue;
		}
		fprintf(stderr, " %.1f s\n",
			(double)(bench_now_ns() - t0) / 1e9);
	}
	check_leftovers();
	print_table();
	if (opt.json != NULL && write_json(opt.json) == 0)
		printf("results: %s\n", opt.json);
	if (failed)
		fprintf(stderr, "msg: %d step(s) failed\n", failed);
	return failed ? 1 : 0;
}
