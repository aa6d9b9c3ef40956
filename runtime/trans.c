/* SPDX-License-Identifier: BSD-3-Clause */
/* Per-core translation tables: the miss path that faults reps in, and the
 * set-up that makes each core an RCU reader of the LocalIdMap. */
#include <errno.h>
#include <sys/mman.h>

#include <rte_errno.h>
#include <rte_rcu_qsbr.h>
#include <rte_spinlock.h>

#include "defs.h"

/* Threads that are not cores (and cores before their set-up) point at an
 * all-NULL table, so the accessor's hit path needs no NULL check of the
 * table itself: a lookup there simply misses. Never written; .bss, so its
 * pages are the shared zero page. */
void *ebb_trans_null[EBB_ID_MAX];
__thread void **ebb_trans_tbl
	__attribute__((tls_model("initial-exec"))) = ebb_trans_null;

#define TRANS_TBL_BYTES ((size_t)EBB_ID_MAX * sizeof(void *))

/* Every core's table, so that ebb_trans_forget() can clear an entry
 * everywhere. The lock keeps a table mapped while someone writes to it. */
static void **trans_tbls[EBB_MAX_CORES];
static rte_spinlock_t trans_lock = RTE_SPINLOCK_INITIALIZER;

/*
 * Faults in progress on this core, innermost first. A fault handler may
 * use other Ebbs (nested faults of other ids are fine) but not its own
 * id: that would fault again and build a second rep. The frames live on
 * the stacks of the faulting events, so a fault that blocks (its event
 * saved) keeps its frame, and frames are unlinked by search because
 * blocked faults can finish in any order.
 */
struct trans_fault {
	ebb_id_t id;
	struct trans_fault *next;
};
static __thread struct trans_fault *trans_faults
	__attribute__((tls_model("initial-exec")));

/* Clears @id in every core's table so that a reused id faults afresh.
 * Used by ebb_id_free() (ebballoc.c); belongs in defs.h. */

__ebb_cold int ebb_trans_core_init(struct ebb_core *c)
{
	void **tbl;
	int rc;

	if (c == NULL || c->id >= EBB_MAX_CORES || ebb_node.rcu == NULL)
		return -EINVAL;
	if (ebb_trans_tbl != ebb_trans_null)
		return -EALREADY;
	/* 8 MiB of address space; pages are backed on first write, so a
	 * core pays only for the id ranges it uses. Reads of untouched
	 * pages map the shared zero page: NULL, a miss. */
	tbl = mmap(NULL, TRANS_TBL_BYTES, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (tbl == MAP_FAILED)
		return -errno;
	if (rte_rcu_qsbr_thread_register(ebb_node.rcu, c->id) != 0) {
		rc = -rte_errno;
		goto fail;
	}
	/* Online before the table is visible: a core that can fault can
	 * read the LocalIdMap, which it does without locks. */
	rte_rcu_qsbr_thread_online(ebb_node.rcu, c->id);
	rte_spinlock_lock(&trans_lock);
	trans_tbls[c->id] = tbl;
	rte_spinlock_unlock(&trans_lock);
	trans_faults = NULL;
	ebb_trans_tbl = tbl;
	return 0;
fail:
	munmap(tbl, TRANS_TBL_BYTES);
	return rc;
}

__ebb_cold void ebb_trans_core_fini(struct ebb_core *c)
{
	void **tbl = ebb_trans_tbl;

	/* Also called when a sibling hook failed before ours ran. */
	if (tbl == ebb_trans_null)
		return;
	ebb_trans_tbl = ebb_trans_null;
	trans_faults = NULL;
	rte_spinlock_lock(&trans_lock);
	trans_tbls[c->id] = NULL;
	rte_spinlock_unlock(&trans_lock);
	rte_rcu_qsbr_thread_offline(ebb_node.rcu, c->id);
	rte_rcu_qsbr_thread_unregister(ebb_node.rcu, c->id);
	munmap(tbl, TRANS_TBL_BYTES);
}

static inline bool id_ok(ebb_id_t id)
{
	return id != EBB_ID_NONE && id < EBB_ID_MAX;
}

void *__ebb_miss(ebb_id_t id, const struct ebb_type *type)
{
	void **tbl = ebb_trans_tbl;
	struct trans_fault self, **pp, *f;
	void *root, *rep;
	int err;

	if (tbl == ebb_trans_null) {
		errno = EPERM;
		return NULL;
	}
	if (!id_ok(id) || type == NULL || type->fault == NULL) {
		errno = EINVAL;
		return NULL;
	}
	/* Called directly rather than from the accessor: may be a hit. */
	rep = __atomic_load_n(&tbl[id], __ATOMIC_RELAXED);
	if (rep != NULL)
		return rep;
	for (f = trans_faults; f != NULL; f = f->next) {
		if (f->id == id) {
			errno = EDEADLK;
			return NULL;
		}
	}
	/* Checks the type; errno ENOENT or EINVAL. */
	root = ebb_idmap_get(id, type);
	if (root == NULL)
		return NULL;

	/* root stays valid during the handler: this core passes no
	 * quiescent state until the event ends -- unless the handler blocks,
	 * after which it must not touch root unless it knows it lives. */
	self.id = id;
	self.next = trans_faults;
	trans_faults = &self;
	errno = 0;
	rep = type->fault(id, root, ebb_core_id());
	err = errno;
	for (pp = &trans_faults; *pp != &self; pp = &(*pp)->next)
		;
	*pp = self.next;

	if (rep == NULL) {
		errno = err ? err : ENOMEM;
		return NULL;
	}
	/* Reloaded: the table outlives a handler that blocked only while
	 * the core runs. */
	tbl = ebb_trans_tbl;
	if (tbl != ebb_trans_null)
		__atomic_store_n(&tbl[id], rep, __ATOMIC_RELAXED);
	return rep;
}

int ebb_rep_cache(ebb_id_t id, void *rep)
{
	void **tbl = ebb_trans_tbl;

	if (tbl == ebb_trans_null)
		return -EPERM;
	if (!id_ok(id))
		return -EINVAL;
	/* NULL drops the cached rep (the next use faults). Skip the store
	 * when nothing changes, so as not to back an untouched page. */
	if (__atomic_load_n(&tbl[id], __ATOMIC_RELAXED) != rep)
		__atomic_store_n(&tbl[id], rep, __ATOMIC_RELAXED);
	return 0;
}

void ebb_trans_forget(ebb_id_t id)
{
	unsigned i;

	if (!id_ok(id))
		return;
	rte_spinlock_lock(&trans_lock);
	for (i = 0; i < EBB_MAX_CORES; i++) {
		void **tbl = trans_tbls[i];

		/* Load first: a store would back a page of zeroes. */
		if (tbl != NULL &&
		    __atomic_load_n(&tbl[id], __ATOMIC_RELAXED) != NULL)
			__atomic_store_n(&tbl[id], NULL, __ATOMIC_RELAXED);
	}
	rte_spinlock_unlock(&trans_lock);
}
