// Random sampling (rand, randn, randint, normal_, uniform_, dropout, ...): ATen's CPU kernels drawing from the foo
// generator's engine, so the same seed gives exactly the numbers CPU PyTorch gives. runOnDevice swaps the op's foo
// generator (or the device default) for that engine.
#include "foo/registration.h"
#include "kernels/fallback.h"

namespace torch_foo {

FOO_KERNELS(random, m) {
  for (const char* op : {"normal_", "uniform_", "random_", "random_.from", "random_.to", "bernoulli_.Tensor",
                         "bernoulli_.float", "bernoulli", "exponential_", "geometric_", "log_normal_", "cauchy_",
                         "native_dropout", "normal.Tensor_float", "normal.float_Tensor", "normal.Tensor_Tensor",
                         "multinomial", "randperm.generator_out"}) {
    m.impl(op, torch::CppFunction::makeFromBoxedFunction<&runOnDevice>());
  }
}

}  // namespace torch_foo
