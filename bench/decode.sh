#!/usr/bin/env bash
# Image decoding and preparation, fedtl against PIL + torchvision, on the same JPEG files and
# the same transforms (Resize(R) with PIL's bilinear filter, CenterCrop(C), ToTensor, RGB):
# fedtl's fl_dataset_load_ex on a thread pool of 1 and 2 threads (build-bench/bench_decode),
# torchvision's ImageFolder through a DataLoader (batch 64) with 0 and 2 worker processes,
# interleaved in rounds. Prints every run, the medians, and fedtl's best over torchvision's
# best; the checksums (sum of every feature) show both computed the same tensors.
# Usage: bench/decode.sh [--bin build-bench/bench_decode] [--dir /tmp/fedtl-decode-jpegs]
#                        [--count 10000] [--resize 128] [--crop 112] [--rounds 3]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build-bench/bench_decode dir=${TMPDIR:-/tmp}/fedtl-decode-jpegs count=10000 resize=128 crop=112
rounds=3
while [ $# -gt 0 ]; do
    case $1 in
    --bin) bin=$2 ;; --dir) dir=$2 ;; --count) count=$2 ;; --resize) resize=$2 ;;
    --crop) crop=$2 ;; --rounds) rounds=$2 ;;
    *) echo "decode.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift 2
done
[ -d "$dir" ] || "$bin" --make "$dir" --count "$count"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for r in $(seq "$rounds"); do
    "$bin" --data "$dir" --resize "$resize" --crop "$crop" --threads 1,2 --rounds 1 | tee -a "$out"
    /usr/bin/python3 - "$dir" "$resize" "$crop" <<'PY' | tee -a "$out"
import sys, time, torch
from torch.utils.data import DataLoader
from torchvision import transforms as T
from torchvision.datasets import ImageFolder
root, resize, crop = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(1)
tf = T.Compose([T.Resize(resize), T.CenterCrop(crop), T.ToTensor()])
for workers in (0, 2):
    t0, c0 = time.perf_counter(), time.process_time()
    ds = ImageFolder(root, transform=tf)
    xs = [x for x, _ in DataLoader(ds, batch_size=64, num_workers=workers)]
    sec, cpu = time.perf_counter() - t0, time.process_time() - c0
    n = sum(len(x) for x in xs)
    total = sum(float(x.double().sum()) for x in xs)
    cpu_ms = "%.3f" % (1e3 * cpu / n) if workers == 0 else "-"  # workers' time is not ours
    print("bench=decode contender=torchvision workers=%d images=%d seconds=%.3f "
          "images_per_s=%.1f cpu_ms_per_image=%s checksum=%.4f"
          % (workers, n, sec, n / sec, cpu_ms, total), flush=True)
PY
done
/usr/bin/python3 - "$out" <<'PY'
import collections, re, statistics, sys
runs = collections.defaultdict(list)
cpus = collections.defaultdict(list)
for line in open(sys.argv[1]):
    if line.startswith("bench=decode "):
        kv = dict(f.split("=", 1) for f in line.split())
        key = "fedtl, %s thread(s)" % kv["threads"] if kv["contender"] == "fedtl" else \
              "PIL + torchvision, %s DataLoader workers" % kv["workers"]
        runs[key].append(float(kv["images_per_s"]))
        if kv.get("cpu_ms_per_image", "-") != "-":
            cpus[key].append(float(kv["cpu_ms_per_image"]))
print("\n%-42s %12s %14s  (%s)" % ("contender", "images/s", "CPU ms/image",
                                     "images/s of each round"))
best = {}
for key, v in runs.items():
    m = statistics.median(v)
    c = "%.3f" % statistics.median(cpus[key]) if cpus[key] else "-"
    print("%-42s %12.1f %14s  %s" % (key, m, c, " ".join("%.0f" % x for x in v)))
    side = "fedtl" if key.startswith("fedtl") else "torchvision"
    best[side] = max(best.get(side, 0), m)
if len(best) == 2:
    print("\nfedtl best / torchvision best (images/s): %.2fx" % (best["fedtl"] / best["torchvision"]))
f1, t0 = "fedtl, 1 thread(s)", "PIL + torchvision, 0 DataLoader workers"
if cpus[f1] and cpus[t0]:
    print("CPU time per image, torchvision (1 process) / fedtl (1 thread): %.2fx"
          % (statistics.median(cpus[t0]) / statistics.median(cpus[f1])))
PY
