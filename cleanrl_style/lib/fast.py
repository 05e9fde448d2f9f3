"""The opt-in fast paths (--compile, --cudagraphs) around a script's functions. The eager path is
the tested reference; each flag works alone."""

from __future__ import annotations

from typing import Any, Callable

from cleanrl_style.lib.runs import UserError


def check_fast_flags(args: Any, backend: str) -> None:
    if getattr(args, "cudagraphs", False) and backend != "gpu":
        raise UserError("--cudagraphs needs CUDA (GPU sim backend); use --compile on the CPU")


def maybe_fast(fn: Callable, args: Any, tensordict_io: bool = True) -> Callable:
    """torch.compile (args.compile) and/or a CUDA graph (args.cudagraphs, tensordict's
    CudaGraphModule) around `fn`. tensordict_io: fn takes and returns TensorDicts."""
    if args.compile:
        import torch

        fn = torch.compile(fn)
    if args.cudagraphs:
        from tensordict.nn import CudaGraphModule

        fn = CudaGraphModule(fn, in_keys=[], out_keys=[]) if tensordict_io else CudaGraphModule(fn)
    return fn
