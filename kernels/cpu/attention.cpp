#include "kernels/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/cpu/fast_exp.h"
#include "kernels/cpu/gemm.h"

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

// max(m, x[0..n)) in eight independent lanes (blends, so that it
// vectorises), ignoring NaN scores except where every other score is -inf:
// then the row would pass for a fully masked row of zeros, so a NaN max is
// returned instead. Elsewhere a NaN score needs no help to propagate:
// exp(NaN - m) makes the row sum, the lse and the output row NaN.
float row_max(const float* x, int64_t n, float m) {
  constexpr int kLanes = 8;
  float lane[kLanes];
  std::fill(lane, lane + kLanes, m);
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
#pragma omp simd
    for (int l = 0; l < kLanes; ++l) lane[l] = vmax(lane[l], x[j + l]);
  }
  for (; j < n; ++j) m = vmax(m, x[j]);
  for (int l = 0; l < kLanes; ++l) m = vmax(m, lane[l]);
  if (m == kNegInf)
    for (j = 0; j < n; ++j)
      if (std::isnan(x[j])) return x[j];
  return m;
}

// x[j] = exp(x[j] - m) over j < n; returns their sum.
float exp_shifted(float* x, int64_t n, float m) {
  float sum = 0.f;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < n; ++j) {
    const float e = exp_approx(x[j] - m);
    x[j] = e;
    sum += e;
  }
  return sum;
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
// key. One sgemm (Q rows times K rows transposed), then the mask.
void score_tile(const AttentionParams& p, const HeadSlice& hs, int64_t i0, int64_t nq, int64_t j0, int64_t nk,
                float* s) {
  sgemm(Trans::no, Trans::yes, nq, nk, p.head_dim, p.scale, hs.q + i0 * p.head_dim, p.head_dim, hs.k + j0 * p.head_dim,
        p.head_dim, 0.f, s, kBk);
  for (int64_t ii = 0; ii < nq; ++ii) {
    const int64_t i = i0 + ii;
    float* row = s + ii * kBk;
    if (hs.mask) {
      const float* m = hs.mask + i * p.mask_stride_q + j0 * p.mask_stride_k;
      const int64_t sk = p.mask_stride_k;
      if (sk == 1) {
#pragma omp simd
        for (int64_t jj = 0; jj < nk; ++jj) row[jj] += m[jj];
      } else {
        for (int64_t jj = 0; jj < nk; ++jj) row[jj] += m[jj * sk];
      }
    }
    if (p.causal) {
      for (int64_t jj = std::max<int64_t>(0, i - j0 + 1); jj < nk; ++jj) row[jj] = kNegInf;
    }
  }
}

}  // namespace

// The tile products run as single-threaded sgemm calls (one per OpenMP
// thread); softmax, mask and rescaling are row loops over the score tile.
void attention_forward(const AttentionParams& p, const float* q, const float* k, const float* v, const float* mask,
                       float* out, float* lse) {
  const int64_t Sq = p.seq_q, Sk = p.seq_k, Dv = p.head_dim_v;
  const int64_t q_tiles = (Sq + kBq - 1) / kBq;
  const int64_t tasks = p.batch * p.heads * q_tiles;

  BlasSingleThreaded one_pool;
#pragma omp parallel if (tasks > 1 && work(p) >= kMinParallelWork)
  {
    std::vector<float> s(kBq * kBk), acc(kBq * Dv), m_row(kBq), l_row(kBq);

#pragma omp for schedule(dynamic)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t bh = t / q_tiles;
      const int64_t i0 = (t % q_tiles) * kBq, nq = std::min(kBq, Sq - i0);
      const HeadSlice hs = head_slice(p, bh, q, k, v, mask);

      std::fill(acc.begin(), acc.end(), 0.f);
      std::fill(m_row.begin(), m_row.end(), kNegInf);
      std::fill(l_row.begin(), l_row.end(), 0.f);

      // Causal: keys past the tile's last query row are hidden from all its rows.
      const int64_t k_end = p.causal ? std::min(Sk, i0 + nq) : Sk;
      for (int64_t j0 = 0; j0 < k_end; j0 += kBk) {
        const int64_t nk = std::min(kBk, k_end - j0);
        score_tile(p, hs, i0, nq, j0, nk, s.data());

        for (int64_t ii = 0; ii < nq; ++ii) {
          float* row = s.data() + ii * kBk;
          const float m_new = row_max(row, nk, m_row[ii]);
          if (m_new == kNegInf) {
            // Every score seen so far is -inf: this row adds nothing (and
            // exp(-inf - -inf) would be NaN).
            std::fill(row, row + nk, 0.f);
            continue;
          }
          // Online softmax: rescale what was accumulated under the old max.
          const float alpha = std::exp(m_row[ii] - m_new);  // 0 when the old max was -inf
          l_row[ii] = l_row[ii] * alpha + exp_shifted(row, nk, m_new);
          m_row[ii] = m_new;
          if (alpha != 1.f) {
            float* a = acc.data() + ii * Dv;
#pragma omp simd
            for (int64_t d = 0; d < Dv; ++d) a[d] *= alpha;
          }
        }
        // acc += P V_j
        sgemm(Trans::no, Trans::no, nq, Dv, nk, 1.f, s.data(), kBk, hs.v + j0 * Dv, Dv, 1.f, acc.data(), Dv);
      }

      for (int64_t ii = 0; ii < nq; ++ii) {
        const int64_t i = i0 + ii;
        float* o = out + (bh * Sq + i) * Dv;
        const float* a = acc.data() + ii * Dv;
        if (m_row[ii] != kNegInf) {  // (a NaN max propagates to the output)
          const float inv = 1.f / l_row[ii];
#pragma omp simd
          for (int64_t d = 0; d < Dv; ++d) o[d] = a[d] * inv;
          lse[bh * Sq + i] = m_row[ii] + std::log(l_row[ii]);
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
// Each product of a tile is one single-threaded sgemm.
void attention_backward(const AttentionParams& p, const float* q, const float* k, const float* v, const float* mask,
                        const float* out, const float* dout, const float* lse, float* dq, float* dk, float* dv) {
  const int64_t Sq = p.seq_q, Sk = p.seq_k, D = p.head_dim, Dv = p.head_dim_v;
  const int64_t heads_total = p.batch * p.heads;
  const bool need_ds = dq != nullptr || dk != nullptr;

  // One (b, h) per task: it owns its rows of dQ, dK and dV, so accumulation
  // needs no atomics and no Sq x Sk buffer. (The CUDA twin parallelises over
  // key tiles too, with atomic adds into dQ.)
  BlasSingleThreaded one_pool;
#pragma omp parallel if (heads_total > 1 && work(p) >= kMinParallelWork)
  {
    std::vector<float> pt(kBq * kBk), dpt(kBq * kBk), delta(Sq);

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
        for (int64_t i0 = q_begin; i0 < Sq; i0 += kBq) {
          const int64_t nq = std::min(kBq, Sq - i0);
          score_tile(p, hs, i0, nq, j0, nk, pt.data());

          // P = exp(S - L), recomputed; a fully masked row (L = -inf) is all zeros.
          for (int64_t ii = 0; ii < nq; ++ii) {
            float* row = pt.data() + ii * kBk;
            const float L = lse_bh[i0 + ii];
            if (L == kNegInf) std::fill(row, row + nk, 0.f);
            else exp_shifted(row, nk, L);
          }

          // dV_j += P^T dO_i
          if (dv_bh)
            sgemm(Trans::yes, Trans::no, nk, Dv, nq, 1.f, pt.data(), kBk, do_bh + i0 * Dv, Dv, 1.f, dv_bh + j0 * Dv, Dv);
          if (!need_ds) continue;

          // dP = dO_i V_j^T, then the tile becomes scale * dS = scale * P * (dP - delta) in place.
          sgemm(Trans::no, Trans::yes, nq, nk, Dv, 1.f, do_bh + i0 * Dv, Dv, hs.v + j0 * Dv, Dv, 0.f, dpt.data(), kBk);
          for (int64_t ii = 0; ii < nq; ++ii) {
            const float delta_i = delta[i0 + ii];
            float* row = pt.data() + ii * kBk;
            const float* dp = dpt.data() + ii * kBk;
#pragma omp simd
            for (int64_t jj = 0; jj < nk; ++jj) row[jj] = p.scale * row[jj] * (dp[jj] - delta_i);
          }

          // dK_j += scale dS^T Q_i
          if (dk_bh)
            sgemm(Trans::yes, Trans::no, nk, D, nq, 1.f, pt.data(), kBk, hs.q + i0 * D, D, 1.f, dk_bh + j0 * D, D);
          // dQ_i += scale dS K_j
          if (dq_bh)
            sgemm(Trans::no, Trans::no, nq, D, nk, 1.f, pt.data(), kBk, hs.k + j0 * D, D, 1.f, dq_bh + i0 * D, D);
        }
      }
    }
  }
}

}  // namespace graft::kernels::cpu
