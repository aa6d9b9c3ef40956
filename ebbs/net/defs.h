/* SPDX-License-Identifier: BSD-3-Clause */
/* Private state of the network stack: the interface, its per-core queue
 * state, the ARP cache, the UDP port table, and the functions of each
 * layer. Not installed. */
#ifndef EBBRT_NET_DEFS_H
#define EBBRT_NET_DEFS_H

#include <stdalign.h>
#include <stdbool.h>
#include <stdint.h>

#include <rte_byteorder.h>
#include <rte_common.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_seqcount.h>
#include <rte_spinlock.h>
#include <rte_udp.h>

#include <ebbrt/ebbrt.h>
#include <ebbrt/net.h>
#include <ebbrt/tcp.h>

#include <ebbrt/nic.h>

#include "cluster.h"

/* Frames handled per step of the receive handler (ebb_nic_rx_fn passes at
 * most 32 at a time). */
#define NET_BURST 32u

/* TTL of the datagrams we send (Linux's default, RFC 1700). */
#define NET_IP_TTL 64

/* No ebb_nic API gives the port's MTU: Ethernet's. */
#define NET_MTU RTE_ETHER_MTU

/* Ethernet + IPv4 (no options) + UDP: what ebb_udp_send() prepends. */
#define NET_UDP_HDRS                                                        \
	(RTE_ETHER_HDR_LEN + (uint32_t)sizeof(struct rte_ipv4_hdr) +        \
	 (uint32_t)sizeof(struct rte_udp_hdr))

static_assert(RTE_PKTMBUF_HEADROOM >= NET_UDP_HDRS,
	      "an mbuf's headroom must take the UDP headers");
static_assert(EBB_UDP_MAX_PAYLOAD + 28 == NET_MTU, "UDP payload limit");

/* ARP cache: slots (a power of two), datagrams that may wait per next
 * hop, how long an answer holds, requests before giving up and their
 * spacing, and the period of the timer that retries them. */
#define ARP_SLOTS 256u
#define ARP_PENDING_MAX 8u
#define ARP_REACHABLE_NS (60ull * 1000000000ull)
#define ARP_TRIES 3u
#define ARP_RETRY_NS 1000000000ull
#define ARP_TICK_NS 100000000ull

/* ICMP errors: a token bucket per queue, NET_ICMP_RATE per second with a
 * burst of as many. */
#define NET_ICMP_RATE 100u
#define NET_ICMP_COST_NS (1000000000ull / NET_ICMP_RATE)
#define NET_ICMP_BURST_NS (NET_ICMP_COST_NS * NET_ICMP_RATE)

/* UDP port table slots (a power of two) and the most sockets in it: half,
 * so that probe chains stay short. */
#define UDP_SLOTS 256u
#define UDP_MAX_SOCKS (UDP_SLOTS / 2)

/* TCP listeners per interface. */
#define TCP_MAX_LISTENERS 16u

/* Frames one queue takes from other cores (datagrams whose next hop was
 * resolved there), a power of two. */
#define NET_HANDOFF_SIZE 256u

/* State of one rx/tx queue pair: written only by the core that owns the
 * queue, so counters need no atomic read-modify-write. */
struct net_queue {
	struct ebb_net_if *nif;
	uint16_t id;
	/* Set by the owning core at attach, cleared at detach; read by
	 * other cores handing frames over (acquire/release). */
	bool attached;
	unsigned core;
	/* Next IPv4 identification (owner only). */
	uint16_t ip_id;
	/* ICMP error budget in ns of credit, and when it was last topped
	 * up (owner only). */
	uint64_t icmp_credit_ns, icmp_last_ns;
	/* Frames other cores resolved for this queue: multi-producer,
	 * single consumer (the owner). */
	struct rte_ring *handoff;
	/* This queue's TCP: its connections and pending output (owner
	 * only; tcp.c). */
	struct tcp_queue *tcp;
	/* counters: owner writes (STAT_ADD), anyone reads (relaxed); stp
	 * is &st, or in a cluster node this core's slot of the control
	 * block, where the frontend reads them (ebbrt status) */
	struct ebb_net_stats st;
	struct ebb_net_stats *stp;
} __rte_cache_aligned;

static_assert(sizeof(struct net_queue) % RTE_CACHE_LINE_SIZE == 0,
	      "per-core queue state must not share a cache line");
static_assert(alignof(struct net_queue) == RTE_CACHE_LINE_SIZE,
	      "per-core queue state must be cache aligned");

#define NET_NO_QUEUE 0xffu
static_assert(EBB_MAX_CORES < NET_NO_QUEUE, "queue ids fit core_q");

enum arp_state {
	ARP_FREE = 0,		/* never used: ends a probe chain */
	ARP_INCOMPLETE,		/* request out, datagrams may wait */
	ARP_REACHABLE,		/* mac valid until expires_ns */
	ARP_FAILED,		/* resolution gave up; reusable */
};

/* One neighbour. Written under the cache lock, inside a write section of
 * @sc; read without the lock by the send path, which retries on a torn
 * read. A slot's ip, once set, changes only to another ip (eviction),
 * never back to 0, so probe chains stay whole. */
struct arp_entry {
	rte_seqcount_t sc;
	rte_be32_t ip;
	uint8_t state;		/* enum arp_state */
	uint8_t tries;		/* requests sent (INCOMPLETE) */
	uint8_t npending;
	struct rte_ether_addr mac;
	/* REACHABLE: valid until then; INCOMPLETE: next retry due */
	uint64_t expires_ns;
	/* Whole frames waiting for the MAC, and the queue each leaves on
	 * (lock only). */
	struct rte_mbuf *pending[ARP_PENDING_MAX];
	uint8_t pending_q[ARP_PENDING_MAX];
};

struct ebb_net_if {
	struct ebb_nic *nic;
	/* The nic takes TCP/UDP checksums (a virtual wire:
	 * ebb_nic_tx_l4_csum_offload()). */
	bool tx_l4_offload;
	/* The MSS TCP offers and sends at most: the nic's MTU less the
	 * IPv4 and TCP headers (jumbo on a virtual wire). */
	uint16_t tcp_mss;
	bool stats_claimed;	/* its counters are the node's, in the cluster
				 * control block */
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
	/* The queue each core owns (NET_NO_QUEUE: none): written by that
	 * core at attach and detach, read by it on send. */
	uint8_t core_q[EBB_MAX_CORES];

	/* ARP cache, one per interface for all its cores: writers take
	 * arp_lock, readers use the entries' seqcounts. */
	rte_spinlock_t arp_lock;
	struct arp_entry arp[ARP_SLOTS];
	/* Retries and timeouts, on the core that attached queue 0. */
	struct ebb_timer arp_timer;	/* one-shot, on queue 0's core */
	/* The timer is set or about to be: resolutions are in progress. An
	 * idle interface runs no timer, so an idle core stays halted. */
	bool arp_timer_on;

	/* UDP sockets by port: writers take udp_lock; readers load slots
	 * with acquire (pairs with the release store of bind/close). */
	rte_spinlock_t udp_lock;
	struct ebb_udp_sock *udp[UDP_SLOTS];
	unsigned udp_count;		/* live sockets (lock) */
	uint16_t udp_next_eph;		/* next ephemeral port to try */
	/* Sockets closed on a core, freed at ebb_net_if_close() (lock). */
	struct ebb_udp_sock *udp_dead;

	/* TCP: settings (fixed once started), listeners by slot (writers
	 * take tcp_lock; readers load with acquire), listeners closed on a
	 * core (freed at close), and the interface's number among the
	 * process's open interfaces, which names its connection tables. */
	struct ebb_tcp_config tcp_cfg;
	bool tcp_started;
	rte_spinlock_t tcp_lock;
	struct ebb_tcp_listener *tcp_lis[TCP_MAX_LISTENERS];
	struct ebb_tcp_listener *tcp_dead;
	unsigned slot;
};

struct ebb_udp_sock {
	struct ebb_net_if *nif;
	ebb_udp_rx_fn fn;
	void *arg;
	rte_be16_t port_be;
	uint16_t port;
	/* Set by close (release); the rx path checks it (acquire) before
	 * calling fn. */
	bool closed;
	struct ebb_udp_sock *dead_next;
};

/* A single writer (the owning core) and readers on other threads: a plain
 * add, stored whole so no reader sees a torn value. */
static_assert(sizeof(struct ebb_net_stats) <=
		      EBB_NET_STATS_WORDS * sizeof(uint64_t),
	      "the cluster control block has room for the counters");

#define STAT_ADD(q, f, n)                                                   \
	__atomic_store_n(&(q)->stp->f, (q)->stp->f + (n), __ATOMIC_RELAXED)

/* What an input function made of a frame. On NET_DROP it has counted the
 * reason and the caller frees the frame; otherwise the frame has become a
 * reply of that kind, to send on the queue it came from. */
enum net_verdict {
	NET_DROP = 0,
	NET_ARP_REPLY,
	NET_ECHO_REPLY,
	NET_UNREACH,		/* an ICMP port unreachable */
	NET_CONSUMED,		/* taken by a layer (counted there) */
};

/* Layer inputs: @m starts with an Ethernet header of the ethertype the
 * function handles, already checked to be addressed to us. Owning core. */
enum net_verdict net_arp_input(struct net_queue *q, struct rte_mbuf *m);
enum net_verdict net_ipv4_input(struct net_queue *q, struct rte_mbuf *m);
/* UDP in @m at @l4 (the IP header at RTE_ETHER_HDR_LEN, @l4len bytes of
 * IP payload, all checked present). */
enum net_verdict net_udp_input(struct net_queue *q, struct rte_mbuf *m,
			       uint32_t l4, uint32_t l4len);
/* Turn the datagram in @m (IP header at RTE_ETHER_HDR_LEN, @hlen bytes)
 * into an ICMP port unreachable to its sender, rate limited: NET_UNREACH,
 * or NET_DROP counted in icmp_unreach_limited. */
enum net_verdict net_icmp_unreach(struct net_queue *q, struct rte_mbuf *m,
				  uint32_t hlen);

/* Send one gratuitous ARP on queue @q (owning core), counted in tx_frames
 * or drop_tx_full. Returns 0 or -ENOMEM (no mbuf). */
int net_arp_announce(struct net_queue *q);

/*
 * The MAC for next hop @nh into @mac: lock free when cached and fresh.
 * Otherwise queue the whole frame @m (its Ethernet destination to be
 * filled in) on the entry, sending a request for a new resolution.
 * Returns 1 (@mac set, the caller sends @m), 0 (@m queued: the stack owns
 * it) or -ENOBUFS (queue full, the caller keeps @m). Owning core of @q.
 */
int net_arp_resolve(struct net_queue *q, rte_be32_t nh,
		    struct rte_ether_addr *mac, struct rte_mbuf *m);

/* Learn @ip at @mac (a reply or a request for us), releasing the frames
 * waiting for it. Owning core of @q. */
void net_arp_learn(struct net_queue *q, rte_be32_t ip,
		   const struct rte_ether_addr *mac);

/* The ARP timer of @nif (retries, timeouts), on the core of queue 0. */
void net_arp_tick(struct ebb_timer *t, void *arg);
/* A resolution started: make sure queue 0's core runs the ARP timer. */
void net_arp_timer_need(struct ebb_net_if *nif);

/* TCP in @m at @l4 (IP header at RTE_ETHER_HDR_LEN, @l4len bytes of IP
 * payload, all present). NET_CONSUMED or NET_DROP (counted). */
enum net_verdict net_tcp_input(struct net_queue *q, struct rte_mbuf *m,
			       uint32_t l4, uint32_t l4len);
/* Around a receive burst of @q: output, sends and frees that segments
 * caused are done at the end, in one go. Owning core. */
void net_tcp_burst_begin(struct net_queue *q);
void net_tcp_burst_end(struct net_queue *q);
/* The TCP settings of a new interface: the defaults. */
void net_tcp_if_init(struct ebb_net_if *nif);
/* Per-queue TCP state: made at attach (-ENOMEM), connections reset at
 * detach (owning core), everything freed at close (cores stopped). */
int net_tcp_queue_init(struct net_queue *q);
void net_tcp_queue_detach(struct net_queue *q);
void net_tcp_free_all(struct ebb_net_if *nif);

/* The next hop towards @dst (network order): @dst itself on our subnet,
 * the gateway elsewhere; 0 when there is none (no route). */
static inline rte_be32_t net_next_hop(const struct ebb_net_if *nif,
				      rte_be32_t dst)
{
	if (nif->netmask != 0 &&
	    (dst & nif->netmask) == (nif->ip & nif->netmask))
		return dst;
	return nif->gateway;
}

/* Free every socket, open or closed. Cores stopped. */
void net_udp_free_all(struct ebb_net_if *nif);

/* Free every frame the cache still holds. Cores stopped. */
void net_arp_flush(struct ebb_net_if *nif);

/* Send frames other cores handed to @q. Returns how many it took off
 * the ring. Owning core. */
unsigned net_handoff_drain(struct net_queue *q);

/* The attached queue the calling core owns on @nif, or NULL. */
struct net_queue *net_my_queue(struct ebb_net_if *nif);

/* Send one frame of our own on @q (owner), counting it in tx_frames or,
 * freeing it, drop_tx_full. Returns whether the nic took it. */
bool net_tx_own(struct net_queue *q, struct rte_mbuf *m);

/* One's complement sum of @len bytes of chain @m from @off, folded to 16
 * bits (not complemented). DPDK 22.11's rte_raw_cksum_mbuf() is wrong when
 * a segment after the first starts at an odd offset (it swaps the bytes of
 * an unfolded sum), which a retransmission built from a partly
 * acknowledged buffer hits: Linux then drops the segment. */
static inline uint16_t net_raw_cksum_mbuf(const struct rte_mbuf *m,
					  uint32_t off, uint32_t len)
{
	uint64_t sum = 0;
	uint32_t done = 0;

	for (; m != NULL && off >= rte_pktmbuf_data_len(m); m = m->next)
		off -= rte_pktmbuf_data_len(m);
	for (; m != NULL && done < len; m = m->next, off = 0) {
		uint32_t n = RTE_MIN((uint32_t)rte_pktmbuf_data_len(m) - off,
				     len - done);
		uint16_t s = __rte_raw_cksum_reduce(__rte_raw_cksum(
			rte_pktmbuf_mtod_offset(m, const void *, off), n, 0));

		/* Bytes after an odd count sit in the other half of each
		 * 16-bit word. */
		sum += (done & 1) ? rte_bswap16(s) : s;
		done += n;
	}
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

/* The TCP or UDP checksum field for the segment at @l4 of chain @m (its
 * checksum field zero), IPv4 header @ip: as rte_ipv4_udptcp_cksum_mbuf()
 * with the sum above. */
static inline uint16_t net_l4_cksum_mbuf(const struct rte_mbuf *m,
					 const struct rte_ipv4_hdr *ip,
					 uint32_t l4)
{
	uint32_t len = rte_be_to_cpu_16(ip->total_length) -
		       (uint32_t)rte_ipv4_hdr_len(ip);
	uint32_t sum = (uint32_t)net_raw_cksum_mbuf(m, l4, len) +
		       rte_ipv4_phdr_cksum(ip, 0);

	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = ~sum & 0xffff;
	/* 0 means "no checksum" to UDP (RFC 768); the same for TCP. */
	return sum == 0 ? 0xffff : (uint16_t)sum;
}

/* Whether the segment at @l4 of chain @m carries a right checksum. */
static inline bool net_l4_cksum_ok(const struct rte_mbuf *m,
				   const struct rte_ipv4_hdr *ip, uint32_t l4)
{
	uint32_t len = rte_be_to_cpu_16(ip->total_length) -
		       (uint32_t)rte_ipv4_hdr_len(ip);
	uint32_t sum = (uint32_t)net_raw_cksum_mbuf(m, l4, len) +
		       rte_ipv4_phdr_cksum(ip, 0);

	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return sum == 0xffff;
}

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
