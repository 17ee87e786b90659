// Native _foreach_* kernels (what SGD, Adam and grad clipping use): every overload of every aten::_foreach_* op runs
// its ATen kernel over the whole tensor list in one device scope, instead of one fallback or kernel call per tensor.
// The AMP grad scaler's aten::_amp_* ops (unscale and check for inf/NaN, update the scale) run the same way.
#include <ATen/core/dispatch/Dispatcher.h>

#include "foo/registration.h"
#include "kernels/fallback.h"

namespace torch_foo {

FOO_KERNELS(foreach, m) {
  for (const c10::OperatorName& name : c10::Dispatcher::singleton().getAllOpNames()) {
    if (name.name.rfind("aten::_foreach_", 0) != 0 && name.name.rfind("aten::_amp_", 0) != 0) continue;
    const std::string op = name.name.substr(6) + (name.overload_name.empty() ? "" : "." + name.overload_name);
    m.impl(op.c_str(), torch::CppFunction::makeFromBoxedFunction<&runOnDevice>());
  }
}

}  // namespace torch_foo
