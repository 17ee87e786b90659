// torch.ops.foo: the state library's own operators, used by the Python package (no pybind11 needed). The kernel
// registry's operators are defined beside it, in registration.cpp; the custom operators (mymuladd, ...) in the
// reloadable kernels library, csrc/kernels/custom_ops.cpp.
#include <torch/library.h>

#include <chrono>
#include <thread>

#include "foo/common.h"
#include "foo/fallback_report.h"
#include "foo/generator.h"
#include "foo/stream.h"

namespace torch_foo {
namespace {

std::tuple<std::vector<std::string>, std::vector<int64_t>> fallbackStats() {
  std::vector<std::string> names;
  std::vector<int64_t> counts;
  for (auto& [name, count] : fallbackCounts()) {
    names.push_back(name);
    counts.push_back(count);
  }
  return {names, counts};
}

// A kernel that only takes time, queued on the current stream of the current device (as torch.cuda._sleep): tests
// use it to keep a stream busy while they check what may and may not run meanwhile.
void sleepOnStream(int64_t microseconds) {
  TORCH_CHECK(microseconds >= 0, "sleep: microseconds must be >= 0, got ", microseconds);
  FOO_CHECK(foo_rt::launchAsync(currentRuntimeStream(currentDevice()), [microseconds] {
    std::this_thread::sleep_for(std::chrono::microseconds(microseconds));
  }));
}

std::string policyName() {
  switch (fallbackPolicy()) {
    case FallbackPolicy::Allow: return "allow";
    case FallbackPolicy::Warn: return "warn";
    case FallbackPolicy::Error: return "error";
  }
  return "allow";
}

// The build calls it once per build, in a child process: a toolchain whose libraries crash on a C++ exception with a
// formatted message (seen with a CXX wrapper script) must be refused at build time, not found in a user's program.
void raiseFormattedError(c10::IntArrayRef sizes) {
  TORCH_CHECK(false, "a formatted C++ error for sizes ", sizes, " reached Python");
}

}  // namespace

TORCH_LIBRARY(foo, m) {
  m.def("fallback_stats() -> (str[], int[])", &fallbackStats);
  m.def("reset_fallback_stats() -> ()", &resetFallbackCounts);
  m.def("fallback_policy() -> str", &policyName);
  m.def("set_fallback_policy(str policy) -> ()", [](const std::string& policy) {
    setFallbackPolicy(parseFallbackPolicy(policy));
  });
  m.def("in_bad_fork() -> bool", [] { return foo_rt::forkedChild(); });
  m.def("sleep(int microseconds) -> ()", &sleepOnStream);
  m.def("raise_formatted_error(int[] sizes) -> ()", &raiseFormattedError);
  m.def("default_generator(int device) -> Generator?", [](int64_t device) -> at::Generator {
    checkDeviceIndex(device);
    return defaultGenerator(static_cast<c10::DeviceIndex>(device));
  });
}

}  // namespace torch_foo
