// Registration of the reloadable kernels library (csrc/kernels) through torch::Library objects this backend owns.
//
// The kernels library declares families of registrations with the macros below; its static initialisers only
// record them (registering there could throw while the library loads, which aborts the process). Python then calls
// torch.ops.foo.install_kernels(path), which withdraws the families installed before (destroying a Library deregisters
// everything it registered) and registers the declared ones: all of them, or none and the previous ones again.
// That is what lets torch_foo.reload() swap in a rebuilt kernels library in a running process. Static
// TORCH_LIBRARY blocks cannot be withdrawn, so the kernels library must not use them.
#pragma once

#include <torch/library.h>

#include <optional>
#include <string>
#include <vector>

namespace torch_foo {

using KernelRegistrar = void (*)(torch::Library&);

struct FamilyDeclaration {
  const char* name;
  torch::Library::Kind kind;  // FRAGMENT: operator definitions; IMPL: kernels for `key`
  const char* ns;             // "aten", "foo", or "_" for a fallback
  std::optional<c10::DispatchKey> key;
  KernelRegistrar registrar;
  const char* file;
  uint32_t line;
  bool after_all_kernels = false;  // registers after every other family (it looks at what they registered)
};

// Records a family of the library that holds its registrar; runs in the kernels library's static initialisers.
bool declareKernelFamily(const FamilyDeclaration& declaration);
// Replaces the installed families by those the library (its file's path) declared; on any refusal (a kernel whose signature does not match its
// schema, a duplicate definition or fallback, a kernel for an operator that does not exist) reinstalls the previous
// families and throws, naming the family's file:line and the dispatcher's message. Returns the installed families.
std::vector<std::string> installKernels(const std::string& library);
// Deregisters a family's kernels (their ops then go to the fallback); false if unknown or not registered.
bool dropKernelFamily(const std::string& family);
// Registers a dropped family again; false if unknown or already registered.
bool restoreKernelFamily(const std::string& family);
std::vector<std::string> kernelFamilies();

}  // namespace torch_foo

#define FOO_REGISTER_FAMILY_ORDERED(family, kind, ns, key, after_all_kernels, m)                          \
  static void foo_register_##family(torch::Library& m);                                                 \
  static const bool foo_declared_##family = ::torch_foo::declareKernelFamily(                           \
      {#family, torch::Library::kind, #ns, key, &foo_register_##family, __FILE__, __LINE__, after_all_kernels}); \
  static void foo_register_##family(torch::Library& m)
#define FOO_REGISTER_FAMILY(family, kind, ns, key, m) FOO_REGISTER_FAMILY_ORDERED(family, kind, ns, key, false, m)

// Kernels for aten operators on foo: FOO_KERNELS(family, m) { m.impl("add.Tensor", ...); }
#define FOO_KERNELS(family, m) FOO_REGISTER_FAMILY(family, IMPL, aten, c10::DispatchKey::PrivateUse1, m)
// Kernels for aten operators on foo chosen by what the other families registered: registered after all of them.
#define FOO_KERNELS_AFTER_ALL(family, m) \
  FOO_REGISTER_FAMILY_ORDERED(family, IMPL, aten, c10::DispatchKey::PrivateUse1, true, m)
// Kernels for aten operators under another dispatch key (e.g. fallthroughs for Conjugate).
#define FOO_KERNELS_FOR_KEY(family, key, m) FOO_REGISTER_FAMILY(family, IMPL, aten, c10::DispatchKey::key, m)
// The boxed fallback for every operator without a foo kernel: FOO_FALLBACK(family, m) { m.fallback(...); }
#define FOO_FALLBACK(family, m) FOO_FALLBACK_FOR_KEY(family, PrivateUse1, m)
#define FOO_FALLBACK_FOR_KEY(family, key, m) FOO_REGISTER_FAMILY(family, IMPL, _, c10::DispatchKey::key, m)
// Definitions of custom operators in namespace ns: FOO_OPERATORS(family, foo, m) { m.def("myop(Tensor a) -> Tensor"); }
#define FOO_OPERATORS(family, ns, m) FOO_REGISTER_FAMILY(family, FRAGMENT, ns, std::nullopt, m)
// Kernels of custom operators for one dispatch key: FOO_OPERATOR_KERNELS(family, foo, CPU, m) { m.impl(...); }
#define FOO_OPERATOR_KERNELS(family, ns, key, m) \
  FOO_REGISTER_FAMILY(family, IMPL, ns, c10::DispatchKey::key, m)
