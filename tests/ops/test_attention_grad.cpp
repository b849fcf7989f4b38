// Attention backward against central finite differences, and bad inputs.
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "engine/ops/attention.h"
#include "gtest/gtest.h"
#include "tests/support/gradcheck.h"
#include "tests/support/reference.h"

namespace graft {
namespace {

// q, k, v differentiated; the mask (not differentiable) is captured.
::testing::AssertionResult check_attention_grad(const Shape& qs, const Shape& ks, const Shape& vs, const Tensor& mask,
                                                AttentionOptions opt) {
  Generator gen = testing::test_generator();
  std::vector<Tensor> inputs = {testing::random_tensor(qs, gen, -1.5f, 1.5f), testing::random_tensor(ks, gen),
                                testing::random_tensor(vs, gen)};
  testing::GradcheckOptions go;
  go.max_elements_per_input = 128;
  return testing::gradcheck(
      [mask, opt](const std::vector<Tensor>& x) { return scaled_dot_product_attention(x[0], x[1], x[2], mask, opt); },
      inputs, go);
}

TEST(AttentionGrad, Plain) {
  EXPECT_TRUE(check_attention_grad({1, 2, 3, 4}, {1, 2, 5, 4}, {1, 2, 5, 3}, Tensor(), {}));
  EXPECT_TRUE(check_attention_grad({2, 1, 1, 1}, {2, 1, 1, 1}, {2, 1, 1, 1}, Tensor(), {}));
  EXPECT_TRUE(check_attention_grad({1, 1, 7, 5}, {1, 1, 3, 5}, {1, 1, 3, 6}, Tensor(), {0.8, false}));
}

TEST(AttentionGrad, Causal) {
  AttentionOptions opt;
  opt.causal = true;
  EXPECT_TRUE(check_attention_grad({2, 1, 5, 3}, {2, 1, 4, 3}, {2, 1, 4, 2}, Tensor(), opt));
  EXPECT_TRUE(check_attention_grad({1, 2, 3, 4}, {1, 2, 6, 4}, {1, 2, 6, 4}, Tensor(), opt));
}

TEST(AttentionGrad, AdditiveMaskBroadcast) {
  Generator gen = testing::test_generator();
  Tensor mask = testing::random_tensor({1, 2, 4, 1}, gen, -2.f, 2.f);
  EXPECT_TRUE(check_attention_grad({2, 2, 4, 3}, {2, 2, 5, 3}, {2, 2, 5, 2}, mask, {}));
  Tensor key_bias = testing::random_tensor({5}, gen, -2.f, 2.f);
  key_bias.data<float>()[1] = -std::numeric_limits<float>::infinity();
  EXPECT_TRUE(check_attention_grad({2, 2, 4, 3}, {2, 2, 5, 3}, {2, 2, 5, 2}, key_bias, {}));
}

TEST(AttentionGrad, BoolMaskWithFullyMaskedRow) {
  // Row 1 keeps nothing; the others keep some keys.
  Tensor keep = Tensor::from_vector({1, 0, 1, 1, 0,   //
                                     0, 0, 0, 0, 0,   //
                                     0, 1, 1, 0, 1},  //
                                    {3, 5}, DType::boolean);
  EXPECT_TRUE(check_attention_grad({1, 2, 3, 4}, {1, 2, 5, 4}, {1, 2, 5, 3}, keep, {}));
  AttentionOptions opt;
  opt.causal = true;
  EXPECT_TRUE(check_attention_grad({1, 2, 3, 4}, {1, 2, 5, 4}, {1, 2, 5, 3}, keep, opt));
}

// Expects a graft::Error whose message names the op and contains `fragment`.
void expect_attention_error(const std::function<void()>& f, const std::string& fragment) {
  EXPECT_TRUE(testing::throws_naming(f, {"attention", fragment}));
}

TEST(AttentionGrad, BadInputsAreClearErrors) {
  Generator gen = testing::test_generator();
  const Tensor q = testing::random_tensor({2, 3, 4, 8}, gen);
  const Tensor k = testing::random_tensor({2, 3, 5, 8}, gen);
  const Tensor v = testing::random_tensor({2, 3, 5, 6}, gen);

  expect_attention_error([&] { scaled_dot_product_attention(testing::random_tensor({3, 4, 8}, gen), k, v); },
                         "[3, 4, 8]");
  expect_attention_error([&] { scaled_dot_product_attention(q, testing::random_tensor({2, 3, 5, 7}, gen), v); },
                         "head dims");
  expect_attention_error([&] { scaled_dot_product_attention(q, k, testing::random_tensor({2, 3, 6, 6}, gen)); },
                         "key sequence lengths");
  expect_attention_error(
      [&] {
        scaled_dot_product_attention(q, testing::random_tensor({2, 1, 5, 8}, gen), testing::random_tensor({2, 1, 5, 6}, gen));
      },
      "batch and head");
  expect_attention_error(
      [&] {
        scaled_dot_product_attention(testing::random_tensor({2, 3, 4, 0}, gen), testing::random_tensor({2, 3, 5, 0}, gen), v);
      },
      "head dim");
  expect_attention_error([&] { scaled_dot_product_attention(q.to(DType::f16), k, v); }, "not supported");
  expect_attention_error([&] { scaled_dot_product_attention(q, k.to(DType::bf16), v); }, "not supported");

  AttentionOptions bad_scale;
  bad_scale.scale = std::numeric_limits<double>::infinity();
  expect_attention_error([&] { scaled_dot_product_attention(q, k, v, Tensor(), bad_scale); }, "scale");
}

TEST(AttentionGrad, BadMasksAreClearErrors) {
  Generator gen = testing::test_generator();
  const Tensor q = testing::random_tensor({2, 3, 4, 8}, gen);
  const Tensor k = testing::random_tensor({2, 3, 5, 8}, gen);
  const Tensor v = testing::random_tensor({2, 3, 5, 6}, gen);

  // Does not broadcast to (2, 3, 4, 5).
  for (const Shape& s : {Shape{4, 4}, Shape{5, 4}, Shape{2, 1, 1}, Shape{2, 3, 4, 5, 1}, Shape{2, 2, 1, 1}}) {
    expect_attention_error([&] { scaled_dot_product_attention(q, k, v, Tensor::zeros(s)); }, shape_str(s));
    expect_attention_error([&] { scaled_dot_product_attention(q, k, v, Tensor::zeros(s, DType::boolean)); },
                           shape_str(s));
  }
  expect_attention_error([&] { scaled_dot_product_attention(q, k, v, Tensor::zeros({4, 5}, DType::i64)); }, "i64");
  expect_attention_error([&] { scaled_dot_product_attention(q, k, v, Tensor::zeros({4, 5}, DType::f16)); }, "f16");

  Tensor learned = testing::random_tensor({4, 5}, gen).set_requires_grad(true);
  expect_attention_error([&] { scaled_dot_product_attention(q, k, v, learned); }, "not differentiable");
}

}  // namespace
}  // namespace graft
