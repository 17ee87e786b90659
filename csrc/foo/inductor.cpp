// Launching Inductor's generated C++ kernels on foo: torch.ops.foo._enter_kernel_scope / _exit_kernel_scope.
//
// The generated kernels are CPU code that dereferences the raw pointers of their tensor arguments. A foo tensor's
// pointer is a device address the host cannot touch, so the wrapper (torch_foo/_inductor.py) enters the device's
// kernel scope (device current, stream work drained, CPU allocations routed to the device), hands the kernel CPU
// aliases over the runtime's host view of the same memory, and leaves the scope when the kernel returns: the kernel
// touches device memory exactly as a native kernel does, and host code outside it still faults.
#include <ATen/core/Tensor.h>
#include <torch/library.h>

#include <memory>
#include <vector>

#include "foo/kernel_scope.h"

namespace torch_foo {
namespace {

// A scope entered from Python, holding the tensors it aliases: a scope borrows them, and Python may drop them first.
struct PythonScope {
  PythonScope(c10::DeviceIndex device, const std::vector<at::Tensor>& tensors) : tensors(tensors), scope(device) {}
  std::vector<at::Tensor> tensors;
  KernelScope scope;
};

// Scopes entered from Python and not yet left, innermost last (a kernel can run another compiled graph).
thread_local std::vector<std::unique_ptr<PythonScope>> t_python_scopes;

std::vector<at::Tensor> enterKernelScope(int64_t device, const std::vector<at::Tensor>& tensors,
                                         const std::string& kernel_name) {
  checkDeviceIndex(device);
  DeviceChecker checker;
  for (const at::Tensor& t : tensors) checker.addAllowingCpu(t);
  TORCH_CHECK(checker.device() < 0 || checker.device() == device, "foo kernel launched on foo:", device,
              " with tensors on foo:", static_cast<int>(checker.device()));
  auto& entered = *t_python_scopes.emplace_back(
      std::make_unique<PythonScope>(static_cast<c10::DeviceIndex>(device), tensors));
  KernelScope& scope = entered.scope;
  if (tracingKernels()) scope.setTraceName(kernel_name);
  std::vector<at::Tensor> views;
  views.reserve(tensors.size());
  for (const at::Tensor& t : entered.tensors) views.push_back(*scope.alias(t));
  return views;
}

void exitKernelScope() {
  TORCH_CHECK(!t_python_scopes.empty(), "foo::_exit_kernel_scope without a matching _enter_kernel_scope");
  t_python_scopes.pop_back();
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(foo, m) {
  m.def("_enter_kernel_scope(int device, Tensor[] tensors, str kernel_name) -> Tensor[]", &enterKernelScope);
  m.def("_exit_kernel_scope() -> ()", &exitKernelScope);
}

}  // namespace torch_foo
