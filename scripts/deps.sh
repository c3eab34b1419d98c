#!/usr/bin/env bash
# Install the Debian packages fedtl needs, when any is missing (apt-get; sudo when not root).
# Usage: scripts/deps.sh [build|test|demo|bench|peers]...
set -euo pipefail

pkgs=(build-essential cmake pkg-config libzmq3-dev libprotobuf-c-dev protobuf-c-compiler
      libopenblas-dev libsodium-dev zlib1g-dev libinih-dev libcjson-dev libmicrohttpd-dev
      libpng-dev libjpeg62-turbo-dev)
for want in "$@"; do
    case "$want" in
        build) ;;
        test) pkgs+=(libcriterion-dev dataset-fashion-mnist tshark valgrind docker-compose iproute2
                     chromium prometheus # test_http: the status page rendered, promtool
                     python3-torchvision python3-pil) ;; # test_image_parity
        demo) pkgs+=(dataset-fashion-mnist gnuplot-nox) ;;
        bench) pkgs+=(dataset-fashion-mnist python3-torch python3-torchvision python3-onnx python3-pil) ;;
        peers) pkgs+=(python3-torch python3-torchvision python3-onnx python3-pil) ;;
        *) echo "deps.sh: unknown group '$want' (build, test, demo, bench, peers)" >&2; exit 2 ;;
    esac
done

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "fedtl: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "fedtl: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
# tshark asks whether non-root users may capture; answer no, without a prompt.
echo "wireshark-common wireshark-common/install-setuid boolean false" | $sudo debconf-set-selections
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
