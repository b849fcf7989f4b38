// SqueezeNet 1.1 (Iandola et al. 2016; the torchvision / ONNX model zoo
// variant): a native builder, the loader for the pretrained .npy weights
// shipped as ONNX-zoo squeezenet1.1-7 tensors, and its preprocessing.
#pragma once

#include <memory>
#include <string>

#include "engine/data/image.h"
#include "engine/nn/layers.h"

namespace graft::models {

// squeeze 1x1 -> relu -> [expand 1x1 -> relu, expand 3x3 -> relu] -> concat.
class Fire : public nn::Module {
 public:
  Fire(int64_t in, int64_t squeeze, int64_t expand1x1, int64_t expand3x3, Generator& gen);
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<nn::Conv2d> squeeze, expand1x1, expand3x3;
};

class SqueezeNet : public nn::Module {
 public:
  explicit SqueezeNet(int64_t num_classes = 1000, Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override;  // logits (N, num_classes)
  Tensor features(const Tensor& x);          // backbone output (N, 512, 13, 13) at 224x224

  // The backbone ends after the last Fire module; the head is
  // dropout -> conv 1x1 (512 -> classes) -> relu -> global average pool.
  std::shared_ptr<nn::Sequential> backbone, head;
  static constexpr int64_t kFeatureChannels = 512;
};

// Loads squeezenet0_conv{0..25}_{weight,bias}.npy from `dir` in definition
// order (the 26 convolutions of SqueezeNet 1.1). With a head of a different
// class count, the last conv is skipped (load_head = false). Errors name the
// file and the shapes.
void load_squeezenet_npy(SqueezeNet& net, const std::string& dir, bool load_head = true);

// 256 shorter side, 224 center crop, ImageNet mean/std.
Tensor squeezenet_preprocess(const data::Image& img);

}  // namespace graft::models
