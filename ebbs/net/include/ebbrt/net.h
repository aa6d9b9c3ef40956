/* SPDX-License-Identifier: BSD-3-Clause */
/* The network stack's interface to one NIC: an IPv4 address on a port,
 * ARP, ICMP echo and port unreachable, and UDP sockets, per core and zero
 * copy on rte_mbuf. */
#ifndef EBBRT_NET_H
#define EBBRT_NET_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ebb_nic;
struct ebb_net_if;
struct rte_mbuf;

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
	 * ip/netmask. Datagrams to addresses off the subnet (all of them
	 * without a netmask) go through it; without one they fail with
	 * -ENETUNREACH. */
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
 * core handles the frames of that queue (ARP, ICMP, UDP delivery to
 * sockets), sending replies on the same queue, and may send UDP on it.
 * Attaching queue 0 also sends one gratuitous ARP (an announcement, RFC
 * 5227) on it, best effort (an empty pool or a full queue is counted, not
 * an error), and starts the interface's ARP timer (retries, timeouts) on
 * this core: attach queue 0 for resolution to retry and give up.
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
 * (rx_frames) ends in exactly one of arp_replies_sent, arp_replies_rcvd,
 * icmp_echo_replies, udp_rx, udp_bad_len, udp_bad_checksum,
 * icmp_unreach_sent, icmp_unreach_limited, tcp_rx, tcp_bad,
 * tcp_bad_checksum or a drop_ counter; drop_tx_full
 * also counts frames of our own that did not leave (announcements, ARP
 * requests, datagrams released from the ARP queue).
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
	uint64_t drop_proto;		/* IPv4, not ICMP, UDP or TCP */
	/* ICMP: shorter than 8 bytes, bad checksum, or not an echo
	 * request. */
	uint64_t drop_icmp;
	/* ARP: hardware type not Ethernet, protocol not IPv4, sizes not 6
	 * and 4, a group sender MAC, an opcode other than request or reply,
	 * or a reply not for our ip or from an address we would not use. */
	uint64_t drop_arp;
	uint64_t drop_tx_full;		/* frames the nic did not take */

	/* ARP cache */
	uint64_t arp_replies_rcvd;	/* replies to us, learnt */
	uint64_t arp_requests_sent;	/* requests for a next hop sent */
	uint64_t arp_pending_full;	/* sends refused: queue full
					 * (-ENOBUFS, the caller kept m) */
	uint64_t arp_pending_dropped;	/* queued datagrams freed when
					 * resolution gave up */
	uint64_t arp_timeouts;		/* resolutions given up (no reply
					 * after 3 requests 1 s apart) */

	/* UDP */
	uint64_t udp_rx;		/* datagrams given to a socket */
	uint64_t udp_tx;		/* datagrams the nic took */
	/* UDP length under 8, past the IP payload, or the datagram not in
	 * one segment. */
	uint64_t udp_bad_len;
	uint64_t udp_bad_checksum;	/* nonzero and wrong */
	/* To a port nobody bound; each also ends in icmp_unreach_sent,
	 * icmp_unreach_limited or drop_tx_full. */
	uint64_t udp_no_port;
	uint64_t icmp_unreach_sent;	/* port unreachables the nic took */
	uint64_t icmp_unreach_limited;	/* not sent: over the rate limit */
	uint64_t tx_no_route;		/* sends refused: -ENETUNREACH */
	/* Not an outcome: frames whose IPv4 header checksum the device
	 * verified (rx checksum offload), so the stack did not. */
	uint64_t rx_csum_by_device;

	/* TCP (include/ebbrt/tcp.h). Outcomes of a received segment:
	 * tcp_rx (the TCP layer took it), tcp_bad (a header shorter than
	 * 20 bytes or than its data offset, or not in the first segment),
	 * tcp_bad_checksum. The others are not outcomes. */
	uint64_t tcp_rx;
	uint64_t tcp_bad;
	uint64_t tcp_bad_checksum;
	uint64_t tcp_tx;		/* segments the nic took */
	uint64_t tcp_rst_sent;
	uint64_t tcp_rst_rcvd;		/* resets that closed a connection */
	uint64_t tcp_accepted;		/* passive opens established */
	uint64_t tcp_connected;		/* active opens established */
	uint64_t tcp_no_listener;	/* segments for no connection and no
					 * listener (answered with RST) */
	uint64_t tcp_conns_full;	/* SYNs refused: the queue's table is
					 * full (answered with RST) */
	uint64_t tcp_backlog_full;	/* SYNs dropped: the listener's
					 * half-open backlog is full */
	uint64_t tcp_retransmits;	/* segments sent again (any cause) */
	uint64_t tcp_fast_retransmits;	/* ... on three duplicate ACKs */
	uint64_t tcp_timeouts;		/* retransmission timer expiries */
	uint64_t tcp_challenge_acks;	/* RFC 5961 (and out-of-window
					 * segments answered with an ACK) */
	uint64_t tcp_ooo;		/* segments queued out of order */
	/* Segments the layer dropped: outside the window, not acceptable
	 * in the connection's state, out-of-order queue full. */
	uint64_t tcp_dropped;
	uint64_t tcp_aborted;		/* connections that timed out */
};

/*
 * Sum of the per-core counters into @out. Returns 0 or -EINVAL (a NULL
 * argument). Any thread; values may be slightly stale.
 */
int ebb_net_if_stats(const struct ebb_net_if *nif, struct ebb_net_stats *out);

/* --- UDP (RFC 768) --- */

/* Largest UDP payload one datagram carries: a 1500-byte MTU less the IPv4
 * and UDP headers (no fragmentation). */
#define EBB_UDP_MAX_PAYLOAD 1472u

struct ebb_udp_sock;

/*
 * Receive callback, on the core that received the datagram (the owner of
 * the rx queue). The payload is in place: rte_pktmbuf_mtod(m, void *) is
 * the UDP payload and rte_pktmbuf_data_len(m) its length (single
 * segment). The callback owns @m: free it or pass it to ebb_udp_send()
 * (it can go back as it is: its headroom takes the new headers). @src_ip
 * and @src_port are in host byte order.
 */
typedef void (*ebb_udp_rx_fn)(void *arg, struct ebb_udp_sock *s,
			      struct rte_mbuf *m, uint32_t src_ip,
			      uint16_t src_port);

/*
 * Bind UDP port @port (host order; 0: a free ephemeral one, 49152-65535)
 * of @nif's address for every core: datagrams to it reach @fn(@arg, ...)
 * on the core that received them.
 * Returns the socket, or NULL with errno EADDRINUSE (port taken),
 * EINVAL (NULL @nif or @fn) or ENOMEM (no memory, the interface's table
 * of 128 sockets is full, or no ephemeral port is free).
 * Call on: the main thread or any core, before traffic for the port.
 */
struct ebb_udp_sock *ebb_udp_bind(struct ebb_net_if *nif, uint16_t port,
				  ebb_udp_rx_fn fn, void *arg);

/* The socket's port, in host order. Any thread. */
uint16_t ebb_udp_port(const struct ebb_udp_sock *s);

/*
 * An mbuf from @nif's pool for a datagram: empty, with data_off leaving
 * room for the Ethernet, IPv4 and UDP headers; append the payload
 * (rte_pktmbuf_append(), at most EBB_UDP_MAX_PAYLOAD bytes). NULL when
 * the pool is empty (or @nif is NULL). Any core or thread.
 */
struct rte_mbuf *ebb_net_alloc(struct ebb_net_if *nif);

/*
 * Send @m as one datagram from @s to @ip:@port (host order) on the
 * calling core's queue. The payload is from @m's data_off on; the headers
 * are prepended in its headroom (zero copy). The next hop is @ip on our
 * subnet, the gateway otherwise; its MAC comes from the ARP cache, or the
 * datagram waits (at most 8 per next hop) while it is resolved. The
 * limited broadcast and the subnet broadcast go to the Ethernet
 * broadcast address. Checksums are computed in software.
 * Returns 0: the stack owns @m (sent, or waiting for ARP; freed and
 * counted in arp_pending_dropped if resolution fails). Otherwise the
 * caller keeps @m, unchanged: -EAGAIN (tx queue full), -ENOBUFS (the next
 * hop's pending queue is full), -ENETUNREACH (off the subnet and no
 * gateway), -EMSGSIZE (payload over EBB_UDP_MAX_PAYLOAD), -EINVAL (NULL
 * argument, port 0, a destination no one may send to: 0/8, loopback,
 * multicast, class E, our own ip; or under 42 bytes of headroom), -EPERM
 * (the calling core owns no attached queue of the interface).
 * Call on: a core that owns an attached queue of the socket's interface.
 */
int ebb_udp_send(struct ebb_udp_sock *s, uint32_t ip, uint16_t port,
		 struct rte_mbuf *m);

/*
 * Copy @len bytes of @buf into a new mbuf and send it (ebb_udp_send()).
 * Same returns (the copy is freed on an error), plus -ENOMEM (no mbuf).
 * @buf stays the caller's. Same cores.
 */
int ebb_udp_send_buf(struct ebb_udp_sock *s, uint32_t ip, uint16_t port,
		     const void *buf, size_t len);

/*
 * Unbind and free the socket; accepts NULL. From the main thread (or any
 * thread that is not a core) it waits for a grace period: once it returns
 * no callback of @s runs or will run. On a core it cannot wait: the
 * socket takes no new datagrams once it returns, but a callback another
 * core has already started may still finish, and the memory is freed by
 * ebb_net_if_close(). Datagrams of @s waiting for ARP still leave.
 */
void ebb_udp_close(struct ebb_udp_sock *s);

#ifdef __cplusplus
}
#endif
#endif
