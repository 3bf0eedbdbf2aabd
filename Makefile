# SPDX-License-Identifier: GPL-2.0-only
#
# kheap: physically contiguous memory for user space.
#
#   make module [KDIR=...]   build module/kheap.ko (default: the running kernel)
#   make check               everything, in real 6.1 and 6.12 guests (QEMU)
#   sudo make check HOST=1   the same tests against the running kernel
#   make check-debug         the guest suite on a KASAN/lockdep/kmemleak/
#                            fault injection kernel built here (README)
#   make bench               libkheap against glibc, jemalloc, mimalloc: host,
#                            then end to end in a 6.12 guest
#   make fuzz                kheap_fuzz for FUZZ_SECONDS (default 600) in a 6.12
#                            guest; FUZZ_ARGS='--seed S' replays a run
#   make soak                kheap_soak_test, SOAK_CYCLES (default 100000)
#                            open/alloc/mmap/close cycles, in a 6.12 guest
#   make checkpatch          checkpatch.pl --strict on module/ and include/
#   make check-clients       Debian's programs under kheap-run at full sizes,
#                            both sides in a 6.12 guest over the host's root (slow)
#   make shell               a root shell in a 6.12 guest over the host's root
#                            file system, this tree's kheap.ko loaded
#                            (KHEAP_SERIES=6.1, KHEAP_PARAMS='size=64M ...')
#   make clean
#
# The kernel module itself is described by ./Kbuild and module/Kbuild; this
# file only drives builds.  DKMS and distribution builds may pass
# KERNELRELEASE= to pick a kernel.

KERNELRELEASE ?= $(shell uname -r)
KDIR ?= /lib/modules/$(KERNELRELEASE)/build
HOST ?= 0

.PHONY: all module check check-debug check-clients bench checkpatch deps clean fuzz soak shell

all: module

module:
	$(MAKE) -C $(KDIR) M=$(CURDIR) modules

deps:
	scripts/deps.sh

check:
ifeq ($(HOST),1)
	scripts/check-host.sh
else
	scripts/check.sh
endif

check-debug:
	scripts/check-debug.sh

check-clients:
	scripts/check-clients.sh

bench:
	scripts/bench.sh

# KHEAP_SERIES=6.1 picks the other kernel; see scripts/fuzz.sh.
FUZZ_SECONDS ?= 600
SOAK_CYCLES ?= 100000

fuzz:
	FUZZ_SECONDS='$(FUZZ_SECONDS)' FUZZ_ARGS='$(FUZZ_ARGS)' scripts/fuzz.sh fuzz

soak:
	SOAK_CYCLES='$(SOAK_CYCLES)' scripts/fuzz.sh soak

shell:
	scripts/shell.sh

mutants:
	$(MAKE) -C userlib mutants

checkpatch:
	@ksrc=$$(scripts/ksrc.sh 6.12 $(CURDIR)/.cache/linux-6.12) && \
	perl $$ksrc/scripts/checkpatch.pl --strict --no-tree -f \
		$$(ls module/*.c module/*.h | grep -v '\.mod\.c$$') \
		include/uapi/linux/kheap.h

clean:
	$(MAKE) -C $(KDIR) M=$(CURDIR) clean 2>/dev/null || true
	-$(MAKE) -C selftests clean KSFT_DIR=$(CURDIR)/.cache/linux-6.12/tools/testing/selftests 2>/dev/null
	rm -rf build

# ---- kheapctl, installation, DKMS and the demo -------------------------------
#
#   make tools               userlib/libkheap.a, then tools/kheapctl
#   make install             [PREFIX=/usr/local] [DESTDIR=] [KERNELRELEASE=...]
#                            [PYTHON=/usr/bin/python3] [PYTHONDIR=...]: both of
#   make install-module      the module, into updates/, and
#   make install-user        libkheap, headers, kheapctl, man pages, udev
#                            rule, the Python package
#   make deb                 Debian packages into build/deb/ (scripts/deb.sh)
#   make uninstall           the same variables as install
#   make dkms                register, build and install the module with DKMS
#   make demo [HOST=1]       load, status, map, unload: in a 6.12 QEMU guest, or
#                            with HOST=1 (as root) on the running kernel
#
# The version lives in ./VERSION; dkms.conf must carry the same one.

VERSION := $(shell cat $(CURDIR)/VERSION)
PREFIX ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/kheap
UDEVRULESDIR ?= /lib/udev/rules.d
# The Python binding: Debian's python3 (not one earlier on PATH), into the
# directory Debian's python3 searches for this PREFIX.
PYTHON ?= /usr/bin/python3
PYTHON_VERSION = $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
PYTHONDIR ?= $(if $(filter /usr,$(PREFIX)),/usr/lib/python3/dist-packages,$(PREFIX)/lib/python$(PYTHON_VERSION)/dist-packages)
DKMS_SRC := /usr/src/kheap-$(VERSION)
# libkheap(3) aliases: `man kheap_malloc` and friends.
MAN3_ALIASES := kheap_malloc kheap_calloc kheap_realloc kheap_free \
	kheap_aligned_alloc kheap_posix_memalign kheap_malloc_usable_size \
	kheap_malloc_shared kheap_phys kheap_phys_to_virt kheap_stats kheap_trim kheap_attach kheap_attach_bits \
	kheap_detach kheap_dma_addr kheap_sync kheap_vfio_map kheap_vfio_unmap

.PHONY: tools install install-module install-user uninstall dkms demo deb dkms-version-check

tools:
	$(MAKE) -C userlib
	$(MAKE) -C tools

install: install-module install-user
ifeq ($(DESTDIR),)
	ldconfig
	getent group kheap >/dev/null || groupadd --system kheap
	-udevadm control --reload 2>/dev/null && udevadm trigger --subsystem-match=misc \
		--sysname-match=kheap 2>/dev/null
endif

install-module: module
	$(MAKE) -C $(KDIR) M=$(CURDIR) INSTALL_MOD_DIR=updates \
		$(if $(DESTDIR),INSTALL_MOD_PATH=$(DESTDIR)) modules_install
	$(if $(DESTDIR),,depmod -a $(KERNELRELEASE))

# Everything but the module (debian/rules installs this into debian/tmp).
install-user: tools
	$(MAKE) -C userlib install PREFIX=$(PREFIX) DESTDIR=$(DESTDIR)
	install -D -m 0644 include/uapi/linux/kheap.h $(DESTDIR)$(INCLUDEDIR)/linux/kheap.h
	install -D -m 0755 tools/kheapctl $(DESTDIR)$(SBINDIR)/kheapctl
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1
	sed -e 's|@LIBDIR@|$(LIBDIR)|' -e 's/@VERSION@/$(VERSION)/' tools/kheap-run \
		> $(DESTDIR)$(BINDIR)/kheap-run && chmod 0755 $(DESTDIR)$(BINDIR)/kheap-run
	sed 's/@VERSION@/$(VERSION)/' man/kheap-run.1 > $(DESTDIR)$(MANDIR)/man1/kheap-run.1
	install -d $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man3
	sed 's/@VERSION@/$(VERSION)/' man/kheapctl.8 > $(DESTDIR)$(MANDIR)/man8/kheapctl.8
	sed 's/@VERSION@/$(VERSION)/' man/libkheap.3 > $(DESTDIR)$(MANDIR)/man3/libkheap.3
	for f in $(MAN3_ALIASES); do \
		echo '.so man3/libkheap.3' > $(DESTDIR)$(MANDIR)/man3/$$f.3 || exit 1; \
	done
	install -D -m 0644 udev/60-kheap.rules $(DESTDIR)$(UDEVRULESDIR)/60-kheap.rules
	install -D -m 0644 docs/kheap.modprobe.conf $(DESTDIR)$(DOCDIR)/examples/kheap.modprobe.conf
	install -D -m 0644 docs/kheap.modules-load.conf \
		$(DESTDIR)$(DOCDIR)/examples/kheap.modules-load.conf
	install -D -m 0644 docs/install.md $(DESTDIR)$(DOCDIR)/install.md
	install -d $(DESTDIR)$(PYTHONDIR)/kheap
	install -m 0644 python/kheap/*.py $(DESTDIR)$(PYTHONDIR)/kheap/

# Kbuild installs the module where it sits in the tree: updates/module/.
INSTALLED_KO := $(DESTDIR)/lib/modules/$(KERNELRELEASE)/updates/module/kheap.ko

uninstall:
	rm -f $(INSTALLED_KO) $(INSTALLED_KO).xz $(INSTALLED_KO).zst $(INSTALLED_KO).gz
	-rmdir $(dir $(INSTALLED_KO)) 2>/dev/null
	$(if $(DESTDIR),,depmod -a $(KERNELRELEASE))
	$(MAKE) -C userlib uninstall PREFIX=$(PREFIX) DESTDIR=$(DESTDIR)
	rm -f $(DESTDIR)$(INCLUDEDIR)/linux/kheap.h $(DESTDIR)$(SBINDIR)/kheapctl \
		$(DESTDIR)$(BINDIR)/kheap-run $(DESTDIR)$(MANDIR)/man1/kheap-run.1 \
		$(DESTDIR)$(MANDIR)/man8/kheapctl.8 $(DESTDIR)$(MANDIR)/man3/libkheap.3 \
		$(foreach f,$(MAN3_ALIASES),$(DESTDIR)$(MANDIR)/man3/$(f).3) \
		$(DESTDIR)$(UDEVRULESDIR)/60-kheap.rules \
		$(DESTDIR)$(DOCDIR)/examples/kheap.modprobe.conf \
		$(DESTDIR)$(DOCDIR)/examples/kheap.modules-load.conf \
		$(DESTDIR)$(DOCDIR)/install.md
	rm -rf $(DESTDIR)$(PYTHONDIR)/kheap
	-rmdir $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(DOCDIR) \
		$(DESTDIR)$(INCLUDEDIR)/linux 2>/dev/null
ifeq ($(DESTDIR),)
	ldconfig
	if command -v dkms >/dev/null && [ -n "$$(dkms status kheap/$(VERSION) 2>/dev/null)" ]; then \
		dkms remove kheap/$(VERSION) --all && rm -rf $(DKMS_SRC); fi
endif

dkms-version-check:
	@v=$$(sed -n 's/^PACKAGE_VERSION="\(.*\)"$$/\1/p' dkms.conf); \
	if [ "$$v" != "$(VERSION)" ]; then \
		echo "dkms.conf: PACKAGE_VERSION=\"$$v\" but VERSION is $(VERSION)" >&2; exit 1; fi

dkms: dkms-version-check
	rm -rf $(DKMS_SRC) && mkdir -p $(DKMS_SRC)/module $(DKMS_SRC)/include/uapi/linux
	cp Kbuild Makefile VERSION dkms.conf $(DKMS_SRC)/
	cp module/Kbuild module/*.c module/*.h $(DKMS_SRC)/module/
	cp include/uapi/linux/kheap.h $(DKMS_SRC)/include/uapi/linux/
	[ -z "$$(dkms status kheap/$(VERSION) 2>/dev/null)" ] || dkms remove kheap/$(VERSION) --all
	dkms add kheap/$(VERSION)
	dkms build kheap/$(VERSION) -k $(KERNELRELEASE)
	dkms install kheap/$(VERSION) -k $(KERNELRELEASE)

demo:
	HOST=$(HOST) scripts/demo.sh

deb:
	scripts/deb.sh
