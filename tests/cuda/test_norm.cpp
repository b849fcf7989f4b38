// CUDA layer norm and NHWC batch norm (kernels/cuda/norm.h) against the CPU
// twins on the same dtype-rounded inputs: forward (outputs and saved
// statistics), running-statistics update, backward in training and eval mode,
// with and without affine parameters, every dtype, odd sizes, packed and
// misaligned (scalar) paths, and bitwise-repeatable parameter gradients.
#include <cuda_runtime.h>

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/norm.h"
#include "kernels/cuda/norm.h"
#include "tests/cuda/cuda_test_util.h"
#include "tests/cuda/cuda_test_util.h"

namespace graft::testing {
namespace {

namespace kc = kernels::cuda;
namespace kcpu = kernels::cpu;

const DataType kTypes[] = {DataType::f32, DataType::f16, DataType::bf16};

// Statistics and parameter gradients are f32 outputs summed over rows in
// another order than the twin's double sums: 2e-5 of the largest (inputs are
// the same rounded values whatever the dtype).
constexpr double kSumTol = 2e-5;

std::string label(const char* what, DataType t, int64_t rows, int64_t cols, bool affine, size_t shift) {
  return std::string(what) + " " + kc::dtype_name(t) + " rows=" + std::to_string(rows) + " cols=" +
         std::to_string(cols) + (affine ? " affine" : "") + " shift=" + std::to_string(shift);
}

const float* opt(bool on, const DeviceArray& a) { return on ? a.f32() : nullptr; }

// ---- layer norm ---------------------------------------------------------------------------

void check_layer_norm(DataType t, int64_t rows, int64_t d, bool affine, size_t shift) {
  const size_t n = static_cast<size_t>(rows * d);
  const float eps = 1e-5f;
  const std::vector<float> x = round_to(uniform_values(n, -1.0f, 2.0f, 11u + static_cast<unsigned>(d)), t);
  const std::vector<float> w = uniform_values(d, 0.5f, 1.5f, 12u), b = uniform_values(d, -0.5f, 0.5f, 13u);
  const std::vector<float> g = round_to(uniform_values(n, -1.0f, 1.0f, 14u + static_cast<unsigned>(rows)), t);

  std::vector<float> y(n), mean(rows), rstd(rows);
  kcpu::layer_norm_forward(x.data(), affine ? w.data() : nullptr, affine ? b.data() : nullptr, y.data(), mean.data(),
                           rstd.data(), rows, d, eps);
  ShiftedArray dx(x, t, shift), dy(n, t, shift), dg(g, t, shift), dgx(n, t, shift);
  DeviceArray dw(w), db(b), dmean(rows), drstd(rows), dgw(d), dgb(d);
  kc::layer_norm_forward(dx.ptr(), opt(affine, dw), opt(affine, db), dy.ptr(), dmean.f32(), drstd.f32(), rows, d, eps,
                         t, nullptr);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  const std::string what = label("layer_norm", t, rows, d, affine, shift);
  EXPECT_TRUE(close_to_twin(dy.download(), y, default_tolerance(t), "y " + what));
  EXPECT_TRUE(close_to_twin(dmean.download(), mean, kSumTol, "mean " + what));
  EXPECT_TRUE(close_to_twin(drstd.download(), rstd, kSumTol, "rstd " + what));

  // Backward from the twin's saved statistics (the same on both sides).
  std::vector<float> gx(n), gw(d), gb(d);
  kcpu::layer_norm_backward(g.data(), x.data(), mean.data(), rstd.data(), affine ? w.data() : nullptr, gx.data(),
                            gw.data(), gb.data(), rows, d);
  dmean.upload(mean);
  drstd.upload(rstd);
  kc::layer_norm_backward(dg.ptr(), dx.ptr(), dmean.f32(), drstd.f32(), opt(affine, dw), dgx.ptr(), dgw.f32(),
                          dgb.f32(), rows, d, t, nullptr);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  if (d == 1) {
    // One column: xhat is 0 and grad_x is exactly 0 in exact arithmetic; the
    // twin's value is rounding noise (rstd = 1/sqrt(eps) amplifies it), so
    // compare with the exact answer instead.
    for (float v : dgx.download()) EXPECT_LE(std::fabs(v), 1e-4f) << "grad_x " << what;
  } else {
    EXPECT_TRUE(close_to_twin(dgx.download(), gx, default_tolerance(t), "grad_x " + what));
  }
  EXPECT_TRUE(close_to_twin(dgw.download(), gw, kSumTol, "grad_weight " + what));
  EXPECT_TRUE(close_to_twin(dgb.download(), gb, kSumTol, "grad_bias " + what));
}

TEST(CudaLayerNorm, MatchesTwin) {
  REQUIRE_GPU();
  for (DataType t : kTypes)
    for (int64_t d : {1, 7, 33, 128, 768, 1000, 1024, 1025, 4097})
      for (bool affine : {false, true}) {
        check_layer_norm(t, 7, d, affine, 0);
        check_layer_norm(t, 3, d, affine, 1);
      }
}

TEST(CudaLayerNorm, ManyRowsSplitIntoChunks) {
  REQUIRE_GPU();
  for (DataType t : kTypes) check_layer_norm(t, 2000, 768, true, 0);
  check_layer_norm(DataType::f32, 5003, 40, true, 0);
}

TEST(CudaLayerNorm, ParameterGradientsAreBitwiseRepeatable) {
  REQUIRE_GPU();
  const int64_t rows = 3001, d = 200;
  const std::vector<float> x = uniform_values(rows * d, -1.0f, 1.0f, 1u), g = uniform_values(rows * d, -1.0f, 1.0f, 2u);
  std::vector<float> mean(rows), rstd(rows), y(rows * d);
  kcpu::layer_norm_forward(x.data(), nullptr, nullptr, y.data(), mean.data(), rstd.data(), rows, d, 1e-5f);
  DeviceArray dx(x), dg(g), dm(mean), dr(rstd), gw1(d), gb1(d), gw2(d), gb2(d);
  kc::layer_norm_backward(dg.get(), dx.get(), dm.f32(), dr.f32(), nullptr, nullptr, gw1.f32(), gb1.f32(), rows, d,
                          DataType::f32, nullptr);
  kc::layer_norm_backward(dg.get(), dx.get(), dm.f32(), dr.f32(), nullptr, nullptr, gw2.f32(), gb2.f32(), rows, d,
                          DataType::f32, nullptr);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  const auto a = gw1.download(), b = gw2.download(), c = gb1.download(), e = gb2.download();
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)));
  EXPECT_EQ(0, std::memcmp(c.data(), e.data(), c.size() * sizeof(float)));
  for (float v : a) ASSERT_TRUE(std::isfinite(v));
}

// ---- batch norm ---------------------------------------------------------------------------

struct BnCase {
  int64_t rows, c;
};
// (N*H*W, C): C not a multiple of 8, NHW odd; the last ones are real NHWC activations
// (2x28x28x96, 2x7x7x256) and a tall thin one that splits into many row chunks. Not
// rows = 2: there xhat = +-1 whatever x, so the training grad_x is O(eps) noise on
// both sides and a relative comparison means nothing.
const BnCase kBnCases[] = {{3, 3}, {7, 5}, {33, 13}, {1000, 7}, {4097, 64}, {105, 256}, {1568, 96}, {98, 256},
                           {20011, 3}};

void check_batch_norm(DataType t, BnCase k, bool affine, size_t shift) {
  const int64_t rows = k.rows, c = k.c;
  const size_t n = static_cast<size_t>(rows * c);
  const float eps = 1e-5f, momentum = 0.1f;
  const std::string what = label("batch_norm", t, rows, c, affine, shift);
  const std::vector<float> x = round_to(uniform_values(n, -1.0f, 3.0f, 21u + static_cast<unsigned>(c)), t);
  const std::vector<float> g = round_to(uniform_values(n, -1.0f, 1.0f, 22u + static_cast<unsigned>(rows)), t);
  const std::vector<float> w = uniform_values(c, 0.5f, 1.5f, 23u), b = uniform_values(c, -0.5f, 0.5f, 24u);
  const std::vector<float> rm = uniform_values(c, -0.2f, 0.2f, 25u), rv = uniform_values(c, 0.5f, 2.0f, 26u);
  const float* wh = affine ? w.data() : nullptr;
  const float* bh = affine ? b.data() : nullptr;

  // Training forward and the running statistics (the engine's formula, in double).
  std::vector<float> y(n), mean(c), var(c), rstd(c), new_rm(c), new_rv(c);
  kcpu::batch_norm_forward_train(x.data(), wh, bh, y.data(), mean.data(), var.data(), rstd.data(), rows, c, eps);
  const double unbias = double(rows) / double(rows - 1);
  for (int64_t j = 0; j < c; ++j) {
    new_rm[j] = static_cast<float>((1 - double(momentum)) * rm[j] + double(momentum) * mean[j]);
    new_rv[j] = static_cast<float>((1 - double(momentum)) * rv[j] + double(momentum) * unbias * var[j]);
  }
  ShiftedArray dx(x, t, shift), dy(n, t, shift), dg(g, t, shift), dgx(n, t, shift);
  DeviceArray dw(w), db(b), dmean(c), dvar(c), drstd(c), drm(rm), drv(rv), dgw(c), dgb(c);
  kc::batch_norm_forward_train(dx.ptr(), opt(affine, dw), opt(affine, db), dy.ptr(), dmean.f32(), dvar.f32(),
                               drstd.f32(), drm.f32(), drv.f32(), momentum, rows, c, eps, t, nullptr);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  EXPECT_TRUE(close_to_twin(dy.download(), y, default_tolerance(t), "train y " + what));
  EXPECT_TRUE(close_to_twin(dmean.download(), mean, kSumTol, "batch_mean " + what));
  EXPECT_TRUE(close_to_twin(dvar.download(), var, kSumTol, "batch_var " + what));
  EXPECT_TRUE(close_to_twin(drstd.download(), rstd, kSumTol, "save_rstd " + what));
  EXPECT_TRUE(close_to_twin(drm.download(), new_rm, kSumTol, "running_mean " + what));
  EXPECT_TRUE(close_to_twin(drv.download(), new_rv, kSumTol, "running_var " + what));

  // Eval forward with the running statistics.
  std::vector<float> ye(n);
  kcpu::batch_norm_forward_eval(x.data(), rm.data(), rv.data(), wh, bh, ye.data(), rows, c, eps);
  drm.upload(rm);
  drv.upload(rv);
  dy.poison();
  kc::batch_norm_forward_eval(dx.ptr(), drm.f32(), drv.f32(), opt(affine, dw), opt(affine, db), dy.ptr(), rows, c, eps,
                              t, nullptr);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  EXPECT_TRUE(close_to_twin(dy.download(), ye, default_tolerance(t), "eval y " + what));

  // Training backward from the twin's statistics.
  std::vector<float> gx(n), gw(c), gb(c);
  kcpu::batch_norm_backward_train(g.data(), x.data(), mean.data(), rstd.data(), wh, gx.data(), gw.data(), gb.data(),
                                  rows, c);
  dmean.upload(mean);
  drstd.upload(rstd);
  kc::batch_norm_backward_train(dg.ptr(), dx.ptr(), dmean.f32(), drstd.f32(), opt(affine, dw), dgx.ptr(), dgw.f32(),
                                dgb.f32(), rows, c, t, nullptr);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  EXPECT_TRUE(close_to_twin(dgx.download(), gx, default_tolerance(t), "train grad_x " + what));
  EXPECT_TRUE(close_to_twin(dgw.download(), gw, kSumTol, "train grad_weight " + what));
  EXPECT_TRUE(close_to_twin(dgb.download(), gb, kSumTol, "train grad_bias " + what));

  // Eval backward (frozen statistics).
  kcpu::batch_norm_backward_eval(g.data(), x.data(), rm.data(), rv.data(), wh, gx.data(), gw.data(), gb.data(), rows,
                                 c, eps);
  dgx.poison();
  dgw.poison();
  dgb.poison();
  kc::batch_norm_backward_eval(dg.ptr(), dx.ptr(), drm.f32(), drv.f32(), opt(affine, dw), dgx.ptr(), dgw.f32(),
                               dgb.f32(), rows, c, eps, t, nullptr);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  EXPECT_TRUE(close_to_twin(dgx.download(), gx, default_tolerance(t), "eval grad_x " + what));
  EXPECT_TRUE(close_to_twin(dgw.download(), gw, kSumTol, "eval grad_weight " + what));
  EXPECT_TRUE(close_to_twin(dgb.download(), gb, kSumTol, "eval grad_bias " + what));
}

TEST(CudaBatchNorm, MatchesTwin) {
  REQUIRE_GPU();
  for (DataType t : kTypes)
    for (const BnCase& k : kBnCases)
      for (bool affine : {false, true}) check_batch_norm(t, k, affine, 0);
}

TEST(CudaBatchNorm, MisalignedPointersTakeTheScalarPath) {
  REQUIRE_GPU();
  for (DataType t : kTypes)
    for (BnCase k : {BnCase{33, 64}, BnCase{1568, 96}, BnCase{7, 5}}) check_batch_norm(t, k, true, 1);
}

TEST(CudaBatchNorm, OnlyTheWantedGradients) {
  REQUIRE_GPU();
  const int64_t rows = 500, c = 24;
  const std::vector<float> x = uniform_values(rows * c, -1.0f, 1.0f, 5u), g = uniform_values(rows * c, -1.0f, 1.0f, 6u);
  std::vector<float> y(rows * c), mean(c), var(c), rstd(c), gx(rows * c), gw(c), gb(c);
  kcpu::batch_norm_forward_train(x.data(), nullptr, nullptr, y.data(), mean.data(), var.data(), rstd.data(), rows, c,
                                 1e-5f);
  kcpu::batch_norm_backward_train(g.data(), x.data(), mean.data(), rstd.data(), nullptr, gx.data(), gw.data(),
                                  gb.data(), rows, c);
  DeviceArray dx(x), dg(g), dm(mean), dr(rstd), dgx(rows * c), dgw(c);
  // grad_x alone (a frozen layer), then grad_weight alone.
  kc::batch_norm_backward_train(dg.get(), dx.get(), dm.f32(), dr.f32(), nullptr, dgx.get(), nullptr, nullptr, rows, c,
                                DataType::f32, nullptr);
  kc::batch_norm_backward_train(dg.get(), dx.get(), dm.f32(), dr.f32(), nullptr, nullptr, dgw.f32(), nullptr, rows, c,
                                DataType::f32, nullptr);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  EXPECT_TRUE(close_to_twin(dgx.download(), gx, 1e-5, "grad_x alone"));
  EXPECT_TRUE(close_to_twin(dgw.download(), gw, kSumTol, "grad_weight alone"));
}

TEST(CudaNorm, BadArgumentsNameTheLauncher) {
  float f[16];
  const auto dt = DataType::f32;
  expect_invalid([&] { kc::batch_norm_forward_train(f, f, f, f, f, f, f, f, nullptr, 0.1f, 4, 2, 1e-5f, dt, nullptr); },
                 "batch_norm_forward_train", "running_mean and running_var");
  expect_invalid([&] { kc::batch_norm_forward_train(f, f, f, f, f, f, f, f, f, 0.1f, 1, 2, 1e-5f, dt, nullptr); },
                 "batch_norm_forward_train", "rows >= 2");
  expect_invalid([&] { kc::batch_norm_forward_train(f, f, f, f, f, f, f, f, f, 1.5f, 4, 2, 1e-5f, dt, nullptr); },
                 "batch_norm_forward_train", "momentum");
  expect_invalid(
      [&] { kc::batch_norm_forward_train(f, f, f, f, nullptr, f, f, nullptr, nullptr, 0.1f, 4, 2, 1e-5f, dt, nullptr); },
      "batch_norm_forward_train", "batch_mean");
  expect_invalid([&] { kc::batch_norm_forward_eval(f, f, nullptr, f, f, f, 4, 2, 1e-5f, dt, nullptr); },
                 "batch_norm_forward_eval", "var");
  expect_invalid([&] { kc::batch_norm_backward_train(f, f, f, f, f, f, f, f, -1, 2, dt, nullptr); },
                 "batch_norm_backward_train", "negative");
  expect_invalid([&] { kc::batch_norm_backward_eval(nullptr, f, f, f, f, f, f, f, 4, 2, 1e-5f, dt, nullptr); },
                 "batch_norm_backward_eval", "grad_y");
  expect_invalid([&] { kc::layer_norm_forward(f, f, f, f, nullptr, f, 4, 2, 1e-5f, dt, nullptr); }, "layer_norm_forward",
                 "save_mean");
  expect_invalid([&] { kc::layer_norm_backward(f, f, f, nullptr, f, f, f, f, 4, 2, dt, nullptr); },
                 "layer_norm_backward", "rstd");
  expect_invalid([&] { kc::layer_norm_forward(f, f, f, f, f, f, 4, 2, 1e-5f, static_cast<DataType>(7), nullptr); },
                 "layer_norm_forward", "dtype");
}

}  // namespace
}  // namespace graft::testing
