/* SPDX-License-Identifier: BSD-3-Clause */
/* Network interfaces: set-up, queues given to cores, the per-core receive
 * handler (Ethernet dispatch, replies sent in one burst), counters. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_malloc.h>

#include "cluster.h"

#include "defs.h"

/* Host-order IPv4 address classes a configuration may not use. */
static bool ip_unusable(uint32_t ip)
{
	/* 0/8 ("this network"), 127/8 (loopback), 224/4 (multicast), 240/4
	 * (class E and the limited broadcast) */
	return (ip >> 24) == 0 || (ip >> 24) == 127 || (ip >> 28) >= 0xe;
}

/* Numbers of the open interfaces (bits): a TCP connection table is named
 * after its node, interface number and queue, and the frontend frees the
 * tables of a node that died by those names. Main thread only. */
static uint32_t slots_used;

static unsigned net_if_slot_take(void)
{
	for (unsigned i = 0; i < 32; i++)
		if (!(slots_used & (1u << i))) {
			slots_used |= 1u << i;
			return i;
		}
	return 31;	/* shared: table names then collide, creation fails */
}

static void net_if_slot_put(unsigned slot)
{
	slots_used &= ~(1u << slot);
}

__rte_cold
struct ebb_net_if *ebb_net_if_open(struct ebb_nic *nic,
				   const struct ebb_net_config *cfg)
{
	uint64_t(*stats)[EBB_NET_STATS_WORDS];
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
	/* Private memory, as everything of a node's own: a cluster node may
	 * be killed, and the shared heap would keep it for good. */
	nif = aligned_alloc(RTE_CACHE_LINE_SIZE,
			    RTE_ALIGN_CEIL(sizeof(*nif), RTE_CACHE_LINE_SIZE));
	if (nif != NULL)
		memset(nif, 0, sizeof(*nif));
	if (nif == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	if (ebb_nic_mac(nic, nif->mac.addr_bytes) != 0) {
		free(nif);
		errno = EINVAL;
		return NULL;
	}
	nif->nic = nic;
	nif->tx_l4_offload = ebb_nic_tx_l4_csum_offload(nic);
	nif->tcp_mss = (uint16_t)(ebb_nic_mtu(nic) - 40u);
	nif->ip = rte_cpu_to_be_32(cfg->ip);
	nif->netmask = rte_cpu_to_be_32(mask);
	nif->gateway = rte_cpu_to_be_32(cfg->gateway);
	/* A /31 (RFC 3021) and a /32 have no broadcast address. */
	if (mask != 0 && ~mask > 1)
		nif->bcast = rte_cpu_to_be_32(cfg->ip | ~mask);
	stats = ebb_cluster_net_claim();
	nif->stats_claimed = stats != NULL;
	for (unsigned i = 0; i < EBB_MAX_CORES; i++) {
		nif->q[i].nif = nif;
		nif->q[i].id = (uint16_t)i;
		nif->q[i].stp = stats ? (struct ebb_net_stats *)stats[i] :
					&nif->q[i].st;
		nif->core_q[i] = NET_NO_QUEUE;
	}
	rte_spinlock_init(&nif->arp_lock);
	for (unsigned i = 0; i < ARP_SLOTS; i++)
		rte_seqcount_init(&nif->arp[i].sc);
	ebb_timer_init(&nif->arp_timer, net_arp_tick, &nif->q[0]);
	rte_spinlock_init(&nif->udp_lock);
	rte_spinlock_init(&nif->tcp_lock);
	net_tcp_if_init(nif);
	nif->slot = net_if_slot_take();
	return nif;
}

__rte_cold
void ebb_net_if_close(struct ebb_net_if *nif)
{
	if (nif == NULL)
		return;
	net_arp_flush(nif);
	for (unsigned i = 0; i < EBB_MAX_CORES; i++) {
		struct rte_ring *r = nif->q[i].handoff;
		struct rte_mbuf *m = NULL;

		if (r == NULL)
			continue;
		while (rte_ring_sc_dequeue(r, (void **)&m) == 0)
			rte_pktmbuf_free(m);
		free(r);
	}
	net_udp_free_all(nif);
	net_tcp_free_all(nif);
	if (nif->stats_claimed)
		ebb_cluster_net_release();
	net_if_slot_put(nif->slot);
	free(nif);
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
	uint64_t arp = 0, echo = 0, unreach = 0;

	RTE_ASSERT(n <= NET_BURST);
	for (uint16_t i = 0; i < n; i++) {
		enum net_verdict v = ether_input(q, pkts[i]);

		if (v == NET_DROP) {
			drop[ndrop++] = pkts[i];
		} else if (v == NET_CONSUMED) {
			continue;
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
		unreach += kind[i] == NET_UNREACH;
	}
	STAT_ADD(q, tx_frames, sent);
	STAT_ADD(q, arp_replies_sent, arp);
	STAT_ADD(q, icmp_echo_replies, echo);
	STAT_ADD(q, icmp_unreach_sent, unreach);
	if (sent < ntx) {
		STAT_ADD(q, drop_tx_full, ntx - sent);
		rte_pktmbuf_free_bulk(&tx[sent], ntx - sent);
	}
}

/* The nic's receive handler (ebb_nic_rx_fn) on the queue's owning core. */
static void net_rx(void *arg, struct rte_mbuf **pkts, uint16_t n)
{
	struct net_queue *q = arg;

	/* Frames other cores resolved for this queue go first: they have
	 * waited longest. */
	if (q->handoff != NULL && !rte_ring_empty(q->handoff))
		(void)net_handoff_drain(q);
	net_tcp_burst_begin(q);
	/* nic.h promises at most 32; stay correct if that grows. */
	while (n > 0) {
		uint16_t k = (uint16_t)RTE_MIN(n, NET_BURST);

		rx_burst(q, pkts, k);
		pkts += k;
		n = (uint16_t)(n - k);
	}
	net_tcp_burst_end(q);
}

struct net_queue *net_my_queue(struct ebb_net_if *nif)
{
	unsigned c = ebb_core_id();
	uint8_t qi;

	if (c >= EBB_MAX_CORES)
		return NULL;
	qi = nif->core_q[c];
	return qi == NET_NO_QUEUE ? NULL : &nif->q[qi];
}

__rte_cold
int ebb_net_if_attach(struct ebb_net_if *nif, unsigned queue)
{
	unsigned core = ebb_core_id();
	struct net_queue *q;
	int rc;

	if (core == EBB_CORE_NONE)
		return -EPERM;
	if (nif == NULL || queue >= EBB_MAX_CORES)
		return -EINVAL;
	q = &nif->q[queue];
	if (q->handoff == NULL) {
		char name[RTE_RING_NAMESIZE];

		snprintf(name, sizeof(name), "neth%" PRIxPTR "_%u",
			 (uintptr_t)nif, queue);
		/* Any core may hand frames over; only the owner takes. A
		 * ring in private memory, not a named one in the shared
		 * heap. */
		ssize_t sz = rte_ring_get_memsize(NET_HANDOFF_SIZE);
		struct rte_ring *r = sz < 0 ? NULL :
				     aligned_alloc(RTE_CACHE_LINE_SIZE,
						   RTE_ALIGN_CEIL((size_t)sz,
							  RTE_CACHE_LINE_SIZE));

		if (r == NULL || rte_ring_init(r, name, NET_HANDOFF_SIZE,
					       RING_F_SC_DEQ) != 0) {
			free(r);
			return -ENOMEM;
		}
		q->handoff = r;
	}
	if (q->tcp == NULL && net_tcp_queue_init(q) != 0)
		return -ENOMEM;
	rc = ebb_nic_attach(nif->nic, queue, net_rx, q);
	if (rc)
		return rc;
	nif->tcp_started = true;
	q->core = core;
	if (nif->core_q[core] == NET_NO_QUEUE)
		nif->core_q[core] = (uint8_t)queue;
	/* Publishes core and handoff to cores that resolve for this queue
	 * (pairs with the acquire loads in arp.c). */
	__atomic_store_n(&q->attached, true, __ATOMIC_RELEASE);
	if (queue == 0) {
		/* Tell the segment where our ip is now; best effort,
		 * counted. */
		(void)net_arp_announce(q);
		/* Resolutions started before queue 0 was attached. */
		for (unsigned i = 0; i < ARP_SLOTS; i++)
			if (nif->arp[i].state == ARP_INCOMPLETE) {
				net_arp_timer_need(nif);
				break;
			}
	}
	return 0;
}

__rte_cold
int ebb_net_if_detach(struct ebb_net_if *nif, unsigned queue)
{
	unsigned core = ebb_core_id();
	struct net_queue *q;
	int rc;

	if (core == EBB_CORE_NONE)
		return -EPERM;
	if (nif == NULL || queue >= EBB_MAX_CORES)
		return -EINVAL;
	if (nif->q[queue].attached && nif->q[queue].core == core)
		net_tcp_queue_detach(&nif->q[queue]);
	rc = ebb_nic_detach(nif->nic, queue);
	if (rc)
		return rc;
	q = &nif->q[queue];
	if (queue == 0) {
		if (ebb_timer_pending(&nif->arp_timer))
			(void)ebb_timer_cancel(&nif->arp_timer);
		__atomic_store_n(&nif->arp_timer_on, false, __ATOMIC_RELEASE);
	}
	__atomic_store_n(&q->attached, false, __ATOMIC_RELEASE);
	if (nif->core_q[core] == queue) {
		nif->core_q[core] = NET_NO_QUEUE;
		/* Another queue this core still owns takes over sends. */
		for (unsigned i = 0; i < EBB_MAX_CORES; i++) {
			if (nif->q[i].core == core &&
			    __atomic_load_n(&nif->q[i].attached,
					    __ATOMIC_RELAXED)) {
				nif->core_q[core] = (uint8_t)i;
				break;
			}
		}
	}
	/* Frames handed over before the store above: freed, counted. */
	(void)net_handoff_drain(q);
	return 0;
}

__rte_cold
int ebb_net_if_stats(const struct ebb_net_if *nif, struct ebb_net_stats *out)
{
	if (nif == NULL || out == NULL)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	for (unsigned i = 0; i < EBB_MAX_CORES; i++) {
		const struct ebb_net_stats *s = nif->q[i].stp;

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
		SUM(arp_replies_rcvd);
		SUM(arp_requests_sent);
		SUM(arp_pending_full);
		SUM(arp_pending_dropped);
		SUM(arp_timeouts);
		SUM(udp_rx);
		SUM(udp_tx);
		SUM(udp_bad_len);
		SUM(udp_bad_checksum);
		SUM(udp_no_port);
		SUM(icmp_unreach_sent);
		SUM(icmp_unreach_limited);
		SUM(tx_no_route);
		SUM(rx_csum_by_device);
		SUM(tcp_rx);
		SUM(tcp_bad);
		SUM(tcp_bad_checksum);
		SUM(tcp_tx);
		SUM(tcp_rst_sent);
		SUM(tcp_rst_rcvd);
		SUM(tcp_accepted);
		SUM(tcp_connected);
		SUM(tcp_no_listener);
		SUM(tcp_conns_full);
		SUM(tcp_backlog_full);
		SUM(tcp_retransmits);
		SUM(tcp_fast_retransmits);
		SUM(tcp_timeouts);
		SUM(tcp_challenge_acks);
		SUM(tcp_ooo);
		SUM(tcp_dropped);
		SUM(tcp_aborted);
#undef SUM
	}
	return 0;
}
