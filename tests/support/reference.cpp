#include "tests/support/reference.h"

#include <cmath>
#include <functional>
#include <limits>
#include <sstream>

namespace graft::testing {

Generator test_generator() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = info ? std::string(info->test_suite_name()) + "." + info->name() : "no-test";
  return Generator(std::hash<std::string>{}(name));
}

Tensor random_tensor(const Shape& shape, Generator& gen, float lo, float hi) {
  return Tensor::rand(shape, gen, lo, hi);
}

Tensor random_tensor_away_from(const Shape& shape, Generator& gen, float lo, float hi,
                               const std::vector<float>& avoid, float gap) {
  Tensor t = Tensor::rand(shape, gen, lo, hi);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    for (float a : avoid) {
      if (std::fabs(p[i] - a) < gap) p[i] = (p[i] < a) ? a - gap - 0.5f * gap : a + gap + 0.5f * gap;
    }
  }
  return t;
}

std::vector<double> to_double(const Tensor& t) {
  std::vector<float> v = t.to_vector();
  return std::vector<double>(v.begin(), v.end());
}

double rel_l2_error(const std::vector<float>& a, const std::vector<double>& ref) {
  if (a.size() != ref.size()) return std::numeric_limits<double>::infinity();
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) || std::isnan(ref[i])) return std::numeric_limits<double>::infinity();
    const double d = a[i] - ref[i];
    num += d * d;
    den += ref[i] * ref[i];
  }
  if (den == 0) return std::sqrt(num);
  return std::sqrt(num / den);
}

double max_abs_error(const std::vector<float>& a, const std::vector<double>& ref) {
  if (a.size() != ref.size()) return std::numeric_limits<double>::infinity();
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) || std::isnan(ref[i])) return std::numeric_limits<double>::infinity();
    m = std::max(m, std::fabs(a[i] - ref[i]));
  }
  return m;
}

::testing::AssertionResult all_close(const std::vector<float>& a, const std::vector<double>& ref, double rtol,
                                     double atol) {
  if (a.size() != ref.size())
    return ::testing::AssertionFailure() << "size " << a.size() << " vs reference " << ref.size();
  std::ostringstream os;
  int misses = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const bool ok = !std::isnan(a[i]) && std::fabs(a[i] - ref[i]) <= atol + rtol * std::fabs(ref[i]);
    if (!ok) {
      if (misses < 8) os << "\n  [" << i << "] got " << a[i] << ", reference " << ref[i];
      ++misses;
    }
  }
  if (misses == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << misses << " of " << a.size() << " elements differ (rtol " << rtol
                                       << ", atol " << atol << "):" << os.str();
}

}  // namespace graft::testing

#include <filesystem>

namespace graft::testing {
std::string shared_path(const std::string& relative) {
  const std::string p = std::string(GRAFT_SHARED_DIR) + "/" + relative;
  return std::filesystem::exists(p) ? p : std::string();
}
}  // namespace graft::testing

namespace graft::testing {
::testing::AssertionResult throws_naming(const std::function<void()>& f, const std::vector<std::string>& needles) {
  try {
    f();
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const std::string& n : needles)
      if (msg.find(n) == std::string::npos)
        return ::testing::AssertionFailure() << "the message does not mention '" << n << "': " << msg;
    return ::testing::AssertionSuccess();
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "threw a non-graft exception: " << e.what();
  }
  return ::testing::AssertionFailure() << "no error was thrown";
}

std::string error_message(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace graft::testing

namespace graft::testing {
int64_t broadcast_flat_index(const Shape& shape, const Shape& out_shape, const std::vector<int64_t>& idx) {
  const size_t off = out_shape.size() - shape.size();
  int64_t flat = 0;
  for (size_t d = 0; d < shape.size(); ++d) flat = flat * shape[d] + (shape[d] == 1 ? 0 : idx[d + off]);
  return flat;
}
}  // namespace graft::testing
