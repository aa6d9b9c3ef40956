/* SPDX-License-Identifier: BSD-3-Clause */
/* SlabAllocator: fixed-size objects on an rte_mempool with per-core
 * caches. */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include <rte_common.h>
#include <rte_errno.h>
#include <rte_log.h>
#include <rte_memzone.h>
#include <rte_mempool.h>

#include <ebbrt/mem.h>

#include "defs.h"

/*
 * struct ebb_slab is never defined: a slab is its rte_mempool, so the
 * fast path is the mempool call and nothing else.
 */
static inline struct rte_mempool *slab_mp(const struct ebb_slab *slab)
{
	return (struct rte_mempool *)(uintptr_t)slab;
}

/*
 * Objects one core's cache may hold, from DPDK's rule (at most n / 1.5)
 * and ours: objects parked in another core's cache are invisible to this
 * one, so all caches together keep at most about a fifth of the slab
 * (each holds up to 1.5 x its size before flushing).
 */
static unsigned slab_cache_size(unsigned count)
{
	unsigned ncores = ebb_node.ncores ? ebb_node.ncores : 1;
	unsigned cache = count / (8 * ncores);

	if (cache > 256)
		cache = 256;
	/* A handful of objects per core saves nothing on the ring. */
	return cache < 4 ? 0 : cache;
}

#ifdef EBB_DEBUG
/*
 * Debug builds put a state word before each object: the slab's address
 * xor LIVE or FREED, so a double free and a pointer from elsewhere (another
 * slab included) are both told apart from a live object. 16 bytes keep the
 * object 16-byte aligned.
 */
struct slab_hdr {
	_Atomic uintptr_t state;
	uintptr_t pad;
};
#define SLAB_HDR sizeof(struct slab_hdr)
#define SLAB_LIVE ((uintptr_t)0x5ab1a11c0000117eull)
#define SLAB_FREED ((uintptr_t)0x5ab1a11cdeadf4eeull)

static void slab_obj_init(struct rte_mempool *mp, void *arg, void *obj,
			  unsigned idx)
{
	struct slab_hdr *h = obj;

	RTE_SET_USED(arg);
	RTE_SET_USED(idx);
	atomic_init(&h->state, (uintptr_t)mp ^ SLAB_FREED);
}

/* Whether @obj lies inside @mp's memory, so reading its header is safe. */
static bool slab_owns(struct rte_mempool *mp, const void *obj)
{
	struct rte_mempool_memhdr *m;
	uintptr_t p = (uintptr_t)obj;

	STAILQ_FOREACH(m, &mp->mem_list, next)
		if (p >= (uintptr_t)m->addr + SLAB_HDR &&
		    p < (uintptr_t)m->addr + m->len)
			return true;
	return false;
}
#else
#define SLAB_HDR 0
#endif

/* The memzone holding a slab's objects: the pool's name + ".m". */
static void objects_mz_name(const char *pool, char *buf, size_t len)
{
	snprintf(buf, len, "%s.m", pool);
}

/*
 * rte_mempool_create() would record, in the pool, a pointer to the
 * function that frees its memory -- an address in the creating process.
 * A cluster node's pools may have to be freed by the frontend (the node
 * died), where that address means nothing. So the objects go in a memzone
 * of our own, given with no free callback, and freed by name.
 */
static struct rte_mempool *pool_in_memzone(const char *name, unsigned n,
					   unsigned elt, unsigned cache,
					   rte_mempool_obj_cb_t *init,
					   int socket)
{
	char mzname[RTE_MEMZONE_NAMESIZE];
	const struct rte_memzone *mz = NULL;
	struct rte_mempool_objsz osz;
	struct rte_mempool *mp;
	int err;

	mp = rte_mempool_create_empty(name, n, elt, cache, 0, socket, 0);
	if (mp == NULL)
		return NULL;
	err = rte_mempool_set_ops_byname(mp, "ring_mp_mc", NULL);
	if (err)
		goto fail;
	rte_mempool_calc_obj_size(elt, 0, &osz);
	objects_mz_name(name, mzname, sizeof(mzname));
	mz = rte_memzone_reserve_aligned(mzname,
					 (size_t)n * osz.total_size +
						 RTE_CACHE_LINE_SIZE,
					 socket, 0, RTE_CACHE_LINE_SIZE);
	if (mz == NULL) {
		err = -rte_errno;
		goto fail;
	}
	err = rte_mempool_populate_iova(mp, mz->addr, RTE_BAD_IOVA, mz->len,
					NULL, NULL);
	if (err < 0)
		goto fail;
	if ((unsigned)err < n) {
		err = -ENOMEM;
		goto fail;
	}
	if (init != NULL)
		rte_mempool_obj_iter(mp, init, NULL);
	return mp;
fail:
	rte_mempool_free(mp);
	rte_memzone_free(mz);
	rte_errno = err < 0 ? -err : err;
	return NULL;
}

void ebb_slab_free_pool(struct rte_mempool *mp)
{
	char mzname[RTE_MEMZONE_NAMESIZE];

	if (mp == NULL)
		return;
	objects_mz_name(mp->name, mzname, sizeof(mzname));
	rte_mempool_free(mp);
	rte_memzone_free(rte_memzone_lookup(mzname));
}

__ebb_cold struct ebb_slab *ebb_slab_create(const char *name, size_t size,
					    unsigned count)
{
	int socket = ebb_self ? ebb_self->numa : SOCKET_ID_ANY;
	rte_mempool_obj_cb_t *obj_init = NULL;
	char full[RTE_MEMPOOL_NAMESIZE];
	struct rte_mempool *mp;
	int err;

	if (name == NULL || size == 0 || count == 0 ||
	    size > UINT32_MAX - SLAB_HDR ||
	    strlen(name) >= RTE_MEMPOOL_NAMESIZE) {
		errno = EINVAL;
		return NULL;
	}
	/* Pool names are cluster-wide: a node's carry its id, so nodes
	 * running one app do not collide, and the frontend can free the
	 * pools of a node that died ("s<node>." prefix). */
	if (ebb_cluster != NULL) {
		if (snprintf(full, sizeof(full), EBB_SLAB_PREFIX_FMT "%s",
			     ebb_node.node_id, name) >= (int)sizeof(full)) {
			errno = EINVAL;
			return NULL;
		}
		name = full;
	}
#ifdef EBB_DEBUG
	obj_init = slab_obj_init;
#endif
	mp = pool_in_memzone(name, count, (unsigned)(size + SLAB_HDR),
			     slab_cache_size(count), obj_init, socket);
	if (mp == NULL) {
		err = rte_errno;
		switch (err) {
		case EEXIST:
		case EINVAL:
			errno = err;
			break;
		case ENAMETOOLONG:
			errno = EINVAL;
			break;
		default:
			errno = ENOMEM;
			break;
		}
		RTE_LOG(ERR, USER1, "ebbrt slab: create %s (%u x %zu): %s\n",
			name, count, size, rte_strerror(err));
		return NULL;
	}
	return (struct ebb_slab *)mp;
}

void *ebb_slab_alloc(struct ebb_slab *slab)
{
	void *obj;

#ifdef EBB_DEBUG
	if (slab == NULL) {
		errno = EINVAL;
		return NULL;
	}
#endif
	/* The calling lcore's cache first, then the shared ring; threads
	 * that are not lcores go to the ring. */
	if (unlikely(rte_mempool_get(slab_mp(slab), &obj) < 0)) {
		errno = ENOMEM;
		return NULL;
	}
#ifdef EBB_DEBUG
	{
		struct slab_hdr *h = obj;
		uintptr_t freed = (uintptr_t)slab ^ SLAB_FREED;

		/* Only ebb_slab_free() puts objects back, after marking
		 * them freed. */
		RTE_VERIFY(atomic_compare_exchange_strong_explicit(
			&h->state, &freed, (uintptr_t)slab ^ SLAB_LIVE,
			memory_order_relaxed, memory_order_relaxed));
		obj = RTE_PTR_ADD(obj, SLAB_HDR);
	}
#endif
	return obj;
}

int ebb_slab_free(struct ebb_slab *slab, void *obj)
{
#ifdef EBB_DEBUG
	struct slab_hdr *h;
	uintptr_t live = (uintptr_t)slab ^ SLAB_LIVE;

	if (slab == NULL || obj == NULL || !slab_owns(slab_mp(slab), obj))
		goto bad;
	h = RTE_PTR_SUB(obj, SLAB_HDR);
	/* The exchange makes one of two racing frees lose; the object's
	 * contents are ordered by however the pointer travelled. */
	if (!atomic_compare_exchange_strong_explicit(
		    &h->state, &live, (uintptr_t)slab ^ SLAB_FREED,
		    memory_order_relaxed, memory_order_relaxed))
		goto bad;
	obj = h;
#endif
	rte_mempool_put(slab_mp(slab), obj);
	return 0;
#ifdef EBB_DEBUG
bad:
	RTE_LOG(ERR, USER1, "ebbrt slab: free %p: not a live object of %s\n",
		obj, slab ? slab_mp(slab)->name : "(null)");
	return -EINVAL;
#endif
}

unsigned ebb_slab_in_use(const struct ebb_slab *slab)
{
	/* Objects in per-core caches count as free. */
	return rte_mempool_in_use_count(slab_mp(slab));
}

__ebb_cold void ebb_slab_destroy(struct ebb_slab *slab)
{
	unsigned n;

	if (slab == NULL)
		return;
	n = ebb_slab_in_use(slab);
	if (n != 0)
		RTE_LOG(ERR, USER1,
			"ebbrt slab: destroying %s with %u objects in use\n",
			slab_mp(slab)->name, n);
	ebb_slab_free_pool(slab_mp(slab));
}
