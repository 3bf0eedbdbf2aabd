/* SPDX-License-Identifier: MIT */
/*
 * device.h - the /dev/kheap chunk provider (the only code that talks to
 * the kernel).  See provider.h for the interface.
 */
#ifndef KHEAP_DEVICE_H
#define KHEAP_DEVICE_H

#include "provider.h"

#define KHEAP_DEFAULT_DEVICE	"/dev/kheap"
#define KHEAP_DEVICE_ENV	"KHEAP_DEVICE"

#endif
