"""PPO pieces (GAE, running obs normalization, loss) and an end-to-end smoke run of ppo.py + evaluate.py."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
import torch
import yaml
from conftest import REPO_ROOT, assert_one_error_line, run_script

from cleanrl_style import evaluate, ppo
from cleanrl_style.lib.checkpoints import load_checkpoint, save_checkpoint
from cleanrl_style.lib.evaluation import EVAL_KEYS
from cleanrl_style.lib.nets import RunningMeanStd
from cleanrl_style.lib.ppo_update import ppo_loss
from cleanrl_style.lib.returns import bootstrap_flags, compute_gae
from cleanrl_style.lib.runs import UserError


# ----------------------------------------------------------------------------- GAE
def test_compute_gae_hand_computed():
    """T=3 steps, N=2 envs, gamma=0.5, lambda=0.5 (so gamma*lambda=0.25).

    env 0: truncated at t=1 (done, not terminated): bootstraps from next_values[1]=2.0 (V of the
           final observation), and the recursion is cut there.
    env 1: terminated at t=0: no bootstrap (next_values[0]=4.0 must be ignored), recursion cut.

    delta_t = r_t + gamma * next_values_t * (1 - term_t) - V_t
    A_t     = delta_t + gamma * lambda * (1 - done_t) * A_{t+1}

    env 0:  t=2: delta = 2 + 0.5*4.0 - 0.0 = 4.0          A = 4.0
            t=1: delta = 1 + 0.5*2.0 - 1.0 = 1.0 (done)   A = 1.0
            t=0: delta = 1 + 0.5*1.0 - 0.5 = 1.0          A = 1.0 + 0.25*1.0 = 1.25
    env 1:  t=2: delta = 1 + 0.5*6.0 - 2.0 = 2.0          A = 2.0
            t=1: delta = 0 + 0.5*2.0 - 0.5 = 0.5          A = 0.5 + 0.25*2.0 = 1.0
            t=0: delta = 2 + 0 (terminal) - 1.0 = 1.0     A = 1.0 (done: A_1 not added)
    returns = A + V:  env 0: [1.75, 2.0, 4.0]   env 1: [2.0, 1.5, 4.0]
    """
    rewards = torch.tensor([[1.0, 2.0], [1.0, 0.0], [2.0, 1.0]])
    values = torch.tensor([[0.5, 1.0], [1.0, 0.5], [0.0, 2.0]])
    next_values = torch.tensor([[1.0, 4.0], [2.0, 2.0], [4.0, 6.0]])
    terminated = torch.tensor([[False, True], [False, False], [False, False]])
    truncated = torch.tensor([[False, False], [True, False], [False, False]])
    dones = terminated | truncated

    adv, ret = compute_gae(rewards, values, next_values, terminated, dones, gamma=0.5, gae_lambda=0.5)

    expected_adv = torch.tensor([[1.25, 1.0], [1.0, 1.0], [4.0, 2.0]])
    expected_ret = torch.tensor([[1.75, 2.0], [2.0, 1.5], [4.0, 4.0]])
    assert adv.shape == (3, 2) and ret.shape == (3, 2)
    assert torch.allclose(adv, expected_adv, atol=1e-6), adv
    assert torch.allclose(ret, expected_ret, atol=1e-6), ret
    # inputs untouched
    assert torch.equal(values, torch.tensor([[0.5, 1.0], [1.0, 0.5], [0.0, 2.0]]))


def test_bootstrap_flags_modes_and_gae_with_always():
    """Mode always: a termination becomes a truncation (GAE bootstraps from V(final obs)); mode
    truncation passes the env's flags through; anything else is a user error."""
    term = torch.tensor([[False, True], [False, False]])
    trunc = torch.tensor([[False, False], [True, False]])
    t, u = bootstrap_flags(term, trunc, "truncation")
    assert torch.equal(t, term) and torch.equal(u, trunc)
    t, u = bootstrap_flags(term, trunc, "always")
    assert not t.any() and torch.equal(u, term | trunc) and t.dtype == torch.bool
    with pytest.raises(UserError, match="bootstrap-at-done"):
        bootstrap_flags(term, trunc, "never")
    # env 1 ends at t=0 with V(final obs) = 4.0: gamma 0.5 -> delta = 2 + 0.5*4 - 1 = 3 (was 1 when terminal)
    rewards = torch.tensor([[1.0, 2.0], [1.0, 0.0]])
    values = torch.tensor([[0.5, 1.0], [1.0, 0.5]])
    next_values = torch.tensor([[1.0, 4.0], [2.0, 2.0]])
    adv, _ = compute_gae(rewards, values, next_values, t, t | u, gamma=0.5, gae_lambda=0.5)
    assert adv[0, 1].item() == pytest.approx(3.0)
    adv, _ = compute_gae(rewards, values, next_values, term, term | trunc, gamma=0.5, gae_lambda=0.5)
    assert adv[0, 1].item() == pytest.approx(1.0)


def test_compute_gae_lambda_one_is_discounted_return():
    """No episode ends, lambda=1: A_t + V_t = sum_k gamma^k r_{t+k} + gamma^(T-t) V_boot."""
    T, gamma, boot = 4, 0.9, 3.0
    rewards = torch.tensor([[1.0], [0.0], [2.0], [-1.0]])
    values = torch.tensor([[0.3], [0.1], [-0.2], [0.7]])
    next_values = torch.cat([values[1:], torch.tensor([[boot]])])
    no = torch.zeros(T, 1, dtype=torch.bool)
    _, ret = compute_gae(rewards, values, next_values, no, no, gamma=gamma, gae_lambda=1.0)
    r = rewards[:, 0].tolist()
    want = [sum(gamma ** (k - t) * r[k] for k in range(t, T)) + gamma ** (T - t) * boot for t in range(T)]
    assert torch.allclose(ret[:, 0], torch.tensor(want), atol=1e-5)


# ----------------------------------------------------------------------------- obs normalization
def test_running_mean_std_matches_numpy():
    rng = np.random.default_rng(0)
    batches = [
        rng.normal(loc=[1.0, -5.0, 100.0], scale=[0.5, 2.0, 10.0], size=(n, 3)).astype(np.float32)
        for n in (7, 64, 1, 33, 200)
    ]
    rms = RunningMeanStd((3,))
    for b in batches:
        rms.update(torch.from_numpy(b))
    allx = np.concatenate(batches).astype(np.float64)
    np.testing.assert_allclose(rms.mean.numpy(), allx.mean(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(rms.var.numpy(), allx.var(0), rtol=1e-3)
    assert float(rms.count) == pytest.approx(len(allx), abs=1e-3)
    # forward normalizes with those statistics and clips at +-clip
    x = torch.tensor([[1.0, -5.0, 100.0], [1.5, -3.0, 1e6]])
    y = rms(x)
    exp = (x.double().numpy() - allx.mean(0)) / np.sqrt(allx.var(0))
    np.testing.assert_allclose(y[0].numpy(), exp[0], atol=1e-3)
    assert y[1, 2] == pytest.approx(rms.clip)
    # the statistics are buffers: they travel in the state dict
    assert {"mean", "var", "count"} <= set(rms.state_dict())


# ----------------------------------------------------------------------------- agent / loss
def test_agent_shapes_and_loss_at_the_behaviour_policy():
    torch.manual_seed(0)
    agent = ppo.Agent(obs_dim=6, action_dim=3, hidden_dim=32)
    obs = torch.randn(10, 6)
    action, logp, ent, value = agent.get_action_and_value(obs)
    assert action.shape == (10, 3) and logp.shape == (10,) and ent.shape == (10,) and value.shape == (10,)
    assert agent.act(obs, deterministic=True).shape == (10, 3)
    assert torch.equal(agent.act(obs, deterministic=True), agent.act(obs, deterministic=True))
    adv, ret = torch.randn(10), torch.randn(10)
    loss, stats = ppo_loss(agent, obs, action, logp.detach(), adv, ret, value.detach(), ppo.Args())
    # evaluated at the policy that collected the data: ratio 1, no KL, nothing clipped
    assert float(stats["approx_kl"]) == pytest.approx(0.0, abs=1e-6)
    assert float(stats["clipfrac"]) == 0.0
    assert float(stats["value_loss"]) == pytest.approx(float(0.5 * ((value.detach() - ret) ** 2).mean()), rel=1e-5)
    loss.backward()
    assert agent.actor_logstd.grad is not None


# ----------------------------------------------------------------------------- ppo.main argument checks
class _Reached(Exception):
    """Raised by a stub to show that main() got past its argument checks."""


@pytest.mark.parametrize("num_envs", [None, 4])
def test_default_cpu_batch_is_divisible_by_default_minibatches(monkeypatch, num_envs):
    """ppo.py's docstring advertises `python cleanrl_style/ppo.py --env-id PushCube --num-envs 4
    --total-timesteps 200_000` for CPU, and the CPU default is num_envs=4. With the defaults
    num_steps=50 and num_minibatches=32 that is a batch of 200, which is not divisible by 32, so
    main() refuses to start. Currently FAILS with
    UserError: num_envs*num_steps=200 is not divisible by --num-minibatches 32."""

    def stop(*a, **k):
        raise _Reached

    monkeypatch.setattr(ppo, "RunLogger", stop)  # the first call after the checks
    with pytest.raises(_Reached):
        ppo.main(ppo.Args(env_id="PushCube", num_envs=num_envs, total_timesteps=200_000, sim_backend="cpu"))


def test_ppo_main_rejects_indivisible_minibatches():
    with pytest.raises(UserError, match="num-minibatches"):
        ppo.main(ppo.Args(env_id="PushCube", num_envs=3, num_steps=10, num_minibatches=4, sim_backend="cpu"))


def test_ppo_main_rejects_cudagraphs_without_cuda():
    with pytest.raises(UserError, match="cudagraphs"):
        ppo.main(ppo.Args(env_id="PushCube", num_envs=2, num_minibatches=4, sim_backend="cpu", cudagraphs=True))


# ----------------------------------------------------------------------------- evaluate.py errors
def test_evaluate_cli_missing_checkpoint(tmp_path):
    missing = tmp_path / "nope" / "best.pt"
    p = run_script("cleanrl_style/evaluate.py", "--checkpoint", str(missing), timeout=120)
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert_one_error_line(p.stderr, str(missing))
    assert not (tmp_path / "nope").exists()


def test_evaluate_cli_garbage_checkpoint(tmp_path):
    bad = tmp_path / "last.pt"
    bad.write_bytes(b"garbage" * 100)
    p = run_script("cleanrl_style/evaluate.py", "--checkpoint", str(bad), timeout=120)
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert_one_error_line(p.stderr, "last.pt")


def test_evaluate_main_rejects_zero_episodes(tmp_path):
    with pytest.raises(UserError) as ei:
        evaluate.main(evaluate.Args(checkpoint=str(tmp_path / "x.pt"), num_episodes=0))
    assert ei.value.code == 2


@pytest.mark.parametrize("script", ["no_such_script", "common"])
def test_evaluate_main_checkpoint_from_unknown_script(tmp_path, script):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, script=script, args={}, env={"env_id": "PickCube-v1"}, model_kwargs={}, state_dict={}, step=0)
    with pytest.raises(UserError) as ei:
        evaluate.main(evaluate.Args(checkpoint=str(path), num_episodes=1, sim_backend="cpu"))
    assert ei.value.code == 1 and script in str(ei.value)


# ----------------------------------------------------------------------------- end to end
SMOKE = dict(
    env_id="PushCube",
    num_envs=2,
    num_eval_envs=2,
    total_timesteps=200,
    num_steps=50,
    num_minibatches=4,
    eval_freq=100,
    num_eval_episodes=2,
)


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    run_dir = ppo.main(ppo.Args(**SMOKE, runs_dir=str(runs)))
    return run_dir


def _metrics(run_dir):
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    out: dict[str, list[tuple[int, float]]] = {}
    for r in rows:
        out.setdefault(r["name"], []).append((int(r["step"]), float(r["value"])))
    return out


@pytest.mark.slow
def test_ppo_smoke_run_artifacts(ppo_run):
    run_dir = ppo_run
    assert run_dir.name.startswith("PushCube-v1__ppo__1__")
    files = set(os.listdir(run_dir))
    assert {"best.pt", "last.pt", "final_eval.json", "metrics.csv", "config.yaml"} <= files
    assert not [f for f in files if f.endswith(".tmp")], files  # no leftovers of atomic writes
    assert any(f.startswith("events.out.tfevents") for f in files)

    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert cfg["args"]["env_id"] == "PushCube-v1" and cfg["args"]["total_timesteps"] == 200

    m = _metrics(run_dir)
    # batch = 2 envs * 50 steps = 100 -> 2 iterations, evaluation after each
    assert [s for s, _ in m["time/sps"]] == [100, 200]
    assert all(v > 0 for _, v in m["time/sps"])
    assert [s for s, _ in m["eval/success_once"]] == [100, 200]
    for name in ("losses/value_loss", "losses/policy_loss", "losses/approx_kl", "charts/learning_rate"):
        assert [s for s, _ in m[name]] == [100, 200], name

    last = load_checkpoint(run_dir / "last.pt")
    best = load_checkpoint(run_dir / "best.pt")
    assert last["script"] == "ppo" and last["step"] == 200
    assert best["step"] in (100, 200)
    env = last["env"]
    assert env["env_id"] == "PushCube-v1" and env["obs_mode"] == "state"
    assert env["obs_shapes"]["state"] == [last["model_kwargs"]["obs_dim"]]
    assert env["action_dim"] == last["model_kwargs"]["action_dim"]
    # obs normalization stats were updated on all 200 training observations and saved
    assert float(last["state_dict"]["obs_norm.count"]) == pytest.approx(200, abs=1e-2)
    assert "success_once" in last["extra"]["eval"]

    final = json.loads((run_dir / "final_eval.json").read_text())
    assert final["episodes"] == 2
    assert final["seeds"] == [1 + 2_000_000, 1 + 2_000_001]
    assert final["checkpoint"] == "last.pt" and final["step"] == 200
    for k in EVAL_KEYS:
        assert len(final["per_episode"][k]) == 2
    assert final["per_episode"]["episode_len"] == [50.0, 50.0]  # fixed-length eval episodes


@pytest.mark.slow
def test_evaluate_cli_on_ppo_checkpoint_with_video(ppo_run, tmp_path):
    out = tmp_path / "eval"
    p = run_script(
        "cleanrl_style/evaluate.py",
        "--checkpoint",
        str(ppo_run / "last.pt"),
        "--num-episodes",
        "2",
        "--seed",
        "3",
        "--out-dir",
        str(out),
        "--sim-backend",
        "cpu",
        "--video",
        timeout=400,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads((out / "eval_last_seed3.json").read_text())
    assert res["episodes"] == 2
    assert res["seeds"] == [3, 4]
    assert res["script"] == "ppo" and res["env_id"] == "PushCube-v1" and res["checkpoint_step"] == 200
    assert res["max_episode_steps"] == 50
    assert res["per_episode"]["episode_len"] == [50.0, 50.0]
    for k in EVAL_KEYS:
        assert len(res["per_episode"][k]) == 2
    video = out / "eval_last_seed3.mp4"
    assert res["video"] == str(video)
    assert video.is_file() and video.stat().st_size > 0
    assert not [f for f in os.listdir(out) if ".tmp" in f]
    import imageio.v2 as imageio

    reader = imageio.get_reader(str(video))
    try:
        frames = [f for f in reader]
    finally:
        reader.close()
    assert len(frames) == 51  # the reset frame + 50 steps of the first batch
    assert frames[0].shape == (256, 512, 3)  # two 256x256 env views tiled side by side
    # nothing was written next to the checkpoint
    assert not (ppo_run / "videos").exists()


@pytest.mark.parametrize("script", ["ppo", "ppo_rgb"])
def test_ppo_resume_after_kill(tmp_path, script):
    """kill -9 a run once it has written last.pt, then --resume it to the full step count: the
    iterations continue after the checkpoint's, and metrics.csv reads as one run."""
    import signal
    import subprocess
    import sys
    import time

    runs = tmp_path / "runs"
    flags = [
        "--env-id",
        "PushCube",
        "--num-envs",
        "1",
        "--num-eval-envs",
        "1",
        "--num-steps",
        "4",
        "--num-minibatches",
        "1",
        "--total-timesteps",
        "40",
        "--eval-freq",
        "8",
        "--num-eval-episodes",
        "1",
        "--max-episode-steps",
        "5",
        "--sim-backend",
        "cpu",
        "--runs-dir",
        str(runs),
    ]
    flags += ["--hidden-dim", "8"] if script == "ppo" else ["--image-size", "36", "--feature-dim", "8"]
    p = subprocess.Popen(
        [sys.executable, f"cleanrl_style/{script}.py", *flags],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 300
        while not list(runs.glob("*/last.pt")):
            assert p.poll() is None, p.stderr.read().decode()
            assert time.time() < deadline, "no last.pt after 300 s"
            time.sleep(0.02)
        os.killpg(p.pid, signal.SIGKILL)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        p.stderr.close()
    (run_dir,) = list(runs.iterdir())
    killed_at = load_checkpoint(run_dir / "last.pt")["train_state"]["global_step"]
    assert 8 <= killed_at < 40 and not (run_dir / "final_eval.json").exists()

    r = run_script(f"cleanrl_style/{script}.py", "--resume", str(run_dir))
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"resumed at step {killed_at}" in r.stdout
    assert json.loads((run_dir / "final_eval.json").read_text())["step"] == 40
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = [(int(r["step"]), r["name"]) for r in csv.DictReader(f)]
    assert len(rows) == len(set(rows)), "a (step, name) row was logged twice"
    steps = [s for s, _ in rows]
    assert steps == sorted(steps)
    assert [s for s, n in rows if n == "eval/success_once"] == [8, 16, 24, 32, 40]
    assert sorted({s for s, n in rows if n == "time/sps"}) == list(range(4, 41, 4))
    ckpt = load_checkpoint(run_dir / "last.pt")
    assert ckpt["step"] == 40 and ckpt["train_state"]["iteration"] == 10
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["resumed"][0]["step"] == killed_at


@pytest.mark.parametrize("ended", [[True, False, False], [False, False, True], [True, True, True]])
def test_final_obs_values_sees_the_whole_batch_and_keeps_only_ended_rows(ended):
    """PPO's V(final obs): the value function always gets the full batch (one shape: no --compile
    recompiles for a varying number of finished envs; no masked indexing: no device sync)."""
    from cleanrl_style.lib.returns import final_obs_values

    shapes = []

    def value_fn(x):
        shapes.append(tuple(x.shape))
        return x.sum(-1)

    obs = torch.arange(12.0).reshape(3, 4)
    out = final_obs_values(value_fn, obs, torch.tensor(ended))
    assert shapes == [(3, 4)]
    assert torch.equal(out, torch.where(torch.tensor(ended), obs.sum(-1), torch.zeros(3)))
