/* SPDX-License-Identifier: BSD-3-Clause */
/* Network interfaces: set-up, queues given to cores, the per-core receive
 * handler (Ethernet dispatch, replies sent in one burst), counters. */
#include <errno.h>
#include <string.h>

#include <rte_malloc.h>

#include "defs.h"

/* Host-order IPv4 address classes a configuration may not use. */
static bool ip_unusable(uint32_t ip)
{
	/* 0/8 ("this network"), 127/8 (loopback), 224/4 (multicast), 240/4
	 * (class E and the limited broadcast) */
	return (ip >> 24) == 0 || (ip >> 24) == 127 || (ip >> 28) >= 0xe;
}

__rte_cold
struct ebb_net_if *ebb_net_if_open(struct ebb_nic *nic,
				   const struct ebb_net_config *cfg)
{
	struct ebb_net_if *nif;
	uint32_t mask;

	if (nic == NULL || cfg == NULL || ip_unusable(cfg->ip)) {
		errno = EINVAL;
		return NULL;
	}
	mask = cfg->netmask;
	/* A contiguous mask is ones then zeros: its complement is a run of
	 * low ones, which shares no bit with itself plus one. */
	if (mask != 0 && ((~mask + 1) & ~mask) != 0) {
		errno = EINVAL;
		return NULL;
	}
	/* Under /31 (RFC 3021) the all-zeros and all-ones hosts name the
	 * subnet and its broadcast, not a station. */
	if (mask != 0 && ~mask > 1 &&
	    ((cfg->ip & ~mask) == 0 || (cfg->ip & ~mask) == ~mask)) {
		errno = EINVAL;
		return NULL;
	}
	if (cfg->gateway != 0 &&
	    (ip_unusable(cfg->gateway) || cfg->gateway == cfg->ip ||
	     (mask != 0 && (cfg->gateway & mask) != (cfg->ip & mask)))) {
		errno = EINVAL;
		return NULL;
	}
	nif = rte_zmalloc("ebb_net_if", sizeof(*nif), RTE_CACHE_LINE_SIZE);
	if (nif == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	if (ebb_nic_mac(nic, nif->mac.addr_bytes) != 0) {
		rte_free(nif);
		errno = EINVAL;
		return NULL;
	}
	nif->nic = nic;
	nif->ip = rte_cpu_to_be_32(cfg->ip);
	nif->netmask = rte_cpu_to_be_32(mask);
	nif->gateway = rte_cpu_to_be_32(cfg->gateway);
	/* A /31 (RFC 3021) and a /32 have no broadcast address. */
	if (mask != 0 && ~mask > 1)
		nif->bcast = rte_cpu_to_be_32(cfg->ip | ~mask);
	for (unsigned i = 0; i < EBB_MAX_CORES; i++) {
		nif->q[i].nif = nif;
		nif->q[i].id = (uint16_t)i;
	}
	return nif;
}

__rte_cold
void ebb_net_if_close(struct ebb_net_if *nif)
{
	rte_free(nif);
}

/* Ethernet: is the frame for us, and which layer takes it. */
static enum net_verdict ether_input(struct net_queue *q, struct rte_mbuf *m)
{
	const struct rte_ether_hdr *eth;

	if (net_short(m, RTE_ETHER_HDR_LEN)) {
		STAT_ADD(q, drop_short, 1);
		return NET_DROP;
	}
	eth = rte_pktmbuf_mtod(m, const struct rte_ether_hdr *);
	/* A group source is never a station's own address: answering it
	 * would reach every member of the group. */
	if ((!rte_is_same_ether_addr(&eth->dst_addr, &q->nif->mac) &&
	     !rte_is_broadcast_ether_addr(&eth->dst_addr)) ||
	    rte_is_multicast_ether_addr(&eth->src_addr)) {
		STAT_ADD(q, drop_not_for_us, 1);
		return NET_DROP;
	}
	switch (eth->ether_type) {
	case RTE_BE16(RTE_ETHER_TYPE_IPV4):
		return net_ipv4_input(q, m);
	case RTE_BE16(RTE_ETHER_TYPE_ARP):
		return net_arp_input(q, m);
	default:
		STAT_ADD(q, drop_ethertype, 1);
		return NET_DROP;
	}
}

/* Up to NET_BURST frames: answer in place, send the answers in one burst,
 * free the rest. */
static void rx_burst(struct net_queue *q, struct rte_mbuf **pkts, uint16_t n)
{
	struct rte_mbuf *tx[NET_BURST], *drop[NET_BURST];
	uint8_t kind[NET_BURST];
	uint16_t ntx = 0, ndrop = 0, sent;
	uint64_t arp = 0, echo = 0;

	RTE_ASSERT(n <= NET_BURST);
	for (uint16_t i = 0; i < n; i++) {
		enum net_verdict v = ether_input(q, pkts[i]);

		if (v == NET_DROP) {
			drop[ndrop++] = pkts[i];
		} else {
			kind[ntx] = (uint8_t)v;
			tx[ntx++] = pkts[i];
		}
	}
	STAT_ADD(q, rx_frames, n);
	if (ndrop != 0)
		rte_pktmbuf_free_bulk(drop, ndrop);
	if (ntx == 0)
		return;
	sent = ebb_nic_tx(q->nif->nic, q->id, tx, ntx);
	/* Replies count as sent only once the nic has them. */
	for (uint16_t i = 0; i < sent; i++) {
		arp += kind[i] == NET_ARP_REPLY;
		echo += kind[i] == NET_ECHO_REPLY;
	}
	STAT_ADD(q, tx_frames, sent);
	STAT_ADD(q, arp_replies_sent, arp);
	STAT_ADD(q, icmp_echo_replies, echo);
	if (sent < ntx) {
		STAT_ADD(q, drop_tx_full, ntx - sent);
		rte_pktmbuf_free_bulk(&tx[sent], ntx - sent);
	}
}

/* The nic's receive handler (ebb_nic_rx_fn) on the queue's owning core. */
static void net_rx(void *arg, struct rte_mbuf **pkts, uint16_t n)
{
	struct net_queue *q = arg;

	/* nic.h promises at most 32; stay correct if that grows. */
	while (n > 0) {
		uint16_t k = (uint16_t)RTE_MIN(n, NET_BURST);

		rx_burst(q, pkts, k);
		pkts += k;
		n = (uint16_t)(n - k);
	}
}

__rte_cold
int ebb_net_if_attach(struct ebb_net_if *nif, unsigned queue)
{
	int rc;

	if (ebb_core_id() == EBB_CORE_NONE)
		return -EPERM;
	if (nif == NULL || queue >= EBB_MAX_CORES)
		return -EINVAL;
	rc = ebb_nic_attach(nif->nic, queue, net_rx, &nif->q[queue]);
	if (rc)
		return rc;
	/* Tell the segment where our ip is now; best effort, counted. */
	if (queue == 0)
		(void)net_arp_announce(&nif->q[0]);
	return 0;
}

__rte_cold
int ebb_net_if_detach(struct ebb_net_if *nif, unsigned queue)
{
	if (ebb_core_id() == EBB_CORE_NONE)
		return -EPERM;
	if (nif == NULL || queue >= EBB_MAX_CORES)
		return -EINVAL;
	return ebb_nic_detach(nif->nic, queue);
}

__rte_cold
int ebb_net_if_stats(const struct ebb_net_if *nif, struct ebb_net_stats *out)
{
	if (nif == NULL || out == NULL)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	for (unsigned i = 0; i < EBB_MAX_CORES; i++) {
		const struct ebb_net_stats *s = &nif->q[i].st;

#define SUM(f) out->f += __atomic_load_n(&s->f, __ATOMIC_RELAXED)
		SUM(rx_frames);
		SUM(tx_frames);
		SUM(arp_requests);
		SUM(arp_replies_sent);
		SUM(icmp_echo_replies);
		SUM(drop_short);
		SUM(drop_ethertype);
		SUM(drop_not_for_us);
		SUM(drop_ip_header);
		SUM(drop_ip_checksum);
		SUM(drop_ip_fragment);
		SUM(drop_ttl);
		SUM(drop_proto);
		SUM(drop_icmp);
		SUM(drop_arp);
		SUM(drop_tx_full);
#undef SUM
	}
	return 0;
}
