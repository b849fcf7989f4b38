// bench_cuda's main: Google Benchmark's, after a check that a GPU answers.
// Without one it says so and exits 0 (nothing to time is not a failure of
// the program). With one it records the device in the JSON context
// (gpu_name, gpu_sms, gpu_cc, cuda_runtime, cuda_driver, cudnn) for
// tools/gpu/results.py.
#include <benchmark/benchmark.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <string>

#ifdef GRAFT_HAVE_CUDNN
#include <cudnn.h>
#endif

int main(int argc, char** argv) {
  // Listing the benchmarks needs no GPU (used to plan what fits in a GPU run's time).
  for (int i = 1; i < argc; ++i)
    if (std::string(argv[i]).rfind("--benchmark_list_tests", 0) == 0) {
      benchmark::Initialize(&argc, argv);
      benchmark::RunSpecifiedBenchmarks();
      benchmark::Shutdown();
      return 0;
    }
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess || count == 0) {
    std::printf("bench_cuda: no usable GPU (%s): nothing to time. Run it on the GPU machine (tools/gpu/check.sh).\n",
                err != cudaSuccess ? cudaGetErrorString(err) : "no CUDA device is present");
    return 0;
  }
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) {
    std::printf("bench_cuda: no usable GPU (cudaGetDeviceProperties failed): nothing to time.\n");
    return 0;
  }
  int runtime = 0, driver = 0;
  cudaRuntimeGetVersion(&runtime);
  cudaDriverGetVersion(&driver);
  benchmark::AddCustomContext("gpu_name", prop.name);
  benchmark::AddCustomContext("gpu_sms", std::to_string(prop.multiProcessorCount));
  benchmark::AddCustomContext("gpu_cc", std::to_string(prop.major) + "." + std::to_string(prop.minor));
  benchmark::AddCustomContext("gpu_l2_bytes", std::to_string(prop.l2CacheSize));
  benchmark::AddCustomContext("cuda_runtime", std::to_string(runtime));
  benchmark::AddCustomContext("cuda_driver", std::to_string(driver));
#ifdef GRAFT_HAVE_CUDNN
  benchmark::AddCustomContext("cudnn", std::to_string(cudnnGetVersion()));
#else
  benchmark::AddCustomContext("cudnn", "none");
#endif

  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
