"""bench/gpu_check.py (`make gpu-check`) on a CPU-only machine: the one-line refusal, the plan and its
command lines (parsed by each script's own Args), the budget scheduling, the subprocess runner (exit
codes, timeouts, process-group kill), the verdicts from fabricated run outputs, the replay-consistency
check on a fake env, the CSV rows and the table. No env is created and nothing trains; every file is
written under tmp_path."""

from __future__ import annotations

import csv
import importlib
import json
import os
import re
import subprocess
import sys
import time

import pytest
import torch
import tyro
from conftest import REPO_ROOT, run_script

from cleanrl_style.lib.replay import ReplayBuffer
from cleanrl_style.lib.runs import UserError

sys.path.insert(0, str(REPO_ROOT))
from bench import env_fps, gpu_check, train_sps  # noqa: E402
from bench.gpu_check import Check, Result  # noqa: E402

CHECK_NAMES = (
    "env",
    "replay_cpu_buffer",
    "ppo",
    "ppo_rgb",
    "sac",
    "sac_rgb",
    "bc_cpu_eval",
    "eval_memory",
    "finetune",
    "finetune_peg",
    "env_fps",
    "train_sps",
)
TRAIN_SCRIPTS = ("ppo", "ppo_rgb", "sac", "sac_rgb")
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="asserts the behaviour without CUDA")


def _exists(script: str) -> bool:
    return (REPO_ROOT / "cleanrl_style" / f"{script}.py").is_file()


def _fake(name: str, estimate: float, timeout: float = 60.0, kind: str = "exit", mode: str = "", commands=()):
    return Check(name, mode, kind, estimate, timeout, tuple(tuple(c) for c in commands))


# ----------------------------------------------------------------------------- CLI without CUDA
@no_cuda
@pytest.mark.parametrize("argv", [(), ("--run-check", "eval_memory")], ids=["plan", "run-check"])
def test_without_cuda_one_line_and_exit_1(argv):
    proc = run_script("bench/gpu_check.py", *argv, timeout=120)
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert len(lines) == 1, lines
    assert "no CUDA" in lines[0] and "torch.cuda.is_available() is False" in lines[0], lines[0]


def test_bad_flags_are_one_error_line():
    proc = run_script("bench/gpu_check.py", "--dry-run", "--only", "ppo", "nope", timeout=120)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: --only: unknown nope"), lines


def test_dry_run_lists_every_check_and_its_command_lines():
    proc = run_script("bench/gpu_check.py", "--dry-run", timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    entries = re.findall(r"^\s*\d+\. (\S+)\s+estimate\s+(\d+) s\s+timeout\s+(\d+) s$", out, flags=re.M)
    names = [e[0].split(":")[0] for e in entries]
    expected = [n for n in CHECK_NAMES if n not in TRAIN_SCRIPTS or _exists(n)]
    if not (_exists("bc") and _exists("collect_demos")):
        expected.remove("bc_cpu_eval")
    if not (_exists("bc") and _exists("collect_demos") and _exists("sac_rgb")):
        expected.remove("finetune")
        expected.remove("finetune_peg")
    assert list(dict.fromkeys(names)) == expected  # every check, in priority order
    assert all(int(est) <= int(timeout) for _, est, timeout in entries)
    commands = [ln.strip()[2:] for ln in out.splitlines() if ln.strip().startswith("$ ")]
    for script in ("ppo", "ppo_rgb", "sac", "sac_rgb", "collect_demos", "bc"):
        if _exists(script):
            assert any(f"cleanrl_style/{script}.py " in c for c in commands), script
    for script in TRAIN_SCRIPTS:
        if not _exists(script):
            continue
        runs = [c for c in commands if f"cleanrl_style/{script}.py " in c]
        assert sum("--compile" in c for c in runs) == 1 and sum("--cudagraphs" in c for c in runs) == 1
        assert not any("--compile" in c and "--cudagraphs" in c for c in runs)  # each flag alone
        assert all("--sim-backend gpu" in c and "--eval-freq 0" in c for c in runs)
    assert any("bench/env_fps.py " in c for c in commands) and any("bench/train_sps.py " in c for c in commands)
    assert out.count("--run-check ") == 5  # env (3 parts), replay_cpu_buffer, eval_memory
    summary = out.strip().splitlines()[-1]
    assert summary.startswith("gpu-check: ") and "--budget-s 540" in summary and "skipped (budget)" in summary


def test_every_command_parses_with_the_args_of_its_script(tmp_path):
    """A misspelt flag would cost a run on the GPU box: each command line goes through its script's own
    tyro Args here. Also: the env_fps grid covers the settings train_sps compares against."""
    checks = gpu_check.build_checks(sys.executable, str(tmp_path), "results")
    parsed = {}
    for c in checks:
        for cmd in c.commands:
            assert cmd[0] == sys.executable
            script = cmd[1]
            module = script[:-3].replace("/", ".")
            assert (REPO_ROOT / script).is_file(), script
            args_cls = importlib.import_module(module).Args
            try:
                parsed[(c.id, script)] = tyro.cli(args_cls, args=list(cmd[2:]))
            except SystemExit:
                pytest.fail(f"{c.id}: {script} rejects {cmd[2:]}")
    for (cid, script), a in parsed.items():
        if script == "bench/gpu_check.py":
            assert a.run_check in gpu_check.INPROC
        elif script.startswith("cleanrl_style/") and cid.split(":")[0] in TRAIN_SCRIPTS:
            mode = cid.split(":")[1]
            assert (a.compile, a.cudagraphs) == (mode == "compile", mode == "cudagraphs")
            assert a.num_envs >= 512 and a.total_timesteps <= 4 * a.num_envs * 50
            assert a.runs_dir.startswith(str(tmp_path))
    if _exists("ppo_rgb"):
        assert parsed[("ppo_rgb:eager-res128", "cleanrl_style/ppo_rgb.py")].image_size == 128
    if _exists("sac_rgb"):
        assert parsed[("sac_rgb:eager-buffer-cpu", "cleanrl_style/sac_rgb.py")].buffer_device == "cpu"
    ea = parsed[("env_fps", "bench/env_fps.py")]
    grid = env_fps.build_grid(ea.obs, ea.res, ea.num_envs, "gpu")
    for script in ("ppo", "ppo_rgb"):
        f = train_sps.FIXED[script]["gpu"]
        assert env_fps.Config(f.obs, f.res if f.obs != "state" else None, f.num_envs) in grid, script
    assert parsed[("train_sps", "bench/train_sps.py")].env_fps_csv == ea.out == "results/env_fps.csv"


def test_only_selects_by_check_check_mode_or_mode(tmp_path):
    checks = gpu_check.build_checks("python", str(tmp_path), "results")
    assert gpu_check.select(checks, ()) == checks
    ids = [c.id for c in gpu_check.select(checks, ("env", "sac:cudagraphs", "compile"))]
    assert ids[0] == "env" and "sac:cudagraphs" in ids and "sac:eager" not in ids
    assert {i.split(":")[1] for i in ids[1:] if ":" in i} == {"cudagraphs", "compile"}
    assert all(i.endswith(":compile") for i in ids if ":" in i and i != "sac:cudagraphs")
    assert [c.id for c in gpu_check.select(checks, ("train_sps", "env"))] == ["env", "train_sps"]  # plan order
    with pytest.raises(UserError, match="unknown ppo:turbo"):
        gpu_check.select(checks, ("ppo:turbo",))


def test_makefile_gpu_check_runs_without_setup():
    text = (REPO_ROOT / "Makefile").read_text()
    assert re.search(r"^\.PHONY:.*\bgpu-check\b", text, flags=re.M)
    assert re.search(r"^gpu-check:\s*$", text, flags=re.M), "gpu-check must not depend on setup"
    assert "make gpu-check" in text.split("\n\n")[0]  # listed in the comment header
    # under `make test` the outer make's MAKEFLAGS/MAKELEVEL would make this one print "Entering directory"
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES")}
    for venv in (True, False):
        dry = subprocess.run(
            ["make", "--no-print-directory", "-n", "gpu-check", "GPU_CHECK_ARGS=--dry-run"]
            + ([] if venv else ["GPU_PY=python3"]),  # what the GPU box (no .venv) resolves to
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
        )
        assert dry.returncode == 0, dry.stderr
        py = ".venv/bin/python" if venv and (REPO_ROOT / ".venv/bin/python").exists() else "python3"
        assert dry.stdout.strip() == f"{py} bench/gpu_check.py --dry-run"


# ----------------------------------------------------------------------------- budget and scheduling
def test_schedule_runs_what_fits_and_skips_the_rest():
    now = [0.0]
    durations = {"a": 40, "b": 50, "d": 10}
    given = {}

    def run_one(check, timeout_s):
        given[check.name] = timeout_s
        now[0] += durations[check.name]
        return Result(check, "pass", durations[check.name], "ok")

    seen = []
    checks = [_fake("a", 30), _fake("b", 50, timeout=200), _fake("c", 20), _fake("d", 10), _fake("e", 1)]
    results = gpu_check.schedule(checks, 100, run_one, clock=lambda: now[0], on_result=seen.append)
    assert [r.status for r in results] == ["pass", "pass", "skipped (budget)", "pass", "skipped (budget)"]
    # b: 60 s left, so its 200 s timeout is cut to 60; d: the last 10 s
    assert given == {"a": 60, "b": 60, "d": 10}
    assert results[2].detail == "estimate 20 s, 10 s left" and results[2].seconds == 0
    assert results[4].detail == "estimate 1 s, 0 s left"
    assert [r.check.name for r in seen] == list("abcde")  # every result reported as soon as known
    assert gpu_check.all_passed(results)


def test_projection_uses_the_estimates():
    checks = [_fake("a", 300), _fake("b", 300), _fake("c", 200), _fake("d", 50)]
    assert [r.status for r in gpu_check.projected(checks, 540)] == [
        "pass",
        "skipped (budget)",
        "pass",
        "skipped (budget)",
    ]
    assert all(r.status == "pass" for r in gpu_check.projected(checks, 850))


def test_rerun_groups_fit_one_budget_each():
    checks = [_fake("a", 300), _fake("b", 200), _fake("c", 100), _fake("d", 900), _fake("e", 50), _fake("f", 60)]
    assert gpu_check.rerun_groups(checks, 540) == [(["a", "b"], 540), (["c"], 540), (["d"], 960), (["e", "f"], 540)]
    assert gpu_check.rerun_groups([], 540) == []


def test_the_default_budget_fits_the_first_checks_and_under_10_minutes(tmp_path):
    checks = gpu_check.build_checks("python", str(tmp_path), "results")
    assert gpu_check.Args().budget_s + 60 <= 600  # the budget plus start-up and the table: under 10 minutes
    ran = [r.check.id for r in gpu_check.projected(checks, gpu_check.Args().budget_s) if r.status == "pass"]
    assert ran[:2] == ["env", "replay_cpu_buffer"]
    assert all(c.timeout_s <= 600 for c in checks)


# ----------------------------------------------------------------------------- running one check
def _assert_ends(pid: int, within_s: float = 5.0) -> None:
    """The process is gone (or a zombie nobody has reaped yet) within within_s."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return
        except FileNotFoundError:
            return
        time.sleep(0.1)
    pytest.fail(f"process {pid} still running")


def test_run_one_pass_fail_timeout_and_budget_cut(tmp_path, capsys):
    py = sys.executable
    ok = _fake("ok", 1, commands=[[py, "-c", "print('hello')"]])
    r = gpu_check.run_one(ok, 30, tmp_path)
    assert (r.status, r.detail) == ("pass", "exit code 0")
    assert (tmp_path / "ok" / "step1.log").read_text().startswith("$ ")

    steps = ((py, "-c", "print('step one')"), (py, "-c", "raise SystemExit('boom here')"), (py, "-c", "print('never')"))
    bad = Check("bad", "", "exit", 1, 30, steps)
    r = gpu_check.run_one(bad, 30, tmp_path)
    assert r.status == "fail" and r.detail == "-c: exit code 1: boom here"
    assert not (tmp_path / "bad" / "step3.log").exists()  # stops at the first failing step
    assert "    | boom here" in capsys.readouterr().out  # the failing step's log tail is printed

    pid_file = tmp_path / "grandchild.pid"
    spawn = "import subprocess, time; p = subprocess.Popen(['sleep', '60']); "
    spawn += f"open({str(pid_file)!r}, 'w').write(str(p.pid))"
    slow = Check("slow", "", "exit", 1, 1.5, ((py, "-c", spawn + "; time.sleep(60)"),))
    t0 = time.monotonic()
    r = gpu_check.run_one(slow, 1.5, tmp_path)
    assert r.status == "timeout" and r.detail.startswith("timeout after 2 s") and time.monotonic() - t0 < 20
    _assert_ends(int(pid_file.read_text()))  # the whole process group was ended, the grandchild too
    orphan = Check("orphan", "", "exit", 1, 30, ((py, "-c", spawn),))  # exits 0, leaves `sleep` behind
    assert gpu_check.run_one(orphan, 30, tmp_path).status == "pass"
    _assert_ends(int(pid_file.read_text()))

    cut = Check("cut", "", "exit", 1, 300, ((py, "-c", "import time; time.sleep(60)"),))
    r = gpu_check.run_one(cut, 1, tmp_path)
    assert r.status == "timeout" and r.detail.startswith("stopped at the end of the budget after 1 s")


def test_latest_arguments_resolve_to_the_newest_match_or_fail_the_step(tmp_path):
    py = sys.executable
    for i, name in enumerate(("a", "b")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "last.pt").write_text(name)
        os.utime(tmp_path / name / "last.pt", (1_000_000 + i, 1_000_000 + i))
    pattern = f"{gpu_check.LATEST}{tmp_path}/*/last.pt"
    assert gpu_check.resolve_latest(("x", "--init-from", pattern)) == (
        "x",
        "--init-from",
        str(tmp_path / "b" / "last.pt"),
    )
    with pytest.raises(UserError, match=r"no file matches .*/nothing/\*\.pt"):
        gpu_check.resolve_latest(("x", f"{gpu_check.LATEST}{tmp_path}/nothing/*.pt"))

    marker = tmp_path / "ran"
    steps = (
        (py, "-c", "print('first')"),
        (py, "-c", f"open({str(marker)!r}, 'w').write('x')", f"{gpu_check.LATEST}{tmp_path}/none/*.pt"),
    )
    r = gpu_check.run_one(Check("chain", "", "exit", 1, 30, steps), 30, tmp_path / "work")
    assert r.status == "fail" and "no file matches" in r.detail and "none/*.pt" in r.detail
    assert not marker.exists()  # the step with an unresolved argument never started
    r = gpu_check.run_one(
        Check("chain2", "", "exit", 1, 30, ((py, "-c", "import sys; print(sys.argv[1])", pattern),)),
        30,
        tmp_path / "w2",
    )
    assert (
        r.status == "pass" and str(tmp_path / "b" / "last.pt") in (tmp_path / "w2" / "chain2" / "step1.log").read_text()
    )


def test_old_outputs_cannot_make_a_check_pass(tmp_path):
    stale = tmp_path / "ppo_eager" / "runs" / "old"
    stale.mkdir(parents=True)
    (stale / "final_eval.json").write_text("{}")
    check = Check("ppo", "eager", "train", 1, 30, ((sys.executable, "-c", "pass"),))
    r = gpu_check.run_one(check, 30, tmp_path)
    assert (r.status, r.detail) == ("fail", "exit code 0 but no final_eval.json was written")


# ----------------------------------------------------------------------------- verdicts
def _step(tmp_path, name, text, rc, cmd=("python", "bench/gpu_check.py", "--run-check", "x")):
    log = tmp_path / f"{name}.log"
    log.write_text(text)
    return gpu_check.Step(tuple(cmd), rc, log)


def test_verdict_of_a_training_run(tmp_path):
    check = Check("ppo", "eager", "train", 1, 1, (("python", "cleanrl_style/ppo.py"),))
    run = tmp_path / "runs" / "PickCube-v1__gpu_check__1__x"
    run.mkdir(parents=True)
    with open(run / "metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerows([["step", "wall_time", "name", "value"], [51200, 1.0, "time/sps", 900], [51200, 1.0, "x", 1]])
        w.writerows([[102400, 2.0, "time/sps", 45678.9], [102400, 2.0, "time/env_fps", 99999]])
    steps = [_step(tmp_path, "s", "$ cmd\ntraining...\n", 0)]
    assert gpu_check.judge(check, tmp_path, steps) == ("fail", "exit code 0 but no final_eval.json was written")
    (run / "final_eval.json").write_text("{}")
    assert gpu_check.judge(check, tmp_path, steps) == ("pass", "sps 45.7k")  # the last time/sps logged
    crashed = [_step(tmp_path, "s", "$ cmd\nTraceback ...\nRuntimeError: CUDA error: out of memory\n\n", 1)]
    assert gpu_check.judge(check, tmp_path, crashed) == ("fail", "exit code 1: RuntimeError: CUDA error: out of memory")
    hung = [_step(tmp_path, "s", "$ cmd\nstep 10\r 20%|##    |\r 40%|####  |", None)]
    assert gpu_check.judge(check, tmp_path, hung) == ("timeout", "40%|####  |")  # progress bars split lines


def test_verdict_of_the_finetune_check(tmp_path):
    check = gpu_check.Check("finetune", "", "finetune", 1, 1, (("python", "cleanrl_style/sac_rgb.py"),) * 2)
    steps = [_step(tmp_path, "s", "$ cmd\n", 0)] * 2
    for row in ("recipe", "residual"):
        (tmp_path / "rl" / row / "r").mkdir(parents=True)
    assert gpu_check.judge(check, tmp_path, steps) == (
        "fail",
        "exit code 0 but the recipe run wrote no final_eval.json",
    )
    (tmp_path / "rl" / "recipe" / "r" / "final_eval.json").write_text("{}")
    assert gpu_check.judge(check, tmp_path, steps) == (
        "fail",
        "exit code 0 but the residual run wrote no final_eval.json",
    )
    (tmp_path / "rl" / "residual" / "r" / "final_eval.json").write_text("{}")
    with open(tmp_path / "rl" / "residual" / "r" / "metrics.csv", "w", newline="") as f:
        csv.writer(f).writerows([["step", "wall_time", "name", "value"], [3072, 1.0, "time/sps", 2500]])
    assert gpu_check.judge(check, tmp_path, steps) == ("pass", "recipe final_eval.json written; residual sps 2.5k")
    failed = [
        _step(tmp_path, "s", "$ cmd\n", 0),
        _step(tmp_path, "t", "$ cmd\nerror: boom\n", 1, ("python", "cleanrl_style/sac_rgb.py")),
    ]
    assert gpu_check.judge(check, tmp_path, failed) == ("fail", "sac_rgb.py: exit code 1: error: boom")


@pytest.mark.parametrize("check", ["finetune", "finetune_peg"])
def test_finetune_check_runs_the_gpu_configs_flags_with_a_few_iterations(tmp_path, check):
    """A finetune check's sac_rgb.py steps are its task's configs/finetune/*_gpu.args less the flags that size a
    run or name its inputs: a flag changed in a GPU config is the flag the check runs."""
    from bench import reproduce

    task = gpu_check.FINETUNE_TASKS[check]
    steps = gpu_check.finetune_commands("python", str(tmp_path), check)
    rl = [s for s in steps if s[1] == "cleanrl_style/sac_rgb.py"]
    bcs = [s for s in steps if s[1] == "cleanrl_style/bc.py"]
    assert len(rl) == len(bcs) == len(task.configs) == (2 if check == "finetune" else 1)
    convert = steps[0]
    assert convert[1] == "cleanrl_style/collect_demos.py"
    assert convert[convert.index("--env-id") + 1] == task.env_id
    assert convert[convert.index("--control-mode") + 1] == task.control_mode
    demo = f"trajectory.rgb.{task.control_mode}.physx_cpu.h5"
    assert all(b[b.index("--demo-path") + 1].endswith(demo) and b[b.index("--env-id") + 1] == task.env_id for b in bcs)
    if check == "finetune_peg":  # the pipeline's bc.py flags: the auxiliary loss on the peg
        assert bcs[0][bcs[0].index("--aux-actor") + 1] == "peg"
    for cmd, (name, file) in zip(rl, task.configs.items()):
        flags, tier, _, script = reproduce.parse_args_file(REPO_ROOT / "configs" / "finetune" / file)
        assert (tier, script) == ("gpu", "sac_rgb")
        kept, dropped = reproduce.drop_flags(flags, gpu_check.FINETUNE_SIZED)
        assert "--total-timesteps" in dropped and "--num-envs" in kept
        assert list(cmd[2 : 2 + len(kept)]) == kept
        given = {cmd[i]: cmd[i + 1] for i in range(2, len(cmd) - 1) if cmd[i].startswith("--")}
        assert given["--total-timesteps"] == str(gpu_check.TRAIN["sac_rgb"][1]) and given["--sim-backend"] == "gpu"
        assert given["--runs-dir"] == f"{tmp_path}/{check}/rl/{name}"
        assert given["--env-id"] == task.env_id and given["--control-mode"] == task.control_mode
        start = given.get("--init-from") or given.get("--residual-of")
        assert start.startswith(gpu_check.LATEST) and start.endswith("/*/last.pt")
        assert len([a for a in cmd if a.startswith("--")]) == len(given)  # no flag twice
    assert "--demos" in rl[0] and all("--demos" not in r for r in rl[1:])
    assert rl[0][rl[0].index("--demos") + 1].endswith(demo)


def test_verdict_of_the_finetune_peg_check_needs_only_its_recipe_run(tmp_path):
    check = gpu_check.Check("finetune_peg", "", "finetune", 1, 1, (("python", "cleanrl_style/sac_rgb.py"),))
    steps = [_step(tmp_path, "s", "$ cmd\n", 0)]
    (tmp_path / "rl" / "recipe" / "r").mkdir(parents=True)
    missing = ("fail", "exit code 0 but the recipe run wrote no final_eval.json")
    assert gpu_check.judge(check, tmp_path, steps) == missing
    (tmp_path / "rl" / "recipe" / "r" / "final_eval.json").write_text("{}")
    assert gpu_check.judge(check, tmp_path, steps) == ("pass", "recipe final_eval.json written")


def test_verdict_of_bc_and_of_in_process_checks(tmp_path):
    bc = Check(
        "bc_cpu_eval", "", "bc", 1, 1, (("python", "cleanrl_style/collect_demos.py"), ("python", "cleanrl_style/bc.py"))
    )
    steps = [_step(tmp_path, "a", "demos\n", 0, bc.commands[0]), _step(tmp_path, "b", "bc\n", 0, bc.commands[1])]
    assert gpu_check.judge(bc, tmp_path, steps) == ("fail", "exit code 0 but no best.pt was written")
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    (run / "best.pt").write_bytes(b"x")
    (run / "final_eval.json").write_text(json.dumps({"success_once": 0.5}))
    assert gpu_check.judge(bc, tmp_path, steps) == ("pass", "best.pt written; final success_once 0.50")
    first_failed = [_step(tmp_path, "a", "ModuleNotFoundError: No module named 'mplib'\n", 1, bc.commands[0])]
    assert gpu_check.judge(bc, tmp_path, first_failed) == (
        "fail",
        "collect_demos.py: exit code 1: ModuleNotFoundError: No module named 'mplib'",
    )

    env = Check("env", "", "inproc", 1, 1, tuple(("python", "bench/gpu_check.py", "--run-check", p) for p in "abc"))
    tag = gpu_check.RESULT_TAG

    def line(ok, detail):
        return f"{tag} {json.dumps(dict(ok=ok, detail=detail))}\n"

    good = [_step(tmp_path, f"i{i}", f"log\n{line(True, f'part {i} ok')}", 0, env.commands[i]) for i in range(3)]
    assert gpu_check.judge(env, tmp_path, good) == ("pass", "part 0 ok; part 1 ok; part 2 ok")
    mixed = good[:1] + [
        _step(tmp_path, "j1", line(False, "images blank"), 1, env.commands[1]),
        _step(tmp_path, "j2", "Traceback\nRuntimeError: vk init failed\n", 1, env.commands[2]),
    ]
    assert gpu_check.judge(env, tmp_path, mixed) == (
        "fail",
        "part 0 ok; images blank; c: exit code 1: RuntimeError: vk init failed",
    )


def test_verdict_of_the_bench_rows():
    rows = [
        dict(obs="state", res="", num_envs="512", env_fps="500000"),
        dict(obs="state", res="", num_envs="1024", env_fps="1200000"),
        dict(obs="rgb", res="64", num_envs="1024", env_fps="95100"),
        dict(obs="rgb", res="128", num_envs="512", env_fps="40200"),
    ]
    assert gpu_check.bench_verdict("env_fps", rows) == (
        "pass",
        "state 1.20M@1024, rgb64 95.1k@1024, rgb128 40.2k@512 (4 rows)",
    )
    assert gpu_check.bench_verdict("env_fps", rows + [dict(obs="rgb", error="OutOfMemoryError: CUDA")]) == (
        "fail",
        "1 of 5 rows have an error: OutOfMemoryError: CUDA",
    )
    assert gpu_check.bench_verdict("env_fps", []) == ("fail", "exit code 0 but no rows were appended")
    sps = [dict(script="ppo", mode="eager", train_sps="30000"), dict(script="ppo", mode="compile", train_sps="61000")]
    sps.append(dict(script="ppo_rgb", mode="eager", train_sps="5000"))
    assert gpu_check.bench_verdict("train_sps", sps) == (
        "pass",
        "train_sps ppo eager 30.0k, compile 61.0k; ppo_rgb eager 5.0k",
    )


# ----------------------------------------------------------------------------- in-process parts
def test_run_check_prints_its_result_line():
    proc = run_script("bench/gpu_check.py", "--run-check", "env-imports", timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = gpu_check.result_line_of(proc.stdout)
    assert result == dict(name="env-imports", ok=True, detail=result["detail"]) and result["detail"].startswith(
        "imports ok"
    )


class FakeEnv:
    """The VecEnv surface replay_consistency uses: rgb uint8 + state obs, random terminations, a time
    limit of 5 steps, info["final_observation"] whenever an episode ended."""

    def __init__(self, n=4):
        self.num_envs, self.action_dim, self.t = n, 2, 0
        self.g = torch.Generator().manual_seed(0)

    def _obs(self):
        n, g = self.num_envs, self.g
        return dict(
            rgb=torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=g),
            state=torch.randn(n, 5, generator=g),
        )

    def reset(self, seed=None):
        self.t = 0
        return self._obs(), {}

    def sample_actions(self):
        return torch.rand(self.num_envs, self.action_dim, generator=self.g) * 2 - 1

    def step(self, action):
        self.t += 1
        terminated = torch.rand(self.num_envs, generator=self.g) < 0.15
        truncated = torch.full((self.num_envs,), self.t % 5 == 0)
        info = dict(final_observation=self._obs()) if (terminated | truncated).any() else {}
        return self._obs(), torch.randn(self.num_envs, generator=self.g), terminated, truncated, info


class LateCopyBuffer(ReplayBuffer):
    """Copies the observation only at the next call, as an asynchronous copy that lands late would."""

    def add_obs(self, obs):
        self._late = obs

    def add_step(self, *step):
        super().add_obs(self._late)
        super().add_step(*step)


class DropsFinalObs(ReplayBuffer):
    def add_step(self, action, reward, terminated, truncated, final_obs=None):
        zeros = None if final_obs is None else {k: torch.zeros_like(v) for k, v in final_obs.items()}
        super().add_step(action, reward, terminated, truncated, zeros)


def test_replay_consistency_passes_the_buffer_and_catches_late_copies():
    ok, detail = gpu_check.replay_consistency(FakeEnv(), 12, ("cpu", "cpu"))
    assert ok, detail
    assert detail.startswith("12 steps x 4 envs identical") and "4096-row cpu->host batch" in detail
    ok, detail = gpu_check.replay_consistency(FakeEnv(), 12, ("cpu", "cpu"), buffer_cls=LateCopyBuffer)
    assert not ok and "cpu buffer rgb: 12/12 steps differ (first 0)" in detail
    ok, detail = gpu_check.replay_consistency(FakeEnv(), 12, ("cpu", "cpu"), buffer_cls=DropsFinalObs)
    # the time limit ends every episode at steps 4 and 9: exactly those steps' next observations differ
    assert not ok and "next_obs rgb: 2/11 steps differ (first 4)" in detail and "buffer rgb:" not in detail


# ----------------------------------------------------------------------------- rows and table
def _results():
    py = "python"
    checks = [
        Check("env", "", "inproc", 60, 180, ((py, "bench/gpu_check.py", "--run-check", "env-gpu"),)),
        Check("ppo", "compile", "train", 150, 420, ((py, "cleanrl_style/ppo.py", "--compile"),)),
        Check("sac", "eager", "train", 45, 180, ((py, "cleanrl_style/sac.py"), (py, "-c", "pass"))),
        Check("train_sps", "", "bench", 420, 600, ((py, "bench/train_sps.py"),)),
    ]
    long = "RuntimeError: " + "x" * 300
    return [
        Result(checks[0], "pass", 41.26, "NVIDIA H200; torch 2.11", date="2031-01-01T00:00:00+0000"),
        Result(checks[1], "timeout", 420.0, "timeout after 420 s: compiling", date="2031-01-01T00:07:00+0000"),
        Result(checks[2], "fail", 12.0, long, date="2031-01-01T00:08:00+0000"),
        Result(checks[3], "skipped (budget)", 0.0, "estimate 420 s, 10 s left", date="2031-01-01T00:08:01+0000"),
    ]


def test_rows_have_the_columns_and_accumulate(tmp_path):
    out = tmp_path / "sub" / "gpu_check.csv"
    machine = dict(device="NVIDIA H200", date="", commit="abc123", versions="torch=2.11", cpu_count=16)
    results = _results()
    assert gpu_check.write_rows(out, results, machine, 540) == 4
    gpu_check.write_rows(out, results[:1], machine, 540)
    with open(out, newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    need = ("device", "date", "commit", "versions", "check", "mode", "status", "seconds", "detail", "command")
    assert all(c in reader.fieldnames for c in need) and list(reader.fieldnames[: len(need)]) == list(need)
    assert len(rows) == 5
    r = rows[1]
    assert (r["device"], r["commit"], r["versions"], r["check"], r["mode"], r["status"]) == (
        "NVIDIA H200",
        "abc123",
        "torch=2.11",
        "ppo",
        "compile",
        "timeout",
    )
    assert (r["seconds"], r["estimate_s"], r["timeout_s"], r["budget_s"]) == ("420", "150", "420", "540")
    assert r["date"] == "2031-01-01T00:07:00+0000" and r["command"] == "python cleanrl_style/ppo.py --compile"
    assert rows[2]["command"] == "python cleanrl_style/sac.py && python -c pass"
    assert rows[2]["detail"] == results[2].detail  # the CSV keeps the whole detail
    assert [x["status"] for x in rows] == ["pass", "timeout", "fail", "skipped (budget)", "pass"]
    assert rows[0]["mode"] == "" and rows[0]["seconds"] == "41.26"


def test_table_lists_every_check_aligned():
    results = _results()
    table = gpu_check.format_table(results, detail_width=60).splitlines()
    assert table[0].split() == ["check", "mode", "status", "seconds", "detail"]
    assert set(table[1].replace(" ", "")) == {"-"}
    body = table[2:]
    assert len(body) == 4
    starts = {ln.index(r.status) for ln, r in zip(body, results)}
    assert starts == {table[0].index("status")}  # the status column is aligned
    assert body[0].split()[:4] == ["env", "-", "pass", "41"]
    assert body[1].split()[:4] == ["ppo", "compile", "timeout", "420"]
    assert body[2].endswith("...") and len(body[2].split("  ")[-1].strip()) == 60  # long details cut
    assert "skipped (budget)  " in body[3] and body[3].split("skipped (budget)")[1].split()[0] == "-"
    assert not gpu_check.all_passed(results)
    assert gpu_check.all_passed([results[0], results[3]])  # skipped checks do not fail the run


def test_main_runs_the_plan_writes_rows_prints_the_table(tmp_path, monkeypatch, capsys):
    """main() end to end with the CUDA check bypassed and a plan of quick commands: a pass, a fail, a check
    the budget cannot hold; one row each, the table, the rerun hint, exit code 1."""
    py = sys.executable
    plan = [
        Check("env", "", "exit", 1, 30, ((py, "-c", "print('fine')"),)),
        Check("ppo", "eager", "exit", 1, 30, ((py, "-c", "raise SystemExit('broken')"),)),
        Check("train_sps", "", "exit", 10_000, 30, ((py, "-c", "pass"),)),
    ]
    monkeypatch.setattr(gpu_check, "require_cuda", lambda: None)
    monkeypatch.setattr(gpu_check, "build_checks", lambda python, work, results_dir: plan)
    out = tmp_path / "gpu_check.csv"
    keep = tmp_path / "keep"
    assert gpu_check.main(gpu_check.Args(out=str(out), keep_dir=str(keep), budget_s=120)) == 1
    text = capsys.readouterr().out
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["check"], r["status"]) for r in rows] == [
        ("env", "pass"),
        ("ppo", "fail"),
        ("train_sps", "skipped (budget)"),
    ]
    assert rows[1]["detail"] == "exit code 1: broken"
    table = text[text.index("check  ") :].splitlines()
    assert [ln.split()[0] for ln in table[2:5]] == ["env", "ppo", "train_sps"]
    assert "gpu-check: 1 passed, 1 failed, 0 timed out, 1 skipped (budget)" in text
    assert "skipped, to run next: python bench/gpu_check.py --only train_sps --budget-s 10060" in text
    assert (keep / "ppo_eager" / "step1.log").is_file()  # --keep-dir keeps the logs
    monkeypatch.setattr(gpu_check, "build_checks", lambda python, work, results_dir: plan[:1])
    assert gpu_check.main(gpu_check.Args(out=str(out), budget_s=120)) == 0


def test_the_docs_section_is_rendered_from_the_plan():
    """docs/benchmarks.md carries the section bench/report.py renders from gpu_check.doc_section(): every
    check, the default budget, the GPU-box commands, and that it has not run on a GPU yet."""
    section = "\n".join(gpu_check.doc_section())
    assert section in (REPO_ROOT / "docs" / "benchmarks.md").read_text()
    assert section.startswith("## GPU preflight: make gpu-check") and "Not yet run on a GPU" in section
    for name in CHECK_NAMES:
        assert f"| `{name}` |" in section
    assert "bash ../shared/gpu/make_bundle.sh" in section
    assert "source .gpu/remote_setup.sh && make gpu-check" in section
