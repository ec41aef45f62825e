#!/bin/sh
# test-module-pc.sh - a module built out of tree with nothing but
# `pkg-config lmms-module` (cflags, moduledir) from a `meson install` into a
# scratch DESTDIR, installed into that module directory, answers a call
# through the installed lmmsd. The same install also holds the man pages
# (when scdoc is there) and the bash completion.
# usage: test-module-pc.sh BUILD_DIR
set -eu
build=$1
dest=$(mktemp -d)
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$dest"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

meson install -C "$build" --destdir "$dest/root" --quiet >"$dest/install.log" 2>&1 ||
	{ cat "$dest/install.log" >&2; fail "meson install"; }

comp=$(find "$dest/root" -path '*/bash-completion/completions/lmmsctl')
[ -n "$comp" ] || fail "bash completion for lmmsctl was not installed"
if command -v scdoc >/dev/null 2>&1; then
	for page in man8/lmmsd.8 man1/lmmsctl.1 man5/lmmsd.conf.5 man7/lmms-module.7; do
		f=$(find "$dest/root" -path "*/share/man/$page")
		[ -n "$f" ] || fail "man page $page was not installed"
		grep -q '^\.TH' "$f" || fail "$f is not a man page"
	done
	echo "ok: man pages and bash completion installed"
else
	echo "ok: bash completion installed (no scdoc: no man pages to check)"
fi

pc=$(find "$dest/root" -name lmms-module.pc)
[ -n "$pc" ] || fail "lmms-module.pc was not installed"
prefix=$(pkg-config --variable=prefix "$pc")
# The .pc names the real prefix; point it at the DESTDIR copy, as one does
# for any relocated install.
export PKG_CONFIG_PATH="$(dirname "$pc")"
pc_args="--define-variable=prefix=$dest/root$prefix"
pkg-config --exists lmms-module || fail "pkg-config does not find lmms-module"
cflags=$(pkg-config $pc_args --cflags lmms-module)
moduledir=$(pkg-config $pc_args --variable=moduledir lmms-module)
[ -d "$moduledir" ] || fail "moduledir $moduledir is not where the modules were installed"
[ -f "$moduledir/echo.so" ] || fail "moduledir $moduledir holds no bundled module"
echo "ok: cflags '$cflags', moduledir $moduledir"

# The module, written here, far from the source tree.
mkdir "$dest/src"
cat >"$dest/src/greet.c" <<'C'
#include <lmms/lmms-module.h>
#include <stdio.h>

static int op_hello(const lmms_host *h, lmms_call *c, void *state)
{
	const char *who;
	size_t n;
	char out[128];
	int len;

	(void)state;
	if (h->arg_str(c, 0, &who, &n) < 0)
		return h->fail(c, LMMS_FAIL_PARAMS, "hello takes one string");
	len = snprintf(out, sizeof(out), "hello, %.*s", (int)(n > 100 ? 100 : n), who);
	return h->ret_str(c, out, (size_t)len);
}

static const lmms_op ops[] = {
	{ .name = "hello", .fn = op_hello, .flags = LMMS_OP_PURE, .doc = "greet someone" },
};

LMMS_MODULE(.name = "greet", .version = "1.0", LMMS_OPS(ops),
	    .description = "an out-of-tree module");
C
# shellcheck disable=SC2086 # cflags are words
cc -std=gnu11 -Wall -Werror -shared -fPIC -fvisibility=hidden $cflags \
	"$dest/src/greet.c" -o "$dest/src/greet.so" || fail "build with pkg-config cflags alone"
install -m 0755 "$dest/src/greet.so" "$moduledir/greet.so"
echo "ok: greet.so built with \`pkg-config --cflags lmms-module\` and installed"

lmmsd=$(find "$dest/root" -path '*/bin/lmmsd')
lmmsctl=$(find "$dest/root" -path '*/bin/lmmsctl')
libdir=$(dirname "$(find "$dest/root" -name 'liblmms-client.so.0')")
sock="$dest/s.sock"
"$lmmsd" --socket "$sock" --module-dir "$moduledir" 2>"$dest/lmmsd.log" &
pid=$!
i=0
until [ -S "$sock" ]; do
	i=$((i + 1))
	[ $i -le 200 ] || { cat "$dest/lmmsd.log" >&2; fail "installed lmmsd did not start"; }
	sleep 0.05
done
out=$(LD_LIBRARY_PATH=$libdir "$lmmsctl" -s "$sock" call greet.hello '"world"') ||
	{ cat "$dest/lmmsd.log" >&2; fail "greet.hello failed: $out"; }
[ "$out" = '"hello, world"' ] || fail "greet.hello answered $out"
kill "$pid"
wait "$pid" && st=0 || st=$?
pid=
[ "$st" = 0 ] || fail "lmmsd exited $st on SIGTERM"
echo "ok: the installed lmmsd loaded greet.so from moduledir and answered greet.hello"
