"""Python-side registration of the foo backend; every step tolerates having been done already (autoload + import)."""
import atexit
import copyreg

import torch


def register_backend() -> None:
    torch.utils.rename_privateuse1_backend("foo")  # the same name again is allowed
    if not hasattr(torch, "foo"):
        from . import device_module

        torch._register_device_module("foo", device_module)
    if not hasattr(torch.Tensor, "is_foo"):
        torch.utils.generate_methods_for_privateuse1_backend(
            for_tensor=True, for_module=True, for_packed_sequence=True, for_storage=True
        )
    copyreg.pickle(torch.Generator, _reduce_generator)
    atexit.unregister(_drain_autograd_device_threads)
    atexit.register(_drain_autograd_device_threads)


def _drain_autograd_device_threads() -> None:
    """At exit, before the interpreter finalizes: an autograd device thread still releasing a finished backward's
    graph (Python objects inside) after finalization began would abort the process (see the C++ side)."""
    torch.ops.foo.drain_autograd_device_threads()


def _reduce_generator(generator: torch.Generator):
    """pickle and copy.deepcopy of a torch.Generator: a foo generator as a CPU one, by seed and state (its engine is a
    CPU generator, whose whole position is its state). torch's own __reduce__ asks every non-CPU generator for a
    Philox offset, which foo generators do not have; other generators keep it."""
    if generator.device.type != "foo":
        return generator.__reduce__()
    return _rebuild_generator, (generator.device, generator.initial_seed(), generator.get_state())


def _rebuild_generator(device: torch.device, seed: int, state: torch.Tensor) -> torch.Generator:
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    generator.set_state(state)
    return generator


def check_kernel_registration() -> None:
    """Raises ImportError if a kernel family of the loaded library failed to register (the C++ side keeps the error,
    as throwing while the library loads would abort the process) or a kernel names an operator that does not exist."""
    errors = torch.ops.foo.registration_errors()
    if errors:
        raise ImportError("torch_foo: the foo backend's kernels did not register:\n  " + "\n  ".join(errors))
