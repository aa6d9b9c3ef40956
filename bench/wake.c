/* SPDX-License-Identifier: BSD-3-Clause */
/* Wake-up latency of a halted node: ICMP echo round trips from Linux to a
 * node of `ebbrt run` after an idle gap, against a Linux process that
 * answers on its own tap device, blocked in read() between frames. */
#include <arpa/inet.h>
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ebbrt/ebbrt.h>

#include "common.h"

/*
 * One process drives everything. The pinger runs on the main thread,
 * pinned to the second CPU. Each step starts a cluster of one node of the
 * demo app with `ebbrt run` (its one core on the first CPU) and forks a
 * responder, pinned to the first CPU too, that owns a tap of its own.
 * With a gap, echoes take turns between the node and the responder, so
 * that drift of a shared machine weighs on a row and its baseline alike;
 * both sit halted (blocked) on the first CPU in between. Every echo
 * crosses a tap device both ways: only what answers it differs.
 */

#define CLUSTER "wake"			/* --name of our clusters */
#define NODE_CPU 0			/* the node core, and the responder */
#define PING_CPU 1			/* the pinger */
#define REPLY_TIMEOUT_NS 1000000000ll	/* an echo is lost after 1 s */
#define READY_LIMIT_S 20		/* `ebbrt run` to "node 1 ready" */
#define STOP_LIMIT_S 20			/* `ebbrt stop` to the frontend's exit */
#define WARMUP 20			/* echoes before each row, not counted */
#define ICMP_PAYLOAD 56			/* as ping(8) */
#ifndef ICMP_FILTER
#define ICMP_FILTER 1			/* SOL_RAW option, <linux/icmp.h> */
#endif

/* The Linux responder's tap: Linux is .1, the responder .2. */
#define LX_TAP "ebbwake0"
#define LX_HOST_IP "10.78.1.1"
#define LX_PEER_IP "10.78.1.2"
static const uint8_t lx_peer_mac[6] = { 0x02, 0x00, 0x0a, 0x4e, 0x01, 0x02 };

/* --- options --- */

static struct {
	bool quick;
	const char *json;
	char ebbrt[PATH_MAX];
	char demo[PATH_MAX];
	unsigned count;
	bool count_set;
	double gap_ms;
} opt = { .gap_ms = 5.0 };

static cpu_set_t orig_cpus;	/* what children get back before exec */
static volatile sig_atomic_t interrupted;

/* --- results --- */

/* The records of bench/micro.c, so the table and the JSON read alike;
 * this benchmark sets no targets. */
static struct bench_records recs;

static void rec_keep(const struct bench_record *r)
{
	if (bench_records_add(&recs, r) != 0) {
		fprintf(stderr, "wake: out of memory\n");
		exit(1);
	}
}

static void emit(const char *metric, double value, double baseline,
		 const char *baseline_name, const char *stat)
{
	struct bench_record r;

	bench_record_result(&r, metric, "us", value, baseline, baseline_name,
			    stat, BENCH_TGT_NONE, 0);
	rec_keep(&r);
}

__attribute__((format(printf, 1, 2))) static void note(const char *fmt, ...)
{
	struct bench_record r;
	va_list ap;

	va_start(ap, fmt);
	bench_record_vnote(&r, fmt, ap);
	va_end(ap);
	rec_keep(&r);
}

/* --- time and small helpers --- */

static inline int64_t now_ns(void)
{
	return (int64_t)bench_now_ns();
}

static void sleep_ns(int64_t ns)
{
	struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000ll),
			       .tv_nsec = (long)(ns % 1000000000ll) };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !interrupted)
		;
}

/* --- the pinger: one routine for every row --- */

struct series {
	int64_t *rtt;		/* ns, sorted once done */
	unsigned n;		/* answered echoes, entries of @rtt */
	unsigned lost;
	double mean_us;
};

static int ping_fd = -1;
static uint16_t ping_ident;
static uint16_t ping_seq;

static uint16_t inet_csum(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint32_t s = 0;

	for (; len > 1; p += 2, len -= 2)
		s += (uint32_t)p[0] << 8 | p[1];
	if (len)
		s += (uint32_t)p[0] << 8;
	while (s >> 16)
		s = (s & 0xffffu) + (s >> 16);
	return htons((uint16_t)~s);
}

/* A raw ICMP socket that only hears echo replies. */
static int pinger_open(void)
{
	/* struct icmp_filter of <linux/icmp.h>, whose struct icmphdr
	 * clashes with glibc's: a bit set drops that ICMP type. */
	uint32_t f = ~(1u << ICMP_ECHOREPLY);

	ping_fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);
	if (ping_fd < 0) {
		fprintf(stderr, "wake: raw ICMP socket: %s\n",
			strerror(errno));
		return -1;
	}
	if (setsockopt(ping_fd, SOL_RAW, ICMP_FILTER, &f, sizeof(f)) != 0)
		fprintf(stderr, "wake: ICMP_FILTER: %s (other ICMP traffic "
				"will wake the pinger)\n",
			strerror(errno));
	ping_ident = (uint16_t)getpid();
	return 0;
}

/* One echo to @dst; its round trip in ns, or -1 if no reply within 1 s,
 * or -2 if sending failed (errno says why). */
static int64_t echo_once(const struct sockaddr_in *dst)
{
	uint8_t pkt[sizeof(struct icmphdr) + ICMP_PAYLOAD];
	uint8_t buf[2048];
	struct icmphdr *h = (struct icmphdr *)pkt;
	uint16_t seq = ++ping_seq;
	int64_t t0, left;

	memset(pkt, 0, sizeof(pkt));
	for (unsigned i = sizeof(*h); i < sizeof(pkt); i++)
		pkt[i] = (uint8_t)i;
	h->type = ICMP_ECHO;
	h->un.echo.id = htons(ping_ident);
	h->un.echo.sequence = htons(seq);
	h->checksum = inet_csum(pkt, sizeof(pkt));
	t0 = now_ns();
	if (sendto(ping_fd, pkt, sizeof(pkt), 0, (const void *)dst,
		   sizeof(*dst)) != (ssize_t)sizeof(pkt))
		return -2;
	while ((left = t0 + REPLY_TIMEOUT_NS - now_ns()) > 0 &&
	       !interrupted) {
		struct pollfd pfd = { .fd = ping_fd, .events = POLLIN };
		struct sockaddr_in from;
		socklen_t fl = sizeof(from);
		const struct iphdr *ip = (const struct iphdr *)buf;
		const struct icmphdr *r;
		ssize_t n;
		int64_t t1;
		int rc = poll(&pfd, 1, (int)((left + 999999) / 1000000));

		if (rc <= 0)
			continue;	/* timeout, or EINTR: look again */
		n = recvfrom(ping_fd, buf, sizeof(buf), MSG_DONTWAIT,
			     (void *)&from, &fl);
		t1 = now_ns();
		if (n < (ssize_t)sizeof(*ip) ||
		    n < (ssize_t)(ip->ihl * 4u + sizeof(*r)))
			continue;
		r = (const struct icmphdr *)(buf + ip->ihl * 4u);
		if (r->type == ICMP_ECHOREPLY &&
		    ntohs(r->un.echo.id) == ping_ident &&
		    ntohs(r->un.echo.sequence) == seq &&
		    from.sin_addr.s_addr == dst->sin_addr.s_addr)
			return t1 - t0;
	}
	return -1;
}

/* Warm-up echoes to @dst (ARP, caches), not counted; false if it never
 * answered or sending failed. */
static bool warm_up(const char *ip, const struct sockaddr_in *dst)
{
	unsigned ok = 0;

	for (unsigned i = 0; i < WARMUP && !interrupted; i++) {
		int64_t t = echo_once(dst);

		if (t == -2) {
			fprintf(stderr, "\nwake: sendto %s: %s\n", ip,
				strerror(errno));
			return false;
		}
		ok += t >= 0;
		sleep_ns(1000000);
	}
	if (ok == 0 && !interrupted)
		fprintf(stderr, "\nwake: %s answered none of %u warm-up "
				"echoes\n",
			ip, WARMUP);
	return ok > 0;
}

/*
 * @n echoes to each of the @nt addresses @ip, taking turns, each after
 * @gap_ns of quiet following the previous reply (or loss); fills @s[k]
 * for @ip[k]. Taking turns spreads any drift of the machine over every
 * target alike. Returns 0, or -1 if a target never answered its warm-up
 * or sending failed.
 */
static int echo_series(const char *const *ip, unsigned nt, unsigned n,
		       int64_t gap_ns, struct series *s)
{
	struct sockaddr_in dst[2];
	double sum[2] = { 0, 0 };

	assert(nt >= 1 && nt <= 2);
	memset(s, 0, nt * sizeof(*s));
	for (unsigned k = 0; k < nt; k++) {
		memset(&dst[k], 0, sizeof(dst[k]));
		dst[k].sin_family = AF_INET;
		if (inet_pton(AF_INET, ip[k], &dst[k].sin_addr) != 1) {
			fprintf(stderr, "\nwake: bad address '%s'\n", ip[k]);
			return -1;
		}
		if (!warm_up(ip[k], &dst[k]))
			return -1;
		s[k].rtt = calloc(n, sizeof(*s[k].rtt));
		if (s[k].rtt == NULL) {
			fprintf(stderr, "\nwake: out of memory\n");
			return -1;
		}
	}
	for (unsigned i = 0; i < n && !interrupted; i++) {
		for (unsigned k = 0; k < nt && !interrupted; k++) {
			int64_t t;

			if (gap_ns > 0)
				sleep_ns(gap_ns);
			t = echo_once(&dst[k]);
			if (t == -2) {
				fprintf(stderr, "\nwake: sendto %s: %s\n",
					ip[k], strerror(errno));
				return -1;
			}
			if (t < 0) {
				if (!interrupted)
					s[k].lost++;
				continue;
			}
			s[k].rtt[s[k].n++] = t;
			sum[k] += (double)t;
		}
	}
	if (interrupted)
		return -1;
	for (unsigned k = 0; k < nt; k++) {
		qsort(s[k].rtt, s[k].n, sizeof(*s[k].rtt), bench_cmp_i64);
		s[k].mean_us = s[k].n ? sum[k] / (double)s[k].n / 1e3 : 0;
	}
	return 0;
}

static void series_free(struct series *s)
{
	free(s->rtt);
	memset(s, 0, sizeof(*s));
}

/* --- child processes --- */

/* fork+exec @argv with the original CPU set and stdout/stderr on @out_fd
 * (-1: inherited); its pid, or -1. */
static pid_t spawn(char *const argv[], int out_fd)
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "\nwake: fork: %s\n", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		sigset_t none;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		sched_setaffinity(0, sizeof(orig_cpus), &orig_cpus);
		if (out_fd >= 0) {
			dup2(out_fd, STDOUT_FILENO);
			dup2(out_fd, STDERR_FILENO);
		}
		execv(argv[0], argv);
		fprintf(stderr, "wake: cannot run %s: %s\n", argv[0],
			strerror(errno));
		_exit(127);
	}
	return pid;
}

/* Wait up to @limit_s for @pid; its exit status (128+signal if killed),
 * or -1 on timeout. */
static int wait_exit(pid_t pid, double limit_s)
{
	int status;

	if (!bench_wait_for(pid, limit_s, &status))
		return -1;
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

/* Run @argv to completion; its output into @out (NUL-terminated, may be
 * NULL). Its exit status, or -1. */
static int run_capture(char *const argv[], char *out, size_t len)
{
	int fds[2];
	size_t got = 0;
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC) != 0)
		return -1;
	pid = spawn(argv, fds[1]);
	close(fds[1]);
	if (pid < 0) {
		close(fds[0]);
		return -1;
	}
	for (;;) {
		char sink[512];
		ssize_t n;

		if (out != NULL && got + 1 < len)
			n = read(fds[0], out + got, len - 1 - got);
		else
			n = read(fds[0], sink, sizeof(sink));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (out != NULL && got + 1 < len)
			got += (size_t)n;
	}
	close(fds[0]);
	if (out != NULL && len)
		out[got] = '\0';
	return wait_exit(pid, STOP_LIMIT_S + 10);
}

/* --- an ebbrt cluster of one node --- */

struct cluster {
	pid_t pid;		/* the frontend */
	char log[64];		/* its output */
	int log_fd;
	char ip[32];		/* node 1 */
};

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	size_t n;

	if (f == NULL)
		return NULL;
	buf = malloc(1 << 16);
	if (buf != NULL) {
		n = fread(buf, 1, (1 << 16) - 1, f);
		buf[n] = '\0';
	}
	fclose(f);
	return buf;
}

static void show_log(const struct cluster *c)
{
	char *s = slurp(c->log);

	fprintf(stderr, "--- `ebbrt run` output (%s):\n%s---\n", c->log,
		s != NULL ? s : "(unreadable)\n");
	free(s);
}

/* Node 1's line "node 1 ready ip=A.B.C.D cores=L" of the log, if there. */
static bool ready_ip(const struct cluster *c, char *ip, size_t len)
{
	char *s = slurp(c->log), *p;
	bool ok = false;

	if (s == NULL)
		return false;
	for (p = s; p != NULL && *p; p = strchr(p, '\n'), p = p ? p + 1 : p) {
		char got[32];

		if (sscanf(p, "node 1 ready ip=%31[0-9.]", got) == 1) {
			snprintf(ip, len, "%s", got);
			ok = true;
		}
	}
	free(s);
	return ok;
}

static bool log_has(const struct cluster *c, const char *what)
{
	char *s = slurp(c->log);
	bool ok = s != NULL && strstr(s, what) != NULL;

	free(s);
	return ok;
}

/* Files the DPDK processes of our cluster keep in /dev/hugepages. */
static unsigned hugepage_files(bool remove)
{
	DIR *d = opendir("/dev/hugepages");
	struct dirent *e;
	unsigned n = 0;

	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, "ebbrt-" CLUSTER,
			    strlen("ebbrt-" CLUSTER)) != 0)
			continue;
		n++;
		if (remove)
			unlinkat(dirfd(d), e->d_name, 0);
	}
	closedir(d);
	return n;
}

static int cluster_stop(struct cluster *c);

static int cluster_start(struct cluster *c, const char *msix)
{
	/* Its own subnet: a cluster on the default one may be running. */
	char *argv[] = { opt.ebbrt, "run", "--name", CLUSTER, "--nodes", "1",
			 "--cpus", "0,1", "--subnet", "10.82.0.0", "--msix",
			 (char *)msix, "--", opt.demo, NULL };
	int64_t end;

	memset(c, 0, sizeof(*c));
	c->pid = -1;
	snprintf(c->log, sizeof(c->log), "/tmp/ebbrt-wake-XXXXXX.log");
	c->log_fd = mkostemps(c->log, 4, O_CLOEXEC);
	if (c->log_fd < 0) {
		fprintf(stderr, "\nwake: log file: %s\n", strerror(errno));
		return -1;
	}
	c->pid = spawn(argv, c->log_fd);
	if (c->pid < 0)
		goto fail;
	end = now_ns() + READY_LIMIT_S * 1000000000ll;
	while (!ready_ip(c, c->ip, sizeof(c->ip))) {
		int status;

		if (interrupted)
			goto fail;
		if (waitpid(c->pid, &status, WNOHANG) == c->pid) {
			c->pid = -1;
			fprintf(stderr, "\nwake: `ebbrt run` exited before "
					"node 1 was ready\n");
			show_log(c);
			goto fail;
		}
		if (now_ns() > end) {
			fprintf(stderr, "\nwake: node 1 not ready in %d s\n",
				READY_LIMIT_S);
			show_log(c);
			goto fail;
		}
		usleep(20000);
	}
	/* The demo's start-up checks (message ping-pong with the frontend)
	 * would share the node core with our first echoes. */
	end = now_ns() + 5000000000ll;
	while (!log_has(c, "GlobalIdMap set") && now_ns() < end &&
	       !interrupted)
		usleep(20000);
	sleep_ns(100000000);
	return 0;
fail:
	cluster_stop(c);
	return -1;
}

/* `ebbrt stop`, then wait for the frontend; 0 if everything went away. */
static int cluster_stop(struct cluster *c)
{
	char *argv[] = { opt.ebbrt, "stop", "--name", CLUSTER, NULL };
	int rc = 0, st;
	unsigned left;

	if (c->pid > 0) {
		if (run_capture(argv, NULL, 0) != 0)
			kill(c->pid, SIGTERM);
		st = wait_exit(c->pid, STOP_LIMIT_S);
		if (st < 0) {
			fprintf(stderr, "\nwake: the frontend did not stop in "
					"%d s; killing it\n",
				STOP_LIMIT_S);
			kill(c->pid, SIGKILL);
			wait_exit(c->pid, 5);
			rc = -1;
		} else if (st != 0) {
			fprintf(stderr, "\nwake: the frontend exited with %d\n",
				st);
			show_log(c);
			rc = -1;
		}
		c->pid = -1;
	}
	left = hugepage_files(false);
	if (left) {
		hugepage_files(true);
		note("%u hugepage files /dev/hugepages/ebbrt-" CLUSTER
		     "* were left by the cluster; removed", left);
		rc = -1;
	}
	if (c->log_fd >= 0) {
		close(c->log_fd);
		c->log_fd = -1;
		if (rc == 0)
			unlink(c->log);
		else
			fprintf(stderr, "wake: cluster log kept in %s\n",
				c->log);
	}
	return rc;
}

/* Halts and wakes of node 1's core 0 so far, from `ebbrt status`. */
static bool node_halts(uint64_t *halts, uint64_t *wakes)
{
	char *argv[] = { opt.ebbrt, "status", "--name", CLUSTER, NULL };
	static char out[8192];
	char *p;
	unsigned node;

	if (run_capture(argv, out, sizeof(out)) != 0)
		return false;
	for (p = out; p != NULL && *p; p = strchr(p, '\n'), p = p ? p + 1 : p)
		if (sscanf(p, "%u ready", &node) == 1 && node == 1)
			break;
	/* The node's row, the core header, then core 0. */
	for (unsigned k = 0; k < 2 && p != NULL; k++)
		if ((p = strchr(p, '\n')) != NULL)
			p++;
	return p != NULL &&
	       sscanf(p, " 0 %*u %*u %" SCNu64 " %" SCNu64, halts, wakes) ==
		       2;
}

/* --- the Linux baseline: a responder on its own tap --- */

struct responder {
	pid_t pid;
};

static void put_ip(struct ifreq *ifr, const char *ip)
{
	struct sockaddr_in *a = (struct sockaddr_in *)&ifr->ifr_addr;

	memset(a, 0, sizeof(*a));
	a->sin_family = AF_INET;
	inet_pton(AF_INET, ip, &a->sin_addr);
}

/* Creates LX_TAP with the Linux side up at LX_HOST_IP/24; the tap fd. */
static int tap_open(void)
{
	struct ifreq ifr;
	int fd, s = -1;
	FILE *f;

	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "wake: /dev/net/tun: %s\n", strerror(errno));
		return -1;
	}
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", LX_TAP);
	if (ioctl(fd, TUNSETIFF, &ifr) != 0) {
		fprintf(stderr, "wake: TUNSETIFF %s: %s\n", LX_TAP,
			strerror(errno));
		goto fail;
	}
	/* Router solicitations and MLD would only add frames to ignore. */
	f = fopen("/proc/sys/net/ipv6/conf/" LX_TAP "/disable_ipv6", "w");
	if (f != NULL) {
		fputs("1\n", f);
		fclose(f);
	}
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		goto fail_errno;
	put_ip(&ifr, LX_HOST_IP);
	if (ioctl(s, SIOCSIFADDR, &ifr) != 0)
		goto fail_errno;
	put_ip(&ifr, "255.255.255.0");
	if (ioctl(s, SIOCSIFNETMASK, &ifr) != 0)
		goto fail_errno;
	if (ioctl(s, SIOCGIFFLAGS, &ifr) != 0)
		goto fail_errno;
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0)
		goto fail_errno;
	close(s);
	return fd;
fail_errno:
	fprintf(stderr, "wake: configuring %s: %s\n", LX_TAP,
		strerror(errno));
fail:
	if (s >= 0)
		close(s);
	close(fd);
	return -1;
}

/* The ARP request for LX_PEER_IP in @f (@n bytes) becomes its reply;
 * false if @f is something else. */
static bool arp_answer(uint8_t *f, size_t n, in_addr_t peer)
{
	uint8_t *a = f + 14;	/* htype ptype hlen plen op sha spa tha tpa */

	if (n < 14 + 28 || a[0] != 0 || a[1] != 1 || a[2] != 0x08 ||
	    a[3] != 0x00 || a[4] != 6 || a[5] != 4 || a[6] != 0 ||
	    a[7] != 1 || memcmp(a + 24, &peer, 4) != 0)
		return false;
	memcpy(f, f + 6, 6);
	memcpy(f + 6, lx_peer_mac, 6);
	a[7] = 2;
	memcpy(a + 18, a + 8, 10);		/* tha, tpa = sha, spa */
	memcpy(a + 8, lx_peer_mac, 6);
	memcpy(a + 14, &peer, 4);
	return true;
}

/* The echo request to LX_PEER_IP in @f becomes its reply; false if @f is
 * something else. */
static bool icmp_answer(uint8_t *f, size_t n, in_addr_t peer)
{
	struct iphdr *ip = (struct iphdr *)(f + 14);
	struct icmphdr *h;
	size_t ihl, tot;
	uint32_t tmp;

	if (n < 14 + sizeof(*ip))
		return false;
	ihl = ip->ihl * 4u;
	tot = ntohs(ip->tot_len);
	if (ip->version != 4 || ihl < sizeof(*ip) || tot < ihl + sizeof(*h) ||
	    14 + tot > n || ip->protocol != IPPROTO_ICMP ||
	    ip->daddr != peer || (ntohs(ip->frag_off) & 0x3fff) != 0)
		return false;
	h = (struct icmphdr *)((uint8_t *)ip + ihl);
	if (h->type != ICMP_ECHO)
		return false;
	memcpy(f, f + 6, 6);
	memcpy(f + 6, lx_peer_mac, 6);
	/* Swapping the addresses leaves the IP checksum as it was. */
	tmp = ip->saddr;
	ip->saddr = ip->daddr;
	ip->daddr = tmp;
	h->type = ICMP_ECHOREPLY;
	h->checksum = 0;
	h->checksum = inet_csum(h, tot - ihl);
	return true;
}

/* The responder child: blocks in read() between frames until killed. */
static __attribute__((noreturn)) void responder_main(int ready_fd)
{
	uint8_t f[2048];
	in_addr_t peer;
	int fd, rc;

	rc = bench_pin_self(NODE_CPU, NULL);
	if (rc != 0) {
		fprintf(stderr, "wake: cannot pin the responder to cpu %d: "
				"%s\n",
			NODE_CPU, strerror(-rc));
		_exit(1);
	}
	inet_pton(AF_INET, LX_PEER_IP, &peer);
	fd = tap_open();
	if (fd < 0)
		_exit(1);
	if (write(ready_fd, "r", 1) != 1)
		_exit(1);
	close(ready_fd);
	for (;;) {
		ssize_t n = read(fd, f, sizeof(f));
		uint16_t type;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			_exit(1);
		if (n < 14)
			continue;
		type = (uint16_t)(f[12] << 8 | f[13]);
		if ((type == 0x0806 && arp_answer(f, (size_t)n, peer)) ||
		    (type == 0x0800 && icmp_answer(f, (size_t)n, peer)))
			if (write(fd, f, (size_t)n) != n)
				continue;	/* a lost reply shows as such */
	}
}

static int responder_stop(struct responder *r);

static int responder_start(struct responder *r)
{
	int fds[2];
	char c;
	ssize_t n;

	r->pid = -1;
	if (if_nametoindex(LX_TAP) != 0) {
		fprintf(stderr, "\nwake: interface %s exists already (a "
				"previous run's, or another program's?)\n",
			LX_TAP);
		return -1;
	}
	if (pipe2(fds, O_CLOEXEC) != 0)
		return -1;
	fflush(NULL);
	r->pid = fork();
	if (r->pid < 0) {
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (r->pid == 0) {
		close(fds[0]);
		signal(SIGINT, SIG_IGN);	/* the parent stops us */
		signal(SIGTERM, SIG_DFL);
		responder_main(fds[1]);
	}
	close(fds[1]);
	while ((n = read(fds[0], &c, 1)) < 0 && errno == EINTR)
		;
	close(fds[0]);
	if (n != 1) {
		fprintf(stderr, "\nwake: the Linux responder did not start\n");
		responder_stop(r);
		return -1;
	}
	return 0;
}

/* Kills the responder; its tap goes with its fd. */
static int responder_stop(struct responder *r)
{
	int64_t end;

	if (r->pid <= 0)
		return 0;
	kill(r->pid, SIGTERM);
	wait_exit(r->pid, 5);
	r->pid = -1;
	end = now_ns() + 2000000000ll;
	while (if_nametoindex(LX_TAP) != 0) {
		if (now_ns() > end) {
			fprintf(stderr, "\nwake: tap %s is still there\n",
				LX_TAP);
			return -1;
		}
		usleep(10000);
	}
	return 0;
}

/* --- the rows --- */

/* Each ebbrt row with a gap is measured taking turns with the Linux
 * responder (its baseline); the rows with no gap one after the other, as
 * a polling core would otherwise share cpu 0 with the responder. */
enum {
	ROW_PASS,
	ROW_LINUX_P,		/* taking turns with ROW_PASS */
	ROW_FORWARD,
	ROW_LINUX_F,		/* taking turns with ROW_FORWARD */
	ROW_BUSY,
	ROW_LINUX_BUSY,
	NROWS
};

static const char *const row_name[NROWS] = {
	[ROW_PASS] = "ebbrt node, msix pass, gap",
	[ROW_LINUX_P] = "Linux responder, gap, beside pass",
	[ROW_FORWARD] = "ebbrt node, msix forward, gap",
	[ROW_LINUX_F] = "Linux responder, gap, beside forward",
	[ROW_BUSY] = "ebbrt node, msix pass, no gap",
	[ROW_LINUX_BUSY] = "Linux responder, no gap",
};

static struct series rows[NROWS];
static bool row_ok[NROWS];
static unsigned total_lost;

static unsigned echoes(void)
{
	if (opt.count_set)
		return opt.count;
	return opt.quick ? 300 : 2000;
}

static int64_t gap_ns(void)
{
	return (int64_t)(opt.gap_ms * 1e6);
}

/* Notes when other work (beside ours and our children's) shared the two
 * cpus since @u0, as in bench/micro.c. */
static void note_contention(const char *step, struct bench_cpu_use u0)
{
	struct bench_cpu_use u1 = bench_cpu_use(NODE_CPU, PING_CPU);
	char buf[240];

	if (bench_contention_note(&u0, &u1, step, buf, sizeof(buf)))
		note("%s", buf);
}

/* Notes what a finished row says beyond its percentiles. */
static void row_done(unsigned row, bool halting, bool counted, uint64_t h)
{
	const struct series *s = &rows[row];
	unsigned n = echoes();

	row_ok[row] = true;
	total_lost += s->lost;
	if (s->lost)
		note("%s: %u of %u echoes LOST (no reply within 1 s)",
		     row_name[row], s->lost, n);
	if (counted && halting)
		note("%s: node core halted %" PRIu64 " times for %u echoes "
		     "(one per echo expected)%s",
		     row_name[row], h, n,
		     (double)h < 0.95 * n ? "; fewer: cpu 0 was busy or the "
					    "gap is too short"
					  : "");
	else if (counted)
		note("%s: node core halted %" PRIu64 " times in %u echoes "
		     "(about none expected)",
		     row_name[row], h, n);
	if (s->n)
		note("%s: p50 %.1f us, p99 %.1f us, max %.1f us, mean %.1f us",
		     row_name[row], (double)bench_pct_i64(s->rtt, s->n, 0.5) / 1e3,
		     (double)bench_pct_i64(s->rtt, s->n, 0.99) / 1e3,
		     (double)s->rtt[s->n - 1] / 1e3, s->mean_us);
}

/* Runs @row against the node at @ip and, if @lx_row is a row, the Linux
 * responder taking turns; 0 or -1. */
static int measure(unsigned row, int lx_row, const char *ip, int64_t gap)
{
	const char *ips[2] = { ip, LX_PEER_IP };
	struct series s[2] = { { 0 }, { 0 } };
	uint64_t h0 = 0, w0 = 0, h1 = 0, w1 = 0;
	bool counted = node_halts(&h0, &w0);
	unsigned nt = lx_row >= 0 ? 2 : 1;

	if (echo_series(ips, nt, echoes(), gap, s) != 0) {
		series_free(&s[0]);
		if (nt == 2)
			series_free(&s[1]);
		return -1;
	}
	counted = counted && node_halts(&h1, &w1);
	if (!counted)
		note("%s: no halt counters (`ebbrt status` failed)",
		     row_name[row]);
	rows[row] = s[0];
	row_done(row, gap > 0, counted, h1 - h0);
	if (nt == 2) {
		rows[lx_row] = s[1];
		row_done((unsigned)lx_row, false, false, 0);
	}
	return 0;
}

/* Linux alone, no gap: the baseline of the polling node. */
static int measure_linux_busy(void)
{
	const char *ips[1] = { LX_PEER_IP };

	if (echo_series(ips, 1, echoes(), 0, &rows[ROW_LINUX_BUSY]) != 0) {
		series_free(&rows[ROW_LINUX_BUSY]);
		return -1;
	}
	row_done(ROW_LINUX_BUSY, false, false, 0);
	return 0;
}

/* A cluster with --msix @msix and the Linux responder: the halted rows,
 * taking turns, then with @busy the no-gap rows one after the other. */
static int step(const char *msix, unsigned row, unsigned lx_row, bool busy)
{
	struct bench_cpu_use u0 = bench_cpu_use(NODE_CPU, PING_CPU);
	struct responder r = { .pid = -1 };
	struct cluster c = { .pid = -1, .log_fd = -1 };
	char what[96];
	int rc = -1;

	if (responder_start(&r) != 0 || cluster_start(&c, msix) != 0)
		goto out;
	if (measure(row, (int)lx_row, c.ip, gap_ns()) != 0)
		goto out;
	if (busy && (measure(ROW_BUSY, -1, c.ip, 0) != 0 ||
		     measure_linux_busy() != 0))
		goto out;
	rc = 0;
out:
	if (cluster_stop(&c) != 0)
		rc = -1;
	if (responder_stop(&r) != 0)
		rc = -1;
	snprintf(what, sizeof(what), "step --msix %s", msix);
	note_contention(what, u0);
	return rc;
}

static void emit_row(unsigned row, unsigned base, const char *what,
		     const char *base_name)
{
	const struct series *s = &rows[row], *b = &rows[base];
	char name[64];
	static const struct {
		const char *label;
		double p;
	} q[] = { { "p50", 0.50 }, { "p99", 0.99 } };

	if (!row_ok[row] || !row_ok[base] || s->n == 0 || b->n == 0)
		return;
	for (unsigned i = 0; i < 2; i++) {
		snprintf(name, sizeof(name), "echo RTT %s %s", what,
			 q[i].label);
		emit(name, (double)bench_pct_i64(s->rtt, s->n, q[i].p) / 1e3,
		     (double)bench_pct_i64(b->rtt, b->n, q[i].p) / 1e3, base_name,
		     q[i].label);
	}
	snprintf(name, sizeof(name), "echo RTT %s mean", what);
	emit(name, s->mean_us, b->mean_us, base_name, "mean");
}

/* --- output --- */

static void print_table(void)
{
	bench_records_table(&recs);
	printf("\nratio = value / baseline (below 1: ebbrt is faster); "
	       "percentiles and means over all answered echoes.\n");
	bench_records_notes(&recs);
}

/* --- set-up --- */

static void usage(FILE *to)
{
	fprintf(to,
		"usage: ebbrt-bench-wake [--quick] [--json PATH] [--count N] "
		"[--gap-ms MS]\n"
		"                        [--ebbrt PATH] [--demo PATH]\n"
		"Wake-up latency of a halted node: ICMP echo round trips from "
		"Linux, each after\nan idle gap, to a node of `ebbrt run` "
		"(--msix pass, then forward) and to a\nLinux responder on its "
		"own tap blocked in read(); both on cpu %d, the pinger\non "
		"cpu %d. Also the same with no gap (cores polling).\n"
		"  --quick        %u echoes per row instead of %u: a smoke run\n"
		"  --json PATH    also write the results as a JSON array\n"
		"  --count N      echoes per row\n"
		"  --gap-ms MS    idle gap before each echo (default 5)\n"
		"  --ebbrt PATH   the ebbrt command (default: "
		"../frontend/ebbrt beside this program)\n"
		"  --demo PATH    the node app (default: "
		"../apps/examples/ebbrt-demo)\n"
		"  --help         this text\n"
		"Needs root (raw socket, tap devices) and 2 MiB hugepages. "
		"See docs/bench.md.\n",
		NODE_CPU, PING_CPU, 300u, 2000u);
}

/* @rel, relative to the directory of this program, into @out. */
static void beside_me(const char *rel, char *out, size_t len)
{
	char dir[PATH_MAX - 64];	/* room for @rel in @out */

	if (bench_self_dir(dir, sizeof(dir)) != 0) {
		snprintf(out, len, "%s", rel);
		return;
	}
	snprintf(out, len, "%s/%s", dir, rel);
}

static void bad_arg(const char *what, const char *arg)
{
	fprintf(stderr, "wake: bad %s '%s'\n", what, arg);
	usage(stderr);
	exit(2);
}

static void parse_args(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "quick", no_argument, NULL, 'q' },
		{ "json", required_argument, NULL, 'j' },
		{ "count", required_argument, NULL, 'n' },
		{ "gap-ms", required_argument, NULL, 'g' },
		{ "ebbrt", required_argument, NULL, 'e' },
		{ "demo", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	long v;
	int c;

	beside_me("../frontend/ebbrt", opt.ebbrt, sizeof(opt.ebbrt));
	beside_me("../apps/examples/ebbrt-demo", opt.demo, sizeof(opt.demo));
	while ((c = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (c) {
		case 'q':
			opt.quick = true;
			break;
		case 'j':
			opt.json = optarg;
			break;
		case 'n':
			v = strtol(optarg, &end, 10);
			if (end == optarg || *end != '\0' || v < 10 ||
			    v > 60000)
				bad_arg("--count (10 to 60000)", optarg);
			opt.count = (unsigned)v;
			opt.count_set = true;
			break;
		case 'g':
			opt.gap_ms = strtod(optarg, &end);
			if (end == optarg || *end != '\0' || opt.gap_ms <= 0 ||
			    opt.gap_ms > 1000)
				bad_arg("--gap-ms (above 0, at most 1000)",
					optarg);
			break;
		case 'e':
			snprintf(opt.ebbrt, sizeof(opt.ebbrt), "%s", optarg);
			break;
		case 'd':
			snprintf(opt.demo, sizeof(opt.demo), "%s", optarg);
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
		fprintf(stderr, "wake: unexpected argument '%s'\n",
			argv[optind]);
		usage(stderr);
		exit(2);
	}
}

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static bool check_env(void)
{
	char resolved[PATH_MAX];

	if (geteuid() != 0) {
		fprintf(stderr, "wake: needs root: a raw ICMP socket, tap "
				"devices and `ebbrt run` (try sudo)\n");
		return false;
	}
	if (sched_getaffinity(0, sizeof(orig_cpus), &orig_cpus) != 0 ||
	    !CPU_ISSET(NODE_CPU, &orig_cpus) ||
	    !CPU_ISSET(PING_CPU, &orig_cpus)) {
		fprintf(stderr, "wake: needs cpus %d and %d\n", NODE_CPU,
			PING_CPU);
		return false;
	}
	if (access(opt.ebbrt, X_OK) != 0) {
		fprintf(stderr, "wake: cannot run %s: %s (give --ebbrt "
				"PATH)\n",
			opt.ebbrt, strerror(errno));
		return false;
	}
	if (access(opt.demo, X_OK) != 0) {
		fprintf(stderr, "wake: cannot run %s: %s (give --demo PATH)\n",
			opt.demo, strerror(errno));
		return false;
	}
	/* `ebbrt run` fails late and wordily without a free hugepage. */
	if (!bench_hugepages_free()) {
		fprintf(stderr, "wake: no free 2 MiB hugepage; as root:\n"
				BENCH_HUGEPAGE_FIX);
		return false;
	}
	/* `ebbrt run` wants the app by a path it can check. */
	if (realpath(opt.ebbrt, resolved) != NULL)
		snprintf(opt.ebbrt, sizeof(opt.ebbrt), "%s", resolved);
	if (realpath(opt.demo, resolved) != NULL)
		snprintf(opt.demo, sizeof(opt.demo), "%s", resolved);
	return true;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal };
	char gap[32], what[160];
	int failed = 0, rc;
	int64_t t0;

	parse_args(argc, argv);
	if (!check_env())
		return 1;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (pinger_open() != 0)
		return 1;
	rc = bench_pin_self(PING_CPU, NULL);
	if (rc != 0) {
		fprintf(stderr, "wake: cannot pin to cpu %d: %s\n", PING_CPU,
			strerror(-rc));
		return 1;
	}
	printf("ebbrt wake benchmark %s: node/responder on cpu %d, pinger "
	       "on cpu %d, %u echoes per row, gap %.1f ms, load average "
	       "%.2f\n",
	       EBBRT_VERSION, NODE_CPU, PING_CPU, echoes(), opt.gap_ms,
	       bench_loadavg());
	fflush(stdout);
	snprintf(gap, sizeof(gap), "%g ms gap", opt.gap_ms);

	for (unsigned i = 0; i < 2 && !interrupted; i++) {
		bool pass = i == 0;

		snprintf(what, sizeof(what),
			 "ebbrt node --msix %s and Linux responder, %s, taking "
			 "turns%s",
			 pass ? "pass" : "forward", gap,
			 pass ? "; then no gap" : "");
		fprintf(stderr, "[%u/2] %s...", i + 1, what);
		t0 = now_ns();
		if (step(pass ? "pass" : "forward",
			 pass ? ROW_PASS : ROW_FORWARD,
			 pass ? ROW_LINUX_P : ROW_LINUX_F, pass) != 0) {
			fprintf(stderr, " FAILED\n");
			failed++;
			continue;
		}
		fprintf(stderr, " %.1f s\n", (double)(now_ns() - t0) / 1e9);
	}
	close(ping_fd);

	snprintf(what, sizeof(what), "Linux responder in read(), %s", gap);
	emit_row(ROW_PASS, ROW_LINUX_P, "halted, msix pass", what);
	emit_row(ROW_FORWARD, ROW_LINUX_F, "halted, msix forward", what);
	emit_row(ROW_BUSY, ROW_LINUX_BUSY, "polling (no gap)",
		 "Linux responder in read(), no gap");
	if (row_ok[ROW_PASS] && row_ok[ROW_FORWARD] && rows[ROW_PASS].n &&
	    rows[ROW_FORWARD].n && rows[ROW_LINUX_P].n && rows[ROW_LINUX_F].n) {
		const struct series *p = &rows[ROW_PASS],
				    *f = &rows[ROW_FORWARD],
				    *lp = &rows[ROW_LINUX_P],
				    *lf = &rows[ROW_LINUX_F];
		double p50 = (double)bench_pct_i64(p->rtt, p->n, 0.5),
		       f50 = (double)bench_pct_i64(f->rtt, f->n, 0.5),
		       p99 = (double)bench_pct_i64(p->rtt, p->n, 0.99),
		       f99 = (double)bench_pct_i64(f->rtt, f->n, 0.99),
		       lp50 = (double)bench_pct_i64(lp->rtt, lp->n, 0.5),
		       lf50 = (double)bench_pct_i64(lf->rtt, lf->n, 0.5);

		/* The two clusters ran one after the other: their ratios to
		 * the Linux responder beside each are the fairer comparison. */
		note("msix forward vs pass: p50 %+.1f us (%.2fx), p99 %+.1f us "
		     "(%.2fx); p50 over Linux beside each: %.2fx vs %.2fx",
		     (f50 - p50) / 1e3, f50 / p50, (f99 - p99) / 1e3, f99 / p99,
		     f50 / lf50, p50 / lp50);
	}
	print_table();
	if (opt.json != NULL &&
	    bench_records_json(&recs, opt.json, "wake") == 0)
		printf("results: %s\n", opt.json);
	for (unsigned i = 0; i < NROWS; i++)
		series_free(&rows[i]);
	if (interrupted) {
		fprintf(stderr, "wake: interrupted\n");
		return 130;
	}
	if (total_lost)
		fprintf(stderr, "wake: %u echoes lost\n", total_lost);
	if (failed)
		fprintf(stderr, "wake: %d step(s) failed\n", failed);
	return failed || total_lost ? 1 : 0;
}
