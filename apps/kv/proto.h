/* SPDX-License-Identifier: BSD-3-Clause */
/* ebb-kv protocol engine: memcached's text and binary protocols on one
 * connection's byte stream, independent of the transport under it. */
#ifndef EBB_KV_PROTO_H
#define EBB_KV_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* memcached's own limit on a command line without its newline. */
#define KV_LINE_MAX 2048
/* Longest buffered get/gets line (memcached's are unbounded). */
#define KV_GET_LINE_MAX (1u << 20)
/* Input stops being consumed while this much output waits. */
#define KV_OUT_HIGH (1u << 20)
/* A single get's reply may not grow the output past this. */
#define KV_OUT_MAX (64u << 20)
#define KV_VERSION "1.6.18-ebbkv"

/* kv_conn_input() results. */
#define KV_CONN_OPEN 0
#define KV_CONN_CLOSE 1 /* send what kv_conn_output() holds, then close */

/* Process-wide counters that the "stats" command reports. */
struct kv_proto_stats {
	uint64_t curr_connections, total_connections;
	uint64_t bytes_read, bytes_written;
	unsigned threads; /* serving threads, for "stats" */
};

struct kv_conn;

/* A connection on the store. stats may be NULL or shared by many
 * connections (updated with relaxed atomics). Returns NULL, errno ENOMEM. */
struct kv_conn *kv_conn_create(struct kv_store *s,
			       struct kv_proto_stats *stats);
/* Releases the connection and any item it was filling; NULL is fine. */
void kv_conn_destroy(struct kv_conn *c);

/* Feeds received bytes. Consumes what it can: commands split across calls
 * are kept in a bounded buffer; it stops early (*consumed < len) while
 * more than KV_OUT_HIGH bytes of output wait, and the caller feeds the
 * rest after draining. Replies are appended to the connection's output.
 * Returns KV_CONN_OPEN, or KV_CONN_CLOSE when the connection must be closed
 * after its output is sent (quit, bad binary magic, an unbounded line,
 * ...); further input is then ignored. Call from one thread at a time. */
int kv_conn_input(struct kv_conn *c, const uint8_t *data, size_t len,
		  size_t *consumed);

/* The output waiting to be sent, *len bytes (NULL if none). */
const uint8_t *kv_conn_output(struct kv_conn *c, size_t *len);
/* Marks n bytes of the output as sent. */
void kv_conn_output_consume(struct kv_conn *c, size_t n);

/* Bytes this connection holds right now (buffers, not store items). */
size_t kv_conn_footprint(const struct kv_conn *c);

#endif /* EBB_KV_PROTO_H */
