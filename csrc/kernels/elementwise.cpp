// Elementwise arithmetic: add, sub, mul, div (Tensor and Scalar, in-place and out=, broadcasting, type promotion),
// and the fused forms optimizers use: lerp, addcmul, addcdiv.
#include "kernels/kernel_helpers.h"

#include <ATen/ops/add_cpu_dispatch.h>
#include <ATen/ops/addcdiv_cpu_dispatch.h>
#include <ATen/ops/addcmul_cpu_dispatch.h>
#include <ATen/ops/div_cpu_dispatch.h>
#include <ATen/ops/lerp_cpu_dispatch.h>
#include <ATen/ops/mul_cpu_dispatch.h>
#include <ATen/ops/sub_cpu_dispatch.h>

#include "foo/registration.h"

namespace torch_foo {

using at::Scalar;
using at::Tensor;

FOO_KERNELS(arithmetic, m) {
  m.impl("add.Tensor", +[](const Tensor& a, const Tensor& b, const Scalar& alpha) {
    return functional(FOO_CPU(add), a, b, alpha);
  });
  m.impl("add_.Tensor", +[](Tensor& a, const Tensor& b, const Scalar& alpha) -> Tensor& {
    return inplace(FOO_CPU(add_), a, b, alpha);
  });
  m.impl("add.out", +[](const Tensor& a, const Tensor& b, const Scalar& alpha, Tensor& out) -> Tensor& {
    return outVariant(FOO_CPU(add_out), out, a, b, alpha);
  });
  m.impl("sub.Tensor", +[](const Tensor& a, const Tensor& b, const Scalar& alpha) {
    return functional(FOO_CPU(sub), a, b, alpha);
  });
  m.impl("sub_.Tensor", +[](Tensor& a, const Tensor& b, const Scalar& alpha) -> Tensor& {
    return inplace(FOO_CPU(sub_), a, b, alpha);
  });
  m.impl("sub.out", +[](const Tensor& a, const Tensor& b, const Scalar& alpha, Tensor& out) -> Tensor& {
    return outVariant(FOO_CPU(sub_out), out, a, b, alpha);
  });
  m.impl("mul.Tensor", +[](const Tensor& a, const Tensor& b) { return functional(FOO_CPU(mul), a, b); });
  m.impl("mul_.Tensor", +[](Tensor& a, const Tensor& b) -> Tensor& { return inplace(FOO_CPU(mul_), a, b); });
  m.impl("mul.out", +[](const Tensor& a, const Tensor& b, Tensor& out) -> Tensor& {
    return outVariant(FOO_CPU(mul_out), out, a, b);
  });
  m.impl("div.Tensor", +[](const Tensor& a, const Tensor& b) { return functional(FOO_CPU(div), a, b); });
  m.impl("div_.Tensor", +[](Tensor& a, const Tensor& b) -> Tensor& { return inplace(FOO_CPU(div_), a, b); });
  m.impl("div.out", +[](const Tensor& a, const Tensor& b, Tensor& out) -> Tensor& {
    return outVariant(FOO_CPU(div_out), out, a, b);
  });
  m.impl("div.Tensor_mode", +[](const Tensor& a, const Tensor& b, std::optional<c10::string_view> mode) {
    return functional(FOO_CPU(div), a, b, mode);
  });
  m.impl("div_.Tensor_mode", +[](Tensor& a, const Tensor& b, std::optional<c10::string_view> mode) -> Tensor& {
    return inplace(FOO_CPU(div_), a, b, mode);
  });
  m.impl("div.out_mode",
         +[](const Tensor& a, const Tensor& b, std::optional<c10::string_view> mode, Tensor& out) -> Tensor& {
           return outVariant(FOO_CPU(div_out), out, a, b, mode);
         });

  m.impl("lerp.Scalar", +[](const Tensor& a, const Tensor& end, const Scalar& w) {
    return functional(FOO_CPU(lerp), a, end, w);
  });
  m.impl("lerp_.Scalar", +[](Tensor& a, const Tensor& end, const Scalar& w) -> Tensor& {
    return inplace(FOO_CPU(lerp_), a, end, w);
  });
  m.impl("lerp.Scalar_out", +[](const Tensor& a, const Tensor& end, const Scalar& w, Tensor& out) -> Tensor& {
    return outVariant(FOO_CPU(lerp_out), out, a, end, w);
  });
  m.impl("lerp.Tensor", +[](const Tensor& a, const Tensor& end, const Tensor& w) {
    return functional(FOO_CPU(lerp), a, end, w);
  });
  m.impl("lerp_.Tensor", +[](Tensor& a, const Tensor& end, const Tensor& w) -> Tensor& {
    return inplace(FOO_CPU(lerp_), a, end, w);
  });
  m.impl("lerp.Tensor_out", +[](const Tensor& a, const Tensor& end, const Tensor& w, Tensor& out) -> Tensor& {
    return outVariant(FOO_CPU(lerp_out), out, a, end, w);
  });
  m.impl("addcmul", +[](const Tensor& a, const Tensor& t1, const Tensor& t2, const Scalar& value) {
    return functional(FOO_CPU(addcmul), a, t1, t2, value);
  });
  m.impl("addcmul_", +[](Tensor& a, const Tensor& t1, const Tensor& t2, const Scalar& value) -> Tensor& {
    return inplace(FOO_CPU(addcmul_), a, t1, t2, value);
  });
  m.impl("addcmul.out",
         +[](const Tensor& a, const Tensor& t1, const Tensor& t2, const Scalar& value, Tensor& out) -> Tensor& {
           return outVariant(FOO_CPU(addcmul_out), out, a, t1, t2, value);
         });
  m.impl("addcdiv", +[](const Tensor& a, const Tensor& t1, const Tensor& t2, const Scalar& value) {
    return functional(FOO_CPU(addcdiv), a, t1, t2, value);
  });
  m.impl("addcdiv_", +[](Tensor& a, const Tensor& t1, const Tensor& t2, const Scalar& value) -> Tensor& {
    return inplace(FOO_CPU(addcdiv_), a, t1, t2, value);
  });
  m.impl("addcdiv.out",
         +[](const Tensor& a, const Tensor& t1, const Tensor& t2, const Scalar& value, Tensor& out) -> Tensor& {
           return outVariant(FOO_CPU(addcdiv_out), out, a, t1, t2, value);
         });
}

}  // namespace torch_foo
