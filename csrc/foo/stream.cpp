#include "foo/stream.h"

#include <array>
#include <atomic>
#include <mutex>

namespace torch_foo {
namespace {

// c10 has at most 64 devices per type (DeviceIndex is int8 and c10 caps indices); pools are sized for that.
constexpr int kMaxDevices = 64;
constexpr int kStreamsPerDevice = 1 + 2 * kStreamsPerPool;  // default, normal pool, high-priority pool

struct DeviceStreams {
  std::once_flag created;
  std::array<foo_rt::Stream, kStreamsPerDevice> handles{};
  std::atomic<uint32_t> next_normal{0};
  std::atomic<uint32_t> next_high{0};
};

std::array<DeviceStreams, kMaxDevices> g_devices;

DeviceStreams& streamsOf(c10::DeviceIndex device) {
  checkDeviceIndex(device);
  DeviceStreams& streams = g_devices[device];
  // Creating all pool streams at first use costs no threads: runtime streams start their worker lazily.
  std::call_once(streams.created, [&] {
    streams.handles[0] = foo_rt::defaultStream(device);
    for (int i = 0; i < kStreamsPerPool; ++i) {
      FOO_CHECK(foo_rt::streamCreate(device, &streams.handles[1 + i], 0));
      FOO_CHECK(foo_rt::streamCreate(device, &streams.handles[1 + kStreamsPerPool + i], -1));
    }
  });
  return streams;
}

// Current stream id per device for this thread; 0 = default stream.
thread_local std::array<c10::StreamId, kMaxDevices> t_current_ids{};

c10::Stream makeStream(c10::DeviceIndex device, c10::StreamId id) {
  return c10::Stream(c10::Stream::UNSAFE, c10::Device(kFoo, device), id);
}

}  // namespace

foo_rt::Stream runtimeStream(const c10::Stream& stream) {
  TORCH_CHECK(stream.device_type() == kFoo, "expected a foo stream, got a stream of device ", stream.device());
  const c10::StreamId id = stream.id();
  TORCH_CHECK(id >= 0 && id < kStreamsPerDevice, "invalid foo stream id ", id);
  return streamsOf(stream.device_index()).handles[id];
}

c10::Stream defaultStream(c10::DeviceIndex device) {
  checkDeviceIndex(device);
  return makeStream(device, 0);
}

c10::Stream currentStream(c10::DeviceIndex device) {
  checkDeviceIndex(device);
  return makeStream(device, t_current_ids[device]);
}

c10::StreamId currentStreamId(c10::DeviceIndex device) { return t_current_ids[device]; }

const c10::StreamId* currentStreamIds() { return t_current_ids.data(); }

foo_rt::Stream currentRuntimeStream(c10::DeviceIndex device) { return runtimeStreamOf(device, t_current_ids[device]); }

foo_rt::Stream runtimeStreamOf(c10::DeviceIndex device, c10::StreamId id) {
  if (id != 0) return streamsOf(device).handles[id];
  // Every kernel asks, and the runtime's lookup validates and locks nothing but still costs a few calls; a device's
  // default stream lives as long as the process, so its handle is kept once found.
  static std::array<std::atomic<foo_rt::Stream>, kMaxDevices> defaults{};
  foo_rt::Stream stream = defaults[device].load(std::memory_order_acquire);
  if (stream == nullptr) {
    stream = foo_rt::defaultStream(device);
    defaults[device].store(stream, std::memory_order_release);
  }
  return stream;
}

c10::Stream exchangeCurrentStream(const c10::Stream& stream) {
  runtimeStream(stream);  // validates
  const c10::DeviceIndex device = stream.device_index();
  c10::Stream previous = makeStream(device, t_current_ids[device]);
  t_current_ids[device] = stream.id();
  return previous;
}

c10::Stream streamFromPool(c10::DeviceIndex device, bool high_priority) {
  DeviceStreams& streams = streamsOf(device);
  auto& counter = high_priority ? streams.next_high : streams.next_normal;
  const int slot = static_cast<int>(counter.fetch_add(1) % kStreamsPerPool);
  return makeStream(device, 1 + (high_priority ? kStreamsPerPool : 0) + slot);
}

}  // namespace torch_foo
