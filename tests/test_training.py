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
