#!/usr/bin/env bash
# The main job on a fresh Debian machine: install what is missing, build, and run a federated
# transfer-learning job on Fashion-MNIST. A base cnn-small is pretrained on classes 0-4 (once:
# later runs reuse it); 5,000 training examples of classes 5-9 are split over 10 branches with
# Dirichlet(0.3) label skew; the coordinator and the 10 branches run as separate processes on
# loopback with CurveZMQ for 20 rounds. Then the same test set judges: the base with a head
# fitted locally, local-only fine-tuning at each branch, the federated adapter and centralised
# fine-tuning on the pooled 5,000 examples; a PNG plots accuracy per round. With --images the
# branches' shards and the test set are folders of PNG class folders (fedtl export-images).
# Usage: scripts/demo.sh [--work DIR] [--branches N] [--alpha A] [--rounds R] [--method M]
#                        [--epochs E] [--fresh] [--netns] [--images]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$PWD/demo-run branches=10 alpha=0.3 rounds=20 method=lora epochs=2 extra=() images=0
while [ $# -gt 0 ]; do
    case $1 in
    --work) work=$2; shift 2 ;;
    --branches) branches=$2; shift 2 ;;
    --alpha) alpha=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --method) method=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --fresh) rm -f "$work/base.ftm"; shift ;;
    --netns) extra+=(--netns); shift ;;
    --images) images=1; shift ;;
    -h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
t0=$(date +%s)
"$root/scripts/deps.sh" build test demo
echo "demo: building" >&2
# The programs as shipped: without the test build's switches (scripts/test.sh, which shares
# build/, turns them on again for its own run).
cmake -S "$root" -B "$root/build" -DFEDTL_TESTING=OFF >/dev/null
cmake --build "$root/build" -j"$(nproc)" --target fedtl fedtl-coordinator fedtl-client >/dev/null
bin=$root/build
fm=/usr/share/datasets/fashion-mnist
test_set=(--data "$fm/t10k-images-idx3-ubyte.gz" --labels "$fm/t10k-labels-idx1-ubyte.gz")
mkdir -p "$work"
cd "$work"
shard_ext=.csv what=""
if [ "$images" = 1 ]; then # the same records as PNG files: the branches read folders
    if [ ! -d images/test ]; then
        echo "demo: writing the t10k test set as PNG class folders (fedtl export-images)" >&2
        "$bin/fedtl" export-images "${test_set[@]}" --out images/test --quiet
    fi
    test_set=(--data "$work/images/test")
    extra+=(--images --test "$work/images/test")
    shard_ext="" what=", PNG class folders"
fi

# ---- the federation ----
"$root/scripts/simulate.sh" --run "$work" --branches "$branches" --alpha "$alpha" \
    --rounds "$rounds" --method "$method" --epochs "$epochs" --samples 5000 --holdout 0.2 \
    --classes 5-9 --deadline 120 "${extra[@]}"

# ---- the comparisons, on the same test set (t10k, classes 5-9) ----
acc() { "$bin/fedtl" eval --base base.ftm --adapter "$1" "${test_set[@]}" --json |
    sed -n 's/.*"accuracy":\([0-9.]*\),.*/\1/p'; }
finetune() { # finetune OUT DATA METHOD EPOCHS -> prints "trainable total"
    "$bin/fedtl" finetune --base base.ftm --data "$2" --classes 5-9 --method "$3" \
        --epochs "$4" --seed 1 --quiet --out "$1" |
        sed -n 's/.* \([0-9]*\) trainable of \([0-9]*\) parameters.*/\1 \2/p'
}
mkdir -p compare
total_epochs=$((rounds * epochs))
echo "demo: baselines (each branch alone: a head, then $method; $total_epochs epochs)" >&2
head_accs=() local_accs=()
for ((k = 0; k < branches; k++)); do
    shard=shards/client-$(printf %02d "$k")$shard_ext
    finetune "compare/head-$k.fta" "$shard" head "$total_epochs" >/dev/null
    head_accs+=("$(acc "compare/head-$k.fta")")
    read -r trainable total < <(finetune "compare/local-$k.fta" "$shard" "$method" "$total_epochs")
    local_accs+=("$(acc "compare/local-$k.fta")")
done
echo "demo: centralised $method on the pooled 5,000 examples ($total_epochs epochs)" >&2
pooled=compare/pooled.csv
if [ "$images" = 1 ]; then # a manifest of every shard's images: path,label
    pooled=pooled-images.csv
    find shards -path 'shards/client-*/*/*.png' | sort | awk -F/ '{print $0 "," $(NF-1) + 0}' >"$pooled"
else
    cat shards/client-*.csv >"$pooled"
fi
finetune compare/central.fta "$pooled" "$method" "$total_epochs" >/dev/null
central=$(acc compare/central.fta)
federated=$(acc state/global.fta)
central=$(printf '%.4f' "$central")
federated=$(printf '%.4f' "$federated")
stats() { printf '%s\n' "$@" | awk '{s += $1; if (NR == 1 || $1 < lo) lo = $1; if (NR == 1 || $1 > hi) hi = $1}
    END {printf "%.4f %.4f %.4f\n", s / NR, lo, hi}'; }
read -r head_mean head_lo head_hi < <(stats "${head_accs[@]}")
read -r local_mean local_lo local_hi < <(stats "${local_accs[@]}")

# Bytes: what the branches sent (ledger) against sending the whole model every round.
# (the base's own count comes first: a graph base lists each node's after it)
model_params=$("$bin/fedtl" inspect base.ftm --json | grep -o '"parameters":[0-9]*' | head -n 1 |
    cut -d: -f2)
bytes_in=$(sed -n 's/.*"bytes_in":\([0-9]*\).*/\1/p' state/rounds.jsonl | awk '{s += $1} END {print s}')
updates=$(grep -o '"branch":"[^"]*","samples"' state/rounds.jsonl | wc -l)
per_update=$((bytes_in / (updates > 0 ? updates : 1)))
whole=$((model_params * 4))

{
    printf '\nFederated transfer learning on Fashion-MNIST: base cnn-small pretrained on classes 0-4;\n'
    printf '%d branches hold 5,000 examples of classes 5-9 (Dirichlet %s%s); %d rounds of %s, %d local epochs.\n' \
        "$branches" "$alpha" "$what" "$rounds" "$method" "$epochs"
    printf 'Accuracy on the t10k test images of classes 5-9 (5,000 images):\n\n'
    printf '  %-50s %s\n' "setting" "accuracy"
    printf '  %-50s %s (range %s-%s)\n' "base + a head fitted locally (mean of branches)" "$head_mean" "$head_lo" "$head_hi"
    printf '  %-50s %s (range %s-%s)\n' "local-only $method (mean of branches)" "$local_mean" "$local_lo" "$local_hi"
    printf '  %-50s %s\n' "federated $method ($rounds rounds)" "$federated"
    printf '  %-50s %s\n' "centralised $method (pooled 5,000 examples)" "$central"
    printf '\n  trainable parameters: %s of %s (%s%%)\n' "$trainable" "$total" \
        "$(awk -v a="$trainable" -v b="$total" 'BEGIN {printf "%.2f", 100 * a / b}')"
    printf '  bytes per update: %s sealed (whole model: %s, %sx more)\n' "$per_update" "$whole" \
        "$(awk -v a="$whole" -v b="$per_update" 'BEGIN {printf "%.0f", a / b}')"
    printf '  federated - centralised: %+.1f points; federated - local-only mean: %+.1f points\n' \
        "$(awk -v a="$federated" -v b="$central" 'BEGIN {print 100 * (a - b)}')" \
        "$(awk -v a="$federated" -v b="$local_mean" 'BEGIN {print 100 * (a - b)}')"
} | tee compare/table.txt

# ---- the plot ----
sed -n 's/.*"round":\([0-9]*\),"aggregated":true.*"server_eval_accuracy":\([0-9.]*\).*/\1 \2/p' \
    state/rounds.jsonl >compare/accuracy.dat
if command -v gnuplot >/dev/null; then
    gnuplot <<EOF
set terminal pngcairo size 900,560 font ",11"
set output "$work/accuracy.png"
set title "fedtl: federated $method on Fashion-MNIST 5-9 ($branches branches, Dirichlet $alpha)"
set xlabel "round"
set ylabel "test accuracy (t10k, classes 5-9)"
set yrange [0:1]
set grid
set key bottom right
plot "$work/compare/accuracy.dat" using 1:2 with linespoints lw 2 pt 7 title "federated (server-side evaluation)", \
     $central with lines dt 2 lw 2 title "centralised (pooled data)", \
     $local_mean with lines dt 3 lw 2 title "local-only (mean of branches)", \
     $head_mean with lines dt 4 lw 1 title "base + local head (mean)"
EOF
    echo "plot: $work/accuracy.png"
fi
echo "demo: done in $(( $(date +%s) - t0 )) s; everything is in $work"
