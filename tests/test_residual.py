"""Residual RL on a frozen base policy (sac_rgb.py --residual-of, lib/residual.py): before any update the
policy is its base, action for action (stateful chunking base included); a base that does not fit the
run is one clear error; the flags that cannot go with it are refused; a tiny CPU run's first evaluation
is the base's own, and its checkpoint carries the base so that evaluate.py reloads the whole policy."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from conftest import REPO_ROOT, assert_one_error_line, run_script

from cleanrl_style import sac_rgb
from cleanrl_style.lib import residual
from cleanrl_style.lib.checkpoints import load_checkpoint
from cleanrl_style.lib.runs import UserError

# a bc.py action-chunking policy from 36x36 RGB on PickCube (pd_ee_delta_pos, chunk 4, temporal ensembling)
BASE = REPO_ROOT / "tests" / "fixtures" / "old_checkpoints" / "bc_chunk_rgb_aux.pt"
STATE_DIM, ACTION_DIM = 29, 4


def _env(**kw):
    spec = dict(env_id="PickCube-v1", obs_shapes={"rgb": (3, 36, 36), "state": (STATE_DIM,)}, action_dim=ACTION_DIM)
    spec.update(kw)
    return SimpleNamespace(**spec)


def _obs(n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return dict(
        rgb=torch.randint(0, 256, (n, 3, 36, 36), generator=g, dtype=torch.uint8),
        state=torch.randn(n, STATE_DIM, generator=g),
    )


def test_a_fresh_residual_policy_acts_exactly_as_its_base():
    """Zero-initialised correction: the same actions as the base over several steps (the chunking base
    keeps its own history in each copy) and after a reset."""
    dev = torch.device("cpu")
    base, base_ckpt = residual.load_base(str(BASE), _env(), "pd_ee_delta_pos", dev)
    reference = residual.base_from_checkpoint(base_ckpt, dev)
    learner = sac_rgb.PixelPolicy(3, 36, 36, STATE_DIM + ACTION_DIM, ACTION_DIM, 16, 16, STATE_DIM + ACTION_DIM)
    bound = torch.full((ACTION_DIM,), 0.2)
    learner.actor.set_action_bounds(-bound, bound)
    learner.actor.zero_mean()
    low, high = -torch.ones(ACTION_DIM), torch.ones(ACTION_DIM)
    policy = residual.ResidualPolicy(base, learner.deterministic, low, high)
    for episode in range(2):
        policy.reset()
        reference.reset()
        for t in range(4):
            obs = _obs(seed=10 * episode + t)
            want = reference(obs).clamp(-1, 1)
            assert torch.equal(policy(obs), want), (episode, t)
    # the learner sees the base action at the end of its state
    obs = _obs()
    aug = residual.augment(obs, torch.full((3, ACTION_DIM), 0.5))
    assert aug["state"].shape == (3, STATE_DIM + ACTION_DIM) and torch.equal(aug["state"][:, :STATE_DIM], obs["state"])
    assert (aug["state"][:, STATE_DIM:] == 0.5).all() and torch.equal(aug["rgb"], obs["rgb"])
    # a trained (non-zero) correction moves the action, inside the env's bounds
    with torch.no_grad():
        learner.actor.net[-1].bias[:ACTION_DIM].fill_(5.0)  # tanh(5) * 0.2 ~ +0.2 on every dim
    policy.reset()
    reference.reset()
    obs = _obs(seed=99)
    moved, ref = policy(obs), reference(obs)
    assert torch.allclose(moved, (ref + 0.2 * torch.tanh(torch.tensor(5.0))).clamp(-1, 1), atol=1e-6)


def test_combine_clips_to_the_env_bounds():
    low, high = torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 0.5])
    got = residual.combine(torch.tensor([[0.9, 0.4]]), torch.tensor([[0.2, -0.6]]), low, high)
    assert torch.equal(got, torch.tensor([[1.0, 0.0]]))


@pytest.mark.parametrize(
    "env_kw, control, needle",
    [
        (dict(env_id="PushCube-v1"), "pd_ee_delta_pos", "trained on PickCube-v1, this run trains PushCube-v1"),
        (dict(), "pd_joint_delta_pos", "control mode 'pd_ee_delta_pos'"),
        (dict(obs_shapes={"rgb": (3, 64, 64), "state": (STATE_DIM,)}), "pd_ee_delta_pos", "checkpoint/env mismatch"),
    ],
)
def test_a_base_that_does_not_fit_the_run_is_one_clear_error(env_kw, control, needle):
    with pytest.raises(UserError, match=needle):
        residual.load_base(str(BASE), _env(**env_kw), control, torch.device("cpu"))


def test_a_residual_checkpoint_is_refused_as_a_base(tmp_path):
    ckpt = load_checkpoint(BASE)
    ckpt["extra"] = {residual.CKPT_KEY: {"script": "bc"}}
    torch.save(ckpt, tmp_path / "res.pt")
    with pytest.raises(UserError, match="itself a residual policy"):
        residual.load_base(str(tmp_path / "res.pt"), _env(), "pd_ee_delta_pos", torch.device("cpu"))
    with pytest.raises(UserError, match="checkpoint not found"):
        residual.load_base(str(tmp_path / "missing.pt"), _env(), "pd_ee_delta_pos", torch.device("cpu"))


def test_episodes_must_end_together_for_a_stateful_base():
    assert residual.check_episodes_end_together(torch.tensor([True, True])) is True
    assert residual.check_episodes_end_together(torch.tensor([False, False])) is False
    with pytest.raises(UserError, match="--no-partial-reset"):
        residual.check_episodes_end_together(torch.tensor([True, False]))


@pytest.mark.parametrize(
    "flags, needle",
    [
        (("--init-from", "x.pt"), "--residual-of learns a correction from scratch: drop --init-from"),
        (("--demos", "x.h5"), "drop --demos"),
        (("--partial-reset",), "--residual-of needs --no-partial-reset"),
        (("--no-include-state",), "--residual-of needs --include-state"),
        (("--residual-scale", "0"), "--residual-scale must be > 0"),
        (("--residual-penalty", "-1"), "--residual-penalty must be >= 0"),
    ],
)
def test_flags_that_cannot_go_with_residual_of_are_one_error_line(flags, needle):
    p = run_script("cleanrl_style/sac_rgb.py", "--sim-backend", "cpu", "--residual-of", str(BASE), *flags)
    assert p.returncode == 2
    assert_one_error_line(p.stderr, needle)


def test_residual_penalty_without_residual_of_is_one_error_line():
    p = run_script("cleanrl_style/sac_rgb.py", "--sim-backend", "cpu", "--residual-penalty", "1")
    assert p.returncode == 2
    assert_one_error_line(p.stderr, "--residual-penalty weighs the correction of --residual-of")


def test_tiny_residual_run_starts_at_its_base_and_evaluate_reloads_it(tmp_path):
    runs = tmp_path / "runs"
    flags = [
        *("--env-id", "PickCube", "--control-mode", "pd_ee_delta_pos", "--num-envs", "1", "--num-eval-envs", "1"),
        *("--num-eval-episodes", "1", "--max-episode-steps", "5", "--total-timesteps", "24", "--eval-freq", "12"),
        *("--learning-starts", "6", "--batch-size", "8", "--buffer-size", "100", "--log-freq", "12"),
        *("--image-size", "36", "--critic-warmup-steps", "2", "--residual-of", str(BASE), "--runs-dir", str(runs)),
        *("--residual-penalty", "1"),
    ]
    p = run_script("cleanrl_style/sac_rgb.py", *flags, timeout=600)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    assert "--residual-of" in p.stdout and "a bc.py policy, frozen" in p.stdout
    (run_dir,) = runs.iterdir()
    rows = [r.split(",") for r in (run_dir / "metrics.csv").read_text().splitlines()]
    first = {r[2]: float(r[3]) for r in rows if r[0] == "0" and r[2].startswith("eval/")}
    assert any(r[2] == "losses/residual_l2" for r in rows)
    # the step-0 evaluation (seeds seed + 1e6) is the base policy's own episode
    e = run_script(
        *("cleanrl_style/evaluate.py", "--checkpoint", str(BASE), "--num-episodes", "1", "--seed", "1000001"),
        *("--out-dir", str(tmp_path)),
    )
    assert e.returncode == 0, e.stderr[-2000:]
    base_eval = json.loads((tmp_path / "eval_bc_chunk_rgb_aux_seed1000001.json").read_text())
    assert first["eval/return"] == pytest.approx(base_eval["return"], abs=1e-4)
    ckpt = load_checkpoint(run_dir / "last.pt")
    assert ckpt["extra"][residual.CKPT_KEY]["script"] == "bc" and "train_state" not in ckpt["extra"][residual.CKPT_KEY]
    assert ckpt["model_kwargs"]["state_in_dim"] == STATE_DIM + ACTION_DIM
    assert torch.allclose(ckpt["state_dict"]["actor.action_scale"], torch.full((ACTION_DIM,), 0.2))
    assert ckpt["train_state"]["num_actor_updates"] > 0
    e = run_script("cleanrl_style/evaluate.py", "--checkpoint", str(run_dir / "last.pt"), "--num-episodes", "1")
    assert e.returncode == 0, e.stderr[-2000:]
    policy = sac_rgb.load_policy(ckpt, torch.device("cpu"))
    assert isinstance(policy, residual.ResidualPolicy)
    assert policy(_obs(n=2)).shape == (2, ACTION_DIM)


def test_residual_penalty_shrinks_a_correction_towards_zero():
    """--residual-penalty: with only the penalty worth speaking of, actor steps pull a saturated correction
    back towards zero on every row; its logged size is in units of the bound."""
    from tensordict import TensorDict

    from cleanrl_style.lib.nets import Actor, QEnsemble, QNetwork
    from cleanrl_style.lib.sac_update import make_sac_updates

    torch.manual_seed(0)
    actor = Actor(1, 1, 8)
    actor.set_action_bounds(torch.tensor([-0.2]), torch.tensor([0.2]))
    with torch.no_grad():
        actor.net[-1].bias[:1].fill_(3.0)  # tanh(3) * 0.2 ~ 0.199: nearly the bound
    qnets = QEnsemble(lambda: QNetwork(1, 1, 8), 2, torch.device("cpu"))
    args = SimpleNamespace(
        cudagraphs=False, compile=False, q_lr=1e-3, policy_lr=1e-2, alpha_lr=1e-3, alpha=0.0, autotune=False
    )
    feat = torch.randn(32, 1)
    before = actor.deterministic(feat).abs().mean()
    args.residual_penalty = 1000.0
    upd = make_sac_updates(actor, qnets, args, 1, torch.device("cpu"))
    logs = upd.actor(TensorDict(feat=feat))
    assert float(logs["residual_l2"]) == pytest.approx(float((actor.deterministic(feat) / 0.2).pow(2).mean()), rel=0.2)
    for _ in range(100):
        upd.actor(TensorDict(feat=feat))
    assert actor.deterministic(feat).abs().mean() < 0.25 * before
    # off by default: the log is zero and nothing else changes
    args.residual_penalty = 0.0
    off = make_sac_updates(actor, qnets, args, 1, torch.device("cpu"))
    assert float(off.actor(TensorDict(feat=feat))["residual_l2"]) == 0.0
