// memcpy and memcpyAsync: device sides are reached through their host alias.
#include <cstdint>
#include <cstring>
#include <new>
#include <utility>

#include "runtime/foo_runtime.h"
#include "runtime/runtime_internal.h"

namespace foo_rt {
namespace {

// One side of a copy: the device owning it (-1 for host memory) and the address the runtime reads or writes.
struct CopySide {
  int device = -1;
  void* address = nullptr;
};

// Resolves ptr for a copy of `bytes`; false if it is device memory and the range leaves its allocation.
bool resolveSide(const void* ptr, std::size_t bytes, CopySide* side) {
  side->device = pointerDevice(ptr);
  if (side->device < 0) {
    side->address = const_cast<void*>(ptr);
    return true;
  }
  side->address = hostView(ptr);
  return detail::isInsideAllocation(ptr, bytes);
}

// Holds a pinned host side for a queued copy (see detail::retainPinnedForCopy). `stable` is false for pageable host
// memory, whose copies cannot be queued.
struct QueuedSide {
  explicit QueuedSide(const CopySide& side)
      : block(side.device < 0 ? detail::retainPinnedForCopy(side.address) : 0), stable(side.device >= 0 || block != 0) {}
  std::uintptr_t block;
  bool stable;
};

}  // namespace

Status memcpy(void* dst, const void* src, std::size_t bytes) {
  if (forkedChild()) return Status::ForkedChild;
  if (bytes == 0) return Status::Success;
  if (dst == nullptr || src == nullptr) return Status::InvalidValue;
  CopySide to, from;
  if (!resolveSide(dst, bytes, &to) || !resolveSide(src, bytes, &from)) return Status::InvalidValue;
  for (int device : {to.device, from.device}) {
    if (device < 0) continue;
    const Status status = streamSynchronize(defaultStream(device));
    if (status != Status::Success) return status;
  }
  std::memmove(to.address, from.address, bytes);
  return Status::Success;
}

Status memcpyAsync(void* dst, const void* src, std::size_t bytes, Stream stream) {
  if (forkedChild()) return Status::ForkedChild;
  if (bytes == 0) return Status::Success;
  if (dst == nullptr || src == nullptr) return Status::InvalidValue;
  CopySide to, from;
  if (!resolveSide(dst, bytes, &to) || !resolveSide(src, bytes, &from)) return Status::InvalidValue;
  if (stream == nullptr) {
    const int device = to.device >= 0 ? to.device : from.device;
    if (device < 0) {  // host to host: nothing to order with
      std::memmove(to.address, from.address, bytes);
      return Status::Success;
    }
    stream = defaultStream(device);
  } else if (streamDevice(stream) < 0) {
    return Status::InvalidHandle;
  }
  const QueuedSide queued_to(to), queued_from(from);
  auto release = [blocks = std::make_pair(queued_to.block, queued_from.block)] {
    detail::releasePinnedForCopy(blocks.first);
    detail::releasePinnedForCopy(blocks.second);
  };
  // A pageable host buffer may be reused as soon as we return, so that copy happens now (after the stream's work).
  if (!queued_to.stable || !queued_from.stable) {
    release();
    return runInOrder(stream, [to = to.address, from = from.address, bytes] { std::memmove(to, from, bytes); });
  }
  Status status = Status::OutOfMemory;
  try {
    status = launchAsync(stream, [to = to.address, from = from.address, bytes, release] {
      std::memmove(to, from, bytes);
      release();
    });
  } catch (const std::bad_alloc&) {
  }
  if (status != Status::Success) release();
  return status;
}

}  // namespace foo_rt
