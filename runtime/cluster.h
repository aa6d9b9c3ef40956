/* SPDX-License-Identifier: BSD-3-Clause */
/* Private: the cluster control block that the frontend keeps in a memzone
 * on shared hugepages, and the start-up handshake between the frontend and
 * a node. Shared by runtime/, ebbs/ and frontend/; never installed. */
#ifndef EBBRT_CLUSTER_H
#define EBBRT_CLUSTER_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>

#include <rte_common.h>

#include <ebbrt/cluster.h>
#include <ebbrt/event.h>
#include <ebbrt/node.h>

struct rte_ring;
struct rte_mempool;

#define EBB_CLUSTER_MZ "ebbrt_cluster"
#define EBB_CLUSTER_MAGIC 0x45424243u	/* "EBBC" */
#define EBB_CLUSTER_VERSION 2u
/* Environment of a node the frontend launched: its end of the control
 * socket. */
#define EBB_CONTROL_FD_ENV "EBBRT_CONTROL_FD"

/* Room for a struct ebb_net_stats (ebbs/net checks it fits). */
#define EBB_NET_STATS_WORDS 48

/* Messenger counters of one core. */
struct ebb_msg_stats {
	uint64_t sent, received, full, dropped;
};

/*
 * What other processes may read or write of one core: its halted word
 * (the doorbell protocol of event.c) and its counters. Standalone, each
 * core has its own; in a cluster it lives in the control block, so the
 * frontend and the other nodes can wake the core and read its stats.
 */
struct ebb_core_pub {
	_Atomic int halted;		/* EBB_RUNNING/HALTED/HALTED_RUNG */
	_Atomic uint64_t doorbells;	/* doorbell writes made to the core */
	struct ebb_core_stats st;	/* written by the owner (relaxed) */
	struct ebb_msg_stats msg;	/* written by the owner (relaxed) */
} __rte_cache_aligned;

/* The links of a node that `ebbrt run --faults` can impair: its port (a
 * tap facing Linux, or its device) and its end of the wire. */
enum ebb_cluster_link { EBB_LINK_PORT, EBB_LINK_WIRE, EBB_LINKS };

/* Counters of struct ebb_cluster_faults, in the order of struct
 * ebb_nic_stats' faults_* fields. */
enum {
	EBB_FAULT_DROPPED,
	EBB_FAULT_DUPLICATED,
	EBB_FAULT_REORDERED,
	EBB_FAULT_CORRUPTED,
	EBB_FAULT_DELAYED,
	EBB_FAULT_COUNTERS,
};

/* Faults a node injects on what it sends on one link (drivers/nic.c gives
 * them to ebb_nic_set_faults() when the node borrows the port). The
 * settings are the frontend's, written before the node starts; the
 * counters are the node's, per core (relaxed stores), zeroed when it
 * borrows the port. */
struct ebb_cluster_faults {
	uint32_t on;
	uint32_t delay_us;
	uint64_t seed;
	double drop, duplicate, reorder, corrupt;
	uint64_t count[EBB_MAX_CORES][EBB_FAULT_COUNTERS];
};

/* One node of the cluster; slot 0 is the frontend. Written by the
 * frontend, except the cores' pub blocks and ready. */
struct ebb_cluster_node {
	_Atomic int state;		/* enum ebb_node_state */
	int pid;
	uint32_t ncores;
	uint32_t restarts;
	int cpus[EBB_MAX_CORES];
	uint32_t ip, netmask, gateway;	/* host byte order; 0: none */
	uint16_t port;			/* its NIC port, or UINT16_MAX */
	uint16_t wire_port;		/* its end of the wire, or UINT16_MAX */
	int32_t wire_peer;		/* node at the other end, or -1 */
	uint32_t wire_ip;		/* its address on the wire, or 0 */
	uint32_t id_base, id_count;	/* its range of global Ebb ids */
	/* Messenger: one MPSC inbox per core. Made by the frontend, kept
	 * across restarts. */
	struct rte_ring *inbox[EBB_MAX_CORES];
	/* The node's one pool: rx buffers of its port, the frames it sends
	 * on the wire, its messages (the frontend's own for node 0). */
	struct rte_mempool *port_pool;
	struct ebb_core_pub core[EBB_MAX_CORES];
	/* The counters of the node's first network interface (ebbs/net),
	 * per core, for `ebbrt status`: a struct ebb_net_stats each. */
	_Atomic int net_claimed;
	uint64_t net_stats[EBB_MAX_CORES][EBB_NET_STATS_WORDS];
	/* `ebbrt run --faults`, per link (enum ebb_cluster_link). */
	struct ebb_cluster_faults faults[EBB_LINKS];
};

/* The GlobalIdMap store (ebbs/gidmap.c): a fixed table in the control
 * block, read directly under a seqlock, written only by the frontend. */
#define EBB_GIDMAP_SLOTS 1024
#define EBB_GIDMAP_VALUE_MAX 240
struct ebb_gidmap_entry {
	_Atomic uint32_t seq;		/* odd while being written */
	uint32_t id;			/* 0: free */
	uint32_t len;
	uint8_t value[EBB_GIDMAP_VALUE_MAX];
};

struct ebb_cluster {
	uint32_t magic, version;
	int frontend_pid;
	uint32_t nnodes;		/* slots in use, frontend included */
	uint32_t msix;			/* enum ebb_msix_mode */
	struct ebb_cluster_node node[EBB_MAX_NODES];
	struct ebb_gidmap_entry gid[EBB_GIDMAP_SLOTS];
};

/* How a node's halted core learns of frames on its NIC queue. */
enum ebb_msix_mode {
	EBB_MSIX_PASS = 0,	/* the node waits on the queue fd itself */
	EBB_MSIX_FORWARD,	/* the frontend waits and rings the doorbell */
};

/*
 * Handshake on the control socket (SOCK_SEQPACKET, one message each):
 *   node -> frontend  HELLO {pid}
 *   frontend -> node  BOOT (struct ebb_boot) + fds: the doorbells of every
 *                     core of every node, node by node, then this node's
 *                     rx queue interrupt fds (pass mode)
 *   node -> frontend  READY once its cores run (a node that fails to
 *                     start just exits: the frontend reports its exit
 *                     status and last line on stderr)
 *   frontend -> node  STOP: stop the cores (ebb_stop())
 * A closed socket means the other side is gone.
 */
enum ebb_ctl_type {
	EBB_CTL_HELLO = 1,
	EBB_CTL_BOOT,
	EBB_CTL_READY,
	EBB_CTL_STOP = 5,
};

struct ebb_ctl_msg {
	uint32_t magic;
	uint32_t type;
	int32_t pid;
	char text[200];			/* unused so far */
};

struct ebb_boot {
	uint32_t magic;
	uint32_t type;			/* EBB_CTL_BOOT */
	uint32_t node_id;
	uint32_t nnodes;
	uint32_t ncores[EBB_MAX_NODES];	/* cores of each node */
	int cpus[EBB_MAX_CORES];	/* this node's */
	uint32_t nqueue_fds;		/* rx interrupt fds that follow */
	char file_prefix[64];
	char log_level[64];
	char eal_extra[256];		/* space separated: --no-pci or -a ... */
};

/* The name a node's slab pool gets in a cluster: this prefix, then the
 * app's name (runtime/slab.c); the frontend frees them when it dies. */
#define EBB_SLAB_PREFIX_FMT "s%u."

/* Free a slab pool and its objects' memzone (runtime/slab.c), from any
 * process: the frontend frees those of a node that died. */
void ebb_slab_free_pool(struct rte_mempool *mp);

/* The control block, or NULL when standalone. */
extern struct ebb_cluster *ebb_cluster;

/* The doorbell fd of core @core of node @node in this process, or -1. */
int ebb_cluster_doorbell(unsigned node, unsigned core);

/* The rx interrupt fd this node was given for queue @q, or -1. */
int ebb_cluster_queue_fd(unsigned q);

/* Wake core @core of node @node if it is halted (see ebb_core_kick()). */
void ebb_cluster_kick(unsigned node, unsigned core);

/* The same protocol on any pub block + fd (event.c). */
void ebb_kick_pub(struct ebb_core_pub *p, int fd);
/* A consistent-enough copy of @p's counters (event.c). */
void ebb_core_pub_stats(struct ebb_core_pub *p, struct ebb_core_stats *out);

/*
 * The frontend's side of ebb_init(): called once the EAL is up and before
 * the cores are made; it creates the control block and the doorbells
 * (ebb_cluster, ebb_cluster_set_doorbell()). Set by the frontend before it
 * calls ebb_init().
 */
extern int (*ebb_cluster_frontend_hook)(void);
void ebb_cluster_set_doorbell(unsigned node, unsigned core, int fd);

/* Node side, called by ebb_init(): the handshake (before the EAL) and the
 * attach to the control block (after). */
int ebb_cluster_boot(struct ebb_boot *boot, const char **eal_args,
		     unsigned max_args);
int ebb_cluster_attach(void);
/* The node's network counters area (zeroed), for the first interface
 * that asks; NULL when standalone or taken. Release it at close. */
uint64_t (*ebb_cluster_net_claim(void))[EBB_NET_STATS_WORDS];
void ebb_cluster_net_release(void);

/* Set by the Messenger (ebbs/): run on every core as it starts, to add
 * the vector of its inbox. */
extern int (*ebb_msg_core_start)(void);

/* After ebb_start(): tell the frontend we serve. */
void ebb_cluster_ready(void);

#endif
