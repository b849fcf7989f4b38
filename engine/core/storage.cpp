#include "engine/core/storage.h"

#include "engine/core/allocator.h"
#include "engine/core/cuda_runtime.h"

namespace graft {

Storage::Storage(size_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
  data_ = device.is_cpu() ? cpu_alloc(nbytes) : cuda::device_alloc(nbytes, device.index);
}

Storage::~Storage() {
  if (device_.is_cpu()) cpu_free(data_);
  else cuda::device_free(data_, device_.index);
}

}  // namespace graft
