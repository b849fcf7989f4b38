// The tile index arithmetic of the specialised depthwise kernels
// (kernels/cuda/depthwise.cu), as plain constexpr functions so that the host
// tests can check them against the direct formulas (tests/cuda/test_depthwise.cpp).
// Plain C++: no CUDA headers (the .cu calls them from device code through
// --expt-relaxed-constexpr).
#pragma once

namespace graft::kernels::cuda::dw_index {

// Adjacent pixels along W per thread (forward / backward-weight: output
// pixels; backward-data: input pixels). A multiple of every specialised stride.
constexpr int kTileW = 4;

// floor(a / b) for b > 0.
constexpr int floor_div(int a, int b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// Forward and backward-weight, K taps along W, stride S, dilation 1: a tile of
// outputs ow0 .. ow0 + kTileW - 1 reads the input columns iw0 + j for
// j in [0, fwd_columns(K, S)), iw0 = ow0 * S - pad_left; column j meets output
// t through tap fwd_tap(j, t, S) when that lies in [0, K).
constexpr int fwd_columns(int K, int S) { return (kTileW - 1) * S + K; }
constexpr int fwd_tap(int j, int t, int S) { return j - t * S; }

// Backward-data (gather), K taps, stride S, dilation 1: for a tile of input
// columns iw0 .. iw0 + kTileW - 1 (iw0 a multiple of kTileW), write
// iw0 + pad_left = S * qb + P (P = pad_left % S, the same for every tile).
// Input column iw0 + t gets tap b from grad_y column q = qb + j exactly when
// iw0 + t + pad_left - b == S * q, i.e. b = bwd_tap(P, t, S, j); the j worth
// reading run over [bwd_jlo(K, S, P), bwd_jhi(S, P)] (q must also lie in
// [0, out_w)).
constexpr int bwd_jlo(int K, int S, int P) { return floor_div(P - (K - 1), S); }
constexpr int bwd_jhi(int S, int P) { return floor_div(P + kTileW - 1, S); }
constexpr int bwd_tap(int P, int t, int S, int j) { return P + t - S * j; }

}  // namespace graft::kernels::cuda::dw_index
