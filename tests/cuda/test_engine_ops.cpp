// The engine's ops on CUDA tensors against the same ops on the CPU: forward,
// and backward through autograd (the gradients of the same scalar loss on
// both devices), in f32 and bf16 (the CPU sees the bf16-rounded inputs and
// weights in f32; the tolerance is bf16's), for row-major and channels-last
// inputs and for broadcasting. Then the Tensor copies on the device, the
// optimizers' fused updates, and a tiny model trained a few steps on both
// devices. Every test needs a GPU (REQUIRE_GPU) except the last section
// (the op table and its error text), which runs anywhere.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/autograd/grad_mode.h"
#include "engine/nn/layers.h"
#include "engine/ops/ops.h"
#include "engine/ops/registry.h"
#include "engine/optim/optimizer.h"
#include "tests/cuda/cuda_test_util.h"
#include "tests/support/reference.h"

namespace graft {
namespace {

using testing::close_to_twin;

const Device kGpu = Device::cuda(0);

// Tolerances relative to the largest reference magnitude (cuda_test_util.h):
// f32 1e-5 for single kernels; 1e-2 for bf16 (8 bits of mantissa).
double tol_for(DType t) { return t == DType::f32 ? 1e-5 : 1e-2; }

// The values a tensor of dtype t can hold, back in f32 on the CPU.
Tensor rounded(const Tensor& x, DType t) {
  return t == DType::f32 ? x.detach().clone() : x.detach().to(t).to(DType::f32);
}

std::vector<float> values(const Tensor& t) { return t.detach().to(Device::cpu()).to_vector(); }

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

struct OpCase {
  std::string name;
  std::vector<Tensor> inputs;       // f32, CPU; all differentiable
  Fn f;
  std::vector<bool> channels_last;  // per input: put the GPU copy in NHWC memory (4-D only)
  double tol_scale = 1.0;           // a composite op's error grows with its depth
};

// Runs c.f on the CPU (f32, inputs rounded to dt) and on the GPU (dtype dt),
// then the backward of sum(y * w) with the same fixed w on both, and compares
// the outputs and every input's gradient.
void check_op(const OpCase& c, DType dt) {
  SCOPED_TRACE(c.name + " " + dtype_name(dt));
  Generator gen(1234);
  std::vector<Tensor> xc, xg;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    Tensor r = rounded(c.inputs[i], dt);
    Tensor on_gpu = r.to(dt).to(kGpu);
    if (i < c.channels_last.size() && c.channels_last[i]) on_gpu = on_gpu.to_format(MemoryFormat::channels_last);
    xc.push_back(r.detach().set_requires_grad(true));
    xg.push_back(on_gpu.detach().set_requires_grad(true));
  }
  const Tensor yc = c.f(xc);
  const Tensor yg = c.f(xg);
  ASSERT_EQ(yg.device(), kGpu);
  ASSERT_EQ(yg.dtype(), dt);
  ASSERT_EQ(yg.shape(), yc.shape());
  const double tol = tol_for(dt) * c.tol_scale;
  EXPECT_TRUE(close_to_twin(values(yg), values(yc), tol, "forward"));

  const Tensor w = rounded(testing::random_tensor(yc.shape(), gen, -1.f, 1.f), dt);
  sum(mul(yc, w)).backward();
  sum(mul(yg, w.to(dt).to(kGpu))).backward();
  for (size_t i = 0; i < xc.size(); ++i) {
    ASSERT_TRUE(xc[i].grad().defined() && xg[i].grad().defined()) << "input " << i;
    EXPECT_EQ(xg[i].grad().device(), kGpu);
    EXPECT_TRUE(close_to_twin(values(xg[i].grad()), values(xc[i].grad()), tol, "grad of input " + std::to_string(i)));
  }
}

Tensor rnd(const Shape& s, Generator& gen, float lo = -2.f, float hi = 2.f) { return testing::random_tensor(s, gen, lo, hi); }

// ---- elementwise and activations ---------------------------------------------------------

TEST(EngineOpsCuda, UnaryOpsAndActivations) {
  REQUIRE_GPU();
  Generator gen = testing::test_generator();
  const Shape s{2, 3, 5, 7};
  const Tensor x = rnd(s, gen), pos = rnd(s, gen, 0.1f, 3.f);
  std::vector<OpCase> cases = {
      {"neg", {x}, [](auto& v) { return neg(v[0]); }},
      {"add_scalar", {x}, [](auto& v) { return add_scalar(v[0], 0.75); }},
      {"mul_scalar", {x}, [](auto& v) { return mul_scalar(v[0], -1.5); }},
      {"pow_scalar", {pos}, [](auto& v) { return pow_scalar(v[0], 2.5); }},
      {"exp", {x}, [](auto& v) { return exp(v[0]); }},
      {"log", {pos}, [](auto& v) { return log(v[0]); }},
      {"sqrt", {pos}, [](auto& v) { return sqrt(v[0]); }},
      {"relu", {x}, [](auto& v) { return relu(v[0]); }},
      {"relu6", {mul_scalar(x, 4.0)}, [](auto& v) { return relu6(v[0]); }},
      {"clip", {x}, [](auto& v) { return clip(v[0], -0.5, 1.0); }},
      {"sigmoid", {x}, [](auto& v) { return sigmoid(v[0]); }},
      {"silu", {x}, [](auto& v) { return silu(v[0]); }},
      {"gelu", {x}, [](auto& v) { return gelu(v[0]); }},
      {"gelu_tanh", {x}, [](auto& v) { return gelu(v[0], GeluApprox::tanh); }},
      {"hardswish", {mul_scalar(x, 2.0)}, [](auto& v) { return hardswish(v[0]); }},
      {"hardsigmoid", {mul_scalar(x, 2.0)}, [](auto& v) { return hardsigmoid(v[0]); }},
      {"tanh", {x}, [](auto& v) { return tanh(v[0]); }},
      {"erf", {x}, [](auto& v) { return erf(v[0]); }},
  };
  for (auto& c : cases) {
    for (bool cl : {false, true}) {
      c.channels_last = {cl};
      check_op(c, DType::f32);
    }
    check_op(c, DType::bf16);
  }
}

TEST(EngineOpsCuda, BinaryOpsBroadcast) {
  REQUIRE_GPU();
  Generator gen = testing::test_generator();
  const Shape full{2, 3, 4, 5};
  // (a shape, b shape, b channels-last?) pairs: same shape, per-channel bias
  // (1, C, 1, 1) against an NHWC input, a row, a scalar, both sides broadcasting.
  struct Pair {
    Shape a, b;
    bool a_cl;
  };
  const std::vector<Pair> pairs = {{full, full, false}, {full, full, true}, {full, {1, 3, 1, 1}, true},
                                   {full, {5}, false},   {full, {}, false},  {{2, 1, 4, 1}, {3, 1, 5}, false}};
  using B = Tensor (*)(const Tensor&, const Tensor&);
  const std::vector<std::pair<std::string, B>> ops = {{"add", add}, {"sub", sub}, {"mul", mul}, {"div", div}};
  for (const auto& pr : pairs) {
    for (const auto& [name, op] : ops) {
      Tensor a = rnd(pr.a, gen), b = rnd(pr.b, gen);
      if (name == "div") b = rnd(pr.b, gen, 0.5f, 2.f);
      OpCase c{name + shape_str(pr.a) + shape_str(pr.b), {a, b}, [op = op](auto& v) { return op(v[0], v[1]); },
               {pr.a_cl && pr.a.size() == 4, false}};
      check_op(c, DType::f32);
      // bf16: a broadcast operand's gradient sums many rounded products whose
      // signs cancel, so its error relative to the (smaller) result grows.
      if (pr.a != pr.b) c.tol_scale = 4.0;
      check_op(c, DType::bf16);
    }
  }
}

TEST(EngineOpsCuda, PowAndWhere) {
  REQUIRE_GPU();
  Generator gen = testing::test_generator();
  const Tensor base = rnd({2, 3, 4, 5}, gen, 0.2f, 2.f), ex = rnd({3, 1, 5}, gen, -1.5f, 1.5f);
  OpCase pw{"pow", {base, ex}, [](auto& v) { return pow(v[0], v[1]); }, {true, false}, 4.0};  // broadcast sums (bf16)
  check_op(pw, DType::f32);
  check_op(pw, DType::bf16);

  const Tensor c2 = rnd({2, 1, 4, 5}, gen);
  // A condition with both values: x > 0 computed on the CPU, then moved.
  std::vector<float> cv = c2.to_vector();
  for (float& f : cv) f = f > 0.f ? 1.f : 0.f;
  const Tensor cond = Tensor::from_vector(cv, c2.shape()).to(DType::boolean);
  for (DType dt : {DType::f32, DType::bf16}) {
    OpCase wh{"where", {rnd({2, 3, 4, 5}, gen), rnd({3, 4, 1}, gen)},
              [cond](auto& v) { return where(cond.to(v[0].device()), v[0], v[1]); }, {}, 4.0};
    check_op(wh, dt);
  }
}

// ---- reductions, shape ops -------------------------------------------------------------------

TEST(EngineOpsCuda, SumMeanOverDims) {
  REQUIRE_GPU();
  Generator gen = testing::test_generator();
  const Tensor x = rnd({3, 4, 5, 6}, gen);
  const std::vector<std::vector<int64_t>> dim_sets = {{}, {1}, {0, 2, 3}, {-1}, {1, 2}};
  for (const auto& dims : dim_sets) {
    for (bool keep : {false, true}) {
      for (bool cl : {false, true}) {
        OpCase s{"sum" + shape_str(dims), {x}, [dims, keep](auto& v) { return sum(v[0], dims, keep); }, {cl}};
        OpCase m{"mean" + shape_str(dims), {x}, [dims, keep](auto& v) { return mean(v[0], dims, keep); }, {cl}};
        check_op(s, DType::f32);
        check_op(m, DType::f32);
      }
    }
    OpCase m{"mean bf16" + shape_str(dims), {x}, [dims](auto& v) { return mean(v[0], dims); }};
    check_op(m, DType::bf16);
  }
}

TEST(EngineOpsCuda, ShapeOpsMoveDataOnTheDevice) {
  REQUIRE_GPU();
  Generator gen = testing::test_generator();
  const Tensor x = rnd({2, 3, 4, 5}, gen), y = rnd({2, 2, 4, 5}, gen);
  std::vector<OpCase> cases = {
      {"reshape", {x}, [](auto& v) { return reshape(v[0], {6, 20}); }, {true}},
      {"permute", {x}, [](auto& v) { return permute(v[0], {0, 2, 3, 1}).contiguous(); }},
      {"slice", {x}, [](auto& v) { return slice(v[0], 3, 1, 5, 2); }, {true}},
      {"concat", {x, y}, [](auto& v) { return concat({v[0], v[1]}, 1); }, {true, false}},
      {"pad", {x}, [](auto& v) { return pad(v[0], {1, 2, 0, 1}); }},
      {"pad_reflect", {x}, [](auto& v) { return pad(v[0], {2, 1}, PadMode::reflect); }},
      {"expand", {slice(x, 1, 0, 1)}, [](auto& v) { return expand(v[0], {2, 3, 4, 5}); }},
  };
  for (auto& c : cases) {
    check_op(c, DType::f32);
    check_op(c, DType::bf16);
  }
}

// ---- softmax, loss -------------------------------------------------------------------------

TEST(EngineOpsCuda, SoftmaxAndLogSoftmax) {
  REQUIRE_GPU();
  Generator gen = testing::test_generator();
  const Tensor rows = rnd({7, 33}, gen, -4.f, 4.f), img = rnd({2, 5, 3, 4}, gen, -4.f, 4.f);
  for (bool log_form : {false, true}) {
    auto f = [log_form](int64_t axis) {
      return [log_form, axis](const std::vector<Tensor>& v) { return log_form ? log_softmax(v[0], axis) : softmax(v[0], axis); };
    };
    std::vector<OpCase> cases = {{"rows", {rows}, f(-1)},
                                 {"channels NCHW", {img}, f(1)},
                                 {"channels NHWC", {img}, f(1), {true}},
                                 {"width NHWC", {img}, f(3), {true}}};
    for (auto& c : cases) {
      c.name = (log_form ? "log_softmax " : "softmax ") + c.name;
      check_op(c, DType::f32);
      check_op(c, DType::bf16);
    }
  }
}

TEST(EngineOpsCuda, CrossEntropyMatchesCpu) {
  REQUIRE_GPU();
  Generator gen = testing::test_generator();
  const int64_t n = 9, c = 6;
  const Tensor logits = rnd({n, c}, gen, -3.f, 3.f);
  const Tensor targets = Tensor::from_vector_i64({0, 5, 2, -100, 1, 3, 3, 4, 2}, {n});
  const Tensor weights = rnd({c}, gen, 0.5f, 2.f);
  for (Reduction red : {Reduction::mean, Reduction::sum, Reduction::none}) {
    for (double smoothing : {0.0, 0.1}) {
      for (bool weighted : {false, true}) {
        CrossEntropyOptions oc;
        oc.reduction = red;
        oc.label_smoothing = smoothing;
        if (weighted) oc.class_weights = weights;
        CrossEntropyOptions og = oc;
        if (weighted) og.class_weights = weights.to(kGpu);
        for (DType dt : {DType::f32, DType::bf16}) {
          SCOPED_TRACE("reduction " + std::to_string(static_cast<int>(red)) + " smoothing " + std::to_string(smoothing) +
                       (weighted ? " weighted " : " ") + dtype_name(dt));
          Tensor xc = rounded(logits, dt).set_requires_grad(true);
          Tensor xg = rounded(logits, dt).to(dt).to(kGpu).detach().set_requires_grad(true);
          Tensor lc = cross_entropy(xc, targets, oc);
          Tensor lg = cross_entropy(xg, targets.to(kGpu), og);
          ASSERT_EQ(lg.device(), kGpu);
          EXPECT_EQ(lg.dtype(), DType::f32);  // the loss is f32 whatever the logits' dtype
          const double tol = tol_for(dt);
          EXPECT_TRUE(close_to_twin(values(lg), values(lc), tol, "loss"));
          sum(lc).backward();
          sum(lg).backward();
          EXPECT_TRUE(close_to_twin(values(xg.grad()), values(xc.grad()), tol, "grad"));
        }
      }
    }
  }
  // An i32 target vector works too; an out-of-range target is an error naming the op.
  Tensor xg = logits.to(kGpu);
  EXPECT_NO_THROW(cross_entropy(xg, targets.to(DType::i32).to(kGpu)));
  const Tensor bad = Tensor::from_vector_i64({0, 1, 2, 3, 4, 5, 6, 0, 0}, {n});
  EXPECT_TRUE(testing::throws_naming([&] { cross_entropy(xg, bad.to(kGpu)); }, {"cross_entropy"}));
}

// ---- normalisation, pooling, dropout -------------------------------------------------------

TEST(EngineOpsCuda, LayerNorm) {
  REQUIRE_GPU();
  Generator gen = testing::test_generator();
  const Tensor x = rnd({4, 6, 40}, gen), w = rnd({40}, gen, 0.5f, 1.5f), b = rnd({40}, gen);
  for (DType dt : {DType::f32, DType::bf16}) {
    // Parameters stay f32 (master weights) beside a bf16 input.
    Tensor wc = w.detach().clone().set_requires_grad(true), bc = b.detach().clone().set_requires_grad(true);
    Tensor wg = w.to(kGpu).detach().set_requires_grad(true), bg = b.to(kGpu).detach().set_requires_grad(true);
    OpCase c{"layer_norm", {x}, [&](auto& v) {
               const bool gpu = v[0].device().is_cuda();
               return layer_norm(v[0], 1, gpu ? wg : wc, gpu ? bg : bc);
             }};
    check_op(c, dt);
    EXPECT_TRUE(close_to_twin(values(wg.grad()), values(wc.grad()), tol_for(dt), "grad weight"));
    EXPECT_TRUE(close_to_twin(values(bg.grad()), values(bc.grad()), tol_for(dt), "grad bias"));
  }
}

TEST(EngineOpsCuda, BatchNormTrainAndEval) {
  REQUIRE_GPU();
  Generator gen = testing::test_generator();
  const int64_t C = 5;
  const Tensor w = rnd({C}, gen, 0.5f, 1.5f), b = rnd({C}, gen);
  const Tensor rm0 = rnd({C}, gen, -0.5f, 0.5f), rv0 = rnd({C}, gen, 0.5f, 1.5f);
  for (const Shape& s : {Shape{2, C, 3, 7}, Shape{16, C}}) {
    for (bool training : {true, false}) {
      for (DType dt : {DType::f32, DType::bf16}) {
        Tensor wc = w.detach().clone().set_requires_grad(true), bc = b.detach().clone().set_requires_grad(true);
        Tensor wg = w.to(kGpu).detach().set_requires_grad(true), bg = b.to(kGpu).detach().set_requires_grad(true);
        Tensor rmc = rm0.clone(), rvc = rv0.clone(), rmg = rm0.to(kGpu), rvg = rv0.to(kGpu);
        OpCase c{"batch_norm " + shape_str(s) + (training ? " train" : " eval"), {rnd(s, gen)}, [&](auto& v) {
                   const bool gpu = v[0].device().is_cuda();
                   return batch_norm(v[0], gpu ? wg : wc, gpu ? bg : bc, gpu ? rmg : rmc, gpu ? rvg : rvc, training);
                 }};
        c.channels_last = {s.size() == 4};
        check_op(c, dt);
        const double tol = tol_for(dt);
        EXPECT_TRUE(close_to_twin(values(wg.grad()), values(wc.grad()), tol, "grad weight"));
        EXPECT_TRUE(close_to_twin(values(bg.grad()), values(bc.grad()), tol, "grad bias"));
        EXPECT_TRUE(close_to_twin(values(rmg), values(rmc), tol, "running mean"));
        EXPECT_TRUE(close_to_twin(values(rvg), values(rvc), tol, "running var"));
      }
    }
  }
}

TEST(EngineOpsCuda, Pooling) {
  REQUIRE_GPU();
  Generator gen = testing::test_generator();
  const Tensor x = rnd({2, 6, 9, 7}, gen);
  Pool2dOptions mp;
  mp.kernel = {3, 3};
  mp.stride = {2, 2};
  mp.padding = {1, 1, 1, 1};
  Pool2dOptions ap = mp;
  ap.ceil_mode = true;
  ap.count_include_pad = true;
  std::vector<OpCase> cases = {{"max_pool2d", {x}, [mp](auto& v) { return max_pool2d(v[0], mp); }},
                               {"avg_pool2d", {x}, [ap](auto& v) { return avg_pool2d(v[0], ap); }},
                               {"global_avg_pool2d", {x}, [](auto& v) { return global_avg_pool2d(v[0]); }}};
  for (auto& c : cases) {
    for (bool cl : {false, true}) {
      c.channels_last = {cl};
      check_op(c, DType::f32);
    }
    check_op(c, DType::bf16);
  }
}

TEST(EngineOpsCuda, DropoutDrawsTheCpuMask) {
  REQUIRE_GPU();
  Generator gen = testing::test_generator();
  const Tensor x = rnd({3, 4, 5, 6}, gen);
  for (bool cl : {false, true}) {
    Generator gc(77), gg(77);  // the same seed and offset on both devices: the same mask
    // The mask follows memory order, so the CPU side takes the same layout as the GPU copy.
    OpCase c{"dropout", {x}, [&](auto& v) {
               if (v[0].device().is_cuda()) return dropout(v[0], 0.3, true, gg);
               return dropout(cl ? v[0].to_format(MemoryFormat::channels_last) : v[0], 0.3, true, gc);
             }, {cl}};
    check_op(c, DType::f32);
    EXPECT_EQ(gc.offset(), gg.offset());
  }
}

// ---- Tensor on the device ----------------------------------------------------------------

TEST(EngineOpsCuda, TensorCopiesConvertOnTheDevice) {
  REQUIRE_GPU();
  Generator gen = testing::test_generator();
  const Tensor x = rnd({2, 3, 4, 5}, gen, -100.f, 100.f);
  const Tensor g = x.to(kGpu);
  // Layout changes on one device.
  const Tensor cl = g.to_format(MemoryFormat::channels_last);
  EXPECT_TRUE(cl.is_channels_last());
  EXPECT_EQ(values(cl), x.to_vector());
  EXPECT_EQ(values(cl.contiguous()), x.to_vector());
  EXPECT_EQ(values(permute(g, {3, 1, 0, 2}).contiguous()), permute(x, {3, 1, 0, 2}).contiguous().to_vector());
  // Every dtype pair through the device: the same values as the CPU's conversions
  // (no negatives where u8 is involved: converting them is undefined on the CPU).
  const Tensor nonneg = rnd({2, 3, 4, 5}, gen, 0.f, 200.f);
  for (DType a : {DType::f32, DType::f16, DType::bf16, DType::i32, DType::i64, DType::u8, DType::boolean}) {
    for (DType b : {DType::f32, DType::f16, DType::bf16, DType::i32, DType::i64, DType::u8, DType::boolean}) {
      const Tensor src = (a == DType::u8 || b == DType::u8 ? nonneg : x).to(a);
      const Tensor want = src.to_format(MemoryFormat::channels_last).to(b);
      const Tensor got = src.to(kGpu).to_format(MemoryFormat::channels_last).to(b);
      EXPECT_EQ(got.device(), kGpu);
      EXPECT_EQ(got.to(Device::cpu()).to(DType::f32).to_vector(), want.to(DType::f32).to_vector())
          << dtype_name(a) << " -> " << dtype_name(b);
    }
  }
  // copy_ between layouts and dtypes; across devices with a conversion.
  Tensor dst = Tensor::empty({2, 3, 4, 5}, DType::bf16, kGpu, MemoryFormat::channels_last);
  dst.copy_(g);
  EXPECT_EQ(values(dst.to(DType::f32)), x.to(DType::bf16).to(DType::f32).to_vector());
  Tensor host = Tensor::empty({2, 3, 4, 5}, DType::f32, Device::cpu(), MemoryFormat::channels_last);
  host.copy_(dst);
  EXPECT_EQ(host.to_vector(), x.to(DType::bf16).to(DType::f32).to_vector());
  Tensor dev2 = Tensor::empty({2, 3, 4, 5}, DType::f16, kGpu);
  dev2.copy_(x.to_format(MemoryFormat::channels_last));
  EXPECT_EQ(values(dev2.to(DType::f32)), x.to(DType::f16).to(DType::f32).to_vector());
  // Fill, zeros, ones, full.
  EXPECT_EQ(values(Tensor::ones({3, 2}, DType::bf16, kGpu).to(DType::f32)), std::vector<float>(6, 1.f));
  EXPECT_EQ(values(Tensor::zeros({3, 2}, DType::f32, kGpu)), std::vector<float>(6, 0.f));
  EXPECT_EQ(values(Tensor::full({5}, 2.5, DType::f16, kGpu).to(DType::f32)), std::vector<float>(5, 2.5f));
  Tensor view = slice(Tensor::zeros({4, 6}, DType::f32, kGpu), 1, 1, 6, 2);
  view.fill_(3.0);
  EXPECT_EQ(values(view), std::vector<float>(12, 3.f));
  // add_ (grad accumulation) and mul_ on the device, strided and scaled.
  Tensor acc = x.to(kGpu).to_format(MemoryFormat::channels_last);
  const Tensor other = rnd({2, 3, 4, 5}, gen);
  acc.add_(other.to(kGpu), 0.5);
  acc.mul_(2.0);
  Tensor ref = x.clone();
  ref.add_(other, 0.5);
  ref.mul_(2.0);
  EXPECT_TRUE(close_to_twin(values(acc), ref.to_vector(), 1e-6, "add_ then mul_"));
}

// ---- optimizers ------------------------------------------------------------------------------

// Three steps with the same gradients on both devices; params compared after each.
template <class MakeOpt>
void check_optimizer(const char* what, MakeOpt make_opt) {
  SCOPED_TRACE(what);
  Generator gen(99);
  const std::vector<Shape> shapes = {{37}, {16, 3, 3, 3}, {5}, {70000}, {1}};
  std::vector<Tensor> pc, pg;
  for (const Shape& s : shapes) {
    Tensor p = rnd(s, gen, -1.f, 1.f);
    pc.push_back(p.clone().set_requires_grad(true));
    pg.push_back(p.to(kGpu).detach().set_requires_grad(true));
  }
  pc[4].set_requires_grad(false);  // frozen: never touched
  pg[4].set_requires_grad(false);
  auto groups = [](std::vector<Tensor>& p) {
    return std::vector<optim::ParamGroup>{{{p[0], p[1], p[4]}, 1.0, true}, {{p[2], p[3]}, 0.1, false}};
  };
  auto oc = make_opt(groups(pc));
  auto og = make_opt(groups(pg));
  for (int step = 0; step < 3; ++step) {
    for (size_t i = 0; i < shapes.size(); ++i) {
      const Tensor grad = rnd(shapes[i], gen, -1.f, 1.f);
      pc[i].set_grad(grad);
      pg[i].set_grad(grad.to(kGpu));
    }
    pg[1].set_grad(pg[1].grad().to_format(MemoryFormat::channels_last));  // another layout than the param
    oc->step();
    og->step();
    for (size_t i = 0; i < shapes.size(); ++i)
      EXPECT_TRUE(close_to_twin(values(pg[i]), pc[i].to_vector(), 1e-6, "param " + std::to_string(i) + " step " +
                                                                          std::to_string(step)));
  }
}

TEST(EngineOpsCuda, OptimizersFusedUpdateMatchesCpu) {
  REQUIRE_GPU();
  check_optimizer("sgd", [](std::vector<optim::ParamGroup> g) {
    optim::SgdOptions o;
    o.lr = 0.1;
    return std::make_unique<optim::SGD>(std::move(g), o);
  });
  check_optimizer("sgd nesterov", [](std::vector<optim::ParamGroup> g) {
    optim::SgdOptions o;
    o.lr = 0.05;
    o.momentum = 0.9;
    o.nesterov = true;
    o.weight_decay = 1e-2;
    return std::make_unique<optim::SGD>(std::move(g), o);
  });
  check_optimizer("adam", [](std::vector<optim::ParamGroup> g) {
    optim::AdamOptions o;
    o.lr = 1e-2;
    o.weight_decay = 1e-3;
    return std::make_unique<optim::Adam>(std::move(g), o);
  });
  check_optimizer("adamw", [](std::vector<optim::ParamGroup> g) {
    return std::make_unique<optim::Adam>(std::move(g), optim::adamw_options(1e-2, 0.05));
  });
}

// ---- a tiny model, trained on both devices -------------------------------------------------------

// BN -> ReLU -> global average pool -> per-class scale and bias -> cross-entropy,
// every parameter learnable; a few optimizer steps on each device from the same
// start must end at the same parameters.
template <class MakeOpt>
void train_tiny(const char* what, MakeOpt make_opt) {
  SCOPED_TRACE(what);
  Generator gen(2024);
  const int64_t N = 8, C = 6, H = 5, W = 4;
  const Tensor x = rnd({N, C, H, W}, gen);
  const Tensor targets = Tensor::from_vector_i64({0, 1, 2, 3, 4, 5, 1, 3}, {N});
  const std::vector<Tensor> init = {rnd({C}, gen, 0.5f, 1.5f), rnd({C}, gen, -0.5f, 0.5f), rnd({C}, gen, 0.5f, 2.f),
                                    rnd({C}, gen, -0.5f, 0.5f)};
  struct Run {
    std::vector<Tensor> params;
    Tensor rm, rv;
  };
  auto run = [&](Device dev) {
    Run r;
    for (const Tensor& t : init) r.params.push_back(t.to(dev).detach().clone().set_requires_grad(true));
    r.rm = Tensor::zeros({C}, DType::f32, dev);
    r.rv = Tensor::ones({C}, DType::f32, dev);
    auto opt = make_opt(r.params);
    const Tensor xd = dev.is_cuda() ? x.to(dev).to_format(MemoryFormat::channels_last) : x;
    const Tensor td = targets.to(dev);
    for (int step = 0; step < 4; ++step) {
      opt->zero_grad();
      Tensor h = batch_norm(xd, r.params[0], r.params[1], r.rm, r.rv, true);
      h = reshape(global_avg_pool2d(relu(h)), {N, C});
      const Tensor logits = add(mul(h, r.params[2]), r.params[3]);
      cross_entropy(logits, td).backward();
      opt->step();
    }
    return r;
  };
  const Run c = run(Device::cpu()), g = run(kGpu);
  for (size_t i = 0; i < c.params.size(); ++i)
    EXPECT_TRUE(close_to_twin(values(g.params[i]), c.params[i].to_vector(), 1e-5, "param " + std::to_string(i)));
  EXPECT_TRUE(close_to_twin(values(g.rm), c.rm.to_vector(), 1e-5, "running mean"));
  EXPECT_TRUE(close_to_twin(values(g.rv), c.rv.to_vector(), 1e-5, "running var"));
}

TEST(EngineOpsCuda, TinyModelTrainsLikeTheCpu) {
  REQUIRE_GPU();
  train_tiny("sgd momentum", [](const std::vector<Tensor>& p) {
    optim::SgdOptions o;
    o.lr = 0.1;
    o.momentum = 0.9;
    return std::make_unique<optim::SGD>(p, o);
  });
  train_tiny("adamw", [](const std::vector<Tensor>& p) {
    return std::make_unique<optim::Adam>(p, optim::adamw_options(0.05, 0.01));
  });
}

TEST(EngineOpsCuda, ModuleToMovesParametersInPlace) {
  REQUIRE_GPU();
  Generator gen = testing::test_generator();
  nn::BatchNorm2d cpu_bn(4), gpu_bn(4);
  const Tensor handle = gpu_bn.weight;  // what an optimizer's list would hold
  gpu_bn.to(kGpu);
  EXPECT_EQ(handle.device(), kGpu);
  EXPECT_TRUE(handle.requires_grad());
  EXPECT_EQ(gpu_bn.running_var.device(), kGpu);
  const Tensor x = rnd({3, 4, 5, 5}, gen);
  const Tensor yc = cpu_bn(x), yg = gpu_bn(x.to(kGpu).to_format(MemoryFormat::channels_last));
  EXPECT_TRUE(close_to_twin(values(yg), yc.to_vector(), 1e-5, "BatchNorm2d on cuda"));
  EXPECT_TRUE(close_to_twin(values(gpu_bn.running_mean), cpu_bn.running_mean.to_vector(), 1e-5, "running mean"));
  gpu_bn.to(Device::cpu());
  EXPECT_TRUE(handle.device().is_cpu());
}

// State made on the CPU, then the module moved: an error naming the parameter
// and the devices, not a kernel reading host memory (or the CPU loop reading
// device memory after a move back).
TEST(EngineOpsCuda, OptimizerStateLeftOnTheOldDeviceIsAnError) {
  REQUIRE_GPU();
  for (bool adam : {false, true}) {
    SCOPED_TRACE(adam ? "adam" : "sgd momentum");
    nn::BatchNorm2d bn(4);
    std::unique_ptr<optim::Optimizer> opt;
    if (adam) {
      opt = std::make_unique<optim::Adam>(std::vector<Tensor>{bn.weight}, optim::adamw_options(1e-2, 0.0));
    } else {
      optim::SgdOptions o;
      o.momentum = 0.9;
      opt = std::make_unique<optim::SGD>(std::vector<Tensor>{bn.weight}, o);
    }
    bn.weight.set_grad(Tensor::ones({4}));
    opt->step();  // state on the CPU
    bn.to(kGpu);
    bn.weight.set_grad(Tensor::ones({4}, DType::f32, kGpu));
    EXPECT_TRUE(testing::throws_naming([&] { opt->step(); }, {"is on cpu", "cuda:0", "Module::to"}));
  }
}

// ---- tensor-core ops: GEMM, implicit-GEMM and depthwise convolution, fused attention ----------
// f32 runs on TF32 tensor cores (10 mantissa bits): 3e-3 relative instead of 1e-5.
constexpr double kTf32Scale = 300.0;

void check_tc(OpCase c, double bf16_scale = 2.0) {
  c.tol_scale = kTf32Scale;
  check_op(c, DType::f32);
  c.tol_scale = bf16_scale;
  check_op(c, DType::bf16);
}

TEST(EngineOpsCuda, Conv2dEveryKernelPath) {
  REQUIRE_GPU();
  Generator gen = testing::test_generator();
  struct ConvCase {
    const char* name;
    Shape x, w;
    Conv2dOptions o;
    bool bias;
  };
  Conv2dOptions s2 = Conv2dOptions::same_padding(1);
  s2.stride = {2, 2};
  Conv2dOptions asym;
  asym.padding = {1, 0, 2, 1};
  asym.dilation = {2, 1};
  Conv2dOptions grouped = Conv2dOptions::same_padding(1);
  grouped.groups = 2;
  Conv2dOptions dw = s2;
  dw.groups = 16;
  Conv2dOptions dw5 = Conv2dOptions::same_padding(2);
  dw5.groups = 8;
  const std::vector<ConvCase> cases = {
      {"3x3 s1 (16-byte loads)", {2, 16, 9, 9}, {32, 16, 3, 3}, Conv2dOptions::same_padding(1), true},
      {"stem: C=3, stride 2 (element loads)", {2, 3, 11, 11}, {8, 3, 3, 3}, s2, true},
      {"1x1 (plain GEMM addressing)", {2, 24, 5, 7}, {40, 24, 1, 1}, Conv2dOptions{}, false},
      {"asymmetric padding, dilation 2", {1, 8, 10, 9}, {8, 8, 3, 2}, asym, true},
      {"groups 2", {2, 16, 6, 6}, {16, 8, 3, 3}, grouped, false},
      {"depthwise 3x3 s2", {2, 16, 9, 8}, {16, 1, 3, 3}, dw, true},
      {"depthwise 5x5", {1, 8, 7, 7}, {8, 1, 5, 5}, dw5, false},
  };
  for (const ConvCase& cc : cases) {
    std::vector<Tensor> in = {rnd(cc.x, gen), rnd(cc.w, gen, -0.5f, 0.5f)};
    if (cc.bias) in.push_back(rnd({cc.w[0]}, gen));
    const Conv2dOptions o = cc.o;
    const bool bias = cc.bias;
    OpCase c{cc.name, in, [o, bias](auto& v) { return conv2d(v[0], v[1], bias ? v[2] : Tensor(), o); }, {true, true}};
    check_tc(c);
    c.channels_last = {false, false};  // row-major NCHW in: the op packs it on the device
    check_op(c, DType::bf16);
  }
}

TEST(EngineOpsCuda, LinearAndMatmul) {
  REQUIRE_GPU();
  Generator gen = testing::test_generator();
  check_tc({"linear with bias", {rnd({4, 6, 32}, gen), rnd({24, 32}, gen, -0.5f, 0.5f), rnd({24}, gen)},
            [](auto& v) { return linear(v[0], v[1], v[2]); }});
  check_tc({"linear, odd sizes, no bias", {rnd({7, 13}, gen), rnd({5, 13}, gen, -0.5f, 0.5f)},
            [](auto& v) { return linear(v[0], v[1]); }});
  check_tc({"matmul batched", {rnd({3, 5, 7}, gen), rnd({3, 7, 4}, gen)}, [](auto& v) { return matmul(v[0], v[1]); }});
  check_tc({"matmul broadcast batch", {rnd({2, 3, 5, 16}, gen), rnd({16, 8}, gen)},
            [](auto& v) { return matmul(v[0], v[1]); }});
  check_tc({"matmul broadcast both", {rnd({2, 1, 5, 6}, gen), rnd({1, 3, 6, 4}, gen)},
            [](auto& v) { return matmul(v[0], v[1]); }});
  check_tc({"matmul vector-matrix", {rnd({7}, gen), rnd({7, 5}, gen)}, [](auto& v) { return matmul(v[0], v[1]); }});
  check_tc({"matmul matrix-vector", {rnd({4, 7}, gen), rnd({7}, gen)}, [](auto& v) { return matmul(v[0], v[1]); }});
}

TEST(EngineOpsCuda, AttentionFusedAndUnfused) {
  REQUIRE_GPU();
  Generator gen = testing::test_generator();
  // bf16 with head dim 64: the flash kernels (197 tokens: no tile multiple).
  const Shape qs{2, 3, 197, 64}, ks{2, 3, 150, 64};
  OpCase fused{"attention fused", {rnd(qs, gen), rnd(ks, gen), rnd(ks, gen)},
               [](auto& v) { return scaled_dot_product_attention(v[0], v[1], v[2]); }};
  check_op(fused, DType::bf16);
  // An additive mask broadcast over heads and queries, and causal.
  const Tensor mask = rnd({2, 1, 1, 150}, gen, -3.f, 0.f);
  AttentionOptions causal;
  causal.causal = true;
  const Tensor square = rnd({1, 1, 40, 40}, gen, -2.f, 0.f), square_gpu = square.to(kGpu);
  OpCase masked{"attention fused, mask + causal", {rnd({1, 2, 40, 32}, gen), rnd({1, 2, 40, 32}, gen), rnd({1, 2, 40, 32}, gen)},
                [causal, square, square_gpu](auto& v) {
                  return scaled_dot_product_attention(v[0], v[1], v[2], v[0].device().is_cuda() ? square_gpu : square,
                                                      causal);
                }};
  check_op(masked, DType::bf16);
  const Tensor mask_gpu = mask.to(kGpu);
  OpCase with_mask{"attention fused, additive mask", {rnd(qs, gen), rnd(ks, gen), rnd(ks, gen)},
                   [mask, mask_gpu](auto& v) {
                     return scaled_dot_product_attention(v[0], v[1], v[2], v[0].device().is_cuda() ? mask_gpu : mask);
                   }};
  check_op(with_mask, DType::bf16);
  // f32, and a head dim the fused kernels do not take: unfused on the device.
  OpCase unfused{"attention unfused", {rnd({2, 2, 17, 24}, gen), rnd({2, 2, 19, 24}, gen), rnd({2, 2, 19, 24}, gen)},
                 [causal](auto& v) { return scaled_dot_product_attention(v[0], v[1], v[2], Tensor(), causal); }};
  check_tc(unfused);
}

// ---- what CUDA does not run yet: clear errors (GPU) -------------------------------------------

TEST(EngineOpsCuda, UnwiredOpsRefuseCudaTensorsClearly) {
  REQUIRE_GPU();
  const Tensor a = Tensor::ones({2, 3}, DType::f32, kGpu);
  const Tensor idx = Tensor::zeros({1}, DType::i64, kGpu);
  EXPECT_TRUE(testing::throws_naming([&] { gather(a, idx, 0); }, {"gather", "cuda:0", "no CUDA kernel for this op yet"}));
  const Tensor i64 = Tensor::zeros({2, 3}, DType::i64, kGpu);
  EXPECT_TRUE(testing::throws_naming([&] { relu(i64); }, {"relu", "i64", "cuda/f32"}));
  EXPECT_TRUE(testing::throws_naming([&] { add(a, a.to(DType::bf16)); }, {"add", "different dtypes"}));
  EXPECT_TRUE(testing::throws_naming([&] { add(a, Tensor::ones({2, 3})); }, {"add", "different devices"}));
}

// ---- the op table (runs anywhere: no tensor needed) ------------------------------------------

TEST(EngineOpsCudaTable, WiredOpsAndDtypes) {
  using ops::OpId;
  for (OpId op : {OpId::add, OpId::relu, OpId::gelu, OpId::pow, OpId::where, OpId::sum, OpId::mean, OpId::softmax,
                  OpId::log_softmax, OpId::cross_entropy, OpId::layer_norm, OpId::batch_norm, OpId::max_pool2d,
                  OpId::avg_pool2d, OpId::global_avg_pool2d, OpId::dropout, OpId::reshape, OpId::concat,
                  OpId::matmul, OpId::linear, OpId::conv2d, OpId::attention}) {
    for (DType t : {DType::f32, DType::f16, DType::bf16})
      EXPECT_TRUE(ops::supports(op, kGpu, t)) << ops::op_name(op) << " " << dtype_name(t);
    for (DType t : {DType::i32, DType::i64, DType::u8, DType::boolean})
      EXPECT_FALSE(ops::supports(op, kGpu, t)) << ops::op_name(op) << " " << dtype_name(t);
  }
  for (OpId op : {OpId::conv_transpose2d, OpId::gather})
    for (DType t : {DType::f32, DType::f16, DType::bf16})
      EXPECT_FALSE(ops::supports(op, kGpu, t)) << ops::op_name(op) << " has no CUDA kernel yet";
  // The CPU side is unchanged: f32 only.
  EXPECT_TRUE(ops::supports(OpId::add, Device::cpu(), DType::f32));
  EXPECT_FALSE(ops::supports(OpId::add, Device::cpu(), DType::bf16));
}

TEST(EngineOpsCudaTable, ErrorsListWhatIsSupported) {
  // A CPU tensor of an unsupported dtype: the message lists both devices.
  const std::string msg = testing::error_message([] { relu(Tensor::ones({2}, DType::f16)); });
  EXPECT_NE(msg.find("relu: f16[2] cpu is not supported (supported: cpu/f32, cuda/f32, cuda/f16, cuda/bf16)"),
            std::string::npos)
      << msg;
  const std::string mm =
      testing::error_message([] { gather(Tensor::ones({2, 2}, DType::bf16), Tensor::zeros({1}, DType::i64), 0); });
  EXPECT_NE(mm.find("(supported: cpu/f32; no CUDA kernel for this op yet)"), std::string::npos) << mm;
}

}  // namespace
}  // namespace graft
