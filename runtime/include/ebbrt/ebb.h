/* SPDX-License-Identifier: BSD-3-Clause */
/* Ebbs: one id per object, one representative per core, found through a
 * per-core translation table. */
#ifndef EBBRT_EBB_H
#define EBBRT_EBB_H

#include <stdint.h>

#include <ebbrt/node.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef likely
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#endif

typedef uint32_t ebb_id_t;

/*
 * Id spaces. 0 is never an id.
 *   [1, EBB_ID_STATIC_END)                 static ids of system Ebbs
 *   [EBB_ID_STATIC_END, EBB_ID_LOCAL_BASE) global ids, handed out in ranges
 *                                          by the frontend
 *   [EBB_ID_LOCAL_BASE, EBB_ID_MAX)        local ids, unique on this node
 * The translation table covers every id below EBB_ID_MAX.
 */
#define EBB_ID_NONE 0u
#define EBB_ID_STATIC_END 1024u
#define EBB_ID_LOCAL_BASE (1u << 19)
#define EBB_ID_MAX (1u << 20)

/* Static ids of the system Ebbs. */
enum {
	EBB_ID_EVENT_MANAGER = 1,
	EBB_ID_TIMER,
	EBB_ID_LOCAL_ID_MAP,
	EBB_ID_GLOBAL_ID_MAP,
	EBB_ID_EBB_ALLOCATOR,
	EBB_ID_PAGE_ALLOCATOR,
	EBB_ID_SLAB_ALLOCATOR,
	EBB_ID_GP_ALLOCATOR,
	EBB_ID_NETWORK_MANAGER,
	EBB_ID_MESSENGER,
	EBB_ID_NODE_ALLOCATOR,
	EBB_ID_FIRST_FREE_STATIC,
};

/*
 * An Ebb type. fault() builds the rep of the Ebb whose root is @root for
 * core @core; it runs on that core, once per core (the result is cached).
 * It returns the rep, or NULL with errno set.
 */
struct ebb_type {
	const char *name;
	void *(*fault)(ebb_id_t id, void *root, unsigned core);
};

/*
 * Translation table: per core (per thread), indexed by id. NULL entries
 * miss. Threads that are not cores see an all-NULL table, so every lookup
 * there misses (and the miss fails with EPERM). Private to the accessor
 * macro below.
 */
extern __thread void **ebb_trans_tbl
	__attribute__((tls_model("initial-exec")));

/*
 * Slow path of a lookup: find the root in the LocalIdMap, check its type,
 * call type->fault() and cache the rep. Returns the rep, or NULL with
 * errno ENOENT (no such Ebb), EINVAL (other type or bad id), EPERM (not on
 * an ebbrt core), EDEADLK (the fault handler of @id looked up @id itself)
 * or the fault handler's errno (ENOMEM if it set none). A fault handler
 * that blocks must not use its root after blocking.
 */
void *__ebb_miss(ebb_id_t id, const struct ebb_type *type);

/*
 * EBB_DEFINE_ACCESSOR(kv, struct kv_rep, &kv_type) gives
 *   static inline struct kv_rep *kv_rep(ebb_id_t id);
 * The hit path is one table load and one predictable branch. Call on: an
 * ebbrt core. With ids below EBB_ID_MAX only.
 */
#define EBB_DEFINE_ACCESSOR(name, rep_type, type_ptr)                       \
	static inline rep_type *name##_rep(ebb_id_t id)                     \
	{                                                                   \
		void *r = ebb_trans_tbl[id];                                \
		if (likely(r != NULL))                                      \
			return (rep_type *)r;                               \
		return (rep_type *)__ebb_miss(id, (type_ptr));              \
	}

/* Cache @rep as the calling core's rep of @id without a fault; NULL drops
 * the cached rep (the next use faults). Returns 0, -EINVAL (bad id) or
 * -EPERM (not on a core). */
int ebb_rep_cache(ebb_id_t id, void *rep);

/*
 * LocalIdMap: id -> (type, root), per node, on DPDK rte_hash with RCU
 * (rte_rcu_qsbr): readers are the cores, each loop iteration a quiescent
 * state.
 *
 * ebb_idmap_set(): bind @id to @root of @type. Returns 0, -EEXIST,
 *   -EINVAL (bad id, NULL type or root), -ENOSPC or -ENOMEM. Any thread.
 * ebb_idmap_get(): the root bound to @id, or NULL (errno ENOENT). When
 *   @type is not NULL it is checked (errno EINVAL on mismatch). Any thread.
 * ebb_idmap_remove(): unbind @id; reps already cached stay valid, the
 *   caller frees the root after a grace period (ebb_rcu_synchronize()).
 *   Returns 0 or -ENOENT. Any thread.
 */
int ebb_idmap_set(ebb_id_t id, const struct ebb_type *type, void *root);
void *ebb_idmap_get(ebb_id_t id, const struct ebb_type *type);
int ebb_idmap_remove(ebb_id_t id);

/* Wait until every core has passed a quiescent state. Any thread that is
 * not an ebbrt core (a core would wait on itself). Returns 0 or -EDEADLK
 * when called on a core. */
int ebb_rcu_synchronize(void);

/*
 * EbbAllocator: hands out ids.
 * ebb_id_alloc(): a local id, unique on this node. 0 (errno ENOSPC) when
 *   the range is used up. Any thread.
 * ebb_id_alloc_global(): an id from this node's global range (given by the
 *   frontend; standalone nodes get a default range), unique in the
 *   cluster. 0 with errno ENOSPC when used up.
 * ebb_id_free(): give back an id; its cached reps are dropped on every
 *   core so a reused id never finds the old Ebb. Returns 0 or -EINVAL.
 * ebb_id_set_global_range(): [lo, hi), used by the frontend hand-over.
 *   Returns 0 or -EINVAL.
 */
ebb_id_t ebb_id_alloc(void);
ebb_id_t ebb_id_alloc_global(void);
int ebb_id_free(ebb_id_t id);
int ebb_id_set_global_range(ebb_id_t lo, ebb_id_t hi);

/*
 * Create an Ebb in one call: allocate a local id and bind @root of @type.
 * Returns the id, or 0 with errno set.
 */
ebb_id_t ebb_create(const struct ebb_type *type, void *root);

#ifdef __cplusplus
}
#endif
#endif
