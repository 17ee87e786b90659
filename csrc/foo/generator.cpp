#include "foo/generator.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/GeneratorForPrivateuseone.h>

#include <deque>
#include <mutex>

namespace torch_foo {

FooGeneratorImpl::FooGeneratorImpl(c10::DeviceIndex device)
    : c10::GeneratorImpl(c10::Device(kFoo, device), c10::DispatchKeySet(c10::DispatchKey::PrivateUse1)),
      engine_(at::detail::createCPUGenerator()) {}

void FooGeneratorImpl::set_current_seed(uint64_t seed) { engine_.set_current_seed(seed); }
namespace {
// As on CPU: the engine's whole position is its state; there is no Philox offset to read or move.
[[noreturn]] void noOffset() {
  TORCH_CHECK(false, "foo generators have no offset: their position is their state (get_state/set_state), as on CPU");
}
}  // namespace

void FooGeneratorImpl::set_offset(uint64_t /*offset*/) { noOffset(); }
uint64_t FooGeneratorImpl::get_offset() const { noOffset(); }
uint64_t FooGeneratorImpl::current_seed() const { return engine_.current_seed(); }
uint64_t FooGeneratorImpl::seed() { return engine_.seed(); }
void FooGeneratorImpl::set_state(const c10::TensorImpl& new_state) { engine_.unsafeGetGeneratorImpl()->set_state(new_state); }
c10::intrusive_ptr<c10::TensorImpl> FooGeneratorImpl::get_state() const { return engine_.unsafeGetGeneratorImpl()->get_state(); }

FooGeneratorImpl* FooGeneratorImpl::clone_impl() const {
  auto* copy = new FooGeneratorImpl(device().index());
  copy->engine_ = engine_.clone();
  return copy;
}

const at::Generator& defaultGenerator(c10::DeviceIndex device) {
  static std::once_flag created;
  static std::deque<at::Generator> generators;
  std::call_once(created, [] {
    for (c10::DeviceIndex d = 0; d < deviceCount(); ++d) {
      generators.push_back(at::make_generator<FooGeneratorImpl>(d));  // default seed, as CPU
    }
  });
  const c10::DeviceIndex index = device < 0 ? currentDevice() : device;
  checkDeviceIndex(index);
  return generators[index];
}

at::Generator newGenerator(c10::DeviceIndex device) {
  const c10::DeviceIndex index = device < 0 ? currentDevice() : device;
  checkDeviceIndex(index);
  return at::make_generator<FooGeneratorImpl>(index);
}

}  // namespace torch_foo
