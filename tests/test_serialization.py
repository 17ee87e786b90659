"""torch.save / torch.load of foo tensors, modules and optimizer state."""
import io

import torch

import torch_foo  # noqa: F401


def roundtrip(obj, **load_kwargs):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False, **load_kwargs)


def test_tensors_keep_values_dtypes_devices_and_sharing():
    base = torch.arange(10, dtype=torch.float64, device="foo:1")
    view = base[2:5]
    ints = torch.tensor([1, 2, 3], dtype=torch.int32, device="foo:0")
    loaded = roundtrip({"base": base, "view": view, "ints": ints})
    assert loaded["base"].device == torch.device("foo:1") and loaded["base"].dtype == torch.float64
    assert torch.equal(loaded["view"].cpu(), view.cpu())
    assert loaded["ints"].device == torch.device("foo:0") and loaded["ints"].dtype == torch.int32
    loaded["base"][3] = -1
    assert loaded["view"][1].item() == -1  # the view still shares its base's storage


def test_map_location():
    t = torch.randn(3, device="foo:1")
    assert roundtrip(t, map_location="cpu").device == torch.device("cpu")
    assert roundtrip(t, map_location="foo:0").device == torch.device("foo:0")
    assert roundtrip(t, map_location={"foo:1": "foo:0"}).device == torch.device("foo:0")
    assert roundtrip(torch.ones(2), map_location="foo:1").device == torch.device("foo:1")
    assert torch.equal(roundtrip(t, map_location="cpu"), t.cpu())


def test_module_and_optimizer_state():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3).to("foo")
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.randn(2, 4, device="foo")).sum().backward()
    optimizer.step()
    state = roundtrip({"model": model.state_dict(), "optim": optimizer.state_dict()})
    restored = torch.nn.Linear(4, 3).to("foo")
    restored.load_state_dict(state["model"])
    assert torch.equal(restored.weight.cpu(), model.weight.cpu())
    exp_avg = state["optim"]["state"][0]["exp_avg"]
    assert exp_avg.device.type == "foo"
    assert torch.equal(exp_avg.cpu(), optimizer.state_dict()["state"][0]["exp_avg"].cpu())
    whole = roundtrip(model)
    assert whole.weight.device.type == "foo"
