#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# libkheap-preload.so over the real /dev/kheap (rootfs guest test; the
# runner loads kheap.ko with a 256 MiB pool and gives KHEAP_TOP, KHEAP_TMP):
#   - userlib/tests/test_preload under kheap-run: every function of the
#     malloc family, the C library's own allocations, glibc's blocks
#     (foreign) freed and moved, threads, fork, exhaustion -> ENOMEM;
#   - the same with --pool-fallback: glibc serves what the pool cannot,
#     and the statistics count it;
#   - the kernel's view: while python3 (unmodified, under kheap-run) holds
#     a 64 MiB bytearray, /sys/class/misc/kheap/free_bytes is at least
#     64 MiB lower; once it exited, the whole pool is free again;
#   - the physical truth: that bytearray's pages, read from
#     /proc/self/pagemap, are consecutive frames starting at the address
#     kheap_phys() gives (found with ctypes in the preload itself);
#   - a program linked with -lkheap shares the preload's heap.
# 100 s under TCG in a 6.12 9p-root guest on a heavily shared 2-core host
# (load 9); much of it is python3 and gcc starting over 9p.
set -u
top=${KHEAP_TOP:?KHEAP_TOP unset}
tmp=${KHEAP_TMP:?KHEAP_TMP unset}
run=$top/tools/kheap-run
sysfs=/sys/class/misc/kheap
fails=0
check() { # STATUS NAME
	if [ "$1" = 0 ]; then echo "ok - $2"; else echo "not ok - $2"; fails=$((fails + 1)); fi
}
show() { [ -s "$1" ] && sed 's/^/#   /' "$1"; }

[ -x "$top/userlib/tests/test_preload" ] && [ -f "$top/userlib/libkheap-preload.so" ] || {
	echo "build first: make -C userlib all tests/test_preload"; exit 1; }
[ -c /dev/kheap ] || { echo "no /dev/kheap"; exit 1; }
pool=$(cat $sysfs/pool_size)

"$run" "$top/userlib/tests/test_preload" > "$tmp/t1" 2>&1
rc=$?
grep -q '^# Totals: pass:8 fail:0' "$tmp/t1" && [ $rc = 0 ]
rc=$?
[ $rc = 0 ] || show "$tmp/t1"
check $rc "test_preload on /dev/kheap (ENOMEM when exhausted)"

"$run" --pool-fallback --stats="$tmp/stats2" "$top/userlib/tests/test_preload" > "$tmp/t2" 2>&1
rc=$?
line=$(grep "comm=test_preload started=1 " "$tmp/stats2" | tail -n 1)
fb=$(echo "$line" | sed -n 's/.* fallback=\([0-9]*\) .*/\1/p')
grep -q '^# Totals: pass:8 fail:0' "$tmp/t2" && [ $rc = 0 ] && [ "${fb:-0}" -ge 5 ]
rc=$?
[ $rc = 0 ] || { show "$tmp/t2"; show "$tmp/stats2"; }
check $rc "test_preload with --pool-fallback; $fb fallbacks counted"

# The kernel's view and the physical truth, from an unmodified python3.
free0=$(cat $sysfs/free_bytes)
"$run" /usr/bin/python3 - "$sysfs" > "$tmp/t3" 2>&1 <<'EOF'
import ctypes, os, struct, sys
size = 64 << 20
b = bytearray(size)                 # malloc'd by CPython: kheap memory
for i in range(0, size, 4096):
    b[i] = 1                        # every page present
addr = ctypes.addressof((ctypes.c_char * size).from_buffer(b))
free = int(open(sys.argv[1] + "/free_bytes").read())
pool = int(open(sys.argv[1] + "/pool_size").read())
kheap_phys = ctypes.CDLL(None).kheap_phys   # exported by the preload
kheap_phys.restype = ctypes.c_uint64
kheap_phys.argtypes = [ctypes.c_void_p]
phys = kheap_phys(addr)
page = os.sysconf("SC_PAGE_SIZE")
first = addr // page * page
bad = 0
with open("/proc/self/pagemap", "rb") as pm:
    pm.seek(first // page * 8)
    n = (addr + size - first + page - 1) // page
    entries = struct.unpack("%dQ" % n, pm.read(8 * n))
for i, e in enumerate(entries):
    pfn = e & ((1 << 55) - 1)
    want = (phys - (addr - first)) // page + i
    if not (e >> 63) or pfn != want:
        bad += 1
print("held", pool - free, "phys", hex(phys), "pages", len(entries), "bad", bad)
sys.exit(0 if phys and bad == 0 and pool - free >= size else 1)
EOF
rc=$?
free1=$(cat $sysfs/free_bytes)
echo "# python3: $(cat "$tmp/t3"); pool $pool, free before $free0, after $free1"
[ $rc = 0 ] && [ "$free0" = "$pool" ] && [ "$free1" = "$pool" ]
rc=$?
[ $rc = 0 ] || show "$tmp/t3"
check $rc "python3's 64 MiB bytearray: pool held (sysfs), consecutive frames at kheap_phys (pagemap), all free after exit"

cat > "$tmp/shared.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <kheap.h>

int main(void)
{
	char *k = kheap_malloc(1000), *m = malloc(3000);

	if (!k || !m || !kheap_phys(m) || !kheap_phys(k))
		return 1;
	free(k);		/* kheap_malloc's block, given to free() */
	kheap_free(m);
	puts("one heap");
	return 0;
}
EOF
gcc -Wall -Wextra -Werror -I"$top/userlib" -o "$tmp/shared" "$tmp/shared.c" \
	-L"$top/userlib" -lkheap -Wl,-rpath,"$top/userlib" > "$tmp/t4" 2>&1 &&
	"$run" "$tmp/shared" >> "$tmp/t4" 2>&1 && grep -qx 'one heap' "$tmp/t4"
rc=$?
[ $rc = 0 ] || show "$tmp/t4"
check $rc "a -lkheap program under kheap-run shares the preload's heap"

[ $fails = 0 ]
