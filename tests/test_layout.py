"""The code layout: scripts in cleanrl_style/ are leaves over cleanrl_style/lib/, and checkpoints
written before lib/ existed still load and act as they did."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from conftest import REPO_ROOT

from cleanrl_style.lib.checkpoints import SCRIPTS, load_checkpoint, policy_loader

PKG = REPO_ROOT / "cleanrl_style"
SCRIPT_FILES = sorted(p for p in PKG.glob("*.py") if p.name != "__init__.py")
LIB_FILES = sorted((PKG / "lib").glob("*.py"))
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "old_checkpoints"


def _imported_modules(path: Path) -> set[str]:
    """Every module a file imports statically, as dotted names (`from a import b` gives a and a.b)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def _script_modules() -> set[str]:
    return {f"cleanrl_style.{p.stem}" for p in SCRIPT_FILES}


def test_the_layout_lists_the_runnable_scripts():
    names = {p.stem for p in SCRIPT_FILES}
    assert {"ppo", "ppo_rgb", "sac", "sac_rgb", "bc", "collect_demos", "evaluate"} <= names
    assert set(SCRIPTS) <= names  # every script a checkpoint can name exists


@pytest.mark.parametrize("path", SCRIPT_FILES + LIB_FILES, ids=lambda p: str(p.relative_to(PKG)))
def test_nothing_imports_a_script(path):
    bad = sorted(m for m in _imported_modules(path) if m in _script_modules())
    assert not bad, f"{path.relative_to(REPO_ROOT)} imports script module(s) {bad}: import cleanrl_style.lib instead"


@pytest.mark.parametrize("path", LIB_FILES, ids=lambda p: p.name)
def test_lib_modules_have_no_args_and_no_main(path):
    tree = ast.parse(path.read_text())
    names = {n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
    assert "Args" not in names and "main" not in names
    assert '__name__ == "__main__"' not in path.read_text()


def test_the_layout_test_catches_a_script_import(tmp_path):
    """The checker itself: a file importing a script (either import form) is reported."""
    f = tmp_path / "x.py"
    f.write_text("from cleanrl_style import sac\nimport cleanrl_style.ppo\nfrom cleanrl_style.lib import nets\n")
    assert {"cleanrl_style.sac", "cleanrl_style.ppo"} <= _imported_modules(f) & _script_modules()
    assert "cleanrl_style.lib.nets" not in _script_modules()


# ----------------------------------------------------------------------------- old checkpoints
EXPECTED = torch.load(FIXTURES / "expected_actions.pt", weights_only=False)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_old_layout_checkpoint_loads_and_acts_as_before(name):
    """Checkpoints written by the pre-lib layout (commit ce5071c) load through their script's
    load_policy and give exactly the actions the old code gave on the same observations (two
    successive calls: stateful policies such as action chunking advance their state)."""
    ckpt = load_checkpoint(FIXTURES / f"{name}.pt")
    ref = EXPECTED[name]
    assert ckpt["script"] == ref["script"]
    policy = policy_loader(ckpt)(ckpt, torch.device("cpu"))
    with torch.no_grad():
        got = [policy(ref["obs"]), policy(ref["obs"])]
    for g, want in zip(got, ref["actions"]):
        torch.testing.assert_close(g, want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_old_layout_checkpoint_evaluates(name, tmp_path):
    """evaluate.py rebuilds the env from an old checkpoint's own spec and runs it (1 short episode)."""
    from cleanrl_style import evaluate

    m = evaluate.main(
        evaluate.Args(
            checkpoint=str(FIXTURES / f"{name}.pt"),
            num_episodes=1,
            seed=3,
            sim_backend="cpu",
            max_episode_steps=3,
            out_dir=str(tmp_path),
        )
    )
    assert m["episodes"] == 1 and m["episode_len"] == 3 and m["script"] == EXPECTED[name]["script"]
    assert (tmp_path / f"eval_{name}_seed3.json").exists()
