// torch.ops.foo operators behind torch.foo's memory functions that torch.accelerator has no binding for:
// the per-process memory fraction, raw caching-allocator blocks, memory pools, the allocator's snapshot and history,
// and the pinned host allocator's statistics.
#include <ATen/core/CachingHostAllocator.h>
#include <torch/library.h>

#include "foo/allocator.h"
#include "foo/common.h"

namespace torch_foo {
namespace {

// Names and values as torch.cuda.host_memory_stats flattens them ("allocations.current", "num_host_alloc", ...).
std::tuple<std::vector<std::string>, std::vector<int64_t>> hostMemoryStats() {
  const at::HostStats stats = at::getHostAllocator(kFoo)->get_stats();
  std::vector<std::string> names;
  std::vector<int64_t> values;
  auto add = [&](const std::string& name, int64_t value) {
    names.push_back(name);
    values.push_back(value);
  };
  for (const auto& [name, stat] : {std::pair<const char*, const c10::CachingAllocator::Stat*>{"active_requests",
                                                                                              &stats.active_requests},
                                   {"active_bytes", &stats.active_bytes},
                                   {"allocations", &stats.allocations},
                                   {"allocated_bytes", &stats.allocated_bytes}}) {
    add(std::string(name) + ".current", stat->current);
    add(std::string(name) + ".peak", stat->peak);
    add(std::string(name) + ".allocated", stat->allocated);
    add(std::string(name) + ".freed", stat->freed);
  }
  for (const auto& [name, stat] : {std::pair<const char*, const c10::CachingAllocator::DurationStat*>{
                                       "host_alloc_time", &stats.host_alloc_time},
                                   {"host_free_time", &stats.host_free_time}}) {
    add(std::string(name) + ".total", stat->total);
    add(std::string(name) + ".max", stat->max);
    add(std::string(name) + ".min", stat->min);
    add(std::string(name) + ".count", stat->count);
  }
  add("num_host_alloc", stats.num_host_alloc);
  add("num_host_free", stats.num_host_free);
  return {names, values};
}

// Flattened records (torch_foo/memory.py builds torch.cuda.memory._snapshot()'s dictionaries from them): seven
// numbers per block (device, address, size, requested, state, stream, pool), seven per event (device, action,
// address, size, stream, pool, time in microseconds).
std::tuple<std::vector<int64_t>, std::vector<int64_t>> memorySnapshot() {
  std::vector<int64_t> blocks, events;
  for (const BlockRecord& b : snapshotBlocks()) {
    blocks.insert(blocks.end(), {b.device, b.address, b.size, b.requested, static_cast<int64_t>(b.state), b.stream,
                                 b.mempool});
  }
  for (const TraceRecord& e : snapshotTrace()) {
    events.insert(events.end(),
                  {e.device, static_cast<int64_t>(e.action), e.address, e.size, e.stream, e.mempool, e.time_us});
  }
  return {blocks, events};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(foo, m) {
  m.def("set_memory_fraction(float fraction, int device) -> ()", [](double fraction, int64_t device) {
    checkDeviceIndex(device);
    setMemoryFraction(static_cast<c10::DeviceIndex>(device), fraction);
  });
  m.def("memory_fraction(int device) -> float", [](int64_t device) {
    checkDeviceIndex(device);
    return memoryFraction(static_cast<c10::DeviceIndex>(device));
  });
  // On the current device and its current stream, as the caching allocator serves tensors.
  m.def("raw_alloc(int nbytes) -> int", [](int64_t nbytes) {
    TORCH_CHECK_VALUE(nbytes >= 0, "caching_allocator_alloc: size must be >= 0, got ", nbytes);
    return reinterpret_cast<int64_t>(deviceAllocator().raw_allocate(static_cast<size_t>(nbytes)));
  });
  m.def("raw_delete(int ptr) -> ()", [](int64_t ptr) { rawDelete(reinterpret_cast<void*>(ptr)); });
  m.def("mempool_create() -> int", &createMempool);
  m.def("mempool_use(int device, int mempool) -> int", [](int64_t device, int64_t mempool) {
    return useMempool(static_cast<c10::DeviceIndex>(device), mempool);
  });
  m.def("mempool_release(int mempool) -> ()", &releaseMempool);
  m.def("memory_snapshot() -> (int[], int[])", &memorySnapshot);
  m.def("record_memory_history(bool enabled, int max_entries) -> ()", &recordMemoryHistory);
  m.def("host_memory_stats() -> (str[], int[])", &hostMemoryStats);
  m.def("reset_host_memory_stats(bool peak) -> ()", [](bool peak) {
    at::HostAllocator* allocator = at::getHostAllocator(kFoo);
    peak ? allocator->reset_peak_stats() : allocator->reset_accumulated_stats();
  });
}

}  // namespace torch_foo
