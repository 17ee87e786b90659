"""PyTorch's device-generic test machinery on foo (README: "Testing code that runs on foo").

torch.testing._internal.common_device_type adds a PrivateUse1TestBase to its device test bases when the PrivateUse1
backend is registered and available at the moment it is imported: torch_foo must be imported first. Generic tests
then instantiate as <Class>PRIVATEUSE1 with devices "foo:N"; only_for="foo" (or PYTORCH_TESTING_DEVICE_ONLY_FOR=foo)
leaves out the CPU variants.
"""
import torch_foo  # noqa: F401  (before common_device_type, which picks its device types when imported)

import torch
from torch.testing._internal.common_device_type import dtypes, instantiate_device_type_tests, ops
from torch.testing._internal.common_methods_invocations import op_db
from torch.testing._internal.common_utils import TestCase

from helpers import run_python

# Ops with native foo kernels and ops that go through the CPU fallback, with PyTorch's own sample inputs.
OPS = [op for op in op_db if op.name in {"add", "mul", "div", "abs", "exp", "sum", "mean", "mm", "cumsum", "where",
                                          "clamp", "nn.functional.relu", "softmax"} and op.variant_test_name == ""]


class TestFooDeviceGeneric(TestCase):
    @ops(OPS, allowed_dtypes=(torch.float32, torch.int64))
    def test_compare_cpu(self, device, dtype, op):
        """As PyTorch's TestCommon.test_compare_cpu: every sample input on foo gives what it gives on CPU."""
        self.assertTrue(device.startswith("foo:"))
        samples = list(op.sample_inputs(device, dtype))
        self.assertGreater(len(samples), 0)
        for sample in samples:
            cpu_sample = sample.transform(lambda t: t.cpu() if isinstance(t, torch.Tensor) else t)
            actual = op(sample.input, *sample.args, **sample.kwargs)
            expected = op(cpu_sample.input, *cpu_sample.args, **cpu_sample.kwargs)
            self.assertEqual(actual.device, torch.device(device))
            self.assertEqual(actual, expected, exact_device=False)

    @dtypes(torch.float32, torch.float16)
    def test_factory_on_the_primary_device(self, device, dtype):
        made = torch.linspace(0, 1, 11, device=device, dtype=dtype)
        self.assertEqual(made.device, torch.device(device))
        self.assertEqual(made, torch.linspace(0, 1, 11, dtype=dtype), exact_device=False)


instantiate_device_type_tests(TestFooDeviceGeneric, globals(), only_for="foo")


def test_only_the_foo_variants_were_instantiated():
    assert "TestFooDeviceGenericPRIVATEUSE1" in globals() and "TestFooDeviceGenericCPU" not in globals()
    names = set(dir(TestFooDeviceGenericPRIVATEUSE1))  # noqa: F821  (made by instantiate_device_type_tests)
    assert {f"test_compare_cpu_{op.formatted_name}_foo_float32" for op in OPS} <= names


def test_environment_variable_selects_foo():
    result = run_python(
        """
        import unittest
        import torch, torch_foo
        from torch.testing._internal.common_device_type import instantiate_device_type_tests
        from torch.testing._internal.common_utils import TestCase

        class TestOnes(TestCase):
            def test_ones(self, device):
                self.assertEqual(torch.ones(3, device=device).sum().item(), 3.0)

        instantiate_device_type_tests(TestOnes, globals())
        print(sorted(name for name in globals() if name.startswith("TestOnes")))
        outcome = unittest.TextTestRunner().run(unittest.defaultTestLoader.loadTestsFromTestCase(TestOnesPRIVATEUSE1))
        print("ran", outcome.testsRun, "ok", outcome.wasSuccessful())
        """,
        env={"PYTORCH_TESTING_DEVICE_ONLY_FOR": "foo"},
    )
    assert result.returncode == 0, result.stderr
    assert "['TestOnesPRIVATEUSE1']" in result.stdout and "ran 1 ok True" in result.stdout, result.stdout
