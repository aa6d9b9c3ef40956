/* SPDX-License-Identifier: BSD-3-Clause */
/* ebbrt-kv-linux: the ebb-kv store and protocol engine behind Linux
 * sockets (one epoll thread per core on SO_REUSEPORT listeners), an oracle
 * to check the protocol against Debian's memcached and its clients. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proto.h"
#include "store.h"

#define READ_CHUNK 16384
#define MAX_EVENTS 64

struct lconn {
	int fd;
	struct kv_conn *kc;
	uint8_t *held; /* input the engine did not take yet (back-pressure) */
	size_t held_len;
	bool closing;
	uint32_t events;
};

static struct kv_store *store;
static struct kv_proto_stats pstats;
static struct sockaddr_in listen_addr;
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

/* Writes what the engine has; false on a socket error. */
static bool flush_out(struct lconn *lc)
{
	size_t len;
	const uint8_t *p;

	while ((p = kv_conn_output(lc->kc, &len))) {
		ssize_t n = send(lc->fd, p, len, MSG_NOSIGNAL);

		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ||
			       errno == EINTR;
		kv_conn_output_consume(lc->kc, (size_t)n);
	}
	return true;
}

static bool feed(struct lconn *lc, const uint8_t *p, size_t n)
{
	size_t used;

	if (kv_conn_input(lc->kc, p, n, &used) == KV_CONN_CLOSE)
		lc->closing = true;
	if (used < n) {
		uint8_t *h = realloc(lc->held, lc->held_len + n - used);

		if (!h)
			return false;
		memcpy(h + lc->held_len, p + used, n - used);
		lc->held = h;
		lc->held_len += n - used;
	}
	return true;
}

/* Serves one ready connection; false when it is to be closed. */
static bool serve(struct lconn *lc)
{
	static __thread uint8_t buf[READ_CHUNK];

	for (;;) {
		size_t pending;

		if (lc->held_len && !lc->closing) {
			uint8_t *h = lc->held;
			size_t n = lc->held_len;

			lc->held = NULL;
			lc->held_len = 0;
			if (!feed(lc, h, n)) {
				free(h);
				return false;
			}
			free(h);
		}
		if (!flush_out(lc))
			return false;
		kv_conn_output(lc->kc, &pending);
		if (lc->closing)
			return pending != 0; /* close once sent */
		if (pending)
			return true; /* wait for EPOLLOUT */
		if (lc->held_len)
			continue;
		ssize_t n = recv(lc->fd, buf, sizeof(buf), 0);
		if (n == 0)
			return false;
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ||
			       errno == EINTR;
		if (!feed(lc, buf, (size_t)n))
			return false;
	}
}

static void lconn_close(int ep, struct lconn *lc)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, lc->fd, NULL);
	close(lc->fd);
	kv_conn_destroy(lc->kc);
	free(lc->held);
	free(lc);
}

static void *worker(void *arg)
{
	struct epoll_event evs[MAX_EVENTS], ev = { .events = EPOLLIN };
	int one = 1, ls, ep;

	(void)arg;
	ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (ls < 0 ||
	    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    setsockopt(ls, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
	    bind(ls, (struct sockaddr *)&listen_addr, sizeof(listen_addr)) ||
	    listen(ls, 1024)) {
		perror("ebbrt-kv-linux: listen");
		exit(1);
	}
	ep = epoll_create1(0);
	ev.data.ptr = NULL;
	epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
	while (!stop) {
		int n = epoll_wait(ep, evs, MAX_EVENTS, 200);

		for (int i = 0; i < n; i++) {
			struct lconn *lc = evs[i].data.ptr;

			if (!lc) {
				int fd;

				while ((fd = accept4(ls, NULL, NULL,
						     SOCK_NONBLOCK)) >= 0) {
					lc = calloc(1, sizeof(*lc));
					if (!lc) {
						close(fd);
						continue;
					}
					setsockopt(fd, IPPROTO_TCP, TCP_NODELAY,
						   &one, sizeof(one));
					lc->fd = fd;
					lc->kc = kv_conn_create(store, &pstats);
					if (!lc->kc) {
						close(fd);
						free(lc);
						continue;
					}
					lc->events = EPOLLIN;
					ev.events = EPOLLIN;
					ev.data.ptr = lc;
					epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
				}
				continue;
			}
			if (!serve(lc)) {
				lconn_close(ep, lc);
				continue;
			}
			size_t pending;
			uint32_t want;

			kv_conn_output(lc->kc, &pending);
			want = pending ? EPOLLOUT : EPOLLIN;
			if (want != lc->events) {
				lc->events = want;
				ev.events = want;
				ev.data.ptr = lc;
				epoll_ctl(ep, EPOLL_CTL_MOD, lc->fd, &ev);
			}
		}
	}
	close(ep);
	close(ls);
	return NULL;
}

static size_t parse_size(const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);

	if (*end == 'k' || *end == 'K')
		v <<= 10;
	else if (*end == 'm' || *end == 'M')
		v <<= 20;
	return (size_t)v;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: ebbrt-kv-linux [-p port] [-l addr] [-t threads] "
		"[-m MiB] [-I item_size] [-s stripes]\n");
}

int main(int argc, char **argv)
{
	struct kv_store_config cfg = { 0 };
	unsigned threads = (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
	const char *addr = "127.0.0.1";
	int port = 11211, opt;
	pthread_t *tids;

	while ((opt = getopt(argc, argv, "p:l:t:m:I:s:vU:h")) != -1) {
		switch (opt) {
		case 'p': port = atoi(optarg); break;
		case 'l': addr = optarg; break;
		case 't': threads = (unsigned)atoi(optarg); break;
		case 'm': cfg.mem_limit = (size_t)atoll(optarg) << 20; break;
		case 'I': cfg.item_size_max = parse_size(optarg); break;
		case 's': cfg.stripes = (unsigned)atoi(optarg); break;
		case 'v': case 'U': break; /* memcached's, accepted */
		default: usage(); return 2;
		}
	}
	if (!threads)
		threads = 1;
	listen_addr.sin_family = AF_INET;
	listen_addr.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, addr, &listen_addr.sin_addr) != 1) {
		fprintf(stderr, "ebbrt-kv-linux: bad address %s\n", addr);
		return 2;
	}
	store = kv_store_create(&cfg);
	if (!store) {
		perror("ebbrt-kv-linux: store");
		return 1;
	}
	pstats.threads = threads;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	tids = calloc(threads, sizeof(*tids));
	for (unsigned i = 0; i < threads; i++)
		pthread_create(&tids[i], NULL, worker, NULL);
	for (unsigned i = 0; i < threads; i++)
		pthread_join(tids[i], NULL);
	free(tids);
	kv_store_destroy(store);
	return 0;
}
