// Convolution has no native foo kernel yet. ATen routes convolutions of out-of-tree devices to
// convolution_overrideable, which only throws, so the backend fallback never sees them: send the entry points to the
// fallback explicitly (counted in fallback_stats like any other fallback op).
#include "foo/registration.h"
#include "kernels/fallback.h"

namespace torch_foo {

FOO_KERNELS(convolution, m) {
  for (const char* op : {"convolution", "convolution_backward"}) {
    m.impl(op, torch::CppFunction::makeFromBoxedFunction<&fooFallback>());
  }
}

}  // namespace torch_foo
