// Kernel families for tests/test_registration.py, which builds this file as a kernels library against the registry
// of csrc/foo/registration.cpp. `correct` registers; the others are each refused by the dispatcher and enabled one at a
// time by defining their macro: a kernel whose signature does not match the aten schema, a kernel for an op name aten
// does not define, a custom operator defined twice.
#include <ATen/core/Tensor.h>

#include "foo/registration.h"

namespace {

at::Tensor identity(const at::Tensor& self) { return self; }
[[maybe_unused]] int64_t wrongSignature(int64_t value) { return value; }

}  // namespace

FOO_KERNELS(correct, m) { m.impl("neg", TORCH_FN(identity)); }

#ifdef WRONG_SIGNATURE
FOO_KERNELS(wrong_signature, m) {
  m.impl("positive", TORCH_FN(identity));  // registered, then withdrawn with the rest of the family
  m.impl("abs", TORCH_FN(wrongSignature));
}
#endif

#ifdef MISSPELLED
FOO_KERNELS(misspelled, m) { m.impl("absolutely_not_an_op", TORCH_FN(identity)); }
#endif

#ifdef DEFINED_TWICE
FOO_OPERATORS(defined_twice, foo, m) {
  m.def("fixture_twice(Tensor a) -> Tensor");
  m.def("fixture_twice(Tensor a) -> Tensor");
}
#endif
