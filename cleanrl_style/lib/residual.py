"""Residual RL on a frozen base policy (sac_rgb.py `--residual-of CKPT`). Docs: docs/finetune.md#residual

The base is any policy evaluate.py can run (typically a bc.py action-chunking policy, which a single-step
Gaussian BC policy cannot match on motion-planning demos); it stays frozen. SAC learns a bounded correction
on top of it: the executed action is clip(base(obs) + r(obs, base(obs))), with r in [-scale, scale]. The
learner sees the base action as part of its state (the env state with the base action appended), so the
critics, the replay buffer and the updates are SAC's own over an augmented observation, and the residual
action is what they store and optimise. The residual's mean head starts at zero (nets.Actor.zero_mean):
before any update the policy is the base policy itself (the first point of the curve).

The base may be stateful (observation history, temporal ensembling of chunks): it is called once per env
step in order and `reset()` when the episodes end. That needs every env to end its episode at the same
step, which holds without partial resets (sac_rgb.py's default). Training and evaluation each load their
own copy, so an evaluation never disturbs the training episodes' base state.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn as nn

from cleanrl_style.lib.checkpoints import check_obs_compatible, load_checkpoint, load_policy_checked
from cleanrl_style.lib.runs import UserError

CKPT_KEY = "residual_base"  # checkpoint["extra"][CKPT_KEY]: the base checkpoint, carried inside


def load_base(path: str, env: Any, control_mode: str, device: torch.device) -> tuple[Callable, dict]:
    """The frozen base policy of `--residual-of path` and its checkpoint (without training state), checked
    against the training env: task, control mode, observation shapes and action dim."""
    ckpt = load_checkpoint(path, map_location=device)
    where = f"--residual-of {path}"
    if CKPT_KEY in ckpt.get("extra", {}):
        raise UserError(f"{where} is itself a residual policy; use its base checkpoint", code=1)
    spec = ckpt["env"]
    if spec.get("env_id") != env.env_id:
        raise UserError(f"{where} was trained on {spec.get('env_id')}, this run trains {env.env_id}", code=1)
    if spec.get("control_mode") != control_mode:
        raise UserError(
            f"{where} acts in control mode '{spec.get('control_mode')}', this run uses '{control_mode}' "
            f"(--control-mode): its actions would mean something else",
            code=1,
        )
    try:
        check_obs_compatible(ckpt, env)
    except UserError as e:
        raise UserError(f"{where}: {e}", code=1) from e
    base_ckpt = {k: v for k, v in ckpt.items() if k != "train_state"}
    return base_from_checkpoint(base_ckpt, device, path), base_ckpt


def base_from_checkpoint(base_ckpt: dict, device: torch.device, path: str = "the embedded base") -> Callable:
    policy = load_policy_checked(base_ckpt, device, path)
    if isinstance(policy, nn.Module):
        policy.requires_grad_(False)
    return policy


def augment(obs: dict, base_action: torch.Tensor) -> dict:
    """The learner's observation: the env's, with the base action appended to the state."""
    return dict(obs, state=torch.cat([obs["state"], base_action.to(obs["state"].device, obs["state"].dtype)], -1))


class ResidualPolicy(nn.Module):
    """The deployable policy: base action plus the residual's deterministic correction, clipped to the
    env's bounds. `reset()` resets the base (evaluate() calls it after every env reset)."""

    def __init__(self, base: Callable, residual: Callable[[dict], torch.Tensor], low: torch.Tensor, high: torch.Tensor):
        super().__init__()
        self.base, self.residual = base, residual
        self.register_buffer("low", torch.as_tensor(low, dtype=torch.float32).clone())
        self.register_buffer("high", torch.as_tensor(high, dtype=torch.float32).clone())

    def reset(self) -> None:
        if hasattr(self.base, "reset"):
            self.base.reset()

    @torch.no_grad()
    def forward(self, obs: dict) -> torch.Tensor:
        base_action = self.base(obs)
        correction = self.residual(augment(obs, base_action))
        return combine(base_action, correction, self.low, self.high)


def combine(base_action: torch.Tensor, correction: torch.Tensor, low: torch.Tensor, high: torch.Tensor):
    """The executed action: base + correction, inside the env's action bounds."""
    dev = base_action.device
    return torch.clamp(base_action + correction.to(dev), low.to(dev), high.to(dev))


def check_episodes_end_together(done: torch.Tensor) -> bool:
    """True when the episodes ended at this step (all of them); a stateful base needs them in step."""
    if not bool(done.any()):
        return False
    if not bool(done.all()):
        raise UserError(
            "--residual-of: some envs ended their episode while others went on, so the base policy's state "
            "(history, chunks) cannot be reset per env; run with --no-partial-reset (sac_rgb.py's default)",
            code=1,
        )
    return True
