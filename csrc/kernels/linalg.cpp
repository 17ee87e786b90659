// Matrix products: mm, addmm, bmm, dot, mv, addmv (matmul and linear decompose into these).
#include "kernels/kernel_helpers.h"

#include <ATen/ops/addmm_cpu_dispatch.h>
#include <ATen/ops/addmv_cpu_dispatch.h>
#include <ATen/ops/bmm_cpu_dispatch.h>
#include <ATen/ops/dot_cpu_dispatch.h>
#include <ATen/ops/mm_cpu_dispatch.h>
#include <ATen/ops/mv_native.h>  // mv has no CPU kernel: its composite form (empty + addmv_) runs in one scope

#include "foo/registration.h"

namespace torch_foo {

using at::Scalar;
using at::Tensor;

FOO_KERNELS(linalg, m) {
  m.impl("mm", +[](const Tensor& a, const Tensor& b) { return functional(FOO_CPU(mm), a, b); });
  m.impl("mm.out", +[](const Tensor& a, const Tensor& b, Tensor& out) -> Tensor& {
    return outVariant(FOO_CPU(mm_out), out, a, b);
  });
  m.impl("addmm", +[](const Tensor& self, const Tensor& a, const Tensor& b, const Scalar& beta, const Scalar& alpha) {
    return functional(FOO_CPU(addmm), self, a, b, beta, alpha);
  });
  m.impl("addmm_", +[](Tensor& self, const Tensor& a, const Tensor& b, const Scalar& beta, const Scalar& alpha)
                       -> Tensor& { return inplace(FOO_CPU(addmm_), self, a, b, beta, alpha); });
  m.impl("addmm.out", +[](const Tensor& self, const Tensor& a, const Tensor& b, const Scalar& beta,
                          const Scalar& alpha, Tensor& out) -> Tensor& {
    return outVariant(FOO_CPU(addmm_out), out, self, a, b, beta, alpha);
  });
  m.impl("bmm", +[](const Tensor& a, const Tensor& b) { return functional(FOO_CPU(bmm), a, b); });
  m.impl("bmm.out", +[](const Tensor& a, const Tensor& b, Tensor& out) -> Tensor& {
    return outVariant(FOO_CPU(bmm_out), out, a, b);
  });
  m.impl("dot", +[](const Tensor& a, const Tensor& b) { return functional(FOO_CPU(dot), a, b); });
  // Matrix-vector: `a @ v` (2-D or batched @ 1-D) reaches mv, whose composite form calls addmv_.
  m.impl("mv", +[](const Tensor& a, const Tensor& v) { return functional(FOO_NATIVE(mv), a, v); });
  m.impl("mv.out", +[](const Tensor& a, const Tensor& v, Tensor& out) -> Tensor& {
    auto mv_out = [](Tensor& o, const Tensor& x, const Tensor& y) -> Tensor& { return at::native::mv_out(x, y, o); };
    return outVariant(mv_out, out, a, v);
  });
  m.impl("addmv", +[](const Tensor& self, const Tensor& a, const Tensor& v, const Scalar& beta, const Scalar& alpha) {
    return functional(FOO_CPU(addmv), self, a, v, beta, alpha);
  });
  m.impl("addmv_", +[](Tensor& self, const Tensor& a, const Tensor& v, const Scalar& beta, const Scalar& alpha)
                       -> Tensor& { return inplace(FOO_CPU(addmv_), self, a, v, beta, alpha); });
  m.impl("addmv.out", +[](const Tensor& self, const Tensor& a, const Tensor& v, const Scalar& beta,
                          const Scalar& alpha, Tensor& out) -> Tensor& {
    return outVariant(FOO_CPU(addmv_out), out, self, a, v, beta, alpha);
  });
}

}  // namespace torch_foo
