"""BC -> RL fine-tuning (lib/finetune.py, the demo store and mixed batches in lib/replay.py, the
warm-up / BC term / ensemble in lib/sac_update.py): the demo store and the exact mix of every batch,
bootstrapping at demo episode ends, the BC -> SAC weight transfer (same actions), the critic warm-up
and BC-term schedules, the error cases, and tiny CPU runs of sac.py and sac_rgb.py with --demos and
--init-from whose checkpoints evaluate.py reloads."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import h5py
import pytest
import torch
from conftest import assert_one_error_line, run_script

from cleanrl_style import bc, sac, sac_rgb
from cleanrl_style.lib import finetune, replay
from cleanrl_style.lib.checkpoints import load_checkpoint
from cleanrl_style.lib.demos import load_demos
from cleanrl_style.lib.nets import Actor, QEnsemble, QNetwork
from cleanrl_style.lib.runs import UserError
from cleanrl_style.lib.sac_update import SacUpdater, make_sac_updates

GAMMA = 0.5


# ----------------------------------------------------------------------------- demo store
def _demo_data(lengths=(3, 2), terminated_last=(True, False), truncated_last=(False, False), actions=None):
    """Episodes of the given lengths; frame f holds state [f]; step s has reward s and action [s]; only
    the flags of each episode's last step are set as given (a demo that stopped without either: the
    recorder's end)."""
    frames = sum(n + 1 for n in lengths)
    step_frame, ep_last, term, trunc = [], [], [], []
    f0 = s0 = 0
    for i, n in enumerate(lengths):
        step_frame += list(range(f0, f0 + n))
        ep_last += [s0 + n - 1] * n
        term += [False] * (n - 1) + [terminated_last[i]]
        trunc += [False] * (n - 1) + [truncated_last[i]]
        f0, s0 = f0 + n + 1, s0 + n
    S = sum(lengths)
    return dict(
        state=torch.arange(frames, dtype=torch.float32)[:, None],
        actions=torch.arange(S, dtype=torch.float32)[:, None] if actions is None else actions,
        rewards=torch.arange(S, dtype=torch.float32),
        terminated=torch.tensor(term),
        truncated=torch.tensor(trunc),
        step_frame=torch.tensor(step_frame),
        ep_last=torch.tensor(ep_last),
    )


def test_demo_store_transitions_and_bootstrapping_at_demo_ends():
    """Episode 0 (steps 0-2, frames 0-3) ends in a success termination, episode 1 (steps 3-4, frames
    4-6) where the recorder stopped. 'always': both ends bootstrap from the episode's last frame;
    'truncation': the success does not, the recorder's end does (it is no real end of the task)."""
    for mode, disc0 in (("always", GAMMA), ("truncation", 0.0)):
        d = replay.DemoReplay(_demo_data(), "cpu", GAMMA, 1, mode)
        b = d.gather(torch.arange(5))
        assert b["obs", "state"].flatten().tolist() == [0, 1, 2, 4, 5]
        assert b["next_obs", "state"].flatten().tolist() == [1, 2, 3, 5, 6]
        assert b["action"].flatten().tolist() == [0, 1, 2, 3, 4]
        assert b["reward"].tolist() == [0, 1, 2, 3, 4]
        assert b["discount"].tolist() == [GAMMA, GAMMA, disc0, GAMMA, GAMMA], mode
    assert (d.num_transitions, d.num_episodes) == (5, 2)


def test_demo_store_n_step_windows_stop_at_the_episode_end():
    d = replay.DemoReplay(_demo_data(), "cpu", GAMMA, 3, "always")
    b = d.gather(torch.tensor([0, 1, 3]))
    # step 0: r0 + g r1 + g^2 r2, then the episode's last frame (3); step 1: r1 + g r2 (window clipped)
    assert b["reward"].tolist() == [0 + GAMMA * 1 + GAMMA**2 * 2, 1 + GAMMA * 2, 3 + GAMMA * 4]
    assert b["discount"].tolist() == [GAMMA**3, GAMMA**2, GAMMA**2]
    assert b["next_obs", "state"].flatten().tolist() == [3, 3, 6]


def _online_buffer(n_envs=2, capacity=40):
    return replay.ReplayBuffer(n_envs, capacity, {"state": ((1,), torch.float32)}, 1, "cpu", 5, GAMMA)


def _fill_online(rb, steps, value=100.0):
    n = rb.N
    for s in range(steps):
        rb.add(
            torch.full((n, 1), value + s),
            torch.full((n, 1), -1.0),
            torch.full((n,), -1.0),
            torch.zeros(n, dtype=torch.bool),
            torch.zeros(n, dtype=torch.bool),
        )


@pytest.mark.parametrize("ratio, batch, n_demo", [(0.5, 64, 32), (0.25, 10, 2), (0.0, 8, 0), (0.9, 7, 6)])
def test_mixed_batches_have_the_exact_ratio_and_mark_the_demo_rows(ratio, batch, n_demo):
    demos = replay.DemoReplay(_demo_data(), "cpu", GAMMA)
    rb = _online_buffer()
    _fill_online(rb, 10)
    b = replay.mixed_sample(rb, demos, batch, ratio)
    assert b.batch_size == torch.Size([batch]) and int(b["demo"].sum()) == n_demo
    assert b["demo"][:n_demo].all() and not b["demo"][n_demo:].any()  # demo rows first
    # demo rows come from the demos (states < 7), online rows from the buffer (>= 100)
    assert (b["obs", "state"][b["demo"]] < 7).all() and (b["obs", "state"][~b["demo"]] >= 100).all()
    assert torch.equal(b["action"][~b["demo"]], torch.full((batch - n_demo, 1), -1.0))


def test_online_data_never_overwrites_the_demo_store():
    demos = replay.DemoReplay(_demo_data(), "cpu", GAMMA)
    before = {k: v.clone() for k, v in demos.frames.items()}, demos.steps.clone()
    rb = _online_buffer(capacity=10)
    _fill_online(rb, 200)  # the online ring wraps many times
    for _ in range(5):
        replay.mixed_sample(rb, demos, 16, 0.5)
    assert all(torch.equal(demos.frames[k], v) for k, v in before[0].items())
    assert (demos.steps == before[1]).all()


# ----------------------------------------------------------------------------- updater schedules
def _updater(**kw):
    args = SimpleNamespace(
        cudagraphs=False,
        compile=False,
        q_lr=1e-3,
        policy_lr=1e-3,
        alpha_lr=1e-3,
        alpha=0.2,
        autotune=True,
        batch_size=16,
        utd=1.0,
        policy_frequency=1,
        target_network_frequency=1,
        tau=0.01,
        learning_starts=0,
        demo_ratio=0.5,
        critic_warmup_steps=0,
        bc_coef=0.0,
        bc_decay_steps=0,
    )
    for k, v in kw.items():
        setattr(args, k, v)
    torch.manual_seed(0)
    actor = Actor(1, 1, 8)
    num_q = kw.get("num_q", 2)
    qnets = QEnsemble(lambda: QNetwork(1, 1, 8), num_q, torch.device("cpu"))
    upd = make_sac_updates(actor, qnets, args, 1, torch.device("cpu"))
    demos = replay.DemoReplay(_demo_data(actions=DEMO_ACTIONS), "cpu", GAMMA)
    rb = _online_buffer()
    _fill_online(rb, 10)
    return SacUpdater(upd, qnets, args, torch.device("cpu"), demos=demos), actor, rb


DEMO_ACTIONS = torch.full((5, 1), 0.6)  # inside the actor's bounds [-1, 1]
DEMO_STATES = torch.tensor([[0.0], [1.0], [2.0], [4.0], [5.0]])  # the frames those steps start from


def test_critic_warmup_takes_no_actor_step_before_it_ends():
    updater, actor, rb = _updater(critic_warmup_steps=5)
    w0 = [p.clone() for p in actor.parameters()]
    q0 = [p.clone() for p in updater.qnets.parameters()]
    updater(rb, 5)  # 5 gradient steps: the warm-up
    assert updater.num_updates == 5 and updater.num_actor_updates == 0 and updater.actor_logs is None
    assert all(torch.equal(a, b) for a, b in zip(w0, actor.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(q0, updater.qnets.parameters()))
    updater(rb, 1)
    assert updater.num_actor_updates == 1
    assert not all(torch.equal(a, b) for a, b in zip(w0, actor.parameters()))


def test_bc_coefficient_anneals_linearly_to_zero_over_the_decay_steps():
    updater, _, rb = _updater(bc_coef=2.0, bc_decay_steps=4)
    seen = []
    for _ in range(6):
        updater(rb, 1)
        seen.append(float(updater.actor_logs["bc_coef"]))
    assert seen == [2.0, 1.5, 1.0, 0.5, 0.0, 0.0]
    constant, _, rb = _updater(bc_coef=0.7)
    constant(rb, 3)
    assert float(constant.actor_logs["bc_coef"]) == pytest.approx(0.7)


def test_bc_term_pulls_the_actor_towards_the_demo_actions():
    """With only the BC term (no Q gradient worth speaking of at a huge coefficient), the deterministic
    action on demo states moves towards the demo actions."""
    updater, actor, rb = _updater(bc_coef=1000.0, policy_lr=1e-2)
    err0 = (actor.deterministic(DEMO_STATES) - DEMO_ACTIONS).pow(2).mean()
    updater(rb, 100)
    err1 = (actor.deterministic(DEMO_STATES) - DEMO_ACTIONS).pow(2).mean()
    assert err1 < 0.25 * err0, (err0, err1)
    assert float(updater.actor_logs["bc_loss"]) > 0


def test_ensemble_of_more_than_two_critics_trains_all_of_them():
    updater, _, rb = _updater(num_q=5)
    q0 = {k: v.clone() for k, v in updater.qnets.params.items()}
    updater(rb, 3)
    for k, v in updater.qnets.params.items():
        assert v.shape[0] == 5
        assert all(not torch.equal(v[i], q0[k][i]) for i in range(5)), k


# ----------------------------------------------------------------------------- pipeline fixtures
@pytest.fixture(scope="module")
def ft(tmp_path_factory):
    """2 PickCube demos as state and as rgb 36x36 (pd_ee_delta_pos, with rewards), and a bc.py
    --policy gaussian checkpoint from each."""
    root = tmp_path_factory.mktemp("finetune")
    demos = root / "demos"
    common = ("--env-id", "PickCube", "--out-dir", str(demos), "--control-mode", "pd_ee_delta_pos", "--num-procs", "1")
    p = run_script("cleanrl_style/collect_demos.py", *common, "--num-demos", "2", "--obs-mode", "state", timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    p = run_script(
        "cleanrl_style/collect_demos.py",
        *common,
        "--convert-only",
        "--obs-mode",
        "rgb",
        "--image-size",
        "36",
        timeout=600,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    mp = demos / "PickCube-v1" / "motionplanning"
    out = dict(
        root=root,
        state=mp / "state" / "trajectory.state.pd_ee_delta_pos.physx_cpu.h5",
        rgb=mp / "rgb36" / "trajectory.rgb.pd_ee_delta_pos.physx_cpu.h5",
    )
    bc_common = ("--env-id", "PickCube", "--policy", "gaussian", "--eval-freq", "0", "--num-eval-episodes", "1")
    bc_common += ("--num-eval-envs", "1", "--max-episode-steps", "5")
    for mode, extra in (("state", ("--total-iters", "50")), ("rgb", ("--total-iters", "4", "--batch-size", "8"))):
        runs = root / f"bc_{mode}"
        p = run_script(
            "cleanrl_style/bc.py",
            *bc_common,
            *("--obs-mode", mode, "--demo-path", str(out[mode]), "--runs-dir", str(runs), *extra),
            timeout=600,
        )
        assert p.returncode == 0, p.stderr[-3000:]
        (run_dir,) = runs.iterdir()
        out[f"bc_{mode}"] = run_dir / "last.pt"
    return out


def test_converted_demos_record_rewards_in_the_env_reward_mode(ft):
    data = load_demos(str(ft["state"]), "state", None, rewards=True)
    assert data["rewards"].shape == data["terminated"].shape == (len(data["actions"]),)
    assert data["rewards"].dtype == torch.float32 and (data["rewards"] <= 1.0).all()  # normalized_dense
    assert data["terminated"][data["ep_last"].unique()].all()  # motion-planning demos end at success
    assert finetune.default_reward_mode("PickCube-v1") == "normalized_dense"


def _fake_env(obs_mode="state", env_id="PickCube-v1", control_mode="pd_ee_delta_pos", image=36, state_dim=None):
    shapes = {"state": (state_dim or 42,)} if obs_mode == "state" else {"rgb": (3, image, image), "state": (29,)}
    return SimpleNamespace(
        env_id=env_id,
        cfg=dict(control_mode=control_mode),
        obs_shapes=shapes,
        action_dim=4,
        state_layout=lambda: _LAYOUT,
    )


_LAYOUT: list = []


@pytest.fixture(scope="module")
def rgb_layout(ft):
    """The state layout of the rgb env (what load_demos needs to assemble pixel-mode state)."""
    from cleanrl_style.lib.envs import make_env

    env = make_env("PickCube", 1, "rgb", image_size=36, control_mode="pd_ee_delta_pos", sim_backend="cpu", seed=0)
    _LAYOUT[:] = env.state_layout()
    shapes = dict(env.obs_shapes)
    env.close()
    return shapes


def _args(**kw):
    return SimpleNamespace(gamma=0.8, n_step=1, bootstrap_at_done="always", **kw)


def test_demo_replay_loads_pixel_demos_as_the_env_sees_them(ft, rgb_layout):
    env = _fake_env("rgb", state_dim=rgb_layout["state"][0])
    env.obs_shapes = rgb_layout
    d = finetune.load_demo_replay(str(ft["rgb"]), env, "rgb", _args(), torch.device("cpu"))
    b = d.sample(4)
    assert b["obs", "rgb"].dtype == torch.uint8 and tuple(b["obs", "rgb"].shape[1:]) == rgb_layout["rgb"]
    assert b["obs", "state"].shape == (4, rgb_layout["state"][0])


@pytest.mark.parametrize(
    "env_kw, mode, needle",
    [
        (dict(env_id="PushCube-v1"), "state", "PickCube-v1 demos"),
        (dict(control_mode="pd_joint_delta_pos"), "state", "control mode"),
        (dict(), "rgb", "obs mode"),
    ],
)
def test_demo_file_that_does_not_fit_the_run_is_one_clear_error(ft, env_kw, mode, needle):
    with pytest.raises(UserError, match=needle):
        finetune.load_demo_replay(str(ft["state"]), _fake_env(mode, **env_kw), mode, _args(), torch.device("cpu"))


def test_pixel_demos_of_another_image_size_are_refused(ft, rgb_layout):
    env = _fake_env("rgb", image=64)
    with pytest.raises(UserError, match="36x36 images, this run renders 64x64"):
        finetune.load_demo_replay(str(ft["rgb"]), env, "rgb", _args(), torch.device("cpu"))


def test_demos_without_rewards_or_in_another_reward_mode_are_refused(ft, tmp_path):
    import shutil

    h5, js = tmp_path / "d.h5", tmp_path / "d.json"
    shutil.copy(ft["state"], h5)
    shutil.copy(ft["state"].with_suffix(".json"), js)
    with h5py.File(h5, "a") as f:
        for k in f:
            del f[k]["rewards"]
    with pytest.raises(UserError, match="records no rewards"):
        finetune.load_demo_replay(str(h5), _fake_env(), "state", _args(), torch.device("cpu"))
    meta = json.loads(js.read_text())
    meta["env_info"]["env_kwargs"]["reward_mode"] = "sparse"
    js.write_text(json.dumps(meta))
    with pytest.raises(UserError, match="'sparse' rewards"):
        finetune.load_demo_replay(str(h5), _fake_env(), "state", _args(), torch.device("cpu"))


# ----------------------------------------------------------------------------- weight transfer
def _spec_of(ckpt):
    e = ckpt["env"]
    return dict(
        env_id=e["env_id"],
        obs_mode=e["obs_mode"],
        control_mode=e["control_mode"],
        obs_shapes=e["obs_shapes"],
        action_dim=e["action_dim"],
    )


def test_bc_to_sac_transfer_gives_the_bc_actions_from_state(ft):
    ckpt = load_checkpoint(ft["bc_state"])
    spec = finetune.init_spec(str(ft["bc_state"]), "sac", _spec_of(ckpt))
    obs_dim = ckpt["env"]["obs_shapes"]["state"][0]
    policy = sac.StatePolicy(spec["state_dim"], 4, spec["hidden_dim"], state_in_dim=obs_dim)
    assert "BC checkpoint" in finetune.load_init(spec, policy)
    bc_policy = bc.load_policy(ckpt, torch.device("cpu"))
    obs = load_demos(str(ft["state"]), "state", None)["state"]
    torch.testing.assert_close(policy.deterministic(obs), bc_policy(obs), rtol=0, atol=1e-6)


def test_bc_to_sac_rgb_transfer_gives_the_bc_actions_from_pixels(ft, rgb_layout):
    ckpt = load_checkpoint(ft["bc_rgb"])
    spec = finetune.init_spec(str(ft["bc_rgb"]), "sac_rgb", _spec_of(ckpt))
    policy = sac_rgb.PixelPolicy(
        3, 36, 36, spec["state_dim"], 4, spec["feature_dim"], spec["hidden_dim"], state_in_dim=rgb_layout["state"][0]
    )
    assert finetune.load_init(spec, policy).startswith("image encoder")
    bc_policy = bc.load_policy(ckpt, torch.device("cpu"))
    data = load_demos(str(ft["rgb"]), "rgb", None, _LAYOUT)
    obs = {"rgb": data["rgb"][:6], "state": data["state"][:6]}
    torch.testing.assert_close(policy.deterministic(obs), bc_policy(obs), rtol=0, atol=1e-6)


def test_bc_checkpoints_that_cannot_start_an_actor_are_refused(ft, tmp_path):
    spec = _spec_of(load_checkpoint(ft["bc_state"]))
    for change, needle in (
        (dict(head="chunk"), "bc.py --policy gaussian"),
        (dict(obs_horizon=2), "--obs-horizon 2"),
    ):
        bad = load_checkpoint(ft["bc_state"])
        bad["model_kwargs"]["model"].update(change)
        torch.save(bad, tmp_path / "bad.pt")
        with pytest.raises(UserError, match=needle):
            finetune.init_spec(str(tmp_path / "bad.pt"), "sac", spec)
    with pytest.raises(UserError, match="control mode"):
        finetune.init_spec(str(ft["bc_state"]), "sac", dict(spec, control_mode="pd_joint_delta_pos"))
    with pytest.raises(UserError, match="obs mode"):
        finetune.init_spec(str(ft["bc_state"]), "sac_rgb", dict(spec, obs_mode="rgb"))
    ppo_like = load_checkpoint(ft["bc_state"])
    ppo_like["script"] = "ppo"
    torch.save(ppo_like, tmp_path / "ppo.pt")
    with pytest.raises(UserError, match="written by ppo.py; sac.py starts from bc.py or sac.py"):
        finetune.init_spec(str(tmp_path / "ppo.pt"), "sac", spec)
    # weights that do not fit the network (another hidden size than the architecture says)
    wrong = finetune.init_spec(str(ft["bc_state"]), "sac", spec)
    policy = sac.StatePolicy(wrong["state_dim"], 4, 16, state_in_dim=spec["obs_shapes"]["state"][0])
    with pytest.raises(UserError, match="the actor does not fit"):
        finetune.load_init(wrong, policy)


@pytest.mark.parametrize(
    "flags, needle",
    [
        (("--demo-ratio", "1.0"), "--demo-ratio must be in [0, 1)"),
        (("--demo-ratio", "-0.1"), "--demo-ratio must be in [0, 1)"),
        (("--bc-coef", "1.0"), "--bc-coef needs --demos"),
        (("--num-q", "1"), "--num-q must be >= 2"),
        (("--critic-warmup-steps", "-1"), "--critic-warmup-steps must be >= 0"),
        (("--fixed-log-std", "-3"), "--fixed-log-std needs --no-autotune"),
        (("--alpha", "0"), "--alpha 0 needs --no-autotune"),
        (("--alpha", "-0.1", "--no-autotune"), "--alpha must be >= 0"),
        (("--fixed-log-std", "5", "--no-autotune"), "--fixed-log-std must be in (-5.0, 2.0)"),
    ],
)
def test_bad_finetune_flags_are_one_error_line(flags, needle):
    p = run_script("cleanrl_style/sac.py", "--sim-backend", "cpu", *flags)
    assert p.returncode == 2
    assert_one_error_line(p.stderr, needle)


# ----------------------------------------------------------------------------- tiny runs
def _tiny(script, ft, mode, runs, *extra):
    flags = [
        *("--env-id", "PickCube", "--control-mode", "pd_ee_delta_pos", "--num-envs", "1", "--num-eval-envs", "1"),
        *("--num-eval-episodes", "1", "--max-episode-steps", "5", "--total-timesteps", "24", "--eval-freq", "12"),
        *("--learning-starts", "6", "--batch-size", "8", "--buffer-size", "100", "--log-freq", "12"),
        *("--demos", str(ft[mode]), "--init-from", str(ft[f"bc_{mode}"]), "--critic-warmup-steps", "2"),
        *("--bc-coef", "1", "--bc-decay-steps", "4", "--num-q", "3", "--runs-dir", str(runs), *extra),
    ]
    return run_script(f"cleanrl_style/{script}.py", *flags, timeout=600)


@pytest.mark.parametrize(
    "script, mode, extra",
    [("sac", "state", ()), ("sac_rgb", "rgb", ("--image-size", "36", "--fixed-log-std", "-3", "--no-autotune"))],
)
def test_tiny_finetune_run_writes_checkpoints_that_evaluate_reloads(ft, tmp_path, script, mode, extra):
    runs = tmp_path / "runs"
    p = _tiny(script, ft, mode, runs, *extra)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    assert "loaded the" in p.stdout and "BC checkpoint" in p.stdout and "--demos" in p.stdout
    (run_dir,) = runs.iterdir()
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    evals = [r.split(",") for r in rows if ",eval/success_once," in r]
    assert evals[0][0] == "0"  # the loaded BC policy is evaluated before any update
    assert any(",losses/bc_loss," in r for r in rows)
    ckpt = load_checkpoint(run_dir / "last.pt")
    assert ckpt["train_state"]["num_actor_updates"] > 0
    assert ckpt["args"]["num_q"] == 3 and len(ckpt["train_state"]["qnets"]["params"]["net.0.weight"]) == 3
    if "--fixed-log-std" in extra:  # the trained actor's std is still the one it was given
        w, b = ckpt["state_dict"]["actor.net.6.weight"], ckpt["state_dict"]["actor.net.6.bias"]
        a = w.shape[0] // 2
        assert torch.count_nonzero(w[a:]) == 0 and torch.allclose(b[a:], b[a:][0].expand(a))
    e = run_script("cleanrl_style/evaluate.py", "--checkpoint", str(run_dir / "last.pt"), "--num-episodes", "1")
    assert e.returncode == 0, e.stderr[-2000:]
    # a fine-tuned checkpoint starts another run (policy, critics and temperature)
    again = tmp_path / "again"
    flags = ["--init-from", str(run_dir / "last.pt"), "--demos", str(ft[mode]), "--num-q", "3"]
    q = run_script(
        f"cleanrl_style/{script}.py",
        *("--env-id", "PickCube", "--control-mode", "pd_ee_delta_pos", "--num-envs", "1", "--num-eval-envs", "1"),
        *("--num-eval-episodes", "1", "--max-episode-steps", "5", "--total-timesteps", "6", "--eval-freq", "0"),
        *("--learning-starts", "2", "--batch-size", "4", "--buffer-size", "50", "--runs-dir", str(again)),
        *flags,
        *extra,
        timeout=600,
    )
    assert q.returncode == 0, q.stderr[-3000:]
    assert "policy of a SAC checkpoint with its critics and temperature" in q.stdout


@pytest.mark.parametrize("name", ["pickcube_rgb64_gpu", "pickcube_rgb64_residual_gpu", "peginsertionside_rgb64_gpu"])
def test_finetune_gpu_configs_parse_and_name_their_tier(name):
    import re
    import shlex

    import tyro

    from cleanrl_style.lib.runs import REPO_ROOT

    text = (REPO_ROOT / "configs" / "finetune" / f"{name}.args").read_text()
    assert re.search(r"^# tier: gpu$", text, re.M) and "NOT YET MEASURED" in text
    flags = [tok for line in text.splitlines() if not line.strip().startswith("#") for tok in shlex.split(line)]
    args = tyro.cli(sac_rgb.Args, args=flags)
    if name.startswith("peginsertionside"):  # the stretch: the gripper must rotate, the demos are ~180 steps
        assert (args.env_id, args.control_mode, args.max_episode_steps) == ("PegInsertionSide", "pd_ee_delta_pose", 300)
        assert args.demos.endswith("trajectory.rgb.pd_ee_delta_pose.physx_cpu.h5")
    else:
        assert (args.env_id, args.control_mode, args.max_episode_steps) == ("PickCube", "pd_ee_delta_pos", 100)
    assert (args.num_envs, args.num_q) == (512, 10)
    if name != "pickcube_rgb64_residual_gpu":  # the recipe: the BC start comes on the command line
        assert args.critic_encoder == "separate" and args.demos and args.bc_coef == 20
        assert (args.fixed_log_std, args.alpha, args.autotune, args.policy_lr) == (-3, 0, False, 1e-4)
    else:  # the residual: its base comes on the command line; the CPU row's flags
        assert (args.residual_scale, args.residual_penalty, args.fixed_log_std) == (0.2, 1.0, -1.5)
        assert not args.demos and not args.partial_reset and args.alpha == 0 and not args.autotune


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without CUDA")
def test_peg_gpu_pipeline_refuses_to_start_without_cuda(tmp_path):
    import subprocess

    from cleanrl_style.lib.runs import REPO_ROOT

    out = tmp_path / "out"
    p = subprocess.run(
        ["bash", str(REPO_ROOT / "configs" / "finetune" / "peginsertionside_rgb64_gpu.sh"), str(out)],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "ALLOW_CPU"},
    )
    assert p.returncode == 2
    assert_one_error_line(p.stderr, "CUDA", "ALLOW_CPU=1")
    assert not out.exists()


def test_finetune_cpu_pipeline_refuses_an_unknown_row_and_bad_sizes(tmp_path):
    import subprocess

    from cleanrl_style.lib.runs import REPO_ROOT

    script = str(REPO_ROOT / "configs" / "finetune" / "pickcube_rgb64_cpu.sh")
    out = tmp_path / "out"
    for argv, env, needle in (
        (
            ["1", "bogus"],
            {},
            "ROW must be bc_init_demos, bc_init, demos, scratch, residual, bc_init_demos_frozen or "
            "bc_init_demos_unfreeze (got 'bogus')",
        ),
        (["x"], {}, "SEED must be a non-negative integer (got 'x')"),
        (["1"], {"STEPS": "30k"}, "STEPS must be a non-negative integer (got '30k')"),
        (["1"], {"NUM_TEST": "0"}, "NUM_TEST must be a positive integer (got '0')"),
        (["1"], {"EPISODE_STEPS": "0"}, "EPISODE_STEPS must be a positive integer (got '0')"),
    ):
        p = subprocess.run(
            ["bash", script, str(out), *argv], capture_output=True, text=True, env=dict(os.environ, **env)
        )
        assert p.returncode == 2 and p.stdout == ""
        assert_one_error_line(p.stderr, needle)
        assert not out.exists()  # nothing ran, nothing was made


def test_separate_critic_encoder_leaves_the_policy_encoder_as_loaded():
    """--critic-encoder separate: the critic step trains the critics' copy of the encoder; the policy's
    encoder (what a BC-initialised actor acts on) never changes, and the actor still learns."""
    import copy

    from tensordict import TensorDict

    torch.manual_seed(0)
    policy = sac_rgb.PixelPolicy(3, 36, 36, 2, 2, feature_dim=8, hidden_dim=8, state_in_dim=3)
    critic_enc = copy.deepcopy(policy.encoder)
    qnets = QEnsemble(lambda: QNetwork(policy.encoder.out_dim, 2, 8), 2, torch.device("cpu"))
    args = SimpleNamespace(
        cudagraphs=False, compile=False, q_lr=1e-3, policy_lr=1e-3, alpha=0.2, alpha_lr=1e-3, autotune=True
    )
    upd = make_sac_updates(
        policy.actor, qnets, args, 2, torch.device("cpu"), encoder=critic_enc, actor_encoder=policy.encoder
    )

    def obs():
        rgb = torch.randint(0, 256, (8, 3, 36, 36), dtype=torch.uint8)
        return TensorDict(rgb=rgb, state=torch.randn(8, 3), batch_size=[8])

    batch = TensorDict(
        obs=obs(),
        next_obs=obs(),
        action=torch.rand(8, 2) * 2 - 1,
        reward=torch.randn(8),
        discount=torch.full((8,), 0.8),
        batch_size=[8],
    )
    pol0 = {k: v.clone() for k, v in policy.state_dict().items()}
    crit0 = [p.clone() for p in critic_enc.parameters()]
    out = upd.critic(batch)
    assert any(not torch.equal(a, b) for a, b in zip(crit0, critic_enc.parameters()))
    torch.testing.assert_close(out["actor_feat"], policy.encoder(batch["obs", "rgb"], batch["obs", "state"]))
    upd.actor(out)
    after = policy.state_dict()
    assert all(torch.equal(pol0[k], after[k]) for k in pol0 if k.startswith("encoder."))
    assert any(not torch.equal(pol0[k], after[k]) for k in pol0 if k.startswith("actor.net"))


def test_init_log_std_sets_the_loaded_actors_std_everywhere_and_keeps_its_mean(ft):
    ckpt = load_checkpoint(ft["bc_state"])
    spec = finetune.init_spec(str(ft["bc_state"]), "sac", _spec_of(ckpt))
    obs_dim = ckpt["env"]["obs_shapes"]["state"][0]
    plain = sac.StatePolicy(spec["state_dim"], 4, spec["hidden_dim"], state_in_dim=obs_dim)
    finetune.load_init(spec, plain)
    policy = sac.StatePolicy(spec["state_dim"], 4, spec["hidden_dim"], state_in_dim=obs_dim)
    assert "log-std set to -3" in finetune.load_init(spec, policy, log_std=-3.0)
    obs = load_demos(str(ft["state"]), "state", None)["state"][:10]
    mean, log_std = policy.actor(policy.state_norm(obs))
    torch.testing.assert_close(log_std, torch.full_like(log_std, -3.0))
    torch.testing.assert_close(policy.deterministic(obs), plain.deterministic(obs))  # the BC actions stay
    with pytest.raises(UserError, match="--init-log-std must be in"):
        policy.actor.set_log_std(3.0)


def test_fixed_log_std_holds_the_std_through_actor_steps_while_the_mean_trains():
    updater, actor, rb = _updater(autotune=False)
    actor.fix_log_std(-3.0)
    actor.fix_log_std(-3.0)  # idempotent: one set of hooks
    x = torch.linspace(-2, 2, 7)[:, None]
    mean0 = actor(x)[0].clone()
    updater(rb, 20)
    assert updater.num_actor_updates == 20
    mean, log_std = actor(x)
    torch.testing.assert_close(log_std, torch.full_like(log_std, -3.0))
    assert not torch.allclose(mean, mean0)
    assert len(actor._log_std_hooks) == 2


def test_alpha_zero_drops_the_entropy_terms():
    """--alpha 0 --no-autotune: the actor loss is -Q alone and the critic target has no entropy bonus, so a
    policy whose log-probabilities are huge (saturated actions under a small fixed std) costs nothing."""
    updater, actor, rb = _updater(autotune=False, alpha=0.0)
    assert float(updater.upd.alpha) == 0.0
    actor.fix_log_std(-4.5)
    updater(rb, 10)
    logs = updater.actor_logs
    assert float(logs["alpha"]) == 0.0 and torch.isfinite(logs["actor_loss"])
    assert all(torch.isfinite(p).all() for p in updater.qnets.parameters())


def test_target_entropy_is_what_the_temperature_steers_to():
    """alpha_loss = -alpha * (log_prob + target): with a target far above the policy's entropy the
    temperature rises, far below it falls."""
    moves = {}
    for target in (50.0, -50.0):
        updater, _, rb = _updater(target_entropy=target)
        a0 = float(updater.upd.alpha)
        updater(rb, 5)
        moves[target] = float(updater.upd.alpha) - a0
    assert moves[50.0] > 0 > moves[-50.0]


def test_init_log_std_without_init_from_is_one_error_line():
    p = run_script("cleanrl_style/sac.py", "--sim-backend", "cpu", "--init-log-std", "-3")
    assert p.returncode == 2
    assert_one_error_line(p.stderr, "--init-log-std", "--init-from")


def test_explore_noise_bench_appends_one_row_per_setting(ft, tmp_path):
    """bench/explore_noise.py: the BC start loaded as --init-from does, evaluated with sampled actions."""
    import csv

    from bench import explore_noise

    out = tmp_path / "explore.csv"
    rows = explore_noise.main(
        explore_noise.Args(
            checkpoint=str(ft["bc_rgb"]), log_std=("none", "-3"), noise_scale=(0.0, 1.0), num_episodes=1, out=str(out)
        )
    )
    assert [(r["log_std"], r["noise_scale"]) for r in rows] == [("none", 0.0), ("none", 1.0), (-3.0, 0.0), (-3.0, 1.0)]
    assert rows[2]["mean_std"] == pytest.approx(0.0498, abs=1e-3)  # exp(-3)
    with open(out, newline="") as f:
        written = list(csv.DictReader(f))
    assert len(written) == 4 and set(explore_noise.COLUMNS) <= set(written[0])
    assert all(r["episodes"] == "1" for r in written)


@pytest.mark.slow
def test_the_gpu_checks_finetune_chain_runs_here_on_the_cpu_sim(tmp_path):
    """make gpu-check's finetune steps (bench/gpu_check.finetune_commands), with only the GPU-specific sizes
    changed (cpu sim, 2 envs, a few steps): the flag combinations of the recipe and of the residual work
    together, each step finds the one before it (`@latest:`), and the check's verdict is pass."""
    import subprocess
    import sys

    from cleanrl_style.lib.runs import REPO_ROOT

    sys.path.insert(0, str(REPO_ROOT))
    from bench import gpu_check

    smaller = {
        "--sim-backend": lambda script, v: "cpu" if script.endswith("sac_rgb.py") else v,
        "--num-envs": lambda s, v: "2",
        "--total-timesteps": lambda s, v: "24",
        "--learning-starts": lambda s, v: "8",
        "--buffer-size": lambda s, v: "200",
        "--log-freq": lambda s, v: "12",
        "--critic-warmup-steps": lambda s, v: "2",
        "--num-q": lambda s, v: "2",
        "--batch-size": lambda s, v: "16",
        "--total-iters": lambda s, v: "4",
        "--eval-freq": lambda s, v: "0" if s.endswith("sac_rgb.py") else "2",
        "--num-eval-episodes": lambda s, v: "1",
        "--num-eval-envs": lambda s, v: "1",
        "--max-episode-steps": lambda s, v: "12",  # the sac_rgb.py runs' evaluations: 12 steps, not 100
    }
    (check,) = [c for c in gpu_check.build_checks(sys.executable, str(tmp_path), "results") if c.name == "finetune"]
    assert [c[1] for c in check.commands] == ["cleanrl_style/collect_demos.py"] + ["cleanrl_style/bc.py"] * 2 + [
        "cleanrl_style/sac_rgb.py"
    ] * 2
    for cmd in check.commands:
        cmd = list(gpu_check.resolve_latest(cmd))
        for i in range(2, len(cmd) - 1):
            if cmd[i] in smaller:
                cmd[i + 1] = smaller[cmd[i]](cmd[1], cmd[i + 1])
        p = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
        assert p.returncode == 0, (cmd, p.stdout[-2000:], p.stderr[-3000:])
    out = tmp_path / "finetune"
    status, detail = gpu_check.judge(check, out, [gpu_check.Step(c, 0, tmp_path / "x") for c in check.commands])
    assert status == "pass", detail
    recipe = load_checkpoint(next((out / "rl" / "recipe").glob("*/last.pt")))
    assert recipe["args"]["init_from"].endswith("last.pt") and recipe["args"]["demos"]
    residual = load_checkpoint(next((out / "rl" / "residual").glob("*/last.pt")))
    assert "residual_base" in residual["extra"]


def _mtimes(paths) -> dict:
    """Modification times (ns) by path: equal before and after a command when it rewrote none of them."""
    return {q: q.stat().st_mtime_ns for q in paths}


@pytest.mark.slow
def test_peg_gpu_pipeline_runs_end_to_end_at_smoke_size_and_resumes(tmp_path):
    """configs/finetune/peginsertionside_rgb64_gpu.sh with ALLOW_CPU=1 and its header's smoke sizes: 2 planned
    PegInsertionSide demos converted to rgb 64 + pd_ee_delta_pose, a gaussian BC start, the GPU config's
    recipe flags fine-tuning it from those demos, both policies evaluated on the held-out seeds; repeating
    the command redoes nothing and keeps the timings of the run that did the work."""
    import subprocess

    import yaml

    from cleanrl_style.lib.runs import REPO_ROOT

    out = tmp_path / "peg"
    env = dict(os.environ, ALLOW_CPU="1", NUM_DEMOS="2", BC_ITERS="4", BC_EVAL="1", NUM_TEST="1", MAX_STEPS="5")
    env["RL_EXTRA"] = (
        "--num-envs 1 --num-eval-envs 1 --total-timesteps 6 --eval-freq 0 --num-eval-episodes 1 "
        "--learning-starts 2 --batch-size 4 --buffer-size 50 --num-q 2 --critic-warmup-steps 2"
    )
    cmd = ["bash", str(REPO_ROOT / "configs" / "finetune" / "peginsertionside_rgb64_gpu.sh"), str(out), "3"]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1500)
    assert p.returncode == 0, p.stderr[-3000:]
    demo = out / "demos/PegInsertionSide-v1/motionplanning/rgb64/trajectory.rgb.pd_ee_delta_pose.physx_cpu.h5"
    with h5py.File(demo) as f:
        assert f["traj_0/actions"].shape[1] == 7  # pd_ee_delta_pose: 6 + gripper
        assert f["traj_0/obs/sensor_data/hand_camera/rgb"].shape[1:] == (64, 64, 3)
    (bc_run,) = (out / "bc/seed3").iterdir()
    (rl_run,) = (out / "rl/bc_init_demos/seed3").iterdir()
    cfg = yaml.safe_load((rl_run / "config.yaml").read_text())["args"]
    assert cfg["env_id"] == "PegInsertionSide-v1" and cfg["control_mode"] == "pd_ee_delta_pose"
    assert cfg["init_from"] == str(bc_run / "last.pt") and cfg["demos"] == str(demo)
    assert (cfg["max_episode_steps"], cfg["seed"], cfg["bc_coef"], cfg["critic_encoder"]) == (5, 3, 20, "separate")
    for run in (bc_run, rl_run):
        ev = json.loads((run / "eval_last_seed5000000.json").read_text())
        assert (ev["episodes"], ev["max_episode_steps"], ev["env_id"]) == (1, 5, "PegInsertionSide-v1")
    timings = json.loads((out / "timings_bc_init_demos_seed3.json").read_text())
    assert timings["run_dir"] == str(rl_run) and timings["total_s"] >= timings["rl_s"] >= 0
    done = [bc_run / "last.pt", rl_run / "last.pt", demo, out / "timings_bc_init_demos_seed3.json"]
    done += [run / "eval_last_seed5000000.json" for run in (bc_run, rl_run)]
    before = _mtimes(done)
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "is finished" in again.stdout and "every stage was done already" in again.stdout
    assert _mtimes(before) == before


@pytest.mark.slow
def test_pickcube_cpu_pipeline_runs_end_to_end_at_smoke_size_and_resumes(tmp_path):
    """configs/finetune/pickcube_rgb64_cpu.sh, row residual (the default, the one that trains both BC
    policies), at smoke sizes: 2 planned demos converted to rgb 64 + pd_ee_delta_pos with rewards, the
    gaussian and the chunking BC policies, the residual SAC run on the frozen chunking one, and both the
    fine-tuned policy and its base evaluated on the held-out seeds. A BC run killed after its last
    checkpoint is resumed, not retrained; a repeat that finds everything done changes no file."""
    import subprocess

    import yaml

    from cleanrl_style.lib.runs import REPO_ROOT

    out = tmp_path / "ft"
    env = dict(os.environ, NUM_DEMOS="2", STEPS="12", BC_ITERS="4", BC_EVAL="1", RL_EVAL="1", NUM_TEST="1")
    env.update(EPISODE_STEPS="12")  # the RL run's and the test evaluations' episodes (100 in the real runs)
    cmd = ["bash", str(REPO_ROOT / "configs" / "finetune" / "pickcube_rgb64_cpu.sh"), str(out), "2"]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1500)
    assert p.returncode == 0, p.stderr[-3000:]
    demo = out / "demos/PickCube-v1/motionplanning/rgb64/trajectory.rgb.pd_ee_delta_pos.physx_cpu.h5"
    with h5py.File(demo) as f:
        assert f["traj_0/actions"].shape[1] == 4  # pd_ee_delta_pos: 3 + gripper
        assert f["traj_0/obs/sensor_data/base_camera/rgb"].shape[1:] == (64, 64, 3) and "rewards" in f["traj_0"]
    (gauss,) = (out / "bc/seed2").iterdir()
    (chunk,) = (out / "bc_chunk/seed2").iterdir()
    (rl_run,) = (out / "rl/residual/seed2").iterdir()
    assert load_checkpoint(gauss / "last.pt")["args"]["policy"] == "gaussian"
    assert load_checkpoint(chunk / "last.pt")["args"]["policy"] == "chunk"
    cfg = yaml.safe_load((rl_run / "config.yaml").read_text())["args"]
    assert cfg["residual_of"] == str(chunk / "last.pt") and cfg["init_from"] is None and cfg["demos"] is None
    assert (cfg["total_timesteps"], cfg["seed"], cfg["residual_penalty"], cfg["num_envs"]) == (12, 2, 1.0, 2)
    for run in (chunk, rl_run):  # the fine-tuned policy and the row's start, on the held-out seeds
        ev = json.loads((run / "eval_last_seed5000000.json").read_text())
        assert (ev["episodes"], ev["max_episode_steps"], ev["env_id"]) == (1, 12, "PickCube-v1")
    timings = json.loads((out / "timings_residual_seed2.json").read_text())
    assert timings["run_dir"] == str(rl_run) and timings["total_s"] >= timings["rl_s"] >= 0

    (chunk / "final_eval.json").unlink()  # as if killed after its last checkpoint
    kept = [gauss / "last.pt", rl_run / "last.pt", demo, rl_run / "eval_last_seed5000000.json"]
    before = _mtimes(kept)
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "(resumed at step 4)" in again.stdout and (chunk / "final_eval.json").is_file()
    assert _mtimes(before) == before

    done = [*kept, chunk / "last.pt", chunk / "eval_last_seed5000000.json", out / "timings_residual_seed2.json"]
    before = _mtimes(done)
    third = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert third.returncode == 0, third.stderr[-3000:]
    assert "every stage was done already" in third.stdout
    assert _mtimes(before) == before
