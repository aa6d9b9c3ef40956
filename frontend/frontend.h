/* SPDX-License-Identifier: BSD-3-Clause */
/* Private to the `ebbrt` command: its options and its three verbs. */
#ifndef EBBRT_FRONTEND_H
#define EBBRT_FRONTEND_H

#include <stdbool.h>
#include <stdint.h>

#include <ebbrt/cluster.h>
#include <ebbrt/node.h>

#define EBB_FE_MAX_DEVS (EBB_MAX_NODES - 1)

enum ebb_restart { EBB_RESTART_NO, EBB_RESTART_ON_FAILURE, EBB_RESTART_ALWAYS };

/* One `--faults [LINK[@N]:]SPEC`: what a node injects on what it sends
 * (docs/cluster.md). */
#define EBB_FE_MAX_FAULTS 32
struct ebb_fe_faults {
	unsigned node;			/* 0: every node */
	bool port, wire;		/* the links it sets */
	bool on;			/* false: "off" */
	uint64_t seed;
	double drop, duplicate, reorder, corrupt;
	uint32_t delay_us;
	char spec[96];			/* as given, for status */
};

struct ebb_fe_opts {
	const char *name;		/* cluster name: lock, prefix, taps */
	unsigned nodes;
	unsigned cores_per_node;
	int cpus[EBB_FE_MAX_DEVS * EBB_MAX_CORES];
	unsigned ncpus;
	const char *vdev[EBB_FE_MAX_DEVS];	/* per node, in order */
	unsigned nvdev;
	const char *allow[EBB_FE_MAX_DEVS];	/* PCI, per node */
	unsigned nallow;
	uint32_t subnet;		/* node n: subnet + (n << 8) + 2 /24 */
	/* Static addresses, per node in order (0: the subnet's). */
	uint32_t ip[EBB_FE_MAX_DEVS], netmask[EBB_FE_MAX_DEVS];
	uint32_t gateway[EBB_FE_MAX_DEVS];
	unsigned nip, ngateway;
	bool wire;			/* virtual wire between nodes 1 and 2 */
	enum ebb_restart restart;
	int msix;			/* enum ebb_msix_mode */
	const char *log_level;
	bool log_level_set;		/* given by the user */
	unsigned start_timeout_s;
	unsigned nmbufs;
	/* In command-line order: a later one overrides an earlier one. */
	struct ebb_fe_faults faults[EBB_FE_MAX_FAULTS];
	unsigned nfaults;
	char **app_argv;
};

/* Where a cluster's files live. */
#define EBB_FE_RUN_DIR "/run/ebbrt"
#define EBB_FE_DPDK_DIR "/var/run/dpdk"

/* The verbs; each returns the process exit code. */
int ebb_fe_run(const struct ebb_fe_opts *o);
int ebb_fe_status(const char *name);
int ebb_fe_stop(const char *name, unsigned timeout_s);

/* "ebbrt-<name>": the DPDK file prefix of a cluster. */
void ebb_fe_prefix(const char *name, char *buf, size_t len);
/* Path of the lock file of cluster @name. */
void ebb_fe_lock_path(const char *name, char *buf, size_t len);
/* The pid of the frontend running cluster @name, or 0. */
int ebb_fe_running_pid(const char *name);

#endif
