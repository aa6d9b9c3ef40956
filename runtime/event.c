/* SPDX-License-Identifier: BSD-3-Clause */
/* The per-core event loop: three phases per iteration, halting on
 * io_uring when idle, and blocking events on their own stacks. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_debug.h>
#include <rte_pause.h>
#include <rte_lcore.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring_elem.h>

#include "defs.h"
#include "stack.h"

__thread struct ebb_core *ebb_self __attribute__((tls_model("initial-exec")));

#define EBB_EVQ_INIT_CAP 256u
/* Halt timeout while a vector has no fd to wake us: starts small, doubles
 * on each idle halt, capped. */
#define EBB_NOFD_TIMEOUT_MIN_US 50u
#define EBB_NOFD_TIMEOUT_MAX_US 10000u
#define EBB_RING_ENTRIES 64u

/* Counters are written by the owner only and read by anyone: relaxed
 * atomics keep the reads defined without a locked instruction. */
#define STAT_ADD(c, f, n)                                                   \
	__atomic_store_n(&(c)->pub->st.f, (c)->pub->st.f + (n),              \
			 __ATOMIC_RELAXED)

/* --- execute-once queue (owner only) --- */

static int evq_grow(struct ebb_event_queue *q)
{
	uint32_t cap = q->cap ? q->cap * 2 : EBB_EVQ_INIT_CAP;
	struct ebb_event *ev = malloc(sizeof(*ev) * cap);
	uint32_t i, n = q->tail - q->head;

	if (ev == NULL)
		return -ENOMEM;
	for (i = 0; i < n; i++)
		ev[i] = q->ev[(q->head + i) & (q->cap - 1)];
	free(q->ev);
	q->ev = ev;
	q->cap = cap;
	q->head = 0;
	q->tail = n;
	return 0;
}

static inline int evq_push(struct ebb_event_queue *q, ebb_event_fn fn,
			   void *arg)
{
	if (unlikely(q->tail - q->head == q->cap)) {
		int rc = evq_grow(q);

		if (rc)
			return rc;
	}
	q->ev[q->tail & (q->cap - 1)] = (struct ebb_event){ fn, arg };
	q->tail++;
	return 0;
}

static inline bool evq_pop(struct ebb_event_queue *q, struct ebb_event *ev)
{
	if (q->head == q->tail)
		return false;
	*ev = q->ev[q->head & (q->cap - 1)];
	q->head++;
	return true;
}

/* --- spawning --- */

int ebb_spawn_local(ebb_event_fn fn, void *arg)
{
	struct ebb_core *c = ebb_self;

	if (unlikely(c == NULL))
		return -EPERM;
	if (unlikely(fn == NULL))
		return -EINVAL;
	if (unlikely(atomic_load_explicit(&c->state, memory_order_relaxed) >=
		     EBB_CORE_STOPPING))
		return -ESHUTDOWN;
	return evq_push(&c->q, fn, arg);
}

static void ring_doorbell(struct ebb_core_pub *p, int fd)
{
	uint64_t one = 1;
	ssize_t n;

	atomic_fetch_add_explicit(&p->doorbells, 1, memory_order_relaxed);
	/* An eventfd write fails only when the counter would overflow, which
	 * still leaves it readable: the core wakes either way. */
	n = write(fd, &one, sizeof(one));
	(void)n;
}

/*
 * Work for the core of @p has just been made visible to its pending() (an
 * enqueue): wake it if it is halted, through doorbell @fd. Dekker with
 * core_halt(): our enqueue, this fence, then the load of halted; it stores
 * halted, fences, then re-polls every vector. Either it sees the work or
 * we see it halted and ring. The core may be in another process (a
 * cluster node): @p then lives in the shared control block.
 */
static inline void kick_pub(struct ebb_core_pub *p, int fd)
{
	atomic_thread_fence(memory_order_seq_cst);
	if (unlikely(atomic_load_explicit(&p->halted, memory_order_relaxed) ==
		     EBB_HALTED)) {
		int expected = EBB_HALTED;

		/* One doorbell per halt: the first sender to see the core
		 * halted rings, the others find it rung. */
		if (atomic_compare_exchange_strong(&p->halted, &expected,
						   EBB_HALTED_RUNG))
			ring_doorbell(p, fd);
	}
}

void ebb_kick_pub(struct ebb_core_pub *p, int fd)
{
	kick_pub(p, fd);
}

static inline void core_kick(struct ebb_core *c)
{
	kick_pub(c->pub, c->doorbell);
}

int ebb_core_kick(unsigned core)
{
	struct ebb_core *c = ebb_core_get(core);

	if (unlikely(c == NULL))
		return -ENODEV;
	core_kick(c);
	return 0;
}

int ebb_spawn_remote(unsigned core, ebb_event_fn fn, void *arg)
{
	struct ebb_core *c = ebb_core_get(core);
	struct ebb_event ev = { fn, arg };

	if (unlikely(c == NULL))
		return -ENODEV;
	if (unlikely(fn == NULL))
		return -EINVAL;
	if (unlikely(atomic_load_explicit(&c->state, memory_order_acquire) >=
		     EBB_CORE_STOPPING))
		return -ESHUTDOWN;
	if (unlikely(rte_ring_mp_enqueue_elem(c->inbox, &ev, sizeof(ev)) != 0))
		return -EAGAIN;
	core_kick(c);
	return 0;
}

/* The inbox is vector EBB_INBOX_VEC (0) of every core: its doorbell is
 * its interrupt. */
#define EBB_INBOX_VEC 0
static bool inbox_pending(void *arg)
{
	struct ebb_core *c = arg;

	return !rte_ring_empty(c->inbox);
}

static void inbox_handle(void *arg)
{
	struct ebb_core *c = arg;
	struct ebb_event ev[EBB_INBOX_BURST];
	unsigned i, n;

	/* Move only what the local queue can take: an event left in the
	 * inbox is never lost, it waits for the next iteration. */
	n = rte_ring_sc_dequeue_burst_elem(c->inbox, ev, sizeof(ev[0]),
					   EBB_INBOX_BURST, NULL);
	for (i = 0; i < n; i++) {
		if (evq_push(&c->q, ev[i].fn, ev[i].arg) != 0) {
			/* Out of memory: run the rest in place rather than
			 * drop them (order within this burst is kept). */
			for (; i < n; i++)
				ev[i].fn(ev[i].arg);
			return;
		}
	}
}

/* --- vectors and idle handlers --- */

int ebb_vector_add(const struct ebb_vector_ops *ops, void *arg)
{
	struct ebb_core *c = ebb_self;
	unsigned v;

	if (c == NULL)
		return -EPERM;
	if (ops == NULL || ops->pending == NULL || ops->handle == NULL)
		return -EINVAL;
	for (v = 0; v < EBB_MAX_VECTORS; v++) {
		if (!c->vec[v].used) {
			c->vec[v] = (struct ebb_vector){ .ops = *ops, .arg = arg,
							 .used = true };
			if (v >= c->nvec)
				c->nvec = v + 1;
			return (int)v;
		}
	}
	return -ENOSPC;
}

int ebb_vector_remove(int vec)
{
	struct ebb_core *c = ebb_self;

	if (c == NULL)
		return -EPERM;
	if (vec < 0 || vec >= EBB_MAX_VECTORS || !c->vec[vec].used)
		return -ENOENT;
	if (vec == EBB_INBOX_VEC)
		return -EBUSY;	/* the core's own inbox */
	/* A poll still in the ring names the vector by number only; its
	 * completion is reaped and ignored. */
	c->vec[vec].used = false;
	while (c->nvec > 0 && !c->vec[c->nvec - 1].used)
		c->nvec--;
	return 0;
}

int ebb_idle_add(ebb_idle_fn fn, void *arg)
{
	struct ebb_core *c = ebb_self;
	unsigned i;

	if (c == NULL)
		return -EPERM;
	if (fn == NULL)
		return -EINVAL;
	for (i = 0; i < EBB_MAX_IDLE; i++) {
		if (!c->idle[i].used) {
			c->idle[i] = (struct ebb_idle){ fn, arg, true };
			if (i >= c->nidle)
				c->nidle = i + 1;
			return (int)i;
		}
	}
	return -ENOSPC;
}

int ebb_idle_remove(int handle)
{
	struct ebb_core *c = ebb_self;

	if (c == NULL)
		return -EPERM;
	if (handle < 0 || handle >= EBB_MAX_IDLE || !c->idle[handle].used)
		return -ENOENT;
	c->idle[handle].used = false;
	while (c->nidle > 0 && !c->idle[c->nidle - 1].used)
		c->nidle--;
	return 0;
}

/* --- the loop --- */

static inline bool any_pending(struct ebb_core *c)
{
	unsigned v;

	for (v = 0; v < c->nvec; v++)
		if (c->vec[v].used && c->vec[v].ops.pending(c->vec[v].arg))
			return true;
	return c->q.head != c->q.tail;
}

/* One iteration: (1) vectors, (2) one execute-once event, (3) recurring
 * handlers. Returns whether it did any work. */
static bool loop_iteration(struct ebb_core *c)
{
	struct ebb_event ev;
	bool work = false;
	unsigned v, i;

	/* Vector 0, the inbox, is checked inline: it is on every core and
	 * this is the hottest loop of the runtime. */
	if (!rte_ring_empty(c->inbox)) {
		inbox_handle(c);
		STAT_ADD(c, vectors, 1);
		work = true;
	}
	for (v = EBB_INBOX_VEC + 1; v < c->nvec; v++) {
		struct ebb_vector *vec = &c->vec[v];

		if (vec->used && vec->ops.pending(vec->arg)) {
			vec->ops.handle(vec->arg);
			STAT_ADD(c, vectors, 1);
			work = true;
		}
	}
	if (evq_pop(&c->q, &ev)) {
		c->in_event = true;
		ev.fn(ev.arg);
		/* A blocking event may have resumed us on another stack:
		 * reload nothing from before the call but through c. */
		c->in_event = false;
		STAT_ADD(c, events, 1);
		work = true;
	}
	for (i = 0; i < c->nidle; i++)
		if (c->idle[i].used)
			work |= c->idle[i].fn(c->idle[i].arg);
	if (ebb_node.rcu != NULL)
		rte_rcu_qsbr_quiescent(ebb_node.rcu, c->id);
	STAT_ADD(c, iterations, 1);
	return work;
}

static void set_timerfd(struct ebb_core *c, uint64_t tick)
{
	struct itimerspec its;
	uint64_t now, ns = 0;

	if (tick == c->timerfd_deadline)
		return;
	memset(&its, 0, sizeof(its));
	if (tick != EBB_WHEEL_NEVER) {
		now = rte_rdtsc();
		uint64_t tsc = tick << ebb_node.tick_shift;

		if (tsc > now)
			ns = (uint64_t)((double)(tsc - now) * 1e9 /
					(double)ebb_node.tsc_hz);
		/* A zero it_value disarms: fire as soon as possible. */
		if (ns == 0)
			ns = 1;
		its.it_value.tv_sec = (time_t)(ns / 1000000000ull);
		its.it_value.tv_nsec = (long)(ns % 1000000000ull);
	}
	if (timerfd_settime(c->timerfd, 0, &its, NULL) == 0)
		c->timerfd_deadline = tick;
}

static void drain_fd(int fd)
{
	uint64_t v;
	ssize_t n = read(fd, &v, sizeof(v));

	(void)n;
}

/* user_data of the ring's polls */
#define UD_TIMERFD 1000u

static void add_poll(struct ebb_core *c, int fd, uint64_t ud)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&c->ring);

	/* The ring has room for every vector and the timerfd. */
	RTE_ASSERT(sqe != NULL);
	io_uring_prep_poll_add(sqe, fd, POLLIN);
	io_uring_sqe_set_data64(sqe, ud);
}

/*
 * Halt: publish halted, arm the vectors, poll once more, then block in
 * io_uring on the vectors' fds (the doorbell is the inbox's) and the
 * timerfd until one is readable.
 */
static void core_halt(struct ebb_core *c)
{
	struct io_uring_cqe *cqe;
	struct __kernel_timespec ts, *tsp = NULL;
	bool armed[EBB_MAX_VECTORS] = { false };
	bool nofd = false, doorbell_fired = false, timer_fired = false;
	unsigned v, head, seen = 0;
	int rc;

	/* Pairs with the fence in core_kick() (ebb_spawn_remote(),
	 * ebb_core_kick()). */
	atomic_store_explicit(&c->pub->halted, EBB_HALTED, memory_order_seq_cst);
	atomic_thread_fence(memory_order_seq_cst);

	for (v = 0; v < c->nvec; v++) {
		struct ebb_vector *vec = &c->vec[v];

		/* The timer vector wakes us through the timerfd, set below
		 * to the next deadline. */
		if (!vec->used || (int)v == c->timer_vec)
			continue;
		if (vec->ops.fd < 0 && vec->ops.fd != EBB_VECTOR_FD_KICK) {
			nofd = true;
			continue;
		}
		if (vec->ops.arm != NULL && vec->ops.arm(vec->arg) != 0) {
			/* Could not enable the interrupt: treat as fd-less. */
			nofd = true;
			continue;
		}
		/* A kicked vector is disarmed after the halt but has no fd
		 * to poll: its producers ring the doorbell (core_kick()),
		 * which is always polled as the inbox's fd. */
		armed[v] = true;
	}

	/* The race check: work that arrived before we published halted. */
	if (any_pending(c) ||
	    atomic_load_explicit(&c->state, memory_order_relaxed) !=
		    EBB_CORE_RUNNING)
		goto out;

	set_timerfd(c, ebb_timer_next_tick(c));
	for (v = 0; v < c->nvec; v++) {
		if (armed[v] && c->vec[v].ops.fd >= 0 && !c->vec[v].in_ring) {
			add_poll(c, c->vec[v].ops.fd, v);
			c->vec[v].in_ring = true;
		}
	}
	if (c->timerfd_deadline != EBB_WHEEL_NEVER && !c->timerfd_in_ring) {
		add_poll(c, c->timerfd, UD_TIMERFD);
		c->timerfd_in_ring = true;
	}
	if (nofd) {
		uint64_t us = c->nofd_timeout_us;

		ts.tv_sec = (long long)(us / 1000000u);
		ts.tv_nsec = (long long)(us % 1000000u) * 1000;
		tsp = &ts;
		c->nofd_timeout_us = RTE_MIN(us * 2, EBB_NOFD_TIMEOUT_MAX_US);
	}
	STAT_ADD(c, halts, 1);
	/* Offline only while blocked: a grace period must not wait for a
	 * sleeping core, and pending() above still ran as a reader. */
	if (ebb_node.rcu != NULL)
		rte_rcu_qsbr_thread_offline(ebb_node.rcu, c->id);
	/* -EINTR (a signal, e.g. net_tap's) and -ETIME just end the halt. */
	rc = io_uring_submit_and_wait_timeout(&c->ring, &cqe, 1, tsp, NULL);
	(void)rc;
	if (ebb_node.rcu != NULL)
		rte_rcu_qsbr_thread_online(ebb_node.rcu, c->id);
	STAT_ADD(c, wakes, 1);

	io_uring_for_each_cqe(&c->ring, head, cqe) {
		uint64_t ud = io_uring_cqe_get_data64(cqe);

		seen++;
		if (ud == UD_TIMERFD) {
			c->timerfd_in_ring = false;
			timer_fired = true;
		} else if (ud < EBB_MAX_VECTORS) {
			c->vec[ud].in_ring = false;
			if ((int)ud == c->inbox_vec)
				doorbell_fired = true;
		}
	}
	io_uring_cq_advance(&c->ring, seen);
	if (doorbell_fired)
		drain_fd(c->doorbell);
	if (timer_fired) {
		drain_fd(c->timerfd);
		c->timerfd_deadline = EBB_WHEEL_NEVER;
	}
out:
	atomic_store_explicit(&c->pub->halted, EBB_RUNNING, memory_order_relaxed);
	for (v = 0; v < c->nvec; v++)
		if (armed[v] && c->vec[v].ops.disarm != NULL)
			c->vec[v].ops.disarm(c->vec[v].arg);
}

static void loop_run(struct ebb_core *c)
{
	while (atomic_load_explicit(&c->state, memory_order_relaxed) ==
	       EBB_CORE_RUNNING) {
		if (loop_iteration(c)) {
			c->idle_spins = 0;
			c->nofd_timeout_us = EBB_NOFD_TIMEOUT_MIN_US;
			continue;
		}
		if (++c->idle_spins >=
		    __atomic_load_n(&c->spin_limit, __ATOMIC_RELAXED)) {
			core_halt(c);
			c->idle_spins = 0;
		}
	}
}

/* Runs on a pool stack: the loop, then back to the thread's stack. */
static void loop_entry(void *arg)
{
	struct ebb_core *c = arg;
	void *junk;

	loop_run(c);
	ebb_ctx_switch(&junk, c->thread_sp);
	__builtin_unreachable();
}

int ebb_event_core_run(struct ebb_core *c)
{
	struct ebb_stack *s = ebb_stack_get(c);

	if (s == NULL)
		return -ENOMEM;
	/* The loop always runs on pool stacks so that any of them can be
	 * handed to a blocked event; we come back here when it stops. */
	c->stack_cur = s;
	ebb_ctx_start(&c->thread_sp, ebb_stack_top(s), loop_entry, c);
	return 0;
}

/* --- blocking events --- */

int __ebb_event_save_context(struct ebb_event_context *ctx,
			     struct ebb_stack *s)
{
	struct ebb_core *c = ebb_self;
	int expected = EBB_CTX_NONE;

	ctx->core = c->id;
	ctx->stack = c->stack_cur;
	/* Publishes core and stack to an activator (seq_cst CAS). */
	if (!atomic_compare_exchange_strong((_Atomic int *)&ctx->state,
					    &expected, EBB_CTX_SAVED)) {
		/* Activated before we got here: go on without blocking. */
		atomic_store((_Atomic int *)&ctx->state, EBB_CTX_NONE);
		ebb_stack_put(c, s);
		return 0;
	}
	c->stack_cur = s;
	c->in_event = false;
	/* From here an activation may queue resume_event() on this core,
	 * but it cannot run before we have switched away. */
	ebb_ctx_start(&ctx->sp, ebb_stack_top(s), loop_entry, c);

	/* Resumed by resume_event() on this same core. */
	c = ebb_self;
	if (c->stack_to_free != NULL) {
		ebb_stack_put(c, c->stack_to_free);
		c->stack_to_free = NULL;
	}
	c->in_event = true;
	return 0;
}

int ebb_event_save_context(struct ebb_event_context *ctx)
{
	struct ebb_core *c = ebb_self;
	struct ebb_stack *s;

	if (c == NULL || !c->in_event || ctx == NULL)
		return -EPERM;
	s = ebb_stack_get(c);
	if (s == NULL)
		return -ENOMEM;
	return __ebb_event_save_context(ctx, s);
}

static void resume_event(void *arg)
{
	struct ebb_event_context *ctx = arg;
	struct ebb_core *c = ebb_self;
	void *junk;

	/* The stack we run on now is abandoned with its loop frames (the
	 * loop keeps no state on its stack) and freed by the resumed side. */
	c->stack_to_free = c->stack_cur;
	c->stack_cur = ctx->stack;
	atomic_store_explicit((_Atomic int *)&ctx->state, EBB_CTX_NONE,
			      memory_order_relaxed);
	ebb_ctx_switch(&junk, ctx->sp);
	__builtin_unreachable();
}

int ebb_event_activate_context(struct ebb_event_context *ctx)
{
	int state, rc;

	if (ctx == NULL)
		return -EINVAL;
	state = atomic_load((_Atomic int *)&ctx->state);
	for (;;) {
		if (state == EBB_CTX_NONE) {
			/* Not saved yet: its save will return at once. */
			if (atomic_compare_exchange_weak(
				    (_Atomic int *)&ctx->state, &state,
				    EBB_CTX_EARLY))
				return 0;
		} else if (state == EBB_CTX_SAVED) {
			if (atomic_compare_exchange_weak(
				    (_Atomic int *)&ctx->state, &state,
				    EBB_CTX_ACTIVATED))
				break;
		} else {
			return -EINVAL;
		}
	}
	/* Same core: straight onto the local queue, no inbox round. */
	if (ebb_self != NULL && ctx->core == ebb_self->id) {
		rc = evq_push(&ebb_self->q, resume_event, ctx);
		if (rc != 0)
			atomic_store((_Atomic int *)&ctx->state, EBB_CTX_SAVED);
		return rc;
	}
	rc = ebb_spawn_remote(ctx->core, resume_event, ctx);
	/* The core's inbox is full: wait for room rather than lose the
	 * resume (the context would be stuck forever). */
	while (rc == -EAGAIN) {
		rte_pause();
		rc = ebb_spawn_remote(ctx->core, resume_event, ctx);
	}
	if (rc != 0)
		atomic_store((_Atomic int *)&ctx->state, EBB_CTX_SAVED);
	return rc;
}

/* --- per-core set-up --- */

int ebb_event_core_init(struct ebb_core *c)
{
	struct ebb_vector_ops inbox = {
		.pending = inbox_pending,
		.handle = inbox_handle,
		.fd = c->doorbell,
	};
	int rc;

	rc = evq_grow(&c->q);
	if (rc)
		return rc;
	rc = io_uring_queue_init(EBB_RING_ENTRIES, &c->ring, 0);
	if (rc)
		return rc;
	c->ring_ok = true;
	c->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (c->timerfd < 0)
		return -errno;
	c->timerfd_deadline = EBB_WHEEL_NEVER;
	c->nofd_timeout_us = EBB_NOFD_TIMEOUT_MIN_US;
	rc = ebb_vector_add(&inbox, c);
	if (rc < 0)
		return rc;
	/* The loop relies on it (inline check of vector 0). */
	RTE_VERIFY(rc == EBB_INBOX_VEC);
	c->inbox_vec = rc;
	return 0;
}

void ebb_event_core_fini(struct ebb_core *c)
{
	if (c->ring_ok)
		io_uring_queue_exit(&c->ring);
	c->ring_ok = false;
	if (c->timerfd >= 0)
		close(c->timerfd);
	c->timerfd = -1;
	free(c->q.ev);
	c->q.ev = NULL;
	c->q.cap = 0;
	ebb_stack_core_fini(c);
}

/* --- introspection --- */

void ebb_core_pub_stats(struct ebb_core_pub *p, struct ebb_core_stats *out)
{
	out->iterations = __atomic_load_n(&p->st.iterations, __ATOMIC_RELAXED);
	out->events = __atomic_load_n(&p->st.events, __ATOMIC_RELAXED);
	out->vectors = __atomic_load_n(&p->st.vectors, __ATOMIC_RELAXED);
	out->halts = __atomic_load_n(&p->st.halts, __ATOMIC_RELAXED);
	out->wakes = __atomic_load_n(&p->st.wakes, __ATOMIC_RELAXED);
	out->doorbells = atomic_load_explicit(&p->doorbells,
					      memory_order_relaxed);
}

int ebb_core_stats(unsigned core, struct ebb_core_stats *out)
{
	struct ebb_core *c = ebb_core_get(core);

	if (c == NULL || out == NULL)
		return -ENODEV;
	ebb_core_pub_stats(c->pub, out);
	return 0;
}

int ebb_core_set_spin(unsigned core, unsigned spin)
{
	struct ebb_core *c = ebb_core_get(core);

	if (c == NULL)
		return -ENODEV;
	/* Read by the owner every idle iteration; a relaxed store is
	 * enough, the new value applies from its next idle spin. */
	__atomic_store_n(&c->spin_limit, spin ? spin : 1, __ATOMIC_RELAXED);
	return 0;
}

bool ebb_core_halted(unsigned core)
{
	struct ebb_core *c = ebb_core_get(core);

	return c != NULL &&
	       atomic_load_explicit(&c->pub->halted, memory_order_relaxed) != 0;
}
