"""ppo_rgb.py: encoder sizing, frame stacking, uint8 storage, a smoke run that evaluate.py reloads,
and the --compile fast path of ppo.py."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import run_script

from cleanrl_style import ppo, ppo_rgb
from cleanrl_style.lib.checkpoints import load_checkpoint, save_checkpoint
from cleanrl_style.lib.envs import env_spec
from cleanrl_style.lib.nets import NatureCNN
from cleanrl_style.lib.runs import UserError


@pytest.mark.parametrize("hw", [(64, 64), (128, 128), (64, 96), (96, 48)])
def test_nature_cnn_sizes_itself(hw):
    h, w = hw
    enc = NatureCNN(6, h, w, feature_dim=32)
    x = torch.randint(0, 256, (3, 6, h, w), dtype=torch.uint8)
    out = enc(x)
    assert out.shape == (3, 32) and out.dtype == torch.float32


def test_nature_cnn_rejects_tiny_images():
    with pytest.raises(UserError, match="36x36"):
        NatureCNN(3, 32, 32)


def test_nature_cnn_scales_uint8_inside():
    """/255 happens inside the encoder: feeding x and x as float*255 must give the same features."""
    enc = NatureCNN(3, 64, 64, feature_dim=8)
    x = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    assert torch.allclose(enc(x), enc(x.float()), atol=1e-6)


def test_agent_with_and_without_state():
    obs = {"rgb": torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8), "state": torch.randn(4, 9)}
    a = ppo_rgb.Agent(3, 64, 64, state_dim=9, action_dim=7, feature_dim=16)
    action, logp, ent, value = a.get_action_and_value(obs)
    assert action.shape == (4, 7) and logp.shape == (4,) and ent.shape == (4,) and value.shape == (4,)
    assert "state_norm.mean" in a.state_dict()
    b = ppo_rgb.Agent(3, 64, 64, state_dim=0, action_dim=7, feature_dim=16)
    assert b.act({"rgb": obs["rgb"]}, deterministic=True).shape == (4, 7)
    assert not any(k.startswith("state") for k in b.state_dict())


def _frames(n, c, v):
    return {"rgb": torch.full((n, c, 2, 2), v, dtype=torch.uint8), "state": torch.zeros(n, 1)}


def test_frame_stack_fills_appends_and_restarts():
    fs = ppo_rgb.FrameStack(3)
    out = fs.reset(_frames(2, 1, 1))
    assert out["rgb"].shape == (2, 3, 2, 2) and out["rgb"].dtype == torch.uint8
    assert (out["rgb"] == 1).all()  # filled with copies of the first frame
    out = fs.step(_frames(2, 1, 2), torch.tensor([False, False]))
    assert out["rgb"][:, :, 0, 0].tolist() == [[1, 1, 2], [1, 1, 2]]  # oldest first, newest last
    peek = fs.peek(_frames(2, 1, 9)["rgb"])
    assert peek[:, :, 0, 0].tolist() == [[1, 2, 9], [1, 2, 9]]
    assert fs.stack[:, :, 0, 0].tolist() == [[1, 1, 2], [1, 1, 2]]  # peek does not mutate
    out = fs.step(_frames(2, 1, 3), torch.tensor([False, True]))
    # env 1 started a new episode: its stack is all copies of the new first frame
    assert out["rgb"][:, :, 0, 0].tolist() == [[1, 2, 3], [3, 3, 3]]


def test_make_policy_resets_frame_stack_between_batches():
    agent = ppo_rgb.Agent(2, 64, 64, state_dim=0, action_dim=3, feature_dim=8)
    policy = ppo_rgb.make_policy(agent, frame_stack=2, include_state=False)
    obs = {"rgb": torch.zeros(1, 1, 64, 64, dtype=torch.uint8), "state": torch.zeros(1, 4)}
    a1 = policy(obs)
    policy(dict(obs, rgb=torch.full((1, 1, 64, 64), 255, dtype=torch.uint8)))
    policy.reset()
    assert torch.equal(policy(obs), a1)  # same first frame after reset -> same action


def test_ppo_rgb_rejects_state_obs_mode():
    with pytest.raises(UserError, match="obs-mode"):
        ppo_rgb.main(ppo_rgb.Args(env_id="PushCube", obs_mode="state", sim_backend="cpu"))


@pytest.mark.slow
def test_ppo_rgb_smoke_run_and_reload(tmp_path):
    """2 CPU envs, 64x64 RGB, frame stack 2: a checkpoint with uint8-image config that evaluate.py reloads."""
    run_dir = ppo_rgb.main(
        ppo_rgb.Args(
            env_id="PushCube",
            num_envs=2,
            num_eval_envs=2,
            image_size=64,
            total_timesteps=100,
            num_steps=50,
            eval_freq=0,
            num_eval_episodes=2,
            frame_stack=2,
            sim_backend="cpu",
            runs_dir=str(tmp_path),
        )
    )
    for f in ("best.pt", "last.pt", "final_eval.json", "metrics.csv", "config.yaml"):
        assert (run_dir / f).is_file(), f
    ckpt = load_checkpoint(run_dir / "last.pt")
    assert ckpt["script"] == "ppo_rgb"
    assert ckpt["env"]["obs_shapes"]["rgb"] == [3, 64, 64]
    assert ckpt["model_kwargs"]["in_channels"] == 6  # 2 stacked RGB frames
    out = tmp_path / "eval"
    p = run_script(
        "cleanrl_style/evaluate.py",
        "--checkpoint",
        str(run_dir / "last.pt"),
        "--num-episodes",
        "2",
        "--seed",
        "11",
        "--sim-backend",
        "cpu",
        "--out-dir",
        str(out),
    )
    assert p.returncode == 0, p.stderr
    res = json.loads((out / "eval_last_seed11.json").read_text())
    assert res["episodes"] == 2 and res["seeds"] == [11, 12] and res["script"] == "ppo_rgb"


def test_evaluate_rejects_checkpoint_for_other_obs(tmp_path, state_env):
    """A pixel checkpoint evaluated against the env its config describes works; one whose stored
    obs shapes do not match what the env gives is refused with exit code 1."""
    env = state_env
    env.reset(seed=0)
    agent = ppo.Agent(obs_dim=5, action_dim=env.action_dim)
    spec = env_spec(env)
    spec["obs_shapes"] = {"state": [5]}
    path = tmp_path / "bad.pt"
    save_checkpoint(
        path,
        script="ppo",
        args={},
        env=spec,
        model_kwargs=dict(obs_dim=5, action_dim=env.action_dim),
        state_dict=agent.state_dict(),
        step=0,
    )
    p = run_script(
        "cleanrl_style/evaluate.py", "--checkpoint", str(path), "--num-episodes", "1", "--sim-backend", "cpu"
    )
    assert p.returncode == 1
    assert "mismatch" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.slow
def test_ppo_compile_smoke(tmp_path):
    """--compile (torch.compile of the policy step and value function) runs on CPU and writes a checkpoint."""
    run_dir = ppo.main(
        ppo.Args(
            env_id="PushCube",
            num_envs=1,
            num_eval_envs=1,
            total_timesteps=100,
            num_steps=50,
            num_minibatches=2,
            eval_freq=0,
            num_eval_episodes=1,
            compile=True,
            sim_backend="cpu",
            runs_dir=str(tmp_path),
        )
    )
    assert (run_dir / "last.pt").is_file()
    assert json.loads((run_dir / "final_eval.json").read_text())["episodes"] == 1


def test_policy_step_reads_nothing_back_from_the_device(monkeypatch):
    """get_action_and_value must not synchronise (no Tensor.__bool__ / item / tolist): under a CUDA
    graph capture a host read raises, and on the eager GPU path each one is a device sync.
    torch.distributions validates its arguments with such reads unless validate_args=False."""
    import torch

    reads = []
    for name in ("__bool__", "item", "tolist"):
        orig = getattr(torch.Tensor, name)

        def counting(self, *a, _orig=orig, _name=name, **k):
            reads.append(_name)
            return _orig(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, counting)
    state_agent = ppo.Agent(obs_dim=5, action_dim=2, hidden_dim=8)
    pixel_agent = ppo_rgb.Agent(3, 36, 36, state_dim=4, action_dim=2, feature_dim=8)
    obs = {"rgb": torch.zeros(3, 3, 36, 36, dtype=torch.uint8), "state": torch.zeros(3, 4)}
    with torch.no_grad():
        state_agent.get_action_and_value(torch.zeros(3, 5))
        pixel_agent.get_action_and_value(obs)
    assert reads == []


def test_frame_stack_of_one_is_the_identity():
    import torch

    fs = ppo_rgb.FrameStack(1)
    obs = {"rgb": torch.randint(0, 255, (2, 3, 8, 8), dtype=torch.uint8), "state": torch.zeros(2, 1)}
    assert fs.reset(obs) is obs
    nxt = {"rgb": torch.randint(0, 255, (2, 3, 8, 8), dtype=torch.uint8), "state": torch.zeros(2, 1)}
    assert fs.step(nxt, torch.tensor([True, False])) is nxt
    assert fs.peek(nxt["rgb"]) is nxt["rgb"]


def test_frame_stack_restarts_only_the_envs_whose_episode_started():
    import torch

    fs = ppo_rgb.FrameStack(2)
    a = torch.full((2, 3, 4, 4), 1, dtype=torch.uint8)
    b = torch.full((2, 3, 4, 4), 2, dtype=torch.uint8)
    fs.reset({"rgb": a, "state": torch.zeros(2, 1)})
    out = fs.step({"rgb": b, "state": torch.zeros(2, 1)}, torch.tensor([True, False]))["rgb"]
    assert out[0].eq(2).all()  # new episode: two copies of its first frame
    assert out[1, :3].eq(1).all() and out[1, 3:].eq(2).all()  # continuing: previous frame, then the new one
