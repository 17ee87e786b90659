// Backend metadata of foo tensors (c10::BackendMeta): the entries torch._utils.set_tensor_metadata gives a foo
// tensor beyond the conj/neg bits, kept on the tensor and carried by torch.save/torch.load through PyTorch's
// PrivateUse1 serialization hooks, and by shallow copies (detach, .data) through BackendMeta::clone. copy.deepcopy
// has no hook: torch_foo/_backend_meta.py covers it.
#include <ATen/core/Tensor.h>
#include <c10/core/TensorImpl.h>
#include <torch/csrc/jit/serialization/pickler_helper.h>
#include <torch/library.h>

#include <map>

#include "foo/common.h"

namespace torch_foo {
namespace {

struct FooTensorMeta final : public c10::BackendMeta {
  explicit FooTensorMeta(std::map<std::string, bool> entries) : entries(std::move(entries)) {}

  // A copy, not a shared object: setting metadata on a detached tensor must not change the original's.
  c10::intrusive_ptr<c10::BackendMeta> clone(const c10::intrusive_ptr<c10::BackendMeta>& /*ptr*/) const override {
    return c10::make_intrusive<FooTensorMeta>(entries);
  }

  std::map<std::string, bool> entries;
};

FooTensorMeta* metaOf(const at::Tensor& tensor) {
  return dynamic_cast<FooTensorMeta*>(tensor.unsafeGetTensorImpl()->get_backend_meta());
}

void writeMetadata(const at::Tensor& tensor, std::unordered_map<std::string, bool>& metadata) {
  if (const FooTensorMeta* meta = metaOf(tensor)) metadata.insert(meta->entries.begin(), meta->entries.end());
}

// Entries are added to those the tensor has, as set_tensor_metadata only ever sets the conj/neg bits.
void readMetadata(const at::Tensor& tensor, std::unordered_map<std::string, bool>& metadata) {
  if (metadata.empty()) return;
  std::map<std::string, bool> entries(metadata.begin(), metadata.end());
  if (const FooTensorMeta* meta = metaOf(tensor)) entries.insert(meta->entries.begin(), meta->entries.end());
  tensor.unsafeGetTensorImpl()->set_backend_meta(c10::make_intrusive<FooTensorMeta>(std::move(entries)));
}

// Why registration failed while the library loaded (throwing there would abort the process); empty if it did not.
std::string g_registration_error;

// Also for Meta: a fake foo tensor is a meta tensor that reports device foo, except while torch.load rebuilds it
// under FakeTensorMode, when it sets the metadata before giving the tensor its fake device.
const bool g_registered = [] {
  try {
    for (c10::DeviceType type : {kFoo, c10::DeviceType::Meta}) {
      // A library loaded again in the same process (a rebuild) finds its predecessor's functions there: keep them.
      if (torch::jit::GetBackendMetaSerialization()[static_cast<size_t>(type)].has_value()) continue;
      torch::jit::GetBackendMetaAllowlist().insert(type);
      torch::jit::TensorBackendMetaRegistry(type, &writeMetadata, &readMetadata);
    }
  } catch (const std::exception& error) {
    g_registration_error = error.what();
  }
  return true;
}();

}  // namespace

TORCH_LIBRARY_FRAGMENT(foo, m) {
  m.def("backend_meta_registration_error() -> str", [] { return g_registration_error; });
}

}  // namespace torch_foo
