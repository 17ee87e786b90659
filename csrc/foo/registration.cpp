#include "foo/registration.h"

#include <ATen/core/dispatch/Dispatcher.h>

#include <map>
#include <memory>
#include <mutex>

namespace torch_foo {
namespace {

struct Family {
  c10::DispatchKey key;
  KernelRegistrar registrar;
  const char* file;
  uint32_t line;
  std::unique_ptr<torch::Library> library;  // null while dropped
};

struct Registry {
  std::mutex mutex;
  std::map<std::string, Family> families;
  std::vector<std::string> errors;  // families that failed to register while the library loaded
};

Registry& registry() {
  static auto* instance = new Registry;  // leaked: kernels stay registered until the process ends
  return *instance;
}

// The message without the C++ backtrace c10::Error appends.
const char* messageOf(const std::exception& e) {
  const auto* error = dynamic_cast<const c10::Error*>(&e);
  return error != nullptr ? error->what_without_backtrace() : e.what();
}

// All or nothing: a kernel the dispatcher refuses (e.g. a signature that does not match the aten schema) leaves the
// whole family unregistered and throws.
void registerFamily(const std::string& name, Family& family) {
  family.library = std::make_unique<torch::Library>(torch::Library::IMPL, "aten", family.key,
                                                    family.file, family.line);
  try {
    family.registrar(*family.library);
  } catch (const std::exception& e) {
    family.library.reset();
    TORCH_CHECK(false, "foo kernel family '", name, "' (", family.file, ":", family.line,
                ") failed to register: ", messageOf(e));
  }
}

// Kernels registered under a name aten does not define (a misspelling) would otherwise be silently unused.
std::vector<std::string> misnamedKernels() {
  std::vector<std::string> errors;
  for (const c10::OperatorHandle& op : c10::Dispatcher::singleton().findDanglingImpls()) {
    if (!op.hasKernelForDispatchKey(c10::DispatchKey::PrivateUse1)) continue;
    errors.push_back("a foo kernel is registered for " + c10::toString(op.operator_name()) +
                     ", which is not an operator (misspelled name or overload?)");
  }
  return errors;
}

}  // namespace

bool addKernelFamily(const char* name, c10::DispatchKey key, KernelRegistrar registrar, const char* file,
                     uint32_t line) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  Family& family = r.families[name];
  family = Family{key, registrar, file, line, nullptr};
  // Runs while the shared library loads, where an exception would abort the process: keep the error for Python.
  try {
    registerFamily(name, family);
  } catch (const std::exception& e) {
    r.errors.emplace_back(messageOf(e));
    r.families.erase(name);
    return false;
  }
  return true;
}

bool dropKernelFamily(const std::string& name) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  auto it = r.families.find(name);
  if (it == r.families.end() || !it->second.library) return false;
  it->second.library.reset();
  return true;
}

bool restoreKernelFamily(const std::string& name) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  auto it = r.families.find(name);
  if (it == r.families.end() || it->second.library) return false;
  registerFamily(name, it->second);
  return true;
}

std::vector<std::string> kernelFamilies() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  std::vector<std::string> names;
  for (const auto& [name, family] : r.families) names.push_back(name + (family.library ? "" : " (dropped)"));
  return names;
}

std::vector<std::string> registrationErrors() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  std::vector<std::string> errors = r.errors;
  for (std::string& error : misnamedKernels()) errors.push_back(std::move(error));
  return errors;
}

TORCH_LIBRARY_FRAGMENT(foo, m) {
  m.def("kernel_families() -> str[]", &kernelFamilies);
  m.def("drop_kernels(str family) -> bool", [](const std::string& family) { return dropKernelFamily(family); });
  m.def("restore_kernels(str family) -> bool", [](const std::string& family) { return restoreKernelFamily(family); });
  m.def("registration_errors() -> str[]", &registrationErrors);
}

}  // namespace torch_foo
