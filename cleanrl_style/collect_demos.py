"""Collect expert demonstrations in ManiSkill's trajectory format (h5 + json). Docs: docs/bc.md

    # motion-planning expert (mani_skill's solutions), 2 processes, then a copy for the learner
    python cleanrl_style/collect_demos.py --env-id PickCube --num-demos 100 --out-dir demos \\
        --obs-mode state --control-mode pd_ee_delta_pos
    # one of our checkpoints as the expert (tasks without a motion-planning solution)
    python cleanrl_style/collect_demos.py --env-id PushCube --teacher runs/<run>/best.pt --num-demos 50
    # PickCube demos rendered under simulator domain randomization (PickCubeDR-v1, docs/generalization.md)
    python cleanrl_style/collect_demos.py --env-id PickCube --num-demos 100 --obs-mode rgb --sim-dr heavy

Layout under --out-dir (the one ManiSkill's own tools use):
    <EnvId>/motionplanning/trajectory.{h5,json}                    raw: pd_joint_pos actions, env states
    <EnvId>/motionplanning/<obs><size>/trajectory.<obs>.<control>.physx_cpu.{h5,json}   converted
    <EnvId>/motionplanning/<obs><size>-simdr-<level>/...                 converted with --sim-dr (PickCubeDR-v1)
    <EnvId>/teacher/trajectory.<obs>.<control>.physx_cpu.{h5,json}                     --teacher
Only successful episodes are kept; attempts vs successes are printed and stored in the json
("cleanrl_style" key). Running again with a larger --num-demos appends (new seeds continue after the
largest seed in the file); files are merged into a temp file and renamed, so an interrupted run
never damages what exists. Conversion uses mani_skill's replay tool; replays that fail are counted
and their seeds listed, not silently dropped. Demo seeds start at --seed (0): evaluation in bc.py
uses seeds >= 1_000_000.

--sim-dr light|heavy (PickCube): the raw demos are planned in PickCube-v1 (the physics of PickCubeDR-v1
is PickCube's) and converted in PickCubeDR-v1 at that level: the replay tool resets each demo with its
episode seed, which draws that demo's variation (lighting, colours, textures, camera), so every demo
has its own, reproducible from the seed (the json records env id and level for bc.py and evaluate.py).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import tyro

from cleanrl_style.lib.checkpoints import load_checkpoint, policy_loader
from cleanrl_style.lib.envs import resolve_env_id
from cleanrl_style.lib.runs import UserError, check_choice, check_non_negative, check_positive, run, write_json
from cleanrl_style.lib.sim_dr import BASE_ENV_ID as SIM_DR_BASE_ENV_ID
from cleanrl_style.lib.sim_dr import ENV_ID as SIM_DR_ENV_ID
from cleanrl_style.lib.sim_dr import LEVELS
from cleanrl_style.lib.sim_dr import resolve as resolve_sim_dr

MP_TASKS = (
    "PickCube-v1",
    "PushCube-v1",
    "StackCube-v1",
    "PegInsertionSide-v1",
    "PullCube-v1",
    "LiftPegUpright-v1",
    "PlugCharger-v1",
    "PullCubeTool-v1",
    "PlaceSphere-v1",
    "StackPyramid-v1",
    "DrawTriangle-v1",
    "DrawSVG-v1",
)


@dataclass
class Args:
    env_id: str = "PickCube"
    """ManiSkill task id; short names like PickCube resolve to PickCube-v1"""
    num_demos: int = 100
    """successful demos the raw file should hold (counting those already there)"""
    out_dir: str = "demos"
    """root of the demo tree (see the module docstring)"""
    num_procs: Optional[int] = None
    """collection / conversion processes (default: the CPU count, at most 8)"""
    seed: int = 0
    """first episode seed; later runs continue after the largest seed already collected"""
    max_attempts: Optional[int] = None
    """give up after this many attempts in total (default: 2 * num_demos + 20)"""
    obs_mode: Optional[str] = None
    """also write a copy with these observations: state | rgb | rgbd (default: raw file only)"""
    control_mode: Optional[str] = None
    """control mode of the converted copy, e.g. pd_ee_delta_pos, pd_ee_delta_pose, pd_joint_delta_pos
    (default: pd_joint_pos, the planner's own)"""
    image_size: int = 64
    """camera resolution of rgb/rgbd copies"""
    convert_only: bool = False
    """convert the existing raw file, collect nothing"""
    teacher: Optional[str] = None
    """checkpoint of one of our policies to use as the expert instead of the motion planner; records
    directly in its obs/control mode; episodes end at the first success"""
    sim_dr: str = "off"
    """light | heavy: render the converted copy in PickCubeDR-v1 under that level's simulator
    randomization, each demo its own variation drawn from its episode seed (PickCube, --obs-mode rgb/rgbd)"""


# ----------------------------------------------------------------------------- paths and json
def raw_path(out_dir: str, env_id: str) -> Path:
    return Path(out_dir) / env_id / "motionplanning" / "trajectory.h5"


def converted_path(raw: Path, obs_mode: str, control_mode: str, image_size: int, sim_dr: str = "off") -> Path:
    sub = obs_mode if obs_mode == "state" else f"{obs_mode}{image_size}"
    sub += "" if sim_dr == "off" else f"-simdr-{sim_dr}"
    return raw.parent / sub / f"trajectory.{_ms_obs_mode(obs_mode)}.{control_mode}.physx_cpu.h5"


def _ms_obs_mode(obs_mode: str) -> str:
    return "rgb+depth" if obs_mode == "rgbd" else obs_mode


def _json(h5: Path) -> Path:
    return h5.with_suffix(".json")


def read_json(h5: Path) -> dict:
    try:
        return json.loads(_json(h5).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(
            f"{_json(h5)} is missing or corrupt ({type(e).__name__}); move {h5.parent} away to start over", code=1
        ) from e


def replace_pair(src_h5: Path, dst_h5: Path) -> None:
    """Move an h5 + json pair into place: json first (a stale json next to a complete h5 is what a
    crash in between leaves, and the next run rewrites it)."""
    dst_h5.parent.mkdir(parents=True, exist_ok=True)
    os.replace(_json(src_h5), _json(dst_h5))
    os.replace(src_h5, dst_h5)


# ----------------------------------------------------------------------------- collection workers
def _record_attempts(env, seeds: list[int], wanted: int, attempt, queue, h5: str) -> dict:
    """Try `seeds` in order until `wanted` succeed. `attempt(seed)` plays one episode in the recording
    env and returns its length if it succeeded, else None; only successful episodes are saved."""
    ok, lengths, tried = [], [], 0
    for seed in seeds:
        if len(ok) >= wanted:
            break
        tried += 1
        length = attempt(seed)
        env.flush_trajectory(save=length is not None)
        if length is not None:
            ok.append(seed)
            lengths.append(length)
        queue.put(length is not None)
    env.close()
    return dict(h5=h5, seeds=ok, attempts=tried, lengths=lengths, last_seed=seeds[tried - 1] if tried else -1)


def _mp_worker(env_id: str, seeds: list[int], wanted: int, tmp_dir: str, name: str, queue) -> dict:
    """One process: run the motion-planning solution on `seeds` in order until `wanted` succeed;
    record the successful episodes with ManiSkill's RecordEpisode."""
    import gymnasium as gym
    import mani_skill.envs  # noqa: F401
    from mani_skill.examples.motionplanning.panda.run import MP_SOLUTIONS
    from mani_skill.utils.wrappers.record import RecordEpisode

    env = gym.make(env_id, obs_mode="none", control_mode="pd_joint_pos", sim_backend="physx_cpu", render_backend="none")
    env = RecordEpisode(
        env,
        output_dir=tmp_dir,
        trajectory_name=name,
        save_video=False,
        source_type="motionplanning",
        source_desc="mani_skill's motion planning solution, collected by cleanrl_style/collect_demos.py",
        record_reward=False,
        save_on_reset=False,
    )
    solve = MP_SOLUTIONS[env_id]

    def attempt(seed: int) -> Optional[int]:
        try:
            res = solve(env, seed=seed, debug=False, vis=False)
        except Exception:  # noqa: BLE001  (a planner failure is a failed attempt, not a crash)
            return None
        if res == -1 or not bool(res[-1]["success"].item()):
            return None
        return int(res[-1]["elapsed_steps"].item())

    return _record_attempts(env, seeds, wanted, attempt, queue, str(Path(tmp_dir) / f"{name}.h5"))


def _teacher_worker(ckpt_path: str, seeds: list[int], wanted: int, tmp_dir: str, name: str, queue) -> dict:
    """One process: roll out a checkpoint of ours (deterministic) and keep the episodes that succeed,
    ended at their first success."""
    import gymnasium as gym
    import torch
    from mani_skill.utils.wrappers.record import RecordEpisode

    from cleanrl_style.lib.envs import PixelObs, register_our_envs

    register_our_envs()  # a spawned process: PickCubeDR-v1 checkpoints need it registered

    torch.set_num_threads(1)
    ckpt = load_checkpoint(ckpt_path)
    spec = ckpt["env"]
    policy = policy_loader(ckpt)(ckpt, torch.device("cpu"))
    h, w = spec["image_size"]
    kw = dict(
        num_envs=1,
        obs_mode=_ms_obs_mode(spec["obs_mode"]),
        sim_backend="physx_cpu",
        render_backend="cpu" if spec["obs_mode"] != "state" else "none",
        sensor_configs=dict(width=w, height=h),
        control_mode=spec["control_mode"],
    )
    kw.update(spec.get("env_kwargs") or {})
    env = gym.make(spec["env_id"], **kw)
    env = RecordEpisode(
        env,
        output_dir=tmp_dir,
        trajectory_name=name,
        save_video=False,
        source_type="rl",
        source_desc=f"cleanrl_style {ckpt['script']} checkpoint {ckpt_path}",
        record_reward=True,
        save_on_reset=False,
    )
    convert = PixelObs(spec["cameras"], spec["obs_mode"] == "rgbd") if spec["obs_mode"] != "state" else None
    max_steps = spec.get("max_episode_steps") or env.unwrapped.spec.max_episode_steps or 100

    @torch.no_grad()
    def attempt(seed: int) -> Optional[int]:
        obs, _ = env.reset(seed=seed)
        if hasattr(policy, "reset"):
            policy.reset()
        for t in range(max_steps):
            obs, _, _, _, info = env.step(policy(convert(obs) if convert else obs.float()))
            if bool(info["success"].any()):
                return t + 1
        return None

    return _record_attempts(env, seeds, wanted, attempt, queue, str(Path(tmp_dir) / f"{name}.h5"))


def collect(args: Args, env_id: str, dest: Path, worker, worker_arg: str) -> dict:
    """Add successful episodes to `dest` until it holds args.num_demos. Returns the collection stats."""
    from mani_skill.trajectory.merge_trajectory import merge_trajectories
    from tqdm import tqdm

    have, prev = 0, {}
    next_seed = args.seed
    if dest.exists():
        prev = read_json(dest)
        have = len(prev["episodes"])
        seeds = [ep["episode_seed"] for ep in prev["episodes"]]
        next_seed = max([args.seed - 1] + seeds + [prev.get("cleanrl_style", {}).get("last_seed_tried", -1)]) + 1
    wanted = args.num_demos - have
    if wanted <= 0:
        print(f"collect: {dest} already holds {have} demos (>= --num-demos {args.num_demos}); nothing to collect")
        return prev.get("cleanrl_style", {})
    procs = max(1, min(args.num_procs or min(os.cpu_count() or 1, 8), wanted))
    budget = args.max_attempts or (2 * wanted + 20)
    # process i tries seeds next_seed + i, + i + procs, ... so merged files never repeat a seed
    per_proc = [wanted // procs + (1 if i < wanted % procs else 0) for i in range(procs)]
    seeds = [list(range(next_seed + i, next_seed + budget, procs)) for i in range(procs)]
    tmp = dest.parent / f".collect-tmp-{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    try:
        ctx = mp.get_context("spawn")
        with ctx.Manager() as manager:
            queue = manager.Queue()
            with ctx.Pool(procs) as pool:
                jobs = [
                    pool.apply_async(worker, (worker_arg, seeds[i], per_proc[i], str(tmp), f"part{i}", queue))
                    for i in range(procs)
                ]
                bar = tqdm(total=wanted, unit="demo", desc=f"collect {env_id}", dynamic_ncols=True)
                tries = succ = 0
                while not all(j.ready() for j in jobs) or not queue.empty():
                    try:
                        s = queue.get(timeout=0.5)
                    except Exception:  # noqa: BLE001  (queue.Empty through the manager proxy)
                        continue
                    tries += 1
                    succ += int(s)
                    bar.update(int(s))
                    bar.set_postfix(attempts=tries, success_rate=f"{succ / tries:.2f}")
                bar.close()
                results = [j.get() for j in jobs]
        new_seeds = sorted(s for r in results for s in r["seeds"])
        attempts = sum(r["attempts"] for r in results)
        lengths = [n for r in results for n in r["lengths"]]
        parts = ([str(dest)] if dest.exists() else []) + [r["h5"] for r in results if r["seeds"]]
        if not new_seeds:
            raise UserError(f"collect: 0 of {attempts} attempts on {env_id} succeeded; nothing written", code=1)
        merged = tmp / "merged.h5"
        merge_trajectories(str(merged), parts)
        meta = read_json(merged)
        old = prev.get("cleanrl_style", {})
        stats = dict(
            attempts=old.get("attempts", 0) + attempts,
            successes=len(meta["episodes"]),
            last_seed_tried=max([old.get("last_seed_tried", -1)] + [r["last_seed"] for r in results]),
            collect_seconds=old.get("collect_seconds", 0.0) + (time.time() - t0),
        )
        meta["cleanrl_style"] = stats
        write_json(_json(merged), meta)
        replace_pair(merged, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rate = len(new_seeds) / max(attempts, 1)
    print(
        f"collect: {len(new_seeds)}/{attempts} attempts succeeded ({rate:.0%}) in {time.time() - t0:.1f}s; "
        f"episode length {min(lengths)}-{max(lengths)} (mean {sum(lengths) / len(lengths):.1f}); "
        f"{dest} now holds {stats['successes']} demos"
    )
    if len(new_seeds) < wanted:
        print(f"collect: warning: wanted {wanted} more, got {len(new_seeds)} within --max-attempts {budget}")
    return stats


# ----------------------------------------------------------------------------- conversion
def _split(raw: Path, meta: dict, parts: int, tmp: Path) -> list[Path]:
    """Write the raw demos as `parts` smaller h5 + json pairs (contiguous slices of episodes)."""
    import h5py

    eps = meta["episodes"]
    bounds = [len(eps) * i // parts for i in range(parts + 1)]
    out = []
    with h5py.File(raw, "r") as src:
        for i in range(parts):
            chunk = eps[bounds[i] : bounds[i + 1]]
            if not chunk:
                continue
            path = tmp / f"part{i}" / "trajectory.h5"
            path.parent.mkdir(parents=True)
            with h5py.File(path, "w") as dst:
                for ep in chunk:
                    src.copy(f"traj_{ep['episode_id']}", dst)
            write_json(_json(path), dict(meta, episodes=chunk))
            out.append(path)
    return out


# mani_skill's replay tool, run in a process that has registered our tasks (PickCubeDR-v1) first
REPLAY_TOOL = (
    "import runpy, sys; from cleanrl_style.lib.envs import register_our_envs; register_our_envs(); "
    "sys.argv[0] = 'replay_trajectory'; "
    "runpy.run_module('mani_skill.trajectory.replay_trajectory', run_name='__main__', alter_sys=True)"
)


def convert(raw: Path, obs_mode: str, control_mode: str, image_size: int, num_procs: int, sim_dr: str = "off") -> Path:
    """Replay the raw demos in another obs/control mode with mani_skill's replay tool (closed-loop
    action conversion, success checked); returns the converted file. Failed replays are reported.
    sim_dr light/heavy replays them in PickCubeDR-v1 at that level (each demo's variation is drawn from
    its episode seed when the tool resets the env with it).

    The demos are split into num_procs parts, each replayed by its own replay-tool process (one
    env each): a process that dies is seen by its exit code instead of hanging a worker pool."""
    from mani_skill.trajectory.merge_trajectory import merge_trajectories

    out = converted_path(raw, obs_mode, control_mode, image_size, sim_dr)
    tmp = out.parent / f".convert-tmp-{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=True)
    meta = read_json(raw)
    n_raw = len(meta["episodes"])
    if obs_mode != "state":  # the replay tool builds the env from the json's env_kwargs: the image size goes there
        meta = json.loads(json.dumps(meta))
        kw = meta["env_info"]["env_kwargs"]
        kw["sensor_configs"] = dict(width=image_size, height=image_size)
        if (
            kw.get("render_backend") == "none"
        ):  # collected without a renderer; replaying images needs ManiSkill's default one
            kw.pop("render_backend")
        if sim_dr != "off":  # the replay tool makes the json's env: the randomized variant at this level
            meta["env_info"]["env_id"] = SIM_DR_ENV_ID
            kw.update(sim_dr=sim_dr, variation="train")
    t0 = time.time()
    procs = []  # (process, its log file, its part)
    try:
        parts = _split(raw, meta, max(1, min(num_procs, n_raw)), tmp)
        print(
            f"convert: replaying {n_raw} demos as {obs_mode}/{control_mode} in {len(parts)} process(es) "
            f"(mani_skill.trajectory.replay_trajectory; progress of the first below)",
            flush=True,
        )
        for i, part in enumerate(parts):
            cmd = [
                sys.executable,
                "-c",
                REPLAY_TOOL,
                "--traj-path",
                str(part),
                "--use-first-env-state",
                "-o",
                _ms_obs_mode(obs_mode),
                "--save-traj",
                "--record-rewards",  # in the env's default reward mode: the one the RL scripts train with
                "-n",
                "1",
                "-b",
                "physx_cpu",
            ]
            if control_mode != "pd_joint_pos":
                cmd += ["-c", control_mode]
            log = open(part.parent / "replay.log", "w")
            procs.append(
                (subprocess.Popen(cmd, stdout=sys.stderr if i == 0 else log, stderr=subprocess.STDOUT), log, part)
            )
        produced = []
        for proc, _, part in procs:
            rc = proc.wait()
            done = part.parent / out.name
            if rc != 0 or not done.exists():
                tail = (part.parent / "replay.log").read_text().strip().splitlines()[-1:] or ["see the output above"]
                raise UserError(
                    f"conversion to {obs_mode}/{control_mode} failed: replay tool exit {rc} on "
                    f"{part.parent.name} ({tail[0][:200]})",
                    code=1,
                )
            produced.append(done)
        merged = tmp / out.name
        merge_trajectories(str(merged), [str(p) for p in produced])
        conv = read_json(merged)
        got = len(conv["episodes"])  # seeds as a multiset: a file merged from other tools may repeat one
        failed = sorted(
            (
                Counter(ep["episode_seed"] for ep in meta["episodes"])
                - Counter(ep["episode_seed"] for ep in conv["episodes"])
            ).elements()
        )
        conv["cleanrl_style"] = dict(
            source=str(raw),
            source_episodes=n_raw,
            converted=got,
            failed_seeds=failed,
            convert_seconds=time.time() - t0,
            image_size=image_size if obs_mode != "state" else None,
            sim_dr=sim_dr,
        )
        write_json(_json(merged), conv)
        replace_pair(merged, out)
    finally:
        for proc, log, _ in procs:
            if proc.poll() is None:
                proc.kill()
            log.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"convert: {got}/{n_raw} demos replayed successfully as {obs_mode}/{control_mode} in "
        f"{time.time() - t0:.1f}s -> {out}" + (f"; failed seeds: {failed}" if failed else "")
    )
    return out


# ----------------------------------------------------------------------------- main
def check_args(args: Args) -> None:
    """Every flag that needs no file, checked before anything starts (one line, exit 2)."""
    check_positive(args, "num_demos", "num_procs", "max_attempts", "image_size")
    check_non_negative(args, "seed")
    if args.obs_mode is not None:
        check_choice("obs-mode", args.obs_mode, ("state", "rgb", "rgbd"))
    if args.control_mode is not None and args.obs_mode is None and not args.teacher:
        raise UserError("--control-mode converts the demos: give --obs-mode too (state, rgb or rgbd)")
    if args.teacher and args.convert_only:
        raise UserError("--teacher records in the checkpoint's own modes; --convert-only does not apply")
    check_choice("sim-dr", args.sim_dr, LEVELS)
    if args.sim_dr != "off":
        if args.teacher:
            raise UserError("--sim-dr applies to converting planned demos; a --teacher records in its checkpoint's env")
        if args.obs_mode not in ("rgb", "rgbd"):
            raise UserError("--sim-dr changes only what the cameras see: give --obs-mode rgb or rgbd")


def main(args: Args) -> dict:
    check_args(args)
    env_id = resolve_env_id(args.env_id)
    if args.sim_dr != "off" or env_id == SIM_DR_ENV_ID:
        if env_id not in (SIM_DR_ENV_ID, SIM_DR_BASE_ENV_ID):
            resolve_sim_dr(env_id, args.sim_dr)  # the one-line error for other tasks
        if not args.teacher:  # planned (and stored) in PickCube-v1: PickCubeDR-v1 has its physics
            env_id = SIM_DR_BASE_ENV_ID
    procs = args.num_procs or min(os.cpu_count() or 1, 8)
    if args.teacher:
        ckpt = load_checkpoint(args.teacher)
        if ckpt["env"]["env_id"] != env_id:
            raise UserError(f"--teacher was trained on {ckpt['env']['env_id']}, not {env_id}", code=1)
        spec = ckpt["env"]
        dest = (
            Path(args.out_dir)
            / env_id
            / "teacher"
            / f"trajectory.{_ms_obs_mode(spec['obs_mode'])}.{spec['control_mode']}.physx_cpu.h5"
        )
        stats = collect(args, env_id, dest, _teacher_worker, str(Path(args.teacher).resolve()))
        return dict(stats, path=str(dest))
    if env_id not in MP_TASKS:
        raise UserError(
            f"no motion-planning solution for {env_id} in mani_skill (have: {', '.join(MP_TASKS)}); "
            f"use --teacher CHECKPOINT"
        )
    raw = raw_path(args.out_dir, env_id)
    out = dict(raw=str(raw))
    if args.convert_only:
        if not raw.exists():
            raise UserError(f"--convert-only: no demos at {raw}", code=1)
        if args.obs_mode is None:
            raise UserError("--convert-only needs --obs-mode (and usually --control-mode)")
    else:
        out.update(collect(args, env_id, raw, _mp_worker, env_id))
    if args.obs_mode:
        control = args.control_mode or "pd_joint_pos"
        out["converted"] = str(convert(raw, args.obs_mode, control, args.image_size, procs, args.sim_dr))
    return out


if __name__ == "__main__":
    run(main, tyro.cli(Args))
