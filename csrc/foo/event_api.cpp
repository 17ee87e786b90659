// torch.ops.foo operators for torch.foo.Event: torch.Event.elapsed_time accepts only an exact torch.Event as its
// peer, so the torch.Event subclass torch.foo.Event times through the guard itself.
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <torch/library.h>

#include "foo/common.h"

namespace torch_foo {

TORCH_LIBRARY_FRAGMENT(foo, m) {
  // Events by their native handles (torch.Event.event_id; 0 for an event never recorded).
  m.def("event_elapsed_time(int start, int end) -> float", [](int64_t start, int64_t end) {
    return c10::impl::getDeviceGuardImpl(kFoo)->elapsedTime(reinterpret_cast<void*>(start),
                                                            reinterpret_cast<void*>(end), currentDevice());
  });
}

}  // namespace torch_foo
