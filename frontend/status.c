/* SPDX-License-Identifier: BSD-3-Clause */
/* `ebbrt status`: asks the frontend's DPDK telemetry socket for the nodes
 * and their per-core counters (the same data `dpdk-telemetry.py` shows
 * under /ebbrt/...) and prints them as a table. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "frontend.h"

#define TEL_BUF 65536

static int tel_connect(const char *name)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char prefix[64], buf[1024];
	int fd;

	ebb_fe_prefix(name, prefix, sizeof(prefix));
	snprintf(sa.sun_path, sizeof(sa.sun_path),
		 "%s/%s/dpdk_telemetry.v2", EBB_FE_DPDK_DIR, prefix);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		int e = errno;

		close(fd);
		return -e;
	}
	/* The server greets us first. */
	if (recv(fd, buf, sizeof(buf), 0) <= 0) {
		close(fd);
		return -EIO;
	}
	return fd;
}

static int tel_query(int fd, const char *cmd, char *out, size_t len)
{
	ssize_t n;

	if (send(fd, cmd, strlen(cmd), 0) < 0)
		return -errno;
	n = recv(fd, out, len - 1, 0);
	if (n <= 0)
		return -EIO;
	out[n] = '\0';
	return 0;
}

/* The value of "key" in a flat JSON object, as text (quotes removed). */
static bool json_get(const char *js, const char *key, char *val, size_t len)
{
	char pat[96];
	const char *p, *e;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(js, pat);
	if (p == NULL)
		return false;
	p += strlen(pat);
	while (*p == ' ')
		p++;
	if (*p == '"') {
		p++;
		e = strchr(p, '"');
	} else {
		e = p + strcspn(p, ",}]");
	}
	if (e == NULL)
		return false;
	snprintf(val, len, "%.*s", (int)(e - p), p);
	return true;
}

static uint64_t json_u64(const char *js, const char *key)
{
	char v[32];

	return json_get(js, key, v, sizeof(v)) ? strtoull(v, NULL, 10) : 0;
}

/* The node's network counters (net_<name>), the non-zero ones. */
static void print_net(const char *js)
{
	const char *p = js;
	int col = 0;
	bool any = false;

	while ((p = strstr(p, "\"net_")) != NULL) {
		char key[64], val[32];
		const char *e = strchr(p + 1, '"');

		if (e == NULL || (size_t)(e - p - 1) >= sizeof(key))
			break;
		snprintf(key, sizeof(key), "%.*s", (int)(e - p - 1), p + 1);
		p = e;
		if (!json_get(js, key, val, sizeof(val)) ||
		    strcmp(val, "0") == 0)
			continue;
		if (!any)
			printf("      net:");
		any = true;
		col += printf(" %s=%s", key + 4, val);
		if (col > 60) {
			printf("\n          ");
			col = 0;
		}
	}
	if (any)
		printf("\n");
}

/* The faults the node injects, per link that has them: the spec and what
 * it did so far. */
static void print_faults(const char *js)
{
	static const char *const link[] = { "tap", "wire" };
	static const char *const what[] = {
		"dropped", "duplicated", "reordered", "corrupted", "delayed",
	};
	char key[64], spec[128];

	for (unsigned l = 0; l < 2; l++) {
		snprintf(key, sizeof(key), "faults_%s", link[l]);
		if (!json_get(js, key, spec, sizeof(spec)))
			continue;
		printf("      faults %s (%s):", link[l], spec);
		for (unsigned k = 0; k < 5; k++) {
			snprintf(key, sizeof(key), "faults_%s_%s", link[l],
				 what[k]);
			printf(" %s=%" PRIu64, what[k], json_u64(js, key));
		}
		printf("\n");
	}
}

int ebb_fe_status(const char *name)
{
	static char js[TEL_BUF];
	char cmd[64], state[32], ip[32] = "-", cpus[128] = "-", key[64];
	unsigned nodes = 0;
	uint64_t heap = 0;
	int fd = tel_connect(name);

	if (fd < 0) {
		if (ebb_fe_running_pid(name) == 0)
			fprintf(stderr, "ebbrt: no cluster '%s' is running\n",
				name);
		else
			fprintf(stderr, "ebbrt: cannot reach the telemetry "
					"of cluster '%s': %s\n",
				name, strerror(-fd));
		return 1;
	}
	if (tel_query(fd, "/ebbrt/nodes", js, sizeof(js)) != 0 ||
	    strstr(js, "\"/ebbrt/nodes\"") == NULL) {
		fprintf(stderr, "ebbrt: the frontend did not answer "
				"/ebbrt/nodes\n");
		close(fd);
		return 1;
	}
	for (const char *p = strchr(js, '['); p && *p && *p != ']'; p++)
		if (*p == ',' || (p[-1] == '[' && *p != ']'))
			nodes++;
	printf("cluster %s: %u nodes (node 0 is the frontend)\n", name,
	       nodes ? nodes - 1 : 0);
	printf("%-5s %-8s %-8s %-15s %-8s %-8s %s\n", "NODE", "STATE", "PID",
	       "IP", "CPUS", "RESTARTS", "POOL(in use/size)");
	for (unsigned n = 0; n < nodes; n++) {
		unsigned ncores;

		snprintf(cmd, sizeof(cmd), "/ebbrt/node,%u", n);
		if (tel_query(fd, cmd, js, sizeof(js)) != 0)
			break;
		if (!json_get(js, "state", state, sizeof(state)))
			continue;
		json_get(js, "ip", ip, sizeof(ip));
		json_get(js, "cpus", cpus, sizeof(cpus));
		ncores = (unsigned)json_u64(js, "cores");
		if (n == 0)
			heap = json_u64(js, "heap_in_use");
		printf("%-5u %-8s %-8" PRIu64 " %-15s %-8s %-8" PRIu64
		       " %" PRIu64 "/%" PRIu64 "\n",
		       n, state, json_u64(js, "pid"), ip, cpus,
		       json_u64(js, "restarts"), json_u64(js, "pool_in_use"),
		       json_u64(js, "pool_size"));
		printf("      %-5s %12s %10s %9s %9s %10s %10s %7s %9s %9s\n",
		       "core", "iterations", "events", "halts", "wakes", "rx",
		       "tx", "drops", "msgs_out", "msgs_in");
		for (unsigned c = 0; c < ncores; c++) {
			uint64_t v[10];
			static const char *const f[] = {
				"iterations", "events", "halts", "wakes",
				"rx_packets", "tx_packets", "drops",
				"msgs_sent", "msgs_received",
			};

			for (unsigned i = 0; i < 9; i++) {
				snprintf(key, sizeof(key), "c%u_%s", c, f[i]);
				v[i] = json_u64(js, key);
			}
			printf("      %-5u %12" PRIu64 " %10" PRIu64
			       " %9" PRIu64 " %9" PRIu64 " %10" PRIu64
			       " %10" PRIu64 " %7" PRIu64 " %9" PRIu64
			       " %9" PRIu64 "\n",
			       c, v[0], v[1], v[2], v[3], v[4], v[5], v[6],
			       v[7], v[8]);
		}
		print_net(js);
		print_faults(js);
	}
	printf("shared heap in use: %" PRIu64 " bytes\n", heap);
	close(fd);
	return 0;
}
