"""Returns and targets: the hand-tested maths of what a value is trained towards.

Bootstrapping rules (docs/foundation.md#bootstrapping): a target bootstraps from the value of the
real final observation on truncation (time limit), never from a terminal state; `bootstrap_flags`
with mode "always" (the RL scripts' default) treats ManiSkill's success terminations as truncations.
"""

from __future__ import annotations

import torch

from cleanrl_style.lib.runs import UserError


def bootstrap_flags(terminated: torch.Tensor, truncated: torch.Tensor, mode: str):
    """(terminated, truncated) as the learner's value targets should see them.

    ManiSkill tasks end an episode (terminated) at success, and their dense rewards pay their
    maximum there. With mode "truncation" (time-limit semantics: bootstrap only when the time limit
    cut the episode) a success ends the return, so hovering next to success until the time limit
    returns more than succeeding, and the policy learns to stop short (measured on PushCube: training
    return up, episode length up, success down). Mode "always" (the default of the RL scripts, as in
    ManiSkill's own ppo.py / sac.py) treats every episode end as a truncation: the target bootstraps
    from the value of the real final observation. Episode statistics keep the env's own flags."""
    if mode == "always":
        return torch.zeros_like(terminated), terminated | truncated
    if mode == "truncation":
        return terminated, truncated
    raise UserError(f"--bootstrap-at-done must be 'always' or 'truncation', got {mode!r}")


def compute_gae(rewards, values, next_values, terminated, dones, gamma: float, gae_lambda: float):
    """Generalized advantage estimation over a (T, N) rollout.

    next_values[t] is V of the observation that followed step t *in the same episode*: the next
    rollout observation, or the value of `final_observation` where the episode ended at t.
    terminated[t]: the episode ended in a terminal state -> no bootstrap (V = 0).
    dones[t] = terminated | truncated: the advantage recursion is cut at episode ends; a
    truncated step still bootstraps from V(final observation).
    Returns (advantages, returns), both (T, N)."""
    T = rewards.shape[0]
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(rewards[0])
    for t in reversed(range(T)):
        delta = rewards[t] + gamma * next_values[t] * (1.0 - terminated[t].float()) - values[t]
        last = delta + gamma * gae_lambda * (1.0 - dones[t].float()) * last
        advantages[t] = last
    return advantages, advantages + values


def nstep_return(
    rewards: torch.Tensor, terminated: torch.Tensor, ended: torch.Tensor, gamma: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """n-step return of a window of consecutive steps of one env, stopping at the first episode end.

    rewards, terminated, ended: (B, n) for steps t..t+n-1; `ended` = terminated | truncated.
    Returns (G, discount, k), each (B,):
      G        = sum_{j<=k} gamma^j r_{t+j}, where k is the first step in the window whose episode
                 ended (n-1 if none did);
      discount = gamma^(k+1) if the window ends without termination (bootstrap: truncation or no end),
                 0 if step k terminated (no bootstrap);
      k        = the step whose next observation is bootstrapped from (the real final observation
                 of the episode when step k was truncated).
    """
    b, n = rewards.shape
    ended_f = ended.float()
    # alive_j: no episode end strictly before step j of the window
    alive = torch.cat([torch.ones_like(ended_f[:, :1]), 1 - ended_f[:, :-1].cummax(dim=1).values], dim=1)
    powers = gamma ** torch.arange(n, device=rewards.device, dtype=rewards.dtype)
    g = (rewards * alive * powers).sum(1)
    k = (alive.sum(1) - 1).long()  # last alive step = first ended step, or n-1
    term_k = terminated.gather(1, k[:, None]).squeeze(1) & ended.gather(1, k[:, None]).squeeze(1)
    discount = torch.where(term_k, torch.zeros_like(g), gamma ** (k.to(rewards.dtype) + 1))
    return g, discount, k


def soft_td_target(
    returns: torch.Tensor, discount: torch.Tensor, next_q: torch.Tensor, next_log_prob: torch.Tensor, alpha
) -> torch.Tensor:
    """SAC's target: G + discount * (min_i Q_target_i(s', a') - alpha * log pi(a'|s')), a' ~ pi(s').
    discount is 0 after a termination, so nothing is bootstrapped there."""
    return returns + discount * (next_q - alpha * next_log_prob)


@torch.no_grad()
def final_obs_values(value_fn, final_obs, ended: torch.Tensor) -> torch.Tensor:
    """V(final observation) where an episode ended this step, 0 elsewhere (N,). value_fn sees the whole
    batch every time: one input shape (no recompiles under --compile) and no masked indexing (which reads
    the mask back to the host: a device sync per step on the GPU)."""
    v = value_fn(final_obs)
    return torch.where(ended.to(v.device), v, torch.zeros_like(v))
