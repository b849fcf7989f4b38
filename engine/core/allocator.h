// Memory: a 64-byte-aligned CPU allocator, and a caching allocator that keeps
// freed blocks for reuse. The caching allocator is written over a raw backend
// (cudaMalloc/cudaFree for the GPU), so its policy is testable on the CPU.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>

namespace graft {

constexpr size_t kCpuAlignment = 64;

void* cpu_alloc(size_t nbytes);  // 64-byte aligned; throws graft::Error on failure
void cpu_free(void* p);

class CachingAllocator {
 public:
  struct Backend {
    std::string name;                            // "cuda:0"
    std::function<void*(size_t)> raw_alloc;      // nullptr when out of memory
    std::function<void(void*)> raw_free;
    std::function<void(size_t*, size_t*)> mem_info;  // (free, total); may be empty
  };
  struct Stats {
    size_t allocated_bytes = 0;  // in blocks handed out
    size_t cached_bytes = 0;     // in blocks kept for reuse
    size_t raw_allocs = 0;       // calls to the backend's raw_alloc that succeeded
    size_t cache_hits = 0;
    size_t cache_flushes = 0;    // times the cache was released to retry an allocation
  };

  explicit CachingAllocator(Backend backend);
  ~CachingAllocator();
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  // Out of memory: releases the whole cache and retries once; if that fails
  // too, throws graft::Error naming the requested size and what is free.
  void* allocate(size_t nbytes);
  void deallocate(void* p);
  void empty_cache();
  Stats stats() const;

  // Sizes are rounded up so that blocks are reusable: 512 B granularity below
  // 1 MiB, 2 MiB above.
  static size_t round_size(size_t nbytes);

 private:
  void release_cached_locked();

  Backend backend_;
  mutable std::mutex mu_;
  std::multimap<size_t, void*> free_blocks_;      // size -> block
  std::unordered_map<void*, size_t> live_blocks_;  // block -> size
  Stats stats_;
};

}  // namespace graft
