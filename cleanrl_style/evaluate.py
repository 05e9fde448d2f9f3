"""Evaluate a checkpoint written by any cleanrl_style script. Docs: docs/foundation.md

    python cleanrl_style/evaluate.py --checkpoint runs/<run>/best.pt --num-episodes 100 --seed 0 --video

Rebuilds the env from the checkpoint's own config (task, obs mode, image size, cameras,
controller, episode length), rebuilds the policy through the module of the script that wrote the
checkpoint (its `load_policy`), and runs the shared fair evaluation: no partial resets,
reconfiguration every reset, deterministic actions, episode i seeded with seed + i.
Writes eval_<checkpoint>_seed<S>.json (and .mp4 with --video) next to the checkpoint unless --out-dir;
never the training run's own final_eval.json, which stays as the run wrote it.

--variation clean | train | held-out scores a PickCube-v1 or PickCubeDR-v1 checkpoint on the clean
task, on the training randomization ranges (--sim-dr's, by default the checkpoint's own level, heavy
for a checkpoint trained without one) or on the held-out ranges (docs/generalization.md); the json is
then eval_<checkpoint>_seed<S>_<variation>.json.

    python cleanrl_style/evaluate.py --checkpoint runs/<run>/best.pt --variation held-out
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
import tyro

from cleanrl_style.lib import envs as envs_lib
from cleanrl_style.lib.checkpoints import check_obs_compatible, load_checkpoint, load_policy_checked, policy_loader
from cleanrl_style.lib.evaluation import evaluate, print_eval
from cleanrl_style.lib.runs import check_choice, check_positive, device_name, run, write_json
from cleanrl_style.lib.sim_dr import LEVELS, VARIATIONS, check_flags


@dataclass
class Args:
    checkpoint: str
    """path to a best.pt / last.pt written by one of the scripts"""
    num_episodes: int = 16
    """evaluation episodes"""
    seed: int = 0
    """episode i uses seed + i"""
    num_envs: Optional[int] = None
    """parallel eval envs (default: min(num_episodes, 16) on GPU, min(num_episodes, 2) on CPU)"""
    video: bool = False
    """save an mp4 of the first batch of episodes"""
    sim_backend: str = "auto"
    """auto, gpu or cpu"""
    max_episode_steps: Optional[int] = None
    """override the episode length stored in the checkpoint"""
    out_dir: Optional[str] = None
    """where eval_<checkpoint>_seed<S>.json / .mp4 go (default: the checkpoint's directory)"""
    variation: str = "clean"
    """clean | train | held-out: the task itself, the simulator randomization's training ranges, or its
    held-out ranges (PickCube / PickCubeDR checkpoints; docs/generalization.md)"""
    sim_dr: Optional[str] = None
    """light | heavy: whose training ranges --variation train uses (default: the checkpoint's --sim-dr;
    heavy for a checkpoint trained without simulator randomization)"""


def check_args(args: Args) -> None:
    """Every numeric flag, checked before anything starts (one line, exit 2)."""
    check_positive(args, "num_episodes", "num_envs", "max_episode_steps")
    check_choice("variation", args.variation, VARIATIONS)
    if args.sim_dr is not None:
        check_choice("sim-dr", args.sim_dr, LEVELS)


def main(args: Args) -> dict:
    check_args(args)
    backend = envs_lib.resolve_sim_backend(args.sim_backend)
    envs_lib.configure_torch_threads(backend)
    ckpt = load_checkpoint(args.checkpoint)
    policy_loader(ckpt)  # a checkpoint of no known script fails here, before any env starts
    spec = ckpt["env"]
    check_flags(spec["env_id"], None, args.variation)  # before any env starts: one line, exit 2
    out_dir = Path(args.out_dir) if args.out_dir else Path(args.checkpoint).resolve().parent
    num_envs = args.num_envs or min(args.num_episodes, 16 if backend == "gpu" else 2)
    env = envs_lib.make_env(
        spec["env_id"],
        num_envs,
        spec["obs_mode"],
        image_size=spec["image_size"],
        cameras=spec["cameras"],
        control_mode=spec["control_mode"],
        sim_backend=backend,
        partial_reset=False,
        reconfigure=True,
        max_episode_steps=args.max_episode_steps or spec["max_episode_steps"],
        video_dir=str(out_dir) if args.video else None,
        env_kwargs=spec.get("env_kwargs"),
        sim_dr=args.sim_dr,
        variation=args.variation,
    )
    env.reset(seed=args.seed)
    check_obs_compatible(ckpt, env)
    policy = load_policy_checked(ckpt, env.device, args.checkpoint)
    t0 = time.time()
    name = f"eval_{Path(args.checkpoint).stem}_seed{args.seed}"
    name += "" if args.variation == "clean" else f"_{args.variation}"
    metrics = evaluate(policy, env, args.num_episodes, seed=args.seed, video_name=name if args.video else None)
    env.close()
    metrics.update(
        checkpoint=str(args.checkpoint),
        script=ckpt["script"],
        env_id=env.env_id,
        checkpoint_env_id=spec["env_id"],
        variation=args.variation,
        sim_dr=(env.cfg.get("env_kwargs") or {}).get("sim_dr"),
        checkpoint_step=ckpt.get("step"),
        max_episode_steps=env.max_episode_steps,
        device=device_name(),
        wall_time_s=time.time() - t0,
    )
    path = out_dir / f"{name}.json"
    write_json(path, metrics)
    print_eval(metrics, f"{env.env_id} {args.variation} | {ckpt['script']} | {args.checkpoint}")
    print(f"wrote {path}" + (f" and {metrics['video']}" if metrics.get("video") else ""))
    return metrics


if __name__ == "__main__":
    with torch.no_grad():
        run(main, tyro.cli(Args))
