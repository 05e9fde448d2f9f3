"""Behavior cloning from ManiSkill demonstrations, judged by success in simulation. Docs: docs/bc.md

    python cleanrl_style/collect_demos.py --env-id PickCube --num-demos 300 --out-dir demos \\
        --obs-mode state --control-mode pd_ee_delta_pos
    python cleanrl_style/bc.py --env-id PickCube \\
        --demo-path demos/PickCube-v1/motionplanning/state/trajectory.state.pd_ee_delta_pos.physx_cpu.h5

Reads top to bottom: Args, the batch bookkeeping, the policy (MLP or CNN encoder + a head that
predicts a chunk of future actions, or the tanh-Gaussian actor sac.py uses), the stateful evaluation
policy (observation history, temporal ensembling of overlapping chunks), flag resolution, the
training loop. Demo files are read by lib/demos.py. The env's control mode and image size come from
the demo file; evaluation uses a longer time limit than the task default (--max-episode-steps 100)
because motion-planning demos are longer than it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn as nn
import tyro

from cleanrl_style.lib import encoders as enc_lib
from cleanrl_style.lib import envs as envs_lib
from cleanrl_style.lib.augment import DR_LEVELS, random_shift, randomize_batch, rgb_channel_count
from cleanrl_style.lib.checkpoints import load_resume_checkpoint, save_checkpoint
from cleanrl_style.lib.demos import (
    demo_env_kwargs,
    demo_image_spec,
    demo_sim_backend,
    demos_record_actor,
    load_demos,
    read_demo_info,
)
from cleanrl_style.lib.evaluation import Evaluator
from cleanrl_style.lib.nets import Actor, PixelEncoder, mlp
from cleanrl_style.lib.runs import (
    RunLogger,
    UserError,
    check_choice,
    check_non_negative,
    check_positive,
    resume_args,
    rng_state,
    run,
    seed_everything,
    set_rng_state,
)
from cleanrl_style.lib.sim_dr import check_flags as check_sim_dr_flags


@dataclass
class Args:
    env_id: str = "PickCube"
    """ManiSkill task id; short names like PickCube resolve to PickCube-v1 (must match the demos)"""
    demo_path: str = ""
    """ManiSkill trajectory file (.h5 with its .json) converted to the obs/control mode to learn
    (collect_demos.py --obs-mode/--control-mode writes one)"""
    obs_mode: str = "state"
    """state | rgb | rgbd; must match the demo file"""
    num_demos: Optional[int] = None
    """use the first N demos of the file (default: all)"""
    num_eval_envs: Optional[int] = None
    """parallel evaluation envs (default: 16 on GPU, 2 on CPU)"""
    num_eval_episodes: int = 100
    """episodes per evaluation (and for final_eval.json)"""
    eval_freq: int = 2_500
    """evaluate (and write last.pt / best.pt) every this many gradient steps (training takes no env
    steps; 0 = only at the end)"""
    total_iters: int = 5_000
    """gradient steps (the AdamW learning rate is cosine-decayed to 0 over them); training much longer
    overfits small demo sets, see docs/bc.md#results"""
    max_episode_steps: int = 100
    """time limit of the evaluation episodes (longer than PickCube's default: motion-planning demos
    run past it)"""
    seed: int = 1
    """seed of the training run; evaluation uses seed + 1_000_000 (+ i) and, for final_eval.json,
    seed + 2_000_000 (+ i): never the demo seeds (collect_demos.py starts at 0)"""

    policy: str = "chunk"
    """chunk: MLP/CNN predicting the next --chunk-size actions (ACT-style), executed with temporal
    ensembling; gaussian: one action from the tanh-Gaussian actor sac.py uses (same architecture, so
    SAC can start from it), trained on the mean with MSE"""
    chunk_size: Optional[int] = None
    """actions predicted per query (default: 16 for policy=chunk; policy=gaussian predicts 1)"""
    temporal_ensemble: bool = True
    """query every step and average the overlapping chunks' predictions for the current step
    (weights exp(-ensemble_decay * age rank), oldest first, as in ACT); off: execute --exec-horizon
    actions of each chunk open loop"""
    ensemble_decay: float = 0.01
    """ACT's m: larger trusts the newest chunk more"""
    exec_horizon: int = 4
    """actions executed per query without temporal ensembling"""
    obs_horizon: int = 1
    """observations fed to the policy (current + previous frames)"""
    drop_state_keys: list[str] = field(default_factory=lambda: ["agent/qvel"])
    """parts of the state vector left out of the policy input (names as in the env's state dict,
    e.g. agent/qvel); [] keeps everything"""
    hidden_dim: Optional[int] = None
    """width of the MLP layers (default: 512 for policy=chunk, 256 for policy=gaussian: sac.py's actor)"""
    feature_dim: int = 256
    """image feature size (rgb/rgbd; --encoder nature or a timm backbone's adapter output)"""
    encoder: str = "nature"
    """image encoder (rgb/rgbd): nature (sac_rgb's NatureCNN; a SAC run can start from it) | resnet18 |
    dinov2-vits14 (timm backbone + adapter, docs/encoders.md) | keypoints
    (conv stack + spatial softmax: 32 learned image positions)"""
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
    """at this gradient step make the last --unfreeze-blocks blocks of the frozen backbone trainable"""
    unfreeze_blocks: int = 1
    """backbone blocks --unfreeze-after makes trainable, counted from the output (ResNet stages, ViT blocks)"""
    encoder_lr: Optional[float] = None
    """learning rate of the unfrozen blocks, cosine-decayed with the rest from there (default: 0.1 x --learning-rate)"""
    aux_coef: Optional[float] = None
    """weight of an auxiliary loss (rgb/rgbd): regress the position of --aux-actor (read from the demos'
    recorded env_states; never a policy input) from the image encoder's features; 0 = off (default:
    10 from pixels when the demos record --aux-actor, see docs/bc.md; 0 from state)"""
    aux_actor: str = "cube"
    """the actor whose position the auxiliary loss predicts (a name under env_states/actors in the h5)"""
    head_input: str = "features"
    """what the policy head sees (rgb/rgbd): features (image features + state) | aux (the state and the
    --aux-actor position predicted from the image, detached: a perception bottleneck; needs --aux-coef > 0)"""
    obs_noise: float = 0.0
    """std of Gaussian noise added to the normalized state while training (0 = off)"""
    loss: str = "mse"
    """mse | l1"""
    batch_size: Optional[int] = None
    """demo steps per gradient step (default: 256 from state, 64 from pixels)"""
    learning_rate: float = 1e-3
    """AdamW learning rate (cosine-decayed to 0 over total_iters)"""
    weight_decay: float = 1e-4
    """AdamW weight decay"""
    aug: str = "shift"
    """image augmentation while training (rgb/rgbd): none | shift (DrQ random shift)"""
    dr: str = "off"
    """image-space domain randomization of training batches (rgb/rgbd): off | light | heavy, every sample
    its own photometric draw (colour gain, brightness, contrast, saturation, hue, blur, noise: the ranges
    sac_rgb.py --dr gives rollouts), after --aug; evaluation shows --eval-variation as it is"""
    log_freq: int = 1000
    """log losses every this many gradient steps"""

    sim_backend: str = "auto"
    """auto, gpu or cpu: the evaluation envs' sim (auto: the backend the demos were converted with, since
    end-effector controllers act differently on each; the learner uses CUDA whenever it is present)"""
    eval_variation: str = "clean"
    """what the evaluation envs show: clean | train | held-out (PickCube / PickCubeDR demos only). bc.py
    has no --sim-dr: the simulator randomization of the training data is the demos' own
    (collect_demos.py --sim-dr records it in their json), and train uses that level's ranges
    (heavy's for demos without one); docs/generalization.md"""
    runs_dir: str = "runs"
    """parent directory of run directories"""
    exp_name: Optional[str] = None
    """run name prefix (default: the script name)"""
    track: bool = False
    """log to Weights & Biases"""
    wandb_project: str = "maniskill-pixels"
    """W&B project"""
    capture_video: bool = False
    """save a video of the final evaluation"""
    save_checkpoints: bool = True
    """write best.pt / last.pt (last.pt carries the training state for --resume)"""
    resume: Optional[str] = None
    """continue the run in this run directory from its last.pt, with the flags it was started with (a
    larger --total-iters extends it); metrics.csv and TensorBoard continue in place"""


# ----------------------------------------------------------------------------- batches
def batch_indices(data: dict, idx: torch.Tensor, obs_horizon: int, chunk_size: int):
    """Frames of the observation history (B, h) (repeating the first frame at episode starts) and the
    steps of the action chunk (B, H) with a mask of the steps that exist (False past the episode end)."""
    frames = data["step_frame"][idx, None] - torch.arange(obs_horizon - 1, -1, -1, device=idx.device)
    frames = torch.maximum(frames, data["ep_start"][idx, None])
    steps = idx[:, None] + torch.arange(chunk_size, device=idx.device)
    valid = steps <= data["ep_last"][idx, None]
    return frames, torch.minimum(steps, data["ep_last"][idx, None]), valid


# ----------------------------------------------------------------------------- policy
def keep_index(layout: list[tuple[str, int]], drop: list[str]) -> torch.Tensor:
    """Indices of the state vector to keep when the named parts in `drop` are left out."""
    names = [n for n, _ in layout]
    unknown = [d for d in drop if d not in names]
    if unknown:
        raise UserError(f"--drop-state-keys {unknown} not in this env's state; it has {names}")
    keep, i = [], 0
    for name, size in layout:
        if name not in drop:
            keep.extend(range(i, i + size))
        i += size
    return torch.tensor(keep, dtype=torch.long)


class KeypointEncoder(nn.Module):
    """Small conv stack at quarter resolution -> spatial softmax: per feature map the expected (x, y)
    image position of its activation, as in robomimic / Levine et al. 2016. The expectation is finer than
    the grid, so positions of small objects (PickCube's 4 cm cube is ~3 px at 64x64) survive, unlike in
    NatureCNN's flatten. uint8 (B, C, H, W) in; keypoints (B, 2K) concatenated with the state out."""

    def __init__(
        self, in_channels: int, height: int, width: int, state_dim: int, num_keypoints: int = 32, channels: int = 32
    ):
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, num_keypoints, 1),
        )
        with torch.no_grad():
            h, w = self.convs(torch.zeros(1, in_channels, height, width)).shape[2:]
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
        self.register_buffer("pos", torch.stack([xs.flatten(), ys.flatten()], 1))  # (h*w, 2)
        self.log_temperature = nn.Parameter(torch.zeros(()))
        self.state_dim = state_dim
        self.out_dim = 2 * num_keypoints + state_dim

    def forward(self, rgb: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        maps = self.convs(rgb.float() / 255.0).flatten(2)  # (B, K, h*w)
        attn = torch.softmax(maps / self.log_temperature.exp(), dim=-1)
        kp = (attn @ self.pos).flatten(1)  # (B, 2K)
        return torch.cat([kp, state], dim=-1) if self.state_dim else kp


class BCPolicy(nn.Module):
    """obs history -> chunk of actions. State: MLP over the normalized (kept) state of the last
    obs_horizon frames. Pixels: lib/nets.py's PixelEncoder (NatureCNN, encoder="nature", as sac_rgb.py)
    or a spatial-softmax keypoint encoder (encoder="keypoints") per frame (+ state), then the MLP.
    head="gaussian": lib/nets.py's Actor (tanh-Gaussian, as sac.py), one action, env units."""

    def __init__(
        self,
        state_dim: int,
        action_dim: int,
        obs_horizon: int = 1,
        chunk_size: int = 8,
        hidden_dim: int = 512,
        head: str = "chunk",
        image_shape: Optional[list] = None,
        feature_dim: int = 256,
        encoder: str = "nature",
        aux_dim: int = 0,
        head_input: str = "features",
        encoder_config: Optional[dict] = None,
    ):
        super().__init__()
        self.head, self.obs_horizon, self.chunk_size, self.action_dim = head, obs_horizon, chunk_size, action_dim
        self.encoder = None
        in_dim = state_dim
        if image_shape:
            c, h, w = image_shape
            if encoder == "keypoints":
                self.encoder = KeypointEncoder(c, h, w, state_dim)
            else:
                image_encoder = enc_lib.make_image_encoder(c, h, w, feature_dim, encoder_config)
                self.encoder = PixelEncoder(c, h, w, state_dim, feature_dim, image_encoder=image_encoder)
            in_dim = self.encoder.out_dim
        # auxiliary head (training target, and with head_input="aux" the only thing the policy head sees
        # of the image): the newest frame's encoder features -> an object's position
        self.aux = nn.Linear(in_dim, aux_dim) if aux_dim else None
        self.head_input = head_input
        if head_input == "aux":
            in_dim = state_dim + aux_dim
        if head == "gaussian":
            self.actor = Actor(in_dim * obs_horizon, action_dim, hidden_dim)
        else:
            self.net = mlp(in_dim * obs_horizon, hidden_dim, chunk_size * action_dim)

    def features(self, state: torch.Tensor, rgb: Optional[torch.Tensor] = None) -> torch.Tensor:
        """state (B, h, D) normalized, rgb (B, h, C, H, W) uint8 -> (B, h * F)."""
        B, h = state.shape[:2]
        if self.encoder is not None:
            x = self.encoder(rgb.flatten(0, 1), state.flatten(0, 1))
            return x.reshape(B, -1)
        return state.reshape(B, -1)

    def forward(self, state: torch.Tensor, rgb: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(B, H, A): normalized actions for head=chunk, env actions for head=gaussian (H = 1)."""
        return self.act(self.head_in(self.features(state, rgb), state))

    def head_in(self, x: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """What the policy head sees: the encoder features, or (head_input="aux") the state and the
        predicted object position per frame, detached: the image reaches the actions only through that
        position, so the head cannot latch on to whatever else identifies a demo frame."""
        if self.head_input != "aux":
            return x
        return torch.cat([state, self.aux_positions(x).detach()], -1).flatten(1)

    def aux_positions(self, x: torch.Tensor) -> torch.Tensor:
        """(B, h * F) features -> (B, h, aux_dim): the auxiliary head applied to each frame's features."""
        return self.aux(x.reshape(len(x), self.obs_horizon, -1))

    def act(self, x: torch.Tensor) -> torch.Tensor:
        if self.head == "gaussian":
            return self.actor.deterministic(x)[:, None]
        return self.net(x).reshape(-1, self.chunk_size, self.action_dim)


class Normalizer(nn.Module):
    """Dataset statistics of the kept state dims and of the actions, applied at train and eval time
    and saved inside the checkpoint (buffers)."""

    def __init__(
        self,
        keep: torch.Tensor,
        state_mean: torch.Tensor,
        state_std: torch.Tensor,
        action_mean: torch.Tensor,
        action_std: torch.Tensor,
    ):
        super().__init__()
        for k, v in dict(
            keep=keep, state_mean=state_mean, state_std=state_std, action_mean=action_mean, action_std=action_std
        ).items():
            self.register_buffer(k, v.clone())

    @classmethod
    def fit(cls, keep: torch.Tensor, state: torch.Tensor, actions: torch.Tensor, min_std: float = 1e-2) -> "Normalizer":
        s = state[:, keep]
        return cls(keep, s.mean(0), s.std(0).clamp_min(min_std), actions.mean(0), actions.std(0).clamp_min(min_std))

    @classmethod
    def empty(cls, n_keep: int, action_dim: int) -> "Normalizer":
        z = torch.zeros
        return cls(torch.zeros(n_keep, dtype=torch.long), z(n_keep), z(n_keep), z(action_dim), z(action_dim))

    def state(self, x: torch.Tensor) -> torch.Tensor:
        return (x[..., self.keep] - self.state_mean) / self.state_std

    def action(self, a: torch.Tensor) -> torch.Tensor:
        return (a - self.action_mean) / self.action_std

    def unaction(self, a: torch.Tensor) -> torch.Tensor:
        return a * self.action_std + self.action_mean


class EvalPolicy(nn.Module):
    """The deployed policy: keeps the observation history and the recent chunks of each env.
    `reset()` (called by lib/evaluation.evaluate after every env reset) clears both."""

    def __init__(
        self,
        model: BCPolicy,
        norm: Normalizer,
        temporal_ensemble: bool = True,
        ensemble_decay: float = 0.01,
        exec_horizon: int = 4,
    ):
        super().__init__()
        self.model, self.norm = model, norm
        self.temporal_ensemble, self.decay = temporal_ensemble, ensemble_decay
        self.exec_horizon = min(exec_horizon, model.chunk_size)
        self.reset()

    def reset(self):
        self.hist_state = self.hist_rgb = None
        self.chunks = None  # temporal ensembling: (N, H, H, A), newest chunk first
        self.queue, self.queue_pos = None, 0

    def _push(self, obs) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        state = obs["state"] if isinstance(obs, dict) else obs
        state = self.norm.state(state.float())[:, None]
        rgb = obs["rgb"][:, None] if isinstance(obs, dict) else None
        h = self.model.obs_horizon
        if self.hist_state is None:
            self.hist_state = state.expand(-1, h, -1).clone()
            self.hist_rgb = rgb.expand(-1, h, -1, -1, -1).clone() if rgb is not None else None
        else:
            self.hist_state = torch.cat([self.hist_state[:, 1:], state], 1)
            if rgb is not None:
                self.hist_rgb = torch.cat([self.hist_rgb[:, 1:], rgb], 1)
        return self.hist_state, self.hist_rgb

    def _predict(self, state, rgb) -> torch.Tensor:
        out = self.model(state, rgb)
        return out if self.model.head == "gaussian" else self.norm.unaction(out)

    @torch.no_grad()
    def forward(self, obs) -> torch.Tensor:
        """obs on the env's device (which may differ from the learner's: CUDA learner, CPU-sim evaluation)
        -> actions on the env's device."""
        env_device = (obs["state"] if isinstance(obs, dict) else obs).device
        return self._act(_on_device(obs, self.norm.keep.device)).to(env_device)

    def _act(self, obs) -> torch.Tensor:
        state, rgb = self._push(obs)
        H = self.model.chunk_size
        if H == 1:
            return self._predict(state, rgb)[:, 0]
        if not self.temporal_ensemble:
            if self.queue is None or self.queue_pos >= self.exec_horizon:
                self.queue, self.queue_pos = self._predict(state, rgb), 0
            a = self.queue[:, self.queue_pos]
            self.queue_pos += 1
            return a
        chunk = self._predict(state, rgb)
        N = chunk.shape[0]
        if self.chunks is None:
            self.chunks = chunk.new_zeros(N, H, H, chunk.shape[-1])
            self.n = 0
        self.chunks = torch.roll(self.chunks, 1, dims=1)
        self.chunks[:, 0] = chunk
        self.n = min(self.n + 1, H)
        j = torch.arange(self.n, device=chunk.device)
        preds = self.chunks[:, j, j]  # (N, n, A): what each chunk says for now
        w = torch.exp(-self.decay * (self.n - 1 - j).float())  # oldest chunk first, as in ACT
        return (preds * w[None, :, None]).sum(1) / w.sum()


def _on_device(obs, device: torch.device):
    return {k: v.to(device) for k, v in obs.items()} if isinstance(obs, dict) else obs.to(device)


def build_policy(model_kwargs: dict, args: dict, device) -> EvalPolicy:
    model = BCPolicy(**model_kwargs["model"]).to(device)
    norm = Normalizer.empty(model_kwargs["n_keep"], model_kwargs["model"]["action_dim"]).to(device)
    return EvalPolicy(
        model, norm, args.get("temporal_ensemble", True), args.get("ensemble_decay", 0.01), args.get("exec_horizon", 4)
    ).to(device)


def load_policy(ckpt: dict, device: torch.device):
    """Rebuild the evaluation policy (with its normalization stats) from a checkpoint (evaluate.py)."""
    policy = build_policy(ckpt["model_kwargs"], ckpt["args"], device)
    policy.load_state_dict(ckpt["state_dict"])
    policy.eval()
    return policy


# ----------------------------------------------------------------------------- flags
def eval_backend(requested: str, demo_backend: Optional[str], control_mode: Optional[str]) -> str:
    """The evaluation envs' backend. `auto` is the demos' own backend: the same action means different
    joint targets on the two sims for end-effector control (mani_skill 3.0.1: iterative IK on the CPU,
    one damped-least-squares step on the GPU), so a policy cloned from CPU-converted demos is judged on
    the CPU sim. An explicit backend that differs from the demos' is used, with a warning."""
    if requested == "auto" and demo_backend is not None:
        return envs_lib.resolve_sim_backend(demo_backend)
    backend = envs_lib.resolve_sim_backend(requested)
    if demo_backend is not None and backend.replace("batched-", "") != demo_backend:
        ik = " (end-effector control: the IK differs between the backends)" if "ee" in (control_mode or "") else ""
        print(
            f"bc: warning: the demos were converted on the {demo_backend} sim, evaluation runs on {backend}{ik}; "
            f"the success measured here is not the one the demos' own backend would give"
        )
    return backend


def resolve_args(args: Args, backend: str) -> Args:
    """Check every flag that needs no demo file (one line, exit 2) and write the policy-, mode- and
    backend-dependent defaults back into args, so config.yaml and checkpoints record the values used."""
    check_positive(
        args,
        "num_demos",
        "num_eval_envs",
        "num_eval_episodes",
        "total_iters",
        "max_episode_steps",
        "chunk_size",
        "exec_horizon",
        "obs_horizon",
        "hidden_dim",
        "feature_dim",
        "batch_size",
        "learning_rate",
        "log_freq",
    )
    check_non_negative(args, "eval_freq", "weight_decay", "obs_noise", "aux_coef", "ensemble_decay")
    check_choice("obs-mode", args.obs_mode, ("state", "rgb", "rgbd"))
    check_choice("policy", args.policy, ("chunk", "gaussian"))
    enc_lib.check_encoder_flags(args, args.obs_mode, args.learning_rate, others=("keypoints",))
    check_choice("loss", args.loss, ("mse", "l1"))
    check_choice("head-input", args.head_input, ("features", "aux"))
    check_choice("aug", args.aug, ("none", "shift"))
    check_choice("dr", args.dr, DR_LEVELS)
    if args.dr != "off" and args.obs_mode == "state":
        raise UserError("--dr randomizes images: it needs --obs-mode rgb or rgbd")
    if args.policy == "gaussian" and args.chunk_size not in (None, 1):
        raise UserError(
            f"--policy gaussian predicts one action per query: --chunk-size must be 1 (got {args.chunk_size})"
        )
    if args.head_input == "aux" and (args.obs_mode == "state" or args.aux_coef == 0):
        raise UserError(
            "--head-input aux needs pixels (--obs-mode rgb/rgbd) and --aux-coef > 0: the head "
            "sees the position the image encoder learns to predict"
        )
    if not args.demo_path:
        raise UserError("--demo-path is required (collect_demos.py writes one)")
    chunk, pixels = args.policy == "chunk", args.obs_mode != "state"
    args.env_id = envs_lib.resolve_env_id(args.env_id)
    check_sim_dr_flags(args.env_id, None, args.eval_variation)
    args.hidden_dim = args.hidden_dim or (512 if chunk else 256)
    args.chunk_size = args.chunk_size or (16 if chunk else 1)
    args.num_eval_envs = args.num_eval_envs or (16 if backend == "gpu" else 2)
    args.batch_size = args.batch_size or (64 if pixels else 256)
    return args


def resolve_defaults(args: Args, info: dict) -> None:
    """Fill the defaults that depend on the demo file with the best measured settings (docs/bc.md):
    from pixels the auxiliary position loss at weight 10 if the demos record --aux-actor (else off,
    with a note); from state no auxiliary loss. A flag given explicitly is kept."""
    if args.aux_coef is None:
        args.aux_coef = 0.0
        if args.obs_mode != "state" and demos_record_actor(args.demo_path, info, args.aux_actor):
            args.aux_coef = 10.0
        elif args.obs_mode != "state":
            print(
                f"bc: note: {args.demo_path} records no '{args.aux_actor}' actor state: training without the "
                f"auxiliary position loss (--aux-actor names another actor)"
            )


def check_demo_args(args: Args, info: dict) -> None:
    """The demo file must hold this task's demos in the obs mode to learn, with a control mode."""
    if info["env_id"] != args.env_id:
        raise UserError(f"{args.demo_path} holds {info['env_id']} demos, not {args.env_id}", code=1)
    if args.head_input == "aux" and args.aux_coef <= 0:
        raise UserError(
            "--head-input aux needs --aux-coef > 0 (these demos record no "
            f"'{args.aux_actor}' actor state, so it defaults to 0): the head sees the position the "
            "image encoder learns to predict"
        )
    demo_obs = info["obs_mode"] or "none"
    want = {"state": ("state",), "rgb": ("rgb",), "rgbd": ("rgbd", "rgb+depth")}[args.obs_mode]
    if demo_obs not in want:
        raise UserError(
            f"{args.demo_path} has obs mode '{demo_obs}', not '{args.obs_mode}': convert it with "
            f"collect_demos.py --convert-only --obs-mode {args.obs_mode}",
            code=1,
        )
    if not info["control_mode"]:
        raise UserError(f"{args.demo_path}: its json names no control mode", code=1)


# ----------------------------------------------------------------------------- main
def main(args: Args):
    if args.resume:
        args, _ = resume_args(args, "bc")
    if args.demo_path and Path(args.demo_path).is_file():  # the eval backend follows the demos (eval_backend)
        info = read_demo_info(args.demo_path)
        backend = eval_backend(args.sim_backend, demo_sim_backend(info, args.demo_path), info["control_mode"])
    else:  # resolve_args / read_demo_info say what is missing
        backend = envs_lib.resolve_sim_backend(args.sim_backend)
    args = resolve_args(args, backend)
    info = read_demo_info(args.demo_path)
    args.sim_backend = backend  # what was used goes into config.yaml and the checkpoints
    resolve_defaults(args, info)
    check_demo_args(args, info)
    envs_lib.configure_torch_threads(backend)  # 1 thread on CPU: the eval envs' workers need the cores
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    env_id = args.env_id
    seed_everything(args.seed)
    ckpt = load_resume_checkpoint(args.resume, "bc", device) if args.resume else None
    start_iter = ckpt["train_state"]["iteration"] if ckpt else 0
    if start_iter > args.total_iters:
        raise UserError(
            f"--resume {args.resume}: last.pt is at iteration {start_iter}, past --total-iters {args.total_iters}"
        )

    pixels = args.obs_mode != "state"
    image_size, cameras = 64, None
    if pixels:  # the eval env renders what the demos saw: same cameras, same size
        cameras, image_size = demo_image_spec(args.demo_path, info)
    run_log = RunLogger(
        args,
        "bc",
        env_id,
        args.seed,
        args.runs_dir,
        args.track,
        args.wandb_project,
        total_steps=args.total_iters,
        exp_name=args.exp_name,
        resume_dir=args.resume,
        resume_step=start_iter,
    )
    eval_envs = envs_lib.make_env(
        env_id,
        args.num_eval_envs,
        args.obs_mode,
        image_size=image_size,
        cameras=cameras,
        control_mode=info["control_mode"],
        sim_backend=backend,
        partial_reset=False,
        reconfigure=True,
        max_episode_steps=args.max_episode_steps,
        video_dir=run_log.video_dir if args.capture_video else None,
        env_kwargs=demo_env_kwargs(info),
        variation=args.eval_variation,
    )
    eval_envs.reset(seed=args.seed + 1_000_000)
    layout = eval_envs.state_layout()

    t0 = time.time()
    aux_actor = args.aux_actor if args.aux_coef > 0 else None
    data = load_demos(args.demo_path, args.obs_mode, args.num_demos, layout if pixels else None, aux_actor)
    if data["state"].shape[1] != sum(s for _, s in layout):
        raise UserError(
            f"demo state has {data['state'].shape[1]} dims, the env's has "
            f"{sum(s for _, s in layout)}: the demos were converted for another task/obs mode",
            code=1,
        )
    if data["actions"].shape[1] != eval_envs.action_dim:
        raise UserError(
            f"demo actions have {data['actions'].shape[1]} dims, {info['control_mode']} has {eval_envs.action_dim}",
            code=1,
        )
    load_s = time.time() - t0
    keep = keep_index(layout, args.drop_state_keys)
    norm = Normalizer.fit(keep, data["state"], data["actions"]).to(device)
    if aux_actor:  # standardised target, like the actions
        aux_mean, aux_std = data["aux"].mean(0), data["aux"].std(0).clamp_min(1e-3)
        data["aux"] = (data["aux"] - aux_mean) / aux_std
    for k in ("state", "actions", "step_frame", "ep_start", "ep_last", "rgb", "aux"):
        if k in data:
            data[k] = data[k].to(device)
    S = len(data["actions"])
    print(
        f"bc: {env_id} {args.obs_mode} {info['control_mode']} | {data['num_demos']} demos, {S} steps "
        f"(episode length {min(data['lengths'])}-{max(data['lengths'])}, mean {np.mean(data['lengths']):.1f}) "
        f"loaded in {load_s:.1f}s | policy={args.policy} chunk={args.chunk_size} obs_horizon={args.obs_horizon} "
        f"state dims {len(keep)}/{data['state'].shape[1]} | device={device}"
    )
    overlap = set(s for s in data["seeds"] if s is not None) & set(
        range(args.seed + 1_000_000, args.seed + 2_000_000 + args.num_eval_episodes)
    )
    if overlap:
        print(f"bc: warning: {len(overlap)} demo seeds are also evaluation seeds")

    image_shape = list(data["rgb"].shape[1:]) if pixels else None
    model_kwargs = dict(
        model=dict(
            state_dim=len(keep),
            action_dim=eval_envs.action_dim,
            obs_horizon=args.obs_horizon,
            chunk_size=args.chunk_size,
            hidden_dim=args.hidden_dim,
            head=args.policy,
            image_shape=image_shape,
            feature_dim=args.feature_dim,
            encoder=args.encoder,
            aux_dim=3 if aux_actor else 0,
            head_input=args.head_input,
            encoder_config=enc_lib.encoder_config(args) if pixels else None,
        ),
        n_keep=len(keep),
    )
    model = BCPolicy(**model_kwargs["model"]).to(device)
    if args.policy == "gaussian":
        model.actor.set_action_bounds(eval_envs.action_low.to(device), eval_envs.action_high.to(device))
    policy = EvalPolicy(model, norm, args.temporal_ensemble, args.ensemble_decay, args.exec_horizon).to(device)
    image_encoder = model.encoder.cnn if pixels and args.encoder != "keypoints" else None
    if image_encoder is not None:  # --encoder-weights, --freeze-encoder
        encoder_loaded = enc_lib.prepare_encoder(image_encoder, args, resumed=bool(ckpt))
        print(f"bc: {enc_lib.describe(image_encoder)}" + (f"; loaded the {encoder_loaded}" if encoder_loaded else ""))
    unfreezer = enc_lib.Unfreezer.from_args(image_encoder, args, "bc") if image_encoder is not None else None
    params = enc_lib.trainable(model.parameters())
    optimizer = torch.optim.AdamW(params, lr=args.learning_rate, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.total_iters)
    augment = random_shift if pixels and args.aug == "shift" else None
    rgb_channels = rgb_channel_count(args.obs_mode, data["rgb"].shape[-3]) if pixels else None

    def train_step(idx: torch.Tensor) -> torch.Tensor:
        frames, steps, valid = batch_indices(data, idx, args.obs_horizon, args.chunk_size)
        state = norm.state(data["state"][frames])  # (B, h, D)
        if args.obs_noise > 0:
            state = state + args.obs_noise * torch.randn_like(state)
        rgb = None
        if pixels:
            rgb = data["rgb"][frames]  # (B, h, C, H, W) uint8
            if augment is not None:
                rgb = augment(rgb.flatten(0, 1)).reshape(rgb.shape)
            if args.dr != "off":  # one draw per sample, shared by its history frames
                flat = rgb.flatten(0, 1)
                rgb = randomize_batch(flat, args.dr, rgb_channels, group=rgb.shape[1]).reshape(rgb.shape)
        target = data["actions"][steps]  # (B, H, A)
        x = model.features(state, rgb)  # (B, h * F)
        pred = model.act(model.head_in(x, state))
        if args.policy == "chunk":
            target = norm.action(target)
        err = (pred - target).abs() if args.loss == "l1" else (pred - target).pow(2)
        mask = valid[..., None].float()
        loss = (err * mask).sum() / (mask.sum() * err.shape[-1])
        aux_loss = torch.zeros((), device=loss.device)
        if aux_actor:  # the newest frame's features -> the object's position in that frame
            aux_loss = (model.aux_positions(x)[:, -1] - data["aux"][frames[:, -1]]).pow(2).mean()
        return loss, aux_loss

    gen = torch.Generator(device=device).manual_seed(args.seed)  # draws the demo steps of each batch
    loss_sum, aux_sum = torch.zeros((), device=device), torch.zeros((), device=device)
    wall0 = 0.0  # training wall time before this process (a resumed run)

    def save(path, step, metrics, resumable):
        train_state = (
            dict(
                optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict(),
                generator=gen.get_state(),
                rng=rng_state(),
                iteration=step,
                evaluator=evaluator.state(),
                loss_sum=float(loss_sum),
                aux_sum=float(aux_sum),
                wall_s=wall0 + time.time() - start,
            )
            if resumable
            else None
        )
        save_checkpoint(
            path,
            script="bc",
            args=args,
            env=eval_envs,
            model_kwargs=model_kwargs,
            state_dict=policy.state_dict(),
            step=step,
            extra=dict(demo_path=str(args.demo_path), num_demos=data["num_demos"], eval=metrics),
            train_state=train_state,
        )

    evaluator = Evaluator(run_log, eval_envs, policy, args, save)
    if ckpt:
        ts = ckpt["train_state"]
        policy.load_state_dict(ckpt["state_dict"])
        if unfreezer is not None:  # past --unfreeze-after: the saved optimizer state has the unfrozen group
            unfreezer.maybe_unfreeze(start_iter, optimizer, scheduler=scheduler)
        optimizer.load_state_dict(ts["optimizer"])
        scheduler.load_state_dict(ts["scheduler"])
        if scheduler.T_max != args.total_iters:  # a larger --total-iters: the cosine over the new total, from here
            scheduler.T_max = args.total_iters
            for group, base_lr in zip(optimizer.param_groups, scheduler.base_lrs):
                group["lr"] = base_lr * (1 + math.cos(math.pi * start_iter / args.total_iters)) / 2
        gen.set_state(ts["generator"].cpu())
        evaluator.load_state(ts["evaluator"])
        set_rng_state(ts["rng"])
        loss_sum.fill_(ts["loss_sum"])
        aux_sum.fill_(ts["aux_sum"])
        wall0 = ts["wall_s"]
    start = time.time()
    t_log = time.time()
    for it in range(start_iter + 1, args.total_iters + 1):
        if unfreezer is not None:
            unfreezer.maybe_unfreeze(it, optimizer, run_log.log, scheduler)
        model.train()
        idx = torch.randint(0, S, (args.batch_size,), device=device, generator=gen)
        loss, aux_loss = train_step(idx)
        optimizer.zero_grad(set_to_none=True)
        (loss + args.aux_coef * aux_loss).backward()
        optimizer.step()
        scheduler.step()
        loss_sum += loss.detach()
        aux_sum += aux_loss.detach()
        if it % args.log_freq == 0:
            now = time.time()
            logs = {
                "losses/bc_loss": loss_sum / args.log_freq,
                "charts/learning_rate": scheduler.get_last_lr()[0],
                "time/iters_per_s": args.log_freq / (now - t_log),
                "time/wall_s": wall0 + now - start,
            }
            if aux_actor:
                logs["losses/aux_loss"] = aux_sum / args.log_freq
            run_log.log(it, logs)
            run_log.progress(it, loss=float(loss_sum) / args.log_freq)
            t_log = now
            loss_sum.zero_()
            aux_sum.zero_()
        if args.eval_freq and it % args.eval_freq == 0 and it < args.total_iters:
            model.eval()
            evaluator.maybe_evaluate(it)
            t_log = time.time()
    model.eval()
    train_s = wall0 + time.time() - start
    if evaluator.last_step < args.total_iters:  # else a resumed run whose last.pt is the final one
        evaluator.maybe_evaluate(args.total_iters, force=True)
    final = evaluator.finish(args.total_iters, extra=dict(train_s=train_s, num_demos=data["num_demos"], demo_steps=S))
    run_log.log(args.total_iters, {"time/train_s": train_s})
    run_log.close()
    eval_envs.close()
    return final


if __name__ == "__main__":
    run(main, tyro.cli(Args))
