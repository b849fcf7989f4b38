// ONNX conformance runner: runs every <test>/model.onnx on each
// test_data_set_*/input_*.pb and compares with output_*.pb.
//
//   onnx_conformance [--verbose] [--filter SUBSTRING] [FOLDER...]
//
// A FOLDER is a test (it holds model.onnx) or a folder of tests. Default:
// ../shared/onnx-node-tests and ../shared/onnx-extra-tests/* (relative to the
// working directory, else to the source tree).
//
// A case is one (test, data set). It passes when every output has the
// expected dtype and shape and its values match: f32 within
// |got - want| <= 1e-5 + 1e-4 |want| (f16/bf16: 1e-3 + 1e-3 |want|, resp.
// 1e-2), integers and bools exactly, NaN matching NaN. It is SKIPPED when the
// error says Graft does not support something (an operator, an opset, a dtype,
// a domain, an attribute value): the reason is printed. Anything else — a wrong
// value, a shape or dtype mismatch, an error on a supported case — FAILS.
// Exit code: 1 when any case failed, 2 on bad arguments, else 0.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "engine/autograd/grad_mode.h"
#include "engine/core/error.h"
#include "engine/core/tensor.h"
#include "importers/onnx/model.h"
#include "importers/onnx/tensor_proto.h"

namespace fs = std::filesystem;
using namespace graft;

namespace {

bool is_unsupported(const std::string& msg) {
  return msg.find("unsupported") != std::string::npos || msg.find("not supported") != std::string::npos;
}

// The reason for a skip: the error without the model's path; an operator
// list ("unsupported operators at opset 13:\n  Foo: 2 nodes ...") shortened
// to the operator names.
std::string reason_of(const std::string& full, const std::string& path) {
  std::string msg = full;
  const size_t loc = msg.rfind(" (");  // the source location GRAFT_CHECK appends
  if (loc != std::string::npos && msg.back() == ')' && msg.find(".cpp:", loc) != std::string::npos) msg.resize(loc);
  std::string m = msg.rfind(path + ": ", 0) == 0 ? msg.substr(path.size() + 2) : msg;
  if (!m.empty() && m[0] == '\'' && m.find("': ") != std::string::npos) m = m.substr(m.find("': ") + 3);
  std::string line = m.substr(0, m.find('\n'));
  for (size_t p = m.find('\n'); p != std::string::npos; p = m.find('\n', p + 1)) {
    const size_t start = m.find_first_not_of(' ', p + 1);
    if (start == std::string::npos) break;
    const size_t end = m.find_first_of(":(\n", start);
    std::string op = m.substr(start, end == std::string::npos ? std::string::npos : end - start);
    while (!op.empty() && op.back() == ' ') op.pop_back();
    line += " " + op;
  }
  if (line.size() > 160) line = line.substr(0, 157) + "...";
  return line;
}

// The reason without its opset, for the summary by reason.
std::string group_of(std::string reason) {
  const size_t at = reason.find(" at opset ");
  if (at != std::string::npos) {
    const size_t end = reason.find_first_not_of("0123456789", at + 10);
    reason.erase(at, (end == std::string::npos ? reason.size() : end) - at);
  }
  return reason;
}

std::string first_line(const std::string& s) {
  std::string l = s.substr(0, s.find('\n'));
  return l.size() > 400 ? l.substr(0, 397) + "..." : l;
}

struct Tolerance {
  double rtol, atol;
};

Tolerance tolerance_for(DType t) {
  switch (t) {
    case DType::f32: return {1e-4, 1e-5};
    case DType::f16: return {1e-3, 1e-3};
    case DType::bf16: return {1e-2, 1e-2};
    default: return {0, 0};
  }
}

// Empty when equal; else what differs.
std::string compare(const Tensor& got, const Tensor& want) {
  char buf[256];
  if (got.dtype() != want.dtype())
    return std::string("dtype ") + dtype_name(got.dtype()) + ", expected " + dtype_name(want.dtype());
  if (got.shape() != want.shape()) return "shape " + shape_str(got.shape()) + ", expected " + shape_str(want.shape());
  const Tolerance tol = tolerance_for(want.dtype());
  if (is_floating(want.dtype())) {
    const std::vector<float> a = got.to_vector(), b = want.to_vector();
    double worst = 0, worst_excess = 0;
    int64_t at = -1, bad = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      const double x = a[i], y = b[i];
      if (std::isnan(y) && std::isnan(x)) continue;
      if (std::isinf(y) && x == y) continue;
      const double err = std::isnan(x) || std::isnan(y) ? INFINITY : std::fabs(x - y);
      const double excess = err - (tol.atol + tol.rtol * std::fabs(y));
      if (excess > 0) {
        ++bad;
        if (at < 0 || excess > worst_excess) {
          worst_excess = excess;
          at = static_cast<int64_t>(i);
        }
      }
      if (err > worst) worst = err;
    }
    if (bad == 0) return "";
    std::snprintf(buf, sizeof buf, "%lld of %zu values off; max abs error %.3g; worst at %lld: got %.8g, expected %.8g",
                  static_cast<long long>(bad), a.size(), worst, static_cast<long long>(at), a[static_cast<size_t>(at)],
                  b[static_cast<size_t>(at)]);
    return buf;
  }
  const std::vector<int64_t> a = got.to_vector_i64(), b = want.to_vector_i64();
  int64_t bad = 0, at = -1;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i] != b[i]) {
      if (at < 0) at = static_cast<int64_t>(i);
      ++bad;
    }
  if (bad == 0) return "";
  std::snprintf(buf, sizeof buf, "%lld of %zu values differ; first at %lld: got %lld, expected %lld",
                static_cast<long long>(bad), a.size(), static_cast<long long>(at),
                static_cast<long long>(a[static_cast<size_t>(at)]), static_cast<long long>(b[static_cast<size_t>(at)]));
  return buf;
}

// input_0.pb, input_1.pb, ... in index order.
std::vector<std::string> numbered(const fs::path& dir, const std::string& prefix) {
  std::vector<std::string> out;
  for (int i = 0;; ++i) {
    fs::path p = dir / (prefix + std::to_string(i) + ".pb");
    if (!fs::exists(p)) break;
    out.push_back(p.string());
  }
  return out;
}

struct Counts {
  int passed = 0, failed = 0, skipped = 0;
  std::map<std::string, int> skip_reasons;
};

void run_test(const fs::path& dir, bool verbose, Counts& c) {
  const std::string test = dir.filename().string();
  std::vector<fs::path> sets;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory() && e.path().filename().string().rfind("test_data_set_", 0) == 0) sets.push_back(e.path());
  std::sort(sets.begin(), sets.end());
  if (sets.empty()) {
    std::printf("SKIP %s: no test_data_set_* folder\n", test.c_str());
    ++c.skipped;
    ++c.skip_reasons["no test data"];
    return;
  }
  auto skip_all = [&](const std::string& reason) {
    std::printf("SKIP %s: %s\n", test.c_str(), reason.c_str());
    c.skipped += static_cast<int>(sets.size());
    c.skip_reasons[group_of(reason)] += static_cast<int>(sets.size());
  };
  std::shared_ptr<importer::OnnxModel> model;
  const std::string path = (dir / "model.onnx").string();
  try {
    model = importer::load_onnx(path);
  } catch (const Error& e) {
    if (is_unsupported(e.what())) return skip_all(reason_of(e.what(), path));
    std::printf("FAIL %s: load: %s\n", test.c_str(), first_line(e.what()).c_str());
    c.failed += static_cast<int>(sets.size());
    return;
  }
  for (const auto& set : sets) {
    const std::string name = test + "/" + set.filename().string();
    try {
      std::vector<Tensor> inputs, expected;
      try {
        for (const auto& p : numbered(set, "input_")) inputs.push_back(importer::read_tensor_file(p));
        for (const auto& p : numbered(set, "output_")) expected.push_back(importer::read_tensor_file(p));
      } catch (const Error& e) {
        if (!is_unsupported(e.what())) throw;
        const std::string r = reason_of(e.what(), path);
        std::printf("SKIP %s: test data: %s\n", name.c_str(), r.c_str());
        ++c.skipped;
        ++c.skip_reasons["test data: " + group_of(r)];
        continue;
      }
      std::vector<Tensor> got;
      try {
        NoGradGuard no_grad;  // inference: record nothing
        got = model->run(inputs);
      } catch (const Error& e) {
        if (!is_unsupported(e.what())) throw;
        const std::string r = reason_of(e.what(), path);
        std::printf("SKIP %s: %s\n", name.c_str(), r.c_str());
        ++c.skipped;
        ++c.skip_reasons[group_of(r)];
        continue;
      }
      std::string problems;
      if (got.size() != expected.size())
        problems = std::to_string(got.size()) + " outputs, expected " + std::to_string(expected.size());
      for (size_t i = 0; problems.empty() && i < got.size(); ++i) {
        const std::string d = compare(got[i], expected[i]);
        if (!d.empty()) problems = "output " + std::to_string(i) + " '" + model->outputs()[i].name + "': " + d;
      }
      if (problems.empty()) {
        ++c.passed;
        if (verbose) std::printf("PASS %s\n", name.c_str());
      } else {
        ++c.failed;
        std::printf("FAIL %s: %s\n", name.c_str(), problems.c_str());
      }
    } catch (const std::exception& e) {
      ++c.failed;
      std::printf("FAIL %s: %s\n", name.c_str(), first_line(e.what()).c_str());
    }
  }
}

void collect_tests(const fs::path& root, std::vector<fs::path>& out) {
  if (fs::exists(root / "model.onnx")) {
    out.push_back(root);
    return;
  }
  std::vector<fs::path> sub;
  for (const auto& e : fs::directory_iterator(root))
    if (e.is_directory() && fs::exists(e.path() / "model.onnx")) sub.push_back(e.path());
  std::sort(sub.begin(), sub.end());
  out.insert(out.end(), sub.begin(), sub.end());
}

std::vector<std::string> default_folders() {
  std::vector<fs::path> roots = {"../shared"};
#ifdef GRAFT_SHARED_DIR
  roots.push_back(GRAFT_SHARED_DIR);
#endif
  for (const auto& r : roots) {
    if (!fs::is_directory(r / "onnx-node-tests")) continue;
    std::vector<std::string> out = {(r / "onnx-node-tests").string()};
    std::vector<std::string> extra;
    if (fs::is_directory(r / "onnx-extra-tests"))
      for (const auto& e : fs::directory_iterator(r / "onnx-extra-tests"))
        if (e.is_directory()) extra.push_back(e.path().string());
    std::sort(extra.begin(), extra.end());
    out.insert(out.end(), extra.begin(), extra.end());
    return out;
  }
  return {};
}

int usage(const char* msg) {
  std::fprintf(stderr, "onnx_conformance: %s\nusage: onnx_conformance [--verbose] [--filter SUBSTRING] [FOLDER...]\n", msg);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  bool verbose = false;
  std::vector<std::string> filters, folders;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--verbose" || a == "-v") {
      verbose = true;
    } else if (a == "--filter") {
      if (i + 1 >= argc) return usage("--filter needs a value");
      filters.push_back(argv[++i]);
    } else if (a == "--help" || a == "-h") {
      usage("runs ONNX node tests");
      return 0;
    } else if (!a.empty() && a[0] == '-') {
      return usage(("unknown option " + a).c_str());
    } else {
      folders.push_back(a);
    }
  }
  if (folders.empty()) folders = default_folders();
  if (folders.empty()) return usage("no folders given and ../shared/onnx-node-tests not found");
  std::vector<fs::path> tests;
  for (const auto& f : folders) {
    if (!fs::is_directory(f)) return usage(("not a folder: " + f).c_str());
    collect_tests(f, tests);
  }
  Counts c;
  for (const auto& t : tests) {
    const std::string name = t.filename().string();
    if (!filters.empty() && std::none_of(filters.begin(), filters.end(),
                                         [&](const std::string& s) { return name.find(s) != std::string::npos; }))
      continue;
    run_test(t, verbose, c);
    std::fflush(stdout);
  }
  if (!c.skip_reasons.empty()) {
    std::vector<std::pair<int, std::string>> by_count;
    for (const auto& [r, n] : c.skip_reasons) by_count.emplace_back(n, r);
    std::sort(by_count.rbegin(), by_count.rend());
    std::printf("\nskipped, by reason:\n");
    for (const auto& [n, r] : by_count) std::printf("  %4d  %s\n", n, r.c_str());
  }
  std::printf("\n%d passed, %d failed, %d skipped\n", c.passed, c.failed, c.skipped);
  return c.failed > 0 ? 1 : 0;
}
