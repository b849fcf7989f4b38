#include "engine/data/npy.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>

#include "engine/data/atomic_file.h"

namespace graft::data {

namespace {
struct NpyType {
  const char* descr;
  DType dtype;
  size_t file_bytes;
};
constexpr NpyType kTypes[] = {
    {"<f4", DType::f32, 4}, {"<f2", DType::f16, 2}, {"<i4", DType::i32, 4}, {"<i8", DType::i64, 8},
    {"|u1", DType::u8, 1},  {"|b1", DType::boolean, 1}, {"<f8", DType::f32, 8},
};
}  // namespace

Tensor load_npy(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  GRAFT_CHECK(f.good(), "load_npy: cannot open '" << path << "'");
  f.seekg(0, std::ios::end);
  const int64_t file_size = f.tellg();
  f.seekg(0);
  char magic[8] = {};
  f.read(magic, 8);
  GRAFT_CHECK(f.gcount() == 8 && std::memcmp(magic, "\x93NUMPY", 6) == 0,
              "load_npy: '" << path << "' is not a .npy file (bad magic)");
  const int major = static_cast<unsigned char>(magic[6]);
  GRAFT_CHECK(major >= 1 && major <= 3, "load_npy: '" << path << "': unsupported format version " << major);
  uint32_t header_len = 0;
  if (major == 1) {
    unsigned char b[2];
    f.read(reinterpret_cast<char*>(b), 2);
    header_len = b[0] | (b[1] << 8);
  } else {
    unsigned char b[4];
    f.read(reinterpret_cast<char*>(b), 4);
    header_len = b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<uint32_t>(b[3]) << 24);
  }
  GRAFT_CHECK(f.good() && header_len < (1u << 20) && static_cast<int64_t>(header_len) < file_size,
              "load_npy: '" << path << "': truncated or corrupt header");
  std::string header(header_len, '\0');
  f.read(&header[0], header_len);
  GRAFT_CHECK(f.gcount() == static_cast<std::streamsize>(header_len), "load_npy: '" << path << "': truncated header");

  std::smatch m;
  GRAFT_CHECK(std::regex_search(header, m, std::regex("'descr'\\s*:\\s*'([^']*)'")),
              "load_npy: '" << path << "': header has no 'descr'");
  const std::string descr = m[1];
  GRAFT_CHECK(std::regex_search(header, m, std::regex("'fortran_order'\\s*:\\s*(True|False)")),
              "load_npy: '" << path << "': header has no 'fortran_order'");
  GRAFT_CHECK(m[1] == "False", "load_npy: '" << path << "': Fortran-ordered arrays are not supported");
  GRAFT_CHECK(std::regex_search(header, m, std::regex("'shape'\\s*:\\s*\\(([^)]*)\\)")),
              "load_npy: '" << path << "': header has no 'shape'");
  Shape shape;
  {
    std::string dims = m[1];
    std::stringstream ss(dims);
    std::string tok;
    while (std::getline(ss, tok, ',')) {
      tok.erase(0, tok.find_first_not_of(" \t"));
      tok.erase(tok.find_last_not_of(" \tL") + 1);
      if (tok.empty()) continue;
      GRAFT_CHECK(tok.find_first_not_of("0123456789") == std::string::npos && tok.size() < 13,
                  "load_npy: '" << path << "': bad dimension '" << tok << "' in shape (" << dims << ")");
      shape.push_back(std::stoll(tok));
    }
  }
  const NpyType* type = nullptr;
  for (const auto& t : kTypes)
    if (descr == t.descr) type = &t;
  GRAFT_CHECK(type != nullptr, "load_npy: '" << path << "': unsupported dtype '" << descr
                                             << "' (supported: <f4 <f2 <f8 <i4 <i8 |u1 |b1, little-endian)");
  // Check the payload size before allocating anything: a corrupt shape must
  // not turn into a huge allocation.
  int64_t numel = 1;
  for (int64_t d : shape) {
    GRAFT_CHECK(d == 0 || numel <= file_size / d, "load_npy: '" << path << "': shape " << shape_str(shape)
                                                                << " is larger than the file (" << file_size << " bytes)");
    numel *= d;
  }
  const int64_t payload = file_size - static_cast<int64_t>(f.tellg());
  GRAFT_CHECK(payload == numel * static_cast<int64_t>(type->file_bytes),
              "load_npy: '" << path << "': shape " << shape_str(shape) << " of " << descr << " needs "
                            << numel * type->file_bytes << " bytes of data, the file has " << payload);
  Tensor t = Tensor::empty(shape, type->dtype);
  if (descr == "<f8") {
    std::vector<double> tmp(numel);
    f.read(reinterpret_cast<char*>(tmp.data()), numel * 8);
    float* out = t.data<float>();
    for (int64_t i = 0; i < numel; ++i) out[i] = static_cast<float>(tmp[i]);
  } else {
    f.read(static_cast<char*>(t.raw_data()), numel * type->file_bytes);
  }
  GRAFT_CHECK(f.good() || numel == 0, "load_npy: '" << path << "': read failed");
  return t;
}

void save_npy(const std::string& path, const Tensor& t) {
  const char* descr = nullptr;
  for (const auto& k : kTypes)
    if (k.dtype == t.dtype() && k.file_bytes == dtype_size(t.dtype())) descr = k.descr;
  GRAFT_CHECK(descr != nullptr, "save_npy: '" << path << "': dtype " << dtype_name(t.dtype()) << " has no .npy encoding here");
  Tensor c = t.device().is_cpu() ? t.contiguous() : t.to(Device::cpu()).contiguous();
  std::string shape = "(";
  for (size_t i = 0; i < c.shape().size(); ++i) shape += std::to_string(c.shape()[i]) + (c.shape().size() == 1 ? "," : (i + 1 < c.shape().size() ? ", " : ""));
  shape += ")";
  std::string header = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  AtomicFile out(path);
  const uint16_t len = static_cast<uint16_t>(header.size());
  const char prefix[8] = {'\x93', 'N', 'U', 'M', 'P', 'Y', 1, 0};
  out.write(prefix, 8);
  const char lb[2] = {static_cast<char>(len & 0xff), static_cast<char>(len >> 8)};
  out.write(lb, 2);
  out.write(header.data(), header.size());
  out.write(c.raw_data(), c.nbytes());
  out.commit();
}

}  // namespace graft::data
