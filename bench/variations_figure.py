"""The first frames of PickCubeDR-v1 under each variation, as one PNG grid for docs/generalization.md.

    python bench/variations_figure.py                       # -> docs/figures/variations.png
    python bench/variations_figure.py --per-row 8 --size 160 --seed 100
    python bench/variations_figure.py --table                # print the ranges table of docs/generalization.md

One row per setting: clean (PickCube-v1 itself), train at --sim-dr light, train at heavy, held-out;
`--per-row` episodes each, episode i of a row seeded with --seed + i, exactly what the evaluation
protocol's envs show a policy (make_env(reconfigure=True), the sensor camera at --size pixels). Next to
the PNG goes <out>.json with the drawn values of every tile (hues, patterns, light, camera offsets). The
same seeds give the same bytes (Pillow, no timestamp), on the same renderer.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tyro

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from cleanrl_style.lib.envs import make_env, resolve_sim_backend  # noqa: E402
from cleanrl_style.lib.runs import UserError, atomic_write_bytes, atomic_write_text, run  # noqa: E402
from cleanrl_style.lib.sim_dr import ranges_markdown  # noqa: E402

ROWS = (("clean", "off", "clean"), ("train light", "light", "train"), ("train heavy", "heavy", "train"))
ROWS += (("held-out", "off", "held-out"),)
KEEP = (
    "cube_hue",
    "table_hue",
    "table_pattern",
    "floor_hue",
    "floor_pattern",
    "ambient",
    "light_tint",
    "key_intensity",
    "fill_intensity",
    "key_azimuth_deg",
    "key_elevation_deg",
    "fov_deg",
    "camera_eye_m",
    "camera_target_m",
)


@dataclass
class Args:
    out: str = "docs/figures/variations.png"
    """the PNG to write (its .json next to it)"""
    per_row: int = 6
    """episodes (tiles) per row"""
    size: int = 128
    """camera resolution of each tile, pixels"""
    seed: int = 2_000_000
    """tile i of every row uses seed + i (default: the final-evaluation seeds of a --seed 0 run)"""
    sim_backend: str = "cpu"
    """cpu or gpu (the renderer decides the exact bytes)"""
    label_width: int = 96
    """pixels left of each row for its name"""
    table: bool = False
    """print the markdown table of the randomization ranges (lib/sim_dr.ranges_markdown) and exit"""


def first_frames(level: str, variation: str, seeds: list[int], size: int, backend: str) -> tuple[list, list]:
    """(frames (H, W, 3) uint8, drawn values) of the first step of each seeded episode."""
    env = make_env(
        "PickCubeDR",
        1,
        "rgb",
        image_size=size,
        sim_backend=backend,
        partial_reset=False,
        reconfigure=True,
        sim_dr=level,
        variation=variation,
    )
    frames, draws = [], []
    try:
        for s in seeds:
            obs, _ = env.reset(seed=s)
            frames.append(obs["rgb"][0, :3].permute(1, 2, 0).cpu().numpy())
            base = env.env.envs[0].unwrapped if hasattr(env.env, "envs") else env.env.unwrapped
            params = base.dr_params[0] if base.dr_params else {}
            draws.append({k: (round(v, 4) if isinstance(v, float) else v) for k, v in params.items() if k in KEEP})
    finally:
        env.close()
    return frames, draws


def compose(rows: list[tuple[str, list[np.ndarray]]], label_width: int, gap: int = 2) -> bytes:
    """The rows of frames with their names on the left, as PNG bytes."""
    import io

    from PIL import Image, ImageDraw

    h, w = rows[0][1][0].shape[:2]
    n = max(len(frames) for _, frames in rows)
    canvas = Image.new("RGB", (label_width + n * (w + gap), len(rows) * (h + gap) - gap), "white")
    draw = ImageDraw.Draw(canvas)
    for r, (name, frames) in enumerate(rows):
        y = r * (h + gap)
        draw.text((6, y + h // 2 - 6), name, fill="black")
        for c, frame in enumerate(frames):
            canvas.paste(Image.fromarray(frame), (label_width + c * (w + gap), y))
    buf = io.BytesIO()
    canvas.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def main(args: Args):
    if args.table:
        print(ranges_markdown())
        return None
    if args.per_row < 1 or args.size < 16:
        raise UserError("--per-row must be >= 1 and --size >= 16")
    backend = resolve_sim_backend(args.sim_backend)
    seeds = [args.seed + i for i in range(args.per_row)]
    rows, meta = [], dict(seeds=seeds, size=args.size, sim_backend=backend, rows={})
    for name, level, variation in ROWS:
        frames, draws = first_frames(level, variation, seeds, args.size, backend)
        rows.append((name, frames))
        meta["rows"][name] = dict(sim_dr=level, variation=variation, draws=draws)
        print(f"variations_figure: {name}: {len(frames)} frames", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, compose(rows, args.label_width))
    atomic_write_text(out.with_suffix(".json"), json.dumps(meta, indent=1) + "\n")
    print(f"variations_figure: wrote {out} ({out.stat().st_size // 1024} KB) and {out.with_suffix('.json').name}")
    return out


if __name__ == "__main__":
    run(main, tyro.cli(Args))
