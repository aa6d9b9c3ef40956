/* SPDX-License-Identifier: BSD-3-Clause */
/* Per-core timers: the public ebb_timer API over each core's timing wheel,
 * fired by a timer vector of the core's event loop. */
#include <assert.h>
#include <errno.h>
#include <stdalign.h>
#include <stddef.h>
#include <string.h>
#include <time.h>

#include <rte_cycles.h>

#include "defs.h"

/*
 * ebb_wheel_next() of each core's wheel, kept exact: recomputed after
 * every change of the wheel (start, cancel, advance), all of which run on
 * the owning core. The timer vector's pending() runs every loop iteration
 * and then costs one load and, only while a timer is pending, one rdtsc.
 * Written by the owning core only; other threads may read it (relaxed).
 */
struct timer_cache {
	alignas(RTE_CACHE_LINE_SIZE) uint64_t next_tick;
};

static_assert(sizeof(struct timer_cache) == RTE_CACHE_LINE_SIZE,
	      "one cache line per core: no false sharing between cores");

static struct timer_cache timer_cache[EBB_MAX_CORES];

static inline uint64_t now_tick(void)
{
	return ebb_tick_of_tsc(rte_rdtsc());
}

static inline uint64_t cache_get(const struct ebb_core *c)
{
	return __atomic_load_n(&timer_cache[c->id].next_tick,
			       __ATOMIC_RELAXED);
}

static inline void cache_update(struct ebb_core *c)
{
	__atomic_store_n(&timer_cache[c->id].next_tick,
			 ebb_wheel_next(&c->wheel), __ATOMIC_RELAXED);
}

/* TSC cycles in @ns, rounded up so that a timer never fires early. */
static inline uint64_t cycles_of_ns(uint64_t ns)
{
	unsigned __int128 x = (unsigned __int128)ns * ebb_node.tsc_hz;
	unsigned __int128 c = (x + 999999999u) / 1000000000u;

	return c > UINT64_MAX ? UINT64_MAX : (uint64_t)c;
}

/* The first tick that starts at or after TSC @tsc. */
static inline uint64_t tick_ceil(uint64_t tsc)
{
	uint64_t mask = (1ull << ebb_node.tick_shift) - 1;

	return ebb_tick_of_tsc(tsc) + ((tsc & mask) != 0);
}

/* Timer handlers run per vector dispatch, at most (whole ticks). */
#define EBB_TIMER_BURST 64u

static bool timer_vec_pending(void *arg)
{
	uint64_t next = cache_get(arg);

	return next != EBB_WHEEL_NEVER && next <= now_tick();
}

static void timer_vec_handle(void *arg)
{
	struct ebb_core *c = arg;

	/* A bounded burst: after a stall a periodic timer catches up its
	 * missed periods a few at a time, between other events. */
	ebb_wheel_advance_bounded(&c->wheel, now_tick(), EBB_TIMER_BURST);
	cache_update(c);
}

__ebb_cold int ebb_timer_core_init(struct ebb_core *c)
{
	struct ebb_vector_ops ops = {
		.pending = timer_vec_pending,
		.handle = timer_vec_handle,
		.fd = -1,	/* event.c arms c->timerfd from next_tick */
	};
	int vec;

	if (c->id >= EBB_MAX_CORES)
		return -EINVAL;
	c->tick_shift = ebb_node.tick_shift;
	ebb_wheel_init(&c->wheel, now_tick());
	c->wheel.shift = ebb_node.tick_shift;	/* deadlines are TSC cycles */
	cache_update(c);
	vec = ebb_vector_add(&ops, c);
	if (vec < 0) {
		c->timer_vec = -1;
		return vec;
	}
	c->timer_vec = vec;
	return 0;
}

__ebb_cold void ebb_timer_core_fini(struct ebb_core *c)
{
	unsigned lvl, idx;

	if (c->timer_vec >= 0) {
		ebb_vector_remove(c->timer_vec);
		c->timer_vec = -1;
	}
	/* Timers still pending never fire. Mark them idle, so that a
	 * later start of one on a new node does not unlink it from this
	 * dead wheel. */
	for (lvl = 0; lvl < EBB_WHEEL_LEVELS; lvl++) {
		for (idx = 0; idx < EBB_WHEEL_SLOTS; idx++) {
			struct ebb_timer *t;

			while ((t = c->wheel.slot[lvl][idx]) != NULL)
				ebb_wheel_del(&c->wheel, t);
		}
	}
	cache_update(c);
}

uint64_t ebb_timer_next_tick(struct ebb_core *c)
{
	return c ? cache_get(c) : EBB_WHEEL_NEVER;
}

void ebb_timer_init(struct ebb_timer *t, ebb_timer_fn fn, void *arg)
{
	memset(t, 0, sizeof(*t));
	t->fn = fn;
	t->arg = arg;
	t->core = EBB_CORE_NONE;
	t->state = EBB_TIMER_IDLE;
}

static inline bool timer_valid(const struct ebb_timer *t)
{
	return t && (t->state == EBB_TIMER_IDLE ||
		     t->state == EBB_TIMER_PENDING);
}

int ebb_timer_start(struct ebb_timer *t, uint64_t delay_ns,
		    uint64_t period_ns)
{
	struct ebb_core *c = ebb_self;
	uint64_t tsc, due;

	if (!timer_valid(t) || !t->fn)
		return -EINVAL;
	if (!c)
		return -EPERM;
	if (t->state == EBB_TIMER_PENDING && t->core != c->id)
		return -EBUSY;

	tsc = rte_rdtsc();
	if (__builtin_add_overflow(tsc, cycles_of_ns(delay_ns), &due))
		due = UINT64_MAX;
	/* Rounded up: the tick containing the deadline starts before it,
	 * and firing there would be up to one tick early. */
	t->expiry = tick_ceil(due);
	/* Periods run on exact TSC deadlines (the wheel rounds each one up
	 * to its tick), so the rounding never adds up to drift. */
	t->deadline = due;
	t->period = period_ns ? cycles_of_ns(period_ns) : 0;
	if (t->period == 0 && period_ns)
		t->period = 1;
	t->core = c->id;
	/* A pending timer is moved, not added twice. */
	ebb_wheel_add(&c->wheel, t);
	cache_update(c);
	return 0;
}

int ebb_timer_cancel(struct ebb_timer *t)
{
	struct ebb_core *c = ebb_self;

	if (!timer_valid(t))
		return -EINVAL;
	if (t->state != EBB_TIMER_PENDING)
		return -ENOENT;
	if (!c || t->core != c->id)
		return -EPERM;
	ebb_wheel_del(&c->wheel, t);
	cache_update(c);
	return 0;
}

bool ebb_timer_pending(const struct ebb_timer *t)
{
	return __atomic_load_n(&t->state, __ATOMIC_RELAXED) ==
	       EBB_TIMER_PENDING;
}

uint64_t ebb_time_ns(void)
{
	uint64_t hz = ebb_node.tsc_hz;
	struct timespec ts;

	if (likely(hz))
		return (uint64_t)((unsigned __int128)rte_rdtsc() *
				  1000000000u / hz);
	/* Before ebb_init() there is no TSC rate yet: fall back to the
	 * kernel's monotonic clock (another origin; do not mix the two). */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
