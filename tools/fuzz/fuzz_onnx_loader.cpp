// libFuzzer target for the ONNX loader: any bytes either load or throw
// graft::Error; a crash, a sanitizer report, a hang or another exception type
// is a bug. Build and run: see tools/CMakeLists.txt (GRAFT_FUZZ=ON, clang).
#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/core/error.h"
#include "importers/onnx/model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  graft::importer::LoadOptions opt;
  opt.max_tensor_elements = int64_t(1) << 24;  // keep each run's memory small
  try {
    // A folder that does not exist: external data can never be read.
    auto m = graft::importer::load_onnx_bytes(std::string(reinterpret_cast<const char*>(data), size), "fuzz.onnx",
                                              "/nonexistent-graft-fuzz", opt);
    (void)m;
  } catch (const graft::Error&) {
  }
  return 0;
}
