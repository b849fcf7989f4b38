// CPU kernel benchmarks: sgemm (the ceiling), conv2d forward on every distinct
// ResNet-50 convolution at batch 8, depthwise conv on the MobileNetV2
// depthwise layers at batch 8. Every kernel is checked against a float64
// reference on sampled outputs before it is timed.
//
//   bench_cpu_kernels [--out_dir=DIR] [google benchmark flags]
//
// Writes <out_dir>/cpu-<cores>core-<yyyymmdd>-<commit>.json in the DESIGN.md
// format (out_dir: --out_dir, else $GRAFT_BENCH_OUT, else bench/results of
// the source tree) and prints a summary table (see bench/NOTES.md).
#include <benchmark/benchmark.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <new>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/cpu/attention.h"
#include "kernels/cpu/conv.h"
#include "kernels/cpu/depthwise.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/softmax.h"

namespace {

using graft::kernels::cpu::Conv2dParams;
using graft::kernels::cpu::Trans;

// Each benchmark runs kRepetitions times for at least kMinTime seconds; the
// reported value is the best repetition (the machines are shared: other
// processes only ever slow a run down), the median is kept beside it.
constexpr double kMinTime = 0.25;
constexpr int kRepetitions = 3;

// 64-byte aligned storage, as the engine's allocator gives tensors.
template <class T>
struct Aligned64 {
  using value_type = T;
  Aligned64() = default;
  template <class U>
  Aligned64(const Aligned64<U>&) {}
  T* allocate(size_t n) {
    void* p = std::aligned_alloc(64, (n * sizeof(T) + 63) / 64 * 64);
    if (!p) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t) { std::free(p); }
  template <class U>
  bool operator==(const Aligned64<U>&) const { return true; }
  template <class U>
  bool operator!=(const Aligned64<U>&) const { return false; }
};
using Floats = std::vector<float, Aligned64<float>>;

Floats random_floats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  Floats v(n);
  for (float& f : v) f = u(rng);
  return v;
}

// |got - ref| <= 1e-5 * sum |terms| + 1e-6: f32 rounding of a sum is bounded
// by its length times eps times the sum of magnitudes; this is far tighter
// than any indexing mistake.
bool near(double got, double ref, double magnitude) { return std::fabs(got - ref) <= 1e-5 * magnitude + 1e-6; }

// ---- sgemm ---------------------------------------------------------------------

struct GemmShape {
  int64_t m, n, k;
};

void bm_sgemm(benchmark::State& st, GemmShape s) {
  const Floats a = random_floats(s.m * s.k, 1), b = random_floats(s.k * s.n, 2);
  Floats c(s.m * s.n);
  graft::kernels::cpu::sgemm(Trans::no, Trans::no, s.m, s.n, s.k, 1.f, a.data(), s.k, b.data(), s.n, 0.f, c.data(), s.n);
  std::mt19937 rng(3);
  for (int t = 0; t < 64; ++t) {
    const int64_t i = rng() % s.m, j = rng() % s.n;
    double ref = 0, mag = 0;
    for (int64_t p = 0; p < s.k; ++p) {
      ref += double(a[i * s.k + p]) * b[p * s.n + j];
      mag += std::fabs(double(a[i * s.k + p]) * b[p * s.n + j]);
    }
    if (!near(c[i * s.n + j], ref, mag)) {
      st.SkipWithError("sgemm result differs from the float64 reference");
      return;
    }
  }
  for (auto _ : st) {
    graft::kernels::cpu::sgemm(Trans::no, Trans::no, s.m, s.n, s.k, 1.f, a.data(), s.k, b.data(), s.n, 0.f, c.data(),
                               s.n);
    benchmark::ClobberMemory();
  }
  st.counters["GFLOPs"] = benchmark::Counter(2e-9 * s.m * s.n * s.k, benchmark::Counter::kIsIterationInvariantRate);
}

// ---- convolutions ------------------------------------------------------------------

// Minimum traffic: read x and w once, write y once.
double conv_bytes(const Conv2dParams& p) {
  return 4.0 * (p.n * p.h * p.w * p.c + p.o * p.filter_size() + p.n * p.out_h() * p.out_w() * p.o);
}

// y[n, oh, ow, o] in double from NHWC x and (O, kH, kW, C/g) w (depthwise: (C, kH, kW)).
double ref_conv_point(const Conv2dParams& p, const Floats& x, const Floats& w, int64_t n,
                      int64_t oh, int64_t ow, int64_t o, double* magnitude) {
  const int64_t cg = p.c / p.groups, og = p.o / p.groups, grp = o / og;
  double s = 0, mag = 0;
  for (int64_t a = 0; a < p.kh; ++a)
    for (int64_t b = 0; b < p.kw; ++b) {
      const int64_t ih = oh * p.stride_h - p.pad_top + a * p.dilation_h;
      const int64_t iw = ow * p.stride_w - p.pad_left + b * p.dilation_w;
      if (ih < 0 || ih >= p.h || iw < 0 || iw >= p.w) continue;
      for (int64_t c = 0; c < cg; ++c) {
        const double t = double(x[((n * p.h + ih) * p.w + iw) * p.c + grp * cg + c]) * w[((o * p.kh + a) * p.kw + b) * cg + c];
        s += t;
        mag += std::fabs(t);
      }
    }
  *magnitude = mag;
  return s;
}

void bm_conv(benchmark::State& st, Conv2dParams p) {
  const bool depthwise = graft::kernels::cpu::is_depthwise(p);
  const Floats x = random_floats(p.n * p.h * p.w * p.c, 4);
  const Floats w = random_floats(p.o * p.filter_size(), 5);
  const Floats bias = random_floats(p.o, 6);
  const int64_t oh = p.out_h(), ow = p.out_w();
  Floats y(p.n * oh * ow * p.o);
  auto run = [&] {
    if (depthwise) graft::kernels::cpu::depthwise_conv2d_forward(p, x.data(), w.data(), bias.data(), y.data());
    else graft::kernels::cpu::conv2d_forward(p, x.data(), w.data(), bias.data(), y.data());
  };
  run();
  std::mt19937 rng(7);
  for (int t = 0; t < 128; ++t) {
    const int64_t n = rng() % p.n, i = rng() % oh, j = rng() % ow, o = rng() % p.o;
    double mag = 0;
    const double ref = bias[o] + ref_conv_point(p, x, w, n, i, j, o, &mag);
    if (!near(y[((n * oh + i) * ow + j) * p.o + o], ref, mag + std::fabs(bias[o]))) {
      st.SkipWithError("conv2d result differs from the float64 reference");
      return;
    }
  }
  for (auto _ : st) {
    run();
    benchmark::ClobberMemory();
  }
  st.counters["GFLOPs"] = benchmark::Counter(1e-9 * p.forward_flops(), benchmark::Counter::kIsIterationInvariantRate);
  st.counters["GBps"] = benchmark::Counter(1e-9 * conv_bytes(p), benchmark::Counter::kIsIterationInvariantRate);
}

// Backward passes: the data gradient (dx from dy and w) and the weight
// gradient (dw from x and dy), each the same multiply-add count as forward.
enum class ConvPass { data, weight };

// dx[n, ih, iw, c] in double: every (o, a, b) whose output pixel exists.
double ref_dx_point(const Conv2dParams& p, const Floats& dy, const Floats& w, int64_t n, int64_t ih, int64_t iw, int64_t c,
                    double* magnitude) {
  const int64_t cg = p.c / p.groups, og = p.o / p.groups, grp = c / cg, oh_n = p.out_h(), ow_n = p.out_w();
  double s = 0, mag = 0;
  for (int64_t a = 0; a < p.kh; ++a)
    for (int64_t b = 0; b < p.kw; ++b) {
      const int64_t th = ih + p.pad_top - a * p.dilation_h, tw = iw + p.pad_left - b * p.dilation_w;
      if (th < 0 || tw < 0 || th % p.stride_h || tw % p.stride_w || th / p.stride_h >= oh_n || tw / p.stride_w >= ow_n)
        continue;
      for (int64_t o = grp * og; o < (grp + 1) * og; ++o) {
        const double t = double(dy[((n * oh_n + th / p.stride_h) * ow_n + tw / p.stride_w) * p.o + o]) *
                         w[((o * p.kh + a) * p.kw + b) * cg + c - grp * cg];
        s += t;
        mag += std::fabs(t);
      }
    }
  *magnitude = mag;
  return s;
}

// dw[o, a, b, c] in double: a sum over every output pixel.
double ref_dw_point(const Conv2dParams& p, const Floats& x, const Floats& dy, int64_t o, int64_t a, int64_t b, int64_t c,
                    double* magnitude) {
  const int64_t cg = p.c / p.groups, og = p.o / p.groups, grp = o / og, oh_n = p.out_h(), ow_n = p.out_w();
  double s = 0, mag = 0;
  for (int64_t n = 0; n < p.n; ++n)
    for (int64_t i = 0; i < oh_n; ++i)
      for (int64_t j = 0; j < ow_n; ++j) {
        const int64_t ih = i * p.stride_h - p.pad_top + a * p.dilation_h, iw = j * p.stride_w - p.pad_left + b * p.dilation_w;
        if (ih < 0 || ih >= p.h || iw < 0 || iw >= p.w) continue;
        const double t = double(dy[((n * oh_n + i) * ow_n + j) * p.o + o]) * x[((n * p.h + ih) * p.w + iw) * p.c + grp * cg + c];
        s += t;
        mag += std::fabs(t);
      }
  *magnitude = mag;
  return s;
}

void bm_conv_backward(benchmark::State& st, Conv2dParams p, ConvPass pass) {
  namespace k = graft::kernels::cpu;
  const bool depthwise = k::is_depthwise(p);
  const int64_t oh = p.out_h(), ow = p.out_w(), cg = p.c / p.groups;
  const Floats x = random_floats(p.n * p.h * p.w * p.c, 4);
  const Floats w = random_floats(p.o * p.filter_size(), 5);
  const Floats dy = random_floats(p.n * oh * ow * p.o, 6);
  Floats out(pass == ConvPass::data ? x.size() : w.size());
  auto run = [&] {
    if (pass == ConvPass::data) {
      if (depthwise) k::depthwise_conv2d_backward_data(p, dy.data(), w.data(), out.data());
      else k::conv2d_backward_data(p, dy.data(), w.data(), out.data());
    } else {
      if (depthwise) k::depthwise_conv2d_backward_weight(p, x.data(), dy.data(), out.data());
      else k::conv2d_backward_weight(p, x.data(), dy.data(), out.data());
    }
  };
  run();
  std::mt19937 rng(9);
  for (int t = 0; t < 32; ++t) {
    double mag = 0, ref = 0, got = 0;
    if (pass == ConvPass::data) {
      const int64_t n = rng() % p.n, i = rng() % p.h, j = rng() % p.w, c = rng() % p.c;
      ref = ref_dx_point(p, dy, w, n, i, j, c, &mag);
      got = out[((n * p.h + i) * p.w + j) * p.c + c];
    } else {
      const int64_t o = rng() % p.o, a = rng() % p.kh, b = rng() % p.kw, c = rng() % cg;
      ref = ref_dw_point(p, x, dy, o, a, b, c, &mag);
      got = out[((o * p.kh + a) * p.kw + b) * cg + c];
    }
    if (!near(got, ref, mag)) {
      st.SkipWithError("conv2d backward result differs from the float64 reference");
      return;
    }
  }
  for (auto _ : st) {
    run();
    benchmark::ClobberMemory();
  }
  st.counters["GFLOPs"] = benchmark::Counter(1e-9 * p.forward_flops(), benchmark::Counter::kIsIterationInvariantRate);
  st.counters["GBps"] = benchmark::Counter(1e-9 * conv_bytes(p), benchmark::Counter::kIsIterationInvariantRate);
}

Conv2dParams conv_shape(int64_t n, int64_t c, int64_t hw, int64_t o, int64_t k, int64_t stride, int64_t groups = 1) {
  Conv2dParams p;
  p.n = n;
  p.c = c;
  p.h = p.w = hw;
  p.o = o;
  p.kh = p.kw = k;
  p.stride_h = p.stride_w = stride;
  p.pad_top = p.pad_left = p.pad_bottom = p.pad_right = k / 2;
  p.groups = groups;
  return p;
}

std::string conv_name(const char* family, const Conv2dParams& p) {
  std::ostringstream os;
  os << family << "/f32/" << p.kh << "x" << p.kw << "/c" << p.c << "-o" << p.o << "-" << p.h << "x" << p.w << "-s"
     << p.stride_h << "/n" << p.n;
  return os.str();
}


// ---- attention -------------------------------------------------------------------------

// One multi-head attention layer (B, H, S, d), no mask. The fused tiled kernel
// (kernels/cpu/attention.cpp) against the unfused ops an exported graph runs
// (batched sgemm Q K^T, row softmax, batched sgemm P V; backward dV = P^T dO,
// dP = dO V^T, softmax backward, dQ = dS K, dK = dS^T Q), which materialise the
// B*H*S*S score matrix. Counted FLOPs: forward 4*B*H*S^2*d, backward 2.5x that.
struct AttnShape {
  int64_t b, h, s, d;
};
enum class AttnPass { forward, backward, forward_backward };

struct AttnData {
  AttnShape n;
  float scale;
  Floats q, k, v, dout, out, lse, dq, dk, dv;
  Floats probs, dprobs;  // unfused only: (B*H, S, S)
  explicit AttnData(AttnShape s)
      : n(s),
        scale(1.f / std::sqrt(float(s.d))),
        q(random_floats(s.b * s.h * s.s * s.d, 11)),
        k(random_floats(s.b * s.h * s.s * s.d, 12)),
        v(random_floats(s.b * s.h * s.s * s.d, 13)),
        dout(random_floats(s.b * s.h * s.s * s.d, 14)),
        out(q.size()),
        lse(s.b * s.h * s.s),
        dq(q.size()),
        dk(q.size()),
        dv(q.size()) {}
  graft::kernels::cpu::AttentionParams params() const {
    graft::kernels::cpu::AttentionParams p;
    p.batch = n.b;
    p.heads = n.h;
    p.seq_q = p.seq_k = n.s;
    p.head_dim = p.head_dim_v = n.d;
    p.scale = scale;
    return p;
  }
  void fused_forward() {
    graft::kernels::cpu::attention_forward(params(), q.data(), k.data(), v.data(), nullptr, out.data(), lse.data());
  }
  void fused_backward() {
    graft::kernels::cpu::attention_backward(params(), q.data(), k.data(), v.data(), nullptr, out.data(), dout.data(),
                                            lse.data(), dq.data(), dk.data(), dv.data());
  }
  void unfused_forward() {
    namespace k_ = graft::kernels::cpu;
    const int64_t S = n.s, D = n.d, bh = n.b * n.h;
    probs.resize(bh * S * S);
    k_::sgemm_batched(Trans::no, Trans::yes, S, S, D, scale, q.data(), D, S * D, k.data(), D, S * D, 0.f, probs.data(),
                      S, S * S, bh);
    k_::SoftmaxParams sp;
    sp.outer = bh * S;
    sp.axis_len = S;
    k_::softmax_forward(probs.data(), probs.data(), sp);
    k_::sgemm_batched(Trans::no, Trans::no, S, D, S, 1.f, probs.data(), S, S * S, v.data(), D, S * D, 0.f, out.data(), D,
                      S * D, bh);
  }
  void unfused_backward() {  // after unfused_forward (reads probs)
    namespace k_ = graft::kernels::cpu;
    const int64_t S = n.s, D = n.d, bh = n.b * n.h;
    dprobs.resize(bh * S * S);
    k_::sgemm_batched(Trans::yes, Trans::no, S, D, S, 1.f, probs.data(), S, S * S, dout.data(), D, S * D, 0.f, dv.data(),
                      D, S * D, bh);
    k_::sgemm_batched(Trans::no, Trans::yes, S, S, D, 1.f, dout.data(), D, S * D, v.data(), D, S * D, 0.f,
                      dprobs.data(), S, S * S, bh);
    k_::SoftmaxParams sp;
    sp.outer = bh * S;
    sp.axis_len = S;
    k_::softmax_backward(probs.data(), dprobs.data(), dprobs.data(), sp);
    k_::sgemm_batched(Trans::no, Trans::no, S, D, S, scale, dprobs.data(), S, S * S, k.data(), D, S * D, 0.f, dq.data(),
                      D, S * D, bh);
    k_::sgemm_batched(Trans::yes, Trans::no, S, D, S, scale, dprobs.data(), S, S * S, q.data(), D, S * D, 0.f,
                      dk.data(), D, S * D, bh);
  }

  // Output and gradients of heads 0 and bh-1 against float64 loops.
  bool matches_reference(bool check_grads) const {
    const int64_t S = n.s, D = n.d;
    for (int64_t bh : {int64_t(0), n.b * n.h - 1}) {
      const float *q_ = q.data() + bh * S * D, *k_ = k.data() + bh * S * D, *v_ = v.data() + bh * S * D,
                  *do_ = dout.data() + bh * S * D;
      std::vector<double> P(S * S), dS(S * S);
      for (int64_t i = 0; i < S; ++i) {
        double m = -INFINITY, sum = 0;
        for (int64_t j = 0; j < S; ++j) {
          double s = 0;
          for (int64_t e = 0; e < D; ++e) s += double(q_[i * D + e]) * k_[j * D + e];
          P[i * S + j] = s * scale;
          m = std::max(m, P[i * S + j]);
        }
        for (int64_t j = 0; j < S; ++j) sum += P[i * S + j] = std::exp(P[i * S + j] - m);
        for (int64_t j = 0; j < S; ++j) P[i * S + j] /= sum;
      }
      auto check_rows = [&](const Floats& got, auto value) {
        for (int64_t i = 0; i < S; ++i)
          for (int64_t e = 0; e < D; ++e) {
            double mag = 0;
            const double ref = value(i, e, &mag);
            if (!(std::fabs(got[bh * S * D + i * D + e] - ref) <= 1e-4 * mag + 1e-5)) return false;
          }
        return true;
      };
      auto out_ref = [&](int64_t i, int64_t e, double* mag) {
        double s = 0;
        for (int64_t j = 0; j < S; ++j) s += P[i * S + j] * v_[j * D + e], *mag += std::fabs(P[i * S + j] * v_[j * D + e]);
        return s;
      };
      if (!check_grads && !check_rows(out, out_ref)) return false;
      if (!check_grads) continue;
      for (int64_t i = 0; i < S; ++i) {
        double delta = 0;
        std::vector<double> dp(S);
        for (int64_t j = 0; j < S; ++j) {
          for (int64_t e = 0; e < D; ++e) dp[j] += double(do_[i * D + e]) * v_[j * D + e];
          delta += dp[j] * P[i * S + j];
        }
        for (int64_t j = 0; j < S; ++j) dS[i * S + j] = scale * P[i * S + j] * (dp[j] - delta);
      }
      auto dv_ref = [&](int64_t j, int64_t e, double* mag) {
        double s = 0;
        for (int64_t i = 0; i < S; ++i) s += P[i * S + j] * do_[i * D + e], *mag += std::fabs(P[i * S + j] * do_[i * D + e]);
        return s;
      };
      auto dq_ref = [&](int64_t i, int64_t e, double* mag) {
        double s = 0;
        for (int64_t j = 0; j < S; ++j) s += dS[i * S + j] * k_[j * D + e], *mag += std::fabs(dS[i * S + j] * k_[j * D + e]);
        return s;
      };
      auto dk_ref = [&](int64_t j, int64_t e, double* mag) {
        double s = 0;
        for (int64_t i = 0; i < S; ++i) s += dS[i * S + j] * q_[i * D + e], *mag += std::fabs(dS[i * S + j] * q_[i * D + e]);
        return s;
      };
      if (!check_rows(dv, dv_ref) || !check_rows(dq, dq_ref) || !check_rows(dk, dk_ref)) return false;
    }
    return true;
  }
};

void bm_attention(benchmark::State& st, AttnShape n, AttnPass pass, bool fused) {
  AttnData a(n);
  auto forward = [&] { fused ? a.fused_forward() : a.unfused_forward(); };
  auto backward = [&] { fused ? a.fused_backward() : a.unfused_backward(); };
  forward();
  if (!a.matches_reference(false)) {
    st.SkipWithError("attention output differs from the float64 reference");
    return;
  }
  if (pass != AttnPass::forward) {
    backward();
    if (!a.matches_reference(true)) {
      st.SkipWithError("attention gradients differ from the float64 reference");
      return;
    }
  }
  for (auto _ : st) {
    if (pass != AttnPass::backward) forward();
    if (pass != AttnPass::forward) backward();
    benchmark::ClobberMemory();
  }
  const double fwd = 4.0 * n.b * n.h * n.s * n.s * n.d;
  const double flops = pass == AttnPass::forward ? fwd : pass == AttnPass::backward ? 2.5 * fwd : 3.5 * fwd;
  st.counters["GFLOPs"] = benchmark::Counter(1e-9 * flops, benchmark::Counter::kIsIterationInvariantRate);
}

// ---- copy (the bandwidth ceiling) -----------------------------------------------------

void bm_copy(benchmark::State& st) {
  const size_t n = size_t(1) << 25;  // 128 MiB each way: far beyond the caches
  Floats a = random_floats(n, 8), b(n);
  for (auto _ : st) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < int64_t(n); i += 1 << 16) std::memcpy(&b[i], &a[i], sizeof(float) * std::min<size_t>(1 << 16, n - i));
    benchmark::ClobberMemory();
  }
  if (b[n / 3] != a[n / 3]) st.SkipWithError("copy mismatch");
  st.counters["GBps"] = benchmark::Counter(8e-9 * n, benchmark::Counter::kIsIterationInvariantRate);
}

// ---- reporting ---------------------------------------------------------------------------

struct Result {
  std::string name;
  std::map<std::string, double> counters;
  bool error = false;
  std::string error_message;
};

class Collector : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs) {
      if (r.run_type != Run::RT_Iteration) continue;  // our own statistics below
      Result res;
      res.name = r.benchmark_name();
      res.error = r.error_occurred;
      res.error_message = r.error_message;
      for (const auto& [k, c] : r.counters) res.counters[k] = c.value;
      results.push_back(res);
    }
    ConsoleReporter::ReportRuns(runs);
  }
  std::vector<Result> results;
};

std::string shell_line(const char* cmd) {
  std::string out;
  if (FILE* f = popen(cmd, "r")) {
    char buf[256];
    if (fgets(buf, sizeof buf, f)) out = buf;
    pclose(f);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

// The source tree: this file is <root>/bench/bench_cpu_kernels.cpp.
std::string source_root() {
  std::string f = __FILE__;
  const size_t cut = f.rfind("/bench/");
  return cut == std::string::npos ? "." : f.substr(0, cut);
}

std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown CPU";
}

std::string json_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    o += c;
  }
  return o;
}

// Strips the "/min_time:…/repeats:…/real_time" suffixes Google Benchmark appends.
std::string clean_name(std::string n) {
  for (const char* tag : {"/min_time:", "/repeats:", "/real_time"}) {
    const size_t at = n.find(tag);
    if (at != std::string::npos) n.resize(at);
  }
  return n;
}

// One benchmark's repetitions: best and median of each counter.
struct Summary {
  std::string name;
  bool error = false;
  std::string error_message;
  std::map<std::string, double> best, median;
};

std::vector<Summary> summarise(const std::vector<Result>& results) {
  std::vector<Summary> out;
  std::map<std::string, std::map<std::string, std::vector<double>>> values;
  for (const Result& r : results) {
    const std::string name = clean_name(r.name);
    auto it = std::find_if(out.begin(), out.end(), [&](const Summary& s) { return s.name == name; });
    if (it == out.end()) {
      out.push_back(Summary{name, false, "", {}, {}});
      it = out.end() - 1;
    }
    if (r.error) {
      it->error = true;
      it->error_message = r.error_message;
    }
    for (const auto& [k, v] : r.counters) values[name][k].push_back(v);
  }
  for (Summary& s : out)
    for (auto& [k, v] : values[s.name]) {
      std::sort(v.begin(), v.end());
      s.best[k] = v.back();
      s.median[k] = v[v.size() / 2];
    }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::string out_dir;
  if (const char* env = std::getenv("GRAFT_BENCH_OUT")) out_dir = env;
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (std::strncmp(argv[i], "--out_dir=", 10) == 0) out_dir = argv[i] + 10;
    else args.push_back(argv[i]);
  }
  if (out_dir.empty()) out_dir = source_root() + "/bench/results";
  int nargs = static_cast<int>(args.size());
  benchmark::Initialize(&nargs, args.data());

  const int64_t N = 8;
  // sgemm: the ceiling (run first and last: the reported ceiling is the better
  // of the two, so noise on a shared machine cannot flatter the fractions),
  // plus the single GEMMs that a ResNet-50 3x3 layer would be without chunking.
  const GemmShape ceiling{1024, 1024, 1024};
  benchmark::RegisterBenchmark("sgemm/f32/1024x1024x1024", bm_sgemm, ceiling)->UseRealTime()->MinTime(kMinTime)->Repetitions(kRepetitions);
  for (GemmShape s : {GemmShape{N * 56 * 56, 64, 576}, GemmShape{N * 28 * 28, 128, 1152}, GemmShape{N * 7 * 7, 512, 4608}}) {
    const std::string name = "sgemm/f32/" + std::to_string(s.m) + "x" + std::to_string(s.n) + "x" + std::to_string(s.k);
    benchmark::RegisterBenchmark(name.c_str(), bm_sgemm, s)->UseRealTime()->MinTime(kMinTime)->Repetitions(kRepetitions);
  }
  benchmark::RegisterBenchmark("copy/f32/128MiB", bm_copy)->UseRealTime()->MinTime(kMinTime)->Repetitions(kRepetitions);

  // ResNet-50 (torchvision, stride on the 3x3): every distinct conv layer at 224x224.
  std::vector<Conv2dParams> resnet = {conv_shape(N, 3, 224, 64, 7, 2)};
  for (auto [c, hw, s] : {std::tuple{64, 56, 1}, {128, 56, 2}, {128, 28, 1}, {256, 28, 2}, {256, 14, 1}, {512, 14, 2}, {512, 7, 1}})
    resnet.push_back(conv_shape(N, c, hw, c, 3, s));
  for (auto [c, o, hw, s] : {std::tuple{64, 64, 56, 1}, {64, 256, 56, 1}, {256, 64, 56, 1}, {256, 128, 56, 1},
                             {128, 512, 28, 1}, {256, 512, 56, 2}, {512, 128, 28, 1}, {512, 256, 28, 1},
                             {256, 1024, 14, 1}, {512, 1024, 28, 2}, {1024, 256, 14, 1}, {1024, 512, 14, 1},
                             {512, 2048, 7, 1}, {1024, 2048, 14, 2}, {2048, 512, 7, 1}})
    resnet.push_back(conv_shape(N, c, hw, o, 1, s));
  for (const Conv2dParams& p : resnet)
    benchmark::RegisterBenchmark(conv_name("conv2d_fwd/resnet50", p).c_str(), bm_conv, p)->UseRealTime()->MinTime(kMinTime)->Repetitions(kRepetitions);

  // MobileNetV2 depthwise layers (3x3, pad 1) at 224x224.
  for (auto [c, hw, s] : {std::tuple{32, 112, 1}, {96, 112, 2}, {144, 56, 1}, {144, 56, 2}, {192, 28, 1}, {192, 28, 2},
                          {384, 14, 1}, {576, 14, 1}, {576, 14, 2}, {960, 7, 1}}) {
    const Conv2dParams p = conv_shape(N, c, hw, c, 3, s, c);
    benchmark::RegisterBenchmark(conv_name("depthwise_fwd/mobilenetv2", p).c_str(), bm_conv, p)->UseRealTime()->MinTime(kMinTime)->Repetitions(kRepetitions);
  }
  // Training needs the backward passes too: the ResNet-50 3x3 layers, four
  // 1x1 layers (one strided) and three depthwise layers.
  std::vector<Conv2dParams> backward;
  for (const Conv2dParams& p : resnet)
    if (p.kh == 3) backward.push_back(p);
  for (auto [c, o, hw, s] : {std::tuple{64, 256, 56, 1}, {256, 64, 56, 1}, {256, 512, 56, 2}, {1024, 256, 14, 1}})
    backward.push_back(conv_shape(N, c, hw, o, 1, s));
  for (auto [c, hw, s] : {std::tuple{144, 56, 1}, {144, 56, 2}, {576, 14, 1}}) backward.push_back(conv_shape(N, c, hw, c, 3, s, c));
  for (const Conv2dParams& p : backward)
    for (ConvPass pass : {ConvPass::data, ConvPass::weight}) {
      const bool dw = graft::kernels::cpu::is_depthwise(p);
      const std::string family = std::string(dw ? "depthwise" : "conv2d") + (pass == ConvPass::data ? "_bwd_data" : "_bwd_weight") +
                                 (dw ? "/mobilenetv2" : "/resnet50");
      benchmark::RegisterBenchmark(conv_name(family.c_str(), p).c_str(), bm_conv_backward, p, pass)
          ->UseRealTime()
          ->MinTime(kMinTime)
          ->Repetitions(kRepetitions);
    }

  // Attention: a ViT-B/16 layer and a long sequence, fused vs unfused.
  for (AttnShape a : {AttnShape{8, 12, 197, 64}, AttnShape{1, 12, 1024, 64}})
    for (auto [pass, pname] : {std::pair{AttnPass::forward, "fwd"}, {AttnPass::backward, "bwd"}, {AttnPass::forward_backward, "fwd_bwd"}})
      for (bool fused : {true, false}) {
        const std::string name = std::string("attention_") + pname + "/f32/" + (fused ? "fused" : "unfused") + "/b" +
                                 std::to_string(a.b) + "-h" + std::to_string(a.h) + "-s" + std::to_string(a.s) + "-d" +
                                 std::to_string(a.d);
        benchmark::RegisterBenchmark(name.c_str(), bm_attention, a, pass, fused)->UseRealTime()->MinTime(kMinTime)->Repetitions(kRepetitions);
      }
  benchmark::RegisterBenchmark("sgemm/f32/1024x1024x1024 (again)", bm_sgemm, ceiling)->UseRealTime()->MinTime(kMinTime)->Repetitions(kRepetitions);

  Collector collector;
  benchmark::RunSpecifiedBenchmarks(&collector);
  benchmark::Shutdown();

  // ---- ceilings and the results file --------------------------------------------------
  const std::vector<Summary> summaries = summarise(collector.results);
  double sgemm_ceiling = 0, copy_ceiling = 0;
  for (const Summary& s : summaries) {
    if (s.error) continue;
    if (s.name.rfind("sgemm/f32/1024x1024x1024", 0) == 0) sgemm_ceiling = std::max(sgemm_ceiling, s.best.at("GFLOPs"));
    if (s.name.rfind("copy/", 0) == 0) copy_ceiling = s.best.at("GBps");
  }

  std::string commit = shell_line(("git -C '" + source_root() + "' rev-parse --short HEAD 2>/dev/null").c_str());
  if (commit.empty()) commit = "unknown";
  const std::time_t now = std::time(nullptr);
  char date[16], day[16];
  std::strftime(date, sizeof date, "%Y-%m-%d", std::localtime(&now));
  std::strftime(day, sizeof day, "%Y%m%d", std::localtime(&now));
  const int cores = omp_get_max_threads();
  const char* coretype = std::getenv("OPENBLAS_CORETYPE");

  std::ostringstream js;
  js << "{ \"device\": \"" << json_escape(cpu_model()) << ", " << cores << " cores\",\n"
     << "  \"commit\": \"" << commit << "\", \"date\": \"" << date << "\",\n"
     << "  \"blas\": \"" << json_escape(graft::kernels::cpu::blas_description()) << "\",\n"
     << "  \"openblas_coretype\": \"" << (coretype ? coretype : "unset") << "\",\n"
     << "  \"statistic\": \"best of " << kRepetitions << " repetitions of >= " << kMinTime
     << " s each; median_value beside it\",\n"
     << "  \"ceilings\": { \"sgemm_GFLOPs\": " << sgemm_ceiling << ", \"copy_GBps\": " << copy_ceiling << " },\n"
     << "  \"results\": [";
  bool first = true;
  std::printf("\n%-60s %9s %8s %9s %8s %9s\n", "benchmark (best of repetitions)", "GFLOP/s", "of sgemm", "GB/s", "of copy",
              "median");
  for (const Summary& s : summaries) {
    if (s.error) {
      std::printf("%-60s FAILED: %s\n", s.name.c_str(), s.error_message.c_str());
      js << (first ? "\n" : ",\n") << "    { \"name\": \"" << json_escape(s.name) << "\", \"error\": \""
         << json_escape(s.error_message) << "\" }";
      first = false;
      continue;
    }
    auto get = [](const std::map<std::string, double>& m, const char* k) {
      const auto it = m.find(k);
      return it == m.end() ? 0.0 : it->second;
    };
    const double gflops = get(s.best, "GFLOPs"), gbps = get(s.best, "GBps");
    // The median of the headline counter (GFLOP/s, else GB/s) beside the best.
    const double median = get(s.median, s.median.count("GFLOPs") ? "GFLOPs" : "GBps");
    std::printf("%-60s %9.1f %8.2f %9.1f %8.2f %9.1f\n", s.name.c_str(), gflops, sgemm_ceiling > 0 ? gflops / sgemm_ceiling : 0,
                gbps, copy_ceiling > 0 ? gbps / copy_ceiling : 0, median);
    auto emit = [&](const char* counter, const char* unit, double ceiling) {
      const double value = get(s.best, counter);
      js << (first ? "\n" : ",\n") << "    { \"name\": \"" << json_escape(s.name) << "\", \"value\": " << value
         << ", \"unit\": \"" << unit << "\", \"fraction_of_ceiling\": " << (ceiling > 0 ? value / ceiling : 0)
         << ", \"median_value\": " << get(s.median, counter) << " }";
      first = false;
    };
    const bool depthwise = s.name.rfind("depthwise", 0) == 0, copy = s.name.rfind("copy", 0) == 0;
    if (copy) emit("GBps", "GB/s", copy_ceiling);
    else if (depthwise) {
      emit("GBps", "GB/s", copy_ceiling);
      emit("GFLOPs", "GFLOP/s", sgemm_ceiling);
    } else emit("GFLOPs", "GFLOP/s", sgemm_ceiling);
  }
  js << "\n  ] }\n";

  const std::string path = out_dir + "/cpu-" + std::to_string(cores) + "core-" + day + "-" + commit + ".json";
  std::ofstream f(path);
  if (!f) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    return 1;
  }
  f << js.str();
  std::printf("\nsgemm ceiling %.1f GFLOP/s, copy ceiling %.1f GB/s, OPENBLAS_CORETYPE=%s, %s\nwrote %s\n", sgemm_ceiling,
              copy_ceiling, coretype ? coretype : "unset", graft::kernels::cpu::blas_description().c_str(), path.c_str());
  return 0;
}
