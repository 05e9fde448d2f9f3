"""Video: tile the frames of a batch of envs into one image, write mp4s without killing a run."""

from __future__ import annotations

import math
import os
import sys
from typing import Optional, Sequence

import numpy as np


def tile_images(imgs: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) -> one (rows*H, cols*W, 3) grid, as square as possible."""
    n, h, w, c = imgs.shape
    cols = int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / cols))
    grid = np.zeros((rows * h, cols * w, c), dtype=imgs.dtype)
    for i in range(n):
        r, q = divmod(i, cols)
        grid[r * h : (r + 1) * h, q * w : (q + 1) * w] = imgs[i]
    return grid


def write_video(path: str, frames: Sequence[np.ndarray], fps: int = 20) -> Optional[str]:
    """mp4 via imageio-ffmpeg, written to a temp file and renamed. Without an mp4 writer it warns
    and returns None instead of failing the run."""
    path = str(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path[:-4] + ".tmp.mp4"
    writer = None
    try:
        import imageio.v2 as imageio

        writer = imageio.get_writer(tmp, fps=fps, codec="libx264", quality=7, macro_block_size=1)
        for f in frames:
            writer.append_data(np.asarray(f, dtype=np.uint8))
        writer.close()
    except Exception as e:  # noqa: BLE001  (missing ffmpeg must not kill a training run)
        print(f"warning: could not write video {path}: {e}", file=sys.stderr)
        if writer is not None:  # imageio's __exit__ skips close() on error: stop ffmpeg before deleting
            try:
                writer.close()
            except Exception:  # noqa: BLE001
                pass
        if os.path.exists(tmp):
            os.remove(tmp)
        return None
    os.replace(tmp, path)
    return path
