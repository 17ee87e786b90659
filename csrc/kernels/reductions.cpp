// Reductions: sum, mean, amax/amin, max/min (full and with dim), argmax/argmin, var/std.
#include "kernels/kernel_helpers.h"

#include <ATen/ops/amax_cpu_dispatch.h>
#include <ATen/ops/amin_cpu_dispatch.h>
#include <ATen/ops/argmax_cpu_dispatch.h>
#include <ATen/ops/argmin_cpu_dispatch.h>
#include <ATen/ops/max_cpu_dispatch.h>
#include <ATen/ops/mean_cpu_dispatch.h>
#include <ATen/ops/min_cpu_dispatch.h>
#include <ATen/ops/std_cpu_dispatch.h>
#include <ATen/ops/sum_cpu_dispatch.h>
#include <ATen/ops/var_cpu_dispatch.h>

#include "foo/registration.h"

namespace torch_foo {

using at::Tensor;
using Dims = at::OptionalIntArrayRef;
using DType = std::optional<at::ScalarType>;
using Correction = std::optional<at::Scalar>;

FOO_KERNELS(reduction, m) {
  m.impl("sum.dim_IntList", +[](const Tensor& a, Dims dim, bool keepdim, DType dtype) {
    return functional(FOO_CPU(sum), a, dim, keepdim, dtype);
  });
  m.impl("sum.IntList_out", +[](const Tensor& a, Dims dim, bool keepdim, DType dtype, Tensor& out) -> Tensor& {
    return outVariant(FOO_CPU(sum_out), out, a, dim, keepdim, dtype);
  });
  m.impl("mean.dim", +[](const Tensor& a, Dims dim, bool keepdim, DType dtype) {
    return functional(FOO_CPU(mean), a, dim, keepdim, dtype);
  });
  m.impl("mean.out", +[](const Tensor& a, Dims dim, bool keepdim, DType dtype, Tensor& out) -> Tensor& {
    return outVariant(FOO_CPU(mean_out), out, a, dim, keepdim, dtype);
  });
  m.impl("amax", +[](const Tensor& a, at::IntArrayRef dim, bool keepdim) {
    return functional(FOO_CPU(amax), a, dim, keepdim);
  });
  m.impl("amax.out", +[](const Tensor& a, at::IntArrayRef dim, bool keepdim, Tensor& out) -> Tensor& {
    return outVariant(FOO_CPU(amax_out), out, a, dim, keepdim);
  });
  m.impl("amin", +[](const Tensor& a, at::IntArrayRef dim, bool keepdim) {
    return functional(FOO_CPU(amin), a, dim, keepdim);
  });
  m.impl("amin.out", +[](const Tensor& a, at::IntArrayRef dim, bool keepdim, Tensor& out) -> Tensor& {
    return outVariant(FOO_CPU(amin_out), out, a, dim, keepdim);
  });
  m.impl("max", +[](const Tensor& a) { return functional(FOO_CPU(max), a); });
  m.impl("max.unary_out", +[](const Tensor& a, Tensor& out) -> Tensor& {
    return outVariant(FOO_CPU(max_out), out, a);
  });
  m.impl("max.dim", +[](const Tensor& a, int64_t dim, bool keepdim) {
    return functional(FOO_CPU(max), a, dim, keepdim);
  });
  m.impl("max.dim_max", +[](const Tensor& a, int64_t dim, bool keepdim, Tensor& values, Tensor& indices) {
    return outVariant2(FOO_CPU(max_out), values, indices, a, dim, keepdim);
  });
  m.impl("min", +[](const Tensor& a) { return functional(FOO_CPU(min), a); });
  m.impl("min.unary_out", +[](const Tensor& a, Tensor& out) -> Tensor& {
    return outVariant(FOO_CPU(min_out), out, a);
  });
  m.impl("min.dim", +[](const Tensor& a, int64_t dim, bool keepdim) {
    return functional(FOO_CPU(min), a, dim, keepdim);
  });
  m.impl("min.dim_min", +[](const Tensor& a, int64_t dim, bool keepdim, Tensor& values, Tensor& indices) {
    return outVariant2(FOO_CPU(min_out), values, indices, a, dim, keepdim);
  });
  m.impl("argmax", +[](const Tensor& a, std::optional<int64_t> dim, bool keepdim) {
    return functional(FOO_CPU(argmax), a, dim, keepdim);
  });
  m.impl("argmax.out", +[](const Tensor& a, std::optional<int64_t> dim, bool keepdim, Tensor& out) -> Tensor& {
    return outVariant(FOO_CPU(argmax_out), out, a, dim, keepdim);
  });
  m.impl("argmin", +[](const Tensor& a, std::optional<int64_t> dim, bool keepdim) {
    return functional(FOO_CPU(argmin), a, dim, keepdim);
  });
  m.impl("argmin.out", +[](const Tensor& a, std::optional<int64_t> dim, bool keepdim, Tensor& out) -> Tensor& {
    return outVariant(FOO_CPU(argmin_out), out, a, dim, keepdim);
  });
  m.impl("var.correction", +[](const Tensor& a, Dims dim, const Correction& correction, bool keepdim) {
    return functional(FOO_CPU(var), a, dim, correction, keepdim);
  });
  m.impl("var.correction_out",
         +[](const Tensor& a, Dims dim, const Correction& correction, bool keepdim, Tensor& out) -> Tensor& {
           return outVariant(FOO_CPU(var_out), out, a, dim, correction, keepdim);
         });
  m.impl("std.correction", +[](const Tensor& a, Dims dim, const Correction& correction, bool keepdim) {
    return functional(FOO_CPU(std), a, dim, correction, keepdim);
  });
  m.impl("std.correction_out",
         +[](const Tensor& a, Dims dim, const Correction& correction, bool keepdim, Tensor& out) -> Tensor& {
           return outVariant(FOO_CPU(std_out), out, a, dim, correction, keepdim);
         });
}

}  // namespace torch_foo
