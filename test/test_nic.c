/* SPDX-License-Identifier: BSD-3-Clause */
/* The NIC layer on a net_tap port with Linux as the peer: frames from a
 * raw socket wake a halted core through the queue's interrupt fd, frames
 * the core sends reach Linux, mbufs all come back, the interface goes
 * away on close. Needs root and /dev/net/tun (the test makes its own tap
 * device and removes it). */
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <ebbrt/nic.h>

#include "harness.h"

#define ETH_RX_TEST 0x88b5	/* IEEE local experimental ethertypes */
#define ETH_TX_TEST 0x88b6
#define NFRAMES 50

static struct ebb_nic *nic;
static char ifname[IFNAMSIZ], devargs[64];
static atomic_int rx_test_frames, rx_other_frames;
static atomic_int rx_on_core = -1;
static _Atomic uint32_t rx_last_seq;

struct test_frame {
	uint8_t dst[6], src[6];
	uint16_t type;
	uint32_t seq;
	uint8_t pad[46];
} __attribute__((packed));

static void on_rx(void *arg, struct rte_mbuf **pkts, uint16_t n)
{
	(void)arg;
	for (uint16_t i = 0; i < n; i++) {
		struct test_frame *f = rte_pktmbuf_mtod(pkts[i],
							struct test_frame *);

		if (pkts[i]->data_len >= 18 && ntohs(f->type) == ETH_RX_TEST) {
			atomic_store(&rx_last_seq, ntohl(f->seq));
			atomic_store(&rx_on_core, (int)ebb_core_id());
			atomic_fetch_add(&rx_test_frames, 1);
		} else {
			/* IPv6 neighbour discovery and the like. */
			atomic_fetch_add(&rx_other_frames, 1);
		}
	}
	rte_pktmbuf_free_bulk(pkts, n);
}

static atomic_int attach_rc = 1;

static void attach(void *arg)
{
	(void)arg;
	atomic_store(&attach_rc, ebb_nic_attach(nic, 0, on_rx, NULL));
}

static void detach(void *arg)
{
	(void)arg;
	cr_assert_eq(ebb_nic_detach(nic, 0), 0);
}

static atomic_int tx_sent;

static void send_frames(void *arg)
{
	struct rte_mempool *pool = ebb_nic_pool(nic);
	uint8_t mac[6];
	int n = (int)(intptr_t)arg;

	ebb_nic_mac(nic, mac);
	for (int i = 0; i < n; i++) {
		struct rte_mbuf *m = rte_pktmbuf_alloc(pool);
		struct test_frame f;
		char *data;

		if (m == NULL)
			return;
		data = rte_pktmbuf_append(m, sizeof(f));
		if (data == NULL) {
			rte_pktmbuf_free(m);
			return;
		}
		memset(&f, 0, sizeof(f));
		memset(f.dst, 0xff, 6);
		memcpy(f.src, mac, 6);
		f.type = htons(ETH_TX_TEST);
		f.seq = htonl((uint32_t)i);
		memcpy(data, &f, sizeof(f));
		if (ebb_nic_tx(nic, 0, &m, 1) != 1) {
			rte_pktmbuf_free(m);
			return;
		}
		atomic_fetch_add(&tx_sent, 1);
	}
}

static int raw_socket(unsigned ifindex)
{
	struct sockaddr_ll sll = { .sll_family = AF_PACKET,
				   .sll_protocol = htons(ETH_P_ALL),
				   .sll_ifindex = (int)ifindex };
	struct timeval tv = { .tv_sec = 0, .tv_usec = 200000 };
	int fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));

	cr_assert_geq(fd, 0, "raw socket: %s (root needed)", strerror(errno));
	cr_assert_eq(bind(fd, (struct sockaddr *)&sll, sizeof(sll)), 0,
		     "bind to %s: %s", ifname, strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static void open_tap(void)
{
	struct ebb_nic_config cfg = { 0 };

	snprintf(ifname, sizeof(ifname), "ebbt%d", getpid() % 100000);
	snprintf(devargs, sizeof(devargs), "net_tap_t%d,iface=%s",
		 getpid() % 100000, ifname);
	cfg.devargs = devargs;
	nic = ebb_nic_open(&cfg);
	cr_assert_not_null(nic, "ebb_nic_open(%s): %s", devargs,
			   strerror(errno));
}

Test(nic, tap_rx_wakes_halted_core_and_tx_reaches_linux, .timeout = 90)
{
	struct test_frame f;
	struct ebb_nic_stats st;
	unsigned ifindex;
	uint8_t mac[6];
	unsigned avail0, avail1;
	int fd, got = 0;

	ebbt_start_spin("0-1", 16);
	open_tap();
	ifindex = if_nametoindex(ifname);
	cr_assert_neq(ifindex, 0, "no interface %s", ifname);
	cr_assert(ebb_nic_has_rx_intr(nic),
		  "net_tap should give its queue fds as rx interrupts");
	cr_assert_eq(ebb_nic_mac(nic, mac), 0);
	avail0 = rte_mempool_avail_count(ebb_nic_pool(nic));
	cr_assert_eq(ebbt_call(1, attach, NULL), 0);
	cr_assert_eq(atomic_load(&attach_rc), 0, "attach: %d",
		     atomic_load(&attach_rc));
	cr_assert_eq(ebbt_call(1, attach, NULL), 0);
	cr_assert_eq(atomic_load(&attach_rc), -EBUSY, "second attach");

	/* Interrupt-driven: a halted core with only fd vectors sleeps until
	 * an fd fires; had the queue fallen back to the fd-less halt timeout
	 * (up to 10 ms) it would wake dozens of times in half a second. */
	{
		struct ebb_core_stats a, b;
		struct ebb_nic_stats na, nb;

		usleep(200000);
		cr_assert_eq(ebb_core_stats(1, &a), 0);
		cr_assert_eq(ebb_nic_stats(nic, &na), 0);
		usleep(500000);
		cr_assert_eq(ebb_core_stats(1, &b), 0);
		cr_assert_eq(ebb_nic_stats(nic, &nb), 0);
		/* Linux may send a frame of its own (IPv6 MLD, router
		 * solicitation): each may wake the core once. */
		cr_assert_lt(b.wakes - a.wakes, 10 + nb.rx_packets -
							   na.rx_packets,
			     "idle core 1 woke %lu times in 0.5 s for %lu "
			     "frames: polling on a timeout, not on the "
			     "queue's fd",
			     (unsigned long)(b.wakes - a.wakes),
			     (unsigned long)(nb.rx_packets - na.rx_packets));
	}
	fd = raw_socket(ifindex);
	memset(&f, 0, sizeof(f));
	memcpy(f.dst, mac, 6);
	memcpy(f.src, (uint8_t[]){ 0x02, 0, 0, 0, 0, 0x01 }, 6);
	f.type = htons(ETH_RX_TEST);
	for (int i = 1; i <= NFRAMES; i++) {
		cr_assert(ebbt_wait_until(ebb_core_halted(1), 5000),
			  "core 1 never halted");
		f.seq = htonl((uint32_t)i);
		cr_assert_eq(send(fd, &f, sizeof(f), 0), (ssize_t)sizeof(f),
			     "send: %s", strerror(errno));
		cr_assert(ebbt_wait_until(atomic_load(&rx_test_frames) == i,
					  2000),
			  "frame %d not received by the halted core (got %d)",
			  i, atomic_load(&rx_test_frames));
		cr_assert_eq(atomic_load(&rx_last_seq), (uint32_t)i);
	}
	cr_assert_eq(atomic_load(&rx_on_core), 1);
	cr_assert_eq(ebb_nic_stats(nic, &st), 0);
	cr_assert_geq(st.rx_packets, NFRAMES);
	cr_assert_geq(st.rx_wakeups_armed, NFRAMES, "armed %lu times",
		      (unsigned long)st.rx_wakeups_armed);

	/* The core sends; Linux sees every frame. */
	cr_assert_eq(ebbt_call(1, send_frames, (void *)(intptr_t)NFRAMES), 0);
	cr_assert_eq(atomic_load(&tx_sent), NFRAMES);
	for (int tries = 0; tries < 1000 && got < NFRAMES; tries++) {
		uint8_t buf[2048];
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		struct test_frame *r = (struct test_frame *)buf;

		if (n < 0)
			break;	/* timeout: nothing more is coming */
		if (n >= 18 && ntohs(r->type) == ETH_TX_TEST) {
			cr_assert_eq(ntohl(r->seq), (uint32_t)got,
				     "frame %d arrived as %u", got,
				     ntohl(r->seq));
			cr_assert_eq(memcmp(r->src, mac, 6), 0);
			got++;
		}
	}
	cr_assert_eq(got, NFRAMES, "Linux saw %d of %d frames", got, NFRAMES);
	close(fd);

	/* Every mbuf came back to the pool. */
	cr_assert_eq(ebbt_call(1, detach, NULL), 0);
	cr_assert(ebbt_wait_until(
		(avail1 = rte_mempool_avail_count(ebb_nic_pool(nic))) == avail0,
		2000),
		"pool: %u available before traffic, %u after", avail0, avail1);
	ebb_stop();
	cr_assert_eq(ebb_wait(), 0);
	ebb_nic_close(nic);
	cr_assert_eq(if_nametoindex(ifname), 0, "%s still there after close",
		     ifname);
	ebb_fini();
}

Test(nic, bad_configuration_is_an_error, .timeout = 60)
{
	struct ebb_nic_config cfg = { 0 };
	struct ebb_nic *again;

	ebbt_start("0-1");
	cr_assert_null(ebb_nic_open(NULL));
	cr_assert_eq(errno, EINVAL);
	cr_assert_null(ebb_nic_open(&cfg));
	cr_assert_eq(errno, EINVAL);
	cfg.devargs = "net_nosuchdriver0";
	cr_assert_null(ebb_nic_open(&cfg));
	cr_assert_eq(errno, ENODEV);
	cfg.devargs = ",iface=x";
	cr_assert_null(ebb_nic_open(&cfg));
	cr_assert_eq(errno, EINVAL, "no device name");

	open_tap();
	cfg.devargs = devargs;
	again = ebb_nic_open(&cfg);
	cr_assert_null(again, "opened the same port twice");
	cr_assert_eq(errno, EEXIST);
	cr_assert_eq(ebb_nic_attach(nic, 0, on_rx, NULL), -EPERM,
		     "attach off a core");
	cr_assert_eq(ebb_nic_mac(NULL, NULL), -EINVAL);
	ebb_stop();
	cr_assert_eq(ebb_wait(), 0);
	ebb_nic_close(nic);
	ebb_nic_close(NULL);
	cr_assert_eq(if_nametoindex(ifname), 0);
	ebb_fini();
}
