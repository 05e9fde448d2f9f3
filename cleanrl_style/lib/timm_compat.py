"""Importing timm next to a torch wheel that has no matching torchvision. Docs: docs/encoders.md

timm (>= 0.9) imports torchvision at import time, for names it never needs to build or run a model:
`torchvision.ops.misc.FrozenBatchNorm2d` (timm.layers), the transforms, `InterpolationMode` and the
datasets (timm.data, which the model files import for their ImageNet constants). This project's CPU
torch wheel has no torchvision build: the one on PyPI is linked against CUDA torch and fails to import
beside it ("operator torchvision::nms does not exist"), and installing it can replace torch.

`import_timm()` returns timm. Where a working torchvision is installed it is used as it is. Otherwise
a stand-in for exactly those names is visible only while `import timm` runs, and removed from
sys.modules afterwards, so no other library (kornia, torchrl, ...) ever sees a torchvision. The
stand-in's classes and functions raise when called: timm's PIL/torchvision data pipeline
(timm.data.create_transform, the datasets) does not work, and lib/encoders.py never uses it
(preprocessing is done on the tensor, on the device). `FrozenBatchNorm2d` is the real, small
module (torchvision's semantics), so timm's batch-norm freezing utilities work.
"""

from __future__ import annotations

import enum
import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from typing import Any, Optional

import torch
import torch.nn as nn

_TIMM: Optional[Any] = None
STANDIN_USED = False  # True when timm was imported through the stand-in (tests, docs)


class FrozenBatchNorm2d(nn.Module):
    """Batch norm with fixed statistics and affine parameters (buffers), as torchvision.ops.misc's."""

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        for name, fill in (("weight", 1.0), ("bias", 0.0), ("running_mean", 0.0), ("running_var", 1.0)):
            self.register_buffer(name, torch.full((num_features,), fill))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        bias = self.bias - self.running_mean * scale
        return x * scale[None, :, None, None] + bias[None, :, None, None]


class InterpolationMode(enum.Enum):
    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


def _unavailable(qualname: str):
    def fail(*args, **kwargs):
        raise RuntimeError(
            f"{qualname} needs torchvision, which is not importable next to this torch; "
            f"cleanrl_style preprocesses images on the tensor instead (lib/encoders.py)"
        )

    return type(qualname.rsplit(".", 1)[-1], (), {"__init__": fail, "__call__": fail})


class _StandInModule(types.ModuleType):
    """A torchvision module whose unknown attributes are placeholders that raise when used."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        value = _unavailable(f"{self.__name__}.{name}")
        setattr(self, name, value)
        return value


# the modules timm imports from; torchvision.models.feature_extraction is left out on purpose: timm
# imports it in a try block and then reports FX feature extraction as unavailable, which it is
_STANDIN_MODULES = {
    "torchvision": {},
    "torchvision.ops": {},
    "torchvision.ops.misc": {"FrozenBatchNorm2d": FrozenBatchNorm2d},
    "torchvision.transforms": {"InterpolationMode": InterpolationMode},
    "torchvision.transforms.functional": {"InterpolationMode": InterpolationMode},
    "torchvision.datasets": {},
    "torchvision.utils": {},
}


class _StandInFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname in _STANDIN_MODULES:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _StandInModule(spec.name)
        module.__path__ = []
        module.__dict__.update(_STANDIN_MODULES[spec.name])
        return module

    def exec_module(self, module):
        pass


def _drop_torchvision_modules() -> None:
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]


def torchvision_works() -> bool:
    """Whether a real torchvision imports here (a broken install leaves nothing behind in sys.modules)."""
    try:
        importlib.import_module("torchvision")
        return True
    except Exception:  # noqa: BLE001  (ImportError, or RuntimeError from a build for another torch)
        _drop_torchvision_modules()
        return False


def import_timm():
    """timm, imported once (through the stand-in where torchvision does not work). Raises ImportError
    with the install command when timm is not installed."""
    global _TIMM, STANDIN_USED
    if _TIMM is not None:
        return _TIMM
    if "timm" in sys.modules or torchvision_works():
        _TIMM = importlib.import_module("timm")
        return _TIMM
    finder = _StandInFinder()
    sys.meta_path.insert(0, finder)
    try:
        _TIMM = importlib.import_module("timm")
        STANDIN_USED = True
    finally:
        sys.meta_path.remove(finder)
        _drop_torchvision_modules()
    return _TIMM
