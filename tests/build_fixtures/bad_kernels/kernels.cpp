// Three kernel families for tests/test_registration.py: one correct, one whose kernel signature does not match the
// aten schema (the dispatcher refuses it while the library loads), one registered under a misspelled op name.
#include <ATen/core/Tensor.h>

#include "foo/registration.h"

namespace {

at::Tensor identity(const at::Tensor& self) { return self; }
int64_t wrongSignature(int64_t value) { return value; }

}  // namespace

FOO_KERNELS(correct, m) { m.impl("neg", TORCH_FN(identity)); }

FOO_KERNELS(wrong_signature, m) {
  m.impl("positive", TORCH_FN(identity));  // registered, then withdrawn with the rest of the family
  m.impl("abs", TORCH_FN(wrongSignature));
}

FOO_KERNELS(misspelled, m) { m.impl("absolutely_not_an_op", TORCH_FN(identity)); }
