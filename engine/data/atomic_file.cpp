#include "engine/data/atomic_file.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "engine/core/error.h"

namespace graft::data {

AtomicFile::AtomicFile(const std::string& path) : path_(path), tmp_(path + ".tmp-" + std::to_string(::getpid())) {
  f_ = std::fopen(tmp_.c_str(), "wb");
  GRAFT_CHECK(f_ != nullptr, "cannot write '" << path << "': " << std::strerror(errno));
}

AtomicFile::~AtomicFile() {
  if (f_) {
    std::fclose(f_);
    std::remove(tmp_.c_str());
  }
}

void AtomicFile::write(const void* data, size_t n) {
  GRAFT_CHECK(f_ != nullptr, "write to '" << path_ << "' after commit");
  GRAFT_CHECK(n == 0 || std::fwrite(data, 1, n, f_) == n, "cannot write '" << path_ << "': " << std::strerror(errno));
}

void AtomicFile::commit() {
  GRAFT_CHECK(f_ != nullptr, "'" << path_ << "' committed twice");
  const bool ok = std::fflush(f_) == 0 && ::fsync(::fileno(f_)) == 0;
  const int err = errno;
  std::fclose(f_);
  f_ = nullptr;
  if (!ok || std::rename(tmp_.c_str(), path_.c_str()) != 0) {
    std::remove(tmp_.c_str());
    GRAFT_FAIL("cannot write '" << path_ << "': " << std::strerror(ok ? errno : err));
  }
}

}  // namespace graft::data
