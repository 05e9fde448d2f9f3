"""sac.py / sac_rgb.py: TD targets by hand (truncation vs termination, n-step), the replay buffer
(wrap-around, dtypes, devices, the real final observation, save/load), the vmap'd critic ensemble,
the memory check, flag errors, resuming a killed run, and smoke runs whose checkpoints evaluate.py
reloads."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
import torch
from conftest import SHORT_STEPS, assert_one_error_line, run_script

from cleanrl_style import sac, sac_rgb
from cleanrl_style.lib import nets, replay, returns
from cleanrl_style.lib.checkpoints import load_checkpoint
from cleanrl_style.lib.runs import REPO_ROOT, UserError
from cleanrl_style.lib.sac_update import make_sac_updates

GAMMA = 0.5


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """sac.main sets torch's CPU thread count (--torch-threads); keep it from leaking into other tests."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


# ----------------------------------------------------------------------------- TD targets
def test_nstep_return_hand_computed():
    """gamma 0.5, rewards (1, 2, 4) over a 3-step window:
    no end:            G = 1 + 0.5*2 + 0.25*4 = 3, bootstrap from s_{t+3} with 0.5^3
    truncated at j=1:  G = 1 + 0.5*2 = 2,          bootstrap from the final obs of step 1 with 0.5^2
    terminated at j=1: G = 2,                      no bootstrap
    terminated at j=0: G = 1,                      no bootstrap
    truncated at j=2:  G = 3,                      bootstrap with 0.5^3 from the final obs of step 2"""
    rewards = torch.tensor([[1.0, 2.0, 4.0]] * 5)
    F, T = False, True
    terminated = torch.tensor([[F, F, F], [F, F, F], [F, T, F], [T, F, F], [F, F, F]])
    ended = torch.tensor([[F, F, F], [F, T, F], [F, T, F], [T, F, F], [F, F, T]])
    g, discount, k = returns.nstep_return(rewards, terminated, ended, GAMMA)
    assert g.tolist() == [3.0, 2.0, 2.0, 1.0, 3.0]
    assert discount.tolist() == [0.125, 0.25, 0.0, 0.0, 0.125]
    assert k.tolist() == [2, 1, 1, 0, 2]


def test_nstep_return_one_step_and_rewards_after_an_end_are_ignored():
    g, d, k = returns.nstep_return(
        torch.tensor([[3.0], [3.0], [3.0]]),
        torch.tensor([[False], [True], [False]]),
        torch.tensor([[False], [True], [True]]),
        0.8,
    )
    assert g.tolist() == [3.0, 3.0, 3.0] and k.tolist() == [0, 0, 0]
    assert d.tolist() == pytest.approx([0.8, 0.0, 0.8])  # plain, terminated, truncated
    # a reward after the episode ended belongs to the next episode: it must not leak in
    g, d, _ = returns.nstep_return(
        torch.tensor([[1.0, 100.0]]), torch.tensor([[True, False]]), torch.tensor([[True, False]]), 0.8
    )
    assert g.tolist() == [1.0] and d.tolist() == [0.0]


def test_soft_td_target_hand_computed():
    """target = G + discount * (min Q'(s', a') - alpha * log pi(a'|s'))."""
    g = torch.tensor([1.0, 1.0, 2.0])
    discount = torch.tensor([0.5, 0.0, 0.25])  # bootstrap, termination, 2-step truncation
    next_q = torch.tensor([4.0, 4.0, 8.0])
    next_log_prob = torch.tensor([-2.0, -2.0, 1.0])
    target = returns.soft_td_target(g, discount, next_q, next_log_prob, alpha=0.1)
    assert target.tolist() == pytest.approx([1 + 0.5 * (4 + 0.2), 1.0, 2 + 0.25 * (8 - 0.1)])


# ----------------------------------------------------------------------------- replay buffer
def _state_buffer(num_envs=2, capacity=10, max_episode_steps=50, n_step=1, dim=1, device="cpu"):
    return replay.ReplayBuffer(
        num_envs,
        capacity,
        {"state": ((dim,), torch.float32)},
        action_dim=1,
        device=device,
        max_episode_steps=max_episode_steps,
        gamma=GAMMA,
        n_step=n_step,
    )


def _add(rb, step, terminated=None, truncated=None, final=None, rewards=None):
    """obs of env e at step s is the marker 100*s + e; action = the same marker."""
    n = rb.N
    obs = torch.tensor([[100.0 * step + e] for e in range(n)])
    term = torch.tensor(terminated or [False] * n)
    trunc = torch.tensor(truncated or [False] * n)
    rew = torch.tensor(rewards or [1.0] * n)
    rb.add(obs, obs.clone(), rew, term, trunc, None if final is None else torch.tensor(final).reshape(n, 1))


def test_truncation_bootstraps_from_the_final_obs_termination_does_not():
    """Step 2: env 0 hits the time limit, env 1 terminates. Env 0's next obs is the real final
    observation (marker -1), not the reset obs stored for step 3; env 1 gets discount 0."""
    rb = _state_buffer()
    for s in range(5):
        if s == 2:
            _add(rb, s, terminated=[False, True], truncated=[True, False], final=[-1.0, -2.0])
        else:
            _add(rb, s)
    b = rb.gather(torch.tensor([2, 2, 1]), torch.tensor([0, 1, 0]))
    assert b["next_obs", "state"][:, 0].tolist() == [-1.0, 301.0, 200.0]  # 301: unused (discount 0)
    assert b["discount"].tolist() == [GAMMA, 0.0, GAMMA]
    assert b["obs", "state"][:, 0].tolist() == [200.0, 201.0, 100.0]
    assert b["action"][:, 0].tolist() == [200.0, 201.0, 100.0]
    # the env's final obs for the terminated env was not kept (nothing bootstraps from it)
    assert rb.final_ptr.tolist() == [1, 0]


def test_bootstrap_always_makes_a_success_termination_bootstrap_from_its_final_obs():
    """--bootstrap-at-done always (default): env 1 terminates (success) at step 2; the flags handed
    to the buffer turn that into a truncation, so its target bootstraps from the real final
    observation (marker -2) with discount gamma instead of 0. Mode truncation keeps discount 0."""
    term, trunc = torch.tensor([False, True]), torch.tensor([True, False])
    for mode, want_next, want_discount in (
        ("always", [-1.0, -2.0], [GAMMA, GAMMA]),
        ("truncation", [-1.0, 301.0], [GAMMA, 0.0]),
    ):
        rb = _state_buffer()
        for s in range(5):
            if s == 2:
                t, u = returns.bootstrap_flags(term, trunc, mode)
                _add(rb, s, terminated=t.tolist(), truncated=u.tolist(), final=[-1.0, -2.0])
            else:
                _add(rb, s)
        b = rb.gather(torch.tensor([2, 2]), torch.tensor([0, 1]))
        assert b["next_obs", "state"][:, 0].tolist() == want_next, mode
        assert b["discount"].tolist() == want_discount, mode


def test_final_obs_gap_sizes_the_side_ring_for_early_bootstrapped_ends():
    """Success terminations that bootstrap (partial resets + always) can end an episode every step:
    the side ring then has T rows, and final observations written every step all survive."""
    assert replay.final_obs_gap(False, "always", 50) == 50  # no terminations: time limit only
    assert replay.final_obs_gap(True, "truncation", 50) == 50  # terminations do not bootstrap
    assert replay.final_obs_gap(True, "always", 50) is None
    assert replay.ReplayBuffer.rows(2, 20, None) == (10, 10) and replay.ReplayBuffer.rows(2, 20, 50) == (10, 3)
    rb = _state_buffer(capacity=20, max_episode_steps=replay.final_obs_gap(True, "always", 50))
    ends = returns.bootstrap_flags(torch.tensor([True, True]), torch.tensor([False, False]), "always")
    for s in range(25):  # every step ends both episodes (success), wrapping both rings
        _add(rb, s, terminated=ends[0].tolist(), truncated=ends[1].tolist(), final=[-s - 0.5, -s - 0.25])
    b = rb.gather(torch.arange(10).repeat(2), torch.arange(2).repeat_interleave(10))
    steps = b["obs", "state"][:, 0] // 100  # the step each sampled transition was stored at
    assert steps.min() == 15 and steps.max() == 24
    want = torch.where(torch.arange(20) < 10, -steps - 0.5, -steps - 0.25)
    assert torch.equal(b["next_obs", "state"][:, 0], want)
    assert b["discount"].tolist() == [GAMMA] * 20


def test_nstep_through_the_buffer_stops_at_truncation():
    rb = _state_buffer(num_envs=1, n_step=3)
    rewards = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
    for s in range(6):
        if s == 3:
            _add(rb, s, truncated=[True], final=[-7.0], rewards=[rewards[s]])
        else:
            _add(rb, s, rewards=[rewards[s]])
    b = rb.gather(torch.tensor([0, 1, 2]), torch.tensor([0, 0, 0]))
    # t=0: 1 + .5*2 + .25*4 = 3, bootstrap s_3 with .125
    # t=1: 2 + .5*4 + .25*8 = 6, step 3 truncated -> bootstrap from its final obs with .125
    # t=2: 4 + .5*8 = 8, truncated at step 3 -> final obs with .25
    assert b["reward"].tolist() == [3.0, 6.0, 8.0]
    assert b["discount"].tolist() == [0.125, 0.125, 0.25]
    assert b["next_obs", "state"][:, 0].tolist() == [300.0, -7.0, -7.0]


def test_buffer_wraparound_keeps_the_newest_steps_and_consecutive_next_obs():
    rb = _state_buffer(num_envs=2, capacity=10, max_episode_steps=None)  # T = 5 rows per env
    assert rb.T == 5
    for s in range(13):
        _add(rb, s)
    assert rb.size == 5 and rb.ptr == 13 % 5
    assert rb.num_transitions == (5 - 1) * 2
    torch.manual_seed(0)
    b = rb.sample(512)
    obs, nxt = b["obs", "state"][:, 0], b["next_obs", "state"][:, 0]
    steps = torch.div(obs, 100, rounding_mode="floor")
    # steps 8..11 are sampleable (12 is the newest; its next obs is not stored yet), 0..7 are gone
    assert set(steps.long().tolist()) == {8, 9, 10, 11}
    assert set((obs % 100).long().tolist()) == {0, 1}  # both envs
    assert torch.equal(nxt, obs + 100)  # the next obs of a step is the next stored obs of the same env


def test_final_obs_side_ring_wraps_without_losing_live_final_obs():
    """Episodes of 2 steps, every one truncated, for 40 steps: the side ring (K rows) wraps
    many times; every sampled truncated step still bootstraps from its own final obs."""
    rb = _state_buffer(num_envs=2, capacity=16, max_episode_steps=2)
    assert rb.T == 8 and rb.K == 7
    for s in range(40):
        trunc = s % 2 == 1
        _add(rb, s, truncated=[trunc, trunc], final=[-(100.0 * s), -(100.0 * s + 1)] if trunc else None)
    torch.manual_seed(1)
    b = rb.sample(1024)
    obs, nxt = b["obs", "state"][:, 0], b["next_obs", "state"][:, 0]
    step = torch.div(obs, 100, rounding_mode="floor")
    truncated = step % 2 == 1
    assert truncated.any() and (~truncated).any()
    assert torch.equal(nxt[truncated], -obs[truncated])  # its own final obs
    assert torch.equal(nxt[~truncated], obs[~truncated] + 100)


def test_sample_shapes_dtypes_and_device_for_images():
    n, c, h, w = 3, 6, 40, 56
    rb = replay.ReplayBuffer(
        n,
        30,
        {"rgb": ((c, h, w), torch.uint8), "state": ((4,), torch.float32)},
        action_dim=2,
        device="cpu",
        max_episode_steps=5,
        gamma=0.9,
    )
    for s in range(6):
        rgb = torch.full((n, c, h, w), s, dtype=torch.uint8)
        rb.add(
            {"rgb": rgb, "state": torch.zeros(n, 4)},
            torch.zeros(n, 2),
            torch.zeros(n),
            torch.zeros(n, dtype=torch.bool),
            torch.tensor([s == 4] * n),
            {"rgb": torch.full((n, c, h, w), 200, dtype=torch.uint8), "state": torch.zeros(n, 4)},
        )
    assert rb.frames["rgb"].dtype == torch.uint8
    b = rb.sample(7)
    assert b["obs", "rgb"].shape == (7, c, h, w) and b["obs", "rgb"].dtype == torch.uint8
    assert b["next_obs", "rgb"].shape == (7, c, h, w) and b["next_obs", "rgb"].dtype == torch.uint8
    assert b["obs", "state"].shape == (7, 4) and b["obs", "state"].dtype == torch.float32
    assert b["action"].shape == (7, 2) and b["reward"].shape == (7,) and b["discount"].shape == (7,)
    for t in b.values(include_nested=True, leaves_only=True):
        assert t.device == rb.device
    # next obs of step 4 (truncated) is the final obs (200), of other steps the next frame
    first = b["obs", "rgb"][:, 0, 0, 0].long()
    expect = torch.where(first == 4, torch.full_like(first, 200), first + 1)
    assert torch.equal(b["next_obs", "rgb"][:, 0, 0, 0].long(), expect)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_buffer_on_cuda_keeps_uint8_on_the_device():
    rb = replay.ReplayBuffer(2, 20, {"rgb": ((3, 8, 8), torch.uint8)}, 1, "cuda", 5, 0.9)
    for s in range(4):
        rb.add(
            {"rgb": torch.full((2, 3, 8, 8), s, dtype=torch.uint8, device="cuda")},
            torch.zeros(2, 1, device="cuda"),
            torch.zeros(2, device="cuda"),
            torch.zeros(2, dtype=torch.bool, device="cuda"),
            torch.zeros(2, dtype=torch.bool, device="cuda"),
        )
    b = rb.sample(5)
    assert b["obs", "rgb"].is_cuda and b["obs", "rgb"].dtype == torch.uint8


class _HostCopyRecorder(torch.overrides.TorchFunctionMode):
    """Records every copy into host memory that is asked to be non-blocking (Tensor.to / copy_ /
    index_copy_ with non_blocking=True and a CPU destination): with a CUDA source such a copy returns
    before its data has arrived, so whoever reads the destination next may see stale bytes."""

    def __init__(self):
        super().__init__()
        self.unsafe = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", str(func))
        if kwargs.get("non_blocking") or (name == "copy_" and len(args) > 2 and args[2]):
            dst = None
            if name == "to":
                dst = next(
                    (a for a in list(args[1:]) + [kwargs.get("device")] if isinstance(a, (str, torch.device))), None
                )
                dst = torch.device(dst) if dst is not None else args[0].device
            elif name in ("copy_", "index_copy_"):
                dst = args[0].device
            if dst is not None and dst.type == "cpu":
                self.unsafe.append(name)
        return func(*args, **kwargs)


def _fill_host_buffer(rb, n, steps=6):
    obs_seen, act_seen, rew_seen = [], [], []
    for s in range(steps):
        o = {"rgb": torch.full((n, 3, 8, 8), s, dtype=torch.uint8), "state": torch.full((n, 2), float(s))}
        a, r = torch.full((n, 1), 0.1 * s), torch.full((n,), float(s))
        obs_seen.append(o["rgb"].clone())
        act_seen.append(a.clone())
        rew_seen.append(r.clone())
        rb.add_obs(o)
        o["rgb"].add_(100)  # the source is reused right after: the buffer must hold what it was given
        rb.add_step(a, r, torch.zeros(n, dtype=torch.bool), torch.tensor([s == 3] * n), o)
    return obs_seen, act_seen, rew_seen


def test_replay_copies_into_host_memory_are_synchronous():
    """--buffer-device cpu with GPU envs: every copy of observations, actions and rewards into the host
    buffer, and of a sampled batch to a CPU learner, is a blocking copy; the buffer holds exactly what it
    was given even though the source is modified right after."""
    n = 2
    rb = replay.ReplayBuffer(n, 30, {"rgb": ((3, 8, 8), torch.uint8), "state": ((2,), torch.float32)}, 1, "cpu", 5, 0.9)
    rec = _HostCopyRecorder()
    with rec:
        obs_seen, act_seen, rew_seen = _fill_host_buffer(rb, n)
        batch = replay.to_device(rb.sample(8), torch.device("cpu"))
    assert rec.unsafe == [], f"non-blocking copies into host memory: {rec.unsafe}"
    for s in range(6):
        rows = slice(s * n, (s + 1) * n)
        assert torch.equal(rb.frames["rgb"][rows], obs_seen[s]), s
        assert torch.equal(rb.steps["action"][rows], act_seen[s]) and torch.equal(rb.steps["reward"][rows], rew_seen[s])
    assert batch["obs", "rgb"].device.type == "cpu"
    # the recorder itself catches the old code's pattern
    with rec:
        torch.zeros(2).to("cpu", non_blocking=True)
    assert rec.unsafe == ["to"]


def test_to_device_is_asynchronous_only_from_host_to_cuda():
    x = torch.zeros(3)
    rec = _HostCopyRecorder()
    with rec:
        assert replay.to_device(x, "cpu") is x  # nothing to copy
    assert rec.unsafe == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_replay_host_buffer_holds_frames_produced_asynchronously_on_cuda():
    """The race itself: CUDA sources whose values are still being computed when they are stored, then
    overwritten by a later kernel; the host buffer must equal synchronous copies taken in between."""
    n, dev = 64, torch.device("cuda")
    rb = replay.ReplayBuffer(n, 640, {"rgb": ((3, 64, 64), torch.uint8)}, 2, "cpu", 50, 0.9)
    big = torch.randn(2048, 2048, device=dev)
    want = []
    for s in range(8):
        busy = (big @ big).sum()  # queues work ahead of the frame
        rgb = ((busy * 0 + s) + torch.zeros(n, 3, 64, 64, device=dev)).to(torch.uint8)
        rb.add_obs({"rgb": rgb})
        want.append(rgb.cpu())
        rgb.add_(7)
        rb.add_step(
            torch.zeros(n, 2, device=dev),
            torch.full((n,), float(s), device=dev),
            torch.zeros(n, dtype=torch.bool, device=dev),
            torch.zeros(n, dtype=torch.bool, device=dev),
        )
    for s in range(8):
        assert torch.equal(rb.frames["rgb"][s * n : (s + 1) * n], want[s]), s
    cuda_rb = replay.ReplayBuffer(n, 640, {"rgb": ((3, 64, 64), torch.uint8)}, 2, "cuda", 50, 0.9)
    for s in range(4):
        cuda_rb.add(
            {"rgb": torch.full((n, 3, 64, 64), s, dtype=torch.uint8, device=dev)},
            torch.zeros(n, 2, device=dev),
            torch.zeros(n, device=dev),
            torch.zeros(n, dtype=torch.bool, device=dev),
            torch.zeros(n, dtype=torch.bool, device=dev),
        )
    rows, envs = torch.tensor([0, 1, 2], device=dev), torch.tensor([0, 1, 2], device=dev)
    ref = cuda_rb.gather(rows, envs)
    got = replay.to_device(cuda_rb.gather(rows, envs), torch.device("cpu"))
    assert torch.equal(got["obs", "rgb"], ref["obs", "rgb"].cpu())


def test_buffer_nbytes_matches_what_is_allocated():
    specs = {"rgb": ((3, 16, 24), torch.uint8), "state": ((5,), torch.float32)}
    rb = replay.ReplayBuffer(4, 100, specs, 3, "cpu", 10, 0.9, n_step=2)
    allocated = sum(
        t.numel() * t.element_size()
        for td in (rb.frames, rb.steps)
        for t in td.values(include_nested=True, leaves_only=True)
    )
    allocated += rb.final_ptr.numel() * rb.final_ptr.element_size()
    assert replay.ReplayBuffer.nbytes(4, 100, specs, 3, 10, 2) == allocated
    # each image is stored once (+ a few side rows for final observations), not twice
    assert rb.frames["rgb"].shape[0] == (rb.T + rb.K) * 4 and rb.K < rb.T


def test_final_observation_stored_at_truncation_is_the_real_one(short_env):
    """A real env with 5-step episodes: the buffer's next obs for the truncated step equals
    info["final_observation"], not the first obs of the next episode."""
    env = short_env
    obs, _ = env.reset(seed=3)
    rb = replay.ReplayBuffer(
        1, 50, {"state": ((obs.shape[1],), torch.float32)}, env.action_dim, "cpu", env.max_episode_steps, gamma=0.8
    )
    g = torch.Generator().manual_seed(0)
    final, reset_obs = None, None
    for s in range(SHORT_STEPS + 2):
        action = env.action_low + torch.rand(1, env.action_dim, generator=g) * (env.action_high - env.action_low)
        next_obs, reward, terminated, truncated, info = env.step(action)
        rb.add(obs, action, reward, terminated, truncated, info.get("final_observation"))
        if s == SHORT_STEPS - 1:
            assert bool(truncated[0]) and not bool(terminated[0])
            final, reset_obs = info["final_observation"].clone(), next_obs.clone()
        obs = next_obs
    assert not torch.allclose(final, reset_obs)
    b = rb.gather(torch.tensor([SHORT_STEPS - 1, SHORT_STEPS]), torch.tensor([0, 0]))
    assert torch.equal(b["next_obs", "state"][0], final[0])
    assert b["discount"][0].item() == pytest.approx(0.8)  # truncation: bootstrapped
    assert torch.equal(b["obs", "state"][1], reset_obs[0])  # the new episode starts from the reset obs


def test_replay_save_load_round_trip_cuts_the_episode_in_progress(tmp_path):
    """save() then load() into a fresh buffer of the same layout gives the same transitions; the last
    stored step, whose episode the resume cuts, becomes a truncation that bootstraps from the pending
    observation (the one the next action would have been taken in). A step that terminated stays
    terminated (discount 0)."""
    rb = _state_buffer(num_envs=2, capacity=12, max_episode_steps=3)  # T = 6 rows per env: wraps
    for s in range(9):
        if s == 2:
            _add(rb, s, truncated=[True, True], final=[-1.0, -2.0])
        elif s == 8:
            _add(rb, s, terminated=[False, True])
        else:
            _add(rb, s)
    pending = torch.tensor([[900.0], [901.0]])
    rb.save(tmp_path / "replay.pt", pending)
    rb2 = _state_buffer(num_envs=2, capacity=12, max_episode_steps=3)
    rb2.load(tmp_path / "replay.pt")
    assert (rb2.ptr, rb2.size, rb2.num_transitions) == (rb.ptr, rb.size, rb.num_transitions)
    assert torch.equal(rb2.frames["state"][: rb.T * 2], rb.frames["state"][: rb.T * 2])
    # every complete transition is the same
    oldest = (rb.ptr - rb.size) % rb.T
    rows = ((oldest + torch.arange(rb.size - 1)) % rb.T).repeat(2)
    envs = torch.arange(2).repeat_interleave(rb.size - 1)
    a, b = rb.gather(rows, envs), rb2.gather(rows, envs)
    for key in ("obs", "next_obs", "action", "reward", "discount"):
        assert torch.equal(
            a[key] if key not in ("obs", "next_obs") else a[key, "state"],
            b[key] if key not in ("obs", "next_obs") else b[key, "state"],
        ), key
    # the last step (step 8): env 0 now truncated -> next obs is the pending obs; env 1 terminated
    last = torch.tensor([(rb.ptr - 1) % rb.T] * 2)
    t = rb2.gather(last, torch.arange(2))
    assert t["obs", "state"][:, 0].tolist() == [800.0, 801.0]
    assert t["next_obs", "state"][0, 0].item() == 900.0
    assert t["discount"].tolist() == [GAMMA, 0.0]
    assert rb2.steps["ended"][last * 2 + torch.arange(2)].all()
    # a buffer of another layout refuses the file in one line
    with pytest.raises(UserError, match="another layout"):
        _state_buffer(num_envs=2, capacity=20, max_episode_steps=3).load(tmp_path / "replay.pt")


# ----------------------------------------------------------------------------- networks
def test_actor_log_prob_matches_torch_distributions():
    torch.manual_seed(0)
    actor = nets.Actor(5, 3).set_action_bounds(torch.tensor([-1.0, -2.0, 0.0]), torch.tensor([1.0, 2.0, 1.0]))
    x = torch.randn(4, 5)
    torch.manual_seed(1)
    a, logp = actor.sample(x)
    mean, log_std = actor(x)
    torch.manual_seed(1)
    u = mean + log_std.exp() * torch.randn_like(mean)
    ref = torch.distributions.Normal(mean, log_std.exp()).log_prob(u)
    ref = (ref - torch.log(actor.action_scale * (1 - torch.tanh(u) ** 2) + 1e-6)).sum(-1)
    assert torch.allclose(logp, ref, atol=1e-5)
    assert torch.allclose(a, torch.tanh(u) * actor.action_scale + actor.action_bias)
    assert (a >= torch.tensor([-1.0, -2.0, 0.0])).all() and (a <= torch.tensor([1.0, 2.0, 1.0])).all()
    assert torch.allclose(actor.deterministic(x), torch.tanh(mean) * actor.action_scale + actor.action_bias)


def test_q_ensemble_matches_separate_networks_and_lerps_its_target():
    torch.manual_seed(0)
    made = []

    def make():
        net = nets.QNetwork(4, 2, hidden_dim=16)
        made.append(net)
        return net

    ens = nets.QEnsemble(make, 2, torch.device("cpu"))
    x, a = torch.randn(6, 4), torch.randn(6, 2)
    q = ens.q(x, a)
    assert q.shape == (2, 6)
    for i in range(2):
        assert torch.allclose(q[i], made[i](x, a), atol=1e-6)
    q.sum().backward()
    assert all(p.grad is not None for p in ens.parameters())
    assert not ens.q_frozen(x, a).requires_grad and torch.allclose(ens.q_frozen(x, a), q)
    before = {k: v.clone() for k, v in ens.target.items()}
    with torch.no_grad():
        for p in ens.parameters():
            p.add_(1.0)
    ens.update_target(0.25)
    for k, v in ens.target.items():
        assert torch.allclose(v, before[k] + 0.25), k  # target += tau * (online - target), online = target + 1


def test_sac_rgb_update_trains_encoder_only_through_the_critic():
    """DrQ-v2: the critic step changes the encoder; the actor step does not."""
    torch.manual_seed(0)
    policy = sac_rgb.PixelPolicy(3, 40, 48, state_dim=2, action_dim=2, feature_dim=16, hidden_dim=16)
    qnets = nets.QEnsemble(lambda: nets.QNetwork(policy.encoder.out_dim, 2, 16), 2, torch.device("cpu"))
    args = SimpleNamespace(
        cudagraphs=False, compile=False, q_lr=1e-3, policy_lr=1e-3, alpha=0.2, alpha_lr=1e-3, autotune=True
    )
    upd = make_sac_updates(policy.actor, qnets, args, 2, torch.device("cpu"), encoder=policy.encoder)
    update_critic, update_actor = upd.critic, upd.actor
    assert set(upd.optimizers) == {"q", "actor", "alpha"} and upd.log_alpha.requires_grad
    from tensordict import TensorDict

    def obs():
        return TensorDict(
            rgb=torch.randint(0, 256, (8, 3, 40, 48), dtype=torch.uint8), state=torch.randn(8, 2), batch_size=[8]
        )

    batch = TensorDict(
        obs=obs(),
        next_obs=obs(),
        action=torch.rand(8, 2) * 2 - 1,
        reward=torch.randn(8),
        discount=torch.full((8,), 0.8),
        batch_size=[8],
    )
    enc0 = [p.clone() for p in policy.encoder.parameters()]
    out = update_critic(batch)
    enc1 = [p.clone() for p in policy.encoder.parameters()]
    assert any(not torch.equal(a, b) for a, b in zip(enc0, enc1))
    assert not out["feat"].requires_grad
    head0 = [p.clone() for p in policy.actor.parameters()]
    logs = update_actor(out)
    assert all(torch.equal(a, b) for a, b in zip(enc1, policy.encoder.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(head0, policy.actor.parameters()))
    assert set(logs.keys()) == {"actor_loss", "alpha", "alpha_loss", "bc_loss", "bc_coef", "residual_l2"}
    assert set(out.keys()) >= {"qf1_loss", "qf2_loss", "qf1_values", "qf2_values"}


@pytest.mark.parametrize("mode,channels,expected", [("rgb", 6, 6), ("rgbd", 4, 3), ("rgbd", 8, 6)])
def test_rgb_channel_count(mode, channels, expected):
    assert sac_rgb.rgb_channel_count(mode, channels) == expected


# ----------------------------------------------------------------------------- errors
def test_check_memory_refuses_what_does_not_fit(monkeypatch, capsys):
    monkeypatch.setattr(replay, "free_bytes", lambda device: 10 * 2**30)
    cpu = torch.device("cpu")
    replay.check_memory([("replay buffer", 2 * 2**30, cpu), ("training", 2**30, cpu)], 0, 1000, 2 * 2**30 / 1000)
    assert "replay buffer 2.15 GB (host RAM)" in capsys.readouterr().out
    with pytest.raises(UserError, match=r"--buffer-size 1,000,000") as e:
        replay.check_memory(
            [("replay buffer", 20 * 2**30, cpu), ("training", 2**30, cpu)], 0, 1_000_000, 20 * 2**30 / 1_000_000
        )
    # 0.9 * 10 GiB free - 1 GiB training leaves 8 GiB = 400k transitions of 20 GiB / 1M
    suggested = int(re.search(r"~([\d,]+) would fit", str(e.value)).group(1).replace(",", ""))
    assert 390_000 <= suggested <= 400_000
    # memory already held (a demo store loaded before the check) is reported, not counted again
    plan = [("replay buffer", 8 * 2**30, cpu)]
    replay.check_memory(plan, 0, 1000, 8 * 2**30 / 1000, held=[("demo store", 5 * 2**30, cpu)])
    assert "demo store 5.37 GB (host RAM) already held" in capsys.readouterr().out
    with pytest.raises(UserError):
        replay.check_memory(plan + [("demo store", 5 * 2**30, cpu)], 0, 1000, 8 * 2**30 / 1000)


@pytest.mark.parametrize("module", [sac, sac_rgb])
def test_cudagraphs_without_cuda_is_a_user_error(module):
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(UserError, match="--cudagraphs needs CUDA"):
        module.resolve_args(module.Args(env_id="PushCube", cudagraphs=True, sim_backend="cpu"), "cpu")


BAD_SAC_FLAGS = [
    (dict(n_step=0), "--n-step"),
    (dict(utd=0.0), "--utd"),
    (dict(tau=0.0), "--tau"),
    (dict(tau=1.5), "--tau"),
    (dict(gamma=1.5), "--gamma"),
    (dict(gamma=-0.1), "--gamma"),
    (dict(buffer_device="tpu"), "--buffer-device"),
    (dict(torch_threads=0), "--torch-threads"),
    (dict(num_envs=0), "--num-envs"),
    (dict(num_eval_envs=0), "--num-eval-envs"),
    (dict(total_timesteps=-5), "--total-timesteps"),
    (dict(num_eval_episodes=0), "--num-eval-episodes"),
    (dict(buffer_size=0), "--buffer-size"),
    (dict(batch_size=0), "--batch-size"),
    (dict(learning_starts=-1), "--learning-starts"),
    (dict(eval_freq=-1), "--eval-freq"),
    (dict(policy_frequency=0), "--policy-frequency"),
    (dict(target_network_frequency=0), "--target-network-frequency"),
    (dict(log_freq=0), "--log-freq"),
    (dict(hidden_dim=0), "--hidden-dim"),
    (dict(max_episode_steps=0), "--max-episode-steps"),
    (dict(policy_lr=0.0), "--policy-lr"),
    (dict(q_lr=-1e-3), "--q-lr"),
    (dict(alpha_lr=0.0), "--alpha-lr"),
]


@pytest.mark.parametrize("kw,needle", BAD_SAC_FLAGS)
def test_sac_resolve_args_rejects_bad_flags(kw, needle):
    with pytest.raises(UserError, match=needle) as e:
        sac.resolve_args(sac.Args(env_id="PushCube", sim_backend="cpu", **kw), "cpu")
    assert e.value.code == 2 and "\n" not in str(e.value)


@pytest.mark.parametrize(
    "kw,needle",
    BAD_SAC_FLAGS
    + [
        (dict(aug="crop"), "--aug"),
        (dict(dr="max"), "--dr"),
        (dict(obs_mode="state"), "obs-mode"),
        (dict(image_size=32), "36x36"),
        (dict(image_width=35), "got 64x35"),
        (dict(image_size=0), "--image-size"),
        (dict(aug_pad=-1), "--aug-pad"),
        (dict(feature_dim=0), "--feature-dim"),
    ],
)
def test_sac_rgb_resolve_args_rejects_bad_flags(kw, needle):
    with pytest.raises(UserError, match=needle) as e:
        sac_rgb.resolve_args(sac_rgb.Args(env_id="PushCube", sim_backend="cpu", **kw), "cpu")
    assert e.value.code == 2 and "\n" not in str(e.value)


def test_resolve_args_writes_the_defaults_back():
    a = sac.resolve_args(sac.Args(env_id="PushCube"), "cpu")
    assert (a.env_id, a.num_envs, a.num_eval_envs, a.buffer_size) == ("PushCube-v1", 2, 2, 200_000)
    a = sac_rgb.resolve_args(sac_rgb.Args(env_id="PushCube", image_size=48, image_width=64), "cpu")
    assert (a.env_id, a.num_envs, a.num_eval_envs, a.buffer_size) == ("PushCube-v1", 1, 1, 100_000)
    assert (a.image_height, a.image_width) == (48, 64)
    a = sac.resolve_args(sac.Args(env_id="PushCube", num_envs=3, buffer_size=10), "cpu")
    assert (a.num_envs, a.buffer_size) == (3, 10)


def test_sac_rejects_non_positive_counts():
    """Counts are checked before anything starts: one error line naming the flag, exit 2."""
    p = run_script("cleanrl_style/sac_rgb.py", "--num-envs", "0", "--sim-backend", "cpu", timeout=120)
    assert p.returncode == 2, p.stderr
    assert_one_error_line(p.stderr, "--num-envs")
    p = run_script("cleanrl_style/sac.py", "--total-timesteps", "-5", "--sim-backend", "cpu", timeout=120)
    assert p.returncode == 2, p.stderr
    assert_one_error_line(p.stderr, "--total-timesteps")


@pytest.mark.parametrize("path", sorted((REPO_ROOT / "configs" / "sac").glob("*.args")), ids=lambda p: p.name)
def test_config_files_parse(path):
    """Every configs/sac/*.args file is a valid flag set of its script and names its tier."""
    import shlex

    import tyro

    text = path.read_text()
    assert re.search(r"^# tier: (cpu|gpu)$", text, re.M)
    flags = [tok for line in text.splitlines() if not line.strip().startswith("#") for tok in shlex.split(line)]
    module = sac_rgb if "rgb" in path.name else sac
    args = tyro.cli(module.Args, args=flags)
    assert args.env_id.lower() in path.name
    if "# tier: gpu" in text:
        assert "NOT YET MEASURED" in text


def test_impossible_buffer_size_is_one_error_line_before_allocating(tmp_path):
    runs = tmp_path / "runs"
    p = run_script(
        "cleanrl_style/sac.py",
        "--env-id",
        "PushCube",
        "--num-envs",
        "1",
        "--sim-backend",
        "cpu",
        "--buffer-size",
        str(10**13),
        "--runs-dir",
        str(runs),
        timeout=180,
    )
    assert p.returncode != 0
    assert_one_error_line(p.stderr, "--buffer-size", "host RAM")
    assert "memory: to allocate replay buffer" in p.stdout  # the estimate is printed first
    assert not runs.exists()  # stopped before the run dir, the eval envs and the buffer


# ----------------------------------------------------------------------------- smoke runs
def _evaluate_reloads(run_dir, tmp_path, script):
    out = tmp_path / "eval"
    p = run_script(
        "cleanrl_style/evaluate.py",
        "--checkpoint",
        str(run_dir / "last.pt"),
        "--num-episodes",
        "1",
        "--seed",
        "5",
        "--sim-backend",
        "cpu",
        "--out-dir",
        str(out),
    )
    assert p.returncode == 0, p.stderr
    res = json.loads((out / "eval_last_seed5.json").read_text())
    assert res["episodes"] == 1 and res["seeds"] == [5] and res["script"] == script


def _logged_names(run_dir) -> set:
    import csv

    with open(run_dir / "metrics.csv") as f:
        return {row["name"] for row in csv.DictReader(f)}


LOSS_NAMES = {
    f"losses/{k}" for k in ("qf1_loss", "qf2_loss", "actor_loss", "alpha", "alpha_loss", "qf1_values", "qf2_values")
}


@pytest.mark.slow
def test_sac_smoke_run_and_reload(tmp_path):
    run_dir = sac.main(
        sac.Args(
            env_id="PushCube",
            num_envs=1,
            num_eval_envs=1,
            total_timesteps=100,
            learning_starts=60,
            batch_size=32,
            buffer_size=1000,
            n_step=2,
            eval_freq=50,
            num_eval_episodes=1,
            log_freq=30,
            max_episode_steps=10,
            sim_backend="cpu",
            runs_dir=str(tmp_path),
        )
    )
    for f in ("best.pt", "last.pt", "final_eval.json", "metrics.csv", "config.yaml"):
        assert (run_dir / f).is_file(), f
    names = _logged_names(run_dir)
    assert LOSS_NAMES <= names
    assert {"time/sps", "time/update_s", "time/env_fps", "eval/success_once"} <= names
    ckpt = load_checkpoint(run_dir / "last.pt")
    assert ckpt["script"] == "sac" and ckpt["step"] == 100
    assert ckpt["env"]["max_episode_steps"] == 10
    assert "actor.action_scale" in ckpt["state_dict"] and "state_norm.mean" in ckpt["state_dict"]
    _evaluate_reloads(run_dir, tmp_path, "sac")


@pytest.mark.slow
def test_sac_rgb_smoke_run_and_reload(tmp_path):
    """1 CPU env, 64x64 RGB, shift+color augmentation and light domain randomization."""
    run_dir = sac_rgb.main(
        sac_rgb.Args(
            env_id="PushCube",
            num_envs=1,
            num_eval_envs=1,
            image_size=64,
            total_timesteps=40,
            learning_starts=25,
            batch_size=16,
            buffer_size=500,
            aug="shift+color",
            dr="light",
            eval_freq=0,
            num_eval_episodes=1,
            log_freq=20,
            max_episode_steps=10,
            sim_backend="cpu",
            runs_dir=str(tmp_path),
        )
    )
    ckpt = load_checkpoint(run_dir / "last.pt")
    assert ckpt["script"] == "sac_rgb"
    assert ckpt["env"]["obs_shapes"]["rgb"] == [3, 64, 64]
    assert ckpt["model_kwargs"]["in_channels"] == 3 and ckpt["model_kwargs"]["state_dim"] > 0
    assert LOSS_NAMES <= _logged_names(run_dir)
    _evaluate_reloads(run_dir, tmp_path, "sac_rgb")


@pytest.mark.slow
def test_sac_compile_smoke(tmp_path):
    """--compile (torch.compile of both update steps and the rollout policy) runs on CPU."""
    run_dir = sac.main(
        sac.Args(
            env_id="PushCube",
            num_envs=1,
            num_eval_envs=1,
            total_timesteps=30,
            learning_starts=20,
            batch_size=16,
            buffer_size=500,
            hidden_dim=32,
            eval_freq=0,
            num_eval_episodes=1,
            log_freq=15,
            max_episode_steps=10,
            compile=True,
            sim_backend="cpu",
            runs_dir=str(tmp_path),
        )
    )
    assert (run_dir / "last.pt").is_file()
    assert LOSS_NAMES <= _logged_names(run_dir)
    loss = [
        float(r.split(",")[3])
        for r in (run_dir / "metrics.csv").read_text().splitlines()[1:]
        if ",losses/qf1_loss," in r
    ]
    assert loss and all(math.isfinite(v) for v in loss)


# ----------------------------------------------------------------------------- resume
TINY = (
    "--env-id",
    "PushCube",
    "--num-envs",
    "1",
    "--num-eval-envs",
    "1",
    "--max-episode-steps",
    "5",
    "--learning-starts",
    "4",
    "--batch-size",
    "4",
    "--hidden-dim",
    "8",
    "--buffer-size",
    "64",
    "--eval-freq",
    "8",
    "--num-eval-episodes",
    "1",
    "--sim-backend",
    "cpu",
)


def _metric_rows(run_dir) -> list:
    with open(run_dir / "metrics.csv", newline="") as f:
        return [(int(r["step"]), r["name"], float(r["value"])) for r in csv.DictReader(f)]


def _assert_metrics_read_as_one_run(run_dir) -> list:
    rows = _metric_rows(run_dir)
    steps = [r[0] for r in rows]
    assert steps == sorted(steps), steps
    keys = [(r[0], r[1]) for r in rows]
    assert len(keys) == len(set(keys)), "duplicated (step, name) rows"
    return rows


@pytest.mark.slow
def test_sac_resume_after_kill(tmp_path):
    """kill -9 a run once it has written last.pt (and replay.pt), then --resume it: it finishes with
    the buffer it had, and metrics.csv, final_eval.json and config.yaml read as one run."""
    runs = tmp_path / "runs"
    cmd = [
        sys.executable,
        "cleanrl_style/sac.py",
        *TINY,
        "--total-timesteps",
        "40",
        "--runs-dir",
        str(runs),
        "--save-replay",
    ]
    p = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
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
    assert p.returncode == -signal.SIGKILL
    (run_dir,) = list(runs.iterdir())
    assert (run_dir / "replay.pt").is_file() and not (run_dir / "final_eval.json").exists()
    killed_at = load_checkpoint(run_dir / "last.pt")["train_state"]["global_step"]
    assert 8 <= killed_at < 40

    r = run_script("cleanrl_style/sac.py", "--resume", str(run_dir))
    assert r.returncode == 0, r.stderr
    assert "replay buffer loaded" in r.stdout and f"resumed at step {killed_at}" in r.stdout
    assert json.loads((run_dir / "final_eval.json").read_text())["step"] == 40
    rows = _assert_metrics_read_as_one_run(run_dir)
    assert [s for s, n, _ in rows if n == "eval/success_once"] == [8, 16, 24, 32, 40]
    import yaml

    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert cfg["resumed"][0]["step"] == killed_at and cfg["args"]["save_replay"] is True
    ckpt = load_checkpoint(run_dir / "last.pt")
    assert ckpt["step"] == 40 and ckpt["train_state"]["num_updates"] == (40 - 4) // 2


@pytest.mark.slow
def test_sac_resume_without_saved_replay_refills_before_updating(tmp_path):
    """Without --save-replay a resumed run refills the buffer: no gradient step during the first
    --learning-starts env steps after the resume (here: a finished 8-step run extended to 16)."""
    runs = tmp_path / "runs"
    p = run_script("cleanrl_style/sac.py", *TINY, "--total-timesteps", "8", "--runs-dir", str(runs))
    assert p.returncode == 0, p.stderr
    (run_dir,) = list(runs.iterdir())
    assert not (run_dir / "replay.pt").exists()
    r = run_script("cleanrl_style/sac.py", "--resume", str(run_dir), "--total-timesteps", "16")
    assert r.returncode == 0, r.stderr
    assert "replay buffer refilled from fresh interaction" in r.stdout
    assert json.loads((run_dir / "final_eval.json").read_text())["step"] == 16
    rows = _assert_metrics_read_as_one_run(run_dir)
    # utd 0.5 on 1 env: 2 updates in steps 5..8; after the resume at 8 none in 9..12, 2 in 13..16
    assert [(s, v) for s, n, v in rows if n == "charts/num_updates"] == [(8, 2.0), (16, 4.0)]


def test_a_gradient_step_reads_nothing_back_from_the_device(monkeypatch):
    """--cudagraphs captures SacUpdater.train_step (sampling from the buffer and the demos, augmentation,
    critic, actor, target update) as one CUDA graph: nothing in it may read a value back to the host
    (Tensor.__bool__/item/tolist/__int__/__float__/__index__), which would fail under capture and is a
    device sync on the eager GPU path. Pixels, demos, the BC term and a 5-critic ensemble, all on."""
    from cleanrl_style.lib.augment import Augmentation
    from cleanrl_style.lib.sac_update import SacUpdater

    torch.manual_seed(0)
    n, c, h, w = 2, 3, 36, 36
    specs = {"rgb": ((c, h, w), torch.uint8), "state": ((5,), torch.float32)}
    rb = replay.ReplayBuffer(n, 40, specs, 2, "cpu", 5, 0.8)
    for s in range(8):
        o = {"rgb": torch.randint(0, 255, (n, c, h, w), dtype=torch.uint8), "state": torch.randn(n, 5)}
        rb.add(
            o, torch.rand(n, 2) * 2 - 1, torch.randn(n), torch.zeros(n, dtype=torch.bool), torch.tensor([s == 4] * n), o
        )
    frames = 7
    demo_data = dict(
        rgb=torch.randint(0, 255, (frames, c, h, w), dtype=torch.uint8),
        state=torch.randn(frames, 5),
        actions=torch.rand(5, 2) * 2 - 1,
        rewards=torch.rand(5),
        terminated=torch.tensor([False, False, True, False, False]),
        truncated=torch.zeros(5, dtype=torch.bool),
        step_frame=torch.tensor([0, 1, 2, 4, 5]),
        ep_last=torch.tensor([2, 2, 2, 4, 4]),
    )
    demos = replay.DemoReplay(demo_data, "cpu", 0.8)
    policy = sac_rgb.PixelPolicy(c, h, w, 5, 2, feature_dim=8, hidden_dim=8, state_in_dim=5)
    qnets = nets.QEnsemble(lambda: nets.QNetwork(policy.encoder.out_dim, 2, 8), 5, torch.device("cpu"))
    args = SimpleNamespace(
        cudagraphs=False, compile=False, q_lr=1e-3, policy_lr=1e-3, alpha=0.2, alpha_lr=1e-3, autotune=True,
        bc_coef=1.0, bc_decay_steps=10, demo_ratio=0.5, critic_warmup_steps=0, batch_size=8, utd=1.0,
        policy_frequency=1, target_network_frequency=1, tau=0.01, learning_starts=0,
    )  # fmt: skip
    upd = make_sac_updates(policy.actor, qnets, args, 2, torch.device("cpu"), encoder=policy.encoder)
    aug = Augmentation("shift+color", pad=4, rgb_channels=3)

    def prepare(batch):
        batch["obs", "rgb"], batch["next_obs", "rgb"] = aug.pair(batch["obs", "rgb"], batch["next_obs", "rgb"])
        return batch

    updater = SacUpdater(upd, qnets, args, torch.device("cpu"), prepare=prepare, demos=demos)
    updater.train_step(rb, True, True)  # lazy optimizer state is created outside the counted step
    reads = []
    for name in ("__bool__", "item", "tolist", "__int__", "__float__", "__index__"):
        orig = getattr(torch.Tensor, name)

        def counting(self, *a, _orig=orig, _name=name, **k):
            import traceback

            stack = traceback.format_stack()
            # the CPU Adam reads its step counter; with --cudagraphs the optimizers are capturable=True
            # (make_sac_updates) and keep it on the device, so only reads outside torch.optim count
            if not any("/torch/optim/" in f for f in stack):
                reads.append((_name, stack[-2].strip().splitlines()[0]))
            return _orig(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, counting)
    critic_logs, actor_logs = updater.train_step(rb, True, True)
    monkeypatch.undo()
    assert reads == [], reads
    assert actor_logs is not None and float(critic_logs["qf_loss"]) >= 0


def test_cudagraphs_with_a_host_buffer_is_refused():
    from cleanrl_style.lib.fast import check_fast_flags

    with pytest.raises(UserError, match="--buffer-device cpu"):
        check_fast_flags(SimpleNamespace(cudagraphs=True, buffer_device="cpu"), "gpu")
    check_fast_flags(SimpleNamespace(cudagraphs=True, buffer_device="auto"), "gpu")
