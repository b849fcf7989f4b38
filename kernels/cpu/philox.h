// Philox4x32-10 counter-based random numbers (Salmon et al., "Parallel random
// numbers: as easy as 1, 2, 3", SC 2011). Stateless: the numbers depend only on
// (key, counter), so element i of a random tensor is the same on any machine,
// any thread count and any device. Usable from host and device code.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define GRAFT_HD __host__ __device__ __forceinline__
#else
#define GRAFT_HD inline
#endif

namespace graft::kernels {

struct Philox4 {
  uint32_t v[4];
};

GRAFT_HD uint32_t philox_mulhilo(uint32_t a, uint32_t b, uint32_t* hi) {
  const uint64_t p = static_cast<uint64_t>(a) * b;
  *hi = static_cast<uint32_t>(p >> 32);
  return static_cast<uint32_t>(p);
}

GRAFT_HD Philox4 philox4x32_10(Philox4 ctr, uint32_t k0, uint32_t k1) {
  constexpr uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
  constexpr uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
  for (int r = 0; r < 10; ++r) {
    uint32_t hi0, hi1;
    const uint32_t lo0 = philox_mulhilo(M0, ctr.v[0], &hi0);
    const uint32_t lo1 = philox_mulhilo(M1, ctr.v[2], &hi1);
    ctr = Philox4{{hi1 ^ ctr.v[1] ^ k0, lo1, hi0 ^ ctr.v[3] ^ k1, lo0}};
    k0 += W0;
    k1 += W1;
  }
  return ctr;
}

// The block of four numbers at `counter` for a 64-bit seed.
GRAFT_HD Philox4 philox_block(uint64_t seed, uint64_t counter) {
  Philox4 c{{static_cast<uint32_t>(counter), static_cast<uint32_t>(counter >> 32), 0u, 0u}};
  return philox4x32_10(c, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

// [0, 1) with 24 random bits.
GRAFT_HD float philox_uniform(uint32_t u) { return static_cast<float>(u >> 8) * (1.0f / 16777216.0f); }

// [lo, hi): lo + (hi - lo) * u rounds to hi itself for some ranges (e.g. [10,
// 10.5) or [100, 101), where u's last step is below half an ulp of hi); such a
// value becomes `below_hi`, the largest float under hi (nextafter(hi, lo)).
GRAFT_HD float philox_uniform_range(uint32_t u, float lo, float hi, float below_hi) {
  const float v = lo + (hi - lo) * philox_uniform(u);
  return (v >= hi && hi > lo) ? below_hi : v;
}

}  // namespace graft::kernels
