#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# `make fuzz` and `make soak`: kheap_fuzz (selftests/kheap_fuzz.c) or
# kheap_soak_test in one QEMU guest of one kernel, long runs that do not
# belong in every `make check` (which runs both briefly, see kheap.sh).
# The fuzzer's time is split between a runtime (contig) pool, a reserved
# one (the guest boots with memmap=, as in make check: its pages are
# mapped as raw frames) and a 2 MiB buddy pool, where ENOMEM is common.
#
# Usage: scripts/fuzz.sh fuzz|soak
# Environment:
#   KHEAP_SERIES   kernel series (default 6.12)
#   FUZZ_SECONDS   fuzz: how long (default 600)
#   FUZZ_ARGS      fuzz: more kheap_fuzz options (--seed S to replay,
#                  --procs N, --threads N)
#   FUZZ_POOL      fuzz: module parameters of one pool to use alone
#                  (default: the three pools above in turn)
#   SOAK_CYCLES    soak: open/alloc/mmap/close cycles (default 100000)
#   BUILD          build directory (default ./build)
# Exit status 0 only if the guest ran the program and it passed.
set -eu
mode=${1:-}
case "$mode" in
fuzz | soak) ;;
*) echo "usage: $0 fuzz|soak" >&2; exit 2 ;;
esac
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
series=${KHEAP_SERIES:-6.12}
seconds=${FUZZ_SECONDS:-600}
cycles=${SOAK_CYCLES:-100000}
reserved_phys=0x08000000
reserved_size=64M
pools="size=64M,source=contig phys=$reserved_phys,size=$reserved_size,source=reserved size=2M,source=buddy"
[ -z "${FUZZ_POOL:-}" ] || pools=$(printf '%s' "$FUZZ_POOL" | tr ' ' ',')
build=${BUILD:-$top/build}

scripts/deps.sh
krel=$(scripts/kernels.sh "$series")
ksrc=$(scripts/ksrc.sh "$series" "$top/.cache/linux-$series")
out=$build/$krel/$mode
rm -rf "$out" && mkdir -p "$out/src" "$out/stage/bin" "$out/stage/selftests"
cp -a Kbuild module include "$out/src/"
make -s -C "/lib/modules/$krel/build" M="$out/src" modules > "$out/module-build.txt" 2>&1 ||
	{ cat "$out/module-build.txt"; exit 1; }
make -s -C selftests KSFT_DIR="$ksrc/tools/testing/selftests" OUTPUT="$out/selftests" \
	"$out/selftests/kheap_fuzz" "$out/selftests/kheap_soak_test" \
	"$out/selftests/kheap_modload"
cp "$out/src/module/kheap.ko" "$out/stage/kheap.ko"
cp "$out/selftests/kheap_fuzz" "$out/selftests/kheap_soak_test" \
	"$out/selftests/kheap_modload" "$out/stage/selftests/"
gcc -O2 -static -Wall -Wextra -Werror -o "$out/stage/bin/guest-exit" scripts/guest-exit.c
scripts/mkinitramfs.sh "$krel" "$out/stage" "$out/initramfs.cpio"

if [ "$mode" = fuzz ]; then
	npools=$(echo "$pools" | wc -w)
	each=$((seconds / npools))
	[ "$each" -gt 0 ] || each=1
	run="./kheap_fuzz --duration $each ${FUZZ_ARGS:-}"
	timeout=$((seconds + 600))
else
	run="./kheap_soak_test --cycles $cycles"
	timeout=3600
	pools="size=64M,source=contig"
fi
cat > "$out/run.sh" <<RUN
export KHEAP_KO=/kheap/kheap.ko
cd /kheap/selftests || exit 1
status=0
for pool in $pools; do
	params=\$(echo "\$pool" | tr ',' ' ')
	echo "# pool: \$params"
	./kheap_modload unload >/dev/null 2>&1
	./kheap_modload load \$params || { status=1; continue; }
	$run || status=1
	./kheap_modload unload || status=1
done
exit \$status
RUN
echo "# $mode in a $krel guest: $run, pools: $pools"
start=$(date +%s)
rc=0
scripts/run-guest.sh --quiet --timeout "$timeout" \
	--append "nokaslr memmap=$reserved_size\$$reserved_phys" \
	"$krel" "$out/initramfs.cpio" "$out/run.sh" "$out/console.log" || rc=$?
grep -v '^\[ *[0-9]*\.[0-9]*\]' "$out/console.log" | tr -d '\r'
echo "# $mode: guest $krel took $(($(date +%s) - start)) s, status $rc (console: $out/console.log)"
exit "$rc"
