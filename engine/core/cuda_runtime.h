// The engine's thin view of the CUDA runtime: device memory through the
// caching allocator, streams (one current stream per device and host thread),
// copies staged through a small pool of pinned host buffers, and a check
// macro. Compiled in every build; with CUDA compiled out every function here
// throws "CUDA is not compiled in".
#pragma once

#include <cstddef>
#include <memory>

#include "engine/core/allocator.h"
#include "engine/core/device.h"

// The runtime's opaque stream handle, without including the CUDA headers
// (identical to the typedef in cuda_runtime_api.h; see kernels/cuda/random.h).
typedef struct CUstream_st* cudaStream_t;

namespace graft::cuda {

// Device memory through the caching allocator. Its blocks are not tied to a
// stream: a block freed while work queued on another stream still uses it can
// be handed out again at once. With more than one stream, free a tensor only
// after the streams that used it are synchronized.
void* device_alloc(size_t nbytes, int device);
void device_free(void* p, int device);
CachingAllocator& caching_allocator(int device);

// ---- streams ---------------------------------------------------------------
// A stream of one device: a shared handle (copies share the stream; the last
// copy destroys it). The default-constructed Stream is device 0's legacy
// default stream (handle nullptr), which is never destroyed.
class Stream {
 public:
  Stream() = default;
  // A new stream on `device` (non-blocking with respect to the legacy default
  // stream). Throws graft::Error where the device is not usable.
  static Stream create(int device);
  // The legacy default stream of `device`.
  static Stream default_stream(int device);

  cudaStream_t handle() const;  // pass to the kernels' launchers
  int device() const { return device_; }
  bool is_default() const { return !impl_; }
  // Blocks the host until all work queued on the stream is done.
  void synchronize() const;
  bool operator==(const Stream& o) const { return device_ == o.device_ && handle() == o.handle(); }
  bool operator!=(const Stream& o) const { return !(*this == o); }

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
  int device_ = 0;
};

// The stream the engine queues work for `device` on, for the calling host
// thread: the legacy default stream until set_current_stream changes it.
Stream current_stream(int device);
void set_current_stream(const Stream& s);

// Sets the current stream of s.device() for this thread while alive, and
// restores the previous one.
class StreamGuard {
 public:
  explicit StreamGuard(const Stream& s);
  ~StreamGuard();
  StreamGuard(const StreamGuard&) = delete;
  StreamGuard& operator=(const StreamGuard&) = delete;

 private:
  Stream previous_;
};

// A marker in a stream: record() it after queued work, and synchronize()
// waits on the host until the stream has passed it (used to know when a
// buffer that queued work reads may be reused). Copies share the event.
class Event {
 public:
  Event() = default;
  static Event create(int device);  // throws graft::Error where the device is not usable
  bool defined() const { return impl_ != nullptr; }
  // Records on `s` (a stream of the event's device).
  void record(const Stream& s);
  // Returns at once if never recorded.
  void synchronize() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// Makes `device` the calling thread's current CUDA device while alive, and
// restores the previous one.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = -1;
};

// ---- copies ----------------------------------------------------------------
enum class CopyKind { host_to_device, device_to_host, device_to_device };

// Copies nbytes on the current stream of the current device and returns when
// the host side may be reused: host_to_device and device_to_host are complete
// on return; device_to_device is queued (ordered with later work on the same
// stream). Pageable host memory goes through the pinned staging pool in
// chunks (double-buffered); pinned host memory (cudaMallocHost, pinned_alloc,
// cudaHostRegister) is copied directly.
void copy(void* dst, const void* src, size_t nbytes, CopyKind kind);
// Queues a copy on `stream` and returns at once. Host memory must be pinned
// (throws otherwise) and must stay untouched until the stream has passed it.
void copy_async(void* dst, const void* src, size_t nbytes, CopyKind kind, const Stream& stream);
// Zeroes device memory on the current stream of the current device.
void memset_zero(void* p, size_t nbytes);
// Waits for all work on the current device.
void synchronize();

// ---- pinned host memory ------------------------------------------------------
// Page-locked host memory (cudaMallocHost): copies from and to it run at full
// PCIe speed and can be asynchronous.
void* pinned_alloc(size_t nbytes);
void pinned_free(void* p);
// True when p lies in page-locked host memory known to CUDA.
bool is_pinned(const void* p);

// The staging pool behind copy(): buffers of kStagingChunk bytes, allocated
// on first use and kept for reuse.
constexpr size_t kStagingChunk = size_t(8) << 20;
struct StagingStats {
  size_t buffers = 0;        // pinned buffers allocated so far
  size_t staged_copies = 0;  // copy() calls that went through the pool
  size_t direct_copies = 0;  // copy() calls between pinned host and device memory
};
StagingStats staging_stats();

}  // namespace graft::cuda

#ifdef GRAFT_WITH_CUDA
#include <cuda_runtime.h>

#include "engine/core/error.h"
// Throws graft::Error naming the failing call, file and line.
#define GRAFT_CUDA_CHECK(call)                                                        \
  do {                                                                                \
    cudaError_t graft_cuda_err_ = (call);                                             \
    if (graft_cuda_err_ != cudaSuccess) {                                             \
      GRAFT_FAIL("CUDA error " << cudaGetErrorName(graft_cuda_err_) << " ("           \
                               << cudaGetErrorString(graft_cuda_err_) << ") in " #call); \
    }                                                                                 \
  } while (0)
#endif
