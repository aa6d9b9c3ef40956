/* SPDX-License-Identifier: BSD-3-Clause */
/* ARP (RFC 826) for Ethernet and IPv4: requests for our address answered
 * in the mbuf they came in, announcements (RFC 5227), and the neighbour
 * cache: lock-free lookups, resolution with a bounded queue of waiting
 * frames, retries and timeouts. */
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
static_assert((ARP_SLOTS & (ARP_SLOTS - 1)) == 0, "ARP_SLOTS power of 2");
static_assert(ARP_PENDING_MAX <= NET_BURST, "pending frames fit a burst");

/* Whether we would keep @ip (network order) as a neighbour: a unicast
 * station on our link that is not us. */
static bool arp_usable(const struct ebb_net_if *nif, rte_be32_t ip)
{
	uint32_t a = rte_be_to_cpu_32(ip);

	if ((a >> 24) == 0 || (a >> 24) == 127 || (a >> 28) >= 0xe ||
	    ip == nif->ip || (nif->bcast != 0 && ip == nif->bcast))
		return false;
	/* Without a netmask only the gateway is reached directly. */
	if (nif->netmask == 0)
		return ip == nif->gateway;
	return (ip & nif->netmask) == (nif->ip & nif->netmask);
}

static unsigned arp_hash(rte_be32_t ip)
{
	/* Fibonacci hashing: the high bits of the product mix every bit of
	 * the address, where the low byte alone would do for a /24. */
	return (unsigned)(((uint32_t)ip * 2654435761u) >> 24) &
	       (ARP_SLOTS - 1);
}

/* Under arp_lock: the entry of @ip, or NULL with *@slot the slot a new
 * one should take (NULL when every slot of the chain is resolving). */
static struct arp_entry *arp_find(struct ebb_net_if *nif, rte_be32_t ip,
				  uint64_t now, struct arp_entry **slot)
{
	struct arp_entry *empty = NULL, *stale = NULL, *live = NULL;
	unsigned h = arp_hash(ip);

	for (unsigned i = 0; i < ARP_SLOTS; i++) {
		struct arp_entry *e = &nif->arp[(h + i) & (ARP_SLOTS - 1)];

		if (e->ip == ip)
			return e;
		if (e->ip == 0) {
			empty = e;
			break;
		}
		if (e->state == ARP_INCOMPLETE)
			continue;
		if (e->state == ARP_FAILED || now >= e->expires_ns) {
			if (stale == NULL)
				stale = e;
		} else if (live == NULL) {
			live = e;
		}
	}
	/* Reuse a dead entry before growing the chain; evict a live one
	 * only when the chain is full. */
	*slot = stale != NULL ? stale : empty != NULL ? empty : live;
	return NULL;
}

/* Under arp_lock: take the slot for @ip. */
static void arp_claim(struct arp_entry *e, rte_be32_t ip)
{
	rte_seqcount_write_begin(&e->sc);
	e->ip = ip;
	e->state = ARP_FAILED;
	rte_seqcount_write_end(&e->sc);
}

bool net_tx_own(struct net_queue *q, struct rte_mbuf *m)
{
	if (ebb_nic_tx(q->nif->nic, q->id, &m, 1) != 1) {
		rte_pktmbuf_free(m);
		STAT_ADD(q, drop_tx_full, 1);
		return false;
	}
	STAT_ADD(q, tx_frames, 1);
	return true;
}

/* A broadcast ARP request from us for @tip; @tip == our ip makes it an
 * announcement. Counted in drop_tx_full when it does not leave. */
static int arp_send_request(struct net_queue *q, rte_be32_t tip)
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
	arp->arp_opcode = RTE_BE16(RTE_ARP_OP_REQUEST);
	memcpy(&arp->arp_data.arp_sha, &nif->mac, sizeof(nif->mac));
	arp->arp_data.arp_sip = nif->ip;
	memset(&arp->arp_data.arp_tha, 0, sizeof(arp->arp_data.arp_tha));
	arp->arp_data.arp_tip = tip;
	return net_tx_own(q, m) ? 0 : -EAGAIN;
nomem:
	/* Counted where a frame the nic could not send goes: it is one
	 * frame of ours that did not leave. */
	STAT_ADD(q, drop_tx_full, 1);
	return -ENOMEM;
}

__rte_cold
int net_arp_announce(struct net_queue *q)
{
	/* An announcement is a request for our own ip with a zero target
	 * MAC (RFC 5227 2.3): every host that has us cached updates. */
	int rc = arp_send_request(q, q->nif->ip);

	return rc == -ENOMEM ? rc : 0;
}

static void arp_ask(struct net_queue *q, rte_be32_t ip)
{
	if (arp_send_request(q, ip) == 0)
		STAT_ADD(q, arp_requests_sent, 1);
}

int net_arp_resolve(struct net_queue *q, rte_be32_t nh,
		    struct rte_ether_addr *mac, struct rte_mbuf *m)
{
	struct ebb_net_if *nif = q->nif;
	uint64_t now = ebb_time_ns();
	unsigned h = arp_hash(nh);
	struct arp_entry *e, *slot;
	bool ask = false;

	/* Fast path: no lock, no write. */
	for (unsigned i = 0; i < ARP_SLOTS; i++) {
		uint32_t seq;
		rte_be32_t ip;
		uint8_t st;
		uint64_t exp;

		e = &nif->arp[(h + i) & (ARP_SLOTS - 1)];
		do {
			seq = rte_seqcount_read_begin(&e->sc);
			ip = e->ip;
			st = e->state;
			exp = e->expires_ns;
			rte_ether_addr_copy(&e->mac, mac);
		} while (rte_seqcount_read_retry(&e->sc, seq));
		if (ip == 0)
			break;
		if (ip == nh) {
			if (st == ARP_REACHABLE && now < exp)
				return 1;
			break;
		}
	}

	rte_spinlock_lock(&nif->arp_lock);
	e = arp_find(nif, nh, now, &slot);
	if (e != NULL && e->state == ARP_REACHABLE && now < e->expires_ns) {
		/* Learnt since the lock-free look. */
		rte_ether_addr_copy(&e->mac, mac);
		rte_spinlock_unlock(&nif->arp_lock);
		return 1;
	}
	if (e == NULL) {
		if (slot == NULL)
			goto full;
		e = slot;
		arp_claim(e, nh);
	}
	if (e->state != ARP_INCOMPLETE) {
		/* New, failed before, or expired: resolve (again). */
		rte_seqcount_write_begin(&e->sc);
		e->state = ARP_INCOMPLETE;
		e->tries = 1;
		e->expires_ns = now + ARP_RETRY_NS;
		rte_seqcount_write_end(&e->sc);
		e->npending = 0;
		ask = true;
	}
	if (e->npending >= ARP_PENDING_MAX)
		goto full;
	e->pending[e->npending] = m;
	e->pending_q[e->npending] = (uint8_t)q->id;
	e->npending++;
	rte_spinlock_unlock(&nif->arp_lock);
	if (ask) {
		arp_ask(q, nh);
		net_arp_timer_need(nif);
	}
	return 0;
full:
	rte_spinlock_unlock(&nif->arp_lock);
	STAT_ADD(q, arp_pending_full, 1);
	return -ENOBUFS;
}

/* Frames resolved on this core for queue @t of another core: through its
 * ring, then an event there to send them. */
static void handoff_event(void *arg)
{
	(void)net_handoff_drain(arg);
}

unsigned net_handoff_drain(struct net_queue *q)
{
	struct rte_mbuf *pkts[NET_BURST];
	unsigned n, total = 0;
	uint16_t sent;

	if (q->handoff == NULL)
		return 0;
	while ((n = rte_ring_sc_dequeue_burst(q->handoff, (void **)pkts,
					      NET_BURST, NULL)) != 0) {
		total += n;
		if (!__atomic_load_n(&q->attached, __ATOMIC_ACQUIRE)) {
			rte_pktmbuf_free_bulk(pkts, n);
			STAT_ADD(q, drop_tx_full, n);
			continue;
		}
		sent = ebb_nic_tx(q->nif->nic, q->id, pkts, (uint16_t)n);
		STAT_ADD(q, tx_frames, sent);
		STAT_ADD(q, udp_tx, sent);
		if (sent < n) {
			rte_pktmbuf_free_bulk(&pkts[sent], n - sent);
			STAT_ADD(q, drop_tx_full, n - sent);
		}
	}
	return total;
}

/* Send the frames that waited for @mac: ours at once, the other queues'
 * through their owners. */
static void arp_release(struct net_queue *q, const struct rte_ether_addr *mac,
			struct rte_mbuf **pkts, const uint8_t *qids,
			unsigned n)
{
	struct ebb_net_if *nif = q->nif;
	struct rte_mbuf *mine[ARP_PENDING_MAX];
	bool kick[EBB_MAX_CORES] = { false };
	unsigned nmine = 0;
	uint16_t sent;

	for (unsigned i = 0; i < n; i++) {
		struct rte_ether_hdr *eth =
			rte_pktmbuf_mtod(pkts[i], struct rte_ether_hdr *);
		struct net_queue *t = &nif->q[qids[i]];

		rte_ether_addr_copy(mac, &eth->dst_addr);
		if (t == q) {
			mine[nmine++] = pkts[i];
			continue;
		}
		/* Pairs with the release store of attach: a queue seen
		 * attached has its ring and core set. */
		if (!__atomic_load_n(&t->attached, __ATOMIC_ACQUIRE) ||
		    rte_ring_mp_enqueue(t->handoff, pkts[i]) != 0) {
			rte_pktmbuf_free(pkts[i]);
			STAT_ADD(q, drop_tx_full, 1);
			continue;
		}
		kick[t->id] = true;
	}
	for (unsigned i = 0; i < EBB_MAX_CORES; i++) {
		/* On failure (inbox full) the frames wait in the ring for
		 * the queue's next receive burst. */
		if (kick[i])
			(void)ebb_spawn_remote(nif->q[i].core, handoff_event,
					       &nif->q[i]);
	}
	if (nmine == 0)
		return;
	sent = ebb_nic_tx(nif->nic, q->id, mine, (uint16_t)nmine);
	STAT_ADD(q, tx_frames, sent);
	STAT_ADD(q, udp_tx, sent);
	if (sent < nmine) {
		rte_pktmbuf_free_bulk(&mine[sent], nmine - sent);
		STAT_ADD(q, drop_tx_full, nmine - sent);
	}
}

void net_arp_learn(struct net_queue *q, rte_be32_t ip,
		   const struct rte_ether_addr *mac)
{
	struct ebb_net_if *nif = q->nif;
	struct rte_mbuf *pkts[ARP_PENDING_MAX];
	uint8_t qids[ARP_PENDING_MAX];
	uint64_t now = ebb_time_ns();
	struct arp_entry *e, *slot;
	unsigned n = 0;

	rte_spinlock_lock(&nif->arp_lock);
	e = arp_find(nif, ip, now, &slot);
	if (e == NULL) {
		if (slot == NULL) {
			/* Every slot of the chain is resolving: nothing to
			 * evict, and this answer was not asked for. */
			rte_spinlock_unlock(&nif->arp_lock);
			return;
		}
		e = slot;
		arp_claim(e, ip);
	}
	rte_seqcount_write_begin(&e->sc);
	rte_ether_addr_copy(mac, &e->mac);
	e->state = ARP_REACHABLE;
	e->tries = 0;
	e->expires_ns = now + ARP_REACHABLE_NS;
	rte_seqcount_write_end(&e->sc);
	n = e->npending;
	memcpy(pkts, e->pending, n * sizeof(pkts[0]));
	memcpy(qids, e->pending_q, n);
	e->npending = 0;
	rte_spinlock_unlock(&nif->arp_lock);
	if (n != 0)
		arp_release(q, mac, pkts, qids, n);
}

void net_arp_tick(struct ebb_timer *t, void *arg)
{
	struct net_queue *q = arg;
	struct ebb_net_if *nif = q->nif;
	uint64_t now = ebb_time_ns();
	rte_be32_t asks[ARP_SLOTS];
	unsigned nask = 0, waiting = 0;
	uint64_t dropped = 0, timeouts = 0;

	(void)t;
	rte_spinlock_lock(&nif->arp_lock);
	for (unsigned i = 0; i < ARP_SLOTS; i++) {
		struct arp_entry *e = &nif->arp[i];

		if (e->state != ARP_INCOMPLETE || now < e->expires_ns)
			continue;
		if (e->tries >= ARP_TRIES) {
			rte_seqcount_write_begin(&e->sc);
			e->state = ARP_FAILED;
			rte_seqcount_write_end(&e->sc);
			rte_pktmbuf_free_bulk(e->pending, e->npending);
			dropped += e->npending;
			e->npending = 0;
			timeouts++;
			continue;
		}
		rte_seqcount_write_begin(&e->sc);
		e->tries++;
		e->expires_ns = now + ARP_RETRY_NS;
		rte_seqcount_write_end(&e->sc);
		asks[nask++] = e->ip;
	}
	for (unsigned i = 0; i < ARP_SLOTS; i++)
		waiting += nif->arp[i].state == ARP_INCOMPLETE;
	/* Re-armed only while resolutions wait; cleared under the lock, so
	 * a resolution started after this look sees it off and re-arms. */
	if (waiting == 0)
		__atomic_store_n(&nif->arp_timer_on, false, __ATOMIC_RELEASE);
	rte_spinlock_unlock(&nif->arp_lock);
	if (waiting != 0)
		(void)ebb_timer_start(t, ARP_TICK_NS, 0);
	STAT_ADD(q, arp_pending_dropped, dropped);
	STAT_ADD(q, arp_timeouts, timeouts);
	for (unsigned i = 0; i < nask; i++)
		arp_ask(q, asks[i]);
}

static void arp_timer_start(void *arg)
{
	struct ebb_net_if *nif = arg;

	if (!ebb_timer_pending(&nif->arp_timer))
		(void)ebb_timer_start(&nif->arp_timer, ARP_TICK_NS, 0);
}

void net_arp_timer_need(struct ebb_net_if *nif)
{
	bool off = false;
	unsigned core;

	if (!__atomic_compare_exchange_n(&nif->arp_timer_on, &off, true,
					 false, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE))
		return;
	/* Queue 0's core owns the timer; without it attached, nothing
	 * retries (docs/net.md). */
	if (!__atomic_load_n(&nif->q[0].attached, __ATOMIC_ACQUIRE)) {
		__atomic_store_n(&nif->arp_timer_on, false, __ATOMIC_RELEASE);
		return;
	}
	core = nif->q[0].core;
	if (core == ebb_core_id())
		arp_timer_start(nif);
	else if (ebb_spawn_remote(core, arp_timer_start, nif) != 0)
		__atomic_store_n(&nif->arp_timer_on, false, __ATOMIC_RELEASE);
}

__rte_cold
void net_arp_flush(struct ebb_net_if *nif)
{
	for (unsigned i = 0; i < ARP_SLOTS; i++) {
		struct arp_entry *e = &nif->arp[i];

		rte_pktmbuf_free_bulk(e->pending, e->npending);
		e->npending = 0;
	}
}

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
	if ((arp->arp_opcode != RTE_BE16(RTE_ARP_OP_REQUEST) &&
	     arp->arp_opcode != RTE_BE16(RTE_ARP_OP_REPLY)) ||
	    rte_is_multicast_ether_addr(&sha) || rte_is_zero_ether_addr(&sha)) {
		STAT_ADD(q, drop_arp, 1);
		return NET_DROP;
	}
	if (arp->arp_data.arp_tip != nif->ip) {
		STAT_ADD(q, drop_not_for_us, 1);
		return NET_DROP;
	}
	if (arp->arp_opcode == RTE_BE16(RTE_ARP_OP_REPLY)) {
		/* A reply from an address we would never send to (or one
		 * claiming ours) is not learnt. */
		if (!arp_usable(nif, sip)) {
			STAT_ADD(q, drop_arp, 1);
			return NET_DROP;
		}
		net_arp_learn(q, sip, &sha);
		STAT_ADD(q, arp_replies_rcvd, 1);
		/* Done with: the caller frees it. */
		return NET_DROP;
	}
	STAT_ADD(q, arp_requests, 1);
	/* The asker will talk to us: learn it (RFC 826's merge), unless it
	 * is a probe (sender ip 0) or an address we would not use. */
	if (arp_usable(nif, sip))
		net_arp_learn(q, sip, &sha);

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
