#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# Host test of `make install` / `make uninstall` (KTAP), in a copy of the
# source tree so the work tree is not touched:
#   - `make tools` first with the default PREFIX, then `make install
#     DESTDIR=... PREFIX=/usr KERNELRELEASE=KREL`, as a user would;
#   - the installed files are exactly the expected list;
#   - kheap.pc names the PREFIX it was installed under; the man pages carry
#     the version and render without warnings; the udev rule is there;
#   - a program built with `pkg-config --cflags --libs kheap` against the
#     installed copy compiles and links (OUTDIR/install/pc-hello, with the
#     installed libraries in OUTDIR/install/lib: stage both under the
#     guest's /kheap/install/ and tools/tests/run.sh runs it there);
#   - the Python package imports from the copy, over the installed
#     libkheap.so.1;
#   - `make uninstall` with the same variables leaves no file behind.
# Usage: tools/tests/install-check.sh KREL OUTDIR
set -u
krel=${1:?usage: install-check.sh KREL OUTDIR}
out=${2:?usage: install-check.sh KREL OUTDIR}
top=$(cd "$(dirname "$0")/../.." && pwd)
version=$(cat "$top/VERSION")

# KTAP helpers shared with kheapctl's tests.
. "$top/tools/tests/ktap.sh"

ktap_plan 9
rm -rf "$out/src" "$out/dest" "$out/install"
mkdir -p "$out/src" "$out/dest" "$out/install/lib"
src=$out/src
dest=$out/dest
log=$out/install.log

# The tree without build products, caches or git metadata.
(cd "$top" && tar --exclude=./.git --exclude=./build --exclude=./.cache \
	--exclude='*.o' --exclude='*.ko' --exclude='*.a' --exclude='*.so*' \
	--exclude='.*.cmd' --exclude='*.mod' --exclude='*.mod.c' -cf - .) |
	(cd "$src" && tar -xf -)

make -C "$src" tools > "$log" 2>&1 &&
	make -C "$src" install DESTDIR="$dest" PREFIX=/usr KERNELRELEASE="$krel" >> "$log" 2>&1
rc=$?
[ $rc -eq 0 ] || tail -n 30 "$log" | sed 's/^/# /'
ktap_result $rc "make tools; make install DESTDIR=... PREFIX=/usr KERNELRELEASE=$krel"

ko=kheap.ko
grep -q '^CONFIG_MODULE_COMPRESS_ALL=y' "/lib/modules/$krel/build/.config" 2>/dev/null &&
	grep -q '^CONFIG_MODULE_COMPRESS_XZ=y' "/lib/modules/$krel/build/.config" && ko=kheap.ko.xz
cat > "$out/expected" <<LIST
lib/modules/$krel/updates/module/$ko
lib/udev/rules.d/60-kheap.rules
usr/bin/kheap-run
usr/include/kheap.h
usr/include/linux/kheap.h
usr/lib/libkheap-preload.so
usr/lib/libkheap.a
usr/lib/libkheap.so
usr/lib/libkheap.so.1
usr/lib/libkheap.so.1.4.0
usr/lib/pkgconfig/kheap.pc
usr/lib/python3/dist-packages/kheap/__init__.py
usr/lib/python3/dist-packages/kheap/_buffer.py
usr/lib/python3/dist-packages/kheap/_device.py
usr/lib/python3/dist-packages/kheap/_info.py
usr/lib/python3/dist-packages/kheap/_lib.py
usr/sbin/kheapctl
usr/share/doc/kheap/examples/kheap.modprobe.conf
usr/share/doc/kheap/examples/kheap.modules-load.conf
usr/share/doc/kheap/install.md
usr/share/man/man1/kheap-run.1
usr/share/man/man3/kheap_aligned_alloc.3
usr/share/man/man3/kheap_attach.3
usr/share/man/man3/kheap_attach_bits.3
usr/share/man/man3/kheap_calloc.3
usr/share/man/man3/kheap_detach.3
usr/share/man/man3/kheap_dma_addr.3
usr/share/man/man3/kheap_free.3
usr/share/man/man3/kheap_malloc.3
usr/share/man/man3/kheap_malloc_shared.3
usr/share/man/man3/kheap_malloc_usable_size.3
usr/share/man/man3/kheap_phys.3
usr/share/man/man3/kheap_phys_to_virt.3
usr/share/man/man3/kheap_posix_memalign.3
usr/share/man/man3/kheap_realloc.3
usr/share/man/man3/kheap_stats.3
usr/share/man/man3/kheap_sync.3
usr/share/man/man3/kheap_trim.3
usr/share/man/man3/kheap_vfio_map.3
usr/share/man/man3/kheap_vfio_unmap.3
usr/share/man/man3/libkheap.3
usr/share/man/man8/kheapctl.8
LIST
# depmod's own files are not ours (kbuild runs depmod on some kernels).
(cd "$dest" && find . \( -type f -o -type l \) | sed 's|^\./||' |
	grep -v "^lib/modules/$krel/modules\." | LC_ALL=C sort) > "$out/installed"
LC_ALL=C sort "$out/expected" | diff -u - "$out/installed" > "$out/diff"
rc=$?
ktap_diag "$out/diff"
ktap_result $rc "the installed files are exactly the expected $(wc -l < "$out/expected")"

pc=$dest/usr/lib/pkgconfig/kheap.pc
usr/lib/python3/dist-packages/kheap/__init__.py
usr/lib/python3/dist-packages/kheap/_buffer.py
usr/lib/python3/dist-packages/kheap/_device.py
usr/lib/python3/dist-packages/kheap/_info.py
usr/lib/python3/dist-packages/kheap/_lib.py
grep -qx 'prefix=/usr' "$pc" && grep -qx 'libdir=/usr/lib' "$pc" &&
	grep -qx 'includedir=/usr/include' "$pc"
rc=$?
[ $rc -eq 0 ] && ! [ -f "$pc" ] || ktap_diag "$pc"
ktap_result $rc "kheap.pc names the install PREFIX (/usr)"

ok=0
for m in usr/share/man/man8/kheapctl.8 usr/share/man/man3/libkheap.3 \
	usr/share/man/man1/kheap-run.1; do
	grep -q "\"kheap $version\"" "$dest/$m" || { echo "# $m: no version $version"; ok=1; }
	groff -man -ww -z "$dest/$m" > "$out/groff" 2>&1 && [ ! -s "$out/groff" ] ||
		{ ktap_diag "$out/groff"; ok=1; }
done
ktap_result $ok "man pages carry version $version and render cleanly"

grep -q 'GROUP="kheap", MODE="0660"' "$dest/lib/udev/rules.d/60-kheap.rules" &&
	[ -x "$dest/usr/sbin/kheapctl" ] &&
	modinfo -F vermagic "$dest/lib/modules/$krel/updates/module/$ko" | grep -q "^$krel "
ktap_result $? "udev rule, kheapctl and a kheap.ko for $krel installed"

# kheap-run names the installed library and its version.
grep -qx "installed_lib='/usr/lib/libkheap-preload.so'" "$dest/usr/bin/kheap-run" &&
	[ -x "$dest/usr/bin/kheap-run" ] &&
	"$dest/usr/bin/kheap-run" --version | grep -qx "kheap-run $version"
ktap_result $? "kheap-run installed, naming /usr/lib/libkheap-preload.so"

flags=$(PKG_CONFIG_SYSROOT_DIR=$dest PKG_CONFIG_LIBDIR=$dest/usr/lib/pkgconfig \
	pkg-config --cflags --libs kheap 2> "$out/pc.err")
rc=$?
ktap_diag "$out/pc.err"
echo "# pkg-config --cflags --libs kheap: $flags"
# shellcheck disable=SC2086
[ $rc -eq 0 ] && cc -Wall -Wextra -Werror -O2 -o "$out/install/pc-hello" \
	"$top/tools/tests/pc-hello.c" $flags > "$out/cc.log" 2>&1
rc=$?
ktap_diag "$out/cc.log"
cp -P "$dest"/usr/lib/libkheap.so* "$out/install/lib/" 2>/dev/null
ktap_result $rc "a program builds with pkg-config --cflags --libs kheap against the copy"

# Linked against the installed shared library, not the static one.
readelf -d "$out/install/pc-hello" 2>/dev/null | grep -q 'NEEDED.*libkheap.so.1'
ktap_result $? "it links libkheap.so.1 dynamically"

# The Python package imports from where it was installed, over the
# installed libkheap.so.1, and finds no device on this host (ENODEV).
PYTHONPATH=$dest/usr/lib/python3/dist-packages KHEAP_LIBRARY=$dest/usr/lib/libkheap.so.1 \
	PYTHONDONTWRITEBYTECODE=1 KHEAP_DEVICE=/nonexistent/kheap /usr/bin/python3 -c '
import errno, kheap, sys
assert kheap.__file__.startswith(sys.argv[1]), kheap.__file__
try:
    kheap.allocate(10)
except OSError as e:
    assert e.errno == errno.ENODEV, e
else:
    raise AssertionError("allocate() without a device succeeded")
' "$dest/usr/lib/python3/dist-packages" > "$out/py.log" 2>&1
rc=$?
ktap_diag "$out/py.log"
ktap_result $rc "the installed Python package imports over the installed libkheap"

make -C "$src" uninstall DESTDIR="$dest" PREFIX=/usr KERNELRELEASE="$krel" >> "$log" 2>&1
rc=$?
left=$(cd "$dest" && find . \( -type f -o -type l \) | grep -v "^\./lib/modules/$krel/modules\.")
[ $rc -eq 0 ] && [ -z "$left" ]
rc=$?
[ $rc -eq 0 ] || echo "$left" | sed 's/^/# left: /'
ktap_result $rc "make uninstall removes every installed file"

ktap_done
