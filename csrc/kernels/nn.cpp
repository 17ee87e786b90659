// Neural-network ops for training: softmax/log_softmax and their backward, activation backward, nll_loss.
#include "kernels/kernel_helpers.h"

#include <ATen/ops/_log_softmax_backward_data_cpu_dispatch.h>
#include <ATen/ops/_log_softmax_cpu_dispatch.h>
#include <ATen/ops/_softmax_backward_data_cpu_dispatch.h>
#include <ATen/ops/_softmax_cpu_dispatch.h>
#include <ATen/ops/gelu_backward_cpu_dispatch.h>
#include <ATen/ops/nll_loss_backward_cpu_dispatch.h>
#include <ATen/ops/nll_loss_forward_cpu_dispatch.h>
#include <ATen/ops/sigmoid_backward_cpu_dispatch.h>
#include <ATen/ops/silu_backward_cpu_dispatch.h>
#include <ATen/ops/tanh_backward_cpu_dispatch.h>
#include <ATen/ops/threshold_backward_cpu_dispatch.h>

#include "foo/registration.h"

namespace torch_foo {

using at::Scalar;
using at::Tensor;
using OptionalTensor = std::optional<Tensor>;

FOO_KERNELS(nn, m) {
  m.impl("_softmax", +[](const Tensor& a, int64_t dim, bool half_to_float) {
    return functional(FOO_CPU(_softmax), a, dim, half_to_float);
  });
  m.impl("_softmax.out", +[](const Tensor& a, int64_t dim, bool half_to_float, Tensor& out) -> Tensor& {
    return outVariant(FOO_CPU(_softmax_out), out, a, dim, half_to_float);
  });
  m.impl("_log_softmax", +[](const Tensor& a, int64_t dim, bool half_to_float) {
    return functional(FOO_CPU(_log_softmax), a, dim, half_to_float);
  });
  m.impl("_log_softmax.out", +[](const Tensor& a, int64_t dim, bool half_to_float, Tensor& out) -> Tensor& {
    return outVariant(FOO_CPU(_log_softmax_out), out, a, dim, half_to_float);
  });
  m.impl("_softmax_backward_data",
         +[](const Tensor& grad, const Tensor& output, int64_t dim, at::ScalarType input_dtype) {
           return functional(FOO_CPU(_softmax_backward_data), grad, output, dim, input_dtype);
         });
  m.impl("_log_softmax_backward_data",
         +[](const Tensor& grad, const Tensor& output, int64_t dim, at::ScalarType input_dtype) {
           return functional(FOO_CPU(_log_softmax_backward_data), grad, output, dim, input_dtype);
         });
  m.impl("threshold_backward", +[](const Tensor& grad, const Tensor& self, const Scalar& threshold) {
    return functional(FOO_CPU(threshold_backward), grad, self, threshold);
  });
  m.impl("gelu_backward", +[](const Tensor& grad, const Tensor& self, c10::string_view approximate) {
    return functional(FOO_CPU(gelu_backward), grad, self, approximate);
  });
  m.impl("silu_backward", +[](const Tensor& grad, const Tensor& self) {
    return functional(FOO_CPU(silu_backward), grad, self);
  });
  m.impl("sigmoid_backward", +[](const Tensor& grad, const Tensor& output) {
    return functional(FOO_CPU(sigmoid_backward), grad, output);
  });
  m.impl("tanh_backward", +[](const Tensor& grad, const Tensor& output) {
    return functional(FOO_CPU(tanh_backward), grad, output);
  });
  m.impl("nll_loss_forward", +[](const Tensor& self, const Tensor& target, const OptionalTensor& weight,
                                 int64_t reduction, int64_t ignore_index) {
    return functional(FOO_CPU(nll_loss_forward), self, target, weight, reduction, ignore_index);
  });
  m.impl("nll_loss_forward.output", +[](const Tensor& self, const Tensor& target, const OptionalTensor& weight,
                                        int64_t reduction, int64_t ignore_index, Tensor& output, Tensor& total_weight) {
    return outVariant2(FOO_CPU(nll_loss_forward_out), output, total_weight, self, target, weight, reduction,
                       ignore_index);
  });
  m.impl("nll_loss_backward", +[](const Tensor& grad, const Tensor& self, const Tensor& target,
                                  const OptionalTensor& weight, int64_t reduction, int64_t ignore_index,
                                  const Tensor& total_weight) {
    return functional(FOO_CPU(nll_loss_backward), grad, self, target, weight, reduction, ignore_index, total_weight);
  });
}

}  // namespace torch_foo
