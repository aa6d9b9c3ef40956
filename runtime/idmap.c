/* SPDX-License-Identifier: BSD-3-Clause */
/* LocalIdMap: the node's id -> (type, root) map on a lock-free rte_hash,
 * with the cores as RCU (rte_rcu_qsbr) readers. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <rte_errno.h>
#include <rte_hash.h>
#include <rte_malloc.h>
#include <rte_rcu_qsbr.h>
#include <rte_rwlock.h>

#include "defs.h"

/* Bindings the map holds at once. Each costs about 50 bytes of hugepage
 * memory (key slot, bucket share, free ring and defer queue entries). */
#ifndef EBB_IDMAP_ENTRIES
#define EBB_IDMAP_ENTRIES (1u << 16)
#endif

/* What an id is bound to. Immutable once published, freed by the hash's
 * RCU defer queue after a grace period. */
struct idmap_rec {
	const struct ebb_type *type;
	void *root;
};

static struct rte_hash *idmap;

/*
 * Writers (set, remove, and the reclamation they trigger inside rte_hash)
 * take this for writing; readers that are not RCU readers take it for
 * reading. Cores read without it.
 *
 * Why not RTE_HASH_EXTRA_FLAGS_MULTI_WRITER_ADD: it indexes per-lcore
 * caches of free slots with rte_lcore_id(), which is LCORE_ID_ANY (out of
 * bounds) on threads unknown to EAL, and our writers may be any thread.
 * Why readers off the cores lock: a record is freed once every *core* has
 * passed a quiescent state; a thread that is not a registered reader is
 * invisible to that grace period and could still be reading it.
 */
static rte_rwlock_t idmap_lock = RTE_RWLOCK_INITIALIZER;

static void idmap_free_rec(void *p, void *key_data)
{
	(void)p;
	free(key_data);
}

int ebb_idmap_init(void)
{
	static unsigned generation;
	struct rte_hash_parameters hp = { 0 };
	struct rte_hash_rcu_config rc = { 0 };
	char name[RTE_HASH_NAMESIZE];
	struct rte_rcu_qsbr *v = NULL;
	struct rte_hash *h = NULL;
	size_t sz;
	int ret;

	if (idmap != NULL || ebb_node.rcu != NULL)
		return -EALREADY;
	if (ebb_node.ncores == 0)
		return -EINVAL;

	sz = rte_rcu_qsbr_get_memsize(ebb_node.ncores);
	if (sz == 1) {
		ret = -rte_errno;
		goto fail;
	}
	/* Private memory: a cluster node may die, and nothing of its own
	 * may stay behind in the shared heap. */
	v = aligned_alloc(RTE_CACHE_LINE_SIZE,
			  RTE_ALIGN_CEIL(sz, RTE_CACHE_LINE_SIZE));
	if (v == NULL) {
		ret = -ENOMEM;
		goto fail;
	}
	if (rte_rcu_qsbr_init(v, ebb_node.ncores) != 0) {
		ret = -rte_errno;
		goto fail;
	}

	/* Short: rte_hash derives ring and defer-queue names from it, all
	 * of which must fit RTE_RING_NAMESIZE. */
	/* Unique in the cluster (hash names are shared): the frontend frees
	 * "ebbidm<node>.0" of a node that died. */
	snprintf(name, sizeof(name), "ebbidm%u.%u", ebb_node.node_id,
		 generation++);
	hp.name = name;
	hp.entries = EBB_IDMAP_ENTRIES;
	hp.key_len = sizeof(ebb_id_t);
	hp.socket_id = SOCKET_ID_ANY;
	hp.extra_flag = RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF;
	h = rte_hash_create(&hp);
	if (h == NULL) {
		ret = rte_errno ? -rte_errno : -ENOMEM;
		goto fail;
	}

	/* Defer queue, not SYNC: SYNC would run rte_rcu_qsbr_synchronize()
	 * inside a delete, which deadlocks when a core deletes. */
	rc.v = v;
	rc.mode = RTE_HASH_QSBR_MODE_DQ;
	rc.free_key_data_func = idmap_free_rec;
	if (rte_hash_rcu_qsbr_add(h, &rc) != 0) {
		ret = rte_errno ? -rte_errno : -ENOMEM;
		goto fail;
	}

	idmap = h;
	ebb_node.rcu = v;
	return 0;
fail:
	rte_hash_free(h);
	free(v);
	return ret;
}

void ebb_idmap_fini(void)
{
	const void *key;
	void *data;
	uint32_t next = 0;

	if (idmap != NULL) {
		/* Records of live bindings; those of removed ones are freed
		 * by rte_hash_free() draining the defer queue, which
		 * succeeds now that the cores are unregistered. */
		while (rte_hash_iterate(idmap, &key, &data, &next) >= 0)
			free(data);
		rte_hash_free(idmap);
		idmap = NULL;
	}
	free(ebb_node.rcu);
	ebb_node.rcu = NULL;
}

static inline bool id_ok(ebb_id_t id)
{
	return id != EBB_ID_NONE && id < EBB_ID_MAX;
}

int ebb_idmap_set(ebb_id_t id, const struct ebb_type *type, void *root)
{
	struct idmap_rec *rec;
	int ret;

	/* A NULL root would make ebb_idmap_get() ambiguous. */
	if (!id_ok(id) || type == NULL || root == NULL || idmap == NULL)
		return -EINVAL;
	rec = malloc(sizeof(*rec));
	if (rec == NULL)
		return -ENOMEM;
	rec->type = type;
	rec->root = root;

	rte_rwlock_write_lock(&idmap_lock);
	/* rte_hash_add_key_data() would silently replace an existing
	 * binding; the write lock makes check-then-add atomic. */
	if (rte_hash_lookup(idmap, &id) >= 0) {
		ret = -EEXIST;
	} else {
		/* Publishes rec with a release store of the data pointer. */
		ret = rte_hash_add_key_data(idmap, &id, rec);
		if (ret > 0)
			ret = 0;
	}
	rte_rwlock_write_unlock(&idmap_lock);
	if (ret)
		free(rec);
	return ret;
}

void *ebb_idmap_get(ebb_id_t id, const struct ebb_type *type)
{
	const struct idmap_rec *rec;
	const struct ebb_type *t = NULL;
	void *root = NULL, *data;
	/* A core has a translation table exactly while it is a registered
	 * reader; it runs code only while online (event.c goes offline
	 * inside the halt only). */
	bool reader = ebb_trans_tbl != ebb_trans_null;

	if (!id_ok(id) || idmap == NULL) {
		errno = id_ok(id) ? ENOENT : EINVAL;
		return NULL;
	}
	if (!reader)
		rte_rwlock_read_lock(&idmap_lock);
	if (rte_hash_lookup_data(idmap, &id, &data) >= 0) {
		rec = data;
		t = rec->type;
		root = rec->root;
	}
	if (!reader)
		rte_rwlock_read_unlock(&idmap_lock);

	if (root == NULL) {
		errno = ENOENT;
		return NULL;
	}
	if (type != NULL && type != t) {
		errno = EINVAL;
		return NULL;
	}
	return root;
}

int ebb_idmap_remove(ebb_id_t id)
{
	int32_t ret;

	if (!id_ok(id) || idmap == NULL)
		return -ENOENT;
	rte_rwlock_write_lock(&idmap_lock);
	/* The slot and the record go to the defer queue; reclamation there
	 * checks the grace period without waiting, so a core may call this
	 * too. */
	ret = rte_hash_del_key(idmap, &id);
	rte_rwlock_write_unlock(&idmap_lock);
	return ret < 0 ? -ENOENT : 0;
}

int ebb_rcu_synchronize(void)
{
	if (ebb_self != NULL || ebb_trans_tbl != ebb_trans_null)
		return -EDEADLK;
	if (ebb_node.rcu == NULL)
		return 0;
	/* Offline (halted) cores are skipped; online ones are waited for
	 * until their next loop iteration. */
	rte_rcu_qsbr_synchronize(ebb_node.rcu, RTE_QSBR_THRID_INVALID);
	return 0;
}
