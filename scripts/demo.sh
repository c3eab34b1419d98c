#!/usr/bin/env bash
# The main job on a fresh Debian machine: install what is missing, build, and run the
# transfer-learning benchmark on Fashion-MNIST end to end (pretrain the base on classes 0-4,
# fine-tune on 1,000 examples of classes 5-9 with each adapter method, evaluate, print the
# table). Works in ./demo-run (or DIR), reusing a base pretrained by an earlier run.
# Usage: scripts/demo.sh [--work DIR] [--fresh] [transfer.sh options...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$PWD/demo-run
args=()
while [ $# -gt 0 ]; do
    case $1 in
    --work) work=$2; shift 2 ;;
    --fresh) rm -f "$work/base.ftm"; shift ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) args+=("$1"); shift ;;
    esac
done
"$root/scripts/deps.sh" build test demo
cmake -S "$root" -B "$root/build" >/dev/null
cmake --build "$root/build" -j"$(nproc)" --target fedtl >/dev/null
mkdir -p "$work"
exec "$root/bench/transfer.sh" --fedtl "$root/build/fedtl" --work "$work" --reuse-base "${args[@]}"
