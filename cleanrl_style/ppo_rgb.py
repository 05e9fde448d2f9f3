"""PPO from RGB (optionally RGB-D and proprioceptive state) on ManiSkill3 tasks. Docs: docs/ppo.md

    python cleanrl_style/ppo_rgb.py --env-id PickCube --num-envs 512 --image-size 128     # GPU
    python cleanrl_style/ppo_rgb.py --env-id PushCube --num-envs 2 --total-timesteps 20_000  # CPU smoke

Same algorithm as ppo.py (GAE and bootstrap flags from lib/returns.py, the clipped objective and its
minibatch epochs from lib/ppo_update.py); this file adds the pixel parts: the agent over lib/nets.py's
NatureCNN, uint8 rollout storage on the env's device, optional frame stacking and state fusion.
The image encoder comes from lib/encoders.py (--encoder, docs/encoders.md); with a frozen backbone the
rollout storage holds each frame's backbone features, computed once while acting, instead of the image.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal, Optional

import numpy as np
import torch
import torch.nn as nn
import tyro
from tensordict import TensorDict
from torch.distributions.normal import Normal

from cleanrl_style.lib import encoders as enc_lib
from cleanrl_style.lib import envs as envs_lib
from cleanrl_style.lib.checkpoints import restore_common, save_checkpoint, start_run, train_state
from cleanrl_style.lib.evaluation import EpisodeStats, Evaluator
from cleanrl_style.lib.fast import check_fast_flags
from cleanrl_style.lib.nets import RunningMeanStd, layer_init
from cleanrl_style.lib.ppo_update import log_ppo_iteration, ppo_update
from cleanrl_style.lib.returns import bootstrap_flags, compute_gae, final_obs_values
from cleanrl_style.lib.runs import (
    RunLogger,
    UserError,
    check_choice,
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
    """parallel training envs (default: 512 on GPU, 2 on CPU)"""
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
    obs_mode: str = "rgb"
    """rgb or rgbd"""
    image_size: int = 128
    """camera resolution (square); use --image-height/--image-width for non-square"""
    image_height: Optional[int] = None
    """override the image height"""
    image_width: Optional[int] = None
    """override the image width"""
    include_state: bool = True
    """fuse proprioceptive state (joint positions/velocities, TCP pose, goal) with the image features"""
    frame_stack: int = 1
    """stack this many consecutive frames on the channel axis"""
    control_mode: str = "pd_joint_delta_pos"
    """ManiSkill controller"""
    partial_reset: bool = True
    """reset each env as soon as its episode ends; False = fixed-length episodes"""
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
    """discount"""
    gae_lambda: float = 0.9
    """GAE lambda"""
    clip_coef: float = 0.2
    """policy ratio clip"""
    clip_vloss: bool = False
    """clip the value loss"""
    ent_coef: float = 0.0
    """entropy bonus"""
    vf_coef: float = 0.5
    """value loss weight"""
    max_grad_norm: float = 0.5
    """gradient clipping"""
    target_kl: Optional[float] = 0.2
    """stop the epoch loop early when the approximate KL exceeds this"""
    reward_scale: float = 1.0
    """multiply rewards by this"""
    feature_dim: int = 256
    """encoder output size (image and state branch each)"""
    encoder: str = "nature"
    """image encoder: nature (NatureCNN) | resnet18 | dinov2-vits14 (timm backbone + adapter; docs/encoders.md)"""
    encoder_weights: str = "none"
    """none (random init) | PATH (the image encoder of a bc/sac_rgb/ppo_rgb checkpoint, or a backbone state
    dict) | published (the backbone's published weights, fetched once by scripts/fetch_encoder_weights.py)"""
    encoder_image_size: Optional[int] = None
    """input size of a timm backbone; images are resized to it on the device (default: the backbone's, 224)"""
    encoder_adapter: str = "attn-pool"
    """trainable head over a timm backbone: linear (over its pooled features) | attn-pool (a learned query
    attending over its spatial tokens)"""
    freeze_encoder: bool = False
    """freeze the encoder's backbone (NatureCNN's convs, the timm model); the adapter still trains"""
    unfreeze_after: Optional[int] = None
    """at this env step make the last --unfreeze-blocks blocks of the frozen backbone trainable"""
    unfreeze_blocks: int = 1
    """backbone blocks --unfreeze-after makes trainable, counted from the output (ResNet stages, ViT blocks)"""
    encoder_lr: Optional[float] = None
    """learning rate of the unfrozen blocks (default: 0.1 x --learning-rate; not annealed by --anneal-lr)"""
    cache_features: bool = True
    """with --freeze-encoder, store each frame's backbone features in the rollout storage instead of the image
    (computed once while acting, not again in every update epoch), until --unfreeze-after"""
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
    def __init__(
        self,
        in_channels: int,
        height: int,
        width: int,
        state_dim: int,
        action_dim: int,
        feature_dim: int = 256,
        encoder: Optional[dict] = None,
    ):
        """encoder: lib/encoders.encoder_config (None: NatureCNN, as in checkpoints written before it)."""
        super().__init__()
        self.encoder = enc_lib.make_image_encoder(in_channels, height, width, feature_dim, encoder)
        self.state_dim = state_dim
        latent = feature_dim
        if state_dim:
            self.state_norm = RunningMeanStd((state_dim,))
            self.state_fc = nn.Sequential(nn.Linear(state_dim, feature_dim), nn.ReLU())
            latent += feature_dim
        self.critic = nn.Sequential(layer_init(nn.Linear(latent, 512)), nn.ReLU(), layer_init(nn.Linear(512, 1)))
        self.actor_mean = nn.Sequential(
            layer_init(nn.Linear(latent, 512)), nn.ReLU(), layer_init(nn.Linear(512, action_dim), std=0.01 * np.sqrt(2))
        )
        self.actor_logstd = nn.Parameter(torch.full((1, action_dim), -0.5))

    def features(self, obs) -> torch.Tensor:
        """obs: "rgb" (uint8 images) or "feat" (the frozen backbone's cached output), and "state"."""
        x = enc_lib.adapt(self.encoder, obs["feat"]) if "feat" in obs.keys() else self.encoder(obs["rgb"])
        if self.state_dim:
            x = torch.cat([x, self.state_fc(self.state_norm(obs["state"]))], dim=1)
        return x

    def get_value(self, obs) -> torch.Tensor:
        return self.critic(self.features(obs)).squeeze(-1)

    def act(self, obs, deterministic: bool = False) -> torch.Tensor:
        mean = self.actor_mean(self.features(obs))
        return mean if deterministic else mean + torch.randn_like(mean) * self.actor_logstd.exp()

    def get_action_and_value(self, obs, action: Optional[torch.Tensor] = None):
        x = self.features(obs)
        mean = self.actor_mean(x)
        dist = Normal(mean, self.actor_logstd.expand_as(mean).exp(), validate_args=False)  # no host reads
        if action is None:
            action = dist.sample()
        return action, dist.log_prob(action).sum(-1), dist.entropy().sum(-1), self.critic(x).squeeze(-1)


class FrameStack:
    """Keeps the last k frames per env on the channel axis (uint8, on the env's device). At an
    episode start the stack is filled with copies of the first frame."""

    def __init__(self, k: int):
        self.k = k
        self.stack: Optional[torch.Tensor] = None

    def reset(self, obs: dict) -> dict:
        if self.k == 1:  # identity: no copies
            return obs
        self.stack = obs["rgb"].repeat(1, self.k, 1, 1)
        return {"rgb": self.stack, "state": obs["state"]}

    def peek(self, rgb: torch.Tensor) -> torch.Tensor:
        """What the stack would be after appending `rgb` (for final observations)."""
        if self.k == 1:
            return rgb
        c = rgb.shape[1]
        return torch.cat([self.stack[:, c:], rgb], dim=1)

    def step(self, obs: dict, new_episode: torch.Tensor) -> dict:
        if self.k == 1:
            return obs
        rgb = obs["rgb"]
        # episode starts get k copies of their first frame (torch.where: no masked indexing, no sync)
        stack = torch.where(new_episode[:, None, None, None], rgb.repeat(1, self.k, 1, 1), self.peek(rgb))
        self.stack = stack
        return {"rgb": stack, "state": obs["state"]}


def make_policy(agent: Agent, frame_stack: int, include_state: bool):
    """Deterministic policy over raw env observations: frame stacking and state selection as in
    training. `policy.reset()` restarts the frame stack (evaluate() calls it after each env reset)."""
    stacker = FrameStack(frame_stack)

    def policy(obs):
        if frame_stack > 1:
            if stacker.stack is None:
                obs = stacker.reset(obs)
            else:
                obs = stacker.step(obs, torch.zeros(obs["rgb"].shape[0], dtype=torch.bool, device=obs["rgb"].device))
        return agent.act(obs if include_state else {"rgb": obs["rgb"]}, deterministic=True)

    policy.reset = lambda: setattr(stacker, "stack", None)
    return policy


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
        "image_size",
        "image_height",
        "image_width",
        "frame_stack",
        "num_steps",
        "update_epochs",
        "num_minibatches",
        "learning_rate",
        "feature_dim",
        "max_episode_steps",
        "clip_coef",
        "max_grad_norm",
        "target_kl",
        "reward_scale",
    )
    check_non_negative(args, "eval_freq", "ent_coef", "vf_coef")
    check_unit_interval(args, "gamma")
    check_unit_interval(args, "gae_lambda")
    check_choice("obs-mode", args.obs_mode, ("rgb", "rgbd"))
    check_fast_flags(args, backend)
    enc_lib.check_encoder_flags(args, args.obs_mode, args.learning_rate)
    args.env_id = envs_lib.resolve_env_id(args.env_id)
    args.num_envs = args.num_envs or (512 if backend == "gpu" else 2)
    args.num_eval_envs = args.num_eval_envs or (16 if backend == "gpu" else 2)
    args.num_minibatches = args.num_minibatches or (32 if backend == "gpu" else 4)
    args.image_height = args.image_height or args.image_size
    args.image_width = args.image_width or args.image_size
    if args.encoder == "nature" and min(args.image_height, args.image_width) < 36:
        raise UserError(
            f"the NatureCNN encoder needs images of at least 36x36 (got {args.image_height}x{args.image_width})"
        )
    batch_size = args.num_envs * args.num_steps
    if batch_size % args.num_minibatches:
        raise UserError(f"num_envs*num_steps={batch_size} is not divisible by --num-minibatches {args.num_minibatches}")
    return args


# ----------------------------------------------------------------------------- main
def main(args: Args):
    args, backend, ckpt = start_run(args, "ppo_rgb", resolve_args)
    num_envs, env_id = args.num_envs, args.env_id
    batch_size = num_envs * args.num_steps
    minibatch_size = batch_size // args.num_minibatches
    num_iterations = max(1, args.total_timesteps // batch_size)
    height, width = args.image_height, args.image_width
    start_step = ckpt["train_state"]["global_step"] if ckpt else 0

    run_log = RunLogger(
        args,
        "ppo_rgb",
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
    env_kw = dict(
        image_size=(height, width),
        control_mode=args.control_mode,
        sim_backend=backend,
        max_episode_steps=args.max_episode_steps,
        sim_dr=args.sim_dr,  # the training level; eval envs add their variation
    )
    envs = envs_lib.make_env(env_id, num_envs, args.obs_mode, partial_reset=args.partial_reset, **env_kw)
    eval_envs = envs_lib.make_env(
        env_id,
        args.num_eval_envs,
        args.obs_mode,
        partial_reset=False,
        reconfigure=True,
        video_dir=run_log.video_dir if args.capture_video else None,
        variation=args.eval_variation,
        **env_kw,
    )
    device = envs.device

    obs, _ = envs.reset(seed=args.seed + start_step)  # a resumed run starts fresh episodes
    stacker = FrameStack(args.frame_stack)
    obs = stacker.reset(obs)
    C = obs["rgb"].shape[1]
    state_dim = envs.obs_shapes["state"][0] if args.include_state else 0
    model_kwargs = dict(
        in_channels=C,
        height=height,
        width=width,
        state_dim=state_dim,
        action_dim=envs.action_dim,
        feature_dim=args.feature_dim,
        encoder=enc_lib.encoder_config(args),
    )
    agent = Agent(**model_kwargs).to(device)
    loaded = enc_lib.prepare_encoder(agent.encoder, args, resumed=bool(ckpt))  # --encoder-weights, --freeze-encoder
    unfreezer = enc_lib.Unfreezer.from_args(agent.encoder, args, "ppo_rgb")
    optimizer = torch.optim.Adam(enc_lib.trainable(agent.parameters()), lr=args.learning_rate, eps=1e-5)
    if ckpt:  # a run resumed past --unfreeze-after: its optimizer state has the unfrozen blocks' group
        unfreezer.maybe_unfreeze(start_step, optimizer)
    policy_step, value_fn = agent.get_action_and_value, agent.get_value
    if args.compile:
        policy_step, value_fn = torch.compile(policy_step), torch.compile(value_fn)
    if args.cudagraphs:
        from tensordict.nn import CudaGraphModule

        policy_step = CudaGraphModule(policy_step)

    # rollout storage on the env's device; images stay uint8, or (frozen backbone) its features instead
    T, N = args.num_steps, num_envs

    def rollout_storage(cached: bool) -> TensorDict:
        if cached:
            image = {"feat": torch.zeros((T, N, *enc_lib.backbone_shape(agent.encoder)), device=device)}
        else:
            image = {"rgb": torch.zeros((T, N, C, height, width), dtype=torch.uint8, device=device)}
        state = torch.zeros((T, N, envs.obs_shapes["state"][0]), device=device)
        return TensorDict({**image, "state": state}, batch_size=[T, N], device=device)

    cached = args.freeze_encoder and args.cache_features and not (args.unfreeze_after is not None and unfreezer.done)
    obs_buf = rollout_storage(cached)
    actions_buf = torch.zeros((T, N, envs.action_dim), device=device)
    logprobs_buf, rewards_buf, values_buf, final_values = (torch.zeros((T, N), device=device) for _ in range(4))
    terminated_buf = torch.zeros((T, N), dtype=torch.bool, device=device)
    dones_buf = torch.zeros((T, N), dtype=torch.bool, device=device)
    mem_gb = obs_buf.bytes() / 1e9 if hasattr(obs_buf, "bytes") else float("nan")
    print(
        f"ppo_rgb: {env_id} backend={backend} device={device} num_envs={N} image={C}x{height}x{width} "
        f"state_dim={state_dim} batch={batch_size} iterations={num_iterations} rollout storage={mem_gb * 1e3:.1f} MB"
        f"{' (backbone features)' if cached else ''} {enc_lib.describe(agent.encoder)}"
    )
    if loaded:
        print(f"ppo_rgb: --encoder-weights: loaded the {loaded}")

    eval_policy = make_policy(agent, args.frame_stack, args.include_state)
    global_step, first_iteration = start_step, 1

    def save(path, step, metrics, resumable):
        ts = train_state(step, evaluator, optimizer=optimizer.state_dict(), iteration=iteration) if resumable else None
        save_checkpoint(
            path,
            script="ppo_rgb",
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

    def net_input(o) -> dict:
        keys = ("rgb", "feat", "state") if args.include_state else ("rgb", "feat")
        return {k: o[k] for k in keys if k in o.keys()}

    def step_input(o) -> dict:
        """What the rollout stores and acts on: the obs, with the image replaced by its cached features."""
        if not cached:
            return o
        return {"feat": enc_lib.backbone_features(agent.encoder, o["rgb"]), "state": o["state"]}

    start = time.time()
    for iteration in range(first_iteration, num_iterations + 1):
        if args.anneal_lr:
            optimizer.param_groups[0]["lr"] = args.learning_rate * (1.0 - (iteration - 1.0) / num_iterations)
        if unfreezer.maybe_unfreeze(global_step, optimizer, run_log.log) and cached:  # the cache is stale now
            cached, obs_buf = False, rollout_storage(False)
        # ---- rollout
        agent.eval()
        t0 = time.time()
        final_values.zero_()
        for step in range(T):
            global_step += N
            with torch.no_grad():
                if state_dim:
                    agent.state_norm.update(obs["state"])
                step_obs = step_input(obs)
                action, logprob, _, value = policy_step(net_input(step_obs))
            obs_buf[step] = TensorDict(step_obs, batch_size=[N])
            actions_buf[step], logprobs_buf[step], values_buf[step] = action, logprob, value
            raw_obs, reward, terminated, truncated, info = envs.step(action)
            done = terminated | truncated
            if "_final_info" in info:
                final = info["final_observation"]
                final_stacked = {"rgb": stacker.peek(final["rgb"]), "state": final["state"]}
                final_values[step] = final_obs_values(value_fn, net_input(final_stacked), info["_final_info"])
            episode_stats.add(info)
            obs = stacker.step(raw_obs, done)
            rewards_buf[step] = reward * args.reward_scale
            terminated_buf[step] = bootstrap_flags(terminated, truncated, args.bootstrap_at_done)[0]
            dones_buf[step] = done
        rollout_s = time.time() - t0

        # ---- advantages (bootstrap from V(final obs) at truncation, 0 at termination)
        with torch.no_grad():
            next_values = torch.cat([values_buf[1:], value_fn(net_input(obs))[None]], 0)
            next_values = torch.where(dones_buf, final_values, next_values)
            advantages, returns = compute_gae(
                rewards_buf, values_buf, next_values, terminated_buf, dones_buf, args.gamma, args.gae_lambda
            )

        # ---- update
        agent.train()
        t0 = time.time()
        b_obs = obs_buf.reshape(-1)
        b_actions = actions_buf.reshape(-1, envs.action_dim)
        b_logprobs, b_adv, b_ret, b_val = (x.reshape(-1) for x in (logprobs_buf, advantages, returns, values_buf))
        stats, explained_var = ppo_update(
            agent,
            optimizer,
            b_obs,
            b_actions,
            b_logprobs,
            b_adv,
            b_ret,
            b_val,
            args,
            minibatch_size,
            net_input,
        )
        update_s = time.time() - t0

        # ---- logging, evaluation + checkpoints
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
        agent.eval()
        evaluator.maybe_evaluate(global_step, force=iteration == num_iterations)

    evaluator.finish(global_step)
    return close_run(run_log, envs, eval_envs)


def load_policy(ckpt: dict, device: torch.device):
    """Rebuild the deterministic policy from a checkpoint (used by evaluate.py)."""
    agent = Agent(**ckpt["model_kwargs"]).to(device)
    agent.load_state_dict(ckpt["state_dict"])
    agent.eval()
    return make_policy(agent, ckpt["args"].get("frame_stack", 1), ckpt["args"].get("include_state", True))


if __name__ == "__main__":
    run(main, tyro.cli(Args))
