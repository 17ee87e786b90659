// torch.ops.foo operators behind torch.foo's memory functions that torch.accelerator has no binding for:
// the per-process memory fraction, raw caching-allocator blocks, memory pools, the allocator's snapshot and history,
// the pinned host allocator's statistics, and host views of device memory for transports (host_alias).
#include <ATen/core/CachingHostAllocator.h>
#include <torch/library.h>

#include <unordered_map>

#include "foo/allocator.h"
#include "foo/common.h"
#include "foo/kernel_scope.h"
#include "foo/stack_traces.h"

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

// Flattened records (torch_foo/memory.py builds torch.cuda.memory._snapshot()'s dictionaries from them): eight
// numbers per block (device, address, size, requested, state, stream, pool, stack), eight per event (device, action,
// address, size, stream, pool, time in microseconds, stack); the frames (file, function and line of each) and the
// stacks (each as its frame count, then the indices of its frames). A stack of -1 is none.
std::tuple<std::vector<int64_t>, std::vector<int64_t>, std::vector<std::string>, std::vector<std::string>,
           std::vector<int64_t>, std::vector<int64_t>>
memorySnapshot() {
  const std::vector<BlockRecord> block_records = snapshotBlocks();
  const std::vector<TraceRecord> trace_records = snapshotTrace();
  std::vector<c10::GatheredContext*> stacks;
  std::unordered_map<const c10::GatheredContext*, int64_t> stack_index;
  auto indexOf = [&](const std::shared_ptr<c10::GatheredContext>& stack) -> int64_t {
    if (!stack) return -1;
    const auto [it, added] = stack_index.emplace(stack.get(), static_cast<int64_t>(stacks.size()));
    if (added) stacks.push_back(stack.get());
    return it->second;
  };
  std::vector<int64_t> blocks, events;
  for (const BlockRecord& b : block_records) {
    blocks.insert(blocks.end(), {b.device, b.address, b.size, b.requested, static_cast<int64_t>(b.state), b.stream,
                                 b.mempool, indexOf(b.stack)});
  }
  for (const TraceRecord& e : trace_records) {
    events.insert(events.end(), {e.device, static_cast<int64_t>(e.action), e.address, e.size, e.stream, e.mempool,
                                 e.time_us, indexOf(e.stack)});
  }
  SymbolizedStacks symbolized = symbolizeStacks(stacks);
  std::vector<int64_t> flat_stacks;
  for (const std::vector<int64_t>& frames : symbolized.frames) {
    flat_stacks.push_back(static_cast<int64_t>(frames.size()));
    flat_stacks.insert(flat_stacks.end(), frames.begin(), frames.end());
  }
  return {blocks, events, std::move(symbolized.files), std::move(symbolized.functions), std::move(symbolized.lines),
          flat_stacks};
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
  m.def("memory_snapshot() -> (int[], int[], str[], str[], int[], int[])", &memorySnapshot);
  // stacks: 0 none, 1 for allocations, 2 for allocations and frees (StackContext).
  m.def("record_memory_history(bool enabled, int max_entries, int stacks) -> ()",
        [](bool enabled, int64_t max_entries, int64_t stacks) {
          TORCH_CHECK_VALUE(stacks >= 0 && stacks <= 2, "record_memory_history: stacks must be 0, 1 or 2, got ",
                            stacks);
          recordMemoryHistory(enabled, max_entries, static_cast<StackContext>(stacks));
        });
  m.def("host_memory_stats() -> (str[], int[])", &hostMemoryStats);
  m.def("host_alias(Tensor self) -> Tensor", &hostAlias);
  m.def("reset_host_memory_stats(bool peak) -> ()", [](bool peak) {
    at::HostAllocator* allocator = at::getHostAllocator(kFoo);
    peak ? allocator->reset_peak_stats() : allocator->reset_accumulated_stats();
  });
}

}  // namespace torch_foo
