#!/bin/bash
# container-check.sh: inside a clean Debian container, as root, installs fedtl's package the way
# an administrator does (apt-get install ./fedtl_*.deb, its dependencies from the mirror),
# checks what the package promises, then runs a federation with the installed programs, their
# example configurations adapted and the systemd units' own ExecStart lines, as the user fedtl:
# one coordinator and two branches, on Fashion-MNIST. packaging/test-install.sh starts it:
#
#   /pkg/fedtl_*.deb                               the package (read-only)
#   /usr/share/datasets/fashion-mnist              the host's data set (read-only)
#   /results                                       the ledger and every log, copied out
#   APT_SOURCES                                    the mirror (docker/apt-sources.sh), optional
#   ROUNDS (3) VERIFY_UNITS (1: install systemd for systemd-analyze verify)
#
# Prints "check: ..." per check passed; exits non-zero at the first that fails, saying why.
set -euo pipefail
rounds=${ROUNDS:-3}
fm=/usr/share/datasets/fashion-mnist
say() { printf 'check: %s\n' "$*"; }
fail() { printf 'check FAILED: %s\n' "$*" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive

# ---- the package, installed with its dependencies ----
/usr/local/sbin/fedtl-apt-sources
# Docker Hub's debian images tell dpkg to leave out man pages (dpkg.cfg.d/docker): not here,
# where the man pages are under test.
sed -i '/^path-exclude.*\/man/d' /etc/dpkg/dpkg.cfg.d/* 2>/dev/null || true
apt-get update -qq
deb=$(ls /pkg/fedtl_*_amd64.deb)
apt-get install -y -qq --no-install-recommends "$deb" >/results/apt.log 2>&1 ||
    { tail -n 30 /results/apt.log >&2; fail "apt-get install $deb"; }
dpkg-query -W -f='${Status} ${Version}\n' fedtl | grep -q '^install ok installed' ||
    fail "dpkg does not list fedtl as installed"
say "installed $(dpkg-query -W -f='${Package} ${Version}' fedtl) with its dependencies"
for p in fedtl fedtl-coordinator fedtl-client; do
    [ -x /usr/bin/$p ] || fail "/usr/bin/$p missing"
    if ldd /usr/bin/$p | grep -q 'not found'; then
        ldd /usr/bin/$p >&2
        fail "/usr/bin/$p: a shared library is missing (the package's Depends)"
    fi
    /usr/bin/$p --help >/dev/null || fail "$p --help"
done
if fedtl-client --help | grep -q -- --test-attack; then fail "the packaged fedtl-client has the test-only --test-attack"; fi
say "programs in /usr/bin run, every library found, no test switch"

# ---- the user, its directories, the man pages, the configuration files ----
getent passwd fedtl >/dev/null || fail "no user fedtl"
getent group fedtl >/dev/null || fail "no group fedtl"
[ "$(getent passwd fedtl | cut -d: -f7)" = /usr/sbin/nologin ] || fail "fedtl has a login shell"
[ "$(id -u fedtl)" -lt 1000 ] || fail "fedtl is not a system user (uid $(id -u fedtl))"
want() { # want PATH OWNER:GROUP MODE
    local got
    got=$(stat -c '%U:%G %a' "$1") || fail "$1 missing"
    [ "$got" = "$2 $3" ] || fail "$1 is $got, not $2 $3"
}
want /var/lib/fedtl fedtl:fedtl 750
want /var/lib/fedtl/keys fedtl:fedtl 700
say "system user fedtl (uid $(id -u fedtl)); /var/lib/fedtl fedtl:fedtl 0750, keys 0700"
for p in fedtl fedtl-coordinator fedtl-client fedtl-pretrain fedtl-keygen; do
    f=/usr/share/man/man1/$p.1.gz
    [ -f "$f" ] || fail "no man page $f"
    zcat "$f" | grep -q "^\.TH ${p^^} 1" || fail "$f is not a man page"
done
zcat /usr/share/man/man1/fedtl-coordinator.1.gz | grep -q -- 'state\\-dir' ||
    fail "fedtl-coordinator(1) does not describe --state-dir"
say "man pages in /usr/share/man/man1 ($(ls /usr/share/man/man1/fedtl*.1.gz | wc -l) pages)"
for f in /etc/fedtl/coordinator.ini.example /etc/fedtl/client.ini.example; do
    [ -f "$f" ] || fail "$f missing"
    dpkg-query -W -f='${Conffiles}\n' fedtl | grep -q " $f " || fail "$f is not a conffile"
done
say "example configurations in /etc/fedtl, conffiles"
units=/usr/lib/systemd/system
for u in fedtl-coordinator.service fedtl-client@.service; do [ -f $units/$u ] || fail "$units/$u missing"; done
if [ "${VERIFY_UNITS:-1}" = 1 ]; then
    # systemd for systemd-analyze, procps for ExecReload's /bin/kill, man-db for the units'
    # Documentation= (verify runs man) and for man -w.
    apt-get install -y -qq --no-install-recommends systemd procps man-db >>/results/apt.log 2>&1 ||
        fail "apt-get install systemd procps man-db (for systemd-analyze verify)"
    for p in fedtl fedtl-coordinator fedtl-client; do
        [ "$(man -w $p)" = /usr/share/man/man1/$p.1.gz ] || fail "man -w $p: $(man -w $p 2>&1)"
    done
    say "man -w finds fedtl, fedtl-coordinator and fedtl-client"
    # Instances need their configuration to exist (ConditionPathExists), not to verify.
    out=$(systemd-analyze verify $units/fedtl-coordinator.service $units/fedtl-client@hq.service 2>&1) ||
        { echo "$out" >&2; fail "systemd-analyze verify"; }
    if echo "$out" | grep -qi 'fedtl'; then
        echo "$out" >&2; fail "systemd-analyze verify complains about the units"
    fi
    say "systemd-analyze verify: the units are clean"
fi

# ---- a federation with the installed programs, as the user fedtl ----
as_fedtl() { runuser -u fedtl -- "$@"; }
lib=/var/lib/fedtl
[ -f $fm/train-images-idx3-ubyte.gz ] || fail "$fm not mounted"
as_fedtl fedtl keygen --out $lib/keys/hq --name hq >/dev/null
for b in b0 b1; do
    as_fedtl fedtl keygen --out $lib/keys/$b --name $b >/dev/null
    as_fedtl cp $lib/keys/$b.pub $lib/allow/$b.pub
done
as_fedtl fedtl pretrain --data $fm/train-images-idx3-ubyte.gz --labels $fm/train-labels-idx1-ubyte.gz \
    --classes 0-4 --arch cnn-small --epochs 1 --samples 2000 --threads 1 --quiet \
    --out $lib/base/base.ftm >/dev/null
as_fedtl fedtl partition --data $fm/train-images-idx3-ubyte.gz --labels $fm/train-labels-idx1-ubyte.gz \
    --classes 5-9 --samples 1200 --clients 2 --iid --threads 1 --out-dir $lib/data >/dev/null
say "keys, base (fedtl pretrain) and two shards (fedtl partition) made as fedtl"

# The example configurations, a few keys changed, as an administrator edits them.
set_key() { # set_key FILE KEY VALUE: uncomment or replace KEY = ... in FILE
    grep -Eq "^#? ?$2 = " "$1" || fail "$1 has no key $2 to set"
    sed -i -E "s|^#? ?$2 = .*|$2 = $3|" "$1"
}
c=/etc/fedtl/coordinator.ini
cp /etc/fedtl/coordinator.ini.example $c
set_key $c federation pkgtest
set_key $c endpoint tcp://127.0.0.1:7777
set_key $c rounds "$rounds"
set_key $c min_start 2
set_key $c min_clients 2
set_key $c start_grace 5
set_key $c epochs 1
set_key $c classes 5-9
set_key $c exit_when_done true
set_key $c eval_data $fm/t10k-images-idx3-ubyte.gz
set_key $c eval_labels $fm/t10k-labels-idx1-ubyte.gz
printf 'threads = 1\nheartbeat_ms = 500\n' >>$c.tmp
sed -i '/^\[coordinator\]/r '$c.tmp $c && rm $c.tmp
for k in 0 1; do
    b=b$k f=/etc/fedtl/client-b$k.ini
    cp /etc/fedtl/client.ini.example $f
    set_key $f coordinator tcp://127.0.0.1:7777
    set_key $f key $lib/keys/$b.key
    set_key $f data $lib/data/client-0$k.csv
    set_key $f threads 1
done
chmod 0640 /etc/fedtl/*.ini && chgrp fedtl /etc/fedtl/*.ini
as_fedtl fedtl-coordinator --config $c --check-config >/results/coordinator-check.txt ||
    fail "fedtl-coordinator --check-config on $c"
say "configurations adapted from the examples pass --check-config"

# exec_start UNIT [INSTANCE]: the unit's ExecStart line, %i filled in.
exec_start() { sed -n 's/^ExecStart=//p' "$units/$1" | sed "s/%i/${2:-}/g"; }
read -r -a coord_cmd <<<"$(exec_start fedtl-coordinator.service)"
(cd $lib && exec runuser -u fedtl -- env OPENBLAS_NUM_THREADS=1 "${coord_cmd[@]}") \
    >/results/coordinator.log 2>&1 &
coord=$!
pids=()
for k in 0 1; do
    install -d -o fedtl -g fedtl -m 0750 $lib/client-b$k # the unit's StateDirectory
    read -r -a cmd <<<"$(exec_start fedtl-client@.service b$k)"
    (cd $lib/client-b$k && exec runuser -u fedtl -- env OPENBLAS_NUM_THREADS=1 "${cmd[@]}") \
        >/results/client-b$k.log 2>&1 &
    pids+=($!)
done
say "started the units' ExecStart lines: ${coord_cmd[*]}; $(exec_start fedtl-client@.service b0)"
rc=0
timeout_s=${FEDERATION_TIMEOUT:-300}
for _ in $(seq "$timeout_s"); do kill -0 $coord 2>/dev/null || break; sleep 1; done
kill -0 $coord 2>/dev/null && { kill $coord; fail "the coordinator did not finish within $timeout_s s"; }
wait $coord || rc=$?
[ $rc = 0 ] || { tail -n 20 /results/coordinator.log >&2; fail "fedtl-coordinator exited with $rc"; }
for k in 0 1; do
    rc=0
    wait "${pids[$k]}" || rc=$?
    [ $rc = 0 ] || { tail -n 20 /results/client-b$k.log >&2; fail "fedtl-client b$k exited with $rc"; }
    [ -s $lib/client-b$k/final.fta ] || fail "branch b$k saved no final adapter"
done
cp $lib/state/rounds.jsonl $lib/state/state.json /results/
n=$(grep -c '"aggregated":true' $lib/state/rounds.jsonl || true)
[ "$n" = "$rounds" ] || fail "$n aggregated rounds in the ledger, not $rounds"
say "federation done: coordinator and both branches exited 0, $n rounds in the ledger"
chmod -R a+rX /results
