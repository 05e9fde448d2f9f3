"""Evaluation: the fair protocol every script shares, and training-episode statistics.

Protocol (ManiSkill's): dedicated eval envs made with partial_reset=False and reconfigure=True (the
scene is rebuilt at each batch's seeded reset, once per batch: lib/envs.make_env), deterministic
actions, episode i seeded with seed + i, metrics success_once, success_at_end, return, episode_len
per episode.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from cleanrl_style.lib.envs import VecEnv
from cleanrl_style.lib.runs import RunLogger, write_json

# ----------------------------------------------------------------------------- evaluation
EVAL_KEYS = ("success_once", "success_at_end", "return", "episode_len")


@torch.no_grad()
def evaluate(
    policy: Callable[[Any], torch.Tensor],
    env: VecEnv,
    num_episodes: int,
    seed: Optional[int] = None,
    video_name: Optional[str] = None,
) -> dict:
    """Run `num_episodes` episodes with a deterministic `policy(obs) -> action` (optionally with a
    `reset()` method, called after every env reset) on a dedicated
    eval env (made with partial_reset=False, reconfigure=True). Episode i uses seed
    `seed + i` when a seed is given. Returns mean metrics plus the per-episode lists; writes
    `<video_dir>/<video_name>.mp4` of the first batch of episodes when video_name is given."""
    if env.partial_reset:
        raise ValueError("evaluation env must be made with partial_reset=False")
    per_ep: dict[str, list[float]] = {k: [] for k in EVAL_KEYS}
    batch = 0
    video_path = None
    while len(per_ep["return"]) < num_episodes:
        record = video_name is not None and batch == 0 and env.video_dir is not None
        if record:
            env.start_video()
        obs, _ = env.reset(seed=None if seed is None else seed + batch * env.num_envs)
        if hasattr(policy, "reset"):  # stateful policies (frame stacks, action chunks) start fresh
            policy.reset()
        finished = torch.zeros(env.num_envs, dtype=torch.bool)
        while not finished.all():
            obs, _, _, _, info = env.step(policy(obs))
            if "_final_info" in info:
                mask = info["_final_info"].cpu() & ~finished
                ep = {k: v.cpu() for k, v in info["final_info"]["episode"].items()}
                for i in torch.nonzero(mask).flatten().tolist():
                    if len(per_ep["return"]) < num_episodes:
                        for k in EVAL_KEYS:
                            per_ep[k].append(float(ep[k][i]) if k in ep else float("nan"))
                finished |= mask
        if record:
            video_path = env.stop_video(video_name)
        batch += 1
    out: dict[str, Any] = {k: float(np.mean(v)) for k, v in per_ep.items()}
    out["episodes"] = len(per_ep["return"])
    out["per_episode"] = per_ep
    if seed is not None:
        out["seeds"] = [seed + i for i in range(out["episodes"])]
    if video_path:
        out["video"] = video_path
    return out


class EpisodeStats:
    """Training-episode metrics summed on the device (masked, no host reads) and read at log time."""

    def __init__(self):
        self.sums: dict[str, torch.Tensor] = {}
        self.count: Optional[torch.Tensor] = None

    def add(self, info: dict) -> None:
        if "final_info" not in info:
            return
        mask = info["_final_info"]
        for k, v in info["final_info"]["episode"].items():
            v = v.to(mask.device)
            s = torch.where(mask, v.float(), torch.zeros_like(v, dtype=torch.float32)).sum()
            self.sums[k] = self.sums[k] + s if k in self.sums else s
        c = mask.float().sum()
        self.count = c if self.count is None else self.count + c

    def read(self) -> dict:
        out = {}
        if self.count is not None and float(self.count) > 0:
            n = float(self.count)
            for k, v in self.sums.items():
                name = {"return": "episodic_return", "episode_len": "episodic_length"}.get(k, k)
                out[f"charts/{name}"] = float(v) / n
        self.sums, self.count = {}, None
        return out


class Evaluator:
    """The evaluation protocol every script shares, on the eval env the script made (its variation is the
    script's --eval-variation, clean by default: docs/generalization.md). `maybe_evaluate(step)` evaluates every
    `args.eval_freq` steps (env steps; gradient steps in bc.py) on fixed seeds (seed + 1_000_000 + i),
    logs `eval/*`, writes `last.pt`, and `best.pt` when success_once improves. `finish(step)`
    evaluates the last policy on seeds never used to pick a checkpoint (seed + 2_000_000 + i), writes
    final_eval.json (and the video with --capture-video) and prints the table.

    `save(path, step, eval_metrics, resumable)` writes one checkpoint (the script knows what goes
    in it); last.pt is resumable (it carries the training state), best.pt is not. `args` needs
    eval_freq, num_eval_episodes, seed, save_checkpoints and capture_video."""

    def __init__(
        self, run: RunLogger, env: VecEnv, policy: Callable, args: Any, save: Callable[[Path, int, dict, bool], None]
    ):
        self.run, self.env, self.policy, self.args, self.save = run, env, policy, args, save
        self.best_success, self.last_step = -1.0, 0
        self.start = time.time()

    def state(self) -> dict:
        """What a resumed run needs to keep selecting best.pt and spacing evaluations as before."""
        return dict(best_success=self.best_success, last_step=self.last_step)

    def load_state(self, state: dict) -> None:
        self.best_success, self.last_step = float(state["best_success"]), int(state["last_step"])

    def _save(self, name: str, step: int, metrics: dict) -> None:
        if self.args.save_checkpoints:
            self.save(self.run.dir / name, step, metrics, name == "last.pt")

    def maybe_evaluate(self, step: int, force: bool = False) -> Optional[dict]:
        a = self.args
        if not force and not (a.eval_freq and step - self.last_step >= a.eval_freq):
            return None
        self.last_step = step
        m = evaluate(self.policy, self.env, a.num_eval_episodes, seed=a.seed + 1_000_000)
        self.run.log(step, {f"eval/{k}": m[k] for k in EVAL_KEYS})
        self.run.progress(step, eval_success=m["success_once"])
        if m["success_once"] > self.best_success:
            self.best_success = m["success_once"]
            self._save("best.pt", step, m)
        self._save("last.pt", step, m)  # after best_success is updated: a resumed run keeps it
        return m

    def finish(self, step: int, extra: Optional[dict] = None) -> dict:
        """`extra`: script-specific fields stored in final_eval.json with the metrics."""
        a = self.args
        final = evaluate(
            self.policy,
            self.env,
            a.num_eval_episodes,
            seed=a.seed + 2_000_000,
            video_name="final_eval" if a.capture_video else None,
        )
        variation = (self.env.cfg.get("env_kwargs") or {}).get("variation", "clean")  # --eval-variation
        final.update(
            checkpoint="last.pt",
            step=step,
            env_id=self.env.env_id,
            variation=variation,
            wall_time_s=time.time() - self.start + self.run.wall_offset,
            **(extra or {}),
        )
        write_json(self.run.dir / "final_eval.json", final)
        print_eval(final, f"final evaluation ({self.env.env_id} {variation}, last policy)")
        return final


def print_eval(metrics: dict, title: str = "evaluation") -> None:
    print(f"{title}: {metrics['episodes']} episodes")
    for k in EVAL_KEYS:
        print(f"  {k:<15} {metrics[k]:.3f}")
