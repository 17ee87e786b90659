// Pinned host memory: page-aligned mappings tracked so that any address inside one can be recognised.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <new>

#include "runtime/foo_runtime.h"

namespace foo_rt {
namespace {

struct PinnedAllocations {
  std::mutex mutex;
  std::map<std::uintptr_t, std::size_t> bytes_by_start;
};

// Never destroyed: freeHost may run from other libraries' static destructors at exit.
PinnedAllocations& pinnedAllocations() {
  static PinnedAllocations* allocations = new PinnedAllocations;
  return *allocations;
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
    pinned.bytes_by_start.emplace(reinterpret_cast<std::uintptr_t>(mapping), bytes);
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
    auto it = pinned.bytes_by_start.find(reinterpret_cast<std::uintptr_t>(ptr));
    if (it == pinned.bytes_by_start.end()) return Status::InvalidValue;
    bytes = it->second;
    pinned.bytes_by_start.erase(it);
  }
  munmap(ptr, mappedLength(bytes));
  return Status::Success;
}

bool isPinned(const void* ptr) {
  const auto address = reinterpret_cast<std::uintptr_t>(ptr);
  PinnedAllocations& pinned = pinnedAllocations();
  std::lock_guard<std::mutex> lock(pinned.mutex);
  auto it = pinned.bytes_by_start.upper_bound(address);
  if (it == pinned.bytes_by_start.begin()) return false;
  --it;
  return address - it->first < it->second;
}

}  // namespace foo_rt
