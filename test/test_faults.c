/* SPDX-License-Identifier: BSD-3-Clause */
/* Seeded fault injection on a port's tx path, seen from the other end of
 * a virtual wire: drops at the set rate and the same ones for the same
 * seed, duplicates and reorders in the receiver's sequence numbers, one
 * flipped bit past the Ethernet header, delays never early, held frames
 * freed on detach, and a clean link once faults are off. Needs hugepages
 * only. */
#include <arpa/inet.h>
#include <math.h>
#include <stdatomic.h>

#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <ebbrt/nic.h>

#include "harness.h"

#define ETH_TEST 0x88b5		/* IEEE local experimental ethertype */
#define PAYLOAD 46
#define ETH_HDR 14
#define MAX_LOG 40000

struct test_frame {
	uint8_t dst[6], src[6];
	uint16_t type;
	uint32_t seq;
	uint8_t pad[PAYLOAD];
} __attribute__((packed));

static struct ebb_nic *wa, *wb;

static void fill_frame(struct test_frame *f, uint32_t seq)
{
	memset(f->dst, 0xff, 6);
	memset(f->src, 0x02, 6);
	f->type = htons(ETH_TEST);
	f->seq = htonl(seq);
	for (unsigned j = 0; j < PAYLOAD; j++)
		f->pad[j] = (uint8_t)(seq * 7u + j * 13u + 1u);
}

/* --- the receiver (end b, core 1): a log of what arrived --- */

static uint32_t rx_seq[MAX_LOG];
static uint64_t rx_ns[MAX_LOG];
static int rx_badlen;
/* Bit-level damage, against the frame expected at that position. */
static int rx_flips[MAX_LOG];
static int rx_flip_off[MAX_LOG];
static atomic_int rx_n;

static void on_rx(void *arg, struct rte_mbuf **pkts, uint16_t n)
{
	uint64_t now = ebbt_now_ns();
	int i0 = atomic_load_explicit(&rx_n, memory_order_relaxed);

	(void)arg;
	for (uint16_t i = 0; i < n; i++) {
		int at = i0 + i;
		const uint8_t *got;
		struct test_frame want;

		if (at >= MAX_LOG)
			break;
		if (pkts[i]->pkt_len != sizeof(want) || pkts[i]->nb_segs != 1) {
			rx_badlen++;
			continue;
		}
		got = rte_pktmbuf_mtod(pkts[i], const uint8_t *);
		memcpy(&want, got, sizeof(want));
		rx_seq[at] = ntohl(want.seq);
		rx_ns[at] = now;
		/* Damage is counted against frame number @at: tests that
		 * corrupt neither drop nor reorder. */
		fill_frame(&want, (uint32_t)at);
		rx_flips[at] = 0;
		rx_flip_off[at] = -1;
		for (unsigned b = 0; b < sizeof(want); b++) {
			uint8_t d = got[b] ^ ((const uint8_t *)&want)[b];

			if (d) {
				rx_flips[at] += __builtin_popcount(d);
				rx_flip_off[at] = (int)b;
			}
		}
	}
	rte_pktmbuf_free_bulk(pkts, n);
	/* Publishes the log entries to the test thread. */
	atomic_store_explicit(&rx_n, i0 + n, memory_order_release);
}

static void on_drop(void *arg, struct rte_mbuf **pkts, uint16_t n)
{
	(void)arg;
	rte_pktmbuf_free_bulk(pkts, n);
}

/* --- the sender (end a, core 0) --- */

static uint32_t tx_next, tx_total;		/* core 0 only */
static uint64_t tx_ns[MAX_LOG];
static atomic_int tx_done, tx_alloc_fail;

/* One burst, then again as a new event so the loop turns in between. */
static void send_bursts(void *arg)
{
	struct rte_mbuf *m[32];
	uint16_t n = 0, sent;

	(void)arg;
	while (n < 32 && tx_next + n < tx_total) {
		struct test_frame *f;

		m[n] = rte_pktmbuf_alloc(ebb_nic_pool(wa));
		if (m[n] == NULL) {
			atomic_fetch_add(&tx_alloc_fail, 1);
			break;
		}
		f = (struct test_frame *)rte_pktmbuf_append(m[n], sizeof(*f));
		if (f == NULL) {	/* cannot happen: frames are small */
			rte_pktmbuf_free(m[n]);
			atomic_fetch_add(&tx_alloc_fail, 1);
			break;
		}
		fill_frame(f, tx_next + n);
		n++;
	}
	sent = ebb_nic_tx(wa, 0, m, n);
	rte_pktmbuf_free_bulk(m + sent, n - sent);	/* made again later */
	tx_next += sent;
	if (tx_next < tx_total)
		cr_assert_eq(ebb_spawn_local(send_bursts, NULL), 0);
	else
		atomic_store_explicit(&tx_done, 1, memory_order_release);
}

static void start_send(void *arg)
{
	tx_next = 0;
	tx_total = (uint32_t)(uintptr_t)arg;
	send_bursts(NULL);
}

/* Send frames 0..n-1 from a, wait until b got what the fault counters
 * say must arrive and nothing more comes. Returns the stats of a. */
static struct ebb_nic_stats run(int n)
{
	struct ebb_nic_stats st, st0;
	int want = -1;

	cr_assert_eq(ebb_nic_stats(wa, &st0), 0);
	atomic_store(&rx_n, 0);
	atomic_store(&tx_done, 0);
	cr_assert_eq(ebbt_call(0, start_send, (void *)(uintptr_t)n), 0);
	cr_assert(ebbt_wait_until(atomic_load(&tx_done), 20000),
		  "sender stuck");
	cr_assert_eq(atomic_load(&tx_alloc_fail), 0);
	cr_assert(ebbt_wait_until(
			  (ebb_nic_stats(wa, &st),
			   want = n - (int)(st.faults_dropped -
					    st0.faults_dropped) +
				  (int)(st.faults_duplicated -
					st0.faults_duplicated),
			   atomic_load_explicit(&rx_n, memory_order_acquire) >=
				   want),
			  5000),
		  "b got %d of %d expected; a sent %lu (%lu not taken), b "
		  "received %lu",
		  atomic_load(&rx_n), want,
		  (unsigned long)(st.tx_packets - st0.tx_packets),
		  (unsigned long)(st.tx_full - st0.tx_full),
		  (ebb_nic_stats(wb, &st), (unsigned long)st.rx_packets));
	usleep(20000);
	cr_assert_eq(atomic_load(&rx_n), want, "more frames than expected");
	cr_assert_eq(rx_badlen, 0);
	return st;
}

/* Counters of a since @before. */
static struct ebb_nic_stats delta(const struct ebb_nic_stats *before,
				  const struct ebb_nic_stats *after)
{
	struct ebb_nic_stats d;

	d.faults_dropped = after->faults_dropped - before->faults_dropped;
	d.faults_duplicated =
		after->faults_duplicated - before->faults_duplicated;
	d.faults_reordered = after->faults_reordered - before->faults_reordered;
	d.faults_corrupted = after->faults_corrupted - before->faults_corrupted;
	d.faults_delayed = after->faults_delayed - before->faults_delayed;
	return d;
}

struct attach_req {
	struct ebb_nic *nic;
	ebb_nic_rx_fn fn;
	int rc;
};

static void do_attach(void *p)
{
	struct attach_req *r = p;

	r->rc = ebb_nic_attach(r->nic, 0, r->fn, NULL);
}

static void do_detach(void *p)
{
	struct attach_req *r = p;

	r->rc = ebb_nic_detach(r->nic, 0);
}

static void setup(unsigned spin)
{
	struct ebb_nic_config cfg = { 0 };
	struct attach_req r;
	int rc;

	ebbt_start_spin("0-1", spin);
	rc = ebb_nic_open_wire("tf", &cfg, &wa, &wb);
	cr_assert_eq(rc, 0, "open_wire: %s", strerror(-rc));
	r = (struct attach_req){ wa, on_drop, 1 };
	cr_assert_eq(ebbt_call(0, do_attach, &r), 0);
	cr_assert_eq(r.rc, 0);
	r = (struct attach_req){ wb, on_rx, 1 };
	cr_assert_eq(ebbt_call(1, do_attach, &r), 0);
	cr_assert_eq(r.rc, 0);
}

static void teardown(void)
{
	ebb_stop();
	cr_assert_eq(ebb_wait(), 0);
	ebb_nic_close(wa);
	ebb_nic_close(wb);
	ebb_fini();
}

/* Which of 0..n-1 did not arrive, as a bitmap. */
static void missing_set(int n, uint8_t *bits)
{
	int got = atomic_load_explicit(&rx_n, memory_order_acquire);

	memset(bits, 0xff, (size_t)(n + 7) / 8);
	for (int i = 0; i < got; i++)
		if (rx_seq[i] < (uint32_t)n)
			bits[rx_seq[i] / 8] &= (uint8_t)~(1u << (rx_seq[i] % 8));
}

static void assert_in_order_once(int n_sent)
{
	int got = atomic_load_explicit(&rx_n, memory_order_acquire);

	for (int i = 1; i < got; i++)
		cr_assert_gt(rx_seq[i], rx_seq[i - 1],
			     "position %d: %u after %u", i, rx_seq[i],
			     rx_seq[i - 1]);
	cr_assert(got == 0 || rx_seq[got - 1] < (uint32_t)n_sent);
}

#define NDROP 10000

static uint8_t drop1[NDROP / 8 + 1], drop2[NDROP / 8 + 1],
	drop3[NDROP / 8 + 1];

Test(faults, drop_rate_and_same_seed_same_drops, .timeout = 120)
{
	struct ebb_nic_faults f = { .seed = 42, .drop = 0.05 };
	struct ebb_nic_stats s0 = { 0 }, s1, s2, s3, d;
	int got;

	setup(0);
	cr_assert_eq(ebb_nic_set_faults(wa, &f), 0);
	s1 = run(NDROP);
	got = atomic_load(&rx_n);
	d = delta(&s0, &s1);
	cr_assert_eq((int)d.faults_dropped, NDROP - got,
		     "counted %lu drops, %d frames missing",
		     (unsigned long)d.faults_dropped, NDROP - got);
	cr_assert(d.faults_dropped >= NDROP * 35 / 1000 &&
			  d.faults_dropped <= NDROP * 65 / 1000,
		  "dropped %lu of %d for p = 0.05",
		  (unsigned long)d.faults_dropped, NDROP);
	cr_assert_eq(d.faults_duplicated + d.faults_reordered +
			     d.faults_corrupted + d.faults_delayed,
		     0, "only drops were asked for");
	assert_in_order_once(NDROP);
	missing_set(NDROP, drop1);

	/* Off and on again with the same seed: the same frames go. */
	cr_assert_eq(ebb_nic_set_faults(wa, NULL), 0);
	cr_assert_eq(ebb_nic_set_faults(wa, &f), 0);
	s2 = run(NDROP);
	missing_set(NDROP, drop2);
	cr_assert_eq(memcmp(drop1, drop2, sizeof(drop1)), 0,
		     "seed 42 dropped %d frames, then %d, not the same ones",
		     NDROP - got, NDROP - atomic_load(&rx_n));
	cr_assert_eq(s2.faults_dropped - s1.faults_dropped, d.faults_dropped);

	/* Another seed, other frames. */
	f.seed = 43;
	cr_assert_eq(ebb_nic_set_faults(wa, &f), 0);
	s3 = run(NDROP);
	missing_set(NDROP, drop3);
	cr_assert_neq(memcmp(drop1, drop3, sizeof(drop1)), 0,
		      "seeds 42 and 43 dropped the same frames");
	(void)s3;
	teardown();
}

#define NDUP 4000

Test(faults, duplicates_and_reorders_show_in_the_sequence, .timeout = 120)
{
	struct ebb_nic_faults f = { .seed = 7, .duplicate = 0.1 };
	struct ebb_nic_stats s0, s1, s2, d;
	int got, repeats = 0, inversions = 0;
	static uint8_t seen[NDUP];

	setup(0);
	cr_assert_eq(ebb_nic_stats(wa, &s0), 0);
	cr_assert_eq(ebb_nic_set_faults(wa, &f), 0);
	s1 = run(NDUP);
	d = delta(&s0, &s1);
	got = atomic_load(&rx_n);
	memset(seen, 0, sizeof(seen));
	for (int i = 0; i < got; i++) {
		cr_assert_lt(rx_seq[i], NDUP);
		if (i > 0 && rx_seq[i] == rx_seq[i - 1])
			repeats++;	/* a copy right after its original */
		else if (i > 0)
			cr_assert_gt(rx_seq[i], rx_seq[i - 1],
				     "out of order at %d", i);
		seen[rx_seq[i]]++;
	}
	for (int s = 0; s < NDUP; s++)
		cr_assert(seen[s] == 1 || seen[s] == 2, "frame %d seen %d times",
			  s, seen[s]);
	cr_assert_eq(repeats, (int)d.faults_duplicated,
		     "%d repeats, %lu duplicates counted", repeats,
		     (unsigned long)d.faults_duplicated);
	cr_assert(repeats >= NDUP * 7 / 100 && repeats <= NDUP * 13 / 100,
		  "%d duplicates of %d for p = 0.1", repeats, NDUP);

	/* Reordering: every frame once, some one place late. */
	f = (struct ebb_nic_faults){ .seed = 7, .reorder = 0.1 };
	cr_assert_eq(ebb_nic_set_faults(wa, &f), 0);
	s2 = run(NDUP);
	d = delta(&s1, &s2);
	got = atomic_load(&rx_n);
	cr_assert_eq(got, NDUP, "reordering lost or added frames");
	memset(seen, 0, sizeof(seen));
	for (int i = 0; i < got; i++) {
		cr_assert_lt(rx_seq[i], NDUP);
		cr_assert_eq(seen[rx_seq[i]]++, 0, "frame %u twice",
			     rx_seq[i]);
		if (i > 0 && rx_seq[i] < rx_seq[i - 1]) {
			inversions++;
			cr_assert_eq(rx_seq[i] + 1, rx_seq[i - 1],
				     "frame %u came after %u: held for more "
				     "than one frame",
				     rx_seq[i], rx_seq[i - 1]);
		}
	}
	/* A frame held at the end of a burst whose next burst is late
	 * (a loaded machine) leaves on its own, in order. */
	cr_assert_leq(inversions, (int)d.faults_reordered);
	cr_assert_geq(inversions, (int)d.faults_reordered / 2,
		      "%d inversions for %lu frames held", inversions,
		      (unsigned long)d.faults_reordered);
	cr_assert(d.faults_reordered >= NDUP * 5 / 100 &&
			  d.faults_reordered <= NDUP * 12 / 100,
		  "%lu held of %d for p = 0.1 (one at a time)",
		  (unsigned long)d.faults_reordered, NDUP);
	cr_assert_eq(d.faults_dropped + d.faults_duplicated, 0);
	teardown();
}

#define NCORRUPT 2000

Test(faults, corrupt_flips_one_bit_past_the_ethernet_header, .timeout = 60)
{
	struct ebb_nic_faults f = { .seed = 99, .corrupt = 0.5 };
	struct ebb_nic_stats s0, s1, d;
	int damaged = 0;

	setup(0);
	cr_assert_eq(ebb_nic_stats(wa, &s0), 0);
	cr_assert_eq(ebb_nic_set_faults(wa, &f), 0);
	s1 = run(NCORRUPT);
	d = delta(&s0, &s1);
	cr_assert_eq(atomic_load(&rx_n), NCORRUPT);
	for (int i = 0; i < NCORRUPT; i++) {
		if (rx_flips[i] == 0)
			continue;
		damaged++;
		cr_assert_eq(rx_flips[i], 1, "frame %d: %d bits flipped", i,
			     rx_flips[i]);
		cr_assert_geq(rx_flip_off[i], ETH_HDR,
			      "frame %d: byte %d of the Ethernet header "
			      "changed", i, rx_flip_off[i]);
	}
	cr_assert_eq(damaged, (int)d.faults_corrupted,
		     "%d frames damaged, %lu corruptions counted", damaged,
		     (unsigned long)d.faults_corrupted);
	cr_assert(damaged >= NCORRUPT * 40 / 100 &&
			  damaged <= NCORRUPT * 60 / 100,
		  "%d of %d corrupted for p = 0.5", damaged, NCORRUPT);

	/* Off again: a clean link. */
	cr_assert_eq(ebb_nic_set_faults(wa, NULL), 0);
	s0 = s1;
	s1 = run(NCORRUPT);
	d = delta(&s0, &s1);
	cr_assert_eq(atomic_load(&rx_n), NCORRUPT);
	assert_in_order_once(NCORRUPT);
	for (int i = 0; i < NCORRUPT; i++)
		cr_assert_eq(rx_flips[i], 0, "frame %d damaged with faults off",
			     i);
	cr_assert_eq(d.faults_dropped + d.faults_duplicated +
			     d.faults_reordered + d.faults_corrupted +
			     d.faults_delayed,
		     0);
	teardown();
}

/* --- delay --- */

#define NDELAY 30
#define DELAY_US 2000u

static atomic_int one_rc;

static void send_one(void *arg)
{
	uint32_t seq = (uint32_t)(uintptr_t)arg;
	struct rte_mbuf *m = rte_pktmbuf_alloc(ebb_nic_pool(wa));
	struct test_frame *f;

	if (m == NULL) {
		atomic_store(&one_rc, -ENOMEM);
		return;
	}
	f = (struct test_frame *)rte_pktmbuf_append(m, sizeof(*f));
	if (f == NULL) {
		rte_pktmbuf_free(m);
		atomic_store(&one_rc, -ENOMEM);
		return;
	}
	fill_frame(f, seq);
	tx_ns[seq] = ebbt_now_ns();
	if (ebb_nic_tx(wa, 0, &m, 1) != 1) {
		rte_pktmbuf_free(m);
		atomic_store(&one_rc, -ENOBUFS);
		return;
	}
	atomic_store(&one_rc, 0);
}

Test(faults, delay_holds_frames_for_their_time, .timeout = 60)
{
	struct ebb_nic_faults f = { .seed = 1, .delay_us = DELAY_US };
	struct ebb_nic_stats s0, s1;
	uint64_t min = UINT64_MAX, max = 0;

	/* Cores halt quickly: the delayed frame must go out from the
	 * sender's timer, not because something else woke the core. */
	setup(16);
	cr_assert_eq(ebb_nic_stats(wa, &s0), 0);
	cr_assert_eq(ebb_nic_set_faults(wa, &f), 0);
	atomic_store(&rx_n, 0);
	for (int i = 0; i < NDELAY; i++) {
		cr_assert(ebbt_wait_until(ebb_core_halted(0), 5000));
		cr_assert_eq(ebbt_call(0, send_one, (void *)(uintptr_t)i), 0);
		cr_assert_eq(atomic_load(&one_rc), 0);
		cr_assert(ebbt_wait_until(atomic_load(&rx_n) == i + 1, 2000),
			  "delayed frame %d never arrived", i);
		cr_assert_eq(rx_seq[i], (uint32_t)i);
		min = RTE_MIN(min, rx_ns[i] - tx_ns[i]);
		max = RTE_MAX(max, rx_ns[i] - tx_ns[i]);
	}
	cr_assert_geq(min, DELAY_US * 1000ull, "a frame arrived after %lu us",
		      (unsigned long)(min / 1000));
	cr_assert_lt(max, 500ull * 1000 * 1000, "a frame took %lu us",
		     (unsigned long)(max / 1000));
	cr_assert_eq(ebb_nic_stats(wa, &s1), 0);
	cr_assert_eq(s1.faults_delayed - s0.faults_delayed, NDELAY);

	/* Off: no delay any more (well under the 2 ms). */
	cr_assert_eq(ebb_nic_set_faults(wa, NULL), 0);
	for (int i = 0; i < NDELAY; i++) {
		cr_assert_eq(ebbt_call(0, send_one,
				       (void *)(uintptr_t)(NDELAY + i)),
			     0);
		cr_assert(ebbt_wait_until(atomic_load(&rx_n) ==
						  NDELAY + i + 1,
					  2000));
		min = RTE_MIN(min, rx_ns[NDELAY + i] - tx_ns[NDELAY + i]);
	}
	cr_assert_lt(min, DELAY_US * 1000ull,
		     "no frame faster than the delay with faults off");
	cr_assert_eq(ebb_nic_stats(wa, &s0), 0);
	cr_assert_eq(s0.faults_delayed, s1.faults_delayed);
	teardown();
}

Test(faults, held_frames_are_freed_on_detach_and_bad_settings_fail,
     .timeout = 60)
{
	struct ebb_nic_faults f = { .seed = 5, .reorder = 1.0,
				    .delay_us = 5000000u };
	struct ebb_nic_stats st;
	struct attach_req r;
	unsigned avail0, avail1;

	setup(0);
	avail0 = rte_mempool_avail_count(ebb_nic_pool(wa));
	cr_assert_eq(ebb_nic_set_faults(wa, &f), 0);
	atomic_store(&rx_n, 0);
	atomic_store(&tx_done, 0);
	cr_assert_eq(ebbt_call(0, start_send, (void *)(uintptr_t)51), 0);
	cr_assert(ebbt_wait_until(atomic_load(&tx_done), 5000));
	cr_assert_eq(ebb_nic_stats(wa, &st), 0);
	cr_assert_eq(st.faults_reordered, 26, "every other frame held");
	usleep(20000);
	cr_assert_eq(atomic_load(&rx_n), 0, "a 5 s delay let frames through");
	cr_assert_lt(rte_mempool_avail_count(ebb_nic_pool(wa)), avail0);
	r = (struct attach_req){ wa, NULL, 1 };
	cr_assert_eq(ebbt_call(0, do_detach, &r), 0);
	cr_assert_eq(r.rc, 0);
	cr_assert(ebbt_wait_until(
		(avail1 = rte_mempool_avail_count(ebb_nic_pool(wa))) == avail0,
		2000),
		"pool: %u before, %u after detach", avail0, avail1);

	f = (struct ebb_nic_faults){ .drop = 1.5 };
	cr_assert_eq(ebb_nic_set_faults(wa, &f), -EINVAL);
	f = (struct ebb_nic_faults){ .duplicate = -0.1 };
	cr_assert_eq(ebb_nic_set_faults(wa, &f), -EINVAL);
	f = (struct ebb_nic_faults){ .corrupt = NAN };
	cr_assert_eq(ebb_nic_set_faults(wa, &f), -EINVAL);
	f = (struct ebb_nic_faults){ .reorder = 2 };
	cr_assert_eq(ebb_nic_set_faults(wa, &f), -EINVAL);
	cr_assert_eq(ebb_nic_set_faults(NULL, &f), -EINVAL);
	f = (struct ebb_nic_faults){ .drop = 1.0, .duplicate = 0.0 };
	cr_assert_eq(ebb_nic_set_faults(wa, &f), 0, "1 and 0 are valid");
	teardown();
}
