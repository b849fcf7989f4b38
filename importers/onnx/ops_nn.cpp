// ONNX converters of the nn family (see converter.h): convolutions, pooling,
// normalisation, dense products, dropout, softmax and attention.
//
// Engine convolution and pooling are 2-D; a 1-D node runs as 2-D with a unit
// height (x (N, C, L) -> (N, C, 1, L)); 3-D nodes are refused by name.
#include <algorithm>
#include <cmath>
#include <limits>

#include "engine/autograd/grad_mode.h"
#include "engine/ops/ops.h"
#include "importers/onnx/converter.h"

namespace graft::importer {

namespace {

bool present(const std::vector<Tensor>& in, size_t i) { return i < in.size() && in[i].defined(); }

// Whether the node asks for output i (a name that is not empty).
bool wants_output(const NodeContext& ctx, int i) {
  return ctx.node().output_size() > i && !ctx.node().output(i).empty();
}

// The outputs the node declares, no more (trailing optional ones left out).
std::vector<Tensor> declared(const NodeContext& ctx, std::vector<Tensor> out) {
  if (static_cast<int>(out.size()) > ctx.node().output_size()) out.resize(ctx.node().output_size());
  return out;
}

int64_t normalize_axis(const NodeContext& ctx, int64_t axis, int64_t rank, const char* what) {
  GRAFT_NODE_CHECK(ctx, axis >= -rank && axis < std::max<int64_t>(rank, 1),
                   what << " " << axis << " is out of range for a rank-" << rank << " input");
  return axis < 0 ? axis + rank : axis;
}

// The spatial geometry of a convolution or pooling node, in 2-D: 1-D nodes get
// a unit first dimension.
struct Window {
  int spatial = 2;                     // 1 or 2 as the node has it
  std::array<int64_t, 2> kernel{1, 1};
  std::array<int64_t, 2> stride{1, 1};
  std::array<int64_t, 2> dilation{1, 1};
  std::array<int64_t, 4> pads{0, 0, 0, 0};  // top, left, bottom, right
};

// Reads an ints attribute of `spatial` values (or its default), as 2-D; a
// 1-D node's unit height gets `unit` (1 for sizes and steps, 0 for paddings).
std::array<int64_t, 2> spatial_ints(const NodeContext& ctx, const std::string& name, int spatial, int64_t fallback,
                                    int64_t unit = 1) {
  std::vector<int64_t> v = ctx.attr_ints(name, std::vector<int64_t>(spatial, fallback));
  GRAFT_NODE_CHECK(ctx, static_cast<int>(v.size()) == spatial,
                   "attribute '" << name << "' has " << v.size() << " values, the input has " << spatial
                                 << " spatial dimensions");
  return spatial == 1 ? std::array<int64_t, 2>{unit, v[0]} : std::array<int64_t, 2>{v[0], v[1]};
}

// 1-D (N, C, L) -> (N, C, 1, L); checks the rank; refuses 3-D.
int spatial_rank(const NodeContext& ctx, const Tensor& x) {
  GRAFT_NODE_CHECK(ctx, x.dim() >= 3, "expects an input (N, C, spatial...), got " << shape_str(x.shape()));
  GRAFT_NODE_CHECK(ctx, x.dim() <= 4,
                   x.dim() - 2 << "-D " << ctx.node().op_type() << " is not supported (only 1-D and 2-D), input "
                                << shape_str(x.shape()));
  return static_cast<int>(x.dim() - 2);
}

Tensor as_2d(const Tensor& x, int spatial) { return spatial == 1 ? unsqueeze(x, 2) : x; }
Tensor from_2d(const Tensor& y, int spatial) { return spatial == 1 ? squeeze(y, 2) : y; }

// strides, dilations, pads and auto_pad of a Conv / pool node whose 2-D input
// has spatial size (h, w) and whose kernel is already in win.kernel.
void read_window(const NodeContext& ctx, Window& win, int64_t h, int64_t w, bool has_dilations = true) {
  const int s = win.spatial;
  win.stride = spatial_ints(ctx, "strides", s, 1);
  if (has_dilations) win.dilation = spatial_ints(ctx, "dilations", s, 1);
  for (int i = 0; i < 2; ++i)
    GRAFT_NODE_CHECK(ctx, win.stride[i] >= 1 && win.dilation[i] >= 1, "strides and dilations must be >= 1");
  const std::string auto_pad = ctx.attr_string("auto_pad", "NOTSET");
  if (auto_pad == "NOTSET") {
    std::vector<int64_t> p = ctx.attr_ints("pads", std::vector<int64_t>(2 * s, 0));
    GRAFT_NODE_CHECK(ctx, static_cast<int>(p.size()) == 2 * s,
                     "attribute 'pads' has " << p.size() << " values, expected " << 2 * s);
    for (int64_t v : p) GRAFT_NODE_CHECK(ctx, v >= 0, "negative pads are not supported");
    win.pads = s == 1 ? std::array<int64_t, 4>{0, p[0], 0, p[1]} : std::array<int64_t, 4>{p[0], p[1], p[2], p[3]};
  } else if (auto_pad == "VALID") {
    win.pads = {0, 0, 0, 0};
  } else if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
    const int64_t in[2] = {h, w};
    for (int i = 0; i < 2; ++i) {
      const int64_t out = (in[i] + win.stride[i] - 1) / win.stride[i];
      const int64_t total =
          std::max<int64_t>(0, (out - 1) * win.stride[i] + win.dilation[i] * (win.kernel[i] - 1) + 1 - in[i]);
      const int64_t small = total / 2, big = total - total / 2;
      win.pads[i] = auto_pad == "SAME_UPPER" ? small : big;
      win.pads[i + 2] = auto_pad == "SAME_UPPER" ? big : small;
    }
  } else {
    GRAFT_NODE_CHECK(ctx, false, "auto_pad '" << auto_pad << "' is not supported (NOTSET, VALID, SAME_UPPER, SAME_LOWER)");
  }
}

// The weight's kernel size, checked against kernel_shape when the node has it.
void check_kernel_shape(const NodeContext& ctx, const Window& win, const Tensor& w) {
  if (!ctx.has_attr("kernel_shape")) return;
  const std::array<int64_t, 2> k = spatial_ints(ctx, "kernel_shape", win.spatial, 1);
  GRAFT_NODE_CHECK(ctx, k == win.kernel,
                   "kernel_shape does not match the weight " << shape_str(w.shape()));
}

// ---- Conv ---------------------------------------------------------------------------

std::vector<Tensor> convert_conv(const NodeContext& ctx, const std::vector<Tensor>& in) {
  GRAFT_NODE_CHECK(ctx, present(in, 0) && present(in, 1), "needs inputs X and W");
  const int s = spatial_rank(ctx, in[0]);
  GRAFT_NODE_CHECK(ctx, in[1].dim() == in[0].dim(),
                   "weight " << shape_str(in[1].shape()) << " does not match input " << shape_str(in[0].shape()));
  const Tensor x = as_2d(in[0], s), w = as_2d(in[1], s);
  Window win;
  win.spatial = s;
  win.kernel = {w.size(2), w.size(3)};
  check_kernel_shape(ctx, win, in[1]);
  read_window(ctx, win, x.size(2), x.size(3));
  Conv2dOptions o;
  o.stride = win.stride;
  o.dilation = win.dilation;
  o.padding = win.pads;
  o.groups = ctx.attr_int("group", 1);
  return {from_2d(conv2d(x, w, present(in, 2) ? in[2] : Tensor(), o), s)};
}

// ---- ConvTranspose --------------------------------------------------------------------

std::vector<Tensor> convert_conv_transpose(const NodeContext& ctx, const std::vector<Tensor>& in) {
  GRAFT_NODE_CHECK(ctx, present(in, 0) && present(in, 1), "needs inputs X and W");
  const int s = spatial_rank(ctx, in[0]);
  GRAFT_NODE_CHECK(ctx, in[1].dim() == in[0].dim(),
                   "weight " << shape_str(in[1].shape()) << " does not match input " << shape_str(in[0].shape()));
  const Tensor x = as_2d(in[0], s), w = as_2d(in[1], s);
  Window win;
  win.spatial = s;
  win.kernel = {w.size(2), w.size(3)};
  check_kernel_shape(ctx, win, in[1]);
  win.stride = spatial_ints(ctx, "strides", s, 1);
  win.dilation = spatial_ints(ctx, "dilations", s, 1);
  std::array<int64_t, 2> out_pad = spatial_ints(ctx, "output_padding", s, 0, 0);
  for (int i = 0; i < 2; ++i)
    GRAFT_NODE_CHECK(ctx, win.stride[i] >= 1 && win.dilation[i] >= 1 && out_pad[i] >= 0,
                     "strides and dilations must be >= 1, output_padding >= 0");
  const std::string auto_pad = ctx.attr_string("auto_pad", "NOTSET");
  GRAFT_NODE_CHECK(ctx, auto_pad == "NOTSET" || auto_pad == "VALID" || auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER",
                   "auto_pad '" << auto_pad << "' is not supported (NOTSET, VALID, SAME_UPPER, SAME_LOWER)");
  const int64_t in_size[2] = {x.size(2), x.size(3)};
  // The output size: given (output_shape, or SAME: input * stride) or from the pads.
  bool sized = false;
  std::array<int64_t, 2> out_size{0, 0};
  if (ctx.has_attr("output_shape")) {
    std::vector<int64_t> os = ctx.attr_ints("output_shape");
    if (static_cast<int>(os.size()) == s + 2) os.erase(os.begin(), os.begin() + 2);
    GRAFT_NODE_CHECK(ctx, static_cast<int>(os.size()) == s,
                     "output_shape has " << os.size() << " values, expected " << s << " spatial sizes");
    out_size = s == 1 ? std::array<int64_t, 2>{1, os[0]} : std::array<int64_t, 2>{os[0], os[1]};
    sized = true;
  } else if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
    out_size = {in_size[0] * win.stride[0], in_size[1] * win.stride[1]};
    if (s == 1) out_size[0] = 1;
    sized = true;
  }
  if (sized) {
    for (int i = 0; i < 2; ++i) {
      const int64_t full = win.stride[i] * (in_size[i] - 1) + out_pad[i] + win.dilation[i] * (win.kernel[i] - 1) + 1;
      const int64_t total = full - out_size[i];
      if (total < 0) {  // a larger output than the kernel reaches: extra rows/columns at the end (bias only)
        win.pads[i] = win.pads[i + 2] = 0;
        out_pad[i] += -total;
        continue;
      }
      const bool upper = auto_pad == "SAME_UPPER";
      win.pads[i] = upper ? total / 2 : total - total / 2;
      win.pads[i + 2] = upper ? total - total / 2 : total / 2;
    }
  } else if (auto_pad == "NOTSET") {
    std::vector<int64_t> p = ctx.attr_ints("pads", std::vector<int64_t>(2 * s, 0));
    GRAFT_NODE_CHECK(ctx, static_cast<int>(p.size()) == 2 * s,
                     "attribute 'pads' has " << p.size() << " values, expected " << 2 * s);
    for (int64_t v : p) GRAFT_NODE_CHECK(ctx, v >= 0, "negative pads are not supported");
    win.pads = s == 1 ? std::array<int64_t, 4>{0, p[0], 0, p[1]} : std::array<int64_t, 4>{p[0], p[1], p[2], p[3]};
  }
  ConvTranspose2dOptions o;
  o.stride = win.stride;
  o.dilation = win.dilation;
  o.padding = win.pads;
  o.output_padding = out_pad;
  o.groups = ctx.attr_int("group", 1);
  return {from_2d(conv_transpose2d(x, w, present(in, 2) ? in[2] : Tensor(), o), s)};
}

// ---- pooling ---------------------------------------------------------------------------

Pool2dOptions pool_options(const NodeContext& ctx, const Tensor& x2d, int s, bool has_dilations) {
  Window win;
  win.spatial = s;
  win.kernel = spatial_ints(ctx, "kernel_shape", s, 1);
  GRAFT_NODE_CHECK(ctx, ctx.has_attr("kernel_shape"), "required attribute 'kernel_shape' is missing");
  read_window(ctx, win, x2d.size(2), x2d.size(3), has_dilations);
  Pool2dOptions o;
  o.kernel = win.kernel;
  o.stride = win.stride;
  o.padding = win.pads;
  o.dilation = win.dilation;
  o.ceil_mode = ctx.attr_int("ceil_mode", 0) != 0;
  return o;
}

std::vector<Tensor> convert_max_pool(const NodeContext& ctx, const std::vector<Tensor>& in) {
  GRAFT_NODE_CHECK(ctx, present(in, 0), "needs input X");
  const int s = spatial_rank(ctx, in[0]);
  GRAFT_NODE_CHECK(ctx, ctx.attr_int("storage_order", 0) == 0, "storage_order=1 (column-major) is not supported");
  GRAFT_NODE_CHECK(ctx, !wants_output(ctx, 1), "the Indices output is not supported");
  if (in[0].dtype() == DType::u8) {  // 8-bit images: exact in f32, no gradient to carry
    autograd::NoGradGuard no_grad;
    Tensor xf = Tensor::empty(in[0].shape());
    xf.copy_(in[0]);
    const Tensor x = as_2d(xf, s);
    const Tensor y = from_2d(max_pool2d(x, pool_options(ctx, x, s, true)), s);
    Tensor out = Tensor::empty(y.shape(), DType::u8);
    out.copy_(y);
    return {out};
  }
  GRAFT_NODE_CHECK(ctx, in[0].dtype() == DType::f32, "input dtype " << dtype_name(in[0].dtype()) << " is not supported");
  const Tensor x = as_2d(in[0], s);
  return {from_2d(max_pool2d(x, pool_options(ctx, x, s, true)), s)};
}

std::vector<Tensor> convert_avg_pool(const NodeContext& ctx, const std::vector<Tensor>& in) {
  GRAFT_NODE_CHECK(ctx, present(in, 0), "needs input X");
  const int s = spatial_rank(ctx, in[0]);
  const Tensor x = as_2d(in[0], s);
  Pool2dOptions o = pool_options(ctx, x, s, true);
  GRAFT_NODE_CHECK(ctx, o.dilation[0] == 1 && o.dilation[1] == 1,
                   "dilations other than 1 are not supported for AveragePool");
  o.count_include_pad = ctx.attr_int("count_include_pad", 0) != 0;
  return {from_2d(avg_pool2d(x, o), s)};
}

std::vector<Tensor> convert_global_avg_pool(const NodeContext& ctx, const std::vector<Tensor>& in) {
  GRAFT_NODE_CHECK(ctx, present(in, 0), "needs input X");
  const Tensor& x = in[0];
  GRAFT_NODE_CHECK(ctx, x.dim() >= 3, "expects an input (N, C, spatial...), got " << shape_str(x.shape()));
  if (x.dim() == 4) return {global_avg_pool2d(x)};
  std::vector<int64_t> dims;
  for (int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
  return {mean(x, dims, true)};
}

// ---- BatchNormalization ------------------------------------------------------------------

// The engine normalises (N, C) and (N, C, H, W); other ranks fold their
// spatial dims into (N, C, L, 1).
Tensor as_bn_input(const Tensor& x) {
  if (x.dim() == 2 || x.dim() == 4) return x;
  int64_t l = 1;
  for (int64_t d = 2; d < x.dim(); ++d) l *= x.size(d);
  return reshape(x, {x.size(0), x.size(1), l, 1});
}

std::vector<Tensor> convert_batch_norm(const NodeContext& ctx, const std::vector<Tensor>& in) {
  GRAFT_NODE_CHECK(ctx, in.size() >= 5 && present(in, 0) && present(in, 1) && present(in, 2) && present(in, 3) &&
                            present(in, 4),
                   "needs inputs X, scale, B, input_mean, input_var");
  const Tensor& x = in[0];
  GRAFT_NODE_CHECK(ctx, x.dim() >= 2, "expects an input (N, C, ...), got " << shape_str(x.shape()));
  if (ctx.opset() < 9)
    GRAFT_NODE_CHECK(ctx, ctx.attr_int("spatial", 1) == 1, "spatial=0 (per-element statistics) is not supported");
  const double eps = ctx.attr_float("epsilon", 1e-5f);
  const double momentum = ctx.attr_float("momentum", 0.9f);  // ONNX: running = running * momentum + batch * (1 - momentum)
  // Opset 6 marks inference with is_test=1: then running statistics, always.
  const bool training = (ctx.training() && !(ctx.opset() < 7 && ctx.attr_int("is_test", 0) != 0)) ||
                        (ctx.opset() >= 14 && ctx.attr_int("training_mode", 0) != 0);
  const Tensor xb = as_bn_input(x);
  if (!training) {
    const Tensor y = batch_norm(xb, in[1], in[2], in[3], in[4], false, 0.1, eps);
    return {reshape(y, x.shape())};
  }
  // Normalised with the batch statistics (differentiable); the running
  // statistics follow ONNX (biased batch variance) and are written back into
  // the buffers as well as returned.
  const Tensor y = reshape(batch_norm(xb, in[1], in[2], Tensor(), Tensor(), true, 0.1, eps), x.shape());
  autograd::NoGradGuard no_grad;
  std::vector<int64_t> dims{0};
  for (int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
  const Tensor xd = x.detach();
  const Tensor batch_mean = mean(xd, dims);
  const Tensor centred = sub(xd, reshape(batch_mean, [&] {
                               Shape s(x.dim(), 1);
                               s[1] = x.size(1);
                               return s;
                             }()));
  const Tensor batch_var = mean(mul(centred, centred), dims);
  const Tensor new_mean = add(mul_scalar(in[3].detach(), momentum), mul_scalar(batch_mean, 1.0 - momentum));
  const Tensor new_var = add(mul_scalar(in[4].detach(), momentum), mul_scalar(batch_var, 1.0 - momentum));
  if (ctx.training()) {  // the module's buffers (in eval-mode execution the node's outputs carry them)
    Tensor(in[3]).copy_(new_mean);
    Tensor(in[4]).copy_(new_var);
  }
  std::vector<Tensor> out{y, new_mean, new_var};
  if (ctx.opset() < 14) {  // saved_mean, saved_var (training outputs of the older opsets)
    out.push_back(batch_mean);
    out.push_back(batch_var);
  }
  return declared(ctx, std::move(out));
}

// ---- Gemm, MatMul --------------------------------------------------------------------------

std::vector<Tensor> convert_gemm(const NodeContext& ctx, const std::vector<Tensor>& in) {
  GRAFT_NODE_CHECK(ctx, present(in, 0) && present(in, 1), "needs inputs A and B");
  GRAFT_NODE_CHECK(ctx, in[0].dim() == 2 && in[1].dim() == 2,
                   "A and B must be 2-D, got " << shape_str(in[0].shape()) << " and " << shape_str(in[1].shape()));
  const double alpha = ctx.attr_float("alpha", 1.f), beta = ctx.attr_float("beta", 1.f);
  const bool trans_a = ctx.attr_int("transA", 0) != 0, trans_b = ctx.attr_int("transB", 0) != 0;
  const Tensor a = trans_a ? transpose(in[0], 0, 1) : in[0];
  const int64_t k_a = a.size(1), k_b = trans_b ? in[1].size(1) : in[1].size(0);
  GRAFT_NODE_CHECK(ctx, k_a == k_b,
                   "inner dimensions differ: A " << shape_str(in[0].shape()) << (trans_a ? " (transposed)" : "") << ", B "
                                                << shape_str(in[1].shape()) << (trans_b ? " (transposed)" : ""));
  const bool has_c = present(in, 2) && beta != 0.0;
  const int64_t n = trans_b ? in[1].size(0) : in[1].size(1);
  // Opset 6: without broadcast=1, C must be exactly (M, N).
  if (has_c && ctx.opset() < 7 && ctx.attr_int("broadcast", 0) == 0)
    GRAFT_NODE_CHECK(ctx, in[2].shape() == Shape({a.size(0), n}),
                     "without broadcast=1 (opset 6) C must be " << shape_str({a.size(0), n}) << ", got "
                                                                 << shape_str(in[2].shape()));
  // The common layer (transB, a bias of N values): one linear op.
  if (trans_b && alpha == 1.0 && (!has_c || (beta == 1.0 && in[2].dim() == 1 && in[2].size(0) == n)))
    return {linear(a, in[1], has_c ? in[2] : Tensor())};
  Tensor y = trans_b ? linear(a, in[1]) : matmul(a, in[1]);
  if (alpha != 1.0) y = mul_scalar(y, alpha);
  if (has_c) y = add(y, beta == 1.0 ? in[2] : mul_scalar(in[2], beta));
  return {y};
}

std::vector<Tensor> convert_matmul(const NodeContext& ctx, const std::vector<Tensor>& in) {
  GRAFT_NODE_CHECK(ctx, present(in, 0) && present(in, 1), "needs inputs A and B");
  return {matmul(in[0], in[1])};
}

// ---- Dropout ----------------------------------------------------------------------------------

float scalar_input(const NodeContext& ctx, const Tensor& t, const char* what) {
  GRAFT_NODE_CHECK(ctx, t.numel() == 1, what << " must be a scalar, got " << shape_str(t.shape()));
  return t.item();
}

std::vector<Tensor> convert_dropout(const NodeContext& ctx, const std::vector<Tensor>& in) {
  GRAFT_NODE_CHECK(ctx, present(in, 0), "needs input data");
  const Tensor& x = in[0];
  double ratio = 0.5;
  bool training = ctx.training();
  if (ctx.opset() >= 12) {
    if (present(in, 1)) ratio = scalar_input(ctx, in[1], "ratio");
    if (present(in, 2)) training = training || scalar_input(ctx, in[2], "training_mode") != 0.f;
  } else {
    ratio = ctx.attr_float("ratio", 0.5f);
    if (ctx.opset() < 7 && ctx.attr_int("is_test", 0) != 0) training = false;  // opset 6: is_test=1 is inference
  }
  GRAFT_NODE_CHECK(ctx, ratio >= 0.0 && ratio <= 1.0, "ratio must be in [0, 1], got " << ratio);
  const bool want_mask = wants_output(ctx, 1);
  if (!training || ratio == 0.0) {
    std::vector<Tensor> out{x};
    if (want_mask) out.push_back(Tensor::ones(x.shape(), DType::boolean));
    return out;
  }
  Generator& gen = ctx.generator();
  const uint64_t seed = gen.seed(), offset = gen.offset();
  std::vector<Tensor> out{dropout(x, ratio, true, gen)};
  if (want_mask) {
    // The same counters on a tensor of ones give the mask: kept elements are non-zero.
    Generator replay(seed);
    replay.set_offset(offset);
    autograd::NoGradGuard no_grad;
    const Tensor kept = dropout(Tensor::empty_like(x.detach()).fill_(1.0), ratio, true, replay).contiguous();
    const std::vector<float> v = kept.to_vector();
    Tensor mask = Tensor::empty(x.shape(), DType::boolean);
    bool* m = mask.data<bool>();
    for (size_t i = 0; i < v.size(); ++i) m[i] = v[i] != 0.f;
    out.push_back(mask);
  }
  return out;
}

// ---- LayerNormalization ----------------------------------------------------------------------

std::vector<Tensor> convert_layer_norm(const NodeContext& ctx, const std::vector<Tensor>& in) {
  GRAFT_NODE_CHECK(ctx, present(in, 0) && present(in, 1), "needs inputs X and Scale");
  const Tensor& x = in[0];
  const int64_t axis = normalize_axis(ctx, ctx.attr_int("axis", -1), x.dim(), "axis");
  const double eps = ctx.attr_float("epsilon", 1e-5f);
  const int64_t dims = x.dim() - axis;
  const Shape trailing(x.shape().begin() + axis, x.shape().end());
  const Tensor& scale = in[1];
  const Tensor bias = present(in, 2) ? in[2] : Tensor();
  Tensor y;
  if (scale.shape() == trailing && (!bias.defined() || bias.shape() == trailing)) {
    y = layer_norm(x, dims, scale, bias, eps);
  } else {  // broadcastable scale / bias
    y = mul(layer_norm(x, dims, Tensor(), Tensor(), eps), scale);
    if (bias.defined()) y = add(y, bias);
  }
  std::vector<Tensor> out{y};
  if (wants_output(ctx, 1) || wants_output(ctx, 2)) {
    std::vector<int64_t> axes;
    for (int64_t d = axis; d < x.dim(); ++d) axes.push_back(d);
    const Tensor m = mean(x, axes, true);
    const Tensor c = sub(x, m);
    const Tensor var = mean(mul(c, c), axes, true);
    out.push_back(m);
    out.push_back(pow_scalar(add_scalar(var, eps), -0.5));
  }
  return out;
}

// ---- Softmax, LogSoftmax -------------------------------------------------------------------------

template <Tensor (*F)(const Tensor&, int64_t)>
std::vector<Tensor> convert_softmax(const NodeContext& ctx, const std::vector<Tensor>& in) {
  GRAFT_NODE_CHECK(ctx, present(in, 0), "needs input");
  const Tensor& x = in[0];
  if (ctx.opset() >= 13) {
    const int64_t axis = normalize_axis(ctx, ctx.attr_int("axis", -1), x.dim(), "axis");
    return {F(x, axis)};
  }
  // Before opset 13: the input is seen as 2-D (prod(dims < axis), prod(dims >= axis)).
  const int64_t axis = x.dim() == 0 ? 0 : normalize_axis(ctx, ctx.attr_int("axis", 1), x.dim(), "axis");
  int64_t rows = 1, cols = 1;
  for (int64_t d = 0; d < x.dim(); ++d) (d < axis ? rows : cols) *= x.size(d);
  return {reshape(F(reshape(x, {rows, cols}), 1), x.shape())};
}

// ---- Attention (opset 23) ----------------------------------------------------------------------

// (B, S, H*D) -> (B, H, S, D)
Tensor split_heads(const NodeContext& ctx, const Tensor& t, int64_t heads, const char* what) {
  GRAFT_NODE_CHECK(ctx, heads >= 1 && t.size(2) % heads == 0,
                   what << " " << shape_str(t.shape()) << ": hidden size is not divisible by " << heads << " heads");
  return permute(reshape(t, {t.size(0), t.size(1), heads, t.size(2) / heads}), {0, 2, 1, 3});
}

// A boolean mask (true = attend) as an additive f32 one (0 / -inf); a mask is
// never differentiable, so plain data is enough.
Tensor additive_mask(const Tensor& mask) {
  const std::vector<float> keep = mask.to_vector();
  std::vector<float> add(keep.size());
  for (size_t i = 0; i < keep.size(); ++i) add[i] = keep[i] != 0.f ? 0.f : -std::numeric_limits<float>::infinity();
  return Tensor::from_vector(add, mask.shape());
}

std::vector<Tensor> convert_attention(const NodeContext& ctx, const std::vector<Tensor>& in) {
  GRAFT_NODE_CHECK(ctx, present(in, 0) && present(in, 1) && present(in, 2), "needs inputs Q, K and V");
  const double softcap = ctx.attr_float("softcap", 0.f);
  GRAFT_NODE_CHECK(ctx, softcap >= 0.0, "a negative softcap (" << softcap << ") is not supported");
  const bool want_qk = wants_output(ctx, 3);
  const int64_t qk_mode = ctx.attr_int("qk_matmul_output_mode", 0);
  GRAFT_NODE_CHECK(ctx, qk_mode >= 0 && qk_mode <= 3, "qk_matmul_output_mode " << qk_mode << " is not supported (0..3)");
  GRAFT_NODE_CHECK(ctx, !present(in, 6), "nonpad_kv_seqlen is not supported");
  GRAFT_NODE_CHECK(ctx, present(in, 4) == present(in, 5), "past_key and past_value must be given together");
  const int64_t rank = in[0].dim();
  GRAFT_NODE_CHECK(ctx, (rank == 3 || rank == 4) && in[1].dim() == rank && in[2].dim() == rank,
                   "Q, K, V must be all 3-D or all 4-D, got " << shape_str(in[0].shape()) << ", "
                                                              << shape_str(in[1].shape()) << ", "
                                                              << shape_str(in[2].shape()));
  Tensor q = in[0], k = in[1], v = in[2];
  if (rank == 3) {
    GRAFT_NODE_CHECK(ctx, ctx.has_attr("q_num_heads") && ctx.has_attr("kv_num_heads"),
                     "3-D inputs need the q_num_heads and kv_num_heads attributes");
    q = split_heads(ctx, q, ctx.attr_int("q_num_heads"), "Q");
    k = split_heads(ctx, k, ctx.attr_int("kv_num_heads"), "K");
    v = split_heads(ctx, v, ctx.attr_int("kv_num_heads"), "V");
  }
  if (present(in, 4)) {
    k = concat({in[4], k}, 2);
    v = concat({in[5], v}, 2);
  }
  const Tensor present_k = k, present_v = v;
  const int64_t hq = q.size(1), hkv = k.size(1);
  GRAFT_NODE_CHECK(ctx, hkv >= 1 && hq % hkv == 0 && v.size(1) == hkv,
                   "query heads " << hq << " are not a multiple of key/value heads " << hkv);
  if (hq != hkv) {  // grouped-query attention: each K/V head serves hq / hkv query heads
    const auto repeat = [&](const Tensor& t) {
      const Tensor e = expand(unsqueeze(t, 2), {t.size(0), hkv, hq / hkv, t.size(2), t.size(3)});
      return reshape(e, {t.size(0), hq, t.size(2), t.size(3)});
    };
    k = repeat(k);
    v = repeat(v);
  }
  AttentionOptions o;
  o.scale = ctx.attr_float("scale", 0.f);
  o.causal = ctx.attr_int("is_causal", 0) != 0;
  Tensor mask = present(in, 3) ? in[3] : Tensor();
  if (mask.defined()) {
    GRAFT_NODE_CHECK(ctx, mask.dtype() == DType::f32 || mask.dtype() == DType::boolean,
                     "attn_mask must be float or bool, got " << dtype_name(mask.dtype()));
    const int64_t sk = k.size(2);
    GRAFT_NODE_CHECK(ctx, mask.dim() >= 1 && mask.size(-1) <= sk,
                     "attn_mask " << shape_str(mask.shape()) << " is longer than the " << sk << " keys");
    if (mask.size(-1) < sk) {  // a shorter mask: the keys beyond it are masked out
      if (mask.dtype() == DType::boolean) mask = additive_mask(mask);
      std::vector<int64_t> pads(2 * mask.dim(), 0);
      pads[2 * mask.dim() - 1] = sk - mask.size(-1);
      mask = pad(mask, pads, PadMode::constant, -std::numeric_limits<double>::infinity());
    }
  }
  // Causal masking is aligned bottom-right when past keys precede the new
  // ones (query i sees keys j <= i + past); the engine's causal flag is the
  // top-left case, so a cache or a softcap takes an explicit additive mask.
  const int64_t past = present(in, 4) ? in[4].size(2) : 0;
  const bool explicit_scores = softcap > 0.0 || want_qk;
  if (o.causal && (past > 0 || explicit_scores)) {
    const int64_t sq = q.size(2), sk = k.size(2);
    std::vector<float> bias(sq * sk);
    for (int64_t i = 0; i < sq; ++i)
      for (int64_t j = 0; j < sk; ++j) bias[i * sk + j] = j <= i + past ? 0.f : -std::numeric_limits<float>::infinity();
    Tensor causal = Tensor::from_vector(bias, {sq, sk});
    if (mask.defined() && mask.dtype() == DType::boolean) mask = additive_mask(mask);
    mask = mask.defined() ? add(mask, causal) : causal;
    o.causal = false;
  }
  Tensor y, qk_out;
  if (explicit_scores) {
    // softcap * tanh(scores / softcap) comes before the mask (masked keys stay
    // at -inf). qk_matmul_output as the ONNX reference gives it: modes 0 and
    // 1 the (softcapped) scores, 2 with the mask added, 3 the softmax.
    const double scale = o.scale > 0.0 ? o.scale : 1.0 / std::sqrt(static_cast<double>(q.size(3)));
    Tensor scores = mul_scalar(matmul(q, transpose(k, 2, 3)), scale);
    if (softcap > 0.0) scores = mul_scalar(tanh(mul_scalar(scores, 1.0 / softcap)), softcap);
    qk_out = scores;
    if (mask.defined()) scores = add(scores, mask.dtype() == DType::boolean ? additive_mask(mask) : mask);
    if (qk_mode == 2) qk_out = scores;
    const Tensor probs = softmax(scores, -1);
    if (qk_mode == 3) qk_out = probs;
    y = matmul(probs, v);
  } else {
    y = scaled_dot_product_attention(q, k, v, mask, o);
  }
  if (rank == 3) {  // (B, H, S, Dv) -> (B, S, H*Dv)
    y = permute(y, {0, 2, 1, 3});
    y = reshape(y, {y.size(0), y.size(1), y.size(2) * y.size(3)});
  }
  return declared(ctx, {y, present_k, present_v, qk_out});
}

OpSpec spec(const char* op, int min_opset, int max_opset, Converter f, std::vector<int> value_inputs = {},
            std::vector<int> buffer_inputs = {}) {
  OpSpec o;
  o.op_type = op;
  o.min_opset = min_opset;
  o.max_opset = max_opset;
  o.convert = f;
  o.value_inputs = std::move(value_inputs);
  o.buffer_inputs = std::move(buffer_inputs);
  return o;
}

}  // namespace

void register_nn_ops(OpRegistry& r) {
  r.add(spec("Conv", 6, 25, convert_conv));
  r.add(spec("ConvTranspose", 6, 25, convert_conv_transpose));
  r.add(spec("MaxPool", 6, 25, convert_max_pool));
  r.add(spec("AveragePool", 6, 25, convert_avg_pool));
  r.add(spec("GlobalAveragePool", 6, 25, convert_global_avg_pool));
  r.add(spec("BatchNormalization", 6, 25, convert_batch_norm, {}, {3, 4}));
  r.add(spec("Gemm", 6, 25, convert_gemm));
  r.add(spec("MatMul", 6, 25, convert_matmul));
  r.add(spec("Dropout", 6, 25, convert_dropout, {1, 2}));
  r.add(spec("LayerNormalization", 17, 25, convert_layer_norm));
  r.add(spec("Softmax", 6, 25, convert_softmax<softmax>));
  r.add(spec("LogSoftmax", 6, 25, convert_softmax<log_softmax>));
  r.add(spec("Attention", 23, 24, convert_attention));
}

}  // namespace graft::importer
