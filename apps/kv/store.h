/* SPDX-License-Identifier: BSD-3-Clause */
/* ebb-kv item store: a memcached-semantics hash table (keys, values,
 * flags, expiry, cas ids, a memory limit with LRU eviction), shared by the
 * cores of one node through striped locks. Plain C and malloc: no DPDK. */
#ifndef EBB_KV_STORE_H
#define EBB_KV_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* memcached's KEY_MAX_LENGTH. */
#define KV_KEY_MAX 250
/* Exptimes up to this many seconds are relative, larger ones unix times. */
#define KV_REALTIME_MAXDELTA (60 * 60 * 24 * 30)
#define KV_DEFAULT_MEM_LIMIT (64u << 20)
#define KV_DEFAULT_ITEM_SIZE_MAX (1u << 20)
#define KV_DEFAULT_STRIPES 64

/* A clock in unix seconds; tests inject one they can move. */
typedef int64_t (*kv_clock_fn)(void *arg);

struct kv_store_config {
	size_t mem_limit;     /* bytes of items in total; 0: 64 MiB */
	size_t item_size_max; /* bytes of one item, header and key included
				* (memcached's -I); 0: 1 MiB */
	unsigned stripes;     /* lock stripes, a power of 2; 0: 64. One
				* stripe makes the LRU exactly global. */
	kv_clock_fn clock;    /* NULL: time(NULL) */
	void *clock_arg;
};

/* One key-value pair. Readers hold a reference while they use the value
 * (e.g. while a reply that points at it is in flight); the table holds one
 * while the item is linked. Only the fields below are for callers. */
struct kv_item {
	struct kv_item *h_next;             /* hash chain, under stripe lock */
	struct kv_item *lru_prev, *lru_next; /* head is most recent */
	uint64_t hash;
	uint64_t cas;
	int64_t exptime; /* unix seconds; 0 never */
	int64_t time;    /* last store or access, unix seconds */
	uint32_t refcount; /* atomic: acq_rel on release, pairs with itself */
	uint32_t flags;
	uint32_t nbytes;   /* value bytes, without the "\r\n" kept after it */
	uint8_t nkey;
	uint8_t linked;    /* under the stripe lock */
	char data[];       /* key, value, "\r\n" */
};

static inline const char *kv_item_key(const struct kv_item *it)
{
	return it->data;
}

/* The value; "\r\n" follows it, so text replies send nbytes + 2. */
static inline char *kv_item_value(struct kv_item *it)
{
	return it->data + it->nkey;
}

enum kv_status {
	KV_STORED,
	KV_NOT_STORED,
	KV_EXISTS,
	KV_NOT_FOUND,
	KV_DELETED,
	KV_OK,          /* incr/decr done */
	KV_NON_NUMERIC, /* incr/decr of a value that is not a number */
	KV_TOO_LARGE,
	KV_NO_MEMORY,
};

enum kv_op { KV_SET, KV_ADD, KV_REPLACE, KV_APPEND, KV_PREPEND, KV_CAS };

/* Totals over the stripes; a snapshot, not atomic across counters. */
struct kv_stats {
	uint64_t curr_items, total_items, bytes, mem_used;
	uint64_t evictions, reclaimed, expired_unfetched;
	uint64_t cmd_get, cmd_set, cmd_touch, cmd_flush;
	uint64_t get_hits, get_misses, get_expired, get_flushed;
	uint64_t delete_hits, delete_misses;
	uint64_t incr_hits, incr_misses, decr_hits, decr_misses;
	uint64_t cas_hits, cas_misses, cas_badval;
	uint64_t touch_hits, touch_misses;
	uint64_t store_too_large, store_no_memory;
	uint64_t limit_maxbytes, item_size_max;
};

struct kv_store;

/* Creates a store. NULL config: defaults. Returns NULL and sets errno:
 * EINVAL (stripes not a power of 2, limits too small), ENOMEM. */
struct kv_store *kv_store_create(const struct kv_store_config *cfg);
/* Frees every item; NULL is fine. No call may be in flight, and no
 * reference may be held. */
void kv_store_destroy(struct kv_store *s);

/* The injected clock. */
int64_t kv_store_now(const struct kv_store *s);
/* memcached's realtime(): a protocol exptime to an absolute unix time (0
 * never; negative: already expired; <= 30 days: relative). */
int64_t kv_store_realtime(const struct kv_store *s, int64_t exptime);

/* Allocates an unlinked item with room for nbytes of value (plus "\r\n"),
 * evicting least recently used items if the memory limit is reached. The
 * caller owns one reference. exptime is absolute (kv_store_realtime).
 * Returns NULL and sets errno: E2BIG (over the item size limit; counted as
 * store_too_large), ENOMEM (nothing left to evict; store_no_memory),
 * EINVAL (nkey 0 or > KV_KEY_MAX). */
struct kv_item *kv_item_alloc(struct kv_store *s, const void *key,
			      size_t nkey, uint32_t flags, int64_t exptime,
			      size_t nbytes);
/* Drops a reference; the last one frees the item. NULL is fine. */
void kv_item_release(struct kv_store *s, struct kv_item *it);

/* Links an allocated item under its key, memcached's store_item(): SET,
 * ADD (NOT_STORED if present), REPLACE (NOT_STORED if absent), APPEND and
 * PREPEND (NOT_STORED if absent; the old flags and exptime stay), CAS
 * (NOT_FOUND if absent, EXISTS if the cas differs). The caller keeps its
 * reference; on STORED it->cas is the new cas id (for APPEND/PREPEND the
 * stored item is a new one and *cas_out gets its id). cas_out may be NULL.
 * Returns KV_STORED, KV_NOT_STORED, KV_EXISTS, KV_NOT_FOUND, KV_NO_MEMORY
 * or KV_TOO_LARGE (the last two only for APPEND/PREPEND). */
enum kv_status kv_store_link(struct kv_store *s, struct kv_item *it,
			     enum kv_op op, uint64_t cas_in,
			     uint64_t *cas_out);

/* Looks a key up and marks it most recently used. With touch, also sets
 * its exptime (absolute) and counts a touch instead of a get. Returns a
 * referenced item (release it) or NULL. */
struct kv_item *kv_store_get(struct kv_store *s, const void *key,
			     size_t nkey, bool touch, int64_t exptime);

/* Unlinks a key if cas is 0 or equal to its cas. Returns KV_DELETED,
 * KV_NOT_FOUND or KV_EXISTS. count: whether to count delete hits/misses
 * (memcached drops the old value of a failed SET silently). */
enum kv_status kv_store_delete(struct kv_store *s, const void *key,
			       size_t nkey, uint64_t cas, bool count);

/* incr/decr as memcached: the value must be a decimal number; incr wraps
 * at 2^64, decr stops at 0. *cas: in, 0 or the cas the item must have
 * (else KV_EXISTS); out, the new cas id. *value: the result. A result
 * shorter than the old value is written in place, padded with spaces, as
 * memcached does. Returns KV_OK, KV_NOT_FOUND, KV_NON_NUMERIC, KV_EXISTS or
 * KV_NO_MEMORY. */
enum kv_status kv_store_arith(struct kv_store *s, const void *key,
			      size_t nkey, bool incr, uint64_t delta,
			      uint64_t *value, uint64_t *cas);

/* flush_all: delay 0 drops every item now; a delay schedules it (items
 * not stored since become invalid delay - 1 seconds on, as memcached). */
void kv_store_flush(struct kv_store *s, int64_t delay);

/* Sums the counters of every stripe (takes each lock in turn). */
void kv_store_stats(struct kv_store *s, struct kv_stats *out);

/* memcached's safe_strtoull on a value: leading blanks, digits, then a
 * blank or the end; negative numbers refused. For tests and proto.c. */
bool kv_parse_u64(const char *p, size_t len, uint64_t *out);

#endif /* EBB_KV_STORE_H */
