/* SPDX-License-Identifier: BSD-3-Clause */
/* Messenger: messages between the nodes of a cluster, by reference, on
 * the per-core rte_ring inboxes the frontend made; a halted receiver is
 * woken through its doorbell. */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <ebbrt/ebbrt.h>
#include <ebbrt/messenger.h>

#include "cluster.h"


#define MSG_BURST 32

struct msg_hdr {
	uint32_t id;
	uint16_t src_node;
	uint16_t src_core;
};
_Static_assert(sizeof(struct msg_hdr) == EBB_MSG_HDR_LEN, "header size");

struct msg_handler {
	ebb_id_t id;
	ebb_msg_fn fn;
	void *arg;
};

/* Written by the main thread before the cores start, read by them. */
static struct msg_handler handlers[EBB_MSG_MAX_HANDLERS];
static unsigned nhandlers;
static bool cores_started;

static struct rte_ring *my_inbox(void)
{
	unsigned core = ebb_core_id();

	return ebb_cluster->node[ebb_node_id()].inbox[core];
}

static struct ebb_core_pub *my_pub(void)
{
	unsigned core = ebb_core_id();

	return &ebb_cluster->node[ebb_node_id()].core[core];
}

static bool inbox_pending(void *arg)
{
	return rte_ring_count(arg) != 0;
}

static const struct msg_handler *find(ebb_id_t id)
{
	for (unsigned i = 0; i < nhandlers; i++)
		if (handlers[i].id == id)
			return &handlers[i];
	return NULL;
}

static void inbox_handle(void *arg)
{
	struct rte_mbuf *m[MSG_BURST];
	struct ebb_core_pub *p = my_pub();
	unsigned n = rte_ring_sc_dequeue_burst(arg, (void **)m, MSG_BURST,
					       NULL);

	__atomic_store_n(&p->msg.received, p->msg.received + n,
			 __ATOMIC_RELAXED);
	for (unsigned i = 0; i < n; i++) {
		struct msg_hdr *h = rte_pktmbuf_mtod(m[i], struct msg_hdr *);
		const struct msg_handler *hd;

		if (rte_pktmbuf_data_len(m[i]) < sizeof(*h) ||
		    (hd = find(h->id)) == NULL) {
			__atomic_store_n(&p->msg.dropped, p->msg.dropped + 1,
					 __ATOMIC_RELAXED);
			rte_pktmbuf_free(m[i]);
			continue;
		}
		rte_pktmbuf_adj(m[i], sizeof(*h));
		hd->fn(hd->arg, h->src_node, m[i]);
	}
}

/* On every core as it starts: poll our inbox; its senders kick us. */
static int core_start(void)
{
	struct ebb_vector_ops ops = {
		.pending = inbox_pending,
		.handle = inbox_handle,
		.fd = EBB_VECTOR_FD_KICK,
	};
	struct rte_ring *r;
	int rc;

	if (ebb_cluster == NULL)
		return 0;
	cores_started = true;
	r = my_inbox();
	if (r == NULL)
		return -ENOENT;
	rc = ebb_vector_add(&ops, r);
	return rc < 0 ? rc : 0;
}

/* Linked in whenever the Messenger is used: every core then polls its
 * inbox (the runtime cannot call up into ebbs/). */
__attribute__((constructor)) static void messenger_enable(void)
{
	ebb_msg_core_start = core_start;
}

int ebb_msg_register(ebb_id_t id, ebb_msg_fn fn, void *arg)
{
	if (fn == NULL || id == EBB_ID_NONE)
		return -EINVAL;
	if (cores_started || ebb_core_id() != EBB_CORE_NONE)
		return -EBUSY;
	if (find(id) != NULL)
		return -EEXIST;
	if (nhandlers == EBB_MSG_MAX_HANDLERS)
		return -ENOSPC;
	handlers[nhandlers] = (struct msg_handler){ id, fn, arg };
	nhandlers++;
	return 0;
}

struct rte_mbuf *ebb_msg_alloc(void)
{
	struct rte_mbuf *m;

	if (ebb_cluster == NULL) {
		errno = ENOTSUP;
		return NULL;
	}
	m = rte_pktmbuf_alloc(ebb_cluster->node[ebb_node_id()].port_pool);
	if (m == NULL)
		errno = ENOMEM;
	return m;
}

int ebb_msg_send(unsigned node, ebb_id_t id, struct rte_mbuf *m)
{
	struct ebb_cluster_node *dst;
	struct ebb_core_pub *p = NULL;
	struct msg_hdr *h;
	unsigned core = ebb_core_id(), dcore;
	int state;

	if (ebb_cluster == NULL)
		return -ENOTSUP;
	if (node >= ebb_cluster->nnodes)
		return -ENODEV;
	if (m == NULL)
		return -EINVAL;
	dst = &ebb_cluster->node[node];
	/* Pairs with the frontend's release store of a new state. */
	state = atomic_load_explicit(&dst->state, memory_order_acquire);
	if (state != EBB_NODE_READY && state != EBB_NODE_STARTING)
		return -EHOSTDOWN;
	if (core != EBB_CORE_NONE)
		p = &ebb_cluster->node[ebb_node_id()].core[core];
	else
		core = 0;
	dcore = core % dst->ncores;
	h = (struct msg_hdr *)rte_pktmbuf_prepend(m, sizeof(*h));
	if (h == NULL)
		return -EINVAL;
	h->id = id;
	h->src_node = (uint16_t)ebb_node_id();
	h->src_core = (uint16_t)core;
	if (rte_ring_mp_enqueue(dst->inbox[dcore], m) != 0) {
		rte_pktmbuf_adj(m, sizeof(*h));
		if (p != NULL)
			__atomic_store_n(&p->msg.full, p->msg.full + 1,
					 __ATOMIC_RELAXED);
		return -EAGAIN;
	}
	if (p != NULL)
		__atomic_store_n(&p->msg.sent, p->msg.sent + 1,
				 __ATOMIC_RELAXED);
	ebb_cluster_kick(node, dcore);
	return 0;
}

/* --- sends that wait for room --- */

struct pending_send {
	struct rte_mbuf *m;
	unsigned node;
	ebb_id_t id;
};

static void retry_send(void *arg)
{
	struct pending_send *ps = arg;
	int rc = ebb_msg_send(ps->node, ps->id, ps->m);

	if (rc == -EAGAIN && ebb_spawn_local(retry_send, ps) == 0)
		return;		/* after the events already queued */
	if (rc != 0)
		rte_pktmbuf_free(ps->m);
	free(ps);
}

int ebb_msg_send_retry(unsigned node, ebb_id_t id, struct rte_mbuf *m)
{
	struct pending_send *ps;
	int rc = ebb_msg_send(node, id, m);

	if (rc != -EAGAIN || ebb_core_id() == EBB_CORE_NONE) {
		if (rc != 0)
			rte_pktmbuf_free(m);
		return rc;
	}
	ps = malloc(sizeof(*ps));
	if (ps == NULL) {
		rte_pktmbuf_free(m);
		return -ENOMEM;
	}
	*ps = (struct pending_send){ m, node, id };
	if (ebb_spawn_local(retry_send, ps) != 0) {
		rte_pktmbuf_free(m);
		free(ps);
		return -ESHUTDOWN;
	}
	return 0;
}

/* --- ping: the Messenger's own Ebb answers it on every node --- */

enum { PING = 1, PONG };

struct ping_msg {
	uint32_t op;
	int32_t pid;			/* the sender's: a reply to a process
					 * that has since died and been
					 * replaced must not touch its tag */
	uint64_t tag;			/* the sender's future */
	uint64_t tsc;			/* when it was sent */
};

static int ping_send(unsigned node, uint32_t op, uint64_t tag, uint64_t tsc)
{
	struct rte_mbuf *m = ebb_msg_alloc();
	struct ping_msg *p;
	int rc;

	if (m == NULL)
		return -ENOMEM;
	p = (struct ping_msg *)rte_pktmbuf_append(m, sizeof(*p));
	if (p == NULL) {
		rte_pktmbuf_free(m);
		return -ENOMEM;
	}
	*p = (struct ping_msg){ op, getpid(), tag, tsc };
	rc = ebb_msg_send(node, EBB_ID_MESSENGER, m);
	if (rc)
		rte_pktmbuf_free(m);
	return rc;
}

static void ping_receive(void *arg, unsigned src, struct rte_mbuf *m)
{
	struct ping_msg *p = rte_pktmbuf_mtod(m, struct ping_msg *);

	(void)arg;
	if (rte_pktmbuf_data_len(m) >= sizeof(*p)) {
		if (p->op == PING) {
			/* Answer in the same buffer: no allocation. */
			p->op = PONG;
			rte_pktmbuf_trim(m, rte_pktmbuf_data_len(m) -
						    (uint16_t)sizeof(*p));
			/* A full inbox delays the answer, never loses it. */
			ebb_msg_send_retry(src, EBB_ID_MESSENGER, m);
			return;
		} else if (p->op == PONG && p->pid == getpid()) {
			ebb_future_fulfil((struct ebb_future *)(uintptr_t)
						  p->tag,
					  (intptr_t)(rte_rdtsc() - p->tsc));
		}
	}
	rte_pktmbuf_free(m);
}

struct ebb_future *ebb_msg_ping(unsigned node)
{
	struct ebb_future *f = ebb_future_create();
	int rc;

	if (f == NULL)
		return NULL;
	rc = ping_send(node, PING, (uint64_t)(uintptr_t)f, rte_rdtsc());
	if (rc)
		ebb_future_fulfil(f, rc);
	return f;
}

__attribute__((constructor)) static void ping_register(void)
{
	ebb_msg_register(EBB_ID_MESSENGER, ping_receive, NULL);
}
