/* SPDX-License-Identifier: BSD-3-Clause */
/* ebb-kv protocol engine: parses memcached text and binary requests from a
 * byte stream and answers them as memcached 1.6 does (proto_text.c,
 * proto_bin.c), including its error replies and when it closes. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto.h"

enum conn_state {
	ST_CMD,     /* waiting for a command */
	ST_NREAD,   /* reading a value into c->item */
	ST_SWALLOW, /* discarding c->sbytes */
	ST_CLOSE,
};

enum conn_proto { PROTO_UNKNOWN, PROTO_TEXT, PROTO_BIN };

/* Binary opcodes and statuses (protocol_binary.h). */
enum {
	BIN_GET = 0x00, BIN_SET = 0x01, BIN_ADD = 0x02, BIN_REPLACE = 0x03,
	BIN_DELETE = 0x04, BIN_INCR = 0x05, BIN_DECR = 0x06, BIN_QUIT = 0x07,
	BIN_FLUSH = 0x08, BIN_GETQ = 0x09, BIN_NOOP = 0x0a,
	BIN_VERSION = 0x0b, BIN_GETK = 0x0c, BIN_GETKQ = 0x0d,
	BIN_APPEND = 0x0e, BIN_PREPEND = 0x0f, BIN_STAT = 0x10,
	BIN_SETQ = 0x11, BIN_ADDQ = 0x12, BIN_REPLACEQ = 0x13,
	BIN_DELETEQ = 0x14, BIN_INCRQ = 0x15, BIN_DECRQ = 0x16,
	BIN_QUITQ = 0x17, BIN_FLUSHQ = 0x18, BIN_APPENDQ = 0x19,
	BIN_PREPENDQ = 0x1a, BIN_TOUCH = 0x1c, BIN_GAT = 0x1d,
	BIN_GATQ = 0x1e, BIN_GATK = 0x23, BIN_GATKQ = 0x24,
};
enum {
	ST_OK = 0x00, ST_KEY_ENOENT = 0x01, ST_KEY_EEXISTS = 0x02,
	ST_E2BIG = 0x03, ST_EINVAL = 0x04, ST_NOT_STORED = 0x05,
	ST_DELTA_BADVAL = 0x06, ST_UNKNOWN_COMMAND = 0x81, ST_ENOMEM = 0x82,
};
#define BIN_REQ 0x80
#define BIN_RES 0x81
#define BIN_HDR 24

struct kv_conn {
	struct kv_store *store;
	struct kv_proto_stats *stats;
	enum conn_state state;
	enum conn_proto proto;
	bool noreply;
	/* A command split across inputs; never more than one command. */
	uint8_t *ibuf;
	size_t ilen, icap;
	/* Output not yet sent: bytes [ohead, olen) of obuf. */
	uint8_t *obuf;
	size_t ohead, olen, ocap;
	/* ST_NREAD: the item being filled and what to do with it. */
	struct kv_item *item;
	char *ritem;
	size_t rlbytes;
	enum kv_op op;
	uint64_t req_cas;
	/* ST_SWALLOW */
	uint64_t sbytes;
	/* The binary request being answered. */
	uint8_t bin_opcode;
	uint32_t bin_opaque; /* network order, echoed */
	uint64_t bin_cas;    /* cas of the reply */
};

static int64_t proto_started;

/* ---- output ---------------------------------------------------------- */

static bool out_grow(struct kv_conn *c, size_t n)
{
	size_t cap;
	uint8_t *b;

	if (c->ohead && c->ohead == c->olen) {
		c->ohead = c->olen = 0;
	}
	if (c->olen + n <= c->ocap)
		return true;
	if (c->ohead) { /* compact before growing */
		memmove(c->obuf, c->obuf + c->ohead, c->olen - c->ohead);
		c->olen -= c->ohead;
		c->ohead = 0;
		if (c->olen + n <= c->ocap)
			return true;
	}
	cap = c->ocap ? c->ocap : 4096;
	while (cap < c->olen + n)
		cap *= 2;
	b = realloc(c->obuf, cap);
	if (!b)
		return false;
	c->obuf = b;
	c->ocap = cap;
	return true;
}

static bool out_append(struct kv_conn *c, const void *p, size_t n)
{
	if (!out_grow(c, n))
		return false;
	memcpy(c->obuf + c->olen, p, n);
	c->olen += n;
	return true;
}

/* memcached's out_string(): a line, unless noreply swallows it. */
static void out_string(struct kv_conn *c, const char *s)
{
	if (c->noreply) {
		c->noreply = false;
		return;
	}
	out_append(c, s, strlen(s));
	out_append(c, "\r\n", 2);
}

static void out_printf(struct kv_conn *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void out_printf(struct kv_conn *c, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > 0)
		out_append(c, buf, (size_t)n < sizeof(buf) ? (size_t)n :
			   sizeof(buf) - 1);
}

static inline size_t out_pending(const struct kv_conn *c)
{
	return c->olen - c->ohead;
}

/* ---- number parsing as memcached's safe_strto*() on one token ------- */

struct tok {
	const char *p;
	size_t n;
};

/* strtoull/strtoll on a token: blanks, sign, digits, then blank or end.
 * *neg says a '-' was seen; the value is the magnitude, and *range says it
 * overflowed 64 bits (ERANGE). */
static bool scan_num(struct tok t, uint64_t *mag, bool *neg, bool *range)
{
	size_t i = 0, digits = 0;
	uint64_t v = 0;

	*neg = *range = false;
	while (i < t.n && isspace((unsigned char)t.p[i]))
		i++;
	if (i < t.n && (t.p[i] == '+' || t.p[i] == '-'))
		*neg = t.p[i++] == '-';
	for (; i < t.n && t.p[i] >= '0' && t.p[i] <= '9'; i++, digits++) {
		unsigned d = (unsigned)(t.p[i] - '0');

		if (v > (UINT64_MAX - d) / 10)
			*range = true;
		v = v * 10 + d;
	}
	if (!digits)
		return false;
	if (i < t.n && !isspace((unsigned char)t.p[i]))
		return false;
	*mag = v;
	return true;
}

static bool safe_strtoull(struct tok t, uint64_t *out)
{
	return kv_parse_u64(t.p, t.n, out);
}

/* safe_strtoul: strtoul, refusing "-N" that looks negative, then the
 * (silent) truncation to 32 bits memcached does. */
static bool safe_strtoul(struct tok t, uint32_t *out)
{
	uint64_t v;

	if (!kv_parse_u64(t.p, t.n, &v))
		return false;
	*out = (uint32_t)v;
	return true;
}

/* safe_strtol: strtol with its range, then truncation to 32 bits. */
static bool safe_strtol(struct tok t, int32_t *out)
{
	uint64_t mag;
	bool neg, range;
	int64_t v;

	if (!scan_num(t, &mag, &neg, &range))
		return false;
	if (range || (!neg && mag > (uint64_t)INT64_MAX) ||
	    (neg && mag > (uint64_t)INT64_MAX + 1))
		return false;
	v = neg ? (int64_t)(0 - mag) : (int64_t)mag;
	*out = (int32_t)(uint32_t)(uint64_t)v;
	return true;
}

static bool tok_eq(struct tok t, const char *s)
{
	size_t n = strlen(s);

	return t.n == n && memcmp(t.p, s, n) == 0;
}

/* ---- text protocol --------------------------------------------------- */

#define MAX_TOKENS 24

/* memcached's tokenize_command(): splits on ' ' into at most 23 tokens;
 * returns their count plus one (its terminal token); *rest is what follows
 * the 23rd token, if anything does. */
static size_t tokenize(const char *s, size_t len, struct tok *t,
		       const char **rest, size_t *rest_len)
{
	size_t n = 0, i = 0;

	*rest = NULL;
	*rest_len = 0;
	while (i < len) {
		size_t j;

		while (i < len && s[i] == ' ')
			i++;
		if (i == len)
			break;
		if (n == MAX_TOKENS - 1) {
			*rest = s + i;
			*rest_len = len - i;
			break;
		}
		for (j = i; j < len && s[j] != ' '; j++)
			;
		t[n].p = s + i;
		t[n].n = j - i;
		n++;
		i = j;
	}
	t[n].p = NULL;
	t[n].n = 0;
	return n + 1;
}

static void set_noreply_maybe(struct kv_conn *c, struct tok *t, size_t nt)
{
	if (nt >= 2 && tok_eq(t[nt - 2], "noreply"))
		c->noreply = true;
}

static void text_get(struct kv_conn *c, struct tok *t, size_t nt,
		     const char *rest, size_t rest_len, bool return_cas,
		     bool touch)
{
	size_t mark = c->olen, k = 1;
	int64_t exptime = 0;
	const char *p;
	size_t n;

	if (touch) {
		int32_t e;

		if (!safe_strtol(t[1], &e)) {
			out_string(c, "CLIENT_ERROR invalid exptime argument");
			return;
		}
		exptime = kv_store_realtime(c->store, e);
		k = 2;
	}
	/* The tokens, then the untokenized rest of a long line. */
	for (;;) {
		struct tok key;

		if (k < nt - 1) {
			key = t[k++];
		} else if (rest && rest_len) {
			while (rest_len && *rest == ' ') {
				rest++;
				rest_len--;
			}
			if (!rest_len)
				break;
			p = memchr(rest, ' ', rest_len);
			n = p ? (size_t)(p - rest) : rest_len;
			key.p = rest;
			key.n = n;
			rest += n;
			rest_len -= n;
		} else {
			break;
		}
		if (key.n > KV_KEY_MAX) {
			c->olen = mark;
			out_string(c, "CLIENT_ERROR bad command line format");
			return;
		}
		struct kv_item *it = kv_store_get(c->store, key.p, key.n, touch,
						  exptime);
		if (!it)
			continue;
		if (out_pending(c) + it->nbytes + 400 > KV_OUT_MAX) {
			kv_item_release(c->store, it);
			c->olen = mark;
			out_string(c, "SERVER_ERROR out of memory writing get "
				      "response");
			return;
		}
		if (return_cas)
			out_printf(c, "VALUE %.*s %" PRIu32 " %" PRIu32
				   " %" PRIu64 "\r\n", (int)it->nkey,
				   kv_item_key(it), it->flags, it->nbytes,
				   it->cas);
		else
			out_printf(c, "VALUE %.*s %" PRIu32 " %" PRIu32 "\r\n",
				   (int)it->nkey, kv_item_key(it), it->flags,
				   it->nbytes);
		out_append(c, kv_item_value(it), (size_t)it->nbytes + 2);
		kv_item_release(c->store, it);
	}
	out_append(c, "END\r\n", 5);
}

static void text_update(struct kv_conn *c, struct tok *t, size_t nt,
			enum kv_op op)
{
	uint32_t flags;
	int32_t exptime, vlen;
	uint64_t req_cas = 0;
	struct kv_item *it;

	set_noreply_maybe(c, t, nt);
	if (t[1].n > KV_KEY_MAX) {
		out_string(c, "CLIENT_ERROR bad command line format");
		return;
	}
	if (!(safe_strtoul(t[2], &flags) && safe_strtol(t[3], &exptime) &&
	      safe_strtol(t[4], &vlen))) {
		out_string(c, "CLIENT_ERROR bad command line format");
		return;
	}
	if (op == KV_CAS && !safe_strtoull(t[5], &req_cas)) {
		out_string(c, "CLIENT_ERROR bad command line format");
		return;
	}
	if (vlen < 0 || vlen > INT_MAX - 2) {
		out_string(c, "CLIENT_ERROR bad command line format");
		return;
	}
	it = kv_item_alloc(c->store, t[1].p, t[1].n, flags,
			   kv_store_realtime(c->store, exptime), (size_t)vlen);
	if (!it) {
		if (errno == E2BIG)
			out_string(c, "SERVER_ERROR object too large for cache");
		else
			out_string(c, "SERVER_ERROR out of memory storing "
				      "object");
		c->state = ST_SWALLOW;
		c->sbytes = (uint64_t)vlen + 2;
		/* A failed SET must not leave the old value readable. */
		if (op == KV_SET)
			kv_store_delete(c->store, t[1].p, t[1].n, 0, false);
		return;
	}
	c->item = it;
	c->ritem = kv_item_value(it);
	c->rlbytes = (size_t)vlen + 2;
	c->op = op;
	c->req_cas = req_cas;
	c->state = ST_NREAD;
}

static void text_complete_nread(struct kv_conn *c)
{
	struct kv_item *it = c->item;
	char *end = kv_item_value(it) + it->nbytes;

	if (end[0] != '\r' || end[1] != '\n') {
		out_string(c, "CLIENT_ERROR bad data chunk");
	} else {
		switch (kv_store_link(c->store, it, c->op, c->req_cas, NULL)) {
		case KV_STORED:
			out_string(c, "STORED");
			break;
		case KV_EXISTS:
			out_string(c, "EXISTS");
			break;
		case KV_NOT_FOUND:
			out_string(c, "NOT_FOUND");
			break;
		default:
			out_string(c, "NOT_STORED");
			break;
		}
	}
	c->item = NULL;
	kv_item_release(c->store, it);
}

static void text_arith(struct kv_conn *c, struct tok *t, size_t nt,
		       bool incr)
{
	uint64_t delta, value, cas = 0;
	char buf[32];

	set_noreply_maybe(c, t, nt);
	if (t[1].n > KV_KEY_MAX) {
		out_string(c, "CLIENT_ERROR bad command line format");
		return;
	}
	if (!safe_strtoull(t[2], &delta)) {
		out_string(c, "CLIENT_ERROR invalid numeric delta argument");
		return;
	}
	switch (kv_store_arith(c->store, t[1].p, t[1].n, incr, delta, &value,
			       &cas)) {
	case KV_OK:
		snprintf(buf, sizeof(buf), "%" PRIu64, value);
		out_string(c, buf);
		break;
	case KV_NON_NUMERIC:
		out_string(c, "CLIENT_ERROR cannot increment or decrement "
			      "non-numeric value");
		break;
	case KV_NOT_FOUND:
		out_string(c, "NOT_FOUND");
		break;
	default:
		out_string(c, "SERVER_ERROR out of memory");
		break;
	}
}

static void text_delete(struct kv_conn *c, struct tok *t, size_t nt)
{
	if (nt > 3) {
		bool hold_is_zero = tok_eq(t[2], "0");
		bool sets_noreply;
		bool valid;

		set_noreply_maybe(c, t, nt);
		sets_noreply = c->noreply;
		valid = (nt == 4 && (hold_is_zero || sets_noreply)) ||
			(nt == 5 && hold_is_zero && sets_noreply);
		if (!valid) {
			out_string(c, "CLIENT_ERROR bad command line format.  "
				      "Usage: delete <key> [noreply]");
			return;
		}
	}
	if (t[1].n > KV_KEY_MAX) {
		out_string(c, "CLIENT_ERROR bad command line format");
		return;
	}
	if (kv_store_delete(c->store, t[1].p, t[1].n, 0, true) == KV_DELETED)
		out_string(c, "DELETED");
	else
		out_string(c, "NOT_FOUND");
}

static void text_touch(struct kv_conn *c, struct tok *t, size_t nt)
{
	struct kv_item *it;
	int32_t e;

	set_noreply_maybe(c, t, nt);
	if (t[1].n > KV_KEY_MAX) {
		out_string(c, "CLIENT_ERROR bad command line format");
		return;
	}
	if (!safe_strtol(t[2], &e)) {
		out_string(c, "CLIENT_ERROR invalid exptime argument");
		return;
	}
	it = kv_store_get(c->store, t[1].p, t[1].n, true,
			  kv_store_realtime(c->store, e));
	out_string(c, it ? "TOUCHED" : "NOT_FOUND");
	kv_item_release(c->store, it);
}

static void text_flush(struct kv_conn *c, struct tok *t, size_t nt)
{
	int32_t delay = 0;

	set_noreply_maybe(c, t, nt);
	if (nt != (c->noreply ? 3u : 2u)) {
		if (!safe_strtol(t[1], &delay)) {
			out_string(c, "CLIENT_ERROR invalid exptime argument");
			return;
		}
	}
	kv_store_flush(c->store, delay);
	out_string(c, "OK");
}

static void text_verbosity(struct kv_conn *c, struct tok *t, size_t nt)
{
	uint32_t level;

	set_noreply_maybe(c, t, nt);
	if (!safe_strtoul(t[1], &level)) {
		out_string(c, "CLIENT_ERROR bad command line format");
		return;
	}
	out_string(c, "OK");
}

/* One "STAT name value" line, or one binary stat packet. */
typedef void (*stat_fn)(struct kv_conn *c, const char *name,
			const char *val);

static void stat_text(struct kv_conn *c, const char *name, const char *val)
{
	out_printf(c, "STAT %s %s\r\n", name, val);
}

static void bin_header(struct kv_conn *c, uint16_t status, uint8_t extlen,
		       uint16_t keylen, uint32_t bodylen);

static void stat_bin(struct kv_conn *c, const char *name, const char *val)
{
	size_t kl = strlen(name), vl = strlen(val);

	bin_header(c, ST_OK, 0, (uint16_t)kl, (uint32_t)(kl + vl));
	out_append(c, name, kl);
	out_append(c, val, vl);
}

static void emit_stats(struct kv_conn *c, stat_fn fn)
{
	struct kv_stats st;
	struct kv_proto_stats ps = { 0 };
	int64_t now = kv_store_now(c->store);
	char v[64];

	kv_store_stats(c->store, &st);
	if (c->stats) {
		ps.curr_connections = __atomic_load_n(
			&c->stats->curr_connections, __ATOMIC_RELAXED);
		ps.total_connections = __atomic_load_n(
			&c->stats->total_connections, __ATOMIC_RELAXED);
		ps.bytes_read = __atomic_load_n(&c->stats->bytes_read,
						__ATOMIC_RELAXED);
		ps.bytes_written = __atomic_load_n(&c->stats->bytes_written,
						   __ATOMIC_RELAXED);
		ps.threads = c->stats->threads;
	}
#define U64(name, x)                                                    \
	do {                                                            \
		snprintf(v, sizeof(v), "%" PRIu64, (uint64_t)(x));      \
		fn(c, name, v);                                         \
	} while (0)
	U64("pid", (uint64_t)getpid());
	U64("uptime", (uint64_t)(now - proto_started));
	U64("time", (uint64_t)now);
	fn(c, "version", KV_VERSION);
	U64("pointer_size", 8 * sizeof(void *));
	U64("curr_connections", ps.curr_connections);
	U64("total_connections", ps.total_connections);
	U64("cmd_get", st.cmd_get);
	U64("cmd_set", st.cmd_set);
	U64("cmd_flush", st.cmd_flush);
	U64("cmd_touch", st.cmd_touch);
	U64("get_hits", st.get_hits);
	U64("get_misses", st.get_misses);
	U64("get_expired", st.get_expired);
	U64("get_flushed", st.get_flushed);
	U64("delete_misses", st.delete_misses);
	U64("delete_hits", st.delete_hits);
	U64("incr_misses", st.incr_misses);
	U64("incr_hits", st.incr_hits);
	U64("decr_misses", st.decr_misses);
	U64("decr_hits", st.decr_hits);
	U64("cas_misses", st.cas_misses);
	U64("cas_hits", st.cas_hits);
	U64("cas_badval", st.cas_badval);
	U64("touch_hits", st.touch_hits);
	U64("touch_misses", st.touch_misses);
	U64("store_too_large", st.store_too_large);
	U64("store_no_memory", st.store_no_memory);
	U64("bytes_read", ps.bytes_read);
	U64("bytes_written", ps.bytes_written);
	U64("limit_maxbytes", st.limit_maxbytes);
	U64("threads", ps.threads);
	U64("item_size_max", st.item_size_max);
	U64("bytes", st.bytes);
	U64("curr_items", st.curr_items);
	U64("total_items", st.total_items);
	U64("evictions", st.evictions);
	U64("reclaimed", st.reclaimed);
#undef U64
}

static void text_stats(struct kv_conn *c, struct tok *t, size_t nt)
{
	if (nt == 2) {
		emit_stats(c, stat_text);
		out_append(c, "END\r\n", 5);
	} else if (tok_eq(t[1], "reset")) {
		out_string(c, "RESET");
	} else if (tok_eq(t[1], "items") || tok_eq(t[1], "slabs") ||
		   tok_eq(t[1], "sizes") || tok_eq(t[1], "conns") ||
		   tok_eq(t[1], "settings")) {
		out_append(c, "END\r\n", 5); /* nothing per class here */
	} else {
		out_string(c, "ERROR");
	}
}

/* memcached's process_command_ascii() for the commands ebb-kv has. */
static void text_command(struct kv_conn *c, const char *line, size_t len)
{
	struct tok t[MAX_TOKENS + 1];
	const char *rest, *nul;
	size_t nt, rest_len;
	struct tok cmd;

	/* Its tokenizer works on a C string: a NUL ends the line. */
	nul = memchr(line, '\0', len);
	if (nul)
		len = (size_t)(nul - line);
	nt = tokenize(line, len, t, &rest, &rest_len);
	if (nt < 2 || t[0].n < 2) {
		out_string(c, "ERROR");
		return;
	}
	cmd = t[0];
#define WANT(lo, hi)                                                    \
	do {                                                            \
		if (nt < (lo) || nt > (hi)) {                           \
			out_string(c, "ERROR");                         \
			return;                                         \
		}                                                       \
	} while (0)
#define WANT_OR(a, b)                                                   \
	do {                                                            \
		if (nt != (a) && nt != (b)) {                           \
			out_string(c, "ERROR");                         \
			return;                                         \
		}                                                       \
	} while (0)
	if (cmd.p[0] == 'g') {
		WANT(3, MAX_TOKENS);
		if (tok_eq(cmd, "get"))
			text_get(c, t, nt, rest, rest_len, false, false);
		else if (tok_eq(cmd, "gets"))
			text_get(c, t, nt, rest, rest_len, true, false);
		else if (tok_eq(cmd, "gat"))
			text_get(c, t, nt, rest, rest_len, false, true);
		else if (tok_eq(cmd, "gats"))
			text_get(c, t, nt, rest, rest_len, true, true);
		else
			out_string(c, "ERROR");
	} else if (tok_eq(cmd, "set")) {
		WANT_OR(6, 7);
		text_update(c, t, nt, KV_SET);
	} else if (tok_eq(cmd, "add")) {
		WANT_OR(6, 7);
		text_update(c, t, nt, KV_ADD);
	} else if (tok_eq(cmd, "append")) {
		WANT_OR(6, 7);
		text_update(c, t, nt, KV_APPEND);
	} else if (tok_eq(cmd, "replace")) {
		WANT_OR(6, 7);
		text_update(c, t, nt, KV_REPLACE);
	} else if (tok_eq(cmd, "prepend")) {
		WANT_OR(6, 7);
		text_update(c, t, nt, KV_PREPEND);
	} else if (tok_eq(cmd, "cas")) {
		WANT_OR(7, 8);
		text_update(c, t, nt, KV_CAS);
	} else if (tok_eq(cmd, "stats")) {
		text_stats(c, t, nt);
	} else if (tok_eq(cmd, "incr")) {
		WANT_OR(4, 5);
		text_arith(c, t, nt, true);
	} else if (tok_eq(cmd, "decr")) {
		WANT_OR(4, 5);
		text_arith(c, t, nt, false);
	} else if (tok_eq(cmd, "delete")) {
		WANT(3, 5);
		text_delete(c, t, nt);
	} else if (tok_eq(cmd, "touch")) {
		WANT_OR(4, 5);
		text_touch(c, t, nt);
	} else if (tok_eq(cmd, "bget")) {
		WANT(3, MAX_TOKENS);
		text_get(c, t, nt, rest, rest_len, false, false);
	} else if (tok_eq(cmd, "flush_all")) {
		WANT(2, 4);
		text_flush(c, t, nt);
	} else if (tok_eq(cmd, "version")) {
		out_string(c, "VERSION " KV_VERSION);
	} else if (tok_eq(cmd, "quit")) {
		c->state = ST_CLOSE;
	} else if (tok_eq(cmd, "verbosity")) {
		WANT_OR(3, 4);
		text_verbosity(c, t, nt);
	} else if (tok_eq(cmd, "shutdown")) {
		out_string(c, "ERROR: shutdown not enabled");
	} else if (!strchr("gsacidt", cmd.p[0]) && t[nt - 2].n >= 5 &&
		   memcmp(t[nt - 2].p, "HTTP/", 5) == 0) {
		c->state = ST_CLOSE; /* not a memcached client */
	} else {
		out_string(c, "ERROR");
	}
#undef WANT
#undef WANT_OR
}

/* A complete line, without its '\n'. */
static void text_line(struct kv_conn *c, const char *line, size_t len)
{
	if (len > 1 && line[len - 1] == '\r')
		len--;
	text_command(c, line, len);
}

/* Whether a partial line of n bytes may still grow, memcached's rule:
 * past 2048 bytes only a get/gets line (a big multiget) may. */
static size_t text_line_limit(const uint8_t *p, size_t n)
{
	size_t i = 0;

	if (n <= KV_LINE_MAX)
		return KV_GET_LINE_MAX;
	while (i < n && p[i] == ' ')
		i++;
	if (i > 100 || ((n - i < 4 || memcmp(p + i, "get ", 4) != 0) &&
			(n - i < 5 || memcmp(p + i, "gets ", 5) != 0)))
		return 0;
	return KV_GET_LINE_MAX;
}

static bool ibuf_append(struct kv_conn *c, const uint8_t *p, size_t n)
{
	if (c->ilen + n > c->icap) {
		size_t cap = c->icap ? c->icap : 512;
		uint8_t *b;

		while (cap < c->ilen + n)
			cap *= 2;
		b = realloc(c->ibuf, cap);
		if (!b)
			return false;
		c->ibuf = b;
		c->icap = cap;
	}
	memcpy(c->ibuf + c->ilen, p, n);
	c->ilen += n;
	return true;
}

/* Done with a buffered command: give back a big multiget's buffer. */
static void ibuf_reset(struct kv_conn *c)
{
	c->ilen = 0;
	if (c->icap > 4096) {
		free(c->ibuf);
		c->ibuf = NULL;
		c->icap = 0;
	}
}

static size_t text_input(struct kv_conn *c, const uint8_t *p, size_t n)
{
	const uint8_t *nl = memchr(p, '\n', n);
	size_t take = nl ? (size_t)(nl - p) + 1 : n;

	if (!c->ilen && nl) { /* the common case: parse in place */
		text_line(c, (const char *)p, take - 1);
		return take;
	}
	if (c->ilen + take > KV_GET_LINE_MAX || !ibuf_append(c, p, take)) {
		c->state = ST_CLOSE;
		return n;
	}
	if (nl) {
		text_line(c, (const char *)c->ibuf, c->ilen - 1);
		ibuf_reset(c);
	} else if (c->ilen > text_line_limit(c->ibuf, c->ilen)) {
		c->state = ST_CLOSE;
	}
	return take;
}

/* ---- binary protocol ------------------------------------------------- */

static inline uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t rd64(const uint8_t *p)
{
	return (uint64_t)rd32(p) << 32 | rd32(p + 4);
}

static inline void wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void wr32(uint8_t *p, uint32_t v)
{
	wr16(p, (uint16_t)(v >> 16));
	wr16(p + 2, (uint16_t)v);
}

static inline void wr64(uint8_t *p, uint64_t v)
{
	wr32(p, (uint32_t)(v >> 32));
	wr32(p + 4, (uint32_t)v);
}

static void bin_header(struct kv_conn *c, uint16_t status, uint8_t extlen,
		       uint16_t keylen, uint32_t bodylen)
{
	uint8_t h[BIN_HDR];

	h[0] = BIN_RES;
	h[1] = c->bin_opcode;
	wr16(h + 2, keylen);
	h[4] = extlen;
	h[5] = 0;
	wr16(h + 6, status);
	wr32(h + 8, bodylen);
	memcpy(h + 12, &c->bin_opaque, 4);
	wr64(h + 16, c->bin_cas);
	out_append(c, h, sizeof(h));
}

static void bin_error(struct kv_conn *c, uint16_t status, uint64_t swallow)
{
	const char *msg;

	switch (status) {
	case ST_ENOMEM: msg = "Out of memory"; break;
	case ST_UNKNOWN_COMMAND: msg = "Unknown command"; break;
	case ST_KEY_ENOENT: msg = "Not found"; break;
	case ST_EINVAL: msg = "Invalid arguments"; break;
	case ST_KEY_EEXISTS: msg = "Data exists for key."; break;
	case ST_E2BIG: msg = "Too large."; break;
	case ST_DELTA_BADVAL:
		msg = "Non-numeric server-side value for incr or decr";
		break;
	default: msg = "Not stored."; break;
	}
	bin_header(c, status, 0, 0, (uint32_t)strlen(msg));
	out_append(c, msg, strlen(msg));
	if (swallow) {
		c->state = ST_SWALLOW;
		c->sbytes = swallow;
	}
}

/* A success reply; quiet commands send none (but GET/GETK hits do). */
static void bin_response(struct kv_conn *c, bool always, const void *body,
			 uint8_t extlen, uint32_t len)
{
	if (c->noreply && !always)
		return;
	bin_header(c, ST_OK, extlen, 0, len);
	if (len)
		out_append(c, body, len);
}

static void bin_get(struct kv_conn *c, uint8_t cmd, const uint8_t *ext,
		    const char *key, uint16_t nkey)
{
	bool touch = cmd == BIN_TOUCH || cmd == BIN_GAT || cmd == BIN_GATK;
	bool ret_key = cmd == BIN_GETK || cmd == BIN_GATK;
	bool ret_val = cmd != BIN_TOUCH;
	int64_t exptime = 0;
	struct kv_item *it;
	uint8_t flags[4];

	if (touch)
		exptime = kv_store_realtime(c->store, rd32(ext));
	it = kv_store_get(c->store, key, nkey, touch, exptime);
	if (!it) {
		if (c->noreply)
			return;
		if (ret_key) {
			bin_header(c, ST_KEY_ENOENT, 0, nkey, nkey);
			out_append(c, key, nkey);
		} else {
			bin_error(c, ST_KEY_ENOENT, 0);
		}
		return;
	}
	c->bin_cas = it->cas;
	bin_header(c, ST_OK, 4, ret_key ? nkey : 0,
		   4 + (ret_key ? nkey : 0) + (ret_val ? it->nbytes : 0));
	wr32(flags, it->flags);
	out_append(c, flags, 4);
	if (ret_key)
		out_append(c, key, nkey);
	if (ret_val)
		out_append(c, kv_item_value(it), it->nbytes);
	kv_item_release(c->store, it);
}

static void bin_update(struct kv_conn *c, uint8_t cmd, const uint8_t *ext,
		       const char *key, uint16_t nkey, uint32_t vlen)
{
	uint32_t flags = 0;
	int64_t exptime = 0;
	struct kv_item *it;

	if (cmd == BIN_SET || cmd == BIN_ADD || cmd == BIN_REPLACE) {
		flags = rd32(ext);
		exptime = kv_store_realtime(c->store, rd32(ext + 4));
	}
	it = kv_item_alloc(c->store, key, nkey, flags, exptime, vlen);
	if (!it) {
		bin_error(c, errno == E2BIG ? ST_E2BIG : ST_ENOMEM, vlen);
		if (!vlen)
			c->state = ST_CMD;
		if (cmd == BIN_SET)
			kv_store_delete(c->store, key, nkey, 0, false);
		return;
	}
	switch (cmd) {
	case BIN_ADD: c->op = KV_ADD; break;
	case BIN_REPLACE: c->op = KV_REPLACE; break;
	case BIN_APPEND: c->op = KV_APPEND; break;
	case BIN_PREPEND: c->op = KV_PREPEND; break;
	default: c->op = KV_SET; break;
	}
	c->req_cas = c->bin_cas;
	if (c->req_cas && c->op != KV_APPEND && c->op != KV_PREPEND)
		c->op = KV_CAS;
	c->bin_cas = 0;
	c->item = it;
	c->ritem = kv_item_value(it);
	c->rlbytes = vlen;
	c->state = ST_NREAD;
}

static void bin_complete_nread(struct kv_conn *c)
{
	struct kv_item *it = c->item;
	enum kv_status r;
	uint64_t cas = 0;

	memcpy(kv_item_value(it) + it->nbytes, "\r\n", 2);
	r = kv_store_link(c->store, it, c->op, c->req_cas, &cas);
	switch (r) {
	case KV_STORED:
		c->bin_cas = cas;
		bin_response(c, false, NULL, 0, 0);
		break;
	case KV_EXISTS:
		bin_error(c, ST_KEY_EEXISTS, 0);
		break;
	case KV_NOT_FOUND:
		bin_error(c, ST_KEY_ENOENT, 0);
		break;
	default:
		bin_error(c, c->op == KV_ADD ? ST_KEY_EEXISTS :
			     c->op == KV_REPLACE ? ST_KEY_ENOENT :
			     ST_NOT_STORED, 0);
		break;
	}
	c->item = NULL;
	kv_item_release(c->store, it);
}

static void bin_arith(struct kv_conn *c, bool incr, const uint8_t *ext,
		      const char *key, uint16_t nkey)
{
	uint64_t delta = rd64(ext), initial = rd64(ext + 8);
	uint32_t expiration = rd32(ext + 16);
	uint64_t value, cas = c->bin_cas;
	uint8_t body[8];
	struct kv_item *it;
	char buf[24];
	int n;

	switch (kv_store_arith(c->store, key, nkey, incr, delta, &value,
			       &cas)) {
	case KV_OK:
		c->bin_cas = cas;
		wr64(body, value);
		bin_response(c, false, body, 0, 8);
		return;
	case KV_NON_NUMERIC:
		bin_error(c, ST_DELTA_BADVAL, 0);
		return;
	case KV_EXISTS:
		bin_error(c, ST_KEY_EEXISTS, 0);
		return;
	case KV_NOT_FOUND:
		break;
	default:
		bin_error(c, ST_ENOMEM, 0);
		return;
	}
	if (expiration == 0xffffffff) {
		bin_error(c, ST_KEY_ENOENT, 0);
		return;
	}
	n = snprintf(buf, sizeof(buf), "%" PRIu64, initial);
	it = kv_item_alloc(c->store, key, nkey, 0,
			   kv_store_realtime(c->store, expiration), (size_t)n);
	if (!it) {
		bin_error(c, ST_ENOMEM, 0);
		return;
	}
	memcpy(kv_item_value(it), buf, (size_t)n);
	if (kv_store_link(c->store, it, KV_ADD, 0, &cas) == KV_STORED) {
		c->bin_cas = cas;
		wr64(body, initial);
		bin_response(c, false, body, 0, 8);
	} else {
		bin_error(c, ST_NOT_STORED, 0);
	}
	kv_item_release(c->store, it);
}

static void bin_stat(struct kv_conn *c, const char *key, uint16_t nkey)
{
	if (nkey == 0) {
		emit_stats(c, stat_bin);
	} else if (nkey != 5 || memcmp(key, "reset", 5) != 0) {
		bin_error(c, ST_KEY_ENOENT, 0);
		return;
	}
	bin_header(c, ST_OK, 0, 0, 0); /* the terminating empty stat */
}

/* Answers a protocol error and closes, handle_binary_protocol_error(). */
static void bin_protocol_error(struct kv_conn *c)
{
	bin_error(c, ST_EINVAL, 0);
	c->state = ST_CLOSE;
}

/* memcached's dispatch_bin_command(): hdr holds header, extras, key. */
static void bin_command(struct kv_conn *c, const uint8_t *hdr)
{
	uint8_t cmd = hdr[1], extlen = hdr[4];
	uint16_t keylen = rd16(hdr + 2);
	uint32_t bodylen = rd32(hdr + 8);
	const uint8_t *ext = hdr + BIN_HDR;
	const char *key = (const char *)ext + extlen;
	uint32_t rest;
	bool bad = false;

	c->bin_opcode = cmd;
	memcpy(&c->bin_opaque, hdr + 12, 4);
	c->bin_cas = rd64(hdr + 16);
	if (keylen > bodylen || (uint32_t)keylen + extlen > bodylen) {
		c->bin_cas = 0;
		bin_error(c, ST_UNKNOWN_COMMAND, 0);
		c->state = ST_CLOSE;
		return;
	}
	rest = bodylen - keylen - extlen;
	c->noreply = true;
	switch (cmd) {
	case BIN_SETQ: cmd = BIN_SET; break;
	case BIN_ADDQ: cmd = BIN_ADD; break;
	case BIN_REPLACEQ: cmd = BIN_REPLACE; break;
	case BIN_DELETEQ: cmd = BIN_DELETE; break;
	case BIN_INCRQ: cmd = BIN_INCR; break;
	case BIN_DECRQ: cmd = BIN_DECR; break;
	case BIN_QUITQ: cmd = BIN_QUIT; break;
	case BIN_FLUSHQ: cmd = BIN_FLUSH; break;
	case BIN_APPENDQ: cmd = BIN_APPEND; break;
	case BIN_PREPENDQ: cmd = BIN_PREPEND; break;
	case BIN_GETQ: cmd = BIN_GET; break;
	case BIN_GETKQ: cmd = BIN_GETK; break;
	case BIN_GATQ: cmd = BIN_GAT; break;
	case BIN_GATKQ: cmd = BIN_GATK; break;
	default: c->noreply = false; break;
	}
	if (keylen > KV_KEY_MAX) {
		c->bin_cas = 0;
		bin_protocol_error(c);
		return;
	}
	/* Replies carry a cas only where set below. */
	uint64_t req_cas = c->bin_cas;

	c->bin_cas = 0;
	switch (cmd) {
	case BIN_VERSION:
		if (extlen || keylen || bodylen)
			bad = true;
		else
			bin_response(c, false, KV_VERSION, 0,
				     (uint32_t)strlen(KV_VERSION));
		break;
	case BIN_FLUSH:
		if (keylen || bodylen != extlen || (extlen != 0 && extlen != 4)) {
			bad = true;
		} else {
			kv_store_flush(c->store, extlen ? rd32(ext) : 0);
			bin_response(c, false, NULL, 0, 0);
		}
		break;
	case BIN_NOOP:
		if (extlen || keylen || bodylen)
			bad = true;
		else
			bin_response(c, false, NULL, 0, 0);
		break;
	case BIN_SET:
	case BIN_ADD:
	case BIN_REPLACE:
		if (extlen != 8 || !keylen || bodylen < (uint32_t)keylen + 8) {
			bad = true;
		} else {
			c->bin_cas = req_cas;
			bin_update(c, cmd, ext, key, keylen, rest);
		}
		break;
	case BIN_GET:
	case BIN_GETK:
		if (extlen || bodylen != keylen || !keylen)
			bad = true;
		else
			bin_get(c, cmd, ext, key, keylen);
		break;
	case BIN_DELETE:
		if (!keylen || extlen || bodylen != keylen) {
			bad = true;
			break;
		}
		switch (kv_store_delete(c->store, key, keylen, req_cas, true)) {
		case KV_DELETED:
			bin_response(c, false, NULL, 0, 0);
			break;
		case KV_EXISTS:
			bin_error(c, ST_KEY_EEXISTS, 0);
			break;
		default:
			bin_error(c, ST_KEY_ENOENT, 0);
			break;
		}
		break;
	case BIN_INCR:
	case BIN_DECR:
		if (!keylen || extlen != 20 || bodylen != (uint32_t)keylen + 20) {
			bad = true;
		} else {
			c->bin_cas = req_cas;
			bin_arith(c, cmd == BIN_INCR, ext, key, keylen);
		}
		break;
	case BIN_APPEND:
	case BIN_PREPEND:
		if (!keylen || extlen) {
			bad = true;
		} else {
			c->bin_cas = req_cas;
			bin_update(c, cmd, ext, key, keylen, rest);
		}
		break;
	case BIN_STAT:
		if (extlen)
			bad = true;
		else
			bin_stat(c, key, keylen);
		break;
	case BIN_QUIT:
		if (keylen || extlen || bodylen) {
			bad = true;
		} else {
			bin_response(c, false, NULL, 0, 0);
			c->state = ST_CLOSE;
		}
		break;
	case BIN_TOUCH:
	case BIN_GAT:
	case BIN_GATK:
		if (extlen != 4 || !keylen)
			bad = true;
		else
			bin_get(c, cmd, ext, key, keylen);
		break;
	default:
		/* memcached swallows bodylen here, which eats the next
		 * request's first bytes when extras or a key came; only the
		 * rest of this body is swallowed. */
		bin_error(c, ST_UNKNOWN_COMMAND, rest);
		break;
	}
	if (bad)
		bin_protocol_error(c);
}

/* Bytes of the request head (header, extras, key) given what is known. */
static size_t bin_need(const uint8_t *p, size_t n)
{
	if (n < BIN_HDR)
		return BIN_HDR;
	return BIN_HDR + p[4] + rd16(p + 2);
}

static size_t bin_input(struct kv_conn *c, const uint8_t *p, size_t n)
{
	size_t take = 0;

	if (!c->ilen && n >= BIN_HDR && p[0] == BIN_REQ &&
	    n >= bin_need(p, n)) { /* the common case: in place */
		size_t need = bin_need(p, n);

		bin_command(c, p);
		return need;
	}
	while (take < n) {
		size_t need = bin_need(c->ibuf, c->ilen);
		size_t k = need - c->ilen < n - take ? need - c->ilen :
						      n - take;

		if (!ibuf_append(c, p + take, k)) {
			c->state = ST_CLOSE;
			return n;
		}
		take += k;
		if (c->ilen < BIN_HDR)
			continue;
		if (c->ibuf[0] != BIN_REQ) {
			c->state = ST_CLOSE; /* memcached closes silently */
			return n;
		}
		if (c->ilen == bin_need(c->ibuf, c->ilen)) {
			bin_command(c, c->ibuf);
			ibuf_reset(c);
			return take;
		}
	}
	return take;
}

/* ---- the connection -------------------------------------------------- */

static void complete_nread(struct kv_conn *c)
{
	c->state = ST_CMD;
	if (c->proto == PROTO_BIN)
		bin_complete_nread(c);
	else
		text_complete_nread(c);
}

int kv_conn_input(struct kv_conn *c, const uint8_t *data, size_t len,
		  size_t *consumed)
{
	size_t off = 0, n;

	while (c->state != ST_CLOSE && off < len &&
	       out_pending(c) <= KV_OUT_HIGH) {
		switch (c->state) {
		case ST_NREAD:
			n = len - off < c->rlbytes ? len - off : c->rlbytes;
			memcpy(c->ritem, data + off, n);
			c->ritem += n;
			c->rlbytes -= n;
			off += n;
			if (!c->rlbytes)
				complete_nread(c);
			break;
		case ST_SWALLOW:
			n = len - off < c->sbytes ? len - off :
						    (size_t)c->sbytes;
			c->sbytes -= n;
			off += n;
			if (!c->sbytes)
				c->state = ST_CMD;
			break;
		default:
			if (c->proto == PROTO_UNKNOWN)
				c->proto = data[off] == BIN_REQ ? PROTO_BIN :
								 PROTO_TEXT;
			if (!c->ilen)
				c->noreply = false;
			if (c->proto == PROTO_BIN)
				off += bin_input(c, data + off, len - off);
			else
				off += text_input(c, data + off, len - off);
			break;
		}
	}
	if (c->state == ST_CLOSE)
		off = len; /* the rest is ignored */
	if (c->stats)
		__atomic_add_fetch(&c->stats->bytes_read, off,
				   __ATOMIC_RELAXED);
	*consumed = off;
	return c->state == ST_CLOSE ? KV_CONN_CLOSE : KV_CONN_OPEN;
}

const uint8_t *kv_conn_output(struct kv_conn *c, size_t *len)
{
	*len = out_pending(c);
	return *len ? c->obuf + c->ohead : NULL;
}

void kv_conn_output_consume(struct kv_conn *c, size_t n)
{
	if (n > out_pending(c))
		n = out_pending(c);
	c->ohead += n;
	if (c->stats)
		__atomic_add_fetch(&c->stats->bytes_written, n,
				   __ATOMIC_RELAXED);
	if (c->ohead == c->olen) {
		c->ohead = c->olen = 0;
		/* Give back what one big reply made us grow to. */
		if (c->ocap > (64u << 10)) {
			free(c->obuf);
			c->obuf = NULL;
			c->ocap = 0;
		}
	}
}

size_t kv_conn_footprint(const struct kv_conn *c)
{
	return sizeof(*c) + c->icap + c->ocap;
}

__attribute__((cold)) struct kv_conn *
kv_conn_create(struct kv_store *s, struct kv_proto_stats *stats)
{
	struct kv_conn *c = calloc(1, sizeof(*c));

	if (!c) {
		errno = ENOMEM;
		return NULL;
	}
	c->store = s;
	c->stats = stats;
	c->state = ST_CMD;
	if (!__atomic_load_n(&proto_started, __ATOMIC_RELAXED))
		__atomic_store_n(&proto_started, kv_store_now(s),
				 __ATOMIC_RELAXED);
	if (stats) {
		__atomic_add_fetch(&stats->curr_connections, 1,
				   __ATOMIC_RELAXED);
		__atomic_add_fetch(&stats->total_connections, 1,
				   __ATOMIC_RELAXED);
	}
	return c;
}

__attribute__((cold)) void kv_conn_destroy(struct kv_conn *c)
{
	if (!c)
		return;
	if (c->stats)
		__atomic_sub_fetch(&c->stats->curr_connections, 1,
				   __ATOMIC_RELAXED);
	kv_item_release(c->store, c->item);
	free(c->ibuf);
	free(c->obuf);
	free(c);
}
