"""PPO from privileged state on ManiSkill3 tasks, CleanRL style. Docs: docs/ppo.md

    python cleanrl_style/ppo.py --env-id PickCube                      # GPU: 512 envs
    python cleanrl_style/ppo.py --env-id PushCube --num-envs 4 --total-timesteps 200_000   # CPU

Reads top to bottom: Args, networks (with running obs normalization), GAE, PPO loss, main loop.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal, Optional

import numpy as np
import torch
import torch.nn as nn
import tyro
from torch.distributions.normal import Normal

from cleanrl_style import common


@dataclass
class Args:
    env_id: str = "PickCube"
    """ManiSkill task id; short names like PickCube resolve to PickCube-v1"""
    num_envs: Optional[int] = None
    """parallel training envs (default: 512 on GPU, 4 on CPU)"""
    num_eval_envs: Optional[int] = None
    """parallel evaluation envs (default: 16 on GPU, 2 on CPU)"""
    total_timesteps: int = 10_000_000
    """total env steps (summed over all envs)"""
    eval_freq: int = 500_000
    """evaluate every this many env steps (0 = only at the end)"""
    num_eval_episodes: int = 16
    """episodes per evaluation (and for final_eval.json)"""
    seed: int = 1
    """seed of torch/numpy and of the training envs; evaluation uses seeds derived from it"""
    control_mode: str = "pd_joint_delta_pos"
    """ManiSkill controller"""
    partial_reset: bool = True
    """reset each env as soon as its episode ends (terminates on success); False = fixed-length episodes"""
    bootstrap_at_done: Literal["always", "truncation"] = "always"
    """which episode ends the value targets bootstrap from V(final obs): always (success terminations
    too, as ManiSkill's baselines; see docs/foundation.md#bootstrapping) or truncation (time limit only)"""
    sim_backend: str = "auto"
    """auto (GPU if CUDA is present), gpu or cpu"""
    max_episode_steps: Optional[int] = None
    """override the task's episode length"""
    num_steps: int = 50
    """rollout length per env per iteration"""
    update_epochs: int = 4
    """PPO epochs per iteration"""
    num_minibatches: Optional[int] = None
    """minibatches per epoch (default: 32 on GPU, 4 on CPU)"""
    learning_rate: float = 3e-4
    """Adam learning rate"""
    anneal_lr: bool = False
    """linearly decay the learning rate to 0"""
    gamma: float = 0.8
    """discount (ManiSkill's PPO uses 0.8 for its short tabletop tasks)"""
    gae_lambda: float = 0.9
    """GAE lambda"""
    clip_coef: float = 0.2
    """policy ratio clip"""
    clip_vloss: bool = False
    """clip the value loss as in the original PPO code"""
    ent_coef: float = 0.0
    """entropy bonus"""
    vf_coef: float = 0.5
    """value loss weight"""
    max_grad_norm: float = 0.5
    """gradient clipping"""
    target_kl: Optional[float] = 0.1
    """stop the epoch loop early when the approximate KL exceeds this"""
    norm_obs: bool = True
    """normalize observations with running mean/std (saved in the checkpoint)"""
    reward_scale: float = 1.0
    """multiply rewards by this"""
    hidden_dim: int = 256
    """MLP width"""
    compile: bool = False
    """torch.compile the policy and the update (opt-in fast path)"""
    cudagraphs: bool = False
    """capture the policy step in a CUDA graph (tensordict CudaGraphModule; needs CUDA)"""
    capture_video: bool = False
    """save an mp4 of the evaluation episodes"""
    track: bool = False
    """log to Weights & Biases (set WANDB_MODE=offline to log without a network)"""
    wandb_project: str = "maniskill-pixels"
    """W&B project"""
    exp_name: Optional[str] = None
    """run name prefix (default: the script name)"""
    runs_dir: str = "runs"
    """where run directories are created"""
    save_checkpoints: bool = True
    """write best.pt / last.pt"""


# ----------------------------------------------------------------------------- networks
class RunningMeanStd(nn.Module):
    """Running observation statistics (parallel-variance update); kept as buffers so they live in
    the state dict and therefore in every checkpoint."""

    def __init__(self, shape: tuple, clip: float = 10.0):
        super().__init__()
        self.register_buffer("mean", torch.zeros(shape))
        self.register_buffer("var", torch.ones(shape))
        self.register_buffer("count", torch.tensor(1e-4))
        self.clip = clip

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        b_mean, b_var, b_count = x.mean(0), x.var(0, unbiased=False), x.shape[0]
        delta, tot = b_mean - self.mean, self.count + b_count
        self.mean += delta * b_count / tot
        self.var.copy_((self.var * self.count + b_var * b_count + delta.pow(2) * self.count * b_count / tot) / tot)
        self.count.copy_(tot)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x - self.mean) / torch.sqrt(self.var + 1e-8)).clamp(-self.clip, self.clip)


def layer_init(layer: nn.Linear, std: float = np.sqrt(2), bias: float = 0.0) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias)
    return layer


def mlp(inp: int, hidden: int, out: int, out_std: float) -> nn.Sequential:
    return nn.Sequential(layer_init(nn.Linear(inp, hidden)), nn.Tanh(), layer_init(nn.Linear(hidden, hidden)), nn.Tanh(),
                         layer_init(nn.Linear(hidden, hidden)), nn.Tanh(), layer_init(nn.Linear(hidden, out), std=out_std))


class Agent(nn.Module):
    def __init__(self, obs_dim: int, action_dim: int, hidden_dim: int = 256, norm_obs: bool = True):
        super().__init__()
        self.obs_norm = RunningMeanStd((obs_dim,)) if norm_obs else nn.Identity()
        self.critic = mlp(obs_dim, hidden_dim, 1, out_std=1.0)
        self.actor_mean = mlp(obs_dim, hidden_dim, action_dim, out_std=0.01 * np.sqrt(2))
        self.actor_logstd = nn.Parameter(torch.full((1, action_dim), -0.5))

    def get_value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(self.obs_norm(obs)).squeeze(-1)

    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        mean = self.actor_mean(self.obs_norm(obs))
        if deterministic:
            return mean
        return mean + torch.randn_like(mean) * self.actor_logstd.exp()

    def get_action_and_value(self, obs: torch.Tensor, action: Optional[torch.Tensor] = None):
        x = self.obs_norm(obs)
        mean = self.actor_mean(x)
        dist = Normal(mean, self.actor_logstd.expand_as(mean).exp())
        if action is None:
            action = dist.sample()
        return action, dist.log_prob(action).sum(-1), dist.entropy().sum(-1), self.critic(x).squeeze(-1)


def load_policy(ckpt: dict, device: torch.device):
    """Rebuild the deterministic policy from a checkpoint (used by evaluate.py)."""
    agent = Agent(**ckpt["model_kwargs"]).to(device)
    agent.load_state_dict(ckpt["state_dict"])
    agent.eval()
    return lambda obs: agent.act(obs, deterministic=True)


# ----------------------------------------------------------------------------- GAE
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


# ----------------------------------------------------------------------------- PPO loss
def ppo_loss(agent: Agent, obs, actions, old_logprobs, advantages, returns, old_values, args: Args):
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
    return loss, dict(policy_loss=pg_loss.detach(), value_loss=v_loss.detach(), entropy=ent.detach(),
                      approx_kl=approx_kl, clipfrac=clipfrac)


def ppo_update(agent, optimizer, b_obs, b_actions, b_logprobs, b_adv, b_ret, b_val, args, minibatch_size: int,
               net_input=lambda o: o):
    """`args.update_epochs` epochs of clipped-PPO minibatch updates over a flattened rollout, stopping
    early when the approximate KL exceeds `args.target_kl`. `b_obs` is anything indexable by a
    minibatch index tensor (a tensor or a TensorDict); `net_input` turns that slice into what the
    agent takes. Returns (loss stats of the last minibatch, explained variance of the values)."""
    batch_size = b_adv.shape[0]
    stop = False
    for _ in range(args.update_epochs):
        perm = torch.randperm(batch_size, device=b_adv.device)
        for start in range(0, batch_size, minibatch_size):
            mb = perm[start:start + minibatch_size]
            loss, stats = ppo_loss(agent, net_input(b_obs[mb]), b_actions[mb], b_logprobs[mb], b_adv[mb], b_ret[mb],
                                   b_val[mb], args)
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


# ----------------------------------------------------------------------------- main
def main(args: Args):
    backend = common.resolve_sim_backend(args.sim_backend)
    common.configure_torch_threads(backend)
    num_envs = args.num_envs or (512 if backend == "gpu" else 4)
    num_eval_envs = args.num_eval_envs or (16 if backend == "gpu" else 2)
    if args.cudagraphs and backend != "gpu":
        raise common.UserError("--cudagraphs needs CUDA (GPU sim backend)")
    num_minibatches = args.num_minibatches or (32 if backend == "gpu" else 4)
    env_id = common.resolve_env_id(args.env_id)
    batch_size = num_envs * args.num_steps
    if batch_size % num_minibatches:
        raise common.UserError(f"num_envs*num_steps={batch_size} is not divisible by --num-minibatches {num_minibatches}")
    minibatch_size = batch_size // num_minibatches
    num_iterations = max(1, args.total_timesteps // batch_size)
    common.seed_everything(args.seed)

    run = common.RunLogger(args, "ppo", env_id, args.seed, args.runs_dir, args.track, args.wandb_project,
                           total_steps=num_iterations * batch_size, exp_name=args.exp_name)
    envs = common.make_env(env_id, num_envs, "state", control_mode=args.control_mode, sim_backend=backend,
                           partial_reset=args.partial_reset, max_episode_steps=args.max_episode_steps)
    eval_envs = common.make_env(env_id, num_eval_envs, "state", control_mode=args.control_mode, sim_backend=backend,
                                partial_reset=False, reconfiguration_freq=1, max_episode_steps=args.max_episode_steps,
                                video_dir=run.video_dir if args.capture_video else None)
    device = envs.device

    obs, _ = envs.reset(seed=args.seed)
    obs_dim = envs.obs_shapes["state"][0]
    model_kwargs = dict(obs_dim=obs_dim, action_dim=envs.action_dim, hidden_dim=args.hidden_dim, norm_obs=args.norm_obs)
    agent = Agent(**model_kwargs).to(device)
    optimizer = torch.optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5)

    policy_step = agent.get_action_and_value
    value_fn = agent.get_value
    if args.compile:
        policy_step = torch.compile(policy_step)
        value_fn = torch.compile(value_fn)
    if args.cudagraphs:
        from tensordict.nn import CudaGraphModule

        policy_step = CudaGraphModule(policy_step)
    print(f"ppo: {envs.env_id} backend={backend} device={device} num_envs={num_envs} batch={batch_size} "
          f"iterations={num_iterations} obs_dim={obs_dim} action_dim={envs.action_dim}")

    # rollout storage on the env's device
    T, N = args.num_steps, num_envs
    obs_buf = torch.zeros((T, N, obs_dim), device=device)
    actions_buf = torch.zeros((T, N, envs.action_dim), device=device)
    logprobs_buf = torch.zeros((T, N), device=device)
    rewards_buf = torch.zeros((T, N), device=device)
    values_buf = torch.zeros((T, N), device=device)
    final_values = torch.zeros((T, N), device=device)
    terminated_buf = torch.zeros((T, N), dtype=torch.bool, device=device)
    dones_buf = torch.zeros((T, N), dtype=torch.bool, device=device)

    def eval_policy(o):
        return agent.act(o, deterministic=True)

    evaluator = common.Evaluator(run, eval_envs, eval_policy, args, lambda: dict(
        script="ppo", args=args, env=envs, model_kwargs=model_kwargs, state_dict=agent.state_dict()))
    episode_stats = common.EpisodeStats()
    global_step = 0
    start = time.time()
    for iteration in range(1, num_iterations + 1):
        if args.anneal_lr:
            optimizer.param_groups[0]["lr"] = args.learning_rate * (1.0 - (iteration - 1.0) / num_iterations)
        # ---- rollout
        agent.eval()
        t0 = time.time()
        final_values.zero_()
        for step in range(T):
            global_step += N
            with torch.no_grad():
                if args.norm_obs:
                    agent.obs_norm.update(obs)
                action, logprob, _, value = policy_step(obs)
            obs_buf[step], actions_buf[step], logprobs_buf[step], values_buf[step] = obs, action, logprob, value
            obs, reward, terminated, truncated, info = envs.step(action)
            rewards_buf[step] = reward.to(device) * args.reward_scale
            terminated, truncated = common.bootstrap_flags(terminated, truncated, args.bootstrap_at_done)
            terminated_buf[step], dones_buf[step] = terminated, terminated | truncated
            if "_final_info" in info:
                done = info["_final_info"]
                with torch.no_grad():
                    final_values[step, done] = value_fn(info["final_observation"][done])
            episode_stats.add(info)
        rollout_s = time.time() - t0

        # ---- advantages (bootstrap from V(final obs) at truncation, 0 at termination)
        with torch.no_grad():
            next_values = torch.cat([values_buf[1:], value_fn(obs)[None]], 0)
            next_values = torch.where(dones_buf, final_values, next_values)
            advantages, returns = compute_gae(rewards_buf, values_buf, next_values, terminated_buf, dones_buf,
                                              args.gamma, args.gae_lambda)

        # ---- update
        agent.train()
        t0 = time.time()
        b_obs, b_actions = obs_buf.reshape(-1, obs_dim), actions_buf.reshape(-1, envs.action_dim)
        b_logprobs, b_adv, b_ret, b_val = (x.reshape(-1) for x in (logprobs_buf, advantages, returns, values_buf))
        stats, explained_var = ppo_update(agent, optimizer, b_obs, b_actions, b_logprobs, b_adv, b_ret, b_val, args,
                                          minibatch_size)
        update_s = time.time() - t0

        # ---- logging
        sps = global_step / (time.time() - start)
        logs = {f"losses/{k}": v for k, v in stats.items()}
        logs.update({"losses/explained_variance": explained_var, "charts/learning_rate": optimizer.param_groups[0]["lr"],
                     "time/sps": sps, "time/rollout_s": rollout_s, "time/update_s": update_s,
                     "time/env_fps": T * N / rollout_s})
        logs.update(episode_stats.read())
        run.log(global_step, logs)
        run.progress(global_step, sps=f"{sps:.0f}",
                     **({"train_success": logs["charts/success_once"]} if "charts/success_once" in logs else {}))

        # ---- evaluation + checkpoints (last.pt every eval, best.pt by eval success)
        agent.eval()
        evaluator.maybe_evaluate(global_step, force=iteration == num_iterations)

    # ---- final evaluation of the last policy on seeds never used for checkpoint selection
    evaluator.finish(global_step)
    run.close()
    print(f"run dir: {run.dir}")
    envs.close()
    eval_envs.close()
    return run.dir


if __name__ == "__main__":
    common.run(main, tyro.cli(Args))
