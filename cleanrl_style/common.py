"""Shared plumbing for the single-file scripts in cleanrl_style/ (docs/foundation.md).

What lives here: the env factory (GPU and CPU behind one interface), run directories and
logging, evaluation, video, checkpoint I/O and one-line user errors. No algorithm lives here:
networks, losses and update rules stay in their scripts.

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

import csv
import dataclasses
import difflib
import functools
import gc
import io
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
CHECKPOINT_FORMAT = 1
DEPTH_MAX_MM = 2000.0  # rgbd: depth is quantized to uint8 over [0, 2 m] (7.8 mm per level)


# ----------------------------------------------------------------------------- user errors
class UserError(Exception):
    """An error the user can fix (bad flag, bad id, bad file). Printed as one line, no traceback."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


_OPEN_ENVS: "weakref.WeakSet[VecEnv]" = weakref.WeakSet()


def close_all_envs() -> None:
    """Close every VecEnv still open (stops CPU worker processes), e.g. after an error."""
    for env in list(_OPEN_ENVS):
        env.close()


def run(main: Callable[[Any], Any], args: Any) -> Any:
    """Call `main(args)`; a UserError ends the process with one line on stderr and its exit code.
    Envs the run left open are closed either way."""
    try:
        return main(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    finally:
        close_all_envs()
        # The process is about to end: exempt every object from the interpreter's final GC pass.
        # Under heavy load that pass was seen spinning for minutes (100% CPU in gc_collect_main)
        # after a run had already written its results.
        gc.freeze()


# ----------------------------------------------------------------------------- env ids
def registered_env_ids() -> list[str]:
    import mani_skill.envs  # noqa: F401  (registers the tasks)
    from mani_skill.utils.registration import REGISTERED_ENVS

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
    close += [i for i in difflib.get_close_matches(name.lower(), list(by_base), n=4, cutoff=0.5)
              for i in by_base[i] if i not in close]
    hint = f" Did you mean: {', '.join(close[:4])}?" if close else " See `python -m mani_skill.utils.download_asset --list` or docs/foundation.md."
    raise UserError(f"unknown env id '{name}'.{hint}", code=2)


# ----------------------------------------------------------------------------- env factory
def resolve_sim_backend(sim_backend: str) -> str:
    """'auto' -> 'gpu' when CUDA is present, else 'cpu'."""
    if sim_backend not in ("auto", "gpu", "cpu"):
        raise UserError(f"--sim-backend must be auto, gpu or cpu (got '{sim_backend}')")
    if sim_backend == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    if sim_backend == "gpu" and not torch.cuda.is_available():
        raise UserError("--sim-backend gpu needs CUDA, but torch.cuda.is_available() is False; use --sim-backend cpu")
    return sim_backend


def configure_torch_threads(backend: str) -> int:
    """On the CPU backend the env workers (one process per env) and the renderer already occupy
    the cores; torch's default intra-op threads then spin against them and a small PPO update
    becomes ~25x slower (6.3 s vs 0.25 s measured on a loaded 2-core machine). So the learner
    uses one thread there unless OMP_NUM_THREADS says otherwise. Returns the thread count."""
    if backend == "cpu" and not os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(1)
    return torch.get_num_threads()


def _size_hw(image_size: Union[int, Sequence[int]]) -> tuple[int, int]:
    if isinstance(image_size, int):
        return image_size, image_size
    h, w = (int(v) for v in image_size)
    return h, w


def _state_layout_of(obs: dict, prefix: str = "") -> list[tuple[str, int]]:
    """(name, size) of every leaf of a batched obs dict, in the order flatten_state_dict uses."""
    out: list[tuple[str, int]] = []
    for k, v in obs.items():
        if k in ("sensor_data", "sensor_param"):
            continue
        if isinstance(v, dict):
            out += _state_layout_of(v, f"{prefix}{k}/")
        else:
            out.append((f"{prefix}{k}", int(np.prod(tuple(v.shape[1:]))) if v.ndim > 1 else 1))
    return out


class _PixelObs:
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
            for c in names:
                d = sensor_data[c]["depth"].float() * (255.0 / DEPTH_MAX_MM)
                chans.append(d.clamp_(0, 255).round_().to(torch.uint8))
        rgb = torch.cat(chans, dim=-1).permute(0, 3, 1, 2).contiguous()
        rest = {k: v for k, v in obs.items() if k not in ("sensor_data", "sensor_param")}
        if self.state_layout is None:
            self.state_layout = _state_layout_of(rest)
        state = ms_common.flatten_state_dict(rest, use_torch=True)
        return {"rgb": rgb, "state": state.float()}


def _pixel_obs_wrapper(env, cameras, depth):
    import gymnasium as gym

    class PixelObsWrapper(gym.ObservationWrapper):
        def __init__(self, env):
            super().__init__(env)
            self.convert = _PixelObs(cameras, depth)
            self.env.unwrapped.update_obs_space(self.convert(self.env.unwrapped._init_raw_obs))
            self.state_layout = self.convert.state_layout

        def observation(self, observation):
            return self.convert(observation)

    return PixelObsWrapper(env)


def _gym_make(env_id, num_envs, obs_mode, image_size, cameras, control_mode, sim_backend,
              reconfiguration_freq, max_episode_steps, video_size, render, env_kwargs):
    import gymnasium as gym
    import mani_skill.envs  # noqa: F401

    h, w = _size_hw(image_size)
    kwargs = dict(num_envs=num_envs, obs_mode=("rgb+depth" if obs_mode == "rgbd" else obs_mode),
                  sim_backend=sim_backend, render_backend=("cpu" if sim_backend == "physx_cpu" else "gpu"),
                  sensor_configs=dict(width=w, height=h),
                  human_render_camera_configs=dict(width=video_size, height=video_size))
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


def _make_single_cpu_env(cfg: dict, partial_reset: bool):
    """One physx_cpu env (physx_cpu allows one env per process), numpy in / numpy out."""
    from mani_skill.utils.wrappers.gymnasium import CPUGymWrapper

    env = _gym_make(num_envs=1, sim_backend="physx_cpu", **cfg)
    return CPUGymWrapper(env, ignore_terminations=not partial_reset, record_metrics=True)


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

    def __init__(self, env_id: str, num_envs: int, obs_mode: str, backend: str, cfg: dict,
                 partial_reset: bool, video_dir: Optional[str]):
        import gymnasium as gym

        self.env_id, self.num_envs, self.obs_mode, self.backend = env_id, num_envs, obs_mode, backend
        self.partial_reset = partial_reset
        self.cfg = cfg
        self.video_dir = video_dir
        self._frames: list[np.ndarray] = []
        self.recording = False
        if backend == "gpu":
            from mani_skill.vector.wrappers.gymnasium import ManiSkillVectorEnv

            try:
                env = _gym_make(num_envs=num_envs, sim_backend="physx_cuda", **cfg)
            except RuntimeError as e:
                if "memory" in str(e).lower() or "cuda" in str(e).lower():
                    raise UserError(f"could not create {num_envs} GPU envs ({str(e).splitlines()[0]}); "
                                    f"try a smaller --num-envs or --image-size") from e
                raise
            self.env = ManiSkillVectorEnv(env, num_envs, ignore_terminations=not partial_reset,
                                          record_metrics=True)
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
        obs = _to_torch(obs, self.device) if self.backend == "cpu" else obs
        if isinstance(obs, dict):
            obs = {"rgb": obs["rgb"], "state": obs["state"].float()}
        else:
            obs = obs.float()
        if not self.obs_shapes:
            self.obs_shapes = ({k: tuple(v.shape[1:]) for k, v in obs.items()} if isinstance(obs, dict)
                               else {"state": tuple(obs.shape[1:])})
        return obs

    def _info_cpu(self, info: dict, obs) -> dict:
        out: dict[str, Any] = {}
        n = self.num_envs
        out["success"] = _to_torch(info["success"], self.device).bool() if "success" in info \
            else torch.zeros(n, dtype=torch.bool)
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
            for k in ("success_once", "success_at_end", "return", "episode_len"):
                if k in fi.get("episode", {}):
                    ep[k] = torch.as_tensor(np.asarray(fi["episode"][k], dtype=np.float32))
            out["final_info"] = {"episode": ep}
        return out

    # -- API
    def reset(self, seed: Union[None, int, Sequence[int]] = None):
        if isinstance(seed, int):
            seed = [seed + i for i in range(self.num_envs)]
        obs, info = self.env.reset(seed=seed)
        obs = self._obs(obs)
        if self.recording:
            self._grab_frame()
        return obs, {}

    def step(self, action: torch.Tensor):
        action = torch.as_tensor(action, device=self.device, dtype=torch.float32)
        action = torch.clamp(action, self.action_low, self.action_high)
        if self.backend == "gpu":
            obs, rew, term, trunc, info = self.env.step(action)
            obs = self._obs(obs)
            out = {"success": info.get("success", torch.zeros(self.num_envs, dtype=torch.bool, device=self.device))}
            if "final_observation" in info:
                out["final_observation"] = self._obs(info["final_observation"])
                out["_final_info"] = info["_final_info"]
                out["final_info"] = {"episode": {k: v.float() for k, v in info["final_info"]["episode"].items()}}
            rew, term, trunc = rew.float(), term.bool(), trunc.bool()
        else:
            obs, rew, term, trunc, info = self.env.step(action.numpy())
            obs = self._obs(obs)
            out = self._info_cpu(info, obs)
            rew = torch.as_tensor(np.asarray(rew, dtype=np.float32))
            term = torch.as_tensor(np.asarray(term, dtype=bool))
            trunc = torch.as_tensor(np.asarray(trunc, dtype=bool))
        if self.recording:
            self._grab_frame()
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
            elif self.backend == "gpu":  # the pixel wrapper recorded it from the first raw observation
                raw = self.env._env.get_wrapper_attr("state_layout")
            else:
                raw = self.env.get_attr("state_layout")[0]
            self._state_layout = raw if isinstance(raw, list) else _state_layout_of(raw)
        return self._state_layout

    def sample_actions(self) -> torch.Tensor:
        u = torch.rand(self.num_envs, self.action_dim, device=self.device)
        return self.action_low + u * (self.action_high - self.action_low)

    # -- video: frames of all envs tiled into one grid per step
    def start_video(self):
        if self.video_dir is None:
            raise RuntimeError("make_env(video_dir=...) is needed to record video")
        self._frames, self.recording = [], True

    def _grab_frame(self):
        if self.backend == "gpu":
            imgs = self.env.render()
            imgs = imgs.cpu().numpy() if torch.is_tensor(imgs) else np.asarray(imgs)
        else:
            imgs = np.stack([np.asarray(f) for f in self.env.call("render")])
        if imgs.ndim == 3:
            imgs = imgs[None]
        self._frames.append(tile_images(imgs))

    def stop_video(self, name: str, fps: int = 20) -> Optional[str]:
        """Write the frames recorded since start_video() to video_dir/name.mp4; returns the path
        (None when nothing was recorded or no video writer is available)."""
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


def make_env(env_id: str, num_envs: int = 1, obs_mode: str = "state",
             image_size: Union[int, Sequence[int]] = 64, cameras: Optional[Sequence[str]] = None,
             control_mode: Optional[str] = "pd_ee_delta_pose", sim_backend: str = "auto",
             partial_reset: bool = True, reconfiguration_freq: Optional[int] = None,
             seed: Optional[int] = None, video_dir: Optional[str] = None,
             max_episode_steps: Optional[int] = None, video_size: int = 256,
             env_kwargs: Optional[dict] = None) -> VecEnv:
    """Build `num_envs` parallel envs of `env_id` on GPU (ManiSkill GPU sim + batched rendering)
    or CPU (physx_cpu + software Vulkan, one env per worker process).

    obs_mode: state | rgb | rgbd. image_size: int or (H, W). cameras: subset of the task's
    sensor cameras (default: all, stacked on channels). partial_reset=False ignores terminations
    (fixed-length episodes, for evaluation). reconfiguration_freq=1 re-samples object assets every
    reset (fair evaluation). seed: if given, the envs are reset once with seeds seed..seed+N-1.
    video_dir: enables start_video()/stop_video() (renders the task's human camera).
    """
    if obs_mode not in ("state", "rgb", "rgbd"):
        raise UserError(f"--obs-mode must be state, rgb or rgbd (got '{obs_mode}')")
    if num_envs < 1:
        raise UserError(f"--num-envs must be >= 1 (got {num_envs})")
    env_id = resolve_env_id(env_id)
    backend = resolve_sim_backend(sim_backend)
    if backend == "gpu" and partial_reset and reconfiguration_freq:
        raise UserError("partial resets cannot be combined with reconfiguration (reconfiguration_freq > 0) on the GPU sim")
    if backend == "cpu" and num_envs > 64:
        raise UserError(f"--num-envs {num_envs} on the CPU backend starts {num_envs} processes; use <= 64 (or a GPU)")
    cfg = dict(env_id=env_id, obs_mode=obs_mode, image_size=image_size, cameras=cameras,
               control_mode=control_mode, reconfiguration_freq=reconfiguration_freq,
               max_episode_steps=max_episode_steps, video_size=video_size,
               render=video_dir is not None, env_kwargs=env_kwargs)
    env = VecEnv(env_id, num_envs, obs_mode, backend, cfg, partial_reset, video_dir)
    if seed is not None:
        env.reset(seed=seed)
    return env


def env_spec(env: VecEnv) -> dict:
    """What a checkpoint needs to rebuild the same env and check obs compatibility."""
    cfg = {k: v for k, v in env.cfg.items() if k not in ("render", "video_size")}
    cfg["image_size"] = list(_size_hw(cfg["image_size"]))
    cfg["cameras"] = list(cfg["cameras"]) if cfg["cameras"] else None
    return dict(cfg, obs_shapes={k: list(v) for k, v in env.obs_shapes.items()}, action_dim=env.action_dim)


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


# ----------------------------------------------------------------------------- images / video
def tile_images(imgs: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) -> one (rows*H, cols*W, 3) grid, as square as possible."""
    n, h, w, c = imgs.shape
    cols = int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / cols))
    grid = np.zeros((rows * h, cols * w, c), dtype=imgs.dtype)
    for i in range(n):
        r, q = divmod(i, cols)
        grid[r * h:(r + 1) * h, q * w:(q + 1) * w] = imgs[i]
    return grid


def write_video(path: str, frames: Sequence[np.ndarray], fps: int = 20) -> Optional[str]:
    """mp4 via imageio-ffmpeg, written to a temp file and renamed. Without an mp4 writer it warns
    and returns None instead of failing the run."""
    path = str(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path[:-4] + ".tmp.mp4"
    writer = None
    try:
        import imageio.v2 as imageio

        writer = imageio.get_writer(tmp, fps=fps, codec="libx264", quality=7, macro_block_size=1)
        for f in frames:
            writer.append_data(np.asarray(f, dtype=np.uint8))
        writer.close()
    except Exception as e:  # noqa: BLE001  (missing ffmpeg must not kill a training run)
        print(f"warning: could not write video {path}: {e}", file=sys.stderr)
        if writer is not None:  # imageio's __exit__ skips close() on error: stop ffmpeg before deleting
            try:
                writer.close()
            except Exception:  # noqa: BLE001
                pass
        if os.path.exists(tmp):
            os.remove(tmp)
        return None
    os.replace(tmp, path)
    return path


# ----------------------------------------------------------------------------- atomic files
def atomic_write_bytes(path: Union[str, Path], data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Union[str, Path], text: str) -> None:
    atomic_write_bytes(path, text.encode())


def write_json(path: Union[str, Path], obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n")


def _jsonable(x):
    if torch.is_tensor(x):
        return x.tolist()
    if isinstance(x, (np.ndarray, np.generic)):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"not JSON serializable: {type(x)}")


# ----------------------------------------------------------------------------- checkpoints
def save_checkpoint(path: Union[str, Path], *, script: str, args: Any, env: Union[VecEnv, dict],
                    model_kwargs: dict, state_dict: dict, step: int, obs_norm: Optional[dict] = None,
                    extra: Optional[dict] = None) -> None:
    """Everything evaluate.py needs to rebuild the policy: the script that made it (its module
    has `load_policy`), the env/obs config, the architecture kwargs, weights and normalization
    stats. Written to a temp file and renamed, so a crash never leaves a half-written file."""
    payload = dict(format=CHECKPOINT_FORMAT, script=script,
                   args=dataclasses.asdict(args) if dataclasses.is_dataclass(args) else dict(args),
                   env=env_spec(env) if isinstance(env, VecEnv) else dict(env),
                   model_kwargs=model_kwargs, state_dict=state_dict, obs_norm=obs_norm, step=int(step),
                   extra=extra or {}, versions=versions())
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: Union[str, Path], map_location: Union[str, torch.device] = "cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}", code=1)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # noqa: BLE001
        raise UserError(f"could not read checkpoint {path}: corrupt or not a torch file ({type(e).__name__})", code=1) from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT or "script" not in ckpt:
        raise UserError(f"{path} is not a checkpoint written by cleanrl_style (format {CHECKPOINT_FORMAT})", code=1)
    return ckpt


def check_obs_compatible(ckpt: dict, env: VecEnv) -> None:
    """A checkpoint only runs on envs with the observation and action shapes it was trained on."""
    want = {k: tuple(v) for k, v in ckpt["env"]["obs_shapes"].items()}
    have = {k: tuple(v) for k, v in env.obs_shapes.items()}
    if want != have or ckpt["env"]["action_dim"] != env.action_dim:
        raise UserError(f"checkpoint/env mismatch: checkpoint expects obs {want} and action dim "
                        f"{ckpt['env']['action_dim']}, env gives obs {have} and action dim {env.action_dim}", code=1)


# ----------------------------------------------------------------------------- evaluation
EVAL_KEYS = ("success_once", "success_at_end", "return", "episode_len")


@torch.no_grad()
def evaluate(policy: Callable[[Any], torch.Tensor], env: VecEnv, num_episodes: int,
             seed: Optional[int] = None, video_name: Optional[str] = None) -> dict:
    """Run `num_episodes` episodes with a deterministic `policy(obs) -> action` (optionally with a
    `reset()` method, called after every env reset) on a dedicated
    eval env (made with partial_reset=False, reconfiguration_freq=1). Episode i uses seed
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
    """The evaluation protocol every script shares. `maybe_evaluate(step)` evaluates every
    `args.eval_freq` env steps on fixed seeds (seed + 1_000_000 + i), logs `eval/*`, writes
    `last.pt`, and `best.pt` when success_once improves. `finish(step)` evaluates the last policy on
    seeds never used to pick a checkpoint (seed + 2_000_000 + i), writes final_eval.json (and the
    video with --capture-video) and prints the table.

    `checkpoint()` returns the script-specific part of save_checkpoint's keyword arguments
    (script, args, env, model_kwargs, state_dict); `args` needs eval_freq, num_eval_episodes,
    seed, save_checkpoints and capture_video."""

    def __init__(self, run: RunLogger, env: VecEnv, policy: Callable, args: Any, checkpoint: Callable[[], dict]):
        self.run, self.env, self.policy, self.args, self.checkpoint = run, env, policy, args, checkpoint
        self.best_success, self.last_step = -1.0, 0
        self.start = time.time()

    def _save(self, name: str, step: int, metrics: dict) -> None:
        if self.args.save_checkpoints:
            kw = self.checkpoint()
            kw["extra"] = dict(kw.get("extra") or {}, eval=metrics)
            save_checkpoint(self.run.dir / name, step=step, **kw)

    def maybe_evaluate(self, step: int, force: bool = False) -> Optional[dict]:
        a = self.args
        if not force and not (a.eval_freq and step - self.last_step >= a.eval_freq):
            return None
        self.last_step = step
        m = evaluate(self.policy, self.env, a.num_eval_episodes, seed=a.seed + 1_000_000)
        self.run.log(step, {f"eval/{k}": m[k] for k in EVAL_KEYS})
        self.run.progress(step, eval_success=m["success_once"])
        self._save("last.pt", step, m)
        if m["success_once"] > self.best_success:
            self.best_success = m["success_once"]
            self._save("best.pt", step, m)
        return m

    def finish(self, step: int, extra: Optional[dict] = None) -> dict:
        """`extra`: script-specific fields stored in final_eval.json with the metrics."""
        a = self.args
        final = evaluate(self.policy, self.env, a.num_eval_episodes, seed=a.seed + 2_000_000,
                         video_name="final_eval" if a.capture_video else None)
        final.update(checkpoint="last.pt", step=step, wall_time_s=time.time() - self.start, **(extra or {}))
        write_json(self.run.dir / "final_eval.json", final)
        print_eval(final, f"final evaluation ({self.env.env_id}, last policy)")
        return final


# ----------------------------------------------------------------------------- run directory
def git_commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                             timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return (sha + ("-dirty" if dirty else "")) if sha else "unknown"
    except Exception:  # noqa: BLE001
        return "unknown"


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return f"CPU: {line.split(':', 1)[1].strip()} x{os.cpu_count()}"
    except OSError:
        pass
    return f"CPU: {platform.processor() or platform.machine()} x{os.cpu_count()}"


def versions() -> dict:
    out = {"python": platform.python_version(), "torch": str(torch.__version__), "numpy": str(np.__version__)}
    for mod in ("mani_skill", "sapien", "gymnasium", "tensordict", "torchrl", "kornia"):
        try:
            out[mod] = str(__import__(mod).__version__)
        except Exception:  # noqa: BLE001
            out[mod] = None
    return out


class RunLogger:
    """runs/<env>__<script>__<seed>__<timestamp>/ with config.yaml, metrics.csv (long format:
    step, wall_time, name, value), TensorBoard events, W&B with track=True, and a progress bar."""

    def __init__(self, args: Any, script: str, env_id: str, seed: int, runs_dir: str = "runs",
                 track: bool = False, wandb_project: str = "maniskill-pixels",
                 total_steps: Optional[int] = None, exp_name: Optional[str] = None):
        stamp = time.strftime("%Y%m%d-%H%M%S")
        name = f"{env_id}__{exp_name or script}__{seed}__{stamp}"
        self.dir = Path(runs_dir) / name
        i = 1
        while self.dir.exists():
            self.dir = Path(runs_dir) / f"{name}-{i}"
            i += 1
        self.dir.mkdir(parents=True)
        self.name = self.dir.name
        self.start = time.time()
        self.config = dict(script=script, env_id=env_id, seed=seed, command=" ".join(sys.argv),
                           args=dataclasses.asdict(args) if dataclasses.is_dataclass(args) else dict(args),
                           git_commit=git_commit(), versions=versions(), device=device_name(),
                           start_time=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        import yaml

        atomic_write_text(self.dir / "config.yaml", yaml.safe_dump(self.config, sort_keys=False))
        from torch.utils.tensorboard import SummaryWriter

        self.tb = SummaryWriter(str(self.dir))
        self._csv_file = open(self.dir / "metrics.csv", "w", newline="")
        self._csv = csv.writer(self._csv_file)
        self._csv.writerow(["step", "wall_time", "name", "value"])
        self.wandb = None
        if track:
            try:
                import wandb
            except ImportError as e:
                raise UserError("--track needs wandb: pip install wandb") from e
            self.wandb = wandb.init(project=wandb_project, name=self.name, config=self.config, dir=str(self.dir),
                                    sync_tensorboard=False, mode=os.environ.get("WANDB_MODE", "online"))
        self.pbar = None
        self.total_steps = total_steps
        self._last_step = 0
        self._postfix: dict[str, str] = {}
        print(f"run dir: {self.dir}", flush=True)

    @property
    def video_dir(self) -> str:
        return str(self.dir / "videos")

    def log(self, step: int, metrics: dict) -> None:
        wall = time.time() - self.start
        clean = {}
        for k, v in metrics.items():
            v = float(v.item() if torch.is_tensor(v) else v)
            clean[k] = v
            self.tb.add_scalar(k, v, step)
            self._csv.writerow([int(step), f"{wall:.3f}", k, f"{v:.6g}"])
        self._csv_file.flush()
        if self.wandb is not None:
            self.wandb.log(clean, step=int(step))

    def progress(self, step: int, **postfix) -> None:
        if self.pbar is None:
            if not self.total_steps:
                return
            from tqdm import tqdm

            self.pbar = tqdm(total=self.total_steps, unit="step", dynamic_ncols=True, mininterval=2.0)
        self.pbar.update(max(0, step - self._last_step))
        self._last_step = step
        self._postfix.update({k: (f"{v:.3g}" if isinstance(v, float) else str(v)) for k, v in postfix.items()})
        self.pbar.set_postfix(self._postfix, refresh=False)

    def close(self) -> None:
        if self.pbar is not None:
            self.pbar.close()
        self.tb.close()
        self._csv_file.close()
        if self.wandb is not None:
            self.wandb.finish()


def seed_everything(seed: int, torch_deterministic: bool = True) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = torch_deterministic


def print_eval(metrics: dict, title: str = "evaluation") -> None:
    print(f"{title}: {metrics['episodes']} episodes")
    for k in EVAL_KEYS:
        print(f"  {k:<15} {metrics[k]:.3f}")
