// Pinned host memory: page-aligned mappings tracked so that any address inside one can be recognised, and kept
// mapped while queued asynchronous copies still use them.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <new>

#include "runtime/foo_runtime.h"
#include "runtime/runtime_internal.h"

namespace foo_rt {
namespace {

struct PinnedBlock {
  std::size_t bytes;
  int queued_copies = 0;  // asynchronous copies queued on a stream that read or write the block
};

struct PinnedAllocations {
  std::mutex mutex;
  std::map<std::uintptr_t, PinnedBlock> live;
  // Freed by their owner while queued copies still use them: mapped until the last of those copies has run, so the
  // copy neither faults nor touches memory a later mapping reuses (CUDA's host allocator keeps such blocks until the
  // copy's event completes).
  std::map<std::uintptr_t, PinnedBlock> retired;
};

// Never destroyed: freeHost may run from other libraries' static destructors at exit.
PinnedAllocations& pinnedAllocations() {
  static PinnedAllocations* allocations = new PinnedAllocations;
  return *allocations;
}

// The live block holding address (caller holds the mutex).
std::map<std::uintptr_t, PinnedBlock>::iterator findLive(PinnedAllocations& pinned, const void* ptr) {
  const auto address = reinterpret_cast<std::uintptr_t>(ptr);
  auto it = pinned.live.upper_bound(address);
  if (it == pinned.live.begin()) return pinned.live.end();
  --it;
  return address - it->first < it->second.bytes ? it : pinned.live.end();
}

std::size_t mappedLength(std::size_t bytes) {
  static const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  return (bytes + page - 1) / page * page;
}

}  // namespace

Status mallocHost(void** ptr, std::size_t bytes) {
  if (ptr == nullptr) return Status::InvalidValue;
  *ptr = nullptr;
  if (bytes == 0) return Status::Success;
  if (bytes > SIZE_MAX / 2) return Status::OutOfMemory;
  void* mapping = mmap(nullptr, mappedLength(bytes), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mapping == MAP_FAILED) return Status::OutOfMemory;
  PinnedAllocations& pinned = pinnedAllocations();
  try {
    std::lock_guard<std::mutex> lock(pinned.mutex);
    pinned.live.emplace(reinterpret_cast<std::uintptr_t>(mapping), PinnedBlock{bytes});
  } catch (const std::bad_alloc&) {
    munmap(mapping, mappedLength(bytes));
    return Status::OutOfMemory;
  }
  *ptr = mapping;
  return Status::Success;
}

Status freeHost(void* ptr) {
  if (ptr == nullptr) return Status::Success;
  PinnedAllocations& pinned = pinnedAllocations();
  std::size_t bytes = 0;
  {
    std::lock_guard<std::mutex> lock(pinned.mutex);
    auto it = pinned.live.find(reinterpret_cast<std::uintptr_t>(ptr));
    if (it == pinned.live.end()) return Status::InvalidValue;
    bytes = it->second.bytes;
    if (it->second.queued_copies > 0) {
      pinned.retired.insert(pinned.live.extract(it));  // moves the node: no allocation
      return Status::Success;
    }
    pinned.live.erase(it);
  }
  munmap(ptr, mappedLength(bytes));
  return Status::Success;
}

bool isPinned(const void* ptr) {
  PinnedAllocations& pinned = pinnedAllocations();
  std::lock_guard<std::mutex> lock(pinned.mutex);
  return findLive(pinned, ptr) != pinned.live.end();
}

namespace detail {

std::uintptr_t retainPinnedForCopy(const void* ptr) {
  PinnedAllocations& pinned = pinnedAllocations();
  std::lock_guard<std::mutex> lock(pinned.mutex);
  auto it = findLive(pinned, ptr);
  if (it == pinned.live.end()) return 0;
  ++it->second.queued_copies;
  return it->first;
}

void releasePinnedForCopy(std::uintptr_t start) {
  if (start == 0) return;
  PinnedAllocations& pinned = pinnedAllocations();
  std::size_t unmap_bytes = 0;
  {
    std::lock_guard<std::mutex> lock(pinned.mutex);
    auto it = pinned.live.find(start);
    if (it != pinned.live.end()) {
      --it->second.queued_copies;
      return;
    }
    it = pinned.retired.find(start);
    if (it == pinned.retired.end() || --it->second.queued_copies > 0) return;
    unmap_bytes = it->second.bytes;
    pinned.retired.erase(it);
  }
  munmap(reinterpret_cast<void*>(start), mappedLength(unmap_bytes));
}

}  // namespace detail
}  // namespace foo_rt
