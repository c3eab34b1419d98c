#!/bin/sh
# transfer.sh: the transfer-learning benchmark with the real fedtl tool.
#   1. pretrain cnn-small on Fashion-MNIST classes 0-4 (training set): the base;
#   2. fine-tune it on N (default 1,000) training records of classes 5-9 with each method
#      (ffa-lora, lora, head), and train the same architecture from scratch on those records;
#   3. evaluate each on the t10k test images of classes 5-9, and the base on classes 0-4.
# Prints bench=transfer lines and a table (method, trainable parameters and share, accuracy).
# Options not given are left to the tool's own defaults (nothing is tuned here).
set -eu

usage() {
    cat <<EOF
usage: bench/transfer.sh [--fedtl PATH] [--work DIR] [--data DIR] [--pretrain-epochs N]
                         [--samples N] [--epochs N] [--rank R] [--alpha A] [--lr LR]
                         [--seed S] [--threads N] [--methods "ffa-lora lora head bitfit"]
                         [--reuse-base]
  --fedtl            the tool (default: build/fedtl of this checkout)
  --work             work directory for models and logs (default: bench/out/transfer)
  --data             directory of the Fashion-MNIST IDX files (default /usr/share/datasets/fashion-mnist)
  --pretrain-epochs  epochs of the base pretraining on classes 0-4 (default 3)
  --samples          target records of classes 5-9 (default 1000)
  --epochs, --rank, --alpha, --lr
                     passed to every finetune (--epochs also to the from-scratch run);
                     unset: the tool's defaults
  --seed, --threads  passed to every command
  --reuse-base       keep WORK/base.ftm when it is there (no pretraining)
EOF
}

root=$(cd "$(dirname "$0")/.." && pwd)
fedtl=$root/build/fedtl
work=$root/bench/out/transfer
data=/usr/share/datasets/fashion-mnist
pre_epochs=3
samples=1000
methods="ffa-lora lora head bitfit"
reuse_base=0
ft_opts=""   # finetune pass-through
sc_opts=""   # from-scratch pass-through
all_opts=""  # every command
while [ $# -gt 0 ]; do
    case $1 in -h | --help) usage; exit 0 ;; --reuse-base) reuse_base=1; shift; continue ;; esac
    [ $# -ge 2 ] || { usage >&2; exit 2; }
    case $1 in
    --fedtl) fedtl=$2 ;;
    --work) work=$2 ;;
    --data) data=$2 ;;
    --pretrain-epochs) pre_epochs=$2 ;;
    --samples) samples=$2 ;;
    --methods) methods=$2 ;;
    --epochs) ft_opts="$ft_opts --epochs $2"; sc_opts="$sc_opts --epochs $2" ;;
    --rank | --alpha | --lr) ft_opts="$ft_opts $1 $2" ;;
    --seed | --threads) all_opts="$all_opts $1 $2" ;;
    -h | --help) usage; exit 0 ;;
    --reuse-base) reuse_base=1; shift; continue ;;
    *) usage >&2; exit 2 ;;
    esac
    shift 2
done
[ -x "$fedtl" ] || { echo "transfer.sh: $fedtl is not an executable (build first or --fedtl)" >&2; exit 1; }
train_x=$data/train-images-idx3-ubyte.gz
train_y=$data/train-labels-idx1-ubyte.gz
test_x=$data/t10k-images-idx3-ubyte.gz
test_y=$data/t10k-labels-idx1-ubyte.gz
for f in "$train_x" "$train_y" "$test_x" "$test_y"; do
    [ -r "$f" ] || { echo "transfer.sh: missing $f" >&2; exit 1; }
done
mkdir -p "$work"
log=$work/log.txt
: >"$log"

# run LOGNAME CMD...: run a fedtl command, keep its output in $work/LOGNAME.out and the log.
run() {
    name=$1
    shift
    echo "\$ $*" >>"$log"
    t0=$(date +%s.%N)
    if ! "$@" >"$work/$name.out" 2>"$work/$name.err"; then
        cat "$work/$name.out" "$work/$name.err" >&2
        echo "transfer.sh: failed: $*" >&2
        exit 1
    fi
    t1=$(date +%s.%N)
    cat "$work/$name.out" >>"$log"
    echo "# $(echo "$t1 - $t0" | bc) s" >>"$log"
}
json_acc() { sed -n 's/.*"accuracy":\([0-9.]*\),"loss".*/\1/p' "$work/$1.out" | head -n 1; }

echo "# transfer: base = cnn-small pretrained on Fashion-MNIST 0-4 ($pre_epochs epochs); target = $samples records of 5-9"
echo "# fedtl: $fedtl; work: $work; finetune options:${ft_opts:- (tool defaults)}; common:${all_opts:- (none)}"

if [ "$reuse_base" = 1 ] && [ -s "$work/base.ftm" ] && "$fedtl" inspect "$work/base.ftm" >/dev/null 2>&1; then
    echo "# reusing the base $work/base.ftm (remove it to pretrain again)"
else
    # shellcheck disable=SC2086 # option lists are split on purpose
    run pretrain "$fedtl" pretrain --data "$train_x" --labels "$train_y" --classes 0-4 \
        --arch cnn-small --epochs "$pre_epochs" --quiet $all_opts --out "$work/base.ftm"
fi
# shellcheck disable=SC2086
run eval-source "$fedtl" eval --base "$work/base.ftm" --data "$test_x" --labels "$test_y" \
    --json $all_opts
src_acc=$(json_acc eval-source)
echo "bench=transfer method=source-base classes=0-4 accuracy=$src_acc"

rows=""
for method in $methods; do
    # shellcheck disable=SC2086
    run "finetune-$method" "$fedtl" finetune --base "$work/base.ftm" --data "$train_x" \
        --labels "$train_y" --classes 5-9 --samples "$samples" --method "$method" --quiet \
        $ft_opts $all_opts --out "$work/$method.fta"
    line=$(grep -m 1 ' trainable of ' "$work/finetune-$method.out")
    trainable=$(echo "$line" | sed -n 's/.*: \([0-9]*\) trainable of \([0-9]*\) parameters (\([0-9.]*\)%).*/\1/p')
    total=$(echo "$line" | sed -n 's/.*: \([0-9]*\) trainable of \([0-9]*\) parameters (\([0-9.]*\)%).*/\2/p')
    pct=$(echo "$line" | sed -n 's/.*: \([0-9]*\) trainable of \([0-9]*\) parameters (\([0-9.]*\)%).*/\3/p')
    rank=$(echo "$line" | sed -n 's/.*(rank \([0-9]*\)).*/\1/p')
    # shellcheck disable=SC2086
    run "eval-$method" "$fedtl" eval --base "$work/base.ftm" --adapter "$work/$method.fta" \
        --data "$test_x" --labels "$test_y" --json $all_opts
    acc=$(json_acc "eval-$method")
    echo "bench=transfer method=$method rank=$rank trainable=$trainable total=$total trainable_pct=$pct accuracy=$acc"
    rows="$rows$method|$rank|$trainable|$total|$pct|$acc
"
done

# shellcheck disable=SC2086
run scratch "$fedtl" pretrain --data "$train_x" --labels "$train_y" --classes 5-9 \
    --samples "$samples" --arch cnn-small --quiet $sc_opts $all_opts --out "$work/scratch.ftm"
params=$(sed -n 's/.* classes, \([0-9]*\) parameters.*/\1/p' "$work/scratch.out" | head -n 1)
# shellcheck disable=SC2086
run eval-scratch "$fedtl" eval --base "$work/scratch.ftm" --data "$test_x" --labels "$test_y" \
    --json $all_opts
acc=$(json_acc eval-scratch)
echo "bench=transfer method=scratch trainable=$params total=$params trainable_pct=100.00 accuracy=$acc"
rows="${rows}scratch|-|$params|$params|100.00|$acc
"

printf '\n%-10s %5s %10s %10s %9s %10s\n' method rank trainable of share "acc 5-9"
printf '%s' "$rows" | while IFS='|' read -r m r t n p a; do
    printf '%-10s %5s %10s %10s %8s%% %10s\n' "$m" "${r:--}" "$t" "$n" "$p" "$a"
done
printf '%-10s %5s %10s %10s %9s %10s  (base on t10k classes 0-4)\n' source - - - - "$src_acc"
echo "(accuracy on the t10k test images of the classes named; commands and outputs in $log)"
