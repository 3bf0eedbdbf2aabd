#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# kheapctl end to end, in a guest, as root: load, status (text and JSON,
# the JSON checked against KHEAP_IOC_INFO and sysfs; the free extents and
# the occupancy bar checked for an idle pool and for chunks held at known
# places, the exported dma-bufs of a holder), map (text and JSON:
# every page's physical address agrees with /proc/self/pagemap, lies inside
# the pool that INFO reports, and pages of a buffer are consecutive), the
# pool empty again after map exits, unload.
#
# Environment: KHEAPCTL (default ../kheapctl), KHEAPCTL_LOAD_ARGS (default
# "size=64M"), KHEAPCTL_MODULE (passed as --module when set).
here=$(cd "$(dirname "$0")" && pwd)
. "$here/ktap.sh"
PATH=$here:$PATH
K=${KHEAPCTL:-$here/../kheapctl}
args=${KHEAPCTL_LOAD_ARGS:-size=64M}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

ktap_plan 29
echo "# load arguments: $args${KHEAPCTL_MODULE:+ --module $KHEAPCTL_MODULE}"

# A previous program may have left the module loaded.
"$K" unload >/dev/null 2>&1

"$K" status --json > "$T/s0.json" 2>&1 &&
	[ "$(json-check "$T/s0.json" .loaded)" = false ]
ktap_result $? "status --json before load: loaded is false"

# shellcheck disable=SC2086
"$K" load $args ${KHEAPCTL_MODULE:+--module "$KHEAPCTL_MODULE"} > "$T/load.out" 2>&1
rc=$?
ktap_diag "$T/load.out"
[ $rc -eq 0 ] && grep -q 'loaded from' "$T/load.out" && [ -c /dev/kheap ]
ktap_result $? "load $args"

kheap-info > "$T/info" 2> "$T/info.err"
ktap_result $? "KHEAP_IOC_INFO answers"
ktap_diag "$T/info.err"

"$K" status > "$T/status.txt" 2>&1
rc=$?
ktap_diag "$T/status.txt"
[ $rc -eq 0 ] && grep -q 'loaded (live)' "$T/status.txt" &&
	grep -q 'occupancy' "$T/status.txt"
ktap_result $? "status prints the pool"

"$K" status --json > "$T/status.json" 2> "$T/status.err" && json-check "$T/status.json"
ktap_result $? "status --json is valid JSON"
ktap_diag "$T/status.err"

ok=0
for pair in size:pool_size free_bytes:free_bytes largest_free:largest_free \
	chunks_in_use:chunks_in_use phys:pool_phys; do
	j=${pair%%:*}
	i=${pair#*:}
	jv=$(json-check "$T/status.json" ".pool.$j")
	iv=$(info_get "$T/info" "$i")
	if [ "$jv" != "$iv" ]; then
		echo "# status .pool.$j=$jv but INFO $i=$iv"
		ok=1
	fi
done
[ "$(json-check "$T/status.json" .abi_version)" = "$(info_get "$T/info" abi_version)" ] &&
	[ "$(json-check "$T/status.json" .page_size)" = "$(info_get "$T/info" page_size)" ] || ok=1
ktap_result $ok "status --json pool figures equal INFO's"

ok=0
for a in pool_size free_bytes largest_free chunks_in_use; do
	sv=$(cat "/sys/class/misc/kheap/$a" 2>/dev/null)
	iv=$(info_get "$T/info" "$a")
	[ "$sv" = "$iv" ] || { echo "# sysfs $a=$sv but INFO $a=$iv"; ok=1; }
done
src=$(json-check "$T/status.json" .pool.source)
[ "$src" = "$(cat /sys/class/misc/kheap/pool_source)" ] || { echo "# source $src"; ok=1; }
case "$(info_get "$T/info" pool_source):$src" in
1:reserved | 2:contig | 3:buddy) ;;
*) echo "# INFO pool_source $(info_get "$T/info" pool_source) vs $src"; ok=1 ;;
esac
ktap_result $ok "status --json agrees with sysfs (source $src)"

json-check "$T/status.json" .parameters.size > /dev/null &&
	[ "$(json-check "$T/status.json" .loaded)" = true ] &&
	[ "$(json-check "$T/status.json" .state)" = live ]
ktap_result $? "status --json shows state and parameters"

# free_extents as decimal "offset length" lines, "..." kept.
sysfs_extents() {
	while read -r o l; do
		if [ "$o" = ... ]; then echo ...; else echo "$((o)) $((l))"; fi
	done < /sys/class/misc/kheap/free_extents
}
# The same from status --json.
json_extents() { # FILE
	json-check "$1" '.pool.free_extents[*].offset' > "$T/jo"
	json-check "$1" '.pool.free_extents[*].length' > "$T/jl"
	awk 'NR == FNR { o[FNR] = $1; next } { print o[FNR], $1 }' "$T/jo" "$T/jl"
}
# The occupancy bar of status's text output.
text_bar() { # FILE
	sed -n 's/^ *occupancy *\[\([^]]*\)\].*/\1/p' "$1"
}
dots=................................................................

ok=0
sysfs_extents > "$T/ext0"
json_extents "$T/status.json" > "$T/jext0"
[ "$(cat "$T/ext0")" = "0 $(info_get "$T/info" pool_size)" ] ||
	{ echo "# idle free_extents: $(cat "$T/ext0")"; ok=1; }
cmp -s "$T/ext0" "$T/jext0" || { echo "# status --json free_extents: $(cat "$T/jext0")"; ok=1; }
[ "$(json-check "$T/status.json" .pool.free_extents_truncated)" = false ] &&
	[ "$(json-check "$T/status.json" .pool.occupancy_by)" = position ] &&
	[ "$(json-check "$T/status.json" .pool.occupancy)" = "$dots" ] &&
	[ "$(text_bar "$T/status.txt")" = "$dots" ] &&
	grep -q '# all used, + partly used, . all free' "$T/status.txt" || ok=1
ktap_result $ok "idle pool: one free extent, in sysfs and status --json; empty bar"

# Chunks of 2.5 cells, 1 cell (freed again: a hole) and 3 cells, first
# fit from the base of the idle pool: ##++##+ then free cells.
cell=$(($(info_get "$T/info" pool_size) / 64))
rm -f "$T/held"
kheap-hold chunks "$T/held" $((cell * 5 / 2)) -$cell $((cell * 3)) 2> "$T/held.err" &
holder=$!
ok=0
wait_file "$T/held" 5 || { ktap_diag "$T/held.err"; ok=1; }
# The complement of the held chunks, from ALLOC's physical addresses.
awk -v base="$(info_get "$T/info" pool_phys)" -v size="$(info_get "$T/info" pool_size)" '
	NR > 1 { o[NR] = $1 - base; l[NR] = $2 }
	END {
		cur = 0
		for (i = 2; i <= NR; i++) {
			if (o[i] > cur) print cur, o[i] - cur
			cur = o[i] + l[i]
		}
		if (cur < size) print cur, size - cur
	}' "$T/held" > "$T/want"
sysfs_extents > "$T/ext1"
cmp -s "$T/want" "$T/ext1" || { echo "# want $(cat "$T/want") got $(cat "$T/ext1")"; ok=1; }
[ "$(wc -l < "$T/ext1")" = 2 ] || ok=1
ktap_result $ok "free_extents is the complement of chunks held at known places"

ok=0
"$K" status --json > "$T/status2.json" 2>&1 && "$K" status > "$T/status2.txt" 2>&1 || ok=1
json_extents "$T/status2.json" > "$T/jext1"
cmp -s "$T/ext1" "$T/jext1" || { echo "# status --json free_extents: $(cat "$T/jext1")"; ok=1; }
want_bar=$(awk -v base="$(info_get "$T/info" pool_phys)" -v size="$(info_get "$T/info" pool_size)" '
	NR > 1 { o[NR] = $1 - base; l[NR] = $2 }
	END {
		for (c = 0; c < 64; c++) {
			lo = int(size * c / 64); hi = int(size * (c + 1) / 64); used = 0
			for (i = 2; i <= NR; i++) {
				a = o[i] > lo ? o[i] : lo; b = o[i] + l[i] < hi ? o[i] + l[i] : hi
				if (b > a) used += b - a
			}
			printf "%s", used == hi - lo ? "#" : used ? "+" : "."
		}
	}' "$T/held")
lit_bar="##++##+$(echo "$dots" | cut -c8-)"
jbar=$(json-check "$T/status2.json" .pool.occupancy)
tbar=$(text_bar "$T/status2.txt")
echo "# chunks held: $(tail -n +2 "$T/held" | tr '\n' ' ')"
echo "# bar: $tbar"
[ "$want_bar" = "$lit_bar" ] && [ "$jbar" = "$want_bar" ] && [ "$tbar" = "$want_bar" ] ||
	{ echo "# want $want_bar (literally $lit_bar), JSON $jbar, text $tbar"; ok=1; }
kill "$holder" 2>/dev/null
wait "$holder" 2>/dev/null
ktap_result $ok "status bar marks the held chunks' cells (text and JSON)"

# A dma-buf held by another process: status counts it and says where,
# map lists it.  Every pool source exports.
kheap-hold dmabuf "$T/dready" 2> "$T/dhold.err" &
holder=$!
i=0
while [ ! -s "$T/dready" ] && kill -0 "$holder" 2>/dev/null && [ $i -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
if [ "$(wc -l < "$T/dready" 2>/dev/null)" = 2 ]; then
	dphys=$(sed -n 2p "$T/dready" | cut -d' ' -f1)
	dsize=$(sed -n 2p "$T/dready" | cut -d' ' -f2)
	"$K" status > "$T/ds.txt" 2>&1
	"$K" status --json > "$T/ds.json" 2>&1
	"$K" map > "$T/dm.txt" 2>&1
	kill "$holder" 2>/dev/null
	wait "$holder" 2>/dev/null
	off=$((dphys - $(info_get "$T/info" pool_phys)))
	[ "$(json-check "$T/ds.json" .pool.dmabufs)" = 1 ] &&
		[ "$(json-check "$T/ds.json" '.pool.dmabuf_extents[0].offset')" = "$off" ] &&
		[ "$(json-check "$T/ds.json" '.pool.dmabuf_extents[0].length')" = "$dsize" ] &&
		grep -q 'dma-bufs    1 exported' "$T/ds.txt" &&
		grep -q "pool+$(printf '%#x' "$off"), 8.0 KiB" "$T/ds.txt"
	ok=$?
	[ $ok -eq 0 ] || { ktap_diag "$T/ds.txt"; ktap_diag "$T/ds.json"; }
	ktap_result $ok "status counts a held dma-buf and says where (text and JSON)"
	grep -q 'dma-bufs exported from the pool: 1' "$T/dm.txt" &&
		grep -q "$(printf '%012x' "$dphys")-" "$T/dm.txt"
	ok=$?
	[ $ok -eq 0 ] || ktap_diag "$T/dm.txt"
	ktap_result $ok "map lists the held dma-buf at its physical range"
else
	kill "$holder" 2>/dev/null
	wait "$holder" 2>/dev/null
	ktap_diag "$T/dhold.err"
	ktap_result 1 "status counts a held dma-buf and says where (text and JSON)"
	ktap_result 1 "map lists the held dma-buf at its physical range"
fi

"$K" map > "$T/map.txt" 2>&1
rc=$?
ktap_diag "$T/map.txt"
[ $rc -eq 0 ] && grep -q 'every checked address agrees' "$T/map.txt"
ktap_result $? "map exits 0 and all addresses agree"

grep -q '"Hello, kheap!"' "$T/map.txt" && grep -q '48 65 6c 6c 6f 2c 20 6b 68 65 61 70 21 00' "$T/map.txt" &&
	grep -q 'same bytes ✓' "$T/map.txt"
ktap_result $? "map shows Hello, kheap! in physical RAM, read back"

"$K" map --json 6 > "$T/map.json" 2> "$T/map.err"
rc=$?
ktap_diag "$T/map.err"
[ $rc -eq 0 ] && json-check "$T/map.json" && [ "$(json-check "$T/map.json" .ok)" = true ]
ktap_result $? "map --json 6 is valid JSON with ok true"

nbuf=$(json-check "$T/map.json" .buffers#)
[ "$nbuf" = 8 ] && json-check "$T/map.json" '.buffers[*].via' | grep -qx QUERY
ktap_result $? "map --json has 6 buffers, the realloc'd one and a QUERY chunk ($nbuf)"

npages=$(json-check "$T/map.json" '.buffers[*].pages[*].agree' | wc -l)
bad=$(json-check "$T/map.json" '.buffers[*].pages[*].agree' | grep -cvx true)
[ "$npages" -gt 0 ] && [ "$bad" -eq 0 ] &&
	[ "$(json-check "$T/map.json" .pages.mismatch)" = 0 ] &&
	[ "$(json-check "$T/map.json" .pages.agree)" = "$npages" ]
ktap_result $? "every page agrees with pagemap ($npages pages, $bad not)"

ok=0
pphys=$(info_get "$T/info" pool_phys)
psize=$(info_get "$T/info" pool_size)
[ "$(json-check "$T/map.json" .pool.phys)" = "$pphys" ] || ok=1
[ "$(json-check "$T/map.json" .pool.size)" = "$psize" ] || ok=1
json-check "$T/map.json" '.buffers[*].pages[*].phys' '.buffers[*].pages[*].pagemap' |
	awk -v b="$pphys" -v s="$psize" '$1 < b || $1 >= b + s { bad++ } END { exit bad > 0 }' || ok=1
ktap_result $ok "every physical page lies inside INFO's pool"

ok=0
page=$(info_get "$T/info" page_size)
i=0
while [ "$i" -lt "${nbuf:-0}" ]; do
	json-check "$T/map.json" ".buffers[$i].pages[*].phys" |
		awk -v ps="$page" 'NR == 1 { f = $1 } $1 != f + (NR - 1) * ps { bad = 1 } END { exit bad }' ||
		{ echo "# buffer $i: pages not consecutive"; ok=1; }
	i=$((i + 1))
done
[ -z "$(json-check "$T/map.json" '.buffers[*].contiguous' '.buffers[*].in_pool' | grep -vx true)" ] || ok=1
ktap_result $ok "each buffer is physically contiguous"

[ "$(json-check "$T/map.json" .realloc.moved)" = true ] &&
	[ "$(json-check "$T/map.json" .realloc.contents_kept)" = true ] &&
	[ "$(json-check "$T/map.json" .realloc.from_virt)" != \
	  "$(json-check "$T/map.json" '.buffers[6].virt')" ]
ktap_result $? "realloc moved the buffer and kept its contents"

# /proc/kcore covers System RAM only: a memmap= reserved pool is read back
# through kheap_phys_to_virt instead (and the QUERY chunk not at all).
json-check "$T/map.json" '.buffers[*].read_match' > "$T/match"
json-check "$T/map.json" '.buffers[*].read_via' > "$T/via"
ok=0
[ -z "$(grep -vx -e true -e null "$T/match")" ] || ok=1
[ "$(grep -cx true "$T/match")" -ge 2 ] || ok=1
if [ "$src" != reserved ]; then
	[ "$(grep -cx kcore "$T/via")" -eq 3 ] || ok=1
fi
ktap_result $ok "text read back at its physical address (via $(grep -vx null "$T/via" | sort -u | tr '\n' ' '))"

# The map process is gone: its chunks come back (allow for deferred work).
i=0
while :; do
	kheap-info > "$T/info2" 2>/dev/null
	[ "$(info_get "$T/info2" chunks_in_use)" = 0 ] &&
		[ "$(info_get "$T/info2" free_bytes)" = "$psize" ] && break
	[ $i -ge 20 ] && break
	sleep 0.1
	i=$((i + 1))
done
[ "$(info_get "$T/info2" chunks_in_use)" = 0 ] && [ "$(info_get "$T/info2" free_bytes)" = "$psize" ]
ktap_result $? "after map exits the pool is whole again"

"$K" map 16 > "$T/map16.txt" 2>&1
rc=$?
[ $rc -eq 0 ] || ktap_diag "$T/map16.txt"
ktap_result $rc "map 16"

"$K" map 0 > /dev/null 2>&1
[ $? -eq 2 ]
ktap_result $? "map 0 is a usage error (exit 2)"

"$K" unload > "$T/unload.out" 2>&1
rc=$?
ktap_diag "$T/unload.out"
[ $rc -eq 0 ] && [ ! -e /sys/module/kheap ]
ktap_result $? "unload"

"$K" status > "$T/s1.txt" 2>&1 && grep -qx 'kheap: not loaded' "$T/s1.txt"
ktap_result $? "status after unload says not loaded"

# max_phys: the pool below a limit, in status text and JSON as in INFO.
ok=1
if "$K" load size=16M max_phys=512M > "$T/lm.out" 2>&1; then
	kheap-info > "$T/info3" 2>/dev/null
	"$K" status > "$T/lm.txt" 2>&1
	"$K" status --json > "$T/lm.json" 2>&1
	grep -q 'pool placed below physical 0x20000000 (max_phys)' "$T/lm.txt" &&
		[ "$(json-check "$T/lm.json" .pool.max_phys)" = 536870912 ] &&
		[ "$(info_get "$T/info3" max_phys)" = 536870912 ] &&
		[ $(($(info_get "$T/info3" pool_phys) + $(info_get "$T/info3" pool_size))) -le 536870912 ]
	ok=$?
	[ $ok -eq 0 ] || { ktap_diag "$T/lm.txt"; ktap_diag "$T/lm.json"; }
else
	ktap_diag "$T/lm.out"
fi
ktap_result $ok "load max_phys=512M: the pool lies below, status shows the limit"
"$K" unload > /dev/null 2>&1
"$K" status > "$T/s2.txt" 2>&1 && grep -qx 'kheap: not loaded' "$T/s2.txt"
ktap_result $? "unload after max_phys"

ktap_done
