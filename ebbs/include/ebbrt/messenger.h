/* SPDX-License-Identifier: BSD-3-Clause */
/* Messenger: Ebb-to-Ebb messages between the nodes of a cluster and the
 * frontend (node 0), over rte_ring inboxes on shared hugepages. */
#ifndef EBBRT_MESSENGER_H
#define EBBRT_MESSENGER_H

#include <stdint.h>

#include <ebbrt/ebb.h>

#ifdef __cplusplus
extern "C" {
#endif

struct rte_mbuf;

/*
 * Receive handler of Ebb @id: runs on the core of this node that the
 * message was delivered to, with the payload in place (data_off past
 * the Messenger's header). The handler owns @m and must free it
 * (rte_pktmbuf_free) or pass it on.
 */
typedef void (*ebb_msg_fn)(void *arg, unsigned src_node, struct rte_mbuf *m);

/* Most Ebbs of a node that can receive messages. */
#define EBB_MSG_MAX_HANDLERS 64

/*
 * Deliver messages for Ebb @id on this node to @fn(@arg, ...). Call on
 * the main thread before ebb_start() (every core then polls its inbox).
 * Returns 0, -EINVAL (no fn, id 0), -EEXIST (id has a handler),
 * -ENOSPC (table full) or -EBUSY (cores already started).
 */
int ebb_msg_register(ebb_id_t id, ebb_msg_fn fn, void *arg);

/*
 * A message buffer from this node's pool, with room for the Messenger's
 * header in front. NULL (errno ENOMEM or ENOTSUP when standalone).
 * Any thread.
 */
struct rte_mbuf *ebb_msg_alloc(void);

/*
 * Send @m to Ebb @id on node @node. It is enqueued by reference (no
 * copy) on the inbox of core (sender's core mod the receiver's cores),
 * so messages from one core to one node arrive in the order sent; a
 * halted receiver core is woken.
 * On 0 the Messenger owns @m. On an error the caller keeps it:
 *   -EAGAIN     the inbox is full (back-pressure; retry later)
 *   -EHOSTDOWN  node @node is dead or has exited
 *   -ENODEV     no such node
 *   -EINVAL     @m is NULL or has no headroom for the header
 *   -ENOTSUP    standalone: there is no cluster
 * Any thread (a thread that is not a core sends as core 0).
 */
int ebb_msg_send(unsigned node, ebb_id_t id, struct rte_mbuf *m);

/*
 * ebb_msg_send(), but a full inbox does not fail it: the message waits
 * on the calling core (an event retries it after the events already
 * queued) until it goes. On 0 the Messenger owns @m. On any other error
 * (-EHOSTDOWN, -ENODEV, -EINVAL, -ENOTSUP, -ENOMEM, -ESHUTDOWN) @m is
 * freed. Off a core it is ebb_msg_send() that frees @m on failure.
 * For replies, which must not be lost and cannot be handed back.
 */
int ebb_msg_send_retry(unsigned node, ebb_id_t id, struct rte_mbuf *m);

/*
 * Round trip to node @node through the Messenger's own Ebb, which every
 * node (and the frontend) answers. The future is fulfilled with the round
 * trip in TSC cycles (ebb_tsc_hz()), or with -errno from ebb_msg_send().
 * A reply that never comes (the node died) leaves it unfulfilled: wait
 * with a timeout. NULL with errno ENOMEM. Call on: an ebbrt core.
 */
struct ebb_future;
struct ebb_future *ebb_msg_ping(unsigned node);

/* Size of the header the Messenger puts in front of a payload. */
#define EBB_MSG_HDR_LEN 8u

#ifdef __cplusplus
}
#endif
#endif
