// Forward implicit-GEMM convolution with the fused epilogue (kernels/cuda/conv.h).
// A = im2col(x) gathered per tile (or the input itself for a 1x1 stride-1
// unpadded conv), B = w, both K-contiguous in global and shared memory.
#include "kernels/cuda/conv_tile.cuh"

namespace graft::kernels::cuda {
namespace convk {
namespace {

__device__ __forceinline__ float activate(float v, int act) {
  switch (act) {
    case int(ConvActivation::relu): return fmaxf(v, 0.0f);
    case int(ConvActivation::relu6): return fminf(fmaxf(v, 0.0f), 6.0f);
    case int(ConvActivation::silu): return v / (1.0f + __expf(-v));
    default: return v;
  }
}

template <typename T>
__device__ __forceinline__ void store_pair(T* p, float v0, float v1) {
  if constexpr (sizeof(T) == 4)
    *reinterpret_cast<float2*>(p) = make_float2(v0, v1);
  else
    *reinterpret_cast<uint32_t*>(p) = mma::pack2<T>(v0, v1);
}

// Rows of the A tile: output pixels m0 + (tid / 4) and + 64; rows of the B
// tile: output channels n0 + (tid / 4) and + 64; the thread's 16-byte chunk
// column in both is tid % 4 (4 chunks = the 64 bytes of one stage's k).
template <typename T>
struct FwdPolicy {
  static constexpr bool kAK = true, kBK = true;
  const Args& args;
  int group, kc, row[2], k_total, k_tile_begin;
  convidx::PixelRow arow[2];  // im2col rows (general case)
  convidx::DenseRow prow[2];  // dense rows (plain 1x1)
  convidx::DenseRow brow[2];

  __device__ FwdPolicy(const Args& a, int m0, int n0, int grp, int /*split*/, int tid) : args(a), group(grp) {
    kc = tid & 3;
    k_total = a.K;
    k_tile_begin = 0;
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      row[i] = (tid >> 2) + i * 64;
      if (a.plain)
        prow[i] = convidx::plain_row(m0 + row[i], a.M, a.q.c, grp * a.q.cg);
      else
        arow[i] = convidx::fwd_a_row(a.q, grp, m0 + row[i]);
      brow[i] = convidx::fwd_b_row(a.q, grp, n0 + row[i]);
    }
  }
  __device__ __forceinline__ void load_a(char* tile, int k0) {
    const T* x = static_cast<const T*>(args.a);
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      if (args.plain) {
        const convidx::DenseRow r = prow[i];
        const int K = args.K;
        load_chunk_kcontig<T>(tile, x, args.vec, row[i], kc, k0, [&](int k) { return convidx::dense_at(r, k, K); });
      } else {
        const convidx::PixelRow r = arow[i];
        const Geom& q = args.q;
        load_chunk_kcontig<T>(tile, x, args.vec, row[i], kc, k0, [&](int k) { return convidx::fwd_a_at(q, r, k); });
      }
    }
  }
  __device__ __forceinline__ void load_b(char* tile, int k0) {
    const T* w = static_cast<const T*>(args.b);
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const convidx::DenseRow r = brow[i];
      const int K = args.K;
      load_chunk_kcontig<T>(tile, w, args.vec, row[i], kc, k0, [&](int k) { return convidx::dense_at(r, k, K); });
    }
  }
  __device__ __forceinline__ float epilogue(float v, int oc, int off) const {
    if (args.scale) v *= args.scale[oc];
    if (args.shift) v += args.shift[oc];
    if (args.residual) v += to_f32(static_cast<const T*>(args.residual)[off]);
    return activate(v, args.act);
  }
  // (m, n), (m, n + 1): output pixel m, output channel group * og + n.
  __device__ __forceinline__ void store(int m, int n, float v0, float v1) const {
    const Geom& q = args.q;
    if (m >= args.M || n >= q.og) return;
    const int oc = group * q.og + n, off = m * q.o + oc;
    const bool two = n + 1 < q.og;
    T* y = static_cast<T*>(args.out);
    v0 = epilogue(v0, oc, off);
    if (two) v1 = epilogue(v1, oc + 1, off + 1);
    if (two && args.pair_out) {
      store_pair(y + off, v0, v1);
    } else {
      y[off] = from_f32<T>(v0);
      if (two) y[off + 1] = from_f32<T>(v1);
    }
  }
};

}  // namespace
}  // namespace convk

void conv2d_forward(const Conv2dParams& p, const void* x, const void* w, void* y, DataType dt,
                    const ConvEpilogue& epilogue, cudaStream_t stream) {
  using namespace convk;
  const char* fn = "conv2d_forward";
  require_ptr(fn, x, "x");
  require_ptr(fn, w, "w");
  require_ptr(fn, y, "y");
  if (dt != DataType::f32 && dt != DataType::f16 && dt != DataType::bf16) fail(fn, "dt is not f32, f16 or bf16");
  const int act = static_cast<int>(epilogue.act);
  if (act < 0 || act > 3) fail(fn, "epilogue.act is not a ConvActivation");
  const Geom q = check_geometry(fn, p);
  if (q.og > 65535 * kTile) fail(fn, "o / groups exceeds 65535 * 128");

  const size_t es = dtype_size(dt);
  const int vec = static_cast<int>(16 / es), bk = static_cast<int>(convidx::kKBytes / es);
  Args a{};
  a.q = q;
  a.a = x;
  a.b = w;
  a.out = y;
  a.M = q.n * q.oh * q.ow;
  a.N = q.og;
  a.K = q.kh * q.kw * q.cg;
  a.splits = 1;
  a.phase_base = 0;
  a.k_tiles_per_split = (a.K + bk - 1) / bk;
  a.split_stride = 0;
  a.vec = q.cg % vec == 0 && aligned16(x) && aligned16(w);
  a.plain = is_plain(p);
  a.pair_out = q.og % 2 == 0 && aligned_to(y, 2 * es);
  a.scale = epilogue.scale;
  a.shift = epilogue.shift;
  a.residual = epilogue.residual;
  a.act = act;
  GRAFT_DISPATCH_FLOAT(dt, T, launch_igemm<T, FwdPolicy>(a, q.groups, stream));
}

}  // namespace graft::kernels::cuda
