"""Envs: task ids, the sim backend, torch threads, pixel observations and the env factory (GPU,
batched and per-process CPU behind one interface). Docs: docs/foundation.md

Backends: `gpu` (ManiSkill's GPU sim, batched rendering, `ManiSkillVectorEnv`), `cpu` (physx_cpu, one
env per worker process, gymnasium vector env) and `batched-cpu`, an internal name for tests: the `gpu`
branch's `ManiSkillVectorEnv` over a one-env physx_cpu simulation, so the code that runs on a GPU
is executed on every CPU commit.

Autoreset semantics of every env made by `make_env` (the ManiSkill / Gymnasium "same step" mode):
  obs, reward, terminated, truncated, info = env.step(action)
  - where `terminated | truncated`, the env has already been reset: `obs` is the first
    observation of the NEW episode.
  - `info["final_observation"]` holds the observation the finished episode really ended in
    (the whole batch is present; only rows where `info["_final_info"]` is True are meaningful).
    Bootstrap from it on truncation, never from `obs`.
  - `info["final_info"]["episode"]` holds the episode metrics (success_once, success_at_end,
    return, episode_len) for the rows where `info["_final_info"]` is True.
  - `info["success"]` (N,) bool is the success flag of the state each returned `obs` row shows:
    for rows that were just reset that is the new episode's first state, so read the finished
    episode's outcome from `info["final_info"]["episode"]`, never from `info["success"]`.
  - with partial_reset=False (evaluation), terminations are ignored: every episode runs to the
    time limit and all envs end and reset together.
"""

from __future__ import annotations

import difflib
import functools
import os
import weakref
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch

from cleanrl_style.lib import sim_dr as sim_dr_lib
from cleanrl_style.lib.runs import UserError, on_exit
from cleanrl_style.lib.video import tile_images, write_video

BACKENDS = ("auto", "gpu", "cpu")  # what users choose; "batched-cpu" is accepted for tests
# episode metrics every branch reports (success_at_end only where terminations are ignored)
EPISODE_KEYS = ("success_once", "success_at_end", "return", "episode_len")
DEPTH_MAX_MM = 2000.0  # rgbd: depth is quantized to uint8 over [0, 2 m] (7.8 mm per level)

_OPEN_ENVS: "weakref.WeakSet[VecEnv]" = weakref.WeakSet()


def close_all_envs() -> None:
    """Close every VecEnv still open (stops CPU worker processes), e.g. after an error."""
    for env in list(_OPEN_ENVS):
        env.close()


on_exit(close_all_envs)


# ----------------------------------------------------------------------------- env ids
def register_our_envs() -> None:
    """Register ManiSkill's tasks and ours (PickCubeDR-v1, lib/pickcube_dr.py). Every process that makes
    envs calls it: the scripts, the CPU backend's worker processes, collect_demos.py's workers."""
    import mani_skill.envs  # noqa: F401  (registers the tasks)

    import cleanrl_style.lib.pickcube_dr  # noqa: F401  (registers PickCubeDR-v1)


def registered_env_ids() -> list[str]:
    from mani_skill.utils.registration import REGISTERED_ENVS

    register_our_envs()

    return sorted(REGISTERED_ENVS.keys())


def resolve_env_id(name: str) -> str:
    """`PickCube` -> `PickCube-v1`; exact ids pass through; anything else is a UserError (exit 2)
    that suggests close names."""
    ids = registered_env_ids()
    if name in ids:
        return name
    by_base: dict[str, list[str]] = {}
    for i in ids:
        base, _, ver = i.rpartition("-v")
        by_base.setdefault((base if base else i).lower(), []).append(i)
    hits = by_base.get(name.lower())
    if hits:  # newest version of that task
        return max(hits, key=lambda i: int(i.rpartition("-v")[2]) if i.rpartition("-v")[2].isdigit() else -1)
    close = difflib.get_close_matches(name, ids, n=4, cutoff=0.5)
    close += [
        i
        for i in difflib.get_close_matches(name.lower(), list(by_base), n=4, cutoff=0.5)
        for i in by_base[i]
        if i not in close
    ]
    hint = (
        f" Did you mean: {', '.join(close[:4])}?"
        if close
        else " See `python -m mani_skill.utils.download_asset --list` or docs/foundation.md."
    )
    raise UserError(f"unknown env id '{name}'.{hint}", code=2)


# ----------------------------------------------------------------------------- env factory
def resolve_sim_backend(sim_backend: str) -> str:
    """'auto' -> 'gpu' when CUDA is present, else 'cpu'. 'batched-cpu' (tests) passes through."""
    if sim_backend not in BACKENDS + ("batched-cpu",):
        raise UserError(f"--sim-backend must be auto, gpu or cpu (got '{sim_backend}')")
    if sim_backend == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    if sim_backend == "gpu" and not torch.cuda.is_available():
        raise UserError("--sim-backend gpu needs CUDA, but torch.cuda.is_available() is False; use --sim-backend cpu")
    return sim_backend


def configure_torch_threads(backend: str, threads: Optional[int] = None) -> int:
    """torch's intra-op threads for the learner: `threads` when given; else one thread on the CPU
    backends unless OMP_NUM_THREADS says otherwise, because the env workers and the software
    renderer already occupy the cores and torch's threads would spin against them (measured in
    docs/troubleshooting.md#torch-threads); torch's own choice on the GPU. Returns the count."""
    if threads is not None:
        if threads < 1:
            raise UserError(f"--torch-threads must be >= 1 (got {threads})")
        torch.set_num_threads(threads)
    elif backend != "gpu" and not os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(1)
    return torch.get_num_threads()


def env_device(backend: str) -> torch.device:
    """The device the envs of `backend` return observations on."""
    return torch.device("cuda", torch.cuda.current_device()) if backend == "gpu" else torch.device("cpu")


def render_backend_for(sim_backend: str, cuda_available: bool) -> str:
    """SAPIEN's renderer for a ManiSkill sim backend: the GPU renderer wherever CUDA is present, also
    under the CPU sim (physx_cpu), where rendering on the CPU (lavapipe) is ~25 RGB frames/s, fails on
    hosts that have an NVIDIA driver but no CPU Vulkan driver, and differs from the renderer a GPU
    machine's demo conversion used; the CPU renderer only where there is no CUDA."""
    return "gpu" if cuda_available or sim_backend != "physx_cpu" else "cpu"


def _size_hw(image_size: Union[int, Sequence[int]]) -> tuple[int, int]:
    if isinstance(image_size, int):
        return image_size, image_size
    h, w = (int(v) for v in image_size)
    return h, w


def state_layout_of(obs: dict, prefix: str = "") -> list[tuple[str, int]]:
    """(name, size) of every leaf of a batched obs dict, in the order flatten_state_dict uses."""
    out: list[tuple[str, int]] = []
    for k, v in obs.items():
        if k in ("sensor_data", "sensor_param"):
            continue
        if isinstance(v, dict):
            out += state_layout_of(v, f"{prefix}{k}/")
        else:
            out.append((f"{prefix}{k}", int(np.prod(tuple(v.shape[1:]))) if v.ndim > 1 else 1))
    return out


def quantize_depth(depth_mm):
    """Depth in millimetres (torch or numpy, any shape) -> uint8 levels over [0, DEPTH_MAX_MM]: the one
    quantiser of env observations and of demo loading, so both give the same bytes."""
    if torch.is_tensor(depth_mm):
        return (depth_mm.float() * (255.0 / DEPTH_MAX_MM)).clamp_(0, 255).round_().to(torch.uint8)
    d = np.asarray(depth_mm).astype(np.float32) * (255.0 / DEPTH_MAX_MM)
    return np.clip(np.round(d), 0, 255).astype(np.uint8)


class PixelObs:
    """Turns ManiSkill's raw rgb/rgbd observation into {"rgb": uint8 (N, C, H, W), "state": float32 (N, D)}.

    Cameras are stacked on channels in the order given (rgb of every camera first, then one depth
    channel per camera for rgbd). `state` is the flattened non-image part (proprioception + task
    extras such as goal position), never privileged object state in pixel modes."""

    def __init__(self, cameras: Optional[Sequence[str]], depth: bool):
        self.cameras = list(cameras) if cameras else None
        self.depth = depth
        self.state_layout: Optional[list[tuple[str, int]]] = None

    def __call__(self, obs: dict) -> dict:
        from mani_skill.utils import common as ms_common

        sensor_data = obs["sensor_data"]
        names = self.cameras or list(sensor_data.keys())
        missing = [c for c in names if c not in sensor_data]
        if missing:
            raise UserError(f"camera(s) {missing} not in this task; available: {list(sensor_data.keys())}")
        chans = [sensor_data[c]["rgb"] for c in names]
        if self.depth:
            chans += [quantize_depth(sensor_data[c]["depth"]) for c in names]
        rgb = torch.cat(chans, dim=-1).permute(0, 3, 1, 2).contiguous()
        rest = {k: v for k, v in obs.items() if k not in ("sensor_data", "sensor_param")}
        if self.state_layout is None:
            self.state_layout = state_layout_of(rest)
        state = ms_common.flatten_state_dict(rest, use_torch=True)
        return {"rgb": rgb, "state": state.float()}


def _pixel_obs_wrapper(env, cameras, depth):
    import gymnasium as gym

    class PixelObsWrapper(gym.ObservationWrapper):
        def __init__(self, env):
            super().__init__(env)
            self.convert = PixelObs(cameras, depth)
            self.env.unwrapped.update_obs_space(self.convert(self.env.unwrapped._init_raw_obs))
            self.state_layout = self.convert.state_layout

        def observation(self, observation):
            return self.convert(observation)

    return PixelObsWrapper(env)


def _gym_make(
    env_id,
    num_envs,
    obs_mode,
    image_size,
    cameras,
    control_mode,
    sim_backend,
    reconfiguration_freq,
    max_episode_steps,
    video_size,
    render,
    env_kwargs,
    reconfigure=False,  # handled by VecEnv.reset
):
    import gymnasium as gym

    register_our_envs()  # also in CPU worker processes
    h, w = _size_hw(image_size)
    kwargs = dict(
        num_envs=num_envs,
        obs_mode=("rgb+depth" if obs_mode == "rgbd" else obs_mode),
        sim_backend=sim_backend,
        render_backend=render_backend_for(sim_backend, torch.cuda.is_available()),
        sensor_configs=dict(width=w, height=h),
        human_render_camera_configs=dict(width=video_size, height=video_size),
    )
    if control_mode:
        kwargs["control_mode"] = control_mode
    if reconfiguration_freq is not None:
        kwargs["reconfiguration_freq"] = reconfiguration_freq
    if max_episode_steps is not None:
        kwargs["max_episode_steps"] = max_episode_steps
    if render:
        kwargs["render_mode"] = "rgb_array"
    kwargs.update(env_kwargs or {})
    env = gym.make(env_id, **kwargs)
    if obs_mode in ("rgb", "rgbd"):
        env = _pixel_obs_wrapper(env, cameras, depth=(obs_mode == "rgbd"))
    return env


def _frame_grabber(env):
    """While recording, renders right after every env step, inside the vector env, i.e. before it
    auto-resets finished episodes: the frame of an episode's last step shows the state the episode
    ended in. (Rendering after the vector env's step would show the next episode's first state, an
    unseeded reset that differs from process to process.)"""
    import gymnasium as gym

    class FrameGrabber(gym.Wrapper):
        def __init__(self, env):
            super().__init__(env)
            self.recording = False
            self.last_frame = None

        def set_recording(self, on: bool) -> None:
            self.recording, self.last_frame = bool(on), None

        def step(self, action):
            out = self.env.step(action)
            if self.recording:
                self.last_frame = self.env.render()
            return out

    return FrameGrabber(env)


def _make_single_cpu_env(cfg: dict, partial_reset: bool):
    """One physx_cpu env (physx_cpu allows one env per process), numpy in / numpy out."""
    from mani_skill.utils.wrappers.gymnasium import CPUGymWrapper

    env = _gym_make(num_envs=1, sim_backend="physx_cpu", **cfg)
    env = CPUGymWrapper(env, ignore_terminations=not partial_reset, record_metrics=True)
    return _frame_grabber(env) if cfg["render"] else env


def _to_torch(x, device, float_dtype=torch.float32):
    if isinstance(x, dict):
        return {k: _to_torch(v, device, float_dtype) for k, v in x.items()}
    t = torch.as_tensor(np.asarray(x), device=device)
    if t.dtype == torch.float64:
        t = t.to(float_dtype)
    return t


class VecEnv:
    """A batch of ManiSkill envs with one calling convention on GPU and CPU.

    reset(seed) -> obs, info;  step(action (N, A) tensor) -> obs, reward (N,) float32,
    terminated (N,) bool, truncated (N,) bool, info. Observations are torch tensors on
    `self.device`: float32 (N, D) for state; {"rgb": uint8 (N, C, H, W), "state": float32 (N, D)}
    for rgb/rgbd. See this module's docstring for the autoreset semantics.
    """

    def __init__(
        self,
        env_id: str,
        num_envs: int,
        obs_mode: str,
        backend: str,
        cfg: dict,
        partial_reset: bool,
        video_dir: Optional[str],
    ):
        import gymnasium as gym

        self.env_id, self.num_envs, self.obs_mode, self.backend = env_id, num_envs, obs_mode, backend
        self.partial_reset = partial_reset
        self.reconfigure = bool(cfg.get("reconfigure"))
        self.cfg = cfg
        self.video_dir = video_dir
        self._frames: list[np.ndarray] = []
        self.recording = False
        self.batched = backend in ("gpu", "batched-cpu")
        if self.batched:
            from mani_skill.vector.wrappers.gymnasium import ManiSkillVectorEnv

            try:
                env = _gym_make(num_envs=num_envs, sim_backend="physx_cuda" if backend == "gpu" else "physx_cpu", **cfg)
            except RuntimeError as e:
                if "memory" in str(e).lower() or "cuda" in str(e).lower():
                    raise UserError(
                        f"could not create {num_envs} GPU envs ({str(e).splitlines()[0]}); "
                        f"try a smaller --num-envs or --image-size"
                    ) from e
                raise
            if cfg["render"]:  # under ManiSkillVectorEnv: it renders before the auto-reset
                env = self._grabber = _frame_grabber(env)
            self.env = ManiSkillVectorEnv(env, num_envs, ignore_terminations=not partial_reset, record_metrics=True)
            self.device = torch.device(self.env.device)
            space = self.env.single_action_space
        else:
            fns = [functools.partial(_make_single_cpu_env, cfg, partial_reset) for _ in range(num_envs)]
            same_step = gym.vector.AutoresetMode.SAME_STEP
            if num_envs == 1:  # in-process: no worker start-up cost
                self.env = gym.vector.SyncVectorEnv(fns, autoreset_mode=same_step)
            else:
                self.env = gym.vector.AsyncVectorEnv(fns, context="forkserver", autoreset_mode=same_step)
            self.device = torch.device("cpu")
            space = self.env.single_action_space
        self.single_action_space = space
        self.action_low = torch.as_tensor(space.low, dtype=torch.float32, device=self.device)
        self.action_high = torch.as_tensor(space.high, dtype=torch.float32, device=self.device)
        self.action_dim = int(np.prod(space.shape))
        self.max_episode_steps = self._max_episode_steps()
        self.obs_shapes: dict[str, tuple] = {}
        self._state_layout: Optional[list[tuple[str, int]]] = None
        self.closed = False
        _OPEN_ENVS.add(self)

    # -- helpers
    def _max_episode_steps(self) -> Optional[int]:
        if self.cfg.get("max_episode_steps"):
            return int(self.cfg["max_episode_steps"])
        from mani_skill.utils.registration import REGISTERED_ENVS

        return REGISTERED_ENVS[self.env_id].max_episode_steps

    def _obs(self, obs):
        obs = obs if self.batched else _to_torch(obs, self.device)
        if isinstance(obs, dict):
            obs = {"rgb": obs["rgb"], "state": obs["state"].float()}
        else:
            obs = obs.float()
        if not self.obs_shapes:
            self.obs_shapes = (
                {k: tuple(v.shape[1:]) for k, v in obs.items()}
                if isinstance(obs, dict)
                else {"state": tuple(obs.shape[1:])}
            )
        return obs

    def _info_cpu(self, info: dict, obs) -> dict:
        out: dict[str, Any] = {}
        n = self.num_envs
        out["success"] = (
            _to_torch(info["success"], self.device).bool() if "success" in info else torch.zeros(n, dtype=torch.bool)
        )
        done = np.asarray(info.get("_final_obs", np.zeros(n, dtype=bool)), dtype=bool)
        if done.any():
            final_obs = _clone(obs)
            fo = info["final_obs"]
            for i in np.nonzero(done)[0]:
                row = self._obs(_batch1(fo[i]))
                _assign_row(final_obs, i, row)
            out["final_observation"] = final_obs
            out["_final_info"] = torch.as_tensor(done)
            fi = info["final_info"]
            ep = {}
            for k in EPISODE_KEYS:
                if k in fi.get("episode", {}):
                    ep[k] = torch.as_tensor(np.asarray(fi["episode"][k], dtype=np.float32))
            out["final_info"] = {"episode": ep}
        return out

    # -- API
    def reset(self, seed: Union[None, int, Sequence[int]] = None):
        if isinstance(seed, int):
            seed = [seed + i for i in range(self.num_envs)]
        # reconfigure=True: this reset rebuilds the scene (a fresh asset/variation draw from the seeds);
        # the auto-reset that ends each episode does not, so an evaluation batch is built exactly once
        obs, info = self.env.reset(seed=seed, options={"reconfigure": True} if self.reconfigure else None)
        obs = self._obs(obs)
        if self.recording:
            self._grab_frame()
        return obs, {}

    def step(self, action: torch.Tensor):
        action = torch.as_tensor(action, device=self.device, dtype=torch.float32)
        action = torch.clamp(action, self.action_low, self.action_high)
        if self.batched:
            obs, rew, term, trunc, info = self.env.step(action)
            obs = self._obs(obs)
            out = {"success": info.get("success", torch.zeros(self.num_envs, dtype=torch.bool, device=self.device))}
            if "final_observation" in info:
                out["final_observation"] = self._obs(info["final_observation"])
                out["_final_info"] = info["_final_info"]
                ep = info["final_info"]["episode"]  # ManiSkillVectorEnv also sums "reward": same keys as CPU
                out["final_info"] = {"episode": {k: ep[k].float() for k in EPISODE_KEYS if k in ep}}
            rew, term, trunc = rew.float(), term.bool(), trunc.bool()
        else:
            obs, rew, term, trunc, info = self.env.step(action.numpy())
            obs = self._obs(obs)
            out = self._info_cpu(info, obs)
            rew = torch.as_tensor(np.asarray(rew, dtype=np.float32))
            term = torch.as_tensor(np.asarray(term, dtype=bool))
            trunc = torch.as_tensor(np.asarray(trunc, dtype=bool))
        if self.recording:
            self._grab_frame(after_step=True)
        return obs, rew.reshape(-1), term.reshape(-1), trunc.reshape(-1), out

    def state_layout(self) -> list[tuple[str, int]]:
        """Names and sizes of the parts of the flat state vector, in the env's order, e.g.
        [("agent/qpos", 9), ("agent/qvel", 9), ("extra/is_grasped", 1), ...]. Demo loaders use it to
        assemble h5 groups (listed alphabetically there) in that order; feature filters use the names."""
        if self._state_layout is None:
            if self.obs_mode == "state":  # ManiSkill flattens the state dict: build one (no rendering)
                import gymnasium as gym

                kw = dict(num_envs=1, obs_mode="state_dict", sim_backend="physx_cpu", render_backend="none")
                if self.cfg.get("control_mode"):
                    kw["control_mode"] = self.cfg["control_mode"]
                kw.update(self.cfg.get("env_kwargs") or {})
                env = gym.make(self.env_id, **kw)
                raw, _ = env.reset(seed=0)
                env.close()
            elif self.batched:  # the pixel wrapper recorded it from the first raw observation
                raw = self.env._env.get_wrapper_attr("state_layout")
            else:
                raw = self.env.get_attr("state_layout")[0]
            self._state_layout = raw if isinstance(raw, list) else state_layout_of(raw)
        return self._state_layout

    def sample_actions(self) -> torch.Tensor:
        u = torch.rand(self.num_envs, self.action_dim, device=self.device)
        return self.action_low + u * (self.action_high - self.action_low)

    # -- video: frames of all envs tiled into one grid per step; a step's frame shows the state that step
    #    reached (for a finished episode its end state, not the auto-reset that follows)
    def start_video(self):
        if self.video_dir is None:
            raise RuntimeError("make_env(video_dir=...) is needed to record video")
        self._frames, self.recording = [], True
        self._set_grabbing(True)

    def _set_grabbing(self, on: bool) -> None:
        if self.batched:
            self._grabber.set_recording(on)
        else:
            self.env.call("set_recording", on)

    def _grab_frame(self, after_step: bool = False):
        """After a reset: render now. After a step: the frame the grabber rendered before auto-resets."""
        if self.batched:
            imgs = self._grabber.last_frame if after_step else self.env.render()
            imgs = imgs.cpu().numpy() if torch.is_tensor(imgs) else np.asarray(imgs)
        else:
            frames = self.env.get_attr("last_frame") if after_step else self.env.call("render")
            imgs = np.stack([np.asarray(f) for f in frames])
        if imgs.ndim == 3:
            imgs = imgs[None]
        self._frames.append(tile_images(imgs))

    def stop_video(self, name: str, fps: int = 20) -> Optional[str]:
        """Write the frames recorded since start_video() to video_dir/name.mp4; returns the path
        (None when nothing was recorded or no video writer is available)."""
        if self.recording and not self.closed:
            self._set_grabbing(False)
        self.recording = False
        frames, self._frames = self._frames, []
        if not frames:
            return None
        return write_video(os.path.join(self.video_dir, f"{name}.mp4"), frames, fps=fps)

    def close(self):
        if self.closed:
            return
        self.closed = True
        _OPEN_ENVS.discard(self)
        try:
            self.env.close()
        except Exception:  # noqa: BLE001  (closing a half-started vector env must not mask the real error)
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _clone(obs):
    return {k: v.clone() for k, v in obs.items()} if isinstance(obs, dict) else obs.clone()


def _batch1(x):
    return {k: np.asarray(v)[None] for k, v in x.items()} if isinstance(x, dict) else np.asarray(x)[None]


def _assign_row(dst, i, row):
    if isinstance(dst, dict):
        for k in dst:
            dst[k][i] = row[k][0]
    else:
        dst[i] = row[0]


def make_env(
    env_id: str,
    num_envs: int = 1,
    obs_mode: str = "state",
    image_size: Union[int, Sequence[int]] = 64,
    cameras: Optional[Sequence[str]] = None,
    control_mode: Optional[str] = "pd_ee_delta_pose",
    sim_backend: str = "auto",
    partial_reset: bool = True,
    reconfiguration_freq: Optional[int] = None,
    reconfigure: bool = False,
    seed: Optional[int] = None,
    video_dir: Optional[str] = None,
    max_episode_steps: Optional[int] = None,
    video_size: int = 256,
    env_kwargs: Optional[dict] = None,
    sim_dr: Optional[str] = None,
    variation: Optional[str] = None,
) -> VecEnv:
    """Build `num_envs` parallel envs of `env_id` on GPU (ManiSkill GPU sim + batched rendering)
    or CPU (physx_cpu + software Vulkan, one env per worker process).

    obs_mode: state | rgb | rgbd. image_size: int or (H, W). cameras: subset of the task's
    sensor cameras (default: all, stacked on channels). partial_reset=False ignores terminations
    (fixed-length episodes, for evaluation). reconfigure=True rebuilds the scene (re-samples object
    assets) at every `reset()` call and never at the auto-resets: the evaluation protocol, one build per
    batch of episodes (ManiSkill's reconfiguration_freq=1 would also rebuild at the auto-reset that ends
    each batch, i.e. twice per batch). reconfiguration_freq is passed to ManiSkill as it is.
    seed: if given, the envs are reset once with seeds seed..seed+N-1.
    video_dir: enables start_video()/stop_video() (renders the task's human camera).
    sim_dr: simulator randomization level off | light | heavy (PickCubeDR-v1 only; None: as env_kwargs
    say). variation: clean | train | held-out for evaluation envs (None: the training env itself); a
    PickCube-v1 env asked for train / held-out becomes PickCubeDR-v1 (lib/sim_dr.resolve,
    docs/generalization.md). Both end up in env_kwargs, which env_spec records.
    """
    if obs_mode not in ("state", "rgb", "rgbd"):
        raise UserError(f"--obs-mode must be state, rgb or rgbd (got '{obs_mode}')")
    if num_envs < 1:
        raise UserError(f"--num-envs must be >= 1 (got {num_envs})")
    env_id = resolve_env_id(env_id)
    env_id, env_kwargs = sim_dr_lib.resolve(env_id, sim_dr, variation, env_kwargs)
    backend = resolve_sim_backend(sim_backend)
    if backend == "batched-cpu" and num_envs != 1:
        raise UserError(f"the batched-cpu backend runs one physx_cpu env per process (got --num-envs {num_envs})")
    if reconfigure and reconfiguration_freq:
        raise ValueError("make_env: give reconfigure=True or reconfiguration_freq, not both")
    if backend == "gpu" and partial_reset and (reconfiguration_freq or reconfigure):
        raise UserError(
            "partial resets cannot be combined with reconfiguration (reconfiguration_freq > 0) on the GPU sim"
        )
    if backend == "cpu" and num_envs > 64:
        raise UserError(f"--num-envs {num_envs} on the CPU backend starts {num_envs} processes; use <= 64 (or a GPU)")
    cfg = dict(
        env_id=env_id,
        obs_mode=obs_mode,
        image_size=image_size,
        cameras=cameras,
        control_mode=control_mode,
        reconfiguration_freq=reconfiguration_freq,
        reconfigure=reconfigure,
        max_episode_steps=max_episode_steps,
        video_size=video_size,
        render=video_dir is not None,
        env_kwargs=env_kwargs,
    )
    env = VecEnv(env_id, num_envs, obs_mode, backend, cfg, partial_reset, video_dir)
    if seed is not None:
        env.reset(seed=seed)
    return env


def env_spec(env: VecEnv) -> dict:
    """What a checkpoint needs to rebuild the same env and check obs compatibility."""
    cfg = {k: v for k, v in env.cfg.items() if k not in ("render", "video_size", "reconfigure")}
    cfg["image_size"] = list(_size_hw(cfg["image_size"]))
    cfg["cameras"] = list(cfg["cameras"]) if cfg["cameras"] else None
    return dict(cfg, obs_shapes={k: list(v) for k, v in env.obs_shapes.items()}, action_dim=env.action_dim)
