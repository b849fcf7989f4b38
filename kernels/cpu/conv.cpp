#include "kernels/cpu/conv.h"

#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <vector>

#include "kernels/cpu/gemm.h"

namespace graft::kernels::cpu {

namespace {

// ---- chunking ----------------------------------------------------------------
//
// A chunk is a run of consecutive output pixels (flattened over N, outH,
// outW). Its im2col matrix is pixels x filter_size floats. Big enough chunks
// amortise the weight packing OpenBLAS repeats in every call (about one packed
// weight element per `pixels` multiply-adds); small enough ones keep the
// gathered rows in cache between im2col writing them and sgemm reading them.
constexpr int64_t kChunkBytes = int64_t(1) << 20;  // target im2col bytes per chunk
constexpr int64_t kMinChunkPixels = 192;           // below this, weight packing dominates

struct Chunks {
  int64_t pixels = 0;  // per chunk (the last may be shorter)
  int64_t count = 0;
  int64_t begin(int64_t i) const { return i * pixels; }
};

// Splits `total` pixels into chunks whose im2col rows (`row_floats` each; 0
// when no buffer is needed) stay near kChunkBytes, with at least one chunk
// per thread when there are enough pixels, and a count that is a multiple of
// the thread count when chunks are few (so no thread idles at the end).
Chunks plan_chunks(int64_t total, int64_t row_floats, int threads) {
  Chunks c;
  if (total <= 0) return c;
  const int64_t per = row_floats > 0 ? std::max(kMinChunkPixels, kChunkBytes / (row_floats * int64_t(sizeof(float))))
                                     : total;
  int64_t count = (total + per - 1) / per;
  if (count < threads) count = std::min<int64_t>(threads, std::max<int64_t>(1, total / kMinChunkPixels));
  else if (count < 4 * threads) count = (count + threads - 1) / threads * threads;
  c.pixels = (total + count - 1) / count;
  c.count = (total + c.pixels - 1) / c.pixels;
  return c;
}

// 64-byte aligned scratch, one per thread.
struct Scratch {
  float* data = nullptr;
  explicit Scratch(int64_t floats) {
    if (floats <= 0) return;
    const size_t bytes = ((static_cast<size_t>(floats) * sizeof(float) + 63) / 64) * 64;
    data = static_cast<float*>(std::aligned_alloc(64, bytes));
    if (!data) throw std::bad_alloc();
  }
  ~Scratch() { std::free(data); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
};

// ---- geometry ------------------------------------------------------------------

struct Geometry {
  int64_t out_h, out_w, out_hw;  // output spatial size
  int64_t cg, og, k;             // channels per group in and out, filter size
  bool pointwise;                // 1x1, stride 1, no padding: the input *is* the im2col matrix
  explicit Geometry(const Conv2dParams& p)
      : out_h(p.out_h()),
        out_w(p.out_w()),
        out_hw(p.out_h() * p.out_w()),
        cg(p.in_channels_per_group()),
        og(p.out_channels_per_group()),
        k(p.filter_size()),
        pointwise(p.kh == 1 && p.kw == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_top == 0 && p.pad_left == 0 &&
                  p.pad_bottom == 0 && p.pad_right == 0) {}
};

// Walks output pixels q = begin, begin+1, ... yielding (n, oh, ow).
struct PixelCursor {
  int64_t n, oh, ow;
  const Geometry& g;
  PixelCursor(const Geometry& geo, int64_t q) : g(geo) {
    n = q / g.out_hw;
    const int64_t r = q % g.out_hw;
    oh = r / g.out_w;
    ow = r % g.out_w;
  }
  void next() {
    if (++ow == g.out_w) {
      ow = 0;
      if (++oh == g.out_h) {
        oh = 0;
        ++n;
      }
    }
  }
};

// col[i, (kh, kw, c)] = x[n, ih, iw, group*cg + c] (0 in the padding) for the
// `count` output pixels starting at q0.
void im2col(const Conv2dParams& p, const Geometry& g, const float* x, int64_t group, int64_t q0, int64_t count,
            float* col) {
  const bool whole_rows = p.dilation_w == 1 && g.cg == p.c;  // the kW taps of one kh are contiguous in x
  PixelCursor at(g, q0);
  for (int64_t i = 0; i < count; ++i, at.next()) {
    float* row = col + i * g.k;
    const int64_t ih0 = at.oh * p.stride_h - p.pad_top;
    const int64_t iw0 = at.ow * p.stride_w - p.pad_left;
    for (int64_t a = 0; a < p.kh; ++a) {
      float* dst = row + a * p.kw * g.cg;
      const int64_t ih = ih0 + a * p.dilation_h;
      if (ih < 0 || ih >= p.h) {
        std::memset(dst, 0, sizeof(float) * p.kw * g.cg);
        continue;
      }
      const float* src = x + ((at.n * p.h + ih) * p.w) * p.c + group * g.cg;
      if (whole_rows && iw0 >= 0 && iw0 + p.kw <= p.w) {
        std::memcpy(dst, src + iw0 * p.c, sizeof(float) * p.kw * p.c);
        continue;
      }
      for (int64_t b = 0; b < p.kw; ++b) {
        const int64_t iw = iw0 + b * p.dilation_w;
        if (iw < 0 || iw >= p.w) std::memset(dst + b * g.cg, 0, sizeof(float) * g.cg);
        else std::memcpy(dst + b * g.cg, src + iw * p.c, sizeof(float) * g.cg);
      }
    }
  }
}

// dx[n, ih, iw, group*cg + c] += col[i, (kh, kw, c)]: the adjoint of im2col.
void col2im_add(const Conv2dParams& p, const Geometry& g, const float* col, int64_t group, int64_t q0, int64_t count,
                float* dx) {
  PixelCursor at(g, q0);
  for (int64_t i = 0; i < count; ++i, at.next()) {
    const float* row = col + i * g.k;
    const int64_t ih0 = at.oh * p.stride_h - p.pad_top;
    const int64_t iw0 = at.ow * p.stride_w - p.pad_left;
    for (int64_t a = 0; a < p.kh; ++a) {
      const int64_t ih = ih0 + a * p.dilation_h;
      if (ih < 0 || ih >= p.h) continue;
      float* dst_row = dx + ((at.n * p.h + ih) * p.w) * p.c + group * g.cg;
      for (int64_t b = 0; b < p.kw; ++b) {
        const int64_t iw = iw0 + b * p.dilation_w;
        if (iw < 0 || iw >= p.w) continue;
        float* dst = dst_row + iw * p.c;
        const float* src = row + (a * p.kw + b) * g.cg;
        for (int64_t c = 0; c < g.cg; ++c) dst[c] += src[c];
      }
    }
  }
}

void parallel_zero(float* data, int64_t n) {
  constexpr int64_t kBlock = int64_t(1) << 16;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < blocks; ++i)
    std::memset(data + i * kBlock, 0, sizeof(float) * std::min(kBlock, n - i * kBlock));
}

}  // namespace

// ---- forward -------------------------------------------------------------------------

void conv2d_forward(const Conv2dParams& p, const float* x, const float* w, const float* b, float* y) {
  const Geometry g(p);
  const int64_t pixels = p.n * g.out_hw;
  const int threads = omp_get_max_threads();
  const Chunks chunks = plan_chunks(pixels, g.pointwise ? 0 : g.k, threads);
  const float beta = b ? 1.f : 0.f;  // with a bias, rows start as the bias and sgemm adds into them

  BlasSingleThreaded one_pool;  // each OpenMP thread runs its own single-threaded sgemm
#pragma omp parallel
  {
    Scratch col(g.pointwise ? 0 : chunks.pixels * g.k);
#pragma omp for schedule(dynamic)
    for (int64_t ci = 0; ci < chunks.count; ++ci) {
      const int64_t q0 = chunks.begin(ci);
      const int64_t count = std::min(chunks.pixels, pixels - q0);
      float* yc = y + q0 * p.o;
      if (b)
        for (int64_t i = 0; i < count; ++i) std::memcpy(yc + i * p.o, b, sizeof(float) * p.o);
      for (int64_t grp = 0; grp < p.groups; ++grp) {
        const float* wg = w + grp * g.og * g.k;
        if (g.pointwise) {
          sgemm(Trans::no, Trans::yes, count, g.og, g.k, 1.f, x + q0 * p.c + grp * g.cg, p.c, wg, g.k, beta,
                yc + grp * g.og, p.o);
        } else {
          im2col(p, g, x, grp, q0, count, col.data);
          sgemm(Trans::no, Trans::yes, count, g.og, g.k, 1.f, col.data, g.k, wg, g.k, beta, yc + grp * g.og, p.o);
        }
      }
    }
  }
}

// ---- backward: data ------------------------------------------------------------------
//
// dcol = dy_chunk · W (pixels x filter_size), then col2im scatters it into dx.
// Scatters of different output pixels overlap in dx whenever the kernel's
// extent exceeds its stride, so the work is split in a way that cannot race:
//   - no overlap (e.g. 1x1, or kernel <= stride): any chunks in parallel;
//   - overlap and at least as many images as threads: one image per task;
//   - otherwise (batch 1): chunks in sequence, each sgemm threaded by OpenBLAS.

void conv2d_backward_data(const Conv2dParams& p, const float* dy, const float* w, float* dx) {
  const Geometry g(p);
  const int64_t pixels = p.n * g.out_hw;
  const int threads = omp_get_max_threads();

  if (g.pointwise) {  // dx = dy · W per group, no scatter
    const Chunks chunks = plan_chunks(pixels, 0, threads);
    BlasSingleThreaded one_pool;
#pragma omp parallel for schedule(dynamic)
    for (int64_t ci = 0; ci < chunks.count; ++ci) {
      const int64_t q0 = chunks.begin(ci);
      const int64_t count = std::min(chunks.pixels, pixels - q0);
      for (int64_t grp = 0; grp < p.groups; ++grp)
        sgemm(Trans::no, Trans::no, count, g.cg, g.og, 1.f, dy + q0 * p.o + grp * g.og, p.o, w + grp * g.og * g.k, g.k,
              0.f, dx + q0 * p.c + grp * g.cg, p.c);
    }
    return;
  }

  parallel_zero(dx, p.n * p.h * p.w * p.c);
  auto chunk_to_dx = [&](int64_t q0, int64_t count, float* dcol) {
    for (int64_t grp = 0; grp < p.groups; ++grp) {
      sgemm(Trans::no, Trans::no, count, g.k, g.og, 1.f, dy + q0 * p.o + grp * g.og, p.o, w + grp * g.og * g.k, g.k,
            0.f, dcol, g.k);
      col2im_add(p, g, dcol, grp, q0, count, dx);
    }
  };
  const bool overlap = p.dilation_h * (p.kh - 1) + 1 > p.stride_h || p.dilation_w * (p.kw - 1) + 1 > p.stride_w;

  if (!overlap || threads == 1) {
    const Chunks chunks = plan_chunks(pixels, g.k, threads);
    BlasSingleThreaded one_pool;
#pragma omp parallel
    {
      Scratch dcol(chunks.pixels * g.k);
#pragma omp for schedule(dynamic)
      for (int64_t ci = 0; ci < chunks.count; ++ci)
        chunk_to_dx(chunks.begin(ci), std::min(chunks.pixels, pixels - chunks.begin(ci)), dcol.data);
    }
  } else if (p.n >= threads) {
    const Chunks per_image = plan_chunks(g.out_hw, g.k, 1);
    BlasSingleThreaded one_pool;
#pragma omp parallel
    {
      Scratch dcol(per_image.pixels * g.k);
#pragma omp for schedule(dynamic)
      for (int64_t img = 0; img < p.n; ++img)
        for (int64_t ci = 0; ci < per_image.count; ++ci) {
          const int64_t q0 = per_image.begin(ci);
          chunk_to_dx(img * g.out_hw + q0, std::min(per_image.pixels, g.out_hw - q0), dcol.data);
        }
    }
  } else {
    const Chunks chunks = plan_chunks(pixels, g.k, 1);
    Scratch dcol(chunks.pixels * g.k);
    for (int64_t ci = 0; ci < chunks.count; ++ci)
      chunk_to_dx(chunks.begin(ci), std::min(chunks.pixels, pixels - chunks.begin(ci)), dcol.data);
  }
}

// ---- backward: weight ----------------------------------------------------------------
//
// dW_g (og x filter_size) = sum over chunks of dy_chunkᵀ · im2col(x)_chunk.
// Each thread accumulates its chunks into its own copy of dW (thread 0 into
// dw itself); the copies are summed at the end.

void conv2d_backward_weight(const Conv2dParams& p, const float* x, const float* dy, float* dw) {
  const Geometry g(p);
  const int64_t pixels = p.n * g.out_hw;
  const int64_t wsize = p.o * g.k;
  const Chunks chunks = plan_chunks(pixels, g.pointwise ? 0 : g.k, omp_get_max_threads());
  const int threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(omp_get_max_threads(), chunks.count)));
  std::vector<float> partial(static_cast<size_t>(threads - 1) * wsize, 0.f);
  std::memset(dw, 0, sizeof(float) * wsize);

  {
    BlasSingleThreaded one_pool;
#pragma omp parallel num_threads(threads)
    {
      const int t = omp_get_thread_num();
      float* acc = t == 0 ? dw : partial.data() + (t - 1) * wsize;
      Scratch col(g.pointwise ? 0 : chunks.pixels * g.k);
#pragma omp for schedule(dynamic)
      for (int64_t ci = 0; ci < chunks.count; ++ci) {
        const int64_t q0 = chunks.begin(ci);
        const int64_t count = std::min(chunks.pixels, pixels - q0);
        for (int64_t grp = 0; grp < p.groups; ++grp) {
          const float* a = x + q0 * p.c + grp * g.cg;  // pointwise: the input rows are the im2col rows
          int64_t lda = p.c;
          if (!g.pointwise) {
            im2col(p, g, x, grp, q0, count, col.data);
            a = col.data;
            lda = g.k;
          }
          sgemm(Trans::yes, Trans::no, g.og, g.k, count, 1.f, dy + q0 * p.o + grp * g.og, p.o, a, lda, 1.f,
                acc + grp * g.og * g.k, g.k);
        }
      }
    }
  }
  if (threads > 1) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < wsize; ++i)
      for (int t = 1; t < threads; ++t) dw[i] += partial[(t - 1) * wsize + i];
  }
}

// ---- backward: bias --------------------------------------------------------------------

void conv2d_backward_bias(const Conv2dParams& p, const float* dy, float* db) {
  sum_rows(dy, p.n * p.out_h() * p.out_w(), p.o, p.o, db);
}

}  // namespace graft::kernels::cpu
