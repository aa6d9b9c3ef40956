/* SPDX-License-Identifier: BSD-3-Clause */
/* The memcached load generator of kvload.h: requests built from fixed
 * templates, replies parsed per connection in order, loadgen.c's loops
 * with LOADGEN_MATCH_ORDER. Plain C: no system call, no Linux header. */
#include "kvload.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum op { OP_GET = 1, OP_SET = 2 };

enum reply { R_HIT, R_MISS, R_STORED, R_ERROR, R_BAD_VALUE, R_PROTO };

enum job { JOB_NONE, JOB_PRELOAD, JOB_TEST, JOB_DRAIN, JOB_DONE };

/* Where a connection's reply parser stands. */
enum pstate {
	PS_LINE,	/* at the start of a reply */
	PS_DATA,	/* skipping the data of a VALUE */
	PS_CRLF,	/* the empty line closing the data */
	PS_END,		/* the END after a VALUE */
};

/* Longest reply line kept across chunks: "VALUE " + a 250-byte key +
 * flags and length fit with room to spare. */
#define LINE_MAX_LEN 512u
#define OPS_MIN 16u
#define OPS_MAX (1u << 24)

struct kconn {
	/* The operations sent whose reply has not come, oldest first. */
	uint8_t *ops;
	uint32_t head, tail, mask;
	/* The parser. */
	enum pstate ps;
	bool value_ok;		/* the VALUE had the size we set */
	bool overlong;		/* dropping a line longer than LINE_MAX_LEN */
	uint32_t data_left;
	uint32_t line_len;
	char line[LINE_MAX_LEN];
};

struct kvload {
	struct kvload_config cfg;
	const struct kvload_transport *t;
	void *ctx;
	struct loadgen_transport lgt;	/* kvload as loadgen's transport */
	struct loadgen *lg;

	enum job job;
	uint64_t t_start, t_drain;
	uint32_t next_key;	/* preload */
	uint64_t inflight;	/* sum of the connections' ops */

	/* Key and operation choice. */
	uint64_t rng;
	double *cdf;		/* Zipf: P(rank <= i) */
	uint64_t perm_mul;	/* rank -> key, coprime with keys */

	/* Request templates: the key's digits are written in place. */
	char *get_req, *set_req;
	size_t get_len, set_len;

	struct kvload_result res;
	struct kconn *conn;
};

/* ------------------------------------------------------------------ */
/* set-up */

void kvload_config_default(struct kvload_config *cfg)
{
	*cfg = (struct kvload_config){
		.conns = 64,
		.keys = 100000,
		.key_size = 32,
		.value_size = 100,
		.get_ratio = 0.9,
		.dist = KVLOAD_UNIFORM,
		.zipf_s = 0.99,
		.seed = 0x2545f4914f6cdd1dull,
		.preload_window = 16,
		.preload_timeout_ns = 60000000000ull,
		.drain_timeout_ns = 10000000000ull,
	};
}

static unsigned digits(uint64_t v)
{
	unsigned n = 1;

	while (v >= 10) {
		v /= 10;
		n++;
	}
	return n;
}

static uint64_t gcd(uint64_t a, uint64_t b)
{
	while (b != 0) {
		uint64_t r = a % b;

		a = b;
		b = r;
	}
	return a;
}

/* The Zipf CDF over @n ranks, exponent @s. */
static double *zipf_cdf(uint32_t n, double s)
{
	double *cdf = malloc((size_t)n * sizeof(*cdf)), sum = 0;

	if (cdf == NULL)
		return NULL;
	for (uint32_t i = 0; i < n; i++) {
		sum += pow((double)i + 1.0, -s);
		cdf[i] = sum;
	}
	for (uint32_t i = 0; i < n; i++)
		cdf[i] /= sum;
	cdf[n - 1] = 1.0;
	return cdf;
}

static int lg_send(void *ctx, uint32_t flow, const void *buf, size_t len);
static void lg_flush(void *ctx);
static uint64_t lg_now(void *ctx);

struct kvload *kvload_create(const struct kvload_config *cfg,
			     const struct kvload_transport *t, void *ctx)
{
	struct kvload *kl = NULL;
	char suffix[32];
	size_t slen;
	char *p;

	if (cfg == NULL || t == NULL || t->send == NULL || t->now_ns == NULL ||
	    cfg->conns == 0 || cfg->conns > KVLOAD_MAX_CONNS ||
	    cfg->keys == 0 || cfg->key_size > KVLOAD_MAX_KEY ||
	    cfg->key_size < 1 + digits(cfg->keys - 1) ||
	    cfg->value_size == 0 || cfg->value_size > KVLOAD_MAX_VALUE ||
	    !(cfg->get_ratio >= 0 && cfg->get_ratio <= 1) ||
	    (cfg->dist != KVLOAD_UNIFORM && cfg->dist != KVLOAD_ZIPF) ||
	    (cfg->dist == KVLOAD_ZIPF && !(cfg->zipf_s > 0)) ||
	    cfg->preload_window == 0 || cfg->preload_timeout_ns == 0 ||
	    cfg->drain_timeout_ns == 0) {
		errno = EINVAL;
		return NULL;
	}
	kl = calloc(1, sizeof(*kl));
	if (kl == NULL)
		goto fail;
	kl->cfg = *cfg;
	kl->t = t;
	kl->ctx = ctx;
	kl->lgt = (struct loadgen_transport){
		.send = lg_send, .flush = lg_flush, .now_ns = lg_now };
	kl->rng = cfg->seed ? cfg->seed : 1;
	kl->conn = calloc(cfg->conns, sizeof(*kl->conn));
	if (kl->conn == NULL)
		goto fail;
	for (uint32_t c = 0; c < cfg->conns; c++) {
		kl->conn[c].ops = malloc(OPS_MIN);
		if (kl->conn[c].ops == NULL)
			goto fail;
		kl->conn[c].mask = OPS_MIN - 1;
	}
	if (cfg->dist == KVLOAD_ZIPF) {
		kl->cdf = zipf_cdf(cfg->keys, cfg->zipf_s);
		if (kl->cdf == NULL)
			goto fail;
		kl->perm_mul = (uint64_t)((double)cfg->keys * 0.6180339887) | 1;
		while (gcd(kl->perm_mul, cfg->keys) != 1)
			kl->perm_mul++;
	}

	/* "get <key>\r\n" and "set <key> 0 0 <n>\r\n<value>\r\n". */
	kl->get_len = 4 + cfg->key_size + 2;
	kl->get_req = malloc(kl->get_len);
	slen = (size_t)snprintf(suffix, sizeof(suffix), " 0 0 %u\r\n",
				cfg->value_size);
	kl->set_len = 4 + cfg->key_size + slen + cfg->value_size + 2;
	kl->set_req = malloc(kl->set_len);
	if (kl->get_req == NULL || kl->set_req == NULL)
		goto fail;
	memcpy(kl->get_req, "get ", 4);
	memset(kl->get_req + 4, '0', cfg->key_size);
	kl->get_req[4] = 'k';
	memcpy(kl->get_req + 4 + cfg->key_size, "\r\n", 2);
	p = kl->set_req;
	memcpy(p, kl->get_req, 4 + cfg->key_size);
	memcpy(p, "set ", 4);
	p += 4 + cfg->key_size;
	memcpy(p, suffix, slen);
	p += slen;
	for (uint32_t i = 0; i < cfg->value_size; i++)
		p[i] = (char)('a' + i % 26);
	p += cfg->value_size;
	memcpy(p, "\r\n", 2);
	return kl;
fail:
	kvload_destroy(kl);
	errno = ENOMEM;
	return NULL;
}

void kvload_destroy(struct kvload *kl)
{
	if (kl == NULL)
		return;
	loadgen_destroy(kl->lg);
	if (kl->conn != NULL)
		for (uint32_t c = 0; c < kl->cfg.conns; c++)
			free(kl->conn[c].ops);
	free(kl->conn);
	free(kl->cdf);
	free(kl->get_req);
	free(kl->set_req);
	free(kl);
}

/* ------------------------------------------------------------------ */
/* choosing and sending requests */

/* xorshift64*, as loadgen's arrivals. */
static uint64_t next_rand(struct kvload *kl)
{
	uint64_t x = kl->rng;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	kl->rng = x;
	return x * 0x2545f4914f6cdd1dull;
}

static double uniform01(struct kvload *kl)
{
	return (double)(next_rand(kl) >> 11) * 0x1.0p-53;
}

static uint32_t pick_key(struct kvload *kl)
{
	uint32_t n = kl->cfg.keys, lo = 0, hi;
	double u;

	if (kl->cdf == NULL)
		return (uint32_t)(((next_rand(kl) >> 32) * n) >> 32);
	/* The first rank whose cumulative probability reaches u. */
	u = uniform01(kl);
	hi = n - 1;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (kl->cdf[mid] < u)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (uint32_t)((uint64_t)lo * kl->perm_mul % n);
}

/* The digits of key @idx into the template at @key (key_size bytes,
 * "k" first). */
static void write_key(const struct kvload *kl, char *key, uint32_t idx)
{
	for (uint32_t i = kl->cfg.key_size - 1; i > 0; i--) {
		key[i] = (char)('0' + idx % 10);
		idx /= 10;
	}
}

static uint32_t ops_count(const struct kconn *c)
{
	return c->tail - c->head;
}

/* Room for one more op in @c. Cold: a FIFO grows a few times a run. */
__attribute__((cold)) static int ops_grow(struct kconn *c)
{
	uint32_t n = c->mask + 1, count = ops_count(c);
	uint8_t *v;

	if (n >= OPS_MAX)
		return -ENOMEM;
	v = malloc(2 * (size_t)n);
	if (v == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < count; i++)
		v[i] = c->ops[(c->head + i) & c->mask];
	free(c->ops);
	c->ops = v;
	c->head = 0;
	c->tail = count;
	c->mask = 2 * n - 1;
	return 0;
}

/* Send @op of key @idx on @conn. 0 or -errno; a fatal error also ends
 * the job at the next step. */
static int send_op(struct kvload *kl, uint32_t conn, enum op op,
		   uint32_t idx)
{
	struct kconn *c = &kl->conn[conn];
	const char *req;
	size_t len;
	int rc;

	if (ops_count(c) > c->mask && ops_grow(c) != 0) {
		/* Sent but not remembered, a request would pair every later
		 * reply of the connection with the wrong one. */
		if (kl->res.status == 0)
			kl->res.status = -ENOMEM;
		return -ENOMEM;
	}
	if (op == OP_GET) {
		write_key(kl, kl->get_req + 4, idx);
		req = kl->get_req;
		len = kl->get_len;
	} else {
		write_key(kl, kl->set_req + 4, idx);
		req = kl->set_req;
		len = kl->set_len;
	}
	rc = kl->t->send(kl->ctx, conn, req, len);
	if (rc != 0) {
		if (rc == -EAGAIN)
			kl->res.send_full++;
		else if (kl->res.status == 0)
			kl->res.status = rc;
		return rc;
	}
	c->ops[c->tail++ & c->mask] = (uint8_t)op;
	kl->inflight++;
	if (op == OP_GET)
		kl->res.gets++;
	else
		kl->res.sets++;
	return 0;
}

/* loadgen's transport: every request it sends is one of the mix. */
static int lg_send(void *ctx, uint32_t flow, const void *buf, size_t len)
{
	struct kvload *kl = ctx;
	enum op op = uniform01(kl) < kl->cfg.get_ratio ? OP_GET : OP_SET;

	(void)buf;
	(void)len;
	return send_op(kl, flow, op, pick_key(kl));
}

static void lg_flush(void *ctx)
{
	struct kvload *kl = ctx;

	if (kl->t->flush)
		kl->t->flush(kl->ctx);
}

static uint64_t lg_now(void *ctx)
{
	struct kvload *kl = ctx;

	return kl->t->now_ns(kl->ctx);
}

/* Preload: keep preload_window sets in flight on @conn while keys are
 * left. */
static void preload_fill(struct kvload *kl, uint32_t conn)
{
	while (kl->next_key < kl->cfg.keys &&
	       ops_count(&kl->conn[conn]) < kl->cfg.preload_window &&
	       send_op(kl, conn, OP_SET, kl->next_key) == 0)
		kl->next_key++;
}

/* ------------------------------------------------------------------ */
/* replies */

/* A whole reply of kind @r on @conn: it answers the oldest op there. */
static void complete(struct kvload *kl, uint32_t conn, enum reply r)
{
	struct kconn *c = &kl->conn[conn];
	enum op op;

	c->ps = PS_LINE;
	if (c->head == c->tail) {
		kl->res.proto_errors++;	/* a reply nobody asked for */
		return;
	}
	op = (enum op)c->ops[c->head++ & c->mask];
	kl->inflight--;
	switch (r) {
	case R_HIT:
		if (op == OP_GET)
			kl->res.hits++;
		else
			kl->res.errors++;
		break;
	case R_MISS:
		if (op == OP_GET)
			kl->res.misses++;
		else
			kl->res.errors++;
		break;
	case R_STORED:
		if (op == OP_SET)
			kl->res.stored++;
		else
			kl->res.errors++;
		break;
	case R_ERROR:
	case R_BAD_VALUE:
		kl->res.errors++;
		break;
	case R_PROTO:
		break;		/* counted where it was seen */
	}
	if (kl->job == JOB_TEST && kl->lg != NULL && !loadgen_done(kl->lg))
		loadgen_on_reply_next(kl->lg, conn);
	else if (kl->job == JOB_PRELOAD)
		preload_fill(kl, conn);
}

static bool is(const char *line, size_t n, const char *word)
{
	size_t k = strlen(word);

	return n == k && memcmp(line, word, k) == 0;
}

static bool starts(const char *line, size_t n, const char *word)
{
	size_t k = strlen(word);

	return n >= k && memcmp(line, word, k) == 0;
}

/* "VALUE <key> <flags> <bytes>[ <cas>]": the byte count, or -1. */
static int64_t value_bytes(const char *line, size_t n)
{
	unsigned field = 0;
	int64_t v = -1;

	for (size_t i = 0; i < n; i++) {
		if (line[i] == ' ') {
			field++;
			if (field == 3)
				v = 0;
			continue;
		}
		if (field == 3) {
			if (line[i] < '0' || line[i] > '9' || v > (1 << 30))
				return -1;
			v = v * 10 + (line[i] - '0');
		}
	}
	return field >= 3 ? v : -1;
}

/* One line of @conn's stream, without its "\r\n". */
static void on_line(struct kvload *kl, uint32_t conn, const char *line,
		    size_t n)
{
	struct kconn *c = &kl->conn[conn];
	int64_t bytes;

	switch (c->ps) {
	case PS_LINE:
		if (starts(line, n, "VALUE ")) {
			bytes = value_bytes(line, n);
			if (bytes < 0) {
				kl->res.proto_errors++;
				complete(kl, conn, R_PROTO);
				return;
			}
			c->value_ok = bytes == kl->cfg.value_size;
			c->data_left = (uint32_t)bytes;
			c->ps = bytes ? PS_DATA : PS_CRLF;
		} else if (is(line, n, "END")) {
			complete(kl, conn, R_MISS);
		} else if (is(line, n, "STORED")) {
			complete(kl, conn, R_STORED);
		} else if (is(line, n, "ERROR") ||
			   starts(line, n, "CLIENT_ERROR") ||
			   starts(line, n, "SERVER_ERROR") ||
			   is(line, n, "NOT_STORED") || is(line, n, "EXISTS") ||
			   is(line, n, "NOT_FOUND")) {
			complete(kl, conn, R_ERROR);
		} else {
			kl->res.proto_errors++;
			complete(kl, conn, R_PROTO);
		}
		return;
	case PS_CRLF:
		if (n == 0) {
			c->ps = PS_END;
			return;
		}
		kl->res.proto_errors++;
		complete(kl, conn, R_PROTO);
		return;
	case PS_END:
		if (is(line, n, "END")) {
			complete(kl, conn, c->value_ok ? R_HIT : R_BAD_VALUE);
			return;
		}
		/* A second VALUE: we never ask for two keys at once. */
		kl->res.proto_errors++;
		complete(kl, conn, R_PROTO);
		return;
	case PS_DATA:
		break;
	}
}

void kvload_input(struct kvload *kl, uint32_t conn, const void *data,
		  size_t len)
{
	const char *p = data, *end = p + len;
	struct kconn *c;

	if (conn >= kl->cfg.conns) {
		kl->res.proto_errors++;
		return;
	}
	c = &kl->conn[conn];
	while (p < end) {
		const char *nl;
		size_t n;

		if (c->ps == PS_DATA) {
			n = (size_t)(end - p) < c->data_left
				    ? (size_t)(end - p)
				    : c->data_left;
			p += n;
			c->data_left -= (uint32_t)n;
			if (c->data_left == 0)
				c->ps = PS_CRLF;
			continue;
		}
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL) {
			/* Keep the start of the line for the next chunk. */
			n = (size_t)(end - p);
			if (c->overlong || c->line_len + n > LINE_MAX_LEN) {
				c->overlong = true;
				c->line_len = 0;
			} else {
				memcpy(c->line + c->line_len, p, n);
				c->line_len += (uint32_t)n;
			}
			return;
		}
		n = (size_t)(nl - p);
		if (c->overlong) {
			c->overlong = false;
			kl->res.proto_errors++;
			complete(kl, conn, R_PROTO);
		} else if (c->line_len == 0) {
			on_line(kl, conn, p, n && p[n - 1] == '\r' ? n - 1 : n);
		} else if (c->line_len + n > LINE_MAX_LEN) {
			c->line_len = 0;
			kl->res.proto_errors++;
			complete(kl, conn, R_PROTO);
		} else {
			memcpy(c->line + c->line_len, p, n);
			n += c->line_len;
			c->line_len = 0;
			on_line(kl, conn, c->line,
				n && c->line[n - 1] == '\r' ? n - 1 : n);
		}
		p = nl + 1;
	}
}

/* ------------------------------------------------------------------ */
/* jobs */

static bool job_running(const struct kvload *kl)
{
	return kl->job != JOB_NONE && kl->job != JOB_DONE;
}

static void job_begin(struct kvload *kl, enum job job)
{
	memset(&kl->res, 0, sizeof(kl->res));
	loadgen_hist_reset(&kl->res.lg.hist);
	kl->job = job;
	kl->t_start = kl->t->now_ns(kl->ctx);
}

int kvload_start_preload(struct kvload *kl)
{
	if (job_running(kl))
		return -EBUSY;
	job_begin(kl, JOB_PRELOAD);
	kl->next_key = 0;
	for (uint32_t c = 0; c < kl->cfg.conns; c++)
		preload_fill(kl, c);
	if (kl->t->flush)
		kl->t->flush(kl->ctx);
	return 0;
}

int kvload_start_test(struct kvload *kl, const struct loadgen_config *lcfg)
{
	struct loadgen_config cfg;

	if (job_running(kl))
		return -EBUSY;
	if (lcfg == NULL)
		return -EINVAL;
	cfg = *lcfg;
	cfg.flows = kl->cfg.conns;
	cfg.match = LOADGEN_MATCH_ORDER;
	loadgen_destroy(kl->lg);
	kl->lg = loadgen_create(&cfg, &kl->lgt, kl);
	if (kl->lg == NULL)
		return -errno;
	job_begin(kl, JOB_TEST);
	loadgen_start(kl->lg);
	return 0;
}

static bool job_end(struct kvload *kl, uint64_t now, int status)
{
	if (kl->res.status == 0)
		kl->res.status = status;
	kl->res.elapsed_ns = now - kl->t_start;
	if (kl->job == JOB_TEST || kl->job == JOB_DRAIN)
		loadgen_result(kl->lg, &kl->res.lg);
	kl->job = JOB_DONE;
	return true;
}

bool kvload_step(struct kvload *kl)
{
	uint64_t now;

	if (!job_running(kl))
		return true;
	now = kl->t->now_ns(kl->ctx);
	if (kl->res.status != 0)
		return job_end(kl, now, 0);
	switch (kl->job) {
	case JOB_PRELOAD:
		/* Sends refused for want of room are tried again here. */
		for (uint32_t c = 0; c < kl->cfg.conns &&
				     kl->next_key < kl->cfg.keys; c++)
			preload_fill(kl, c);
		if (kl->t->flush)
			kl->t->flush(kl->ctx);
		if (kl->next_key == kl->cfg.keys && kl->inflight == 0)
			return job_end(kl, now, 0);
		if (now - kl->t_start > kl->cfg.preload_timeout_ns)
			return job_end(kl, now, -ETIMEDOUT);
		return false;
	case JOB_TEST:
		if (loadgen_step(kl->lg)) {
			kl->job = JOB_DRAIN;
			kl->t_drain = now;
		}
		return false;
	case JOB_DRAIN:
		/* Every request has its reply before the next job: unmeasured
		 * ones and those counted lost still come on the stream. */
		if (kl->t->flush)
			kl->t->flush(kl->ctx);
		if (kl->inflight == 0)
			return job_end(kl, now, 0);
		if (now - kl->t_drain > kl->cfg.drain_timeout_ns)
			return job_end(kl, now, -ETIMEDOUT);
		return false;
	default:
		return true;
	}
}

int kvload_run(struct kvload *kl)
{
	while (!kvload_step(kl)) {
		if (kl->t->poll) {
			int rc = kl->t->poll(kl->ctx, kl);

			if (rc < 0 && kl->res.status == 0)
				kl->res.status = rc;
		}
	}
	return kl->res.status;
}

void kvload_result(const struct kvload *kl, struct kvload_result *out)
{
	*out = kl->res;
	if (kl->job == JOB_TEST || kl->job == JOB_DRAIN)
		loadgen_result(kl->lg, &out->lg);
	if (out->elapsed_ns == 0 && job_running(kl))
		out->elapsed_ns = kl->t->now_ns(kl->ctx) - kl->t_start;
}
