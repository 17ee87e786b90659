// Per-device random number generators.
//
// The simulated chip's RNG is a CPU generator (mt19937 + Philox as in ATen's CPUGeneratorImpl) owned by each foo
// generator, so random kernels run ATen's CPU kernels with it and produce exactly the numbers CPU PyTorch produces
// for the same seed.
#pragma once

#include <ATen/core/Generator.h>

#include "foo/common.h"

namespace torch_foo {

class FooGeneratorImpl final : public c10::GeneratorImpl {
 public:
  explicit FooGeneratorImpl(c10::DeviceIndex device);
  void set_current_seed(uint64_t seed) override;
  void set_offset(uint64_t offset) override;
  uint64_t get_offset() const override;
  uint64_t current_seed() const override;
  uint64_t seed() override;
  void set_state(const c10::TensorImpl& new_state) override;
  c10::intrusive_ptr<c10::TensorImpl> get_state() const override;
  // The CPU generator the kernels draw from (lock mutex_ around its use).
  const at::Generator& engine() const { return engine_; }

 private:
  FooGeneratorImpl* clone_impl() const override;
  at::Generator engine_;
};

const at::Generator& defaultGenerator(c10::DeviceIndex device);
at::Generator newGenerator(c10::DeviceIndex device);

}  // namespace torch_foo
