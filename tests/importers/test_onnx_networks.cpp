// Whole networks exported from PyTorch (tools/onnx/export_torchvision.py):
// imported, each reproduces onnxruntime's output at opsets 13 and 17, and for
// ResNet-50 and EfficientNet-B0 the backward through the import gives torch's
// gradient for every parameter. The fixtures live in BUILD_DIR/fixtures
// (tools/onnx/make_fixtures.sh); a test whose fixture is absent skips, naming it.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "engine/autograd/grad_mode.h"
#include "engine/ops/ops.h"
#include "gtest/gtest.h"
#include "importers/onnx/model.h"
#include "importers/onnx/tensor_proto.h"

namespace graft {
namespace {

namespace fs = std::filesystem;

std::string fixture_dir(const std::string& name) { return std::string(GRAFT_FIXTURE_DIR) + "/" + name; }

#define REQUIRE_FIXTURE(path)                                                                            \
  if (!fs::exists(path))                                                                                 \
  GTEST_SKIP() << path << " was not generated (bash tools/onnx/make_fixtures.sh BUILD_DIR makes it; it " \
                  "needs torch and torchvision from PyPI)"

// max |a - ref| / max |ref|: one scale for the whole tensor, so an error on a
// small element counts as much as on a large one.
double max_rel_error(const Tensor& a, const Tensor& ref) {
  const std::vector<float> x = a.to_vector(), y = ref.to_vector();
  if (x.size() != y.size()) return INFINITY;
  double diff = 0, scale = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (!std::isfinite(x[i])) return INFINITY;
    diff = std::max(diff, std::abs(double(x[i]) - double(y[i])));
    scale = std::max(scale, std::abs(double(y[i])));
  }
  return scale > 0 ? diff / scale : diff;
}

struct NetCase {
  const char* net;
  int opset;
  double grad_tolerance = 0;  // gradient tests only
};

// What CTest's test names show for a case (gtest would print the raw bytes).
void PrintTo(const NetCase& c, std::ostream* os) { *os << c.net << " opset " << c.opset; }

std::string case_name(const ::testing::TestParamInfo<NetCase>& info) {
  return std::string(info.param.net) + "_op" + std::to_string(info.param.opset);
}

class OnnxNetwork : public ::testing::TestWithParam<NetCase> {};

TEST_P(OnnxNetwork, MatchesOnnxRuntime) {
  const std::string dir = fixture_dir(std::string(GetParam().net) + "-op" + std::to_string(GetParam().opset));
  REQUIRE_FIXTURE(dir + "/test_data_set_0/output_0.pb");
  auto model = importer::load_onnx(dir + "/model.onnx");
  EXPECT_EQ(model->opset(), GetParam().opset);
  model->eval();
  NoGradGuard no_grad;
  const Tensor x = importer::read_tensor_file(dir + "/test_data_set_0/input_0.pb");
  const Tensor want = importer::read_tensor_file(dir + "/test_data_set_0/output_0.pb");
  const Tensor got = model->forward(x);
  ASSERT_EQ(got.shape(), want.shape());
  const double err = max_rel_error(got, want);
  std::cout << GetParam().net << " opset " << GetParam().opset << ": max rel error vs onnxruntime " << err << "\n";
  EXPECT_LT(err, 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Torchvision, OnnxNetwork,
                         ::testing::Values(NetCase{"resnet50", 13}, NetCase{"resnet50", 17}, NetCase{"vgg16", 13},
                                           NetCase{"vgg16", 17}, NetCase{"mobilenet_v2", 13},
                                           NetCase{"mobilenet_v2", 17}, NetCase{"efficientnet_b0", 13},
                                           NetCase{"efficientnet_b0", 17}, NetCase{"efficientnet_b4", 13},
                                           NetCase{"efficientnet_b4", 17}, NetCase{"vit_b_16", 13},
                                           NetCase{"vit_b_16", 17}, NetCase{"efficientnet_lite0", 13},
                                           NetCase{"efficientnet_lite0", 17}),
                         case_name);

// torch's side: the module in eval mode (BatchNorm on running statistics,
// dropout and stochastic depth off), loss = sum(output * R), one backward;
// grad/<initializer name>.pb holds each parameter's float32 gradient and
// grad64/ the float64 one (same float32 weights and input).
//
// Through a ReLU network a float32 gradient is only as good as the ReLU
// masks: where a ReLU input lies within float32 rounding of zero, two correct
// implementations may pick different sides, and one element's path drops out
// of the gradient of every parameter before it. Measured on the ResNet-50
// fixture: layer3.1's bn2 output has an element 3.1e-7 from zero in float64;
// torch float32 keeps its side, Graft flips it, so layer3.1.conv2.weight
// differs by 3.2e-2 and earlier tensors by a few 1e-3 (torch float32 itself is
// up to 1.7e-3 from float64 on this input). EfficientNet-B0 (SiLU, sigmoid) has
// no such kink: there Graft matches torch to 4.3e-6. Hence a tolerance per
// network; the float64 gradient (grad64/) is printed alongside for diagnosis.
std::map<std::string, Tensor> read_gradients(const std::string& dir) {
  std::map<std::string, Tensor> grads;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string file = entry.path().filename().string();
    if (file.size() > 3 && file.substr(file.size() - 3) == ".pb")
      grads[file.substr(0, file.size() - 3)] = importer::read_tensor_file(entry.path().string());
  }
  return grads;
}

class OnnxNetworkGradient : public ::testing::TestWithParam<NetCase> {};

TEST_P(OnnxNetworkGradient, MatchesTorchForEveryParameter) {
  const std::string dir = fixture_dir(std::string(GetParam().net) + "-grad-op" + std::to_string(GetParam().opset));
  REQUIRE_FIXTURE(dir + "/grad64");
  const std::map<std::string, Tensor> torch32 = read_gradients(dir + "/grad");
  const std::map<std::string, Tensor> torch64 = read_gradients(dir + "/grad64");
  ASSERT_FALSE(torch32.empty());
  ASSERT_EQ(torch32.size(), torch64.size());

  auto model = importer::load_onnx(dir + "/model.onnx");
  model->eval();
  const Tensor x = importer::read_tensor_file(dir + "/test_data_set_0/input_0.pb");
  const Tensor r = importer::read_tensor_file(dir + "/r.pb");
  const Tensor out = model->forward(x);
  EXPECT_LT(max_rel_error(out, importer::read_tensor_file(dir + "/test_data_set_0/output_0.pb")), 1e-4);
  sum(mul(out, r)).backward();

  std::vector<double> errs;
  double worst = 0, worst_graft_64 = 0, worst_torch_64 = 0;
  std::string worst_name;
  int beyond = 0;
  for (const auto& [name, p] : model->named_parameters()) {
    auto it = torch32.find(name);
    if (it == torch32.end()) {
      ADD_FAILURE() << "Graft parameter " << name << " has no torch gradient (not a torch parameter)";
      continue;
    }
    ASSERT_TRUE(p.grad().defined()) << name << " got no gradient";
    ASSERT_EQ(p.grad().shape(), it->second.shape()) << name;
    const double err = max_rel_error(p.grad(), it->second);
    errs.push_back(err);
    EXPECT_LT(err, GetParam().grad_tolerance) << name;
    // Downstream of the ResNet-50 ReLU whose side float32 rounding decides
    // (layer3.1), nothing depends on it: there the tight bound holds.
    if (std::string(GetParam().net) == "resnet50" && (name.rfind("layer4.", 0) == 0 || name.rfind("fc.", 0) == 0)) {
      EXPECT_LT(err, 1e-4) << name << " (after the flipped ReLU)";
    }
    if (err > worst) worst = err, worst_name = name;
    if (err >= 1e-3) ++beyond;
    const Tensor& exact = torch64.at(name);
    worst_graft_64 = std::max(worst_graft_64, max_rel_error(p.grad(), exact));
    worst_torch_64 = std::max(worst_torch_64, max_rel_error(it->second, exact));
  }
  EXPECT_EQ(errs.size(), torch32.size()) << "torch parameters without a Graft parameter of the same name";
  ASSERT_FALSE(errs.empty());
  std::sort(errs.begin(), errs.end());
  std::cout << GetParam().net << ": " << errs.size() << " parameter gradients vs torch float32: median max rel error "
            << errs[errs.size() / 2] << ", largest " << worst << " (" << worst_name << "); " << beyond
            << " beyond 1e-3. Largest vs float64: Graft " << worst_graft_64 << ", torch float32 " << worst_torch_64
            << "\n";
}

INSTANTIATE_TEST_SUITE_P(Torchvision, OnnxNetworkGradient,
                         ::testing::Values(NetCase{"resnet50", 17, 5e-2}, NetCase{"efficientnet_b0", 17, 2e-5}), case_name);

}  // namespace
}  // namespace graft
