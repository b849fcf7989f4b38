#!/usr/bin/env bash
# Generates the ONNX fixtures the tests use into BUILD_DIR/fixtures (not
# committed: they are built from the shared pretrained weights). Python
# packages go into a virtual environment in the build folder; nothing here is
# a run-time dependency of Graft. Usage: bash tools/onnx/make_fixtures.sh BUILD_DIR
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
  exit 0
fi
for opset in 13 17; do
  f="$OUT/squeezenet1.1-op$opset.onnx"
  [ -f "$f" ] || "$VENV/bin/python" tools/onnx/make_squeezenet_onnx.py --weights "$WEIGHTS" --opset "$opset" --out "$f"
done
