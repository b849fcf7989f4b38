// CUDA elementwise kernels (kernels/cuda/elementwise.h) against their CPU twins
// (kernels/cpu/elementwise.h, elementwise_extra.h) on the same dtype-rounded
// inputs: every unary op forward and backward, binary ops over broadcasting
// patterns (same shape, scalar, row/bias, channels-last bias, column, general
// N-d with a transposed operand), pow, where, the broadcast backward by
// composition with the reduce kernels; odd sizes, misaligned pointers, each
// dtype. Bad arguments throw before any CUDA call (those tests run anywhere).
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/elementwise_extra.h"
#include "kernels/cpu/reduce.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/reduce.h"
#include "tests/cuda/ew_test_util.h"

namespace graft::testing {
namespace {

namespace kc = kernels::cpu;
namespace kg = kernels::cuda;
using kernels::StridedIter;

const int64_t kSizes[] = {1, 3, 7, 33, 1000, 1025, 4097};

struct UnaryCase {
  kc::UnaryOp op;
  float alpha, beta;
  float lo, hi;  // input range
  const char* name;
};

const UnaryCase kUnaryCases[] = {
    {kc::UnaryOp::neg, 0, 0, -4, 4, "neg"},
    {kc::UnaryOp::add_scalar, 1.5f, 0, -4, 4, "add_scalar"},
    {kc::UnaryOp::mul_scalar, -0.75f, 0, -4, 4, "mul_scalar"},
    {kc::UnaryOp::pow_scalar, 2.f, 0, -3, 3, "pow_scalar(2)"},
    {kc::UnaryOp::pow_scalar, 3.f, 0, -3, 3, "pow_scalar(3)"},
    {kc::UnaryOp::pow_scalar, -1.f, 0, 0.2f, 3, "pow_scalar(-1)"},
    {kc::UnaryOp::pow_scalar, 0.5f, 0, 0.2f, 3, "pow_scalar(0.5)"},
    {kc::UnaryOp::pow_scalar, 2.5f, 0, 0.2f, 3, "pow_scalar(2.5)"},
    {kc::UnaryOp::exp, 0, 0, -4, 4, "exp"},
    {kc::UnaryOp::log, 0, 0, 0.1f, 4, "log"},
    {kc::UnaryOp::sqrt, 0, 0, 0.1f, 4, "sqrt"},
    {kc::UnaryOp::relu, 0, 0, -4, 4, "relu"},
    {kc::UnaryOp::clip, 0.f, 6.f, -3, 9, "clip(relu6)"},
    {kc::UnaryOp::clip, -1.f, 0.5f, -3, 3, "clip(-1,0.5)"},
    {kc::UnaryOp::sigmoid, 0, 0, -8, 8, "sigmoid"},
    {kc::UnaryOp::silu, 0, 0, -8, 8, "silu"},
    {kc::UnaryOp::gelu_erf, 0, 0, -6, 6, "gelu_erf"},
    {kc::UnaryOp::gelu_tanh, 0, 0, -6, 6, "gelu_tanh"},
    {kc::UnaryOp::hardswish, 0, 0, -5, 5, "hardswish"},
    {kc::UnaryOp::hardsigmoid, 0, 0, -5, 5, "hardsigmoid"},
    {kc::UnaryOp::tanh, 0, 0, -4, 4, "tanh"},
    {kc::UnaryOp::erf, 0, 0, -3, 3, "erf"},
};

std::string tag(const char* what, DataType dt, int64_t n, int shift) {
  return std::string(what) + " " + kg::dtype_name(dt) + " n=" + std::to_string(n) + " shift=" + std::to_string(shift);
}

TEST(CudaElementwise, UnaryForwardMatchesTwin) {
  REQUIRE_GPU();
  uint32_t seed = 1;
  for (const UnaryCase& c : kUnaryCases) {
    const kc::UnaryParams p{c.op, c.alpha, c.beta};
    for (DataType dt : all_dtypes()) {
      for (int64_t n : kSizes) {
        for (int shift : {0, 1}) {
          const std::vector<float> x = round_to(random_vector(n, c.lo, c.hi, seed++), dt);
          std::vector<float> want(n);
          kc::unary_forward(p, n, x.data(), want.data());
          GuardedArray dx(x, dt, shift), dy(n, dt, shift);
          kg::unary_forward(p, dt, n, dx.data(), dy.data(), nullptr);
          CUDA_OK(cudaDeviceSynchronize());
          // The twin's result stored in dt, as the kernel stores it (tiny gelu values are f16 subnormals).
          EXPECT_TRUE(close_to_twin(dy.download(), round_to(want, dt), default_tolerance(dt), tag(c.name, dt, n, shift)));
        }
      }
    }
  }
}

TEST(CudaElementwise, UnaryForwardInPlace) {
  REQUIRE_GPU();
  const int64_t n = 4097;
  for (DataType dt : all_dtypes()) {
    const std::vector<float> x = round_to(random_vector(n, -4, 4, 77), dt);
    const kc::UnaryParams p{kc::UnaryOp::silu, 0, 0};
    std::vector<float> want(n);
    kc::unary_forward(p, n, x.data(), want.data());
    GuardedArray d(x, dt);
    kg::unary_forward(p, dt, n, d.data(), d.data(), nullptr);
    CUDA_OK(cudaDeviceSynchronize());
    EXPECT_TRUE(close_to_twin(d.download(), want, default_tolerance(dt), tag("silu in place", dt, n, 0)));
  }
}

TEST(CudaElementwise, UnaryBackwardMatchesTwin) {
  REQUIRE_GPU();
  uint32_t seed = 1000;
  for (const UnaryCase& c : kUnaryCases) {
    const kc::UnaryParams p{c.op, c.alpha, c.beta};
    const kc::UnarySaved what = kg::unary_saves(c.op);
    ASSERT_EQ(what, kc::unary_backward_saves(c.op)) << c.name;
    for (DataType dt : all_dtypes()) {
      for (int64_t n : kSizes) {
        for (int shift : {0, 1}) {
          const std::vector<float> x = round_to(random_vector(n, c.lo, c.hi, seed++), dt);
          const std::vector<float> gy = round_to(random_vector(n, -2, 2, seed++), dt);
          std::vector<float> saved;
          if (what == kc::UnarySaved::input) saved = x;
          if (what == kc::UnarySaved::output) {
            std::vector<float> y(n);
            kc::unary_forward(p, n, x.data(), y.data());
            saved = round_to(y, dt);  // what the GPU forward would have stored
          }
          std::vector<float> want(n);
          kc::unary_backward(p, n, saved.empty() ? nullptr : saved.data(), gy.data(), want.data());
          GuardedArray ds(saved.empty() ? std::vector<float>(n, 0.f) : saved, dt, shift);
          GuardedArray dgy(gy, dt, shift), dgx(n, dt, shift);
          kg::unary_backward(p, dt, n, saved.empty() ? nullptr : ds.data(), dgy.data(), dgx.data(), nullptr);
          CUDA_OK(cudaDeviceSynchronize());
          EXPECT_TRUE(close_to_twin(dgx.download(), round_to(want, dt), default_tolerance(dt), tag(c.name, dt, n, shift)));
        }
      }
    }
  }
}

// ---- binary ops --------------------------------------------------------------------------------

// An iteration over `shape` with full-rank strides per operand (0 = broadcast).
struct BinaryCase {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<int64_t> out, a, b;  // strides
};

template <int N>
StridedIter<N> make_iter(const std::vector<int64_t>& shape, const std::vector<std::vector<int64_t>>& strides) {
  StridedIter<N> it;
  it.ndim = static_cast<int>(shape.size());
  for (int d = 0; d < it.ndim; ++d) {
    it.size[d] = shape[d];
    for (int k = 0; k < N; ++k) it.stride[k][d] = strides[k][d];
  }
  return it;
}

std::vector<BinaryCase> binary_cases() {
  std::vector<BinaryCase> cs;
  for (int64_t n : kSizes) {
    const std::vector<int64_t> s{n};
    cs.push_back({"same n=" + std::to_string(n), s, {1}, {1}, {1}});
    cs.push_back({"b scalar n=" + std::to_string(n), s, {1}, {1}, {0}});
    cs.push_back({"a scalar n=" + std::to_string(n), s, {1}, {0}, {1}});
  }
  for (int64_t M : {1, 7, 100}) {
    for (int64_t K : {1, 3, 8, 33, 64}) {
      const std::vector<int64_t> s{M, K};
      const std::string mk = std::to_string(M) + "x" + std::to_string(K);
      cs.push_back({"row bias " + mk, s, {K, 1}, {K, 1}, {0, 1}});
      cs.push_back({"row first " + mk, s, {K, 1}, {0, 1}, {K, 1}});
      cs.push_back({"column " + mk, s, {K, 1}, {K, 1}, {1, 0}});
      cs.push_back({"outer product " + mk, s, {K, 1}, {1, 0}, {0, 1}});
    }
  }
  for (std::vector<int64_t> s : {std::vector<int64_t>{2, 3, 5, 5}, {3, 64, 7, 7}, {1, 33, 3, 2}}) {
    const std::vector<int64_t> cl = channels_last(s);
    const std::string sh = std::to_string(s[0]) + "x" + std::to_string(s[1]) + "x" + std::to_string(s[2]) + "x" +
                           std::to_string(s[3]);
    cs.push_back({"channels-last + bias " + sh, s, cl, cl, {0, 1, 0, 0}});
    cs.push_back({"channels-last * channels-last " + sh, s, cl, cl, cl});
    cs.push_back({"row-major + channels-last " + sh, s, row_major(s), row_major(s), cl});
  }
  // (2, 1, 5) + (3, 1) -> (2, 3, 5); a transposed (5, 4) view against a row.
  cs.push_back({"general 2x3x5", {2, 3, 5}, row_major({2, 3, 5}), {5, 0, 1}, {0, 1, 0}});
  cs.push_back({"transposed a", {4, 5}, {5, 1}, {1, 4}, {0, 1}});
  cs.push_back({"scalar", {}, {}, {}, {}});
  cs.push_back({"empty", {3, 0, 2}, {0, 2, 1}, {0, 2, 1}, {0, 0, 1}});
  return cs;
}

const kc::BinaryOp kBinaryOps[] = {kc::BinaryOp::add, kc::BinaryOp::sub, kc::BinaryOp::mul, kc::BinaryOp::div};
const char* const kBinaryNames[] = {"add", "sub", "mul", "div"};

// b-like values away from 0 (div), either sign.
std::vector<float> away_from_zero(size_t n, uint32_t seed) {
  std::vector<float> v = random_vector(n, 0.5f, 2.f, seed);
  const std::vector<float> sign = random_vector(n, -1, 1, seed + 1);
  for (size_t i = 0; i < n; ++i) v[i] = sign[i] < 0 ? -v[i] : v[i];
  return v;
}

TEST(CudaElementwise, BinaryForwardMatchesTwin) {
  REQUIRE_GPU();
  uint32_t seed = 5000;
  for (const BinaryCase& c : binary_cases()) {
    const size_t no = storage(c.shape, c.out), na = storage(c.shape, c.a), nb = storage(c.shape, c.b);
    const StridedIter<3> it = make_iter<3>(c.shape, {c.out, c.a, c.b});
    for (int o = 0; o < 4; ++o) {
      for (DataType dt : all_dtypes()) {
        for (int shift : {0, 1}) {
          const std::vector<float> a = round_to(random_vector(na, -3, 3, seed++), dt);
          const std::vector<float> b = round_to(away_from_zero(nb, seed++), dt);
          std::vector<float> want(no, 0.f);
          if (no > 0) kc::binary_forward(kBinaryOps[o], it, want.data(), a.data(), b.data());
          GuardedArray da(a, dt, shift), db(b, dt, shift), dout(no, dt, shift);
          kg::binary_forward(kBinaryOps[o], dt, it, dout.data(), da.data(), db.data(), nullptr);
          CUDA_OK(cudaDeviceSynchronize());
          std::vector<float> got = dout.download();
          if (no == 0) continue;
          EXPECT_TRUE(close_to_twin(got, want, default_tolerance(dt),
                                    c.name + " " + kBinaryNames[o] + " " + kg::dtype_name(dt) +
                                        " shift=" + std::to_string(shift)));
        }
      }
    }
  }
}

TEST(CudaElementwise, BinaryForwardFlatMatchesTwin) {
  REQUIRE_GPU();
  uint32_t seed = 9000;
  for (int64_t n : kSizes) {
    for (int o = 0; o < 4; ++o) {
      for (DataType dt : all_dtypes()) {
        for (int shift : {0, 1}) {
          const std::vector<float> a = round_to(random_vector(n, -3, 3, seed++), dt);
          const std::vector<float> b = round_to(away_from_zero(n, seed++), dt);
          std::vector<float> want(n);
          kc::binary_forward_flat(kBinaryOps[o], n, want.data(), a.data(), b.data());
          GuardedArray da(a, dt, shift), db(b, dt, shift), dout(n, dt, shift);
          kg::binary_forward_flat(kBinaryOps[o], dt, n, dout.data(), da.data(), db.data(), nullptr);
          CUDA_OK(cudaDeviceSynchronize());
          EXPECT_TRUE(close_to_twin(dout.download(), want, default_tolerance(dt), tag(kBinaryNames[o], dt, n, shift)));
        }
      }
    }
  }
}

// Misaligned operands against each other: out aligned, a shifted by one, b by two.
TEST(CudaElementwise, BinaryMixedAlignment) {
  REQUIRE_GPU();
  const int64_t n = 1025;
  for (DataType dt : all_dtypes()) {
    const std::vector<float> a = round_to(random_vector(n, -3, 3, 41), dt);
    const std::vector<float> b = round_to(random_vector(n, -3, 3, 42), dt);
    std::vector<float> want(n);
    kc::binary_forward_flat(kc::BinaryOp::mul, n, want.data(), a.data(), b.data());
    GuardedArray da(a, dt, 1), db(b, dt, 2), dout(n, dt, 0);
    kg::binary_forward_flat(kc::BinaryOp::mul, dt, n, dout.data(), da.data(), db.data(), nullptr);
    CUDA_OK(cudaDeviceSynchronize());
    EXPECT_TRUE(close_to_twin(dout.download(), want, default_tolerance(dt), tag("mul mixed alignment", dt, n, 1)));
  }
}

// ---- pow and where ---------------------------------------------------------------------------------

TEST(CudaElementwise, PowForwardAndBackwardMatchTwin) {
  REQUIRE_GPU();
  uint32_t seed = 12000;
  const std::vector<int64_t> shape{7, 33};
  // a full, b a row (7x33 ^ 33), and both full.
  for (const std::vector<int64_t>& bs : {std::vector<int64_t>{0, 1}, std::vector<int64_t>{33, 1}}) {
    const std::vector<int64_t> os = row_major(shape);
    const size_t n = 7 * 33, nb = storage(shape, bs);
    for (DataType dt : all_dtypes()) {
      const std::vector<float> a = round_to(random_vector(n, 0.2f, 3.f, seed++), dt);
      std::vector<float> b = round_to(random_vector(nb, -2.f, 2.f, seed++), dt);
      b[0] = 0.f;  // the b == 0 branch of the base gradient
      const std::vector<float> g = round_to(random_vector(n, -1, 1, seed++), dt);
      const StridedIter<3> it3 = make_iter<3>(shape, {os, os, bs});
      std::vector<float> y(n);
      kc::pow_forward(it3, y.data(), a.data(), b.data());
      GuardedArray da(a, dt), db(b, dt), dg(g, dt), dy(n, dt);
      kg::pow_forward(dt, it3, dy.data(), da.data(), db.data(), nullptr);
      CUDA_OK(cudaDeviceSynchronize());
      const std::string what = std::string("pow ") + kg::dtype_name(dt) + (bs[0] == 0 ? " row" : " full");
      EXPECT_TRUE(close_to_twin(dy.download(), y, default_tolerance(dt), what + " forward"));

      // Base gradient, out-shaped (operands ga, g, a, b).
      std::vector<float> ga(n);
      kc::pow_backward_base(make_iter<4>(shape, {os, os, os, bs}), ga.data(), g.data(), a.data(), b.data());
      GuardedArray dga(n, dt);
      kg::pow_backward_base(dt, make_iter<4>(shape, {os, os, os, bs}), dga.data(), dg.data(), da.data(), db.data(),
                            nullptr);
      // Exponent gradient before any reduction, out-shaped (operands gb, g, a, y).
      const std::vector<float> yr = round_to(y, dt);
      std::vector<float> gb(n);
      kc::pow_backward_exponent(make_iter<4>(shape, {os, os, os, os}), gb.data(), g.data(), a.data(), yr.data());
      GuardedArray dyr(yr, dt), dgb(n, dt);
      kg::pow_backward_exponent(dt, make_iter<4>(shape, {os, os, os, os}), dgb.data(), dg.data(), da.data(),
                                dyr.data(), nullptr);
      CUDA_OK(cudaDeviceSynchronize());
      EXPECT_TRUE(close_to_twin(dga.download(), ga, default_tolerance(dt), what + " base grad"));
      EXPECT_TRUE(close_to_twin(dgb.download(), gb, default_tolerance(dt), what + " exponent grad"));
    }
  }
}

TEST(CudaElementwise, WhereMatchesTwin) {
  REQUIRE_GPU();
  // (5, 6) out; cond a column (5, 1), a full, b a row (6).
  const std::vector<int64_t> shape{5, 6}, os = row_major(shape), cs{1, 0}, bs{0, 1};
  std::vector<uint8_t> cond{1, 0, 3, 0, 1};
  for (DataType dt : all_dtypes()) {
    const std::vector<float> a = round_to(random_vector(30, -2, 2, 3), dt);
    const std::vector<float> b = round_to(random_vector(6, -2, 2, 4), dt);
    std::vector<float> want(30);
    const StridedIter<4> it = make_iter<4>(shape, {os, cs, os, bs});
    kc::where_forward(it, want.data(), cond.data(), a.data(), b.data());
    uint8_t* dc = nullptr;
    CUDA_OK(cudaMalloc(&dc, cond.size()));
    CUDA_OK(cudaMemcpy(dc, cond.data(), cond.size(), cudaMemcpyHostToDevice));
    GuardedArray da(a, dt), db(b, dt), dout(30, dt);
    kg::where_forward(dt, it, dout.data(), dc, da.data(), db.data(), nullptr);
    CUDA_OK(cudaDeviceSynchronize());
    cudaFree(dc);
    EXPECT_TRUE(close_to_twin(dout.download(), want, default_tolerance(dt), std::string("where ") + kg::dtype_name(dt)));
  }
}

// ---- the broadcast backward, composed as the engine composes it ------------------------------------

// c = a * b with a (M, K) and b (K): gb = sum_to(g * a) -> (K), ga = g * b.
// And channels-last x + bias (1, C, 1, 1): gbias = sum_to(g) over N, H, W.
TEST(CudaElementwise, BinaryBackwardByComposition) {
  REQUIRE_GPU();
  for (DataType dt : all_dtypes()) {
    const int64_t M = 1000, K = 33;
    const std::vector<int64_t> shape{M, K}, os = row_major(shape), row{0, 1};
    const std::vector<float> a = round_to(random_vector(M * K, -1, 1, 7), dt);
    const std::vector<float> b = round_to(random_vector(K, -1, 1, 8), dt);
    const std::vector<float> g = round_to(random_vector(M * K, -1, 1, 9), dt);
    // CPU: the product, then the sum over M.
    std::vector<float> ga(M * K), ga_b(M * K), gb(K);
    kc::binary_forward(kc::BinaryOp::mul, make_iter<3>(shape, {os, os, row}), ga.data(), g.data(), b.data());
    kc::binary_forward_flat(kc::BinaryOp::mul, M * K, ga_b.data(), g.data(), a.data());
    const std::vector<float> ga_b_r = round_to(ga_b, dt);  // the GPU keeps the product in dt
    kc::ReduceParams rp;
    const int64_t b_size[1] = {K};
    ASSERT_TRUE(kg::sum_to_params(2, shape.data(), os.data(), 1, b_size, 1.f, &rp));
    kc::sum_forward(rp, ga_b_r.data(), gb.data());
    // GPU.
    GuardedArray da(a, dt), db(b, dt), dg(g, dt), dga(M * K, dt), dprod(M * K, dt), dgb(K, DataType::f32);
    kg::binary_forward(kc::BinaryOp::mul, dt, make_iter<3>(shape, {os, os, row}), dga.data(), dg.data(), db.data(),
                       nullptr);
    kg::binary_forward_flat(kc::BinaryOp::mul, dt, M * K, dprod.data(), dg.data(), da.data(), nullptr);
    const size_t ws_bytes = kg::sum_workspace_bytes(rp);
    DeviceArray ws(ws_bytes / 4 + 1);
    kg::sum_forward(rp, dt, dprod.data(), dgb.as<float>(), ws.get(), ws_bytes + 4, nullptr);
    CUDA_OK(cudaDeviceSynchronize());
    const std::string what = std::string("mul backward ") + kg::dtype_name(dt);
    EXPECT_TRUE(close_to_twin(dga.download(), ga, default_tolerance(dt), what + " ga"));
    EXPECT_TRUE(close_to_twin(dgb.download(), gb, 1e-5, what + " gb"));
  }
}

// ---- bad arguments: thrown before any CUDA call, so these run without a GPU -------------------------

TEST(CudaElementwiseArgs, UnaryRejectsBadArguments) {
  float dummy[4] = {};
  const kc::UnaryParams relu{kc::UnaryOp::relu, 0, 0};
  EXPECT_TRUE(throws_naming([&] { kg::unary_forward(relu, DataType::f32, 4, nullptr, dummy, nullptr); },
                            "unary_forward"));
  EXPECT_TRUE(throws_naming([&] { kg::unary_forward(relu, DataType::f32, -1, dummy, dummy, nullptr); },
                            "unary_forward"));
  EXPECT_TRUE(throws_naming([&] { kg::unary_forward(relu, static_cast<DataType>(9), 4, dummy, dummy, nullptr); },
                            "unary_forward"));
  EXPECT_TRUE(throws_naming(
      [&] { kg::unary_forward({static_cast<kc::UnaryOp>(200), 0, 0}, DataType::f32, 4, dummy, dummy, nullptr); },
      "unary_forward"));
  // relu's backward reads the saved output.
  EXPECT_TRUE(throws_naming([&] { kg::unary_backward(relu, DataType::bf16, 4, nullptr, dummy, dummy, nullptr); },
                            "unary_backward"));
  EXPECT_TRUE(throws_naming([&] { kg::unary_backward(relu, DataType::f16, 4, dummy, dummy, nullptr, nullptr); },
                            "unary_backward"));
  // Nothing to do: no error and no CUDA call.
  EXPECT_NO_THROW(kg::unary_forward(relu, DataType::f32, 0, nullptr, nullptr, nullptr));
}

TEST(CudaElementwiseArgs, BinaryRejectsBadArguments) {
  float dummy[4] = {};
  StridedIter<3> it;
  it.ndim = 1;
  it.size[0] = 4;
  it.stride[0][0] = it.stride[1][0] = it.stride[2][0] = 1;
  EXPECT_TRUE(throws_naming([&] { kg::binary_forward(kc::BinaryOp::add, DataType::f32, it, dummy, dummy, nullptr, nullptr); },
                            "binary_forward"));
  StridedIter<3> bad = it;
  bad.ndim = kernels::kMaxDims + 1;
  EXPECT_TRUE(throws_naming([&] { kg::binary_forward(kc::BinaryOp::add, DataType::f32, bad, dummy, dummy, dummy, nullptr); },
                            "binary_forward"));
  bad = it;
  bad.size[0] = -2;
  EXPECT_TRUE(throws_naming([&] { kg::binary_forward(kc::BinaryOp::mul, DataType::f16, bad, dummy, dummy, dummy, nullptr); },
                            "binary_forward"));
  bad = it;
  bad.stride[0][0] = 0;  // four results into one place
  EXPECT_TRUE(throws_naming([&] { kg::binary_forward(kc::BinaryOp::sub, DataType::bf16, bad, dummy, dummy, dummy, nullptr); },
                            "binary_forward"));
  EXPECT_TRUE(throws_naming(
      [&] { kg::binary_forward(static_cast<kc::BinaryOp>(50), DataType::f32, it, dummy, dummy, dummy, nullptr); },
      "binary_forward"));
  EXPECT_TRUE(throws_naming([&] { kg::binary_forward_flat(kc::BinaryOp::div, DataType::f32, 4, dummy, nullptr, dummy, nullptr); },
                            "binary_forward_flat"));
  EXPECT_TRUE(throws_naming([&] { kg::pow_forward(DataType::f32, it, nullptr, dummy, dummy, nullptr); }, "pow_forward"));
  StridedIter<4> it4;
  it4.ndim = 1;
  it4.size[0] = 4;
  for (int k = 0; k < 4; ++k) it4.stride[k][0] = 1;
  EXPECT_TRUE(throws_naming([&] { kg::where_forward(DataType::f32, it4, dummy, nullptr, dummy, dummy, nullptr); },
                            "where_forward"));
  EXPECT_TRUE(throws_naming([&] { kg::pow_backward_base(DataType::f32, it4, dummy, dummy, nullptr, dummy, nullptr); },
                            "pow_backward_base"));
  EXPECT_TRUE(throws_naming([&] { kg::pow_backward_exponent(DataType::f32, it4, dummy, dummy, dummy, nullptr, nullptr); },
                            "pow_backward_exponent"));
}

}  // namespace
}  // namespace graft::testing
