/* SPDX-License-Identifier: BSD-3-Clause */
/* ebbrt-kv: ebb-kv, a memcached-protocol key-value server, on the ebbrt
 * TCP stack. In a cluster (`ebbrt run -- ebbrt-kv`) each node serves on
 * its port and, with `--wire`, on its end of the wire; standalone it
 * serves on a tap of its own. */
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
#include <ebbrt/tcp.h>

#include "kv_server.h"

static struct ebb_nic *nic[2];
static struct ebb_net_if *nif[2];
static unsigned nifs;

static void usage(FILE *to, const char *me)
{
	fprintf(to,
		"usage: ebbrt run [--wire] -- %s [options]\n"
		"       %s --tap NAME --ip A.B.C.D/NN [options] (standalone)\n"
		"Serves memcached's text and binary protocols over TCP.\n"
		"  -p, --port P        TCP port (default 11211)\n"
		"  -m, --memory MiB    item memory (default 64, as memcached)\n"
		"  -I, --max-item B    largest item, bytes, k or m suffix "
		"(default 1m)\n"
		"  -c, --conns N       connections per core (default 16384)\n"
		"  -h, --help\n",
		me, me);
}

static void attach_all(void *arg)
{
	(void)arg;
	for (unsigned i = 0; i < nifs; i++) {
		int rc = ebb_net_if_attach(nif[i], ebb_core_id());

		if (rc)
			fprintf(stderr, "kv: core %u: attach: %s\n",
				ebb_core_id(), strerror(-rc));
	}
}

static void on_signal(int sig)
{
	(void)sig;
	ebb_stop();
}

static int add_if(struct ebb_nic *n, uint32_t ip, uint32_t mask,
		  uint32_t gateway, unsigned conns)
{
	struct ebb_net_config c = { .ip = ip, .netmask = mask,
				    .gateway = gateway };
	struct ebb_tcp_config tc = { .max_conns = conns };

	if (n == NULL) {
		fprintf(stderr, "kv: no port: %s\n", strerror(errno));
		return -1;
	}
	nic[nifs] = n;
	nif[nifs] = ebb_net_if_open(n, &c);
	if (nif[nifs] == NULL) {
		fprintf(stderr, "kv: no interface: %s\n", strerror(errno));
		return -1;
	}
	if (ebb_tcp_configure(nif[nifs], &tc) != 0) {
		fprintf(stderr, "kv: bad TCP settings\n");
		return -1;
	}
	nifs++;
	return 0;
}

static int parse_u(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || v == 0 || v > max)
		return -1;
	if (*end == 'k' || *end == 'K')
		v <<= 10, end++;
	else if (*end == 'm' || *end == 'M')
		v <<= 20, end++;
	if (*end != '\0' || v > max)
		return -1;
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "memory", required_argument, NULL, 'm' },
		{ "max-item", required_argument, NULL, 'I' },
		{ "conns", required_argument, NULL, 'c' },
		{ "tap", required_argument, NULL, 't' },
		{ "ip", required_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *tap = NULL, *ipstr = NULL;
	unsigned long port = 11211, mem = 64, item = 1 << 20, conns = 16384;
	uint32_t ip = 0, mask = 0xffffff00u;
	struct kv_store_config sc = { 0 };
	struct kv_proto_stats ps = { 0 };
	struct kv_store *store;
	int c;

	while ((c = getopt_long(argc, argv, "p:m:I:c:t:i:h", lo, NULL)) !=
	       -1) {
		int bad = 0;

		switch (c) {
		case 'p':
			bad = parse_u(optarg, 65535, &port);
			break;
		case 'm':
			bad = parse_u(optarg, 1 << 20, &mem);
			break;
		case 'I':
			bad = parse_u(optarg, 128u << 20, &item);
			break;
		case 'c':
			bad = parse_u(optarg, 1u << 22, &conns);
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
		if (bad) {
			fprintf(stderr, "kv: bad value for -%c: %s\n", c,
				optarg);
			return 2;
		}
	}
	if (optind < argc) {
		usage(stderr, argv[0]);
		return 2;
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
			fprintf(stderr, "kv: bad --ip %s\n", ipstr);
			return 2;
		}
		ip = ntohl(a.s_addr);
		mask = ~0u << (32 - bits);
	}
	sc.mem_limit = (size_t)mem << 20;
	sc.item_size_max = item;
	store = kv_store_create(&sc);
	if (store == NULL) {
		fprintf(stderr, "kv: store: %s\n", strerror(errno));
		return 1;
	}
	if (ebb_init(NULL) != 0)
		return 1;
	ps.threads = ebb_core_count();
	if (ebb_cluster_mode()) {
		struct ebb_nic *w = ebb_nic_node_wire();
		unsigned me = ebb_node_id();

		if (add_if(ebb_nic_node_port(), ebb_cluster_node_ip(me),
			   ebb_cluster_node_netmask(me),
			   ebb_cluster_node_gateway(me), (unsigned)conns))
			return 1;
		if (w != NULL && add_if(w, ebb_cluster_node_wire_ip(me),
					0xffffff00u, 0, (unsigned)conns))
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
		if (add_if(ebb_nic_open(&nc), ip, mask, 0, (unsigned)conns))
			return 1;
	}
	for (unsigned i = 0; i < nifs; i++) {
		int rc = kv_server_start(nif[i], (uint16_t)port, store, &ps);

		if (rc) {
			fprintf(stderr, "kv: cannot listen on port %lu: %s\n",
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
	printf("kv: node %u serving memcached on TCP port %lu\n",
	       ebb_node_id(), port);
	fflush(stdout);
	ebb_wait();
	printf("kv: node %u served %lu connections\n", ebb_node_id(),
	       (unsigned long)ps.total_connections);
	for (unsigned i = 0; i < nifs; i++) {
		ebb_net_if_close(nif[i]);
		ebb_nic_close(nic[i]);
	}
	ebb_fini();
	kv_store_destroy(store);
	return 0;
}
