/* SPDX-License-Identifier: BSD-3-Clause */
/* `ebbrt run`: the frontend. A DPDK primary that configures one port per
 * node, launches the app once per node as a pinned secondary, relays
 * their output, forwards rx interrupts, watches them die, and cleans up. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_hash.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_memzone.h>
#include <rte_ring.h>
#include <rte_telemetry.h>

#include <ebbrt/ebbrt.h>
#include <ebbrt/net.h>
#include <ebbrt/nic.h>

#include "cluster.h"
#include "frontend.h"
#include "nic_frontend.h"

#define FE_INBOX_SIZE 1024u
/* How long a node has to stop before it is killed. Longer than DPDK's
 * multi-process request timeout (MP_TIMEOUT_S, 5 s): a node freeing
 * shared memory may wait that long for the other processes while it holds
 * the shared heap's lock, and killed there it would leave the lock held
 * for good (docs/cluster.md, "Stopping"). */
#define FE_STOP_GRACE_MS 6000
/* The frontend's own clean-up once its nodes are gone: past this, it
 * gives up on it (a lock a killed node left held would wedge it). */
#define FE_CLEANUP_MS 3000
/* A node that never became ready (its app hangs, or still starts) has no
 * cores to stop: all of them get this much, together. */
#define FE_STOP_STARTING_MS 3000
#define FE_LINE_MAX 1024

/* epoll tags: kind in the high bits, node and index below. */
enum { EV_SIGNAL = 1, EV_PID, EV_CTL, EV_OUT, EV_ERR, EV_QFD };
#define EV_TAG(kind, node, idx)                                             \
	(((uint64_t)(kind) << 32) | ((uint64_t)(node) << 16) | (uint64_t)(idx))

/* The frontend's own view of one node. */
struct fe_node {
	unsigned id;
	int pid;
	int pidfd;
	int ctl;			/* our end of its control socket */
	int out, err;			/* its stdout and stderr pipes */
	char outbuf[FE_LINE_MAX], errbuf[FE_LINE_MAX];
	size_t outlen, errlen;
	char last_err[FE_LINE_MAX];	/* last line it wrote to stderr */
	struct ebb_nic *nic;
	struct ebb_nic *wire;		/* its end of the wire, or NULL */
	int doorbell[EBB_MAX_CORES];
	int qfd[EBB_MAX_CORES];		/* rx interrupt fds of its queues */
	uint64_t start_deadline;	/* ms, while starting */
	bool announced;			/* "node N ready" printed */
};

static struct {
	const struct ebb_fe_opts *o;
	char prefix[64];
	int epfd;
	int sigfd;
	int lockfd;
	bool stopping;
	bool all_ready_once;
	int exit_code;
	struct ebb_cluster *cl;
	struct fe_node node[EBB_MAX_NODES];
	unsigned nnodes;		/* frontend included */
	/* --faults of each node and link as given, for status. */
	char fault_spec[EBB_MAX_NODES][EBB_LINKS][96];
} fe;

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void ip_str(uint32_t ip, char *buf, size_t len)
{
	struct in_addr a = { htonl(ip) };

	inet_ntop(AF_INET, &a, buf, (socklen_t)len);
}

static int ep_add(int fd, uint32_t events, uint64_t tag)
{
	struct epoll_event ev = { .events = events, .data.u64 = tag };

	return epoll_ctl(fe.epfd, EPOLL_CTL_ADD, fd, &ev) ? -errno : 0;
}

static void ep_del_close(int *fd)
{
	if (*fd < 0)
		return;
	epoll_ctl(fe.epfd, EPOLL_CTL_DEL, *fd, NULL);
	close(*fd);
	*fd = -1;
}

/* --- files: lock, stale state, clean-up --- */

void ebb_fe_prefix(const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "ebbrt-%s", name);
}

void ebb_fe_lock_path(const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s.lock", EBB_FE_RUN_DIR, name);
}

int ebb_fe_running_pid(const char *name)
{
	char path[256], buf[32] = { 0 };
	int fd, pid = 0;

	ebb_fe_lock_path(name, path, sizeof(path));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	/* Held by a live frontend: we cannot take it. */
	if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
		flock(fd, LOCK_UN);
		close(fd);
		return 0;
	}
	if (read(fd, buf, sizeof(buf) - 1) > 0)
		pid = atoi(buf);
	close(fd);
	return pid > 0 ? pid : 0;
}

/* Take the cluster's lock, or say who holds it. */
static int take_lock(const char *name)
{
	char path[256], buf[32];
	int fd;

	if (mkdir(EBB_FE_RUN_DIR, 0700) != 0 && errno != EEXIST) {
		fprintf(stderr, "ebbrt: cannot create %s: %s\n", EBB_FE_RUN_DIR,
			strerror(errno));
		return -errno;
	}
	ebb_fe_lock_path(name, path, sizeof(path));
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "ebbrt: cannot open %s: %s\n", path,
			strerror(errno));
		return -errno;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		int pid = ebb_fe_running_pid(name);

		fprintf(stderr,
			"ebbrt: cluster '%s' is already running (frontend pid "
			"%d); stop it with `ebbrt stop --name %s` or pick "
			"another --name\n",
			name, pid, name);
		close(fd);
		return -EBUSY;
	}
	{
		/* Locked the file a stopping frontend just unlinked? Then
		 * another run may lock the new one: try again. */
		struct stat a, b;

		if (fstat(fd, &a) != 0 || stat(path, &b) != 0 ||
		    a.st_ino != b.st_ino) {
			close(fd);
			return take_lock(name);
		}
	}
	if (ftruncate(fd, 0) == 0) {
		int n = snprintf(buf, sizeof(buf), "%d\n", getpid());

		if (write(fd, buf, (size_t)n) != n) {
			close(fd);
			return -EIO;
		}
	}
	fe.lockfd = fd;
	return 0;
}

/* Remove what a cluster of this name left: hugepage files and the DPDK
 * runtime folder. Called with the lock held (so nobody uses them) before
 * the start and after the stop. */
static void remove_files(const char *prefix)
{
	char pat[1024], dir[300];
	glob_t g;
	DIR *d;
	FILE *mounts = fopen("/proc/mounts", "re");
	char line[512];

	while (mounts && fgets(line, sizeof(line), mounts)) {
		char dev[128], mnt[256], type[64];

		if (sscanf(line, "%127s %255s %63s", dev, mnt, type) != 3 ||
		    strcmp(type, "hugetlbfs") != 0)
			continue;
		snprintf(pat, sizeof(pat), "%s/%smap_*", mnt, prefix);
		if (glob(pat, 0, NULL, &g) == 0) {
			for (size_t i = 0; i < g.gl_pathc; i++)
				unlink(g.gl_pathv[i]);
			globfree(&g);
		}
	}
	if (mounts)
		fclose(mounts);
	snprintf(dir, sizeof(dir), "%s/%s", EBB_FE_DPDK_DIR, prefix);
	d = opendir(dir);
	if (d != NULL) {
		struct dirent *e;

		while ((e = readdir(d)) != NULL) {
			if (e->d_name[0] == '.')
				continue;
			snprintf(pat, sizeof(pat), "%s/%s", dir, e->d_name);
			unlink(pat);
		}
		closedir(d);
		rmdir(dir);
	}
}

/* --- the control block, made by ebb_init() through the hook --- */

static int make_control_block(void)
{
	const struct rte_memzone *mz;
	struct ebb_cluster *cl;

	mz = rte_memzone_reserve(EBB_CLUSTER_MZ, sizeof(*cl), SOCKET_ID_ANY,
				 RTE_MEMZONE_2MB | RTE_MEMZONE_SIZE_HINT_ONLY);
	if (mz == NULL)
		return -ENOMEM;
	cl = mz->addr;
	memset(cl, 0, sizeof(*cl));
	cl->magic = EBB_CLUSTER_MAGIC;
	cl->version = EBB_CLUSTER_VERSION;
	cl->frontend_pid = getpid();
	cl->nnodes = fe.nnodes;
	cl->msix = (uint32_t)fe.o->msix;
	for (unsigned n = 0; n < fe.nnodes; n++) {
		struct ebb_cluster_node *cn = &cl->node[n];

		cn->ncores = n == 0 ? 1 : fe.o->cores_per_node;
		/* Global Ebb ids: a chunk per node, as ebballoc.c lays
		 * them out. */
		cn->id_base = EBB_ID_STATIC_END + n * 4096u;
		cn->id_count = 4096u;
		cn->port = UINT16_MAX;
		cn->wire_port = UINT16_MAX;
		cn->wire_peer = -1;
		for (unsigned c = 0; c < cn->ncores; c++) {
			int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

			if (fd < 0)
				return -errno;
			fe.node[n].doorbell[c] = fd;
			ebb_cluster_set_doorbell(n, c, fd);
		}
	}
	atomic_store(&cl->node[0].state, EBB_NODE_READY);
	cl->node[0].pid = getpid();
	fe.cl = cl;
	ebb_cluster = cl;
	return 0;
}

/* Inboxes and pools of the Messenger, one set per node, kept across
 * restarts. The node's port pool carries its messages too. */
static int make_node_memory(unsigned n)
{
	struct ebb_cluster_node *cn = &fe.cl->node[n];
	char name[RTE_RING_NAMESIZE];

	for (unsigned c = 0; c < cn->ncores; c++) {
		snprintf(name, sizeof(name), "ebbm%u.%u", n, c);
		cn->inbox[c] = rte_ring_create(name, FE_INBOX_SIZE,
					       SOCKET_ID_ANY,
					       RING_F_SC_DEQ | RING_F_EXACT_SZ);
		if (cn->inbox[c] == NULL)
			return -ENOMEM;
	}
	/* A node's pool is its port's (open_ports()); the frontend has its
	 * own for its messages. */
	if (n == 0) {
		snprintf(name, sizeof(name), "ebbp%u", n);
		/* No cache: lcore ids repeat across processes. */
		cn->port_pool = rte_pktmbuf_pool_create(
			name, fe.o->nmbufs, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
			SOCKET_ID_ANY);
		if (cn->port_pool == NULL)
			return -ENOMEM;
	}
	return 0;
}

/* --- ports --- */

/* Give the Linux side of node @n's tap its address and bring it up. */
static int tap_host_side(const char *ifname, uint32_t host, uint32_t mask)
{
	struct ifreq ifr;
	struct sockaddr_in *sa = (struct sockaddr_in *)&ifr.ifr_addr;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc = 0;

	if (s < 0)
		return -errno;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
	sa->sin_family = AF_INET;
	sa->sin_addr.s_addr = htonl(host);
	if (ioctl(s, SIOCSIFADDR, &ifr) != 0)
		rc = -errno;
	sa->sin_addr.s_addr = htonl(mask);
	if (!rc && ioctl(s, SIOCSIFNETMASK, &ifr) != 0)
		rc = -errno;
	if (!rc && ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
		ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
		if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0)
			rc = -errno;
	}
	close(s);
	return rc;
}

static void tap_name(unsigned n, char *buf, size_t len)
{
	snprintf(buf, len, "%s%u", fe.o->name, n);
}

static int open_ports(void)
{
	for (unsigned n = 1; n < fe.nnodes; n++) {
		struct fe_node *fn = &fe.node[n];
		struct ebb_cluster_node *cn = &fe.cl->node[n];
		struct ebb_nic_config nc = { 0 };
		char devargs[256], ifname[IFNAMSIZ];
		bool tap = false;

		if (fe.o->nallow >= n) {
			snprintf(devargs, sizeof(devargs), "%s",
				 fe.o->allow[n - 1]);
		} else if (fe.o->nvdev >= n) {
			snprintf(devargs, sizeof(devargs), "%s",
				 fe.o->vdev[n - 1]);
			tap = strncmp(devargs, "net_tap", 7) == 0;
		} else {
			tap_name(n, ifname, sizeof(ifname));
			snprintf(devargs, sizeof(devargs),
				 "net_tap_%s%u,iface=%s", fe.o->name, n,
				 ifname);
			tap = true;
		}
		if (strncmp(devargs, "net_af_packet", 13) == 0 ||
		    strncmp(devargs, "net_af_xdp", 10) == 0) {
			fprintf(stderr,
				"ebbrt: %s cannot serve a node: DPDK 22.11 "
				"does not run it in a secondary process "
				"(docs/devices.md); use net_tap or a PCI "
				"device\n",
				devargs);
			return -ENOTSUP;
		}
		nc.devargs = devargs;
		nc.nqueues = cn->ncores;
		nc.nmbufs = fe.o->nmbufs;
		nc.shared = true;
		fn->nic = ebb_nic_open(&nc);
		if (fn->nic == NULL) {
			fprintf(stderr, "ebbrt: node %u: cannot open port "
					"'%s': %s\n",
				n, devargs, strerror(errno));
			return -ENODEV;
		}
		/* The node's pool: rx buffers, its wire frames and its
		 * messages. */
		cn->port_pool = ebb_nic_pool(fn->nic);
		cn->port = ebb_nic_port_id(fn->nic);
		for (unsigned c = 0; c < cn->ncores; c++) {
			int fd = ebb_nic_queue_fd(fn->nic, c);

			fn->qfd[c] = fd;
			if (fd >= 0) {
				/* net_tap signals the primary on every frame
				 * (O_ASYNC); we wait on the fd instead. */
				int fl = fcntl(fd, F_GETFL);

				if (fl >= 0)
					fcntl(fd, F_SETFL, fl & ~O_ASYNC);
			}
		}
		if (fe.o->nip >= n && fe.o->ip[n - 1] != 0) {
			/* Static: as given; a tap's Linux side is the
			 * gateway, or the subnet's first other address. */
			cn->ip = fe.o->ip[n - 1];
			cn->netmask = fe.o->netmask[n - 1];
			cn->gateway = fe.o->ngateway >= n ?
					      fe.o->gateway[n - 1] : 0;
		} else if (tap) {
			cn->ip = fe.o->subnet + (n << 8) + 2;
			cn->netmask = 0xffffff00u;
			cn->gateway = fe.o->subnet + (n << 8) + 1;
		}
		if (tap && cn->ip != 0 && strstr(devargs, "iface=") != NULL) {
			const char *p = strstr(devargs, "iface=") + 6;
			size_t k = strcspn(p, ",");
			uint32_t host = cn->gateway;

			if (host == 0)
				host = (cn->ip & cn->netmask) +
				       ((cn->ip & ~cn->netmask) == 1 ? 2 : 1);
			snprintf(ifname, sizeof(ifname), "%.*s", (int)k, p);
			if (tap_host_side(ifname, host, cn->netmask) != 0) {
				fprintf(stderr, "ebbrt: cannot configure %s\n",
					ifname);
				return -EIO;
			}
		}
	}
	if (fe.o->wire) {
		/* Deep rings: a burst from a sender behind schedule is
		 * absorbed, not dropped. */
		struct ebb_nic_config nc = { .nqueues = fe.o->cores_per_node,
					     .ring_size = 4096 };
		char wname[EBB_NIC_WIRE_NAME_MAX];
		int rc;

		snprintf(wname, sizeof(wname), "%s", fe.o->name);
		rc = ebb_nic_open_wire(wname, &nc, &fe.node[1].wire,
				       &fe.node[2].wire);
		if (rc) {
			fprintf(stderr, "ebbrt: cannot make the wire: %s\n",
				strerror(-rc));
			return rc;
		}
		fe.cl->node[1].wire_port = ebb_nic_port_id(fe.node[1].wire);
		fe.cl->node[2].wire_port = ebb_nic_port_id(fe.node[2].wire);
		fe.cl->node[1].wire_peer = 2;
		fe.cl->node[2].wire_peer = 1;
		/* The subnet's first /24 is free: node links start at 1. */
		fe.cl->node[1].wire_ip = fe.o->subnet + 1;
		fe.cl->node[2].wire_ip = fe.o->subnet + 2;
	}
	return 0;
}

/* `--faults`: each node's settings per link, in its slot of the control
 * block, for its nic_borrow(); in command-line order, so a later one
 * overrides. Node N's generators start from the seed mixed with N and
 * the link (node 1's port uses the seed as given), so that nodes do not
 * drop in step. */
static void set_faults(void)
{
	for (unsigned i = 0; i < fe.o->nfaults; i++) {
		const struct ebb_fe_faults *f = &fe.o->faults[i];

		for (unsigned n = 1; n < fe.nnodes; n++) {
			if (f->node != 0 && f->node != n)
				continue;
			for (unsigned l = 0; l < EBB_LINKS; l++) {
				struct ebb_cluster_faults *cf =
					&fe.cl->node[n].faults[l];

				if (!(l == EBB_LINK_PORT ? f->port : f->wire))
					continue;
				if (l == EBB_LINK_WIRE &&
				    fe.cl->node[n].wire_port == UINT16_MAX)
					continue;
				memset(cf, 0, sizeof(*cf));
				cf->on = f->on;
				cf->seed = f->seed ^ ((uint64_t)(n - 1) << 40) ^
					   ((uint64_t)l << 56);
				cf->drop = f->drop;
				cf->duplicate = f->duplicate;
				cf->reorder = f->reorder;
				cf->corrupt = f->corrupt;
				cf->delay_us = f->delay_us;
				snprintf(fe.fault_spec[n][l],
					 sizeof(fe.fault_spec[n][l]), "%s",
					 f->on ? f->spec : "");
			}
		}
	}
}

/* --- nodes --- */

static void node_cpus_str(unsigned n, char *buf, size_t len)
{
	struct ebb_cluster_node *cn = &fe.cl->node[n];
	size_t k = 0;

	buf[0] = '\0';
	for (unsigned c = 0; c < cn->ncores && k < len; c++)
		k += (size_t)snprintf(buf + k, len - k, "%s%d", c ? "," : "",
				      cn->cpus[c]);
}

/* The environment of a node: ours, less what would confuse it, plus its
 * end of the control socket as fd 3. Built before the fork: the child of
 * a threaded process may only make async-signal-safe calls. */
#define NODE_CTL_FD 3
static char **node_environ(void)
{
	extern char **environ;
	static char ctl[32];
	size_t n = 0, k = 0;
	char **env;

	while (environ[n] != NULL)
		n++;
	env = calloc(n + 2, sizeof(*env));
	if (env == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "EBBRT_NODE_ID=", 14) != 0 &&
		    strncmp(environ[i], EBB_CONTROL_FD_ENV "=",
			    sizeof(EBB_CONTROL_FD_ENV)) != 0)
			env[k++] = environ[i];
	snprintf(ctl, sizeof(ctl), EBB_CONTROL_FD_ENV "=%d", NODE_CTL_FD);
	env[k] = ctl;
	return env;
}

static int launch(unsigned n)
{
	struct fe_node *fn = &fe.node[n];
	struct ebb_cluster_node *cn = &fe.cl->node[n];
	int sv[2] = { -1, -1 }, po[2] = { -1, -1 }, pe[2] = { -1, -1 };
	int pid, pidfd, rc;
	pid_t parent = getpid();
	char failmsg[256];
	char **env = node_environ();
	cpu_set_t set;

	CPU_ZERO(&set);
	for (unsigned c = 0; c < cn->ncores; c++)
		CPU_SET(cn->cpus[c], &set);
	snprintf(failmsg, sizeof(failmsg), "cannot run %s\n",
		 fe.o->app_argv[0]);
	if (env == NULL ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0 ||
	    pipe2(po, O_CLOEXEC) != 0 || pipe2(pe, O_CLOEXEC) != 0) {
		rc = env ? -errno : -ENOMEM;
		goto fail;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		rc = -errno;
		goto fail;
	}
	if (pid == 0) {
		sigset_t none;

		/* Own process group: a terminal's ^C goes to the frontend,
		 * which stops the nodes in order. Dies with the frontend. */
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		/* Ignored dispositions survive exec. */
		signal(SIGIO, SIG_DFL);
		signal(SIGPIPE, SIG_DFL);
		dup2(po[1], STDOUT_FILENO);
		dup2(pe[1], STDERR_FILENO);
		dup2(sv[1], NODE_CTL_FD);
		fcntl(NODE_CTL_FD, F_SETFD, 0);
		/* Nothing else of the frontend's: tap queues, hugepages. */
		close_range(NODE_CTL_FD + 1, ~0u, 0);
		sched_setaffinity(0, sizeof(set), &set);
		execvpe(fe.o->app_argv[0], fe.o->app_argv, env);
		if (write(STDERR_FILENO, failmsg, strlen(failmsg)) < 0)
			_exit(126);
		_exit(127);
	}
	free(env);
	env = NULL;
	close(sv[1]);
	close(po[1]);
	close(pe[1]);
	sv[1] = po[1] = pe[1] = -1;
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0) {
		rc = -errno;
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		goto fail;
	}
	fn->pid = pid;
	fn->pidfd = pidfd;
	fn->ctl = sv[0];
	fn->out = po[0];
	fn->err = pe[0];
	fn->outlen = fn->errlen = 0;
	fn->last_err[0] = '\0';
	fn->announced = false;
	fn->start_deadline = now_ms() + fe.o->start_timeout_s * 1000u;
	cn->pid = pid;
	atomic_store_explicit(&cn->state, EBB_NODE_STARTING,
			      memory_order_release);
	fcntl(fn->out, F_SETFL, O_NONBLOCK);
	fcntl(fn->err, F_SETFL, O_NONBLOCK);
	ep_add(pidfd, EPOLLIN, EV_TAG(EV_PID, n, 0));
	ep_add(fn->ctl, EPOLLIN, EV_TAG(EV_CTL, n, 0));
	ep_add(fn->out, EPOLLIN, EV_TAG(EV_OUT, n, 0));
	ep_add(fn->err, EPOLLIN, EV_TAG(EV_ERR, n, 0));
	return 0;
fail:
	free(env);
	for (int i = 0; i < 2; i++) {
		if (sv[i] >= 0)
			close(sv[i]);
		if (po[i] >= 0)
			close(po[i]);
		if (pe[i] >= 0)
			close(pe[i]);
	}
	return rc;
}

static int send_fds(int sock, uint32_t which, const int *fds, unsigned n)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * EBB_MAX_CORES)];
		struct cmsghdr align;
	} u;
	struct iovec iov = { &which, sizeof(which) };
	struct msghdr mh = { 0 };
	struct cmsghdr *cm;

	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = u.buf;
	mh.msg_controllen = CMSG_SPACE(sizeof(int) * n);
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int) * n);
	memcpy(CMSG_DATA(cm), fds, sizeof(int) * n);
	return sendmsg(sock, &mh, MSG_NOSIGNAL) == (ssize_t)sizeof(which) ?
		       0 :
		       -errno;
}

static int send_boot(unsigned n)
{
	struct fe_node *fn = &fe.node[n];
	struct ebb_cluster_node *cn = &fe.cl->node[n];
	struct ebb_boot b = { 0 };
	int rc;

	b.magic = EBB_CLUSTER_MAGIC;
	b.type = EBB_CTL_BOOT;
	b.node_id = n;
	b.nnodes = fe.nnodes;
	for (unsigned k = 0; k < fe.nnodes; k++)
		b.ncores[k] = fe.cl->node[k].ncores;
	memcpy(b.cpus, cn->cpus, sizeof(b.cpus));
	b.nqueue_fds = 0;
	if (fe.o->msix == EBB_MSIX_PASS && fn->nic != NULL &&
	    fn->qfd[0] >= 0)
		b.nqueue_fds = cn->ncores;
	snprintf(b.file_prefix, sizeof(b.file_prefix), "%s", fe.prefix);
	snprintf(b.log_level, sizeof(b.log_level), "%s", fe.o->log_level);
	if (fe.o->nallow == 0) {
		snprintf(b.eal_extra, sizeof(b.eal_extra), "--no-pci");
	} else {
		/* Its own device only (main.c checked that it fits). */
		snprintf(b.eal_extra, sizeof(b.eal_extra), "-a %s",
			 fe.o->allow[n - 1]);
	}
	if (send(fn->ctl, &b, sizeof(b), MSG_NOSIGNAL) != (ssize_t)sizeof(b))
		return -errno;
	for (unsigned k = 0; k < fe.nnodes; k++) {
		rc = send_fds(fn->ctl, k, fe.node[k].doorbell,
			      fe.cl->node[k].ncores);
		if (rc)
			return rc;
	}
	if (b.nqueue_fds)
		return send_fds(fn->ctl, 0, fn->qfd, b.nqueue_fds);
	return 0;
}

static void announce(unsigned n)
{
	struct ebb_cluster_node *cn = &fe.cl->node[n];
	char ip[32] = "-", cpus[128];

	if (cn->ip)
		ip_str(cn->ip, ip, sizeof(ip));
	node_cpus_str(n, cpus, sizeof(cpus));
	printf("node %u ready ip=%s cores=%s\n", n, ip, cpus);
	fflush(stdout);
	fe.node[n].announced = true;
}

static void on_ready(unsigned n)
{
	bool all = true;

	atomic_store_explicit(&fe.cl->node[n].state, EBB_NODE_READY,
			      memory_order_release);
	if (fe.all_ready_once) {
		announce(n);
		return;
	}
	for (unsigned k = 1; k < fe.nnodes; k++)
		all = all && atomic_load(&fe.cl->node[k].state) ==
				     EBB_NODE_READY;
	if (!all)
		return;
	/* One line per node, once every node serves. */
	fe.all_ready_once = true;
	for (unsigned k = 1; k < fe.nnodes; k++)
		announce(k);
}

static void on_ctl(unsigned n)
{
	struct fe_node *fn = &fe.node[n];
	struct ebb_ctl_msg m;
	ssize_t k = recv(fn->ctl, &m, sizeof(m), MSG_DONTWAIT);

	if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR)) {
		/* Gone; its pidfd tells how. */
		ep_del_close(&fn->ctl);
		return;
	}
	if (k != (ssize_t)sizeof(m) || m.magic != EBB_CLUSTER_MAGIC)
		return;
	if (m.type == EBB_CTL_HELLO) {
		int rc = send_boot(n);

		if (rc)
			fprintf(stderr, "ebbrt: node %u: cannot send its "
					"boot message: %s\n",
				n, strerror(-rc));
	} else if (m.type == EBB_CTL_READY) {
		on_ready(n);
	}
}

/* Relay a node's output line by line, prefixed by its id. */
static void on_output(unsigned n, bool err)
{
	struct fe_node *fn = &fe.node[n];
	int fd = err ? fn->err : fn->out;
	char *buf = err ? fn->errbuf : fn->outbuf;
	size_t *len = err ? &fn->errlen : &fn->outlen;
	FILE *to = err ? stderr : stdout;

	/* A few reads per wake-up: a chatty node must not hold the loop
	 * (epoll is level-triggered; the rest comes next time). */
	for (int round = 0; round < 8; round++) {
		ssize_t k = read(fd, buf + *len, FE_LINE_MAX - 1 - *len);
		char *nl, *start = buf;

		if (k <= 0) {
			if (k == 0 || (errno != EAGAIN && errno != EINTR)) {
				if (*len) {
					buf[*len] = '\0';
					fprintf(to, "[node %u] %s\n", n, buf);
					*len = 0;
				}
				ep_del_close(err ? &fn->err : &fn->out);
			}
			break;
		}
		*len += (size_t)k;
		buf[*len] = '\0';
		while ((nl = memchr(start, '\n',
				    (size_t)(buf + *len - start))) != NULL) {
			*nl = '\0';
			fprintf(to, "[node %u] %s\n", n, start);
			if (err)
				snprintf(fn->last_err, sizeof(fn->last_err),
					 "%s", start);
			start = nl + 1;
		}
		*len -= (size_t)(start - buf);
		memmove(buf, start, *len);
		if (*len == FE_LINE_MAX - 1) {
			fprintf(to, "[node %u] %s\n", n, buf);
			*len = 0;
		}
	}
	fflush(to);
}

struct pool_names {
	char prefix[16];
	char name[64][RTE_MEMPOOL_NAMESIZE];
	unsigned n;
};

static void find_pool(struct rte_mempool *mp, void *arg)
{
	struct pool_names *pn = arg;

	if (strncmp(mp->name, pn->prefix, strlen(pn->prefix)) == 0 &&
	    pn->n < RTE_DIM(pn->name))
		snprintf(pn->name[pn->n++], RTE_MEMPOOL_NAMESIZE, "%s",
			 mp->name);
}

/* Free what a dead node left in the shared memory of the cluster: the
 * messages waiting for it, its LocalIdMap and its slab pools. */
static void reclaim(unsigned n)
{
	struct ebb_cluster_node *cn = &fe.cl->node[n];
	char name[RTE_HASH_NAMESIZE];
	struct rte_hash *h;
	struct rte_mbuf *m;

	for (unsigned c = 0; c < cn->ncores; c++)
		while (cn->inbox[c] &&
		       rte_ring_sc_dequeue(cn->inbox[c], (void **)&m) == 0)
			rte_pktmbuf_free(m);
	snprintf(name, sizeof(name), "ebbidm%u.0", n);
	h = rte_hash_find_existing(name);
	rte_hash_free(h);
	/* TCP connection tables, "et<node>.<interface>.<queue>" (ebbs/net
	 * tcp.c); a node has a port and maybe a wire end, numbered from 0.
	 * The connections themselves were the node's private memory. */
	for (unsigned i = 0; i < 4; i++)
		for (unsigned c = 0; c < cn->ncores; c++) {
			snprintf(name, sizeof(name), "et%u.%u.%u", n, i, c);
			rte_hash_free(rte_hash_find_existing(name));
		}
	{
		static struct pool_names pn;

		pn.n = 0;
		snprintf(pn.prefix, sizeof(pn.prefix), EBB_SLAB_PREFIX_FMT, n);
		rte_mempool_walk(find_pool, &pn);
		for (unsigned i = 0; i < pn.n; i++)
			ebb_slab_free_pool(rte_mempool_lookup(pn.name[i]));
	}
	memset(cn->core, 0, sizeof(cn->core));
	atomic_store(&cn->net_claimed, 0);
	for (unsigned l = 0; l < EBB_LINKS; l++)
		memset(cn->faults[l].count, 0, sizeof(cn->faults[l].count));
}

static void describe_status(int st, char *buf, size_t len)
{
	if (WIFSIGNALED(st))
		snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(st),
			 strsignal(WTERMSIG(st)));
	else
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(st));
}

static void begin_stop(int code);

static unsigned live_nodes(void)
{
	unsigned k = 0;

	for (unsigned n = 1; n < fe.nnodes; n++)
		k += fe.node[n].pid > 0;
	return k;
}

static void on_exit_of(unsigned n)
{
	struct fe_node *fn = &fe.node[n];
	struct ebb_cluster_node *cn = &fe.cl->node[n];
	int st = 0, was = atomic_load(&cn->state);
	char why[128];
	bool failed;

	if (waitpid(fn->pid, &st, WNOHANG) <= 0)
		return;
	/* Output it wrote before dying. */
	if (fn->out >= 0)
		on_output(n, false);
	if (fn->err >= 0)
		on_output(n, true);
	ep_del_close(&fn->pidfd);
	ep_del_close(&fn->ctl);
	ep_del_close(&fn->out);
	ep_del_close(&fn->err);
	fn->pid = 0;
	cn->pid = 0;
	failed = WIFSIGNALED(st) || WEXITSTATUS(st) != 0;
	atomic_store_explicit(&cn->state,
			      failed ? EBB_NODE_DEAD : EBB_NODE_EXITED,
			      memory_order_release);
	reclaim(n);
	describe_status(st, why, sizeof(why));
	if (fe.stopping)
		return;
	if (was == EBB_NODE_STARTING && !fe.all_ready_once) {
		fprintf(stderr, "ebbrt: node %u failed to start: %s%s%s\n", n,
			fn->last_err[0] ? fn->last_err : why,
			fn->last_err[0] ? "; " : "",
			fn->last_err[0] ? why : "");
		begin_stop(1);
		return;
	}
	fprintf(stderr, "ebbrt: node %u %s\n", n, why);
	fflush(stderr);
	if (fe.o->restart == EBB_RESTART_ALWAYS ||
	    (fe.o->restart == EBB_RESTART_ON_FAILURE && failed)) {
		int rc = launch(n);

		if (rc == 0) {
			cn->restarts++;
			fprintf(stderr, "ebbrt: node %u restarting (restart "
					"%u)\n",
				n, cn->restarts);
			return;
		}
		fprintf(stderr, "ebbrt: node %u cannot restart: %s\n", n,
			strerror(-rc));
	}
	if (failed && fe.exit_code == 0)
		fe.exit_code = 1;
	if (live_nodes() == 0) {
		printf("ebbrt: every node has ended\n");
		begin_stop(fe.exit_code);
	}
}

/* Forwarded MSI-X: frames wait on node @n's queue @q; ring the owning
 * core's doorbell if it is halted. Edge-triggered: one event per batch of
 * frames, and a running core polls them anyway. */
static void on_qfd(unsigned n, unsigned q)
{
	ebb_cluster_kick(n, q);
}

static void begin_stop(int code)
{
	if (fe.stopping)
		return;
	fe.stopping = true;
	/* How the cluster stopped: 0 for a clean stop asked by a signal
	 * (even after a node died and was reported), non-zero when the
	 * frontend stops it on a failure. The nodes are stopped by
	 * shutdown_all(), one after the other. */
	fe.exit_code = code;
}

/* Ask node @n to stop: STOP on its control socket (ebb_stop()), or
 * SIGTERM if the socket is gone. */
static void send_stop(unsigned n)
{
	struct ebb_ctl_msg m = { .magic = EBB_CLUSTER_MAGIC,
				 .type = EBB_CTL_STOP };

	if (fe.node[n].ctl < 0 ||
	    send(fe.node[n].ctl, &m, sizeof(m), MSG_NOSIGNAL) < 0)
		kill(fe.node[n].pid, SIGTERM);
}

/* --- telemetry: /ebbrt/nodes and /ebbrt/node,N --- */

/* Every counter of struct ebb_net_stats, in its order. */
#define NET_STATS(X)                                                        \
	X(rx_frames) X(tx_frames) X(arp_requests) X(arp_replies_sent)       \
	X(icmp_echo_replies) X(drop_short) X(drop_ethertype)                \
	X(drop_not_for_us) X(drop_ip_header) X(drop_ip_checksum)            \
	X(drop_ip_fragment) X(drop_ttl) X(drop_proto) X(drop_icmp)          \
	X(drop_arp) X(drop_tx_full) X(arp_replies_rcvd)                     \
	X(arp_requests_sent) X(arp_pending_full) X(arp_pending_dropped)     \
	X(arp_timeouts) X(udp_rx) X(udp_tx) X(udp_bad_len)                  \
	X(udp_bad_checksum) X(udp_no_port) X(icmp_unreach_sent)             \
	X(icmp_unreach_limited) X(tx_no_route) X(rx_csum_by_device)         \
	X(tcp_rx) X(tcp_bad) X(tcp_bad_checksum) X(tcp_tx) X(tcp_rst_sent)  \
	X(tcp_rst_rcvd) X(tcp_accepted) X(tcp_connected) X(tcp_no_listener) \
	X(tcp_conns_full) X(tcp_backlog_full) X(tcp_retransmits)            \
	X(tcp_fast_retransmits) X(tcp_timeouts) X(tcp_challenge_acks)       \
	X(tcp_ooo) X(tcp_dropped) X(tcp_aborted)
#define NET_COUNT_ONE(f) +1
static_assert(sizeof(struct ebb_net_stats) ==
		      (0 NET_STATS(NET_COUNT_ONE)) * sizeof(uint64_t),
	      "NET_STATS lists every counter of struct ebb_net_stats");

/* The node's network counters, summed over its cores, as net_<name>. */
static void tel_net(struct rte_tel_data *d, struct ebb_cluster_node *cn)
{
	struct ebb_net_stats sum = { 0 };

	if (!atomic_load(&cn->net_claimed))
		return;
	for (unsigned c = 0; c < cn->ncores; c++) {
		const struct ebb_net_stats *s =
			(const struct ebb_net_stats *)cn->net_stats[c];

#define NET_SUM(f) sum.f += __atomic_load_n(&s->f, __ATOMIC_RELAXED);
		NET_STATS(NET_SUM)
#undef NET_SUM
	}
#define NET_TEL(f) rte_tel_data_add_dict_u64(d, "net_" #f, sum.f);
	NET_STATS(NET_TEL)
#undef NET_TEL
}

/* The faults node @n injects, per link with faults: the spec as given
 * (faults_<link>) and the counters summed over its cores
 * (faults_<link>_<counter>). */
static void tel_faults(struct rte_tel_data *d, unsigned n)
{
	static const char *const link[EBB_LINKS] = { "tap", "wire" };
	static const char *const what[EBB_FAULT_COUNTERS] = {
		"dropped", "duplicated", "reordered", "corrupted", "delayed",
	};
	struct ebb_cluster_node *cn = &fe.cl->node[n];
	char key[64];

	for (unsigned l = 0; l < EBB_LINKS; l++) {
		const struct ebb_cluster_faults *cf = &cn->faults[l];

		if (!cf->on)
			continue;
		snprintf(key, sizeof(key), "faults_%s", link[l]);
		rte_tel_data_add_dict_string(d, key, fe.fault_spec[n][l]);
		for (unsigned k = 0; k < EBB_FAULT_COUNTERS; k++) {
			uint64_t sum = 0;

			for (unsigned c = 0; c < cn->ncores; c++)
				sum += __atomic_load_n(&cf->count[c][k],
						       __ATOMIC_RELAXED);
			snprintf(key, sizeof(key), "faults_%s_%s", link[l],
				 what[k]);
			rte_tel_data_add_dict_u64(d, key, sum);
		}
	}
}

/* Telemetry runs on DPDK's own thread: it reads the ports, pools and
 * control block, which release_all() frees. */
static pthread_mutex_t tel_lock = PTHREAD_MUTEX_INITIALIZER;
static bool tel_closed;

static int tel_nodes(const char *cmd, const char *params,
		     struct rte_tel_data *d)
{
	(void)cmd;
	(void)params;
	rte_tel_data_start_array(d, RTE_TEL_INT_VAL);
	for (unsigned n = 0; n < fe.nnodes; n++)
		rte_tel_data_add_array_int(d, (int)n);
	return 0;
}

static int tel_node_locked(const char *cmd, const char *params,
			   struct rte_tel_data *d);

static int tel_node(const char *cmd, const char *params,
		    struct rte_tel_data *d)
{
	int rc = -ESHUTDOWN;

	pthread_mutex_lock(&tel_lock);
	if (!tel_closed)
		rc = tel_node_locked(cmd, params, d);
	pthread_mutex_unlock(&tel_lock);
	return rc;
}

static int tel_node_locked(const char *cmd, const char *params,
			   struct rte_tel_data *d)
{
	struct ebb_cluster_node *cn;
	char ip[32] = "-", cpus[128], key[64];
	unsigned n;
	char *end;

	(void)cmd;
	if (params == NULL || *params == '\0')
		return -EINVAL;
	n = (unsigned)strtoul(params, &end, 10);
	if (*end != '\0' || n >= fe.nnodes)
		return -EINVAL;
	cn = &fe.cl->node[n];
	if (cn->ip)
		ip_str(cn->ip, ip, sizeof(ip));
	node_cpus_str(n, cpus, sizeof(cpus));
	rte_tel_data_start_dict(d);
	rte_tel_data_add_dict_int(d, "id", (int)n);
	rte_tel_data_add_dict_string(d, "state",
				     ebb_node_state_name(atomic_load(&cn->state)));
	rte_tel_data_add_dict_int(d, "pid", cn->pid);
	rte_tel_data_add_dict_string(d, "ip", ip);
	rte_tel_data_add_dict_string(d, "cpus", n ? cpus : "any");
	rte_tel_data_add_dict_u64(d, "restarts", cn->restarts);
	rte_tel_data_add_dict_u64(d, "cores", cn->ncores);
	for (unsigned c = 0; c < cn->ncores; c++) {
		struct ebb_core_stats st;
		struct ebb_nic_queue_counters qc = { 0 };
		struct ebb_core_pub *p = &cn->core[c];

		ebb_core_pub_stats(p, &st);
		if (fe.node[n].nic != NULL)
			ebb_nic_queue_counters(fe.node[n].nic, c, &qc);
#define TEL_U64(field, val)                                                 \
	do {                                                                \
		snprintf(key, sizeof(key), "c%u_%s", c, field);             \
		rte_tel_data_add_dict_u64(d, key, (val));                   \
	} while (0)
		TEL_U64("iterations", st.iterations);
		TEL_U64("events", st.events);
		TEL_U64("halts", st.halts);
		TEL_U64("wakes", st.wakes);
		TEL_U64("doorbells", st.doorbells);
		TEL_U64("rx_packets", qc.rx_packets);
		TEL_U64("tx_packets", qc.tx_packets);
		TEL_U64("drops", qc.drops);
		TEL_U64("msgs_sent", __atomic_load_n(&p->msg.sent,
						     __ATOMIC_RELAXED));
		TEL_U64("msgs_received",
			__atomic_load_n(&p->msg.received, __ATOMIC_RELAXED));
		TEL_U64("msgs_full", __atomic_load_n(&p->msg.full,
						     __ATOMIC_RELAXED));
#undef TEL_U64
	}
	tel_net(d, cn);
	tel_faults(d, n);
	if (n == 0) {
		/* Shared memory in use, to see what restarts leak. */
		struct rte_malloc_socket_stats ms;
		uint64_t heap = 0;

		for (int s = 0; s < RTE_MAX_NUMA_NODES; s++)
			if (rte_malloc_get_socket_stats(s, &ms) == 0)
				heap += ms.heap_allocsz_bytes;
		rte_tel_data_add_dict_u64(d, "heap_in_use", heap);
	}
	if (cn->port_pool != NULL) {
		rte_tel_data_add_dict_u64(d, "pool_in_use",
				rte_mempool_in_use_count(cn->port_pool));
		rte_tel_data_add_dict_u64(d, "pool_size", cn->port_pool->size);
	}
	return 0;
}

/* --- start and stop --- */

static int frontend_hook(void)
{
	return make_control_block();
}

static int assign_cpus(void)
{
	unsigned need = (fe.nnodes - 1) * fe.o->cores_per_node, k = 0;

	if (need > fe.o->ncpus) {
		fprintf(stderr,
			"ebbrt: %u nodes x %u cores need %u cpus; only %u "
			"given (--cpus, or the cpus this process may use)\n",
			fe.nnodes - 1, fe.o->cores_per_node, need, fe.o->ncpus);
		return -EINVAL;
	}
	for (unsigned n = 1; n < fe.nnodes; n++)
		for (unsigned c = 0; c < fe.o->cores_per_node; c++)
			fe.cl->node[n].cpus[c] = fe.o->cpus[k++];
	return 0;
}

/* --- the clean-up watchdog --- */

/* Deadline (ms, CLOCK_MONOTONIC) of the clean-up step under way, or 0. */
static _Atomic uint64_t wd_deadline;
static const char *_Atomic wd_what;

/* A clean-up step that has not ended by its deadline is stuck, most
 * likely spinning on a lock of the shared memory that a killed node held
 * (DPDK cannot recover one): remove what can be removed and exit. */
static void *watchdog(void *arg)
{
	struct timespec ts = { 0, 50 * 1000 * 1000 };

	(void)arg;
	for (;;) {
		uint64_t d = atomic_load(&wd_deadline);

		if (d != 0 && now_ms() >= d)
			break;
		nanosleep(&ts, NULL);
	}
	fprintf(stderr, "ebbrt: clean-up stuck for %u s in %s (a lock of "
			"the shared memory left held by a killed node?); "
			"exiting without it\n",
		FE_CLEANUP_MS / 1000, atomic_load(&wd_what));
	fflush(NULL);
	remove_files(fe.prefix);
	if (fe.lockfd >= 0) {
		char path[256];

		ebb_fe_lock_path(fe.o->name, path, sizeof(path));
		unlink(path);
	}
	/* The taps go with our fds. */
	_exit(1);
}

/* Bound the clean-up step @what to FE_CLEANUP_MS (NULL: none runs). */
static void watchdog_arm(const char *what)
{
	static bool started;

	if (what == NULL) {
		atomic_store(&wd_deadline, 0);
		return;
	}
	atomic_store(&wd_what, what);
	atomic_store(&wd_deadline, now_ms() + FE_CLEANUP_MS);
	if (!started) {
		pthread_t t;
		sigset_t all, old;

		/* Signals stay with the main thread's signalfd. */
		sigfillset(&all);
		pthread_sigmask(SIG_BLOCK, &all, &old);
		if (pthread_create(&t, NULL, watchdog, NULL) == 0) {
			pthread_detach(t);
			started = true;
		}
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
}

/* Events while stopping: exits, output, control messages; signals are
 * read and ignored (we are stopping already). */
static void shutdown_events(int timeout_ms)
{
	struct epoll_event ev[16];
	int k = epoll_wait(fe.epfd, ev, 16, timeout_ms);

	for (int i = 0; i < k; i++) {
		unsigned kind = (unsigned)(ev[i].data.u64 >> 32);
		unsigned n = (unsigned)(ev[i].data.u64 >> 16) & 0xffff;

		if (kind == EV_PID) {
			/* Frees the node's shared objects: may meet a lock
			 * a killed node left. */
			watchdog_arm("freeing what a node left");
			on_exit_of(n);
			watchdog_arm(NULL);
		} else if (kind == EV_OUT || kind == EV_ERR) {
			on_output(n, kind == EV_ERR);
		} else if (kind == EV_CTL) {
			on_ctl(n);
		} else if (kind == EV_SIGNAL) {
			struct signalfd_siginfo si;

			if (read(fe.sigfd, &si, sizeof(si)) < 0)
				continue;
		}
	}
}

/*
 * Stop the nodes one after the other: STOP, wait for the exit, then the
 * next. A node tearing down frees shared memory, and DPDK then has the
 * primary sync every other process while the node holds the heap's lock;
 * a process in the middle of its own teardown may never answer, which
 * holds the lock for DPDK's 5 s timeout. One at a time, nobody waits on
 * a dying peer. A node that does not stop within FE_STOP_GRACE_MS (past
 * that timeout) is killed.
 */
static void shutdown_all(void)
{
	uint64_t deadline = now_ms() + FE_STOP_STARTING_MS;
	bool starting = false;

	begin_stop(fe.exit_code);
	for (unsigned n = 1; n < fe.nnodes; n++)
		if (fe.node[n].pid > 0 && atomic_load(&fe.cl->node[n].state) ==
						  EBB_NODE_STARTING) {
			send_stop(n);
			starting = true;
		}
	while (starting) {
		int64_t left = (int64_t)(deadline - now_ms());

		starting = false;
		for (unsigned n = 1; n < fe.nnodes; n++) {
			if (fe.node[n].pid <= 0 ||
			    atomic_load(&fe.cl->node[n].state) !=
				    EBB_NODE_STARTING)
				continue;
			starting = true;
			if (left <= 0) {
				fprintf(stderr, "ebbrt: node %u never became "
						"ready; killing it\n",
					n);
				kill(fe.node[n].pid, SIGKILL);
			}
		}
		if (left <= 0)
			deadline = now_ms() + FE_STOP_STARTING_MS;
		else if (starting)
			shutdown_events((int)left);
	}
	for (unsigned n = 1; n < fe.nnodes; n++) {
		uint64_t deadline = now_ms() + FE_STOP_GRACE_MS;

		if (fe.node[n].pid <= 0)
			continue;
		send_stop(n);
		while (fe.node[n].pid > 0) {
			int64_t left = (int64_t)(deadline - now_ms());

			if (left <= 0) {
				fprintf(stderr, "ebbrt: node %u did not stop "
						"within %u s; killing it\n",
					n, FE_STOP_GRACE_MS / 1000);
				kill(fe.node[n].pid, SIGKILL);
				deadline = now_ms() + FE_STOP_GRACE_MS;
				continue;
			}
			shutdown_events((int)left);
		}
	}
}

static void release_all(void)
{
	pthread_mutex_lock(&tel_lock);
	tel_closed = true;
	pthread_mutex_unlock(&tel_lock);
	watchdog_arm("closing the ports and DPDK");
	/* The wire first: frames still on its rings come from the sending
	 * node's pool, which closing that node's port frees. */
	for (unsigned n = 1; n < fe.nnodes; n++) {
		ebb_nic_close(fe.node[n].wire);
		fe.node[n].wire = NULL;
	}
	for (unsigned n = 1; n < fe.nnodes; n++) {
		ebb_nic_close(fe.node[n].nic);
		fe.node[n].nic = NULL;
	}
	ebb_fini();
	watchdog_arm(NULL);
	remove_files(fe.prefix);
	if (fe.lockfd >= 0) {
		char path[256];

		ebb_fe_lock_path(fe.o->name, path, sizeof(path));
		unlink(path);
		close(fe.lockfd);
		fe.lockfd = -1;
	}
}

static void serve(void)
{
	while (!fe.stopping) {
		struct epoll_event ev[32];
		uint64_t now = now_ms(), next = UINT64_MAX;
		int k, timeout;

		for (unsigned n = 1; n < fe.nnodes; n++) {
			if (fe.node[n].pid <= 0 ||
			    atomic_load(&fe.cl->node[n].state) !=
				    EBB_NODE_STARTING)
				continue;
			if (now >= fe.node[n].start_deadline) {
				fprintf(stderr,
					"ebbrt: node %u failed to start: no "
					"ready within %u s%s%s\n",
					n, fe.o->start_timeout_s,
					fe.node[n].last_err[0] ? "; last "
								 "error: " :
								 "",
					fe.node[n].last_err);
				if (fe.all_ready_once) {
					/* A restart that hangs: a death like
					 * any other (the policy decides). */
					kill(fe.node[n].pid, SIGKILL);
					fe.node[n].start_deadline = UINT64_MAX;
					continue;
				}
				begin_stop(1);
				return;
			}
			next = RTE_MIN(next, fe.node[n].start_deadline);
		}
		timeout = next == UINT64_MAX ? -1 : (int)(next - now);
		k = epoll_wait(fe.epfd, ev, 32, timeout);
		for (int i = 0; i < k && !fe.stopping; i++) {
			unsigned kind = (unsigned)(ev[i].data.u64 >> 32);
			unsigned n = (unsigned)(ev[i].data.u64 >> 16) & 0xffff;
			unsigned idx = (unsigned)ev[i].data.u64 & 0xffff;

			switch (kind) {
			case EV_SIGNAL: {
				struct signalfd_siginfo si;

				if (read(fe.sigfd, &si, sizeof(si)) ==
				    sizeof(si)) {
					fprintf(stderr,
						"ebbrt: %s: stopping the "
						"cluster\n",
						strsignal((int)si.ssi_signo));
					begin_stop(0);
				}
				break;
			}
			case EV_PID:
				on_exit_of(n);
				break;
			case EV_CTL:
				on_ctl(n);
				break;
			case EV_OUT:
			case EV_ERR:
				on_output(n, kind == EV_ERR);
				break;
			case EV_QFD:
				on_qfd(n, idx);
				break;
			}
		}
	}
}

int ebb_fe_run(const struct ebb_fe_opts *o)
{
	struct ebb_config cfg = { 0 };
	const char *eal[EBB_FE_MAX_DEVS * 2 + 8];
	char prefix_arg[96], level_arg[96], cpu[16];
	unsigned na = 0;
	sigset_t sigs;
	int rc;

	memset(&fe, 0, sizeof(fe));
	fe.o = o;
	fe.lockfd = -1;
	fe.nnodes = o->nodes + 1;
	for (unsigned n = 0; n < EBB_MAX_NODES; n++) {
		fe.node[n].id = n;
		fe.node[n].pidfd = fe.node[n].ctl = -1;
		fe.node[n].out = fe.node[n].err = -1;
		for (unsigned c = 0; c < EBB_MAX_CORES; c++)
			fe.node[n].doorbell[c] = fe.node[n].qfd[c] = -1;
	}
	/* Runtime files, hugepage files and sockets: the owner's only. */
	umask(077);
	ebb_fe_prefix(o->name, fe.prefix, sizeof(fe.prefix));
	rc = take_lock(o->name);
	if (rc)
		return 1;
	for (unsigned n = 1; n < fe.nnodes && o->nvdev < n && o->nallow < n;
	     n++) {
		char ifname[IFNAMSIZ];

		tap_name(n, ifname, sizeof(ifname));
		/* A cluster of this name that just died (we hold its lock
		 * now) leaves its taps to the kernel, which removes them
		 * once the last process holding them is gone: give that up
		 * to 2 s before calling the name taken. */
		for (unsigned t = 0; t < 200 && if_nametoindex(ifname) != 0;
		     t++)
			usleep(10000);
		if (if_nametoindex(ifname) != 0) {
			fprintf(stderr,
				"ebbrt: network interface %s exists already "
				"(another program's?); pick another --name\n",
				ifname);
			goto fail_lock;
		}
	}
	/* Another cluster (or anything else) on a node's link subnet would
	 * take its traffic: refuse rather than serve half the pings. */
	if (o->nvdev == 0 && o->nallow == 0) {
		struct ifaddrs *ifa, *i;

		if (getifaddrs(&ifa) == 0) {
			for (i = ifa; i; i = i->ifa_next) {
				uint32_t a;
				unsigned third;

				if (i->ifa_addr == NULL ||
				    i->ifa_addr->sa_family != AF_INET)
					continue;
				a = ntohl(((struct sockaddr_in *)i->ifa_addr)
						  ->sin_addr.s_addr);
				third = (a >> 8) & 0xffu;
				if ((a & 0xffff0000u) ==
					    (o->subnet & 0xffff0000u) &&
				    third > ((o->subnet >> 8) & 0xffu) &&
				    third <= ((o->subnet >> 8) & 0xffu) +
						     o->nodes) {
					char ip[32];

					ip_str(a & 0xffffff00u, ip, sizeof(ip));
					fprintf(stderr,
						"ebbrt: subnet %s/24 is in use "
						"on %s (another cluster?); "
						"pick another --subnet\n",
						ip, i->ifa_name);
					freeifaddrs(ifa);
					goto fail_lock;
				}
			}
			freeifaddrs(ifa);
		}
	}
	/* A frontend killed before its clean-up left these. */
	remove_files(fe.prefix);

	/* Signals arrive through a signalfd; nodes unblock them. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	/* net_tap's per-frame signal is off (O_ASYNC cleared), but should a
	 * queue's signals ever overflow, the kernel's SIGIO must not kill
	 * the frontend. */
	signal(SIGIO, SIG_IGN);
	/* `ebbrt run ... | head`: a closed pipe is an error to report,
	 * not a reason to die without cleaning up. */
	signal(SIGPIPE, SIG_IGN);
	fe.sigfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
	fe.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (fe.sigfd < 0 || fe.epfd < 0)
		goto fail_lock;
	ep_add(fe.sigfd, EPOLLIN, EV_TAG(EV_SIGNAL, 0, 0));

	snprintf(prefix_arg, sizeof(prefix_arg), "--file-prefix=%s", fe.prefix);
	snprintf(level_arg, sizeof(level_arg), "--log-level=%s", o->log_level);
	eal[na++] = "--proc-type=primary";
	/* Nodes map the shared memory at the frontend's addresses; left to
	 * chance, the kernel may have put a node's libraries (or ASan's
	 * shadow) there ("Cannot get a virtual area at requested
	 * address"). 32 TiB is above all of those on x86-64. */
	eal[na++] = "--base-virtaddr=0x200000000000";
	eal[na++] = prefix_arg;
	eal[na++] = level_arg;
	/* By default, quiet net_tap's errors about what this kernel lacks
	 * (multiq qdisc, flow rules), which it works without. */
	if (!o->log_level_set)
		eal[na++] = "--log-level=pmd.net.tap:critical";
	if (o->nallow == 0)
		eal[na++] = "--no-pci";
	for (unsigned i = 0; i < o->nallow; i++) {
		eal[na++] = "-a";
		eal[na++] = o->allow[i];
	}
	eal[na] = NULL;
	cfg.eal_args = eal;
	cfg.hosted = true;
	/* The frontend's one core sleeps nearly always; it may share the
	 * last cpu with a node. */
	snprintf(cpu, sizeof(cpu), "%d", o->cpus[o->ncpus - 1]);
	cfg.cpus = cpu;
	setenv("EBBRT_NODE_ID", "0", 1);
	unsetenv("EBBRT_CPUS");
	ebb_cluster_frontend_hook = frontend_hook;
	rc = ebb_init(&cfg);
	ebb_cluster_frontend_hook = NULL;
	if (rc) {
		fprintf(stderr, "ebbrt: cannot start the frontend: %s\n",
			strerror(-rc));
		goto fail_lock;
	}
	rc = assign_cpus();
	for (unsigned n = 0; !rc && n < fe.nnodes; n++)
		rc = make_node_memory(n);
	if (!rc)
		rc = open_ports();
	if (!rc)
		set_faults();
	if (!rc)
		rc = ebb_start();
	if (rc) {
		fprintf(stderr, "ebbrt: cluster set-up failed: %s\n",
			strerror(rc < 0 ? -rc : rc));
		fe.exit_code = 1;
		release_all();
		return 1;
	}
	rte_telemetry_register_cmd("/ebbrt/nodes", tel_nodes,
				   "Node ids of the cluster. No parameters");
	rte_telemetry_register_cmd("/ebbrt/node", tel_node,
				   "State and per-core counters of a node. "
				   "Parameter: node id");
	if (o->msix == EBB_MSIX_FORWARD)
		for (unsigned n = 1; n < fe.nnodes; n++)
			for (unsigned c = 0; c < fe.cl->node[n].ncores; c++)
				if (fe.node[n].qfd[c] >= 0)
					ep_add(fe.node[n].qfd[c],
					       EPOLLIN | EPOLLET,
					       EV_TAG(EV_QFD, n, c));
	for (unsigned n = 1; n < fe.nnodes; n++) {
		rc = launch(n);
		if (rc) {
			fprintf(stderr, "ebbrt: cannot launch node %u: %s\n", n,
				strerror(-rc));
			fe.exit_code = 1;
			break;
		}
	}
	if (rc == 0)
		serve();
	shutdown_all();
	ebb_stop();
	ebb_wait();
	release_all();
	if (fe.exit_code == 0)
		printf("ebbrt: cluster '%s' stopped\n", o->name);
	return fe.exit_code;
fail_lock:
	if (fe.lockfd >= 0) {
		char path[256];

		ebb_fe_lock_path(o->name, path, sizeof(path));
		unlink(path);
		close(fe.lockfd);
	}
	return 1;
}
