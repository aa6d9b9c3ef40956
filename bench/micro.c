/* SPDX-License-Identifier: BSD-3-Clause */
/* Micro benchmark of the runtime's fast paths (Ebb calls, events, blocking
 * events, allocator, timers, halting and waking), each reported against a
 * baseline measured in the same run on the same CPUs. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include <rte_pause.h>

#include <ebbrt/ebbrt.h>

#include "common.h"

/* glibc's own allocator, still exported although jemalloc (linked by
 * libebbrt) takes over malloc() in this process. */
extern void *__libc_malloc(size_t size);
extern void __libc_free(void *p);

/*
 * Each step runs in a child process of its own with its own node: ebb_init()
 * works once per process and spin_before_halt is fixed there, while the
 * polling steps want cores that never halt and the halting steps want the
 * default. Linux baselines that need the CPUs run in the child before its
 * cores start; baselines that belong on a core thread run in core events.
 */

/* Never halt during a polling step (idle iterations before a halt). */
#define SPIN_POLL (1u << 30)
/* The node default: what an application gets. */
#define SPIN_DEFAULT 0u

#define EXIT_SETUP 3		/* child: the node could not be set up */
#define WAIT_LIMIT_S 120.0	/* any single wait for a core */

#if defined(__clang__)
#define NOIPA __attribute__((noinline))
#else
#define NOIPA __attribute__((noinline, noipa))
#endif

/* --- options --- */

static struct {
	bool quick;
	const char *json;
	double idle_s;
	bool idle_set;
	int cpu[2];
} opt = { .cpu = { 0, 1 } };

/* Iterations or samples: the full count, or the --quick one. */
static uint64_t count_of(uint64_t full, uint64_t quick)
{
	return opt.quick ? quick : full;
}

static unsigned reps(void)
{
	return opt.quick ? 3 : 5;
}

/* --- results, sent from a step's child to the parent --- */

/* One record per write(): below PIPE_BUF, so writes never interleave. */
_Static_assert(sizeof(struct bench_record) <= 4096,
	       "records fit in PIPE_BUF");

static int rec_fd = -1;

static void rec_send(const struct bench_record *r)
{
	ssize_t n = write(rec_fd, r, sizeof(*r));

	if (n != (ssize_t)sizeof(*r)) {
		fprintf(stderr, "micro: lost a result (pipe: %s)\n",
			strerror(errno));
		_exit(1);
	}
}

static void emit(const char *metric, const char *unit, double value,
		 double baseline, const char *baseline_name, const char *stat,
		 int tkind, double target)
{
	struct bench_record r;

	bench_record_result(&r, metric, unit, value, baseline, baseline_name,
			    stat, tkind, target);
	rec_send(&r);
}

__attribute__((format(printf, 1, 2))) static void note(const char *fmt, ...)
{
	struct bench_record r;
	va_list ap;

	va_start(ap, fmt);
	bench_record_vnote(&r, fmt, ap);
	va_end(ap);
	rec_send(&r);
}

/* A step cannot go on: say why and end its child. The cores may be stuck,
 * so the node is not taken down. */
__attribute__((format(printf, 1, 2), noreturn)) static void die(
	const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "\nmicro: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	_exit(1);
}

/* --- time and small helpers --- */


/* Sleep-poll @flag until it is set; false after @sec seconds. Sleeps long
 * enough between looks not to disturb the cores sharing our CPUs. */
static bool wait_flag(atomic_int *flag, double sec)
{
	uint64_t end = bench_now_ns() + (uint64_t)(sec * 1e9);

	while (!atomic_load_explicit(flag, memory_order_acquire)) {
		if (bench_now_ns() > end)
			return false;
		usleep(2000);
	}
	return true;
}

static void pin_self(int cpu, cpu_set_t *old)
{
	int rc = bench_pin_self(cpu, old);

	if (rc != 0)
		die("cannot pin to cpu %d: %s", cpu, strerror(-rc));
}

static void thread_start_on(pthread_t *t, int cpu, void *(*fn)(void *),
			    void *arg)
{
	pthread_attr_t attr;
	cpu_set_t set;
	int rc;

	pthread_attr_init(&attr);
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
	rc = pthread_create(t, &attr, fn, arg);
	pthread_attr_destroy(&attr);
	if (rc)
		die("pthread_create: %s", strerror(rc));
}

/* --- the node of a step --- */

/* What to run when the node cannot get its hugepages. */
static const char hugepage_hint[] =
	"It needs 2 MiB hugepages; as root:\n" BENCH_HUGEPAGE_FIX;

static void node_up(unsigned spin)
{
	struct ebb_config cfg;
	char cpus[32];
	int rc;

	memset(&cfg, 0, sizeof(cfg));
	snprintf(cpus, sizeof(cpus), "%d,%d", opt.cpu[0], opt.cpu[1]);
	cfg.cpus = cpus;
	cfg.spin_before_halt = spin;
	rc = ebb_init(&cfg);
	if (rc) {
		fprintf(stderr,
			"\nmicro: cannot set up a node (ebb_init: %s).\n%s",
			strerror(-rc), hugepage_hint);
		_exit(EXIT_SETUP);
	}
	rc = ebb_start();
	if (rc) {
		fprintf(stderr, "\nmicro: ebb_start: %s\n", strerror(-rc));
		_exit(EXIT_SETUP);
	}
}

static void node_down(void)
{
	ebb_stop();
	ebb_wait();
	ebb_fini();
}

/* Run @fn(@arg) as an event on @core and wait for it to return. */
struct call {
	ebb_event_fn fn;
	void *arg;
	atomic_int done;
};

static void call_tramp(void *p)
{
	struct call *c = p;

	c->fn(c->arg);
	atomic_store_explicit(&c->done, 1, memory_order_release);
}

static void run_on(unsigned core, ebb_event_fn fn, void *arg)
{
	struct call c = { .fn = fn, .arg = arg };
	int rc;

	atomic_init(&c.done, 0);
	rc = ebb_spawn_remote(core, call_tramp, &c);
	if (rc)
		die("ebb_spawn_remote(%u): %s", core, strerror(-rc));
	if (!wait_flag(&c.done, WAIT_LIMIT_S))
		die("core %u did not finish an event in %.0f s", core,
		    WAIT_LIMIT_S);
}

static char stat_best[24];

static const char *best_of(void)
{
	snprintf(stat_best, sizeof(stat_best), "best of %u", reps());
	return stat_best;
}

static void min_into(double *best, double v)
{
	if (*best == 0 || v < *best)
		*best = v;
}

/* ===================================================================
 * 1. Ebb rep lookup
 * =================================================================== */

struct brep {
	ebb_id_t self;
	unsigned core;
};

static void *brep_fault(ebb_id_t id, void *root, unsigned core)
{
	struct brep *r = ebb_malloc(sizeof(*r));

	(void)root;
	if (r == NULL)
		return NULL;	/* errno is ENOMEM */
	r->self = id;
	r->core = core;
	return r;
}

static const struct ebb_type brep_type = { .name = "bench",
					   .fault = brep_fault };
EBB_DEFINE_ACCESSOR(bench, struct brep, &brep_type)

/* The baseline: a call that cannot be inlined or analysed away. */
static struct brep *direct_target;

static NOIPA struct brep *direct_rep(ebb_id_t id)
{
	(void)id;
	return direct_target;
}

/* The memory clobber makes each iteration a fresh call site: the table
 * pointer and the entry are loaded again every time. */
static NOIPA uint64_t lookup_indep(ebb_id_t id, uint64_t n)
{
	uint64_t t0 = bench_now_ns();

	for (uint64_t i = 0; i < n; i++) {
		struct brep *r = bench_rep(id);

		__asm__ volatile("" : : "r"(r) : "memory");
	}
	return bench_now_ns() - t0;
}

static NOIPA uint64_t direct_indep(ebb_id_t id, uint64_t n)
{
	uint64_t t0 = bench_now_ns();

	for (uint64_t i = 0; i < n; i++) {
		struct brep *r = direct_rep(id);

		__asm__ volatile("" : : "r"(r) : "memory");
	}
	return bench_now_ns() - t0;
}

/* Each id comes from the previous rep: lookups cannot overlap. */
static NOIPA uint64_t lookup_dep(ebb_id_t id, uint64_t n)
{
	uint64_t t0 = bench_now_ns();

	for (uint64_t i = 0; i < n; i++) {
		id = bench_rep(id)->self;
		__asm__ volatile("" : "+r"(id) : : "memory");
	}
	return bench_now_ns() - t0;
}

static NOIPA uint64_t direct_dep(ebb_id_t id, uint64_t n)
{
	uint64_t t0 = bench_now_ns();

	for (uint64_t i = 0; i < n; i++) {
		id = direct_rep(id)->self;
		__asm__ volatile("" : "+r"(id) : : "memory");
	}
	return bench_now_ns() - t0;
}

struct lookup_res {
	ebb_id_t id;
	uint64_t n;
	double ind, ind_base, dep, dep_base;
	int err;
};

static void lookup_ev(void *p)
{
	struct lookup_res *L = p;
	struct brep *r = bench_rep(L->id);	/* the fault, once */
	double n = (double)L->n;

	if (r == NULL || r->core != ebb_core_id()) {
		L->err = r == NULL ? errno : EINVAL;
		return;
	}
	direct_target = r;
	lookup_indep(L->id, L->n / 10);		/* warm up */
	direct_indep(L->id, L->n / 10);
	for (unsigned k = 0; k < reps(); k++) {
		min_into(&L->ind, (double)lookup_indep(L->id, L->n) / n);
		min_into(&L->ind_base, (double)direct_indep(L->id, L->n) / n);
		min_into(&L->dep, (double)lookup_dep(L->id, L->n) / n);
		min_into(&L->dep_base, (double)direct_dep(L->id, L->n) / n);
	}
}

static void step_lookup(void)
{
	static struct { int unused; } root;
	struct lookup_res L = { .n = count_of(50000000, 5000000) };

	node_up(SPIN_POLL);
	L.id = ebb_create(&brep_type, &root);
	if (L.id == EBB_ID_NONE)
		die("ebb_create: %s", strerror(errno));
	run_on(0, lookup_ev, &L);
	if (L.err)
		die("Ebb lookup on core 0 failed: %s", strerror(L.err));
	emit("Ebb lookup hit, independent", "ns", L.ind, L.ind_base,
	     "direct call of a noinline fn", best_of(), BENCH_TGT_OVER, 1.0);
	emit("Ebb lookup hit, dependent chain", "ns", L.dep, L.dep_base,
	     "direct call of a noinline fn", best_of(), BENCH_TGT_OVER, 1.0);
}

/* ===================================================================
 * 2. spawn_local + dispatch
 * =================================================================== */

struct sl {
	uint64_t n, N;
	bool respawn;
	uint64_t t0, t1;
	atomic_int done;
	int err;
};

/* The event under test; the baseline calls the very same function. */
static void sl_ev(void *p)
{
	struct sl *s = p;

	if (++s->n < s->N) {
		if (s->respawn) {
			int rc = ebb_spawn_local(sl_ev, s);

			if (rc)
				s->err = rc;
		}
	} else if (s->respawn) {
		s->t1 = bench_now_ns();
		atomic_store_explicit(&s->done, 1, memory_order_release);
	}
}

static void sl_chain_begin(void *p)
{
	struct sl *s = p;

	s->n = 0;
	s->respawn = true;
	s->t0 = bench_now_ns();
	s->err = ebb_spawn_local(sl_ev, s);
}

#define SL_BURST 64u

/* Spawns a burst of plain events, then itself behind them. */
static void sl_burst_drv(void *p)
{
	struct sl *s = p;

	if (s->n >= s->N) {
		s->t1 = bench_now_ns();
		atomic_store_explicit(&s->done, 1, memory_order_release);
		return;
	}
	for (unsigned k = 0; k < SL_BURST; k++)
		if (ebb_spawn_local(sl_ev, s))
			s->err = -ENOMEM;
	if (ebb_spawn_local(sl_burst_drv, s))
		s->err = -ENOMEM;
}

static void sl_burst_begin(void *p)
{
	struct sl *s = p;

	s->n = 0;
	s->respawn = false;
	s->t0 = bench_now_ns();
	sl_burst_drv(s);
}

static void sl_base(void *p)
{
	struct sl *s = p;
	ebb_event_fn volatile fp = sl_ev;
	uint64_t n = s->N, t0;

	s->respawn = false;
	s->N = UINT64_MAX;
	s->n = 0;
	t0 = bench_now_ns();
	for (uint64_t i = 0; i < n; i++)
		fp(s);
	s->t1 = bench_now_ns() - t0;
	s->N = n;
}

/* Runs @begin on core 0 and returns ns per event. */
static double sl_run(struct sl *s, ebb_event_fn begin)
{
	atomic_store(&s->done, 0);
	run_on(0, begin, s);
	if (!wait_flag(&s->done, WAIT_LIMIT_S))
		die("spawn_local chain did not finish (%" PRIu64 "/%" PRIu64
		    " events)", s->n, s->N);
	if (s->err)
		die("ebb_spawn_local: %s", strerror(-s->err));
	return (double)(s->t1 - s->t0) / (double)s->N;
}

static void step_spawn_local(void)
{
	struct sl s = { .N = count_of(2000000, 200000) / SL_BURST * SL_BURST };
	double chain = 0, burst = 0, base = 0;

	node_up(SPIN_POLL);
	sl_run(&s, sl_chain_begin);	/* warm up */
	for (unsigned k = 0; k < reps(); k++) {
		min_into(&chain, sl_run(&s, sl_chain_begin));
		min_into(&burst, sl_run(&s, sl_burst_begin));
		run_on(0, sl_base, &s);
		min_into(&base, (double)s.t1 / (double)s.N);
	}
	emit("spawn_local+dispatch, self re-spawn", "ns", chain, base,
	     "indirect call of the same fn", best_of(), BENCH_TGT_MAX, 30);
	emit("spawn_local+dispatch, bursts of 64", "ns", burst, base,
	     "indirect call of the same fn", best_of(), BENCH_TGT_MAX, 30);
}

/* ===================================================================
 * 3. spawn_remote round trip between polling cores
 * =================================================================== */

struct rtt {
	uint64_t n, N;
	uint64_t t0, t1;
	atomic_int done;
	atomic_int err;
};

static void rtt_ping(void *p);

static void rtt_send(unsigned core, ebb_event_fn fn, struct rtt *r)
{
	int rc;

	while ((rc = ebb_spawn_remote(core, fn, r)) == -EAGAIN)
		rte_pause();
	if (rc)
		atomic_store(&r->err, rc);
}

/* On core 1: straight back. */
static void rtt_pong(void *p)
{
	rtt_send(0, rtt_ping, p);
}

/* On core 0: one round trip done. */
static void rtt_ping(void *p)
{
	struct rtt *r = p;

	if (++r->n >= r->N) {
		r->t1 = bench_now_ns();
		atomic_store_explicit(&r->done, 1, memory_order_release);
		return;
	}
	rtt_send(1, rtt_pong, r);
}

static void rtt_begin(void *p)
{
	struct rtt *r = p;

	r->n = 0;
	r->t0 = bench_now_ns();
	rtt_send(1, rtt_pong, r);
}

/* Linux reference 1: two threads blocking on eventfds. */
struct efd_pp {
	int ab, ba;
	uint64_t n;
};

static void *efd_pp_echo(void *p)
{
	struct efd_pp *e = p;
	uint64_t v;

	for (uint64_t i = 0; i < e->n; i++) {
		if (read(e->ab, &v, sizeof(v)) != sizeof(v) ||
		    write(e->ba, &v, sizeof(v)) != sizeof(v))
			break;
	}
	return NULL;
}

static double efd_pingpong(uint64_t n)
{
	struct efd_pp e = { .ab = eventfd(0, EFD_CLOEXEC),
			    .ba = eventfd(0, EFD_CLOEXEC), .n = n };
	uint64_t v = 1, t0, dt;
	cpu_set_t old;
	pthread_t t;

	if (e.ab < 0 || e.ba < 0)
		die("eventfd: %s", strerror(errno));
	pin_self(opt.cpu[0], &old);
	thread_start_on(&t, opt.cpu[1], efd_pp_echo, &e);
	t0 = bench_now_ns();
	for (uint64_t i = 0; i < n; i++) {
		if (write(e.ab, &v, sizeof(v)) != sizeof(v) ||
		    read(e.ba, &v, sizeof(v)) != sizeof(v))
			die("eventfd ping-pong: %s", strerror(errno));
	}
	dt = bench_now_ns() - t0;
	pthread_join(t, NULL);
	sched_setaffinity(0, sizeof(old), &old);
	close(e.ab);
	close(e.ba);
	return (double)dt / (double)n;
}

/* Linux reference 2: two threads spinning on shared cache lines. */
struct spin_pp {
	alignas(64) atomic_uint_fast64_t ping;
	alignas(64) atomic_uint_fast64_t pong;
	uint64_t n;
};

static void *spin_pp_echo(void *p)
{
	struct spin_pp *s = p;

	for (uint64_t i = 1; i <= s->n; i++) {
		while (atomic_load_explicit(&s->ping, memory_order_acquire) !=
		       i)
			rte_pause();
		atomic_store_explicit(&s->pong, i, memory_order_release);
	}
	return NULL;
}

static double spin_pingpong(uint64_t n)
{
	static struct spin_pp s;
	uint64_t t0, dt;
	cpu_set_t old;
	pthread_t t;

	atomic_store(&s.ping, 0);
	atomic_store(&s.pong, 0);
	s.n = n;
	pin_self(opt.cpu[0], &old);
	thread_start_on(&t, opt.cpu[1], spin_pp_echo, &s);
	t0 = bench_now_ns();
	for (uint64_t i = 1; i <= n; i++) {
		atomic_store_explicit(&s.ping, i, memory_order_release);
		while (atomic_load_explicit(&s.pong, memory_order_acquire) != i)
			rte_pause();
	}
	dt = bench_now_ns() - t0;
	pthread_join(t, NULL);
	sched_setaffinity(0, sizeof(old), &old);
	return (double)dt / (double)n;
}

static void step_rtt(void)
{
	uint64_t n = count_of(200000, 20000), ne = count_of(5000, 500);
	double efd = 0, spin = 0, ebb = 0;
	struct rtt r = { .N = n };

	/* The CPUs are free until node_up() starts the cores. */
	efd_pingpong(ne / 10);
	spin_pingpong(n / 10);
	for (unsigned k = 0; k < reps(); k++) {
		min_into(&efd, efd_pingpong(ne));
		min_into(&spin, spin_pingpong(n));
	}

	node_up(SPIN_POLL);
	for (unsigned k = 0; k <= reps(); k++) {	/* the first warms up */
		atomic_store(&r.done, 0);
		run_on(0, rtt_begin, &r);
		if (!wait_flag(&r.done, WAIT_LIMIT_S))
			die("round trips stalled at %" PRIu64, r.n);
		if (atomic_load(&r.err))
			die("ebb_spawn_remote: %s",
			    strerror(-atomic_load(&r.err)));
		if (k > 0)
			min_into(&ebb, (double)(r.t1 - r.t0) / (double)n);
	}
	emit("spawn_remote RTT polling, vs blocking", "ns", ebb, efd,
	     "eventfd ping-pong, blocking", best_of(), BENCH_TGT_MAX, 1000);
	emit("spawn_remote RTT polling, vs spinning", "ns", ebb, spin,
	     "atomics ping-pong, spinning", best_of(), BENCH_TGT_MAX, 1000);
}

/* ===================================================================
 * 4. context save + activate
 * =================================================================== */

struct cx {
	struct ebb_event_context ctx;
	uint64_t n;
	double ebb, base;
	int err;
};

static void cx_activate(void *p)
{
	struct cx *x = p;
	int rc = ebb_event_activate_context(&x->ctx);

	if (rc)
		x->err = rc;
}

/* Each pass: queue the activator, block; the activator resumes us. */
static NOIPA uint64_t cx_loop(struct cx *x)
{
	uint64_t t0 = bench_now_ns();
	int rc;

	for (uint64_t i = 0; i < x->n; i++) {
		rc = ebb_spawn_local(cx_activate, x);
		if (rc == 0)
			rc = ebb_event_save_context(&x->ctx);
		if (rc || x->err) {
			x->err = rc ? rc : x->err;
			break;
		}
	}
	return bench_now_ns() - t0;
}

static ucontext_t uc_main, uc_co;
static alignas(64) char uc_stack[64 * 1024];

static void uc_co_fn(void)
{
	for (;;)
		swapcontext(&uc_co, &uc_main);
}

static NOIPA uint64_t uc_loop(uint64_t n)
{
	uint64_t t0;

	getcontext(&uc_co);
	uc_co.uc_stack.ss_sp = uc_stack;
	uc_co.uc_stack.ss_size = sizeof(uc_stack);
	uc_co.uc_link = NULL;
	makecontext(&uc_co, uc_co_fn, 0);
	t0 = bench_now_ns();
	for (uint64_t i = 0; i < n; i++)
		swapcontext(&uc_main, &uc_co);
	return bench_now_ns() - t0;
}

static void cx_ev(void *p)
{
	struct cx *x = p;
	double n = (double)x->n;

	cx_loop(x);	/* warm up: makes the stacks */
	uc_loop(x->n / 10);
	for (unsigned k = 0; k < reps() && !x->err; k++) {
		min_into(&x->ebb, (double)cx_loop(x) / n);
		min_into(&x->base, (double)uc_loop(x->n) / n);
	}
}

static void step_context(void)
{
	struct cx x = { .n = count_of(500000, 50000) };

	node_up(SPIN_POLL);
	run_on(0, cx_ev, &x);
	if (x.err)
		die("blocking events: %s", strerror(-x.err));
	emit("context save + activate pair", "ns", x.ebb, x.base,
	     "glibc swapcontext pair", best_of(), BENCH_TGT_MAX, 50);
}

/* ===================================================================
 * 5. GpAllocator
 * =================================================================== */

/* The asm lets the pointer escape, so the pair cannot be elided. */
#define ALLOC_LOOP(name, alloc, release)                                    \
	static NOIPA uint64_t name(uint64_t n)                              \
	{                                                                   \
		uint64_t t0 = bench_now_ns();                                     \
		for (uint64_t i = 0; i < n; i++) {                          \
			void *p = alloc(64);                                \
			if (unlikely(p == NULL))                            \
				return 0;                                   \
			*(volatile char *)p = (char)i;                      \
			__asm__ volatile("" : : "r"(p) : "memory");         \
			release(p);                                         \
		}                                                           \
		return bench_now_ns() - t0;                                       \
	}

ALLOC_LOOP(alloc_loop_gp, ebb_malloc, ebb_free)
ALLOC_LOOP(alloc_loop_glibc, __libc_malloc, __libc_free)
ALLOC_LOOP(alloc_loop_je, malloc, free)

struct alloc_res {
	uint64_t n;
	double gp, glibc, je;
	bool failed;
};

static void alloc_ev(void *p)
{
	struct alloc_res *A = p;
	double n = (double)A->n;
	uint64_t g, l, j;

	alloc_loop_gp(A->n / 10);
	alloc_loop_glibc(A->n / 10);
	alloc_loop_je(A->n / 10);
	for (unsigned k = 0; k < reps(); k++) {
		g = alloc_loop_gp(A->n);
		l = alloc_loop_glibc(A->n);
		j = alloc_loop_je(A->n);
		if (g == 0 || l == 0 || j == 0) {
			A->failed = true;
			return;
		}
		min_into(&A->gp, (double)g / n);
		min_into(&A->glibc, (double)l / n);
		min_into(&A->je, (double)j / n);
	}
}

static void step_alloc(void)
{
	struct alloc_res A = { .n = count_of(5000000, 1000000) };

	node_up(SPIN_POLL);
	run_on(0, alloc_ev, &A);
	if (A.failed)
		die("an allocator returned NULL");
	emit("ebb_malloc+ebb_free 64 B, vs glibc", "ns", A.gp, A.glibc,
	     "glibc __libc_malloc+__libc_free", best_of(), BENCH_TGT_RATIO, 1.0);
	emit("ebb_malloc+ebb_free 64 B, vs jemalloc", "ns", A.gp, A.je,
	     "jemalloc malloc+free", best_of(), BENCH_TGT_NONE, 0);
}

/* ===================================================================
 * 6-8. timers
 * =================================================================== */

#define TIMER_DELAY_NS 1000000ull

static void timer_nop(struct ebb_timer *t, void *arg)
{
	(void)t;
	(void)arg;
}

static NOIPA uint64_t timer_pair_loop(struct ebb_timer *t, uint64_t n)
{
	uint64_t t0 = bench_now_ns();

	for (uint64_t i = 0; i < n; i++) {
		ebb_timer_start(t, TIMER_DELAY_NS, 0);
		ebb_timer_cancel(t);
	}
	return bench_now_ns() - t0;
}

static NOIPA uint64_t timerfd_pair_loop(int fd, uint64_t n)
{
	struct itimerspec arm = { .it_value = { 0, (long)TIMER_DELAY_NS } };
	struct itimerspec off = { { 0, 0 }, { 0, 0 } };
	uint64_t t0 = bench_now_ns();

	for (uint64_t i = 0; i < n; i++) {
		timerfd_settime(fd, 0, &arm, NULL);
		timerfd_settime(fd, 0, &off, NULL);
	}
	return bench_now_ns() - t0;
}

struct tpair {
	uint64_t n, nfd;
	double ebb, base;
	int err;
};

static void tpair_ev(void *p)
{
	struct tpair *T = p;
	struct ebb_timer t;
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);

	if (fd < 0) {
		T->err = errno;
		return;
	}
	ebb_timer_init(&t, timer_nop, NULL);
	if (ebb_timer_start(&t, TIMER_DELAY_NS, 0) != 0 ||
	    ebb_timer_cancel(&t) != 0) {
		T->err = EINVAL;
		close(fd);
		return;
	}
	timer_pair_loop(&t, T->n / 10);
	timerfd_pair_loop(fd, T->nfd / 10);
	for (unsigned k = 0; k < reps(); k++) {
		min_into(&T->ebb, (double)timer_pair_loop(&t, T->n) /
					  (double)T->n);
		min_into(&T->base, (double)timerfd_pair_loop(fd, T->nfd) /
					   (double)T->nfd);
	}
	close(fd);
}

/* One-shot lateness: a chain of timers on one core, each started by the
 * handler of the previous one. */
struct late {
	struct ebb_timer t;
	uint64_t start;
	int64_t *lat;
	unsigned i, n;
	unsigned early;
	atomic_int done;
	int err;
};

static void late_fire(struct ebb_timer *t, void *arg)
{
	struct late *L = arg;
	int64_t d = (int64_t)(ebb_time_ns() - L->start) -
		    (int64_t)TIMER_DELAY_NS;
	int rc;

	if (d < 0)
		L->early++;
	L->lat[L->i++] = d;
	if (L->i == L->n) {
		atomic_store_explicit(&L->done, 1, memory_order_release);
		return;
	}
	L->start = ebb_time_ns();
	rc = ebb_timer_start(t, TIMER_DELAY_NS, 0);
	if (rc) {
		L->err = rc;
		atomic_store_explicit(&L->done, 1, memory_order_release);
	}
}

static void late_begin(void *p)
{
	struct late *L = p;

	L->i = 0;
	ebb_timer_init(&L->t, late_fire, L);
	L->start = ebb_time_ns();
	L->err = ebb_timer_start(&L->t, TIMER_DELAY_NS, 0);
	if (L->err)
		atomic_store_explicit(&L->done, 1, memory_order_release);
}

/* Says how many of @n sorted lateness samples were far off, and where:
 * a fixed lateness that recurs is a timer bug, not noise. */
static void late_outliers(const char *who, const int64_t *lat, unsigned n)
{
	unsigned far = 0, at = n;

	for (unsigned i = 0; i < n; i++)
		if (lat[i] > 1000000) {
			far++;
			if (at == n)
				at = i;
		}
	if (far == 0)
		return;
	if (far == 1)
		note("%s timers: 1 of %u fired more than 1 ms late (%.1f us)",
		     who, n, (double)lat[at] / 1e3);
	else
		note("%s timers: %u of %u fired more than 1 ms late "
		     "(%.1f .. %.1f us)",
		     who, far, n, (double)lat[at] / 1e3,
		     (double)lat[n - 1] / 1e3);
}

/* Lateness of @n 1 ms timers on core 1, sorted into @lat. */
static void ebb_lateness(int64_t *lat, unsigned n)
{
	struct late L = { .lat = lat, .n = n };
	double limit = WAIT_LIMIT_S + (double)n * 2e-3;

	atomic_init(&L.done, 0);
	if (ebb_spawn_remote(1, late_begin, &L) != 0)
		die("ebb_spawn_remote(1) failed");
	if (!wait_flag(&L.done, limit))
		die("timers stalled: %u of %u fired", L.i, n);
	if (L.err)
		die("ebb_timer_start: %s", strerror(-L.err));
	if (L.early)
		note("%u of %u ebbrt timers fired EARLY", L.early, n);
	qsort(lat, n, sizeof(*lat), bench_cmp_i64);
	late_outliers("ebbrt", lat, n);
}

struct lx_late {
	int64_t *lat;
	unsigned n;
	int err;
	atomic_int done;
};

static void *lx_late_thread(void *p)
{
	struct lx_late *X = p;
	struct itimerspec arm = { .it_value = { 0, (long)TIMER_DELAY_NS } };
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
	uint64_t v, start;

	if (fd < 0) {
		X->err = errno;
		return NULL;
	}
	for (unsigned i = 0; i < X->n; i++) {
		start = bench_now_ns();
		if (timerfd_settime(fd, 0, &arm, NULL) != 0 ||
		    read(fd, &v, sizeof(v)) != sizeof(v)) {
			X->err = errno;
			break;
		}
		X->lat[i] = (int64_t)(bench_now_ns() - start) -
			    (int64_t)TIMER_DELAY_NS;
	}
	close(fd);
	atomic_store_explicit(&X->done, 1, memory_order_release);
	return NULL;
}

/* The same with a Linux thread blocked on a timerfd on core 1's CPU; the
 * main thread waits for it as it waits for the cores. */
static void linux_lateness(int64_t *lat, unsigned n)
{
	struct lx_late X = { .lat = lat, .n = n };
	pthread_t t;

	atomic_init(&X.done, 0);
	thread_start_on(&t, opt.cpu[1], lx_late_thread, &X);
	if (!wait_flag(&X.done, WAIT_LIMIT_S + (double)n * 2e-3))
		die("timerfd baseline stalled");
	pthread_join(t, NULL);
	if (X.err)
		die("timerfd: %s", strerror(X.err));
	qsort(lat, n, sizeof(*lat), bench_cmp_i64);
	late_outliers("Linux", lat, n);
}

static void emit_lateness(const char *mode, const int64_t *ebb,
			  const int64_t *lx, unsigned n)
{
	char name[64];
	static const struct {
		const char *label;
		double p;
	} q[] = { { "p50", 0.50 }, { "p99", 0.99 } };

	for (unsigned i = 0; i < 2; i++) {
		snprintf(name, sizeof(name), "timer 1 ms lateness %s, %s",
			 q[i].label, mode);
		emit(name, "us", (double)bench_pct_i64(ebb, n, q[i].p) / 1e3,
		     (double)bench_pct_i64(lx, n, q[i].p) / 1e3,
		     "Linux thread on a timerfd", q[i].label, BENCH_TGT_NONE, 0);
	}
}

static void step_timer(void)
{
	struct tpair T = { .n = count_of(2000000, 200000),
			   .nfd = count_of(50000, 10000) };
	unsigned n = (unsigned)count_of(500, 100);
	int64_t *ebb = calloc(n, sizeof(*ebb)), *lx = calloc(n, sizeof(*lx));

	if (ebb == NULL || lx == NULL)
		die("out of memory");
	linux_lateness(lx, n);
	node_up(SPIN_POLL);
	run_on(0, tpair_ev, &T);
	if (T.err)
		die("timer pair: %s", strerror(T.err));
	emit("timer start+cancel pair", "ns", T.ebb, T.base,
	     "timerfd_settime arm+disarm", best_of(), BENCH_TGT_NONE, 0);
	ebb_lateness(ebb, n);
	emit_lateness("polling core", ebb, lx, n);
	free(ebb);
	free(lx);
}

static void step_timer_halt(void)
{
	unsigned n = (unsigned)count_of(500, 100);
	int64_t *ebb = calloc(n, sizeof(*ebb)), *lx = calloc(n, sizeof(*lx));
	struct ebb_core_stats s0, s1;

	if (ebb == NULL || lx == NULL)
		die("out of memory");
	linux_lateness(lx, n);
	node_up(SPIN_DEFAULT);
	ebb_core_stats(1, &s0);
	ebb_lateness(ebb, n);
	ebb_core_stats(1, &s1);
	emit_lateness("halting core", ebb, lx, n);
	note("halting-core timers: core 1 halted %" PRIu64 " times and woke "
	     "%" PRIu64 " times for %u timers (one halt per timer expected)",
	     s1.halts - s0.halts, s1.wakes - s0.wakes, n);
	free(ebb);
	free(lx);
}

/* ===================================================================
 * 7. spawn_remote to a halted core
 * =================================================================== */

/* A blocked target gets time to settle into its wait before each ping. */
#define SETTLE_NS 1000000ull

static void wake_ev(void *p)
{
	atomic_store_explicit((atomic_int *)p, 1, memory_order_release);
}

struct lx_wake {
	int efd;
	atomic_int ready;
	atomic_int got;
	atomic_int stop;
};

static void *lx_wake_thread(void *p)
{
	struct lx_wake *W = p;
	uint64_t v;

	for (;;) {
		atomic_store_explicit(&W->ready, 1, memory_order_release);
		if (read(W->efd, &v, sizeof(v)) != sizeof(v))
			break;
		if (atomic_load(&W->stop))
			break;
		atomic_store_explicit(&W->got, 1, memory_order_release);
	}
	return NULL;
}

static bool spin_until(atomic_int *f, uint64_t limit_ns)
{
	uint64_t end = bench_now_ns() + limit_ns;

	while (!atomic_load_explicit(f, memory_order_acquire))
		if (bench_now_ns() > end)
			return false;
		else
			rte_pause();
	return true;
}

/* A thread blocked in read() on an eventfd, woken from core 0's CPU. */
static void linux_wake(int64_t *lat, unsigned n)
{
	struct lx_wake W = { .efd = eventfd(0, EFD_CLOEXEC) };
	uint64_t one = 1, t0;
	cpu_set_t old;
	pthread_t t;

	if (W.efd < 0)
		die("eventfd: %s", strerror(errno));
	atomic_init(&W.ready, 0);
	atomic_init(&W.got, 0);
	atomic_init(&W.stop, 0);
	pin_self(opt.cpu[0], &old);
	thread_start_on(&t, opt.cpu[1], lx_wake_thread, &W);
	for (unsigned i = 0; i < n; i++) {
		if (!spin_until(&W.ready, 5000000000ull))
			die("baseline thread did not come back to read()");
		bench_sleep_ns(SETTLE_NS);
		atomic_store(&W.ready, 0);
		atomic_store(&W.got, 0);
		t0 = bench_now_ns();
		if (write(W.efd, &one, sizeof(one)) != sizeof(one))
			die("eventfd write: %s", strerror(errno));
		if (!spin_until(&W.got, 5000000000ull))
			die("baseline thread did not wake");
		lat[i] = (int64_t)(bench_now_ns() - t0);
	}
	atomic_store(&W.stop, 1);
	spin_until(&W.ready, 5000000000ull);
	if (write(W.efd, &one, sizeof(one)) != sizeof(one))
		die("eventfd write: %s", strerror(errno));
	pthread_join(t, NULL);
	sched_setaffinity(0, sizeof(old), &old);
	close(W.efd);
	qsort(lat, n, sizeof(*lat), bench_cmp_i64);
}

/* Wait until @core has published that it halts. */
static bool wait_halted(unsigned core, uint64_t limit_ns)
{
	uint64_t end = bench_now_ns() + limit_ns;

	while (!ebb_core_halted(core)) {
		if (bench_now_ns() > end)
			return false;
		usleep(20);
	}
	return true;
}

static void ebb_wake(int64_t *lat, unsigned n)
{
	struct ebb_core_stats s0, s1;
	atomic_int got;
	unsigned retries = 0;
	cpu_set_t old;
	uint64_t t0;
	int rc;

	pin_self(opt.cpu[0], &old);
	ebb_core_stats(1, &s0);
	for (unsigned i = 0; i < n;) {
		if (!wait_halted(1, 5000000000ull))
			die("core 1 never halted (spin_before_halt too big?)");
		bench_sleep_ns(SETTLE_NS);
		if (!ebb_core_halted(1)) {
			retries++;	/* woke by itself meanwhile */
			continue;
		}
		atomic_init(&got, 0);
		t0 = bench_now_ns();
		rc = ebb_spawn_remote(1, wake_ev, &got);
		if (rc)
			die("ebb_spawn_remote(1): %s", strerror(-rc));
		if (!spin_until(&got, 5000000000ull))
			die("halted core 1 did not wake for an event");
		lat[i++] = (int64_t)(bench_now_ns() - t0);
	}
	ebb_core_stats(1, &s1);
	sched_setaffinity(0, sizeof(old), &old);
	qsort(lat, n, sizeof(*lat), bench_cmp_i64);
	note("halted wake: core 1 over %u pings: %" PRIu64
	     " doorbells, %" PRIu64 " wakes, %" PRIu64 " halts; %u pings "
	     "re-tried (core woke on its own)",
	     n, s1.doorbells - s0.doorbells, s1.wakes - s0.wakes,
	     s1.halts - s0.halts, retries);
}

static void step_halted(void)
{
	unsigned n = (unsigned)count_of(500, 100);
	int64_t *ebb = calloc(n, sizeof(*ebb)), *lx = calloc(n, sizeof(*lx));
	static const struct {
		const char *label;
		double p;
	} q[] = { { "p50", 0.50 }, { "p99", 0.99 }, { "max", 1.0 } };
	char name[64];

	if (ebb == NULL || lx == NULL)
		die("out of memory");
	linux_wake(lx, n);
	node_up(SPIN_DEFAULT);
	ebb_wake(ebb, n);
	for (unsigned i = 0; i < 3; i++) {
		snprintf(name, sizeof(name), "spawn_remote to halted core %s",
			 q[i].label);
		emit(name, "us", (double)bench_pct_i64(ebb, n, q[i].p) / 1e3,
		     (double)bench_pct_i64(lx, n, q[i].p) / 1e3,
		     "eventfd wake of a blocked thread", q[i].label,
		     i == 0 ? BENCH_TGT_MAX : BENCH_TGT_NONE, 50);
	}
	free(ebb);
	free(lx);
}

/* ===================================================================
 * 9. idle CPU
 * =================================================================== */

/* On-CPU time of thread @tid of this process in ns: schedstat when the
 * kernel has it (ns resolution), else utime+stime of stat (clock ticks).
 * -1 when neither can be read. */
static int64_t cpu_ns_schedstat(pid_t tid)
{
	char path[64];
	unsigned long long ns;
	FILE *f;
	int ok;

	snprintf(path, sizeof(path), "/proc/self/task/%d/schedstat", (int)tid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	ok = fscanf(f, "%llu", &ns) == 1;
	fclose(f);
	return ok ? (int64_t)ns : -1;
}

static int64_t cpu_ns_stat(pid_t tid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut, st;
	long hz = sysconf(_SC_CLK_TCK);
	size_t len;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	len = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[len] = '\0';
	/* Fields after the command name, which may hold spaces: state is
	 * field 3, utime 14, stime 15. */
	p = strrchr(buf, ')');
	if (p == NULL || hz <= 0 ||
	    sscanf(p + 1,
		   " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
		   &ut, &st) != 2)
		return -1;
	return (int64_t)((ut + st) * (1000000000ull / (unsigned long long)hz));
}

static void tid_ev(void *p)
{
	*(pid_t *)p = gettid();
}

struct lx_idle {
	int ep, efd;
	pid_t tid;
	atomic_int ready;
};

static void *lx_idle_thread(void *p)
{
	struct lx_idle *I = p;
	struct epoll_event ev;

	I->tid = gettid();
	atomic_store_explicit(&I->ready, 1, memory_order_release);
	while (epoll_wait(I->ep, &ev, 1, -1) < 0 && errno == EINTR)
		;
	return NULL;
}

static void step_idle(void)
{
	struct lx_idle I = { .ep = epoll_create1(EPOLL_CLOEXEC),
			     .efd = eventfd(0, EFD_CLOEXEC) };
	struct epoll_event ev = { .events = EPOLLIN };
	struct ebb_core_stats s0[2], s1[2];
	int64_t a[3], b[3], sa[3], sb[3];
	pid_t tid[3];
	uint64_t t0, wall, one = 1;
	bool precise = true;
	pthread_t t;
	char name[64];

	if (I.ep < 0 || I.efd < 0 ||
	    epoll_ctl(I.ep, EPOLL_CTL_ADD, I.efd, &ev) != 0)
		die("epoll: %s", strerror(errno));
	atomic_init(&I.ready, 0);
	node_up(SPIN_DEFAULT);
	run_on(0, tid_ev, &tid[0]);
	run_on(1, tid_ev, &tid[1]);
	thread_start_on(&t, opt.cpu[0], lx_idle_thread, &I);
	if (!wait_flag(&I.ready, 5) || !wait_halted(0, 5000000000ull) ||
	    !wait_halted(1, 5000000000ull))
		die("cores or baseline thread did not go idle");
	tid[2] = I.tid;
	bench_sleep_ns(100000000ull);	/* let everyone block */

	for (unsigned i = 0; i < 2; i++)
		ebb_core_stats(i, &s0[i]);
	for (unsigned i = 0; i < 3; i++) {
		a[i] = cpu_ns_schedstat(tid[i]);
		sa[i] = cpu_ns_stat(tid[i]);
		precise = precise && a[i] >= 0;
	}
	t0 = bench_now_ns();
	bench_sleep_ns((uint64_t)(opt.idle_s * 1e9));
	for (unsigned i = 0; i < 3; i++) {
		b[i] = cpu_ns_schedstat(tid[i]);
		sb[i] = cpu_ns_stat(tid[i]);
	}
	wall = bench_now_ns() - t0;
	for (unsigned i = 0; i < 2; i++)
		ebb_core_stats(i, &s1[i]);
	if (write(I.efd, &one, sizeof(one)) != sizeof(one))
		die("eventfd write: %s", strerror(errno));
	pthread_join(t, NULL);
	close(I.efd);
	close(I.ep);

	if (!precise) {
		memcpy(a, sa, sizeof(a));
		memcpy(b, sb, sizeof(b));
	}
	if (a[0] < 0 || a[1] < 0 || a[2] < 0 || b[0] < 0 || b[1] < 0 ||
	    b[2] < 0)
		die("cannot read /proc/self/task/<tid>/stat");
	for (unsigned i = 0; i < 2; i++) {
		snprintf(name, sizeof(name), "idle CPU, core %u", i);
		emit(name, "%", 100.0 * (double)(b[i] - a[i]) / (double)wall,
		     100.0 * (double)(b[2] - a[2]) / (double)wall,
		     "thread blocked in epoll_wait",
		     precise ? "schedstat ns" : "stat ticks", BENCH_TGT_MAX, 2.0);
		note("idle core %u: %" PRIu64 " wakes, %" PRIu64
		     " loop iterations, %" PRIu64 " events in %.1f s; "
		     "utime+stime %.0f ms",
		     i, s1[i].wakes - s0[i].wakes,
		     s1[i].iterations - s0[i].iterations,
		     s1[i].events - s0[i].events, (double)wall / 1e9,
		     (double)(sb[i] - sa[i]) / 1e6);
	}
}

/* ===================================================================
 * driver (parent process)
 * =================================================================== */

struct step {
	const char *name;
	void (*run)(void);
};

static const struct step steps[] = {
	{ "Ebb rep lookup", step_lookup },
	{ "spawn_local + dispatch", step_spawn_local },
	{ "spawn_remote round trip, polling cores", step_rtt },
	{ "context save + activate", step_context },
	{ "GpAllocator 64 B pair", step_alloc },
	{ "timer start+cancel, lateness on a polling core", step_timer },
	{ "spawn_remote to a halted core", step_halted },
	{ "timer lateness on a halting core", step_timer_halt },
	{ "idle CPU", step_idle },
};
#define NSTEPS (sizeof(steps) / sizeof(steps[0]))

static struct bench_records recs;

static void rec_keep(const struct bench_record *r)
{
	if (bench_records_add(&recs, r) != 0) {
		fprintf(stderr, "micro: out of memory\n");
		exit(1);
	}
}

/* Notes when other work shared the two CPUs during step @i: it skews
 * ebbrt figures and baselines alike. The step's own CPU time is its
 * child's, @ru. */
static void note_contention(unsigned i, struct bench_cpu_use u0,
			    struct bench_cpu_use u1, const struct rusage *ru)
{
	struct bench_record r;
	char step[128];

	u0.ours = 0;
	u1.ours = bench_rusage_ns(ru);
	snprintf(step, sizeof(step), "step %u (%s)", i + 1, steps[i].name);
	memset(&r, 0, sizeof(r));
	r.kind = BENCH_REC_NOTE;
	if (bench_contention_note(&u0, &u1, step, r.note, sizeof(r.note)))
		rec_keep(&r);
}

/* Runs step @i in a child; returns its exit code (or 128+signal). */
static int run_step(unsigned i)
{
	double limit = 600.0 + opt.idle_s;
	uint64_t t0 = bench_now_ns(), end = t0 + (uint64_t)(limit * 1e9);
	struct bench_cpu_use u0 = bench_cpu_use(opt.cpu[0], opt.cpu[1]);
	struct rusage ru;
	struct bench_record r;
	size_t got = 0;
	int fds[2], status;
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC) != 0) {
		perror("micro: pipe");
		return 1;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		perror("micro: fork");
		return 1;
	}
	if (pid == 0) {
		close(fds[0]);
		rec_fd = fds[1];
		steps[i].run();
		node_down();
		_exit(0);
	}
	close(fds[1]);
	for (;;) {
		struct pollfd pfd = { .fd = fds[0], .events = POLLIN };
		int64_t left = (int64_t)(end - bench_now_ns()) / 1000000;
		ssize_t n;

		if (left <= 0 || poll(&pfd, 1, (int)left) == 0) {
			fprintf(stderr, "\nmicro: step '%s' timed out after "
					"%.0f s; killing it\n",
				steps[i].name, limit);
			kill(pid, SIGKILL);
			break;
		}
		n = read(fds[0], (char *)&r + got, sizeof(r) - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
		if (got == sizeof(r)) {
			rec_keep(&r);
			got = 0;
		}
	}
	close(fds[0]);
	while (wait4(pid, &status, 0, &ru) < 0 && errno == EINTR)
		;
	note_contention(i, u0, bench_cpu_use(opt.cpu[0], opt.cpu[1]), &ru);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

static void print_table(void)
{
	bench_records_table(&recs);
	printf("\nratio = value / baseline (below 1: ebbrt is faster). "
	       "Bulk loops: best of %u runs; latencies: percentiles over all "
	       "samples.\n",
	       reps());
	bench_records_notes(&recs);
}

static void usage(FILE *to)
{
	fprintf(to,
		"usage: ebbrt-bench-micro [--quick] [--json PATH] "
		"[--idle-seconds N] [--cpus A,B]\n"
		"Micro benchmark of the ebbrt runtime: each figure against a "
		"Linux/libc\nbaseline measured in the same run on the same two "
		"CPUs.\n"
		"  --quick            fewer iterations and 1 s of idle: "
		"a smoke run\n"
		"  --json PATH        also write the results as a JSON array\n"
		"  --idle-seconds N   idle CPU window (default 10, 1 with "
		"--quick)\n"
		"  --cpus A,B         the two CPUs for cores 0 and 1 (default "
		"0,1)\n"
		"  --help             this text\n"
		"Needs 2 MiB hugepages (DPDK). See docs/bench.md.\n");
}

static bool parse_cpus(const char *s)
{
	char *end;
	long a = strtol(s, &end, 10), b;
	cpu_set_t set;

	if (end == s || (*end != ',' && *end != '-'))
		return false;
	s = end + 1;
	b = strtol(s, &end, 10);
	if (end == s || *end != '\0' || a < 0 || b < 0 || a == b ||
	    a >= CPU_SETSIZE || b >= CPU_SETSIZE)
		return false;
	if (sched_getaffinity(0, sizeof(set), &set) == 0 &&
	    (!CPU_ISSET(a, &set) || !CPU_ISSET(b, &set))) {
		fprintf(stderr, "micro: cpus %ld,%ld are not both allowed to "
				"this process\n",
			a, b);
		return false;
	}
	opt.cpu[0] = (int)a;
	opt.cpu[1] = (int)b;
	return true;
}

static void parse_args(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "quick", no_argument, NULL, 'q' },
		{ "json", required_argument, NULL, 'j' },
		{ "idle-seconds", required_argument, NULL, 'i' },
		{ "cpus", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	int c;

	opterr = 1;
	while ((c = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (c) {
		case 'q':
			opt.quick = true;
			break;
		case 'j':
			opt.json = optarg;
			break;
		case 'i':
			opt.idle_s = strtod(optarg, &end);
			if (end == optarg || *end != '\0' || opt.idle_s <= 0 ||
			    opt.idle_s > 3600) {
				fprintf(stderr, "micro: bad --idle-seconds "
						"'%s'\n",
					optarg);
				usage(stderr);
				exit(2);
			}
			opt.idle_set = true;
			break;
		case 'c':
			if (!parse_cpus(optarg)) {
				fprintf(stderr, "micro: bad --cpus '%s' (want "
						"two CPUs, e.g. 0,1)\n",
					optarg);
				usage(stderr);
				exit(2);
			}
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (optind < argc) {
		fprintf(stderr, "micro: unexpected argument '%s'\n",
			argv[optind]);
		usage(stderr);
		exit(2);
	}
	if (!opt.idle_set)
		opt.idle_s = opt.quick ? 1.0 : 10.0;
}

int main(int argc, char **argv)
{
	Dl_info info;
	double load0;
	uint64_t t0;
	int rc, failed = 0;

	parse_args(argc, argv);
	/* The steps choose their own CPUs and spin: the environment must
	 * not override them behind our back. */
	if (getenv("EBBRT_CPUS") || getenv("EBBRT_SPIN"))
		fprintf(stderr, "micro: ignoring EBBRT_CPUS/EBBRT_SPIN (use "
				"--cpus)\n");
	unsetenv("EBBRT_CPUS");
	unsetenv("EBBRT_SPIN");
	if (!bench_hugepages_free()) {
		fprintf(stderr, "micro: no free 2 MiB hugepage. %s",
			hugepage_hint);
		return 1;
	}
	/* The 1-minute load average, taken before we load the CPUs
	 * ourselves: other work on them skews every figure. */
	load0 = bench_loadavg();
	printf("ebbrt micro benchmark %s: cpus %d,%d, %s run, idle %.0f s, "
	       "load average %.2f\n",
	       EBBRT_VERSION, opt.cpu[0], opt.cpu[1],
	       opt.quick ? "quick" : "full", opt.idle_s, load0);
	if (dladdr((void *)malloc, &info) && info.dli_fname)
		printf("malloc() comes from %s\n", info.dli_fname);
	fflush(stdout);

	for (unsigned i = 0; i < NSTEPS; i++) {
		fprintf(stderr, "[%u/%zu] %s...", i + 1, NSTEPS, steps[i].name);
		t0 = bench_now_ns();
		rc = run_step(i);
		if (rc == EXIT_SETUP) {
			fprintf(stderr, "micro: setup failed, stopping\n");
			return 1;
		}
		if (rc) {
			fprintf(stderr, " FAILED (exit %d)\n", rc);
			failed++;
			continue;
		}
		fprintf(stderr, " %.1f s\n",
			(double)(bench_now_ns() - t0) / 1e9);
	}
	print_table();
	if (opt.json != NULL &&
	    bench_records_json(&recs, opt.json, "micro") == 0)
		printf("results: %s\n", opt.json);
	if (failed)
		fprintf(stderr, "micro: %d step(s) failed\n", failed);
	return failed ? 1 : 0;
}
