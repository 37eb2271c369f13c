"""fnn.backend: which array module serves an array, and moving trees between devices."""

import numpy as np
import pytest

import fnn
import fnn.numpy as fnp
from fnn import backend


class FakeCupyArray:
    """Stands in for a CuPy array (the backend recognises CuPy by the array's module)."""

    __module__ = "cupy._core.core"
    shape = (2,)
    dtype = np.dtype(np.float32)

    def __array_ufunc__(self, *args, **kwargs):
        raise TypeError("Unsupported type <class 'numpy.ndarray'>")


def test_numpy_arrays_and_scalars_are_served_by_numpy():
    assert backend.get_array_module(np.ones(2), 3.0) is np
    assert backend.get_array_module() is np
    assert backend.device_of(np.ones(2)) == "cpu"


def test_traced_values_are_looked_through():
    seen = []
    fnn.grad(lambda x: seen.append(backend.get_array_module(x)) or fnp.sum(x))(np.ones(2))
    assert seen == [np]


def test_cupy_is_recognised_without_importing_it():
    assert backend.is_cupy_array(FakeCupyArray())
    assert not backend.is_cupy_array(np.ones(2))
    assert backend.device_of(FakeCupyArray()) == "gpu"


def test_mixing_devices_in_one_operation_is_a_clear_error():
    with pytest.raises(backend.MixedBackendError, match="different devices"):
        backend.get_array_module(np.ones(2), FakeCupyArray())
    with pytest.raises(backend.MixedBackendError, match=r"fnn\.numpy\.add.*NumPy and CuPy"):
        fnp.add(np.ones(2, np.float32), FakeCupyArray())


def test_to_numpy_leaves_host_trees_alone_and_to_device_validates():
    tree = {"w": np.ones(2), "n": 3}
    moved = backend.to_numpy(tree)
    assert moved["w"] is tree["w"] and moved["n"] == 3
    assert backend.to_device(tree, "cpu")["w"] is tree["w"]
    with pytest.raises(ValueError, match="unknown device"):
        backend.to_device(tree, "tpu")


def test_import_fnn_does_not_import_cupy():
    import subprocess
    import sys

    code = "import sys, fnn, fnn.numpy; print('cupy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.skipif(not backend.cupy_available(), reason="needs CuPy and a GPU")
def test_gradients_on_cupy_match_numpy():
    import cupy as cp

    x = np.linspace(-1, 1, 7).astype(np.float32)
    f = lambda x: fnp.sum(fnp.tanh(x) * fnp.exp(x))  # noqa: E731
    g_cpu = fnn.grad(f)(x)
    g_gpu = fnn.grad(f)(cp.asarray(x))
    assert isinstance(g_gpu, cp.ndarray) and g_gpu.dtype == np.float32
    np.testing.assert_allclose(cp.asnumpy(g_gpu), g_cpu, rtol=1e-5)
    moved = backend.to_numpy(backend.to_cupy({"x": x}))
    np.testing.assert_array_equal(moved["x"], x)


def test_value_checks_run_on_host_data_and_on_the_gpu_only_when_asked():
    assert backend.checks_values(np.arange(3))
    assert not backend.checks_values(FakeCupyArray())
    with backend.device_value_checks():
        assert backend.checks_values(FakeCupyArray())
    assert not backend.checks_values(FakeCupyArray())


def test_kernel_module_is_none_without_real_cupy_kernels():
    assert backend.kernel_module(np.ones(2)) is None
    assert backend.kernel_module(np.ones(2), FakeCupyArray()) is None
    assert backend.kernel_module() is None
    if not backend.cupy_available():  # no CuPy here (or only the stand-in, which has no RawModule)
        assert backend.kernel_module(FakeCupyArray()) is None
