/* SPDX-License-Identifier: BSD-3-Clause */
/* IPv4 input (RFC 791, RFC 1122 3.2.1), ICMP echo (RFC 792): requests to
 * our address become replies in the mbuf they came in; ICMP port
 * unreachable, rate limited, built in the datagram that caused it. */
#include <string.h>

#include <rte_icmp.h>
#include <rte_ip.h>

#include "defs.h"

#define IPV4_MIN_HDR ((uint32_t)sizeof(struct rte_ipv4_hdr))
#define ICMP_HDR_LEN ((uint32_t)sizeof(struct rte_icmp_hdr))

/* ICMP type 3 (DPDK 22.11 names only echo's types). */
#define ICMP_DEST_UNREACH 3

static_assert(sizeof(struct rte_ipv4_hdr) == 20, "IPv4 header");
static_assert(sizeof(struct rte_icmp_hdr) == 8, "ICMP echo header");

/* Whether no host may answer @src (RFC 1122 3.2.1.3): 0/8, loopback,
 * multicast, class E and the limited broadcast, the subnet broadcast, or
 * our own address (a reflection or a spoof). */
static bool ipv4_bad_source(const struct ebb_net_if *nif, rte_be32_t src)
{
	uint32_t a = rte_be_to_cpu_32(src);

	return (a >> 24) == 0 || (a >> 24) == 127 || (a >> 28) >= 0xe ||
	       (nif->bcast != 0 && src == nif->bcast) || src == nif->ip;
}

/* ICMP in @m at @off, @len bytes (IP total length minus the header): an
 * echo request becomes the reply's ICMP part. */
static enum net_verdict icmp_input(struct net_queue *q, struct rte_mbuf *m,
				   uint32_t off, uint32_t len)
{
	struct rte_icmp_hdr *icmp;
	uint16_t sum;

	if (len < ICMP_HDR_LEN) {
		STAT_ADD(q, drop_icmp, 1);
		return NET_DROP;
	}
	if (net_short(m, off + ICMP_HDR_LEN)) {
		STAT_ADD(q, drop_short, 1);
		return NET_DROP;
	}
	/* Over the whole message, payload included, checksum field and
	 * all: a valid one sums to 0xffff. The IP layer has checked that
	 * @len bytes are there. */
	if (net_raw_cksum_mbuf(m, off, len) != 0xffff) {
		STAT_ADD(q, drop_icmp, 1);
		return NET_DROP;
	}
	icmp = rte_pktmbuf_mtod_offset(m, struct rte_icmp_hdr *, off);
	if (icmp->icmp_type != RTE_IP_ICMP_ECHO_REQUEST) {
		STAT_ADD(q, drop_icmp, 1);
		return NET_DROP;
	}
	/* Identifier, sequence number and data go back as they came. */
	icmp->icmp_type = RTE_IP_ICMP_ECHO_REPLY;
	icmp->icmp_code = 0;
	icmp->icmp_cksum = 0;
	sum = net_raw_cksum_mbuf(m, off, len);
	icmp->icmp_cksum = (rte_be16_t)~sum;
	return NET_ECHO_REPLY;
}

enum net_verdict net_ipv4_input(struct net_queue *q, struct rte_mbuf *m)
{
	const uint32_t l3 = RTE_ETHER_HDR_LEN;
	struct ebb_net_if *nif = q->nif;
	struct rte_ether_hdr *eth;
	struct rte_ipv4_hdr *ip;
	uint32_t hlen, tot;
	rte_be32_t src;
	enum net_verdict v;

	if (net_short(m, l3 + IPV4_MIN_HDR)) {
		STAT_ADD(q, drop_short, 1);
		return NET_DROP;
	}
	eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	ip = (struct rte_ipv4_hdr *)(eth + 1);
	hlen = (uint32_t)(ip->version_ihl & RTE_IPV4_HDR_IHL_MASK) *
	       RTE_IPV4_IHL_MULTIPLIER;
	if ((ip->version_ihl >> 4) != 4 || hlen < IPV4_MIN_HDR) {
		STAT_ADD(q, drop_ip_header, 1);
		return NET_DROP;
	}
	tot = rte_be_to_cpu_16(ip->total_length);
	if (tot < hlen) {
		STAT_ADD(q, drop_ip_header, 1);
		return NET_DROP;
	}
	/* Past the datagram's end is Ethernet padding; short of it, the
	 * datagram was cut. */
	if (rte_pktmbuf_pkt_len(m) < l3 + tot || net_short(m, l3 + hlen)) {
		STAT_ADD(q, drop_short, 1);
		return NET_DROP;
	}
	/* The device's verdict when it gave one (rx checksum offload);
	 * otherwise, summed with its checksum field, a valid header gives
	 * 0xffff, whose complement rte_ipv4_cksum() returns: 0. Options
	 * included (it sums IHL words). */
	if ((m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK) ==
	    RTE_MBUF_F_RX_IP_CKSUM_GOOD)
		STAT_ADD(q, rx_csum_by_device, 1);
	if ((m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK) ==
		    RTE_MBUF_F_RX_IP_CKSUM_BAD ||
	    ((m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK) !=
		     RTE_MBUF_F_RX_IP_CKSUM_GOOD &&
	     rte_ipv4_cksum(ip) != 0)) {
		STAT_ADD(q, drop_ip_checksum, 1);
		return NET_DROP;
	}
	if ((ip->fragment_offset &
	     RTE_BE16(RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK)) != 0) {
		STAT_ADD(q, drop_ip_fragment, 1);
		return NET_DROP;
	}
	if (ip->dst_addr != nif->ip) {
		STAT_ADD(q, drop_not_for_us, 1);
		return NET_DROP;
	}
	src = ip->src_addr;
	if (ipv4_bad_source(nif, src)) {
		STAT_ADD(q, drop_ip_header, 1);
		return NET_DROP;
	}
	if (ip->next_proto_id == IPPROTO_UDP)
		return net_udp_input(q, m, l3 + hlen, tot - hlen);
	if (ip->next_proto_id == IPPROTO_TCP)
		return net_tcp_input(q, m, l3 + hlen, tot - hlen);
	if (ip->next_proto_id != IPPROTO_ICMP) {
		STAT_ADD(q, drop_proto, 1);
		return NET_DROP;
	}
	v = icmp_input(q, m, l3 + hlen, tot - hlen);
	if (v == NET_DROP)
		return v;

	/* The reply's IP header. Options are not reflected: RFC 1122
	 * 3.2.2.6 would have Record Route and Timestamp updated and a
	 * source route reversed, which this stack does not do; sending
	 * none is the safe subset. Slide the Ethernet and fixed IP headers
	 * over the options and drop the bytes they leave behind. */
	if (hlen > IPV4_MIN_HDR) {
		uint16_t cut = (uint16_t)(hlen - IPV4_MIN_HDR);

		memmove(rte_pktmbuf_mtod_offset(m, char *, cut), eth,
			l3 + IPV4_MIN_HDR);
		eth = (struct rte_ether_hdr *)rte_pktmbuf_adj(m, cut);
		ip = (struct rte_ipv4_hdr *)(eth + 1);
		tot -= cut;
		ip->version_ihl = RTE_IPV4_VHL_DEF;
		ip->total_length = rte_cpu_to_be_16((uint16_t)tot);
	}
	ip->src_addr = nif->ip;
	ip->dst_addr = src;
	/* A new datagram (RFC 1122 3.2.1.7: not the request's TTL); the
	 * identification stays, which is unique enough unfragmented. */
	ip->time_to_live = NET_IP_TTL;
	ip->fragment_offset = 0;
	ip->hdr_checksum = 0;
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	/* To the station the request came from, whatever group address it
	 * was sent to. */
	rte_ether_addr_copy(&eth->src_addr, &eth->dst_addr);
	rte_ether_addr_copy(&nif->mac, &eth->src_addr);
	net_trim(m, l3 + tot);
	return NET_ECHO_REPLY;
}

/* Whether the queue's token bucket has an ICMP error left; takes it. */
static bool icmp_rate_ok(struct net_queue *q)
{
	uint64_t now = ebb_time_ns();
	uint64_t credit = q->icmp_credit_ns + (now - q->icmp_last_ns);

	q->icmp_last_ns = now;
	if (credit > NET_ICMP_BURST_NS)
		credit = NET_ICMP_BURST_NS;
	if (credit < NET_ICMP_COST_NS) {
		q->icmp_credit_ns = credit;
		return false;
	}
	q->icmp_credit_ns = credit - NET_ICMP_COST_NS;
	return true;
}

enum net_verdict net_icmp_unreach(struct net_queue *q, struct rte_mbuf *m,
				  uint32_t hlen)
{
	/* What RFC 792 quotes: the datagram's header and its first 8
	 * bytes (the UDP header), checked present by the caller. */
	const uint32_t quote = hlen + 8;
	const uint16_t grow = (uint16_t)(IPV4_MIN_HDR + ICMP_HDR_LEN);
	const uint32_t tot = IPV4_MIN_HDR + ICMP_HDR_LEN + quote;
	struct rte_ether_addr to;
	struct rte_ether_hdr *eth;
	struct rte_ipv4_hdr *ip;
	struct rte_icmp_hdr *icmp;
	rte_be32_t src;

	if (!icmp_rate_ok(q)) {
		STAT_ADD(q, icmp_unreach_limited, 1);
		return NET_DROP;
	}
	eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	rte_ether_addr_copy(&eth->src_addr, &to);
	src = ((struct rte_ipv4_hdr *)(eth + 1))->src_addr;
	/* New Ethernet, IP and ICMP headers in the headroom: the quoted
	 * header stays where it is. */
	eth = (struct rte_ether_hdr *)rte_pktmbuf_prepend(m, grow);
	if (eth == NULL) {
		STAT_ADD(q, drop_tx_full, 1);
		return NET_DROP;
	}
	rte_ether_addr_copy(&to, &eth->dst_addr);
	rte_ether_addr_copy(&q->nif->mac, &eth->src_addr);
	eth->ether_type = RTE_BE16(RTE_ETHER_TYPE_IPV4);
	ip = (struct rte_ipv4_hdr *)(eth + 1);
	memset(ip, 0, sizeof(*ip));
	ip->version_ihl = RTE_IPV4_VHL_DEF;
	ip->total_length = rte_cpu_to_be_16((uint16_t)tot);
	ip->packet_id = rte_cpu_to_be_16(q->ip_id++);
	ip->time_to_live = NET_IP_TTL;
	ip->next_proto_id = IPPROTO_ICMP;
	ip->src_addr = q->nif->ip;
	ip->dst_addr = src;
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	icmp = (struct rte_icmp_hdr *)(ip + 1);
	icmp->icmp_type = ICMP_DEST_UNREACH;
	icmp->icmp_code = 3;	/* port unreachable */
	icmp->icmp_cksum = 0;
	icmp->icmp_ident = 0;	/* unused: zero */
	icmp->icmp_seq_nb = 0;
	icmp->icmp_cksum = (rte_be16_t)~rte_raw_cksum(icmp,
						       ICMP_HDR_LEN + quote);
	net_trim(m, RTE_ETHER_HDR_LEN + tot);
	m->ol_flags &= ~RTE_MBUF_F_TX_OFFLOAD_MASK;
	return NET_UNREACH;
}
