#!/usr/bin/env bash
# A bounded libFuzzer run of the ONNX loader, as CI does it: builds the fuzz
# target with clang (ASan + UBSan, coverage on every library it links) in
# BUILD_DIR/fuzz, seeds the corpus with the node tests' models and the
# committed regression inputs, and fuzzes for SECONDS (default 60). A crash,
# sanitizer report, leak or hang fails the run and leaves the input in
# BUILD_DIR/fuzz/artifacts/: copy it into tests/importers/fuzz_regressions/
# (tests/importers/test_onnx_fuzz_regressions.cpp loads every file there) and fix.
# Usage: bash tools/fuzz/run.sh BUILD_DIR [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD_DIR=${1:?usage: run.sh BUILD_DIR [SECONDS]}
SECONDS_BUDGET=${2:-60}
FUZZ_DIR="$BUILD_DIR/fuzz"
if ! command -v clang++ >/dev/null; then
  echo "fuzz: clang++ not found (tools/setup-debian.sh installs it); the fuzz run is skipped" >&2
  exit 0
fi
CC=clang CXX=clang++ cmake -S . -B "$FUZZ_DIR/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGRAFT_FUZZ=ON \
  -DGRAFT_CUDA=OFF -DGRAFT_BUILD_TESTS=OFF -DGRAFT_BUILD_BENCH=OFF >"$FUZZ_DIR.configure.log" 2>&1 ||
  { cat "$FUZZ_DIR.configure.log"; exit 1; }
cmake --build "$FUZZ_DIR/build" --target fuzz_onnx_loader -j "${JOBS:-$(nproc)}"
CORPUS="$FUZZ_DIR/corpus"
mkdir -p "$CORPUS" "$FUZZ_DIR/artifacts"
# Seeds: small real models (each node test's model, mnist-8) and past findings.
for f in ../shared/onnx-node-tests/*/model.onnx ../shared/pretrained/mnist-8/model.onnx tests/importers/fuzz_regressions/*; do
  [ -f "$f" ] || continue
  [ "$(stat -c %s "$f")" -le 65536 ] || continue
  cp "$f" "$CORPUS/$(echo "$f" | md5sum | cut -c1-16)"
done
echo "fuzz: $(ls "$CORPUS" | wc -l) corpus inputs, ${SECONDS_BUDGET}s"
# Leaks are reported by ASan at exit; -rss_limit bounds memory per input.
"$FUZZ_DIR/build/tools/fuzz_onnx_loader" "$CORPUS" -max_total_time="$SECONDS_BUDGET" -rss_limit_mb=2048 \
  -timeout=20 -artifact_prefix="$FUZZ_DIR/artifacts/" -print_final_stats=1 2>"$FUZZ_DIR/log.txt" ||
  { tail -60 "$FUZZ_DIR/log.txt"; echo "fuzz: FAILED; the input is in $FUZZ_DIR/artifacts/" >&2; exit 1; }
grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$FUZZ_DIR/log.txt" || true
echo "fuzz: no crash in ${SECONDS_BUDGET}s"
