// Backward of every shape op against finite differences, and bad inputs:
// every error names the op and the shapes or arguments.
#include <string>

#include "engine/autograd/grad_mode.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"
#include "engine/ops/shape.h"
#include "gtest/gtest.h"
#include "tests/support/gradcheck.h"
#include "tests/support/reference.h"

namespace graft {
namespace {

using testing::gradcheck;
using In = std::vector<Tensor>;

Tensor cl(const Tensor& t) { return t.to_format(MemoryFormat::channels_last); }

TEST(ShapeGrad, ReshapeFamily) {
  Generator gen = testing::test_generator();
  Tensor x = Tensor::rand({2, 3, 4, 5}, gen, -1.f, 1.f);
  EXPECT_TRUE(gradcheck([](const In& in) { return reshape(in[0], {6, -1}); }, {x}));
  EXPECT_TRUE(gradcheck([](const In& in) { return reshape(cl(in[0]), {-1, 5}); }, {x}));  // copy first
  EXPECT_TRUE(gradcheck([](const In& in) { return reshape(transpose(in[0], 1, 2), {24, 5}); }, {x}));
  EXPECT_TRUE(gradcheck([](const In& in) { return flatten(in[0]); }, {x}));
  EXPECT_TRUE(gradcheck([](const In& in) { return flatten(cl(in[0]), 0, 2); }, {x}));
  Tensor y = Tensor::rand({3, 1, 4}, gen, -1.f, 1.f);
  EXPECT_TRUE(gradcheck([](const In& in) { return squeeze(in[0], 1); }, {y}));
  EXPECT_TRUE(gradcheck([](const In& in) { return unsqueeze(in[0], -1); }, {y}));
  EXPECT_TRUE(gradcheck([](const In& in) { return unsqueeze(transpose(in[0], 0, 2), 1); }, {y}));
}

TEST(ShapeGrad, PermuteAndTranspose) {
  Generator gen = testing::test_generator();
  Tensor x = Tensor::rand({2, 3, 4, 5}, gen, -1.f, 1.f);
  EXPECT_TRUE(gradcheck([](const In& in) { return permute(in[0], {0, 2, 3, 1}); }, {x}));
  EXPECT_TRUE(gradcheck([](const In& in) { return permute(cl(in[0]), {3, 1, 0, 2}); }, {x}));
  EXPECT_TRUE(gradcheck([](const In& in) { return transpose(in[0], -1, 0); }, {x}));
  // A view feeding a layout-sensitive op: the gradient must still land right.
  EXPECT_TRUE(gradcheck([](const In& in) { return gelu(transpose(in[0], 1, 3)); }, {x}));
}

TEST(ShapeGrad, Concat) {
  Generator gen = testing::test_generator();
  Tensor a = Tensor::rand({2, 3, 4}, gen, -1.f, 1.f), b = Tensor::rand({2, 5, 4}, gen, -1.f, 1.f),
         c = Tensor::rand({2, 1, 4}, gen, -1.f, 1.f);
  EXPECT_TRUE(gradcheck([](const In& in) { return concat(in, 1); }, {a, b, c}));
  EXPECT_TRUE(gradcheck([](const In& in) { return concat({in[0], in[0]}, -1); }, {a}));
  // Only some inputs need a gradient.
  testing::GradcheckOptions opt;
  opt.check = {false, true, false};
  EXPECT_TRUE(gradcheck([](const In& in) { return concat(in, 1); }, {a, b, c}, opt));
  Tensor p = Tensor::rand({2, 3, 4, 4}, gen, -1.f, 1.f), q = Tensor::rand({2, 2, 4, 4}, gen, -1.f, 1.f);
  EXPECT_TRUE(gradcheck([](const In& in) { return concat({cl(in[0]), cl(in[1])}, 1); }, {p, q}));
}

TEST(ShapeGrad, Slice) {
  Generator gen = testing::test_generator();
  Tensor x = Tensor::rand({5, 7, 3}, gen, -1.f, 1.f);
  EXPECT_TRUE(gradcheck([](const In& in) { return slice(in[0], 1, 1, 6, 2); }, {x}));
  EXPECT_TRUE(gradcheck([](const In& in) { return slice(in[0], -1, -2, 100); }, {x}));
  EXPECT_TRUE(gradcheck([](const In& in) { return slice(slice(in[0], 0, 1, 4), 1, 0, 7, 3); }, {x}));
  Tensor y = Tensor::rand({2, 3, 5, 6}, gen, -1.f, 1.f);
  EXPECT_TRUE(gradcheck([](const In& in) { return slice(cl(in[0]), 2, 1, 4); }, {y}));
}

TEST(ShapeGrad, PadAllModes) {
  Generator gen = testing::test_generator();
  Tensor x = Tensor::rand({2, 3, 5, 6}, gen, -1.f, 1.f);
  for (PadMode mode : {PadMode::constant, PadMode::reflect, PadMode::edge}) {
    for (const std::vector<int64_t>& pads :
         {std::vector<int64_t>{1, 2, 3, 1}, {-1, 2, 2, -2}, {0, 0, 4, 0}, {2, 1}, {1, 0, 0, 1, 2, 2}}) {
      EXPECT_TRUE(gradcheck([&](const In& in) { return pad(in[0], pads, mode, 0.25); }, {x}))
          << shape_str(pads) << " mode " << static_cast<int>(mode);
      EXPECT_TRUE(gradcheck([&](const In& in) { return pad(cl(in[0]), pads, mode); }, {x}))
          << "channels-last " << shape_str(pads) << " mode " << static_cast<int>(mode);
    }
  }
}

TEST(ShapeGrad, Expand) {
  Generator gen = testing::test_generator();
  Tensor x = Tensor::rand({3, 1}, gen, -1.f, 1.f);
  EXPECT_TRUE(gradcheck([](const In& in) { return expand(in[0], {2, 3, 4}); }, {x}));
  EXPECT_TRUE(gradcheck([](const In& in) { return expand(in[0], {3, 5}); }, {x}));
  Tensor b = Tensor::rand({1, 3, 1, 1}, gen, -1.f, 1.f);
  EXPECT_TRUE(gradcheck([](const In& in) { return expand(in[0], {2, 3, 4, 4}); }, {b}));
}

TEST(ShapeGrad, BadInputsNameTheOpAndShapes) {
  Tensor x = Tensor::zeros({2, 3, 4});
  EXPECT_TRUE(testing::throws_naming([&] { reshape(x, {5, 5}); }, {"reshape", "[2, 3, 4]", "[5, 5]"}));
  EXPECT_TRUE(testing::throws_naming([&] { reshape(x, {-1, -1}); }, {"reshape", "[-1, -1]"}));
  EXPECT_TRUE(testing::throws_naming([&] { reshape(x, {5, -1}); }, {"reshape", "[5, -1]", "[2, 3, 4]"}));
  EXPECT_TRUE(testing::throws_naming([&] { reshape(x, {-2, 12}); }, {"reshape", "[-2, 12]"}));
  EXPECT_TRUE(testing::throws_naming([&] { flatten(x, 2, 1); }, {"flatten", "[2, 3, 4]"}));
  EXPECT_TRUE(testing::throws_naming([&] { flatten(x, 0, 3); }, {"flatten", "3", "[2, 3, 4]"}));
  EXPECT_TRUE(testing::throws_naming([&] { squeeze(x, 1); }, {"squeeze", "[2, 3, 4]", "not 1"}));
  EXPECT_TRUE(testing::throws_naming([&] { squeeze(x, 3); }, {"squeeze", "3", "[2, 3, 4]"}));
  EXPECT_TRUE(testing::throws_naming([&] { unsqueeze(x, 4); }, {"unsqueeze", "4", "[2, 3, 4]"}));
  EXPECT_TRUE(testing::throws_naming([&] { unsqueeze(x, -5); }, {"unsqueeze", "-5", "[2, 3, 4]"}));
  EXPECT_TRUE(testing::throws_naming([&] { permute(x, {0, 1}); }, {"permute", "[0, 1]", "[2, 3, 4]"}));
  EXPECT_TRUE(testing::throws_naming([&] { permute(x, {0, 1, 1}); }, {"permute", "[0, 1, 1]"}));
  EXPECT_TRUE(testing::throws_naming([&] { permute(x, {0, 1, 3}); }, {"permute", "[0, 1, 3]"}));
  EXPECT_TRUE(testing::throws_naming([&] { transpose(x, 0, 3); }, {"transpose", "3", "[2, 3, 4]"}));
  EXPECT_TRUE(testing::throws_naming([&] { concat({x, Tensor::zeros({2, 5, 5})}, 1); }, {"concat", "[2, 5, 5]", "[2, 3, 4]"}));
  EXPECT_TRUE(testing::throws_naming([&] { concat({x, Tensor::zeros({2, 3})}, 0); }, {"concat", "[2, 3]"}));
  EXPECT_TRUE(testing::throws_naming([&] { concat({x, x}, 3); }, {"concat", "3", "[2, 3, 4]"}));
  EXPECT_TRUE(testing::throws_naming([&] { concat({}, 0); }, {"concat"}));
  EXPECT_TRUE(testing::throws_naming([&] { concat({x, Tensor::from_vector_i64(std::vector<int64_t>(24, 0), {2, 3, 4})}, 0); },
                            {"concat", "i64"}));
  EXPECT_TRUE(testing::throws_naming([&] { slice(x, 3, 0, 1); }, {"slice", "3", "[2, 3, 4]"}));
  EXPECT_TRUE(testing::throws_naming([&] { slice(x, 0, 0, 2, 0); }, {"slice", "step", "[2, 3, 4]"}));
  EXPECT_TRUE(testing::throws_naming([&] { pad(x, {1, 2, 3}); }, {"pad", "[1, 2, 3]", "[2, 3, 4]"}));
  EXPECT_TRUE(testing::throws_naming([&] { pad(x, {1, 1, 1, 1, 1, 1, 1, 1}); }, {"pad", "[2, 3, 4]"}));
  EXPECT_TRUE(testing::throws_naming([&] { pad(x, {0, -5}); }, {"pad", "[2, 3, 4]"}));
  EXPECT_TRUE(testing::throws_naming([&] { pad(x, {4, 0}, PadMode::reflect); }, {"pad", "reflect", "[2, 3, 4]"}));
  EXPECT_TRUE(testing::throws_naming([&] { pad(Tensor::zeros({2, 0}), {1, 0}, PadMode::edge); }, {"pad", "edge", "[2, 0]"}));
  EXPECT_TRUE(testing::throws_naming([&] { expand(x, {2, 5, 4}); }, {"expand", "[2, 3, 4]", "[2, 5, 4]"}));
  EXPECT_TRUE(testing::throws_naming([&] { expand(x, {3, 4}); }, {"expand", "[2, 3, 4]", "[3, 4]"}));
  EXPECT_TRUE(testing::throws_naming([&] { reshape(Tensor(), {1}); }, {"reshape"}));
}

// A view and its base share the version counter, so an in-place change of the
// base after a view of it was saved is caught at backward.
TEST(ShapeGrad, InPlaceChangeThroughBaseIsCaught) {
  Generator gen = testing::test_generator();
  Tensor x = Tensor::rand({3, 4}, gen, -1.f, 1.f).set_requires_grad(true);
  Tensor v = transpose(x, 0, 1);
  Tensor y = mul(v, v);  // saves v
  {
    NoGradGuard ng;
    x.detach().add_(Tensor::ones({3, 4}));
  }
  EXPECT_TRUE(testing::throws_naming([&] { sum(y).backward(); }, {"mul", "modified in place"}));
}

}  // namespace
}  // namespace graft
