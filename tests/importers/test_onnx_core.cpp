// The ONNX core: TensorProto I/O, the loader's checks, the executor
// (parameters, buffers, constants, folding, input checks, gradients), and the
// real mnist-8 model once the operator families are in.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "engine/autograd/grad_mode.h"
#include "engine/ops/conv.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/linear.h"
#include "engine/ops/pool.h"
#include "engine/ops/reduce.h"
#include "engine/ops/shape.h"
#include "gtest/gtest.h"
#include "importers/onnx/converter.h"
#include "importers/onnx/model.h"
#include "importers/onnx/tensor_proto.h"
#include "tests/support/reference.h"

namespace graft::importer {
namespace {

namespace fs = std::filesystem;
using TP = ::onnx::TensorProto;
using testing::throws_naming;

// ---- helpers: small models built with the protobuf API ----------------------------------

struct ModelBuilder {
  ::onnx::ModelProto m;
  ::onnx::GraphProto* g;
  explicit ModelBuilder(int opset = 13, int64_t ir = 8) {
    m.set_ir_version(ir);
    m.set_producer_name("graft-test");
    auto* o = m.add_opset_import();
    o->set_domain("");
    o->set_version(opset);
    g = m.mutable_graph();
    g->set_name("test");
  }
  // dims: -1 is a symbolic dimension ("N").
  static void set_type(::onnx::ValueInfoProto* v, const std::string& name, int type, const std::vector<int64_t>& dims) {
    v->set_name(name);
    auto* tt = v->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(type);
    auto* shape = tt->mutable_shape();
    for (int64_t d : dims) {
      if (d == -1)
        shape->add_dim()->set_dim_param("N");
      else
        shape->add_dim()->set_dim_value(d);
    }
  }
  ModelBuilder& input(const std::string& name, const std::vector<int64_t>& dims, int type = TP::FLOAT) {
    set_type(g->add_input(), name, type, dims);
    return *this;
  }
  ModelBuilder& output(const std::string& name, int type = TP::FLOAT) {
    auto* v = g->add_output();
    v->set_name(name);
    v->mutable_type()->mutable_tensor_type()->set_elem_type(type);
    return *this;
  }
  ::onnx::NodeProto* node(const std::string& op, const std::vector<std::string>& in,
                          const std::vector<std::string>& out, const std::string& name = "") {
    auto* n = g->add_node();
    n->set_op_type(op);
    n->set_name(name.empty() ? op + "_" + std::to_string(g->node_size()) : name);
    for (const auto& s : in) n->add_input(s);
    for (const auto& s : out) n->add_output(s);
    return n;
  }
  ModelBuilder& init(const std::string& name, const Tensor& t) {
    to_tensor_proto(t, name, g->add_initializer());
    return *this;
  }
  std::string bytes() const {
    std::string s;
    EXPECT_TRUE(m.SerializeToString(&s));
    return s;
  }
};

// ---- a test operator table: the executor's behaviour without the families ---------------

std::atomic<int> g_shape_calls{0};
std::atomic<int> g_add_calls{0};

std::vector<Tensor> cv_matmul(const NodeContext&, const std::vector<Tensor>& in) { return {matmul(in[0], in[1])}; }
std::vector<Tensor> cv_add(const NodeContext&, const std::vector<Tensor>& in) {
  ++g_add_calls;
  if (in[0].dtype() == DType::i64) {  // integer shape arithmetic, exact
    std::vector<int64_t> a = in[0].to_vector_i64(), b = in[1].to_vector_i64();
    for (size_t i = 0; i < a.size(); ++i) a[i] += b[b.size() == 1 ? 0 : i];
    return {Tensor::from_vector_i64(a, in[0].shape())};
  }
  return {add(in[0], in[1])};
}
std::vector<Tensor> cv_mul(const NodeContext&, const std::vector<Tensor>& in) { return {mul(in[0], in[1])}; }
std::vector<Tensor> cv_relu(const NodeContext&, const std::vector<Tensor>& in) { return {relu(in[0])}; }
std::vector<Tensor> cv_shape(const NodeContext&, const std::vector<Tensor>& in) {
  ++g_shape_calls;
  return {Tensor::from_vector_i64(in[0].shape(), {in[0].dim()})};
}
std::vector<Tensor> cv_reshape(const NodeContext&, const std::vector<Tensor>& in) {
  return {reshape(in[0], in[1].to_vector_i64())};
}
std::vector<Tensor> cv_constant(const NodeContext& ctx, const std::vector<Tensor>&) {
  return {ctx.attr_tensor("value")};
}
std::vector<Tensor> cv_conv_weight_probe(const NodeContext& ctx, const std::vector<Tensor>& in) {
  GRAFT_NODE_CHECK(ctx, in[1].is_channels_last(), "weight not packed channels-last");
  return {in[0]};
}
std::vector<Tensor> cv_broken(const NodeContext&, const std::vector<Tensor>& in) { return {matmul(in[0], in[0])}; }

const OpRegistry& test_ops() {
  static const OpRegistry r = [] {
    OpRegistry reg;
    reg.add({"MatMul", 7, 24, cv_matmul});
    reg.add({"Add", 7, 24, cv_add});
    reg.add({"Mul", 7, 24, cv_mul, {}, {1}});  // input 1 a buffer (like BatchNormalization's statistics)
    reg.add({"Relu", 7, 24, cv_relu});
    reg.add({"Shape", 7, 24, cv_shape});
    reg.add({"Reshape", 7, 24, cv_reshape, {1}});
    reg.add({"Constant", 7, 24, cv_constant});
    reg.add({"Conv", 7, 24, cv_conv_weight_probe});
    reg.add({"Softmax", 13, 24, cv_broken});
    return reg;
  }();
  return r;
}

LoadOptions test_options() {
  LoadOptions o;
  o.ops = &test_ops();
  return o;
}

std::shared_ptr<OnnxModel> load_test(const ModelBuilder& b, const std::string& name = "test.onnx") {
  return load_onnx_bytes(b.bytes(), name, ".", test_options());
}

std::string temp_dir() {
  fs::path p = fs::temp_directory_path() /
               ("graft_onnx_core_" + std::to_string(::getpid()) + "_" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name());
  fs::create_directories(p);
  return p.string();
}

// ---- TensorProto -------------------------------------------------------------------------------

Tensor sample(DType t, const Shape& shape) {
  const int64_t n = shape_numel(shape);
  std::vector<float> v;
  for (int64_t i = 0; i < n; ++i) v.push_back(t == DType::boolean ? float(i % 3 == 0) : float((i * 7) % 23) - 11.5f);
  if (t == DType::i32 || t == DType::i64)
    for (auto& x : v) x = std::floor(x) * 1000.f;
  if (t == DType::u8)
    for (auto& x : v) x = std::fabs(std::floor(x)) * 10.f;
  return Tensor::from_vector(v, shape, t);
}

bool same_bits(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
  Tensor ca = a.contiguous(), cb = b.contiguous();
  return std::memcmp(ca.raw_data(), cb.raw_data(), ca.nbytes()) == 0;
}

TEST(OnnxTensorProto, RawRoundTripEveryDtype) {
  for (DType t : {DType::f32, DType::f16, DType::bf16, DType::i32, DType::i64, DType::u8, DType::boolean}) {
    for (const Shape& shape : {Shape{}, Shape{0}, Shape{7}, Shape{2, 3, 5}}) {
      Tensor x = sample(t, shape);
      TP p;
      to_tensor_proto(x, "x", &p);
      EXPECT_TRUE(p.has_raw_data());
      EXPECT_TRUE(supported_onnx_dtype(p.data_type()));
      Tensor y = from_tensor_proto(p, ".", "x");
      EXPECT_TRUE(same_bits(x, y)) << dtype_name(t) << " " << shape_str(shape);
      EXPECT_TRUE(y.is_contiguous());
    }
  }
}

TEST(OnnxTensorProto, WritesLogicalOrderOfAnyLayout) {
  Generator gen = testing::test_generator();
  Tensor x = Tensor::rand({2, 3, 4, 5}, gen);
  TP p;
  to_tensor_proto(x.to_format(MemoryFormat::channels_last), "x", &p);
  EXPECT_EQ(from_tensor_proto(p, ".", "x").to_vector(), x.to_vector());
  to_tensor_proto(transpose(x, 1, 3), "xt", &p);
  EXPECT_EQ(from_tensor_proto(p, ".", "xt").to_vector(), transpose(x, 1, 3).contiguous().to_vector());
}

TEST(OnnxTensorProto, TypedFieldsMatchRaw) {
  const std::vector<float> fv = {1.5f, -2.25f, 0.f, 3e-3f, -7.f, 65504.f};
  for (DType t : {DType::f32, DType::f16, DType::bf16, DType::i32, DType::i64, DType::u8, DType::boolean}) {
    Tensor x = t == DType::u8 ? Tensor::from_vector({1, 2, 0, 255, 7, 9}, {2, 3}, t)
               : t == DType::boolean ? Tensor::from_vector({1, 0, 0, 1, 1, 0}, {2, 3}, t)
               : is_floating(t) ? Tensor::from_vector(fv, {2, 3}, t)
                                : Tensor::from_vector({1, -2, 0, 300000, -7, 9}, {2, 3}, t);
    TP raw;
    to_tensor_proto(x, "x", &raw);
    TP typed;
    typed.set_data_type(raw.data_type());
    typed.add_dims(2);
    typed.add_dims(3);
    Tensor c = x.contiguous();
    for (int64_t i = 0; i < 6; ++i) {
      switch (t) {
        case DType::f32: typed.add_float_data(c.data<float>()[i]); break;
        case DType::i64: typed.add_int64_data(c.data<int64_t>()[i]); break;
        case DType::i32: typed.add_int32_data(c.data<int32_t>()[i]); break;
        case DType::f16:
        case DType::bf16: typed.add_int32_data(c.data<uint16_t>()[i]); break;
        default: typed.add_int32_data(c.data<uint8_t>()[i]); break;
      }
    }
    EXPECT_TRUE(same_bits(from_tensor_proto(typed, ".", "typed"), from_tensor_proto(raw, ".", "raw"))) << dtype_name(t);
  }
  // DOUBLE is held as f32, from double_data and from raw bytes alike.
  TP d;
  d.set_data_type(TP::DOUBLE);
  d.add_dims(3);
  std::string bytes;
  for (double v : {0.1, -2.5, 1e10}) {
    d.add_double_data(v);
    bytes.append(reinterpret_cast<const char*>(&v), 8);
  }
  EXPECT_EQ(from_tensor_proto(d, ".", "d").to_vector(), (std::vector<float>{0.1f, -2.5f, 1e10f}));
  d.clear_double_data();
  d.set_raw_data(bytes);
  EXPECT_EQ(from_tensor_proto(d, ".", "d").to_vector(), (std::vector<float>{0.1f, -2.5f, 1e10f}));
  EXPECT_FALSE(supported_onnx_dtype(TP::DOUBLE));
}

TEST(OnnxTensorProto, SizeAndTypeErrorsNameTheTensor) {
  TP p;
  p.set_data_type(TP::FLOAT);
  p.add_dims(4);
  p.set_raw_data(std::string(12, '\0'));  // 3 floats for 4
  EXPECT_TRUE(throws_naming([&] { from_tensor_proto(p, ".", "weights 'w1'"); }, {"'w1'", "12 bytes", "16"}));
  p.clear_raw_data();
  p.add_float_data(1.f);
  EXPECT_TRUE(throws_naming([&] { from_tensor_proto(p, ".", "'w2'"); }, {"'w2'", "1 values"}));
  p.set_dims(0, -4);
  EXPECT_TRUE(throws_naming([&] { from_tensor_proto(p, ".", "'w3'"); }, {"'w3'", "negative"}));
  p.set_dims(0, int64_t(1) << 40);
  p.add_dims(int64_t(1) << 40);
  EXPECT_TRUE(throws_naming([&] { from_tensor_proto(p, ".", "'w4'"); }, {"'w4'", "overflow"}));
  TP q;
  q.set_data_type(TP::INT8);
  q.add_dims(2);
  q.set_raw_data("ab");
  EXPECT_TRUE(throws_naming([&] { from_tensor_proto(q, ".", "'w5'"); }, {"'w5'", "unsupported dtype INT8"}));
  q.set_data_type(TP::STRING);
  EXPECT_TRUE(throws_naming([&] { from_tensor_proto(q, ".", "'w6'"); }, {"'w6'", "unsupported dtype STRING"}));
  EXPECT_FALSE(supported_onnx_dtype(TP::INT8));
  EXPECT_STREQ(onnx_dtype_name(TP::BFLOAT16), "BFLOAT16");
}

TEST(OnnxTensorProto, ExternalDataWithOffsetAndLength) {
  const std::string dir = temp_dir();
  const std::vector<float> values = {1.f, 2.f, 3.f, 4.f, 5.f, 6.f};
  {
    std::ofstream f(dir + "/weights.bin", std::ios::binary);
    f.write("PADDING!", 8);  // the tensor starts at offset 8
    f.write(reinterpret_cast<const char*>(values.data()), 24);
  }
  auto make = [](const std::string& location, const std::string& offset, const std::string& length) {
    TP p;
    p.set_name("ext");
    p.set_data_type(TP::FLOAT);
    p.add_dims(2);
    p.add_dims(3);
    p.set_data_location(TP::EXTERNAL);
    auto add = [&](const char* k, const std::string& v) {
      if (v.empty()) return;
      auto* e = p.add_external_data();
      e->set_key(k);
      e->set_value(v);
    };
    add("location", location);
    add("offset", offset);
    add("length", length);
    return p;
  };
  EXPECT_EQ(from_tensor_proto(make("weights.bin", "8", "24"), dir, "ext").to_vector(), values);
  EXPECT_EQ(from_tensor_proto(make("weights.bin", "8", ""), dir, "ext").to_vector(), values);
  EXPECT_TRUE(throws_naming([&] { from_tensor_proto(make("weights.bin", "16", "24"), dir, "'ext'"); },
                            {"'ext'", "weights.bin", "offset 16"}));
  EXPECT_TRUE(throws_naming([&] { from_tensor_proto(make("weights.bin", "8", "20"), dir, "'ext'"); }, {"'ext'", "length 20"}));
  EXPECT_TRUE(throws_naming([&] { from_tensor_proto(make("missing.bin", "0", ""), dir, "'ext'"); }, {"'ext'", "missing.bin"}));
  EXPECT_TRUE(throws_naming([&] { from_tensor_proto(make("/etc/passwd", "0", ""), dir, "'ext'"); }, {"'ext'", "relative"}));
  EXPECT_TRUE(throws_naming([&] { from_tensor_proto(make("../x.bin", "0", ""), dir, "'ext'"); }, {"'ext'", "relative"}));
  EXPECT_TRUE(throws_naming([&] { from_tensor_proto(make("weights.bin", "-1", ""), dir, "'ext'"); }, {"'ext'", "offset"}));

  // The loader reads external initializers relative to the model's folder.
  ModelBuilder b;
  b.input("x", {3, 2}).output("y");
  b.node("MatMul", {"ext", "x"}, {"y"});
  *b.g->add_initializer() = make("weights.bin", "8", "24");
  {
    std::ofstream f(dir + "/model.onnx", std::ios::binary);
    f << b.bytes();
  }
  auto m = load_onnx(dir + "/model.onnx", test_options());
  ASSERT_EQ(m->named_parameters().size(), 1u);
  EXPECT_EQ(m->named_parameters()[0].second.to_vector(), values);
  fs::remove_all(dir);
}

TEST(OnnxTensorProto, FilesRoundTripAndReadNodeTests) {
  const std::string dir = temp_dir();
  Tensor x = sample(DType::f32, {2, 3});
  write_tensor_file(dir + "/t.pb", x, "tee");
  EXPECT_TRUE(same_bits(read_tensor_file(dir + "/t.pb"), x));
  EXPECT_TRUE(fs::exists(dir + "/t.pb"));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);  // no temporary left
  {
    std::ofstream f(dir + "/bad.pb", std::ios::binary);
    f << "\xff\xff\xff garbage";
  }
  EXPECT_TRUE(throws_naming([&] { read_tensor_file(dir + "/bad.pb"); }, {"bad.pb"}));
  EXPECT_TRUE(throws_naming([&] { read_tensor_file(dir + "/none.pb"); }, {"none.pb"}));
  fs::remove_all(dir);
  const std::string node_test = testing::shared_path("onnx-node-tests/test_relu/test_data_set_0/input_0.pb");
  if (node_test.empty()) GTEST_SKIP() << "../shared/onnx-node-tests not present";
  Tensor t = read_tensor_file(node_test);
  EXPECT_EQ(t.dtype(), DType::f32);
  EXPECT_EQ(t.shape(), (Shape{3, 4, 5}));
}

// ---- loader errors -----------------------------------------------------------------------------

ModelBuilder linear_model() {
  Generator gen = testing::test_generator();
  ModelBuilder b;
  b.input("x", {-1, 4}).output("y");
  b.init("fc.weight", Tensor::rand({4, 3}, gen, -1, 1)).init("fc.bias", Tensor::rand({3}, gen, -1, 1));
  b.node("MatMul", {"x", "fc.weight"}, {"h"}, "fc_matmul");
  b.node("Add", {"h", "fc.bias"}, {"z"}, "fc_add");
  b.node("Relu", {"z"}, {"y"}, "act");
  return b;
}

TEST(OnnxLoader, TruncatedCorruptOrForeignFilesAreClearErrors) {
  const std::string good = linear_model().bytes();
  ASSERT_NO_THROW(load_onnx_bytes(good, "good.onnx", ".", test_options()));
  for (size_t cut : {good.size() / 2, good.size() - 3, size_t(5)}) {
    std::string msg = testing::error_message([&] { load_onnx_bytes(good.substr(0, cut), "cut.onnx", ".", test_options()); });
    EXPECT_NE(msg.find("cut.onnx"), std::string::npos) << msg;
  }
  EXPECT_TRUE(throws_naming([&] { load_onnx_bytes("", "empty.onnx"); }, {"empty.onnx", "empty"}));
  EXPECT_TRUE(throws_naming([&] { load_onnx_bytes(std::string("\x93NUMPY\x01\x00v\x00{'descr'", 16), "a.onnx"); },
                            {"a.onnx", ".npy"}));
  EXPECT_TRUE(throws_naming([&] { load_onnx_bytes(std::string("PK\x03\x04\x14\x00\x00\x00", 8), "b.onnx"); },
                            {"b.onnx", "zip"}));
  EXPECT_TRUE(throws_naming([&] { load_onnx("/nonexistent/m.onnx"); }, {"/nonexistent/m.onnx"}));
}

TEST(OnnxLoader, VersionsAndDomains) {
  for (int opset : {5, 26, 1000}) {
    ModelBuilder b = linear_model();
    b.m.mutable_opset_import(0)->set_version(opset);
    EXPECT_TRUE(throws_naming([&] { load_test(b); }, {"test.onnx", "opset " + std::to_string(opset), "6..25"}));
  }
  for (int64_t ir : {2, 99}) {
    ModelBuilder b(13, ir);
    EXPECT_TRUE(throws_naming([&] { load_test(b); }, {"test.onnx", "IR version " + std::to_string(ir)}));
  }
  ModelBuilder b = linear_model();
  auto* o = b.m.add_opset_import();
  o->set_domain("com.microsoft");
  o->set_version(1);
  EXPECT_NO_THROW(load_test(b));  // imported but unused: fine
  b.node("FusedGemm", {"y"}, {"y2"})->set_domain("com.microsoft");
  EXPECT_TRUE(throws_naming([&] { load_test(b); }, {"com.microsoft"}));
}

TEST(OnnxLoader, GraphStructureErrorsNameNodeAndValue) {
  {
    ModelBuilder b = linear_model();
    b.g->mutable_initializer()->RemoveLast();  // fc.bias gone
    EXPECT_TRUE(throws_naming([&] { load_test(b); }, {"test.onnx", "fc_add", "'fc.bias'"}));
  }
  {
    ModelBuilder b = linear_model();
    b.g->mutable_node(2)->set_input(0, "nowhere");
    EXPECT_TRUE(throws_naming([&] { load_test(b); }, {"'act'", "'nowhere'"}));
  }
  {
    ModelBuilder b;  // a -> b -> a
    b.input("x", {2}).output("y");
    b.node("Add", {"x", "q"}, {"p"}, "first");
    b.node("Relu", {"p"}, {"q"}, "second");
    b.node("Relu", {"p"}, {"y"}, "third");
    EXPECT_TRUE(throws_naming([&] { load_test(b); }, {"cycle", "'first'", "'second'"}));
  }
  {
    ModelBuilder b = linear_model();
    b.node("Relu", {"x"}, {"h"}, "again");
    EXPECT_TRUE(throws_naming([&] { load_test(b); }, {"'again'", "'h'", "fc_matmul"}));
  }
  {
    ModelBuilder b = linear_model();
    b.output("ghost");
    EXPECT_TRUE(throws_naming([&] { load_test(b); }, {"'ghost'", "never produced"}));
  }
  {
    ModelBuilder b = linear_model();
    b.init("fc.bias", Tensor::zeros({3}));
    EXPECT_TRUE(throws_naming([&] { load_test(b); }, {"duplicate initializer 'fc.bias'"}));
  }
}

TEST(OnnxLoader, UnsupportedOperatorsListedInOneError) {
  ModelBuilder b = linear_model();
  b.node("FancyOp", {"y"}, {"y2"}, "fancy1");
  b.node("OtherOp", {"y2"}, {"y3"}, "other1");
  b.node("FancyOp", {"y3"}, {"y4"}, "fancy2");
  b.node("Softmax", {"y4"}, {"y5"}, "sm");
  b.output("y5");
  b.m.mutable_opset_import(0)->set_version(11);  // the test table has Softmax from 13 only
  const std::string msg = testing::error_message([&] { load_test(b); });
  for (const char* needle : {"test.onnx", "unsupported operators", "FancyOp", "'fancy1'", "'fancy2'", "OtherOp",
                             "'other1'", "Softmax", "13..24"})
    EXPECT_NE(msg.find(needle), std::string::npos) << needle << " in: " << msg;
  // allow_unsupported_ops: loads (for `graft info`), fails when run, naming the node.
  LoadOptions o = test_options();
  o.allow_unsupported_ops = true;
  auto m = load_onnx_bytes(b.bytes(), "test.onnx", ".", o);
  EXPECT_EQ(m->unsupported_op_types(), (std::vector<std::string>{"FancyOp", "OtherOp", "Softmax"}));
  EXPECT_EQ(m->op_type_counts()[3], (std::pair<std::string, int>{"FancyOp", 2}));
  EXPECT_TRUE(throws_naming([&] { m->run({Tensor::zeros({1, 4})}); }, {"'fancy1'", "unsupported operator FancyOp"}));
}

TEST(OnnxLoader, AbsurdDimsAreErrorsNotAllocations) {
  {
    ModelBuilder b = linear_model();
    auto* t = b.g->mutable_initializer(0);
    t->set_dims(0, int64_t(1) << 31);
    t->set_dims(1, int64_t(1) << 31);  // 2^62 elements; raw_data holds 12
    EXPECT_TRUE(throws_naming([&] { load_test(b); }, {"initializer 'fc.weight'", "max_tensor_elements"}));
    t->set_dims(0, -4);
    EXPECT_TRUE(throws_naming([&] { load_test(b); }, {"initializer 'fc.weight'", "negative"}));
  }
  {
    ModelBuilder b = linear_model();
    b.g->mutable_input(0)->mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim(1)->set_dim_value(
        int64_t(1) << 40);
    EXPECT_TRUE(throws_naming([&] { load_test(b); }, {"graph input 'x'", "max_tensor_elements"}));
    b.g->mutable_input(0)->mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim(1)->set_dim_value(-7);
    EXPECT_TRUE(throws_naming([&] { load_test(b); }, {"graph input 'x'", "negative"}));
  }
  {
    ModelBuilder b = linear_model();
    auto* n = b.node("Constant", {}, {"c"}, "const_big");
    auto* a = n->add_attribute();
    a->set_name("value");
    a->set_type(::onnx::AttributeProto::TENSOR);
    a->mutable_t()->set_data_type(TP::FLOAT);
    a->mutable_t()->add_dims(int64_t(1) << 50);
    EXPECT_TRUE(throws_naming([&] { load_test(b); }, {"'const_big'", "max_tensor_elements"}));
  }
  {
    ModelBuilder b = linear_model();  // wrong byte count: caught before allocation
    b.g->mutable_initializer(0)->set_dims(0, 400);
    EXPECT_TRUE(throws_naming([&] { load_test(b); }, {"initializer 'fc.weight'", "48 bytes"}));
  }
}

TEST(OnnxLoader, UnsupportedDtypesOnInputsOutputs) {
  ModelBuilder b;
  b.input("x", {2}, TP::DOUBLE).output("y", TP::DOUBLE);
  b.node("Relu", {"x"}, {"y"});
  EXPECT_TRUE(throws_naming([&] { load_test(b); }, {"'x'", "unsupported dtype DOUBLE"}));
}

// ---- the executor ------------------------------------------------------------------------------

TEST(OnnxModel, ParametersNamedAsInitializersTrainAgainstFloat64Reference) {
  ModelBuilder b = linear_model();
  auto m = load_test(b);
  EXPECT_FALSE(m->is_training());  // a file describes inference
  const auto params = m->named_parameters();
  ASSERT_EQ(params.size(), 2u);
  EXPECT_EQ(params[0].first, "fc.weight");
  EXPECT_EQ(params[1].first, "fc.bias");
  EXPECT_EQ(m->num_parameters(), 15);
  for (const auto& [name, p] : params) EXPECT_TRUE(p.requires_grad()) << name;
  ASSERT_EQ(m->inputs().size(), 1u);
  EXPECT_EQ(m->inputs()[0].shape, (std::vector<int64_t>{-1, 4}));

  Generator gen = testing::test_generator();
  const int64_t n = 5;
  Tensor x = testing::random_tensor({n, 4}, gen);
  Tensor y = m->forward(x);
  ASSERT_EQ(y.shape(), (Shape{n, 3}));
  std::vector<double> xd = testing::to_double(x), w = testing::to_double(params[0].second),
                      bias = testing::to_double(params[1].second);
  std::vector<double> ref(n * 3), gw(12, 0.0), gb(3, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int j = 0; j < 3; ++j) {
      double z = bias[j];
      for (int k = 0; k < 4; ++k) z += xd[i * 4 + k] * w[k * 3 + j];
      ref[i * 3 + j] = z > 0 ? z : 0;
      if (z > 0) {  // d sum(y) / d(w, b)
        gb[j] += 1;
        for (int k = 0; k < 4; ++k) gw[k * 3 + j] += xd[i * 4 + k];
      }
    }
  EXPECT_TRUE(testing::all_close(y.to_vector(), ref, 1e-5, 1e-6));
  sum(y).backward();
  ASSERT_TRUE(params[0].second.grad().defined());
  EXPECT_TRUE(testing::all_close(params[0].second.grad().to_vector(), gw, 1e-5, 1e-6));
  EXPECT_TRUE(testing::all_close(params[1].second.grad().to_vector(), gb, 1e-5, 1e-6));
  // Frozen: no gradient is recorded.
  m->zero_grad();
  for (auto& p : m->parameters()) p.set_requires_grad(false);
  Tensor y2 = m->forward(x);
  EXPECT_FALSE(y2.requires_grad());
}

TEST(OnnxModel, InitializerKindsConstantsBuffersAndChannelsLastConvWeights) {
  Generator gen = testing::test_generator();
  ModelBuilder b;
  b.input("x", {2, 3, 4, 5}).output("y").output("s");
  b.init("conv.w", Tensor::rand({6, 3, 3, 3}, gen));
  b.init("stats", Tensor::rand({1, 3, 1, 1}, gen));
  b.init("new_shape", Tensor::from_vector_i64({2, 60}, {2}));
  b.init("scale_only", Tensor::rand({2}, gen));
  b.init("unused", Tensor::rand({2}, gen));
  b.node("Conv", {"x", "conv.w"}, {"c"});
  b.node("Mul", {"c", "stats"}, {"m"});             // input 1: buffer
  b.node("Reshape", {"m", "new_shape"}, {"y"});     // input 1: value
  b.node("Shape", {"scale_only"}, {"s"});           // reads the shape only
  // Old exporters list initializers among the graph inputs too.
  ModelBuilder::set_type(b.g->add_input(), "conv.w", TP::FLOAT, {6, 3, 3, 3});
  auto m = load_test(b);
  ASSERT_EQ(m->inputs().size(), 1u);
  ASSERT_EQ(m->named_parameters().size(), 1u);
  EXPECT_EQ(m->named_parameters()[0].first, "conv.w");
  EXPECT_TRUE(m->named_parameters()[0].second.is_channels_last());
  ASSERT_EQ(m->named_buffers().size(), 1u);
  EXPECT_EQ(m->named_buffers()[0].first, "stats");
  EXPECT_FALSE(m->named_buffers()[0].second.requires_grad());
  Tensor x = Tensor::rand({2, 3, 4, 5}, gen);
  auto out = m->run({x});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].shape(), (Shape{2, 60}));
  EXPECT_EQ(out[1].to_vector_i64(), (std::vector<int64_t>{2}));
}

TEST(OnnxModel, FoldsConstantSubgraphsAndStaticShapesOnce) {
  // y = Reshape(x, Shape(x) + Shape(x) - ...): a torch-like shape chain on a static input.
  ModelBuilder b;
  b.input("x", {2, 6}).output("y").output("z");
  b.init("zero", Tensor::from_vector_i64({0, -6}, {2}));
  b.node("Shape", {"x"}, {"sx"});
  b.node("Add", {"sx", "zero"}, {"target"});  // [2, 0]... then Reshape needs [2, 6]: use Constant below
  auto* c = b.node("Constant", {}, {"six"});
  auto* a = c->add_attribute();
  a->set_name("value");
  a->set_type(::onnx::AttributeProto::TENSOR);
  to_tensor_proto(Tensor::from_vector_i64({0, 12}, {2}), "", a->mutable_t());
  b.node("Add", {"target", "six"}, {"shape2"});  // [2, 12]
  b.node("Relu", {"x"}, {"r"});
  b.node("Reshape", {"r", "sx"}, {"y"});
  b.node("Shape", {"r"}, {"sr"});  // an intermediate: evaluated at run time
  b.node("Add", {"sr", "shape2"}, {"z"});
  g_shape_calls = 0;
  g_add_calls = 0;
  auto m = load_test(b);
  EXPECT_EQ(g_shape_calls.load(), 1);  // Shape(x) folded at load
  EXPECT_EQ(g_add_calls.load(), 2);    // both constant Adds folded
  Generator gen = testing::test_generator();
  for (int run = 0; run < 3; ++run) {
    auto out = m->run({Tensor::rand({2, 6}, gen)});
    EXPECT_EQ(out[0].shape(), (Shape{2, 6}));
    EXPECT_EQ(out[1].to_vector_i64(), (std::vector<int64_t>{4, 18}));
  }
  EXPECT_EQ(g_shape_calls.load(), 4);  // + Shape(r) per run
  EXPECT_EQ(g_add_calls.load(), 5);    // + the Add on it per run
  EXPECT_TRUE(m->named_parameters().empty());
}

TEST(OnnxModel, SymbolicInputShapesEvaluateAtRunTime) {
  ModelBuilder b;
  b.input("x", {-1, 3}).output("y");
  b.node("Shape", {"x"}, {"s"});
  b.node("Reshape", {"x", "s"}, {"y"});
  g_shape_calls = 0;
  auto m = load_test(b);
  EXPECT_EQ(g_shape_calls.load(), 0);
  for (int64_t n : {1, 4, 7}) EXPECT_EQ(m->forward(Tensor::zeros({n, 3})).shape(), (Shape{n, 3}));
  EXPECT_EQ(g_shape_calls.load(), 3);
}

TEST(OnnxModel, InputsAreCheckedAgainstTheGraph) {
  auto m = load_test(linear_model());
  EXPECT_TRUE(throws_naming([&] { m->run({}); }, {"test.onnx", "1 input", "got 0"}));
  EXPECT_TRUE(throws_naming([&] { m->forward(Tensor::zeros({2, 5})); }, {"input 'x'", "[?, 4]", "[2, 5]"}));
  EXPECT_TRUE(throws_naming([&] { m->forward(Tensor::zeros({4})); }, {"input 'x'", "[?, 4]"}));
  EXPECT_TRUE(throws_naming([&] { m->forward(Tensor::zeros({2, 4}, DType::i64)); }, {"input 'x'", "FLOAT", "i64"}));
  EXPECT_NO_THROW(m->forward(Tensor::zeros({9, 4})));
}

TEST(OnnxModel, EngineErrorsAreNamedForTheNode) {
  ModelBuilder b;
  b.input("x", {2, 3}).output("y");
  b.node("Softmax", {"x"}, {"y"}, "my_softmax");  // the test converter multiplies [2,3] x [2,3]
  auto m = load_test(b);
  EXPECT_TRUE(throws_naming([&] { m->forward(Tensor::zeros({2, 3})); }, {"test.onnx: node 'my_softmax' (Softmax)", "[2, 3]"}));
}

TEST(OnnxModel, OptionalInputsAndPassThroughOutputs) {
  ModelBuilder b;
  b.input("x", {3}).output("x").output("y");
  b.node("Relu", {"x", ""}, {"y", ""});
  auto m = load_test(b);
  Tensor x = Tensor::from_vector({-1, 0, 2}, {3});
  auto out = m->run({x});
  EXPECT_EQ(out[0].to_vector(), x.to_vector());
  EXPECT_EQ(out[1].to_vector(), (std::vector<float>{0, 0, 2}));
}

TEST(OnnxModel, DeadNodesDoNotRun) {
  ModelBuilder b;
  b.input("x", {3}).output("y");
  b.node("Relu", {"x"}, {"y"});
  b.node("Add", {"x", "x"}, {"unused"});
  auto m = load_test(b);
  g_add_calls = 0;
  m->forward(Tensor::zeros({3}));
  EXPECT_EQ(g_add_calls.load(), 0);
  EXPECT_EQ(m->op_types(), (std::vector<std::string>{"Relu", "Add"}));  // still listed
}

// ---- the CLI ---------------------------------------------------------------------------------

#ifdef GRAFT_CLI
int run_cli(const std::string& args) {
  const int status = std::system((std::string(GRAFT_CLI) + " " + args + " >/dev/null 2>&1").c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(GraftCli, RunWritesOutputsAndExitCodesSayWhatWentWrong) {
  const std::string dir = temp_dir();
  ModelBuilder b;  // no nodes: the outputs are the inputs, so any operator table runs it
  b.input("a", {2, 3}).input("b", {-1}, TP::INT64).output("b", TP::INT64).output("a");
  {
    std::ofstream f(dir + "/model.onnx", std::ios::binary);
    f << b.bytes();
  }
  Tensor a = sample(DType::f32, {2, 3}), i = Tensor::from_vector_i64({5, -7, 1 << 30}, {3});
  write_tensor_file(dir + "/in_0.pb", a, "a");
  write_tensor_file(dir + "/in_1.pb", i, "b");
  const std::string model = dir + "/model.onnx";
  ASSERT_EQ(run_cli("run " + model + " --input " + dir + "/in_0.pb --input " + dir + "/in_1.pb --output-dir " + dir + "/out"), 0);
  EXPECT_TRUE(same_bits(read_tensor_file(dir + "/out/output_0.pb"), i));
  EXPECT_TRUE(same_bits(read_tensor_file(dir + "/out/output_1.pb"), a));
  EXPECT_EQ(run_cli("info " + model), 0);
  EXPECT_EQ(run_cli("run " + model + " --input " + dir + "/in_0.pb --output-dir " + dir + "/out"), 1);  // one input short
  EXPECT_EQ(run_cli("run " + model + " --input " + dir + "/in_1.pb --input " + dir + "/in_0.pb --output-dir " + dir + "/o2"), 1);
  EXPECT_EQ(run_cli("run " + dir + "/in_0.pb --output-dir " + dir + "/out"), 1);  // not a model
  EXPECT_EQ(run_cli("run " + model), 2);                                          // no --output-dir
  EXPECT_EQ(run_cli("run " + dir + "/missing.onnx --output-dir " + dir), 2);
  EXPECT_EQ(run_cli("frobnicate"), 2);
  EXPECT_EQ(run_cli(""), 2);
  fs::remove_all(dir);
}
#endif

// ---- the real operator table -------------------------------------------------------------------

// mnist-8 through a minimal operator table written here (just what the file
// uses, SAME_UPPER Conv included): the executor on a real trained network,
// whatever the operator families have merged.
std::array<int64_t, 4> pads_of(const NodeContext& ctx, const Tensor& x, const std::vector<int64_t>& k,
                               const std::vector<int64_t>& stride) {
  std::array<int64_t, 4> p{0, 0, 0, 0};
  if (ctx.attr_string("auto_pad", "NOTSET") == "SAME_UPPER") {
    for (int d = 0; d < 2; ++d) {
      const int64_t in = x.size(2 + d), out = (in + stride[d] - 1) / stride[d];
      const int64_t total = std::max<int64_t>(0, (out - 1) * stride[d] + k[d] - in);
      p[d] = total / 2;
      p[2 + d] = total - total / 2;
    }
  } else {
    auto v = ctx.attr_ints("pads", {0, 0, 0, 0});
    std::copy(v.begin(), v.end(), p.begin());
  }
  return p;
}
std::vector<Tensor> mini_conv(const NodeContext& ctx, const std::vector<Tensor>& in) {
  Conv2dOptions o;
  const auto k = ctx.attr_ints("kernel_shape"), s = ctx.attr_ints("strides", {1, 1});
  o.stride = {s[0], s[1]};
  o.padding = pads_of(ctx, in[0], k, s);
  return {conv2d(in[0], in[1], in.size() > 2 ? in[2] : Tensor(), o)};
}
std::vector<Tensor> mini_maxpool(const NodeContext& ctx, const std::vector<Tensor>& in) {
  Pool2dOptions o;
  const auto k = ctx.attr_ints("kernel_shape"), s = ctx.attr_ints("strides", {1, 1});
  o.kernel = {k[0], k[1]};
  o.stride = {s[0], s[1]};
  o.padding = pads_of(ctx, in[0], k, s);
  return {max_pool2d(in[0], o)};
}

TEST(OnnxModel, Mnist8ThroughAMinimalOperatorTable) {
  const std::string dir = testing::shared_path("pretrained/mnist-8");
  if (dir.empty()) GTEST_SKIP() << "../shared/pretrained/mnist-8 not present";
  OpRegistry ops;
  ops.add({"Conv", 7, 24, mini_conv});
  ops.add({"MaxPool", 7, 24, mini_maxpool});
  ops.add({"Relu", 7, 24, cv_relu});
  ops.add({"Add", 7, 24, cv_add});
  ops.add({"MatMul", 7, 24, cv_matmul});
  ops.add({"Reshape", 7, 24, cv_reshape, {1}});
  LoadOptions o;
  o.ops = &ops;
  auto m = load_onnx(dir + "/model.onnx", o);
  EXPECT_EQ(m->opset(), 8);
  EXPECT_EQ(m->num_parameters(), 5994);  // 8x1x5x5 + 8 + 16x8x5x5 + 16 + 256x10 + 10
  int conv_weights = 0;
  for (const auto& [name, p] : m->named_parameters()) conv_weights += p.dim() == 4 && p.size(2) == 5 && p.is_channels_last();
  EXPECT_EQ(conv_weights, 2);
  for (int set = 0; set < 3; ++set) {
    const std::string d = dir + "/test_data_set_" + std::to_string(set);
    Tensor x = read_tensor_file(d + "/input_0.pb"), want = read_tensor_file(d + "/output_0.pb");
    Tensor got = m->forward(x);
    ASSERT_EQ(got.shape(), want.shape());
    std::vector<double> ref;
    for (float v : want.to_vector()) ref.push_back(v);
    EXPECT_TRUE(testing::all_close(got.to_vector(), ref, 1e-4, 1e-4)) << "set " << set;
    if (set == 0) {  // it trains: every parameter gets a gradient
      sum(got).backward();
      for (const auto& [name, p] : m->named_parameters()) EXPECT_TRUE(p.grad().defined()) << name;
    }
  }
}

TEST(OnnxModel, Mnist8ReproducesItsReferenceSets) {
  const std::string dir = testing::shared_path("pretrained/mnist-8");
  if (dir.empty()) GTEST_SKIP() << "../shared/pretrained/mnist-8 not present";
  std::shared_ptr<OnnxModel> m;
  const std::string msg = testing::error_message([&] { m = load_onnx(dir + "/model.onnx"); });
  if (msg.find("unsupported operator") != std::string::npos)
    GTEST_SKIP() << "mnist-8 needs operators not merged yet: " << msg;
  ASSERT_TRUE(msg.empty()) << msg;
  EXPECT_EQ(m->opset(), 8);
  EXPECT_GT(m->num_parameters(), 5000);
  for (int set = 0; set < 3; ++set) {
    const std::string d = dir + "/test_data_set_" + std::to_string(set);
    Tensor x = read_tensor_file(d + "/input_0.pb"), want = read_tensor_file(d + "/output_0.pb");
    NoGradGuard no_grad;
    Tensor got = m->forward(x);
    ASSERT_EQ(got.shape(), want.shape());
    std::vector<double> ref;
    for (float v : want.to_vector()) ref.push_back(v);
    EXPECT_TRUE(testing::all_close(got.to_vector(), ref, 1e-4, 1e-4)) << "set " << set;
  }
}

}  // namespace
}  // namespace graft::importer
