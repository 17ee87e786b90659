// One-line native kernels: run an ATen CPU kernel on the device memory of foo tensors (see foo/kernel_scope.h).
//
//   m.impl("add.Tensor", +[](const at::Tensor& a, const at::Tensor& b, const at::Scalar& alpha) {
//     return functional(FOO_CPU(add), a, b, alpha);
//   });
//
// functional/inplace/outVariant check that all foo tensors share one device (CPU 0-dim scalars allowed as inputs, not
// as outputs), make it current, alias every tensor argument (Tensor, optional Tensor, tensor lists), call the CPU
// kernel in stream order and turn its results into foo tensors without copying.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/string_view.h>  // the at::cpu dispatch headers use c10::string_view without including it

#include <tuple>
#include <vector>

#include "foo/kernel_scope.h"

// Calls at::cpu::NAME, resolving the overload at the call site.
#define FOO_CPU(name) [](auto&&... xs) -> decltype(auto) { return at::cpu::name(std::forward<decltype(xs)>(xs)...); }
// Calls at::native::NAME (for CPU kernels without an at::cpu entry point).
#define FOO_NATIVE(name) \
  [](auto&&... xs) -> decltype(auto) { return at::native::name(std::forward<decltype(xs)>(xs)...); }

namespace torch_foo {
namespace detail {

template <class T>
void addDevice(DeviceChecker&, const T&) {}
inline void addDevice(DeviceChecker& c, const at::Tensor& t) { c.add(t); }
inline void addDevice(DeviceChecker& c, const std::optional<at::Tensor>& t) {
  if (t) c.add(*t);
}
inline void addDevice(DeviceChecker& c, at::TensorList ts) {
  for (const at::Tensor& t : ts) c.add(t);
}

template <class... Args>
c10::DeviceIndex deviceOf(const Args&... args) {
  DeviceChecker checker;
  (addDevice(checker, args), ...);
  return checker.device() >= 0 ? checker.device() : currentDevice();
}

// Aliases as the CPU kernel takes them: a Tensor lent by the scope, optional Tensors and lists as new values.
template <class T>
const T& aliasOf(KernelScope&, const T& v) {
  return v;
}
inline c10::MaybeOwned<at::Tensor> aliasOf(KernelScope& s, const at::Tensor& t) { return s.alias(t); }
inline std::optional<at::Tensor> aliasOf(KernelScope& s, const std::optional<at::Tensor>& t) {
  return t ? std::optional<at::Tensor>(*s.alias(*t)) : std::nullopt;
}
inline std::vector<at::Tensor> aliasOf(KernelScope& s, at::TensorList ts) {
  std::vector<at::Tensor> aliases;
  aliases.reserve(ts.size());
  for (const at::Tensor& t : ts) aliases.push_back(*s.alias(t));
  return aliases;
}
template <class T>
const T& lent(const T& v) {
  return v;
}
inline const at::Tensor& lent(const c10::MaybeOwned<at::Tensor>& t) { return *t; }
// An alias as an in-place or out= argument: kernels change the TensorImpl behind it, never the handle lent.
inline at::Tensor& writable(const c10::MaybeOwned<at::Tensor>& t) { return const_cast<at::Tensor&>(*t); }

inline at::Tensor toDevice(KernelScope& s, at::Tensor&& t) { return s.toDevice(std::move(t)); }
inline std::vector<at::Tensor> toDevice(KernelScope& s, std::vector<at::Tensor>&& ts) {
  for (at::Tensor& t : ts) t = s.toDevice(std::move(t));
  return std::move(ts);
}
template <class... Ts>
std::tuple<Ts...> toDevice(KernelScope& s, std::tuple<Ts...>&& results) {
  return std::apply([&](auto&... r) { return std::tuple<Ts...>(toDevice(s, std::move(r))...); }, results);
}

}  // namespace detail

// Returns new foo tensor(s): the CPU kernel's results, which already live in device memory.
template <class Op, class... Args>
auto functional(Op cpu_op, const Args&... args) {
  KernelScope scope(detail::deviceOf(args...));
  return detail::toDevice(scope, cpu_op(detail::lent(detail::aliasOf(scope, args))...));
}

// In-place on self (cpu_op(self_alias, args...)); shape and storage of self cannot change.
template <class Op, class... Args>
at::Tensor& inplace(Op cpu_op, at::Tensor& self, const Args&... args) {
  const c10::DeviceIndex device = detail::deviceOf(self, args...);
  checkWrittenTensor(self, device);
  KernelScope scope(device);
  cpu_op(detail::writable(scope.alias(self)), detail::lent(detail::aliasOf(scope, args))...);
  return self;
}

// out= variant (cpu_op(out_alias, args...)); a resize of out by the kernel is written back to out.
template <class Op, class... Args>
at::Tensor& outVariant(Op cpu_op, at::Tensor& out, const Args&... args) {
  const c10::DeviceIndex device = detail::deviceOf(out, args...);
  checkWrittenTensor(out, device);
  KernelScope scope(device);
  c10::MaybeOwned<at::Tensor> out_alias = scope.alias(out);  // not const: the kernel writes through it
  cpu_op(detail::writable(out_alias), detail::lent(detail::aliasOf(scope, args))...);
  scope.commit(out, *out_alias);
  return out;
}

// out= variant with two outputs (values and indices, output and total_weight, ...).
template <class Op, class... Args>
std::tuple<at::Tensor&, at::Tensor&> outVariant2(Op cpu_op, at::Tensor& out1, at::Tensor& out2, const Args&... args) {
  const c10::DeviceIndex device = detail::deviceOf(out1, out2, args...);
  checkWrittenTensor(out1, device);
  checkWrittenTensor(out2, device);
  KernelScope scope(device);
  c10::MaybeOwned<at::Tensor> alias1 = scope.alias(out1), alias2 = scope.alias(out2);
  cpu_op(detail::writable(alias1), detail::writable(alias2), detail::lent(detail::aliasOf(scope, args))...);
  scope.commit(out1, *alias1);
  scope.commit(out2, *alias2);
  return {out1, out2};
}

}  // namespace torch_foo
