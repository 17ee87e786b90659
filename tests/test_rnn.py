"""Recurrent layers on foo against CPU: nn.RNN (tanh, relu), nn.LSTM, nn.GRU and the cells, forward and backward.

On an accelerator PyTorch's LSTM and GRU call the fused cell ops (_thnn_fused_lstm_cell, _thnn_fused_gru_cell and
their backward), which CPU does not have: foo runs them natively, so none of them may reach the fallback.
"""
import copy

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import torch_foo
from helpers import assert_same

TOLERANCE = dict(atol=1e-5, rtol=1e-4)


def run(module, *inputs):
    """Forward and backward of module(*inputs); returns (outputs, input grads, parameter grads)."""
    inputs = [t.detach().requires_grad_() if t.is_floating_point() else t for t in inputs]
    out = module(*inputs)
    flat = [t for t in torch.utils._pytree.tree_leaves(out) if isinstance(t, torch.Tensor)]
    torch.manual_seed(7)
    cotangents = [torch.randn(t.shape).to(t.device) for t in flat]
    torch.autograd.backward(flat, cotangents)
    grads = [t.grad for t in inputs if isinstance(t, torch.Tensor) and t.requires_grad]
    return flat, grads, [p.grad for p in module.parameters()]


def compare(make_module, *cpu_inputs, device="foo:0"):
    torch.manual_seed(0)
    cpu_module = make_module()
    foo_module = copy.deepcopy(cpu_module).to(device)
    torch_foo.reset_fallback_stats()
    foo = run(foo_module, *[t.to(device) for t in cpu_inputs])
    fused_fallbacks = [op for op in torch_foo.fallback_stats() if "_thnn_fused" in op]
    cpu = run(cpu_module, *cpu_inputs)
    for foo_part, cpu_part in zip(foo, cpu):
        assert_same(foo_part, cpu_part, device, **TOLERANCE)
    assert fused_fallbacks == []


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN_TANH", "RNN_RELU"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_recurrent_layers_match_cpu(kind, bidirectional, num_layers, batch_first, bias):
    def make():
        cls = {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU}.get(kind, torch.nn.RNN)
        extra = {"nonlinearity": kind[4:].lower()} if kind.startswith("RNN") else {}
        return cls(3, 4, num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first, bias=bias,
                   **extra)

    torch.manual_seed(1)
    x = torch.randn(2, 5, 3) if batch_first else torch.randn(5, 2, 3)
    compare(make, x)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_initial_state_and_second_device(kind):
    torch.manual_seed(2)
    x = torch.randn(4, 3, 2)
    h0 = torch.randn(2, 3, 5)
    state = (h0, torch.randn(2, 3, 5)) if kind == "LSTM" else h0

    class WithState(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = getattr(torch.nn, kind)(2, 5, num_layers=2)

        def forward(self, x, *state):
            return self.rnn(x, tuple(state) if kind == "LSTM" else state[0])

    compare(WithState, x, *(state if kind == "LSTM" else (state,)), device="foo:1")


@pytest.mark.parametrize("cell", ["LSTMCell", "GRUCell", "RNNCell"])
def test_cells_match_cpu(cell):
    torch.manual_seed(3)
    compare(lambda: getattr(torch.nn, cell)(3, 6), torch.randn(4, 3))
    compare(lambda: getattr(torch.nn, cell)(3, 6, bias=False), torch.randn(4, 3))


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_packed_sequences(kind):
    class Packed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = getattr(torch.nn, kind)(3, 4, bidirectional=True)

        def forward(self, x):
            packed = pack_padded_sequence(x, torch.tensor([5, 3, 2]), enforce_sorted=True)
            out, _ = self.rnn(packed)
            return pad_packed_sequence(out)[0]

    torch.manual_seed(4)
    compare(Packed, torch.randn(5, 3, 3))


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_dropout_between_layers_draws_what_cpu_draws(kind):
    # foo's generator gives CPU's numbers for the same seed, so the dropout masks are the same.
    class Seeded(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = getattr(torch.nn, kind)(3, 4, num_layers=3, dropout=0.5)

        def forward(self, x):
            torch.manual_seed(11)
            return self.rnn(x)

    torch.manual_seed(5)
    compare(Seeded, torch.randn(6, 2, 3))


def test_fused_cell_ops_in_double_precision_and_without_grad_outputs():
    torch.manual_seed(6)
    gates_i, gates_h, cx = torch.randn(3, 8, dtype=torch.float64), torch.randn(3, 8, dtype=torch.float64), \
        torch.randn(3, 2, dtype=torch.float64)
    hy, cy, workspace = torch.ops.aten._thnn_fused_lstm_cell(gates_i.foo(), gates_h.foo(), cx.foo())
    i, f, g, o = (gates_i + gates_h).chunk(4, 1)
    expected_cy = f.sigmoid() * cx + i.sigmoid() * g.tanh()
    assert_same(cy, expected_cy)
    assert_same(hy, o.sigmoid() * expected_cy.tanh())
    # Only the cell-state gradient flows (h unused): grad_hy is None on that path.
    gi = gates_i.foo().requires_grad_()
    _, cy, _ = torch.ops.aten._thnn_fused_lstm_cell(gi, gates_h.foo(), cx.foo())
    cy.sum().backward()
    gi_cpu = gates_i.clone().requires_grad_()
    i, f, g, o = (gi_cpu + gates_h).chunk(4, 1)
    (f.sigmoid() * cx + i.sigmoid() * g.tanh()).sum().backward()
    assert_same(gi.grad, gi_cpu.grad)


def test_an_op_without_any_cpu_kernel_names_foo_and_the_op():
    # _fused_dropout has CUDA and no CPU kernel: the fallback cannot run it.
    with pytest.raises(NotImplementedError, match=r"aten::_fused_dropout.*not implemented for foo"):
        torch._fused_dropout(torch.ones(3, device="foo"), 0.5)
