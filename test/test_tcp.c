/* SPDX-License-Identifier: BSD-3-Clause */
/* TCP against itself: two interfaces of one process joined by a virtual
 * wire (jumbo frames: MSS 8960), end a on core 0 (10.88.0.1) and end b
 * on core 1 (10.88.0.2).
 * Handshake and echo, bulk transfers both ways with every byte checked,
 * the same across an impaired wire (drop, reorder, duplicate, corrupt,
 * delay), refusals, the connection limit, keepalive, the blocking send,
 * and 100k connections opened and closed with every mbuf back in the
 * pool. Needs hugepages only. */
#include <arpa/inet.h>
#include <stdatomic.h>
#include <stdio.h>

#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <ebbrt/net.h>
#include <ebbrt/nic.h>
#include <ebbrt/tcp.h>

#include "harness.h"

#define IP_A 0x0a580001u	/* 10.88.0.1 */
#define IP_B 0x0a580002u	/* 10.88.0.2 */
#define PORT 5001
/* The sent data is pattern[offset % PAT], a prime period so segment
 * boundaries never line up with it. */
#define PAT 65521u

static struct ebb_nic *wa, *wb;
static struct ebb_net_if *na, *nb;
static uint8_t pattern[PAT];

struct attach_req {
	struct ebb_net_if *nif;
	int rc;
};

static void do_attach(void *p)
{
	struct attach_req *r = p;

	r->rc = ebb_net_if_attach(r->nif, 0);
}

static void do_detach(void *p)
{
	struct attach_req *r = p;

	r->rc = ebb_net_if_detach(r->nif, 0);
}

/* A wire of @nmbufs, interfaces on both ends, TCP set by @cfg (NULL:
 * defaults) on both. */
static void setup_cfg(const struct ebb_tcp_config *cfg, unsigned nmbufs)
{
	struct ebb_nic_config nc = { .nmbufs = nmbufs, .ring_size = 1024 };
	struct ebb_net_config a = { .ip = IP_A, .netmask = 0xffffff00u };
	struct ebb_net_config b = { .ip = IP_B, .netmask = 0xffffff00u };
	struct attach_req r;
	int rc;

	for (unsigned i = 0; i < PAT; i++)
		pattern[i] = (uint8_t)(i * 131u + (i >> 8) + 7u);
	ebbt_start("0-1");
	rc = ebb_nic_open_wire("tt", &nc, &wa, &wb);
	cr_assert_eq(rc, 0, "open_wire: %s", strerror(-rc));
	na = ebb_net_if_open(wa, &a);
	nb = ebb_net_if_open(wb, &b);
	cr_assert(na != NULL && nb != NULL);
	if (cfg != NULL) {
		cr_assert_eq(ebb_tcp_configure(na, cfg), 0);
		cr_assert_eq(ebb_tcp_configure(nb, cfg), 0);
	}
	r = (struct attach_req){ na, 1 };
	cr_assert_eq(ebbt_call(0, do_attach, &r), 0);
	cr_assert_eq(r.rc, 0);
	r = (struct attach_req){ nb, 1 };
	cr_assert_eq(ebbt_call(1, do_attach, &r), 0);
	cr_assert_eq(r.rc, 0);
}

static void teardown(void)
{
	struct attach_req r = { na, 1 };

	cr_assert_eq(ebbt_call(0, do_detach, &r), 0);
	r = (struct attach_req){ nb, 1 };
	cr_assert_eq(ebbt_call(1, do_detach, &r), 0);
	ebbt_stop();
	ebb_net_if_close(na);
	ebb_net_if_close(nb);
	ebb_nic_close(wa);
	ebb_nic_close(wb);
}

/* --- a checking sink and a patterned source, usable on either end --- */

struct stream {
	struct ebb_tcp_conn *c;
	uint64_t total;		/* bytes to send (source) */
	uint64_t off;		/* bytes sent / received so far */
	atomic_ullong rcvd;	/* published copy of off (sink) */
	atomic_int bad;		/* bytes that differ from the pattern */
	atomic_int eof, err, connected;
	bool close_on_eof;
};

static void sink_recv(void *arg, struct ebb_tcp_conn *c, struct rte_mbuf *m)
{
	struct stream *s = arg;

	if (m == NULL) {
		atomic_store(&s->eof, 1);
		if (s->close_on_eof)
			ebb_tcp_close(c);
		return;
	}
	for (struct rte_mbuf *x = m; x != NULL; x = x->next) {
		const uint8_t *p = rte_pktmbuf_mtod(x, const uint8_t *);

		for (uint16_t i = 0; i < x->data_len; i++, s->off++)
			if (p[i] != pattern[s->off % PAT])
				atomic_fetch_add(&s->bad, 1);
	}
	atomic_store(&s->rcvd, s->off);
	rte_pktmbuf_free(m);
}

static void src_push(struct stream *s)
{
	while (s->off < s->total) {
		uint32_t at = (uint32_t)(s->off % PAT);
		size_t n = RTE_MIN((uint64_t)(PAT - at), s->total - s->off);
		ssize_t k = ebb_tcp_send_buf(s->c, pattern + at, n);

		if (k < 0) {
			if (k != -EAGAIN)
				atomic_store(&s->err, (int)k);
			return;	/* writable() calls again */
		}
		s->off += (uint64_t)k;
	}
	ebb_tcp_close(s->c);
	s->c = NULL;
}

static void src_writable(void *arg, struct ebb_tcp_conn *c)
{
	(void)c;
	src_push(arg);
}

static void src_recv(void *arg, struct ebb_tcp_conn *c, struct rte_mbuf *m)
{
	(void)arg;
	(void)c;
	rte_pktmbuf_free(m);
}

static void any_error(void *arg, struct ebb_tcp_conn *c, int err)
{
	struct stream *s = arg;

	(void)c;
	atomic_store(&s->err, err);
	if (s->c == c)
		s->c = NULL;
}

static void src_connected(void *arg, struct ebb_tcp_conn *c)
{
	(void)c;
	atomic_store(&((struct stream *)arg)->connected, 1);
}

static const struct ebb_tcp_ops sink_ops = {
	.recv = sink_recv, .error = any_error,
};
static const struct ebb_tcp_ops src_ops = {
	.recv = src_recv, .writable = src_writable, .error = any_error,
	.connected = src_connected,
};

/* The listener's side: a sink (upload) or a source (download). */
static struct stream srv;
static bool srv_sends;

static int on_accept(void *arg, struct ebb_tcp_conn *c)
{
	(void)arg;
	srv.c = c;
	if (srv_sends) {
		ebb_tcp_set_ops(c, &src_ops, &srv);
		src_push(&srv);
	} else {
		ebb_tcp_set_ops(c, &sink_ops, &srv);
	}
	return 0;
}

static struct stream cli;
static struct ebb_tcp_listener *lis;

static void do_listen(void *arg)
{
	struct ebb_tcp_listen_config lc = { .accept = on_accept };

	(void)arg;
	lis = ebb_tcp_listen(nb, PORT, &lc);
}

static void do_connect_src(void *arg)
{
	(void)arg;
	cli.c = ebb_tcp_connect(na, IP_B, PORT, &src_ops, &cli);
	if (cli.c != NULL)
		src_push(&cli);
}

static void do_connect_sink(void *arg)
{
	(void)arg;
	cli.c = ebb_tcp_connect(na, IP_B, PORT, &sink_ops, &cli);
}

static void reset_streams(uint64_t total)
{
	memset(&srv, 0, sizeof(srv));
	memset(&cli, 0, sizeof(cli));
	srv.total = cli.total = total;
	srv.close_on_eof = cli.close_on_eof = true;
}

/* @total bytes from a to b (@up) or b to a, checked byte by byte. */
static void transfer(uint64_t total, bool up, unsigned timeout_ms)
{
	struct stream *sink = up ? &srv : &cli;
	struct ebb_net_stats st;

	reset_streams(total);
	srv_sends = !up;
	cr_assert_eq(ebbt_call(1, do_listen, NULL), 0);
	cr_assert(lis != NULL, "listen: %s", strerror(errno));
	cr_assert_eq(ebbt_call(0, up ? do_connect_src : do_connect_sink, NULL),
		     0);
	cr_assert(cli.c != NULL, "connect: %s", strerror(errno));
	bool done = ebbt_wait_until(atomic_load(&sink->eof) &&
					    ebb_tcp_conn_count(na) +
							    ebb_tcp_conn_count(
								    nb) <=
						    1,
				    timeout_ms);
	(void)ebb_net_if_stats(na, &st);
	cr_assert(done,
		  "stalled: %llu of %llu bytes, err cli %d srv %d, conns %u+%u, "
		  "a: retrans %lu timeouts %lu fast %lu ooo %lu dropped %lu",
		  (unsigned long long)atomic_load(&sink->rcvd),
		  (unsigned long long)total, atomic_load(&cli.err),
		  atomic_load(&srv.err), ebb_tcp_conn_count(na),
		  ebb_tcp_conn_count(nb), (unsigned long)st.tcp_retransmits,
		  (unsigned long)st.tcp_timeouts,
		  (unsigned long)st.tcp_fast_retransmits,
		  (unsigned long)st.tcp_ooo, (unsigned long)st.tcp_dropped);
	cr_assert_eq(atomic_load(&sink->rcvd), total);
	cr_assert_eq(atomic_load(&sink->bad), 0, "%d bytes differ",
		     atomic_load(&sink->bad));
	cr_assert_eq(atomic_load(&cli.err), 0);
	cr_assert_eq(atomic_load(&srv.err), 0);
}

/* Short TIME_WAIT so that tests end with no connection left. */
static const struct ebb_tcp_config quick_tw = { .time_wait_ms = 50,
						 .rto_min_ms = 20 };

Test(tcp, transfer_both_ways)
{
	setup_cfg(&quick_tw, 8191);
	transfer(32u << 20, true, 20000);
	ebb_tcp_unlisten(lis);
	transfer(32u << 20, false, 20000);
	ebb_tcp_unlisten(lis);
	cr_assert(ebbt_wait_until(ebb_tcp_conn_count(na) == 0 &&
					  ebb_tcp_conn_count(nb) == 0,
				  2000),
		  "connections left: %u + %u", ebb_tcp_conn_count(na),
		  ebb_tcp_conn_count(nb));
	teardown();
}

Test(tcp, transfer_impaired_wire)
{
	struct ebb_nic_faults f = { .seed = 11, .drop = 0.05,
				    .reorder = 0.01, .duplicate = 0.01,
				    .corrupt = 0.005, .delay_us = 100 };
	struct ebb_net_stats sa, sb;
	struct ebb_nic_stats ns;

	setup_cfg(&quick_tw, 8191);
	cr_assert_eq(ebb_nic_set_faults(wa, &f), 0);
	f.seed = 12;
	cr_assert_eq(ebb_nic_set_faults(wb, &f), 0);
	transfer(32u << 20, true, 60000);
	ebb_tcp_unlisten(lis);
	cr_log_info("up done");
	transfer(32u << 20, false, 60000);
	ebb_tcp_unlisten(lis);
	(void)ebb_net_if_stats(na, &sa);
	(void)ebb_net_if_stats(nb, &sb);
	(void)ebb_nic_stats(wa, &ns);
	cr_log_info("a: retrans %lu fast %lu timeouts %lu ooo %lu; "
		    "b: retrans %lu fast %lu timeouts %lu ooo %lu",
		    (unsigned long)sa.tcp_retransmits,
		    (unsigned long)sa.tcp_fast_retransmits,
		    (unsigned long)sa.tcp_timeouts, (unsigned long)sa.tcp_ooo,
		    (unsigned long)sb.tcp_retransmits,
		    (unsigned long)sb.tcp_fast_retransmits,
		    (unsigned long)sb.tcp_timeouts, (unsigned long)sb.tcp_ooo);
	/* The faults happened, and TCP saw them. */
	cr_assert_gt(ns.faults_dropped, 100);
	cr_assert_gt(ns.faults_corrupted, 5);
	cr_assert_gt(sa.tcp_retransmits + sb.tcp_retransmits, 100);
	cr_assert_gt(sa.tcp_fast_retransmits + sb.tcp_fast_retransmits, 10);
	cr_assert_gt(sa.tcp_bad_checksum + sb.tcp_bad_checksum +
			     sa.drop_ip_checksum + sb.drop_ip_checksum,
		     0);
	cr_assert_eq(ebb_nic_set_faults(wa, NULL), 0);
	cr_assert_eq(ebb_nic_set_faults(wb, NULL), 0);
	teardown();
}

/* --- echo, refusals, limits --- */

static struct stream echo_cli;
static atomic_int echo_got;
static char echo_buf[64];

static void echo_srv_recv(void *arg, struct ebb_tcp_conn *c,
			  struct rte_mbuf *m)
{
	(void)arg;
	if (m == NULL) {
		ebb_tcp_close(c);
		return;
	}
	/* Back as it came: zero copy. */
	if (ebb_tcp_send(c, m) != 0)
		rte_pktmbuf_free(m);
}

static const struct ebb_tcp_ops echo_srv_ops = { .recv = echo_srv_recv };

static int echo_accept(void *arg, struct ebb_tcp_conn *c)
{
	(void)arg;
	ebb_tcp_set_ops(c, &echo_srv_ops, NULL);
	return 0;
}

static void echo_cli_recv(void *arg, struct ebb_tcp_conn *c,
			  struct rte_mbuf *m)
{
	(void)arg;
	if (m == NULL) {
		ebb_tcp_close(c);
		return;
	}
	int got = atomic_load(&echo_got);

	for (struct rte_mbuf *x = m; x != NULL; x = x->next) {
		uint16_t n = RTE_MIN(x->data_len,
				     (uint16_t)(sizeof(echo_buf) - got));

		memcpy(echo_buf + got, rte_pktmbuf_mtod(x, char *), n);
		got += n;
	}
	rte_pktmbuf_free(m);
	atomic_store(&echo_got, got);
	if (got == 5) {
		ebb_tcp_close(c);
		echo_cli.c = NULL;
	}
}

static const struct ebb_tcp_ops echo_cli_ops = {
	.recv = echo_cli_recv, .error = any_error, .connected = src_connected,
};

static void do_listen_echo(void *arg)
{
	struct ebb_tcp_listen_config lc = { .accept = echo_accept };

	(void)arg;
	lis = ebb_tcp_listen(nb, 7, &lc);
}

static void do_echo_connect(void *arg)
{
	uint16_t port = *(uint16_t *)arg;

	echo_cli.c = ebb_tcp_connect(na, IP_B, port, &echo_cli_ops,
				     &echo_cli);
	if (echo_cli.c != NULL)
		(void)ebb_tcp_send_buf(echo_cli.c, "hello", 5);
}

Test(tcp, echo_and_refused)
{
	uint16_t port = 7;
	struct ebb_net_stats sb;

	setup_cfg(&quick_tw, 8191);
	memset(&echo_cli, 0, sizeof(echo_cli));
	cr_assert_eq(ebbt_call(1, do_listen_echo, NULL), 0);
	cr_assert_eq(ebbt_call(0, do_echo_connect, &port), 0);
	cr_assert(ebbt_wait_until(atomic_load(&echo_got) == 5, 3000),
		  "echoed %d bytes, err %d", atomic_load(&echo_got),
		  atomic_load(&echo_cli.err));
	cr_assert_eq(memcmp(echo_buf, "hello", 5), 0);
	cr_assert_eq(atomic_load(&echo_cli.connected), 1);
	cr_assert(ebbt_wait_until(ebb_tcp_conn_count(na) +
					  ebb_tcp_conn_count(nb) == 0,
				  2000));

	/* Nobody on port 9: RST, and the open fails with ECONNREFUSED. */
	memset(&echo_cli, 0, sizeof(echo_cli));
	port = 9;
	cr_assert_eq(ebbt_call(0, do_echo_connect, &port), 0);
	cr_assert(ebbt_wait_until(atomic_load(&echo_cli.err) != 0, 3000));
	cr_assert_eq(atomic_load(&echo_cli.err), -ECONNREFUSED);
	(void)ebb_net_if_stats(nb, &sb);
	cr_assert_geq(sb.tcp_no_listener, 1);
	cr_assert_geq(sb.tcp_rst_sent, 1);
	ebb_tcp_unlisten(lis);
	teardown();
}

/* --- many connections --- */

static atomic_int churn_done, churn_err;
static int churn_left;

static void churn_next(void *arg);

static void churn_recv(void *arg, struct ebb_tcp_conn *c, struct rte_mbuf *m)
{
	(void)arg;
	if (m == NULL) {
		/* The server closed after the echo: close, go on. */
		ebb_tcp_close(c);
		atomic_fetch_add(&churn_done, 1);
		if (ebb_spawn_local(churn_next, NULL) != 0)
			atomic_fetch_add(&churn_err, 1);
		return;
	}
	rte_pktmbuf_free(m);
}

static void churn_error(void *arg, struct ebb_tcp_conn *c, int err)
{
	(void)arg;
	(void)c;
	(void)err;
	atomic_fetch_add(&churn_err, 1);
	if (ebb_spawn_local(churn_next, NULL) != 0)
		atomic_fetch_add(&churn_err, 1);
}

static const struct ebb_tcp_ops churn_ops = {
	.recv = churn_recv, .error = churn_error,
};

/* Server: answer one byte, then close first (the server keeps the
 * TIME_WAIT). */
static void churn_srv_recv(void *arg, struct ebb_tcp_conn *c,
			   struct rte_mbuf *m)
{
	(void)arg;
	if (m == NULL)
		return;
	if (ebb_tcp_send(c, m) != 0)
		rte_pktmbuf_free(m);
	ebb_tcp_close(c);
}

static const struct ebb_tcp_ops churn_srv_ops = { .recv = churn_srv_recv };

static int churn_accept(void *arg, struct ebb_tcp_conn *c)
{
	(void)arg;
	ebb_tcp_set_ops(c, &churn_srv_ops, NULL);
	return 0;
}

static void do_listen_churn(void *arg)
{
	struct ebb_tcp_listen_config lc = { .accept = churn_accept };

	(void)arg;
	lis = ebb_tcp_listen(nb, PORT, &lc);
}

/* Keep 32 connections going until churn_left have been opened. */
static void churn_next(void *arg)
{
	struct ebb_tcp_conn *c;

	(void)arg;
	if (churn_left == 0)
		return;
	churn_left--;
	c = ebb_tcp_connect(na, IP_B, PORT, &churn_ops, NULL);
	if (c == NULL || ebb_tcp_send_buf(c, "x", 1) != 1) {
		atomic_fetch_add(&churn_err, 1);
		return;
	}
}

static void churn_start(void *arg)
{
	churn_left = *(int *)arg;
	for (int i = 0; i < 32; i++)
		churn_next(NULL);
}

Test(tcp, hundred_thousand_connections)
{
	struct ebb_tcp_config cfg = { .time_wait_ms = 20, .max_conns = 65536 };
	struct rte_mempool *pool;
	unsigned before, after;
	int n = 100000;

	setup_cfg(&cfg, 16383);
	pool = ebb_nic_pool(wa);
	/* The announcements of both ends may still be on the wire. */
	(void)ebbt_wait_until(rte_mempool_in_use_count(pool) == 0, 2000);
	before = rte_mempool_in_use_count(pool);
	cr_assert_eq(ebbt_call(1, do_listen_churn, NULL), 0);
	atomic_store(&churn_done, 0);
	atomic_store(&churn_err, 0);
	cr_assert_eq(ebbt_call(0, churn_start, &n), 0);
	cr_assert(ebbt_wait_until(atomic_load(&churn_done) +
						  atomic_load(&churn_err) >=
					  n,
				  300000),
		  "done %d errors %d", atomic_load(&churn_done),
		  atomic_load(&churn_err));
	cr_assert_eq(atomic_load(&churn_err), 0);
	cr_assert(ebbt_wait_until(ebb_tcp_conn_count(na) == 0 &&
					  ebb_tcp_conn_count(nb) == 0,
				  5000),
		  "connections left: %u + %u", ebb_tcp_conn_count(na),
		  ebb_tcp_conn_count(nb));
	cr_assert(ebbt_wait_until((after = rte_mempool_in_use_count(pool)) ==
					  before,
				  2000),
		  "mbufs in use: %u before, %u after", before, after);
	ebb_tcp_unlisten(lis);
	teardown();
}

static atomic_int lim_err, lim_ok;

static void lim_error(void *arg, struct ebb_tcp_conn *c, int err)
{
	(void)arg;
	(void)c;
	if (err == -ECONNREFUSED)
		atomic_fetch_add(&lim_err, 1);
}

static void lim_connected(void *arg, struct ebb_tcp_conn *c)
{
	(void)arg;
	(void)c;
	atomic_fetch_add(&lim_ok, 1);
}

static void lim_recv(void *arg, struct ebb_tcp_conn *c, struct rte_mbuf *m)
{
	(void)arg;
	(void)c;
	rte_pktmbuf_free(m);
}

static const struct ebb_tcp_ops lim_ops = {
	.recv = lim_recv, .error = lim_error, .connected = lim_connected,
};

static void lim_srv_recv(void *arg, struct ebb_tcp_conn *c,
			 struct rte_mbuf *m)
{
	(void)arg;
	(void)c;
	rte_pktmbuf_free(m);
}

static const struct ebb_tcp_ops lim_srv_ops = { .recv = lim_srv_recv };

static int lim_accept(void *arg, struct ebb_tcp_conn *c)
{
	(void)arg;
	ebb_tcp_set_ops(c, &lim_srv_ops, NULL);
	return 0;
}

static void do_listen_lim(void *arg)
{
	struct ebb_tcp_listen_config lc = { .accept = lim_accept };

	(void)arg;
	lis = ebb_tcp_listen(nb, PORT, &lc);
}

static void lim_open(void *arg)
{
	(void)arg;
	for (int i = 0; i < 6; i++)
		(void)ebb_tcp_connect(na, IP_B, PORT, &lim_ops, NULL);
}

/* b takes 4 connections; the 5th and 6th SYNs get RST. */
Test(tcp, connection_limit)
{
	struct ebb_tcp_config cfg = { .time_wait_ms = 50, .max_conns = 4 };
	struct ebb_tcp_config ca = { .time_wait_ms = 50 };
	struct ebb_net_stats sb;
	struct ebb_nic_config nc = { .nmbufs = 8191 };
	struct ebb_net_config a = { .ip = IP_A, .netmask = 0xffffff00u };
	struct ebb_net_config b = { .ip = IP_B, .netmask = 0xffffff00u };
	struct attach_req r;

	ebbt_start("0-1");
	cr_assert_eq(ebb_nic_open_wire("tt", &nc, &wa, &wb), 0);
	na = ebb_net_if_open(wa, &a);
	nb = ebb_net_if_open(wb, &b);
	cr_assert_eq(ebb_tcp_configure(na, &ca), 0);
	cr_assert_eq(ebb_tcp_configure(nb, &cfg), 0);
	r = (struct attach_req){ na, 1 };
	cr_assert_eq(ebbt_call(0, do_attach, &r), 0);
	r = (struct attach_req){ nb, 1 };
	cr_assert_eq(ebbt_call(1, do_attach, &r), 0);
	cr_assert_eq(ebbt_call(1, do_listen_lim, NULL), 0);
	cr_assert_eq(ebbt_call(0, lim_open, NULL), 0);
	cr_assert(ebbt_wait_until(atomic_load(&lim_ok) +
						  atomic_load(&lim_err) ==
					  6,
				  3000),
		  "ok %d refused %d", atomic_load(&lim_ok),
		  atomic_load(&lim_err));
	cr_assert_eq(atomic_load(&lim_ok), 4);
	cr_assert_eq(atomic_load(&lim_err), 2);
	(void)ebb_net_if_stats(nb, &sb);
	cr_assert_eq(sb.tcp_conns_full, 2);
	ebb_tcp_unlisten(lis);
	teardown();
}

/* --- keepalive and the blocking send --- */

static atomic_int ka_err;
static struct ebb_tcp_conn *ka_conn;

static void ka_error(void *arg, struct ebb_tcp_conn *c, int err)
{
	(void)arg;
	(void)c;
	atomic_store(&ka_err, err);
}

static const struct ebb_tcp_ops ka_ops = {
	.recv = lim_recv, .error = ka_error, .connected = src_connected,
};

static void ka_open(void *arg)
{
	(void)arg;
	ka_conn = ebb_tcp_connect(na, IP_B, PORT, &ka_ops, &cli);
}

static void ka_arm(void *arg)
{
	(void)arg;
	cr_assert_eq(ebb_tcp_keepalive(ka_conn, 1, 1, 2), 0);
}

/* Probes that the peer answers keep an idle connection; once the peer
 * goes silent (every frame it sends dropped) the connection dies after
 * idle + count x interval, with -ETIMEDOUT. */
Test(tcp, keepalive)
{
	struct ebb_nic_faults mute = { .seed = 1, .drop = 1.0 };

	setup_cfg(&quick_tw, 8191);
	memset(&cli, 0, sizeof(cli));
	atomic_store(&ka_err, 0);
	cr_assert_eq(ebbt_call(1, do_listen_lim, NULL), 0);
	cr_assert_eq(ebbt_call(0, ka_open, NULL), 0);
	cr_assert(ebbt_wait_until(atomic_load(&cli.connected) == 1, 3000));
	cr_assert_eq(ebbt_call(0, ka_arm, NULL), 0);
	usleep(3500000);	/* three probes, all answered */
	cr_assert_eq(atomic_load(&ka_err), 0, "died while answered: %d",
		     atomic_load(&ka_err));
	cr_assert_eq(ebb_tcp_conn_count(na), 1);
	cr_assert_eq(ebb_nic_set_faults(wb, &mute), 0);
	cr_assert(ebbt_wait_until(atomic_load(&ka_err) != 0, 6000),
		  "a silent peer was never given up");
	cr_assert_eq(atomic_load(&ka_err), -ETIMEDOUT);
	cr_assert_eq(ebb_nic_set_faults(wb, NULL), 0);
	ebb_tcp_unlisten(lis);
	teardown();
}

static atomic_int blk_rc = 1;

/* A blocking event: 4 MB through a 64 KiB send buffer, waiting for room
 * in between. */
static void blk_send(void *arg)
{
	static uint8_t buf[4u << 20];

	(void)arg;
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = pattern[i % PAT];
	atomic_store(&blk_rc, ebb_tcp_send_all(cli.c, buf, sizeof(buf)));
	ebb_tcp_close(cli.c);
}

static void blk_open(void *arg)
{
	(void)arg;
	cli.c = ebb_tcp_connect(na, IP_B, PORT, &echo_cli_ops, &cli);
	cr_assert_not_null(cli.c);
	cr_assert_eq(ebb_spawn_local(blk_send, NULL), 0);
}

Test(tcp, blocking_send_all)
{
	struct ebb_tcp_config cfg = { .time_wait_ms = 50,
				      .sndbuf = 64 * 1024 };

	setup_cfg(&cfg, 8191);
	reset_streams(4u << 20);
	srv_sends = false;
	atomic_store(&blk_rc, 1);
	cr_assert_eq(ebbt_call(1, do_listen, NULL), 0);
	cr_assert_eq(ebbt_call(0, blk_open, NULL), 0);
	cr_assert(ebbt_wait_until(atomic_load(&srv.eof), 10000),
		  "%llu of 4 MiB arrived, send_all %d",
		  (unsigned long long)atomic_load(&srv.rcvd),
		  atomic_load(&blk_rc));
	cr_assert_eq(atomic_load(&blk_rc), 0);
	cr_assert_eq(atomic_load(&srv.rcvd), 4u << 20);
	cr_assert_eq(atomic_load(&srv.bad), 0);
	ebb_tcp_unlisten(lis);
	teardown();
}
