// The real ImageNet-pretrained SqueezeNet 1.1, built natively: it reproduces
// its three reference input/output sets and names the right class for real
// photos.
#include "models/squeezenet.h"

#include <fstream>

#include "engine/autograd/grad_mode.h"
#include "engine/data/image.h"
#include "engine/data/npy.h"
#include "gtest/gtest.h"
#include "tests/support/reference.h"

namespace graft {
namespace {

#define REQUIRE_SHARED(var, rel)                                                      \
  const std::string var = testing::shared_path(rel);                                  \
  if (var.empty()) GTEST_SKIP() << "shared material '" << rel << "' is not present"

models::SqueezeNet& pretrained() {
  static models::SqueezeNet net = [] {
    models::SqueezeNet n(1000);
    models::load_squeezenet_npy(n, testing::shared_path("pretrained/squeezenet1.1/weights"));
    n.eval();
    return n;
  }();
  return net;
}

TEST(SqueezeNet, ReproducesTheReferenceSets) {
  REQUIRE_SHARED(dir, "pretrained/squeezenet1.1");
  NoGradGuard ng;
  for (int set = 0; set < 3; ++set) {
    const std::string base = dir + "/test_data_set_" + std::to_string(set);
    Tensor input = data::load_npy(base + "/input_0.npy");
    Tensor expected = data::load_npy(base + "/output_0.npy");
    Tensor out = pretrained()(input);
    ASSERT_EQ(out.shape(), expected.shape());
    const double err = testing::rel_l2_error(out.to_vector(), testing::to_double(expected));
    EXPECT_LT(err, 1e-4) << "set " << set;
  }
}

std::vector<std::string> labels() {
  std::ifstream f(testing::shared_path("photos/imagenet_labels.txt"));
  std::vector<std::string> l;
  for (std::string line; std::getline(f, line);) l.push_back(line);
  return l;
}

TEST(SqueezeNet, NamesTheRightClassForRealPhotos) {
  REQUIRE_SHARED(photos, "photos");
  REQUIRE_SHARED(w, "pretrained/squeezenet1.1/weights");
  const std::vector<std::string> names = labels();
  ASSERT_EQ(names.size(), 1001u);  // index 0 is "background": logit i is label i + 1
  NoGradGuard ng;
  const std::pair<const char*, const char*> cases[] = {
      {"cat.bmp", "Egyptian cat"}, {"bird.bmp", "chickadee"}, {"dragonfly.bmp", "dragonfly"}};
  for (auto& [file, want] : cases) {
    Tensor logits = pretrained()(models::squeezenet_preprocess(data::decode_image(photos + "/" + file)));
    std::vector<float> l = logits.to_vector();
    const size_t top = std::max_element(l.begin(), l.end()) - l.begin();
    EXPECT_NE(names[top + 1].find(want), std::string::npos) << file << " -> " << names[top + 1];
  }
}

TEST(SqueezeNet, LoaderNamesTheFileOnAShapeMismatch) {
  REQUIRE_SHARED(w, "pretrained/squeezenet1.1/weights");
  models::SqueezeNet wrong(10);  // the head's conv has 10 outputs, the file 1000
  try {
    models::load_squeezenet_npy(wrong, w);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("squeezenet0_conv25_weight.npy"), std::string::npos) << e.what();
  }
  models::load_squeezenet_npy(wrong, w, /*load_head=*/false);  // the backbone alone loads
}

}  // namespace
}  // namespace graft
