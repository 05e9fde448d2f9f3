"""The batched env branch (ManiSkillVectorEnv over one simulation: the code the GPU runs) exercised
on CPU through the internal `batched-cpu` backend, against the per-process CPU branch.

`pytest -k batched` runs these. What the two branches must agree on: the first episode after a
seeded reset step for step (observations, rewards, flags, final observation, episode metrics and
their keys), the dtypes and devices of everything returned, evaluation metrics, video, and every
training script's smoke run. What legitimately differs: the initial states of auto-reset episodes
(each branch draws them from its own episode RNG), so those are only checked to be new episodes.
"""

from __future__ import annotations

import json

import pytest
import torch
from conftest import SHORT_STEPS, run_script

from cleanrl_style.lib.envs import EPISODE_KEYS, make_env
from cleanrl_style.lib.evaluation import evaluate

BRANCHES = ("cpu", "batched-cpu")


def _actions(env, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [
        env.action_low + torch.rand(1, env.action_dim, generator=g) * (env.action_high - env.action_low)
        for _ in range(n)
    ]


def _roll(obs_mode, partial_reset, backend, steps):
    env = make_env(
        "PickCube",
        1,
        obs_mode,
        sim_backend=backend,
        max_episode_steps=SHORT_STEPS,
        partial_reset=partial_reset,
        image_size=64,
    )
    try:
        first, _ = env.reset(seed=3)
        return first, [env.step(a) for a in _actions(env, steps)], env.batched
    finally:
        env.close()


def _assert_same(x, y, where):
    if isinstance(x, dict):
        assert set(x) == set(y), (where, set(x), set(y))
        for k in x:
            _assert_same(x[k], y[k], f"{where}/{k}")
    elif torch.is_tensor(x):
        assert torch.is_tensor(y) and (x.dtype, x.shape, x.device) == (y.dtype, y.shape, y.device), (where, x, y)
        if x.dtype == torch.uint8:  # rgb: the same renderer draws the same scene
            assert torch.equal(x, y), where
        else:
            torch.testing.assert_close(x.float(), y.float(), rtol=1e-5, atol=1e-5, msg=where)
    else:
        assert x == y, where


@pytest.mark.parametrize("obs_mode", ["state", "rgb"])
@pytest.mark.parametrize("partial_reset", [True, False])
def test_batched_branch_matches_cpu_branch_over_an_episode(obs_mode, partial_reset):
    steps = SHORT_STEPS + 2  # across the time limit: final observation, metrics, auto-reset
    runs = {b: _roll(obs_mode, partial_reset, b, steps) for b in BRANCHES}
    (first_c, rec_c, batched_c), (first_b, rec_b, batched_b) = runs["cpu"], runs["batched-cpu"]
    assert (batched_c, batched_b) == (False, True)
    _assert_same(first_c, first_b, "reset")
    for t in range(SHORT_STEPS):  # the seeded first episode, step for step
        obs_c, rew_c, term_c, trunc_c, info_c = rec_c[t]
        obs_b, rew_b, term_b, trunc_b, info_b = rec_b[t]
        for x, y, name in ((rew_c, rew_b, "reward"), (term_c, term_b, "terminated"), (trunc_c, trunc_b, "truncated")):
            _assert_same(x, y, f"step {t} {name}")
        assert set(info_c) == set(info_b), (t, set(info_c), set(info_b))
        _assert_same(info_c["success"], info_b["success"], f"step {t} success")
        if t < SHORT_STEPS - 1:
            _assert_same(obs_c, obs_b, f"step {t} obs")
    # the episode end: same flags, same final observation, same metrics with the same keys
    end_c, end_b = rec_c[SHORT_STEPS - 1][4], rec_b[SHORT_STEPS - 1][4]
    assert end_c["_final_info"].tolist() == end_b["_final_info"].tolist() == [True]
    _assert_same(end_c["final_observation"], end_b["final_observation"], "final_observation")
    _assert_same(end_c["final_info"], end_b["final_info"], "final_info")
    want = set(EPISODE_KEYS) if not partial_reset or obs_mode == "state" else set(EPISODE_KEYS) - {"success_at_end"}
    assert set(end_c["final_info"]["episode"]) <= want
    # after the auto-reset both branches are in a new episode (its initial state comes from each
    # branch's own episode RNG): the observation after the end is not the final observation
    for rec in (rec_c, rec_b):
        obs_after, info_end = rec[SHORT_STEPS - 1][0], rec[SHORT_STEPS - 1][4]
        key = (lambda o: o["state"]) if obs_mode != "state" else (lambda o: o)
        assert not torch.equal(key(obs_after), key(info_end["final_observation"]))


def test_batched_evaluate_gives_the_cpu_metrics():
    """evaluate() seeds every batch, so both branches play the same episodes."""
    out = {}
    for b in BRANCHES:
        env = make_env(
            "PickCube",
            1,
            "state",
            sim_backend=b,
            max_episode_steps=SHORT_STEPS,
            partial_reset=False,
            reconfiguration_freq=1,
        )
        try:
            out[b] = evaluate(lambda o, n=env.action_dim: torch.zeros(o.shape[0], n), env, 3, seed=11)
        finally:
            env.close()
    assert out["cpu"]["episodes"] == out["batched-cpu"]["episodes"] == 3
    for k in EPISODE_KEYS:
        assert out["cpu"]["per_episode"][k] == pytest.approx(out["batched-cpu"]["per_episode"][k], rel=1e-5), k


def test_batched_video_capture_writes_one_frame_per_step(tmp_path):
    import imageio.v2 as imageio

    env = make_env(
        "PickCube",
        1,
        "state",
        sim_backend="batched-cpu",
        max_episode_steps=SHORT_STEPS,
        partial_reset=False,
        video_dir=str(tmp_path),
        video_size=64,
    )
    try:
        env.start_video()
        env.reset(seed=0)
        for a in _actions(env, SHORT_STEPS):
            env.step(a)
        path = env.stop_video("clip")
    finally:
        env.close()
    assert path is not None
    frames = imageio.mimread(path)
    assert len(frames) == SHORT_STEPS + 1 and frames[0].shape == (64, 64, 3)


def test_batched_backend_refuses_more_than_one_env():
    from cleanrl_style.lib.runs import UserError

    with pytest.raises(UserError, match="batched-cpu"):
        make_env("PickCube", 2, "state", sim_backend="batched-cpu")


# ----------------------------------------------------------------------------- every script through it
TINY = [
    "--sim-backend",
    "batched-cpu",
    "--num-envs",
    "1",
    "--num-eval-envs",
    "1",
    "--num-eval-episodes",
    "1",
    "--max-episode-steps",
    "5",
    "--env-id",
    "PushCube",
]
SCRIPT_FLAGS = {
    "ppo": ["--total-timesteps", "8", "--num-steps", "4", "--num-minibatches", "1", "--hidden-dim", "8"],
    "ppo_rgb": [
        "--total-timesteps",
        "8",
        "--num-steps",
        "4",
        "--num-minibatches",
        "1",
        "--image-size",
        "36",
        "--feature-dim",
        "8",
        "--frame-stack",
        "2",
    ],
    "sac": [
        "--total-timesteps",
        "12",
        "--learning-starts",
        "4",
        "--batch-size",
        "4",
        "--hidden-dim",
        "8",
        "--buffer-size",
        "64",
    ],
    "sac_rgb": [
        "--total-timesteps",
        "12",
        "--learning-starts",
        "4",
        "--batch-size",
        "4",
        "--hidden-dim",
        "8",
        "--buffer-size",
        "64",
        "--image-size",
        "36",
        "--feature-dim",
        "8",
        "--dr",
        "light",
    ],
}


@pytest.fixture(scope="module")
def batched_runs(tmp_path_factory):
    runs = tmp_path_factory.mktemp("batched_runs")
    out = {}
    for script, flags in SCRIPT_FLAGS.items():
        p = run_script(f"cleanrl_style/{script}.py", *TINY, *flags, "--runs-dir", str(runs / script), timeout=300)
        assert p.returncode == 0, f"{script}:\n{p.stdout[-1500:]}\n{p.stderr[-3000:]}"
        (run_dir,) = (runs / script).iterdir()
        out[script] = run_dir
    return out


@pytest.mark.parametrize("script", list(SCRIPT_FLAGS))
def test_batched_training_smoke_run(batched_runs, script):
    run_dir = batched_runs[script]
    for f in ("best.pt", "last.pt", "final_eval.json", "metrics.csv", "config.yaml"):
        assert (run_dir / f).exists(), f
    final = json.loads((run_dir / "final_eval.json").read_text())
    assert final["episodes"] == 1 and final["episode_len"] == 5


def test_batched_evaluate_cli_with_video(batched_runs, tmp_path):
    p = run_script(
        "cleanrl_style/evaluate.py",
        "--checkpoint",
        str(batched_runs["sac_rgb"] / "last.pt"),
        "--num-episodes",
        "2",
        "--seed",
        "4",
        "--sim-backend",
        "batched-cpu",
        "--num-envs",
        "1",
        "--video",
        "--out-dir",
        str(tmp_path),
        timeout=300,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads((tmp_path / "eval_last_seed4.json").read_text())
    assert res["episodes"] == 2 and res["script"] == "sac_rgb"
    assert (tmp_path / "eval_last_seed4.mp4").exists()


def test_batched_bc_smoke_run(tmp_path):
    demos = tmp_path / "demos"
    p = run_script(
        "cleanrl_style/collect_demos.py",
        "--env-id",
        "PickCube",
        "--num-demos",
        "1",
        "--out-dir",
        str(demos),
        "--obs-mode",
        "state",
        "--control-mode",
        "pd_ee_delta_pos",
        "--num-procs",
        "1",
        timeout=300,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    (conv,) = demos.glob("PickCube-v1/motionplanning/state/*.h5")
    p = run_script(
        "cleanrl_style/bc.py",
        "--env-id",
        "PickCube",
        "--demo-path",
        str(conv),
        "--total-iters",
        "4",
        "--eval-freq",
        "0",
        "--log-freq",
        "2",
        "--sim-backend",
        "batched-cpu",
        "--num-eval-envs",
        "1",
        "--num-eval-episodes",
        "1",
        "--max-episode-steps",
        "5",
        "--hidden-dim",
        "8",
        "--runs-dir",
        str(tmp_path / "runs"),
        timeout=300,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert (run_dir / "last.pt").exists() and (run_dir / "final_eval.json").exists()
