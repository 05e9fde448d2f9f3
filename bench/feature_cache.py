"""Feature cache speed-up: ppo_rgb.py with a frozen backbone, its rollout storing the backbone's features
(`--cache-features`, the default with `--freeze-encoder`) vs storing images and re-running the backbone in
every update epoch (`--no-cache-features`). Docs: docs/encoders.md#feature-cache-ppo_rgbpy-cpu

    python bench/feature_cache.py                                  # 2 pairs, frozen resnet18 at 224 px, CPU sim
    python bench/feature_cache.py --pairs 3 --notes "machine otherwise idle"

A pair is two runs back to back with the same flags, cache on then off, so both see about the same machine
load. Each run: `--total-timesteps` env steps of `--num-steps`-step rollouts, `--update-epochs` epochs,
no evaluation and no checkpoints. From its metrics.csv: update_s_mean and rollout_s_mean (seconds per
iteration, mean over the iterations) and sps_final (the last time/sps). One row per run is appended to
`--out`, with the exact command (the cache flag written as --[no-]cache-features), the device, commit,
versions and the 1-minute load average. docs/encoders.md renders the table from the CSV
(bench/reproduce.py --render): per pair, the update-phase speed-up of the cache.
"""

from __future__ import annotations

import shlex
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # `python bench/x.py` puts bench/ first on the path, not the repo root
    sys.path.insert(0, str(REPO_ROOT))

import tyro  # noqa: E402

from bench._shared import append_rows, load1, machine_fields, read_rows, to_float  # noqa: E402
from cleanrl_style.lib.runs import UserError, check_positive, run  # noqa: E402

COLUMNS = (
    "device",
    "date",
    "commit",
    "script",
    "encoder",
    "input_size",
    "adapter",
    "num_envs",
    "num_steps",
    "update_epochs",
    "pair",
    "cache_features",
    "update_s_mean",
    "rollout_s_mean",
    "sps_final",
    "load1",
    "cpu_count",
    "command",
    "notes",
    "versions",
)
CACHE_FLAG = "--[no-]cache-features"


@dataclass
class Args:
    pairs: int = 2
    """pairs of runs (cache on, then off)"""
    env_id: str = "PushCube"
    encoder: str = "resnet18"
    """a timm backbone of lib/encoders.py (resnet18, dinov2-vits14) or nature"""
    encoder_image_size: Optional[int] = 224
    """a timm backbone's input size (frames are resized to it on the device); None for nature, which sees the
    camera image"""
    encoder_adapter: str = "linear"
    num_envs: int = 1
    num_steps: int = 16
    """rollout length per env"""
    update_epochs: int = 4
    num_minibatches: int = 2
    iterations: int = 4
    """rollouts per run (total env steps = iterations * num_envs * num_steps)"""
    image_size: int = 64
    """camera image size"""
    sim_backend: str = "auto"
    notes: str = ""
    """free text for every row, e.g. 'machine shared with a training run'"""
    out: str = "results/encoder_feature_cache_cpu.csv"
    """CSV the rows are appended to (relative paths are relative to the repository root)"""
    timeout: float = 1800.0
    """seconds one run may take"""


def command(args: Args, cache: bool, runs_dir: str) -> list[str]:
    steps = args.iterations * args.num_envs * args.num_steps
    return [
        *("cleanrl_style/ppo_rgb.py", "--env-id", args.env_id, "--num-envs", str(args.num_envs)),
        *("--image-size", str(args.image_size), "--total-timesteps", str(steps), "--num-steps", str(args.num_steps)),
        *("--update-epochs", str(args.update_epochs), "--num-minibatches", str(args.num_minibatches)),
        *("--max-episode-steps", str(args.num_steps), "--sim-backend", args.sim_backend, "--encoder", args.encoder),
        *(("--encoder-image-size", str(args.encoder_image_size)) if args.encoder_image_size else ()),
        *("--encoder-adapter", args.encoder_adapter),
        *("--freeze-encoder", "--cache-features" if cache else "--no-cache-features"),
        *("--eval-freq", "0", "--no-save-checkpoints", "--runs-dir", runs_dir, "--exp-name", "feature_cache"),
    ]


def timings(metrics_csv: Path) -> tuple[float, float, float]:
    """(update_s_mean, rollout_s_mean, sps_final) of one run's metrics.csv."""
    rows = read_rows(metrics_csv)

    def values(name: str) -> list[float]:
        return [to_float(r.get("value")) for r in rows if r.get("name") == name]

    update, rollout, sps = values("time/update_s"), values("time/rollout_s"), values("time/sps")
    if not (update and rollout and sps):
        raise UserError(f"{metrics_csv} has no time/update_s, time/rollout_s or time/sps rows", code=1)
    return statistics.fmean(update), statistics.fmean(rollout), sps[-1]


def main(args: Args) -> list[dict]:
    check_positive(args, "pairs", "num_envs", "num_steps", "update_epochs", "num_minibatches", "iterations")
    check_positive(args, "image_size", "encoder_image_size", "timeout")
    out = Path(args.out) if Path(args.out).is_absolute() else REPO_ROOT / args.out
    machine = machine_fields()
    rows = []
    with tempfile.TemporaryDirectory(prefix="feature_cache_") as tmp:
        for pair in range(1, args.pairs + 1):
            for cache in (True, False):
                runs_dir = Path(tmp) / f"pair{pair}_{'on' if cache else 'off'}"
                cmd = command(args, cache, str(runs_dir))
                p = subprocess.run(
                    [sys.executable, *cmd], cwd=REPO_ROOT, capture_output=True, text=True, timeout=args.timeout
                )
                if p.returncode != 0:
                    tail = (p.stderr.strip().splitlines() or ["no output"])[-1]
                    raise UserError(
                        f"ppo_rgb.py exited with {p.returncode} (pair {pair}, cache {cache}): {tail}", code=1
                    )
                (metrics,) = runs_dir.glob("*/metrics.csv")
                update_s, rollout_s, sps = timings(metrics)
                flag = "--cache-features" if cache else "--no-cache-features"
                row = dict(
                    machine,
                    script="ppo_rgb",
                    encoder=args.encoder,
                    input_size=args.encoder_image_size or args.image_size,
                    adapter="fc" if args.encoder == "nature" else args.encoder_adapter,
                    num_envs=args.num_envs,
                    num_steps=args.num_steps,
                    update_epochs=args.update_epochs,
                    pair=pair,
                    cache_features=cache,
                    update_s_mean=round(update_s, 4),
                    rollout_s_mean=round(rollout_s, 4),
                    sps_final=round(sps, 3),
                    load1=load1(),
                    command=shlex.join(c for c in cmd[: cmd.index("--eval-freq")] if c != flag) + f" {CACHE_FLAG}",
                    notes=args.notes,
                )
                rows.append(row)
                print(
                    f"feature_cache: pair {pair} cache {'on ' if cache else 'off'}: update {update_s:.3f} s/iter, "
                    f"rollout {rollout_s:.2f} s/iter, {sps:.2f} env steps/s (load1 {row['load1']})",
                    flush=True,
                )
    append_rows(out, COLUMNS, rows)
    print(f"feature_cache: appended {len(rows)} rows to {out}")
    return rows


if __name__ == "__main__":
    run(main, tyro.cli(Args))
