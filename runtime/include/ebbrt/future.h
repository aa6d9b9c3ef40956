/* SPDX-License-Identifier: BSD-3-Clause */
/* A small future/promise: fulfilled once, continuations on the waiting
 * core, and a blocking wait for use inside a blocking event. */
#ifndef EBBRT_FUTURE_H
#define EBBRT_FUTURE_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ebb_future;

/* Continuation: @value is what the future was fulfilled with. */
typedef void (*ebb_future_fn)(void *arg, intptr_t value);

/* A new, unfulfilled future. NULL with errno ENOMEM. Any thread. */
struct ebb_future *ebb_future_create(void);

/*
 * Fulfil @f with @value and schedule its continuations, each on the core
 * that registered it. Any thread. Returns 0, or -EALREADY when @f was
 * fulfilled before (the value is not changed).
 */
int ebb_future_fulfil(struct ebb_future *f, intptr_t value);

/*
 * Run @fn(@arg, value) on the calling core once @f is fulfilled (queued as
 * an execute-once event, even if @f is fulfilled already). Call on: an
 * ebbrt core. Returns 0, -EPERM (not on a core) or -ENOMEM.
 */
int ebb_future_then(struct ebb_future *f, ebb_future_fn fn, void *arg);

/* True once fulfilled; @value (may be NULL) gets the value. Any thread. */
bool ebb_future_ready(struct ebb_future *f, intptr_t *value);

/*
 * Block the calling event until @f is fulfilled (the core runs other
 * events meanwhile), then store the value in @value (may be NULL).
 * Call on: an event of an ebbrt core. Returns 0, -EPERM or -ENOMEM.
 */
int ebb_future_wait(struct ebb_future *f, intptr_t *value);

/* Free @f; accepts NULL. Continuations not yet run are dropped. */
void ebb_future_destroy(struct ebb_future *f);

#ifdef __cplusplus
}
#endif
#endif
