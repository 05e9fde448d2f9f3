"""How much of a BC start's success survives SAC's exploration noise. Docs: docs/finetune.md#exploration

    python bench/explore_noise.py --checkpoint runs/ft/bc/seed1/<run>/last.pt --log-std none -3 --noise-scale 0 1 0.3

Loads a bc.py --policy gaussian checkpoint into sac_rgb.py's policy exactly as `--init-from` does (with
`--init-log-std` for a number given to --log-std; `none` keeps the std the BC actor happens to have) and
runs evaluation episodes (the fair protocol of lib/evaluation.py) acting with tanh(mean + s * std * noise)
for each noise scale s (0: the deterministic policy evaluate.py uses; 1: what SAC samples while
exploring). One row per (log-std, noise scale) is appended to --out.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
import tyro

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import _shared  # noqa: E402
from cleanrl_style import sac_rgb  # noqa: E402  (bench scripts may import scripts; scripts never do)
from cleanrl_style.lib import finetune  # noqa: E402
from cleanrl_style.lib.checkpoints import load_checkpoint  # noqa: E402
from cleanrl_style.lib.envs import make_env  # noqa: E402
from cleanrl_style.lib.evaluation import evaluate  # noqa: E402
from cleanrl_style.lib.runs import UserError, run  # noqa: E402

COLUMNS = (
    "device",
    "date",
    "commit",
    "checkpoint",
    "log_std",
    "noise_scale",
    "mean_std",
    "episodes",
    "seed",
    "success_once",
    "success_at_end",
    "command",
)


@dataclass
class Args:
    checkpoint: str
    """a bc.py --policy gaussian checkpoint from rgb (what sac_rgb.py --init-from takes)"""
    log_std: tuple[str, ...] = ("none", "-3")
    """log-stds to set (--init-log-std), or none for the BC actor's own"""
    noise_scale: tuple[float, ...] = (0.0, 1.0)
    """multipliers of the policy's std for the sampled actions (0 = deterministic)"""
    num_episodes: int = 8
    """evaluation episodes per setting"""
    seed: int = 7_000_000
    """episode i uses seed + i (never a demo or training-evaluation seed)"""
    num_envs: int = 1
    """evaluation envs (CPU: one per process)"""
    out: str = "results/finetune_exploration.csv"
    """CSV the rows are appended to"""


def measure(args: Args, log_std: Optional[float], scale: float) -> dict:
    ckpt = load_checkpoint(args.checkpoint)
    e = ckpt["env"]
    spec = finetune.init_spec(
        args.checkpoint,
        "sac_rgb",
        dict(
            env_id=e["env_id"],
            obs_mode=e["obs_mode"],
            control_mode=e["control_mode"],
            obs_shapes=e["obs_shapes"],
            action_dim=e["action_dim"],
        ),
    )
    c, h, w = e["obs_shapes"]["rgb"]
    policy = sac_rgb.PixelPolicy(
        c,
        h,
        w,
        spec["state_dim"],
        e["action_dim"],
        spec["feature_dim"],
        spec["hidden_dim"],
        e["obs_shapes"]["state"][0],
    )
    finetune.load_init(spec, policy, log_std)
    env = make_env(
        e["env_id"],
        args.num_envs,
        e["obs_mode"],
        image_size=e["image_size"],
        cameras=e["cameras"],
        control_mode=e["control_mode"],
        sim_backend="cpu" if not torch.cuda.is_available() else "auto",
        partial_reset=False,
        reconfigure=True,
        max_episode_steps=e["max_episode_steps"],
    )
    stds = []

    @torch.no_grad()
    def act(obs):
        mean, ls = policy.actor(policy.encoder(obs["rgb"].to("cpu"), obs["state"].to("cpu")))
        stds.append(float(ls.exp().mean()))
        u = mean + scale * ls.exp() * torch.randn_like(mean)
        return torch.tanh(u) * policy.actor.action_scale + policy.actor.action_bias

    try:
        m = evaluate(act, env, args.num_episodes, seed=args.seed)
    finally:
        env.close()
    return dict(
        _shared.machine_fields(),
        checkpoint=args.checkpoint,
        log_std="none" if log_std is None else log_std,
        noise_scale=scale,
        mean_std=sum(stds) / len(stds),
        episodes=m["episodes"],
        seed=args.seed,
        success_once=m["success_once"],
        success_at_end=m["success_at_end"],
        command=" ".join(sys.argv),
    )


def main(args: Args) -> list[dict]:
    if args.num_episodes < 1 or args.num_envs < 1:
        raise UserError("--num-episodes and --num-envs must be >= 1")
    torch.set_num_threads(1)
    rows = []
    for ls in args.log_std:
        try:
            log_std = None if ls == "none" else float(ls)
        except ValueError as e:
            raise UserError(f"--log-std takes numbers or none (got '{ls}')") from e
        for scale in args.noise_scale:
            row = measure(args, log_std, scale)
            print(
                f"log_std={row['log_std']} noise_scale={scale:g} (mean std {row['mean_std']:.3f}): "
                f"success_once {row['success_once']:.3f}, at end {row['success_at_end']:.3f} "
                f"({row['episodes']} episodes)",
                flush=True,
            )
            _shared.append_rows(args.out, COLUMNS, [row])
            rows.append(row)
    return rows


if __name__ == "__main__":
    run(main, tyro.cli(Args))
