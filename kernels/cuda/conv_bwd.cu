// Backward implicit-GEMM convolution (kernels/cuda/conv.h): the data
// gradient (dy gathered through the taps against the per-group transposed
// weight) and the weight gradient (dy^T x over all output pixels, split over
// K into f32 partials summed in order by a second kernel).
#include "kernels/cuda/conv_tile.cuh"

namespace graft::kernels::cuda {
namespace convk {
namespace {

template <typename T>
__device__ __forceinline__ void store_pair(T* p, float v0, float v1) {
  if constexpr (sizeof(T) == 4)
    *reinterpret_cast<float2*>(p) = make_float2(v0, v1);
  else
    *reinterpret_cast<uint32_t*>(p) = mma::pack2<T>(v0, v1);
}

// ---- backward-data ------------------------------------------------------------------------
// One stride phase per block (blockIdx.z = group * splits + phase - phase_base:
// the launcher's "splits" are phases here; see convidx::Phase): A rows are the phase's input pixels m0 + tid / 4 (+ 64),
// B rows the group's input channels n0 + tid / 4 (+ 64), chunk column tid % 4,
// and k runs over the phase's contributing taps only.
template <typename T>
struct BwdDataPolicy {
  static constexpr bool kAK = true, kBK = true;
  const Args& args;
  int group, kc, row[2], k_total, k_tile_begin;
  convidx::Phase f;
  convidx::InputRow arow[2];
  convidx::DenseRow prow[2];
  convidx::DenseRow brow[2];

  __device__ BwdDataPolicy(const Args& a, int m0, int n0, int grp, int split, int tid) : args(a), group(grp) {
    kc = tid & 3;
    f = convidx::bwd_data_phase(a.q, a.phase_base + split);
    k_total = f.K;
    k_tile_begin = 0;
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      row[i] = (tid >> 2) + i * 64;
      if (a.plain)
        prow[i] = convidx::plain_row(m0 + row[i], f.M, a.q.o, grp * a.q.og);
      else
        arow[i] = convidx::bwd_data_a_row(a.q, f, grp, m0 + row[i]);
      brow[i] = convidx::bwd_data_b_row(a.q, grp, n0 + row[i]);
    }
  }
  __device__ __forceinline__ void load_a(char* tile, int k0) {
    const T* dy = static_cast<const T*>(args.a);
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      if (args.plain) {
        const convidx::DenseRow r = prow[i];
        const int K = k_total;
        load_chunk_kcontig<T>(tile, dy, args.vec, row[i], kc, k0, [&](int k) { return convidx::dense_at(r, k, K); });
      } else {
        const convidx::InputRow r = arow[i];
        const Geom& q = args.q;
        const convidx::Phase& ph = f;
        load_chunk_kcontig<T>(tile, dy, args.vec, row[i], kc, k0,
                              [&](int k) { return convidx::bwd_data_a_at(q, ph, r, k); });
      }
    }
  }
  __device__ __forceinline__ void load_b(char* tile, int k0) {
    const T* wt = static_cast<const T*>(args.b);
    const Geom& q = args.q;
    const convidx::Phase& ph = f;
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const convidx::DenseRow r = brow[i];
      load_chunk_kcontig<T>(tile, wt, args.vec, row[i], kc, k0,
                            [&](int k) { return convidx::bwd_data_b_at(q, ph, r, k); });
    }
  }
  // (m, n): the phase's input pixel m, input channel group * cg + n.
  __device__ __forceinline__ void store(int m, int n, float v0, float v1) const {
    const Geom& q = args.q;
    if (m >= f.M || n >= q.cg) return;
    const int off = convidx::bwd_data_pixel(q, f, m) * q.c + group * q.cg + n;
    const bool two = n + 1 < q.cg;
    T* dx = static_cast<T*>(args.out);
    if (two && args.pair_out) {
      store_pair(dx + off, v0, v1);
    } else {
      dx[off] = from_f32<T>(v0);
      if (two) dx[off + 1] = from_f32<T>(v1);
    }
  }
};

// ---- backward-weight ----------------------------------------------------------------------
// Both tiles are MN-contiguous (rows = k = output pixels). Each k row holds
// 128 / kVec chunks; the thread's chunk column mc = tid % that, its k rows
// tid / that and + (256 / that), which covers the stage's kBK rows in two.
template <typename T>
struct BwdWeightPolicy {
  static constexpr bool kAK = false, kBK = false;
  static constexpr int V = Elem<T>::kVec;
  static constexpr int kChunksPerRow = kTile / V;
  static constexpr int kRowsPerPass = kThreads / kChunksPerRow;
  static_assert(2 * kRowsPerPass == Elem<T>::kBK, "two passes of chunks cover one stage");
  const Args& args;
  int group, split, mc, krow[2], m_first, n_first, k_total, k_tile_begin;
  convidx::TapCol col;  // tap of this thread's first B column (all of its chunk when vec)

  __device__ BwdWeightPolicy(const Args& a, int m0, int n0, int grp, int spl, int tid)
      : args(a), group(grp), split(spl) {
    mc = tid % kChunksPerRow;
    k_total = a.K;
    k_tile_begin = spl * a.k_tiles_per_split;
    krow[0] = tid / kChunksPerRow;
    krow[1] = krow[0] + kRowsPerPass;
    m_first = m0 + mc * V;
    n_first = n0 + mc * V;
    col = convidx::bwd_weight_b_col(a.q, grp, n_first);
  }
  __device__ __forceinline__ void load_a(char* tile, int k0) {
    const T* dy = static_cast<const T*>(args.a);
    const Geom& q = args.q;
    const int grp = group, m = m_first;
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int pix = k0 + krow[i];
      load_chunk_mncontig<T>(tile, dy, args.vec, krow[i], mc,
                             [&](int e) { return convidx::bwd_weight_a_at(q, grp, m + e, pix); });
    }
  }
  __device__ __forceinline__ void load_b(char* tile, int k0) {
    const T* x = static_cast<const T*>(args.b);
    const Geom& q = args.q;
    const int grp = group, n = n_first;
    const convidx::TapCol c0 = col;
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int pix = k0 + krow[i];
      load_chunk_mncontig<T>(tile, x, args.vec, krow[i], mc, [&](int e) {
        const convidx::TapCol c = e == 0 ? c0 : convidx::bwd_weight_b_col(q, grp, n + e);
        return convidx::bwd_weight_b_at(q, c, pix);
      });
    }
  }
  // (m, n): output channel group * og + m, filter element n = (r, s, ci); f32 partial of this split.
  __device__ __forceinline__ void store(int m, int n, float v0, float v1) const {
    if (m >= args.M || n >= args.N) return;
    float* ws = static_cast<float*>(args.out) + split * args.split_stride;
    const int64_t off = int64_t(group * args.q.og + m) * args.N + n;
    if (n + 1 < args.N && args.pair_out) {
      *reinterpret_cast<float2*>(ws + off) = make_float2(v0, v1);
    } else {
      ws[off] = v0;
      if (n + 1 < args.N) ws[off + 1] = v1;
    }
  }
};

// dw[i] = sum over splits s (in order) of partial[s][i], rounded to T.
template <typename T>
__global__ void sum_partials_kernel(const float* __restrict__ partial, T* __restrict__ dw, int count, int splits) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < count; i += gridDim.x * blockDim.x) {
    float s = 0.0f;
    for (int k = 0; k < splits; ++k) s += partial[int64_t(k) * count + i];
    dw[i] = from_f32<T>(s);
  }
}

// wt (groups, C/g, KH, KW, O/g) from w (O, KH, KW, C/g).
template <typename T>
__global__ void transpose_weight_kernel(const T* __restrict__ w, T* __restrict__ wt, const Geom q) {
  const int count = q.o * q.kh * q.kw * q.cg, taps = q.kh * q.kw;
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < count; i += gridDim.x * blockDim.x) {
    const int ci = i % q.cg, rest = i / q.cg, rs = rest % taps, o = rest / taps;
    wt[convidx::transposed_weight_at(q, o, rs, ci)] = w[i];
  }
}

// Stream-ordered scratch, freed on the stream when the launcher returns or throws.
struct StreamScratch {
  void* p = nullptr;
  cudaStream_t stream;
  StreamScratch(size_t bytes, cudaStream_t s) : stream(s) { GRAFT_KERNEL_CUDA_CHECK(cudaMallocAsync(&p, bytes, s)); }
  ~StreamScratch() {
    if (p) cudaFreeAsync(p, stream);
  }
  StreamScratch(const StreamScratch&) = delete;
  StreamScratch& operator=(const StreamScratch&) = delete;
};

void check_dtype(const char* fn, DataType dt) {
  if (dt != DataType::f32 && dt != DataType::f16 && dt != DataType::bf16) fail(fn, "dt is not f32, f16 or bf16");
}

}  // namespace
}  // namespace convk

void conv2d_backward_data(const Conv2dParams& p, const void* dy, const void* w, void* dx, DataType dt,
                          cudaStream_t stream) {
  using namespace convk;
  const char* fn = "conv2d_backward_data";
  require_ptr(fn, dy, "dy");
  require_ptr(fn, w, "w");
  require_ptr(fn, dx, "dx");
  check_dtype(fn, dt);
  const Geom q = check_geometry(fn, p);
  if (q.cg > 65535 * kTile) fail(fn, "c / groups exceeds 65535 * 128");

  const size_t es = dtype_size(dt);
  const int vec = static_cast<int>(16 / es), bk = static_cast<int>(convidx::kKBytes / es);
  const int w_count = q.o * q.kh * q.kw * q.cg;
  StreamScratch wt(static_cast<size_t>(w_count) * es, stream);
  Args a{};
  a.q = q;
  a.a = dy;
  a.b = wt.p;
  a.out = dx;
  a.M = convidx::bwd_data_max_phase_m(q);  // grid x; each phase guards its own M
  a.N = q.cg;
  a.K = q.kh * q.kw * q.og;  // the largest phase K (stride 1); blocks use their phase's
  a.k_tiles_per_split = (a.K + bk - 1) / bk;
  a.split_stride = 0;
  // The phase's K is a multiple of O/g, so 16-byte chunks never straddle taps
  // (wt comes from cudaMallocAsync: aligned in practice; checked, not assumed).
  a.vec = q.og % vec == 0 && aligned16(dy) && aligned16(wt.p);
  a.plain = is_plain(p);
  a.pair_out = q.cg % 2 == 0 && aligned_to(dx, 2 * es);
  // Phases, at most 65535 / groups per launch (grid z).
  const int phases = convidx::bwd_data_phase_count(q), per_launch = std::max(1, 65535 / q.groups);
  GRAFT_DISPATCH_FLOAT(dt, T, {
    transpose_weight_kernel<T><<<grid_for(w_count, 256, 4096), 256, 0, stream>>>(static_cast<const T*>(w),
                                                                                 static_cast<T*>(wt.p), q);
    GRAFT_KERNEL_LAUNCH_CHECK();
    for (int first = 0; first < phases; first += per_launch) {
      a.phase_base = first;
      a.splits = std::min(per_launch, phases - first);
      launch_igemm<T, BwdDataPolicy>(a, q.groups, stream);
    }
  });
}

void conv2d_backward_weight(const Conv2dParams& p, const void* x, const void* dy, void* dw, DataType dt,
                            cudaStream_t stream) {
  using namespace convk;
  const char* fn = "conv2d_backward_weight";
  require_ptr(fn, x, "x");
  require_ptr(fn, dy, "dy");
  require_ptr(fn, dw, "dw");
  check_dtype(fn, dt);
  const Geom q = check_geometry(fn, p);
  const int n_cols = q.kh * q.kw * q.cg;
  if (n_cols > 65535 * kTile) fail(fn, "kh * kw * c / groups exceeds 65535 * 128");

  const size_t es = dtype_size(dt);
  const int vec = static_cast<int>(16 / es), bk = static_cast<int>(convidx::kKBytes / es);
  Args a{};
  a.q = q;
  a.a = dy;
  a.b = x;
  a.M = q.og;
  a.N = n_cols;
  a.K = q.n * q.oh * q.ow;
  a.vec = q.og % vec == 0 && q.cg % vec == 0 && aligned16(x) && aligned16(dy);
  a.plain = false;
  a.phase_base = 0;
  a.pair_out = n_cols % 2 == 0;  // partials are float2-aligned: cudaMallocAsync base, even offsets

  // Split K so that about two blocks per SM are busy, each split at least 8
  // k tiles long; splits * groups within the grid's z limit.
  int device = 0, sms = 0;
  GRAFT_KERNEL_CUDA_CHECK(cudaGetDevice(&device));
  GRAFT_KERNEL_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  const int64_t tiles = int64_t((a.M + kTile - 1) / kTile) * ((a.N + kTile - 1) / kTile) * q.groups;
  const int k_tiles = (a.K + bk - 1) / bk;
  int64_t splits = (2 * int64_t(sms) + tiles - 1) / tiles;
  splits = std::min<int64_t>(splits, std::max(1, k_tiles / 8));
  splits = std::min<int64_t>(splits, std::min<int64_t>(256, 65535 / q.groups));
  splits = std::max<int64_t>(splits, 1);
  a.k_tiles_per_split = static_cast<int>((k_tiles + splits - 1) / splits);
  a.splits = (k_tiles + a.k_tiles_per_split - 1) / a.k_tiles_per_split;
  const int w_count = q.o * n_cols;
  a.split_stride = w_count;
  StreamScratch partial(static_cast<size_t>(a.splits) * static_cast<size_t>(w_count) * sizeof(float), stream);
  a.out = partial.p;
  a.pair_out = a.pair_out && aligned_to(partial.p, 2 * sizeof(float));
  GRAFT_DISPATCH_FLOAT(dt, T, {
    launch_igemm<T, BwdWeightPolicy>(a, q.groups, stream);
    sum_partials_kernel<T><<<grid_for(w_count, 256, 4096), 256, 0, stream>>>(static_cast<const float*>(partial.p),
                                                                            static_cast<T*>(dw), w_count, a.splits);
    GRAFT_KERNEL_LAUNCH_CHECK();
  });
}

}  // namespace graft::kernels::cuda
