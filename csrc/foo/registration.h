// Kernel registration through torch::Library objects this extension owns.
//
// Each kernel family registers its aten kernels for PrivateUse1 with FOO_KERNELS(family, m) { m.impl(...); }.
// The Library objects live in one registry (not in static TORCH_LIBRARY_IMPL blocks), so a family's kernels can be
// dropped (the Library destroyed, which deregisters them) and registered again in a running process.
#pragma once

#include <torch/library.h>

#include <string>
#include <vector>

namespace torch_foo {

using KernelRegistrar = void (*)(torch::Library&);

// Registers a family's kernels for dispatch key `key` now and remembers how to register them again; false (error kept
// for registrationErrors) if the dispatcher refused one of its kernels.
bool addKernelFamily(const char* family, c10::DispatchKey key, KernelRegistrar registrar, const char* file,
                     uint32_t line);
// Deregisters a family's kernels (their ops then go to the fallback); false if unknown or not registered.
bool dropKernelFamily(const std::string& family);
// Registers a dropped family again; false if unknown or already registered.
bool restoreKernelFamily(const std::string& family);
std::vector<std::string> kernelFamilies();
// Families that failed to register at load and kernels registered under names aten does not define; empty if none.
std::vector<std::string> registrationErrors();

}  // namespace torch_foo

#define FOO_KERNELS(family, m) FOO_KERNELS_FOR_KEY(family, PrivateUse1, m)

// A family registered for another dispatch key than PrivateUse1 (e.g. fallthroughs for the Conjugate key).
#define FOO_KERNELS_FOR_KEY(family, key, m)                                                                 \
  static void foo_register_##family(torch::Library& m);                                                     \
  static const bool foo_registered_##family = ::torch_foo::addKernelFamily(                                 \
      #family, c10::DispatchKey::key, &foo_register_##family, __FILE__, __LINE__);                          \
  static void foo_register_##family(torch::Library& m)
