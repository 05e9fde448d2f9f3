"""Encoder throughput: frames/s of each image encoder (lib/encoders.py) per input size, forward only
(acting, or a frozen backbone), forward+backward with a frozen backbone (only the adapter trains), and
forward+backward of the whole encoder. Docs: docs/encoders.md#throughput

    python bench/encoder_throughput.py                          # CUDA if present, else CPU
    python bench/encoder_throughput.py --device cpu --batch 8 --encoders resnet18 --notes "machine shared"

Each row: one encoder at one backbone input size, on uint8 (B, 3, camera, camera) frames on the device
(the camera image is `--camera` px; a timm backbone resizes it to its input size on the device, inside the
timed call, as training does). Sizes: nature at the camera size (64, 128); resnet18 at 64 and its native
224; dinov2-vits14 at 70 (the multiple of its 14 px patch nearest 64) and 224. Modes:
  forward         no_grad, eval mode: acting, and what a frozen backbone costs per frame
  train-frozen    backbone frozen (--freeze-encoder), loss.backward() through the adapter only
  train           every parameter trainable, loss.backward() through the whole encoder
Rows are appended to results/encoder_throughput.csv with the device, date, commit, versions, torch threads
and the 1-minute load average (load1); --notes says under what conditions they were taken.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # `python bench/x.py` puts bench/ first on the path, not the repo root
    sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402
import tyro  # noqa: E402

from bench._shared import append_rows, load1, machine_fields  # noqa: E402
from cleanrl_style.lib import encoders as enc_lib  # noqa: E402
from cleanrl_style.lib.runs import UserError, run  # noqa: E402

COLUMNS = (
    "device",
    "date",
    "commit",
    "encoder",
    "adapter",
    "camera",
    "input_size",
    "batch",
    "mode",
    "frames_per_s",
    "params",
    "trainable_params",
    "torch_threads",
    "load1",
    "cpu_count",
    "notes",
    "versions",
)
MODES = ("forward", "train-frozen", "train")
SIZES = {"nature": (64, 128), "resnet18": (64, 224), "dinov2-vits14": (70, 224)}


@dataclass
class Args:
    encoders: tuple[str, ...] = tuple(SIZES)
    """encoders to time: nature, resnet18, dinov2-vits14"""
    modes: tuple[str, ...] = MODES
    """forward, train-frozen, train"""
    adapter: str = "attn-pool"
    """adapter of the timm encoders (linear | attn-pool)"""
    camera: int = 64
    """camera image size the timm encoders resize from (nature's own rows use its sizes as the camera)"""
    batch: int = 0
    """frames per call (0: 256 on CUDA, 16 on CPU)"""
    feature_dim: int = 256
    """encoder output size"""
    device: str = "auto"
    """auto (cuda if present), cuda or cpu"""
    threads: int = 0
    """torch CPU threads (0: torch's default)"""
    min_time: float = 1.0
    """seconds of timed calls per row (after one warm-up call)"""
    notes: str = ""
    """free text for every row, e.g. 'machine shared with a training run'"""
    out: str = "results/encoder_throughput.csv"
    """CSV the rows are appended to (relative paths are relative to the repository root)"""


def frames_per_second(fn, batch: int, min_time: float, sync) -> float:
    fn()
    sync()
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        sync()
        elapsed = time.perf_counter() - start
        if elapsed >= min_time and calls >= 2:
            return calls * batch / elapsed


def build(name: str, size: int, args: Args, device: torch.device) -> tuple[torch.nn.Module, int]:
    """The encoder at one input size, and the camera size its frames come at."""
    if name == "nature":
        return enc_lib.make_image_encoder(3, size, size, args.feature_dim, None).to(device), size
    config = dict(name=name, image_size=size, adapter=args.adapter)
    return enc_lib.make_image_encoder(3, args.camera, args.camera, args.feature_dim, config).to(device), args.camera


def step_fn(enc: torch.nn.Module, mode: str, x: torch.Tensor):
    if mode == "forward":
        enc.eval()

        def forward():
            with torch.no_grad():
                enc(x)

        return forward
    enc.train()
    for p in enc.parameters():
        p.requires_grad_(True)
    if mode == "train-frozen":
        enc_lib.freeze_backbone(enc)

    def train():
        enc.zero_grad(set_to_none=True)
        enc(x).square().mean().backward()

    return train


def main(args: Args) -> list[dict]:
    unknown = [e for e in args.encoders if e not in SIZES] + [m for m in args.modes if m not in MODES]
    if unknown:
        raise UserError(
            f"unknown --encoders/--modes {unknown}; encoders: {', '.join(SIZES)}; modes: {', '.join(MODES)}"
        )
    if args.device not in ("auto", "cuda", "cpu") or (args.device == "cuda" and not torch.cuda.is_available()):
        raise UserError(f"--device must be auto, cpu, or cuda where CUDA is present (got '{args.device}')")
    device = torch.device("cuda" if args.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    batch = args.batch or (256 if device.type == "cuda" else 16)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    machine = machine_fields()
    if device.type == "cuda":
        machine["device"] = torch.cuda.get_device_name(device)
    out = Path(args.out) if Path(args.out).is_absolute() else REPO_ROOT / args.out
    rows = []
    torch.manual_seed(0)
    for name in args.encoders:
        for size in SIZES[name]:
            for mode in args.modes:
                enc, camera = build(name, size, args, device)
                x = torch.randint(0, 256, (batch, 3, camera, camera), dtype=torch.uint8, device=device)
                fn = step_fn(enc, mode, x)
                fps = frames_per_second(fn, batch, args.min_time, sync)
                row = dict(
                    machine,
                    encoder=name,
                    adapter=args.adapter if name != "nature" else "fc",
                    camera=camera,
                    input_size=size,
                    batch=batch,
                    mode=mode,
                    frames_per_s=round(fps, 1),
                    params=sum(p.numel() for p in enc.parameters()),
                    trainable_params=sum(p.numel() for p in enc.parameters() if p.requires_grad),
                    torch_threads=torch.get_num_threads(),
                    load1=load1(),
                    notes=args.notes,
                )
                rows.append(row)
                print(
                    f"{name:>14} {size:>4}px {mode:>12}: {fps:>10,.1f} frames/s (batch {batch}, load1 {row['load1']})",
                    flush=True,
                )
                del enc, fn, x
    append_rows(out, COLUMNS, rows)
    print(f"appended {len(rows)} rows to {out}")
    return rows


if __name__ == "__main__":
    run(main, tyro.cli(Args))
