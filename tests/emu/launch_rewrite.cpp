// Build tool of the CUDA emulator: copies a CUDA source, turning every kernel
// launch `kernel<<<grid, block, smem, stream>>>(args)` into
// `kernel | ::graft::emu::Config(grid, block, smem, stream)(args)`, which
// plain C++ compiles (cuda_emu.h defines the operator). Lines stay where they
// were, and a #line directive keeps the original file name in diagnostics.
//   launch_rewrite INPUT OUTPUT
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: launch_rewrite INPUT OUTPUT\n";
    return 2;
  }
  std::ifstream in(argv[1], std::ios::binary);
  if (!in) {
    std::cerr << "launch_rewrite: cannot read " << argv[1] << "\n";
    return 1;
  }
  std::stringstream buf;
  buf << in.rdbuf();
  const std::string src = buf.str();
  std::string out = "#line 1 \"" + std::string(argv[1]) + "\"\n";
  size_t pos = 0;
  for (;;) {
    const size_t open = src.find("<<<", pos);
    if (open == std::string::npos) break;
    const size_t close = src.find(">>>", open + 3);
    if (close == std::string::npos) {
      std::cerr << argv[1] << ": '<<<' without '>>>'\n";
      return 1;
    }
    out.append(src, pos, open - pos);
    out += " | ::graft::emu::Config(";
    out.append(src, open + 3, close - open - 3);
    out += ")";
    pos = close + 3;
  }
  out.append(src, pos, std::string::npos);
  const std::string tmp = std::string(argv[2]) + ".tmp";
  {
    std::ofstream o(tmp, std::ios::binary);
    o << out;
    if (!o) {
      std::cerr << "launch_rewrite: cannot write " << tmp << "\n";
      return 1;
    }
  }
  if (std::rename(tmp.c_str(), argv[2]) != 0) {
    std::cerr << "launch_rewrite: cannot rename " << tmp << " to " << argv[2] << "\n";
    return 1;
  }
  return 0;
}
