#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# Build the debug guest kernel of `make check-debug`: Debian's 6.12 source
# (linux-source-6.12) with x86_64_defconfig + kvm_guest.config + the
# detectors of scripts/debug-kernel.config (KASAN, lockdep, kmemleak,
# DMA-API debugging, fault injection, ...).  Cached outside the tree, in
# /var/cache/kheap/debug-VERSION-HASH (VERSION: the source package's,
# HASH: of the fragment), so only the first run pays: 35 to 60 minutes on
# two cores.  The build runs at nice 19 with two jobs, so guests of other
# runs on the machine keep their CPU.
#
# Prints the cache directory when done; in it:
#   obj/               the O= build tree (make -C obj M=... for modules)
#   obj/arch/x86/boot/bzImage
#   mod/lib/modules/KREL/   the kernel's modules, depmod'ed
#   krel               the release string KREL
#   build.log, build-seconds
# Usage: scripts/debug-kernel.sh [--cached]
#   --cached  only print the directory if the kernel is built (else exit 1)
# Environment: KHEAP_CACHE (default /var/cache/kheap), KHEAP_DEBUG_JOBS
# (default 2).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
fragment=$here/debug-kernel.config
tarball=/usr/src/linux-source-6.12.tar.xz
cache=${KHEAP_CACHE:-/var/cache/kheap}
jobs=${KHEAP_DEBUG_JOBS:-2}

[ -f "$tarball" ] || { echo "debug-kernel.sh: $tarball missing (scripts/deps.sh)" >&2; exit 1; }
version=$(dpkg-query -W -f='${Version}' linux-source-6.12)
hash=$(sha256sum "$fragment" | cut -c1-12)
dir=$cache/debug-$version-$hash

if [ -f "$dir/done" ]; then
	echo "$dir"
	exit 0
fi
[ "${1:-}" != "--cached" ] || exit 1

mkdir -p "$cache"
# One build at a time per key: a second caller waits for the first.
exec 9> "$cache/debug-$version-$hash.lock"
flock 9
if [ -f "$dir/done" ]; then
	echo "$dir"
	exit 0
fi

start=$(date +%s)
rm -rf "$dir"
mkdir -p "$dir/src" "$dir/obj" "$dir/mod"
log=$dir/build.log
echo "debug-kernel.sh: building in $dir (log: $log)" >&2
tar -xJf "$tarball" -C "$dir/src" --strip-components=1

kmake() {
	nice -n 19 make -C "$dir/src" O="$dir/obj" -j"$jobs" "$@" >> "$log" 2>&1
}
kmake x86_64_defconfig
kmake kvm_guest.config

# Each fragment line through scripts/config, then olddefconfig.
cfg() {
	"$dir/src/scripts/config" --file "$dir/obj/.config" "$@"
}
grep -E '^(CONFIG_|# CONFIG_.* is not set)' "$fragment" | while IFS= read -r line; do
	case "$line" in
	"# CONFIG_"*) name=${line#\# CONFIG_}; cfg --disable "${name%% *}" ;;
	*=y) name=${line%%=*}; cfg --enable "${name#CONFIG_}" ;;
	*=m) name=${line%%=*}; cfg --module "${name#CONFIG_}" ;;
	*=\"*) name=${line%%=*}; val=${line#*=\"}; cfg --set-str "${name#CONFIG_}" "${val%\"}" ;;
	*=*) name=${line%%=*}; cfg --set-val "${name#CONFIG_}" "${line#*=}" ;;
	esac
done
kmake olddefconfig

# Refuse a fragment that olddefconfig did not keep (an unmet dependency).
bad=0
grep -E '^(CONFIG_|# CONFIG_.* is not set)' "$fragment" | {
	while IFS= read -r line; do
		case "$line" in
		"# CONFIG_"*)
			name=${line#\# }
			name=${name%% *}
			if grep -q "^$name=" "$dir/obj/.config"; then
				echo "debug-kernel.sh: $name stayed set" >&2
				bad=1
			fi ;;
		*)
			if ! grep -qxF "$line" "$dir/obj/.config"; then
				echo "debug-kernel.sh: $line not kept by olddefconfig" >&2
				bad=1
			fi ;;
		esac
	done
	exit "$bad"
} || { echo "debug-kernel.sh: fragment not applied; see $dir/obj/.config" >&2; exit 1; }

kmake bzImage modules || { tail -n 40 "$log" >&2; exit 1; }
kmake INSTALL_MOD_PATH="$dir/mod" modules_install
make -s -C "$dir/src" O="$dir/obj" kernelrelease > "$dir/krel"
echo $(($(date +%s) - start)) > "$dir/build-seconds"
touch "$dir/done"
echo "$dir"
