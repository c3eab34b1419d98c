#!/usr/bin/env bash
# privacy.sh: accuracy against the privacy budget of DP-FedAvg, measured with whole federations
# (scripts/simulate.sh: a real coordinator and one fedtl-client process per branch, CurveZMQ on
# loopback, LoRA on cnn-small, Fashion-MNIST 0-4 -> 5-9) and read from each run's ledger.
# For each number of branches and each target epsilon (delta 1e-5, "none": no DP), the
# coordinator chooses the noise multiplier for the planned rounds (--dp-epsilon, every branch
# selected every round: sampling rate 1) and clips each update's change to --clip; "clip" is
# DP-FedAvg's estimator (the clip, uniform weights, the fixed denominator) with negligible
# noise, which separates the cost of the estimator from the cost of the noise. With --secure
# every run uses secure aggregation, and with DP the branches add the noise (distributed DP).
# Prints a markdown table under the command that produced it, then the wall time.
# Exit status: 0, 1 when a run failed, 2 on bad usage.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/privacy.sh [--branches "10 100"] [--epsilons "none 8 4 1"] [--rounds 10]
                        [--clip 0.5] [--samples 5000] [--alpha 1.0] [--seed 1] [--secure]
                        [--work DIR]
  --branches "N ..."   federation sizes (default "10 100")
  --epsilons "E ..."   target epsilons at delta 1e-5; "none" runs without DP, "clip" with
                       DP-FedAvg's clip and uniform weights but noise 1e-6: what the noise
                       costs apart from them (default "none clip 8 4 1")
  --rounds R           rounds planned (default 10)
  --clip C             L2 bound of each update's change (default 0.5)
  --samples N          target-class records shared over the branches (default 5000)
  --alpha A, --seed S  Dirichlet label skew and seed (default 1.0 and 1)
  --secure             secure aggregation in every run (with DP: distributed DP, each branch
                       adding its share of the noise)
  --work DIR           runs and base (default bench/out/privacy)
Environment: FEDTL_BIN (default ./build).
EOF
}

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${FEDTL_BIN:-$root/build}
branches_list="10 100" eps_list="none clip 8 4 1" rounds=10 clip=0.5 samples=5000 alpha=1.0 seed=1
work=$root/bench/out/privacy secure=()
while [ $# -gt 0 ]; do
    case $1 in
    -h | --help) usage; exit 0 ;;
    --secure) secure=(--strategy-opt secure_aggregation=true); shift; continue ;;
    esac
    [ $# -ge 2 ] || { echo "privacy.sh: $1 needs a value" >&2; usage >&2; exit 2; }
    case $1 in
    --branches) branches_list=$2 ;; --epsilons) eps_list=$2 ;; --rounds) rounds=$2 ;;
    --clip) clip=$2 ;; --samples) samples=$2 ;; --alpha) alpha=$2 ;; --seed) seed=$2 ;;
    --work) work=$2 ;;
    *) echo "privacy.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
    shift 2
done
for b in fedtl fedtl-coordinator fedtl-client; do
    [ -x "$bin/$b" ] || { echo "privacy.sh: $bin/$b missing: build first or set FEDTL_BIN" >&2; exit 2; }
done
export FEDTL_BIN=$bin
mkdir -p "$work"
start=$(date +%s)
status=0
rows=()
for n in $branches_list; do
    for eps in $eps_list; do
        run=$work/b$n-eps$eps${secure:+-secure}
        rm -rf "$run"
        case $eps in
        none) dp=() ;;
        clip) dp=(--strategy-opt "dp_noise=1e-6" --strategy-opt "dp_clip=$clip") ;;
        *) dp=(--strategy-opt "dp_epsilon=$eps" --strategy-opt "dp_clip=$clip"
               --strategy-opt "dp_delta=1e-5") ;;
        esac
        cmd=("$root/scripts/simulate.sh" --run "$run" --branches "$n" --rounds "$rounds"
             --samples "$samples" --alpha "$alpha" --seed "$seed" --epochs 2 --holdout 0.2
             --deadline 300 --min-clients "$n" --quiet "${dp[@]}" "${secure[@]}")
        [ ! -f "$work/base.ftm" ] || cmd+=(--base "$work/base.ftm")
        echo "privacy.sh: ${cmd[*]}" >&2
        "${cmd[@]}" >"$run.log" 2>&1 || { echo "privacy.sh: run $run failed (see $run.log)" >&2; status=1; continue; }
        [ -f "$work/base.ftm" ] || cp "$run/base.ftm" "$work/base.ftm"
        rows+=("$(/usr/bin/python3 - "$run" "$n" "$eps" <<'PY'
import json, re, sys
run, n, eps = sys.argv[1:4]
lines = [json.loads(l) for l in open(run + "/state/rounds.jsonl") if l.strip()]
agg = [l for l in lines if l.get("aggregated")]
acc = [l.get("server_eval_accuracy", 0) for l in agg]
z = "-"
for l in open(run + "/logs/coordinator.log"):
    m = re.search(r"event=privacy .*noise_multiplier=(\S+)", l)
    if m:
        z = m.group(1)
spent = agg[-1].get("dp_epsilon", "-") if agg else "-"
print(f"| {n} | {eps} | {z} | {len(agg)} | {spent} | {acc[-1]:.4f} | {max(acc):.4f} |")
PY
)")
    done
done
echo
echo "bench/privacy.sh --branches \"$branches_list\" --epsilons \"$eps_list\" --rounds $rounds --clip $clip --samples $samples --alpha $alpha --seed $seed${secure:+ --secure}"
echo
echo "| branches | target epsilon (delta 1e-5) | noise multiplier | rounds | epsilon spent | final accuracy | best accuracy |"
echo "|---|---|---|---|---|---|---|"
for r in "${rows[@]}"; do echo "$r"; done
echo
echo "wall time: $(( $(date +%s) - start )) s"
exit $status
