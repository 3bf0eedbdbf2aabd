#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# `make bench`: libkheap side by side with glibc malloc, jemalloc and
# mimalloc, twice:
#   1. on the host, over an ordinary region (the allocator's own speed);
#   2. in a 6.12 QEMU guest, through the real /dev/kheap (end to end; TCG
#      emulation makes every figure slower, ratios are what carry over),
#      with an IOMMU and QEMU's edu device, which dma_lookup attaches.
# Prints kbench's lines and a Markdown table for each (bench/README.md keeps
# the latest).  Never a test: nothing here passes or fails on timing.
# Environment: BENCH_ARGS (extra kbench arguments for the host run),
# GUEST_BENCH_ARGS (default --quick), BENCH_POOL (guest pool, default 256M),
# KFORK_POOL (guest pool for bench/kfork's fork costs and bench/kpath's
# kernel path, default 640M), POOL_SCALE_RAM (default 8G) and
# POOL_SCALE_SIZES (MiB, default "6144 5632 ... 3072") for the
# pool-scale guest.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
out=$top/build/bench
mkdir -p "$out"

scripts/deps.sh
make -s -C userlib
make -s -C bench

echo "== host: kheap over a region"
# shellcheck disable=SC2086
bench/run.sh ${BENCH_ARGS:-}

krel=$(scripts/kernels.sh 6.12)
echo
echo "== guest: kheap over /dev/kheap, Debian $krel under QEMU (TCG)"
rm -rf "$out/src" && mkdir -p "$out/src"
cp -a Kbuild module include "$out/src/"
find "$out/src" \( -name '*.o' -o -name '*.ko' -o -name '*.mod' -o -name '*.mod.c' \
	-o -name '.*.cmd' -o -name modules.order -o -name Module.symvers \) -delete
make -s -C "/lib/modules/$krel/build" M="$out/src" -j2 modules > "$out/build.txt" 2>&1 ||
	{ cat "$out/build.txt"; exit 1; }

stage=$out/stage
rm -rf "$stage" && mkdir -p "$stage/bin" "$stage/bench" "$stage/lib"
cp "$out/src/module/kheap.ko" "$stage/"
cp bench/kbench bench/kfork bench/kpath bench/run.sh bench/tables.sh "$stage/bench/"
gcc -O2 -static -Wall -Wextra -Werror -o "$stage/bin/guest-exit" scripts/guest-exit.c
# kbench dlopen()s its peers, which ldd cannot see: ship them and their
# libraries by hand.
for lib in libjemalloc.so.2 libmimalloc.so.2; do
	path=$(ldconfig -p | awk -v l="$lib" '$1 == l && /x86-64/ { print $NF; exit }')
	[ -n "$path" ] || continue
	cp -L "$path" "$stage/lib/"
	ldd "$path" | awk '/=> \// { print $3 }' | while read -r dep; do
		cp -L "$dep" "$stage/lib/"
	done
done
scripts/mkinitramfs.sh "$krel" "$stage" "$out/initramfs.cpio"
cat > "$out/run.sh" <<RUN
dmesg -n 1
insmod /kheap/kheap.ko size=${BENCH_POOL:-256M} || exit 1
export LD_LIBRARY_PATH=/kheap/lib
# kbench counts system calls on the syscall tracepoints (futex= lines)
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
# dma_lookup attaches the edu device, behind the guest's IOMMU.
export KBENCH_DEVICE=0000:00:10.0
echo KHEAP-BENCH-BEGIN
sh /kheap/bench/run.sh --device ${GUEST_BENCH_ARGS:---quick}
rc=\$?
rmmod kheap || rc=1
# fork cost: up to 256 MiB of live heap, and a 64 MiB heap plus its copy
insmod /kheap/kheap.ko size=${KFORK_POOL:-640M} || exit 1
/kheap/bench/kfork || rc=1
# the kernel path: ALLOC + mmap + touch against MAP_POPULATE, up to 512 MiB
/kheap/bench/kpath || rc=1
echo KHEAP-BENCH-END
rmmod kheap || rc=1
exit \$rc
RUN
rc=0
scripts/run-guest.sh --quiet --timeout 3000 --iommu --mem 2G \
	--qemu '-device edu,addr=10.0,dma_mask=0xffffffff' \
	"$krel" "$out/initramfs.cpio" \
	"$out/run.sh" "$out/console.log" || rc=$?
tr -d '\r' < "$out/console.log" | sed -n '/^KHEAP-BENCH-BEGIN$/,/^KHEAP-BENCH-END$/p' | sed '1d;$d'
[ "$rc" -eq 0 ] || echo "bench: the guest run failed (console: $out/console.log)" >&2

# The scale of the pool: the largest contiguous pool of POOL_SCALE_SIZES
# (MiB, tried in order) that loads in a guest of POOL_SCALE_RAM, how long
# the load takes, where the pool lies (above 4 GiB: q35 puts the RAM past
# the first 2 GiB there), and a 1 and a 4 GiB buffer from it (the whole
# pool instead when it is smaller).
echo
echo "== guest: the largest pool in ${POOL_SCALE_RAM:=8G} of RAM"
cat > "$out/run-scale.sh" <<RUN
dmesg -n 1
up() { cut -d' ' -f1 /proc/uptime; }
echo KHEAP-BENCH-BEGIN
echo "# guest RAM: \$(awk '/MemTotal/ { print \$2 }' /proc/meminfo) KiB"
loaded=0
for mib in ${POOL_SCALE_SIZES:-6144 5632 5120 4608 4096 3584 3072}; do
	t0=\$(up)
	if insmod /kheap/kheap.ko size=\${mib}M 2>/dev/null; then
		t1=\$(up)
		echo "pool_scale=\${mib}M ram=$POOL_SCALE_RAM load_s=\$(awk -v a=\$t0 -v b=\$t1 'BEGIN { printf "%.1f", b - a }') phys=\$(cat /sys/class/misc/kheap/pool_phys)"
		loaded=\$mib
		break
	fi
	echo "pool_scale=\${mib}M ram=$POOL_SCALE_RAM refused: \$(dmesg | grep kheap | tail -n 1)"
done
# A 1 GiB and a 4 GiB buffer, or the whole pool when 4 GiB did not load
# (which of the sizes loads depends on where the guest's kernel put its
# own memory at boot: 4096 MiB in one run, 3584 in the next).
rc=1
if [ "\$loaded" -ge 1024 ]; then
	big=4096
	[ "\$loaded" -ge 4096 ] || big=\$loaded
	/kheap/bench/kpath --runs 1 --kheap-only --sizes 1024,\$big && rc=0
	rmmod kheap || rc=1
fi
echo KHEAP-BENCH-END
exit \$rc
RUN
src=0
scripts/run-guest.sh --quiet --timeout 3000 --mem "$POOL_SCALE_RAM" \
	"$krel" "$out/initramfs.cpio" "$out/run-scale.sh" "$out/console-scale.log" || src=$?
tr -d '\r' < "$out/console-scale.log" | sed -n '/^KHEAP-BENCH-BEGIN$/,/^KHEAP-BENCH-END$/p' | sed '1d;$d'
[ "$src" -eq 0 ] || echo "bench: the pool-scale guest failed (console: $out/console-scale.log)" >&2
[ "$rc" -ne 0 ] || rc=$src
exit "$rc"
