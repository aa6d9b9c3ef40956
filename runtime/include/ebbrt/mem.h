/* SPDX-License-Identifier: BSD-3-Clause */
/* Memory: the general-purpose, slab and page allocators, all on hugepages. */
#ifndef EBBRT_MEM_H
#define EBBRT_MEM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * GpAllocator: jemalloc with one arena per core whose extents come from
 * hugepage memory local to the core's NUMA node.
 *
 * ebb_malloc(): @size bytes from the calling core's arena (from a shared
 *   arena when the caller is not an ebbrt core). NULL with errno ENOMEM on
 *   failure; never aborts.
 * ebb_calloc(): the same, zeroed; NULL on overflow too.
 * ebb_free(): release @p (NULL is accepted) from any thread, whichever
 *   core allocated it. Returns 0; in debug builds (EBB_DEBUG) -EINVAL when
 *   @p is not live (double free) and nothing is freed.
 */
void *ebb_malloc(size_t size);
void *ebb_calloc(size_t n, size_t size);
int ebb_free(void *p);

/*
 * SlabAllocator: fixed-size objects on an rte_mempool with per-core
 * caches.
 *
 * ebb_slab_create(): a slab of @count objects of @size bytes named @name
 *   (unique per node), on the NUMA node of the calling core. NULL with
 *   errno EINVAL, EEXIST or ENOMEM.
 * ebb_slab_alloc(): an object, or NULL (errno ENOMEM) when all are in
 *   use. Any thread; cores use their cache.
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
