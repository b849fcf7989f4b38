// The caching allocator's policy over a CPU backend with a memory limit (the
// same code runs over cudaMalloc on a GPU).
#include "engine/core/allocator.h"

#include <cstdlib>
#include <map>
#include <set>

#include "engine/core/error.h"
#include "gtest/gtest.h"

namespace graft {
namespace {

struct FakeDevice {
  size_t limit, used = 0;
  std::set<void*> live;
  CachingAllocator::Backend backend() {
    CachingAllocator::Backend b;
    b.name = "fake:0";
    b.raw_alloc = [this](size_t n) -> void* {
      if (used + n > limit) return nullptr;
      used += n;
      void* p = std::malloc(n);
      live.insert(p);
      sizes[p] = n;
      return p;
    };
    b.raw_free = [this](void* p) {
      used -= sizes[p];
      live.erase(p);
      std::free(p);
    };
    b.mem_info = [this](size_t* f, size_t* t) {
      *f = limit - used;
      *t = limit;
    };
    return b;
  }
  std::map<void*, size_t> sizes;
};

TEST(CachingAllocator, RoundsSizes) {
  EXPECT_EQ(CachingAllocator::round_size(0), 512u);
  EXPECT_EQ(CachingAllocator::round_size(1), 512u);
  EXPECT_EQ(CachingAllocator::round_size(513), 1024u);
  EXPECT_EQ(CachingAllocator::round_size((1 << 20) + 1), size_t(2) << 20);
  EXPECT_EQ(CachingAllocator::round_size((size_t(2) << 20) + 1), size_t(4) << 20);
}

TEST(CachingAllocator, ReusesFreedBlocks) {
  FakeDevice dev{size_t(64) << 20};
  CachingAllocator a(dev.backend());
  void* p = a.allocate(1000);
  a.deallocate(p);
  void* q = a.allocate(900);  // same rounded size class: the cached block comes back
  EXPECT_EQ(p, q);
  auto s = a.stats();
  EXPECT_EQ(s.raw_allocs, 1u);
  EXPECT_EQ(s.cache_hits, 1u);
  // A much smaller request does not take a large cached block.
  void* big = a.allocate(8 << 20);
  a.deallocate(big);
  void* small = a.allocate(600);
  EXPECT_NE(small, big);
  a.deallocate(q);
  a.deallocate(small);
  a.empty_cache();
  EXPECT_EQ(dev.used, 0u);
}

TEST(CachingAllocator, OutOfMemoryReleasesTheCacheAndRetriesOnce) {
  FakeDevice dev{size_t(10) << 20};
  CachingAllocator a(dev.backend());
  void* p = a.allocate(6 << 20);  // 6 MiB
  a.deallocate(p);                // cached, still held from the device
  void* q = a.allocate(8 << 20);  // does not fit beside the cached 6 MiB
  EXPECT_NE(q, nullptr);
  EXPECT_EQ(a.stats().cache_flushes, 1u);
  EXPECT_EQ(a.stats().cached_bytes, 0u);
  a.deallocate(q);
}

TEST(CachingAllocator, OutOfMemoryErrorNamesSizeAndFreeMemory) {
  FakeDevice dev{size_t(4) << 20};
  CachingAllocator a(dev.backend());
  try {
    a.allocate(size_t(100) << 20);
    FAIL() << "expected an out-of-memory error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("fake:0 out of memory"), std::string::npos) << m;
    EXPECT_NE(m.find("tried to allocate 100 MiB"), std::string::npos) << m;
    EXPECT_NE(m.find("4 MiB free of 4 MiB"), std::string::npos) << m;
  }
}

TEST(CachingAllocator, FreeOfForeignPointerIsAnError) {
  FakeDevice dev{size_t(4) << 20};
  CachingAllocator a(dev.backend());
  int x;
  EXPECT_THROW(a.deallocate(&x), Error);
}

}  // namespace
}  // namespace graft
