#!/usr/bin/env bash
# memcheck.sh: valgrind memcheck over fedtl end to end. Builds a separate non-sanitized Debug
# build (build-memcheck/), then, on tiny synthetic data (an mlp base), runs under valgrind:
#   fedtl pretrain, finetune (lora), eval, predict, and every fedtl call simulate.sh makes
#   (keygen, partition); a whole federation through scripts/simulate.sh (2 branches, 2 rounds,
#   CurveZMQ) with fedtl-coordinator and branch-00 under valgrind (branch-01 runs natively).
# Prints one line per process: errors and definitely-lost bytes. Exit status: 0 when every
# process ran clean, 1 on any error, definite leak, missing valgrind summary or failed run,
# 2 on bad usage or a missing tool.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: scripts/memcheck.sh [--work DIR] [--keep] [--no-build]
  --work DIR   scratch directory (default: a new one under $TMPDIR or /tmp)
  --keep       keep the scratch directory (valgrind logs in DIR/vg/) even when all is clean
  --no-build   use build-memcheck/ as it is
EOF
}

root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build-memcheck
work="" keep=0 do_build=1
while [ $# -gt 0 ]; do
    case $1 in
    -h | --help) usage; exit 0 ;;
    --keep) keep=1; shift ;;
    --no-build) do_build=0; shift ;;
    --work) [ $# -ge 2 ] || { usage >&2; exit 2; }; work=$2; shift 2 ;;
    *) echo "memcheck.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done
command -v valgrind >/dev/null || { echo "memcheck.sh: valgrind missing (apt-get install valgrind)" >&2; exit 2; }

if [ "$do_build" = 1 ]; then
    echo "memcheck: building $build (Debug, no sanitizers)" >&2
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Debug -DFEDTL_SANITIZE=OFF -DFEDTL_TESTS=OFF >/dev/null
    cmake --build "$build" -j"$(nproc)" --target fedtl fedtl-coordinator fedtl-client >/dev/null
fi
if [ -z "$work" ]; then
    work=$(mktemp -d "${TMPDIR:-/tmp}/fedtl-memcheck-XXXXXX")
else
    mkdir -p "$work"
    work=$(cd "$work" && pwd)
fi
rm -rf "${work:?}/vg" "${work:?}/bin" "${work:?}/sim"
mkdir -p "$work/vg" "$work/bin"
export OPENBLAS_NUM_THREADS=1 # one BLAS thread: less for valgrind to serialise

# ---- wrappers: FEDTL_BIN for simulate.sh; each execs valgrind with its own log file ----
vg_opts="--leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99 --num-callers=30 --track-origins=yes"
wrap() { # wrap NAME CONDITION: run NAME under valgrind when CONDITION (shell test on "$*") holds
    cat >"$work/bin/$1" <<EOF
#!/usr/bin/env bash
args=" \$* "
if $2; then
    tag=$1
    [ "$1" = fedtl ] && tag=fedtl-\$1
    [ "$1" = fedtl-client ] && tag=fedtl-client-\$(basename "\$(sed -n 's/.* --key \([^ ]*\)\.key .*/\1/p' <<<"\$args")")
    exec valgrind $vg_opts --log-file="$work/vg/\$tag.%p.log" "$build/$1" "\$@"
fi
exec "$build/$1" "\$@"
EOF
    chmod +x "$work/bin/$1"
}
wrap fedtl true
wrap fedtl-coordinator true
# shellcheck disable=SC2016 # $args is the wrapper's, expanded when it runs
wrap fedtl-client '[[ $args == *" --key keys/branch-00.key "* ]]'
B=$work/bin

# ---- tiny data: four Gaussian-ish classes in 20 dimensions ----
cd "$work"
gen() { awk -v n="$1" -v seed="$2" 'BEGIN { srand(seed)
    for (i = 0; i < n; i++) { k = int(rand() * 4); printf "%d", k
        for (j = 0; j < 20; j++) printf ",%.4f", (j % 4 == k ? 2 : 0) + rand() - 0.5
        printf "\n" } }'; }
gen 800 3 >train.csv
gen 200 4 >test.csv

failed=0
step() { # step LABEL CMD...: run, note a failure (valgrind's 99 included)
    local label=$1 t0=$SECONDS rc=0
    shift
    "$@" >"$work/$label.out" 2>&1 || rc=$?
    printf 'memcheck: %-10s exit %-3s %3ss\n' "$label" "$rc" "$((SECONDS - t0))" >&2
    if [ "$rc" != 0 ]; then
        failed=1
        tail -5 "$work/$label.out" >&2
    fi
}
step pretrain "$B/fedtl" pretrain --data train.csv --classes 0-1 --arch mlp --epochs 2 --threads 1 --quiet --out base.ftm
step finetune "$B/fedtl" finetune --base base.ftm --data train.csv --classes 2-3 --method lora --epochs 2 --threads 1 --quiet --out local.fta
step eval "$B/fedtl" eval --base base.ftm --adapter local.fta --data test.csv --classes 2-3 --threads 1 --json
step predict "$B/fedtl" predict --base base.ftm --adapter local.fta --data test.csv
# Valgrind slows the coordinator and branch-00 some 20-50x: generous deadlines, both branches
# in every round (--min-clients 2), CurveZMQ on.
step federation env FEDTL_BIN="$B" "$root/scripts/simulate.sh" --run "$work/sim" --base "$work/base.ftm" \
    --data "$work/train.csv" --test "$work/test.csv" --base-classes 0-1 --classes 2-3 \
    --branches 2 --min-clients 2 --rounds 2 --samples 400 --alpha 0 --epochs 1 --deadline 180
cat "$work/federation.out" >&2

# ---- per-process verdicts from the valgrind logs ----
printf '%-32s %-8s %-7s %s\n' process pid errors "definitely lost" >&2
n=0
for f in "$work"/vg/*.log; do
    [ -e "$f" ] || continue
    n=$((n + 1))
    name=$(basename "$f" .log)
    errs=$(sed -n 's/.*ERROR SUMMARY: \([0-9,]*\) errors.*/\1/p' "$f" | tail -1 | tr -d ,)
    lost=$(sed -n 's/.*definitely lost: \([0-9,]*\) bytes in \([0-9,]*\) blocks.*/\1 bytes in \2 blocks/p' "$f" | tail -1)
    grep -q 'All heap blocks were freed' "$f" && lost="0 bytes (all heap blocks freed)"
    [ -n "$lost" ] || ! grep -q 'LEAK SUMMARY' "$f" || lost="0 bytes"
    printf '%-32s %-8s %-7s %s\n' "${name%.*}" "${name##*.}" "${errs:-?}" "${lost:-?}" >&2
    if [ -z "$errs" ]; then
        echo "memcheck: $f has no ERROR SUMMARY (process killed before exit?)" >&2
        failed=1
    elif [ "$errs" != 0 ] || [[ "$lost" != 0\ * ]]; then
        failed=1
        echo "memcheck: --- $f ---" >&2
        sed -n '/^==[0-9]*== \(Invalid\|Conditional\|Use of\|Syscall\|Mismatched\|.*definitely lost in\)/,/^==[0-9]*== $/p' "$f" | head -80 >&2
    fi
done
for want in fedtl-pretrain fedtl-finetune fedtl-eval fedtl-coordinator fedtl-client-branch-00; do
    ls "$work/vg/$want".*.log >/dev/null 2>&1 || { echo "memcheck: no valgrind log for $want" >&2; failed=1; }
done
if [ "$failed" = 0 ] && [ "$keep" = 0 ]; then
    cd /
    rm -rf "$work"
    echo "memcheck: $n processes under valgrind, clean (--keep keeps the logs)" >&2
else
    echo "memcheck: $n processes under valgrind, $([ "$failed" = 0 ] && echo clean || echo 'NOT clean'); logs in $work/vg/" >&2
fi
exit "$failed"
