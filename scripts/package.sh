#!/usr/bin/env bash
# package.sh: fedtl's Debian package, fedtl_VERSION_amd64.deb (CPack; CMakeLists.txt, the end),
# built in its own build directory without the test-only switches (FEDTL_TESTING,
# sanitizers, tests), the build dependencies installed first (scripts/deps.sh build).
# Usage: scripts/package.sh [OUTDIR]   (default: the build directory, build-deb)
# Prints the package's path on stdout. Environment: FEDTL_DEB_BUILD (build directory,
# default build-deb here), FEDTL_JOBS (parallel jobs, default 2).
# Install it with: apt-get install ./fedtl_VERSION_amd64.deb (README.md, section "Install").
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${FEDTL_DEB_BUILD:-$root/build-deb}
out=${1:-$build}
say() { printf 'package: %s\n' "$*" >&2; }

"$root/scripts/deps.sh" build
command -v dpkg-deb >/dev/null || { say "dpkg-deb not found: this builds a Debian package on Debian"; exit 1; }
say "configuring $build (release, no tests, no test switches)"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFEDTL_TESTS=OFF \
    -DFEDTL_TESTING=OFF -DFEDTL_SANITIZE=OFF >"$build.configure.log" 2>&1 ||
    { cat "$build.configure.log" >&2; exit 1; }
rm -f "$build.configure.log"
say "building fedtl, fedtl-coordinator, fedtl-client and the man pages"
cmake --build "$build" -j"${FEDTL_JOBS:-2}" --target fedtl fedtl-coordinator fedtl-client manpages >&2
# The shipped client has no test switch: its --help would list it.
if "$build/fedtl-client" --help | grep -q -- --test-attack; then
    say "$build/fedtl-client has the test-only --test-attack: FEDTL_TESTING is on there"
    exit 1
fi
# Nor the test builds' environment switches (FEDTL_TEST_SECAGG_DIE_ROUND, FEDTL_TEST_RECORD_DIR).
for prog in fedtl fedtl-coordinator fedtl-client; do
    if grep -q FEDTL_TEST_ "$build/$prog"; then
        say "$build/$prog has a test-only FEDTL_TEST_ switch: FEDTL_TESTING is on there"
        exit 1
    fi
done
rm -f "$build"/fedtl_*.deb
(cd "$build" && cpack -G DEB >&2)
mkdir -p "$out"
deb=$(ls "$build"/fedtl_*_*.deb)
[ "$(cd "$out" && pwd)" = "$(cd "$build" && pwd)" ] || cp "$deb" "$out/"
say "$(dpkg-deb -f "$deb" Package Version Architecture | tr '\n' ' ')"
echo "$out/$(basename "$deb")"
