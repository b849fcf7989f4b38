// exp(x) in float, written so that loops calling it vectorise: std::exp is a
// library call that GCC vectorises only under -ffast-math, and with the default
// -ftrapping-math GCC will not if-convert a float comparison or a select of
// floats either, so the range checks and selects below work on the bit
// patterns as integers.
//
// Cody-Waite reduction x = k ln2 + r with |r| <= ln2/2 (ln2 split in two so
// k ln2 is exact), Cephes' degree-6 polynomial for e^r, and 2^k assembled in
// the exponent bits. Within a few ulp of exp on [-87.33, 88]; 0 below -87.33
// (ln of the smallest normal float: exp is at most denormal there) and for
// -inf; exp(88) above 88 and for +inf; NaN for NaN.
#pragma once

#include <cstdint>
#include <cstring>

namespace graft::kernels::cpu {

inline uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
inline float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

inline uint32_t mask_if(bool c) { return 0u - static_cast<uint32_t>(c); }

inline float exp_approx(float x) {
  constexpr uint32_t kMinBits = 0xc2aeac50u;  // -87.33654475f = ln(2^-126)
  constexpr int32_t kMaxBits = 0x42b00000;    // 88.0f: keeps k <= 127, so 2^k is finite
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer

  const uint32_t u = float_bits(x);
  // Negative floats order like their unsigned bits (larger magnitude, larger
  // bits) and positive ones like their signed bits; NaN has all exponent bits
  // set. Masks (all ones where true) rather than ?: keep the loop free of
  // branches the compiler would otherwise create.
  const uint32_t below = mask_if(u > kMinBits);                         // x < kMin, -inf, -NaN
  const uint32_t above = mask_if(static_cast<int32_t>(u) > kMaxBits);   // x > kMax, +inf, +NaN
  const uint32_t nan = mask_if((u & 0x7fffffffu) > 0x7f800000u);
  const float xc = bits_float((u & ~(below | above)) | (kMinBits & below) | (static_cast<uint32_t>(kMaxBits) & above));

  const float k = (xc * kLog2e + kRound) - kRound;
  float r = xc - k * kLn2Hi;
  r = r - k * kLn2Lo;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float er = p * r * r + r + 1.0f;
  const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(k) + 127) << 23;
  const float y = er * bits_float(bits);
  return bits_float((u & nan) | (float_bits(y) & ~(nan | below)));
}

}  // namespace graft::kernels::cpu
