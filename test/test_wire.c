/* SPDX-License-Identifier: BSD-3-Clause */
/* Back-to-back virtual wires (crossed net_ring ports) and the sender's
 * kick that wakes a halted receiver: frames cross and come back intact,
 * queue i meets queue i, a halted core wakes on its doorbell at once and
 * never on a timeout, mbufs all return, both ends close, misuse is an
 * error. Needs hugepages only. */
#include <arpa/inet.h>
#include <stdatomic.h>

#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>

#include <ebbrt/nic.h>

#include "harness.h"

#define ETH_TEST 0x88b5		/* IEEE local experimental ethertype */
#define PAYLOAD 46

struct test_frame {
	uint8_t dst[6], src[6];
	uint16_t type;
	uint32_t seq;
	uint8_t queue;
	uint8_t pad[PAYLOAD];
} __attribute__((packed));

static struct ebb_nic *wa, *wb;

static uint8_t pattern(uint32_t seq, unsigned j)
{
	return (uint8_t)(seq * 7u + j * 13u + 1u);
}

static struct rte_mbuf *make_frame(struct ebb_nic *nic, uint32_t seq,
				   uint8_t queue)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(ebb_nic_pool(nic));
	struct test_frame *f;

	if (m == NULL)
		return NULL;
	f = (struct test_frame *)rte_pktmbuf_append(m, sizeof(*f));
	if (f == NULL) {
		rte_pktmbuf_free(m);
		return NULL;
	}
	memset(f->dst, 0xff, 6);
	memset(f->src, 0x02, 6);
	f->type = htons(ETH_TEST);
	f->seq = htonl(seq);
	f->queue = queue;
	for (unsigned j = 0; j < PAYLOAD; j++)
		f->pad[j] = pattern(seq, j);
	return m;
}

/* 0 when @m is an intact test frame; its sequence number in *@seq. */
static int check_frame(struct rte_mbuf *m, uint32_t *seq, uint8_t *queue)
{
	const struct test_frame *f;

	if (m->pkt_len != sizeof(*f) || m->nb_segs != 1)
		return -1;
	f = rte_pktmbuf_mtod(m, const struct test_frame *);
	if (ntohs(f->type) != ETH_TEST)
		return -2;
	*seq = ntohl(f->seq);
	*queue = f->queue;
	for (unsigned j = 0; j < PAYLOAD; j++)
		if (f->pad[j] != pattern(*seq, j))
			return -3;
	return 0;
}

static void open_wire(unsigned nq, unsigned ring)
{
	struct ebb_nic_config cfg = { .nqueues = nq, .ring_size = ring };
	int rc = ebb_nic_open_wire("tw", &cfg, &wa, &wb);

	cr_assert_eq(rc, 0, "ebb_nic_open_wire: %s", strerror(-rc));
	cr_assert_not_null(wa);
	cr_assert_not_null(wb);
}

static void close_wire(void)
{
	ebb_nic_close(wa);
	ebb_nic_close(wb);
	wa = wb = NULL;
}

/* --- attach and detach on a core --- */

struct attach_req {
	struct ebb_nic *nic;
	unsigned queue;
	ebb_nic_rx_fn fn;
	void *arg;
	int rc;
};

static void do_attach(void *p)
{
	struct attach_req *r = p;

	r->rc = ebb_nic_attach(r->nic, r->queue, r->fn, r->arg);
}

static void do_detach(void *p)
{
	struct attach_req *r = p;

	r->rc = ebb_nic_detach(r->nic, r->queue);
}

static void attach_on(unsigned core, struct ebb_nic *nic, unsigned queue,
		      ebb_nic_rx_fn fn, void *arg)
{
	struct attach_req r = { nic, queue, fn, arg, 1 };

	cr_assert_eq(ebbt_call(core, do_attach, &r), 0);
	cr_assert_eq(r.rc, 0, "attach queue %u on core %u: %d", queue, core,
		     r.rc);
}

static void detach_on(unsigned core, struct ebb_nic *nic, unsigned queue)
{
	struct attach_req r = { nic, queue, NULL, NULL, 1 };

	cr_assert_eq(ebbt_call(core, do_detach, &r), 0);
	cr_assert_eq(r.rc, 0, "detach queue %u on core %u: %d", queue, core,
		     r.rc);
}

/* --- frames cross and come back --- */

#define NROUND 2000

static atomic_int b_got, b_bad, b_order, b_echo_lost, b_wrong_core;
static atomic_int a_got, a_bad, a_order, a_wrong_core;
static uint32_t b_next, a_next;	/* owner core only */

/* End b, core 1: check each frame, send it back on the same queue. */
static void on_b_echo(void *arg, struct rte_mbuf **pkts, uint16_t n)
{
	uint16_t sent;

	(void)arg;
	if (ebb_core_id() != 1)
		atomic_fetch_add(&b_wrong_core, 1);
	for (uint16_t i = 0; i < n; i++) {
		uint32_t seq;
		uint8_t q;

		if (check_frame(pkts[i], &seq, &q) != 0) {
			atomic_fetch_add(&b_bad, 1);
			continue;
		}
		if (seq != b_next)
			atomic_fetch_add(&b_order, 1);
		b_next = seq + 1;
	}
	atomic_fetch_add(&b_got, n);
	sent = ebb_nic_tx(wb, 0, pkts, n);
	if (sent < n) {
		atomic_fetch_add(&b_echo_lost, n - sent);
		rte_pktmbuf_free_bulk(pkts + sent, n - sent);
	}
}

/* End a, core 0: the echoes. */
static void on_a_back(void *arg, struct rte_mbuf **pkts, uint16_t n)
{
	(void)arg;
	if (ebb_core_id() != 0)
		atomic_fetch_add(&a_wrong_core, 1);
	for (uint16_t i = 0; i < n; i++) {
		uint32_t seq;
		uint8_t q;

		if (check_frame(pkts[i], &seq, &q) != 0)
			atomic_fetch_add(&a_bad, 1);
		else if (seq != a_next)
			atomic_fetch_add(&a_order, 1);
		else
			a_next = seq + 1;
	}
	atomic_fetch_add(&a_got, n);
	rte_pktmbuf_free_bulk(pkts, n);
}

static uint32_t a_sent;		/* core 0 only */
static atomic_int a_send_done, a_alloc_fail;

/* Sends a burst and comes back as a new event, so core 0 receives the
 * echoes between bursts. */
static void send_bursts(void *arg)
{
	struct rte_mbuf *m[32];
	uint16_t n = 0, sent;

	(void)arg;
	while (n < 32 && a_sent + n < NROUND) {
		m[n] = make_frame(wa, a_sent + n, 0);
		if (m[n] == NULL) {
			atomic_fetch_add(&a_alloc_fail, 1);
			break;
		}
		n++;
	}
	sent = ebb_nic_tx(wa, 0, m, n);
	rte_pktmbuf_free_bulk(m + sent, n - sent);	/* resent later */
	a_sent += sent;
	if (a_sent < NROUND)
		cr_assert_eq(ebb_spawn_local(send_bursts, NULL), 0);
	else
		atomic_store(&a_send_done, 1);
}

Test(wire, frames_cross_and_come_back_intact, .timeout = 90)
{
	struct ebb_nic_stats sa, sb;
	struct rte_mempool *pool;
	unsigned avail0, avail1;

	ebbt_start("0-1");
	open_wire(1, 0);
	pool = ebb_nic_pool(wa);
	cr_assert_not_null(pool);
	cr_assert_eq(ebb_nic_pool(wb), pool, "the ends share one pool");
	cr_assert(!ebb_nic_has_rx_intr(wa), "net_ring has no rx interrupts");
	avail0 = rte_mempool_avail_count(pool);

	attach_on(0, wa, 0, on_a_back, NULL);
	attach_on(1, wb, 0, on_b_echo, NULL);
	cr_assert_eq(ebbt_call(0, send_bursts, NULL), 0);
	cr_assert(ebbt_wait_until(atomic_load(&a_got) +
						  atomic_load(&b_echo_lost) >=
					  NROUND,
				  20000),
		  "sent %d: b got %d (bad %d, out of order %d, echo lost %d), "
		  "a got %d back",
		  atomic_load(&a_send_done) ? NROUND : -1,
		  atomic_load(&b_got), atomic_load(&b_bad),
		  atomic_load(&b_order), atomic_load(&b_echo_lost),
		  atomic_load(&a_got));
	cr_assert_eq(atomic_load(&a_alloc_fail), 0);
	cr_assert_eq(atomic_load(&b_got), NROUND);
	cr_assert_eq(atomic_load(&b_bad), 0, "b saw damaged frames");
	cr_assert_eq(atomic_load(&b_order), 0, "b saw frames out of order");
	cr_assert_eq(atomic_load(&b_echo_lost), 0, "echo ring full");
	cr_assert_eq(atomic_load(&a_got), NROUND);
	cr_assert_eq(atomic_load(&a_bad), 0, "a saw damaged echoes");
	cr_assert_eq(atomic_load(&a_order), 0, "echoes out of order");
	cr_assert_eq(atomic_load(&a_wrong_core) + atomic_load(&b_wrong_core),
		     0, "a handler ran on the wrong core");

	cr_assert_eq(ebb_nic_stats(wa, &sa), 0);
	cr_assert_eq(ebb_nic_stats(wb, &sb), 0);
	cr_assert_eq(sa.tx_packets, NROUND, "a tx %lu",
		     (unsigned long)sa.tx_packets);
	cr_assert_eq(sb.rx_packets, NROUND, "b rx %lu",
		     (unsigned long)sb.rx_packets);
	cr_assert_eq(sb.tx_packets, NROUND);
	cr_assert_eq(sa.rx_packets, NROUND);

	detach_on(0, wa, 0);
	detach_on(1, wb, 0);
	cr_assert(ebbt_wait_until(
		(avail1 = rte_mempool_avail_count(pool)) == avail0, 2000),
		"pool: %u available before traffic, %u after", avail0, avail1);
	ebb_stop();
	cr_assert_eq(ebb_wait(), 0);
	close_wire();
	ebb_fini();
}

/* --- queue i meets queue i --- */

#define NQ_FRAMES 64

static atomic_int q_got[2], q_wrong[2];

static void on_b_queue(void *arg, struct rte_mbuf **pkts, uint16_t n)
{
	int want = (int)(intptr_t)arg;

	for (uint16_t i = 0; i < n; i++) {
		uint32_t seq;
		uint8_t q;

		if (check_frame(pkts[i], &seq, &q) != 0 || q != want)
			atomic_fetch_add(&q_wrong[want], 1);
		else
			atomic_fetch_add(&q_got[want], 1);
	}
	rte_pktmbuf_free_bulk(pkts, n);
}

static void on_drop(void *arg, struct rte_mbuf **pkts, uint16_t n)
{
	(void)arg;
	rte_pktmbuf_free_bulk(pkts, n);
}

static atomic_int q_sent[2];

static void send_on_queue(void *arg)
{
	unsigned queue = (unsigned)(intptr_t)arg;

	for (uint32_t i = 0; i < NQ_FRAMES; i++) {
		struct rte_mbuf *m = make_frame(wa, i, (uint8_t)queue);

		if (m == NULL)
			return;
		if (ebb_nic_tx(wa, queue, &m, 1) != 1) {
			rte_pktmbuf_free(m);
			return;
		}
		atomic_fetch_add(&q_sent[queue], 1);
	}
}

Test(wire, queue_i_of_a_is_queue_i_of_b, .timeout = 60)
{
	ebbt_start("0-1");
	open_wire(2, 256);
	/* Crossed owners: a's queue 0 and b's queue 1 on core 0. */
	attach_on(0, wa, 0, on_drop, NULL);
	attach_on(1, wa, 1, on_drop, NULL);
	attach_on(1, wb, 0, on_b_queue, (void *)(intptr_t)0);
	attach_on(0, wb, 1, on_b_queue, (void *)(intptr_t)1);
	cr_assert_eq(ebbt_call(0, send_on_queue, (void *)(intptr_t)0), 0);
	cr_assert_eq(ebbt_call(1, send_on_queue, (void *)(intptr_t)1), 0);
	cr_assert_eq(atomic_load(&q_sent[0]), NQ_FRAMES);
	cr_assert_eq(atomic_load(&q_sent[1]), NQ_FRAMES);
	cr_assert(ebbt_wait_until(atomic_load(&q_got[0]) == NQ_FRAMES &&
					  atomic_load(&q_got[1]) == NQ_FRAMES,
				  5000),
		  "queue 0 got %d (%d wrong), queue 1 got %d (%d wrong)",
		  atomic_load(&q_got[0]), atomic_load(&q_wrong[0]),
		  atomic_load(&q_got[1]), atomic_load(&q_wrong[1]));
	cr_assert_eq(atomic_load(&q_wrong[0]) + atomic_load(&q_wrong[1]), 0);
	ebb_stop();
	cr_assert_eq(ebb_wait(), 0);
	close_wire();
	ebb_fini();
}

/* --- a halted receiver is kicked awake --- */

#define NWAKE 200
#define WAKE_BOUND_NS (100ull * 1000 * 1000)

static atomic_int k_got;
static _Atomic uint64_t k_rx_ns;

static void on_b_stamp(void *arg, struct rte_mbuf **pkts, uint16_t n)
{
	(void)arg;
	atomic_store(&k_rx_ns, ebbt_now_ns());
	atomic_fetch_add(&k_got, n);
	rte_pktmbuf_free_bulk(pkts, n);
}

static _Atomic uint64_t k_tx_ns;
static atomic_int k_tx_rc;

static void send_one(void *arg)
{
	struct rte_mbuf *m = make_frame(wa, (uint32_t)(intptr_t)arg, 0);

	if (m == NULL) {
		atomic_store(&k_tx_rc, -ENOMEM);
		return;
	}
	atomic_store(&k_tx_ns, ebbt_now_ns());
	if (ebb_nic_tx(wa, 0, &m, 1) != 1) {
		rte_pktmbuf_free(m);
		atomic_store(&k_tx_rc, -ENOBUFS);
		return;
	}
	atomic_store(&k_tx_rc, 0);
}

/* While only a kicked vector is registered the core blocks with no
 * timeout: it does not wake by itself. An fd-less vector would make it
 * wake every 10 ms or sooner. */
static void assert_sleeps_soundly(unsigned core)
{
	struct ebb_core_stats s0, s1;

	cr_assert(ebbt_wait_until(ebb_core_halted(core), 5000),
		  "core %u never halted", core);
	usleep(20000);
	cr_assert_eq(ebb_core_stats(core, &s0), 0);
	usleep(300000);
	cr_assert_eq(ebb_core_stats(core, &s1), 0);
	cr_assert_leq(s1.wakes - s0.wakes, 3,
		      "core %u woke %lu times in 300 ms with nothing to do: "
		      "a halt timeout?",
		      core, (unsigned long)(s1.wakes - s0.wakes));
}

Test(wire, halted_receiver_wakes_on_the_senders_kick, .timeout = 90)
{
	struct ebb_core_stats s0, s1;
	uint64_t worst = 0;
	int worst_at = -1;

	ebbt_start_spin("0-1", 16);
	open_wire(1, 0);
	attach_on(0, wa, 0, on_drop, NULL);
	attach_on(1, wb, 0, on_b_stamp, NULL);
	assert_sleeps_soundly(1);

	cr_assert_eq(ebb_core_stats(1, &s0), 0);
	for (int i = 0; i < NWAKE; i++) {
		uint64_t lat;

		cr_assert(ebbt_wait_until(ebb_core_halted(1), 5000),
			  "core 1 never halted before frame %d", i);
		atomic_store(&k_tx_rc, 1);
		cr_assert_eq(ebbt_call(0, send_one, (void *)(intptr_t)i), 0);
		cr_assert_eq(atomic_load(&k_tx_rc), 0, "send %d: %d", i,
			     atomic_load(&k_tx_rc));
		cr_assert(ebbt_wait_until(atomic_load(&k_got) == i + 1, 2000),
			  "frame %d never reached the halted core (got %d)",
			  i, atomic_load(&k_got));
		lat = atomic_load(&k_rx_ns) - atomic_load(&k_tx_ns);
		if (lat > worst) {
			worst = lat;
			worst_at = i;
		}
	}
	cr_assert_eq(ebb_core_stats(1, &s1), 0);
	cr_assert_lt(worst, WAKE_BOUND_NS, "frame %d took %lu us", worst_at,
		     (unsigned long)(worst / 1000));
	/* It halted between the frames, and what woke it was the doorbell
	 * the sender rang: nobody else spawns on core 1. A frame sent while
	 * the core is between publishing its halt and blocking is caught by
	 * its last poll instead, so allow a few. */
	cr_assert_geq(s1.halts - s0.halts, NWAKE, "halts %lu",
		      (unsigned long)(s1.halts - s0.halts));
	cr_assert_geq(s1.doorbells - s0.doorbells, NWAKE * 9 / 10,
		      "%lu doorbells for %d frames to a halted core",
		      (unsigned long)(s1.doorbells - s0.doorbells), NWAKE);
	assert_sleeps_soundly(1);

	/* Detached: no more kicks, frames wait on the ring. */
	detach_on(1, wb, 0);
	cr_assert_eq(ebb_core_stats(1, &s0), 0);
	cr_assert_eq(ebbt_call(0, send_one, (void *)(intptr_t)NWAKE), 0);
	cr_assert_eq(atomic_load(&k_tx_rc), 0);
	usleep(50000);
	cr_assert_eq(ebb_core_stats(1, &s1), 0);
	cr_assert_eq(s1.doorbells, s0.doorbells, "kicked a detached queue");
	cr_assert_eq(atomic_load(&k_got), NWAKE);
	/* Attached again, it finds the frame that waited. */
	attach_on(1, wb, 0, on_b_stamp, NULL);
	cr_assert(ebbt_wait_until(atomic_load(&k_got) == NWAKE + 1, 2000));

	ebb_stop();
	cr_assert_eq(ebb_wait(), 0);
	close_wire();
	ebb_fini();
}

/* --- ebb_core_kick() on its own --- */

#define NKICK 100

static atomic_int kv_made, kv_done, kv_vec = -100;

static bool kv_pending(void *arg)
{
	(void)arg;
	return atomic_load_explicit(&kv_done, memory_order_relaxed) !=
	       atomic_load_explicit(&kv_made, memory_order_relaxed);
}

static void kv_handle(void *arg)
{
	(void)arg;
	atomic_fetch_add(&kv_done, 1);
}

static void add_kick_vector(void *arg)
{
	struct ebb_vector_ops ops = { .pending = kv_pending,
				      .handle = kv_handle,
				      .fd = EBB_VECTOR_FD_KICK };

	(void)arg;
	atomic_store(&kv_vec, ebb_vector_add(&ops, NULL));
}

static void remove_kick_vector(void *arg)
{
	(void)arg;
	cr_assert_eq(ebb_vector_remove(atomic_load(&kv_vec)), 0);
}

Test(wire, core_kick_wakes_a_vector_without_fd, .timeout = 60)
{
	struct ebb_core_stats s0, s1;

	ebbt_start_spin("0-1", 16);
	cr_assert_eq(ebb_core_kick(EBB_MAX_CORES + 3), -ENODEV);
	cr_assert_eq(ebb_core_kick(ebb_core_count()), -ENODEV);
	cr_assert_eq(ebbt_call(1, add_kick_vector, NULL), 0);
	cr_assert_geq(atomic_load(&kv_vec), 1, "vector_add: %d",
		      atomic_load(&kv_vec));
	assert_sleeps_soundly(1);
	cr_assert_eq(ebb_core_stats(1, &s0), 0);
	for (int i = 1; i <= NKICK; i++) {
		cr_assert(ebbt_wait_until(ebb_core_halted(1), 5000));
		atomic_fetch_add(&kv_made, 1);
		cr_assert_eq(ebb_core_kick(1), 0);
		cr_assert(ebbt_wait_until(atomic_load(&kv_done) == i, 2000),
			  "work %d not done by the kicked core", i);
	}
	cr_assert_eq(ebb_core_stats(1, &s1), 0);
	cr_assert_geq(s1.doorbells - s0.doorbells, NKICK * 9 / 10,
		      "%lu doorbells for %d kicks of a halted core",
		      (unsigned long)(s1.doorbells - s0.doorbells), NKICK);
	/* A running core is not rung. */
	cr_assert_eq(ebb_core_kick(0), 0);
	cr_assert_eq(ebbt_call(1, remove_kick_vector, NULL), 0);
	ebbt_stop();
}

/* --- closing and misuse --- */

static void send_n(void *arg)
{
	int n = (int)(intptr_t)arg;

	for (int i = 0; i < n; i++) {
		struct rte_mbuf *m = make_frame(wa, (uint32_t)i, 0);

		if (m == NULL)
			return;
		if (ebb_nic_tx(wa, 0, &m, 1) != 1) {
			rte_pktmbuf_free(m);
			return;
		}
		atomic_fetch_add(&q_sent[0], 1);
	}
}

static bool wire_gone(const char *name)
{
	char s[64];
	uint16_t port;

	snprintf(s, sizeof(s), "net_ring_%s_a", name);
	if (rte_eth_dev_get_port_by_name(s, &port) == 0)
		return false;
	snprintf(s, sizeof(s), "net_ring_%s_b", name);
	if (rte_eth_dev_get_port_by_name(s, &port) == 0)
		return false;
	snprintf(s, sizeof(s), "ebbw_%s_a0", name);
	if (rte_ring_lookup(s) != NULL)
		return false;
	snprintf(s, sizeof(s), "ebbw_%s_b0", name);
	if (rte_ring_lookup(s) != NULL)
		return false;
	snprintf(s, sizeof(s), "ebbw_%s", name);
	return rte_mempool_lookup(s) == NULL;
}

Test(wire, close_frees_everything_and_misuse_is_an_error, .timeout = 60)
{
	struct ebb_nic_config cfg = { 0 };
	struct ebb_nic *x = (struct ebb_nic *)&cfg, *y = x;

	ebbt_start("0-1");
	cr_assert_eq(ebb_nic_open_wire(NULL, &cfg, &x, &y), -EINVAL);
	cr_assert_null(x, "*a set to NULL on error");
	cr_assert_null(y);
	cr_assert_eq(ebb_nic_open_wire("w", NULL, &x, &y), -EINVAL);
	cr_assert_eq(ebb_nic_open_wire("w", &cfg, NULL, &y), -EINVAL);
	cr_assert_eq(ebb_nic_open_wire("w", &cfg, &x, NULL), -EINVAL);
	cr_assert_eq(ebb_nic_open_wire("", &cfg, &x, &y), -EINVAL);
	cr_assert_eq(ebb_nic_open_wire("a_name_too_long_x", &cfg, &x, &y),
		     -EINVAL);
	cr_assert_eq(ebb_nic_open_wire("a,b", &cfg, &x, &y), -EINVAL);
	cfg.nqueues = 17;
	cr_assert_eq(ebb_nic_open_wire("w", &cfg, &x, &y), -EINVAL);
	cfg.nqueues = 0;
	cr_assert(wire_gone("w"), "a failed open left something behind");

	open_wire(1, 64);
	cr_assert(!wire_gone("tw"));
	cr_assert_eq(ebb_nic_open_wire("tw", &cfg, &x, &y), -EEXIST);
	cr_assert_null(x);
	cr_assert_eq(ebb_nic_attach(wa, 0, on_drop, NULL), -EPERM,
		     "attach off a core");
	cr_assert_eq(ebb_nic_set_faults(NULL, NULL), -EINVAL);
	{
		uint8_t ma[6], mb[6], zero[6] = { 0 };

		cr_assert_eq(ebb_nic_mac(wa, ma), 0);
		cr_assert_eq(ebb_nic_mac(wb, mb), 0);
		cr_assert(memcmp(ma, zero, 6) != 0 && memcmp(mb, zero, 6) != 0,
			  "a wire end kept net_ring's all-zero MAC");
		cr_assert(memcmp(ma, mb, 6) != 0, "both ends have one MAC");
		cr_assert(ma[0] & 0x02, "not a locally administered MAC");
	}

	/* Frames left on the rings (nobody receives on b) are freed by
	 * the second close, whichever end goes first. */
	attach_on(0, wa, 0, on_drop, NULL);
	cr_assert_eq(ebbt_call(0, send_n, (void *)(intptr_t)20), 0);
	cr_assert_eq(atomic_load(&q_sent[0]), 20);
	detach_on(0, wa, 0);
	ebb_stop();
	cr_assert_eq(ebb_wait(), 0);
	ebb_nic_close(wb);
	cr_assert(!wire_gone("tw"), "rings freed while end a is open");
	ebb_nic_close(wa);
	ebb_nic_close(NULL);
	cr_assert(wire_gone("tw"), "ports, rings or pool left after close");
	/* The name is free again. */
	open_wire(2, 0);
	close_wire();
	cr_assert(wire_gone("tw"));
	ebb_fini();
}
