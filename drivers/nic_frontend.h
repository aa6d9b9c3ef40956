/* SPDX-License-Identifier: BSD-3-Clause */
/* Private: what the frontend needs of the ports it configures for its
 * nodes. Never installed. */
#ifndef EBBRT_NIC_FRONTEND_H
#define EBBRT_NIC_FRONTEND_H

#include <stdint.h>

#include <ebbrt/nic.h>

/* The DPDK port id of @nic. */
uint16_t ebb_nic_port_id(const struct ebb_nic *nic);

/* The rx interrupt fd of queue @q (a tap queue fd, a VFIO MSI-X eventfd),
 * or -1 when the device has none. */
int ebb_nic_queue_fd(const struct ebb_nic *nic, unsigned q);

/* Device counters of queue @q, as the device keeps them (so they count
 * what any process did on the port): packets in and out, and frames the
 * device dropped (rx missed and errors, summed over the port, reported on
 * queue 0 only). Returns 0 or -EINVAL. */
struct ebb_nic_queue_counters {
	uint64_t rx_packets, tx_packets, rx_bytes, tx_bytes, drops;
};
int ebb_nic_queue_counters(const struct ebb_nic *nic, unsigned q,
			   struct ebb_nic_queue_counters *out);

#endif
