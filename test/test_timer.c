/* SPDX-License-Identifier: BSD-3-Clause */
/* Timers on real cores: never early, on time within a bound, in order,
 * periodic without drift, cancel, re-arm, errors, and halted cores. */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/* White box: tick length, to check the periodic expiry arithmetic. */
#include "defs.h"

#define MS 1000000ull
/* Lateness bound: a loaded 2-core VM, a core maybe halted. */
#define LATE_NS (50 * MS)

/* A one-shot timer and what its handler saw. */
struct shot {
	struct ebb_timer t;
	uint64_t delay_ns;
	uint64_t start_ns;	/* before ebb_timer_start */
	uint64_t fired_ns;
	unsigned fired_core;
	int rc;
	bool pending_after_start;
	atomic_int fired;
};

static void shot_fn(struct ebb_timer *t, void *arg)
{
	struct shot *s = arg;

	s->fired_ns = ebb_time_ns();
	s->fired_core = t == &s->t ? ebb_core_id() : EBB_CORE_NONE;
	/* Pairs with the acquire loads of the test thread. */
	atomic_fetch_add_explicit(&s->fired, 1, memory_order_release);
}

static void shot_init(struct shot *s, uint64_t delay_ns)
{
	memset(s, 0, sizeof(*s));
	ebb_timer_init(&s->t, shot_fn, s);
	s->delay_ns = delay_ns;
	atomic_init(&s->fired, 0);
}

static void shot_start(void *arg)
{
	struct shot *s = arg;

	s->start_ns = ebb_time_ns();
	s->rc = ebb_timer_start(&s->t, s->delay_ns, 0);
	s->pending_after_start = ebb_timer_pending(&s->t);
}

static int shot_count(struct shot *s)
{
	return atomic_load_explicit(&s->fired, memory_order_acquire);
}

static void shot_check_time(const struct shot *s, const char *what)
{
	uint64_t took = s->fired_ns - s->start_ns;

	cr_assert_geq(s->fired_ns, s->start_ns + s->delay_ns,
		      "%s: delay %" PRIu64 " ns fired EARLY after %" PRIu64
		      " ns",
		      what, s->delay_ns, took);
	cr_assert_lt(took, s->delay_ns + LATE_NS,
		     "%s: delay %" PRIu64 " ns fired after %" PRIu64 " ns", what,
		     s->delay_ns, took);
}

Test(timer, oneshot_on_time, .timeout = 60)
{
	static const uint64_t delays[] = {
		0, 1, 500, 1500, 100000, 1 * MS, 5 * MS, 20 * MS, 100 * MS,
	};
	unsigned i, core;
	char what[64];

	ebbt_start("0-1");
	for (core = 0; core < 2; core++) {
		for (i = 0; i < sizeof(delays) / sizeof(delays[0]); i++) {
			struct shot s;

			shot_init(&s, delays[i]);
			cr_assert_eq(ebbt_call(core, shot_start, &s), 0);
			cr_assert_eq(s.rc, 0, "start: %s", strerror(-s.rc));
			cr_assert(s.pending_after_start || shot_count(&s),
				  "not pending right after start");
			cr_assert(ebbt_wait_until(shot_count(&s) > 0, 2000),
				  "core %u: %" PRIu64 " ns timer never fired",
				  core, delays[i]);
			snprintf(what, sizeof(what), "core %u", core);
			shot_check_time(&s, what);
			cr_assert_eq(s.fired_core, core, "fired on core %u",
				     s.fired_core);
			cr_assert(!ebb_timer_pending(&s.t));
			/* One-shot: once. */
			usleep(2000);
			cr_assert_eq(shot_count(&s), 1, "fired %d times",
				     shot_count(&s));
		}
	}
	ebbt_stop();
}

/* Several timers started together fire in deadline order. */
#define NORD 8
static const uint64_t ord_delay_ms[NORD] = { 30, 10, 20, 5, 25, 15, 1, 40 };
static struct ebb_timer ord_t[NORD];
static uint64_t ord_fired_ns[NORD];
static unsigned ord_seq[NORD];
static uint64_t ord_start_ns;
static int ord_rc[NORD];
static atomic_uint ord_n;

static void ord_fn(struct ebb_timer *t, void *arg)
{
	unsigned i = (unsigned)(uintptr_t)arg;
	unsigned n = atomic_load_explicit(&ord_n, memory_order_relaxed);

	(void)t;
	ord_fired_ns[i] = ebb_time_ns();
	if (n < NORD)
		ord_seq[n] = i;
	atomic_store_explicit(&ord_n, n + 1, memory_order_release);
}

static void ord_start(void *arg)
{
	unsigned i;

	(void)arg;
	ord_start_ns = ebb_time_ns();
	for (i = 0; i < NORD; i++) {
		ebb_timer_init(&ord_t[i], ord_fn, (void *)(uintptr_t)i);
		ord_rc[i] = ebb_timer_start(&ord_t[i], ord_delay_ms[i] * MS, 0);
	}
}

Test(timer, ordering, .timeout = 60)
{
	unsigned i;

	ebbt_start("0-1");
	atomic_init(&ord_n, 0);
	cr_assert_eq(ebbt_call(1, ord_start, NULL), 0);
	for (i = 0; i < NORD; i++)
		cr_assert_eq(ord_rc[i], 0, "start %u: %d", i, ord_rc[i]);
	cr_assert(ebbt_wait_until(atomic_load_explicit(&ord_n,
						       memory_order_acquire) ==
					  NORD,
				  5000),
		  "%u of %u fired", atomic_load(&ord_n), NORD);
	usleep(5000);
	cr_assert_eq(atomic_load(&ord_n), NORD);
	for (i = 1; i < NORD; i++)
		cr_assert_lt(ord_delay_ms[ord_seq[i - 1]],
			     ord_delay_ms[ord_seq[i]],
			     "firing %u: %" PRIu64 " ms timer after the %" PRIu64
			     " ms one",
			     i, ord_delay_ms[ord_seq[i]],
			     ord_delay_ms[ord_seq[i - 1]]);
	for (i = 0; i < NORD; i++)
		cr_assert_geq(ord_fired_ns[i] - ord_start_ns,
			      ord_delay_ms[i] * MS, "%" PRIu64 " ms timer early",
			      ord_delay_ms[i]);
	ebbt_stop();
}

/* Periodic: 100 periods of 1 ms; firing n is due at start + (n+1) ms. */
#define NPER 100
static struct ebb_timer per_t;
static uint64_t per_start_ns;
static uint64_t per_fired_ns[NPER];
static uint64_t per_expiry[NPER];
static uint64_t per_deadline[NPER];
static int per_state[NPER];
static int per_cancel_rc, per_start_rc;
static atomic_uint per_n;

static void per_fn(struct ebb_timer *t, void *arg)
{
	unsigned n = atomic_load_explicit(&per_n, memory_order_relaxed);

	(void)arg;
	if (n < NPER) {
		per_fired_ns[n] = ebb_time_ns();
		per_expiry[n] = t->expiry;
		per_deadline[n] = t->deadline;
		per_state[n] = t->state;
	}
	if (n + 1 == NPER)
		per_cancel_rc = ebb_timer_cancel(t);
	atomic_store_explicit(&per_n, n + 1, memory_order_release);
}

static void per_start(void *arg)
{
	uint64_t period = *(uint64_t *)arg;

	ebb_timer_init(&per_t, per_fn, NULL);
	per_start_ns = ebb_time_ns();
	per_start_rc = ebb_timer_start(&per_t, period, period);
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static void periodic_run(const char *cpus, unsigned core, unsigned spin)
{
	uint64_t period = 1 * MS, tick_ns, pticks, pcycles;
	int64_t late[NPER], tail[10];
	unsigned n;

	ebbt_start_spin(cpus, spin);
	atomic_init(&per_n, 0);
	cr_assert_eq(ebbt_call(core, per_start, &period), 0);
	cr_assert_eq(per_start_rc, 0, "start: %d", per_start_rc);
	cr_assert(ebbt_wait_until(atomic_load_explicit(&per_n,
						       memory_order_acquire) >=
					  NPER,
				  10000),
		  "%u of %u periods fired", atomic_load(&per_n), NPER);
	usleep(20000);
	cr_assert_eq(atomic_load(&per_n), NPER,
		     "fired %u times after cancel in handler",
		     atomic_load(&per_n));
	cr_assert_eq(per_cancel_rc, 0, "cancel from own handler: %d",
		     per_cancel_rc);
	cr_assert(!ebb_timer_pending(&per_t));

	/* The wheel's arithmetic: every deadline is the previous plus one
	 * exact period in TSC cycles, and each expiry is its deadline
	 * rounded up to a tick -- rounding never accumulates. */
	tick_ns = (1000000000ull << ebb_node.tick_shift) / ebb_node.tsc_hz;
	pcycles = per_deadline[1] - per_deadline[0];
	pticks = pcycles >> ebb_node.tick_shift;
	cr_assert_geq((double)pcycles * 1e9 / (double)ebb_node.tsc_hz,
		      (double)period - 1.0, "period of %" PRIu64 " cycles < 1 ms",
		      pcycles);
	cr_assert_leq(pticks * tick_ns, period + 2 * tick_ns + 2,
		      "period of %" PRIu64 " ticks (%" PRIu64 " ns each)",
		      pticks, tick_ns);
	for (n = 0; n < NPER; n++) {
		uint64_t d = per_deadline[n];
		uint64_t mask = (1ull << ebb_node.tick_shift) - 1;

		cr_assert_eq(per_state[n], EBB_TIMER_PENDING,
			     "firing %u: not re-armed before the handler", n);
		cr_assert_eq(d - per_deadline[0], n * pcycles,
			     "firing %u: deadline %" PRIu64 ", first %" PRIu64
			     ", period %" PRIu64 " cycles: drift",
			     n, d, per_deadline[0], pcycles);
		cr_assert_eq(per_expiry[n],
			     (d >> ebb_node.tick_shift) + ((d & mask) != 0),
			     "firing %u: expiry %" PRIu64 " is not the tick of "
			     "deadline %" PRIu64, n, per_expiry[n], d);
	}
	/* Wall clock: never early, never far late, and the lateness does
	 * not build up (the last firings are as late as typical ones). */
	for (n = 0; n < NPER; n++) {
		uint64_t due = per_start_ns + (n + 1) * period;

		cr_assert_geq(per_fired_ns[n], due,
			      "firing %u EARLY: at %" PRIu64 " ns of %" PRIu64, n,
			      per_fired_ns[n] - per_start_ns, due - per_start_ns);
		late[n] = (int64_t)(per_fired_ns[n] - due);
		cr_assert_lt((uint64_t)late[n], LATE_NS,
			     "firing %u: %" PRId64 " ns late", n, late[n]);
	}
	memcpy(tail, late + NPER - 10, sizeof(tail));
	qsort(tail, 10, sizeof(tail[0]), cmp_i64);
	qsort(late, NPER, sizeof(late[0]), cmp_i64);
	cr_log_info("periodic on core %u, spin %u: lateness median %" PRId64
		    " ns, max %" PRId64 " ns; last 10 median %" PRId64 " ns",
		    core, spin, late[NPER / 2], late[NPER - 1], tail[5]);
	cr_assert_lt(tail[5], (int64_t)(2 * MS),
		     "the last firings are late by %" PRId64 " ns (median): "
		     "drift of %" PRId64 " ns per period?",
		     tail[5], tail[5] / NPER);
	ebbt_stop();
}

Test(timer, periodic_no_drift, .timeout = 60)
{
	periodic_run("0-1", 1, 0);
}

/* Hosted: the core halts between every two periods. */
Test(timer, periodic_no_drift_halting, .timeout = 60)
{
	periodic_run("0-1", 0, 1);
}

/* Cancel, double cancel, restart of a pending timer, cancel from a
 * handler. */
static struct shot c_a, c_b, c_c, c_d, c_e;
static int c_rc[8];

static void cancel_from_handler(struct ebb_timer *t, void *arg)
{
	shot_fn(t, arg);
	c_rc[4] = ebb_timer_cancel(&c_d.t);
}

static void cancel_setup(void *arg)
{
	(void)arg;
	shot_start(&c_a);
	shot_start(&c_b);
	shot_start(&c_c);
	shot_start(&c_d);
	c_rc[0] = ebb_timer_cancel(&c_a.t);
	c_rc[1] = ebb_timer_pending(&c_a.t);
	c_rc[2] = ebb_timer_cancel(&c_a.t);
	/* Restart while pending: moved from 300 ms to 10 ms, fires once. */
	shot_start(&c_e);
	c_e.delay_ns = 10 * MS;
	shot_start(&c_e);
	c_rc[3] = c_e.rc;
}

Test(timer, cancel, .timeout = 60)
{
	ebbt_start("0-1");
	shot_init(&c_a, 20 * MS);
	shot_init(&c_b, 20 * MS);
	shot_init(&c_c, 10 * MS);
	c_c.t.fn = cancel_from_handler;
	shot_init(&c_d, 50 * MS);
	shot_init(&c_e, 300 * MS);
	cr_assert_eq(ebbt_call(1, cancel_setup, NULL), 0);
	cr_assert_eq(c_rc[0], 0, "cancel: %d", c_rc[0]);
	cr_assert_eq(c_rc[1], 0, "pending after cancel");
	cr_assert_eq(c_rc[2], -ENOENT, "second cancel: %d", c_rc[2]);
	cr_assert_eq(c_rc[3], 0, "restart: %d", c_rc[3]);
	cr_assert(ebbt_wait_until(shot_count(&c_b) && shot_count(&c_c) &&
					  shot_count(&c_e),
				  2000));
	shot_check_time(&c_b, "b");
	shot_check_time(&c_c, "c");
	shot_check_time(&c_e, "restarted e");
	cr_assert_eq(c_rc[4], 0, "cancel from another handler: %d", c_rc[4]);
	/* Past every deadline, the restart's old one included. */
	usleep(400 * 1000);
	cr_assert_eq(shot_count(&c_a), 0, "cancelled timer fired");
	cr_assert_eq(shot_count(&c_d), 0, "timer cancelled in handler fired");
	cr_assert_eq(shot_count(&c_e), 1, "restarted timer fired %d times",
		     shot_count(&c_e));
	cr_assert_eq(shot_count(&c_b), 1);
	cr_assert(!ebb_timer_pending(&c_d.t));
	ebbt_stop();
}

static void cancel_it(void *arg)
{
	struct shot *s = arg;

	s->rc = ebb_timer_cancel(&s->t);
}

Test(timer, cancel_fired_is_enoent, .timeout = 60)
{
	struct shot s;

	ebbt_start("0-1");
	shot_init(&s, 1 * MS);
	cr_assert_eq(ebbt_call(0, shot_start, &s), 0);
	cr_assert(ebbt_wait_until(shot_count(&s), 2000));
	cr_assert_eq(ebbt_call(0, cancel_it, &s), 0);
	cr_assert_eq(s.rc, -ENOENT, "cancel of a fired timer: %d", s.rc);
	/* Not pending anywhere: from a non-core thread too. */
	cr_assert_eq(ebb_timer_cancel(&s.t), -ENOENT);
	ebbt_stop();
}

/* A handler re-arms its own timer. */
#define NREARM 5
static struct ebb_timer re_t;
static uint64_t re_ns[NREARM + 1];
static int re_rc[NREARM], re_start_rc;
static atomic_uint re_n;

static void rearm_fn(struct ebb_timer *t, void *arg)
{
	unsigned n = atomic_load_explicit(&re_n, memory_order_relaxed);

	(void)arg;
	re_ns[n + 1] = ebb_time_ns();
	if (n + 1 < NREARM)
		re_rc[n] = ebb_timer_start(t, 2 * MS, 0);
	atomic_store_explicit(&re_n, n + 1, memory_order_release);
}

static void rearm_start(void *arg)
{
	(void)arg;
	ebb_timer_init(&re_t, rearm_fn, NULL);
	re_ns[0] = ebb_time_ns();
	re_start_rc = ebb_timer_start(&re_t, 2 * MS, 0);
}

Test(timer, rearm_in_handler, .timeout = 60)
{
	unsigned i;

	ebbt_start("0-1");
	atomic_init(&re_n, 0);
	cr_assert_eq(ebbt_call(1, rearm_start, NULL), 0);
	cr_assert_eq(re_start_rc, 0, "start: %d", re_start_rc);
	cr_assert(ebbt_wait_until(atomic_load_explicit(&re_n,
						       memory_order_acquire) ==
					  NREARM,
				  5000),
		  "re-armed timer fired %u times", atomic_load(&re_n));
	usleep(20000);
	cr_assert_eq(atomic_load(&re_n), NREARM);
	cr_assert(!ebb_timer_pending(&re_t));
	for (i = 0; i + 1 < NREARM; i++)
		cr_assert_eq(re_rc[i], 0, "re-arm %u: %d", i, re_rc[i]);
	for (i = 1; i <= NREARM; i++) {
		uint64_t gap = re_ns[i] - re_ns[i - 1];

		cr_assert_geq(gap, 2 * MS, "firing %u %" PRIu64 " ns after the "
			      "previous: early", i, gap);
		cr_assert_lt(gap, 2 * MS + LATE_NS, "firing %u: gap %" PRIu64,
			     i, gap);
	}
	ebbt_stop();
}

/* Errors: not initialised, not on a core, pending on another core. */
static struct shot e_s;
static struct ebb_timer e_uninit;
static int e_rc[6];

static void err_on_core0(void *arg)
{
	(void)arg;
	e_rc[0] = ebb_timer_start(&e_s.t, 1 * MS, 0);
	e_rc[1] = ebb_timer_cancel(&e_s.t);
	e_rc[2] = ebb_timer_start(&e_uninit, 1 * MS, 0);
	e_rc[3] = ebb_timer_cancel(&e_uninit);
}

Test(timer, errors, .timeout = 60)
{
	ebbt_start("0-1");
	memset(&e_uninit, 0, sizeof(e_uninit));
	shot_init(&e_s, 500 * MS);

	/* The test's own thread is not a core. */
	cr_assert_eq(ebb_timer_start(&e_s.t, 1 * MS, 0), -EPERM);
	cr_assert(!ebb_timer_pending(&e_s.t));
	cr_assert_eq(ebb_timer_start(&e_uninit, 1 * MS, 0), -EINVAL);
	cr_assert_eq(ebb_timer_cancel(&e_uninit), -EINVAL);

	cr_assert_eq(ebbt_call(1, shot_start, &e_s), 0);
	cr_assert_eq(e_s.rc, 0);
	cr_assert(ebb_timer_pending(&e_s.t));
	cr_assert_eq(ebb_timer_start(&e_s.t, 1 * MS, 0), -EPERM);
	cr_assert_eq(ebb_timer_cancel(&e_s.t), -EPERM);
	cr_assert_eq(ebbt_call(0, err_on_core0, NULL), 0);
	cr_assert_eq(e_rc[0], -EBUSY, "start on core 0 of a timer pending "
		     "on core 1: %d", e_rc[0]);
	cr_assert_eq(e_rc[1], -EPERM, "cancel on core 0 of a timer pending "
		     "on core 1: %d", e_rc[1]);
	cr_assert_eq(e_rc[2], -EINVAL);
	cr_assert_eq(e_rc[3], -EINVAL);
	/* Still pending on core 1, untouched by the refused calls. */
	cr_assert(ebb_timer_pending(&e_s.t));
	cr_assert_eq(shot_count(&e_s), 0);
	cr_assert_eq(ebbt_call(1, cancel_it, &e_s), 0);
	cr_assert_eq(e_s.rc, 0, "cancel on its core: %d", e_s.rc);
	cr_assert(!ebb_timer_pending(&e_s.t));
	ebbt_stop();
}

/* A halted core is woken by its timer. */
Test(timer, wakes_halted_core, .timeout = 60)
{
	static const uint64_t delays_ms[] = { 300, 120, 1000 };
	struct ebb_core_stats st0, st1;
	unsigned i;

	ebbt_start("0-1");
	for (i = 0; i < sizeof(delays_ms) / sizeof(delays_ms[0]); i++) {
		struct shot s;

		shot_init(&s, delays_ms[i] * MS);
		cr_assert_eq(ebbt_call(1, shot_start, &s), 0);
		cr_assert_eq(s.rc, 0);
		cr_assert(ebbt_wait_until(ebb_core_halted(1), 100),
			  "core 1 did not halt with only a timer pending");
		cr_assert_eq(ebb_core_stats(1, &st0), 0);
		cr_assert_eq(shot_count(&s), 0, "fired before its deadline");
		cr_assert(ebbt_wait_until(shot_count(&s), delays_ms[i] + 1000),
			  "halted core not woken by its %" PRIu64 " ms timer",
			  delays_ms[i]);
		shot_check_time(&s, "halted core");
		cr_assert_eq(ebb_core_stats(1, &st1), 0);
		cr_assert_gt(st1.wakes, st0.wakes,
			     "no wake counted (halts %" PRIu64 ", wakes %" PRIu64
			     ")",
			     st1.halts, st1.wakes);
	}
	ebbt_stop();
}

/* A halted core woken again and again by a periodic timer. */
#define NHALT 20
static struct ebb_timer h_t;
static uint64_t h_start_ns, h_ns[NHALT];
static atomic_uint h_n;
static int h_start_rc;

static void halt_per_fn(struct ebb_timer *t, void *arg)
{
	unsigned n = atomic_load_explicit(&h_n, memory_order_relaxed);

	(void)arg;
	if (n < NHALT)
		h_ns[n] = ebb_time_ns();
	if (n + 1 == NHALT)
		ebb_timer_cancel(t);
	atomic_store_explicit(&h_n, n + 1, memory_order_release);
}

static void halt_per_start(void *arg)
{
	(void)arg;
	ebb_timer_init(&h_t, halt_per_fn, NULL);
	h_start_ns = ebb_time_ns();
	h_start_rc = ebb_timer_start(&h_t, 10 * MS, 10 * MS);
}

Test(timer, periodic_wakes_halted_core, .timeout = 60)
{
	struct ebb_core_stats st0, st1;
	unsigned n;

	ebbt_start("0-1");
	cr_assert_eq(ebb_core_stats(1, &st0), 0);
	atomic_init(&h_n, 0);
	cr_assert_eq(ebbt_call(1, halt_per_start, NULL), 0);
	cr_assert_eq(h_start_rc, 0, "start: %d", h_start_rc);
	cr_assert(ebbt_wait_until(atomic_load_explicit(&h_n,
						       memory_order_acquire) ==
					  NHALT,
				  5000),
		  "%u of %u periods fired", atomic_load(&h_n), NHALT);
	cr_assert_eq(ebb_core_stats(1, &st1), 0);
	for (n = 0; n < NHALT; n++) {
		uint64_t due = h_start_ns + (n + 1) * 10 * MS;

		cr_assert_geq(h_ns[n], due, "firing %u early by %" PRIu64 " ns",
			      n, due - h_ns[n]);
		cr_assert_lt(h_ns[n] - due, LATE_NS, "firing %u late by %" PRIu64
			     " ns", n, h_ns[n] - due);
	}
	/* It did sleep between periods (the point of this test). */
	cr_assert_geq(st1.halts - st0.halts, NHALT / 2,
		      "only %" PRIu64 " halts over %u periods of 10 ms",
		      st1.halts - st0.halts, NHALT);
	ebbt_stop();
}

/* ebb_time_ns() runs at the rate of the kernel's monotonic clock. */
Test(timer, time_ns_rate, .timeout = 60)
{
	uint64_t t0, m0, t1, m1;
	double ratio;

	ebbt_start("0-1");
	t0 = ebb_time_ns();
	m0 = ebbt_now_ns();
	usleep(300 * 1000);
	t1 = ebb_time_ns();
	m1 = ebbt_now_ns();
	cr_assert_gt(t1, t0);
	ratio = (double)(t1 - t0) / (double)(m1 - m0);
	cr_assert(ratio > 0.98 && ratio < 1.02,
		  "ebb_time_ns ran %.4f times as fast as CLOCK_MONOTONIC",
		  ratio);
	ebbt_stop();
}
