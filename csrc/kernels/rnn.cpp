// Recurrent cells: the fused LSTM and GRU cell kernels (and their backward) that nn.LSTM, nn.GRU and the cells call
// on an accelerator. CPU has no kernels for them (it runs the unfused cell), so the formulas of PyTorch's CUDA kernels
// are written here as ATen ops on the device memory, in one kernel scope each.
#include <ATen/ops/cat.h>
#include <ATen/ops/zeros_like.h>

#include "foo/registration.h"
#include "kernels/kernel_helpers.h"

namespace torch_foo {
namespace {

using at::Tensor;
using OptionalTensor = std::optional<Tensor>;

bool defined(const OptionalTensor& t) { return t.has_value() && t->defined(); }

// The arithmetic of the formulas below. ATen/TensorOperators.h has these operators too, but includes every
// operator's header: about 5 s more to compile this file.
Tensor operator+(const Tensor& a, const Tensor& b) { return a.add(b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return a.sub(b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return a.mul(b); }
Tensor operator-(const at::Scalar& a, const Tensor& b) { return b.neg().add(a); }

Tensor gatePreactivations(const Tensor& input_gates, const Tensor& hidden_gates, const OptionalTensor& input_bias,
                          const OptionalTensor& hidden_bias) {
  TORCH_CHECK(defined(input_bias) == defined(hidden_bias), "the fused RNN cells take both biases or neither");
  Tensor gates = input_gates + hidden_gates;
  return defined(input_bias) ? gates + *input_bias + *hidden_bias : gates;
}

// sigmoid'(x) and tanh'(x) from the activation's output y.
Tensor sigmoidGrad(const Tensor& grad, const Tensor& y) { return grad * (1 - y) * y; }
Tensor tanhGrad(const Tensor& grad, const Tensor& y) { return grad * (1 - y * y); }

// (hy, cy, workspace); the workspace keeps the activated gates i, f, g, o for the backward.
std::tuple<Tensor, Tensor, Tensor> lstmCell(const Tensor& input_gates, const Tensor& hidden_gates, const Tensor& cx,
                                            const OptionalTensor& input_bias, const OptionalTensor& hidden_bias) {
  auto cell = [](const Tensor& ig, const Tensor& hg, const Tensor& c, const OptionalTensor& ib,
                 const OptionalTensor& hb) {
    const std::vector<Tensor> gates = gatePreactivations(ig, hg, ib, hb).chunk(4, 1);
    const Tensor i = gates[0].sigmoid(), f = gates[1].sigmoid(), g = gates[2].tanh(), o = gates[3].sigmoid();
    Tensor cy = f * c + i * g;
    Tensor hy = o * cy.tanh();
    return std::make_tuple(hy, cy, at::cat({i, f, g, o}, 1));
  };
  return functional(cell, input_gates, hidden_gates, cx, input_bias, hidden_bias);
}

// (grad_gates, grad_cx, grad_bias); grad_bias is undefined without biases.
std::tuple<Tensor, Tensor, Tensor> lstmCellBackward(const OptionalTensor& grad_hy, const OptionalTensor& grad_cy,
                                                    const Tensor& cx, const Tensor& cy, const Tensor& workspace,
                                                    bool has_bias) {
  if (!defined(grad_hy) && !defined(grad_cy)) return {};
  auto backward = [has_bias](const OptionalTensor& ghy, const OptionalTensor& gcy, const Tensor& c,
                             const Tensor& c_out, const Tensor& ws) {
    const std::vector<Tensor> gates = ws.chunk(4, 1);
    const Tensor &i = gates[0], &f = gates[1], &g = gates[2], &o = gates[3];
    const Tensor tanh_cy = c_out.tanh();
    const Tensor go = defined(ghy) ? *ghy : at::zeros_like(c_out);
    Tensor gc = tanhGrad(go * o, tanh_cy);
    if (defined(gcy)) gc = gc + *gcy;
    Tensor grad_gates = at::cat({sigmoidGrad(gc * g, i), sigmoidGrad(gc * c, f), tanhGrad(gc * i, g),
                                 sigmoidGrad(go * tanh_cy, o)},
                                1);
    Tensor grad_bias = has_bias ? grad_gates.sum(0) : Tensor();
    return std::make_tuple(grad_gates, gc * f, grad_bias);
  };
  return functional(backward, grad_hy, grad_cy, cx, cy, workspace);
}

// (hy, workspace); the workspace keeps r, z, n, hx and the hidden part of n for the backward.
std::tuple<Tensor, Tensor> gruCell(const Tensor& input_gates, const Tensor& hidden_gates, const Tensor& hx,
                                   const OptionalTensor& input_bias, const OptionalTensor& hidden_bias) {
  auto cell = [](const Tensor& ig, const Tensor& hg, const Tensor& h, const OptionalTensor& ib,
                 const OptionalTensor& hb) {
    TORCH_CHECK(defined(ib) == defined(hb), "the fused RNN cells take both biases or neither");
    const std::vector<Tensor> in = (defined(ib) ? ig + *ib : ig).chunk(3, 1);
    const std::vector<Tensor> hid = (defined(hb) ? hg + *hb : hg).chunk(3, 1);
    const Tensor r = (in[0] + hid[0]).sigmoid(), z = (in[1] + hid[1]).sigmoid();
    const Tensor n = (in[2] + r * hid[2]).tanh();
    Tensor hy = n + z * (h - n);
    return std::make_tuple(hy, at::cat({r, z, n, h, hid[2]}, 1));
  };
  return functional(cell, input_gates, hidden_gates, hx, input_bias, hidden_bias);
}

// (grad_input_gates, grad_hidden_gates, grad_hx, grad_input_bias, grad_hidden_bias).
std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> gruCellBackward(const Tensor& grad_hy, const Tensor& workspace,
                                                                   bool has_bias) {
  auto backward = [has_bias](const Tensor& go, const Tensor& ws) {
    const std::vector<Tensor> parts = ws.chunk(5, 1);
    const Tensor &r = parts[0], &z = parts[1], &n = parts[2], &hx = parts[3], &hn = parts[4];
    const Tensor gz = sigmoidGrad(go * (hx - n), z);
    const Tensor gn = tanhGrad(go * (1 - z), n);
    const Tensor gr = sigmoidGrad(gn * hn, r);
    Tensor grad_input_gates = at::cat({gr, gz, gn}, 1);
    Tensor grad_hidden_gates = at::cat({gr, gz, gn * r}, 1);
    Tensor grad_input_bias = has_bias ? grad_input_gates.sum(0) : Tensor();
    Tensor grad_hidden_bias = has_bias ? grad_hidden_gates.sum(0) : Tensor();
    return std::make_tuple(grad_input_gates, grad_hidden_gates, go * z, grad_input_bias, grad_hidden_bias);
  };
  return functional(backward, grad_hy, workspace);
}

}  // namespace

FOO_KERNELS(rnn, m) {
  m.impl("_thnn_fused_lstm_cell", TORCH_FN(lstmCell));
  m.impl("_thnn_fused_lstm_cell_backward_impl", TORCH_FN(lstmCellBackward));
  m.impl("_thnn_fused_gru_cell", TORCH_FN(gruCell));
  m.impl("_thnn_fused_gru_cell_backward", TORCH_FN(gruCellBackward));
}

}  // namespace torch_foo
