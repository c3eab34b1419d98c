#!/usr/bin/env bash
# fedtl against ONNX Runtime, ratio by ratio: runs bench_graph RUNS times (ONNX Runtime right
# after fedtl at each thread count, seconds apart), takes fedtl / ONNX Runtime for each run,
# inference cell and thread count, and prints the median of those paired ratios with the runs'
# ratios beside it. A pair meets the same load, so on a shared host whose speed moves within
# minutes the median of pairs is steadier than a ratio of two medians (bench/graph.sh).
# Usage: bench/graph_pairs.sh [--bin build-rel/bench_graph] [--runs 6] [bench_graph options...]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build-rel/bench_graph runs=6
while [ $# -gt 0 ]; do
    case $1 in
    --bin) bin=$2 && shift 2 ;;
    --runs) runs=$2 && shift 2 ;;
    *) break ;;
    esac
done
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for r in $(seq "$runs"); do
    "$bin" --rounds 1 --steps 5 --no-torch "$@" | grep '^bench=graph impl=.*mode=infer' |
        sed "s/^/run=$r /" >>"$out"
done
python3 - "$out" <<'PY'
import statistics, sys
v = {}
for line in open(sys.argv[1]):
    f = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
    v[(f["run"], f["arch"], int(f["hw"]), int(f["batch"]), int(f["threads"]), f["impl"])] = \
        float(f["images_per_s"])
runs = sorted({k[0] for k in v}, key=int)
print("| arch | input | batch | threads | fedtl / ONNX Runtime, median of pairs | each run |")
print("|---|---|---|---|---|---|")
for cell in sorted({k[1:5] for k in v}):
    rs = [v[(r,) + cell + ("fedtl",)] / v[(r,) + cell + ("ort",)] for r in runs
          if (r,) + cell + ("fedtl",) in v and (r,) + cell + ("ort",) in v]
    if rs:
        arch, hw, batch, threads = cell
        print(f"| {arch} | 3x{hw}x{hw} | {batch} | {threads} | **{statistics.median(rs):.2f}** | "
              + " ".join(f"{x:.2f}" for x in rs) + " |")
PY
