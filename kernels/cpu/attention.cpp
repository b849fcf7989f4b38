#include "kernels/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

namespace graft::kernels::cpu {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr int64_t kBq = kAttentionBlockQ;
constexpr int64_t kBk = kAttentionBlockK;
// Below this many multiply-adds a call runs on one thread: waking a team
// costs more than it saves (gradient checks make thousands of tiny calls).
constexpr int64_t kMinParallelWork = int64_t{1} << 16;

int64_t work(const AttentionParams& p) { return p.batch * p.heads * p.seq_q * p.seq_k * (p.head_dim + p.head_dim_v); }

// `omp simd` lets the compiler reassociate the sum (8 partial sums in AVX2
// lanes) without -ffast-math for the whole file.
inline float dot(const float* a, const float* b, int64_t n) {
  float s = 0.f;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

// max that propagates a NaN score (std::max would drop it, and a row of NaN
// scores would then pass for a fully masked row of zeros).
inline float max_keep_nan(float m, float x) { return (x > m || x != x) ? x : m; }

// Rows [j0, j0 + nk) of x (rows of length n) transposed into xt (n x kBk);
// columns nk..kBk are zero so that tile products can always run kBk wide.
void transpose_tile(const float* x, int64_t n, int64_t j0, int64_t nk, float* xt) {
  for (int64_t jj = 0; jj < nk; ++jj) {
    const float* row = x + (j0 + jj) * n;
    for (int64_t d = 0; d < n; ++d) xt[d * kBk + jj] = row[d];
  }
  for (int64_t d = 0; d < n; ++d) std::fill(xt + d * kBk + nk, xt + (d + 1) * kBk, 0.f);
}

// s[ii][jj] = sum_d a[ii][d] * bt[d][jj] for ii < rows, jj < kBk: rows of a
// (length n, contiguous) times a transposed tile. The kBk-wide row of sums
// stays in vector registers while d runs; no horizontal reductions.
void tile_product_nt(const float* a, int64_t rows, int64_t n, const float* bt, float* s) {
  for (int64_t ii = 0; ii < rows; ++ii) {
    const float* ai = a + ii * n;
    float acc[kBk] = {};
    for (int64_t d = 0; d < n; ++d) {
      const float x = ai[d];
      const float* b = bt + d * kBk;
#pragma omp simd
      for (int64_t jj = 0; jj < kBk; ++jj) acc[jj] += x * b[jj];
    }
    std::copy(acc, acc + kBk, s + ii * kBk);
  }
}

// y[0..n) += sum_t c[t * c_stride] * x[t * n + 0..n) over t < count: a
// weighted sum of contiguous rows, four at a time so that y is loaded and
// stored once per four rows. Groups of zero weights (masked keys) are skipped.
void accumulate_rows(float* y, int64_t n, const float* c, int64_t c_stride, const float* x, int64_t count) {
  int64_t t = 0;
  for (; t + 4 <= count; t += 4) {
    const float c0 = c[t * c_stride], c1 = c[(t + 1) * c_stride], c2 = c[(t + 2) * c_stride],
                c3 = c[(t + 3) * c_stride];
    if (c0 == 0.f && c1 == 0.f && c2 == 0.f && c3 == 0.f) continue;
    const float* x0 = x + t * n;
    const float* x1 = x0 + n;
    const float* x2 = x1 + n;
    const float* x3 = x2 + n;
#pragma omp simd
    for (int64_t d = 0; d < n; ++d) y[d] += c0 * x0[d] + c1 * x1[d] + c2 * x2[d] + c3 * x3[d];
  }
  for (; t < count; ++t) {
    const float ct = c[t * c_stride];
    if (ct == 0.f) continue;
    const float* xt = x + t * n;
#pragma omp simd
    for (int64_t d = 0; d < n; ++d) y[d] += ct * xt[d];
  }
}

// Pointers to one (b, h) slice of every operand.
struct HeadSlice {
  const float* q;
  const float* k;
  const float* v;
  const float* mask;  // at (b, h, 0, 0) through the broadcast strides; null without a mask
};

HeadSlice head_slice(const AttentionParams& p, int64_t bh, const float* q, const float* k, const float* v,
                     const float* mask) {
  const int64_t b = bh / p.heads, h = bh % p.heads;
  HeadSlice s;
  s.q = q + bh * p.seq_q * p.head_dim;
  s.k = k + bh * p.seq_k * p.head_dim;
  s.v = v + bh * p.seq_k * p.head_dim_v;
  s.mask = mask ? mask + b * p.mask_stride_b + h * p.mask_stride_h : nullptr;
  return s;
}

// Scores of one tile, s[ii * kBk + jj] for query rows i0 + ii (ii < nq) and
// key rows j0 + jj (jj < nk): scale * q.k + mask, -inf where causal hides the
// key. kt: the key tile transposed (transpose_tile).
void score_tile(const AttentionParams& p, const HeadSlice& hs, const float* kt, int64_t i0, int64_t nq, int64_t j0,
                int64_t nk, float* s) {
  tile_product_nt(hs.q + i0 * p.head_dim, nq, p.head_dim, kt, s);
  for (int64_t ii = 0; ii < nq; ++ii) {
    const int64_t i = i0 + ii;
    float* row = s + ii * kBk;
    for (int64_t jj = 0; jj < nk; ++jj) row[jj] *= p.scale;
    if (hs.mask) {
      const float* m = hs.mask + i * p.mask_stride_q + j0 * p.mask_stride_k;
      for (int64_t jj = 0; jj < nk; ++jj) row[jj] += m[jj * p.mask_stride_k];
    }
    if (p.causal) {
      for (int64_t jj = std::max<int64_t>(0, i - j0 + 1); jj < nk; ++jj) row[jj] = kNegInf;
    }
  }
}

}  // namespace

void attention_forward(const AttentionParams& p, const float* q, const float* k, const float* v, const float* mask,
                       float* out, float* lse) {
  const int64_t Sq = p.seq_q, Sk = p.seq_k, Dv = p.head_dim_v;
  const int64_t q_tiles = (Sq + kBq - 1) / kBq;
  const int64_t tasks = p.batch * p.heads * q_tiles;

#pragma omp parallel if (tasks > 1 && work(p) >= kMinParallelWork)
  {
    std::vector<float> kt(p.head_dim * kBk), s(kBq * kBk), acc(kBq * Dv), row_max(kBq), row_sum(kBq);

#pragma omp for schedule(dynamic)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t bh = t / q_tiles;
      const int64_t i0 = (t % q_tiles) * kBq, nq = std::min(kBq, Sq - i0);
      const HeadSlice hs = head_slice(p, bh, q, k, v, mask);

      std::fill(acc.begin(), acc.end(), 0.f);
      std::fill(row_max.begin(), row_max.end(), kNegInf);
      std::fill(row_sum.begin(), row_sum.end(), 0.f);

      // Causal: keys past the tile's last query row are hidden from all its rows.
      const int64_t k_end = p.causal ? std::min(Sk, i0 + nq) : Sk;
      for (int64_t j0 = 0; j0 < k_end; j0 += kBk) {
        const int64_t nk = std::min(kBk, k_end - j0);
        transpose_tile(hs.k, p.head_dim, j0, nk, kt.data());
        score_tile(p, hs, kt.data(), i0, nq, j0, nk, s.data());

        for (int64_t ii = 0; ii < nq; ++ii) {
          float* row = s.data() + ii * kBk;
          float m_new = row_max[ii];
          for (int64_t jj = 0; jj < nk; ++jj) m_new = max_keep_nan(m_new, row[jj]);
          // Every score seen so far is -inf: nothing to add (and exp(-inf - -inf) would be NaN).
          if (m_new == kNegInf) continue;

          // Online softmax: rescale what was accumulated under the old max.
          const float alpha = std::exp(row_max[ii] - m_new);  // 0 when the old max was -inf
          float sum = 0.f;
          for (int64_t jj = 0; jj < nk; ++jj) {
            row[jj] = std::exp(row[jj] - m_new);
            sum += row[jj];
          }
          row_sum[ii] = row_sum[ii] * alpha + sum;
          row_max[ii] = m_new;

          float* a = acc.data() + ii * Dv;
          if (alpha != 1.f) {
#pragma omp simd
            for (int64_t d = 0; d < Dv; ++d) a[d] *= alpha;
          }
          accumulate_rows(a, Dv, row, 1, hs.v + j0 * Dv, nk);
        }
      }

      for (int64_t ii = 0; ii < nq; ++ii) {
        const int64_t i = i0 + ii;
        float* o = out + (bh * Sq + i) * Dv;
        const float* a = acc.data() + ii * Dv;
        if (row_max[ii] != kNegInf) {  // (a NaN max propagates to the output)
          const float inv = 1.f / row_sum[ii];
#pragma omp simd
          for (int64_t d = 0; d < Dv; ++d) o[d] = a[d] * inv;
          lse[bh * Sq + i] = row_max[ii] + std::log(row_sum[ii]);
        } else {  // fully masked row
          std::fill(o, o + Dv, 0.f);
          lse[bh * Sq + i] = kNegInf;
        }
      }
    }
  }
}

// With L_i = lse_i and delta_i = rowsum(dO_i * O_i) (= rowsum(P_i * dP_i)):
//   P = exp(S - L), dV = P^T dO, dP = dO V^T, dS = P * (dP - delta),
//   dQ = scale dS K, dK = scale dS^T Q.
void attention_backward(const AttentionParams& p, const float* q, const float* k, const float* v, const float* mask,
                        const float* out, const float* dout, const float* lse, float* dq, float* dk, float* dv) {
  const int64_t Sq = p.seq_q, Sk = p.seq_k, D = p.head_dim, Dv = p.head_dim_v;
  const int64_t heads_total = p.batch * p.heads;
  const bool need_ds = dq != nullptr || dk != nullptr;

  // One (b, h) per task: it owns its rows of dQ, dK and dV, so accumulation
  // needs no atomics and no Sq x Sk buffer. (The CUDA twin parallelises over
  // key tiles too, with atomic adds into dQ.)
#pragma omp parallel if (heads_total > 1 && work(p) >= kMinParallelWork)
  {
    std::vector<float> kt(D * kBk), vt(Dv * kBk), pt(kBq * kBk), dpt(kBq * kBk), delta(Sq);

#pragma omp for schedule(dynamic)
    for (int64_t bh = 0; bh < heads_total; ++bh) {
      const HeadSlice hs = head_slice(p, bh, q, k, v, mask);
      const float* o_bh = out + bh * Sq * Dv;
      const float* do_bh = dout + bh * Sq * Dv;
      const float* lse_bh = lse + bh * Sq;
      float* dq_bh = dq ? dq + bh * Sq * D : nullptr;
      float* dk_bh = dk ? dk + bh * Sk * D : nullptr;
      float* dv_bh = dv ? dv + bh * Sk * Dv : nullptr;
      if (dq_bh) std::fill(dq_bh, dq_bh + Sq * D, 0.f);
      if (dk_bh) std::fill(dk_bh, dk_bh + Sk * D, 0.f);
      if (dv_bh) std::fill(dv_bh, dv_bh + Sk * Dv, 0.f);
      if (need_ds) {
        for (int64_t i = 0; i < Sq; ++i) delta[i] = dot(do_bh + i * Dv, o_bh + i * Dv, Dv);
      }

      for (int64_t j0 = 0; j0 < Sk; j0 += kBk) {
        const int64_t nk = std::min(kBk, Sk - j0);
        // Causal: query rows before j0 see none of these keys.
        const int64_t q_begin = p.causal ? std::min(j0, Sq) : 0;
        if (q_begin >= Sq) continue;
        transpose_tile(hs.k, D, j0, nk, kt.data());
        if (need_ds) transpose_tile(hs.v, Dv, j0, nk, vt.data());
        for (int64_t i0 = q_begin; i0 < Sq; i0 += kBq) {
          const int64_t nq = std::min(kBq, Sq - i0);
          score_tile(p, hs, kt.data(), i0, nq, j0, nk, pt.data());

          // P = exp(S - L), recomputed; a fully masked row (L = -inf) is all zeros.
          for (int64_t ii = 0; ii < nq; ++ii) {
            float* row = pt.data() + ii * kBk;
            const float L = lse_bh[i0 + ii];
            if (L == kNegInf) {
              std::fill(row, row + nk, 0.f);
            } else {
              for (int64_t jj = 0; jj < nk; ++jj) row[jj] = std::exp(row[jj] - L);
            }
          }

          if (dv_bh) {  // dV_j += P^T dO
            for (int64_t jj = 0; jj < nk; ++jj)
              accumulate_rows(dv_bh + (j0 + jj) * Dv, Dv, pt.data() + jj, kBk, do_bh + i0 * Dv, nq);
          }
          if (!need_ds) continue;

          // dP = dO V^T, then the tile becomes scale * dS = scale * P * (dP - delta) in place.
          tile_product_nt(do_bh + i0 * Dv, nq, Dv, vt.data(), dpt.data());
          for (int64_t ii = 0; ii < nq; ++ii) {
            const float delta_i = delta[i0 + ii];
            float* row = pt.data() + ii * kBk;
            const float* dp = dpt.data() + ii * kBk;
            for (int64_t jj = 0; jj < nk; ++jj) row[jj] = p.scale * row[jj] * (dp[jj] - delta_i);
          }

          if (dk_bh) {  // dK_j += scale dS^T Q
            for (int64_t jj = 0; jj < nk; ++jj)
              accumulate_rows(dk_bh + (j0 + jj) * D, D, pt.data() + jj, kBk, hs.q + i0 * D, nq);
          }
          if (dq_bh) {  // dQ_i += scale dS K
            for (int64_t ii = 0; ii < nq; ++ii)
              accumulate_rows(dq_bh + (i0 + ii) * D, D, pt.data() + ii * kBk, 1, hs.k + j0 * D, nk);
          }
        }
      }
    }
  }
}

}  // namespace graft::kernels::cpu
