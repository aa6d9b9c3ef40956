/* SPDX-License-Identifier: BSD-3-Clause */
/* Futures: continuations on the registering core, fulfil once, blocking
 * wait inside an event while the core goes on serving. */
#include <stdatomic.h>

#include "harness.h"

static struct ebb_future *fut;
static atomic_int cont_runs;
static atomic_long cont_value;
static atomic_int cont_core;

static void cont(void *arg, intptr_t value)
{
	(void)arg;
	atomic_store(&cont_value, value);
	atomic_store(&cont_core, (int)ebb_core_id());
	atomic_fetch_add(&cont_runs, 1);
}

static void register_then(void *arg)
{
	(void)arg;
	cr_assert_eq(ebb_future_then(fut, cont, NULL), 0);
}

Test(future, then_runs_on_the_registering_core, .timeout = 60)
{
	intptr_t v = 0;

	ebbt_start("0-1");
	fut = ebb_future_create();
	cr_assert_not_null(fut);
	atomic_store(&cont_core, -1);
	cr_assert_eq(ebbt_call(1, register_then, NULL), 0);
	cr_assert_not(ebb_future_ready(fut, &v));
	usleep(10000);
	cr_assert_eq(atomic_load(&cont_runs), 0, "ran before fulfil");
	cr_assert_eq(ebb_future_fulfil(fut, 42), 0);
	cr_assert(ebbt_wait_until(atomic_load(&cont_runs) == 1, 5000));
	cr_assert_eq(atomic_load(&cont_value), 42);
	cr_assert_eq(atomic_load(&cont_core), 1);
	cr_assert(ebb_future_ready(fut, &v));
	cr_assert_eq(v, 42);

	/* Fulfilling twice is an error and changes nothing. */
	cr_assert_eq(ebb_future_fulfil(fut, 7), -EALREADY);
	cr_assert(ebb_future_ready(fut, &v));
	cr_assert_eq(v, 42);

	/* then() on a fulfilled future still runs, on the caller's core. */
	cr_assert_eq(ebbt_call(0, register_then, NULL), 0);
	cr_assert(ebbt_wait_until(atomic_load(&cont_runs) == 2, 5000));
	cr_assert_eq(atomic_load(&cont_core), 0);
	usleep(10000);
	cr_assert_eq(atomic_load(&cont_runs), 2, "a continuation ran twice");
	ebb_future_destroy(fut);
	ebbt_stop();
}

Test(future, misuse_returns_errors, .timeout = 60)
{
	struct ebb_future *f;

	ebbt_start("0-1");
	f = ebb_future_create();
	cr_assert_not_null(f);
	cr_assert_eq(ebb_future_then(f, cont, NULL), -EPERM, "not on a core");
	cr_assert_eq(ebb_future_wait(f, NULL), -EPERM, "not in an event");
	cr_assert_eq(ebb_future_fulfil(NULL, 1), -EINVAL);
	ebb_future_destroy(NULL);
	ebb_future_destroy(f);
	ebbt_stop();
}

static atomic_int waiting, woken, served;
static atomic_long got[2];

static void waiter(void *arg)
{
	intptr_t v = -1;
	unsigned core = ebb_core_id();

	(void)arg;
	atomic_fetch_add(&waiting, 1);
	cr_assert_eq(ebb_future_wait(fut, &v), 0);
	cr_assert_eq(ebb_core_id(), core, "resumed on another core");
	atomic_store(&got[core], v);
	atomic_fetch_add(&woken, 1);
}

static void serve(void *arg)
{
	(void)arg;
	atomic_fetch_add(&served, 1);
}

static void fulfil_from_core(void *arg)
{
	cr_assert_eq(ebb_future_fulfil(fut, (intptr_t)arg), 0);
}

Test(future, blocking_wait_lets_the_core_serve, .timeout = 60)
{
	const int per_core = 20;

	ebbt_start("0-1");
	fut = ebb_future_create();
	cr_assert_not_null(fut);
	for (int i = 0; i < per_core; i++) {
		cr_assert_eq(ebb_spawn_remote(0, waiter, NULL), 0);
		cr_assert_eq(ebb_spawn_remote(1, waiter, NULL), 0);
	}
	cr_assert(ebbt_wait_until(atomic_load(&waiting) == 2 * per_core, 5000));
	/* Both cores still run events while their waiters are blocked. */
	for (int i = 0; i < 10; i++) {
		cr_assert_eq(ebb_spawn_remote(0, serve, NULL), 0);
		cr_assert_eq(ebb_spawn_remote(1, serve, NULL), 0);
	}
	cr_assert(ebbt_wait_until(atomic_load(&served) == 20, 5000));
	cr_assert_eq(atomic_load(&woken), 0);
	cr_assert_eq(ebbt_call(1, fulfil_from_core, (void *)(intptr_t)99), 0);
	cr_assert(ebbt_wait_until(atomic_load(&woken) == 2 * per_core, 5000),
		  "woken %d of %d", atomic_load(&woken), 2 * per_core);
	cr_assert_eq(atomic_load(&got[0]), 99);
	cr_assert_eq(atomic_load(&got[1]), 99);
	ebb_future_destroy(fut);
	ebbt_stop();
}

static atomic_int quick;

static void wait_ready(void *arg)
{
	intptr_t v = 0;

	(void)arg;
	cr_assert_eq(ebb_future_wait(fut, &v), 0);
	cr_assert_eq(v, 5);
	atomic_store(&quick, 1);
}

Test(future, wait_on_a_fulfilled_future_returns_at_once, .timeout = 60)
{
	ebbt_start("0-1");
	fut = ebb_future_create();
	cr_assert_eq(ebb_future_fulfil(fut, 5), 0);
	cr_assert_eq(ebbt_call(0, wait_ready, NULL), 0);
	cr_assert_eq(atomic_load(&quick), 1);
	ebb_future_destroy(fut);
	ebbt_stop();
}

/* Fulfil races registration: many rounds of waiter on core 0 against a
 * fulfil from core 1 at nearly the same time. No wakeup may be lost. */
static atomic_int race_done;

static void race_waiter(void *arg)
{
	struct ebb_future *f = arg;
	intptr_t v = 0;

	cr_assert_eq(ebb_future_wait(f, &v), 0);
	cr_assert_eq(v, 1);
	atomic_fetch_add(&race_done, 1);
}

static void race_fulfil(void *arg)
{
	ebb_future_fulfil(arg, 1);
}

Test(future, racing_fulfil_and_wait_loses_nothing, .timeout = 60)
{
	enum { ROUNDS = 2000 };
	static struct ebb_future *fs[ROUNDS];

	ebbt_start("0-1");
	for (int i = 0; i < ROUNDS; i++) {
		fs[i] = ebb_future_create();
		cr_assert_not_null(fs[i]);
		while (ebb_spawn_remote(0, race_waiter, fs[i]) == -EAGAIN)
			usleep(10);
		while (ebb_spawn_remote(1, race_fulfil, fs[i]) == -EAGAIN)
			usleep(10);
	}
	cr_assert(ebbt_wait_until(atomic_load(&race_done) == ROUNDS, 10000),
		  "done %d of %d", atomic_load(&race_done), ROUNDS);
	for (int i = 0; i < ROUNDS; i++)
		ebb_future_destroy(fs[i]);
	ebbt_stop();
}
