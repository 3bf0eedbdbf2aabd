#!/bin/sh
# SPDX-License-Identifier: MIT
# The shared library exports the public API and nothing else, under the
# soname libkheap.so.1.  KTAP output with one Totals line.
lib=${1:-libkheap.so.1}
pass=0 fail=0 n=0
result() {
	n=$((n + 1))
	if [ "$1" = 0 ]; then pass=$((pass + 1)); echo "ok $n $2"
	else fail=$((fail + 1)); echo "not ok $n $2"; fi
}
echo "TAP version 13"
echo "1..3"
syms=$(nm -D --defined-only "$lib" | awk '$2 != "A" { sub(/@.*/, "", $3); print $3 }' | sort)
bad=$(echo "$syms" | grep -v '^kheap_' || true)
[ -z "$bad" ] || echo "# unexpected exports: $bad"
result "$([ -z "$bad" ]; echo $?)" exports_only_kheap
want="kheap_aligned_alloc kheap_attach kheap_attach_bits kheap_calloc kheap_detach kheap_dma_addr kheap_export kheap_free kheap_malloc kheap_malloc_shared kheap_malloc_usable_size kheap_phys kheap_phys_to_virt kheap_posix_memalign kheap_realloc kheap_stats kheap_sync kheap_trim kheap_vfio_map kheap_vfio_unmap"
have=$(echo $syms)
[ "$have" = "$want" ] || echo "# exports: $have"
result "$([ "$have" = "$want" ]; echo $?)" exports_whole_api
soname=$(readelf -d "$lib" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
[ "$soname" = libkheap.so.1 ] || echo "# soname: $soname"
result "$([ "$soname" = libkheap.so.1 ]; echo $?)" soname
echo "# Totals: pass:$pass fail:$fail xfail:0 xpass:0 skip:0 error:0"
[ "$fail" = 0 ]
