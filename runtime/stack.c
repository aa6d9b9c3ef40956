/* SPDX-License-Identifier: BSD-3-Clause */
/* Per-core pool of event stacks, each with a guard page below it. */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "defs.h"
#include "stack.h"

/* Bound on stacks per core: every blocked event holds one. */
#define EBB_MAX_STACKS 4096u
#define EBB_GUARD_SIZE 4096u

struct ebb_stack *__ebb_stack_make(struct ebb_core *c)
{
	struct ebb_stack *s;
	void *base;
	size_t len = EBB_STACK_SIZE + EBB_GUARD_SIZE;

	if (c->stacks_made >= EBB_MAX_STACKS)
		return NULL;
	base = mmap(NULL, len, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK,
		    -1, 0);
	if (base == MAP_FAILED)
		return NULL;
	/* Overflow hits the guard page and faults instead of corrupting the
	 * neighbouring stack. */
	if (mprotect(base, EBB_GUARD_SIZE, PROT_NONE) != 0) {
		munmap(base, len);
		return NULL;
	}
	/* The header lives at the top of its own stack. */
	s = (struct ebb_stack *)((char *)base + len) - 1;
	s->base = base;
	s->len = len;
	s->next = NULL;
	s->all_next = c->stack_all;
	c->stack_all = s;
	c->stacks_made++;
	return s;
}

void ebb_stack_core_fini(struct ebb_core *c)
{
	struct ebb_stack *s = c->stack_all, *next;

	while (s != NULL) {
		next = s->all_next;
		munmap(s->base, s->len);
		s = next;
	}
	c->stack_all = NULL;
	c->stack_free = NULL;
	c->stacks_made = 0;
}
