// CUDA sum/mean reductions (kernels/cuda/reduce.h) against the CPU twin
// (kernels/cpu/reduce.h, which accumulates in double) on the same
// dtype-rounded inputs: full sums (short and split across blocks), row sums
// (one warp per row, vector and scalar loads, split long rows), column sums
// ((N, C) and channels-last NCHW bias gradients, split), general strided
// cases, empty reductions, means; bit-identical results on a second run
// (no atomics). Bad arguments throw before any CUDA call.
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/cpu/reduce.h"
#include "kernels/cuda/reduce.h"
#include "tests/cuda/ew_test_util.h"

namespace graft::testing {
namespace {

namespace kc = kernels::cpu;
namespace kg = kernels::cuda;

struct ReduceCase {
  std::string name;
  std::vector<int64_t> shape, strides;
  std::vector<int> reduce;  // dims summed
};

kc::ReduceParams params(const ReduceCase& c, bool mean) {
  kc::ReduceParams p;
  p.ndim = static_cast<int>(c.shape.size());
  int64_t count = 1;
  for (int d = 0; d < p.ndim; ++d) {
    p.size[d] = c.shape[d];
    p.stride[d] = c.strides[d];
  }
  for (int d : c.reduce) {
    p.reduce[d] = true;
    count *= c.shape[d];
  }
  p.scale = mean ? static_cast<float>(1.0 / static_cast<double>(count)) : 1.f;
  return p;
}

int64_t out_count(const ReduceCase& c) {
  int64_t n = 1;
  std::vector<bool> red(c.shape.size(), false);
  for (int d : c.reduce) red[d] = true;
  for (size_t d = 0; d < c.shape.size(); ++d)
    if (!red[d]) n *= c.shape[d];
  return n;
}

ReduceCase rm(const std::string& name, const std::vector<int64_t>& shape, const std::vector<int>& reduce) {
  return {name, shape, row_major(shape), reduce};
}

std::vector<ReduceCase> reduce_cases() {
  std::vector<ReduceCase> cs;
  for (int64_t n : {1, 7, 1000, 4097, 100000, (1 << 20) + 3}) cs.push_back(rm("full " + std::to_string(n), {n}, {0}));
  for (auto mk : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {3, 7}, {33, 1025}, {1000, 33}, {7, 20000}, {2, 1 << 18}, {4096, 64}}) {
    const std::string s = std::to_string(mk.first) + "x" + std::to_string(mk.second);
    cs.push_back(rm("rows " + s, {mk.first, mk.second}, {1}));
    cs.push_back(rm("columns " + s, {mk.first, mk.second}, {0}));
  }
  for (std::vector<int64_t> s : {std::vector<int64_t>{2, 3, 5, 5}, {8, 64, 7, 7}, {16, 256, 14, 14}, {1, 33, 1, 3}}) {
    const std::string sh = std::to_string(s[0]) + "x" + std::to_string(s[1]) + "x" + std::to_string(s[2]) + "x" +
                           std::to_string(s[3]);
    cs.push_back({"channels-last bias grad " + sh, s, channels_last(s), {0, 2, 3}});
    cs.push_back({"channels-last over C " + sh, s, channels_last(s), {1}});
    cs.push_back(rm("row-major bias grad " + sh, s, {0, 2, 3}));
  }
  cs.push_back(rm("middle 4x5x6", {4, 5, 6}, {1}));
  cs.push_back(rm("outer and inner 3x4x5", {3, 4, 5}, {0, 2}));
  cs.push_back(rm("none 3x4", {3, 4}, {}));
  cs.push_back(rm("all 3x4x5x6", {3, 4, 5, 6}, {0, 1, 2, 3}));
  cs.push_back({"transposed 6x5 rows", {6, 5}, {1, 6}, {1}});
  cs.push_back({"transposed 300x40 columns", {300, 40}, {1, 300}, {0}});
  cs.push_back({"padded rows 9x10 (stride 13)", {9, 10}, {13, 1}, {1}});
  cs.push_back({"size-1 dims 1x5x1x7", {1, 5, 1, 7}, row_major({1, 5, 1, 7}), {0, 3}});
  cs.push_back(rm("scalar", {}, {}));
  return cs;
}

// Runs the GPU reduction of host input x (storage order) for case c.
std::vector<float> gpu_sum(const kc::ReduceParams& p, const std::vector<float>& x, DataType dt, int shift,
                           int64_t n_out) {
  GuardedArray dx(x, dt, shift), dout(static_cast<size_t>(n_out), DataType::f32);
  const size_t ws_bytes = kg::sum_workspace_bytes(p);
  DeviceArray ws(ws_bytes / 4 + 1);
  kg::sum_forward(p, dt, dx.data(), dout.as<float>(), ws_bytes ? ws.get() : nullptr, ws_bytes, nullptr);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  return dout.download();
}

TEST(CudaReduce, SumAndMeanMatchTwin) {
  REQUIRE_GPU();
  uint32_t seed = 1;
  for (const ReduceCase& c : reduce_cases()) {
    const size_t n_in = storage(c.shape, c.strides);
    const int64_t n_out = out_count(c);
    for (bool mean : {false, true}) {
      const kc::ReduceParams p = params(c, mean);
      for (DataType dt : all_dtypes()) {
        for (int shift : {0, 1}) {
          // Positive-biased values: sums do not cancel to nothing.
          const std::vector<float> x = round_to(random_vector(n_in, -0.75f, 1.25f, seed++), dt);
          std::vector<float> want(static_cast<size_t>(n_out));
          kc::sum_forward(p, x.data(), want.data());
          const std::vector<float> got = gpu_sum(p, x, dt, shift, n_out);
          // f32 output and accumulation from the same rounded inputs: f32 tolerance for every dtype.
          EXPECT_TRUE(close_to_twin(got, want, 1e-5,
                                    c.name + (mean ? " mean " : " sum ") + kg::dtype_name(dt) +
                                        " shift=" + std::to_string(shift)));
        }
      }
    }
  }
}

TEST(CudaReduce, EmptyReductionsGiveZeroOrNaN) {
  REQUIRE_GPU();
  // (3, 0) summed over dim 1: three zeros; the mean of nothing is NaN (0 * inf), as the twin.
  const ReduceCase c = rm("empty", {3, 0}, {1});
  for (bool mean : {false, true}) {
    const kc::ReduceParams p = params(c, mean);
    std::vector<float> want(3);
    kc::sum_forward(p, nullptr, want.data());
    const std::vector<float> got = gpu_sum(p, {}, DataType::f32, 0, 3);
    for (int i = 0; i < 3; ++i) {
      if (mean) EXPECT_TRUE(std::isnan(got[i]) && std::isnan(want[i])) << got[i];
      else EXPECT_TRUE(got[i] == 0.f && want[i] == 0.f) << got[i];
    }
  }
  // Nothing kept of size 0: no output, no launch.
  const kc::ReduceParams p0 = params(rm("none", {0, 4}, {1}), false);
  EXPECT_EQ(kg::sum_workspace_bytes(p0), 0u);
  EXPECT_NO_THROW(kg::sum_forward(p0, DataType::f32, nullptr, nullptr, nullptr, 0, nullptr));
}

// No atomics: the same input gives the same bits, including the split paths.
TEST(CudaReduce, Deterministic) {
  REQUIRE_GPU();
  for (const ReduceCase& c : {rm("full", {(1 << 22) + 5}, {0}), rm("columns", {200000, 64}, {0}),
                              rm("long rows", {3, 1 << 20}, {1})}) {
    const kc::ReduceParams p = params(c, false);
    EXPECT_GT(kg::sum_workspace_bytes(p), 0u) << c.name << ": meant to exercise the split path";
    const std::vector<float> x = random_vector(storage(c.shape, c.strides), -1, 1, 99);
    const std::vector<float> a = gpu_sum(p, x, DataType::f32, 0, out_count(c));
    const std::vector<float> b = gpu_sum(p, x, DataType::f32, 0, out_count(c));
    EXPECT_EQ(a, b) << c.name;
  }
}

// ---- host-side: no GPU needed -------------------------------------------------------------------

TEST(CudaReduceArgs, RejectsBadArguments) {
  float dummy[4] = {};
  kc::ReduceParams p;
  p.ndim = 1;
  p.size[0] = (1 << 22);
  p.stride[0] = 1;
  p.reduce[0] = true;
  const size_t need = kg::sum_workspace_bytes(p);
  ASSERT_GT(need, 0u);  // a long full sum is split
  EXPECT_TRUE(throws_naming([&] { kg::sum_forward(p, DataType::f32, dummy, dummy, nullptr, 0, nullptr); }, "sum_forward"));
  EXPECT_TRUE(throws_naming([&] { kg::sum_forward(p, DataType::f32, dummy, dummy, dummy, need - 4, nullptr); },
                            "sum_forward"));
  EXPECT_TRUE(throws_naming([&] { kg::sum_forward(p, DataType::f32, nullptr, dummy, dummy, need, nullptr); },
                            "sum_forward"));
  EXPECT_TRUE(throws_naming([&] { kg::sum_forward(p, DataType::f32, dummy, nullptr, dummy, need, nullptr); },
                            "sum_forward"));
  EXPECT_TRUE(throws_naming([&] { kg::sum_forward(p, static_cast<DataType>(5), dummy, dummy, dummy, need, nullptr); },
                            "sum_forward"));
  kc::ReduceParams bad = p;
  bad.ndim = kernels::kMaxDims + 1;
  EXPECT_TRUE(throws_naming([&] { kg::sum_workspace_bytes(bad); }, "sum_workspace_bytes"));
  bad = p;
  bad.size[0] = -1;
  EXPECT_TRUE(throws_naming([&] { kg::sum_forward(bad, DataType::f32, dummy, dummy, dummy, need, nullptr); },
                            "sum_forward"));
  // Short sums need no workspace.
  kc::ReduceParams small = p;
  small.size[0] = 1000;
  EXPECT_EQ(kg::sum_workspace_bytes(small), 0u);
}

TEST(CudaReduceArgs, SumToParams) {
  // (8, 3, 5, 5) gradient (channels-last strides) down to a (1, 3, 1, 1) bias.
  const int64_t out[4] = {8, 3, 5, 5}, g[4] = {75, 1, 15, 3}, bias[4] = {1, 3, 1, 1};
  kc::ReduceParams p;
  ASSERT_TRUE(kg::sum_to_params(4, out, g, 4, bias, 1.f, &p));
  EXPECT_EQ(p.ndim, 4);
  EXPECT_TRUE(p.reduce[0] && !p.reduce[1] && p.reduce[2] && p.reduce[3]);
  EXPECT_EQ(p.stride[2], 15);
  // (5) against (8, 3, 5, 5): the leading three dims summed.
  const int64_t row[1] = {5};
  ASSERT_TRUE(kg::sum_to_params(4, out, g, 1, row, -1.f, &p));
  EXPECT_TRUE(p.reduce[0] && p.reduce[1] && p.reduce[2] && !p.reduce[3]);
  EXPECT_EQ(p.scale, -1.f);
  // (4) does not broadcast to (..., 5).
  const int64_t wrong[1] = {4};
  EXPECT_FALSE(kg::sum_to_params(4, out, g, 1, wrong, 1.f, &p));
}

}  // namespace
}  // namespace graft::testing
