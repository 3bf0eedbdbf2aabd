# SPDX-License-Identifier: GPL-2.0-only
#
# kheap: physically contiguous memory for user space.
#
#   make module [KDIR=...]   build module/kheap.ko (default: the running kernel)
#   make check               everything, in real 6.1 and 6.12 guests (QEMU)
#   make checkpatch          checkpatch.pl --strict on module/ and include/
#   make clean
#
# The kernel module itself is described by ./Kbuild and module/Kbuild; this
# file only drives builds.  DKMS and distribution builds may pass
# KERNELRELEASE= to pick a kernel.

KERNELRELEASE ?= $(shell uname -r)
KDIR ?= /lib/modules/$(KERNELRELEASE)/build

.PHONY: all module check checkpatch deps clean

all: module

module:
	$(MAKE) -C $(KDIR) M=$(CURDIR) modules

deps:
	scripts/deps.sh

check:
	scripts/check.sh

checkpatch:
	@ksrc=$$(scripts/ksrc.sh 6.12 $(CURDIR)/.cache/linux-6.12) && \
	perl $$ksrc/scripts/checkpatch.pl --strict --no-tree -f \
		module/*.c module/*.h include/uapi/linux/kheap.h

clean:
	$(MAKE) -C $(KDIR) M=$(CURDIR) clean 2>/dev/null || true
	-$(MAKE) -C selftests clean KSFT_DIR=$(CURDIR)/.cache/linux-6.12/tools/testing/selftests 2>/dev/null
	rm -rf build
