#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "engine/data/atomic_file.h"
#include "engine/data/image.h"
#include "engine/data/npy.h"
#include "gtest/gtest.h"
#include "tests/support/reference.h"

namespace graft {
namespace {

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("graft-test-" + std::to_string(::getpid()) + "-" + name)).string();
}


void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), bytes.size());
}

TEST(Npy, RoundTripKeepsShapeDtypeAndValues) {
  Generator gen = testing::test_generator();
  const std::string path = temp_path("a.npy");
  for (const Shape& s : {Shape{}, Shape{7}, Shape{2, 3, 5}}) {
    Tensor t = Tensor::rand(s, gen);
    data::save_npy(path, t);
    Tensor back = data::load_npy(path);
    EXPECT_EQ(back.shape(), s);
    EXPECT_EQ(back.to_vector(), t.to_vector());
  }
  Tensor i = Tensor::from_vector_i64({1, -2, 3}, {3});
  data::save_npy(path, i);
  EXPECT_EQ(data::load_npy(path).to_vector_i64(), (std::vector<int64_t>{1, -2, 3}));
  std::remove(path.c_str());
}

TEST(Npy, MalformedFilesAreErrorsNamingTheFile) {
  const std::string path = temp_path("bad.npy");
  write_bytes(path, "not a numpy file at all");
  EXPECT_NE(testing::error_message([&] { data::load_npy(path); }).find("bad magic"), std::string::npos);
  std::string h = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 1000000), }";
  std::string hdr = std::string("\x93NUMPY\x01\x00", 8) + char(h.size()) + char(0) + h + "\n";
  write_bytes(path, hdr + std::string(16, '\0'));
  const std::string huge = testing::error_message([&] { data::load_npy(path); });
  EXPECT_NE(huge.find("larger than the file"), std::string::npos) << huge;
  EXPECT_NE(huge.find(path), std::string::npos) << huge;
  h = "{'descr': '<f4', 'fortran_order': False, 'shape': (10,), }";
  write_bytes(path, std::string("\x93NUMPY\x01\x00", 8) + char(h.size()) + char(0) + h + std::string(12, '\0'));
  EXPECT_NE(testing::error_message([&] { data::load_npy(path); }).find("needs 40 bytes of data, the file has 12"), std::string::npos);
  h = "{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }";
  write_bytes(path, std::string("\x93NUMPY\x01\x00", 8) + char(h.size()) + char(0) + h + std::string(4, '\0'));
  EXPECT_NE(testing::error_message([&] { data::load_npy(path); }).find("unsupported dtype '>f4'"), std::string::npos);
  EXPECT_NE(testing::error_message([&] { data::load_npy(temp_path("missing.npy")); }).find("cannot open"), std::string::npos);
  std::remove(path.c_str());
}

TEST(AtomicFile, NothingAppearsUnlessCommitted) {
  const std::string path = temp_path("atomic.bin");
  {
    data::AtomicFile f(path);
    f.write("abc", 3);
    // destroyed without commit, as when an exception unwinds
  }
  EXPECT_FALSE(std::filesystem::exists(path));
  {
    data::AtomicFile f(path);
    f.write("abc", 3);
    f.commit();
  }
  EXPECT_EQ(std::filesystem::file_size(path), 3u);
  for (auto& e : std::filesystem::directory_iterator(std::filesystem::temp_directory_path()))
    EXPECT_EQ(e.path().string().find(path + ".tmp"), std::string::npos) << "temporary left behind";
  std::remove(path.c_str());
}

// A 3x2 24-bit bottom-up BMP with known pixels, written byte by byte.
std::string tiny_bmp() {
  const int w = 3, h = 2, row = 12;  // 9 bytes padded to 12
  std::string b(54 + row * h, '\0');
  auto put32 = [&](int off, uint32_t v) { for (int i = 0; i < 4; ++i) b[off + i] = char((v >> (8 * i)) & 0xff); };
  b[0] = 'B';
  b[1] = 'M';
  put32(2, static_cast<uint32_t>(b.size()));
  put32(10, 54);
  put32(14, 40);
  put32(18, w);
  put32(22, h);
  b[26] = 1;
  b[28] = 24;
  // bottom row first; pixel (y, x) has R = 10y + x, G = 100, B = 200
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const int off = 54 + (h - 1 - y) * row + 3 * x;
      b[off] = char(200);
      b[off + 1] = char(100);
      b[off + 2] = char(10 * y + x);
    }
  return b;
}

TEST(Image, DecodesBmpPixelsInOrder) {
  const std::string path = temp_path("tiny.bmp");
  write_bytes(path, tiny_bmp());
  data::Image img = data::decode_image(path);
  ASSERT_EQ(img.height, 2);
  ASSERT_EQ(img.width, 3);
  for (int y = 0; y < 2; ++y)
    for (int x = 0; x < 3; ++x) {
      EXPECT_EQ(img.rgb[(y * 3 + x) * 3], 10 * y + x);
      EXPECT_EQ(img.rgb[(y * 3 + x) * 3 + 1], 100);
      EXPECT_EQ(img.rgb[(y * 3 + x) * 3 + 2], 200);
    }
  std::string truncated = tiny_bmp().substr(0, 60);
  write_bytes(path, truncated);
  EXPECT_NE(testing::error_message([&] { data::decode_image(path); }).find("truncated"), std::string::npos);
  write_bytes(path, "GIF89a....");
  EXPECT_NE(testing::error_message([&] { data::decode_image(path); }).find("neither JPEG nor BMP"), std::string::npos);
  write_bytes(path, std::string("\xff\xd8\xff\xe0", 4) + std::string(40, 'x'));
  EXPECT_NE(testing::error_message([&] { data::decode_image(path); }).find("not a valid JPEG"), std::string::npos);
  std::remove(path.c_str());
}

TEST(Image, DecodesRealPhotos) {
  const std::string dir = testing::shared_path("photos");
  if (dir.empty()) GTEST_SKIP() << "shared photos are not present";
  data::Image bird = data::decode_image(dir + "/bird.bmp");
  EXPECT_EQ(bird.width, 512);
  EXPECT_EQ(bird.height, 343);
  data::Image dog = data::decode_image(dir + "/hot_dog.jpg");
  EXPECT_EQ(dog.width, 512);
  EXPECT_EQ(dog.height, 384);
}

TEST(Image, ResizeAveragesWhenShrinkingAndKeepsConstants) {
  data::Image img;
  img.height = 4;
  img.width = 4;
  img.rgb.assign(48, 0);
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x)
      for (int c = 0; c < 3; ++c) img.rgb[(y * 4 + x) * 3 + c] = static_cast<uint8_t>(c == 0 ? 77 : (x < 2 ? 0 : 200));
  data::Image half = data::resize(img, 2, 2);
  for (int y = 0; y < 2; ++y)
    for (int x = 0; x < 2; ++x) {
      EXPECT_EQ(half.rgb[(y * 2 + x) * 3], 77);  // a constant channel stays constant
      // triangle filter of half-width 2 centred at 1.0 (x = 0) or 3.0 (x = 1): taps at
      // pixel centres get 0.75, 0.75, 0.25 (x = 0: pixels 0, 1, 2; the tap past the border
      // is dropped) or 0.25, 0.75, 0.75 (x = 1: pixels 1, 2, 3), normalised by 1.75
      const int expect = static_cast<int>(std::lround(x == 0 ? 200.0 * 0.25 / 1.75 : 200.0 * 1.5 / 1.75));
      EXPECT_NEAR(half.rgb[(y * 2 + x) * 3 + 1], expect, 1);
    }
  data::Image crop = data::center_crop(data::resize_shorter(img, 8), 6, 6);
  EXPECT_EQ(crop.height, 6);
  EXPECT_EQ(crop.width, 6);
}

TEST(Image, ToTensorNormalisesIntoChannelsLast) {
  data::Image img;
  img.height = 1;
  img.width = 2;
  img.rgb = {0, 128, 255, 255, 0, 128};
  Tensor t = data::to_tensor(img);
  EXPECT_TRUE(t.is_channels_last());
  const data::Normalization n;
  std::vector<float> v = t.to_vector();  // logical N, C, H, W
  for (int c = 0; c < 3; ++c)
    for (int x = 0; x < 2; ++x)
      EXPECT_NEAR(v[c * 2 + x], (img.rgb[x * 3 + c] / 255.0 - n.mean[c]) / n.std[c], 1e-5);
}

}  // namespace
}  // namespace graft
