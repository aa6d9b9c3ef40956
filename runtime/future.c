/* SPDX-License-Identifier: BSD-3-Clause */
/* Futures: fulfilled once, continuations on the registering core. */
#include <errno.h>
#include <stdlib.h>

#include <rte_pause.h>
#include <rte_spinlock.h>

#include "defs.h"
#include "stack.h"

/* A continuation, or a blocked event (ctx != NULL). */
struct ebb_waiter {
	struct ebb_waiter *next;
	unsigned core;
	ebb_future_fn fn;
	void *arg;
	intptr_t value;
	struct ebb_event_context *ctx;
};

struct ebb_future {
	rte_spinlock_t lock;
	bool ready;
	intptr_t value;
	struct ebb_waiter *head, **tail;	/* in registration order */
};

struct ebb_future *ebb_future_create(void)
{
	struct ebb_future *f = calloc(1, sizeof(*f));

	if (f == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	rte_spinlock_init(&f->lock);
	f->tail = &f->head;
	return f;
}

void ebb_future_destroy(struct ebb_future *f)
{
	struct ebb_waiter *w, *next;

	if (f == NULL)
		return;
	for (w = f->head; w; w = next) {
		next = w->next;
		if (w->ctx == NULL)
			free(w);
	}
	free(f);
}

static void run_waiter(void *arg)
{
	struct ebb_waiter *w = arg;

	w->fn(w->arg, w->value);
	free(w);
}

/* Queue @w on its core; waits for room in a full inbox rather than lose
 * a continuation. */
static void dispatch(struct ebb_waiter *w)
{
	int rc;

	if (w->ctx != NULL) {
		/* The waiter lives on the blocked event's stack: touch it
		 * no more once activated. */
		ebb_event_activate_context(w->ctx);
		return;
	}
	do {
		rc = ebb_spawn_remote(w->core, run_waiter, w);
		if (rc == -EAGAIN)
			rte_pause();
	} while (rc == -EAGAIN);
	if (rc != 0)
		free(w);	/* that core has stopped */
}

int ebb_future_fulfil(struct ebb_future *f, intptr_t value)
{
	struct ebb_waiter *w, *next;

	if (f == NULL)
		return -EINVAL;
	rte_spinlock_lock(&f->lock);
	if (f->ready) {
		rte_spinlock_unlock(&f->lock);
		return -EALREADY;
	}
	f->ready = true;
	f->value = value;
	w = f->head;
	f->head = NULL;
	f->tail = &f->head;
	rte_spinlock_unlock(&f->lock);
	for (; w; w = next) {
		next = w->next;
		w->value = value;
		dispatch(w);
	}
	return 0;
}

int ebb_future_then(struct ebb_future *f, ebb_future_fn fn, void *arg)
{
	struct ebb_waiter *w;

	if (ebb_self == NULL)
		return -EPERM;
	if (f == NULL || fn == NULL)
		return -EINVAL;
	w = malloc(sizeof(*w));
	if (w == NULL)
		return -ENOMEM;
	*w = (struct ebb_waiter){ .core = ebb_self->id, .fn = fn, .arg = arg };
	rte_spinlock_lock(&f->lock);
	if (!f->ready) {
		*f->tail = w;
		f->tail = &w->next;
		rte_spinlock_unlock(&f->lock);
		return 0;
	}
	w->value = f->value;
	rte_spinlock_unlock(&f->lock);
	/* Already fulfilled: still asynchronous, as documented. */
	if (ebb_spawn_local(run_waiter, w) != 0) {
		free(w);
		return -ENOMEM;
	}
	return 0;
}

bool ebb_future_ready(struct ebb_future *f, intptr_t *value)
{
	bool ready;

	if (f == NULL)
		return false;
	rte_spinlock_lock(&f->lock);
	ready = f->ready;
	if (ready && value)
		*value = f->value;
	rte_spinlock_unlock(&f->lock);
	return ready;
}

int ebb_future_wait(struct ebb_future *f, intptr_t *value)
{
	struct ebb_core *c = ebb_self;
	struct ebb_event_context ctx = { 0 };
	struct ebb_waiter w = { 0 };
	struct ebb_stack *s;

	if (c == NULL || !c->in_event)
		return -EPERM;
	if (f == NULL)
		return -EINVAL;
	if (ebb_future_ready(f, value))
		return 0;
	/* Reserve the stack first: once the waiter is published the save
	 * must not fail. */
	s = ebb_stack_get(c);
	if (s == NULL)
		return -ENOMEM;
	w.ctx = &ctx;
	rte_spinlock_lock(&f->lock);
	if (f->ready) {
		rte_spinlock_unlock(&f->lock);
		ebb_stack_put(c, s);
		goto done;
	}
	*f->tail = &w;
	f->tail = &w.next;
	rte_spinlock_unlock(&f->lock);
	__ebb_event_save_context(&ctx, s);
done:
	/* Fulfilled: ready and value never change again. */
	if (value)
		*value = f->value;
	return 0;
}
