// Attention forward and backward against a naive float64 reference that
// materialises the whole score matrix (no tiling, no online softmax).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "engine/autograd/grad_mode.h"
#include "engine/ops/attention.h"
#include "gtest/gtest.h"
#include "kernels/cpu/attention.h"
#include "tests/support/reference.h"

namespace graft {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

struct Dims {
  int64_t B, H, Sq, Sk, D, Dv;
};

struct Reference {
  std::vector<double> out, lse, dq, dk, dv;
};

// Mask value at (b, h, i, j) by numpy broadcasting on the mask's logical
// values; a bool mask reads as 0 (keep) / -inf (drop).
double mask_at(const Tensor& mask, const std::vector<float>& values, int64_t b, int64_t h, int64_t i, int64_t j) {
  const int64_t full[4] = {b, h, i, j};
  const int64_t lead = 4 - mask.dim();
  int64_t flat = 0;
  for (int64_t d = 0; d < mask.dim(); ++d) {
    const int64_t size = mask.shape()[d];
    flat = flat * size + (size == 1 ? 0 : full[lead + d]);
  }
  const double x = values[flat];
  if (mask.dtype() == DType::boolean) return x != 0 ? 0.0 : -kInf;
  return x;
}

// Naive float64 attention: S = scale Q K^T + mask, P = softmax(S), O = P V, and
// the analytic gradients dV = P^T dO, dP = dO V^T, dS = P (dP - rowsum(P dP)),
// dQ = scale dS K, dK = scale dS^T Q. Rows with every score -inf give P = 0.
Reference reference_attention(const Dims& n, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                              bool causal, double scale, const Tensor& dout) {
  const std::vector<double> Q = testing::to_double(q), K = testing::to_double(k), V = testing::to_double(v);
  const std::vector<double> dO = dout.defined() ? testing::to_double(dout) : std::vector<double>();
  const std::vector<float> mv = mask.defined() ? mask.to_vector() : std::vector<float>();
  Reference r;
  r.out.assign(n.B * n.H * n.Sq * n.Dv, 0.0);
  r.lse.assign(n.B * n.H * n.Sq, -kInf);
  r.dq.assign(n.B * n.H * n.Sq * n.D, 0.0);
  r.dk.assign(n.B * n.H * n.Sk * n.D, 0.0);
  r.dv.assign(n.B * n.H * n.Sk * n.Dv, 0.0);
  std::vector<double> S(n.Sq * n.Sk), P(n.Sq * n.Sk), dP(n.Sq * n.Sk);
  for (int64_t b = 0; b < n.B; ++b) {
    for (int64_t h = 0; h < n.H; ++h) {
      const int64_t bh = b * n.H + h;
      const double* q_ = Q.data() + bh * n.Sq * n.D;
      const double* k_ = K.data() + bh * n.Sk * n.D;
      const double* v_ = V.data() + bh * n.Sk * n.Dv;
      const double* do_ = dO.data() + bh * n.Sq * n.Dv;
      for (int64_t i = 0; i < n.Sq; ++i) {
        for (int64_t j = 0; j < n.Sk; ++j) {
          double s = 0;
          for (int64_t d = 0; d < n.D; ++d) s += q_[i * n.D + d] * k_[j * n.D + d];
          s *= scale;
          if (mask.defined()) s += mask_at(mask, mv, b, h, i, j);
          if (causal && j > i) s = -kInf;
          S[i * n.Sk + j] = s;
        }
        double m = -kInf;
        for (int64_t j = 0; j < n.Sk; ++j) m = std::max(m, S[i * n.Sk + j]);
        if (m == -kInf) {
          for (int64_t j = 0; j < n.Sk; ++j) P[i * n.Sk + j] = 0;
          continue;
        }
        double sum = 0;
        for (int64_t j = 0; j < n.Sk; ++j) sum += std::exp(S[i * n.Sk + j] - m);
        for (int64_t j = 0; j < n.Sk; ++j) P[i * n.Sk + j] = std::exp(S[i * n.Sk + j] - m) / sum;
        r.lse[bh * n.Sq + i] = m + std::log(sum);
      }
      for (int64_t i = 0; i < n.Sq; ++i)
        for (int64_t j = 0; j < n.Sk; ++j)
          for (int64_t e = 0; e < n.Dv; ++e) r.out[(bh * n.Sq + i) * n.Dv + e] += P[i * n.Sk + j] * v_[j * n.Dv + e];
      if (!dout.defined()) continue;

      for (int64_t i = 0; i < n.Sq; ++i) {
        double c = 0;
        for (int64_t j = 0; j < n.Sk; ++j) {
          double dp = 0;
          for (int64_t e = 0; e < n.Dv; ++e) dp += do_[i * n.Dv + e] * v_[j * n.Dv + e];
          dP[i * n.Sk + j] = dp;
          c += P[i * n.Sk + j] * dp;
        }
        for (int64_t j = 0; j < n.Sk; ++j) {
          const double pij = P[i * n.Sk + j];
          const double ds = pij * (dP[i * n.Sk + j] - c);
          for (int64_t e = 0; e < n.Dv; ++e) r.dv[(bh * n.Sk + j) * n.Dv + e] += pij * do_[i * n.Dv + e];
          for (int64_t d = 0; d < n.D; ++d) {
            r.dq[(bh * n.Sq + i) * n.D + d] += scale * ds * k_[j * n.D + d];
            r.dk[(bh * n.Sk + j) * n.D + d] += scale * ds * q_[i * n.D + d];
          }
        }
      }
    }
  }
  return r;
}

// f32 kernel vs f64 reference. Sums run over up to 197 terms of size O(1), so
// f32 rounding leaves relative errors around 1e-6; bounds are stated per use:
// relative L2 error below 1e-5 overall and every element within
// 1e-4 relative + 1e-5 * max|ref| absolute (elements near zero have no
// relative accuracy to speak of).
::testing::AssertionResult close_to_reference(const Tensor& got, const std::vector<double>& ref) {
  const std::vector<float> g = got.to_vector();
  double scale = 0;
  for (double x : ref) scale = std::max(scale, std::fabs(x));
  const double rel = testing::rel_l2_error(g, ref);
  if (!(rel < 1e-5) && scale > 0) return ::testing::AssertionFailure() << "relative L2 error " << rel;
  return testing::all_close(g, ref, 1e-4, 1e-5 * std::max(scale, 1e-3));
}

struct CheckOptions {
  Tensor mask;
  bool causal = false;
  double scale = 0;  // 0: 1 / sqrt(D)
  std::vector<bool> grads{true, true, true};
};

// Runs the op forward and backward and compares output and the requested
// gradients with the reference.
void check_case(const Dims& n, const CheckOptions& o) {
  SCOPED_TRACE(::testing::Message() << "B=" << n.B << " H=" << n.H << " Sq=" << n.Sq << " Sk=" << n.Sk << " D=" << n.D
                                    << " Dv=" << n.Dv << " causal=" << o.causal
                                    << " mask=" << (o.mask.defined() ? o.mask.str() : "none"));
  Generator gen = testing::test_generator();
  Tensor q = testing::random_tensor({n.B, n.H, n.Sq, n.D}, gen, -2.f, 2.f);
  Tensor k = testing::random_tensor({n.B, n.H, n.Sk, n.D}, gen);
  Tensor v = testing::random_tensor({n.B, n.H, n.Sk, n.Dv}, gen);
  Tensor dout = testing::random_tensor({n.B, n.H, n.Sq, n.Dv}, gen);
  q.set_requires_grad(o.grads[0]);
  k.set_requires_grad(o.grads[1]);
  v.set_requires_grad(o.grads[2]);

  AttentionOptions opt;
  opt.causal = o.causal;
  opt.scale = o.scale;
  const double scale = o.scale != 0 ? o.scale : 1.0 / std::sqrt(static_cast<double>(n.D));
  Tensor out = scaled_dot_product_attention(q, k, v, o.mask, opt);
  const Reference ref = reference_attention(n, q, k, v, o.mask, o.causal, scale, dout);

  ASSERT_EQ(out.shape(), (Shape{n.B, n.H, n.Sq, n.Dv}));
  EXPECT_TRUE(close_to_reference(out, ref.out)) << "output";
  out.backward(dout);
  const Tensor* ins[3] = {&q, &k, &v};
  const std::vector<double>* refs[3] = {&ref.dq, &ref.dk, &ref.dv};
  const char* names[3] = {"dq", "dk", "dv"};
  for (int t = 0; t < 3; ++t) {
    if (!o.grads[t]) {
      EXPECT_FALSE(ins[t]->grad().defined()) << names[t] << " computed for an input that needs none";
      continue;
    }
    ASSERT_TRUE(ins[t]->grad().defined()) << names[t];
    EXPECT_EQ(ins[t]->grad().shape(), ins[t]->shape()) << names[t];
    EXPECT_TRUE(close_to_reference(ins[t]->grad(), *refs[t])) << names[t];
  }
}

TEST(Attention, MatchesFloat64ReferenceWithoutMask) {
  const Dims dims[] = {
      {1, 1, 1, 1, 1, 1},     {2, 3, 7, 7, 8, 8},     {1, 2, 7, 13, 32, 16},   {2, 1, 13, 7, 80, 80},
      {1, 2, 64, 64, 64, 64}, {1, 2, 197, 197, 64, 64}, {1, 1, 197, 65, 32, 8}, {1, 1, 1, 197, 8, 8},
      {1, 1, 65, 1, 1, 3},
  };
  for (const Dims& n : dims) check_case(n, {});
}

TEST(Attention, CausalMatchesReference) {
  const Dims dims[] = {{1, 1, 1, 1, 8, 8},   {2, 2, 7, 7, 8, 8},      {1, 1, 7, 13, 32, 16},
                       {1, 2, 13, 7, 8, 4},  {1, 1, 197, 197, 64, 64}, {1, 1, 130, 70, 8, 8}};
  CheckOptions o;
  o.causal = true;
  for (const Dims& n : dims) check_case(n, o);
}

TEST(Attention, CustomScale) {
  CheckOptions o;
  o.scale = 0.37;
  check_case({2, 1, 9, 11, 8, 5}, o);
}

TEST(Attention, AdditiveMaskBroadcasts) {
  Generator gen = testing::test_generator();
  const Dims n{2, 3, 7, 70, 8, 8};
  // Each broadcast shape of (B, H, Sq, Sk) = (2, 3, 7, 70), some entries -inf.
  const Shape shapes[] = {{n.Sq, n.Sk}, {n.B, 1, 1, n.Sk}, {1, n.H, n.Sq, 1}, {n.Sk}, {n.B, n.H, n.Sq, n.Sk}, {}};
  for (const Shape& s : shapes) {
    Tensor mask = testing::random_tensor(s, gen, -3.f, 3.f);
    float* m = mask.data<float>();
    for (int64_t i = 0; i < mask.numel(); i += 5) m[i] = -std::numeric_limits<float>::infinity();
    if (mask.numel() == 1) m[0] = 0.5f;  // a scalar mask of -inf would mask everything
    CheckOptions o;
    o.mask = mask;
    check_case(n, o);
    o.causal = true;
    check_case(n, o);
  }
}

TEST(Attention, AdditiveMaskWithArbitraryStrides) {
  Generator gen = testing::test_generator();
  const Dims n{2, 2, 13, 66, 8, 8};
  // (Sq, Sk) stored transposed: element (i, j) at j * Sq + i.
  Tensor dense = testing::random_tensor({n.Sq, n.Sk}, gen, -2.f, 2.f);
  Tensor transposed = Tensor::empty_strided({n.Sq, n.Sk}, {1, n.Sq});
  transposed.copy_(dense);
  ASSERT_FALSE(transposed.is_contiguous());
  CheckOptions o;
  o.mask = transposed;
  check_case(n, o);

  // An expanded view: the full (B, H, Sq, Sk) shape over one (Sq, Sk) plane (strides 0, 0, Sk, 1).
  Tensor expanded = Tensor::empty_strided({n.B, n.H, n.Sq, n.Sk}, {0, 0, n.Sk, 1});
  std::vector<float> plane = dense.to_vector();
  std::copy(plane.begin(), plane.end(), expanded.data<float>());
  o.mask = expanded;
  check_case(n, o);
}

// Builds a bool keep-mask of `shape` with random drops, then drops every key
// of query row `dead_row` (through all batches/heads the mask covers).
Tensor bool_mask(const Shape& shape, Generator& gen, int64_t dead_row) {
  std::vector<float> u = testing::random_tensor(shape, gen, 0.f, 1.f).to_vector();
  const int64_t Sk = shape.back(), Sq = shape[shape.size() - 2];
  for (size_t i = 0; i < u.size(); ++i) {
    const int64_t row = static_cast<int64_t>(i) / Sk % Sq;
    u[i] = (row != dead_row && u[i] > 0.3f) ? 1.f : 0.f;
  }
  return Tensor::from_vector(u, shape, DType::boolean);
}

TEST(Attention, BoolMaskWithFullyMaskedRowGivesZerosNotNaN) {
  Generator gen = testing::test_generator();
  const Dims dims[] = {{2, 2, 7, 9, 8, 8}, {1, 2, 197, 197, 64, 64}, {1, 1, 70, 130, 8, 16}};
  for (const Dims& n : dims) {
    const int64_t dead = n.Sq / 2;
    Tensor mask = bool_mask({n.B, 1, n.Sq, n.Sk}, gen, dead);
    for (bool causal : {false, true}) {
      CheckOptions o;
      o.mask = mask;
      o.causal = causal;
      check_case(n, o);
    }

    // The dead row itself: output exactly zero, dq exactly zero, nothing NaN anywhere.
    Tensor q = testing::random_tensor({n.B, n.H, n.Sq, n.D}, gen).set_requires_grad(true);
    Tensor k = testing::random_tensor({n.B, n.H, n.Sk, n.D}, gen).set_requires_grad(true);
    Tensor v = testing::random_tensor({n.B, n.H, n.Sk, n.Dv}, gen).set_requires_grad(true);
    Tensor out = scaled_dot_product_attention(q, k, v, mask);
    out.backward(testing::random_tensor(out.shape(), gen));
    const std::vector<float> o = out.to_vector(), dq = q.grad().to_vector();
    for (int64_t bh = 0; bh < n.B * n.H; ++bh) {
      for (int64_t e = 0; e < n.Dv; ++e) EXPECT_EQ(o[(bh * n.Sq + dead) * n.Dv + e], 0.f);
      for (int64_t d = 0; d < n.D; ++d) EXPECT_EQ(dq[(bh * n.Sq + dead) * n.D + d], 0.f);
    }
    for (const Tensor& t : {out, q.grad(), k.grad(), v.grad()}) {
      for (float x : t.to_vector()) ASSERT_FALSE(std::isnan(x));
    }
  }
}

TEST(Attention, AdditiveNegInfRowAndZeroKeysGiveZeros) {
  Generator gen = testing::test_generator();
  const Dims n{1, 2, 5, 67, 8, 8};
  Tensor mask = testing::random_tensor({n.Sq, n.Sk}, gen);
  float* m = mask.data<float>();
  for (int64_t j = 0; j < n.Sk; ++j) m[3 * n.Sk + j] = -std::numeric_limits<float>::infinity();
  CheckOptions o;
  o.mask = mask;
  check_case(n, o);
  // No keys at all: every row is fully masked.
  check_case({1, 2, 5, 0, 8, 8}, {});
}

// Sequences longer than one tile (kAttentionBlockQ x kAttentionBlockK) and
// not multiples of it: the online softmax rescales across key tiles, and the
// last query and key tiles are partial.
TEST(Attention, CrossesTilesAtOddLengths) {
  static_assert(kernels::cpu::kAttentionBlockK < 1000 && kernels::cpu::kAttentionBlockQ < 1000,
                "the lengths below must span several tiles");
  const Dims dims[] = {{1, 1, 1000, 1000, 16, 8}, {1, 2, 1, 1000, 8, 8}, {1, 1, 1000, 7, 8, 4},
                       {2, 1, 197, 1000, 8, 16},  {1, 1, 1000, 1, 4, 4}};
  for (const Dims& n : dims) {
    check_case(n, {});
    // (Causal with one query or one key leaves every row one key: dq and dk
    // are then exactly zero and f32 rounding has no tolerance to hide in.)
    if (n.Sq == 1 || n.Sk == 1) continue;
    CheckOptions o;
    o.causal = true;
    check_case(n, o);
  }
  // One (b, h) with several key tiles: the backward splits over key tiles
  // (per-thread dQ copies); frozen inputs skip their part of it.
  for (std::vector<bool> g : {std::vector<bool>{true, false, false}, {false, true, false}, {false, false, true}}) {
    CheckOptions o;
    o.grads = g;
    check_case({1, 1, 300, 1000, 16, 8}, o);
  }
}

// A row whose first key tile is entirely -inf but later tiles are not (the
// online softmax starts from a -inf max), another hidden except in the last
// tile, and one fully masked row, with Sk spanning several key tiles.
TEST(Attention, MaskHidesWholeKeyTiles) {
  Generator gen = testing::test_generator();
  const Dims n{1, 2, 9, 1000, 8, 8};
  const float inf = std::numeric_limits<float>::infinity();
  Tensor mask = testing::random_tensor({n.Sq, n.Sk}, gen, -2.f, 2.f);
  float* m = mask.data<float>();
  for (int64_t j = 0; j < 600; ++j) m[1 * n.Sk + j] = -inf;
  for (int64_t j = 0; j < n.Sk - 3; ++j) m[4 * n.Sk + j] = -inf;
  for (int64_t j = 0; j < n.Sk; ++j) m[7 * n.Sk + j] = -inf;
  CheckOptions o;
  o.mask = mask;
  check_case(n, o);
}

TEST(Attention, NonContiguousInputs) {
  Generator gen = testing::test_generator();
  const Dims n{2, 3, 11, 9, 8, 4};
  // q and k as (B, S, H, D) in memory viewed as (B, H, S, D), as a head split produces.
  auto bshd = [&](int64_t S, int64_t D) {
    Tensor dense = testing::random_tensor({n.B, n.H, S, D}, gen);
    Tensor view = Tensor::empty_strided({n.B, n.H, S, D}, {S * n.H * D, D, n.H * D, 1});
    view.copy_(dense);
    return view;
  };
  Tensor q = bshd(n.Sq, n.D).set_requires_grad(true);
  Tensor k = bshd(n.Sk, n.D).set_requires_grad(true);
  Tensor v = testing::random_tensor({n.B, n.H, n.Sk, n.Dv}, gen).set_requires_grad(true);
  ASSERT_FALSE(q.is_contiguous());
  Tensor dout = testing::random_tensor({n.B, n.H, n.Sq, n.Dv}, gen);
  Tensor out = scaled_dot_product_attention(q, k, v);
  const Reference ref = reference_attention(n, q, k, v, Tensor(), false, 1.0 / std::sqrt(8.0), dout);
  EXPECT_TRUE(close_to_reference(out, ref.out));
  // An incoming gradient with odd strides as well.
  Tensor g = Tensor::empty_strided(dout.shape(), {n.Dv, n.B * n.Dv, n.B * n.H * n.Dv, 1});
  g.copy_(dout);
  out.backward(g);
  EXPECT_TRUE(close_to_reference(q.grad(), ref.dq));
  EXPECT_TRUE(close_to_reference(k.grad(), ref.dk));
  EXPECT_TRUE(close_to_reference(v.grad(), ref.dv));
}

TEST(Attention, FrozenInputsGetNoGradient) {
  const Dims n{1, 2, 70, 66, 16, 8};
  for (std::vector<bool> g : {std::vector<bool>{false, true, false}, {false, false, true}, {true, false, false},
                              {false, true, true}}) {
    CheckOptions o;
    o.grads = g;
    o.causal = true;
    check_case(n, o);
  }
}

TEST(Attention, NoGradModeRecordsNothing) {
  Generator gen = testing::test_generator();
  Tensor q = testing::random_tensor({1, 1, 3, 4}, gen).set_requires_grad(true);
  Tensor k = testing::random_tensor({1, 1, 5, 4}, gen);
  Tensor v = testing::random_tensor({1, 1, 5, 2}, gen);
  NoGradGuard no_grad;
  Tensor out = scaled_dot_product_attention(q, k, v);
  EXPECT_FALSE(out.requires_grad());
}

TEST(Attention, NaNInputPropagatesInsteadOfPassingForMasked) {
  Generator gen = testing::test_generator();
  Tensor q = testing::random_tensor({1, 1, 3, 4}, gen);
  Tensor k = testing::random_tensor({1, 1, 70, 4}, gen);
  Tensor v = testing::random_tensor({1, 1, 70, 2}, gen);
  q.data<float>()[4] = std::nanf("");  // row 1
  const std::vector<float> o = scaled_dot_product_attention(q, k, v).to_vector();
  EXPECT_TRUE(std::isnan(o[2]) && std::isnan(o[3])) << o[2] << " " << o[3];
  EXPECT_FALSE(std::isnan(o[0]) || std::isnan(o[4]));
}

TEST(Attention, NaNAfterMaskedKeyTilesIsNotTakenForAMaskedRow) {
  Generator gen = testing::test_generator();
  const int64_t Sk = 1000;
  Tensor q = testing::random_tensor({1, 1, 2, 4}, gen);
  Tensor k = testing::random_tensor({1, 1, Sk, 4}, gen);
  Tensor v = testing::random_tensor({1, 1, Sk, 2}, gen);
  k.data<float>()[(Sk - 1) * 4] = std::nanf("");  // the last key: a NaN score in every row
  // Row 0 sees only the NaN key; row 1 sees every key.
  Tensor mask = Tensor::zeros({2, Sk});
  for (int64_t j = 0; j < Sk - 1; ++j) mask.data<float>()[j] = -std::numeric_limits<float>::infinity();
  const std::vector<float> o = scaled_dot_product_attention(q, k, v, mask).to_vector();
  for (float x : o) EXPECT_TRUE(std::isnan(x)) << x;
}

TEST(Attention, KernelLogSumExpMatchesReference) {
  Generator gen = testing::test_generator();
  const Dims n{2, 1, 70, 131, 16, 8};
  Tensor q = testing::random_tensor({n.B, n.H, n.Sq, n.D}, gen, -2.f, 2.f);
  Tensor k = testing::random_tensor({n.B, n.H, n.Sk, n.D}, gen);
  Tensor v = testing::random_tensor({n.B, n.H, n.Sk, n.Dv}, gen);
  Tensor mask = bool_mask({n.Sq, n.Sk}, gen, 5);
  std::vector<float> additive(n.Sq * n.Sk);
  const std::vector<float> keep = mask.to_vector();
  for (size_t i = 0; i < keep.size(); ++i) additive[i] = keep[i] != 0 ? 0.f : -std::numeric_limits<float>::infinity();

  kernels::cpu::AttentionParams p;
  p.batch = n.B;
  p.heads = n.H;
  p.seq_q = n.Sq;
  p.seq_k = n.Sk;
  p.head_dim = n.D;
  p.head_dim_v = n.Dv;
  p.scale = 0.25f;
  p.causal = true;
  p.mask_stride_q = n.Sk;
  p.mask_stride_k = 1;
  std::vector<float> out(n.B * n.H * n.Sq * n.Dv, std::nanf("")), lse(n.B * n.H * n.Sq, std::nanf(""));
  kernels::cpu::attention_forward(p, q.data<float>(), k.data<float>(), v.data<float>(), additive.data(), out.data(),
                                  lse.data());
  const Reference ref = reference_attention(n, q, k, v, mask, true, 0.25, Tensor());
  EXPECT_TRUE(testing::all_close(out, ref.out, 1e-4, 1e-5));
  for (size_t i = 0; i < lse.size(); ++i) {
    if (ref.lse[i] == -kInf) {
      EXPECT_EQ(lse[i], -std::numeric_limits<float>::infinity()) << "row " << i;
    } else {
      EXPECT_NEAR(lse[i], ref.lse[i], 1e-5 * (1 + std::fabs(ref.lse[i]))) << "row " << i;
    }
  }
}

}  // namespace
}  // namespace graft
