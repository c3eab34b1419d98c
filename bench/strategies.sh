#!/usr/bin/env bash
# strategies.sh: the comparison tables of the aggregation strategies, measured with whole
# federations (scripts/simulate.sh: real coordinator and branch processes, LoRA on cnn-small,
# Fashion-MNIST 0-4 -> 5-9) and read from each run's ledger (RUN/state/rounds.jsonl: the
# server's accuracy on t10k 5-9 after every round).
#   skew      every strategy at Dirichlet alpha 0.1, 0.3 and 1.0: final server accuracy and the
#             spread (max - min) of the last five rounds; then, at alpha 0.1, the same for the
#             strategies meant for skewed branches over several seeds (--seeds);
#   attack    at alpha 0.3 (simulate.sh's default): 1 and 2 malicious branches with each attack
#             (scale, signflip, noise, nan, labelflip: fedtl-client --test-attack, a
#             -DFEDTL_TESTING=ON build) against fedavg and every robust rule, and their clean runs;
#   personal  at alpha 0.1: mean and worst per-branch accuracy on each branch's own held-out
#             records (bench_heldout makes the split as the branch does) of the final global
#             adapter, of the branches' personal heads (--personal-head --personalize-epochs 2)
#             and of each branch trained alone (fedtl finetune on its training split for rounds x
#             epochs epochs).
# Prints markdown tables, each under the command that produced it, then the wall time.
# Runs are kept in WORK/runs/NAME and reused when their command line has not changed
# (--fresh runs everything again). Exit status: 0, 1 when a table could not be made, 2 usage.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/strategies.sh [--quick] [--only skew|attack|personal] [--work DIR] [--jobs N]
                           [--branches N] [--rounds R] [--fresh] [--seeds "S ..."]
  --quick      8 branches, 5 rounds, 1,500 records: to try the script (minutes, not hours)
  --only T     one table: skew, attack or personal (default: all three)
  --work DIR   runs, base and logs (default bench/out/strategies, bench/out/strategies-quick)
  --jobs N     simulations at once (default 1: on a 2-core machine one federation already
               fills both cores, and parallel runs only stretch each round)
  --branches N, --rounds R   override (default 10 and 20; --quick: 8 and 5)
  --fresh      run everything again instead of reusing WORK/runs
  --rules "K ..."      only these rows: fedavg fedavgm fedadagrad fedadam fedyogi fedprox
                       median trimmed-mean krum multi-krum norm-bound (fedavg with
                       --norm-bound-median 3) prox-bound (fedprox, mu 0.1, with it)
                       prox-bound-sched (the same with the server learning rate halved
                       every round after round 15: server_lr_decay 0.5, after 14)
  --seeds "S ..."      seeds of the alpha 0.1 seed table (default: 1 2 3; "" : no table)
  --attacks "K ..."    only these attacks (default: scale signflip noise nan labelflip)
  --malicious "N ..."  only these malicious counts (default: 1 2)
Environment: FEDTL_BIN (default ./build: a build with -DFEDTL_TESTING=ON for the attack table).
EOF
}

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${FEDTL_BIN:-$root/build}
sim=$root/scripts/simulate.sh
quick=0 only="" work="" jobs=1 branches="" rounds="" fresh=0
rules_given="" attacks_given="" counts_given="" seeds="1 2 3"
attacks=(scale signflip noise nan labelflip) counts=(1 2)
args_given=""
[ $# -eq 0 ] || { args_given=$(printf '%q ' "$@"); args_given=${args_given% }; }
while [ $# -gt 0 ]; do
    case $1 in
    -h | --help) usage; exit 0 ;;
    --quick) quick=1; shift; continue ;;
    --fresh) fresh=1; shift; continue ;;
    esac
    [ $# -ge 2 ] || { echo "strategies.sh: $1 needs a value" >&2; usage >&2; exit 2; }
    case $1 in
    --only) only=$2 ;; --work) work=$2 ;; --jobs) jobs=$2 ;;
    --branches) branches=$2 ;; --rounds) rounds=$2 ;;
    --rules) rules_given=$2 ;; --attacks) attacks_given=$2 ;; --malicious) counts_given=$2 ;;
    --seeds) seeds=$2 ;;
    *) echo "strategies.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
    shift 2
done
case $only in "" | skew | attack | personal) ;; *) echo "strategies.sh: --only $only: skew, attack or personal" >&2; exit 2 ;; esac
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || { echo "strategies.sh: --jobs $jobs: a count >= 1" >&2; exit 2; }
samples=5000 epochs=2 holdout=0.2 classes=5-9
if [ "$quick" = 1 ]; then
    : "${branches:=8}" "${rounds:=5}"
    samples=1500
    : "${work:=$root/bench/out/strategies-quick}"
else
    : "${branches:=10}" "${rounds:=20}"
    : "${work:=$root/bench/out/strategies}"
fi
for b in fedtl fedtl-coordinator fedtl-client bench_heldout; do
    [ -x "$bin/$b" ] || { echo "strategies.sh: $bin/$b missing: build first (cmake -S . -B build -DFEDTL_TESTING=ON && cmake --build build) or set FEDTL_BIN" >&2; exit 2; }
done
export FEDTL_BIN=$bin
py=/usr/bin/python3
mkdir -p "$work/runs"
work=$(cd "$work" && pwd)
log() { printf '%s\n' "$*" >&2; }
t_start=$(date +%s)

# What this checkout's simulate.sh and client offer.
sim_help=$("$sim" --help)
has() { case $sim_help in *"$1"*) return 0 ;; esac; return 1; }
has_attack=0
case $("$bin/fedtl-client" --help 2>/dev/null || true) in *--test-attack*) has_attack=1 ;; esac

# Krum (f = 1) needs at least 2f + 3 = 5 updates a round: the coordinator refuses a smaller
# --min-clients, and simulate.sh's default is half the branches.
krum_min=""
[ $((branches / 2)) -ge 5 ] || krum_min=" --min-clients 5"
# The strategies: a key, then simulate.sh's options for it.
strategies=(
    "fedavg|"
    "fedavgm|--strategy fedavgm"
    "fedadagrad|--strategy fedadagrad"
    "fedadam|--strategy fedadam"
    "fedyogi|--strategy fedyogi"
    "fedprox|--strategy fedprox"
    "median|--strategy median"
    "trimmed-mean|--strategy trimmed-mean"
    "krum|--strategy krum$krum_min"
    "multi-krum|--strategy multi-krum$krum_min"
    "norm-bound|--strategy fedavg --strategy-opt norm_bound_median=3"
    "prox-bound|--strategy fedprox --strategy-opt proximal_mu=0.1 --strategy-opt norm_bound_median=3"
    "prox-bound-sched|--strategy fedprox --strategy-opt proximal_mu=0.1 --strategy-opt norm_bound_median=3 --strategy-opt server_lr_decay=0.5 --strategy-opt server_lr_decay_after=14"
)
# The rows of the seed table (alpha 0.1): FedAvg and the strategies for skewed branches.
seeded=(fedavg norm-bound prox-bound prox-bound-sched)
robust=(fedavg median trimmed-mean krum multi-krum norm-bound prox-bound)
[ -z "$attacks_given" ] || read -r -a attacks <<<"$attacks_given"
[ -z "$counts_given" ] || read -r -a counts <<<"$counts_given"
strategy_opts() {
    local s
    for s in "${strategies[@]}"; do [ "${s%%|*}" = "$1" ] && { printf '%s' "${s#*|}"; return 0; }; done
    return 1
}
label() {
    case $1 in
    norm-bound) printf 'fedavg, --norm-bound-median 3' ;;
    prox-bound) printf 'fedprox mu 0.1, --norm-bound-median 3' ;;
    prox-bound-sched) printf 'fedprox mu 0.1, --norm-bound-median 3, server_lr_decay 0.5 after 14' ;;
    *) printf '%s' "$1" ;;
    esac
}
chosen() { [ -z "$rules_given" ] || [[ " $rules_given " == *" $1 "* ]]; }
# A strategy this checkout cannot run (no --strategy in simulate.sh) gets "n/a" cells.
runnable() { [ -z "$(strategy_opts "$1")" ] || has --strategy; }

# ---- the base: pretrained once, as simulate.sh would ----
base=$work/base.ftm
if ! { [ -s "$base" ] && "$bin/fedtl" inspect "$base" >/dev/null 2>&1; }; then
    log "strategies: pretraining the base (cnn-small, classes 0-4, 3 epochs)"
    "$bin/fedtl" pretrain --data /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz \
        --labels /usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz --classes 0-4 \
        --arch cnn-small --epochs 3 --seed 1 --quiet --out "$base" >/dev/null
fi

# ---- runs: one simulate.sh each, in WORK/runs/NAME, reused while the command is the same ----
port_next=$(( 20000 + $$ % 20000 ))
running=0
used_runs=() reused=0
# run NAME SIMULATE-OPTIONS...: start (or reuse) a simulation; at most $jobs at once.
run() {
    local name=$1 dir=$work/runs/$1
    shift
    used_runs+=("$name")
    local cmd="scripts/simulate.sh --branches $branches --rounds $rounds --samples $samples --method lora --epochs $epochs --holdout $holdout --classes $classes --quiet $*"
    if [ "$fresh" = 0 ] && [ -f "$dir/bench.rc" ] && [ "$(cat "$dir/bench.cmd" 2>/dev/null)" = "$cmd" ]; then
        reused=$((reused + 1))
        return 0
    fi
    while [ "$running" -ge "$jobs" ]; do wait -n || true; running=$((running - 1)); done
    rm -rf "$dir"
    mkdir -p "$dir"
    printf '%s\n' "$cmd" >"$dir/bench.cmd"
    port_next=$((port_next + 1))
    log "strategies: $name: $cmd"
    (
        t0=$(date +%s)
        set +e
        # shellcheck disable=SC2086 # the options are words without blanks
        timeout $((120 + rounds * 40)) "$sim" --run "$dir" --base "$base" --port "$port_next" \
            --branches "$branches" --rounds "$rounds" --samples "$samples" --method lora \
            --epochs "$epochs" --holdout "$holdout" --classes "$classes" --quiet "$@" >"$dir/bench.log" 2>&1
        rc=$?
        echo $(($(date +%s) - t0)) >"$dir/bench.seconds"
        echo "$rc" >"$dir/bench.rc"
    ) &
    running=$((running + 1))
}
finish_runs() { wait || true; running=0; }

# The ledger summary of run directories, one JSON line each (read by the tables below).
summarise() {
    "$py" - "$@" <<'EOF'
import json, os, sys
for d in sys.argv[1:]:
    out = {"dir": os.path.basename(d), "ok": False}
    try:
        out["rc"] = int(open(os.path.join(d, "bench.rc")).read())
        out["seconds"] = int(open(os.path.join(d, "bench.seconds")).read())
        lines = [json.loads(l) for l in open(os.path.join(d, "state", "rounds.jsonl")) if l.strip()]
    except (OSError, ValueError):
        print(json.dumps(out)); continue
    agg = [l for l in lines if l.get("aggregated") and "server_eval_accuracy" in l]
    acc = [l["server_eval_accuracy"] for l in agg]
    out.update(ok=bool(acc), rounds=len(agg), attempts=len(lines),
               final=acc[-1] if acc else None,
               spread=(max(acc[-5:]) - min(acc[-5:])) if acc else None,
               rejected=sum(l.get("rejected_total", 0) for l in lines),
               dropped=sum(1 for l in lines for v in l.get("verdicts", []) if v.get("kind") == "dropped"),
               clipped=sum(1 for l in lines for v in l.get("verdicts", []) if v.get("kind") == "clipped"))
    print(json.dumps(out))
EOF
}
# cell JSON-LINE FORMAT: a table cell from a summary line.
cell() {
    "$py" - "$1" "$2" <<'EOF'
import json, sys
s, fmt = json.loads(sys.argv[1]), sys.argv[2]
if not s.get("ok"):
    print("failed (rc %s)" % s.get("rc", "?")); sys.exit()
short = "" if s["rounds"] == s["attempts"] else " %d/%d rounds" % (s["rounds"], s["attempts"])
if fmt == "skew":
    print("%.4f (%.4f)%s" % (s["final"], s["spread"], short))
else:
    marks = [("%d rejected" % s["rejected"]) if s["rejected"] else "",
             ("%d dropped" % s["dropped"]) if s["dropped"] else "",
             ("%d clipped" % s["clipped"]) if s["clipped"] else ""]
    marks = ", ".join(m for m in marks if m)
    print("%.4f%s%s" % (s["final"], " (" + marks + ")" if marks else "", short))
EOF
}
summary_of() { summarise "$work/runs/$1"; }
header() {
    # shellcheck disable=SC2016 # the backquotes are markdown
    printf '\n`bench/strategies.sh %s` (FEDTL_BIN=%s), table %s: %d branches, %d rounds, %d records of classes %s, LoRA, %d local epochs, holdout %s; each run `%s`\n\n' \
        "$args_given" "$bin" "$1" "$branches" "$rounds" "$samples" "$classes" "$epochs" "$holdout" \
        "scripts/simulate.sh --branches $branches --rounds $rounds --samples $samples --method lora --epochs $epochs --holdout $holdout --classes $classes --quiet --alpha A [STRATEGY] [ATTACK]"
}
failed=0

# ---- (a) skew ----
alphas=(0.1 0.3 1.0)
skew_runs() {
    local s k a
    for s in "${strategies[@]}"; do
        k=${s%%|*}
        if ! chosen "$k" || ! runnable "$k"; then continue; fi
        for a in "${alphas[@]}"; do
            # shellcheck disable=SC2046
            run "skew-$k-a$a" --alpha "$a" $(strategy_opts "$k")
        done
    done
}
skew_table() {
    header skew
    echo "Final server accuracy on t10k 5-9 and, in brackets, the spread (max - min) of the last five rounds."
    echo
    echo "| strategy | alpha 0.1 | alpha 0.3 | alpha 1.0 |"
    echo "|---|---|---|---|"
    local s k a row
    for s in "${strategies[@]}"; do
        k=${s%%|*}
        chosen "$k" || continue
        row="| $(label "$k") |"
        for a in "${alphas[@]}"; do
            if runnable "$k"; then
                row="$row $(cell "$(summary_of "skew-$k-a$a")" skew) |"
            else
                row="$row n/a (no --strategy in simulate.sh) |"
            fi
        done
        echo "$row"
    done
}

# The seed table: alpha 0.1, each seed of --seeds (seed 1 is the skew table's run).
seed_run() { if [ "$2" = 1 ]; then printf 'skew-%s-a0.1' "$1"; else printf 'seed-%s-s%s' "$1" "$2"; fi; }
seed_runs() {
    local k sd
    for k in "${seeded[@]}"; do
        if ! chosen "$k" || ! runnable "$k"; then continue; fi
        for sd in $seeds; do
            # seed 1 is skew_runs' alpha 0.1 run, started already (and maybe still running)
            [ "$sd" = 1 ] && continue
            # shellcheck disable=SC2046
            run "$(seed_run "$k" "$sd")" --alpha 0.1 --seed "$sd" $(strategy_opts "$k")
        done
    done
}
seed_table() {
    [ -n "$seeds" ] || return 0
    header skew-seeds
    echo "Alpha 0.1, each seed (\`--seed S\`; seed 1 is simulate.sh's default): final server accuracy and, in brackets, the spread of the last five rounds; the mean of both over the seeds."
    echo
    local hdr="| strategy |" sep="|---|" k sd row sums
    for sd in $seeds; do hdr="$hdr seed $sd |"; sep="$sep---|"; done
    echo "$hdr mean |"
    echo "$sep---|"
    for k in "${seeded[@]}"; do
        chosen "$k" || continue
        runnable "$k" || continue
        row="| $(label "$k") |" sums=()
        for sd in $seeds; do
            local line
            line=$(summary_of "$(seed_run "$k" "$sd")")
            row="$row $(cell "$line" skew) |"
            sums+=("$line")
        done
        row="$row $("$py" -c '
import json, sys
s = [json.loads(a) for a in sys.argv[1:]]
s = [x for x in s if x.get("ok")]
print("%.4f (%.4f)" % (sum(x["final"] for x in s) / len(s), sum(x["spread"] for x in s) / len(s)) if s else "n/a")' "${sums[@]}") |"
        echo "$row"
    done
}

# ---- (b) attacks ----
attack_alpha=0.3
attack_runs() {
    local r k m
    for r in "${robust[@]}"; do
        if ! chosen "$r" || ! runnable "$r"; then continue; fi
        # shellcheck disable=SC2046
        run "attack-$r-clean" --alpha "$attack_alpha" $(strategy_opts "$r")
        [ "$has_attack" = 1 ] || continue
        for m in "${counts[@]}"; do
            for k in "${attacks[@]}"; do
                # shellcheck disable=SC2046
                run "attack-$r-$k-$m" --alpha "$attack_alpha" $(strategy_opts "$r") \
                    --malicious "$m" --attack "$k"
            done
        done
    done
}
attack_table() {
    header attack
    echo "Alpha $attack_alpha. Final server accuracy on t10k 5-9; in brackets the updates the coordinator rejected and the ones the strategy dropped or clipped over the whole run. The malicious branches are the first ones (branch-00, branch-01), with each attack's default factor (scale 100, signflip 1, noise 1)."
    [ "$has_attack" = 1 ] || echo "The client at $bin has no --test-attack (build with -DFEDTL_TESTING=ON): clean runs only."
    echo
    local hdr="| rule | clean |" sep="|---|---|" r k m row
    for m in "${counts[@]}"; do for k in "${attacks[@]}"; do hdr="$hdr $m x $k |"; sep="$sep---|"; done; done
    echo "$hdr"
    echo "$sep"
    for r in "${robust[@]}"; do
        chosen "$r" || continue
        row="| $(label "$r") |"
        if ! runnable "$r"; then
            echo "$row n/a (no --strategy in simulate.sh) |"
            continue
        fi
        row="$row $(cell "$(summary_of "attack-$r-clean")" attack) |"
        for m in "${counts[@]}"; do
            for k in "${attacks[@]}"; do
                if [ "$has_attack" = 1 ]; then
                    row="$row $(cell "$(summary_of "attack-$r-$k-$m")" attack) |"
                else
                    row="$row n/a |"
                fi
            done
        done
        echo "$row"
    done
}

# ---- (c) personalisation ----
personal_alpha=0.1
personal_runs() {
    run "skew-fedavg-a$personal_alpha" --alpha "$personal_alpha"
    if has --personal-head; then
        run "personal-head-a$personal_alpha" --alpha "$personal_alpha" --personal-head --personalize-epochs 2
    fi
}
# Per-branch accuracy on its held-out records: "branch n accuracy" lines of adapter ADAPTER-OF-K
# (a printf pattern with %02d), or of a branch trained alone ("local").
personal_scores() {
    local dir=$1 what=$2 k name tr ho ad out
    mkdir -p "$dir/heldout"
    for ((k = 0; k < branches; k++)); do
        name=$(printf 'branch-%02d' "$k")
        tr=$dir/heldout/$name-train.csv ho=$dir/heldout/$name-heldout.csv
        [ -s "$ho" ] || "$bin/bench_heldout" "$dir/keys/$name.pub" "$(printf '%s/shards/client-%02d.csv' "$dir" "$k")" \
            "$classes" "$holdout" "$tr" "$ho" >/dev/null
        [ -s "$ho" ] || continue # nothing held out
        if [ "$what" = local ]; then
            ad=$dir/heldout/$name-local.fta
            [ -s "$ad" ] || "$bin/fedtl" finetune --base "$base" --data "$tr" --classes "$classes" \
                --method lora --epochs $((rounds * epochs)) --batch 32 --seed 1 --threads 1 --quiet --out "$ad" >/dev/null
        else
            # shellcheck disable=SC2059 # the pattern is ours
            ad=$(printf "$dir/$what" "$k")
        fi
        out=$("$bin/fedtl" eval --base "$base" --adapter "$ad" --data "$ho" --json)
        printf '%s %s\n' "$name" "$out"
    done
}
personal_cell() {
    "$py" -c '
import json, sys
acc = [json.loads(l.split(" ", 1)[1]) for l in sys.stdin if l.strip()]
acc = [a["accuracy"] for a in acc if a.get("n")]
print("%.4f | %.4f | %d" % (sum(acc) / len(acc), min(acc), len(acc)) if acc else "n/a | n/a | 0")'
}
personal_table() {
    header personal
    echo "Alpha $personal_alpha. Accuracy of each branch on its own held-out records (the split fedtl-client makes: bench_heldout), mean and worst over the branches that hold any out."
    echo
    echo "| adapter | mean | worst | branches |"
    echo "|---|---|---|---|"
    local d=$work/runs/skew-fedavg-a$personal_alpha
    if [ -f "$d/state/global.fta" ]; then
        echo "| global adapter (fedavg) | $(personal_scores "$d" state/global.fta | personal_cell) |"
        echo "| each branch alone (fedtl finetune, $((rounds * epochs)) epochs) | $(personal_scores "$d" local | personal_cell) |"
    else
        echo "| global adapter (fedavg) | failed | | |"
        failed=1
    fi
    d=$work/runs/personal-head-a$personal_alpha
    if ! has --personal-head; then
        echo "| personal head | n/a (no --personal-head in simulate.sh) | | |"
    elif [ -f "$d/branch-00/final.fta" ]; then
        echo "| personal head (--personalize-epochs 2) | $(personal_scores "$d" 'branch-%02d/final.fta' | personal_cell) |"
    else
        echo "| personal head | failed | | |"
        failed=1
    fi
}

# ---- run, then print ----
want() { [ -z "$only" ] || [ "$only" = "$1" ]; }
want skew && skew_runs
want skew && seed_runs
want attack && attack_runs
want personal && personal_runs
finish_runs
total_runs=${#used_runs[@]} total_seconds=0
for name in "${used_runs[@]}"; do
    total_seconds=$((total_seconds + $(cat "$work/runs/$name/bench.seconds" 2>/dev/null || echo 0)))
done
want skew && skew_table
want skew && seed_table
want attack && attack_table
want personal && personal_table
t_end=$(date +%s)
printf '\nwall time %d s; %d simulations (%d reused from %s) took %d s when they ran (%d s each on average, --jobs %d)\n' \
    $((t_end - t_start)) "$total_runs" "$reused" "$work/runs" "$total_seconds" \
    $((total_runs ? total_seconds / total_runs : 0)) "$jobs"
exit "$failed"
