#!/usr/bin/env bash
# Two revisions of fedtl, their inference passes alternated in one process (bench/pass_ab.c):
# builds each revision's libraries position-independent in a scratch folder, links each into a
# shared object, and runs pass_ab on each cell. On a shared host this is the steadiest A/B
# there is here: the pairs are tens of milliseconds apart (bench/graph_ab.sh's are seconds).
# Usage: bench/pass_ab.sh REV_A REV_B [--passes 100] [ARCH:HW:BATCH:THREADS ...]
#   default cells: mobilenet_v2 and resnet18 at 64x64, batch 32, 1 and 2 threads
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: bench/pass_ab.sh REV_A REV_B [--passes N] [ARCH:HW:BATCH:THREADS ...]" >&2; exit 2; }
ra=$1 rb=$2 passes=100
shift 2
if [ "${1:-}" = --passes ]; then passes=$2 && shift 2; fi
cells=("$@")
[ ${#cells[@]} -gt 0 ] || cells=(mobilenet_v2:64:32:1 mobilenet_v2:64:32:2 resnet18:64:32:1 resnet18:64:32:2)
launcher=$(command -v ccache || true)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
so() { # revision -> $work/<tag>.so
    local rev=$1 tag=$2 src=$work/$2-src b=$work/$2-build
    mkdir -p "$src" && git archive "$rev" | tar -x -C "$src"
    cmake -S "$src" -B "$b" -DCMAKE_BUILD_TYPE=Release -DFEDTL_TESTS=OFF \
        -DCMAKE_POSITION_INDEPENDENT_CODE=ON ${launcher:+-DCMAKE_C_COMPILER_LAUNCHER=$launcher} >/dev/null
    cmake --build "$b" -j"$(nproc)" --target fedtl_model fedtl_data >/dev/null
    (cd "$b" && cc -shared -o "$work/$tag.so" -Wl,--whole-archive libfedtl_model.a \
        libfedtl_proto_model.a libfedtl_proto_onnx.a libfedtl_data.a libfedtl_nn.a libfedtl_base.a \
        -Wl,--no-whole-archive -Wl,--no-undefined -lopenblas -lprotobuf-c -lsodium -lz -lpng16 \
        -ljpeg -lcjson -lmicrohttpd -linih -lm -lpthread)
}
echo "building $ra and $rb (position-independent, Release)..." >&2
so "$ra" a
so "$rb" b
cc -O2 -o "$work/pass_ab" bench/pass_ab.c -ldl
for c in "${cells[@]}"; do
    IFS=: read -r arch hw batch threads <<<"$c"
    "$work/pass_ab" "$work/a.so" "$work/b.so" "$arch" "$hw" "$batch" "$threads" "$passes" |
        sed "s|^|a=$ra b=$rb |"
done
