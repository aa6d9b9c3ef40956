/* SPDX-License-Identifier: BSD-3-Clause */
/* TCP (RFC 9293) on an ebbrt network interface: per-core connections,
 * callbacks on the owning core, payloads in place in rte_mbuf chains. */
#ifndef EBBRT_TCP_H
#define EBBRT_TCP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ebb_net_if;
struct rte_mbuf;
struct ebb_tcp_conn;
struct ebb_tcp_listener;

/*
 * What the application hears of a connection. Every callback runs on the
 * connection's core (the owner of the rx queue its segments arrive on) and
 * may call any ebb_tcp_* function on it, ebb_tcp_close() included.
 */
struct ebb_tcp_ops {
	/*
	 * In-order data: @m is a chain holding m->pkt_len bytes of payload,
	 * in place (rte_pktmbuf_mtod() of each segment). The callback owns
	 * @m: free it, keep it, or send it back with ebb_tcp_send(). @m is
	 * NULL once, when the peer has closed its side (FIN): no more data
	 * comes; the connection stays open for sending until
	 * ebb_tcp_close(). Required.
	 */
	void (*recv)(void *arg, struct ebb_tcp_conn *c, struct rte_mbuf *m);
	/*
	 * Room to send again after ebb_tcp_send*() refused for a full send
	 * buffer (-EAGAIN), once at least a quarter of it is free. May be
	 * NULL.
	 */
	void (*writable)(void *arg, struct ebb_tcp_conn *c);
	/*
	 * An active open (ebb_tcp_connect()) is established. May be NULL.
	 */
	void (*connected)(void *arg, struct ebb_tcp_conn *c);
	/*
	 * The connection died before the application closed it: @err is
	 * -ECONNRESET (the peer reset it), -ECONNREFUSED (an active open was
	 * refused), -ETIMEDOUT (retransmissions, the handshake or keepalive
	 * gave up). The last callback: @c is freed when it returns. May be
	 * NULL (the connection is freed silently).
	 */
	void (*error)(void *arg, struct ebb_tcp_conn *c, int err);
};

/*
 * A new connection is established on a listener: called on its core.
 * Set its callbacks with ebb_tcp_set_ops() and return 0, or return
 * nonzero to reset it. Without ops set it is reset.
 */
typedef int (*ebb_tcp_accept_fn)(void *arg, struct ebb_tcp_conn *c);

/* Settings of the TCP of one interface; zero fields take defaults. */
struct ebb_tcp_config {
	/* Connections per queue (core), in every state; a SYN past it is
	 * answered with RST and counted in tcp_conns_full. Default 16384. */
	unsigned max_conns;
	/* Bytes one connection may have queued unacknowledged (sent or
	 * not) before ebb_tcp_send*() says -EAGAIN. Default 256 KiB. */
	unsigned sndbuf;
	/* The receive window offered, bytes (window scaling makes room
	 * above 64 KiB). Default 256 KiB. */
	unsigned rcvbuf;
	/* How long a connection closed by us first stays in TIME_WAIT, ms
	 * (2 MSL). Default 60000. */
	unsigned time_wait_ms;
	/* Delayed ACK timeout, ms (RFC 1122: at most 500). Default 40. */
	unsigned delack_ms;
	/* Smallest retransmission timeout, ms (RFC 6298 says 1000; Linux
	 * uses 200 but has SACK and RACK to avoid most timeouts, which this
	 * stack lacks). Default 50: above the 40 ms a Linux peer may delay
	 * an ACK, far above a LAN's round trip. */
	unsigned rto_min_ms;
};

/*
 * Set the TCP settings of @nif. Only before the first listener or
 * connection and before any queue is attached. Returns 0, -EINVAL (NULL
 * argument, rcvbuf over 1 GiB, delack_ms over 500) or -EBUSY (too late).
 * Main thread.
 */
int ebb_tcp_configure(struct ebb_net_if *nif, const struct ebb_tcp_config *cfg);

/* Listener settings; zero fields take defaults. */
struct ebb_tcp_listen_config {
	ebb_tcp_accept_fn accept;	/* required */
	void *arg;
	/* Half-open connections (SYN received, handshake not done) per
	 * core; SYNs past it are dropped and counted. Default 128. */
	unsigned backlog;
};

/*
 * Listen on TCP port @port (host order, not 0) of @nif's address on every
 * core: a connection is owned by the core whose queue its segments reach.
 * Returns the listener, or NULL with errno EINVAL (NULL argument, port 0,
 * no accept), EADDRINUSE, ENOMEM (no memory, or 16 listeners already).
 * Call on: the main thread, or any core before traffic for the port.
 */
struct ebb_tcp_listener *ebb_tcp_listen(struct ebb_net_if *nif, uint16_t port,
				       const struct ebb_tcp_listen_config *cfg);

/*
 * Stop listening. Established connections stay. Accepts NULL. From the main
 * thread it waits for a grace period; from a core the memory is kept until
 * ebb_net_if_close().
 */
void ebb_tcp_unlisten(struct ebb_tcp_listener *l);

/*
 * Open a connection to @ip:@port (host order) from the calling core's
 * queue: the source port is chosen so that the peer's segments land on
 * this core's queue. @ops->recv is required. @ops->connected is called once
 * established, @ops->error if it fails.
 * Returns the connection (sending may start at once: data waits for the
 * handshake), or NULL with errno EINVAL (NULL argument, bad address or
 * port), EPERM (the calling core owns no queue of @nif), ENETUNREACH,
 * EADDRNOTAVAIL (no free source port), ENOBUFS (the queue's connection
 * table is full) or ENOMEM.
 * Call on: a core owning an attached queue of @nif.
 */
struct ebb_tcp_conn *ebb_tcp_connect(struct ebb_net_if *nif, uint32_t ip,
				     uint16_t port,
				     const struct ebb_tcp_ops *ops, void *arg);

/* Set the callbacks of @c (in the accept callback). Owning core. */
void ebb_tcp_set_ops(struct ebb_tcp_conn *c, const struct ebb_tcp_ops *ops,
		     void *arg);

/*
 * Queue the chain @m (its pkt_len bytes, from data_off on) to send.
 * Returns 0 (the stack owns @m; it leaves as the windows allow, and its
 * buffers are kept until acknowledged, without a copy), -EAGAIN (the send
 * buffer is full: the caller keeps @m; writable() says when to retry),
 * -EPIPE (the connection is closing or dead: the caller keeps @m) or
 * -EINVAL. An empty @m is freed and 0 returned. Owning core.
 */
int ebb_tcp_send(struct ebb_tcp_conn *c, struct rte_mbuf *m);

/*
 * Copy up to @len bytes of @buf into mbufs and queue them. Returns how
 * many bytes were taken (fewer when the send buffer fills or mbufs run
 * out), -EAGAIN (none: buffer full or no mbuf), -EPIPE or -EINVAL. Owning
 * core.
 */
ssize_t ebb_tcp_send_buf(struct ebb_tcp_conn *c, const void *buf, size_t len);

/*
 * Blocking form, for a blocking event: send all @len bytes of @buf,
 * waiting (ebb_event_save_context()) while the send buffer is full.
 * Returns 0, -EPIPE (the connection closed or died meanwhile: some bytes
 * may have gone), -EPERM (not in an event that may block), -EINVAL.
 * Owning core.
 */
int ebb_tcp_send_all(struct ebb_tcp_conn *c, const void *buf, size_t len);

/* Bytes ebb_tcp_send*() would take now. Owning core. */
size_t ebb_tcp_send_space(const struct ebb_tcp_conn *c);

/*
 * Close: queued data still leaves, then a FIN; the stack frees @c when
 * the exchange ends. No callback of @c runs after this; data arriving
 * later is dropped. Accepts NULL. Owning core.
 */
void ebb_tcp_close(struct ebb_tcp_conn *c);

/* Reset @c (RST) and free it at once; no callback runs. Accepts NULL.
 * Owning core. */
void ebb_tcp_abort(struct ebb_tcp_conn *c);

/*
 * Keepalive (off by default): after @idle_s seconds without a segment from
 * the peer, probe every @intvl_s seconds and give up (error -ETIMEDOUT)
 * after @count unanswered probes. @idle_s 0 turns it off. Returns 0 or
 * -EINVAL. Owning core.
 */
int ebb_tcp_keepalive(struct ebb_tcp_conn *c, unsigned idle_s,
		      unsigned intvl_s, unsigned count);

/* The peer's address and port, host order. Any thread. */
uint32_t ebb_tcp_peer_ip(const struct ebb_tcp_conn *c);
uint16_t ebb_tcp_peer_port(const struct ebb_tcp_conn *c);
uint16_t ebb_tcp_local_port(const struct ebb_tcp_conn *c);

/* Connections of @nif in any state (TIME_WAIT included), all cores. Any
 * thread; may be slightly stale. */
unsigned ebb_tcp_conn_count(const struct ebb_net_if *nif);

#ifdef __cplusplus
}
#endif
#endif
