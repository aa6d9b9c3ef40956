/* SPDX-License-Identifier: BSD-3-Clause */
/* The per-core event loop: vectors (emulated interrupts), execute-once
 * events, recurring (idle) handlers, halting, and blocking events. */
#ifndef EBBRT_EVENT_H
#define EBBRT_EVENT_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* An execute-once event or a recurring handler. */
typedef void (*ebb_event_fn)(void *arg);

/*
 * A vector: one source of interrupts on one core.
 *
 * pending(): cheap, side-effect free check that work is waiting (rx queue
 *   non-empty, ring non-empty, timer due). Called every loop iteration and
 *   once more after the core has published that it is halting.
 * handle(): does the work, in a bounded burst. Runs only when pending().
 * arm()/disarm(): optional; enable or disable the device interrupt behind
 *   @fd before and after a halt (for EBB_VECTOR_FD_KICK: tell the
 *   producers to kick). arm() returns 0 or -errno; on an error the core
 *   treats the vector as EBB_VECTOR_FD_NONE for that halt.
 * fd: how a halted core learns of work:
 *   - an fd that becomes readable when work arrives (an eventfd, a queue
 *     fd): the core waits on it;
 *   - EBB_VECTOR_FD_KICK: the source has no fd, but whoever makes work for
 *     it calls ebb_core_kick() after making it: the core's doorbell is its
 *     interrupt, and it halts without a timeout;
 *   - EBB_VECTOR_FD_NONE: nothing wakes the core (a device without
 *     interrupts); while such a vector is registered the core halts with a
 *     bounded, growing timeout instead.
 */
#define EBB_VECTOR_FD_NONE (-1)
#define EBB_VECTOR_FD_KICK (-2)

struct ebb_vector_ops {
	bool (*pending)(void *arg);
	void (*handle)(void *arg);
	int (*arm)(void *arg);
	void (*disarm)(void *arg);
	int fd;
};

/*
 * Add a vector to the calling core's table. @ops is copied.
 * Returns the vector number (>= 0) or -EINVAL (no pending/handle),
 * -EPERM (not called on an ebbrt core), -ENOSPC (table full).
 * Call on: the core that owns the source.
 */
int ebb_vector_add(const struct ebb_vector_ops *ops, void *arg);

/*
 * Remove vector @vec from the calling core's table.
 * Returns 0, -EPERM (not on an ebbrt core), -ENOENT (no such vector) or
 * -EBUSY (vector 0, the core's own inbox).
 * Call on: the core that added it.
 */
int ebb_vector_remove(int vec);

/*
 * Queue @fn(@arg) to run once on the calling core, after the events
 * already queued. Returns 0, -EPERM (not on an ebbrt core), -ESHUTDOWN
 * (loop stopped) or -ENOMEM.
 */
int ebb_spawn_local(ebb_event_fn fn, void *arg);

/*
 * Queue @fn(@arg) to run once on core @core (its MPSC inbox) and ring its
 * doorbell if it is halted. Per sender, events run in the order sent.
 * Returns 0, -EINVAL (no fn), -ENODEV (no such core), -ESHUTDOWN (that
 * loop is stopped) or -EAGAIN (inbox full: back-pressure, retry later).
 * Call on: any thread of the process, ebbrt core or not.
 */
int ebb_spawn_remote(unsigned core, ebb_event_fn fn, void *arg);

/*
 * Work was made for core @core through a vector with no fd of its own
 * (EBB_VECTOR_FD_KICK): ring its doorbell if it is halted. Call after the
 * work is visible to the core's pending() (after the enqueue): it fences,
 * then reads whether the core halted, the same protocol as
 * ebb_spawn_remote(), so either the core's last poll before it blocks sees
 * the work or this call wakes it. At most one doorbell write per halt,
 * however many producers kick. Costs a full fence when the core is
 * running, nothing more.
 * Returns 0 or -ENODEV (no such core). Call on: any thread.
 */
int ebb_core_kick(unsigned core);

/*
 * Add a recurring handler: @fn(@arg) runs every loop iteration on the
 * calling core, after the execute-once event. It returns true when it did
 * work (which keeps the core from halting).
 * Returns a handle (>= 0), -EPERM or -ENOSPC.
 */
typedef bool (*ebb_idle_fn)(void *arg);
int ebb_idle_add(ebb_idle_fn fn, void *arg);

/* Remove recurring handler @handle. Returns 0, -EPERM or -ENOENT. */
int ebb_idle_remove(int handle);

/*
 * Blocking events.
 *
 * A context must start zeroed (or be reused after it resumed). It may be
 * handed to the thread that will activate it before it is saved.
 *
 * ebb_event_save_context() suspends the running event: its registers and
 * stack are kept in @ctx and the core goes on with its loop on a fresh
 * stack from its pool. The FP control words (rounding mode, exception
 * masks) are per core, not saved: restore any change before blocking. It returns 0 once someone has called
 * ebb_event_activate_context(@ctx) -- at once if that happened already.
 * Returns -EPERM when not called from an event on an ebbrt core, -ENOMEM
 * when no stack is left (nothing was saved).
 *
 * ebb_event_activate_context() resumes @ctx as an execute-once event on the
 * core it was saved on. Call on: any thread. Returns 0, -EINVAL when @ctx
 * is already activated and not yet resumed (or NULL), -ESHUTDOWN when its
 * core has stopped.
 */
struct ebb_event_context {
	void *sp;		/* saved stack pointer (callee-saved regs on it) */
	void *stack;		/* the stack the event runs on */
	unsigned core;		/* where it was saved and will resume */
	int state;		/* private */
};

int ebb_event_save_context(struct ebb_event_context *ctx);
int ebb_event_activate_context(struct ebb_event_context *ctx);

/* Per-core counters, read by any thread (values may be slightly stale). */
struct ebb_core_stats {
	uint64_t iterations;	/* loop iterations */
	uint64_t events;	/* execute-once events run */
	uint64_t vectors;	/* vector handlers run */
	uint64_t halts;		/* times the core blocked */
	uint64_t wakes;		/* times it woke from a halt */
	uint64_t doorbells;	/* doorbell writes made to this core */
};

/* Copy core @core's counters into @out. Returns 0 or -ENODEV. */
int ebb_core_stats(unsigned core, struct ebb_core_stats *out);

/* True when core @core has published that it is halting. Any thread. */
bool ebb_core_halted(unsigned core);

/*
 * Set how many idle iterations core @core spins before it halts (0 or 1:
 * halt at the first idle iteration, as hosted mode does). Takes effect
 * from its next idle iteration. Any thread. Returns 0 or -ENODEV.
 */
int ebb_core_set_spin(unsigned core, unsigned spin);

#ifdef __cplusplus
}
#endif
#endif
