// Boxed fallback: runs an op's CPU kernel on the foo tensors' device memory, in place.
//
// Unlike at::native::cpu_fallback, nothing is copied: arguments become CPU aliases of device memory (KernelScope),
// results the CPU kernel allocates are already device memory, and in-place/out= effects land in device memory
// directly. What a real device would guarantee still holds: all foo tensors on one device, results on that device,
// the op's RNG drawn from the foo generator, aliasing and out= resizing preserved.
#include "kernels/fallback.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>
#include <ATen/native/CPUFallback.h>
#include <torch/library.h>

#include "foo/fallback_report.h"
#include "foo/generator.h"
#include "foo/kernel_scope.h"
#include "foo/registration.h"

namespace torch_foo {
namespace {

bool isTensorOptionalList(const c10::TypePtr& type) {
  auto list = type->cast<c10::ListType>();
  return list && list->getElementType()->kind() == c10::TypeKind::OptionalType;
}

// The device the op runs on: that of its foo tensors, else the foo device named by a Device argument (factories).
c10::DeviceIndex findDevice(const c10::FunctionSchema& schema, c10::ArrayRef<c10::IValue> args) {
  DeviceChecker checker;
  c10::DeviceIndex named = -1;
  for (size_t i = 0; i < args.size(); ++i) {
    const c10::IValue& v = args[i];
    if (v.isTensor()) {
      // The _foreach_*.Tensor overloads take their per-tensor scalars as a 1-D CPU tensor, as on CUDA (the name is
      // compared only for CPU tensors: this runs on every fallback call).
      const at::Tensor& t = v.toTensor();
      if (t.is_cpu() && schema.arguments()[i].name() == "scalars") {
        checker.addAllowingCpu(t);
      } else {
        checker.add(t);
      }
    } else if (v.isTensorList()) {
      for (const at::Tensor& t : v.toTensorVector()) checker.add(t);
    } else if (v.isList() && isTensorOptionalList(schema.arguments()[i].type())) {
      // Index lists: accelerators accept CPU indices.
      for (const c10::IValue& e : v.toListRef()) {
        if (e.isTensor()) checker.addAllowingCpu(e.toTensor());
      }
    } else if (v.isDevice() && v.toDevice().type() == c10::DeviceType::PrivateUse1) {
      named = resolveIndex(v.toDevice());
    }
  }
  if (checker.device() >= 0) return checker.device();
  return named >= 0 ? named : currentDevice();
}

c10::IValue aliasList(KernelScope& scope, const c10::IValue& v) {
  if (v.isTensorList()) {
    c10::List<at::Tensor> aliases;
    for (const at::Tensor& t : v.toTensorVector()) aliases.push_back(*scope.alias(t));
    return aliases;
  }
  c10::List<std::optional<at::Tensor>> aliases;
  for (const c10::IValue& e : v.toListRef()) {
    aliases.push_back(e.isTensor() ? std::optional<at::Tensor>(*scope.alias(e.toTensor())) : std::nullopt);
  }
  return aliases;
}

}  // namespace

void runOnDevice(const c10::OperatorHandle& op, torch::jit::Stack* stack) {
  const c10::FunctionSchema& schema = op.schema();
  const size_t num_args = schema.arguments().size();
  const size_t first = stack->size() - num_args;
  const c10::DeviceIndex device = findDevice(schema, torch::jit::last(*stack, num_args));

  // The arguments replaced by their aliases on the stack: the scope borrows them, so they outlive it.
  c10::SmallVector<c10::IValue, 8> replaced;
  KernelScope scope(device);
  // (original foo tensor, its alias) for arguments the op writes to.
  c10::SmallVector<std::pair<at::Tensor, at::Tensor>, 2> written;
  for (size_t i = 0; i < num_args; ++i) {
    c10::IValue& v = (*stack)[first + i];
    const c10::Argument& arg = schema.arguments()[i];
    const bool writes = arg.alias_info() && arg.alias_info()->isWrite();
    if (v.isTensor()) {
      const at::Tensor& original = replaced.emplace_back(std::move(v)).toTensor();
      if (writes) checkWrittenTensor(original, device);
      v = *scope.alias(original);
      if (writes) written.emplace_back(original, v.toTensor());
    } else if (v.isTensorList() || (v.isList() && isTensorOptionalList(arg.type()))) {
      replaced.push_back(v);
      if (writes && v.isTensorList()) {
        auto originals = v.toTensorVector();
        for (const at::Tensor& t : originals) checkWrittenTensor(t, device);
        v = aliasList(scope, v);
        auto aliases = v.toTensorVector();
        for (size_t k = 0; k < originals.size(); ++k) written.emplace_back(originals[k], aliases[k]);
      } else {
        v = aliasList(scope, v);
      }
    } else if (v.isDevice() && v.toDevice().type() == c10::DeviceType::PrivateUse1) {
      v = c10::Device(c10::kCPU);
    } else if (arg.type()->kind() == c10::TypeKind::OptionalType &&
               arg.type()->castRaw<c10::OptionalType>()->getElementType()->kind() == c10::TypeKind::GeneratorType) {
      // Draw from the foo generator (the op's or the device default), whose engine is a CPU generator.
      const at::Generator& gen = v.isNone() ? defaultGenerator(device) : v.toGenerator();
      TORCH_CHECK(gen.device().type() == c10::DeviceType::PrivateUse1, "expected a foo generator, got one for ",
                  gen.device());
      v = static_cast<FooGeneratorImpl*>(gen.unsafeGetGeneratorImpl())->engine();
    }
  }

  try {
    op.redispatchBoxed(c10::DispatchKeySet(c10::DispatchKey::CPU), stack);
  } catch (const c10::NotImplementedError&) {
    // Asked only on failure: the lookup would cost every fallback call.
    TORCH_CHECK_NOT_IMPLEMENTED(op.hasComputedKernelForDispatchKey(c10::DispatchKey::CPU), "The operator '",
                                op.operator_name(),
                                "' is not implemented for foo: it has no foo kernel, and no CPU kernel for the CPU "
                                "fallback to run (PyTorch implements it only for other devices).");
    throw;
  }

  for (auto& [original, alias] : written) scope.commit(original, alias);
  const size_t num_returns = schema.returns().size();
  for (size_t i = stack->size() - num_returns; i < stack->size(); ++i) {
    c10::IValue& v = (*stack)[i];
    auto convert = [&](at::Tensor t) -> at::Tensor {
      for (auto& [original, alias] : written) {
        if (t.unsafeGetTensorImpl() == alias.unsafeGetTensorImpl()) return original;
      }
      return scope.toDevice(std::move(t));
    };
    if (v.isTensor()) {
      v = convert(std::move(v).toTensor());  // the stack lets go of the result: toDevice can reuse its TensorImpl
    } else if (v.isTensorList()) {
      c10::List<at::Tensor> converted;
      for (const at::Tensor& t : v.toTensorVector()) converted.push_back(convert(t));
      v = converted;
    }
  }
}

namespace {

// Operators from outside aten (custom ops, often Python kernels) run on host copies, as at::native::cpu_fallback
// does: their CPU kernels may keep their inputs or tensors they allocate past the call, and such tensors must be host
// memory, not aliases of device blocks that later hold other tensors. aten's kernels keep nothing.
void runOnHostCopies(const c10::OperatorHandle& op, torch::jit::Stack* stack) {
  const size_t num_args = op.schema().arguments().size();
  findDevice(op.schema(), torch::jit::last(*stack, num_args));  // the usual device checks
  // Host memory even when called from inside a kernel, whose thread allocates device memory.
  struct HostAllocations {
    const int previous_redirect = setCpuAllocationRedirect(-1);
    ~HostAllocations() { setCpuAllocationRedirect(previous_redirect); }
  } host_allocations;
  at::native::cpu_fallback(op, stack);
}

}  // namespace

void fooFallback(const c10::OperatorHandle& op, torch::jit::Stack* stack) {
  noteFallback(op.operator_name());
  if (op.operator_name().name.rfind("aten::", 0) == 0) {
    runOnDevice(op, stack);
  } else {
    runOnHostCopies(op, stack);
  }
}

FOO_FALLBACK(fallback, m) { m.fallback(torch::CppFunction::makeFromBoxedFunction<&fooFallback>()); }

namespace {
void refuseSparse(const c10::OperatorHandle& op, torch::jit::Stack*) {
  TORCH_CHECK_NOT_IMPLEMENTED(false, kSparseUnsupported, " (", op.operator_name(), ")");
}
}  // namespace
FOO_FALLBACK_FOR_KEY(sparse_refused, SparsePrivateUse1, m) {
  m.fallback(torch::CppFunction::makeFromBoxedFunction<&refuseSparse>());
}
FOO_FALLBACK_FOR_KEY(sparse_csr_refused, SparseCsrPrivateUse1, m) {
  m.fallback(torch::CppFunction::makeFromBoxedFunction<&refuseSparse>());
}

// Ops whose CompositeExplicitAutograd kernel does not suit foo, sent to the fallback (CPU's kernel on the aliases):
// - those with a fused CPU kernel too: for a device without its own kernel the dispatcher picks the decomposition
//   (e.g. layer_norm as batch_norm), which rounds differently from CPU in reduced precision;
// - those whose composite kernel calls a CPU-only DispatchStub on the tensors it is given (conj_physical_).
FOO_KERNELS(cpu_kernels, m) {
  // (addr_ too: CPU's addr_ refuses a self that is not 2-D by comparing the addresses of its self and out
  // arguments, which only an unboxed call to its composite kernel preserves.)
  for (const char* name : {"native_layer_norm", "native_group_norm", "addr", "addr_", "addr.out", "_stack",
                           "_stack.out", "any.dims", "any.dims_out", "all.dims", "all.dims_out", "linalg__powsum",
                           "conj_physical_"}) {
    const auto dot = std::string(name).find('.');
    const std::string base = std::string(name).substr(0, dot);
    const std::string overload = dot == std::string::npos ? "" : std::string(name).substr(dot + 1);
    // Older torch releases lack some of them; registering a kernel for a missing op would be an error.
    if (!c10::Dispatcher::singleton().findOp({"aten::" + base, overload})) continue;
    m.impl(name, torch::CppFunction::makeFromBoxedFunction<&fooFallback>());
  }
}

// Structured operators (a functional and an in-place variant built on one out= kernel) whose variants foo has no
// kernel for run whole through the fallback, on CPU's own kernel for the variant. Their composite wrapper would
// otherwise allocate the result with an at::empty dispatched to foo and then go through the fallback for the out=
// variant: two dispatches, a device guard and a resize check more, about a third of a small fallback op's cost.
FOO_KERNELS_AFTER_ALL(structured_through_fallback, m) {
  c10::Dispatcher& dispatcher = c10::Dispatcher::singleton();
  auto hasFooKernel = [&](const std::string& name, const std::string& overload, bool* exists) {
    const std::optional<c10::OperatorHandle> op = dispatcher.findOp({name, overload});
    if (op) *exists = true;
    return op && op->hasKernelForDispatchKey(c10::DispatchKey::PrivateUse1);
  };
  for (const c10::OperatorName& name : dispatcher.getAllOpNames()) {
    if (name.name.rfind("aten::", 0) != 0) continue;
    const std::optional<c10::OperatorHandle> op = dispatcher.findOp(name);
    if (!op || !op->hasKernelForDispatchKey(c10::DispatchKey::CompositeExplicitAutogradNonFunctional) ||
        !op->hasKernelForDispatchKey(c10::DispatchKey::CPU) ||
        op->hasKernelForDispatchKey(c10::DispatchKey::PrivateUse1)) {
      continue;
    }
    // The out= variant the wrapper calls ("add.out" for add.Tensor and add_.Tensor, "pow.Tensor_Scalar_out" for
    // pow.Tensor_Scalar): one with a foo kernel is faster through the wrapper.
    std::string base = name.name;
    if (base.back() == '_') base.pop_back();
    bool out_exists = false;
    if (hasFooKernel(base, "out", &out_exists) ||
        (!name.overload_name.empty() && hasFooKernel(base, name.overload_name + "_out", &out_exists)) || !out_exists) {
      continue;
    }
    const std::string schema_name = name.name.substr(6) + (name.overload_name.empty() ? "" : "." + name.overload_name);
    m.impl(schema_name.c_str(), torch::CppFunction::makeFromBoxedFunction<&fooFallback>());
  }
}

}  // namespace torch_foo
