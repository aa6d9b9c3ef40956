/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of the timing wheel alone (no DPDK): firing order, big gaps,
 * cancel, re-adds from handlers, periodic timers, next() vs brute force. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>

#include "timer_wheel.h"

/* Assert without Criterion's per-assertion cost in the big loops. */
#define CHECK(cond, ...)                                                   \
	do {                                                               \
		if (!(cond))                                               \
			cr_assert_fail(__VA_ARGS__);                       \
	} while (0)

#define LVL_SHIFT(l) (EBB_WHEEL_BITS * (l))
#define SPAN (1ull << (EBB_WHEEL_BITS * EBB_WHEEL_LEVELS))

static uint64_t rng_state;

static void rng_seed(uint64_t s)
{
	rng_state = s ? s : 1;
}

static uint64_t rng(void)
{
	/* xorshift64* */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1Dull;
}

/* A random delta, log-uniform over [0, 2^maxbits). */
static uint64_t rng_delta(unsigned maxbits)
{
	unsigned bits = (unsigned)(rng() % (maxbits + 1));

	return bits ? rng() & ((1ull << bits) - 1) : 0;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A timer of the tests, with what the checks need to know about it. */
struct tt {
	struct ebb_timer t;
	unsigned id;
	uint64_t due;		/* tick it must fire at: max(expiry, base) */
	unsigned fired;
	int64_t fired_at;	/* the advance() now it fired in */
};

static struct ebb_timer_wheel wheel;
static uint64_t cur_now;	/* now of the advance() running */
static uint64_t prev_now;	/* now of the previous advance() */
static uint64_t last_due;	/* due of the last firing, this advance */

/* Fired expiries, in firing order. */
static uint64_t *fire_log;
static size_t nfire;

static void tt_init(struct tt *x, unsigned id, ebb_timer_fn fn)
{
	memset(x, 0, sizeof(*x));
	x->id = id;
	x->t.fn = fn;
	x->t.arg = x;
	x->t.state = EBB_TIMER_IDLE;
	x->fired_at = -1;
}

static void tt_add(struct tt *x, uint64_t expiry)
{
	x->t.expiry = expiry;
	x->t.deadline = expiry;	/* shift 0: deadlines are ticks */
	x->due = expiry < wheel.base ? wheel.base : expiry;
	ebb_wheel_add(&wheel, &x->t);
	CHECK(x->t.state == EBB_TIMER_PENDING, "timer %u: state %#x after add",
	      x->id, x->t.state);
}

/* The checks every firing passes: due in this advance and not in the one
 * before, and in due order. */
static void on_fire_common(struct tt *x)
{
	CHECK(x->due <= cur_now,
	      "timer %u (expiry %" PRIu64 ", due %" PRIu64
	      ") fired early: advance now %" PRIu64 ", base %" PRIu64,
	      x->id, x->t.expiry, x->due, cur_now, wheel.base);
	CHECK(x->due > prev_now,
	      "timer %u (due %" PRIu64 ") fired late: it was due in the "
	      "previous advance to %" PRIu64 " (now %" PRIu64 ")",
	      x->id, x->due, prev_now, cur_now);
	CHECK(x->due >= last_due,
	      "timer %u due %" PRIu64 " fired after one due %" PRIu64, x->id,
	      x->due, last_due);
	CHECK(wheel.base == x->due + 1 || x->t.period,
	      "timer %u due %" PRIu64 " fired with base %" PRIu64, x->id,
	      x->due, wheel.base);
	last_due = x->due;
	x->fired++;
	x->fired_at = (int64_t)cur_now;
}

static void on_fire_log(struct ebb_timer *t, void *arg)
{
	struct tt *x = arg;

	CHECK(&x->t == t, "handler got timer %p, arg of %p", (void *)t,
	      (void *)&x->t);
	CHECK(t->state == EBB_TIMER_IDLE, "one-shot %u: state %#x in handler",
	      x->id, t->state);
	on_fire_common(x);
	fire_log[nfire++] = t->expiry;
}

static unsigned advance(uint64_t now)
{
	unsigned n;

	cur_now = now;
	last_due = 0;
	n = ebb_wheel_advance(&wheel, now);
	CHECK(wheel.base == now + 1 || (now < prev_now),
	      "after advance(%" PRIu64 "): base %" PRIu64, now, wheel.base);
	if (now > prev_now)
		prev_now = now;
	return n;
}

static void reset(uint64_t base, size_t log_cap)
{
	ebb_wheel_init(&wheel, base);
	prev_now = base ? base - 1 : 0;
	cur_now = base;
	free(fire_log);
	fire_log = calloc(log_cap ? log_cap : 1, sizeof(*fire_log));
	cr_assert_not_null(fire_log);
	nfire = 0;
}

/* The tick the timer in @lvl/@slot is next processed at (fired at level
 * 0, cascaded above), found by walking ticks or blocks one by one. */
static uint64_t slot_tick_brute(uint64_t base, unsigned lvl, unsigned slot)
{
	uint64_t b, first;

	if (lvl == 0) {
		for (b = base; b < base + EBB_WHEEL_SLOTS; b++)
			if ((b & (EBB_WHEEL_SLOTS - 1)) == slot)
				return b;
		return EBB_WHEEL_NEVER;
	}
	first = base >> LVL_SHIFT(lvl);
	if (base & ((1ull << LVL_SHIFT(lvl)) - 1))
		first++;	/* base is past this block's first tick */
	for (b = first; b < first + EBB_WHEEL_SLOTS; b++)
		if ((b & (EBB_WHEEL_SLOTS - 1)) == slot)
			return b << LVL_SHIFT(lvl);
	return EBB_WHEEL_NEVER;
}

/*
 * Check the whole wheel against its definition: bitmaps match the lists,
 * lists are well linked, count is right, every timer sits where it will
 * be processed in time (fired exactly at its due tick, or cascaded within
 * the level span before its expiry), and next() equals the brute-force
 * earliest tick with work. Returns the number of timers linked.
 */
static unsigned wheel_check(const char *where)
{
	uint64_t want_next = EBB_WHEEL_NEVER, min_due = EBB_WHEEL_NEVER;
	uint64_t base = wheel.base, got;
	unsigned lvl, slot, n = 0;

	for (lvl = 0; lvl < EBB_WHEEL_LEVELS; lvl++) {
		for (slot = 0; slot < EBB_WHEEL_SLOTS; slot++) {
			struct ebb_timer *t = wheel.slot[lvl][slot];
			bool bit = (wheel.bitmap[lvl] >> slot) & 1;
			uint64_t tick;

			CHECK(bit == (t != NULL),
			      "%s: level %u slot %u: bitmap bit %d, list %p", where,
			      lvl, slot, bit, (void *)t);
			if (!t)
				continue;
			tick = slot_tick_brute(base, lvl, slot);
			if (tick < want_next)
				want_next = tick;
			for (; t; t = t->next) {
				uint64_t due = t->expiry < base ? base : t->expiry;
				struct tt *x = t->arg;

				n++;
				CHECK(n <= wheel.count + 1,
				      "%s: more timers linked than count %u (loop?)",
				      where, wheel.count);
				CHECK(t->state == EBB_TIMER_PENDING,
				      "%s: timer %u linked with state %#x", where,
				      x->id, t->state);
				CHECK(!t->next || t->next->prev == t,
				      "%s: level %u slot %u: next->prev broken", where,
				      lvl, slot);
				if (due < min_due)
					min_due = due;
				if (lvl == 0) {
					CHECK(t->expiry == tick ||
					      (t->expiry < tick && tick == base),
					      "%s: timer %u expiry %" PRIu64
					      " in level 0 slot %u fires at %" PRIu64
					      " (base %" PRIu64 ")",
					      where, x->id, t->expiry, slot, tick, base);
				} else {
					uint64_t span = 1ull << LVL_SHIFT(lvl);

					CHECK(tick <= t->expiry &&
					      (t->expiry - tick < span ||
					       lvl == EBB_WHEEL_LEVELS - 1),
					      "%s: timer %u expiry %" PRIu64
					      " in level %u slot %u cascades at %" PRIu64
					      " (base %" PRIu64 ")",
					      where, x->id, t->expiry, lvl, slot, tick,
					      base);
				}
			}
		}
	}
	CHECK(n == wheel.count, "%s: %u timers linked, count %u", where, n,
	      wheel.count);
	got = ebb_wheel_next(&wheel);
	CHECK(got == want_next,
	      "%s: next() %" PRIu64 ", brute force %" PRIu64 " (base %" PRIu64
	      ", count %u)",
	      where, got, want_next, base, n);
	CHECK(got <= min_due,
	      "%s: next() %" PRIu64 " after the earliest due %" PRIu64, where,
	      got, min_due);
	CHECK(n || got == EBB_WHEEL_NEVER, "%s: empty wheel, next() %" PRIu64,
	      where, got);
	return n;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Many random expiries fire in sorted order, each in the right advance. */
static void ordering_run(uint64_t base, uint64_t seed)
{
	const unsigned n = 100000;
	const uint64_t end = base + (1ull << 30);
	struct tt *tt = calloc(n, sizeof(*tt));
	uint64_t *ref = calloc(n, sizeof(*ref));
	uint64_t now = base;
	unsigned i, ran = 0, steps = 0;
	double t0;

	cr_assert(tt && ref);
	rng_seed(seed);
	reset(base, n);
	for (i = 0; i < n; i++) {
		/* Half log-uniform (every level), half uniform. */
		uint64_t d = (i & 1) ? rng_delta(30) : rng() % (1ull << 30);

		if (d == 0)
			d = 1;
		tt_init(&tt[i], i, on_fire_log);
		tt_add(&tt[i], base + d);
		ref[i] = base + d;
	}
	cr_assert_eq(wheel.count, n);
	wheel_check("after adds");
	qsort(ref, n, sizeof(*ref), cmp_u64);

	t0 = now_s();
	while (now < end) {
		uint64_t step = rng_delta(26) + 1;

		now = now + step > end ? end : now + step;
		ran += advance(now);
		if ((++steps & 255) == 0)
			wheel_check("during ordering");
	}
	cr_log_info("ordering (base %#" PRIx64 "): %u timers, %u advances, "
		    "%.3f s",
		    base, n, steps, now_s() - t0);
	cr_assert_eq(ran, n, "ran %u of %u handlers", ran, n);
	cr_assert_eq(nfire, n);
	cr_assert_eq(wheel.count, 0, "count %u after all fired", wheel.count);
	for (i = 0; i < n; i++)
		CHECK(fire_log[i] == ref[i],
		      "firing %u: expiry %" PRIu64 ", sorted reference %" PRIu64
		      " (seed %#" PRIx64 ")",
		      i, fire_log[i], ref[i], seed);
	for (i = 0; i < n; i++)
		CHECK(tt[i].fired == 1 && tt[i].t.state == EBB_TIMER_IDLE,
		      "timer %u fired %u times, state %#x", i, tt[i].fired,
		      tt[i].t.state);
	cr_assert_eq(ebb_wheel_next(&wheel), EBB_WHEEL_NEVER);
	free(tt);
	free(ref);
}

Test(timer_wheel, ordering_random, .timeout = 60)
{
	ordering_run(0, 0x5eed1234);
}

Test(timer_wheel, ordering_random_unaligned_base, .timeout = 60)
{
	/* A base with every level mid-rotation. */
	ordering_run(0x123456789abull, 0xfeedf00d);
}

/* Far timers fire exactly on time and long gaps cost next to nothing. */
Test(timer_wheel, huge_gaps, .timeout = 60)
{
	static const uint64_t far[] = {
		1000000ull,			/* level 3 */
		3000000000ull,			/* level 5 */
		(1ull << 36) + 5,		/* parked beyond the top */
		(1ull << 45) + 7,		/* parked, re-cascaded many times */
		(1ull << 52) + 63,
	};
	const unsigned n = sizeof(far) / sizeof(far[0]);
	const uint64_t base = 12345;
	struct tt tt[5];
	unsigned i;
	double t0, dt;

	reset(base, n);
	for (i = 0; i < n; i++) {
		tt_init(&tt[i], i, on_fire_log);
		tt_add(&tt[i], base + far[i]);
	}
	wheel_check("far adds");
	t0 = now_s();
	for (i = 0; i < n; i++) {
		uint64_t e = base + far[i];
		unsigned r;

		r = advance(e - 1);
		cr_assert_eq(r, 0, "advance(%" PRIu64 ") ran %u, timer %u due %" PRIu64,
			     e - 1, r, i, e);
		cr_assert_eq(tt[i].t.state, EBB_TIMER_PENDING);
		cr_assert_eq(ebb_wheel_next(&wheel), e,
			     "timer %u: next %" PRIu64 " at base %" PRIu64
			     ", want %" PRIu64,
			     i, ebb_wheel_next(&wheel), wheel.base, e);
		wheel_check("before far expiry");
		r = advance(e);
		cr_assert_eq(r, 1, "advance(%" PRIu64 ") ran %u", e, r);
		cr_assert_eq(tt[i].fired, 1);
		cr_assert_eq(fire_log[i], e);
		wheel_check("after far expiry");
	}
	/* An empty wheel jumps any distance at once. */
	cr_assert_eq(advance(1ull << 62), 0);
	cr_assert_eq(wheel.base, (1ull << 62) + 1);
	dt = now_s() - t0;
	cr_assert_lt(dt, 1.0, "far advances took %.3f s", dt);

	/* Many timers beyond the top level, one advance over all of them. */
	{
		const unsigned m = 2000;
		struct tt *v = calloc(m, sizeof(*v));
		uint64_t b = wheel.base;

		cr_assert_not_null(v);
		nfire = 0;
		free(fire_log);
		fire_log = calloc(m, sizeof(*fire_log));
		rng_seed(42);
		for (i = 0; i < m; i++) {
			tt_init(&v[i], i, on_fire_log);
			tt_add(&v[i], b + (1ull << 38) + rng() % (1ull << 38));
		}
		wheel_check("parked adds");
		t0 = now_s();
		cr_assert_eq(advance(b + (1ull << 39)), m);
		dt = now_s() - t0;
		for (i = 1; i < m; i++)
			cr_assert_leq(fire_log[i - 1], fire_log[i]);
		cr_assert_lt(dt, 1.0, "advance over parked timers took %.3f s",
			     dt);
		free(v);
	}
}

/* advance() to a time before base does nothing and keeps base. */
Test(timer_wheel, advance_backwards, .timeout = 60)
{
	struct tt a;

	reset(1000, 4);
	tt_init(&a, 0, on_fire_log);
	tt_add(&a, 1005);
	cr_assert_eq(ebb_wheel_advance(&wheel, 500), 0);
	cr_assert_eq(wheel.base, 1000);
	cr_assert_eq(a.fired, 0);
	wheel_check("backwards");
}

Test(timer_wheel, cancel, .timeout = 60)
{
	const unsigned n = 10000;
	struct tt *tt = calloc(n, sizeof(*tt));
	uint64_t *ref = calloc(n, sizeof(*ref));
	unsigned i, nref = 0, c;

	cr_assert(tt && ref);
	rng_seed(7);
	reset(0, n);
	for (i = 0; i < n; i++) {
		tt_init(&tt[i], i, on_fire_log);
		/* Collisions on purpose: many timers per slot. */
		tt_add(&tt[i], 1 + rng() % 5000 * 17);
	}
	/* Delete a random half, in random order, heads of lists included. */
	for (i = 0; i < n; i++) {
		unsigned j = (unsigned)(rng() % n);

		if (tt[j].t.state != EBB_TIMER_PENDING)
			continue;
		c = wheel.count;
		ebb_wheel_del(&wheel, &tt[j].t);
		CHECK(wheel.count == c - 1, "del %u: count %u -> %u", j, c,
		      wheel.count);
		CHECK(tt[j].t.state == EBB_TIMER_IDLE, "del %u: state %#x", j,
		      tt[j].t.state);
		/* Deleting again is a no-op. */
		ebb_wheel_del(&wheel, &tt[j].t);
		CHECK(wheel.count == c - 1, "double del %u: count %u", j,
		      wheel.count);
		if ((i & 511) == 0)
			wheel_check("cancel");
	}
	wheel_check("after cancels");
	for (i = 0; i < n; i++)
		if (tt[i].t.state == EBB_TIMER_PENDING)
			ref[nref++] = tt[i].t.expiry;
	cr_assert_gt(nref, n / 4);
	cr_assert_lt(nref, n);
	cr_assert_eq(wheel.count, nref);
	qsort(ref, nref, sizeof(*ref), cmp_u64);
	cr_assert_eq(advance(5000 * 17 + 1), nref);
	cr_assert_eq(nfire, nref);
	for (i = 0; i < nref; i++)
		CHECK(fire_log[i] == ref[i],
		      "firing %u: expiry %" PRIu64 ", want %" PRIu64, i,
		      fire_log[i], ref[i]);
	for (i = 0; i < n; i++)
		CHECK(tt[i].fired <= 1, "timer %u fired %u times", i,
		      tt[i].fired);
	cr_assert_eq(wheel.count, 0);
	cr_assert_eq(ebb_wheel_next(&wheel), EBB_WHEEL_NEVER);
	free(tt);
	free(ref);
}

/* Re-adds and deletes from inside a handler, in the slot being fired. */
static struct tt k, v, m, w2, nn;
static unsigned k_runs;

static void on_k(struct ebb_timer *t, void *arg)
{
	struct tt *x = arg;

	on_fire_common(x);
	fire_log[nfire++] = x->id;
	if (k_runs++)
		return;
	/* All of these sit in the slot being fired. */
	cr_assert_eq(v.t.state, EBB_TIMER_PENDING);
	cr_assert_eq(m.t.state, EBB_TIMER_PENDING);
	ebb_wheel_del(&wheel, &v.t);
	cr_assert_eq(v.t.state, EBB_TIMER_IDLE);
	tt_add(&m, 1100);		/* re-add a pending timer: moved */
	tt_add(x, 1000);		/* itself, at the tick being run */
	cr_assert_eq(x->due, 1001, "re-add at tick being run: due %" PRIu64,
		     x->due);
	tt_init(&nn, 9, on_fire_log);
	tt_add(&nn, 1000);
	cr_assert_eq(t->state, EBB_TIMER_PENDING);
	/* w2 is still in the list being fired, out of the slots: only
	 * next() can be checked here. */
	cr_assert_eq(ebb_wheel_next(&wheel), 1001, "next %" PRIu64 " in handler",
		     ebb_wheel_next(&wheel));
}

static void on_id(struct ebb_timer *t, void *arg)
{
	struct tt *x = arg;

	(void)t;
	on_fire_common(x);
	fire_log[nfire++] = x->id;
}

Test(timer_wheel, readd_from_handler, .timeout = 60)
{
	unsigned r;

	reset(1000, 16);
	k_runs = 0;
	tt_init(&k, 1, on_k);
	tt_init(&v, 2, on_id);
	tt_init(&m, 3, on_id);
	tt_init(&w2, 4, on_id);
	/* k is late (expiry before base): same slot as the on-time ones, and
	 * first by expiry order. Added last so start order does not help. */
	tt_add(&v, 1000);
	tt_add(&m, 1000);
	tt_add(&w2, 1000);
	tt_add(&k, 500);
	wheel_check("setup");
	cr_assert_eq(ebb_wheel_next(&wheel), 1000);

	r = advance(1000);
	cr_assert_eq(r, 2, "ran %u (want k and w2)", r);
	cr_assert_eq(fire_log[0], 1, "first fired: %" PRIu64, fire_log[0]);
	cr_assert_eq(fire_log[1], 4, "second fired: %" PRIu64, fire_log[1]);
	cr_assert_eq(v.fired, 0);
	cr_assert_eq(m.fired, 0);
	cr_assert_eq(ebb_wheel_next(&wheel), 1001);
	wheel_check("after 1000");

	r = advance(1001);
	cr_assert_eq(r, 2, "ran %u at 1001 (want k again and nn)", r);
	cr_assert_eq(k.fired, 2);
	cr_assert_eq(nn.fired, 1);
	r = advance(1099);
	cr_assert_eq(r, 0);
	r = advance(1100);
	cr_assert_eq(r, 1);
	cr_assert_eq(m.fired, 1);
	cr_assert_eq(v.fired, 0);
	cr_assert_eq(v.t.state, EBB_TIMER_IDLE);
	cr_assert_eq(wheel.count, 0);
	wheel_check("end");
}

/* A handler that re-adds itself a few ticks on, many times in one advance:
 * the re-added timer fires in the same advance, at the right ticks. */
static void on_chain(struct ebb_timer *t, void *arg)
{
	struct tt *x = arg;

	on_fire_common(x);
	fire_log[nfire++] = t->expiry;
	if (x->fired < 50)
		tt_add(x, t->expiry + 3 + x->fired * 61);
}

Test(timer_wheel, rearm_chain, .timeout = 60)
{
	struct tt c;
	uint64_t e = 77;
	unsigned i;

	reset(0, 64);
	tt_init(&c, 0, on_chain);
	tt_add(&c, e);
	cr_assert_eq(advance(1u << 20), 50);
	for (i = 0; i < 50; i++) {
		cr_assert_eq(fire_log[i], e, "firing %u at %" PRIu64 ", want %" PRIu64,
			     i, fire_log[i], e);
		e += 3 + (i + 1) * 61;
	}
	cr_assert_eq(wheel.count, 0);
}

/* Periodic: each expiry is the previous plus the period, exactly. */
static uint64_t per_first, per_period;
static unsigned per_stop;

static void on_periodic(struct ebb_timer *t, void *arg)
{
	struct tt *x = arg;
	uint64_t want = per_first + (uint64_t)x->fired * per_period;

	/* Re-added before the handler runs. */
	CHECK(t->state == EBB_TIMER_PENDING, "periodic: state %#x in handler",
	      t->state);
	CHECK(t->expiry == want + per_period,
	      "periodic firing %u: re-added at %" PRIu64 ", want %" PRIu64,
	      x->fired, t->expiry, want + per_period);
	x->due = want;
	on_fire_common(x);
	fire_log[nfire++] = want;
	if (per_stop && x->fired == per_stop)
		ebb_wheel_del(&wheel, t);
}

static void periodic_run(uint64_t first, uint64_t period, uint64_t end,
			 unsigned maxstep_bits, unsigned stop)
{
	struct tt p;
	uint64_t now = 0;
	unsigned want;

	reset(0, 1);
	per_first = first;
	per_period = period;
	per_stop = stop;
	tt_init(&p, 0, on_periodic);
	p.t.period = period;
	tt_add(&p, first);
	free(fire_log);
	want = (unsigned)((end - first) / period + 1);
	if (stop && stop < want)
		want = stop;
	fire_log = calloc(want + 1, sizeof(*fire_log));
	cr_assert_not_null(fire_log);
	rng_seed(first ^ period);
	while (now < end) {
		now += rng_delta(maxstep_bits) + 1;
		if (now > end)
			now = end;
		advance(now);
		if (!stop)
			CHECK(p.t.expiry > now &&
			      (!p.fired || p.t.expiry - period <= now),
			      "periodic at now %" PRIu64 ": next expiry %" PRIu64,
			      now, p.t.expiry);
	}
	cr_assert_eq(p.fired, want, "period %" PRIu64 ": fired %u, want %u",
		     period, p.fired, want);
	if (stop) {
		cr_assert_eq(p.t.state, EBB_TIMER_IDLE);
		cr_assert_eq(wheel.count, 0);
	} else {
		cr_assert_eq(p.t.state, EBB_TIMER_PENDING);
		cr_assert_eq(wheel.count, 1);
		wheel_check("periodic");
	}
}

Test(timer_wheel, periodic_no_drift, .timeout = 60)
{
	periodic_run(5, 7, 100000, 8, 0);
	periodic_run(3, 100003, 1000000000ull, 24, 0);
	/* One long jump: every missed period is caught up, none skipped. */
	periodic_run(10, 1000, 1000000, 40, 0);
	periodic_run(10, 3, 1000000, 12, 500);
}

/* A stall caught up in bounded bursts: every missed period still fires,
 * at most a budget's worth (plus one tick's slot) per call, and next()
 * keeps reporting work due until it is done. */
Test(timer_wheel, bounded_catch_up, .timeout = 60)
{
	struct tt p;
	unsigned calls = 0, n, total = 0;

	reset(0, 1);
	per_first = 100;
	per_period = 1;
	per_stop = 0;
	tt_init(&p, 0, on_periodic);
	p.t.period = 1;
	tt_add(&p, 100);
	free(fire_log);
	fire_log = calloc(100001, sizeof(*fire_log));
	cr_assert_not_null(fire_log);
	cur_now = 100000;
	last_due = 0;
	do {
		n = ebb_wheel_advance_bounded(&wheel, 100000, 10);
		cr_assert_leq(n, 11, "call %u ran %u handlers", calls, n);
		total += n;
		calls++;
		if (total < 100000 - 100 + 1)
			cr_assert_leq(ebb_wheel_next(&wheel), 100000,
				      "work left but next() %" PRIu64,
				      ebb_wheel_next(&wheel));
	} while (n > 0 && calls < 1000000);
	cr_assert_eq(total, 100000 - 100 + 1, "fired %u", total);
	cr_assert_eq(p.fired, total);
	cr_assert_geq(calls, total / 11, "only %u calls", calls);
	cr_assert_eq(wheel.base, 100001);
	cr_assert_eq(p.t.expiry, 100001);
}

static void on_nothing(struct ebb_timer *t, void *arg)
{
	(void)t;
	on_fire_common(arg);
}

Test(timer_wheel, add_in_past, .timeout = 60)
{
	struct tt a, b, c;

	reset(1000, 4);
	tt_init(&a, 0, on_fire_log);
	tt_init(&b, 1, on_fire_log);
	tt_init(&c, 2, on_nothing);
	tt_add(&a, 10);
	tt_add(&b, 0);
	cr_assert_eq(ebb_wheel_next(&wheel), 1000, "next %" PRIu64,
		     ebb_wheel_next(&wheel));
	wheel_check("past");
	cr_assert_eq(advance(999), 0);
	cr_assert_eq(wheel.base, 1000);
	tt_add(&c, 1000);
	cr_assert_eq(advance(1000), 3);
	/* Expiry order among the late ones. */
	cr_assert_eq(fire_log[0], 0);
	cr_assert_eq(fire_log[1], 10);
	cr_assert_eq(wheel.count, 0);
	/* Late at a base in the middle of every level. */
	reset(0xabcdef987ull, 4);
	tt_add(&a, 5);
	cr_assert_eq(ebb_wheel_next(&wheel), 0xabcdef987ull);
	cr_assert_eq(advance(0xabcdef987ull + 100000), 1);
	cr_assert_eq(a.fired, 2);
}

/* Random adds, re-adds, deletes and advances; after every one the wheel
 * matches its definition and next() matches the brute force. */
static struct tt *pool;
static unsigned npool;

static void on_random(struct ebb_timer *t, void *arg)
{
	struct tt *x = arg;

	on_fire_common(x);
	/* Sometimes mutate the wheel from inside the handler. */
	switch (rng() % 4) {
	case 0: {
		struct tt *y = &pool[rng() % npool];

		ebb_wheel_del(&wheel, &y->t);
		break;
	}
	case 1: {
		struct tt *y = &pool[rng() % npool];

		tt_add(y, wheel.base + rng_delta(14));
		break;
	}
	case 2:
		tt_add(x, t->expiry + 1 + rng_delta(10));
		break;
	default:
		break;
	}
}

Test(timer_wheel, next_vs_brute_force, .timeout = 60)
{
	const unsigned ops = 30000;
	unsigned i, j;
	char where[64];

	npool = 1000;
	pool = calloc(npool, sizeof(*pool));
	cr_assert_not_null(pool);
	rng_seed(0xc0ffee);
	reset(0x3f3f3f3full, 1);
	for (i = 0; i < npool; i++)
		tt_init(&pool[i], i, on_random);
	wheel_check("empty");
	for (i = 0; i < ops; i++) {
		struct tt *x = &pool[rng() % npool];
		uint64_t r = rng() % 100;

		if (r < 45) {
			uint64_t e;

			switch (rng() % 5) {
			case 0:
				e = wheel.base - rng_delta(10); /* past */
				break;
			case 1:
				e = wheel.base + (SPAN >> 1) + rng_delta(40);
				break;
			default:
				e = wheel.base + rng_delta(24);
				break;
			}
			tt_add(x, e);
		} else if (r < 65) {
			ebb_wheel_del(&wheel, &x->t);
			CHECK(x->t.state == EBB_TIMER_IDLE, "del: state %#x",
			      x->t.state);
		} else {
			uint64_t now = wheel.base + rng_delta(r < 95 ? 20 : 40);

			advance(now);
			/* Nothing due is left behind. */
			for (j = 0; j < npool; j++)
				CHECK(pool[j].t.state != EBB_TIMER_PENDING ||
				      pool[j].due > now,
				      "op %u: timer %u due %" PRIu64
				      " still pending after advance(%" PRIu64 ")",
				      i, j, pool[j].due, now);
		}
		snprintf(where, sizeof(where), "op %u (r %" PRIu64 ")", i, r);
		wheel_check(where);
	}
	free(pool);
	pool = NULL;
	cr_assert(true);
}
