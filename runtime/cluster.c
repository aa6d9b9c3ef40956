/* SPDX-License-Identifier: BSD-3-Clause */
/* A node's side of the cluster: the start-up handshake with the frontend,
 * the control block on shared hugepages, and doorbells across processes. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <rte_memzone.h>

#include "defs.h"

struct ebb_cluster *ebb_cluster;
int (*ebb_cluster_frontend_hook)(void);
int (*ebb_msg_core_start)(void);

/* Doorbell eventfds of every core of every node, as fds of this process
 * (+1 so that the zeroed table means "none"). */
static int doorbell_fd1[EBB_MAX_NODES][EBB_MAX_CORES];
static int queue_fd1[EBB_MAX_CORES];

/* How long a node waits for its boot message. */
#define EBB_BOOT_TIMEOUT_MS 10000

void ebb_cluster_set_doorbell(unsigned node, unsigned core, int fd)
{
	if (node < EBB_MAX_NODES && core < EBB_MAX_CORES)
		doorbell_fd1[node][core] = fd + 1;
}

int ebb_cluster_doorbell(unsigned node, unsigned core)
{
	if (node >= EBB_MAX_NODES || core >= EBB_MAX_CORES)
		return -1;
	return doorbell_fd1[node][core] - 1;
}

int ebb_cluster_queue_fd(unsigned q)
{
	return q < EBB_MAX_CORES ? queue_fd1[q] - 1 : -1;
}

void ebb_cluster_kick(unsigned node, unsigned core)
{
	int fd = ebb_cluster_doorbell(node, core);

	if (ebb_cluster != NULL && fd >= 0)
		ebb_kick_pub(&ebb_cluster->node[node].core[core], fd);
}

/* One message of at most @len bytes, with up to @maxfds fds; returns the
 * bytes read, 0 on EOF, or -errno. Waits at most @timeout_ms (-1: for
 * ever). */
static ssize_t ctl_recv(int fd, void *buf, size_t len, int *fds,
			unsigned maxfds, unsigned *nfds, int timeout_ms)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * EBB_MAX_CORES)];
		struct cmsghdr align;
	} u;
	struct iovec iov = { buf, len };
	struct msghdr mh = { 0 };
	struct pollfd pfd = { fd, POLLIN, 0 };
	struct cmsghdr *cm;
	ssize_t n;
	int rc;

	do {
		rc = poll(&pfd, 1, timeout_ms);
	} while (rc < 0 && errno == EINTR);
	if (rc == 0)
		return -ETIMEDOUT;
	if (rc < 0)
		return -errno;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = u.buf;
	mh.msg_controllen = sizeof(u.buf);
	do {
		n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (nfds != NULL)
		*nfds = 0;
	for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		unsigned k;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		k = (unsigned)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		for (unsigned i = 0; i < k; i++) {
			int f;

			memcpy(&f, CMSG_DATA(cm) + i * sizeof(int), sizeof(f));
			if (nfds != NULL && *nfds < maxfds)
				fds[(*nfds)++] = f;
			else
				close(f);
		}
	}
	return n;
}

static int ctl_send(int fd, uint32_t type, const char *text)
{
	struct ebb_ctl_msg m = { 0 };

	m.magic = EBB_CLUSTER_MAGIC;
	m.type = type;
	m.pid = getpid();
	if (text != NULL)
		snprintf(m.text, sizeof(m.text), "%s", text);
	if (send(fd, &m, sizeof(m), MSG_NOSIGNAL) != (ssize_t)sizeof(m))
		return -errno;
	return 0;
}

int ebb_cluster_boot(struct ebb_boot *boot, const char **eal_args,
		     unsigned max_args)
{
	static char prefix[96], level[96], extra[256];
	const char *env = getenv(EBB_CONTROL_FD_ENV);
	unsigned argc = 0, nfds;
	int fds[EBB_MAX_CORES];
	char *end;
	long v = strtol(env, &end, 10);
	ssize_t n;
	int fd, rc;

	if (*env == '\0' || *end != '\0' || v < 0 || v > INT32_MAX ||
	    fcntl((int)v, F_GETFD) < 0) {
		fprintf(stderr, "ebbrt: %s=%s is not an open control socket; "
				"start nodes with `ebbrt run`\n",
			EBB_CONTROL_FD_ENV, env);
		return -EBADF;
	}
	fd = (int)v;
	/* Children the app runs must not hold the socket open. */
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	unsetenv(EBB_CONTROL_FD_ENV);
	rc = ctl_send(fd, EBB_CTL_HELLO, NULL);
	if (rc)
		goto fail;
	n = ctl_recv(fd, boot, sizeof(*boot), NULL, 0, NULL,
		     EBB_BOOT_TIMEOUT_MS);
	if (n != (ssize_t)sizeof(*boot) || boot->magic != EBB_CLUSTER_MAGIC ||
	    boot->type != EBB_CTL_BOOT || boot->nnodes > EBB_MAX_NODES ||
	    boot->node_id >= boot->nnodes || boot->nqueue_fds > EBB_MAX_CORES) {
		rc = n < 0 ? (int)n : -EPROTO;
		goto fail;
	}
	for (unsigned node = 0; node < boot->nnodes; node++) {
		uint32_t which;

		if (boot->ncores[node] > EBB_MAX_CORES) {
			rc = -EPROTO;
			goto fail;
		}
		if (boot->ncores[node] == 0)
			continue;
		n = ctl_recv(fd, &which, sizeof(which), fds, EBB_MAX_CORES,
			     &nfds, EBB_BOOT_TIMEOUT_MS);
		if (n != sizeof(which) || which != node ||
		    nfds != boot->ncores[node]) {
			rc = n < 0 ? (int)n : -EPROTO;
			goto fail;
		}
		for (unsigned i = 0; i < nfds; i++)
			ebb_cluster_set_doorbell(node, i, fds[i]);
	}
	if (boot->nqueue_fds) {
		uint32_t which;

		n = ctl_recv(fd, &which, sizeof(which), fds, EBB_MAX_CORES,
			     &nfds, EBB_BOOT_TIMEOUT_MS);
		if (n != sizeof(which) || nfds != boot->nqueue_fds) {
			rc = n < 0 ? (int)n : -EPROTO;
			goto fail;
		}
		for (unsigned i = 0; i < nfds; i++)
			queue_fd1[i] = fds[i] + 1;
	}
	boot->file_prefix[sizeof(boot->file_prefix) - 1] = '\0';
	boot->log_level[sizeof(boot->log_level) - 1] = '\0';
	boot->eal_extra[sizeof(boot->eal_extra) - 1] = '\0';
	snprintf(prefix, sizeof(prefix), "--file-prefix=%s", boot->file_prefix);
	snprintf(level, sizeof(level), "--log-level=%s", boot->log_level);
	snprintf(extra, sizeof(extra), "%s", boot->eal_extra);
	eal_args[argc++] = "--proc-type=secondary";
	eal_args[argc++] = prefix;
	eal_args[argc++] = "--no-telemetry";
	eal_args[argc++] = level;
	for (char *tok = strtok(extra, " "); tok && argc + 1 < max_args;
	     tok = strtok(NULL, " "))
		eal_args[argc++] = tok;
	eal_args[argc] = NULL;
	ebb_node.ctl_fd = fd;
	return 0;
fail:
	fprintf(stderr, "ebbrt: handshake with the frontend failed: %s\n",
		strerror(-rc));
	close(fd);
	return rc;
}

/* STOP came, maybe before the cores existed: ebb_cluster_ready() acts on
 * it once they run. */
static _Atomic bool stop_requested;

/* Blocks on the control socket: STOP stops the cores; the frontend gone
 * (EOF) ends the node at once, as its peers cannot be reached any more. */
static void *ctl_watch(void *arg)
{
	int fd = (int)(intptr_t)arg;

	for (;;) {
		struct ebb_ctl_msg m;
		ssize_t n = ctl_recv(fd, &m, sizeof(m), NULL, 0, NULL, -1);

		if (n == (ssize_t)sizeof(m) && m.magic == EBB_CLUSTER_MAGIC &&
		    m.type == EBB_CTL_STOP) {
			/* Pairs with ebb_cluster_ready(): the flag before
			 * the look at started, and the other way there. */
			atomic_store(&stop_requested, true);
			if (__atomic_load_n(&ebb_node.started, __ATOMIC_SEQ_CST) &&
			    !__atomic_load_n(&ebb_node.finished,
					     __ATOMIC_SEQ_CST))
				ebb_stop();
			continue;
		}
		if (n > 0)
			continue;
		fprintf(stderr, "ebbrt: node %u: the frontend is gone; "
				"exiting\n", ebb_node.node_id);
		_exit(3);
	}
	return NULL;
}

/* EAL-internal (exported by librte_eal 22.11): frees the service-core
 * state every process allocates in the shared heap at init. */
void rte_service_finalize(void);

int ebb_cluster_attach(void)
{
	const struct rte_memzone *mz = rte_memzone_lookup(EBB_CLUSTER_MZ);
	struct ebb_cluster *cl;
	pthread_t t;
	sigset_t all, old;
	int rc;

	if (mz == NULL) {
		fprintf(stderr, "ebbrt: no cluster control block in the "
				"frontend's memory\n");
		return -ENOENT;
	}
	cl = mz->addr;
	if (cl->magic != EBB_CLUSTER_MAGIC ||
	    cl->version != EBB_CLUSTER_VERSION ||
	    cl->nnodes != ebb_node.boot.nnodes) {
		fprintf(stderr, "ebbrt: the frontend runs another version\n");
		return -EPROTO;
	}
	ebb_cluster = cl;
	/* A node never runs DPDK service cores, and a node killed with -9
	 * would leave their state (about 160 KiB) in the shared heap for
	 * good: free it now. */
	rte_service_finalize();
	/* The watcher takes no signal meant for the app. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = -pthread_create(&t, NULL, ctl_watch,
			     (void *)(intptr_t)ebb_node.ctl_fd);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc)
		return rc;
	pthread_detach(t);
	return 0;
}

void ebb_cluster_ready(void)
{
	if (ebb_node.ctl_fd >= 0 && ebb_node.node_id != 0)
		ctl_send(ebb_node.ctl_fd, EBB_CTL_READY, NULL);
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load(&stop_requested))
		ebb_stop();
}

uint64_t (*ebb_cluster_net_claim(void))[EBB_NET_STATS_WORDS]
{
	struct ebb_cluster_node *me;
	int expected = 0;

	if (ebb_cluster == NULL)
		return NULL;
	me = &ebb_cluster->node[ebb_node.node_id];
	if (!atomic_compare_exchange_strong(&me->net_claimed, &expected, 1))
		return NULL;
	memset(me->net_stats, 0, sizeof(me->net_stats));
	return me->net_stats;
}

void ebb_cluster_net_release(void)
{
	if (ebb_cluster != NULL)
		atomic_store(&ebb_cluster->node[ebb_node.node_id].net_claimed,
			     0);
}

/* --- the public view (<ebbrt/cluster.h>) --- */

bool ebb_cluster_mode(void)
{
	return ebb_cluster != NULL;
}

unsigned ebb_cluster_nodes(void)
{
	return ebb_cluster ? ebb_cluster->nnodes : 1;
}

int ebb_cluster_node_state(unsigned node)
{
	if (ebb_cluster == NULL)
		return node == ebb_node.node_id ? EBB_NODE_READY :
						  EBB_NODE_EMPTY;
	if (node >= ebb_cluster->nnodes)
		return EBB_NODE_EMPTY;
	/* Pairs with the frontend's release store when it changes it. */
	return atomic_load_explicit(&ebb_cluster->node[node].state,
				    memory_order_acquire);
}

unsigned ebb_cluster_node_cores(unsigned node)
{
	if (ebb_cluster == NULL)
		return node == ebb_node.node_id ? ebb_node.ncores : 0;
	return node < ebb_cluster->nnodes ? ebb_cluster->node[node].ncores :
					    0;
}

uint32_t ebb_cluster_node_ip(unsigned node)
{
	if (ebb_cluster == NULL || node >= ebb_cluster->nnodes)
		return 0;
	return ebb_cluster->node[node].ip;
}

uint32_t ebb_cluster_node_netmask(unsigned node)
{
	if (ebb_cluster == NULL || node >= ebb_cluster->nnodes)
		return 0;
	return ebb_cluster->node[node].netmask;
}

uint32_t ebb_cluster_node_gateway(unsigned node)
{
	if (ebb_cluster == NULL || node >= ebb_cluster->nnodes)
		return 0;
	return ebb_cluster->node[node].gateway;
}

uint32_t ebb_cluster_node_wire_ip(unsigned node)
{
	if (ebb_cluster == NULL || node >= ebb_cluster->nnodes)
		return 0;
	return ebb_cluster->node[node].wire_ip;
}

int ebb_cluster_stop(void)
{
	if (ebb_cluster == NULL)
		return -ENOTSUP;
	if (kill(ebb_cluster->frontend_pid, SIGTERM) != 0)
		return -errno;
	return 0;
}

const char *ebb_node_state_name(int state)
{
	static const char *const names[] = {
		[EBB_NODE_EMPTY] = "empty",   [EBB_NODE_STARTING] = "starting",
		[EBB_NODE_READY] = "ready",   [EBB_NODE_DEAD] = "dead",
		[EBB_NODE_EXITED] = "exited",
	};

	if (state < 0 || state >= (int)RTE_DIM(names))
		return "?";
	return names[state];
}
