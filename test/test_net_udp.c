/* SPDX-License-Identifier: BSD-3-Clause */
/* UDP, the ARP cache and ICMP port unreachable of the network stack on a
 * net_tap port with Linux as the peer: echo with a Linux socket, the node
 * sending first (ARP resolution, pending queue), an address nobody
 * answers, closed ports and their rate limit, malformed datagrams and
 * floods of them, and a tshark check of the exchange. Needs root,
 * /dev/net/tun, ip, ping; tshark for its test (apt-get install tshark). */

#include <rte_mbuf.h>

#include "test_net_peer.h"

#define LINUX_IP_H 0x0a630001u	/* 10.99.0.1 */
#define OTHER_IP_H 0x0a630003u	/* 10.99.0.3: nobody */
#define ECHO_PORT 7777
#define LINUX_PORT 9999

/* --- the node's side --- */

static struct ebb_udp_sock *echo_sock;
static atomic_int echo_fail;

/* Sends every datagram back where it came from, in the same mbuf. */
static void echo_rx(void *arg, struct ebb_udp_sock *s, struct rte_mbuf *m,
		    uint32_t src_ip, uint16_t src_port)
{
	(void)arg;
	if (ebb_udp_send(s, src_ip, src_port, m) != 0) {
		atomic_fetch_add(&echo_fail, 1);
		rte_pktmbuf_free(m);
	}
}

static void bind_echo(void)
{
	atomic_store(&echo_fail, 0);
	echo_sock = ebb_udp_bind(nif, ECHO_PORT, echo_rx, NULL);
	cr_assert_not_null(echo_sock, "bind %d: %s", ECHO_PORT,
			   strerror(errno));
	cr_assert_eq(ebb_udp_port(echo_sock), ECHO_PORT);
}

/* Sends from core 1 (the owner of queue 0). */
struct send_req {
	struct ebb_udp_sock *s;
	uint32_t ip;
	uint16_t port;
	unsigned count;
	size_t len;
	int rc[32];
};

static void send_on_core(void *arg)
{
	struct send_req *r = arg;
	char buf[EBB_UDP_MAX_PAYLOAD + 1];

	for (unsigned i = 0; i < r->count; i++) {
		memset(buf, 'a' + (int)(i % 26), sizeof(buf));
		r->rc[i] = ebb_udp_send_buf(r->s, r->ip, r->port, buf, r->len);
	}
}

static void node_send(struct send_req *r)
{
	cr_assert_leq(r->count, 32);
	cr_assert_eq(ebbt_call(1, send_on_core, r), 0);
}

/* --- Linux's side --- */

static int udp_socket(uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(port) };
	struct timeval tv = { .tv_sec = 2 };
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	cr_assert_geq(fd, 0);
	a.sin_addr.s_addr = inet_addr(LINUX_IP);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0,
		     "bind " LINUX_IP ":%u: %s", port, strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

/* recv() that sleeps through the node's signals (EINTR) until the
 * socket's timeout. */
static ssize_t urecv(int fd, void *buf, size_t len)
{
	uint64_t end = ebbt_now_ns() + 2000000000ull;
	ssize_t n;

	do
		n = recv(fd, buf, len, 0);
	while (n < 0 && errno == EINTR && ebbt_now_ns() < end);
	return n;
}

static struct sockaddr_in node_addr(uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(port) };

	a.sin_addr.s_addr = inet_addr(NODE_IP);
	return a;
}

static unsigned in_use(void)
{
	return rte_mempool_in_use_count(ebb_nic_pool(nic));
}

/* A UDP datagram from LINUX_IP:@sport to the node's @dport with @len
 * bytes of payload, checksum right; returns the frame length. */
static size_t build_udp(uint8_t *f, uint16_t sport, uint16_t dport,
			size_t len)
{
	struct t_eth *eth = (struct t_eth *)f;
	struct t_ip *ip = (struct t_ip *)(eth + 1);
	struct t_udp {
		uint16_t sport, dport, len, sum;
	} __attribute__((packed)) *udp = (struct t_udp *)(ip + 1);
	uint8_t *data = (uint8_t *)(udp + 1);
	uint8_t ph[12 + 8 + 1500];
	size_t ulen = sizeof(*udp) + len;

	memcpy(eth->dst, node_mac, 6);
	memcpy(eth->src, linux_mac, 6);
	eth->type = htons(ETH_P_IP);
	memset(ip, 0, sizeof(*ip));
	ip->vhl = 0x45;
	ip->len = htons((uint16_t)(sizeof(*ip) + ulen));
	ip->ttl = 64;
	ip->proto = IPPROTO_UDP;
	ip->src = inet_addr(LINUX_IP);
	ip->dst = inet_addr(NODE_IP);
	ip_fix_sum(f);
	udp->sport = htons(sport);
	udp->dport = htons(dport);
	udp->len = htons((uint16_t)ulen);
	udp->sum = 0;
	for (size_t i = 0; i < len; i++)
		data[i] = (uint8_t)(i * 7 + 3);
	memcpy(ph, &ip->src, 4);
	memcpy(ph + 4, &ip->dst, 4);
	ph[8] = 0;
	ph[9] = IPPROTO_UDP;
	memcpy(ph + 10, &udp->len, 2);
	memcpy(ph + 12, udp, ulen);
	udp->sum = htons(csum(ph, 12 + ulen));
	if (udp->sum == 0)
		udp->sum = 0xffff;
	return sizeof(*eth) + sizeof(*ip) + ulen;
}

static uint16_t *udp_field(uint8_t *f, unsigned i)
{
	return (uint16_t *)(f + sizeof(struct t_eth) + 20 + 2 * i);
}

/* --- tests --- */

Test(net_udp, echo_round_trip_with_a_linux_socket, .timeout = 90)
{
	static const size_t sizes[] = { 0, 1, 100, 999, EBB_UDP_MAX_PAYLOAD };
	struct sockaddr_in to = node_addr(ECHO_PORT), from;
	struct ebb_net_stats s;
	char out[EBB_UDP_MAX_PAYLOAD], in[2048];
	unsigned base;
	int fd;

	net_up();
	bind_echo();
	net_attach();
	base = in_use();
	fd = udp_socket(LINUX_PORT);
	for (unsigned r = 0; r < 20; r++) {
		size_t len = sizes[r % 5];
		socklen_t fl = sizeof(from);
		ssize_t n;

		for (size_t i = 0; i < len; i++)
			out[i] = (char)(i ^ r);
		cr_assert_eq(sendto(fd, out, len, 0, (struct sockaddr *)&to,
				    sizeof(to)), (ssize_t)len,
			     "sendto: %s", strerror(errno));
		do
			n = recvfrom(fd, in, sizeof(in), 0,
				     (struct sockaddr *)&from, &fl);
		while (n < 0 && errno == EINTR);
		s = stats();
		if (n < 0)
			print_stats("no echo", &s);
		cr_assert_eq(n, (ssize_t)len, "round %u: echo of %zu bytes: %zd "
			     "(%s)", r, len, n, n < 0 ? strerror(errno) : "");
		cr_assert_eq(memcmp(in, out, len), 0, "round %u: payload", r);
		cr_assert_eq(from.sin_addr.s_addr, inet_addr(NODE_IP));
		cr_assert_eq(ntohs(from.sin_port), ECHO_PORT);
	}
	close(fd);
	cr_assert(ebbt_wait_until((s = stats(), s.udp_tx == 20), 1000),
		  "udp_tx %lu", (unsigned long)s.udp_tx);
	cr_assert_eq(s.udp_rx, 20, "udp_rx %lu", (unsigned long)s.udp_rx);
	cr_assert_eq(atomic_load(&echo_fail), 0);
	cr_assert_eq(s.udp_bad_checksum + s.udp_bad_len + s.udp_no_port, 0);
	/* Linux asked for our MAC; we learnt Linux's from its request, so
	 * the echoes needed no request of ours. */
	cr_assert_eq(s.arp_requests_sent, 0, "%lu ARP requests sent",
		     (unsigned long)s.arp_requests_sent);
	cr_assert(ebbt_wait_until(in_use() <= base, 2000),
		  "mbufs in use: %u before, %u after", base, in_use());

	/* Binding rules. */
	{
		struct ebb_udp_sock *e1, *e2;

		cr_assert_null(ebb_udp_bind(nif, ECHO_PORT, echo_rx, NULL));
		cr_assert_eq(errno, EADDRINUSE);
		cr_assert_null(ebb_udp_bind(NULL, 1, echo_rx, NULL));
		cr_assert_eq(errno, EINVAL);
		cr_assert_null(ebb_udp_bind(nif, 1, NULL, NULL));
		cr_assert_eq(errno, EINVAL);
		e1 = ebb_udp_bind(nif, 0, echo_rx, NULL);
		e2 = ebb_udp_bind(nif, 0, echo_rx, NULL);
		cr_assert(e1 != NULL && e2 != NULL, "ephemeral: %s",
			  strerror(errno));
		cr_assert_geq(ebb_udp_port(e1), 49152);
		cr_assert_neq(ebb_udp_port(e1), ebb_udp_port(e2));
		/* Off a core: no queue to send on. */
		cr_assert_eq(ebb_udp_send_buf(e1, LINUX_IP_H, 1, "x", 1),
			     -EPERM);
		ebb_udp_close(e1);
		ebb_udp_close(e2);
		ebb_udp_close(NULL);
	}
	/* Closed: the port is unreachable again. */
	ebb_udp_close(echo_sock);
	fd = udp_socket(LINUX_PORT);
	cr_assert_eq(connect(fd, (struct sockaddr *)&to, sizeof(to)), 0);
	cr_assert_eq(send(fd, "x", 1, 0), 1);
	cr_assert_eq(urecv(fd, in, sizeof(in)), -1);
	cr_assert_eq(errno, ECONNREFUSED, "after close: %s", strerror(errno));
	close(fd);
	net_down();
}

Test(net_udp, node_sends_first_and_resolves_linux, .timeout = 90)
{
	struct send_req r = { .ip = LINUX_IP_H, .port = LINUX_PORT,
			      .count = 5, .len = 33 };
	struct ebb_net_stats a, s;
	char in[2048];
	int fd;

	net_up();
	net_attach();
	fd = udp_socket(LINUX_PORT);
	r.s = ebb_udp_bind(nif, 0, echo_rx, NULL);
	cr_assert_not_null(r.s);
	a = stats();
	cr_assert_eq(a.arp_replies_rcvd, 0);
	/* Five at once: the first starts resolution, all wait for it. */
	node_send(&r);
	for (unsigned i = 0; i < r.count; i++)
		cr_assert_eq(r.rc[i], 0, "send %u: %s", i, strerror(-r.rc[i]));
	for (unsigned i = 0; i < r.count; i++) {
		ssize_t n = urecv(fd, in, sizeof(in));

		s = stats();
		if (n < 0)
			print_stats("missing", &s);
		cr_assert_eq(n, 33, "datagram %u: %zd (%s)", i, n,
			     n < 0 ? strerror(errno) : "");
		/* In the order sent. */
		cr_assert_eq(in[0], 'a' + (int)i, "datagram %u is '%c'", i,
			     in[0]);
	}
	cr_assert(ebbt_wait_until((s = stats(), s.udp_tx == 5), 1000));
	cr_assert_eq(s.arp_requests_sent, 1, "%lu requests for one next hop",
		     (unsigned long)s.arp_requests_sent);
	cr_assert_geq(s.arp_replies_rcvd, 1, "Linux's reply not learnt");
	/* Cached now: no further request. */
	node_send(&r);
	for (unsigned i = 0; i < r.count; i++) {
		cr_assert_eq(r.rc[i], 0);
		cr_assert_eq(urecv(fd, in, sizeof(in)), 33);
	}
	s = stats();
	cr_assert_eq(s.arp_requests_sent, 1);
	/* Too big, bad destinations, no route. */
	r.count = 1;
	r.len = EBB_UDP_MAX_PAYLOAD + 1;
	node_send(&r);
	cr_assert_eq(r.rc[0], -EMSGSIZE);
	r.len = 1;
	r.ip = 0xe0000001u;	/* multicast */
	node_send(&r);
	cr_assert_eq(r.rc[0], -EINVAL);
	r.ip = NODE_IP_H;
	node_send(&r);
	cr_assert_eq(r.rc[0], -EINVAL);
	r.ip = 0x08080808u;	/* off the subnet, no gateway */
	node_send(&r);
	cr_assert_eq(r.rc[0], -ENETUNREACH);
	cr_assert_eq(stats().tx_no_route, 1);
	r.ip = LINUX_IP_H;
	r.port = 0;
	node_send(&r);
	cr_assert_eq(r.rc[0], -EINVAL);
	close(fd);
	net_down();
}

Test(net_udp, unanswered_next_hop_drops_pending_after_retries,
     .timeout = 90)
{
	struct send_req r = { .ip = OTHER_IP_H, .port = 9, .count = 11,
			      .len = 20 };
	struct ebb_net_stats s;
	unsigned base, asks = 0, ok = 0, full = 0;
	uint64_t t0, first = 0, last = 0;
	int fd;

	net_up();
	net_attach();
	base = in_use();
	fd = raw_socket();
	r.s = ebb_udp_bind(nif, 0, echo_rx, NULL);
	cr_assert_not_null(r.s);
	t0 = ebbt_now_ns();
	node_send(&r);
	for (unsigned i = 0; i < r.count; i++) {
		ok += r.rc[i] == 0;
		full += r.rc[i] == -ENOBUFS;
	}
	cr_assert_eq(ok, 8, "%u queued of 11 (8 may wait)", ok);
	cr_assert_eq(full, 3, "%u refused", full);
	cr_assert_gt(in_use(), base + 7, "8 datagrams should be held");
	/* Three requests about 1 s apart, then nothing. */
	while (ebbt_now_ns() < t0 + 4500000000ull) {
		uint8_t f[2048];
		ssize_t n = recv(fd, f, sizeof(f), 0);
		struct t_eth *eth = (struct t_eth *)f;

		if (n < (ssize_t)(sizeof(*eth) + sizeof(struct t_arp)) ||
		    eth->type != htons(ETH_P_ARP) ||
		    memcmp(eth->src, node_mac, 6) != 0 ||
		    arp_of(f)->tpa != inet_addr(OTHER_IP))
			continue;
		cr_assert_eq(ntohs(arp_of(f)->op), 1);
		cr_assert_eq(arp_of(f)->spa, inet_addr(NODE_IP));
		last = ebbt_now_ns();
		if (first == 0)
			first = last;
		asks++;
	}
	close(fd);
	s = stats();
	print_stats("after the timeout", &s);
	cr_assert_eq(asks, 3, "%u ARP requests seen for " OTHER_IP, asks);
	cr_assert(last - first > 1500000000ull && last - first < 2600000000ull,
		  "requests over %lu ms, not about 2000",
		  (unsigned long)((last - first) / 1000000));
	cr_assert_eq(s.arp_requests_sent, 3);
	cr_assert_eq(s.arp_timeouts, 1);
	cr_assert_eq(s.arp_pending_dropped, 8);
	cr_assert_eq(s.arp_pending_full, 3);
	cr_assert_eq(s.udp_tx, 0);
	cr_assert(ebbt_wait_until(in_use() <= base, 1000),
		  "mbufs in use: %u before, %u after", base, in_use());
	net_down();
}

Test(net_udp, closed_port_is_refused_and_rate_limited, .timeout = 90)
{
	struct sockaddr_in to = node_addr(4444);
	struct ebb_net_stats a, b;
	uint64_t t0, t1, sent_icmp, captured = 0;
	unsigned base;
	char in[64];
	int fd, raw;

	net_up();
	net_attach();
	base = in_use();
	fd = udp_socket(LINUX_PORT);
	cr_assert_eq(connect(fd, (struct sockaddr *)&to, sizeof(to)), 0);
	cr_assert_eq(send(fd, "hello", 5, 0), 5);
	cr_assert_eq(urecv(fd, in, sizeof(in)), -1);
	cr_assert_eq(errno, ECONNREFUSED, "recv: %s", strerror(errno));
	close(fd);
	cr_assert(ebbt_wait_until((a = stats(), a.icmp_unreach_sent == 1),
				  1000));

	/* A flood: at most the burst plus the rate over its time. The raw
	 * socket sees the flood too: room for all of it. */
	raw = raw_socket();
	{
		int sz = 16 << 20;

		cr_assert_eq(setsockopt(raw, SOL_SOCKET, SO_RCVBUFFORCE, &sz,
					sizeof(sz)), 0, "SO_RCVBUFFORCE: %s",
			     strerror(errno));
	}
	fd = udp_socket(LINUX_PORT);
	t0 = ebbt_now_ns();
	for (int i = 0; i < 1000; i++)
		sendto(fd, "x", 1, 0, (struct sockaddr *)&to, sizeof(to));
	ebbt_wait_until((b = stats(), b.udp_no_port - a.udp_no_port >= 1000),
			2000);
	t1 = ebbt_now_ns();
	close(fd);
	/* Frames still in the raw socket's queue. */
	for (;;) {
		uint8_t f[2048];
		ssize_t n = recv(raw, f, sizeof(f), MSG_DONTWAIT);
		struct t_ip *ip = ip_of(f);

		if (n < 0)
			break;
		if (n >= (ssize_t)(sizeof(struct t_eth) + 28) &&
		    memcmp(((struct t_eth *)f)->src, node_mac, 6) == 0 &&
		    ip->proto == IPPROTO_ICMP && icmp_of(f)->type == 3 &&
		    icmp_of(f)->code == 3)
			captured++;
	}
	close(raw);
	b = stats();
	print_stats("after the flood", &b);
	sent_icmp = b.icmp_unreach_sent - a.icmp_unreach_sent;
	cr_assert_gt(b.udp_no_port - a.udp_no_port, 500,
		     "only %lu of the flood reached the node",
		     (unsigned long)(b.udp_no_port - a.udp_no_port));
	cr_assert_leq(sent_icmp, 100 + (t1 - t0) / 10000000ull + 1,
		      "%lu port unreachables in %lu ms",
		      (unsigned long)sent_icmp,
		      (unsigned long)((t1 - t0) / 1000000));
	cr_assert_geq(sent_icmp, 90, "%lu sent: the burst is 100",
		      (unsigned long)sent_icmp);
	cr_assert_eq(sent_icmp + b.icmp_unreach_limited - a.icmp_unreach_limited,
		     b.udp_no_port - a.udp_no_port);
	cr_assert_eq(captured, sent_icmp, "Linux saw %lu, the node sent %lu",
		     (unsigned long)captured, (unsigned long)sent_icmp);
	cr_assert(ebbt_wait_until(in_use() <= base, 1000),
		  "mbufs in use: %u before, %u after", base, in_use());
	net_down();
}

/* A malformed datagram and the counter it must land in. */
struct bad_udp {
	const char *what;
	size_t counter;
	size_t (*build)(uint8_t *f);
};

#define STAT(f) offsetof(struct ebb_net_stats, f)
#define CNT(s, off) (*(const uint64_t *)((const char *)(s) + (off)))

static size_t u_bad_sum(uint8_t *f)
{
	size_t n = build_udp(f, LINUX_PORT, ECHO_PORT, 40);

	*udp_field(f, 3) ^= htons(0x0100);
	return n;
}

static size_t u_len_over(uint8_t *f)
{
	/* UDP length 8 past the IP payload. */
	size_t n = build_udp(f, LINUX_PORT, ECHO_PORT, 40);

	*udp_field(f, 2) = htons(48 + 8);
	*udp_field(f, 3) = 0;
	return n;
}

static size_t u_len_under8(uint8_t *f)
{
	size_t n = build_udp(f, LINUX_PORT, ECHO_PORT, 40);

	*udp_field(f, 2) = htons(7);
	*udp_field(f, 3) = 0;
	return n;
}

static size_t u_short_ip(uint8_t *f)
{
	/* 6 bytes of IP payload: not even a UDP header. */
	build_udp(f, LINUX_PORT, ECHO_PORT, 0);
	ip_of(f)->len = htons(26);
	ip_fix_sum(f);
	return sizeof(struct t_eth) + 26;
}

static const struct bad_udp bad_udps[] = {
	{ "bad UDP checksum", STAT(udp_bad_checksum), u_bad_sum },
	{ "UDP length past the IP payload", STAT(udp_bad_len), u_len_over },
	{ "UDP length 7", STAT(udp_bad_len), u_len_under8 },
	{ "6 bytes of UDP", STAT(udp_bad_len), u_short_ip },
};

Test(net_udp, malformed_datagrams_are_counted_and_floods_survived,
     .timeout = 120)
{
	struct sockaddr_in to = node_addr(ECHO_PORT);
	struct ebb_net_stats a, b;
	uint8_t f[2048];
	char in[2048];
	unsigned base;
	size_t n;
	int raw, fd;

	net_up();
	bind_echo();
	net_attach();
	fd = udp_socket(LINUX_PORT);
	/* One echo first: ARP settled both ways. */
	cr_assert_eq(sendto(fd, "ping", 4, 0, (struct sockaddr *)&to,
			    sizeof(to)), 4);
	cr_assert_eq(urecv(fd, in, sizeof(in)), 4);
	base = in_use();
	raw = raw_socket();
	for (size_t k = 0; k < sizeof(bad_udps) / sizeof(bad_udps[0]); k++) {
		const struct bad_udp *bu = &bad_udps[k];
		const unsigned flood = 500;

		a = stats();
		memset(f, 0, sizeof(f));
		n = bu->build(f);
		for (unsigned i = 0; i < flood; i++) {
			cr_assert_eq(send(raw, f, n, 0), (ssize_t)n, "%s: %s",
				     bu->what, strerror(errno));
			/* Paced so the tap's queue never overflows: every
			 * frame must arrive to be counted. */
			if (i % 32 == 31)
				cr_assert(ebbt_wait_until(
					(b = stats(), CNT(&b, bu->counter) -
						CNT(&a, bu->counter) >= i + 1),
					2000), "%s: %lu of %u counted",
					bu->what,
					(unsigned long)(CNT(&b, bu->counter) -
							CNT(&a, bu->counter)),
					i + 1);
		}
		cr_assert(ebbt_wait_until((b = stats(),
			CNT(&b, bu->counter) - CNT(&a, bu->counter) >= flood),
			2000));
		usleep(20000);
		b = stats();
		if (CNT(&b, bu->counter) - CNT(&a, bu->counter) != flood)
			print_stats(bu->what, &b);
		cr_assert_eq(CNT(&b, bu->counter) - CNT(&a, bu->counter), flood,
			     "%s: counted %lu times", bu->what,
			     (unsigned long)(CNT(&b, bu->counter) -
					     CNT(&a, bu->counter)));
		cr_assert_eq(b.udp_rx, a.udp_rx, "%s: delivered", bu->what);
		cr_assert_eq(b.udp_no_port, a.udp_no_port);
		/* Still answering: an echo and a ping. */
		cr_assert_eq(sendto(fd, "alive", 5, 0, (struct sockaddr *)&to,
				    sizeof(to)), 5);
		cr_assert_eq(urecv(fd, in, sizeof(in)), 5,
			     "no echo after the %s flood", bu->what);
		cr_assert(ebbt_wait_until(in_use() <= base, 2000),
			  "%s: mbufs in use %u before, %u after", bu->what,
			  base, in_use());
	}
	/* Checksum 0 (none) is accepted; a UDP length under the IP payload
	 * is too, the rest ignored: the echo carries 10 bytes, not 40. */
	a = stats();
	n = build_udp(f, LINUX_PORT, ECHO_PORT, 40);
	*udp_field(f, 3) = 0;
	cr_assert_eq(send(raw, f, n, 0), (ssize_t)n);
	cr_assert_eq(urecv(fd, in, sizeof(in)), 40, "checksum 0 refused");
	n = build_udp(f, LINUX_PORT, ECHO_PORT, 40);
	*udp_field(f, 2) = htons(8 + 10);
	*udp_field(f, 3) = 0;
	cr_assert_eq(send(raw, f, n, 0), (ssize_t)n);
	cr_assert_eq(urecv(fd, in, sizeof(in)), 10, "short UDP length");
	b = stats();
	cr_assert_eq(b.udp_rx - a.udp_rx, 2);
	close(raw);
	close(fd);
	{
		char out[4096];

		cr_assert_eq(ping(1, out, sizeof(out)), 0,
			     "ping after the floods:\n%s", out);
	}
	net_down();
}

/* --- tshark --- */

/* Write what @raw holds as a pcap file @path (Ethernet); returns the
 * number of frames. dumpcap started from the test process captures
 * nothing here (0 packets, whatever is reset in the child), so the test
 * captures with its own packet socket and tshark reads the file. */
static unsigned write_pcap(int raw, const char *path)
{
	struct {
		uint32_t magic;
		uint16_t major, minor;
		int32_t zone;
		uint32_t sigfigs, snaplen, linktype;
	} gh = { 0xa1b2c3d4u, 2, 4, 0, 0, 65535, 1 };
	FILE *f = fopen(path, "w");
	unsigned frames = 0;

	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	fwrite(&gh, sizeof(gh), 1, f);
	for (;;) {
		uint8_t buf[2048];
		struct timeval tv;
		uint32_t rh[4];
		ssize_t n = recv(raw, buf, sizeof(buf), MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		gettimeofday(&tv, NULL);
		rh[0] = (uint32_t)tv.tv_sec;
		rh[1] = (uint32_t)tv.tv_usec;
		rh[2] = rh[3] = (uint32_t)n;
		fwrite(rh, sizeof(rh), 1, f);
		fwrite(buf, (size_t)n, 1, f);
		frames++;
	}
	fclose(f);
	return frames;
}

Test(net_udp, tshark_finds_nothing_malformed, .timeout = 120)
{
	struct sockaddr_in to = node_addr(ECHO_PORT), closed = node_addr(4444);
	struct send_req r = { .ip = LINUX_IP_H, .port = LINUX_PORT + 1,
			      .count = 3, .len = 100 };
	char pcap[64], out[65536], in[2048];
	unsigned frames;
	int fd, fd2, rc, raw;

	rc = run(out, sizeof(out), "command -v tshark");
	cr_assert_eq(rc, 0, "tshark is needed (apt-get install tshark)");
	net_up();
	bind_echo();
	snprintf(pcap, sizeof(pcap), "/tmp/ebbnet_%d.pcap", getpid());
	raw = raw_socket();
	net_attach();
	fd = udp_socket(LINUX_PORT);
	fd2 = udp_socket(LINUX_PORT + 1);
	/* The node first (ARP from its side), then echoes, then a closed
	 * port. */
	r.s = echo_sock;
	node_send(&r);
	for (unsigned i = 0; i < 3; i++)
		cr_assert_eq(urecv(fd2, in, sizeof(in)), 100);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(sendto(fd, "0123456789abc", 13, 0,
				    (struct sockaddr *)&to, sizeof(to)), 13);
		cr_assert_eq(urecv(fd, in, sizeof(in)), 13);
	}
	cr_assert_eq(sendto(fd, "closed", 6, 0, (struct sockaddr *)&closed,
			    sizeof(closed)), 6);
	usleep(100000);
	close(fd);
	close(fd2);
	frames = write_pcap(raw, pcap);
	close(raw);
	cr_assert_geq(frames, 14, "%u frames captured", frames);
	rc = run(out, sizeof(out),
		 "tshark -r %s -V -o ip.check_checksum:TRUE "
		 "-o udp.check_checksum:TRUE", pcap);
	cr_assert_eq(rc, 0, "tshark -r: %s", out);
	cr_assert(strstr(out, "User Datagram Protocol") != NULL &&
			  strstr(out, "Port unreachable") != NULL &&
			  strstr(out, "Address Resolution Protocol (reply)") !=
				  NULL,
		  "the capture lacks the exchange:\n%s", out);
	cr_assert(strstr(out, "Malformed") == NULL &&
			  strstr(out, "Bad") == NULL &&
			  strstr(out, "incorrect") == NULL,
		  "tshark complains:\n%.8000s", out);
	unlink(pcap);
	net_down();
}
