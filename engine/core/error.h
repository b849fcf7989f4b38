// Errors: every failure is a graft::Error whose message names the op and the
// shapes involved. GRAFT_CHECK builds the message with stream syntax only when
// the condition fails.
#pragma once

#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace graft {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// "[2, 3, 4]"
std::string shape_str(const std::vector<int64_t>& shape);

namespace detail {
[[noreturn]] void throw_error(const std::string& msg, const char* file, int line);
}  // namespace detail

}  // namespace graft

// GRAFT_CHECK(cond, "conv2d: input " << shape_str(x.shape()) << " ...");
#define GRAFT_CHECK(cond, msg)                                        \
  do {                                                                \
    if (!(cond)) {                                                    \
      std::ostringstream graft_check_os_;                             \
      graft_check_os_ << msg;                                         \
      ::graft::detail::throw_error(graft_check_os_.str(), __FILE__, __LINE__); \
    }                                                                 \
  } while (0)

#define GRAFT_FAIL(msg) GRAFT_CHECK(false, msg)
