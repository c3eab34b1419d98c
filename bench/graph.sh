#!/usr/bin/env bash
# The graph-engine benchmark under both OpenBLAS settings, interleaved: each round runs
# bench_graph (fedtl, PyTorch, ONNX Runtime) once with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE as
# the environment sets them (Haswell and the L2 size from sysfs, in bytes, when it does not)
# and once with both unset (only in this command). Prints the medians over rounds per setting,
# the best of the thread counts per contender, the ratios, and whether fedtl's check values
# (first training loss, sum of the inference logits) agree between the two settings.
# Usage: bench/graph.sh [--bin build-rel/bench_graph] [--rounds 2] [bench_graph options...]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build-rel/bench_graph rounds=2
while [ $# -gt 0 ]; do
    case $1 in
    --bin) bin=$2 && shift 2 ;;
    --rounds) rounds=$2 && shift 2 ;;
    *) break ;;
    esac
done
l2k=$(sed 's/K$//' /sys/devices/system/cpu/cpu0/cache/index2/size 2>/dev/null || echo 1024)
ct=${OPENBLAS_CORETYPE:-Haswell} l2=${OPENBLAS_L2_SIZE:-$((l2k * 1024))}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for r in $(seq "$rounds"); do
    OPENBLAS_CORETYPE=$ct OPENBLAS_L2_SIZE=$l2 "$bin" --rounds 1 "$@" | sed 's/^/env=set /' >>"$out"
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$bin" --rounds 1 "$@" |
        sed 's/^/env=unset /' >>"$out"
done
echo "# OPENBLAS_CORETYPE=$ct OPENBLAS_L2_SIZE=$l2 (set) against both unset, $rounds rounds"
python3 - "$out" <<'PY'
import collections, statistics, sys
ips, checks = collections.defaultdict(list), collections.defaultdict(set)
for line in open(sys.argv[1]):
    f = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
    if line.split()[1:2] == ["bench=graph"] and "images_per_s" in f:
        key = (f["env"], f["arch"], int(f["hw"]), f["mode"], int(f["batch"]), f["impl"])
        ips[key + (int(f["threads"]),)].append(float(f["images_per_s"]))
    elif line.split()[1:2] == ["bench=graph-check"]:
        checks[(f["arch"], f["hw"], f["env"])].add((f["first_loss"], f["logit_sum"]))
best = collections.defaultdict(dict)
for (env, arch, hw, mode, batch, impl, t), v in ips.items():
    med = statistics.median(v)
    b = best[(env, arch, hw, mode, batch)]
    if med > b.get(impl, (0, 0))[0]:
        b[impl] = (med, t)
print("| OpenBLAS env | arch | input | figure | batch | fedtl img/s (threads) | PyTorch | fedtl/PyTorch | ONNX Runtime | fedtl/ORT |")
print("|---|---|---|---|---|---|---|---|---|---|")
for (env, arch, hw, mode, batch), b in sorted(best.items()):
    fe = b.get("fedtl", (0, 0))
    cells = [f"{fe[0]:.0f} ({fe[1]})"]
    for impl in ("torch", "ort"):
        if impl in b:
            cells += [f"{b[impl][0]:.0f} ({b[impl][1]})", f"**{fe[0] / b[impl][0]:.2f}**"]
        else:
            cells += ["-", "-"]
    print(f"| {env} | {arch} | 3x{hw}x{hw} | {mode} | {batch} | " + " | ".join(cells) + " |")
ok = True
for arch, hw in sorted({(a, h) for a, h, _ in checks}):
    loss = [float(c[0]) for e in ("set", "unset") for c in checks[(arch, hw, e)]]
    logit = [float(c[1]) for e in ("set", "unset") for c in checks[(arch, hw, e)]]
    agree = (max(loss) - min(loss) <= 1e-4 * max(1, abs(loss[0])) and
             max(logit) - min(logit) <= 1e-4 * max(1, abs(logit[0])))
    ok &= agree
    print(f"check {arch} {hw}: first losses {min(loss):.6f}..{max(loss):.6f}, logit sums "
          f"{min(logit):.4f}..{max(logit):.4f}: {'agree' if agree else 'DIFFER'}")
sys.exit(0 if ok else 1)
PY
