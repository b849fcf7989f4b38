#!/usr/bin/env bash
# Run HERE (the build machine, with the Debian packages) before a GPU call:
# copies what the bare GPU machine lacks into ignored folders of the checkout,
# which the call then carries:
#   .gtest/   GoogleTest sources (/usr/src/googletest; CMake builds them)
#   .gbench/  Google Benchmark headers and shared library (Debian's build;
#             needs GLIBC >= 2.32 and GLIBCXX >= 3.4.30 there), and
#             .gbench/commit (the commit being checked)
# Then: device run with carry [".gtest", ".gbench"] and command
#   bash tools/gpu/check.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ -f /usr/src/googletest/CMakeLists.txt ]; then
  rm -rf .gtest
  cp -r /usr/src/googletest .gtest
  echo "prepare: .gtest <- /usr/src/googletest ($(du -sh .gtest | cut -f1))"
else
  echo "prepare: /usr/src/googletest is missing (apt-get install libgtest-dev): the CUDA tests cannot be built there" >&2
  exit 1
fi

lib=/usr/lib/x86_64-linux-gnu
if [ -f /usr/include/benchmark/benchmark.h ] && [ -e "$lib/libbenchmark.so" ]; then
  rm -rf .gbench
  mkdir -p .gbench/include .gbench/lib
  cp -r /usr/include/benchmark .gbench/include/
  real=$(readlink -f "$lib/libbenchmark.so")
  soname=$(objdump -p "$real" | awk '/SONAME/ {print $2}')
  # Plain files under every name (links may not travel): the soname the
  # program asks for at run time and the name the linker looks for.
  cp "$real" ".gbench/lib/${soname:-libbenchmark.so.1}"
  cp "$real" .gbench/lib/libbenchmark.so
  [ -f "$lib/libbenchmark_main.a" ] && cp "$lib/libbenchmark_main.a" .gbench/lib/
  need=$(objdump -T "$real" | grep -o 'GLIBC_[0-9.]*\|GLIBCXX_[0-9.]*' | sort -uV | awk -F_ '{v[$1]=$2} END {print "GLIBC " v["GLIBC"] ", GLIBCXX " v["GLIBCXX"]}')
  echo "prepare: .gbench <- Debian's Google Benchmark ($(basename "$real"), soname ${soname}; needs at least $need)"
else
  echo "prepare: Google Benchmark is not installed here (apt-get install libbenchmark-dev): the GPU check will run the tests only" >&2
fi

# The commit, for the results file name: the copied tree carries no .git, so
# it travels as .gbench/commit (check.sh also takes GRAFT_COMMIT=...).
mkdir -p .gbench
if git rev-parse --short=7 HEAD > /dev/null 2>&1; then
  c=$(git rev-parse --short=7 HEAD)
  git diff --quiet HEAD 2>/dev/null || c="$c-dirty"
  echo "$c" > .gbench/commit
  echo "prepare: .gbench/commit = $c"
fi
echo "prepare: now run on the GPU machine with carry [\".gtest\", \".gbench\"]: bash tools/gpu/check.sh"
