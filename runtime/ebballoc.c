/* SPDX-License-Identifier: BSD-3-Clause */
/* EbbAllocator: hands out local and global Ebb ids from a bitmap of the
 * ids in use, lowest free id first. */
#include <errno.h>
#include <string.h>

#include <rte_spinlock.h>

#include "defs.h"

/* Ids of the global range a standalone node takes by default: node n gets
 * [EBB_ID_STATIC_END + n * EBB_ID_GLOBAL_CHUNK, + EBB_ID_GLOBAL_CHUNK),
 * which leaves room for nodes 0 to 126. */
#define EBB_ID_GLOBAL_CHUNK 4096u

/* In trans.c; belongs in defs.h. */

/*
 * One range of ids. hint is a lower bound of the lowest free id of the
 * range (it is exactly that after an allocation), so an allocation scans
 * from it and a free only lowers it.
 */
struct id_range {
	ebb_id_t lo, hi;	/* [lo, hi) */
	ebb_id_t hint;
};

/* 128 KiB: one bit per id of the whole space, local and global. */
static uint64_t used[EBB_ID_MAX / 64];
static struct id_range local = {
	EBB_ID_LOCAL_BASE, EBB_ID_MAX, EBB_ID_LOCAL_BASE
};
/* Empty until ebb_ebballoc_init() or ebb_id_set_global_range(). */
static struct id_range global = {
	EBB_ID_STATIC_END, EBB_ID_STATIC_END, EBB_ID_STATIC_END
};
static rte_spinlock_t alloc_lock = RTE_SPINLOCK_INITIALIZER;

static inline bool id_used(ebb_id_t id)
{
	return (used[id / 64] >> (id % 64)) & 1;
}

/* Lowest free id of @r, marked used; 0 when the range is full. Called
 * with alloc_lock held. */
static ebb_id_t range_alloc(struct id_range *r)
{
	ebb_id_t id = r->hint;

	while (id < r->hi) {
		uint64_t free_bits = ~used[id / 64] & (~0ull << (id % 64));

		if (free_bits != 0) {
			id = (id & ~63u) + (ebb_id_t)__builtin_ctzll(free_bits);
			break;
		}
		id = (id & ~63u) + 64;
	}
	if (id >= r->hi) {
		r->hint = r->hi;
		return EBB_ID_NONE;
	}
	used[id / 64] |= 1ull << (id % 64);
	r->hint = id + 1;
	return id;
}

__ebb_cold void ebb_ebballoc_init(void)
{
	const unsigned nodes =
		(EBB_ID_LOCAL_BASE - EBB_ID_STATIC_END) / EBB_ID_GLOBAL_CHUNK;
	unsigned node = ebb_node.node_id;
	ebb_id_t lo = EBB_ID_STATIC_END, hi = EBB_ID_STATIC_END;

	/* A node beyond the last chunk gets an empty range (ENOSPC). */
	if (node < nodes) {
		lo = EBB_ID_STATIC_END + node * EBB_ID_GLOBAL_CHUNK;
		hi = lo + EBB_ID_GLOBAL_CHUNK;
	}
	rte_spinlock_lock(&alloc_lock);
	memset(used, 0, sizeof(used));
	local.hint = local.lo;
	global = (struct id_range){ lo, hi, lo };
	rte_spinlock_unlock(&alloc_lock);
}

/* An id from @r under the lock; EBB_ID_NONE with errno ENOSPC. */
static ebb_id_t alloc_locked(struct id_range *r)
{
	ebb_id_t id;

	rte_spinlock_lock(&alloc_lock);
	id = range_alloc(r);
	rte_spinlock_unlock(&alloc_lock);
	if (id == EBB_ID_NONE)
		errno = ENOSPC;
	return id;
}

ebb_id_t ebb_id_alloc(void)
{
	return alloc_locked(&local);
}

ebb_id_t ebb_id_alloc_global(void)
{
	return alloc_locked(&global);
}

int ebb_id_free(ebb_id_t id)
{
	struct id_range *r;

	/* Static ids are never handed out, so never given back. */
	if (id < EBB_ID_STATIC_END || id >= EBB_ID_MAX)
		return -EINVAL;
	r = id >= EBB_ID_LOCAL_BASE ? &local : &global;
	rte_spinlock_lock(&alloc_lock);
	if (!id_used(id)) {
		rte_spinlock_unlock(&alloc_lock);
		return -EINVAL;
	}
	/* Before the id can be handed out again: a core still caching the
	 * old rep would otherwise return it for the new Ebb without a
	 * fault. */
	ebb_trans_forget(id);
	used[id / 64] &= ~(1ull << (id % 64));
	/* A global id outside the current range (one from before a
	 * hand-over) is not handed out again; the hint only matters inside
	 * the range. */
	if (id >= r->lo && id < r->hint)
		r->hint = id;
	rte_spinlock_unlock(&alloc_lock);
	return 0;
}

int ebb_id_set_global_range(ebb_id_t lo, ebb_id_t hi)
{
	if (lo >= hi || lo < EBB_ID_STATIC_END || hi > EBB_ID_LOCAL_BASE)
		return -EINVAL;
	rte_spinlock_lock(&alloc_lock);
	/* Ids of the old range stay in use (and can be freed); any that
	 * fall inside the new range are skipped by the bitmap. */
	global = (struct id_range){ lo, hi, lo };
	rte_spinlock_unlock(&alloc_lock);
	return 0;
}

ebb_id_t ebb_create(const struct ebb_type *type, void *root)
{
	ebb_id_t id;
	int rc;

	if (type == NULL || root == NULL) {
		errno = EINVAL;
		return EBB_ID_NONE;
	}
	id = ebb_id_alloc();
	if (id == EBB_ID_NONE)
		return EBB_ID_NONE;
	rc = ebb_idmap_set(id, type, root);
	if (rc) {
		ebb_id_free(id);
		errno = -rc;
		return EBB_ID_NONE;
	}
	return id;
}
