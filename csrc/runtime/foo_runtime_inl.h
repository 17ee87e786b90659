// Inline part of the runtime API: the per-kernel fast path must not cost a call into the library's queue logic.
#pragma once

namespace foo_rt {
namespace detail {
// True when nothing is queued or running on the stream's worker and no failure of queued work awaits reporting.
bool streamIdle(Stream stream) noexcept;
// The calling thread's current device as getDevice reads it (valid while the thread lives), for a caller that keeps
// its own per-thread state and would otherwise pay a call and a thread-local lookup per read.
const int* currentDeviceSlot() noexcept;
}  // namespace detail

template <class F>
Status runInOrder(Stream stream, F&& work) {
  if (stream == nullptr) return Status::InvalidHandle;
  if (forkedChild()) return Status::ForkedChild;
  if (!detail::streamIdle(stream)) {
    Status s = streamSynchronize(stream);
    if (s != Status::Success) return s;
  }
  work();
  return Status::Success;
}

}  // namespace foo_rt
