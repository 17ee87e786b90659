// torch.ops.foo operators behind torch.foo.Stream and torch.foo.Event for what torch.Stream / torch.Event do not
// offer: a stream's priority, and elapsed_time between torch.Event subclasses (torch.Event.elapsed_time accepts only
// an exact torch.Event as its peer).
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <torch/library.h>

#include "foo/common.h"
#include "foo/stream.h"

namespace torch_foo {

TORCH_LIBRARY_FRAGMENT(foo, m) {
  m.def("stream_priority(int stream_id, int device) -> int", [](int64_t stream_id, int64_t device) -> int64_t {
    checkDeviceIndex(device);
    const c10::Stream stream(c10::Stream::UNSAFE, c10::Device(kFoo, static_cast<c10::DeviceIndex>(device)), stream_id);
    return foo_rt::streamPriority(runtimeStream(stream));
  });
  // Events by their native handles (torch.Event.event_id; 0 for an event never recorded).
  m.def("event_elapsed_time(int start, int end) -> float", [](int64_t start, int64_t end) {
    return c10::impl::getDeviceGuardImpl(kFoo)->elapsedTime(reinterpret_cast<void*>(start),
                                                            reinterpret_cast<void*>(end), currentDevice());
  });
}

}  // namespace torch_foo
