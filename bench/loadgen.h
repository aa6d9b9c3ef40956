/* SPDX-License-Identifier: BSD-3-Clause */
/* A one-core request/response load generator (closed and open loop) with a
 * latency histogram, independent of the transport that carries the
 * requests: Linux sockets, or an ebbrt stack. */
#ifndef EBBRT_BENCH_LOADGEN_H
#define EBBRT_BENCH_LOADGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Requests and replies.
 *
 * Every request starts with a struct loadgen_hdr (little endian, the
 * host's order: client and server run on the same machine), followed by
 * filler up to the payload size. The server echoes the whole payload;
 * the generator matches the reply by its sequence number and takes the
 * latency from its own record of the send time (the copy in the payload
 * is for servers and traces, not trusted).
 *
 * Closed loop: every flow keeps `window` requests in flight; a reply or a
 * timeout on a flow sends the next request on that flow at once. The
 * latency of a request runs from its send.
 *
 * Open loop: requests arrive as a Poisson process of `rate` per second,
 * independent of replies, assigned to the flows in turn. The latency of
 * a request runs from its scheduled arrival, not from the moment the
 * generator got to send it: a generator that falls behind adds its delay
 * to the latency instead of hiding it (no coordinated omission).
 *
 * Phases: warm-up (requests sent, not measured), measurement (requests
 * sent, or scheduled, within `duration_ns` are measured), drain (nothing
 * sent; waits up to `timeout_ns` for the measured requests). A measured
 * request without a reply within `timeout_ns` of its send counts as lost;
 * a reply after that counts as late, not in the histogram.
 *
 * Matching replies to requests: by default (LOADGEN_MATCH_SEQ) the reply
 * echoes the header and the generator reads its sequence number. With
 * LOADGEN_MATCH_ORDER the requests are the transport's own (a memcached
 * command, say) and the server answers each flow's requests in order, as
 * on one TCP connection: the generator hands send() only the header, for
 * the transport to build its request from, keeps a FIFO of the sequence
 * numbers sent on each flow, and the transport reports each complete
 * reply with loadgen_on_reply_next(), which takes the oldest. A request
 * that timed out stays in its flow's FIFO, so the reply that comes for it
 * later is counted late and the ones behind it still match.
 */

#define LOADGEN_MAGIC 0x65627274u	/* "ebrt" */

struct loadgen_hdr {
	uint64_t seq;		/* unique per request of one generator */
	uint64_t sent_ns;	/* the generator's clock at send (or arrival) */
	uint32_t flow;		/* 0 .. flows - 1 */
	uint32_t magic;		/* LOADGEN_MAGIC */
};

#define LOADGEN_HDR_SIZE ((uint32_t)sizeof(struct loadgen_hdr))
#define LOADGEN_MAX_PAYLOAD 1472u	/* one Ethernet frame of UDP */

/* Passed as the flow of a reply when the transport cannot tell it (one
 * socket shared by several flows): the generator reads the header. */
#define LOADGEN_FLOW_ANY UINT32_MAX

struct loadgen;

/*
 * What carries requests. All functions are called from the generator's
 * core only, never concurrently.
 */
struct loadgen_transport {
	/* Send (or queue for the next flush) one request of @len bytes on
	 * @flow. @buf belongs to the caller and may be reused on return.
	 * With LOADGEN_MATCH_ORDER @buf is the struct loadgen_hdr of the
	 * request (@len LOADGEN_HDR_SIZE), and the transport sends a
	 * request of its own making, whole or not at all.
	 * Returns 0, or -errno (-EAGAIN: no room; the generator counts the
	 * request as lost and carries on). */
	int (*send)(void *ctx, uint32_t flow, const void *buf, size_t len);
	/* Push out what send() queued; called once per generator step after
	 * its sends. May be NULL. */
	void (*flush)(void *ctx);
	/* Hand every reply that has arrived to loadgen_on_reply(@lg, ...)
	 * (with LOADGEN_MATCH_ORDER, loadgen_on_reply_next(@lg, ...));
	 * never blocks. Returns how many replies it handed over (0 when
	 * none), or -errno on a fatal transport error (the run stops). May
	 * be NULL for a transport that calls loadgen_on_reply() from its
	 * own receive path (loadgen_step() is then called from its loop). */
	int (*poll)(void *ctx, struct loadgen *lg);
	/* The clock, in ns, monotonic: CLOCK_MONOTONIC, ebb_time_ns()... */
	uint64_t (*now_ns)(void *ctx);
};

enum loadgen_mode {
	LOADGEN_CLOSED,	/* flows x window requests in flight */
	LOADGEN_OPEN,	/* Poisson arrivals at rate */
};

enum loadgen_match {
	LOADGEN_MATCH_SEQ,	/* the reply echoes the header (default) */
	LOADGEN_MATCH_ORDER,	/* replies in request order on each flow */
};

struct loadgen_config {
	enum loadgen_mode mode;
	enum loadgen_match match;
	uint32_t flows;		/* >= 1 (default 1) */
	uint32_t window;	/* closed loop: in flight per flow (default 1) */
	double rate;		/* open loop: mean requests per second, > 0 */
	uint32_t payload;	/* bytes per request, LOADGEN_HDR_SIZE ..
				 * LOADGEN_MAX_PAYLOAD (default 64); not
				 * used with LOADGEN_MATCH_ORDER */
	uint64_t warmup_ns;	/* default 1 s */
	uint64_t duration_ns;	/* measurement, default 5 s */
	uint64_t timeout_ns;	/* a request is lost after, default 100 ms */
	uint64_t seed;		/* open-loop arrivals (default fixed) */
};

/* --- latency histogram ---
 *
 * Log-linear buckets: exact below 64 ns, then 64 linear buckets per power
 * of two up to LOADGEN_HIST_MAX_NS (larger values land in the last
 * bucket; max keeps the exact figure). A bucket spans at most 1/64 (1.6%)
 * of its values; a percentile reads the middle of its bucket, within
 * 0.8%. */
#define LOADGEN_HIST_SUB_BITS 6
#define LOADGEN_HIST_SUB (1u << LOADGEN_HIST_SUB_BITS)
#define LOADGEN_HIST_MAX_NS 10000000000ull	/* 10 s, below 2^34 */
#define LOADGEN_HIST_BUCKETS ((34 - LOADGEN_HIST_SUB_BITS + 1) * LOADGEN_HIST_SUB)

struct loadgen_hist {
	uint64_t n;
	uint64_t min, max;	/* ns; min is UINT64_MAX when empty */
	double sum;		/* ns */
	uint64_t count[LOADGEN_HIST_BUCKETS];
};

void loadgen_hist_reset(struct loadgen_hist *h);
void loadgen_hist_record(struct loadgen_hist *h, uint64_t ns);
/* Adds @from's samples to @to. */
void loadgen_hist_merge(struct loadgen_hist *to, const struct loadgen_hist *from);
/* The value at quantile @q (0..1) in ns, nearest rank; 0 when empty. */
double loadgen_hist_quantile(const struct loadgen_hist *h, double q);
double loadgen_hist_mean(const struct loadgen_hist *h);

/* --- results --- */

struct loadgen_result {
	enum loadgen_mode mode;
	double duration_s;	/* the measurement window */
	double offered_rps;	/* open: the configured rate; closed: the
				 * measured requests sent per second */
	double sent_rps;	/* measured requests actually sent per second */
	double achieved_rps;	/* measured requests answered in time, per s */
	uint64_t sent;		/* measured requests sent */
	uint64_t replied;	/* ... answered within the timeout */
	uint64_t lost;		/* ... not answered within the timeout,
				 * including send failures */
	uint64_t send_errors;	/* sends the transport refused (all phases) */
	uint64_t late;		/* replies after their timeout (all phases) */
	uint64_t bad;		/* replies not ours: short, wrong magic or
				 * flow, unknown sequence; in order: a reply
				 * on a flow with nothing outstanding (all
				 * phases) */
	uint64_t max_lag_ns;	/* open loop: most a request was sent after
				 * its scheduled arrival (generator lag) */
	double p50_ns, p99_ns, p999_ns, mean_ns, min_ns, max_ns;
	struct loadgen_hist hist;	/* the measured latencies */
};

/* --- the generator --- */

/* Fills @cfg with the defaults above (closed loop, 1 flow, window 1). */
void loadgen_config_default(struct loadgen_config *cfg);

/*
 * A generator for @cfg over transport @t with context @ctx (both
 * borrowed: they must outlive the generator). Returns NULL with errno
 * EINVAL (bad configuration) or ENOMEM.
 */
struct loadgen *loadgen_create(const struct loadgen_config *cfg,
			       const struct loadgen_transport *t, void *ctx);
void loadgen_destroy(struct loadgen *lg);

/*
 * Run the whole test on the calling thread: start, then poll and step
 * until done (busy: it never blocks). Returns 0, or the -errno of a
 * failed transport poll. Results in loadgen_result().
 */
int loadgen_run(struct loadgen *lg);

/*
 * The same, step by step, for a transport that owns the loop (an ebbrt
 * core): loadgen_start() once, then loadgen_step() whenever it can (after
 * each receive burst, and on an idle poll), with loadgen_on_reply() for
 * each reply in between. loadgen_step() sends what is due (open-loop
 * arrivals, closed-loop replacements of timed-out requests), counts
 * timeouts, moves through the phases, flushes, and returns true once the
 * test is over.
 */
void loadgen_start(struct loadgen *lg);
bool loadgen_step(struct loadgen *lg);
/*
 * A reply of @len bytes at @buf (borrowed for the call) on @flow, or
 * LOADGEN_FLOW_ANY. In a closed loop it sends the flow's next request
 * (through the transport's send; flushed by the next step). Bad replies
 * are counted and dropped.
 */
void loadgen_on_reply(struct loadgen *lg, uint32_t flow, const void *buf,
		      size_t len);
/*
 * LOADGEN_MATCH_ORDER: the next reply on @flow is complete; it answers
 * the oldest request sent on @flow that has no reply yet. Otherwise as
 * loadgen_on_reply(). A reply on a flow with nothing outstanding, or
 * with LOADGEN_MATCH_SEQ, counts as bad.
 */
void loadgen_on_reply_next(struct loadgen *lg, uint32_t flow);
bool loadgen_done(const struct loadgen *lg);

/* The figures of a finished (or stopped) run. */
void loadgen_result(const struct loadgen *lg, struct loadgen_result *out);

#endif /* EBBRT_BENCH_LOADGEN_H */
