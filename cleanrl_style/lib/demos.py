"""Demonstrations: reading ManiSkill trajectory files (h5 + json) into tensors.

The json next to an .h5 names the task, obs mode and control mode; the h5 holds per episode
`actions` (T, A), `obs` (T + 1 frames: a flat state dataset, or a group with sensor_data and the
state parts) and `env_states`. Pixel demos are converted with the same depth quantiser and state
layout as env observations (envs.quantize_depth, VecEnv.state_layout), so demo frames and env
observations have the same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from cleanrl_style.lib.envs import quantize_depth
from cleanrl_style.lib.runs import UserError


def state_from_h5(obs_group, layout: list[tuple[str, int]]) -> np.ndarray:
    """The flat state vector of a pixel-mode demo, assembled in the env's order from the h5 groups
    (h5 lists keys alphabetically, the env flattens in insertion order)."""
    parts = []
    for name, _size in layout:
        if name not in obs_group:
            raise UserError(f"demo obs has no '{name}' (the env's state has it): wrong obs mode or task?")
        x = np.asarray(obs_group[name][:])
        parts.append(x.reshape(x.shape[0], -1).astype(np.float32))
    return np.concatenate(parts, axis=1)


def read_demo_info(path: str) -> dict:
    """The json next to a ManiSkill .h5: env id, obs mode, control mode, episodes."""
    h5 = Path(path)
    if not h5.is_file():
        raise UserError(f"demo file not found: {h5}", code=1)
    meta = h5.with_suffix(".json")
    if not meta.is_file():
        raise UserError(f"{h5} has no {meta.name} next to it (ManiSkill trajectories are .h5 + .json)", code=1)
    try:
        info = json.loads(meta.read_text())
        env_info = info["env_info"]
        return dict(
            env_id=env_info["env_id"],
            env_kwargs=env_info.get("env_kwargs", {}),
            obs_mode=env_info.get("env_kwargs", {}).get("obs_mode"),
            control_mode=env_info.get("env_kwargs", {}).get("control_mode"),
            max_episode_steps=env_info.get("max_episode_steps"),
            episodes=info["episodes"],
            cleanrl_style=info.get("cleanrl_style", {}),
        )
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise UserError(f"{meta} is not a ManiSkill trajectory json ({type(e).__name__}: {e})", code=1) from e


def load_demos(
    path: str,
    obs_mode: str,
    num_demos: Optional[int],
    layout: Optional[list] = None,
    aux_actor: Optional[str] = None,
    rewards: bool = False,
) -> dict:
    """All demo steps as tensors (CPU): obs (F, D) float32 state and/or (F, C, H, W) uint8 rgb for the
    F = sum(T_i + 1) frames, actions (S, A) for the S = sum(T_i) steps, and per step the index of its
    frame, the first frame of its episode and the last step of its episode. With aux_actor, also that
    actor's position per frame (F, 3), read from the recorded env_states (a training target, not an input).
    With rewards, also the recorded `rewards`, `terminated` and `truncated` per step (S,): a file without
    rewards is a UserError that says how to convert it with them."""
    import h5py

    info = read_demo_info(path)
    episodes = info["episodes"][:num_demos] if num_demos else info["episodes"]
    if not episodes:
        raise UserError(f"{path} holds no episodes", code=1)
    if num_demos and len(episodes) < num_demos:
        raise UserError(f"--num-demos {num_demos} but {path} holds only {len(episodes)}", code=1)
    states, rgbs, actions, aux = [], [], [], []
    step_data: dict[str, list] = {"rewards": [], "terminated": [], "truncated": []}
    try:
        with h5py.File(path, "r") as f:
            for ep in episodes:
                g = f[f"traj_{ep['episode_id']}"]
                actions.append(np.asarray(g["actions"][:], dtype=np.float32))
                obs = g["obs"]
                if obs_mode == "state":
                    if not isinstance(obs, h5py.Dataset):
                        raise UserError(
                            f"{path} holds '{info['obs_mode']}' observations, not flat state "
                            f"(convert with collect_demos.py --obs-mode state)",
                            code=1,
                        )
                    states.append(np.asarray(obs[:], dtype=np.float32))
                else:
                    if isinstance(obs, h5py.Dataset) or "sensor_data" not in obs:
                        raise UserError(
                            f"{path} holds no camera images (obs mode '{info['obs_mode']}'); "
                            f"convert with collect_demos.py --obs-mode {obs_mode}",
                            code=1,
                        )
                    cams = list(obs["sensor_data"].keys())
                    chans = [np.asarray(obs["sensor_data"][c]["rgb"][:]) for c in cams]
                    if obs_mode == "rgbd":
                        chans += [quantize_depth(obs["sensor_data"][c]["depth"][:]) for c in cams]
                    rgbs.append(np.concatenate(chans, axis=-1).transpose(0, 3, 1, 2))
                    states.append(state_from_h5(obs, layout or []))
                if aux_actor:
                    actors = g["env_states/actors"] if "env_states/actors" in g else {}
                    if aux_actor not in actors:
                        raise UserError(
                            f"--aux-actor '{aux_actor}' is not in {path}'s env_states "
                            f"(actors: {', '.join(actors) or 'none recorded'})",
                            code=1,
                        )
                    aux.append(np.asarray(actors[aux_actor][:, :3], dtype=np.float32))
                if rewards:
                    if "rewards" not in g:
                        raise UserError(
                            f"{path} records no rewards (converted without them); convert it again with "
                            f"collect_demos.py --convert-only (it records the env's default reward mode)",
                            code=1,
                        )
                    step_data["rewards"].append(np.asarray(g["rewards"][:], dtype=np.float32).reshape(-1))
                    for k in ("terminated", "truncated"):
                        n = len(actions[-1])
                        flag = np.asarray(g[k][:], dtype=bool).reshape(-1) if k in g else np.zeros(n, dtype=bool)
                        step_data[k].append(flag)
                    if len(step_data["rewards"][-1]) != len(actions[-1]):
                        raise UserError(
                            f"{path}: episode {ep['episode_id']} has {len(step_data['rewards'][-1])} rewards "
                            f"for {len(actions[-1])} actions",
                            code=1,
                        )
                if len(states[-1]) != len(actions[-1]) + 1:
                    raise UserError(
                        f"{path}: episode {ep['episode_id']} has {len(states[-1])} observations "
                        f"for {len(actions[-1])} actions (expected one more)",
                        code=1,
                    )
    except (OSError, KeyError) as e:
        if isinstance(e, UserError):
            raise
        raise UserError(
            f"could not read demos from {path}: corrupt or not a ManiSkill h5 ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''})",
            code=1,
        ) from e
    lens = [len(a) for a in actions]
    step_frame, ep_start, ep_last = [], [], []
    f0 = s0 = 0
    for T in lens:
        step_frame.append(np.arange(f0, f0 + T))
        ep_start.append(np.full(T, f0))
        ep_last.append(np.full(T, s0 + T - 1))
        f0, s0 = f0 + T + 1, s0 + T
    out = dict(
        state=torch.from_numpy(np.concatenate(states)),
        actions=torch.from_numpy(np.concatenate(actions)),
        step_frame=torch.from_numpy(np.concatenate(step_frame)),
        ep_start=torch.from_numpy(np.concatenate(ep_start)),
        ep_last=torch.from_numpy(np.concatenate(ep_last)),
        num_demos=len(episodes),
        lengths=lens,
        seeds=[ep.get("episode_seed") for ep in episodes],
        info=info,
    )
    if rgbs:
        out["rgb"] = torch.from_numpy(np.concatenate(rgbs))
        out["cameras"] = cams
    if aux:
        out["aux"] = torch.from_numpy(np.concatenate(aux))
    if rewards:
        out.update({k: torch.from_numpy(np.concatenate(v)) for k, v in step_data.items()})
    return out


def demos_record_actor(path: str, info: dict, actor: str) -> bool:
    """Whether the first demo of `path` has `actor` under env_states/actors (what --aux-coef needs)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            g = f[f"traj_{info['episodes'][0]['episode_id']}"]
            return "env_states/actors" in g and actor in g["env_states/actors"]
    except (OSError, KeyError, IndexError):
        return False  # load_demos reports what is wrong with the file


def demo_sim_backend(info: dict, path: str = "") -> Optional[str]:
    """'cpu' or 'gpu': the sim backend the demos were recorded or converted with (the json's
    env_kwargs, else the `.physx_cpu.` / `.physx_cuda.` part of ManiSkill's file name); None if unknown."""
    name = str((info.get("env_kwargs") or {}).get("sim_backend") or "")
    if not name:
        name = next((b for b in ("physx_cpu", "physx_cuda") if f".{b}." in Path(path).name), "")
    return {"physx_cpu": "cpu", "cpu": "cpu", "physx_cuda": "gpu", "gpu": "gpu", "cuda": "gpu"}.get(name)


def demo_env_kwargs(info: dict) -> Optional[dict]:
    """Task options recorded with the demos that change the env itself (not obs/control/backend)."""
    skip = {
        "obs_mode",
        "control_mode",
        "sim_backend",
        "render_backend",
        "num_envs",
        "render_mode",
        "sensor_configs",
        "human_render_camera_configs",
        "viewer_camera_configs",
        "reward_mode",
        "shader_dir",
        "max_episode_steps",
        "reconfiguration_freq",
    }
    kw = {k: v for k, v in (info.get("env_kwargs") or {}).items() if k not in skip}
    return kw or None


def demo_image_spec(path: str, info: dict) -> tuple[list[str], list[int]]:
    """(cameras, [H, W]) of a pixel demo file's first episode: what an env must render to match it."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            sd = f[f"traj_{info['episodes'][0]['episode_id']}/obs/sensor_data"]
            cameras = list(sd.keys())
            return cameras, list(sd[cameras[0]]["rgb"].shape[1:3])
    except (OSError, KeyError, IndexError) as e:
        raise UserError(f"{path} holds no camera images (obs mode '{info['obs_mode']}')", code=1) from e
