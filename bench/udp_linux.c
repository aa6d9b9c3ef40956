/* SPDX-License-Identifier: BSD-3-Clause */
/* A Linux UDP echo server on one pinned cpu, written twice the way a
 * Linux engineer would tune it: epoll with recvmmsg/sendmmsg batches, and
 * io_uring with a multishot recvmsg into a provided-buffer ring. The
 * baseline of ebbrt-bench-udp. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <liburing.h>

#include "common.h"

#define BATCH 32		/* datagrams per recvmmsg/sendmmsg */
#define BUF_SIZE 2048		/* bytes per datagram buffer */
#define SOCK_BUF (4 << 20)	/* SO_RCVBUF and SO_SNDBUF */

/* io_uring: provided buffers for the multishot recvmsg, and receives in
 * flight when multishot is not available. */
#define URING_ENTRIES 1024
#define URING_BUFS 1024		/* power of two */
#define URING_BGID 7
#define URING_SINGLE_RECVS 128

static struct {
	enum { MODE_EPOLL, MODE_URING } mode;
	const char *addr;
	int port;
	int cpu;
	int busy_poll_us;
	bool spin;
	bool no_multishot;
} opt = { .mode = MODE_EPOLL, .addr = "127.0.0.1", .port = 9000,
	  .cpu = -1 };

static struct {
	uint64_t served;	/* datagrams echoed */
	uint64_t send_drops;	/* echoes the socket refused */
	uint64_t truncated;	/* datagrams larger than a buffer */
	uint64_t waits;		/* times the server blocked */
	const char *how;	/* the io path actually used */
} st;

/* ------------------------------------------------------------------ */

static int pin(int cpu)
{
	int rc;

	if (cpu < 0)
		return 0;
	rc = bench_pin_self(cpu, NULL);
	if (rc != 0) {
		fprintf(stderr, "udp-linux: cannot pin to cpu %d: %s\n", cpu,
			strerror(-rc));
		return -1;
	}
	return 0;
}

/* SO_*BUFFORCE as root goes past net.core.{r,w}mem_max. */
static void set_buf(int fd, int force, int plain, int bytes)
{
	if (setsockopt(fd, SOL_SOCKET, force, &bytes, sizeof(bytes)) != 0)
		setsockopt(fd, SOL_SOCKET, plain, &bytes, sizeof(bytes));
}

static int open_socket(bool nonblock)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons((uint16_t)opt.port) };
	int fd, one = 1;

	if (inet_pton(AF_INET, opt.addr, &sa.sin_addr) != 1) {
		fprintf(stderr, "udp-linux: bad address '%s'\n", opt.addr);
		return -1;
	}
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC |
			     (nonblock ? SOCK_NONBLOCK : 0), 0);
	if (fd < 0) {
		fprintf(stderr, "udp-linux: socket: %s\n", strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	set_buf(fd, SO_RCVBUFFORCE, SO_RCVBUF, SOCK_BUF);
	set_buf(fd, SO_SNDBUFFORCE, SO_SNDBUF, SOCK_BUF);
	if (opt.busy_poll_us > 0 &&
	    setsockopt(fd, SOL_SOCKET, SO_BUSY_POLL, &opt.busy_poll_us,
		       sizeof(opt.busy_poll_us)) != 0)
		fprintf(stderr, "udp-linux: SO_BUSY_POLL: %s\n",
			strerror(errno));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		fprintf(stderr, "udp-linux: bind %s:%d: %s\n", opt.addr,
			opt.port, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* SIGTERM and SIGINT arrive on a signalfd that the loop waits on with
 * the socket, so a signal never races a blocking wait. */
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
		fprintf(stderr, "udp-linux: signalfd: %s\n", strerror(errno));
	return fd;
}

/* ------------------------------------------------------------------ */
/* epoll + recvmmsg/sendmmsg */

static int serve_epoll(int sfd, int sigfd)
{
	static char bufs[BATCH][BUF_SIZE];
	static struct sockaddr_in names[BATCH];
	static struct iovec iov[BATCH];
	static struct mmsghdr msgs[BATCH];
	struct epoll_event ev[2];
	bool stop = false;
	int ep, rc = -1;

	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0) {
		fprintf(stderr, "udp-linux: epoll_create1: %s\n",
			strerror(errno));
		return -1;
	}
	ev[0] = (struct epoll_event){ .events = EPOLLIN, .data.fd = sfd };
	ev[1] = (struct epoll_event){ .events = EPOLLIN, .data.fd = sigfd };
	if (epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev[0]) != 0 ||
	    epoll_ctl(ep, EPOLL_CTL_ADD, sigfd, &ev[1]) != 0) {
		fprintf(stderr, "udp-linux: epoll_ctl: %s\n", strerror(errno));
		goto out;
	}
	st.how = "epoll + recvmmsg/sendmmsg";
	while (!stop) {
		int n = epoll_wait(ep, ev, 2, opt.spin ? 0 : -1);

		if (n < 0 && errno != EINTR) {
			fprintf(stderr, "udp-linux: epoll_wait: %s\n",
				strerror(errno));
			goto out;
		}
		if (!opt.spin)
			st.waits++;
		for (int i = 0; i < n; i++) {
			if (ev[i].data.fd == sigfd) {
				stop = true;
				continue;
			}
			/* Drain the socket: level-triggered, but a batch that
			 * comes back full says more is waiting. */
			for (;;) {
				int got, sent = 0;

				for (int k = 0; k < BATCH; k++) {
					iov[k] = (struct iovec){ bufs[k],
								 BUF_SIZE };
					msgs[k].msg_hdr = (struct msghdr){
						.msg_name = &names[k],
						.msg_namelen = sizeof(names[k]),
						.msg_iov = &iov[k],
						.msg_iovlen = 1,
					};
				}
				got = recvmmsg(sfd, msgs, BATCH, MSG_DONTWAIT,
					       NULL);
				if (got <= 0)
					break;
				for (int k = 0; k < got; k++) {
					if (msgs[k].msg_hdr.msg_flags &
					    MSG_TRUNC)
						st.truncated++;
					iov[k].iov_len = msgs[k].msg_len;
				}
				while (sent < got) {
					int k = sendmmsg(sfd, msgs + sent,
							 (unsigned)(got - sent),
							 MSG_DONTWAIT);

					if (k <= 0) {
						/* Socket full: UDP drops. */
						st.send_drops +=
							(uint64_t)(got - sent);
						break;
					}
					sent += k;
				}
				st.served += (uint64_t)sent;
				if (got < BATCH)
					break;
			}
		}
	}
	rc = 0;
out:
	close(ep);
	return rc;
}

/* ------------------------------------------------------------------ */
/* io_uring */

enum { UD_RECV = 1, UD_SEND = 2, UD_SIGNAL = 3 };
#define UD(kind, idx) (((uint64_t)(kind) << 32) | (uint32_t)(idx))
#define UD_KIND(ud) ((unsigned)((ud) >> 32))
#define UD_IDX(ud) ((unsigned)(ud))

struct uring_srv {
	struct io_uring ring;
	int sfd, sigfd;
	bool multishot;
	/* Multishot: the provided-buffer ring and its buffers. */
	struct io_uring_buf_ring *br;
	size_t br_size;
	char *bufs;
	struct msghdr rmsg;	/* the shape of every multishot receive */
	/* Per buffer: the reply's message, and for single receives the
	 * receive's. */
	struct msghdr *smsg;
	struct iovec *siov;
	struct sockaddr_in *names;
	unsigned nbufs;
	bool stop;
};

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

static void arm_multishot(struct uring_srv *u)
{
	struct io_uring_sqe *sqe = get_sqe(u);

	io_uring_prep_recvmsg_multishot(sqe, u->sfd, &u->rmsg, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = URING_BGID;
	io_uring_sqe_set_data64(sqe, UD(UD_RECV, 0));
}

static void arm_single(struct uring_srv *u, unsigned i)
{
	struct io_uring_sqe *sqe = get_sqe(u);

	u->siov[i] = (struct iovec){ u->bufs + (size_t)i * BUF_SIZE, BUF_SIZE };
	u->smsg[i] = (struct msghdr){ .msg_name = &u->names[i],
				      .msg_namelen = sizeof(u->names[i]),
				      .msg_iov = &u->siov[i],
				      .msg_iovlen = 1 };
	io_uring_prep_recvmsg(sqe, u->sfd, &u->smsg[i], 0);
	io_uring_sqe_set_data64(sqe, UD(UD_RECV, i));
}

static void arm_signal(struct uring_srv *u)
{
	struct io_uring_sqe *sqe = get_sqe(u);

	io_uring_prep_poll_add(sqe, u->sigfd, POLLIN);
	io_uring_sqe_set_data64(sqe, UD(UD_SIGNAL, 0));
}

static void give_back(struct uring_srv *u, unsigned bid)
{
	io_uring_buf_ring_add(u->br, u->bufs + (size_t)bid * BUF_SIZE,
			      BUF_SIZE, (unsigned short)bid,
			      io_uring_buf_ring_mask(URING_BUFS), 0);
	io_uring_buf_ring_advance(u->br, 1);
}

/* Echo buffer @bid's payload to @name with a sendmsg SQE. */
static void queue_reply(struct uring_srv *u, unsigned bid, void *name,
			socklen_t namelen, void *payload, size_t len)
{
	struct io_uring_sqe *sqe = get_sqe(u);

	u->siov[bid] = (struct iovec){ payload, len };
	u->smsg[bid] = (struct msghdr){ .msg_name = name,
					.msg_namelen = namelen,
					.msg_iov = &u->siov[bid],
					.msg_iovlen = 1 };
	io_uring_prep_sendmsg(sqe, u->sfd, &u->smsg[bid], 0);
	io_uring_sqe_set_data64(sqe, UD(UD_SEND, bid));
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
	int rc = -EINVAL;

	for (unsigned i = 0; i < sizeof(flag_sets) / sizeof(flag_sets[0]);
	     i++) {
		struct io_uring_params p = { .flags = flag_sets[i] };

		rc = io_uring_queue_init_params(URING_ENTRIES, &u->ring, &p);
		if (rc == 0)
			break;
	}
	if (rc != 0) {
		fprintf(stderr, "udp-linux: io_uring_queue_init: %s\n",
			strerror(-rc));
		return -1;
	}
	io_uring_register_ring_fd(&u->ring);

	u->nbufs = URING_BUFS;
	u->bufs = aligned_alloc(4096, (size_t)URING_BUFS * BUF_SIZE);
	u->smsg = calloc(URING_BUFS, sizeof(*u->smsg));
	u->siov = calloc(URING_BUFS, sizeof(*u->siov));
	u->names = calloc(URING_BUFS, sizeof(*u->names));
	if (u->bufs == NULL || u->smsg == NULL || u->siov == NULL ||
	    u->names == NULL) {
		fprintf(stderr, "udp-linux: out of memory\n");
		return -1;
	}

	u->multishot = false;
	if (!opt.no_multishot) {
		struct io_uring_buf_reg reg = { .ring_entries = URING_BUFS,
						.bgid = URING_BGID };

		u->br_size = URING_BUFS * sizeof(struct io_uring_buf);
		u->br = mmap(NULL, u->br_size, PROT_READ | PROT_WRITE,
			     MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
		if (u->br == MAP_FAILED) {
			u->br = NULL;
		} else {
			reg.ring_addr = (uint64_t)(uintptr_t)u->br;
			rc = io_uring_register_buf_ring(&u->ring, &reg, 0);
			if (rc == 0) {
				io_uring_buf_ring_init(u->br);
				for (unsigned i = 0; i < URING_BUFS; i++)
					give_back(u, i);
				u->multishot = true;
			} else {
				fprintf(stderr, "udp-linux: no provided-buffer "
						"ring (%s): single receives\n",
					strerror(-rc));
				munmap(u->br, u->br_size);
				u->br = NULL;
			}
		}
	}
	/* Room for the source address; no control data. */
	u->rmsg = (struct msghdr){ .msg_namelen = sizeof(struct sockaddr_in) };
	return 0;
}

static void uring_teardown(struct uring_srv *u)
{
	io_uring_queue_exit(&u->ring);
	if (u->br)
		munmap(u->br, u->br_size);
	free(u->bufs);
	free(u->smsg);
	free(u->siov);
	free(u->names);
}

/* One completion. Returns -1 on a fatal error. */
static int uring_complete(struct uring_srv *u, struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	unsigned idx = UD_IDX(ud);

	switch (UD_KIND(ud)) {
	case UD_SIGNAL:
		u->stop = true;
		return 0;
	case UD_SEND:
		if (cqe->res < 0)
			st.send_drops++;
		else
			st.served++;
		if (u->multishot)
			give_back(u, idx);
		else if (!u->stop)
			arm_single(u, idx);
		return 0;
	case UD_RECV:
		break;
	default:
		return 0;
	}

	if (!u->multishot) {
		if (cqe->res < 0) {
			if (cqe->res != -EINTR && cqe->res != -EAGAIN &&
			    cqe->res != -ECANCELED) {
				fprintf(stderr, "udp-linux: recvmsg: %s\n",
					strerror(-cqe->res));
				return -1;
			}
			if (!u->stop)
				arm_single(u, idx);
			return 0;
		}
		if (u->smsg[idx].msg_flags & MSG_TRUNC) {
			st.truncated++;
			arm_single(u, idx);
			return 0;
		}
		queue_reply(u, idx, &u->names[idx], u->smsg[idx].msg_namelen,
			    u->bufs + (size_t)idx * BUF_SIZE, (size_t)cqe->res);
		return 0;
	}

	/* Multishot: the kernel stops it (no F_MORE) on an error or when it
	 * ran out of buffers; re-arm once buffers came back. */
	if (!(cqe->flags & IORING_CQE_F_MORE) && !u->stop) {
		if (cqe->res == -EINVAL && st.served == 0) {
			fprintf(stderr, "udp-linux: no multishot recvmsg: "
					"single receives\n");
			return -2;
		}
		arm_multishot(u);
	}
	if (cqe->res < 0) {
		if (cqe->res != -ENOBUFS && cqe->res != -ECANCELED &&
		    cqe->res != -EINTR) {
			fprintf(stderr, "udp-linux: multishot recvmsg: %s\n",
				strerror(-cqe->res));
			return -1;
		}
		return 0;
	}
	if (cqe->flags & IORING_CQE_F_BUFFER) {
		unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
		char *buf = u->bufs + (size_t)bid * BUF_SIZE;
		struct io_uring_recvmsg_out *o =
			io_uring_recvmsg_validate(buf, cqe->res, &u->rmsg);

		if (o == NULL || (o->flags & MSG_TRUNC)) {
			st.truncated++;
			give_back(u, bid);
			return 0;
		}
		queue_reply(u, bid, io_uring_recvmsg_name(o), o->namelen,
			    io_uring_recvmsg_payload(o, &u->rmsg),
			    io_uring_recvmsg_payload_length(o, cqe->res,
							    &u->rmsg));
	}
	return 0;
}

static int serve_uring(int sfd, int sigfd)
{
	struct uring_srv u = { .sfd = sfd, .sigfd = sigfd };
	int rc = -1;

	if (uring_setup(&u) != 0)
		goto out;
restart:
	if (u.multishot) {
		arm_multishot(&u);
		st.how = "io_uring multishot recvmsg + provided buffers, "
			 "batched sendmsg";
	} else {
		for (unsigned i = 0; i < URING_SINGLE_RECVS; i++)
			arm_single(&u, i);
		st.how = "io_uring ring of recvmsg SQEs, batched sendmsg";
	}
	arm_signal(&u);
	while (!u.stop) {
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		int r;

		/* One syscall per round: submit the replies queued by the
		 * last round and wait for the next completions. */
		if (opt.spin || io_uring_cq_ready(&u.ring) > 0) {
			/* Sends that completed inline need no wait. */
			r = io_uring_submit_and_get_events(&u.ring);
		} else {
			r = io_uring_submit_and_wait(&u.ring, 1);
			st.waits++;
		}
		if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
			fprintf(stderr, "udp-linux: io_uring_enter: %s\n",
				strerror(-r));
			goto out;
		}
		io_uring_for_each_cqe(&u.ring, head, cqe) {
			r = uring_complete(&u, cqe);
			seen++;
			if (r == -2) {
				/* Multishot refused: the fallback. */
				io_uring_cq_advance(&u.ring, seen);
				u.multishot = false;
				goto restart;
			}
			if (r < 0)
				goto out;
		}
		io_uring_cq_advance(&u.ring, seen);
	}
	rc = 0;
out:
	uring_teardown(&u);
	return rc;
}

/* ------------------------------------------------------------------ */

static void usage(FILE *to)
{
	fprintf(to,
		"usage: ebbrt-udp-linux [--mode epoll|uring] [--addr IP] "
		"[--port P] [--cpu N]\n"
		"                       [--spin] [--busy-poll US] "
		"[--no-multishot]\n"
		"UDP echo server on one thread, until SIGTERM or SIGINT; then "
		"prints how many\ndatagrams it echoed.\n"
		"  --mode M         epoll: epoll + recvmmsg/sendmmsg batches of "
		"%d (default);\n"
		"                   uring: io_uring multishot recvmsg, batched "
		"sendmsg\n"
		"  --addr IP        address to bind (default 127.0.0.1)\n"
		"  --port P         UDP port (default 9000)\n"
		"  --cpu N          pin to cpu N (default: not pinned)\n"
		"  --spin           never block: poll the socket or ring in a "
		"loop\n"
		"  --busy-poll US   SO_BUSY_POLL on the socket (default off)\n"
		"  --no-multishot   io_uring: a ring of single recvmsg SQEs\n"
		"Prints 'ready <how>' once it listens, and on exit "
		"'served N drops N waits N'.\n",
		BATCH);
}

static void parse_args(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "mode", required_argument, NULL, 'm' },
		{ "addr", required_argument, NULL, 'a' },
		{ "port", required_argument, NULL, 'p' },
		{ "cpu", required_argument, NULL, 'c' },
		{ "spin", no_argument, NULL, 's' },
		{ "busy-poll", required_argument, NULL, 'b' },
		{ "no-multishot", no_argument, NULL, 'n' },
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
				fprintf(stderr, "udp-linux: unknown mode '%s'\n",
					optarg);
				exit(2);
			}
			break;
		case 'a':
			opt.addr = optarg;
			break;
		case 'p':
			opt.port = atoi(optarg);
			if (opt.port <= 0 || opt.port > 65535) {
				fprintf(stderr, "udp-linux: bad port '%s'\n",
					optarg);
				exit(2);
			}
			break;
		case 'c':
			opt.cpu = atoi(optarg);
			break;
		case 's':
			opt.spin = true;
			break;
		case 'b':
			opt.busy_poll_us = atoi(optarg);
			break;
		case 'n':
			opt.no_multishot = true;
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
		fprintf(stderr, "udp-linux: unexpected argument '%s'\n",
			argv[optind]);
		usage(stderr);
		exit(2);
	}
}

int main(int argc, char **argv)
{
	int sfd, sigfd, rc;

	parse_args(argc, argv);
	if (pin(opt.cpu) != 0)
		return 1;
	sigfd = open_signalfd();
	if (sigfd < 0)
		return 1;
	sfd = open_socket(opt.mode == MODE_EPOLL);
	if (sfd < 0)
		return 1;
	printf("ready %s:%d %s\n", opt.addr, opt.port,
	       opt.mode == MODE_EPOLL ? "epoll" : "uring");
	fflush(stdout);
	rc = opt.mode == MODE_EPOLL ? serve_epoll(sfd, sigfd)
				    : serve_uring(sfd, sigfd);
	close(sfd);
	close(sigfd);
	printf("served %" PRIu64 " drops %" PRIu64 " truncated %" PRIu64
	       " waits %" PRIu64 " path \"%s\"\n",
	       st.served, st.send_drops, st.truncated, st.waits,
	       st.how ? st.how : "none");
	return rc == 0 ? 0 : 1;
}
