#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# `make demo`: from a fresh Debian 12 machine to the virtual -> MMU ->
# physical picture in one command.
#   1. install what is missing (scripts/deps.sh; with HOST=1 only what a
#      host build needs: compiler, libkmod, the running kernel's headers);
#   2. build kheap.ko for the 6.12 kernel (HOST=1: the running kernel),
#      libkheap and kheapctl;
#   3. boot the 6.12 kernel under QEMU (scripts/run-guest.sh) and run
#      scripts/demo-guest.sh there: kheapctl load, status, map, unload
#      (HOST=1: run it right here, which needs root);
#   4. print what the demo printed, without the kernel's console noise.
# Exit status is non-zero if any step fails.  Build logs go to build/demo/.
# Environment: HOST=1, DEMO_ARGS (load parameters, default "size=64M"),
# DEMO_SERIES (default 6.12).
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
host=${HOST:-0}
args=${DEMO_ARGS:-size=64M}
series=${DEMO_SERIES:-6.12}
out=$top/build/demo
mkdir -p "$out"
log=$out/build.log
: > "$log"

say() { printf '==> %s\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }
# Run quietly into the log; on failure show its end.
quiet() {
	if ! "$@" >> "$log" 2>&1; then
		printf 'demo: failed: %s\n--- last lines of %s ---\n' "$*" "$log" >&2
		tail -n 40 "$log" >&2
		exit 1
	fi
}

if [ "$host" = 1 ]; then
	[ "$(id -u)" -eq 0 ] || die "HOST=1 loads a module into the running kernel: run as root (sudo make demo HOST=1)"
	say "checking dependencies (scripts/host-deps.sh)"
	scripts/host-deps.sh >> "$log" 2>&1 || { tail -n 8 "$log" >&2; exit 1; }
	krel=$(uname -r)
else
	say "checking dependencies (scripts/deps.sh)"
	scripts/deps.sh >> "$log" 2>&1 || { tail -n 20 "$log" >&2; die "scripts/deps.sh failed (run as root to install)"; }
	krel=$(scripts/kernels.sh "$series") || die "no $series kernel installed"
fi
[ -e "/lib/modules/$krel/build/Makefile" ] || die "no headers for $krel in /lib/modules/$krel/build"

say "building kheap.ko for $krel"
if [ "$host" = 1 ]; then
	# In the tree, where kheapctl looks for it (../module/kheap.ko).
	quiet make module KERNELRELEASE="$krel"
	ko=$top/module/kheap.ko
else
	rm -rf "$out/src" && mkdir -p "$out/src"
	cp -a Kbuild module include "$out/src/"
	find "$out/src" \( -name '*.o' -o -name '*.ko' -o -name '*.mod' -o -name '*.mod.c' \
		-o -name '.*.cmd' -o -name modules.order -o -name Module.symvers \) -delete
	quiet make -C "/lib/modules/$krel/build" M="$out/src" -j2 modules
	ko=$out/src/module/kheap.ko
fi
[ -f "$ko" ] || die "no $ko after the build"

say "building libkheap and kheapctl"
quiet make -C userlib
quiet make -C tools

if [ "$host" = 1 ]; then
	say "running the demo on this machine ($krel)"
	# shellcheck disable=SC2086
	scripts/demo-guest.sh "$top/tools/kheapctl" $args
	exit $?
fi

say "packing the guest (kheapctl, kheap.ko, busybox)"
stage=$out/stage
rm -rf "$stage" && mkdir -p "$stage/bin" "$stage/tools" "$stage/module"
cp tools/kheapctl "$stage/tools/"
cp "$ko" "$stage/module/kheap.ko"
cp scripts/demo-guest.sh "$stage/demo-guest.sh"
quiet gcc -O2 -static -Wall -Wextra -Werror -o "$stage/bin/guest-exit" scripts/guest-exit.c
quiet scripts/mkinitramfs.sh "$krel" "$stage" "$out/initramfs.cpio"
cat > "$out/run.sh" <<RUN
# Keep kernel messages off the console while the demo prints.
dmesg -n 1
sh /kheap/demo-guest.sh /kheap/tools/kheapctl $args > /tmp/demo.out 2>&1
rc=\$?
echo KHEAP-DEMO-BEGIN
cat /tmp/demo.out
echo KHEAP-DEMO-END
exit \$rc
RUN

say "booting $krel under QEMU (TCG, about 10 s)"
scripts/run-guest.sh --quiet --timeout 300 "$krel" "$out/initramfs.cpio" "$out/run.sh" \
	"$out/console.log"
rc=$?
tr -d '\r' < "$out/console.log" | sed -n '/^KHEAP-DEMO-BEGIN$/,/^KHEAP-DEMO-END$/p' |
	sed '1d;$d' > "$out/demo.txt"
if [ ! -s "$out/demo.txt" ]; then
	echo "demo: the guest printed no demo output; its console:" >&2
	tr -d '\r' < "$out/console.log" | tail -n 40 >&2
	exit 1
fi
cat "$out/demo.txt"
if [ $rc -ne 0 ]; then
	echo "demo: the guest run failed (console: $out/console.log)" >&2
	exit 1
fi
