// The main job until the `graft` CLI lands: transfer learning on the CPU with a
// real ImageNet-pretrained network and real photos.
//
//   finetune_example [--data DIR] [--weights DIR] [--epochs N] [--seed S] [--export FILE]
//
// 1. Decodes the flower photos (one folder per class) and splits each class
//    into training and validation images (3:1, seeded).
// 2. Builds SqueezeNet 1.1 natively and loads its pretrained weights (.npy).
// 3. Freezes the backbone (feature extraction): its forward runs once, records
//    nothing, and its pooled features are cached.
// 4. Grafts a new linear head (512 -> classes) and trains it with AdamW.
// 5. Does the same from a randomly initialised backbone, and prints both
//    validation accuracies: what the pretrained weights are worth.
// 6. With --export FILE: writes the pretrained backbone + trained head (the
//    feature standardisation folded into it) as ONNX, and checks that the
//    file, loaded back, gives the same logits.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "engine/autograd/grad_mode.h"
#include "engine/data/image.h"
#include "engine/nn/layers.h"
#include "engine/ops/ops.h"
#include "engine/optim/optimizer.h"
#include "importers/onnx/model.h"
#include "model_emitters.h"
#include "models/squeezenet.h"

namespace fs = std::filesystem;
using namespace graft;

namespace {

struct Args {
  std::string data = "../shared/datasets/flowers12/train";
  std::string weights = "../shared/pretrained/squeezenet1.1/weights";
  int epochs = 60;
  uint64_t seed = 2026;
  std::string export_path;  // empty: no export
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    auto value = [&]() -> std::string {
      GRAFT_CHECK(i + 1 < argc, "finetune_example: " << k << " needs a value");
      return argv[++i];
    };
    if (k == "--data") a.data = value();
    else if (k == "--weights") a.weights = value();
    else if (k == "--epochs") a.epochs = std::stoi(value());
    else if (k == "--seed") a.seed = std::stoull(value());
    else if (k == "--export") a.export_path = value();
    else if (k == "--help" || k == "-h") {
      std::printf("usage: finetune_example [--data DIR] [--weights DIR] [--epochs N] [--seed S] [--export FILE]\n");
      std::exit(0);
    } else {
      GRAFT_FAIL("finetune_example: unknown argument '" << k << "' (see --help)");
    }
  }
  GRAFT_CHECK(a.epochs > 0, "finetune_example: --epochs must be positive");
  return a;
}

struct Sample {
  std::string path;
  int64_t label;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Pooled backbone features (N, 512) for every sample, in batches, no grad.
Tensor extract_features(models::SqueezeNet& net, const std::vector<Tensor>& images) {
  NoGradGuard no_grad;
  net.eval();
  const int64_t n = static_cast<int64_t>(images.size()), bs = 16;
  Tensor feats = Tensor::empty({n, models::SqueezeNet::kFeatureChannels});
  for (int64_t b = 0; b < n; b += bs) {
    const int64_t m = std::min(bs, n - b);
    std::vector<Tensor> chunk(images.begin() + b, images.begin() + b + m);
    Tensor f = flatten(global_avg_pool2d(net.features(concat(chunk, 0))), 1);
    slice(feats, 0, b, b + m).copy_(f);
  }
  return feats;
}

double accuracy(const Tensor& logits, const std::vector<int64_t>& labels) {
  std::vector<float> l = logits.to_vector();
  const int64_t c = logits.size(1);
  int64_t ok = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    const float* row = &l[i * c];
    ok += std::max_element(row, row + c) - row == labels[i];
  }
  return static_cast<double>(ok) / static_cast<double>(labels.size());
}

// Trains a linear head on cached features; returns validation accuracy.
double train_head(const Tensor& train_x, const std::vector<int64_t>& train_y, const Tensor& val_x,
                  const std::vector<int64_t>& val_y, int64_t classes, int epochs, uint64_t seed, const char* tag,
                  nn::Linear& head) {
  optim::Adam opt(head.parameters(), optim::adamw_options(3e-3, 1e-2));
  Tensor ty = Tensor::from_vector_i64(train_y, {static_cast<int64_t>(train_y.size())});
  CrossEntropyOptions ce;
  ce.label_smoothing = 0.1;
  for (int e = 1; e <= epochs; ++e) {
    opt.zero_grad();
    Tensor loss = cross_entropy(head(train_x), ty, ce);
    loss.backward();
    opt.step();
    if (e == 1 || e % 20 == 0 || e == epochs) {
      NoGradGuard ng;
      std::printf("  [%s] epoch %3d  train loss %.4f  val accuracy %.1f%%\n", tag, e, loss.item(),
                  100.0 * accuracy(head(val_x), val_y));
    }
  }
  NoGradGuard ng;
  return accuracy(head(val_x), val_y);
}

// Feature standardisation fitted on the training split (its mean and
// deviation, (1, F) each, are returned for the export).
void standardise(Tensor& train_x, Tensor& val_x, Tensor& mu, Tensor& sd) {
  NoGradGuard ng;
  mu = mean(train_x, {0}, true);
  Tensor centred = sub(train_x, mu);
  sd = add_scalar(sqrt(mean(mul(centred, centred), {0}, true)), 1e-5);
  train_x = div(centred, sd);
  val_x = div(sub(val_x, mu), sd);
}

// The deployable network: backbone -> global pool -> head, where the head
// takes raw pooled features (the standardisation folded in: W' = W / sd,
// b' = b - W' mu). Written as ONNX, loaded back, compared on `check` images.
void export_model(models::SqueezeNet& net, const nn::Linear& head, const Tensor& mu, const Tensor& sd,
                  const std::string& path, const std::vector<Tensor>& check) {
  NoGradGuard ng;
  auto folded = std::make_shared<nn::Linear>(head.weight.size(1), head.weight.size(0));
  folded->weight.copy_(div(head.weight, sd));
  folded->bias.copy_(sub(head.bias, flatten(matmul(folded->weight, reshape(mu, {mu.numel(), 1})), 0)));
  nn::Sequential deployed{net.backbone, std::make_shared<nn::GlobalAvgPool2d>(), folded};
  importer::ExportOptions opt;
  opt.emitters = tools::model_emitters();
  importer::save_onnx(deployed, {1, 3, 224, 224}, path, opt);
  auto back = importer::load_onnx(path);
  deployed.eval();
  double worst = 0;
  const size_t n = std::min<size_t>(check.size(), 4);
  for (size_t i = 0; i < n; ++i) {
    std::vector<float> a = back->forward(check[i]).to_vector(), b = deployed(check[i]).to_vector();
    double diff = 0, scale = 0;
    for (size_t j = 0; j < a.size(); ++j) {
      diff = std::max(diff, static_cast<double>(std::fabs(a[j] - b[j])));
      scale = std::max(scale, static_cast<double>(std::fabs(b[j])));
    }
    worst = std::max(worst, diff / std::max(scale, 1e-30));
  }
  std::printf("exported %s (%lld parameters); loaded back, %zu validation images: max relative difference %.2e\n",
              path.c_str(), static_cast<long long>(back->num_parameters()), n, worst);
}

}  // namespace

int main(int argc, char** argv) try {
  const Args args = parse(argc, argv);
  const auto t0 = std::chrono::steady_clock::now();

  GRAFT_CHECK(fs::is_directory(args.data), "finetune_example: data folder '" << args.data << "' not found");
  std::vector<std::string> classes;
  for (auto& d : fs::directory_iterator(args.data))
    if (d.is_directory()) classes.push_back(d.path().filename().string());
  std::sort(classes.begin(), classes.end());
  GRAFT_CHECK(classes.size() >= 2, "finetune_example: '" << args.data << "' needs one folder per class (found "
                                                        << classes.size() << ")");

  // Seeded 3:1 split within each class.
  Generator split_gen(args.seed);
  std::vector<Sample> train, val;
  for (size_t c = 0; c < classes.size(); ++c) {
    std::vector<std::string> files;
    for (auto& f : fs::directory_iterator(fs::path(args.data) / classes[c]))
      if (f.is_regular_file()) files.push_back(f.path().string());
    std::sort(files.begin(), files.end());
    std::vector<float> keys = Tensor::rand({static_cast<int64_t>(files.size())}, split_gen).to_vector();
    std::vector<size_t> order(files.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return keys[a] < keys[b]; });
    const size_t n_val = files.size() / 4;
    for (size_t i = 0; i < order.size(); ++i)
      (i < n_val ? val : train).push_back({files[order[i]], static_cast<int64_t>(c)});
  }
  std::printf("Graft fine-tuning example: %zu classes, %zu training and %zu validation images from %s\n",
              classes.size(), train.size(), val.size(), args.data.c_str());

  auto load = [](const std::vector<Sample>& s, std::vector<Tensor>& imgs, std::vector<int64_t>& labels) {
    for (auto& x : s) {
      imgs.push_back(models::squeezenet_preprocess(data::decode_image(x.path)));
      labels.push_back(x.label);
    }
  };
  std::vector<Tensor> train_imgs, val_imgs;
  std::vector<int64_t> train_y, val_y;
  load(train, train_imgs, train_y);
  load(val, val_imgs, val_y);
  std::printf("decoded and preprocessed in %.1f s\n", seconds_since(t0));

  const int64_t k = static_cast<int64_t>(classes.size());
  double acc[2];
  for (int pretrained = 1; pretrained >= 0; --pretrained) {
    Generator gen(args.seed + 1);
    models::SqueezeNet net(1000, gen);
    if (pretrained) models::load_squeezenet_npy(net, args.weights, /*load_head=*/false);
    for (auto& p : net.backbone->parameters()) p.set_requires_grad(false);  // frozen backbone
    const auto t1 = std::chrono::steady_clock::now();
    Tensor tx = extract_features(net, train_imgs), vx = extract_features(net, val_imgs);
    std::printf("%s backbone: features of %zu images in %.1f s\n", pretrained ? "pretrained" : "random-init",
                train_imgs.size() + val_imgs.size(), seconds_since(t1));
    Tensor mu, sd;
    standardise(tx, vx, mu, sd);
    Generator head_gen(args.seed + 2);
    nn::Linear head(tx.size(1), k, true, head_gen);
    acc[pretrained] = train_head(tx, train_y, vx, val_y, k, args.epochs, args.seed + 2,
                                 pretrained ? "pretrained" : "random-init", head);
    if (pretrained && !args.export_path.empty()) export_model(net, head, mu, sd, args.export_path, val_imgs);
  }
  std::printf("\nvalidation accuracy, new head on a frozen backbone (%lld classes, chance %.1f%%):\n",
              static_cast<long long>(k), 100.0 / k);
  std::printf("  ImageNet-pretrained SqueezeNet 1.1: %.1f%%\n", 100.0 * acc[1]);
  std::printf("  randomly initialised SqueezeNet 1.1: %.1f%%\n", 100.0 * acc[0]);
  std::printf("total %.1f s\n", seconds_since(t0));
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "error: %s\n", e.what());
  return 1;
}
