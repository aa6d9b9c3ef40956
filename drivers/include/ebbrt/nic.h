/* SPDX-License-Identifier: BSD-3-Clause */
/* The one NIC interface of ebbrt over DPDK ethdev: open a port, give each
 * rx/tx queue pair to a core, receive through a vector, send in bursts.
 * Nothing above drivers/ calls rte_eth_*. */
#ifndef EBBRT_NIC_H
#define EBBRT_NIC_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct rte_mbuf;
struct rte_mempool;
struct ebb_nic;

/* Zero-initialise, then set what you need; zero fields take defaults. */
struct ebb_nic_config {
	/* DPDK device arguments: a vdev ("net_tap0,iface=ebb0") or a PCI
	 * address ("0000:03:00.0"). Required. */
	const char *devargs;
	/* rx/tx queue pairs, one per core that will own one (default 1). */
	unsigned nqueues;
	/* Descriptors per queue (default 1024). */
	unsigned ring_size;
	/* mbufs in the port's pool (default 8191). */
	unsigned nmbufs;
	/* Do not use rx interrupts even where the device has them: halted
	 * cores then wake on a bounded timeout (docs/runtime.md). */
	bool no_rx_intr;
};

/*
 * Open and start the port @cfg->devargs names, with its own mbuf pool.
 * Returns the NIC, or NULL with errno EINVAL (bad config), ENODEV (DPDK
 * could not probe or configure the device; the log says why), EEXIST
 * (already open) or ENOMEM. Call on: the main thread, after ebb_init().
 */
struct ebb_nic *ebb_nic_open(const struct ebb_nic_config *cfg);

/*
 * Stop and close the port, remove the device (a tap interface goes away)
 * and free its pool. Call with every queue detached or the cores stopped
 * (ebb_stop(), ebb_wait()), and before ebb_fini(). Accepts NULL. Main
 * thread.
 */
void ebb_nic_close(struct ebb_nic *nic);

/* The port's MAC address into @mac. Returns 0 or -EINVAL. Any thread. */
int ebb_nic_mac(const struct ebb_nic *nic, uint8_t mac[6]);

/* The port's mbuf pool (to build packets to send). Any thread. */
struct rte_mempool *ebb_nic_pool(const struct ebb_nic *nic);

/* True when the port's rx queues have interrupts (a halted core wakes
 * on a frame at once rather than on a timeout). */
bool ebb_nic_has_rx_intr(const struct ebb_nic *nic);

/*
 * Receive handler: @n frames (1 to 32) from the queue; it owns them and
 * must free or send each one.
 */
typedef void (*ebb_nic_rx_fn)(void *arg, struct rte_mbuf **pkts, uint16_t n);

/*
 * Give rx/tx queue pair @queue to the calling core: a vector on this core
 * polls it and calls @fn(@arg, ...) with each burst. Returns 0, -EPERM
 * (not on an ebbrt core), -EINVAL (no such queue, no fn), -EBUSY (queue
 * already attached), or the errors of ebb_vector_add().
 * Call on: the core that will own the queue.
 */
int ebb_nic_attach(struct ebb_nic *nic, unsigned queue, ebb_nic_rx_fn fn,
		   void *arg);

/* Take queue @queue back from the calling core; frames it had received
 * but not handed over are freed. 0, -EPERM or -EINVAL. Owning core. */
int ebb_nic_detach(struct ebb_nic *nic, unsigned queue);

/*
 * Send @n frames on queue @queue at once (no batching delay). Returns how
 * many the device took; the stack owns those, the caller keeps the rest.
 * Call on: the core that owns the queue.
 */
uint16_t ebb_nic_tx(struct ebb_nic *nic, unsigned queue,
		    struct rte_mbuf **pkts, uint16_t n);

/* Per-port counters. */
struct ebb_nic_stats {
	uint64_t rx_packets, tx_packets, tx_full;	/* tx_full: not taken */
	uint64_t rx_bursts, rx_wakeups_armed;
};

/* Sum of the queues' counters. Returns 0 or -EINVAL. Any thread (values
 * may be slightly stale). */
int ebb_nic_stats(const struct ebb_nic *nic, struct ebb_nic_stats *out);

#ifdef __cplusplus
}
#endif
#endif
