"""Shared fixtures. Env creation costs seconds (multi-env CPU envs start worker processes), so the
envs used by several tests are session-scoped and closed at the end of the session.

All fixtures pin sim_backend="cpu": several tests reach into the in-process CPU env
(SyncVectorEnv -> CPUGymWrapper) or rely on physx_cpu being deterministic across processes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from cleanrl_style.lib.envs import make_env
from cleanrl_style.lib.runs import REPO_ROOT

REPO_ROOT = REPO_ROOT
SHORT_STEPS = 5  # max_episode_steps of the "short" envs


def _make(*args, **kwargs):
    kwargs.setdefault("sim_backend", "cpu")
    return make_env(*args, **kwargs)


@pytest.fixture(scope="session")
def state_env():
    """PickCube, 1 env (in-process), state obs, the task's own episode length (50), partial resets."""
    env = _make("PickCube", 1, "state")
    yield env
    env.close()


@pytest.fixture(scope="session")
def short_env():
    """PickCube, 1 env, state obs, 5-step episodes, partial resets (training semantics)."""
    env = _make("PickCube", 1, "state", max_episode_steps=SHORT_STEPS)
    yield env
    env.close()


@pytest.fixture(scope="session")
def short_eval_env():
    """PickCube, 1 env, state obs, 5-step episodes, partial_reset=False (evaluation semantics)."""
    env = _make("PickCube", 1, "state", max_episode_steps=SHORT_STEPS, partial_reset=False)
    yield env
    env.close()


@pytest.fixture(scope="session")
def async_eval_env():
    """PickCube, 2 envs (AsyncVectorEnv, forkserver workers), state obs, 5-step episodes,
    partial_reset=False. The only multi-process env the fast tests create."""
    env = _make("PickCube", 2, "state", max_episode_steps=SHORT_STEPS, partial_reset=False)
    yield env
    env.close()


def fixed_actions(env, n: int, seed: int = 0) -> list[torch.Tensor]:
    """n reproducible (num_envs, A) actions inside the action bounds."""
    g = torch.Generator().manual_seed(seed)
    lo, hi = env.action_low, env.action_high
    return [lo + torch.rand(env.num_envs, env.action_dim, generator=g) * (hi - lo) for _ in range(n)]


def run_script(*argv: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python <argv...>` from the repository root, as a user would."""
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return subprocess.run(
        [sys.executable, *argv], cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout, env=env
    )


def assert_one_error_line(stderr: str, *needles: str) -> str:
    """stderr is exactly one non-empty line, starting with 'error:', no traceback."""
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, f"expected one stderr line, got:\n{stderr}"
    assert lines[0].startswith("error:"), lines[0]
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]
