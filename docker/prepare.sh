#!/usr/bin/env bash
# fedtl-prepare: the one-shot `prepare` service of docker-compose.yml. Makes what the
# coordinator and the branches need, the same way scripts/simulate.sh does for its run
# directory, into the named volumes mounted under FEDTL_HOME:
#
#   KEYS_DIR/hq.key, hq.pub            the coordinator's identity     (volume hq-keys)
#   ALLOW_DIR/branch-NN.pub            the allow-list, one per branch  (volume allow)
#   BASE_DIR/base.ftm                  the base: pretrained once, then reused (volume base)
#   BASE_DIR/strategy.ini              the coordinator's [strategy] section  (volume base)
#   BRANCHES_DIR/branch-NN/branch.key  branch NN's identity (named branch-NN)
#                          branch.pub
#                          hq.pub      the coordinator's key, pinned by the branch
#                          shard.csv   the branch's shard             (volume branch-NN)
#
# Run again, it keeps the keys and a valid base and remakes the same shards (same seed).
# Settings (environment): BRANCHES (3) SAMPLES (5000) ALPHA (0.3; 0 = IID) SEED (1)
# CLASSES (5-9) BASE_CLASSES (0-4) PRETRAIN_EPOCHS (3) PRETRAIN_SAMPLES (all records)
# BASE_SOURCE (a base .ftm to copy instead of pretraining) DATA_DIR
# (/usr/share/datasets/fashion-mnist) DATA, LABELS (its train set) FEDTL_BIN (the programs'
# directory; default: PATH). Paths: FEDTL_HOME (/var/lib/fedtl), KEYS_DIR, ALLOW_DIR,
# BASE_DIR, BRANCHES_DIR (FEDTL_HOME/keys, allow, base, branches). STRATEGY and STRATEGY_OPTS
# (KEY=VALUE words, keys of the coordinator's [strategy] section) become BASE_DIR/strategy.ini,
# which the coordinator reads with --config. Unset, they are docs/STRATEGIES.md's
# recommendation for skewed branches over 20 rounds: fedprox with "proximal_mu=0.1
# norm_bound_median=3 server_lr_decay=0.5 server_lr_decay_after=14" (the server's step halves
# every round after round 15: with another number of rounds, move server_lr_decay_after to
# rounds - 6). A STRATEGY given alone has no options but its own defaults.
# REQUIRE_MOUNTS=1 (set by docker-compose.yml) checks that every output directory is a mounted
# volume, which catches a BRANCHES that does not match the branch volumes.
# Started as root with FEDTL_USER set (the image sets it), it gives the output directories to
# that user and goes on as that user. Exit status: 0 done, 1 failure, 2 bad settings.
# Every failure says why on stderr (`docker-compose logs prepare` shows it).
set -eEuo pipefail
trap 'printf "fedtl-prepare: failed (exit %s) at line %s: %s\n" "$?" "$LINENO" "$BASH_COMMAND" >&2; exit 1' ERR

home=${FEDTL_HOME:-/var/lib/fedtl}
keys=${KEYS_DIR:-$home/keys} allow=${ALLOW_DIR:-$home/allow}
basedir=${BASE_DIR:-$home/base} branches_dir=${BRANCHES_DIR:-$home/branches}
if [ -n "${STRATEGY:-}" ]; then
    strategy=$STRATEGY strategy_opts=${STRATEGY_OPTS:-}
else
    strategy=fedprox
    strategy_opts=${STRATEGY_OPTS-proximal_mu=0.1 norm_bound_median=3 server_lr_decay=0.5 server_lr_decay_after=14}
fi
branches=${BRANCHES:-3} samples=${SAMPLES:-5000} alpha=${ALPHA:-0.3} seed=${SEED:-1}
classes=${CLASSES:-5-9} base_classes=${BASE_CLASSES:-0-4} pre_epochs=${PRETRAIN_EPOCHS:-3}
pre_samples=${PRETRAIN_SAMPLES:-} base_source=${BASE_SOURCE:-}
data_dir=${DATA_DIR:-/usr/share/datasets/fashion-mnist}
data=${DATA:-$data_dir/train-images-idx3-ubyte.gz} labels=${LABELS:-$data_dir/train-labels-idx1-ubyte.gz}
fedtl=${FEDTL_BIN:+$FEDTL_BIN/}fedtl

log() { printf 'fedtl-prepare: %s\n' "$*" >&2; }
die() { log "$2"; exit "$1"; }

case $branches in '' | *[!0-9]*) die 2 "BRANCHES must be a number from 1 to 99, not '$branches'" ;; esac
if [ "$branches" -lt 1 ] || [ "$branches" -gt 99 ]; then
    die 2 "BRANCHES must be a number from 1 to 99, not '$branches'"
fi
names=()
for ((k = 0; k < branches; k++)); do names+=("$(printf 'branch-%02d' "$k")"); done

# Root (in the prepare container): hand the volumes to FEDTL_USER, then carry on as it.
if [ "$(id -u)" = 0 ] && [ -n "${FEDTL_USER:-}" ]; then
    for d in "$keys" "$allow" "$basedir" "$branches_dir" "${names[@]/#/$branches_dir/}"; do
        mkdir -p "$d" && chown -R "$FEDTL_USER:" "$d"
    done
    exec setpriv --reuid="$(id -u "$FEDTL_USER")" --regid="$(id -g "$FEDTL_USER")" \
        --init-groups -- "$0" "$@"
fi
umask 027

# Every branch has its volume, and no volume is left without a branch.
if [ -d "$branches_dir" ]; then
    for d in "$branches_dir"/branch-*; do
        [ -d "$d" ] || continue
        n=${d##*/branch-}
        case $n in '' | *[!0-9]*) continue ;; esac
        [ "$((10#$n))" -lt "$branches" ] ||
            die 2 "$d is there but BRANCHES=$branches: set BRANCHES to the number of branch services (branch-00 to branch-$(printf %02d $((branches - 1))))"
    done
fi
for d in "$keys" "$allow" "$basedir" "${names[@]/#/$branches_dir/}"; do
    if [ "${REQUIRE_MOUNTS:-0}" = 1 ]; then
        mountpoint -q "$d" ||
            die 2 "$d is not a volume: BRANCHES=$branches, but docker-compose.yml mounts no volume there (add it to the prepare service, or lower BRANCHES)"
    fi
    mkdir -p "$d"
done
[ -n "$base_source" ] || [ -f "$data" ] ||
    die 1 "$data not found (apt-get install dataset-fashion-mnist, or set DATA and LABELS)"

# Atomic copy: readers (a running coordinator reloading its allow-list) never see half a file.
put() { # put SRC DEST MODE
    cp "$1" "$2.tmp.$$" && chmod "$3" "$2.tmp.$$" && mv -f "$2.tmp.$$" "$2"
}

# ---- keys: HQ, then one identity per branch, each kept once made ----
[ -f "$keys/hq.key" ] || "$fedtl" keygen --out "$keys/hq" --name hq >/dev/null
for name in "${names[@]}"; do
    d=$branches_dir/$name
    [ -f "$d/branch.key" ] || "$fedtl" keygen --out "$d/branch" --name "$name" >/dev/null
    put "$keys/hq.pub" "$d/hq.pub" 0644
    put "$d/branch.pub" "$allow/$name.pub" 0644
done
for f in "$allow"/branch-*.pub; do # enrolled branches that are gone
    [ -f "$f" ] || continue
    n=${f##*/}
    [[ " ${names[*]} " == *" ${n%.pub} "* ]] || { log "removing $n from the allow-list"; rm -f "$f"; }
done

# ---- the base: copied, reused, or pretrained as simulate.sh does ----
base=$basedir/base.ftm
if [ -n "$base_source" ]; then
    "$fedtl" inspect "$base_source" >/dev/null || die 1 "BASE_SOURCE $base_source is not a valid base"
    cmp -s "$base_source" "$base" || put "$base_source" "$base" 0644
    log "base copied from $base_source"
elif [ -s "$base" ] && "$fedtl" inspect "$base" >/dev/null 2>&1; then
    log "reusing the base $base"
else
    log "pretraining the base (cnn-small, classes $base_classes, $pre_epochs epochs)"
    "$fedtl" pretrain --data "$data" --labels "$labels" --classes "$base_classes" \
        --arch cnn-small --epochs "$pre_epochs" --seed "$seed" ${pre_samples:+--samples "$pre_samples"} \
        --quiet --out "$base" >/dev/null
fi

# ---- the coordinator's strategy, as simulate.sh writes it (--strategy, --strategy-opt) ----
# The coordinator checks names and values when it starts; here only the form.
case $strategy in '' | *[!a-z-]*) die 2 "STRATEGY must be a strategy name (fedavg, fedprox, median, ...), not '$strategy'" ;; esac
{
    printf '[strategy]\nname = %s\n' "$strategy"
    for kv in $strategy_opts; do
        [[ $kv =~ ^[a-z_0-9]+=[-+.eE0-9a-z]+$ ]] ||
            die 2 "STRATEGY_OPTS: '$kv' is not KEY=VALUE (e.g. proximal_mu=0.1 norm_bound_median=3)"
        printf '%s = %s\n' "${kv%%=*}" "${kv#*=}"
    done
} >"$basedir/strategy.ini.tmp.$$"
chmod 0644 "$basedir/strategy.ini.tmp.$$"
mv -f "$basedir/strategy.ini.tmp.$$" "$basedir/strategy.ini"

# ---- the shards: simulate.sh's partition, then each into its own branch's volume ----
tmp=$(mktemp -d "${TMPDIR:-/tmp}/fedtl-prepare.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
if [ "$alpha" = 0 ]; then skew=(--iid); else skew=(--dirichlet "$alpha"); fi
"$fedtl" partition --data "$data" --labels "$labels" --classes "$classes" \
    --samples "$samples" --clients "$branches" "${skew[@]}" \
    --min-size 10 --seed "$seed" --out-dir "$tmp/shards" >&2
for ((k = 0; k < branches; k++)); do
    put "$tmp/shards/client-$(printf %02d "$k").csv" "$branches_dir/${names[k]}/shard.csv" 0640
done
log "ready: $branches branches ($classes, $samples records, alpha $alpha), base $base, strategy $strategy${strategy_opts:+ ($strategy_opts)}"
