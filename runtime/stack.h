/* SPDX-License-Identifier: BSD-3-Clause */
/* Private: the per-core pool of event stacks. */
#ifndef EBBRT_STACK_H
#define EBBRT_STACK_H

struct ebb_core;
struct ebb_stack;

/* A stack from @c's pool, or NULL when none can be made. Owner core. */
struct ebb_stack *ebb_stack_get(struct ebb_core *c);
/* Give @s back to @c's pool. Owner core. */
void ebb_stack_put(struct ebb_core *c, struct ebb_stack *s);
/* The initial stack pointer of @s. */
void *ebb_stack_top(struct ebb_stack *s);

#endif
