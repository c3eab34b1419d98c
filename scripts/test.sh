#!/usr/bin/env bash
# Install what is missing, configure, build and run every test through ctest.
# Usage: scripts/test.sh [--sanitize]   (--sanitize: AddressSanitizer + UBSan build in build-asan/)
# The test build is not the shipped one: -DFEDTL_TESTING=ON compiles fedtl-client's test-only
# malicious-branch switch (client/fl_attack.h) that test_attack and bench/strategies.sh use, and
# the FEDTL_TEST_* environment switches of both programs (test_secagg_e2e, test_secagg_view);
# scripts/demo.sh and the README build without them.
# Exit status: ctest's.
set -euo pipefail
cd "$(dirname "$0")/.."

build=build
flags=(-DFEDTL_TESTS=ON -DFEDTL_TESTING=ON)
if [ "${1:-}" = "--sanitize" ]; then
    build=build-asan
    flags+=(-DFEDTL_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug)
fi

scripts/deps.sh build test
scripts/peers.sh
cmake -S . -B "$build" "${flags[@]}" >/dev/null
cmake --build "$build" -j"$(nproc)"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ctest --test-dir "$build" --output-on-failure -j"$(nproc)"
