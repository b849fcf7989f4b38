// One gradient check per entry of the op list (engine/ops/op_list.h). The
// table below must name every op: a new op without a case here fails
// EveryOpHasAGradientCase. The per-family tests go deeper; this one makes
// sure nothing in the list is left without a checked backward.
#include <algorithm>
#include <map>

#include "engine/ops/ops.h"
#include "engine/ops/registry.h"
#include "gtest/gtest.h"
#include "tests/support/gradcheck.h"
#include "tests/support/reference.h"

namespace graft {
namespace {

using ops::OpId;

struct GradCase {
  testing::OpFn fn;
  std::vector<Shape> shapes;
  float lo = -1.f, hi = 1.f;
  std::vector<float> avoid;  // kinks to keep inputs away from
  bool distinct = false;     // values at least 0.05 apart (max pooling: no near-ties)
};

// A shuffled ramp: every value differs from every other by a multiple of 0.05.
Tensor distinct_values(const Shape& s, Generator& gen) {
  const int64_t n = shape_numel(s);
  std::vector<float> keys = Tensor::rand({n}, gen).to_vector();
  std::vector<int64_t> order(n);
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return keys[a] < keys[b]; });
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; ++i) v[order[i]] = 0.05f * static_cast<float>(i - n / 2);
  return Tensor::from_vector(v, s);
}

std::map<OpId, GradCase> cases() {
  const std::vector<float> relu_kinks{0.f}, six_kinks{-3.f, 0.f, 3.f, 6.f};
  Pool2dOptions pool;
  pool.kernel = {3, 3};
  pool.stride = {2, 2};
  pool.padding = {1, 1, 1, 1};
  pool.ceil_mode = true;
  Conv2dOptions conv;
  conv.stride = {2, 1};
  conv.padding = {1, 0, 0, 1};
  return {
      {OpId::add, {[](auto& x) { return add(x[0], x[1]); }, {{2, 3, 4}, {3, 1}}}},
      {OpId::sub, {[](auto& x) { return sub(x[0], x[1]); }, {{2, 1, 4}, {3, 4}}}},
      {OpId::mul, {[](auto& x) { return mul(x[0], x[1]); }, {{2, 3, 4}, {4}}}},
      {OpId::div, {[](auto& x) { return div(x[0], x[1]); }, {{2, 3}, {2, 3}}, 0.5f, 2.f}},
      {OpId::neg, {[](auto& x) { return neg(x[0]); }, {{5}}}},
      {OpId::add_scalar, {[](auto& x) { return add_scalar(x[0], 2.5); }, {{5}}}},
      {OpId::mul_scalar, {[](auto& x) { return mul_scalar(x[0], -1.5); }, {{5}}}},
      {OpId::pow_scalar, {[](auto& x) { return pow_scalar(x[0], 2.5); }, {{6}}, 0.5f, 2.f}},
      {OpId::exp, {[](auto& x) { return exp(x[0]); }, {{6}}}},
      {OpId::log, {[](auto& x) { return log(x[0]); }, {{6}}, 0.5f, 2.f}},
      {OpId::sqrt, {[](auto& x) { return sqrt(x[0]); }, {{6}}, 0.5f, 2.f}},
      {OpId::relu, {[](auto& x) { return relu(x[0]); }, {{2, 7}}, -1.f, 1.f, relu_kinks}},
      {OpId::clip, {[](auto& x) { return clip(x[0], -0.5, 0.5); }, {{9}}, -1.f, 1.f, {-0.5f, 0.5f}}},
      {OpId::sigmoid, {[](auto& x) { return sigmoid(x[0]); }, {{7}}, -4.f, 4.f}},
      {OpId::silu, {[](auto& x) { return silu(x[0]); }, {{7}}, -4.f, 4.f}},
      {OpId::gelu, {[](auto& x) { return add(gelu(x[0]), gelu(x[0], GeluApprox::tanh)); }, {{7}}, -3.f, 3.f}},
      {OpId::hardswish, {[](auto& x) { return hardswish(x[0]); }, {{9}}, -5.f, 5.f, six_kinks}},
      {OpId::hardsigmoid, {[](auto& x) { return hardsigmoid(x[0]); }, {{9}}, -5.f, 5.f, six_kinks}},
      {OpId::tanh, {[](auto& x) { return tanh(x[0]); }, {{7}}, -2.f, 2.f}},
      // -- cases of the ONNX math family's new ops (erf, pow, where) --
      {OpId::erf, {[](auto& x) { return erf(x[0]); }, {{7}}, -2.f, 2.f}},
      {OpId::pow, {[](auto& x) { return pow(x[0], x[1]); }, {{2, 3}, {3}}, 0.5f, 2.f}},
      {OpId::where,
       {[](auto& x) { return where(Tensor::from_vector({1.f, 0.f, 1.f}, {3}, DType::boolean), x[0], x[1]); },
        {{2, 3}, {2, 1}}}},
      {OpId::sum, {[](auto& x) { return sum(x[0], {0, 2}, true); }, {{3, 4, 5}}}},
      {OpId::mean, {[](auto& x) { return mean(x[0], {-1}); }, {{3, 4, 5}}}},
      {OpId::reshape, {[](auto& x) { return reshape(x[0], {4, -1}); }, {{2, 3, 2, 2}}}},
      {OpId::permute, {[](auto& x) { return permute(x[0], {2, 0, 1}); }, {{2, 3, 4}}}},
      {OpId::concat, {[](auto& x) { return concat({x[0], x[1]}, 1); }, {{2, 3, 2}, {2, 1, 2}}}},
      {OpId::slice, {[](auto& x) { return slice(x[0], 1, 1, 6, 2); }, {{2, 7}}}},
      {OpId::pad, {[](auto& x) { return pad(x[0], {1, 0, 2, 1}, PadMode::reflect); }, {{1, 2, 4, 5}}}},
      {OpId::expand, {[](auto& x) { return expand(x[0], {3, 2, 4}); }, {{2, 1}}}},
      // -- cases of the ONNX shape family's new ops (gather) --
      {OpId::gather, {[](auto& x) { return gather(x[0], Tensor::from_vector_i64({2, -1, 0, 2}, {2, 2}), 1); }, {{2, 4, 3}}}},
      {OpId::matmul, {[](auto& x) { return matmul(x[0], x[1]); }, {{2, 3, 5}, {5, 4}}}},
      {OpId::linear, {[](auto& x) { return linear(x[0], x[1], x[2]); }, {{3, 5}, {4, 5}, {4}}}},
      {OpId::conv2d, {[conv](auto& x) { return conv2d(x[0], x[1], x[2], conv); }, {{2, 3, 5, 6}, {4, 3, 3, 2}, {4}}}},
      // -- cases of the ONNX nn family's new ops (conv_transpose2d) --
      {OpId::conv_transpose2d,
       {[](auto& x) {
          ConvTranspose2dOptions o;
          o.stride = {2, 1};
          o.padding = {1, 0, 0, 1};
          o.output_padding = {1, 0};
          return conv_transpose2d(x[0], x[1], x[2], o);
        },
        {{2, 3, 3, 4}, {3, 2, 3, 2}, {2}}}},
      {OpId::max_pool2d, {[pool](auto& x) { return max_pool2d(x[0], pool); }, {{2, 3, 6, 7}}, 0, 0, {}, true}},
      {OpId::avg_pool2d, {[pool](auto& x) { return avg_pool2d(x[0], pool); }, {{2, 3, 6, 7}}}},
      {OpId::global_avg_pool2d, {[](auto& x) { return global_avg_pool2d(x[0]); }, {{2, 3, 4, 5}}}},
      {OpId::batch_norm,
       {[](auto& x) { return batch_norm(x[0], x[1], x[2], Tensor(), Tensor(), true); }, {{4, 3, 2, 3}, {3}, {3}}}},
      {OpId::layer_norm, {[](auto& x) { return layer_norm(x[0], 1, x[1], x[2]); }, {{3, 6}, {6}, {6}}}},
      {OpId::softmax, {[](auto& x) { return softmax(x[0], 1); }, {{2, 5, 3}}}},
      {OpId::log_softmax, {[](auto& x) { return log_softmax(x[0], -1); }, {{3, 6}}}},
      {OpId::cross_entropy,
       {[](auto& x) {
          CrossEntropyOptions o;
          o.label_smoothing = 0.1;
          return cross_entropy(x[0], Tensor::from_vector_i64({0, 3, 1}, {3}), o);
        },
        {{3, 4}}}},
      {OpId::dropout,
       {[](auto& x) {
          Generator g(17);  // the same mask on every call
          return dropout(x[0], 0.3, true, g);
        },
        {{4, 5}}}},
      {OpId::attention,
       {[](auto& x) { return scaled_dot_product_attention(x[0], x[1], x[2]); }, {{1, 2, 3, 4}, {1, 2, 5, 4}, {1, 2, 5, 4}}}},
  };
}

TEST(EveryOp, HasAGradientCase) {
  const auto table = cases();
  for (int i = 0; i < ops::kNumOps; ++i)
    EXPECT_TRUE(table.count(static_cast<OpId>(i))) << "op '" << ops::op_name(static_cast<OpId>(i))
                                                   << "' has no gradient case in this file";
}

TEST(EveryOp, BackwardMatchesFiniteDifferences) {
  Generator gen = testing::test_generator();
  for (auto& [id, c] : cases()) {
    std::vector<Tensor> inputs;
    for (auto& s : c.shapes)
      inputs.push_back(c.distinct       ? distinct_values(s, gen)
                       : c.avoid.empty() ? testing::random_tensor(s, gen, c.lo, c.hi)
                                         : testing::random_tensor_away_from(s, gen, c.lo, c.hi, c.avoid, 0.05f));
    EXPECT_TRUE(testing::gradcheck(c.fn, inputs)) << "op " << ops::op_name(id);
  }
}

TEST(EveryOp, UnsupportedDtypesAreClearErrors) {
  for (int i = 0; i < ops::kNumOps; ++i) {
    const auto id = static_cast<OpId>(i);
    EXPECT_TRUE(ops::supports(id, Device::cpu(), DType::f32)) << ops::op_name(id);
    EXPECT_FALSE(ops::supports(id, Device::cpu(), DType::bf16)) << ops::op_name(id);
  }
  try {
    Tensor a = Tensor::ones({2}, DType::bf16);
    add(a, a);
    FAIL() << "bf16 add on the cpu should be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("add: bf16[2] cpu is not supported (supported: cpu/f32, cuda/f32, cuda/f16, "
                                          "cuda/bf16)"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace graft
