#include "engine/core/error.h"

namespace graft {

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

namespace detail {
void throw_error(const std::string& msg, const char* file, int line) {
  // The message comes first: it is what the user reads. The source location
  // follows for the developer.
  std::string where = file;
  for (const char* layer : {"engine/", "importers/", "models/", "tools/"}) {
    auto slash = where.rfind(layer);
    if (slash != std::string::npos) {
      where = where.substr(slash);
      break;
    }
  }
  throw Error(msg + " (" + where + ":" + std::to_string(line) + ")");
}
}  // namespace detail

}  // namespace graft
