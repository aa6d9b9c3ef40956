/* SPDX-License-Identifier: BSD-3-Clause */
/* Private state of the network stack: the interface, its per-core queue
 * state, and the input functions of each layer. Not installed. */
#ifndef EBBRT_NET_DEFS_H
#define EBBRT_NET_DEFS_H

#include <stdalign.h>
#include <stdbool.h>
#include <stdint.h>

#include <rte_byteorder.h>
#include <rte_common.h>
#include <rte_ether.h>
#include <rte_mbuf.h>

#include <ebbrt/ebbrt.h>
#include <ebbrt/net.h>
#include <ebbrt/nic.h>

/* Frames handled per step of the receive handler (ebb_nic_rx_fn passes at
 * most 32 at a time). */
#define NET_BURST 32u

/* TTL of the datagrams we send (Linux's default, RFC 1700). */
#define NET_IP_TTL 64

/* State of one rx/tx queue pair: written only by the core that owns the
 * queue, so counters need no atomic read-modify-write. */
struct net_queue {
	struct ebb_net_if *nif;
	uint16_t id;
	/* counters: owner writes (STAT_ADD), anyone reads (relaxed) */
	struct ebb_net_stats st;
} __rte_cache_aligned;

static_assert(sizeof(struct net_queue) % RTE_CACHE_LINE_SIZE == 0,
	      "per-core queue state must not share a cache line");
static_assert(alignof(struct net_queue) == RTE_CACHE_LINE_SIZE,
	      "per-core queue state must be cache aligned");

struct ebb_net_if {
	struct ebb_nic *nic;
	struct rte_ether_addr mac;
	/* Addresses in network byte order, as frames carry them. */
	rte_be32_t ip;
	rte_be32_t netmask;
	rte_be32_t gateway;
	/* Subnet broadcast (ip | ~netmask); 0 without a netmask and for
	 * /31 and /32, which have none. */
	rte_be32_t bcast;
	/* One per queue a nic may have (ebb_nic_open() allows at most
	 * EBB_MAX_CORES). */
	struct net_queue q[EBB_MAX_CORES];
};

/* A single writer (the owning core) and readers on other threads: a plain
 * add, stored whole so no reader sees a torn value. */
#define STAT_ADD(q, f, n)                                                   \
	__atomic_store_n(&(q)->st.f, (q)->st.f + (n), __ATOMIC_RELAXED)

/* What an input function made of a frame. On NET_DROP it has counted the
 * reason and the caller frees the frame; otherwise the frame has become a
 * reply of that kind, to send on the queue it came from. */
enum net_verdict {
	NET_DROP = 0,
	NET_ARP_REPLY,
	NET_ECHO_REPLY,
};

/* Layer inputs: @m starts with an Ethernet header of the ethertype the
 * function handles, already checked to be addressed to us. Owning core. */
enum net_verdict net_arp_input(struct net_queue *q, struct rte_mbuf *m);
enum net_verdict net_ipv4_input(struct net_queue *q, struct rte_mbuf *m);

/* Send one gratuitous ARP on queue @q (owning core), counted in tx_frames
 * or drop_tx_full. Returns 0 or -ENOMEM (no mbuf). */
int net_arp_announce(struct net_queue *q);

/* The frame is too short for its headers at @len bytes: shorter in all,
 * or (multi-segment) not all in the first segment, where the layers read
 * them in place. */
static inline bool net_short(const struct rte_mbuf *m, uint32_t len)
{
	return rte_pktmbuf_data_len(m) < len;
}

/* Cut the frame to @len bytes (Ethernet padding, trailing junk): a reply
 * carries only what it means to. Kept whole when the excess spans
 * segments (rte_pktmbuf_trim() cuts the last one only). */
static inline void net_trim(struct rte_mbuf *m, uint32_t len)
{
	uint32_t excess = rte_pktmbuf_pkt_len(m) - len;

	if (rte_pktmbuf_pkt_len(m) > len && excess <= UINT16_MAX)
		(void)rte_pktmbuf_trim(m, (uint16_t)excess);
}

#endif
