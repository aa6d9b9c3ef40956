/* SPDX-License-Identifier: BSD-3-Clause */
/* The network stack's interface to one NIC: an IPv4 address on a port and
 * a per-core responder for ARP and ICMP echo, zero copy on rte_mbuf. */
#ifndef EBBRT_NET_H
#define EBBRT_NET_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ebb_nic;
struct ebb_net_if;

/* IPv4 settings of an interface, all in host byte order. */
struct ebb_net_config {
	/* Our address. Required: not in 0.0.0.0/8, 127.0.0.0/8 (loopback),
	 * 224.0.0.0/4 (multicast) or 240.0.0.0/4 (class E and the limited
	 * broadcast). */
	uint32_t ip;
	/* 0: none known (no subnet broadcast is recognised). Otherwise a
	 * contiguous mask (/1 to /32). */
	uint32_t netmask;
	/* 0: none. Otherwise a usable address (as @ip), not @ip, inside
	 * ip/netmask. Kept for the stack's later parts; nothing here sends
	 * through it yet. */
	uint32_t gateway;
};

/*
 * An interface on @nic with the address of @cfg (copied). Reads the port's
 * MAC; attaches nothing (see ebb_net_if_attach()). @nic stays the
 * caller's: close the interface before the nic.
 * Returns the interface, or NULL with errno EINVAL (NULL argument, no or
 * bad ip, an ip that is its subnet's network or broadcast address, a
 * non-contiguous netmask, a bad gateway, no MAC on @nic) or ENOMEM.
 * Call on: the main thread, after ebb_init().
 */
struct ebb_net_if *ebb_net_if_open(struct ebb_nic *nic,
				   const struct ebb_net_config *cfg);

/*
 * Give rx/tx queue pair @queue of the interface's nic to the calling core
 * (ebb_nic_attach() with the stack's receive handler): from then on this
 * core answers ARP and ICMP echo for the frames of that queue, sending
 * the replies on the same queue. Attaching queue 0 also sends one
 * gratuitous ARP (an announcement, RFC 5227) on it; that one is best
 * effort (an empty pool or a full queue is counted, not an error).
 * Returns 0, -EINVAL (NULL @nif, @queue >= EBB_MAX_CORES or not a queue of
 * the nic), -EPERM (not on an ebbrt core), -EBUSY (queue already
 * attached), or another error of ebb_nic_attach() (-ENOSPC: the core's
 * vector table is full).
 * Call on: the core that will own the queue.
 */
int ebb_net_if_attach(struct ebb_net_if *nif, unsigned queue);

/*
 * Take queue @queue back from the calling core (ebb_nic_detach()).
 * Returns 0, -EINVAL (NULL @nif, no such queue, or not attached to this
 * core) or -EPERM (not on an ebbrt core). Call on: the owning core.
 */
int ebb_net_if_detach(struct ebb_net_if *nif, unsigned queue);

/*
 * Free the interface. Accepts NULL. Does not close the nic. Call with
 * every queue detached or the cores stopped (ebb_stop(), ebb_wait()), and
 * before ebb_fini(). Main thread.
 */
void ebb_net_if_close(struct ebb_net_if *nif);

/*
 * Counters of an interface, per core, summed. Each frame received
 * (rx_frames) ends in exactly one of arp_replies_sent, icmp_echo_replies
 * or a drop_ counter; drop_tx_full also counts announcements that did not
 * leave (no mbuf, or the nic did not take it).
 */
struct ebb_net_stats {
	uint64_t rx_frames;		/* frames the handler got */
	uint64_t tx_frames;		/* frames the nic took (replies and
					 * announcements) */
	uint64_t arp_requests;		/* valid ARP requests for our ip */
	uint64_t arp_replies_sent;	/* their replies the nic took */
	uint64_t icmp_echo_replies;	/* echo replies the nic took */
	/* Shorter than its headers say: under an Ethernet header, an ARP
	 * body or a 20-byte IPv4 header, or an IPv4 total length past the
	 * frame's end; also headers not in the first segment. */
	uint64_t drop_short;
	uint64_t drop_ethertype;	/* neither ARP nor IPv4 (VLAN too) */
	/* Not ours: an Ethernet destination that is neither our MAC nor
	 * broadcast, a group source MAC (nobody may answer one), an IPv4
	 * destination other than our ip, an ARP request for another
	 * address. */
	uint64_t drop_not_for_us;
	/* IPv4 header: version not 4, IHL under 5, total length under the
	 * header, or a source no one may answer (0, multicast, broadcast,
	 * class E, our own ip). */
	uint64_t drop_ip_header;
	uint64_t drop_ip_checksum;	/* bad IPv4 header checksum */
	uint64_t drop_ip_fragment;	/* MF set or an offset: no reassembly */
	/* Always 0 here: a host accepts any TTL (RFC 1122 3.2.1.7); for a
	 * forwarding stack later. */
	uint64_t drop_ttl;
	uint64_t drop_proto;		/* IPv4, not ICMP (UDP, TCP: later) */
	/* ICMP: shorter than 8 bytes, bad checksum, or not an echo
	 * request. */
	uint64_t drop_icmp;
	/* ARP: hardware type not Ethernet, protocol not IPv4, sizes not 6
	 * and 4, a group sender MAC, or an opcode other than request (no
	 * neighbour table yet: replies are not learnt). */
	uint64_t drop_arp;
	uint64_t drop_tx_full;		/* replies the nic did not take */
};

/*
 * Sum of the per-core counters into @out. Returns 0 or -EINVAL (a NULL
 * argument). Any thread; values may be slightly stale.
 */
int ebb_net_if_stats(const struct ebb_net_if *nif, struct ebb_net_stats *out);

#ifdef __cplusplus
}
#endif
#endif
