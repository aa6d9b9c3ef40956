/* SPDX-License-Identifier: BSD-3-Clause */
/* A node: DPDK set-up, its pinned cores, and their lifecycle. */
#ifndef EBBRT_NODE_H
#define EBBRT_NODE_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Upper bound on cores per node (meson option max_cores). */
#ifndef EBB_MAX_CORES
#define EBB_MAX_CORES 16
#endif

/*
 * Node configuration. Zero-initialise, then set what you need:
 * every zero field takes its default.
 */
struct ebb_config {
	/* CPUs to run cores on, as a list "0-1,4"; NULL: every CPU this
	 * process may run on (up to EBB_MAX_CORES). Core i runs on the i-th
	 * CPU of the list. Env EBBRT_CPUS overrides. */
	const char *cpus;
	/* Idle iterations before a core halts; 0 means the default (2048).
	 * Env EBBRT_SPIN overrides. */
	unsigned spin_before_halt;
	/* Hosted mode: never spin, halt as soon as an iteration is idle. */
	bool hosted;
	/* Extra EAL arguments, NULL-terminated; NULL: standalone defaults
	 * (--in-memory, --no-pci). Env EBBRT_EAL_ARGS (space separated)
	 * is appended. */
	const char *const *eal_args;
	/* Inbox entries per core for ebb_spawn_remote (power of 2, default
	 * 4096). */
	unsigned inbox_size;
};

/*
 * Set up the node: DPDK EAL, the per-core state of every core, the system
 * Ebbs. Cores are not started. Returns 0, -EALREADY, -EINVAL (bad cpu
 * list), -ENODEV (EAL failed: the log says why, usually hugepages), or
 * -ENOMEM. Call once per process, from the main thread.
 */
int ebb_init(const struct ebb_config *cfg);

/*
 * Start one pinned thread per core, each running its event loop.
 * Returns 0, -EALREADY (running), -ENOENT (no ebb_init), or -errno from
 * thread creation. Call on: the thread that called ebb_init().
 */
int ebb_start(void);

/* Ask every core to stop after its current event. Any thread. */
void ebb_stop(void);

/* Wait until every core has stopped; 0 or -ENOENT. Main thread. */
int ebb_wait(void);

/* ebb_start() then ebb_wait(): serve until ebb_stop(). */
int ebb_run(void);

/* Release everything ebb_init() set up; cores must be stopped. Accepts
 * being called without ebb_init(). */
void ebb_fini(void);

/* This node's id (0 for the frontend, 1.. for native nodes; 1 when
 * standalone). */
unsigned ebb_node_id(void);

/* Number of cores of this node. */
unsigned ebb_core_count(void);

/* The calling thread's core id, or EBB_CORE_NONE if it is not a core. */
#define EBB_CORE_NONE (~0u)
extern __thread unsigned ebb_this_core_id
	__attribute__((tls_model("initial-exec")));
static inline unsigned ebb_core_id(void)
{
	return ebb_this_core_id;
}

/* CPU and NUMA node core @core runs on, or -ENODEV. */
int ebb_core_cpu(unsigned core);
int ebb_core_numa(unsigned core);

/* Monotonic time in TSC cycles, and cycles per second. */
uint64_t ebb_tsc_hz(void);

#ifdef __cplusplus
}
#endif
#endif
