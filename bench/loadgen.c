/* SPDX-License-Identifier: BSD-3-Clause */
/* The load generator of loadgen.h: closed and open loop over any
 * transport, requests tracked in a ring by sequence number. */
#include "loadgen.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/*
 * Every request sent takes the ring slot of its sequence number. Requests
 * leave the ring in send order at its tail: answered ones are skipped,
 * and the oldest unanswered one is the first to time out (closed-loop
 * send times and open-loop arrivals both grow with the sequence). The
 * ring is sized to hold at least two timeouts' worth of requests, so a
 * slot is reused only long after its request timed out; should the ring
 * fill anyway, its oldest request counts as lost.
 */
struct slot {
	uint64_t at_ns;		/* send (closed) or arrival (open) time */
	uint32_t seq_lo;	/* low bits of the sequence, to match */
	uint32_t flow;		/* SLOT_FREE once answered or lost */
};

/*
 * LOADGEN_MATCH_ORDER: the sequence numbers sent on one flow whose reply
 * has not come, oldest first; a power-of-two ring that doubles when full
 * (a flow behind a slow server in an open loop keeps growing it).
 */
struct order_fifo {
	uint64_t *seq;
	uint32_t head;		/* oldest, next to be answered */
	uint32_t tail;		/* where the next send goes */
	uint32_t mask;
};

#define ORDER_FIFO_MIN 16u
#define ORDER_FIFO_MAX (1u << 24)

#define SLOT_FREE UINT32_MAX
#define RING_MIN_CLOSED (1u << 18)
#define RING_MIN_OPEN (1u << 12)
/* Open-loop arrivals sent per step at most, so that a generator behind
 * its schedule still reads replies between bursts. */
#define ARRIVALS_PER_STEP 32

enum phase { PH_IDLE, PH_WARMUP, PH_MEASURE, PH_DRAIN, PH_DONE };

struct loadgen {
	struct loadgen_config cfg;
	const struct loadgen_transport *t;
	void *ctx;

	enum phase phase;
	uint64_t t_start, t_measure, t_end;

	struct slot *ring;
	uint64_t mask;
	uint64_t head;		/* next sequence to send */
	uint64_t tail;		/* oldest sequence that may be outstanding */

	/* Closed loop: flows owed a request (a timeout, a failed send). */
	uint32_t *owed;
	uint32_t nowed, owed_cap;

	/* LOADGEN_MATCH_ORDER: one FIFO per flow. */
	struct order_fifo *fifo;

	/* Open loop: the next arrival and the flow it goes to. */
	double next_arrival;
	uint64_t rng;
	uint32_t next_flow;

	/* Measured requests (scheduled or sent within the window). */
	uint64_t sent, replied, lost, outstanding;
	uint64_t send_errors, late, bad, max_lag;
	struct loadgen_hist hist;

	uint8_t buf[LOADGEN_MAX_PAYLOAD];
};

/* ------------------------------------------------------------------ */
/* histogram */

static unsigned hist_index(uint64_t v)
{
	unsigned k;

	if (v > LOADGEN_HIST_MAX_NS)
		v = LOADGEN_HIST_MAX_NS;
	if (v < LOADGEN_HIST_SUB)
		return (unsigned)v;
	k = 63u - (unsigned)__builtin_clzll(v);
	return (k - LOADGEN_HIST_SUB_BITS + 1) * LOADGEN_HIST_SUB +
	       (unsigned)((v >> (k - LOADGEN_HIST_SUB_BITS)) -
			  LOADGEN_HIST_SUB);
}

/* Lowest value and width of bucket @i. */
static void hist_bucket(unsigned i, uint64_t *low, uint64_t *width)
{
	unsigned k, sub;

	if (i < LOADGEN_HIST_SUB) {
		*low = i;
		*width = 1;
		return;
	}
	k = i / LOADGEN_HIST_SUB + LOADGEN_HIST_SUB_BITS - 1;
	sub = i % LOADGEN_HIST_SUB;
	*low = (uint64_t)(LOADGEN_HIST_SUB + sub) << (k - LOADGEN_HIST_SUB_BITS);
	*width = 1ull << (k - LOADGEN_HIST_SUB_BITS);
}

_Static_assert(LOADGEN_HIST_MAX_NS < (1ull << 34),
	       "the histogram's top power of two is 2^33");

void loadgen_hist_reset(struct loadgen_hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

void loadgen_hist_record(struct loadgen_hist *h, uint64_t ns)
{
	h->count[hist_index(ns)]++;
	h->n++;
	h->sum += (double)ns;
	if (ns < h->min)
		h->min = ns;
	if (ns > h->max)
		h->max = ns;
}

void loadgen_hist_merge(struct loadgen_hist *to, const struct loadgen_hist *from)
{
	for (unsigned i = 0; i < LOADGEN_HIST_BUCKETS; i++)
		to->count[i] += from->count[i];
	to->n += from->n;
	to->sum += from->sum;
	if (from->min < to->min)
		to->min = from->min;
	if (from->max > to->max)
		to->max = from->max;
}

double loadgen_hist_quantile(const struct loadgen_hist *h, double q)
{
	uint64_t rank, seen = 0;

	if (h->n == 0)
		return 0;
	if (q <= 0)
		return (double)h->min;
	if (q >= 1)
		return (double)h->max;
	rank = (uint64_t)ceil(q * (double)h->n);
	if (rank == 0)
		rank = 1;
	for (unsigned i = 0; i < LOADGEN_HIST_BUCKETS; i++) {
		uint64_t low, width;
		double v;

		seen += h->count[i];
		if (seen < rank)
			continue;
		hist_bucket(i, &low, &width);
		v = (double)low + (double)(width - 1) / 2.0;
		/* The extreme buckets hold the exact extremes. */
		if (v < (double)h->min)
			v = (double)h->min;
		if (v > (double)h->max)
			v = (double)h->max;
		return v;
	}
	return (double)h->max;
}

double loadgen_hist_mean(const struct loadgen_hist *h)
{
	return h->n ? h->sum / (double)h->n : 0;
}

/* ------------------------------------------------------------------ */
/* set-up */

void loadgen_config_default(struct loadgen_config *cfg)
{
	*cfg = (struct loadgen_config){
		.mode = LOADGEN_CLOSED,
		.flows = 1,
		.window = 1,
		.rate = 0,
		.payload = 64,
		.warmup_ns = 1000000000ull,
		.duration_ns = 5000000000ull,
		.timeout_ns = 100000000ull,
		.seed = 0x9e3779b97f4a7c15ull,
	};
}

static uint64_t pow2_at_least(uint64_t v)
{
	uint64_t p = 1;

	while (p < v)
		p <<= 1;
	return p;
}

struct loadgen *loadgen_create(const struct loadgen_config *cfg,
			       const struct loadgen_transport *t, void *ctx)
{
	struct loadgen *lg = NULL;
	uint64_t cap;

	if (cfg == NULL || t == NULL || t->send == NULL || t->now_ns == NULL ||
	    cfg->flows == 0 ||
	    (cfg->match != LOADGEN_MATCH_SEQ &&
	     cfg->match != LOADGEN_MATCH_ORDER) ||
	    (cfg->match == LOADGEN_MATCH_SEQ &&
	     (cfg->payload < LOADGEN_HDR_SIZE ||
	      cfg->payload > LOADGEN_MAX_PAYLOAD)) ||
	    cfg->flows > (1u << 20) || cfg->duration_ns == 0 ||
	    cfg->timeout_ns == 0 ||
	    (cfg->mode == LOADGEN_CLOSED &&
	     (cfg->window == 0 ||
	      (uint64_t)cfg->flows * cfg->window > (1u << 20))) ||
	    (cfg->mode == LOADGEN_OPEN && !(cfg->rate > 0 && cfg->rate < 1e9)) ||
	    (cfg->mode != LOADGEN_CLOSED && cfg->mode != LOADGEN_OPEN)) {
		errno = EINVAL;
		return NULL;
	}
	if (cfg->mode == LOADGEN_CLOSED) {
		cap = (uint64_t)cfg->flows * cfg->window * 4;
		if (cap < RING_MIN_CLOSED)
			cap = RING_MIN_CLOSED;
	} else {
		cap = (uint64_t)(cfg->rate * (double)cfg->timeout_ns / 1e9 * 2) +
		      cfg->flows;
		if (cap < RING_MIN_OPEN)
			cap = RING_MIN_OPEN;
	}
	cap = pow2_at_least(cap);
	if (cap > (1ull << 30)) {
		errno = EINVAL;
		return NULL;
	}

	lg = calloc(1, sizeof(*lg));
	if (lg == NULL)
		goto fail;
	lg->cfg = *cfg;
	lg->t = t;
	lg->ctx = ctx;
	lg->mask = cap - 1;
	lg->ring = malloc(cap * sizeof(*lg->ring));
	if (lg->ring == NULL)
		goto fail;
	for (uint64_t i = 0; i < cap; i++)
		lg->ring[i] = (struct slot){ .flow = SLOT_FREE };
	if (cfg->mode == LOADGEN_CLOSED) {
		lg->owed_cap = cfg->flows * cfg->window;
		lg->owed = malloc(lg->owed_cap * sizeof(*lg->owed));
		if (lg->owed == NULL)
			goto fail;
	}
	if (cfg->match == LOADGEN_MATCH_ORDER) {
		lg->fifo = calloc(cfg->flows, sizeof(*lg->fifo));
		if (lg->fifo == NULL)
			goto fail;
		for (uint32_t f = 0; f < cfg->flows; f++) {
			uint32_t n = (uint32_t)pow2_at_least(
				cfg->mode == LOADGEN_CLOSED ? 2 * cfg->window
							    : ORDER_FIFO_MIN);

			if (n < ORDER_FIFO_MIN)
				n = ORDER_FIFO_MIN;
			lg->fifo[f].seq = malloc(n * sizeof(uint64_t));
			if (lg->fifo[f].seq == NULL)
				goto fail;
			lg->fifo[f].mask = n - 1;
		}
	}
	lg->rng = cfg->seed ? cfg->seed : 1;
	/* Sequence 0 is never sent: a zeroed reply does not match. */
	lg->head = lg->tail = 1;
	loadgen_hist_reset(&lg->hist);
	for (uint32_t i = LOADGEN_HDR_SIZE;
	     cfg->match == LOADGEN_MATCH_SEQ && i < cfg->payload; i++)
		lg->buf[i] = (uint8_t)(0xa5 ^ i);
	return lg;
fail:
	loadgen_destroy(lg);
	errno = ENOMEM;
	return NULL;
}

void loadgen_destroy(struct loadgen *lg)
{
	if (lg == NULL)
		return;
	if (lg->fifo != NULL)
		for (uint32_t f = 0; f < lg->cfg.flows; f++)
			free(lg->fifo[f].seq);
	free(lg->fifo);
	free(lg->owed);
	free(lg->ring);
	free(lg);
}

/* ------------------------------------------------------------------ */
/* the data path */

static bool measured(const struct loadgen *lg, uint64_t at)
{
	return at >= lg->t_measure && at < lg->t_end;
}

static bool sending(const struct loadgen *lg)
{
	return lg->phase == PH_WARMUP || lg->phase == PH_MEASURE;
}

static void owe(struct loadgen *lg, uint32_t flow)
{
	/* At most one entry per request in flight. */
	if (lg->cfg.mode == LOADGEN_CLOSED && sending(lg) &&
	    lg->nowed < lg->owed_cap)
		lg->owed[lg->nowed++] = flow;
}

/* @s's request got no (timely) reply. */
static void lose(struct loadgen *lg, struct slot *s)
{
	uint32_t flow = s->flow;

	if (measured(lg, s->at_ns)) {
		lg->lost++;
		lg->outstanding--;
	}
	s->flow = SLOT_FREE;
	owe(lg, flow);
}

/* Count the oldest outstanding request lost to make room. */
static void evict_oldest(struct loadgen *lg)
{
	while (lg->tail != lg->head) {
		struct slot *s = &lg->ring[lg->tail & lg->mask];

		lg->tail++;
		if (s->flow != SLOT_FREE) {
			lose(lg, s);
			return;
		}
	}
}

/* Room for one more in @q: 0, or -ENOMEM (it cannot grow). Cold: a
 * FIFO grows a few times per run at most. */
__attribute__((cold)) static int fifo_grow(struct order_fifo *q)
{
	uint32_t n = q->mask + 1, count = q->tail - q->head;
	uint64_t *v;

	if (n >= ORDER_FIFO_MAX)
		return -ENOMEM;
	v = malloc(2 * (size_t)n * sizeof(*v));
	if (v == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < count; i++)
		v[i] = q->seq[(q->head + i) & q->mask];
	free(q->seq);
	q->seq = v;
	q->head = 0;
	q->tail = count;
	q->mask = 2 * n - 1;
	return 0;
}

static void send_request(struct loadgen *lg, uint32_t flow, uint64_t at,
			 uint64_t now)
{
	struct loadgen_hdr *h = (struct loadgen_hdr *)lg->buf;
	struct order_fifo *q = NULL;
	size_t len = lg->cfg.payload;
	struct slot *s;
	uint64_t seq;

	if (lg->head - lg->tail > lg->mask)
		evict_oldest(lg);
	seq = lg->head++;
	s = &lg->ring[seq & lg->mask];
	*s = (struct slot){ .at_ns = at, .seq_lo = (uint32_t)seq,
			    .flow = flow };
	h->seq = seq;
	h->sent_ns = at;
	h->flow = flow;
	h->magic = LOADGEN_MAGIC;
	if (measured(lg, at)) {
		lg->sent++;
		lg->outstanding++;
		if (now - at > lg->max_lag && now > at)
			lg->max_lag = now - at;
	}
	if (lg->cfg.match == LOADGEN_MATCH_ORDER) {
		/* Room first: a request sent but not in the FIFO would
		 * shift every later reply of the flow onto the wrong
		 * request. */
		q = &lg->fifo[flow];
		len = LOADGEN_HDR_SIZE;
		if (q->tail - q->head > q->mask && fifo_grow(q) != 0) {
			lg->send_errors++;
			lose(lg, s);
			return;
		}
	}
	if (lg->t->send(lg->ctx, flow, lg->buf, len) != 0) {
		lg->send_errors++;
		lose(lg, s);
		return;
	}
	if (q != NULL)
		q->seq[q->tail++ & q->mask] = seq;
}

/* The reply to request @seq (below head, not 0) of @flow has come. */
static void answer(struct loadgen *lg, uint32_t flow, uint64_t seq)
{
	struct slot *s;
	uint64_t now, lat;

	if (lg->head - seq > lg->mask + 1) {
		lg->late++;	/* its slot was reused long ago */
		return;
	}
	s = &lg->ring[seq & lg->mask];
	if (s->flow == SLOT_FREE || s->seq_lo != (uint32_t)seq) {
		lg->late++;	/* timed out already (or a duplicate) */
		return;
	}
	if (s->flow != flow) {
		lg->bad++;
		return;
	}
	now = lg->t->now_ns(lg->ctx);
	lat = now - s->at_ns;
	if (lat > lg->cfg.timeout_ns) {
		/* Timed out before the step that would have said so. */
		lg->late++;
		lose(lg, s);
		return;
	}
	if (measured(lg, s->at_ns)) {
		loadgen_hist_record(&lg->hist, lat);
		lg->replied++;
		lg->outstanding--;
	}
	s->flow = SLOT_FREE;
	if (lg->cfg.mode == LOADGEN_CLOSED && sending(lg))
		send_request(lg, flow, now, now);
}

void loadgen_on_reply(struct loadgen *lg, uint32_t flow, const void *buf,
		      size_t len)
{
	struct loadgen_hdr h;

	if (len < LOADGEN_HDR_SIZE || lg->cfg.match != LOADGEN_MATCH_SEQ) {
		lg->bad++;
		return;
	}
	memcpy(&h, buf, sizeof(h));
	if (h.magic != LOADGEN_MAGIC || h.flow >= lg->cfg.flows ||
	    (flow != LOADGEN_FLOW_ANY && flow != h.flow) || h.seq == 0 ||
	    h.seq >= lg->head) {
		lg->bad++;
		return;
	}
	answer(lg, h.flow, h.seq);
}

void loadgen_on_reply_next(struct loadgen *lg, uint32_t flow)
{
	struct order_fifo *q;

	if (lg->cfg.match != LOADGEN_MATCH_ORDER || flow >= lg->cfg.flows) {
		lg->bad++;
		return;
	}
	q = &lg->fifo[flow];
	if (q->head == q->tail) {
		lg->bad++;
		return;
	}
	answer(lg, flow, q->seq[q->head++ & q->mask]);
}

/* xorshift64*: open-loop inter-arrival times. */
static double uniform01(struct loadgen *lg)
{
	uint64_t x = lg->rng;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	lg->rng = x;
	return (double)((x * 0x2545f4914f6cdd1dull) >> 11) * 0x1.0p-53;
}

static double interarrival_ns(struct loadgen *lg)
{
	return -log1p(-uniform01(lg)) * 1e9 / lg->cfg.rate;
}

void loadgen_start(struct loadgen *lg)
{
	uint64_t now = lg->t->now_ns(lg->ctx);

	lg->t_start = now;
	lg->t_measure = now + lg->cfg.warmup_ns;
	lg->t_end = lg->t_measure + lg->cfg.duration_ns;
	lg->phase = PH_WARMUP;
	if (lg->cfg.mode == LOADGEN_CLOSED) {
		for (uint32_t w = 0; w < lg->cfg.window; w++)
			for (uint32_t f = 0; f < lg->cfg.flows; f++)
				send_request(lg, f, now, now);
	} else {
		lg->next_arrival = (double)now + interarrival_ns(lg);
	}
	if (lg->t->flush)
		lg->t->flush(lg->ctx);
}

bool loadgen_step(struct loadgen *lg)
{
	uint64_t now = lg->t->now_ns(lg->ctx);

	if (lg->phase == PH_IDLE || lg->phase == PH_DONE)
		return lg->phase == PH_DONE;

	/* Timeouts, oldest first. */
	while (lg->tail != lg->head) {
		struct slot *s = &lg->ring[lg->tail & lg->mask];

		if (s->flow != SLOT_FREE) {
			if (now - s->at_ns < lg->cfg.timeout_ns ||
			    s->at_ns > now)
				break;
			lose(lg, s);
		}
		lg->tail++;
	}

	if (lg->phase == PH_WARMUP && now >= lg->t_measure)
		lg->phase = PH_MEASURE;

	if (lg->cfg.mode == LOADGEN_OPEN && sending(lg)) {
		for (unsigned k = 0; k < ARRIVALS_PER_STEP; k++) {
			uint64_t at = (uint64_t)lg->next_arrival;

			if (at > now || at >= lg->t_end)
				break;
			send_request(lg, lg->next_flow, at, now);
			if (++lg->next_flow == lg->cfg.flows)
				lg->next_flow = 0;
			lg->next_arrival += interarrival_ns(lg);
		}
	} else if (lg->cfg.mode == LOADGEN_CLOSED && sending(lg)) {
		/* At most one try per flow owed now: a send that fails owes
		 * its flow again, for the next step, not for this loop. */
		uint32_t n = lg->nowed;

		while (n-- > 0 && lg->nowed > 0) {
			uint32_t flow = lg->owed[--lg->nowed];

			send_request(lg, flow, now, now);
		}
	}

	if (lg->phase == PH_MEASURE && now >= lg->t_end &&
	    (lg->cfg.mode == LOADGEN_CLOSED ||
	     (uint64_t)lg->next_arrival >= lg->t_end))
		lg->phase = PH_DRAIN;
	if (lg->t->flush)
		lg->t->flush(lg->ctx);
	if (lg->phase == PH_DRAIN &&
	    (lg->outstanding == 0 ||
	     now >= lg->t_end + 2 * lg->cfg.timeout_ns)) {
		/* Beyond any timeout: what is left is lost. */
		lg->lost += lg->outstanding;
		lg->outstanding = 0;
		lg->phase = PH_DONE;
	}
	return lg->phase == PH_DONE;
}

bool loadgen_done(const struct loadgen *lg)
{
	return lg->phase == PH_DONE;
}

int loadgen_run(struct loadgen *lg)
{
	loadgen_start(lg);
	do {
		if (lg->t->poll) {
			int rc = lg->t->poll(lg->ctx, lg);

			if (rc < 0) {
				lg->lost += lg->outstanding;
				lg->outstanding = 0;
				lg->phase = PH_DONE;
				return rc;
			}
		}
	} while (!loadgen_step(lg));
	return 0;
}

void loadgen_result(const struct loadgen *lg, struct loadgen_result *out)
{
	double d = (double)lg->cfg.duration_ns / 1e9;

	memset(out, 0, sizeof(*out));
	out->mode = lg->cfg.mode;
	out->duration_s = d;
	out->sent = lg->sent;
	out->replied = lg->replied;
	out->lost = lg->lost;
	out->send_errors = lg->send_errors;
	out->late = lg->late;
	out->bad = lg->bad;
	out->max_lag_ns = lg->max_lag;
	out->sent_rps = (double)lg->sent / d;
	out->achieved_rps = (double)lg->replied / d;
	out->offered_rps =
		lg->cfg.mode == LOADGEN_OPEN ? lg->cfg.rate : out->sent_rps;
	out->hist = lg->hist;
	out->p50_ns = loadgen_hist_quantile(&lg->hist, 0.50);
	out->p99_ns = loadgen_hist_quantile(&lg->hist, 0.99);
	out->p999_ns = loadgen_hist_quantile(&lg->hist, 0.999);
	out->mean_ns = loadgen_hist_mean(&lg->hist);
	out->min_ns = lg->hist.n ? (double)lg->hist.min : 0;
	out->max_ns = (double)lg->hist.max;
}
