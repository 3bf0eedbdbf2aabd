#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# Pack a guest initramfs for kernel KREL: busybox, scripts/guest-init.sh as
# /init, everything in STAGEDIR under /kheap, the shared libraries that the
# staged programs need, and the kernel's own helper modules (loop, for the
# O_DIRECT tests), decompressed because busybox insmod wants plain .ko files.
# Usage: scripts/mkinitramfs.sh KREL STAGEDIR OUT.cpio
set -eu
krel=$1
stage=$2
out=$3
here=$(cd "$(dirname "$0")" && pwd)

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/sbin" "$root/etc" "$root/proc" "$root/sys" \
	"$root/dev" "$root/tmp" "$root/run" "$root/kheap/modules" \
	"$root/lib/modules/$krel"
cp /bin/busybox "$root/bin/busybox"
cp "$here/guest-init.sh" "$root/init"
chmod 0755 "$root/init"
cp -a "$stage/." "$root/kheap/"
echo "root:x:0:0:root:/:/bin/sh" > "$root/etc/passwd"
echo "nobody:x:65534:65534:nobody:/:/bin/sh" >> "$root/etc/passwd"
echo "root:x:0:" > "$root/etc/group"

# Helper modules of the guest kernel itself.
for name in loop; do
	ko=$(find "/lib/modules/$krel/kernel" -name "$name.ko*" | head -n 1)
	[ -n "$ko" ] || continue
	case "$ko" in
	*.xz) xz -dc "$ko" > "$root/kheap/modules/$name.ko" ;;
	*.zst) zstd -qdc "$ko" > "$root/kheap/modules/$name.ko" ;;
	*) cp "$ko" "$root/kheap/modules/$name.ko" ;;
	esac
done

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
