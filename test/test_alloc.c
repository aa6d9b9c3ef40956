/* SPDX-License-Identifier: BSD-3-Clause */
/* Tests of the GpAllocator, SlabAllocator and PageAllocator on real cores
 * (needs 2 MiB hugepages). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_common.h>
#include <rte_malloc.h>
#include <rte_memory.h>

#include "harness.h"

static void start(void)
{
	ebbt_start("0-1");
}

static void stop(void)
{
	ebbt_stop();
}

TestSuite(alloc, .init = start, .fini = stop, .timeout = 60);

static void call(unsigned core, void (*fn)(void *), void *arg)
{
	int rc = ebbt_call(core, fn, arg);

	cr_assert_eq(rc, 0, "ebbt_call(core %u): %s", core, strerror(-rc));
}

/* The socket of the hugepage behind @p, or -1 if @p is not in DPDK
 * memory. */
static int hugepage_socket(const void *p)
{
	const struct rte_memseg *ms = rte_mem_virt2memseg(p, NULL);

	return ms ? ms->socket_id : -1;
}

/* --- GpAllocator ------------------------------------------------------ */

#define XFER_N 540

struct xfer {
	void *p[XFER_N];
	size_t size[XFER_N];
	unsigned nulls;		/* allocations that failed */
	unsigned bad;		/* objects whose contents changed */
	unsigned first_bad;
	unsigned free_err;	/* ebb_free() != 0 */
};

/* 8 B, 16 B, ... 1 MiB, every other one a few bytes short of the power
 * of two. */
static size_t xfer_size(unsigned i)
{
	size_t size = (size_t)8 << (i % 18);

	return i % 2 ? size - i % 7 : size;
}

static uint8_t xfer_byte(unsigned i, size_t j)
{
	return (uint8_t)(i * 31u + j * 7u + 1u);
}

static void xfer_alloc(void *arg)
{
	struct xfer *x = arg;
	unsigned i;
	size_t j;

	for (i = 0; i < XFER_N; i++) {
		x->size[i] = xfer_size(i);
		x->p[i] = ebb_malloc(x->size[i]);
		if (x->p[i] == NULL) {
			x->nulls++;
			continue;
		}
		for (j = 0; j < x->size[i]; j++)
			((uint8_t *)x->p[i])[j] = xfer_byte(i, j);
	}
}

static void xfer_check(struct xfer *x)
{
	unsigned i;
	size_t j;

	for (i = 0; i < XFER_N; i++) {
		if (x->p[i] == NULL)
			continue;
		for (j = 0; j < x->size[i]; j++)
			if (((uint8_t *)x->p[i])[j] != xfer_byte(i, j))
				break;
		if (j < x->size[i] && x->bad++ == 0)
			x->first_bad = i;
	}
}

static void xfer_check_free(void *arg)
{
	struct xfer *x = arg;
	unsigned i;

	xfer_check(x);
	for (i = 0; i < XFER_N; i++)
		if (ebb_free(x->p[i]) != 0)
			x->free_err++;
}

Test(alloc, gp_malloc_on_core0_free_on_core1)
{
	static struct xfer x;
	unsigned round;

	/* Twice: the second round runs on memory the first one freed
	 * (across cores) and sees it intact. */
	for (round = 0; round < 2; round++) {
		memset(&x, 0, sizeof(x));
		call(0, xfer_alloc, &x);
		cr_assert_eq(x.nulls, 0, "round %u: %u allocations failed",
			     round, x.nulls);
		call(1, xfer_check_free, &x);
		cr_assert_eq(x.bad, 0,
			     "round %u: %u objects corrupted, first #%u (%zu B)",
			     round, x.bad, x.first_bad, x.size[x.first_bad]);
		cr_assert_eq(x.free_err, 0, "round %u: %u frees failed", round,
			     x.free_err);
	}
}

Test(alloc, gp_malloc_on_core_free_off_core)
{
	static struct xfer x;
	unsigned i;

	call(0, xfer_alloc, &x);
	cr_assert_eq(x.nulls, 0, "%u allocations failed", x.nulls);
	/* The test's main thread is not a core. */
	xfer_check(&x);
	cr_assert_eq(x.bad, 0, "%u objects corrupted, first #%u", x.bad,
		     x.first_bad);
	for (i = 0; i < XFER_N; i++)
		cr_assert_eq(ebb_free(x.p[i]), 0, "ebb_free(#%u)", i);
	cr_assert_eq(ebb_free(NULL), 0);
}

struct placement {
	size_t size;
	void *p;
	int socket;
};

static void place(void *arg)
{
	struct placement *pl = arg;

	pl->p = ebb_malloc(pl->size);
	pl->socket = pl->p ? hugepage_socket(pl->p) : -2;
}

Test(alloc, gp_memory_is_hugepages_on_core_numa)
{
	static const size_t sizes[] = { 8, 64, 4096, 100000, 1 << 20,
					16 << 20 };
	struct placement pl;
	unsigned c, i;
	void *libc;

	for (c = 0; c < 2; c++) {
		int numa = ebb_core_numa(c);

		for (i = 0; i < RTE_DIM(sizes); i++) {
			pl.size = sizes[i];
			call(c, place, &pl);
			cr_assert_not_null(pl.p, "core %u: %zu B", c, sizes[i]);
			cr_assert_geq(pl.socket, 0,
				      "core %u: %zu B at %p not in hugepages",
				      c, sizes[i], pl.p);
			if (numa >= 0)
				cr_expect_eq(pl.socket, numa,
					     "core %u (node %d): %zu B on node %d",
					     c, numa, sizes[i], pl.socket);
			cr_assert_eq(ebb_free(pl.p), 0);
		}
	}
	/* Off the cores the shared arena is on hugepages too... */
	pl.size = 64;
	place(&pl);
	cr_assert_geq(pl.socket, 0, "main thread: %p not in hugepages", pl.p);
	cr_assert_eq(ebb_free(pl.p), 0);
	/* ...while plain malloc is not, so the check above means something. */
	libc = malloc(64);
	cr_assert_not_null(libc);
	cr_assert_eq(hugepage_socket(libc), -1, "malloc() gave hugepages");
	free(libc);
}

#define DIRTY_N 64

struct zero_check {
	size_t size;
	unsigned nonzero;	/* calloc'd blocks with a non-zero byte */
	unsigned nulls;
};

static void calloc_after_dirty(void *arg)
{
	struct zero_check *z = arg;
	void *p[DIRTY_N];
	unsigned i;
	size_t j;

	/* Fill blocks of this size with garbage and free them, so calloc
	 * is likely to get exactly that memory back. */
	for (i = 0; i < DIRTY_N; i++) {
		p[i] = ebb_malloc(z->size);
		if (p[i] == NULL) {
			z->nulls++;
			continue;
		}
		memset(p[i], 0xa5, z->size);
	}
	for (i = 0; i < DIRTY_N; i++)
		ebb_free(p[i]);
	for (i = 0; i < DIRTY_N; i++) {
		p[i] = ebb_calloc(z->size / 8, 8);
		if (p[i] == NULL) {
			z->nulls++;
			continue;
		}
		for (j = 0; j < z->size; j++)
			if (((uint8_t *)p[i])[j] != 0)
				break;
		if (j < z->size)
			z->nonzero++;
	}
	for (i = 0; i < DIRTY_N; i++)
		ebb_free(p[i]);
}

Test(alloc, gp_calloc_zeroes)
{
	static const size_t sizes[] = { 16, 64, 1024, 4096, 65536, 1 << 20 };
	struct zero_check z;
	unsigned i;

	for (i = 0; i < RTE_DIM(sizes); i++) {
		memset(&z, 0, sizeof(z));
		z.size = sizes[i];
		call(0, calloc_after_dirty, &z);
		cr_assert_eq(z.nulls, 0, "%zu B: %u failed", z.size, z.nulls);
		cr_assert_eq(z.nonzero, 0, "%zu B: %u of %u not zeroed",
			     z.size, z.nonzero, DIRTY_N);
	}
}

struct too_big {
	void *mul_overflow, *huge, *huge_calloc, *after;
	int err_mul_overflow, err_huge, err_huge_calloc;
};

static void alloc_too_big(void *arg)
{
	struct too_big *t = arg;

	errno = 0;
	t->mul_overflow = ebb_calloc(SIZE_MAX / 2 + 1, 2);
	t->err_mul_overflow = errno;
	errno = 0;
	t->huge = ebb_malloc((size_t)1 << 40);
	t->err_huge = errno;
	errno = 0;
	t->huge_calloc = ebb_calloc((size_t)1 << 20, (size_t)1 << 20);
	t->err_huge_calloc = errno;
	/* The allocator still works after refusing. */
	t->after = ebb_malloc(64);
}

static void check_too_big(const char *where, struct too_big *t)
{
	cr_assert_null(t->mul_overflow, "%s: calloc overflow gave %p", where,
		       t->mul_overflow);
	cr_assert_eq(t->err_mul_overflow, ENOMEM, "%s: calloc overflow: %s",
		     where, strerror(t->err_mul_overflow));
	cr_assert_null(t->huge, "%s: 1 TiB gave %p", where, t->huge);
	cr_assert_eq(t->err_huge, ENOMEM, "%s: 1 TiB: %s", where,
		     strerror(t->err_huge));
	cr_assert_null(t->huge_calloc, "%s: 1 TiB calloc gave %p", where,
		       t->huge_calloc);
	cr_assert_eq(t->err_huge_calloc, ENOMEM, "%s: 1 TiB calloc: %s",
		     where, strerror(t->err_huge_calloc));
	cr_assert_not_null(t->after, "%s: 64 B after the failures", where);
	cr_assert_eq(ebb_free(t->after), 0);
}

Test(alloc, gp_too_big_is_enomem_not_abort)
{
	struct too_big t;

	memset(&t, 0, sizeof(t));
	call(0, alloc_too_big, &t);
	check_too_big("core 0", &t);
	memset(&t, 0, sizeof(t));
	alloc_too_big(&t);
	check_too_big("main thread", &t);
}

/* --- SlabAllocator ---------------------------------------------------- */

#define SLAB_N 1000
#define SLAB_SIZE 200

struct slab_run {
	struct ebb_slab *slab;
	int create_err;
	void *obj[2 * SLAB_N];
	unsigned n;		/* allocated before the first NULL */
	int err_at_end;
	unsigned in_use_full, in_use_empty;
	unsigned overlap;	/* objects whose pattern was overwritten */
	unsigned free_err;
	int socket;
	unsigned count;		/* objects to take (cross-core test) */
};

static void slab_create_here(void *arg)
{
	struct slab_run *s = arg;

	errno = 0;
	s->slab = ebb_slab_create("t_alloc_slab", SLAB_SIZE, SLAB_N);
	s->create_err = errno;
}

static void slab_exhaust(void *arg)
{
	struct slab_run *s = arg;
	unsigned i;

	for (s->n = 0; s->n < 2 * SLAB_N; s->n++) {
		errno = 0;
		s->obj[s->n] = ebb_slab_alloc(s->slab);
		if (s->obj[s->n] == NULL)
			break;
		memset(s->obj[s->n], (int)(s->n & 0xff), SLAB_SIZE);
	}
	s->err_at_end = errno;
	s->in_use_full = ebb_slab_in_use(s->slab);
	s->socket = s->n ? hugepage_socket(s->obj[0]) : -2;
	/* Overlapping objects would have overwritten each other. */
	for (i = 0; i < s->n; i++) {
		const uint8_t *o = s->obj[i];

		if (o[0] != (i & 0xff) || o[SLAB_SIZE - 1] != (i & 0xff))
			s->overlap++;
	}
	for (i = 0; i < s->n; i++)
		if (ebb_slab_free(s->slab, s->obj[i]) != 0)
			s->free_err++;
	s->in_use_empty = ebb_slab_in_use(s->slab);
}

Test(alloc, slab_exhaustion_then_free_all)
{
	struct slab_run *s = calloc(1, sizeof(*s));
	unsigned round;
	int numa = ebb_core_numa(0);

	cr_assert_not_null(s);
	call(0, slab_create_here, s);
	cr_assert_not_null(s->slab, "create: %s", strerror(s->create_err));
	/* Twice: after a full drain every object is allocatable again. */
	for (round = 0; round < 2; round++) {
		s->overlap = s->free_err = 0;
		call(0, slab_exhaust, s);
		cr_assert_eq(s->n, SLAB_N, "round %u: %u objects before NULL",
			     round, s->n);
		cr_assert_eq(s->err_at_end, ENOMEM, "round %u: errno %s",
			     round, strerror(s->err_at_end));
		cr_assert_eq(s->in_use_full, SLAB_N, "round %u: in_use %u",
			     round, s->in_use_full);
		cr_assert_eq(s->overlap, 0, "round %u: %u objects overlap",
			     round, s->overlap);
		cr_assert_eq(s->free_err, 0, "round %u: %u frees failed",
			     round, s->free_err);
		cr_assert_eq(s->in_use_empty, 0, "round %u: in_use %u after",
			     round, s->in_use_empty);
	}
	cr_assert_geq(s->socket, 0, "slab objects not in hugepages");
	if (numa >= 0)
		cr_expect_eq(s->socket, numa, "slab of core 0 (node %d) on %d",
			     numa, s->socket);
	ebb_slab_destroy(s->slab);
	free(s);
}

static void slab_take(void *arg)
{
	struct slab_run *s = arg;
	unsigned i;

	for (s->n = 0; s->n < s->count; s->n++) {
		s->obj[s->n] = ebb_slab_alloc(s->slab);
		if (s->obj[s->n] == NULL)
			break;
		memset(s->obj[s->n], 0x3c, SLAB_SIZE);
	}
	s->in_use_full = ebb_slab_in_use(s->slab);
	for (i = 0; i < s->n; i++)
		((uint8_t *)s->obj[i])[0] = (uint8_t)i;
}

static void slab_give_back(void *arg)
{
	struct slab_run *s = arg;
	unsigned i;

	for (i = 0; i < s->n; i++) {
		if (((uint8_t *)s->obj[i])[0] != (uint8_t)i)
			s->overlap++;
		if (ebb_slab_free(s->slab, s->obj[i]) != 0)
			s->free_err++;
	}
	s->in_use_empty = ebb_slab_in_use(s->slab);
}

Test(alloc, slab_free_on_other_core)
{
	struct slab_run *s = calloc(1, sizeof(*s));
	struct ebb_slab *dup;

	cr_assert_not_null(s);
	call(0, slab_create_here, s);
	cr_assert_not_null(s->slab, "create: %s", strerror(s->create_err));
	errno = 0;
	dup = ebb_slab_create("t_alloc_slab", SLAB_SIZE, SLAB_N);
	cr_assert_null(dup, "a second slab with the same name");
	cr_assert_eq(errno, EEXIST, "same name: %s", strerror(errno));

	s->count = SLAB_N / 2;
	call(0, slab_take, s);
	cr_assert_eq(s->n, SLAB_N / 2, "core 0 got %u", s->n);
	cr_assert_eq(s->in_use_full, SLAB_N / 2, "in_use %u", s->in_use_full);
	cr_assert_eq(ebb_slab_in_use(s->slab), SLAB_N / 2);
	call(1, slab_give_back, s);
	cr_assert_eq(s->overlap, 0, "%u objects overlap", s->overlap);
	cr_assert_eq(s->free_err, 0, "%u frees on core 1 failed", s->free_err);
	cr_assert_eq(s->in_use_empty, 0, "in_use %u after core 1 freed all",
		     s->in_use_empty);

	/* And from the main thread, which is not an lcore. */
	call(0, slab_take, s);
	cr_assert_eq(s->n, SLAB_N / 2);
	slab_give_back(s);
	cr_assert_eq(s->free_err, 0, "%u frees off core failed", s->free_err);
	cr_assert_eq(s->in_use_empty, 0, "in_use %u", s->in_use_empty);
	ebb_slab_destroy(s->slab);
	ebb_slab_destroy(NULL);
	free(s);
}

Test(alloc, slab_create_rejects_bad_arguments)
{
	errno = 0;
	cr_assert_null(ebb_slab_create(NULL, 64, 10));
	cr_assert_eq(errno, EINVAL);
	errno = 0;
	cr_assert_null(ebb_slab_create("t_zero_size", 0, 10));
	cr_assert_eq(errno, EINVAL);
	errno = 0;
	cr_assert_null(ebb_slab_create("t_zero_count", 64, 0));
	cr_assert_eq(errno, EINVAL);
	errno = 0;
	cr_assert_null(ebb_slab_create(
		"t_a_name_far_too_long_for_an_rte_mempool_name", 64, 10));
	cr_assert_eq(errno, EINVAL);
}

/* --- PageAllocator ---------------------------------------------------- */

struct page_run {
	size_t size;
	int numa;
	void *p;
	int err;
	int socket;
	size_t usable;
};

static void page_alloc_here(void *arg)
{
	struct page_run *r = arg;

	errno = 0;
	r->p = ebb_page_alloc(r->size, r->numa);
	r->err = errno;
	if (r->p == NULL)
		return;
	r->socket = hugepage_socket(r->p);
	if (rte_malloc_validate(r->p, &r->usable) != 0)
		r->usable = 0;
	/* The whole rounded-up size is ours to write. */
	memset(r->p, 0x5a, RTE_ALIGN_CEIL(r->size, EBB_PAGE_SIZE));
}

static void check_pages(const char *where, struct page_run *r, int numa)
{
	size_t rounded = RTE_ALIGN_CEIL(r->size, EBB_PAGE_SIZE);

	cr_assert_not_null(r->p, "%s: %zu B: %s", where, r->size,
			   strerror(r->err));
	cr_assert_eq((uintptr_t)r->p % EBB_PAGE_SIZE, 0,
		     "%s: %zu B at %p not page aligned", where, r->size, r->p);
	cr_assert_geq(r->socket, 0, "%s: %p not in hugepages", where, r->p);
	if (numa >= 0)
		cr_assert_eq(r->socket, numa, "%s: %zu B on node %d, not %d",
			     where, r->size, r->socket, numa);
	cr_assert_geq(r->usable, rounded, "%s: %zu B: block of %zu < %zu",
		      where, r->size, r->usable, rounded);
	ebb_page_free(r->p);
}

Test(alloc, page_alloc_aligned_on_node)
{
	static const size_t sizes[] = { 1, 4095, 4096, 4097, 1 << 20,
					(3 << 20) + 5 };
	struct page_run r;
	unsigned i;
	int numa0 = ebb_core_numa(0);
	char where[64];

	for (i = 0; i < RTE_DIM(sizes); i++) {
		memset(&r, 0, sizeof(r));
		r.size = sizes[i];
		r.numa = -1;
		call(0, page_alloc_here, &r);
		check_pages("core 0, node -1", &r, numa0);

		memset(&r, 0, sizeof(r));
		r.size = sizes[i];
		r.numa = -1;
		page_alloc_here(&r);
		check_pages("main, node -1", &r, -1);

		if (numa0 >= 0) {
			memset(&r, 0, sizeof(r));
			r.size = sizes[i];
			r.numa = numa0;
			page_alloc_here(&r);
			snprintf(where, sizeof(where), "main, node %d", numa0);
			check_pages(where, &r, numa0);
		}
	}
	ebb_page_free(NULL);
}

Test(alloc, page_alloc_rejects_bad_arguments)
{
	errno = 0;
	cr_assert_null(ebb_page_alloc(0, -1));
	cr_assert_eq(errno, EINVAL);
	errno = 0;
	cr_assert_null(ebb_page_alloc(4096, 9999));
	cr_assert_eq(errno, EINVAL);
	errno = 0;
	cr_assert_null(ebb_page_alloc(4096, -2));
	cr_assert_eq(errno, EINVAL);
	errno = 0;
	cr_assert_null(ebb_page_alloc(SIZE_MAX - 10, -1));
	cr_assert_eq(errno, ENOMEM);
	errno = 0;
	cr_assert_null(ebb_page_alloc((size_t)1 << 40, -1));
	cr_assert_eq(errno, ENOMEM);
}

/* --- Debug checks ----------------------------------------------------- */

#ifdef EBB_DEBUG

struct double_free {
	int first, second, calloc_second, foreign;
};

static void gp_double_free_here(void *arg)
{
	struct double_free *d = arg;
	static _Alignas(16) uint8_t not_ours[64];
	void *p = ebb_malloc(64);
	void *q = ebb_calloc(4, 16);

	if (p == NULL || q == NULL) {
		d->first = -ENOMEM;
		return;
	}
	d->first = ebb_free(p);
	d->second = ebb_free(p);
	ebb_free(q);
	d->calloc_second = ebb_free(q);
	d->foreign = ebb_free(not_ours + 32);
}

static void check_double_free(const char *where, struct double_free *d)
{
	cr_assert_eq(d->first, 0, "%s: first free: %d", where, d->first);
	cr_assert_eq(d->second, -EINVAL, "%s: second free: %d", where,
		     d->second);
	cr_assert_eq(d->calloc_second, -EINVAL, "%s: calloc block: %d",
		     where, d->calloc_second);
	cr_assert_eq(d->foreign, -EINVAL, "%s: foreign pointer: %d", where,
		     d->foreign);
}

Test(alloc, gp_double_free_is_einval)
{
	struct double_free d;

	memset(&d, 0, sizeof(d));
	call(0, gp_double_free_here, &d);
	check_double_free("core 0", &d);
	memset(&d, 0, sizeof(d));
	gp_double_free_here(&d);
	check_double_free("main thread", &d);
}

struct slab_double_free {
	struct ebb_slab *a, *b;
	int first, second, other_slab, foreign;
	unsigned in_use_a, in_use_b;
};

static void slab_double_free_here(void *arg)
{
	struct slab_double_free *d = arg;
	uint8_t stack_obj[64];
	void *o = ebb_slab_alloc(d->a);
	void *ob = ebb_slab_alloc(d->b);

	if (o == NULL || ob == NULL) {
		d->first = -ENOMEM;
		return;
	}
	d->first = ebb_slab_free(d->a, o);
	d->second = ebb_slab_free(d->a, o);
	/* A live object, but of the other slab. */
	d->other_slab = ebb_slab_free(d->a, ob);
	d->foreign = ebb_slab_free(d->a, stack_obj + 16);
	d->in_use_a = ebb_slab_in_use(d->a);
	d->in_use_b = ebb_slab_in_use(d->b);
	ebb_slab_free(d->b, ob);
}

Test(alloc, slab_double_free_is_einval)
{
	struct slab_double_free d;

	memset(&d, 0, sizeof(d));
	d.a = ebb_slab_create("t_dfree_a", 64, 128);
	d.b = ebb_slab_create("t_dfree_b", 64, 128);
	cr_assert_not_null(d.a);
	cr_assert_not_null(d.b);
	call(0, slab_double_free_here, &d);
	cr_assert_eq(d.first, 0, "first free: %d", d.first);
	cr_assert_eq(d.second, -EINVAL, "second free: %d", d.second);
	cr_assert_eq(d.other_slab, -EINVAL, "other slab's object: %d",
		     d.other_slab);
	cr_assert_eq(d.foreign, -EINVAL, "stack pointer: %d", d.foreign);
	cr_assert_eq(d.in_use_a, 0, "slab a in use: %u", d.in_use_a);
	cr_assert_eq(d.in_use_b, 1, "slab b in use: %u", d.in_use_b);
	cr_assert_eq(ebb_slab_in_use(d.b), 0);
	ebb_slab_destroy(d.a);
	ebb_slab_destroy(d.b);
}

#endif /* EBB_DEBUG */
