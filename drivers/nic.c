/* SPDX-License-Identifier: BSD-3-Clause */
/* NIC ports over DPDK ethdev: set-up, rx queues as vectors, tx bursts. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_dev.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>

#include <ebbrt/ebbrt.h>
#include <ebbrt/nic.h>

#define NIC_BURST 32
#define NIC_DEFAULT_RING 1024u
#define NIC_DEFAULT_MBUFS 8191u
#define NIC_POOL_CACHE 256u

#define STAT_ADD(q, f, n)                                                   \
	__atomic_store_n(&(q)->f, (q)->f + (n), __ATOMIC_RELAXED)

/* One rx/tx queue pair, owned by one core once attached. */
struct nic_queue {
	struct ebb_nic *nic;
	uint16_t id;
	int vec;			/* vector on the owning core, or -1 */
	unsigned core;
	int intr_fd;			/* rx interrupt fd, or -1 */
	ebb_nic_rx_fn fn;
	void *arg;
	/* pending() receives ahead into here; handle() passes it on. */
	uint16_t nstash;
	struct rte_mbuf *stash[NIC_BURST];
	/* counters: owner writes, anyone reads */
	uint64_t rx_packets, tx_packets, tx_full, rx_bursts, armed;
} __rte_cache_aligned;

struct ebb_nic {
	uint16_t port;
	bool rx_intr;
	unsigned nq;
	struct rte_device *dev;
	struct rte_mempool *pool;
	struct nic_queue *q;
};

static bool rxq_pending(void *arg)
{
	struct nic_queue *q = arg;

	/* Not every PMD can count a queue (rte_eth_rx_queue_count), so
	 * look by receiving: what we got waits here for handle(). */
	if (q->nstash == 0)
		q->nstash = rte_eth_rx_burst(q->nic->port, q->id, q->stash,
					     NIC_BURST);
	return q->nstash != 0;
}

static void rxq_handle(void *arg)
{
	struct nic_queue *q = arg;
	struct rte_mbuf *pkts[NIC_BURST];
	uint16_t n = q->nstash;

	memcpy(pkts, q->stash, sizeof(pkts[0]) * n);
	q->nstash = 0;
	STAT_ADD(q, rx_packets, n);
	STAT_ADD(q, rx_bursts, 1);
	q->fn(q->arg, pkts, n);
}

static int rxq_arm(void *arg)
{
	struct nic_queue *q = arg;

	STAT_ADD(q, armed, 1);
	return rte_eth_dev_rx_intr_enable(q->nic->port, q->id);
}

static void rxq_disarm(void *arg)
{
	struct nic_queue *q = arg;

	rte_eth_dev_rx_intr_disable(q->nic->port, q->id);
}

/* Find the port of a device DPDK has probed, by the name in @devargs
 * (before the first comma). */
static int port_of(const char *devargs, uint16_t *port)
{
	char name[RTE_ETH_NAME_MAX_LEN];
	size_t len = strcspn(devargs, ",");

	if (len == 0 || len >= sizeof(name))
		return -EINVAL;
	memcpy(name, devargs, len);
	name[len] = '\0';
	return rte_eth_dev_get_port_by_name(name, port) == 0 ? 0 : -ENODEV;
}

static int port_configure(struct ebb_nic *nic, unsigned ring)
{
	struct rte_eth_conf conf;
	struct rte_eth_dev_info info;
	int socket = rte_eth_dev_socket_id(nic->port);
	int rc;

	rc = rte_eth_dev_info_get(nic->port, &info);
	if (rc)
		return rc;
	if (nic->nq > info.max_rx_queues || nic->nq > info.max_tx_queues) {
		fprintf(stderr, "ebbrt nic: %s has %u rx / %u tx queues, %u "
				"asked\n",
			rte_dev_name(info.device), info.max_rx_queues,
			info.max_tx_queues, nic->nq);
		return -EINVAL;
	}
	memset(&conf, 0, sizeof(conf));
	if (nic->nq > 1 && info.flow_type_rss_offloads) {
		conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
		conf.rx_adv_conf.rss_conf.rss_hf = info.flow_type_rss_offloads &
						   (RTE_ETH_RSS_IP |
						    RTE_ETH_RSS_TCP |
						    RTE_ETH_RSS_UDP);
	}
	conf.intr_conf.rxq = nic->rx_intr;
	rc = rte_eth_dev_configure(nic->port, nic->nq, nic->nq, &conf);
	if (rc && nic->rx_intr) {
		/* No rx interrupts on this device: poll, wake on timeout. */
		nic->rx_intr = false;
		conf.intr_conf.rxq = 0;
		rc = rte_eth_dev_configure(nic->port, nic->nq, nic->nq, &conf);
	}
	if (rc)
		return rc;
	for (unsigned i = 0; i < nic->nq; i++) {
		rc = rte_eth_rx_queue_setup(nic->port, i, ring, socket, NULL,
					    nic->pool);
		if (!rc)
			rc = rte_eth_tx_queue_setup(nic->port, i, ring, socket,
						    NULL);
		if (rc)
			return rc;
	}
	return rte_eth_dev_start(nic->port);
}

struct ebb_nic *ebb_nic_open(const struct ebb_nic_config *cfg)
{
	struct ebb_nic *nic = NULL;
	struct rte_eth_dev_info info;
	char pool_name[RTE_MEMPOOL_NAMESIZE];
	unsigned ring, nmbufs;
	uint16_t port;
	int rc, err;

	if (cfg == NULL || cfg->devargs == NULL || cfg->devargs[0] == '\0' ||
	    cfg->nqueues > EBB_MAX_CORES) {
		errno = EINVAL;
		return NULL;
	}
	rc = port_of(cfg->devargs, &port);
	if (rc != -ENODEV) {
		/* 0: a port by that name is open already. */
		errno = rc == 0 ? EEXIST : EINVAL;
		return NULL;
	}
	nic = calloc(1, sizeof(*nic));
	if (nic == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	nic->port = RTE_MAX_ETHPORTS;	/* nothing probed yet */
	rc = rte_dev_probe(cfg->devargs);
	if (rc) {
		fprintf(stderr, "ebbrt nic: cannot probe '%s': %s\n",
			cfg->devargs, strerror(-rc));
		err = ENODEV;
		goto fail;
	}
	if (port_of(cfg->devargs, &port) != 0) {
		fprintf(stderr, "ebbrt nic: '%s' probed but no port by that "
				"name\n", cfg->devargs);
		err = ENODEV;
		goto fail;
	}
	nic->port = port;
	nic->nq = cfg->nqueues ? cfg->nqueues : 1;
	nic->rx_intr = !cfg->no_rx_intr;
	if (rte_eth_dev_info_get(port, &info) == 0)
		nic->dev = info.device;
	nic->q = rte_zmalloc("ebb_nic_q", sizeof(*nic->q) * nic->nq,
			     RTE_CACHE_LINE_SIZE);
	ring = cfg->ring_size ? cfg->ring_size : NIC_DEFAULT_RING;
	nmbufs = cfg->nmbufs ? cfg->nmbufs : NIC_DEFAULT_MBUFS;
	snprintf(pool_name, sizeof(pool_name), "ebb_nic_%u", port);
	nic->pool = rte_pktmbuf_pool_create(pool_name, nmbufs,
					    RTE_MIN(NIC_POOL_CACHE, nmbufs / 4),
					    0, RTE_MBUF_DEFAULT_BUF_SIZE,
					    rte_eth_dev_socket_id(port));
	if (nic->q == NULL || nic->pool == NULL) {
		err = ENOMEM;
		goto fail;
	}
	rc = port_configure(nic, ring);
	if (rc) {
		fprintf(stderr, "ebbrt nic: cannot start port %u ('%s'): %s\n",
			port, cfg->devargs, strerror(rc < 0 ? -rc : rc));
		err = ENODEV;
		goto fail;
	}
	for (unsigned i = 0; i < nic->nq; i++) {
		struct nic_queue *q = &nic->q[i];

		q->nic = nic;
		q->id = (uint16_t)i;
		q->vec = -1;
		q->intr_fd = -1;
		if (nic->rx_intr) {
			q->intr_fd = rte_eth_dev_rx_intr_ctl_q_get_fd(port,
								      q->id);
			if (q->intr_fd < 0)
				nic->rx_intr = false;
		}
	}
	if (!nic->rx_intr)
		for (unsigned i = 0; i < nic->nq; i++)
			nic->q[i].intr_fd = -1;
	return nic;
fail:
	ebb_nic_close(nic);
	errno = err;
	return NULL;
}

void ebb_nic_close(struct ebb_nic *nic)
{
	if (nic == NULL)
		return;
	for (unsigned i = 0; nic->q && i < nic->nq; i++) {
		struct nic_queue *q = &nic->q[i];

		rte_pktmbuf_free_bulk(q->stash, q->nstash);
		q->nstash = 0;
	}
	if (nic->port < RTE_MAX_ETHPORTS) {
		rte_eth_dev_stop(nic->port);
		/* Removing the device closes its port; a vdev goes away
		 * with it (a tap interface is deleted). */
		if (nic->dev == NULL || rte_dev_remove(nic->dev) != 0)
			rte_eth_dev_close(nic->port);
	}
	rte_mempool_free(nic->pool);
	rte_free(nic->q);
	free(nic);
}

int ebb_nic_mac(const struct ebb_nic *nic, uint8_t mac[6])
{
	struct rte_ether_addr a;

	if (nic == NULL || mac == NULL ||
	    rte_eth_macaddr_get(nic->port, &a) != 0)
		return -EINVAL;
	memcpy(mac, a.addr_bytes, 6);
	return 0;
}

struct rte_mempool *ebb_nic_pool(const struct ebb_nic *nic)
{
	return nic ? nic->pool : NULL;
}

bool ebb_nic_has_rx_intr(const struct ebb_nic *nic)
{
	return nic && nic->rx_intr;
}

int ebb_nic_attach(struct ebb_nic *nic, unsigned queue, ebb_nic_rx_fn fn,
		   void *arg)
{
	struct ebb_vector_ops ops = {
		.pending = rxq_pending,
		.handle = rxq_handle,
		.fd = -1,
	};
	struct nic_queue *q;
	int vec;

	if (ebb_core_id() == EBB_CORE_NONE)
		return -EPERM;
	if (nic == NULL || queue >= nic->nq || fn == NULL)
		return -EINVAL;
	q = &nic->q[queue];
	if (q->vec >= 0)
		return -EBUSY;
	if (q->intr_fd >= 0) {
		ops.arm = rxq_arm;
		ops.disarm = rxq_disarm;
		ops.fd = q->intr_fd;
	}
	q->fn = fn;
	q->arg = arg;
	q->core = ebb_core_id();
	vec = ebb_vector_add(&ops, q);
	if (vec < 0)
		return vec;
	q->vec = vec;
	return 0;
}

int ebb_nic_detach(struct ebb_nic *nic, unsigned queue)
{
	struct nic_queue *q;

	if (ebb_core_id() == EBB_CORE_NONE)
		return -EPERM;
	if (nic == NULL || queue >= nic->nq)
		return -EINVAL;
	q = &nic->q[queue];
	if (q->vec < 0 || q->core != ebb_core_id())
		return -EINVAL;
	ebb_vector_remove(q->vec);
	q->vec = -1;
	rte_pktmbuf_free_bulk(q->stash, q->nstash);
	q->nstash = 0;
	return 0;
}

uint16_t ebb_nic_tx(struct ebb_nic *nic, unsigned queue,
		    struct rte_mbuf **pkts, uint16_t n)
{
	struct nic_queue *q = &nic->q[queue];
	uint16_t sent = rte_eth_tx_burst(nic->port, q->id, pkts, n);

	STAT_ADD(q, tx_packets, sent);
	if (sent < n)
		STAT_ADD(q, tx_full, n - sent);
	return sent;
}

int ebb_nic_stats(const struct ebb_nic *nic, struct ebb_nic_stats *out)
{
	if (nic == NULL || out == NULL)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	for (unsigned i = 0; i < nic->nq; i++) {
		const struct nic_queue *q = &nic->q[i];

		out->rx_packets += __atomic_load_n(&q->rx_packets,
						   __ATOMIC_RELAXED);
		out->tx_packets += __atomic_load_n(&q->tx_packets,
						   __ATOMIC_RELAXED);
		out->tx_full += __atomic_load_n(&q->tx_full, __ATOMIC_RELAXED);
		out->rx_bursts += __atomic_load_n(&q->rx_bursts,
						  __ATOMIC_RELAXED);
		out->rx_wakeups_armed += __atomic_load_n(&q->armed,
							 __ATOMIC_RELAXED);
	}
	return 0;
}
