// ONNX converters of the math family (see converter.h): activations,
// elementwise arithmetic, comparisons, Where, Cast, reductions.
//
// Floating inputs run through the engine's differentiable ops in f32 (f16 and
// bf16 inputs are converted to f32 and the result back). Integer inputs (i64,
// i32, u8: shape arithmetic in exported graphs) are computed exactly on the
// CPU in int64 with NumPy broadcasting and wrap to their dtype as NumPy does;
// they carry no gradient.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <set>

#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"
#include "engine/ops/shape.h"
#include "importers/onnx/converter.h"
#include "importers/onnx/tensor_proto.h"

namespace graft::importer {

namespace {

using Inputs = std::vector<Tensor>;
using Outputs = std::vector<Tensor>;

bool is_float(DType t) { return t == DType::f32 || t == DType::f16 || t == DType::bf16; }
bool is_int(DType t) { return t == DType::i64 || t == DType::i32 || t == DType::u8; }

// Input i, which the node must have.
const Tensor& in(const NodeContext& ctx, const Inputs& xs, size_t i) {
  GRAFT_NODE_CHECK(ctx, i < xs.size() && xs[i].defined(), "input " << i << " is missing");
  return xs[i];
}

// Input i when the node has it, else an undefined tensor.
Tensor optional_in(const Inputs& xs, size_t i) { return i < xs.size() ? xs[i] : Tensor(); }

// A floating input as f32 (f16/bf16 converted, differentiably).
Tensor f32(const NodeContext& ctx, const Tensor& t) {
  GRAFT_NODE_CHECK(ctx, is_float(t.dtype()), "input " << t.str() << " is not supported here (floating inputs only)");
  return t.dtype() == DType::f32 ? t : t.to(DType::f32);
}

// An f32 result back in the input's floating dtype.
Tensor as_dtype(const Tensor& t, DType want) { return t.dtype() == want ? t : t.to(want); }

// ---- exact integer arithmetic on the CPU ----------------------------------------------

// For each element of `out` (row-major), the row-major index of the element of
// a tensor of shape `in` that broadcasts to it.
std::vector<int64_t> broadcast_index(const Shape& in, const Shape& out) {
  const int64_t r = static_cast<int64_t>(out.size()), lead = r - static_cast<int64_t>(in.size());
  std::vector<int64_t> st(r, 0);
  int64_t s = 1;
  for (int64_t d = r - 1; d >= lead; --d) {
    const int64_t n = in[d - lead];
    st[d] = n == 1 ? 0 : s;
    s *= n;
  }
  const int64_t n = shape_numel(out);
  std::vector<int64_t> idx(n), pos(r, 0);
  int64_t cur = 0;
  for (int64_t i = 0; i < n; ++i) {
    idx[i] = cur;
    for (int64_t d = r - 1; d >= 0; --d) {
      cur += st[d];
      if (++pos[d] < out[d]) break;
      cur -= st[d] * out[d];
      pos[d] = 0;
    }
  }
  return idx;
}

Shape broadcast(const NodeContext& ctx, const std::vector<const Tensor*>& ts) {
  Shape s = ts.front()->shape();
  for (size_t i = 1; i < ts.size(); ++i) s = broadcast_shapes(s, ts[i]->shape(), ctx.node().op_type().c_str());
  return s;
}

// Values into an integer or bool tensor of dtype t, wrapping as a C cast of the
// two's-complement value does (NumPy's behaviour); bool: nonzero is true.
Tensor int_tensor(const Shape& shape, const std::vector<int64_t>& v, DType t) {
  Tensor out = Tensor::empty(shape, t);
  const size_t n = v.size();
  switch (t) {
    case DType::i64: std::copy(v.begin(), v.end(), out.data<int64_t>()); break;
    case DType::i32:
      for (size_t i = 0; i < n; ++i) out.data<int32_t>()[i] = static_cast<int32_t>(static_cast<uint32_t>(v[i]));
      break;
    case DType::u8:
      for (size_t i = 0; i < n; ++i) out.data<uint8_t>()[i] = static_cast<uint8_t>(v[i]);
      break;
    case DType::boolean:
      for (size_t i = 0; i < n; ++i) out.data<uint8_t>()[i] = v[i] != 0;
      break;
    default: GRAFT_FAIL("int_tensor: " << dtype_name(t) << " is not an integer dtype");
  }
  return out;
}

// out[i] = f(a[i], b[i]) in int64 with broadcasting; the result has dtype `t`.
template <class F>
Tensor int_binary(const NodeContext& ctx, const Tensor& a, const Tensor& b, DType t, F f) {
  const Shape shape = broadcast(ctx, {&a, &b});
  const std::vector<int64_t> av = a.to_vector_i64(), bv = b.to_vector_i64();
  const std::vector<int64_t> ia = broadcast_index(a.shape(), shape), ib = broadcast_index(b.shape(), shape);
  std::vector<int64_t> out(ia.size());
  for (size_t i = 0; i < out.size(); ++i) out[i] = f(av[ia[i]], bv[ib[i]]);
  return int_tensor(shape, out, t);
}

// Two's-complement wrapping arithmetic (no signed-overflow UB).
int64_t wrap_add(int64_t x, int64_t y) { return static_cast<int64_t>(static_cast<uint64_t>(x) + static_cast<uint64_t>(y)); }
int64_t wrap_sub(int64_t x, int64_t y) { return static_cast<int64_t>(static_cast<uint64_t>(x) - static_cast<uint64_t>(y)); }
int64_t wrap_mul(int64_t x, int64_t y) { return static_cast<int64_t>(static_cast<uint64_t>(x) * static_cast<uint64_t>(y)); }

// The operands of an elementwise binary op: both floating (as f32) or both
// integer of one dtype.
enum class Kind { floating, integer };
Kind binary_kind(const NodeContext& ctx, const Tensor& a, const Tensor& b) {
  if (is_float(a.dtype()) && is_float(b.dtype())) return Kind::floating;
  GRAFT_NODE_CHECK(ctx, is_int(a.dtype()) && a.dtype() == b.dtype(),
                   "operands " << a.str() << " and " << b.str()
                               << " must be both floating or both the same integer dtype (i64, i32, u8)");
  return Kind::integer;
}

// ---- activations and unary math ----------------------------------------------------------

// A unary op on a floating input: f runs on f32, the result returns to x's dtype.
template <class F>
Outputs float_unary(const NodeContext& ctx, const Inputs& xs, F f) {
  const Tensor& x = in(ctx, xs, 0);
  return {as_dtype(f(f32(ctx, x)), x.dtype())};
}

Outputs convert_relu(const NodeContext& ctx, const Inputs& xs) {
  return float_unary(ctx, xs, [](const Tensor& x) { return relu(x); });
}
Outputs convert_sigmoid(const NodeContext& ctx, const Inputs& xs) {
  return float_unary(ctx, xs, [](const Tensor& x) { return sigmoid(x); });
}
Outputs convert_tanh(const NodeContext& ctx, const Inputs& xs) {
  return float_unary(ctx, xs, [](const Tensor& x) { return tanh(x); });
}
Outputs convert_sqrt(const NodeContext& ctx, const Inputs& xs) {
  return float_unary(ctx, xs, [](const Tensor& x) { return sqrt(x); });
}
Outputs convert_erf(const NodeContext& ctx, const Inputs& xs) {
  return float_unary(ctx, xs, [](const Tensor& x) { return erf(x); });
}
Outputs convert_exp(const NodeContext& ctx, const Inputs& xs) {
  return float_unary(ctx, xs, [](const Tensor& x) { return exp(x); });
}
Outputs convert_log(const NodeContext& ctx, const Inputs& xs) {
  return float_unary(ctx, xs, [](const Tensor& x) { return log(x); });
}
Outputs convert_reciprocal(const NodeContext& ctx, const Inputs& xs) {
  return float_unary(ctx, xs, [](const Tensor& x) { return pow_scalar(x, -1.0); });
}
Outputs convert_hardswish(const NodeContext& ctx, const Inputs& xs) {
  return float_unary(ctx, xs, [](const Tensor& x) { return hardswish(x); });
}

// max(0, min(1, alpha x + beta)).
Outputs convert_hardsigmoid(const NodeContext& ctx, const Inputs& xs) {
  const float alpha = ctx.attr_float("alpha", 0.2f), beta = ctx.attr_float("beta", 0.5f);
  return float_unary(ctx, xs, [&](const Tensor& x) {
    if (alpha == 1.f / 6.f && beta == 0.5f) return hardsigmoid(x);  // PyTorch's; one pass
    return clip(add_scalar(mul_scalar(x, alpha), beta), 0.0, 1.0);
  });
}

Outputs convert_gelu(const NodeContext& ctx, const Inputs& xs) {
  const std::string approx = ctx.attr_string("approximate", "none");
  GRAFT_NODE_CHECK(ctx, approx == "none" || approx == "tanh",
                   "attribute approximate='" << approx << "' is not supported (none or tanh)");
  return float_unary(ctx, xs, [&](const Tensor& x) { return gelu(x, approx == "tanh" ? GeluApprox::tanh : GeluApprox::none); });
}

// |x| = relu(x) + relu(-x): differentiable, gradient 0 at 0.
Tensor abs_f32(const Tensor& x) { return add(relu(x), relu(neg(x))); }

Outputs convert_neg(const NodeContext& ctx, const Inputs& xs) {
  const Tensor& x = in(ctx, xs, 0);
  if (is_int(x.dtype())) return {int_binary(ctx, x, Tensor::zeros({}, DType::i64), x.dtype(), [](int64_t v, int64_t) { return wrap_sub(0, v); })};
  return float_unary(ctx, xs, [](const Tensor& v) { return neg(v); });
}

Outputs convert_abs(const NodeContext& ctx, const Inputs& xs) {
  const Tensor& x = in(ctx, xs, 0);
  if (is_int(x.dtype()))
    return {int_binary(ctx, x, Tensor::zeros({}, DType::i64), x.dtype(), [](int64_t v, int64_t) { return v < 0 ? wrap_sub(0, v) : v; })};
  return float_unary(ctx, xs, abs_f32);
}

Outputs convert_identity(const NodeContext& ctx, const Inputs& xs) { return {in(ctx, xs, 0)}; }

// ---- Clip -------------------------------------------------------------------------------

// A bound given as an input (opset 11+): a scalar (or one-element) tensor.
double bound_value(const NodeContext& ctx, const Tensor& t, const char* which, double fallback) {
  if (!t.defined()) return fallback;
  GRAFT_NODE_CHECK(ctx, t.numel() == 1, which << " must be a scalar, got " << t.str());
  return is_float(t.dtype()) ? static_cast<double>(t.detach().item()) : static_cast<double>(t.to_vector_i64()[0]);
}

Outputs clip_with(const NodeContext& ctx, const Tensor& x, double lo, double hi) {
  if (is_int(x.dtype())) {
    const auto l = static_cast<int64_t>(std::max(lo, -9.2e18)), h = static_cast<int64_t>(std::min(hi, 9.2e18));
    return {int_binary(ctx, x, Tensor::zeros({}, DType::i64), x.dtype(),
                       [l, h](int64_t v, int64_t) { return l > h ? h : std::min(std::max(v, l), h); })};
  }
  // min > max sets every value to max (the spec, opset 11 on).
  if (lo > hi) lo = hi;
  return {as_dtype(clip(f32(ctx, x), lo, hi), x.dtype())};
}

Outputs convert_clip_attr(const NodeContext& ctx, const Inputs& xs) {  // opset 6-10: attributes
  const float inf = std::numeric_limits<float>::infinity();
  return clip_with(ctx, in(ctx, xs, 0), ctx.attr_float("min", -inf), ctx.attr_float("max", inf));
}

Outputs convert_clip(const NodeContext& ctx, const Inputs& xs) {  // opset 11+: optional inputs
  const double inf = std::numeric_limits<double>::infinity();
  return clip_with(ctx, in(ctx, xs, 0), bound_value(ctx, optional_in(xs, 1), "min", -inf),
                   bound_value(ctx, optional_in(xs, 2), "max", inf));
}

// ---- binary arithmetic ---------------------------------------------------------------------

// The second operand of Add/Sub/Mul/Div. Opset 7 on: as given (NumPy
// broadcasting). Opset 6: the legacy rule, where without `broadcast=1` the
// shapes must be equal, and with it B's dims match A's from `axis` on (default:
// A's trailing dims), so B is reshaped to A's rank with ones around them.
Tensor second_operand(const NodeContext& ctx, const Inputs& xs) {
  const Tensor &a = in(ctx, xs, 0), &b = in(ctx, xs, 1);
  if (ctx.opset() >= 7) return b;
  if (ctx.attr_int("broadcast", 0) == 0) {
    GRAFT_NODE_CHECK(ctx, a.shape() == b.shape(), "without broadcast=1 (opset 6) the shapes must be equal, got "
                                                      << shape_str(a.shape()) << " and " << shape_str(b.shape()));
    return b;
  }
  const int64_t axis = ctx.attr_int("axis", a.dim() - b.dim());
  GRAFT_NODE_CHECK(ctx, axis >= 0 && axis + b.dim() <= a.dim(),
                   "broadcast axis " << axis << " does not fit B " << shape_str(b.shape()) << " into A "
                                     << shape_str(a.shape()));
  Shape shape(static_cast<size_t>(a.dim()), 1);
  for (int64_t i = 0; i < b.dim(); ++i) {
    const int64_t d = b.size(i), want = a.size(axis + i);
    GRAFT_NODE_CHECK(ctx, d == want || d == 1, "B " << shape_str(b.shape()) << " does not broadcast onto A "
                                                    << shape_str(a.shape()) << " from axis " << axis);
    shape[static_cast<size_t>(axis + i)] = d;
  }
  return reshape(b, shape);
}

Outputs convert_add(const NodeContext& ctx, const Inputs& xs) {
  const Tensor& a = in(ctx, xs, 0);
  const Tensor b = second_operand(ctx, xs);
  if (binary_kind(ctx, a, b) == Kind::integer) return {int_binary(ctx, a, b, a.dtype(), wrap_add)};
  return {as_dtype(add(f32(ctx, a), f32(ctx, b)), a.dtype())};
}

Outputs convert_sub(const NodeContext& ctx, const Inputs& xs) {
  const Tensor& a = in(ctx, xs, 0);
  const Tensor b = second_operand(ctx, xs);
  if (binary_kind(ctx, a, b) == Kind::integer) return {int_binary(ctx, a, b, a.dtype(), wrap_sub)};
  return {as_dtype(sub(f32(ctx, a), f32(ctx, b)), a.dtype())};
}

Outputs convert_mul(const NodeContext& ctx, const Inputs& xs) {
  const Tensor& a = in(ctx, xs, 0);
  const Tensor b = second_operand(ctx, xs);
  if (binary_kind(ctx, a, b) == Kind::integer) return {int_binary(ctx, a, b, a.dtype(), wrap_mul)};
  return {as_dtype(mul(f32(ctx, a), f32(ctx, b)), a.dtype())};
}

// Integer division truncates toward zero (as C; the ONNX spec and onnxruntime).
Outputs convert_div(const NodeContext& ctx, const Inputs& xs) {
  const Tensor& a = in(ctx, xs, 0);
  const Tensor b = second_operand(ctx, xs);
  if (binary_kind(ctx, a, b) == Kind::integer) {
    bool by_zero = false;
    Tensor out = int_binary(ctx, a, b, a.dtype(), [&](int64_t x, int64_t y) -> int64_t {
      if (y == 0) {
        by_zero = true;
        return 0;
      }
      return y == -1 ? wrap_sub(0, x) : x / y;  // INT64_MIN / -1 wraps instead of trapping
    });
    GRAFT_NODE_CHECK(ctx, !by_zero, "integer division by zero (" << a.str() << " / " << b.str() << ")");
    return {out};
  }
  return {as_dtype(div(f32(ctx, a), f32(ctx, b)), a.dtype())};
}

// Base and exponent may differ in type (opset 12+). A floating base gives a
// floating result; an integer base an integer one (computed in double and
// truncated, as the reference implementation's cast).
Outputs convert_pow(const NodeContext& ctx, const Inputs& xs) {
  const Tensor &a = in(ctx, xs, 0), &b = in(ctx, xs, 1);
  GRAFT_NODE_CHECK(ctx, (is_float(a.dtype()) || is_int(a.dtype())) && (is_float(b.dtype()) || is_int(b.dtype())),
                   "unsupported operand dtypes " << a.str() << " and " << b.str());
  if (is_int(a.dtype())) {
    const Shape shape = broadcast(ctx, {&a, &b});
    const std::vector<int64_t> av = a.to_vector_i64();
    std::vector<double> bv;
    if (is_float(b.dtype())) {
      for (float v : b.detach().to_vector()) bv.push_back(v);
    } else {
      for (int64_t v : b.to_vector_i64()) bv.push_back(static_cast<double>(v));
    }
    const auto ia = broadcast_index(a.shape(), shape), ib = broadcast_index(b.shape(), shape);
    std::vector<int64_t> out(ia.size());
    for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<int64_t>(std::pow(static_cast<double>(av[ia[i]]), bv[ib[i]]));
    return {int_tensor(shape, out, a.dtype())};
  }
  const Tensor base = f32(ctx, a);
  // A constant exponent (the usual x^2, x^0.5) takes the scalar op: exact
  // fast paths and no gradient work for the exponent.
  if (b.numel() == 1 && !b.requires_grad()) {
    const double e = is_float(b.dtype()) ? static_cast<double>(b.item()) : static_cast<double>(b.to_vector_i64()[0]);
    Tensor y = pow_scalar(base, e);
    if (b.dim() > a.dim()) y = reshape(y, broadcast(ctx, {&a, &b}));
    return {as_dtype(y, a.dtype())};
  }
  const Tensor e = is_float(b.dtype()) ? f32(ctx, b) : b.to(DType::f32);
  return {as_dtype(pow(base, e), a.dtype())};
}

// ---- variadic Max / Min / Sum / Mean ---------------------------------------------------------

// a >= b (or a is NaN, so that NaN propagates as NumPy's maximum), as bool,
// computed on the CPU with broadcasting; no gradient flows through a mask.
Tensor mask_of(const NodeContext& ctx, const Tensor& a, const Tensor& b, bool greater) {
  const Shape shape = broadcast(ctx, {&a, &b});
  const std::vector<float> av = a.detach().to_vector(), bv = b.detach().to_vector();
  const auto ia = broadcast_index(a.shape(), shape), ib = broadcast_index(b.shape(), shape);
  std::vector<int64_t> m(ia.size());
  for (size_t i = 0; i < m.size(); ++i) {
    const float x = av[ia[i]], y = bv[ib[i]];
    m[i] = std::isnan(x) || (greater ? x >= y : x <= y);
  }
  return int_tensor(shape, m, DType::boolean);
}

Outputs variadic(const NodeContext& ctx, const Inputs& xs, int op /* 0 max, 1 min, 2 sum */) {
  GRAFT_NODE_CHECK(ctx, !xs.empty(), "needs at least one input");
  Tensor acc = in(ctx, xs, 0);
  for (size_t i = 1; i < xs.size(); ++i) {
    const Tensor& b = in(ctx, xs, i);
    if (binary_kind(ctx, acc, b) == Kind::integer) {
      acc = op == 2   ? int_binary(ctx, acc, b, acc.dtype(), wrap_add)
            : op == 0 ? int_binary(ctx, acc, b, acc.dtype(), [](int64_t x, int64_t y) { return std::max(x, y); })
                      : int_binary(ctx, acc, b, acc.dtype(), [](int64_t x, int64_t y) { return std::min(x, y); });
    } else {
      const DType t = acc.dtype();
      const Tensor x = f32(ctx, acc), y = f32(ctx, b);
      acc = as_dtype(op == 2 ? add(x, y) : where(mask_of(ctx, x, y, op == 0), x, y), t);
    }
  }
  return {acc};
}

Outputs convert_max(const NodeContext& ctx, const Inputs& xs) { return variadic(ctx, xs, 0); }
Outputs convert_min(const NodeContext& ctx, const Inputs& xs) { return variadic(ctx, xs, 1); }
Outputs convert_sum(const NodeContext& ctx, const Inputs& xs) { return variadic(ctx, xs, 2); }
Outputs convert_mean(const NodeContext& ctx, const Inputs& xs) {
  Tensor s = variadic(ctx, xs, 2)[0];
  GRAFT_NODE_CHECK(ctx, is_float(s.dtype()), "integer inputs are not supported (" << s.str() << ")");
  return {as_dtype(mul_scalar(f32(ctx, s), 1.0 / static_cast<double>(xs.size())), s.dtype())};
}

// ---- comparisons and Where ----------------------------------------------------------------

Outputs convert_equal(const NodeContext& ctx, const Inputs& xs) {
  const Tensor &a = in(ctx, xs, 0), &b = in(ctx, xs, 1);
  if (is_float(a.dtype()) && is_float(b.dtype())) return {equal(f32(ctx, a).detach(), f32(ctx, b).detach())};
  GRAFT_NODE_CHECK(ctx, a.dtype() == b.dtype() && (is_int(a.dtype()) || a.dtype() == DType::boolean),
                   "operands " << a.str() << " and " << b.str() << " must be of one supported dtype");
  return {equal(a, b)};
}

enum class Cmp { less, less_equal, greater, greater_equal };

// Less / Greater / ...: bool, computed on the CPU (floats as float, integers exactly).
Outputs compare(const NodeContext& ctx, const Inputs& xs, Cmp cmp) {
  const Tensor &a = in(ctx, xs, 0), &b = in(ctx, xs, 1);
  const Shape shape = broadcast(ctx, {&a, &b});
  const auto ia = broadcast_index(a.shape(), shape), ib = broadcast_index(b.shape(), shape);
  std::vector<int64_t> m(ia.size());
  auto fill = [&](const auto& av, const auto& bv) {
    for (size_t i = 0; i < m.size(); ++i) {
      const auto x = av[ia[i]], y = bv[ib[i]];
      m[i] = cmp == Cmp::less ? x < y : cmp == Cmp::less_equal ? x <= y : cmp == Cmp::greater ? x > y : x >= y;
    }
  };
  if (binary_kind(ctx, a, b) == Kind::floating) fill(a.detach().to_vector(), b.detach().to_vector());
  else fill(a.to_vector_i64(), b.to_vector_i64());
  return {int_tensor(shape, m, DType::boolean)};
}

// ---- logic and Mod (masks and index arithmetic, as in expanded Attention graphs) ----------

// Not / And / Or / Xor on bool tensors (opset 7+), with broadcasting.
Outputs convert_not(const NodeContext& ctx, const Inputs& xs) {
  const Tensor& a = in(ctx, xs, 0);
  GRAFT_NODE_CHECK(ctx, a.dtype() == DType::boolean, "input must be bool, got " << a.str());
  return {int_binary(ctx, a, Tensor::zeros({}, DType::boolean), DType::boolean,
                     [](int64_t x, int64_t) -> int64_t { return x == 0; })};
}

template <class F>
Outputs logic_binary(const NodeContext& ctx, const Inputs& xs, F f) {
  const Tensor &a = in(ctx, xs, 0), &b = in(ctx, xs, 1);
  GRAFT_NODE_CHECK(ctx, a.dtype() == DType::boolean && b.dtype() == DType::boolean,
                   "inputs must be bool, got " << a.str() << " and " << b.str());
  return {int_binary(ctx, a, b, DType::boolean, f)};
}
Outputs convert_and(const NodeContext& ctx, const Inputs& xs) {
  return logic_binary(ctx, xs, [](int64_t x, int64_t y) -> int64_t { return x && y; });
}
Outputs convert_or(const NodeContext& ctx, const Inputs& xs) {
  return logic_binary(ctx, xs, [](int64_t x, int64_t y) -> int64_t { return x || y; });
}
Outputs convert_xor(const NodeContext& ctx, const Inputs& xs) {
  return logic_binary(ctx, xs, [](int64_t x, int64_t y) -> int64_t { return (x != 0) != (y != 0); });
}

// Mod (opset 10+) on integers: fmod = 0 takes the divisor's sign (Python's %),
// fmod = 1 the dividend's (C's %). Floating Mod is not differentiable here and
// is refused.
Outputs convert_mod(const NodeContext& ctx, const Inputs& xs) {
  const Tensor &a = in(ctx, xs, 0), &b = in(ctx, xs, 1);
  GRAFT_NODE_CHECK(ctx, binary_kind(ctx, a, b) == Kind::integer,
                   "Mod on floating tensors is not supported (integer Mod only), got " << a.str());
  const bool c_style = ctx.attr_int("fmod", 0) != 0;
  bool by_zero = false;
  Tensor out = int_binary(ctx, a, b, a.dtype(), [&](int64_t x, int64_t y) -> int64_t {
    if (y == 0) {
      by_zero = true;
      return 0;
    }
    if (y == -1) return 0;  // INT64_MIN % -1 would trap
    const int64_t r = x % y;
    return (!c_style && r != 0 && ((r < 0) != (y < 0))) ? r + y : r;
  });
  GRAFT_NODE_CHECK(ctx, !by_zero, "integer Mod by zero (" << a.str() << " % " << b.str() << ")");
  return {out};
}

Outputs convert_less(const NodeContext& ctx, const Inputs& xs) { return compare(ctx, xs, Cmp::less); }
Outputs convert_less_equal(const NodeContext& ctx, const Inputs& xs) { return compare(ctx, xs, Cmp::less_equal); }
Outputs convert_greater(const NodeContext& ctx, const Inputs& xs) { return compare(ctx, xs, Cmp::greater); }
Outputs convert_greater_equal(const NodeContext& ctx, const Inputs& xs) { return compare(ctx, xs, Cmp::greater_equal); }

Outputs convert_where(const NodeContext& ctx, const Inputs& xs) {
  const Tensor &c = in(ctx, xs, 0), &a = in(ctx, xs, 1), &b = in(ctx, xs, 2);
  GRAFT_NODE_CHECK(ctx, c.dtype() == DType::boolean || c.dtype() == DType::u8, "condition must be bool, got " << c.str());
  if (is_float(a.dtype()) && is_float(b.dtype())) return {as_dtype(where(c, f32(ctx, a), f32(ctx, b)), a.dtype())};
  GRAFT_NODE_CHECK(ctx, a.dtype() == b.dtype() && (is_int(a.dtype()) || a.dtype() == DType::boolean),
                   "values " << a.str() << " and " << b.str() << " must be of one supported dtype");
  const Shape shape = broadcast(ctx, {&c, &a, &b});
  const std::vector<int64_t> cv = c.to_vector_i64(), av = a.to_vector_i64(), bv = b.to_vector_i64();
  const auto ic = broadcast_index(c.shape(), shape), ia = broadcast_index(a.shape(), shape),
             ib = broadcast_index(b.shape(), shape);
  std::vector<int64_t> out(ic.size());
  for (size_t i = 0; i < out.size(); ++i) out[i] = cv[ic[i]] ? av[ia[i]] : bv[ib[i]];
  return {int_tensor(shape, out, a.dtype())};
}

// ---- Cast ------------------------------------------------------------------------------------

// The Graft dtype of an ONNX TensorProto data type; an error for those Graft
// cannot hold.
DType dtype_of_onnx(const NodeContext& ctx, int64_t t) {
  switch (t) {
    case ::onnx::TensorProto::FLOAT: return DType::f32;
    case ::onnx::TensorProto::FLOAT16: return DType::f16;
    case ::onnx::TensorProto::BFLOAT16: return DType::bf16;
    case ::onnx::TensorProto::INT64: return DType::i64;
    case ::onnx::TensorProto::INT32: return DType::i32;
    case ::onnx::TensorProto::UINT8: return DType::u8;
    case ::onnx::TensorProto::BOOL: return DType::boolean;
    default:
      GRAFT_NODE_CHECK(ctx, false, "unsupported dtype: cannot cast to " << onnx_dtype_name(static_cast<int>(t))
                                                                        << " (Graft holds float, float16, bfloat16, "
                                                                           "int64, int32, uint8, bool)");
  }
  return DType::f32;
}

Tensor cast_to(const Tensor& x, DType t) {
  if (x.dtype() == t) return x;
  if (is_float(t) && is_float(x.dtype())) return x.to(t);  // differentiable
  if (is_float(t)) return x.to(t);                          // from an integer: nothing to differentiate
  if (is_float(x.dtype())) {                                // float -> integer: toward zero, no gradient
    if (t == DType::boolean) return x.detach().to(t);
    std::vector<int64_t> v;
    for (float f : x.detach().to_vector())  // NaN and out-of-range values (undefined in C) become 0 / the int64 ends
      v.push_back(std::isnan(f) ? 0 : static_cast<int64_t>(std::max(std::min(static_cast<double>(f), 9.2e18), -9.2e18)));
    return int_tensor(x.shape(), v, t);
  }
  return int_tensor(x.shape(), x.to_vector_i64(), t);  // integer -> integer: wraps
}

// `saturate` (opset 19) only concerns float8 targets, which Graft does not hold.
Outputs convert_cast(const NodeContext& ctx, const Inputs& xs) {
  return {cast_to(in(ctx, xs, 0), dtype_of_onnx(ctx, ctx.attr_int("to")))};
}

Outputs convert_cast_like(const NodeContext& ctx, const Inputs& xs) {
  return {cast_to(in(ctx, xs, 0), in(ctx, xs, 1).dtype())};
}

// ---- reductions ------------------------------------------------------------------------------

// The axes of a Reduce* node: the attribute before `input_from`, the optional
// second input from it on. Validated against x's rank, normalised, no repeats.
// Returns false when the node reduces nothing (empty axes with
// noop_with_empty_axes).
bool reduce_axes(const NodeContext& ctx, const Inputs& xs, int input_from, std::vector<int64_t>& axes) {
  const Tensor& x = in(ctx, xs, 0);
  if (ctx.opset() < input_from) {
    axes = ctx.attr_ints("axes", {});
  } else {
    const Tensor a = optional_in(xs, 1);
    if (a.defined()) {
      GRAFT_NODE_CHECK(ctx, a.dtype() == DType::i64 || a.dtype() == DType::i32, "axes must be integers, got " << a.str());
      axes = a.to_vector_i64();
    }
  }
  const int64_t r = x.dim();
  std::set<int64_t> seen;
  for (int64_t& ax : axes) {
    GRAFT_NODE_CHECK(ctx, ax >= -r && ax < r, "axis " << ax << " is out of range for " << x.str());
    if (ax < 0) ax += r;
    GRAFT_NODE_CHECK(ctx, seen.insert(ax).second, "axis " << ax << " is repeated");
  }
  if (axes.empty() && ctx.opset() >= input_from && ctx.attr_int("noop_with_empty_axes", 0) != 0) return false;
  if (axes.empty())
    for (int64_t d = 0; d < r; ++d) axes.push_back(d);
  return true;
}

Outputs convert_reduce_mean(const NodeContext& ctx, const Inputs& xs) {
  std::vector<int64_t> axes;
  const Tensor& x = in(ctx, xs, 0);
  if (!reduce_axes(ctx, xs, 18, axes)) return {x};
  const bool keep = ctx.attr_int("keepdims", 1) != 0;
  if (x.dim() == 0) return {x};
  return {as_dtype(mean(f32(ctx, x), axes, keep), x.dtype())};
}

Outputs convert_reduce_sum(const NodeContext& ctx, const Inputs& xs) {
  std::vector<int64_t> axes;
  const Tensor& x = in(ctx, xs, 0);
  if (!reduce_axes(ctx, xs, 13, axes)) return {x};
  const bool keep = ctx.attr_int("keepdims", 1) != 0;
  if (x.dim() == 0) return {x};
  return {as_dtype(sum(f32(ctx, x), axes, keep), x.dtype())};
}

// ReduceMax / ReduceMin: the extreme found on the CPU, then taken through
// differentiable ops so that gradients flow (split evenly between ties, as
// PyTorch's amax): sum(where(x == m, x, 0)) / count(x == m).
Outputs reduce_extreme(const NodeContext& ctx, const Inputs& xs, bool is_max) {
  std::vector<int64_t> axes;
  const Tensor& x = in(ctx, xs, 0);
  if (!reduce_axes(ctx, xs, 18, axes)) return {x};
  const bool keep = ctx.attr_int("keepdims", 1) != 0;
  if (x.dim() == 0) return {x};
  const Tensor xf = f32(ctx, x);
  Shape kept = x.shape();
  for (int64_t ax : axes) {
    GRAFT_NODE_CHECK(ctx, kept[ax] > 0, "cannot reduce the empty axis " << ax << " of " << x.str());
    kept[ax] = 1;
  }
  const std::vector<float> v = xf.detach().to_vector();
  const std::vector<int64_t> group = broadcast_index(kept, x.shape());
  std::vector<float> m(shape_numel(kept), is_max ? -std::numeric_limits<float>::infinity()
                                                   : std::numeric_limits<float>::infinity());
  std::vector<bool> nan(m.size(), false);
  for (size_t i = 0; i < v.size(); ++i) {
    float& e = m[group[i]];
    if (std::isnan(v[i])) nan[group[i]] = true;
    else e = is_max ? std::max(e, v[i]) : std::min(e, v[i]);
  }
  for (size_t g = 0; g < m.size(); ++g)
    if (nan[g]) m[g] = std::numeric_limits<float>::quiet_NaN();  // NaN propagates
  std::vector<int64_t> hit(v.size());
  for (size_t i = 0; i < v.size(); ++i) hit[i] = v[i] == m[group[i]] || (std::isnan(v[i]) && nan[group[i]]);
  const Tensor mask = int_tensor(x.shape(), hit, DType::boolean);
  const Tensor zero = Tensor::zeros({});
  Tensor picked = sum(where(mask, xf, zero), axes, true);  // NaN groups: NaN from the sum, as wanted
  const Tensor count = sum(mask.to(DType::f32), axes, true);
  Tensor y = div(picked, count);
  if (!keep) {
    Shape out;
    for (int64_t d = 0; d < x.dim(); ++d)
      if (std::find(axes.begin(), axes.end(), d) == axes.end()) out.push_back(x.shape()[d]);
    y = reshape(y, out);
  }
  return {as_dtype(y, x.dtype())};
}

Outputs convert_reduce_max(const NodeContext& ctx, const Inputs& xs) { return reduce_extreme(ctx, xs, true); }
Outputs convert_reduce_min(const NodeContext& ctx, const Inputs& xs) { return reduce_extreme(ctx, xs, false); }

void add_spec(OpRegistry& r, const char* op, int min_opset, int max_opset, Converter convert,
              std::vector<int> value_inputs = {}) {
  OpSpec s;
  s.op_type = op;
  s.min_opset = min_opset;
  s.max_opset = max_opset;
  s.convert = convert;
  s.value_inputs = std::move(value_inputs);
  r.add(std::move(s));
}

}  // namespace

void register_math_ops(OpRegistry& r) {
  // Semantics unchanged across these ranges (later versions add types only).
  add_spec(r, "Relu", 6, 25, convert_relu);
  add_spec(r, "Sigmoid", 6, 25, convert_sigmoid);
  add_spec(r, "Tanh", 6, 25, convert_tanh);
  add_spec(r, "HardSigmoid", 6, 25, convert_hardsigmoid);
  add_spec(r, "HardSwish", 14, 25, convert_hardswish);
  add_spec(r, "Sqrt", 6, 25, convert_sqrt);
  add_spec(r, "Erf", 9, 25, convert_erf);
  add_spec(r, "Gelu", 20, 25, convert_gelu);
  add_spec(r, "Exp", 6, 25, convert_exp);
  add_spec(r, "Log", 6, 25, convert_log);
  add_spec(r, "Neg", 6, 25, convert_neg);
  add_spec(r, "Abs", 6, 25, convert_abs);
  add_spec(r, "Reciprocal", 6, 25, convert_reciprocal);
  add_spec(r, "Identity", 6, 25, convert_identity);
  // Clip: min/max attributes before 11, optional inputs from 11.
  add_spec(r, "Clip", 6, 10, convert_clip_attr);
  add_spec(r, "Clip", 11, 25, convert_clip, {1, 2});
  // Binary arithmetic with NumPy broadcasting from opset 7.
  add_spec(r, "Add", 6, 25, convert_add);
  add_spec(r, "Sub", 6, 25, convert_sub);
  add_spec(r, "Mul", 6, 25, convert_mul);
  add_spec(r, "Div", 6, 25, convert_div);
  add_spec(r, "Pow", 7, 25, convert_pow, {1});
  // Variadic with broadcasting from opset 8.
  add_spec(r, "Max", 8, 25, convert_max);
  add_spec(r, "Min", 8, 25, convert_min);
  add_spec(r, "Sum", 8, 25, convert_sum);
  add_spec(r, "Mean", 8, 25, convert_mean);
  // Comparisons (bool out) and selection.
  add_spec(r, "Equal", 7, 25, convert_equal);
  add_spec(r, "Less", 7, 25, convert_less);
  add_spec(r, "Greater", 7, 25, convert_greater);
  add_spec(r, "LessOrEqual", 12, 25, convert_less_equal);
  add_spec(r, "GreaterOrEqual", 12, 25, convert_greater_equal);
  add_spec(r, "Where", 9, 25, convert_where);
  add_spec(r, "Not", 6, 25, convert_not);
  add_spec(r, "And", 7, 25, convert_and);
  add_spec(r, "Or", 7, 25, convert_or);
  add_spec(r, "Xor", 7, 25, convert_xor);
  add_spec(r, "Mod", 10, 25, convert_mod);
  add_spec(r, "Cast", 6, 25, convert_cast);
  add_spec(r, "CastLike", 15, 25, convert_cast_like);
  // Reductions: axes an attribute before 18 (ReduceMean) / 13 (ReduceSum), an input from then.
  add_spec(r, "ReduceMean", 6, 17, convert_reduce_mean);
  add_spec(r, "ReduceMean", 18, 25, convert_reduce_mean, {1});
  add_spec(r, "ReduceSum", 6, 12, convert_reduce_sum);
  add_spec(r, "ReduceSum", 13, 25, convert_reduce_sum, {1});
  add_spec(r, "ReduceMax", 6, 17, convert_reduce_max);
  add_spec(r, "ReduceMax", 18, 25, convert_reduce_max, {1});
  add_spec(r, "ReduceMin", 6, 17, convert_reduce_min);
  add_spec(r, "ReduceMin", 18, 25, convert_reduce_min, {1});
}

}  // namespace graft::importer
