#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# kheapctl devices on the machine's real PCI devices, as
# root (in a guest, or on a host with `make check HOST=1`):
#   - devices lists every PCI device, text and JSON, and reports what sysfs
#     says of each (IDs, driver, IOMMU group and type, DMA mask);
#   - QEMU's edu devices (1234:11e8) are named when present;
#   - the verdict of each device whose IOMMU state sysfs tells (no group,
#     or a group of type identity, DMA or DMA-FQ) is recomputed here from
#     sysfs and the pool's place and must match;
#   - a missing device exits 1.
#
# Environment: KHEAPCTL (default ../kheapctl), KHEAPCTL_MODULE (--module).
here=$(cd "$(dirname "$0")" && pwd)
. "$here/ktap.sh"
PATH=$here:$PATH
K=${KHEAPCTL:-$here/../kheapctl}
T=$(mktemp -d)
trap '"$K" unload >/dev/null 2>&1; rm -rf "$T"' EXIT
M=${KHEAPCTL_MODULE:+--module $KHEAPCTL_MODULE}
PCI=/sys/bus/pci/devices

ktap_plan 7
"$K" unload >/dev/null 2>&1
# shellcheck disable=SC2086
"$K" load size=16M $M > "$T/load" 2>&1
ktap_result $? "load size=16M"
ktap_diag "$T/load"

ls "$PCI" 2>/dev/null | sort > "$T/sysfs.names"
echo "# $(wc -l < "$T/sysfs.names") PCI devices, $(ls /sys/kernel/iommu_groups 2>/dev/null | wc -l) IOMMU groups"

"$K" devices > "$T/text" 2> "$T/err"
rc=$?
ktap_diag "$T/text" "$T/err"
grep '^[0-9a-f]*:[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]\.[0-7]' "$T/text" | cut -d' ' -f1 > "$T/text.names"
[ $rc -eq 0 ] && cmp -s "$T/sysfs.names" "$T/text.names"
ktap_result $? "devices lists every PCI device"

"$K" devices --json > "$T/json" 2> "$T/err"
rc=$?
ktap_diag "$T/err"
json-check "$T/json" '.devices[*].name' > "$T/json.names"
[ $rc -eq 0 ] && json-check "$T/json" && cmp -s "$T/sysfs.names" "$T/json.names" &&
	[ "$(json-check "$T/json" .pool.loaded)" = true ]
ktap_result $? "devices --json lists the same, and the pool"

# What sysfs says of device $d, and of its group, in the JSON's terms.
hexid() { # FILE
	v=$(cat "$1" 2>/dev/null) || { echo null; return; }
	echo "${v#0x}"
}
linkbase() { # LINK
	if [ -L "$1" ]; then basename "$(readlink "$1")"; else echo null; fi
}

ok=0
i=0
while read -r d; do
	p=$PCI/$d
	grp=$(linkbase "$p/iommu_group")
	want="$(hexid "$p/vendor") $(hexid "$p/device") $(linkbase "$p/driver") $(cat "$p/dma_mask_bits" 2>/dev/null || echo null) $grp"
	[ "$grp" != null ] && want="$want $(cat "/sys/kernel/iommu_groups/$grp/type")"
	got=$(json-check "$T/json" ".devices[$i].vendor" ".devices[$i].device" ".devices[$i].driver" \
		".devices[$i].dma_mask_bits" | tr '\n' ' ')
	if [ "$grp" = null ]; then
		got="$got$(json-check "$T/json" ".devices[$i].iommu")"
	else
		got="$got$(json-check "$T/json" ".devices[$i].iommu.group" ".devices[$i].iommu.type" | tr '\n' ' ')"
		got=${got% }
	fi
	[ "$got" = "$want" ] || { echo "# $d: JSON [$got], sysfs [$want]"; ok=1; }
	i=$((i + 1))
done < "$T/sysfs.names"
ktap_result $ok "each device's IDs, driver, DMA mask and IOMMU group are sysfs's"

# QEMU's edu devices, when the test bed adds them.
edus=
while read -r d; do
	[ "$(cat "$PCI/$d/vendor")" = 0x1234 ] && [ "$(cat "$PCI/$d/device")" = 0x11e8 ] &&
		edus="$edus $d"
done < "$T/sysfs.names"
if [ -n "$edus" ]; then
	# shellcheck disable=SC2086
	"$K" devices $edus > "$T/edu" 2>&1
	rc=$?
	ok=$rc
	for d in $edus; do
		grep -q "^$d  1234:11e8  unclassified" "$T/edu" || { echo "# $d not named"; ok=1; }
	done
	[ $ok -eq 0 ] || ktap_diag "$T/edu"
	ktap_result $ok "devices names the edu devices:$edus"
else
	ktap_skip "devices names the edu devices" "no edu device (1234:11e8)"
fi

# The verdict, recomputed for devices whose IOMMU state sysfs tells.
pphys=$(cat /sys/class/misc/kheap/pool_phys)
psize=$(cat /sys/class/misc/kheap/pool_size)
top=$((pphys + psize - 1))
ok=0
checked=0
i=0
while read -r d; do
	p=$PCI/$d
	grp=$(linkbase "$p/iommu_group")
	drv=$(linkbase "$p/driver")
	bits=$(cat "$p/dma_mask_bits" 2>/dev/null)
	type=none
	[ "$grp" != null ] && type=$(cat "/sys/kernel/iommu_groups/$grp/type")
	case "$drv:$type" in
	vfio*:DMA | vfio*:DMA-FQ | vfio*:identity | vfio*:none) want="false vfio" ;;
	*:DMA | *:DMA-FQ) want="false iommu" ;;
	*:none | *:identity)
		if [ -z "$bits" ]; then
			i=$((i + 1))
			continue
		elif [ "$bits" -ge 63 ] || [ $((top >> bits)) -eq 0 ]; then
			want="true null"
		else
			want="false dma_mask"
		fi ;;
	*) i=$((i + 1)); continue ;;
	esac
	got=$(json-check "$T/json" ".devices[$i].phys_ok" ".devices[$i].reason" | tr '\n' ' ')
	[ "$got" = "$want " ] || { echo "# $d ($drv, $type, ${bits:-?} bits): [$got], want [$want]"; ok=1; }
	checked=$((checked + 1))
	i=$((i + 1))
done < "$T/sysfs.names"
echo "# pool 0x$(printf %x "$pphys")-0x$(printf %x "$top"), $checked verdicts checked"
if [ "$checked" -gt 0 ]; then
	ktap_result $ok "verdicts match sysfs and the pool's place ($checked devices)"
else
	ktap_skip "verdicts match sysfs and the pool's place" "no device with a known IOMMU state"
fi

"$K" devices 0000:ff:1f.7 > "$T/none" 2>&1
[ $? -eq 1 ] && grep -q 'no device "0000:ff:1f.7"' "$T/none"
ktap_result $? "a missing device: exit 1 and says so"

ktap_done
