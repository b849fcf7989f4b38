// Fused multi-tensor optimizer updates against the CPU twins
// (kernels/cpu/optim.h), over one list of 21 tensors of varied sizes (1 ..
// 100000, chunk boundaries, empty), some frozen, some misaligned (scalar
// path), with per-tensor lr multipliers and weight-decay flags, over several
// steps, with f32, bf16 and f16 gradients. Frozen tensors and the gaps between
// tensors must be bit-for-bit untouched. Argument checks run without a GPU.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/cpu/optim.h"
#include "kernels/cuda/optim.h"
#include "tests/cuda/cuda_test_util.h"

namespace graft {
namespace {

using kernels::cuda::AdamParams;
using kernels::cuda::DataType;
using kernels::cuda::OptimTensor;
using kernels::cuda::SgdParams;
using testing::close_to_twin;
using testing::DeviceArray;
using testing::expect_invalid;
using testing::round_to;

std::vector<float> random_vector(size_t n, uint32_t seed, float lo, float hi) {
  return testing::uniform_values(n, lo, hi, seed);
}

struct Spec {
  int64_t numel;
  float lr_mult;
  bool weight_decay, trainable;
  int misalign;  // elements added to the 8-element-aligned offset
};

const Spec kList[] = {
    {1, 1.f, true, true, 0},       {7, 0.5f, false, true, 0},    {1000, 1.f, true, true, 1},
    {65537, 0.1f, true, true, 0},  {3, 1.f, true, false, 0},     {16384, 2.f, true, true, 0},
    {16385, 1.f, false, true, 0},  {33, 1.f, true, true, 1},     {4097, 1.f, true, false, 0},
    {1025, 0.25f, true, true, 0},  {100000, 1.f, true, true, 0}, {2, 1.f, false, true, 0},
    {64, 1.f, true, true, 0},      {65537, 1.f, true, false, 0}, {9, 3.f, true, true, 0},
    {128, 1.f, false, true, 0},    {0, 1.f, true, true, 0},      {31, 1.f, true, true, 1},
    {12345, 0.5f, true, true, 0},  {5, 1.f, true, true, 0},
};
constexpr int kSpecs = sizeof(kList) / sizeof(kList[0]);

// The list's layout in one buffer per quantity: offsets, with 3-element gaps.
struct Layout {
  std::vector<int64_t> offset;
  int64_t total = 0;
  Layout() {
    int64_t cursor = 0;
    for (const Spec& s : kList) {
      const int64_t o = (cursor + 7) / 8 * 8 + s.misalign;
      offset.push_back(o);
      cursor = o + s.numel + 3;
    }
    total = cursor;
  }
  // 1 where an element belongs to a trainable tensor (the only ones that may change).
  std::vector<char> updated_mask() const {
    std::vector<char> m(static_cast<size_t>(total), 0);
    for (int k = 0; k < kSpecs; ++k)
      if (kList[k].trainable)
        for (int64_t i = 0; i < kList[k].numel; ++i) m[static_cast<size_t>(offset[k] + i)] = 1;
    return m;
  }
};

// The launcher's list over device buffers, plus a frozen entry with null
// pointers that must never be touched.
std::vector<OptimTensor> make_list(const Layout& L, float* p, const void* g, DataType gdt, float* s0, float* s1) {
  std::vector<OptimTensor> list;
  for (int k = 0; k < kSpecs; ++k) {
    const Spec& s = kList[k];
    OptimTensor t;
    t.param = p + L.offset[k];
    t.grad = static_cast<const char*>(g) + L.offset[k] * kernels::cuda::dtype_size(gdt);
    t.state0 = s0 ? s0 + L.offset[k] : nullptr;
    t.state1 = s1 ? s1 + L.offset[k] : nullptr;
    t.numel = s.numel;
    t.lr_mult = s.lr_mult;
    t.weight_decay = s.weight_decay;
    t.trainable = s.trainable;
    list.push_back(t);
  }
  OptimTensor ghost;  // frozen, null everything
  ghost.numel = 5000;
  ghost.trainable = false;
  list.push_back(ghost);
  return list;
}

// Every element of `got` equals `init` bit for bit where mask is 0.
::testing::AssertionResult untouched(const std::vector<float>& got, const std::vector<float>& init,
                                     const std::vector<char>& mask, const std::string& what) {
  for (size_t i = 0; i < got.size(); ++i)
    if (!mask[i] && std::memcmp(&got[i], &init[i], 4) != 0)
      return ::testing::AssertionFailure() << what << ": element " << i << " (frozen or gap) changed from "
                                           << init[i] << " to " << got[i];
  return ::testing::AssertionSuccess();
}

// Per trainable tensor: the slice matches the twin within the f32 tolerance
// (both compute in f32 from the same inputs; only rounding order and FMA
// contraction differ). The scale is the tensor's magnitude before and after
// the steps, so a value that lands near zero by cancellation (an error of an
// ulp of its inputs) does not make a one-element tensor fail.
void expect_slices_match(const Layout& L, const std::vector<float>& got, const std::vector<float>& want,
                         const std::vector<float>& before, const std::string& what) {
  for (int k = 0; k < kSpecs; ++k) {
    if (!kList[k].trainable || kList[k].numel == 0) continue;
    const auto b = static_cast<long>(L.offset[k]), e = b + static_cast<long>(kList[k].numel);
    double want_max = 1e-6, scale = 1e-6;
    for (long i = b; i < e; ++i) {
      want_max = std::max(want_max, static_cast<double>(std::fabs(want[static_cast<size_t>(i)])));
      scale = std::max({scale, want_max, static_cast<double>(std::fabs(before[static_cast<size_t>(i)]))});
    }
    EXPECT_TRUE(close_to_twin(std::vector<float>(got.begin() + b, got.begin() + e),
                              std::vector<float>(want.begin() + b, want.begin() + e), 1e-5 * scale / want_max,
                              what + " tensor " + std::to_string(k) + " (numel " + std::to_string(kList[k].numel) + ")"));
  }
}

constexpr int kSteps = 3;

void run_sgd(const SgdParams& base, DataType gdt, const std::string& name) {
  const std::string what = name + " grads " + kernels::cuda::dtype_name(gdt);
  const Layout L;
  const size_t n = static_cast<size_t>(L.total);
  const bool momentum = base.momentum != 0.f;
  std::vector<float> p = random_vector(n, 11, -1.f, 1.f), buf = random_vector(n, 12, -0.1f, 0.1f);
  const std::vector<float> p0 = p, buf0 = buf;
  DeviceArray dp(p), dbuf(buf), dg(n, gdt);
  std::vector<OptimTensor> list = make_list(L, dp.f32(), dg.get(), gdt, momentum ? dbuf.f32() : nullptr, nullptr);
  for (int step = 1; step <= kSteps; ++step) {
    const std::vector<float> g = round_to(random_vector(n, 100 + step, -1.f, 1.f), gdt);
    SgdParams s = base;
    s.first_step = step == 1;
    for (int k = 0; k < kSpecs; ++k) {
      if (!kList[k].trainable || kList[k].numel == 0) continue;
      const int64_t o = L.offset[k];
      kernels::cpu::sgd_update(p.data() + o, g.data() + o, momentum ? buf.data() + o : nullptr, kList[k].numel,
                               kernels::cuda::sgd_params_for(s, list[static_cast<size_t>(k)]));
    }
    dg.upload(g);
    kernels::cuda::sgd_update_multi(list.data(), static_cast<int>(list.size()), gdt, s, nullptr);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess) << what << " step " << step;
  }
  const std::vector<char> mask = L.updated_mask();
  const std::vector<float> gp = dp.download(), gbuf = dbuf.download();
  expect_slices_match(L, gp, p, p0, what + " param");
  EXPECT_TRUE(untouched(gp, p0, mask, what + " param"));
  if (momentum) {
    expect_slices_match(L, gbuf, buf, buf0, what + " momentum");
    EXPECT_TRUE(untouched(gbuf, buf0, mask, what + " momentum"));
  } else {
    EXPECT_TRUE(untouched(gbuf, buf0, std::vector<char>(n, 0), what + " unused momentum buffer"));
  }
}

void run_adam(const AdamParams& base, DataType gdt, const std::string& name) {
  const std::string what = name + " grads " + kernels::cuda::dtype_name(gdt);
  const Layout L;
  const size_t n = static_cast<size_t>(L.total);
  // Non-zero starting states check that the states are read, not assumed.
  std::vector<float> p = random_vector(n, 21, -1.f, 1.f), m = random_vector(n, 22, -0.1f, 0.1f),
                     v = random_vector(n, 23, 0.f, 0.01f);
  const std::vector<float> p0 = p, m0 = m, v0 = v;
  DeviceArray dp(p), dm(m), dv(v), dg(n, gdt);
  std::vector<OptimTensor> list = make_list(L, dp.f32(), dg.get(), gdt, dm.f32(), dv.f32());
  for (int step = 1; step <= kSteps; ++step) {
    const std::vector<float> g = round_to(random_vector(n, 200 + step, -1.f, 1.f), gdt);
    AdamParams a = base;
    a.step = step;
    for (int k = 0; k < kSpecs; ++k) {
      if (!kList[k].trainable || kList[k].numel == 0) continue;
      const int64_t o = L.offset[k];
      kernels::cpu::adam_update(p.data() + o, g.data() + o, m.data() + o, v.data() + o, kList[k].numel,
                                kernels::cuda::adam_params_for(a, list[static_cast<size_t>(k)]));
    }
    dg.upload(g);
    kernels::cuda::adam_update_multi(list.data(), static_cast<int>(list.size()), gdt, a, nullptr);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess) << what << " step " << step;
  }
  const std::vector<char> mask = L.updated_mask();
  const std::vector<float> gp = dp.download(), gm = dm.download(), gv = dv.download();
  expect_slices_match(L, gp, p, p0, what + " param");
  expect_slices_match(L, gm, m, m0, what + " m");
  expect_slices_match(L, gv, v, v0, what + " v");
  EXPECT_TRUE(untouched(gp, p0, mask, what + " param"));
  EXPECT_TRUE(untouched(gm, m0, mask, what + " m"));
  EXPECT_TRUE(untouched(gv, v0, mask, what + " v"));
}

const DataType kGradTypes[] = {DataType::f32, DataType::bf16, DataType::f16};

TEST(CudaOptim, SgdMomentumDampeningWeightDecayMatchesTwin) {
  REQUIRE_GPU();
  SgdParams s;
  s.lr = 0.05f, s.momentum = 0.9f, s.dampening = 0.1f, s.weight_decay = 1e-2f;
  for (DataType t : kGradTypes) run_sgd(s, t, "sgd momentum+dampening");
}

TEST(CudaOptim, SgdNesterovMatchesTwin) {
  REQUIRE_GPU();
  SgdParams s;
  s.lr = 0.1f, s.momentum = 0.8f, s.nesterov = true, s.weight_decay = 5e-4f;
  for (DataType t : kGradTypes) run_sgd(s, t, "sgd nesterov");
}

TEST(CudaOptim, SgdWithoutMomentumMatchesTwinAndNeedsNoState) {
  REQUIRE_GPU();
  SgdParams s;
  s.lr = 0.2f, s.weight_decay = 1e-3f;
  for (DataType t : kGradTypes) run_sgd(s, t, "sgd plain");
}

TEST(CudaOptim, AdamWithL2MatchesTwin) {
  REQUIRE_GPU();
  AdamParams a;
  a.lr = 1e-2f, a.weight_decay = 1e-2f, a.decoupled = false;
  for (DataType t : kGradTypes) run_adam(a, t, "adam");
}

TEST(CudaOptim, AdamWMatchesTwin) {
  REQUIRE_GPU();
  AdamParams a;
  a.lr = 3e-3f, a.beta1 = 0.8f, a.beta2 = 0.99f, a.eps = 1e-6f, a.weight_decay = 0.05f, a.decoupled = true;
  for (DataType t : kGradTypes) run_adam(a, t, "adamw");
}

// ---- host-side checks (no GPU needed) -----------------------------------------------------------

TEST(CudaOptimArgs, ChunksCoverTrainableTensorsOnly) {
  std::vector<OptimTensor> list(6);
  list[0].numel = 1;       // 1 chunk
  list[1].numel = 16384;   // 1
  list[2].numel = 16385;   // 2
  list[3].numel = 100000;  // frozen: 0
  list[3].trainable = false;
  list[4].numel = 0;       // 0
  list[5].numel = 65537;   // 5
  ASSERT_EQ(kernels::cuda::kChunkElements, 16384);
  EXPECT_EQ(kernels::cuda::multi_tensor_chunks(list.data(), 6), 9);
}

TEST(CudaOptimArgs, BadArgumentsThrowNamingTheLauncherAndTensor) {
  float dummy[8] = {};
  std::vector<OptimTensor> list(3);
  for (OptimTensor& t : list) {
    t.param = dummy, t.grad = dummy, t.state0 = dummy, t.state1 = dummy, t.numel = 8;
  }
  AdamParams a;
  SgdParams s;
  s.momentum = 0.9f;

  std::vector<OptimTensor> no_grad = list;
  no_grad[2].grad = nullptr;
  expect_invalid([&] { kernels::cuda::adam_update_multi(no_grad.data(), 3, DataType::bf16, a, nullptr); },
                 "cuda::adam_update_multi", "tensor 2: grad is null");
  std::vector<OptimTensor> no_v = list;
  no_v[1].state1 = nullptr;
  expect_invalid([&] { kernels::cuda::adam_update_multi(no_v.data(), 3, DataType::f32, a, nullptr); },
                 "cuda::adam_update_multi", "tensor 1: state1 (v) is null");
  std::vector<OptimTensor> no_buf = list;
  no_buf[0].state0 = nullptr;
  expect_invalid([&] { kernels::cuda::sgd_update_multi(no_buf.data(), 3, DataType::f32, s, nullptr); },
                 "cuda::sgd_update_multi", "tensor 0: state0 (momentum buffer) is null");
  std::vector<OptimTensor> negative = list;
  negative[1].numel = -1;
  expect_invalid([&] { kernels::cuda::sgd_update_multi(negative.data(), 3, DataType::f32, s, nullptr); },
                 "cuda::sgd_update_multi", "tensor 1: numel is negative");

  AdamParams step0 = a;
  step0.step = 0;
  expect_invalid([&] { kernels::cuda::adam_update_multi(list.data(), 3, DataType::f32, step0, nullptr); },
                 "cuda::adam_update_multi", "step must be >= 1");
  AdamParams bad_beta = a;
  bad_beta.beta2 = 1.f;
  bad_beta.decoupled = true;
  expect_invalid([&] { kernels::cuda::adam_update_multi(list.data(), 3, DataType::f32, bad_beta, nullptr); },
                 "cuda::adam_update_multi (AdamW)", "betas");
  SgdParams nesterov_damp = s;
  nesterov_damp.nesterov = true;
  nesterov_damp.dampening = 0.1f;
  expect_invalid([&] { kernels::cuda::sgd_update_multi(list.data(), 3, DataType::f32, nesterov_damp, nullptr); },
                 "cuda::sgd_update_multi", "Nesterov");
  expect_invalid([&] { kernels::cuda::sgd_update_multi(list.data(), 3, static_cast<DataType>(9), s, nullptr); },
                 "cuda::sgd_update_multi", "grad dtype");
  expect_invalid([&] { kernels::cuda::sgd_update_multi(nullptr, 3, DataType::f32, s, nullptr); },
                 "cuda::sgd_update_multi", "tensors is null");
}

TEST(CudaOptimArgs, FrozenAndEmptyListsLaunchNothing) {
  // Frozen tensors are not validated and not read: null pointers are fine,
  // and with no chunk there is no CUDA call at all (so this runs without a GPU).
  std::vector<OptimTensor> list(3);
  for (OptimTensor& t : list) t.numel = 1000, t.trainable = false;
  list[1].trainable = true, list[1].numel = 0;
  AdamParams a;
  SgdParams s;
  s.momentum = 0.9f;
  EXPECT_NO_THROW(kernels::cuda::adam_update_multi(list.data(), 3, DataType::f32, a, nullptr));
  EXPECT_NO_THROW(kernels::cuda::sgd_update_multi(list.data(), 3, DataType::bf16, s, nullptr));
  EXPECT_NO_THROW(kernels::cuda::sgd_update_multi(nullptr, 0, DataType::f32, s, nullptr));
}

}  // namespace
}  // namespace graft
