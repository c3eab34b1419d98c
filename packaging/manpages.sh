#!/bin/sh
# manpages.sh: a man page (section 1, gzipped) from a program's own --help, at build time, so
# that the pages never disagree with the programs they describe.
#
#   packaging/manpages.sh VERSION OUTDIR PROGRAM [SUBCOMMAND...]
#
# Writes OUTDIR/NAME.1.gz for PROGRAM (NAME its file name) and, for each SUBCOMMAND,
# OUTDIR/NAME-SUBCOMMAND.1.gz from `PROGRAM SUBCOMMAND --help`. The page's NAME line is the
# help's first sentence after the usage line; the usage line is the SYNOPSIS; the rest is kept
# as the help prints it (preformatted), each unindented "Heading:" line made a section.
set -eu
[ $# -ge 3 ] || { echo "usage: manpages.sh VERSION OUTDIR PROGRAM [SUBCOMMAND...]" >&2; exit 2; }
version=$1 outdir=$2 prog=$3
shift 3
name=$(basename "$prog")
mkdir -p "$outdir"

# page TITLE HELPTEXT-FILE > roff
page() {
    desc=$(sed -n '2,$p' "$2" | awk 'NF == 0 { exit } { printf "%s ", $0 }' |
        sed 's/\. .*//; s/\.\{0,1\} *$//')
    awk -v title="$1" -v version="$version" -v desc="$desc" '
    function esc(s) { gsub(/\\/, "\\e", s); gsub(/-/, "\\-", s); return s }
    function line(s) { s = esc(s); if (s ~ /^[.'\'']/) s = "\\&" s; print s }
    NR == 1 {
        synopsis = $0; sub(/^usage: */, "", synopsis); next
    }
    NR == 2 && !started {
        if (desc == "") desc = "part of fedtl"
        printf ".TH %s 1 \"\" \"fedtl %s\" \"fedtl manual\"\n", toupper(title), version
        print ".SH NAME"; print esc(title) " \\- " esc(tolower(substr(desc, 1, 1)) substr(desc, 2))
        print ".SH SYNOPSIS"; print ".nf"; line(synopsis); print ".fi"
        print ".SH DESCRIPTION"; print ".nf"; started = 1
    }
    !started { next }
    /^[A-Z][A-Za-z ,()-]*:$/ {
        h = $0; sub(/:$/, "", h); print ".fi"; print ".SH " toupper(esc(h)); print ".nf"; next
    }
    { line($0) }
    END {
        if (!started) exit 1
        print ".fi"; print ".SH SEE ALSO"
        print "fedtl(1), fedtl\\-coordinator(1), fedtl\\-client(1)"
    }' "$2"
}

one() { # one TITLE ARGS...
    title=$1
    shift
    tmp=$outdir/.$title.help
    "$@" --help >"$tmp" 2>&1 || { echo "manpages.sh: $* --help failed" >&2; cat "$tmp" >&2; exit 1; }
    # The main fedtl help has no description line: give it one.
    if [ "$(sed -n 2p "$tmp")" = "" ]; then
        { sed -n 1p "$tmp"; echo "The fedtl tool: keys, models, data and a coordinator's status."; \
          sed -n '2,$p' "$tmp"; } >"$tmp.2" && mv "$tmp.2" "$tmp"
    fi
    page "$title" "$tmp" | gzip -9n >"$outdir/$title.1.gz"
    rm -f "$tmp"
}

one "$name" "$prog"
for sub in "$@"; do one "$name-$sub" "$prog" "$sub"; done
