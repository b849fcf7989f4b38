// The ceiling every memory-bound kernel is judged against: device-to-device
// copy bandwidth (bytes read + written), measured in the same run.
#include "bench/cuda/harness.h"

namespace graft::bench {
namespace {

void copy_d2d(benchmark::State& state) {
  const size_t bytes = static_cast<size_t>(state.range(0)) << 20;
  DeviceBuffer a(bytes), b(bytes);
  run_timed(state, [&] { BENCH_CUDA_CHECK(cudaMemcpyAsync(b.p, a.p, bytes, cudaMemcpyDeviceToDevice)); });
  set_bytes(state, 2.0 * static_cast<double>(bytes));
}
BENCHMARK(copy_d2d)->Name("copy_d2d/u8/MiB=1024")->Arg(1024)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(copy_d2d)->Name("copy_d2d/u8/MiB=256")->Arg(256)->UseManualTime()->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace graft::bench
