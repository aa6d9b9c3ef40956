/* SPDX-License-Identifier: BSD-3-Clause */
/* TCP with Linux's own stack as the peer over a tap (test/tcp_peer.py on
 * plain sockets): 100 MB each way with every byte checked, the same with
 * the tap port impaired both ways (drop, reorder, duplicate, corrupt,
 * delay), a zero window that Linux holds shut for 2 s (persist timer), and
 * a SYN flood plus blind RST, SYN and ACK segments from a raw socket while
 * an established connection keeps being served. Needs root, hugepages and
 * /dev/net/tun; sets up and removes its tap. */
#include <stdatomic.h>
#include <stdlib.h>

#include <rte_mbuf.h>

#include <ebbrt/tcp.h>

#include "test_net_peer.h"

#define PAT 65521u
#define MB (1000u * 1000u)

static uint8_t pattern[PAT];
static char peer[512];

static void pattern_init(void)
{
	const char *src = getenv("EBBT_SRCDIR");

	for (unsigned i = 0; i < PAT; i++)
		pattern[i] = (uint8_t)(i * 131u + (i >> 8) + 7u);
	cr_assert(src != NULL, "EBBT_SRCDIR names the source tree (meson "
			       "sets it)");
	snprintf(peer, sizeof(peer), "python3 %s/test/tcp_peer.py", src);
}

/* --- servers: a checking sink (5001), a patterned source (5002), echo
 * (7); one connection each at a time --- */

struct conn_state {
	uint64_t off, total;
};

static atomic_ullong sink_bytes, sink_bad, src_total;
static atomic_int sink_eofs, src_done, errors;

static void sink_recv(void *arg, struct ebb_tcp_conn *c, struct rte_mbuf *m)
{
	struct conn_state *st = arg;
	uint64_t bad = 0;

	if (m == NULL) {
		atomic_fetch_add(&sink_eofs, 1);
		ebb_tcp_close(c);
		free(st);
		return;
	}
	for (struct rte_mbuf *x = m; x != NULL; x = x->next) {
		const uint8_t *p = rte_pktmbuf_mtod(x, const uint8_t *);

		for (uint16_t i = 0; i < x->data_len; i++, st->off++)
			bad += p[i] != pattern[st->off % PAT];
	}
	atomic_fetch_add(&sink_bytes, rte_pktmbuf_pkt_len(m));
	if (bad)
		atomic_fetch_add(&sink_bad, bad);
	rte_pktmbuf_free(m);
}

static void any_error(void *arg, struct ebb_tcp_conn *c, int err)
{
	(void)c;
	cr_log_error("connection error %d", err);
	atomic_fetch_add(&errors, 1);
	free(arg);
}

static const struct ebb_tcp_ops sink_ops = {
	.recv = sink_recv, .error = any_error,
};

static void src_push(struct ebb_tcp_conn *c, struct conn_state *st)
{
	while (st->off < st->total) {
		uint32_t at = (uint32_t)(st->off % PAT);
		size_t n = RTE_MIN((uint64_t)(PAT - at), st->total - st->off);
		ssize_t k = ebb_tcp_send_buf(c, pattern + at, n);

		if (k < 0)
			return;	/* -EAGAIN: writable() calls again */
		st->off += (uint64_t)k;
	}
	atomic_fetch_add(&src_done, 1);
	ebb_tcp_close(c);
	free(st);
}

static void src_writable(void *arg, struct ebb_tcp_conn *c)
{
	src_push(c, arg);
}

static void drop_recv(void *arg, struct ebb_tcp_conn *c, struct rte_mbuf *m)
{
	(void)arg;
	(void)c;
	rte_pktmbuf_free(m);
}

static const struct ebb_tcp_ops src_ops = {
	.recv = drop_recv, .writable = src_writable, .error = any_error,
};

static void echo_recv(void *arg, struct ebb_tcp_conn *c, struct rte_mbuf *m)
{
	(void)arg;
	if (m == NULL) {
		ebb_tcp_close(c);
		return;
	}
	if (ebb_tcp_send(c, m) != 0)
		rte_pktmbuf_free(m);
}

static void echo_error(void *arg, struct ebb_tcp_conn *c, int err)
{
	(void)arg;
	(void)c;
	cr_log_error("echo connection error %d", err);
	atomic_fetch_add(&errors, 1);
}

static const struct ebb_tcp_ops echo_ops = {
	.recv = echo_recv, .error = echo_error,
};

static int accept_sink(void *arg, struct ebb_tcp_conn *c)
{
	struct conn_state *st = calloc(1, sizeof(*st));

	(void)arg;
	if (st == NULL)
		return -1;
	ebb_tcp_set_ops(c, &sink_ops, st);
	return 0;
}

static int accept_src(void *arg, struct ebb_tcp_conn *c)
{
	struct conn_state *st = calloc(1, sizeof(*st));

	(void)arg;
	if (st == NULL)
		return -1;
	st->total = atomic_load(&src_total);
	ebb_tcp_set_ops(c, &src_ops, st);
	src_push(c, st);
	return 0;
}

static int accept_echo(void *arg, struct ebb_tcp_conn *c)
{
	(void)arg;
	ebb_tcp_set_ops(c, &echo_ops, NULL);
	return 0;
}

static struct ebb_tcp_listener *lis[3];

static void servers_up(void)
{
	struct ebb_tcp_listen_config a = { .accept = accept_sink };
	struct ebb_tcp_listen_config b = { .accept = accept_src };
	struct ebb_tcp_listen_config e = { .accept = accept_echo,
					   .backlog = 64 };
	struct ebb_tcp_config tc = { .time_wait_ms = 100 };

	pattern_init();
	net_up();
	cr_assert_eq(ebb_tcp_configure(nif, &tc), 0);
	lis[0] = ebb_tcp_listen(nif, 5001, &a);
	lis[1] = ebb_tcp_listen(nif, 5002, &b);
	lis[2] = ebb_tcp_listen(nif, 7, &e);
	cr_assert(lis[0] && lis[1] && lis[2], "listen: %s", strerror(errno));
	net_attach();
}

static void servers_down(void)
{
	cr_assert(ebbt_wait_until(ebb_tcp_conn_count(nif) == 0, 3000),
		  "%u connections left", ebb_tcp_conn_count(nif));
	for (unsigned i = 0; i < 3; i++)
		ebb_tcp_unlisten(lis[i]);
	net_down();
}

static void tcp_stats_log(const char *when)
{
	struct ebb_net_stats s = stats();

	cr_log_info("%s: tcp rx %lu tx %lu retrans %lu fast %lu timeouts %lu "
		    "ooo %lu dropped %lu badsum %lu challenge %lu",
		    when, (unsigned long)s.tcp_rx, (unsigned long)s.tcp_tx,
		    (unsigned long)s.tcp_retransmits,
		    (unsigned long)s.tcp_fast_retransmits,
		    (unsigned long)s.tcp_timeouts, (unsigned long)s.tcp_ooo,
		    (unsigned long)s.tcp_dropped,
		    (unsigned long)s.tcp_bad_checksum,
		    (unsigned long)s.tcp_challenge_acks);
}

/* Linux uploads @bytes to the sink, then downloads as many. */
static void both_ways(uint64_t bytes)
{
	char out[1024];
	int rc;

	atomic_store(&sink_bytes, 0);
	atomic_store(&sink_bad, 0);
	rc = run(out, sizeof(out), "timeout 300 %s send " NODE_IP " 5001 %lu",
		 peer, (unsigned long)bytes);
	tcp_stats_log("after the upload");
	cr_assert_eq(rc, 0, "upload: %s", out);
	cr_log_info("%s", out);
	cr_assert_eq(atomic_load(&sink_bytes), bytes);
	cr_assert_eq(atomic_load(&sink_bad), 0, "%llu bytes differ",
		     (unsigned long long)atomic_load(&sink_bad));
	atomic_store(&src_total, bytes);
	rc = run(out, sizeof(out), "timeout 300 %s recv " NODE_IP " 5002 %lu",
		 peer, (unsigned long)bytes);
	tcp_stats_log("after the download");
	cr_assert_eq(rc, 0, "download: %s", out);
	cr_log_info("%s", out);
	cr_assert_eq(atomic_load(&errors), 0);
}

Test(tcp_linux, hundred_mb_each_way)
{
	servers_up();
	both_ways(100u * MB);
	servers_down();
}

Test(tcp_linux, hundred_mb_impaired)
{
	struct ebb_nic_faults f = { .seed = 5, .drop = 0.05, .reorder = 0.01,
				    .duplicate = 0.01, .corrupt = 0.002,
				    .delay_us = 200 };
	struct ebb_nic_stats ns;

	servers_up();
	cr_assert_eq(ebb_nic_set_faults(nic, &f), 0);
	both_ways(100u * MB);
	(void)ebb_nic_stats(nic, &ns);
	cr_log_info("faults: dropped %lu duplicated %lu reordered %lu "
		    "corrupted %lu delayed %lu",
		    (unsigned long)ns.faults_dropped,
		    (unsigned long)ns.faults_duplicated,
		    (unsigned long)ns.faults_reordered,
		    (unsigned long)ns.faults_corrupted,
		    (unsigned long)ns.faults_delayed);
	cr_assert_gt(ns.faults_dropped, 1000);
	cr_assert_gt(ns.faults_corrupted, 10);
	cr_assert_eq(ebb_nic_set_faults(nic, NULL), 0);
	servers_down();
}

/* Linux shrinks its buffer and does not read for 2 s: its window closes,
 * the persist timer probes it, and everything arrives once it reads. */
Test(tcp_linux, zero_window)
{
	char out[1024];
	int rc;

	servers_up();
	atomic_store(&src_total, 8u * MB);
	rc = run(out, sizeof(out), "timeout 60 %s recv " NODE_IP
				   " 5002 %u 2", peer, 8u * MB);
	tcp_stats_log("after the stall");
	cr_assert_eq(rc, 0, "download: %s", out);
	cr_log_info("%s", out);
	cr_assert_eq(atomic_load(&errors), 0);
	servers_down();
}

/* --- attacks from a raw socket --- */

struct t_tcp {
	uint16_t sport, dport;
	uint32_t seq, ack;
	uint8_t off, flags;
	uint16_t win, sum, urp;
} __attribute__((packed));

static size_t build_tcp(uint8_t *f, const char *src_ip, uint16_t sport,
			uint16_t dport, uint32_t seq, uint32_t ack,
			uint8_t flags)
{
	struct t_eth *eth = (struct t_eth *)f;
	struct t_ip *ip = (struct t_ip *)(eth + 1);
	struct t_tcp *th = (struct t_tcp *)(ip + 1);
	uint8_t pseudo[12 + sizeof(*th)];

	memcpy(eth->dst, node_mac, 6);
	memcpy(eth->src, linux_mac, 6);
	eth->type = htons(ETH_P_IP);
	memset(ip, 0, sizeof(*ip));
	ip->vhl = 0x45;
	ip->len = htons((uint16_t)(sizeof(*ip) + sizeof(*th)));
	ip->ttl = 64;
	ip->proto = IPPROTO_TCP;
	ip->src = inet_addr(src_ip);
	ip->dst = inet_addr(NODE_IP);
	ip_fix_sum(f);
	memset(th, 0, sizeof(*th));
	th->sport = htons(sport);
	th->dport = htons(dport);
	th->seq = htonl(seq);
	th->ack = htonl(ack);
	th->off = 5 << 4;
	th->flags = flags;
	th->win = htons(65535);
	memcpy(pseudo, &ip->src, 4);
	memcpy(pseudo + 4, &ip->dst, 4);
	pseudo[8] = 0;
	pseudo[9] = IPPROTO_TCP;
	pseudo[10] = 0;
	pseudo[11] = sizeof(*th);
	memcpy(pseudo + 12, th, sizeof(*th));
	th->sum = htons(csum(pseudo, sizeof(pseudo)));
	return sizeof(*eth) + sizeof(*ip) + sizeof(*th);
}

Test(tcp_linux, syn_flood_and_blind_segments)
{
	struct ebb_net_stats before, after;
	uint8_t f[128];
	char out[1024];
	FILE *echo;
	int fd, rc;
	size_t len;

	/* Linux's TIME_WAIT of an earlier run would hold a fixed port. */
	uint16_t sport = (uint16_t)(30000 + getpid() % 20000);

	servers_up();
	fd = raw_socket();
	/* An established connection from @sport that keeps doing round
	 * trips for 4 s while the attacks run. */
	snprintf(out, sizeof(out), "%s echo " NODE_IP " 7 4 %u", peer, sport);
	echo = popen(out, "r");
	cr_assert_not_null(echo);
	cr_assert_not_null(fgets(out, sizeof(out), echo), "echo peer died");
	cr_assert(strstr(out, "connected") != NULL, "%s", out);
	before = stats();
	srand(7);
	for (unsigned i = 0; i < 20000; i++) {
		/* SYNs from an address that never answers ARP: each one
		 * would sit half open; the backlog caps them. */
		len = build_tcp(f, OTHER_IP, (uint16_t)(1024 + i % 60000), 7,
				(uint32_t)rand(), 0, 0x02);
		(void)send(fd, f, len, 0);
		if (i % 8 == 0) {
			/* Blind RST, SYN and ACK at the live connection,
			 * with guessed sequence numbers. */
			uint8_t fl[3] = { 0x04, 0x02, 0x10 };

			len = build_tcp(f, LINUX_IP, sport, 7,
					(uint32_t)rand(), (uint32_t)rand(),
					fl[(i / 8) % 3]);
			(void)send(fd, f, len, 0);
		}
		if (i % 256 == 0)
			usleep(1000);
	}
	after = stats();
	close(fd);
	out[0] = '\0';
	while (fgets(out, sizeof(out), echo) != NULL &&
	       strstr(out, "round trips") == NULL)
		;
	rc = pclose(echo);
	tcp_stats_log("after the attacks");
	cr_assert_eq(rc, 0, "echo peer: %s", out);
	cr_log_info("%s", out);
	cr_assert(strstr(out, "round trips") != NULL, "%s", out);
	cr_assert_gt(after.tcp_backlog_full, before.tcp_backlog_full,
		     "the backlog never filled");
	cr_assert_gt(after.tcp_challenge_acks, before.tcp_challenge_acks,
		     "no challenge ACK");
	cr_assert_eq(after.tcp_rst_rcvd, before.tcp_rst_rcvd,
		     "a blind RST closed something");
	cr_assert_eq(atomic_load(&errors), 0);
	/* Detaching drops the half-open connections; SYN-ACKs of theirs
	 * may still wait for the spoofed address's ARP answer (at most 8,
	 * freed when the interface closes). */
	for (unsigned i = 0; i < 3; i++)
		ebb_tcp_unlisten(lis[i]);
	net_down_held(8);
}
