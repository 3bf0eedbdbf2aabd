#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# The Debian packages (`make deb`, built on the host before the boot, in
# build/deb/) as a user gets them: dpkg -i into the guest's overlay, DKMS
# builds kheap for this kernel, modprobe loads that module, and the demo
# (kheapctl load, status, map, unload), a C program built with
# pkg-config against libkheap-dev, and the Python example run from the
# installed files only.  Then dpkg --purge, and nothing may be left: no
# file dpkg listed, no python package, no DKMS tree or module, no group.
#
# Where DKMS compiles: scripts/deb.sh (make deb) has DKMS build the
# packaged source for this kernel on the host and leaves a binaries-only
# DKMS tarball next to the packages; with it, autoinstall is off during
# dpkg -i and this test runs dkms ldtarball and install itself.
# Without it, the package's postinst has DKMS compile kheap.ko here:
# measured under TCG on a loaded 2-core machine, a plain build of kheap.ko
# in this guest took 585 s, too long for make check's guest.  Each dpkg
# run reads dpkg's database over 9p: dpkg -i of the packages took about
# 110 to 150 s.  With the tarball, dkms ldtarball + install (depmod over
# 9p) took about 13 minutes more on a loaded machine, so this test is not
# in tests/rootfs/ (make check's rootfs guest has 900 s for everything).
# make check-clients runs it; alone, after make deb, inside a rootfs guest:
#   scripts/rootfs-tests.sh KHEAP_KO tests/rootfs-slow/deb.sh
# (a RUNSCRIPT for scripts/run-guest.sh --rootfs --timeout 2400).
set -u
debs=$KHEAP_TOP/build/deb
pkgs="kheap-dkms libkheap1 libkheap-dev kheap-tools python3-kheap"
version=$(cat "$KHEAP_TOP/VERSION")
files=""
for p in $pkgs; do
	f=$(ls "$debs/${p}_${version}_"*.deb 2>/dev/null | head -n 1)
	if [ -z "$f" ]; then
		echo "no $p package in $debs: run make deb before the boot"
		exit 4
	fi
	files="$files $f"
done
fail() {
	echo "FAIL: $*"
	# The runner unloads kheap after every test: leave one loaded.
	lsmod | grep -q '^kheap ' || insmod "$KHEAP_KO" size=64M
	exit 1
}
step() { echo "\$ $*"; "$@" || fail "$* (exit $?)"; }
# Programs and libraries from the packages only: no repository on the
# paths, no KHEAP_LIBRARY, and a scratch directory as working directory.
unset KHEAP_LIBRARY PYTHONPATH
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
cd "$KHEAP_TMP" || exit 1

# The runner loaded the tree's kheap.ko: the package's module replaces it.
rmmod kheap || fail "rmmod of the tree's kheap"
# man-db's index update is minutes under TCG and tests nothing here.
rm -f /var/lib/man-db/auto-update

prebuilt=$debs/kheap-dkms-binaries-$KHEAP_KREL.tar.gz
[ -f "$prebuilt" ] && touch /etc/dkms/no-autoinstall
start=$(date +%s)
step dpkg -i $files
echo "# dpkg -i: $(($(date +%s) - start)) s"
if [ -f "$prebuilt" ]; then
	rm -f /etc/dkms/no-autoinstall
	start=$(date +%s)
	# ldtarball adds the package's /usr/src tree and the binaries.
	step dkms ldtarball --archive="$prebuilt"
	step dkms install "kheap/$version" -k "$KHEAP_KREL"
	echo "# DKMS, binaries built on the host from the package's source: $(($(date +%s) - start)) s"
fi
for p in $pkgs; do
	dpkg-query -W -f='${db:Status-Status}\n' "$p" | grep -qx installed ||
		fail "$p not installed"
done
dkms status kheap | grep -q "$KHEAP_KREL.*installed" || fail "dkms status: $(dkms status kheap)"
getent group kheap >/dev/null || fail "no group kheap after install"
ko=$(modinfo -n kheap) || fail "modinfo finds no kheap module"
case "$ko" in
/lib/modules/"$KHEAP_KREL"/updates/dkms/kheap.ko*) echo "# module: $ko" ;;
*) fail "modinfo kheap: $ko is not DKMS's" ;;
esac

# The demo, with the installed kheapctl (it loads the installed module).
step kheapctl load size=64M
[ "$(cat /sys/class/misc/kheap/pool_size)" = 67108864 ] || fail "pool is not 64 MiB"
step kheapctl status
step kheapctl map
chmod 0666 /dev/kheap

# libkheap-dev: a program built against the installed headers and library.
cat > hello.c <<'C'
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
step sh -c 'cc -Wall -Wextra -Werror -o hello hello.c $(pkg-config --cflags --libs kheap)'
readelf -d hello | grep -q 'NEEDED.*libkheap.so.1' || fail "hello does not link libkheap.so.1"
step ./hello

# python3-kheap: the installed package and its example.
where=$(/usr/bin/python3 -c 'import kheap; print(kheap.__file__)') || fail "import kheap"
[ "$where" = /usr/lib/python3/dist-packages/kheap/__init__.py ] ||
	fail "kheap imported from $where"
step /usr/bin/python3 /usr/share/doc/python3-kheap/examples/dma_buffers.py
step kheapctl unload

# Purge: nothing of ours may stay.
dpkg -L $pkgs > listed.txt 2>/dev/null
start=$(date +%s)
step dpkg --purge python3-kheap kheap-tools libkheap-dev libkheap1 kheap-dkms
echo "# dpkg --purge: $(($(date +%s) - start)) s"
left=""
while read -r f; do
	# Directories other packages share (/usr, /usr/lib, ...) stay.
	[ -e "$f" ] && [ ! -d "$f" ] && left="$left $f"
done < listed.txt
[ -z "$left" ] || fail "left after purge:$left"
for d in /usr/lib/python3/dist-packages/kheap /var/lib/dkms/kheap \
	/usr/src/kheap-"$version" /usr/share/doc/python3-kheap; do
	[ ! -e "$d" ] || fail "$d left after purge"
done
ls /lib/modules/*/updates/dkms/kheap.ko* 2>/dev/null && fail "a DKMS module is left"
modinfo -n kheap 2>/dev/null && fail "modinfo still finds kheap"
getent group kheap && fail "group kheap left after purge"
for p in $pkgs; do
	s=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)
	[ -z "$s" ] || [ "$s" = not-installed ] || fail "$p is $s after purge"
done
echo "# install, DKMS, demo, C and Python from the packages, purge: fine"
# The runner unloads kheap after every test.
insmod "$KHEAP_KO" size=64M || fail "insmod of the tree's kheap.ko"
