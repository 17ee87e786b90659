// foo runtime: the simulated accelerator's driver library.
//
// Torch-free on purpose: this is what a hardware vendor ships, and the PyTorch integration in csrc/ is built on top
// of it. The API follows the shape of GPU runtimes (device selection per thread, device memory, memcpy, streams,
// events). Every call returns a Status; none throws, except that launch/runInOrder let through an exception thrown by
// the work itself when it runs inline on the caller.
//
// Device memory is not host-accessible. Each device owns one memfd-backed arena mapped twice: a PROT_NONE view whose
// addresses are the device pointers handed out by malloc (any host dereference faults, as on a real chip), and a
// read-write alias that only the runtime and kernels use, reached with hostView(). No protection changes happen at
// run time, so a kernel launch costs no syscall.
//
// Execution model: work submitted to a stream runs in submission order. When a stream has nothing pending, a kernel
// launched on it runs at once on the calling thread (the fast path: no queue, no thread switch). Copies between
// device memory and pinned host memory (or between devices) are the chip's DMA: they always go to the stream's worker
// thread and overlap with the host, as do waits for an incomplete event (streamWaitEvent) and launchAsync; later work
// on that stream queues behind them, so order is always preserved.
//
// Global state (arenas, stream and event registries, worker threads) lives until the process exits and is never torn
// down, so exiting with work still queued neither hangs nor crashes (the queued work simply never runs).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

namespace foo_rt {

enum class Status : int {
  Success = 0,
  InvalidDevice,     // device index out of range
  OutOfMemory,       // the device's memory cap is exhausted
  InvalidValue,      // bad argument (null pointer, unknown pointer, size overflow, ...)
  InvalidHandle,     // stream or event that does not exist / was destroyed
  NotReady,          // query: work still pending
  DeviceMismatch,    // stream/event of one device used with another
  SystemError,       // mmap/memfd failure
  ForkedChild,       // called in a child forked after the parent had used the runtime (see forkedChild)
  WorkFailed,        // work queued on a stream threw; lastWorkFailure() says what (see launch)
};

const char* statusString(Status s);
// What the calling thread's last WorkFailed status reported: "stream <id> of foo:<device>: <the exception's message>".
const char* lastWorkFailure() noexcept;

// ---- devices ------------------------------------------------------------------------------------------------------
// Number of devices: TORCH_FOO_DEVICE_COUNT (default 2), read once.
int deviceCount();
// The calling thread's current device (initially 0); InvalidDevice when there are no devices.
Status getDevice(int* device);
Status setDevice(int device);
// Waits for all work on all streams of the device.
Status deviceSynchronize(int device);
// True in a process forked from one that had used the runtime (device memory or stream workers), as after fork()
// with CUDA: the child shares the parent's device memory and has none of its worker threads, so every call that
// touches memory or streams returns ForkedChild there, free() leaves the parent's memory alone, and nothing hangs.
bool forkedChild() noexcept;

// ---- device memory ------------------------------------------------------------------------------------------------
// Per-device cap: TORCH_FOO_MEMORY_LIMIT (bytes, or with suffix KB/MB/GB/KiB/MiB/GiB), default 8 GiB.
// Allocation granularity is 4 KiB; returned pointers are 4 KiB aligned. malloc(0) returns nullptr and Success.
// Fresh allocations read as zeros only by accident of the implementation: do not rely on it.
Status malloc(int device, void** dev_ptr, std::size_t bytes);
// free(nullptr) is a no-op; any pointer malloc did not return gives InvalidValue. Does not wait for queued work that
// may still use the memory (order it with events, as the caching allocator does); the pages go back to the system.
Status free(void* dev_ptr);
// free and total bytes of the device (total == cap rounded up to the 4 KiB granularity).
Status memGetInfo(int device, std::size_t* free_bytes, std::size_t* total_bytes);
// Host-accessible alias of a device address (any address inside an allocation), or nullptr if ptr is not device
// memory. For kernels and the runtime itself; user code never sees these addresses.
void* hostView(const void* dev_ptr);
// Inverse of hostView: the device address behind a host alias address, or nullptr if host_ptr is not inside any
// device's alias view. Lets memory handed to host code as an alias be returned to its device allocation. With
// `device`, also stores the device owning it there (-1 if none).
void* deviceAddress(const void* host_ptr, int* device = nullptr);
// Device owning ptr, or -1 if ptr is not device memory.
int pointerDevice(const void* ptr);

// ---- device memory shared between processes ----------------------------------------------------------------------
// The memfd behind device memory and ptr's offset in it (ptr: inside a live allocation, or inside memory this process
// imported). Another process, given a duplicate of the descriptor (over a Unix socket), maps it with ipcOpen. The
// descriptor stays the runtime's. Freeing the allocation while another process has it open zeroes its pages there:
// the exporter must keep it allocated until every importer closed it.
Status ipcExport(const void* dev_ptr, int* fd, std::size_t* offset);
// Maps `bytes` at `offset` of an exporter's file (fd) as device memory of `device` in this process: *dev_ptr is a
// device address that kernels, copies, hostView and pointerDevice accept (free() does not: use ipcClose). The mapping
// holds the memory, also after the exporter exits; fd may be closed once this returns.
Status ipcOpen(int device, int fd, std::size_t offset, std::size_t bytes, void** dev_ptr);
// Unmaps what ipcOpen returned (exactly that address).
Status ipcClose(void* dev_ptr);

// ---- pinned host memory -------------------------------------------------------------------------------------------
Status mallocHost(void** ptr, std::size_t bytes);
Status freeHost(void* ptr);
// True if ptr lies inside a live pinned allocation.
bool isPinned(const void* ptr);

// ---- streams ------------------------------------------------------------------------------------------------------
struct StreamImpl;
using Stream = StreamImpl*;
// Each device has a default stream (never destroyed).
Stream defaultStream(int device);
// priority: lower number = higher priority, range [-1, 0] (values outside are clamped); stored and reported, not
// scheduled differently.
Status streamCreate(int device, Stream* stream, int priority = 0);
// Waits for pending work first. InvalidHandle for a default stream; InvalidValue when called from work running on the
// stream itself.
Status streamDestroy(Stream stream);
int streamDevice(Stream stream);
int streamPriority(Stream stream);
// Process-unique id of the stream (default streams have id 0 on every device).
std::int64_t streamId(Stream stream);
Status streamQuery(Stream stream);  // Success if idle, NotReady if work pending, WorkFailed (see launch)
// True on a stream's worker thread (running queued work, which has no caller waiting for it).
bool onStreamWorker() noexcept;
// Called from work running on the stream itself, returns at once (everything queued before that work has run).
Status streamSynchronize(Stream stream);
// Runs work in stream order: inline on the caller when the stream is idle, else queued behind pending work (work must
// then own everything it touches). Returns after running inline, or after queueing.
// An exception thrown by work run inline propagates to the caller. Work run on the stream's worker thread has no
// caller: the stream keeps its failure (the first one, if several) and carries on with the next item, and the next
// streamSynchronize, streamQuery or deviceSynchronize of it (directly, or through runInOrder or a synchronous memcpy)
// returns WorkFailed once, as an asynchronous CUDA error surfaces at the next synchronizing call. Queued work (and
// what it captured) is destroyed on the worker before the stream counts it as done.
Status launch(Stream stream, std::function<void()> work);
// Queues work on the stream's worker even when the stream is idle: the caller never runs it nor waits for it. Later
// work on the stream queues behind it.
Status launchAsync(Stream stream, std::function<void()> work);
// Runs work on the caller after everything pending on the stream (waits for the stream if it is busy). The fast path
// for synchronous kernels: no std::function allocation when idle.
template <class F>
Status runInOrder(Stream stream, F&& work);

// ---- copies -------------------------------------------------------------------------------------------------------
// Direction is inferred from the pointers (device pointers vs host pointers). Synchronous copies wait for the stream's
// pending work (default stream of the device involved if stream is nullptr).
Status memcpy(void* dst, const void* src, std::size_t bytes);
// Asynchronous (queued on the stream's worker) when the host side is pinned or both sides are device memory; a
// pageable host buffer makes it synchronous, in stream order, as on CUDA.
Status memcpyAsync(void* dst, const void* src, std::size_t bytes, Stream stream);
// Strided copies are done by kernels through hostView().

// ---- events -------------------------------------------------------------------------------------------------------
struct EventImpl;
using Event = EventImpl*;
enum EventFlags : unsigned { kEventDefault = 0, kEventDisableTiming = 1 };
Status eventCreate(Event* event, unsigned flags = kEventDefault);
Status eventDestroy(Event event);
// Captures the stream's work submitted so far; completes when that work has run. Re-recording replaces the capture.
Status eventRecord(Event event, Stream stream);
Status eventQuery(Event event);  // Success if complete (or never recorded), NotReady otherwise
Status eventSynchronize(Event event);
// Later work on stream waits until event completes (no host blocking).
Status streamWaitEvent(Stream stream, Event event);
// Milliseconds between two completed events that were created with timing; InvalidValue if timing disabled or an
// event was never recorded, NotReady if one has not completed.
Status eventElapsedTime(float* ms, Event start, Event end);
// Device the event was last recorded on, or -1.
int eventDevice(Event event);

}  // namespace foo_rt

#include "foo_runtime_inl.h"
