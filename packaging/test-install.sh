#!/usr/bin/env bash
# test-install.sh: fedtl's Debian package from build to a finished federation in a clean
# debian:bookworm container. Builds the package (scripts/package.sh), makes a Docker engine and
# the debian:bookworm image available (scripts/compose.sh engine), then runs
# packaging/container-check.sh in a fresh container: apt-get install ./fedtl_*.deb, the checks
# of what the package promises, and a federation of the packaged coordinator and two branches.
#
#   packaging/test-install.sh RESULTS_DIR
#
# RESULTS_DIR receives the ledger (rounds.jsonl), state.json and every log. Environment:
# FEDTL_DEB (an already built package to test instead of building one), ROUNDS (3),
# VERIFY_UNITS (1), FEDTL_DEBIAN_MIRROR (as for compose.sh). Exit status: 0 every check passed,
# 1 a check failed, 2 bad usage, 3 no Docker engine can be had here.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[ $# = 1 ] || { echo "usage: packaging/test-install.sh RESULTS_DIR" >&2; exit 2; }
results=$1
mkdir -p "$results"
results=$(cd "$results" && pwd)
say() { printf 'test-install: %s\n' "$*" >&2; }
fm=/usr/share/datasets/fashion-mnist
[ -f $fm/train-images-idx3-ubyte.gz ] || { say "$fm missing (apt-get install dataset-fashion-mnist)"; exit 1; }

rc=0
FEDTL_COMPOSE_LOGS=$results/engine "$root/scripts/compose.sh" engine || rc=$?
[ $rc = 0 ] || exit $rc
# The host's Debian mirror, for apt in the container (compose.sh's own apt_sources).
apt_src=$(bash -c 'eval "$(sed -n "/^apt_entries() {/,/^}/p; /^apt_sources() {/,/^}/p" "$1")"
                   apt_sources bookworm; printf %s "$apt_sources_value"' _ "$root/scripts/compose.sh")

if [ -n "${FEDTL_DEB:-}" ]; then
    deb=$FEDTL_DEB
else
    deb=$("$root/scripts/package.sh" "$results/pkg")
fi
[ -f "$deb" ] || { say "no package at $deb"; exit 1; }
pkgdir=$(mktemp -d "${TMPDIR:-/tmp}/fedtl-pkg.XXXXXX")
trap 'rm -rf "$pkgdir"' EXIT
cp "$deb" "$pkgdir/"
chmod 0755 "$pkgdir" && chmod 0644 "$pkgdir"/*.deb

name=fedtl-pkgtest-$$
say "installing $(basename "$deb") in a fresh debian:bookworm container ($name)"
rc=0
docker run --rm --name "$name" \
    -e APT_SOURCES="$apt_src" -e ROUNDS="${ROUNDS:-3}" -e VERIFY_UNITS="${VERIFY_UNITS:-1}" \
    -v "$pkgdir:/pkg:ro" -v "$fm:$fm:ro" -v "$results:/results" \
    -v "$root/docker/apt-sources.sh:/usr/local/sbin/fedtl-apt-sources:ro" \
    -v "$root/packaging/container-check.sh:/usr/local/sbin/fedtl-container-check:ro" \
    debian:bookworm bash /usr/local/sbin/fedtl-container-check || rc=$?
[ $rc = 0 ] || { say "the check in the container failed ($rc)"; exit 1; }
say "every check passed"
