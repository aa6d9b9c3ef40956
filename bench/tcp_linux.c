/* SPDX-License-Identifier: BSD-3-Clause */
/* A Linux TCP server on one pinned cpu, the baseline of ebbrt-bench-tcp:
 * an echo port (every byte read is written back) and a sink port (bytes
 * read and dropped, timed per connection), written twice the way a Linux
 * engineer would tune them: epoll on non-blocking sockets, and io_uring
 * with a multishot accept and one recv per connection. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <liburing.h>

#include "common.h"

#define ECHO_BUF (16 << 10)	/* bytes an echo connection reads at once */
#define SINK_BUF (256 << 10)	/* ... a sink connection */
#define BACKLOG 256
#define URING_ENTRIES 1024

enum { L_ECHO, L_SINK, NLISTEN };
static const char *const listen_name[NLISTEN] = { "echo", "sink" };

static struct {
	enum { MODE_EPOLL, MODE_URING } mode;
	const char *addr;
	int port[NLISTEN];
	int cpu;
	bool spin;
} opt = { .mode = MODE_EPOLL, .addr = "127.0.0.1", .cpu = -1 };

static struct {
	uint64_t echoed;	/* bytes written back */
	uint64_t sunk;		/* bytes dropped by sinks */
	uint64_t reads;		/* reads (recv completions) with data */
	uint64_t conns;		/* connections accepted */
	uint64_t errors;	/* connections closed on an error */
	uint64_t waits;		/* times the server blocked */
	const char *how;	/* the io path actually used */
} st;

/*
 * One connection. A sink times its bytes from the end of its first read
 * to the end of its last one and says so on stdout when the peer closes:
 * "sink bytes B ns T" (the bytes of the first read excluded, so B / T is
 * the rate the receiver saw).
 */
struct conn {
	int fd;
	bool sink;
	bool dead;		/* io_uring: closed once its recv returns */
	bool blocked;		/* epoll: waits for EPOLLOUT, not EPOLLIN */
	char *buf;
	/* epoll echo: bytes not yet written, buf[pend_off..pend_len);
	 * io_uring echo: pend_len is the length of the send in flight. */
	size_t pend_off, pend_len;
	uint64_t bytes, first_bytes;
	uint64_t first_ns, last_ns;
};

/* ------------------------------------------------------------------ */

static int open_listener(int which, bool nonblock)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons((uint16_t)opt.port[which]) };
	socklen_t len = sizeof(sa);
	int fd, one = 1;

	if (inet_pton(AF_INET, opt.addr, &sa.sin_addr) != 1) {
		fprintf(stderr, "tcp-linux: bad address '%s'\n", opt.addr);
		return -1;
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC |
			     (nonblock ? SOCK_NONBLOCK : 0), 0);
	if (fd < 0) {
		fprintf(stderr, "tcp-linux: socket: %s\n", strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(fd, BACKLOG) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
		fprintf(stderr, "tcp-linux: %s port %s:%d: %s\n",
			listen_name[which], opt.addr, opt.port[which],
			strerror(errno));
		close(fd);
		return -1;
	}
	opt.port[which] = ntohs(sa.sin_port);
	return fd;
}

/* SIGTERM and SIGINT arrive on a signalfd that the loop waits on with
 * the sockets, so a signal never races a blocking wait. */
static int open_signalfd(void)
{
	sigset_t set;
	int fd;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if (sigprocmask(SIG_BLOCK, &set, NULL) != 0)
		return -1;
	fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0)
		fprintf(stderr, "tcp-linux: signalfd: %s\n", strerror(errno));
	return fd;
}

static struct conn *conn_new(int fd, bool sink)
{
	struct conn *c = calloc(1, sizeof(*c));
	int one = 1;

	if (c == NULL)
		return NULL;
	c->buf = malloc(sink ? SINK_BUF : ECHO_BUF);
	if (c->buf == NULL) {
		free(c);
		return NULL;
	}
	c->fd = fd;
	c->sink = sink;
	/* Requests are small and answered at once: no Nagle delay. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	st.conns++;
	return c;
}

static void conn_free(struct conn *c)
{
	if (c == NULL)
		return;
	if (c->sink && c->first_ns != 0) {
		printf("sink bytes %" PRIu64 " ns %" PRIu64 "\n",
		       c->bytes - c->first_bytes, c->last_ns - c->first_ns);
		fflush(stdout);
	}
	close(c->fd);
	free(c->buf);
	free(c);
}

/* A sink read @n bytes just now. */
static void sink_count(struct conn *c, size_t n)
{
	uint64_t now = bench_now_ns();

	if (c->first_ns == 0) {
		c->first_ns = now;
		c->first_bytes = n;
	}
	c->last_ns = now;
	c->bytes += n;
	st.sunk += n;
}

/* ------------------------------------------------------------------ */
/* epoll: level-triggered, non-blocking sockets */

/* What data.ptr points to for the listeners and the signalfd. */
struct tag {
	int kind;		/* NLISTEN: the signalfd */
	int fd;
};

static void ep_accept(int ep, const struct tag *t)
{
	for (;;) {
		int fd = accept4(t->fd, NULL, NULL,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct epoll_event ev = { .events = EPOLLIN };
		struct conn *c;

		if (fd < 0)
			return;	/* EAGAIN: all taken */
		c = conn_new(fd, t->kind == L_SINK);
		if (c == NULL) {
			close(fd);
			st.errors++;
			continue;
		}
		ev.data.ptr = c;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
			st.errors++;
			conn_free(c);
		}
	}
}

/* Write what is pending; false on an error. Waits for EPOLLOUT (and
 * stops reading) while the socket is full: no unbounded buffering. */
static bool ep_flush(int ep, struct conn *c)
{
	struct epoll_event ev = { .data.ptr = c };

	while (c->pend_off < c->pend_len) {
		ssize_t w = send(c->fd, c->buf + c->pend_off,
				 c->pend_len - c->pend_off, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return false;
			if (c->blocked)
				return true;
			c->blocked = true;
			ev.events = EPOLLOUT;
			return epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) == 0;
		}
		c->pend_off += (size_t)w;
		st.echoed += (uint64_t)w;
	}
	c->pend_off = c->pend_len = 0;
	if (c->blocked) {
		c->blocked = false;
		ev.events = EPOLLIN;
		return epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) == 0;
	}
	return true;
}

/* Readable (or writable again): false when the connection is done. */
static bool ep_serve(int ep, struct conn *c, uint32_t events)
{
	size_t size = c->sink ? SINK_BUF : ECHO_BUF;

	if (c->pend_len != 0) {
		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return true;
		if (!ep_flush(ep, c))
			return false;
		if (c->pend_len != 0)
			return true;
	}
	for (;;) {
		ssize_t n = recv(c->fd, c->buf, size, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return true;
		if (n <= 0) {
			if (n < 0)
				st.errors++;
			return false;
		}
		st.reads++;
		if (c->sink) {
			sink_count(c, (size_t)n);
		} else {
			c->pend_off = 0;
			c->pend_len = (size_t)n;
			if (!ep_flush(ep, c))
				return false;
			if (c->pend_len != 0)
				return true;
		}
		/* A short read drained the socket: level-triggered epoll
		 * says when more comes, without a read that finds nothing. */
		if ((size_t)n < size)
			return true;
	}
}

static int serve_epoll(const int *lfd, int sigfd)
{
	struct tag tags[NLISTEN + 1];
	struct epoll_event ev[64];
	bool stop = false;
	int ep, rc = -1;

	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0) {
		fprintf(stderr, "tcp-linux: epoll_create1: %s\n",
			strerror(errno));
		return -1;
	}
	for (int i = 0; i <= NLISTEN; i++) {
		struct epoll_event e = { .events = EPOLLIN,
					 .data.ptr = &tags[i] };

		tags[i] = (struct tag){ .kind = i,
					.fd = i < NLISTEN ? lfd[i] : sigfd };
		if (epoll_ctl(ep, EPOLL_CTL_ADD, tags[i].fd, &e) != 0) {
			fprintf(stderr, "tcp-linux: epoll_ctl: %s\n",
				strerror(errno));
			goto out;
		}
	}
	st.how = "epoll, non-blocking recv/send, TCP_NODELAY";
	while (!stop) {
		int n = epoll_wait(ep, ev, 64, opt.spin ? 0 : -1);

		if (n < 0 && errno != EINTR) {
			fprintf(stderr, "tcp-linux: epoll_wait: %s\n",
				strerror(errno));
			goto out;
		}
		if (!opt.spin)
			st.waits++;
		for (int i = 0; i < n; i++) {
			void *p = ev[i].data.ptr;

			if (p == &tags[NLISTEN]) {
				stop = true;
			} else if (p == &tags[L_ECHO] || p == &tags[L_SINK]) {
				ep_accept(ep, p);
			} else if (!ep_serve(ep, p, ev[i].events)) {
				/* close() takes it out of the epoll set. */
				conn_free(p);
			}
		}
	}
	rc = 0;
out:
	close(ep);
	return rc;
}

/* ------------------------------------------------------------------ */
/* io_uring
 *
 * One recv per connection in flight, into the connection's own buffer.
 * An echo's reply is a send (MSG_WAITALL: the kernel retries a short
 * one) linked to the next recv, so the recv cannot run before the send
 * has left the buffer and the bytes of one connection stay in order;
 * the send posts no completion when it succeeds, so a request costs the
 * server one io_uring_enter. Multishot recv with provided buffers would
 * save the re-arm but could hand the next bytes over while an echo is
 * still being sent: more send SQEs in flight per connection, and their
 * order is not guaranteed. */

enum { UD_ACCEPT = 1, UD_RECV, UD_SEND, UD_SIGNAL };
#define UD(kind, p) (((uint64_t)(uintptr_t)(p)) | (uint64_t)(kind))
#define UD_KIND(ud) ((unsigned)((ud) & 7u))
#define UD_PTR(ud) ((void *)(uintptr_t)((ud) & ~(uint64_t)7u))

struct uring_srv {
	struct io_uring ring;
	int lfd[NLISTEN];
	int sigfd;
	bool multishot_accept;
	bool skip_cqe;		/* IOSQE_CQE_SKIP_SUCCESS works */
	bool stop;
	uint64_t listen_tag[NLISTEN];	/* 8-aligned tags of the listeners */
};

_Static_assert(_Alignof(struct conn) >= 8, "UD() keeps the kind in the "
	       "three low bits of a pointer");

static struct io_uring_sqe *get_sqe(struct uring_srv *u)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);

	if (sqe == NULL) {
		/* Full submission queue: hand it over and retry. */
		io_uring_submit(&u->ring);
		sqe = io_uring_get_sqe(&u->ring);
	}
	return sqe;
}

static void arm_accept(struct uring_srv *u, int which)
{
	struct io_uring_sqe *sqe = get_sqe(u);

	if (u->multishot_accept)
		io_uring_prep_multishot_accept(sqe, u->lfd[which], NULL, NULL,
					       SOCK_CLOEXEC);
	else
		io_uring_prep_accept(sqe, u->lfd[which], NULL, NULL,
				     SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, UD(UD_ACCEPT, &u->listen_tag[which]));
}

static void arm_recv(struct uring_srv *u, struct conn *c)
{
	struct io_uring_sqe *sqe = get_sqe(u);

	io_uring_prep_recv(sqe, c->fd, c->buf, c->sink ? SINK_BUF : ECHO_BUF,
			   0);
	io_uring_sqe_set_data64(sqe, UD(UD_RECV, c));
}

/* Echo @n bytes of @c's buffer, then its next recv. */
static void arm_echo(struct uring_srv *u, struct conn *c, size_t n)
{
	struct io_uring_sqe *sqe;

	/* Both SQEs must be in one submission: a link never spans two. */
	if (io_uring_sq_space_left(&u->ring) < 2)
		io_uring_submit(&u->ring);
	sqe = get_sqe(u);
	io_uring_prep_send(sqe, c->fd, c->buf, n, MSG_WAITALL | MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, UD(UD_SEND, c));
	sqe->flags |= IOSQE_IO_LINK | (u->skip_cqe ? IOSQE_CQE_SKIP_SUCCESS : 0);
	c->pend_len = n;
	arm_recv(u, c);
}

static void arm_signal(struct uring_srv *u)
{
	struct io_uring_sqe *sqe = get_sqe(u);

	io_uring_prep_poll_add(sqe, u->sigfd, POLLIN);
	io_uring_sqe_set_data64(sqe, UD(UD_SIGNAL, NULL));
}

static int uring_setup(struct uring_srv *u)
{
	/* One issuer, completions run when it asks for them: no IPIs and
	 * no task work interrupting the loop (kernel 6.1). Older kernels:
	 * cooperative task work, then nothing. */
	static const unsigned flag_sets[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
		IORING_SETUP_COOP_TASKRUN,
		0,
	};
	struct io_uring_params p;
	int rc = -EINVAL;

	for (unsigned i = 0; i < sizeof(flag_sets) / sizeof(flag_sets[0]);
	     i++) {
		p = (struct io_uring_params){ .flags = flag_sets[i] };
		rc = io_uring_queue_init_params(URING_ENTRIES, &u->ring, &p);
		if (rc == 0)
			break;
	}
	if (rc != 0) {
		fprintf(stderr, "tcp-linux: io_uring_queue_init: %s\n",
			strerror(-rc));
		return -1;
	}
	io_uring_register_ring_fd(&u->ring);
	u->skip_cqe = (p.features & IORING_FEAT_CQE_SKIP) != 0;
	u->multishot_accept = true;
	return 0;
}

/* One completion. Returns -1 on a fatal error. */
static int uring_complete(struct uring_srv *u, struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	struct conn *c = UD_PTR(ud);
	int which;

	switch (UD_KIND(ud)) {
	case UD_SIGNAL:
		u->stop = true;
		return 0;
	case UD_ACCEPT:
		which = (uint64_t *)UD_PTR(ud) == &u->listen_tag[L_SINK] ? L_SINK
								   : L_ECHO;
		if (cqe->res == -EINVAL && st.conns == 0 &&
		    u->multishot_accept) {
			/* No multishot accept (before 5.19): single ones.
			 * The other listener's says so too, and re-arms
			 * below. */
			u->multishot_accept = false;
			arm_accept(u, which);
			return 0;
		}
		if (!(cqe->flags & IORING_CQE_F_MORE) && !u->stop)
			arm_accept(u, which);
		if (cqe->res < 0) {
			st.errors++;
			return 0;
		}
		c = conn_new(cqe->res, which == L_SINK);
		if (c == NULL) {
			close(cqe->res);
			st.errors++;
			return 0;
		}
		arm_recv(u, c);
		return 0;
	case UD_SEND:
		/* Only failures post (or every send without skip_cqe). */
		if (cqe->res == (int)c->pend_len) {
			if (!u->skip_cqe)
				st.echoed += (uint64_t)cqe->res;
		} else {
			/* The linked recv completes -ECANCELED and closes. */
			c->dead = true;
			st.errors++;
		}
		return 0;
	case UD_RECV:
		break;
	default:
		return 0;
	}

	if (cqe->res <= 0 || c->dead) {
		/* EOF, an error, or a failed echo: nothing of this
		 * connection is in flight any more. */
		if (cqe->res < 0 && cqe->res != -ECANCELED)
			st.errors++;
		conn_free(c);
		return 0;
	}
	st.reads++;
	if (c->sink) {
		sink_count(c, (size_t)cqe->res);
		arm_recv(u, c);
	} else {
		/* A send that succeeds may post nothing: count it here (one
		 * that fails is counted as an error too). */
		if (u->skip_cqe)
			st.echoed += (uint64_t)cqe->res;
		arm_echo(u, c, (size_t)cqe->res);
	}
	return 0;
}

static int serve_uring(const int *lfd, int sigfd)
{
	struct uring_srv u = { .sigfd = sigfd };
	int rc = -1;

	memcpy(u.lfd, lfd, sizeof(u.lfd));
	if (uring_setup(&u) != 0)
		return -1;
	for (int i = 0; i < NLISTEN; i++)
		arm_accept(&u, i);
	arm_signal(&u);
	st.how = u.multishot_accept
			 ? "io_uring multishot accept, recv + linked send"
			 : "io_uring accept, recv + linked send";
	while (!u.stop) {
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		int r;

		/* One syscall per round: submit what the last round queued
		 * and wait for the next completion. */
		if (opt.spin || io_uring_cq_ready(&u.ring) > 0) {
			r = io_uring_submit_and_get_events(&u.ring);
		} else {
			r = io_uring_submit_and_wait(&u.ring, 1);
			st.waits++;
		}
		if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY &&
		    r != -ETIME) {
			fprintf(stderr, "tcp-linux: io_uring_enter: %s\n",
				strerror(-r));
			goto out;
		}
		io_uring_for_each_cqe(&u.ring, head, cqe) {
			r = uring_complete(&u, cqe);
			seen++;
			if (r < 0)
				goto out;
		}
		io_uring_cq_advance(&u.ring, seen);
	}
	rc = 0;
out:
	/* Connections still open are the client's business: the process
	 * ends and the kernel closes them. */
	io_uring_queue_exit(&u.ring);
	return rc;
}

/* ------------------------------------------------------------------ */

static void usage(FILE *to)
{
	fprintf(to,
		"usage: ebbrt-tcp-linux [--mode epoll|uring] [--addr IP] "
		"[--echo-port P]\n"
		"                       [--sink-port P] [--cpu N] [--spin]\n"
		"TCP echo and sink server on one thread, until SIGTERM or "
		"SIGINT.\n"
		"  --mode M        epoll: non-blocking sockets, level-triggered "
		"epoll (default);\n"
		"                  uring: io_uring multishot accept, one recv "
		"per connection,\n"
		"                  echoes as a send linked to the next recv\n"
		"  --addr IP       address to bind (default 127.0.0.1)\n"
		"  --echo-port P   echo port: every byte read is written back "
		"(default 0: any)\n"
		"  --sink-port P   sink port: bytes read and dropped (default "
		"0: any)\n"
		"  --cpu N         pin to cpu N (default: not pinned)\n"
		"  --spin          never block: poll in a loop\n"
		"Prints 'ready echo P sink P <mode>' once it listens; 'sink "
		"bytes B ns T' when a\nsink connection closes (bytes after its "
		"first read, over the time from that read\nto its last); on "
		"exit 'echoed B sunk B reads N conns N errors N waits N path "
		"\"...\"'.\n");
}

static int parse_port(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*end != '\0' || v < 0 || v > 65535) {
		fprintf(stderr, "tcp-linux: bad port '%s'\n", s);
		exit(2);
	}
	return (int)v;
}

static void parse_args(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "mode", required_argument, NULL, 'm' },
		{ "addr", required_argument, NULL, 'a' },
		{ "echo-port", required_argument, NULL, 'e' },
		{ "sink-port", required_argument, NULL, 'k' },
		{ "cpu", required_argument, NULL, 'c' },
		{ "spin", no_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (c) {
		case 'm':
			if (strcmp(optarg, "epoll") == 0) {
				opt.mode = MODE_EPOLL;
			} else if (strcmp(optarg, "uring") == 0 ||
				   strcmp(optarg, "io_uring") == 0) {
				opt.mode = MODE_URING;
			} else {
				fprintf(stderr, "tcp-linux: unknown mode '%s'\n",
					optarg);
				exit(2);
			}
			break;
		case 'a':
			opt.addr = optarg;
			break;
		case 'e':
			opt.port[L_ECHO] = parse_port(optarg);
			break;
		case 'k':
			opt.port[L_SINK] = parse_port(optarg);
			break;
		case 'c':
			opt.cpu = atoi(optarg);
			break;
		case 's':
			opt.spin = true;
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
		fprintf(stderr, "tcp-linux: unexpected argument '%s'\n",
			argv[optind]);
		usage(stderr);
		exit(2);
	}
}

int main(int argc, char **argv)
{
	int lfd[NLISTEN] = { -1, -1 }, sigfd, rc = 1;

	parse_args(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	if (opt.cpu >= 0) {
		int e = bench_pin_self(opt.cpu, NULL);

		if (e != 0) {
			fprintf(stderr, "tcp-linux: cannot pin to cpu %d: %s\n",
				opt.cpu, strerror(-e));
			return 1;
		}
	}
	sigfd = open_signalfd();
	if (sigfd < 0)
		return 1;
	for (int i = 0; i < NLISTEN; i++) {
		lfd[i] = open_listener(i, opt.mode == MODE_EPOLL);
		if (lfd[i] < 0)
			goto out;
	}
	printf("ready echo %d sink %d %s\n", opt.port[L_ECHO],
	       opt.port[L_SINK], opt.mode == MODE_EPOLL ? "epoll" : "uring");
	fflush(stdout);
	rc = (opt.mode == MODE_EPOLL ? serve_epoll(lfd, sigfd)
				     : serve_uring(lfd, sigfd)) == 0
		     ? 0
		     : 1;
	printf("echoed %" PRIu64 " sunk %" PRIu64 " reads %" PRIu64
	       " conns %" PRIu64 " errors %" PRIu64 " waits %" PRIu64
	       " path \"%s\"\n",
	       st.echoed, st.sunk, st.reads, st.conns, st.errors, st.waits,
	       st.how ? st.how : "none");
out:
	for (int i = 0; i < NLISTEN; i++)
		if (lfd[i] >= 0)
			close(lfd[i]);
	close(sigfd);
	return rc;
}
