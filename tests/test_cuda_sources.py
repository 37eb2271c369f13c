"""Every CUDA source fnn compiles itself (RawModule kernels) compiles with NVRTC, on any machine.

The kernels run only on a GPU, but a compile error (an identifier NVRTC lacks, a typo) can be
found without one: NVRTC is a library that needs no device. The check runs where NVIDIA's NVRTC
wheel (`nvidia-cuda-nvrtc-cu12`, in the test extra on Linux x86-64) or a CUDA toolkit's
libnvrtc is installed, and is skipped with that reason elsewhere.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import importlib.util
import os

import pytest

from fnn.losses import _cuda_cross_entropy
from fnn.nn.functional import _cuda_batch_norm
from fnn.optim import _foreach

SOURCES = {**_cuda_batch_norm.cuda_sources(), **_cuda_cross_entropy.cuda_sources(), **_foreach.cuda_sources()}


def _find_nvrtc():
    spec = importlib.util.find_spec("nvidia")
    for root in (spec.submodule_search_locations or []) if spec else []:
        for path in sorted(glob.glob(os.path.join(root, "cuda_nvrtc", "lib", "libnvrtc.so*"))):
            if "alt" not in os.path.basename(path) and "builtins" not in os.path.basename(path):
                return path
    return ctypes.util.find_library("nvrtc")


NVRTC = _find_nvrtc()


def nvrtc_compile(source: str) -> tuple[int, str]:
    """(NVRTC's result code, its log) for compiling `source` for compute capability 9.0."""
    lib = ctypes.CDLL(NVRTC)
    prog = ctypes.c_void_p()
    assert lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), b"fnn.cu", 0, None, None) == 0
    options = (ctypes.c_char_p * 1)(b"--gpu-architecture=compute_90")
    rc = lib.nvrtcCompileProgram(prog, 1, options)
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(prog, log)
    lib.nvrtcDestroyProgram(ctypes.byref(prog))
    return rc, log.value.decode(errors="replace")


needs_nvrtc = pytest.mark.skipif(NVRTC is None, reason="needs NVRTC (pip install nvidia-cuda-nvrtc-cu12)")


@needs_nvrtc
@pytest.mark.parametrize("name", sorted(SOURCES))
def test_kernel_source_compiles(name):
    rc, log = nvrtc_compile(SOURCES[name])
    assert rc == 0, f"{name} does not compile:\n{log}"


@needs_nvrtc
def test_a_broken_source_is_caught():
    rc, log = nvrtc_compile('extern "C" __global__ void k(float* x) { x[0] = INFINITY; }')
    assert rc != 0 and "INFINITY" in log
