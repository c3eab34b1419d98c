#!/usr/bin/env bash
# faults.sh: a fault suite for a whole federation of real programs (fedtl-coordinator and
# fedtl-client processes over CurveZMQ), built on scripts/simulate.sh, on tiny synthetic mlp
# data so every run is quick. Faults: (a) a branch killed while training, (b) a branch killed
# right after it sent its update, (c) the coordinator SIGKILLed at many random moments (inside
# rounds, around aggregation and its state writes) and restarted each time, (d) a branch's
# network cut for 30 s (network namespaces, root), (e) a straggler past the deadline, (f) the
# state directory's disk full (tmpfs, root). After each it checks that the state is readable
# and never goes backwards, that the federation completes and that the logs say what happened,
# and prints a table of fault, outcome and figures.
# Exit status: 0 when every check passed (skips allowed), 1 when one failed, 2 on bad usage.
set -uo pipefail

usage() {
    cat <<'EOF'
usage: scripts/faults.sh [--work DIR] [--only a,b,c,d,e,f] [--kills N] [--seed S] [--keep]
  --work DIR   scratch directory (default: a new one under $TMPDIR or /tmp; removed at the end
               unless --keep or a check failed)
  --only LIST  run only these faults (default a,b,c,d,e,f)
  --kills N    coordinator kills in (c) (default 20)
  --seed S     seed of the random kill moments (default: from the clock; printed)
  --keep       keep the scratch directory
The programs come from $FEDTL_BIN (default ./build). (d) and (f) need root; they are skipped
with a message otherwise.
EOF
}

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${FEDTL_BIN:-$root/build}
work="" only=a,b,c,d,e,f kills=20 seed="" keep=0
while [ $# -gt 0 ]; do
    case $1 in
    -h | --help) usage; exit 0 ;;
    --keep) keep=1; shift; continue ;;
    esac
    [ $# -ge 2 ] || { echo "faults.sh: $1 needs a value" >&2; usage >&2; exit 2; }
    case $1 in
    --work) work=$2 ;; --only) only=$2 ;; --kills) kills=$2 ;; --seed) seed=$2 ;;
    *) echo "faults.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
    shift 2
done
for b in fedtl fedtl-coordinator fedtl-client; do
    [ -x "$bin/$b" ] || { echo "faults.sh: $bin/$b missing: build first or set FEDTL_BIN" >&2; exit 2; }
done
[ -n "$seed" ] || seed=$(( $(date +%s) % 32768 ))
RANDOM=$seed
if [ -z "$work" ]; then
    work=$(mktemp -d "${TMPDIR:-/tmp}/fedtl-faults-XXXXXX")
else
    mkdir -p "$work"
fi
work=$(cd "$work" && pwd)
is_root=0
[ "$(id -u)" = 0 ] && is_root=1
have_inotify=0
command -v inotifywait >/dev/null && have_inotify=1

# ---- book-keeping: processes we started, mounts we made, the results table ----
pids=()     # coordinators and branches started here
sims=()     # simulate.sh runs in the background
mounts=()   # tmpfs mounts
rows=()     # "fault|outcome|figures"
failed=0
cleanup() {
    # Only jobs of this shell that were not reaped yet: their pids cannot have been reused.
    local p m running
    running=" $(jobs -p | tr '\n' ' ') "
    for p in "${sims[@]:-}"; do
        case $running in *" $p "*) kill -TERM "$p" 2>/dev/null ;; esac # it removes its namespaces
    done
    for p in "${pids[@]:-}"; do
        case $running in *" $p "*) kill -KILL "$p" 2>/dev/null ;; esac
    done
    wait 2>/dev/null
    for m in "${mounts[@]:-}"; do [ -n "$m" ] && umount "$m" 2>/dev/null; done
}
finish() {
    local rc=$?
    trap - EXIT INT TERM
    cleanup
    if [ "$keep" = 0 ] && [ "$failed" = 0 ] && [ "$rc" = 0 ]; then rm -rf "$work"; fi
    exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT TERM

log() { printf 'faults: %s\n' "$*" >&2; }
row() { rows+=("$1|$2|$3"); [ "$2" = FAIL ] && failed=1; log "($1) $2: $3"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
# A sleep without a fork, down to sub-millisecond: read on a pipe we also hold for writing.
exec {nap_fd}<> <(:)
nap() { read -r -t "$1" -u "$nap_fd" _ 2>/dev/null || true; }
# A random fraction in [0, max) seconds, printed with 6 decimals.
rnd() { awk -v r="$RANDOM$RANDOM" -v m="$1" 'BEGIN { printf "%.6f", (r % 1000000) / 1e6 * m }'; }

# ---- state and ledger checks ----
# Round in an adapter file's header (fedtl inspect), or "bad".
adapter_round() {
    local r
    r=$("$bin/fedtl" inspect --json "$1" 2>/dev/null | sed -n 's/.*"round":\([0-9]*\).*/\1/p')
    [ -n "$r" ] && echo "$r" || echo bad
}
# Highest aggregated round in a ledger (0 when none).
ledger_last() {
    [ -f "$1" ] || { echo 0; return; }
    grep '"aggregated":true' "$1" | sed -n 's/^{"round":\([0-9]*\),.*/\1/p' | sort -n | tail -1 |
        awk '{ v = $1 } END { print v + 0 }'
}
# Ledger lines that are not one whole JSON object each (0 when all are).
ledger_bad_lines() {
    [ -f "$1" ] || { echo 0; return; }
    awk '!/^\{"round":[0-9]+,"aggregated":(true|false),.*\}$/ { n++ } END { print n + 0 }' "$1"
}
# Aggregated rounds 1..R missing from the ledger, comma-separated ("" when none).
ledger_missing() {
    local r have out=""
    have=" $(grep '"aggregated":true' "$1" 2>/dev/null | sed -n 's/^{"round":\([0-9]*\),.*/\1/p' | tr '\n' ' ') "
    for ((r = 1; r <= $2; r++)); do
        case $have in *" $r "*) ;; *) out+="${out:+,}$r" ;; esac
    done
    echo "$out"
}
# Participants of round R's aggregated ledger line.
ledger_participants() {
    grep "^{\"round\":$2,\"aggregated\":true" "$1" 2>/dev/null | tail -1 |
        sed 's/"rejected":.*//' | grep -o '"branch":"[^"]*"' | wc -l
}
ledger_duration() {
    grep "^{\"round\":$2,\"aggregated\":true" "$1" 2>/dev/null | tail -1 |
        sed -n 's/.*"duration_s":\([0-9.]*\).*/\1/p'
}
# The common end check of a run: global.fta readable at the last round, the ledger whole and
# complete. Prints "problem; problem" or nothing.
check_final() {
    local run=$1 rounds=$2 g bad miss out=""
    g=$(adapter_round "$run/state/global.fta")
    [ "$g" = "$rounds" ] || out+="global.fta round $g, expected $rounds; "
    bad=$(ledger_bad_lines "$run/state/rounds.jsonl")
    [ "$bad" = 0 ] || out+="$bad malformed ledger lines; "
    miss=$(ledger_missing "$run/state/rounds.jsonl" "$rounds")
    [ -z "$miss" ] || out+="ledger lacks aggregated rounds $miss; "
    echo "$out"
}

# ---- data, base, the simulate.sh wrapper ----
gen_data() { # seed n -> CSV: label,16 features; 10 classes around fixed centres
    awk -v seed="$1" -v n="$2" -v d=16 'BEGIN {
        srand(1); for (c = 0; c < 10; c++) for (j = 0; j < d; j++) mu[c, j] = (rand() * 2 - 1) * 2
        srand(seed)
        for (i = 0; i < n; i++) {
            c = i % 10; line = c
            for (j = 0; j < d; j++) {
                u1 = rand(); if (u1 < 1e-12) u1 = 1e-12; u2 = rand()
                line = line sprintf(",%.4f", mu[c, j] + sqrt(-2 * log(u1)) * cos(6.283185307 * u2))
            }
            print line
        } }'
}
sim_opts() { # simulate.sh's options for the tiny data
    sim_args=(--base "$work/base.ftm" --data "$work/pool.csv" --test "$work/test.csv"
        --classes 5-9 --alpha 1.0 --samples 3000 --quiet)
}
sim() { # simulate.sh on the tiny data; extra options follow
    sim_opts
    FEDTL_BIN=$bin "$root/scripts/simulate.sh" "${sim_args[@]}" "$@"
}
# Pid of a fedtl-client we started (through simulate.sh) for branch NAME in run RUN; reads
# /proc with builtins only (no fork per process: the machine may run hundreds).
branch_pid() {
    local run=$1 name=$2 p args
    for p in /proc/[0-9]*; do
        { mapfile -d '' -t args <"$p/cmdline"; } 2>/dev/null || continue
        [ "${args[0]:-}" = "$bin/fedtl-client" ] || continue
        case " ${args[*]} " in *" keys/$name.key "*) ;; *) continue ;; esac
        [ "$(readlink "$p/cwd" 2>/dev/null)" = "$run" ] && { echo "${p#/proc/}"; return 0; }
    done
    return 1
}
# Wait up to T seconds for PATTERN (grep -E) in FILE; 0 when it appeared.
wait_for() {
    local file=$1 pat=$2 t=$3 end
    end=$(awk -v a="$(now)" -v t="$t" 'BEGIN { printf "%.3f", a + t }')
    until grep -Eq -- "$pat" "$file" 2>/dev/null; do
        awk -v e="$end" -v n="$(now)" 'BEGIN { exit !(n > e) }' && return 1
        nap 0.005
    done
}

# ---- our own federation (for the coordinator kills and the full disk) ----
# A run directory with the keys, allow-list and shards simulate.sh prepared in $work/prep.
own_prepare() {
    mkdir -p "$1/logs" "$1/state"
    cp -r "$work/prep/keys" "$work/prep/allow" "$work/prep/shards" "$1/"
}
own_coord_start() { # run rounds epochs deadline port
    (cd "$1" && exec "$bin/fedtl-coordinator" --federation simulation --key keys/hq.key \
        --allow allow --base "$work/base.ftm" --state-dir state --endpoint "tcp://127.0.0.1:$5" \
        --rounds "$2" --fraction 1 --min-clients 2 --min-start 2 --start-grace 10 --deadline "$4" \
        --epochs "$3" --batch 32 --method lora --classes 5-9 --seed 1 --heartbeat-ms 500 \
        --exit-when-done --eval-data "$work/test.csv" >>logs/coordinator.log 2>&1) &
    coord_pid=$!
    pids+=("$coord_pid")
}
own_branches_start() { # run port
    local k name
    branch_pids=()
    for k in 0 1 2; do
        name=$(printf 'branch-%02d' "$k")
        mkdir -p "$1/$name"
        (cd "$1" && exec "$bin/fedtl-client" --coordinator "tcp://127.0.0.1:$2" \
            --coordinator-key keys/hq.pub --key "keys/$name.key" --data "shards/client-0$k.csv" \
            --holdout 0.2 --cache-dir "$name/cache" --out "$name/final.fta" --threads 1 \
            --connect-timeout 120 >>"logs/$name.log" 2>&1) &
        branch_pids+=("$!")
        pids+=("$!")
    done
}
# Wait up to T s for the branches to exit; how many exited 0.
own_branches_wait() {
    local t=$1 ok=0 p i
    for ((i = 0; i < t * 10; i++)); do
        local alive=0
        for p in "${branch_pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        nap 0.1
    done
    for p in "${branch_pids[@]}"; do
        kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null && ok=$((ok + 1))
    done
    echo "$ok"
}
free_port() { echo $(( 20000 + (RANDOM * 7 + $$) % 30000 )); }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# ---- (a) a branch killed while it trains ----
fault_a() {
    local run=$work/a rc t0 problems figs r2 d2 lost
    log "(a) branch killed during training (simulate.sh --kill-branch 2:2, 120 local epochs)"
    t0=$(now)
    sim --run "$run" --branches 3 --rounds 4 --epochs 120 --deadline 8 --min-clients 2 \
        --kill-branch 2:2 >"$work/a.out" 2>&1
    rc=$?
    problems=$(check_final "$run" 4)
    [ "$rc" = 0 ] || problems+="simulate.sh exit $rc; "
    grep -q 'killing branch 2 in round 2' "$work/a.out" || problems+="the kill did not happen; "
    local when="before its task"
    grep -q 'event=task round=2' "$run/logs/branch-02.log" && when="while training"
    grep -q 'event=round round=2 ' "$run/logs/branch-02.log" && when="after its upload"
    [ "$when" = "while training" ] || problems+="killed $when, not while training; "
    r2=$(ledger_participants "$run/state/rounds.jsonl" 2)
    d2=$(ledger_duration "$run/state/rounds.jsonl" 2)
    [ "$r2" = 2 ] || problems+="round 2 had $r2 participants, expected 2; "
    lost=$(grep -c 'event=branch_lost.*branch=branch-02' "$run/logs/coordinator.log")
    [ "$lost" -ge 1 ] || problems+="the coordinator did not log branch_lost for branch-02; "
    figs="killed $when; rounds $(ledger_last "$run/state/rounds.jsonl")/4; round 2: $r2 of 3 updates, ${d2}s (waited for the deadline, 8s); branch_lost logged; total $(since "$t0")s"
    row a "$([ -z "$problems" ] && echo PASS || echo FAIL)" "$figs${problems:+ | $problems}"
}

# ---- (b) a branch killed right after it sent its update ----
fault_b() {
    local run=$work/b spid t0 p="" problems figs delivered r2 d2 rc
    log "(b) branch killed right after its log says it sent the round-2 update"
    t0=$(now)
    rm -rf "$run"
    sim_opts
    FEDTL_BIN=$bin "$root/scripts/simulate.sh" "${sim_args[@]}" --run "$run" --branches 3 \
        --rounds 4 --epochs 60 --deadline 8 --min-clients 2 >"$work/b.out" 2>&1 &
    spid=$!
    sims+=("$spid")
    problems=""
    wait_for "$run/logs/branch-01.log" 'event=start' 60
    p=$(branch_pid "$run" branch-01) || problems+="branch-01's process not found; "
    if [ -n "$p" ] && wait_for "$run/logs/branch-01.log" 'event=round round=2 .*bytes=' 60; then
        kill -KILL "$p"
        log "(b) killed branch-01 (pid $p) after its upload"
    else
        problems+="branch-01 never logged its round-2 upload; "
    fi
    wait "$spid"
    rc=$?
    [ "$rc" = 0 ] || problems+="simulate.sh exit $rc; "
    problems+=$(check_final "$run" 4)
    delivered=no
    grep -q 'event=update_accepted .*branch=branch-01 round=2' "$run/logs/coordinator.log" && delivered=yes
    r2=$(ledger_participants "$run/state/rounds.jsonl" 2)
    d2=$(ledger_duration "$run/state/rounds.jsonl" 2)
    figs="update reached the coordinator: $delivered; round 2: $r2 of 3 updates, ${d2}s; round 3 (the dead branch still selected) $(ledger_duration "$run/state/rounds.jsonl" 3)s; rounds $(ledger_last "$run/state/rounds.jsonl")/4; later rounds $(ledger_participants "$run/state/rounds.jsonl" 4) participants; total $(since "$t0")s"
    row b "$([ -z "$problems" ] && echo PASS || echo FAIL)" "$figs${problems:+ | $problems}"
}

# ---- (c) the coordinator SIGKILLed at random moments, restarted each time ----
# Kill moments, in turn: a random delay within the round; just after the round's last update
# was accepted plus 0-3 ms (aggregation and the state writes); just after a round_done line
# plus 0-1 ms (the next round's start); 0-4 ms after the commit created its first temporary
# file in the state dir (inotifywait, from inotify-tools: inside the state writes; without the
# tool these kills aim at the last update instead).
c_arm() { # mode -> waits for the moment; sets $aim to what it aimed at (no subshell: no delay)
    local clog=$1 mode=$2 sel cnt i d
    case $mode in
    0) d=$(rnd 0.6); nap "$d"; aim="random+${d}s" ;;
    1)
        sel=$(grep 'event=round_start' "$clog" | tail -1 | sed -n 's/.* selected=\([0-9]*\).*/\1/p')
        for ((i = 0; i < 4000; i++)); do
            cnt=$(tac "$clog" | awk '/event=round_start/ { exit } /event=update_accepted/ { n++ } END { print n + 0 }')
            [ "$cnt" -ge "${sel:-3}" ] && break
            kill -0 "$coord_pid" 2>/dev/null || break
            nap 0.002
        done
        d=$(rnd 0.003); nap "$d"; aim="last-update+${d}s" ;;
    2)
        local n0; n0=$(grep -c 'event=round_done' "$clog")
        for ((i = 0; i < 4000; i++)); do
            [ "$(grep -c 'event=round_done' "$clog")" -gt "$n0" ] && break
            kill -0 "$coord_pid" 2>/dev/null || break
            nap 0.002
        done
        d=$(rnd 0.001); nap "$d"; aim="round_done+${d}s" ;;
    3)
        d=$(rnd 0.004)
        inotifywait -q -t 30 -e create --format %f "$(dirname "$clog")/../state" >/dev/null 2>&1 &
        local iw=$!
        wait "$iw"
        nap "$d"
        aim="state-write+${d}s" ;;
    esac
}

fault_c() {
    local run=$work/c rounds=60 port t0 i j g l prev_g=0 problems="" rec=() hit_commit=0 lag_json=0
    local tmp_left=0 t_restart starts0 mode bad js ok rc redone figs
    aim=""
    log "(c) coordinator SIGKILLed $kills times at random moments (seed $seed), restarted each time"
    [ "$have_inotify" = 1 ] || log "(c) no inotifywait (apt-get install inotify-tools): kills aimed at state writes use the log instead"
    t0=$(now)
    rm -rf "$run"
    own_prepare "$run"
    port=$(free_port)
    local clog=$run/logs/coordinator.log
    : >"$clog"
    own_coord_start "$run" "$rounds" 40 10 "$port"
    own_branches_start "$run" "$port"
    t_restart=$(now)
    for ((i = 1; i <= kills; i++)); do
        starts0=$i # this coordinator is the i-th started
        # Wait for this coordinator's first round, then time the recovery.
        for ((j = 0; j < 3000; j++)); do
            awk -v n="$starts0" '/event=coordinator_start/ { s++ } s == n && /event=round_start/ { f = 1 } END { exit !f }' "$clog" && break
            kill -0 "$coord_pid" 2>/dev/null || break
            nap 0.01
        done
        rec+=("$(since "$t_restart")")
        g=$(adapter_round "$run/state/global.fta" 2>/dev/null)
        if [ "$g" != bad ] && [ "$g" -ge $((rounds - 4)) ]; then
            log "(c) stopping the kills at $((i - 1)): round $g of $rounds reached"
            break
        fi
        mode=$((i % 4))
        [ "$mode" = 3 ] && [ "$have_inotify" = 0 ] && mode=1
        c_arm "$clog" "$mode"
        kill -KILL "$coord_pid" 2>/dev/null
        wait "$coord_pid" 2>/dev/null
        # After each kill: global.fta readable, within one round of the ledger, not backwards.
        if [ -f "$run/state/global.fta" ]; then g=$(adapter_round "$run/state/global.fta"); else g=0; fi
        l=$(ledger_last "$run/state/rounds.jsonl")
        bad=$(ledger_bad_lines "$run/state/rounds.jsonl")
        js=$(sed -n 's/.*"round":\([0-9]*\).*/\1/p' "$run/state/state.json" 2>/dev/null)
        [ "$g" = bad ] && problems+="kill $i ($aim): global.fta unreadable; "
        if [ "$g" != bad ]; then
            [ "$g" -lt "$prev_g" ] && problems+="kill $i: global.fta went back from $prev_g to $g; "
            [ "$g" -le $((l + 1)) ] || problems+="kill $i: global.fta round $g > ledger $l + 1; "
            [ "$g" -ge "$l" ] || problems+="kill $i: ledger round $l ahead of global.fta $g; "
            [ "$g" = $((l + 1)) ] && hit_commit=$((hit_commit + 1))
            [ -n "$js" ] && [ "$js" != "$g" ] && lag_json=$((lag_json + 1))
            prev_g=$g
        fi
        [ "$bad" = 0 ] || problems+="kill $i ($aim): $bad malformed ledger lines; "
        tmp_left=$(find "$run/state" -name '*.tmp.*' | wc -l)
        log "(c) kill $i/$kills at $aim: global.fta round $g, ledger $l, state.json ${js:-none}, tmp files $tmp_left"
        t_restart=$(now)
        own_coord_start "$run" "$rounds" 40 10 "$port"
    done
    # The last coordinator runs to the end.
    for ((j = 0; j < 1800; j++)); do kill -0 "$coord_pid" 2>/dev/null || break; nap 0.1; done
    wait "$coord_pid"
    rc=$?
    [ "$rc" = 0 ] || problems+="final coordinator exit $rc; "
    ok=$(own_branches_wait 30)
    [ "$ok" = 3 ] || problems+="$ok of 3 branches saved the final adapter; "
    problems+=$(check_final "$run" "$rounds")
    redone=$(sed -n 's/.*event=round_start round=\([0-9]*\).*/\1/p' "$clog" | sort -n | uniq -d | wc -l)
    local nk; nk=$(grep -c 'event=coordinator_start' "$clog")
    figs="$((nk - 1)) kills, $(grep -c 'event=round_done' "$clog") rounds aggregated, $rounds/$rounds at the end; recovery (restart to next round_start) median $(printf '%s\n' "${rec[@]:1}" | median)s max $(printf '%s\n' "${rec[@]:1}" | sort -n | tail -1)s; rounds started again after a kill: $redone; kills in the commit window (global.fta ahead of ledger): $hit_commit; state.json behind global.fta: $lag_json; stale *.tmp.* left: $tmp_left; total $(since "$t0")s"
    row c "$([ -z "$problems" ] && echo PASS || echo FAIL)" "$figs${problems:+ | $problems}"
}

# ---- (d) a branch's network cut for 30 s ----
fault_d() {
    local run=$work/d spid ns dev t_up problems="" rec_s="-" rc later regs
    if [ "$is_root" != 1 ]; then row d SKIP "needs root (network namespaces)"; return; fi
    if ! ip netns add "fedtl-probe-$$" 2>/dev/null; then row d SKIP "network namespaces unavailable"; return; fi
    ip netns delete "fedtl-probe-$$"
    log "(d) branch-01's link down for 30 s (simulate.sh --netns), rounds need all 3 branches"
    rm -rf "$run"
    sim_opts
    FEDTL_BIN=$bin "$root/scripts/simulate.sh" "${sim_args[@]}" --run "$run" --netns \
        --branches 3 --rounds 4 --epochs 10 --deadline 8 --min-clients 3 >"$work/d.out" 2>&1 &
    spid=$!
    sims+=("$spid")
    # simulate.sh names the namespaces fedtl<its pid>b<k> and the branch end fb<its pid>_<k>
    # (and prints the prefix "network namespaces fedtl<pid>*").
    local id=$spid
    if wait_for "$run/logs/coordinator.log" 'event=round_start round=2' 90; then
        id=$(sed -n 's/.*network namespaces fedtl\([0-9]*\)\*.*/\1/p' "$work/d.out" | head -1)
        [ -n "$id" ] || id=$spid
        ns="fedtl${id}b1" dev="fb${id}_1"
        ip -n "$ns" link set "$dev" down && log "(d) $ns/$dev down"
        sleep 30
        ip -n "$ns" link set "$dev" up && log "(d) $ns/$dev up"
        t_up=$(now)
        if wait_for "$run/logs/coordinator.log" 'event=round_done round=2 ' 120; then rec_s=$(since "$t_up"); fi
    else
        problems+="round 2 never started; "
    fi
    wait "$spid"
    rc=$?
    [ "$rc" = 0 ] || problems+="simulate.sh exit $rc; "
    problems+=$(check_final "$run" 4)
    regs=$(grep -c 'event=branch_registered .*branch=branch-01 .*has_base=1' "$run/logs/coordinator.log")
    [ "$regs" -ge 2 ] || problems+="branch-01 did not register again; "
    later=$(grep '^{"round":[34],"aggregated":true' "$run/state/rounds.jsonl" | grep -c '"branch":"branch-01"')
    [ "$later" -ge 1 ] || problems+="branch-01 took no part after the cut; "
    local lost short silent
    lost=$(grep -c 'event=branch_lost .*branch=branch-01' "$run/logs/coordinator.log")
    short=$(grep -c 'event=round_short' "$run/logs/coordinator.log")
    silent=$(grep -c 'event=coordinator_silent' "$run/logs/branch-01.log")
    figs="rounds $(ledger_last "$run/state/rounds.jsonl")/4; branch-01 lost $lost, registered (with the base) $regs times, in $later later rounds; round_short $short; branch logged coordinator_silent $silent; link up to round 2 done ${rec_s}s"
    row d "$([ -z "$problems" ] && echo PASS || echo FAIL)" "$figs${problems:+ | $problems}"
}

# ---- (e) a straggler past the deadline ----
fault_e() {
    local run=$work/e rc problems figs rej r2 d2 later
    log "(e) straggler: branch-01 frozen past the 5 s deadline in round 2 (simulate.sh --delay-branch 1:2)"
    sim --run "$run" --branches 3 --rounds 8 --epochs 100 --deadline 5 --min-clients 2 \
        --delay-branch 1:2 >"$work/e.out" 2>&1
    rc=$?
    problems=$(check_final "$run" 8)
    [ "$rc" = 0 ] || problems+="simulate.sh exit $rc; "
    rej=$(grep -c 'event=receipt round=2 accepted=no' "$run/logs/branch-01.log")
    [ "$rej" -ge 1 ] || problems+="branch-01's late round-2 update was not refused with a receipt; "
    r2=$(ledger_participants "$run/state/rounds.jsonl" 2)
    d2=$(ledger_duration "$run/state/rounds.jsonl" 2)
    [ "$r2" = 2 ] || problems+="round 2 had $r2 participants, expected 2; "
    later=$(grep '^{"round":[3-8],"aggregated":true' "$run/state/rounds.jsonl" | grep -c '"branch":"branch-01"')
    [ "$later" -ge 1 ] || problems+="the straggler took no part in rounds 3-8; "
    figs="rounds $(ledger_last "$run/state/rounds.jsonl")/8; round 2: $r2 of 3 updates, ${d2}s (deadline 5s); late update refused: $([ "$rej" -ge 1 ] && echo yes || echo no) ($(grep -o 'event=receipt round=2 accepted=no reason="[^"]*"' "$run/logs/branch-01.log" | head -1 | sed 's/.*reason=//')); straggler back in $later of rounds 3-8"
    row e "$([ -z "$problems" ] && echo PASS || echo FAIL)" "$figs${problems:+ | $problems}"
}

# ---- (f) the state directory's disk full ----
fault_f() {
    local run=$work/f port problems="" rc g l figs fail_line t_fill ok tmp_left behaviour
    if [ "$is_root" != 1 ]; then row f SKIP "needs root (mount -t tmpfs)"; return; fi
    log "(f) state dir on a 1 MiB tmpfs, filled up after round 2"
    rm -rf "$run"
    own_prepare "$run"
    if ! mount -t tmpfs -o size=1m fedtl-faults "$run/state"; then row f SKIP "mount -t tmpfs failed"; return; fi
    mounts+=("$run/state")
    port=$(free_port)
    local clog=$run/logs/coordinator.log
    : >"$clog"
    own_coord_start "$run" 6 40 10 "$port"
    own_branches_start "$run" "$port"
    if ! wait_for "$run/state/rounds.jsonl" '^\{"round":2,"aggregated":true' 60; then
        problems+="round 2 never completed; "
    fi
    dd if=/dev/zero of="$run/state/fill" bs=4k >/dev/null 2>&1
    t_fill=$(now)
    l=$(ledger_last "$run/state/rounds.jsonl")
    log "(f) state dir full ($(df -k "$run/state" | awk 'NR == 2 { print $4 }') KiB free) after ledger round $l"
    for ((j = 0; j < 600; j++)); do kill -0 "$coord_pid" 2>/dev/null || break; nap 0.1; done
    if kill -0 "$coord_pid" 2>/dev/null; then
        behaviour="keeps running"
        kill -TERM "$coord_pid"
    fi
    wait "$coord_pid"
    rc=$?
    [ -n "${behaviour:-}" ] || behaviour="exits $rc $(since "$t_fill")s after the disk filled"
    fail_line=$(grep -E 'level=error' "$clog" | head -2 | sed 's/^ts=[^ ]* //' | tr '\n' ' ')
    [ -n "$fail_line" ] || problems+="no error logged for the failed state write; "
    g=$(adapter_round "$run/state/global.fta")
    l=$(ledger_last "$run/state/rounds.jsonl")
    [ "$g" != bad ] || problems+="global.fta unreadable after the failed write; "
    [ "$g" = "$l" ] || problems+="global.fta round $g is not the last good (ledger) round $l; "
    local bad; bad=$(ledger_bad_lines "$run/state/rounds.jsonl")
    [ "$bad" = 0 ] || problems+="$bad malformed ledger lines; "
    tmp_left=$(find "$run/state" -name '*.tmp.*' | wc -l)
    [ "$tmp_left" = 0 ] || problems+="$tmp_left temporary files left in the state dir; "
    # Space back: a restarted coordinator resumes from the last good round and completes.
    rm -f "$run/state/fill"
    own_coord_start "$run" 6 40 10 "$port"
    for ((j = 0; j < 600; j++)); do kill -0 "$coord_pid" 2>/dev/null || break; nap 0.1; done
    wait "$coord_pid"
    local rc2=$?
    ok=$(own_branches_wait 30)
    local fin; fin=$(check_final "$run" 6)
    [ "$rc2" = 0 ] && [ -z "$fin" ] || problems+="after freeing space: exit $rc2, $fin; "
    figs="coordinator $behaviour; logged: ${fail_line:-nothing}; global.fta still round $g = last good $l, readable; after freeing space and a restart: resumed_round=$(grep -o 'resumed_round=[0-9]*' "$clog" | tail -1 | cut -d= -f2), exit $rc2, rounds $(ledger_last "$run/state/rounds.jsonl")/6, $ok/3 finals"
    row f "$([ -z "$problems" ] && echo PASS || echo FAIL)" "$figs${problems:+ | $problems}"
    umount "$run/state" 2>/dev/null && mounts=()
}

# ---- main ----
t_all=$(now)
log "work dir $work, programs $bin, seed $seed"
gen_data 7 6000 >"$work/pool.csv"
gen_data 8 1000 >"$work/test.csv"
"$bin/fedtl" pretrain --data "$work/pool.csv" --classes 0-4 --arch mlp --epochs 3 --quiet \
    --out "$work/base.ftm" >"$work/pretrain.out" 2>&1 || { log "pretraining the base failed"; exit 1; }
# One clean run: it prepares the keys and shards our own federations reuse, and shows the
# set-up works before any fault is blamed.
if ! sim --run "$work/prep" --branches 3 --rounds 2 --epochs 5 --deadline 10 >"$work/prep.out" 2>&1; then
    log "the fault-free run failed: $(tail -3 "$work/prep.out")"
    failed=1
    exit 1
fi
for f in a b c d e f; do
    case ",$only," in *",$f,"*) "fault_$f" ;; esac
done
printf '\n%-5s %-7s %s\n' fault outcome figures
for r in "${rows[@]}"; do
    IFS='|' read -r f o g <<<"$r"
    printf '%-5s %-7s %s\n' "$f" "$o" "$g"
done
printf '\nfaults: %d checked in %ss, %s (seed %s, work %s)\n' "${#rows[@]}" "$(since "$t_all")" \
    "$([ "$failed" = 0 ] && echo 'all passed' || echo 'SOME FAILED')" "$seed" "$work"
[ "$failed" = 0 ]
