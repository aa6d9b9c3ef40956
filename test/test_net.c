/* SPDX-License-Identifier: BSD-3-Clause */
/* The network stack's responder on a net_tap port with Linux as the peer:
 * Linux pings the node and learns its MAC, malformed frames from a raw
 * socket land in the right drop counters, UDP and TCP are counted as not
 * handled, and replies are built in place exactly. Needs root,
 * /dev/net/tun, ip (iproute2) and ping (iputils-ping); each test makes its
 * own tap interface and removes it. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>

#include <rte_mempool.h>

#include <ebbrt/net.h>
#include <ebbrt/nic.h>

#include "harness.h"

#define LINUX_IP "10.99.0.1"
#define NODE_IP "10.99.0.2"
#define OTHER_IP "10.99.0.3"
#define NODE_IP_H 0x0a630002u	/* 10.99.0.2 */
#define MASK_24 0xffffff00u

/* Frames as the wire carries them, defined here rather than taken from
 * DPDK so that the test does not share the stack's view of them. */
struct t_eth {
	uint8_t dst[6], src[6];
	uint16_t type;
} __attribute__((packed));

struct t_ip {
	uint8_t vhl, tos;
	uint16_t len, id, frag;
	uint8_t ttl, proto;
	uint16_t sum;
	uint32_t src, dst;
} __attribute__((packed));

struct t_icmp {
	uint8_t type, code;
	uint16_t sum, id, seq;
} __attribute__((packed));

struct t_arp {
	uint16_t hrd, pro;
	uint8_t hln, pln;
	uint16_t op;
	uint8_t sha[6];
	uint32_t spa;
	uint8_t tha[6];
	uint32_t tpa;
} __attribute__((packed));

static struct ebb_nic *nic;
static struct ebb_net_if *nif;
static char ifname[IFNAMSIZ], devargs[64];
static uint8_t node_mac[6], linux_mac[6];
static unsigned avail_before;

/* --- Linux side --- */

/* Run a shell command; its output (stdout and stderr) goes to @out.
 * Returns its exit status, or -1 when it could not run. */
static int run(char *out, size_t outsz, const char *fmt, ...)
{
	char cmd[512];
	size_t used = 0;
	va_list ap;
	FILE *p;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	strncat(cmd, " 2>&1", sizeof(cmd) - strlen(cmd) - 1);
	out[0] = '\0';
	p = popen(cmd, "r");
	if (p == NULL)
		return -1;
	while (used + 1 < outsz) {
		size_t n = fread(out + used, 1, outsz - used - 1, p);

		if (n == 0)
			break;
		used += n;
	}
	out[used] = '\0';
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void mac_str(const uint8_t mac[6], char *s)
{
	sprintf(s, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2],
		mac[3], mac[4], mac[5]);
}

static void write_sysctl(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY);

	if (fd < 0)
		return;	/* no IPv6 in this kernel: nothing to turn off */
	cr_assert_eq(write(fd, val, strlen(val)), (ssize_t)strlen(val),
		     "write %s: %s", path, strerror(errno));
	close(fd);
}

static int raw_socket(void)
{
	struct sockaddr_ll sll = { .sll_family = AF_PACKET,
				   .sll_protocol = htons(ETH_P_ALL),
				   .sll_ifindex = (int)if_nametoindex(ifname) };
	struct timeval tv = { .tv_sec = 0, .tv_usec = 200000 };
	int fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));

	cr_assert_geq(fd, 0, "raw socket: %s (root needed)", strerror(errno));
	cr_assert_eq(bind(fd, (struct sockaddr *)&sll, sizeof(sll)), 0,
		     "bind to %s: %s", ifname, strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static int ping(unsigned count, char *out, size_t outsz)
{
	return run(out, outsz, "ping -c %u -W 1 -I %s " NODE_IP, count,
		   ifname);
}

/* --- the node --- */

static atomic_int call_rc;

static void attach0(void *arg)
{
	(void)arg;
	atomic_store(&call_rc, ebb_net_if_attach(nif, 0));
}

static void attach_q(void *arg)
{
	unsigned q = (unsigned)(uintptr_t)arg;

	atomic_store(&call_rc, ebb_net_if_attach(nif, q));
}

static void detach0(void *arg)
{
	(void)arg;
	atomic_store(&call_rc, ebb_net_if_detach(nif, 0));
}

static struct ebb_net_stats stats(void)
{
	struct ebb_net_stats s;

	cr_assert_eq(ebb_net_if_stats(nif, &s), 0);
	return s;
}

static void print_stats(const char *when, const struct ebb_net_stats *s)
{
	cr_log_info("%s: rx %lu tx %lu arp_req %lu arp_rep %lu echo %lu | "
		    "short %lu type %lu notus %lu iphdr %lu ipsum %lu "
		    "frag %lu ttl %lu proto %lu icmp %lu arp %lu txfull %lu",
		    when, (unsigned long)s->rx_frames,
		    (unsigned long)s->tx_frames,
		    (unsigned long)s->arp_requests,
		    (unsigned long)s->arp_replies_sent,
		    (unsigned long)s->icmp_echo_replies,
		    (unsigned long)s->drop_short,
		    (unsigned long)s->drop_ethertype,
		    (unsigned long)s->drop_not_for_us,
		    (unsigned long)s->drop_ip_header,
		    (unsigned long)s->drop_ip_checksum,
		    (unsigned long)s->drop_ip_fragment,
		    (unsigned long)s->drop_ttl,
		    (unsigned long)s->drop_proto,
		    (unsigned long)s->drop_icmp,
		    (unsigned long)s->drop_arp,
		    (unsigned long)s->drop_tx_full);
}

/* A node on cores 0-1 with a tap port, the interface on it (not yet
 * attached), and Linux's end of the tap at LINUX_IP/24, IPv6 off so that
 * Linux sends nothing on its own but ARP. */
static void net_up(void)
{
	struct ebb_net_config cfg = { .ip = NODE_IP_H, .netmask = MASK_24 };
	struct ebb_nic_config ncfg = { 0 };
	char out[1024], path[128], mac[18];
	struct ifreq ifr;
	int fd, rc;

	rc = run(out, sizeof(out), "command -v ping && command -v ip");
	cr_assert_eq(rc, 0, "ping and ip are needed (apt-get install "
			    "iputils-ping iproute2): %s", out);
	ebbt_start_spin("0-1", 16);
	snprintf(ifname, sizeof(ifname), "ebbnet%d", getpid() % 100000);
	snprintf(devargs, sizeof(devargs), "net_tap_n%d,iface=%s",
		 getpid() % 100000, ifname);
	ncfg.devargs = devargs;
	nic = ebb_nic_open(&ncfg);
	cr_assert_not_null(nic, "ebb_nic_open(%s): %s", devargs,
			   strerror(errno));
	cr_assert_eq(ebb_nic_mac(nic, node_mac), 0);
	nif = ebb_net_if_open(nic, &cfg);
	cr_assert_not_null(nif, "ebb_net_if_open: %s", strerror(errno));

	snprintf(path, sizeof(path), "/proc/sys/net/ipv6/conf/%s/disable_ipv6",
		 ifname);
	write_sysctl(path, "1");
	/* net_tap gives Linux's end the port's own MAC; a MAC of its own
	 * makes it a second station, so that a reply sent to the wrong
	 * address shows. */
	memcpy(linux_mac, node_mac, 6);
	linux_mac[0] = 0x02;		/* locally administered, unicast */
	linux_mac[5] ^= 0x5a;
	mac_str(linux_mac, mac);
	rc = run(out, sizeof(out), "ip link set dev %s address %s && "
				   "ip addr add " LINUX_IP "/24 dev %s && "
				   "ip link set dev %s up",
		 ifname, mac, ifname, ifname);
	cr_assert_eq(rc, 0, "configuring %s: %s", ifname, out);

	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, ifname);
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	cr_assert_eq(ioctl(fd, SIOCGIFHWADDR, &ifr), 0, "SIOCGIFHWADDR: %s",
		     strerror(errno));
	close(fd);
	cr_assert_eq(memcmp(linux_mac, ifr.ifr_hwaddr.sa_data, 6), 0,
		     "%s did not take MAC %s", ifname, mac);
	cr_assert_neq(memcmp(linux_mac, node_mac, 6), 0,
		      "Linux's end and the node have the same MAC");
	avail_before = rte_mempool_avail_count(ebb_nic_pool(nic));
}

static void net_attach(void)
{
	atomic_store(&call_rc, 1);
	cr_assert_eq(ebbt_call(1, attach0, NULL), 0);
	cr_assert_eq(atomic_load(&call_rc), 0, "attach: %s",
		     strerror(-atomic_load(&call_rc)));
}

/* Detach, check that every frame was accounted for once and every mbuf
 * came back, then take it all down; the tap must be gone. */
static void net_down(void)
{
	struct ebb_net_stats s;
	uint64_t ends;
	unsigned avail;
	bool gone_at_close;

	atomic_store(&call_rc, 1);
	cr_assert_eq(ebbt_call(1, detach0, NULL), 0);
	cr_assert_eq(atomic_load(&call_rc), 0, "detach: %d",
		     atomic_load(&call_rc));
	s = stats();
	print_stats("at the end", &s);
	ends = s.arp_replies_sent + s.icmp_echo_replies + s.drop_short +
	       s.drop_ethertype + s.drop_not_for_us + s.drop_ip_header +
	       s.drop_ip_checksum + s.drop_ip_fragment + s.drop_ttl +
	       s.drop_proto + s.drop_icmp + s.drop_arp + s.drop_tx_full;
	cr_assert_eq(s.drop_tx_full, 0, "tap refused %lu frames",
		     (unsigned long)s.drop_tx_full);
	cr_assert_eq(s.rx_frames, ends,
		     "%lu frames received, %lu answered or dropped",
		     (unsigned long)s.rx_frames, (unsigned long)ends);
	cr_assert_eq(s.drop_ttl, 0, "a host accepts any TTL");
	cr_assert(ebbt_wait_until(
		(avail = rte_mempool_avail_count(ebb_nic_pool(nic))) ==
			avail_before, 2000),
		"pool: %u mbufs available before, %u after", avail_before,
		avail);
	ebb_stop();
	cr_assert_eq(ebb_wait(), 0);
	ebb_net_if_close(nif);
	ebb_nic_close(nic);
	gone_at_close = if_nametoindex(ifname) == 0;
	ebb_fini();
	/* The kernel may keep the interface until the last reference to
	 * its fd goes (a poll the halted core left in its io_uring). */
	if (!gone_at_close)
		cr_log_info("%s outlived ebb_nic_close()", ifname);
	cr_assert(ebbt_wait_until(if_nametoindex(ifname) == 0, 3000),
		  "%s still there after close and ebb_fini()", ifname);
}

/* --- frames --- */

/* Internet checksum (RFC 1071) of @n bytes, to store big-endian. */
static uint16_t csum(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint32_t s = 0;

	for (size_t i = 0; i + 1 < n; i += 2)
		s += (uint32_t)b[i] << 8 | b[i + 1];
	if (n & 1)
		s += (uint32_t)b[n - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

static void ip_fix_sum(uint8_t *frame)
{
	struct t_ip *ip = (struct t_ip *)(frame + sizeof(struct t_eth));

	ip->sum = 0;
	ip->sum = htons(csum(ip, (ip->vhl & 0xf) * 4u));
}

/* An echo request from Linux's end to @dst_ip with @optlen bytes of IP
 * options (NOPs then an end) and @paylen bytes of data; returns the frame
 * length. */
static size_t build_echo(uint8_t *f, const char *dst_ip, size_t optlen,
			 size_t paylen, uint16_t id, uint16_t seq)
{
	struct t_eth *eth = (struct t_eth *)f;
	struct t_ip *ip = (struct t_ip *)(eth + 1);
	uint8_t *opt = (uint8_t *)(ip + 1);
	struct t_icmp *icmp = (struct t_icmp *)(opt + optlen);
	uint8_t *data = (uint8_t *)(icmp + 1);

	memcpy(eth->dst, node_mac, 6);
	memcpy(eth->src, linux_mac, 6);
	eth->type = htons(ETH_P_IP);
	memset(ip, 0, sizeof(*ip));
	ip->vhl = (uint8_t)(0x40 | (5 + optlen / 4));
	ip->len = htons((uint16_t)(sizeof(*ip) + optlen + sizeof(*icmp) +
				   paylen));
	ip->id = htons(seq);
	ip->frag = htons(0x4000);	/* DF, as Linux sends */
	ip->ttl = 1;			/* a host answers even TTL 1 */
	ip->proto = IPPROTO_ICMP;
	ip->src = inet_addr(LINUX_IP);
	ip->dst = inet_addr(dst_ip);
	memset(opt, 1, optlen);		/* NOP */
	if (optlen)
		opt[optlen - 1] = 0;	/* end of options */
	ip_fix_sum(f);
	icmp->type = 8;
	icmp->code = 0;
	icmp->sum = 0;
	icmp->id = htons(id);
	icmp->seq = htons(seq);
	for (size_t i = 0; i < paylen; i++)
		data[i] = (uint8_t)(0xa5 ^ i ^ seq);
	icmp->sum = htons(csum(icmp, sizeof(*icmp) + paylen));
	return sizeof(*eth) + sizeof(*ip) + optlen + sizeof(*icmp) + paylen;
}

/* An ARP request from Linux's end for @tpa, broadcast. */
static size_t build_arp(uint8_t *f, const char *tpa)
{
	struct t_eth *eth = (struct t_eth *)f;
	struct t_arp *arp = (struct t_arp *)(eth + 1);

	memset(eth->dst, 0xff, 6);
	memcpy(eth->src, linux_mac, 6);
	eth->type = htons(ETH_P_ARP);
	arp->hrd = htons(1);
	arp->pro = htons(ETH_P_IP);
	arp->hln = 6;
	arp->pln = 4;
	arp->op = htons(1);
	memcpy(arp->sha, linux_mac, 6);
	arp->spa = inet_addr(LINUX_IP);
	memset(arp->tha, 0, 6);
	arp->tpa = inet_addr(tpa);
	return sizeof(*eth) + sizeof(*arp);
}

static struct t_ip *ip_of(uint8_t *f)
{
	return (struct t_ip *)(f + sizeof(struct t_eth));
}

static struct t_icmp *icmp_of(uint8_t *f)
{
	struct t_ip *ip = ip_of(f);

	return (struct t_icmp *)((uint8_t *)ip + (ip->vhl & 0xf) * 4u);
}

static struct t_arp *arp_of(uint8_t *f)
{
	return (struct t_arp *)(f + sizeof(struct t_eth));
}

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

static size_t bad_arp_reply(uint8_t *f)
{
	size_t n = build_arp(f, NODE_IP);

	arp_of(f)->op = htons(2);
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
	{ "ARP reply", STAT(drop_arp), bad_arp_reply },
	{ "ARP cut short", STAT(drop_short), bad_arp_short },
	{ "IPv4 to another ip", STAT(drop_not_for_us), bad_ip_not_ours },
	{ "ARP for another ip", STAT(drop_not_for_us), bad_arp_not_ours },
	{ "to another MAC", STAT(drop_not_for_us), bad_mac_not_ours },
	{ "from the subnet broadcast", STAT(drop_ip_header), bad_source },
	{ "unknown ethertype", STAT(drop_ethertype), bad_ethertype },
	{ "10 bytes of IPv4", STAT(drop_short), bad_ip_cut },
	{ "raw UDP", STAT(drop_proto), bad_udp },
};

/* Counters no frame of Linux's own may move while the test sends: only
 * the frame under test does. */
static const size_t quiet[] = {
	STAT(icmp_echo_replies), STAT(drop_short), STAT(drop_ethertype),
	STAT(drop_not_for_us), STAT(drop_ip_header), STAT(drop_ip_checksum),
	STAT(drop_ip_fragment), STAT(drop_ttl), STAT(drop_proto),
	STAT(drop_icmp), STAT(drop_arp), STAT(drop_tx_full),
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

Test(net, udp_and_tcp_are_counted_as_unhandled, .timeout = 90)
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
	cr_assert(ebbt_wait_until((s = stats(), s.drop_proto >= 3), 3000),
		  "%lu of 3 UDP datagrams counted",
		  (unsigned long)s.drop_proto);
	usleep(50000);
	s = stats();
	cr_assert_eq(s.drop_proto, 3, "3 datagrams counted %lu times",
		     (unsigned long)s.drop_proto);
	cr_assert_geq(s.arp_replies_sent, 1);

	/* A TCP SYN: dropped too (no reset: there is no TCP yet). */
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	to.sin_port = htons(80);
	cr_assert_eq(connect(fd, (struct sockaddr *)&to, sizeof(to)), -1);
	cr_assert_eq(errno, EINPROGRESS, "connect: %s", strerror(errno));
	cr_assert(ebbt_wait_until((s = stats(), s.drop_proto > 3), 3000),
		  "the SYN was not counted");
	close(fd);
	s = stats();
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
