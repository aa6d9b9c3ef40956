/* SPDX-License-Identifier: BSD-3-Clause */
/* Private: the per-core and per-node state of the runtime, shared by the
 * files of runtime/. Never installed. */
#ifndef EBBRT_DEFS_H
#define EBBRT_DEFS_H

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <liburing.h>
#include <rte_common.h>
#include <rte_ring.h>

#include <ebbrt/ebbrt.h>

#include "cluster.h"
#include "timer_wheel.h"

struct rte_rcu_qsbr;

#define EBB_MAX_VECTORS 32
#define EBB_MAX_IDLE 32
#define EBB_INBOX_BURST 32
#define EBB_STACK_SIZE (256u * 1024)

#define __ebb_cold __attribute__((cold, noinline))

/* An execute-once event as queued. */
struct ebb_event {
	ebb_event_fn fn;
	void *arg;
};

/* The calling core's local FIFO of execute-once events; grows by doubling. */
struct ebb_event_queue {
	struct ebb_event *ev;
	uint32_t head, tail;	/* free-running; mask = cap - 1 */
	uint32_t cap;
};

struct ebb_vector {
	struct ebb_vector_ops ops;
	void *arg;
	bool used;
	bool in_ring;		/* a poll on ops.fd is outstanding in the ring */
};

struct ebb_idle {
	ebb_idle_fn fn;
	void *arg;
	bool used;
};

/* An event stack (with a guard page below it); the header sits at its
 * top. */
struct ebb_stack {
	struct ebb_stack *next;		/* free list */
	struct ebb_stack *all_next;	/* every stack of the core */
	void *base;			/* mmap base, guard page included */
	size_t len;
};

/* struct ebb_event_context.state */
enum {
	EBB_CTX_NONE = 0,
	EBB_CTX_SAVED,		/* blocked: may be activated */
	EBB_CTX_ACTIVATED,	/* resume queued on its core */
	EBB_CTX_EARLY,		/* activated before it was saved */
};

/* struct ebb_core.halted */
enum {
	EBB_RUNNING = 0,
	EBB_HALTED,		/* blocked or about to block */
	EBB_HALTED_RUNG,	/* and its doorbell has been written */
};

enum ebb_core_state {
	EBB_CORE_INIT = 0,
	EBB_CORE_RUNNING,
	EBB_CORE_STOPPING,
	EBB_CORE_STOPPED,
};

/*
 * One core. The first part is written by the owning core only; the
 * shared part is read and written by other threads and sits on its own
 * cache lines.
 */
struct ebb_core {
	/* --- owner only --- */
	unsigned id;
	int cpu;
	int numa;
	uint32_t spin_limit;
	uint32_t idle_spins;
	struct ebb_event_queue q;
	struct ebb_vector vec[EBB_MAX_VECTORS];
	unsigned nvec;			/* highest used + 1 */
	struct ebb_idle idle[EBB_MAX_IDLE];
	unsigned nidle;
	struct ebb_timer_wheel wheel;
	unsigned tick_shift;
	uint64_t timerfd_deadline;	/* tick the timerfd is set to */
	int timerfd;
	int inbox_vec;
	int timer_vec;
	struct io_uring ring;
	bool ring_ok;
	bool doorbell_in_ring;
	bool timerfd_in_ring;
	uint64_t nofd_timeout_us;	/* growing halt timeout, fd-less vectors */
	/* blocking events */
	struct ebb_stack *stack_cur;	/* stack the loop runs on now */
	struct ebb_stack *stack_to_free; /* released after a switch */
	struct ebb_stack *stack_free;
	struct ebb_stack *stack_all;
	unsigned stacks_made;
	void *thread_sp;		/* thread's own stack, for the exit */
	bool in_event;
	pthread_t thread;
	/* Halted word and counters: &pub_local when standalone, the
	 * core's slot in the cluster control block otherwise, where other
	 * processes wake the core and read its stats. */
	struct ebb_core_pub *pub;

	/* --- shared --- */
	alignas(RTE_CACHE_LINE_SIZE) _Atomic int state; /* ebb_core_state */
	int doorbell;			/* eventfd */
	struct rte_ring *inbox;		/* MP enqueue / SC dequeue of events */
	size_t inbox_len;
	struct ebb_core_pub pub_local;
} __rte_cache_aligned;

struct ebb_node {
	bool inited;		/* EAL is up (once per process) */
	bool finished;		/* ebb_fini() ran */
	bool started;
	unsigned node_id;
	unsigned ncores;
	bool hosted;
	struct ebb_core *core[EBB_MAX_CORES];
	uint64_t tsc_hz;
	unsigned tick_shift;		/* tsc >> tick_shift = timer tick */
	struct rte_rcu_qsbr *rcu;
	/* Cluster mode: the boot message from the frontend. */
	struct ebb_boot boot;
	int ctl_fd;			/* control socket, -1 standalone */
};

extern struct ebb_node ebb_node;
extern __thread struct ebb_core *ebb_self
	__attribute__((tls_model("initial-exec")));

static inline struct ebb_core *ebb_core_get(unsigned id)
{
	return id < ebb_node.ncores ? ebb_node.core[id] : NULL;
}

/* Core start-up and tear-down hooks of each part, called on the core
 * thread before its loop starts / after it ends. */
int ebb_event_core_init(struct ebb_core *c);
void ebb_event_core_fini(struct ebb_core *c);
/* Run the loop of the calling core until it is stopped. */
int ebb_event_core_run(struct ebb_core *c);
/* Save the running event on @c's stack @s (reserved by the caller so that
 * nothing can fail once the context is published). */
int __ebb_event_save_context(struct ebb_event_context *ctx,
			     struct ebb_stack *s);
int ebb_timer_core_init(struct ebb_core *c);
void ebb_timer_core_fini(struct ebb_core *c);
int ebb_trans_core_init(struct ebb_core *c);
void ebb_trans_core_fini(struct ebb_core *c);
int ebb_gp_core_init(struct ebb_core *c);
void ebb_stack_core_fini(struct ebb_core *c);

/* The all-NULL table of threads that are not cores (trans.c). */
extern void *ebb_trans_null[EBB_ID_MAX];

/* Clear @id from every core's translation table (the id is being
 * reused). */
void ebb_trans_forget(ebb_id_t id);

/* Node-wide set-up of each part, called by ebb_init()/ebb_fini(). */
int ebb_idmap_init(void);
void ebb_idmap_fini(void);
int ebb_gp_init(void);
void ebb_gp_fini(void);
void ebb_ebballoc_init(void);

/* Timer ticks <-> TSC. */
static inline uint64_t ebb_tick_of_tsc(uint64_t tsc)
{
	return tsc >> ebb_node.tick_shift;
}

/* Next tick at which the calling core's timers need the loop, or
 * EBB_WHEEL_NEVER. */
uint64_t ebb_timer_next_tick(struct ebb_core *c);

/* x86-64 context switch (context.S): save callee-saved registers on the
 * current stack, store rsp in *@save_sp, load @new_sp and return there. */
void ebb_ctx_switch(void **save_sp, void *new_sp);
/* Save as above, then run @fn(@arg) on the fresh stack @stack_top; @fn
 * must never return. */
void ebb_ctx_start(void **save_sp, void *stack_top, void (*fn)(void *),
		   void *arg);

#endif
