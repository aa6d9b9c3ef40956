/* SPDX-License-Identifier: BSD-3-Clause */
/* GpAllocator: jemalloc with one arena per core whose extents are carved
 * from DPDK hugepage memory on the core's NUMA node. */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

#include <jemalloc/jemalloc.h>
#include <rte_common.h>
#include <rte_lcore.h>
#include <rte_log.h>
#include <rte_malloc.h>
#include <rte_memory.h>
#include <rte_spinlock.h>

#include <ebbrt/mem.h>

#include "defs.h"

/*
 * Extent hooks. jemalloc asks for extents (2 MiB and up, growing
 * geometrically) and then splits, merges, purges and tries to give them
 * back. Each extent we hand out is one rte_malloc block, and a block can
 * only be returned to DPDK whole, so:
 * - alloc: rte_malloc on the arena's socket; hugepages are always
 *   committed.
 * - split, merge: bookkeeping only (jemalloc's), so they succeed. Two
 *   blocks are never adjacent (DPDK's element header and our tail record
 *   sit between them), so a merge only ever rejoins pieces of one block.
 * - dalloc, decommit, purge_lazy, purge_forced: opted out (NULL). A piece
 *   cannot go back to DPDK, and purging a hugetlb page would hand it back
 *   to the kernel behind DPDK's back (and the next touch may SIGBUS).
 *   jemalloc then keeps the extents as "retained" and reuses them; it
 *   knows they are not zeroed and zeroes itself when asked to.
 * - commit: never needed, nothing is ever decommitted.
 * - destroy: nothing per extent; ebb_gp_fini() frees whole blocks after
 *   the arena is destroyed.
 */

/* Appended to every block so fini can find the blocks again, whatever
 * jemalloc did to the extents inside them. */
struct gp_block {
	struct gp_block *next;
	void *base;
};

/* One arena and the hooks it was created with (jemalloc keeps a pointer
 * to the hooks, so they live here for the arena's lifetime). */
struct gp_arena {
	extent_hooks_t hooks;	/* the hooks find their arena by it */
	int socket;
	unsigned ind;
	bool created;
	unsigned tcache;	/* cores: explicit tcache of the core thread */
	bool has_tcache;
	rte_spinlock_t lock;	/* blocks; the shared arena allocates from
				 * many threads */
	struct gp_block *blocks;
} __rte_cache_aligned;

static struct gp_arena gp_core[EBB_MAX_CORES];
static struct gp_arena gp_shared;

/* mallocx flags of threads that are not cores: the shared arena, and no
 * tcache, so no thread outside the cores ever caches pointers into arenas
 * that ebb_gp_fini() destroys. 0 (jemalloc's own arenas) outside
 * ebb_gp_init()..ebb_gp_fini(). Written by the main thread in init/fini,
 * read by any thread: release/acquire so a reader that sees an arena index
 * also sees the arena created. */
static _Atomic int gp_other_flags;

/*
 * mallocx/dallocx flags of the calling core: its arena and its own
 * explicit tcache; 0 on other threads. The core thread itself is not
 * bound to the arena (thread.arena): then every malloc() on it, libc's
 * stdio buffers and DPDK's included, would land in hugepage memory that
 * ebb_gp_fini() destroys while those objects still live. And the
 * automatic tcache is not used because its bins are shared with plain
 * malloc(), which would hand ebb_malloc() memory from jemalloc's own
 * arenas.
 */
static __thread int gp_alloc_flags __attribute__((tls_model("initial-exec")));
static __thread int gp_free_flags __attribute__((tls_model("initial-exec")));

/* Largest step by which an arena grows its reservation: hugepages are one
 * pool shared by every core, so a core must not reserve far ahead of its
 * use; larger requests still get what they need. */
#define GP_GROW_LIMIT (32u << 20)

static void *gp_extent_alloc(extent_hooks_t *hooks, void *new_addr,
			     size_t size, size_t alignment, bool *zero,
			     bool *commit, unsigned arena_ind)
{
	struct gp_arena *a = container_of(hooks, struct gp_arena, hooks);
	struct gp_block *b;
	size_t len;
	void *p;

	RTE_SET_USED(arena_ind);
	/* DPDK picks the address; an extent cannot be placed where jemalloc
	 * wants to grow a large allocation in place. */
	if (new_addr != NULL)
		return NULL;
	if (size > SIZE_MAX - sizeof(*b))
		return NULL;
	len = size + sizeof(*b);
	if (*zero)
		p = rte_zmalloc_socket(NULL, len, alignment, a->socket);
	else
		p = rte_malloc_socket(NULL, len, alignment, a->socket);
	if (p == NULL)
		return NULL;
	/* size is a multiple of the page size, so the record is aligned. */
	b = RTE_PTR_ADD(p, size);
	b->base = p;
	rte_spinlock_lock(&a->lock);
	b->next = a->blocks;
	a->blocks = b;
	rte_spinlock_unlock(&a->lock);
	*commit = true;
	return p;
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

static bool gp_extent_merge(extent_hooks_t *hooks, void *addr_a,
			    size_t size_a, void *addr_b, size_t size_b,
			    bool committed, unsigned arena_ind)
{
	RTE_SET_USED(hooks);
	RTE_SET_USED(addr_a);
	RTE_SET_USED(size_a);
	RTE_SET_USED(addr_b);
	RTE_SET_USED(size_b);
	RTE_SET_USED(committed);
	RTE_SET_USED(arena_ind);
	return false;
}

static void gp_extent_destroy(extent_hooks_t *hooks, void *addr, size_t size,
			      bool committed, unsigned arena_ind)
{
	RTE_SET_USED(hooks);
	RTE_SET_USED(addr);
	RTE_SET_USED(size);
	RTE_SET_USED(committed);
	RTE_SET_USED(arena_ind);
}

static const extent_hooks_t gp_hooks = {
	.alloc = gp_extent_alloc,
	.dalloc = NULL,
	.destroy = gp_extent_destroy,
	.commit = NULL,
	.decommit = NULL,
	.purge_lazy = NULL,
	.purge_forced = NULL,
	.split = gp_extent_split,
	.merge = gp_extent_merge,
};

/* A DPDK socket for NUMA node @numa: the node itself if DPDK has memory
 * there, otherwise any. */
static int gp_socket_of(int numa)
{
	unsigned i;

	if (numa < 0)
		return SOCKET_ID_ANY;
	for (i = 0; i < rte_socket_count(); i++)
		if (rte_socket_id_by_idx(i) == numa)
			return numa;
	RTE_LOG(WARNING, USER1,
		"ebbrt gp: no DPDK memory on NUMA node %d, using any\n", numa);
	return SOCKET_ID_ANY;
}

static int gp_arena_ctl(unsigned ind, const char *what, void *val,
			size_t len)
{
	char name[64];

	snprintf(name, sizeof(name), "arena.%u.%s", ind, what);
	return -mallctl(name, NULL, NULL, val, len);
}

static __ebb_cold int gp_arena_create(struct gp_arena *a, int numa)
{
	extent_hooks_t *hooks = &a->hooks;
	size_t len = sizeof(a->ind);
	/* Kept hugepage memory costs the kernel nothing and purging cannot
	 * release it (the hooks opt out), so decay would be pure overhead. */
	ssize_t never = -1;
	size_t grow = GP_GROW_LIMIT;
	int rc;

	a->hooks = gp_hooks;
	a->socket = gp_socket_of(numa);
	a->blocks = NULL;
	rte_spinlock_init(&a->lock);
	rc = -mallctl("arenas.create", &a->ind, &len, &hooks, sizeof(hooks));
	if (rc)
		goto fail;
	a->created = true;
	rc = gp_arena_ctl(a->ind, "dirty_decay_ms", &never, sizeof(never));
	if (!rc)
		rc = gp_arena_ctl(a->ind, "muzzy_decay_ms", &never,
				  sizeof(never));
	if (!rc)
		rc = gp_arena_ctl(a->ind, "retain_grow_limit", &grow,
				  sizeof(grow));
	if (rc)
		goto fail;
	return 0;
fail:
	RTE_LOG(ERR, USER1, "ebbrt gp: arena for node %d: %s\n", numa,
		strerror(-rc));
	return rc;
}

/* Destroy @a's arena and give its blocks back to DPDK. No thread may be
 * bound to it any more, and no tcache may hold its pointers. */
static __ebb_cold void gp_arena_destroy(struct gp_arena *a)
{
	struct gp_block *b, *next;
	int rc;

	if (!a->created)
		return;
	rc = gp_arena_ctl(a->ind, "destroy", NULL, 0);
	if (rc) {
		/* jemalloc still owns the memory (a core thread is still
		 * bound, most likely): leaking it is the only safe choice. */
		RTE_LOG(ERR, USER1,
			"ebbrt gp: arena %u not destroyed (%s), memory leaked\n",
			a->ind, strerror(-rc));
		a->created = false;
		return;
	}
	for (b = a->blocks; b != NULL; b = next) {
		next = b->next;
		rte_free(b->base);
	}
	a->blocks = NULL;
	a->created = false;
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
		RTE_LOG(ERR, USER1,
			"ebbrt gp: jemalloc runs with opt.xmalloc, refusing\n");
		return -EINVAL;
	}
	rc = gp_arena_create(&gp_shared, -1);
	if (rc)
		goto fail;
	for (i = 0; i < ebb_node.ncores && i < EBB_MAX_CORES; i++) {
		rc = gp_arena_create(&gp_core[i], ebb_node.core[i] ?
				     ebb_node.core[i]->numa : -1);
		if (rc)
			goto fail;
	}
	/* Pairs with the acquire load in gp_alloc_other(). */
	atomic_store_explicit(&gp_other_flags,
			      MALLOCX_ARENA(gp_shared.ind) |
			      MALLOCX_TCACHE_NONE,
			      memory_order_release);
	return 0;
fail:
	for (i = 0; i < EBB_MAX_CORES; i++)
		gp_arena_destroy(&gp_core[i]);
	gp_arena_destroy(&gp_shared);
	return rc;
}

__ebb_cold void ebb_gp_fini(void)
{
	unsigned i;

	atomic_store_explicit(&gp_other_flags, 0, memory_order_release);
	/* The core threads have exited, so their explicit tcaches are ours
	 * to flush; they hold objects of any arena, so all of them go before
	 * the first arena. */
	for (i = 0; i < EBB_MAX_CORES; i++) {
		if (!gp_core[i].has_tcache)
			continue;
		mallctl("tcache.destroy", NULL, NULL, &gp_core[i].tcache,
			sizeof(gp_core[i].tcache));
		gp_core[i].has_tcache = false;
	}
	/* In case the caller released our memory with plain free(). */
	mallctl("thread.tcache.flush", NULL, NULL, NULL, 0);
	for (i = 0; i < EBB_MAX_CORES; i++)
		gp_arena_destroy(&gp_core[i]);
	gp_arena_destroy(&gp_shared);
}

__ebb_cold int ebb_gp_core_init(struct ebb_core *c)
{
	struct gp_arena *a;
	size_t len;
	int rc;

	if (c == NULL || c->id >= EBB_MAX_CORES)
		return -EINVAL;
	a = &gp_core[c->id];
	if (!a->created) {
		rc = gp_arena_create(a, c->numa);
		if (rc)
			return rc;
	}
	/* A core started again (ebb_start() after ebb_wait()) keeps its
	 * tcache: it is used by one thread at a time. */
	if (!a->has_tcache) {
		len = sizeof(a->tcache);
		rc = -mallctl("tcache.create", &a->tcache, &len, NULL, 0);
		if (rc) {
			RTE_LOG(ERR, USER1,
				"ebbrt gp: core %u: tcache.create: %s\n",
				c->id, strerror(-rc));
			return rc;
		}
		a->has_tcache = true;
	}
	gp_alloc_flags = MALLOCX_ARENA(a->ind) | MALLOCX_TCACHE(a->tcache);
	gp_free_flags = MALLOCX_TCACHE(a->tcache);
	return 0;
}

/* Threads that are not cores: the shared arena without tcache. */
static __attribute__((noinline)) void *gp_alloc_other(size_t size, int zero)
{
	int flags = atomic_load_explicit(&gp_other_flags,
					 memory_order_acquire);

	return mallocx(size, flags | zero);
}

/* @zero: 0 or MALLOCX_ZERO. */
static inline void *gp_alloc(size_t size, int zero)
{
	int flags = gp_alloc_flags;

	/* mallocx(0) is undefined; malloc(0) gives a unique pointer. */
	if (unlikely(size == 0))
		size = 1;
	if (likely(flags != 0))
		return mallocx(size, flags | zero);
	return gp_alloc_other(size, zero);
}

static inline void gp_free(void *p)
{
	int flags = gp_free_flags;

	/* Any arena's object may go into this core's tcache: a flush
	 * returns each to its own arena. */
	dallocx(p, flags ? flags : MALLOCX_TCACHE_NONE);
}

#ifndef EBB_DEBUG

void *ebb_malloc(size_t size)
{
	void *p = gp_alloc(size, 0);

	if (unlikely(p == NULL))
		errno = ENOMEM;
	return p;
}

void *ebb_calloc(size_t n, size_t size)
{
	size_t total;
	void *p;

	if (unlikely(__builtin_mul_overflow(n, size, &total))) {
		errno = ENOMEM;
		return NULL;
	}
	p = gp_alloc(total, MALLOCX_ZERO);
	if (unlikely(p == NULL))
		errno = ENOMEM;
	return p;
}

int ebb_free(void *p)
{
	if (p != NULL)
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
	h = gp_alloc(size + sizeof(*h), zero ? MALLOCX_ZERO : 0);
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

void *ebb_malloc(size_t size)
{
	return gp_debug_alloc(size, false);
}

void *ebb_calloc(size_t n, size_t size)
{
	size_t total;

	if (__builtin_mul_overflow(n, size, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	return gp_debug_alloc(total, true);
}

int ebb_free(void *p)
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
		RTE_LOG(ERR, USER1, "ebbrt gp: ebb_free(%p): %s\n", p,
			live == GP_FREED ? "double free" : "not allocated");
		return -EINVAL;
	}
	gp_free(h);
	return 0;
}

#endif /* EBB_DEBUG */
