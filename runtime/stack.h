/* SPDX-License-Identifier: BSD-3-Clause */
/* Private: the per-core pool of event stacks. */
#ifndef EBBRT_STACK_H
#define EBBRT_STACK_H

#include <stdint.h>

#include "defs.h"

/* Map a new stack for @c, or NULL when none can be made. Owner core. */
struct ebb_stack *__ebb_stack_make(struct ebb_core *c);

/* A stack from @c's pool, or NULL when none can be made. Owner core. */
static inline struct ebb_stack *ebb_stack_get(struct ebb_core *c)
{
	struct ebb_stack *s = c->stack_free;

	if (likely(s != NULL)) {
		c->stack_free = s->next;
		return s;
	}
	return __ebb_stack_make(c);
}

/* Give @s back to @c's pool. Owner core. */
static inline void ebb_stack_put(struct ebb_core *c, struct ebb_stack *s)
{
	s->next = c->stack_free;
	c->stack_free = s;
}

/* The initial stack pointer of @s: just below its header, 16-byte
 * aligned as the ABI wants at a call. */
static inline void *ebb_stack_top(struct ebb_stack *s)
{
	return (void *)((uintptr_t)s & ~(uintptr_t)15);
}

#endif
