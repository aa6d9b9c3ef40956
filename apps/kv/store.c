/* SPDX-License-Identifier: BSD-3-Clause */
/* ebb-kv item store: one hash table split into lock stripes, each with its
 * own buckets, LRU list and counters; one global memory budget. */
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store.h"

/* Counters of one stripe, written under its lock. */
struct kv_stripe_counters {
	uint64_t curr_items, total_items, bytes;
	uint64_t evictions, reclaimed, expired_unfetched;
	uint64_t cmd_get, cmd_set, cmd_touch;
	uint64_t get_hits, get_misses, get_expired, get_flushed;
	uint64_t delete_hits, delete_misses;
	uint64_t incr_hits, incr_misses, decr_hits, decr_misses;
	uint64_t cas_hits, cas_misses, cas_badval;
	uint64_t touch_hits, touch_misses;
};

struct kv_stripe {
	pthread_mutex_t lock;
	struct kv_item **buckets;
	size_t mask; /* buckets - 1 */
	struct kv_item *lru_head, *lru_tail;
	struct kv_stripe_counters c;
} __attribute__((aligned(64)));

struct kv_store {
	size_t mem_limit, item_size_max;
	unsigned stripes;
	kv_clock_fn clock;
	void *clock_arg;
	/* Bytes of every allocated item, linked or not. Relaxed: it is a
	 * budget, no other data is published through it. */
	uint64_t mem_used __attribute__((aligned(64)));
	uint64_t next_cas;     /* relaxed: ids need only be unique */
	int64_t oldest_live;   /* relaxed: read against item times under
				* the stripe locks; 0 none */
	uint64_t cmd_flush, store_too_large, store_no_memory; /* relaxed */
	struct kv_stripe *stripe;
};

#define KV_INITIAL_BUCKETS 64

_Static_assert(sizeof(struct kv_stripe) % 64 == 0,
	       "stripes sit on their own cache lines");

static int64_t clock_default(void *arg)
{
	(void)arg;
	return (int64_t)time(NULL);
}

static inline size_t item_total(const struct kv_item *it)
{
	return sizeof(*it) + it->nkey + (size_t)it->nbytes + 2;
}

/* FNV-1a, then a murmur3 finalizer to spread the bits the stripe index
 * and bucket index take. */
static uint64_t key_hash(const void *key, size_t nkey)
{
	const unsigned char *p = key;
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < nkey; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return h;
}

static inline unsigned stripe_of(const struct kv_store *s, uint64_t hash)
{
	return (unsigned)(hash >> 32) & (s->stripes - 1);
}

int64_t kv_store_now(const struct kv_store *s)
{
	return s->clock(s->clock_arg);
}

int64_t kv_store_realtime(const struct kv_store *s, int64_t exptime)
{
	if (exptime == 0)
		return 0;
	if (exptime < 0)
		return 1; /* long past: expired at once */
	if (exptime > KV_REALTIME_MAXDELTA)
		return exptime;
	return kv_store_now(s) + exptime;
}

bool kv_parse_u64(const char *p, size_t len, uint64_t *out)
{
	size_t i = 0, digits = 0;
	uint64_t v = 0;
	bool neg = false, overflow = false;

	*out = 0;
	while (i < len && isspace((unsigned char)p[i]))
		i++;
	if (i < len && (p[i] == '+' || p[i] == '-'))
		neg = p[i++] == '-';
	for (; i < len && p[i] >= '0' && p[i] <= '9'; i++, digits++) {
		unsigned d = (unsigned)(p[i] - '0');

		if (v > (UINT64_MAX - d) / 10)
			overflow = true;
		v = v * 10 + d;
	}
	if (!digits || overflow)
		return false;
	if (i < len && !isspace((unsigned char)p[i]))
		return false;
	if (neg)
		v = -v;
	/* strtoull takes "-1" as 2^64-1; memcached refuses a '-' only
	 * when the result looks negative as a signed number. */
	if ((int64_t)v < 0 && neg)
		return false;
	*out = v;
	return true;
}

/* Whether an item is gone by expiry or flush_all. */
static inline bool item_dead(const struct kv_store *s,
			     const struct kv_item *it, int64_t now,
			     bool *flushed)
{
	int64_t ol = __atomic_load_n(&s->oldest_live, __ATOMIC_RELAXED);

	*flushed = false;
	if (ol != 0 && ol <= now && it->time <= ol) {
		*flushed = true;
		return true;
	}
	return it->exptime != 0 && it->exptime <= now;
}

static void lru_remove(struct kv_stripe *st, struct kv_item *it)
{
	if (it->lru_prev)
		it->lru_prev->lru_next = it->lru_next;
	else
		st->lru_head = it->lru_next;
	if (it->lru_next)
		it->lru_next->lru_prev = it->lru_prev;
	else
		st->lru_tail = it->lru_prev;
	it->lru_prev = it->lru_next = NULL;
}

static void lru_push(struct kv_stripe *st, struct kv_item *it)
{
	it->lru_prev = NULL;
	it->lru_next = st->lru_head;
	if (st->lru_head)
		st->lru_head->lru_prev = it;
	else
		st->lru_tail = it;
	st->lru_head = it;
}

static void lru_bump(struct kv_stripe *st, struct kv_item *it)
{
	if (st->lru_head != it) {
		lru_remove(st, it);
		lru_push(st, it);
	}
}

/* The link that points at the item of this key, or at the chain's end. */
static struct kv_item **find_slot(struct kv_stripe *st, uint64_t hash,
				  const void *key, size_t nkey)
{
	struct kv_item **slot = &st->buckets[hash & st->mask];

	for (; *slot; slot = &(*slot)->h_next) {
		struct kv_item *it = *slot;

		if (it->hash == hash && it->nkey == nkey &&
		    memcmp(it->data, key, nkey) == 0)
			break;
	}
	return slot;
}

/* Unlinks; the caller drops the table's reference after unlocking. */
static void unlink_locked(struct kv_stripe *st, struct kv_item **slot)
{
	struct kv_item *it = *slot;

	*slot = it->h_next;
	it->h_next = NULL;
	lru_remove(st, it);
	it->linked = 0;
	st->c.curr_items--;
	st->c.bytes -= item_total(it);
}

static void grow_locked(struct kv_stripe *st)
{
	size_t n = (st->mask + 1) * 2;
	struct kv_item **b = calloc(n, sizeof(*b));

	if (!b)
		return; /* longer chains, still correct */
	for (size_t i = 0; i <= st->mask; i++) {
		struct kv_item *it = st->buckets[i], *next;

		for (; it; it = next) {
			next = it->h_next;
			it->h_next = b[it->hash & (n - 1)];
			b[it->hash & (n - 1)] = it;
		}
	}
	free(st->buckets);
	st->buckets = b;
	st->mask = n - 1;
}

/* Links at the chain head; takes the table's reference. */
static void link_locked(struct kv_store *s, struct kv_stripe *st,
			struct kv_item *it, int64_t now)
{
	struct kv_item **head = &st->buckets[it->hash & st->mask];

	__atomic_add_fetch(&it->refcount, 1, __ATOMIC_RELAXED);
	it->h_next = *head;
	*head = it;
	lru_push(st, it);
	it->linked = 1;
	it->time = now;
	it->cas = __atomic_add_fetch(&s->next_cas, 1, __ATOMIC_RELAXED);
	st->c.curr_items++;
	st->c.total_items++;
	st->c.bytes += item_total(it);
	if (st->c.curr_items > (st->mask + 1) + (st->mask + 1) / 2)
		grow_locked(st);
}

/* Finds a live item; unlinks a dead one into *dead (release it after
 * unlocking) and says why. */
static struct kv_item **find_live(struct kv_store *s, struct kv_stripe *st,
				  uint64_t hash, const void *key, size_t nkey,
				  int64_t now, struct kv_item **dead,
				  bool *flushed)
{
	struct kv_item **slot = find_slot(st, hash, key, nkey);

	*flushed = false;
	if (*slot && item_dead(s, *slot, now, flushed)) {
		*dead = *slot;
		unlink_locked(st, slot);
		slot = find_slot(st, hash, key, nkey);
	}
	return slot;
}

void kv_item_release(struct kv_store *s, struct kv_item *it)
{
	if (!it)
		return;
	/* acq_rel: the last holder must see every write of the others
	 * before it frees; pairs with this same decrement in them. */
	if (__atomic_sub_fetch(&it->refcount, 1, __ATOMIC_ACQ_REL) == 0) {
		assert(!it->linked);
		__atomic_sub_fetch(&s->mem_used, item_total(it),
				   __ATOMIC_RELAXED);
		free(it);
	}
}

/* Evicts one item of stripe i: the least recently used one nobody reads
 * (of the last five), else the tail. Returns whether one went. */
static bool evict_one(struct kv_store *s, unsigned i, int64_t now)
{
	struct kv_stripe *st = &s->stripe[i];
	struct kv_item *it, *victim = NULL;
	bool flushed;
	int tries = 5;

	pthread_mutex_lock(&st->lock);
	for (it = st->lru_tail; it && tries--; it = it->lru_prev) {
		if (__atomic_load_n(&it->refcount, __ATOMIC_RELAXED) == 1) {
			victim = it;
			break;
		}
	}
	if (!victim)
		victim = st->lru_tail;
	if (victim) {
		if (item_dead(s, victim, now, &flushed))
			st->c.reclaimed++;
		else
			st->c.evictions++;
		unlink_locked(st, find_slot(st, victim->hash, victim->data,
					    victim->nkey));
	}
	pthread_mutex_unlock(&st->lock);
	kv_item_release(s, victim);
	return victim != NULL;
}

/* Reserves bytes of the budget, evicting from the key's own stripe first
 * and then from the others, never holding two locks. */
static bool mem_reserve(struct kv_store *s, size_t size, unsigned start)
{
	uint64_t used = __atomic_load_n(&s->mem_used, __ATOMIC_RELAXED);
	unsigned i = start, idle = 0;
	int64_t now = kv_store_now(s);

	if (size > s->mem_limit)
		return false;
	for (;;) {
		if (used + size <= s->mem_limit) {
			if (__atomic_compare_exchange_n(&s->mem_used, &used,
							used + size, true,
							__ATOMIC_RELAXED,
							__ATOMIC_RELAXED))
				return true;
			continue;
		}
		if (evict_one(s, i, now)) {
			idle = 0;
		} else {
			i = (i + 1) & (s->stripes - 1);
			if (++idle > s->stripes)
				return false;
		}
		used = __atomic_load_n(&s->mem_used, __ATOMIC_RELAXED);
	}
}

struct kv_item *kv_item_alloc(struct kv_store *s, const void *key,
			      size_t nkey, uint32_t flags, int64_t exptime,
			      size_t nbytes)
{
	struct kv_item *it;
	uint64_t hash;
	size_t total;

	if (nkey == 0 || nkey > KV_KEY_MAX) {
		errno = EINVAL;
		return NULL;
	}
	total = sizeof(*it) + nkey + 2;
	if (nbytes > s->item_size_max || total + nbytes > s->item_size_max ||
	    nbytes > UINT32_MAX) {
		__atomic_add_fetch(&s->store_too_large, 1, __ATOMIC_RELAXED);
		errno = E2BIG;
		return NULL;
	}
	total += nbytes;
	hash = key_hash(key, nkey);
	if (!mem_reserve(s, total, stripe_of(s, hash))) {
		__atomic_add_fetch(&s->store_no_memory, 1, __ATOMIC_RELAXED);
		errno = ENOMEM;
		return NULL;
	}
	it = malloc(total);
	if (!it) {
		__atomic_sub_fetch(&s->mem_used, total, __ATOMIC_RELAXED);
		__atomic_add_fetch(&s->store_no_memory, 1, __ATOMIC_RELAXED);
		errno = ENOMEM;
		return NULL;
	}
	memset(it, 0, sizeof(*it));
	it->hash = hash;
	it->exptime = exptime;
	it->refcount = 1;
	it->flags = flags;
	it->nbytes = (uint32_t)nbytes;
	it->nkey = (uint8_t)nkey;
	memcpy(it->data, key, nkey);
	memcpy(it->data + nkey + nbytes, "\r\n", 2);
	return it;
}

/* APPEND/PREPEND: a new item holding both values, swapped in only if the
 * old one is still the linked one (else retried). */
static enum kv_status link_concat(struct kv_store *s, struct kv_item *it,
				  enum kv_op op, uint64_t cas_in,
				  uint64_t *cas_out)
{
	struct kv_stripe *st = &s->stripe[stripe_of(s, it->hash)];
	enum kv_status ret = KV_NOT_STORED;

	for (;;) {
		struct kv_item **slot, *old, *dead = NULL, *nit;
		bool flushed;
		int64_t now = kv_store_now(s);

		pthread_mutex_lock(&st->lock);
		st->c.cmd_set++;
		slot = find_live(s, st, it->hash, it->data, it->nkey, now,
				 &dead, &flushed);
		old = *slot;
		if (!old || (cas_in && cas_in != old->cas)) {
			pthread_mutex_unlock(&st->lock);
			kv_item_release(s, dead);
			return old ? KV_EXISTS : KV_NOT_STORED;
		}
		/* A touch may change exptime once the lock is dropped. */
		uint32_t flags = old->flags;
		int64_t exptime = old->exptime;

		__atomic_add_fetch(&old->refcount, 1, __ATOMIC_RELAXED);
		pthread_mutex_unlock(&st->lock);
		kv_item_release(s, dead);

		nit = kv_item_alloc(s, it->data, it->nkey, flags, exptime,
				    (size_t)old->nbytes + it->nbytes);
		if (!nit) {
			kv_item_release(s, old);
			return KV_NOT_STORED;
		}
		if (op == KV_APPEND) {
			memcpy(kv_item_value(nit), kv_item_value(old),
			       old->nbytes);
			memcpy(kv_item_value(nit) + old->nbytes,
			       kv_item_value(it), it->nbytes);
		} else {
			memcpy(kv_item_value(nit), kv_item_value(it),
			       it->nbytes);
			memcpy(kv_item_value(nit) + it->nbytes,
			       kv_item_value(old), old->nbytes);
		}
		pthread_mutex_lock(&st->lock);
		slot = find_slot(st, it->hash, it->data, it->nkey);
		if (*slot == old) {
			unlink_locked(st, slot);
			link_locked(s, st, nit, kv_store_now(s));
			if (cas_out)
				*cas_out = nit->cas;
			ret = KV_STORED;
		} else {
			st->c.cmd_set--; /* counted again on the retry */
		}
		pthread_mutex_unlock(&st->lock);
		if (ret == KV_STORED)
			kv_item_release(s, old); /* the table's */
		kv_item_release(s, old);
		kv_item_release(s, nit);
		if (ret == KV_STORED)
			return ret;
	}
}

enum kv_status kv_store_link(struct kv_store *s, struct kv_item *it,
			     enum kv_op op, uint64_t cas_in,
			     uint64_t *cas_out)
{
	struct kv_stripe *st = &s->stripe[stripe_of(s, it->hash)];
	struct kv_item **slot, *old, *dead = NULL;
	enum kv_status ret = KV_NOT_STORED;
	int64_t now = kv_store_now(s);
	bool flushed;

	assert(!it->linked);
	if (op == KV_APPEND || op == KV_PREPEND)
		return link_concat(s, it, op, cas_in, cas_out);

	pthread_mutex_lock(&st->lock);
	st->c.cmd_set++;
	slot = find_live(s, st, it->hash, it->data, it->nkey, now, &dead,
			 &flushed);
	old = *slot;
	switch (op) {
	case KV_ADD:
		if (old) {
			lru_bump(st, old);
			break;
		}
		ret = KV_STORED;
		break;
	case KV_REPLACE:
		ret = old ? KV_STORED : KV_NOT_STORED;
		break;
	case KV_CAS:
		if (!old) {
			st->c.cas_misses++;
			ret = KV_NOT_FOUND;
		} else if (old->cas == cas_in) {
			st->c.cas_hits++;
			ret = KV_STORED;
		} else {
			st->c.cas_badval++;
			ret = KV_EXISTS;
		}
		break;
	default:
		ret = KV_STORED;
		break;
	}
	if (ret == KV_STORED) {
		if (old)
			unlink_locked(st, slot);
		link_locked(s, st, it, now);
		if (cas_out)
			*cas_out = it->cas;
	} else {
		old = NULL;
	}
	pthread_mutex_unlock(&st->lock);
	kv_item_release(s, old);
	kv_item_release(s, dead);
	return ret;
}

struct kv_item *kv_store_get(struct kv_store *s, const void *key,
			     size_t nkey, bool touch, int64_t exptime)
{
	uint64_t hash = key_hash(key, nkey);
	struct kv_stripe *st = &s->stripe[stripe_of(s, hash)];
	struct kv_item *it, *dead = NULL;
	int64_t now = kv_store_now(s);
	bool flushed;

	pthread_mutex_lock(&st->lock);
	it = *find_live(s, st, hash, key, nkey, now, &dead, &flushed);
	if (touch) {
		st->c.cmd_touch++;
	} else {
		st->c.cmd_get++;
		if (dead && flushed)
			st->c.get_flushed++;
		else if (dead)
			st->c.get_expired++;
	}
	if (it) {
		if (touch) {
			it->exptime = exptime;
			st->c.touch_hits++;
		} else {
			st->c.get_hits++;
		}
		lru_bump(st, it);
		it->time = now;
		__atomic_add_fetch(&it->refcount, 1, __ATOMIC_RELAXED);
	} else if (touch) {
		st->c.touch_misses++;
	} else {
		st->c.get_misses++;
	}
	pthread_mutex_unlock(&st->lock);
	kv_item_release(s, dead);
	return it;
}

enum kv_status kv_store_delete(struct kv_store *s, const void *key,
			       size_t nkey, uint64_t cas, bool count)
{
	uint64_t hash = key_hash(key, nkey);
	struct kv_stripe *st = &s->stripe[stripe_of(s, hash)];
	struct kv_item **slot, *it, *dead = NULL;
	enum kv_status ret;
	bool flushed;

	pthread_mutex_lock(&st->lock);
	slot = find_live(s, st, hash, key, nkey, kv_store_now(s), &dead,
			 &flushed);
	it = *slot;
	if (!it) {
		st->c.delete_misses += count;
		ret = KV_NOT_FOUND;
	} else if (cas && cas != it->cas) {
		ret = KV_EXISTS;
		it = NULL;
	} else {
		st->c.delete_hits += count;
		unlink_locked(st, slot);
		ret = KV_DELETED;
	}
	pthread_mutex_unlock(&st->lock);
	kv_item_release(s, it);
	kv_item_release(s, dead);
	return ret;
}

enum kv_status kv_store_arith(struct kv_store *s, const void *key,
			      size_t nkey, bool incr, uint64_t delta,
			      uint64_t *value, uint64_t *cas)
{
	uint64_t hash = key_hash(key, nkey);
	struct kv_stripe *st = &s->stripe[stripe_of(s, hash)];

	if (nkey == 0 || nkey > KV_KEY_MAX)
		return KV_NOT_FOUND;
	for (;;) {
		struct kv_item **slot, *it, *dead = NULL, *nit;
		char buf[24];
		uint64_t v, seen_cas;
		bool flushed;
		size_t res;
		int64_t now = kv_store_now(s);

		pthread_mutex_lock(&st->lock);
		slot = find_live(s, st, hash, key, nkey, now, &dead,
				 &flushed);
		it = *slot;
		if (!it) {
			if (incr)
				st->c.incr_misses++;
			else
				st->c.decr_misses++;
			pthread_mutex_unlock(&st->lock);
			kv_item_release(s, dead);
			return KV_NOT_FOUND;
		}
		if (*cas && *cas != it->cas) {
			pthread_mutex_unlock(&st->lock);
			kv_item_release(s, dead);
			return KV_EXISTS;
		}
		if (it->nbytes == 0 ||
		    !kv_parse_u64(kv_item_value(it), it->nbytes, &v)) {
			pthread_mutex_unlock(&st->lock);
			kv_item_release(s, dead);
			return KV_NON_NUMERIC;
		}
		if (incr) {
			v += delta; /* wraps at 2^64, as memcached */
			st->c.incr_hits++;
		} else {
			v = delta > v ? 0 : v - delta;
			st->c.decr_hits++;
		}
		res = (size_t)snprintf(buf, sizeof(buf), "%" PRIu64, v);
		*value = v;
		if (res <= it->nbytes &&
		    __atomic_load_n(&it->refcount, __ATOMIC_RELAXED) == 1) {
			/* Nobody reads it: rewrite in place. */
			memcpy(kv_item_value(it), buf, res);
			memset(kv_item_value(it) + res, ' ', it->nbytes - res);
			it->cas = __atomic_add_fetch(&s->next_cas, 1,
						     __ATOMIC_RELAXED);
			*cas = it->cas;
			lru_bump(st, it);
			it->time = now;
			pthread_mutex_unlock(&st->lock);
			kv_item_release(s, dead);
			return KV_OK;
		}
		seen_cas = it->cas;
		uint32_t flags = it->flags;
		int64_t exptime = it->exptime;

		__atomic_add_fetch(&it->refcount, 1, __ATOMIC_RELAXED);
		/* Undone if the swap below loses a race and retries. */
		if (incr)
			st->c.incr_hits--;
		else
			st->c.decr_hits--;
		pthread_mutex_unlock(&st->lock);
		kv_item_release(s, dead);

		nit = kv_item_alloc(s, key, nkey, flags, exptime, res);
		if (!nit) {
			kv_item_release(s, it);
			return KV_NO_MEMORY;
		}
		memcpy(kv_item_value(nit), buf, res);
		pthread_mutex_lock(&st->lock);
		slot = find_slot(st, hash, key, nkey);
		if (*slot == it && it->cas == seen_cas) {
			unlink_locked(st, slot);
			link_locked(s, st, nit, now);
			*cas = nit->cas;
			if (incr)
				st->c.incr_hits++;
			else
				st->c.decr_hits++;
			pthread_mutex_unlock(&st->lock);
			kv_item_release(s, it); /* the table's */
			kv_item_release(s, it);
			kv_item_release(s, nit);
			return KV_OK;
		}
		pthread_mutex_unlock(&st->lock);
		kv_item_release(s, it);
		kv_item_release(s, nit);
	}
}

void kv_store_flush(struct kv_store *s, int64_t delay)
{
	int64_t now = kv_store_now(s);
	int64_t ol = (delay > 0 ? kv_store_realtime(s, delay) : now) - 1;

	__atomic_add_fetch(&s->cmd_flush, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&s->oldest_live, ol, __ATOMIC_RELAXED);
	if (ol > now)
		return;
	/* Now: drop everything linked (later stores are newer than ol). */
	for (unsigned i = 0; i < s->stripes; i++) {
		struct kv_stripe *st = &s->stripe[i];
		struct kv_item *list = NULL, *it;

		pthread_mutex_lock(&st->lock);
		while ((it = st->lru_head)) {
			unlink_locked(st, find_slot(st, it->hash, it->data,
						    it->nkey));
			it->h_next = list;
			list = it;
		}
		pthread_mutex_unlock(&st->lock);
		while ((it = list)) {
			list = it->h_next;
			it->h_next = NULL;
			kv_item_release(s, it);
		}
	}
}

void kv_store_stats(struct kv_store *s, struct kv_stats *out)
{
	memset(out, 0, sizeof(*out));
	for (unsigned i = 0; i < s->stripes; i++) {
		struct kv_stripe *st = &s->stripe[i];
		struct kv_stripe_counters c;

		pthread_mutex_lock(&st->lock);
		c = st->c;
		pthread_mutex_unlock(&st->lock);
		out->curr_items += c.curr_items;
		out->total_items += c.total_items;
		out->bytes += c.bytes;
		out->evictions += c.evictions;
		out->reclaimed += c.reclaimed;
		out->expired_unfetched += c.expired_unfetched;
		out->cmd_get += c.cmd_get;
		out->cmd_set += c.cmd_set;
		out->cmd_touch += c.cmd_touch;
		out->get_hits += c.get_hits;
		out->get_misses += c.get_misses;
		out->get_expired += c.get_expired;
		out->get_flushed += c.get_flushed;
		out->delete_hits += c.delete_hits;
		out->delete_misses += c.delete_misses;
		out->incr_hits += c.incr_hits;
		out->incr_misses += c.incr_misses;
		out->decr_hits += c.decr_hits;
		out->decr_misses += c.decr_misses;
		out->cas_hits += c.cas_hits;
		out->cas_misses += c.cas_misses;
		out->cas_badval += c.cas_badval;
		out->touch_hits += c.touch_hits;
		out->touch_misses += c.touch_misses;
	}
	out->mem_used = __atomic_load_n(&s->mem_used, __ATOMIC_RELAXED);
	out->cmd_flush = __atomic_load_n(&s->cmd_flush, __ATOMIC_RELAXED);
	out->store_too_large =
		__atomic_load_n(&s->store_too_large, __ATOMIC_RELAXED);
	out->store_no_memory =
		__atomic_load_n(&s->store_no_memory, __ATOMIC_RELAXED);
	out->limit_maxbytes = s->mem_limit;
	out->item_size_max = s->item_size_max;
}

__attribute__((cold)) struct kv_store *
kv_store_create(const struct kv_store_config *cfg)
{
	struct kv_store_config d = { 0 };
	struct kv_store *s;

	if (cfg)
		d = *cfg;
	if (!d.mem_limit)
		d.mem_limit = KV_DEFAULT_MEM_LIMIT;
	if (!d.item_size_max)
		d.item_size_max = KV_DEFAULT_ITEM_SIZE_MAX;
	if (!d.stripes)
		d.stripes = KV_DEFAULT_STRIPES;
	if ((d.stripes & (d.stripes - 1)) || d.stripes > 65536 ||
	    d.item_size_max < sizeof(struct kv_item) + KV_KEY_MAX + 2 ||
	    d.item_size_max > (1u << 30)) {
		errno = EINVAL;
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		goto fail;
	s->mem_limit = d.mem_limit;
	s->item_size_max = d.item_size_max;
	s->stripes = d.stripes;
	s->clock = d.clock ? d.clock : clock_default;
	s->clock_arg = d.clock_arg;
	s->stripe = aligned_alloc(64, sizeof(*s->stripe) * d.stripes);
	if (!s->stripe)
		goto fail;
	memset(s->stripe, 0, sizeof(*s->stripe) * d.stripes);
	for (unsigned i = 0; i < d.stripes; i++) {
		struct kv_stripe *st = &s->stripe[i];

		pthread_mutex_init(&st->lock, NULL);
		st->buckets = calloc(KV_INITIAL_BUCKETS, sizeof(*st->buckets));
		if (!st->buckets) {
			s->stripes = i + 1;
			goto fail;
		}
		st->mask = KV_INITIAL_BUCKETS - 1;
	}
	return s;
fail:
	kv_store_destroy(s);
	errno = ENOMEM;
	return NULL;
}

__attribute__((cold)) void kv_store_destroy(struct kv_store *s)
{
	if (!s)
		return;
	for (unsigned i = 0; s->stripe && i < s->stripes; i++) {
		struct kv_stripe *st = &s->stripe[i];
		struct kv_item *it;

		while ((it = st->lru_head)) {
			unlink_locked(st, find_slot(st, it->hash, it->data,
						    it->nkey));
			kv_item_release(s, it);
		}
		free(st->buckets);
		pthread_mutex_destroy(&st->lock);
	}
	free(s->stripe);
	free(s);
}
