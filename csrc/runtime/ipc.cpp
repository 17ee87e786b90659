// Device memory shared between processes: another process's memfd range mapped here as device memory, the same two
// views as an arena (PROT_NONE device addresses, a read-write host alias), registered so that hostView, copies and
// pointerDevice treat it as memory of the device it was opened on.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <shared_mutex>
#include <vector>

#include "runtime/foo_runtime.h"
#include "runtime/runtime_internal.h"

namespace foo_rt {
namespace {

struct Import {
  char* device_base;  // page-aligned mapping start; the handed-out address is device_base + lead
  char* host_base;
  std::size_t length;  // mapped bytes
  std::size_t lead;    // offset of the handed-out address into the mapping
  std::size_t bytes;   // the range opened, from the handed-out address
  std::size_t file_offset;  // where device_base lies in the file
  int device;
  int fd;  // our own duplicate: the memory can be exported on from here
};

std::shared_mutex g_imports_mutex;
std::vector<Import> g_imports;
// Lets the lookups below skip the lock entirely in processes that never imported (every host-pointer lookup ends up
// here after missing the arenas).
std::atomic<int> g_import_count{0};

std::size_t offsetIn(const char* base, const void* ptr) {
  return reinterpret_cast<std::uintptr_t>(ptr) - reinterpret_cast<std::uintptr_t>(base);
}

template <class Found>
bool findImport(const void* ptr, bool host_side, Found&& found) {
  if (g_import_count.load(std::memory_order_acquire) == 0) return false;
  std::shared_lock<std::shared_mutex> lock(g_imports_mutex);
  for (const Import& import : g_imports) {
    const std::size_t into = offsetIn(host_side ? import.host_base : import.device_base, ptr);
    if (into < import.length) {
      found(import, into);
      return true;
    }
  }
  return false;
}

}  // namespace

namespace detail {

void* importedHostView(const void* dev_ptr) {
  void* host = nullptr;
  findImport(dev_ptr, false, [&](const Import& i, std::size_t into) { host = i.host_base + into; });
  return host;
}

void* importedDeviceAddress(const void* host_ptr) {
  void* device = nullptr;
  findImport(host_ptr, true, [&](const Import& i, std::size_t into) { device = i.device_base + into; });
  return device;
}

int importedDevice(const void* dev_ptr) {
  int device = -1;
  findImport(dev_ptr, false, [&](const Import& i, std::size_t) { device = i.device; });
  return device;
}

bool isInsideImport(const void* dev_ptr, std::size_t bytes) {
  bool inside = false;
  findImport(dev_ptr, false, [&](const Import& i, std::size_t into) {
    inside = into >= i.lead && bytes <= i.bytes - (into - i.lead);
  });
  return inside;
}

}  // namespace detail

Status ipcExport(const void* dev_ptr, int* fd, std::size_t* offset) {
  if (forkedChild()) return Status::ForkedChild;
  if (fd == nullptr || offset == nullptr) return Status::InvalidValue;
  if (detail::arenaFile(dev_ptr, fd, offset)) return Status::Success;
  const bool found = findImport(dev_ptr, false, [&](const Import& i, std::size_t into) {
    *fd = i.fd;
    *offset = i.file_offset + into;
  });
  return found ? Status::Success : Status::InvalidValue;
}

Status ipcOpen(int device, int fd, std::size_t offset, std::size_t bytes, void** dev_ptr) {
  if (forkedChild()) return Status::ForkedChild;
  if (dev_ptr == nullptr || bytes == 0) return Status::InvalidValue;
  if (!detail::isValidDevice(device)) return Status::InvalidDevice;
  struct stat file {};
  // A range past the end of the file would map, then fault on first touch.
  if (fstat(fd, &file) != 0 || offset > static_cast<std::size_t>(file.st_size) ||
      bytes > static_cast<std::size_t>(file.st_size) - offset) {
    return Status::InvalidValue;
  }
  const std::size_t page = detail::kAllocationGranularity;
  Import import{};
  import.lead = offset % page;
  import.bytes = bytes;
  import.file_offset = offset - import.lead;
  import.length = (import.lead + bytes + page - 1) / page * page;
  import.device = device;
  import.fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (import.fd < 0) return Status::SystemError;
  void* device_view = mmap(nullptr, import.length, PROT_NONE, MAP_SHARED, fd, static_cast<off_t>(import.file_offset));
  void* host_view =
      mmap(nullptr, import.length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, static_cast<off_t>(import.file_offset));
  if (device_view == MAP_FAILED || host_view == MAP_FAILED) {
    if (device_view != MAP_FAILED) munmap(device_view, import.length);
    if (host_view != MAP_FAILED) munmap(host_view, import.length);
    close(import.fd);
    return Status::SystemError;
  }
  import.device_base = static_cast<char*>(device_view);
  import.host_base = static_cast<char*>(host_view);
  detail::markInUse();
  std::unique_lock<std::shared_mutex> lock(g_imports_mutex);
  g_imports.push_back(import);
  g_import_count.fetch_add(1, std::memory_order_release);
  *dev_ptr = import.device_base + import.lead;
  return Status::Success;
}

Status ipcClose(void* dev_ptr) {
  if (forkedChild()) return Status::Success;  // the parent's mappings are not ours to change
  Import import{};
  {
    std::unique_lock<std::shared_mutex> lock(g_imports_mutex);
    auto it = g_imports.begin();
    while (it != g_imports.end() && it->device_base + it->lead != dev_ptr) ++it;
    if (it == g_imports.end()) return Status::InvalidValue;
    import = *it;
    g_imports.erase(it);
    g_import_count.fetch_sub(1, std::memory_order_release);
  }
  munmap(import.device_base, import.length);
  munmap(import.host_base, import.length);
  close(import.fd);
  return Status::Success;
}

}  // namespace foo_rt
