// gather: forward against a naive float64 reference (float and integer x,
// i64 and i32 indices, negative indices, every axis, odd sizes), backward
// against finite differences (repeated indices accumulate), bad inputs.
#include <string>

#include "engine/ops/reduce.h"
#include "engine/ops/shape.h"
#include "gtest/gtest.h"
#include "tests/support/gradcheck.h"
#include "tests/support/reference.h"

namespace graft {
namespace {

using In = std::vector<Tensor>;

// numpy.take(x, idx, axis) in double, written with explicit multi-indices.
std::vector<double> take_reference(const Tensor& x, const std::vector<int64_t>& idx, int64_t axis) {
  const Shape& s = x.shape();
  const int64_t n = static_cast<int64_t>(s.size());
  const std::vector<double> xv = testing::to_double(x);
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= s[d];
  for (int64_t d = axis + 1; d < n; ++d) inner *= s[d];
  std::vector<double> out;
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t k : idx) {
      const int64_t src = k < 0 ? k + s[axis] : k;
      for (int64_t i = 0; i < inner; ++i) out.push_back(xv[(o * s[axis] + src) * inner + i]);
    }
  return out;
}

std::vector<int64_t> random_indices(int64_t count, int64_t size, Generator& gen, bool negative) {
  std::vector<float> r = Tensor::rand({count}, gen).to_vector();
  std::vector<int64_t> v(count);
  for (int64_t i = 0; i < count; ++i) {
    v[i] = std::min<int64_t>(size - 1, static_cast<int64_t>(r[i] * static_cast<float>(size)));
    if (negative && i % 2 == 1) v[i] -= size;
  }
  return v;
}

TEST(Gather, ForwardMatchesReference) {
  Generator gen = testing::test_generator();
  const std::vector<Shape> shapes{{7}, {3, 5}, {2, 13, 3}, {1, 3, 7, 2}, {4, 1, 9}};
  for (const Shape& s : shapes)
    for (int64_t axis = 0; axis < static_cast<int64_t>(s.size()); ++axis)
      for (const Shape& is : std::vector<Shape>{{}, {1}, {5}, {2, 3}}) {
        Tensor x = Tensor::rand(s, gen, -2.f, 2.f);
        const std::vector<int64_t> idx = random_indices(shape_numel(is), s[axis], gen, true);
        Tensor indices = Tensor::from_vector_i64(idx, is);
        Tensor out = gather(x, indices, axis - static_cast<int64_t>(s.size()) * (axis % 2));  // some axes negative
        Shape want(s.begin(), s.begin() + axis);
        want.insert(want.end(), is.begin(), is.end());
        want.insert(want.end(), s.begin() + axis + 1, s.end());
        ASSERT_EQ(out.shape(), want) << shape_str(s) << " axis " << axis;
        EXPECT_TRUE(testing::all_close(out.to_vector(), take_reference(x, idx, axis), 0, 0)) << shape_str(s);
      }
}

TEST(Gather, StridedAndChannelsLastInputs) {
  Generator gen = testing::test_generator();
  Tensor x = Tensor::rand({2, 3, 4, 5}, gen).to_format(MemoryFormat::channels_last);
  Tensor idx = Tensor::from_vector_i64({2, 0, -1}, {3});
  Tensor out = gather(x, idx, 1);
  EXPECT_TRUE(testing::all_close(out.to_vector(), take_reference(x.contiguous(), {2, 0, -1}, 1), 0, 0));
  Tensor t = transpose(Tensor::rand({5, 6}, gen), 0, 1);
  EXPECT_TRUE(testing::all_close(gather(t, idx, 0).to_vector(), take_reference(t.contiguous(), {2, 0, -1}, 0), 0, 0));
}

TEST(Gather, IntegerTensorsAndI32Indices) {
  // A shape subgraph: Shape -> Gather(0-d index) on i64 must be exact.
  Tensor shape = Tensor::from_vector_i64({4000000000LL, 3, -7, 9}, {4});
  Tensor i0 = Tensor::from_vector_i64({-4}, {});
  Tensor g = gather(shape, i0, 0);
  EXPECT_EQ(g.dtype(), DType::i64);
  EXPECT_EQ(g.dim(), 0);
  EXPECT_EQ(g.to_vector_i64(), std::vector<int64_t>{4000000000LL});
  Tensor idx32 = Tensor::from_vector({3, 1, 1}, {3}, DType::i32);
  EXPECT_EQ(gather(shape, idx32, 0).to_vector_i64(), (std::vector<int64_t>{9, 3, 3}));
  Tensor m = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {2, 3}, DType::u8);
  Tensor r = gather(m, Tensor::from_vector_i64({2, 0}, {2}), 1);
  EXPECT_EQ(r.dtype(), DType::u8);
  EXPECT_EQ(r.to_vector_i64(), (std::vector<int64_t>{3, 1, 6, 4}));
  Generator gen = testing::test_generator();
  Tensor f = Tensor::rand({3, 4}, gen);
  EXPECT_EQ(gather(f, idx32, 1).to_vector(), gather(f, Tensor::from_vector_i64({3, 1, 1}, {3}), 1).to_vector());
}

TEST(Gather, EmptyIndicesAndEmptyOuter) {
  Generator gen = testing::test_generator();
  Tensor x = Tensor::rand({3, 4}, gen);
  EXPECT_EQ(gather(x, Tensor::from_vector_i64({}, {0}), 1).shape(), (Shape{3, 0}));
  EXPECT_EQ(gather(Tensor::rand({0, 4}, gen), Tensor::from_vector_i64({1}, {1}), 1).shape(), (Shape{0, 1}));
}

TEST(Gather, BackwardMatchesFiniteDifferences) {
  Generator gen = testing::test_generator();
  Tensor x = testing::random_tensor({3, 5, 4}, gen);
  Tensor rep = Tensor::from_vector_i64({1, 4, 1, -4, 0, 1}, {2, 3});  // 1 four times (incl. -4)
  EXPECT_TRUE(testing::gradcheck([&](const In& in) { return gather(in[0], rep, 1); }, {x}));
  EXPECT_TRUE(testing::gradcheck([&](const In& in) { return gather(in[0], rep, -2); }, {x}));
  EXPECT_TRUE(testing::gradcheck([&](const In& in) { return gather(in[0], Tensor::from_vector_i64({2, 2}, {2}), 0); }, {x}));
  Tensor x4 = testing::random_tensor({2, 3, 4, 5}, gen);
  EXPECT_TRUE(testing::gradcheck(
      [](const In& in) {
        return gather(in[0].to_format(MemoryFormat::channels_last), Tensor::from_vector_i64({2, 0, 2}, {3}), 1);
      },
      {x4}));
  // Repeated indices add up: d(sum(gather))/dx counts each index's uses.
  Tensor v = Tensor::rand({5}, gen).set_requires_grad(true);
  sum(gather(v, Tensor::from_vector_i64({1, 1, -4, 3, 0}, {5}), 0)).backward();
  EXPECT_EQ(v.grad().to_vector(), (std::vector<float>{1, 3, 0, 1, 0}));
}

TEST(Gather, BadInputsNameTheOp) {
  Tensor x = Tensor::ones({2, 3});
  EXPECT_TRUE(testing::throws_naming([&] { gather(x, Tensor::from_vector_i64({3}, {1}), 1); },
                                     {"gather", "index 3", "size 3"}));
  EXPECT_TRUE(testing::throws_naming([&] { gather(x, Tensor::from_vector_i64({-3}, {1}), 0); },
                                     {"gather", "index -3", "size 2"}));
  EXPECT_TRUE(testing::throws_naming([&] { gather(x, Tensor::from_vector_i64({0}, {1}), 2); }, {"gather", "axis 2", "[2, 3]"}));
  EXPECT_TRUE(testing::throws_naming([&] { gather(x, Tensor::ones({1}), 0); }, {"gather", "indices", "f32"}));
  EXPECT_TRUE(testing::throws_naming([&] { gather(Tensor::ones({2}, DType::bf16), Tensor::from_vector_i64({0}, {1}), 0); },
                                     {"gather", "bf16"}));
  EXPECT_TRUE(testing::throws_naming([&] { gather(Tensor::scalar(1.0), Tensor::from_vector_i64({0}, {1}), 0); },
                                     {"gather", "zero-dimensional"}));
}

}  // namespace
}  // namespace graft
