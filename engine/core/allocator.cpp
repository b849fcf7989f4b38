#include "engine/core/allocator.h"

#include <cstdlib>

#include "engine/core/error.h"

namespace graft {

void* cpu_alloc(size_t nbytes) {
  size_t n = (nbytes + kCpuAlignment - 1) / kCpuAlignment * kCpuAlignment;
  if (n == 0) n = kCpuAlignment;
  void* p = std::aligned_alloc(kCpuAlignment, n);
  GRAFT_CHECK(p != nullptr, "cpu allocator: out of memory allocating " << nbytes << " bytes");
  return p;
}

void cpu_free(void* p) { std::free(p); }

CachingAllocator::CachingAllocator(Backend backend) : backend_(std::move(backend)) {}

CachingAllocator::~CachingAllocator() {
  // Blocks still live belong to tensors that outlive the allocator (static
  // destruction order); only the cache is ours to release.
  std::lock_guard<std::mutex> lock(mu_);
  release_cached_locked();
}

size_t CachingAllocator::round_size(size_t nbytes) {
  constexpr size_t kSmall = 512, kLarge = size_t(2) << 20, kSmallLimit = size_t(1) << 20;
  if (nbytes == 0) return kSmall;
  if (nbytes < kSmallLimit) return (nbytes + kSmall - 1) / kSmall * kSmall;
  return (nbytes + kLarge - 1) / kLarge * kLarge;
}

void* CachingAllocator::allocate(size_t nbytes) {
  const size_t size = round_size(nbytes);
  std::lock_guard<std::mutex> lock(mu_);
  // Best fit among cached blocks, but never a block more than twice the size:
  // handing out a huge block for a small tensor would strand memory.
  auto it = free_blocks_.lower_bound(size);
  if (it != free_blocks_.end() && it->first <= 2 * size) {
    void* p = it->second;
    const size_t got = it->first;
    free_blocks_.erase(it);
    live_blocks_[p] = got;
    stats_.cached_bytes -= got;
    stats_.allocated_bytes += got;
    ++stats_.cache_hits;
    return p;
  }
  void* p = backend_.raw_alloc(size);
  if (p == nullptr && !free_blocks_.empty()) {
    release_cached_locked();
    ++stats_.cache_flushes;
    p = backend_.raw_alloc(size);
  }
  if (p == nullptr) {
    size_t free_b = 0, total_b = 0;
    if (backend_.mem_info) backend_.mem_info(&free_b, &total_b);
    constexpr double MiB = 1024.0 * 1024.0;
    GRAFT_FAIL(backend_.name << " out of memory: tried to allocate " << nbytes / MiB << " MiB ("
                             << nbytes << " bytes); " << free_b / MiB << " MiB free of " << total_b / MiB
                             << " MiB; " << stats_.allocated_bytes / MiB
                             << " MiB held by live tensors (the cache was released and the allocation retried)");
  }
  live_blocks_[p] = size;
  stats_.allocated_bytes += size;
  ++stats_.raw_allocs;
  return p;
}

void CachingAllocator::deallocate(void* p) {
  if (p == nullptr) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = live_blocks_.find(p);
  GRAFT_CHECK(it != live_blocks_.end(), backend_.name << " caching allocator: free of a pointer it did not allocate");
  const size_t size = it->second;
  live_blocks_.erase(it);
  stats_.allocated_bytes -= size;
  stats_.cached_bytes += size;
  free_blocks_.emplace(size, p);
}

void CachingAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mu_);
  release_cached_locked();
}

void CachingAllocator::release_cached_locked() {
  for (auto& kv : free_blocks_) backend_.raw_free(kv.second);
  free_blocks_.clear();
  stats_.cached_bytes = 0;
}

CachingAllocator::Stats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

}  // namespace graft
