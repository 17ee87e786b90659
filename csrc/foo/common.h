// Shared helpers of the PyTorch integration: status checks and device-index validation.
#pragma once

#include <c10/core/Device.h>
#include <c10/util/Exception.h>

#include "runtime/foo_runtime.h"

namespace torch_foo {

constexpr c10::DeviceType kFoo = c10::DeviceType::PrivateUse1;

// Turns a runtime status into a Python RuntimeError naming the call that failed.
#define FOO_CHECK(expr)                                                                        \
  do {                                                                                         \
    ::foo_rt::Status foo_status_ = (expr);                                                     \
    TORCH_CHECK(foo_status_ == ::foo_rt::Status::Success, "foo runtime error in ", #expr, ": ", \
                ::torch_foo::describeStatus(foo_status_));                                     \
  } while (0)

// A status in words; a failure of queued work adds what failed.
inline std::string describeStatus(foo_rt::Status status) {
  std::string text = foo_rt::statusString(status);
  if (status == foo_rt::Status::WorkFailed) text.append(" (").append(foo_rt::lastWorkFailure()).append(")");
  return text;
}

inline c10::DeviceIndex deviceCount() noexcept { return static_cast<c10::DeviceIndex>(foo_rt::deviceCount()); }

// Raises a RuntimeError naming the valid range (as CUDA does for an invalid device ordinal).
inline void checkDeviceIndex(int64_t index) {
  const int count = foo_rt::deviceCount();
  TORCH_CHECK(index >= 0 && index < count, "foo device index ", index, " is out of range: ",
              count == 0 ? std::string("there are no foo devices")
                         : "valid devices are foo:0 to foo:" + std::to_string(count - 1) + " (" +
                               std::to_string(count) + " devices)");
}

inline c10::DeviceIndex currentDevice() {
  int device = 0;
  FOO_CHECK(foo_rt::getDevice(&device));
  return static_cast<c10::DeviceIndex>(device);
}

inline void setCurrentDevice(int64_t index) {
  checkDeviceIndex(index);
  FOO_CHECK(foo_rt::setDevice(static_cast<int>(index)));
}

// Index of a foo device, resolving "foo" (no index) to the current device.
inline c10::DeviceIndex resolveIndex(const c10::Device& device) {
  if (!device.has_index()) return currentDevice();
  checkDeviceIndex(device.index());
  return device.index();
}

// Sets the thread's current foo device for a scope; cheap (a thread-local store), no validation of the old value.
class DeviceScope {
 public:
  explicit DeviceScope(c10::DeviceIndex index) : previous_(currentDevice()) {
    if (index != previous_) setCurrentDevice(index);
  }
  ~DeviceScope() { foo_rt::setDevice(previous_); }
  DeviceScope(const DeviceScope&) = delete;
  DeviceScope& operator=(const DeviceScope&) = delete;

 private:
  c10::DeviceIndex previous_;
};

}  // namespace torch_foo
