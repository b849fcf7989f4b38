#include "engine/ops/shape.h"

#include <algorithm>

#include "engine/autograd/node.h"
#include "engine/ops/layout.h"
#include "engine/ops/reduce.h"
#include "engine/ops/registry.h"

namespace graft {

using autograd::NeedsGrad;
using ops::OpId;

namespace {

// Shape ops move data without computing on it: floating tensors go through
// the op table (f32 on the CPU; f32/f16/bf16 on CUDA); integer and bool
// tensors (labels, masks) are allowed on either device (copy_tensor moves
// every dtype).
void check_input(OpId id, const char* op, const Tensor& x) {
  GRAFT_CHECK(x.defined(), op << ": undefined input");
  if (is_floating(x.dtype())) ops::check_supported(id, {&x});
}

int64_t normalize_dim(int64_t d, int64_t n, const char* op, const Shape& shape) {
  GRAFT_CHECK(d >= -n && d < n, op << ": dim " << d << " is out of range for shape " << shape_str(shape));
  return d < 0 ? d + n : d;
}

// A slab [start, start + len) of x along dim d, as a view.
Tensor narrow_view(const Tensor& x, int64_t d, int64_t start, int64_t len) {
  Shape s = x.shape();
  s[d] = len;
  return ops::make_view(x, s, x.strides(), x.offset() + (len > 0 ? start * x.strides()[d] : 0));
}

}  // namespace

// ---- reshape family ----------------------------------------------------------------

Tensor reshape(const Tensor& x, const Shape& shape_in) {
  check_input(OpId::reshape, "reshape", x);
  Shape shape = shape_in;
  int64_t infer = -1, known = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      GRAFT_CHECK(infer < 0, "reshape: more than one -1 in " << shape_str(shape_in) << " (input "
                                                             << shape_str(x.shape()) << ")");
      infer = static_cast<int64_t>(i);
    } else {
      GRAFT_CHECK(shape[i] >= 0, "reshape: negative size in " << shape_str(shape_in) << " (input "
                                                              << shape_str(x.shape()) << ")");
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    GRAFT_CHECK(known > 0 && x.numel() % known == 0,
                "reshape: cannot infer the -1 in " << shape_str(shape_in) << " for input " << shape_str(x.shape())
                                                   << " (" << x.numel() << " elements)");
    shape[infer] = x.numel() / known;
  }
  GRAFT_CHECK(shape_numel(shape) == x.numel(), "reshape: cannot reshape " << shape_str(x.shape()) << " ("
                                                                          << x.numel() << " elements) into "
                                                                          << shape_str(shape_in));
  if (shape == x.shape()) return x;
  const Tensor xc = x.contiguous();  // a view needs row-major memory; differentiable
  Tensor out = ops::make_view(xc, shape, contiguous_strides(shape), xc.offset());
  if (autograd::needs_grad({&xc}))
    autograd::record("reshape", out, {xc}, [xs = xc.shape()](const Tensor& g, const NeedsGrad&) {
      return std::vector<Tensor>{reshape(g, xs)};
    });
  return out;
}

Tensor flatten(const Tensor& x, int64_t start_dim, int64_t end_dim) {
  check_input(OpId::reshape, "flatten", x);
  if (x.dim() == 0) return reshape(x, {1});
  const int64_t n = x.dim();
  const int64_t s = normalize_dim(start_dim, n, "flatten", x.shape()), e = normalize_dim(end_dim, n, "flatten", x.shape());
  GRAFT_CHECK(s <= e, "flatten: start_dim " << start_dim << " comes after end_dim " << end_dim << " for shape "
                                            << shape_str(x.shape()));
  Shape shape(x.shape().begin(), x.shape().begin() + s);
  int64_t m = 1;
  for (int64_t d = s; d <= e; ++d) m *= x.shape()[d];
  shape.push_back(m);
  shape.insert(shape.end(), x.shape().begin() + e + 1, x.shape().end());
  return reshape(x, shape);
}

Tensor squeeze(const Tensor& x, int64_t dim) {
  check_input(OpId::reshape, "squeeze", x);
  const int64_t d = normalize_dim(dim, x.dim(), "squeeze", x.shape());
  GRAFT_CHECK(x.shape()[d] == 1, "squeeze: dim " << dim << " of shape " << shape_str(x.shape()) << " has size "
                                                 << x.shape()[d] << ", not 1");
  Shape s = x.shape();
  Strides st = x.strides();
  s.erase(s.begin() + d);
  st.erase(st.begin() + d);
  Tensor out = ops::make_view(x, s, st, x.offset());
  if (autograd::needs_grad({&x}))
    autograd::record("squeeze", out, {x}, [d](const Tensor& g, const NeedsGrad&) {
      return std::vector<Tensor>{unsqueeze(g, d)};
    });
  return out;
}

Tensor unsqueeze(const Tensor& x, int64_t dim) {
  check_input(OpId::reshape, "unsqueeze", x);
  const int64_t n = x.dim();
  GRAFT_CHECK(dim >= -(n + 1) && dim <= n, "unsqueeze: dim " << dim << " is out of range for shape "
                                                            << shape_str(x.shape()) << " (allowed " << -(n + 1)
                                                            << ".." << n << ")");
  const int64_t d = dim < 0 ? dim + n + 1 : dim;
  Shape s = x.shape();
  Strides st = x.strides();
  const int64_t stride = d < n ? x.strides()[d] * std::max<int64_t>(x.shape()[d], 1) : 1;
  s.insert(s.begin() + d, 1);
  st.insert(st.begin() + d, stride);
  Tensor out = ops::make_view(x, s, st, x.offset());
  if (autograd::needs_grad({&x}))
    autograd::record("unsqueeze", out, {x}, [d](const Tensor& g, const NeedsGrad&) {
      return std::vector<Tensor>{squeeze(g, d)};
    });
  return out;
}

// ---- permutations ----------------------------------------------------------------------

Tensor permute(const Tensor& x, const std::vector<int64_t>& dims) {
  check_input(OpId::permute, "permute", x);
  const int64_t n = x.dim();
  bool ok = static_cast<int64_t>(dims.size()) == n;
  std::vector<int64_t> perm(dims.size());
  std::vector<bool> seen(n, false);
  for (size_t i = 0; ok && i < dims.size(); ++i) {
    ok = dims[i] >= -n && dims[i] < n;
    if (!ok) break;
    perm[i] = dims[i] < 0 ? dims[i] + n : dims[i];
    ok = !seen[perm[i]];
    seen[perm[i]] = true;
  }
  GRAFT_CHECK(ok, "permute: dims " << shape_str(dims) << " are not a permutation of the " << n
                                   << " dims of shape " << shape_str(x.shape()));
  Shape s(n);
  Strides st(n);
  std::vector<int64_t> inverse(n);
  for (int64_t i = 0; i < n; ++i) {
    s[i] = x.shape()[perm[i]];
    st[i] = x.strides()[perm[i]];
    inverse[perm[i]] = i;
  }
  Tensor out = ops::make_view(x, s, st, x.offset());
  if (autograd::needs_grad({&x}))
    autograd::record("permute", out, {x}, [inverse](const Tensor& g, const NeedsGrad&) {
      return std::vector<Tensor>{permute(g, inverse)};
    });
  return out;
}

Tensor transpose(const Tensor& x, int64_t d0, int64_t d1) {
  check_input(OpId::permute, "transpose", x);
  const int64_t n = x.dim();
  const int64_t a = normalize_dim(d0, n, "transpose", x.shape()), b = normalize_dim(d1, n, "transpose", x.shape());
  std::vector<int64_t> perm(n);
  for (int64_t i = 0; i < n; ++i) perm[i] = i;
  std::swap(perm[a], perm[b]);
  return permute(x, perm);
}

// ---- concat and slice ----------------------------------------------------------------------

Tensor concat(const std::vector<Tensor>& xs, int64_t dim) {
  GRAFT_CHECK(!xs.empty(), "concat: no tensors to concatenate");
  for (size_t i = 0; i < xs.size(); ++i) check_input(OpId::concat, "concat", xs[i]);
  const Tensor& first = xs[0];
  const int64_t n = first.dim();
  GRAFT_CHECK(n > 0, "concat: cannot concatenate zero-dimensional tensors");
  const int64_t d = normalize_dim(dim, n, "concat", first.shape());
  Shape shape = first.shape();
  shape[d] = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const Tensor& x = xs[i];
    GRAFT_CHECK(x.dtype() == first.dtype() && x.device() == first.device(),
                "concat: tensor " << i << " is " << x.str() << " but tensor 0 is " << first.str());
    bool same = x.dim() == n;
    for (int64_t k = 0; same && k < n; ++k) same = k == d || x.shape()[k] == first.shape()[k];
    GRAFT_CHECK(same, "concat: tensor " << i << " has shape " << shape_str(x.shape()) << " but tensor 0 has "
                                        << shape_str(first.shape()) << "; all must match except along dim " << dim);
    shape[d] += x.shape()[d];
  }
  Tensor out = Tensor::empty_strided(shape, ops::dense_strides_like(shape, first), first.dtype(), first.device());
  std::vector<int64_t> starts(xs.size());
  int64_t at = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    starts[i] = at;
    if (xs[i].numel() > 0) copy_tensor(narrow_view(out, d, at, xs[i].shape()[d]), xs[i]);
    at += xs[i].shape()[d];
  }
  if (autograd::needs_grad(xs)) {
    std::vector<int64_t> lens(xs.size());
    for (size_t i = 0; i < xs.size(); ++i) lens[i] = xs[i].shape()[d];
    autograd::record("concat", out, xs, [d, starts, lens](const Tensor& g, const NeedsGrad& needs) {
      std::vector<Tensor> gs(needs.size());
      for (size_t i = 0; i < needs.size(); ++i)
        if (needs[i]) gs[i] = narrow_view(g, d, starts[i], lens[i]);
      return gs;
    });
  }
  return out;
}

Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step) {
  check_input(OpId::slice, "slice", x);
  GRAFT_CHECK(x.dim() > 0, "slice: cannot slice a zero-dimensional tensor");
  GRAFT_CHECK(step > 0, "slice: step must be positive, got " << step << " (shape " << shape_str(x.shape()) << ")");
  const int64_t d = normalize_dim(dim, x.dim(), "slice", x.shape());
  const int64_t L = x.shape()[d];
  auto clamp = [L](int64_t i) { return std::min(std::max(i < 0 ? i + L : i, int64_t(0)), L); };
  const int64_t s = clamp(start), e = clamp(end);
  const int64_t len = e > s ? (e - s - 1) / step + 1 : 0;
  Shape shape = x.shape();
  Strides st = x.strides();
  shape[d] = len;
  st[d] *= step;
  Tensor out = ops::make_view(x, shape, st, x.offset() + (len > 0 ? s * x.strides()[d] : 0));
  if (autograd::needs_grad({&x}))
    autograd::record("slice", out, {x}, [d, s, step, xs = x.shape(), xst = ops::dense_strides_like(x.shape(), x)](
                                            const Tensor& g, const NeedsGrad&) {
      Tensor gx = Tensor::empty_strided(xs, xst, g.dtype(), g.device());
      gx.zero_();
      Strides vst = gx.strides();
      vst[d] *= step;
      if (g.numel() > 0) copy_tensor(ops::make_view(gx, g.shape(), vst, s * gx.strides()[d]), g);
      return std::vector<Tensor>{gx};
    });
  return out;
}

// ---- pad ----------------------------------------------------------------------------------

namespace {

// Where output index j along a padded dim reads from (i = j - before, mapped
// into [0, L) by the mode); only called outside [0, L).
int64_t pad_source(int64_t i, int64_t L, PadMode mode) {
  if (mode == PadMode::edge) return i < 0 ? 0 : L - 1;
  return i < 0 ? -i : 2 * (L - 1) - i;  // reflect (the edge value is not repeated)
}

// Reflect or edge padding of one dim; its own autograd node so that several
// padded dims compose (corners come out right).
Tensor pad_dim(const Tensor& x, int64_t d, int64_t before, int64_t after, PadMode mode) {
  const int64_t L = x.shape()[d], Lo = L + before + after;
  Shape shape = x.shape();
  shape[d] = Lo;
  Tensor out = Tensor::empty_strided(shape, ops::dense_strides_like(shape, x), x.dtype(), x.device());
  const int64_t j0 = std::max<int64_t>(0, before), j1 = std::min(Lo, before + L);  // copied straight
  if (out.numel() > 0) {
    if (j1 > j0) copy_tensor(narrow_view(out, d, j0, j1 - j0), narrow_view(x, d, j0 - before, j1 - j0));
    for (int64_t j = 0; j < Lo; ++j)
      if (j < j0 || j >= j1) copy_tensor(narrow_view(out, d, j, 1), narrow_view(x, d, pad_source(j - before, L, mode), 1));
  }
  if (autograd::needs_grad({&x}))
    autograd::record("pad", out, {x}, [d, before, L, Lo, j0, j1, mode, xs = x.shape(),
                                       xst = ops::dense_strides_like(x.shape(), x)](const Tensor& g, const NeedsGrad&) {
      Tensor gx = Tensor::empty_strided(xs, xst, g.dtype(), g.device());
      gx.zero_();
      if (gx.numel() > 0 && g.numel() > 0) {
        if (j1 > j0) copy_tensor(narrow_view(gx, d, j0 - before, j1 - j0), narrow_view(g, d, j0, j1 - j0));
        for (int64_t j = 0; j < Lo; ++j)
          if (j < j0 || j >= j1) narrow_view(gx, d, pad_source(j - before, L, mode), 1).add_(narrow_view(g, d, j, 1));
      }
      return std::vector<Tensor>{gx};
    });
  return out;
}

}  // namespace

Tensor pad(const Tensor& x, const std::vector<int64_t>& pads, PadMode mode, double value) {
  check_input(OpId::pad, "pad", x);
  const int64_t n = x.dim(), k = static_cast<int64_t>(pads.size()) / 2;
  GRAFT_CHECK(pads.size() % 2 == 0 && k <= n, "pad: pads " << shape_str(pads) << " must hold (before, after) pairs "
                                                           << "for at most the " << n << " dims of shape "
                                                           << shape_str(x.shape()));
  Shape shape = x.shape();
  for (int64_t i = 0; i < k; ++i) {
    const int64_t d = n - k + i, L = x.shape()[d], b = pads[2 * i], a = pads[2 * i + 1];
    shape[d] = L + b + a;
    GRAFT_CHECK(shape[d] >= 0, "pad: pads " << shape_str(pads) << " crop dim " << d << " of shape "
                                            << shape_str(x.shape()) << " below zero");
    if (mode == PadMode::reflect)
      GRAFT_CHECK((b <= 0 || b < L) && (a <= 0 || a < L), "pad: reflect padding of " << std::max(a, b) << " needs dim " << d << " of shape "
                                                             << shape_str(x.shape()) << " to be larger than it");
    if (mode == PadMode::edge)
      GRAFT_CHECK(L > 0 || (b <= 0 && a <= 0), "pad: edge padding of an empty dim " << d << " of shape "
                                                                                   << shape_str(x.shape()));
  }
  if (mode != PadMode::constant) {
    Tensor out = x;
    for (int64_t i = 0; i < k; ++i)
      if (pads[2 * i] != 0 || pads[2 * i + 1] != 0) out = pad_dim(out, n - k + i, pads[2 * i], pads[2 * i + 1], mode);
    return out.same(x) ? x.clone() : out;
  }

  // Constant: fill, then copy the part of x that survives cropping.
  Tensor out = Tensor::empty_strided(shape, ops::dense_strides_like(shape, x), x.dtype(), x.device());
  out.fill_(value);
  Tensor src = x, dst = out;  // views narrowed dim by dim
  for (int64_t i = 0; i < k; ++i) {
    const int64_t d = n - k + i, L = x.shape()[d], b = pads[2 * i];
    const int64_t j0 = std::max<int64_t>(0, b), j1 = std::min(shape[d], b + L);
    const int64_t len = std::max<int64_t>(0, j1 - j0);
    src = narrow_view(src, d, j0 - b, len);
    dst = narrow_view(dst, d, j0, len);
  }
  if (src.numel() > 0) copy_tensor(dst, src);
  if (autograd::needs_grad({&x})) {
    std::vector<int64_t> p = pads;
    autograd::record("pad", out, {x}, [p, k, xs = x.shape(), xst = ops::dense_strides_like(x.shape(), x), os = shape](
                                          const Tensor& g, const NeedsGrad&) {
      Tensor gx = Tensor::empty_strided(xs, xst, g.dtype(), g.device());
      gx.zero_();
      Tensor gsrc = g, gdst = gx;
      const int64_t n = static_cast<int64_t>(xs.size());
      for (int64_t i = 0; i < k; ++i) {
        const int64_t d = n - k + i, L = xs[d], b = p[2 * i];
        const int64_t j0 = std::max<int64_t>(0, b), j1 = std::min(os[d], b + L);
        const int64_t len = std::max<int64_t>(0, j1 - j0);
        gsrc = narrow_view(gsrc, d, j0, len);
        gdst = narrow_view(gdst, d, j0 - b, len);
      }
      if (gsrc.numel() > 0) copy_tensor(gdst, gsrc);
      return std::vector<Tensor>{gx};
    });
  }
  return out;
}

// ---- expand -------------------------------------------------------------------------------

Tensor expand(const Tensor& x, const Shape& shape_in) {
  check_input(OpId::expand, "expand", x);
  const int64_t n = static_cast<int64_t>(shape_in.size()), lead = n - x.dim();
  GRAFT_CHECK(lead >= 0, "expand: cannot expand " << shape_str(x.shape()) << " to " << shape_str(shape_in)
                                                  << " (fewer dims)");
  Shape shape = shape_in;
  for (int64_t d = lead; d < n; ++d)
    if (shape[d] == -1) shape[d] = x.shape()[d - lead];  // -1 keeps the size
  for (int64_t s : shape)
    GRAFT_CHECK(s >= 0, "expand: invalid target shape " << shape_str(shape_in) << " for " << shape_str(x.shape()));
  Tensor out = ops::materialize(ops::broadcast_view(x, shape, "expand"), ops::dense_strides_like(shape, x));
  if (autograd::needs_grad({&x}))
    autograd::record("expand", out, {x}, [xs = x.shape()](const Tensor& g, const NeedsGrad&) {
      return std::vector<Tensor>{sum_to(g, xs)};
    });
  return out;
}

}  // namespace graft
