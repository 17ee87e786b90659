#include "foo/host_allocator.h"

#include <ATen/core/CachingHostAllocator.h>

#include <chrono>
#include <cstring>
#include <mutex>
#include <unordered_map>

#include "foo/common.h"

namespace torch_foo {
namespace {

// Statistics as CUDA's caching host allocator keeps them. Nothing is cached, so every block is in use: allocations
// equal active requests, and each allocation and free is a runtime call (num_host_alloc / num_host_free).
struct PinnedStats {
  std::mutex mutex;
  at::HostStats stats;
  std::unordered_map<void*, size_t> block_sizes;
};

PinnedStats& pinnedStats() {
  static auto* stats = new PinnedStats();  // never destroyed: tensors may free pinned blocks during exit
  return *stats;
}

int64_t microsecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start).count();
}

void freePinned(void* ptr) {
  if (ptr == nullptr) return;
  const auto start = std::chrono::steady_clock::now();
  foo_rt::freeHost(ptr);
  PinnedStats& pinned = pinnedStats();
  std::lock_guard<std::mutex> lock(pinned.mutex);
  const auto block = pinned.block_sizes.find(ptr);
  if (block == pinned.block_sizes.end()) return;
  at::HostStats& stats = pinned.stats;
  stats.active_requests.decrease(1);
  stats.allocations.decrease(1);
  stats.active_bytes.decrease(block->second);
  stats.allocated_bytes.decrease(block->second);
  stats.host_free_time.increase(microsecondsSince(start));
  stats.num_host_free += 1;
  pinned.block_sizes.erase(block);
}

// Uncached: pinning is rare next to device allocation, and the runtime's mallocHost is an mmap.
struct PinnedHostAllocator final : public at::HostAllocator {
  at::DataPtr allocate(size_t nbytes) override {
    void* ptr = nullptr;
    if (nbytes > 0) {
      const auto start = std::chrono::steady_clock::now();
      FOO_CHECK(foo_rt::mallocHost(&ptr, nbytes));
      PinnedStats& pinned = pinnedStats();
      std::lock_guard<std::mutex> lock(pinned.mutex);
      at::HostStats& stats = pinned.stats;
      stats.active_requests.increase(1);
      stats.allocations.increase(1);
      stats.active_bytes.increase(nbytes);
      stats.allocated_bytes.increase(nbytes);
      stats.host_alloc_time.increase(microsecondsSince(start));
      stats.num_host_alloc += 1;
      pinned.block_sizes.emplace(ptr, nbytes);
    }
    return {ptr, ptr, &freePinned, c10::Device(c10::kCPU)};
  }
  at::DeleterFnPtr raw_deleter() const override { return &freePinned; }
  void copy_data(void* dest, const void* src, std::size_t count) const override { std::memcpy(dest, src, count); }
  // Each pinned block is freed when its tensor dies; there is no cache to protect from stream reuse, and a block freed
  // under a queued copy stays mapped until the copy has run (foo_rt::freeHost), so no event is needed.
  bool record_event(void* /*ptr*/, void* /*ctx*/, c10::Stream /*stream*/) override { return true; }
  void empty_cache() override {}
  at::HostStats get_stats() override {
    PinnedStats& pinned = pinnedStats();
    std::lock_guard<std::mutex> lock(pinned.mutex);
    return pinned.stats;
  }
  void reset_accumulated_stats() override {
    resetStats([](auto& stat) { stat.reset_accumulated(); }, /*counts_too=*/true);
  }
  void reset_peak_stats() override {
    resetStats([](auto& stat) { stat.reset_peak(); }, /*counts_too=*/false);
  }

 private:
  template <class Reset>
  static void resetStats(Reset reset, bool counts_too) {
    PinnedStats& pinned = pinnedStats();
    std::lock_guard<std::mutex> lock(pinned.mutex);
    at::HostStats& stats = pinned.stats;
    for (c10::CachingAllocator::Stat* stat :
         {&stats.active_requests, &stats.active_bytes, &stats.allocations, &stats.allocated_bytes}) {
      reset(*stat);
    }
    reset(stats.host_alloc_time);
    reset(stats.host_free_time);
    if (counts_too) stats.num_host_alloc = stats.num_host_free = 0;
  }
};

PinnedHostAllocator g_pinned;

}  // namespace

c10::Allocator& pinnedHostAllocator() { return g_pinned; }

REGISTER_HOST_ALLOCATOR(kFoo, &g_pinned)

}  // namespace torch_foo
