// Elementwise math and activations: neg, abs, exp, log, sqrt, rsqrt, reciprocal, sin, cos, tanh, sigmoid, relu, gelu,
// silu, pow.
#include "kernels/kernel_helpers.h"

#include <ATen/ops/abs_cpu_dispatch.h>
#include <ATen/ops/cos_cpu_dispatch.h>
#include <ATen/ops/exp_cpu_dispatch.h>
#include <ATen/ops/gelu_cpu_dispatch.h>
#include <ATen/ops/log_cpu_dispatch.h>
#include <ATen/ops/neg_cpu_dispatch.h>
#include <ATen/ops/pow_cpu_dispatch.h>
#include <ATen/ops/reciprocal_cpu_dispatch.h>
#include <ATen/ops/relu_cpu_dispatch.h>
#include <ATen/ops/rsqrt_cpu_dispatch.h>
#include <ATen/ops/sigmoid_cpu_dispatch.h>
#include <ATen/ops/silu_cpu_dispatch.h>
#include <ATen/ops/sin_cpu_dispatch.h>
#include <ATen/ops/sqrt_cpu_dispatch.h>
#include <ATen/ops/tanh_cpu_dispatch.h>

#include "foo/registration.h"

namespace torch_foo {

using at::Scalar;
using at::Tensor;

// op, op_ and op.out of a unary op with no other arguments.
#define FOO_UNARY(m, op)                                                                                    \
  m.impl(#op, +[](const Tensor& a) { return functional(FOO_CPU(op), a); });                                 \
  m.impl(#op "_", +[](Tensor& a) -> Tensor& { return inplace(FOO_CPU(op##_), a); });                        \
  m.impl(#op ".out", +[](const Tensor& a, Tensor& out) -> Tensor& { return outVariant(FOO_CPU(op##_out), out, a); })

FOO_KERNELS(unary, m) {
  FOO_UNARY(m, neg);
  FOO_UNARY(m, exp);
  FOO_UNARY(m, log);
  FOO_UNARY(m, sqrt);
  FOO_UNARY(m, rsqrt);
  FOO_UNARY(m, sin);
  FOO_UNARY(m, cos);
  FOO_UNARY(m, tanh);
  FOO_UNARY(m, sigmoid);
  FOO_UNARY(m, silu);
  FOO_UNARY(m, reciprocal);  // GradScaler unscales with it
  // abs has a composite functional form that calls abs.out.
  m.impl("abs.out", +[](const Tensor& a, Tensor& out) -> Tensor& { return outVariant(FOO_CPU(abs_out), out, a); });
  m.impl("relu", +[](const Tensor& a) { return functional(FOO_CPU(relu), a); });
  m.impl("relu_", +[](Tensor& a) -> Tensor& { return inplace(FOO_CPU(relu_), a); });
  m.impl("gelu", +[](const Tensor& a, c10::string_view approximate) {
    return functional(FOO_CPU(gelu), a, approximate);
  });
  m.impl("gelu_", +[](Tensor& a, c10::string_view approximate) -> Tensor& {
    return inplace(FOO_CPU(gelu_), a, approximate);
  });
  m.impl("gelu.out", +[](const Tensor& a, c10::string_view approximate, Tensor& out) -> Tensor& {
    return outVariant(FOO_CPU(gelu_out), out, a, approximate);
  });
  m.impl("pow.Tensor_Tensor", +[](const Tensor& a, const Tensor& b) { return functional(FOO_CPU(pow), a, b); });
  m.impl("pow_.Tensor", +[](Tensor& a, const Tensor& b) -> Tensor& { return inplace(FOO_CPU(pow_), a, b); });
  m.impl("pow.Tensor_Tensor_out", +[](const Tensor& a, const Tensor& b, Tensor& out) -> Tensor& {
    return outVariant(FOO_CPU(pow_out), out, a, b);
  });
  m.impl("pow.Tensor_Scalar", +[](const Tensor& a, const Scalar& b) { return functional(FOO_CPU(pow), a, b); });
  m.impl("pow_.Scalar", +[](Tensor& a, const Scalar& b) -> Tensor& { return inplace(FOO_CPU(pow_), a, b); });
  m.impl("pow.Tensor_Scalar_out", +[](const Tensor& a, const Scalar& b, Tensor& out) -> Tensor& {
    return outVariant(FOO_CPU(pow_out), out, a, b);
  });
  m.impl("pow.Scalar", +[](const Scalar& a, const Tensor& b) { return functional(FOO_CPU(pow), a, b); });
  m.impl("pow.Scalar_out", +[](const Scalar& a, const Tensor& b, Tensor& out) -> Tensor& {
    return outVariant(FOO_CPU(pow_out), out, a, b);
  });
}

}  // namespace torch_foo
