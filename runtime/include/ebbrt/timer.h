/* SPDX-License-Identifier: BSD-3-Clause */
/* Per-core timers on a hierarchical timing wheel driven by the TSC. */
#ifndef EBBRT_TIMER_H
#define EBBRT_TIMER_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ebb_timer;
typedef void (*ebb_timer_fn)(struct ebb_timer *t, void *arg);

/*
 * A timer. The caller owns the memory: it must stay valid while the timer
 * is pending. Fields are private; use the functions below.
 */
struct ebb_timer {
	struct ebb_timer *next, *prev;	/* slot list */
	uint64_t expiry;		/* tick it fires at */
	uint64_t deadline;		/* exact due time (wheel units) */
	uint64_t period;		/* wheel units; 0 for one-shot */
	ebb_timer_fn fn;
	void *arg;
	unsigned core;			/* core it is pending on */
	int state;
};

/* Prepare @t to call @fn(@t, @arg). Does not start it. */
void ebb_timer_init(struct ebb_timer *t, ebb_timer_fn fn, void *arg);

/*
 * Start @t on the calling core: it fires once after @delay_ns, then, if
 * @period_ns is not 0, every @period_ns after the first expiry (no drift:
 * each expiry is the previous one plus the period). Restarting a pending
 * timer re-arms it. A handler may restart or cancel its own timer.
 * Returns 0, -EINVAL (not initialised), -EPERM (not on an ebbrt core), or
 * -EBUSY (pending on another core).
 */
int ebb_timer_start(struct ebb_timer *t, uint64_t delay_ns,
		    uint64_t period_ns);

/*
 * Cancel @t. Returns 0, -ENOENT (not pending: it fired or was cancelled),
 * -EINVAL (not initialised) or -EPERM (not on the core it is pending on).
 */
int ebb_timer_cancel(struct ebb_timer *t);

/* True while @t is pending. */
bool ebb_timer_pending(const struct ebb_timer *t);

/* Current time in nanoseconds from the TSC. */
uint64_t ebb_time_ns(void);

#ifdef __cplusplus
}
#endif
#endif
