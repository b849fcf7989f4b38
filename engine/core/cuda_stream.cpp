// Streams, the current stream per device and thread, and copies through a
// pool of pinned staging buffers (declared in engine/core/cuda_runtime.h).
#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include "engine/core/cuda_runtime.h"
#include "engine/core/error.h"

namespace graft::cuda {

namespace {
thread_local std::vector<Stream> t_current;  // index: device; absent = legacy default stream
}  // namespace

Stream Stream::default_stream(int device) {
  Stream s;
  s.device_ = device;
  return s;
}

Stream current_stream(int device) {
  GRAFT_CHECK(device >= 0, "current_stream: no device " << device);
  if (device < static_cast<int>(t_current.size())) return t_current[device];
  return Stream::default_stream(device);
}

void set_current_stream(const Stream& s) {
  if (s.device() >= static_cast<int>(t_current.size())) {
    const int old = static_cast<int>(t_current.size());
    t_current.resize(s.device() + 1);
    for (int d = old; d <= s.device(); ++d) t_current[d] = Stream::default_stream(d);
  }
  t_current[s.device()] = s;
}

StreamGuard::StreamGuard(const Stream& s) : previous_(current_stream(s.device())) { set_current_stream(s); }
StreamGuard::~StreamGuard() { set_current_stream(previous_); }

#ifdef GRAFT_WITH_CUDA

struct Stream::Impl {
  cudaStream_t stream = nullptr;
  int device = 0;
  ~Impl() {
    int prev = -1;
    cudaGetDevice(&prev);
    cudaSetDevice(device);
    cudaStreamDestroy(stream);  // waits for nothing; queued work still completes
    if (prev >= 0) cudaSetDevice(prev);
  }
};

Stream Stream::create(int device) {
  check_device_usable(Device::cuda(device), "Stream::create");
  DeviceGuard guard(device);
  auto impl = std::make_shared<Impl>();
  impl->device = device;
  GRAFT_CUDA_CHECK(cudaStreamCreateWithFlags(&impl->stream, cudaStreamNonBlocking));
  Stream s;
  s.impl_ = std::move(impl);
  s.device_ = device;
  return s;
}

cudaStream_t Stream::handle() const { return impl_ ? impl_->stream : nullptr; }

void Stream::synchronize() const {
  check_device_usable(Device::cuda(device_), "Stream::synchronize");
  DeviceGuard guard(device_);
  GRAFT_CUDA_CHECK(cudaStreamSynchronize(handle()));
}

struct Event::Impl {
  cudaEvent_t event = nullptr;
  int device = 0;
  bool recorded = false;
  ~Impl() {
    if (event) cudaEventDestroy(event);
  }
};

Event Event::create(int device) {
  check_device_usable(Device::cuda(device), "Event::create");
  DeviceGuard guard(device);
  auto impl = std::make_shared<Impl>();
  impl->device = device;
  GRAFT_CUDA_CHECK(cudaEventCreateWithFlags(&impl->event, cudaEventDisableTiming));
  Event e;
  e.impl_ = std::move(impl);
  return e;
}

void Event::record(const Stream& s) {
  GRAFT_CHECK(impl_, "Event::record: the event was never created (use Event::create)");
  GRAFT_CHECK(s.device() == impl_->device, "Event::record: an event of cuda:" << impl_->device
                                                                          << " recorded on a stream of cuda:" << s.device());
  DeviceGuard guard(impl_->device);
  GRAFT_CUDA_CHECK(cudaEventRecord(impl_->event, s.handle()));
  impl_->recorded = true;
}

void Event::synchronize() const {
  if (!impl_ || !impl_->recorded) return;
  GRAFT_CUDA_CHECK(cudaEventSynchronize(impl_->event));
}

DeviceGuard::DeviceGuard(int device) {
  check_device_usable(Device::cuda(device), "DeviceGuard");
  GRAFT_CUDA_CHECK(cudaGetDevice(&previous_));
  if (previous_ != device) GRAFT_CUDA_CHECK(cudaSetDevice(device));
  else previous_ = -1;  // nothing to restore
}
DeviceGuard::~DeviceGuard() {
  if (previous_ >= 0) cudaSetDevice(previous_);
}

// ---- pinned memory and the staging pool --------------------------------------

void* pinned_alloc(size_t nbytes) {
  check_device_usable(Device::cuda(0), "pinned_alloc");
  void* p = nullptr;
  const cudaError_t err = cudaMallocHost(&p, std::max<size_t>(nbytes, 1));
  if (err != cudaSuccess) {
    cudaGetLastError();
    GRAFT_FAIL("pinned_alloc: cannot page-lock " << nbytes << " bytes of host memory: " << cudaGetErrorString(err));
  }
  return p;
}
void pinned_free(void* p) {
  if (p) cudaFreeHost(p);
}

bool is_pinned(const void* p) {
  if (!p || !cuda_available()) return false;
  cudaPointerAttributes a{};
  if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return a.type == cudaMemoryTypeHost;
}

namespace {

struct StagingBuffer {
  void* host = nullptr;
  cudaEvent_t done = nullptr;  // recorded after the last copy that used `host`
  int device = 0;
  bool pending = false;        // `done` was recorded and not yet waited for
};

class StagingPool {
 public:
  StagingBuffer* acquire(int device) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (size_t i = 0; i < free_.size(); ++i)
        if (free_[i]->device == device) {
          StagingBuffer* b = free_[i];
          free_.erase(free_.begin() + static_cast<std::ptrdiff_t>(i));
          return b;
        }
    }
    auto b = std::make_unique<StagingBuffer>();
    b->device = device;
    b->host = pinned_alloc(kStagingChunk);
    const cudaError_t err = cudaEventCreateWithFlags(&b->done, cudaEventDisableTiming);
    if (err != cudaSuccess) {
      cudaFreeHost(b->host);
      GRAFT_CUDA_CHECK(err);
    }
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.buffers;
    all_.push_back(std::move(b));
    return all_.back().get();
  }
  void release(StagingBuffer* b) {
    if (b->pending) {  // on an error path: the copy may still read or write it
      cudaEventSynchronize(b->done);
      b->pending = false;
    }
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back(b);
  }
  void count(bool staged) {
    std::lock_guard<std::mutex> lock(mu_);
    ++(staged ? stats_.staged_copies : stats_.direct_copies);
  }
  StagingStats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }

 private:
  std::mutex mu_;
  std::vector<std::unique_ptr<StagingBuffer>> all_;
  std::vector<StagingBuffer*> free_;
  StagingStats stats_;
};

// Never destroyed: copies may run during static destruction, and the CUDA
// runtime may be gone by then (its buffers go back with the process).
StagingPool& pool() {
  static StagingPool* p = new StagingPool;
  return *p;
}

// Two buffers for double buffering, returned to the pool on every path.
struct StagingPair {
  StagingBuffer* b[2];
  explicit StagingPair(int device) {
    b[0] = pool().acquire(device);
    try {
      b[1] = pool().acquire(device);
    } catch (...) {
      pool().release(b[0]);
      throw;
    }
  }
  ~StagingPair() {
    pool().release(b[0]);
    pool().release(b[1]);
  }
  StagingPair(const StagingPair&) = delete;
  StagingPair& operator=(const StagingPair&) = delete;
};

void wait(StagingBuffer* b) {
  if (!b->pending) return;
  b->pending = false;
  GRAFT_CUDA_CHECK(cudaEventSynchronize(b->done));
}
void record(StagingBuffer* b, cudaStream_t s) {
  GRAFT_CUDA_CHECK(cudaEventRecord(b->done, s));
  b->pending = true;
}

// Pageable host -> device: chunk i is packed into buffer i % 2 while the
// other buffer's chunk is on its way to the device.
void staged_to_device(char* dst, const char* src, size_t nbytes, int device, cudaStream_t s) {
  StagingPair pair(device);
  size_t i = 0;
  for (size_t off = 0; off < nbytes; off += kStagingChunk, ++i) {
    const size_t len = std::min(kStagingChunk, nbytes - off);
    StagingBuffer* b = pair.b[i & 1];
    wait(b);
    std::memcpy(b->host, src + off, len);
    GRAFT_CUDA_CHECK(cudaMemcpyAsync(dst + off, b->host, len, cudaMemcpyHostToDevice, s));
    record(b, s);
  }
  wait(pair.b[0]);
  wait(pair.b[1]);
}

// Device -> pageable host: chunk i + 1 is on its way into one buffer while
// chunk i is unpacked from the other.
void staged_to_host(char* dst, const char* src, size_t nbytes, int device, cudaStream_t s) {
  StagingPair pair(device);
  const size_t chunks = (nbytes + kStagingChunk - 1) / kStagingChunk;
  auto issue = [&](size_t i) {
    const size_t off = i * kStagingChunk, len = std::min(kStagingChunk, nbytes - off);
    StagingBuffer* b = pair.b[i & 1];
    GRAFT_CUDA_CHECK(cudaMemcpyAsync(b->host, src + off, len, cudaMemcpyDeviceToHost, s));
    record(b, s);
  };
  issue(0);
  for (size_t i = 0; i < chunks; ++i) {
    if (i + 1 < chunks) issue(i + 1);  // its buffer was unpacked in iteration i - 1
    StagingBuffer* b = pair.b[i & 1];
    wait(b);
    const size_t off = i * kStagingChunk, len = std::min(kStagingChunk, nbytes - off);
    std::memcpy(dst + off, b->host, len);
  }
}

int current_device() {
  int d = 0;
  GRAFT_CUDA_CHECK(cudaGetDevice(&d));
  return d;
}

}  // namespace

StagingStats staging_stats() { return pool().stats(); }

void copy(void* dst, const void* src, size_t nbytes, CopyKind kind) {
  if (nbytes == 0) return;
  GRAFT_CHECK(dst && src, "cuda copy: null pointer (dst " << dst << ", src " << src << ") for " << nbytes << " bytes");
  const int device = current_device();
  cudaStream_t s = current_stream(device).handle();
  switch (kind) {
    case CopyKind::device_to_device:
      GRAFT_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToDevice, s));
      return;
    case CopyKind::host_to_device:
      if (is_pinned(src)) {
        GRAFT_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyHostToDevice, s));
        GRAFT_CUDA_CHECK(cudaStreamSynchronize(s));
        pool().count(false);
      } else {
        staged_to_device(static_cast<char*>(dst), static_cast<const char*>(src), nbytes, device, s);
        pool().count(true);
      }
      return;
    case CopyKind::device_to_host:
      if (is_pinned(dst)) {
        GRAFT_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToHost, s));
        GRAFT_CUDA_CHECK(cudaStreamSynchronize(s));
        pool().count(false);
      } else {
        staged_to_host(static_cast<char*>(dst), static_cast<const char*>(src), nbytes, device, s);
        pool().count(true);
      }
      return;
  }
}

void copy_async(void* dst, const void* src, size_t nbytes, CopyKind kind, const Stream& stream) {
  if (nbytes == 0) return;
  GRAFT_CHECK(dst && src, "copy_async: null pointer (dst " << dst << ", src " << src << ") for " << nbytes << " bytes");
  const void* host = kind == CopyKind::host_to_device ? src : kind == CopyKind::device_to_host ? dst : nullptr;
  GRAFT_CHECK(!host || is_pinned(host), "copy_async: host memory at " << host
                                            << " is not pinned (allocate it with cuda::pinned_alloc, or use cuda::copy)");
  DeviceGuard guard(stream.device());
  const cudaMemcpyKind k = kind == CopyKind::host_to_device   ? cudaMemcpyHostToDevice
                           : kind == CopyKind::device_to_host ? cudaMemcpyDeviceToHost
                                                              : cudaMemcpyDeviceToDevice;
  GRAFT_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, k, stream.handle()));
}

void memset_zero(void* p, size_t nbytes) {
  if (nbytes == 0) return;
  GRAFT_CUDA_CHECK(cudaMemsetAsync(p, 0, nbytes, current_stream(current_device()).handle()));
}

#else  // CUDA compiled out

namespace {
[[noreturn]] void no_cuda(const char* what) {
  GRAFT_FAIL(what << ": CUDA is not compiled into this build of Graft (GRAFT_CUDA=OFF)");
}
}  // namespace

struct Stream::Impl {};
Stream Stream::create(int) { no_cuda("Stream::create"); }
struct Event::Impl {};
Event Event::create(int) { no_cuda("Event::create"); }
void Event::record(const Stream&) { no_cuda("Event::record"); }
void Event::synchronize() const {}
cudaStream_t Stream::handle() const { return nullptr; }
void Stream::synchronize() const { no_cuda("Stream::synchronize"); }
DeviceGuard::DeviceGuard(int) { no_cuda("DeviceGuard"); }
DeviceGuard::~DeviceGuard() {}
void* pinned_alloc(size_t) { no_cuda("pinned_alloc"); }
void pinned_free(void*) {}
bool is_pinned(const void*) { return false; }
StagingStats staging_stats() { return {}; }
void copy(void*, const void*, size_t, CopyKind) { no_cuda("cuda copy"); }
void copy_async(void*, const void*, size_t, CopyKind, const Stream&) { no_cuda("cuda copy_async"); }
void memset_zero(void*, size_t) { no_cuda("cuda memset"); }

#endif

}  // namespace graft::cuda
