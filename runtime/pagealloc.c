/* SPDX-License-Identifier: BSD-3-Clause */
/* PageAllocator: page-aligned blocks of the DPDK hugepage heap, placed on
 * a NUMA node. */
#include <errno.h>
#include <stdint.h>

#include <rte_common.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_memory.h>

#include <ebbrt/mem.h>

#include "defs.h"

/* Whether DPDK has a heap on NUMA node @numa. */
static bool page_socket_known(int numa)
{
	unsigned i;

	for (i = 0; i < rte_socket_count(); i++)
		if (rte_socket_id_by_idx(i) == numa)
			return true;
	return false;
}

void *ebb_page_alloc(size_t size, int numa)
{
	struct ebb_core *self = ebb_self;
	int socket;
	void *p;

	if (size == 0 || numa < -1) {
		errno = EINVAL;
		return NULL;
	}
	if (size > SIZE_MAX - (EBB_PAGE_SIZE - 1)) {
		errno = ENOMEM;
		return NULL;
	}
	size = RTE_ALIGN_CEIL(size, (size_t)EBB_PAGE_SIZE);
	if (numa == -1) {
		socket = self ? self->numa : SOCKET_ID_ANY;
		/* A core on a node without DPDK memory takes any. */
		if (socket != SOCKET_ID_ANY && !page_socket_known(socket))
			socket = SOCKET_ID_ANY;
	} else if (page_socket_known(numa)) {
		socket = numa;
	} else {
		errno = EINVAL;
		return NULL;
	}
	p = rte_malloc_socket(NULL, size, EBB_PAGE_SIZE, socket);
	if (p == NULL)
		errno = ENOMEM;
	return p;
}

void ebb_page_free(void *p)
{
	rte_free(p);
}
