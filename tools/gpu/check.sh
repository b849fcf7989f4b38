#!/usr/bin/env bash
# The GPU check: one command for a GPU machine without the Debian packages, run
# from the repository root there:  bash tools/gpu/check.sh
# Before, on a machine with the packages: bash tools/gpu/prepare.sh, and copy
# .gtest/ and .gbench/ along with the checkout.
#
# Builds the GPU-only configuration (GRAFT_GPU_CHECK: kernels, engine,
# graft_tests_cuda, bench_cuda), runs the CUDA tests, then the GPU benchmarks,
# and writes bench/results/<device>-<yyyymmdd>-<commit>.json (tools/gpu/results.py).
# Logs and reports go to $RESULTS_DIR (default <build>/gpu-check) and, where
# $OUT is set (a folder that the caller collects), are copied there (flat).
# A failing test does not stop the benchmarks; the exit status is non-zero at
# the end if anything failed (configure, build, a test, a benchmark).
# Tolerant of a bare machine: no cuDNN -> benchmarks without baselines; no
# Google Benchmark -> tests only; no GPU -> tests skip, nothing is timed, exit 0.
#
# Environment (all optional): BUILD_DIR (build-gpu), JOBS (all cores),
# CUDA_ARCH (90), GRAFT_COMMIT (else git, else .gbench/commit), GRAFT_CUDNN_ROOT,
# TEST_FILTER (gtest filter, *), TEST_TIMEOUT (240 s), BENCH_FILTER (regex, .),
# BENCH_MIN_TIME (0.05 s per benchmark), BENCH_TIMEOUT (240 s), RESULTS_DIR,
# CHECK_BUDGET (540 s: the tests and benchmarks get what the build left of it,
# so the whole check ends inside a 600 s limit per command),
# SANITIZE=1 (the tests again under compute-sanitizer memcheck; SANITIZE_FILTER,
# SANITIZE_TIMEOUT 180 s), SKIP_TESTS=1 (benchmarks only), TORCH_TIMEOUT (90 s per
# bench/cuda/*_torch.py baseline script).
#
# Everything does not fit in one 600 s call (about 350 benchmarks). The build
# folder stays on a warm machine, so a second call rebuilds nothing:
#   BENCH_FILTER="$(cat tools/gpu/first_call.filter)" bash tools/gpu/check.sh
#   SKIP_TESTS=1 BENCH_TIMEOUT=420 BENCH_FILTER="$(cat tools/gpu/second_call.filter)" bash tools/gpu/check.sh
# The second call keeps the first one's test report and benchmark figures, so its
# results file holds both.
set -uo pipefail
cd "$(dirname "$0")/../.."
REPO=$(pwd)
START=$SECONDS
BUILD_DIR=${BUILD_DIR:-build-gpu}
JOBS=${JOBS:-$(nproc)}
CUDA_ARCH=${CUDA_ARCH:-90}
RES=${RESULTS_DIR:-$BUILD_DIR/gpu-check}
mkdir -p "$RES"
# A benchmarks-only call (SKIP_TESTS=1) after a full one on the same machine
# keeps that call's test report and adds its benchmark figures (bench_prev.json)
# to this call's, so the results file covers both.
if [ "${SKIP_TESTS:-0}" = 1 ] && [ -s "$RES/bench.json" ]; then
  mv "$RES/bench.json" "$RES/bench_prev.json"
else
  rm -f "$RES"/tests.json "$RES"/tests.log "$RES"/bench_prev.json
fi
rm -f "$RES"/bench.json "$RES"/bench.log "$RES"/summary.txt "$RES"/sanitizer.log "$RES"/*_torch.json "$RES"/*_torch.log
status=0
problems=()
fail() { status=1; problems+=("$1"); echo "check: FAILED: $1"; }
phase() { echo; echo "==== $1  (t=$((SECONDS - START)) s)"; }

phase "machine"
date -u
gpu_ok=0
if command -v nvidia-smi > /dev/null 2>&1; then
  timeout 30 nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv 2>&1
  timeout 30 nvidia-smi -L > /dev/null 2>&1 && gpu_ok=1
else
  echo "nvidia-smi: not found"
fi
if ! command -v nvcc > /dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then export PATH=/usr/local/cuda/bin:$PATH; fi
if command -v nvcc > /dev/null 2>&1; then nvcc --version | tail -2; else echo "nvcc: not found"; fi
echo "cmake: $(cmake --version | head -1)   cores: $(nproc)   jobs: $JOBS"

# ---- the commit being checked (the copied tree may carry no .git) ----
if [ -z "${GRAFT_COMMIT:-}" ]; then
  GRAFT_COMMIT=$(git rev-parse --short=7 HEAD 2> /dev/null || true)
  [ -z "$GRAFT_COMMIT" ] && [ -f .gbench/commit ] && GRAFT_COMMIT=$(cat .gbench/commit)
  GRAFT_COMMIT=${GRAFT_COMMIT:-unknown}
fi
export GRAFT_COMMIT
echo "commit: $GRAFT_COMMIT"

# ---- cuDNN (the baselines): GRAFT_CUDNN_ROOT, the pip package, or the toolkit ----
cudnn_root=${GRAFT_CUDNN_ROOT:-}
if [ -z "$cudnn_root" ] && command -v python3 > /dev/null 2>&1; then
  for cand in $(python3 -c 'import nvidia.cudnn as m; print(" ".join(m.__path__))' 2> /dev/null) \
              $(python3 -c 'import site; print(" ".join(p + "/nvidia/cudnn" for p in site.getsitepackages()))' 2> /dev/null); do
    if [ -f "$cand/include/cudnn.h" ] && ls "$cand"/lib/libcudnn.so* > /dev/null 2>&1; then cudnn_root=$cand; break; fi
  done
  if [ -z "$cudnn_root" ]; then  # another layout of the wheels (e.g. nvidia/cu13/...)
    sp=$(python3 -c 'import site; print(" ".join(site.getsitepackages()))' 2> /dev/null)
    h=$(find $sp -maxdepth 5 -path '*nvidia*' -name cudnn.h 2> /dev/null | head -1)
    if [ -n "$h" ]; then
      d=$(dirname "$(dirname "$h")")
      ls "$d"/lib/libcudnn.so* > /dev/null 2>&1 && cudnn_root=$d
    fi
  fi
fi
cudnn_args=()
if [ -n "$cudnn_root" ]; then
  echo "cuDNN: $cudnn_root"
  cudnn_args=(-DGRAFT_CUDNN_ROOT="$cudnn_root")
  export LD_LIBRARY_PATH="$cudnn_root/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  # cuDNN's engines load cuBLAS(Lt) and NVRTC at run time: the toolkit's, where the loader has no path to them.
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
    [ -d "$d" ] && export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$d"
  done
else
  echo "cuDNN: not found in python's nvidia.cudnn; CMake looks in the CUDA toolkit (no baselines if absent)"
fi

# ---- configure and build ----
phase "configure (GRAFT_GPU_CHECK=ON, sm_$CUDA_ARCH)"
gen=Ninja
command -v ninja > /dev/null 2>&1 || gen="Unix Makefiles"
built_tests=0
built_bench=0
if cmake -S . -B "$BUILD_DIR" -G "$gen" -DCMAKE_BUILD_TYPE=Release -DGRAFT_GPU_CHECK=ON \
     -DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCH" "${cudnn_args[@]}" > "$RES/build.log" 2>&1; then
  grep -E "^-- Graft|^  Graft|CMake Error" "$RES/build.log" | head -20
  phase "build (-j$JOBS)"
  keep_going=(-- -k 0)
  [ "$gen" = Ninja ] || keep_going=(-- -k)
  targets=()
  if grep -q "GoogleTest not found" "$RES/build.log"; then
    fail "GoogleTest not found (carry .gtest: tools/gpu/prepare.sh): the CUDA tests are not built"
  else
    targets+=(graft_tests_cuda)
  fi
  if grep -q "Google Benchmark not found" "$RES/build.log"; then
    echo "check: Google Benchmark not found (carry .gbench: tools/gpu/prepare.sh): the benchmarks are not built"
  else
    targets+=(bench_cuda)
  fi
  # Both targets in one build (keeps going past errors, so one broken target
  # does not stop the other); what got built is what exists afterwards.
  rm -f "$BUILD_DIR/tests/graft_tests_cuda" "$BUILD_DIR/bench/bench_cuda"
  build_limit=$(( ${CHECK_BUDGET:-540} - 90 - (SECONDS - START) ))
  # A slow configure can spend the budget: the build still gets a minute
  # (timeout takes no negative limit), and says so.
  if [ "$build_limit" -lt 60 ]; then
    echo "check: only $build_limit s of CHECK_BUDGET left for the build; giving it 60 s" | tee -a "$RES/build.log"
    build_limit=60
  fi
  [ ${#targets[@]} -gt 0 ] && timeout "$build_limit" cmake --build "$BUILD_DIR" -j "$JOBS" --target "${targets[@]}" "${keep_going[@]}" >> "$RES/build.log" 2>&1
  brc=$?
  if [ $brc = 124 ]; then echo "check: the build ran past $build_limit s and was stopped"
  elif [ $brc != 0 ]; then grep -E "error|FAILED:" "$RES/build.log" | head -40
  fi
  if [ -x "$BUILD_DIR/tests/graft_tests_cuda" ]; then built_tests=1
  elif [[ " ${targets[*]} " == *" graft_tests_cuda "* ]]; then fail "building graft_tests_cuda (see build.log)"
  fi
  if [ -x "$BUILD_DIR/bench/bench_cuda" ]; then built_bench=1
  elif [[ " ${targets[*]} " == *" bench_cuda "* ]]; then fail "building bench_cuda (see build.log)"
  fi
  echo "built in $((SECONDS - START)) s since the start"
else
  tail -40 "$RES/build.log"
  fail "configure (see build.log)"
fi

# ---- time: stay inside CHECK_BUDGET (commands are stopped at 600 s) ----
budget=${CHECK_BUDGET:-540}
left() { echo $((budget - (SECONDS - START))); }
min() { if [ "$1" -lt "$2" ]; then echo "$1"; else echo "$2"; fi; }
bench_reserve=0
[ "$built_bench" = 1 ] && bench_reserve=150
test_timeout=$(min "${TEST_TIMEOUT:-240}" $(( $(left) - bench_reserve )))
[ "$test_timeout" -lt 30 ] && test_timeout=30

# ---- tests ----
if [ "$built_tests" = 1 ] && [ "${SKIP_TESTS:-0}" = 1 ]; then
  echo "check: SKIP_TESTS=1: the CUDA tests do not run in this call"
  bench_reserve=0
elif [ "$built_tests" = 1 ]; then
  phase "tests: graft_tests_cuda"
  # A test that crashes or hangs the program counts as failed; the rest run in a fresh one.
  if command -v python3 > /dev/null 2>&1; then
    python3 tools/gpu/run_tests.py "$BUILD_DIR/tests/graft_tests_cuda" --out "$RES/tests.json" --log "$RES/tests.log" \
      --filter "${TEST_FILTER:-*}" --timeout "$test_timeout"
    rc=$?
  else  # no python: one plain run
    timeout "$test_timeout" "$BUILD_DIR/tests/graft_tests_cuda" --gtest_filter="${TEST_FILTER:-*}" \
      --gtest_output="json:$RES/tests.json" > "$RES/tests.log" 2>&1
    rc=$?
  fi
  grep -E "^\[  FAILED  \]|^\[  PASSED  \]|^\[  SKIPPED \] [0-9]+ test|Failure$|error:" "$RES/tests.log" | head -60
  [ $rc = 0 ] || fail "graft_tests_cuda: some tests failed or crashed (see tests.log)"
  if grep -q "no usable GPU" "$RES/tests.log"; then
    echo "check: the GPU tests SKIPPED on this machine: $(grep -m1 "no usable GPU" "$RES/tests.log")"
  fi
fi

# ---- optional: the tests again under compute-sanitizer (SANITIZE=1; slow: filter them) ----
if [ "$built_tests" = 1 ] && [ "${SANITIZE:-0}" = 1 ] && [ $gpu_ok = 1 ]; then
  phase "compute-sanitizer memcheck: graft_tests_cuda --gtest_filter=${SANITIZE_FILTER:-*}"
  san=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2> /dev/null)
  if [ -z "$san" ]; then
    echo "check: compute-sanitizer not found: skipped"
  else
    timeout "$(min "${SANITIZE_TIMEOUT:-180}" $(( $(left) - bench_reserve )))" "$san" --tool memcheck --error-exitcode 99 \
      "$BUILD_DIR/tests/graft_tests_cuda" --gtest_filter="${SANITIZE_FILTER:-*}" > "$RES/sanitizer.log" 2>&1
    rc=$?
    grep -E "^========= (Invalid|Program hit|ERROR SUMMARY)|^\[  FAILED  \]" "$RES/sanitizer.log" | head -30
    [ $rc = 0 ] || fail "compute-sanitizer memcheck: exit status $rc (see sanitizer.log)"
  fi
fi

# ---- benchmarks ----
bench_timeout=$(min "${BENCH_TIMEOUT:-240}" $(( $(left) - 15 )))
[ "$bench_timeout" -lt 20 ] && bench_timeout=20
if [ "$built_bench" = 1 ]; then
  phase "benchmarks: bench_cuda (min time ${BENCH_MIN_TIME:-0.05} s each, at most $bench_timeout s)"
  # One process for all; a benchmark that kills it is noted and the rest run in a fresh one.
  if command -v python3 > /dev/null 2>&1; then
    python3 tools/gpu/run_bench.py "$BUILD_DIR/bench/bench_cuda" --out "$RES/bench.json" --log "$RES/bench.log" \
      --min-time "${BENCH_MIN_TIME:-0.05}" --filter "${BENCH_FILTER:-.}" --timeout "$bench_timeout"
    rc=$?
  else  # no python: one plain run, its console table as the result
    timeout "$bench_timeout" "$BUILD_DIR/bench/bench_cuda" --benchmark_min_time="${BENCH_MIN_TIME:-0.05}" \
      --benchmark_filter="${BENCH_FILTER:-.}" --benchmark_out="$RES/bench.json" --benchmark_out_format=json \
      > "$RES/bench.log" 2>&1
    rc=$?
    tail -60 "$RES/bench.log"
  fi
  [ $rc = 0 ] || fail "bench_cuda: some benchmarks failed or did not run (see bench.log)"
fi

# ---- PyTorch baselines: every bench/cuda/*_torch.py (needs torch with CUDA there) ----
# Each script takes --out FILE and writes Google Benchmark-format JSON whose
# names end in "@torch_..." so results.py pairs them with ours; a script that
# finds no torch or no GPU exits 0 with a message and writes nothing.
extra_args=()
[ -s "$RES/bench_prev.json" ] && extra_args+=(--extra "$RES/bench_prev.json")
if [ "$built_bench" = 1 ] && [ $gpu_ok = 1 ] && command -v python3 > /dev/null 2>&1; then
  for script in bench/cuda/*_torch.py; do
    [ -f "$script" ] || continue
    t=$(min "${TORCH_TIMEOUT:-90}" $(( $(left) - 15 )))
    if [ "$t" -lt 15 ]; then echo "check: no time left for $script"; continue; fi
    name=$(basename "$script" .py)
    phase "PyTorch baseline: $script (at most $t s)"
    timeout "$t" python3 "$script" --out "$RES/$name.json" > "$RES/$name.log" 2>&1
    rc=$?
    tail -5 "$RES/$name.log"
    if [ $rc != 0 ]; then fail "$script: exit status $rc (see $name.log)"; fi
    [ -s "$RES/$name.json" ] && extra_args+=(--extra "$RES/$name.json")
  done
fi

# ---- results ----
phase "results"
if command -v python3 > /dev/null 2>&1; then
  out=$(python3 tools/gpu/results.py --bench "$RES/bench.json" "${extra_args[@]}" --tests "$RES/tests.json" --repo "$REPO" 2>&1)
  prc=$?
else
  out="python3 is missing: no results file (the raw Google Benchmark JSON is bench.json)"
  prc=0
fi
[ $prc = 0 ] || fail "tools/gpu/results.py exit status $prc"
results_file=$(printf '%s\n' "$out" | sed -n 's/^RESULTS_FILE=//p')
printf '%s\n' "$out" | grep -v "^RESULTS_FILE=" > "$RES/summary.txt"
{
  if [ $gpu_ok = 0 ]; then echo "NO USABLE GPU on this machine: the CUDA tests skipped and nothing was timed"; fi
  if [ $status = 0 ]; then echo "check: OK in $((SECONDS - START)) s"
  else echo "check: FAILED in $((SECONDS - START)) s:"; for p in "${problems[@]}"; do echo "  - $p"; done
  fi
} >> "$RES/summary.txt"

if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then
  for f in "$results_file" "$RES/tests.json" "$RES/tests.log" "$RES/bench.json" "$RES/bench.log" "$RES/build.log" "$RES/summary.txt" "$RES/sanitizer.log"; do
    [ -n "$f" ] && [ -f "$f" ] && cp "$f" "$OUT/"
  done
  echo "copied to \$OUT: $(ls "$OUT" | tr '\n' ' ')"
fi
phase "summary (full logs in $RES${OUT:+ and \$OUT})"
cat "$RES/summary.txt"
exit $status
