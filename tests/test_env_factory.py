"""Env ids, the env factory (`make_env` / `VecEnv`) and its autoreset semantics, on the CPU backend."""

from __future__ import annotations

import pytest
import torch
from conftest import SHORT_STEPS, assert_one_error_line, fixed_actions, run_script

from cleanrl_style.lib.envs import env_spec, make_env, resolve_env_id, resolve_sim_backend
from cleanrl_style.lib.runs import UserError


# ----------------------------------------------------------------------------- env ids
@pytest.mark.parametrize(
    "name, expected",
    [
        ("PickCube", "PickCube-v1"),  # short name -> newest version
        ("PickCube-v1", "PickCube-v1"),  # exact id passes through
        ("PushCube-v1", "PushCube-v1"),
        ("pushcube", "PushCube-v1"),  # case-insensitive short name
        ("PUSHCUBE", "PushCube-v1"),
    ],
)
def test_resolve_env_id(name, expected):
    assert resolve_env_id(name) == expected


def test_resolve_env_id_unknown_suggests_close_names():
    with pytest.raises(UserError) as ei:
        resolve_env_id("PickCub")
    assert ei.value.code == 2
    msg = str(ei.value)
    assert "PickCub" in msg
    assert "Did you mean" in msg and "PickCube-v1" in msg


def test_resolve_env_id_nonsense_has_no_bogus_suggestion():
    with pytest.raises(UserError) as ei:
        resolve_env_id("zzzzqqqq")
    assert ei.value.code == 2
    assert "Did you mean" not in str(ei.value)


def test_cli_unknown_env_id_is_one_line_exit_2():
    # --num-envs/--num-minibatches keep the batch-size check out of the way (see
    # test_ppo.py::test_default_cpu_batch_is_divisible_by_default_minibatches).
    p = run_script(
        "cleanrl_style/ppo.py",
        "--env-id",
        "PickCub",
        "--sim-backend",
        "cpu",
        "--num-envs",
        "2",
        "--num-minibatches",
        "4",
        timeout=120,
    )
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert_one_error_line(p.stderr, "PickCub", "PickCube-v1")


# ----------------------------------------------------------------------------- argument checks
@pytest.mark.parametrize(
    "kwargs",
    [
        dict(obs_mode="pointcloud"),
        dict(obs_mode="RGB"),
        dict(num_envs=0),
        dict(num_envs=-1),
        dict(sim_backend="tpu"),
        dict(num_envs=65),  # one process per env on CPU: refused above 64
    ],
)
def test_make_env_bad_arguments_raise_user_error(kwargs):
    kw = dict(env_id="PickCube", num_envs=1, obs_mode="state", sim_backend="cpu")
    kw.update(kwargs)
    with pytest.raises(UserError):
        make_env(**kw)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_gpu_backend_without_cuda_is_a_user_error():
    with pytest.raises(UserError, match="cpu"):
        resolve_sim_backend("gpu")
    assert resolve_sim_backend("auto") == "cpu"


def test_make_env_unknown_env_id_raises_user_error():
    with pytest.raises(UserError) as ei:
        make_env("PickCub", 1, "state", sim_backend="cpu")
    assert ei.value.code == 2 and "PickCube-v1" in str(ei.value)


# ----------------------------------------------------------------------------- state obs
def test_state_obs_reset_and_step_types(state_env):
    env = state_env
    assert env.num_envs == 1 and env.backend == "cpu" and env.env_id == "PickCube-v1"
    assert env.max_episode_steps == 50
    obs, info = env.reset(seed=0)
    assert isinstance(obs, torch.Tensor)
    assert obs.dtype == torch.float32 and obs.device.type == "cpu"
    assert obs.ndim == 2 and obs.shape[0] == 1 and obs.shape[1] > 0
    assert env.obs_shapes == {"state": (obs.shape[1],)}
    assert isinstance(info, dict)

    action = env.sample_actions()
    assert action.shape == (1, env.action_dim)
    assert torch.all(action >= env.action_low) and torch.all(action <= env.action_high)
    obs2, rew, term, trunc, info = env.step(action)
    assert obs2.dtype == torch.float32 and obs2.shape == obs.shape
    assert not torch.equal(obs2, obs)  # the robot moved
    assert rew.dtype == torch.float32 and rew.shape == (1,)
    assert term.dtype == torch.bool and term.shape == (1,)
    assert trunc.dtype == torch.bool and trunc.shape == (1,)
    assert info["success"].dtype == torch.bool and info["success"].shape == (1,)
    assert "_final_info" not in info  # one step into a 50-step episode


def test_step_clamps_out_of_range_actions(state_env):
    env = state_env
    env.reset(seed=4)
    big = torch.full((1, env.action_dim), 1e6)
    obs_big, *_ = env.step(big)
    env.reset(seed=4)
    obs_hi, *_ = env.step(env.action_high.expand(1, -1).clone())
    assert torch.equal(obs_big, obs_hi)


# ----------------------------------------------------------------------------- seeding
def test_same_seed_same_obs_different_seed_different_obs(state_env):
    env = state_env
    a, _ = env.reset(seed=123)
    env.step(env.sample_actions())  # disturb the state in between
    b, _ = env.reset(seed=123)
    c, _ = env.reset(seed=124)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_make_env_seed_argument_resets_with_that_seed(state_env):
    # make_env(seed=s) resets once with s; the rollout that follows must match a reset(seed=s).
    env = make_env("PickCube", 1, "state", sim_backend="cpu", seed=77)
    try:
        acts = fixed_actions(env, 3, seed=1)
        for a in acts:
            first, *_ = env.step(a)
        state_env.reset(seed=77)
        for a in acts:
            second, *_ = state_env.step(a)
        assert torch.equal(first, second)
    finally:
        env.close()


# ----------------------------------------------------------------------------- autoreset
def test_truncation_autoreset_and_final_observation(short_env, state_env):
    """Run the same seed and actions on a 5-step env and on a 50-step env: the 5-step env's
    final_observation must be exactly the 50-step env's observation after step 5 (the true
    continuation), while the obs it returns is the first obs of a new episode."""
    acts = fixed_actions(short_env, SHORT_STEPS, seed=3)
    long_obs, _ = state_env.reset(seed=9)
    obs, _ = short_env.reset(seed=9)
    assert torch.equal(obs, long_obs)
    returns = 0.0
    for t, a in enumerate(acts):
        long_obs, long_rew, *_ = state_env.step(a)
        obs, rew, term, trunc, info = short_env.step(a)
        returns += float(rew[0])
        assert not term.any()
        if t < SHORT_STEPS - 1:
            assert not trunc.any() and "_final_info" not in info, t
            assert torch.equal(obs, long_obs), t
            assert torch.allclose(rew, long_rew)
    # the 5th step hit the time limit
    assert trunc.tolist() == [True]
    assert info["_final_info"].dtype == torch.bool and info["_final_info"].tolist() == [True]
    ep = info["final_info"]["episode"]
    assert set(ep) >= {"success_once", "return", "episode_len"}
    assert "success_at_end" not in ep  # only recorded when terminations are ignored
    assert float(ep["episode_len"][0]) == SHORT_STEPS
    assert float(ep["return"][0]) == pytest.approx(returns, rel=1e-5, abs=1e-5)
    assert float(ep["success_once"][0]) in (0.0, 1.0)
    final = info["final_observation"]
    assert final.shape == obs.shape and final.dtype == torch.float32
    assert torch.equal(final, long_obs), "final_observation is not the continuation of the episode"
    assert not torch.equal(final, obs), "returned obs should be the new episode's reset obs"
    # the returned obs really is a fresh episode: the next step is a normal, non-final step
    obs2, _, _, trunc2, info2 = short_env.step(acts[0])
    assert not trunc2.any() and "_final_info" not in info2


def _force_success(monkeypatch, env):
    """Make the in-process CPU env report success on every step (reset included)."""
    base = env.env.envs[0].unwrapped
    orig = base.evaluate

    def evaluate():
        out = orig()
        out["success"] = torch.ones_like(out["success"])
        return out

    monkeypatch.setattr(base, "evaluate", evaluate)


def test_termination_with_partial_reset(monkeypatch, short_env):
    _force_success(monkeypatch, short_env)
    obs, _ = short_env.reset(seed=1)
    obs2, _, term, trunc, info = short_env.step(short_env.sample_actions())
    assert term.tolist() == [True] and trunc.tolist() == [False]
    assert info["_final_info"].tolist() == [True]
    ep = info["final_info"]["episode"]
    assert float(ep["episode_len"][0]) == 1
    assert float(ep["success_once"][0]) == 1.0
    assert not torch.equal(info["final_observation"], obs2)


def test_partial_reset_false_ignores_terminations(monkeypatch, short_eval_env):
    env = short_eval_env
    _force_success(monkeypatch, env)
    env.reset(seed=1)
    for t in range(SHORT_STEPS):
        obs, _, term, trunc, info = env.step(env.sample_actions())
        assert not term.any(), f"terminated at step {t} although partial_reset=False"
        assert info["success"].tolist() == [True] or t == SHORT_STEPS - 1
        assert trunc.tolist() == [t == SHORT_STEPS - 1]
    ep = info["final_info"]["episode"]
    assert float(ep["episode_len"][0]) == SHORT_STEPS
    assert float(ep["success_once"][0]) == 1.0
    assert float(ep["success_at_end"][0]) == 1.0


def test_partial_reset_false_final_info_has_success_at_end(short_eval_env):
    env = short_eval_env
    env.reset(seed=2)
    for _ in range(SHORT_STEPS):
        obs, _, term, trunc, info = env.step(env.sample_actions())
        assert not term.any()
    assert trunc.tolist() == [True] and info["_final_info"].tolist() == [True]
    ep = info["final_info"]["episode"]
    assert set(ep) == {"success_once", "success_at_end", "return", "episode_len"}
    assert float(ep["episode_len"][0]) == SHORT_STEPS
    assert all(v.dtype == torch.float32 for v in ep.values())
    assert not torch.equal(info["final_observation"], obs)


# ----------------------------------------------------------------------------- pixels
def test_rgb_obs_non_square_and_final_observation():
    env = make_env("PickCube", 1, "rgb", image_size=(48, 64), sim_backend="cpu", max_episode_steps=2)
    try:
        obs, _ = env.reset(seed=0)
        assert set(obs) == {"rgb", "state"}
        assert obs["rgb"].dtype == torch.uint8 and obs["rgb"].shape == (1, 3, 48, 64)
        assert obs["state"].dtype == torch.float32 and obs["state"].ndim == 2 and obs["state"].shape[0] == 1
        assert obs["rgb"].float().std() > 0  # a real image, not a blank buffer
        assert env.obs_shapes == {"rgb": (3, 48, 64), "state": (obs["state"].shape[1],)}
        assert env_spec(env)["image_size"] == [48, 64]
        for _ in range(2):
            obs, _, _, trunc, info = env.step(env.sample_actions())
        assert trunc.tolist() == [True]
        final = info["final_observation"]
        assert set(final) == {"rgb", "state"}
        assert final["rgb"].dtype == torch.uint8 and final["rgb"].shape == (1, 3, 48, 64)
        assert final["state"].dtype == torch.float32 and final["state"].shape == obs["state"].shape
        assert not torch.equal(final["state"], obs["state"])
    finally:
        env.close()


def test_pixel_state_is_not_privileged(state_env):
    # rgb mode's "state" is proprioception + goal, without the object's pose: smaller than full state.
    env = make_env("PickCube", 1, "rgbd", image_size=32, sim_backend="cpu")
    try:
        obs, _ = env.reset(seed=0)
        assert obs["rgb"].dtype == torch.uint8 and obs["rgb"].shape == (1, 4, 32, 32)
        assert obs["state"].dtype == torch.float32
        depth = obs["rgb"][:, 3]
        assert depth.float().std() > 0
        assert not torch.equal(depth, obs["rgb"][:, 0])
        full, _ = state_env.reset(seed=0)
        assert obs["state"].shape[1] < full.shape[1]
    finally:
        env.close()


# ----------------------------------------------------------------------------- multi-process envs
def test_two_envs_shapes_and_seeds(async_eval_env, state_env):
    env = async_eval_env
    assert env.num_envs == 2
    assert "Async" in type(env.env).__name__
    obs, _ = env.reset(seed=50)
    assert obs.dtype == torch.float32 and obs.shape[0] == 2
    assert not torch.equal(obs[0], obs[1])  # seeds 50 and 51
    again, _ = env.reset(seed=50)
    assert torch.equal(obs, again)
    # env i is seeded with seed + i: row 1 equals a single env reset with seed 51
    single, _ = state_env.reset(seed=51)
    assert torch.equal(obs[1], single[0])
    obs, rew, term, trunc, info = env.step(env.sample_actions())
    assert obs.shape[0] == 2
    assert rew.shape == (2,) and rew.dtype == torch.float32
    assert term.shape == (2,) and term.dtype == torch.bool
    assert trunc.shape == (2,) and trunc.dtype == torch.bool
    assert info["success"].shape == (2,) and info["success"].dtype == torch.bool


def test_two_envs_reset_together_without_partial_reset(async_eval_env):
    env = async_eval_env
    obs, _ = env.reset(seed=60)
    for t in range(SHORT_STEPS):
        obs, _, term, trunc, info = env.step(env.sample_actions())
        assert not term.any()
        if t < SHORT_STEPS - 1:
            assert not trunc.any() and "_final_info" not in info
    assert trunc.tolist() == [True, True]
    assert info["_final_info"].tolist() == [True, True]
    ep = info["final_info"]["episode"]
    assert ep["episode_len"].tolist() == [SHORT_STEPS, SHORT_STEPS]
    assert ep["success_at_end"].shape == (2,) and ep["return"].shape == (2,)
    final = info["final_observation"]
    assert final.shape == obs.shape
    for i in range(2):
        assert not torch.equal(final[i], obs[i])
    # both started a new episode: the next step is ordinary for both
    _, _, _, trunc, info = env.step(env.sample_actions())
    assert not trunc.any() and "_final_info" not in info


def test_render_backend_uses_the_gpu_renderer_wherever_cuda_is_present():
    """The CPU sim renders with the GPU renderer on a CUDA host (lavapipe only where there is no CUDA)."""
    from cleanrl_style.lib.envs import render_backend_for

    assert render_backend_for("physx_cpu", cuda_available=True) == "gpu"
    assert render_backend_for("physx_cpu", cuda_available=False) == "cpu"
    assert render_backend_for("physx_cuda", cuda_available=True) == "gpu"


def test_make_env_asks_maniskill_for_the_renderer_render_backend_for_picks(monkeypatch):
    import gymnasium as gym

    from cleanrl_style.lib import envs

    seen = {}

    def fake_make(env_id, **kw):
        seen.update(kw)
        raise RuntimeError("stop here")

    monkeypatch.setattr(gym, "make", fake_make)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(RuntimeError, match="stop here"):
        envs._gym_make("PickCube-v1", 1, "rgb", 64, None, None, "physx_cpu", None, None, 64, False, None)
    assert seen["sim_backend"] == "physx_cpu" and seen["render_backend"] == "gpu"
