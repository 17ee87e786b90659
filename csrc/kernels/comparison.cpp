// Comparisons and selection: eq/ne/lt/le/gt/ge, clamp, where, maximum/minimum, index_select, gather, fill_, zero_.
#include "kernels/kernel_helpers.h"

#include <ATen/ops/clamp_cpu_dispatch.h>
#include <ATen/ops/clamp_max_cpu_dispatch.h>
#include <ATen/ops/clamp_min_cpu_dispatch.h>
#include <ATen/ops/eq_cpu_dispatch.h>
#include <ATen/ops/fill_cpu_dispatch.h>
#include <ATen/ops/gather_cpu_dispatch.h>
#include <ATen/ops/ge_cpu_dispatch.h>
#include <ATen/ops/gt_cpu_dispatch.h>
#include <ATen/ops/index_select_cpu_dispatch.h>
#include <ATen/ops/le_cpu_dispatch.h>
#include <ATen/ops/lt_cpu_dispatch.h>
#include <ATen/ops/maximum_cpu_dispatch.h>
#include <ATen/ops/minimum_cpu_dispatch.h>
#include <ATen/ops/ne_cpu_dispatch.h>
#include <ATen/ops/where_cpu_dispatch.h>
#include <ATen/ops/zero_cpu_dispatch.h>

#include "foo/registration.h"

namespace torch_foo {

using at::Scalar;
using at::Tensor;
using OptionalScalar = std::optional<Scalar>;
using OptionalTensor = std::optional<Tensor>;

// The Tensor and Scalar overloads of a comparison, each functional, in-place and out=.
#define FOO_COMPARISON(m, op)                                                                                 \
  m.impl(#op ".Tensor", +[](const Tensor& a, const Tensor& b) { return functional(FOO_CPU(op), a, b); });   \
  m.impl(#op "_.Tensor", +[](Tensor& a, const Tensor& b) -> Tensor& { return inplace(FOO_CPU(op##_), a, b); }); \
  m.impl(#op ".Tensor_out", +[](const Tensor& a, const Tensor& b, Tensor& out) -> Tensor& {                  \
    return outVariant(FOO_CPU(op##_out), out, a, b);                                                          \
  });                                                                                                         \
  m.impl(#op ".Scalar", +[](const Tensor& a, const Scalar& b) { return functional(FOO_CPU(op), a, b); });   \
  m.impl(#op "_.Scalar", +[](Tensor& a, const Scalar& b) -> Tensor& { return inplace(FOO_CPU(op##_), a, b); }); \
  m.impl(#op ".Scalar_out", +[](const Tensor& a, const Scalar& b, Tensor& out) -> Tensor& {                  \
    return outVariant(FOO_CPU(op##_out), out, a, b);                                                          \
  })

FOO_KERNELS(comparison, m) {
  FOO_COMPARISON(m, eq);
  FOO_COMPARISON(m, ne);
  FOO_COMPARISON(m, lt);
  FOO_COMPARISON(m, le);
  FOO_COMPARISON(m, gt);
  FOO_COMPARISON(m, ge);

  m.impl("clamp", +[](const Tensor& a, const OptionalScalar& lo, const OptionalScalar& hi) {
    return functional(FOO_CPU(clamp), a, lo, hi);
  });
  m.impl("clamp_", +[](Tensor& a, const OptionalScalar& lo, const OptionalScalar& hi) -> Tensor& {
    return inplace(FOO_CPU(clamp_), a, lo, hi);
  });
  m.impl("clamp.out", +[](const Tensor& a, const OptionalScalar& lo, const OptionalScalar& hi, Tensor& out) -> Tensor& {
    return outVariant(FOO_CPU(clamp_out), out, a, lo, hi);
  });
  m.impl("clamp.Tensor", +[](const Tensor& a, const OptionalTensor& lo, const OptionalTensor& hi) {
    return functional(FOO_CPU(clamp), a, lo, hi);
  });
  m.impl("clamp_.Tensor", +[](Tensor& a, const OptionalTensor& lo, const OptionalTensor& hi) -> Tensor& {
    return inplace(FOO_CPU(clamp_), a, lo, hi);
  });
  m.impl("clamp.Tensor_out",
         +[](const Tensor& a, const OptionalTensor& lo, const OptionalTensor& hi, Tensor& out) -> Tensor& {
           return outVariant(FOO_CPU(clamp_out), out, a, lo, hi);
         });
  m.impl("clamp_min", +[](const Tensor& a, const Scalar& lo) { return functional(FOO_CPU(clamp_min), a, lo); });
  m.impl("clamp_min_", +[](Tensor& a, const Scalar& lo) -> Tensor& { return inplace(FOO_CPU(clamp_min_), a, lo); });
  m.impl("clamp_min.out", +[](const Tensor& a, const Scalar& lo, Tensor& out) -> Tensor& {
    return outVariant(FOO_CPU(clamp_min_out), out, a, lo);
  });
  m.impl("clamp_max", +[](const Tensor& a, const Scalar& hi) { return functional(FOO_CPU(clamp_max), a, hi); });
  m.impl("clamp_max_", +[](Tensor& a, const Scalar& hi) -> Tensor& { return inplace(FOO_CPU(clamp_max_), a, hi); });
  m.impl("clamp_max.out", +[](const Tensor& a, const Scalar& hi, Tensor& out) -> Tensor& {
    return outVariant(FOO_CPU(clamp_max_out), out, a, hi);
  });

  m.impl("where.self", +[](const Tensor& cond, const Tensor& a, const Tensor& b) {
    return functional(FOO_CPU(where), cond, a, b);
  });
  m.impl("where.self_out", +[](const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) -> Tensor& {
    return outVariant(FOO_CPU(where_out), out, cond, a, b);
  });
  m.impl("maximum", +[](const Tensor& a, const Tensor& b) { return functional(FOO_CPU(maximum), a, b); });
  m.impl("maximum.out", +[](const Tensor& a, const Tensor& b, Tensor& out) -> Tensor& {
    return outVariant(FOO_CPU(maximum_out), out, a, b);
  });
  m.impl("minimum", +[](const Tensor& a, const Tensor& b) { return functional(FOO_CPU(minimum), a, b); });
  m.impl("minimum.out", +[](const Tensor& a, const Tensor& b, Tensor& out) -> Tensor& {
    return outVariant(FOO_CPU(minimum_out), out, a, b);
  });
  // (Embedding lookups and samplers call these on small index tensors, where the fallback's boxing would show.)
  m.impl("index_select", +[](const Tensor& a, int64_t dim, const Tensor& index) {
    return functional(FOO_CPU(index_select), a, dim, index);
  });
  m.impl("index_select.out", +[](const Tensor& a, int64_t dim, const Tensor& index, Tensor& out) -> Tensor& {
    return outVariant(FOO_CPU(index_select_out), out, a, dim, index);
  });
  m.impl("gather", +[](const Tensor& a, int64_t dim, const Tensor& index, bool sparse_grad) {
    return functional(FOO_CPU(gather), a, dim, index, sparse_grad);
  });
  m.impl("gather.out", +[](const Tensor& a, int64_t dim, const Tensor& index, bool sparse_grad, Tensor& out) -> Tensor& {
    return outVariant(FOO_CPU(gather_out), out, a, dim, index, sparse_grad);
  });

  m.impl("fill_.Scalar", +[](Tensor& a, const Scalar& value) -> Tensor& { return inplace(FOO_CPU(fill_), a, value); });
  m.impl("fill_.Tensor", +[](Tensor& a, const Tensor& value) -> Tensor& { return inplace(FOO_CPU(fill_), a, value); });
  m.impl("zero_", +[](Tensor& a) -> Tensor& { return inplace(FOO_CPU(zero_), a); });
}

}  // namespace torch_foo
