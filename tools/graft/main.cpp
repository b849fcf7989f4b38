// graft: the command-line tool.
//
//   graft info MODEL.onnx
//   graft run MODEL.onnx --input in_0.pb [--input in_1.pb ...] --output-dir DIR
//   graft export IN.onnx OUT.onnx [--fold-bn] [--opset N]
//
// Exit codes: 0 success, 1 an error while doing the work (its message on
// stderr), 2 bad arguments.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "engine/autograd/grad_mode.h"
#include "engine/core/error.h"
#include "importers/onnx/export.h"
#include "importers/onnx/model.h"
#include "importers/onnx/tensor_proto.h"

namespace fs = std::filesystem;
using namespace graft;

namespace {

std::string dims_str(const importer::ValueInfo& v) {
  if (!v.rank_known) return "[?]";
  std::string s = "[";
  for (size_t i = 0; i < v.shape.size(); ++i) s += (i ? ", " : "") + (v.shape[i] < 0 ? std::string("?") : std::to_string(v.shape[i]));
  return s + "]";
}

void print_values(const char* title, const std::vector<importer::ValueInfo>& values) {
  std::printf("%s:\n", title);
  for (const auto& v : values)
    std::printf("  %-24s %-8s %s\n", v.name.c_str(), importer::onnx_dtype_name(v.onnx_type), dims_str(v).c_str());
}

int info(const std::string& path) {
  importer::LoadOptions opt;
  opt.allow_unsupported_ops = true;
  auto m = importer::load_onnx(path, opt);
  std::printf("model:    %s\n", path.c_str());
  std::printf("IR:       %lld   opset: %d   producer: %s\n", static_cast<long long>(m->ir_version()), m->opset(),
              m->producer().empty() ? "-" : m->producer().c_str());
  print_values("inputs", m->inputs());
  print_values("outputs", m->outputs());
  const auto unsupported = m->unsupported_op_types();
  std::printf("operators (%zu types):\n", m->op_type_counts().size());
  for (const auto& [op, n] : m->op_type_counts()) {
    const bool missing = std::find(unsupported.begin(), unsupported.end(), op) != unsupported.end();
    std::printf("  %-24s %5d%s\n", op.c_str(), n, missing ? "   (not supported by Graft)" : "");
  }
  if (m->fused_attention_count() > 0)
    std::printf("attention patterns run as one fused op: %d\n", m->fused_attention_count());
  std::printf("parameters: %lld in %zu tensors; buffers: %zu tensors\n", static_cast<long long>(m->num_parameters()),
              m->named_parameters().size(), m->named_buffers().size());
  if (!unsupported.empty()) std::printf("this model cannot run yet: %zu operator type(s) unsupported\n", unsupported.size());
  return 0;
}

int run(const std::string& path, const std::vector<std::string>& input_files, const std::string& out_dir) {
  auto m = importer::load_onnx(path);
  std::vector<Tensor> inputs;
  for (const auto& f : input_files) inputs.push_back(importer::read_tensor_file(f));
  GRAFT_CHECK(inputs.size() == m->inputs().size(), path << " takes " << m->inputs().size() << " input(s); "
                                                        << inputs.size() << " --input file(s) given");
  std::vector<Tensor> outputs;
  {
    NoGradGuard no_grad;
    outputs = m->run(inputs);
  }
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  GRAFT_CHECK(fs::is_directory(out_dir), "cannot create output folder '" << out_dir << "'" << (ec ? ": " + ec.message() : ""));
  for (size_t i = 0; i < outputs.size(); ++i) {
    const std::string file = (fs::path(out_dir) / ("output_" + std::to_string(i) + ".pb")).string();
    importer::write_tensor_file(file, outputs[i], m->outputs()[i].name);
    std::printf("%s  %s %s\n", file.c_str(), m->outputs()[i].name.c_str(), outputs[i].str().c_str());
  }
  return 0;
}

// Re-export: the graph as Graft runs it (constants folded, dropout as
// Identity), optionally with batch norm folded into the convolutions.
int export_model(const std::string& in, const std::string& out, bool fold_bn, int opset) {
  auto m = importer::load_onnx(in);
  importer::ExportOptions opt;
  opt.fold_batch_norm = fold_bn;
  opt.opset = opset > 0 ? opset : m->opset();
  importer::save_onnx(*m, {}, out, opt);
  auto check = importer::load_onnx(out);  // what was written loads back
  std::printf("%s: opset %d, %zu operator types, %lld parameters in %zu tensors%s\n", out.c_str(), check->opset(),
              check->op_type_counts().size(), static_cast<long long>(check->num_parameters()),
              check->named_parameters().size(), fold_bn ? " (batch norm folded)" : "");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"graft: transfer learning engine (ONNX import, run, fine-tune)"};
  app.require_subcommand(1);

  std::string model;
  auto* info_cmd = app.add_subcommand("info", "Show a model's inputs, outputs, operators and parameter count");
  info_cmd->add_option("model", model, "ONNX model file")->required()->check(CLI::ExistingFile);

  std::string run_model, out_dir;
  std::vector<std::string> input_files;
  auto* run_cmd = app.add_subcommand("run", "Run a model on TensorProto inputs and write output_N.pb files");
  run_cmd->add_option("model", run_model, "ONNX model file")->required()->check(CLI::ExistingFile);
  run_cmd->add_option("--input,-i", input_files, "input TensorProto file (repeat, in graph-input order)")
      ->check(CLI::ExistingFile);
  run_cmd->add_option("--output-dir,-o", out_dir, "folder for output_0.pb, output_1.pb, ...")->required();

  std::string export_in, export_out;
  bool fold_bn = false;
  int opset = 0;
  auto* export_cmd = app.add_subcommand("export", "Write a model back out as ONNX (constants folded, optionally batch norm)");
  export_cmd->add_option("model", export_in, "ONNX model file")->required()->check(CLI::ExistingFile);
  export_cmd->add_option("output", export_out, "ONNX file to write")->required();
  export_cmd->add_flag("--fold-bn", fold_bn, "fold BatchNormalization into the preceding Conv");
  export_cmd->add_option("--opset", opset, "operator set to write (default: the model's own)")->check(CLI::Range(7, 24));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);  // prints help or the error
    return code == 0 ? 0 : 2;
  }
  try {
    if (*info_cmd) return info(model);
    if (*run_cmd) return run(run_model, input_files, out_dir);
    if (*export_cmd) return export_model(export_in, export_out, fold_bn, opset);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "graft: %s\n", e.what());
    return 1;
  }
  return 2;
}
