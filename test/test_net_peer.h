/* SPDX-License-Identifier: BSD-3-Clause */
/* Helpers of the network stack's tests with Linux as the peer over a
 * net_tap port: shell commands, raw sockets, a node with an interface on
 * the tap, frames built byte by byte. Included by test_net*.c. */
#ifndef EBBRT_TEST_NET_PEER_H
#define EBBRT_TEST_NET_PEER_H

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
static inline int run(char *out, size_t outsz, const char *fmt, ...)
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

static inline void mac_str(const uint8_t mac[6], char *s)
{
	sprintf(s, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2],
		mac[3], mac[4], mac[5]);
}

static inline void write_sysctl(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY);

	if (fd < 0)
		return;	/* no IPv6 in this kernel: nothing to turn off */
	cr_assert_eq(write(fd, val, strlen(val)), (ssize_t)strlen(val),
		     "write %s: %s", path, strerror(errno));
	close(fd);
}

static inline int raw_socket(void)
{
	struct sockaddr_ll sll = { .sll_family = AF_PACKET,
				   .sll_protocol = htons(ETH_P_ALL),
				   .sll_ifindex = (int)if_nametoindex(ifname) };
	struct timeval tv = { .tv_sec = 0, .tv_usec = 200000 };
	/* Protocol 0: no frame is queued until bind() names the interface
	 * (created with ETH_P_ALL it would take every interface's frames in
	 * between, the loopback's included). */
	int fd = socket(AF_PACKET, SOCK_RAW, 0);

	cr_assert_geq(fd, 0, "raw socket: %s (root needed)", strerror(errno));
	cr_assert_eq(bind(fd, (struct sockaddr *)&sll, sizeof(sll)), 0,
		     "bind to %s: %s", ifname, strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static inline int ping(unsigned count, char *out, size_t outsz)
{
	return run(out, outsz, "ping -c %u -W 1 -I %s " NODE_IP, count,
		   ifname);
}

/* --- the node --- */

static atomic_int call_rc;

static inline void attach0(void *arg)
{
	(void)arg;
	atomic_store(&call_rc, ebb_net_if_attach(nif, 0));
}

static inline void attach_q(void *arg)
{
	unsigned q = (unsigned)(uintptr_t)arg;

	atomic_store(&call_rc, ebb_net_if_attach(nif, q));
}

static inline void detach0(void *arg)
{
	(void)arg;
	atomic_store(&call_rc, ebb_net_if_detach(nif, 0));
}

static inline struct ebb_net_stats stats(void)
{
	struct ebb_net_stats s;

	cr_assert_eq(ebb_net_if_stats(nif, &s), 0);
	return s;
}

static inline void print_stats(const char *when,
			       const struct ebb_net_stats *s)
{
	cr_log_info("%s: rx %lu tx %lu arp_req %lu arp_rep %lu echo %lu | "
		    "short %lu type %lu notus %lu iphdr %lu ipsum %lu "
		    "frag %lu ttl %lu proto %lu icmp %lu arp %lu txfull %lu | "
		    "arp_rcvd %lu arp_sent %lu pend_full %lu pend_drop %lu "
		    "arp_to %lu | udp rx %lu tx %lu badlen %lu badsum %lu "
		    "noport %lu unreach %lu limited %lu noroute %lu",
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
		    (unsigned long)s->drop_tx_full,
		    (unsigned long)s->arp_replies_rcvd,
		    (unsigned long)s->arp_requests_sent,
		    (unsigned long)s->arp_pending_full,
		    (unsigned long)s->arp_pending_dropped,
		    (unsigned long)s->arp_timeouts,
		    (unsigned long)s->udp_rx, (unsigned long)s->udp_tx,
		    (unsigned long)s->udp_bad_len,
		    (unsigned long)s->udp_bad_checksum,
		    (unsigned long)s->udp_no_port,
		    (unsigned long)s->icmp_unreach_sent,
		    (unsigned long)s->icmp_unreach_limited,
		    (unsigned long)s->tx_no_route);
}

/* A node on cores 0-1 with a tap port, the interface on it (not yet
 * attached), and Linux's end of the tap at LINUX_IP/24, IPv6 off so that
 * Linux sends nothing on its own but ARP. */
static inline void net_up(void)
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

static inline void net_attach(void)
{
	atomic_store(&call_rc, 1);
	cr_assert_eq(ebbt_call(1, attach0, NULL), 0);
	cr_assert_eq(atomic_load(&call_rc), 0, "attach: %s",
		     strerror(-atomic_load(&call_rc)));
}

/* Detach, check that every frame was accounted for once and every mbuf
 * came back but at most @held (frames still waiting for an ARP answer,
 * which ebb_net_if_close() frees), then take it all down; the tap must
 * be gone. */
static inline void net_down_held(unsigned held)
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
	       s.drop_proto + s.drop_icmp + s.drop_arp + s.drop_tx_full +
	       s.arp_replies_rcvd + s.udp_rx + s.udp_bad_len +
	       s.udp_bad_checksum + s.icmp_unreach_sent +
	       s.icmp_unreach_limited + s.tcp_rx + s.tcp_bad +
	       s.tcp_bad_checksum;
	cr_assert_eq(s.drop_tx_full, 0, "tap refused %lu frames",
		     (unsigned long)s.drop_tx_full);
	cr_assert_eq(s.rx_frames, ends,
		     "%lu frames received, %lu answered or dropped",
		     (unsigned long)s.rx_frames, (unsigned long)ends);
	cr_assert_eq(s.drop_ttl, 0, "a host accepts any TTL");
	cr_assert_eq(s.udp_no_port, s.icmp_unreach_sent + s.icmp_unreach_limited,
		     "%lu datagrams to closed ports, %lu + %lu ICMP ends",
		     (unsigned long)s.udp_no_port,
		     (unsigned long)s.icmp_unreach_sent,
		     (unsigned long)s.icmp_unreach_limited);
	cr_assert(ebbt_wait_until(
		(avail = rte_mempool_avail_count(ebb_nic_pool(nic))) + held >=
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

static inline void net_down(void)
{
	net_down_held(0);
}

/* --- frames --- */

/* Internet checksum (RFC 1071) of @n bytes, to store big-endian. */
static inline uint16_t csum(const void *p, size_t n)
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

static inline void ip_fix_sum(uint8_t *frame)
{
	struct t_ip *ip = (struct t_ip *)(frame + sizeof(struct t_eth));

	ip->sum = 0;
	ip->sum = htons(csum(ip, (ip->vhl & 0xf) * 4u));
}

/* An echo request from Linux's end to @dst_ip with @optlen bytes of IP
 * options (NOPs then an end) and @paylen bytes of data; returns the frame
 * length. */
static inline size_t build_echo(uint8_t *f, const char *dst_ip,
				 size_t optlen,
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
static inline size_t build_arp(uint8_t *f, const char *tpa)
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

static inline struct t_ip *ip_of(uint8_t *f)
{
	return (struct t_ip *)(f + sizeof(struct t_eth));
}

static inline struct t_icmp *icmp_of(uint8_t *f)
{
	struct t_ip *ip = ip_of(f);

	return (struct t_icmp *)((uint8_t *)ip + (ip->vhl & 0xf) * 4u);
}

static inline struct t_arp *arp_of(uint8_t *f)
{
	return (struct t_arp *)(f + sizeof(struct t_eth));
}

#endif
