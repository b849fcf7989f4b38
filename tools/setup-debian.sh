#!/usr/bin/env bash
# Installs every build dependency of Graft on a fresh Debian machine.
# Idempotent: packages already present are left as they are. Run as root (or
# with sudo available). The CUDA toolkit is not installed here: when nvcc is
# on the machine, the build compiles the CUDA code (GRAFT_CUDA=AUTO).
set -euo pipefail

packages=(
  build-essential cmake ninja-build git pkg-config
  libopenblas-dev        # sgemm behind convolution and linear layers
  libgtest-dev           # tests
  libbenchmark-dev       # benchmarks
  libomp-dev             # OpenMP runtime headers (GCC's libgomp comes with g++)
  libjpeg-dev            # image decoding for data sets
  libonnx-dev libprotobuf-dev protobuf-compiler  # the ONNX importer
  nlohmann-json3-dev libcli11-dev                 # CLI and JSON
  python3 python3-venv   # fixture generation (tools/onnx), never needed at run time
  clang libclang-rt-dev  # the bounded libFuzzer run of the ONNX loader (tools/fuzz)
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
# The package lists first, always: a fresh machine has stale or none.
$SUDO apt-get update -qq

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup-debian: all ${#packages[@]} packages already installed"
  exit 0
fi
echo "setup-debian: installing ${missing[*]}"
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup-debian: done"
