// F.scaled_dot_product_attention on foo picks the kernel CPU picks for the same shapes (CPU's fused flash kernel where
// it applies, else the math composite), in eager mode and under torch.compile's fake tensors alike. ATen asks a
// DispatchStub keyed by device type, whose PrivateUse1 entry is empty unless the backend fills it: foo always got
// the math composite, and compiled graphs had several kernels where CPU's have one. The choice reads shapes, dtypes
// and the torch.backends flags, never data.
#include <ATen/native/transformers/attention.h>
#include <ATen/ops/_fused_sdp_choice_native.h>

namespace torch_foo {
namespace {

int64_t cpuAttentionChoice(const at::Tensor& query, const at::Tensor& key, const at::Tensor& value,
                           const std::optional<at::Tensor>& attn_mask, double dropout_p, bool is_causal,
                           std::optional<double> scale, bool enable_gqa) {
  return at::native::_fused_sdp_choice_cpp(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa);
}

}  // namespace
}  // namespace torch_foo

namespace at::native {
REGISTER_PRIVATEUSE1_DISPATCH(_fused_sdp_choice_stub, &torch_foo::cpuAttentionChoice)
}
