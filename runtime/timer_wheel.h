/* SPDX-License-Identifier: BSD-3-Clause */
/* Private: the hierarchical timing wheel behind ebb_timer, one per core.
 * A pure data structure on ticks: it knows nothing of cores or the TSC. */
#ifndef EBBRT_TIMER_WHEEL_H
#define EBBRT_TIMER_WHEEL_H

#include <stdint.h>

#include <ebbrt/timer.h>

#define EBB_WHEEL_LEVELS 6
#define EBB_WHEEL_BITS 6
#define EBB_WHEEL_SLOTS (1u << EBB_WHEEL_BITS)
#define EBB_WHEEL_NEVER UINT64_MAX

/* Timer states (struct ebb_timer.state). */
enum {
	EBB_TIMER_UNINIT = 0,
	EBB_TIMER_IDLE = 0x71de,	/* initialised, not pending */
	EBB_TIMER_PENDING = 0x9e4d,
};

/*
 * Level L has 64 slots of 64^L ticks each. A timer due in d ticks from
 * base sits in the lowest level whose span covers d; slot lists of higher
 * levels are cascaded down when base reaches their start. One bitmap per
 * level marks the non-empty slots, so the next expiry and long idle gaps
 * are found without walking empty slots.
 */
struct ebb_timer_wheel {
	uint64_t base;				/* next tick not yet run */
	uint64_t bitmap[EBB_WHEEL_LEVELS];
	struct ebb_timer *slot[EBB_WHEEL_LEVELS][EBB_WHEEL_SLOTS];
	unsigned count;				/* pending timers */
	/* A tick is 2^shift units of t->deadline and t->period (0 unless
	 * set after init): periodic timers advance their exact deadline and
	 * round only the tick, so rounding never accumulates. */
	unsigned shift;
};

/* Empty wheel whose first unprocessed tick is @now. */
void ebb_wheel_init(struct ebb_timer_wheel *w, uint64_t now);

/* Insert @t, whose t->expiry (and, if periodic, t->deadline) is set; an
 * expiry before base fires at the next advance. Sets t->state to
 * PENDING. */
void ebb_wheel_add(struct ebb_timer_wheel *w, struct ebb_timer *t);

/* Unlink pending @t; sets t->state to IDLE. */
void ebb_wheel_del(struct ebb_timer_wheel *w, struct ebb_timer *t);

/* The earliest tick at which advance() has work (a timer to fire or a
 * slot to cascade), or EBB_WHEEL_NEVER when empty. */
uint64_t ebb_wheel_next(const struct ebb_timer_wheel *w);

/* Run every timer with expiry <= @now in expiry order; base becomes
 * @now + 1. A handler may add, re-add or delete timers, itself included.
 * A periodic timer is re-added at the tick of deadline + period before its
 * handler runs.
 * Returns the number of handlers run. */
unsigned ebb_wheel_advance(struct ebb_timer_wheel *w, uint64_t now);

/* The same, but stops after the tick at which @budget handlers have run:
 * base then stays at or below @now and next() still reports work due, so
 * a long stall is caught up in bounded bursts between other events. */
unsigned ebb_wheel_advance_bounded(struct ebb_timer_wheel *w, uint64_t now,
				   unsigned budget);

#endif
