/* SPDX-License-Identifier: BSD-3-Clause */
/* Ebbs on real cores: translation-table hits and misses, faults, the
 * LocalIdMap with RCU, and the EbbAllocator. Tests of suite "ebb" need
 * 2 MiB hugepages; suite "ebballoc" runs without a node. */
#include <pthread.h>
#include <stdlib.h>

#include <rte_pause.h>

#include "defs.h"
#include "harness.h"

#define NCORES 2

/* --- test Ebb types --- */

struct t_root {
	atomic_uint faults[EBB_MAX_CORES];
	atomic_uint wrong_core;		/* fault's @core != running core */
	atomic_int alive;		/* cleared when "freed" */
	/* r_type */
	ebb_id_t other;			/* a t_type id to fault from inside */
	void *inner_ret;
	int inner_errno;
	void *nested_ret;
	/* f_type */
	int fail_errno;
};

struct t_rep {
	struct t_root *root;
	unsigned core;
	ebb_id_t id;
	const struct ebb_type *type;
};

static struct t_rep *rep_new(ebb_id_t id, void *root, unsigned core,
			     const struct ebb_type *type)
{
	struct t_root *r = root;
	struct t_rep *rep = calloc(1, sizeof(*rep));

	if (rep == NULL)
		return NULL;
	rep->root = r;
	rep->core = core;
	rep->id = id;
	rep->type = type;
	if (core != ebb_core_id())
		atomic_fetch_add(&r->wrong_core, 1);
	atomic_fetch_add(&r->faults[core], 1);
	return rep;
}

static const struct ebb_type t_type, o_type, r_type, f_type;

static void *t_fault(ebb_id_t id, void *root, unsigned core)
{
	return rep_new(id, root, core, &t_type);
}

static void *o_fault(ebb_id_t id, void *root, unsigned core)
{
	return rep_new(id, root, core, &o_type);
}

static const struct ebb_type t_type = { "test", t_fault };
static const struct ebb_type o_type = { "other", o_fault };
EBB_DEFINE_ACCESSOR(t, struct t_rep, &t_type)
EBB_DEFINE_ACCESSOR(o, struct t_rep, &o_type)

/* Uses its own id (must be refused) and another Ebb (must work). */
static void *r_fault(ebb_id_t id, void *root, unsigned core);
static const struct ebb_type r_type = { "recursive", r_fault };
EBB_DEFINE_ACCESSOR(r, struct t_rep, &r_type)

static void *r_fault(ebb_id_t id, void *root, unsigned core)
{
	struct t_root *r = root;

	errno = 0;
	r->inner_ret = r_rep(id);
	r->inner_errno = errno;
	r->nested_ret = t_rep(r->other);
	return rep_new(id, root, core, &r_type);
}

/* Fails with root->fail_errno (0: fails without setting errno). */
static void *f_fault(ebb_id_t id, void *root, unsigned core)
{
	struct t_root *r = root;

	(void)id;
	atomic_fetch_add(&r->faults[core], 1);
	errno = r->fail_errno;
	return NULL;
}

static const struct ebb_type f_type = { "failing", f_fault };
EBB_DEFINE_ACCESSOR(f, struct t_rep, &f_type)

static struct t_root *root_new(void)
{
	struct t_root *r = calloc(1, sizeof(*r));

	cr_assert_not_null(r);
	atomic_store(&r->alive, 1);
	return r;
}

static unsigned faults(struct t_root *r, unsigned core)
{
	return atomic_load(&r->faults[core]);
}

/* --- running lookups on a core --- */

enum { ACC_T, ACC_O, ACC_R, ACC_F };

struct lookup {
	int acc;
	ebb_id_t id;
	struct t_rep *ret;
	int err;
	unsigned core;
};

static void lookup_on_core(void *arg)
{
	struct lookup *l = arg;

	l->core = ebb_core_id();
	errno = 0;
	switch (l->acc) {
	case ACC_T: l->ret = t_rep(l->id); break;
	case ACC_O: l->ret = o_rep(l->id); break;
	case ACC_R: l->ret = r_rep(l->id); break;
	default: l->ret = f_rep(l->id); break;
	}
	l->err = errno;
}

static struct lookup lookup(unsigned core, int acc, ebb_id_t id)
{
	struct lookup l = { .acc = acc, .id = id };
	int rc = ebbt_call(core, lookup_on_core, &l);

	cr_assert_eq(rc, 0, "ebbt_call(core %u): %s", core, strerror(-rc));
	cr_assert_eq(l.core, core, "ran on core %u, not %u", l.core, core);
	return l;
}

TestSuite(ebb, .timeout = 60);
TestSuite(ebballoc, .timeout = 60);

Test(ebb, hit_returns_cached_rep)
{
	struct t_root *root = root_new();
	struct t_rep *first[NCORES];
	ebb_id_t id;

	ebbt_start("0-1");
	id = ebb_create(&t_type, root);
	cr_assert_neq(id, EBB_ID_NONE, "ebb_create: %s", strerror(errno));
	for (unsigned c = 0; c < NCORES; c++) {
		struct lookup a = lookup(c, ACC_T, id);

		cr_assert_not_null(a.ret, "core %u: miss failed: %s", c,
				   strerror(a.err));
		cr_assert_eq(a.ret->core, c);
		cr_assert_eq(a.ret->id, id);
		cr_assert_eq(a.ret->root, root);
		cr_assert_eq(faults(root, c), 1);
		first[c] = a.ret;
		for (int i = 0; i < 3; i++) {
			struct lookup b = lookup(c, ACC_T, id);

			cr_assert_eq(b.ret, first[c],
				     "core %u: hit %d gave %p, first %p", c, i,
				     (void *)b.ret, (void *)first[c]);
		}
		cr_assert_eq(faults(root, c), 1, "core %u: %u faults", c,
			     faults(root, c));
	}
	cr_assert_neq(first[0], first[1], "cores share a rep");
	cr_assert_eq(atomic_load(&root->wrong_core), 0);
	ebbt_stop();
}

Test(ebb, miss_errors)
{
	struct t_root *root = root_new(), *froot = root_new();
	ebb_id_t unbound, id, fid;
	struct lookup l;

	ebbt_start("0-1");
	unbound = ebb_id_alloc();
	cr_assert_neq(unbound, EBB_ID_NONE);
	id = ebb_create(&t_type, root);
	cr_assert_neq(id, EBB_ID_NONE);

	/* Unknown id: ENOENT, and nothing negative is cached. */
	l = lookup(0, ACC_T, unbound);
	cr_assert_null(l.ret);
	cr_assert_eq(l.err, ENOENT, "errno %d (%s)", l.err, strerror(l.err));
	l = lookup(0, ACC_T, EBB_ID_MAX - 1);
	cr_assert_null(l.ret);
	cr_assert_eq(l.err, ENOENT, "errno %d (%s)", l.err, strerror(l.err));
	cr_assert_eq(ebb_idmap_set(unbound, &t_type, root), 0);
	l = lookup(0, ACC_T, unbound);
	cr_assert_not_null(l.ret, "bound after a miss: %s", strerror(l.err));
	cr_assert_eq(l.ret->id, unbound);

	/* Id 0 is never an id. */
	l = lookup(1, ACC_T, EBB_ID_NONE);
	cr_assert_null(l.ret);
	cr_assert_eq(l.err, EINVAL, "errno %d (%s)", l.err, strerror(l.err));

	/* Other type: EINVAL, and no fault of either type. */
	l = lookup(1, ACC_O, id);
	cr_assert_null(l.ret, "type mismatch returned a rep");
	cr_assert_eq(l.err, EINVAL, "errno %d (%s)", l.err, strerror(l.err));
	cr_assert_eq(faults(root, 1), 0);
	l = lookup(1, ACC_T, id);
	cr_assert_not_null(l.ret);
	cr_assert_eq(l.ret->type, &t_type);

	/* A failing fault passes its errno on and caches nothing. */
	froot->fail_errno = EBUSY;
	fid = ebb_create(&f_type, froot);
	cr_assert_neq(fid, EBB_ID_NONE);
	l = lookup(0, ACC_F, fid);
	cr_assert_null(l.ret);
	cr_assert_eq(l.err, EBUSY, "errno %d (%s)", l.err, strerror(l.err));
	froot->fail_errno = 0;
	l = lookup(0, ACC_F, fid);
	cr_assert_null(l.ret);
	cr_assert_neq(l.err, 0, "failed fault left errno 0");
	cr_assert_eq(faults(froot, 0), 2, "failed faults: %u",
		     faults(froot, 0));

	/* Not on a core. */
	errno = 0;
	cr_assert_null(t_rep(id));
	cr_assert_eq(errno, EPERM, "errno %d (%s)", errno, strerror(errno));
	ebbt_stop();
}

struct direct {
	ebb_id_t id;
	void *ret;
	int err;
};

static void direct_miss_on_core(void *arg)
{
	struct direct *d = arg;

	errno = 0;
	d->ret = __ebb_miss(d->id, &t_type);
	d->err = errno;
}

Test(ebb, miss_out_of_range)
{
	struct direct d = { .id = EBB_ID_MAX };

	ebbt_start("0-1");
	cr_assert_eq(ebbt_call(0, direct_miss_on_core, &d), 0);
	cr_assert_null(d.ret);
	cr_assert_eq(d.err, EINVAL, "errno %d (%s)", d.err, strerror(d.err));
	ebbt_stop();
}

Test(ebb, nested_and_recursive_faults)
{
	struct t_root *troot = root_new(), *rroot = root_new();
	ebb_id_t tid, rid;
	struct lookup l;

	ebbt_start("0-1");
	tid = ebb_create(&t_type, troot);
	rid = ebb_create(&r_type, rroot);
	cr_assert(tid && rid);
	rroot->other = tid;
	l = lookup(1, ACC_R, rid);
	cr_assert_not_null(l.ret, "outer fault failed: %s", strerror(l.err));
	cr_assert_null(rroot->inner_ret, "re-entry built a second rep");
	cr_assert_eq(rroot->inner_errno, EDEADLK, "re-entry errno %d (%s)",
		     rroot->inner_errno, strerror(rroot->inner_errno));
	cr_assert_eq(faults(rroot, 1), 1);
	/* The nested fault of another Ebb worked and was cached. */
	cr_assert_not_null(rroot->nested_ret);
	cr_assert_eq(faults(troot, 1), 1);
	l = lookup(1, ACC_T, tid);
	cr_assert_eq(l.ret, rroot->nested_ret);
	cr_assert_eq(faults(troot, 1), 1);
	/* The guard is gone after the fault: a later hit is a plain hit. */
	l = lookup(1, ACC_R, rid);
	cr_assert_not_null(l.ret);
	cr_assert_eq(faults(rroot, 1), 1);
	ebbt_stop();
}

struct cache_call {
	ebb_id_t id;
	void *rep;
	int rc;
};

static void rep_cache_on_core(void *arg)
{
	struct cache_call *cc = arg;

	cc->rc = ebb_rep_cache(cc->id, cc->rep);
}

Test(ebb, rep_cache)
{
	struct t_root *root = root_new();
	struct t_rep mine = { .core = 99 };
	struct cache_call cc;
	struct lookup l;
	ebb_id_t id;

	ebbt_start("0-1");
	id = ebb_create(&t_type, root);
	cr_assert_neq(id, EBB_ID_NONE);
	cc = (struct cache_call){ .id = id, .rep = &mine };
	cr_assert_eq(ebbt_call(0, rep_cache_on_core, &cc), 0);
	cr_assert_eq(cc.rc, 0, "ebb_rep_cache: %d", cc.rc);
	l = lookup(0, ACC_T, id);
	cr_assert_eq(l.ret, &mine);
	cr_assert_eq(faults(root, 0), 0, "cached rep still faulted");
	/* Core 1 has its own table. */
	l = lookup(1, ACC_T, id);
	cr_assert_neq(l.ret, &mine);
	cr_assert_eq(faults(root, 1), 1);
	/* NULL drops it: the next use faults. */
	cc = (struct cache_call){ .id = id, .rep = NULL };
	cr_assert_eq(ebbt_call(0, rep_cache_on_core, &cc), 0);
	cr_assert_eq(cc.rc, 0);
	l = lookup(0, ACC_T, id);
	cr_assert_not_null(l.ret);
	cr_assert_neq(l.ret, &mine);
	cr_assert_eq(faults(root, 0), 1);

	cc = (struct cache_call){ .id = EBB_ID_NONE, .rep = &mine };
	cr_assert_eq(ebbt_call(0, rep_cache_on_core, &cc), 0);
	cr_assert_eq(cc.rc, -EINVAL);
	cc = (struct cache_call){ .id = EBB_ID_MAX, .rep = &mine };
	cr_assert_eq(ebbt_call(0, rep_cache_on_core, &cc), 0);
	cr_assert_eq(cc.rc, -EINVAL);
	cr_assert_eq(ebb_rep_cache(id, &mine), -EPERM);
	ebbt_stop();
}

/* --- concurrent first use --- */

#define RACE_IDS 512
#define RACE_ROUNDS 4

struct race {
	ebb_id_t ids[RACE_IDS];
	struct t_root roots[RACE_IDS];
	atomic_int ready, start, done;
	struct t_rep *seen[NCORES][RACE_IDS];
	unsigned bad[NCORES];
	int err[NCORES];
};

static void race_on_core(void *arg)
{
	struct race *r = arg;
	unsigned me = ebb_core_id();

	atomic_fetch_add(&r->ready, 1);
	while (!atomic_load_explicit(&r->start, memory_order_acquire))
		rte_pause();
	for (int round = 0; round < RACE_ROUNDS; round++) {
		for (unsigned i = 0; i < RACE_IDS; i++) {
			struct t_rep *p = t_rep(r->ids[i]);

			if (p == NULL) {
				r->bad[me]++;
				r->err[me] = errno;
				continue;
			}
			if (round == 0)
				r->seen[me][i] = p;
			else if (p != r->seen[me][i])
				r->bad[me]++;
			if (p->core != me || p->id != r->ids[i] ||
			    p->root != &r->roots[i])
				r->bad[me]++;
		}
	}
	atomic_fetch_add_explicit(&r->done, 1, memory_order_release);
}

Test(ebb, concurrent_first_use)
{
	struct race *r = calloc(1, sizeof(*r));
	struct t_root *extra = root_new();
	ebb_id_t more[RACE_IDS];

	cr_assert_not_null(r);
	ebbt_start("0-1");
	for (unsigned i = 0; i < RACE_IDS; i++) {
		r->ids[i] = ebb_create(&t_type, &r->roots[i]);
		cr_assert_neq(r->ids[i], EBB_ID_NONE);
	}
	for (unsigned c = 0; c < NCORES; c++)
		cr_assert_eq(ebb_spawn_remote(c, race_on_core, r), 0);
	cr_assert(ebbt_wait_until(atomic_load(&r->ready) == NCORES, 5000));
	atomic_store_explicit(&r->start, 1, memory_order_release);
	/* Meanwhile the main thread writes the map the cores read. */
	for (unsigned i = 0; i < RACE_IDS; i++) {
		more[i] = ebb_create(&t_type, extra);
		cr_assert_neq(more[i], EBB_ID_NONE);
		cr_assert_eq(ebb_idmap_get(r->ids[i], &t_type), &r->roots[i]);
	}
	cr_assert(ebbt_wait_until(atomic_load_explicit(&r->done,
						       memory_order_acquire) ==
					  NCORES,
				  20000),
		  "cores did not finish");
	for (unsigned c = 0; c < NCORES; c++)
		cr_assert_eq(r->bad[c], 0, "core %u: %u bad lookups (errno %s)",
			     c, r->bad[c], strerror(r->err[c]));
	for (unsigned i = 0; i < RACE_IDS; i++) {
		for (unsigned c = 0; c < NCORES; c++)
			cr_assert_eq(faults(&r->roots[i], c), 1,
				     "id %u core %u: %u faults", r->ids[i], c,
				     faults(&r->roots[i], c));
		cr_assert_neq(r->seen[0][i], r->seen[1][i]);
		cr_assert_eq(atomic_load(&r->roots[i].wrong_core), 0);
	}
	for (unsigned i = 0; i < RACE_IDS; i++)
		cr_assert_eq(ebb_idmap_remove(more[i]), 0);
	ebbt_stop();
}

/* --- LocalIdMap --- */

Test(ebb, idmap_set_get_remove)
{
	struct t_root *a = root_new(), *b = root_new();
	ebb_id_t id;

	ebbt_start("0-1");
	id = ebb_id_alloc();
	cr_assert_neq(id, EBB_ID_NONE);
	errno = 0;
	cr_assert_null(ebb_idmap_get(id, NULL));
	cr_assert_eq(errno, ENOENT);
	cr_assert_eq(ebb_idmap_set(id, &t_type, a), 0);
	cr_assert_eq(ebb_idmap_set(id, &t_type, b), -EEXIST);
	cr_assert_eq(ebb_idmap_get(id, NULL), a, "EEXIST replaced the root");
	cr_assert_eq(ebb_idmap_get(id, &t_type), a);
	errno = 0;
	cr_assert_null(ebb_idmap_get(id, &o_type));
	cr_assert_eq(errno, EINVAL);
	cr_assert_eq(ebb_idmap_set(EBB_ID_NONE, &t_type, a), -EINVAL);
	cr_assert_eq(ebb_idmap_set(EBB_ID_MAX, &t_type, a), -EINVAL);
	cr_assert_eq(ebb_idmap_set(id + 1, NULL, a), -EINVAL);
	cr_assert_eq(ebb_idmap_remove(id), 0);
	errno = 0;
	cr_assert_null(ebb_idmap_get(id, NULL));
	cr_assert_eq(errno, ENOENT);
	cr_assert_eq(ebb_idmap_remove(id), -ENOENT);
	/* Rebinding after a remove works (the old record is reclaimed
	 * later, not reused). */
	cr_assert_eq(ebb_idmap_set(id, &o_type, b), 0);
	cr_assert_eq(ebb_idmap_get(id, &o_type), b);
	errno = 0;
	cr_assert_eq(ebb_create(NULL, a), EBB_ID_NONE);
	cr_assert_eq(errno, EINVAL);
	ebbt_stop();
}

struct sync_thread {
	pthread_t t;
	atomic_int done;
	int rc;
	uint64_t ns;
};

static void *sync_main(void *arg)
{
	struct sync_thread *s = arg;
	uint64_t t0 = ebbt_now_ns();

	s->rc = ebb_rcu_synchronize();
	s->ns = ebbt_now_ns() - t0;
	atomic_store_explicit(&s->done, 1, memory_order_release);
	return NULL;
}

/* ebb_rcu_synchronize() on a helper thread, so that a hang fails the test
 * with a message instead of a timeout. */
static void sync_within(unsigned ms, const char *when)
{
	struct sync_thread *s = calloc(1, sizeof(*s));

	cr_assert_not_null(s);
	cr_assert_eq(pthread_create(&s->t, NULL, sync_main, s), 0);
	cr_assert(ebbt_wait_until(atomic_load_explicit(
					  &s->done, memory_order_acquire),
				  ms),
		  "ebb_rcu_synchronize() did not return within %u ms %s", ms,
		  when);
	pthread_join(s->t, NULL);
	cr_assert_eq(s->rc, 0, "ebb_rcu_synchronize: %d", s->rc);
	free(s);
}

Test(ebb, rcu_sync_cores_halted)
{
	struct t_root *root = root_new();
	struct lookup l;
	ebb_id_t id;

	ebbt_start_spin("0-1", 8);
	id = ebb_create(&t_type, root);
	cr_assert_neq(id, EBB_ID_NONE);
	l = lookup(0, ACC_T, id);
	cr_assert_not_null(l.ret);
	cr_assert(ebbt_wait_until(ebb_core_halted(0) && ebb_core_halted(1),
				  5000),
		  "cores did not halt");
	cr_assert_eq(ebb_idmap_remove(id), 0);
	sync_within(5000, "with both cores halted");
	/* Removal does not touch reps already cached. */
	l = lookup(0, ACC_T, id);
	cr_assert_not_null(l.ret, "cached rep lost: %s", strerror(l.err));
	cr_assert_eq(faults(root, 0), 1);
	l = lookup(1, ACC_T, id);
	cr_assert_null(l.ret);
	cr_assert_eq(l.err, ENOENT);
	/* And again once the cores have halted after that work. */
	cr_assert(ebbt_wait_until(ebb_core_halted(0) && ebb_core_halted(1),
				  5000));
	sync_within(5000, "with both cores halted (2nd time)");
	ebbt_stop();
}

struct busy {
	ebb_id_t id;
	atomic_int stop, running;
	atomic_ulong iters[NCORES];
	atomic_ulong violations, roots_seen, enoent_seen;
};

/* An event that respawns itself: the core never idles, but passes a
 * quiescent state between any two events. */
static void busy_event(void *arg)
{
	struct busy *b = arg;
	struct t_root *r;

	if (atomic_load(&b->stop)) {
		atomic_fetch_sub(&b->running, 1);
		return;
	}
	r = ebb_idmap_get(b->id, &t_type);
	if (r != NULL) {
		/* r must stay alive until this event ends; hold it long
		 * enough (every 4th event, 300 us) that a grace period cut
		 * short would be seen. */
		uint64_t end = ebbt_now_ns() +
			       (atomic_load(&b->iters[ebb_core_id()]) % 4 ?
					0 : 300000);

		do {
			if (!atomic_load_explicit(&r->alive,
						  memory_order_acquire))
				atomic_fetch_add(&b->violations, 1);
		} while (ebbt_now_ns() < end);
		atomic_fetch_add(&b->roots_seen, 1);
	} else if (errno == ENOENT) {
		atomic_fetch_add(&b->enoent_seen, 1);
	}
	atomic_fetch_add(&b->iters[ebb_core_id()], 1);
	if (ebb_spawn_local(busy_event, b) != 0)
		atomic_fetch_sub(&b->running, 1);
}

Test(ebb, rcu_sync_cores_busy)
{
	struct t_root *root = root_new();
	struct busy *b = calloc(1, sizeof(*b));
	struct ebb_core_stats before[NCORES], after[NCORES];

	cr_assert_not_null(b);
	ebbt_start("0-1");
	b->id = ebb_create(&t_type, root);
	cr_assert_neq(b->id, EBB_ID_NONE);
	atomic_store(&b->running, NCORES);
	for (unsigned c = 0; c < NCORES; c++)
		cr_assert_eq(ebb_spawn_remote(c, busy_event, b), 0);
	cr_assert(ebbt_wait_until(atomic_load(&b->iters[0]) > 1000 &&
					  atomic_load(&b->iters[1]) > 1000,
				  5000));
	for (unsigned c = 0; c < NCORES; c++)
		ebb_core_stats(c, &before[c]);

	for (int i = 0; i < 50; i++) {
		cr_assert_eq(ebb_idmap_remove(b->id), 0);
		sync_within(5000, "with both cores busy");
		/* "Free" the root: no event may still be using it. */
		atomic_store_explicit(&root->alive, 0, memory_order_release);
		usleep(200);
		atomic_store_explicit(&root->alive, 1, memory_order_release);
		cr_assert_eq(ebb_idmap_set(b->id, &t_type, root), 0);
		usleep(200);
	}
	for (unsigned c = 0; c < NCORES; c++)
		ebb_core_stats(c, &after[c]);
	atomic_store(&b->stop, 1);
	cr_assert(ebbt_wait_until(atomic_load(&b->running) == 0, 5000));

	for (unsigned c = 0; c < NCORES; c++) {
		cr_assert_eq(after[c].halts, before[c].halts,
			     "core %u halted during the test", c);
		cr_assert_gt(after[c].iterations, before[c].iterations);
	}
	cr_assert_eq(atomic_load(&b->violations), 0,
		     "%lu reads of a root after its grace period",
		     (unsigned long)atomic_load(&b->violations));
	cr_assert_gt(atomic_load(&b->roots_seen), 0);
	cr_assert_gt(atomic_load(&b->enoent_seen), 0,
		     "cores never saw the removal");
	ebbt_stop();
}

struct sync_call {
	int rc;
};

static void sync_on_core(void *arg)
{
	struct sync_call *s = arg;

	s->rc = ebb_rcu_synchronize();
}

Test(ebb, rcu_sync_on_core_refused)
{
	struct sync_call s = { .rc = 12345 };

	ebbt_start("0-1");
	cr_assert_eq(ebbt_call(1, sync_on_core, &s), 0);
	cr_assert_eq(s.rc, -EDEADLK, "on a core: %d", s.rc);
	cr_assert_eq(ebb_rcu_synchronize(), 0);
	ebbt_stop();
}

Test(ebb, free_forgets_cached_reps)
{
	struct t_root *a = root_new(), *b = root_new();
	struct lookup l[NCORES];
	ebb_id_t id, id2;

	ebbt_start("0-1");
	id = ebb_create(&t_type, a);
	cr_assert_neq(id, EBB_ID_NONE);
	for (unsigned c = 0; c < NCORES; c++) {
		l[c] = lookup(c, ACC_T, id);
		cr_assert_not_null(l[c].ret);
	}
	cr_assert_eq(ebb_idmap_remove(id), 0);
	cr_assert_eq(ebb_rcu_synchronize(), 0);
	cr_assert_eq(ebb_id_free(id), 0);
	id2 = ebb_create(&o_type, b);
	cr_assert_eq(id2, id, "freed id %u not reused (got %u)", id, id2);
	for (unsigned c = 0; c < NCORES; c++) {
		struct lookup n = lookup(c, ACC_O, id2);

		cr_assert_not_null(n.ret, "core %u: %s", c, strerror(n.err));
		cr_assert_neq(n.ret, l[c].ret, "core %u: stale rep", c);
		cr_assert_eq(n.ret->type, &o_type);
		cr_assert_eq(n.ret->root, b);
		cr_assert_eq(faults(b, c), 1);
	}
	ebbt_stop();
}

Test(ebb, default_global_range)
{
	ebb_id_t g[8], l;

	ebbt_start("0-1");
	for (int i = 0; i < 8; i++) {
		g[i] = ebb_id_alloc_global();
		cr_assert(g[i] >= EBB_ID_STATIC_END && g[i] < EBB_ID_LOCAL_BASE,
			  "global id %u out of the global space", g[i]);
		for (int j = 0; j < i; j++)
			cr_assert_neq(g[i], g[j]);
	}
	l = ebb_id_alloc();
	cr_assert(l >= EBB_ID_LOCAL_BASE && l < EBB_ID_MAX);
	ebbt_stop();
}

/* --- EbbAllocator without a node --- */

static int cmp_id(const void *a, const void *b)
{
	ebb_id_t x = *(const ebb_id_t *)a, y = *(const ebb_id_t *)b;

	return x < y ? -1 : x > y;
}

static void assert_unique(ebb_id_t *ids, size_t n)
{
	qsort(ids, n, sizeof(*ids), cmp_id);
	for (size_t i = 1; i < n; i++)
		cr_assert_neq(ids[i], ids[i - 1], "id %u handed out twice",
			      ids[i]);
}

Test(ebballoc, local_unique_and_reused)
{
	enum { N = 4000 };
	ebb_id_t ids[N], again[N / 2], freed[N / 2];

	for (int i = 0; i < N; i++) {
		ids[i] = ebb_id_alloc();
		cr_assert(ids[i] >= EBB_ID_LOCAL_BASE && ids[i] < EBB_ID_MAX,
			  "local id %u out of range", ids[i]);
	}
	/* Free every other one, then take as many: the same ids come
	 * back, nothing new. */
	for (int i = 0; i < N / 2; i++) {
		freed[i] = ids[2 * i + 1];
		cr_assert_eq(ebb_id_free(freed[i]), 0);
	}
	for (int i = 0; i < N / 2; i++)
		again[i] = ebb_id_alloc();
	qsort(freed, N / 2, sizeof(freed[0]), cmp_id);
	qsort(again, N / 2, sizeof(again[0]), cmp_id);
	for (int i = 0; i < N / 2; i++)
		cr_assert_eq(again[i], freed[i], "reuse %d: got %u, freed %u",
			     i, again[i], freed[i]);
	assert_unique(ids, N);
}

Test(ebballoc, free_errors)
{
	ebb_id_t id = ebb_id_alloc();

	cr_assert_neq(id, EBB_ID_NONE);
	cr_assert_eq(ebb_id_free(id), 0);
	cr_assert_eq(ebb_id_free(id), -EINVAL, "double free accepted");
	cr_assert_eq(ebb_id_free(EBB_ID_NONE), -EINVAL);
	cr_assert_eq(ebb_id_free(EBB_ID_EVENT_MANAGER), -EINVAL);
	cr_assert_eq(ebb_id_free(EBB_ID_MAX), -EINVAL);
	cr_assert_eq(ebb_id_free(EBB_ID_MAX - 1), -EINVAL, "never handed out");
}

Test(ebballoc, local_exhaustion)
{
	const size_t range = EBB_ID_MAX - EBB_ID_LOCAL_BASE;
	ebb_id_t *ids = calloc(range + 1, sizeof(*ids));
	size_t n = 0;
	ebb_id_t id;

	cr_assert_not_null(ids);
	while ((id = ebb_id_alloc()) != EBB_ID_NONE) {
		if (n == range)
			cr_assert_fail("more ids than the local range holds");
		ids[n++] = id;
	}
	cr_assert_eq(errno, ENOSPC);
	cr_assert_eq(n, range, "only %zu of %zu local ids", n, range);
	cr_assert_eq(ebb_id_free(ids[n / 3]), 0);
	cr_assert_eq(ebb_id_alloc(), ids[n / 3]);
	cr_assert_eq(ebb_id_alloc(), EBB_ID_NONE);
	assert_unique(ids, n);
	free(ids);
}

Test(ebballoc, global_range)
{
	const ebb_id_t lo = 70000;
	ebb_id_t a, b, c;

	cr_assert_eq(ebb_id_set_global_range(lo, lo), -EINVAL);
	cr_assert_eq(ebb_id_set_global_range(lo + 1, lo), -EINVAL);
	cr_assert_eq(ebb_id_set_global_range(EBB_ID_STATIC_END - 1, lo),
		     -EINVAL);
	cr_assert_eq(ebb_id_set_global_range(lo, EBB_ID_LOCAL_BASE + 1),
		     -EINVAL);
	cr_assert_eq(ebb_id_set_global_range(lo, lo + 3), 0);
	a = ebb_id_alloc_global();
	b = ebb_id_alloc_global();
	c = ebb_id_alloc_global();
	cr_assert(a >= lo && a < lo + 3 && b >= lo && b < lo + 3 &&
		  c >= lo && c < lo + 3, "%u %u %u outside [%u, %u)", a, b, c,
		  lo, lo + 3);
	cr_assert(a != b && b != c && a != c);
	errno = 0;
	cr_assert_eq(ebb_id_alloc_global(), EBB_ID_NONE);
	cr_assert_eq(errno, ENOSPC);
	cr_assert_eq(ebb_id_free(b), 0);
	cr_assert_eq(ebb_id_alloc_global(), b);
	/* Local and global spaces are apart. */
	a = ebb_id_alloc();
	cr_assert(a >= EBB_ID_LOCAL_BASE);
	/* A new range that overlaps ids in use skips them. */
	cr_assert_eq(ebb_id_set_global_range(lo + 2, lo + 5), 0);
	a = ebb_id_alloc_global();
	b = ebb_id_alloc_global();
	cr_assert(a != c && b != c);
	cr_assert(a >= lo + 2 && a < lo + 5 && b >= lo + 2 && b < lo + 5);
	cr_assert_eq(ebb_id_alloc_global(), EBB_ID_NONE);
	/* An id of the old range can still be freed. */
	cr_assert_eq(ebb_id_free(lo), 0);
}

/* Default ranges of different nodes are disjoint and global. */
static void node_range(unsigned node, ebb_id_t *lo, ebb_id_t *hi, size_t *n)
{
	ebb_id_t id;

	ebb_node.node_id = node;
	ebb_ebballoc_init();
	*lo = EBB_ID_MAX;
	*hi = 0;
	*n = 0;
	while ((id = ebb_id_alloc_global()) != EBB_ID_NONE) {
		cr_assert(id >= EBB_ID_STATIC_END && id < EBB_ID_LOCAL_BASE,
			  "node %u: global id %u out of the global space",
			  node, id);
		if (id < *lo)
			*lo = id;
		if (id > *hi)
			*hi = id;
		if (++*n > EBB_ID_LOCAL_BASE)
			cr_assert_fail("node %u: endless global range", node);
	}
}

Test(ebballoc, default_ranges_per_node)
{
	ebb_id_t lo1, hi1, lo2, hi2, lo0, hi0;
	size_t n1, n2, n0;

	node_range(1, &lo1, &hi1, &n1);
	node_range(2, &lo2, &hi2, &n2);
	node_range(0, &lo0, &hi0, &n0);
	cr_assert(n0 > 0 && n1 > 0 && n2 > 0, "empty default range");
	cr_assert(hi1 < lo2 || hi2 < lo1, "nodes 1 and 2 overlap: "
		  "[%u, %u] [%u, %u]", lo1, hi1, lo2, hi2);
	cr_assert(hi0 < lo1 || hi1 < lo0, "nodes 0 and 1 overlap");
	/* Ranges are dense: every id between lo and hi was handed out. */
	cr_assert_eq(n1, (size_t)(hi1 - lo1 + 1));
	ebb_node.node_id = 0;
}

#define CONC_THREADS 4
#define CONC_IDS 60000

struct conc {
	atomic_int start;
	ebb_id_t ids[CONC_THREADS][CONC_IDS];
};

struct conc_arg {
	struct conc *c;
	int t;
};

static void *conc_main(void *arg)
{
	struct conc_arg *a = arg;
	ebb_id_t *mine = a->c->ids[a->t];

	while (!atomic_load(&a->c->start))
		;
	/* Interleave frees so that reuse races with fresh allocation. */
	for (int i = 0; i < CONC_IDS; i++) {
		mine[i] = ebb_id_alloc();
		if (i % 3 == 2) {
			if (ebb_id_free(mine[i - 1]) != 0)
				mine[i - 1] = 1;	/* flag: free failed */
			else
				mine[i - 1] = ebb_id_alloc();
		}
	}
	return NULL;
}

Test(ebballoc, concurrent_alloc_free)
{
	struct conc *c = calloc(1, sizeof(*c));
	struct conc_arg args[CONC_THREADS];
	pthread_t t[CONC_THREADS];

	cr_assert_not_null(c);
	for (int i = 0; i < CONC_THREADS; i++) {
		args[i] = (struct conc_arg){ c, i };
		cr_assert_eq(pthread_create(&t[i], NULL, conc_main, &args[i]),
			     0);
	}
	atomic_store(&c->start, 1);
	for (int i = 0; i < CONC_THREADS; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < CONC_THREADS; i++)
		for (int j = 0; j < CONC_IDS; j++)
			cr_assert(c->ids[i][j] >= EBB_ID_LOCAL_BASE &&
					  c->ids[i][j] < EBB_ID_MAX,
				  "thread %d id %d: %u", i, j, c->ids[i][j]);
	assert_unique(&c->ids[0][0], CONC_THREADS * CONC_IDS);
	free(c);
}
