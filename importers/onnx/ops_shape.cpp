// ONNX converters of the shape family (see converter.h): Flatten, Reshape,
// Transpose, Concat, Split, Slice, Squeeze, Unsqueeze, Gather, Shape, Size,
// Range, Constant, ConstantOfShape, Expand, Pad.
//
// They act on logical (ONNX) shapes; the engine's shape ops keep whatever
// memory layout suits them. Integer tensors (shape subgraphs: Shape -> Gather
// -> Unsqueeze -> Concat -> Reshape on i64) go through the same engine ops,
// which copy integers exactly on the CPU.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <sstream>
#include <string>

#include "engine/ops/shape.h"
#include "importers/onnx/converter.h"

namespace graft::importer {

namespace {

using Inputs = std::vector<Tensor>;

bool present(const Inputs& in, size_t i) { return i < in.size() && in[i].defined(); }

std::string list_str(const std::vector<int64_t>& v) { return shape_str(v); }

const Tensor& input(const NodeContext& ctx, const Inputs& in, size_t i, const char* what) {
  GRAFT_NODE_CHECK(ctx, present(in, i), "input " << i << " ('" << what << "') is missing");
  return in[i];
}

// The values of an integer input read as a list (shape, axes, pads, bounds).
std::vector<int64_t> int_values(const NodeContext& ctx, const Inputs& in, size_t i, const char* what) {
  const Tensor& t = input(ctx, in, i, what);
  GRAFT_NODE_CHECK(ctx, t.dtype() == DType::i64 || t.dtype() == DType::i32,
                   "input '" << what << "' must be int64 or int32, is " << t.str());
  GRAFT_NODE_CHECK(ctx, t.dim() <= 1, "input '" << what << "' must be a 1-D list, is " << t.str());
  return t.to_vector_i64();
}

// An axis in [-rank, rank) made non-negative.
int64_t axis_in(const NodeContext& ctx, int64_t axis, int64_t rank, const char* what) {
  GRAFT_NODE_CHECK(ctx, axis >= -rank && axis < rank,
                   what << " " << axis << " is out of range for rank " << rank << " (allowed " << -rank << ".."
                        << rank - 1 << ")");
  return axis < 0 ? axis + rank : axis;
}

// Axes made non-negative; repeated axes are an error.
std::vector<int64_t> axes_in(const NodeContext& ctx, const std::vector<int64_t>& axes, int64_t rank) {
  std::vector<int64_t> out;
  for (int64_t a : axes) {
    const int64_t n = axis_in(ctx, a, rank, "axis");
    GRAFT_NODE_CHECK(ctx, std::find(out.begin(), out.end(), n) == out.end(),
                     "axes " << list_str(axes) << " name axis " << n << " twice");
    out.push_back(n);
  }
  return out;
}

// ---- Flatten, Reshape, Transpose --------------------------------------------------

Inputs convert_flatten(const NodeContext& ctx, const Inputs& in) {
  const Tensor& x = input(ctx, in, 0, "input");
  const int64_t r = x.dim();
  int64_t axis = ctx.attr_int("axis", 1);
  GRAFT_NODE_CHECK(ctx, axis >= -r && axis <= r,
                   "axis " << axis << " is out of range for input " << shape_str(x.shape()) << " (allowed " << -r
                           << ".." << r << ")");
  if (axis < 0) axis += r;
  int64_t rows = 1, cols = 1;
  for (int64_t d = 0; d < r; ++d) (d < axis ? rows : cols) *= x.shape()[d];
  return {reshape(x, {rows, cols})};
}

Inputs convert_reshape(const NodeContext& ctx, const Inputs& in) {
  const Tensor& x = input(ctx, in, 0, "data");
  std::vector<int64_t> shape = int_values(ctx, in, 1, "shape");
  const bool allowzero = ctx.opset() >= 14 && ctx.attr_int("allowzero", 0) != 0;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] != 0 || allowzero) continue;
    GRAFT_NODE_CHECK(ctx, static_cast<int64_t>(i) < x.dim(), "shape " << list_str(shape) << " copies dim " << i
                                                                      << " (a 0) that input " << shape_str(x.shape())
                                                                      << " does not have");
    shape[i] = x.shape()[i];
  }
  return {reshape(x, shape)};
}

Inputs convert_transpose(const NodeContext& ctx, const Inputs& in) {
  const Tensor& x = input(ctx, in, 0, "data");
  std::vector<int64_t> perm(static_cast<size_t>(x.dim()));
  for (int64_t i = 0; i < x.dim(); ++i) perm[i] = x.dim() - 1 - i;  // default: reverse
  perm = ctx.attr_ints("perm", perm);
  return {permute(x, perm)};
}

// ---- Concat, Split ---------------------------------------------------------------

Inputs convert_concat(const NodeContext& ctx, const Inputs& in) {
  GRAFT_NODE_CHECK(ctx, !in.empty(), "no inputs");
  for (size_t i = 0; i < in.size(); ++i) input(ctx, in, i, "inputs");
  const int64_t axis = axis_in(ctx, ctx.attr_int("axis"), in[0].dim(), "axis");
  return {concat(in, axis)};
}

Inputs convert_split(const NodeContext& ctx, const Inputs& in) {
  const Tensor& x = input(ctx, in, 0, "input");
  const int64_t axis = axis_in(ctx, ctx.attr_int("axis", 0), x.dim(), "axis");
  const int64_t L = x.shape()[axis];
  const int64_t outputs = ctx.node().output_size();
  std::vector<int64_t> split;
  if (ctx.opset() < 13) split = ctx.attr_ints("split", {});
  else if (present(in, 1)) split = int_values(ctx, in, 1, "split");
  if (split.empty()) {
    int64_t n = outputs;
    if (ctx.opset() >= 18 && ctx.has_attr("num_outputs")) {
      n = ctx.attr_int("num_outputs");
      GRAFT_NODE_CHECK(ctx, n == outputs, "num_outputs " << n << " but the node has " << outputs << " outputs");
    }
    GRAFT_NODE_CHECK(ctx, n > 0, "no outputs to split into");
    if (ctx.opset() >= 18) {  // chunks of ceil(L / n), the last one smaller
      const int64_t chunk = (L + n - 1) / n;
      for (int64_t i = 0, left = L; i < n; ++i, left -= std::min(left, chunk)) split.push_back(std::min(left, chunk));
    } else {
      GRAFT_NODE_CHECK(ctx, L % n == 0, "cannot split axis " << axis << " of size " << L << " of input "
                                                            << shape_str(x.shape()) << " into " << n << " equal parts");
      split.assign(static_cast<size_t>(n), L / n);
    }
  }
  int64_t total = 0;
  for (int64_t s : split) {
    GRAFT_NODE_CHECK(ctx, s >= 0, "negative size in split " << list_str(split));
    total += s;
  }
  GRAFT_NODE_CHECK(ctx, total == L && static_cast<int64_t>(split.size()) == outputs,
                   "split " << list_str(split) << " does not divide axis " << axis << " of input "
                            << shape_str(x.shape()) << " into the node's " << outputs << " outputs");
  Inputs out;
  int64_t at = 0;
  for (int64_t s : split) {
    out.push_back(slice(x, axis, at, at + s));
    at += s;
  }
  return out;
}

// ---- Slice -----------------------------------------------------------------------

// One axis with a negative step: ONNX clamps start to [0, L-1] and end to
// [-1, L-1] (after adding L to negative values) and walks start, start+step,
// ... while above end. The engine's slice takes positive steps only, so this
// is a gather of the reversed positions (differentiable like any gather).
Tensor slice_backwards(const Tensor& x, int64_t axis, int64_t start, int64_t end, int64_t step) {
  const int64_t L = x.shape()[axis];
  auto wrap = [L](int64_t i) { return i < 0 ? i + L : i; };  // std::numeric_limits<int64_t>::min() + L does not overflow
  const int64_t s = std::min(std::max(wrap(start), int64_t(0)), L - 1);
  const int64_t e = std::min(std::max(wrap(end), int64_t(-1)), L - 1);
  std::vector<int64_t> idx;
  for (int64_t i = s; i > e; i += step) idx.push_back(i);
  return gather(x, Tensor::from_vector_i64(idx, {static_cast<int64_t>(idx.size())}), axis);
}

Inputs convert_slice(const NodeContext& ctx, const Inputs& in) {
  const Tensor& x = input(ctx, in, 0, "data");
  std::vector<int64_t> starts, ends, axes, steps;
  if (ctx.opset() < 10) {
    starts = ctx.attr_ints("starts");
    ends = ctx.attr_ints("ends");
    axes = ctx.attr_ints("axes", {});
  } else {
    starts = int_values(ctx, in, 1, "starts");
    ends = int_values(ctx, in, 2, "ends");
    if (present(in, 3)) axes = int_values(ctx, in, 3, "axes");
    if (present(in, 4)) steps = int_values(ctx, in, 4, "steps");
  }
  if (axes.empty())
    for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
  if (steps.empty()) steps.assign(starts.size(), 1);
  GRAFT_NODE_CHECK(ctx, ends.size() == starts.size() && axes.size() == starts.size() && steps.size() == starts.size(),
                   "starts " << list_str(starts) << ", ends " << list_str(ends) << ", axes " << list_str(axes)
                             << " and steps " << list_str(steps) << " must have one entry per sliced axis");
  axes = axes_in(ctx, axes, x.dim());
  Tensor out = x;
  for (size_t i = 0; i < axes.size(); ++i) {
    GRAFT_NODE_CHECK(ctx, steps[i] != 0, "step 0 for axis " << axes[i]);
    // A step past the extent takes one element at most, so it is capped there
    // (the view's stride would otherwise overflow for steps near std::numeric_limits<int64_t>::max()).
    const int64_t cap = std::max<int64_t>(out.shape()[axes[i]], 1);
    if (steps[i] > 0) out = slice(out, axes[i], starts[i], ends[i], std::min(steps[i], cap));
    else out = slice_backwards(out, axes[i], starts[i], ends[i], steps[i]);
  }
  return {out};
}

// ---- Squeeze, Unsqueeze ------------------------------------------------------------

std::vector<int64_t> axes_of(const NodeContext& ctx, const Inputs& in, bool required) {
  if (ctx.opset() < 13) return required ? ctx.attr_ints("axes") : ctx.attr_ints("axes", {});
  if (!required && !present(in, 1)) return {};
  return int_values(ctx, in, 1, "axes");
}

Inputs convert_squeeze(const NodeContext& ctx, const Inputs& in) {
  const Tensor& x = input(ctx, in, 0, "data");
  std::vector<int64_t> axes = axes_in(ctx, axes_of(ctx, in, false), x.dim());
  if (axes.empty())  // no axes (or an empty list): every axis of size 1
    for (int64_t d = 0; d < x.dim(); ++d)
      if (x.shape()[d] == 1) axes.push_back(d);
  for (int64_t a : axes)
    GRAFT_NODE_CHECK(ctx, x.shape()[a] == 1, "cannot squeeze axis " << a << " of input " << shape_str(x.shape())
                                                                    << ": its size is not 1");
  std::sort(axes.rbegin(), axes.rend());  // last first: earlier axes keep their numbers
  Tensor out = x;
  for (int64_t a : axes) out = squeeze(out, a);
  return {out};
}

Inputs convert_unsqueeze(const NodeContext& ctx, const Inputs& in) {
  const Tensor& x = input(ctx, in, 0, "data");
  const std::vector<int64_t> given = axes_of(ctx, in, true);
  std::vector<int64_t> axes = axes_in(ctx, given, x.dim() + static_cast<int64_t>(given.size()));
  std::sort(axes.begin(), axes.end());  // first first: each lands at its output position
  Tensor out = x;
  for (int64_t a : axes) out = unsqueeze(out, a);
  return {out};
}

// ---- Gather, Shape -----------------------------------------------------------------

Inputs convert_gather(const NodeContext& ctx, const Inputs& in) {
  const Tensor& x = input(ctx, in, 0, "data");
  const Tensor& indices = input(ctx, in, 1, "indices");
  GRAFT_NODE_CHECK(ctx, x.dim() > 0, "cannot gather from a scalar input " << x.str());
  return {gather(x, indices, axis_in(ctx, ctx.attr_int("axis", 0), x.dim(), "axis"))};
}

Inputs convert_shape(const NodeContext& ctx, const Inputs& in) {
  const Tensor& x = input(ctx, in, 0, "data");
  const int64_t r = x.dim();
  auto clamp = [r](int64_t i) { return std::min(std::max(i < 0 ? i + r : i, int64_t(0)), r); };
  int64_t start = 0, end = r;
  if (ctx.opset() >= 15) {
    start = clamp(ctx.attr_int("start", 0));
    end = ctx.has_attr("end") ? clamp(ctx.attr_int("end")) : r;
  }
  std::vector<int64_t> dims;
  for (int64_t d = start; d < end; ++d) dims.push_back(x.shape()[d]);
  return {Tensor::from_vector_i64(dims, {static_cast<int64_t>(dims.size())})};
}

// Size: the element count as an i64 scalar.
Inputs convert_size(const NodeContext& ctx, const Inputs& in) {
  return {Tensor::from_vector_i64({input(ctx, in, 0, "data").numel()}, {})};
}

// Range: start, start + delta, ... while before limit; ceil((limit - start) /
// delta) elements of the inputs' type. Integers are computed in int64
// (exact); floats as start + i * delta in float, as ONNX's reference does.
Inputs convert_range(const NodeContext& ctx, const Inputs& in) {
  const Tensor& start = input(ctx, in, 0, "start");
  const Tensor& limit = input(ctx, in, 1, "limit");
  const Tensor& delta = input(ctx, in, 2, "delta");
  for (const Tensor* t : {&start, &limit, &delta})
    GRAFT_NODE_CHECK(ctx, t->numel() == 1 && t->dtype() == start.dtype(),
                     "start, limit and delta must be scalars of one type; got " << start.str() << ", " << limit.str()
                                                                               << ", " << delta.str());
  if (is_floating(start.dtype())) {
    const float s = start.item(), l = limit.item(), d = delta.item();
    GRAFT_NODE_CHECK(ctx, d != 0.f, "delta is 0");
    const double count = std::ceil((static_cast<double>(l) - s) / d);
    GRAFT_NODE_CHECK(ctx, std::isfinite(count), "start " << s << ", limit " << l << ", delta " << d << " give no finite count");
    const int64_t n = count <= 0 ? 0 : checked_numel(ctx, {count < 9.2e18 ? static_cast<int64_t>(count) : std::numeric_limits<int64_t>::max()}, "output");
    std::vector<float> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) v[i] = s + static_cast<float>(i) * d;
    return {Tensor::from_vector(v, {n}, start.dtype())};
  }
  const int64_t s = start.to_vector_i64()[0], l = limit.to_vector_i64()[0], d = delta.to_vector_i64()[0];
  GRAFT_NODE_CHECK(ctx, d != 0, "delta is 0");
  GRAFT_NODE_CHECK(ctx, (l >= 0) == (s >= 0) || (s < 0 ? l <= std::numeric_limits<int64_t>::max() + s : l >= std::numeric_limits<int64_t>::min() + s),
                   "limit - start overflows int64 (start " << s << ", limit " << l << ")");
  const int64_t span = l - s, n = std::max<int64_t>(0, span / d + (span % d != 0 && (span > 0) == (d > 0)));
  checked_numel(ctx, {n}, "output");
  std::vector<int64_t> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = s + i * d;
  Tensor out = Tensor::from_vector_i64(v, {n});
  return {start.dtype() == DType::i64 ? out : out.to(start.dtype())};
}

// ---- Constant, ConstantOfShape ----------------------------------------------------------

Inputs convert_constant(const NodeContext& ctx, const Inputs&) {
  GRAFT_NODE_CHECK(ctx, !ctx.has_attr("sparse_value"), "attribute 'sparse_value' is not supported (Graft holds no sparse tensors)");
  for (const char* refused : {"value_string", "value_strings"})
    GRAFT_NODE_CHECK(ctx, !ctx.has_attr(refused), "attribute '" << refused << "' is not supported (Graft holds no string tensors)");
  int given = 0;
  for (const char* a : {"value", "value_float", "value_floats", "value_int", "value_ints"}) given += ctx.has_attr(a);
  GRAFT_NODE_CHECK(ctx, given == 1, "needs exactly one of the attributes value, value_float(s), value_int(s); has "
                                        << given);
  if (ctx.has_attr("value")) return {ctx.attr_tensor("value")};
  if (ctx.has_attr("value_float")) return {Tensor::scalar(ctx.attr_float("value_float"))};
  if (ctx.has_attr("value_int")) return {Tensor::from_vector_i64({ctx.attr_int("value_int")}, {})};
  if (ctx.has_attr("value_floats")) {
    const std::vector<float> v = ctx.attr_floats("value_floats");
    return {Tensor::from_vector(v, {static_cast<int64_t>(v.size())})};
  }
  const std::vector<int64_t> v = ctx.attr_ints("value_ints");
  return {Tensor::from_vector_i64(v, {static_cast<int64_t>(v.size())})};
}

Inputs convert_constant_of_shape(const NodeContext& ctx, const Inputs& in) {
  const std::vector<int64_t> shape = int_values(ctx, in, 0, "input");
  for (int64_t s : shape) GRAFT_NODE_CHECK(ctx, s >= 0, "negative size in shape " << list_str(shape));
  checked_numel(ctx, shape, "output shape");
  if (!ctx.has_attr("value")) return {Tensor::zeros(shape)};
  const Tensor v = ctx.attr_tensor("value");
  GRAFT_NODE_CHECK(ctx, v.numel() == 1, "attribute 'value' must hold one element, holds " << v.str());
  if (v.dtype() == DType::i64)  // exact for any int64, which a double is not
    return {Tensor::from_vector_i64(std::vector<int64_t>(shape_numel(shape), v.to_vector_i64()[0]), shape)};
  return {Tensor::full(shape, v.to(DType::f32).item(), v.dtype())};
}

// ---- Expand, Pad -------------------------------------------------------------------

Inputs convert_expand(const NodeContext& ctx, const Inputs& in) {
  const Tensor& x = input(ctx, in, 0, "input");
  const std::vector<int64_t> target = int_values(ctx, in, 1, "shape");
  // Bidirectional NumPy broadcasting: a 1 in the target keeps x's size.
  const int64_t n = std::max<int64_t>(x.dim(), static_cast<int64_t>(target.size()));
  Shape out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t xi = i - (n - x.dim()), ti = i - (n - static_cast<int64_t>(target.size()));
    const int64_t a = xi >= 0 ? x.shape()[xi] : 1, b = ti >= 0 ? target[ti] : 1;
    GRAFT_NODE_CHECK(ctx, a == b || a == 1 || b == 1, "cannot broadcast input " << shape_str(x.shape())
                                                                               << " to shape " << list_str(target));
    out[i] = a == 1 ? b : a;
  }
  checked_numel(ctx, out, "output shape");
  return {expand(x, out)};
}

// Wrap (circular) padding: output position j of a dim reads (j - before)
// modulo L, one gather per padded dim (negative pads crop the same way).
Tensor pad_wrap(const NodeContext& ctx, const Tensor& x, const std::vector<int64_t>& pads) {
  Tensor out = x;
  for (int64_t d = 0; d < x.dim(); ++d) {
    const int64_t b = pads[2 * d], a = pads[2 * d + 1], L = x.shape()[d], n = L + b + a;
    if (b == 0 && a == 0) continue;
    GRAFT_NODE_CHECK(ctx, n >= 0 && (L > 0 || n == 0), "wrap pads (" << b << ", " << a << ") do not fit axis " << d
                                                                    << " of input " << shape_str(x.shape()));
    std::vector<int64_t> idx(static_cast<size_t>(n));
    for (int64_t j = 0; j < n; ++j) idx[j] = ((j - b) % L + L) % L;
    out = gather(out, Tensor::from_vector_i64(idx, {n}), d);
  }
  return out.same(x) ? x.clone() : out;
}

Inputs convert_pad(const NodeContext& ctx, const Inputs& in) {
  const Tensor& x = input(ctx, in, 0, "data");
  const int64_t r = x.dim();
  const std::string mode_name = ctx.attr_string("mode", "constant");
  PadMode mode = PadMode::constant;
  if (mode_name == "reflect") mode = PadMode::reflect;
  else if (mode_name == "edge") mode = PadMode::edge;
  else GRAFT_NODE_CHECK(ctx, mode_name == "constant" || (mode_name == "wrap" && ctx.opset() >= 19),
                        "mode '" << mode_name << "' is not supported at opset " << ctx.opset()
                                 << " (constant, reflect, edge; wrap from opset 19)");

  std::vector<int64_t> pads, axes;
  double value = 0.0;
  if (ctx.opset() < 11) {
    pads = ctx.attr_ints("pads");
    value = ctx.attr_float("value", 0.f);
  } else {
    pads = int_values(ctx, in, 1, "pads");
    if (present(in, 2)) {
      const Tensor& v = in[2];
      GRAFT_NODE_CHECK(ctx, v.numel() == 1, "constant_value must hold one element, is " << v.str());
      value = is_floating(v.dtype()) ? static_cast<double>(v.to_vector()[0]) : static_cast<double>(v.to_vector_i64()[0]);
    }
    if (ctx.opset() >= 18 && present(in, 3)) axes = axes_in(ctx, int_values(ctx, in, 3, "axes"), r);
  }
  if (axes.empty())
    for (int64_t d = 0; d < r; ++d) axes.push_back(d);
  const int64_t k = static_cast<int64_t>(axes.size());
  GRAFT_NODE_CHECK(ctx, static_cast<int64_t>(pads.size()) == 2 * k,
                   "pads " << list_str(pads) << " must hold 2 x " << k << " values (all begins, then all ends) for input "
                           << shape_str(x.shape()));
  // ONNX: [begin_0 .. begin_k-1, end_0 .. end_k-1]; the engine: (before, after) per dim, all dims.
  std::vector<int64_t> engine_pads(static_cast<size_t>(2 * r), 0);
  for (int64_t i = 0; i < k; ++i) {
    engine_pads[2 * axes[i]] = pads[i];
    engine_pads[2 * axes[i] + 1] = pads[k + i];
  }
  std::vector<int64_t> out_shape(static_cast<size_t>(r));
  for (int64_t d = 0; d < r; ++d) {
    const int64_t b = engine_pads[2 * d], a = engine_pads[2 * d + 1], L = x.shape()[d];
    GRAFT_NODE_CHECK(ctx, std::llabs(b) < (int64_t(1) << 40) && std::llabs(a) < (int64_t(1) << 40),
                     "pads " << list_str(pads) << " are absurd for input " << shape_str(x.shape()));
    out_shape[static_cast<size_t>(d)] = L + b + a;
  }
  checked_numel(ctx, out_shape, "padded output");
  if (mode_name == "wrap") return {pad_wrap(ctx, x, engine_pads)};
  return {pad(x, engine_pads, mode, value)};
}

}  // namespace

void register_shape_ops(OpRegistry& r) {
  // min_opset: the first opset whose form of the operator the converter reads
  // (Reshape's shape input came at 5, Concat's required axis at 4, Split's
  // attribute at 2, Pad's pads/value attributes at 2); the loader decides
  // which opsets a model may have at all. Converters branch on ctx.opset()
  // where ONNX moved attributes to inputs (Slice 10, Pad 11, Squeeze/
  // Unsqueeze/Split 13, Pad axes 18, Split num_outputs 18, Shape start/end
  // 15, Reshape allowzero 14, Pad wrap 19). The later versions (up to 24)
  // only add element types.
  r.add({"Flatten", 1, 25, convert_flatten, {}, {}});
  r.add({"Reshape", 5, 25, convert_reshape, {1}, {}});
  r.add({"Transpose", 1, 25, convert_transpose, {}, {}});
  r.add({"Concat", 4, 25, convert_concat, {}, {}});
  r.add({"Split", 2, 25, convert_split, {1}, {}});
  r.add({"Slice", 1, 25, convert_slice, {1, 2, 3, 4}, {}});
  r.add({"Squeeze", 1, 25, convert_squeeze, {1}, {}});
  r.add({"Unsqueeze", 1, 25, convert_unsqueeze, {1}, {}});
  r.add({"Gather", 1, 25, convert_gather, {}, {}});
  r.add({"Shape", 1, 25, convert_shape, {}, {}});
  r.add({"Constant", 1, 25, convert_constant, {}, {}});
  r.add({"ConstantOfShape", 9, 25, convert_constant_of_shape, {0}, {}});
  r.add({"Expand", 8, 25, convert_expand, {1}, {}});
  r.add({"Pad", 2, 25, convert_pad, {1, 2, 3}, {}});
  r.add({"Size", 1, 25, convert_size, {}, {}});
  r.add({"Range", 11, 25, convert_range, {0, 1, 2}, {}});
}

}  // namespace graft::importer
