#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# The Debian packages of `make deb`, as a user gets them, in a throwaway
# root: an overlay over the host's / (writes in a tmpfs, in a mount
# namespace of its own, so the host itself is never changed).
#   1. chroot: dpkg -i of all five packages; DKMS builds kheap.ko for the
#      guest's kernel KREL from the packaged source (dkms install -k KREL,
#      against that kernel's installed headers); the kheap group exists;
#      a C program is built with pkg-config against libkheap-dev;
#   2. a KREL guest boots over that very root (run-guest.sh --root) and
#      runs tests/rootfs-deb/installed.sh: DKMS's module loaded by the
#      installed kheapctl, the demo, the C program, the Python example;
#   3. chroot: dpkg --purge, and nothing may be left: no file dpkg listed,
#      no python package, no DKMS tree or module, no group.
# KTAP on stdout, one test per step.  Needs root, overlayfs and unshare;
# skips otherwise.  About two minutes (the guest is most of it).
# Usage: scripts/deb-install-check.sh DEBDIR KREL WORKDIR
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
debs=$1
krel=$2
out=$3
pkgs="kheap-dkms libkheap1 libkheap-dev kheap-tools python3-kheap"
version=$(cat "$top/VERSION")

if [ "${4:-}" != --inner ]; then
	echo "TAP version 13"
	echo "1..3"
	why=""
	[ "$(id -u)" -eq 0 ] || why="not root"
	grep -qw overlay /proc/filesystems || why="no overlayfs in the host kernel"
	command -v unshare >/dev/null || why="no unshare"
	for p in $pkgs; do
		ls "$debs/${p}_${version}_"*.deb >/dev/null 2>&1 || why="no $p package in $debs"
	done
	if [ -n "$why" ]; then
		for i in 1 2 3; do echo "ok $i Debian packages # SKIP $why"; done
		echo "# Totals: pass:0 fail:0 xfail:0 xpass:0 skip:3 error:0"
		exit 0
	fi
	mkdir -p "$out"
	unshare -m --propagation private "$0" "$debs" "$krel" "$out" --inner
	exit $?
fi

# --- inside the mount namespace ----------------------------------------------
n=0
failed=0
result() { # STATUS NAME
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then echo "ok $n $2"; else echo "not ok $n $2"; failed=$((failed + 1)); fi
}
w=$(mktemp -d /tmp/kheap-deb.XXXXXX)
r=$w/root
cleanup() {
	for m in dev/pts dev sys proc; do umount "$r/$m" 2>/dev/null; done
	umount "$r$top" 2>/dev/null
	umount "$r" 2>/dev/null
	umount "$w" 2>/dev/null
	rmdir "$w" 2>/dev/null
}
trap cleanup EXIT
mount -t tmpfs -o size=4G,mode=0755 kheapdeb "$w" &&
	mkdir "$w/upper" "$w/work" "$r" &&
	mount -t overlay -o "lowerdir=/,upperdir=$w/upper,workdir=$w/work" overlay "$r" || {
	for i in 1 2 3; do echo "not ok $i Debian packages: no overlay root"; done
	echo "# Totals: pass:0 fail:3 xfail:0 xpass:0 skip:0 error:0"
	exit 1
}
# An overlay does not reach into the host's other mounts: the tree must
# be visible in the root at its own path.
[ "$(stat -c %d "$top")" = "$(stat -c %d /)" ] || mount --bind "$top" "$r$top"
binds() {
	mount -t proc proc "$r/proc" && mount --bind /sys "$r/sys" &&
		mount --bind /dev "$r/dev" && mount --bind /dev/pts "$r/dev/pts"
}
unbinds() { for m in dev/pts dev sys proc; do umount "$r/$m"; done; }
inroot() { chroot "$r" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
	DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 "$@"; }
say() { printf '# %s\n' "$*"; }
files=""
for p in $pkgs; do
	files="$files $(ls "$debs/${p}_${version}_"*.deb | head -n 1)"
done

# --- 1. install --------------------------------------------------------------
install_step() {
	binds || return 1
	# No daemons started from the chroot; no man-db index rebuild.
	printf '#!/bin/sh\nexit 101\n' > "$r/usr/sbin/policy-rc.d"
	chmod 0755 "$r/usr/sbin/policy-rc.d"
	rm -f "$r/var/lib/man-db/auto-update"
	start=$(date +%s)
	# shellcheck disable=SC2086
	inroot dpkg -i $files 2>&1 | sed 's/^/# /'
	for p in $pkgs; do
		inroot dpkg-query -W -f='${db:Status-Status}\n' "$p" | grep -qx installed ||
			{ say "$p is not installed"; return 1; }
	done
	say "dpkg -i: $(($(date +%s) - start)) s"
	start=$(date +%s)
	# The postinst builds for the running kernel (the host's, whose
	# headers are absent); the guest's kernel is asked for by name.
	inroot dkms status -k "$krel" kheap 2>/dev/null | grep -q installed ||
		inroot dkms install "kheap/$version" -k "$krel" 2>&1 | sed 's/^/# /'
	inroot dkms status -k "$krel" kheap 2>/dev/null | grep -q "kheap/$version.*$krel.*installed" ||
		{ say "dkms status: $(inroot dkms status kheap 2>&1)"; return 1; }
	say "DKMS build for $krel: $(($(date +%s) - start)) s"
	inroot getent group kheap >/dev/null || { say "no group kheap"; return 1; }
	ko=$(inroot modinfo -k "$krel" -n kheap) || { say "modinfo finds no kheap"; return 1; }
	case "$ko" in
	/lib/modules/"$krel"/updates/dkms/kheap.ko*) say "module: $ko" ;;
	*) say "modinfo kheap: $ko is not DKMS's"; return 1 ;;
	esac
	mkdir -p "$r/var/tmp/kheap-deb"
	cat > "$r/var/tmp/kheap-deb/hello.c" <<'C'
#include <inttypes.h>
#include <stdio.h>
#include <kheap.h>

int main(void)
{
	char *p = kheap_malloc(1 << 20);

	if (!p || !kheap_phys(p) || kheap_phys(p + 4096) != kheap_phys(p) + 4096 ||
	    kheap_sync(p, 1 << 20, KHEAP_SYNC_FOR_DEVICE))
		return 1;
	printf("kheap_malloc: %p at physical 0x%" PRIx64 "\n", (void *)p, kheap_phys(p));
	kheap_free(p);
	return 0;
}
C
	inroot sh -c 'cd /var/tmp/kheap-deb && cc -Wall -Wextra -Werror -o hello hello.c $(pkg-config --cflags --libs kheap)' 2>&1 |
		sed 's/^/# /'
	[ -x "$r/var/tmp/kheap-deb/hello" ] || { say "hello.c did not build against libkheap-dev"; return 1; }
	inroot dpkg -L $pkgs > "$w/listed.txt" 2>/dev/null
	unbinds
}
install_step
s1=$?
result $s1 "Debian packages: dpkg -i in a chroot, DKMS builds kheap.ko for $krel, a program builds against libkheap-dev"

# --- 2. use, in a guest over that root ------------------------------------------
s2=1
if [ $s1 -eq 0 ]; then
	ko=$top/build/$krel/src/module/kheap.ko
	stage=$out/deb-stage
	rm -rf "$stage" && mkdir -p "$stage/bin"
	gcc -O2 -static -Wall -Wextra -Werror -o "$stage/bin/guest-exit" "$top/scripts/guest-exit.c" &&
		"$top/scripts/mkinitramfs.sh" "$krel" "$stage" "$out/deb.cpio" > "$out/deb-mkinitramfs.txt" 2>&1
	echo "$top/scripts/rootfs-tests.sh $ko $top/tests/rootfs-deb/installed.sh" > "$out/run-deb.sh"
	"$top/scripts/run-guest.sh" --quiet --root "$r" --timeout "${KHEAP_DEB_GUEST_TIMEOUT:-900}" \
		"$krel" "$out/deb.cpio" "$out/run-deb.sh" "$out/console-deb.log"
	s2=$?
	# The guest's own KTAP totals are not ours to count (ktap-sum.sh).
	grep -v '^\[ *[0-9]*\.[0-9]*\]' "$out/console-deb.log" | tr -d '\r' |
		grep -v 'Totals:' | sed 's/^/# /'
	grep -q '^ok 1 installed' "$out/console-deb.log" || s2=1
fi
result $s2 "Debian packages: in a $krel guest over that root, the installed kheapctl loads DKMS's module; demo, C program and Python example run"

# --- 3. purge ------------------------------------------------------------------
purge_step() {
	binds || return 1
	# shellcheck disable=SC2086
	inroot dpkg --purge python3-kheap kheap-tools libkheap-dev libkheap1 kheap-dkms 2>&1 |
		sed 's/^/# /'
	left=""
	while read -r f; do
		# Directories other packages share (/usr, /usr/lib, ...) stay.
		[ -e "$r$f" ] && [ ! -d "$r$f" ] && left="$left $f"
	done < "$w/listed.txt"
	[ -z "$left" ] || { say "left after purge:$left"; return 1; }
	for d in /usr/lib/python3/dist-packages/kheap /var/lib/dkms/kheap \
		/usr/src/kheap-"$version" /usr/share/doc/python3-kheap; do
		[ ! -e "$r$d" ] || { say "$d left after purge"; return 1; }
	done
	if ls "$r"/lib/modules/*/updates/dkms/kheap.ko* >/dev/null 2>&1; then
		say "a DKMS module is left"; return 1
	fi
	! inroot getent group kheap >/dev/null || { say "group kheap left after purge"; return 1; }
	for p in $pkgs; do
		st=$(inroot dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)
		[ -z "$st" ] || [ "$st" = not-installed ] || { say "$p is $st after purge"; return 1; }
	done
	unbinds
}
s3=1
if [ $s1 -eq 0 ]; then
	purge_step
	s3=$?
fi
result $s3 "Debian packages: dpkg --purge leaves nothing behind"
echo "# Totals: pass:$((n - failed)) fail:$failed xfail:0 xpass:0 skip:0 error:0"
[ $failed -eq 0 ]
