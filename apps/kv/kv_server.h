/* SPDX-License-Identifier: BSD-3-Clause */
/* ebb-kv on the ebbrt TCP stack: a listener whose connections run the
 * memcached protocol engine on their own core. */
#ifndef EBB_KV_SERVER_H
#define EBB_KV_SERVER_H

#include <stdint.h>

#include "proto.h"
#include "store.h"

struct ebb_net_if;

/*
 * Serve the memcached protocols on TCP port @port of @nif, every core,
 * from @store (shared by all cores; it locks by stripe). @stats is shared
 * by the connections (relaxed atomics). Returns 0, or -errno of
 * ebb_tcp_listen(). Main thread, before traffic.
 */
int kv_server_start(struct ebb_net_if *nif, uint16_t port,
		    struct kv_store *store, struct kv_proto_stats *stats);

#endif
