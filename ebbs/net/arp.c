/* SPDX-License-Identifier: BSD-3-Clause */
/* ARP (RFC 826) for Ethernet and IPv4: requests for our address are
 * answered in the mbuf they came in; announcements (RFC 5227). */
#include <errno.h>
#include <string.h>

#include <rte_arp.h>

#include "defs.h"

/* The fixed part of an ARP header, before the addresses: enough to read
 * the types and sizes that say how long the rest is. */
#define ARP_FIXED_LEN 8u
#define ARP_LEN ((uint32_t)sizeof(struct rte_arp_hdr))

static_assert(sizeof(struct rte_arp_hdr) == 28, "ARP for Ethernet/IPv4");
static_assert(offsetof(struct rte_arp_hdr, arp_data) == ARP_FIXED_LEN,
	      "fixed ARP header");

enum net_verdict net_arp_input(struct net_queue *q, struct rte_mbuf *m)
{
	struct ebb_net_if *nif = q->nif;
	struct rte_ether_hdr *eth;
	struct rte_arp_hdr *arp;
	struct rte_ether_addr sha;
	rte_be32_t sip;

	if (net_short(m, RTE_ETHER_HDR_LEN + ARP_FIXED_LEN)) {
		STAT_ADD(q, drop_short, 1);
		return NET_DROP;
	}
	eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	arp = (struct rte_arp_hdr *)(eth + 1);
	/* Sizes first: they fix where the addresses are, and only the
	 * Ethernet/IPv4 layout is understood. */
	if (arp->arp_hardware != RTE_BE16(RTE_ARP_HRD_ETHER) ||
	    arp->arp_protocol != RTE_BE16(RTE_ETHER_TYPE_IPV4) ||
	    arp->arp_hlen != RTE_ETHER_ADDR_LEN || arp->arp_plen != 4) {
		STAT_ADD(q, drop_arp, 1);
		return NET_DROP;
	}
	if (net_short(m, RTE_ETHER_HDR_LEN + ARP_LEN)) {
		STAT_ADD(q, drop_short, 1);
		return NET_DROP;
	}
	/* Copies: the packed header's fields may sit unaligned. */
	memcpy(&sha, &arp->arp_data.arp_sha, sizeof(sha));
	sip = arp->arp_data.arp_sip;
	if (arp->arp_opcode != RTE_BE16(RTE_ARP_OP_REQUEST) ||
	    rte_is_multicast_ether_addr(&sha)) {
		STAT_ADD(q, drop_arp, 1);
		return NET_DROP;
	}
	if (arp->arp_data.arp_tip != nif->ip) {
		STAT_ADD(q, drop_not_for_us, 1);
		return NET_DROP;
	}
	STAT_ADD(q, arp_requests, 1);

	/* The reply, in place: to the asker, from us. A probe (RFC 5227:
	 * sender ip 0) is answered the same way, which is how a host
	 * defends its address. */
	arp->arp_opcode = RTE_BE16(RTE_ARP_OP_REPLY);
	memcpy(&arp->arp_data.arp_tha, &sha, sizeof(sha));
	arp->arp_data.arp_tip = sip;
	memcpy(&arp->arp_data.arp_sha, &nif->mac, sizeof(nif->mac));
	arp->arp_data.arp_sip = nif->ip;
	rte_ether_addr_copy(&sha, &eth->dst_addr);
	rte_ether_addr_copy(&nif->mac, &eth->src_addr);
	net_trim(m, RTE_ETHER_HDR_LEN + ARP_LEN);
	return NET_ARP_REPLY;
}

__rte_cold
int net_arp_announce(struct net_queue *q)
{
	struct ebb_net_if *nif = q->nif;
	struct rte_mempool *pool = ebb_nic_pool(nif->nic);
	struct rte_ether_hdr *eth;
	struct rte_arp_hdr *arp;
	struct rte_mbuf *m;

	/* A port whose pool another process owns may give us none. */
	m = pool != NULL ? rte_pktmbuf_alloc(pool) : NULL;
	if (m == NULL)
		goto nomem;
	eth = (struct rte_ether_hdr *)rte_pktmbuf_append(
		m, RTE_ETHER_HDR_LEN + ARP_LEN);
	if (eth == NULL) {
		rte_pktmbuf_free(m);
		goto nomem;
	}
	memset(eth, 0xff, sizeof(eth->dst_addr));
	rte_ether_addr_copy(&nif->mac, &eth->src_addr);
	eth->ether_type = RTE_BE16(RTE_ETHER_TYPE_ARP);
	arp = (struct rte_arp_hdr *)(eth + 1);
	arp->arp_hardware = RTE_BE16(RTE_ARP_HRD_ETHER);
	arp->arp_protocol = RTE_BE16(RTE_ETHER_TYPE_IPV4);
	arp->arp_hlen = RTE_ETHER_ADDR_LEN;
	arp->arp_plen = 4;
	/* An announcement is a request for our own ip with a zero target
	 * MAC (RFC 5227 2.3): every host that has us cached updates. */
	arp->arp_opcode = RTE_BE16(RTE_ARP_OP_REQUEST);
	memcpy(&arp->arp_data.arp_sha, &nif->mac, sizeof(nif->mac));
	arp->arp_data.arp_sip = nif->ip;
	memset(&arp->arp_data.arp_tha, 0, sizeof(arp->arp_data.arp_tha));
	arp->arp_data.arp_tip = nif->ip;
	if (ebb_nic_tx(nif->nic, q->id, &m, 1) != 1) {
		rte_pktmbuf_free(m);
		STAT_ADD(q, drop_tx_full, 1);
		return 0;
	}
	STAT_ADD(q, tx_frames, 1);
	return 0;
nomem:
	/* Counted where a reply the nic could not send goes: it is one
	 * frame of ours that did not leave. */
	STAT_ADD(q, drop_tx_full, 1);
	return -ENOMEM;
}
