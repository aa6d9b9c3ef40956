/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of ebb-kv's store and memcached protocol engine (no network,
 * no DPDK): every command and its errors, split input, expiry on a moved
 * clock, LRU eviction, cas races, incr/decr edges, the binary protocol, a
 * fuzz loop with bounded memory and a threaded stress of the store. */
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>

/* The test list in test/meson.build builds one source per test; the
 * engine is app code, not part of libebbrt, so it is compiled in here. */
/* White box: the engine's own helpers (binary header layout, byte
 * order) build the binary requests. */
#include "../apps/kv/proto.c"
#include "../apps/kv/store.c"

#define CHECK(cond, ...)                                                   \
	do {                                                               \
		if (!(cond))                                               \
			cr_assert_fail(__VA_ARGS__);                       \
	} while (0)

static int64_t fake_now = 1700000000;

static int64_t fake_clock(void *arg)
{
	(void)arg;
	return __atomic_load_n(&fake_now, __ATOMIC_RELAXED);
}

struct h {
	struct kv_store *s;
	struct kv_conn *c;
	char *out;
	size_t olen, ocap;
	bool closed;
};

static void h_init(struct h *h, size_t mem, size_t item_max,
		   unsigned stripes)
{
	struct kv_store_config cfg = {
		.mem_limit = mem,
		.item_size_max = item_max,
		.stripes = stripes,
		.clock = fake_clock,
	};

	memset(h, 0, sizeof(*h));
	h->s = kv_store_create(&cfg);
	cr_assert_not_null(h->s);
	h->c = kv_conn_create(h->s, NULL);
	cr_assert_not_null(h->c);
}

static void h_fini(struct h *h)
{
	kv_conn_destroy(h->c);
	kv_store_destroy(h->s);
	free(h->out);
}

/* A fresh connection on the same store. */
static void h_reconnect(struct h *h)
{
	kv_conn_destroy(h->c);
	h->c = kv_conn_create(h->s, NULL);
	h->closed = false;
	h->olen = 0;
}

static void h_drain(struct h *h)
{
	const uint8_t *p;
	size_t n;

	while ((p = kv_conn_output(h->c, &n))) {
		if (h->olen + n + 1 > h->ocap) {
			h->ocap = (h->olen + n + 1) * 2;
			h->out = realloc(h->out, h->ocap);
		}
		memcpy(h->out + h->olen, p, n);
		h->olen += n;
		h->out[h->olen] = '\0';
		kv_conn_output_consume(h->c, n);
	}
}

/* Feeds in chunks of at most chunk bytes, draining as a socket would. */
static void h_feed_split(struct h *h, const void *data, size_t len,
			 size_t chunk)
{
	const uint8_t *p = data;

	while (len && !h->closed) {
		size_t n = len < chunk ? len : chunk, used;

		while (n && !h->closed) {
			if (kv_conn_input(h->c, p, n, &used) == KV_CONN_CLOSE)
				h->closed = true;
			h_drain(h);
			p += used;
			n -= used;
			len -= used;
		}
	}
	h_drain(h);
}

static void h_feed(struct h *h, const void *data, size_t len)
{
	h_feed_split(h, data, len, SIZE_MAX);
}

/* Sends a request and checks the whole reply. */
static void h_expect(struct h *h, const char *req, const char *want)
{
	h->olen = 0;
	if (h->out)
		h->out[0] = '\0';
	h_feed(h, req, strlen(req));
	cr_assert(h->olen == strlen(want) &&
			  (!h->olen || memcmp(h->out, want, h->olen) == 0),
		  "request %s\nwant %s\ngot  %.*s", req, want, (int)h->olen,
		  h->out ? h->out : "");
}

Test(kv, text_storage_commands)
{
	struct h h;

	h_init(&h, 0, 0, 0);
	h_expect(&h, "set a 5 0 3\r\nabc\r\n", "STORED\r\n");
	h_expect(&h, "get a\r\n", "VALUE a 5 3\r\nabc\r\nEND\r\n");
	h_expect(&h, "get a b a\r\n",
		 "VALUE a 5 3\r\nabc\r\nVALUE a 5 3\r\nabc\r\nEND\r\n");
	h_expect(&h, "add a 0 0 1\r\nx\r\n", "NOT_STORED\r\n");
	h_expect(&h, "add b 0 0 1\r\nx\r\n", "STORED\r\n");
	h_expect(&h, "replace c 0 0 1\r\ny\r\n", "NOT_STORED\r\n");
	h_expect(&h, "replace b 7 0 1\r\ny\r\n", "STORED\r\n");
	h_expect(&h, "get b\r\n", "VALUE b 7 1\r\ny\r\nEND\r\n");
	h_expect(&h, "append a 9 0 2\r\nde\r\n", "STORED\r\n");
	h_expect(&h, "prepend a 9 0 2\r\nxy\r\n", "STORED\r\n");
	h_expect(&h, "get a\r\n", "VALUE a 5 7\r\nxyabcde\r\nEND\r\n");
	h_expect(&h, "append zz 0 0 1\r\nq\r\n", "NOT_STORED\r\n");
	h_expect(&h, "prepend zz 0 0 1\r\nq\r\n", "NOT_STORED\r\n");
	h_expect(&h, "set e 0 0 0\r\n\r\n", "STORED\r\n");
	h_expect(&h, "get e\r\n", "VALUE e 0 0\r\n\r\nEND\r\n");
	h_expect(&h, "set big 4294967295 0 1\r\nz\r\n", "STORED\r\n");
	h_expect(&h, "get big\r\n", "VALUE big 4294967295 1\r\nz\r\nEND\r\n");
	/* noreply: silence, even for failures */
	h_expect(&h, "set n 0 0 1 noreply\r\n1\r\n", "");
	h_expect(&h, "add n 0 0 1 noreply\r\n1\r\n", "");
	h_expect(&h, "get n\r\n", "VALUE n 0 1\r\n1\r\nEND\r\n");
	h_expect(&h, "delete n noreply\r\n", "");
	h_expect(&h, "delete n\r\n", "NOT_FOUND\r\n");
	h_expect(&h, "delete a\r\n", "DELETED\r\n");
	h_expect(&h, "delete b 0\r\n", "DELETED\r\n");
	h_expect(&h, "delete b 5\r\n", "CLIENT_ERROR bad command line format."
		 "  Usage: delete <key> [noreply]\r\n");
	h_expect(&h, "get a\r\n", "END\r\n");
	h_expect(&h, "version\r\n", "VERSION " KV_VERSION "\r\n");
	h_expect(&h, "verbosity 1\r\n", "OK\r\n");
	h_expect(&h, "verbosity 1 noreply\r\n", "");
	h_expect(&h, "verbosity x\r\n",
		 "CLIENT_ERROR bad command line format\r\n");
	h_expect(&h, "flush_all\r\n", "OK\r\n");
	h_expect(&h, "get e\r\n", "END\r\n");
	h_expect(&h, "flush_all noreply\r\n", "");
	h_expect(&h, "flush_all x\r\n",
		 "CLIENT_ERROR invalid exptime argument\r\n");
	h_expect(&h, "set k 0 0 1\nv\r\n", "STORED\r\n"); /* bare \n line */
	h_expect(&h, "shutdown\r\n", "ERROR: shutdown not enabled\r\n");
	h_fini(&h);
}

Test(kv, text_stats_and_quit)
{
	struct h h;
	struct kv_stats st;

	h_init(&h, 0, 0, 0);
	h_expect(&h, "set a 0 0 1\r\n1\r\n", "STORED\r\n");
	h_expect(&h, "get a b\r\n", "VALUE a 0 1\r\n1\r\nEND\r\n");
	h.olen = 0;
	h_feed(&h, "stats\r\n", 7);
	cr_assert(strncmp(h.out, "STAT pid ", 9) == 0, "%s", h.out);
	cr_assert(strstr(h.out, "STAT get_hits 1\r\n"), "%s", h.out);
	cr_assert(strstr(h.out, "STAT get_misses 1\r\n"), "%s", h.out);
	cr_assert(strstr(h.out, "STAT curr_items 1\r\n"), "%s", h.out);
	cr_assert(strstr(h.out, "STAT cmd_set 1\r\n"), "%s", h.out);
	cr_assert(h.olen > 5 && !strcmp(h.out + h.olen - 5, "END\r\n"));
	kv_store_stats(h.s, &st);
	cr_assert_eq(st.cmd_get, 2);
	h_expect(&h, "stats reset\r\n", "RESET\r\n");
	h_expect(&h, "stats nonsense\r\n", "ERROR\r\n");
	h_expect(&h, "quit\r\nget a\r\n", "");
	cr_assert(h.closed);
	h_fini(&h);
}

Test(kv, text_bad_input)
{
	struct h h;
	char line[4096], key[300];

	h_init(&h, 0, 0, 0);
	h_expect(&h, "bogus\r\n", "ERROR\r\n");
	h_expect(&h, "\r\n", "ERROR\r\n");
	h_expect(&h, "x\r\n", "ERROR\r\n");
	h_expect(&h, "get\r\n", "ERROR\r\n");
	h_expect(&h, "set a 0 0\r\n", "ERROR\r\n");
	h_expect(&h, "incr a\r\n", "ERROR\r\n");
	memset(key, 'k', 251);
	key[251] = '\0';
	snprintf(line, sizeof(line), "set %s 0 0 1\r\nx\r\n", key);
	/* The value line then reads as a command, as in memcached. */
	h_expect(&h, line, "CLIENT_ERROR bad command line format\r\n"
			   "ERROR\r\n");
	snprintf(line, sizeof(line), "get a %s b\r\n", key);
	h_expect(&h, line, "CLIENT_ERROR bad command line format\r\n");
	snprintf(line, sizeof(line), "incr %s 1\r\n", key);
	h_expect(&h, line, "CLIENT_ERROR bad command line format\r\n");
	snprintf(line, sizeof(line), "touch %s 1\r\n", key);
	h_expect(&h, line, "CLIENT_ERROR bad command line format\r\n");
	snprintf(line, sizeof(line), "delete %s\r\n", key);
	h_expect(&h, line, "CLIENT_ERROR bad command line format\r\n");
	key[250] = '\0'; /* 250 is fine */
	snprintf(line, sizeof(line), "set %s 0 0 1\r\nx\r\n", key);
	h_expect(&h, line, "STORED\r\n");
	h_expect(&h, "set a x 0 1\r\n", "CLIENT_ERROR bad command line format\r\n");
	h_expect(&h, "set a 0 0 -1\r\n",
		 "CLIENT_ERROR bad command line format\r\n");
	h_expect(&h, "set a -1 0 1\r\nx\r\n",
		 "CLIENT_ERROR bad command line format\r\nERROR\r\n");
	h_expect(&h, "set a 0 0 1x\r\n",
		 "CLIENT_ERROR bad command line format\r\n");
	h_expect(&h, "cas a 0 0 1 x\r\n",
		 "CLIENT_ERROR bad command line format\r\n");
	/* 2^31 claims read as negative once cut to 32 bits (memcached). */
	h_expect(&h, "set a 0 0 2147483648\r\n",
		 "CLIENT_ERROR bad command line format\r\n");
	/* Value longer than claimed: bad data chunk, rest read as a line. */
	h_expect(&h, "set a 0 0 3\r\nabcdef\r\n",
		 "CLIENT_ERROR bad data chunk\r\nERROR\r\n");
	h_expect(&h, "get a\r\n", "END\r\n");
	h_expect(&h, "set a 0 0 3\r\nab\r\n\r\n",
		 "CLIENT_ERROR bad data chunk\r\nERROR\r\n");
	h_expect(&h, "incr a x\r\n",
		 "CLIENT_ERROR invalid numeric delta argument\r\n");
	h_expect(&h, "incr a -1\r\n",
		 "CLIENT_ERROR invalid numeric delta argument\r\n");
	h_expect(&h, "touch a x\r\n", "CLIENT_ERROR invalid exptime argument\r\n");
	h_expect(&h, "gat x a\r\n", "CLIENT_ERROR invalid exptime argument\r\n");
	/* A NUL ends the line, as memcached's strlen() does. */
	h.olen = 0;
	h_feed(&h, "version\0junk\r\n", 14);
	cr_assert_str_eq(h.out, "VERSION " KV_VERSION "\r\n");
	/* An HTTP request closes silently. */
	h_expect(&h, "POST / HTTP/1.1\r\n", "");
	cr_assert(h.closed);
	h_fini(&h);
}

Test(kv, text_too_large_and_huge_claims)
{
	struct h h;
	static char buf[(2 << 20) + 64];
	int n;

	h_init(&h, 8 << 20, 0, 0);
	n = snprintf(buf, sizeof(buf), "set big 0 0 %d\r\n", 2 << 20);
	memset(buf + n, 'v', 2 << 20);
	memcpy(buf + n + (2 << 20), "\r\nget big\r\n", 11);
	h_expect(&h, "set big 0 0 1\r\nx\r\n", "STORED\r\n");
	h.olen = 0;
	h_feed(&h, buf, (size_t)n + (2 << 20) + 11);
	/* Too large: the error, the data swallowed, and a failed SET drops
	 * the old value. */
	cr_assert_str_eq(h.out, "SERVER_ERROR object too large for cache\r\n"
				"END\r\n");
	/* A 2 GB claim: no allocation, the stream is swallowed. */
	h_expect(&h, "set huge 0 0 2000000000\r\n",
		 "SERVER_ERROR object too large for cache\r\n");
	memset(buf, 'x', sizeof(buf));
	for (int i = 0; i < 8; i++)
		h_feed(&h, buf, sizeof(buf));
	cr_assert_lt(kv_conn_footprint(h.c), 1 << 20);
	struct kv_stats st;
	kv_store_stats(h.s, &st);
	cr_assert_lt(st.mem_used, 8 << 20);
	cr_assert_eq(st.store_too_large, 2);
	h_fini(&h);
}

Test(kv, text_long_lines)
{
	struct h h;
	static char buf[KV_GET_LINE_MAX + 4096];

	h_init(&h, 0, 0, 0);
	/* Over 2048 bytes with no newline: memcached closes (no reply). */
	memset(buf, 'a', 3000);
	h_expect(&h, buf, "");
	cr_assert(h.closed);
	h_fini(&h);

	/* A long multiget line split across reads is allowed ... */
	h_init(&h, 0, 0, 0);
	h_expect(&h, "set k1 0 0 1\r\n1\r\n", "STORED\r\n");
	size_t n = (size_t)snprintf(buf, sizeof(buf), "get");
	for (int i = 0; i < 2000; i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, " x%d", i);
	n += (size_t)snprintf(buf + n, sizeof(buf) - n, " k1\r\n");
	h.olen = 0;
	h_feed_split(&h, buf, n, 1000);
	cr_assert_str_eq(h.out, "VALUE k1 0 1\r\n1\r\nEND\r\n");
	/* ... up to a bound. */
	memcpy(buf, "get ", 4);
	memset(buf + 4, 'k', sizeof(buf) - 4);
	h_feed_split(&h, buf, sizeof(buf), 4096);
	cr_assert(h.closed);
	h_fini(&h);
}

/* A script of commands and its replies; fed whole and in every split. */
static const char script_in[] =
	"set a 1 0 5\r\nhello\r\n"
	"get a\r\n"
	"gets zz\r\n"
	"append a 0 0 3\r\n!!!\r\n"
	"incr n 1\r\n"
	"set n 0 0 2\r\n41\r\n"
	"incr n 1\r\n"
	"decr n 50\r\n"
	"touch a 100\r\n"
	"bogus command\r\n"
	"delete a\r\n"
	"set b 0 0 3 noreply\r\nxyz\r\n"
	"get b a\r\n"
	"set c 0 0 3\r\nabcdef\r\n"
	"version\r\n";
static const char script_out[] =
	"STORED\r\n"
	"VALUE a 1 5\r\nhello\r\nEND\r\n"
	"END\r\n"
	"STORED\r\n"
	"NOT_FOUND\r\n"
	"STORED\r\n"
	"42\r\n"
	"0\r\n"
	"TOUCHED\r\n"
	"ERROR\r\n"
	"DELETED\r\n"
	"VALUE b 0 3\r\nxyz\r\nEND\r\n"
	"CLIENT_ERROR bad data chunk\r\nERROR\r\n"
	"VERSION " KV_VERSION "\r\n";

Test(kv, split_input_every_size)
{
	for (size_t chunk = 1; chunk <= 40; chunk++) {
		struct h h;

		h_init(&h, 0, 0, 0);
		h_feed_split(&h, script_in, sizeof(script_in) - 1, chunk);
		CHECK(h.olen == sizeof(script_out) - 1 &&
			      memcmp(h.out, script_out, h.olen) == 0,
		      "chunk %zu: got\n%.*s", chunk, (int)h.olen, h.out);
		h_fini(&h);
	}
}

Test(kv, expiry_with_moved_clock)
{
	struct h h;
	char req[128];

	h_init(&h, 0, 0, 0);
	h_expect(&h, "set r 0 10 1\r\nr\r\n", "STORED\r\n");
	snprintf(req, sizeof(req), "set abs 0 %" PRId64 " 1\r\na\r\n",
		 fake_now + 100);
	h_expect(&h, req, "STORED\r\n");
	snprintf(req, sizeof(req), "set past 0 %d 1\r\np\r\n",
		 KV_REALTIME_MAXDELTA + 1); /* absolute, 1970: expired */
	h_expect(&h, req, "STORED\r\n");
	h_expect(&h, "set neg 0 -1 1\r\nn\r\n", "STORED\r\n");
	h_expect(&h, "set never 0 0 1\r\nv\r\n", "STORED\r\n");
	h_expect(&h, "get past neg\r\n", "END\r\n");
	fake_now += 9;
	h_expect(&h, "get r\r\n", "VALUE r 0 1\r\nr\r\nEND\r\n");
	fake_now += 1;
	h_expect(&h, "get r\r\n", "END\r\n");
	h_expect(&h, "touch abs 1000\r\n", "TOUCHED\r\n");
	fake_now += 200;
	h_expect(&h, "get abs\r\n", "VALUE abs 0 1\r\na\r\nEND\r\n");
	h_expect(&h, "gat 5 abs\r\n", "VALUE abs 0 1\r\na\r\nEND\r\n");
	fake_now += 5;
	h_expect(&h, "gats 5 abs\r\n", "END\r\n");
	h_expect(&h, "touch abs 5\r\n", "NOT_FOUND\r\n");
	/* flush_all with a delay: gone delay-1 seconds on (memcached). */
	h_expect(&h, "flush_all 10\r\n", "OK\r\n");
	fake_now += 8;
	h_expect(&h, "get never\r\n", "VALUE never 0 1\r\nv\r\nEND\r\n");
	fake_now += 1;
	h_expect(&h, "get never\r\n", "END\r\n");
	fake_now += 1; /* stored in the deadline's second it would go too */
	h_expect(&h, "set fresh 0 0 1\r\nf\r\n", "STORED\r\n");
	fake_now += 5;
	h_expect(&h, "get fresh\r\n", "VALUE fresh 0 1\r\nf\r\nEND\r\n");
	struct kv_stats st;
	kv_store_stats(h.s, &st);
	cr_assert_eq(st.get_flushed, 1);
	cr_assert_geq(st.get_expired, 3);
	h_fini(&h);
}

Test(kv, lru_eviction_under_limit)
{
	struct kv_store_config cfg = {
		.mem_limit = 64 << 10, .stripes = 1, .clock = fake_clock,
	};
	struct kv_store *s = kv_store_create(&cfg);
	char key[32], val[1000];
	struct kv_stats st;
	int n = 0;

	cr_assert_not_null(s);
	memset(val, 'v', sizeof(val));
	/* Fill until the first eviction. */
	for (;; n++) {
		struct kv_item *it;

		snprintf(key, sizeof(key), "k%d", n);
		it = kv_item_alloc(s, key, strlen(key), 0, 0, sizeof(val));
		cr_assert_not_null(it);
		memcpy(kv_item_value(it), val, sizeof(val));
		cr_assert_eq(kv_store_link(s, it, KV_SET, 0, NULL), KV_STORED);
		kv_item_release(s, it);
		kv_store_stats(s, &st);
		CHECK(st.mem_used <= cfg.mem_limit, "used %" PRIu64,
		      st.mem_used);
		if (st.evictions)
			break;
		/* k0 stays the most recently used. */
		kv_item_release(s, kv_store_get(s, "k0", 2, false, 0));
	}
	cr_assert_gt(n, 10);
	cr_assert_eq(st.evictions, 1);
	/* The least recently used, k1, went; k0 (read each round) stayed. */
	struct kv_item *it = kv_store_get(s, "k0", 2, false, 0);
	cr_assert_not_null(it);
	kv_item_release(s, it);
	cr_assert_null(kv_store_get(s, "k1", 2, false, 0));
	cr_assert_not_null(it = kv_store_get(s, "k2", 2, false, 0));
	kv_item_release(s, it);
	/* An item over the limit itself is out of memory, not an eviction
	 * storm. */
	errno = 0;
	cr_assert_null(kv_item_alloc(s, "x", 1, 0, 0, 900 << 10));
	cr_assert_eq(errno, ENOMEM);
	cr_assert_null(kv_item_alloc(s, "x", 1, 0, 0, 2 << 20));
	cr_assert_eq(errno, E2BIG);
	kv_store_destroy(s);

	/* Through the protocol, with the default stripes: -m bounds it. */
	struct h h;
	h_init(&h, 256 << 10, 0, 0);
	for (int i = 0; i < 2000; i++) {
		char req[1200];
		int l = snprintf(req, sizeof(req), "set key%d 0 0 %zu\r\n", i,
				 sizeof(val));
		memcpy(req + l, val, sizeof(val));
		memcpy(req + l + sizeof(val), "\r\n", 2);
		h.olen = 0;
		h_feed(&h, req, (size_t)l + sizeof(val) + 2);
		CHECK(!strcmp(h.out, "STORED\r\n"), "set %d: %s", i, h.out);
	}
	kv_store_stats(h.s, &st);
	cr_assert_leq(st.mem_used, 256 << 10);
	cr_assert_gt(st.evictions, 1000);
	{
		char want[1100];
		int l = snprintf(want, sizeof(want), "VALUE key1999 0 1000\r\n");

		memcpy(want + l, val, sizeof(val));
		strcpy(want + l + sizeof(val), "\r\nEND\r\n");
		h_expect(&h, "get key1999\r\n", want);
	}
	h_fini(&h);
}

Test(kv, cas_semantics)
{
	struct h h;
	char req[128];
	uint64_t cas;

	h_init(&h, 0, 0, 0);
	h_expect(&h, "cas a 0 0 1 1\r\nx\r\n", "NOT_FOUND\r\n");
	h_expect(&h, "set a 0 0 1\r\nx\r\n", "STORED\r\n");
	h.olen = 0;
	h_feed(&h, "gets a\r\n", 8);
	cr_assert_eq(sscanf(h.out, "VALUE a 0 1 %" SCNu64, &cas), 1, "%s",
		     h.out);
	snprintf(req, sizeof(req), "cas a 0 0 1 %" PRIu64 "\r\ny\r\n", cas + 1);
	h_expect(&h, req, "EXISTS\r\n");
	snprintf(req, sizeof(req), "cas a 0 0 1 %" PRIu64 "\r\ny\r\n", cas);
	h_expect(&h, req, "STORED\r\n");
	h_expect(&h, req, "EXISTS\r\n"); /* the cas moved on */
	snprintf(req, sizeof(req), "cas a 0 0 1 %" PRIu64 " noreply\r\nz\r\n",
		 cas);
	h_expect(&h, req, "");
	h_expect(&h, "get a\r\n", "VALUE a 0 1\r\ny\r\nEND\r\n");
	struct kv_stats st;
	kv_store_stats(h.s, &st);
	cr_assert_eq(st.cas_misses, 1);
	cr_assert_eq(st.cas_hits, 1);
	cr_assert_eq(st.cas_badval, 3);
	h_fini(&h);
}

/* Threads bump one counter with gets+cas; every STORED is one bump. */
struct cas_race {
	struct kv_store *s;
	int iters;
	uint64_t won;
};

static void *cas_racer(void *arg)
{
	struct cas_race *r = arg;

	for (int i = 0; i < r->iters; i++) {
		struct kv_item *it = kv_store_get(r->s, "ctr", 3, false, 0);
		uint64_t v = 0, cas;
		char buf[24];
		int n;

		if (!it)
			continue;
		kv_parse_u64(kv_item_value(it), it->nbytes, &v);
		cas = it->cas;
		kv_item_release(r->s, it);
		n = snprintf(buf, sizeof(buf), "%" PRIu64, v + 1);
		it = kv_item_alloc(r->s, "ctr", 3, 0, 0, (size_t)n);
		memcpy(kv_item_value(it), buf, (size_t)n);
		if (kv_store_link(r->s, it, KV_CAS, cas, NULL) == KV_STORED)
			r->won++;
		kv_item_release(r->s, it);
	}
	return NULL;
}

Test(kv, cas_race_threads)
{
	struct kv_store_config cfg = { .clock = fake_clock };
	struct kv_store *s = kv_store_create(&cfg);
	struct cas_race r[4];
	pthread_t t[4];
	struct kv_item *it = kv_item_alloc(s, "ctr", 3, 0, 0, 1);
	uint64_t won = 0, v;

	memcpy(kv_item_value(it), "0", 1);
	kv_store_link(s, it, KV_SET, 0, NULL);
	kv_item_release(s, it);
	for (int i = 0; i < 4; i++) {
		r[i] = (struct cas_race){ .s = s, .iters = 20000 };
		pthread_create(&t[i], NULL, cas_racer, &r[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		won += r[i].won;
	}
	it = kv_store_get(s, "ctr", 3, false, 0);
	cr_assert(kv_parse_u64(kv_item_value(it), it->nbytes, &v));
	kv_item_release(s, it);
	cr_assert_eq(v, won, "counter %" PRIu64 " but %" PRIu64 " cas won",
		     v, won);
	cr_assert_gt(won, 0);
	kv_store_destroy(s);
}

Test(kv, incr_decr_edges)
{
	struct h h;

	h_init(&h, 0, 0, 0);
	h_expect(&h, "incr x 1\r\n", "NOT_FOUND\r\n");
	h_expect(&h, "set x 3 0 20\r\n18446744073709551615\r\n", "STORED\r\n");
	h_expect(&h, "incr x 1\r\n", "0\r\n"); /* wraps at 2^64 */
	h_expect(&h, "get x\r\n",
		 "VALUE x 3 20\r\n0                   \r\nEND\r\n");
	h_expect(&h, "incr x 18446744073709551615\r\n",
		 "18446744073709551615\r\n");
	h_expect(&h, "incr x 18446744073709551616\r\n",
		 "CLIENT_ERROR invalid numeric delta argument\r\n");
	h_expect(&h, "set d 0 0 2\r\n10\r\n", "STORED\r\n");
	h_expect(&h, "decr d 1\r\n", "9\r\n");
	/* Shorter result in place, padded with a space (memcached). */
	h_expect(&h, "get d\r\n", "VALUE d 0 2\r\n9 \r\nEND\r\n");
	h_expect(&h, "decr d 100\r\n", "0\r\n"); /* stops at 0 */
	h_expect(&h, "incr d 1000\r\n", "1000\r\n"); /* grows: new item */
	h_expect(&h, "get d\r\n", "VALUE d 0 4\r\n1000\r\nEND\r\n");
	h_expect(&h, "set s 0 0 3\r\nabc\r\n", "STORED\r\n");
	h_expect(&h, "incr s 1\r\n", "CLIENT_ERROR cannot increment or "
				     "decrement non-numeric value\r\n");
	h_expect(&h, "set s 0 0 2\r\n-1\r\n", "STORED\r\n");
	h_expect(&h, "incr s 1\r\n", "CLIENT_ERROR cannot increment or "
				     "decrement non-numeric value\r\n");
	h_expect(&h, "set s 0 0 0\r\n\r\n", "STORED\r\n");
	h_expect(&h, "decr s 1\r\n", "CLIENT_ERROR cannot increment or "
				     "decrement non-numeric value\r\n");
	h_expect(&h, "set s 0 0 4\r\n12ab\r\n", "STORED\r\n");
	h_expect(&h, "incr s 1\r\n", "CLIENT_ERROR cannot increment or "
				     "decrement non-numeric value\r\n");
	h_expect(&h, "set s 0 0 4\r\n 7 x\r\n", "STORED\r\n");
	h_expect(&h, "incr s 1\r\n", "8\r\n"); /* strtoull's leniency */
	h_expect(&h, "incr s 1 noreply\r\n", "");
	h_expect(&h, "get s\r\n", "VALUE s 0 4\r\n9   \r\nEND\r\n");
	h_fini(&h);
}

/* ---- binary ---------------------------------------------------------- */

static size_t bin_req(uint8_t *b, uint8_t op, const void *ext, uint8_t el,
		      const char *key, const void *val, uint32_t vl,
		      uint64_t cas)
{
	uint16_t kl = key ? (uint16_t)strlen(key) : 0;

	memset(b, 0, BIN_HDR);
	b[0] = BIN_REQ;
	b[1] = op;
	wr16(b + 2, kl);
	b[4] = el;
	wr32(b + 8, el + kl + vl);
	memcpy(b + 12, "OPAQ", 4);
	wr64(b + 16, cas);
	if (el)
		memcpy(b + BIN_HDR, ext, el);
	if (kl)
		memcpy(b + BIN_HDR + el, key, kl);
	if (vl)
		memcpy(b + BIN_HDR + el + kl, val, vl);
	return BIN_HDR + el + kl + vl;
}

/* Checks one response at *off and moves past it. */
static void bin_check(struct h *h, size_t *off, uint8_t op, uint16_t status,
		      const char *body, size_t blen)
{
	const uint8_t *r = (const uint8_t *)h->out + *off;

	cr_assert_geq(h->olen, *off + BIN_HDR, "no reply for op %#x", op);
	cr_assert_eq(r[0], BIN_RES);
	cr_assert_eq(r[1], op, "op %#x != %#x", r[1], op);
	cr_assert_eq(rd16(r + 6), status, "op %#x status %#x != %#x", op,
		     rd16(r + 6), status);
	cr_assert(memcmp(r + 12, "OPAQ", 4) == 0);
	if (body) {
		cr_assert_eq(rd32(r + 8), blen, "op %#x bodylen %u", op,
			     rd32(r + 8));
		cr_assert(memcmp(r + BIN_HDR, body, blen) == 0);
	}
	*off += BIN_HDR + rd32(r + 8);
}

Test(kv, binary_basics)
{
	struct h h;
	uint8_t b[4096], ext[20];
	size_t n, off = 0;

	h_init(&h, 0, 0, 0);
	memset(ext, 0, sizeof(ext));
	wr32(ext, 0xdeadbeef); /* flags */
	n = bin_req(b, BIN_SET, ext, 8, "k", "val", 3, 0);
	n += bin_req(b + n, BIN_GET, NULL, 0, "k", NULL, 0, 0);
	n += bin_req(b + n, BIN_GETK, NULL, 0, "k", NULL, 0, 0);
	n += bin_req(b + n, BIN_GETQ, NULL, 0, "nope", NULL, 0, 0);
	n += bin_req(b + n, BIN_GETKQ, NULL, 0, "k", NULL, 0, 0);
	n += bin_req(b + n, BIN_NOOP, NULL, 0, NULL, NULL, 0, 0);
	n += bin_req(b + n, BIN_ADD, ext, 8, "k", "x", 1, 0);
	n += bin_req(b + n, BIN_REPLACE, ext, 8, "zz", "x", 1, 0);
	n += bin_req(b + n, BIN_APPEND, NULL, 0, "k", "++", 2, 0);
	n += bin_req(b + n, BIN_PREPEND, NULL, 0, "k", "--", 2, 0);
	n += bin_req(b + n, BIN_GET, NULL, 0, "k", NULL, 0, 0);
	n += bin_req(b + n, BIN_DELETE, NULL, 0, "k", NULL, 0, 0);
	n += bin_req(b + n, BIN_DELETE, NULL, 0, "k", NULL, 0, 0);
	n += bin_req(b + n, BIN_SETQ, ext, 8, "q", "1", 1, 0);
	n += bin_req(b + n, BIN_VERSION, NULL, 0, NULL, NULL, 0, 0);
	h_feed_split(&h, b, n, 7);
	bin_check(&h, &off, BIN_SET, ST_OK, "", 0);
	bin_check(&h, &off, BIN_GET, ST_OK, "\xde\xad\xbe\xef" "val", 7);
	bin_check(&h, &off, BIN_GETK, ST_OK, "\xde\xad\xbe\xef" "kval", 8);
	bin_check(&h, &off, BIN_GETKQ, ST_OK, "\xde\xad\xbe\xef" "kval", 8);
	bin_check(&h, &off, BIN_NOOP, ST_OK, "", 0);
	bin_check(&h, &off, BIN_ADD, ST_KEY_EEXISTS, "Data exists for key.",
		  20);
	bin_check(&h, &off, BIN_REPLACE, ST_KEY_ENOENT, "Not found", 9);
	bin_check(&h, &off, BIN_APPEND, ST_OK, "", 0);
	bin_check(&h, &off, BIN_PREPEND, ST_OK, "", 0);
	bin_check(&h, &off, BIN_GET, ST_OK, "\xde\xad\xbe\xef" "--val++", 11);
	bin_check(&h, &off, BIN_DELETE, ST_OK, "", 0);
	bin_check(&h, &off, BIN_DELETE, ST_KEY_ENOENT, "Not found", 9);
	bin_check(&h, &off, BIN_VERSION, ST_OK, KV_VERSION,
		  strlen(KV_VERSION));
	cr_assert_eq(off, h.olen);

	/* incr/decr: create from initial, count, non-numeric, no create */
	h.olen = 0;
	off = 0;
	wr64(ext, 5);       /* delta */
	wr64(ext + 8, 100); /* initial */
	wr32(ext + 16, 0);  /* expiration */
	n = bin_req(b, BIN_INCR, ext, 20, "c", NULL, 0, 0);
	n += bin_req(b + n, BIN_INCR, ext, 20, "c", NULL, 0, 0);
	n += bin_req(b + n, BIN_DECR, ext, 20, "c", NULL, 0, 0);
	wr32(ext + 16, 0xffffffff);
	n += bin_req(b + n, BIN_DECR, ext, 20, "none", NULL, 0, 0);
	n += bin_req(b + n, BIN_INCR, ext, 20, "none2", NULL, 0, 0);
	wr32(ext, 0);
	wr32(ext + 4, 0);
	n += bin_req(b + n, BIN_SET, ext, 8, "s", "abc", 3, 0);
	wr64(ext, 1);
	n += bin_req(b + n, BIN_INCR, ext, 20, "s", NULL, 0, 0);
	wr32(ext, 100);
	n += bin_req(b + n, BIN_TOUCH, ext, 4, "s", NULL, 0, 0);
	n += bin_req(b + n, BIN_GAT, ext, 4, "s", NULL, 0, 0);
	n += bin_req(b + n, BIN_FLUSH, NULL, 0, NULL, NULL, 0, 0);
	n += bin_req(b + n, BIN_GET, NULL, 0, "s", NULL, 0, 0);
	n += bin_req(b + n, 0x55, NULL, 0, NULL, "junk", 4, 0);
	n += bin_req(b + n, BIN_QUIT, NULL, 0, NULL, NULL, 0, 0);
	n += bin_req(b + n, BIN_NOOP, NULL, 0, NULL, NULL, 0, 0);
	h_feed(&h, b, n);
	bin_check(&h, &off, BIN_INCR, ST_OK, "\0\0\0\0\0\0\0\x64", 8);
	bin_check(&h, &off, BIN_INCR, ST_OK, "\0\0\0\0\0\0\0\x69", 8);
	bin_check(&h, &off, BIN_DECR, ST_OK, "\0\0\0\0\0\0\0\x64", 8);
	bin_check(&h, &off, BIN_DECR, ST_KEY_ENOENT, "Not found", 9);
	bin_check(&h, &off, BIN_INCR, ST_KEY_ENOENT, "Not found", 9);
	bin_check(&h, &off, BIN_SET, ST_OK, "", 0);
	bin_check(&h, &off, BIN_INCR, ST_DELTA_BADVAL, NULL, 0);
	bin_check(&h, &off, BIN_TOUCH, ST_OK, "\0\0\0\0", 4);
	bin_check(&h, &off, BIN_GAT, ST_OK, "\0\0\0\0abc", 7);
	bin_check(&h, &off, BIN_FLUSH, ST_OK, "", 0);
	bin_check(&h, &off, BIN_GET, ST_KEY_ENOENT, "Not found", 9);
	bin_check(&h, &off, 0x55, ST_UNKNOWN_COMMAND, "Unknown command", 15);
	bin_check(&h, &off, BIN_QUIT, ST_OK, "", 0);
	cr_assert_eq(off, h.olen, "nothing after quit");
	cr_assert(h.closed);
	h_fini(&h);
}

Test(kv, binary_bad_input)
{
	struct h h;
	uint8_t b[1024];
	size_t n, off = 0;

	/* Bad magic after a binary start: closed without a reply. */
	h_init(&h, 0, 0, 0);
	n = bin_req(b, BIN_NOOP, NULL, 0, NULL, NULL, 0, 0);
	memset(b + n, 0x42, 24);
	h_feed(&h, b, n + 24);
	bin_check(&h, &off, BIN_NOOP, ST_OK, "", 0);
	cr_assert_eq(off, h.olen);
	cr_assert(h.closed);
	h_fini(&h);

	/* keylen past the body: unknown command, then closed. */
	h_init(&h, 0, 0, 0);
	off = 0;
	n = bin_req(b, BIN_GET, NULL, 0, "abc", NULL, 0, 0);
	wr32(b + 8, 1);
	h_feed(&h, b, n);
	bin_check(&h, &off, BIN_GET, ST_UNKNOWN_COMMAND, NULL, 0);
	cr_assert(h.closed);
	h_fini(&h);

	/* A key over 250 bytes, bad extras: invalid arguments, closed. */
	char key[300];
	memset(key, 'k', 260);
	key[260] = '\0';
	h_init(&h, 0, 0, 0);
	off = 0;
	n = bin_req(b, BIN_GET, NULL, 0, key, NULL, 0, 0);
	h_feed(&h, b, n);
	bin_check(&h, &off, BIN_GET, ST_EINVAL, "Invalid arguments", 17);
	cr_assert(h.closed);
	h_fini(&h);
	h_init(&h, 0, 0, 0);
	off = 0;
	n = bin_req(b, BIN_SET, NULL, 0, "k", "v", 1, 0);
	h_feed(&h, b, n);
	bin_check(&h, &off, BIN_SET, ST_EINVAL, "Invalid arguments", 17);
	cr_assert(h.closed);
	h_fini(&h);

	/* A 2 GB value: too large, swallowed, the connection goes on. */
	h_init(&h, 0, 0, 0);
	off = 0;
	uint8_t ext[8] = { 0 };
	n = bin_req(b, BIN_SET, ext, 8, "k", NULL, 0, 0);
	wr32(b + 8, 2000000000u);
	h_feed(&h, b, n);
	bin_check(&h, &off, BIN_SET, ST_E2BIG, "Too large.", 10);
	cr_assert(!h.closed);
	cr_assert_lt(kv_conn_footprint(h.c), 1 << 20);
	h_fini(&h);
}

/* ---- fuzz ------------------------------------------------------------ */

static uint64_t rng_state = 88172645463325252ull;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static const char *const fuzz_cmds[] = {
	"get k%d\r\n", "gets k%d k1 k2\r\n", "set k%d 0 0 3\r\nabc\r\n",
	"add k%d 1 100 2\r\nxy\r\n", "replace k%d 0 0 1\r\n1\r\n",
	"append k%d 0 0 2\r\n12\r\n", "prepend k%d 0 0 2\r\n34\r\n",
	"cas k%d 0 0 1 5\r\nq\r\n", "delete k%d\r\n", "incr k%d 7\r\n",
	"decr k%d 3\r\n", "touch k%d 10\r\n", "gat 5 k%d\r\n",
	"set k%d 0 0 10\r\nshort\r\n", "set k%d 0 0 99999999\r\n",
	"flush_all %d\r\n", "stats\r\n", "version\r\n", "verbosity %d\r\n",
	"set k%d 0 0 2 noreply\r\n99\r\n", "bogus %d\r\n",
};

/* Random valid and broken text, binary headers and raw bytes, fed in
 * random splits; each connection's memory must stay bounded. */
Test(kv, fuzz_bounded, .timeout = 60)
{
	struct h h;
	static uint8_t buf[65536];
	double end = now_s() + 4;
	size_t max_fp = 0, rounds = 0;

	h_init(&h, 4 << 20, 64 << 10, 0);
	while (now_s() < end) {
		size_t n = 0;
		unsigned mode = (unsigned)(rng() % 4);

		if (h.closed || rng() % 50 == 0)
			h_reconnect(&h);
		while (n < sizeof(buf) - 512 && rng() % 64) {
			if (mode == 0) { /* text commands */
				const char *f = fuzz_cmds[rng() %
					(sizeof(fuzz_cmds) / sizeof(*fuzz_cmds))];
				n += (size_t)snprintf((char *)buf + n, 512, f,
						      (int)(rng() % 20));
			} else if (mode == 1) { /* binary requests */
				uint8_t ext[20];
				char key[8];
				uint8_t ops[] = { BIN_GET, BIN_SET, BIN_ADD,
						  BIN_DELETE, BIN_INCR, BIN_GETKQ,
						  BIN_APPEND, BIN_NOOP, BIN_TOUCH,
						  BIN_STAT, BIN_GAT, BIN_SETQ };
				uint8_t op = ops[rng() % sizeof(ops)];
				uint8_t el = op == BIN_SET || op == BIN_ADD ||
							     op == BIN_SETQ ? 8 :
					     op == BIN_INCR ? 20 :
					     op == BIN_TOUCH || op == BIN_GAT ? 4 : 0;

				for (unsigned i = 0; i < sizeof(ext); i++)
					ext[i] = (uint8_t)rng();
				ext[16] = 0; /* keep incr's expiration sane */
				snprintf(key, sizeof(key), "k%d", (int)(rng() % 20));
				n += bin_req(buf + n, op, ext, el,
					     op == BIN_NOOP || op == BIN_STAT ?
						     NULL : key,
					     "vvvv", op == BIN_SET || op == BIN_ADD ||
					     op == BIN_APPEND || op == BIN_SETQ ?
						     4 : 0, 0);
				if (rng() % 20 == 0) /* break a field */
					buf[n - 1 - rng() % 24] ^= (uint8_t)rng();
			} else if (mode == 2) { /* raw bytes */
				size_t k = rng() % 256;
				for (size_t i = 0; i < k; i++)
					buf[n + i] = (uint8_t)rng();
				n += k;
			} else { /* text with random corruption */
				n += (size_t)snprintf((char *)buf + n, 512,
						      "set k%d 0 0 %d\r\n",
						      (int)(rng() % 20),
						      (int)(rng() % 40));
				for (int i = 0; i < 20; i++)
					buf[n++] = " \r\nab0\x80"[rng() % 7];
			}
		}
		h.olen = 0;
		h_feed_split(&h, buf, n, 1 + rng() % 3000);
		size_t fp = kv_conn_footprint(h.c);
		if (fp > max_fp)
			max_fp = fp;
		CHECK(fp < 2 << 20, "connection holds %zu bytes", fp);
		struct kv_stats st;
		kv_store_stats(h.s, &st);
		CHECK(st.mem_used <= 4 << 20, "store uses %" PRIu64, st.mem_used);
		if (rng() % 16 == 0)
			fake_now += (int64_t)(rng() % 20);
		rounds++;
	}
	cr_log_info("fuzz: %zu rounds, max connection footprint %zu", rounds,
		    max_fp);
	h_fini(&h);
}

/* ---- store stress ---------------------------------------------------- */

struct stress {
	struct kv_store *s;
	unsigned seed;
	uint64_t ops;
	int *stop; /* relaxed: only ends the loop */
};

static void *stress_worker(void *arg)
{
	struct stress *w = arg;
	uint64_t x = w->seed * 2654435761u + 1;

	while (!__atomic_load_n(w->stop, __ATOMIC_RELAXED)) {
		char key[16], val[300];
		struct kv_item *it;
		uint64_t v, cas = 0;
		size_t vl;
		int k;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		k = (int)(x % 500);
		snprintf(key, sizeof(key), "s%d", k);
		switch ((x >> 20) % 8) {
		case 0: case 1: case 2:
			it = kv_store_get(w->s, key, strlen(key), false, 0);
			if (it) {
				/* Only bytes that were written: a torn or
				 * freed value would show others. */
				for (uint32_t i = 0; i < it->nbytes; i++) {
					char ch = kv_item_value(it)[i];

					if (!(ch >= 'a' && ch <= 'z') &&
					    !(ch >= '0' && ch <= '9') &&
					    ch != ' ')
						abort();
				}
				if (memcmp(kv_item_value(it) + it->nbytes,
					   "\r\n", 2))
					abort();
				kv_item_release(w->s, it);
			}
			break;
		case 3: case 4:
			vl = (x >> 32) % sizeof(val);
			memset(val, 'a' + (int)(x % 26), vl);
			it = kv_item_alloc(w->s, key, strlen(key), 0, 0, vl);
			if (it) {
				memcpy(kv_item_value(it), val, vl);
				kv_store_link(w->s, it,
					      (x >> 40) % 2 ? KV_SET : KV_ADD, 0,
					      NULL);
				kv_item_release(w->s, it);
			}
			break;
		case 5:
			kv_store_delete(w->s, key, strlen(key), 0, true);
			break;
		case 6:
			kv_store_arith(w->s, key, strlen(key), x & 1, 3, &v,
				       &cas);
			break;
		default:
			it = kv_item_alloc(w->s, key, strlen(key), 0, 0, 2);
			if (it) {
				memset(kv_item_value(it), 'a' + (int)(x % 26),
				       2);
				kv_store_link(w->s, it,
					      (x >> 40) % 2 ? KV_APPEND :
							      KV_PREPEND, 0,
					      NULL);
				kv_item_release(w->s, it);
			}
			break;
		}
		w->ops++;
	}
	return NULL;
}

Test(kv, store_stress_threads, .timeout = 60)
{
	struct kv_store_config cfg = {
		.mem_limit = 64 << 10, .stripes = 4, .clock = fake_clock,
	};
	struct kv_store *s = kv_store_create(&cfg);
	struct stress w[4];
	pthread_t t[4];
	int stop = 0;
	struct kv_stats st;
	uint64_t ops = 0;

	for (int i = 0; i < 4; i++) {
		w[i] = (struct stress){ .s = s, .seed = (unsigned)i + 1,
					.stop = &stop };
		pthread_create(&t[i], NULL, stress_worker, &w[i]);
	}
	for (int i = 0; i < 20; i++) {
		struct timespec ts = { 0, 100000000 };

		nanosleep(&ts, NULL);
		kv_store_stats(s, &st);
		CHECK(st.mem_used <= cfg.mem_limit, "used %" PRIu64,
		      st.mem_used);
		if (i == 10)
			kv_store_flush(s, 0);
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		ops += w[i].ops;
	}
	kv_store_stats(s, &st);
	cr_log_info("stress: %" PRIu64 " ops, %" PRIu64 " evictions", ops,
		    st.evictions);
	cr_assert_gt(st.evictions, 0);
	/* With no references left, memory is exactly the linked items. */
	cr_assert_eq(st.mem_used, st.bytes);
	kv_store_flush(s, 0);
	kv_store_stats(s, &st);
	cr_assert_eq(st.mem_used, 0);
	cr_assert_eq(st.curr_items, 0);
	kv_store_destroy(s);
}
