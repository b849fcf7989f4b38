// Vectorisable float math shared by the CPU kernels. std::exp and friends are
// library calls GCC vectorises only under -ffast-math, and with the default
// -ftrapping-math it will not if-convert a float comparison that guards float
// arithmetic either; so the selects here are bit blends and exp is a
// branch-free polynomial. Accuracy is checked against double references in
// tests/kernels/test_elementwise.cpp and tests/kernels/test_softmax.cpp.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace graft::kernels::cpu {

inline int32_t float_bits(float f) {
  int32_t i;
  std::memcpy(&i, &f, sizeof i);
  return i;
}
inline float bits_float(int32_t i) {
  float f;
  std::memcpy(&f, &i, sizeof f);
  return f;
}

// c ? a : b as a bit blend. GCC (without -fno-trapping-math) will not
// if-convert a float comparison that guards float arithmetic, which leaves a
// branch in the loop and stops vectorisation; a blend has no branch.
inline float sel(bool c, float a, float b) {
  const int32_t m = -static_cast<int32_t>(c);
  return bits_float((float_bits(a) & m) | (float_bits(b) & ~m));
}
// As std::min / std::max: a NaN in `a` passes through.
inline float vmin(float a, float b) { return sel(b < a, b, a); }
inline float vmax(float a, float b) { return sel(b > a, b, a); }
inline float clamp(float v, float lo, float hi) { return vmin(vmax(v, lo), hi); }

// ---- vectorisable math ------------------------------------------------------------
// std::exp and friends are library calls the compiler cannot vectorise without
// -ffast-math; these are branch-free polynomials that it can. Errors are
// checked against double references in tests/kernels/test_elementwise.cpp.

// exp: x = n ln2 + r, |r| <= ln2 / 2 (Cody-Waite split of ln2), exp(r) by the
// Cephes minimax polynomial, 2^n built in the exponent bits. n is kept in
// [-125, 128] and applied as 2^(n-1) * 2 so both ends stay normal numbers.
inline float exp_approx(float x) {
  constexpr float kHi = 88.7228317f;   // ln(FLT_MAX)
  constexpr float kLo = -86.6433640f;  // ln(2^-125): below, the result (< 2.4e-38) flushes to 0
  const float xc = clamp(x, kLo, kHi);
  constexpr float kMagic = 12582912.f;  // 1.5 * 2^23: adding it rounds to an integer
  const float t = xc * 1.44269504088896341f + kMagic;
  const float n = t - kMagic;
  // n as an integer, in unsigned arithmetic (wraps harmlessly for NaN input).
  const uint32_t ni = static_cast<uint32_t>(float_bits(t)) - static_cast<uint32_t>(float_bits(kMagic));
  const float r = (xc - n * 0.693359375f) - n * -2.12194440e-4f;
  const float z = r * r;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * z + r + 1.f;
  float y = p * bits_float(static_cast<int32_t>((ni + 126u) << 23)) * 2.f;
  y = sel(x > kHi, std::numeric_limits<float>::infinity(), y);
  return sel(x < kLo, 0.f, y);
}

}  // namespace graft::kernels::cpu
