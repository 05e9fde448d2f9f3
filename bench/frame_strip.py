"""A frame strip of an evaluation video for the README: evenly spaced frames side by side, one small PNG.
Docs: README.md#demo, docs/report.md#6-videos

    python cleanrl_style/evaluate.py --checkpoint runs/<run>/best.pt --num-episodes 2 --seed 0 --video
    python bench/frame_strip.py runs/<run>/eval_best_seed0.mp4            # -> docs/figures/demo_strip.png
    python bench/frame_strip.py VIDEO.mp4 --frames 8 --height 96 --out docs/figures/demo_strip.png

Frames are taken at evenly spaced indices over the whole video (or --first/--last), scaled to --height
pixels, placed left to right with a thin gap and written as a PNG (Pillow, no timestamp in the file: the
same video gives the same bytes). Next to the PNG goes <out>.json: the video's file name, the frame
indices, and, when evaluate.py's json of the same name lies next to the video, what it measured (task,
script, checkpoint step, success_once, success_at_end, episodes, device) so the README caption is
rendered from it (`bench/make_report.py`). A strip over --max-kb is refused (one line, exit 1).
"""

from __future__ import annotations

import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import tyro

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import _shared  # noqa: E402
from cleanrl_style.lib.runs import UserError, atomic_write_bytes, atomic_write_text, run  # noqa: E402

EVAL_KEYS = ("env_id", "script", "checkpoint_step", "success_once", "success_at_end", "episodes", "device", "seed")


@dataclass
class Args:
    video: tyro.conf.Positional[str]
    """an mp4 written by evaluate.py --video (or any mp4)"""
    out: str = "docs/figures/demo_strip.png"
    """the PNG to write; <out without .png>.json gets the provenance"""
    frames: int = 6
    """number of frames in the strip"""
    height: int = 128
    """height of each frame in the strip, pixels (the width keeps the aspect ratio)"""
    first: int = 0
    """first frame index to sample from"""
    last: Optional[int] = None
    """last frame index to sample from (default: the video's last frame)"""
    gap: int = 2
    """white pixels between frames"""
    max_kb: int = 300
    """refuse to write a strip larger than this (the README must stay light)"""
    label: Optional[str] = None
    """a few words on which policy this is (e.g. its run and where its full evaluation is), for the caption"""


def read_frames(path: Path) -> np.ndarray:
    """All frames of a video as (T, H, W, 3) uint8."""
    import imageio.v3 as iio

    if not path.is_file():
        raise UserError(f"video not found: {path}")
    try:
        frames = np.asarray(iio.imread(path, index=None))
    except Exception as e:  # noqa: BLE001  (a broken or foreign file: one line)
        raise UserError(f"cannot read video {path}: {type(e).__name__}: {e}", code=1) from e
    if frames.ndim != 4 or frames.shape[0] == 0:
        raise UserError(f"{path}: expected a video of RGB frames, got an array of shape {frames.shape}", code=1)
    return frames[..., :3].astype(np.uint8)


def pick_indices(num_frames: int, k: int, first: int = 0, last: Optional[int] = None) -> list[int]:
    """k indices evenly spaced over [first, last], ends included, without repeats."""
    last = num_frames - 1 if last is None else min(last, num_frames - 1)
    if not 0 <= first <= last:
        raise UserError(f"--first {first} / --last {last} select no frame of a {num_frames}-frame video")
    if k == 1:
        return [first]
    return list(dict.fromkeys(round(first + i * (last - first) / (k - 1)) for i in range(k)))


def strip(frames: np.ndarray, indices: list[int], height: int, gap: int) -> np.ndarray:
    """The selected frames scaled to `height`, left to right, separated by `gap` white columns."""
    from PIL import Image

    tiles = []
    for i in indices:
        img = Image.fromarray(frames[i])
        width = max(1, round(img.width * height / img.height))
        tiles.append(np.asarray(img.resize((width, height), Image.Resampling.LANCZOS)))
    total = sum(t.shape[1] for t in tiles) + gap * (len(tiles) - 1)
    out = np.full((height, total, 3), 255, dtype=np.uint8)
    x = 0
    for t in tiles:
        out[:, x : x + t.shape[1]] = t
        x += t.shape[1] + gap
    return out


def png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def eval_record(video: Path) -> Optional[dict]:
    """What evaluate.py measured for this video: its json of the same name, if it is next to the video."""
    cands = [video.with_suffix(".json")] + sorted(video.parent.glob(f"{video.stem}_*.json"))
    for c in cands:
        if c.is_file():
            try:
                data = json.loads(c.read_text())
            except ValueError:
                continue
            keep = {k: data[k] for k in EVAL_KEYS if k in data}
            keep["checkpoint"] = Path(str(data.get("checkpoint", ""))).name
            if "seed" not in keep and data.get("seeds"):  # evaluate.py records every episode's seed
                keep["seed"] = data["seeds"][0]
            keep["eval_json"] = c.name
            return keep
    return None


def main(args: Args) -> dict:
    if args.frames < 1 or args.height < 8 or args.gap < 0 or args.max_kb < 1:
        raise UserError("--frames must be >= 1, --height >= 8, --gap >= 0, --max-kb >= 1")
    video = Path(args.video)
    frames = read_frames(video)
    indices = pick_indices(len(frames), args.frames, args.first, args.last)
    data = png_bytes(strip(frames, indices, args.height, args.gap))
    if len(data) > args.max_kb * 1024:
        raise UserError(
            f"the strip would be {len(data) // 1024} KB, over --max-kb {args.max_kb}: use fewer --frames or a "
            "smaller --height",
            code=1,
        )
    out = Path(args.out)
    atomic_write_bytes(out, data)
    meta = dict(video=video.name, frames=indices, num_video_frames=len(frames), height=args.height)
    if args.label:
        meta["label"] = args.label
    record = eval_record(video)
    if record:
        meta["eval"] = record
    meta_path = out.with_suffix(".json")
    atomic_write_text(meta_path, json.dumps(meta, indent=1, sort_keys=True) + "\n")
    print(
        f"frame_strip: {len(indices)} frames of {video.name} -> {_rel(out)} ({len(data) // 1024} KB), {_rel(meta_path)}"
    )
    return dict(out=out, meta=meta, bytes=len(data))


def _rel(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(_shared.REPO_ROOT))
    except ValueError:
        return str(p)


if __name__ == "__main__":
    run(main, tyro.cli(Args))
