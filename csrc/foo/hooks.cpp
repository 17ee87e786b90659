// PrivateUse1HooksInterface: how PyTorch's core (autograd, RNG, pinned memory, torch.accelerator) asks about foo.
#include <ATen/detail/PrivateUse1HooksInterface.h>

#include "foo/allocator.h"
#include "foo/common.h"
#include "foo/generator.h"
#include "foo/host_allocator.h"
#include "foo/stream.h"

namespace torch_foo {
namespace {

struct Hooks final : public at::PrivateUse1HooksInterface {
  void init() const override {}
  bool isBuilt() const override { return true; }
  bool isAvailable() const override { return deviceCount() > 0; }
  bool hasPrimaryContext(c10::DeviceIndex device) const override {
    checkDeviceIndex(device);
    return true;
  }
  const at::Generator& getDefaultGenerator(c10::DeviceIndex device) const override { return defaultGenerator(device); }
  at::Generator getNewGenerator(c10::DeviceIndex device) const override { return newGenerator(device); }
  at::Device getDeviceFromPtr(void* data) const override {
    const int device = foo_rt::pointerDevice(data);
    TORCH_CHECK(device >= 0, "pointer ", data, " is not foo device memory");
    return at::Device(kFoo, static_cast<c10::DeviceIndex>(device));
  }
  bool isPinnedPtr(const void* data) const override { return foo_rt::isPinned(data); }
  at::Allocator* getPinnedMemoryAllocator() const override { return &pinnedHostAllocator(); }
  c10::DeviceIndex deviceCount() const override { return torch_foo::deviceCount(); }
  void setCurrentDevice(c10::DeviceIndex device) const override { torch_foo::setCurrentDevice(device); }
  c10::DeviceIndex getCurrentDevice() const override { return currentDevice(); }
  c10::DeviceIndex exchangeDevice(c10::DeviceIndex device) const override {
    const c10::DeviceIndex previous = currentDevice();
    torch_foo::setCurrentDevice(device);
    return previous;
  }
  c10::DeviceIndex maybeExchangeDevice(c10::DeviceIndex device) const override { return exchangeDevice(device); }
  void resizePrivateUse1Bytes(const c10::Storage& storage, size_t new_bytes) const override;
};

void Hooks::resizePrivateUse1Bytes(const c10::Storage& storage, size_t new_bytes) const {
  c10::StorageImpl* impl = storage.unsafeGetStorageImpl();
  TORCH_CHECK(impl->resizable(), "Trying to resize storage that is not resizable");
  const c10::DeviceIndex device = impl->device().index();
  at::DataPtr fresh = allocateDeviceMemory(device, new_bytes);
  const size_t keep = std::min(new_bytes, impl->nbytes());
  if (keep > 0) {
    // In the order of the device's current stream, as CUDA's resize copies on the current stream: work queued there
    // (e.g. a non_blocking upload into this storage) lands before the bytes are kept. foo_rt::memcpy alone orders
    // only with the default stream. Synchronous, so the old block is released only after the copy has read it.
    FOO_CHECK(foo_rt::streamSynchronize(currentRuntimeStream(device)));
    FOO_CHECK(foo_rt::memcpy(fresh.get(), impl->data(), keep));
  }
  impl->set_data_ptr_noswap(std::move(fresh));
  impl->set_nbytes(new_bytes);
}

// Registered at load time: autograd asks for the hooks as soon as a foo tensor takes part in backward.
const bool g_registered = [] {
  static Hooks hooks;
  at::RegisterPrivateUse1HooksInterface(&hooks);
  return true;
}();

}  // namespace
}  // namespace torch_foo
