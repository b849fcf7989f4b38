#include "engine/core/tensor.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "engine/autograd/grad_mode.h"
#include "engine/core/rng.h"
#include "gtest/gtest.h"
#include "tests/support/reference.h"

namespace graft {
namespace {

TEST(Tensor, ChannelsLastRoundTripKeepsLogicalValues) {
  Generator gen = testing::test_generator();
  Tensor x = Tensor::rand({2, 3, 5, 7}, gen);
  Tensor cl = x.to_format(MemoryFormat::channels_last);
  EXPECT_TRUE(cl.is_channels_last());
  EXPECT_FALSE(cl.is_contiguous());
  EXPECT_TRUE(cl.is_dense());
  EXPECT_EQ(cl.to_vector(), x.to_vector());
  // element (n=1, c=2, h=3, w=4) lives at n*HWC + h*WC + w*C + c
  const float* p = cl.data<float>();
  EXPECT_EQ(p[1 * 105 + 3 * 21 + 4 * 3 + 2], x.to_vector()[((1 * 3 + 2) * 5 + 3) * 7 + 4]);
  Tensor back = cl.contiguous();
  EXPECT_TRUE(back.is_contiguous());
  EXPECT_EQ(std::memcmp(back.data<float>(), x.data<float>(), x.nbytes()), 0);
}

TEST(Tensor, ChannelsLastWithUnitDimsIsAlsoContiguous) {
  Tensor x = Tensor::empty({4, 16, 1, 1}, DType::f32, Device::cpu(), MemoryFormat::channels_last);
  EXPECT_TRUE(x.is_channels_last());
  EXPECT_TRUE(x.is_contiguous());  // H = W = 1: the two layouts coincide
}

TEST(Tensor, AlignedAllocation) {
  for (int64_t n : {1, 3, 17, 1000}) {
    Tensor t = Tensor::empty({n});
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw_data()) % 64, 0u) << n;
  }
}

TEST(Tensor, HalfConversionMatchesIeeeEncodings) {
  // Encodings from the IEEE 754 binary16 definition.
  EXPECT_EQ(float_to_half(1.0f), 0x3c00);
  EXPECT_EQ(float_to_half(-2.0f), 0xc000);
  EXPECT_EQ(float_to_half(65504.0f), 0x7bff);  // largest finite
  EXPECT_EQ(float_to_half(65520.0f), 0x7c00);  // rounds to +inf
  EXPECT_EQ(float_to_half(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
  EXPECT_EQ(float_to_half(std::ldexp(1.0f, -25)), 0x0000);  // tie to even -> 0
  EXPECT_EQ(float_to_half(1.0f + std::ldexp(1.0f, -11)), 0x3c00);  // tie to even
  EXPECT_EQ(float_to_half(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);  // tie to even, up
  EXPECT_TRUE(std::isnan(half_to_float(float_to_half(std::numeric_limits<float>::quiet_NaN()))));
  // Every finite half survives half -> float -> half.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7c00) == 0x7c00) continue;
    ASSERT_EQ(float_to_half(half_to_float(static_cast<uint16_t>(h))), h) << std::hex << h;
  }
}

TEST(Tensor, Bf16ConversionRoundsToNearestEven) {
  EXPECT_EQ(float_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(bf16_to_float(0x3f80), 1.0f);
  EXPECT_EQ(float_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);      // tie, even stays
  EXPECT_EQ(float_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);  // tie, rounds up to even
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
}

TEST(Tensor, DtypeConversionsPreserveRepresentableValues) {
  std::vector<float> vals = {0, 1, -3, 7, 100, -128};
  Tensor x = Tensor::from_vector(vals, {2, 3});
  for (DType t : {DType::f16, DType::bf16, DType::i32, DType::i64}) {
    Tensor y = x.to(t);
    EXPECT_EQ(y.dtype(), t);
    EXPECT_EQ(y.to(DType::f32).to_vector(), vals) << dtype_name(t);
  }
  EXPECT_EQ(Tensor::from_vector({0, 2, 0, -1}, {4}).to(DType::boolean).to_vector(), (std::vector<float>{0, 1, 0, 1}));
  EXPECT_EQ(Tensor::from_vector({0, 200, 255}, {3}).to(DType::u8).to_vector(), (std::vector<float>{0, 200, 255}));
}

TEST(Tensor, CreationValidatesShapes) {
  EXPECT_TRUE(testing::throws_naming([] { Tensor::empty({2, -1}); }, {"negative dimension"}));
  EXPECT_TRUE(testing::throws_naming([] { Tensor::empty({1 << 20, 1 << 20, 1 << 20}); }, {"more than 2^40"}));
  EXPECT_TRUE(testing::throws_naming([] { Tensor::from_vector({1, 2, 3}, {2, 2}); }, {"3 values for shape [2, 2]"}));
  EXPECT_TRUE(testing::throws_naming([] { Tensor::empty({1, 2, 3}).size(3); }, {"[1, 2, 3]"}));
}

TEST(Tensor, FillOfAnEmptyTensorWritesNothing) {
  // An empty innermost dim once divided by zero (ConstantOfShape of shape [0]).
  for (DType t : {DType::f32, DType::i32, DType::i64, DType::u8}) {
    EXPECT_EQ(Tensor::full({0}, 2.0, t).numel(), 0);
    EXPECT_EQ(Tensor::full({3, 0}, 2.0, t).shape(), (Shape{3, 0}));
  }
}

TEST(Tensor, CudaRequestWithoutGpuIsAClearError) {
  if (cuda_available()) GTEST_SKIP() << "a GPU is present; this test covers machines without one";
  EXPECT_TRUE(testing::throws_naming([] { Tensor::zeros({2, 2}, DType::f32, Device::cuda()); }, {"cuda:0 requested"}));
  EXPECT_TRUE(testing::throws_naming([] { Tensor::ones({2}).to(Device::cuda()); }, {"CUDA is unavailable"}));
  EXPECT_TRUE(testing::throws_naming([] { parse_device("gpu"); }, {"cannot parse 'gpu'"}));
  EXPECT_EQ(parse_device("cuda:1").index, 1);
}

TEST(Tensor, InPlaceOpsBumpTheVersionAndAreRefusedOnTensorsNeedingGrad) {
  Tensor x = Tensor::zeros({3});
  const uint64_t v0 = x.version();
  x.fill_(2.0);
  x.add_(Tensor::ones({3}), 0.5);
  x.mul_(2.0);
  EXPECT_EQ(x.to_vector(), (std::vector<float>{5, 5, 5}));
  EXPECT_EQ(x.version(), v0 + 3);
  Tensor view = x.detach();  // shares storage, so shares the counter
  view.fill_(1.0);
  EXPECT_EQ(x.version(), v0 + 4);

  Tensor w = Tensor::zeros({3});
  w.set_requires_grad(true);
  EXPECT_TRUE(testing::throws_naming([&] { w.add_(Tensor::ones({3})); }, {"add_: in-place change"}));
  NoGradGuard ng;
  w.add_(Tensor::ones({3}));  // fine under no-grad, as an optimizer does
  EXPECT_EQ(w.to_vector(), (std::vector<float>{1, 1, 1}));
}

TEST(Tensor, StridedCopyBetweenLayoutsAndTypes) {
  Generator gen = testing::test_generator();
  Tensor x = Tensor::rand({3, 4, 5, 6}, gen);
  Tensor y = Tensor::empty({3, 4, 5, 6}, DType::bf16, Device::cpu(), MemoryFormat::channels_last);
  y.copy_(x);
  std::vector<float> xv = x.to_vector(), yv = y.to_vector();
  for (size_t i = 0; i < xv.size(); ++i) ASSERT_NEAR(yv[i], xv[i], std::fabs(xv[i]) * 4e-3 + 1e-30) << i;
}

TEST(Generator, SameSeedSameNumbersAndOffsetsAdvance) {
  Generator a(42), b(42), c(43);
  Tensor ta = Tensor::rand({1000}, a), tb = Tensor::rand({1000}, b), tc = Tensor::rand({1000}, c);
  EXPECT_EQ(ta.to_vector(), tb.to_vector());
  EXPECT_NE(ta.to_vector(), tc.to_vector());
  EXPECT_EQ(a.offset(), 250u);  // 1000 numbers = 250 Philox blocks of four
  Tensor next = Tensor::rand({1000}, a);
  EXPECT_NE(next.to_vector(), ta.to_vector());
  a.manual_seed(42);
  EXPECT_EQ(Tensor::rand({1000}, a).to_vector(), ta.to_vector());
}

TEST(Generator, NormalHasUnitMoments) {
  Generator g(7);
  std::vector<float> v = Tensor::randn({200000}, g).to_vector();
  double m = 0, s = 0;
  for (float f : v) m += f;
  m /= v.size();
  for (float f : v) s += (f - m) * (f - m);
  s /= v.size();
  EXPECT_NEAR(m, 0.0, 0.01);  // standard error of the mean ~ 0.0022
  EXPECT_NEAR(s, 1.0, 0.02);
}

}  // namespace
}  // namespace graft
