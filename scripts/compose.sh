#!/usr/bin/env bash
# compose.sh: fedtl's docker-compose federation (docker-compose.yml, README.md section
# "docker-compose") from a bare Debian machine to its results, with Compose v2 (`docker compose`)
# or Debian's docker-compose 1.29 alike.
#
# Whatever is missing is made available first: the packages docker.io, iptables, debootstrap and
# docker-compose (apt-get, as root); a Docker daemon (dockerd started in the background when
# none answers, its log in FEDTL_DOCKERD_LOG); and the images the Dockerfile starts FROM
# (pulled, or, with no registry in reach, debian:bookworm built with debootstrap from the Debian
# mirror apt already uses and imported under every tag the Dockerfile needs). The images' apt
# uses that same mirror (the build argument APT_SOURCES, docker/apt-sources.sh).
#
# Exit status: 0 done, 1 failure (a container failed, a build failed, ...), 2 bad usage,
# 3 no Docker engine can be had here (not root, no apt-get, or dockerd will not start).
set -euo pipefail

usage() {
    cat <<'EOF'
usage: scripts/compose.sh [-p PROJECT] COMMAND [options]
  up [--fresh] [--timeout S] [--kill-coordinator R]
             build the images and run the federation to its end: prepare, the coordinator
             and every branch. A new federation each time: the last run's containers and
             ledger are removed first (keys, base and shards are kept; --fresh remakes them).
             Prints each round as it ends; exits 1 if any container failed (its logs
             printed), or when the federation is not done within S seconds (default 1800).
             --kill-coordinator R: SIGKILL the coordinator once round R is in its ledger;
             the restart policy must bring it back to finish the federation.
  results [DIR]
             copy the ledger (rounds.jsonl), state.json, the global adapter (global.fta),
             the base (base.ftm), each branch's final adapter and every service's log into
             DIR (default ./compose-results), print the rounds and the final accuracy, and
             evaluate global.fta again offline (fedtl eval in the image).
  status     each container's state, exit code and restarts; the coordinator's live status
             while it runs, else the ledger's last round and state.json, read from its volume
  logs [SERVICE...]   every service's logs (or these services')
  down [-v]  stop and remove the containers (-v: and the volumes)
  engine     only make the engine and the base images available
  build      engine, then build the images
  -p PROJECT  the Compose project name (default: COMPOSE_PROJECT_NAME, else fedtl)
environment: FEDTL_COMPOSE (the Compose command, e.g. "docker-compose"; default: `docker
compose` when present, else docker-compose), FEDTL_COMPOSE_FILE (default: docker-compose.yml
here; the build context stays this directory), FEDTL_TAG (image tag, default latest),
FEDTL_DOCKERD_LOG (default /var/log/fedtl-dockerd.log), FEDTL_DEBIAN_MIRROR (the mirror for
debootstrap and the images; default: the one apt uses), FEDTL_COMPOSE_LOGS (build and
debootstrap logs; default /tmp/fedtl-compose-PROJECT).
EOF
}

root=$(cd "$(dirname "$0")/.." && pwd)
project=${COMPOSE_PROJECT_NAME:-fedtl}
if [ "${1:-}" = -p ]; then
    [ $# -ge 2 ] || { usage >&2; exit 2; }
    project=$2
    shift 2
fi
cmd=${1:-}
[ -n "$cmd" ] || { usage >&2; exit 2; }
shift
case $cmd in -h | --help | help) usage; exit 0 ;; esac
export FEDTL_TAG=${FEDTL_TAG:-latest}
logs_dir=${FEDTL_COMPOSE_LOGS:-${TMPDIR:-/tmp}/fedtl-compose-$project}
dockerd_log=${FEDTL_DOCKERD_LOG:-/var/log/fedtl-dockerd.log}

say() { printf 'compose: %s\n' "$*" >&2; }
die() { say "$2"; exit "$1"; }
unavailable() { say "no Docker engine: $*"; exit 3; }
is_root() { [ "$(id -u)" = 0 ]; }

# run_logged LOG PREFIX PATTERN CMD...: CMD's output into LOG, and the lines matching PATTERN
# on the terminal as they come (progress); CMD's exit status.
run_logged() {
    local log=$1 prefix=$2 pattern=$3 rc=0
    shift 3
    : >"$log"
    "$@" >"$log" 2>&1 &
    local pid=$!
    tail -n +1 -f --pid="$pid" "$log" | { grep --line-buffered -E "$pattern" || true; } |
        sed -u "s/^/compose: $prefix: /" >&2
    wait "$pid" || rc=$?
    return "$rc"
}

# ---- packages ----------------------------------------------------------------------------
apt_install() { # apt_install PKG... (as root; the caller says what it is for)
    is_root || unavailable "installing $* needs root"
    command -v apt-get >/dev/null || unavailable "no apt-get to install $*"
    say "installing $* (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq --no-install-recommends "$@" >"$logs_dir/apt.log" 2>&1; then
        apt-get update -qq >>"$logs_dir/apt.log" 2>&1 || true
        apt-get install -y -qq --no-install-recommends "$@" >>"$logs_dir/apt.log" 2>&1 ||
            { tail -n 20 "$logs_dir/apt.log" >&2; unavailable "apt-get could not install $*"; }
    fi
}

# ---- the engine --------------------------------------------------------------------------
compose=()
find_compose() {
    if [ -n "${FEDTL_COMPOSE:-}" ]; then
        read -r -a compose <<<"$FEDTL_COMPOSE"
    elif docker compose version >/dev/null 2>&1; then
        compose=(docker compose)
    elif command -v docker-compose >/dev/null; then
        compose=(docker-compose)
    else
        apt_install docker-compose
        compose=(docker-compose)
    fi
}

ensure_engine() {
    local want=()
    command -v docker >/dev/null || want+=(docker.io)
    if ! docker info >/dev/null 2>&1; then
        command -v dockerd >/dev/null || want+=(docker.io)
        command -v iptables >/dev/null || want+=(iptables)
    fi
    if [ ${#want[@]} -gt 0 ]; then
        mapfile -t want < <(printf '%s\n' "${want[@]}" | sort -u)
        apt_install "${want[@]}"
    fi
    find_compose
    docker info >/dev/null 2>&1 && return 0
    if ! is_root; then
        local why
        why=$(docker info 2>&1 | grep -iv warning | grep -m1 -iE 'cannot connect|denied|error' || true)
        unavailable "no Docker daemon answers here (${why:-docker info fails}), and starting one needs root"
    fi
    say "starting dockerd in the background (log: $dockerd_log)"
    mkdir -p "$(dirname "$dockerd_log")"
    setsid nohup dockerd >>"$dockerd_log" 2>&1 </dev/null &
    local pid=$!
    for _ in $(seq 60); do
        docker info >/dev/null 2>&1 && { say "dockerd is up (pid $pid)"; return 0; }
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    tail -n 15 "$dockerd_log" >&2 || true
    unavailable "dockerd did not start (the end of $dockerd_log is above)"
}

# The Debian mirror apt uses here: "URI SUITE COMPONENTS" lines from /etc/apt/sources.list
# (one-line entries) and /etc/apt/sources.list.d/*.list and *.sources (deb822 entries).
apt_entries() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -r "$f" ] || continue
        sed -n 's/^[[:space:]]*deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\{0,1\}//p' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        awk 'function flush() { if (types ~ /(^| )deb( |$)/ && enabled != "no")
                 for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++) print u[i], s[j], comps;
                 types = ""; enabled = ""; comps = ""; nu = 0; ns = 0 }
             /^[[:space:]]*#/ { next }
             /^[[:space:]]*$/ { flush(); next }
             { key = tolower($1); sub(/:$/, "", key); $1 = "" ; sub(/^ +/, "") }
             key == "types" { types = $0 } key == "enabled" { enabled = tolower($0) }
             key == "uris" { nu = split($0, u, " ") } key == "suites" { ns = split($0, s, " ") }
             key == "components" { comps = $0 }
             END { flush() }' "$f"
    done
}

# apt_sources CODENAME: the host's Debian entries, for CODENAME's suites (the host's release
# mapped onto CODENAME: bookworm-updates on a trixie host becomes trixie's mirror for
# bookworm-updates), ';'-separated for docker/apt-sources.sh. Sets debian_mirror too.
apt_sources() {
    local codename=$1 host uri suite comps out="" seen=" "
    host=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
    debian_mirror=${FEDTL_DEBIAN_MIRROR:-}
    if [ -n "${FEDTL_DEBIAN_MIRROR:-}" ]; then
        apt_sources_value="deb $FEDTL_DEBIAN_MIRROR $codename main"
        return 0
    fi
    while read -r uri suite comps; do
        [[ " $comps " == *" main "* ]] || continue
        case $suite in
        "$host" | "$codename") suite=$codename ;;
        "$host"-* | "$codename"-*) suite=$codename-${suite#*-} ;;
        *) continue ;;
        esac
        [ "$suite" = "$codename" ] && [ -z "$debian_mirror" ] && debian_mirror=$uri
        [[ "$seen" == *" $uri|$suite "* ]] && continue
        seen+="$uri|$suite "
        out+="${out:+;}deb $uri $suite main"
    done < <(apt_entries)
    apt_sources_value=$out
}

# The images the Dockerfile starts FROM (not its own stages), each pulled or made.
ensure_base_images() {
    local images=() stages=" " img missing=()
    while read -r kw img as name; do
        [ "${kw^^}" = FROM ] || continue
        [[ "$stages" == *" $img "* ]] || images+=("$img")
        [ "${as^^}" = AS ] && stages+="$name "
    done < <(grep -i '^FROM ' "$root/Dockerfile")
    for img in "${images[@]}"; do
        docker image inspect "$img" >/dev/null 2>&1 && continue
        if docker pull -q "$img" >/dev/null 2>&1; then say "pulled $img"; continue; fi
        missing+=("$img")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local codename=""
    for img in "${missing[@]}"; do
        case $img in
        debian:*) c=${img#debian:}; c=${c%-slim} ;;
        *) die 1 "$img is not in the engine and cannot be pulled; only debian:* can be made here" ;;
        esac
        [ -z "$codename" ] || [ "$codename" = "$c" ] ||
            die 1 "the Dockerfile starts from two Debian releases ($codename, $c)"
        codename=$c
    done
    command -v debootstrap >/dev/null || apt_install debootstrap
    is_root || unavailable "debootstrap (for ${missing[*]}) needs root"
    apt_sources "$codename"
    [ -n "$debian_mirror" ] ||
        die 1 "no Debian mirror for $codename in apt's sources (/etc/apt/sources.list, /etc/apt/sources.list.d): set FEDTL_DEBIAN_MIRROR"
    local dir
    dir=$(mktemp -d "${TMPDIR:-/tmp}/fedtl-rootfs.XXXXXX")
    say "no registry has ${missing[*]}: debootstrap --variant=minbase $codename from $debian_mirror (a few minutes; log: $logs_dir/debootstrap.log)"
    if ! run_logged "$logs_dir/debootstrap.log" debootstrap \
        '^[EW]:|Release|Packages|packages|dependencies|Base system' \
        debootstrap --variant=minbase "$codename" "$dir" "$debian_mirror"; then
        tail -n 15 "$logs_dir/debootstrap.log" >&2
        rm -rf "$dir"
        die 1 "debootstrap failed (log: $logs_dir/debootstrap.log)"
    fi
    rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*_Packages
    tar -C "$dir" -c . | docker import - "${missing[0]}" >/dev/null
    rm -rf "$dir"
    for img in "${missing[@]:1}"; do docker tag "${missing[0]}" "$img"; done
    say "imported ${missing[*]}"
}

engine() {
    mkdir -p "$logs_dir"
    ensure_engine
    ensure_base_images
}

compose_file=${FEDTL_COMPOSE_FILE:-$root/docker-compose.yml}
dc() { "${compose[@]}" -p "$project" -f "$compose_file" --project-directory "$root" "$@"; }

build() {
    local codename
    codename=$(sed -n 's/^FROM debian:\([a-z]*\).*/\1/p' "$root/Dockerfile" | head -n 1)
    apt_sources "${codename:-bookworm}"
    export FEDTL_APT_SOURCES=$apt_sources_value
    say "building the images with ${compose[*]} (apt: ${FEDTL_APT_SOURCES:-as the base image has it}; log: $logs_dir/build.log)"
    local t0=$SECONDS
    if ! run_logged "$logs_dir/build.log" build \
        '^Step [0-9]+/|^#[0-9]+ \[|Built target fedtl|Successfully tagged|^Building |ERROR|rror:' dc build; then
        tail -n 30 "$logs_dir/build.log" >&2
        die 1 "the build failed (log: $logs_dir/build.log)"
    fi
    say "built in $((SECONDS - t0)) s"
}

# ---- the project's containers and volumes ------------------------------------------------
containers() { # containers [SERVICE]: ids, every state
    docker ps -aq --filter "label=com.docker.compose.project=$project" \
        ${1:+--filter "label=com.docker.compose.service=$1"}
}
volume() { # volume NAME: the project's volume, or nothing
    docker volume ls -q --filter "label=com.docker.compose.project=$project" \
        --filter "label=com.docker.compose.volume=$1" | head -n 1
}
cinfo() { # cinfo ID: "service status exit restarts pid"
    docker inspect -f '{{index .Config.Labels "com.docker.compose.service"}} {{.State.Status}} {{.State.ExitCode}} {{.RestartCount}} {{.State.Pid}}' "$1"
}
# Read files out of a volume through a throwaway container of the data image: works once the
# containers are gone too. volume_tar VOLUME DEST [FILE...]
volume_tar() {
    local vol=$1 dest=$2
    shift 2
    [ $# -gt 0 ] || set -- .
    docker run --rm --network none -v "$vol:/from:ro" --entrypoint tar "fedtl-data:$FEDTL_TAG" \
        -C /from -cf - --ignore-failed-read "$@" 2>/dev/null | tar -C "$dest" -xf -
}
ledger_rounds() { # ledger_rounds FILE: "round accuracy" per aggregated round
    sed -n 's/^{"round":\([0-9]*\),"aggregated":true,.*"server_eval_accuracy":\([0-9.]*\).*/\1 \2/p' "$1"
}
service_logs() { # service_logs ID: its logs, the last 60 lines
    local name
    name=$(docker inspect -f '{{.Name}}' "$1")
    say "---- ${name#/}: the last 60 lines of its logs (all: scripts/compose.sh logs) ----"
    docker logs --tail 60 "$1" 2>&1 | sed 's/^/  /' >&2
}

# ---- up: run the federation to its end ---------------------------------------------------
up() {
    local fresh=0 timeout=1800 kill_at=""
    while [ $# -gt 0 ]; do
        case $1 in
        --fresh) fresh=1; shift ;;
        --timeout) timeout=${2:?--timeout needs seconds}; shift 2 ;;
        --kill-coordinator) kill_at=${2:?--kill-coordinator needs a round}; shift 2 ;;
        *) usage >&2; exit 2 ;;
        esac
    done
    case $timeout$kill_at in *[!0-9]*) die 2 "--timeout and --kill-coordinator take whole numbers" ;; esac
    engine
    build
    if [ -n "$(containers)" ]; then
        say "removing the last run's containers$([ $fresh = 1 ] && echo ' and volumes' || echo ' and ledger')"
        if [ $fresh = 1 ]; then dc down -v >/dev/null 2>&1; else dc down >/dev/null 2>&1; fi
    elif [ $fresh = 1 ]; then
        dc down -v >/dev/null 2>&1 || true
    fi
    local v
    v=$(volume coordinator-state)
    [ -z "$v" ] || docker volume rm "$v" >/dev/null
    say "starting the federation (project $project): prepare, then the coordinator and the branches"
    local t0=$SECONDS
    if ! dc up -d >"$logs_dir/up.log" 2>&1; then
        cat "$logs_dir/up.log" >&2
        failed_logs || true
        die 1 "the federation did not start (prepare's reason, if it failed, is above; again: scripts/compose.sh logs prepare)"
    fi
    local seen=0 killed=0 c
    while :; do
        c=$(containers coordinator)
        if [ -n "$c" ]; then
            # Every round the coordinator has closed, once (its logs span its restarts).
            local r n acc
            while read -r r n acc; do
                [ "$r" -gt "$seen" ] || continue
                seen=$r
                say "round $r: $n updates, server accuracy $acc ($((SECONDS - t0)) s)"
            done < <(docker logs "$c" 2>&1 | sed -n 's/.*event=round_done round=\([0-9]*\) accepted=\([0-9]*\) .*server_accuracy=\([0-9.]*\).*/\1 \2 \3/p')
            if [ -n "$kill_at" ] && [ $killed = 0 ] && [ "$seen" -ge "$kill_at" ]; then
                read -r _ status _ _ pid < <(cinfo "$c")
                if [ "$status" = running ] && [ "$pid" -gt 0 ]; then
                    say "SIGKILL to the coordinator (pid $pid) after round $seen"
                    kill -KILL "$pid"
                    killed=1
                fi
            fi
        fi
        local busy=0 id
        for id in $(containers); do
            read -r _ status _ _ _ < <(cinfo "$id")
            [ "$status" = exited ] || [ "$status" = dead ] || busy=1
        done
        [ $busy = 0 ] && break
        if [ $((SECONDS - t0)) -ge "$timeout" ]; then
            status
            failed_logs all || true
            die 1 "the federation is not done after $timeout s"
        fi
        sleep 1
    done
    [ -z "$kill_at" ] || [ $killed = 1 ] || die 1 "the federation ended before round $kill_at: the coordinator was not killed"
    say "all containers have exited ($((SECONDS - t0)) s)"
    status_table
    if ! failed_logs; then
        die 1 "a container failed (its logs are above)"
    fi
    say "done; the ledger, state.json and adapters: scripts/compose.sh${project:+ -p $project} results [DIR]"
}

# Print the logs of every container that exited non-zero (or, with "all", that is not done).
# Returns 1 when there was one.
failed_logs() {
    local id svc status code restarts bad=0
    for id in $(containers); do
        read -r svc status code restarts _ < <(cinfo "$id")
        if [ "$code" != 0 ] || { [ "${1:-}" = all ] && [ "$status" != exited ]; }; then
            service_logs "$id"
            bad=1
        fi
    done
    return $bad
}

status_table() {
    local id svc status code restarts
    printf '%-14s %-10s %5s %9s\n' service state exit restarts
    for id in $(containers); do
        read -r svc status code restarts _ < <(cinfo "$id")
        printf '%-14s %-10s %5s %9s\n' "$svc" "$status" "$code" "$restarts"
    done | sort
}

status() {
    engine_quiet
    [ -n "$(containers)" ] || die 1 "no containers of project $project (scripts/compose.sh up)"
    status_table
    local c tmp
    c=$(containers coordinator)
    if [ -n "$c" ] && [ "$(docker inspect -f '{{.State.Status}}' "$c")" = running ] &&
        docker exec "$c" fedtl status --state-dir /var/lib/fedtl/state; then
        return 0
    fi
    local v
    v=$(volume coordinator-state)
    [ -n "$v" ] || die 1 "the coordinator is not running and its volume is gone"
    tmp=$(mktemp -d)
    volume_tar "$v" "$tmp" ./state.json ./rounds.jsonl
    say "the coordinator is not running; its state.json and the ledger's last round:"
    [ -f "$tmp/state.json" ] && cat "$tmp/state.json" && echo
    [ -f "$tmp/rounds.jsonl" ] && tail -n 1 "$tmp/rounds.jsonl"
    rm -rf "$tmp"
}

# Without installing or starting anything: for status, logs, results, down.
engine_quiet() {
    command -v docker >/dev/null && docker info >/dev/null 2>&1 ||
        die 1 "no Docker engine answers (scripts/compose.sh up starts one)"
    find_compose
}

results() {
    local dir=${1:-$PWD/compose-results}
    engine_quiet
    local state base
    state=$(volume coordinator-state)
    base=$(volume base)
    [ -n "$state" ] || die 1 "project $project has no coordinator-state volume (scripts/compose.sh up first)"
    mkdir -p "$dir/logs"
    volume_tar "$state" "$dir" ./rounds.jsonl ./state.json ./global.fta
    [ -z "$base" ] || volume_tar "$base" "$dir" ./base.ftm
    local id svc
    for id in $(containers); do
        read -r svc _ _ _ _ < <(cinfo "$id")
        docker logs "$id" >"$dir/logs/$svc.log" 2>&1 || true
        case $svc in
        branch-*) docker cp "$id:/var/lib/fedtl/work/final.fta" "$dir/$svc.final.fta" 2>/dev/null ||
            say "$svc has no final adapter" ;;
        esac
    done
    [ -s "$dir/rounds.jsonl" ] || die 1 "the ledger is empty: no round was completed"
    say "copied into $dir: $(cd "$dir" && ls | tr '\n' ' ')"
    local n=0 last="" r acc
    printf '%6s %9s\n' round accuracy
    while read -r r acc; do
        printf '%6s %9s\n' "$r" "$acc"
        n=$((n + 1)) last=$acc
    done < <(ledger_rounds "$dir/rounds.jsonl")
    echo "rounds: $n, final server accuracy: ${last:-none}"
    if [ -f "$dir/global.fta" ] && [ -f "$dir/base.ftm" ]; then
        local fm=/usr/share/datasets/fashion-mnist again
        again=$(docker run --rm --network none -v "$dir:/results:ro" "fedtl-data:$FEDTL_TAG" \
            fedtl eval --base /results/base.ftm --adapter /results/global.fta \
            --data $fm/t10k-images-idx3-ubyte.gz --labels $fm/t10k-labels-idx1-ubyte.gz --json 2>&1 |
            sed -n 's/.*"accuracy":\([0-9.]*\),.*/\1/p') || true
        echo "global.fta evaluated again (fedtl eval, the test set): accuracy ${again:-failed}"
    fi
}

# The whole dispatch is one function, called on the script's last line with its exit: bash
# reads a script as it runs, and an edit to this file while an `up` runs must not feed it
# the edited tail.
main() {
    case $cmd in
    engine) engine ;;
    build) engine; build ;;
    up) up "$@" ;;
    results) [ $# -le 1 ] || { usage >&2; exit 2; }; results "$@" ;;
    status) status ;;
    logs) engine_quiet; dc logs --no-color "$@" ;;
    down)
        engine_quiet
        case ${1:-} in '' | -v) dc down ${1:+-v} ;; *) usage >&2; exit 2 ;; esac
        ;;
    *) say "unknown command '$cmd'"; usage >&2; exit 2 ;;
    esac
}
main "$@"; exit $?
