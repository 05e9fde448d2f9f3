"""The opt-in fast paths (--compile, --cudagraphs) around a script's functions. The eager path is
the tested reference; each flag works alone."""

from __future__ import annotations

from typing import Any, Callable

from cleanrl_style.lib.runs import UserError


def check_fast_flags(args: Any, backend: str) -> None:
    if getattr(args, "cudagraphs", False) and backend != "gpu":
        raise UserError("--cudagraphs needs CUDA (GPU sim backend); use --compile on the CPU")
    if getattr(args, "cudagraphs", False) and getattr(args, "buffer_device", "auto") == "cpu":
        raise UserError(
            "--cudagraphs captures the replay sampling with each gradient step, so the buffer must be on the "
            "GPU: drop --buffer-device cpu (or drop --cudagraphs)"
        )


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


class CapturedStep:
    """A step function without arguments, captured once in a CUDA graph and then replayed with no device
    synchronisation (tensordict's CudaGraphModule synchronises before every replay, which with SAC's
    hundreds of gradient steps per env step costs hundreds of full syncs).

    The first `warmup` calls run eagerly on a side stream (what capture needs: cuBLAS/allocator warm-up,
    the optimizers' lazily created state), the next one captures and replays, every later one replays.
    What the step reads must be tensors updated in place between calls (the replay buffer's storage and
    its device-side counters, the BC coefficient); it returns the same output tensors at every replay,
    so read them before the next call."""

    def __init__(self, fn: Callable[[], Any], warmup: int = 3):
        import torch

        if not torch.cuda.is_available():
            raise UserError("--cudagraphs needs CUDA")
        self.fn, self.warmup, self.calls = fn, warmup, 0
        self.graph, self.out = None, None

    def __call__(self) -> Any:
        import torch

        if self.graph is not None:
            self.graph.replay()
            return self.out
        if self.calls < self.warmup:
            self.calls += 1
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                out = self.fn()
            torch.cuda.current_stream().wait_stream(side)
            return out
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.out = self.fn()
        self.graph.replay()  # capturing records the kernels without running them
        return self.out
