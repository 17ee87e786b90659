// foo's device activity for PyTorch's profiler: kernels as they run on the device's streams.
#pragma once

#include <c10/core/Device.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "foo/common.h"

namespace torch_foo {

namespace detail {
extern std::atomic<bool> g_tracing_kernels;
}  // namespace detail

// True while a profiler session records foo kernels: costs a kernel one relaxed load when nobody profiles.
inline bool tracingKernels() { return detail::g_tracing_kernels.load(std::memory_order_relaxed); }

// What the profiler keeps of a running kernel.
struct KernelTrace {
  int64_t start_ns = -1;       // -1: not traced
  int64_t correlation_id = 0;  // the profiled operator that launched it (0: none)
  std::string name;            // empty: named after that operator
  bool copy = false;           // a memory copy (a memcpy event), not a kernel
};

// Starts tracing a kernel launched now by the calling thread.
void beginKernelTrace(KernelTrace& trace);
// Records the traced kernel as having run on `device`'s stream `stream_id` until now.
void endKernelTrace(const KernelTrace& trace, c10::DeviceIndex device, int64_t stream_id);
// Has the profiler time the copy from src to dst that queue_copy queues on the current stream of `device` when the
// stream runs it, not when it is queued: a memcpy event named as CUDA names its copies ("Memcpy HtoD (Pinned ->
// Device)"). Call only while tracingKernels().
void traceCopy(c10::DeviceIndex device, void* dst, const void* src, const std::function<void()>& queue_copy);

}  // namespace torch_foo
