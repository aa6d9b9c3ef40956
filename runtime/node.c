/* SPDX-License-Identifier: BSD-3-Clause */
/* Node set-up: DPDK EAL, one pinned thread per core, start and stop. */
#include <errno.h>
#include <limits.h>
#include <numa.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_ring_elem.h>

#include "defs.h"

struct ebb_node ebb_node;
__thread unsigned ebb_this_core_id
	__attribute__((tls_model("initial-exec"))) = EBB_CORE_NONE;

#define EBB_DEFAULT_SPIN 2048u
#ifndef EBB_DEFAULT_INBOX
#define EBB_DEFAULT_INBOX 4096
#endif
#define EBB_MAX_EAL_ARGS 64

/* Start-up of the core threads, reported to ebb_start(). */
static _Atomic unsigned cores_ready;
static _Atomic int cores_error;

unsigned ebb_node_id(void)
{
	return ebb_node.node_id;
}

/* Per-core state is private to the process (a cluster node may die at
 * any time; nothing of it may live in the shared heap), placed on the
 * core's NUMA node. */
static void *core_mem_alloc(size_t len, int numa)
{
	void *p;

	if (numa_available() >= 0) {
		p = numa_alloc_onnode(len, numa);
	} else {
		p = aligned_alloc(RTE_CACHE_LINE_SIZE,
				  RTE_ALIGN_CEIL(len, RTE_CACHE_LINE_SIZE));
	}
	if (p != NULL)
		memset(p, 0, len);
	return p;
}

static void core_mem_free(void *p, size_t len)
{
	if (p == NULL)
		return;
	if (numa_available() >= 0)
		numa_free(p, len);
	else
		free(p);
}

unsigned ebb_core_count(void)
{
	return ebb_node.ncores;
}

int ebb_core_cpu(unsigned core)
{
	struct ebb_core *c = ebb_core_get(core);

	return c ? c->cpu : -ENODEV;
}

int ebb_core_numa(unsigned core)
{
	struct ebb_core *c = ebb_core_get(core);

	return c ? c->numa : -ENODEV;
}

uint64_t ebb_tsc_hz(void)
{
	return ebb_node.tsc_hz;
}

/* Parse "0-3,6" into @cpus; returns the count or -EINVAL. */
static int parse_cpus(const char *s, int *cpus, unsigned max)
{
	unsigned n = 0;
	char *end;

	while (*s) {
		long lo = strtol(s, &end, 10), hi;

		if (end == s || lo < 0 || lo >= CPU_SETSIZE)
			return -EINVAL;
		hi = lo;
		s = end;
		if (*s == '-') {
			s++;
			hi = strtol(s, &end, 10);
			if (end == s || hi < lo || hi >= CPU_SETSIZE)
				return -EINVAL;
			s = end;
		}
		for (long c = lo; c <= hi; c++) {
			if (n == max)
				return -EINVAL;
			for (unsigned i = 0; i < n; i++)
				if (cpus[i] == c)
					return -EINVAL;
			cpus[n++] = (int)c;
		}
		if (*s == ',')
			s++;
		else if (*s)
			return -EINVAL;
	}
	return n ? (int)n : -EINVAL;
}

static int default_cpus(int *cpus, unsigned max)
{
	cpu_set_t set;
	unsigned n = 0;

	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return -errno;
	for (int c = 0; c < CPU_SETSIZE && n < max; c++)
		if (CPU_ISSET(c, &set))
			cpus[n++] = c;
	return n ? (int)n : -EINVAL;
}

static unsigned env_uint(const char *name, unsigned dflt)
{
	const char *v = getenv(name);
	char *end;
	unsigned long x;

	if (v == NULL || *v == '\0')
		return dflt;
	x = strtoul(v, &end, 10);
	if (*end != '\0' || x > UINT32_MAX) {
		fprintf(stderr, "ebbrt: ignoring %s=%s: not a number\n", name, v);
		return dflt;
	}
	return (unsigned)x;
}

/*
 * EAL arguments. The main lcore may float over every CPU we were given so
 * the application's main thread is not pinned under a core; the cores are
 * our own threads, registered with rte_thread_register().
 */
static int eal_start(const struct ebb_config *cfg, const int *cpus,
		     unsigned n, const char *const *cluster_args)
{
	static char lcores[256];
	static char envbuf[1024];
	char *argv[EBB_MAX_EAL_ARGS + 1];
	int argc = 0, len, rc;
	const char *env = getenv("EBBRT_EAL_ARGS");

	len = snprintf(lcores, sizeof(lcores), "--lcores=0@(");
	for (unsigned i = 0; i < n; i++)
		len += snprintf(lcores + len, sizeof(lcores) - (size_t)len,
				"%s%d", i ? "," : "", cpus[i]);
	snprintf(lcores + len, sizeof(lcores) - (size_t)len, ")");

	argv[argc++] = (char *)"ebbrt";
	argv[argc++] = lcores;
	if (cluster_args != NULL) {
		/* A node of a cluster: the frontend said how. */
		for (const char *const *a = cluster_args; *a; a++) {
			if (argc == EBB_MAX_EAL_ARGS)
				return -E2BIG;
			argv[argc++] = (char *)*a;
		}
		env = NULL;
	} else if (cfg->eal_args == NULL) {
		/* Standalone: a private primary with no shared files, so
		 * any number of processes (tests included) can coexist. */
		argv[argc++] = (char *)"--in-memory";
		argv[argc++] = (char *)"--no-pci";
		argv[argc++] = (char *)"--no-telemetry";
		argv[argc++] = (char *)"--log-level=lib.eal:error";
	} else {
		for (const char *const *a = cfg->eal_args; *a; a++) {
			if (argc == EBB_MAX_EAL_ARGS)
				return -E2BIG;
			argv[argc++] = (char *)*a;
		}
	}
	if (env != NULL) {
		snprintf(envbuf, sizeof(envbuf), "%s", env);
		for (char *tok = strtok(envbuf, " "); tok;
		     tok = strtok(NULL, " ")) {
			if (argc == EBB_MAX_EAL_ARGS)
				return -E2BIG;
			argv[argc++] = tok;
		}
	}
	argv[argc] = NULL;
	rc = rte_eal_init(argc, argv);
	if (rc < 0) {
		fprintf(stderr,
			"ebbrt: DPDK EAL init failed (%s). Are 2 MiB hugepages "
			"reserved and hugetlbfs mounted? Run scripts/setup.sh "
			"as root.\n",
			rte_strerror(rte_errno));
		return -ENODEV;
	}
	return 0;
}

static size_t inbox_memsize(unsigned inbox_size)
{
	/* As rte_ring_create_elem() sizes an RING_F_EXACT_SZ ring. */
	return (size_t)rte_ring_get_memsize_elem(
		sizeof(struct ebb_event), rte_align32pow2(inbox_size + 1));
}

static void core_free(struct ebb_core *c)
{
	if (c == NULL)
		return;
	if (c->doorbell >= 0)
		close(c->doorbell);
	core_mem_free(c->inbox, c->inbox_len);
	core_mem_free(c, sizeof(*c));
}

static struct ebb_core *core_alloc(unsigned id, int cpu, unsigned spin,
				   unsigned inbox_size)
{
	struct ebb_core *c;
	char name[RTE_RING_NAMESIZE];
	int numa = numa_available() < 0 ? 0 : numa_node_of_cpu(cpu);

	if (numa < 0)
		numa = 0;
	c = core_mem_alloc(sizeof(*c), numa);
	if (c == NULL)
		return NULL;
	c->id = id;
	c->cpu = cpu;
	c->numa = numa;
	c->spin_limit = spin;
	c->timerfd = -1;
	c->inbox_vec = -1;
	c->timer_vec = -1;
	atomic_init(&c->state, EBB_CORE_INIT);
	if (ebb_cluster != NULL) {
		c->pub = &ebb_cluster->node[ebb_node.node_id].core[id];
		memset(c->pub, 0, sizeof(*c->pub));
		c->doorbell = dup(ebb_cluster_doorbell(ebb_node.node_id, id));
	} else {
		c->pub = &c->pub_local;
		c->doorbell = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	}
	/* The inbox of spawn_remote() is process-local: a ring initialised
	 * in private memory, not a named one in the shared heap. */
	c->inbox_len = inbox_memsize(inbox_size);
	c->inbox = core_mem_alloc(c->inbox_len, numa);
	snprintf(name, sizeof(name), "ebb_inbox_%u", id);
	if (c->doorbell < 0 || c->inbox == NULL ||
	    rte_ring_init(c->inbox, name, inbox_size,
			  RING_F_SC_DEQ | RING_F_EXACT_SZ) != 0) {
		core_free(c);
		return NULL;
	}
	return c;
}

int ebb_init(const struct ebb_config *cfg)
{
	static const struct ebb_config dflt;
	int cpus[EBB_MAX_CORES];
	const char *cluster_args[EBB_MAX_EAL_ARGS / 2];
	const char *const *cargs = NULL;
	const char *cpulist;
	unsigned spin, inbox;
	int n, rc;

	if (ebb_node.inited)
		return -EALREADY;
	if (cfg == NULL)
		cfg = &dflt;
	ebb_node.ctl_fd = -1;
	ebb_node.node_id = env_uint("EBBRT_NODE_ID", 1);
	if (getenv(EBB_CONTROL_FD_ENV) != NULL) {
		/* Launched by `ebbrt run`: the frontend gives the cpus, the
		 * node id and the EAL arguments of a secondary. */
		rc = ebb_cluster_boot(&ebb_node.boot, cluster_args,
				      RTE_DIM(cluster_args));
		if (rc)
			return rc;
		cargs = cluster_args;
		ebb_node.node_id = ebb_node.boot.node_id;
		n = (int)ebb_node.boot.ncores[ebb_node.node_id];
		memcpy(cpus, ebb_node.boot.cpus, sizeof(cpus));
		cpulist = NULL;
		goto have_cpus;
	}
	cpulist = getenv("EBBRT_CPUS");
	if (cpulist == NULL || *cpulist == '\0')
		cpulist = cfg->cpus;
	n = cpulist ? parse_cpus(cpulist, cpus, EBB_MAX_CORES)
		    : default_cpus(cpus, EBB_MAX_CORES);
have_cpus:
	if (n < 0) {
		fprintf(stderr, "ebbrt: bad cpu list '%s' (want e.g. 0-1,3; "
				"at most %d cpus)\n",
			cpulist ? cpulist : "", EBB_MAX_CORES);
		return n;
	}
	spin = env_uint("EBBRT_SPIN", cfg->spin_before_halt ?
					      cfg->spin_before_halt :
					      EBB_DEFAULT_SPIN);
	if (cfg->hosted || spin == 0)
		spin = 1;
	inbox = cfg->inbox_size ? cfg->inbox_size : EBB_DEFAULT_INBOX;
	if (inbox < 2 || (inbox & (inbox - 1)) != 0) {
		fprintf(stderr, "ebbrt: inbox_size %u is not a power of 2\n",
			inbox);
		return -EINVAL;
	}

	rc = eal_start(cfg, cpus, (unsigned)n, cargs);
	if (rc)
		return rc;
	ebb_node.inited = true;
	if (cargs != NULL)
		rc = ebb_cluster_attach();
	else if (ebb_cluster_frontend_hook != NULL)
		rc = ebb_cluster_frontend_hook();
	if (rc) {
		fprintf(stderr, "ebbrt: cluster set-up failed: %s\n",
			strerror(-rc));
		ebb_fini();
		return rc;
	}
	ebb_node.hosted = cfg->hosted;
	ebb_node.tsc_hz = rte_get_tsc_hz();
	/* A timer tick of about 1 us: the largest power of two of cycles
	 * not above a microsecond. */
	ebb_node.tick_shift = 0;
	while ((ebb_node.tsc_hz >> (ebb_node.tick_shift + 1)) >= 1000000u)
		ebb_node.tick_shift++;

	for (int i = 0; i < n; i++) {
		ebb_node.core[i] = core_alloc((unsigned)i, cpus[i], spin, inbox);
		if (ebb_node.core[i] == NULL) {
			rc = -ENOMEM;
			goto fail;
		}
		ebb_node.ncores = (unsigned)i + 1;
	}
	rc = ebb_gp_init();
	if (rc)
		goto fail;
	rc = ebb_idmap_init();
	if (rc)
		goto fail;
	ebb_ebballoc_init();
	if (ebb_cluster != NULL) {
		struct ebb_cluster_node *me =
			&ebb_cluster->node[ebb_node.node_id];

		if (me->id_count)
			ebb_id_set_global_range(me->id_base,
						me->id_base + me->id_count);
	}
	return 0;
fail:
	fprintf(stderr, "ebbrt: node set-up failed: %s\n", strerror(-rc));
	ebb_fini();
	return rc;
}

static void *core_main(void *arg)
{
	struct ebb_core *c = arg;
	cpu_set_t set;
	int rc;

	CPU_ZERO(&set);
	CPU_SET(c->cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) != 0) {
		rc = -errno;
		goto out;
	}
	/* Registering a thread with DPDK turns multi-process off
	 * (rte_mp_disable()): a cluster's cores stay unregistered, with
	 * no lcore id, so a frontend accepts its nodes and a node may
	 * start at all. Their pools then keep no per-lcore cache. */
	if (ebb_cluster == NULL && rte_thread_register() != 0) {
		rc = -rte_errno;
		goto out;
	}
	ebb_self = c;
	ebb_this_core_id = c->id;
	rc = ebb_gp_core_init(c);
	if (!rc)
		rc = ebb_event_core_init(c);
	if (!rc)
		rc = ebb_trans_core_init(c);
	if (!rc)
		rc = ebb_timer_core_init(c);
	if (!rc && ebb_msg_core_start != NULL)
		rc = ebb_msg_core_start();
out:
	if (rc) {
		int expected = 0;

		atomic_compare_exchange_strong(&cores_error, &expected, rc);
	}
	atomic_fetch_add(&cores_ready, 1);
	if (!rc) {
		/* Wait for every core, so that a failed sibling stops us
		 * before we run anything. */
		while (atomic_load(&cores_ready) < ebb_node.ncores)
			sched_yield();
		if (atomic_load(&cores_error) == 0) {
			int expected = EBB_CORE_INIT;

			atomic_compare_exchange_strong(&c->state, &expected,
						       EBB_CORE_RUNNING);
			ebb_event_core_run(c);
		}
	}
	atomic_store(&c->state, EBB_CORE_STOPPED);
	if (ebb_self != NULL) {
		ebb_timer_core_fini(c);
		ebb_trans_core_fini(c);
		ebb_event_core_fini(c);
		ebb_self = NULL;
		ebb_this_core_id = EBB_CORE_NONE;
		if (ebb_cluster == NULL)
			rte_thread_unregister();
	}
	return NULL;
}

int ebb_start(void)
{
	unsigned i;
	int rc;

	if (!ebb_node.inited || ebb_node.finished)
		return -ENOENT;
	if (ebb_node.started)
		return -EALREADY;
	atomic_store(&cores_ready, 0);
	atomic_store(&cores_error, 0);
	for (i = 0; i < ebb_node.ncores; i++) {
		rc = -pthread_create(&ebb_node.core[i]->thread, NULL, core_main,
				     ebb_node.core[i]);
		if (rc) {
			/* Threads already made see the error and exit. */
			int expected = 0;

			atomic_compare_exchange_strong(&cores_error, &expected,
						       rc);
			atomic_fetch_add(&cores_ready, ebb_node.ncores - i);
			for (unsigned j = 0; j < i; j++)
				pthread_join(ebb_node.core[j]->thread, NULL);
			return rc;
		}
	}
	ebb_node.started = true;
	while (atomic_load(&cores_ready) < ebb_node.ncores)
		usleep(50);
	rc = atomic_load(&cores_error);
	if (rc) {
		fprintf(stderr, "ebbrt: a core failed to start: %s\n",
			strerror(-rc));
		ebb_wait();
		return rc;
	}
	ebb_cluster_ready();
	return 0;
}

void ebb_stop(void)
{
	uint64_t one = 1;

	for (unsigned i = 0; i < ebb_node.ncores; i++) {
		struct ebb_core *c = ebb_node.core[i];
		int s = atomic_load(&c->state);

		while (s < EBB_CORE_STOPPING &&
		       !atomic_compare_exchange_weak(&c->state, &s,
						     EBB_CORE_STOPPING))
			;
		/* Unconditionally: the core may be about to halt. */
		if (write(c->doorbell, &one, sizeof(one)) < 0)
			continue;
	}
}

int ebb_wait(void)
{
	if (!ebb_node.started)
		return -ENOENT;
	for (unsigned i = 0; i < ebb_node.ncores; i++)
		pthread_join(ebb_node.core[i]->thread, NULL);
	ebb_node.started = false;
	return 0;
}

int ebb_run(void)
{
	int rc = ebb_start();

	if (rc)
		return rc;
	return ebb_wait();
}

void ebb_fini(void)
{
	char rundir[PATH_MAX];

	if (!ebb_node.inited || ebb_node.finished)
		return;
	ebb_node.finished = true;
	if (ebb_node.started) {
		ebb_stop();
		ebb_wait();
	}
	ebb_idmap_fini();
	ebb_gp_fini();
	for (unsigned i = 0; i < ebb_node.ncores; i++) {
		core_free(ebb_node.core[i]);
		ebb_node.core[i] = NULL;
	}
	ebb_node.ncores = 0;
	snprintf(rundir, sizeof(rundir), "%s", rte_eal_get_runtime_dir());
	rte_eal_cleanup();
	/* EAL leaves its (here empty) runtime folder behind; rmdir removes
	 * it only if no other process keeps files there. */
	rmdir(rundir);
	/* DPDK cannot be initialised twice in one process: ebb_init() after
	 * this returns -EALREADY. */
}
