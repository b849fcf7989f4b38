// CUDA NHWC pooling against its CPU twin (kernels/cpu/pool.h): max (values and
// argmax), average and global average, forward and backward, f32/f16/bf16, on
// ResNet/MobileNet-like and odd shapes, with overlapping windows, ceil mode,
// asymmetric padding, dilation and misaligned pointers (scalar path).
// Argument checks run without a GPU.
#include <cmath>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/cpu/pool.h"
#include "kernels/cuda/pool.h"
#include "tests/cuda/cuda_test_util.h"

namespace graft {
namespace {

using kernels::cuda::DataType;
using kernels::cuda::Pool2dParams;
using testing::close_to_twin;
using testing::default_tolerance;
using testing::DeviceArray;
using testing::round_to;
using testing::expect_invalid;

const DataType kDtypes[] = {DataType::f32, DataType::f16, DataType::bf16};

std::vector<float> random_vector(size_t n, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  return testing::uniform_values(n, lo, hi, seed);
}

// A device buffer whose data starts `offset` elements into the allocation
// (offset 1 makes the pointer misaligned for the 16-byte vector path).
struct OffsetArray {
  DeviceArray a;
  size_t offset;
  OffsetArray(size_t n, DataType t, size_t off) : a(n + off, t), offset(off) {}
  void* ptr() const { return a.get<char>() + offset * kernels::cuda::dtype_size(a.dtype()); }
  void upload(const std::vector<float>& host) {
    std::vector<float> full(offset, 0.f);
    full.insert(full.end(), host.begin(), host.end());
    a.upload(full);
  }
  std::vector<float> download() const {
    std::vector<float> full = a.download();
    return std::vector<float>(full.begin() + static_cast<long>(offset), full.end());
  }
};

std::vector<int32_t> download_ints(const DeviceArray& a) {
  std::vector<float> f = a.download();
  std::vector<int32_t> r(f.size());
  std::memcpy(r.data(), f.data(), f.size() * 4);
  return r;
}

struct Case {
  int64_t n, h, w, c, kh, kw, sh, sw, pt, pl, pb, pr, dh, dw;
  bool ceil_mode, count_include_pad;
  size_t offset;  // elements by which every pointer is shifted
};

Pool2dParams params_of(const Case& k) {
  Pool2dParams p;
  p.n = k.n, p.h = k.h, p.w = k.w, p.c = k.c;
  p.kernel_h = k.kh, p.kernel_w = k.kw, p.stride_h = k.sh, p.stride_w = k.sw;
  p.pad_top = k.pt, p.pad_left = k.pl, p.pad_bottom = k.pb, p.pad_right = k.pr;
  p.dilation_h = k.dh, p.dilation_w = k.dw;
  p.count_include_pad = k.count_include_pad;
  p.out_h = kernels::cpu::pool_output_size(k.h, k.kh, k.sh, k.pt, k.pb, k.dh, k.ceil_mode);
  p.out_w = kernels::cpu::pool_output_size(k.w, k.kw, k.sw, k.pl, k.pr, k.dw, k.ceil_mode);
  return p;
}

std::string describe(const Case& k, DataType t) {
  return std::string(kernels::cuda::dtype_name(t)) + " " + std::to_string(k.n) + "x" + std::to_string(k.h) + "x" +
         std::to_string(k.w) + "x" + std::to_string(k.c) + " k" + std::to_string(k.kh) + "x" + std::to_string(k.kw) +
         " s" + std::to_string(k.sh) + "x" + std::to_string(k.sw) + " pad " + std::to_string(k.pt) + "," +
         std::to_string(k.pl) + "," + std::to_string(k.pb) + "," + std::to_string(k.pr) + " d" + std::to_string(k.dh) +
         "x" + std::to_string(k.dw) + (k.ceil_mode ? " ceil" : "") + (k.count_include_pad ? " include_pad" : "") +
         (k.offset ? " offset " + std::to_string(k.offset) : "");
}

// Max pooling cases: every window touches the input (as the engine requires).
const Case kMaxCases[] = {
    // n   h    w   c  kh kw sh sw pt pl pb pr dh dw  ceil  cip  off
    {2, 56, 56, 64, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, false, false, 0},  // ResNet stem (at half size)
    {2, 56, 56, 64, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, false, false, 1},  // same, misaligned: scalar path
    {2, 13, 11, 3, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, true, false, 0},    // C=3, odd H/W, ceil mode
    {3, 9, 15, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, false, false, 0},    // C=7, stride 1: heavy overlap
    {1, 17, 10, 33, 5, 3, 2, 1, 2, 0, 1, 1, 1, 1, true, false, 0},   // C=33, asymmetric pads, ceil
    {2, 12, 12, 16, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2, false, false, 0},  // dilation 2
    {2, 11, 11, 8, 2, 2, 3, 3, 0, 0, 0, 0, 1, 1, true, false, 0},    // stride > kernel (gaps), ceil
    {1, 1, 1, 40, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, false, false, 0},    // 1x1
};

const Case kAvgCases[] = {
    // n   h    w   c  kh kw sh sw pt pl pb pr dh dw  ceil  cip  off
    {2, 14, 14, 96, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, false, false, 0},  // MobileNet-like 3x3/1, exclude pad
    {2, 14, 14, 96, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, false, true, 1},   // include pad, misaligned
    {2, 56, 56, 32, 2, 2, 2, 2, 0, 0, 0, 0, 1, 1, false, false, 0},  // DenseNet transition 2x2/2
    {2, 13, 11, 3, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, true, true, 0},     // C=3, odd, ceil + include pad
    {2, 13, 11, 7, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, true, false, 0},    // C=7, ceil, exclude pad
    {1, 10, 17, 33, 5, 4, 3, 2, 2, 1, 0, 2, 1, 1, true, true, 0},    // C=33, asymmetric, overlapping
    {2, 7, 7, 64, 7, 7, 1, 1, 0, 0, 0, 0, 1, 1, false, false, 0},    // 7x7 window = global
};

TEST(CudaPool, MaxPoolForwardAndBackwardMatchTwin) {
  REQUIRE_GPU();
  uint32_t seed = 1;
  for (const Case& k : kMaxCases)
    for (DataType t : kDtypes) {
      const std::string what = "max_pool2d " + describe(k, t);
      const Pool2dParams p = params_of(k);
      const size_t nx = static_cast<size_t>(p.n * p.h * p.w * p.c), ny = static_cast<size_t>(p.n * p.out_h * p.out_w * p.c);
      const std::vector<float> x = round_to(random_vector(nx, seed++), t);
      const std::vector<float> gy = round_to(random_vector(ny, seed++), t);
      std::vector<float> y_ref(ny), gx_ref(nx);
      std::vector<int32_t> idx_ref(ny);
      kernels::cpu::max_pool2d_forward(x.data(), y_ref.data(), idx_ref.data(), p);
      kernels::cpu::max_pool2d_backward(gy.data(), idx_ref.data(), gx_ref.data(), p);

      OffsetArray dx(nx, t, k.offset), dy(ny, t, k.offset), dgy(ny, t, k.offset), dgx(nx, t, k.offset);
      DeviceArray didx(ny + k.offset, DataType::f32);  // int32 storage, poisoned to -1
      int32_t* idx_ptr = didx.get<int32_t>() + k.offset;
      dx.upload(x);
      dgy.upload(gy);
      kernels::cuda::max_pool2d_forward(dx.ptr(), dy.ptr(), idx_ptr, t, p, nullptr);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess) << what;
      // The maximum is one of the inputs: exact in every dtype.
      EXPECT_TRUE(close_to_twin(dy.download(), y_ref, 0.0, what + " y"));
      std::vector<int32_t> idx = download_ints(didx);
      idx.erase(idx.begin(), idx.begin() + static_cast<long>(k.offset));
      EXPECT_EQ(idx, idx_ref) << what << " argmax";

      kernels::cuda::max_pool2d_backward(dgy.ptr(), idx_ptr, dgx.ptr(), t, p, nullptr);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess) << what;
      EXPECT_TRUE(close_to_twin(dgx.download(), gx_ref, default_tolerance(t), what + " grad_x"));

      // Without argmax (inference) the values are the same.
      dy.a.poison();
      kernels::cuda::max_pool2d_forward(dx.ptr(), dy.ptr(), nullptr, t, p, nullptr);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess) << what;
      EXPECT_TRUE(close_to_twin(dy.download(), y_ref, 0.0, what + " y without argmax"));
    }
}

TEST(CudaPool, MaxPoolPropagatesNaNAndPicksTheFirstMaximum) {
  REQUIRE_GPU();
  // 1x4x4x4, 2x2/2 windows: ties everywhere (all ones), and one NaN in the
  // top-left window of channel 1.
  Pool2dParams p;
  p.n = 1, p.h = 4, p.w = 4, p.c = 4, p.kernel_h = 2, p.kernel_w = 2, p.stride_h = 2, p.stride_w = 2;
  p.out_h = 2, p.out_w = 2;
  std::vector<float> x(64, 1.f);
  x[(1 * 4 + 1) * 4 + 1] = NAN;  // (h 1, w 1, c 1)
  std::vector<float> y_ref(16);
  std::vector<int32_t> idx_ref(16);
  kernels::cpu::max_pool2d_forward(x.data(), y_ref.data(), idx_ref.data(), p);
  for (DataType t : kDtypes) {
    DeviceArray dx(x, t), dy(16, t), didx(16, DataType::f32);
    kernels::cuda::max_pool2d_forward(dx.get(), dy.get(), didx.get<int32_t>(), t, p, nullptr);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    const std::vector<float> y = dy.download();
    EXPECT_TRUE(std::isnan(y[1])) << kernels::cuda::dtype_name(t);
    EXPECT_TRUE(close_to_twin(y, y_ref, 0.0, "max_pool2d NaN/ties"));
    EXPECT_EQ(download_ints(didx), idx_ref) << kernels::cuda::dtype_name(t);
  }
}

TEST(CudaPool, AvgPoolForwardAndBackwardMatchTwin) {
  REQUIRE_GPU();
  uint32_t seed = 100;
  for (const Case& k : kAvgCases)
    for (DataType t : kDtypes) {
      const std::string what = "avg_pool2d " + describe(k, t);
      const Pool2dParams p = params_of(k);
      const size_t nx = static_cast<size_t>(p.n * p.h * p.w * p.c), ny = static_cast<size_t>(p.n * p.out_h * p.out_w * p.c);
      const std::vector<float> x = round_to(random_vector(nx, seed++), t);
      const std::vector<float> gy = round_to(random_vector(ny, seed++), t);
      std::vector<float> y_ref(ny), gx_ref(nx);
      kernels::cpu::avg_pool2d_forward(x.data(), y_ref.data(), p);
      kernels::cpu::avg_pool2d_backward(gy.data(), gx_ref.data(), p);

      OffsetArray dx(nx, t, k.offset), dy(ny, t, k.offset), dgy(ny, t, k.offset), dgx(nx, t, k.offset);
      dx.upload(x);
      dgy.upload(gy);
      kernels::cuda::avg_pool2d_forward(dx.ptr(), dy.ptr(), t, p, nullptr);
      kernels::cuda::avg_pool2d_backward(dgy.ptr(), dgx.ptr(), t, p, nullptr);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess) << what;
      EXPECT_TRUE(close_to_twin(dy.download(), y_ref, default_tolerance(t), what + " y"));
      EXPECT_TRUE(close_to_twin(dgx.download(), gx_ref, default_tolerance(t), what + " grad_x"));
    }
}

TEST(CudaPool, GlobalAvgPoolForwardAndBackwardMatchTwin) {
  REQUIRE_GPU();
  struct G {
    int64_t n, hw, c;
    size_t offset;
  };
  const G cases[] = {
      {4, 49, 2048, 0},   // ResNet-50 head (batch 4)
      {4, 49, 1280, 1},   // MobileNetV2 head, misaligned
      {3, 1, 7, 0},       // 1x1 spatial
      {2, 143, 33, 0},    // 13x11, C=33
      {1, 3136, 64, 0},   // 56x56: long sums
      {5, 9, 3, 0},       // C=3
      {66000, 1, 8, 0},   // more images than the grid's y limit
  };
  uint32_t seed = 500;
  for (const G& k : cases)
    for (DataType t : kDtypes) {
      const std::string what = "global_avg_pool2d " + std::string(kernels::cuda::dtype_name(t)) + " n" +
                               std::to_string(k.n) + " hw" + std::to_string(k.hw) + " c" + std::to_string(k.c) +
                               (k.offset ? " misaligned" : "");
      const size_t nx = static_cast<size_t>(k.n * k.hw * k.c), ny = static_cast<size_t>(k.n * k.c);
      // Positive inputs: the mean is not a small difference of large sums.
      const std::vector<float> x = round_to(random_vector(nx, seed++, 0.5f, 1.5f), t);
      const std::vector<float> gy = round_to(random_vector(ny, seed++), t);
      std::vector<float> y_ref(ny), gx_ref(nx);
      kernels::cpu::global_avg_pool2d_forward(x.data(), y_ref.data(), k.n, k.hw, k.c);
      kernels::cpu::global_avg_pool2d_backward(gy.data(), gx_ref.data(), k.n, k.hw, k.c);

      OffsetArray dx(nx, t, k.offset), dy(ny, t, k.offset), dgy(ny, t, k.offset), dgx(nx, t, k.offset);
      dx.upload(x);
      dgy.upload(gy);
      kernels::cuda::global_avg_pool2d_forward(dx.ptr(), dy.ptr(), t, k.n, k.hw, k.c, nullptr);
      kernels::cuda::global_avg_pool2d_backward(dgy.ptr(), dgx.ptr(), t, k.n, k.hw, k.c, nullptr);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess) << what;
      EXPECT_TRUE(close_to_twin(dy.download(), y_ref, default_tolerance(t), what + " y"));
      EXPECT_TRUE(close_to_twin(dgx.download(), gx_ref, default_tolerance(t), what + " grad_x"));
    }
}

// ---- argument checks: before any CUDA call, so they run without a GPU ----------------------------

Pool2dParams small_params() {
  Case k{1, 8, 8, 4, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, false, false, 0};
  return params_of(k);
}

TEST(CudaPoolArgs, BadArgumentsThrowNamingTheLauncher) {
  float dummy[4];
  int32_t idx[4];
  const Pool2dParams ok = small_params();
  expect_invalid([&] { kernels::cuda::max_pool2d_forward(nullptr, dummy, idx, DataType::f32, ok, nullptr); },
                 "cuda::max_pool2d_forward", "x is null");
  expect_invalid([&] { kernels::cuda::max_pool2d_backward(dummy, nullptr, dummy, DataType::bf16, ok, nullptr); },
                 "cuda::max_pool2d_backward", "argmax is null");
  Pool2dParams wrong_out = ok;
  wrong_out.out_h += 2;  // (+1 is the ceil-mode size here, which is valid)
  expect_invalid([&] { kernels::cuda::avg_pool2d_forward(dummy, dummy, DataType::f16, wrong_out, nullptr); },
                 "cuda::avg_pool2d_forward", "out_h/out_w");
  Pool2dParams dilated = ok;
  dilated.dilation_h = 2;
  dilated.out_h = kernels::cpu::pool_output_size(8, 3, 2, 1, 1, 2, false);
  expect_invalid([&] { kernels::cuda::avg_pool2d_backward(dummy, dummy, DataType::f32, dilated, nullptr); },
                 "cuda::avg_pool2d_backward", "dilation");
  Pool2dParams zero_stride = ok;
  zero_stride.stride_w = 0;
  expect_invalid([&] { kernels::cuda::max_pool2d_forward(dummy, dummy, nullptr, DataType::f32, zero_stride, nullptr); },
                 "cuda::max_pool2d_forward", "stride");
  Pool2dParams huge = ok;
  huge.n = 1, huge.h = 65536, huge.w = 65536, huge.c = 1;
  huge.out_h = kernels::cpu::pool_output_size(65536, 3, 2, 1, 1, 1, false);
  huge.out_w = huge.out_h;
  expect_invalid([&] { kernels::cuda::max_pool2d_forward(dummy, dummy, nullptr, DataType::f32, huge, nullptr); },
                 "cuda::max_pool2d_forward", "32-bit");
  expect_invalid([&] { kernels::cuda::max_pool2d_forward(dummy, dummy, nullptr, static_cast<DataType>(7), ok, nullptr); },
                 "cuda::max_pool2d_forward", "dtype");
  expect_invalid([&] { kernels::cuda::global_avg_pool2d_forward(dummy, dummy, DataType::f32, 2, 0, 8, nullptr); },
                 "cuda::global_avg_pool2d_forward", "hw is 0");
  expect_invalid([&] { kernels::cuda::global_avg_pool2d_backward(dummy, nullptr, DataType::f32, 2, 4, 8, nullptr); },
                 "cuda::global_avg_pool2d_backward", "grad_x is null");
}

TEST(CudaPoolArgs, EmptyTensorsLaunchNothing) {
  // No CUDA call at all for an empty batch (runs without a GPU).
  Pool2dParams p = small_params();
  p.n = 0;
  EXPECT_NO_THROW(kernels::cuda::max_pool2d_forward(nullptr, nullptr, nullptr, DataType::f32, p, nullptr));
  EXPECT_NO_THROW(kernels::cuda::avg_pool2d_backward(nullptr, nullptr, DataType::bf16, p, nullptr));
  EXPECT_NO_THROW(kernels::cuda::global_avg_pool2d_forward(nullptr, nullptr, DataType::f16, 0, 49, 8, nullptr));
}

}  // namespace
}  // namespace graft
