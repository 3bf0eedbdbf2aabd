#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# kheapctl devices and map --device on the machine's real PCI devices, as
# root (in a guest, or on a host with `make check HOST=1`):
#   - devices lists every PCI device, text and JSON, and reports what sysfs
#     says of each (IDs, driver, IOMMU group and type, DMA mask);
#   - QEMU's edu devices (1234:11e8) are named when present;
#   - the verdict of each device whose IOMMU state sysfs tells (no group,
#     or a group of type identity, DMA or DMA-FQ) is recomputed here from
#     sysfs and the pool's place and must match;
#   - a missing device exits 1;
#   - map --device on an edu device: every buffer's device address is
#     contiguous and under the mask, equal to the physical address without
#     an IOMMU; the mode matches the device's group;
#   - an edu device behind an IOMMU, bound to vfio-pci (when vfio-pci is
#     loaded): devices says to use kheap_vfio_map(); map --device fails, as
#     ATTACH must refuse (EBUSY), with that advice.  The device is given
#     back afterwards.
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

ktap_plan 13
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

"$K" map --device 0000:ff:1f.7 > "$T/none" 2>&1
[ $? -eq 1 ] && grep -qi 'no such device' "$T/none"
ktap_result $? "map --device on a missing device: exit 1, no such device"

# map --device on the first edu device.
edu=${edus# }
edu=${edu%% *}
if [ -z "$edu" ]; then
	for n in "map --device: text" "map --device --json: every buffer contiguous for the device" \
		"map --device: the mode is the group's" "devices: an edu device bound to vfio-pci" \
		"map --device: an edu device bound to vfio-pci"; do
		ktap_skip "$n" "no edu device (1234:11e8)"
	done
	ktap_done
	exit
fi
grp=$(linkbase "$PCI/$edu/iommu_group")
type=none
[ "$grp" != null ] && type=$(cat "/sys/kernel/iommu_groups/$grp/type")
echo "# map --device $edu (IOMMU group $grp, $type)"

"$K" map --device "$edu" > "$T/map.txt" 2>&1
rc=$?
ktap_diag "$T/map.txt"
[ $rc -eq 0 ] && grep -q "^Device view: $edu, " "$T/map.txt" &&
	[ "$(grep -c '✓ at [0-9]* offsets* up to the last byte' "$T/map.txt")" -ge 5 ] &&
	! grep -q '✗' "$T/map.txt"
ktap_result $? "map --device: text"

"$K" map --json --device "$edu" 6 > "$T/map.json" 2> "$T/map.err"
rc=$?
ktap_diag "$T/map.err"
nbuf=$(json-check "$T/map.json" .buffers#)
[ $rc -eq 0 ] && [ "$(json-check "$T/map.json" .ok)" = true ] && [ "$nbuf" = 8 ] &&
	[ "$(json-check "$T/map.json" .device.name)" = "$edu" ] &&
	[ "$(json-check "$T/map.json" '.buffers[*].dma.contiguous' '.buffers[*].dma.reachable' |
		grep -cx true)" = $((2 * nbuf)) ] &&
	[ -z "$(json-check "$T/map.json" '.buffers[*].dma.offsets_checked' | grep -vx '[1-5]')" ]
ktap_result $? "map --device --json: every buffer contiguous for the device ($nbuf buffers)"

mode=$(json-check "$T/map.json" .device.mode)
ok=0
case $type in
DMA | DMA-FQ) [ "$mode" = iommu ] || ok=1 ;;
none | identity)
	[ "$mode" = direct ] || ok=1
	# Without translation the device address is the physical one (x86).
	json-check "$T/map.json" '.buffers[*].phys' > "$T/phys"
	json-check "$T/map.json" '.buffers[*].dma.addr' > "$T/dma"
	cmp -s "$T/phys" "$T/dma" || { echo "# phys and dma differ"; ok=1; } ;;
*) echo "# group type $type: mode not checked" ;;
esac
ktap_result $ok "map --device: mode $mode for group type $type"

# The same device bound to vfio-pci, then given back.
vfio=/sys/bus/pci/drivers/vfio-pci
case $type in
DMA | DMA-FQ) why= ;;
*) why="$edu is in no translating IOMMU group" ;;
esac
[ -d "$vfio" ] || why=${why:-"vfio-pci is not loaded"}
[ "$(linkbase "$PCI/$edu/driver")" = null ] || why=${why:-"$edu has a driver"}
if [ -n "$why" ]; then
	ktap_skip "devices: an edu device bound to vfio-pci" "$why"
	ktap_skip "map --device: an edu device bound to vfio-pci" "$why"
	ktap_done
	exit
fi
echo vfio-pci > "$PCI/$edu/driver_override" && echo "$edu" > "$vfio/bind"
ok=$?
"$K" devices --json "$edu" > "$T/vfio.json" 2>&1 || ok=1
"$K" map --device "$edu" > "$T/vfio.map" 2>&1
rc=$?
[ -e "$PCI/$edu/driver" ] && echo "$edu" > "$PCI/$edu/driver/unbind"
echo > "$PCI/$edu/driver_override"
[ ! -e "$PCI/$edu/driver" ] || { echo "# $edu still has a driver"; ok=1; }
[ "$(json-check "$T/vfio.json" .devices[0].driver .devices[0].reason | tr '\n' ' ')" = "vfio-pci vfio " ] &&
	grep -qF "owned by vfio-pci: use kheap_vfio_map(); then kheap_phys() is its IOVA" "$T/vfio.json" || ok=1
[ $ok -eq 0 ] || ktap_diag "$T/vfio.json"
ktap_result $ok "devices: an edu device bound to vfio-pci: use kheap_vfio_map()"
[ $rc -eq 1 ] && grep -qF "use kheap_vfio_map()" "$T/vfio.map"
ok=$?
[ $ok -eq 0 ] || { echo "# map --device exit $rc:"; tail -n 3 "$T/vfio.map" | sed 's/^/# /'; }
ktap_result $ok "map --device: an edu device bound to vfio-pci is refused (EBUSY), kheap_vfio_map() advised"

ktap_done
