/* SPDX-License-Identifier: BSD-3-Clause */
/* GlobalIdMap: a cluster-wide map from Ebb id to a small value, stored by
 * the frontend in shared memory. Nodes read it directly; writes go
 * through the frontend. Standalone, the map is private to the process. */
#ifndef EBBRT_GIDMAP_H
#define EBBRT_GIDMAP_H

#include <stddef.h>

#include <ebbrt/ebb.h>
#include <ebbrt/future.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Largest value, in bytes. */
#define EBB_GID_VALUE_MAX 240u

/*
 * Read the value of @id into @buf (room for @len bytes). The read is
 * direct and consistent (never a value half written), so the future is
 * fulfilled at once, with the value's length (it may exceed @len: the
 * value was cut), or -ENOENT (no value). NULL with errno ENOMEM or EINVAL.
 * The caller destroys the future. Any thread.
 */
struct ebb_future *ebb_gid_get(ebb_id_t id, void *buf, size_t len);

/*
 * Set the value of @id to @len bytes at @val (copied at once; 0 bytes
 * removes it). The future is fulfilled with 0 once the frontend has
 * stored it -- every node then reads the new value -- or with -ENOSPC
 * (the map is full), -EHOSTDOWN (no frontend) or -EAGAIN (its inbox was
 * full). NULL with errno EINVAL (len too large, id 0) or ENOMEM.
 * Call on: an ebbrt core (the reply comes back to it) or, in the
 * frontend and standalone, any thread.
 */
struct ebb_future *ebb_gid_set(ebb_id_t id, const void *val, size_t len);

#ifdef __cplusplus
}
#endif
#endif
