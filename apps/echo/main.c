/* SPDX-License-Identifier: BSD-3-Clause */
/* ebbrt-echo: a UDP echo server on ebbrt. In a cluster (`ebbrt run --
 * ebbrt-echo`) each node serves on its port and, with `--wire`, on its end
 * of the wire; standalone it serves on a tap of its own. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ebbrt/ebbrt.h>
#include <ebbrt/net.h>
#include <ebbrt/nic.h>

#include "echo_server.h"

static struct ebb_nic *nic[2];
static struct ebb_net_if *nif[2];
static unsigned nifs;

static void usage(FILE *to, const char *me)
{
	fprintf(to,
		"usage: ebbrt run [--wire] -- %s [--port P]\n"
		"       %s --tap NAME --ip A.B.C.D/NN [--port P] (standalone)\n"
		"Echoes UDP datagrams to port P (default 7) back to their "
		"sender.\n",
		me, me);
}

static void attach_all(void *arg)
{
	(void)arg;
	for (unsigned i = 0; i < nifs; i++) {
		int rc = ebb_net_if_attach(nif[i], ebb_core_id());

		if (rc)
			fprintf(stderr, "echo: core %u: attach: %s\n",
				ebb_core_id(), strerror(-rc));
	}
}

static void on_signal(int sig)
{
	(void)sig;
	ebb_stop();
}

static int add_if(struct ebb_nic *n, uint32_t ip, uint32_t mask,
		  uint32_t gateway)
{
	struct ebb_net_config c = { .ip = ip, .netmask = mask,
				    .gateway = gateway };

	nic[nifs] = n;
	nif[nifs] = ebb_net_if_open(n, &c);
	if (nif[nifs] == NULL) {
		fprintf(stderr, "echo: no interface: %s\n", strerror(errno));
		return -1;
	}
	nifs++;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "tap", required_argument, NULL, 't' },
		{ "ip", required_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *tap = NULL, *ipstr = NULL;
	unsigned long port = 7;
	uint32_t ip = 0, mask = 0xffffff00u;
	struct echo_stats st;
	int c, rc;

	while ((c = getopt_long(argc, argv, "p:t:i:h", lo, NULL)) != -1) {
		char *end;

		switch (c) {
		case 'p':
			port = strtoul(optarg, &end, 10);
			if (*end || port == 0 || port > 65535) {
				fprintf(stderr, "echo: bad port %s\n", optarg);
				return 2;
			}
			break;
		case 't':
			tap = optarg;
			break;
		case 'i':
			ipstr = optarg;
			break;
		case 'h':
			usage(stdout, argv[0]);
			return 0;
		default:
			usage(stderr, argv[0]);
			return 2;
		}
	}
	if (ipstr != NULL) {
		char buf[32], *slash;
		struct in_addr a;
		unsigned long bits = 24;

		snprintf(buf, sizeof(buf), "%s", ipstr);
		slash = strchr(buf, '/');
		if (slash) {
			*slash = '\0';
			bits = strtoul(slash + 1, NULL, 10);
		}
		if (inet_pton(AF_INET, buf, &a) != 1 || bits < 1 || bits > 30) {
			fprintf(stderr, "echo: bad --ip %s\n", ipstr);
			return 2;
		}
		ip = ntohl(a.s_addr);
		mask = ~0u << (32 - bits);
	}
	if (ebb_init(NULL) != 0)
		return 1;
	if (ebb_cluster_mode()) {
		struct ebb_nic *w = ebb_nic_node_wire();

		unsigned me = ebb_node_id();

		if (add_if(ebb_nic_node_port(), ebb_cluster_node_ip(me),
			   ebb_cluster_node_netmask(me),
			   ebb_cluster_node_gateway(me)))
			return 1;
		if (w != NULL &&
		    add_if(w, ebb_cluster_node_wire_ip(me), 0xffffff00u, 0))
			return 1;
	} else {
		char devargs[128];
		struct ebb_nic_config nc = { .devargs = devargs };

		if (tap == NULL || ip == 0) {
			usage(stderr, argv[0]);
			ebb_fini();
			return 2;
		}
		snprintf(devargs, sizeof(devargs), "net_tap_%s,iface=%s", tap,
			 tap);
		nc.nqueues = ebb_core_count();
		if (add_if(ebb_nic_open(&nc), ip, mask, 0))
			return 1;
		printf("echo: give Linux an address on the subnet, e.g. "
		       "ip addr add <addr>/%d dev %s; ip link set %s up\n",
		       32 - __builtin_ctz(mask), tap, tap);
	}
	for (unsigned i = 0; i < nifs; i++) {
		rc = echo_server_start(nif[i], (uint16_t)port);
		if (rc) {
			fprintf(stderr, "echo: cannot bind port %lu: %s\n",
				port, strerror(-rc));
			return 1;
		}
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	if (ebb_start() != 0)
		return 1;
	for (unsigned i = 0; i < ebb_core_count(); i++)
		ebb_spawn_remote(i, attach_all, NULL);
	printf("echo: node %u serving UDP port %lu\n", ebb_node_id(), port);
	fflush(stdout);
	ebb_wait();
	echo_server_stats(&st);
	printf("echo: node %u echoed %lu datagrams, %lu refused\n",
	       ebb_node_id(), (unsigned long)st.echoed,
	       (unsigned long)st.refused);
	for (unsigned i = 0; i < nifs; i++) {
		ebb_net_if_close(nif[i]);
		ebb_nic_close(nic[i]);
	}
	ebb_fini();
	return 0;
}
