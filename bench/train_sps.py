"""Training-loop throughput of each script at a fixed config: eager vs --compile vs --cudagraphs.
Docs: docs/benchmarks.md

    python bench/train_sps.py                                 # ppo and ppo_rgb, all modes this machine runs
    python bench/train_sps.py --scripts ppo_rgb --modes eager compile
    python bench/train_sps.py --dry-run                       # print the command lines only

Each (script, mode) trains in a subprocess for a few iterations at a fixed config (this machine's
tier: GPU or CPU), with `--eval-freq 0 --no-save-checkpoints --runs-dir <tmp>`. Its metrics.csv
is then read, dropping every iteration logged at or before `burn-in` env steps (env start-up,
torch.compile, CUDA-graph capture):
  collect_fps  env steps/s while collecting rollouts (policy inference included): the harmonic
               mean of the script's `time/env_fps` over the measured iterations
  update_s     mean `time/update_s`
  train_sps    overall env steps/s by wall clock across the measured iterations (collection,
               advantages, updates, logging)
  env_fps      raw simulator throughput at the same device/env/obs/res/num_envs/controller, from
               `--env-fps-csv` (median of the matching rows) or, without one, measured on the spot
               with bench/env_fps.py's `measure` (and appended there)
  ratio        collect_fps / env_fps: how close the training loop's collection comes to the simulator's
               ceiling
One row per (script, mode) is appended to `--out` (results/train_sps.csv).
"""

from __future__ import annotations

import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import tyro

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import _shared, env_fps  # noqa: E402
from cleanrl_style.lib.envs import resolve_env_id, resolve_sim_backend  # noqa: E402
from cleanrl_style.lib.runs import UserError, device_name, run  # noqa: E402

COLUMNS = (
    "device",
    "date",
    "commit",
    "versions",
    "script",
    "env_id",
    "obs",
    "res",
    "num_envs",
    "mode",
    "env_fps",
    "collect_fps",
    "train_sps",
    "ratio",
    "update_s",
    "rollout_s",
    "iterations",
    "measured_steps",
    "seconds",
    "burn_in_steps",
    "env_fps_source",
    "sim_backend",
    "control_mode",
    "load1",
    "cpu_count",
    "omp_num_threads",
    "run_s",
    "error",
)
SCRIPTS = ("ppo", "ppo_rgb", "sac", "sac_rgb")
MODES = ("eager", "compile", "cudagraphs")
MODE_FLAGS = {"eager": [], "compile": ["--compile"], "cudagraphs": ["--cudagraphs"]}


@dataclass(frozen=True)
class Fixed:
    """A script's benchmark config on one tier. total_timesteps and burn_in are env steps."""

    obs: str
    num_envs: int
    total_timesteps: int
    burn_in: int
    flags: tuple[str, ...] = ()
    res: Optional[int] = None


# The fixed configs. num_envs are in bench/env_fps.py's default grid of the same tier, so the raw
# env FPS for the ratio is already measured. PPO: burn-in = 2 iterations, then 5 (GPU) / 3-4 (CPU)
# measured iterations.
# SAC: burn-in covers --learning-starts plus one log interval (time/* is logged every --log-freq steps).
# The CPU SAC configs are tiny (2-3 minutes each on 2 cores): enough to compare modes, not to learn.
FIXED: dict[str, dict[str, Fixed]] = {
    "ppo": {
        "gpu": Fixed(
            "state",
            1024,
            7 * 1024 * 50,
            2 * 1024 * 50,
            ("--num-steps", "50", "--num-minibatches", "32", "--update-epochs", "4"),
        ),
        "cpu": Fixed(
            "state",
            2,
            6 * 2 * 100,
            2 * 2 * 100,
            ("--num-steps", "100", "--num-minibatches", "4", "--update-epochs", "4"),
        ),
    },
    "ppo_rgb": {
        "gpu": Fixed(
            "rgb",
            256,
            7 * 256 * 50,
            2 * 256 * 50,
            ("--num-steps", "50", "--num-minibatches", "8", "--update-epochs", "4", "--image-size", "128"),
            128,
        ),
        "cpu": Fixed(
            "rgb",
            2,
            5 * 2 * 25,
            2 * 2 * 25,
            ("--num-steps", "25", "--num-minibatches", "2", "--update-epochs", "2", "--image-size", "64"),
            64,
        ),
    },
    "sac": {
        "gpu": Fixed("state", 256, 60_000, 20_000, ("--learning-starts", "4000", "--log-freq", "5000")),
        "cpu": Fixed(
            "state", 2, 1_500, 1_000, ("--learning-starts", "500", "--batch-size", "256", "--log-freq", "250")
        ),
    },
    "sac_rgb": {
        "gpu": Fixed(
            "rgb", 256, 40_000, 15_000, ("--learning-starts", "4000", "--log-freq", "5000", "--image-size", "128"), 128
        ),
        "cpu": Fixed(
            "rgb",
            2,
            600,
            400,
            ("--learning-starts", "200", "--batch-size", "64", "--log-freq", "100", "--image-size", "64"),
            64,
        ),
    },
}


@dataclass
class Args:
    scripts: tuple[str, ...] = ("ppo", "ppo_rgb")
    """training scripts (cleanrl_style/<name>.py): ppo, ppo_rgb, sac, sac_rgb; missing ones are skipped"""
    modes: tuple[str, ...] = MODES
    """eager, compile, cudagraphs (cudagraphs is skipped without CUDA)"""
    env_id: str = "PickCube"
    """ManiSkill task id"""
    sim_backend: str = "auto"
    """auto (GPU if CUDA is present), gpu or cpu: also picks the tier of the fixed config"""
    extra_flags: str = ""
    """flags appended to every training command (later flags win); write it with '=':
    --extra-flags="--num-envs 1024" """
    burn_in: Optional[int] = None
    """override the fixed config's burn-in (env steps logged at or before this are not measured)"""
    total_timesteps: Optional[int] = None
    """override the fixed config's training length"""
    out: str = "results/train_sps.csv"
    """CSV the rows are appended to"""
    env_fps_csv: str = "results/env_fps.csv"
    """raw env FPS rows to compare against; missing settings are measured and appended here"""
    measure_env_fps: bool = True
    """measure the raw env FPS on the spot when env_fps_csv has no matching row (else leave env_fps empty)"""
    runs_dir: Optional[str] = None
    """keep the training runs here (default: a temporary directory, deleted afterwards)"""
    timeout: float = 900.0
    """seconds one training run may take before it is recorded as an error"""
    seed: int = 1
    """training seed"""
    dry_run: bool = False
    """print the training command lines and exit"""
    python: str = field(default_factory=lambda: sys.executable)
    """Python interpreter for the training runs"""


def training_command(args: Args, script: str, mode: str, fixed: Fixed, runs_dir: str) -> list[str]:
    total = args.total_timesteps or fixed.total_timesteps
    cmd = [
        args.python,
        str(_shared.script_path(script)),
        "--env-id",
        args.env_id,
        "--num-envs",
        str(fixed.num_envs),
        "--total-timesteps",
        str(total),
        "--eval-freq",
        "0",
        "--num-eval-envs",
        "1",
        "--num-eval-episodes",
        "1",
        "--no-save-checkpoints",
        "--seed",
        str(args.seed),
        "--sim-backend",
        args.sim_backend,
        "--runs-dir",
        runs_dir,
        "--exp-name",
        f"train_sps_{script}_{mode}",
        *fixed.flags,
        *MODE_FLAGS[mode],
    ]
    return cmd + shlex.split(args.extra_flags)


def summarize_metrics(metrics_csv: os.PathLike, burn_in_steps: int) -> dict:
    """Throughput after the burn-in from a run's metrics.csv (long format step,wall_time,name,value).

    Iterations are the steps at which `time/sps` was logged. The last one at or before burn_in_steps
    is the baseline; every later one is measured. Raises ValueError when nothing is left to measure."""
    per_step: dict[int, dict[str, float]] = {}
    for r in _shared.read_rows(metrics_csv):
        d = per_step.setdefault(int(float(r["step"])), {})
        d[r["name"]] = float(r["value"])
        if r["name"] == "time/sps":  # the iteration's own log time (an eval at the same step is logged later)
            d["_wall"] = float(r["wall_time"])
    points = sorted(s for s, d in per_step.items() if "time/sps" in d)
    before = [s for s in points if s <= burn_in_steps]
    after = [s for s in points if s > burn_in_steps]
    if not before or not after:
        raise ValueError(
            f"{len(points)} logged iterations, {len(after)} after the burn-in of {burn_in_steps} steps; "
            f"need one at or before and one after it"
        )
    base, last = before[-1], after[-1]
    seconds = round(per_step[last]["_wall"] - per_step[base]["_wall"], 6)  # the value train_sps divides by
    out = dict(
        iterations=len(after),
        measured_steps=last - base,
        seconds=seconds,
        train_sps=(last - base) / seconds if seconds > 0 else float("nan"),
    )
    fps = [per_step[s]["time/env_fps"] for s in after if per_step[s].get("time/env_fps", 0) > 0]
    out["collect_fps"] = len(fps) / sum(1.0 / x for x in fps) if fps else float("nan")
    for name in ("update_s", "rollout_s"):
        vals = [per_step[s][f"time/{name}"] for s in after if f"time/{name}" in per_step[s]]
        out[name] = statistics.fmean(vals) if vals else float("nan")
    return out


def lookup_env_fps(
    rows: list[dict], device: str, env_id: str, obs: str, res: Optional[int], num_envs: int, control_mode: Optional[str]
) -> tuple[float, int]:
    """Median env_fps over the error-free rows of the same setting (the quiet ones when there are any,
    see _shared.quiet_rows), and how many rows that was."""
    hits = []
    for r in rows:
        if r.get("error") or r.get("device") != device or r.get("env_id") != env_id or r.get("obs") != obs:
            continue
        if _shared.parse_res(r.get("res")) != (res if obs != "state" else None):
            continue
        if int(float(r.get("num_envs") or -1)) != num_envs:
            continue
        if control_mode and r.get("control_mode") and r["control_mode"] != control_mode:
            continue
        if _shared.to_float(r.get("env_fps")) > 0:
            hits.append(r)
    hits = [_shared.to_float(r["env_fps"]) for r in _shared.quiet_rows(hits)]
    return (statistics.median(hits), len(hits)) if hits else (float("nan"), 0)


def _run_config(run_dir: Path) -> dict:
    import yaml

    with open(run_dir / "config.yaml") as f:
        return yaml.safe_load(f)


def bench_one(args: Args, script: str, mode: str, fixed: Fixed, runs_root: Path) -> dict:
    """Train one (script, mode) and return its row (with an `error` note when it failed)."""
    tag = f"{script}_{mode}"
    runs_dir = runs_root / tag
    cmd = training_command(args, script, mode, fixed, str(runs_dir))
    burn_in = args.burn_in if args.burn_in is not None else fixed.burn_in
    row = dict(script=script, mode=mode, obs=fixed.obs, res=fixed.res, num_envs=fixed.num_envs, burn_in_steps=burn_in)
    print(f"train_sps: {script} {mode}: {shlex.join(cmd)}", flush=True)
    t0 = time.time()
    log_path = runs_root / f"{tag}.log"
    try:
        with open(log_path, "w") as log:
            proc = subprocess.run(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=args.timeout,
                cwd=_shared.REPO_ROOT,
                env=dict(os.environ, PYTHONUNBUFFERED="1"),
            )
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        rc = None
    row["run_s"] = round(time.time() - t0, 1)
    row["load1"] = _shared.load1()
    run_dirs = sorted(p for p in runs_dir.glob("*") if (p / "metrics.csv").is_file()) if runs_dir.is_dir() else []
    if rc != 0 or not run_dirs:
        lines = [ln for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
        why = f"timeout after {args.timeout:.0f} s" if rc is None else f"exit code {rc}"
        row["error"] = f"{why}: {lines[-1][:180] if lines else 'no output'}"
        print(f"train_sps: {script} {mode}: FAILED ({row['error']}); log: {log_path}", flush=True)
        return row
    cfg = _run_config(run_dirs[-1])
    a = cfg.get("args", {})
    row.update(
        env_id=cfg.get("env_id", args.env_id),
        obs=a.get("obs_mode", fixed.obs),
        num_envs=a.get("num_envs") or fixed.num_envs,
        control_mode=a.get("control_mode"),
        sim_backend=resolve_sim_backend(a.get("sim_backend", args.sim_backend)),
    )
    row["res"] = (a.get("image_height") or a.get("image_size")) if row["obs"] != "state" else None
    try:
        row.update(summarize_metrics(run_dirs[-1] / "metrics.csv", burn_in))
    except ValueError as e:
        row["error"] = str(e)[:200]
    return row


def attach_env_fps(args: Args, row: dict, device: str) -> None:
    """Fill env_fps (raw simulator ceiling at the same setting) and ratio = collect_fps / env_fps."""
    if row.get("error"):
        return
    res = row["res"] if row["obs"] != "state" else None
    fps, n = lookup_env_fps(
        _shared.read_rows(args.env_fps_csv),
        device,
        row["env_id"],
        row["obs"],
        res,
        int(row["num_envs"]),
        row.get("control_mode"),
    )
    if n:
        row["env_fps_source"] = f"{args.env_fps_csv} (median of {n})"
    elif args.measure_env_fps:
        print(
            f"train_sps: no raw env FPS for {row['env_id']} {row['obs']} res={res} num_envs={row['num_envs']} "
            f"in {args.env_fps_csv}; measuring it now",
            flush=True,
        )
        ea = env_fps.Args(
            env_id=row["env_id"],
            obs=(row["obs"],),
            res=(res,) if res else (),
            num_envs=(int(row["num_envs"]),),
            control_mode=row.get("control_mode") or "pd_joint_delta_pos",
            sim_backend=args.sim_backend,
            out=args.env_fps_csv,
        )
        measured = env_fps.main(ea)
        good = [r for r in measured if not r.get("error")]
        if good:
            fps = float(good[0]["env_fps"])
            row["env_fps_source"] = "measured now"
    if fps == fps and fps > 0:  # not NaN
        row["env_fps"] = fps
        row["ratio"] = row["collect_fps"] / fps


def main(args: Args) -> list[dict]:
    bad = [s for s in args.scripts if s not in SCRIPTS]
    if bad:
        raise UserError(f"--scripts must be among {', '.join(SCRIPTS)} (got {', '.join(bad)})")
    bad = [m for m in args.modes if m not in MODES]
    if bad:
        raise UserError(f"--modes must be among {', '.join(MODES)} (got {', '.join(bad)})")
    backend = resolve_sim_backend(args.sim_backend)
    tier = "gpu" if backend == "gpu" else "cpu"
    try:
        shlex.split(args.extra_flags)
    except ValueError as e:
        raise UserError(f"--extra-flags: {e}") from e

    plan = []
    for script in args.scripts:
        if not _shared.script_path(script).is_file():
            print(
                f"train_sps: skip {script}: "
                f"{_shared.script_path(script).relative_to(_shared.REPO_ROOT)} does not exist",
                flush=True,
            )
            continue
        for mode in args.modes:
            if mode == "cudagraphs" and backend != "gpu":
                print(f"train_sps: skip {script} cudagraphs: needs CUDA (GPU sim backend)", flush=True)
                continue
            plan.append((script, mode, FIXED[script][tier]))
    if args.dry_run:
        for script, mode, fixed in plan:
            print(shlex.join(training_command(args, script, mode, fixed, args.runs_dir or "<tmp>")))
        return []
    if not plan:
        print("train_sps: nothing to run", flush=True)
        return []
    resolve_env_id(args.env_id)
    device = device_name()
    rows = []
    with tempfile.TemporaryDirectory(prefix="train_sps_") as tmp:
        runs_root = Path(args.runs_dir) if args.runs_dir else Path(tmp)
        runs_root.mkdir(parents=True, exist_ok=True)
        for script, mode, fixed in plan:
            row = bench_one(args, script, mode, fixed, runs_root)
            attach_env_fps(args, row, device)
            row = dict(_shared.machine_fields(), omp_num_threads=os.environ.get("OMP_NUM_THREADS", ""), **row)
            row.setdefault("env_id", resolve_env_id(args.env_id))
            if not row.get("error"):
                ratio = row.get("ratio", float("nan"))
                print(
                    f"train_sps: {script} {mode}: train_sps {row['train_sps']:,.1f}, "
                    f"collect_fps {row['collect_fps']:,.1f}, "
                    f"update {row['update_s']:.3f} s/iter, raw env_fps {row.get('env_fps', float('nan')):,.1f}, "
                    f"ratio {ratio:.2f} (load1 {row['load1']})",
                    flush=True,
                )
            _shared.append_rows(args.out, COLUMNS, [row])
            rows.append(row)
    return rows


if __name__ == "__main__":
    run(main, tyro.cli(Args))
