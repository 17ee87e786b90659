// The custom operator family torch.ops.foo.mymuladd / mymul / myadd_out, with kernels for CPU and foo.
//
// The same element loop serves both devices: on foo it runs inside a KernelScope over aliases of device memory.
// Autograd and fake (meta) kernels are registered from Python (torch_foo/ops.py).
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include "foo/kernel_scope.h"
#include "foo/registration.h"

namespace torch_foo {
namespace {

// Elements per parallel chunk (ATen's own grain size for cheap elementwise loops).
constexpr int64_t kGrainSize = 32768;

void checkOperands(const char* op, const at::Tensor& a, const at::Tensor& b) {
  TORCH_CHECK(a.sizes() == b.sizes(), op, ": a and b must have the same shape, got ", a.sizes(), " and ", b.sizes());
  TORCH_CHECK(a.scalar_type() == b.scalar_type(), op, ": a and b must have the same dtype, got ", a.scalar_type(),
              " and ", b.scalar_type());
  TORCH_CHECK(at::isFloatingType(a.scalar_type()), op, ": expected floating point tensors, got ", a.scalar_type());
  TORCH_CHECK(a.device() == b.device(), op, ": a and b must be on the same device, got ", a.device(), " and ",
              b.device());
}

// out[i] = a[i] * b[i] + c over contiguous CPU-accessible tensors, in parallel chunks.
void mulAddLoop(const at::Tensor& a, const at::Tensor& b, double c, bool add_c, const at::Tensor& out) {
  const at::Tensor ac = a.contiguous(), bc = b.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, a.scalar_type(), "mymuladd", [&] {
    const scalar_t* pa = ac.const_data_ptr<scalar_t>();
    const scalar_t* pb = bc.const_data_ptr<scalar_t>();
    scalar_t* po = out.mutable_data_ptr<scalar_t>();
    const auto addend = static_cast<scalar_t>(add_c ? c : 0.0);
    at::parallel_for(0, ac.numel(), kGrainSize, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) po[i] = pa[i] * pb[i] + addend;
    });
  });
}

void addLoop(const at::Tensor& a, const at::Tensor& b, const at::Tensor& out) {
  const at::Tensor ac = a.contiguous(), bc = b.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, a.scalar_type(), "myadd_out", [&] {
    const scalar_t* pa = ac.const_data_ptr<scalar_t>();
    const scalar_t* pb = bc.const_data_ptr<scalar_t>();
    scalar_t* po = out.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, ac.numel(), kGrainSize, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) po[i] = pa[i] + pb[i];
    });
  });
}

void checkOut(const at::Tensor& a, const at::Tensor& out) {
  TORCH_CHECK(out.sizes() == a.sizes() && out.scalar_type() == a.scalar_type() && out.device() == a.device(),
              "myadd_out: out must match a in shape, dtype and device, got ", out.sizes(), " ", out.scalar_type(),
              " on ", out.device(), " for a ", a.sizes(), " ", a.scalar_type(), " on ", a.device());
  TORCH_CHECK(out.is_contiguous(), "myadd_out: out must be contiguous");
}

at::Tensor mymuladdCpu(const at::Tensor& a, const at::Tensor& b, double c) {
  checkOperands("mymuladd", a, b);
  at::Tensor out = at::empty(a.sizes(), a.options());
  mulAddLoop(a, b, c, true, out);
  return out;
}

at::Tensor mymulCpu(const at::Tensor& a, const at::Tensor& b) {
  checkOperands("mymul", a, b);
  at::Tensor out = at::empty(a.sizes(), a.options());
  mulAddLoop(a, b, 0.0, false, out);
  return out;
}

void myaddOutCpu(const at::Tensor& a, const at::Tensor& b, at::Tensor& out) {
  checkOperands("myadd_out", a, b);
  checkOut(a, out);
  addLoop(a, b, out);
}

at::Tensor mymuladdFoo(const at::Tensor& a, const at::Tensor& b, double c) {
  checkOperands("mymuladd", a, b);
  KernelScope scope(a.device().index());
  return scope.toDevice(mymuladdCpu(*scope.alias(a), *scope.alias(b), c));
}

at::Tensor mymulFoo(const at::Tensor& a, const at::Tensor& b) {
  checkOperands("mymul", a, b);
  KernelScope scope(a.device().index());
  return scope.toDevice(mymulCpu(*scope.alias(a), *scope.alias(b)));
}

void myaddOutFoo(const at::Tensor& a, const at::Tensor& b, at::Tensor& out) {
  checkOperands("myadd_out", a, b);
  checkOut(a, out);
  KernelScope scope(a.device().index());
  addLoop(*scope.alias(a), *scope.alias(b), *scope.alias(out));
}

}  // namespace

FOO_OPERATORS(custom_ops, foo, m) {
  m.def("mymuladd(Tensor a, Tensor b, float c) -> Tensor");
  m.def("mymul(Tensor a, Tensor b) -> Tensor");
  m.def("myadd_out(Tensor a, Tensor b, Tensor(a!) out) -> ()");
}

FOO_OPERATOR_KERNELS(custom_ops_cpu, foo, CPU, m) {
  m.impl("mymuladd", &mymuladdCpu);
  m.impl("mymul", &mymulCpu);
  m.impl("myadd_out", &myaddOutCpu);
}

FOO_OPERATOR_KERNELS(custom_ops_foo, foo, PrivateUse1, m) {
  m.impl("mymuladd", &mymuladdFoo);
  m.impl("mymul", &mymulFoo);
  m.impl("myadd_out", &myaddOutFoo);
}

}  // namespace torch_foo
