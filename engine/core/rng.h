// Seedable counter-based generator. It holds only (seed, offset); each random
// op takes a range of Philox counters and advances the offset, so the same
// seed and the same sequence of ops give the same numbers on any device.
#pragma once

#include <cstdint>
#include <mutex>

namespace graft {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0x5eed) : seed_(seed) {}
  void manual_seed(uint64_t seed);
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  void set_offset(uint64_t off) { offset_ = off; }
  // Reserves `blocks` Philox counters; returns the first.
  uint64_t reserve(uint64_t blocks);

 private:
  uint64_t seed_;
  uint64_t offset_ = 0;
  std::mutex mu_;
};

Generator& default_generator();
void manual_seed(uint64_t seed);  // seeds the default generator

}  // namespace graft
