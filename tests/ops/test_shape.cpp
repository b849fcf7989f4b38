// Shape ops forward: values against naive references written here, views
// sharing storage (and the version counter), layouts, integer tensors.
#include <algorithm>
#include <numeric>

#include "engine/autograd/grad_mode.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/shape.h"
#include "gtest/gtest.h"
#include "tests/support/reference.h"

namespace graft {
namespace {

// Logical values of a tensor as a function of its multi-index (row-major).
struct Indexed {
  Shape shape;
  std::vector<float> v;
  explicit Indexed(const Tensor& t) : shape(t.shape()), v(t.to_vector()) {}
  float at(const std::vector<int64_t>& idx) const {
    int64_t f = 0;
    for (size_t d = 0; d < shape.size(); ++d) f = f * shape[d] + idx[d];
    return v[f];
  }
};

// Calls f(idx) for every multi-index of `shape` in row-major order.
template <class F>
void for_each_index(const Shape& shape, F f) {
  const int64_t n = shape_numel(shape);
  std::vector<int64_t> idx(shape.size(), 0);
  for (int64_t i = 0; i < n; ++i) {
    f(idx);
    for (size_t d = shape.size(); d-- > 0;) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
}

TEST(ShapeOps, ReshapeKeepsLogicalOrderAndViewsContiguousInput) {
  Generator gen = testing::test_generator();
  Tensor x = Tensor::rand({2, 3, 4}, gen);
  Tensor r = reshape(x, {4, -1});
  EXPECT_EQ(r.shape(), (Shape{4, 6}));
  EXPECT_EQ(r.to_vector(), x.to_vector());
  EXPECT_EQ(r.data<float>(), x.data<float>());  // a view
  EXPECT_EQ(reshape(x, {-1}).shape(), (Shape{24}));
  EXPECT_EQ(reshape(Tensor::rand({1}, gen), {}).shape(), Shape{});
  // A non-contiguous input: the values follow its logical (row-major) order.
  Tensor t = transpose(x, 0, 2);  // [4, 3, 2]
  Tensor rt = reshape(t, {12, 2});
  EXPECT_EQ(rt.to_vector(), t.contiguous().to_vector());
  Tensor cl = Tensor::rand({2, 3, 2, 2}, gen).to_format(MemoryFormat::channels_last);
  EXPECT_EQ(flatten(cl).to_vector(), cl.to_vector());
  EXPECT_EQ(flatten(cl).shape(), (Shape{2, 12}));
  EXPECT_EQ(flatten(x, 0, 1).shape(), (Shape{6, 4}));
  EXPECT_EQ(flatten(Tensor::scalar(3.0)).shape(), (Shape{1}));
  EXPECT_EQ(reshape(Tensor::empty({0, 3}), {-1, 3, 2}).shape(), (Shape{0, 3, 2}));
  EXPECT_THROW(reshape(Tensor::empty({0, 3}), {3, 0, -1}), Error);  // -1 is ambiguous with 0 elements
}

TEST(ShapeOps, SqueezeUnsqueezeArePureViews) {
  Generator gen = testing::test_generator();
  Tensor x = transpose(Tensor::rand({3, 1, 5}, gen), 0, 2);  // [5, 1, 3], not contiguous
  Tensor s = squeeze(x, 1);
  EXPECT_EQ(s.shape(), (Shape{5, 3}));
  EXPECT_EQ(s.to_vector(), x.to_vector());
  EXPECT_EQ(s.data<float>(), x.data<float>());
  for (int64_t d : {0, 1, 2, -1, -3}) {
    Tensor u = unsqueeze(s, d);
    Shape want = {5, 3};
    want.insert(want.begin() + (d < 0 ? d + 3 : d), 1);
    EXPECT_EQ(u.shape(), want) << d;
    EXPECT_EQ(u.to_vector(), s.to_vector()) << d;
  }
  EXPECT_EQ(unsqueeze(Tensor::scalar(2.0), 0).shape(), (Shape{1}));
}

TEST(ShapeOps, PermuteAndTransposeMatchIndexing) {
  Generator gen = testing::test_generator();
  Tensor x = Tensor::rand({2, 3, 4, 5}, gen);
  const Indexed xi(x);
  for (const std::vector<int64_t>& perm :
       {std::vector<int64_t>{0, 2, 3, 1}, {3, 2, 1, 0}, {1, 0, 3, 2}, {0, 1, 2, 3}, {-1, 0, 1, 2}}) {
    Tensor p = permute(x, perm);
    const Indexed pi(p);
    for_each_index(p.shape(), [&](const std::vector<int64_t>& idx) {
      std::vector<int64_t> src(4);
      for (int k = 0; k < 4; ++k) src[perm[k] < 0 ? perm[k] + 4 : perm[k]] = idx[k];
      ASSERT_EQ(pi.at(idx), xi.at(src)) << shape_str(perm);
    });
  }
  // NCHW channels-last permuted to NHWC is row-major memory: a free view.
  Tensor cl = x.to_format(MemoryFormat::channels_last);
  EXPECT_TRUE(permute(cl, {0, 2, 3, 1}).is_contiguous());
  Tensor t = transpose(x, 1, -1);
  EXPECT_EQ(t.shape(), (Shape{2, 5, 4, 3}));
  EXPECT_EQ(t.to_vector(), permute(x, {0, 3, 2, 1}).to_vector());
}

TEST(ShapeOps, ConcatAlongEachDim) {
  Generator gen = testing::test_generator();
  for (int64_t dim : {0, 1, 2, -1}) {
    const int64_t d = dim < 0 ? dim + 3 : dim;
    std::vector<Tensor> xs;
    std::vector<int64_t> sizes = {2, 0, 3, 1};
    for (int64_t s : sizes) {
      Shape shape = {3, 4, 5};
      shape[d] = s;
      xs.push_back(Tensor::rand(shape, gen));
    }
    xs[2] = transpose(transpose(xs[2], 0, 2).contiguous(), 0, 2);  // a non-contiguous member
    Tensor c = concat(xs, dim);
    Shape want = {3, 4, 5};
    want[d] = 6;
    ASSERT_EQ(c.shape(), want);
    const Indexed ci(c);
    std::vector<Indexed> xi;
    for (const Tensor& x : xs) xi.emplace_back(x);
    for_each_index(want, [&](const std::vector<int64_t>& idx) {
      int64_t k = 0, j = idx[d];
      while (j >= sizes[k]) j -= sizes[k++];
      std::vector<int64_t> src = idx;
      src[d] = j;
      ASSERT_EQ(ci.at(idx), xi[k].at(src)) << "dim " << dim;
    });
  }
  Tensor a = Tensor::rand({2, 3, 4, 4}, gen).to_format(MemoryFormat::channels_last);
  Tensor b = Tensor::rand({2, 5, 4, 4}, gen).to_format(MemoryFormat::channels_last);
  Tensor c = concat({a, b}, 1);
  EXPECT_TRUE(c.is_channels_last());
  EXPECT_EQ(c.to_vector(), concat({a.contiguous(), b.contiguous()}, 1).to_vector());
}

TEST(ShapeOps, SliceClampsLikePython) {
  Tensor x = Tensor::arange(10);
  struct Case {
    int64_t start, end, step;
    std::vector<float> want;  // Python's list(range(10))[start:end:step]
  };
  const std::vector<Case> cases = {
      {2, 8, 3, {2, 5}},   {-3, 100, 1, {7, 8, 9}}, {-100, 3, 1, {0, 1, 2}},        {5, 2, 1, {}},
      {0, -1, 4, {0, 4, 8}}, {-1, 10, 1, {9}},       {0, INT64_MAX, 1, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
      {1, 10, 100, {1}},   {10, 12, 1, {}},          {3, 3, 2, {}}};
  for (const Case& c : cases) {
    Tensor s = slice(x, 0, c.start, c.end, c.step);
    EXPECT_EQ(s.to_vector(), c.want) << c.start << ":" << c.end << ":" << c.step;
  }
  Generator gen = testing::test_generator();
  Tensor y = Tensor::rand({4, 6, 5}, gen);
  Tensor s = slice(y, 1, 1, 6, 2);  // [4, 3, 5]
  const Indexed yi(y), si(s);
  for_each_index(s.shape(), [&](const std::vector<int64_t>& idx) {
    ASSERT_EQ(si.at(idx), yi.at({idx[0], 1 + 2 * idx[1], idx[2]}));
  });
  EXPECT_EQ(s.data<float>(), y.data<float>() + 5);  // a view
}

// Reference padding: for each output index, the source index per mode.
std::vector<double> pad_reference(const Tensor& x, const std::vector<int64_t>& pads, PadMode mode, double value,
                                  Shape* out_shape) {
  const Indexed xi(x);
  const int64_t n = x.dim(), k = static_cast<int64_t>(pads.size()) / 2;
  Shape os = x.shape();
  std::vector<int64_t> before(n, 0);
  for (int64_t i = 0; i < k; ++i) {
    before[n - k + i] = pads[2 * i];
    os[n - k + i] += pads[2 * i] + pads[2 * i + 1];
  }
  *out_shape = os;
  std::vector<double> out;
  for_each_index(os, [&](const std::vector<int64_t>& idx) {
    std::vector<int64_t> src(n);
    bool inside = true;
    for (int64_t d = 0; d < n; ++d) {
      int64_t i = idx[d] - before[d];
      const int64_t L = x.shape()[d];
      if (mode == PadMode::edge) i = std::min(std::max<int64_t>(i, 0), L - 1);
      if (mode == PadMode::reflect)
        while (i < 0 || i >= L) i = i < 0 ? -i : 2 * (L - 1) - i;
      inside = inside && i >= 0 && i < L;
      src[d] = i;
    }
    out.push_back(inside ? xi.at(src) : value);
  });
  return out;
}

TEST(ShapeOps, PadAllModesAgainstReference) {
  Generator gen = testing::test_generator();
  struct Case {
    Shape shape;
    std::vector<int64_t> pads;
  };
  const std::vector<Case> cases = {
      {{7}, {2, 3}},          {{7}, {-2, 1}},        {{5, 6}, {1, 2, 3, 0}},      {{5, 6}, {0, 0, -1, 2}},
      {{2, 3, 5, 6}, {1, 1, 2, 2}}, {{2, 3, 5, 6}, {-1, 2, 0, -3}}, {{2, 3, 4}, {1, 0, 0, 1, 2, 1}}, {{4, 5}, {}},
      {{4, 6}, {-2, 3}}};
  for (const Case& c : cases) {
    Tensor x = Tensor::rand(c.shape, gen);
    for (PadMode mode : {PadMode::constant, PadMode::reflect, PadMode::edge}) {
      Shape os;
      const std::vector<double> ref = pad_reference(x, c.pads, mode, 0.5, &os);
      Tensor y = pad(x, c.pads, mode, 0.5);
      ASSERT_EQ(y.shape(), os) << shape_str(c.shape) << " pads " << shape_str(c.pads);
      EXPECT_TRUE(testing::all_close(y.to_vector(), ref, 0, 0))
          << shape_str(c.shape) << " pads " << shape_str(c.pads) << " mode " << static_cast<int>(mode);
    }
  }
  Tensor cl = Tensor::rand({2, 3, 5, 6}, gen).to_format(MemoryFormat::channels_last);
  for (PadMode mode : {PadMode::constant, PadMode::reflect, PadMode::edge}) {
    Tensor y = pad(cl, {1, 1, 1, 1}, mode);
    EXPECT_TRUE(y.is_channels_last());
    EXPECT_EQ(y.to_vector(), pad(cl.contiguous(), {1, 1, 1, 1}, mode).to_vector());
  }
}

TEST(ShapeOps, ExpandMaterialisesTheBroadcast) {
  Generator gen = testing::test_generator();
  Tensor x = Tensor::rand({3, 1}, gen);
  Tensor e = expand(x, {2, 3, 4});
  ASSERT_EQ(e.shape(), (Shape{2, 3, 4}));
  const Indexed xi(x), ei(e);
  for_each_index(e.shape(), [&](const std::vector<int64_t>& idx) { ASSERT_EQ(ei.at(idx), xi.at({idx[1], 0})); });
  EXPECT_EQ(expand(x, {-1, 5}).shape(), (Shape{3, 5}));
  // Materialised: writing into the result leaves x alone.
  e.fill_(7.0);
  EXPECT_NE(x.to_vector()[0], 7.f);
}

TEST(ShapeOps, ViewsShareStorageAndVersion) {
  Generator gen = testing::test_generator();
  Tensor x = Tensor::rand({4, 6}, gen);
  Tensor v = slice(permute(reshape(x, {2, 12}), {1, 0}), 0, 2, 10);
  const uint64_t before = v.version();
  {
    NoGradGuard ng;
    x.mul_(2.0);
  }
  EXPECT_EQ(v.version(), x.version());
  EXPECT_GT(v.version(), before);
  EXPECT_EQ(v.to_vector()[0], x.to_vector()[2]);  // v[0, 0] = reshape(x)[0, 2]
}

TEST(ShapeOps, IntegerTensorsMoveThroughShapeOps) {
  Tensor i = Tensor::from_vector_i64({0, 1, 2, 3, 4, 5}, {2, 3});
  EXPECT_EQ(reshape(i, {3, 2}).to_vector_i64(), (std::vector<int64_t>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(transpose(i, 0, 1).to_vector_i64(), (std::vector<int64_t>{0, 3, 1, 4, 2, 5}));
  EXPECT_EQ(concat({i, i}, 0).shape(), (Shape{4, 3}));
  EXPECT_EQ(slice(i, 1, 1, 3).to_vector_i64(), (std::vector<int64_t>{1, 2, 4, 5}));
  EXPECT_EQ(pad(i, {1, 0}, PadMode::constant, -1).to_vector_i64(),
            (std::vector<int64_t>{-1, 0, 1, 2, -1, 3, 4, 5}));
}

}  // namespace
}  // namespace graft
