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
	/* Other processes use the port and its pool (the frontend sets up
	 * its nodes' ports so): the pool keeps no per-lcore cache. */
	bool shared;
};

/*
 * Open and start the port @cfg->devargs names, with its own mbuf pool.
 * Returns the NIC, or NULL with errno EINVAL (bad config), ENODEV (DPDK
 * could not probe or configure the device; the log says why), EEXIST
 * (already open) or ENOMEM. Call on: the main thread, after ebb_init().
 */
struct ebb_nic *ebb_nic_open(const struct ebb_nic_config *cfg);

/*
 * Cluster node (started by `ebbrt run`): the port the frontend gave this
 * node -- its tap, or its PCI device or VF -- with one rx/tx queue pair
 * per core: core i must attach queue i. The frontend owns the port and
 * its pool; ebb_nic_close() releases only this handle. Rx interrupts
 * reach a halted core as the frontend set them up (`ebbrt run --msix`).
 * Faults asked for with `ebbrt run --faults` are set on it (as by
 * ebb_nic_set_faults()), and its fault counters show in `ebbrt status`;
 * likewise for ebb_nic_node_wire().
 * Returns NULL with errno ENOTSUP (standalone), ENOENT (no port), ENOMEM.
 * Call on: the main thread, after ebb_init().
 */
struct ebb_nic *ebb_nic_node_port(void);

/*
 * Cluster node: its end of the virtual wire to another node (`ebbrt run
 * --wire`), queue i for core i, as ebb_nic_node_port(). Frames come from
 * and go back to the sending node's pool; the sender kicks the halted
 * receiver. NULL with errno ENOTSUP (standalone), ENOENT (no wire).
 */
struct ebb_nic *ebb_nic_node_wire(void);

/* Longest name of a virtual wire (ebb_nic_open_wire()). */
#define EBB_NIC_WIRE_NAME_MAX 16

/*
 * Open a back-to-back virtual wire: two ports of this process, ends @a and
 * @b, joined by crossed rte_rings (DPDK net_ring, ports
 * "net_ring_<name>_a" and "net_ring_<name>_b"). What @a sends on queue i
 * arrives on queue i of @b, and the other way round.
 *
 * From @cfg: nqueues queue pairs per end (default 1, at most 16: net_ring's
 * limit), ring_size frames per ring and direction (default 1024), nmbufs
 * mbufs in the one pool both ends share (ebb_nic_pool() of either end): a
 * frame sent by one end is freed by the other's receiver, so a pool per
 * end would have to outlive the other end anyway. devargs and no_rx_intr
 * are ignored.
 *
 * net_ring has no rx interrupts. Instead the sender wakes the receiver:
 * the rx vector of each end is EBB_VECTOR_FD_KICK, and ebb_nic_tx() on one
 * end's queue i, after it has put frames on the ring, calls ebb_core_kick()
 * on the core the other end's queue i is attached to. A halted receiver
 * wakes at once, never on a timeout.
 *
 * Close each end with ebb_nic_close(): it stops and removes that end's
 * port; the second close also frees the rings (and any frames left in
 * them) and the pool.
 *
 * Returns 0 and sets *@a and *@b, or -EINVAL (a NULL argument, an empty
 * name or one longer than EBB_NIC_WIRE_NAME_MAX, too many queues),
 * -EEXIST (a wire of that name is open), -ENOMEM, or -ENODEV (DPDK could
 * not create or start a port; the log says why). On an error *@a and *@b
 * (when not NULL) are set to NULL. Call on: the main thread, after
 * ebb_init().
 */
int ebb_nic_open_wire(const char *name, const struct ebb_nic_config *cfg,
		      struct ebb_nic **a, struct ebb_nic **b);

/*
 * Stop and close the port, remove the device (a tap interface goes away)
 * and free its pool (a wire end: see ebb_nic_open_wire()). Frames held
 * back by faults (ebb_nic_set_faults()) are freed. Call with every queue detached or the cores stopped
 * (ebb_stop(), ebb_wait()), and before ebb_fini(). Accepts NULL. Main
 * thread.
 */
void ebb_nic_close(struct ebb_nic *nic);

/* The port's MAC address into @mac. A wire end, whose device has none,
 * gets a locally administered one derived from its name. Returns 0 or
 * -EINVAL. Any thread. */
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
 * but not handed over, and frames its faults still hold back (delayed or
 * to be reordered), are freed. 0, -EPERM or -EINVAL. Owning core. */
int ebb_nic_detach(struct ebb_nic *nic, unsigned queue);

/*
 * Send @n frames on queue @queue at once (no batching delay). Returns how
 * many the device took; the stack owns those, the caller keeps the rest.
 * With faults set (ebb_nic_set_faults()) it returns how many the fault
 * stage took: it may drop, hold or delay them, and sends the rest as the
 * device takes them. On a wire, kicks the core of the other end's queue.
 * Call on: the core that owns the queue.
 */
uint16_t ebb_nic_tx(struct ebb_nic *nic, unsigned queue,
		    struct rte_mbuf **pkts, uint16_t n);

/*
 * Faults to inject on a port's tx path, to test a stack over a bad link
 * (the kernel here has no netem). Probabilities are per frame, in [0, 1],
 * applied in this order: drop, corrupt, reorder, duplicate, delay.
 */
struct ebb_nic_faults {
	uint64_t seed;		/* same seed + same frames = same faults */
	double drop;		/* the frame is freed, never sent */
	double duplicate;	/* a copy of it is sent right after it */
	double reorder;		/* it is held and sent after the next frame
				 * (or after EBB_NIC_REORDER_HOLD_US if no
				 * frame follows) */
	double corrupt;		/* one random bit flipped past the Ethernet
				 * header (a shared mbuf is copied first) */
	uint32_t delay_us;	/* every frame leaves this much later; order
				 * is kept (a FIFO) */
};

/* Longest a frame is held for reordering when no frame follows it. */
#define EBB_NIC_REORDER_HOLD_US 1000u

/*
 * Inject faults @f on every tx queue of @nic (NULL: none). Any port: a tap
 * facing Linux, a wire end. Each queue takes the new setting at its next
 * ebb_nic_tx() or timer and restarts its own generator from @f->seed and
 * its queue number, drawing the same number of values per frame whatever
 * befalls it: a given seed and sequence of frames on a queue meet the same
 * faults every time. Held or delayed frames leave from the owning core
 * (a timer and the queue's vector), so they need no further sends; after
 * faults are turned off, frames still waiting leave in order at their due
 * time and new frames queue behind them until none wait.
 * Returns 0 or -EINVAL (no nic, a probability outside [0, 1] or NaN).
 * Call on: any thread.
 */
int ebb_nic_set_faults(struct ebb_nic *nic, const struct ebb_nic_faults *f);

/*
 * The rx queue of @nic that a frame from @src_ip:@src_port to
 * @dst_ip:@dst_port (IPv4, TCP or UDP, host order) reaches: 0 with one
 * queue; by the device's RSS hash (rte_softrss() with its key and
 * redirection table) with several. -1 when it cannot tell: a virtual
 * wire (the peer answers on the queue it received on, so any port
 * does) or a device without RSS. -EINVAL without @nic. Main thread or the
 * core of any queue (the first call reads the device's RSS settings).
 */
int ebb_nic_rx_queue(struct ebb_nic *nic, uint32_t src_ip, uint32_t dst_ip,
		     uint16_t src_port, uint16_t dst_port);

/*
 * Whether a sender on @nic may leave the TCP or UDP checksum to it: true
 * for a virtual wire end (ebb_nic_open_wire(), ebb_nic_node_wire()). Set
 * RTE_MBUF_F_TX_IPV4 and RTE_MBUF_F_TX_TCP_CKSUM (or _UDP_CKSUM), l2_len
 * and l3_len; the frame crosses the wire as it is and its receiver gets
 * RTE_MBUF_F_RX_L4_CKSUM_GOOD, as virtio between guests of one host or
 * Linux's loopback skip the sum. A frame the fault injector corrupts
 * arrives with RTE_MBUF_F_RX_L4_CKSUM_BAD instead, as a NIC that checks
 * would say. Frames sent without the flags arrive with the receive
 * checksum flags cleared (unknown: the receiver sums). Other ports: false.
 * Any thread.
 */
bool ebb_nic_tx_l4_csum_offload(const struct ebb_nic *nic);

/* Largest IP datagram a virtual wire carries: jumbo frames, as a
 * host-local link would have (frames longer than an mbuf are chains). */
#define EBB_NIC_WIRE_MTU 9000u

/* The MTU of @nic: EBB_NIC_WIRE_MTU on a virtual wire end, 1500
 * (Ethernet's) otherwise (ebb_nic does not read a device's). Any thread. */
unsigned ebb_nic_mtu(const struct ebb_nic *nic);

/* Per-port counters. */
struct ebb_nic_stats {
	uint64_t rx_packets, tx_packets, tx_full;	/* tx_full: not taken */
	uint64_t rx_bursts, rx_wakeups_armed;
	/* Faults injected (ebb_nic_set_faults()): frames dropped, copies
	 * sent, frames held for reordering, frames with a bit flipped,
	 * frames (copies included) delayed. */
	uint64_t faults_dropped, faults_duplicated, faults_reordered;
	uint64_t faults_corrupted, faults_delayed;
};

/* Sum of the queues' counters. Returns 0 or -EINVAL. Any thread (values
 * may be slightly stale). */
int ebb_nic_stats(const struct ebb_nic *nic, struct ebb_nic_stats *out);

#ifdef __cplusplus
}
#endif
#endif
