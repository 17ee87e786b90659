// DeviceGuardImplInterface for foo: current device, streams and events as PyTorch's generic device code sees them
// (torch.Stream, torch.Event, torch.accelerator, DeviceGuard).
#include <c10/core/impl/DeviceGuardImplInterface.h>

#include "foo/allocator.h"
#include "foo/common.h"
#include "foo/stream.h"

namespace torch_foo {
namespace {

foo_rt::Event createEvent(c10::EventFlag flag) {
  foo_rt::Event event = nullptr;
  // PyTorch's default flag asks for no timing (as CUDA does); BACKEND_DEFAULT enables it.
  const unsigned flags = flag == c10::EventFlag::BACKEND_DEFAULT ? foo_rt::kEventDefault : foo_rt::kEventDisableTiming;
  FOO_CHECK(foo_rt::eventCreate(&event, flags));
  return event;
}

struct GuardImpl final : public c10::impl::DeviceGuardImplInterface {
  c10::DeviceType type() const override { return kFoo; }

  // Device guards around most ops find the device already current: then one thread-local read, as CUDA's
  // MaybeExchangeDevice, instead of validating and setting it again.
  c10::Device exchangeDevice(c10::Device device) const override {
    const c10::DeviceIndex previous = currentDevice();
    if (device.type() != kFoo || device.index() != previous) setDevice(device);
    return c10::Device(kFoo, previous);
  }

  c10::Device getDevice() const override { return c10::Device(kFoo, currentDevice()); }

  void setDevice(c10::Device device) const override {
    TORCH_CHECK(device.type() == kFoo, "expected a foo device, got ", device);
    setCurrentDevice(resolveIndex(device));
  }

  void uncheckedSetDevice(c10::Device device) const noexcept override {
    if (device.has_index()) foo_rt::setDevice(device.index());
  }

  c10::Stream getStream(c10::Device device) const override { return currentStream(resolveIndex(device)); }

  c10::Stream getDefaultStream(c10::Device device) const override { return defaultStream(resolveIndex(device)); }

  c10::Stream getStreamFromGlobalPool(c10::Device device, bool high_priority) const override {
    return streamFromPool(resolveIndex(device), high_priority);
  }

  c10::Stream getNewStream(c10::Device device, int priority) const override {
    return streamFromPool(resolveIndex(device), priority < 0);
  }

  c10::Stream exchangeStream(c10::Stream stream) const override { return exchangeCurrentStream(stream); }

  void* getStreamNativeHandle(const c10::Stream stream) const override { return runtimeStream(stream); }

  c10::DeviceCapability getDeviceCapability(c10::Device device) const override {
    resolveIndex(device);
    return c10::DeviceCapability();  // the simulated chip supports every dtype
  }

  c10::DeviceIndex deviceCount() const noexcept override { return torch_foo::deviceCount(); }

  bool queryStream(const c10::Stream& stream) const override {
    const foo_rt::Status status = foo_rt::streamQuery(runtimeStream(stream));
    if (status == foo_rt::Status::NotReady) return false;
    FOO_CHECK(status);  // a failure of queued work is raised, not taken for "still busy"
    return true;
  }

  void synchronizeStream(const c10::Stream& stream) const override {
    FOO_CHECK(foo_rt::streamSynchronize(runtimeStream(stream)));
  }

  void synchronizeDevice(const c10::DeviceIndex device) const override {
    checkDeviceIndex(device);
    FOO_CHECK(foo_rt::deviceSynchronize(device));
  }

  void record(void** event, const c10::Stream& stream, const c10::DeviceIndex device,
              const c10::EventFlag flag) const override {
    TORCH_CHECK(device == -1 || device == stream.device_index(), "a foo event of foo:", int(device),
                " cannot be recorded on a stream of ", stream.device());
    foo_rt::Stream handle = runtimeStream(stream);
    if (*event == nullptr) *event = createEvent(flag);
    auto* foo_event = static_cast<foo_rt::Event>(*event);
    const int recorded_on = foo_rt::eventDevice(foo_event);
    TORCH_CHECK(recorded_on == -1 || recorded_on == stream.device_index(), "a foo event recorded on foo:",
                recorded_on, " cannot be re-recorded on a stream of ", stream.device());
    FOO_CHECK(foo_rt::eventRecord(foo_event, handle));
  }

  void block(void* event, const c10::Stream& stream) const override {
    if (event == nullptr) return;  // never recorded: nothing to wait for
    // A stream may wait for an event recorded on another device, as cudaStreamWaitEvent allows (torch.cuda relies on
    // it for wait_stream between devices): the runtime orders the wait whatever device the event was recorded on.
    FOO_CHECK(foo_rt::streamWaitEvent(runtimeStream(stream), static_cast<foo_rt::Event>(event)));
  }

  bool queryEvent(void* event) const override {
    if (event == nullptr) return true;
    return foo_rt::eventQuery(static_cast<foo_rt::Event>(event)) == foo_rt::Status::Success;
  }

  void synchronizeEvent(void* event) const override {
    if (event == nullptr) return;
    FOO_CHECK(foo_rt::eventSynchronize(static_cast<foo_rt::Event>(event)));
  }

  void destroyEvent(void* event, const c10::DeviceIndex /*device*/) const noexcept override {
    if (event != nullptr) foo_rt::eventDestroy(static_cast<foo_rt::Event>(event));
  }

  double elapsedTime(void* start, void* end, const c10::DeviceIndex /*device*/) const override {
    TORCH_CHECK(start != nullptr && end != nullptr, "both foo events must be recorded before elapsed_time");
    // As cudaEventElapsedTime: the two events must have been recorded on the same device (each device has its own
    // clock on real hardware, so a difference across devices means nothing).
    const int start_device = foo_rt::eventDevice(static_cast<foo_rt::Event>(start));
    const int end_device = foo_rt::eventDevice(static_cast<foo_rt::Event>(end));
    TORCH_CHECK_VALUE(start_device == end_device,
                      "elapsed_time: both foo events must be recorded on the same device, but one was recorded on "
                      "foo:", start_device, " and the other on foo:", end_device);
    float ms = 0;
    const foo_rt::Status status =
        foo_rt::eventElapsedTime(&ms, static_cast<foo_rt::Event>(start), static_cast<foo_rt::Event>(end));
    TORCH_CHECK(status != foo_rt::Status::InvalidValue,
                "elapsed_time needs two recorded foo events created with enable_timing=True");
    TORCH_CHECK(status != foo_rt::Status::NotReady, "elapsed_time: the foo events have not completed yet");
    FOO_CHECK(status);
    return ms;
  }

  void recordDataPtrOnStream(const c10::DataPtr& data, const c10::Stream& stream) const override {
    deviceAllocator().recordStream(data, stream);
  }
};

}  // namespace

C10_REGISTER_GUARD_IMPL(PrivateUse1, GuardImpl);

}  // namespace torch_foo
