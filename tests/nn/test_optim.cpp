// Optimizer steps against the update rules of torch.optim (SGD, Adam, AdamW),
// computed here in float64 over several steps.
#include "engine/optim/optimizer.h"

#include <cmath>

#include "gtest/gtest.h"
#include "tests/support/reference.h"

namespace graft {
namespace {

struct Case {
  Tensor p;
  std::vector<double> ref;
};

Case make_param(Generator& gen, int64_t n) {
  Tensor p = Tensor::rand({n}, gen, -1.f, 1.f);
  p.set_requires_grad(true);
  return {p, testing::to_double(p)};
}

void set_grad(Tensor& p, const std::vector<float>& g) { p.set_grad(Tensor::from_vector(g, p.shape())); }

TEST(Optim, SgdMomentumNesterovWeightDecayMatchesReference) {
  Generator gen = testing::test_generator();
  for (bool nesterov : {false, true}) {
    Case c = make_param(gen, 37);
    optim::SgdOptions o;
    o.lr = 0.1;
    o.momentum = 0.9;
    o.weight_decay = 0.01;
    o.nesterov = nesterov;
    optim::SGD sgd({c.p}, o);
    std::vector<double> buf(37, 0.0);
    for (int step = 0; step < 4; ++step) {
      std::vector<float> g = Tensor::rand({37}, gen).to_vector();
      set_grad(c.p, g);
      sgd.step();
      for (int i = 0; i < 37; ++i) {
        double gi = g[i] + o.weight_decay * c.ref[i];
        buf[i] = step == 0 ? gi : o.momentum * buf[i] + gi;
        const double d = nesterov ? gi + o.momentum * buf[i] : buf[i];
        c.ref[i] -= o.lr * d;
      }
    }
    EXPECT_TRUE(testing::all_close(c.p.to_vector(), c.ref, 1e-5, 1e-6)) << "nesterov=" << nesterov;
  }
}

TEST(Optim, AdamAndAdamWMatchReference) {
  Generator gen = testing::test_generator();
  for (bool decoupled : {false, true}) {
    Case c = make_param(gen, 29);
    optim::AdamOptions o;
    o.lr = 0.01;
    o.weight_decay = 0.1;
    o.decoupled_weight_decay = decoupled;
    optim::Adam adam({c.p}, o);
    std::vector<double> m(29, 0), v(29, 0);
    for (int t = 1; t <= 5; ++t) {
      std::vector<float> g = Tensor::rand({29}, gen).to_vector();
      set_grad(c.p, g);
      adam.step();
      for (int i = 0; i < 29; ++i) {
        double gi = g[i];
        if (decoupled) c.ref[i] *= 1 - o.lr * o.weight_decay;
        else gi += o.weight_decay * c.ref[i];
        m[i] = o.beta1 * m[i] + (1 - o.beta1) * gi;
        v[i] = o.beta2 * v[i] + (1 - o.beta2) * gi * gi;
        const double mh = m[i] / (1 - std::pow(o.beta1, t)), vh = v[i] / (1 - std::pow(o.beta2, t));
        c.ref[i] -= o.lr * mh / (std::sqrt(vh) + o.eps);
      }
    }
    EXPECT_TRUE(testing::all_close(c.p.to_vector(), c.ref, 1e-5, 1e-6)) << "decoupled=" << decoupled;
  }
}

TEST(Optim, FrozenAndGradlessParametersAreUntouchedAndGroupsScaleTheRate) {
  Generator gen = testing::test_generator();
  Tensor a = Tensor::rand({5}, gen), b = Tensor::rand({5}, gen), frozen = Tensor::rand({5}, gen);
  a.set_requires_grad(true);
  b.set_requires_grad(true);
  const std::vector<float> a0 = a.to_vector(), b0 = b.to_vector(), f0 = frozen.to_vector();
  frozen.set_grad(Tensor::ones({5}));  // a stale gradient must not move a frozen parameter
  set_grad(a, std::vector<float>(5, 1.f));
  set_grad(b, std::vector<float>(5, 1.f));
  optim::SgdOptions o;
  o.lr = 0.5;
  optim::SGD sgd({optim::ParamGroup{{a}, 1.0}, optim::ParamGroup{{b, frozen}, 0.1}}, o);
  sgd.step();
  for (int i = 0; i < 5; ++i) {
    EXPECT_FLOAT_EQ(a.to_vector()[i], a0[i] - 0.5f);
    EXPECT_FLOAT_EQ(b.to_vector()[i], b0[i] - 0.05f);
    EXPECT_EQ(frozen.to_vector()[i], f0[i]);
  }
  Tensor c = Tensor::rand({5}, gen);
  c.set_requires_grad(true);  // no gradient yet
  const std::vector<float> c0 = c.to_vector();
  optim::Adam adam({c}, optim::adamw_options());
  adam.step();
  EXPECT_EQ(c.to_vector(), c0);
}

TEST(Optim, ChannelsLastParametersUpdateLikeContiguousOnes) {
  // Convolution weights may be stored packed (channels-last memory); the
  // update must act on logical elements whatever the gradient's layout.
  Generator gen = testing::test_generator();
  Tensor w = Tensor::rand({4, 3, 2, 5}, gen);
  Tensor packed = w.to_format(MemoryFormat::channels_last).detach();
  Tensor plain = w.clone().detach();
  packed.set_requires_grad(true);
  plain.set_requires_grad(true);
  Tensor g = Tensor::rand({4, 3, 2, 5}, gen);  // row-major gradient for both
  packed.set_grad(g);
  plain.set_grad(g);
  optim::Adam a({packed}, optim::adamw_options(0.1)), b({plain}, optim::adamw_options(0.1));
  a.step();
  b.step();
  EXPECT_TRUE(packed.is_channels_last());
  EXPECT_EQ(packed.to_vector(), plain.to_vector());
}

TEST(Optim, BadOptionsAreErrors) {
  Tensor p = Tensor::zeros({2});
  p.set_requires_grad(true);
  optim::SgdOptions o;
  o.nesterov = true;
  EXPECT_THROW(optim::SGD({p}, o), Error);
  optim::AdamOptions a;
  a.beta1 = 1.0;
  EXPECT_THROW(optim::Adam({p}, a), Error);
}

}  // namespace
}  // namespace graft
