// CUDA cross-entropy (kernels/cuda/loss.h) against the CPU twin on the same
// dtype-rounded logits: per-row losses, statistics, totals and the logits'
// gradient, with and without label smoothing, class weights and ignored rows,
// for class counts below, at and above one block's stride.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/loss.h"
#include "kernels/cuda/loss.h"
#include "tests/cuda/cuda_test_util.h"
#include "tests/cuda/cuda_test_util.h"

namespace graft::testing {
namespace {

namespace kc = kernels::cuda;
namespace kcpu = kernels::cpu;

const DataType kTypes[] = {DataType::f32, DataType::f16, DataType::bf16};

// Losses, statistics and totals are f32 sums over up to c terms in another
// order than the twin's (which sums some terms in double): 3e-5 of the largest.
constexpr double kLossTol = 3e-5;

struct DeviceTargets {
  int64_t* p = nullptr;
  explicit DeviceTargets(const std::vector<int64_t>& t) {
    if (cudaMalloc(&p, std::max<size_t>(1, t.size()) * sizeof(int64_t)) == cudaSuccess)
      cudaMemcpy(p, t.data(), t.size() * sizeof(int64_t), cudaMemcpyHostToDevice);
  }
  ~DeviceTargets() { cudaFree(p); }
};

struct Case {
  int64_t n, c;
  float smoothing;
  bool weighted;
  bool with_ignored;
};

std::string label(const Case& k, DataType t) {
  return std::string(kc::dtype_name(t)) + " n=" + std::to_string(k.n) + " c=" + std::to_string(k.c) +
         " eps=" + std::to_string(k.smoothing) + (k.weighted ? " weighted" : "") + (k.with_ignored ? " ignored" : "");
}

void check_case(const Case& k, DataType t) {
  const std::string what = label(k, t);
  kcpu::CrossEntropyParams p;
  p.n = k.n, p.c = k.c, p.label_smoothing = k.smoothing, p.ignore_index = -100;
  const size_t n = static_cast<size_t>(k.n), c = static_cast<size_t>(k.c);
  const std::vector<float> x = round_to(uniform_values(n * c, -6.0f, 6.0f, 31u + static_cast<unsigned>(c)), t);
  std::mt19937 gen(7u + static_cast<unsigned>(n));
  std::vector<int64_t> tg(n);
  for (size_t i = 0; i < n; ++i) tg[i] = static_cast<int64_t>(gen() % c);
  if (k.with_ignored)
    for (size_t i = 1; i < n; i += 3) tg[i] = p.ignore_index;
  const std::vector<float> w = uniform_values(c, 0.2f, 2.0f, 3u);
  const float* wh = k.weighted ? w.data() : nullptr;

  std::vector<float> want_loss(n), want_stats(2 * n);
  const kcpu::CrossEntropyTotals want_tot = kcpu::cross_entropy_forward(x.data(), tg.data(), wh, want_loss.data(),
                                                                         want_stats.data(), p);

  DeviceArray dx(x, t), dw(w), dloss(n), dstats(2 * n);
  DeviceTargets dt(tg);
  const kc::CrossEntropyTotals tot = kc::cross_entropy_forward(dx.get(), dt.p, k.weighted ? dw.f32() : nullptr,
                                                               dloss.f32(), dstats.f32(), p, t, nullptr);
  EXPECT_TRUE(close_to_twin(dloss.download(), want_loss, kLossTol, "loss " + what));
  EXPECT_TRUE(close_to_twin(dstats.download(), want_stats, kLossTol, "stats " + what));
  EXPECT_NEAR(tot.loss_sum, want_tot.loss_sum, kLossTol * std::max(1.0, std::fabs(want_tot.loss_sum))) << what;
  EXPECT_NEAR(tot.weight_sum, want_tot.weight_sum, 1e-5 * std::max(1.0, want_tot.weight_sum)) << what;

  // Backward: 'mean' (one broadcast value, scale 1 / weight_sum) and 'none' (per row).
  const std::vector<float> gl = uniform_values(n, -1.0f, 1.0f, 77u);
  for (int64_t stride : {0, 1}) {
    const float scale = stride == 0 ? static_cast<float>(1.0 / want_tot.weight_sum) : 1.0f;
    std::vector<float> want_g(n * c);
    kcpu::cross_entropy_backward(x.data(), tg.data(), wh, want_stats.data(), gl.data(), stride, scale, want_g.data(),
                                 p);
    DeviceArray dgl(gl), dg(n * c, t);
    kc::cross_entropy_backward(dx.get(), dt.p, k.weighted ? dw.f32() : nullptr, dstats.f32(), dgl.f32(), stride,
                               scale, dg.get(), p, t, nullptr);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    EXPECT_TRUE(close_to_twin(dg.download(), want_g, default_tolerance(t),
                              "grad " + what + " stride=" + std::to_string(stride)));
  }
}

TEST(CudaCrossEntropy, MatchesTwin) {
  REQUIRE_GPU();
  const Case cases[] = {
      {1, 1, 0.0f, false, false},   {3, 7, 0.0f, false, false},    {5, 33, 0.1f, false, true},
      {16, 1000, 0.0f, true, true}, {16, 1000, 0.1f, true, false}, {4, 1025, 0.2f, false, true},
      {2, 4097, 0.1f, true, true},  {300, 10, 0.1f, false, true},  {64, 130, 1.0f, true, false},
  };
  for (DataType t : kTypes)
    for (const Case& k : cases) check_case(k, t);
}

TEST(CudaCrossEntropy, IgnoreIndexInsideTheClassRange) {
  REQUIRE_GPU();
  // ignore_index 0 is a valid class index: rows with target 0 are ignored.
  kcpu::CrossEntropyParams p;
  p.n = 4, p.c = 5, p.label_smoothing = 0.1f, p.ignore_index = 0;
  const std::vector<float> x = uniform_values(20, -2.0f, 2.0f, 1u);
  const std::vector<int64_t> tg = {0, 3, 0, 4};
  std::vector<float> want_loss(4), want_stats(8);
  const auto want = kcpu::cross_entropy_forward(x.data(), tg.data(), nullptr, want_loss.data(), want_stats.data(), p);
  DeviceArray dx(x), dloss(4), dstats(8);
  DeviceTargets dt(tg);
  const auto got = kc::cross_entropy_forward(dx.get(), dt.p, nullptr, dloss.f32(), dstats.f32(), p, DataType::f32,
                                             nullptr);
  EXPECT_TRUE(close_to_twin(dloss.download(), want_loss, kLossTol, "loss"));
  EXPECT_DOUBLE_EQ(got.weight_sum, 2.0);
  EXPECT_NEAR(got.loss_sum, want.loss_sum, 1e-5);
}

TEST(CudaCrossEntropy, OutOfRangeTargetThrowsNamingTheLauncher) {
  REQUIRE_GPU();
  kcpu::CrossEntropyParams p;
  p.n = 6, p.c = 4;
  const std::vector<float> x = uniform_values(24, -1.0f, 1.0f, 2u);
  for (int64_t bad : {int64_t(4), int64_t(-1), int64_t(1) << 40}) {
    const std::vector<int64_t> tg = {0, 1, 2, 3, bad, 1};
    DeviceArray dx(x), dloss(6), dstats(12);
    DeviceTargets dt(tg);
    try {
      kc::cross_entropy_forward(dx.get(), dt.p, nullptr, dloss.f32(), dstats.f32(), p, DataType::f32, nullptr);
      ADD_FAILURE() << "target " << bad << " accepted";
    } catch (const std::invalid_argument& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("cross_entropy_forward"), std::string::npos) << msg;
      EXPECT_NE(msg.find("row 4"), std::string::npos) << msg;
      EXPECT_NE(msg.find(std::to_string(bad)), std::string::npos) << msg;
    }
  }
}

TEST(CudaCrossEntropy, BadArgumentsNameTheLauncher) {
  float f[8] = {};
  int64_t tg[2] = {0, 0};
  kcpu::CrossEntropyParams p;
  p.n = 2, p.c = 4;
  kcpu::CrossEntropyParams smooth = p;
  smooth.label_smoothing = 1.5f;
  kcpu::CrossEntropyParams empty_classes = p;
  empty_classes.c = 0;
  expect_invalid([&] { kc::cross_entropy_forward(f, tg, nullptr, f, f, smooth, DataType::f32, nullptr); },
                 "cross_entropy_forward", "label_smoothing");
  expect_invalid([&] { kc::cross_entropy_forward(f, tg, nullptr, f, f, empty_classes, DataType::f32, nullptr); },
                 "cross_entropy_forward", "class");
  expect_invalid([&] { kc::cross_entropy_forward(nullptr, tg, nullptr, f, f, p, DataType::bf16, nullptr); },
                 "cross_entropy_forward", "logits");
  expect_invalid([&] { kc::cross_entropy_backward(f, tg, nullptr, f, f, 0, 1.0f, nullptr, p, DataType::f16, nullptr); },
                 "cross_entropy_backward", "grad_logits");
  expect_invalid([&] { kc::cross_entropy_backward(f, nullptr, nullptr, f, f, 0, 1.0f, f, p, DataType::f32, nullptr); },
                 "cross_entropy_backward", "targets");
}

}  // namespace
}  // namespace graft::testing
