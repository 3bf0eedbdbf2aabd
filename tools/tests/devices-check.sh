#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# Host test of `kheapctl devices` (KTAP) on fake sysfs trees
# (KHEAPCTL_SYSFS): no IOMMU, DMA-FQ, DMA, identity, blocked and unknown
# groups, vfio-pci with and without an IOMMU, DMA masks of 28, 32 and 64
# bits against pools below, across and above them, a pool hidden from
# non-root with and without max_phys, no kheap at all, a platform device
# without a mask, and bad or missing names.  Every case checks the text
# verdict and the JSON.
# Usage: tools/tests/devices-check.sh   (after make -C tools kheapctl tests)
here=$(cd "$(dirname "$0")" && pwd)
. "$here/ktap.sh"
K=${KHEAPCTL:-$here/../kheapctl}
jc=$here/json-check
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

# ---- fake trees ----------------------------------------------------------------

S=
tree() { # NAME: start a new, empty tree and make it the current one
	S=$T/$1
	mkdir -p "$S/bus/pci/devices" "$S/bus/pci/drivers" "$S/bus/platform/devices" \
		"$S/kernel/iommu_groups" "$S/devices/pci0000:00" "$S/devices/platform"
}

# A PCI device as sysfs shows it: the directory under /sys/devices, a
# symlink to it from /sys/bus/pci/devices, links to its driver and group.
# Empty DRIVER, GROUP or MASK leave that part out.
pcidev() { # ADDR VENDOR DEVICE CLASS DRIVER GROUP MASK
	d=$S/devices/pci0000:00/$1
	mkdir -p "$d"
	printf '0x%s\n' "$2" > "$d/vendor"
	printf '0x%s\n' "$3" > "$d/device"
	printf '0x%s\n' "$4" > "$d/class"
	ln -s "../../../devices/pci0000:00/$1" "$S/bus/pci/devices/$1"
	if [ -n "$5" ]; then
		mkdir -p "$S/bus/pci/drivers/$5"
		ln -s "../../../bus/pci/drivers/$5" "$d/driver"
	fi
	[ -n "$6" ] && ln -s "../../../kernel/iommu_groups/$6" "$d/iommu_group"
	[ -n "$7" ] && echo "$7" > "$d/dma_mask_bits"
	return 0
}

group() { # N TYPE [NAME]
	mkdir -p "$S/kernel/iommu_groups/$1/devices"
	echo "$2" > "$S/kernel/iommu_groups/$1/type"
	[ -n "${3:-}" ] && echo "$3" > "$S/kernel/iommu_groups/$1/name"
	return 0
}

# kheap's attributes.  PHYS empty: pool_phys missing, as a non-root reader
# finds it (0400); MAXPHYS empty: a module without max_phys.
pool() { # SIZE PHYS [MAXPHYS]
	m=$S/class/misc/kheap
	mkdir -p "$m"
	rm -f "$m/pool_phys" "$m/max_phys"
	echo "$1" > "$m/pool_size"
	[ -n "$2" ] && echo "$2" > "$m/pool_phys"
	[ -n "${3:-}" ] && echo "$3" > "$m/max_phys"
	return 0
}

# ---- running and checking ----------------------------------------------------------

run() { # ARGS...: text to $T/out, JSON to $T/out.json, exit codes in rc, jrc
	KHEAPCTL_SYSFS=$S "$K" devices "$@" > "$T/out" 2> "$T/err"
	rc=$?
	KHEAPCTL_SYSFS=$S "$K" devices --json "$@" > "$T/out.json" 2>> "$T/err"
	jrc=$?
}

# The JSON of device I has these PATH=VALUE pairs, and is valid.
jhas() { # I PATH=VALUE...
	i=$1
	shift
	"$jc" "$T/out.json" || { echo "# invalid JSON"; return 1; }
	for pv in "$@"; do
		p=${pv%%=*}
		v=${pv#*=}
		got=$("$jc" "$T/out.json" ".devices[$i]$p")
		[ "$got" = "$v" ] || { echo "# .devices[$i]$p: got [$got], want [$v]"; return 1; }
	done
}

# The text output has this line (fixed string, whole line).
thas() { # LINE
	grep -qxF -- "$1" "$T/out" || { echo "# no line [$1] in:"; sed 's/^/#   /' "$T/out"; return 1; }
}

ok_run() { # rc and jrc are 0
	[ "$rc" -eq 0 ] && [ "$jrc" -eq 0 ] || { echo "# exit $rc/$jrc"; ktap_diag "$T/err"; return 1; }
}

IOMMU_MSG="this device is behind a translating IOMMU (%s): physical addresses will fault; use kheap_attach() and kheap_dma_addr()"
iommu_msg() { # TYPE
	# shellcheck disable=SC2059
	printf "$IOMMU_MSG" "$1"
}

ktap_plan 21
if [ ! -x "$K" ]; then
	ktap_result 1 "$K is built"
	ktap_done
	exit 1
fi

# 1. No IOMMU, a driver with a 64-bit mask, a pool at 256 MiB.
tree noiommu
pool 67108864 0x10000000
pcidev 0000:00:02.0 8086 10d3 020000 e1000e "" 64
run 0000:00:02.0
ok_run && thas "0000:00:02.0  8086:10d3  network (class 020000)" &&
	thas "  driver      e1000e" && thas "  IOMMU       no IOMMU" &&
	thas "  DMA mask    64 bits" &&
	thas "  kheap_phys  yes: no IOMMU translates for it, and the pool lies under its 64-bit DMA mask" &&
	! grep -q warning "$T/out" &&
	jhas 0 .name=0000:00:02.0 .bus=pci .vendor=8086 .device=10d3 .class=020000 \
		.driver=e1000e .iommu=null .dma_mask_bits=64 .phys_ok=true .reason=null .note=null &&
	[ "$("$jc" "$T/out.json" .pool.phys .pool.size .pool.loaded .pool.max_phys | tr '\n' ' ')" = \
	  "268435456 67108864 true null " ]
ktap_result $? "no IOMMU, 64-bit mask: kheap_phys works (text and JSON)"

# 2. A translating IOMMU, lazy (DMA-FQ) and strict (DMA).
tree iommu
pool 67108864 0x10000000
group 7 DMA-FQ
group 8 DMA
pcidev 0000:00:03.0 1234 11e8 00ff00 "" 7 32
pcidev 0000:00:04.0 8086 10d3 020000 e1000e 8 64
run 0000:00:03.0
ok_run && thas "  IOMMU       group 7, DMA-FQ (translates)" && thas "  kheap_phys  no" &&
	thas "  warning     $(iommu_msg DMA-FQ)" &&
	jhas 0 .iommu.group=7 .iommu.type=DMA-FQ .iommu.translates=true .iommu.name=null \
		.phys_ok=false .reason=iommu ".message=$(iommu_msg DMA-FQ)" .driver=null &&
	grep -q "^  note        no driver is bound, .*kheap_attach_bits()$" "$T/out"
ktap_result $? "DMA-FQ group: physical addresses will fault, use kheap_attach()"

run 0000:00:04.0
ok_run && thas "  IOMMU       group 8, DMA (translates)" && thas "  warning     $(iommu_msg DMA)" &&
	jhas 0 .iommu.type=DMA .phys_ok=false .reason=iommu
ktap_result $? "DMA group: the same, whatever the mask"

# 3. Identity (passthrough) groups translate nothing: the mask decides.
tree identity
pool 67108864 0x10000000
group 2 identity
pcidev 0000:00:05.0 10ee 9038 058000 xdma 2 64
pcidev 0000:00:06.0 10ee 9038 058000 xdma 2 28
run 0000:00:05.0 0000:00:06.0
ok_run && thas "  IOMMU       group 2, identity (no translation)" &&
	jhas 0 .iommu.type=identity .iommu.translates=false .phys_ok=true .reason=null &&
	jhas 1 .phys_ok=false .reason=dma_mask
ktap_result $? "identity group: kheap_phys works for a 64-bit device, not for a 28-bit one"

# 4. vfio-pci behind an IOMMU: the user maps the IOVAs.
tree vfio
pool 67108864 0x10000000
group 11 DMA-FQ
pcidev 0000:00:07.0 1234 11e8 00ff00 vfio-pci 11 32
run 0000:00:07.0
msg="owned by vfio-pci: use kheap_vfio_map(); then kheap_phys() is its IOVA"
ok_run && thas "  driver      vfio-pci" && thas "  kheap_phys  no" && thas "  warning     $msg" &&
	jhas 0 .driver=vfio-pci .phys_ok=false .reason=vfio ".message=$msg"
ktap_result $? "vfio-pci: use kheap_vfio_map()"

# 5. vfio-pci in no-IOMMU mode: its group has no domain ("unknown") and
# translates nothing, so physical addresses are the device's.
group 12 unknown vfio-noiommu
pcidev 0000:00:08.0 1234 11e8 00ff00 vfio-pci 12 64
run 0000:00:08.0
ok_run && thas "  IOMMU       group 12, vfio-noiommu: no translation" &&
	jhas 0 .iommu.name=vfio-noiommu .iommu.translates=false .phys_ok=true
ktap_result $? "vfio-pci without an IOMMU (vfio-noiommu): kheap_phys works"

# 6. A 28-bit DMA mask (256 MiB) against pools above, across and below it.
tree mask28
pool 67108864 0x10000000
pcidev 0000:00:09.0 1234 11e8 00ff00 edu-drv "" 28
run 0000:00:09.0
msg="the pool lies above this device's 28-bit DMA mask: load kheap with max_phys=256M"
ok_run && thas "  DMA mask    28 bits" && thas "  kheap_phys  no" && thas "  warning     $msg" &&
	jhas 0 .dma_mask_bits=28 .phys_ok=false .reason=dma_mask ".message=$msg"
ktap_result $? "28-bit mask, pool at 256 MiB: above the mask, load with max_phys=256M"

pool 134217728 0x0c000000
run 0000:00:09.0
msg="the pool ends above this device's 28-bit DMA mask: load kheap with max_phys=256M, or attach it (kheap_attach() before allocating) so that chunks come from below the mask"
ok_run && thas "  warning     $msg" && jhas 0 .phys_ok=false .reason=dma_mask ".message=$msg"
ktap_result $? "28-bit mask, pool across 256 MiB: max_phys=256M, or attach"

pool 67108864 0x0c000000
run 0000:00:09.0
ok_run && thas "  kheap_phys  yes: no IOMMU translates for it, and the pool lies under its 28-bit DMA mask" &&
	jhas 0 .phys_ok=true
ktap_result $? "28-bit mask, pool ending at 256 MiB exactly: kheap_phys works"

# 7. A 36-bit mask names max_phys in G.
pool 67108864 0x1000000000
echo 36 > "$S/devices/pci0000:00/0000:00:09.0/dma_mask_bits"
run 0000:00:09.0
ok_run && grep -qF "36-bit DMA mask: load kheap with max_phys=64G" "$T/out"
ktap_result $? "36-bit mask, pool at 64 GiB: max_phys=64G"
echo 28 > "$S/devices/pci0000:00/0000:00:09.0/dma_mask_bits"

# 8. pool_phys hidden (not root): max_phys still places the pool.
pool 67108864 "" 0x10000000
run 0000:00:09.0
ok_run && thas "kheap pool  64.0 MiB, place hidden (pool_phys is readable by root only), below max_phys 0x10000000" &&
	thas "  kheap_phys  yes: no IOMMU translates for it, and max_phys keeps the pool under its 28-bit DMA mask" &&
	jhas 0 .phys_ok=true && [ "$("$jc" "$T/out.json" .pool.phys .pool.max_phys | tr '\n' ' ')" = "null 268435456 " ]
ktap_result $? "pool_phys hidden, max_phys=256M: under a 28-bit mask"

rm -f "$S/class/misc/kheap/max_phys"
run 0000:00:09.0
msg="no IOMMU translates for this device; whether the pool lies under its 28-bit DMA mask is unknown: the pool's place (pool_phys) is shown to root only"
ok_run && thas "  kheap_phys  unknown" && thas "  warning     $msg" &&
	jhas 0 .phys_ok=null .reason=unknown_pool ".message=$msg"
ktap_result $? "pool_phys hidden, no max_phys: unknown, and why"

# 9. kheap not loaded: a 64-bit device is fine anyway, a 32-bit one unknown.
tree unloaded
pcidev 0000:00:02.0 8086 10d3 020000 e1000e "" 64
pcidev 0000:00:03.0 1234 11e8 00ff00 "" "" 32
run 0000:00:02.0 0000:00:03.0
ok_run && thas "kheap pool  kheap is not loaded" &&
	grep -qF "whether the pool lies under its 32-bit DMA mask is unknown: kheap is not loaded" "$T/out" &&
	jhas 0 .phys_ok=true && jhas 1 .phys_ok=null .reason=unknown_pool &&
	[ "$("$jc" "$T/out.json" .pool.loaded .pool.size | tr '\n' ' ')" = "false null " ]
ktap_result $? "kheap not loaded: 64-bit yes, 32-bit unknown"

# 10. No driver: the mask is the PCI default, and the note says so.
tree nodriver
pool 67108864 0x10000000
pcidev 0000:00:03.0 1234 11e8 00ff00 "" "" 32
run 00:03.0
ok_run && thas "0000:00:03.0  1234:11e8  unclassified (class 00ff00)" &&
	thas "  driver      none" && thas "  DMA mask    32 bits (no driver bound)" &&
	grep -q "^  note        no driver is bound, so the 32-bit mask is the PCI default" "$T/out" &&
	jhas 0 .name=0000:00:03.0 .phys_ok=true .driver=null && "$jc" "$T/out.json" .devices[0].note > /dev/null &&
	[ "$("$jc" "$T/out.json" .devices[0].note)" != null ]
ktap_result $? "no driver bound: yes, with a note on the default mask; 00:03.0 means 0000:00:03.0"

# 11. Blocked and unknown domain types.
tree odd
pool 67108864 0x10000000
group 3 blocked
group 4 unknown
pcidev 0000:00:0a.0 8086 10d3 020000 "" 3 64
pcidev 0000:00:0b.0 8086 10d3 020000 e1000e 4 64
run 0000:00:0a.0 0000:00:0b.0
ok_run && grep -qF "warning     the IOMMU blocks this device's DMA (group 3, blocked)" "$T/out" &&
	grep -qF "warning     IOMMU group 4 has domain type \"unknown\": whether it translates is unknown" "$T/out" &&
	jhas 0 .phys_ok=false .reason=blocked .iommu.translates=true &&
	jhas 1 .phys_ok=null .reason=unknown_iommu .iommu.translates=null
ktap_result $? "blocked group: no; unknown domain type: unknown"

# 12. A platform device has no dma_mask_bits: mask unknown.
mkdir -p "$S/devices/platform/fpga0"
ln -s ../../../devices/platform/fpga0 "$S/bus/platform/devices/fpga0"
run platform:fpga0
ok_run && thas "platform:fpga0" && thas "  DMA mask    unknown" && thas "  kheap_phys  unknown" &&
	grep -qF "its DMA mask is unknown: physical addresses work if it reaches 0x13ffffff" "$T/out" &&
	jhas 0 .name=platform:fpga0 .bus=platform .vendor=null .dma_mask_bits=null .phys_ok=null \
		.reason=unknown_mask
ktap_result $? "platform device without a DMA mask: unknown, with the pool's end"

# 13. No argument: every PCI device, in address order, nothing else.
run
ok_run && [ "$(grep -c '^0000:' "$T/out")" = 2 ] &&
	[ "$("$jc" "$T/out.json" '.devices[*].name' | tr '\n' ' ')" = "0000:00:0a.0 0000:00:0b.0 " ] &&
	! grep -q platform "$T/out"
ktap_result $? "no argument: every PCI device, sorted"

tree empty
rm -r "$S/bus/pci"
run
ok_run && thas "no PCI devices" && [ "$("$jc" "$T/out.json" .devices#)" = 0 ]
ktap_result $? "no PCI bus: an empty list, exit 0"

# 14. Names that are missing or malformed.
tree errors
pcidev 0000:00:02.0 8086 10d3 020000 e1000e "" 64
run 0000:00:02.0 0000:00:09.0
[ "$rc" -eq 1 ] && [ "$jrc" -eq 1 ] && [ ! -s "$T/out" ] && [ ! -s "$T/out.json" ] &&
	grep -qF 'kheapctl: devices: no device "0000:00:09.0" (nothing at' "$T/err"
ktap_result $? "a missing device: exit 1, clear message, no output"

run usb:1-1
[ "$rc" -eq 1 ] && grep -qF 'no device "usb:1-1": there is no bus "usb"' "$T/err"
ktap_result $? "a missing bus: exit 1"

ok=0
for bad in foo platform:../x pci: :x --bogus; do
	KHEAPCTL_SYSFS=$S "$K" devices "$bad" > /dev/null 2> "$T/err"
	r=$?
	[ $r -eq 2 ] || { echo "# devices $bad: exit $r"; ok=1; }
done
ktap_result $ok "malformed names and unknown options: exit 2"

ktap_done
