/* SPDX-License-Identifier: BSD-3-Clause */
/* The UDP echo logic of apps/echo, shared with the benchmark's node. */
#ifndef EBBRT_ECHO_SERVER_H
#define EBBRT_ECHO_SERVER_H

#include <stdint.h>

struct ebb_net_if;

/* Datagrams echoed and lost (the stack refused the reply), summed over
 * cores; relaxed reads. */
struct echo_stats {
	uint64_t echoed, refused;
};

/*
 * Echo every UDP datagram to @port of @nif back to its sender, from the
 * core that received it, in the same mbuf (zero copy). Returns 0 or the
 * -errno of ebb_udp_bind(). Main thread, before traffic.
 */
int echo_server_start(struct ebb_net_if *nif, uint16_t port);
void echo_server_stats(struct echo_stats *out);

#endif
