"""Behavior cloning from ManiSkill demonstrations, judged by success in simulation. Docs: docs/bc.md

    python cleanrl_style/collect_demos.py --env-id PickCube --num-demos 300 --out-dir demos \\
        --obs-mode state --control-mode pd_ee_delta_pos
    python cleanrl_style/bc.py --env-id PickCube \\
        --demo-path demos/PickCube-v1/motionplanning/state/trajectory.state.pd_ee_delta_pos.physx_cpu.h5

Reads top to bottom: Args, demo loading (ManiSkill h5 + json), the policy (MLP or CNN encoder + a head
that predicts a chunk of future actions, or sac.py's tanh-Gaussian actor), the stateful evaluation
policy (observation history, temporal ensembling of overlapping chunks), the training loop.
The env's control mode and image size come from the demo file; evaluation uses a longer time limit
than the task default (--max-episode-steps 100) because motion-planning demos are longer than it.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn as nn
import tyro

from cleanrl_style import common
from cleanrl_style.sac import Actor, mlp


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
    """evaluate every this many gradient steps (0 = only at the end)"""
    total_iters: int = 5_000
    """gradient steps (longer training overfits: with 200 PickCube demos success fell from 0.62 at
    5k to 0.42 at 10k steps, docs/bc.md)"""
    max_episode_steps: int = 100
    """time limit of the evaluation episodes (PickCube motion-planning demos take 49-99 steps)"""
    seed: int = 1
    """seed of the training run; evaluation uses seed + 1_000_000 (+ i) and, for final_eval.json,
    seed + 2_000_000 (+ i): never the demo seeds (collect_demos.py starts at 0)"""

    policy: str = "chunk"
    """chunk: MLP/CNN predicting the next --chunk-size actions (ACT-style), executed with temporal
    ensembling; gaussian: one action from sac.py's tanh-Gaussian actor (same architecture, so SAC can
    start from it), trained on the mean with MSE"""
    chunk_size: int = 16
    """actions predicted per query (policy=chunk)"""
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
    hidden_dim: int = 512
    """width of the MLP layers (policy=gaussian keeps sac.py's 256 unless set)"""
    feature_dim: int = 256
    """CNN feature size (rgb/rgbd, --encoder nature)"""
    encoder: str = "nature"
    """image encoder (rgb/rgbd): nature (sac_rgb's NatureCNN; a SAC run can start from it) | keypoints
    (conv stack + spatial softmax: 32 learned image positions)"""
    aux_coef: Optional[float] = None
    """weight of an auxiliary loss (rgb/rgbd): regress the position of --aux-actor (read from the demos'
    recorded env_states; never a policy input) from the image encoder's features; 0 = off (default:
    10 from pixels when the demos record --aux-actor, the best measured setting; 0 from state)"""
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
    log_freq: int = 1000
    """log losses every this many gradient steps"""

    sim_backend: str = "auto"
    """auto, gpu or cpu (evaluation envs; the learner uses CUDA when present)"""
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
    """write best.pt / last.pt"""


# ----------------------------------------------------------------------------- demos
def _state_from_h5(obs_group, layout: list[tuple[str, int]]) -> np.ndarray:
    """The flat state vector of a pixel-mode demo, assembled in the env's order from the h5 groups
    (h5 lists keys alphabetically, the env flattens in insertion order)."""
    parts = []
    for name, size in layout:
        if name not in obs_group:
            raise common.UserError(f"demo obs has no '{name}' (the env's state has it): wrong obs mode or task?")
        x = np.asarray(obs_group[name][:])
        parts.append(x.reshape(x.shape[0], -1).astype(np.float32))
    return np.concatenate(parts, axis=1)


def read_demo_info(path: str) -> dict:
    """The json next to a ManiSkill .h5: env id, obs mode, control mode, episodes."""
    h5 = Path(path)
    if not h5.is_file():
        raise common.UserError(f"demo file not found: {h5}", code=1)
    meta = h5.with_suffix(".json")
    if not meta.is_file():
        raise common.UserError(f"{h5} has no {meta.name} next to it (ManiSkill trajectories are .h5 + .json)", code=1)
    try:
        info = json.loads(meta.read_text())
        env_info = info["env_info"]
        return dict(env_id=env_info["env_id"], env_kwargs=env_info.get("env_kwargs", {}),
                    obs_mode=env_info.get("env_kwargs", {}).get("obs_mode"),
                    control_mode=env_info.get("env_kwargs", {}).get("control_mode"),
                    max_episode_steps=env_info.get("max_episode_steps"), episodes=info["episodes"],
                    cleanrl_style=info.get("cleanrl_style", {}))
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise common.UserError(f"{meta} is not a ManiSkill trajectory json ({type(e).__name__}: {e})", code=1) from e


def load_demos(path: str, obs_mode: str, num_demos: Optional[int], layout: Optional[list] = None,
               aux_actor: Optional[str] = None) -> dict:
    """All demo steps as tensors (CPU): obs (F, D) float32 state and/or (F, C, H, W) uint8 rgb for the
    F = sum(T_i + 1) frames, actions (S, A) for the S = sum(T_i) steps, and per step the index of its
    frame, the first frame of its episode and the last step of its episode. With aux_actor, also that
    actor's position per frame (F, 3), read from the recorded env_states (a training target, not an input)."""
    import h5py

    info = read_demo_info(path)
    episodes = info["episodes"][:num_demos] if num_demos else info["episodes"]
    if not episodes:
        raise common.UserError(f"{path} holds no episodes", code=1)
    if num_demos and len(episodes) < num_demos:
        raise common.UserError(f"--num-demos {num_demos} but {path} holds only {len(episodes)}", code=1)
    states, rgbs, actions, aux = [], [], [], []
    try:
        with h5py.File(path, "r") as f:
            for ep in episodes:
                g = f[f"traj_{ep['episode_id']}"]
                actions.append(np.asarray(g["actions"][:], dtype=np.float32))
                obs = g["obs"]
                if obs_mode == "state":
                    if not isinstance(obs, h5py.Dataset):
                        raise common.UserError(f"{path} holds '{info['obs_mode']}' observations, not flat state "
                                               f"(convert with collect_demos.py --obs-mode state)", code=1)
                    states.append(np.asarray(obs[:], dtype=np.float32))
                else:
                    if isinstance(obs, h5py.Dataset) or "sensor_data" not in obs:
                        raise common.UserError(f"{path} holds no camera images (obs mode '{info['obs_mode']}'); "
                                               f"convert with collect_demos.py --obs-mode {obs_mode}", code=1)
                    cams = list(obs["sensor_data"].keys())
                    chans = [np.asarray(obs["sensor_data"][c]["rgb"][:]) for c in cams]
                    if obs_mode == "rgbd":
                        for c in cams:
                            d = np.asarray(obs["sensor_data"][c]["depth"][:]).astype(np.float32) * (255.0 / common.DEPTH_MAX_MM)
                            chans.append(np.clip(np.round(d), 0, 255).astype(np.uint8))
                    rgbs.append(np.concatenate(chans, axis=-1).transpose(0, 3, 1, 2))
                    states.append(_state_from_h5(obs, layout or []))
                if aux_actor:
                    actors = g["env_states/actors"] if "env_states/actors" in g else {}
                    if aux_actor not in actors:
                        raise common.UserError(f"--aux-actor '{aux_actor}' is not in {path}'s env_states "
                                               f"(actors: {', '.join(actors) or 'none recorded'})", code=1)
                    aux.append(np.asarray(actors[aux_actor][:, :3], dtype=np.float32))
                if len(states[-1]) != len(actions[-1]) + 1:
                    raise common.UserError(f"{path}: episode {ep['episode_id']} has {len(states[-1])} observations "
                                           f"for {len(actions[-1])} actions (expected one more)", code=1)
    except (OSError, KeyError) as e:
        if isinstance(e, common.UserError):
            raise
        raise common.UserError(f"could not read demos from {path}: corrupt or not a ManiSkill h5 ({type(e).__name__}: "
                               f"{str(e).splitlines()[0] if str(e) else ''})", code=1) from e
    lens = [len(a) for a in actions]
    step_frame, ep_start, ep_last = [], [], []
    f0 = s0 = 0
    for T in lens:
        step_frame.append(np.arange(f0, f0 + T))
        ep_start.append(np.full(T, f0))
        ep_last.append(np.full(T, s0 + T - 1))
        f0, s0 = f0 + T + 1, s0 + T
    out = dict(state=torch.from_numpy(np.concatenate(states)), actions=torch.from_numpy(np.concatenate(actions)),
               step_frame=torch.from_numpy(np.concatenate(step_frame)), ep_start=torch.from_numpy(np.concatenate(ep_start)),
               ep_last=torch.from_numpy(np.concatenate(ep_last)), num_demos=len(episodes), lengths=lens,
               seeds=[ep.get("episode_seed") for ep in episodes], info=info)
    if rgbs:
        out["rgb"] = torch.from_numpy(np.concatenate(rgbs))
        out["cameras"] = cams
    if aux:
        out["aux"] = torch.from_numpy(np.concatenate(aux))
    return out


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
        raise common.UserError(f"--drop-state-keys {unknown} not in this env's state; it has {names}")
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

    def __init__(self, in_channels: int, height: int, width: int, state_dim: int, num_keypoints: int = 32,
                 channels: int = 32):
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
            nn.Conv2d(channels, num_keypoints, 1))
        with torch.no_grad():
            h, w = self.convs(torch.zeros(1, in_channels, height, width)).shape[2:]
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
        self.register_buffer("pos", torch.stack([xs.flatten(), ys.flatten()], 1))  # (h*w, 2)
        self.log_temperature = nn.Parameter(torch.zeros(()))
        self.state_dim = state_dim
        self.out_dim = 2 * num_keypoints + state_dim

    def forward(self, rgb: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        maps = self.convs(rgb.float() / 255.0).flatten(2)                          # (B, K, h*w)
        attn = torch.softmax(maps / self.log_temperature.exp(), dim=-1)
        kp = (attn @ self.pos).flatten(1)                                           # (B, 2K)
        return torch.cat([kp, state], dim=-1) if self.state_dim else kp


class BCPolicy(nn.Module):
    """obs history -> chunk of actions. State: MLP over the normalized (kept) state of the last
    obs_horizon frames. Pixels: sac_rgb's NatureCNN encoder (encoder="nature") or a spatial-softmax
    keypoint encoder (encoder="keypoints") per frame (+ state), then the MLP.
    head="gaussian": sac.py's Actor (tanh-Gaussian, 3x256 by default), one action, env units."""

    def __init__(self, state_dim: int, action_dim: int, obs_horizon: int = 1, chunk_size: int = 8,
                 hidden_dim: int = 512, head: str = "chunk", image_shape: Optional[list] = None,
                 feature_dim: int = 256, encoder: str = "nature", aux_dim: int = 0, head_input: str = "features"):
        super().__init__()
        self.head, self.obs_horizon, self.chunk_size, self.action_dim = head, obs_horizon, chunk_size, action_dim
        self.encoder = None
        in_dim = state_dim
        if image_shape:
            from cleanrl_style.sac_rgb import PixelEncoder

            c, h, w = image_shape
            if encoder == "keypoints":
                self.encoder = KeypointEncoder(c, h, w, state_dim)
            else:
                self.encoder = PixelEncoder(c, h, w, state_dim, feature_dim)
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

    def __init__(self, keep: torch.Tensor, state_mean: torch.Tensor, state_std: torch.Tensor,
                 action_mean: torch.Tensor, action_std: torch.Tensor):
        super().__init__()
        for k, v in dict(keep=keep, state_mean=state_mean, state_std=state_std,
                         action_mean=action_mean, action_std=action_std).items():
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
    `reset()` (called by common.evaluate after every env reset) clears both."""

    def __init__(self, model: BCPolicy, norm: Normalizer, temporal_ensemble: bool = True,
                 ensemble_decay: float = 0.01, exec_horizon: int = 4):
        super().__init__()
        self.model, self.norm = model, norm
        self.temporal_ensemble, self.decay = temporal_ensemble, ensemble_decay
        self.exec_horizon = min(exec_horizon, model.chunk_size)
        self.reset()

    def reset(self):
        self.hist_state = self.hist_rgb = None
        self.chunks = self.ages = None      # temporal ensembling: (N, H, H, A) newest first, (N, H) steps since made
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
        preds = self.chunks[:, j, j]                              # (N, n, A): what each chunk says for now
        w = torch.exp(-self.decay * (self.n - 1 - j).float())     # oldest chunk first, as in ACT
        return (preds * w[None, :, None]).sum(1) / w.sum()


def build_policy(model_kwargs: dict, args: dict, device) -> EvalPolicy:
    model = BCPolicy(**model_kwargs["model"]).to(device)
    norm = Normalizer.empty(model_kwargs["n_keep"], model_kwargs["model"]["action_dim"]).to(device)
    return EvalPolicy(model, norm, args.get("temporal_ensemble", True), args.get("ensemble_decay", 0.01),
                      args.get("exec_horizon", 4)).to(device)


def load_policy(ckpt: dict, device: torch.device):
    """Rebuild the evaluation policy (with its normalization stats) from a checkpoint (evaluate.py)."""
    policy = build_policy(ckpt["model_kwargs"], ckpt["args"], device)
    policy.load_state_dict(ckpt["state_dict"])
    policy.eval()
    return policy


def demos_record_actor(path: str, info: dict, actor: str) -> bool:
    """Whether the first demo of `path` has `actor` under env_states/actors (what --aux-coef needs)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            g = f[f"traj_{info['episodes'][0]['episode_id']}"]
            return "env_states/actors" in g and actor in g["env_states/actors"]
    except (OSError, KeyError, IndexError):
        return False  # load_demos reports what is wrong with the file


def resolve_defaults(args: Args, info: dict) -> None:
    """Fill the mode-dependent defaults with the best measured settings (docs/bc.md): from pixels the
    auxiliary position loss at weight 10 (if the demos record --aux-actor; else off, with a note) and
    batch 64; from state no auxiliary loss and batch 256. Flags given explicitly are kept."""
    pixels = args.obs_mode != "state"
    if args.batch_size is None:
        args.batch_size = 64 if pixels else 256
    if args.aux_coef is None:
        args.aux_coef = 0.0
        if pixels and demos_record_actor(args.demo_path, info, args.aux_actor):
            args.aux_coef = 10.0
        elif pixels:
            print(f"bc: note: {args.demo_path} records no '{args.aux_actor}' actor state: training without the "
                  f"auxiliary position loss (--aux-actor names another actor)")


def check_bc_args(args: Args, info: dict) -> None:
    if args.policy not in ("chunk", "gaussian"):
        raise common.UserError(f"--policy must be chunk or gaussian (got '{args.policy}')")
    if args.encoder not in ("nature", "keypoints"):
        raise common.UserError(f"--encoder must be nature or keypoints (got '{args.encoder}')")
    if args.policy == "gaussian" and args.chunk_size != 1:
        args.chunk_size = 1  # one action per query: what SAC's actor does
    if args.chunk_size < 1 or args.obs_horizon < 1:
        raise common.UserError("--chunk-size and --obs-horizon must be >= 1")
    if args.loss not in ("mse", "l1"):
        raise common.UserError(f"--loss must be mse or l1 (got '{args.loss}')")
    if args.aux_coef < 0:
        raise common.UserError(f"--aux-coef must be >= 0 (got {args.aux_coef})")
    if args.head_input not in ("features", "aux"):
        raise common.UserError(f"--head-input must be features or aux (got '{args.head_input}')")
    if args.head_input == "aux" and (args.aux_coef <= 0 or args.obs_mode == "state"):
        raise common.UserError("--head-input aux needs pixels (--obs-mode rgb/rgbd) and --aux-coef > 0: the head "
                               "sees the position the image encoder learns to predict")
    if args.aug not in ("none", "shift"):
        raise common.UserError(f"--aug must be none or shift (got '{args.aug}')")
    demo_obs = info["obs_mode"] or "none"
    want = {"state": ("state",), "rgb": ("rgb",), "rgbd": ("rgbd", "rgb+depth")}.get(args.obs_mode)
    if want is None:
        raise common.UserError(f"--obs-mode must be state, rgb or rgbd (got '{args.obs_mode}')")
    if demo_obs not in want:
        raise common.UserError(f"{args.demo_path} has obs mode '{demo_obs}', not '{args.obs_mode}': convert it with "
                               f"collect_demos.py --convert-only --obs-mode {args.obs_mode}", code=1)
    if not info["control_mode"]:
        raise common.UserError(f"{args.demo_path}: its json names no control mode", code=1)


# ----------------------------------------------------------------------------- main
def main(args: Args):
    if not args.demo_path:
        raise common.UserError("--demo-path is required (collect_demos.py writes one)")
    info = read_demo_info(args.demo_path)
    env_id = common.resolve_env_id(args.env_id)
    if info["env_id"] != env_id:
        raise common.UserError(f"{args.demo_path} holds {info['env_id']} demos, not {env_id}", code=1)
    resolve_defaults(args, info)
    check_bc_args(args, info)
    backend = common.resolve_sim_backend(args.sim_backend)
    common.configure_torch_threads(backend)  # 1 thread on CPU: the eval envs' workers need the cores
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    num_eval_envs = args.num_eval_envs or (16 if backend == "gpu" else 2)
    common.seed_everything(args.seed)

    pixels = args.obs_mode != "state"
    image_size, cameras = 64, None
    if pixels:  # the eval env renders what the demos saw: same cameras, same size
        import h5py

        with h5py.File(args.demo_path, "r") as f:
            sd = f[f"traj_{info['episodes'][0]['episode_id']}/obs/sensor_data"]
            cameras = list(sd.keys())
            image_size = list(sd[cameras[0]]["rgb"].shape[1:3])
    run = common.RunLogger(args, "bc", env_id, args.seed, args.runs_dir, args.track, args.wandb_project,
                           total_steps=args.total_iters, exp_name=args.exp_name)
    eval_envs = common.make_env(env_id, num_eval_envs, args.obs_mode, image_size=image_size, cameras=cameras,
                                control_mode=info["control_mode"], sim_backend=backend, partial_reset=False,
                                reconfiguration_freq=1, max_episode_steps=args.max_episode_steps,
                                video_dir=run.video_dir if args.capture_video else None,
                                env_kwargs=_demo_env_kwargs(info))
    eval_envs.reset(seed=args.seed + 1_000_000)
    layout = eval_envs.state_layout()

    t0 = time.time()
    aux_actor = args.aux_actor if args.aux_coef > 0 else None
    data = load_demos(args.demo_path, args.obs_mode, args.num_demos, layout if pixels else None, aux_actor)
    if data["state"].shape[1] != sum(s for _, s in layout):
        raise common.UserError(f"demo state has {data['state'].shape[1]} dims, the env's has "
                               f"{sum(s for _, s in layout)}: the demos were converted for another task/obs mode", code=1)
    if data["actions"].shape[1] != eval_envs.action_dim:
        raise common.UserError(f"demo actions have {data['actions'].shape[1]} dims, {info['control_mode']} has "
                               f"{eval_envs.action_dim}", code=1)
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
    print(f"bc: {env_id} {args.obs_mode} {info['control_mode']} | {data['num_demos']} demos, {S} steps "
          f"(episode length {min(data['lengths'])}-{max(data['lengths'])}, mean {np.mean(data['lengths']):.1f}) "
          f"loaded in {load_s:.1f}s | policy={args.policy} chunk={args.chunk_size} obs_horizon={args.obs_horizon} "
          f"state dims {len(keep)}/{data['state'].shape[1]} | device={device}")
    overlap = set(s for s in data["seeds"] if s is not None) & set(range(args.seed + 1_000_000, args.seed + 2_000_000 + args.num_eval_episodes))
    if overlap:
        print(f"bc: warning: {len(overlap)} demo seeds are also evaluation seeds")

    image_shape = list(data["rgb"].shape[1:]) if pixels else None
    hidden = args.hidden_dim if args.policy == "chunk" or args.hidden_dim != 512 else 256
    model_kwargs = dict(model=dict(state_dim=len(keep), action_dim=eval_envs.action_dim, obs_horizon=args.obs_horizon,
                                   chunk_size=args.chunk_size, hidden_dim=hidden, head=args.policy,
                                   image_shape=image_shape, feature_dim=args.feature_dim, encoder=args.encoder,
                                   aux_dim=3 if aux_actor else 0, head_input=args.head_input),
                        n_keep=len(keep))
    model = BCPolicy(**model_kwargs["model"]).to(device)
    if args.policy == "gaussian":
        model.actor.set_action_bounds(eval_envs.action_low.to(device), eval_envs.action_high.to(device))
    policy = EvalPolicy(model, norm, args.temporal_ensemble, args.ensemble_decay, args.exec_horizon).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.total_iters)
    augment = None
    if pixels and args.aug == "shift":
        from cleanrl_style.augment import random_shift

        augment = random_shift

    evaluator = common.Evaluator(run, eval_envs, policy, args, lambda: dict(
        script="bc", args=args, env=eval_envs, model_kwargs=model_kwargs, state_dict=policy.state_dict(),
        extra=dict(demo_path=str(args.demo_path), num_demos=data["num_demos"])))

    def train_step(idx: torch.Tensor) -> torch.Tensor:
        frames, steps, valid = batch_indices(data, idx, args.obs_horizon, args.chunk_size)
        state = norm.state(data["state"][frames])                                  # (B, h, D)
        if args.obs_noise > 0:
            state = state + args.obs_noise * torch.randn_like(state)
        rgb = None
        if pixels:
            rgb = data["rgb"][frames]                                              # (B, h, C, H, W) uint8
            if augment is not None:
                rgb = augment(rgb.flatten(0, 1)).reshape(rgb.shape)
        target = data["actions"][steps]                                            # (B, H, A)
        x = model.features(state, rgb)                                             # (B, h * F)
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

    gen = torch.Generator(device=device).manual_seed(args.seed)
    start = time.time()
    t_log, loss_sum, aux_sum = time.time(), torch.zeros((), device=device), torch.zeros((), device=device)
    for it in range(1, args.total_iters + 1):
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
            logs = {"losses/bc_loss": loss_sum / args.log_freq, "charts/learning_rate": scheduler.get_last_lr()[0],
                    "time/iters_per_s": args.log_freq / (now - t_log), "time/wall_s": now - start}
            if aux_actor:
                logs["losses/aux_loss"] = aux_sum / args.log_freq
            run.log(it, logs)
            run.progress(it, loss=float(loss_sum) / args.log_freq)
            t_log, loss_sum, aux_sum = now, torch.zeros((), device=device), torch.zeros((), device=device)
        if args.eval_freq and it % args.eval_freq == 0 and it < args.total_iters:
            model.eval()
            evaluator.maybe_evaluate(it)
            t_log = time.time()
    model.eval()
    train_s = time.time() - start
    evaluator.maybe_evaluate(args.total_iters, force=True)
    final = evaluator.finish(args.total_iters, extra=dict(train_s=train_s, num_demos=data["num_demos"], demo_steps=S))
    run.log(args.total_iters, {"time/train_s": train_s})
    run.close()
    eval_envs.close()
    return final


def _demo_env_kwargs(info: dict) -> Optional[dict]:
    """Task options recorded with the demos that change the env itself (not obs/control/backend)."""
    skip = {"obs_mode", "control_mode", "sim_backend", "render_backend", "num_envs", "render_mode",
            "sensor_configs", "human_render_camera_configs", "viewer_camera_configs", "reward_mode",
            "shader_dir", "max_episode_steps", "reconfiguration_freq"}
    kw = {k: v for k, v in (info.get("env_kwargs") or {}).items() if k not in skip}
    return kw or None


if __name__ == "__main__":
    common.run(main, tyro.cli(Args))
