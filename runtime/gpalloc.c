/* SPDX-License-Identifier: BSD-3-Clause */
/* GpAllocator: jemalloc with one arena per core, each core thread bound to
 * its arena, whose extents come from 2 MiB hugepages we map ourselves on
 * the core's NUMA node. */
#include <errno.h>
#include <numaif.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <jemalloc/jemalloc.h>
#include <rte_common.h>

#include <ebbrt/mem.h>

#include "defs.h"

#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB (21 << MAP_HUGE_SHIFT)
#endif

#define GP_PAGE 4096u
#define GP_HUGE (2u << 20)
/* An arena maps chunks of hugepages and carves extents out of them. The
 * first chunk holds jemalloc's first metadata block and first extent
 * (2 MiB each); chunks then double up to GP_CHUNK_MAX, so an idle arena
 * holds little of the machine's hugepage pool. */
#define GP_CHUNK_MIN (4u << 20)
#define GP_CHUNK_MAX (32u << 20)
/* Mappings one arena can make (chunks and large requests): 32 GiB and
 * more once chunks have grown. */
#define GP_MAX_SPANS 1024
/* NUMA nodes mbind() can name here. */
#define GP_MAX_NUMA 1024

/*
 * Why the arenas never go away: once a core thread is bound to its arena,
 * every malloc() on it lands there, libc's (stdio buffers, the thread's
 * locale, ...) and DPDK's included, and those objects are freed whenever
 * their owner pleases, at process exit at the latest. So arenas and
 * their mappings live until the process exits; ebb_fini() leaves them.
 * DPDK never saw these mappings, so rte_eal_cleanup() cannot unmap them.
 *
 * Extent hooks:
 * - alloc: carve from the arena's current chunk, or map a new one;
 *   requests larger than a chunk get their own mapping. Memory is never
 *   handed out twice, so it is always zeroed and committed.
 * - split: bookkeeping only (jemalloc's), so it succeeds.
 * - merge: bookkeeping only, but refused unless both extents are
 *   contiguous inside one mapping, so no extent ever spans two.
 * - dalloc, decommit, purge_lazy, purge_forced: opted out (NULL).
 *   jemalloc then keeps the extents "retained" and reuses them, zeroing
 *   itself when asked for zeroed memory. Purging would give hugetlb pages
 *   back to the pool, and touching them again could find none (SIGBUS).
 * - commit: never needed, nothing is ever decommitted.
 * - destroy: never called, arenas are never destroyed.
 */

/* One mapping of an arena: [base, end). */
struct gp_span {
	uintptr_t base, end;
};

/* One arena and the hooks it was created with (jemalloc keeps a pointer
 * to the hooks, so they live here for the arena's lifetime). */
struct gp_arena {
	extent_hooks_t hooks;	/* the hooks find their arena by it */
	unsigned ind;
	int numa;		/* -1: no placement */
	bool created;
	/* Hooks run on any thread that allocates or frees in the arena. */
	pthread_mutex_t lock;
	uintptr_t cur, end;	/* rest of the current chunk */
	size_t next_chunk;
	unsigned nspans;
	struct gp_span span[GP_MAX_SPANS];	/* sorted by base */
} __rte_cache_aligned;

static struct gp_arena gp_core[EBB_MAX_CORES];
static struct gp_arena gp_shared;

/* mallocx flags of threads that are not cores: the shared arena, and no
 * tcache, whose bins would mix the shared arena's objects into the
 * thread's plain malloc(). Only MALLOCX_TCACHE_NONE before ebb_gp_init().
 * Written once by the main thread in init, read by any thread:
 * release/acquire so a reader that sees the arena index also sees the
 * arena created. */
static _Atomic int gp_other_flags = MALLOCX_TCACHE_NONE;

/* Whether the calling thread is a core bound to its arena: then plain
 * malloc()/free() serve it from its arena, on jemalloc's fast path. */
static __thread bool gp_bound __attribute__((tls_model("initial-exec")));
/* The same in release builds, for the inline calls of mem.h; debug builds
 * leave it clear so that every call comes to the checks below. */
__thread bool ebb_gp_fast __attribute__((tls_model("initial-exec")));

/* One fallback warning per process. */
static atomic_flag gp_warned = ATOMIC_FLAG_INIT;

static __ebb_cold void gp_warn_fallback(void)
{
	static const char msg[] =
		"ebbrt: out of 2 MiB hugepages, GpAllocator falls back to "
		"4 KiB pages; reserve more with scripts/setup.sh\n";

	/* Relaxed: the flag only picks the one thread that prints. */
	if (atomic_flag_test_and_set_explicit(&gp_warned,
					      memory_order_relaxed))
		return;
	/* write(), not stdio: this runs inside jemalloc, whose locks a
	 * thread holding the stderr lock may be waiting for. */
	if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0)
		return;
}

/* @len bytes at an address aligned to @align (a power of two), in pages
 * of @unit bytes (@len and @align multiples of it); NULL on failure. */
static void *gp_mmap_aligned(size_t len, size_t align, size_t unit,
			     int flags)
{
	size_t extra = align > unit ? align - unit : 0;
	uintptr_t raw, p;
	void *m;

	if (len > SIZE_MAX - extra)
		return NULL;
	m = mmap(NULL, len + extra, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | flags, -1, 0);
	if (m == MAP_FAILED)
		return NULL;
	raw = (uintptr_t)m;
	p = RTE_ALIGN_CEIL(raw, (uintptr_t)align);
	if (p > raw)
		munmap(m, p - raw);
	if (raw + extra > p)
		munmap((void *)(p + len), raw + extra - p);
	return (void *)p;
}

/* Prefer NUMA node @numa for [@p, @p + @len). Preferred, not bound: with
 * MPOL_BIND a hugetlb fault on a node without free hugepages is SIGBUS. */
static void gp_place(void *p, size_t len, int numa)
{
	unsigned long mask[GP_MAX_NUMA / (8 * sizeof(unsigned long))];

	if (numa < 0 || numa >= GP_MAX_NUMA)
		return;
	memset(mask, 0, sizeof(mask));
	mask[(unsigned)numa / (8 * sizeof(long))] =
		1ul << ((unsigned)numa % (8 * sizeof(long)));
	/* Best effort: without NUMA support the memory works anyway. */
	(void)mbind(p, len, MPOL_PREFERRED, mask, GP_MAX_NUMA + 1, 0);
}

/*
 * A fresh mapping of @len bytes (a multiple of 2 MiB) aligned to @align
 * (at least 2 MiB) for an arena on @numa: hugepages, faulted in now so
 * that running out shows here (a hugetlb fault that finds no page is
 * SIGBUS) and not on some core's data path later; 4 KiB pages when no
 * hugepages are left. NULL when neither can be had.
 */
static void *gp_map(size_t len, size_t align, int numa)
{
	void *p;

	p = gp_mmap_aligned(len, align, GP_HUGE, MAP_HUGETLB | MAP_HUGE_2MB);
	if (p != NULL) {
		gp_place(p, len, numa);
		/* EINVAL: a kernel before 5.14, pages come on first touch. */
		if (madvise(p, len, MADV_POPULATE_WRITE) == 0 ||
		    errno == EINVAL)
			return p;
		munmap(p, len);
	}
	p = gp_mmap_aligned(len, align, GP_PAGE, 0);
	if (p == NULL)
		return NULL;
	gp_place(p, len, numa);
	gp_warn_fallback();
	return p;
}

/* Index of the span of @a containing @addr, or -1. Lock held. */
static int gp_span_find(const struct gp_arena *a, uintptr_t addr)
{
	unsigned lo = 0, hi = a->nspans;

	/* The last span whose base is <= addr. */
	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;

		if (a->span[mid].base <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0 || addr >= a->span[lo - 1].end)
		return -1;
	return (int)lo - 1;
}

/* Map @len bytes aligned to @align for @a and record the span; 0 on
 * failure. Lock held. */
static uintptr_t gp_span_map(struct gp_arena *a, size_t len, size_t align)
{
	uintptr_t p;
	unsigned i;

	if (a->nspans == GP_MAX_SPANS)
		return 0;
	p = (uintptr_t)gp_map(len, align, a->numa);
	if (p == 0)
		return 0;
	for (i = a->nspans; i > 0 && a->span[i - 1].base > p; i--)
		a->span[i] = a->span[i - 1];
	a->span[i].base = p;
	a->span[i].end = p + len;
	a->nspans++;
	return p;
}

static void *gp_extent_alloc(extent_hooks_t *hooks, void *new_addr,
			     size_t size, size_t alignment, bool *zero,
			     bool *commit, unsigned arena_ind)
{
	struct gp_arena *a = container_of(hooks, struct gp_arena, hooks);
	uintptr_t p = 0;
	size_t len;

	RTE_SET_USED(arena_ind);
	/* We pick the addresses; with opt.retain (Linux's default) jemalloc
	 * never asks for one. */
	if (new_addr != NULL || size == 0 || size > SIZE_MAX - GP_HUGE)
		return NULL;
	pthread_mutex_lock(&a->lock);
	if (a->cur != 0) {
		p = RTE_ALIGN_CEIL(a->cur, (uintptr_t)alignment);
		if (p < a->cur || p > a->end || a->end - p < size)
			p = 0;
		else
			a->cur = p + size;
	}
	if (p == 0 && (size > a->next_chunk || alignment > GP_HUGE)) {
		/* A mapping of its own; the current chunk stays. */
		len = RTE_ALIGN_CEIL(size, (size_t)GP_HUGE);
		p = gp_span_map(a, len, RTE_MAX(alignment, (size_t)GP_HUGE));
	} else if (p == 0) {
		/* A new chunk (its 2 MiB alignment covers @alignment); the
		 * rest of the old one is left unused. */
		len = a->next_chunk;
		p = gp_span_map(a, len, GP_HUGE);
		if (p != 0) {
			a->cur = p + size;
			a->end = p + len;
			a->next_chunk = RTE_MIN(2 * len, (size_t)GP_CHUNK_MAX);
		}
	}
	pthread_mutex_unlock(&a->lock);
	if (p == 0)
		return NULL;
	/* Fresh from mmap and never handed out before. */
	*zero = true;
	*commit = true;
	return (void *)p;
}

static bool gp_extent_split(extent_hooks_t *hooks, void *addr, size_t size,
			    size_t size_a, size_t size_b, bool committed,
			    unsigned arena_ind)
{
	RTE_SET_USED(hooks);
	RTE_SET_USED(addr);
	RTE_SET_USED(size);
	RTE_SET_USED(size_a);
	RTE_SET_USED(size_b);
	RTE_SET_USED(committed);
	RTE_SET_USED(arena_ind);
	return false;
}

/* true refuses: jemalloc then keeps the two extents apart. */
static bool gp_extent_merge(extent_hooks_t *hooks, void *addr_a,
			    size_t size_a, void *addr_b, size_t size_b,
			    bool committed, unsigned arena_ind)
{
	struct gp_arena *a = container_of(hooks, struct gp_arena, hooks);
	uintptr_t lo = (uintptr_t)addr_a;
	int s;
	bool refuse;

	RTE_SET_USED(committed);
	RTE_SET_USED(arena_ind);
	if (lo + size_a != (uintptr_t)addr_b)
		return true;
	pthread_mutex_lock(&a->lock);
	s = gp_span_find(a, lo);
	refuse = s < 0 || (uintptr_t)addr_b + size_b > a->span[s].end;
	pthread_mutex_unlock(&a->lock);
	return refuse;
}

static const extent_hooks_t gp_hooks = {
	.alloc = gp_extent_alloc,
	.dalloc = NULL,
	.destroy = NULL,
	.commit = NULL,
	.decommit = NULL,
	.purge_lazy = NULL,
	.purge_forced = NULL,
	.split = gp_extent_split,
	.merge = gp_extent_merge,
};

static int gp_arena_ctl(unsigned ind, const char *what, void *val,
			size_t len)
{
	char name[64];

	snprintf(name, sizeof(name), "arena.%u.%s", ind, what);
	return -mallctl(name, NULL, NULL, val, len);
}

/* Create @a's arena, its memory preferably on NUMA node @numa (-1: any).
 * Main thread in ebb_gp_init(), or the core itself. */
static __ebb_cold int gp_arena_create(struct gp_arena *a, int numa)
{
	extent_hooks_t *hooks = &a->hooks;
	size_t len = sizeof(a->ind);
	/* Purging cannot give memory back (the hooks opt out), so decay
	 * would be pure overhead. */
	ssize_t never = -1;
	/* Hugepages are one pool shared by every core: an arena must not
	 * reserve far ahead of its use. */
	size_t grow = GP_CHUNK_MAX;
	int rc;

	a->hooks = gp_hooks;
	a->numa = numa;
	a->cur = a->end = 0;
	a->next_chunk = GP_CHUNK_MIN;
	a->nspans = 0;
	pthread_mutex_init(&a->lock, NULL);
	/* Runs the alloc hook for jemalloc's metadata. */
	rc = -mallctl("arenas.create", &a->ind, &len, &hooks, sizeof(hooks));
	if (rc)
		goto fail;
	a->created = true;
	rc = gp_arena_ctl(a->ind, "dirty_decay_ms", &never, sizeof(never));
	if (!rc)
		rc = gp_arena_ctl(a->ind, "muzzy_decay_ms", &never,
				  sizeof(never));
	/* ENOENT: jemalloc runs without opt.retain and asks for no more
	 * than it needs. */
	if (!rc)
		rc = gp_arena_ctl(a->ind, "retain_grow_limit", &grow,
				  sizeof(grow));
	if (rc == -ENOENT)
		rc = 0;
	if (rc)
		goto fail;
	return 0;
fail:
	/* A created arena stays: nothing can destroy it safely. */
	fprintf(stderr, "ebbrt gp: arena for NUMA node %d: %s\n", numa,
		strerror(-rc));
	return rc;
}

__ebb_cold int ebb_gp_init(void)
{
	bool xmalloc = false;
	size_t len = sizeof(xmalloc);
	unsigned i;
	int rc;

	/* With opt.xmalloc jemalloc aborts on failure instead of returning
	 * NULL, which breaks our contract (MALLOC_CONF can turn it on). */
	if (mallctl("opt.xmalloc", &xmalloc, &len, NULL, 0) == 0 && xmalloc) {
		fprintf(stderr,
			"ebbrt gp: jemalloc runs with opt.xmalloc, refusing\n");
		return -EINVAL;
	}
	if (!gp_shared.created) {
		rc = gp_arena_create(&gp_shared, -1);
		if (rc)
			return rc;
	}
	for (i = 0; i < ebb_node.ncores && i < EBB_MAX_CORES; i++) {
		if (gp_core[i].created)
			continue;
		rc = gp_arena_create(&gp_core[i], ebb_node.core[i] ?
				     ebb_node.core[i]->numa : -1);
		if (rc)
			return rc;
	}
	/* Pairs with the acquire load in gp_alloc_other(). */
	atomic_store_explicit(&gp_other_flags,
			      (int)MALLOCX_ARENA(gp_shared.ind) |
			      MALLOCX_TCACHE_NONE,
			      memory_order_release);
	return 0;
}

/* Nothing to do: the arenas, their memory and every block in it stay
 * until the process exits (see the head of this file), and ebb_malloc()
 * and ebb_free() keep working. The core threads have exited, which
 * flushed their tcaches back into the arenas. */
__ebb_cold void ebb_gp_fini(void)
{
}

__ebb_cold int ebb_gp_core_init(struct ebb_core *c)
{
	struct gp_arena *a;
	int rc;

	if (c == NULL || c->id >= EBB_MAX_CORES)
		return -EINVAL;
	a = &gp_core[c->id];
	if (!a->created) {
		rc = gp_arena_create(a, c->numa);
		if (rc)
			return rc;
	}
	rc = -mallctl("thread.arena", NULL, NULL, &a->ind, sizeof(a->ind));
	if (rc) {
		fprintf(stderr, "ebbrt gp: core %u: thread.arena %u: %s\n",
			c->id, a->ind, strerror(-rc));
		return rc;
	}
	/* The tcache may hold blocks the thread freed before it was bound
	 * (jemalloc's own arenas); they would go out as ebb_malloc()s.
	 * EFAULT: the tcache is off (opt.tcache), nothing to flush. */
	mallctl("thread.tcache.flush", NULL, NULL, NULL, 0);
	gp_bound = true;
#if !defined(EBB_DEBUG) && !defined(__SANITIZE_ADDRESS__)
	/* The inline malloc()/free() of mem.h would be ASan's there. */
	ebb_gp_fast = true;
#endif
	return 0;
}

/*
 * On a core, jemalloc's malloc()/calloc()/free() on the thread's arena.
 * Under AddressSanitizer those names are ASan's own allocator, so reach
 * jemalloc through its API instead (mallocx and dallocx are not
 * intercepted).
 */
#ifdef __SANITIZE_ADDRESS__
static inline void *core_malloc(size_t size)
{
	void *p = mallocx(size ? size : 1, 0);

	if (p == NULL)
		errno = ENOMEM;
	return p;
}

static inline void *core_calloc(size_t n, size_t size)
{
	size_t total;
	void *p;

	if (__builtin_mul_overflow(n, size, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	p = mallocx(total ? total : 1, MALLOCX_ZERO);
	if (p == NULL)
		errno = ENOMEM;
	return p;
}

static inline void core_free(void *p)
{
	if (p != NULL)
		dallocx(p, 0);
}
#else
#define core_malloc malloc
#define core_calloc calloc
#define core_free free
#endif

/* Threads that are not cores: the shared arena without tcache. @zero: 0
 * or MALLOCX_ZERO. */
static void *gp_alloc_other(size_t size, int zero)
{
	int flags = atomic_load_explicit(&gp_other_flags,
					 memory_order_acquire);
	void *p;

	/* mallocx(0) is undefined; malloc(0) gives a unique pointer. */
	p = mallocx(size ? size : 1, flags | zero);
	if (unlikely(p == NULL))
		errno = ENOMEM;
	return p;
}

static inline void gp_free(void *p)
{
	/* A core's tcache takes blocks of any arena: a flush returns each to
	 * its own. Other threads hand them straight back. */
	if (gp_bound)
		core_free(p);
	else if (p != NULL)
		dallocx(p, MALLOCX_TCACHE_NONE);
}

#ifndef EBB_DEBUG

/* Behind the inline calls of mem.h: here the caller is not a core (on a
 * core jemalloc's malloc()/calloc()/free() served it, which set errno and
 * check calloc's overflow themselves). */

void *__ebb_malloc(size_t size)
{
	if (gp_bound)
		return core_malloc(size);
	return gp_alloc_other(size, 0);
}

void *__ebb_calloc(size_t n, size_t size)
{
	size_t total;

	if (gp_bound)
		return core_calloc(n, size);
	if (__builtin_mul_overflow(n, size, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	return gp_alloc_other(total, MALLOCX_ZERO);
}

int __ebb_free(void *p)
{
	gp_free(p);
	return 0;
}

#else /* EBB_DEBUG */

/*
 * Debug builds put a header before each block whose state word flips from
 * live to freed exactly once, so a second free (or a pointer we never
 * handed out) is caught before jemalloc sees it. 16 bytes keep the
 * 16-byte alignment malloc promises.
 */
struct gp_hdr {
	_Atomic uint64_t state;
	uint64_t size;
};

#define GP_LIVE 0xebb0a110c11fe001ull
#define GP_FREED 0xebb0a110deadf4eeull

static void *gp_debug_alloc(size_t size, bool zero)
{
	struct gp_hdr *h;

	if (size > SIZE_MAX - sizeof(*h)) {
		errno = ENOMEM;
		return NULL;
	}
	if (gp_bound)
		h = zero ? core_calloc(1, size + sizeof(*h)) :
			   core_malloc(size + sizeof(*h));
	else
		h = gp_alloc_other(size + sizeof(*h), zero ? MALLOCX_ZERO : 0);
	if (h == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	h->size = size;
	/* Relaxed: whoever frees got the pointer through some
	 * synchronisation, which orders this store too. */
	atomic_store_explicit(&h->state, GP_LIVE, memory_order_relaxed);
	return h + 1;
}

void *__ebb_malloc(size_t size)
{
	return gp_debug_alloc(size, false);
}

void *__ebb_calloc(size_t n, size_t size)
{
	size_t total;

	if (__builtin_mul_overflow(n, size, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	return gp_debug_alloc(total, true);
}

int __ebb_free(void *p)
{
	struct gp_hdr *h;
	uint64_t live = GP_LIVE;

	if (p == NULL)
		return 0;
	h = (struct gp_hdr *)p - 1;
	/* The exchange is what makes one of two racing frees lose; it
	 * orders nothing else, so relaxed. */
	if (!atomic_compare_exchange_strong_explicit(&h->state, &live,
						     GP_FREED,
						     memory_order_relaxed,
						     memory_order_relaxed)) {
		fprintf(stderr, "ebbrt gp: ebb_free(%p): %s\n", p,
			live == GP_FREED ? "double free" : "not allocated");
		return -EINVAL;
	}
	gp_free(h);
	return 0;
}

#endif /* EBB_DEBUG */
