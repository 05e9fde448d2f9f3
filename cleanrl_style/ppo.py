"""PPO from privileged state on ManiSkill3 tasks, CleanRL style. Docs: docs/ppo.md

    python cleanrl_style/ppo.py --env-id PickCube                      # GPU: 512 envs
    python cleanrl_style/ppo.py --env-id PushCube --num-envs 4 --total-timesteps 200_000   # CPU

Reads top to bottom: Args, the agent (MLPs with running obs normalization), flag resolution, the
rollout/update loop, load_policy. The target maths (GAE, bootstrap flags) are in lib/returns.py and
the clipped objective with its minibatch epochs in lib/ppo_update.py, shared with ppo_rgb.py.
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

from cleanrl_style.lib import envs as envs_lib
from cleanrl_style.lib.checkpoints import restore_common, save_checkpoint, start_run, train_state
from cleanrl_style.lib.evaluation import EpisodeStats, Evaluator
from cleanrl_style.lib.fast import check_fast_flags
from cleanrl_style.lib.nets import RunningMeanStd, tanh_mlp
from cleanrl_style.lib.ppo_update import log_ppo_iteration, ppo_update
from cleanrl_style.lib.returns import bootstrap_flags, compute_gae, final_obs_values
from cleanrl_style.lib.runs import (
    RunLogger,
    UserError,
    check_non_negative,
    check_positive,
    check_unit_interval,
    close_run,
    run,
)


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
    """evaluate (and write last.pt / best.pt) every this many env steps (0 = only at the end)"""
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
    sim_dr: str = "off"
    """simulator domain randomization of the training envs: off | light | heavy (lighting, colours,
    textures, camera pose and fov; needs --env-id PickCubeDR; docs/generalization.md)"""
    eval_variation: str = "clean"
    """what the evaluation envs show: clean | train (the --sim-dr ranges, heavy's with --sim-dr off) |
    held-out (ranges disjoint from training's); PickCube or PickCubeDR only (docs/generalization.md)"""
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
    """torch.compile the rollout's policy step and value function (opt-in fast path; the update stays eager)"""
    cudagraphs: bool = False
    """capture the policy step in a CUDA graph (tensordict CudaGraphModule; needs CUDA)"""
    capture_video: bool = False
    """save an mp4 of the first batch of final-evaluation episodes (videos/final_eval.mp4)"""
    track: bool = False
    """log to Weights & Biases (set WANDB_MODE=offline to log without a network)"""
    wandb_project: str = "maniskill-pixels"
    """W&B project"""
    exp_name: Optional[str] = None
    """run name prefix (default: the script name)"""
    runs_dir: str = "runs"
    """where run directories are created"""
    save_checkpoints: bool = True
    """write best.pt / last.pt (last.pt carries the training state for --resume)"""
    resume: Optional[str] = None
    """continue the run in this run directory from its last.pt, with the flags it was started with (a
    larger --total-timesteps extends it); metrics.csv and TensorBoard continue in place"""


# ----------------------------------------------------------------------------- networks
class Agent(nn.Module):
    def __init__(self, obs_dim: int, action_dim: int, hidden_dim: int = 256, norm_obs: bool = True):
        super().__init__()
        self.obs_norm = RunningMeanStd((obs_dim,)) if norm_obs else nn.Identity()
        self.critic = tanh_mlp(obs_dim, hidden_dim, 1, out_std=1.0)
        self.actor_mean = tanh_mlp(obs_dim, hidden_dim, action_dim, out_std=0.01 * np.sqrt(2))
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
        # validate_args=False: the inputs are finite by construction, and validation reads them back
        # to the host (a device sync per call, and an error inside a CUDA graph capture)
        dist = Normal(mean, self.actor_logstd.expand_as(mean).exp(), validate_args=False)
        if action is None:
            action = dist.sample()
        return action, dist.log_prob(action).sum(-1), dist.entropy().sum(-1), self.critic(x).squeeze(-1)


# ----------------------------------------------------------------------------- flags
def resolve_args(args: Args, backend: str) -> Args:
    """Check every numeric flag (one line, exit 2) and write the backend-dependent defaults back
    into args, so config.yaml and checkpoints record the values used."""
    check_positive(
        args,
        "num_envs",
        "num_eval_envs",
        "total_timesteps",
        "num_eval_episodes",
        "num_steps",
        "update_epochs",
        "num_minibatches",
        "learning_rate",
        "hidden_dim",
        "max_episode_steps",
        "clip_coef",
        "max_grad_norm",
        "target_kl",
        "reward_scale",
    )
    check_non_negative(args, "eval_freq", "ent_coef", "vf_coef")
    check_unit_interval(args, "gamma")
    check_unit_interval(args, "gae_lambda")
    check_fast_flags(args, backend)
    args.env_id = envs_lib.resolve_env_id(args.env_id)
    args.num_envs = args.num_envs or (512 if backend == "gpu" else 4)
    args.num_eval_envs = args.num_eval_envs or (16 if backend == "gpu" else 2)
    args.num_minibatches = args.num_minibatches or (32 if backend == "gpu" else 4)
    batch_size = args.num_envs * args.num_steps
    if batch_size % args.num_minibatches:
        raise UserError(f"num_envs*num_steps={batch_size} is not divisible by --num-minibatches {args.num_minibatches}")
    return args


# ----------------------------------------------------------------------------- main
def main(args: Args):
    args, backend, ckpt = start_run(args, "ppo", resolve_args)
    num_envs, env_id = args.num_envs, args.env_id
    batch_size = num_envs * args.num_steps
    minibatch_size = batch_size // args.num_minibatches
    num_iterations = max(1, args.total_timesteps // batch_size)
    start_step = ckpt["train_state"]["global_step"] if ckpt else 0

    run_log = RunLogger(
        args,
        "ppo",
        env_id,
        args.seed,
        args.runs_dir,
        args.track,
        args.wandb_project,
        total_steps=num_iterations * batch_size,
        exp_name=args.exp_name,
        resume_dir=args.resume,
        resume_step=start_step,
    )
    envs = envs_lib.make_env(
        env_id,
        num_envs,
        "state",
        control_mode=args.control_mode,
        sim_backend=backend,
        partial_reset=args.partial_reset,
        max_episode_steps=args.max_episode_steps,
        sim_dr=args.sim_dr,
    )
    eval_envs = envs_lib.make_env(
        env_id,
        args.num_eval_envs,
        "state",
        control_mode=args.control_mode,
        sim_backend=backend,
        partial_reset=False,
        reconfigure=True,
        max_episode_steps=args.max_episode_steps,
        video_dir=run_log.video_dir if args.capture_video else None,
        sim_dr=args.sim_dr,
        variation=args.eval_variation,
    )
    device = envs.device

    obs, _ = envs.reset(seed=args.seed + start_step)  # a resumed run starts fresh episodes
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
    print(
        f"ppo: {envs.env_id} backend={backend} device={device} num_envs={num_envs} batch={batch_size} "
        f"iterations={num_iterations} obs_dim={obs_dim} action_dim={envs.action_dim}"
    )

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

    global_step, first_iteration = start_step, 1

    def save(path, step, metrics, resumable):
        ts = train_state(step, evaluator, optimizer=optimizer.state_dict(), iteration=iteration) if resumable else None
        save_checkpoint(
            path,
            script="ppo",
            args=args,
            env=envs,
            model_kwargs=model_kwargs,
            state_dict=agent.state_dict(),
            step=step,
            extra=dict(eval=metrics),
            train_state=ts,
        )

    evaluator = Evaluator(run_log, eval_envs, eval_policy, args, save)
    if ckpt:
        ts = restore_common(ckpt, agent, evaluator)
        optimizer.load_state_dict(ts["optimizer"])
        first_iteration = ts["iteration"] + 1
    episode_stats = EpisodeStats()
    start = time.time()
    for iteration in range(first_iteration, num_iterations + 1):
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
            terminated, truncated = bootstrap_flags(terminated, truncated, args.bootstrap_at_done)
            terminated_buf[step], dones_buf[step] = terminated, terminated | truncated
            if "_final_info" in info:
                final_values[step] = final_obs_values(value_fn, info["final_observation"], info["_final_info"])
            episode_stats.add(info)
        rollout_s = time.time() - t0

        # ---- advantages (bootstrap from V(final obs) at truncation, 0 at termination)
        with torch.no_grad():
            next_values = torch.cat([values_buf[1:], value_fn(obs)[None]], 0)
            next_values = torch.where(dones_buf, final_values, next_values)
            advantages, returns = compute_gae(
                rewards_buf, values_buf, next_values, terminated_buf, dones_buf, args.gamma, args.gae_lambda
            )

        # ---- update
        agent.train()
        t0 = time.time()
        b_obs, b_actions = obs_buf.reshape(-1, obs_dim), actions_buf.reshape(-1, envs.action_dim)
        b_logprobs, b_adv, b_ret, b_val = (x.reshape(-1) for x in (logprobs_buf, advantages, returns, values_buf))
        stats, explained_var = ppo_update(
            agent, optimizer, b_obs, b_actions, b_logprobs, b_adv, b_ret, b_val, args, minibatch_size
        )
        update_s = time.time() - t0

        # ---- logging
        log_ppo_iteration(
            run_log,
            global_step,
            start_step,
            start,
            stats,
            explained_var,
            optimizer,
            rollout_s,
            update_s,
            T * N,
            episode_stats,
        )

        # ---- evaluation + checkpoints (last.pt every eval, best.pt by eval success)
        agent.eval()
        evaluator.maybe_evaluate(global_step, force=iteration == num_iterations)

    # ---- final evaluation of the last policy on seeds never used for checkpoint selection
    evaluator.finish(global_step)
    return close_run(run_log, envs, eval_envs)


def load_policy(ckpt: dict, device: torch.device):
    """Rebuild the deterministic policy from a checkpoint (used by evaluate.py)."""
    agent = Agent(**ckpt["model_kwargs"]).to(device)
    agent.load_state_dict(ckpt["state_dict"])
    agent.eval()
    return lambda obs: agent.act(obs, deterministic=True)


if __name__ == "__main__":
    run(main, tyro.cli(Args))
