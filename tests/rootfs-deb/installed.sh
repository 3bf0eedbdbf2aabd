#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# Inside a guest booted over a root where scripts/deb-install-check.sh
# installed the Debian packages of `make deb` (run-guest.sh --root): use
# them as a user does, from the installed files only.  DKMS built the
# module for this guest's kernel on the host, in that same root; here it
# must be the module modprobe and kheapctl find, load, and serve the demo
# (kheapctl load, status, map, unload), a C program built against
# libkheap-dev (in the root, by the host script: the path is in
# $KHEAP_DEB_HELLO's file) and the Python example of python3-kheap.
set -u
fail() {
	echo "FAIL: $*"
	# The runner unloads kheap after every test: leave one loaded.
	lsmod | grep -q '^kheap ' || insmod "$KHEAP_KO" size=64M
	exit 1
}
step() { echo "\$ $*"; "$@" || fail "$* (exit $?)"; }
unset KHEAP_LIBRARY PYTHONPATH
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
cd "$KHEAP_TMP" || exit 1
hello=/var/tmp/kheap-deb/hello
[ -x "$hello" ] || { echo "no $hello: run by scripts/deb-install-check.sh only"; exit 4; }

# The runner loaded the tree's kheap.ko: the package's module replaces it.
rmmod kheap || fail "rmmod of the tree's kheap"
ko=$(modinfo -n kheap) || fail "modinfo finds no kheap module"
case "$ko" in
/lib/modules/"$KHEAP_KREL"/updates/dkms/kheap.ko*) echo "# module: $ko" ;;
*) fail "modinfo kheap: $ko is not DKMS's" ;;
esac

# The demo, with the installed kheapctl (it loads the installed module).
[ "$(command -v kheapctl)" = /usr/sbin/kheapctl ] || fail "kheapctl: $(command -v kheapctl)"
step kheapctl load size=64M
[ "$(cat /sys/class/misc/kheap/pool_size)" = 67108864 ] || fail "pool is not 64 MiB"
step kheapctl status
step kheapctl map
chmod 0666 /dev/kheap

# libkheap-dev: built on the host against the installed headers, .pc and
# library; it runs against the installed libkheap.so.1.
ldd "$hello" | grep -Eq "=> (/usr)?/lib/x86_64-linux-gnu/libkheap.so.1 " || fail "hello: $(ldd "$hello" | grep kheap)"
step "$hello"

# python3-kheap: the installed package and its example.
where=$(/usr/bin/python3 -c 'import kheap; print(kheap.__file__)') || fail "import kheap"
[ "$where" = /usr/lib/python3/dist-packages/kheap/__init__.py ] ||
	fail "kheap imported from $where"
step /usr/bin/python3 /usr/share/doc/python3-kheap/examples/dma_buffers.py
step kheapctl unload
insmod "$KHEAP_KO" size=64M || fail "insmod of the tree's kheap.ko"
echo "# the installed module, kheapctl, libkheap-dev and python3-kheap: fine"
