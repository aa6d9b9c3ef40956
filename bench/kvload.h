/* SPDX-License-Identifier: BSD-3-Clause */
/* A one-core memcached text-protocol load generator over any byte-stream
 * transport (Linux TCP sockets, or an ebbrt TCP stack): key space, key
 * choice, get/set mix, preload, request building and an in-order reply
 * parser per connection, driving loadgen.h's closed and open loops. */
#ifndef EBBRT_BENCH_KVLOAD_H
#define EBBRT_BENCH_KVLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loadgen.h"

/*
 * The load.
 *
 * Keys: `keys` names of `key_size` bytes, "k" then the key's index in
 * decimal, zero-padded (k0000...0042), the same in every run. Values:
 * `value_size` bytes of a fixed pattern, flags 0, no expiry.
 *
 * Each request is a get (probability `get_ratio`) or a set of one key,
 * chosen uniformly or by a Zipf law of exponent `zipf_s` over the key
 * ranks (rank 0 the most popular). Ranks map to keys through a fixed
 * multiplicative permutation, so the popular keys are spread over the key
 * space rather than being its first names. Choices come from a seeded
 * generator: the same seed gives the same sequence of requests.
 *
 * Connections: `conns`, each a loadgen flow. memcached answers each
 * connection's requests in order, so the generator runs loadgen with
 * LOADGEN_MATCH_ORDER and parses each connection's byte stream for whole
 * replies: "VALUE <key> <flags> <bytes>\r\n<data>\r\nEND\r\n" (a hit),
 * "END\r\n" (a miss), "STORED\r\n"; ERROR, CLIENT_ERROR, SERVER_ERROR,
 * NOT_STORED, EXISTS and NOT_FOUND are answers too, counted as errors,
 * and so is a reply of the wrong kind (STORED to a get) or a value of the
 * wrong size. A line that is none of these counts as a protocol error
 * and is taken as the reply to the oldest request, to stay in step.
 *
 * Jobs: a preload (set every key once, `preload_window` sets in flight
 * per connection, until all are STORED), or a test (loadgen's closed or
 * open loop with the mix above). After a test the generator waits until
 * every request it sent, measured or not, has its reply, so the next job
 * starts on quiet connections.
 */

enum kvload_dist {
	KVLOAD_UNIFORM,
	KVLOAD_ZIPF,
};

#define KVLOAD_MAX_KEY 250u		/* memcached's limit */
#define KVLOAD_MAX_VALUE 65536u
#define KVLOAD_MAX_CONNS 4096u

struct kvload_config {
	uint32_t conns;		/* connections, 1..KVLOAD_MAX_CONNS (64) */
	uint32_t keys;		/* key space (100000) */
	uint32_t key_size;	/* bytes, enough for "k" and the largest
				 * index, ..KVLOAD_MAX_KEY (32) */
	uint32_t value_size;	/* bytes, 1..KVLOAD_MAX_VALUE (100) */
	double get_ratio;	/* 0..1 (0.9) */
	enum kvload_dist dist;	/* (KVLOAD_UNIFORM) */
	double zipf_s;		/* Zipf exponent, > 0 (0.99) */
	uint64_t seed;		/* key and operation choice (fixed) */
	uint32_t preload_window; /* sets in flight per connection (16) */
	uint64_t preload_timeout_ns; /* the whole preload (60 s) */
	uint64_t drain_timeout_ns;   /* after a test (10 s) */
};

struct kvload;

/*
 * What carries the bytes: one ordered byte stream per connection, to the
 * server and back. All functions are called from the generator's core
 * only, never concurrently.
 */
struct kvload_transport {
	/* Queue @len bytes (one whole request) on connection @conn for the
	 * next flush, or send them now. @buf belongs to the caller. 0, or
	 * -errno: -EAGAIN when there is no room for all of them (then
	 * nothing was queued; the request counts as lost), anything else
	 * ends the job. */
	int (*send)(void *ctx, uint32_t conn, const void *buf, size_t len);
	/* Push out what send() queued; called once per step. May be NULL. */
	void (*flush)(void *ctx);
	/* Hand the bytes that have arrived to kvload_input(@kl, ...); never
	 * blocks. How many chunks it handed over, or -errno on a fatal
	 * error (the job stops). May be NULL for a transport that calls
	 * kvload_input() from its own receive path (kvload_step() is then
	 * called from its loop). */
	int (*poll)(void *ctx, struct kvload *kl);
	/* The clock, in ns, monotonic. */
	uint64_t (*now_ns)(void *ctx);
};

/* Counters of the current (or last) job. */
struct kvload_result {
	struct loadgen_result lg;	/* a test's latencies and rates */
	uint64_t gets, sets;		/* requests sent (all phases) */
	uint64_t hits, misses;		/* replies to gets */
	uint64_t stored;		/* STORED replies */
	uint64_t errors;		/* error replies, wrong kind or size */
	uint64_t proto_errors;		/* lines that are no reply at all */
	uint64_t send_full;		/* sends refused with -EAGAIN */
	uint64_t elapsed_ns;		/* from start to the job's end */
	int status;			/* 0, or the -errno that ended it */
};

/* Fills @cfg with the defaults above. */
void kvload_config_default(struct kvload_config *cfg);

/*
 * A generator for @cfg over transport @t with context @ctx (both
 * borrowed: they must outlive it). Builds the Zipf table (8 bytes a key)
 * for KVLOAD_ZIPF. NULL with errno EINVAL (bad configuration, or a key
 * size too short for the key count) or ENOMEM.
 */
struct kvload *kvload_create(const struct kvload_config *cfg,
			     const struct kvload_transport *t, void *ctx);
void kvload_destroy(struct kvload *kl);

/*
 * Start a job; any job before must be done. 0, or -EBUSY (one is
 * running), -EINVAL (@lcfg is bad: kvload sets flows and match itself),
 * -ENOMEM.
 */
int kvload_start_preload(struct kvload *kl);
int kvload_start_test(struct kvload *kl, const struct loadgen_config *lcfg);

/*
 * Move the job on: send what is due, check timeouts, flush. True once
 * the job is over (kvload_result() then has its figures and status).
 * For a transport that owns the loop; kvload_run() does it all.
 */
bool kvload_step(struct kvload *kl);

/* The bytes @data[@len] (borrowed for the call) arrived on @conn; whole
 * replies among them are matched, and a closed loop sends the next
 * request at once. Bytes outside a job count as protocol errors. */
void kvload_input(struct kvload *kl, uint32_t conn, const void *data,
		  size_t len);

/*
 * Run the job started last on the calling thread to its end: poll, then
 * step (busy: it never blocks). The job's status: 0, -ETIMEDOUT (the
 * preload or the drain after a test took too long), or a transport's
 * -errno.
 */
int kvload_run(struct kvload *kl);

/* The figures of the current or last job. */
void kvload_result(const struct kvload *kl, struct kvload_result *out);

#endif /* EBBRT_BENCH_KVLOAD_H */
