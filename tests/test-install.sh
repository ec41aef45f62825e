#!/bin/sh
# test-install.sh - `meson install` into a scratch DESTDIR puts every piece
# where it belongs, and the installed daemon, modules, client library and
# lmmsctl work together.
# usage: test-install.sh BUILD_DIR
set -eu
build=$1
dest=$(mktemp -d)
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$dest"
}
trap cleanup EXIT

meson install -C "$build" --destdir "$dest" --quiet >"$dest.log" 2>&1 || {
	cat "$dest.log" >&2; rm -f "$dest.log"; echo "FAIL: meson install" >&2; exit 1; }
rm -f "$dest.log"

find_one() { # pattern: the installed file (exactly one)
	found=$(find "$dest" -path "$1" | head -n 2)
	n=$(printf '%s\n' "$found" | grep -c . || true)
	if [ "$n" != 1 ]; then
		echo "FAIL: expected one installed $1, found: ${found:-none}" >&2
		exit 1
	fi
	printf '%s\n' "$found"
}
lmmsd=$(find_one '*/bin/lmmsd')
lmmsctl=$(find_one '*/bin/lmmsctl')
libclient=$(find_one '*/liblmms-client.so.0.*')
find_one '*/liblmms-client.so.0' >/dev/null # the soname link
find_one '*/include/lmms/lmms-module.h' >/dev/null
find_one '*/include/lmms/lmms-client.h' >/dev/null
find_one '*/pkgconfig/lmms-client.pc' >/dev/null
find_one '*/etc/lmms/lmmsd.conf' >/dev/null
find_one '*/systemd/system/lmmsd.socket' >/dev/null
find_one '*/systemd/system/lmmsd.service' >/dev/null
find_one '*/sysusers.d/lmms.conf' >/dev/null
hash=$(find_one '*/lmms/modules/hash.so')
moddir=$(dirname "$hash")
for m in echo json kv sqlite zstd; do find_one "*/lmms/modules/$m.so" >/dev/null; done
# test modules are never installed
if find "$dest" -name 'bigtable.so' | grep -q .; then
	echo "FAIL: a test module was installed" >&2; exit 1
fi
echo "ok: every piece installed"

# the installed template is what --check-config of the defaults prints, commented
"$lmmsd" --config "$(find_one '*/etc/lmms/lmmsd.conf')" --check-config >/dev/null

sock="$dest/s.sock"
"$lmmsd" --socket "$sock" --module-dir "$moddir" 2>"$dest/lmmsd.log" &
pid=$!
i=0
until [ -S "$sock" ]; do
	i=$((i + 1))
	if [ $i -gt 200 ]; then echo "FAIL: installed lmmsd did not start" >&2; cat "$dest/lmmsd.log" >&2; exit 1; fi
	sleep 0.05
done
out=$(LD_LIBRARY_PATH=$(dirname "$libclient") "$lmmsctl" -s "$sock" call hash.sha256 '"abc"')
if [ "$out" != '"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"' ]; then
	echo "FAIL: installed lmmsctl/lmmsd answered: $out" >&2; exit 1
fi
# lmmsctl must resolve the installed client library, not the build tree's
if ! LD_LIBRARY_PATH=$(dirname "$libclient") ldd "$lmmsctl" | grep -q "$(dirname "$libclient")"; then
	echo "FAIL: installed lmmsctl does not use the installed liblmms-client" >&2; exit 1
fi
kill "$pid"
wait "$pid" && st=0 || st=$?
pid=
if [ "$st" != 0 ]; then echo "FAIL: installed lmmsd exited $st on SIGTERM" >&2; exit 1; fi
echo "ok: installed lmmsd + modules + lmmsctl + liblmms-client answer hash.sha256"
