/* SPDX-License-Identifier: BSD-3-Clause */
/* Blocking events: save and activate a context on the same core and from
 * another core; registers and stacks survive; misuse errors. */
#include <signal.h>
#include <stdatomic.h>

#include "harness.h"

static struct ebb_event_context ctx;
static atomic_int step;
static atomic_int resumed_on;

static void activate_it(void *arg)
{
	(void)arg;
	/* The blocked event has not resumed yet: we ran after it saved. */
	cr_assert_eq(atomic_load(&step), 1);
	atomic_store(&step, 2);
	cr_assert_eq(ebb_event_activate_context(&ctx), 0);
	cr_assert_eq(ebb_event_activate_context(&ctx), -EINVAL,
		     "second activation before resume");
}

static void block_same_core(void *arg)
{
	volatile long a = 11, b = 22, c = 33;
	long x = (long)(intptr_t)arg * 7;

	(void)arg;
	atomic_store(&step, 1);
	cr_assert_eq(ebb_spawn_local(activate_it, NULL), 0);
	cr_assert_eq(ebb_event_save_context(&ctx), 0);
	cr_assert_eq(atomic_load(&step), 2, "resumed before activation");
	cr_assert_eq(a + b + c + x, 66 + 35, "locals lost across a switch");
	atomic_store(&resumed_on, (int)ebb_core_id());
	atomic_store(&step, 3);
}

Test(context, save_and_activate_on_the_same_core, .timeout = 60)
{
	ebbt_start("0-1");
	atomic_store(&resumed_on, -1);
	cr_assert_eq(ebb_spawn_remote(0, block_same_core, (void *)5), 0);
	cr_assert(ebbt_wait_until(atomic_load(&step) == 3, 5000), "step %d",
		  atomic_load(&step));
	cr_assert_eq(atomic_load(&resumed_on), 0);
	ebbt_stop();
}

static atomic_int progress;

static void tick_progress(void *arg)
{
	(void)arg;
	atomic_fetch_add(&progress, 1);
}

static void activate_remote(void *arg)
{
	/* Runs on core 1. */
	cr_assert_eq(ebb_core_id(), 1u);
	cr_assert_eq(ebb_event_activate_context(arg), 0);
}

static void block_cross_core(void *arg)
{
	struct ebb_event_context *c = arg;

	volatile double kept = 2.5;

	cr_assert_eq(ebb_spawn_remote(1, activate_remote, c), 0);
	cr_assert_eq(ebb_event_save_context(c), 0);
	cr_assert_eq(kept, 2.5, "a local lost across the switch");
	atomic_store(&resumed_on, (int)ebb_core_id());
	atomic_store(&step, 10);
}

static void other_work(void *arg)
{
	volatile long sink = 0;

	(void)arg;
	/* Clobbers registers while the first event is blocked. */
	for (long i = 0; i < 1000; i++)
		sink += i * 3;
}

Test(context, activation_from_another_core_resumes_on_the_saving_core,
     .timeout = 60)
{
	static struct ebb_event_context c2;

	ebbt_start("0-1");
	atomic_store(&resumed_on, -1);
	for (int round = 0; round < 100; round++) {
		atomic_store(&step, 0);
		cr_assert_eq(ebb_spawn_remote(0, block_cross_core, &c2), 0);
		cr_assert_eq(ebb_spawn_remote(0, other_work, NULL), 0);
		cr_assert(ebbt_wait_until(atomic_load(&step) == 10, 5000),
			  "round %d never resumed", round);
		cr_assert_eq(atomic_load(&resumed_on), 0);
	}
	ebbt_stop();
}

#define NBLOCK 200
static struct ebb_event_context many[NBLOCK];
static atomic_int blocked, resumed;
static int resume_order[NBLOCK];

static void block_many(void *arg)
{
	int i = (int)(intptr_t)arg;

	atomic_fetch_add(&blocked, 1);
	cr_assert_eq(ebb_event_save_context(&many[i]), 0);
	resume_order[atomic_fetch_add(&resumed, 1)] = i;
}

static void activate_all_reversed(void *arg)
{
	(void)arg;
	for (int i = NBLOCK - 1; i >= 0; i--)
		cr_assert_eq(ebb_event_activate_context(&many[i]), 0);
}

Test(context, many_blocked_events_each_resume_once, .timeout = 60)
{
	ebbt_start("0-1");
	for (int i = 0; i < NBLOCK; i++)
		cr_assert_eq(ebb_spawn_remote(0, block_many, (void *)(intptr_t)i),
			     0);
	cr_assert(ebbt_wait_until(atomic_load(&blocked) == NBLOCK, 5000));
	/* The core still runs other events while they are blocked. */
	for (int i = 0; i < 10; i++)
		cr_assert_eq(ebb_spawn_remote(0, tick_progress, NULL), 0);
	cr_assert(ebbt_wait_until(atomic_load(&progress) == 10, 5000));
	cr_assert_eq(atomic_load(&resumed), 0);
	cr_assert_eq(ebbt_call(1, activate_all_reversed, NULL), 0);
	cr_assert(ebbt_wait_until(atomic_load(&resumed) == NBLOCK, 5000),
		  "resumed %d of %d", atomic_load(&resumed), NBLOCK);
	for (int i = 0; i < NBLOCK; i++)
		cr_assert_eq(resume_order[i], NBLOCK - 1 - i,
			     "resume %d was event %d", i, resume_order[i]);
	/* Nothing resumes twice. */
	usleep(20000);
	cr_assert_eq(atomic_load(&resumed), NBLOCK);
	ebbt_stop();
}

static struct ebb_event_context early;
static atomic_int early_done;

static void activate_early(void *arg)
{
	(void)arg;
	cr_assert_eq(ebb_event_activate_context(&early), 0);
}

static void save_after_activation(void *arg)
{
	(void)arg;
	/* Activated before it is saved: the save returns at once. */
	cr_assert_eq(ebb_event_activate_context(&early), 0);
	cr_assert_eq(ebb_event_activate_context(&early), -EINVAL);
	cr_assert_eq(ebb_event_save_context(&early), 0);
	/* And the context is reusable for a real block. */
	cr_assert_eq(ebb_spawn_local(activate_early, NULL), 0);
	cr_assert_eq(ebb_event_save_context(&early), 0);
	atomic_store(&early_done, 1);
}

Test(context, activation_before_save_is_not_lost, .timeout = 60)
{
	ebbt_start("0-1");
	cr_assert_eq(ebb_spawn_remote(1, save_after_activation, NULL), 0);
	cr_assert(ebbt_wait_until(atomic_load(&early_done) == 1, 5000));
	ebbt_stop();
}

static atomic_int misuse_done;

static void misuse(void *arg)
{
	(void)arg;
	cr_assert_eq(ebb_event_save_context(NULL), -EPERM);
	cr_assert_eq(ebb_event_activate_context(NULL), -EINVAL);
	atomic_store(&misuse_done, 1);
}

Test(context, misuse_returns_errors, .timeout = 60)
{
	struct ebb_event_context c = { 0 };

	ebbt_start("0-1");
	cr_assert_eq(ebb_event_save_context(&c), -EPERM, "not on a core");
	cr_assert_eq(ebbt_call(0, misuse, NULL), 0);
	cr_assert_eq(atomic_load(&misuse_done), 1);
	ebbt_stop();
}

static struct ebb_event_context forever;

static void block_forever(void *arg)
{
	(void)arg;
	atomic_store(&blocked, 1);
	ebb_event_save_context(&forever);
}

Test(context, stop_with_a_blocked_event_does_not_hang, .timeout = 60)
{
	ebbt_start("0-1");
	cr_assert_eq(ebb_spawn_remote(0, block_forever, NULL), 0);
	cr_assert(ebbt_wait_until(atomic_load(&blocked) == 1, 5000));
	ebbt_stop();
}

static int recurse(int n)
{
	volatile char pad[1024];

	pad[0] = (char)n;
	return n <= 0 ? pad[0] : recurse(n - 1) + pad[0];
}

static void overflow(void *arg)
{
	(void)arg;
	/* 1 MiB of frames on a 256 KiB event stack. */
	recurse(1024);
}

Test(context, stack_overflow_hits_the_guard_page, .timeout = 60,
     .signal = SIGSEGV)
{
	ebbt_start("0-1");
	cr_assert_eq(ebb_spawn_remote(0, overflow, NULL), 0);
	sleep(10);
	cr_assert_fail("the overflow did not fault");
}
