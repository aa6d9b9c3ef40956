/* SPDX-License-Identifier: BSD-3-Clause */
/* The hierarchical timing wheel of timer_wheel.h: 6 levels of 64 slots,
 * cascaded as in Linux's classic wheel, advanced by bitmap jumps. */
#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "timer_wheel.h"

#if EBB_DEBUG
#define WHEEL_ASSERT(x) assert(x)
#else
#define WHEEL_ASSERT(x) ((void)0)
#endif

#define WHEEL_MASK ((uint64_t)EBB_WHEEL_SLOTS - 1)
/* Ticks the whole wheel covers from base: 64^6. */
#define WHEEL_SPAN (1ull << (EBB_WHEEL_BITS * EBB_WHEEL_LEVELS))

/*
 * Slot lists are NULL-terminated through next. The first element's prev
 * does not point to a timer: it holds the address of the list head (a
 * slot, or the local list advance() fires from) with bit 0 set. That lets
 * ebb_wheel_del() unlink any timer, the head of a list included, without
 * knowing where the timer sits: its level and slot cannot be recomputed
 * from expiry and base once base has moved.
 */
static inline bool is_head(const struct ebb_timer *t)
{
	return ((uintptr_t)t->prev & 1) != 0;
}

static inline struct ebb_timer *head_tag(struct ebb_timer **head)
{
	return (struct ebb_timer *)((uintptr_t)head | 1);
}

static inline struct ebb_timer **tag_head(const struct ebb_timer *tag)
{
	return (struct ebb_timer **)((uintptr_t)tag & ~(uintptr_t)1);
}

/* state is read by ebb_timer_pending() on any thread; relaxed is enough,
 * it publishes no other data. */
static inline void set_state(struct ebb_timer *t, int state)
{
	__atomic_store_n(&t->state, state, __ATOMIC_RELAXED);
}

static inline uint64_t ror64(uint64_t x, unsigned n)
{
	n &= 63;
	return n ? (x >> n) | (x << (64 - n)) : x;
}

static void list_push(struct ebb_timer **head, struct ebb_timer *t)
{
	t->next = *head;
	t->prev = head_tag(head);
	if (t->next)
		t->next->prev = t;
	*head = t;
}

/* Put @t in the slot its expiry calls for, relative to the current base. */
static void wheel_link(struct ebb_timer_wheel *w, struct ebb_timer *t)
{
	uint64_t e = t->expiry;
	uint64_t delta;
	unsigned lvl, idx;

	/* Late timers fire at the next tick processed. */
	if (e < w->base)
		e = w->base;
	delta = e - w->base;
	/* Beyond the top level: park at its far end; the cascade there
	 * re-links with the real expiry, which may park it again. */
	if (delta >= WHEEL_SPAN) {
		delta = WHEEL_SPAN - 1;
		e = w->base + delta;
	}
	lvl = delta ? (unsigned)(63 - __builtin_clzll(delta)) / EBB_WHEEL_BITS
		    : 0;
	idx = (unsigned)(e >> (EBB_WHEEL_BITS * lvl)) & WHEEL_MASK;
	list_push(&w->slot[lvl][idx], t);
	w->bitmap[lvl] |= 1ull << idx;
}

static void wheel_unlink(struct ebb_timer_wheel *w, struct ebb_timer *t)
{
	if (is_head(t)) {
		struct ebb_timer **head = tag_head(t->prev);
		uintptr_t off = (uintptr_t)head - (uintptr_t)&w->slot[0][0];

		*head = t->next;
		if (t->next) {
			t->next->prev = t->prev;
		} else if (off < sizeof(w->slot)) {
			/* Not advance()'s local list: a slot went empty. */
			size_t i = off / sizeof(w->slot[0][0]);

			w->bitmap[i / EBB_WHEEL_SLOTS] &=
				~(1ull << (i % EBB_WHEEL_SLOTS));
		}
	} else {
		t->prev->next = t->next;
		if (t->next)
			t->next->prev = t->prev;
	}
	t->next = t->prev = NULL;
}

/* Take the whole list of slot @lvl/@idx out of the wheel. */
static struct ebb_timer *slot_take(struct ebb_timer_wheel *w, unsigned lvl,
				   unsigned idx)
{
	struct ebb_timer *l = w->slot[lvl][idx];

	w->slot[lvl][idx] = NULL;
	w->bitmap[lvl] &= ~(1ull << idx);
	return l;
}

void ebb_wheel_init(struct ebb_timer_wheel *w, uint64_t now)
{
	memset(w, 0, sizeof(*w));
	w->base = now;
}

void ebb_wheel_add(struct ebb_timer_wheel *w, struct ebb_timer *t)
{
	if (t->state == EBB_TIMER_PENDING)
		wheel_unlink(w, t);
	else
		w->count++;
	wheel_link(w, t);
	set_state(t, EBB_TIMER_PENDING);
}

void ebb_wheel_del(struct ebb_timer_wheel *w, struct ebb_timer *t)
{
	/* Deleting a timer that is not pending is a no-op, so callers
	 * racing a firing need no extra check. */
	if (t->state != EBB_TIMER_PENDING)
		return;
	WHEEL_ASSERT(w->count > 0);
	wheel_unlink(w, t);
	w->count--;
	set_state(t, EBB_TIMER_IDLE);
}

uint64_t ebb_wheel_next(const struct ebb_timer_wheel *w)
{
	uint64_t best = EBB_WHEEL_NEVER;
	uint64_t base = w->base;
	unsigned lvl;

	/* Level 0: slot s fires at the first tick >= base with low bits s. */
	if (w->bitmap[0]) {
		uint64_t rot = ror64(w->bitmap[0], (unsigned)(base & WHEEL_MASK));

		best = base + (uint64_t)__builtin_ctzll(rot);
	}
	for (lvl = 1; lvl < EBB_WHEEL_LEVELS; lvl++) {
		unsigned shift = EBB_WHEEL_BITS * lvl;
		uint64_t blk, rot, tick;

		if (!w->bitmap[lvl])
			continue;
		/* Slot s of level L cascades at ticks whose low 6L bits are
		 * zero and whose next 6 bits are s. The block base is in can
		 * only still cascade if base is its very first tick. */
		blk = base >> shift;
		if (base & ((1ull << shift) - 1))
			blk++;
		rot = ror64(w->bitmap[lvl], (unsigned)(blk & WHEEL_MASK));
		tick = (blk + (uint64_t)__builtin_ctzll(rot)) << shift;
		if (tick < best)
			best = tick;
	}
	return best;
}

/* Re-link every timer of slot @lvl/@idx against the current base: they
 * land in lower levels (or, if parked beyond the top, back at the top). */
static void cascade(struct ebb_timer_wheel *w, unsigned lvl, unsigned idx)
{
	struct ebb_timer *t = slot_take(w, lvl, idx);

	while (t) {
		/* No handler runs here, so holding next is safe. */
		struct ebb_timer *next = t->next;

		wheel_link(w, t);
		t = next;
	}
}

/* Merge sort by expiry, stable, of a next-linked list; prev is left
 * stale for the caller to rebuild. */
static struct ebb_timer *sort_by_expiry(struct ebb_timer *l, size_t n)
{
	struct ebb_timer *a, *b, *out = NULL, **tail = &out;
	size_t i, half = n / 2;

	if (n < 2)
		return l;
	a = l;
	for (i = 1; i < half; i++)
		l = l->next;
	b = l->next;
	l->next = NULL;
	a = sort_by_expiry(a, half);
	b = sort_by_expiry(b, n - half);
	while (a && b) {
		struct ebb_timer **m = b->expiry < a->expiry ? &b : &a;

		*tail = *m;
		tail = &(*m)->next;
		*m = (*m)->next;
	}
	*tail = a ? a : b;
	return out;
}

/*
 * Slot lists are LIFO; put the timers due at one tick back in start order
 * and, when late timers share the slot with on-time ones, in expiry order.
 * The list stays headed by *@headp, prev pointers rebuilt for it.
 */
static void order_work(struct ebb_timer **headp)
{
	struct ebb_timer *l = *headp, *rev = NULL, *t, *prev;
	bool sorted = true;
	size_t n = 0;

	while (l) {
		struct ebb_timer *next = l->next;

		/* Reversed, the list must be non-decreasing: a timer
		 * pushed later must not expire later. */
		if (rev && rev->expiry < l->expiry)
			sorted = false;
		l->next = rev;
		rev = l;
		l = next;
		n++;
	}
	if (!sorted)
		rev = sort_by_expiry(rev, n);
	prev = head_tag(headp);
	for (t = rev; t; t = t->next) {
		t->prev = prev;
		prev = t;
	}
	*headp = rev;
}

/* Process tick @tick == w->base: cascades, then its level-0 slot. */
static unsigned run_tick(struct ebb_timer_wheel *w, uint64_t tick)
{
	struct ebb_timer *work, *t;
	unsigned lvl, ran = 0;

	WHEEL_ASSERT(w->base == tick);
	/* Bottom-up as Linux's __run_timers: level L cascades only when
	 * every level below it has wrapped to index 0. */
	if (!(tick & WHEEL_MASK)) {
		for (lvl = 1; lvl < EBB_WHEEL_LEVELS; lvl++) {
			unsigned idx = (unsigned)(tick >> (EBB_WHEEL_BITS * lvl)) &
				       WHEEL_MASK;

			if (w->bitmap[lvl] & (1ull << idx))
				cascade(w, lvl, idx);
			if (idx)
				break;
		}
	}

	work = slot_take(w, 0, (unsigned)(tick & WHEEL_MASK));
	/* Timers a handler adds for this tick or earlier go to the next
	 * tick, never to the list being fired: no livelock on re-adds. */
	w->base = tick + 1;
	if (!work)
		return 0;
	order_work(&work);
	/* Pop one at a time and never keep the next element across a
	 * handler: it may delete or re-add any timer of this list. */
	while ((t = work) != NULL) {
		wheel_unlink(w, t);
		w->count--;
		set_state(t, EBB_TIMER_IDLE);
		if (t->period) {
			uint64_t e;

			if (__builtin_add_overflow(t->deadline, t->period,
						   &t->deadline))
				t->deadline = UINT64_MAX;
			e = (t->deadline >> w->shift) +
			    ((t->deadline & ((1ull << w->shift) - 1)) != 0);
			if (e >= EBB_WHEEL_NEVER)
				e = EBB_WHEEL_NEVER - 1;
			t->expiry = e;
			w->count++;
			wheel_link(w, t);
			set_state(t, EBB_TIMER_PENDING);
		}
		t->fn(t, t->arg);
		ran++;
	}
	return ran;
}

unsigned ebb_wheel_advance(struct ebb_timer_wheel *w, uint64_t now)
{
	return ebb_wheel_advance_bounded(w, now, UINT_MAX);
}

unsigned ebb_wheel_advance_bounded(struct ebb_timer_wheel *w, uint64_t now,
				   unsigned budget)
{
	unsigned ran = 0;

	/* EBB_WHEEL_NEVER is not a tick: base must stay representable. */
	if (now >= EBB_WHEEL_NEVER)
		now = EBB_WHEEL_NEVER - 1;
	/* Whole ticks only: a tick's slot is fired completely or not at
	 * all, so the budget may be overrun by the last tick's timers. */
	while (w->base <= now && ran < budget) {
		/* Jump over every tick with nothing to fire or cascade. */
		uint64_t tick = ebb_wheel_next(w);

		if (tick > now) {
			w->base = now + 1;
			break;
		}
		w->base = tick;
		ran += run_tick(w, tick);
	}
	return ran;
}
