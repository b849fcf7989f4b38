// Export: Graft models (imported, cut, with a new head, fine-tuned; or built
// from nn layers) written back to ONNX and read again by Graft's own loader
// give the in-memory model's outputs, with and without batch-norm folding.
// (onnxruntime's side: the files OnnxExport.WritesOnnxruntimeCheckFiles leaves
// in the build tree, checked by tools/onnx/check_export.py.)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include <unistd.h>

#include "engine/autograd/grad_mode.h"
#include "engine/nn/layers.h"
#include "engine/ops/ops.h"
#include "engine/optim/optimizer.h"
#include "gtest/gtest.h"
#include "importers/onnx/export.h"
#include "importers/onnx/model.h"
#include "importers/onnx/tensor_proto.h"
#include "onnx/onnx_pb.h"
#include "models/squeezenet.h"
#include "tests/support/reference.h"
#include "tools/model_emitters.h"

namespace graft {
namespace {

namespace fs = std::filesystem;
using importer::ExportOptions;

// max |a - b| / max |b|: the error relative to the output's scale.
double max_rel_error(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  const std::vector<float> x = a.to_vector(), y = b.to_vector();
  double diff = 0, scale = 0;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
    diff = std::max(diff, std::fabs(static_cast<double>(x[i]) - y[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(y[i])));
  }
  return diff / std::max(scale, 1e-30);
}

Tensor eval_forward(nn::Module& m, const Tensor& x) {
  NoGradGuard ng;
  const bool was = m.is_training();
  m.eval();
  Tensor y = m.forward(x);
  m.train(was);
  return y;
}

// Exports, loads the bytes back with Graft's loader, and returns that model.
std::shared_ptr<importer::OnnxModel> round_trip(const nn::Module& m, const std::vector<int64_t>& shape,
                                                const ExportOptions& opt = {}) {
  return importer::load_onnx_bytes(importer::export_onnx_bytes(m, shape, opt), "exported.onnx");
}

bool has_op(const importer::OnnxModel& m, const std::string& op) {
  const auto ops = m.op_types();
  return std::find(ops.begin(), ops.end(), op) != ops.end();
}

std::set<std::string> names_of(const nn::NamedTensors& ts) {
  std::set<std::string> out;
  for (const auto& [n, t] : ts) out.insert(n);
  return out;
}

// A few SGD steps on random targets; returns the losses.
std::vector<double> train_steps(nn::Module& model, const std::vector<Tensor>& params, const Tensor& x, int64_t classes,
                                int steps, double lr = 0.05) {
  Generator gen(5);
  std::vector<int64_t> labels;
  for (int64_t i = 0; i < x.size(0); ++i) labels.push_back(i % classes);
  Tensor y = Tensor::from_vector_i64(labels, {x.size(0)});
  optim::SGD opt(params, optim::SgdOptions{lr, 0.9});
  model.train();
  std::vector<double> losses;
  for (int s = 0; s < steps; ++s) {
    opt.zero_grad();
    Tensor loss = cross_entropy(model.forward(x), y);
    loss.backward();
    opt.step();
    losses.push_back(loss.item());
  }
  model.eval();
  return losses;
}

// conv -> BN -> relu -> pool -> conv (no bias) -> BN -> silu -> global pool -> linear.
std::shared_ptr<nn::Sequential> small_cnn(Generator& gen) {
  auto net = std::make_shared<nn::Sequential>();
  net->push_back(std::make_shared<nn::Conv2d>(3, 8, 3, Conv2dOptions::same_padding(1), true, gen));
  net->push_back(std::make_shared<nn::BatchNorm2d>(8));
  net->push_back(std::make_shared<nn::Act>(nn::Activation::relu));
  Pool2dOptions p;
  net->push_back(std::make_shared<nn::MaxPool2d>(p));
  Conv2dOptions o;
  o.stride = {2, 1};
  o.padding = {1, 0, 0, 1};
  net->push_back(std::make_shared<nn::Conv2d>(8, 6, 3, o, false, gen));
  net->push_back(std::make_shared<nn::BatchNorm2d>(6));
  net->push_back(std::make_shared<nn::Act>(nn::Activation::silu));
  net->push_back(std::make_shared<nn::Dropout>(0.3, gen));
  net->push_back(std::make_shared<nn::GlobalAvgPool2d>());
  net->push_back(std::make_shared<nn::Linear>(6, 4, true, gen));
  return net;
}

// The small CNN after training steps in train mode: its BN running
// statistics and weights have moved away from their initial values.
std::shared_ptr<nn::Sequential> trained_small_cnn() {
  Generator gen = testing::test_generator();
  auto net = small_cnn(gen);
  Tensor x = Tensor::randn({6, 3, 11, 9}, gen);
  train_steps(*net, net->parameters(), x, 4, 3);
  return net;
}

TEST(OnnxExport, SmallCnnRoundTripsWithAndWithoutBatchNormFolding) {
  auto net = trained_small_cnn();
  Generator gen(17);
  Tensor x = Tensor::randn({2, 3, 11, 9}, gen), x3 = Tensor::randn({3, 3, 11, 9}, gen);
  const Tensor want = eval_forward(*net, x), want3 = eval_forward(*net, x3);
  for (bool fold : {false, true}) {
    ExportOptions opt;
    opt.fold_batch_norm = fold;
    auto back = round_trip(*net, {2, 3, 11, 9}, opt);
    EXPECT_EQ(has_op(*back, "BatchNormalization"), !fold);
    if (!fold) {
      EXPECT_EQ(names_of(back->named_parameters()), names_of(net->named_parameters()));
      EXPECT_EQ(names_of(back->named_buffers()), names_of(net->named_buffers()));
    }
    NoGradGuard ng;
    const double err = max_rel_error(back->forward(x), want);
    const double err3 = max_rel_error(back->forward(x3), want3);  // the batch dimension is symbolic
    EXPECT_LT(err, fold ? 1e-5 : 1e-6) << "fold " << fold;
    EXPECT_LT(err3, fold ? 1e-5 : 1e-6) << "fold " << fold;
    std::printf("small CNN, fold_batch_norm=%d: max relative error %.2e (batch 2), %.2e (batch 3)\n", fold, err, err3);
  }
}

TEST(OnnxExport, NamesAndAStaticBatchOnRequest) {
  auto net = trained_small_cnn();
  ExportOptions opt;
  opt.input_name = "images";
  opt.output_name = "logits";
  opt.dynamic_batch = false;
  auto back = round_trip(*net, {2, 3, 11, 9}, opt);
  ASSERT_EQ(back->inputs().size(), 1u);
  EXPECT_EQ(back->inputs()[0].name, "images");
  EXPECT_EQ(back->outputs()[0].name, "logits");
  EXPECT_EQ(back->inputs()[0].shape, (std::vector<int64_t>{2, 3, 11, 9}));
  EXPECT_EQ(back->outputs()[0].shape, (std::vector<int64_t>{2, 4}));
  opt.dynamic_batch = true;
  EXPECT_EQ(round_trip(*net, {2, 3, 11, 9}, opt)->inputs()[0].shape, (std::vector<int64_t>{-1, 3, 11, 9}));
  // The training flags are as they were: export runs the model in eval mode only for a while.
  net->train();
  (void)importer::export_onnx_bytes(*net, {2, 3, 11, 9});
  for (const auto& [name, child] : net->children()) EXPECT_TRUE(child->is_training()) << name;
}

TEST(OnnxExport, ImportedGraphFoldsItsBatchNormsAndKeepsTrainedValues) {
  // The small CNN written unfolded is an ONNX graph with Conv + BatchNormalization.
  auto net = trained_small_cnn();
  auto imported = round_trip(*net, {2, 3, 11, 9});
  ASSERT_TRUE(has_op(*imported, "BatchNormalization"));
  // Fine-tune the import: the export must carry the new values.
  Generator gen(3);
  Tensor x = Tensor::randn({4, 3, 11, 9}, gen);
  const Tensor before = eval_forward(*imported, x);
  const auto losses = train_steps(*imported, imported->parameters(), x, 4, 2);
  const Tensor want = eval_forward(*imported, x);
  ASSERT_GT(max_rel_error(want, before), 1e-3) << "training did not change the model";
  for (bool fold : {false, true}) {
    ExportOptions opt;
    opt.fold_batch_norm = fold;
    auto back = round_trip(*imported, {}, opt);
    EXPECT_EQ(has_op(*back, "BatchNormalization"), !fold);
    EXPECT_EQ(back->num_parameters() < imported->num_parameters(), fold);
    NoGradGuard ng;
    const double err = max_rel_error(back->forward(x), want);
    EXPECT_LT(err, fold ? 1e-5 : 1e-6);
    std::printf("imported graph re-exported, fold=%d: max relative error %.2e (losses %.3f -> %.3f)\n", fold, err,
                losses.front(), losses.back());
  }
}

TEST(OnnxExport, EveryActivationAndLayerNormAtOpsets13To17) {
  Generator gen = testing::test_generator();
  for (auto kind : {nn::Activation::relu, nn::Activation::relu6, nn::Activation::sigmoid, nn::Activation::silu,
                    nn::Activation::gelu, nn::Activation::hardswish, nn::Activation::tanh}) {
    nn::Sequential net{std::make_shared<nn::Linear>(5, 7, true, gen), std::make_shared<nn::LayerNorm>(7),
                       std::make_shared<nn::Act>(kind), std::make_shared<nn::Linear>(7, 3, false, gen)};
    {
      NoGradGuard ng;  // a LayerNorm that is not the identity
      auto* ln = dynamic_cast<nn::LayerNorm*>(net.children()[1].second.get());
      ln->weight.copy_(Tensor::rand({7}, gen, 0.5f, 1.5f));
      ln->bias.copy_(Tensor::rand({7}, gen, -0.5f, 0.5f));
    }
    Tensor x = Tensor::randn({4, 5}, gen, 0.f, 2.f), x3 = Tensor::randn({2, 3, 5}, gen);
    const Tensor want = eval_forward(net, x), want3 = eval_forward(net, x3);
    for (int opset : {13, 14, 16, 17}) {
      ExportOptions opt;
      opt.opset = opset;
      auto back = round_trip(net, {4, 5}, opt);
      EXPECT_EQ(back->opset(), opset);
      EXPECT_EQ(has_op(*back, "LayerNormalization"), opset >= 17);
      auto back3 = round_trip(net, {2, 3, 5}, opt);  // (B, T, E): MatMul instead of Gemm
      NoGradGuard ng;
      EXPECT_LT(max_rel_error(back->forward(x), want), 1e-5) << "activation " << int(kind) << " opset " << opset;
      EXPECT_LT(max_rel_error(back3->forward(x3), want3), 1e-5) << "activation " << int(kind) << " opset " << opset;
    }
  }
}

// mnist-8 cut after its second pooling (16 x 4 x 4 features), with a new
// 5-class head; backbone and head both take SGD steps.
struct CutMnist {
  std::shared_ptr<nn::Sequential> model;
  Tensor x;
};

CutMnist cut_mnist_with_new_head(const std::string& path) {
  importer::LoadOptions lo;
  lo.outputs = {"Pooling160_Output_0"};
  auto backbone = importer::load_onnx(path, lo);
  Generator gen = testing::test_generator();
  auto model = std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
      backbone, std::make_shared<nn::Flatten>(), std::make_shared<nn::Linear>(256, 5, true, gen)});
  Tensor x = Tensor::rand({1, 1, 28, 28}, gen, 0.f, 255.f);
  train_steps(*model, model->parameters(), x, 5, 2);
  return {model, x};
}

TEST(OnnxExport, Mnist8CutWithANewHeadTrainsAndExports) {
  const std::string path = testing::shared_path("pretrained/mnist-8/model.onnx");
  if (path.empty()) GTEST_SKIP() << "shared mnist-8 is not present";
  // The cut drops the old classifier: its parameters are not registered.
  importer::LoadOptions lo;
  lo.outputs = {"Pooling160_Output_0"};
  auto backbone = importer::load_onnx(path, lo);
  EXPECT_EQ(backbone->named_parameters().size(), 4u);
  EXPECT_FALSE(has_op(*backbone, "MatMul"));

  auto [model, x] = cut_mnist_with_new_head(path);
  const Tensor want = eval_forward(*model, x);
  for (int opset : {13, 17}) {  // the file's opset 8 carried up (the layers need 13 or later)
    ExportOptions opt;
    opt.opset = opset;
    auto back = round_trip(*model, {1, 1, 28, 28}, opt);
    EXPECT_EQ(names_of(back->named_parameters()), names_of(model->named_parameters()));
    NoGradGuard ng;
    const double err = max_rel_error(back->forward(x), want);
    EXPECT_LT(err, 1e-6) << "opset " << opset;
    std::printf("mnist-8 cut + new head, opset %d: max relative error %.2e\n", opset, err);
  }
  // The whole file as it is, at its own opset 8.
  auto whole = importer::load_onnx(path);
  ExportOptions opt8;
  opt8.opset = 8;
  auto back8 = round_trip(*whole, {}, opt8);
  EXPECT_EQ(back8->opset(), 8);
  EXPECT_EQ(back8->inputs()[0].shape, whole->inputs()[0].shape);
  {
    NoGradGuard ng;
    EXPECT_LT(max_rel_error(back8->forward(x), whole->forward(x)), 1e-6);
  }
  // The backbone's fine-tuned weights are what was written, not the file's.
  auto original = importer::load_onnx(path, lo);
  NoGradGuard ng;
  EXPECT_GT(max_rel_error(eval_forward(*original, x), eval_forward(*model->children()[0].second, x)), 1e-4);
}

TEST(OnnxExport, SqueezeNetFixtureCutWithANewHead) {
  const std::string path = std::string(GRAFT_FIXTURE_DIR) + "/squeezenet1.1-op13.onnx";
  if (!fs::exists(path)) GTEST_SKIP() << path << " was not generated (bash tools/onnx/make_fixtures.sh BUILD_DIR)";
  importer::LoadOptions lo;
  lo.outputs = {"fire9_concat"};
  auto backbone = importer::load_onnx(path, lo);
  EXPECT_EQ(backbone->named_parameters().size(), 50u);  // conv25 (the old classifier) is gone
  for (auto& p : backbone->parameters()) p.set_requires_grad(false);
  Generator gen = testing::test_generator();
  auto head = std::make_shared<nn::Linear>(512, 3, true, gen);
  nn::Sequential model{backbone, std::make_shared<nn::GlobalAvgPool2d>(), head};
  Tensor x = Tensor::rand({2, 3, 224, 224}, gen, -2.f, 2.f);
  const auto losses = train_steps(model, head->parameters(), x, 3, 3, 1e-4);
  const Tensor want = eval_forward(model, x);
  auto back = round_trip(model, {1, 3, 224, 224});  // exported at batch 1, run at 2: the batch stays symbolic
  NoGradGuard ng;
  const double err = max_rel_error(back->forward(x), want);
  EXPECT_LT(err, 1e-5);
  std::printf("SqueezeNet cut + new head: max relative error %.2e (losses %.3f -> %.3f)\n", err, losses.front(),
              losses.back());
}

TEST(OnnxExport, NativeSqueezeNetThroughItsModelEmitters) {
  Generator gen = testing::test_generator();
  models::SqueezeNet net(10, gen);
  Tensor x = Tensor::rand({1, 3, 64, 64}, gen, -2.f, 2.f);
  // Without the emitters for its blocks: errors naming the module.
  EXPECT_TRUE(testing::throws_naming([&] { importer::export_onnx_bytes(net, x.shape()); },
                                     {"the root module", "graft::models::SqueezeNet"}));
  EXPECT_TRUE(testing::throws_naming([&] { importer::export_onnx_bytes(*net.backbone, x.shape()); },
                                     {"module '3'", "graft::models::Fire"}));
  ExportOptions opt;
  opt.emitters = tools::model_emitters();
  auto back = round_trip(net, x.shape(), opt);
  EXPECT_EQ(names_of(back->named_parameters()), names_of(net.named_parameters()));
  NoGradGuard ng;
  const double err = max_rel_error(back->forward(x), eval_forward(net, x));
  EXPECT_LT(err, 1e-5);
  std::printf("native SqueezeNet 1.1 (10 classes, 64x64): max relative error %.2e\n", err);
}

TEST(OnnxExport, UnsupportedModuleIsAnErrorNamingItAndWritesNothing) {
  Generator gen = testing::test_generator();
  nn::Sequential net{std::make_shared<nn::Linear>(4, 4, true, gen),
                     std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
                         std::make_shared<nn::Flatten>(), std::make_shared<nn::MultiheadAttention>(4, 2, true, gen)})};
  const fs::path dir = fs::temp_directory_path() / ("graft_export_test_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string file = (dir / "bad.onnx").string();
  EXPECT_TRUE(testing::throws_naming([&] { importer::save_onnx(net, {2, 3, 4}, file); },
                                     {"module '1.1'", "MultiheadAttention"}));
  EXPECT_TRUE(fs::is_empty(dir));
  // Unwritable destinations: a missing folder, and a path that is a folder.
  EXPECT_TRUE(testing::throws_naming(
      [&] { importer::save_onnx(nn::Flatten(), {2, 3}, (dir / "missing" / "x.onnx").string()); }, {"missing"}));
  fs::create_directories(dir / "taken.onnx");
  EXPECT_THROW(importer::save_onnx(nn::Flatten(), {2, 3}, (dir / "taken.onnx").string()), Error);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);  // only the folder itself
  // An input the model cannot take fails before writing, too.
  EXPECT_THROW(importer::save_onnx(nn::Linear(4, 2), {2, 5}, file), Error);
  EXPECT_FALSE(fs::exists(file));
  fs::remove_all(dir);
}

TEST(OnnxExport, ImportedNodeThatChangesMeaningAcrossOpsetsIsAnError) {
  // Softmax changed its axis rule at opset 13: an opset-11 Softmax cannot be
  // written as an opset-17 one.
  ::onnx::ModelProto mp;
  mp.set_ir_version(7);
  mp.add_opset_import()->set_version(11);
  auto* g = mp.mutable_graph();
  auto* n = g->add_node();
  n->set_op_type("Softmax");
  n->add_input("x");
  n->add_output("y");
  for (auto [list, name] : {std::pair{g->add_input(), "x"}, std::pair{g->add_output(), "y"}}) {
    list->set_name(name);
    auto* tt = list->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(::onnx::TensorProto::FLOAT);
    for (int64_t d : {2, 3}) tt->mutable_shape()->add_dim()->set_dim_value(d);
  }
  auto m = importer::load_onnx_bytes(mp.SerializeAsString(), "softmax11.onnx");
  ExportOptions opt;
  opt.opset = 17;
  EXPECT_TRUE(testing::throws_naming([&] { importer::export_onnx_bytes(*m, {}, opt); }, {"Softmax", "opset 11"}));
  opt.opset = 11;
  auto back = importer::load_onnx_bytes(importer::export_onnx_bytes(*m, {}, opt), "back.onnx");
  Generator gen(1);
  Tensor x = Tensor::randn({2, 3}, gen);
  NoGradGuard ng;
  EXPECT_LT(max_rel_error(back->forward(x), m->forward(x)), 1e-7);
}

TEST(OnnxExport, CutAtAnUnknownValueIsAnError) {
  const std::string path = testing::shared_path("pretrained/mnist-8/model.onnx");
  if (path.empty()) GTEST_SKIP() << "shared mnist-8 is not present";
  importer::LoadOptions lo;
  lo.outputs = {"no_such_value"};
  EXPECT_TRUE(testing::throws_naming([&] { importer::load_onnx(path, lo); }, {"no_such_value", "LoadOptions::outputs"}));
}

// Files for tools/onnx/check_export.py (CTest: onnx_export_onnxruntime):
// NAME.onnx, NAME.input.pb (the input) and NAME.output.pb (Graft's output).
// Run by the CTest entry onnx_export_write_files (which sets
// GRAFT_WRITE_EXPORT_FILES), not a second time as a discovered test.
TEST(OnnxExport, WritesOnnxruntimeCheckFiles) {
  if (!std::getenv("GRAFT_WRITE_EXPORT_FILES")) GTEST_SKIP() << "run by the CTest entry onnx_export_write_files";
  const fs::path dir = fs::path(GRAFT_FIXTURE_DIR) / "export";
  fs::create_directories(dir);
  auto write = [&](const std::string& name, nn::Module& m, const Tensor& x, const ExportOptions& opt) {
    importer::save_onnx(m, x.shape(), (dir / (name + ".onnx")).string(), opt);
    importer::write_tensor_file((dir / (name + ".input.pb")).string(), x, "input");
    importer::write_tensor_file((dir / (name + ".output.pb")).string(), eval_forward(m, x), "output");
  };
  Generator gen(23);
  auto cnn = trained_small_cnn();
  Tensor x = Tensor::randn({3, 3, 11, 9}, gen);
  for (bool fold : {false, true}) {
    ExportOptions opt;
    opt.fold_batch_norm = fold;
    write(fold ? "small_cnn_folded" : "small_cnn", *cnn, x, opt);
  }
  for (int opset : {13, 17}) {
    const std::pair<nn::Activation, const char*> acts[] = {
        {nn::Activation::relu6, "relu6"}, {nn::Activation::silu, "silu"}, {nn::Activation::gelu, "gelu"},
        {nn::Activation::hardswish, "hardswish"}};
    for (auto [kind, act_name] : acts) {
      nn::Sequential net{std::make_shared<nn::Linear>(5, 7, true, gen), std::make_shared<nn::LayerNorm>(7),
                         std::make_shared<nn::Act>(kind), std::make_shared<nn::Linear>(7, 3, true, gen)};
      ExportOptions opt;
      opt.opset = opset;
      write(std::string("layernorm_") + act_name + "_op" + std::to_string(opset), net, Tensor::randn({2, 4, 5}, gen), opt);
    }
  }
  {  // an imported graph (the small CNN written unfolded), fine-tuned, its batch norms folded
    auto imported = round_trip(*cnn, {2, 3, 11, 9});
    train_steps(*imported, imported->parameters(), x, 4, 2);
    ExportOptions opt;
    opt.fold_batch_norm = true;
    importer::save_onnx(*imported, {}, (dir / "small_cnn_imported_folded.onnx").string(), opt);
    importer::write_tensor_file((dir / "small_cnn_imported_folded.input.pb").string(), x, "input");
    importer::write_tensor_file((dir / "small_cnn_imported_folded.output.pb").string(), eval_forward(*imported, x),
                                "output");
  }
  const std::string mnist = testing::shared_path("pretrained/mnist-8/model.onnx");
  if (!mnist.empty()) {
    // The whole file re-exported as it is (opset 8), as `graft export` does.
    auto whole = importer::load_onnx(mnist);
    ExportOptions opt8;
    opt8.opset = whole->opset();
    const std::string set = testing::shared_path("pretrained/mnist-8/test_data_set_0/input_0.pb");
    Tensor in = importer::read_tensor_file(set);
    importer::save_onnx(*whole, {}, (dir / "mnist8_whole.onnx").string(), opt8);
    importer::write_tensor_file((dir / "mnist8_whole.input.pb").string(), in, "Input3");
    importer::write_tensor_file((dir / "mnist8_whole.output.pb").string(), eval_forward(*whole, in), "Plus214_Output_0");
    auto [model, mx] = cut_mnist_with_new_head(mnist);
    ExportOptions opt;
    opt.opset = 13;
    write("mnist_cut_head", *model, mx, opt);
  }
  {
    models::SqueezeNet native(10, gen);
    ExportOptions opt;
    opt.emitters = tools::model_emitters();
    opt.fold_batch_norm = true;  // nothing to fold: the option must not disturb it
    write("squeezenet_native", native, Tensor::rand({2, 3, 64, 64}, gen, -2.f, 2.f), opt);
  }
  const std::string sq = std::string(GRAFT_FIXTURE_DIR) + "/squeezenet1.1-op13.onnx";
  if (fs::exists(sq)) {
    importer::LoadOptions lo;
    lo.outputs = {"fire9_concat"};
    nn::Sequential model{importer::load_onnx(sq, lo), std::make_shared<nn::GlobalAvgPool2d>(),
                         std::make_shared<nn::Linear>(512, 3, true, gen)};
    write("squeezenet_cut_head", model, Tensor::rand({1, 3, 224, 224}, gen, -2.f, 2.f), {});
  }
}

}  // namespace
}  // namespace graft
