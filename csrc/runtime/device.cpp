// Device enumeration, environment settings and the per-thread current device.
#include <cstdlib>
#include <cstring>
#include <limits>
#include <pthread.h>
#include <strings.h>

#include <atomic>

#include "runtime/foo_runtime.h"
#include "runtime/runtime_internal.h"

namespace foo_rt {
namespace detail {
namespace {

// Parses a run of decimal digits starting at *text into *value; advances *text past them. False on no digit or
// overflow.
bool parseDecimal(const char** text, std::size_t* value) {
  const char* p = *text;
  std::size_t result = 0;
  for (; *p >= '0' && *p <= '9'; ++p) {
    const std::size_t digit = static_cast<std::size_t>(*p - '0');
    if (result > (std::numeric_limits<std::size_t>::max() - digit) / 10) return false;
    result = result * 10 + digit;
  }
  if (p == *text) return false;
  *text = p;
  *value = result;
  return true;
}

}  // namespace

int parseDeviceCount(const char* text) {
  if (text == nullptr) return kDefaultDeviceCount;
  std::size_t count = 0;
  if (!parseDecimal(&text, &count) || *text != '\0' || count > static_cast<std::size_t>(kMaxDevices)) {
    return kDefaultDeviceCount;
  }
  return static_cast<int>(count);
}

std::size_t parseMemoryLimit(const char* text) {
  if (text == nullptr) return kDefaultMemoryLimit;
  std::size_t number = 0;
  if (!parseDecimal(&text, &number) || number == 0) return kDefaultMemoryLimit;
  struct Suffix {
    const char* name;
    std::size_t multiplier;
  };
  static constexpr Suffix kSuffixes[] = {
      {"", 1},
      {"B", 1},
      {"KB", 1000},
      {"MB", 1000 * 1000},
      {"GB", 1000 * 1000 * 1000},
      {"KiB", std::size_t{1} << 10},
      {"MiB", std::size_t{1} << 20},
      {"GiB", std::size_t{1} << 30},
  };
  for (const Suffix& suffix : kSuffixes) {
    if (strcasecmp(text, suffix.name) != 0) continue;
    if (number > std::numeric_limits<std::size_t>::max() / suffix.multiplier) return kDefaultMemoryLimit;
    return number * suffix.multiplier;
  }
  return kDefaultMemoryLimit;
}

std::size_t memoryLimit() {
  static const std::size_t limit = [] {
    const std::size_t bytes = parseMemoryLimit(std::getenv("TORCH_FOO_MEMORY_LIMIT"));
    const std::size_t granules = bytes / kAllocationGranularity + (bytes % kAllocationGranularity != 0);
    return granules * kAllocationGranularity;
  }();
  return limit;
}

}  // namespace detail

namespace {
thread_local int t_current_device = 0;

std::atomic<bool> g_in_use{false};
std::atomic<bool> g_forked_child{false};

void onForkChild() {
  if (g_in_use.load(std::memory_order_relaxed)) g_forked_child.store(true, std::memory_order_relaxed);
}

// Registered when the library loads, so no fork can slip between the first use and the registration.
[[maybe_unused]] const int g_fork_handler_registered = pthread_atfork(nullptr, nullptr, &onForkChild);
}  // namespace

namespace detail {
void markInUse() noexcept { g_in_use.store(true, std::memory_order_relaxed); }
}  // namespace detail

bool forkedChild() noexcept { return g_forked_child.load(std::memory_order_relaxed); }

int deviceCount() {
  static const int count = detail::parseDeviceCount(std::getenv("TORCH_FOO_DEVICE_COUNT"));
  return count;
}

Status getDevice(int* device) {
  if (device == nullptr) return Status::InvalidValue;
  *device = t_current_device;
  // Only possible with zero devices: setDevice never stores an invalid index.
  return detail::isValidDevice(t_current_device) ? Status::Success : Status::InvalidDevice;
}

const int* detail::currentDeviceSlot() noexcept { return &t_current_device; }

Status setDevice(int device) {
  if (!detail::isValidDevice(device)) return Status::InvalidDevice;
  t_current_device = device;
  return Status::Success;
}

}  // namespace foo_rt
