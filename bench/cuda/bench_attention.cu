// Fused attention (kernels/cuda/attention.h), bf16, in TFLOP/s:
//   forward 4 * B * H * S^2 * d (Q K^T and P V), backward 2.5x that (five
//   products: S recomputed, dV, dP, dK, dQ), forward + backward 3.5x.
// Shapes: ViT-B/16 attention (H 12, S 197, d 64) at B 64 and 256, and long
// sequences (S 1024, 4096, 8192; d 64 and 128) with B * H chosen so that
// B * H * S = 131072 (enough CTAs to fill an H100). The PyTorch SDPA flash
// baseline of the same names + "@torch_sdpa" comes from
// bench/cuda/attention_sdpa_torch.py (a separate JSON paired by results.py).
// Each kernel's output is checked for finiteness once before it is timed.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "bench/cuda/harness.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/random.h"

namespace graft::bench {
namespace {

namespace kc = kernels::cuda;
using kc::DataType;

__global__ void attn_bench_to_bf16(const float* in, __nv_bfloat16* out, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = __float2bfloat16_rn(in[i]);
}

void fill_bf16(void* p, int64_t n, float lo, float hi, uint64_t seed) {
  DeviceBuffer tmp(static_cast<size_t>(n) * 4);
  kc::fill_uniform(tmp.as<float>(), n, lo, hi, {seed, 0}, nullptr);
  attn_bench_to_bf16<<<2048, 256>>>(tmp.as<float>(), static_cast<__nv_bfloat16*>(p), n);
  BENCH_CUDA_CHECK(cudaGetLastError());
  BENCH_CUDA_CHECK(cudaDeviceSynchronize());
}

// Some bf16 elements of p (the first `count`), all finite?
bool finite_bf16(const void* p, int64_t count) {
  std::vector<uint16_t> h(static_cast<size_t>(count));
  BENCH_CUDA_CHECK(cudaMemcpy(h.data(), p, h.size() * 2, cudaMemcpyDeviceToHost));
  for (uint16_t b : h) {
    const uint32_t bits = uint32_t(b) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    if (!std::isfinite(f)) return false;
  }
  return true;
}

enum class Pass { fwd, bwd, fwdbwd };

struct Problem {
  kc::AttentionParams p;
  int64_t nq, nk;
  DeviceBuffer q, k, v, o, dout, dq, dk, dv, lse, ws;
  explicit Problem(int64_t B, int64_t H, int64_t S, int64_t d)
      : p(make(B, H, S, d)),
        nq(B * H * S * d),
        nk(B * H * S * d),
        q(nq * 2), k(nk * 2), v(nk * 2), o(nq * 2), dout(nq * 2), dq(nq * 2), dk(nk * 2), dv(nk * 2),
        lse(static_cast<size_t>(B * H * S) * 4), ws(static_cast<size_t>(kc::attention_backward_workspace_bytes(p))) {
    fill_bf16(q.p, nq, -1.f, 1.f, 11);
    fill_bf16(k.p, nk, -1.f, 1.f, 12);
    fill_bf16(v.p, nk, -1.f, 1.f, 13);
    fill_bf16(dout.p, nq, -1.f, 1.f, 14);
  }
  static kc::AttentionParams make(int64_t B, int64_t H, int64_t S, int64_t d) {
    kc::AttentionParams p;
    p.batch = B, p.heads = H, p.seq_q = p.seq_k = S, p.head_dim = p.head_dim_v = d;
    p.scale = 1.f / std::sqrt(static_cast<float>(d));
    return p;
  }
  void forward() {
    kc::attention_forward(DataType::bf16, p, q.p, k.p, v.p, nullptr, 0, {}, o.p, lse.as<float>(), nullptr);
  }
  void backward() {
    kc::attention_backward(DataType::bf16, p, q.p, k.p, v.p, nullptr, 0, {}, o.p, dout.p, lse.as<float>(), dq.p, dk.p,
                           dv.p, ws.p, nullptr);
  }
};

void attention(benchmark::State& state, Pass pass, int64_t B, int64_t H, int64_t S, int64_t d) {
  Problem pr(B, H, S, d);
  pr.forward();
  if (pass != Pass::fwd) pr.backward();
  BENCH_CUDA_CHECK(cudaDeviceSynchronize());
  if (!finite_bf16(pr.o.p, 4096)) return state.SkipWithError("attention_forward: non-finite output");
  if (pass != Pass::fwd && !(finite_bf16(pr.dq.p, 4096) && finite_bf16(pr.dk.p, 4096) && finite_bf16(pr.dv.p, 4096)))
    return state.SkipWithError("attention_backward: non-finite gradient");
  const double fwd_flops = 4.0 * double(B) * double(H) * double(S) * double(S) * double(d);
  switch (pass) {
    case Pass::fwd:
      run_timed(state, [&] { pr.forward(); });
      set_flops(state, fwd_flops);
      break;
    case Pass::bwd:
      run_timed(state, [&] { pr.backward(); });
      set_flops(state, 2.5 * fwd_flops);
      break;
    case Pass::fwdbwd:
      run_timed(state, [&] {
        pr.forward();
        pr.backward();
      });
      set_flops(state, 3.5 * fwd_flops);
      break;
  }
}

struct Shape {
  const char* name;
  int64_t B, H, S, d;
};
// Keep in sync with bench/cuda/attention_sdpa_torch.py.
const Shape kShapes[] = {
    {"vit_b16/B64", 64, 12, 197, 64},      {"vit_b16/B256", 256, 12, 197, 64},
    {"S1024_d64/BH128", 128, 1, 1024, 64}, {"S1024_d128/BH128", 128, 1, 1024, 128},
    {"S4096_d64/BH32", 32, 1, 4096, 64},   {"S4096_d128/BH32", 32, 1, 4096, 128},
    {"S8192_d64/BH16", 16, 1, 8192, 64},   {"S8192_d128/BH16", 16, 1, 8192, 128},
};

const int kRegistered = [] {
  const std::pair<Pass, const char*> passes[] = {
      {Pass::fwd, "attention_fwd"}, {Pass::bwd, "attention_bwd"}, {Pass::fwdbwd, "attention_fwdbwd"}};
  for (const auto& [pass, kernel] : passes)
    for (const Shape& s : kShapes)
      benchmark::RegisterBenchmark((std::string(kernel) + "/bf16/" + s.name).c_str(), attention, pass, s.B, s.H, s.S,
                                   s.d)
          ->UseManualTime()
          ->Unit(benchmark::kMillisecond);
  return 0;
}();

}  // namespace
}  // namespace graft::bench
