#!/usr/bin/env bash
# The emulated CUDA kernel tests under AddressSanitizer: every plain load and
# store a kernel makes is checked against the emulated device allocations
# (the emulator itself checks only cp.async and ldmatrix addresses).
#   bash tools/emu-asan.sh [BUILD_DIR] [-- gtest arguments]
# BUILD_DIR (default build) must hold a normal build with CUDA compiled in
# (it provides the rewritten kernel sources, build/emu/src, and the CPU
# kernels). Compiles the kernels, the emulator and the kernel tests with
# -fsanitize=address into BUILD_DIR/emu-asan (about 2.5 minutes on 2 cores),
# then runs them. The engine's tests are left out.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$root/build"
if [ $# -gt 0 ] && [ "$1" != "--" ]; then build="$1"; shift; fi
if [ $# -gt 0 ] && [ "$1" = "--" ]; then shift; fi
build="$(cd "$build" && pwd)"
src="$build/emu/src/kernels/cuda"
[ -d "$src" ] || { echo "emu-asan: no $src (build graft_tests_cuda_emu in $build first)" >&2; exit 2; }
cpu_lib="$build/kernels/libgraft_kernels_cpu.a"
[ -f "$cpu_lib" ] || { echo "emu-asan: no $cpu_lib" >&2; exit 2; }
cuda_include="$(dirname "$(command -v nvcc)")/../include"
out="$build/emu-asan"
mkdir -p "$out"

flags=(-std=c++17 -O1 -fsanitize=address -fno-omit-frame-pointer -march=x86-64-v3 -ffp-contract=fast
       -DGRAFT_CUDA_EMULATION=1 -include "$root/tests/emu/cuda_emu.h" -I"$build/emu/src" -I"$root"
       -I"$cuda_include" -w)
sources=("$src"/*.cpp "$root/tests/emu/cuda_emu.cpp" "$root/tests/emu/test_emulator.cpp")
for f in "$root"/tests/cuda/test_*.cpp; do
  case "$f" in *test_engine_ops.cpp|*test_cuda_runtime.cpp|*test_copy.cpp) continue ;; esac
  sources+=("$f")
done
printf '%s\n' "${sources[@]}" | xargs -P "$(nproc)" -I{} bash -c \
  'g++ "${@:3}" -c "$2" -o "$1/$(basename "$2").o"' _ "$out" {} "${flags[@]}"
g++ -fsanitize=address "$out"/*.o "$cpu_lib" -lgtest_main -lgtest -fopenmp -lopenblas -lpthread -o "$out/graft_tests_cuda_emu_asan"
# Fibers that faulted never unwind (leaks by design); the fibers' own stacks
# are announced to ASan, not its fake stacks.
ASAN_OPTIONS="detect_stack_use_after_return=0:detect_leaks=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}" \
  exec "$out/graft_tests_cuda_emu_asan" "$@"
