/* SPDX-License-Identifier: BSD-3-Clause */
/* GlobalIdMap: a fixed, open-addressed table of id -> value in the
 * cluster control block. Readers copy under a per-entry seqlock; the
 * frontend is the only writer, fed by Messenger requests. */
#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include <rte_mbuf.h>
#include <rte_spinlock.h>

#include <ebbrt/ebbrt.h>
#include <ebbrt/gidmap.h>
#include <ebbrt/messenger.h>

#include "cluster.h"

_Static_assert(EBB_GID_VALUE_MAX == EBB_GIDMAP_VALUE_MAX, "value size");

enum { GID_SET = 1, GID_REPLY };

struct gid_msg {
	uint32_t op;
	uint32_t id;
	uint32_t len;
	int32_t result;
	int32_t pid;			/* the requester's (see messenger.c) */
	uint32_t pad;
	uint64_t tag;			/* the requester's future */
	uint8_t value[];
};

/* Standalone: the same table, private to the process. */
static struct ebb_gidmap_entry local_store[EBB_GIDMAP_SLOTS];
/* Writers in the frontend (its core and other threads). */
static rte_spinlock_t write_lock = RTE_SPINLOCK_INITIALIZER;

static struct ebb_gidmap_entry *store(void)
{
	return ebb_cluster ? ebb_cluster->gid : local_store;
}

static unsigned slot_of(ebb_id_t id)
{
	return (unsigned)((id * 2654435761u) % EBB_GIDMAP_SLOTS);
}

/* Copy the value of @id; its length, or -ENOENT. */
static int gid_read(ebb_id_t id, void *buf, size_t len)
{
	struct ebb_gidmap_entry *t = store();
	unsigned s = slot_of(id);

	for (unsigned probe = 0; probe < EBB_GIDMAP_SLOTS; probe++) {
		struct ebb_gidmap_entry *e = &t[(s + probe) % EBB_GIDMAP_SLOTS];
		uint32_t seq0, seq1, eid, elen;

		do {
			/* Pairs with the writer's release stores of seq. */
			seq0 = atomic_load_explicit(&e->seq,
						    memory_order_acquire);
			while (seq0 & 1)
				seq0 = atomic_load_explicit(
					&e->seq, memory_order_acquire);
			eid = e->id;
			elen = e->len;
			if (eid == id && elen && buf != NULL)
				memcpy(buf, e->value, RTE_MIN(len, elen));
			atomic_thread_fence(memory_order_acquire);
			seq1 = atomic_load_explicit(&e->seq,
						    memory_order_relaxed);
		} while (seq0 != seq1);
		if (eid == 0)
			return -ENOENT;	/* ids are never unslotted */
		if (eid == id)
			return elen ? (int)elen : -ENOENT;
	}
	return -ENOENT;
}

/* The one writer (the frontend, or a standalone process). */
static int gid_write(ebb_id_t id, const void *val, size_t len)
{
	struct ebb_gidmap_entry *t = store();
	unsigned s = slot_of(id);
	int rc = -ENOSPC;

	rte_spinlock_lock(&write_lock);
	for (unsigned probe = 0; probe < EBB_GIDMAP_SLOTS; probe++) {
		struct ebb_gidmap_entry *e = &t[(s + probe) % EBB_GIDMAP_SLOTS];
		uint32_t seq;

		if (e->id != 0 && e->id != id)
			continue;
		seq = atomic_load_explicit(&e->seq, memory_order_relaxed);
		atomic_store_explicit(&e->seq, seq + 1, memory_order_relaxed);
		/* The odd seq is visible before any byte changes. */
		atomic_thread_fence(memory_order_release);
		e->id = id;
		e->len = (uint32_t)len;
		if (len)
			memcpy(e->value, val, len);
		atomic_store_explicit(&e->seq, seq + 2, memory_order_release);
		rc = 0;
		break;
	}
	rte_spinlock_unlock(&write_lock);
	return rc;
}

struct ebb_future *ebb_gid_get(ebb_id_t id, void *buf, size_t len)
{
	struct ebb_future *f;

	if (id == EBB_ID_NONE) {
		errno = EINVAL;
		return NULL;
	}
	f = ebb_future_create();
	if (f != NULL)
		ebb_future_fulfil(f, gid_read(id, buf, len));
	return f;
}

static int send_reply(unsigned node, uint64_t tag, int32_t pid, int result)
{
	struct rte_mbuf *m = ebb_msg_alloc();
	struct gid_msg *r;
	int rc;

	if (m == NULL)
		return -ENOMEM;
	r = (struct gid_msg *)rte_pktmbuf_append(m, sizeof(*r));
	if (r == NULL) {
		rte_pktmbuf_free(m);
		return -ENOMEM;
	}
	memset(r, 0, sizeof(*r));
	r->op = GID_REPLY;
	r->tag = tag;
	r->pid = pid;
	r->result = result;
	/* A full inbox delays the reply, never loses it. */
	rc = ebb_msg_send_retry(node, EBB_ID_GLOBAL_ID_MAP, m);
	return rc;
}

struct ebb_future *ebb_gid_set(ebb_id_t id, const void *val, size_t len)
{
	struct ebb_future *f;
	struct rte_mbuf *m;
	struct gid_msg *r;
	int rc;

	if (id == EBB_ID_NONE || len > EBB_GID_VALUE_MAX ||
	    (len && val == NULL)) {
		errno = EINVAL;
		return NULL;
	}
	f = ebb_future_create();
	if (f == NULL)
		return NULL;
	if (ebb_cluster == NULL || ebb_node_id() == 0) {
		ebb_future_fulfil(f, gid_write(id, val, len));
		return f;
	}
	m = ebb_msg_alloc();
	r = m ? (struct gid_msg *)rte_pktmbuf_append(m, sizeof(*r) + len) :
		NULL;
	if (r == NULL) {
		rte_pktmbuf_free(m);
		ebb_future_fulfil(f, -ENOMEM);
		return f;
	}
	memset(r, 0, sizeof(*r));
	r->op = GID_SET;
	r->pid = getpid();
	r->id = id;
	r->len = (uint32_t)len;
	r->tag = (uint64_t)(uintptr_t)f;
	memcpy(r->value, val, len);
	rc = ebb_msg_send(0, EBB_ID_GLOBAL_ID_MAP, m);
	if (rc) {
		rte_pktmbuf_free(m);
		ebb_future_fulfil(f, rc);
	}
	return f;
}

static void gid_receive(void *arg, unsigned src, struct rte_mbuf *m)
{
	struct gid_msg *r = rte_pktmbuf_mtod(m, struct gid_msg *);
	uint32_t dlen = rte_pktmbuf_data_len(m);

	(void)arg;
	if (dlen < sizeof(*r))
		goto out;
	if (r->op == GID_SET && ebb_node_id() == 0) {
		int rc = r->len > EBB_GID_VALUE_MAX ||
				 dlen < sizeof(*r) + r->len || r->id == 0 ?
			 -EINVAL :
			 gid_write(r->id, r->value, r->len);

		send_reply(src, r->tag, r->pid, rc);
	} else if (r->op == GID_REPLY && src == 0 && r->pid == getpid()) {
		/* Our own future, from our own request. */
		ebb_future_fulfil((struct ebb_future *)(uintptr_t)r->tag,
				  r->result);
	}
out:
	rte_pktmbuf_free(m);
}

__attribute__((constructor)) static void gidmap_register(void)
{
	ebb_msg_register(EBB_ID_GLOBAL_ID_MAP, gid_receive, NULL);
}
