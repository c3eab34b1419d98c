#!/usr/bin/env bash
# Side-by-side A/B of two bench_graph binaries (e.g. before and after a kernel change): runs
# them alternately, fedtl only, and prints the median images/s of each per figure and B/A.
# Usage: bench/graph_ab.sh A_BIN B_BIN [reps] [bench_graph options...]
set -euo pipefail
a=$1 b=$2 reps=${3:-3}
shift 3 || shift $#
out=$(mktemp)
for r in $(seq "$reps"); do
    for bin in "$a" "$b"; do
        "$bin" --no-torch --no-ort --rounds 1 "$@" | grep '^bench=graph impl=fedtl' |
            sed "s|^|bin=$bin |" >>"$out"
    done
done
python3 - "$a" "$b" "$out" <<'PY'
import statistics, sys
a, b, path = sys.argv[1:4]
vals = {}
for line in open(path):
    f = dict(kv.split("=", 1) for kv in line.split())
    key = f"{f['arch']} hw={f['hw']} {f['mode']} b={f['batch']} t={f['threads']}"
    vals.setdefault((f["bin"], key), []).append(float(f["images_per_s"]))
for key in sorted({k for _, k in vals}):
    ma, mb = (statistics.median(vals.get((x, key), [0])) for x in (a, b))
    print(f"{key:<40} A {ma:9.1f}  B {mb:9.1f}  B/A {mb / ma if ma else 0:5.2f}")
PY
rm -f "$out"
