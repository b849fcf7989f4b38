// ONNX export of the native model builders (models/): the emitters for their
// own block types, for importer::ExportOptions::emitters. Header-only: the
// tools and tests see both layers (models/ and importers/ do not see each
// other).
#pragma once

#include <vector>

#include "importers/onnx/export.h"
#include "models/squeezenet.h"
#include "onnx/onnx_pb.h"

namespace graft::tools {

// SqueezeNet 1.1: the network is its backbone then its head; a Fire block is
// squeeze 1x1 -> relu -> [expand 1x1 -> relu, expand 3x3 -> relu] -> concat.
inline std::string emit_squeezenet_block(importer::GraphWriter& g, const nn::Module& m, const std::string& path,
                                         const std::string& x) {
  using importer::param_name;
  if (const auto* net = dynamic_cast<const models::SqueezeNet*>(&m)) {
    const std::string f = g.emit(*net->backbone, param_name(path, "features"), x);
    return g.emit(*net->head, param_name(path, "classifier"), f);
  }
  const auto* fire = dynamic_cast<const models::Fire*>(&m);
  if (!fire) return "";
  auto relu = [&](const std::string& in, const std::string& what) {
    return g.node("Relu", {in}, {g.fresh(param_name(path, what))}).output(0);
  };
  const std::string s = relu(g.emit(*fire->squeeze, param_name(path, "squeeze"), x), "squeeze_relu");
  const Tensor s_sample = g.sample();
  const std::string a = relu(g.emit(*fire->expand1x1, param_name(path, "expand1x1"), s), "expand1x1_relu");
  g.set_sample(s_sample);
  const std::string b = relu(g.emit(*fire->expand3x3, param_name(path, "expand3x3"), s), "expand3x3_relu");
  auto& cat = g.node("Concat", {a, b}, {g.fresh(param_name(path, "out"))});
  importer::GraphWriter::set_attr(cat, "axis", int64_t{1});
  return cat.output(0);
}

inline std::vector<importer::ModuleEmitter> model_emitters() { return {emit_squeezenet_block}; }

}  // namespace graft::tools
