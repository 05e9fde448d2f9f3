"""PPO's clipped objective and its minibatch epochs, shared by ppo.py and ppo_rgb.py (the same
algorithm over two observation types). Docs: docs/ppo.md

The agent is anything with `get_action_and_value(obs, action) -> (action, logprob, entropy, value)`;
`args` carries clip_coef, clip_vloss, ent_coef, vf_coef, update_epochs, target_kl, max_grad_norm.
"""

from __future__ import annotations

import torch
import torch.nn as nn


def ppo_loss(agent, obs, actions, old_logprobs, advantages, returns, old_values, args):
    _, logprob, entropy, value = agent.get_action_and_value(obs, actions)
    logratio = logprob - old_logprobs
    ratio = logratio.exp()
    with torch.no_grad():
        approx_kl = ((ratio - 1) - logratio).mean()
        clipfrac = ((ratio - 1.0).abs() > args.clip_coef).float().mean()
    adv = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    pg_loss = torch.max(-adv * ratio, -adv * ratio.clamp(1 - args.clip_coef, 1 + args.clip_coef)).mean()
    if args.clip_vloss:
        v_clipped = old_values + (value - old_values).clamp(-args.clip_coef, args.clip_coef)
        v_loss = 0.5 * torch.max((value - returns) ** 2, (v_clipped - returns) ** 2).mean()
    else:
        v_loss = 0.5 * ((value - returns) ** 2).mean()
    ent = entropy.mean()
    loss = pg_loss - args.ent_coef * ent + args.vf_coef * v_loss
    return loss, dict(
        policy_loss=pg_loss.detach(),
        value_loss=v_loss.detach(),
        entropy=ent.detach(),
        approx_kl=approx_kl,
        clipfrac=clipfrac,
    )


def ppo_update(
    agent,
    optimizer,
    b_obs,
    b_actions,
    b_logprobs,
    b_adv,
    b_ret,
    b_val,
    args,
    minibatch_size: int,
    net_input=lambda o: o,
):
    """`args.update_epochs` epochs of clipped-PPO minibatch updates over a flattened rollout, stopping
    early when the approximate KL exceeds `args.target_kl`. `b_obs` is anything indexable by a
    minibatch index tensor (a tensor or a TensorDict); `net_input` turns that slice into what the
    agent takes. Returns (loss stats of the last minibatch, explained variance of the values)."""
    batch_size = b_adv.shape[0]
    stop = False
    for _ in range(args.update_epochs):
        perm = torch.randperm(batch_size, device=b_adv.device)
        for start in range(0, batch_size, minibatch_size):
            mb = perm[start : start + minibatch_size]
            loss, stats = ppo_loss(
                agent, net_input(b_obs[mb]), b_actions[mb], b_logprobs[mb], b_adv[mb], b_ret[mb], b_val[mb], args
            )
            if args.target_kl is not None and stats["approx_kl"] > args.target_kl:
                stop = True
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
            optimizer.step()
        if stop:
            break
    var_y = b_ret.var()
    explained_var = float("nan") if var_y == 0 else float(1 - (b_ret - b_val).var() / var_y)
    return stats, explained_var


def log_ppo_iteration(
    run_log,
    global_step: int,
    start_step: int,
    start_time: float,
    stats: dict,
    explained_var: float,
    optimizer,
    rollout_s: float,
    update_s: float,
    rollout_steps: int,
    episode_stats,
) -> None:
    """One iteration's losses/, charts/ and time/ metrics (time/sps counts this process's steps)."""
    import time

    sps = (global_step - start_step) / (time.time() - start_time)
    logs = {f"losses/{k}": v for k, v in stats.items()}
    logs.update(
        {
            "losses/explained_variance": explained_var,
            "charts/learning_rate": optimizer.param_groups[0]["lr"],
            "time/sps": sps,
            "time/rollout_s": rollout_s,
            "time/update_s": update_s,
            "time/env_fps": rollout_steps / rollout_s,
        }
    )
    logs.update(episode_stats.read())
    run_log.log(global_step, logs)
    run_log.progress(
        global_step,
        sps=f"{sps:.0f}",
        **({"train_success": logs["charts/success_once"]} if "charts/success_once" in logs else {}),
    )
