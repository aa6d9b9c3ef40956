/* SPDX-License-Identifier: BSD-3-Clause */
/* The network stack's responder on a net_tap port with Linux as the peer:
 * Linux pings the node and learns its MAC, malformed frames from a raw
 * socket land in the right drop counters, TCP is counted as not handled,
 * and replies are built in place exactly. Needs root,
 * /dev/net/tun, ip (iproute2) and ping (iputils-ping); each test makes its
 * own tap interface and removes it. */
#include "test_net_peer.h"

/* --- tests --- */

Test(net, ping_from_linux_is_answered_and_queue0_announces, .timeout = 90)
{
	struct ebb_net_stats s;
	uint64_t end;
	char out[4096];
	bool announced = false;
	int fd, rc;

	net_up();
	fd = raw_socket();
	net_attach();
	/* The announcement: a broadcast ARP request for our own ip from
	 * our MAC, target MAC zero (RFC 5227 2.3). */
	end = ebbt_now_ns() + 3000000000ull;
	while (!announced && ebbt_now_ns() < end) {
		uint8_t f[2048];
		ssize_t n = recv(fd, f, sizeof(f), 0);
		struct t_eth *eth = (struct t_eth *)f;
		struct t_arp *arp = arp_of(f);

		if (n < (ssize_t)(sizeof(*eth) + sizeof(*arp)) ||
		    eth->type != htons(ETH_P_ARP) ||
		    memcmp(eth->src, node_mac, 6) != 0)
			continue;
		cr_assert_eq(memcmp(eth->dst, "\xff\xff\xff\xff\xff\xff", 6),
			     0, "announcement not broadcast");
		cr_assert_eq(ntohs(arp->op), 1, "announcement op %u",
			     ntohs(arp->op));
		cr_assert_eq(memcmp(arp->sha, node_mac, 6), 0);
		cr_assert_eq(arp->spa, inet_addr(NODE_IP));
		cr_assert_eq(arp->tpa, inet_addr(NODE_IP));
		cr_assert_eq(memcmp(arp->tha, "\0\0\0\0\0\0", 6), 0);
		announced = true;
	}
	close(fd);
	cr_assert(announced, "no gratuitous ARP seen after attaching queue 0");

	rc = ping(3, out, sizeof(out));
	/* The core counts a reply once the nic has taken it, which may be
	 * just after Linux has it. */
	ebbt_wait_until((s = stats(), s.icmp_echo_replies >= 3), 1000);
	print_stats("after ping", &s);
	cr_assert_eq(rc, 0, "ping -c 3 " NODE_IP " failed (%d):\n%s", rc, out);
	cr_assert(strstr(out, "3 received") != NULL, "ping output:\n%s", out);
	/* ping takes a reply with a bad checksum or data, but says so. */
	cr_assert(strstr(out, "BAD CHECKSUM") == NULL &&
			  strstr(out, "wrong data") == NULL &&
			  strstr(out, "DUP!") == NULL,
		  "ping output:\n%s", out);
	cr_assert_geq(s.icmp_echo_replies, 3, "%lu echo replies",
		      (unsigned long)s.icmp_echo_replies);
	/* net_tap offers rx checksum offload (its PMD checks): the stack
	 * takes its verdict rather than summing again. */
	cr_assert_geq(s.rx_csum_by_device, 3,
		      "%lu IPv4 checksums verified by the device",
		      (unsigned long)s.rx_csum_by_device);
	cr_assert_geq(s.arp_requests, 1, "no ARP request from Linux counted");
	cr_assert_geq(s.arp_replies_sent, 1, "no ARP reply sent");
	cr_assert_geq(s.tx_frames, s.icmp_echo_replies + s.arp_replies_sent + 1,
		      "tx %lu frames", (unsigned long)s.tx_frames);
	net_down();
}

Test(net, linux_learns_the_node_mac, .timeout = 90)
{
	char out[4096], mac[18];
	int rc;

	net_up();
	net_attach();
	rc = run(out, sizeof(out), "ip neigh flush dev %s", ifname);
	cr_assert_eq(rc, 0, "ip neigh flush: %s", out);
	mac_str(node_mac, mac);
	rc = run(out, sizeof(out), "ip neigh show " NODE_IP " dev %s", ifname);
	cr_assert(rc == 0 && strstr(out, mac) == NULL,
		  "neighbour entry before any traffic: %s", out);
	rc = ping(1, out, sizeof(out));
	cr_assert_eq(rc, 0, "ping failed (%d):\n%s", rc, out);
	rc = run(out, sizeof(out), "ip neigh show " NODE_IP " dev %s", ifname);
	cr_assert_eq(rc, 0, "ip neigh show: %s", out);
	cr_assert(strstr(out, mac) != NULL,
		  "Linux's neighbour table has '%s', not the node's MAC %s",
		  out, mac);
	cr_assert(strstr(out, "FAILED") == NULL &&
			  strstr(out, "INCOMPLETE") == NULL,
		  "neighbour entry: %s", out);
	net_down();
}

/* One malformed frame and the counter it must land in. */
struct bad_frame {
	const char *what;
	size_t counter;		/* offsetof(struct ebb_net_stats, ...) */
	size_t (*build)(uint8_t *f);
};

#define CNT(s, off) (*(const uint64_t *)((const char *)(s) + (off)))

static size_t bad_truncated(uint8_t *f)
{
	/* The header says 84 bytes; 40 arrive. */
	build_echo(f, NODE_IP, 0, 56, 1, 1);
	return sizeof(struct t_eth) + 40;
}

static size_t bad_ip_sum(uint8_t *f)
{
	size_t n = build_echo(f, NODE_IP, 0, 56, 1, 2);

	ip_of(f)->sum ^= htons(0x0101);
	return n;
}

static size_t bad_ihl(uint8_t *f)
{
	size_t n = build_echo(f, NODE_IP, 0, 56, 1, 3);

	ip_of(f)->vhl = 0x44;
	ip_fix_sum(f);
	return n;
}

static size_t bad_version(uint8_t *f)
{
	size_t n = build_echo(f, NODE_IP, 0, 56, 1, 4);

	ip_of(f)->vhl = 0x65;
	ip_fix_sum(f);
	return n;
}

static size_t bad_len_under_header(uint8_t *f)
{
	size_t n = build_echo(f, NODE_IP, 0, 56, 1, 5);

	ip_of(f)->len = htons(19);
	ip_fix_sum(f);
	return n;
}

static size_t bad_first_fragment(uint8_t *f)
{
	size_t n = build_echo(f, NODE_IP, 0, 56, 1, 6);

	ip_of(f)->frag = htons(0x2000);	/* MF */
	ip_fix_sum(f);
	return n;
}

static size_t bad_last_fragment(uint8_t *f)
{
	size_t n = build_echo(f, NODE_IP, 0, 56, 1, 7);

	ip_of(f)->frag = htons(185);	/* offset 1480, no MF */
	ip_fix_sum(f);
	return n;
}

static size_t bad_icmp_sum(uint8_t *f)
{
	size_t n = build_echo(f, NODE_IP, 0, 56, 1, 8);

	icmp_of(f)->sum ^= htons(0x0001);
	return n;
}

static size_t bad_icmp_type(uint8_t *f)
{
	/* A timestamp request, checksum right: not an echo. */
	size_t n = build_echo(f, NODE_IP, 0, 12, 1, 9);
	struct t_icmp *icmp = icmp_of(f);

	icmp->type = 13;
	icmp->sum = 0;
	icmp->sum = htons(csum(icmp, sizeof(*icmp) + 12));
	return n;
}

static size_t bad_icmp_short(uint8_t *f)
{
	/* 4 bytes of ICMP: the IP length says so, the frame has them. */
	size_t n = build_echo(f, NODE_IP, 0, 0, 1, 10);

	ip_of(f)->len = htons(24);
	ip_fix_sum(f);
	return n - 4;
}

static size_t bad_arp_hlen(uint8_t *f)
{
	size_t n = build_arp(f, NODE_IP);

	arp_of(f)->hln = 7;
	return n;
}

static size_t bad_arp_proto(uint8_t *f)
{
	size_t n = build_arp(f, NODE_IP);

	arp_of(f)->pro = htons(0x86dd);
	return n;
}

static size_t bad_arp_op(uint8_t *f)
{
	/* A RARP request (op 3): neither request nor reply. */
	size_t n = build_arp(f, NODE_IP);

	arp_of(f)->op = htons(3);
	return n;
}

static size_t bad_arp_reply_from_us(uint8_t *f)
{
	/* A reply claiming our own ip: not learnt. */
	size_t n = build_arp(f, NODE_IP);

	arp_of(f)->op = htons(2);
	arp_of(f)->spa = inet_addr(NODE_IP);
	return n;
}

static size_t bad_arp_short(uint8_t *f)
{
	return build_arp(f, NODE_IP) - 6;
}

static size_t bad_ip_not_ours(uint8_t *f)
{
	return build_echo(f, OTHER_IP, 0, 56, 1, 11);
}

static size_t bad_arp_not_ours(uint8_t *f)
{
	return build_arp(f, OTHER_IP);
}

static size_t bad_mac_not_ours(uint8_t *f)
{
	size_t n = build_echo(f, NODE_IP, 0, 56, 1, 12);

	memcpy(((struct t_eth *)f)->dst, "\x02\x00\x00\x00\x00\x99", 6);
	return n;
}

static size_t bad_source(uint8_t *f)
{
	/* From the subnet broadcast: an answer would go to everyone. */
	size_t n = build_echo(f, NODE_IP, 0, 56, 1, 13);

	ip_of(f)->src = inet_addr("10.99.0.255");
	ip_fix_sum(f);
	return n;
}

static size_t bad_ethertype(uint8_t *f)
{
	size_t n = build_echo(f, NODE_IP, 0, 56, 1, 14);

	((struct t_eth *)f)->type = htons(0x88b5);
	return n;
}

static size_t bad_ip_cut(uint8_t *f)
{
	/* Not even the fixed IPv4 header. (A frame under 14 bytes cannot
	 * be sent: a packet socket refuses it.) */
	build_echo(f, NODE_IP, 0, 56, 1, 15);
	return sizeof(struct t_eth) + 10;
}

static size_t bad_udp(uint8_t *f)
{
	size_t n = build_echo(f, NODE_IP, 0, 56, 1, 16);

	ip_of(f)->proto = IPPROTO_UDP;
	ip_fix_sum(f);
	return n;
}

static size_t bad_echo_to_subnet_broadcast(uint8_t *f)
{
	/* Answering would make every station of the subnet reply (smurf). */
	size_t n = build_echo(f, "10.99.0.255", 0, 56, 1, 17);

	memset(((struct t_eth *)f)->dst, 0xff, 6);
	return n;
}

static size_t bad_echo_to_broadcast(uint8_t *f)
{
	size_t n = build_echo(f, "255.255.255.255", 0, 56, 1, 18);

	memset(((struct t_eth *)f)->dst, 0xff, 6);
	return n;
}

#define STAT(f) offsetof(struct ebb_net_stats, f)

static const struct bad_frame bad_frames[] = {
	{ "truncated IPv4", STAT(drop_short), bad_truncated },
	{ "bad IPv4 checksum", STAT(drop_ip_checksum), bad_ip_sum },
	{ "IHL 4", STAT(drop_ip_header), bad_ihl },
	{ "IP version 6 as IPv4", STAT(drop_ip_header), bad_version },
	{ "total length under the header", STAT(drop_ip_header),
	  bad_len_under_header },
	{ "first fragment (MF)", STAT(drop_ip_fragment), bad_first_fragment },
	{ "last fragment (offset)", STAT(drop_ip_fragment), bad_last_fragment },
	{ "bad ICMP checksum", STAT(drop_icmp), bad_icmp_sum },
	{ "ICMP timestamp request", STAT(drop_icmp), bad_icmp_type },
	{ "ICMP under 8 bytes", STAT(drop_icmp), bad_icmp_short },
	{ "ARP hlen 7", STAT(drop_arp), bad_arp_hlen },
	{ "ARP for IPv6", STAT(drop_arp), bad_arp_proto },
	{ "ARP op 3", STAT(drop_arp), bad_arp_op },
	{ "ARP reply from our ip", STAT(drop_arp), bad_arp_reply_from_us },
	{ "ARP cut short", STAT(drop_short), bad_arp_short },
	{ "IPv4 to another ip", STAT(drop_not_for_us), bad_ip_not_ours },
	{ "ARP for another ip", STAT(drop_not_for_us), bad_arp_not_ours },
	{ "to another MAC", STAT(drop_not_for_us), bad_mac_not_ours },
	{ "from the subnet broadcast", STAT(drop_ip_header), bad_source },
	{ "unknown ethertype", STAT(drop_ethertype), bad_ethertype },
	{ "10 bytes of IPv4", STAT(drop_short), bad_ip_cut },
	{ "UDP length 1", STAT(udp_bad_len), bad_udp },
	{ "ICMP echo to the subnet broadcast", STAT(drop_not_for_us),
	  bad_echo_to_subnet_broadcast },
	{ "ICMP echo to 255.255.255.255", STAT(drop_not_for_us),
	  bad_echo_to_broadcast },
};

/* Counters no frame of Linux's own may move while the test sends: only
 * the frame under test does. */
static const size_t quiet[] = {
	STAT(icmp_echo_replies), STAT(drop_short), STAT(drop_ethertype),
	STAT(drop_not_for_us), STAT(drop_ip_header), STAT(drop_ip_checksum),
	STAT(drop_ip_fragment), STAT(drop_ttl), STAT(drop_proto),
	STAT(drop_icmp), STAT(drop_arp), STAT(drop_tx_full),
	STAT(arp_replies_rcvd), STAT(udp_rx), STAT(udp_bad_len),
	STAT(udp_bad_checksum), STAT(udp_no_port), STAT(icmp_unreach_sent),
	STAT(icmp_unreach_limited),
};

Test(net, malformed_frames_are_counted_and_dropped, .timeout = 120)
{
	struct ebb_net_stats a, b;
	char out[4096];
	int fd, rc;

	net_up();
	net_attach();
	rc = ping(1, out, sizeof(out));
	cr_assert_eq(rc, 0, "ping before the bad frames failed:\n%s", out);
	/* Its reply is counted after Linux may have it: let the count
	 * settle before the quiet counters are watched. */
	cr_assert(ebbt_wait_until((a = stats(), a.icmp_echo_replies == 1),
				  1000),
		  "%lu echo replies for one ping",
		  (unsigned long)a.icmp_echo_replies);
	fd = raw_socket();
	for (size_t i = 0; i < sizeof(bad_frames) / sizeof(bad_frames[0]);
	     i++) {
		const struct bad_frame *bf = &bad_frames[i];
		uint8_t f[256];
		size_t n;

		memset(f, 0, sizeof(f));
		n = bf->build(f);
		a = stats();
		cr_assert_eq(send(fd, f, n, 0), (ssize_t)n, "send %s: %s",
			     bf->what, strerror(errno));
		cr_assert(ebbt_wait_until(
				  (b = stats(), CNT(&b, bf->counter) !=
							CNT(&a, bf->counter)),
				  2000),
			  "%s: its counter did not move", bf->what);
		/* Long enough for a second count or a reply to show. */
		usleep(20000);
		b = stats();
		if (CNT(&b, bf->counter) != CNT(&a, bf->counter) + 1)
			print_stats(bf->what, &b);
		cr_assert_eq(CNT(&b, bf->counter), CNT(&a, bf->counter) + 1,
			     "%s: counted %lu times", bf->what,
			     (unsigned long)(CNT(&b, bf->counter) -
					     CNT(&a, bf->counter)));
		for (size_t k = 0; k < sizeof(quiet) / sizeof(quiet[0]); k++) {
			if (quiet[k] == bf->counter)
				continue;
			if (CNT(&b, quiet[k]) != CNT(&a, quiet[k])) {
				print_stats("before", &a);
				print_stats("after", &b);
			}
			cr_assert_eq(CNT(&b, quiet[k]), CNT(&a, quiet[k]),
				     "%s: also moved the counter at offset "
				     "%zu", bf->what, quiet[k]);
		}
		cr_assert_eq(b.tx_frames, a.tx_frames + (b.arp_replies_sent -
							  a.arp_replies_sent),
			     "%s: answered", bf->what);
	}
	close(fd);
	rc = ping(1, out, sizeof(out));
	cr_assert_eq(rc, 0, "ping after the bad frames failed:\n%s", out);
	net_down();
}

/* Every kind of bad frame again, as a flood: each one counted, nothing
 * answered, no mbuf kept, and the node still answers afterwards. */
Test(net, floods_of_bad_frames_leave_no_trace, .timeout = 120)
{
	const unsigned flood = 300;
	struct ebb_net_stats a, b;
	struct rte_mempool *mp;
	unsigned base;
	char out[4096];
	int fd, rc;

	net_up();
	net_attach();
	rc = ping(1, out, sizeof(out));
	cr_assert_eq(rc, 0, "ping before the floods failed:\n%s", out);
	mp = ebb_nic_pool(nic);
	cr_assert(ebbt_wait_until((a = stats(), a.icmp_echo_replies == 1),
				  1000));
	base = rte_mempool_in_use_count(mp);
	fd = raw_socket();
	for (size_t i = 0; i < sizeof(bad_frames) / sizeof(bad_frames[0]);
	     i++) {
		const struct bad_frame *bf = &bad_frames[i];
		uint8_t f[256];
		size_t n;

		memset(f, 0, sizeof(f));
		n = bf->build(f);
		a = stats();
		for (unsigned k = 0; k < flood; k++) {
			cr_assert_eq(send(fd, f, n, 0), (ssize_t)n,
				     "send %s: %s", bf->what, strerror(errno));
			if (k % 50 == 49)
				usleep(1000);	/* within the tap's queue */
		}
		cr_assert(ebbt_wait_until(
				  (b = stats(), CNT(&b, bf->counter) -
							CNT(&a, bf->counter) >=
						flood),
				  3000),
			  "%s: counted %lu of %u", bf->what,
			  (unsigned long)(CNT(&b, bf->counter) -
					  CNT(&a, bf->counter)),
			  flood);
		usleep(20000);
		b = stats();
		cr_assert_eq(CNT(&b, bf->counter) - CNT(&a, bf->counter), flood,
			     "%s: counted %lu times for %u", bf->what,
			     (unsigned long)(CNT(&b, bf->counter) -
					     CNT(&a, bf->counter)),
			     flood);
		cr_assert_eq(b.tx_frames - a.tx_frames,
			     b.arp_replies_sent - a.arp_replies_sent,
			     "%s: answered", bf->what);
		cr_assert(ebbt_wait_until(rte_mempool_in_use_count(mp) <= base,
					  2000),
			  "%s: mbufs in use %u before, %u after", bf->what,
			  base, rte_mempool_in_use_count(mp));
	}
	close(fd);
	rc = ping(1, out, sizeof(out));
	cr_assert_eq(rc, 0, "ping after the floods failed:\n%s", out);
	net_down();
}

Test(net, tcp_and_udp_to_closed_ports_refused, .timeout = 90)
{
	struct sockaddr_in to = { .sin_family = AF_INET,
				  .sin_port = htons(9) };
	struct ebb_net_stats s;
	int fd;

	net_up();
	net_attach();
	to.sin_addr.s_addr = inet_addr(NODE_IP);
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	cr_assert_geq(fd, 0);
	/* Linux resolves the node's MAC first (ARP), queueing these. */
	for (int i = 0; i < 3; i++)
		cr_assert_eq(sendto(fd, "ebbrt", 5, 0, (struct sockaddr *)&to,
				    sizeof(to)),
			     5, "sendto: %s", strerror(errno));
	close(fd);
	cr_assert(ebbt_wait_until((s = stats(), s.udp_no_port >= 3), 3000),
		  "%lu of 3 UDP datagrams counted",
		  (unsigned long)s.udp_no_port);
	usleep(50000);
	s = stats();
	cr_assert_eq(s.udp_no_port, 3, "3 datagrams counted %lu times",
		     (unsigned long)s.udp_no_port);
	cr_assert_eq(s.icmp_unreach_sent, 3, "%lu port unreachables sent",
		     (unsigned long)s.icmp_unreach_sent);
	cr_assert_eq(s.drop_proto, 0);
	cr_assert_geq(s.arp_replies_sent, 1);

	/* A TCP SYN to a port nobody listens on: RST, and Linux's connect
	 * fails at once with ECONNREFUSED. */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	to.sin_port = htons(80);
	cr_assert_eq(connect(fd, (struct sockaddr *)&to, sizeof(to)), -1);
	cr_assert_eq(errno, ECONNREFUSED, "connect: %s", strerror(errno));
	close(fd);
	s = stats();
	cr_assert_eq(s.tcp_no_listener, 1);
	cr_assert_eq(s.tcp_rst_sent, 1);
	cr_assert_eq(s.drop_proto, 0);
	cr_assert_eq(s.icmp_echo_replies, 0);
	net_down();
}

/* Receive the node's echo reply with identifier @id into @f; its length,
 * or 0 when none came. */
static size_t recv_reply(int fd, uint8_t *f, size_t cap, uint16_t id,
			 uint16_t seq)
{
	uint64_t end = ebbt_now_ns() + 3000000000ull;

	while (ebbt_now_ns() < end) {
		ssize_t n = recv(fd, f, cap, 0);
		struct t_eth *eth = (struct t_eth *)f;

		if (n < (ssize_t)(sizeof(*eth) + sizeof(struct t_ip) +
				  sizeof(struct t_icmp)) ||
		    memcmp(eth->src, node_mac, 6) != 0 ||
		    eth->type != htons(ETH_P_IP) ||
		    ip_of(f)->proto != IPPROTO_ICMP)
			continue;
		if (icmp_of(f)->id == htons(id) &&
		    icmp_of(f)->seq == htons(seq))
			return (size_t)n;
	}
	return 0;
}

Test(net, echo_reply_is_built_in_place_exactly, .timeout = 90)
{
	uint8_t req[256], rep[2048];
	struct t_ip *ip;
	struct t_icmp *icmp;
	size_t n, paylen = 13, got;
	struct ebb_net_stats s;
	int fd, replies = 0;

	net_up();
	net_attach();
	fd = raw_socket();
	/* Odd-length data, 4 bytes of IP options, 7 bytes of junk past the
	 * datagram (as Ethernet padding would be): the reply must carry
	 * none of the options or junk and sum only the ICMP message. */
	n = build_echo(req, NODE_IP, 4, paylen, 0xbeef, 1);
	memset(req + n, 0x5a, 7);
	cr_assert_eq(send(fd, req, n + 7, 0), (ssize_t)(n + 7));
	got = recv_reply(fd, rep, sizeof(rep), 0xbeef, 1);
	cr_assert_neq(got, 0, "no echo reply");
	ip = ip_of(rep);
	icmp = icmp_of(rep);
	cr_assert_eq(got, sizeof(struct t_eth) + 20 + 8 + paylen,
		     "reply frame of %zu bytes", got);
	cr_assert_eq(memcmp(((struct t_eth *)rep)->dst, linux_mac, 6), 0);
	cr_assert_eq(ip->vhl, 0x45, "options reflected: vhl %#x", ip->vhl);
	cr_assert_eq(ntohs(ip->len), 20 + 8 + paylen);
	cr_assert_eq(ip->src, inet_addr(NODE_IP));
	cr_assert_eq(ip->dst, inet_addr(LINUX_IP));
	cr_assert_eq(ip->ttl, 64);
	cr_assert_eq(ip->frag & htons(0x3fff), 0);
	cr_assert_eq(csum(ip, 20), 0, "bad IP checksum in the reply");
	cr_assert_eq(icmp->type, 0);
	cr_assert_eq(icmp->code, 0);
	cr_assert_eq(csum(icmp, 8 + paylen), 0,
		     "bad ICMP checksum in the reply");
	cr_assert_eq(memcmp(icmp + 1, req + n - paylen, paylen), 0,
		     "data not echoed");

	/* A burst, answered in bursts: every request gets its reply. */
	for (uint16_t i = 0; i < 64; i++) {
		n = build_echo(req, NODE_IP, 0, 56 + i, 0xcafe, i);
		cr_assert_eq(send(fd, req, n, 0), (ssize_t)n);
	}
	for (uint16_t i = 0; i < 64; i++) {
		got = recv_reply(fd, rep, sizeof(rep), 0xcafe, i);
		if (got == 0)
			break;
		cr_assert_eq(csum(icmp_of(rep), 8 + 56 + i), 0,
			     "reply %u: bad ICMP checksum", i);
		replies++;
	}
	close(fd);
	cr_assert_eq(replies, 64, "%d of 64 replies", replies);
	ebbt_wait_until((s = stats(), s.icmp_echo_replies >= 65), 1000);
	usleep(20000);
	s = stats();
	cr_assert_eq(s.icmp_echo_replies, 65, "%lu echo replies counted",
		     (unsigned long)s.icmp_echo_replies);
	net_down();
}

Test(net, bad_configuration_and_misuse_are_errors, .timeout = 60)
{
	struct ebb_net_config cfg = { .ip = NODE_IP_H, .netmask = MASK_24 };
	struct ebb_net_if *bad;

	net_up();
	cr_assert_null(ebb_net_if_open(NULL, &cfg));
	cr_assert_eq(errno, EINVAL);
	cr_assert_null(ebb_net_if_open(nic, NULL));
	cr_assert_eq(errno, EINVAL);
	{
		static const struct ebb_net_config bads[] = {
			{ .ip = 0 },
			{ .ip = 0xe0000001u },			/* 224.0.0.1 */
			{ .ip = 0xffffffffu },
			{ .ip = 0x7f000001u },			/* loopback */
			{ .ip = NODE_IP_H, .netmask = 0xff00ff00u },
			{ .ip = 0x0a630000u, .netmask = MASK_24 },
			{ .ip = 0x0a6300ffu, .netmask = MASK_24 },
			{ .ip = NODE_IP_H, .netmask = MASK_24,
			  .gateway = 0x0a640001u },	/* 10.100.0.1 */
		};

		for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
			bad = ebb_net_if_open(nic, &bads[i]);
			cr_assert_null(bad, "config %zu accepted", i);
			cr_assert_eq(errno, EINVAL, "config %zu: %s", i,
				     strerror(errno));
		}
	}
	{
		static const struct ebb_net_config goods[] = {
			{ .ip = NODE_IP_H },			/* no mask */
			{ .ip = 0x0a630000u, .netmask = 0xfffffffeu }, /* /31 */
			{ .ip = NODE_IP_H, .netmask = 0xffffffffu },
			{ .ip = NODE_IP_H, .netmask = MASK_24,
			  .gateway = 0x0a630001u },
		};

		for (size_t i = 0; i < sizeof(goods) / sizeof(goods[0]); i++) {
			struct ebb_net_if *good;

			good = ebb_net_if_open(nic, &goods[i]);
			cr_assert_not_null(good, "config %zu: %s", i,
					   strerror(errno));
			ebb_net_if_close(good);
		}
	}
	cr_assert_eq(ebb_net_if_attach(nif, 0), -EPERM, "attach off a core");
	cr_assert_eq(ebb_net_if_detach(nif, 0), -EPERM, "detach off a core");
	cr_assert_eq(ebb_net_if_stats(NULL, &(struct ebb_net_stats){ 0 }),
		     -EINVAL);
	cr_assert_eq(ebb_net_if_stats(nif, NULL), -EINVAL);
	ebb_net_if_close(NULL);

	/* The tap has one queue; queue 0 twice is busy. */
	net_attach();
	atomic_store(&call_rc, 1);
	cr_assert_eq(ebbt_call(1, attach0, NULL), 0);
	cr_assert_eq(atomic_load(&call_rc), -EBUSY, "second attach: %d",
		     atomic_load(&call_rc));
	for (unsigned q = 1; q <= EBB_MAX_CORES; q += EBB_MAX_CORES - 1) {
		atomic_store(&call_rc, 1);
		cr_assert_eq(ebbt_call(1, attach_q, (void *)(uintptr_t)q), 0);
		cr_assert_eq(atomic_load(&call_rc), -EINVAL,
			     "attach queue %u: %d", q, atomic_load(&call_rc));
	}
	net_down();
}
