// foo streams as PyTorch sees them: c10::Stream ids mapped to runtime streams, and the per-thread current stream.
//
// Like CUDA, streams handed out by PyTorch come from a fixed pool per device and priority (created lazily, reused
// round-robin), because a c10::Stream carries no lifetime. Stream id 0 is the device's default stream.
#pragma once

#include <c10/core/Stream.h>

#include "foo/common.h"

namespace torch_foo {

constexpr int kStreamsPerPool = 32;

// The runtime stream behind a foo c10::Stream; raises if the stream is not a valid foo stream.
foo_rt::Stream runtimeStream(const c10::Stream& stream);
c10::Stream defaultStream(c10::DeviceIndex device);
c10::Stream currentStream(c10::DeviceIndex device);
// Id of the current stream of a (valid) device: the allocator's fast path.
c10::StreamId currentStreamId(c10::DeviceIndex device);
// Runtime handle of the current stream of a device: the per-kernel fast path.
foo_rt::Stream currentRuntimeStream(c10::DeviceIndex device);
// The same from this thread's current stream ids (currentStreamIds()[device]), read by the caller.
foo_rt::Stream runtimeStreamOf(c10::DeviceIndex device, c10::StreamId id);
// This thread's current stream id per device (valid while the thread lives), for a caller that keeps it per thread.
const c10::StreamId* currentStreamIds();
// Sets the thread's current stream for the stream's device; returns the previous one.
c10::Stream exchangeCurrentStream(const c10::Stream& stream);
// Next stream of the device's pool; high_priority picks the priority -1 pool.
c10::Stream streamFromPool(c10::DeviceIndex device, bool high_priority);

}  // namespace torch_foo
