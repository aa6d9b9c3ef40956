/* SPDX-License-Identifier: BSD-3-Clause */
/* Tests of the GpAllocator, SlabAllocator and PageAllocator on real cores
 * (needs 2 MiB hugepages). */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jemalloc/jemalloc.h>
#include <numaif.h>
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

/* The socket of the DPDK hugepage behind @p, or -1 if @p is not in DPDK
 * memory (slab and page allocators). */
static int hugepage_socket(const void *p)
{
	const struct rte_memseg *ms = rte_mem_virt2memseg(p, NULL);

	return ms ? ms->socket_id : -1;
}

/* The page size in KiB (KernelPageSize in /proc/self/smaps) of the
 * mapping holding @p, or -1 if there is none. The GpAllocator maps its
 * hugepages itself, so DPDK does not know them. */
static long page_kib(const void *p)
{
	unsigned long addr = (unsigned long)(uintptr_t)p, lo, hi;
	char line[512];
	bool in = false;
	long kib = -1, k;
	FILE *f = fopen("/proc/self/smaps", "r");

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		/* Field lines ("Size: ...") never parse as "lo-hi". */
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {
			in = addr >= lo && addr < hi;
			continue;
		}
		if (in && sscanf(line, "KernelPageSize: %ld kB", &k) == 1) {
			kib = k;
			break;
		}
	}
	fclose(f);
	return kib;
}

/* The NUMA node of the page behind @p, or -1. */
static int page_node(const void *p)
{
	int node = -1;

	if (get_mempolicy(&node, NULL, 0, (void *)(uintptr_t)p,
			  MPOL_F_NODE | MPOL_F_ADDR) != 0)
		return -1;
	return node;
}

/* Plain malloc() is jemalloc's (linked by libebbrt) except under
 * AddressSanitizer, whose allocator takes the name. */
#ifdef __SANITIZE_ADDRESS__
#define PLAIN_IS_JEMALLOC 0
#else
#define PLAIN_IS_JEMALLOC 1
#endif

/* The jemalloc arena that owns @p, or -1. */
static inline int arena_of(const void *p)
{
	unsigned ind;
	size_t len = sizeof(ind);

	if (mallctl("arenas.lookup", &ind, &len, &p, sizeof(p)) != 0)
		return -1;
	return (int)ind;
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
};

static void place(void *arg)
{
	struct placement *pl = arg;

	pl->p = ebb_malloc(pl->size);
	/* Touch the whole block: every page of it must be a hugepage. */
	if (pl->p != NULL)
		memset(pl->p, 0x77, pl->size);
}

/* Every 2 MiB page of [@p, @p + @size) is a hugepage on @numa (-1: any);
 * names the first that is not. */
static void check_huge(const char *where, const void *p, size_t size,
		       int numa)
{
	uintptr_t a = (uintptr_t)p & ~(uintptr_t)((2u << 20) - 1);
	long kib;
	int node;

	for (; a < (uintptr_t)p + size; a += 2u << 20) {
		const void *q = a < (uintptr_t)p ? p : (const void *)a;

		kib = page_kib(q);
		cr_assert_eq(kib, 2048, "%s: %zu B at %p: %p on %ld KiB pages",
			     where, size, p, q, kib);
		node = page_node(q);
		if (numa >= 0)
			cr_expect_eq(node, numa,
				     "%s: %zu B at %p: %p on node %d, not %d",
				     where, size, p, q, node, numa);
	}
}

Test(alloc, gp_memory_is_hugepages_on_core_numa)
{
	static const size_t sizes[] = { 8, 64, 4096, 100000, 1 << 20,
					16 << 20, 80 << 20 };
	struct placement pl;
	unsigned c, i;
	char where[64];
	void *libc;
	long kib;

	for (c = 0; c < 2; c++) {
		int numa = ebb_core_numa(c);

		for (i = 0; i < RTE_DIM(sizes); i++) {
			pl.size = sizes[i];
			call(c, place, &pl);
			cr_assert_not_null(pl.p, "core %u: %zu B", c, sizes[i]);
			snprintf(where, sizeof(where), "core %u (node %d)", c,
				 numa);
			check_huge(where, pl.p, pl.size, numa);
			cr_assert_eq(ebb_free(pl.p), 0);
		}
	}
	/* Off the cores the shared arena is on hugepages too... */
	pl.size = 64;
	place(&pl);
	cr_assert_not_null(pl.p);
	check_huge("main thread", pl.p, pl.size, -1);
	cr_assert_eq(ebb_free(pl.p), 0);
	/* ...while plain malloc there is not, so the check means something. */
	libc = malloc(64);
	cr_assert_not_null(libc);
	kib = page_kib(libc);
	cr_assert_eq(kib, 4, "main thread: malloc() gave %ld KiB pages", kib);
	free(libc);
}

/* Under AddressSanitizer plain malloc() is ASan's allocator, not
 * jemalloc's, so what this test checks does not exist in that build. */
#ifndef __SANITIZE_ADDRESS__
/* What a core's allocations look like: ebb_malloc(), and plain malloc()
 * small and large (beyond jemalloc's tcache). */
struct core_arena {
	void *ebb, *plain, *plain_big;
	int a_ebb, a_plain, a_plain_big;
};

#define PLAIN_BIG (200u << 10)

static void core_arena_probe(void *arg)
{
	struct core_arena *ca = arg;

	ca->ebb = ebb_malloc(64);
	ca->plain = malloc(64);
	ca->plain_big = malloc(PLAIN_BIG);
	ca->a_ebb = ca->ebb ? arena_of(ca->ebb) : -2;
	ca->a_plain = ca->plain ? arena_of(ca->plain) : -2;
	ca->a_plain_big = ca->plain_big ? arena_of(ca->plain_big) : -2;
}

/* A core thread is bound to its arena: plain malloc() there (libc's,
 * DPDK's, the application's) shares the core's hugepage arena with
 * ebb_malloc(); each core has its own; threads that are not cores keep
 * jemalloc's ordinary arenas for malloc() and a shared one for
 * ebb_malloc(). */
Test(alloc, gp_core_plain_malloc_shares_core_arena)
{
	struct core_arena ca[2];
	void *other, *libc;
	int a_other, a_libc;
	unsigned c;
	char where[64];
	long kib;

	for (c = 0; c < 2; c++) {
		memset(&ca[c], 0, sizeof(ca[c]));
		call(c, core_arena_probe, &ca[c]);
		cr_assert_not_null(ca[c].ebb, "core %u: ebb_malloc", c);
		cr_assert_not_null(ca[c].plain, "core %u: malloc", c);
		cr_assert_not_null(ca[c].plain_big, "core %u: malloc big", c);
		cr_assert_geq(ca[c].a_ebb, 0, "core %u: arenas.lookup", c);
		cr_assert_eq(ca[c].a_plain, ca[c].a_ebb,
			     "core %u: malloc() in arena %d, ebb_malloc() in %d",
			     c, ca[c].a_plain, ca[c].a_ebb);
		cr_assert_eq(ca[c].a_plain_big, ca[c].a_ebb,
			     "core %u: malloc(%u) in arena %d, ebb_malloc() "
			     "in %d", c, PLAIN_BIG, ca[c].a_plain_big,
			     ca[c].a_ebb);
		snprintf(where, sizeof(where), "core %u ebb_malloc", c);
		check_huge(where, ca[c].ebb, 64, ebb_core_numa(c));
		snprintf(where, sizeof(where), "core %u malloc", c);
		check_huge(where, ca[c].plain, 64, ebb_core_numa(c));
		check_huge(where, ca[c].plain_big, PLAIN_BIG,
			   ebb_core_numa(c));
	}
	cr_assert_neq(ca[0].a_ebb, ca[1].a_ebb, "cores 0 and 1 share arena %d",
		      ca[0].a_ebb);

	other = ebb_malloc(64);
	libc = malloc(64);
	cr_assert_not_null(other);
	cr_assert_not_null(libc);
	a_other = arena_of(other);
	a_libc = arena_of(libc);
	cr_assert(a_other >= 0 && a_other != ca[0].a_ebb &&
		  a_other != ca[1].a_ebb,
		  "main thread: ebb_malloc() in arena %d (cores: %d, %d)",
		  a_other, ca[0].a_ebb, ca[1].a_ebb);
	cr_assert(a_libc >= 0 && a_libc != a_other && a_libc != ca[0].a_ebb &&
		  a_libc != ca[1].a_ebb,
		  "main thread: malloc() in arena %d (ebb: %d, %d, %d)",
		  a_libc, a_other, ca[0].a_ebb, ca[1].a_ebb);
	kib = page_kib(libc);
	cr_assert_eq(kib, 4, "main thread: malloc() gave %ld KiB pages", kib);
	free(libc);
	cr_assert_eq(ebb_free(other), 0);
	/* Blocks of either kind are freed from any thread. */
	for (c = 0; c < 2; c++) {
		cr_assert_eq(ebb_free(ca[c].ebb), 0);
		free(ca[c].plain);
		free(ca[c].plain_big);
	}
}
#endif /* __SANITIZE_ADDRESS__ */

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

/* Sizes the compiler cannot see, or it warns about the calls it inlines
 * (mem.h) that are wrong on purpose here. */
static volatile size_t half_plus_one = SIZE_MAX / 2 + 1;

static void alloc_too_big(void *arg)
{
	struct too_big *t = arg;

	errno = 0;
	t->mul_overflow = ebb_calloc(half_plus_one, 2);
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

/* --- GpAllocator across ebb_fini() ----------------------------------- */

/* Objects that cores leave behind for after ebb_fini(): libc's (a stdio
 * stream and its buffer, stdout's buffer if a core prints first) and
 * ours. */
struct leftovers {
	unsigned core;
	FILE *mem;
	char *membuf;
	size_t memlen;
	void *plain, *ebb;
};

#define LEFTOVER_SIZE 3000

static void leave_objects(void *arg)
{
	struct leftovers *l = arg;

	l->mem = open_memstream(&l->membuf, &l->memlen);
	if (l->mem != NULL) {
		fprintf(l->mem, "core %u;", l->core);
		fflush(l->mem);
	}
	l->plain = malloc(LEFTOVER_SIZE);
	if (l->plain != NULL)
		memset(l->plain, 0x5c, LEFTOVER_SIZE);
	l->ebb = ebb_malloc(LEFTOVER_SIZE);
	if (l->ebb != NULL)
		memset(l->ebb, 0xc5, LEFTOVER_SIZE);
	printf("test_alloc: core %u prints before ebb_fini()\n", l->core);
}

static bool all_bytes(const void *p, int byte, size_t n)
{
	const uint8_t *b = p;
	size_t i;

	for (i = 0; i < n; i++)
		if (b[i] != (uint8_t)byte)
			return false;
	return true;
}

TestSuite(alloc_fini, .timeout = 60);

/* ebb_fini() unmaps DPDK's hugepages; what cores allocated with malloc()
 * or ebb_malloc() is not there and stays usable until exit. */
Test(alloc_fini, core_objects_outlive_ebb_fini)
{
	struct leftovers l[2];
	char want[32];
	unsigned c;
	void *p;
	long kib;

	ebbt_start("0-1");
	for (c = 0; c < 2; c++) {
		memset(&l[c], 0, sizeof(l[c]));
		l[c].core = c;
		call(c, leave_objects, &l[c]);
		cr_assert_not_null(l[c].mem, "core %u: open_memstream", c);
		cr_assert_not_null(l[c].plain, "core %u: malloc", c);
		cr_assert_not_null(l[c].ebb, "core %u: ebb_malloc", c);
		/* They are where the old design lost them. */
		kib = page_kib(l[c].mem);
		cr_assert(!PLAIN_IS_JEMALLOC || kib == 2048,
			  "core %u: FILE on %ld KiB pages", c, kib);
		kib = page_kib(l[c].plain);
		cr_assert(!PLAIN_IS_JEMALLOC || kib == 2048,
			  "core %u: malloc() on %ld KiB pages", c, kib);
	}
	ebbt_stop();

	for (c = 0; c < 2; c++) {
		kib = page_kib(l[c].plain);
		cr_assert(!PLAIN_IS_JEMALLOC || kib == 2048,
			  "core %u: malloc() block at %p on %ld KiB pages "
			  "after ebb_fini()", c, l[c].plain, kib);
		cr_assert(all_bytes(l[c].plain, 0x5c, LEFTOVER_SIZE),
			  "core %u: malloc() block changed", c);
		cr_assert(all_bytes(l[c].ebb, 0xc5, LEFTOVER_SIZE),
			  "core %u: ebb_malloc() block changed", c);
		/* Growing the stream reallocs its buffer off the core. */
		for (unsigned i = 0; i < 1000; i++)
			fputs("after fini;", l[c].mem);
		cr_assert_eq(fclose(l[c].mem), 0);
		snprintf(want, sizeof(want), "core %u;after fini;", c);
		cr_assert_eq(strncmp(l[c].membuf, want, strlen(want)), 0,
			     "core %u: stream holds '%.40s'", c, l[c].membuf);
		cr_assert_eq(l[c].memlen, strlen(want) - 11 + 11000,
			     "core %u: stream of %zu B", c, l[c].memlen);
		free(l[c].membuf);
		free(l[c].plain);
		cr_assert_eq(ebb_free(l[c].ebb), 0);
	}
	cr_assert_eq(fflush(stdout), 0);
	/* The shared arena still serves threads that are not cores. */
	p = ebb_malloc(100000);
	cr_assert_not_null(p, "ebb_malloc() after ebb_fini()");
	memset(p, 1, 100000);
	kib = page_kib(p);
	cr_assert_eq(kib, 2048, "ebb_malloc() after ebb_fini(): %ld KiB pages",
		     kib);
	cr_assert_eq(ebb_free(p), 0);
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
	/* Hidden from the compiler, which sees the inline free() (mem.h). */
	uint8_t *volatile foreign = not_ours + 32;
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
	d->foreign = ebb_free(foreign);
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
