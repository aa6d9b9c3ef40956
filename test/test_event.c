/* SPDX-License-Identifier: BSD-3-Clause */
/* The event loop: spawning, ordering, vectors, idle handlers, halting and
 * waking, hosted mode, and errors on misuse. */
#include <limits.h>
#include <sched.h>
#include <sys/stat.h>

#include <rte_eal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include "harness.h"

#define N_ORDER 1000

static int order[N_ORDER];
static atomic_int norder;

static void record(void *arg)
{
	int i = atomic_fetch_add(&norder, 1);

	if (i < N_ORDER)
		order[i] = (int)(intptr_t)arg;
}

static void spawn_many_local(void *arg)
{
	(void)arg;
	for (int i = 0; i < N_ORDER; i++)
		cr_assert_eq(ebb_spawn_local(record, (void *)(intptr_t)i), 0);
}

Test(event, spawn_local_runs_in_fifo_order, .timeout = 60)
{
	ebbt_start("0-1");
	atomic_store(&norder, 0);
	cr_assert_eq(ebbt_call(0, spawn_many_local, NULL), 0);
	cr_assert(ebbt_wait_until(atomic_load(&norder) == N_ORDER, 5000),
		  "ran %d of %d", atomic_load(&norder), N_ORDER);
	for (int i = 0; i < N_ORDER; i++)
		cr_assert_eq(order[i], i, "event %d ran at position %d",
			     order[i], i);
	ebbt_stop();
}

static atomic_int ran_on[2];

static void note_core(void *arg)
{
	int want = (int)(intptr_t)arg;

	if (ebb_core_id() == (unsigned)want)
		atomic_fetch_add(&ran_on[want], 1);
}

Test(event, spawn_remote_runs_on_target_in_sender_order, .timeout = 60)
{
	ebbt_start("0-1");
	for (int c = 0; c < 2; c++)
		for (int i = 0; i < 100; i++)
			cr_assert_eq(ebb_spawn_remote((unsigned)c, note_core,
						      (void *)(intptr_t)c),
				     0);
	cr_assert(ebbt_wait_until(atomic_load(&ran_on[0]) == 100 &&
					  atomic_load(&ran_on[1]) == 100,
				  5000),
		  "core0 %d core1 %d", atomic_load(&ran_on[0]),
		  atomic_load(&ran_on[1]));

	atomic_store(&norder, 0);
	for (int i = 0; i < N_ORDER; i++) {
		int rc;

		/* The inbox may fill: back-pressure, then retry. */
		while ((rc = ebb_spawn_remote(1, record, (void *)(intptr_t)i)) ==
		       -EAGAIN)
			usleep(10);
		cr_assert_eq(rc, 0);
	}
	cr_assert(ebbt_wait_until(atomic_load(&norder) == N_ORDER, 5000));
	for (int i = 0; i < N_ORDER; i++)
		cr_assert_eq(order[i], i, "remote event %d ran at %d", order[i],
			     i);
	ebbt_stop();
}

static void nop(void *arg)
{
	(void)arg;
}

static bool never(void *arg)
{
	(void)arg;
	return false;
}

static void misuse_on_core(void *arg)
{
	struct ebb_vector_ops no_handle = { .pending = never, .fd = -1 };

	(void)arg;
	cr_expect_eq(ebb_vector_add(NULL, NULL), -EINVAL);
	cr_expect_eq(ebb_vector_add(&no_handle, NULL), -EINVAL);
	cr_expect_eq(ebb_vector_remove(0), -EBUSY, "the inbox vector");
	cr_expect_eq(ebb_vector_remove(-1), -ENOENT);
	cr_expect_eq(ebb_vector_remove(31), -ENOENT);
	cr_expect_eq(ebb_vector_remove(1000), -ENOENT);
	cr_expect_eq(ebb_idle_remove(7), -ENOENT);
	cr_expect_eq(ebb_spawn_local(NULL, NULL), -EINVAL);
	cr_expect_eq(ebb_idle_add(NULL, NULL), -EINVAL);
}

Test(event, misuse_returns_errors, .timeout = 60)
{
	struct ebb_vector_ops ops = { .pending = never, .handle = nop,
				      .fd = -1 };
	struct ebb_core_stats st;

	cr_assert_eq(ebb_start(), -ENOENT, "start before init");
	ebbt_start("0-1");
	cr_assert_eq(ebb_init(NULL), -EALREADY);
	cr_assert_eq(ebb_start(), -EALREADY);
	cr_assert_eq(ebb_spawn_remote(2, nop, NULL), -ENODEV);
	cr_assert_eq(ebb_spawn_remote(12345, nop, NULL), -ENODEV);
	cr_assert_eq(ebb_spawn_remote(0, NULL, NULL), -EINVAL);
	cr_assert_eq(ebb_spawn_local(nop, NULL), -EPERM, "not on a core");
	cr_assert_eq(ebb_vector_add(&ops, NULL), -EPERM);
	cr_assert_eq(ebb_vector_remove(0), -EPERM);
	cr_assert_eq(ebb_idle_add(never, NULL), -EPERM);
	cr_assert_eq(ebb_core_stats(5, &st), -ENODEV);
	cr_assert_eq(ebb_core_cpu(5), -ENODEV);
	cr_assert_eq(ebb_core_id(), EBB_CORE_NONE);
	cr_assert_eq(ebbt_call(0, misuse_on_core, NULL), 0);
	ebb_stop();
	cr_assert_eq(ebb_wait(), 0);
	cr_assert_eq(ebb_spawn_remote(0, nop, NULL), -ESHUTDOWN,
		     "spawn on a stopped loop");
	ebb_fini();
	ebb_fini();	/* twice is harmless */
	cr_assert_eq(ebb_start(), -ENOENT);
}

Test(event, fini_leaves_no_runtime_files, .timeout = 60)
{
	char dir[PATH_MAX];
	struct stat st;

	ebbt_start("0-1");
	snprintf(dir, sizeof(dir), "%s", rte_eal_get_runtime_dir());
	cr_assert_neq(dir[0], '\0');
	ebbt_stop();
	cr_assert_neq(stat(dir, &st), 0, "%s is still there after ebb_fini",
		      dir);
}

Test(event, bad_cpu_list_is_rejected, .timeout = 30)
{
	struct ebb_config cfg = { .cpus = "1-0" };

	cr_assert_eq(ebb_init(&cfg), -EINVAL);
	cfg.cpus = "0,0";
	cr_assert_eq(ebb_init(&cfg), -EINVAL);
	cfg.cpus = "x";
	cr_assert_eq(ebb_init(&cfg), -EINVAL);
	cfg.cpus = "0";
	cfg.inbox_size = 1000;
	cr_assert_eq(ebb_init(&cfg), -EINVAL, "inbox size not a power of 2");
}

static atomic_int idle_runs;
static int idle_handle;

static bool count_idle(void *arg)
{
	(void)arg;
	atomic_fetch_add(&idle_runs, 1);
	return false;
}

static void add_idle(void *arg)
{
	(void)arg;
	idle_handle = ebb_idle_add(count_idle, NULL);
}

static void remove_idle(void *arg)
{
	(void)arg;
	cr_assert_eq(ebb_idle_remove(idle_handle), 0);
	cr_assert_eq(ebb_idle_remove(idle_handle), -ENOENT);
}

Test(event, idle_handlers_run_every_iteration_until_removed, .timeout = 60)
{
	struct ebb_core_stats a, b;
	int n;

	ebbt_start("0-1");
	cr_assert_eq(ebbt_call(1, add_idle, NULL), 0);
	cr_assert_geq(idle_handle, 0);
	cr_assert(ebbt_wait_until(atomic_load(&idle_runs) > 1000, 5000));
	cr_assert_eq(ebbt_call(1, remove_idle, NULL), 0);
	n = atomic_load(&idle_runs);
	cr_assert_eq(ebb_core_stats(1, &a), 0);
	/* Make the core iterate: spawns keep it busy for a while. */
	for (int i = 0; i < 100; i++)
		cr_assert_eq(ebb_spawn_remote(1, nop, NULL), 0);
	cr_assert(ebbt_wait_until(ebb_core_stats(1, &b) == 0 &&
					  b.events >= a.events + 100,
				  5000));
	cr_assert_eq(atomic_load(&idle_runs), n, "removed handler ran");
	ebbt_stop();
}

/* A vector backed by an eventfd, as a NIC queue interrupt would be. */
static int dev_efd = -1;
static atomic_int dev_handled;
static int dev_vec = -1;
static atomic_int dev_armed;

static atomic_int dev_queue;

static bool q_pending(void *arg)
{
	(void)arg;
	return atomic_load(&dev_queue) > 0;
}

static void q_handle(void *arg)
{
	uint64_t v;
	ssize_t n;

	(void)arg;
	n = read(dev_efd, &v, sizeof(v));
	(void)n;
	atomic_fetch_sub(&dev_queue, 1);
	atomic_fetch_add(&dev_handled, 1);
}

static int q_arm(void *arg)
{
	(void)arg;
	atomic_fetch_add(&dev_armed, 1);
	return 0;
}

static void add_dev(void *arg)
{
	struct ebb_vector_ops ops = {
		.pending = q_pending,
		.handle = q_handle,
		.arm = q_arm,
		.fd = dev_efd,
	};
	(void)arg;
	dev_vec = ebb_vector_add(&ops, NULL);
}

static void remove_dev(void *arg)
{
	(void)arg;
	cr_assert_eq(ebb_vector_remove(dev_vec), 0);
	cr_assert_eq(ebb_vector_remove(dev_vec), -ENOENT);
}

Test(event, vector_with_eventfd_wakes_halted_core, .timeout = 60)
{
	uint64_t one = 1;
	struct ebb_core_stats st;

	dev_efd = eventfd(0, EFD_NONBLOCK);
	cr_assert_geq(dev_efd, 0);
	ebbt_start_spin("0-1", 16);
	cr_assert_eq(ebbt_call(1, add_dev, NULL), 0);
	cr_assert_geq(dev_vec, 1, "vector %d", dev_vec);
	for (int i = 1; i <= 20; i++) {
		cr_assert(ebbt_wait_until(ebb_core_halted(1), 5000),
			  "core 1 never halted");
		cr_assert_gt(atomic_load(&dev_armed), 0, "not armed on halt");
		/* The "device" queues work, then raises its interrupt. */
		atomic_fetch_add(&dev_queue, 1);
		cr_assert_eq(write(dev_efd, &one, sizeof(one)), 8);
		cr_assert(ebbt_wait_until(atomic_load(&dev_handled) == i, 2000),
			  "interrupt %d lost: handled %d", i,
			  atomic_load(&dev_handled));
	}
	cr_assert_eq(ebb_core_stats(1, &st), 0);
	cr_assert_geq(st.halts, 20, "halts %lu", (unsigned long)st.halts);
	cr_assert_eq(ebbt_call(1, remove_dev, NULL), 0);
	ebbt_stop();
	close(dev_efd);
}

/* A vector with no fd: the halted core must still see it (bounded
 * timeout), as with memif or ring ports. */
static atomic_int poll_only;
static atomic_int poll_only_done;

static bool po_pending(void *arg)
{
	(void)arg;
	return atomic_load(&poll_only) > 0;
}

static void po_handle(void *arg)
{
	(void)arg;
	atomic_fetch_sub(&poll_only, 1);
	atomic_fetch_add(&poll_only_done, 1);
}

static void add_po(void *arg)
{
	struct ebb_vector_ops ops = { .pending = po_pending,
				      .handle = po_handle,
				      .fd = -1 };
	(void)arg;
	cr_assert_geq(ebb_vector_add(&ops, NULL), 0);
}

Test(event, vector_without_fd_is_seen_by_halted_core, .timeout = 60)
{
	ebbt_start_spin("0-1", 16);
	cr_assert_eq(ebbt_call(0, add_po, NULL), 0);
	for (int i = 1; i <= 10; i++) {
		cr_assert(ebbt_wait_until(ebb_core_halted(0), 5000));
		atomic_fetch_add(&poll_only, 1);
		/* The halt timeout is capped at 10 ms. */
		cr_assert(ebbt_wait_until(atomic_load(&poll_only_done) == i,
					  1000),
			  "fd-less work %d not seen", i);
		usleep(20000);
	}
	ebbt_stop();
}

static atomic_int woke;

static void mark_woke(void *arg)
{
	(void)arg;
	atomic_fetch_add(&woke, 1);
}

Test(event, spawn_remote_wakes_halted_core, .timeout = 60)
{
	struct ebb_core_stats before, after;

	ebbt_start_spin("0-1", 16);
	for (int i = 1; i <= 50; i++) {
		cr_assert(ebbt_wait_until(ebb_core_halted(1), 5000),
			  "core 1 never halted");
		cr_assert_eq(ebb_core_stats(1, &before), 0);
		cr_assert_eq(ebb_spawn_remote(1, mark_woke, NULL), 0);
		cr_assert(ebbt_wait_until(atomic_load(&woke) == i, 2000),
			  "wakeup %d lost", i);
		cr_assert_eq(ebb_core_stats(1, &after), 0);
		cr_assert_geq(after.doorbells, before.doorbells + 1,
			      "no doorbell for a halted core");
	}
	cr_assert_eq(ebb_core_stats(1, &after), 0);
	cr_assert_geq(after.wakes, 50);
	ebbt_stop();
}

static double cpu_seconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

Test(event, idle_cores_sleep, .timeout = 60)
{
	double t0, used;

	ebbt_start("0-1");
	cr_assert(ebbt_wait_until(ebb_core_halted(0) && ebb_core_halted(1),
				  5000));
	t0 = cpu_seconds();
	sleep(2);
	used = cpu_seconds() - t0;
	/* Two spinning cores would use 4 s; halted ones use next to
	 * nothing (the bound leaves room for a loaded machine). */
	cr_assert_lt(used, 0.2, "idle node used %.3f s of CPU in 2 s", used);
	ebbt_stop();
}

Test(event, hosted_mode_halts_at_once_and_serves, .timeout = 60)
{
	struct ebb_config cfg = { .cpus = "0", .hosted = true };
	struct ebb_core_stats st;

	cr_assert_eq(ebb_init(&cfg), 0);
	cr_assert_eq(ebb_start(), 0);
	for (int i = 1; i <= 100; i++) {
		cr_assert_eq(ebb_spawn_remote(0, mark_woke, NULL), 0);
		cr_assert(ebbt_wait_until(atomic_load(&woke) == i, 2000));
	}
	cr_assert_eq(ebb_core_stats(0, &st), 0);
	/* Never spins: about one halt per idle iteration. */
	cr_assert_geq(st.halts * 2, st.iterations - st.events,
		      "halts %lu iterations %lu events %lu",
		      (unsigned long)st.halts, (unsigned long)st.iterations,
		      (unsigned long)st.events);
	ebbt_stop();
}

static atomic_int cpu_seen[2];

static void note_cpu(void *arg)
{
	(void)arg;
	atomic_store(&cpu_seen[ebb_core_id()], sched_getcpu());
}

Test(event, cores_are_pinned_and_numa_known, .timeout = 60)
{
	ebbt_start("0-1");
	for (unsigned c = 0; c < 2; c++) {
		atomic_store(&cpu_seen[c], -1);
		cr_assert_eq(ebbt_call(c, note_cpu, NULL), 0);
		cr_assert_eq(atomic_load(&cpu_seen[c]), (int)c,
			     "core %u ran on cpu %d", c,
			     atomic_load(&cpu_seen[c]));
	}
	cr_assert_eq(ebb_core_count(), 2);
	cr_assert_eq(ebb_core_cpu(0), 0);
	cr_assert_eq(ebb_core_cpu(1), 1);
	cr_assert_geq(ebb_core_numa(0), 0);
	cr_assert_eq(ebb_node_id(), 1);
	cr_assert_gt(ebb_tsc_hz(), 0);
	ebbt_stop();
}
