// The real pretrained SqueezeNet 1.1 as an ONNX file (built from the shared
// .npy weights by tools/onnx/make_squeezenet_onnx.py, itself checked with
// onnxruntime): imported, it reproduces the reference sets, agrees with the
// native builder, names the right photo classes, and trains.
#include <algorithm>
#include <filesystem>
#include <fstream>

#include "engine/autograd/grad_mode.h"
#include "engine/data/image.h"
#include "engine/data/npy.h"
#include "engine/ops/ops.h"
#include "engine/optim/optimizer.h"
#include "gtest/gtest.h"
#include "importers/onnx/model.h"
#include "models/squeezenet.h"
#include "tests/support/reference.h"

namespace graft {
namespace {

std::string fixture(int opset) {
  return std::string(GRAFT_FIXTURE_DIR) + "/squeezenet1.1-op" + std::to_string(opset) + ".onnx";
}

#define REQUIRE_FIXTURE(path)                                                                            \
  if (!std::filesystem::exists(path))                                                                    \
  GTEST_SKIP() << path << " was not generated (bash tools/onnx/make_fixtures.sh BUILD_DIR makes it)"

TEST(OnnxSqueezeNet, ReproducesTheReferenceSetsAtOpsets13And17) {
  const std::string sets = testing::shared_path("pretrained/squeezenet1.1");
  if (sets.empty()) GTEST_SKIP() << "shared SqueezeNet material is not present";
  for (int opset : {13, 17}) {
    const std::string path = fixture(opset);
    REQUIRE_FIXTURE(path);
    auto model = importer::load_onnx(path);
    model->eval();
    NoGradGuard ng;
    for (int set = 0; set < 3; ++set) {
      const std::string base = sets + "/test_data_set_" + std::to_string(set);
      Tensor out = model->forward(data::load_npy(base + "/input_0.npy"));
      const double err = testing::rel_l2_error(out.to_vector(), testing::to_double(data::load_npy(base + "/output_0.npy")));
      EXPECT_LT(err, 1e-4) << "opset " << opset << " set " << set;
    }
  }
}

TEST(OnnxSqueezeNet, ParametersKeepTheFileNamesAndMatchTheNativeBuild) {
  const std::string path = fixture(13);
  REQUIRE_FIXTURE(path);
  const std::string photo = testing::shared_path("photos/cat.bmp");
  if (photo.empty()) GTEST_SKIP() << "shared photos are not present";
  auto model = importer::load_onnx(path);
  auto params = model->named_parameters();
  ASSERT_EQ(params.size(), 52u);
  int64_t count = 0;
  bool found = false;
  for (auto& [name, p] : params) {
    count += p.numel();
    EXPECT_TRUE(p.requires_grad()) << name;
    found = found || name == "squeezenet0_conv0_weight";
  }
  EXPECT_TRUE(found);
  EXPECT_EQ(count, 1235496);

  models::SqueezeNet native(1000);
  models::load_squeezenet_npy(native, testing::shared_path("pretrained/squeezenet1.1/weights"));
  native.eval();
  model->eval();
  NoGradGuard ng;
  Tensor x = models::squeezenet_preprocess(data::decode_image(photo));
  EXPECT_LT(testing::rel_l2_error(model->forward(x).to_vector(), testing::to_double(native(x))), 1e-5);
}

// The imported file names the right ImageNet class for the real photos (the
// expected labels are the shared material's, checked there independently).
TEST(OnnxSqueezeNet, NamesTheRightClassForRealPhotos) {
  const std::string path = fixture(17);
  REQUIRE_FIXTURE(path);
  const std::string photos = testing::shared_path("photos");
  if (photos.empty()) GTEST_SKIP() << "shared photos are not present";
  std::vector<std::string> names;
  std::ifstream f(photos + "/imagenet_labels.txt");
  for (std::string line; std::getline(f, line);) names.push_back(line);
  ASSERT_EQ(names.size(), 1001u);  // index 0 is "background": logit i is label i + 1
  auto model = importer::load_onnx(path);
  model->eval();
  NoGradGuard ng;
  const std::pair<const char*, const char*> cases[] = {
      {"cat.bmp", "Egyptian cat"}, {"bird.bmp", "chickadee"}, {"dragonfly.bmp", "dragonfly"}};
  for (auto& [file, want] : cases) {
    std::vector<float> l = model->forward(models::squeezenet_preprocess(data::decode_image(photos + "/" + file))).to_vector();
    const size_t top = std::max_element(l.begin(), l.end()) - l.begin();
    EXPECT_NE(names[top + 1].find(want), std::string::npos) << file << " -> " << names[top + 1];
  }
}

TEST(OnnxSqueezeNet, TrainsThroughTheImportWithAFrozenBackbone) {
  const std::string path = fixture(13);
  REQUIRE_FIXTURE(path);
  auto model = importer::load_onnx(path);
  model->train();
  // Freeze by name: everything but the classifier conv (the last, conv25).
  std::vector<Tensor> head;
  for (auto& [name, p] : model->named_parameters()) {
    if (name.find("conv25") == std::string::npos) p.set_requires_grad(false);
    else head.push_back(p);
  }
  ASSERT_EQ(head.size(), 2u);
  Generator gen = testing::test_generator();
  Tensor x = Tensor::rand({4, 3, 224, 224}, gen, -2.f, 2.f);
  Tensor y = Tensor::from_vector_i64({1, 2, 3, 4}, {4});
  optim::SGD opt(head, optim::SgdOptions{1e-3});
  double first = 0, last = 0;
  for (int step = 0; step < 5; ++step) {
    default_generator().manual_seed(11);  // the same dropout mask each step
    opt.zero_grad();
    Tensor loss = cross_entropy(model->forward(x), y);
    loss.backward();
    for (auto& [name, p] : model->named_parameters()) {
      if (!p.requires_grad()) {
        EXPECT_FALSE(p.grad().defined()) << name;
      }
    }
    opt.step();
    (step == 0 ? first : last) = loss.item();
  }
  EXPECT_LT(last, 0.9 * first);  // measured: 7.31 -> 5.52 over five steps
}

}  // namespace
}  // namespace graft
