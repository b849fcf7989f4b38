#include "engine/ops/dropout.h"

#include <cmath>

#include "engine/autograd/node.h"
#include "engine/core/kernel_launch.h"
#include "engine/ops/registry.h"
#include "kernels/cpu/random.h"
#include "kernels/cuda/dropout.h"

namespace graft {

// p == 1 is allowed, as in PyTorch: every element is dropped and the output
// (and gradient) is all zeros. The mask is drawn over the elements in memory
// order (row-major, or NHWC for a channels-last input, whose layout the output
// keeps), from counters reserved on `gen`: the same seed and offset give the
// same mask on any thread count.
Tensor dropout(const Tensor& x_in, double p, bool training, Generator& gen) {
  GRAFT_CHECK(x_in.defined(), "dropout: the input is an undefined tensor");
  ops::check_supported(ops::OpId::dropout, {&x_in});
  GRAFT_CHECK(p >= 0.0 && p <= 1.0, "dropout: probability p must be in [0, 1], got " << p << " for input "
                                                                                     << shape_str(x_in.shape()));
  if (!training || p == 0.0) return x_in;

  const bool keep_cl = !x_in.is_contiguous() && x_in.is_channels_last();
  const MemoryFormat format = keep_cl ? MemoryFormat::channels_last : MemoryFormat::contiguous;
  const Tensor x = keep_cl ? x_in : x_in.contiguous();
  const int64_t n = x.numel();
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device(), format);
  Tensor keep = Tensor::empty({n}, DType::u8, x.device());
  const float p_drop = static_cast<float>(p);
  const uint64_t offset = gen.reserve(kernels::cpu::random_blocks(n));
  if (x.device().is_cuda()) {
    // The same Philox mapping as the CPU: the same (seed, offset) drops the same elements.
    if (n > 0)
      cuda::launch("dropout", x.device(), [&](cudaStream_t s) {
        kernels::cuda::dropout_forward(cuda::kernel_dtype(x.dtype(), "dropout"), x.raw_data(), out.raw_data(),
                                       keep.data<uint8_t>(), n, p_drop, {gen.seed(), offset}, s);
      });
  } else {
    kernels::cpu::dropout_forward(x.data<float>(), out.data<float>(), keep.data<uint8_t>(), n, p_drop,
                                  {gen.seed(), offset});
  }

  if (autograd::needs_grad({&x})) {
    autograd::record("dropout", out, {x}, [keep, format, n, p_drop, dtype = x.dtype()](const Tensor& g,
                                                                                        const autograd::NeedsGrad&) {
      const Tensor gv = format == MemoryFormat::channels_last ? g.to_format(format) : g.contiguous();
      Tensor dx = Tensor::empty(gv.shape(), gv.dtype(), gv.device(), format);
      if (gv.device().is_cuda()) {
        GRAFT_CHECK(gv.dtype() == dtype, "dropout backward: gradient " << gv.str() << " differs in dtype from the input");
        if (n > 0)
          cuda::launch("dropout backward", gv.device(), [&](cudaStream_t s) {
            kernels::cuda::dropout_backward(cuda::kernel_dtype(dtype, "dropout"), gv.raw_data(), keep.data<uint8_t>(),
                                            dx.raw_data(), n, p_drop, s);
          });
      } else {
        kernels::cpu::dropout_backward(gv.data<float>(), keep.data<uint8_t>(), dx.data<float>(), n, p_drop);
      }
      return std::vector<Tensor>{dx};
    });
  }
  return out;
}

}  // namespace graft
