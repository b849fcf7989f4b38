// The strided copy / fill kernels (kernels/cuda/copy.h) against the engine's
// CPU copy (copy_cpu, the twin): every dtype pair, row-major, channels-last,
// permuted and broadcast (stride-0) operands, odd sizes; bit-exact, since both
// convert through double with the same rounding. The bad-argument tests run
// without a GPU (the launchers check before any CUDA call).
#include "kernels/cuda/copy.h"

#include <cuda_runtime.h>

#include <cstring>
#include <string>
#include <vector>

#include "engine/core/kernel_launch.h"
#include "engine/core/tensor.h"
#include "tests/cuda/cuda_test_util.h"
#include "tests/support/reference.h"

namespace graft::testing {
namespace {

namespace kg = kernels::cuda;

const DType kAll[] = {DType::f32, DType::f16, DType::bf16, DType::i32, DType::i64, DType::u8, DType::boolean};

kg::ElemType et(DType t) { return static_cast<kg::ElemType>(static_cast<int>(t)); }

// A device copy of a CPU tensor's whole storage (so views keep their offsets and strides).
struct DeviceStorage {
  void* p = nullptr;
  size_t bytes = 0;
  explicit DeviceStorage(const Tensor& t) : bytes(t.impl().storage->nbytes()) {
    if (cudaMalloc(&p, bytes) != cudaSuccess) p = nullptr;
    if (p) cudaMemcpy(p, t.impl().storage->data(), bytes, cudaMemcpyHostToDevice);
  }
  ~DeviceStorage() { if (p) cudaFree(p); }
  void* at(const Tensor& t) const { return static_cast<char*>(p) + t.offset() * static_cast<int64_t>(dtype_size(t.dtype())); }
  void download_into(const Tensor& t) const { cudaMemcpy(t.impl().storage->data(), p, bytes, cudaMemcpyDeviceToHost); }
};

// dst (CPU, any strides, dtype) = src converted, once by copy_cpu and once by
// strided_copy on the GPU; the destinations' bytes must be identical.
void check_copy(const Tensor& dst_like, const Tensor& src, const std::string& what) {
  SCOPED_TRACE(what + ": " + dtype_name(src.dtype()) + " -> " + dtype_name(dst_like.dtype()) + " " +
               shape_str(src.shape()));
  Tensor want = Tensor::empty_strided(dst_like.shape(), dst_like.strides(), dst_like.dtype());
  std::memset(want.impl().storage->data(), 0, want.impl().storage->nbytes());
  Tensor got = Tensor::empty_strided(dst_like.shape(), dst_like.strides(), dst_like.dtype());
  std::memset(got.impl().storage->data(), 0, got.impl().storage->nbytes());
  copy_cpu(want, src);
  DeviceStorage ds(src), dd(got);
  ASSERT_TRUE(ds.p && dd.p);
  kernels::StridedIter<2> it;
  it.ndim = static_cast<int>(src.dim());
  for (int d = 0; d < it.ndim; ++d) {
    it.size[d] = src.shape()[d];
    it.stride[0][d] = got.strides()[d];
    it.stride[1][d] = src.strides()[d];
  }
  kg::strided_copy(it, et(got.dtype()), dd.at(got), et(src.dtype()), ds.at(src), nullptr);
  CUDA_OK(cudaDeviceSynchronize());
  dd.download_into(got);
  const size_t n = want.impl().storage->nbytes();
  ASSERT_EQ(std::memcmp(got.impl().storage->data(), want.impl().storage->data(), n), 0);
}

TEST(CopyKernel, EveryDtypePairAndLayout) {
  REQUIRE_GPU();
  Generator gen = test_generator();
  for (const Shape& s : {Shape{}, Shape{1}, Shape{7}, Shape{3, 33}, Shape{2, 5, 3, 7}, Shape{1025}}) {
    for (DType from : kAll) {
      for (DType to : kAll) {
        // Values every type of the pair holds (u8 has no negatives; an
        // out-of-range integer conversion is undefined on the CPU).
        const bool unsigned_side = from == DType::u8 || to == DType::u8;
        const Tensor src = random_tensor(s, gen, unsigned_side ? 0.f : -250.f, 250.f).to(from);
        check_copy(Tensor::empty(s, to), src, "row-major");
        if (s.size() == 4) {
          check_copy(Tensor::empty(s, to, Device::cpu(), MemoryFormat::channels_last), src, "to channels-last");
          const Tensor cl = Tensor::empty(s, from, Device::cpu(), MemoryFormat::channels_last);
          copy_cpu(cl, src);
          check_copy(Tensor::empty(s, to), cl, "from channels-last");
        }
      }
    }
  }
}

TEST(CopyKernel, BroadcastAndStridedViews) {
  REQUIRE_GPU();
  Generator gen = test_generator();
  // A (1, 5) row read with stride 0 over 4 rows; a column slice with a step.
  const Tensor row = random_tensor({1, 5}, gen);
  auto impl = std::make_shared<TensorImpl>(*row.impl_ptr());
  impl->shape = {4, 5};
  impl->strides = {0, 1};
  check_copy(Tensor::empty({4, 5}), Tensor(impl), "broadcast rows");
  check_copy(Tensor::empty({4, 5}, DType::bf16), Tensor(impl), "broadcast rows to bf16");
  const Tensor big = random_tensor({6, 9}, gen);
  auto sl = std::make_shared<TensorImpl>(*big.impl_ptr());
  sl->shape = {3, 4};
  sl->strides = {18, 2};
  sl->offset = 1;
  check_copy(Tensor::empty({3, 4}), Tensor(sl), "strided view");
}

TEST(CopyKernel, FillWritesTheGivenBits) {
  REQUIRE_GPU();
  for (DType t : kAll) {
    Tensor want = Tensor::empty({3, 7}, t);
    want.fill_(1.0);
    DeviceStorage d(want);
    CUDA_OK(cudaMemset(d.p, 0, d.bytes));
    uint64_t bits = 0;
    std::memcpy(&bits, want.raw_data(), dtype_size(t));
    kernels::StridedIter<1> it;
    it.ndim = 2;
    it.size[0] = 3;
    it.size[1] = 7;
    it.stride[0][0] = 7;
    it.stride[0][1] = 1;
    kg::strided_fill(it, et(t), d.p, bits, nullptr);
    CUDA_OK(cudaDeviceSynchronize());
    Tensor got = Tensor::empty({3, 7}, t);
    d.download_into(got);
    EXPECT_EQ(std::memcmp(got.raw_data(), want.raw_data(), want.nbytes()), 0) << dtype_name(t);
  }
}

// The engine's dtype -> kernel element type map (cuda::elem_type, used by
// every CUDA copy and fill) and the float-kernel map (cuda::kernel_dtype):
// same size, same name, for every dtype. Runs without a GPU.
TEST(CopyKernel, EngineDtypesMapToTheKernelTypes) {
  for (DType t : kAll) {
    const kg::ElemType e = cuda::elem_type(t);
    EXPECT_EQ(kg::elem_type_size(e), dtype_size(t)) << dtype_name(t);
    EXPECT_STREQ(kg::elem_type_name(e), dtype_name(t));
    if (t == DType::f32 || t == DType::f16 || t == DType::bf16) {
      EXPECT_EQ(kg::dtype_size(cuda::kernel_dtype(t, "test")), dtype_size(t)) << dtype_name(t);
      EXPECT_STREQ(kg::dtype_name(cuda::kernel_dtype(t, "test")), dtype_name(t));
    } else {
      EXPECT_THROW(cuda::kernel_dtype(t, "test"), Error) << dtype_name(t);
    }
  }
}

TEST(CopyKernel, BadArgumentsThrowBeforeAnyCudaCall) {
  kernels::StridedIter<2> it;
  it.ndim = 1;
  it.size[0] = 4;
  it.stride[0][0] = 1;
  it.stride[1][0] = 1;
  int dummy = 0;
  expect_invalid([&] { kg::strided_copy(it, kg::ElemType::f32, nullptr, kg::ElemType::f32, &dummy, nullptr); },
                 "strided_copy", "'dst' is null");
  expect_invalid([&] { kg::strided_copy(it, static_cast<kg::ElemType>(42), &dummy, kg::ElemType::f32, &dummy, nullptr); },
                 "strided_copy", "dst_t");
  it.stride[0][0] = 0;  // every element would write one place
  expect_invalid([&] { kg::strided_copy(it, kg::ElemType::f32, &dummy, kg::ElemType::f32, &dummy, nullptr); },
                 "strided_copy", "stride 0");
  kernels::StridedIter<1> f;
  f.ndim = 1;
  f.size[0] = -1;
  expect_invalid([&] { kg::strided_fill(f, kg::ElemType::f32, &dummy, 0, nullptr); }, "strided_fill", "negative");
  EXPECT_EQ(kg::elem_type_size(kg::ElemType::i64), 8u);
  EXPECT_STREQ(kg::elem_type_name(kg::ElemType::boolean), "bool");
}

}  // namespace
}  // namespace graft::testing
