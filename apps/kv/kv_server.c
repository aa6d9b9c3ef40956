/* SPDX-License-Identifier: BSD-3-Clause */
/* ebb-kv on the ebbrt TCP stack. Each connection feeds its received
 * segments, in place, to the protocol engine and hands the engine's
 * replies to TCP; when TCP's send buffer is full it keeps the input it
 * has not fed (back-pressure) until writable() says there is room. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <rte_mbuf.h>

#include <ebbrt/net.h>
#include <ebbrt/tcp.h>

#include "kv_server.h"

struct kv_server {
	struct kv_store *store;
	struct kv_proto_stats *stats;
};

struct kvc {
	struct kv_conn *kc;
	/* Input the engine did not take yet, and how much of it. */
	struct rte_mbuf *held;
	bool closing;		/* close once the output is out */
};

static void kvc_free(struct ebb_tcp_conn *c, struct kvc *k, bool abort)
{
	rte_pktmbuf_free(k->held);
	kv_conn_destroy(k->kc);
	free(k);
	if (abort)
		ebb_tcp_abort(c);
	else
		ebb_tcp_close(c);
}

/* Hand the engine's output to TCP. True when all of it went. */
static bool kvc_flush(struct ebb_tcp_conn *c, struct kvc *k)
{
	const uint8_t *p;
	size_t len;

	while ((p = kv_conn_output(k->kc, &len)) != NULL) {
		ssize_t n = ebb_tcp_send_buf(c, p, len);

		if (n <= 0)
			return false;	/* -EAGAIN: writable() comes back */
		kv_conn_output_consume(k->kc, (size_t)n);
	}
	return true;
}

/* Feed @m (owned) to the engine; what it does not take is kept. */
static void kvc_feed(struct kvc *k, struct rte_mbuf *m)
{
	while (m != NULL && !k->closing) {
		size_t used = 0;

		if (m->data_len != 0 &&
		    kv_conn_input(k->kc, rte_pktmbuf_mtod(m, uint8_t *),
				  m->data_len, &used) == KV_CONN_CLOSE) {
			k->closing = true;
			break;
		}
		if (used < m->data_len) {
			/* The engine's output is over its high mark: keep
			 * the rest for after a flush. */
			(void)rte_pktmbuf_adj(m, (uint16_t)used);
			k->held = m;
			return;
		}
		struct rte_mbuf *next = m->next;

		if (next != NULL) {
			next->nb_segs = (uint16_t)(m->nb_segs - 1);
			next->pkt_len = m->pkt_len - m->data_len;
		}
		m->next = NULL;
		m->nb_segs = 1;
		rte_pktmbuf_free_seg(m);
		m = next;
	}
	rte_pktmbuf_free(m);
}

/* Flush, feed held input while output drains, close when done. */
static void kvc_run(struct ebb_tcp_conn *c, struct kvc *k)
{
	for (;;) {
		if (!kvc_flush(c, k))
			return;
		if (k->closing) {
			kvc_free(c, k, false);
			return;
		}
		if (k->held == NULL)
			return;
		struct rte_mbuf *m = k->held;

		k->held = NULL;
		kvc_feed(k, m);
	}
}

static void kvc_recv(void *arg, struct ebb_tcp_conn *c, struct rte_mbuf *m)
{
	struct kvc *k = arg;

	if (m == NULL) {
		/* The client is done: answer what it sent, then close. */
		k->closing = true;
		if (k->held == NULL)
			kvc_run(c, k);
		return;
	}
	if (k->held != NULL || k->closing) {
		if (k->closing) {
			rte_pktmbuf_free(m);
			return;
		}
		/* Only past 65535 buffers does chaining fail: a client
		 * that never reads its replies. */
		if (rte_pktmbuf_chain(k->held, m) != 0) {
			rte_pktmbuf_free(m);
			kvc_free(c, k, true);
		}
		return;
	}
	kvc_feed(k, m);
	kvc_run(c, k);
}

static void kvc_writable(void *arg, struct ebb_tcp_conn *c)
{
	kvc_run(c, arg);
}

static void kvc_error(void *arg, struct ebb_tcp_conn *c, int err)
{
	struct kvc *k = arg;

	(void)c;
	(void)err;
	rte_pktmbuf_free(k->held);
	kv_conn_destroy(k->kc);
	free(k);
}

static const struct ebb_tcp_ops kvc_ops = {
	.recv = kvc_recv,
	.writable = kvc_writable,
	.error = kvc_error,
};

static int kvc_accept(void *arg, struct ebb_tcp_conn *c)
{
	struct kv_server *s = arg;
	struct kvc *k = calloc(1, sizeof(*k));

	if (k == NULL)
		return -ENOMEM;
	k->kc = kv_conn_create(s->store, s->stats);
	if (k->kc == NULL) {
		free(k);
		return -ENOMEM;
	}
	ebb_tcp_set_ops(c, &kvc_ops, k);
	return 0;
}

int kv_server_start(struct ebb_net_if *nif, uint16_t port,
		    struct kv_store *store, struct kv_proto_stats *stats)
{
	struct kv_server *s = calloc(1, sizeof(*s));
	struct ebb_tcp_listen_config lc = { .accept = kvc_accept, .arg = s,
					    .backlog = 1024 };

	if (s == NULL)
		return -ENOMEM;
	s->store = store;
	s->stats = stats;
	/* Lives as long as the process serves. */
	if (ebb_tcp_listen(nif, port, &lc) == NULL) {
		int rc = -errno;

		free(s);
		return rc;
	}
	return 0;
}
