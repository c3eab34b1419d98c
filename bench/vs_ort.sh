#!/usr/bin/env bash
# fedtl against ONNX Runtime, turn by turn (bench_vs_ort): for each model, input size, batch
# and thread count, ROUNDS rounds in which each engine runs a turn of at least PASSES passes
# (more, when that would last under 0.15 s), in alternating
# order; prints the median of the rounds' speed-ups (ONNX Runtime's time over fedtl's: above 1,
# fedtl is faster) with their quartiles. torchvision's models are exported to bench/out by
# bench/torch_graph.py when missing. Needs ONNX Runtime (scripts/peers.sh, or FEDTL_PEERS).
# Usage: bench/vs_ort.sh [--bin build-rel/bench_vs_ort] [--rounds 30] [--passes 3]
#        [--archs resnet18,mobilenet_v2] [--sizes 32,64]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build-rel/bench_vs_ort rounds=30 passes=3 archs=resnet18,mobilenet_v2 sizes=32,64
while [ $# -gt 0 ]; do
    case $1 in
    --bin) bin=$2 ;;
    --rounds) rounds=$2 ;;
    --passes) passes=$2 ;;
    --archs) archs=$2 ;;
    --sizes) sizes=$2 ;;
    *) echo "vs_ort.sh: unknown option $1" >&2 && exit 2 ;;
    esac
    shift 2
done
mkdir -p bench/out
echo "| model, input | batch | threads | fedtl / ONNX Runtime speed, median of rounds | quartiles | fedtl ms | ONNX Runtime ms |"
echo "|---|---|---|---|---|---|---|"
for arch in ${archs//,/ }; do
    for hw in ${sizes//,/ }; do
        onnx=bench/out/$arch-$hw.onnx
        [ -r "$onnx" ] || /usr/bin/python3 bench/torch_graph.py --arch "$arch" --hw "$hw" \
            --export-onnx "$onnx" >&2
        for batch in 1 32; do
            for t in 1 2; do
                "$bin" --onnx "$onnx" --arch "$arch" --hw "$hw" --batch "$batch" --threads "$t" \
                    --rounds "$rounds" --passes "$passes" |
                    awk '/^#/ { print > "/dev/stderr"; next }
                        { for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
                          printf "| %s %sx%s | %s | %s | **%.2f** | %.2f-%.2f | %s | %s |\n",
                              f["arch"], f["hw"], f["hw"], f["batch"], f["threads"],
                              f["fedtl_speedup"], f["q1"], f["q3"], f["fedtl_ms"], f["ort_ms"] }'
            done
        done
    done
done
