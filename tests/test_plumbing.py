"""Run directories and logging, checkpoint I/O, evaluation, images and video."""

from __future__ import annotations

import csv
import dataclasses
import os
import re
import subprocess
import types

import numpy as np
import pytest
import torch
import yaml
from conftest import REPO_ROOT, SHORT_STEPS

from cleanrl_style import ppo
from cleanrl_style.lib.checkpoints import CHECKPOINT_FORMAT, check_obs_compatible, load_checkpoint, save_checkpoint
from cleanrl_style.lib.envs import env_spec
from cleanrl_style.lib.evaluation import EVAL_KEYS, evaluate
from cleanrl_style.lib.runs import RunLogger, UserError, atomic_write_text, device_name, write_json
from cleanrl_style.lib.video import tile_images, write_video


# ----------------------------------------------------------------------------- run logger
@dataclasses.dataclass
class _Args:
    env_id: str = "PickCube"
    seed: int = 7
    lr: float = 3e-4


def _git_head() -> str | None:
    try:
        p = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return p.stdout.strip() or None


def test_run_logger_layout_config_and_metrics(tmp_path):
    run = RunLogger(_Args(), "ppo", "PickCube-v1", 7, runs_dir=str(tmp_path))
    try:
        assert run.dir.parent == tmp_path
        assert re.fullmatch(r"PickCube-v1__ppo__7__\d{8}-\d{6}", run.dir.name), run.dir.name
        assert run.name == run.dir.name
        assert run.video_dir == str(run.dir / "videos")
        run.log(10, {"losses/a": 1.5, "time/sps": torch.tensor(250.0)})
        run.log(20, {"losses/a": np.float32(-0.25)})
    finally:
        run.close()

    cfg = yaml.safe_load((run.dir / "config.yaml").read_text())
    assert cfg["args"] == {"env_id": "PickCube", "seed": 7, "lr": 3e-4}
    assert cfg["script"] == "ppo" and cfg["env_id"] == "PickCube-v1" and cfg["seed"] == 7
    for mod in ("torch", "mani_skill", "sapien"):
        assert cfg["versions"][mod], mod
    assert cfg["versions"]["torch"] == str(torch.__version__)
    assert cfg["device"] == device_name() and cfg["device"]
    head = _git_head()
    if head:
        assert re.fullmatch(re.escape(head) + r"(-dirty)?", cfg["git_commit"]), cfg["git_commit"]
    else:
        assert cfg["git_commit"]

    with open(run.dir / "metrics.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["step", "wall_time", "name", "value"]
    body = [(int(r[0]), r[2], float(r[3])) for r in rows[1:]]
    assert body == [(10, "losses/a", 1.5), (10, "time/sps", 250.0), (20, "losses/a", -0.25)]
    assert all(float(r[1]) >= 0 for r in rows[1:])
    events = list(run.dir.glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0


def test_run_logger_without_tensorboard_warns_once_and_still_writes_metrics(tmp_path, monkeypatch, capsys):
    """The offline GPU bundle may lack tensorboard: the run goes on with metrics.csv (what results read)."""
    import builtins

    real_import = builtins.__import__

    def no_tensorboard(name, *a, **k):
        if name.startswith("torch.utils.tensorboard"):
            raise ImportError("No module named 'tensorboard'")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    run = RunLogger(_Args(), "ppo", "PickCube-v1", 7, runs_dir=str(tmp_path))
    try:
        run.log(5, {"losses/a": 2.0})
    finally:
        run.close()
    err = capsys.readouterr().err
    assert err.count("no TensorBoard logging") == 1 and "metrics.csv" in err
    assert not list(run.dir.glob("events.out.tfevents.*"))
    assert (run.dir / "metrics.csv").read_text().splitlines()[1].split(",")[2:] == ["losses/a", "2"]


def test_run_logger_does_not_reuse_an_existing_dir(tmp_path):
    a = RunLogger(_Args(), "ppo", "PickCube-v1", 7, runs_dir=str(tmp_path))
    b = RunLogger(_Args(), "ppo", "PickCube-v1", 7, runs_dir=str(tmp_path))
    a.close()
    b.close()
    assert a.dir != b.dir and a.dir.is_dir() and b.dir.is_dir()


# ----------------------------------------------------------------------------- checkpoints
OBS_DIM, ACT_DIM = 5, 2
ENV_SPEC = dict(env_id="PickCube-v1", obs_mode="state", obs_shapes={"state": [OBS_DIM]}, action_dim=ACT_DIM)


def _agent(seed=0):
    torch.manual_seed(seed)
    agent = ppo.Agent(OBS_DIM, ACT_DIM, hidden_dim=16)
    agent.obs_norm.update(torch.randn(64, OBS_DIM) * 3 + 1)  # non-default normalization stats
    return agent


def _save(path, agent, step=123):
    save_checkpoint(
        path,
        script="ppo",
        args=ppo.Args(env_id="PickCube"),
        env=ENV_SPEC,
        model_kwargs=dict(obs_dim=OBS_DIM, action_dim=ACT_DIM, hidden_dim=16),
        state_dict=agent.state_dict(),
        step=step,
        extra=dict(eval={"success_once": 0.5}),
    )


def test_checkpoint_round_trip(tmp_path):
    agent = _agent()
    path = tmp_path / "sub" / "ckpt.pt"
    _save(path, agent)
    assert sorted(os.listdir(path.parent)) == ["ckpt.pt"]  # no temp file left behind

    ckpt = load_checkpoint(path)
    assert ckpt["format"] == CHECKPOINT_FORMAT and ckpt["script"] == "ppo" and ckpt["step"] == 123
    assert ckpt["env"] == ENV_SPEC
    assert ckpt["args"]["env_id"] == "PickCube"
    assert ckpt["extra"] == {"eval": {"success_once": 0.5}}
    assert ckpt["versions"]["torch"] == str(torch.__version__)
    sd, want = ckpt["state_dict"], agent.state_dict()
    assert set(sd) == set(want)
    for k in ("obs_norm.mean", "obs_norm.var", "obs_norm.count"):
        assert k in sd
    assert float(sd["obs_norm.count"]) > 64
    for k in want:
        assert torch.equal(sd[k], want[k]), k

    # the rebuilt policy acts exactly like the saved agent, normalization included
    policy = ppo.load_policy(ckpt, torch.device("cpu"))
    obs = torch.randn(8, OBS_DIM) * 3 + 1
    with torch.no_grad():
        assert torch.allclose(policy(obs), agent.act(obs, deterministic=True))


def test_checkpoint_overwrite_is_atomic_when_serialization_fails(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    _save(path, _agent(0), step=1)
    before = path.read_bytes()

    def boom(*a, **k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        _save(path, _agent(1), step=2)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["ckpt.pt"]
    assert load_checkpoint(path)["step"] == 1


def test_checkpoint_overwrite_is_atomic_when_the_write_fails(tmp_path, monkeypatch):
    """A crash after the temp file got its bytes but before the rename: old file intact, temp removed."""
    path = tmp_path / "ckpt.pt"
    _save(path, _agent(0), step=1)
    before = path.read_bytes()

    def boom(fd):
        raise OSError("fsync failed")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="fsync failed"):
        _save(path, _agent(1), step=2)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["ckpt.pt"]


def test_atomic_write_text_and_json(tmp_path):
    atomic_write_text(tmp_path / "a" / "b.txt", "hello")
    assert (tmp_path / "a" / "b.txt").read_text() == "hello"
    write_json(tmp_path / "m.json", {"x": torch.tensor([1.0, 2.0]), "y": np.float32(0.5), "p": tmp_path})
    import json

    assert json.loads((tmp_path / "m.json").read_text()) == {"x": [1.0, 2.0], "y": 0.5, "p": str(tmp_path)}
    assert sorted(os.listdir(tmp_path)) == ["a", "m.json"]


def test_atomic_writes_respect_the_umask(tmp_path):
    """Files written atomically (config.yaml, final_eval.json, best.pt/last.pt) should get the same
    permissions as any other file the run writes (metrics.csv, TensorBoard events), i.e. 0o666 minus
    the umask. Currently FAILS: tempfile.mkstemp creates the temp file with mode 0o600 and
    os.replace keeps it, so those files are unreadable for group/others (shared machines, a
    TensorBoard or sync service running as another user)."""
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    atomic = tmp_path / "atomic.txt"
    atomic_write_text(atomic, "x")
    assert oct(atomic.stat().st_mode & 0o777) == oct(plain.stat().st_mode & 0o777)


def test_load_checkpoint_missing_file(tmp_path):
    with pytest.raises(UserError) as ei:
        load_checkpoint(tmp_path / "nope.pt")
    assert ei.value.code == 1 and "not found" in str(ei.value)


def test_load_checkpoint_directory(tmp_path):
    with pytest.raises(UserError) as ei:
        load_checkpoint(tmp_path)
    assert ei.value.code == 1


def test_load_checkpoint_garbage_file(tmp_path):
    p = tmp_path / "garbage.pt"
    p.write_bytes(b"this is not a torch file\x00\x01\x02" * 10)
    with pytest.raises(UserError) as ei:
        load_checkpoint(p)
    assert ei.value.code == 1 and str(p) in str(ei.value)


@pytest.mark.parametrize(
    "payload",
    [
        {"state_dict": {"w": torch.zeros(2)}},  # a plain torch dict
        {"format": CHECKPOINT_FORMAT + 1, "script": "ppo"},  # a future format
        {"format": CHECKPOINT_FORMAT},  # no script
        [1, 2, 3],  # not a dict at all
        torch.zeros(3),
    ],
)
def test_load_checkpoint_foreign_torch_file(tmp_path, payload):
    p = tmp_path / "foreign.pt"
    torch.save(payload, p)
    with pytest.raises(UserError) as ei:
        load_checkpoint(p)
    assert ei.value.code == 1


def test_check_obs_compatible():
    ckpt = {"env": ENV_SPEC}
    ok = types.SimpleNamespace(obs_shapes={"state": (OBS_DIM,)}, action_dim=ACT_DIM)
    check_obs_compatible(ckpt, ok)  # no error
    for bad in (
        types.SimpleNamespace(obs_shapes={"state": (OBS_DIM + 1,)}, action_dim=ACT_DIM),
        types.SimpleNamespace(obs_shapes={"rgb": (3, 64, 64), "state": (OBS_DIM,)}, action_dim=ACT_DIM),
        types.SimpleNamespace(obs_shapes={"state": (OBS_DIM,)}, action_dim=ACT_DIM + 1),
    ):
        with pytest.raises(UserError) as ei:
            check_obs_compatible(ckpt, bad)
        assert ei.value.code == 1 and "mismatch" in str(ei.value)


def test_check_obs_compatible_against_a_real_env(short_eval_env):
    short_eval_env.reset(seed=0)
    spec = env_spec(short_eval_env)
    assert spec["env_id"] == "PickCube-v1" and spec["max_episode_steps"] == SHORT_STEPS
    check_obs_compatible({"env": spec}, short_eval_env)
    spec["obs_shapes"] = {"state": [spec["obs_shapes"]["state"][0] - 1]}
    with pytest.raises(UserError):
        check_obs_compatible({"env": spec}, short_eval_env)


# ----------------------------------------------------------------------------- evaluation
def _check_eval_result(m, n):
    assert m["episodes"] == n
    for k in EVAL_KEYS:
        assert len(m["per_episode"][k]) == n, k
        assert m[k] == pytest.approx(float(np.mean(m["per_episode"][k])))
    assert m["per_episode"]["episode_len"] == [float(SHORT_STEPS)] * n
    for k in ("success_once", "success_at_end"):
        assert set(m["per_episode"][k]) <= {0.0, 1.0}


def test_evaluate_random_policy(short_eval_env):
    env = short_eval_env
    m = evaluate(lambda obs: env.sample_actions(), env, num_episodes=3, seed=10)
    _check_eval_result(m, 3)
    assert m["seeds"] == [10, 11, 12]
    assert "video" not in m
    m = evaluate(lambda obs: env.sample_actions(), env, num_episodes=2, video_name="clip")
    _check_eval_result(m, 2)
    assert "seeds" not in m
    assert "video" not in m  # the env has no video_dir: video_name is ignored


def _zero_policy(env):
    return lambda obs: torch.zeros(obs.shape[0], env.action_dim)


def test_evaluate_is_reproducible_and_episode_i_uses_seed_plus_i(short_eval_env, async_eval_env):
    """3 episodes on 2 parallel envs (two batches) with seed 20 must give, episode by episode, the
    same returns as 1-env evaluations seeded 20, 21 and 22."""
    par = evaluate(_zero_policy(async_eval_env), async_eval_env, num_episodes=3, seed=20)
    _check_eval_result(par, 3)
    assert par["seeds"] == [20, 21, 22]
    single = evaluate(_zero_policy(short_eval_env), short_eval_env, num_episodes=3, seed=20)
    assert single["seeds"] == [20, 21, 22]
    assert single["per_episode"]["return"] == pytest.approx(par["per_episode"]["return"], rel=1e-5)
    one = evaluate(_zero_policy(short_eval_env), short_eval_env, num_episodes=1, seed=22)
    assert one["per_episode"]["return"][0] == pytest.approx(par["per_episode"]["return"][2], rel=1e-5)
    # different seeds -> different episodes
    assert len(set(par["per_episode"]["return"])) == 3


def test_evaluate_calls_policy_reset_after_every_env_reset(async_eval_env):
    class Policy:
        def __init__(self):
            self.resets, self.calls_since_reset = 0, []

        def reset(self):
            self.resets += 1
            self.calls_since_reset.append(0)

        def __call__(self, obs):
            self.calls_since_reset[-1] += 1
            return torch.zeros(obs.shape[0], async_eval_env.action_dim)

    pol = Policy()
    m = evaluate(pol, async_eval_env, num_episodes=3, seed=0)  # 2 envs -> 2 batches
    assert m["episodes"] == 3
    assert pol.resets == 2
    assert pol.calls_since_reset == [SHORT_STEPS, SHORT_STEPS]


def test_evaluate_refuses_partial_reset_env(short_env):
    with pytest.raises(ValueError, match="partial_reset"):
        evaluate(lambda obs: short_env.sample_actions(), short_env, num_episodes=1)


# ----------------------------------------------------------------------------- images / video
def test_tile_images():
    imgs = np.stack([np.full((4, 6, 3), i + 1, dtype=np.uint8) for i in range(5)])
    grid = tile_images(imgs)
    assert grid.shape == (2 * 4, 3 * 6, 3) and grid.dtype == np.uint8  # 3 columns, 2 rows
    assert (grid[0:4, 0:6] == 1).all() and (grid[0:4, 12:18] == 3).all()
    assert (grid[4:8, 0:6] == 4).all() and (grid[4:8, 6:12] == 5).all()
    assert (grid[4:8, 12:18] == 0).all()  # the unused cell is black
    assert tile_images(imgs[:1]).shape == (4, 6, 3)
    assert tile_images(imgs[:4]).shape == (8, 12, 3)
    assert tile_images(np.zeros((9, 2, 2, 3), np.uint8)).shape == (6, 6, 3)


def test_write_video(tmp_path):
    import imageio.v2 as imageio

    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (32, 48, 3), dtype=np.uint8) for _ in range(10)]
    path = tmp_path / "vids" / "clip.mp4"
    out = write_video(str(path), frames, fps=10)
    assert out == str(path)
    assert path.is_file() and path.stat().st_size > 0
    assert os.listdir(path.parent) == ["clip.mp4"]  # no clip.tmp.mp4
    reader = imageio.get_reader(str(path))
    try:
        got = [f for f in reader]
    finally:
        reader.close()
    assert len(got) == 10 and got[0].shape == (32, 48, 3)


def test_write_video_failure_returns_none_and_cleans_up(tmp_path, capsys):
    """A failure while encoding (here: frames of different sizes) must not kill the run and must
    not leave the temp file behind. Currently FAILS: `bad.tmp.mp4` is left in the directory.
    imageio's Writer.__exit__ skips close() when an exception is propagating, so ffmpeg is still
    running when write_video checks/removes the temp file; the file is (re)finalized when the
    writer is garbage-collected, after write_video returned."""
    import gc

    frames = [np.zeros((16, 16, 3), np.uint8), np.zeros((32, 32, 3), np.uint8)]
    path = tmp_path / "bad.mp4"
    assert write_video(str(path), frames) is None
    assert "could not write video" in capsys.readouterr().err
    gc.collect()
    assert os.listdir(tmp_path) == []
