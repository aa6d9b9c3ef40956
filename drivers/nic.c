/* SPDX-License-Identifier: BSD-3-Clause */
/* NIC ports over DPDK ethdev: set-up, rx queues as vectors, tx bursts;
 * back-to-back virtual wires over net_ring; seeded fault injection on the
 * tx path of any port. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_dev.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_thash.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_spinlock.h>

#include <ebbrt/ebbrt.h>
#include <ebbrt/nic.h>

#include "cluster.h"
#include "nic_frontend.h"

#define NIC_BURST 32
#define NIC_DEFAULT_RING 1024u
#define NIC_DEFAULT_MBUFS 8191u
#define NIC_POOL_CACHE 256u
/* FIFO slots a frame may need in the fault stage: itself, its copy, and
 * the held frame it releases with that one's copy. */
#define FAULT_SLOTS_PER_FRAME 4u

#define STAT_ADD(q, f, n)                                                   \
	__atomic_store_n(&(q)->f, (q)->f + (n), __ATOMIC_RELAXED)

/* A frame waiting in a queue's fault stage until its due time. */
struct fault_slot {
	struct rte_mbuf *m;
	uint64_t due;			/* TSC */
};

/* Fault injection state of one tx queue: its owning core only. */
struct queue_faults {
	uint32_t gen;			/* ebb_nic.faults_gen adopted */
	bool on;
	struct ebb_nic_faults cfg;
	uint64_t rng;			/* splitmix64 state */
	uint64_t delay_tsc;
	/* A frame held back for reordering, released after the next one
	 * or at held_until. */
	struct rte_mbuf *held;
	bool held_dup;
	uint64_t held_until;
	/* Frames on their way out, in send order (due times never
	 * decrease). */
	struct fault_slot *fifo;
	uint32_t head, tail, cap;	/* free-running; mask = cap - 1 */
	struct ebb_timer timer;		/* wakes the core at the next due */
	uint64_t timer_at;		/* TSC the timer is set for */
};

/* One rx/tx queue pair, owned by one core once attached. */
struct nic_queue {
	struct ebb_nic *nic;
	uint16_t id;
	int vec;			/* vector on the owning core, or -1 */
	unsigned core;
	int intr_fd;			/* rx interrupt fd, or -1 */
	ebb_nic_rx_fn fn;
	void *arg;
	/* Wire ends: the core this queue is attached to (written at
	 * attach/detach) and that of the other end's queue of the same
	 * number, which our tx kicks. Both live in the wire, which outlives
	 * either end. NULL on other ports. */
	_Atomic unsigned *owner;
	_Atomic unsigned *peer_owner;
	/* pending() receives ahead into here; handle() passes it on. */
	uint16_t nstash;
	struct rte_mbuf *stash[NIC_BURST];
	struct queue_faults f;
	/* counters: owner writes, anyone reads */
	uint64_t rx_packets, tx_packets, tx_full, rx_bursts, armed;
	/* Fault counters (EBB_FAULT_*): fc_own, or on a cluster node's
	 * port the core's row in the control block, which the frontend
	 * shows. */
	uint64_t *fc;
	uint64_t fc_own[EBB_FAULT_COUNTERS];
} __rte_cache_aligned;

/* What the two ends of a wire share; freed by the second close. */
struct nic_wire {
	unsigned refs;			/* main thread only */
	unsigned nq;
	struct rte_mempool *pool;
	/* ring[d * nq + i]: direction d (0: a to b, 1: b to a), queue i */
	struct rte_ring **ring;
	/* owner[e * nq + i]: the core queue i of end e is attached to */
	_Atomic unsigned *owner;
};

struct ebb_nic {
	uint16_t port;
	bool rx_intr;
	unsigned nq;
	unsigned ring_size;
	struct rte_device *dev;
	struct rte_mempool *pool;
	struct nic_queue *q;
	struct nic_wire *wire;		/* a wire end, or NULL */
	/* A cluster node's port: the frontend configured it and owns it
	 * and its pool; close only frees this struct. */
	bool borrowed;
	/* A halted owner of an rx queue learns of frames through its
	 * doorbell (the frontend forwards the queue interrupt, or the
	 * other end of a wire kicks it). */
	bool rx_kicked;
	int peer_node;			/* wire end in a cluster: the other
					 * node, whose core i owns queue i */
	/* Fault settings as last set; queues copy them when faults_gen
	 * moves on. */
	rte_spinlock_t faults_lock;
	bool faults_on;
	struct ebb_nic_faults faults;
	_Atomic uint32_t faults_gen;
	/* RSS of a multi-queue device, read at the first
	 * ebb_nic_rx_queue() (rss_state 1: known, 2: none). */
	uint8_t rss_state;
	uint8_t rss_key[40];
	uint16_t reta_size;
	uint16_t reta[RTE_ETH_RSS_RETA_SIZE_512];
};

/* --- sending --- */

/* Put @n frames on the device queue; on a wire, wake the receiver. */
static inline uint16_t dev_tx(struct nic_queue *q, struct rte_mbuf **pkts,
			      uint16_t n)
{
	uint16_t sent = rte_eth_tx_burst(q->nic->port, q->id, pkts, n);

	STAT_ADD(q, tx_packets, sent);
	if (q->nic->peer_node >= 0 && sent != 0)
		ebb_cluster_kick((unsigned)q->nic->peer_node, q->id);
	else if (q->peer_owner != NULL && sent != 0) {
		/* Pairs with the release store in ebb_nic_attach(). A kick
		 * to a core that has just detached is harmless; a receiver
		 * still attaching polls the ring before it can halt. */
		unsigned core = atomic_load_explicit(q->peer_owner,
						     memory_order_acquire);

		if (core != EBB_CORE_NONE)
			ebb_core_kick(core);
	}
	return sent;
}

/* --- fault injection --- */

static inline uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static inline double rng_unit(uint64_t *s)
{
	return (double)(rng_next(s) >> 11) * 0x1.0p-53;
}

static inline bool faults_waiting(const struct queue_faults *f)
{
	return f->head != f->tail || f->held != NULL;
}

static inline uint32_t fifo_room(const struct queue_faults *f)
{
	return f->cap - (f->tail - f->head);
}

static inline void fifo_push(struct queue_faults *f, struct rte_mbuf *m,
			     uint64_t due)
{
	RTE_ASSERT(fifo_room(f) > 0);
	f->fifo[f->tail & (f->cap - 1)] = (struct fault_slot){ m, due };
	f->tail++;
}

/* Whether something of the fault stage should go out at TSC @now. */
static inline bool faults_due(const struct queue_faults *f, uint64_t now)
{
	return (f->head != f->tail &&
		f->fifo[f->head & (f->cap - 1)].due <= now) ||
	       (f->held != NULL && f->held_until <= now);
}

static void faults_free_waiting(struct queue_faults *f)
{
	while (f->head != f->tail) {
		rte_pktmbuf_free(f->fifo[f->head & (f->cap - 1)].m);
		f->head++;
	}
	rte_pktmbuf_free(f->held);
	f->held = NULL;
}

/* Take the port's current fault settings (owning core). */
static __rte_noinline void faults_adopt(struct nic_queue *q, uint64_t now)
{
	struct ebb_nic *nic = q->nic;
	struct queue_faults *f = &q->f;

	rte_spinlock_lock(&nic->faults_lock);
	f->gen = atomic_load_explicit(&nic->faults_gen, memory_order_relaxed);
	f->on = nic->faults_on;
	f->cfg = nic->faults;
	rte_spinlock_unlock(&nic->faults_lock);
	f->rng = f->cfg.seed ^ ((uint64_t)(q->id + 1) * 0xd1b54a32d192ed03ull);
	f->delay_tsc = (uint64_t)f->cfg.delay_us * rte_get_tsc_hz() / 1000000u;
	if (f->on && f->fifo == NULL) {
		uint32_t cap = rte_align32pow2(RTE_MAX(nic->ring_size, 64u));

		f->fifo = calloc(cap, sizeof(*f->fifo));
		if (f->fifo == NULL) {
			fprintf(stderr, "ebbrt nic: no memory for faults on "
					"queue %u: faults stay off\n", q->id);
			f->on = false;
			return;
		}
		f->cap = cap;
	}
	/* Reordering off: a held frame goes now, in order. */
	if (f->held != NULL && (!f->on || f->cfg.reorder == 0.0))
		f->held_until = now;
}

/* Queue @m to leave after the delay, with a copy of it if @dup. */
static void faults_out(struct nic_queue *q, struct rte_mbuf *m, bool dup,
		       uint64_t now)
{
	struct queue_faults *f = &q->f;
	uint64_t due = now + f->delay_tsc;

	fifo_push(f, m, due);
	if (dup) {
		struct rte_mbuf *c = rte_pktmbuf_copy(m, q->nic->pool, 0,
						      UINT32_MAX);

		if (c != NULL) {
			fifo_push(f, c, due);
			STAT_ADD(q, fc[EBB_FAULT_DUPLICATED], 1);
		}
	}
	if (f->delay_tsc != 0)
		STAT_ADD(q, fc[EBB_FAULT_DELAYED], 1u + dup);
}

/* Flip bit @r (modulo the bits past the Ethernet header) of @m; returns
 * the frame to send, a private copy if @m was shared. */
static struct rte_mbuf *faults_corrupt(struct nic_queue *q,
				       struct rte_mbuf *m, uint64_t r)
{
	uint32_t len = rte_pktmbuf_pkt_len(m), off;
	struct rte_mbuf *s;
	uint64_t bit;
	bool shared = false;

	if (len <= RTE_ETHER_HDR_LEN)
		return m;
	for (s = m; s != NULL; s = s->next)
		shared |= !RTE_MBUF_DIRECT(s) || rte_mbuf_refcnt_read(s) != 1;
	if (shared) {
		/* Others see this data (a clone, a retransmit queue): flip
		 * the bit in our own copy. */
		struct rte_mbuf *c = rte_pktmbuf_copy(m, q->nic->pool, 0,
						      UINT32_MAX);

		if (c == NULL)
			return m;
		rte_pktmbuf_free(m);
		m = c;
	}
	bit = RTE_ETHER_HDR_LEN * 8u +
	      r % ((uint64_t)(len - RTE_ETHER_HDR_LEN) * 8u);
	off = (uint32_t)(bit / 8u);
	for (s = m; s != NULL && off >= s->data_len; s = s->next)
		off -= s->data_len;
	if (s == NULL)
		return m;
	*rte_pktmbuf_mtod_offset(s, uint8_t *, off) ^=
		(uint8_t)(1u << (bit % 8u));
	/* A sum left to the wire (ebb_nic_tx_l4_csum_offload()) would be
	 * computed by a NIC before the damage: the receiver's NIC finds it
	 * wrong. */
	if (m->ol_flags & RTE_MBUF_F_TX_L4_MASK)
		m->ol_flags = (m->ol_flags & ~RTE_MBUF_F_RX_L4_CKSUM_MASK) |
			      RTE_MBUF_F_RX_L4_CKSUM_BAD;
	STAT_ADD(q, fc[EBB_FAULT_CORRUPTED], 1);
	return m;
}

/* The fate of one frame the caller sends. Needs FAULT_SLOTS_PER_FRAME
 * free slots. */
static void faults_one(struct nic_queue *q, struct rte_mbuf *m, uint64_t now)
{
	struct queue_faults *f = &q->f;
	double r_drop, r_corrupt, r_reorder, r_dup;
	uint64_t r_bit;
	bool dup;

	if (!f->on) {
		/* Off, but frames still wait: keep the order. */
		fifo_push(f, m, now);
		return;
	}
	/* Five draws for every frame whatever befalls it: the faults of
	 * frame k depend on the seed and k only. */
	r_drop = rng_unit(&f->rng);
	r_corrupt = rng_unit(&f->rng);
	r_reorder = rng_unit(&f->rng);
	r_dup = rng_unit(&f->rng);
	r_bit = rng_next(&f->rng);

	if (r_drop < f->cfg.drop) {
		rte_pktmbuf_free(m);
		STAT_ADD(q, fc[EBB_FAULT_DROPPED], 1);
		return;
	}
	if (r_corrupt < f->cfg.corrupt)
		m = faults_corrupt(q, m, r_bit);
	dup = r_dup < f->cfg.duplicate;
	if (r_reorder < f->cfg.reorder && f->held == NULL) {
		f->held = m;
		f->held_dup = dup;
		f->held_until = now + EBB_NIC_REORDER_HOLD_US *
					      rte_get_tsc_hz() / 1000000u;
		STAT_ADD(q, fc[EBB_FAULT_REORDERED], 1);
		return;
	}
	faults_out(q, m, dup, now);
	if (f->held != NULL) {
		faults_out(q, f->held, f->held_dup, now);
		f->held = NULL;
	}
}

/* Send what is due at @now, as far as the device takes it. */
static void faults_flush(struct nic_queue *q, uint64_t now)
{
	struct queue_faults *f = &q->f;
	struct rte_mbuf *pkts[NIC_BURST];

	if (f->held != NULL && f->held_until <= now &&
	    fifo_room(f) >= FAULT_SLOTS_PER_FRAME / 2) {
		faults_out(q, f->held, f->held_dup, now);
		f->held = NULL;
	}
	while (f->head != f->tail) {
		uint16_t n = 0, sent;

		while (n < NIC_BURST && f->head + n != f->tail) {
			const struct fault_slot *sl =
				&f->fifo[(f->head + n) & (f->cap - 1)];

			if (sl->due > now)
				break;
			pkts[n++] = sl->m;
		}
		if (n == 0)
			break;
		sent = dev_tx(q, pkts, n);
		f->head += sent;
		if (sent < n)
			break;	/* device full: retried from the timer */
	}
}

static void faults_timer_fn(struct ebb_timer *t, void *arg);

/* Keep the queue's timer set for the next thing due, so that a halted
 * core wakes to send it. */
static void faults_arm(struct nic_queue *q, uint64_t now)
{
	struct queue_faults *f = &q->f;
	uint64_t next = UINT64_MAX, hz = rte_get_tsc_hz();

	if (f->head != f->tail)
		next = f->fifo[f->head & (f->cap - 1)].due;
	if (f->held != NULL)
		next = RTE_MIN(next, f->held_until);
	if (next == UINT64_MAX) {
		if (ebb_timer_pending(&f->timer))
			ebb_timer_cancel(&f->timer);
		return;
	}
	if (ebb_timer_pending(&f->timer) && f->timer_at == next)
		return;
	f->timer_at = next;
	/* Rounded up: it never fires before the frame is due. */
	ebb_timer_start(&f->timer,
			next > now ? ((next - now) * 1000000000u + hz - 1) / hz
				   : 0,
			0);
}

/* Timer and vector work of the fault stage: on the owning core. */
static void faults_service(struct nic_queue *q)
{
	uint64_t now = rte_rdtsc();

	/* Pairs with the release increment in ebb_nic_set_faults(). */
	if (atomic_load_explicit(&q->nic->faults_gen, memory_order_acquire) !=
	    q->f.gen)
		faults_adopt(q, now);
	faults_flush(q, now);
	faults_arm(q, now);
}

static void faults_timer_fn(struct ebb_timer *t, void *arg)
{
	(void)t;
	faults_service(arg);
}

static __rte_noinline uint16_t faults_tx(struct nic_queue *q,
					 struct rte_mbuf **pkts, uint16_t n)
{
	struct queue_faults *f = &q->f;
	uint64_t now = rte_rdtsc();
	uint16_t i;

	/* What is due goes first: the FIFO keeps the send order. */
	faults_flush(q, now);
	for (i = 0; i < n; i++) {
		if (f->on ? fifo_room(f) < FAULT_SLOTS_PER_FRAME
			  : fifo_room(f) == 0)
			break;
		faults_one(q, pkts[i], now);
	}
	faults_flush(q, now);
	faults_arm(q, now);
	if (i < n)
		STAT_ADD(q, tx_full, n - i);
	return i;
}

/* Drop what the fault stage still holds (detach, close). */
static void faults_discard(struct nic_queue *q)
{
	if (ebb_timer_pending(&q->f.timer))
		ebb_timer_cancel(&q->f.timer);
	faults_free_waiting(&q->f);
}

static bool rxq_pending(void *arg)
{
	struct nic_queue *q = arg;
	bool due = unlikely(faults_waiting(&q->f)) &&
		   faults_due(&q->f, rte_rdtsc());

	/* Not every PMD can count a queue (rte_eth_rx_queue_count), so
	 * look by receiving: what we got waits here for handle(). */
	if (q->nstash == 0)
		q->nstash = rte_eth_rx_burst(q->nic->port, q->id, q->stash,
					     NIC_BURST);
	return q->nstash != 0 || due;
}

/* A wire delivers the sender's mbufs: turn its checksum offload request
 * into the verdict a checking NIC would give (GOOD, or BAD when the fault
 * injector flipped a bit), and clear receive flags a frame may carry from
 * an earlier life (an echoed buffer). */
static void wire_rx_csum(struct rte_mbuf **pkts, uint16_t n)
{
	const uint64_t rx = RTE_MBUF_F_RX_L4_CKSUM_MASK |
			    RTE_MBUF_F_RX_IP_CKSUM_MASK;

	for (uint16_t i = 0; i < n; i++) {
		uint64_t f = pkts[i]->ol_flags;
		uint64_t v = 0;

		if (f & RTE_MBUF_F_TX_L4_MASK)
			v = (f & RTE_MBUF_F_RX_L4_CKSUM_MASK) ==
					    RTE_MBUF_F_RX_L4_CKSUM_BAD ?
				    RTE_MBUF_F_RX_L4_CKSUM_BAD :
				    RTE_MBUF_F_RX_L4_CKSUM_GOOD;
		pkts[i]->ol_flags = (f & ~(rx | RTE_MBUF_F_TX_OFFLOAD_MASK)) |
				    v;
	}
}

unsigned ebb_nic_mtu(const struct ebb_nic *nic)
{
	return ebb_nic_tx_l4_csum_offload(nic) ? EBB_NIC_WIRE_MTU :
						 RTE_ETHER_MTU;
}

bool ebb_nic_tx_l4_csum_offload(const struct ebb_nic *nic)
{
	return nic != NULL && (nic->wire != NULL || nic->peer_node >= 0);
}

static void rxq_handle(void *arg)
{
	struct nic_queue *q = arg;
	struct rte_mbuf *pkts[NIC_BURST];
	uint16_t n = q->nstash;

	if (unlikely(faults_waiting(&q->f)))
		faults_service(q);
	if (n == 0)
		return;
	memcpy(pkts, q->stash, sizeof(pkts[0]) * n);
	q->nstash = 0;
	if (q->nic->wire != NULL || q->nic->peer_node >= 0)
		wire_rx_csum(pkts, n);
	STAT_ADD(q, rx_packets, n);
	STAT_ADD(q, rx_bursts, 1);
	q->fn(q->arg, pkts, n);
}

static int rxq_arm(void *arg)
{
	struct nic_queue *q = arg;
	int rc = rte_eth_dev_rx_intr_enable(q->nic->port, q->id);

	STAT_ADD(q, armed, 1);
	/* net_tap has nothing to enable (-ENOTSUP): its queue fd is always
	 * readable when a frame waits, which is all the halt needs. */
	return rc == -ENOTSUP ? 0 : rc;
}

static void rxq_disarm(void *arg)
{
	struct nic_queue *q = arg;

	rte_eth_dev_rx_intr_disable(q->nic->port, q->id);
}

/* Find the port of a device DPDK has probed, by the name in @devargs
 * (before the first comma). */
static int port_of(const char *devargs, uint16_t *port)
{
	char name[RTE_ETH_NAME_MAX_LEN];
	size_t len = strcspn(devargs, ",");

	if (len == 0 || len >= sizeof(name))
		return -EINVAL;
	memcpy(name, devargs, len);
	name[len] = '\0';
	return rte_eth_dev_get_port_by_name(name, port) == 0 ? 0 : -ENODEV;
}

static int port_configure(struct ebb_nic *nic, unsigned ring)
{
	struct rte_eth_conf conf;
	struct rte_eth_dev_info info;
	int socket = rte_eth_dev_socket_id(nic->port);
	int rc;

	rc = rte_eth_dev_info_get(nic->port, &info);
	if (rc)
		return rc;
	if (nic->nq > info.max_rx_queues || nic->nq > info.max_tx_queues) {
		fprintf(stderr, "ebbrt nic: %s has %u rx / %u tx queues, %u "
				"asked\n",
			rte_dev_name(info.device), info.max_rx_queues,
			info.max_tx_queues, nic->nq);
		return -EINVAL;
	}
	memset(&conf, 0, sizeof(conf));
	if (nic->nq > 1 && info.flow_type_rss_offloads) {
		conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
		conf.rx_adv_conf.rss_conf.rss_hf = info.flow_type_rss_offloads &
						   (RTE_ETH_RSS_IP |
						    RTE_ETH_RSS_TCP |
						    RTE_ETH_RSS_UDP);
	}
	/* Checksums the device verifies on receive: the stack takes its
	 * verdict from the mbuf's ol_flags and checks the rest itself. */
	conf.rxmode.offloads = info.rx_offload_capa &
			       (RTE_ETH_RX_OFFLOAD_IPV4_CKSUM |
				RTE_ETH_RX_OFFLOAD_UDP_CKSUM |
				RTE_ETH_RX_OFFLOAD_TCP_CKSUM);
	conf.intr_conf.rxq = nic->rx_intr;
	rc = rte_eth_dev_configure(nic->port, nic->nq, nic->nq, &conf);
	if (rc && nic->rx_intr) {
		/* No rx interrupts on this device: poll, wake on timeout. */
		nic->rx_intr = false;
		conf.intr_conf.rxq = 0;
		rc = rte_eth_dev_configure(nic->port, nic->nq, nic->nq, &conf);
	}
	if (rc)
		return rc;
	for (unsigned i = 0; i < nic->nq; i++) {
		rc = rte_eth_rx_queue_setup(nic->port, i, ring, socket, NULL,
					    nic->pool);
		if (!rc)
			rc = rte_eth_tx_queue_setup(nic->port, i, ring, socket,
						    NULL);
		if (rc)
			return rc;
	}
	return rte_eth_dev_start(nic->port);
}

/* A NIC with @nq queues and nothing opened yet. */
static struct ebb_nic *nic_new(unsigned nq, unsigned ring)
{
	struct ebb_nic *nic = calloc(1, sizeof(*nic));

	if (nic == NULL)
		return NULL;
	nic->port = RTE_MAX_ETHPORTS;	/* nothing probed yet */
	nic->nq = nq;
	nic->ring_size = ring;
	rte_spinlock_init(&nic->faults_lock);
	nic->peer_node = -1;
	/* Private memory: a cluster node may die, and nothing of its own
	 * may stay behind in the shared heap. */
	nic->q = aligned_alloc(RTE_CACHE_LINE_SIZE, sizeof(*nic->q) * nq);
	if (nic->q == NULL) {
		free(nic);
		return NULL;
	}
	memset(nic->q, 0, sizeof(*nic->q) * nq);
	for (unsigned i = 0; i < nq; i++) {
		struct nic_queue *q = &nic->q[i];

		q->nic = nic;
		q->id = (uint16_t)i;
		q->vec = -1;
		q->intr_fd = -1;
		q->fc = q->fc_own;
		ebb_timer_init(&q->f.timer, faults_timer_fn, q);
	}
	return nic;
}

/* Configure and start the port, then find its rx interrupt fds. */
static int nic_start(struct ebb_nic *nic)
{
	struct rte_eth_dev_info info;
	int rc;

	if (rte_eth_dev_info_get(nic->port, &info) == 0)
		nic->dev = info.device;
	rc = port_configure(nic, nic->ring_size);
	if (rc)
		return rc;
	for (unsigned i = 0; nic->rx_intr && i < nic->nq; i++) {
		nic->q[i].intr_fd = rte_eth_dev_rx_intr_ctl_q_get_fd(nic->port,
								     (uint16_t)i);
		if (nic->q[i].intr_fd < 0)
			nic->rx_intr = false;
	}
	if (!nic->rx_intr)
		for (unsigned i = 0; i < nic->nq; i++)
			nic->q[i].intr_fd = -1;
	return 0;
}

struct ebb_nic *ebb_nic_open(const struct ebb_nic_config *cfg)
{
	struct ebb_nic *nic = NULL;
	char pool_name[RTE_MEMPOOL_NAMESIZE];
	unsigned nmbufs;
	uint16_t port;
	int rc, err;

	if (cfg == NULL || cfg->devargs == NULL || cfg->devargs[0] == '\0' ||
	    cfg->nqueues > EBB_MAX_CORES) {
		errno = EINVAL;
		return NULL;
	}
	rc = port_of(cfg->devargs, &port);
	if (rc != -ENODEV) {
		/* 0: a port by that name is open already. */
		errno = rc == 0 ? EEXIST : EINVAL;
		return NULL;
	}
	nic = nic_new(cfg->nqueues ? cfg->nqueues : 1,
		      cfg->ring_size ? cfg->ring_size : NIC_DEFAULT_RING);
	if (nic == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	rc = rte_dev_probe(cfg->devargs);
	if (rc) {
		fprintf(stderr, "ebbrt nic: cannot probe '%s': %s\n",
			cfg->devargs, strerror(-rc));
		err = ENODEV;
		goto fail;
	}
	if (port_of(cfg->devargs, &port) != 0) {
		fprintf(stderr, "ebbrt nic: '%s' probed but no port by that "
				"name\n", cfg->devargs);
		err = ENODEV;
		goto fail;
	}
	nic->port = port;
	nic->rx_intr = !cfg->no_rx_intr;
	nmbufs = cfg->nmbufs ? cfg->nmbufs : NIC_DEFAULT_MBUFS;
	snprintf(pool_name, sizeof(pool_name), "ebb_nic_%u", port);
	/* A pool shared by processes has no per-lcore cache: lcore ids
	 * repeat across the nodes of a cluster. */
	nic->pool = rte_pktmbuf_pool_create(pool_name, nmbufs,
					    cfg->shared ? 0 :
					    RTE_MIN(NIC_POOL_CACHE, nmbufs / 4),
					    0, RTE_MBUF_DEFAULT_BUF_SIZE,
					    rte_eth_dev_socket_id(port));
	if (nic->pool == NULL) {
		err = ENOMEM;
		goto fail;
	}
	rc = nic_start(nic);
	if (rc) {
		fprintf(stderr, "ebbrt nic: cannot start port %u ('%s'): %s\n",
			port, cfg->devargs, strerror(rc < 0 ? -rc : rc));
		err = ENODEV;
		goto fail;
	}
	return nic;
fail:
	ebb_nic_close(nic);
	errno = err;
	return NULL;
}

/* --- a cluster node's ports --- */

/* The faults `ebbrt run --faults` asked for on this link, and the
 * counters the frontend shows: queue i counts in core i's row. */
static void borrow_faults(struct ebb_nic *nic, struct ebb_cluster_faults *cf)
{
	for (unsigned i = 0; i < nic->nq && i < EBB_MAX_CORES; i++) {
		nic->q[i].fc = cf->count[i];
		for (unsigned k = 0; k < EBB_FAULT_COUNTERS; k++)
			__atomic_store_n(&cf->count[i][k], 0,
					 __ATOMIC_RELAXED);
	}
	if (cf->on) {
		struct ebb_nic_faults f = {
			.seed = cf->seed,
			.drop = cf->drop,
			.duplicate = cf->duplicate,
			.reorder = cf->reorder,
			.corrupt = cf->corrupt,
			.delay_us = cf->delay_us,
		};

		/* The frontend checked them. */
		if (ebb_nic_set_faults(nic, &f) != 0)
			fprintf(stderr, "ebbrt nic: bad faults from the "
					"frontend: ignored\n");
	}
}

/* Port @port as the frontend set it up: core i owns queue i. */
static struct ebb_nic *nic_borrow(uint16_t port, bool wire)
{
	struct ebb_cluster_node *me;
	struct ebb_nic *nic;
	unsigned nq;

	if (ebb_cluster == NULL) {
		errno = ENOTSUP;
		return NULL;
	}
	me = &ebb_cluster->node[ebb_node_id()];
	if (port >= RTE_MAX_ETHPORTS || !rte_eth_dev_is_valid_port(port)) {
		errno = ENOENT;
		return NULL;
	}
	nq = me->ncores;
	nic = nic_new(nq, NIC_DEFAULT_RING);
	if (nic == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	nic->port = port;
	nic->borrowed = true;
	nic->pool = me->port_pool;
	borrow_faults(nic, &me->faults[wire ? EBB_LINK_WIRE : EBB_LINK_PORT]);
	if (wire) {
		nic->peer_node = me->wire_peer;
		nic->rx_kicked = true;
		return nic;
	}
	nic->rx_intr = true;
	for (unsigned i = 0; i < nq; i++) {
		nic->q[i].intr_fd = ebb_cluster->msix == EBB_MSIX_PASS ?
					    ebb_cluster_queue_fd(i) :
					    -1;
		if (nic->q[i].intr_fd < 0)
			nic->rx_intr = false;
	}
	/* Forwarded: the frontend waits on the queue fds for us. */
	nic->rx_kicked = ebb_cluster->msix == EBB_MSIX_FORWARD;
	if (nic->rx_kicked)
		nic->rx_intr = true;
	return nic;
}

struct ebb_nic *ebb_nic_node_port(void)
{
	if (ebb_cluster == NULL) {
		errno = ENOTSUP;
		return NULL;
	}
	return nic_borrow(ebb_cluster->node[ebb_node_id()].port, false);
}

struct ebb_nic *ebb_nic_node_wire(void)
{
	if (ebb_cluster == NULL) {
		errno = ENOTSUP;
		return NULL;
	}
	return nic_borrow(ebb_cluster->node[ebb_node_id()].wire_port, true);
}

/* --- virtual wires --- */

/* Drop a reference to @w; the last one frees the rings, the frames still
 * on them and the pool (both ports are gone by then). */
static void wire_put(struct nic_wire *w)
{
	if (w == NULL || --w->refs > 0)
		return;
	for (unsigned i = 0; w->ring != NULL && i < 2 * w->nq; i++) {
		struct rte_mbuf *m;

		if (w->ring[i] == NULL)
			continue;
		while (rte_ring_dequeue(w->ring[i], (void **)&m) == 0)
			rte_pktmbuf_free(m);
		rte_ring_free(w->ring[i]);
	}
	rte_mempool_free(w->pool);
	free(w->ring);
	free(w->owner);
	free(w);
}

/* The wire's rings and pool, named after @name. */
static int wire_new(const char *name, unsigned nq, unsigned ring,
		    unsigned nmbufs, struct nic_wire **out)
{
	char rname[RTE_RING_NAMESIZE];
	struct nic_wire *w = calloc(1, sizeof(*w));
	int socket = (int)rte_socket_id();

	if (w == NULL)
		return -ENOMEM;
	w->refs = 1;
	w->nq = nq;
	w->ring = calloc(2 * nq, sizeof(*w->ring));
	w->owner = calloc(2 * nq, sizeof(*w->owner));
	if (w->ring == NULL || w->owner == NULL)
		goto nomem;
	for (unsigned i = 0; i < 2 * nq; i++)
		atomic_init(&w->owner[i], EBB_CORE_NONE);
	snprintf(rname, sizeof(rname), "ebbw_%s", name);
	w->pool = rte_pktmbuf_pool_create(rname, nmbufs,
					  RTE_MIN(NIC_POOL_CACHE, nmbufs / 4),
					  0, RTE_MBUF_DEFAULT_BUF_SIZE,
					  socket);
	if (w->pool == NULL) {
		wire_put(w);
		return rte_errno == EEXIST ? -EEXIST : -ENOMEM;
	}
	for (unsigned i = 0; i < 2 * nq; i++) {
		/* One sender (the core owning the tx queue) and one receiver
		 * (the core owning the other end's rx queue) per ring. */
		snprintf(rname, sizeof(rname), "ebbw_%s_%c%u", name,
			 i < nq ? 'a' : 'b', i % nq);
		w->ring[i] = rte_ring_create(rname, ring, socket,
					     RING_F_SP_ENQ | RING_F_SC_DEQ |
						     RING_F_EXACT_SZ);
		if (w->ring[i] == NULL) {
			wire_put(w);
			return rte_errno == EEXIST ? -EEXIST : -ENOMEM;
		}
	}
	*out = w;
	return 0;
nomem:
	wire_put(w);
	return -ENOMEM;
}

/* End @end (0: a, 1: b) of wire @w: a net_ring port that sends on
 * direction @end and receives on the other. */
static int wire_end(struct nic_wire *w, const char *name, unsigned end,
		    unsigned ring, struct ebb_nic **out)
{
	char pname[RTE_ETH_NAME_MAX_LEN];
	struct rte_ring **tx = &w->ring[end * w->nq];
	struct rte_ring **rx = &w->ring[(1 - end) * w->nq];
	struct ebb_nic *nic;
	int port, rc;

	nic = nic_new(w->nq, ring);
	if (nic == NULL)
		return -ENOMEM;
	/* The ring PMD names the device net_ring_<name>. */
	snprintf(pname, sizeof(pname), "%s_%c", name, 'a' + end);
	port = rte_eth_from_rings(pname, rx, w->nq, tx, w->nq,
				  rte_socket_id());
	if (port < 0) {
		fprintf(stderr, "ebbrt nic: cannot create wire end "
				"net_ring_%s: %s\n", pname,
			rte_strerror(rte_errno));
		ebb_nic_close(nic);
		return -ENODEV;
	}
	nic->port = (uint16_t)port;
	nic->wire = w;
	w->refs++;
	nic->pool = w->pool;
	nic->rx_intr = false;	/* net_ring has none: the sender kicks */
	for (unsigned i = 0; i < w->nq; i++) {
		nic->q[i].owner = &w->owner[end * w->nq + i];
		nic->q[i].peer_owner = &w->owner[(1 - end) * w->nq + i];
	}
	rc = nic_start(nic);
	if (rc) {
		fprintf(stderr, "ebbrt nic: cannot start wire end "
				"net_ring_%s: %s\n", pname,
			strerror(rc < 0 ? -rc : rc));
		ebb_nic_close(nic);
		return -ENODEV;
	}
	*out = nic;
	return 0;
}

int ebb_nic_open_wire(const char *name, const struct ebb_nic_config *cfg,
		      struct ebb_nic **a, struct ebb_nic **b)
{
	char pname[RTE_ETH_NAME_MAX_LEN];
	struct ebb_nic *end[2] = { NULL, NULL };
	struct nic_wire *w = NULL;
	unsigned nq, ring, nmbufs;
	uint16_t port;
	size_t len;
	int rc;

	if (a != NULL)
		*a = NULL;
	if (b != NULL)
		*b = NULL;
	if (name == NULL || cfg == NULL || a == NULL || b == NULL)
		return -EINVAL;
	len = strlen(name);
	nq = cfg->nqueues ? cfg->nqueues : 1;
	if (len == 0 || len > EBB_NIC_WIRE_NAME_MAX ||
	    strpbrk(name, ",=") != NULL || nq > EBB_MAX_CORES ||
	    nq > RTE_PMD_RING_MAX_RX_RINGS)
		return -EINVAL;
	snprintf(pname, sizeof(pname), "net_ring_%s_a", name);
	if (rte_eth_dev_get_port_by_name(pname, &port) == 0)
		return -EEXIST;
	ring = cfg->ring_size ? cfg->ring_size : NIC_DEFAULT_RING;
	nmbufs = cfg->nmbufs ? cfg->nmbufs : NIC_DEFAULT_MBUFS;
	rc = wire_new(name, nq, ring, nmbufs, &w);
	if (rc)
		return rc;
	rc = wire_end(w, name, 0, ring, &end[0]);
	if (!rc)
		rc = wire_end(w, name, 1, ring, &end[1]);
	if (rc) {
		ebb_nic_close(end[0]);
		wire_put(w);
		return rc;
	}
	/* The ends hold the wire now. */
	wire_put(w);
	*a = end[0];
	*b = end[1];
	return 0;
}

void ebb_nic_close(struct ebb_nic *nic)
{
	if (nic == NULL)
		return;
	for (unsigned i = 0; nic->q && i < nic->nq; i++) {
		struct nic_queue *q = &nic->q[i];

		rte_pktmbuf_free_bulk(q->stash, q->nstash);
		q->nstash = 0;
		/* The cores are stopped (their timers are gone) or the
		 * queue was detached (it cancelled its timer). */
		faults_free_waiting(&q->f);
		free(q->f.fifo);
		if (q->owner != NULL)
			atomic_store_explicit(q->owner, EBB_CORE_NONE,
					      memory_order_release);
	}
	if (nic->borrowed) {
		free(nic->q);
		free(nic);
		return;
	}
	if (nic->port < RTE_MAX_ETHPORTS) {
		rte_eth_dev_stop(nic->port);
		/* Removing the device closes its port; a vdev goes away
		 * with it (a tap interface is deleted). */
		if (nic->dev == NULL || rte_dev_remove(nic->dev) != 0)
			rte_eth_dev_close(nic->port);
	}
	if (nic->wire != NULL)
		wire_put(nic->wire);
	else
		rte_mempool_free(nic->pool);
	free(nic->q);
	free(nic);
}

int ebb_nic_mac(const struct ebb_nic *nic, uint8_t mac[6])
{
	static const uint8_t zero[6];
	char name[RTE_ETH_NAME_MAX_LEN];
	struct rte_ether_addr a;

	if (nic == NULL || mac == NULL ||
	    rte_eth_macaddr_get(nic->port, &a) != 0)
		return -EINVAL;
	memcpy(mac, a.addr_bytes, 6);
	if (memcmp(mac, zero, 6) == 0 &&
	    rte_eth_dev_get_name_by_port(nic->port, name) == 0) {
		/* net_ring ports (wire ends) have an all-zero MAC and no way
		 * to set one: derive a locally administered one from the
		 * port's name, the same in every process. */
		uint32_t h = 2166136261u;

		for (const char *c = name; *c; c++)
			h = (h ^ (uint8_t)*c) * 16777619u;
		mac[0] = 0x02;
		mac[1] = 0xeb;
		memcpy(mac + 2, &h, 4);
	}
	return 0;
}

struct rte_mempool *ebb_nic_pool(const struct ebb_nic *nic)
{
	return nic ? nic->pool : NULL;
}

bool ebb_nic_has_rx_intr(const struct ebb_nic *nic)
{
	return nic && nic->rx_intr;
}

int ebb_nic_attach(struct ebb_nic *nic, unsigned queue, ebb_nic_rx_fn fn,
		   void *arg)
{
	struct ebb_vector_ops ops = {
		.pending = rxq_pending,
		.handle = rxq_handle,
		.fd = EBB_VECTOR_FD_NONE,
	};
	struct nic_queue *q;
	int vec;

	if (ebb_core_id() == EBB_CORE_NONE)
		return -EPERM;
	if (nic == NULL || queue >= nic->nq || fn == NULL)
		return -EINVAL;
	q = &nic->q[queue];
	if (q->vec >= 0)
		return -EBUSY;
	if (q->intr_fd >= 0 && nic->borrowed) {
		/* The frontend enabled it; the fd is all we need. */
		ops.fd = q->intr_fd;
	} else if (q->intr_fd >= 0) {
		ops.arm = rxq_arm;
		ops.disarm = rxq_disarm;
		ops.fd = q->intr_fd;
	} else if (q->owner != NULL || nic->rx_kicked) {
		/* A wire end: the other end's sender kicks this core. */
		ops.fd = EBB_VECTOR_FD_KICK;
	}
	q->fn = fn;
	q->arg = arg;
	q->core = ebb_core_id();
	vec = ebb_vector_add(&ops, q);
	if (vec < 0)
		return vec;
	q->vec = vec;
	/* Pairs with the acquire load in dev_tx() of the other end. */
	if (q->owner != NULL)
		atomic_store_explicit(q->owner, q->core, memory_order_release);
	return 0;
}

int ebb_nic_detach(struct ebb_nic *nic, unsigned queue)
{
	struct nic_queue *q;

	if (ebb_core_id() == EBB_CORE_NONE)
		return -EPERM;
	if (nic == NULL || queue >= nic->nq)
		return -EINVAL;
	q = &nic->q[queue];
	if (q->vec < 0 || q->core != ebb_core_id())
		return -EINVAL;
	if (q->owner != NULL)
		atomic_store_explicit(q->owner, EBB_CORE_NONE,
				      memory_order_release);
	ebb_vector_remove(q->vec);
	q->vec = -1;
	rte_pktmbuf_free_bulk(q->stash, q->nstash);
	q->nstash = 0;
	faults_discard(q);
	return 0;
}

uint16_t ebb_nic_tx(struct ebb_nic *nic, unsigned queue,
		    struct rte_mbuf **pkts, uint16_t n)
{
	struct nic_queue *q = &nic->q[queue];
	uint16_t sent;

	/* Pairs with the release increment in ebb_nic_set_faults(). */
	if (unlikely(atomic_load_explicit(&nic->faults_gen,
					  memory_order_acquire) != q->f.gen))
		faults_adopt(q, rte_rdtsc());
	if (unlikely(q->f.on || faults_waiting(&q->f)))
		return faults_tx(q, pkts, n);
	sent = dev_tx(q, pkts, n);
	if (sent < n)
		STAT_ADD(q, tx_full, n - sent);
	return sent;
}

static inline bool prob_ok(double p)
{
	return p >= 0.0 && p <= 1.0;	/* false for NaN */
}

int ebb_nic_set_faults(struct ebb_nic *nic, const struct ebb_nic_faults *f)
{
	if (nic == NULL)
		return -EINVAL;
	if (f != NULL && !(prob_ok(f->drop) && prob_ok(f->duplicate) &&
			   prob_ok(f->reorder) && prob_ok(f->corrupt)))
		return -EINVAL;
	rte_spinlock_lock(&nic->faults_lock);
	nic->faults_on = f != NULL;
	if (f != NULL)
		nic->faults = *f;
	else
		memset(&nic->faults, 0, sizeof(nic->faults));
	/* Pairs with the acquire loads in ebb_nic_tx() and
	 * faults_service(); the queues read the settings under the lock. */
	atomic_fetch_add_explicit(&nic->faults_gen, 1, memory_order_release);
	rte_spinlock_unlock(&nic->faults_lock);
	return 0;
}

int ebb_nic_stats(const struct ebb_nic *nic, struct ebb_nic_stats *out)
{
	if (nic == NULL || out == NULL)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	for (unsigned i = 0; i < nic->nq; i++) {
		const struct nic_queue *q = &nic->q[i];

#define SUM(to, from) out->to += __atomic_load_n(&q->from, __ATOMIC_RELAXED)
		SUM(rx_packets, rx_packets);
		SUM(tx_packets, tx_packets);
		SUM(tx_full, tx_full);
		SUM(rx_bursts, rx_bursts);
		SUM(rx_wakeups_armed, armed);
		SUM(faults_dropped, fc[EBB_FAULT_DROPPED]);
		SUM(faults_duplicated, fc[EBB_FAULT_DUPLICATED]);
		SUM(faults_reordered, fc[EBB_FAULT_REORDERED]);
		SUM(faults_corrupted, fc[EBB_FAULT_CORRUPTED]);
		SUM(faults_delayed, fc[EBB_FAULT_DELAYED]);
#undef SUM
	}
	return 0;
}

/* --- for the frontend (nic_frontend.h) --- */

uint16_t ebb_nic_port_id(const struct ebb_nic *nic)
{
	return nic->port;
}

int ebb_nic_queue_fd(const struct ebb_nic *nic, unsigned q)
{
	return nic && q < nic->nq ? nic->q[q].intr_fd : -1;
}

int ebb_nic_queue_counters(const struct ebb_nic *nic, unsigned q,
			   struct ebb_nic_queue_counters *out)
{
	struct rte_eth_stats st;

	if (nic == NULL || q >= nic->nq || out == NULL ||
	    rte_eth_stats_get(nic->port, &st) != 0)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	if (q < RTE_ETHDEV_QUEUE_STAT_CNTRS) {
		out->rx_packets = st.q_ipackets[q];
		out->tx_packets = st.q_opackets[q];
		out->rx_bytes = st.q_ibytes[q];
		out->tx_bytes = st.q_obytes[q];
	}
	if (q == 0)
		out->drops = st.imissed + st.ierrors + st.rx_nombuf + st.oerrors;
	return 0;
}

/* Read the device's RSS key and redirection table once. */
static void nic_rss_read(struct ebb_nic *nic)
{
	struct rte_eth_rss_reta_entry64 conf[RTE_ETH_RSS_RETA_SIZE_512 /
					      RTE_ETH_RETA_GROUP_SIZE];
	struct rte_eth_rss_conf rc = { .rss_key = nic->rss_key,
				       .rss_key_len = sizeof(nic->rss_key) };
	struct rte_eth_dev_info info;

	nic->rss_state = 2;
	if (rte_eth_dev_info_get(nic->port, &info) != 0 ||
	    info.reta_size == 0 || info.reta_size > RTE_ETH_RSS_RETA_SIZE_512 ||
	    info.hash_key_size != sizeof(nic->rss_key) ||
	    rte_eth_dev_rss_hash_conf_get(nic->port, &rc) != 0)
		return;
	memset(conf, 0, sizeof(conf));
	for (unsigned i = 0; i < info.reta_size / RTE_ETH_RETA_GROUP_SIZE; i++)
		conf[i].mask = UINT64_MAX;
	if (rte_eth_dev_rss_reta_query(nic->port, conf, info.reta_size) != 0)
		return;
	for (unsigned i = 0; i < info.reta_size; i++)
		nic->reta[i] = conf[i / RTE_ETH_RETA_GROUP_SIZE]
				       .reta[i % RTE_ETH_RETA_GROUP_SIZE];
	nic->reta_size = info.reta_size;
	nic->rss_state = 1;
}

int ebb_nic_rx_queue(struct ebb_nic *nic, uint32_t src_ip, uint32_t dst_ip,
		     uint16_t src_port, uint16_t dst_port)
{
	uint32_t tuple[3];
	uint32_t h;

	if (nic == NULL)
		return -EINVAL;
	if (nic->nq == 1)
		return 0;
	if (nic->wire != NULL || nic->peer_node >= 0)
		return -1;	/* the queue the peer sent on answers */
	if (nic->rss_state == 0)
		nic_rss_read(nic);
	if (nic->rss_state != 1)
		return -1;
	/* rte_softrss() takes the tuple in host order, as DPDK's own
	 * users do (struct rte_ipv4_tuple). */
	tuple[0] = src_ip;
	tuple[1] = dst_ip;
	tuple[2] = (uint32_t)src_port << 16 | dst_port;
	h = rte_softrss(tuple, 3, nic->rss_key);
	return nic->reta[h % nic->reta_size];
}
