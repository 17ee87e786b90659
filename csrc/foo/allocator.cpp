// Caching allocator: device memory comes from the runtime (foo_rt::malloc, the expensive "driver" call) and is kept
// in per-device, per-stream free lists when tensors die, so steady-state allocation is a map lookup under a lock.
// A block freed after being used on other streams (recordStream) returns to the cache only once events recorded on
// those streams have completed, as in CUDA's allocator. Memory pools (torch.foo.MemPool) keep their blocks apart: what
// a thread allocates inside use_mem_pool comes from, and returns to, that pool's free lists until the pool is released.
#include "foo/allocator.h"

#include <c10/util/flat_hash_map.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <limits>
#include <map>
#include <mutex>
#include <thread>
#include <tuple>
#include <utility>
#include <unordered_set>
#include <vector>

#include "foo/stack_traces.h"
#include "foo/stream.h"

namespace torch_foo {
namespace {

using c10::CachingDeviceAllocator::DeviceStats;
constexpr size_t kAggregate = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);
constexpr size_t kMinBlock = 512;
constexpr size_t kSmallLimit = 1 << 20;
constexpr size_t kLargeRounding = 128 << 10;

using c10::CachingAllocator::StatType;
constexpr int64_t kGeneralPool = 0;  // the device's shared cache; memory pools have ids from 1

// Every statistic counts in the aggregate and in the small pool (blocks up to 1 MiB, as CUDA's allocator) or the
// large pool, so memory_stats()' "small_pool"/"large_pool" entries mean what they mean on CUDA.
template <class F>
void forEachPool(size_t block_size, F&& f) {
  f(kAggregate);
  f(static_cast<size_t>(block_size <= kSmallLimit ? StatType::SMALL_POOL : StatType::LARGE_POOL));
}

// A Python stack (see stack_traces.h); null when none was recorded.
using Stack = std::shared_ptr<c10::GatheredContext>;

struct Block {
  void* ptr = nullptr;
  int64_t mempool = kGeneralPool;  // whose free lists the block returns to
  size_t size = 0;        // rounded size, what the runtime allocated
  size_t requested = 0;
  c10::StreamId stream = 0;
  std::unordered_set<foo_rt::Stream> used_on;  // other streams (of any device) recorded with recordStream
  Stack stack;  // where it was allocated, while stacks are recorded
};

struct PendingFree {
  Block* block;
  std::vector<foo_rt::Event> events;
};

// Free blocks by (memory pool, stream, size); vectors keep their capacity, so steady-state reuse allocates no nodes.
using FreeKey = std::tuple<int64_t, c10::StreamId, size_t>;
using FreeBlockMap = std::map<FreeKey, std::vector<Block*>>;

// The free blocks, and the list used last: a loop of small ops frees and takes blocks of one key over and over, and
// finds its list without a tree search (map nodes stay put until erased).
struct FreeBlocks {
  FreeBlockMap map;
  FreeKey last_key;
  std::vector<Block*>* last = nullptr;

  std::vector<Block*>& listOf(const FreeKey& key) { return last != nullptr && key == last_key ? *last : search(key); }
  C10_NOINLINE std::vector<Block*>& search(const FreeKey& key) {
    last = &map[key];
    last_key = key;
    return *last;
  }
  // Forgets the list used last (before erasing from the map).
  void forgetLast() { last = nullptr; }
};

// The memory pool each device's allocations of this thread go to (use_mem_pool); general unless set. A plain array:
// nothing to destroy, so tensors allocated while the thread exits still find it.
thread_local int64_t t_active_mempool[std::numeric_limits<c10::DeviceIndex>::max() + 1] = {};

int64_t activeMempool(c10::DeviceIndex device) { return t_active_mempool[device]; }

// The pool lock is taken twice per op (allocate, free) and held for a few map operations: an uncontended
// pthread mutex costs a noticeable part of a small op, an atomic flag a fraction of it. Waiters yield the core, and
// sleep once the holder is evidently in a slow path (a device malloc, releasing the cache), so they do not burn it.
class PoolLock {
 public:
  void lock() noexcept {
    for (int attempt = 0; locked_.exchange(true, std::memory_order_acquire); ++attempt) {
      while (locked_.load(std::memory_order_relaxed)) {
        if (attempt < 64) {
          std::this_thread::yield();
        } else {
          std::this_thread::sleep_for(std::chrono::microseconds(20));
        }
        ++attempt;
      }
    }
  }
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> locked_{false};
};

struct DevicePool {
  PoolLock lock;
  double fraction = 1.0;  // set_per_process_memory_fraction
  size_t reserve_limit = std::numeric_limits<size_t>::max();  // fraction * the device's memory
  ska::flat_hash_map<void*, Block*> live;
  FreeBlocks cached;
  std::vector<PendingFree> pending;
  DeviceStats stats;
  std::deque<TraceRecord> trace;  // while memory history is recorded
};

std::string formatBytes(size_t bytes) {
  const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 4) {
    value /= 1024;
    ++unit;
  }
  char text[64];
  std::snprintf(text, sizeof(text), unit == 0 ? "%.0f %s" : "%.2f %s", value, units[unit]);
  return text;
}

class CachingAllocator final : public c10::DeviceAllocator {
 public:
  at::DataPtr allocate(size_t nbytes) override { return allocateOn(currentDevice(), nbytes); }

  at::DataPtr allocateOn(c10::DeviceIndex device, size_t nbytes) {
    return allocateOn(device, nbytes, currentStreamId(device));
  }

  at::DataPtr allocateOn(c10::DeviceIndex device, size_t nbytes, c10::StreamId stream) {
    const c10::Device where(kFoo, device);
    if (nbytes == 0) return at::DataPtr(nullptr, nullptr, &deleteBlock, where);
    DevicePool& pool = poolOf(device);
    const size_t size = roundedBlockSize(nbytes);
    const int64_t mempool = activeMempool(device);
    Stack stack = gatherStack(StackContext::Alloc);  // before the lock: it takes the GIL
    std::unique_lock<PoolLock> lock(pool.lock);
    collectPending(pool);
    Block* block = takeCached(pool, mempool, stream, size);
    if (block == nullptr) {
      block = mallocBlock(pool, lock, device, size, nbytes, stream, mempool, stack);
      trace(pool, TraceAction::SegmentAlloc, block->ptr, size, stream, mempool, stack);
    }
    block->mempool = mempool;
    block->requested = nbytes;
    block->stream = stream;
    pool.live.emplace(block->ptr, block);
    trace(pool, TraceAction::Alloc, block->ptr, size, stream, mempool, stack);
    block->stack = std::move(stack);
    auto& stats = pool.stats;
    forEachPool(block->size, [&](size_t pool_type) {
      stats.allocation[pool_type].increase(1);
      stats.allocated_bytes[pool_type].increase(block->size);
      stats.requested_bytes[pool_type].increase(nbytes);
    });
    if (c10::memoryProfilingEnabled()) {
      const MemoryTotals totals = totalsOf(stats);
      lock.unlock();
      c10::reportMemoryUsageToProfiler(block->ptr, static_cast<int64_t>(block->size), totals.allocated,
                                       totals.reserved, where);
    }
    return at::DataPtr(block->ptr, block->ptr, &deleteBlock, where);
  }

  at::DeleterFnPtr raw_deleter() const override { return &deleteBlock; }

  void copy_data(void* dest, const void* src, std::size_t count) const override {
    FOO_CHECK(foo_rt::memcpy(dest, src, count));
  }

  bool initialized() override { return true; }

  // As CUDA's allocator, also waits for the streams that blocks freed after record_stream wait on, and releases them.
  // Releases the general cache, or with a memory pool's id ({0, id}), that pool's free blocks.
  void emptyCache(c10::MempoolId_t mempool_id) override {
    const int64_t mempool = static_cast<int64_t>(mempool_id.second);
    for (c10::DeviceIndex d = 0; d < deviceCount(); ++d) {
      DevicePool& pool = poolOf(d);
      std::vector<foo_rt::Event> waits;
      {
        std::lock_guard<PoolLock> lock(pool.lock);
        for (const PendingFree& pending : pool.pending) {
          waits.insert(waits.end(), pending.events.begin(), pending.events.end());
        }
      }
      // Without the lock: work still queued may free tensors, and their deleters take it. An event another thread
      // collects (destroys) meanwhile was complete: synchronizing it then fails harmlessly.
      for (foo_rt::Event event : waits) foo_rt::eventSynchronize(event);
      std::unique_lock<PoolLock> lock(pool.lock);
      collectPending(pool);
      releaseCached(pool, lock, mempool);
    }
  }

  // ---- memory pools (torch.foo.MemPool) ----
  int64_t createMempool() {
    std::lock_guard<std::mutex> lock(mempools_mutex_);
    const int64_t id = next_mempool_++;
    live_mempools_.insert(id);
    return id;
  }

  // Later allocations of this thread on `device` come from `mempool` (kGeneralPool: the shared cache); returns the
  // pool they came from before.
  int64_t useMempool(c10::DeviceIndex device, int64_t mempool) {
    checkDeviceIndex(device);
    if (mempool != kGeneralPool) {
      std::lock_guard<std::mutex> lock(mempools_mutex_);
      TORCH_CHECK_VALUE(live_mempools_.count(mempool) == 1, "use_mem_pool: memory pool ", mempool,
                        " was released");
    }
    return std::exchange(t_active_mempool[device], mempool);
  }

  // The pool's free blocks go back to the device; its blocks still in use join the general cache when freed.
  void releaseMempool(int64_t mempool) {
    {
      std::lock_guard<std::mutex> lock(mempools_mutex_);
      if (live_mempools_.erase(mempool) == 0) return;
    }
    emptyCache({0, static_cast<c10::CaptureId_t>(mempool)});
  }

  void recordStream(const at::DataPtr& data, c10::Stream stream) override {
    if (!data.get()) return;
    TORCH_CHECK(stream.device_type() == kFoo, "recordStream expects a foo stream, got ", stream);
    // Resolved (and so validated) now: the tensor's deleter, which records events on it, must not throw.
    const foo_rt::Stream used = runtimeStream(stream);
    const c10::DeviceIndex device = foo_rt::pointerDevice(data.get());
    TORCH_CHECK(device >= 0, "recordStream: pointer is not foo device memory");
    DevicePool& pool = poolOf(device);
    std::lock_guard<PoolLock> lock(pool.lock);
    auto it = pool.live.find(data.get());
    TORCH_CHECK(it != pool.live.end(), "recordStream: pointer was not allocated by the foo allocator");
    Block* block = it->second;
    // As CUDA's allocator: a stream of another device (reading the block across devices) counts too.
    if (stream.device_index() != device || stream.id() != block->stream) block->used_on.insert(used);
  }

  DeviceStats getDeviceStats(c10::DeviceIndex device) override {
    DevicePool& pool = poolOf(device);
    std::lock_guard<PoolLock> lock(pool.lock);
    DeviceStats stats = pool.stats;
    // Blocks are never split, and a freed block stops counting at once (also one that waits for other streams), so a
    // block is active exactly while it is allocated: the active statistics are not kept apart, an op would update
    // twice as many.
    stats.active = stats.allocation;
    stats.active_bytes = stats.allocated_bytes;
    return stats;
  }

  void resetAccumulatedStats(c10::DeviceIndex device) override {
    DevicePool& pool = poolOf(device);
    std::lock_guard<PoolLock> lock(pool.lock);
    forEachStat(pool.stats, [](c10::CachingAllocator::Stat& s) { s.reset_accumulated(); });
    pool.stats.num_alloc_retries = pool.stats.num_ooms = 0;
    pool.stats.num_device_alloc = pool.stats.num_device_free = 0;
  }

  void resetPeakStats(c10::DeviceIndex device) override {
    DevicePool& pool = poolOf(device);
    std::lock_guard<PoolLock> lock(pool.lock);
    forEachStat(pool.stats, [](c10::CachingAllocator::Stat& s) { s.reset_peak(); });
  }

  std::pair<size_t, size_t> getMemoryInfo(c10::DeviceIndex device) override {
    checkDeviceIndex(device);
    size_t free_bytes = 0, total_bytes = 0;
    FOO_CHECK(foo_rt::memGetInfo(device, &free_bytes, &total_bytes));
    return {free_bytes, total_bytes};
  }

  void setFraction(c10::DeviceIndex device, double fraction) {
    TORCH_CHECK_VALUE(fraction >= 0 && fraction <= 1, "invalid memory fraction ", fraction,
                      ": allowed range is 0 to 1");
    const size_t total = getMemoryInfo(device).second;
    DevicePool& pool = poolOf(device);
    std::lock_guard<PoolLock> lock(pool.lock);
    pool.fraction = fraction;
    pool.reserve_limit = fraction >= 1.0 ? std::numeric_limits<size_t>::max()
                                         : static_cast<size_t>(fraction * static_cast<double>(total));
  }

  double fraction(c10::DeviceIndex device) {
    DevicePool& pool = poolOf(device);
    std::lock_guard<PoolLock> lock(pool.lock);
    return pool.fraction;
  }

  void rawDelete(void* ptr) {
    if (ptr == nullptr) return;  // what raw_allocate gives for 0 bytes
    const int device = foo_rt::pointerDevice(ptr);
    TORCH_CHECK_VALUE(device >= 0, "caching_allocator_delete: ", ptr, " is not foo device memory");
    {
      DevicePool& pool = poolOf(device);
      std::lock_guard<PoolLock> lock(pool.lock);
      TORCH_CHECK_VALUE(pool.live.count(ptr) == 1, "caching_allocator_delete: ", ptr,
                        " is not a live block of the foo caching allocator");
    }
    free(ptr);
  }

  void free(void* ptr) {
    // In a forked child the parent's pools (and mutexes a parent thread may have held) are not ours to touch.
    if (foo_rt::forkedChild()) return;
    const int device = foo_rt::pointerDevice(ptr);
    if (device < 0) return;  // never ours; nothing sane to do in a deleter
    DevicePool& pool = poolOf(device);
    const Stack stack = gatherStack(StackContext::AllocAndFree);  // before the lock: it takes the GIL
    std::lock_guard<PoolLock> lock(pool.lock);
    auto it = pool.live.find(ptr);
    if (it == pool.live.end()) return;
    Block* block = it->second;
    pool.live.erase(it);
    auto& stats = pool.stats;
    forEachPool(block->size, [&](size_t pool_type) {
      stats.allocation[pool_type].decrease(1);
      stats.allocated_bytes[pool_type].decrease(block->size);
      stats.requested_bytes[pool_type].decrease(block->requested);
    });
    if (c10::memoryProfilingEnabled()) {
      const MemoryTotals totals = totalsOf(stats);
      c10::reportMemoryUsageToProfiler(ptr, -static_cast<int64_t>(block->size), totals.allocated, totals.reserved,
                                       c10::Device(kFoo, device));
    }
    if (block->mempool != kGeneralPool && !mempoolLive(block->mempool)) block->mempool = kGeneralPool;
    block->stack.reset();
    trace(pool, TraceAction::FreeRequested, ptr, block->size, block->stream, block->mempool, stack);
    if (block->used_on.empty()) {
      pool.cached.listOf({block->mempool, block->stream, block->size}).push_back(block);
      trace(pool, TraceAction::FreeCompleted, ptr, block->size, block->stream, block->mempool, stack);
      return;
    }
    PendingFree pending{block, {}};
    for (foo_rt::Stream stream : block->used_on) {
      foo_rt::Event event = nullptr;
      if (foo_rt::eventCreate(&event, foo_rt::kEventDisableTiming) != foo_rt::Status::Success ||
          foo_rt::eventRecord(event, stream) != foo_rt::Status::Success) {
        // Without the event nothing says when the other stream is done: never reuse the block (it stays reserved).
        foo_rt::eventDestroy(event);
        for (foo_rt::Event e : pending.events) foo_rt::eventDestroy(e);
        return;
      }
      pending.events.push_back(event);
    }
    block->used_on.clear();
    pool.pending.push_back(std::move(pending));
  }

 private:
  static void deleteBlock(void* ptr);

  // What torch.profiler's memory events (profile_memory=True) report with each allocation and free.
  struct MemoryTotals {
    size_t allocated;
    size_t reserved;
  };
  static MemoryTotals totalsOf(const DeviceStats& stats) {
    return {static_cast<size_t>(stats.allocated_bytes[kAggregate].current),
            static_cast<size_t>(stats.reserved_bytes[kAggregate].current)};
  }

  // Runs twice per op (allocate, free): once the pools exist, their count is the range of valid indices. The first
  // call and invalid indices take the out-of-line path, so that this one needs no stack frame.
  DevicePool& poolOf(c10::DeviceIndex device) {
    if (pools_ready_.load(std::memory_order_acquire) && device >= 0 && static_cast<size_t>(device) < pools_.size() &&
        !foo_rt::forkedChild()) {
      return pools_[device];
    }
    return checkedPoolOf(device);
  }

  C10_NOINLINE DevicePool& checkedPoolOf(c10::DeviceIndex device) {
    const bool ready = pools_ready_.load(std::memory_order_acquire);
    checkDeviceIndex(device);
    TORCH_CHECK(!foo_rt::forkedChild(), "foo: ", foo_rt::statusString(foo_rt::Status::ForkedChild));
    // libstdc++'s call_once touches four thread-locals per call, a fair part of a small op.
    if (!ready) {
      std::call_once(pools_created_, [this] {
        pools_ = std::vector<DevicePool>(deviceCount());
        pools_ready_.store(true, std::memory_order_release);
      });
    }
    return pools_[device];
  }

  template <class F>
  static void forEachStat(DeviceStats& stats, F f) {
    for (auto* array : {&stats.allocation, &stats.segment, &stats.active, &stats.inactive_split,
                        &stats.allocated_bytes, &stats.reserved_bytes, &stats.active_bytes,
                        &stats.inactive_split_bytes, &stats.requested_bytes}) {
      for (auto& stat : *array) f(stat);
    }
  }

  bool mempoolLive(int64_t mempool) {
    std::lock_guard<std::mutex> lock(mempools_mutex_);
    return live_mempools_.count(mempool) == 1;
  }

  // Best fit within the memory pool's blocks of the stream, accepting at most 1/8 waste so big blocks are not burnt
  // on small requests.
  static Block* takeCached(DevicePool& pool, int64_t mempool, c10::StreamId stream, size_t size) {
    FreeBlocks& cached = pool.cached;
    if (cached.last != nullptr && !cached.last->empty() && cached.last_key == FreeKey{mempool, stream, size}) {
      Block* block = cached.last->back();  // an exact fit: what the search below would find first
      cached.last->pop_back();
      return block;
    }
    for (auto it = cached.map.lower_bound({mempool, stream, size});
         it != cached.map.end() && std::get<0>(it->first) == mempool && std::get<1>(it->first) == stream &&
         std::get<2>(it->first) <= size + size / 8;
         ++it) {
      if (it->second.empty()) continue;
      Block* block = it->second.back();
      it->second.pop_back();
      return block;
    }
    return nullptr;
  }

  Block* mallocBlock(DevicePool& pool, std::unique_lock<PoolLock>& lock, c10::DeviceIndex device, size_t size,
                     size_t requested, c10::StreamId stream, int64_t mempool, const Stack& stack) {
    void* ptr = nullptr;
    // Over the process's memory fraction counts as out of memory, as in CUDA's allocator.
    auto deviceMalloc = [&] {
      if (pool.stats.reserved_bytes[kAggregate].current + size > pool.reserve_limit) {
        return foo_rt::Status::OutOfMemory;
      }
      return foo_rt::malloc(device, &ptr, size);
    };
    foo_rt::Status status = deviceMalloc();
    if (status == foo_rt::Status::OutOfMemory) {
      // Give the cache back to the device and try once more, as CUDA's allocator does. Blocks waiting for other
      // streams are reclaimed after a device synchronize, done without the lock: queued work may free tensors, and
      // their deleters take it.
      pool.stats.num_alloc_retries += 1;
      lock.unlock();
      const foo_rt::Status synchronized = foo_rt::deviceSynchronize(device);
      lock.lock();
      FOO_CHECK(synchronized);  // queued work that failed is reported here rather than lost
      collectPending(pool);
      releaseCached(pool, lock, kGeneralPool);
      status = deviceMalloc();
    }
    if (status == foo_rt::Status::OutOfMemory) {
      pool.stats.num_ooms += 1;
      trace(pool, TraceAction::Oom, nullptr, size, stream, mempool, stack);
      size_t free_bytes = 0, total_bytes = 0;
      foo_rt::memGetInfo(device, &free_bytes, &total_bytes);
      const std::string fraction_note =
          pool.fraction < 1.0 ? c10::str(" The process's memory fraction of ", pool.fraction,
                                         " (set_per_process_memory_fraction) limits foo:", int(device), " to ",
                                         formatBytes(pool.reserve_limit), ".")
                              : std::string();
      TORCH_CHECK_WITH(OutOfMemoryError, false, "foo out of memory: tried to allocate ", formatBytes(requested),
                       " on foo:", int(device), ". The device has a cap of ", formatBytes(total_bytes), " of which ",
                       formatBytes(pool.stats.allocated_bytes[kAggregate].current), " is allocated by tensors, ",
                       formatBytes(pool.stats.reserved_bytes[kAggregate].current -
                                   pool.stats.allocated_bytes[kAggregate].current),
                       " is cached by the allocator and ", formatBytes(free_bytes),
                       " is free.", fraction_note, " Set TORCH_FOO_MEMORY_LIMIT to change the cap.");
    }
    FOO_CHECK(status);
    pool.stats.num_device_alloc += 1;
    forEachPool(size, [&](size_t pool_type) {
      pool.stats.segment[pool_type].increase(1);
      pool.stats.reserved_bytes[pool_type].increase(size);
    });
    Block* block = new Block;
    block->ptr = ptr;
    block->size = size;
    return block;
  }

  void collectPending(DevicePool& pool) {
    if (!pool.pending.empty()) collectCompletedPending(pool);
  }

  C10_NOINLINE void collectCompletedPending(DevicePool& pool) {
    auto done = [&](PendingFree& p) {
      for (foo_rt::Event e : p.events) {
        if (foo_rt::eventQuery(e) == foo_rt::Status::NotReady) return false;
      }
      for (foo_rt::Event e : p.events) foo_rt::eventDestroy(e);
      if (p.block->mempool != kGeneralPool && !mempoolLive(p.block->mempool)) p.block->mempool = kGeneralPool;
      pool.cached.listOf({p.block->mempool, p.block->stream, p.block->size}).push_back(p.block);
      trace(pool, TraceAction::FreeCompleted, p.block->ptr, p.block->size, p.block->stream, p.block->mempool);
      return true;
    };
    pool.pending.erase(std::remove_if(pool.pending.begin(), pool.pending.end(), done), pool.pending.end());
  }

  // Returns one memory pool's cached blocks to the device; the runtime's frees (a syscall each) run without the lock.
  void releaseCached(DevicePool& pool, std::unique_lock<PoolLock>& lock, int64_t mempool) {
    std::vector<Block*> released;
    const auto first = pool.cached.map.lower_bound({mempool, std::numeric_limits<c10::StreamId>::min(), 0});
    auto last = first;
    for (; last != pool.cached.map.end() && std::get<0>(last->first) == mempool; ++last) {
      for (Block* block : last->second) {
        pool.stats.num_device_free += 1;
        forEachPool(block->size, [&](size_t pool_type) {
          pool.stats.segment[pool_type].decrease(1);
          pool.stats.reserved_bytes[pool_type].decrease(block->size);
        });
        trace(pool, TraceAction::SegmentFree, block->ptr, block->size, block->stream, block->mempool);
        released.push_back(block);
      }
    }
    pool.cached.forgetLast();
    pool.cached.map.erase(first, last);
    lock.unlock();
    for (Block* block : released) {
      foo_rt::free(block->ptr);
      delete block;
    }
    lock.lock();
  }

  // The caller's Python stack when stacks are recorded for `action` (none on a stream worker: no Python runs there).
  Stack gatherStack(StackContext action) const {
    if (stack_context_.load(std::memory_order_relaxed) < action || foo_rt::onStreamWorker()) return nullptr;
    return gatherPythonStack();
  }

  // Called with the pool's lock held.
  void trace(DevicePool& pool, TraceAction action, const void* ptr, size_t size, c10::StreamId stream,
             int64_t mempool, Stack stack = nullptr) {
    if (recording_.load(std::memory_order_relaxed)) record(pool, action, ptr, size, stream, mempool, std::move(stack));
  }

  C10_NOINLINE void record(DevicePool& pool, TraceAction action, const void* ptr, size_t size, c10::StreamId stream,
                           int64_t mempool, Stack stack) {
    const auto now = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::system_clock::now().time_since_epoch());
    pool.trace.push_back({static_cast<int64_t>(&pool - pools_.data()), action, reinterpret_cast<int64_t>(ptr),
                          static_cast<int64_t>(size), stream, mempool, now.count(), std::move(stack)});
    if (pool.trace.size() > max_trace_entries_.load(std::memory_order_relaxed)) pool.trace.pop_front();
  }

 public:
  void recordHistory(bool enabled, int64_t max_entries, StackContext stacks) {
    TORCH_CHECK_VALUE(max_entries > 0, "max_entries must be positive, got ", max_entries);
    max_trace_entries_.store(static_cast<size_t>(max_entries));
    recording_.store(enabled);
    stack_context_.store(stacks);
    for (c10::DeviceIndex d = 0; d < deviceCount(); ++d) {
      DevicePool& pool = poolOf(d);
      std::lock_guard<PoolLock> lock(pool.lock);
      if (!enabled) pool.trace.clear();
      while (pool.trace.size() > static_cast<size_t>(max_entries)) pool.trace.pop_front();
    }
  }

  std::vector<BlockRecord> blocks() {
    std::vector<BlockRecord> records;
    for (c10::DeviceIndex d = 0; d < deviceCount(); ++d) {
      DevicePool& pool = poolOf(d);
      std::lock_guard<PoolLock> lock(pool.lock);
      auto add = [&](const Block* block, BlockState state) {
        records.push_back({d, reinterpret_cast<int64_t>(block->ptr), static_cast<int64_t>(block->size),
                           static_cast<int64_t>(state == BlockState::Inactive ? 0 : block->requested), state,
                           block->stream, block->mempool, block->stack});
      };
      for (const auto& [ptr, block] : pool.live) add(block, BlockState::ActiveAllocated);
      for (const PendingFree& pending : pool.pending) add(pending.block, BlockState::ActivePendingFree);
      for (const auto& [key, free_blocks] : pool.cached.map) {
        for (const Block* block : free_blocks) add(block, BlockState::Inactive);
      }
    }
    return records;
  }

  std::vector<TraceRecord> traces() {
    std::vector<TraceRecord> records;
    for (c10::DeviceIndex d = 0; d < deviceCount(); ++d) {
      DevicePool& pool = poolOf(d);
      std::lock_guard<PoolLock> lock(pool.lock);
      records.insert(records.end(), pool.trace.begin(), pool.trace.end());
    }
    return records;
  }

 private:
  std::atomic<bool> recording_{false};
  std::atomic<StackContext> stack_context_{StackContext::None};
  std::atomic<size_t> max_trace_entries_{std::numeric_limits<size_t>::max()};
  std::once_flag pools_created_;
  std::atomic<bool> pools_ready_{false};
  std::vector<DevicePool> pools_;
  std::mutex mempools_mutex_;
  std::unordered_set<int64_t> live_mempools_;
  int64_t next_mempool_ = kGeneralPool + 1;
};

CachingAllocator g_allocator;

void CachingAllocator::deleteBlock(void* ptr) {
  if (ptr != nullptr) g_allocator.free(ptr);
}

}  // namespace

size_t roundedBlockSize(size_t nbytes) {
  if (nbytes <= kMinBlock) return kMinBlock;
  const size_t unit = nbytes < kSmallLimit ? kMinBlock : kLargeRounding;
  return (nbytes + unit - 1) / unit * unit;
}

at::DataPtr allocateDeviceMemory(c10::DeviceIndex device, size_t nbytes) { return g_allocator.allocateOn(device, nbytes); }
at::DataPtr allocateDeviceMemory(c10::DeviceIndex device, size_t nbytes, c10::StreamId current_stream) {
  return g_allocator.allocateOn(device, nbytes, current_stream);
}

c10::DeviceAllocator& deviceAllocator() { return g_allocator; }

void setMemoryFraction(c10::DeviceIndex device, double fraction) { g_allocator.setFraction(device, fraction); }

double memoryFraction(c10::DeviceIndex device) { return g_allocator.fraction(device); }

void rawDelete(void* ptr) { g_allocator.rawDelete(ptr); }

int64_t createMempool() { return g_allocator.createMempool(); }

int64_t useMempool(c10::DeviceIndex device, int64_t mempool) { return g_allocator.useMempool(device, mempool); }

void releaseMempool(int64_t mempool) { g_allocator.releaseMempool(mempool); }

std::vector<BlockRecord> snapshotBlocks() { return g_allocator.blocks(); }

std::vector<TraceRecord> snapshotTrace() { return g_allocator.traces(); }

void recordMemoryHistory(bool enabled, int64_t max_entries, StackContext stacks) {
  g_allocator.recordHistory(enabled, max_entries, stacks);
}

REGISTER_ALLOCATOR(kFoo, &g_allocator)

}  // namespace torch_foo
