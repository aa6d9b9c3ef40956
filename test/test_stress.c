/* SPDX-License-Identifier: BSD-3-Clause */
/* 10 s stress: two cores spawn remote events at each other in random
 * bursts with random idle gaps, so that each often finds the other halted.
 * Every event must arrive exactly once, in order per sender, and no
 * wakeup may be lost. */
#include <stdatomic.h>
#include <stdlib.h>

#include <rte_cycles.h>

#include "harness.h"

#define MAX_EVENTS (1u << 22)
#define RUN_SECONDS 10

struct sender {
	struct ebb_timer timer;
	unsigned self, peer;
	uint64_t seed;
	uint32_t sent;			/* events sent, owner only */
	_Atomic uint32_t sent_pub;	/* published count */
	_Atomic bool stop;
	uint64_t *stamp;		/* send TSC per sequence number */
};

struct receiver {
	uint32_t next;			/* next sequence expected */
	_Atomic uint32_t got;
	_Atomic uint32_t out_of_order;
	_Atomic uint64_t max_lat;	/* TSC cycles */
};

static struct sender snd[2];
static struct receiver rcv[2];

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Runs on the receiving core; the event's arg is its sequence number and
 * the sender is the other core. */
static void deliver(void *arg)
{
	unsigned me = ebb_core_id();
	struct receiver *r = &rcv[me];
	struct sender *s = &snd[1 - me];
	uint32_t seq = (uint32_t)(uintptr_t)arg;
	uint64_t lat = rte_rdtsc() - s->stamp[seq];

	if (seq != r->next)
		atomic_fetch_add(&r->out_of_order, 1);
	r->next = seq + 1;
	if (lat > atomic_load_explicit(&r->max_lat, memory_order_relaxed))
		atomic_store_explicit(&r->max_lat, lat, memory_order_relaxed);
	atomic_store_explicit(&r->got, r->got + 1, memory_order_release);
}

static void burst(struct ebb_timer *t, void *arg)
{
	struct sender *s = arg;
	unsigned n = 1 + (unsigned)(xorshift(&s->seed) % 64);
	uint64_t gap_us, r;

	(void)t;
	if (atomic_load(&s->stop))
		return;
	for (unsigned i = 0; i < n && s->sent < MAX_EVENTS; i++) {
		s->stamp[s->sent] = rte_rdtsc();
		if (ebb_spawn_remote(s->peer, deliver,
				     (void *)(uintptr_t)s->sent) != 0)
			break;	/* inbox full: back off until next burst */
		s->sent++;
	}
	atomic_store_explicit(&s->sent_pub, s->sent, memory_order_release);
	/* Mostly short gaps (the peer is often still spinning), many long
	 * enough for it to halt, and a few so long that a lost wakeup could
	 * not be rescued by the peer's own timer within the latency bound
	 * checked at the end. */
	r = xorshift(&s->seed) % 100;
	if (r < 40)
		gap_us = 0;
	else if (r < 60)
		gap_us = xorshift(&s->seed) % 50;
	else if (r < 85)
		gap_us = 50 + xorshift(&s->seed) % 500;
	else if (r < 95)
		gap_us = 1000 + xorshift(&s->seed) % 4000;
	else
		gap_us = 100000 + xorshift(&s->seed) % 50000;
	ebb_timer_start(&s->timer, gap_us * 1000, 0);
}

static void start_sender(void *arg)
{
	struct sender *s = arg;

	ebb_timer_init(&s->timer, burst, s);
	cr_assert_eq(ebb_timer_start(&s->timer, 0, 0), 0);
}

Test(stress, random_remote_spawns_with_idle_gaps, .timeout = 120)
{
	uint64_t seed = (uint64_t)ebbt_now_ns() | 1;
	struct ebb_core_stats st[2];
	double hz;

	/* A short spin makes the cores halt in most gaps. */
	ebbt_start_spin("0-1", 32);
	hz = (double)ebb_tsc_hz();
	cr_log_info("seed %lu", (unsigned long)seed);
	for (unsigned i = 0; i < 2; i++) {
		snd[i].self = i;
		snd[i].peer = 1 - i;
		snd[i].seed = seed + i;
		snd[i].stamp = calloc(MAX_EVENTS, sizeof(uint64_t));
		cr_assert_not_null(snd[i].stamp);
	}
	for (unsigned i = 0; i < 2; i++)
		cr_assert_eq(ebbt_call(i, start_sender, &snd[i]), 0);
	sleep(RUN_SECONDS);
	for (unsigned i = 0; i < 2; i++)
		atomic_store(&snd[i].stop, true);
	/* Both senders go quiet; anything in flight must still arrive,
	 * woken only by its doorbell. */
	usleep(20000);
	for (unsigned i = 0; i < 2; i++) {
		uint32_t sent = atomic_load(&snd[i].sent_pub);
		struct receiver *r = &rcv[1 - i];

		cr_assert(ebbt_wait_until(atomic_load(&r->got) == sent, 5000),
			  "core %u sent %u, core %u got %u: lost wakeup or "
			  "event (seed %lu)",
			  i, sent, 1 - i, atomic_load(&r->got),
			  (unsigned long)seed);
		cr_assert_eq(atomic_load(&r->out_of_order), 0,
			     "out of order deliveries (seed %lu)",
			     (unsigned long)seed);
		cr_assert_gt(sent, 10000, "too few events to mean anything");
	}
	/* Nothing arrives twice: counts stay put. */
	usleep(50000);
	for (unsigned i = 0; i < 2; i++) {
		cr_assert_eq(atomic_load(&rcv[1 - i].got),
			     atomic_load(&snd[i].sent_pub));
		cr_assert_eq(ebb_core_stats(i, &st[i]), 0);
		cr_log_info("core %u: sent %u halts %lu wakes %lu doorbells %lu "
			    "max latency %.1f us",
			    i, atomic_load(&snd[i].sent_pub),
			    (unsigned long)st[i].halts,
			    (unsigned long)st[i].wakes,
			    (unsigned long)st[i].doorbells,
			    (double)atomic_load(&rcv[i].max_lat) / hz * 1e6);
		/* The point of the gaps: the cores really halted. */
		cr_assert_gt(st[i].halts, 100, "core %u halted only %lu times",
			     i, (unsigned long)st[i].halts);
		cr_assert_gt(st[i].doorbells, 100);
		/* A lost wakeup that the core's own timer rescued later
		 * shows up as a latency of up to 150 ms; a wake from halt
		 * takes microseconds (the bound leaves room for a busy VM). */
		cr_assert_lt((double)atomic_load(&rcv[i].max_lat) / hz, 0.06,
			     "an event waited %.3f s on core %u",
			     (double)atomic_load(&rcv[i].max_lat) / hz, i);
	}
	ebbt_stop();
	free(snd[0].stamp);
	free(snd[1].stamp);
}
