#include "foo/registration.h"

#include <map>
#include <memory>
#include <mutex>

namespace torch_foo {
namespace {

struct Family {
  KernelRegistrar registrar;
  const char* file;
  uint32_t line;
  std::unique_ptr<torch::Library> library;  // null while dropped
};

struct Registry {
  std::mutex mutex;
  std::map<std::string, Family> families;
};

Registry& registry() {
  static auto* instance = new Registry;  // leaked: kernels stay registered until the process ends
  return *instance;
}

void registerFamily(Family& family) {
  family.library = std::make_unique<torch::Library>(torch::Library::IMPL, "aten", c10::DispatchKey::PrivateUse1,
                                                    family.file, family.line);
  family.registrar(*family.library);
}

}  // namespace

bool addKernelFamily(const char* name, KernelRegistrar registrar, const char* file, uint32_t line) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  Family& family = r.families[name];
  family = Family{registrar, file, line, nullptr};
  registerFamily(family);
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
  registerFamily(it->second);
  return true;
}

std::vector<std::string> kernelFamilies() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  std::vector<std::string> names;
  for (const auto& [name, family] : r.families) names.push_back(name + (family.library ? "" : " (dropped)"));
  return names;
}

}  // namespace torch_foo
