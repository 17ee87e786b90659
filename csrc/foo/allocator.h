// The foo caching device allocator (registered as PyTorch's PrivateUse1 allocator).
#pragma once

#include <c10/core/CachingDeviceAllocator.h>

#include <memory>

#include "foo/common.h"

namespace torch_foo {

// Allocates nbytes of device memory on `device`, reusing cached blocks of the current stream's pool.
// Raises torch.OutOfMemoryError when the device's cap is exhausted even after releasing the cache.
at::DataPtr allocateDeviceMemory(c10::DeviceIndex device, size_t nbytes);
// The same for a caller that knows the device's current stream (kernels allocate their results on it): spares a
// thread-local lookup per allocation.
at::DataPtr allocateDeviceMemory(c10::DeviceIndex device, size_t nbytes, c10::StreamId current_stream);

// The registered allocator (allocate() uses the thread's current foo device).
c10::DeviceAllocator& deviceAllocator();

// Block sizes handed out for a request (what allocated_bytes counts).
size_t roundedBlockSize(size_t nbytes);

// Caps what the allocator reserves on `device` at fraction * the device's memory (torch.cuda's
// set_per_process_memory_fraction); 1 lifts the cap.
void setMemoryFraction(c10::DeviceIndex device, double fraction);
double memoryFraction(c10::DeviceIndex device);

// Frees a block handed out by raw_allocate (torch.foo.caching_allocator_delete); raises for any other pointer.
void rawDelete(void* ptr);

// Memory pools (torch.foo.MemPool): a new pool's id (from 1); makes the calling thread's later allocations on `device`
// come from `mempool` (0: the shared cache), returning the previous one; releases a pool's free blocks, its blocks
// still in use return to the shared cache when freed.
int64_t createMempool();
int64_t useMempool(c10::DeviceIndex device, int64_t mempool);
void releaseMempool(int64_t mempool);

// torch.foo.memory._snapshot(): what the allocator holds and, while history is recorded, what it did.
enum class BlockState : int64_t { Inactive, ActiveAllocated, ActivePendingFree };  // CUDA's snapshot states
struct BlockRecord {
  int64_t device, address, size, requested;
  BlockState state;
  int64_t stream, mempool;
  std::shared_ptr<c10::GatheredContext> stack;  // where it was allocated, if recorded (see recordMemoryHistory)
};
// CUDA's trace actions (torch.cuda.memory._snapshot()["device_traces"]).
enum class TraceAction : int64_t { Alloc, FreeRequested, FreeCompleted, SegmentAlloc, SegmentFree, Oom };
struct TraceRecord {
  int64_t device;
  TraceAction action;
  int64_t address, size, stream, mempool, time_us;
  std::shared_ptr<c10::GatheredContext> stack;  // the Python stack of the allocation or free, if recorded
};
// Every block, one segment each (blocks are never split), on every device.
std::vector<BlockRecord> snapshotBlocks();
// The recorded events, oldest first, per device in turn.
std::vector<TraceRecord> snapshotTrace();
// Starts (keeping at most max_entries events per device, the oldest dropped) or stops recording events; stopping
// forgets them, as torch.cuda.memory._record_memory_history(None). Python stacks are gathered (with the history
// or, for blocks, without it) for allocations, or for allocations and frees, as CUDA's `context` chooses.
enum class StackContext : int64_t { None, Alloc, AllocAndFree };
void recordMemoryHistory(bool enabled, int64_t max_entries, StackContext stacks);

}  // namespace torch_foo
