#include "models/squeezenet.h"

#include "engine/autograd/grad_mode.h"
#include "engine/data/npy.h"
#include "engine/ops/ops.h"

namespace graft::models {

namespace {
std::shared_ptr<nn::Conv2d> conv(int64_t in, int64_t out, int64_t k, Generator& gen, int64_t stride = 1,
                                 int64_t pad = 0) {
  Conv2dOptions o = Conv2dOptions::same_padding(pad);
  o.stride = {stride, stride};
  return std::make_shared<nn::Conv2d>(in, out, k, o, true, gen);
}

std::shared_ptr<nn::Module> relu_layer() { return std::make_shared<nn::Act>(nn::Activation::relu); }

std::shared_ptr<nn::Module> max_pool_3x3_s2_ceil() {
  Pool2dOptions p;
  p.kernel = {3, 3};
  p.stride = {2, 2};
  p.ceil_mode = true;
  return std::make_shared<nn::MaxPool2d>(p);
}
}  // namespace

Fire::Fire(int64_t in, int64_t s, int64_t e1, int64_t e3, Generator& gen) {
  squeeze = register_module("squeeze", conv(in, s, 1, gen));
  expand1x1 = register_module("expand1x1", conv(s, e1, 1, gen));
  expand3x3 = register_module("expand3x3", conv(s, e3, 3, gen, 1, 1));
}

Tensor Fire::forward(const Tensor& x) {
  Tensor s = relu(squeeze->forward(x));
  return concat({relu(expand1x1->forward(s)), relu(expand3x3->forward(s))}, 1);
}

SqueezeNet::SqueezeNet(int64_t num_classes, Generator& gen) {
  backbone = register_module("features", std::make_shared<nn::Sequential>());
  auto& f = *backbone;
  f.push_back(conv(3, 64, 3, gen, 2));
  f.push_back(relu_layer());
  f.push_back(max_pool_3x3_s2_ceil());
  f.push_back(std::make_shared<Fire>(64, 16, 64, 64, gen));
  f.push_back(std::make_shared<Fire>(128, 16, 64, 64, gen));
  f.push_back(max_pool_3x3_s2_ceil());
  f.push_back(std::make_shared<Fire>(128, 32, 128, 128, gen));
  f.push_back(std::make_shared<Fire>(256, 32, 128, 128, gen));
  f.push_back(max_pool_3x3_s2_ceil());
  f.push_back(std::make_shared<Fire>(256, 48, 192, 192, gen));
  f.push_back(std::make_shared<Fire>(384, 48, 192, 192, gen));
  f.push_back(std::make_shared<Fire>(384, 64, 256, 256, gen));
  f.push_back(std::make_shared<Fire>(512, 64, 256, 256, gen));

  head = register_module("classifier", std::make_shared<nn::Sequential>());
  head->push_back(std::make_shared<nn::Dropout>(0.5, gen));
  head->push_back(conv(kFeatureChannels, num_classes, 1, gen));
  head->push_back(relu_layer());
  head->push_back(std::make_shared<nn::GlobalAvgPool2d>());  // (N, C, H, W) -> (N, C)
}

Tensor SqueezeNet::features(const Tensor& x) { return backbone->forward(x); }

Tensor SqueezeNet::forward(const Tensor& x) { return head->forward(backbone->forward(x)); }

void load_squeezenet_npy(SqueezeNet& net, const std::string& dir, bool load_head) {
  nn::NamedTensors params = net.named_parameters();
  GRAFT_CHECK(params.size() == 52, "load_squeezenet_npy: the network has " << params.size()
                                                                         << " parameters, SqueezeNet 1.1 has 52");
  NoGradGuard no_grad;
  const int convs = load_head ? 26 : 25;
  for (int i = 0; i < convs; ++i) {
    for (int which = 0; which < 2; ++which) {
      const std::string path =
          dir + "/squeezenet0_conv" + std::to_string(i) + (which == 0 ? "_weight.npy" : "_bias.npy");
      Tensor& p = params[2 * i + which].second;
      Tensor loaded = data::load_npy(path);
      GRAFT_CHECK(loaded.dtype() == DType::f32 && loaded.shape() == p.shape(),
                  "load_squeezenet_npy: '" << path << "' holds " << loaded.str() << ", parameter '"
                                           << params[2 * i + which].first << "' needs f32" << shape_str(p.shape()));
      p.copy_(loaded);
    }
  }
}

Tensor squeezenet_preprocess(const data::Image& img) {
  return data::to_tensor(data::center_crop(data::resize_shorter(img, 256), 224, 224));
}

}  // namespace graft::models
