#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# Pack a guest initramfs for kernel KREL: busybox, scripts/guest-init.sh as
# /init, everything in STAGEDIR under /kheap, the shared libraries that the
# staged programs need, and the kernel's own helper modules (loop, for the
# O_DIRECT tests; vfio-pci, for the DMA tests; vgem and vivid, for the
# dma-buf tests; 9p and overlayfs, for guests that run over the host's
# root), decompressed because busybox insmod wants plain .ko files.
# Usage: scripts/mkinitramfs.sh KREL STAGEDIR OUT.cpio
# The kernel's modules are those of /lib/modules/KREL, or of
# $KHEAP_MODBASE/lib/modules/KREL for a kernel installed elsewhere (a
# modules_install with INSTALL_MOD_PATH=$KHEAP_MODBASE).
set -eu
krel=$1
stage=$2
out=$3
here=$(cd "$(dirname "$0")" && pwd)
modbase=${KHEAP_MODBASE:-/}

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/sbin" "$root/etc" "$root/proc" "$root/sys" \
	"$root/dev" "$root/tmp" "$root/run" "$root/kheap/modules" \
	"$root/lib/modules/$krel"
cp /bin/busybox "$root/bin/busybox"
cp "$here/guest-init.sh" "$root/init"
cp "$here/kernel-complaints.awk" "$root/kernel-complaints.awk"
chmod 0755 "$root/init"
cp -a "$stage/." "$root/kheap/"
echo "root:x:0:0:root:/:/bin/sh" > "$root/etc/passwd"
echo "nobody:x:65534:65534:nobody:/:/bin/sh" >> "$root/etc/passwd"
echo "root:x:0:" > "$root/etc/group"

# copy_ko MODULE_FILE DEST: a module, decompressed.
copy_ko() {
	case "$1" in
	*.xz) xz -dc "$1" > "$2" ;;
	*.zst) zstd -qdc "$1" > "$2" ;;
	*) cp "$1" "$2" ;;
	esac
}

# Helper modules of the guest kernel itself, loaded at boot.
for name in loop; do
	ko=$(find "$modbase/lib/modules/$krel/kernel" -name "$name.ko*" | head -n 1)
	[ -n "$ko" ] || continue
	copy_ko "$ko" "$root/kheap/modules/$name.ko"
done

# vfio-pci, vgem, vivid and what they need, not loaded at boot:
# /kheap/modules/{vfio,dmabuf}/order list the files dependencies first, for
# a loop of busybox insmod (the guest has no modprobe database).  Built-in modules are simply left out.
# mod_files NAME: the module files of NAME's dependencies, then NAME's own;
# in a subshell, so the recursion keeps its variables apart.
mod_files() (
	file=$(modinfo -b "$modbase" -k "$krel" -n "$1" 2>/dev/null) || exit 0
	case "$file" in
	/*) ;;
	*) exit 0 ;;	# "(builtin)"
	esac
	for dep in $(modinfo -b "$modbase" -k "$krel" -F depends "$1" | tr ',' ' '); do
		mod_files "$dep"
	done
	echo "$file"
)
# module_set DIR NAME...: NAMEs and their dependencies into DIR, with
# DIR/order listing the files dependencies first.
module_set() {
	dir=$1
	shift
	mkdir -p "$dir"
	for name in "$@"; do
		mod_files "$name"
	done | awk '!seen[$0]++' | while read -r file; do
		base=$(basename "$file")
		base=${base%.xz}
		base=${base%.zst}
		copy_ko "$file" "$dir/$base"
		echo "$base" >> "$dir/order"
	done
}
# vfio_iommu_type1 is only a soft dependency of vfio: name it.
module_set "$root/kheap/modules/vfio" vfio vfio_iommu_type1 vfio_pci
# The dma-buf importers of kheap_dmabuf_test: DRM's vgem, V4L2's vivid.
module_set "$root/kheap/modules/dmabuf" vgem vivid
# What a guest booted with the host's root over 9p (run-guest.sh --rootfs)
# needs before it can mount it: loaded by guest-init.sh in that mode only.
module_set "$root/kheap/modules/rootfs" virtio_pci 9pnet_virtio 9p overlay

# Shared libraries (and the dynamic loader) of every staged program.
find "$root/kheap" -type f -perm -u+x | while read -r f; do
	ldd "$f" >/dev/null 2>&1 || continue
	ldd "$f" 2>/dev/null | awk '/=> \//{print $3} /^\t\/.*ld-linux/{print $1}'
done | sort -u | while read -r lib; do
	mkdir -p "$root$(dirname "$lib")"
	cp -L "$lib" "$root$lib"
done
mkdir -p "$root/lib64"
[ -e "$root/lib64/ld-linux-x86-64.so.2" ] || cp -L /lib64/ld-linux-x86-64.so.2 "$root/lib64/"

(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) > "$out"
