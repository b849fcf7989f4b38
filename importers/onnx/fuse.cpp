// Attention-pattern fusion (see fuse.h).
//
// What exporters write (torch.onnx.export with dynamo=False at opsets 14..17
// and dynamo=True at 18, where scalars are initializers, and the ONNX
// Attention function's own expansion at opset 23):
//   hand-written     MatMul(q, Transpose(k, [0,1,3,2])) -> Mul|Div(const) -> [Add(mask)] -> Softmax(-1) -> MatMul(., v)
//   scaled q         MatMul(Mul(q, const), Transpose(k)) -> ...
//   torch SDPA       MatMul(Mul(q, sqrt(s)), Mul(Transpose(k), sqrt(s))) -> [Add(mask)] -> Softmax -> MatMul
//                    (torchvision's ViT: s computed from Shape at run time)
//   MultiheadAttention need_weights=False: the SDPA form (3-D, K^T by Transpose [1,2,0], read as K^T);
//                    need_weights=True: the probabilities are also averaged into an output, so not fused
//   ONNX Attention expansion: the SDPA form with Cast(to=FLOAT) between the steps.
// The fused step takes the pattern's outside values in fixed slots and keeps a
// copy of the original nodes ("body"), which it runs instead whenever the
// engine op would not compute exactly what they do for the tensors at hand.
#include "importers/onnx/fuse.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <unordered_map>

#include "engine/autograd/grad_mode.h"
#include "engine/ops/attention.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/shape.h"

namespace graft::importer {

namespace {

constexpr const char* kFusedOp = "GraftFusedAttention";

// The fused node's inputs, in this order ("" where the pattern has none).
enum Slot : int {
  kQ = 0,        // Q (..., Sq, d), or the tensor operand of Q's scaling
  kQScale,       // Q's scalar factor (Mul) or divisor (Div)
  kK,            // K (..., Sk, d) where a Transpose was absorbed, else K^T (..., d, Sk)
  kKScale,       // K's scalar factor or divisor
  kScoreScale,   // the scores' scalar factor or divisor
  kMask,         // the additive mask
  kV,            // V (..., Sk, dv)
  kSlots
};

// ---- run time ----------------------------------------------------------------------------

// The original nodes, run one by one as the plan would have (their errors
// name the original node).
std::vector<Tensor> run_body(const NodeContext& ctx, const std::vector<Tensor>& in) {
  const auto& node = ctx.node();
  std::unordered_map<std::string, Tensor> env;
  for (int i = 0; i < node.input_size() && i < static_cast<int>(in.size()); ++i)
    if (!node.input(i).empty()) env[node.input(i)] = in[static_cast<size_t>(i)];
  const std::string path = ctx.attr_string("model_path");
  const ::onnx::GraphProto* body = nullptr;
  for (const auto& a : node.attribute())
    if (a.name() == "body" && a.has_g()) body = &a.g();
  GRAFT_NODE_CHECK(ctx, body != nullptr, "the fused node has no body");
  for (const auto& n : body->node()) {
    NodeContext sub(n, ctx.opset(), ctx.training(), &ctx.generator(), path);
    const OpSpec* spec = op_registry().find(n.op_type(), ctx.opset());
    GRAFT_NODE_CHECK(sub, spec != nullptr, "unsupported operator " << n.op_type() << " at opset " << ctx.opset());
    std::vector<Tensor> ins;
    for (const auto& name : n.input()) {
      if (name.empty()) {
        ins.emplace_back();
        continue;
      }
      auto it = env.find(name);
      GRAFT_NODE_CHECK(sub, it != env.end() && it->second.defined(), "input '" << name << "' was not produced");
      ins.push_back(it->second);
    }
    std::vector<Tensor> outs;
    try {
      outs = spec->convert(sub, ins);
    } catch (const Error& e) {
      const std::string msg = e.what();
      if (msg.find(sub.where()) != std::string::npos) throw;
      throw Error(sub.where() + ": " + msg);
    }
    for (size_t k = 0; k < outs.size() && k < static_cast<size_t>(n.output_size()); ++k)
      if (!n.output(static_cast<int>(k)).empty()) env[n.output(static_cast<int>(k))] = outs[k];
  }
  auto it = env.find(node.output(0));
  GRAFT_NODE_CHECK(ctx, it != env.end() && it->second.defined(), "the body did not produce " << node.output(0));
  return {it->second};
}

bool needs_no_grad(const Tensor& t) { return !(t.requires_grad() && autograd::grad_enabled()); }

// `c` scales a rank-`rank` tensor without changing its shape.
bool is_scale(const Tensor& c, int64_t rank) {
  return c.defined() && c.dtype() == DType::f32 && c.numel() == 1 && c.dim() <= rank;
}

// A Mul's operands may come in either order: returns false where neither
// order makes (x, c) a rank-`rank` tensor and a scale.
bool order_scaled(Tensor& x, Tensor& c, bool commutes, int64_t rank) {
  if (!c.defined()) return true;
  if (x.dim() == rank && is_scale(c, rank)) return true;
  if (commutes && c.dim() == rank && is_scale(x, rank)) {
    std::swap(x, c);
    return true;
  }
  return false;
}

// The mask adds to scores of `score_shape` without widening them, and the
// engine op gives what Softmax gives for it: no row entirely -inf (Softmax
// gives NaN there, the engine op zeros) and no +inf or NaN.
bool mask_fits(const Tensor& mask, const Shape& score_shape) {
  const int64_t r = static_cast<int64_t>(score_shape.size());
  if (mask.dtype() != DType::f32 || mask.dim() > r || !needs_no_grad(mask)) return false;
  for (int64_t d = 0; d < mask.dim(); ++d) {
    const int64_t ms = mask.size(d), ss = score_shape[static_cast<size_t>(r - mask.dim() + d)];
    if (ms != 1 && ms != ss) return false;
  }
  if (score_shape[static_cast<size_t>(r - 1)] == 0 || mask.numel() == 0) return true;
  const Tensor mc = mask.detach().contiguous();
  const float* p = mc.data<float>();
  const int64_t row = mask.dim() == 0 ? 1 : mask.size(-1), rows = mc.numel() / row;
  const float neg_inf = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < rows; ++i) {
    bool all_masked = true;
    for (int64_t j = 0; j < row; ++j) {
      const float x = p[i * row + j];
      if (std::isnan(x) || x == -neg_inf) return false;
      all_masked = all_masked && x == neg_inf;
    }
    if (all_masked) return false;
  }
  return true;
}

// Folds scale `c` into `scale`, or, where `c` needs a gradient (a float
// initializer is a parameter: torch's dynamo exporter stores its scalars so),
// applies it to `q` with a differentiable op, so that `c` gets the gradient the
// original nodes would give it. The scores are never materialised either way.
void apply_scale(const Tensor& c, bool divides, Tensor& q, double& scale) {
  if (!c.defined()) return;
  if (!needs_no_grad(c)) {
    q = divides ? div(q, c) : mul(q, c);
    return;
  }
  const double x = c.item();
  scale *= divides ? 1.0 / x : x;
}

// The engine op where it computes exactly what the body does; an undefined
// tensor where it does not.
Tensor try_fused(const NodeContext& ctx, const std::vector<Tensor>& in) {
  const auto slot = [&](int s) { return s < static_cast<int>(in.size()) ? in[static_cast<size_t>(s)] : Tensor(); };
  Tensor q = slot(kQ), qc = slot(kQScale), k = slot(kK), kc = slot(kKScale), sc = slot(kScoreScale);
  const Tensor mask = slot(kMask), v = slot(kV);
  if (!q.defined() || !k.defined() || !v.defined()) return Tensor();
  const bool k_transposed = ctx.attr_int("k_transposed") != 0;
  // Q's and K^T's scalings are Mul or Div; a Mul's operands may be either way
  // round, so the rank is the larger of Q's two operands.
  const bool q_mul = ctx.attr_int("q_div") == 0;
  const int64_t r = qc.defined() && q_mul ? std::max(q.dim(), qc.dim()) : q.dim();
  if (r != 3 && r != 4) return Tensor();
  if (!order_scaled(q, qc, q_mul, r)) return Tensor();
  if (!order_scaled(k, kc, k_transposed && ctx.attr_int("k_div") == 0, r)) return Tensor();
  if (sc.defined() && !is_scale(sc, r)) return Tensor();
  if (q.dtype() != DType::f32 || k.dtype() != DType::f32 || v.dtype() != DType::f32) return Tensor();
  if (q.dim() != r || k.dim() != r || v.dim() != r) return Tensor();
  if (!k_transposed && ctx.attr_int("k_perm_rank") != r) return Tensor();
  const Tensor kk = k_transposed ? transpose(k, -2, -1) : k;  // (..., Sk, d)
  for (int64_t d = 0; d < r - 2; ++d)
    if (kk.size(d) != q.size(d) || v.size(d) != q.size(d)) return Tensor();  // MatMul would broadcast
  const int64_t sq = q.size(-2), dk = q.size(-1), sk = kk.size(-2);
  if (dk < 1 || kk.size(-1) != dk || v.size(-2) != sk) return Tensor();
  // Softmax over the last axis (before opset 13 the 2-D flattening at the
  // last axis is the same thing).
  int64_t axis = ctx.attr_int("softmax_axis");
  if (axis < -r || axis >= r) return Tensor();
  if (axis < 0) axis += r;
  if (axis != r - 1) return Tensor();
  Shape scores(q.shape().begin(), q.shape().end() - 2);
  scores.push_back(sq);
  scores.push_back(sk);
  if (mask.defined() && !mask_fits(mask, scores)) return Tensor();
  double scale = 1.0;
  apply_scale(qc, !q_mul, q, scale);
  apply_scale(kc, ctx.attr_int("k_div") != 0, q, scale);
  apply_scale(sc, ctx.attr_int("s_div") != 0, q, scale);
  if (!std::isfinite(scale) || scale == 0.0) return Tensor();

  AttentionOptions opt;
  opt.scale = scale;
  if (r == 4) return scaled_dot_product_attention(q, kk, v, mask, opt);
  return squeeze(scaled_dot_product_attention(unsqueeze(q, 0), unsqueeze(kk, 0), unsqueeze(v, 0), mask, opt), 0);
}

std::vector<Tensor> convert_fused_attention(const NodeContext& ctx, const std::vector<Tensor>& in) {
  Tensor y = try_fused(ctx, in);
  if (y.defined()) return {y};
  return run_body(ctx, in);
}

const OpSpec& fused_spec() {
  static const OpSpec spec = [] {
    OpSpec s;
    s.op_type = kFusedOp;
    s.min_opset = 7;
    s.max_opset = 24;
    s.convert = convert_fused_attention;
    return s;
  }();
  return spec;
}

// ---- matching at load time ---------------------------------------------------------------

struct Match {
  int slot[kSlots] = {-1, -1, -1, -1, -1, -1, -1};
  bool q_div = false, k_div = false, s_div = false;
  bool k_transposed = true;
  int k_perm_rank = 0;
  int64_t softmax_axis = -1;
  std::vector<int> absorbed;  // step indices
};

class Matcher {
 public:
  Matcher(const std::vector<PlanStep>& steps, const PlanGraph& g) : steps_(steps), g_(g) {
    const size_t nv = g.value_names.size();
    producer_.assign(nv, -1);
    uses_.assign(nv, 0);
    output_.assign(nv, false);
    claimed_.assign(steps.size(), false);
    for (size_t i = 0; i < steps.size(); ++i) {
      for (int v : steps[i].out)
        if (v >= 0) producer_[static_cast<size_t>(v)] = static_cast<int>(i);
      for (int v : steps[i].in)
        if (v >= 0) ++uses_[static_cast<size_t>(v)];
    }
    for (int v : g.output_ids) output_[static_cast<size_t>(v)] = true;
  }

  // The pattern ending at step `last` (a MatMul), or false.
  bool match(int last, Match& m) const {
    const PlanStep& f = steps_[static_cast<size_t>(last)];
    if (!is(last, "MatMul", 2) || f.out.size() != 1) return false;
    m.absorbed.push_back(last);
    m.slot[kV] = f.in[1];
    // probabilities <- Softmax
    const int p = skip_links(f.in[0], m);
    const int sm = private_producer(p, "Softmax", 1);
    if (sm < 0) return false;
    m.absorbed.push_back(sm);
    const auto& smn = *steps_[static_cast<size_t>(sm)].node;
    m.softmax_axis = g_.opset >= 13 ? -1 : 1;
    for (const auto& a : smn.attribute())
      if (a.name() == "axis") m.softmax_axis = a.i();
    // Only the last axis of rank-3 or rank-4 scores can fuse (checked again at run time).
    if (m.softmax_axis != -1 && m.softmax_axis != 2 && m.softmax_axis != 3) return false;
    const int x = skip_links(steps_[static_cast<size_t>(sm)].in[0], m);
    // [Add(scores, mask)]
    const int add = private_producer(x, "Add", 2);
    if (add >= 0) {
      for (int side = 0; side < 2; ++side) {
        Match t = m;
        t.absorbed.push_back(add);
        t.slot[kMask] = steps_[static_cast<size_t>(add)].in[static_cast<size_t>(1 - side)];
        if (match_scores(steps_[static_cast<size_t>(add)].in[static_cast<size_t>(side)], t)) {
          m = t;
          return true;
        }
      }
      return false;
    }
    return match_scores(x, m);
  }

  void claim(const Match& m) {
    for (int s : m.absorbed) claimed_[static_cast<size_t>(s)] = true;
  }

 private:
  bool is(int step, const char* op, int inputs) const {
    const PlanStep& s = steps_[static_cast<size_t>(step)];
    return !claimed_[static_cast<size_t>(step)] && s.spec != nullptr && s.node->op_type() == op &&
           static_cast<int>(s.in.size()) == inputs && std::all_of(s.in.begin(), s.in.end(), [](int v) { return v >= 0; }) &&
           s.out.size() == 1 && s.out[0] >= 0;
  }
  // Read only by one step, not a graph output: the pattern may swallow it.
  bool is_private(int v) const {
    return v >= 0 && uses_[static_cast<size_t>(v)] == 1 && !output_[static_cast<size_t>(v)] &&
           producer_[static_cast<size_t>(v)] >= 0;
  }
  // The step producing private value `v` if it is an `op` with `inputs` inputs, else -1.
  int private_producer(int v, const char* op, int inputs) const {
    if (!is_private(v)) return -1;
    const int s = producer_[static_cast<size_t>(v)];
    return is(s, op, inputs) ? s : -1;
  }
  // Walks up through Identity and Cast(to=FLOAT) (identities on f32, which the
  // fused path requires), absorbing them.
  int skip_links(int v, Match& m) const {
    for (;;) {
      int s = private_producer(v, "Identity", 1);
      if (s < 0) {
        s = private_producer(v, "Cast", 1);
        if (s >= 0) {
          const auto& n = *steps_[static_cast<size_t>(s)].node;
          int64_t to = -1;
          for (const auto& a : n.attribute())
            if (a.name() == "to") to = a.i();
          if (to != ::onnx::TensorProto::FLOAT) s = -1;
        }
      }
      if (s < 0) return v;
      m.absorbed.push_back(s);
      v = steps_[static_cast<size_t>(s)].in[0];
    }
  }
  // A possible scalar: a fixed value must hold one f32 element; a computed one
  // is checked at run time.
  bool maybe_scalar(int v) const {
    const Tensor& t = g_.fixed[static_cast<size_t>(v)];
    return !t.defined() || (t.numel() == 1 && t.dtype() == DType::f32);
  }
  bool is_swap_transpose(int v, int* rank) const {
    if (v < 0 || producer_[static_cast<size_t>(v)] < 0) return false;
    const int s = producer_[static_cast<size_t>(v)];
    if (!is(s, "Transpose", 1)) return false;
    for (const auto& a : steps_[static_cast<size_t>(s)].node->attribute()) {
      if (a.name() != "perm") continue;
      const int n = a.ints_size();
      if (n != 3 && n != 4) return false;
      for (int i = 0; i < n - 2; ++i)
        if (a.ints(i) != i) return false;
      *rank = n;
      return a.ints(n - 2) == n - 1 && a.ints(n - 1) == n - 2;
    }
    return false;  // the default perm reverses every axis
  }

  // scores [<- Mul|Div(., scalar)] <- MatMul(Q', K')
  bool match_scores(int v, Match& m) const {
    v = skip_links(v, m);
    for (const char* op : {"Mul", "Div"}) {
      const int s = private_producer(v, op, 2);
      if (s < 0) continue;
      const auto& in = steps_[static_cast<size_t>(s)].in;
      for (int side = 0; side < (op[0] == 'M' ? 2 : 1); ++side) {
        const int c = in[static_cast<size_t>(1 - side)];
        if (!maybe_scalar(c)) continue;
        Match t = m;
        t.absorbed.push_back(s);
        t.slot[kScoreScale] = c;
        t.s_div = op[0] == 'D';
        if (match_matmul(in[static_cast<size_t>(side)], t)) {
          m = t;
          return true;
        }
      }
      return false;
    }
    return match_matmul(v, m);
  }

  bool match_matmul(int v, Match& m) const {
    v = skip_links(v, m);
    const int mm = private_producer(v, "MatMul", 2);
    if (mm < 0) return false;
    m.absorbed.push_back(mm);
    const auto& in = steps_[static_cast<size_t>(mm)].in;
    // Q side: [Mul|Div(q, scalar)]
    int q = skip_links(in[0], m);
    m.slot[kQ] = q;
    for (const char* op : {"Mul", "Div"}) {
      const int s = private_producer(q, op, 2);
      if (s < 0) continue;
      const auto& sin = steps_[static_cast<size_t>(s)].in;
      // For a Mul the operand fixed as a scalar is the scale; otherwise the
      // order is settled at run time.
      const int side = op[0] == 'M' && g_.fixed[static_cast<size_t>(sin[0])].defined() ? 1 : 0;
      if (!maybe_scalar(sin[static_cast<size_t>(1 - side)])) break;
      m.absorbed.push_back(s);
      m.slot[kQ] = sin[static_cast<size_t>(side)];
      m.slot[kQScale] = sin[static_cast<size_t>(1 - side)];
      m.q_div = op[0] == 'D';
      break;
    }
    // K side: [Mul|Div(kt, scalar)], kt [<- Transpose(k, swap last two)]
    int kt = skip_links(in[1], m);
    m.slot[kK] = kt;
    for (const char* op : {"Mul", "Div"}) {
      const int s = private_producer(kt, op, 2);
      if (s < 0) continue;
      const auto& sin = steps_[static_cast<size_t>(s)].in;
      int rank = 0;
      const bool fixed0 = g_.fixed[static_cast<size_t>(sin[0])].defined();
      const int side = op[0] == 'M' && (fixed0 || is_swap_transpose(sin[1], &rank)) && !is_swap_transpose(sin[0], &rank) ? 1 : 0;
      if (!maybe_scalar(sin[static_cast<size_t>(1 - side)])) break;
      m.absorbed.push_back(s);
      m.slot[kK] = sin[static_cast<size_t>(side)];
      m.slot[kKScale] = sin[static_cast<size_t>(1 - side)];
      m.k_div = op[0] == 'D';
      break;
    }
    int rank = 0;
    const int kv = m.slot[kK];
    if (is_private(kv) && is_swap_transpose(kv, &rank)) {
      const int t = producer_[static_cast<size_t>(kv)];
      m.absorbed.push_back(t);
      m.slot[kK] = steps_[static_cast<size_t>(t)].in[0];
      m.k_transposed = false;
      m.k_perm_rank = rank;
    }
    return true;
  }

  const std::vector<PlanStep>& steps_;
  const PlanGraph& g_;
  std::vector<int> producer_, uses_;
  std::vector<bool> output_, claimed_;
};

void set_int(::onnx::NodeProto& n, const char* name, int64_t v) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(::onnx::AttributeProto::INT);
  a->set_i(v);
}

// The fused node: slots as inputs, the original nodes as its body. Returns
// null where the body would read a value that is not a slot, or a slot is
// computed inside the pattern (a safety net: the matcher should never allow
// either).
std::unique_ptr<::onnx::NodeProto> make_node(const std::vector<PlanStep>& steps, const PlanGraph& g, Match m) {
  std::sort(m.absorbed.begin(), m.absorbed.end());
  const PlanStep& last = steps[static_cast<size_t>(m.absorbed.back())];
  std::set<int> produced, slots;
  for (int v : m.slot)
    if (v >= 0) slots.insert(v);
  auto n = std::make_unique<::onnx::NodeProto>();
  n->set_op_type(kFusedOp);
  n->set_name("attention at " + (last.node->name().empty() ? g.value_names[static_cast<size_t>(last.out[0])]
                                                           : last.node->name()));
  for (int v : m.slot) n->add_input(v >= 0 ? g.value_names[static_cast<size_t>(v)] : std::string());
  n->add_output(g.value_names[static_cast<size_t>(last.out[0])]);
  set_int(*n, "q_div", m.q_div);
  set_int(*n, "k_div", m.k_div);
  set_int(*n, "s_div", m.s_div);
  set_int(*n, "k_transposed", m.k_transposed);
  set_int(*n, "k_perm_rank", m.k_perm_rank);
  set_int(*n, "softmax_axis", m.softmax_axis);
  auto* path = n->add_attribute();
  path->set_name("model_path");
  path->set_type(::onnx::AttributeProto::STRING);
  path->set_s(g.path);
  auto* body = n->add_attribute();
  body->set_name("body");
  body->set_type(::onnx::AttributeProto::GRAPH);
  for (int i : m.absorbed) {
    const PlanStep& s = steps[static_cast<size_t>(i)];
    for (int v : s.in)
      if (v >= 0 && !produced.count(v) && !slots.count(v)) return nullptr;
    for (int v : s.out)
      if (v >= 0) produced.insert(v);
    *body->mutable_g()->add_node() = *s.node;
  }
  for (int v : slots)  // a slot computed inside the pattern would never be produced
    if (produced.count(v)) return nullptr;
  return n;
}

}  // namespace

int fuse_attention(std::vector<PlanStep>& steps, const PlanGraph& graph, FusedNodes& out) {
  Matcher matcher(steps, graph);
  std::vector<bool> drop(steps.size(), false);
  int fused = 0;
  for (size_t i = 0; i < steps.size(); ++i) {
    Match m;
    if (!matcher.match(static_cast<int>(i), m)) continue;
    auto node = make_node(steps, graph, m);
    if (!node) continue;
    matcher.claim(m);
    for (int s : m.absorbed) drop[static_cast<size_t>(s)] = true;
    // The fused step takes the place of the final MatMul: every slot is
    // produced before it, so the order stays topological.
    PlanStep fs;
    fs.node = node.get();
    fs.spec = &fused_spec();
    fs.in.assign(std::begin(m.slot), std::end(m.slot));
    fs.out = steps[i].out;
    drop[i] = false;
    steps[i] = std::move(fs);
    out.nodes.push_back(std::move(node));
    ++fused;
  }
  std::vector<PlanStep> kept;
  kept.reserve(steps.size());
  for (size_t i = 0; i < steps.size(); ++i)
    if (!drop[i]) kept.push_back(std::move(steps[i]));
  steps = std::move(kept);
  out.attention += fused;
  return fused;
}

}  // namespace graft::importer
