/* SPDX-License-Identifier: BSD-3-Clause */
/* The cluster as a node sees it: which nodes exist, their state and
 * addresses. A standalone process is a cluster of one node (id 1) with
 * no frontend. */
#ifndef EBBRT_CLUSTER_PUB_H
#define EBBRT_CLUSTER_PUB_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Upper bound on nodes of a cluster, the frontend (node 0) included. */
#define EBB_MAX_NODES 16

enum ebb_node_state {
	EBB_NODE_EMPTY = 0,	/* no such node */
	EBB_NODE_STARTING,	/* launched, handshake not finished */
	EBB_NODE_READY,		/* serving */
	EBB_NODE_DEAD,		/* killed or crashed */
	EBB_NODE_EXITED,	/* returned from main, or stopped */
};

/* True when this process is a node launched by `ebbrt run` (or the
 * frontend itself); false when standalone. */
bool ebb_cluster_mode(void);

/* Node slots of the cluster, the frontend included (1 when
 * standalone). Node ids run from 0 to this minus 1. */
unsigned ebb_cluster_nodes(void);

/* State of node @node (enum ebb_node_state); EBB_NODE_EMPTY for an
 * unknown node. Standalone: this node (1) is EBB_NODE_READY. */
int ebb_cluster_node_state(unsigned node);

/* Number of cores of node @node, 0 when unknown. */
unsigned ebb_cluster_node_cores(unsigned node);

/* IPv4 address given to node @node by `ebbrt run` (host byte order), 0
 * when none or standalone. */
uint32_t ebb_cluster_node_ip(unsigned node);

/* Netmask and gateway that go with ebb_cluster_node_ip() (host byte
 * order; 0 when none). */
uint32_t ebb_cluster_node_netmask(unsigned node);
uint32_t ebb_cluster_node_gateway(unsigned node);

/* Address of node @node on the virtual wire (`ebbrt run --wire`: nodes 1
 * and 2 are .1 and .2 of the subnet's first /24), host byte order; 0 when
 * it has no wire end. */
uint32_t ebb_cluster_node_wire_ip(unsigned node);

/* Ask the frontend to stop the whole cluster, as `ebbrt stop` does.
 * Returns 0, -ENOTSUP when standalone, or the -errno of kill() (-ESRCH:
 * the frontend is gone). */
int ebb_cluster_stop(void);

/* Printable name of a node state. */
const char *ebb_node_state_name(int state);

#ifdef __cplusplus
}
#endif
#endif
