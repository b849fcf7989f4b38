// Conventions for the GPU benchmarks (Google Benchmark, one program
// `bench_cuda` built from every bench/cuda/*.cu):
// - each benchmark times the device with CUDA events and reports it through
//   manual time (register with ->UseManualTime()), so launch gaps on the host
//   do not count;
// - memory-bound kernels report bytes moved (read + written, once each) with
//   set_bytes(); compute-bound ones report flops with set_flops();
// - names are "<kernel>/<dtype>/<shape>" for ours and the same name with
//   "@<baseline>" appended for a baseline measured in the same process
//   (e.g. "softmax_fwd/bf16/rows=4096x1024@cudnn"); tools/gpu/results.py
//   pairs them into the results JSON (DESIGN.md), with the copy ceiling from
//   "copy_d2d/..." measured in the same run.
#pragma once

#include <benchmark/benchmark.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace graft::bench {

#define BENCH_CUDA_CHECK(call)                                                                              \
  do {                                                                                                      \
    cudaError_t e_ = (call);                                                                                \
    if (e_ != cudaSuccess) {                                                                                \
      std::fprintf(stderr, "CUDA error %s in %s at %s:%d\n", cudaGetErrorString(e_), #call, __FILE__, __LINE__); \
      std::exit(1);                                                                                         \
    }                                                                                                       \
  } while (0)

// Times `launch` per iteration with CUDA events on the default stream; warm-up
// once first. Usage: run_timed(state, [&] { my_kernel_launch(...); });
template <typename F>
void run_timed(benchmark::State& state, F&& launch) {
  cudaEvent_t start, stop;
  BENCH_CUDA_CHECK(cudaEventCreate(&start));
  BENCH_CUDA_CHECK(cudaEventCreate(&stop));
  launch();
  BENCH_CUDA_CHECK(cudaDeviceSynchronize());
  for (auto _ : state) {
    BENCH_CUDA_CHECK(cudaEventRecord(start));
    launch();
    BENCH_CUDA_CHECK(cudaEventRecord(stop));
    BENCH_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    BENCH_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    state.SetIterationTime(ms * 1e-3);
  }
  BENCH_CUDA_CHECK(cudaGetLastError());
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
}

// Bytes read + written by one iteration (Google Benchmark reports bytes_per_second).
inline void set_bytes(benchmark::State& state, double bytes) {
  state.SetBytesProcessed(static_cast<int64_t>(bytes * static_cast<double>(state.iterations())));
  state.counters["bytes"] = bytes;
}
// Floating-point operations of one iteration (reported as a rate counter "flops").
inline void set_flops(benchmark::State& state, double flops) {
  state.counters["flops"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
}

// A device buffer for benchmarks, filled with a fixed pattern (no NaN/inf).
struct DeviceBuffer {
  void* p = nullptr;
  size_t bytes = 0;
  explicit DeviceBuffer(size_t b) : bytes(b) {
    BENCH_CUDA_CHECK(cudaMalloc(&p, b ? b : 1));
    BENCH_CUDA_CHECK(cudaMemset(p, 0x3c, b));  // 0x3c3c3c3c: ~0.0115f; 0x3c3c: ~1.06 (f16), ~0.0115 (bf16)
  }
  ~DeviceBuffer() { cudaFree(p); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  template <typename T>
  T* as() const { return static_cast<T*>(p); }
};

}  // namespace graft::bench

#ifdef GRAFT_HAVE_CUDNN
#include <cudnn.h>
// Inside a benchmark function (it uses its `state`): a failing cuDNN call
// skips that benchmark with the call and cuDNN's message (say, a dtype or
// layout this cuDNN does not take) instead of ending the program.
#define CUDNN_SKIP_ON_ERROR(call)                                                          \
  do {                                                                                     \
    cudnnStatus_t s_ = (call);                                                             \
    if (s_ != CUDNN_STATUS_SUCCESS) {                                                      \
      state.SkipWithError((std::string(#call) + ": " + cudnnGetErrorString(s_)).c_str()); \
      return;                                                                              \
    }                                                                                      \
  } while (0)
#endif
