"""Demonstrations and behavior cloning: index bookkeeping, temporal ensembling, normalization, the
collect -> convert -> train -> evaluate pipeline end to end on 2 demos, and bad demo files."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import torch
import yaml
from conftest import assert_one_error_line, run_script

from cleanrl_style import bc
from cleanrl_style.lib.checkpoints import load_checkpoint, save_checkpoint
from cleanrl_style.lib.demos import demo_sim_backend, load_demos, read_demo_info
from cleanrl_style.lib.nets import Actor
from cleanrl_style.lib.runs import REPO_ROOT, UserError


# ----------------------------------------------------------------------------- pure functions
def _fake_data(lengths=(3, 2)):
    """Episodes of the given lengths; frame f holds state [f], step s holds action [s]."""
    frames = sum(n + 1 for n in lengths)
    steps = sum(lengths)
    step_frame, ep_start, ep_last = [], [], []
    f0 = s0 = 0
    for n in lengths:
        step_frame += list(range(f0, f0 + n))
        ep_start += [f0] * n
        ep_last += [s0 + n - 1] * n
        f0, s0 = f0 + n + 1, s0 + n
    t = torch.tensor
    return dict(
        state=torch.arange(frames, dtype=torch.float32)[:, None],
        actions=torch.arange(steps, dtype=torch.float32)[:, None],
        step_frame=t(step_frame),
        ep_start=t(ep_start),
        ep_last=t(ep_last),
    )


def test_batch_indices_history_and_chunks_stop_at_episode_bounds():
    data = _fake_data((3, 2))  # frames 0..3 | 4..6, steps 0..2 | 3..4
    idx = torch.tensor([0, 2, 3, 4])
    frames, steps, valid = bc.batch_indices(data, idx, obs_horizon=2, chunk_size=3)
    # history: previous frame, repeated first frame at an episode start
    assert frames.tolist() == [[0, 0], [1, 2], [4, 4], [4, 5]]
    # chunks never run into the next episode: steps past the end are clamped and masked
    assert steps.tolist() == [[0, 1, 2], [2, 2, 2], [3, 4, 4], [4, 4, 4]]
    assert valid.tolist() == [[True, True, True], [True, False, False], [True, True, False], [True, False, False]]


class _CountingModel(torch.nn.Module):
    """A 'policy' whose k-th query (k = 0, 1, ...) predicts chunk [k*10 + j for j in 0..H-1]."""

    def __init__(self, chunk_size):
        super().__init__()
        self.head, self.obs_horizon, self.chunk_size, self.action_dim = "chunk", 1, chunk_size, 1
        self.k = 0

    def forward(self, state, rgb=None):
        out = torch.tensor([[self.k * 10.0 + j for j in range(self.chunk_size)]])[..., None].expand(
            state.shape[0], -1, -1
        )
        self.k += 1
        return out


def _identity_norm(dim=1, action_dim=1):
    return bc.Normalizer(
        torch.arange(dim), torch.zeros(dim), torch.ones(dim), torch.zeros(action_dim), torch.ones(action_dim)
    )


def test_temporal_ensemble_averages_what_each_chunk_says_for_now():
    decay = 0.5
    pol = bc.EvalPolicy(_CountingModel(3), _identity_norm(), temporal_ensemble=True, ensemble_decay=decay)
    obs = torch.zeros(2, 1)
    assert pol(obs).flatten().tolist() == [0.0, 0.0]  # only chunk 0: its step 0
    a1 = pol(obs)[0, 0].item()  # chunk 0 step 1 (=1), chunk 1 step 0 (=10)
    w = np.exp(-decay * np.array([1.0, 0.0]))  # newest first: ages 0, 1 -> oldest weight 1
    assert a1 == pytest.approx((w[0] * 10 + w[1] * 1) / w.sum())
    a2 = pol(obs)[0, 0].item()  # chunks 2,1,0 say 20, 11, 2
    w = np.exp(-decay * np.array([2.0, 1.0, 0.0]))
    assert a2 == pytest.approx((w[0] * 20 + w[1] * 11 + w[2] * 2) / w.sum())
    a3 = pol(obs)[0, 0].item()  # chunk 0 has run out: 30, 21, 12
    assert a3 == pytest.approx((w[0] * 30 + w[1] * 21 + w[2] * 12) / w.sum())
    pol.reset()
    assert pol(obs)[0, 0].item() == 40.0  # a reset forgets old chunks


def test_open_loop_chunks_execute_exec_horizon_actions_per_query():
    pol = bc.EvalPolicy(_CountingModel(4), _identity_norm(), temporal_ensemble=False, exec_horizon=2)
    obs = torch.zeros(1, 1)
    assert [pol(obs).item() for _ in range(5)] == [0.0, 1.0, 10.0, 11.0, 20.0]


def test_normalizer_round_trip_and_kept_dims():
    g = torch.Generator().manual_seed(0)
    state = torch.randn(100, 5, generator=g) * torch.tensor([1.0, 2.0, 0.0, 3.0, 4.0]) + 7
    actions = torch.randn(100, 2, generator=g) * 0.3
    keep = torch.tensor([0, 2, 3])
    norm = bc.Normalizer.fit(keep, state, actions)
    z = norm.state(state)
    assert z.shape == (100, 3)
    assert torch.allclose(z[:, [0, 2]].mean(0), torch.zeros(2), atol=1e-5)
    assert torch.allclose(z[:, [0, 2]].std(0), torch.ones(2), atol=1e-4)
    assert torch.all(z[:, 1] == 0)  # a constant dim: std floored, no division by zero
    assert torch.allclose(norm.unaction(norm.action(actions)), actions, atol=1e-6)


def test_keep_index_drops_named_parts_and_rejects_unknown_names():
    layout = [("agent/qpos", 2), ("agent/qvel", 2), ("extra/goal_pos", 3)]
    assert bc.keep_index(layout, ["agent/qvel"]).tolist() == [0, 1, 4, 5, 6]
    assert bc.keep_index(layout, []).tolist() == list(range(7))
    with pytest.raises(UserError, match="agent/qacc"):
        bc.keep_index(layout, ["agent/qacc"])


def test_gaussian_head_is_sacs_actor():
    m = bc.BCPolicy(state_dim=10, action_dim=4, head="gaussian", chunk_size=1, hidden_dim=256)
    ref = Actor(10, 4, 256)
    assert {k: v.shape for k, v in m.actor.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}
    assert m(torch.zeros(3, 1, 10)).shape == (3, 1, 4)


def test_keypoint_encoder_spatial_softmax_finds_the_peak():
    """Each keypoint is the softmax-weighted mean position of its map: x runs along columns, y along
    rows, both in [-1, 1]; non-square images work and the state is appended."""
    enc = bc.KeypointEncoder(3, 40, 72, state_dim=5, num_keypoints=2)
    h, w = 10, 18  # two stride-2 convs: 40x72 -> 10x18
    assert enc.pos.shape == (h * w, 2)

    class Spikes(torch.nn.Module):  # map 0 peaks at (row 0, col w-1), map 1 at (row h-1, col 0)
        def forward(self, x):
            m = torch.full((x.shape[0], 2, h, w), -50.0)
            m[:, 0, 0, w - 1] = 50.0
            m[:, 1, h - 1, 0] = 50.0
            return m

    enc.convs = Spikes()
    out = enc(torch.zeros(4, 3, 40, 72, dtype=torch.uint8), torch.arange(20.0).reshape(4, 5))
    assert out.shape == (4, 2 * 2 + 5)
    torch.testing.assert_close(out[0, :4], torch.tensor([1.0, -1.0, -1.0, 1.0]))  # (x, y) of each keypoint
    torch.testing.assert_close(out[:, 4:], torch.arange(20.0).reshape(4, 5))


def test_head_input_aux_is_a_detached_position_bottleneck():
    """--head-input aux: the policy head sees [state, predicted position] per frame; the BC loss does
    not train the encoder or the position head (only the auxiliary loss does)."""
    m = bc.BCPolicy(
        state_dim=5,
        action_dim=4,
        obs_horizon=2,
        chunk_size=3,
        hidden_dim=32,
        image_shape=[3, 40, 40],
        feature_dim=16,
        aux_dim=3,
        head_input="aux",
    )
    state, rgb = torch.randn(6, 2, 5), torch.randint(0, 255, (6, 2, 3, 40, 40), dtype=torch.uint8)
    x = m.features(state, rgb)
    head_in = m.head_in(x, state)
    assert head_in.shape == (6, 2 * (5 + 3))
    torch.testing.assert_close(head_in.reshape(6, 2, 8)[..., :5], state)
    m(state, rgb).pow(2).mean().backward()
    assert all(p.grad is None for p in m.encoder.parameters()) and all(p.grad is None for p in m.aux.parameters())
    assert all(p.grad is not None for p in m.net.parameters())


def test_keypoint_policy_checkpoint_round_trip(tmp_path):
    """--encoder keypoints is rebuilt from the checkpoint's model_kwargs (what evaluate.py does)."""
    kwargs = dict(
        model=dict(
            state_dim=6,
            action_dim=4,
            obs_horizon=1,
            chunk_size=4,
            hidden_dim=32,
            head="chunk",
            image_shape=[3, 48, 64],
            feature_dim=16,
            encoder="keypoints",
        ),
        n_keep=6,
    )
    args = dict(temporal_ensemble=False, exec_horizon=1)
    policy = bc.build_policy(kwargs, args, torch.device("cpu"))
    assert isinstance(policy.model.encoder, bc.KeypointEncoder)
    policy.norm.load_state_dict(bc.Normalizer.fit(torch.arange(6), torch.randn(50, 6), torch.randn(50, 4)).state_dict())
    save_checkpoint(
        tmp_path / "k.pt", script="bc", args=args, env={}, model_kwargs=kwargs, state_dict=policy.state_dict(), step=0
    )
    again = bc.load_policy(load_checkpoint(tmp_path / "k.pt"), torch.device("cpu"))
    obs = dict(state=torch.randn(2, 6), rgb=torch.randint(0, 255, (2, 3, 48, 64), dtype=torch.uint8))
    policy.eval()
    torch.testing.assert_close(policy(obs), again(obs))


# ----------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    """2 motion-planning PickCube demos, converted to state + pd_ee_delta_pos (one collect call)."""
    out = tmp_path_factory.mktemp("demos")
    p = run_script(
        "cleanrl_style/collect_demos.py",
        "--env-id",
        "PickCube",
        "--num-demos",
        "2",
        "--out-dir",
        str(out),
        "--obs-mode",
        "state",
        "--control-mode",
        "pd_ee_delta_pos",
        timeout=600,
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return out, p.stdout


def test_collect_writes_maniskill_trajectories_readable_by_its_loader(demos):
    out, stdout = demos
    raw = out / "PickCube-v1" / "motionplanning" / "trajectory.h5"
    conv = raw.parent / "state" / "trajectory.state.pd_ee_delta_pos.physx_cpu.h5"
    assert raw.is_file() and conv.is_file()
    meta = json.loads(raw.with_suffix(".json").read_text())
    assert len(meta["episodes"]) == 2 and meta["env_info"]["env_id"] == "PickCube-v1"
    assert meta["cleanrl_style"]["successes"] == 2 and meta["cleanrl_style"]["attempts"] >= 2
    assert sorted(e["episode_seed"] for e in meta["episodes"]) == [0, 1] or meta["cleanrl_style"]["attempts"] > 2
    assert "2/2 demos replayed successfully" in stdout
    from mani_skill.trajectory.dataset import ManiSkillTrajectoryDataset

    ds = ManiSkillTrajectoryDataset(str(conv), load_count=-1, success_only=False, device="cpu")
    item = ds[0]
    assert item["action"].shape == (4,)  # pd_ee_delta_pos: xyz + gripper
    assert np.asarray(item["obs"]).ndim == 1  # flat state
    assert not list(raw.parent.glob(".collect-tmp-*")) and not list(conv.parent.glob(".convert-tmp-*"))


def test_load_demos_shapes_and_episode_bookkeeping(demos):
    out, _ = demos
    conv = out / "PickCube-v1" / "motionplanning" / "state" / "trajectory.state.pd_ee_delta_pos.physx_cpu.h5"
    data = load_demos(str(conv), "state", None)
    S, F = len(data["actions"]), len(data["state"])
    assert data["num_demos"] == 2 and F == S + 2 and S == sum(data["lengths"])
    assert data["state"].dtype == torch.float32 and data["actions"].shape[1] == 4
    assert data["ep_last"][0].item() == data["lengths"][0] - 1
    assert data["step_frame"][data["lengths"][0]].item() == data["lengths"][0] + 1  # episode 2 starts one frame later


def test_aux_target_is_the_cube_position_the_state_reports(demos, state_env):
    """--aux-coef's target (the cube position from the recorded env_states) is, frame by frame, the
    obj_pose the env puts in its state observation; an unknown actor is one clear error."""
    out, _ = demos
    conv = out / "PickCube-v1" / "motionplanning" / "state" / "trajectory.state.pd_ee_delta_pos.physx_cpu.h5"
    data = load_demos(str(conv), "state", None, aux_actor="cube")
    assert data["aux"].shape == (len(data["state"]), 3) and data["aux"].dtype == torch.float32
    state_env.reset(seed=0)
    layout = state_env.state_layout()
    names = [n for n, _ in layout]
    start = sum(size for _, size in layout[: names.index("extra/obj_pose")])
    torch.testing.assert_close(data["aux"], data["state"][:, start : start + 3])
    with pytest.raises(UserError, match="--aux-actor 'box' is not in .* cube"):
        load_demos(str(conv), "state", None, aux_actor="box")


@pytest.fixture(scope="module")
def bc_run(demos, tmp_path_factory):
    out, _ = demos
    conv = out / "PickCube-v1" / "motionplanning" / "state" / "trajectory.state.pd_ee_delta_pos.physx_cpu.h5"
    runs = tmp_path_factory.mktemp("bc_runs")
    p = run_script(
        "cleanrl_style/bc.py",
        "--env-id",
        "PickCube",
        "--demo-path",
        str(conv),
        "--total-iters",
        "60",
        "--eval-freq",
        "30",
        "--log-freq",
        "20",
        "--num-eval-episodes",
        "2",
        "--max-episode-steps",
        "10",
        "--runs-dir",
        str(runs),
        timeout=600,
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    (run_dir,) = list(runs.iterdir())
    return run_dir, conv


def test_bc_smoke_run_artifacts_and_normalization_in_checkpoint(bc_run):
    run_dir, conv = bc_run
    for f in ("config.yaml", "metrics.csv", "best.pt", "last.pt", "final_eval.json"):
        assert (run_dir / f).is_file(), f
    final = json.loads((run_dir / "final_eval.json").read_text())
    assert final["episodes"] == 2 and final["num_demos"] == 2
    assert all(s >= 2_000_001 for s in final["seeds"])  # never a demo seed
    ckpt = load_checkpoint(run_dir / "last.pt")
    assert ckpt["script"] == "bc" and ckpt["env"]["control_mode"] == "pd_ee_delta_pos"
    data = load_demos(str(conv), "state", None)
    keep = bc.keep_index([("agent/qpos", 9), ("agent/qvel", 9), ("rest", data["state"].shape[1] - 18)], ["agent/qvel"])
    sd = ckpt["state_dict"]
    assert torch.allclose(sd["norm.state_mean"], data["state"][:, keep].mean(0), atol=1e-5)
    assert torch.allclose(sd["norm.action_mean"], data["actions"].mean(0), atol=1e-6)
    # the rebuilt policy applies those stats: same action as normalizing by hand
    policy = bc.load_policy(ckpt, torch.device("cpu"))
    obs = data["state"][:3]
    z = (obs[:, keep] - sd["norm.state_mean"]) / sd["norm.state_std"]
    chunk = policy.model(z[:, None]) * sd["norm.action_std"] + sd["norm.action_mean"]
    assert torch.allclose(policy(obs), chunk[:, 0], atol=1e-5)


def test_bc_evaluates_on_the_demos_backend_by_default(bc_run, monkeypatch, capsys):
    """auto -> the backend the demos were converted with, even where CUDA would make auto mean the GPU
    sim (end-effector IK differs between the sims); an explicit other backend is used with a warning."""
    run_dir, conv = bc_run
    info = read_demo_info(str(conv))
    assert demo_sim_backend(info, str(conv)) == "cpu"  # collect_demos converts on physx_cpu
    assert demo_sim_backend({"env_kwargs": {}}, "x/trajectory.rgb.pd_ee_delta_pos.physx_cuda.h5") == "gpu"
    assert demo_sim_backend({"env_kwargs": {}}, "x/trajectory.h5") is None
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert bc.eval_backend("auto", "cpu", "pd_ee_delta_pos") == "cpu"
    assert capsys.readouterr().out == ""
    assert bc.eval_backend("gpu", "cpu", "pd_ee_delta_pos") == "gpu"
    warning = capsys.readouterr().out
    assert "warning" in warning and "cpu" in warning and "IK" in warning
    assert bc.eval_backend("auto", None, "pd_ee_delta_pos") == "gpu"  # unknown: auto as elsewhere
    # the run records what it evaluated on
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert cfg["args"]["sim_backend"] == "cpu"


def test_bc_policy_moves_observations_to_its_device_and_actions_back(bc_run):
    """A CUDA learner evaluated on the CPU sim: the policy takes env observations wherever they are and
    returns actions on the env's device (the normaliser's index lives on the learner's device)."""
    run_dir, conv = bc_run
    ckpt = load_checkpoint(run_dir / "last.pt")
    seen = []
    policy = bc.load_policy(ckpt, torch.device("cpu"))
    policy.model.register_forward_pre_hook(lambda m, a: seen.append(a[0].device))
    obs = load_demos(str(conv), "state", None)["state"][:2]
    act = policy(obs)
    assert act.device == obs.device and seen == [policy.norm.keep.device]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bc_cuda_policy_on_cpu_observations(bc_run):
    run_dir, conv = bc_run
    policy = bc.load_policy(load_checkpoint(run_dir / "last.pt"), torch.device("cuda"))
    obs = load_demos(str(conv), "state", None)["state"][:2]
    act = policy(obs)
    assert act.device.type == "cpu" and act.shape == (2, policy.model.action_dim)


def test_evaluate_cli_reloads_bc_checkpoint(bc_run, tmp_path):
    run_dir, _ = bc_run
    p = run_script(
        "cleanrl_style/evaluate.py",
        "--checkpoint",
        str(run_dir / "best.pt"),
        "--num-episodes",
        "2",
        "--seed",
        "5",
        "--out-dir",
        str(tmp_path),
        timeout=300,
    )
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    m = json.loads((tmp_path / "eval_best_seed5.json").read_text())
    assert m["script"] == "bc" and m["episodes"] == 2 and m["max_episode_steps"] == 10
    # next to the checkpoint (no --out-dir): the run's own final_eval.json is left as training wrote it
    before = (run_dir / "final_eval.json").read_bytes()
    p = run_script(
        "cleanrl_style/evaluate.py",
        "--checkpoint",
        str(run_dir / "best.pt"),
        "--num-episodes",
        "1",
        "--seed",
        "7",
        timeout=300,
    )
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert (run_dir / "final_eval.json").read_bytes() == before
    assert json.loads((run_dir / "eval_best_seed7.json").read_text())["seeds"] == [7]


def test_convert_to_rgb_and_bc_from_pixels(demos, tmp_path, capsys):
    out, _ = demos
    p = run_script(
        "cleanrl_style/collect_demos.py",
        "--env-id",
        "PickCube",
        "--out-dir",
        str(out),
        "--convert-only",
        "--obs-mode",
        "rgb",
        "--control-mode",
        "pd_ee_delta_pos",
        "--image-size",
        "48",
        "--num-procs",
        "1",
        timeout=600,
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    conv = out / "PickCube-v1" / "motionplanning" / "rgb48" / "trajectory.rgb.pd_ee_delta_pos.physx_cpu.h5"
    with h5py.File(conv, "r") as f:
        rgb = f["traj_0/obs/sensor_data/base_camera/rgb"]
        assert rgb.dtype == np.uint8 and rgb.shape[1:] == (48, 48, 3)
    p = run_script(
        "cleanrl_style/bc.py",
        "--env-id",
        "PickCube",
        "--demo-path",
        str(conv),
        "--obs-mode",
        "rgb",
        "--total-iters",
        "4",
        "--batch-size",
        "8",
        "--eval-freq",
        "0",
        "--num-eval-episodes",
        "1",
        "--num-eval-envs",
        "1",
        "--max-episode-steps",
        "3",
        "--dr",
        "heavy",
        "--runs-dir",
        str(tmp_path),
        timeout=600,
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    (run_dir,) = list(tmp_path.iterdir())
    ckpt = load_checkpoint(run_dir / "last.pt")
    assert ckpt["env"]["obs_shapes"]["rgb"] == [3, 48, 48] and ckpt["args"]["dr"] == "heavy"
    assert ckpt["model_kwargs"]["model"]["image_shape"] == [3, 48, 48]
    # pixel defaults: the auxiliary cube-position loss is on (weight 10) and recorded as such
    assert ckpt["model_kwargs"]["model"]["aux_dim"] == 3
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert cfg["args"]["aux_coef"] == 10.0 and cfg["args"]["batch_size"] == 8

    # defaults resolve per mode (batch size from the flags, the aux loss from the demo file); demos that
    # do not record the actor fall back to no aux loss, with a note
    info = read_demo_info(str(conv))

    def resolved(**kw):
        a = bc.resolve_args(bc.Args(demo_path=str(conv), **kw), "cpu")
        bc.resolve_defaults(a, info)
        return a

    a = resolved(obs_mode="rgb")
    assert (a.aux_coef, a.batch_size) == (10.0, 64)
    a = resolved(obs_mode="state", batch_size=32)
    assert (a.aux_coef, a.batch_size) == (0.0, 32)
    a = resolved(obs_mode="rgb", aux_actor="no_such_actor")
    assert a.aux_coef == 0.0 and "records no 'no_such_actor' actor state" in capsys.readouterr().out
    a = resolved(obs_mode="rgb", aux_coef=1.5)
    assert a.aux_coef == 1.5


# ----------------------------------------------------------------------------- bad input
def test_bc_missing_demo_file(tmp_path):
    p = run_script("cleanrl_style/bc.py", "--demo-path", str(tmp_path / "nope.h5"), timeout=120)
    assert p.returncode == 1
    assert_one_error_line(p.stderr, "demo file not found")


def test_bc_corrupt_demo_file(demos, tmp_path):
    out, _ = demos
    conv = out / "PickCube-v1" / "motionplanning" / "state" / "trajectory.state.pd_ee_delta_pos.physx_cpu.h5"
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"this is not an h5 file")
    shutil.copy(conv.with_suffix(".json"), bad.with_suffix(".json"))
    p = run_script(
        "cleanrl_style/bc.py",
        "--demo-path",
        str(bad),
        "--num-eval-episodes",
        "1",
        "--runs-dir",
        str(tmp_path / "runs"),
        timeout=300,
    )
    assert p.returncode == 1
    assert_one_error_line(p.stderr, "corrupt")


def test_bc_demo_json_missing_or_broken(demos, tmp_path):
    out, _ = demos
    conv = out / "PickCube-v1" / "motionplanning" / "state" / "trajectory.state.pd_ee_delta_pos.physx_cpu.h5"
    h5 = tmp_path / "t.h5"
    shutil.copy(conv, h5)
    p = run_script("cleanrl_style/bc.py", "--demo-path", str(h5), timeout=120)
    assert p.returncode == 1
    assert_one_error_line(p.stderr, "t.json")
    h5.with_suffix(".json").write_text("{not json")
    p = run_script("cleanrl_style/bc.py", "--demo-path", str(h5), timeout=120)
    assert p.returncode == 1
    assert_one_error_line(p.stderr, "not a ManiSkill trajectory json")


def test_bc_wrong_obs_mode_and_wrong_task(demos):
    out, _ = demos
    raw = out / "PickCube-v1" / "motionplanning" / "trajectory.h5"
    conv = raw.parent / "state" / "trajectory.state.pd_ee_delta_pos.physx_cpu.h5"
    p = run_script("cleanrl_style/bc.py", "--demo-path", str(conv), "--obs-mode", "rgb", timeout=120)
    assert p.returncode == 1
    assert_one_error_line(p.stderr, "obs mode 'state', not 'rgb'", "--obs-mode rgb")
    p = run_script("cleanrl_style/bc.py", "--demo-path", str(raw), timeout=120)  # raw: no observations
    assert p.returncode == 1
    assert_one_error_line(p.stderr, "not 'state'")
    p = run_script("cleanrl_style/bc.py", "--env-id", "PushCube", "--demo-path", str(conv), timeout=120)
    assert p.returncode == 1
    assert_one_error_line(p.stderr, "holds PickCube-v1 demos, not PushCube-v1")


def test_bc_rejects_non_positive_counts(tmp_path):
    """Numeric flags are checked before the demo file is read or anything starts: one line, exit 2."""
    for flag, value in (("--total-iters", "0"), ("--batch-size", "-1")):
        p = run_script("cleanrl_style/bc.py", "--demo-path", str(tmp_path / "nope.h5"), flag, value, timeout=120)
        assert p.returncode == 2, p.stderr
        assert_one_error_line(p.stderr, flag, "must be > 0")


def test_bc_image_randomization_needs_pixels(tmp_path):
    p = run_script("cleanrl_style/bc.py", "--demo-path", str(tmp_path / "nope.h5"), "--dr", "heavy", timeout=120)
    assert p.returncode == 2, p.stderr
    assert_one_error_line(p.stderr, "--dr randomizes images")


def _state_demo_path(demos):
    out, _ = demos
    return out / "PickCube-v1" / "motionplanning" / "state" / "trajectory.state.pd_ee_delta_pos.physx_cpu.h5"


def test_bc_gaussian_resolves_hidden_dim_and_refuses_chunk_size(demos, tmp_path):
    """--policy gaussian defaults to sac.py's width (256) and one action per query, recorded as such;
    an explicit --chunk-size other than 1 is an error, not silently overridden."""
    conv = _state_demo_path(demos)
    p = run_script(
        "cleanrl_style/bc.py",
        "--demo-path",
        str(conv),
        "--policy",
        "gaussian",
        "--total-iters",
        "2",
        "--eval-freq",
        "0",
        "--log-freq",
        "1",
        "--num-eval-episodes",
        "1",
        "--num-eval-envs",
        "1",
        "--max-episode-steps",
        "2",
        "--runs-dir",
        str(tmp_path),
        timeout=600,
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    (run_dir,) = list(tmp_path.iterdir())
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert (cfg["args"]["hidden_dim"], cfg["args"]["chunk_size"]) == (256, 1)
    assert cfg["args"]["env_id"] == "PickCube-v1" and cfg["args"]["batch_size"] == 256
    model = load_checkpoint(run_dir / "last.pt")["model_kwargs"]["model"]
    assert (model["hidden_dim"], model["chunk_size"], model["head"]) == (256, 1, "gaussian")
    p = run_script(
        "cleanrl_style/bc.py", "--demo-path", str(conv), "--policy", "gaussian", "--chunk-size", "4", timeout=120
    )
    assert p.returncode == 2
    assert_one_error_line(p.stderr, "--chunk-size", "gaussian")


def test_bc_resume_after_kill(demos, tmp_path):
    """kill -9 after the first last.pt, then --resume: the run ends at --total-iters with one
    metrics.csv whose steps never go back and hold no (step, name) twice."""
    conv = _state_demo_path(demos)
    runs = tmp_path / "runs"
    cmd = [
        sys.executable,
        "cleanrl_style/bc.py",
        "--demo-path",
        str(conv),
        "--total-iters",
        "400",
        "--eval-freq",
        "100",
        "--log-freq",
        "50",
        "--num-eval-episodes",
        "1",
        "--max-episode-steps",
        "5",
        "--runs-dir",
        str(runs),
    ]
    log = open(tmp_path / "first.log", "w")
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 600
        while not list(runs.glob("*/last.pt")):
            assert proc.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.time() < deadline, "no last.pt within 600 s"
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the run and its eval-env workers
        proc.wait()
        log.close()
    (run_dir,) = list(runs.iterdir())
    assert not (run_dir / "final_eval.json").exists(), "the run finished before it was killed"
    killed_at = load_checkpoint(run_dir / "last.pt")["train_state"]["iteration"]
    assert 100 <= killed_at < 400

    p = run_script("cleanrl_style/bc.py", "--resume", str(run_dir), timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert f"resumed at step {killed_at}" in p.stdout
    assert json.loads((run_dir / "final_eval.json").read_text())["step"] == 400
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    steps = [int(r["step"]) for r in rows]
    assert steps == sorted(steps) and steps[-1] == 400
    keys = [(r["step"], r["name"]) for r in rows]
    assert len(keys) == len(set(keys))
    assert {int(r["step"]) for r in rows if r["name"] == "eval/success_once"} == {100, 200, 300, 400}
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert [r["step"] for r in cfg["resumed"]] == [killed_at]
    assert cfg["args"]["resume"] == str(run_dir) and cfg["args"]["total_iters"] == 400


def test_collect_rejects_task_without_planner_and_bad_flags(tmp_path):
    p = run_script(
        "cleanrl_style/collect_demos.py", "--env-id", "PickSingleYCB", "--out-dir", str(tmp_path), timeout=120
    )
    assert p.returncode == 2
    assert_one_error_line(p.stderr, "no motion-planning solution", "--teacher")
    p = run_script(
        "cleanrl_style/collect_demos.py", "--control-mode", "pd_ee_delta_pos", "--out-dir", str(tmp_path), timeout=120
    )
    assert p.returncode == 2
    assert_one_error_line(p.stderr, "--obs-mode")
    p = run_script(
        "cleanrl_style/collect_demos.py",
        "--convert-only",
        "--obs-mode",
        "state",
        "--out-dir",
        str(tmp_path),
        timeout=120,
    )
    assert p.returncode == 1
    assert_one_error_line(p.stderr, "no demos at")


def test_collect_teacher_records_successful_episodes_of_a_checkpoint(tmp_path, bc_run):
    run_dir, _ = bc_run
    p = run_script(
        "cleanrl_style/collect_demos.py",
        "--env-id",
        "PickCube",
        "--teacher",
        str(run_dir / "last.pt"),
        "--num-demos",
        "1",
        "--max-attempts",
        "1",
        "--num-procs",
        "1",
        "--out-dir",
        str(tmp_path),
        timeout=600,
    )
    # a 60-step policy rarely solves PickCube: either one success was recorded or the run says none did
    dest = tmp_path / "PickCube-v1" / "teacher" / "trajectory.state.pd_ee_delta_pos.physx_cpu.h5"
    if p.returncode == 0:
        meta = json.loads(dest.with_suffix(".json").read_text())
        assert len(meta["episodes"]) == 1 and meta["cleanrl_style"]["successes"] == 1
    else:
        assert p.returncode == 1
        lines = [ln for ln in p.stderr.splitlines() if ln.strip()]  # the progress bar ran before the error
        assert "Traceback" not in p.stderr
        assert lines[-1].startswith("error: collect: 0 of 1 attempts") and "nothing written" in lines[-1]
        assert not dest.exists()


def test_state_layout_matches_the_flat_state_of_state_and_pixel_envs(state_env):
    from conftest import _make

    state_env.reset(seed=0)
    layout = state_env.state_layout()
    assert [n for n, _ in layout][:2] == ["agent/qpos", "agent/qvel"]
    assert sum(s for _, s in layout) == state_env.obs_shapes["state"][0]
    env = _make("PickCube", 1, "rgb", image_size=40, partial_reset=False)
    try:
        env.reset(seed=0)
        pix = env.state_layout()
        assert sum(s for _, s in pix) == env.obs_shapes["state"][0]
        assert "extra/obj_pose" not in dict(pix)  # no privileged object state in pixel modes
        assert "extra/obj_pose" in dict(layout)
    finally:
        env.close()
