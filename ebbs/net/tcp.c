/* SPDX-License-Identifier: BSD-3-Clause */
/* TCP (RFC 9293): per-queue connection tables, the state machine, output
 * with NewReno congestion control, timers, and the application API. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_hash.h>
#include <rte_hash_crc.h>
#include <rte_random.h>
#include <rte_tcp.h>

#include "defs.h"

/* --- constants --- */

#define TCP_HDR_LEN 20u
#define NET_TCP_HDRS (RTE_ETHER_HDR_LEN + 20u + TCP_HDR_LEN)
/* RFC 9293 3.7.1: the MSS to assume when the peer sends none. */
#define TCP_MSS_DEFAULT 536u
/* Payloads up to this size are copied into the header's mbuf; larger ones
 * go as clones of the queued buffers (zero copy). */
#define TCP_COPY_MAX 512u
/* Buffers one segment may chain (header mbuf included). */
#define TCP_MAX_SEGS 16u
/* Out-of-order segments kept per connection. */
#define TCP_OOO_MAX 64u
#define TCP_RTO_INIT_US 1000000u	/* RFC 6298 2.1 */
#define TCP_RTO_MAX_US 60000000u
/* Retransmissions before giving up: SYNs (~31 s with back-off from 1 s),
 * data (~ 15 minutes at most, as Linux's tcp_retries2). */
#define TCP_SYN_RETRIES 5u
#define TCP_DATA_RETRIES 15u
/* Challenge ACKs (RFC 5961 7) per second per queue. */
#define TCP_CHALLENGE_RATE 1000u
/* Segments buffered per queue before a send; those the device refuses
 * (a full ring) wait here for the next try. */
#define TCP_TX_BURST 64u

#define SEQ_LT(a, b) ((int32_t)((a) - (b)) < 0)
#define SEQ_LEQ(a, b) ((int32_t)((a) - (b)) <= 0)
#define SEQ_GT(a, b) ((int32_t)((a) - (b)) > 0)
#define SEQ_GEQ(a, b) ((int32_t)((a) - (b)) >= 0)

#define F_FIN RTE_TCP_FIN_FLAG
#define F_SYN RTE_TCP_SYN_FLAG
#define F_RST RTE_TCP_RST_FLAG
#define F_PSH RTE_TCP_PSH_FLAG
#define F_ACK RTE_TCP_ACK_FLAG

enum tcp_state {
	TCP_CLOSED = 0,
	TCP_SYN_SENT,
	TCP_SYN_RCVD,
	TCP_ESTABLISHED,
	TCP_FIN_WAIT_1,
	TCP_FIN_WAIT_2,
	TCP_CLOSE_WAIT,
	TCP_CLOSING,
	TCP_LAST_ACK,
	TCP_TIME_WAIT,
};

/* A connection's key in its queue's table (the local address is the
 * interface's). Network order. */
struct tcp_key {
	rte_be32_t rip;
	rte_be16_t rport;
	rte_be16_t lport;
};

struct tcp_ooo {
	uint32_t seq, len;
	bool fin;
	struct rte_mbuf *m;	/* payload only; NULL for a bare FIN */
};

struct ebb_tcp_listener {
	struct ebb_net_if *nif;
	ebb_tcp_accept_fn accept;
	void *arg;
	unsigned backlog;
	uint16_t port;
	rte_be16_t port_be;
	bool closed;			/* release store; acquire loads */
	unsigned half[EBB_MAX_CORES];	/* SYN_RCVD per queue (its owner) */
	struct ebb_tcp_listener *dead_next;
};

struct ebb_tcp_conn {
	struct tcp_key key;
	struct net_queue *q;
	struct ebb_tcp_listener *lis;	/* SYN_RCVD: in its backlog */
	const struct ebb_tcp_ops *ops;
	void *arg;
	uint8_t state;
	bool app_closed;	/* ebb_tcp_close(): FIN after the data */
	bool fin_sent;		/* our FIN has a sequence number */
	bool fin_rcvd;
	bool dead;		/* freed at the end of the burst */
	bool listed;		/* on the queue's output list */
	bool ack_now;		/* an ACK is owed at once */
	bool want_writable;	/* a send was refused */
	bool in_recovery;	/* NewReno fast recovery */
	bool rtt_on;		/* timing the segment at rtt_seq */
	bool ws_ok;		/* both sides scale windows */
	bool persist_on;	/* probing a zero window */
	uint8_t snd_wscale, rcv_wscale;
	uint8_t dupacks;
	uint8_t retries;	/* timer expiries in a row */
	uint8_t unacked_segs;	/* data segments received since our ACK */
	uint8_t ka_probes;
	/* Segments still to ACK at once, not delayed: after a hole, while
	 * the sender's window is small again (Linux's quick ACK mode). */
	uint8_t quickack;
	uint16_t mss;		/* what we send at most */

	uint32_t iss, irs;
	uint32_t snd_una, snd_nxt, snd_max;
	uint32_t snd_wnd, max_snd_wnd, snd_wl1, snd_wl2;
	uint32_t cwnd, ssthresh, recover;
	uint32_t fin_seq;
	uint32_t rcv_nxt, rcv_wnd;
	uint32_t rcv_acked;	/* rcv_nxt of our last ACK */
	uint32_t rtt_seq;
	uint64_t rtt_ns;
	uint64_t rtx_ns;	/* last retransmission of snd_una (recovery) */
	uint32_t srtt_us, rttvar_us, rto_us;

	/* Send queue: single buffers (segments of the chains the app gave)
	 * holding the bytes from sq_seq on, in a ring of sq_cap slots. */
	struct rte_mbuf **sq;
	uint32_t sq_cap, sq_head, sq_n;
	uint32_t sq_seq, sq_bytes;
	/* Where the last transmission stopped in the queue: slot index
	 * (from sq_head) and the byte offset of that slot from sq_seq. */
	uint32_t cur_i, cur_off;

	struct tcp_ooo *ooo;	/* sorted by seq, ooo_n used */
	uint32_t ooo_n;

	/* One timer for the retransmission, persist, keepalive and
	 * TIME_WAIT clocks (whichever is due first; it fires, finds what
	 * is due, and re-arms), one for the delayed ACK. */
	struct ebb_timer t, dt;
	uint64_t t_at;		/* when t is set to fire, 0: not set */
	uint64_t rto_start;	/* the retransmission clock started */
	uint64_t persist_start;
	uint64_t last_rx;
	uint64_t tw_until;
	uint32_t ka_idle_s, ka_intvl_s, ka_count;

	/* A blocked ebb_tcp_send_all(): resumed when room opens or the
	 * connection dies; *blocked_rc says which. */
	struct ebb_event_context *blocked;
	int *blocked_rc;

	struct ebb_tcp_conn *next;	/* output list, graveyard */
};

/* One queue's TCP: owner core only. */
struct tcp_queue {
	struct rte_hash *h;		/* tcp_key -> conn, made on demand */
	unsigned nconns;		/* in h (relaxed stores, any reader) */
	unsigned depth;			/* nested entries into the stack */
	struct ebb_tcp_conn *out;	/* output to do at the end */
	struct ebb_tcp_conn *grave;	/* to free at the end */
	uint16_t ntx;
	bool retry_on;			/* a tcp_tx_retry() event is queued */
	struct rte_mbuf *tx[TCP_TX_BURST];
	uint64_t chal_credit_ns, chal_last_ns;
	uint16_t next_port;
	uint32_t isn_secret;
	struct rte_mempool *pool;
	/* A cache of the pool's mbufs for this queue's core, when DPDK
	 * keeps none for it: cluster cores have no lcore id (node.c), and
	 * every get and put would be a compare-and-swap on the pool's
	 * shared ring. NULL when DPDK's per-lcore cache serves. */
	struct rte_mempool_cache *cache;
};

/* Mbufs a queue's own cache holds at most (DPDK flushes at 1.5x): what a
 * node killed with -9 takes out of its pool for good. */
#define TCP_MBUF_CACHE 64u

static const struct ebb_tcp_config tcp_defaults = {
	.max_conns = 16384,
	.sndbuf = 256 * 1024,
	.rcvbuf = 256 * 1024,
	.time_wait_ms = 60000,
	.delack_ms = 40,
	.rto_min_ms = 50,
};

static void tcp_timer_fire(struct ebb_timer *t, void *arg);
static void tcp_delack_fire(struct ebb_timer *t, void *arg);

/* --- queue state, entry and exit --- */

void net_tcp_if_init(struct ebb_net_if *nif)
{
	nif->tcp_cfg = tcp_defaults;
}

int net_tcp_queue_init(struct net_queue *q)
{
	struct tcp_queue *tq = calloc(1, sizeof(*tq));

	if (tq == NULL)
		return -ENOMEM;
	/* Called on the core that will own the queue. In private memory,
	 * not rte_mempool_cache_create()'s shared heap, where a node killed
	 * with -9 would leave it for good. The fields are those
	 * rte_mempool_cache_create() sets (flush at 1.5x the size). Without
	 * one every mbuf goes through the ring: slower, not wrong. */
	if (rte_lcore_id() == LCORE_ID_ANY) {
		tq->cache = aligned_alloc(RTE_CACHE_LINE_SIZE,
					  RTE_ALIGN_CEIL(sizeof(*tq->cache),
							 RTE_CACHE_LINE_SIZE));
		if (tq->cache != NULL) {
			memset(tq->cache, 0, sizeof(*tq->cache));
			tq->cache->size = TCP_MBUF_CACHE;
			tq->cache->flushthresh = TCP_MBUF_CACHE * 3 / 2;
		}
	}
	tq->isn_secret = (uint32_t)rte_rand();
	tq->next_port = (uint16_t)(49152 + rte_rand_max(16384));
	tq->pool = ebb_nic_pool(q->nif->nic);
	q->tcp = tq;
	return 0;
}

/* An mbuf of the queue's pool, as rte_pktmbuf_alloc() gives. */
static struct rte_mbuf *tcp_mbuf_alloc(struct tcp_queue *tq)
{
	struct rte_mbuf *m;

	if (tq->cache == NULL)
		return rte_pktmbuf_alloc(tq->pool);
	if (rte_mempool_generic_get(tq->pool, (void **)&m, 1,
				    tq->cache) != 0)
		return NULL;
	rte_pktmbuf_reset(m);
	return m;
}

/* An indirect mbuf on the data of single buffer @s (rte_pktmbuf_clone()
 * of one segment, from the queue's cache). */
static struct rte_mbuf *tcp_mbuf_clone(struct tcp_queue *tq,
				       struct rte_mbuf *s)
{
	struct rte_mbuf *mi = tcp_mbuf_alloc(tq);

	if (mi != NULL)
		rte_pktmbuf_attach(mi, s);
	return mi;
}

/* Free one buffer (rte_pktmbuf_free_seg()), into the queue's cache when
 * it is of the queue's pool. */
static void tcp_mbuf_free_seg(struct tcp_queue *tq, struct rte_mbuf *m)
{
	m = rte_pktmbuf_prefree_seg(m);
	if (m == NULL)
		return;
	if (tq->cache != NULL && m->pool == tq->pool)
		rte_mempool_generic_put(tq->pool, (void **)&m, 1, tq->cache);
	else
		rte_mbuf_raw_free(m);
}

static void tcp_tx_flush(struct net_queue *q)
{
	struct tcp_queue *tq = q->tcp;
	uint16_t sent;

	if (tq->ntx == 0)
		return;
	sent = ebb_nic_tx(q->nif->nic, q->id, tq->tx, tq->ntx);
	STAT_ADD(q, tx_frames, sent);
	STAT_ADD(q, tcp_tx, sent);
	/* A full ring: keep the rest for the next flush rather than make
	 * TCP find the loss by timer (tcp_leave() schedules a retry). */
	if (sent != 0 && sent < tq->ntx)
		memmove(tq->tx, &tq->tx[sent],
			(tq->ntx - sent) * sizeof(tq->tx[0]));
	tq->ntx = (uint16_t)(tq->ntx - sent);
}

static void tcp_enter(struct net_queue *q);
static void tcp_leave(struct net_queue *q);

/* Frames still waiting for room in the device: try again. */
static void tcp_tx_retry(void *arg)
{
	struct net_queue *q = arg;

	q->tcp->retry_on = false;
	if (!__atomic_load_n(&q->attached, __ATOMIC_RELAXED))
		return;		/* detached: net_tcp_queue_detach() freed them */
	tcp_enter(q);
	tcp_leave(q);
}

/* Queue a whole frame (headers built, destination MAC to fill) towards
 * @dst. The stack owns @m whatever happens: a segment lost here is a
 * segment lost on the wire, which TCP recovers. */
static void tcp_tx_frame(struct net_queue *q, struct rte_mbuf *m,
			 rte_be32_t dst)
{
	struct tcp_queue *tq = q->tcp;
	struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	rte_be32_t nh = net_next_hop(q->nif, dst);
	int rc;

	if (nh == 0) {
		STAT_ADD(q, tx_no_route, 1);
		rte_pktmbuf_free(m);
		return;
	}
	rc = net_arp_resolve(q, nh, &eth->dst_addr, m);
	if (rc == 0)
		return;		/* waits for ARP: the stack's */
	if (rc < 0) {
		/* The next hop's ARP queue is full (counted there). */
		rte_pktmbuf_free(m);
		return;
	}
	if (tq->ntx == TCP_TX_BURST) {
		tcp_tx_flush(q);
		if (tq->ntx == TCP_TX_BURST) {
			/* The device is full and so is our buffer. */
			STAT_ADD(q, drop_tx_full, 1);
			rte_pktmbuf_free(m);
			return;
		}
	}
	tq->tx[tq->ntx++] = m;
	if (tq->ntx == TCP_TX_BURST)
		tcp_tx_flush(q);
}

static void tcp_enter(struct net_queue *q)
{
	q->tcp->depth++;
}

static bool tcp_output(struct ebb_tcp_conn *c);
static void tcp_timer_arm(struct ebb_tcp_conn *c);
static void tcp_conn_free(struct ebb_tcp_conn *c);

/* Leaving the outermost entry: output of every connection touched, the
 * frames in one burst, then the connections that died. */
static void tcp_leave(struct net_queue *q)
{
	struct tcp_queue *tq = q->tcp;
	struct ebb_tcp_conn *blocked = NULL;

	RTE_ASSERT(tq->depth > 0);
	if (tq->depth > 1) {
		tq->depth--;
		return;
	}
	while (tq->out != NULL) {
		struct ebb_tcp_conn *c = tq->out;

		tq->out = c->next;
		c->next = NULL;
		c->listed = false;
		if (c->dead) {
			/* Destroyed while listed: tcp_destroy() left it. */
			c->next = tq->grave;
			tq->grave = c;
			continue;
		}
		if (tcp_output(c)) {
			/* The device is full: it stays listed for the
			 * retry, its data unsent rather than lost. */
			c->listed = true;
			c->next = blocked;
			blocked = c;
		}
		/* Output may run callbacks (writable) that list it again. */
		if (!c->dead)
			tcp_timer_arm(c);
	}
	tq->out = blocked;
	tcp_tx_flush(q);
	if ((tq->ntx != 0 || tq->out != NULL) && !tq->retry_on &&
	    ebb_spawn_local(tcp_tx_retry, q) == 0)
		tq->retry_on = true;
	while (tq->grave != NULL) {
		struct ebb_tcp_conn *c = tq->grave;

		tq->grave = c->next;
		tcp_conn_free(c);
	}
	tq->depth = 0;
}

/* Output (and a timer check) for @c when the stack is left. */
static void tcp_mark(struct ebb_tcp_conn *c)
{
	struct tcp_queue *tq = c->q->tcp;

	if (c->listed || c->dead)
		return;
	c->listed = true;
	c->next = tq->out;
	tq->out = c;
}

void net_tcp_burst_begin(struct net_queue *q)
{
	tcp_enter(q);
}

void net_tcp_burst_end(struct net_queue *q)
{
	tcp_leave(q);
}

/* --- connections: table, creation, death --- */

static struct rte_hash *tcp_table(struct net_queue *q)
{
	struct tcp_queue *tq = q->tcp;
	struct rte_hash_parameters hp = { 0 };
	char name[RTE_HASH_NAMESIZE];

	if (tq->h != NULL)
		return tq->h;
	/* Named after node, interface and queue: the frontend frees the
	 * tables of a node that died (names are cluster-wide). */
	snprintf(name, sizeof(name), "et%u.%u.%u", ebb_node_id(),
		 q->nif->slot, q->id);
	hp.name = name;
	hp.entries = RTE_MAX(q->nif->tcp_cfg.max_conns, 8u);
	hp.key_len = sizeof(struct tcp_key);
	hp.hash_func = rte_hash_crc;
	hp.socket_id = SOCKET_ID_ANY;
	tq->h = rte_hash_create(&hp);
	return tq->h;
}

static struct ebb_tcp_conn *tcp_lookup(struct net_queue *q,
				       const struct tcp_key *k)
{
	void *data;

	if (q->tcp->h == NULL ||
	    rte_hash_lookup_data(q->tcp->h, k, &data) < 0)
		return NULL;
	return data;
}

static uint32_t tcp_isn(struct tcp_queue *tq, const struct tcp_key *k)
{
	/* RFC 6528: a keyed hash of the connection plus a 4 us clock. */
	return rte_hash_crc(k, sizeof(*k), tq->isn_secret) +
	       (uint32_t)(ebb_time_ns() >> 12);
}

static uint8_t tcp_wscale_for(uint32_t rcvbuf)
{
	uint8_t s = 0;

	while (s < 14 && (rcvbuf >> s) > UINT16_MAX)
		s++;
	return s;
}

static struct ebb_tcp_conn *tcp_conn_new(struct net_queue *q,
					 const struct tcp_key *k)
{
	struct ebb_net_if *nif = q->nif;
	struct ebb_tcp_conn *c;
	struct rte_hash *h = tcp_table(q);

	if (h == NULL)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->sq_cap = 16;
	c->sq = malloc(c->sq_cap * sizeof(*c->sq));
	if (c->sq == NULL || rte_hash_add_key_data(h, k, c) < 0) {
		free(c->sq);
		free(c);
		return NULL;
	}
	__atomic_store_n(&q->tcp->nconns, q->tcp->nconns + 1,
			 __ATOMIC_RELAXED);
	c->key = *k;
	c->q = q;
	c->rcv_wnd = nif->tcp_cfg.rcvbuf;
	c->quickack = 16;	/* the sender starts in slow start */
	c->rcv_wscale = tcp_wscale_for(c->rcv_wnd);
	c->mss = TCP_MSS_DEFAULT;
	c->rto_us = TCP_RTO_INIT_US;
	c->iss = tcp_isn(q->tcp, k);
	c->snd_una = c->iss;
	c->snd_nxt = c->iss;
	c->snd_max = c->iss;
	c->sq_seq = c->iss + 1;
	c->last_rx = ebb_time_ns();
	ebb_timer_init(&c->t, tcp_timer_fire, c);
	ebb_timer_init(&c->dt, tcp_delack_fire, c);
	return c;
}

/* Out of the table, timers off, buffers freed; the memory goes at the
 * end of the burst (callers up the stack may still look at it). A
 * blocked sender is resumed with -EPIPE. */
static void tcp_destroy(struct ebb_tcp_conn *c)
{
	struct tcp_queue *tq = c->q->tcp;

	if (c->dead)
		return;
	c->dead = true;
	c->state = TCP_CLOSED;
	(void)rte_hash_del_key(tq->h, &c->key);
	__atomic_store_n(&tq->nconns, tq->nconns - 1, __ATOMIC_RELAXED);
	if (c->lis != NULL) {
		c->lis->half[c->q->id]--;
		c->lis = NULL;
	}
	if (ebb_timer_pending(&c->t))
		(void)ebb_timer_cancel(&c->t);
	if (ebb_timer_pending(&c->dt))
		(void)ebb_timer_cancel(&c->dt);
	if (c->blocked != NULL) {
		*c->blocked_rc = -EPIPE;
		(void)ebb_event_activate_context(c->blocked);
		c->blocked = NULL;
	}
	/* A listed one stays on the output list, whose walk in
	 * tcp_leave() moves it to the grave. */
	if (!c->listed) {
		c->next = tq->grave;
		tq->grave = c;
	}
}

static void tcp_conn_free(struct ebb_tcp_conn *c)
{
	for (uint32_t i = 0; i < c->sq_n; i++)
		rte_pktmbuf_free(c->sq[(c->sq_head + i) % c->sq_cap]);
	for (uint32_t i = 0; i < c->ooo_n; i++)
		rte_pktmbuf_free(c->ooo[i].m);
	free(c->ooo);
	free(c->sq);
	free(c);
}

/* The connection died on its own: tell the app (unless it closed). */
static void tcp_fail(struct ebb_tcp_conn *c, int err)
{
	if (c->dead)
		return;
	if (!c->app_closed && c->ops != NULL && c->ops->error != NULL) {
		c->app_closed = true;	/* no callback after this one */
		c->ops->error(c->arg, c, err);
	}
	tcp_destroy(c);
}

/* --- output --- */

static uint16_t tcp_wnd_field(const struct ebb_tcp_conn *c, bool syn)
{
	uint32_t w = c->rcv_wnd;

	/* RFC 7323 2.2: the window of a SYN is never scaled. */
	if (!syn && c->ws_ok)
		w >>= c->rcv_wscale;
	return (uint16_t)RTE_MIN(w, (uint32_t)UINT16_MAX);
}

/* Prepend Ethernet, IPv4 and TCP headers (with @optlen bytes of options
 * from @opt) to @m, whose pkt_len is the payload, and checksum. */
static void tcp_build(struct net_queue *q, struct rte_mbuf *m,
		      const struct tcp_key *k, uint32_t seq, uint32_t ack,
		      uint8_t flags, uint16_t wnd, const uint8_t *opt,
		      uint32_t optlen)
{
	struct ebb_net_if *nif = q->nif;
	uint32_t plen = rte_pktmbuf_pkt_len(m);
	uint32_t thl = TCP_HDR_LEN + optlen;
	struct rte_ether_hdr *eth;
	struct rte_ipv4_hdr *ip;
	struct rte_tcp_hdr *th;

	eth = (struct rte_ether_hdr *)rte_pktmbuf_prepend(
		m, (uint16_t)(RTE_ETHER_HDR_LEN + sizeof(*ip) + thl));
	RTE_ASSERT(eth != NULL);
	rte_ether_addr_copy(&nif->mac, &eth->src_addr);
	eth->ether_type = RTE_BE16(RTE_ETHER_TYPE_IPV4);
	ip = (struct rte_ipv4_hdr *)(eth + 1);
	ip->version_ihl = RTE_IPV4_VHL_DEF;
	ip->type_of_service = 0;
	ip->total_length = rte_cpu_to_be_16((uint16_t)(sizeof(*ip) + thl +
						       plen));
	ip->packet_id = rte_cpu_to_be_16(q->ip_id++);
	/* Don't fragment: segments are sized to the MSS. */
	ip->fragment_offset = RTE_BE16(RTE_IPV4_HDR_DF_FLAG);
	ip->time_to_live = NET_IP_TTL;
	ip->next_proto_id = IPPROTO_TCP;
	ip->src_addr = nif->ip;
	ip->dst_addr = k->rip;
	ip->hdr_checksum = 0;
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	th = (struct rte_tcp_hdr *)(ip + 1);
	th->src_port = k->lport;
	th->dst_port = k->rport;
	th->sent_seq = rte_cpu_to_be_32(seq);
	th->recv_ack = rte_cpu_to_be_32(ack);
	th->data_off = (uint8_t)((thl / 4) << 4);
	th->tcp_flags = flags;
	th->rx_win = rte_cpu_to_be_16(wnd);
	th->cksum = 0;
	th->tcp_urp = 0;
	if (optlen != 0)
		memcpy(th + 1, opt, optlen);
	m->ol_flags &= ~RTE_MBUF_F_TX_OFFLOAD_MASK;
	if (nif->tx_l4_offload) {
		/* A virtual wire: its receiver is told the sum is good. */
		m->l2_len = RTE_ETHER_HDR_LEN;
		m->l3_len = sizeof(*ip);
		m->ol_flags |= RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_TCP_CKSUM;
		th->cksum = rte_ipv4_phdr_cksum(ip, m->ol_flags);
	} else if (m->nb_segs == 1) {
		th->cksum = rte_ipv4_udptcp_cksum(ip, th);
	} else {
		th->cksum = net_l4_cksum_mbuf(m, ip,
					      RTE_ETHER_HDR_LEN + sizeof(*ip));
	}
}

/* A segment with no connection behind it (RST), from a fresh mbuf. */
static void tcp_send_bare(struct net_queue *q, const struct tcp_key *k,
			  uint32_t seq, uint32_t ack, uint8_t flags)
{
	struct rte_mbuf *m = tcp_mbuf_alloc(q->tcp);

	if (m == NULL)
		return;
	tcp_build(q, m, k, seq, ack, flags, 0, NULL, 0);
	if (flags & F_RST)
		STAT_ADD(q, tcp_rst_sent, 1);
	tcp_tx_frame(q, m, k->rip);
}

/* The queued buffer and offset in it holding byte @off (from sq_seq). */
static void tcp_sq_find(struct ebb_tcp_conn *c, uint32_t off, uint32_t *idx,
			uint32_t *in)
{
	uint32_t i = 0, base = 0;

	/* Sending goes forward: resume from where the last one ended. */
	if (c->cur_i < c->sq_n && c->cur_off <= off) {
		i = c->cur_i;
		base = c->cur_off;
	}
	for (; i < c->sq_n; i++) {
		uint32_t len = rte_pktmbuf_data_len(
			c->sq[(c->sq_head + i) % c->sq_cap]);

		if (off < base + len)
			break;
		base += len;
	}
	c->cur_i = i;
	c->cur_off = base;
	*idx = i;
	*in = off - base;
}

/* Send up to @len bytes of queued data from @seq (@flags, with ACK).
 * Returns the bytes sent: fewer when they span more buffers than a frame
 * may chain and more than one mbuf takes (jumbo segments of many small
 * buffers; a FIN then waits for the next segment), or -1 when no mbuf was
 * to be had. */
static int tcp_xmit(struct ebb_tcp_conn *c, uint32_t seq, uint32_t len,
		    uint8_t flags)
{
	struct net_queue *q = c->q;
	struct rte_mbuf *h = tcp_mbuf_alloc(q->tcp);
	uint32_t idx, in, left = len;

	if (h == NULL)
		return -1;
	if (len != 0) {
		uint32_t pieces = 0, fit = 0, want = len, i2, in2;
		/* What one mbuf takes (the headers go in its headroom). */
		uint32_t room = rte_pktmbuf_tailroom(h);

		tcp_sq_find(c, seq - c->sq_seq, &idx, &in);
		/* Small payloads, and data in many small buffers, are
		 * copied (up to an mbuf's room); the rest is cloned, a
		 * buffer a clone. */
		for (i2 = idx, in2 = in; left > 0 && pieces < TCP_MAX_SEGS - 1;
		     i2++, in2 = 0) {
			uint32_t l = rte_pktmbuf_data_len(
				c->sq[(c->sq_head + i2) % c->sq_cap]) - in2;

			left -= RTE_MIN(left, l);
			fit += l;
			pieces++;
		}
		if (left > 0) {
			/* Too many buffers for one frame: copy what one
			 * mbuf takes, or clone what fits. */
			len = RTE_MAX(RTE_MIN(len, room), RTE_MIN(fit, len));
			if (len < want)
				flags &= (uint8_t)~F_FIN;
		}
		left = len;
		if (len <= TCP_COPY_MAX || (pieces >= TCP_MAX_SEGS - 1 &&
					    len <= room)) {
			char *dst = rte_pktmbuf_append(h, (uint16_t)len);

			RTE_ASSERT(dst != NULL);
			while (left > 0) {
				struct rte_mbuf *s =
					c->sq[(c->sq_head + idx) % c->sq_cap];
				uint32_t n = RTE_MIN(left,
					rte_pktmbuf_data_len(s) - in);

				memcpy(dst, rte_pktmbuf_mtod_offset(s, char *,
								   in), n);
				dst += n;
				left -= n;
				in = 0;
				idx++;
			}
		} else {
			while (left > 0) {
				struct rte_mbuf *s =
					c->sq[(c->sq_head + idx) % c->sq_cap];
				uint32_t n = RTE_MIN(left,
					rte_pktmbuf_data_len(s) - in);
				struct rte_mbuf *cl =
					tcp_mbuf_clone(q->tcp, s);

				if (cl == NULL) {
					rte_pktmbuf_free(h);
					return -1;
				}
				(void)rte_pktmbuf_adj(cl, (uint16_t)in);
				(void)rte_pktmbuf_trim(cl, (uint16_t)(
					rte_pktmbuf_data_len(cl) - n));
				(void)rte_pktmbuf_chain(h, cl);
				left -= n;
				in = 0;
				idx++;
			}
		}
	}
	tcp_build(q, h, &c->key, seq, c->rcv_nxt, flags | F_ACK,
		  tcp_wnd_field(c, false), NULL, 0);
	c->ack_now = false;
	c->unacked_segs = 0;
	c->rcv_acked = c->rcv_nxt;
	tcp_tx_frame(q, h, c->key.rip);
	return (int)len;
}

/* SYN or SYN-ACK with our options (MSS, window scale). */
static void tcp_send_syn(struct ebb_tcp_conn *c)
{
	struct rte_mbuf *m = tcp_mbuf_alloc(c->q->tcp);
	uint8_t opt[8];
	bool ack = c->state == TCP_SYN_RCVD;

	if (m == NULL)
		return;
	opt[0] = 2;	/* MSS */
	opt[1] = 4;
	opt[2] = (uint8_t)(c->q->nif->tcp_mss >> 8);
	opt[3] = (uint8_t)c->q->nif->tcp_mss;
	opt[4] = 1;	/* NOP */
	opt[5] = 3;	/* window scale */
	opt[6] = 3;
	opt[7] = c->rcv_wscale;
	/* RFC 7323 1.3: offer it on a SYN; on a SYN-ACK only if the SYN
	 * had it. */
	tcp_build(c->q, m, &c->key, c->iss, ack ? c->rcv_nxt : 0,
		  (uint8_t)(F_SYN | (ack ? F_ACK : 0)), tcp_wnd_field(c, true),
		  opt, (!ack || c->ws_ok) ? 8 : 4);
	if (ack) {
		c->rcv_acked = c->rcv_nxt;
		c->ack_now = false;
	}
	if (SEQ_LT(c->snd_max, c->iss + 1))
		c->snd_max = c->iss + 1;
	c->snd_nxt = c->iss + 1;
	tcp_tx_frame(c->q, m, c->key.rip);
}

static void tcp_send_ack(struct ebb_tcp_conn *c)
{
	(void)tcp_xmit(c, c->snd_nxt, 0, 0);
}

/* A window probe or keepalive: an ACK carrying an old sequence number,
 * which the peer must answer with an ACK of its own (RFC 9293 3.8.4). */
static void tcp_send_probe(struct ebb_tcp_conn *c)
{
	(void)tcp_xmit(c, c->snd_una - 1, 0, 0);
}

/* A challenge ACK (RFC 5961 7), rate limited per queue. */
static void tcp_challenge(struct ebb_tcp_conn *c)
{
	struct tcp_queue *tq = c->q->tcp;
	const uint64_t cost = 1000000000ull / TCP_CHALLENGE_RATE;
	uint64_t now = ebb_time_ns();

	tq->chal_credit_ns = RTE_MIN(tq->chal_credit_ns +
					     (now - tq->chal_last_ns),
				     cost * TCP_CHALLENGE_RATE);
	tq->chal_last_ns = now;
	if (tq->chal_credit_ns < cost)
		return;
	tq->chal_credit_ns -= cost;
	STAT_ADD(c->q, tcp_challenge_acks, 1);
	tcp_send_ack(c);
}

static bool tcp_can_send_data(const struct ebb_tcp_conn *c)
{
	return c->state == TCP_ESTABLISHED || c->state == TCP_CLOSE_WAIT ||
	       c->state == TCP_FIN_WAIT_1 || c->state == TCP_CLOSING ||
	       c->state == TCP_LAST_ACK;
}

/* Room for one more segment: a free slot in the queue's buffer, or one
 * that a send to the device makes. */
static bool tcp_tx_room(struct net_queue *q)
{
	if (q->tcp->ntx < TCP_TX_BURST)
		return true;
	tcp_tx_flush(q);
	return q->tcp->ntx < TCP_TX_BURST;
}

/* Send what the windows allow, then the FIN once all data went, then an
 * owed ACK if nothing carried it. Returns true when the device's full
 * ring stopped it (try again later). */
static bool tcp_output(struct ebb_tcp_conn *c)
{
	uint32_t end = c->sq_seq + c->sq_bytes;

	if (c->state == TCP_CLOSED || c->state == TCP_SYN_SENT ||
	    c->state == TCP_SYN_RCVD)
		goto ack;
	while (tcp_can_send_data(c)) {
		/* Limited transmit (RFC 3042): a new segment for each of
		 * the first two duplicate ACKs keeps ACKs coming. */
		uint32_t lt = c->in_recovery ? 0 : c->dupacks * c->mss;
		uint32_t wnd = RTE_MIN(c->snd_wnd, c->cwnd + lt);
		uint32_t flight = c->snd_nxt - c->snd_una;
		uint32_t len, seq = c->snd_nxt;
		uint8_t flags = 0;
		int sent;

		if (c->fin_sent && SEQ_GT(seq, c->fin_seq))
			break;
		len = SEQ_LT(seq, end) ? end - seq : 0;
		if (flight >= wnd && !(len == 0 && c->fin_sent &&
				       seq == c->fin_seq)) {
			if (c->snd_wnd == 0 && flight == 0 && len != 0 &&
			    !c->persist_on) {
				c->persist_on = true;
				c->persist_start = ebb_time_ns();
			}
			break;
		}
		len = RTE_MIN(len, RTE_MIN((uint32_t)c->mss, wnd - flight));
		if (c->app_closed && seq + len == end) {
			if (!c->fin_sent) {
				c->fin_sent = true;
				c->fin_seq = end;
				if (c->state == TCP_ESTABLISHED)
					c->state = TCP_FIN_WAIT_1;
				else if (c->state == TCP_CLOSE_WAIT)
					c->state = TCP_LAST_ACK;
			}
			if (seq + len == c->fin_seq)
				flags |= F_FIN;
		}
		if (len == 0 && !(flags & F_FIN))
			break;
		if (!tcp_tx_room(c->q))
			return true;
		if (seq + len == end)
			flags |= F_PSH;
		sent = tcp_xmit(c, seq, len, flags);
		if (sent < 0)
			break;
		if ((uint32_t)sent < len) {
			len = (uint32_t)sent;	/* FIN not reached yet */
			flags &= (uint8_t)~F_FIN;
		}
		if (SEQ_LT(seq, c->snd_max))
			STAT_ADD(c->q, tcp_retransmits, 1);
		if (!c->rtt_on && seq == c->snd_max) {
			c->rtt_on = true;
			c->rtt_seq = seq;
			c->rtt_ns = ebb_time_ns();
		}
		if (c->snd_una == c->snd_max)
			c->rto_start = ebb_time_ns();
		c->snd_nxt = seq + len + ((flags & F_FIN) ? 1 : 0);
		if (SEQ_GT(c->snd_nxt, c->snd_max))
			c->snd_max = c->snd_nxt;
	}
ack:
	if (!c->ack_now)
		return false;
	if (!tcp_tx_room(c->q))
		return true;
	if (c->state == TCP_SYN_RCVD)
		tcp_send_syn(c);	/* a SYN again: our SYN-ACK was lost */
	else if (c->state != TCP_CLOSED && c->state != TCP_SYN_SENT)
		tcp_send_ack(c);
	return false;
}

/* --- timers --- */

static uint64_t tcp_rto_ns(const struct ebb_tcp_conn *c)
{
	uint64_t rto = (uint64_t)c->rto_us << RTE_MIN(c->retries, 20u);

	return RTE_MIN(rto, (uint64_t)TCP_RTO_MAX_US) * 1000u;
}

/* When the connection's timer must fire next, 0: never. */
static uint64_t tcp_timer_due(const struct ebb_tcp_conn *c)
{
	uint32_t end = c->sq_seq + c->sq_bytes;

	switch (c->state) {
	case TCP_CLOSED:
		return 0;
	case TCP_TIME_WAIT:
		return c->tw_until;
	case TCP_SYN_SENT:
	case TCP_SYN_RCVD:
		return c->rto_start + tcp_rto_ns(c);
	default:
		break;
	}
	if (c->snd_una != c->snd_max)
		return c->rto_start + tcp_rto_ns(c);
	if (c->persist_on && c->snd_wnd == 0 && SEQ_LT(c->snd_nxt, end))
		return c->persist_start + tcp_rto_ns(c);
	if (c->ka_idle_s != 0 && c->state == TCP_ESTABLISHED)
		return c->last_rx +
		       ((uint64_t)c->ka_idle_s +
			(uint64_t)c->ka_probes * c->ka_intvl_s) *
			       1000000000ull;
	return 0;
}

static void tcp_timer_arm(struct ebb_tcp_conn *c)
{
	uint64_t due = tcp_timer_due(c), now;

	if (due == 0)
		return;	/* a set timer finds nothing to do and stops */
	if (c->t_at != 0 && c->t_at <= due && ebb_timer_pending(&c->t))
		return;	/* fires first and re-arms */
	now = ebb_time_ns();
	c->t_at = due;
	(void)ebb_timer_start(&c->t, due > now ? due - now : 0, 0);
}

/* The retransmission clock ran out. */
static void tcp_rto(struct ebb_tcp_conn *c)
{
	uint32_t flight = c->snd_max - c->snd_una;
	unsigned limit = (c->state == TCP_SYN_SENT ||
			  c->state == TCP_SYN_RCVD) ? TCP_SYN_RETRIES :
						      TCP_DATA_RETRIES;

	STAT_ADD(c->q, tcp_timeouts, 1);
	if (c->retries >= limit) {
		STAT_ADD(c->q, tcp_aborted, 1);
		if (c->state != TCP_SYN_RCVD)
			tcp_send_bare(c->q, &c->key, c->snd_nxt, c->rcv_nxt,
				      F_RST | F_ACK);
		tcp_fail(c, -ETIMEDOUT);
		return;
	}
	c->retries++;
	c->rto_start = ebb_time_ns();
	c->rtt_on = false;	/* Karn: no sample from a retransmission */
	if (c->state == TCP_SYN_SENT || c->state == TCP_SYN_RCVD) {
		STAT_ADD(c->q, tcp_retransmits, 1);
		tcp_send_syn(c);
		return;
	}
	/* RFC 5681 3.1 (7), RFC 6582 4: loss window, go back. */
	c->ssthresh = RTE_MAX(flight / 2, 2u * c->mss);
	c->cwnd = c->mss;
	c->in_recovery = false;
	/* RFC 6582 would set recover to snd_max and allow no fast
	 * retransmit until all of it is acknowledged; without SACK, a
	 * second loss in that window then costs another timeout. A
	 * spurious fast retransmit costs one segment: allow it. */
	c->recover = c->snd_una;
	c->dupacks = 0;
	c->snd_nxt = c->snd_una;
	tcp_output(c);
}

static void tcp_timer_fire(struct ebb_timer *t, void *arg)
{
	struct ebb_tcp_conn *c = arg;
	struct net_queue *q = c->q;
	uint64_t now = ebb_time_ns(), due;
	uint32_t end;

	(void)t;
	c->t_at = 0;
	due = tcp_timer_due(c);
	if (due == 0)
		return;
	if (due > now) {
		tcp_timer_arm(c);
		return;
	}
	tcp_enter(q);
	end = c->sq_seq + c->sq_bytes;
	if (c->state == TCP_TIME_WAIT) {
		tcp_destroy(c);
	} else if (c->state == TCP_SYN_SENT || c->state == TCP_SYN_RCVD ||
		   c->snd_una != c->snd_max) {
		tcp_rto(c);
	} else if (c->persist_on && c->snd_wnd == 0 &&
		   SEQ_LT(c->snd_nxt, end)) {
		/* Persist (RFC 9293 3.8.6.1): probe, back off, never give
		 * up while the peer answers. */
		tcp_send_probe(c);
		if (c->retries < 20)
			c->retries++;
		c->persist_start = now;
	} else if (c->ka_idle_s != 0) {
		if (c->ka_probes >= c->ka_count) {
			STAT_ADD(q, tcp_aborted, 1);
			tcp_fail(c, -ETIMEDOUT);
		} else {
			c->ka_probes++;
			tcp_send_probe(c);
		}
	}
	tcp_mark(c);
	tcp_leave(q);
}

static void tcp_delack_fire(struct ebb_timer *t, void *arg)
{
	struct ebb_tcp_conn *c = arg;

	(void)t;
	if (c->rcv_acked == c->rcv_nxt)
		return;
	tcp_enter(c->q);
	c->ack_now = true;
	tcp_mark(c);
	tcp_leave(c->q);
}

/* --- input --- */

/* MSS and window scale from a SYN's options. */
static void tcp_parse_syn_opts(struct ebb_tcp_conn *c, const uint8_t *o,
			       uint32_t len)
{
	bool ws = false;
	uint8_t wscale = 0;
	uint32_t mss = TCP_MSS_DEFAULT;

	for (uint32_t i = 0; i < len;) {
		uint8_t kind = o[i], l;

		if (kind == 0)
			break;
		if (kind == 1) {
			i++;
			continue;
		}
		if (i + 1 >= len)
			break;
		l = o[i + 1];
		if (l < 2 || i + l > len)
			break;
		if (kind == 2 && l == 4)
			mss = (uint32_t)o[i + 2] << 8 | o[i + 3];
		else if (kind == 3 && l == 3) {
			ws = true;
			wscale = RTE_MIN(o[i + 2], 14);	/* RFC 7323 2.3 */
		}
		i += l;
	}
	c->mss = (uint16_t)RTE_MAX(RTE_MIN(mss, (uint32_t)c->q->nif->tcp_mss),
				   64u);
	c->ws_ok = ws;
	c->snd_wscale = ws ? wscale : 0;
	if (!ws) {
		c->rcv_wscale = 0;
		c->rcv_wnd = RTE_MIN(c->rcv_wnd, (uint32_t)UINT16_MAX);
	}
}

/* Cut @n bytes off the front of chain @m, freeing emptied buffers.
 * Returns the new head. */
static struct rte_mbuf *mbuf_cut_front(struct rte_mbuf *m, uint32_t n)
{
	while (n > 0 && m != NULL) {
		if (n < rte_pktmbuf_data_len(m)) {
			/* adj works on the first buffer: exactly this. */
			(void)rte_pktmbuf_adj(m, (uint16_t)n);
			break;
		}
		struct rte_mbuf *next = m->next;
		uint32_t pkt = rte_pktmbuf_pkt_len(m) -
			       rte_pktmbuf_data_len(m);
		uint16_t segs = (uint16_t)(m->nb_segs - 1);

		n -= rte_pktmbuf_data_len(m);
		m->next = NULL;
		m->nb_segs = 1;
		rte_pktmbuf_free_seg(m);
		m = next;
		if (m != NULL) {
			m->pkt_len = pkt;
			m->nb_segs = segs;
		}
	}
	return m;
}

/* Cut chain @m to @len bytes. */
static void mbuf_cut_to(struct rte_mbuf *m, uint32_t len)
{
	struct rte_mbuf *s = m, *prev = NULL;
	uint32_t seen = 0;
	uint16_t segs = 0;

	if (rte_pktmbuf_pkt_len(m) <= len)
		return;
	while (s != NULL && seen + rte_pktmbuf_data_len(s) < len) {
		seen += rte_pktmbuf_data_len(s);
		segs++;
		prev = s;
		s = s->next;
	}
	/* s holds byte len - 1 (or len is 0 and s is the head) */
	if (len == 0) {
		if (m->next != NULL)
			rte_pktmbuf_free(m->next);
		m->next = NULL;
		m->data_len = 0;
		m->pkt_len = 0;
		m->nb_segs = 1;
		return;
	}
	RTE_ASSERT(s != NULL);
	(void)prev;
	s->data_len = (uint16_t)(len - seen);
	segs++;
	if (s->next != NULL)
		rte_pktmbuf_free(s->next);
	s->next = NULL;
	m->pkt_len = len;
	m->nb_segs = segs;
}

static void tcp_deliver(struct ebb_tcp_conn *c, struct rte_mbuf *m)
{
	if (c->app_closed || c->ops == NULL) {
		rte_pktmbuf_free(m);
		return;
	}
	c->ops->recv(c->arg, c, m);
}

static void tcp_got_fin(struct ebb_tcp_conn *c)
{
	c->fin_rcvd = true;
	c->rcv_nxt++;
	c->ack_now = true;
	switch (c->state) {
	case TCP_SYN_RCVD:
	case TCP_ESTABLISHED:
		c->state = TCP_CLOSE_WAIT;
		break;
	case TCP_FIN_WAIT_1:
		/* Our FIN acknowledged already is FIN_WAIT_2's case. */
		c->state = TCP_CLOSING;
		break;
	case TCP_FIN_WAIT_2:
		c->state = TCP_TIME_WAIT;
		c->tw_until = ebb_time_ns() +
			      (uint64_t)c->q->nif->tcp_cfg.time_wait_ms *
				      1000000ull;
		break;
	default:
		break;
	}
	if (!c->app_closed && c->ops != NULL)
		c->ops->recv(c->arg, c, NULL);
}

/* Take in-order data from the out-of-order queue. */
static void tcp_ooo_pull(struct ebb_tcp_conn *c)
{
	while (c->ooo_n > 0 && !c->dead && SEQ_LEQ(c->ooo[0].seq,
						   c->rcv_nxt)) {
		struct tcp_ooo e = c->ooo[0];
		uint32_t end = e.seq + e.len;

		memmove(&c->ooo[0], &c->ooo[1],
			(c->ooo_n - 1) * sizeof(c->ooo[0]));
		c->ooo_n--;
		if (SEQ_LEQ(end, c->rcv_nxt) && !(e.fin && end == c->rcv_nxt)) {
			rte_pktmbuf_free(e.m);
			continue;
		}
		if (e.m != NULL && SEQ_GT(end, c->rcv_nxt)) {
			e.m = mbuf_cut_front(e.m, c->rcv_nxt - e.seq);
			c->rcv_nxt = end;
			tcp_deliver(c, e.m);
		} else {
			rte_pktmbuf_free(e.m);
		}
		if (e.fin && !c->dead && c->rcv_nxt == end && !c->fin_rcvd)
			tcp_got_fin(c);
	}
}

static void tcp_ooo_add(struct ebb_tcp_conn *c, uint32_t seq,
			struct rte_mbuf *m, uint32_t len, bool fin)
{
	uint32_t i;

	if (c->ooo == NULL) {
		c->ooo = malloc(TCP_OOO_MAX * sizeof(*c->ooo));
		if (c->ooo == NULL)
			goto drop;
	}
	for (i = 0; i < c->ooo_n; i++) {
		const struct tcp_ooo *e = &c->ooo[i];

		/* Starts inside one we have: a duplicate, or an overlap
		 * the next retransmission fills. */
		if (SEQ_GEQ(seq, e->seq) && SEQ_LT(seq, e->seq + e->len))
			goto drop;
		if (SEQ_LT(seq, e->seq))
			break;
		if (seq == e->seq)	/* both empty: a FIN again */
			goto drop;
	}
	if (c->ooo_n == TCP_OOO_MAX)
		goto drop;
	memmove(&c->ooo[i + 1], &c->ooo[i], (c->ooo_n - i) * sizeof(*c->ooo));
	c->ooo[i] = (struct tcp_ooo){ .seq = seq, .len = len, .fin = fin,
				      .m = m };
	c->ooo_n++;
	STAT_ADD(c->q, tcp_ooo, 1);
	return;
drop:
	STAT_ADD(c->q, tcp_dropped, 1);
	rte_pktmbuf_free(m);
}

/* New data acknowledged: NewReno's growth and recovery (RFC 5681, 6582),
 * the RTT sample (RFC 6298), the send queue trimmed. */
static void tcp_acked(struct ebb_tcp_conn *c, uint32_t ack)
{
	uint32_t acked = ack - c->snd_una;
	uint32_t end = c->sq_seq + c->sq_bytes;
	uint32_t data = SEQ_LT(ack, end) ? ack - c->sq_seq : c->sq_bytes;
	uint64_t now = ebb_time_ns();

	if (c->rtt_on && SEQ_GT(ack, c->rtt_seq)) {
		uint32_t r = (uint32_t)RTE_MIN((now - c->rtt_ns) / 1000,
					       (uint64_t)UINT32_MAX / 8);
		uint32_t min_us = c->q->nif->tcp_cfg.rto_min_ms * 1000u;

		c->rtt_on = false;
		if (c->srtt_us == 0) {
			c->srtt_us = r;
			c->rttvar_us = r / 2;
		} else {
			uint32_t d = c->srtt_us > r ? c->srtt_us - r :
						      r - c->srtt_us;

			c->rttvar_us = (3 * c->rttvar_us + d) / 4;
			c->srtt_us = (7 * c->srtt_us + r) / 8;
		}
		c->rto_us = RTE_MAX(c->srtt_us + RTE_MAX(4 * c->rttvar_us,
							 1000u), min_us);
		c->rto_us = RTE_MIN(c->rto_us, TCP_RTO_MAX_US);
	}
	c->retries = 0;
	c->rto_start = now;

	if (c->in_recovery) {
		if (SEQ_GEQ(ack, c->recover)) {
			/* Full ACK: deflate (RFC 6582 3.2 (3)). */
			c->in_recovery = false;
			c->cwnd = RTE_MIN(c->ssthresh,
					  RTE_MAX(c->snd_max - ack, 0u) +
						  c->mss);
		} else {
			/* Partial ACK: the next hole goes now. */
			c->cwnd = c->cwnd > acked ? c->cwnd - acked : 0;
			c->cwnd += c->mss;
		}
	} else if (c->cwnd < c->ssthresh) {
		c->cwnd += RTE_MIN(acked, (uint32_t)c->mss);
	} else {
		c->cwnd += RTE_MAX((uint32_t)c->mss * c->mss / c->cwnd, 1u);
	}
	c->dupacks = 0;

	/* Free the acknowledged buffers. */
	c->sq_seq += data;
	c->sq_bytes -= data;
	while (data > 0) {
		struct rte_mbuf *s = c->sq[c->sq_head];
		uint32_t l = rte_pktmbuf_data_len(s);

		if (data < l) {
			(void)rte_pktmbuf_adj(s, (uint16_t)data);
			break;
		}
		data -= l;
		tcp_mbuf_free_seg(c->q->tcp, s);
		c->sq_head = (c->sq_head + 1) % c->sq_cap;
		c->sq_n--;
	}
	/* The cursor counts from the old head: restart it. */
	c->cur_i = 0;
	c->cur_off = 0;
	c->snd_una = ack;
	if (SEQ_LT(c->snd_nxt, ack))
		c->snd_nxt = ack;
	if (c->in_recovery) {
		/* RFC 6582 3.2 (5): retransmit the first unacknowledged. */
		uint32_t len = RTE_MIN(c->sq_bytes, (uint32_t)c->mss);

		if (len != 0 && tcp_xmit(c, c->snd_una, len, 0) > 0) {
			STAT_ADD(c->q, tcp_retransmits, 1);
			c->rtx_ns = now;
		}
	}
	if (c->want_writable && c->ops != NULL && c->ops->writable != NULL &&
	    !c->app_closed &&
	    ebb_tcp_send_space(c) >= c->q->nif->tcp_cfg.sndbuf / 4) {
		c->want_writable = false;
		c->ops->writable(c->arg, c);
	}
	if (c->blocked != NULL && !c->dead &&
	    ebb_tcp_send_space(c) >= c->q->nif->tcp_cfg.sndbuf / 4) {
		*c->blocked_rc = 0;
		(void)ebb_event_activate_context(c->blocked);
		c->blocked = NULL;
	}
}

static void tcp_dupack(struct ebb_tcp_conn *c)
{
	uint32_t flight = c->snd_max - c->snd_una;

	if (c->in_recovery) {
		uint64_t now = ebb_time_ns();
		uint64_t wait = RTE_MAX(2ull * c->srtt_us, 1000ull) * 1000u;

		c->cwnd += c->mss;	/* RFC 6582 3.2 (4) */
		/* Duplicates still coming well past a round trip after we
		 * sent snd_una again: that copy was lost too. Without SACK
		 * only the timer would tell, hundreds of RTTs later (a
		 * time-based guess, as RACK makes). */
		if (now - c->rtx_ns > wait && c->sq_bytes != 0) {
			c->rtx_ns = now;
			STAT_ADD(c->q, tcp_retransmits, 1);
			(void)tcp_xmit(c, c->snd_una,
				       RTE_MIN(c->sq_bytes, (uint32_t)c->mss),
				       0);
		}
		return;
	}
	/* Early retransmit (RFC 5827): with fewer than four segments out
	 * and nothing more to send, three duplicates never come. */
	uint32_t out = (flight + c->mss - 1) / c->mss;
	unsigned thresh = 3;

	if (out < 4 && c->sq_seq + c->sq_bytes == c->snd_max)
		thresh = out > 1 ? out - 1 : 1;
	if (++c->dupacks != thresh)
		return;
	/* RFC 6582 3.2 (2): no new recovery for losses of the window that
	 * was already recovered (after a timeout). */
	if (SEQ_LT(c->snd_una, c->recover))
		return;
	c->ssthresh = RTE_MAX(flight / 2, 2u * c->mss);
	c->recover = c->snd_max;
	c->in_recovery = true;
	c->cwnd = c->ssthresh + 3u * c->mss;
	c->rtt_on = false;
	c->rtx_ns = ebb_time_ns();
	STAT_ADD(c->q, tcp_fast_retransmits, 1);
	STAT_ADD(c->q, tcp_retransmits, 1);
	if (c->sq_bytes != 0)
		(void)tcp_xmit(c, c->snd_una,
			       RTE_MIN(c->sq_bytes, (uint32_t)c->mss), 0);
	else if (c->fin_sent)
		(void)tcp_xmit(c, c->fin_seq, 0, F_FIN);
}

static void tcp_established(struct ebb_tcp_conn *c)
{
	c->state = TCP_ESTABLISHED;
	c->cwnd = RTE_MIN(10u * c->mss, RTE_MAX(2u * c->mss, 14600u));
	c->ssthresh = UINT32_MAX / 2;
	c->recover = c->iss;
	c->retries = 0;
}

struct tcp_seg {
	uint32_t seq, ack, len;	/* len: payload bytes */
	uint32_t wnd;		/* unscaled */
	uint8_t flags;
	const uint8_t *opt;
	uint32_t optlen;
};

/* A SYN for a listener: a new connection in SYN_RCVD. */
static void tcp_passive_open(struct net_queue *q, struct ebb_tcp_listener *l,
			     const struct tcp_key *k,
			     const struct tcp_seg *s)
{
	struct ebb_tcp_conn *c;

	if (q->tcp->nconns >= q->nif->tcp_cfg.max_conns) {
		STAT_ADD(q, tcp_conns_full, 1);
		tcp_send_bare(q, k, 0, s->seq + 1, F_RST | F_ACK);
		return;
	}
	if (l->half[q->id] >= l->backlog) {
		STAT_ADD(q, tcp_backlog_full, 1);
		return;
	}
	c = tcp_conn_new(q, k);
	if (c == NULL) {
		STAT_ADD(q, tcp_conns_full, 1);
		tcp_send_bare(q, k, 0, s->seq + 1, F_RST | F_ACK);
		return;
	}
	c->lis = l;
	l->half[q->id]++;
	c->state = TCP_SYN_RCVD;
	c->irs = s->seq;
	c->rcv_nxt = s->seq + 1;
	c->rcv_acked = c->rcv_nxt;
	tcp_parse_syn_opts(c, s->opt, s->optlen);
	c->snd_wnd = s->wnd;	/* never scaled in a SYN */
	c->max_snd_wnd = c->snd_wnd;
	c->snd_wl1 = s->seq;
	c->snd_wl2 = c->iss;
	c->rto_start = ebb_time_ns();
	tcp_send_syn(c);
	tcp_mark(c);
}

static struct ebb_tcp_listener *tcp_listener(struct ebb_net_if *nif,
					     rte_be16_t port)
{
	for (unsigned i = 0; i < TCP_MAX_LISTENERS; i++) {
		/* Pairs with the release stores of listen and unlisten. */
		struct ebb_tcp_listener *l =
			__atomic_load_n(&nif->tcp_lis[i], __ATOMIC_ACQUIRE);

		if (l != NULL && l->port_be == port &&
		    !__atomic_load_n(&l->closed, __ATOMIC_ACQUIRE))
			return l;
	}
	return NULL;
}

/* SYN_SENT (RFC 9293 3.10.7.3). */
static void tcp_input_syn_sent(struct ebb_tcp_conn *c,
			       const struct tcp_seg *s)
{
	bool ack_ok = (s->flags & F_ACK) && SEQ_GT(s->ack, c->iss) &&
		      SEQ_LEQ(s->ack, c->snd_max);

	if ((s->flags & F_ACK) && !ack_ok) {
		if (!(s->flags & F_RST))
			tcp_send_bare(c->q, &c->key, s->ack, 0, F_RST);
		STAT_ADD(c->q, tcp_dropped, 1);
		return;
	}
	if (s->flags & F_RST) {
		if (ack_ok) {
			STAT_ADD(c->q, tcp_rst_rcvd, 1);
			tcp_fail(c, -ECONNREFUSED);
		} else {
			STAT_ADD(c->q, tcp_dropped, 1);
		}
		return;
	}
	if (!(s->flags & F_SYN)) {
		STAT_ADD(c->q, tcp_dropped, 1);
		return;
	}
	c->irs = s->seq;
	c->rcv_nxt = s->seq + 1;
	tcp_parse_syn_opts(c, s->opt, s->optlen);
	c->snd_wnd = s->wnd;
	c->max_snd_wnd = c->snd_wnd;
	c->snd_wl1 = s->seq;
	c->snd_wl2 = s->ack;
	if (!ack_ok) {
		/* Simultaneous open: answer with SYN-ACK. */
		c->state = TCP_SYN_RCVD;
		c->rto_start = ebb_time_ns();
		tcp_send_syn(c);
		return;
	}
	c->snd_una = s->ack;
	tcp_established(c);
	STAT_ADD(c->q, tcp_connected, 1);
	c->ack_now = true;
	tcp_mark(c);
	if (c->ops != NULL && c->ops->connected != NULL && !c->app_closed)
		c->ops->connected(c->arg, c);
}

/* Every synchronized state and SYN_RCVD (RFC 9293 3.10.7.4). @m holds
 * the payload only (NULL when none). */
static void tcp_input_conn(struct ebb_tcp_conn *c, const struct tcp_seg *s,
			   struct rte_mbuf *m)
{
	struct net_queue *q = c->q;
	uint32_t seg_len = s->len + ((s->flags & F_SYN) ? 1 : 0) +
			   ((s->flags & F_FIN) ? 1 : 0);
	uint32_t wnd = c->rcv_wnd;
	uint32_t seq = s->seq;
	bool ok;

	c->last_rx = ebb_time_ns();
	c->ka_probes = 0;
	tcp_mark(c);

	/* 1. Acceptability of the sequence number. */
	if (seg_len == 0)
		ok = wnd == 0 ? seq == c->rcv_nxt :
		     SEQ_GEQ(seq, c->rcv_nxt) && SEQ_LT(seq, c->rcv_nxt + wnd);
	else
		ok = wnd != 0 &&
		     ((SEQ_GEQ(seq, c->rcv_nxt) &&
		       SEQ_LT(seq, c->rcv_nxt + wnd)) ||
		      (SEQ_GEQ(seq + seg_len - 1, c->rcv_nxt) &&
		       SEQ_LT(seq + seg_len - 1, c->rcv_nxt + wnd)));
	if (!ok) {
		if (c->state == TCP_TIME_WAIT && (s->flags & F_FIN))
			c->tw_until = ebb_time_ns() +
				(uint64_t)q->nif->tcp_cfg.time_wait_ms *
					1000000ull;
		if (!(s->flags & F_RST)) {
			/* Old duplicates (a lost ACK) get our ACK at once;
			 * anything else is rate limited. */
			if (SEQ_LT(seq, c->rcv_nxt))
				c->ack_now = true;
			else
				tcp_challenge(c);
		}
		STAT_ADD(q, tcp_dropped, 1);
		rte_pktmbuf_free(m);
		return;
	}

	/* 2. RST (RFC 5961 3.2). */
	if (s->flags & F_RST) {
		rte_pktmbuf_free(m);
		if (seq != c->rcv_nxt) {
			tcp_challenge(c);
			return;
		}
		STAT_ADD(q, tcp_rst_rcvd, 1);
		if (c->state == TCP_SYN_RCVD && c->lis != NULL)
			tcp_destroy(c);		/* back to LISTEN */
		else if (c->state == TCP_TIME_WAIT ||
			 c->state == TCP_CLOSING || c->state == TCP_LAST_ACK)
			tcp_destroy(c);
		else
			tcp_fail(c, -ECONNRESET);
		return;
	}

	/* 4. SYN in a synchronized state (RFC 5961 4.2). */
	if (s->flags & F_SYN) {
		rte_pktmbuf_free(m);
		tcp_challenge(c);
		return;
	}

	/* 5. ACK. */
	if (!(s->flags & F_ACK)) {
		STAT_ADD(q, tcp_dropped, 1);
		rte_pktmbuf_free(m);
		return;
	}
	if (c->state == TCP_SYN_RCVD) {
		struct ebb_tcp_listener *l = c->lis;

		if (!SEQ_GT(s->ack, c->snd_una) ||
		    SEQ_GT(s->ack, c->snd_max)) {
			tcp_send_bare(q, &c->key, s->ack, 0, F_RST);
			STAT_ADD(q, tcp_dropped, 1);
			rte_pktmbuf_free(m);
			return;
		}
		c->snd_una = s->ack;
		tcp_established(c);
		c->snd_wnd = s->wnd << c->snd_wscale;
		c->max_snd_wnd = RTE_MAX(c->max_snd_wnd, c->snd_wnd);
		c->snd_wl1 = seq;
		c->snd_wl2 = s->ack;
		if (l != NULL) {
			l->half[q->id]--;
			c->lis = NULL;
			STAT_ADD(q, tcp_accepted, 1);
			if (__atomic_load_n(&l->closed, __ATOMIC_ACQUIRE) ||
			    l->accept(l->arg, c) != 0 || c->ops == NULL ||
			    c->ops->recv == NULL) {
				rte_pktmbuf_free(m);
				ebb_tcp_abort(c);
				return;
			}
			if (c->dead) {
				rte_pktmbuf_free(m);
				return;
			}
		} else {
			STAT_ADD(q, tcp_connected, 1);
			if (c->ops->connected != NULL && !c->app_closed)
				c->ops->connected(c->arg, c);
			if (c->dead) {
				rte_pktmbuf_free(m);
				return;
			}
		}
	} else {
		/* RFC 5961 5.2: an ACK of what we never sent, or too old. */
		if (SEQ_GT(s->ack, c->snd_max) ||
		    SEQ_LT(s->ack, c->snd_una - c->max_snd_wnd)) {
			tcp_challenge(c);
			STAT_ADD(q, tcp_dropped, 1);
			rte_pktmbuf_free(m);
			return;
		}
		if (SEQ_GT(s->ack, c->snd_una)) {
			bool fin_acked = c->fin_sent &&
					 SEQ_GT(s->ack, c->fin_seq);

			tcp_acked(c, s->ack);
			if (c->dead) {
				rte_pktmbuf_free(m);
				return;
			}
			if (fin_acked) {
				if (c->state == TCP_FIN_WAIT_1)
					c->state = TCP_FIN_WAIT_2;
				else if (c->state == TCP_CLOSING) {
					c->state = TCP_TIME_WAIT;
					c->tw_until = ebb_time_ns() +
						(uint64_t)q->nif->tcp_cfg
							.time_wait_ms *
							1000000ull;
				} else if (c->state == TCP_LAST_ACK) {
					rte_pktmbuf_free(m);
					tcp_destroy(c);
					return;
				}
			}
		} else if (s->ack == c->snd_una && s->len == 0 &&
			   !(s->flags & F_FIN) &&
			   (s->wnd << c->snd_wscale) <= c->snd_wnd &&
			   c->snd_max != c->snd_una) {
			/* RFC 5681 wants the window unchanged; Linux's
			 * duplicate ACKs shrink it as out-of-order data
			 * fills its buffer. A window update only grows. */
			tcp_dupack(c);
		}
		/* Window update (RFC 9293 3.10.7.4, fifth check). */
		if (SEQ_LT(c->snd_wl1, seq) ||
		    (c->snd_wl1 == seq && SEQ_LEQ(c->snd_wl2, s->ack))) {
			uint32_t old = c->snd_wnd;

			c->snd_wnd = s->wnd << c->snd_wscale;
			c->max_snd_wnd = RTE_MAX(c->max_snd_wnd, c->snd_wnd);
			c->snd_wl1 = seq;
			c->snd_wl2 = s->ack;
			if (old == 0 && c->snd_wnd != 0 && c->persist_on) {
				c->persist_on = false;	/* persist ends */
				c->retries = 0;
			}
		}
	}
	if (c->state == TCP_TIME_WAIT) {
		/* A retransmitted FIN: ACK it, restart the clock. */
		if (s->flags & F_FIN) {
			c->ack_now = true;
			c->tw_until = ebb_time_ns() +
				(uint64_t)q->nif->tcp_cfg.time_wait_ms *
					1000000ull;
		}
		rte_pktmbuf_free(m);
		return;
	}

	/* 7. Data, 8. FIN. */
	if (c->fin_rcvd || (c->state != TCP_ESTABLISHED &&
			    c->state != TCP_FIN_WAIT_1 &&
			    c->state != TCP_FIN_WAIT_2)) {
		rte_pktmbuf_free(m);
		return;
	}
	if (s->len == 0 && !(s->flags & F_FIN)) {
		rte_pktmbuf_free(m);
		return;
	}
	/* Keep what the window takes. */
	if (s->len != 0) {
		uint32_t len = s->len;

		if (SEQ_GT(seq + len, c->rcv_nxt + wnd)) {
			len = c->rcv_nxt + wnd - seq;
			mbuf_cut_to(m, len);
		}
		if (SEQ_LT(seq, c->rcv_nxt)) {
			uint32_t cut = c->rcv_nxt - seq;

			m = mbuf_cut_front(m, cut);
			len -= cut;
			seq = c->rcv_nxt;
		}
		if (seq != c->rcv_nxt) {
			tcp_ooo_add(c, seq, m, len,
				    (s->flags & F_FIN) &&
					    len == s->len);
			/* A duplicate ACK per segment, at once (RFC 5681
			 * 4.2): three make the sender retransmit. */
			tcp_send_ack(c);
			c->quickack = 16;
			return;
		}
		c->rcv_nxt += len;
		c->unacked_segs++;
		tcp_deliver(c, m);
		if (c->dead)
			return;
		if (c->ooo_n > 0) {
			tcp_ooo_pull(c);
			c->ack_now = true;	/* a hole filled */
			if (c->dead)
				return;
		}
		if (c->unacked_segs >= 2 || c->quickack > 0) {
			c->ack_now = true;
			if (c->quickack > 0)
				c->quickack--;
		}
		else if (!c->ack_now && !ebb_timer_pending(&c->dt))
			(void)ebb_timer_start(&c->dt,
					      (uint64_t)q->nif->tcp_cfg
							      .delack_ms *
						      1000000ull,
					      0);
		m = NULL;
	}
	if ((s->flags & F_FIN) && !c->fin_rcvd) {
		uint32_t fseq = s->seq + s->len;

		rte_pktmbuf_free(m);
		if (fseq == c->rcv_nxt)
			tcp_got_fin(c);
		else if (SEQ_GT(fseq, c->rcv_nxt))
			tcp_ooo_add(c, fseq, NULL, 0, true);
		return;
	}
	rte_pktmbuf_free(m);
}

enum net_verdict net_tcp_input(struct net_queue *q, struct rte_mbuf *m,
			       uint32_t l4, uint32_t l4len)
{
	const struct rte_ipv4_hdr *ip = rte_pktmbuf_mtod_offset(
		m, const struct rte_ipv4_hdr *, RTE_ETHER_HDR_LEN);
	const struct rte_tcp_hdr *th;
	struct ebb_tcp_conn *c;
	struct tcp_seg s;
	struct tcp_key k;
	uint32_t doff;

	if (l4len < TCP_HDR_LEN || net_short(m, l4 + TCP_HDR_LEN)) {
		STAT_ADD(q, tcp_bad, 1);
		return NET_DROP;
	}
	th = rte_pktmbuf_mtod_offset(m, const struct rte_tcp_hdr *, l4);
	doff = (uint32_t)(th->data_off >> 4) * 4;
	if (doff < TCP_HDR_LEN || doff > l4len || net_short(m, l4 + doff)) {
		STAT_ADD(q, tcp_bad, 1);
		return NET_DROP;
	}
	if ((m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK) !=
	    RTE_MBUF_F_RX_L4_CKSUM_GOOD) {
		int bad = (m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK) ==
				  RTE_MBUF_F_RX_L4_CKSUM_BAD ||
			  (m->nb_segs == 1 ?
			   rte_ipv4_udptcp_cksum_verify(ip, th) != 0 :
			   !net_l4_cksum_ok(m, ip, l4));

		if (bad) {
			STAT_ADD(q, tcp_bad_checksum, 1);
			return NET_DROP;
		}
	}
	STAT_ADD(q, tcp_rx, 1);
	s.seq = rte_be_to_cpu_32(th->sent_seq);
	s.ack = rte_be_to_cpu_32(th->recv_ack);
	s.wnd = rte_be_to_cpu_16(th->rx_win);
	s.flags = th->tcp_flags;
	s.len = l4len - doff;
	s.opt = (const uint8_t *)(th + 1);
	s.optlen = doff - TCP_HDR_LEN;
	k.rip = ip->src_addr;
	k.rport = th->src_port;
	k.lport = th->dst_port;

	c = tcp_lookup(q, &k);
	if (c != NULL && c->state == TCP_TIME_WAIT && (s.flags & F_SYN) &&
	    !(s.flags & (F_ACK | F_RST)) && SEQ_GT(s.seq, c->rcv_nxt) &&
	    tcp_listener(q->nif, k.lport) != NULL) {
		/* A new incarnation (RFC 1122 4.2.2.13). */
		tcp_destroy(c);
		c = NULL;
	}
	if (c == NULL) {
		struct ebb_tcp_listener *l;

		if (s.flags & F_RST) {
			STAT_ADD(q, tcp_dropped, 1);
			return NET_DROP;
		}
		l = (s.flags & (F_SYN | F_ACK)) == F_SYN ?
			    tcp_listener(q->nif, k.lport) : NULL;
		if (l != NULL) {
			tcp_passive_open(q, l, &k, &s);
			return NET_DROP;	/* the SYN itself: done */
		}
		/* RFC 9293 3.10.7.1: reset what has no connection. */
		STAT_ADD(q, tcp_no_listener, 1);
		if (s.flags & F_ACK)
			tcp_send_bare(q, &k, s.ack, 0, F_RST);
		else
			tcp_send_bare(q, &k, 0,
				      s.seq + s.len +
					      ((s.flags & F_SYN) ? 1 : 0) +
					      ((s.flags & F_FIN) ? 1 : 0),
				      F_RST | F_ACK);
		return NET_DROP;
	}
	if (c->state == TCP_SYN_SENT) {
		tcp_input_syn_sent(c, &s);
		return NET_DROP;
	}
	if (s.len == 0) {
		tcp_input_conn(c, &s, NULL);
		return NET_DROP;
	}
	/* The payload, in place: headers off the front, padding off the
	 * end. */
	(void)rte_pktmbuf_adj(m, (uint16_t)(l4 + doff));
	mbuf_cut_to(m, s.len);
	tcp_input_conn(c, &s, m);
	return NET_CONSUMED;
}

/* --- API --- */

__rte_cold
int ebb_tcp_configure(struct ebb_net_if *nif, const struct ebb_tcp_config *cfg)
{
	struct ebb_tcp_config c;

	if (nif == NULL || cfg == NULL)
		return -EINVAL;
	if (nif->tcp_started)
		return -EBUSY;
	for (unsigned i = 0; i < TCP_MAX_LISTENERS; i++)
		if (nif->tcp_lis[i] != NULL)
			return -EBUSY;
	c = *cfg;
	if (c.rcvbuf > (1u << 30) || c.delack_ms > 500)
		return -EINVAL;
#define DEF(f) if (c.f == 0) c.f = tcp_defaults.f
	DEF(max_conns);
	DEF(sndbuf);
	DEF(rcvbuf);
	DEF(time_wait_ms);
	DEF(delack_ms);
	DEF(rto_min_ms);
#undef DEF
	nif->tcp_cfg = c;
	return 0;
}

__rte_cold
struct ebb_tcp_listener *ebb_tcp_listen(struct ebb_net_if *nif, uint16_t port,
				       const struct ebb_tcp_listen_config *cfg)
{
	struct ebb_tcp_listener *l;
	int slot = -1;

	if (nif == NULL || port == 0 || cfg == NULL || cfg->accept == NULL) {
		errno = EINVAL;
		return NULL;
	}
	l = calloc(1, sizeof(*l));
	if (l == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	l->nif = nif;
	l->accept = cfg->accept;
	l->arg = cfg->arg;
	l->backlog = cfg->backlog ? cfg->backlog : 128;
	l->port = port;
	l->port_be = rte_cpu_to_be_16(port);
	rte_spinlock_lock(&nif->tcp_lock);
	for (unsigned i = 0; i < TCP_MAX_LISTENERS; i++) {
		struct ebb_tcp_listener *o = nif->tcp_lis[i];

		if (o != NULL && o->port == port) {
			rte_spinlock_unlock(&nif->tcp_lock);
			free(l);
			errno = EADDRINUSE;
			return NULL;
		}
		if (o == NULL && slot < 0)
			slot = (int)i;
	}
	if (slot < 0) {
		rte_spinlock_unlock(&nif->tcp_lock);
		free(l);
		errno = ENOMEM;
		return NULL;
	}
	/* Pairs with tcp_listener()'s acquire. */
	__atomic_store_n(&nif->tcp_lis[slot], l, __ATOMIC_RELEASE);
	rte_spinlock_unlock(&nif->tcp_lock);
	return l;
}

__rte_cold
void ebb_tcp_unlisten(struct ebb_tcp_listener *l)
{
	struct ebb_net_if *nif;

	if (l == NULL)
		return;
	nif = l->nif;
	rte_spinlock_lock(&nif->tcp_lock);
	for (unsigned i = 0; i < TCP_MAX_LISTENERS; i++)
		if (nif->tcp_lis[i] == l)
			__atomic_store_n(&nif->tcp_lis[i], NULL,
					 __ATOMIC_RELEASE);
	__atomic_store_n(&l->closed, true, __ATOMIC_RELEASE);
	/* Half-open connections may still point at it, on any core: keep
	 * it until the interface closes. */
	l->dead_next = nif->tcp_dead;
	nif->tcp_dead = l;
	rte_spinlock_unlock(&nif->tcp_lock);
}

/* A source port whose replies land on @q: on a virtual wire and a port
 * with one queue every port does; with RSS, the nic's hash decides. */
static int tcp_pick_port(struct net_queue *q, struct tcp_key *k)
{
	struct tcp_queue *tq = q->tcp;

	for (unsigned tries = 0; tries < 16384; tries++) {
		uint16_t p = tq->next_port;
		int rq;

		tq->next_port = p == 65535 ? 49152 : (uint16_t)(p + 1);
		k->lport = rte_cpu_to_be_16(p);
		rq = ebb_nic_rx_queue(q->nif->nic, rte_be_to_cpu_32(k->rip),
				      rte_be_to_cpu_32(q->nif->ip),
				      rte_be_to_cpu_16(k->rport), p);
		if (rq >= 0 && rq != q->id)
			continue;
		if (tcp_lookup(q, k) == NULL)
			return 0;
	}
	return -EADDRNOTAVAIL;
}

struct ebb_tcp_conn *ebb_tcp_connect(struct ebb_net_if *nif, uint32_t ip,
				     uint16_t port,
				     const struct ebb_tcp_ops *ops, void *arg)
{
	struct net_queue *q;
	struct ebb_tcp_conn *c;
	struct tcp_key k;
	int rc;

	if (nif == NULL || ops == NULL || ops->recv == NULL || port == 0 ||
	    (ip >> 24) == 0 || (ip >> 24) == 127 || (ip >> 28) >= 0xe ||
	    rte_cpu_to_be_32(ip) == nif->ip) {
		errno = EINVAL;
		return NULL;
	}
	q = net_my_queue(nif);
	if (q == NULL || q->tcp == NULL) {
		errno = EPERM;
		return NULL;
	}
	k.rip = rte_cpu_to_be_32(ip);
	k.rport = rte_cpu_to_be_16(port);
	if (net_next_hop(nif, k.rip) == 0) {
		STAT_ADD(q, tx_no_route, 1);
		errno = ENETUNREACH;
		return NULL;
	}
	if (q->tcp->nconns >= nif->tcp_cfg.max_conns) {
		errno = ENOBUFS;
		return NULL;
	}
	if (tcp_table(q) == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	rc = tcp_pick_port(q, &k);
	if (rc != 0) {
		errno = -rc;
		return NULL;
	}
	c = tcp_conn_new(q, &k);
	if (c == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	tcp_enter(q);
	c->ops = ops;
	c->arg = arg;
	c->state = TCP_SYN_SENT;
	c->ws_ok = true;	/* offered; the SYN-ACK decides */
	c->rto_start = ebb_time_ns();
	tcp_send_syn(c);
	tcp_mark(c);
	tcp_leave(q);
	return c;
}

void ebb_tcp_set_ops(struct ebb_tcp_conn *c, const struct ebb_tcp_ops *ops,
		     void *arg)
{
	if (c == NULL)
		return;
	c->ops = ops;
	c->arg = arg;
}

size_t ebb_tcp_send_space(const struct ebb_tcp_conn *c)
{
	uint32_t buf = c->q->nif->tcp_cfg.sndbuf;

	return c->sq_bytes >= buf ? 0 : buf - c->sq_bytes;
}

/* Room for @n more buffers in the send queue. */
static int tcp_sq_reserve(struct ebb_tcp_conn *c, uint32_t n)
{
	uint32_t cap = c->sq_cap;
	struct rte_mbuf **sq;

	if (c->sq_n + n <= cap)
		return 0;
	while (cap < c->sq_n + n)
		cap *= 2;
	sq = malloc(cap * sizeof(*sq));
	if (sq == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < c->sq_n; i++)
		sq[i] = c->sq[(c->sq_head + i) % c->sq_cap];
	free(c->sq);
	c->sq = sq;
	c->sq_cap = cap;
	c->sq_head = 0;
	return 0;
}

static bool tcp_send_open(const struct ebb_tcp_conn *c)
{
	return !c->dead && !c->app_closed &&
	       (c->state == TCP_SYN_SENT || c->state == TCP_SYN_RCVD ||
		c->state == TCP_ESTABLISHED || c->state == TCP_CLOSE_WAIT);
}

int ebb_tcp_send(struct ebb_tcp_conn *c, struct rte_mbuf *m)
{
	uint32_t len;

	if (c == NULL || m == NULL)
		return -EINVAL;
	if (!tcp_send_open(c))
		return -EPIPE;
	len = rte_pktmbuf_pkt_len(m);
	if (len == 0) {
		rte_pktmbuf_free(m);
		return 0;
	}
	if (ebb_tcp_send_space(c) == 0) {
		c->want_writable = true;
		return -EAGAIN;
	}
	if (tcp_sq_reserve(c, m->nb_segs) != 0)
		return -EAGAIN;
	while (m != NULL) {
		struct rte_mbuf *next = m->next;

		m->next = NULL;
		m->nb_segs = 1;
		m->pkt_len = m->data_len;
		if (m->data_len == 0) {
			rte_pktmbuf_free_seg(m);
		} else {
			c->sq[(c->sq_head + c->sq_n) % c->sq_cap] = m;
			c->sq_n++;
		}
		m = next;
	}
	c->sq_bytes += len;
	tcp_enter(c->q);
	tcp_mark(c);
	tcp_leave(c->q);
	return 0;
}

ssize_t ebb_tcp_send_buf(struct ebb_tcp_conn *c, const void *buf, size_t len)
{
	const char *p = buf;
	size_t done = 0;

	if (c == NULL || (buf == NULL && len != 0))
		return -EINVAL;
	if (!tcp_send_open(c))
		return -EPIPE;
	tcp_enter(c->q);
	while (done < len) {
		size_t room = ebb_tcp_send_space(c);
		struct rte_mbuf *t = c->sq_n ?
			c->sq[(c->sq_head + c->sq_n - 1) % c->sq_cap] : NULL;
		size_t n;
		char *dst;

		if (room == 0) {
			c->want_writable = true;
			break;
		}
		/* Fill the last buffer first: small sends share one. Safe
		 * even if it was sent: clones cover only their range. A
		 * buffer holds at most one MSS, so that a full segment is
		 * one buffer (one clone) when it leaves. */
		if (t != NULL && RTE_MBUF_DIRECT(t) &&
		    rte_mbuf_refcnt_read(t) == 1 &&
		    rte_pktmbuf_tailroom(t) > 0 && t->data_len < c->mss) {
			n = RTE_MIN(RTE_MIN(len - done, room),
				    RTE_MIN((size_t)rte_pktmbuf_tailroom(t),
					    (size_t)(c->mss - t->data_len)));
			dst = rte_pktmbuf_append(t, (uint16_t)n);
		} else {
			struct rte_mbuf *m;

			if (tcp_sq_reserve(c, 1) != 0)
				break;
			m = tcp_mbuf_alloc(c->q->tcp);
			if (m == NULL)
				break;
			n = RTE_MIN(RTE_MIN(len - done, room),
				    RTE_MIN((size_t)rte_pktmbuf_tailroom(m),
					    (size_t)c->mss));
			dst = rte_pktmbuf_append(m, (uint16_t)n);
			c->sq[(c->sq_head + c->sq_n) % c->sq_cap] = m;
			c->sq_n++;
		}
		memcpy(dst, p + done, n);
		done += n;
		c->sq_bytes += (uint32_t)n;
	}
	if (done != 0)
		tcp_mark(c);
	tcp_leave(c->q);
	if (done == 0)
		return -EAGAIN;
	return (ssize_t)done;
}

int ebb_tcp_send_all(struct ebb_tcp_conn *c, const void *buf, size_t len)
{
	const char *p = buf;
	size_t done = 0;

	if (c == NULL || (buf == NULL && len != 0))
		return -EINVAL;
	while (done < len) {
		ssize_t n = ebb_tcp_send_buf(c, p + done, len - done);
		struct ebb_event_context ctx;
		int rc = -EPIPE;

		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		if (n != -EAGAIN)
			return (int)n;
		if (c->blocked != NULL)
			return -EBUSY;
		memset(&ctx, 0, sizeof(ctx));
		c->blocked = &ctx;
		c->blocked_rc = &rc;
		if (ebb_event_save_context(&ctx) != 0) {
			c->blocked = NULL;
			return -EPERM;
		}
		/* Resumed: room opened (0) or the connection died, and
		 * then @c may be gone. */
		if (rc != 0)
			return rc;
	}
	return 0;
}

void ebb_tcp_close(struct ebb_tcp_conn *c)
{
	if (c == NULL || c->dead || c->app_closed)
		return;
	tcp_enter(c->q);
	c->app_closed = true;
	c->want_writable = false;
	switch (c->state) {
	case TCP_SYN_SENT:
		tcp_destroy(c);
		break;
	case TCP_SYN_RCVD:
	case TCP_ESTABLISHED:
	case TCP_CLOSE_WAIT:
		/* tcp_output() sends the FIN after the data. */
		tcp_mark(c);
		break;
	default:
		break;
	}
	tcp_leave(c->q);
}

void ebb_tcp_abort(struct ebb_tcp_conn *c)
{
	if (c == NULL || c->dead)
		return;
	tcp_enter(c->q);
	c->app_closed = true;
	if (c->state != TCP_SYN_SENT && c->state != TCP_TIME_WAIT)
		tcp_send_bare(c->q, &c->key, c->snd_nxt, c->rcv_nxt,
			      F_RST | F_ACK);
	tcp_destroy(c);
	tcp_leave(c->q);
}

int ebb_tcp_keepalive(struct ebb_tcp_conn *c, unsigned idle_s,
		      unsigned intvl_s, unsigned count)
{
	if (c == NULL || (idle_s != 0 && (intvl_s == 0 || count == 0)))
		return -EINVAL;
	c->ka_idle_s = idle_s;
	c->ka_intvl_s = intvl_s;
	c->ka_count = count;
	c->ka_probes = 0;
	tcp_enter(c->q);
	tcp_mark(c);
	tcp_leave(c->q);
	return 0;
}

uint32_t ebb_tcp_peer_ip(const struct ebb_tcp_conn *c)
{
	return rte_be_to_cpu_32(c->key.rip);
}

uint16_t ebb_tcp_peer_port(const struct ebb_tcp_conn *c)
{
	return rte_be_to_cpu_16(c->key.rport);
}

uint16_t ebb_tcp_local_port(const struct ebb_tcp_conn *c)
{
	return rte_be_to_cpu_16(c->key.lport);
}

unsigned ebb_tcp_conn_count(const struct ebb_net_if *nif)
{
	unsigned n = 0;

	if (nif == NULL)
		return 0;
	for (unsigned i = 0; i < EBB_MAX_CORES; i++) {
		const struct tcp_queue *tq = nif->q[i].tcp;

		if (tq != NULL)
			n += __atomic_load_n(&tq->nconns, __ATOMIC_RELAXED);
	}
	return n;
}

/* --- teardown --- */

__rte_cold
void net_tcp_queue_detach(struct net_queue *q)
{
	struct tcp_queue *tq = q->tcp;
	const void *key;
	void *data;
	uint32_t next = 0;

	if (tq == NULL)
		return;
	tcp_enter(q);
	while (tq->h != NULL &&
	       rte_hash_iterate(tq->h, &key, &data, &next) >= 0) {
		struct ebb_tcp_conn *c = data;

		c->app_closed = true;	/* no callbacks */
		/* Half-open ones just go (their peer may not even answer
		 * ARP); the others are told. */
		if (c->state == TCP_SYN_RCVD)
			tcp_destroy(c);
		else
			ebb_tcp_abort(c);
	}
	tcp_leave(q);
	/* The resets, as far as the device takes them; the queue goes. */
	tcp_tx_flush(q);
	if (tq->ntx != 0) {
		STAT_ADD(q, drop_tx_full, tq->ntx);
		rte_pktmbuf_free_bulk(tq->tx, tq->ntx);
		tq->ntx = 0;
	}
}

__rte_cold
void net_tcp_free_all(struct ebb_net_if *nif)
{
	for (unsigned i = 0; i < EBB_MAX_CORES; i++) {
		struct tcp_queue *tq = nif->q[i].tcp;
		const void *key;
		void *data;
		uint32_t next = 0;

		if (tq == NULL)
			continue;
		if (tq->h != NULL) {
			/* Cores are stopped: timers are not touched, the
			 * memory just goes. */
			while (rte_hash_iterate(tq->h, &key, &data,
						&next) >= 0)
				tcp_conn_free(data);
			rte_hash_free(tq->h);
		}
		while (tq->grave != NULL) {
			struct ebb_tcp_conn *c = tq->grave;

			tq->grave = c->next;
			tcp_conn_free(c);
		}
		if (tq->ntx != 0)
			rte_pktmbuf_free_bulk(tq->tx, tq->ntx);
		if (tq->cache != NULL) {
			/* Its mbufs go back to the pool. */
			rte_mempool_cache_flush(tq->cache, tq->pool);
			free(tq->cache);
		}
		free(tq);
		nif->q[i].tcp = NULL;
	}
	for (unsigned i = 0; i < TCP_MAX_LISTENERS; i++) {
		free(nif->tcp_lis[i]);
		nif->tcp_lis[i] = NULL;
	}
	while (nif->tcp_dead != NULL) {
		struct ebb_tcp_listener *l = nif->tcp_dead;

		nif->tcp_dead = l->dead_next;
		free(l);
	}
}
