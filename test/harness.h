/* SPDX-License-Identifier: BSD-3-Clause */
/* Shared helpers of the Criterion tests: start a node, run code on a core
 * and wait for it from the test's main thread. */
#ifndef EBBRT_TEST_HARNESS_H
#define EBBRT_TEST_HARNESS_H

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <ebbrt/ebbrt.h>

/* Start a node on @cpus ("0-1"), spinning @spin idle iterations before
 * halting (0: the default). */
static inline void ebbt_start_spin(const char *cpus, unsigned spin)
{
	struct ebb_config cfg;
	int rc;

	memset(&cfg, 0, sizeof(cfg));
	cfg.cpus = cpus;
	cfg.spin_before_halt = spin;
	rc = ebb_init(&cfg);
	cr_assert_eq(rc, 0, "ebb_init: %s", strerror(-rc));
	rc = ebb_start();
	cr_assert_eq(rc, 0, "ebb_start: %s", strerror(-rc));
}

static inline void ebbt_start(const char *cpus)
{
	ebbt_start_spin(cpus, 0);
}

static inline void ebbt_stop(void)
{
	ebb_stop();
	cr_assert_eq(ebb_wait(), 0);
	ebb_fini();
}

static inline uint64_t ebbt_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Wait (sleeping, off the cores) until @cond holds or @ms pass; the value
 * is whether it holds. */
#define ebbt_wait_until(cond, ms)                                           \
	({                                                                  \
		uint64_t __end = ebbt_now_ns() + (uint64_t)(ms) * 1000000ull; \
		while (!(cond) && ebbt_now_ns() < __end)                    \
			usleep(100);                                        \
		(bool)(cond);                                               \
	})

struct ebbt_call {
	void (*fn)(void *);
	void *arg;
	atomic_int done;
};

static inline void ebbt_call_tramp(void *p)
{
	struct ebbt_call *c = (struct ebbt_call *)p;

	c->fn(c->arg);
	atomic_store_explicit(&c->done, 1, memory_order_release);
}

/* Run @fn(@arg) as an event on @core and wait up to 10 s for it to return.
 * Returns 0, -ETIMEDOUT or the error of ebb_spawn_remote(). */
static inline int ebbt_call(unsigned core, void (*fn)(void *), void *arg)
{
	struct ebbt_call c = { .fn = fn, .arg = arg };
	int rc;

	atomic_init(&c.done, 0);
	rc = ebb_spawn_remote(core, ebbt_call_tramp, &c);
	if (rc)
		return rc;
	if (!ebbt_wait_until(
		    atomic_load_explicit(&c.done, memory_order_acquire), 10000))
		return -ETIMEDOUT;
	return 0;
}

#endif
