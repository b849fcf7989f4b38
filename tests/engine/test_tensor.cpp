#include "engine/core/tensor.h"

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
  EXPECT_EQ(cl.to_vector(), x.to_vector());
  // element (n=1, c=2, h=3, w=4) lives at n*HWC + h*WC + w*C + c
  const float* p = cl.data<float>();
  EXPECT_EQ(p[1 * 105 + 3 * 21 + 4 * 3 + 2], x.to_vector()[((1 * 3 + 2) * 5 + 3) * 7 + 4]);
}

}  // namespace
}  // namespace graft
