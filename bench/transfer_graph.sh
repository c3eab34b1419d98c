#!/bin/sh
# transfer_graph.sh: the transfer-learning benchmark on a graph base with real depth, ResNet-18,
# with the real fedtl tool.
#   1. the base: a torchvision ResNet-18 pretrained in PyTorch on Fashion-MNIST classes 0-4 and
#      exported to ONNX (tests/peers/torch_pretrain.py), then `fedtl import --mean 0 --std 255
#      --classes 0-4`, as a user brings it; or the base given with --base;
#   2. for each training-set size (default 1,000 and 5,000 records of classes 5-9): LoRA and
#      FFA-LoRA on the four 3x3 convolutions of layer4, a new head alone, BitFit (the tool's
#      default targets), and ResNet-18 trained from scratch on the same records
#      (fedtl pretrain --arch resnet18);
#   3. each evaluated on the t10k test images of classes 5-9.
# Prints bench=transfer-graph lines and a table: accuracy, trainable parameters and share,
# bytes sent (the adapter file; for scratch the whole base) and the training command's wall time.
# Options not given are left to the tool's own defaults (nothing is tuned here).
set -eu

usage() {
    cat <<EOF
usage: bench/transfer_graph.sh [--fedtl PATH] [--work DIR] [--data DIR] [--base FILE.ftm]
                               [--sizes "1000 5000"] [--methods "lora ffa-lora head bitfit scratch"]
                               [--epochs N] [--scratch-epochs N] [--torch-epochs N]
                               [--seed S] [--threads N]
  --fedtl           the tool (default: build/fedtl of this checkout)
  --work            work directory for models and logs (default: bench/out/transfer_graph)
  --data            directory of the Fashion-MNIST IDX files (default /usr/share/datasets/fashion-mnist)
  --base            a graph base to adapt (default: WORK/base.ftm, made with PyTorch when absent)
  --sizes           training records of classes 5-9, one run per size (default "1000 5000")
  --epochs          passed to every finetune (unset: the tool's default)
  --scratch-epochs  passed to fedtl pretrain --arch resnet18 (unset: the tool's default)
  --torch-epochs    epochs of tests/peers/torch_pretrain.py when it makes the base (default 2)
  --seed, --threads passed to every fedtl command
EOF
}

root=$(cd "$(dirname "$0")/.." && pwd)
fedtl=$root/build/fedtl
work=$root/bench/out/transfer_graph
data=/usr/share/datasets/fashion-mnist
base=""
sizes="1000 5000"
methods="lora ffa-lora head bitfit scratch"
torch_epochs=2
ft_opts=""  # finetune pass-through
sc_opts=""  # from-scratch pass-through
all_opts="" # every fedtl command
while [ $# -gt 0 ]; do
    case $1 in -h | --help) usage; exit 0 ;; esac
    [ $# -ge 2 ] || { usage >&2; exit 2; }
    case $1 in
    --fedtl) fedtl=$2 ;;
    --work) work=$2 ;;
    --data) data=$2 ;;
    --base) base=$2 ;;
    --sizes) sizes=$2 ;;
    --methods) methods=$2 ;;
    --epochs) ft_opts="$ft_opts --epochs $2" ;;
    --scratch-epochs) sc_opts="$sc_opts --epochs $2" ;;
    --torch-epochs) torch_epochs=$2 ;;
    --seed | --threads) all_opts="$all_opts $1 $2" ;;
    *) usage >&2; exit 2 ;;
    esac
    shift 2
done
[ -x "$fedtl" ] || { echo "transfer_graph.sh: $fedtl is not an executable (build first or --fedtl)" >&2; exit 1; }
train_x=$data/train-images-idx3-ubyte.gz
train_y=$data/train-labels-idx1-ubyte.gz
test_x=$data/t10k-images-idx3-ubyte.gz
test_y=$data/t10k-labels-idx1-ubyte.gz
for f in "$train_x" "$train_y" "$test_x" "$test_y"; do
    [ -r "$f" ] || { echo "transfer_graph.sh: missing $f" >&2; exit 1; }
done
mkdir -p "$work"
log=$work/log.txt
: >"$log"
l4="/layer4/layer4.0/conv1/Conv,/layer4/layer4.0/conv2/Conv,/layer4/layer4.1/conv1/Conv,/layer4/layer4.1/conv2/Conv"

# run LOGNAME CMD...: run a command, keep its output in $work/LOGNAME.out and the log, and its
# wall time in seconds in $secs.
run() {
    name=$1
    shift
    echo "\$ $*" >>"$log"
    t0=$(date +%s.%N)
    if ! "$@" >"$work/$name.out" 2>"$work/$name.err"; then
        cat "$work/$name.out" "$work/$name.err" >&2
        echo "transfer_graph.sh: failed: $*" >&2
        exit 1
    fi
    t1=$(date +%s.%N)
    secs=$(echo "$t1 - $t0" | bc)
    cat "$work/$name.out" >>"$log"
    echo "# $secs s" >>"$log"
}
json_acc() { sed -n 's/.*"accuracy":\([0-9.]*\),"loss".*/\1/p' "$work/$1.out" | head -n 1; }

if [ -n "$base" ]; then
    origin="given with --base"
else
    base=$work/base.ftm
    origin="torchvision resnet18 pretrained in PyTorch on Fashion-MNIST 0-4 ($torch_epochs epochs, tests/peers/torch_pretrain.py), exported to ONNX and imported with fedtl import"
    if ! "$fedtl" inspect "$base" >/dev/null 2>&1; then
        run torch /usr/bin/python3 "$root/tests/peers/torch_pretrain.py" --arch resnet18 \
            --classes 0-4 --epochs "$torch_epochs" --data "$data" --out "$work/r18.onnx"
        run import "$fedtl" import "$work/r18.onnx" --out "$base" --mean 0 --std 255 --classes 0-4
    fi
fi
echo "# transfer on a graph base: $base ($origin)"
echo "# fedtl: $fedtl; work: $work; finetune options:${ft_opts:- (tool defaults)}; scratch options:${sc_opts:- (tool defaults)}; common:${all_opts:- (none)}"
echo "# lora / ffa-lora targets: $l4"
# shellcheck disable=SC2086 # option lists are split on purpose
run eval-source "$fedtl" eval --base "$base" --data "$test_x" --labels "$test_y" --json $all_opts
src_acc=$(json_acc eval-source)
echo "bench=transfer-graph method=source-base classes=0-4 accuracy=$src_acc"
base_bytes=$(stat -c %s "$base")

rows=""
for n in $sizes; do
    for method in $methods; do
        tag=$method-$n
        if [ "$method" = scratch ]; then
            # shellcheck disable=SC2086
            run "train-$tag" "$fedtl" pretrain --data "$train_x" --labels "$train_y" --classes 5-9 \
                --samples "$n" --arch resnet18 --quiet $sc_opts $all_opts --out "$work/$tag.ftm"
            train_secs=$secs
            trainable=$(sed -n 's/.* classes, \([0-9]*\) parameters.*/\1/p' "$work/train-$tag.out" | head -n 1)
            pct=100.00
            bytes=$(stat -c %s "$work/$tag.ftm")
            # shellcheck disable=SC2086
            run "eval-$tag" "$fedtl" eval --base "$work/$tag.ftm" --data "$test_x" \
                --labels "$test_y" --json $all_opts
        else
            targets=""
            case $method in lora | ffa-lora) targets="--targets $l4" ;; esac
            # shellcheck disable=SC2086
            run "train-$tag" "$fedtl" finetune --base "$base" --data "$train_x" --labels "$train_y" \
                --classes 5-9 --samples "$n" --method "$method" $targets --quiet $ft_opts \
                $all_opts --out "$work/$tag.fta"
            train_secs=$secs
            line=$(grep -m 1 ' trainable of ' "$work/train-$tag.out")
            trainable=$(echo "$line" | sed -n 's/.*: \([0-9]*\) trainable of \([0-9]*\) parameters (\([0-9.]*\)%).*/\1/p')
            pct=$(echo "$line" | sed -n 's/.*: \([0-9]*\) trainable of \([0-9]*\) parameters (\([0-9.]*\)%).*/\3/p')
            bytes=$(stat -c %s "$work/$tag.fta")
            # shellcheck disable=SC2086
            run "eval-$tag" "$fedtl" eval --base "$base" --adapter "$work/$tag.fta" \
                --data "$test_x" --labels "$test_y" --json $all_opts
        fi
        acc=$(json_acc "eval-$tag")
        echo "bench=transfer-graph records=$n method=$method trainable=$trainable trainable_pct=$pct bytes=$bytes seconds=$train_secs accuracy=$acc"
        rows="$rows$n|$method|$trainable|$pct|$bytes|$train_secs|$acc
"
    done
done

printf '\n%8s %-9s %10s %8s %12s %8s %8s\n' records method trainable share bytes "time s" "acc 5-9"
printf '%s' "$rows" | while IFS='|' read -r n m t p b s a; do
    printf '%8s %-9s %10s %7s%% %12s %8.0f %8s\n' "$n" "$m" "$t" "$p" "$b" "$s" "$a"
done
printf '%8s %-9s %10s %8s %12s %8s %8s  (base on t10k classes 0-4)\n' - source - - "$base_bytes" - "$src_acc"
echo "(accuracy on the t10k test images of the classes named; time: the training command's wall"
echo " time; commands and outputs in $log)"
