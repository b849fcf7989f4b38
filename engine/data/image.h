// Image decoding (JPEG through libjpeg-turbo, uncompressed BMP) and the
// standard classification preprocessing.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/core/tensor.h"

namespace graft::data {

struct Image {
  int64_t height = 0, width = 0;
  std::vector<uint8_t> rgb;  // height * width * 3, row-major, interleaved
};

// By content (magic bytes), not by extension. Errors name the file.
Image decode_image(const std::string& path);

// Antialiased (triangle filter scaled to the reduction) resize, as PIL's
// bilinear resize; exact for upscaling too.
Image resize(const Image& img, int64_t height, int64_t width);
// Resize so that the shorter side is `size`, keeping the aspect ratio.
Image resize_shorter(const Image& img, int64_t size);
Image center_crop(const Image& img, int64_t height, int64_t width);

struct Normalization {
  std::array<float, 3> mean{0.485f, 0.456f, 0.406f};  // ImageNet, on [0, 1] values
  std::array<float, 3> std{0.229f, 0.224f, 0.225f};
};

// Writes image `index` of a (N, 3, H, W) f32 channels-last batch: (x / 255 - mean) / std.
void to_tensor(const Image& img, const Normalization& norm, Tensor& batch, int64_t index);
// One image as a (1, 3, H, W) channels-last tensor.
Tensor to_tensor(const Image& img, const Normalization& norm = {});

}  // namespace graft::data
