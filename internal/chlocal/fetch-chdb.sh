#!/bin/sh
# fetch-chdb.sh downloads libchdb.so (chDB, the ClickHouse engine as a
# library) once into a cache outside git and prints its path.
#
#   ${PIPELINED_CACHE:-$HOME/.cache/pipelined}/chdb/<version>/libchdb.so
#
# The version is pinned: keep CHDB_VERSION in sync with ChdbVersion in
# lib.go. The npm package @chdb/lib-linux-x64-gnu ships the library
# (~170 MB download, ~560 MB unpacked). Needs npm and tar.
set -eu

CHDB_VERSION=26.5.3
PACKAGE=@chdb/lib-linux-x64-gnu

dir="${PIPELINED_CACHE:-$HOME/.cache/pipelined}/chdb/$CHDB_VERSION"
lib="$dir/libchdb.so"
if [ -f "$lib" ]; then
	echo "$lib"
	exit 0
fi

case "$(uname -s)-$(uname -m)" in
Linux-x86_64) ;;
*)
	echo "fetch-chdb.sh: $PACKAGE is for Linux x86_64, not $(uname -s)-$(uname -m)" >&2
	exit 1
	;;
esac
command -v npm >/dev/null || {
	echo "fetch-chdb.sh: npm is required (apt-get install npm)" >&2
	exit 1
}

mkdir -p "$dir"
tmp="$(mktemp -d "$dir/.fetch.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT INT TERM
echo "fetch-chdb.sh: downloading $PACKAGE@$CHDB_VERSION (~170 MB)" >&2
(cd "$tmp" && npm pack --silent "$PACKAGE@$CHDB_VERSION" >/dev/null)
tar -xzf "$tmp"/*.tgz -C "$tmp" package/libchdb.so
mv "$tmp/package/libchdb.so" "$lib"
echo "$lib"
