#!/usr/bin/env bash
# simulate.sh: a whole federation on this machine, with the real programs as separate
# processes: fedtl-coordinator and N fedtl-client branches over CurveZMQ on loopback (or, with
# --netns, each branch in its own network namespace). Prepares keys, the base and the branch
# shards in the run directory, prints one line per round, and injects faults on request.
# Exit status: 0 when every round completed, 1 when the federation did not, 2 on bad usage.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: scripts/simulate.sh [options]
  --run DIR            run directory (default ./sim-run); keys, base, shards, logs, ledger
  --branches N         branches (default 10)
  --alpha A            Dirichlet label skew over the branches; 0 = IID (default 0.3)
  --rounds R           rounds (default 20)
  --method M           adapter method: lora, ffa-lora, head, bitfit (default lora)
  --rank R, --lr LR    adapter rank and local learning rate (default: the method's)
  --targets T,...      nodes or layers the adapter adapts (default: the base's, for the method;
                       `fedtl inspect BASE` lists them)
  --epochs E           local epochs per round (default 2)
  --batch B            local batch size (default 32)
  --seed S             seed for shards, adapter and selection (default 1)
  --deadline S         round deadline in seconds (default 60)
  --fraction F         fraction of branches per round (default 1)
  --min-clients N      updates needed to aggregate (default: half the branches, at least 1)
  --min-start N        registered branches needed to start a round (default: --min-clients);
                       the coordinator then waits up to 10 s for the others (--start-grace)
  --samples N          target-class records shared over the branches (default 5000)
  --holdout F          share of each shard held out for the branch's own evaluation (0.2)
  --classes C          target classes (default 5-9)
  --data D [--labels L]            training pool (default Fashion-MNIST train, IDX)
  --test D [--test-labels L]       server-side evaluation set (default Fashion-MNIST t10k)
  --base FILE          use this base; otherwise RUN/base.ftm, pretrained once and reused:
  --base-classes C     classes of the base's pretraining (default 0-4)
  --pretrain-epochs E  epochs of that pretraining (default 3)
  --images             each branch reads its shard as a folder of PNG class folders
                       (fedtl export-images) instead of CSV
  --port P             coordinator port (default 7000 + a number from the run directory)
  --insecure           plaintext transport (CurveZMQ off) on both sides
  --netns              each branch in its own network namespace, joined to the coordinator's
                       by a veth pair (needs root; removed on exit)
  --quiet              no per-round lines
strategies and personalisation:
  --strategy NAME      aggregation: fedavg fedavgm fedadagrad fedadam fedyogi fedprox median
                       trimmed-mean krum multi-krum (default fedavg)
  --strategy-opt K=V   a setting of the coordinator's [strategy] section, e.g. rule=median,
                       server_lr=0.01, server_lr_decay=0.9, tau=0.001, proximal_mu=0.1,
                       norm_bound_median=3
                       (repeatable; fedtl-coordinator --help lists them)
  --personal-head      FedPer: each branch keeps its own head
  --personalize-epochs N   branches fine-tune the final adapter N epochs on their records
  At the end RUN/summary.json holds the final server accuracy, the spread (max - min) of the
  last five rounds' server accuracy and, with personalisation, the branches' mean and worst
  held-out accuracy with the global and with their personalised adapters.
faults:
  --kill-branch K:R          SIGKILL branch K when round R starts
  --restart-coordinator R    SIGKILL the coordinator after round R and start it again
  --delay-branch K:R         freeze branch K (SIGSTOP) when round R starts, past the deadline,
                             then let it go on (SIGCONT): its late update must be rejected
attacks (a client built with cmake -DFEDTL_TESTING=ON, as scripts/test.sh builds it):
  --malicious N              the first N branches (branch-00...) attack (default 0)
  --attack KIND              scale, signflip, noise, nan or labelflip (client/fl_attack.h)
  --attack-factor F          the attack's F (default: the attack's own, scale 100, others 1)
EOF
}

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${FEDTL_BIN:-$root/build}
fm=/usr/share/datasets/fashion-mnist
run=$PWD/sim-run branches=10 alpha=0.3 rounds=20 method=lora rank="" targets="" lr="" epochs=2 batch=32
seed=1 deadline=60 fraction=1 min_clients="" min_start="" samples=5000 holdout=0.2 classes=5-9
data=$fm/train-images-idx3-ubyte.gz labels=$fm/train-labels-idx1-ubyte.gz
test_data=$fm/t10k-images-idx3-ubyte.gz test_labels=$fm/t10k-labels-idx1-ubyte.gz
base="" base_classes=0-4 pre_epochs=3 port="" insecure=0 netns=0 quiet=0
kill_branch="" restart_after="" delay_branch="" images=0
strategy=fedavg strategy_opts=() personal_head=0 personalize_epochs=0
malicious=0 attack="" attack_factor=0
while [ $# -gt 0 ]; do
    case $1 in
    -h | --help) usage; exit 0 ;;
    --insecure) insecure=1; shift; continue ;;
    --netns) netns=1; shift; continue ;;
    --quiet) quiet=1; shift; continue ;;
    --images) images=1; shift; continue ;;
    esac
    # strategies and personalisation
    case $1 in
    --personal-head) personal_head=1; shift; continue ;;
    --strategy | --strategy-opt | --personalize-epochs)
        [ $# -ge 2 ] || { echo "simulate.sh: $1 needs a value" >&2; exit 2; }
        case $1 in
        --strategy) strategy=$2 ;;
        --strategy-opt)
            [[ $2 == ?*=* ]] || { echo "simulate.sh: --strategy-opt $2: expected KEY=VALUE" >&2; exit 2; }
            strategy_opts+=("$2") ;;
        --personalize-epochs) personalize_epochs=$2 ;;
        esac
        shift 2; continue ;;
    esac
    [ $# -ge 2 ] || { echo "simulate.sh: $1 needs a value" >&2; usage >&2; exit 2; }
    case $1 in
    --malicious) malicious=$2 ;; --attack) attack=$2 ;; --attack-factor) attack_factor=$2 ;;
    --run) run=$2 ;; --branches) branches=$2 ;; --alpha) alpha=$2 ;; --rounds) rounds=$2 ;;
    --method) method=$2 ;; --rank) rank=$2 ;; --targets) targets=$2 ;; --lr) lr=$2 ;; --epochs) epochs=$2 ;;
    --batch) batch=$2 ;; --seed) seed=$2 ;; --deadline) deadline=$2 ;;
    --fraction) fraction=$2 ;; --min-clients) min_clients=$2 ;; --samples) samples=$2 ;;
    --min-start) min_start=$2 ;;
    --holdout) holdout=$2 ;; --classes) classes=$2 ;; --data) data=$2; labels="" ;;
    --labels) labels=$2 ;; --test) test_data=$2; test_labels="" ;;
    --test-labels) test_labels=$2 ;; --base) base=$2 ;; --base-classes) base_classes=$2 ;;
    --pretrain-epochs) pre_epochs=$2 ;; --port) port=$2 ;;
    --kill-branch) kill_branch=$2 ;; --restart-coordinator) restart_after=$2 ;;
    --delay-branch) delay_branch=$2 ;;
    *) echo "simulate.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
    shift 2
done
[ "$branches" -ge 1 ] 2>/dev/null || { echo "simulate.sh: --branches must be >= 1" >&2; exit 2; }
[ -n "$min_clients" ] || min_clients=$(( branches / 2 > 0 ? branches / 2 : 1 ))
[ -n "$min_start" ] || min_start=$min_clients
[ "$min_start" -ge "$min_clients" ] || min_start=$min_clients
for b in fedtl fedtl-coordinator fedtl-client; do
    [ -x "$bin/$b" ] || { echo "simulate.sh: $bin/$b missing: build first (cmake --build build) or set FEDTL_BIN" >&2; exit 2; }
done
# ---- attacks: only a test build's client has the switch ----
if ! [[ "$malicious" =~ ^[0-9]+$ ]] || [ "$malicious" -gt "$branches" ]; then
    echo "simulate.sh: --malicious $malicious: a count of branches, 0 to $branches" >&2; exit 2
fi
if [ "$malicious" -gt 0 ]; then
    case $attack in
    scale | signflip | noise | nan | labelflip) ;;
    "") echo "simulate.sh: --malicious $malicious needs --attack scale|signflip|noise|nan|labelflip" >&2; exit 2 ;;
    *) echo "simulate.sh: --attack $attack: not scale, signflip, noise, nan or labelflip" >&2; exit 2 ;;
    esac
    client_help=$("$bin"/fedtl-client --help 2>/dev/null || true)
    case $client_help in
    *--test-attack*) ;;
    *) echo "simulate.sh: --malicious needs a fedtl-client built with -DFEDTL_TESTING=ON; $bin/fedtl-client was built without it (cmake -S . -B build -DFEDTL_TESTING=ON && cmake --build build)" >&2
       exit 2 ;;
    esac
fi
[[ "$attack_factor" =~ ^[0-9]+([.][0-9]*)?([eE][-+]?[0-9]+)?$ ]] ||
    { echo "simulate.sh: --attack-factor $attack_factor: not a number >= 0" >&2; exit 2; }
# The flags of branch $1: the attack for the first $malicious branches, nothing for the others.
attack_args() { if [ "$1" -lt "$malicious" ]; then echo --test-attack "$attack" --test-attack-factor "$attack_factor"; fi; }

if [ "$netns" = 1 ]; then
    [ "$(id -u)" = 0 ] || { echo "simulate.sh: --netns needs root (network namespaces and veth pairs)" >&2; exit 2; }
    command -v ip >/dev/null || { echo "simulate.sh: --netns needs iproute2 (apt-get install iproute2)" >&2; exit 2; }
    [ "$branches" -le 250 ] || { echo "simulate.sh: --netns supports up to 250 branches" >&2; exit 2; }
fi
mkdir -p "$run"
run=$(cd "$run" && pwd)
# Paths the user gave stay valid after the cd into the run directory.
abspath() { case "$1" in /*|"") printf '%s' "$1" ;; *) printf '%s/%s' "$PWD" "$1" ;; esac; }
base=$(abspath "$base") data=$(abspath "$data") labels=$(abspath "$labels")
test_data=$(abspath "$test_data") test_labels=$(abspath "$test_labels")
if [ -n "$base" ] && [ ! -r "$base" ]; then echo "simulate.sh: --base $base: no such file" >&2; exit 2; fi
[ -n "$port" ] || port=$(( 7000 + $(printf '%s' "$run" | cksum | cut -d' ' -f1) % 2000 ))
log() { printf '%s\n' "$*" >&2; }
labels_opt() { [ -n "$1" ] && printf -- '--labels %s' "$1"; }

# ---- clean-up: every process we started, every namespace we made ----
pids=()
ns_prefix="fedtl$$"
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -KILL "$p" 2>/dev/null || true; done
    [ -n "${coord_pid:-}" ] && kill -KILL "$coord_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    if [ "$netns" = 1 ]; then
        for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$ns_prefix" || true); do
            ip netns delete "$ns" 2>/dev/null || true
        done
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- preparation: keys, base, shards ----
cd "$run"
mkdir -p keys allow logs
[ -f keys/hq.key ] || "$bin/fedtl" keygen --out keys/hq --name hq >/dev/null
for ((k = 0; k < branches; k++)); do
    name=$(printf 'branch-%02d' "$k")
    [ -f "keys/$name.key" ] || "$bin/fedtl" keygen --out "keys/$name" --name "$name" >/dev/null
    cp "keys/$name.pub" allow/
done
if [ -z "$base" ]; then
    base=$run/base.ftm
    if [ -s "$base" ] && "$bin/fedtl" inspect "$base" >/dev/null 2>&1; then
        log "simulate: reusing the base $base"
    else
        log "simulate: pretraining the base (cnn-small, classes $base_classes, $pre_epochs epochs)"
        # shellcheck disable=SC2046
        "$bin/fedtl" pretrain --data "$data" $(labels_opt "$labels") --classes "$base_classes" \
            --arch cnn-small --epochs "$pre_epochs" --seed "$seed" --quiet --out "$base" >/dev/null
    fi
fi
rm -rf shards
# shellcheck disable=SC2046
"$bin/fedtl" partition --data "$data" $(labels_opt "$labels") --classes "$classes" \
    --samples "$samples" --clients "$branches" $([ "$alpha" = 0 ] && echo --iid || echo --dirichlet "$alpha") \
    --min-size 10 --seed "$seed" --out-dir shards >logs/partition.txt
if [ "$images" = 1 ]; then # shards/client-NN.csv -> shards/client-NN/<class>/<record>.png
    for f in shards/client-*.csv; do "$bin/fedtl" export-images --data "$f" --out "${f%.csv}" --quiet; done
fi

# ---- the network: loopback, or one namespace per branch ----
coord_host=127.0.0.1
in_coord_ns=()
branch_ns() { :; }
if [ "$netns" = 1 ]; then
    ip netns add "${ns_prefix}c"
    ip -n "${ns_prefix}c" link set lo up
    in_coord_ns=(ip netns exec "${ns_prefix}c")
    for ((k = 0; k < branches; k++)); do
        ns="${ns_prefix}b$k"
        ip netns add "$ns"
        ip -n "$ns" link set lo up
        ip link add "fc$$_$k" netns "${ns_prefix}c" type veth peer name "fb$$_$k" netns "$ns"
        ip -n "${ns_prefix}c" addr add "10.231.$k.1/30" dev "fc$$_$k"
        ip -n "$ns" addr add "10.231.$k.2/30" dev "fb$$_$k"
        ip -n "${ns_prefix}c" link set "fc$$_$k" up
        ip -n "$ns" link set "fb$$_$k" up
    done
fi

# ---- the programs: the same command lines docker-compose.yml runs ----
sec=()
[ "$insecure" = 1 ] && sec=(--insecure)
coord_cmd=("$bin/fedtl-coordinator" --federation simulation --key keys/hq.key --allow allow
    --base "$base" --state-dir state --endpoint "tcp://0.0.0.0:$port" --rounds "$rounds"
    --fraction "$fraction" --min-clients "$min_clients" --min-start "$min_start" --start-grace 10
    --deadline "$deadline" --epochs "$epochs" --batch "$batch" --method "$method"
    --classes "$classes" --seed "$seed" --heartbeat-ms 500 --exit-when-done
    --eval-data "$test_data" "${sec[@]}")
[ -n "$test_labels" ] && coord_cmd+=(--eval-labels "$test_labels")
[ -n "$rank" ] && coord_cmd+=(--rank "$rank")
[ -n "$targets" ] && coord_cmd+=(--targets "$targets")
[ -n "$lr" ] && coord_cmd+=(--lr "$lr")
# The strategy goes through the coordinator's [strategy] section; personalisation as flags.
{
    printf '[strategy]\nname = %s\n' "$strategy"
    for kv in "${strategy_opts[@]:-}"; do
        [ -n "$kv" ] && printf '%s = %s\n' "${kv%%=*}" "${kv#*=}"
    done
} >strategy.ini
coord_cmd+=(--config strategy.ini --personalize-epochs "$personalize_epochs")
[ "$personal_head" = 1 ] && coord_cmd+=(--personal-head)
"${coord_cmd[@]}" --check-config >logs/coordinator-config.txt 2>&1 ||
    { echo "simulate.sh: the coordinator refuses its configuration:" >&2; cat logs/coordinator-config.txt >&2; exit 2; }
start_coordinator() {
    "${in_coord_ns[@]}" "${coord_cmd[@]}" >>logs/coordinator.log 2>&1 &
    coord_pid=$!
}
start_branch() {
    local k=$1 name host prefix=()
    name=$(printf 'branch-%02d' "$k")
    host=$coord_host
    if [ "$netns" = 1 ]; then
        prefix=(ip netns exec "${ns_prefix}b$k")
        host=10.231.$k.1
    fi
    mkdir -p "$name"
    # shellcheck disable=SC2046 # attack_args: words without blanks
    "${prefix[@]}" "$bin/fedtl-client" --coordinator "tcp://$host:$port" \
        --coordinator-key keys/hq.pub --key "keys/$name.key" \
        --data "shards/client-$(printf %02d "$k")$([ "$images" = 1 ] || echo .csv)" --holdout "$holdout" \
        --cache-dir "$name/cache" --out "$name/final.fta" --threads 1 --connect-timeout 120 \
        "${sec[@]}" $(attack_args "$k") >>"logs/$name.log" 2>&1 &
    pids[k]=$!
    disown "$!" # faults kill branches on purpose: no job-control noise
}

rm -rf state
: >logs/coordinator.log
log "simulate: $branches branches, alpha $alpha, $rounds rounds, method $method, port $port$([ "$netns" = 1 ] && echo ", network namespaces ${ns_prefix}*")"
log "simulate: strategy $strategy: $(grep -E '^(rule|server_lr|server_lr_decay|server_lr_decay_after|server_momentum|beta1|beta2|tau|proximal_mu|trim_beta|krum_f|krum_m|norm_bound|norm_bound_median) = .' logs/coordinator-config.txt | sed 's/ = /=/' | paste -sd ' ' -)$([ "$personal_head" = 1 ] && echo ", personal heads")$([ "$personalize_epochs" != 0 ] && echo ", personalisation $personalize_epochs epochs")"
[ "$malicious" = 0 ] || log "simulate: branches 0 to $((malicious - 1)) are malicious: --test-attack $attack --test-attack-factor $attack_factor"
start_coordinator
for ((k = 0; k < branches; k++)); do start_branch "$k"; done

# ---- watch the ledger, print rounds, inject faults ----
num() { sed -n "s/.*\"$1\":\([-0-9.e]*\).*/\1/p" <<<"$2"; }
printed=0
fault_at() { [ -n "$1" ] && [ "${1#*:}" = "$2" ]; }
kill_done=0 delay_done=0 restart_done=0
[ "$quiet" = 1 ] || printf '%-6s %-9s %-8s %-10s %-10s %-10s %-10s %s\n' round branches samples fed_acc server_acc bytes_in bytes_out strategy >&2
while :; do
    alive=1
    kill -0 "$coord_pid" 2>/dev/null || alive=0
    # Round starts in the log trigger the branch faults.
    for r in $(sed -n 's/.*event=round_start round=\([0-9]*\).*/\1/p' logs/coordinator.log | sort -un); do
        if [ "$kill_done" = 0 ] && fault_at "$kill_branch" "$r"; then
            k=${kill_branch%%:*}
            log "simulate: fault: killing branch $k in round $r"
            kill -KILL "${pids[k]}" 2>/dev/null || true
            kill_done=1
        fi
        if [ "$delay_done" = 0 ] && fault_at "$delay_branch" "$r"; then
            k=${delay_branch%%:*}
            log "simulate: fault: freezing branch $k for ${deadline}s + 2s in round $r"
            kill -STOP "${pids[k]}" 2>/dev/null || true
            ( sleep "$(( ${deadline%.*} + 2 ))"; kill -CONT "${pids[k]}" 2>/dev/null ) &
            delay_done=1
        fi
    done
    # New ledger lines: print them, and restart the coordinator after round R if asked.
    if [ -f state/rounds.jsonl ]; then
        total=$(wc -l <state/rounds.jsonl)
        while [ "$printed" -lt "$total" ]; do
            printed=$((printed + 1))
            line=$(sed -n "${printed}p" state/rounds.jsonl)
            r=$(num round "$line")
            if [ "$quiet" = 0 ]; then
                nb=$(grep -o '"branch":"[^"]*","samples"' <<<"$line" | wc -l)
                agg=$(grep -q '"aggregated":true' <<<"$line" && echo "" || echo " (not aggregated)")
                verdicts=$(num verdicts_total "$line")
                printf '%-6s %-9s %-8s %-10s %-10s %-10s %-10s %s%s%s\n' "$r" "$nb" "$(num samples "$line")" \
                    "$(num fed_eval_accuracy "$line")" "$(num server_eval_accuracy "$line")" \
                    "$(num bytes_in "$line")" "$(num bytes_out "$line")" "$strategy" \
                    "${verdicts:+ ($verdicts clipped or dropped)}" "$agg" >&2
            fi
            if [ "$restart_done" = 0 ] && [ -n "$restart_after" ] && [ "$r" = "$restart_after" ] &&
                grep -q '"aggregated":true' <<<"$line"; then
                log "simulate: fault: SIGKILL to the coordinator after round $r, then a restart"
                kill -KILL "$coord_pid" 2>/dev/null || true
                wait "$coord_pid" 2>/dev/null || true
                start_coordinator
                restart_done=1
                alive=1
            fi
        done
    fi
    [ "$alive" = 1 ] || break
    sleep 0.2
done
set +e
wait "$coord_pid"
coord_rc=$?
set -e
coord_pid=""
# Give the branches a moment to save the final adapter and leave.
for ((i = 0; i < 50; i++)); do
    left=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && left=$((left + 1)); done
    [ "$left" = 0 ] && break
    sleep 0.2
done
done_rounds=$(grep -c '"aggregated":true' state/rounds.jsonl 2>/dev/null || true)
finals=$(ls branch-*/final.fta 2>/dev/null | wc -l)
log "simulate: coordinator exit $coord_rc, $done_rounds of $rounds rounds aggregated, $finals branches hold the final adapter; ledger $run/state/rounds.jsonl, logs $run/logs/"

# ---- the summary: server accuracy, its spread, and the branches' own figures ----
# Numbers only (and a strategy name from the coordinator's fixed list): written with printf.
server_accs=$(grep '"aggregated":true' state/rounds.jsonl 2>/dev/null |
    sed -n 's/.*"server_eval_accuracy":\([-0-9.e]*\).*/\1/p' || true)
stats() { # count, mean, min, max of the numbers on stdin ("null"s when there are none)
    awk '{ n++; s += $1; if (n == 1 || $1 < lo) lo = $1; if (n == 1 || $1 > hi) hi = $1 }
         END { if (n) printf "%d %.5f %.5f %.5f", n, s / n, lo, hi; else print "0 null null null" }'
}
read -r _ _ lo5 hi5 <<<"$(tail -n 5 <<<"$server_accs" | grep . | stats)"
final_acc=$(tail -n 1 <<<"$server_accs" | grep . || echo null)
spread=null
[ "$lo5" != null ] && spread=$(awk -v a="$hi5" -v b="$lo5" 'BEGIN { printf "%.5f", a - b }')
personal_json=""
if [ "$personal_head" = 1 ] || [ "$personalize_epochs" != 0 ]; then
    if [ "$personalize_epochs" != 0 ]; then # each branch's final line
        pairs=$(cat logs/branch-*.log 2>/dev/null | grep 'event=final ' |
            sed -n 's/.*global_accuracy=\([0-9.]*\) personal_accuracy=\([0-9.]*\).*/\1 \2/p' || true)
        source_of="final"
    else # the last aggregated round's participants
        pairs=$(grep '"aggregated":true' state/rounds.jsonl | tail -n 1 | grep -o '"eval_accuracy":[0-9.e-]*,"personal_accuracy":[0-9.e-]*' |
            sed 's/"eval_accuracy":\([^,]*\),"personal_accuracy":\(.*\)/\1 \2/' || true)
        source_of="last_round"
    fi
    read -r nb gmean gworst _ <<<"$(awk '{ print $1 }' <<<"$pairs" | grep . | stats)"
    read -r _ pmean pworst _ <<<"$(awk '{ print $2 }' <<<"$pairs" | grep . | stats)"
    personal_json=$(printf ',"personal":{"from":"%s","branches":%s,"global_mean":%s,"global_worst":%s,"personal_mean":%s,"personal_worst":%s}' \
        "$source_of" "$nb" "$gmean" "$gworst" "$pmean" "$pworst")
    log "simulate: branches' held-out accuracy ($source_of, $nb branches): global mean $gmean worst $gworst, personalised mean $pmean worst $pworst"
fi
printf '{"strategy":"%s","rounds":%s,"aggregated":%s,"final_server_accuracy":%s,"last5_spread":%s,"personal_head":%s,"personalize_epochs":%s%s}\n' \
    "$strategy" "$rounds" "${done_rounds:-0}" "$final_acc" "$spread" \
    "$([ "$personal_head" = 1 ] && echo true || echo false)" "$personalize_epochs" "$personal_json" >summary.json
log "simulate: final server accuracy $final_acc, last-five-rounds spread $spread; summary $run/summary.json"
[ "$coord_rc" = 0 ] && [ "$done_rounds" = "$rounds" ]
