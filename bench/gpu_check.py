"""GPU preflight: everything a CUDA machine can show about this project, in one command, within a budget.
Docs: docs/benchmarks.md ("GPU preflight: make gpu-check")

    make gpu-check                                    # = python bench/gpu_check.py (540 s budget)
    python bench/gpu_check.py --dry-run               # the checks, their timeouts and command lines (no CUDA needed)
    python bench/gpu_check.py --only env replay_cpu_buffer sac:cudagraphs
    python bench/gpu_check.py --only bc_cpu_eval eval_memory env_fps   # a later part, also within 540 s
    python bench/gpu_check.py --keep-dir $OUT/gpu_check   # keep every log and run directory

Checks, in priority order (each one or more subprocesses with its own timeout, so a crash, hang or
out-of-memory in one check does not end the others):
  env                 imports the scripts need; device name, versions; a GPU env (PickCube, 16 envs, rgb)
                      steps; a CPU-sim env (1 env, rgb, rendered by the GPU renderer) returns images
  replay_cpu_buffer   GPU envs (256, rgb 64) -> ReplayBuffer(device="cpu") and a CUDA one for 50 steps, each
                      add queued behind a heavy matmul and followed by an in-place overwrite of its source
                      tensors; every stored frame, action, reward, flag and next observation must equal a
                      synchronous host copy; a batch gathered from the CUDA buffer to the host, read at once,
                      must equal the same gather from the host buffer
  <script>:<mode>     ppo (state, 1024 envs), ppo_rgb (rgb 64, 512 envs; one eager run at 128), sac (state,
                      512 envs), sac_rgb (rgb 64, 512 envs; one eager run with --buffer-device cpu), a few
                      iterations each: all eager runs first, then --cudagraphs, then --compile (each flag
                      alone); pass = exit 0 and final_eval.json written; detail = last logged time/sps
  bc_cpu_eval         2 motion-planning demos on the CPU sim, then bc.py: learner on CUDA, evaluation on the
                      CPU sim; pass = exit 0 and best.pt written
  eval_memory         10 evaluations (32 episodes, 16 eval envs, rgb, reconfigure=True) on one env; pass =
                      device memory used after the last exceeds that after the 2nd by < 256 MB
  finetune            BC -> RL from pixels on the GPU sim: 2 demos converted to rgb 64, bc.py gaussian and
                      chunking policies (learner on CUDA), then sac_rgb.py with the flags of
                      configs/finetune/pickcube_rgb64*_gpu.args (512 envs, a few iterations): --init-from +
                      --demos (the recipe) and --residual-of; pass = exit 0 and both final_eval.json
  finetune_peg        the same for PegInsertionSide's recipe config (base + hand camera, pd_ee_delta_pose,
                      300-step episodes); pass = exit 0 and its final_eval.json
  env_fps, train_sps  the headline benchmark rows (reduced env_fps grid; train_sps ppo and ppo_rgb, all
                      modes), appended by bench/env_fps.py and bench/train_sps.py next to --out

Budget: a check is launched only if its estimate fits into what is left of --budget-s (else it is
recorded as `skipped (budget)` and later, smaller checks may still run), and it is stopped when the budget
is spent (`timeout`). The estimates in this file are guesses (nothing here has run on a GPU yet); `--dry-run`
prints their total and which checks the default budget reaches, and the last lines of a run print `--only ...`
commands for the rest, each fitting one budget (docs/benchmarks.md renders both from this file).
One row per check is appended to --out (results/gpu_check.csv); a pass/fail table ends the output; the
exit code is 0 iff every check that ran passed. Without CUDA it prints one line and exits 1.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import tyro

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import _shared, reproduce  # noqa: E402
from cleanrl_style.lib.runs import UserError, run  # noqa: E402

COLUMNS = (
    "device",
    "date",
    "commit",
    "versions",
    "check",
    "mode",
    "status",
    "seconds",
    "detail",
    "command",
    "estimate_s",
    "timeout_s",
    "budget_s",
    "load1",
    "cpu_count",
)
STATUSES = ("pass", "fail", "timeout", "skipped (budget)")
NO_CUDA = (
    "gpu-check: no CUDA device (torch.cuda.is_available() is False); run it on a GPU machine "
    '(docs/benchmarks.md, "GPU preflight")'
)
RESULT_TAG = "gpu-check-result:"  # the line an in-process check prints last: RESULT_TAG {"name", "ok", "detail"}
ENV_ID = "PickCube"
MODES = ("eager", "cudagraphs", "compile")  # launch order: compile (the slowest) last
LATEST = "@latest:"  # a check step's argument resolved when the step starts: finetune_commands, resolve_latest
# the finetune checks' sac_rgb.py runs: the GPU configs in configs/finetune/ (FINETUNE_TASKS), less the flags
# that size a run (replaced by a few iterations' worth) or name its inputs and outputs (FINETUNE_SIZED: the
# check's own demos and BC runs)


@dataclass(frozen=True)
class FinetuneTask:
    """What a finetune check converts its demos to and runs: the task, its control mode, the GPU config of
    each fine-tuning row (row -> configs/finetune/ file; recipe starts from a gaussian BC policy, residual from
    a chunking one) and the bc.py flags its pipeline adds."""

    env_id: str
    control_mode: str
    configs: dict
    bc_flags: tuple = ()


FINETUNE_TASKS = {
    "finetune": FinetuneTask(
        ENV_ID, "pd_ee_delta_pos", {"recipe": "pickcube_rgb64_gpu.args", "residual": "pickcube_rgb64_residual_gpu.args"}
    ),
    # the stretch (configs/finetune/peginsertionside_rgb64_gpu.sh): base + hand camera, rotation control
    "finetune_peg": FinetuneTask(
        "PegInsertionSide", "pd_ee_delta_pose", {"recipe": "peginsertionside_rgb64_gpu.args"}, ("--aux-actor", "peg")
    ),
}
FINETUNE_SIZED = ("--total-timesteps", "--eval-freq", "--num-eval-envs", "--num-eval-episodes", "--learning-starts")
FINETUNE_SIZED += ("--buffer-size", "--log-freq", "--critic-warmup-steps", "--seed", "--demos", "--sim-backend")
FINETUNE_SIZED += ("--init-from", "--residual-of", "--runs-dir", "--exp-name")
MODE_FLAGS = {"eager": (), "compile": ("--compile",), "cudagraphs": ("--cudagraphs",)}
# Per training run: parallel envs, env steps (a few iterations) and flags. Evaluation is kept cheap:
# no periodic evaluation, 2 episodes on 2 eval envs at the end (final_eval.json).
TRAIN = {
    "ppo": (1024, 3 * 1024 * 50, ("--num-steps", "50")),
    "ppo_rgb": (512, 3 * 512 * 50, ("--num-steps", "50", "--image-size", "64")),
    "sac": (512, 6 * 512, ("--learning-starts", "1024", "--buffer-size", "100000", "--log-freq", "1024")),
    "sac_rgb": (
        512,
        6 * 512,
        ("--learning-starts", "1024", "--buffer-size", "50000", "--log-freq", "1024", "--image-size", "64"),
    ),
}
# Extra eager runs: (script, mode label, flags that replace or extend the script's flags above).
VARIANTS = (
    ("ppo_rgb", "eager-res128", {"--image-size": "128"}),
    ("sac_rgb", "eager-buffer-cpu", {"--buffer-device": "cpu"}),
)
# (estimate, timeout) in seconds per training mode; pixel scripts take ~10 s more (renderer start-up).
# Estimates decide what fits the budget; update them from the `seconds` column after the first GPU run.
MODE_TIME = {"eager": (45, 180), "cudagraphs": (70, 240), "compile": (150, 420)}
EVAL_MEMORY_LIMIT_MB = 256


@dataclass
class Args:
    budget_s: float = 540.0
    """overall budget in seconds: a check starts only if its estimate fits into what is left (else it is
    recorded as `skipped (budget)`), and no check runs past the budget"""
    dry_run: bool = False
    """print the checks, their estimates, timeouts and exact command lines, and what fits the budget; exit 0
    (works without CUDA)"""
    only: tuple[str, ...] = ()
    """run only these: a check (ppo_rgb), check:mode (sac:cudagraphs) or a mode (compile); default all"""
    out: str = "results/gpu_check.csv"
    """CSV one row per check is appended to; env_fps and train_sps append their rows to env_fps.csv and
    train_sps.csv in the same folder"""
    keep_dir: Optional[str] = None
    """keep the checks' logs and run outputs in this folder (default: a temporary folder, deleted at the end)"""
    python: str = field(default_factory=lambda: sys.executable)
    """Python interpreter of the checks' subprocesses"""
    run_check: Optional[str] = None
    """(internal) run one in-process part of a check (env-imports, env-gpu, env-cpu, replay_cpu_buffer,
    eval_memory) in this process and print its result line; the plan runs each as a subprocess"""


def _slug(name: str, mode: str) -> str:
    return f"{name}_{mode}" if mode else name


@dataclass(frozen=True)
class Check:
    """One row of the plan. kind: inproc (steps are `--run-check` parts, all run, each prints a result
    line), train (a training run), bc (collect demos, then bc.py), finetune (demos, BC, two fine-tuning runs),
    bench (a bench/ script appending rows to `csv`), exit (pass iff every step exits 0)."""

    name: str
    mode: str
    kind: str
    estimate_s: float
    timeout_s: float
    commands: tuple[tuple[str, ...], ...]
    csv: str = ""

    @property
    def id(self) -> str:
        return f"{self.name}:{self.mode}" if self.mode else self.name

    @property
    def slug(self) -> str:
        """Its folder under the work directory."""
        return _slug(self.name, self.mode)

    def command_line(self) -> str:
        return " && ".join(shlex.join(c) for c in self.commands)


@dataclass
class Result:
    check: Check
    status: str
    seconds: float
    detail: str
    date: str = field(default_factory=_shared.now_iso)


# ----------------------------------------------------------------------------- the plan
def _flags_with(flags: Sequence[str], changes: dict) -> tuple[str, ...]:
    """`flags` (flag value pairs) with the values in `changes` replaced, or appended where absent."""
    out, changes = list(flags), dict(changes)
    for i in range(0, len(out) - 1, 2):
        if out[i] in changes:
            out[i + 1] = changes.pop(out[i])
    for k, v in changes.items():
        out += [k, v]
    return tuple(out)


def _train_check(py: str, work: str, script: str, mode: str, label: str, changes: dict) -> Check:
    num_envs, total, flags = TRAIN[script]
    est, timeout = MODE_TIME[mode]
    if script.endswith("_rgb"):
        est, timeout = est + 10, timeout + 30
    if label == "eager-buffer-cpu":
        est += 15
    tag = _slug(script, label).replace("-", "_")
    cmd = (
        py,
        f"cleanrl_style/{script}.py",
        "--env-id",
        ENV_ID,
        "--num-envs",
        str(num_envs),
        "--total-timesteps",
        str(total),
        "--eval-freq",
        "0",
        "--num-eval-envs",
        "2",
        "--num-eval-episodes",
        "2",
        "--seed",
        "1",
        "--sim-backend",
        "gpu",
        "--runs-dir",
        f"{work}/{_slug(script, label)}/runs",
        "--exp-name",
        f"gpu_check_{tag}",
        *_flags_with(flags, changes),
        *MODE_FLAGS[mode],
    )
    return Check(script, label, "train", est, timeout, (cmd,))


def finetune_commands(py: str, work: str, check: str = "finetune") -> tuple[tuple[str, ...], ...]:
    """A finetune check (FINETUNE_TASKS): BC -> RL fine-tuning from 64x64 RGB on the GPU sim, the rows of
    docs/finetune.md its task has a GPU config for, with that config's flags (512 envs) except FINETUNE_SIZED:
    a few iterations. The 2 carried raw demos (scripts/gpu_extras.sh; else collected, which needs mplib) are
    converted to rgb 64 on the CPU sim with the GPU renderer; bc.py trains on them (learner on CUDA) a gaussian
    policy (the recipe's start) and, for a residual row, a chunking one (its base); sac_rgb.py starts from
    each. A step's `@latest:` argument is the newest file matching the glob when the step starts (the BC run
    directory's name has a timestamp)."""
    task = FINETUNE_TASKS[check]
    d, env_id = f"{work}/{check}", task.env_id
    carried = _shared.REPO_ROOT / ".gpu" / "demos"
    demos = str(carried) if (carried / f"{env_id}-v1" / "motionplanning" / "trajectory.h5").is_file() else f"{d}/demos"
    rgb = f"{demos}/{env_id}-v1/motionplanning/rgb64/trajectory.rgb.{task.control_mode}.physx_cpu.h5"
    collect = (py, "cleanrl_style/collect_demos.py", "--env-id", env_id, "--num-demos", "2", "--out-dir", demos)
    collect += ("--obs-mode", "rgb", "--image-size", "64", "--control-mode", task.control_mode, "--num-procs", "1")
    steps = [collect + ("--convert-only",) if demos != f"{d}/demos" else collect]
    common = ("--total-iters", "50", "--eval-freq", "25", "--num-eval-episodes", "2", "--num-eval-envs", "1")
    bcs = {"recipe": ("bc_gaussian", ("--policy", "gaussian")), "residual": ("bc_chunk", ("--aux-coef", "10"))}
    for name, policy in (bcs[row] for row in task.configs):
        steps.append(
            (py, "cleanrl_style/bc.py", "--env-id", env_id, "--obs-mode", "rgb", "--demo-path", rgb, *policy)
            + (*task.bc_flags, "--sim-backend", "cpu", *common)
            + ("--runs-dir", f"{d}/{name}", "--exp-name", f"gpu_check_{name}")
        )
    _, total, train_flags = TRAIN["sac_rgb"]  # the train check's sizes, less what the config itself sets
    small = ("--sim-backend", "gpu", "--total-timesteps", str(total), "--eval-freq", "0", "--num-eval-envs", "2")
    small += ("--num-eval-episodes", "2", "--critic-warmup-steps", "64", "--seed", "1")
    starts = {
        "recipe": ("--init-from", f"{LATEST}{d}/bc_gaussian/*/last.pt", "--demos", rgb),
        "residual": ("--residual-of", f"{LATEST}{d}/bc_chunk/*/last.pt"),
    }
    for name, config in task.configs.items():
        start = starts[name]
        flags, _, _, _ = reproduce.parse_args_file(_shared.REPO_ROOT / "configs" / "finetune" / config)
        kept, _ = reproduce.drop_flags(flags, FINETUNE_SIZED)
        sizes, _ = reproduce.drop_flags(list(train_flags), tuple(a for a in kept if a.startswith("--")))
        steps.append(
            (py, "cleanrl_style/sac_rgb.py", *kept, *small, *sizes, *start)
            + ("--runs-dir", f"{d}/rl/{name}", "--exp-name", f"gpu_check_{name}")
        )
    return tuple(steps)


def resolve_latest(cmd: Sequence[str]) -> tuple[str, ...]:
    """`cmd` with every `@latest:GLOB` argument replaced by the newest file matching GLOB (relative paths
    from the repository root); UserError when none matches."""
    out = []
    for a in cmd:
        if a.startswith(LATEST):
            pattern = a[len(LATEST) :]
            root = Path("/") if Path(pattern).is_absolute() else _shared.REPO_ROOT
            found = sorted(root.glob(pattern.lstrip("/")), key=lambda p: p.stat().st_mtime)
            if not found:
                raise UserError(f"no file matches {pattern} (the step that writes it did not)")
            a = str(found[-1])
        out.append(a)
    return tuple(out)


def build_checks(py: str, work: str, results_dir: str) -> list[Check]:
    """Every check in priority order; `work` is the folder for logs and run outputs, `results_dir` where the
    bench scripts append their rows. Training scripts missing from cleanrl_style/ are left out."""
    me = "bench/gpu_check.py"

    def inproc(*parts: str) -> tuple[tuple[str, ...], ...]:
        return tuple((py, me, "--run-check", p) for p in parts)

    checks = [
        Check("env", "", "inproc", 60, 180, inproc("env-imports", "env-gpu", "env-cpu")),
        Check("replay_cpu_buffer", "", "inproc", 60, 180, inproc("replay_cpu_buffer")),
    ]
    have = [s for s in TRAIN if _shared.script_path(s).is_file()]

    def train_checks(mode: str) -> None:
        for script in have:
            checks.append(_train_check(py, work, script, mode, mode, {}))
            for v_script, label, changes in VARIANTS if mode == "eager" else ():
                if v_script == script:
                    checks.append(_train_check(py, work, script, mode, label, changes))

    # eager runs, then the two fixes only a GPU shows (CUDA learner + CPU-sim eval, eval memory), then the
    # opt-in fast paths: the default budget reaches the correctness checks first
    train_checks("eager")
    if _shared.script_path("collect_demos").is_file() and _shared.script_path("bc").is_file():
        rel = f"{ENV_ID}-v1/motionplanning/state/trajectory.state.pd_ee_delta_pos.physx_cpu.h5"
        # the GPU image has no motion planner (mplib): scripts/gpu_extras.sh carries 2 demos in .gpu/demos
        carried = _shared.REPO_ROOT / ".gpu" / "demos" / rel
        demos = f"{work}/bc_cpu_eval/demos"
        demo = str(carried) if carried.is_file() else f"{demos}/{rel}"
        collect = (py, "cleanrl_style/collect_demos.py", "--env-id", ENV_ID, "--num-demos", "2", "--out-dir", demos)
        collect += ("--obs-mode", "state", "--control-mode", "pd_ee_delta_pos", "--num-procs", "1")
        bc = (py, "cleanrl_style/bc.py", "--env-id", ENV_ID, "--demo-path", demo, "--sim-backend", "cpu")
        bc += ("--total-iters", "50", "--eval-freq", "25", "--num-eval-episodes", "2", "--num-eval-envs", "1")
        bc += ("--runs-dir", f"{work}/bc_cpu_eval/runs", "--exp-name", "gpu_check_bc")
        steps = (bc,) if carried.is_file() else (collect, bc)
        checks.append(Check("bc_cpu_eval", "", "bc", 120, 360, steps))
    checks.append(Check("eval_memory", "", "inproc", 90, 240, inproc("eval_memory")))
    if all(_shared.script_path(s).is_file() for s in ("collect_demos", "bc", "sac_rgb")):
        checks.append(Check("finetune", "", "finetune", 240, 540, finetune_commands(py, work)))
        # PegInsertionSide: two cameras, rotation control, 300-step episodes (2 demos of ~180 steps to convert)
        checks.append(Check("finetune_peg", "", "finetune", 240, 540, finetune_commands(py, work, "finetune_peg")))
    for mode in MODES[1:]:
        train_checks(mode)
    env_fps_csv, train_sps_csv = f"{results_dir}/env_fps.csv", f"{results_dir}/train_sps.csv"
    env_fps = (py, "bench/env_fps.py", "--env-id", ENV_ID, "--obs", "state", "rgb", "--res", "64", "128")
    env_fps += ("--num-envs", "256", "512", "1024", "--steps", "100", "--burn-in", "10", "--max-seconds", "5")
    env_fps += ("--sim-backend", "gpu", "--timeout", "120", "--out", env_fps_csv)
    checks.append(Check("env_fps", "", "bench", 200, 480, (env_fps,), csv=env_fps_csv))
    train_sps = (py, "bench/train_sps.py", "--scripts", "ppo", "ppo_rgb", "--modes", *MODES, "--env-id", ENV_ID)
    train_sps += ("--sim-backend", "gpu", "--timeout", "300", "--out", train_sps_csv, "--env-fps-csv", env_fps_csv)
    train_sps += ("--runs-dir", f"{work}/train_sps/runs")
    checks.append(Check("train_sps", "", "bench", 420, 600, (train_sps,), csv=train_sps_csv))
    return checks


def select(checks: list[Check], only: Sequence[str]) -> list[Check]:
    """The checks named by --only (a check name, check:mode, or a mode), in plan order; all without it."""
    if not only:
        return list(checks)
    known = {c.name for c in checks} | {c.id for c in checks} | {c.mode for c in checks if c.mode}
    bad = [n for n in only if n not in known]
    if bad:
        names = " ".join(dict.fromkeys(c.name for c in checks))
        raise UserError(
            f"--only: unknown {', '.join(bad)}; use a check ({names}), check:mode (e.g. sac:cudagraphs) "
            f"or a mode ({' '.join(MODES)})"
        )
    return [c for c in checks if {c.name, c.id, c.mode} & set(only)]


# ----------------------------------------------------------------------------- budget and scheduling
def schedule(
    checks: Sequence[Check],
    budget_s: float,
    run_one: Callable[[Check, float], Result],
    clock: Callable[[], float] = time.monotonic,
    on_result: Optional[Callable[[Result], None]] = None,
) -> list[Result]:
    """Run the checks in order. A check starts only if its estimate fits into the budget that is left,
    with timeout min(its own, what is left); the others become `skipped (budget)` results (a later,
    smaller check may still fit). `run_one(check, timeout_s)` runs one check; `on_result` sees every
    result as soon as it is known."""
    start = clock()
    results = []
    for check in checks:
        left = budget_s - (clock() - start)
        if check.estimate_s > left:
            result = Result(
                check, "skipped (budget)", 0.0, f"estimate {check.estimate_s:.0f} s, {max(left, 0):.0f} s left"
            )
        else:
            result = run_one(check, min(check.timeout_s, left))
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def projected(checks: Sequence[Check], budget_s: float) -> list[Result]:
    """What `schedule` would do if every check took its estimate (for --dry-run)."""
    now = [0.0]

    def fake_run(check: Check, timeout_s: float) -> Result:
        now[0] += check.estimate_s
        return Result(check, "pass", check.estimate_s, "")

    return schedule(checks, budget_s, fake_run, clock=lambda: now[0])


# ----------------------------------------------------------------------------- running one check
@dataclass
class Step:
    cmd: tuple[str, ...]
    rc: Optional[int]  # None: killed at its timeout
    log: Path


def _kill_group(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """End the step's whole process group (the session start_new_session made for it): SIGTERM, then
    after grace_s SIGKILL to whatever is left, e.g. env worker processes or a nested training run that
    outlived its parent and would hold GPU memory during the next check."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
        if sig == signal.SIGTERM:
            time.sleep(0.2)  # let the group's other members exit on their own SIGTERM before the SIGKILL


def run_steps(check: Check, timeout_s: float, out_dir: Path) -> list[Step]:
    """Run the check's commands one after another (all of them for inproc checks, else up to the first
    failure), each logged to out_dir/step<i>.log, under one deadline."""
    deadline = time.monotonic() + timeout_s
    steps = []
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for i, cmd in enumerate(check.commands, 1):
        log = out_dir / f"step{i}.log"
        with open(log, "w") as f:
            try:
                cmd = resolve_latest(cmd)
            except UserError as e:
                f.write(f"$ {shlex.join(cmd)}\nerror: {e}\n")
                steps.append(Step(cmd, 1, log))
                break
            f.write(f"$ {shlex.join(cmd)}\n")
            f.flush()
            proc = subprocess.Popen(
                cmd, stdout=f, stderr=subprocess.STDOUT, cwd=_shared.REPO_ROOT, env=env, start_new_session=True
            )
            try:
                rc = proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                rc = None
            except BaseException:  # Ctrl-C: the child is in its own session and would not see it
                _kill_group(proc)
                raise
            if rc is not None:  # leftovers of a finished step (e.g. orphaned env workers) end here too
                _kill_group(proc, grace_s=2.0)
        steps.append(Step(cmd, rc, log))
        if rc is None or (rc != 0 and check.kind != "inproc"):
            break
    return steps


def log_lines(log: Path) -> list[str]:
    """The log's non-empty lines; progress bars' carriage returns split lines too."""
    return [ln.strip() for ln in re.split(r"[\r\n]", log.read_text(errors="replace")) if ln.strip()]


def last_line(log: Path, width: int = 160) -> str:
    lines = log_lines(log)
    lines = [ln for ln in lines if not ln.startswith("$ ") and not ln.startswith(RESULT_TAG)]
    return lines[-1][:width] if lines else "no output"


def result_line(log: Path) -> Optional[dict]:
    return result_line_of(log.read_text(errors="replace"))


def result_line_of(text: str) -> Optional[dict]:
    """The last RESULT_TAG line an in-process check printed, parsed (None when there is none)."""
    found = None
    for ln in text.splitlines():
        if ln.startswith(RESULT_TAG):
            try:
                found = json.loads(ln[len(RESULT_TAG) :])
            except ValueError:
                continue
    return found


def _rate(x: float) -> str:
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    return f"{x / 1e3:.1f}k" if x >= 1e3 else f"{x:.0f}"


def last_metric(metrics_csv: Path, name: str) -> Optional[float]:
    """The last value logged under `name` in a run's metrics.csv (step,wall_time,name,value)."""
    vals = [_shared.to_float(r.get("value")) for r in _shared.read_rows(metrics_csv) if r.get("name") == name]
    return vals[-1] if vals else None


def finished_run(runs_dir: Path) -> tuple[bool, Optional[float]]:
    """Whether a run under runs_dir wrote final_eval.json, and the last time/sps of the newest such run."""
    runs = sorted(runs_dir.glob("*/final_eval.json"))
    if not runs:
        return False, None
    return True, last_metric(runs[-1].parent / "metrics.csv", "time/sps")


def judge(check: Check, out_dir: Path, steps: list[Step], csv_rows_before: int = 0) -> tuple[str, str]:
    """(status, detail) of a finished check from its steps' exit codes, logs and outputs."""
    if steps and steps[-1].rc is None:
        return "timeout", last_line(steps[-1].log)
    if check.kind == "inproc":
        parts, ok = [], True
        for s in steps:
            res = result_line(s.log)
            good = s.rc == 0 and res is not None and bool(res.get("ok"))
            ok &= good
            if res is not None:
                parts.append(str(res.get("detail", "")))
            else:
                parts.append(f"{s.cmd[-1]}: exit code {s.rc}: {last_line(s.log)}")
        return ("pass" if ok and len(steps) == len(check.commands) else "fail"), "; ".join(parts)
    failed = next((s for s in steps if s.rc != 0), None)
    if failed is not None:
        where = f"{Path(failed.cmd[1]).name}: " if len(check.commands) > 1 else ""
        return "fail", f"{where}exit code {failed.rc}: {last_line(failed.log)}"
    if check.kind == "exit":
        return "pass", "exit code 0"
    if check.kind == "train":
        finished, sps = finished_run(out_dir / "runs")
        if not finished:
            return "fail", "exit code 0 but no final_eval.json was written"
        return "pass", f"sps {_rate(sps)}" if sps is not None else "final_eval.json written; no time/sps logged"
    if check.kind == "bc":
        best = sorted((out_dir / "runs").glob("*/best.pt"))
        if not best:
            return "fail", "exit code 0 but no best.pt was written"
        final = best[-1].parent / "final_eval.json"
        success = json.loads(final.read_text()).get("success_once") if final.is_file() else None
        return "pass", "best.pt written" + (f"; final success_once {success:.2f}" if success is not None else "")
    if check.kind == "finetune":
        parts = []
        for row in FINETUNE_TASKS[check.name].configs:
            finished, sps = finished_run(out_dir / "rl" / row)
            if not finished:
                return "fail", f"exit code 0 but the {row} run wrote no final_eval.json"
            parts.append(f"{row} sps {_rate(sps)}" if sps is not None else f"{row} final_eval.json written")
        return "pass", "; ".join(parts)
    if check.kind == "bench":
        return bench_verdict(check.name, _shared.read_rows(_shared.REPO_ROOT / check.csv)[csv_rows_before:])
    raise ValueError(f"unknown check kind {check.kind}")


def bench_verdict(name: str, rows: list[dict]) -> tuple[str, str]:
    """(status, detail) from the rows a bench script appended during the check."""
    if not rows:
        return "fail", "exit code 0 but no rows were appended"
    bad = [r for r in rows if r.get("error")]
    if bad:
        return "fail", f"{len(bad)} of {len(rows)} rows have an error: {bad[0]['error'][:120]}"
    if name == "env_fps":
        best: dict[str, tuple[float, str]] = {}
        for r in rows:
            key = r["obs"] if r["obs"] == "state" else f"{r['obs']}{r.get('res', '')}"
            fps = _shared.to_float(r.get("env_fps"))
            if fps > best.get(key, (0.0, ""))[0]:
                best[key] = (fps, r.get("num_envs", ""))
        return "pass", ", ".join(f"{k} {_rate(v)}@{n}" for k, (v, n) in best.items()) + f" ({len(rows)} rows)"
    per_script: dict[str, list[str]] = {}
    for r in rows:
        per_script.setdefault(r.get("script", "?"), []).append(
            f"{r.get('mode', '?')} {_rate(_shared.to_float(r.get('train_sps')))}"
        )
    return "pass", "train_sps " + "; ".join(f"{s} {', '.join(v)}" for s, v in per_script.items())


def run_one(check: Check, timeout_s: float, work: Path, index: str = "") -> Result:
    """Run one check in work/<check>/ (emptied first, so no earlier output can make it pass)."""
    out_dir = work / check.slug
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    before = len(_shared.read_rows(_shared.REPO_ROOT / check.csv)) if check.csv else 0
    print(f"gpu-check: {index}{check.id} (timeout {timeout_s:.0f} s) ...", flush=True)
    t0 = time.monotonic()
    steps = run_steps(check, timeout_s, out_dir)
    seconds = round(time.monotonic() - t0, 1)
    status, detail = judge(check, out_dir, steps, before)
    if status == "timeout":
        why = "stopped at the end of the budget" if timeout_s < check.timeout_s else "timeout"
        detail = f"{why} after {timeout_s:.0f} s: {detail}"
    print(f"gpu-check: {check.id}: {status} in {seconds:.0f} s: {detail}", flush=True)
    if status != "pass":
        for s in steps:
            tail = [ln for ln in log_lines(s.log) if not ln.startswith("$ ")][-8:]
            if s.rc != 0 and tail:
                print("\n".join(f"    | {ln[:200]}" for ln in tail), flush=True)
    return Result(check, status, seconds, detail)


# ----------------------------------------------------------------------------- rows and table
def result_rows(results: Sequence[Result], machine: dict, budget_s: float) -> list[dict]:
    return [
        dict(
            machine,
            date=r.date,
            check=r.check.name,
            mode=r.check.mode,
            status=r.status,
            seconds=r.seconds,
            detail=r.detail,
            command=r.check.command_line(),
            estimate_s=r.check.estimate_s,
            timeout_s=r.check.timeout_s,
            budget_s=budget_s,
            load1=_shared.load1(),
        )
        for r in results
    ]


def write_rows(path, results: Sequence[Result], machine: dict, budget_s: float) -> int:
    return _shared.append_rows(path, COLUMNS, result_rows(results, machine, budget_s))


def format_table(results: Sequence[Result], detail_width: int = 100) -> str:
    """The pass/fail table: check, mode, status, seconds, detail (cut to detail_width)."""
    head = ("check", "mode", "status", "seconds", "detail")
    rows = [
        (
            r.check.name,
            r.check.mode or "-",
            r.status,
            "-" if r.status.startswith("skipped") else f"{r.seconds:.0f}",
            r.detail if len(r.detail) <= detail_width else r.detail[: detail_width - 3] + "...",
        )
        for r in results
    ]
    widths = [max(len(x[i]) for x in [head, *rows]) for i in range(4)]

    def fmt(x: Sequence[str]) -> str:
        return "  ".join([*(x[i].ljust(widths[i]) for i in range(3)), x[3].rjust(widths[3]), x[4]]).rstrip()

    return "\n".join([fmt(head), fmt([*("-" * w for w in widths), "-" * 6]), *(fmt(x) for x in rows)])


def rerun_groups(skipped: Sequence[Check], budget_s: float) -> list[tuple[list[str], float]]:
    """The skipped checks packed, in order, into --only groups whose estimates fit budget_s each (a check
    that alone exceeds it gets its own group and budget), so every rerun also stays within one budget."""
    groups: list[tuple[list[str], float]] = []
    used = budget_s
    for c in skipped:
        if c.estimate_s > budget_s:
            groups.append(([c.id], c.estimate_s + 60))
            used = budget_s  # nothing joins an oversized group
        elif used + c.estimate_s > budget_s:
            groups.append(([c.id], budget_s))
            used = c.estimate_s
        else:
            groups[-1][0].append(c.id)
            used += c.estimate_s
    return groups


def all_passed(results: Sequence[Result]) -> bool:
    """True iff every check that ran passed (skipped checks do not count)."""
    return all(r.status == "pass" for r in results if not r.status.startswith("skipped"))


# ----------------------------------------------------------------------------- in-process checks
REQUIRED_MODULES = (
    "torch",
    "numpy",
    "mani_skill",
    "sapien",
    "gymnasium",
    "tensordict",
    "tyro",
    "yaml",
    "h5py",
    "kornia",
    "tqdm",
    "torch.utils.tensorboard",
)
OPTIONAL_MODULES = {"mplib": "collect_demos.py", "imageio": "videos", "cv2": "videos", "matplotlib": "report.py"}


def _imports() -> tuple[bool, str]:
    import importlib

    def missing(mods):
        out = []
        for m in mods:
            try:
                importlib.import_module(m)
            except Exception as e:  # noqa: BLE001  (ImportError, or a broken install)
                out.append(f"{m} ({type(e).__name__})")
        return out

    req, opt = missing(REQUIRED_MODULES), missing(OPTIONAL_MODULES)
    parts = [f"missing: {', '.join(req)}" if req else "imports ok"]
    if opt:
        parts.append("optional missing: " + ", ".join(f"{m} [{OPTIONAL_MODULES[m.split()[0]]}]" for m in opt))
    return not req, "; ".join(parts)


def _env_gpu() -> tuple[bool, str]:
    import mani_skill
    import sapien
    import torch

    from cleanrl_style.lib.envs import make_env

    p = torch.cuda.get_device_properties(0)
    print(
        f"env: {p.name}, {p.total_memory / 2**30:.0f} GiB, compute capability {p.major}.{p.minor}; torch "
        f"{torch.__version__} (CUDA {torch.version.cuda}); mani_skill {mani_skill.__version__}; sapien "
        f"{sapien.__version__}",
        flush=True,
    )
    t0 = time.perf_counter()
    env = make_env(ENV_ID, 16, "rgb", sim_backend="gpu")
    try:
        obs, _ = env.reset(seed=0)
        for _ in range(10):
            obs, reward, _, _, _ = env.step(env.sample_actions())
        torch.cuda.synchronize()
        rgb = obs["rgb"]
        shape_ok = rgb.is_cuda and rgb.dtype == torch.uint8 and rgb.shape[0] == 16 and tuple(rgb.shape[-2:]) == (64, 64)
        std = float(rgb.float().std())
    finally:
        env.close()
    ok = shape_ok and std > 0 and reward.is_cuda
    detail = (
        f"{p.name}; torch {torch.__version__} cuda {torch.version.cuda}, mani_skill {mani_skill.__version__}, "
        f"sapien {sapien.__version__}; gpu sim 16 envs: rgb {tuple(rgb.shape)} {str(rgb.dtype)[6:]} on "
        f"{rgb.device} ({time.perf_counter() - t0:.0f} s)"
    )
    return ok, detail + ("" if std > 0 else ", images blank")


def _env_cpu() -> tuple[bool, str]:
    import torch

    from cleanrl_style.lib.envs import make_env

    env = make_env(ENV_ID, 1, "rgb", sim_backend="cpu")
    try:
        env.reset(seed=0)
        obs, *_ = env.step(env.sample_actions())
    finally:
        env.close()
    rgb = obs["rgb"]
    images = rgb.dtype == torch.uint8 and rgb.shape[0] == 1 and tuple(rgb.shape[-2:]) == (64, 64)
    mean, std = float(rgb.float().mean()), float(rgb.float().std())
    detail = f"cpu sim 1 env: rgb {tuple(rgb.shape)} {str(rgb.dtype)[6:]} mean {mean:.1f}"
    return images and std > 0, detail + ("" if images and std > 0 else ": no image (wrong shape or blank)")


class _Busy:
    """Queues ~20 ms of matmul on the current stream: a copy queued right after it runs late, so code that
    reads a copy's destination before the copy has landed sees stale data."""

    def __init__(self, n: int = 8192):
        import torch

        self.a = torch.randn(n, n, device="cuda")
        self.b = torch.empty_like(self.a)

    def delay(self) -> None:
        import torch

        torch.mm(self.a, self.a, out=self.b)


def _clone(x):
    if x is None:
        return None
    return {k: v.clone() for k, v in x.items()} if isinstance(x, dict) else x.clone()


def _host(x):
    if x is None:
        return None
    return {k: v.cpu() for k, v in x.items()} if isinstance(x, dict) else x.cpu()


def _overwrite(x) -> None:
    """Change source tensors in place (asynchronously, on the device) after they were handed to the buffer."""
    import torch

    for v in [] if x is None else x.values() if isinstance(x, dict) else [x]:
        if v.dtype == torch.bool:
            v.logical_not_()
        else:
            v.add_(1)


def _differing_steps(stored, expected, steps: int) -> list[int]:
    """Indices t (0..steps-1) where the N rows of step t differ (stored/expected: (steps * N, ...))."""
    import torch

    s, e = stored.reshape(steps, -1), expected.reshape(steps, -1)
    return torch.nonzero((s != e).any(dim=1)).flatten().tolist()


def replay_consistency(
    env,
    steps: int,
    devices: tuple[str, str] = ("cpu", "cuda"),
    delay: Callable[[], None] = lambda: None,
    buffer_cls=None,
) -> tuple[bool, str]:
    """Feed `steps` env steps of random actions into a ReplayBuffer on devices[0] (the host) and one on
    devices[1]; every add is queued behind `delay()` and followed by an in-place overwrite of the tensors it
    was given. Then every stored frame, action, reward, flag and next observation must equal synchronous host
    copies taken before the add, and a batch gathered from the devices[1] buffer into host memory, read right
    away, must equal the same gather from the host buffer. (ok, detail)."""
    import torch

    from cleanrl_style.lib import replay as replay_lib

    buffer_cls = buffer_cls or replay_lib.ReplayBuffer
    N = env.num_envs
    obs, _ = env.reset(seed=0)
    specs = {"rgb": (tuple(obs["rgb"].shape[1:]), torch.uint8), "state": (tuple(obs["state"].shape[1:]), torch.float32)}
    capacity = N * (steps + 10)  # nothing wraps
    rbs = [buffer_cls(N, capacity, specs, env.action_dim, d, None, 0.8) for d in devices]
    ref = {k: [] for k in ("rgb", "state", "action", "reward", "terminated", "truncated", "final")}

    def sync() -> None:
        if any(torch.device(d).type == "cuda" for d in devices):
            torch.cuda.synchronize()

    def feed(add: str, *sources) -> None:
        for rb in rbs:
            mine = [_clone(x) for x in sources]
            delay()  # the buffer's copies queue behind this
            getattr(rb, add)(*mine)
            delay()
            for m in mine:  # and this overwrite behind them
                _overwrite(m)

    for _ in range(steps):
        o = _host(obs)  # synchronous host copies: the truth
        ref["rgb"].append(o["rgb"])
        ref["state"].append(o["state"])
        feed("add_obs", obs)
        action = env.sample_actions()
        next_obs, reward, terminated, truncated, info = env.step(action)
        final = info.get("final_observation")
        for k, v in (("action", action), ("reward", reward), ("terminated", terminated), ("truncated", truncated)):
            ref[k].append(_host(v))
        ref["final"].append(_host(final))
        feed("add_step", action, reward, terminated, truncated, final)
        obs = next_obs
    sync()

    cat = {k: torch.cat(ref[k]) for k in ("rgb", "state", "action", "reward", "terminated", "truncated")}
    expected = dict(cat, ended=cat["terminated"] | cat["truncated"])
    # next observation of step t < steps-1: the real final one where truncated (not terminated), else the next
    # stored one (after a termination that is the new episode's first observation)
    boot = (cat["truncated"] & ~cat["terminated"])[: (steps - 1) * N]
    next_ref = {}
    for k in ("rgb", "state"):
        nxt = cat[k][N:].clone()
        for t in range(steps - 1):
            if ref["final"][t] is not None:
                m = boot[t * N : (t + 1) * N]
                nxt[t * N : (t + 1) * N][m] = ref["final"][t][k][m]
        next_ref[k] = nxt
    t_idx = torch.arange(steps - 1).repeat_interleave(N)
    e_idx = torch.arange(N).repeat(steps - 1)
    problems = []
    rows = steps * N
    for rb, dev in zip(rbs, devices):
        stored = dict(rgb=rb.frames["rgb"][:rows], state=rb.frames["state"][:rows])
        stored.update({k: rb.steps[k][:rows] for k in ("action", "reward", "terminated", "ended")})
        for k, v in stored.items():
            bad = _differing_steps(v.cpu(), expected[k], steps)
            if bad:
                problems.append(f"{dev} buffer {k}: {len(bad)}/{steps} steps differ (first {bad[0]})")
        g = rb.gather(t_idx.to(rb.device), e_idx.to(rb.device))
        for k in ("rgb", "state"):
            bad = _differing_steps(g["next_obs"][k].cpu(), next_ref[k], steps - 1)
            if bad:
                problems.append(f"{dev} buffer next_obs {k}: {len(bad)}/{steps - 1} steps differ (first {bad[0]})")

    # a batch gathered from the devices[1] buffer into host memory and read at once (as a CPU learner would)
    to_host = getattr(replay_lib, "to_device", None) or (lambda x, d: x.to(d))
    gen = torch.Generator(device=devices[1]).manual_seed(0)
    B = 4096
    rows_b = torch.randint(steps - 1, (B,), device=devices[1], generator=gen)
    envs_b = torch.randint(N, (B,), device=devices[1], generator=gen)
    delay()
    batch = rbs[1].gather(rows_b, envs_b)
    snapshot = to_host(batch, "cpu").clone()  # what the host holds when the copy call has returned
    delay()
    batch.apply_(lambda v: v.logical_not_() if v.dtype == torch.bool else v.add_(1))
    sync()
    truth = rbs[0].gather(rows_b.cpu(), envs_b.cpu())
    for key in truth.keys(include_nested=True, leaves_only=True):
        got, want = snapshot[key], truth[key]
        # copies must be exact; the discount is gamma ** (k + 1) computed on each device (may differ by an ulp)
        if torch.equal(got, want) or (key == "discount" and torch.allclose(got, want, rtol=0, atol=1e-6)):
            continue
        name = "/".join(key) if isinstance(key, tuple) else key
        n = int((got != want).reshape(B, -1).any(1).sum())
        problems.append(f"{devices[1]}->host batch {name}: {n}/{B} rows differ")
    if problems:
        return False, "; ".join(problems)[:300]
    how = "lib.replay.to_device" if hasattr(replay_lib, "to_device") else "TensorDict.to('cpu')"
    ends = int(expected["ended"].sum())
    return True, (
        f"{steps} steps x {N} envs identical in the {' and '.join(devices)} buffers (frames, actions, rewards, "
        f"flags, next_obs; {ends} episode ends); {B}-row {devices[1]}->host batch ({how}) identical"
    )


def _replay() -> tuple[bool, str]:
    from cleanrl_style.lib.envs import make_env

    env = make_env(ENV_ID, 256, "rgb", image_size=64, sim_backend="gpu")
    try:
        return replay_consistency(env, 50, ("cpu", "cuda"), _Busy().delay)
    finally:
        env.close()


def _eval_memory() -> tuple[bool, str]:
    import torch

    from cleanrl_style.lib.envs import make_env
    from cleanrl_style.lib.evaluation import evaluate

    env = make_env(ENV_ID, 16, "rgb", sim_backend="gpu", partial_reset=False, reconfigure=True)
    used = []
    try:
        for i in range(10):
            m = evaluate(lambda obs: env.sample_actions(), env, 32, seed=1_000_000)
            torch.cuda.synchronize()
            free, total = torch.cuda.mem_get_info()
            used.append((total - free) / 2**20)
            print(
                f"eval_memory: evaluation {i + 1}: {m['episodes']} episodes, device memory used {used[-1]:.0f} MB "
                f"(torch allocated {torch.cuda.memory_allocated() / 2**20:.0f} MB)",
                flush=True,
            )
    finally:
        env.close()
    growth = used[-1] - used[1]
    readings = " ".join(f"{u:.0f}" for u in used)
    return growth < EVAL_MEMORY_LIMIT_MB, (
        f"used MB after each eval: {readings}; 2nd->last {growth:+.0f} MB (limit +{EVAL_MEMORY_LIMIT_MB})"
    )


INPROC = {
    "env-imports": _imports,
    "env-gpu": _env_gpu,
    "env-cpu": _env_cpu,
    "replay_cpu_buffer": _replay,
    "eval_memory": _eval_memory,
}


def require_cuda() -> None:
    import torch

    if not torch.cuda.is_available():
        print(NO_CUDA, file=sys.stderr, flush=True)
        sys.exit(1)


def run_inproc(name: str) -> int:
    if name not in INPROC:
        raise UserError(f"--run-check must be one of {', '.join(INPROC)} (got '{name}')")
    if name != "env-imports":
        require_cuda()
    ok, detail = INPROC[name]()
    print(f"{RESULT_TAG} {json.dumps(dict(name=name, ok=bool(ok), detail=detail))}", flush=True)
    return 0 if ok else 1


# ----------------------------------------------------------------------------- docs
WHAT = {
    "env": "the modules the scripts import load; a GPU env (16 envs, rgb 64) steps and returns uint8 images on "
    "CUDA; a CPU-sim env (1 env, rgb, GPU renderer) returns images",
    "replay_cpu_buffer": "50 steps of 256 GPU envs (rgb 64) into a host and a CUDA ReplayBuffer, each add queued "
    "behind a heavy matmul and followed by an in-place overwrite of its inputs: every stored frame, action, "
    "reward, flag and next observation equals a synchronous host copy; a batch gathered from the CUDA buffer "
    "into host memory, read at once, equals the host buffer's",
    "ppo": "state, 1024 envs, 3 iterations: exit 0 and final_eval.json written (detail: the last time/sps)",
    "ppo_rgb": "rgb 64, 512 envs, 3 iterations (eager-res128: rgb 128): as ppo",
    "sac": "state, 512 envs, 6 iterations, updates from the 3rd: as ppo",
    "sac_rgb": "rgb 64, 512 envs, 6 iterations (eager-buffer-cpu: `--buffer-device cpu`): as ppo",
    "bc_cpu_eval": "2 motion-planning demos on the CPU sim, then bc.py with the learner on CUDA and evaluation on "
    "the CPU sim: exit 0 and best.pt",
    "finetune": "2 carried demos converted to rgb 64 (CPU sim, GPU renderer); bc.py gaussian and chunking policies "
    "(learner on CUDA); sac_rgb.py at 512 GPU envs from each, with the flags of "
    "configs/finetune/pickcube_rgb64*_gpu.args: --init-from + --demos (the recipe) and --residual-of: exit 0 and "
    "both final_eval.json",
    "finetune_peg": "the same chain on PegInsertionSide-v1 (2 carried demos converted to rgb 64 + pd_ee_delta_pose, "
    "base and hand camera; a gaussian BC policy), then sac_rgb.py at 512 GPU envs with the flags of "
    "configs/finetune/peginsertionside_rgb64_gpu.args (300-step episodes): exit 0 and its final_eval.json",
    "eval_memory": "10 evaluations (32 episodes on 16 eval envs, rgb, reconfigured each batch): device memory used "
    f"after the last exceeds that after the 2nd by < {EVAL_MEMORY_LIMIT_MB} MB",
    "env_fps": "bench/env_fps.py: state, rgb 64, rgb 128 x 256, 512, 1024 envs: rows without an error",
    "train_sps": "bench/train_sps.py: ppo and ppo_rgb at their fixed GPU configs, eager / cudagraphs / compile: "
    "rows without an error",
}


def doc_section() -> list[str]:
    """The "GPU preflight" section of docs/benchmarks.md (bench/report.py renders it), from the plan itself."""
    checks = build_checks("python", "<tmp>", "results")
    budget = Args().budget_s
    ran = [r.check.id for r in projected(checks, budget) if r.status == "pass"]
    total = sum(c.estimate_s for c in checks)
    L = [
        "## GPU preflight: make gpu-check",
        "",
        "> **Not yet run on a GPU.** `bench/gpu_check.py` was written and tested on a CPU-only machine: there it "
        "prints one line (`gpu-check: no CUDA device ...`) and exits 1; its plan, budget, subprocess runner, "
        "verdicts, CSV rows and table are covered by tests/test_gpu_check.py.",
        "",
        "The first command for a CUDA machine: it checks what only a GPU can show, appends one row per check to "
        "`results/gpu_check.csv` (device, date, commit, versions, check, mode, status `pass` | `fail` | `timeout` "
        "| `skipped (budget)`, seconds, detail, command) and ends with a pass/fail table; the exit code is 0 iff "
        "every check that ran passed. Each check runs as subprocesses with its own timeout, so a crash, hang or "
        "out-of-memory ends only that check. `env_fps` and `train_sps` append their rows to `results/env_fps.csv` "
        "and `results/train_sps.csv` as usual.",
        "",
        "In priority order (the training runs: all eager runs first, then `--cudagraphs`, then `--compile`, each "
        "flag alone):",
        "",
        "| check | mode: estimate / timeout s | passes when |",
        "|---|---|---|",
    ]
    by_name: dict[str, list[Check]] = {}
    for c in checks:
        by_name.setdefault(c.name, []).append(c)
    for name, cs in by_name.items():
        times = ", ".join(f"{c.mode + ': ' if c.mode else ''}{c.estimate_s:.0f} / {c.timeout_s:.0f}" for c in cs)
        L.append(f"| `{name}` | {times} | {WHAT.get(name, '')} |")
    L += [
        "",
        f"How long: all {len(checks)} checks take ~{total / 60:.0f} minutes by the estimates (guesses until the "
        f"first GPU run; the `seconds` column then says). The default `--budget-s {budget:.0f}` keeps the command "
        "under 10 minutes: a check starts only if its estimate fits into what is left (else `skipped (budget)`, "
        "and a later, smaller one may still run), and none runs past the budget. By the estimates the default "
        f"runs {', '.join(f'`{i}`' for i in ran)}; the output ends with the `--only ...` commands for the rest, "
        "each fitting one budget. `--dry-run` prints every command line and what fits; `--keep-dir DIR` keeps "
        "every log and run directory (default: a temporary folder, deleted).",
        "",
        "On the GPU box (no package index; the bundle holds SAPIEN, ManiSkill and the other packages):",
        "",
        "```bash",
        "bash ../shared/gpu/make_bundle.sh          # here, in the project virtualenv: builds .gpu/ (carry it)",
        "bash scripts/gpu_extras.sh                 # here: adds PyYAML, tqdm, tensorboard and 2 demos to .gpu/",
        "source .gpu/remote_setup.sh && make gpu-check     # on the box: system python3 (no .venv there)",
        'source .gpu/remote_setup.sh && make gpu-check GPU_CHECK_ARGS="--only bc_cpu_eval eval_memory --keep-dir '
        '$OUT/gpu_check"',
        "```",
        "",
        "Without make: `python3 bench/gpu_check.py` (same flags). Only `$OUT` comes back from the box: copy "
        "`results/gpu_check.csv`, `results/env_fps.csv` and "
        "`results/train_sps.csv` there after the run (or pass `--out $OUT/results/gpu_check.csv`) and append the "
        "new rows to the files in `results/`.",
        "",
    ]
    return L


# ----------------------------------------------------------------------------- main
def _repo_relative(p: Path) -> str:
    """A path as the checks' commands (run from the repository root) name it: relative where inside it."""
    try:
        return str(p.relative_to(_shared.REPO_ROOT))
    except ValueError:
        return str(p)


def print_plan(checks: Sequence[Check], budget_s: float) -> None:
    for i, c in enumerate(checks, 1):
        print(f"{i:2d}. {c.id:<26} estimate {c.estimate_s:4.0f} s  timeout {c.timeout_s:4.0f} s")
        for cmd in c.commands:
            print(f"      $ {shlex.join(cmd)}")
    proj = projected(checks, budget_s)
    fit = [r for r in proj if r.status == "pass"]
    rest = [r.check.id for r in proj if r.status != "pass"]
    total = sum(c.estimate_s for c in checks)
    for group, budget in rerun_groups([r.check for r in proj if r.status != "pass"], budget_s):
        print(f"gpu-check: then: python bench/gpu_check.py --only {' '.join(group)} --budget-s {budget:.0f}")
    print(
        f"gpu-check: {len(checks)} checks, ~{total:.0f} s (~{total / 60:.0f} min) by the estimates; with --budget-s "
        f"{budget_s:.0f}: {len(fit)} run (~{sum(r.seconds for r in fit):.0f} s)"
        + (f", {len(rest)} skipped (budget): {' '.join(rest)}" if rest else "")
    )


def main(args: Args) -> int:
    if args.run_check:
        return run_inproc(args.run_check)
    if args.budget_s <= 0:
        raise UserError(f"--budget-s must be > 0 (got {args.budget_s})")
    results_dir = _repo_relative(Path(args.out).resolve().parent)
    if args.dry_run:
        work = str(Path(args.keep_dir).resolve()) if args.keep_dir else "<tmp>"
        print_plan(select(build_checks(args.python, work, results_dir), args.only), args.budget_s)
        return 0
    select(build_checks(args.python, "<tmp>", results_dir), args.only)  # a bad --only fails before the CUDA check
    require_cuda()
    machine = _shared.machine_fields()
    print(f"gpu-check: {machine['device']}; {machine['versions']}; commit {machine['commit']}", flush=True)
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        work = Path(args.keep_dir).resolve() if args.keep_dir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        checks = select(build_checks(args.python, str(work), results_dir), args.only)
        print(f"gpu-check: {len(checks)} checks, budget {args.budget_s:.0f} s, outputs in {work}", flush=True)
        t0 = time.monotonic()
        position = {c.id: f"[{i}/{len(checks)}] " for i, c in enumerate(checks, 1)}

        def record(result: Result) -> None:  # each row as soon as it is known
            if result.status.startswith("skipped"):
                print(f"gpu-check: {position[result.check.id]}{result.check.id}: {result.status}: {result.detail}")
            write_rows(args.out, [result], machine, args.budget_s)

        results = schedule(checks, args.budget_s, lambda c, t: run_one(c, t, work, position[c.id]), on_result=record)
    print("", flush=True)
    print(format_table(results), flush=True)
    n = {s: sum(r.status == s for r in results) for s in STATUSES}
    print(
        f"gpu-check: {n['pass']} passed, {n['fail']} failed, {n['timeout']} timed out, {n['skipped (budget)']} "
        f"skipped (budget) in {time.monotonic() - t0:.0f} s; rows -> {args.out}",
        flush=True,
    )
    for group, budget in rerun_groups([r.check for r in results if r.status.startswith("skipped")], args.budget_s):
        only = " ".join(group)
        print(f"gpu-check: skipped, to run next: python bench/gpu_check.py --only {only} --budget-s {budget:.0f}")
    if not all_passed(results) and not args.keep_dir:
        print("gpu-check: --keep-dir DIR keeps every log and run directory", flush=True)
    return 0 if all_passed(results) else 1


if __name__ == "__main__":
    sys.exit(run(main, tyro.cli(Args)))
