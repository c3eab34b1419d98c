#!/usr/bin/env bash
# Training on an image folder larger than the memory budget: makes (once) a folder of 224x224
# JPEG class folders whose decoded records (float32 3x224x224, 602,112 bytes each) far exceed
# the budget, then runs bench_pipeline on it: two epochs of feeding (every batch's records
# decoded again on the pool, but for those the budget keeps, in the seeded shuffled order, as
# fl_train reads them) and, with --finetune, two epochs of fine-tuning a new head over a frozen
# mobilenet_v2 at 224x224.
# Prints each run's line: records, decoded GiB, streamed, seconds, records/s, peak RSS.
# Usage: bench/pipeline.sh [--bin-dir build] [--dir /work/bench-out/pipeline-224]
#                          [--count 8500] [--budget 1G] [--threads 2] [--finetune N]
#   --finetune N: also fine-tune on N of the records (0: all; unset: no fine-tuning run)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build dir=/work/bench-out/pipeline-224 count=8500 budget=1G threads=2 finetune=
while [ $# -gt 0 ]; do
    case $1 in
    --bin-dir) bin=$2 ;; --dir) dir=$2 ;; --count) count=$2 ;; --budget) budget=$2 ;;
    --threads) threads=$2 ;; --finetune) finetune=$2 ;;
    *) echo "pipeline.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift 2
done
[ -d "$dir" ] || "$bin/bench_decode" --make "$dir" --count "$count" --width 224 --height 224
"$bin/bench_pipeline" --data "$dir" --budget "$budget" --threads "$threads" --mode feed --epochs 2
if [ -n "$finetune" ]; then
    "$bin/bench_pipeline" --data "$dir" --budget "$budget" --threads "$threads" \
        --mode finetune --arch mobilenet_v2 --samples "$finetune" --epochs 2
fi
