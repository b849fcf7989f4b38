// Devices. A machine without a usable GPU runs everything on the CPU; asking
// for the CUDA device there is a clear error, never a crash.
#pragma once

#include <string>

namespace graft {

enum class DeviceType : uint8_t { cpu, cuda };

struct Device {
  DeviceType type = DeviceType::cpu;
  int index = 0;

  static Device cpu() { return {DeviceType::cpu, 0}; }
  static Device cuda(int index = 0) { return {DeviceType::cuda, index}; }
  bool is_cpu() const { return type == DeviceType::cpu; }
  bool is_cuda() const { return type == DeviceType::cuda; }
  bool operator==(const Device& o) const { return type == o.type && (type == DeviceType::cpu || index == o.index); }
  bool operator!=(const Device& o) const { return !(*this == o); }
  std::string str() const;  // "cpu", "cuda:0"
};

// Parses "cpu", "cuda", "cuda:1"; throws on anything else.
Device parse_device(const std::string& s);

// True when CUDA is compiled in and a device answers. Every CUDA error at
// start-up (no driver, driver too old, no device) reads as "no GPU".
bool cuda_available();
int cuda_device_count();
// Why CUDA is unavailable, in words (empty when it is available).
std::string cuda_unavailable_reason();

// Throws a clear error unless `d` can be used on this machine.
void check_device_usable(const Device& d, const char* what);

}  // namespace graft
