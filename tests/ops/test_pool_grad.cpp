// Pooling backward against finite differences, and the errors bad inputs raise.
#include <algorithm>
#include <numeric>
#include <string>
#include <vector>

#include "engine/ops/pool.h"
#include "gtest/gtest.h"
#include "tests/support/gradcheck.h"
#include "tests/support/reference.h"

namespace graft {
namespace {

using testing::gradcheck;

// A random permutation of 0, spacing, 2 * spacing, ...: every value distinct
// and further apart than twice the finite-difference step, so the argmax of
// each window stays put while an input is nudged.
Tensor distinct_values(const Shape& shape, Generator& gen, float spacing) {
  const std::vector<float> keys = Tensor::rand(shape, gen).to_vector();
  std::vector<size_t> order(keys.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return keys[a] < keys[b]; });
  std::vector<float> v(keys.size());
  for (size_t i = 0; i < order.size(); ++i) v[order[i]] = static_cast<float>(i) * spacing - 2.f;
  return Tensor::from_vector(v, shape);
}

Pool2dOptions opts(std::array<int64_t, 2> k, std::array<int64_t, 2> s, std::array<int64_t, 4> pad,
                   std::array<int64_t, 2> dil = {1, 1}, bool ceil = false, bool include_pad = false) {
  Pool2dOptions o;
  o.kernel = k;
  o.stride = s;
  o.padding = pad;
  o.dilation = dil;
  o.ceil_mode = ceil;
  o.count_include_pad = include_pad;
  return o;
}

TEST(PoolGrad, MaxPool) {
  Generator gen = testing::test_generator();
  struct Case {
    Shape shape;
    Pool2dOptions opt;
  };
  const std::vector<Case> cases = {
      {{2, 3, 5, 6}, opts({3, 3}, {2, 2}, {1, 1, 1, 1}, {1, 1}, true)},  // overlapping, ceil_mode
      {{1, 4, 7, 5}, opts({2, 3}, {1, 2}, {1, 0, 0, 2})},                // asymmetric pads
      {{1, 2, 8, 9}, opts({2, 2}, {2, 1}, {1, 1, 1, 0}, {3, 2})},        // dilation
      {{3, 1, 4, 4}, opts({2, 2}, {2, 2}, {0, 0, 0, 0})},
  };
  for (const Case& c : cases) {
    for (bool channels_last : {false, true}) {
      Tensor x = distinct_values(c.shape, gen, 0.05f);
      const Pool2dOptions o = c.opt;
      EXPECT_TRUE(gradcheck(
          [o, channels_last](const std::vector<Tensor>& in) {
            return max_pool2d(channels_last ? in[0].to_format(MemoryFormat::channels_last) : in[0], o);
          },
          {x}))
          << shape_str(c.shape);
    }
  }
}

TEST(PoolGrad, AvgPool) {
  Generator gen = testing::test_generator();
  struct Case {
    Shape shape;
    Pool2dOptions opt;
  };
  const std::vector<Case> cases = {
      {{2, 3, 5, 6}, opts({3, 3}, {2, 2}, {1, 1, 1, 1}, {1, 1}, true)},
      {{1, 4, 7, 5}, opts({2, 3}, {1, 2}, {1, 0, 0, 2})},
      {{1, 5, 6, 5}, opts({3, 3}, {3, 3}, {2, 2, 0, 0}, {1, 1}, true)},  // last window past the padded end
      {{2, 2, 3, 3}, opts({3, 3}, {1, 1}, {0, 0, 0, 0})},
  };
  for (const Case& c : cases) {
    for (bool include_pad : {false, true}) {
      Pool2dOptions o = c.opt;
      o.count_include_pad = include_pad;
      Tensor x = testing::random_tensor(c.shape, gen);
      EXPECT_TRUE(gradcheck([o](const std::vector<Tensor>& in) { return avg_pool2d(in[0], o); }, {x}))
          << shape_str(c.shape) << " count_include_pad " << include_pad;
    }
  }
}

TEST(PoolGrad, GlobalAvgPool) {
  Generator gen = testing::test_generator();
  for (const Shape& s : std::vector<Shape>{{2, 3, 4, 5}, {1, 7, 1, 1}, {3, 2, 3, 1}}) {
    Tensor x = testing::random_tensor(s, gen);
    EXPECT_TRUE(gradcheck(
        [](const std::vector<Tensor>& in) { return global_avg_pool2d(in[0].to_format(MemoryFormat::channels_last)); },
        {x}))
        << shape_str(s);
  }
}

// ---- bad inputs ---------------------------------------------------------------------

template <class F>
void expect_error_naming(F&& f, const std::string& op, const std::string& what) {
  EXPECT_TRUE(testing::throws_naming(f, {op})) << what;
}

TEST(PoolGrad, BadInputsNameTheOp) {
  Generator gen = testing::test_generator();
  const Tensor x = testing::random_tensor({1, 2, 5, 5}, gen);
  const Pool2dOptions ok = opts({2, 2}, {2, 2}, {0, 0, 0, 0});
  for (const char* name : {"max_pool2d", "avg_pool2d"}) {
    const std::string op = name;
    auto pool = [&](const Tensor& t, const Pool2dOptions& o) {
      return op == "max_pool2d" ? max_pool2d(t, o) : avg_pool2d(t, o);
    };
    expect_error_naming([&] { pool(testing::random_tensor({2, 5, 5}, gen), ok); }, op, "3-D input");
    expect_error_naming([&] { pool(x.to(DType::f16), ok); }, op, "f16 input");
    expect_error_naming([&] { pool(x, opts({0, 2}, {2, 2}, {0, 0, 0, 0})); }, op, "zero kernel");
    expect_error_naming([&] { pool(x, opts({2, 2}, {2, 0}, {0, 0, 0, 0})); }, op, "zero stride");
    expect_error_naming([&] { pool(x, opts({2, 2}, {2, 2}, {0, 0, 2, 0})); }, op, "padding == kernel");
    expect_error_naming([&] { pool(x, opts({2, 2}, {2, 2}, {0, -1, 0, 0})); }, op, "negative padding");
    expect_error_naming([&] { pool(x, opts({6, 2}, {1, 1}, {0, 0, 0, 0})); }, op, "kernel larger than the input");
    expect_error_naming([&] { pool(testing::random_tensor({1, 2, 0, 5}, gen), ok); }, op, "empty height");
  }
  expect_error_naming([&] { max_pool2d(x, opts({2, 2}, {1, 1}, {0, 0, 0, 0}, {0, 1})); }, "max_pool2d", "zero dilation");
  expect_error_naming([&] { avg_pool2d(x, opts({2, 2}, {1, 1}, {0, 0, 0, 0}, {2, 1})); }, "avg_pool2d",
                      "dilation in average pooling");
  // Dilation 3 over a 2-row input with one padding row each side: the only
  // window covers padded rows 0 and 3, both padding.
  expect_error_naming([&] { max_pool2d(testing::random_tensor({1, 1, 2, 4}, gen), opts({2, 2}, {1, 1}, {1, 0, 1, 0}, {3, 1})); },
                      "max_pool2d", "window of padding only");
  expect_error_naming([&] { global_avg_pool2d(testing::random_tensor({2, 5}, gen)); }, "global_avg_pool2d", "2-D input");
  expect_error_naming([&] { global_avg_pool2d(testing::random_tensor({2, 5, 0, 3}, gen)); }, "global_avg_pool2d",
                      "no spatial positions");
  expect_error_naming([&] { global_avg_pool2d(Tensor::zeros({1, 2, 3, 3}, DType::i32)); }, "global_avg_pool2d",
                      "i32 input");
}

}  // namespace
}  // namespace graft
