// Every input in fuzz_regressions/ (hand-made hostile files and anything the
// bounded fuzz run in CI ever found) loads or is refused with a graft::Error
// that names the file: never a crash, another exception type or a huge
// allocation.
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/core/error.h"
#include "gtest/gtest.h"
#include "importers/onnx/model.h"

namespace graft {
namespace {

namespace fs = std::filesystem;

TEST(OnnxFuzzRegressions, EveryInputLoadsOrIsAClearError) {
  const fs::path dir = fs::path(__FILE__).parent_path() / "fuzz_regressions";
  ASSERT_TRUE(fs::is_directory(dir)) << dir;
  int files = 0, refused = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() != ".onnx") continue;
    ++files;
    const std::string name = entry.path().filename().string();
    importer::LoadOptions opt;
    opt.max_tensor_elements = int64_t(1) << 24;
    try {
      auto model = importer::load_onnx(entry.path().string(), opt);
      EXPECT_NE(model, nullptr) << name;
    } catch (const Error& e) {
      ++refused;
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << name << ": " << e.what();
    }
    // From bytes too (the fuzzer's entry point).
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream bytes;
    bytes << in.rdbuf();
    try {
      importer::load_onnx_bytes(bytes.str(), name, "/nonexistent-graft-dir", opt);
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << name << ": " << e.what();
    }
  }
  EXPECT_GE(files, 7);
  // Every hand-made file here is hostile: each must be refused.
  EXPECT_EQ(refused, files);
}

}  // namespace
}  // namespace graft
