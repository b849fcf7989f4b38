#!/usr/bin/env bash
# Sets up, builds and runs every Graft test. Usage: bash tools/test.sh
# (BUILD_DIR, default build; JOBS, default all cores; FUZZ_SECONDS, default 60).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup-debian.sh
BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGRAFT_CUDA=AUTO
cmake --build "$BUILD_DIR" -j "$JOBS"
bash tools/onnx/make_fixtures.sh "$BUILD_DIR"
ctest --test-dir "$BUILD_DIR" -j "$JOBS" --output-on-failure --timeout 600
# The ONNX loader under libFuzzer (clang, ASan + UBSan) for a bounded time.
bash tools/fuzz/run.sh "$BUILD_DIR" "${FUZZ_SECONDS:-60}"
