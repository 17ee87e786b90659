// Device memory: one memfd arena per device, mapped twice (PROT_NONE device view, read-write host alias), with a
// best-fit sub-allocator inside it.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <iterator>
#include <map>
#include <mutex>
#include <new>
#include <set>
#include <string>
#include <utility>

#include "runtime/foo_runtime.h"
#include "runtime/runtime_internal.h"

namespace foo_rt {
namespace {

using detail::kAllocationGranularity;

std::size_t roundUpToGranularity(std::size_t bytes) {
  return (bytes + kAllocationGranularity - 1) / kAllocationGranularity * kAllocationGranularity;
}

// One device's memory. The two bases and the size never change once the arena is published, so address lookups
// read them without a lock; the allocator state behind them is guarded by mutex_.
class Arena {
 public:
  // Maps a fresh arena of `size` bytes; nullptr if the system refuses.
  static Arena* create(int device, std::size_t size) {
    const std::string name = "foo-device-" + std::to_string(device);
    const int fd = memfd_create(name.c_str(), MFD_CLOEXEC);
    if (fd < 0) return nullptr;
    void* device_view = MAP_FAILED;
    void* host_view = MAP_FAILED;
    if (ftruncate(fd, static_cast<off_t>(size)) == 0) {
      device_view = mmap(nullptr, size, PROT_NONE, MAP_SHARED, fd, 0);
      host_view = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    }
    Arena* arena = nullptr;
    if (device_view != MAP_FAILED && host_view != MAP_FAILED) {
      arena = new (std::nothrow) Arena(static_cast<char*>(device_view), static_cast<char*>(host_view), size, fd);
    }
    if (arena == nullptr) {
      if (device_view != MAP_FAILED) munmap(device_view, size);
      if (host_view != MAP_FAILED) munmap(host_view, size);
      close(fd);
    }
    return arena;
  }

  bool containsDeviceAddress(const void* ptr) const { return offsetIn(device_base_, ptr) < size_; }
  bool containsHostAddress(const void* ptr) const { return offsetIn(host_base_, ptr) < size_; }
  void* hostAddress(const void* dev_ptr) const { return host_base_ + offsetIn(device_base_, dev_ptr); }
  void* deviceAddress(const void* host_ptr) const { return device_base_ + offsetIn(host_base_, host_ptr); }
  std::size_t offsetOf(const void* dev_ptr) const { return offsetIn(device_base_, dev_ptr); }
  int fd() const { return fd_; }

  Status allocate(std::size_t bytes, void** dev_ptr) {
    if (bytes > size_) return Status::OutOfMemory;  // also keeps the rounding below from overflowing
    const std::size_t length = roundUpToGranularity(bytes);
    std::lock_guard<std::mutex> lock(mutex_);
    auto best = free_by_size_.lower_bound({length, 0});
    if (best == free_by_size_.end()) return Status::OutOfMemory;
    const auto [extent_length, offset] = *best;
    allocations_.emplace(offset, length);  // the only step that allocates: nothing changes if it throws
    auto by_size = free_by_size_.extract(best);
    auto by_offset = free_by_offset_.extract(offset);
    if (extent_length > length) {  // the extent's nodes describe what is left of it
      by_size.value() = {extent_length - length, offset + length};
      by_offset.key() = offset + length;
      by_offset.mapped() = extent_length - length;
      free_by_size_.insert(std::move(by_size));
      free_by_offset_.insert(std::move(by_offset));
    }
    allocated_bytes_ += length;
    *dev_ptr = device_base_ + offset;
    return Status::Success;
  }

  Status release(const void* dev_ptr) {
    const std::size_t offset = offsetIn(device_base_, dev_ptr);
    std::size_t length = 0;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = allocations_.find(offset);
      if (it == allocations_.end()) return Status::InvalidValue;
      length = it->second;
      allocations_.erase(it);
    }
    // Return the pages to the system outside the lock (large ranges take a while). The range cannot be handed out
    // meanwhile: it is in neither map. A failure only leaves the pages resident.
    fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
              static_cast<off_t>(length));
    std::lock_guard<std::mutex> lock(mutex_);
    addFreeExtentCoalescing(offset, length);
    allocated_bytes_ -= length;
    return Status::Success;
  }

  std::size_t allocatedBytes() {
    std::lock_guard<std::mutex> lock(mutex_);
    return allocated_bytes_;
  }

  bool isInsideAllocation(const void* dev_ptr, std::size_t bytes) {
    const std::size_t offset = offsetIn(device_base_, dev_ptr);
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = allocations_.upper_bound(offset);
    if (it == allocations_.begin()) return false;
    --it;
    const std::size_t into = offset - it->first;
    return into < it->second && bytes <= it->second - into;
  }

 private:
  Arena(char* device_base, char* host_base, std::size_t size, int fd)
      : device_base_(device_base), host_base_(host_base), size_(size), fd_(fd) {
    addFreeExtent(0, size);
  }

  // Offset of ptr from base; addresses below base wrap to huge values, so one comparison checks the range.
  static std::size_t offsetIn(const char* base, const void* ptr) {
    return reinterpret_cast<std::uintptr_t>(ptr) - reinterpret_cast<std::uintptr_t>(base);
  }

  void addFreeExtent(std::size_t offset, std::size_t length) {
    free_by_offset_.emplace(offset, length);
    free_by_size_.emplace(length, offset);
  }

  void addFreeExtentCoalescing(std::size_t offset, std::size_t length) {
    auto next = free_by_offset_.lower_bound(offset);
    if (next != free_by_offset_.end() && next->first == offset + length) {
      length += next->second;
      free_by_size_.erase({next->second, next->first});
      next = free_by_offset_.erase(next);
    }
    if (next != free_by_offset_.begin()) {
      auto previous = std::prev(next);
      if (previous->first + previous->second == offset) {
        offset = previous->first;
        length += previous->second;
        free_by_size_.erase({previous->second, previous->first});
        free_by_offset_.erase(previous);
      }
    }
    addFreeExtent(offset, length);
  }

  char* const device_base_;  // PROT_NONE: the addresses user code holds
  char* const host_base_;    // read-write alias for the runtime and kernels
  const std::size_t size_;
  const int fd_;

  std::mutex mutex_;
  std::map<std::size_t, std::size_t> free_by_offset_;                 // offset -> length
  std::set<std::pair<std::size_t, std::size_t>> free_by_size_;        // (length, offset): best fit = lower_bound
  std::map<std::size_t, std::size_t> allocations_;                    // offset -> length
  std::size_t allocated_bytes_ = 0;
};

// Arenas are created on first malloc of their device and live for the rest of the process (kernels and worker
// threads may still touch them during exit).
std::array<std::atomic<Arena*>, detail::kMaxDevices> g_arenas{};
// One past the highest device with an arena: address lookups, which run for every kernel result, scan only these.
std::atomic<int> g_arenas_end{0};
std::mutex g_arena_creation_mutex;

Arena* arenaOrCreate(int device) {
  Arena* arena = g_arenas[device].load(std::memory_order_acquire);
  if (arena != nullptr) return arena;
  std::lock_guard<std::mutex> lock(g_arena_creation_mutex);
  arena = g_arenas[device].load(std::memory_order_relaxed);
  if (arena == nullptr) {
    detail::markInUse();
    arena = Arena::create(device, detail::memoryLimit());
    g_arenas[device].store(arena, std::memory_order_release);
    if (device >= g_arenas_end.load(std::memory_order_relaxed)) {
      g_arenas_end.store(device + 1, std::memory_order_release);
    }
  }
  return arena;
}

// The arena whose device view holds ptr, with its device; nullptr if none.
Arena* arenaOfDeviceAddress(const void* ptr, int* device) {
  const int end = g_arenas_end.load(std::memory_order_acquire);
  for (int d = 0; d < end; ++d) {
    Arena* arena = g_arenas[d].load(std::memory_order_acquire);
    if (arena != nullptr && arena->containsDeviceAddress(ptr)) {
      *device = d;
      return arena;
    }
  }
  return nullptr;
}

}  // namespace

namespace detail {

bool isInsideAllocation(const void* ptr, std::size_t bytes) {
  int device = -1;
  Arena* arena = arenaOfDeviceAddress(ptr, &device);
  return arena != nullptr ? arena->isInsideAllocation(ptr, bytes) : isInsideImport(ptr, bytes);
}

bool arenaFile(const void* dev_ptr, int* fd, std::size_t* offset) {
  int device = -1;
  Arena* arena = arenaOfDeviceAddress(dev_ptr, &device);
  if (arena == nullptr || !arena->isInsideAllocation(dev_ptr, 1)) return false;
  *fd = arena->fd();
  *offset = arena->offsetOf(dev_ptr);
  return true;
}

}  // namespace detail

Status malloc(int device, void** dev_ptr, std::size_t bytes) {
  if (forkedChild()) return Status::ForkedChild;
  if (dev_ptr == nullptr) return Status::InvalidValue;
  if (!detail::isValidDevice(device)) return Status::InvalidDevice;
  *dev_ptr = nullptr;
  if (bytes == 0) return Status::Success;
  try {
    Arena* arena = arenaOrCreate(device);
    if (arena == nullptr) return Status::SystemError;
    return arena->allocate(bytes, dev_ptr);
  } catch (const std::bad_alloc&) {
    return Status::OutOfMemory;
  }
}

Status free(void* dev_ptr) {
  // A forked child shares the memory with its parent: releasing it would punch holes in the parent's data.
  if (dev_ptr == nullptr || forkedChild()) return Status::Success;
  int device = -1;
  Arena* arena = arenaOfDeviceAddress(dev_ptr, &device);
  if (arena == nullptr) return Status::InvalidValue;
  try {
    return arena->release(dev_ptr);
  } catch (const std::bad_alloc&) {
    return Status::OutOfMemory;
  }
}

Status memGetInfo(int device, std::size_t* free_bytes, std::size_t* total_bytes) {
  if (forkedChild()) return Status::ForkedChild;
  if (free_bytes == nullptr || total_bytes == nullptr) return Status::InvalidValue;
  if (!detail::isValidDevice(device)) return Status::InvalidDevice;
  Arena* arena = g_arenas[device].load(std::memory_order_acquire);
  const std::size_t allocated = arena != nullptr ? arena->allocatedBytes() : 0;
  *total_bytes = detail::memoryLimit();
  *free_bytes = *total_bytes - allocated;
  return Status::Success;
}

void* hostView(const void* dev_ptr) {
  int device = -1;
  Arena* arena = arenaOfDeviceAddress(dev_ptr, &device);
  return arena != nullptr ? arena->hostAddress(dev_ptr) : detail::importedHostView(dev_ptr);
}

void* deviceAddress(const void* host_ptr, int* device) {
  const int end = g_arenas_end.load(std::memory_order_acquire);
  for (int d = 0; d < end; ++d) {
    Arena* arena = g_arenas[d].load(std::memory_order_acquire);
    if (arena != nullptr && arena->containsHostAddress(host_ptr)) {
      if (device != nullptr) *device = d;
      return arena->deviceAddress(host_ptr);
    }
  }
  void* imported = detail::importedDeviceAddress(host_ptr);
  if (device != nullptr) *device = imported != nullptr ? pointerDevice(imported) : -1;
  return imported;
}

int pointerDevice(const void* ptr) {
  int device = -1;
  return arenaOfDeviceAddress(ptr, &device) != nullptr ? device : detail::importedDevice(ptr);
}

}  // namespace foo_rt
