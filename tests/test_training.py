"""End-to-end training on foo matches CPU and runs without CPU fallbacks."""
import pytest
import torch
import torch.nn.functional as F

import torch_foo


def mlp():
    return torch.nn.Sequential(
        torch.nn.Linear(20, 32), torch.nn.ReLU(), torch.nn.Linear(32, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4)
    )


def train(device, optimizer_name, steps=20):
    torch.manual_seed(0)
    model = mlp().to(device)
    data = torch.randn(64, 20).to(device)
    target = (torch.arange(64) % 4).to(device)
    optimizer = {
        "sgd": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
        "adam": lambda p: torch.optim.Adam(p, lr=0.01),
    }[optimizer_name](model.parameters())
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(data), target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_mlp_loss_curve_matches_cpu_without_fallbacks(optimizer):
    cpu = train("cpu", optimizer)
    torch_foo.reset_fallback_stats()
    foo = train("foo", optimizer)
    assert torch_foo.fallback_stats() == {}
    assert foo == pytest.approx(cpu, rel=1e-5, abs=1e-6)
    assert foo[-1] < foo[0]


def test_small_cnn_trains():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(36, 3)
    ).to("foo")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    images = torch.randn(16, 1, 8, 8, device="foo")
    labels = (torch.arange(16) % 3).to("foo")
    losses = []
    for _ in range(15):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_autocast_casts_as_on_cuda():
    a, b = torch.randn(8, 8, device="foo"), torch.randn(8, 8, device="foo")
    assert torch.get_autocast_dtype("foo") == torch.float16
    with torch.autocast("foo", dtype=torch.bfloat16):
        product = a @ b  # lower precision
        assert product.dtype == torch.bfloat16
        assert torch.equal(product.cpu(), a.cpu().bfloat16() @ b.cpu().bfloat16())
        assert F.linear(a, b).dtype == torch.bfloat16
        assert torch.softmax(a.bfloat16(), 1).dtype == torch.float32  # float32 policy
        assert torch.addcmul(a, a.bfloat16(), a).dtype == torch.float32  # promoted to the widest input
        assert (a + b).dtype == torch.float32  # no policy: runs as is
        with torch.autocast("foo", enabled=False):
            assert (a @ b).dtype == torch.float32
        with pytest.raises(RuntimeError, match="unsafe to autocast"):
            F.binary_cross_entropy(torch.sigmoid(a), torch.rand(8, 8, device="foo"))
    assert (a @ b).dtype == torch.float32


def test_autocast_policies_cast_each_kind_of_argument():
    # Each policy's boxed kernel finds the tensors among the arguments: tensors, optional tensors, tensor lists and
    # the optional dtype. Results equal CPU running the casts CUDA's autocast makes.
    torch.manual_seed(0)
    a, b, w, bias = torch.randn(8, 8), torch.randn(8, 8), torch.randn(4, 3, 3, 3), torch.randn(4)
    x, index, half = torch.randn(2, 3, 6, 6), torch.tensor([1, 3]), torch.bfloat16
    cases = [  # (fn, its CPU equivalent with autocast's casts spelled out, result dtype)
        (lambda a, b: torch.linalg.multi_dot([a, b, a]),
         lambda a, b: torch.linalg.multi_dot([a.to(half), b.to(half), a.to(half)]), half),  # tensor list
        (lambda x, w, bias: F.conv2d(x, w, bias), lambda x, w, bias: F.conv2d(x.to(half), w.to(half), bias.to(half)),
         half),  # optional tensor
        (lambda a, b: F.layer_norm(a.to(half), (8,), b[0].to(half), b[1]),
         lambda a, b: F.layer_norm(a.to(half).float(), (8,), b[0].to(half).float(), b[1]), torch.float32),
        (lambda a: torch.sum(a.to(half), 1), lambda a: torch.sum(a.to(half), 1, dtype=torch.float32), torch.float32),
        (lambda a: torch.sum(a.to(half), dtype=torch.float64), lambda a: torch.sum(a.to(half), dtype=torch.float64),
         torch.float64),  # an explicit dtype wins
        (lambda a: torch.cumsum(a.long(), 0), lambda a: torch.cumsum(a.long(), 0), torch.int64),  # not eligible
        (lambda a, b: torch.index_put(a.to(half), (index.to(a.device),), b[:2]),
         lambda a, b: torch.index_put(a.to(half).float(), (index,), b[:2]), torch.float32),  # promote
        (lambda a, b: torch.dot(a[0].to(half), b[0].to(half)), lambda a, b: torch.dot(a[0].to(half), b[0].to(half)),
         half),
        (lambda a: torch.norm(a.to(half)), lambda a: torch.norm(a.to(half), dtype=torch.float32), torch.float32),
    ]
    for fn, expected_fn, dtype in cases:
        arguments = {1: (a,), 2: (a, b), 3: (x, w, bias)}[fn.__code__.co_argcount]
        with torch.autocast("foo", dtype=half):
            result = fn(*(t.foo() for t in arguments))
        expected = expected_fn(*arguments)
        assert result.dtype == expected.dtype == dtype
        torch.testing.assert_close(result.cpu(), expected, rtol=0, atol=0)


@pytest.mark.parametrize("device", ["foo:0", "foo:1"])
def test_mixed_precision_training_with_grad_scaler(device):
    torch.manual_seed(0)
    model = mlp().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scaler = torch.amp.GradScaler("foo", init_scale=2.0**10)
    data = torch.randn(64, 20).to(device)
    target = (torch.arange(64) % 4).to(device)
    torch_foo.reset_fallback_stats()
    losses = []
    for _ in range(20):
        optimizer.zero_grad()
        with torch.autocast("foo", dtype=torch.float16):
            logits = model(data)
            loss = F.cross_entropy(logits, target)
        assert logits.dtype == torch.float16 and loss.dtype == torch.float32
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        losses.append(loss.item())
    assert torch_foo.fallback_stats() == {}  # autocast casts and the scaler's unscale/update run natively
    assert all(p.grad.dtype == torch.float32 and p.grad.device == torch.device(device) for p in model.parameters())
    assert scaler.get_scale() == 2.0**10  # no step was skipped: no inf/NaN in fp16 gradients here
    assert losses[-1] < 0.9 * losses[0]

    model.zero_grad()  # an inf gradient: the step is skipped and the scale halves, as on CUDA
    weight = model[0].weight.detach().clone()
    (scaler.scale(model(data).sum()) * float("inf")).backward()
    scaler.step(optimizer)
    scaler.update()
    assert torch.equal(model[0].weight, weight)
    assert scaler.get_scale() == 2.0**9
