"""The batched env branch (ManiSkill's `ManiSkillVectorEnv` over one simulation: the code that runs
on a GPU) executed on CPU through the internal `batched-cpu` backend (`ManiSkillVectorEnv` over a
one-env physx_cpu simulation), side by side with the per-process CPU branch (`cpu`).
`pytest -k batched` selects these tests.

Both branches drive the same physx_cpu simulation and the same software renderer in this process,
so they must agree exactly, not approximately: states, rewards and metrics bit for bit, rgb byte for
byte, dtypes and devices identical. That includes the episodes after an auto-reset: an unseeded reset
draws the new initial state from torch's global RNG (ManiSkill's `_initialize_episode` calls
`torch.rand`), so each branch's run starts from the same `torch.manual_seed`. Training scripts are
deterministic on the CPU backends (one torch thread), so a script run through `batched-cpu` must
write the same metrics, evaluation and weights as the same run through `cpu`.
"""

from __future__ import annotations

import csv
import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT, SHORT_STEPS, run_script

from cleanrl_style.lib.checkpoints import load_checkpoint
from cleanrl_style.lib.envs import BACKENDS, EPISODE_KEYS, env_spec, make_env, resolve_sim_backend
from cleanrl_style.lib.evaluation import evaluate
from cleanrl_style.lib.runs import UserError

BRANCHES = ("cpu", "batched-cpu")
GOAL_AT_CUBE = "BatchedTestPickCubeGoalAtCube-v1"  # registered by the `goal_at_cube` fixture only


# ----------------------------------------------------------------------------- helpers
def _actions(action_dim: int, n: int, seed: int = 0) -> list[torch.Tensor]:
    """n reproducible (1, A) actions in [-1, 1] (every controller here has those bounds)."""
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(1, action_dim, generator=g) * 2 - 1 for _ in range(n)]


def _assert_same(x, y, where: str) -> None:
    """Exactly equal: same keys, same tensor dtype/shape/device and the same values bit for bit."""
    if isinstance(x, dict):
        assert isinstance(y, dict) and set(x) == set(y), (where, set(x), set(y) if isinstance(y, dict) else y)
        for k in x:
            _assert_same(x[k], y[k], f"{where}/{k}")
    elif torch.is_tensor(x):
        assert torch.is_tensor(y), (where, type(y))
        assert (x.dtype, tuple(x.shape), x.device) == (y.dtype, tuple(y.shape), y.device), (
            where,
            (x.dtype, tuple(x.shape), x.device),
            (y.dtype, tuple(y.shape), y.device),
        )
        assert torch.equal(x, y), (where, x.flatten()[:8], y.flatten()[:8])
    elif isinstance(x, np.ndarray):
        assert isinstance(y, np.ndarray) and x.dtype == y.dtype and np.array_equal(x, y), where
    elif isinstance(x, (list, tuple)):
        assert isinstance(y, (list, tuple)) and len(x) == len(y), (where, x, y)
        for i, (u, v) in enumerate(zip(x, y)):
            _assert_same(u, v, f"{where}[{i}]")
    else:
        assert x == y, (where, x, y)


def _check_types(obs_mode: str, obs, rew, term, trunc, info) -> None:
    """The documented dtypes/devices of VecEnv.step (module docstring of lib/envs.py)."""
    cpu = torch.device("cpu")

    def obs_ok(o, where):
        if obs_mode == "state":
            assert o.dtype == torch.float32 and o.device == cpu and o.ndim == 2, where
        else:
            assert set(o) == {"rgb", "state"}, where
            assert o["rgb"].dtype == torch.uint8 and o["rgb"].shape[1:] == (3, 64, 64), where
            assert o["state"].dtype == torch.float32 and o["state"].ndim == 2, where
            assert o["rgb"].device == o["state"].device == cpu, where

    obs_ok(obs, "obs")
    assert rew.dtype == torch.float32 and rew.shape == (1,) and rew.device == cpu
    assert term.dtype == trunc.dtype == torch.bool and term.shape == trunc.shape == (1,)
    assert term.device == trunc.device == cpu
    assert info["success"].dtype == torch.bool and info["success"].shape == (1,)
    if "_final_info" in info:
        assert set(info) == {"success", "final_observation", "_final_info", "final_info"}
        assert info["_final_info"].dtype == torch.bool and info["_final_info"].shape == (1,)
        obs_ok(info["final_observation"], "final_observation")
        assert set(info["final_info"]) == {"episode"}
        for k, v in info["final_info"]["episode"].items():
            assert k in EPISODE_KEYS and v.dtype == torch.float32 and v.shape == (1,) and v.device == cpu, k
    else:
        assert set(info) == {"success"}


def _roll(env_id: str, obs_mode: str, partial_reset: bool, backend: str, actions) -> dict:
    torch.manual_seed(1234)  # unseeded auto-resets draw the next initial state from torch's global RNG
    env = make_env(
        env_id,
        1,
        obs_mode,
        sim_backend=backend,
        max_episode_steps=SHORT_STEPS,
        partial_reset=partial_reset,
        image_size=64,
    )
    try:
        first, reset_info = env.reset(seed=3)
        steps = [env.step(a) for a in actions]
        return dict(
            batched=env.batched,
            device=env.device,
            first=first,
            reset_info=reset_info,
            steps=steps,
            static=dict(
                action_low=env.action_low,
                action_high=env.action_high,
                action_dim=env.action_dim,
                max_episode_steps=env.max_episode_steps,
                obs_shapes=env.obs_shapes,
                state_layout=env.state_layout(),
                spec=env_spec(env),
            ),
        )
    finally:
        env.close()


def _compare_rolls(obs_mode: str, runs: dict) -> list[dict]:
    """Assert the two branches' rolls are identical; returns the finished episodes' metrics."""
    c, b = runs["cpu"], runs["batched-cpu"]
    assert (c["batched"], b["batched"]) == (False, True)
    assert c["device"] == b["device"] == torch.device("cpu")
    _assert_same(c["static"], b["static"], "env attributes")
    _assert_same(c["first"], b["first"], "reset obs")
    _assert_same(c["reset_info"], b["reset_info"], "reset info")
    episodes = []
    for t, (sc, sb) in enumerate(zip(c["steps"], b["steps"])):
        for s in (sc, sb):
            _check_types(obs_mode, *s)
        for name, x, y in zip(("obs", "reward", "terminated", "truncated", "info"), sc, sb):
            _assert_same(x, y, f"step {t} {name}")
        info = sc[4]
        if "_final_info" in info:
            assert info["_final_info"].tolist() == [bool(sc[2][0] or sc[3][0])]
            episodes.append({k: float(v[0]) for k, v in info["final_info"]["episode"].items()})
        else:
            assert not (sc[2][0] or sc[3][0]), f"step {t}: an episode ended without final_info"
    return episodes


@pytest.fixture(scope="module")
def goal_at_cube():
    """PickCube with the goal placed on the cube at every reset: success (cube at goal, robot still)
    comes whenever the arm stops, so terminations and the success metrics are exercised. Unregistered
    afterwards so no other test sees it in the env-id list."""
    import gymnasium as gym
    from mani_skill.envs.tasks.tabletop.pick_cube import PickCubeEnv
    from mani_skill.utils.registration import REGISTERED_ENVS, register_env
    from mani_skill.utils.structs.pose import Pose

    class PickCubeGoalAtCube(PickCubeEnv):
        def _initialize_episode(self, env_idx, options):
            super()._initialize_episode(env_idx, options)
            self.goal_site.set_pose(Pose.create_from_pq(self.cube.pose.p[env_idx]))

    register_env(GOAL_AT_CUBE, max_episode_steps=50, override=True)(PickCubeGoalAtCube)
    yield GOAL_AT_CUBE
    REGISTERED_ENVS.pop(GOAL_AT_CUBE, None)
    gym.registry.pop(GOAL_AT_CUBE, None)


# ----------------------------------------------------------------------------- env level
@pytest.mark.parametrize("partial_reset", [True, False], ids=["partial_reset", "no_partial_reset"])
@pytest.mark.parametrize("obs_mode", ["state", "rgb"])
def test_batched_env_matches_cpu_env_step_for_step(obs_mode, partial_reset):
    """PickCube, random actions across two time limits: every returned tensor identical (rgb byte
    for byte), including final observations, episode metrics and the episodes after auto-resets."""
    steps = 2 * SHORT_STEPS + 1
    runs = {b: _roll("PickCube", obs_mode, partial_reset, b, _actions(7, steps)) for b in BRANCHES}
    episodes = _compare_rolls(obs_mode, runs)
    assert [e["episode_len"] for e in episodes] == [SHORT_STEPS, SHORT_STEPS]
    # success_at_end is reported only where terminations are ignored (ManiSkill's CPUGymWrapper and
    # ManiSkillVectorEnv both document this), the other metrics always
    want = set(EPISODE_KEYS) - ({"success_at_end"} if partial_reset else set())
    assert all(set(e) == want for e in episodes), episodes
    # the auto-reset really started new episodes (and both branches the same ones, checked above)
    for t in (SHORT_STEPS - 1, 2 * SHORT_STEPS - 1):
        obs, info = runs["cpu"]["steps"][t][0], runs["cpu"]["steps"][t][4]
        key = (lambda o: o) if obs_mode == "state" else (lambda o: o["state"])
        assert not torch.equal(key(obs), key(info["final_observation"]))


@pytest.mark.parametrize("partial_reset", [True, False], ids=["partial_reset", "no_partial_reset"])
def test_batched_env_matches_cpu_env_on_success_and_termination(goal_at_cube, partial_reset):
    """Successes: with partial resets they terminate episodes early; without, episodes run to the time
    limit and success_once / success_at_end tell a success that was lost from one that was kept."""
    big = _actions(7, 4, seed=5)
    zero = torch.zeros(1, 7)
    # moving arm (no success), still arm (success), moving again: lost by the end of episode 1
    acts = [big[0], zero, big[1], big[2], big[3]] + [zero] * (SHORT_STEPS + 1)
    runs = {b: _roll(goal_at_cube, "state", partial_reset, b, acts) for b in BRANCHES}
    episodes = _compare_rolls("state", runs)
    terms = [bool(s[2][0]) for s in runs["cpu"]["steps"]]
    if partial_reset:
        assert any(terms) and all("success_at_end" not in e for e in episodes)
        assert episodes[0] == {"success_once": 1.0, "return": episodes[0]["return"], "episode_len": 2.0}
        assert all(e["success_once"] == 1.0 and e["episode_len"] < SHORT_STEPS for e in episodes)
    else:
        assert not any(terms)
        assert [e["episode_len"] for e in episodes] == [SHORT_STEPS, SHORT_STEPS]
        assert [(e["success_once"], e["success_at_end"]) for e in episodes] == [(1.0, 0.0), (1.0, 1.0)]


def test_batched_evaluate_gives_the_cpu_metrics(goal_at_cube):
    """evaluate() on the protocol's eval envs (no partial resets, reconfiguration every reset): the
    same per-episode metrics on both branches, the requested number of episodes, one policy reset
    per batch, seeds seed + i."""

    class Policy:
        def __init__(self, gain):
            self.gain, self.resets = gain, 0

        def reset(self):
            self.resets += 1

        def __call__(self, obs):
            return torch.tanh(self.gain * obs[:, :7])

    out = {}
    for env_id, gain, n in (("PickCube", 3.0, 3), (goal_at_cube, 0.0, 2)):
        for b in BRANCHES:
            torch.manual_seed(0)
            env = make_env(
                env_id, 1, "state", sim_backend=b, max_episode_steps=SHORT_STEPS, partial_reset=False, reconfigure=True
            )
            try:
                policy = Policy(gain)
                out[env_id, b] = evaluate(policy, env, n, seed=11)
            finally:
                env.close()
            assert policy.resets == n
        c, bt = out[env_id, "cpu"], out[env_id, "batched-cpu"]
        assert c == bt, (env_id, c, bt)
        assert bt["episodes"] == n and bt["seeds"] == [11 + i for i in range(n)]
        assert all(len(bt["per_episode"][k]) == n for k in EPISODE_KEYS)
        assert bt["per_episode"]["episode_len"] == [float(SHORT_STEPS)] * n
    assert len(set(out["PickCube", "cpu"]["per_episode"]["return"])) == 3  # three different episodes
    assert out[goal_at_cube, "batched-cpu"]["per_episode"]["success_at_end"] == [1.0, 1.0]  # a still arm


def test_evaluation_rebuilds_the_scene_once_per_batch(monkeypatch):
    """The protocol's eval envs (reconfigure=True) rebuild the scene at each batch's seeded reset and not
    at the auto-reset that ends the batch (ManiSkill's reconfiguration_freq=1 rebuilds at both: twice per
    batch), on both branches, with the same per-episode metrics as the old twice-per-batch protocol."""
    from mani_skill.envs.sapien_env import BaseEnv

    builds = []
    original = BaseEnv._reconfigure

    def counting(self, options=dict()):  # noqa: B006 (ManiSkill's own signature)
        builds.append(1)
        return original(self, options)

    monkeypatch.setattr(BaseEnv, "_reconfigure", counting)
    policy = lambda o: torch.tanh(3 * o[:, :7])  # noqa: E731
    results = {}
    for b in BRANCHES:
        for name, kw in (("once", dict(reconfigure=True)), ("twice", dict(reconfiguration_freq=1))):
            env = make_env(
                "PickCube", 1, "state", sim_backend=b, max_episode_steps=SHORT_STEPS, partial_reset=False, **kw
            )
            try:
                del builds[:]
                results[b, name] = evaluate(policy, env, 3, seed=21)
                results[b, name, "builds"] = len(builds)
            finally:
                env.close()
        assert results[b, "once", "builds"] == 3, b  # one per batch of 1 env
        assert results[b, "twice", "builds"] == 6, b
        assert results[b, "once"] == results[b, "twice"], b
    assert results["cpu", "once"] == results["batched-cpu", "once"]


def _frames(path) -> list[np.ndarray]:
    import imageio.v2 as imageio

    reader = imageio.get_reader(str(path))
    try:
        return [np.asarray(f) for f in reader]
    finally:
        reader.close()


def test_batched_video_capture_matches_cpu(tmp_path):
    """evaluate(video_name=...) records the first batch only: the reset frame plus one per step, the
    last one showing the state the episode ended in (rendered before the auto-reset, so it does not
    depend on torch's global RNG), the same pixels on both branches."""
    policy = lambda o: torch.tanh(3 * o[:, :7])  # noqa: E731

    def video_env(backend, steps, name):
        return make_env(
            "PickCube",
            1,
            "state",
            sim_backend=backend,
            max_episode_steps=steps,
            partial_reset=False,
            video_dir=str(tmp_path / name),
            video_size=64,
        )

    videos = {}
    for rng_seed, b in enumerate(BRANCHES):
        torch.manual_seed(rng_seed)  # a different global RNG state for each branch: must not matter
        env = video_env(b, SHORT_STEPS, b)
        try:
            res = evaluate(policy, env, 2, seed=0, video_name="clip")
        finally:
            env.close()
        assert res["video"] == str(tmp_path / b / "clip.mp4") and Path(res["video"]).is_file()
        videos[b] = _frames(res["video"])
    # the same first episode in an env whose time limit is one step later: no reset after step 5
    env = video_env("batched-cpu", SHORT_STEPS + 1, "longer")
    try:
        env.start_video()
        obs, _ = env.reset(seed=0)
        for _ in range(SHORT_STEPS):
            obs, *_ = env.step(policy(obs))
        videos["longer"] = _frames(env.stop_video("clip"))
    finally:
        env.close()
    assert len(videos["batched-cpu"]) == SHORT_STEPS + 1
    assert videos["batched-cpu"][0].shape == (64, 64, 3)
    for other in ("cpu", "longer"):
        assert len(videos[other]) == len(videos["batched-cpu"]), other
        for i, (x, y) in enumerate(zip(videos[other], videos["batched-cpu"])):
            assert np.array_equal(x, y), f"{other}: frame {i}"


def test_batched_cpu_is_internal_only():
    """One env only, and never advertised: the user-facing choices stay auto, gpu or cpu."""
    assert BACKENDS == ("auto", "gpu", "cpu")
    with pytest.raises(UserError, match="batched-cpu"):
        make_env("PickCube", 2, "state", sim_backend="batched-cpu")
    with pytest.raises(UserError) as e:
        resolve_sim_backend("batched")
    assert "auto, gpu or cpu" in str(e.value) and "batched" not in str(e.value).split("(got")[0]
    assert resolve_sim_backend("batched-cpu") == "batched-cpu"
    for script in ("ppo", "ppo_rgb", "sac", "sac_rgb", "bc", "evaluate"):
        src = (Path(REPO_ROOT) / "cleanrl_style" / f"{script}.py").read_text()
        m = re.search(r'sim_backend: str = "auto"\n\s*"""(.*?)"""', src, re.S)
        assert m and "gpu or cpu" in m.group(1) and "batched" not in m.group(1), script


# ----------------------------------------------------------------------------- every script through it
COMMON = [
    "--num-eval-envs",
    "1",
    "--num-eval-episodes",
    "1",
    "--max-episode-steps",
    str(SHORT_STEPS),
]
RL = ["--env-id", "PushCube", "--num-envs", "1", *COMMON]
SCRIPT_FLAGS = {
    "ppo": [*RL, "--total-timesteps", "8", "--num-steps", "4", "--num-minibatches", "1", "--hidden-dim", "8"],
    "ppo_rgb": [
        *RL,
        *("--total-timesteps", "8", "--num-steps", "4", "--num-minibatches", "1"),
        *("--image-size", "36", "--feature-dim", "8", "--frame-stack", "2"),
    ],
    "sac": [
        *RL,
        *("--total-timesteps", "12", "--learning-starts", "4", "--batch-size", "4"),
        *("--hidden-dim", "8", "--buffer-size", "64"),
    ],
    "sac_rgb": [
        *RL,
        *("--total-timesteps", "12", "--learning-starts", "4", "--batch-size", "4"),
        *("--hidden-dim", "8", "--buffer-size", "64", "--image-size", "36", "--feature-dim", "8", "--dr", "light"),
    ],
    "bc": [
        *("--env-id", "PickCube", *COMMON, "--total-iters", "4", "--eval-freq", "2", "--log-freq", "2"),
        *("--hidden-dim", "8"),
    ],
}


def _run_parallel(jobs: dict) -> dict:
    """Run independent script invocations two at a time (each uses one torch thread)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {k: pool.submit(run_script, *argv, timeout=300) for k, argv in jobs.items()}
        return {k: f.result() for k, f in futures.items()}


@pytest.fixture(scope="module")
def script_runs(tmp_path_factory):
    """Every training script run once through each branch with the same seed: {(script, branch): (proc, run_dir)}."""
    root = tmp_path_factory.mktemp("batched_runs")
    demos = root / "demos"
    collect = [
        "cleanrl_style/collect_demos.py",
        *("--env-id", "PickCube", "--num-demos", "2", "--out-dir", str(demos)),
        *("--obs-mode", "state", "--control-mode", "pd_ee_delta_pos", "--num-procs", "1"),
    ]
    jobs = {("collect", ""): collect}
    for script in SCRIPT_FLAGS:
        if script != "bc":
            for b in BRANCHES:
                jobs[script, b] = [
                    f"cleanrl_style/{script}.py",
                    *SCRIPT_FLAGS[script],
                    *("--sim-backend", b, "--runs-dir", str(root / script / b)),
                ]
    procs = _run_parallel(jobs)
    p = procs.pop(("collect", ""))
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    (conv,) = demos.glob("PickCube-v1/motionplanning/state/*.h5")
    procs.update(
        _run_parallel(
            {
                ("bc", b): [
                    "cleanrl_style/bc.py",
                    *SCRIPT_FLAGS["bc"],
                    *("--demo-path", str(conv), "--sim-backend", b, "--runs-dir", str(root / "bc" / b)),
                ]
                for b in BRANCHES
            }
        )
    )
    out = {}
    for (script, b), p in procs.items():
        dirs = list((root / script / b).glob("*")) if (root / script / b).is_dir() else []
        out[script, b] = (p, dirs[0] if len(dirs) == 1 else None)
    return out


def _metric_rows(run_dir: Path) -> list[tuple]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return [(r["step"], r["name"], r["value"]) for r in csv.DictReader(f) if not r["name"].startswith("time/")]


def _without(d, drop: set):
    """d without timing fields and the fields that name the backend or the output directory."""
    if isinstance(d, dict):
        return {k: _without(v, drop) for k, v in d.items() if k not in drop}
    return d


DIFFERS_BY_DESIGN = {"sim_backend", "runs_dir", "wall_s", "wall_time_s", "train_s"}


@pytest.mark.parametrize("script", list(SCRIPT_FLAGS))
def test_batched_training_smoke_run_matches_cpu(script_runs, script):
    """The batched-cpu run writes best.pt, last.pt and final_eval.json, and the same metrics,
    evaluation and weights as the cpu run with the same seed."""
    runs = {}
    for b in BRANCHES:
        p, run_dir = script_runs[script, b]
        assert p.returncode == 0, f"{script} {b}:\n{p.stdout[-1500:]}\n{p.stderr[-3000:]}"
        assert run_dir is not None, f"{script} {b}: expected one run directory"
        for f in ("best.pt", "last.pt", "final_eval.json", "metrics.csv", "config.yaml"):
            assert (run_dir / f).is_file(), (b, f)
        runs[b] = run_dir
    c, bt = runs["cpu"], runs["batched-cpu"]
    final = {b: json.loads((runs[b] / "final_eval.json").read_text()) for b in BRANCHES}
    assert final["batched-cpu"]["episodes"] == 1 and final["batched-cpu"]["episode_len"] == SHORT_STEPS
    assert _without(final["cpu"], DIFFERS_BY_DESIGN) == _without(final["batched-cpu"], DIFFERS_BY_DESIGN)
    assert _metric_rows(c) == _metric_rows(bt)
    assert any(n.startswith("eval/") for _, n, _ in _metric_rows(bt))
    for ck in ("last.pt", "best.pt"):
        x, y = load_checkpoint(c / ck), load_checkpoint(bt / ck)
        assert x["args"]["sim_backend"] == "cpu" and y["args"]["sim_backend"] == "batched-cpu"
        _assert_same(_without(x, DIFFERS_BY_DESIGN), _without(y, DIFFERS_BY_DESIGN), f"{script} {ck}")


def test_batched_evaluate_cli_with_video_matches_cpu(script_runs, tmp_path):
    """evaluate.py on a pixel checkpoint through batched-cpu (with --video) gives the cpu results."""
    p, run_dir = script_runs["sac_rgb", "batched-cpu"]
    assert p.returncode == 0 and run_dir is not None, p.stderr[-3000:]
    ckpt = str(run_dir / "last.pt")
    jobs = {
        b: [
            "cleanrl_style/evaluate.py",
            *("--checkpoint", ckpt, "--num-episodes", "2", "--seed", "4", "--num-envs", "1"),
            *("--sim-backend", b, "--video", "--out-dir", str(tmp_path / b)),
        ]
        for b in BRANCHES
    }
    res, frames = {}, {}
    for b, p in _run_parallel(jobs).items():
        assert p.returncode == 0, f"{b}:\n{p.stderr[-3000:]}"
        res[b] = json.loads((tmp_path / b / "eval_last_seed4.json").read_text())
        video = tmp_path / b / "eval_last_seed4.mp4"
        assert res[b]["video"] == str(video) and video.is_file()
        frames[b] = _frames(video)
    assert res["batched-cpu"]["episodes"] == 2 and res["batched-cpu"]["script"] == "sac_rgb"
    assert res["batched-cpu"]["seeds"] == [4, 5]
    drop = {"wall_time_s", "video"}
    assert _without(res["cpu"], drop) == _without(res["batched-cpu"], drop)
    assert len(frames["batched-cpu"]) == SHORT_STEPS + 1  # the first batch: reset frame + one per step
    assert len(frames["cpu"]) == len(frames["batched-cpu"])
    assert all(np.array_equal(x, y) for x, y in zip(frames["cpu"], frames["batched-cpu"]))
