#!/usr/bin/env bash
# Build the libFuzzer targets of fuzz/ (clang, ASan + UBSan) in build-fuzz/ and run each one,
# one after the other, for SECONDS on a copy of its seed corpus fuzz/corpus/<target>/.
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]   (SECONDS default 60; targets default: all of
#        wire adapter base idx csv table config client_config image onnx)
# Prints per target: executions, coverage (libFuzzer's cov:), new corpus units, crashes.
# Crash, leak, timeout and OOM inputs go to build-fuzz/artifacts/<target>/, logs to
# build-fuzz/logs/<target>.log. Exit status: 0 no crash, 1 some target crashed, 2 bad usage.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-60}
case "$secs" in '' | *[!0-9]*)
    echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2
    exit 2
    ;;
esac
[ $# -gt 0 ] && shift
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(wire adapter base idx csv table config client_config image onnx)
build=build-fuzz

# Dependencies: fedtl's own, then clang and its compiler-rt (libFuzzer, sanitizer runtimes).
scripts/deps.sh build
if ! command -v clang >/dev/null ||
    ! echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }' |
    clang -x c -fsanitize=fuzzer,address,undefined -o /dev/null - 2>/dev/null; then
    pkgs=(clang)
    # Debian 12 ships libFuzzer and the sanitizer runtimes apart from the compiler.
    v=$(apt-cache depends clang 2>/dev/null | sed -n 's/.*Depends: clang-\([0-9]\+\)$/\1/p' | head -n1)
    [ -n "$v" ] && apt-cache show "libclang-rt-$v-dev" >/dev/null 2>&1 && pkgs+=("libclang-rt-$v-dev")
    echo "fedtl: installing ${pkgs[*]}" >&2
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "fedtl: need root or sudo to install: ${pkgs[*]}" >&2; exit 1; }
        sudo="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi

CC=clang cmake -S . -B "$build" -DFEDTL_FUZZ=ON -DFEDTL_TESTS=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" --target fuzz -j"$(nproc)" >/dev/null

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export OPENBLAS_NUM_THREADS=1

mkdir -p "$build/logs" "$build/artifacts" "$build/corpus"
failed=0
printf '%-13s %12s %8s %8s %8s\n' target execs cov new crashes
for t in "${targets[@]}"; do
    bin="$build/fuzz_$t"
    if [ ! -x "$bin" ] || [ ! -d "fuzz/corpus/$t" ]; then
        echo "fuzz.sh: no target '$t' (expected $bin and fuzz/corpus/$t/)" >&2
        exit 2
    fi
    work="$build/corpus/$t"
    art="$build/artifacts/$t"
    log="$build/logs/$t.log"
    rm -rf "$work"
    mkdir -p "$work" "$art"
    cp fuzz/corpus/"$t"/* "$work"/
    # Every input that once crashed a target must keep passing.
    if [ -d "fuzz/regressions/$t" ] && ! "$bin" fuzz/regressions/"$t"/* >"$build/logs/$t.regressions.log" 2>&1; then
        echo "fuzz.sh: $t: a regression input fails again: see $build/logs/$t.regressions.log" >&2
        failed=1
    fi
    before=$(find "$art" -type f | wc -l)
    rc=0
    "$bin" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$art/" "$work" >"$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
    [ -z "$execs" ] && execs=$(sed -n 's/^#\([0-9]*\).*/\1/p' "$log" | tail -n1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n1 | cut -d' ' -f2)
    new=$(sed -n 's/^stat::new_units_added: *//p' "$log" | tail -n1)
    crashes=$(($(find "$art" -type f | wc -l) - before))
    if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then
        crashes=1 # died without writing an artefact (e.g. the harness itself)
    fi
    printf '%-13s %12s %8s %8s %8s\n' "$t" "${execs:-?}" "${cov:-?}" "${new:-?}" "$crashes"
    if [ "$crashes" -gt 0 ]; then
        failed=1
        echo "  crashed: see $log; inputs in $art/" >&2
        grep -m1 -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error)' "$log" >&2 || true
    fi
done
exit "$failed"
