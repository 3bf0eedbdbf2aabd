#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Host tests of libkheap-preload.so (KTAP), without /dev/kheap:
#   - tests/test_preload over the region-provider build of the preload
#     (a 256 MiB mapping posing as the pool), ENOMEM mode and fallback mode
#     (whose statistics must count the fallbacks);
#   - the installed-style library with no device: requests fail with
#     ENOMEM (sort says so and fails), or in fallback mode glibc serves
#     them, the output is the plain run's and the fallbacks are counted;
#   - tools/kheap-run: refuses without the device, runs with
#     --pool-fallback, usage errors;
#   - the first allocation after 40 thread keys (glibc callocs the values
#     of keys past 32: it comes back into the heap while it starts);
#   - errno: ENOMEM from each function when kheap cannot serve (not ENODEV);
#   - a program linked with -lkheap shares the preload's heap: its
#     kheap_malloc blocks can be given to free() and malloc's blocks have
#     physical addresses;
#   - tests/rootfs/preload-programs.sh at a tenth of its sizes over the
#     region build (python3, sqlite3, xz, gzip, git, sort: outputs
#     identical with and without the preload).
# About 15 s.  Usage: tests/preload_check.sh PRELOAD_REGION_SO
set -u
region=$(realpath "${1:?usage: preload_check.sh build/tests/libkheap-preload-region.so}")
here=$(cd "$(dirname "$0")/.." && pwd)
top=$(cd "$here/.." && pwd)
lib=$here/libkheap-preload.so
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export KHEAP_PRELOAD_TEST_POOL=256

n=0 pass=0 fail=0
result() { # STATUS NAME
	n=$((n + 1))
	if [ "$1" = 0 ]; then pass=$((pass + 1)); echo "ok $n $2"
	else fail=$((fail + 1)); echo "not ok $n $2"; fi
}
diag() { [ -s "$1" ] && sed 's/^/# /' "$1"; }

echo "TAP version 13"
echo "1..11"

LD_PRELOAD=$region "$here/tests/test_preload" > "$tmp/t1" 2>&1
rc=$?
grep -q '^# Totals: pass:8 fail:0' "$tmp/t1" && [ $rc = 0 ]
rc=$?
[ $rc = 0 ] || diag "$tmp/t1"
result $rc "test_preload over the region pool (ENOMEM when exhausted)"

KHEAP_PRELOAD_FALLBACK=1 KHEAP_PRELOAD_STATS="$tmp/stats2" LD_PRELOAD=$region \
	"$here/tests/test_preload" > "$tmp/t2" 2>&1
rc=$?
# the parent's line (the fork child's comes first and has no fallback)
line=$(grep "pid=[0-9]* comm=test_preload started=1 " "$tmp/stats2" | tail -n 1)
fb=$(echo "$line" | sed -n 's/.* fallback=\([0-9]*\) .*/\1/p')
grep -q '^# Totals: pass:8 fail:0' "$tmp/t2" && [ $rc = 0 ] && [ "${fb:-0}" -ge 5 ]
rc=$?
[ $rc = 0 ] || { diag "$tmp/t2"; diag "$tmp/stats2"; }
result $rc "test_preload in fallback mode; fallbacks counted ($fb)"

# No device: ENOMEM, or glibc in fallback mode.
seq 1 20000 | sort -R --random-source=/dev/zero > "$tmp/in"
sort "$tmp/in" > "$tmp/plain"
KHEAP_DEVICE=$tmp/none LD_PRELOAD=$lib sort "$tmp/in" > "$tmp/out3" 2> "$tmp/err3"
rc=$?
[ $rc != 0 ] && grep -q 'memory exhausted' "$tmp/err3" &&
	grep -q "cannot open $tmp/none" "$tmp/err3"
rc=$?
[ $rc = 0 ] || diag "$tmp/err3"
result $rc "no device: requests fail with ENOMEM (sort: memory exhausted)"

KHEAP_DEVICE=$tmp/none KHEAP_PRELOAD_FALLBACK=1 KHEAP_PRELOAD_STATS="$tmp/stats4" \
	LD_PRELOAD=$lib sort "$tmp/in" > "$tmp/out4" 2> "$tmp/err4"
rc=$?
[ $rc = 0 ] && cmp -s "$tmp/plain" "$tmp/out4" &&
	grep -q ' started=0 .* fallback=[1-9][0-9]* fallback_bytes=[1-9]' "$tmp/stats4"
rc=$?
[ $rc = 0 ] || { diag "$tmp/err4"; diag "$tmp/stats4"; }
result $rc "no device, fallback mode: glibc serves, output unchanged, counted"

run=$top/tools/kheap-run
ok=0
KHEAP_DEVICE=$tmp/none "$run" true 2> "$tmp/e5"
[ $? = 1 ] && grep -q 'is missing' "$tmp/e5" || { echo "# without the device:"; diag "$tmp/e5"; ok=1; }
KHEAP_DEVICE=$tmp/none "$run" --pool-fallback --stats="$tmp/stats5" sort "$tmp/in" > "$tmp/out5" 2>/dev/null &&
	cmp -s "$tmp/plain" "$tmp/out5" && grep -q 'comm=sort started=0 ' "$tmp/stats5" ||
	{ echo "# --pool-fallback --stats=FILE"; ok=1; }
"$run" --bogus true 2>/dev/null; [ $? = 2 ] || { echo "# unknown option"; ok=1; }
"$run" 2>/dev/null; [ $? = 2 ] || { echo "# no command"; ok=1; }
"$run" --help | grep -q '^Usage: kheap-run' || { echo "# --help"; ok=1; }
KHEAP_DEVICE=/dev/null KHEAP_PRELOAD_LIB=$region "$run" sh -c 'echo "$LD_PRELOAD"' > "$tmp/ld5"
grep -qx "$region" "$tmp/ld5" || { echo "# LD_PRELOAD"; diag "$tmp/ld5"; ok=1; }
result $ok "kheap-run: no device, --pool-fallback, --stats=FILE, usage errors"

# A -lkheap program under the preload: one heap.
cat > "$tmp/shared.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <malloc.h>
#include <kheap.h>

int main(void)
{
	char *k = kheap_malloc(1000), *m = malloc(3000);

	if (!k || !m || !kheap_phys(m) || !kheap_phys(k) ||
	    malloc_usable_size(k) < 1000) {
		printf("k=%p m=%p\n", (void *)k, (void *)m);
		return 1;
	}
	free(k);		/* kheap_malloc's block, given to free() */
	kheap_free(m);
	puts("one heap");
	return 0;
}
EOF
${CC:-cc} -Wall -Wextra -Werror -I"$here" -o "$tmp/shared" "$tmp/shared.c" \
	-L"$here" -lkheap -Wl,-rpath,"$here" > "$tmp/cc6" 2>&1 &&
	LD_PRELOAD=$region "$tmp/shared" > "$tmp/out6" 2>&1 && grep -qx 'one heap' "$tmp/out6"
rc=$?
[ $rc = 0 ] || { diag "$tmp/cc6"; diag "$tmp/out6"; }
result $rc "a -lkheap program shares the preload's heap"

# The rootfs test's programs, small, over the region pool.
mkdir -p "$tmp/progs"
KHEAP_TOP=$top KHEAP_TMP=$tmp/progs PRELOAD_SCALE=small KHEAP_DEVICE=/dev/null \
	KHEAP_PRELOAD_LIB=$region "$top/tests/rootfs/preload-programs.sh" > "$tmp/t7" 2>&1
rc=$?
sed 's/^/# /' "$tmp/t7"
result $rc "python3, sqlite3, xz, gzip, git, sort: same output with the preload (small sizes)"

# As make check runs them: the runs without kheap first, as a reference
# (on the host), then only the kheap side against it (in the guest).
mkdir -p "$tmp/progs2"
KHEAP_TOP=$top KHEAP_TMP=$tmp/progs2 PRELOAD_SCALE=small PRELOAD_ONLY=reference \
	PRELOAD_REFERENCE=$tmp/ref "$top/tests/rootfs/preload-programs.sh" > "$tmp/t7r" 2>&1 &&
	rm -rf "$tmp/progs2" && mkdir -p "$tmp/progs2" &&
	KHEAP_TOP=$top KHEAP_TMP=$tmp/progs2 PRELOAD_SCALE=small KHEAP_DEVICE=/dev/null \
	PRELOAD_REFERENCE=$tmp/ref KHEAP_PRELOAD_LIB=$region \
	"$top/tests/rootfs/preload-programs.sh" > "$tmp/t7k" 2>&1 &&
	[ "$(grep -c '^ok - .*identical output' "$tmp/t7k")" = 7 ]
rc=$?
sed 's/^/# /' "$tmp/t7r" "$tmp/t7k"
result $rc "the same against a reference made beforehand without the preload"

# The first allocation of the process after 40 thread keys: the heap's own
# key is then past the first 32, whose values glibc keeps in memory it
# callocs (from the preload) on first use; the thread cache must be in
# place before that calloc comes back into the heap.
cat > "$tmp/keys.c" <<'EOF'
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(void)
{
	pthread_key_t k[40];
	char *p;

	for (int i = 0; i < 40; i++)
		if (pthread_key_create(&k[i], NULL))
			return 2;
	p = malloc(100);
	if (!p)
		return 3;
	strcpy(p, "ok\n");
	if (write(1, p, 3) != 3)
		return 4;
	free(p);
	return 0;
}
EOF
${CC:-cc} -Wall -Wextra -Werror -o "$tmp/keys" "$tmp/keys.c" > "$tmp/cc9" 2>&1 &&
	KHEAP_PRELOAD_STATS=$tmp/stats9 LD_PRELOAD=$region "$tmp/keys" > "$tmp/out9" 2>&1 &&
	grep -qx ok "$tmp/out9" && grep -q 'comm=keys started=1 ' "$tmp/stats9"
rc=$?
[ $rc = 0 ] || { diag "$tmp/cc9"; diag "$tmp/out9"; }
result $rc "first allocation after 40 pthread keys (the heap's key needs calloc)"

# errno as malloc's callers expect it when kheap cannot serve: ENOMEM
# (not the device's ENODEV), EINVAL only for a bad alignment.
cat > "$tmp/errno.c" <<'EOF'
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
	void *p = NULL;
	int bad = 0;

	errno = 0;
	bad |= malloc(10) != NULL || errno != ENOMEM;
	errno = 0;
	bad |= calloc(2, 10) != NULL || errno != ENOMEM;
	errno = 0;
	bad |= realloc(NULL, 10) != NULL || errno != ENOMEM;
	bad |= posix_memalign(&p, 64, 10) != ENOMEM || p;
	bad |= posix_memalign(&p, 12, 10) != EINVAL || p;
	errno = 0;
	bad |= aligned_alloc(4096, 10) != NULL || errno != ENOMEM;
	printf("%s\n", bad ? "bad" : "ok");
	return bad;
}
EOF
${CC:-cc} -Wall -Wextra -Werror -o "$tmp/errno" "$tmp/errno.c" > "$tmp/cc10" 2>&1 &&
	KHEAP_DEVICE=$tmp/none LD_PRELOAD=$lib "$tmp/errno" > "$tmp/out10" 2>&1
rc=$?
[ $rc = 0 ] || { diag "$tmp/cc10"; diag "$tmp/out10"; }
result $rc "no device: ENOMEM from every allocation function, EINVAL for a bad alignment"

# Exports: the malloc family unversioned (so it interposes), libkheap's API
# with its versions, nothing else.
nm -D --defined-only "$lib" | awk '$2 != "A" { print $3 }' | sort > "$tmp/syms"
cat > "$tmp/want" <<'EOF'
aligned_alloc
calloc
cfree
free
kheap_aligned_alloc@@KHEAP_1.0
kheap_attach@@KHEAP_1.1
kheap_attach_bits@@KHEAP_1.1
kheap_calloc@@KHEAP_1.0
kheap_detach@@KHEAP_1.1
kheap_dma_addr@@KHEAP_1.1
kheap_export@@KHEAP_1.3
kheap_free@@KHEAP_1.0
kheap_malloc@@KHEAP_1.0
kheap_malloc_shared@@KHEAP_1.2
kheap_malloc_usable_size@@KHEAP_1.0
kheap_phys@@KHEAP_1.0
kheap_phys_to_virt@@KHEAP_1.0
kheap_posix_memalign@@KHEAP_1.0
kheap_realloc@@KHEAP_1.0
kheap_stats@@KHEAP_1.0
kheap_sync@@KHEAP_1.3
kheap_trim@@KHEAP_1.4
kheap_vfio_map@@KHEAP_1.1
kheap_vfio_unmap@@KHEAP_1.1
malloc
malloc_trim
malloc_usable_size
memalign
posix_memalign
pvalloc
realloc
reallocarray
valloc
EOF
sort "$tmp/want" | diff -u - "$tmp/syms" > "$tmp/d8"
rc=$?
[ $rc = 0 ] || diag "$tmp/d8"
result $rc "libkheap-preload.so exports the malloc family and libkheap's API only"

echo "# Totals: pass:$pass fail:$fail xfail:0 xpass:0 skip:0 error:0"
[ $fail = 0 ]
