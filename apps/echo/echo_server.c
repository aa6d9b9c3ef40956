/* SPDX-License-Identifier: BSD-3-Clause */
/* UDP echo: the reply is the request's own mbuf, headers rewritten in its
 * headroom by the stack. */
#include <errno.h>

#include <rte_mbuf.h>

#include <ebbrt/ebbrt.h>
#include <ebbrt/net.h>

#include "echo_server.h"

/* Per core, on its own cache line: written by its core only. */
static struct {
	uint64_t echoed, refused;
} __attribute__((aligned(64))) stats[EBB_MAX_CORES];

static void on_datagram(void *arg, struct ebb_udp_sock *s, struct rte_mbuf *m,
			uint32_t src_ip, uint16_t src_port)
{
	unsigned core = ebb_core_id();

	(void)arg;
	if (ebb_udp_send(s, src_ip, src_port, m) == 0) {
		__atomic_store_n(&stats[core].echoed, stats[core].echoed + 1,
				 __ATOMIC_RELAXED);
		return;
	}
	__atomic_store_n(&stats[core].refused, stats[core].refused + 1,
			 __ATOMIC_RELAXED);
	rte_pktmbuf_free(m);
}

int echo_server_start(struct ebb_net_if *nif, uint16_t port)
{
	return ebb_udp_bind(nif, port, on_datagram, NULL) ? 0 : -errno;
}

void echo_server_stats(struct echo_stats *out)
{
	out->echoed = out->refused = 0;
	for (unsigned i = 0; i < EBB_MAX_CORES; i++) {
		out->echoed += __atomic_load_n(&stats[i].echoed,
					       __ATOMIC_RELAXED);
		out->refused += __atomic_load_n(&stats[i].refused,
						__ATOMIC_RELAXED);
	}
}
