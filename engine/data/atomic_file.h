// Writes a file under a temporary name and renames it into place on commit(),
// so a crash or an error never leaves a half-written file under the real name.
#pragma once

#include <cstdio>
#include <string>

namespace graft::data {

class AtomicFile {
 public:
  explicit AtomicFile(const std::string& path);
  ~AtomicFile();  // without commit(): removes the temporary file
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t n);
  void commit();  // flush, fsync, rename

 private:
  std::string path_, tmp_;
  std::FILE* f_ = nullptr;
};

}  // namespace graft::data
