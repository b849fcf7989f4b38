// TensorProto <-> Tensor (see tensor_proto.h). Every size is checked against
// the bytes actually present (in the message or the external file) before a
// tensor is allocated, so a corrupt file is an error, never a huge allocation.
#include "importers/onnx/tensor_proto.h"

#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include "engine/data/atomic_file.h"
#include "onnx/onnx_pb.h"

namespace graft::importer {

namespace {

using TP = ::onnx::TensorProto;

// ONNX type -> engine dtype; false where Graft cannot hold it.
bool engine_dtype(int onnx_type, DType* out) {
  switch (onnx_type) {
    case TP::FLOAT: *out = DType::f32; return true;
    case TP::FLOAT16: *out = DType::f16; return true;
    case TP::BFLOAT16: *out = DType::bf16; return true;
    case TP::INT32: *out = DType::i32; return true;
    case TP::INT64: *out = DType::i64; return true;
    case TP::UINT8: *out = DType::u8; return true;
    case TP::BOOL: *out = DType::boolean; return true;
    default: return false;
  }
}

int onnx_type_of(DType t) {
  switch (t) {
    case DType::f32: return TP::FLOAT;
    case DType::f16: return TP::FLOAT16;
    case DType::bf16: return TP::BFLOAT16;
    case DType::i32: return TP::INT32;
    case DType::i64: return TP::INT64;
    case DType::u8: return TP::UINT8;
    case DType::boolean: return TP::BOOL;
  }
  return TP::UNDEFINED;
}

// Element count of `dims`, or an error naming the tensor.
int64_t checked_numel(const TP& t, const std::string& what) {
  std::string why;
  const int64_t n = bounded_numel({t.dims().begin(), t.dims().end()}, std::numeric_limits<int64_t>::max(),
                                  "64-bit element counts would overflow", false, why);
  GRAFT_CHECK(n >= 0, what << ": " << why);
  return n;
}

bool is_safe_relative(const std::string& p) {
  if (p.empty() || p[0] == '/') return false;
  std::stringstream ss(p);
  std::string part;
  while (std::getline(ss, part, '/'))
    if (part == "..") return false;
  return true;
}

// Reads [offset, offset + nbytes) of the tensor's external file.
std::string read_external(const TP& t, const std::string& base_dir, const std::string& what, uint64_t nbytes) {
  std::string location;
  int64_t offset = 0, length = -1;
  for (const auto& kv : t.external_data()) {
    if (kv.key() == "location") {
      location = kv.value();
    } else if (kv.key() == "offset" || kv.key() == "length") {
      int64_t v = -1;
      try {
        size_t used = 0;
        v = std::stoll(kv.value(), &used);
        if (used != kv.value().size()) v = -1;
      } catch (const std::exception&) {
        v = -1;
      }
      GRAFT_CHECK(v >= 0, what << ": external data " << kv.key() << " '" << kv.value() << "' is not a byte count");
      (kv.key() == "offset" ? offset : length) = v;
    }
  }
  GRAFT_CHECK(!location.empty(), what << ": external data without a 'location'");
  GRAFT_CHECK(is_safe_relative(location), what << ": external data location '" << location
                                                << "' must be a relative path inside the model's folder");
  GRAFT_CHECK(length < 0 || static_cast<uint64_t>(length) == nbytes,
              what << ": external data length " << length << " bytes, but its dims and type need " << nbytes);
  const std::string path = base_dir + "/" + location;
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  GRAFT_CHECK(f.good(), what << ": cannot open external data file '" << path << "'");
  const auto size = static_cast<uint64_t>(static_cast<int64_t>(f.tellg()));
  GRAFT_CHECK(static_cast<uint64_t>(offset) <= size && nbytes <= size - static_cast<uint64_t>(offset),
              what << ": external data file '" << path << "' has " << size << " bytes; the tensor needs " << nbytes
                   << " at offset " << offset);
  std::string bytes(nbytes, '\0');
  f.seekg(offset);
  f.read(bytes.data(), static_cast<std::streamsize>(nbytes));
  GRAFT_CHECK(f.good() || nbytes == 0, what << ": cannot read external data file '" << path << "'");
  return bytes;
}

// The typed field holding this data type's values, and its length.
int typed_count(const TP& t) {
  switch (t.data_type()) {
    case TP::FLOAT: return t.float_data_size();
    case TP::INT64: return t.int64_data_size();
    case TP::DOUBLE: return t.double_data_size();
    default: return t.int32_data_size();  // int32, uint8, bool, float16, bfloat16
  }
}

}  // namespace

int64_t bounded_numel(const std::vector<int64_t>& dims, int64_t limit, const char* limit_name, bool allow_unknown,
                      std::string& why) {
  int64_t n = 1;
  for (int64_t d : dims) {
    if (d == -1 && allow_unknown) continue;
    if (d < 0) {
      why = "negative dimension " + std::to_string(d) + " in dims " + shape_str(dims);
      return -1;
    }
    if (d != 0 && n > limit / d) {
      why = "dims " + shape_str(dims) + " hold more than the " + std::to_string(limit) + " elements allowed (" +
            limit_name + ")";
      return -1;
    }
    n *= d;
  }
  return n;
}

bool supported_onnx_dtype(int onnx_type) {
  DType d;
  return engine_dtype(onnx_type, &d);
}

const char* onnx_dtype_name(int onnx_type) {
  switch (onnx_type) {
    case 0: return "UNDEFINED";
    case 1: return "FLOAT";
    case 2: return "UINT8";
    case 3: return "INT8";
    case 4: return "UINT16";
    case 5: return "INT16";
    case 6: return "INT32";
    case 7: return "INT64";
    case 8: return "STRING";
    case 9: return "BOOL";
    case 10: return "FLOAT16";
    case 11: return "DOUBLE";
    case 12: return "UINT32";
    case 13: return "UINT64";
    case 14: return "COMPLEX64";
    case 15: return "COMPLEX128";
    case 16: return "BFLOAT16";
    case 17: return "FLOAT8E4M3FN";
    case 18: return "FLOAT8E4M3FNUZ";
    case 19: return "FLOAT8E5M2";
    case 20: return "FLOAT8E5M2FNUZ";
    case 21: return "UINT4";
    case 22: return "INT4";
    case 23: return "FLOAT4E2M1";
    case 24: return "FLOAT8E8M0";
    case 25: return "UINT2";
    case 26: return "INT2";
    default: return "UNKNOWN";
  }
}

Tensor from_tensor_proto(const TP& t, const std::string& base_dir, const std::string& what) {
  const int type = t.data_type();
  const bool is_double = type == TP::DOUBLE;  // held as f32 (documented in the header)
  DType dtype = DType::f32;
  GRAFT_CHECK(is_double || engine_dtype(type, &dtype),
              what << ": unsupported dtype " << onnx_dtype_name(type) << " (" << type
                   << "); Graft holds FLOAT, FLOAT16, BFLOAT16, INT32, INT64, UINT8, BOOL (DOUBLE as FLOAT)");
  GRAFT_CHECK(!t.has_segment(), what << ": segmented tensors are not supported");
  const int64_t numel = checked_numel(t, what);
  const size_t src_size = is_double ? 8 : dtype_size(dtype);
  GRAFT_CHECK(numel <= std::numeric_limits<int64_t>::max() / 8, what << ": too many elements (" << numel << ")");
  const uint64_t nbytes = static_cast<uint64_t>(numel) * src_size;
  const Shape shape(t.dims().begin(), t.dims().end());

  const bool external = t.data_location() == TP::EXTERNAL;
  std::string external_bytes;
  const std::string* raw = nullptr;
  if (external) {
    GRAFT_CHECK(!t.has_raw_data() && typed_count(t) == 0, what << ": external data and inline data both present");
    external_bytes = read_external(t, base_dir, what, nbytes);
    raw = &external_bytes;
  } else if (t.has_raw_data()) {
    GRAFT_CHECK(typed_count(t) == 0, what << ": both raw_data and typed data present");
    GRAFT_CHECK(t.raw_data().size() == nbytes, what << ": raw_data has " << t.raw_data().size() << " bytes; dims "
                                                    << shape_str(shape) << " of " << onnx_dtype_name(type) << " need "
                                                    << nbytes);
    raw = &t.raw_data();
  } else {
    GRAFT_CHECK(typed_count(t) == numel, what << ": " << typed_count(t) << " values for dims " << shape_str(shape)
                                              << " (" << numel << " elements)");
  }

  // From here on the data present matches the declared size.
  Tensor out = Tensor::empty(shape, dtype);
  if (numel == 0) return out;
  char* dst = static_cast<char*>(out.raw_data());
  if (raw != nullptr) {
    // Little-endian in the file, as on every machine Graft runs on.
    if (is_double) {
      float* d = out.data<float>();
      for (int64_t i = 0; i < numel; ++i) {
        double v;
        std::memcpy(&v, raw->data() + i * 8, 8);
        d[i] = static_cast<float>(v);
      }
    } else if (dtype == DType::boolean) {
      for (int64_t i = 0; i < numel; ++i) dst[i] = (*raw)[static_cast<size_t>(i)] != 0 ? 1 : 0;
    } else {
      std::memcpy(dst, raw->data(), nbytes);
    }
    return out;
  }
  switch (type) {
    case TP::FLOAT: std::memcpy(dst, t.float_data().data(), nbytes); break;
    case TP::DOUBLE: {
      float* d = out.data<float>();
      for (int64_t i = 0; i < numel; ++i) d[i] = static_cast<float>(t.double_data(static_cast<int>(i)));
      break;
    }
    case TP::INT64: std::memcpy(dst, t.int64_data().data(), nbytes); break;
    case TP::INT32: std::memcpy(dst, t.int32_data().data(), nbytes); break;
    case TP::UINT8:
      for (int64_t i = 0; i < numel; ++i) {
        const int32_t v = t.int32_data(static_cast<int>(i));
        GRAFT_CHECK(v >= 0 && v <= 255, what << ": UINT8 value " << v << " out of range");
        out.data<uint8_t>()[i] = static_cast<uint8_t>(v);
      }
      break;
    case TP::BOOL:
      for (int64_t i = 0; i < numel; ++i) out.data<uint8_t>()[i] = t.int32_data(static_cast<int>(i)) != 0 ? 1 : 0;
      break;
    case TP::FLOAT16:
    case TP::BFLOAT16:  // the 16 bits of each value, in int32_data
      for (int64_t i = 0; i < numel; ++i)
        out.data<uint16_t>()[i] = static_cast<uint16_t>(t.int32_data(static_cast<int>(i)) & 0xffff);
      break;
    default: GRAFT_FAIL(what << ": unsupported dtype " << onnx_dtype_name(type));
  }
  return out;
}

void to_tensor_proto(const Tensor& t, const std::string& name, TP* out) {
  GRAFT_CHECK(out != nullptr, "to_tensor_proto: null output for '" << name << "'");
  out->Clear();
  out->set_name(name);
  out->set_data_type(onnx_type_of(t.dtype()));
  for (int64_t d : t.shape()) out->add_dims(d);
  Tensor c = t.detach();
  if (!c.device().is_cpu()) c = c.to(Device::cpu());
  c = c.contiguous();
  out->set_raw_data(std::string(static_cast<const char*>(c.raw_data()), c.nbytes()));
}

Tensor read_tensor_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  GRAFT_CHECK(f.good(), "cannot open tensor file '" << path << "'");
  std::stringstream ss;
  ss << f.rdbuf();
  TP t;
  GRAFT_CHECK(t.ParseFromString(ss.str()), "'" << path << "' is not a valid TensorProto file (truncated or corrupt)");
  const size_t slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
  return from_tensor_proto(t, dir, "'" + path + "'" + (t.name().empty() ? "" : " (tensor '" + t.name() + "')"));
}

void write_tensor_file(const std::string& path, const Tensor& t, const std::string& name) {
  TP proto;
  to_tensor_proto(t, name, &proto);
  std::string bytes;
  GRAFT_CHECK(proto.SerializeToString(&bytes), "cannot serialize tensor '" << name << "' for '" << path << "'");
  data::AtomicFile f(path);
  f.write(bytes.data(), bytes.size());
  f.commit();
}

}  // namespace graft::importer
