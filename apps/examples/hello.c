/* SPDX-License-Identifier: BSD-3-Clause */
/* A tour of libebbrt for embedders: a node, an Ebb with a rep per core,
 * remote events, a timer, and a blocking event waiting on a future. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ebbrt/ebbrt.h>

/* --- an Ebb: a counter with one rep per core, no sharing on the hot path */

struct counter_root {
	_Atomic unsigned reps_built;
};

struct counter_rep {
	uint64_t count;
};

static void *counter_fault(ebb_id_t id, void *root, unsigned core)
{
	struct counter_root *r = root;
	struct counter_rep *rep = ebb_calloc(1, sizeof(*rep));

	(void)id;
	(void)core;
	if (rep == NULL)
		return NULL;	/* errno is ENOMEM */
	r->reps_built++;
	return rep;
}

static const struct ebb_type counter_type = {
	.name = "counter",
	.fault = counter_fault,
};

/* counter_rep(id): one table load on a hit. */
EBB_DEFINE_ACCESSOR(counter, struct counter_rep, &counter_type)

static ebb_id_t counter_id;
static struct counter_root counter_root;

/* --- the program */

static struct ebb_future *done, *ticked;
static _Atomic unsigned cores_counted;
static uint64_t totals[EBB_MAX_CORES];

static void count_here(void *arg)
{
	struct counter_rep *rep = counter_rep(counter_id);
	unsigned n = (unsigned)(uintptr_t)arg;

	if (rep == NULL) {
		fprintf(stderr, "hello: no rep: %s\n", strerror(errno));
		exit(1);
	}
	for (unsigned i = 0; i < n; i++)
		rep->count++;
	totals[ebb_core_id()] = rep->count;
	if (++cores_counted == ebb_core_count())
		ebb_future_fulfil(done, (intptr_t)ebb_core_count());
}

static struct ebb_timer tick;
static unsigned ticks;

static void on_tick(struct ebb_timer *t, void *arg)
{
	(void)arg;
	if (++ticks == 3) {
		ebb_timer_cancel(t);
		ebb_future_fulfil(ticked, ticks);
	}
}

/* A blocking event: waits on the future while core 0 keeps serving. */
static void main_event(void *arg)
{
	intptr_t ncores = 0;
	int rc;

	(void)arg;
	ebb_timer_init(&tick, on_tick, NULL);
	ebb_timer_start(&tick, 1000000, 1000000);	/* every 1 ms */
	for (unsigned c = 0; c < ebb_core_count(); c++)
		ebb_spawn_remote(c, count_here, (void *)(uintptr_t)(1000 * (c + 1)));
	rc = ebb_future_wait(done, &ncores);
	if (!rc)
		rc = ebb_future_wait(ticked, NULL);
	if (rc) {
		fprintf(stderr, "hello: wait: %s\n", strerror(-rc));
		exit(1);
	}
	printf("hello: %" PRIdPTR " cores counted:", ncores);
	for (unsigned c = 0; c < ebb_core_count(); c++)
		printf(" core %u=%" PRIu64, c, totals[c]);
	printf("; %u reps built; timer ticked %u times\n",
	       counter_root.reps_built, ticks);
	ebb_stop();
}

int main(int argc, char **argv)
{
	struct ebb_config cfg = { 0 };
	int rc;

	if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		printf("usage: %s [CPUS]\n"
		       "Starts an ebbrt node on CPUS (default: all), counts on "
		       "every core through an Ebb, waits on a future, exits.\n",
		       argv[0]);
		return 0;
	}
	if (argc > 1)
		cfg.cpus = argv[1];
	rc = ebb_init(&cfg);
	if (rc) {
		fprintf(stderr, "hello: ebb_init: %s\n", strerror(-rc));
		return 1;
	}
	counter_id = ebb_create(&counter_type, &counter_root);
	done = ebb_future_create();
	ticked = ebb_future_create();
	if (counter_id == EBB_ID_NONE || done == NULL || ticked == NULL) {
		fprintf(stderr, "hello: set-up: %s\n", strerror(errno));
		return 1;
	}
	ebb_spawn_remote(0, main_event, NULL);
	rc = ebb_run();		/* until main_event calls ebb_stop() */
	ebb_future_destroy(done);
	ebb_future_destroy(ticked);
	ebb_fini();
	if (rc)
		return 1;
	/* Each core counted 1000 * (core + 1) on its own rep. */
	for (unsigned c = 0; c < EBB_MAX_CORES && totals[c]; c++)
		if (totals[c] != 1000u * (c + 1))
			return 1;
	return counter_root.reps_built >= 1 && ticks == 3 ? 0 : 1;
}
