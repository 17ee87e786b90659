"""torch.save / torch.load of foo tensors, modules and optimizer state; pickling of foo generators."""
import copy
import io
import pickle

import pytest
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


def test_map_location_dict_callable_and_device():
    on0 = torch.arange(4.0, device="foo:0")
    on1 = torch.arange(3, device="foo:1")
    both = {"a": on0, "b": on1}
    moved = roundtrip(both, map_location={"foo:0": "foo:1"})  # only foo:0 is remapped
    assert moved["a"].device == torch.device("foo:1") and moved["b"].device == torch.device("foo:1")
    swapped = roundtrip(both, map_location={"foo:0": "foo:1", "foo:1": "foo:0"})
    assert swapped["a"].device == torch.device("foo:1") and swapped["b"].device == torch.device("foo:0")
    assert roundtrip({"c": on0.cpu()}, map_location={"cpu": "foo:1"})["c"].device == torch.device("foo:1")
    for where in (torch.device("foo", 1), torch.device("cpu")):
        loaded = roundtrip(both, map_location=where)
        assert loaded["a"].device == where and loaded["b"].device == where
    seen = []

    def to_cpu(storage, location):
        seen.append((location, storage.device.type))
        return storage.cpu()

    loaded = roundtrip(both, map_location=to_cpu)
    assert sorted(seen) == [("foo:0", "cpu"), ("foo:1", "cpu")]  # tagged foo:N, handed over on the host
    assert loaded["a"].device.type == "cpu" and loaded["b"].device.type == "cpu"
    loaded = roundtrip(both, map_location=lambda storage, location: storage.foo(1))
    assert loaded["a"].device == torch.device("foo:1") and loaded["b"].device == torch.device("foo:1")
    loaded = roundtrip(both, map_location=lambda storage, location: None)  # None: the default restore
    assert loaded["a"].device == torch.device("foo:0") and loaded["b"].device == torch.device("foo:1")
    for loaded in (moved, swapped):
        assert torch.equal(loaded["a"].cpu(), on0.cpu()) and torch.equal(loaded["b"].cpu(), on1.cpu())
        assert loaded["b"].dtype == torch.int64


def test_two_views_keep_sharing_one_storage():
    base = torch.arange(10.0, device="foo:1")
    first, second = base[1:4], base[2:8].view(2, 3)
    for kwargs in ({}, {"map_location": "foo:0"}, {"map_location": {"foo:1": "foo:0"}}):
        a, b = roundtrip([first, second], **kwargs)
        assert a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()
        assert a.untyped_storage().nbytes() == 40  # the whole storage, not just the views
        assert (a.storage_offset(), b.storage_offset(), b.stride()) == (1, 2, (3, 1))
        b[0, 0] = -5  # element 2 of the storage, which is a[1]
        assert a[1].item() == -5
        assert torch.equal(a.cpu(), torch.tensor([1.0, -5.0, 3.0]))


def test_adam_state_round_trip_continues_training_identically():
    def batches(step):
        generator = torch.Generator().manual_seed(100 + step)
        x, y = torch.randn(8, 4, generator=generator), torch.randint(0, 3, (8,), generator=generator)
        return x.to("foo"), y.to("foo")

    def train(model, optimizer, steps):
        losses = []
        for step in steps:
            x, y = batches(step)
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        return losses

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)).to("foo")
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    train(model, optimizer, range(3))
    saved = roundtrip({"model": model.state_dict(), "optim": optimizer.state_dict()})
    assert saved["optim"]["state"][0]["exp_avg_sq"].device == torch.device("foo:0")
    assert saved["optim"]["state"][0]["step"].item() == 3
    continued = train(model, optimizer, range(3, 6))  # the original keeps training

    restored = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)).to("foo")
    restored.load_state_dict(saved["model"])
    restored_optimizer = torch.optim.Adam(restored.parameters(), lr=0.01)
    restored_optimizer.load_state_dict(saved["optim"])
    assert restored_optimizer.state[restored[0].weight]["exp_avg"].device == torch.device("foo:0")
    resumed = train(restored, restored_optimizer, range(3, 6))
    assert resumed == continued  # bit for bit: same values, same kernels
    for original, copy in zip(model.parameters(), restored.parameters()):
        assert torch.equal(original.cpu(), copy.cpu())


def test_generators_pickle_and_deepcopy_as_on_cpu():
    """A foo generator's copy (pickle round trip or deepcopy) continues exactly where the original was, on its
    device, giving the numbers a CPU generator and its copy give; CPU generators still pickle as before."""
    foo_generator = torch.Generator(device="foo:1").manual_seed(7)
    cpu_generator = torch.Generator().manual_seed(7)
    torch.randn(5, device="foo:1", generator=foo_generator), torch.randn(5, generator=cpu_generator)
    for copy_of in (lambda g: pickle.loads(pickle.dumps(g)), copy.deepcopy):
        foo_copy, cpu_copy = copy_of(foo_generator), copy_of(cpu_generator)
        assert foo_copy.device == torch.device("foo:1") and cpu_copy.device == torch.device("cpu")
        assert foo_copy.initial_seed() == cpu_copy.initial_seed() == 7
        expected = torch.randn(6, generator=cpu_copy)
        assert torch.equal(torch.randn(6, generator=cpu_generator), expected)
        assert torch.equal(torch.randn(6, device="foo:1", generator=foo_copy).cpu(), expected)
        assert torch.equal(torch.randn(6, device="foo:1", generator=foo_generator).cpu(), expected)
    with pytest.raises(RuntimeError, match="foo generators have no offset"):
        foo_generator.get_offset()
