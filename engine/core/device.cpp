#include "engine/core/device.h"

#include <memory>
#include <mutex>
#include <vector>

#include "engine/core/cuda_runtime.h"
#include "engine/core/error.h"

namespace graft {

std::string Device::str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }

Device parse_device(const std::string& s) {
  if (s == "cpu") return Device::cpu();
  if (s == "cuda") return Device::cuda(0);
  if (s.rfind("cuda:", 0) == 0) {
    const std::string idx = s.substr(5);
    GRAFT_CHECK(!idx.empty() && idx.find_first_not_of("0123456789") == std::string::npos,
                "device: cannot parse '" << s << "' (expected cpu, cuda or cuda:N)");
    return Device::cuda(std::stoi(idx));
  }
  GRAFT_FAIL("device: cannot parse '" << s << "' (expected cpu, cuda or cuda:N)");
}

namespace {
struct CudaProbe {
  int count = 0;
  std::string reason;
};

const CudaProbe& probe() {
  static const CudaProbe p = [] {
    CudaProbe r;
#ifdef GRAFT_WITH_CUDA
    cudaError_t err = cudaGetDeviceCount(&r.count);
    if (err != cudaSuccess) {
      r.count = 0;
      r.reason = std::string("the CUDA runtime reports ") + cudaGetErrorString(err);
      cudaGetLastError();  // clear the sticky error
    } else if (r.count == 0) {
      r.reason = "no CUDA device is present";
    }
#else
    r.reason = "this build of Graft has CUDA compiled out (GRAFT_CUDA=OFF)";
#endif
    return r;
  }();
  return p;
}
}  // namespace

bool cuda_available() { return probe().count > 0; }
int cuda_device_count() { return probe().count; }
std::string cuda_unavailable_reason() { return probe().reason; }

void check_device_usable(const Device& d, const char* what) {
  if (d.is_cpu()) return;
  GRAFT_CHECK(cuda_available(), what << ": device " << d.str() << " requested, but CUDA is unavailable: "
                                     << cuda_unavailable_reason());
  GRAFT_CHECK(d.index >= 0 && d.index < cuda_device_count(),
              what << ": device " << d.str() << " does not exist (" << cuda_device_count() << " CUDA device(s))");
}

namespace cuda {

#ifdef GRAFT_WITH_CUDA
CachingAllocator& caching_allocator(int device) {
  static std::mutex mu;
  static std::vector<std::unique_ptr<CachingAllocator>> allocators;
  std::lock_guard<std::mutex> lock(mu);
  if (allocators.empty()) allocators.resize(std::max(1, cuda_device_count()));
  GRAFT_CHECK(device >= 0 && device < static_cast<int>(allocators.size()), "cuda: no device " << device);
  auto& a = allocators[device];
  if (!a) {
    CachingAllocator::Backend b;
    b.name = "cuda:" + std::to_string(device);
    b.raw_alloc = [device](size_t n) -> void* {
      GRAFT_CUDA_CHECK(cudaSetDevice(device));
      void* p = nullptr;
      cudaError_t err = cudaMalloc(&p, n);
      if (err == cudaErrorMemoryAllocation) {
        cudaGetLastError();
        return nullptr;
      }
      GRAFT_CUDA_CHECK(err);
      return p;
    };
    b.raw_free = [](void* p) { cudaFree(p); };
    b.mem_info = [device](size_t* free_b, size_t* total_b) {
      cudaSetDevice(device);
      if (cudaMemGetInfo(free_b, total_b) != cudaSuccess) *free_b = *total_b = 0;
    };
    a = std::make_unique<CachingAllocator>(std::move(b));
  }
  return *a;
}

void* device_alloc(size_t nbytes, int device) {
  check_device_usable(Device::cuda(device), "cuda allocator");
  return caching_allocator(device).allocate(nbytes);
}
void device_free(void* p, int device) { caching_allocator(device).deallocate(p); }

void synchronize() { GRAFT_CUDA_CHECK(cudaDeviceSynchronize()); }
#else
[[noreturn]] static void no_cuda(const char* what) {
  GRAFT_FAIL(what << ": CUDA is not compiled into this build of Graft (GRAFT_CUDA=OFF)");
}
CachingAllocator& caching_allocator(int) { no_cuda("cuda allocator"); }
void* device_alloc(size_t, int) { no_cuda("cuda allocator"); }
void device_free(void*, int) { no_cuda("cuda allocator"); }
void synchronize() { no_cuda("cuda synchronize"); }
#endif

}  // namespace cuda
}  // namespace graft
