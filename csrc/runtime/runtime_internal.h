// Internals shared by the runtime's translation units (and its tests); not part of the driver API.
#pragma once

#include <cstddef>
#include <cstdint>

#include "runtime/foo_runtime.h"

namespace foo_rt {
namespace detail {

// c10 caps device indices of one type at 64; so do we, which lets per-device state live in fixed arrays.
constexpr int kMaxDevices = 64;
constexpr int kDefaultDeviceCount = 2;
constexpr std::size_t kDefaultMemoryLimit = std::size_t{8} << 30;
// Allocation granularity of device memory (one host page).
constexpr std::size_t kAllocationGranularity = 4096;

// Parsers of the environment settings: invalid or missing values give the default.
// Device count: a decimal integer in [0, kMaxDevices].
int parseDeviceCount(const char* text);
// Memory cap: a positive decimal integer, optionally followed by KB/MB/GB (powers of 1000) or KiB/MiB/GiB (powers of
// 1024), suffix case-insensitive.
std::size_t parseMemoryLimit(const char* text);

// Per-device cap from TORCH_FOO_MEMORY_LIMIT, rounded up to the allocation granularity; read once.
std::size_t memoryLimit();

inline bool isValidDevice(int device) { return device >= 0 && device < deviceCount(); }

// Called when the process first creates device memory or a stream worker: a child forked after that cannot use the
// runtime (forkedChild).
void markInUse() noexcept;

// True when [ptr, ptr + bytes) lies inside one live allocation of device memory (or one imported range).
bool isInsideAllocation(const void* ptr, std::size_t bytes);

// An asynchronous copy queued on a stream holds the pinned block it reads or writes: freeHost then keeps the block
// mapped until the copy releases it. Returns the block's start (for the release), or 0 if ptr is not pinned memory.
std::uintptr_t retainPinnedForCopy(const void* ptr);
void releasePinnedForCopy(std::uintptr_t block);

// The arena file behind a live allocation of this process and ptr's offset in it; false if ptr is not one.
bool arenaFile(const void* dev_ptr, int* fd, std::size_t* offset);

// Lookups in the device memory imported from other processes (ipcOpen); nullptr / -1 / false when not imported.
void* importedHostView(const void* dev_ptr);
void* importedDeviceAddress(const void* host_ptr);
int importedDevice(const void* dev_ptr);
bool isInsideImport(const void* dev_ptr, std::size_t bytes);

}  // namespace detail
}  // namespace foo_rt
