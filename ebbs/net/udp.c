/* SPDX-License-Identifier: BSD-3-Clause */
/* UDP (RFC 768): sockets bound by port in a small open-addressing table
 * read without locks, input checks and delivery in place, and output with
 * the headers prepended in the payload's mbuf. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <rte_malloc.h>

#include "defs.h"

static_assert((UDP_SLOTS & (UDP_SLOTS - 1)) == 0, "UDP_SLOTS power of 2");

#define UDP_HDR_LEN ((uint32_t)sizeof(struct rte_udp_hdr))
#define EPH_FIRST 49152u
#define EPH_COUNT (65536u - EPH_FIRST)

/* A closed socket's slot: lookups go on past it, bind may reuse it. */
static struct ebb_udp_sock udp_tomb;
#define UDP_TOMB (&udp_tomb)

static unsigned udp_hash(rte_be16_t port)
{
	return (unsigned)(((uint32_t)port * 2654435761u) >> 24) &
	       (UDP_SLOTS - 1);
}

/* The socket bound to @port (network order), or NULL. Any thread: each
 * slot is loaded with acquire, pairing with the release store of bind
 * (the socket's fields are set before it is published). */
static struct ebb_udp_sock *udp_lookup(struct ebb_net_if *nif,
				       rte_be16_t port)
{
	unsigned h = udp_hash(port);

	for (unsigned i = 0; i < UDP_SLOTS; i++) {
		struct ebb_udp_sock *s = __atomic_load_n(
			&nif->udp[(h + i) & (UDP_SLOTS - 1)], __ATOMIC_ACQUIRE);

		if (s == NULL)
			return NULL;
		if (s != UDP_TOMB && s->port_be == port)
			return s;
	}
	return NULL;
}

enum net_verdict net_udp_input(struct net_queue *q, struct rte_mbuf *m,
			       uint32_t l4, uint32_t l4len)
{
	const struct rte_ipv4_hdr *ip;
	struct rte_udp_hdr *udp;
	struct ebb_udp_sock *s;
	uint32_t ulen, src_ip;
	uint16_t src_port;

	/* The IP layer checked that l4 + l4len bytes are there; the
	 * callback reads the payload in place, so one segment. */
	if (l4len < UDP_HDR_LEN || m->nb_segs != 1) {
		STAT_ADD(q, udp_bad_len, 1);
		return NET_DROP;
	}
	ip = rte_pktmbuf_mtod_offset(m, const struct rte_ipv4_hdr *,
				     RTE_ETHER_HDR_LEN);
	udp = rte_pktmbuf_mtod_offset(m, struct rte_udp_hdr *, l4);
	ulen = rte_be_to_cpu_16(udp->dgram_len);
	/* Shorter than the IP payload is allowed (the rest is ignored);
	 * longer is a lie. */
	if (ulen < UDP_HDR_LEN || ulen > l4len) {
		STAT_ADD(q, udp_bad_len, 1);
		return NET_DROP;
	}
	if (udp->dgram_cksum != 0 &&
	    (m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK) ==
		    RTE_MBUF_F_RX_L4_CKSUM_BAD) {
		/* The device checked it (rx checksum offload). */
		STAT_ADD(q, udp_bad_checksum, 1);
		return NET_DROP;
	}
	if (udp->dgram_cksum != 0 &&
	    (m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK) !=
		    RTE_MBUF_F_RX_L4_CKSUM_GOOD) {
		/* Pseudo-header, then the datagram with its checksum: a
		 * valid one sums to 0xffff. */
		struct {
			rte_be32_t src, dst;
			uint8_t zero, proto;
			rte_be16_t len;
		} __rte_packed ph = { ip->src_addr, ip->dst_addr, 0,
				      IPPROTO_UDP, udp->dgram_len };
		uint32_t sum = __rte_raw_cksum(&ph, sizeof(ph), 0);

		sum = __rte_raw_cksum(udp, ulen, sum);
		if (__rte_raw_cksum_reduce(sum) != 0xffff) {
			STAT_ADD(q, udp_bad_checksum, 1);
			return NET_DROP;
		}
	}
	s = udp_lookup(q->nif, udp->dst_port);
	/* Pairs with the release store of close. */
	if (s == NULL || __atomic_load_n(&s->closed, __ATOMIC_ACQUIRE)) {
		STAT_ADD(q, udp_no_port, 1);
		return net_icmp_unreach(q, m, l4 - RTE_ETHER_HDR_LEN);
	}
	src_ip = rte_be_to_cpu_32(ip->src_addr);
	src_port = rte_be_to_cpu_16(udp->src_port);
	/* Payload only, in place: headers behind data_off (headroom for
	 * the reply's), padding and junk past the datagram cut. */
	(void)rte_pktmbuf_adj(m, (uint16_t)(l4 + UDP_HDR_LEN));
	net_trim(m, ulen - UDP_HDR_LEN);
	STAT_ADD(q, udp_rx, 1);
	s->fn(s->arg, s, m, src_ip, src_port);
	return NET_CONSUMED;
}

/* --- sockets --- */

__rte_cold
struct ebb_udp_sock *ebb_udp_bind(struct ebb_net_if *nif, uint16_t port,
				  ebb_udp_rx_fn fn, void *arg)
{
	struct ebb_udp_sock *s;
	unsigned h;
	int err = 0;

	if (nif == NULL || fn == NULL) {
		errno = EINVAL;
		return NULL;
	}
	s = calloc(1, sizeof(*s));	/* private: see ebb_net_if_open() */
	if (s == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	s->nif = nif;
	s->fn = fn;
	s->arg = arg;
	rte_spinlock_lock(&nif->udp_lock);
	if (nif->udp_count >= UDP_MAX_SOCKS) {
		err = ENOMEM;
		goto out;
	}
	if (port == 0) {
		/* The next free one after the last handed out. */
		for (unsigned i = 0; i < EPH_COUNT; i++) {
			uint16_t p = (uint16_t)(EPH_FIRST +
						nif->udp_next_eph++ % EPH_COUNT);

			if (udp_lookup(nif, rte_cpu_to_be_16(p)) == NULL) {
				port = p;
				break;
			}
		}
		if (port == 0) {
			err = ENOMEM;
			goto out;
		}
	} else if (udp_lookup(nif, rte_cpu_to_be_16(port)) != NULL) {
		err = EADDRINUSE;
		goto out;
	}
	s->port = port;
	s->port_be = rte_cpu_to_be_16(port);
	h = udp_hash(s->port_be);
	for (unsigned i = 0;; i++) {
		struct ebb_udp_sock **slot = &nif->udp[(h + i) &
						       (UDP_SLOTS - 1)];

		/* Under half full: a free slot is always found. */
		RTE_ASSERT(i < UDP_SLOTS);
		if (*slot == NULL || *slot == UDP_TOMB) {
			/* Publishes s: pairs with udp_lookup()'s acquire. */
			__atomic_store_n(slot, s, __ATOMIC_RELEASE);
			break;
		}
	}
	nif->udp_count++;
out:
	rte_spinlock_unlock(&nif->udp_lock);
	if (err != 0) {
		free(s);
		errno = err;
		return NULL;
	}
	return s;
}

uint16_t ebb_udp_port(const struct ebb_udp_sock *s)
{
	return s != NULL ? s->port : 0;
}

__rte_cold
void ebb_udp_close(struct ebb_udp_sock *s)
{
	struct ebb_net_if *nif;
	unsigned h;

	if (s == NULL)
		return;
	nif = s->nif;
	rte_spinlock_lock(&nif->udp_lock);
	h = udp_hash(s->port_be);
	for (unsigned i = 0; i < UDP_SLOTS; i++) {
		struct ebb_udp_sock **slot = &nif->udp[(h + i) &
						       (UDP_SLOTS - 1)];

		if (*slot == s) {
			/* Pairs with udp_lookup()'s acquire. */
			__atomic_store_n(slot, UDP_TOMB, __ATOMIC_RELEASE);
			break;
		}
	}
	nif->udp_count--;
	/* A lookup that found s before the slot changed sees this and
	 * does not call (pairs with net_udp_input()'s acquire). */
	__atomic_store_n(&s->closed, true, __ATOMIC_RELEASE);
	if (ebb_core_id() != EBB_CORE_NONE) {
		/* A core cannot wait for the others: keep it for
		 * ebb_net_if_close(). */
		s->dead_next = nif->udp_dead;
		nif->udp_dead = s;
		rte_spinlock_unlock(&nif->udp_lock);
		return;
	}
	rte_spinlock_unlock(&nif->udp_lock);
	/* Every core passes a quiescent state between two loop iterations,
	 * which is outside any callback: after it none can hold s. */
	if (ebb_rcu_synchronize() != 0) {
		rte_spinlock_lock(&nif->udp_lock);
		s->dead_next = nif->udp_dead;
		nif->udp_dead = s;
		rte_spinlock_unlock(&nif->udp_lock);
		return;
	}
	free(s);
}

__rte_cold
void net_udp_free_all(struct ebb_net_if *nif)
{
	for (unsigned i = 0; i < UDP_SLOTS; i++) {
		if (nif->udp[i] != NULL && nif->udp[i] != UDP_TOMB)
			free(nif->udp[i]);
		nif->udp[i] = NULL;
	}
	while (nif->udp_dead != NULL) {
		struct ebb_udp_sock *s = nif->udp_dead;

		nif->udp_dead = s->dead_next;
		free(s);
	}
	nif->udp_count = 0;
}

/* --- output --- */

struct rte_mbuf *ebb_net_alloc(struct ebb_net_if *nif)
{
	struct rte_mempool *pool;
	struct rte_mbuf *m;

	if (nif == NULL)
		return NULL;
	pool = ebb_nic_pool(nif->nic);
	m = pool != NULL ? rte_pktmbuf_alloc(pool) : NULL;
	/* rte_pktmbuf_alloc() leaves RTE_PKTMBUF_HEADROOM, which defs.h
	 * checks takes the headers. */
	return m;
}

/* Whether no datagram may go to @ip (host order): 0/8, loopback,
 * multicast (no IGMP here), class E. The limited broadcast is checked
 * before. */
static bool udp_bad_dest(uint32_t ip)
{
	return (ip >> 24) == 0 || (ip >> 24) == 127 || (ip >> 28) >= 0xe;
}

int ebb_udp_send(struct ebb_udp_sock *s, uint32_t ip, uint16_t port,
		 struct rte_mbuf *m)
{
	struct ebb_net_if *nif;
	struct net_queue *q;
	struct rte_ether_hdr *eth;
	struct rte_ipv4_hdr *iph;
	struct rte_udp_hdr *udp;
	struct rte_ether_addr mac;
	rte_be32_t dst, nh = 0;
	uint32_t len;
	bool bcast;
	int rc;

	if (s == NULL || m == NULL || port == 0)
		return -EINVAL;
	nif = s->nif;
	q = net_my_queue(nif);
	if (q == NULL)
		return -EPERM;
	len = rte_pktmbuf_pkt_len(m);
	if (len > EBB_UDP_MAX_PAYLOAD)
		return -EMSGSIZE;
	dst = rte_cpu_to_be_32(ip);
	bcast = ip == UINT32_MAX || (nif->bcast != 0 && dst == nif->bcast);
	if (!bcast && (udp_bad_dest(ip) || dst == nif->ip))
		return -EINVAL;
	if (rte_pktmbuf_headroom(m) < NET_UDP_HDRS)
		return -EINVAL;
	if (!bcast) {
		/* On our subnet: straight there; elsewhere (everywhere
		 * without a netmask): the gateway. */
		if (nif->netmask != 0 &&
		    (dst & nif->netmask) == (nif->ip & nif->netmask))
			nh = dst;
		else if (nif->gateway != 0)
			nh = nif->gateway;
		else {
			STAT_ADD(q, tx_no_route, 1);
			return -ENETUNREACH;
		}
	}

	eth = (struct rte_ether_hdr *)rte_pktmbuf_prepend(m, NET_UDP_HDRS);
	RTE_ASSERT(eth != NULL);	/* headroom checked */
	rte_ether_addr_copy(&nif->mac, &eth->src_addr);
	eth->ether_type = RTE_BE16(RTE_ETHER_TYPE_IPV4);
	iph = (struct rte_ipv4_hdr *)(eth + 1);
	iph->version_ihl = RTE_IPV4_VHL_DEF;
	iph->type_of_service = 0;
	iph->total_length = rte_cpu_to_be_16(
		(uint16_t)(len + sizeof(*iph) + UDP_HDR_LEN));
	iph->packet_id = rte_cpu_to_be_16(q->ip_id++);
	iph->fragment_offset = 0;
	iph->time_to_live = NET_IP_TTL;
	iph->next_proto_id = IPPROTO_UDP;
	iph->src_addr = nif->ip;
	iph->dst_addr = dst;
	/* The IP header sum in software (20 bytes); the UDP one too but on
	 * a virtual wire (docs/net.md). */
	iph->hdr_checksum = 0;
	iph->hdr_checksum = rte_ipv4_cksum(iph);
	udp = (struct rte_udp_hdr *)(iph + 1);
	udp->src_port = s->port_be;
	udp->dst_port = rte_cpu_to_be_16(port);
	udp->dgram_len = rte_cpu_to_be_16((uint16_t)(len + UDP_HDR_LEN));
	udp->dgram_cksum = 0;
	m->ol_flags &= ~RTE_MBUF_F_TX_OFFLOAD_MASK;
	/* Both return 0xffff for a sum of 0 (RFC 768: 0 means none). */
	if (nif->tx_l4_offload) {
		/* A virtual wire: its receiver is told the sum is good. */
		m->l2_len = RTE_ETHER_HDR_LEN;
		m->l3_len = sizeof(*iph);
		m->ol_flags |= RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_UDP_CKSUM;
		/* What a NIC that sums wants there; never 0 ("none"), so
		 * that the receiver looks at its verdict. */
		udp->dgram_cksum = rte_ipv4_phdr_cksum(iph, m->ol_flags);
		if (udp->dgram_cksum == 0)
			udp->dgram_cksum = 0xffff;
	} else if (m->nb_segs == 1) {
		udp->dgram_cksum = rte_ipv4_udptcp_cksum(iph, udp);
	} else {
		udp->dgram_cksum = net_l4_cksum_mbuf(
			m, iph, RTE_ETHER_HDR_LEN + sizeof(*iph));
	}

	if (bcast) {
		memset(&eth->dst_addr, 0xff, sizeof(eth->dst_addr));
	} else {
		rc = net_arp_resolve(q, nh, &mac, m);
		if (rc == 0)
			return 0;	/* waiting for ARP: ours now */
		if (rc < 0)
			goto undo;
		rte_ether_addr_copy(&mac, &eth->dst_addr);
	}
	if (ebb_nic_tx(nif->nic, q->id, &m, 1) != 1) {
		rc = -EAGAIN;
		goto undo;
	}
	STAT_ADD(q, tx_frames, 1);
	STAT_ADD(q, udp_tx, 1);
	return 0;
undo:
	/* The caller gets its payload back where it was. */
	(void)rte_pktmbuf_adj(m, NET_UDP_HDRS);
	return rc;
}

int ebb_udp_send_buf(struct ebb_udp_sock *s, uint32_t ip, uint16_t port,
		     const void *buf, size_t len)
{
	struct rte_mbuf *m;
	void *p;
	int rc;

	if (s == NULL || (buf == NULL && len != 0))
		return -EINVAL;
	if (len > EBB_UDP_MAX_PAYLOAD)
		return -EMSGSIZE;
	m = ebb_net_alloc(s->nif);
	if (m == NULL)
		return -ENOMEM;
	p = rte_pktmbuf_append(m, (uint16_t)len);
	if (p == NULL) {
		/* A pool of buffers too small for one datagram. */
		rte_pktmbuf_free(m);
		return -EMSGSIZE;
	}
	if (len != 0)
		memcpy(p, buf, len);
	rc = ebb_udp_send(s, ip, port, m);
	if (rc != 0)
		rte_pktmbuf_free(m);
	return rc;
}
