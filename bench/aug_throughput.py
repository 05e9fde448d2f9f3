"""Augmentation throughput: images/s of the DrQ random shift implemented three ways, plus the full
shift+color pipeline of cleanrl_style/augment.py. Docs: docs/sac.md

    python bench/aug_throughput.py                       # CUDA if present, else CPU
    python bench/aug_throughput.py --device cpu --batches 256

impl:
  gather        augment.random_shift: one gather with clamped indices, uint8 in/out (used by sac_rgb.py)
  grid_sample   DrQ-v2's formulation: replicate pad + bilinear grid_sample at integer offsets (float)
  kornia        kornia.augmentation.RandomCrop(padding=4, padding_mode="replicate") (float)
  shift+color   augment.Augmentation("shift+color"): gather shift + colour jitter + noise, uint8 in/out

Every impl takes a uint8 (B, 3, H, W) batch on the device and returns uint8 (the float impls
include their conversions, as a training loop would pay them). Rows are appended to
results/aug_throughput.csv with device, date, commit and the 1-minute load average (load1):
numbers taken on a busy machine are recognisable by it.
"""

from __future__ import annotations

import csv
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # `python bench/x.py` puts bench/ first on the path, not the repo root
    sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import tyro  # noqa: E402

from cleanrl_style.lib import augment  # noqa: E402
from cleanrl_style.lib.runs import UserError, device_name, git_commit, run  # noqa: E402


# ----------------------------------------------------------------------------- reference shifts
# The formulations the gather shift (lib/augment.py) is measured against.
def random_shift_grid_sample(
    x: torch.Tensor, pad: int = 4, generator: Optional[torch.Generator] = None
) -> torch.Tensor:
    """DrQ-v2's formulation (replicate pad, then bilinear `grid_sample` at integer offsets), kept
    as the reference the other implementations are benchmarked against (bench/aug_throughput.py).
    Works for non-square images. uint8 in, uint8 out."""
    augment._check_images(x)
    b, c, h, w = x.shape
    xp = F.pad(x.float(), (pad, pad, pad, pad), mode="replicate")
    hp, wp = h + 2 * pad, w + 2 * pad
    # pixel-centre coordinates of the un-shifted crop in the padded image's [-1, 1] frame
    ys = (torch.arange(h, device=x.device, dtype=torch.float32) + pad + 0.5) * (2.0 / hp) - 1.0
    xs = (torch.arange(w, device=x.device, dtype=torch.float32) + pad + 0.5) * (2.0 / wp) - 1.0
    base = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)  # (H, W, 2) as (x, y)
    shift = augment.sample_shifts(b, pad, x.device, generator).flip(1).float()  # (dx, dy)
    shift = shift * torch.tensor([2.0 / wp, 2.0 / hp], device=x.device)
    grid = base[None] + shift[:, None, None, :]
    out = F.grid_sample(xp, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return augment._to_uint8(out)


_KORNIA_CROPS: dict = {}


def random_shift_kornia(x: torch.Tensor, pad: int = 4) -> torch.Tensor:
    """The same augmentation through kornia (`RandomCrop` with replicate padding). kornia works in
    float and draws from torch's global RNG. uint8 in, uint8 out."""
    import kornia.augmentation as K

    augment._check_images(x)
    h, w = x.shape[-2:]
    key = (h, w, pad)
    if key not in _KORNIA_CROPS:
        _KORNIA_CROPS[key] = K.RandomCrop((h, w), padding=pad, padding_mode="replicate")
    return augment._to_uint8(_KORNIA_CROPS[key](x.float()))


COLUMNS = ("device", "date", "commit", "impl", "res", "batch", "images_per_s", "load1")
IMPLS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gather": lambda x: augment.random_shift(x, 4),
    "grid_sample": lambda x: random_shift_grid_sample(x, 4),
    "kornia": lambda x: random_shift_kornia(x, 4),
    "shift+color": augment.Augmentation("shift+color"),
}


@dataclass
class Args:
    resolutions: tuple[int, ...] = (64, 128)
    """square image sizes"""
    batches: tuple[int, ...] = (256, 1024)
    """batch sizes"""
    impls: tuple[str, ...] = tuple(IMPLS)
    """implementations to time: gather, grid_sample, kornia, shift+color"""
    device: str = "auto"
    """auto (cuda if present), cuda or cpu"""
    min_time: float = 1.0
    """seconds of timed calls per measurement (after 2 warm-up calls)"""
    out: str = "results/aug_throughput.csv"
    """CSV the rows are appended to (relative paths are relative to the repository root)"""
    seed: int = 0
    """seed of the input images and the augmentation RNG"""


def images_per_second(fn, x: torch.Tensor, min_time: float) -> float:
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    for _ in range(2):
        fn(x)
    sync()
    calls, start = 0, time.perf_counter()
    while True:
        fn(x)
        calls += 1
        sync()
        elapsed = time.perf_counter() - start
        if elapsed >= min_time and calls >= 3:
            return calls * x.shape[0] / elapsed


def append_rows(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists() or path.stat().st_size == 0
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        if new:
            w.writeheader()
        w.writerows(rows)


def main(args: Args) -> list[dict]:
    unknown = [i for i in args.impls if i not in IMPLS]
    if unknown:
        raise UserError(f"unknown --impls {unknown}; choose from {', '.join(IMPLS)}")
    if args.device not in ("auto", "cuda", "cpu"):
        raise UserError(f"--device must be auto, cuda or cpu (got '{args.device}')")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda needs CUDA")
    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else device_name()
    commit, out = git_commit(), Path(args.out)
    out = out if out.is_absolute() else REPO_ROOT / out
    rows = []
    torch.manual_seed(args.seed)
    for res in args.resolutions:
        for batch in args.batches:
            x = torch.randint(0, 256, (batch, 3, res, res), dtype=torch.uint8, device=device)
            for impl in args.impls:
                ips = images_per_second(IMPLS[impl], x, args.min_time)
                row = dict(
                    device=dev_name,
                    date=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    commit=commit,
                    impl=impl,
                    res=res,
                    batch=batch,
                    images_per_s=round(ips, 1),
                    load1=round(os.getloadavg()[0], 2),
                )
                rows.append(row)
                print(
                    f"{impl:>12}  {res:>4}x{res:<4} batch {batch:>5}: {ips:>12,.0f} images/s  (load1 {row['load1']})",
                    flush=True,
                )
    append_rows(out, rows)
    print(f"appended {len(rows)} rows to {out}")
    return rows


if __name__ == "__main__":
    run(main, tyro.cli(Args))
