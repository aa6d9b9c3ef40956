/* SPDX-License-Identifier: BSD-3-Clause */
/* The whole public API of libebbrt. */
#ifndef EBBRT_EBBRT_H
#define EBBRT_EBBRT_H

#include <ebbrt/node.h>
#include <ebbrt/cluster.h>
#include <ebbrt/event.h>
#include <ebbrt/timer.h>
#include <ebbrt/future.h>
#include <ebbrt/ebb.h>
#include <ebbrt/mem.h>

#define EBBRT_VERSION "0.1.0"

#endif
