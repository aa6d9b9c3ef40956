/* SPDX-License-Identifier: BSD-3-Clause */
/* The `ebbrt` command: run a cluster, show its status, stop it. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ebbrt/ebbrt.h>

#include "cluster.h"
#include "frontend.h"

static void usage(FILE *to)
{
	fprintf(to,
"usage: ebbrt run [options] -- APP [ARGS...]\n"
"       ebbrt status [--name NAME]\n"
"       ebbrt stop [--name NAME] [--timeout SEC]\n"
"       ebbrt --help | --version\n"
"\n"
"run: start the frontend (DPDK primary), give each node a port, launch APP\n"
"once per node as a pinned DPDK secondary, serve until SIGINT/SIGTERM or\n"
"`ebbrt stop`. Prints `node N ready ip=A.B.C.D cores=LIST` per node once\n"
"every node serves. Options:\n"
"  -n, --nodes N           nodes to launch (default 2, at most %d)\n"
"  -c, --cores-per-node K  cores of each node (default 1)\n"
"      --cpus LIST         cpus for the node cores, in order, e.g. 0-3,6\n"
"                          (default: every cpu this process may use)\n"
"      --vdev ARGS         DPDK vdev of the next node (repeatable), e.g.\n"
"                          net_tap_x,iface=x0 (default: one net_tap each)\n"
"  -a, --allow PCI         PCI device (a VF) of the next node (repeatable;\n"
"                          bound to vfio-pci, see docs/deploy.md)\n"
"      --subnet A.B.C.0    node N's tap link is A.B.(C+N).0/24: Linux\n"
"                          .1, the node .2 (default 10.77.0.0)\n"
"      --ip A.B.C.D/NN     static address of the next node (repeatable;\n"
"                          a tap's Linux side gets the gateway or the\n"
"                          subnet's first other address)\n"
"      --gateway A.B.C.D   gateway of the next node given an --ip\n"
"      --wire              a virtual wire between nodes 1 and 2, which are\n"
"                          A.B.C.1 and A.B.C.2 on it\n"
"      --restart POLICY    no | on-failure | always (default no)\n"
"      --msix MODE         pass: nodes wait on their queue fds (default);\n"
"                          forward: the frontend waits and rings them\n"
"      --name NAME         cluster name, [a-z0-9]{1,8} (default ebbrt);\n"
"                          names taps NAME1.., the lock and DPDK files\n"
"      --log-level LEVEL   DPDK log level (default error)\n"
"      --start-timeout S   seconds a node has to start (default 10)\n"
"      --mbufs N           mbufs of each node's pool (default 8191)\n"
"      --faults [LINK[@N]:]SPEC  impair what nodes send (repeatable; a later\n"
"                          one wins). LINK: tap (the node's port, facing\n"
"                          Linux), wire, all (default); @N: node N only.\n"
"                          SPEC: off, or KEY=VALUE,... of drop, dup,\n"
"                          reorder, corrupt (probabilities in [0, 1]),\n"
"                          delay_us, seed; e.g. tap:drop=0.05,seed=7\n"
"\n"
"status: nodes, their state and per-core counters (DPDK telemetry).\n"
"stop:   stop a running cluster cleanly and wait for it (--timeout,\n"
"        default 30 s).\n",
		EBB_FE_MAX_DEVS);
}

static int fail_usage(const char *msg, const char *arg)
{
	fprintf(stderr, "ebbrt: %s%s%s\n", msg, arg ? ": " : "",
		arg ? arg : "");
	fprintf(stderr, "try `ebbrt --help`\n");
	return 2;
}

static bool parse_uint(const char *s, unsigned lo, unsigned hi,
		       unsigned *out)
{
	char *end;
	unsigned long v;

	if (s == NULL || *s == '\0')
		return false;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end != '\0' || v < lo || v > hi)
		return false;
	*out = (unsigned)v;
	return true;
}

static bool valid_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 8)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' &&
						       s[i] <= '9')))
			return false;
	return true;
}

/* "0-3,6" into @cpus; the count, or -1. */
static int parse_cpu_list(const char *s, int *cpus, unsigned max)
{
	unsigned n = 0;
	char *end;

	while (*s) {
		long lo = strtol(s, &end, 10), hi;

		if (end == s || lo < 0 || lo >= CPU_SETSIZE)
			return -1;
		hi = lo;
		s = end;
		if (*s == '-') {
			hi = strtol(s + 1, &end, 10);
			if (end == s + 1 || hi < lo || hi >= CPU_SETSIZE)
				return -1;
			s = end;
		}
		for (long c = lo; c <= hi; c++) {
			if (n == max)
				return -1;
			cpus[n++] = (int)c;
		}
		if (*s == ',')
			s++;
		else if (*s)
			return -1;
	}
	return (int)n;
}

/* A bad --faults @arg: one line saying why, exit code 2. */
__attribute__((format(printf, 2, 3)))
static int fail_faults(const char *arg, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "ebbrt: --faults %s: ", arg);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 2;
}

/* A probability in [0, 1] (no NaN, nothing after the number). */
static bool parse_prob(const char *s, double *out)
{
	char *end;
	double v;

	if (*s == '\0')
		return false;
	errno = 0;
	v = strtod(s, &end);
	if (errno || *end != '\0' || !(v >= 0.0 && v <= 1.0))
		return false;
	*out = v;
	return true;
}

/*
 * "[LINK[@N]:]SPEC" into @f. LINK: tap (or port: the node's own port),
 * wire, all (the default); @N: node N only. SPEC: off, or comma-separated
 * KEY=VALUE of drop, dup (duplicate), reorder, corrupt (probabilities),
 * delay_us (0 to 1000000) and seed. Returns 0 or 2 after one line on
 * stderr.
 */
static int parse_faults(const char *arg, struct ebb_fe_faults *f)
{
	char buf[256], *spec, *colon, *tok, *save = NULL;
	bool any = false;

	memset(f, 0, sizeof(*f));
	f->port = f->wire = true;
	if (strlen(arg) >= sizeof(buf))
		return fail_faults(arg, "too long");
	snprintf(buf, sizeof(buf), "%s", arg);
	spec = buf;
	colon = strchr(buf, ':');
	if (colon != NULL) {
		char *at = strchr(buf, '@');

		*colon = '\0';
		spec = colon + 1;
		if (at != NULL && at < colon) {
			*at = '\0';
			if (!parse_uint(at + 1, 1, EBB_FE_MAX_DEVS, &f->node))
				return fail_faults(arg, "@N wants a node, 1 "
						   "to 15, not '%s'", at + 1);
		}
		if (strcmp(buf, "tap") == 0 || strcmp(buf, "port") == 0)
			f->wire = false;
		else if (strcmp(buf, "wire") == 0)
			f->port = false;
		else if (strcmp(buf, "all") != 0 && buf[0] != '\0')
			return fail_faults(arg, "unknown link '%s' (want "
					   "tap, wire or all)", buf);
	}
	snprintf(f->spec, sizeof(f->spec), "%.*s", (int)sizeof(f->spec) - 1,
		 spec);
	if (strcmp(spec, "off") == 0)
		return 0;
	f->on = true;
	for (tok = strtok_r(spec, ",", &save); tok != NULL;
	     tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		const char *val;
		unsigned us;

		if (eq == NULL)
			return fail_faults(arg, "want KEY=VALUE, not "
					   "'%s'", tok);
		*eq = '\0';
		val = eq + 1;
		any = true;
		if (strcmp(tok, "drop") == 0) {
			if (!parse_prob(val, &f->drop))
				return fail_faults(arg, "drop wants a "
						   "probability in [0, 1], "
						   "not '%s'", val);
		} else if (strcmp(tok, "dup") == 0 ||
			   strcmp(tok, "duplicate") == 0) {
			if (!parse_prob(val, &f->duplicate))
				return fail_faults(arg, "dup wants a "
						   "probability in [0, 1], "
						   "not '%s'", val);
		} else if (strcmp(tok, "reorder") == 0) {
			if (!parse_prob(val, &f->reorder))
				return fail_faults(arg, "reorder wants a "
						   "probability in [0, 1], "
						   "not '%s'", val);
		} else if (strcmp(tok, "corrupt") == 0) {
			if (!parse_prob(val, &f->corrupt))
				return fail_faults(arg, "corrupt wants a "
						   "probability in [0, 1], "
						   "not '%s'", val);
		} else if (strcmp(tok, "delay_us") == 0) {
			if (!parse_uint(val, 0, 1000000, &us))
				return fail_faults(arg, "delay_us wants 0 "
						   "to 1000000, not '%s'",
						   val);
			f->delay_us = us;
		} else if (strcmp(tok, "seed") == 0) {
			char *end;

			errno = 0;
			f->seed = strtoull(val, &end, 0);
			if (*val == '\0' || *val == '-' || errno ||
			    *end != '\0')
				return fail_faults(arg, "seed wants an "
						   "unsigned 64-bit number, "
						   "not '%s'", val);
		} else {
			return fail_faults(arg, "unknown key '%s' (want "
					   "drop, dup, reorder, corrupt, "
					   "delay_us, seed; or off)", tok);
		}
	}
	if (!any)
		return fail_faults(arg, "no faults given (want e.g. "
				   "tap:drop=0.05,seed=7)");
	return 0;
}

static int cmd_run(int argc, char **argv)
{
	static struct ebb_fe_opts o;
	enum { O_CPUS = 256, O_VDEV, O_SUBNET, O_WIRE, O_RESTART, O_MSIX,
	       O_NAME, O_LOG, O_TIMEOUT, O_MBUFS, O_IP, O_GW, O_FAULTS };
	static const struct option lo[] = {
		{ "nodes", required_argument, NULL, 'n' },
		{ "cores-per-node", required_argument, NULL, 'c' },
		{ "cpus", required_argument, NULL, O_CPUS },
		{ "vdev", required_argument, NULL, O_VDEV },
		{ "allow", required_argument, NULL, 'a' },
		{ "subnet", required_argument, NULL, O_SUBNET },
		{ "ip", required_argument, NULL, O_IP },
		{ "gateway", required_argument, NULL, O_GW },
		{ "wire", no_argument, NULL, O_WIRE },
		{ "restart", required_argument, NULL, O_RESTART },
		{ "msix", required_argument, NULL, O_MSIX },
		{ "name", required_argument, NULL, O_NAME },
		{ "log-level", required_argument, NULL, O_LOG },
		{ "start-timeout", required_argument, NULL, O_TIMEOUT },
		{ "mbufs", required_argument, NULL, O_MBUFS },
		{ "faults", required_argument, NULL, O_FAULTS },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cpulist = NULL;
	struct in_addr a;
	int c;

	o.name = "ebbrt";
	o.nodes = 2;
	o.cores_per_node = 1;
	o.subnet = 0x0a4d0000u;		/* 10.77.0.0 */
	o.restart = EBB_RESTART_NO;
	o.msix = EBB_MSIX_PASS;
	o.log_level = "error";
	o.start_timeout_s = 10;
	o.nmbufs = 8191;
	optind = 1;
	/* '+': stop at the app's name; "--" ends ours as well. */
	while ((c = getopt_long(argc, argv, "+n:c:a:h", lo, NULL)) != -1) {
		switch (c) {
		case 'n':
			if (!parse_uint(optarg, 1, EBB_FE_MAX_DEVS, &o.nodes))
				return fail_usage("--nodes wants 1 to 15",
						  optarg);
			break;
		case 'c':
			if (!parse_uint(optarg, 1, EBB_MAX_CORES,
					&o.cores_per_node))
				return fail_usage("--cores-per-node wants 1 "
						  "to 16", optarg);
			break;
		case O_CPUS:
			cpulist = optarg;
			break;
		case O_VDEV:
			if (o.nvdev == EBB_FE_MAX_DEVS)
				return fail_usage("too many --vdev", NULL);
			o.vdev[o.nvdev++] = optarg;
			break;
		case 'a':
			if (o.nallow == EBB_FE_MAX_DEVS)
				return fail_usage("too many --allow", NULL);
			/* It travels to its node as "-a ARGS" in 256 bytes,
			 * one token. */
			if (strlen(optarg) > 200 || strchr(optarg, ' '))
				return fail_usage("--allow wants one PCI address "
						  "with its devargs, at most "
						  "200 characters", optarg);
			o.allow[o.nallow++] = optarg;
			break;
		case O_SUBNET:
			if (inet_pton(AF_INET, optarg, &a) != 1 ||
			    (ntohl(a.s_addr) & 0xffu) != 0)
				return fail_usage("--subnet wants A.B.C.0",
						  optarg);
			o.subnet = ntohl(a.s_addr);
			break;
		case O_IP: {
			char buf[32], *slash;
			unsigned bits = 24;

			snprintf(buf, sizeof(buf), "%s", optarg);
			slash = strchr(buf, '/');
			if (slash != NULL) {
				*slash = '\0';
				if (!parse_uint(slash + 1, 8, 30, &bits))
					return fail_usage("--ip wants "
							  "A.B.C.D/8..30",
							  optarg);
			}
			if (o.nip == EBB_FE_MAX_DEVS ||
			    inet_pton(AF_INET, buf, &a) != 1)
				return fail_usage("--ip wants A.B.C.D/NN, one "
						  "per node", optarg);
			o.ip[o.nip] = ntohl(a.s_addr);
			o.netmask[o.nip] = ~0u << (32 - bits);
			if ((o.ip[o.nip] & ~o.netmask[o.nip]) == 0 ||
			    (o.ip[o.nip] | o.netmask[o.nip]) == ~0u)
				return fail_usage("--ip is its subnet's "
						  "network or broadcast",
						  optarg);
			o.nip++;
			break;
		}
		case O_GW:
			if (o.ngateway == EBB_FE_MAX_DEVS ||
			    inet_pton(AF_INET, optarg, &a) != 1)
				return fail_usage("--gateway wants A.B.C.D, "
						  "one per node", optarg);
			o.gateway[o.ngateway++] = ntohl(a.s_addr);
			break;
		case O_WIRE:
			o.wire = true;
			break;
		case O_RESTART:
			if (strcmp(optarg, "no") == 0)
				o.restart = EBB_RESTART_NO;
			else if (strcmp(optarg, "on-failure") == 0)
				o.restart = EBB_RESTART_ON_FAILURE;
			else if (strcmp(optarg, "always") == 0)
				o.restart = EBB_RESTART_ALWAYS;
			else
				return fail_usage("--restart wants no, "
						  "on-failure or always",
						  optarg);
			break;
		case O_MSIX:
			if (strcmp(optarg, "pass") == 0)
				o.msix = EBB_MSIX_PASS;
			else if (strcmp(optarg, "forward") == 0)
				o.msix = EBB_MSIX_FORWARD;
			else
				return fail_usage("--msix wants pass or "
						  "forward", optarg);
			break;
		case O_NAME:
			if (!valid_name(optarg))
				return fail_usage("--name wants 1 to 8 of "
						  "a-z 0-9", optarg);
			o.name = optarg;
			break;
		case O_LOG:
			o.log_level = optarg;
			o.log_level_set = true;
			break;
		case O_TIMEOUT:
			if (!parse_uint(optarg, 1, 3600, &o.start_timeout_s))
				return fail_usage("--start-timeout wants 1 "
						  "to 3600", optarg);
			break;
		case O_MBUFS:
			if (!parse_uint(optarg, 1023, 1u << 22, &o.nmbufs))
				return fail_usage("--mbufs wants 1023 to "
						  "4194304", optarg);
			break;
		case O_FAULTS:
			if (o.nfaults == EBB_FE_MAX_FAULTS)
				return fail_usage("too many --faults", NULL);
			if (parse_faults(optarg, &o.faults[o.nfaults]) != 0)
				return 2;
			o.nfaults++;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			return fail_usage("bad option", NULL);
		}
	}
	if (optind >= argc)
		return fail_usage("no APP to run (ebbrt run [options] -- APP)",
				  NULL);
	o.app_argv = &argv[optind];
	if (o.nvdev && o.nallow)
		return fail_usage("use either --vdev or --allow", NULL);
	if ((o.nvdev && o.nvdev != o.nodes) ||
	    (o.nallow && o.nallow != o.nodes))
		return fail_usage("give one --vdev or --allow per node", NULL);
	if (o.nip > o.nodes || o.ngateway > o.nip)
		return fail_usage("at most one --ip per node, and a --gateway "
				  "only for a node with an --ip", NULL);
	for (unsigned i = 0; i < o.ngateway; i++)
		if ((o.gateway[i] & o.netmask[i]) != (o.ip[i] & o.netmask[i]) ||
		    o.gateway[i] == o.ip[i])
			return fail_usage("a --gateway must be another address "
					  "on its node's subnet", NULL);
	if (o.wire && o.nodes < 2)
		return fail_usage("--wire needs 2 nodes", NULL);
	for (unsigned i = 0; i < o.nfaults; i++) {
		const struct ebb_fe_faults *f = &o.faults[i];

		if (f->node > o.nodes) {
			fprintf(stderr, "ebbrt: --faults: there is no node "
					"%u (--nodes %u)\n",
				f->node, o.nodes);
			return 2;
		}
		if (f->wire && !f->port && !o.wire) {
			fprintf(stderr, "ebbrt: --faults wire: needs "
					"--wire\n");
			return 2;
		}
		if (f->wire && f->node > 2 && !f->port) {
			fprintf(stderr, "ebbrt: --faults wire@%u: only nodes 1 "
					"and 2 are on the wire\n",
				f->node);
			return 2;
		}
	}
	if (((o.subnet >> 8) & 0xffu) + o.nodes > 0xffu)
		return fail_usage("--subnet leaves no room for every node",
				  NULL);
	if (cpulist != NULL) {
		int n = parse_cpu_list(cpulist, o.cpus, RTE_DIM(o.cpus));

		if (n <= 0)
			return fail_usage("bad --cpus list", cpulist);
		o.ncpus = (unsigned)n;
	} else {
		cpu_set_t set;

		if (sched_getaffinity(0, sizeof(set), &set) != 0)
			return fail_usage("cannot read the cpu affinity",
					  NULL);
		for (int k = 0; k < CPU_SETSIZE && o.ncpus < RTE_DIM(o.cpus);
		     k++)
			if (CPU_ISSET(k, &set))
				o.cpus[o.ncpus++] = k;
	}
	if (o.nodes * o.cores_per_node > o.ncpus) {
		fprintf(stderr,
			"ebbrt: %u nodes x %u cores need %u cpus; only %u "
			"given (--cpus, or the cpus this process may use)\n",
			o.nodes, o.cores_per_node, o.nodes * o.cores_per_node,
			o.ncpus);
		return 2;
	}
	if (access(o.app_argv[0], X_OK) != 0 &&
	    strchr(o.app_argv[0], '/') != NULL) {
		fprintf(stderr, "ebbrt: cannot run %s: %s\n", o.app_argv[0],
			strerror(errno));
		return 1;
	}
	if (geteuid() != 0) {
		fprintf(stderr, "ebbrt: run needs root (hugepages, tap "
				"devices)\n");
		return 1;
	}
	return ebb_fe_run(&o);
}

static const char *name_opt(int argc, char **argv, unsigned *timeout)
{
	static const struct option lo[] = {
		{ "name", required_argument, NULL, 'N' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *name = "ebbrt";
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		if (c == 'N' && valid_name(optarg)) {
			name = optarg;
		} else if (c == 'T' && timeout != NULL &&
			   parse_uint(optarg, 1, 3600, timeout)) {
			continue;
		} else if (c == 'h') {
			usage(stdout);
			exit(0);
		} else {
			fail_usage("bad option or value", NULL);
			exit(2);
		}
	}
	if (optind < argc) {
		fail_usage("unexpected argument", argv[optind]);
		exit(2);
	}
	return name;
}

int ebb_fe_stop(const char *name, unsigned timeout_s)
{
	int pid = ebb_fe_running_pid(name);
	struct timespec ts = { 0, 20 * 1000 * 1000 };

	if (pid <= 0) {
		fprintf(stderr, "ebbrt: no cluster '%s' is running\n", name);
		return 1;
	}
	if (kill(pid, SIGTERM) != 0) {
		fprintf(stderr, "ebbrt: cannot signal the frontend (pid %d): "
				"%s\n",
			pid, strerror(errno));
		return 1;
	}
	for (unsigned i = 0; i < timeout_s * 50u; i++) {
		if (ebb_fe_running_pid(name) == 0) {
			printf("ebbrt: cluster '%s' stopped\n", name);
			return 0;
		}
		nanosleep(&ts, NULL);
	}
	fprintf(stderr, "ebbrt: cluster '%s' (pid %d) did not stop within "
			"%u s\n",
		name, pid, timeout_s);
	return 1;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0 ||
	    strcmp(argv[1], "version") == 0) {
		printf("ebbrt %s\n", EBBRT_VERSION);
		return 0;
	}
	if (strcmp(argv[1], "run") == 0)
		return cmd_run(argc - 1, argv + 1);
	if (strcmp(argv[1], "status") == 0)
		return ebb_fe_status(name_opt(argc - 1, argv + 1, NULL));
	if (strcmp(argv[1], "stop") == 0) {
		/* Past the frontend's own bounds: each node's 6 s to stop,
		 * its 3 s clean-up. */
		unsigned timeout = 30;
		const char *name = name_opt(argc - 1, argv + 1, &timeout);

		return ebb_fe_stop(name, timeout);
	}
	return fail_usage("unknown command", argv[1]);
}
