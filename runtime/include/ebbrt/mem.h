/* SPDX-License-Identifier: BSD-3-Clause */
/* Memory: the general-purpose, slab and page allocators, all on hugepages. */
#ifndef EBBRT_MEM_H
#define EBBRT_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * GpAllocator: jemalloc with one arena per core whose extents come from
 * 2 MiB hugepages the allocator maps itself (not DPDK's), preferably on
 * the core's NUMA node; from 4 KiB pages, with one warning on stderr,
 * when no hugepages are left. Each core thread is bound to its arena, so
 * on a core plain malloc()/free() (libc's, DPDK's, the application's:
 * linking ebbrt makes jemalloc the process's malloc) use that arena too.
 * Arenas and their memory live until the process exits: ebb_fini() leaves
 * them, so blocks stay valid, and ebb_malloc()/ebb_free() keep working,
 * after it. A block freed on a core may be handed out again by that core
 * (jemalloc's thread cache) whichever arena it came from.
 *
 * ebb_malloc(): @size bytes from the calling core's arena (from a shared
 *   arena when the caller is not an ebbrt core; from jemalloc's own before
 *   ebb_init()). NULL with errno ENOMEM on failure; never aborts.
 * ebb_calloc(): the same, zeroed; NULL on overflow too.
 * ebb_free(): release @p (NULL is accepted) from any thread, whichever
 *   core allocated it. Returns 0; in debug builds of the library
 *   (EBB_DEBUG) -EINVAL when @p is not live (double free) and nothing is
 *   freed.
 *
 * On a core, in a release build of the library, the calls are jemalloc's
 * malloc()/calloc()/free() inline. The library's build decides, not the
 * caller's EBB_DEBUG: ebb_gp_fast is set only on cores of a release
 * build, and the __ebb_ calls do the rest. Neither is for applications.
 */
extern __thread bool ebb_gp_fast __attribute__((tls_model("initial-exec")));
void *__ebb_malloc(size_t size);
void *__ebb_calloc(size_t n, size_t size);
int __ebb_free(void *p);

static inline void *ebb_malloc(size_t size)
{
	if (__builtin_expect(ebb_gp_fast, 1))
		return malloc(size);
	return __ebb_malloc(size);
}

static inline void *ebb_calloc(size_t n, size_t size)
{
	if (__builtin_expect(ebb_gp_fast, 1))
		return calloc(n, size);
	return __ebb_calloc(n, size);
}

static inline int ebb_free(void *p)
{
	if (__builtin_expect(ebb_gp_fast, 1)) {
		free(p);
		return 0;
	}
	return __ebb_free(p);
}

/*
 * SlabAllocator: fixed-size objects on an rte_mempool with per-core
 * caches.
 *
 * ebb_slab_create(): a slab of @count objects of @size bytes named @name
 *   (unique per node), on the NUMA node of the calling core. NULL with
 *   errno EINVAL, EEXIST or ENOMEM. In a cluster the pool's DPDK name is
 *   "s<node>.<name>", so @name has 4 to 6 characters less room there
 *   (RTE_MEMPOOL_NAMESIZE in all).
 * ebb_slab_alloc(): an object, or NULL (errno ENOMEM) when none is free
 *   to the caller: all in use, or the free ones sit in other cores'
 *   caches (each cache holds at most about a fifth of the slab). Any
 *   thread; cores use their cache.
 * ebb_slab_free(): return @obj; any thread. 0, or -EINVAL in debug builds
 *   when @obj is not a live object of @slab.
 * ebb_slab_in_use(): objects currently allocated (for leak checks).
 * ebb_slab_destroy(): accepts NULL; every object must be free.
 */
struct ebb_slab;
struct ebb_slab *ebb_slab_create(const char *name, size_t size,
				 unsigned count);
void *ebb_slab_alloc(struct ebb_slab *slab);
int ebb_slab_free(struct ebb_slab *slab, void *obj);
unsigned ebb_slab_in_use(const struct ebb_slab *slab);
void ebb_slab_destroy(struct ebb_slab *slab);

/*
 * PageAllocator: page-aligned blocks of hugepage memory (DPDK heap).
 *
 * ebb_page_alloc(): @size bytes rounded up to 4 KiB, aligned to 4 KiB, on
 *   NUMA node @numa (-1: the calling core's node). NULL with errno ENOMEM
 *   or EINVAL.
 * ebb_page_free(): accepts NULL.
 */
#define EBB_PAGE_SIZE 4096u
void *ebb_page_alloc(size_t size, int numa);
void ebb_page_free(void *p);

#ifdef __cplusplus
}
#endif
#endif
