#include "engine/data/image.h"

#ifdef GRAFT_HAVE_JPEG
#include <jpeglib.h>
#endif

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>

#include "engine/core/error.h"

namespace graft::data {

namespace {
constexpr int64_t kMaxSide = 1 << 15;

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  GRAFT_CHECK(f.good(), "decode_image: cannot open '" << path << "'");
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

#ifdef GRAFT_HAVE_JPEG
struct JpegError {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void jpeg_error_exit(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegError*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

Image decode_jpeg(const std::vector<uint8_t>& bytes, const std::string& path) {
  jpeg_decompress_struct cinfo;
  JpegError err;
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = jpeg_error_exit;
  err.message[0] = 0;
  Image img;
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    GRAFT_FAIL("decode_image: '" << path << "' is not a valid JPEG: " << err.message);
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, bytes.data(), bytes.size());
  jpeg_read_header(&cinfo, TRUE);
  cinfo.out_color_space = JCS_RGB;
  jpeg_start_decompress(&cinfo);
  if (cinfo.output_width == 0 || cinfo.output_height == 0 || cinfo.output_width > kMaxSide ||
      cinfo.output_height > kMaxSide || cinfo.output_components != 3) {
    jpeg_destroy_decompress(&cinfo);
    GRAFT_FAIL("decode_image: '" << path << "': unsupported JPEG (" << cinfo.output_width << "x" << cinfo.output_height
                                 << ", " << cinfo.output_components << " components)");
  }
  img.width = cinfo.output_width;
  img.height = cinfo.output_height;
  img.rgb.resize(img.width * img.height * 3);
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = img.rgb.data() + static_cast<size_t>(cinfo.output_scanline) * img.width * 3;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return img;
}

#else
Image decode_jpeg(const std::vector<uint8_t>&, const std::string& path) {
  GRAFT_FAIL("decode_image: '" << path << "' is a JPEG, but this build of Graft was built without libjpeg "
                               "(install libjpeg-dev, e.g. tools/setup-debian.sh, and configure again)");
}
#endif

uint32_t le32(const uint8_t* p) { return p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<uint32_t>(p[3]) << 24); }
uint16_t le16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

Image decode_bmp(const std::vector<uint8_t>& b, const std::string& path) {
  GRAFT_CHECK(b.size() >= 54, "decode_image: '" << path << "': truncated BMP header");
  const uint32_t data_off = le32(&b[10]);
  const uint32_t dib = le32(&b[14]);
  GRAFT_CHECK(dib >= 40, "decode_image: '" << path << "': unsupported BMP header (size " << dib << ")");
  const int32_t w = static_cast<int32_t>(le32(&b[18]));
  const int32_t h_signed = static_cast<int32_t>(le32(&b[22]));
  const uint16_t bpp = le16(&b[28]);
  const uint32_t compression = le32(&b[30]);
  GRAFT_CHECK((bpp == 24 && compression == 0) || (bpp == 32 && (compression == 0 || compression == 3)),
              "decode_image: '" << path << "': only uncompressed 24/32-bit BMP is supported (" << bpp
                                << " bits, compression " << compression << ")");
  const bool bottom_up = h_signed > 0;
  const int64_t h = bottom_up ? h_signed : -static_cast<int64_t>(h_signed);
  GRAFT_CHECK(w > 0 && h > 0 && w <= kMaxSide && h <= kMaxSide,
              "decode_image: '" << path << "': bad BMP size " << w << "x" << h);
  const int64_t bytes_pp = bpp / 8;
  const int64_t row_bytes = (w * bytes_pp + 3) / 4 * 4;
  GRAFT_CHECK(static_cast<size_t>(data_off + row_bytes * h) <= b.size(), "decode_image: '" << path << "': truncated BMP pixel data");
  Image img;
  img.width = w;
  img.height = h;
  img.rgb.resize(w * h * 3);
  for (int64_t y = 0; y < h; ++y) {
    const uint8_t* src = &b[data_off + (bottom_up ? h - 1 - y : y) * row_bytes];
    uint8_t* dst = &img.rgb[y * w * 3];
    for (int64_t x = 0; x < w; ++x) {  // BGR(A) -> RGB
      dst[3 * x] = src[bytes_pp * x + 2];
      dst[3 * x + 1] = src[bytes_pp * x + 1];
      dst[3 * x + 2] = src[bytes_pp * x];
    }
  }
  return img;
}

// Separable resampling weights along one axis: for each output index, the
// first input index and the normalised triangle-filter weights.
struct Taps {
  std::vector<int64_t> start;
  std::vector<std::vector<float>> w;
};

Taps make_taps(int64_t in, int64_t out) {
  Taps t;
  const double scale = static_cast<double>(in) / out;
  const double support = std::max(scale, 1.0);  // widen the filter when shrinking (antialias)
  for (int64_t i = 0; i < out; ++i) {
    const double center = (i + 0.5) * scale;
    const int64_t lo = std::max<int64_t>(0, static_cast<int64_t>(std::floor(center - support)));
    const int64_t hi = std::min<int64_t>(in, static_cast<int64_t>(std::ceil(center + support)));
    std::vector<float> w;
    double total = 0;
    for (int64_t j = lo; j < hi; ++j) {
      const double d = std::fabs((j + 0.5 - center) / support);
      const double v = d < 1 ? 1 - d : 0;
      w.push_back(static_cast<float>(v));
      total += v;
    }
    for (auto& v : w) v = static_cast<float>(v / total);
    t.start.push_back(lo);
    t.w.push_back(std::move(w));
  }
  return t;
}
}  // namespace

Image decode_image(const std::string& path) {
  std::vector<uint8_t> bytes = read_file(path);
  if (bytes.size() >= 3 && bytes[0] == 0xff && bytes[1] == 0xd8 && bytes[2] == 0xff) return decode_jpeg(bytes, path);
  if (bytes.size() >= 2 && bytes[0] == 'B' && bytes[1] == 'M') return decode_bmp(bytes, path);
  GRAFT_FAIL("decode_image: '" << path << "' is neither JPEG nor BMP (unrecognised magic bytes)");
}

Image resize(const Image& img, int64_t height, int64_t width) {
  GRAFT_CHECK(height > 0 && width > 0 && height <= kMaxSide && width <= kMaxSide,
              "resize: bad target size " << height << "x" << width);
  GRAFT_CHECK(img.height > 0 && img.width > 0, "resize: empty image");
  const Taps th = make_taps(img.height, height), tw = make_taps(img.width, width);
  // Horizontal pass into float, then vertical.
  std::vector<float> tmp(img.height * width * 3);
#pragma omp parallel for schedule(static)
  for (int64_t y = 0; y < img.height; ++y)
    for (int64_t x = 0; x < width; ++x) {
      float acc[3] = {0, 0, 0};
      for (size_t k = 0; k < tw.w[x].size(); ++k) {
        const uint8_t* p = &img.rgb[(y * img.width + tw.start[x] + k) * 3];
        for (int c = 0; c < 3; ++c) acc[c] += tw.w[x][k] * p[c];
      }
      for (int c = 0; c < 3; ++c) tmp[(y * width + x) * 3 + c] = acc[c];
    }
  Image out;
  out.height = height;
  out.width = width;
  out.rgb.resize(height * width * 3);
#pragma omp parallel for schedule(static)
  for (int64_t y = 0; y < height; ++y)
    for (int64_t x = 0; x < width; ++x)
      for (int c = 0; c < 3; ++c) {
        float acc = 0;
        for (size_t k = 0; k < th.w[y].size(); ++k) acc += th.w[y][k] * tmp[((th.start[y] + k) * width + x) * 3 + c];
        out.rgb[(y * width + x) * 3 + c] = static_cast<uint8_t>(std::clamp(std::lround(acc), 0L, 255L));
      }
  return out;
}

Image resize_shorter(const Image& img, int64_t size) {
  if (img.height <= img.width)
    return resize(img, size, std::max<int64_t>(1, std::lround(static_cast<double>(img.width) * size / img.height)));
  return resize(img, std::max<int64_t>(1, std::lround(static_cast<double>(img.height) * size / img.width)), size);
}

Image center_crop(const Image& img, int64_t height, int64_t width) {
  GRAFT_CHECK(height <= img.height && width <= img.width, "center_crop: " << height << "x" << width
                                                                          << " is larger than the image " << img.height
                                                                          << "x" << img.width);
  const int64_t top = (img.height - height) / 2, left = (img.width - width) / 2;
  Image out;
  out.height = height;
  out.width = width;
  out.rgb.resize(height * width * 3);
  for (int64_t y = 0; y < height; ++y)
    std::memcpy(&out.rgb[y * width * 3], &img.rgb[((top + y) * img.width + left) * 3], width * 3);
  return out;
}

void to_tensor(const Image& img, const Normalization& norm, Tensor& batch, int64_t index) {
  GRAFT_CHECK(batch.dim() == 4 && batch.size(1) == 3 && batch.size(2) == img.height && batch.size(3) == img.width &&
                  batch.is_channels_last() && batch.dtype() == DType::f32 && index >= 0 && index < batch.size(0),
              "to_tensor: image " << img.height << "x" << img.width << " does not fit batch " << batch.str()
                                  << " (channels-last f32 (N, 3, H, W)) at index " << index);
  float* out = batch.data<float>() + index * img.height * img.width * 3;  // channels-last: HWC per image
  float scale[3], shift[3];
  for (int c = 0; c < 3; ++c) {
    scale[c] = 1.f / (255.f * norm.std[c]);
    shift[c] = -norm.mean[c] / norm.std[c];
  }
  const int64_t n = img.height * img.width;
  for (int64_t i = 0; i < n; ++i)
    for (int c = 0; c < 3; ++c) out[i * 3 + c] = img.rgb[i * 3 + c] * scale[c] + shift[c];
  batch.bump_version();
}

Tensor to_tensor(const Image& img, const Normalization& norm) {
  Tensor t = Tensor::empty({1, 3, img.height, img.width}, DType::f32, Device::cpu(), MemoryFormat::channels_last);
  to_tensor(img, norm, t, 0);
  return t;
}

}  // namespace graft::data
