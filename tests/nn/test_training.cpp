// End to end on synthetic tasks: a tiny MLP and a tiny CNN must learn.
#include <cmath>

#include "engine/autograd/grad_mode.h"
#include "engine/nn/layers.h"
#include "engine/ops/ops.h"
#include "engine/optim/optimizer.h"
#include "gtest/gtest.h"
#include "tests/support/reference.h"

namespace graft {
namespace {

// Two interleaved spirals: not linearly separable.
void spirals(int64_t n, Generator& gen, Tensor* x, Tensor* y) {
  std::vector<float> xs(n * 2);
  std::vector<int64_t> ys(n);
  std::vector<float> noise = Tensor::randn({n * 2}, gen, 0.f, 0.05f).to_vector();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t cls = i % 2;
    const double t = 0.25 + 2.5 * static_cast<double>(i / 2) / static_cast<double>(n / 2);
    const double ang = 2.2 * t + M_PI * cls;
    xs[2 * i] = static_cast<float>(t * std::cos(ang) / 3.0) + noise[2 * i];
    xs[2 * i + 1] = static_cast<float>(t * std::sin(ang) / 3.0) + noise[2 * i + 1];
    ys[i] = cls;
  }
  *x = Tensor::from_vector(xs, {n, 2});
  *y = Tensor::from_vector_i64(ys, {n});
}

double accuracy(const Tensor& logits, const Tensor& y) {
  std::vector<float> l = logits.to_vector();
  std::vector<int64_t> t = y.to_vector_i64();
  const int64_t n = logits.size(0), c = logits.size(1);
  int64_t ok = 0;
  for (int64_t i = 0; i < n; ++i) {
    int64_t best = 0;
    for (int64_t j = 1; j < c; ++j)
      if (l[i * c + j] > l[i * c + best]) best = j;
    ok += best == t[i];
  }
  return static_cast<double>(ok) / n;
}

TEST(Training, TinyMlpLearnsTwoSpirals) {
  Generator gen(1234);
  Tensor x, y;
  spirals(256, gen, &x, &y);
  nn::Sequential mlp{std::make_shared<nn::Linear>(2, 64, true, gen), std::make_shared<nn::Act>(nn::Activation::tanh),
                     std::make_shared<nn::Linear>(64, 64, true, gen), std::make_shared<nn::Act>(nn::Activation::tanh),
                     std::make_shared<nn::Linear>(64, 2, true, gen)};
  optim::Adam opt(mlp.parameters(), optim::AdamOptions{0.01});
  double first = 0, last = 0;
  for (int step = 0; step < 400; ++step) {
    opt.zero_grad();
    Tensor loss = cross_entropy(mlp(x), y);
    loss.backward();
    opt.step();
    if (step == 0) first = loss.item();
    last = loss.item();
  }
  NoGradGuard ng;
  const double acc = accuracy(mlp(x), y);
  EXPECT_LT(last, 0.1) << "first loss " << first;
  EXPECT_GT(acc, 0.97);
}

// Images of 8x8 with a bright bar: horizontal (class 0), vertical (1), or a
// diagonal (2), at random positions, on noise.
void bars(int64_t n, Generator& gen, Tensor* x, Tensor* y) {
  std::vector<float> img = Tensor::rand({n, 1, 8, 8}, gen, 0.f, 0.3f).to_vector();
  std::vector<float> pos = Tensor::rand({n}, gen, 0.f, 6.f).to_vector();
  std::vector<int64_t> ys(n);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t cls = i % 3, p = static_cast<int64_t>(pos[i]) + 1;
    for (int k = 0; k < 8; ++k) {
      const int64_t h = cls == 0 ? p : k, w = cls == 1 ? p : (cls == 0 ? k : (k + p) % 8);
      img[i * 64 + h * 8 + w] += 1.0f;
    }
    ys[i] = cls;
  }
  *x = Tensor::from_vector(img, {n, 1, 8, 8});
  *y = Tensor::from_vector_i64(ys, {n});
}

TEST(Training, TinyCnnLearnsBarOrientation) {
  Generator gen(99);
  Tensor x, y;
  bars(192, gen, &x, &y);
  Pool2dOptions pool;  // 2x2, stride 2
  nn::Sequential cnn{std::make_shared<nn::Conv2d>(1, 8, 3, Conv2dOptions::same_padding(1), false, gen),
                     std::make_shared<nn::BatchNorm2d>(8), std::make_shared<nn::Act>(nn::Activation::relu),
                     std::make_shared<nn::MaxPool2d>(pool),
                     std::make_shared<nn::Conv2d>(8, 16, 3, Conv2dOptions::same_padding(1), true, gen),
                     std::make_shared<nn::Act>(nn::Activation::relu), std::make_shared<nn::GlobalAvgPool2d>(),
                     std::make_shared<nn::Linear>(16, 3, true, gen)};
  optim::SgdOptions so;
  so.lr = 0.1;
  so.momentum = 0.9;
  optim::SGD opt(cnn.parameters(), so);
  double first = 0, last = 0;
  for (int step = 0; step < 150; ++step) {
    opt.zero_grad();
    Tensor loss = cross_entropy(cnn(x), y);
    loss.backward();
    opt.step();
    if (step == 0) first = loss.item();
    last = loss.item();
  }
  cnn.eval();  // batch norm on running statistics
  NoGradGuard ng;
  Tensor xt, yt;
  bars(96, gen, &xt, &yt);  // fresh images
  const double acc = accuracy(cnn(xt), yt);
  EXPECT_LT(last, 0.15) << "first loss " << first;
  EXPECT_GT(acc, 0.9);
}

TEST(Module, ParametersHaveStableDottedNames) {
  nn::Sequential net{std::make_shared<nn::Conv2d>(3, 4, 3), std::make_shared<nn::BatchNorm2d>(4),
                     std::make_shared<nn::Linear>(4, 2)};
  std::vector<std::string> names;
  for (auto& [n, t] : net.named_parameters()) names.push_back(n);
  EXPECT_EQ(names, (std::vector<std::string>{"0.weight", "0.bias", "1.weight", "1.bias", "2.weight", "2.bias"}));
  std::vector<std::string> buffers;
  for (auto& [n, t] : net.named_buffers()) buffers.push_back(n);
  EXPECT_EQ(buffers, (std::vector<std::string>{"1.running_mean", "1.running_var"}));
  EXPECT_EQ(net.num_parameters(), 4 * 3 * 9 + 4 + 4 + 4 + 8 + 2);
}

}  // namespace
}  // namespace graft
