#include "foo/registration.h"

#include <ATen/core/dispatch/Dispatcher.h>

#include <dlfcn.h>
#include <limits.h>
#include <stdlib.h>

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <set>

namespace torch_foo {
namespace {

struct Family {
  FamilyDeclaration declaration;
  std::unique_ptr<torch::Library> library;  // null while dropped
};

struct Registry {
  std::mutex mutex;
  // By the file of the library that declared them. Kept after installation: a library loaded before stays loaded
  // (see installKernels), and loading it again runs no static initialiser, so reinstalling it needs them.
  std::map<std::string, std::vector<FamilyDeclaration>> declared;
  std::vector<Family> installed;  // in registration order: operator definitions first
};

Registry& registry() {
  static auto* instance = new Registry;  // leaked: kernels stay registered until the process ends
  return *instance;
}

// The message without the C++ backtrace c10::Error appends.
std::string messageOf(const std::exception& e) {
  const auto* error = dynamic_cast<const c10::Error*>(&e);
  return error != nullptr ? error->what_without_backtrace() : e.what();
}

std::string describe(const FamilyDeclaration& family) {
  return "foo kernel family '" + std::string(family.name) + "' (" + family.file + ":" +
         std::to_string(family.line) + ")";
}

// All or nothing: a registration the dispatcher refuses leaves the whole family unregistered and throws.
void registerFamily(Family& family) {
  const FamilyDeclaration& d = family.declaration;
  try {
    family.library = std::make_unique<torch::Library>(d.kind, d.ns, d.key, d.file, d.line);
    d.registrar(*family.library);
  } catch (const std::exception& e) {
    family.library.reset();
    TORCH_CHECK(false, describe(d), " failed to register: ", messageOf(e));
  }
}

// Operators that have kernels but no definition. A family that adds one registered a kernel under a name no operator
// has (a misspelling), which would otherwise be silently unused.
std::set<std::string> undefinedOperatorsWithKernels() {
  std::set<std::string> names;
  for (const c10::OperatorHandle& op : c10::Dispatcher::singleton().findDanglingImpls()) {
    names.insert(c10::toString(op.operator_name()));
  }
  return names;
}

// An operator with kernels but no definition that is not among `known`; empty if none.
std::string firstAddedUndefined(const std::set<std::string>& known) {
  for (const std::string& name : undefinedOperatorsWithKernels()) {
    if (known.count(name) == 0) return name;
  }
  return "";
}

// Newest registrations first, so kernels go before the definitions of their operators.
void withdraw(std::vector<Family>& families) {
  for (auto it = families.rbegin(); it != families.rend(); ++it) it->library.reset();
  families.clear();
}

// Registers the families in order, all or nothing. With `check_each`, a family that leaves an operator with kernels
// but no definition beyond `known` is refused by name.
std::vector<Family> registerFamilies(const std::vector<FamilyDeclaration>& declarations,
                                     const std::set<std::string>& known, bool check_each) {
  std::vector<Family> families;
  try {
    for (const FamilyDeclaration& declaration : declarations) {
      families.push_back(Family{declaration, nullptr});
      registerFamily(families.back());
      if (!check_each) continue;
      const std::string added = firstAddedUndefined(known);
      TORCH_CHECK(added.empty(), describe(declaration), " registers a kernel for ", added,
                  ", which is not an operator (misspelled name or overload?)");
    }
  } catch (...) {
    withdraw(families);
    throw;
  }
  return families;
}

std::vector<Family> registerAll(const std::vector<FamilyDeclaration>& declarations) {
  const std::set<std::string> known = undefinedOperatorsWithKernels();
  // One scan of the dispatcher's operators after all families (a scan after each was most of the import's
  // registration time); only when it finds a new kernel without an operator are the families registered again one at
  // a time, to name the family that added it.
  std::vector<Family> families = registerFamilies(declarations, known, /*check_each=*/false);
  if (firstAddedUndefined(known).empty()) return families;
  withdraw(families);
  return registerFamilies(declarations, known, /*check_each=*/true);
}

// Two families of one name (in two files) could not be told apart by drop/restore.
void checkUniqueNames(const std::vector<FamilyDeclaration>& declarations) {
  for (size_t i = 0; i < declarations.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      TORCH_CHECK(std::string(declarations[i].name) != declarations[j].name, "two foo kernel families are named '",
                  declarations[i].name, "': ", declarations[j].file, ":", declarations[j].line, " and ",
                  declarations[i].file, ":", declarations[i].line);
    }
  }
}

std::vector<std::string> names(const std::vector<Family>& families) {
  std::vector<std::string> result;
  for (const Family& family : families) {
    result.push_back(family.declaration.name + std::string(family.library ? "" : " (dropped)"));
  }
  return result;
}

std::string canonicalPath(const char* path) {
  char resolved[PATH_MAX];
  return realpath(path, resolved) != nullptr ? resolved : path;
}

// The file of the shared library that holds the registrar's code.
std::string libraryOf(KernelRegistrar registrar) {
  Dl_info info{};
  TORCH_CHECK(dladdr(reinterpret_cast<void*>(registrar), &info) != 0 && info.dli_fname != nullptr,
              "cannot tell which library a foo kernel family comes from");
  return canonicalPath(info.dli_fname);
}

}  // namespace

bool declareKernelFamily(const FamilyDeclaration& declaration) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  r.declared[libraryOf(declaration.registrar)].push_back(declaration);
  return true;
}

// The replaced library is not unloaded: the dispatcher keeps the C++ signature (a std::type_info in the library that
// first registered a kernel for an operator) after its kernels are withdrawn, and compares the next registration's
// signature with it.
std::vector<std::string> installKernels(const std::string& library) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  auto found = r.declared.find(canonicalPath(library.c_str()));
  TORCH_CHECK(found != r.declared.end() && !found->second.empty(), "the library ", library,
              " declared no foo kernel families: load it first");
  std::vector<FamilyDeclaration> incoming = found->second;
  checkUniqueNames(incoming);
  // Operator definitions first, then kernels, then the families that look at the kernels registered before them.
  std::stable_sort(incoming.begin(), incoming.end(), [](const FamilyDeclaration& a, const FamilyDeclaration& b) {
    auto order = [](const FamilyDeclaration& d) {
      return d.kind == torch::Library::FRAGMENT ? 0 : d.after_all_kernels ? 2 : 1;
    };
    return order(a) < order(b);
  });
  std::vector<FamilyDeclaration> previous;
  for (const Family& family : r.installed) previous.push_back(family.declaration);
  // Withdrawn first: a second fallback or definition for the same key or name is refused, not replaced.
  withdraw(r.installed);
  try {
    r.installed = registerAll(incoming);
  } catch (const std::exception& e) {
    std::string message = messageOf(e);
    try {
      r.installed = registerAll(previous);  // their library is still loaded, and they registered before
      if (!previous.empty()) message += "\nThe previously installed foo kernels stay in use.";
    } catch (const std::exception& again) {
      message += "\nThe previous foo kernels could not be reinstalled either: " + messageOf(again);
    }
    TORCH_CHECK(false, message);
  }
  return names(r.installed);
}

bool dropKernelFamily(const std::string& name) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  for (Family& family : r.installed) {
    if (family.declaration.name != name || !family.library) continue;
    family.library.reset();
    return true;
  }
  return false;
}

bool restoreKernelFamily(const std::string& name) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  for (Family& family : r.installed) {
    if (family.declaration.name != name || family.library) continue;
    registerFamily(family);
    return true;
  }
  return false;
}

std::vector<std::string> kernelFamilies() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  return names(r.installed);
}

TORCH_LIBRARY_FRAGMENT(foo, m) {
  m.def("install_kernels(str library) -> str[]", &installKernels);
  m.def("kernel_families() -> str[]", &kernelFamilies);
  m.def("drop_kernels(str family) -> bool", [](const std::string& family) { return dropKernelFamily(family); });
  m.def("restore_kernels(str family) -> bool", [](const std::string& family) { return restoreKernelFamily(family); });
}

}  // namespace torch_foo
