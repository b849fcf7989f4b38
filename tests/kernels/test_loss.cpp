// cross_entropy forward and backward against a long-double reference written
// from PyTorch's definition (aten/src/ATen/native/LossNLL.cpp,
// cross_entropy_loss_label_smoothing):
//   loss = (1 - eps) * nll_loss(log_softmax(x), t, w) + (eps / C) * smooth,
//   smooth_n = -sum_c w_c log_softmax(x_n)_c, zero where t_n == ignore_index;
// 'mean' divides both parts by sum_n w[t_n] over the samples not ignored.
// log_softmax here is x - log(sum(exp(x))) with no max subtraction: long
// double holds exp(+-1000). The backward reference is a central difference.
#include <cmath>
#include <string>
#include <vector>

#include "engine/ops/loss.h"
#include "gtest/gtest.h"
#include "tests/support/reference.h"

namespace graft {
namespace {

using LD = long double;

struct RefProblem {
  int64_t n = 0, c = 0;
  std::vector<LD> x;         // (n, c)
  std::vector<int64_t> t;    // (n)
  std::vector<LD> w;         // (c) or empty
  double eps = 0;
  Reduction red = Reduction::mean;
  int64_t ignore = -100;
};

// Per-sample losses (reduction none) or the one reduced value.
std::vector<LD> ref_loss(const RefProblem& p) {
  std::vector<LD> per(p.n, 0.0L);
  LD wsum = 0;
  for (int64_t i = 0; i < p.n; ++i) {
    if (p.t[i] == p.ignore) continue;
    LD s = 0;
    for (int64_t j = 0; j < p.c; ++j) s += std::exp(p.x[i * p.c + j]);
    const LD lse = std::log(s);
    auto w = [&](int64_t j) { return p.w.empty() ? 1.0L : p.w[j]; };
    const LD nll = w(p.t[i]) * (lse - p.x[i * p.c + p.t[i]]);
    LD smooth = 0;
    for (int64_t j = 0; j < p.c; ++j) smooth += w(j) * (lse - p.x[i * p.c + j]);
    per[i] = (1 - p.eps) * nll + p.eps / p.c * smooth;
    wsum += w(p.t[i]);
  }
  if (p.red == Reduction::none) return per;
  LD total = 0;
  for (LD v : per) total += v;
  return {p.red == Reduction::sum ? total : total / wsum};
}

const char* red_name(Reduction r) { return r == Reduction::none ? "none" : r == Reduction::sum ? "sum" : "mean"; }

struct CeCase {
  Tensor logits, targets, weights;
  RefProblem ref;
  CrossEntropyOptions opt;
};

// Targets: random classes; with `ignored` every third one set to the ignore index.
CeCase make_setup(Generator& gen, int64_t n, int64_t c, float lo, float hi, double eps, bool weighted,
                 Reduction red, int64_t ignore_index, bool ignored) {
  CeCase s;
  s.logits = testing::random_tensor({n, c}, gen, lo, hi);
  std::vector<float> u = testing::random_tensor({n}, gen, 0.f, 1.f).to_vector();
  std::vector<int64_t> t(n);
  for (int64_t i = 0; i < n; ++i) {
    t[i] = std::min<int64_t>(c - 1, static_cast<int64_t>(u[i] * c));
    if (ignored && i % 3 == 1) t[i] = ignore_index;
  }
  s.targets = Tensor::from_vector_i64(t, {n});
  s.opt.label_smoothing = eps;
  s.opt.reduction = red;
  s.opt.ignore_index = ignore_index;
  s.ref.n = n;
  s.ref.c = c;
  for (float v : s.logits.to_vector()) s.ref.x.push_back(v);
  s.ref.t = t;
  s.ref.eps = eps;
  s.ref.red = red;
  s.ref.ignore = ignore_index;
  if (weighted) {
    s.weights = testing::random_tensor({c}, gen, 0.2f, 2.f);
    s.opt.class_weights = s.weights;
    for (float v : s.weights.to_vector()) s.ref.w.push_back(v);
  }
  return s;
}

std::vector<double> to_double(const std::vector<LD>& v) { return std::vector<double>(v.begin(), v.end()); }

struct Combo {
  double eps;
  bool weighted;
  Reduction red;
  int64_t ignore_index;
  bool ignored;
  std::string str() const {
    return "eps " + std::to_string(eps) + (weighted ? " weighted" : "") + " reduction " + red_name(red) +
           " ignore_index " + std::to_string(ignore_index) + (ignored ? " (some ignored)" : "");
  }
};

std::vector<Combo> all_combos() {
  std::vector<Combo> out;
  for (double eps : {0.0, 0.1, 1.0})
    for (bool weighted : {false, true})
      for (Reduction red : {Reduction::none, Reduction::mean, Reduction::sum})
        for (auto [ignore_index, ignored] : std::vector<std::pair<int64_t, bool>>{{-100, false}, {-100, true}, {2, true}})
          out.push_back({eps, weighted, red, ignore_index, ignored});
  return out;
}

TEST(CrossEntropyForward, EveryOptionCombinationMatchesPyTorchFormula) {
  Generator gen = testing::test_generator();
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{1, 1}, {5, 3}, {7, 13}, {16, 1000}, {33, 10}};
  int checked = 0;
  for (const Combo& k : all_combos()) {
    for (auto [n, c] : shapes) {
      if (k.ignore_index >= c) continue;  // ignore_index 2 needs at least 3 classes to be a class
      for (float mag : {4.f, 1000.f}) {
        CeCase s = make_setup(gen, n, c, -mag, mag, k.eps, k.weighted, k.red, k.ignore_index, k.ignored);
        Tensor out = cross_entropy(s.logits, s.targets, s.opt);
        EXPECT_EQ(out.shape(), k.red == Reduction::none ? Shape{n} : Shape{});
        // f32 against long double: rel 1e-5, plus 1e-5 absolute for losses near 0.
        EXPECT_TRUE(testing::all_close(out.to_vector(), to_double(ref_loss(s.ref)), 1e-5, 1e-5))
            << k.str() << " logits (" << n << ", " << c << ") in +-" << mag;
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 400);
}

TEST(CrossEntropyForward, Int32TargetsGiveTheSameLoss) {
  Generator gen = testing::test_generator();
  CeCase s = make_setup(gen, 9, 6, -3.f, 3.f, 0.2, true, Reduction::none, -100, true);
  std::vector<float> t32;
  for (int64_t v : s.targets.to_vector_i64()) t32.push_back(static_cast<float>(v));
  Tensor targets32 = Tensor::from_vector(t32, {9}, DType::i32);
  EXPECT_EQ(cross_entropy(s.logits, targets32, s.opt).to_vector(), cross_entropy(s.logits, s.targets, s.opt).to_vector());
}

TEST(CrossEntropyForward, AllIgnoredMeanIsNaNSumIsZero) {
  // As PyTorch: the mean divides by the weight of no sample at all.
  Tensor x = Tensor::ones({3, 4});
  Tensor t = Tensor::from_vector_i64({-100, -100, -100}, {3});
  CrossEntropyOptions opt;
  EXPECT_TRUE(std::isnan(cross_entropy(x, t, opt).item()));
  opt.reduction = Reduction::sum;
  EXPECT_EQ(cross_entropy(x, t, opt).item(), 0.f);
  opt.reduction = Reduction::none;
  EXPECT_EQ(cross_entropy(x, t, opt).to_vector(), std::vector<float>(3, 0.f));
  // No samples at all: the same.
  Tensor x0 = Tensor::zeros({0, 4});
  Tensor t0 = Tensor::from_vector_i64({}, {0});
  EXPECT_EQ(cross_entropy(x0, t0, opt).shape(), Shape{0});
  opt.reduction = Reduction::sum;
  EXPECT_EQ(cross_entropy(x0, t0, opt).item(), 0.f);
  opt.reduction = Reduction::mean;
  EXPECT_TRUE(std::isnan(cross_entropy(x0, t0, opt).item()));
}

TEST(CrossEntropyForward, UniformLogitsGiveLogC) {
  // A property independent of any formula details: equal logits, any target,
  // any smoothing: -log(1/C).
  for (int64_t c : {1, 2, 10, 1000}) {
    Tensor x = Tensor::full({4, c}, 7.25);
    Tensor t = Tensor::from_vector_i64({0, c - 1, 0, c / 2}, {4});
    CrossEntropyOptions opt;
    opt.label_smoothing = 0.3;
    EXPECT_NEAR(cross_entropy(x, t, opt).item(), std::log(static_cast<double>(c)), 1e-5) << c;
  }
}

TEST(CrossEntropyBackward, EveryOptionCombinationMatchesDifferentiatedReference) {
  Generator gen = testing::test_generator();
  for (const Combo& k : all_combos()) {
    for (auto [n, c, mag] : std::vector<std::tuple<int64_t, int64_t, float>>{{5, 3, 3.f}, {4, 9, 3.f}, {3, 5, 1000.f}}) {
      CeCase s = make_setup(gen, n, c, -mag, mag, k.eps, k.weighted, k.red, k.ignore_index, k.ignored);
      Tensor x = s.logits.clone().set_requires_grad(true);
      Tensor out = cross_entropy(x, s.targets, s.opt);
      Tensor g = testing::random_tensor(out.shape(), gen, 0.5f, 1.5f);
      out.backward(g);
      const std::vector<float> gv = g.to_vector();

      // L(x) = <ref_loss(x), g>, differentiated by central differences.
      auto L = [&](const RefProblem& p) {
        std::vector<LD> l = ref_loss(p);
        LD s2 = 0;
        for (size_t i = 0; i < l.size(); ++i) s2 += l[i] * gv[i];
        return s2;
      };
      std::vector<double> ref(n * c);
      const LD h = 1e-4L;
      for (int64_t j = 0; j < n * c; ++j) {
        RefProblem pp = s.ref, pm = s.ref;
        pp.x[j] += h;
        pm.x[j] -= h;
        ref[j] = static_cast<double>((L(pp) - L(pm)) / (2 * h));
      }
      EXPECT_TRUE(testing::all_close(x.grad().to_vector(), ref, 1e-4, 1e-6))
          << k.str() << " logits (" << n << ", " << c << ") in +-" << mag;
    }
  }
}

}  // namespace
}  // namespace graft
