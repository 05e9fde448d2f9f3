"""Raw simulator + renderer throughput with random actions: the ceiling for any training loop.
Docs: docs/benchmarks.md

    python bench/env_fps.py                                  # the default grid of this machine
    python bench/env_fps.py --obs rgb --res 128 --num-envs 256 1024
    python bench/env_fps.py --dry-run                        # list the grid, measure nothing
    python bench/env_fps.py --obs rgb --res 64 --sim-dr off heavy   # simulator randomization off vs on

Each configuration: make the envs, reset, `--burn-in` untimed steps, then time `--steps` steps of
uniformly random actions (stopping early after `--max-seconds`). env_fps = num_envs * steps /
seconds, i.e. env steps per second summed over all envs, with observations rendered and returned
as torch tensors exactly as the training scripts receive them. One row per configuration is
appended to `--out` (results/env_fps.csv). Peak GPU memory: torch's own peak allocation
(`peak_mem_gb`) and the device-wide memory the run took (`gpu_mem_used_gb`, from
torch.cuda.mem_get_info, which also counts the simulator's and renderer's allocations); both
are empty on CPU.

Default grid: GPU: num_envs 16..4096 x {state, rgb, rgbd} x {64, 128, 256}. CPU (physx_cpu, one
worker process per env, software Vulkan): num_envs {1, 2} x {state, rgb 64, rgb 128}.
On the GPU every configuration runs in its own subprocess (`--isolate auto`), so an out-of-memory
configuration becomes a row with an `error` note instead of ending the sweep, and each peak-memory
number belongs to one configuration.

`--sim-dr off light heavy` adds simulator domain randomization to the sweep (the `sim_dr` column):
rows with a level other than off run PickCubeDR-v1 at that level (lib/pickcube_dr.py), whose timed
steps include the auto-resets' reconfigurations (every episode on the CPU backend), so the
difference to the off row is what randomization costs a training loop. `--env-id` must then be
PickCube or PickCubeDR; the off rows run `--env-id` itself.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import tyro

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import _shared  # noqa: E402
from cleanrl_style.lib.envs import make_env, resolve_env_id, resolve_sim_backend  # noqa: E402
from cleanrl_style.lib.runs import UserError, device_name, run  # noqa: E402
from cleanrl_style.lib.sim_dr import BASE_ENV_ID as DR_BASE_ENV_ID  # noqa: E402
from cleanrl_style.lib.sim_dr import ENV_ID as DR_ENV_ID  # noqa: E402
from cleanrl_style.lib.sim_dr import LEVELS  # noqa: E402

COLUMNS = (
    "device",
    "date",
    "commit",
    "versions",
    "env_id",
    "obs",
    "res",
    "num_envs",
    "sim_dr",
    "env_fps",
    "peak_mem_gb",
    "gpu_mem_used_gb",
    "sim_backend",
    "control_mode",
    "steps",
    "burn_in",
    "seconds",
    "make_s",
    "load1",
    "cpu_count",
    "error",
)
OBS_MODES = ("state", "rgb", "rgbd")
GPU_GRID = dict(num_envs=(16, 64, 256, 1024, 4096), obs=OBS_MODES, res=(64, 128, 256))
CPU_GRID = dict(num_envs=(1, 2), obs=("state", "rgb"), res=(64, 128))
MIN_TIMED_STEPS = 10  # --max-seconds never cuts the timed loop below this many steps


@dataclass
class Args:
    env_id: str = "PickCube"
    """ManiSkill task id (short names resolve: PickCube -> PickCube-v1)"""
    obs: tuple[str, ...] = ()
    """observation modes to sweep: state, rgb, rgbd (default: GPU all three; CPU state and rgb)"""
    res: tuple[int, ...] = ()
    """square image sizes for rgb/rgbd (default: GPU 64 128 256; CPU 64 128); ignored for state"""
    num_envs: tuple[int, ...] = ()
    """parallel env counts (default: GPU 16 64 256 1024 4096; CPU 1 2)"""
    steps: Optional[int] = None
    """timed steps per env (default: 200 on GPU, 300 on CPU)"""
    burn_in: Optional[int] = None
    """untimed steps after the reset, before timing starts (default: 20 on GPU, 5 on CPU)"""
    max_seconds: Optional[float] = None
    """stop the timed loop after this many seconds (default: 20 on GPU, 6 on CPU; at least 10 steps
    are always timed); the row records the steps actually taken"""
    control_mode: str = "pd_joint_delta_pos"
    """ManiSkill controller (the training scripts' default)"""
    sim_backend: str = "auto"
    """auto (GPU if CUDA is present), gpu or cpu"""
    seed: int = 0
    """seed of the reset and of the random actions"""
    out: str = "results/env_fps.csv"
    """CSV the rows are appended to (created with a header if missing)"""
    isolate: str = "auto"
    """run each configuration in its own subprocess: auto (on the GPU backend only), always, never"""
    timeout: float = 600.0
    """seconds one isolated configuration may take before it is recorded as an error"""
    keep_going: bool = False
    """after a configuration fails (e.g. out of memory), still try larger num_envs at the same obs/res"""
    dry_run: bool = False
    """list the configurations and exit"""
    sim_dr: tuple[str, ...] = ("off",)
    """simulator randomization levels to sweep: off, light, heavy (not off: PickCubeDR-v1 at that level;
    the sim_dr column says which)"""


@dataclass(frozen=True)
class Config:
    obs: str
    res: Optional[int]  # None for state
    num_envs: int
    sim_dr: str = "off"

    def label(self) -> str:
        dr = "" if self.sim_dr == "off" else f" sim_dr={self.sim_dr}"
        return f"obs={self.obs}{'' if self.res is None else f' res={self.res}'} num_envs={self.num_envs}{dr}"


def build_grid(
    obs: tuple[str, ...],
    res: tuple[int, ...],
    num_envs: tuple[int, ...],
    backend: str,
    sim_dr: tuple[str, ...] = ("off",),
) -> list[Config]:
    """Configurations in sweep order: per obs (and res) and randomization level, ascending num_envs, so
    the largest (the ones that may run out of memory) come last."""
    default = GPU_GRID if backend == "gpu" else CPU_GRID
    obs = obs or default["obs"]
    res = res or default["res"]
    num_envs = num_envs or default["num_envs"]
    bad = [o for o in obs if o not in OBS_MODES]
    if bad:
        raise UserError(f"--obs must be among {', '.join(OBS_MODES)} (got {', '.join(bad)})")
    if any(r < 16 for r in res):
        raise UserError(f"--res values must be >= 16 (got {' '.join(map(str, res))})")
    if any(n < 1 for n in num_envs):
        raise UserError(f"--num-envs values must be >= 1 (got {' '.join(map(str, num_envs))})")
    if backend == "cpu" and max(num_envs) > 64:
        raise UserError(f"--num-envs {max(num_envs)} on the CPU backend starts that many processes; use <= 64")
    bad = [d for d in sim_dr if d not in LEVELS]
    if bad or not sim_dr:
        raise UserError(f"--sim-dr must be among {', '.join(LEVELS)} (got {' '.join(bad) or 'nothing'})")
    grid = []
    for o in dict.fromkeys(obs):
        for r in [None] if o == "state" else sorted(set(res)):
            for d in dict.fromkeys(sim_dr):
                grid += [Config(o, r, n, d) for n in sorted(set(num_envs))]
    return grid


def config_env_id(env_id: str, cfg: Config) -> str:
    """The task a configuration runs: `env_id`, or PickCubeDR-v1 for a randomization level (PickCube only)."""
    if cfg.sim_dr == "off":
        return env_id
    if env_id not in (DR_ENV_ID, DR_BASE_ENV_ID):
        raise UserError(f"--sim-dr {cfg.sim_dr} randomizes {DR_ENV_ID} only: use --env-id PickCube (got {env_id})")
    return DR_ENV_ID


def measure(
    env_id: str,
    cfg: Config,
    steps: int,
    burn_in: int,
    max_seconds: float,
    control_mode: str,
    sim_backend: str,
    seed: int,
) -> dict:
    """Make the envs, burn in, time random-action steps. Returns the measured columns of one row."""
    import torch

    backend = resolve_sim_backend(sim_backend)
    cuda = backend == "gpu"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        free_before, _ = torch.cuda.mem_get_info()
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    dr = dict(sim_dr=cfg.sim_dr) if cfg.sim_dr != "off" else {}
    env = make_env(
        config_env_id(env_id, cfg),
        cfg.num_envs,
        cfg.obs,
        image_size=cfg.res or 64,
        control_mode=control_mode,
        sim_backend=backend,
        **dr,
    )
    try:
        env.reset(seed=seed)
        make_s = time.perf_counter() - t0
        for _ in range(burn_in):
            env.step(env.sample_actions())
        if cuda:
            torch.cuda.synchronize()
        n = 0
        t0 = time.perf_counter()
        while n < steps:
            env.step(env.sample_actions())
            n += 1
            if n >= MIN_TIMED_STEPS and time.perf_counter() - t0 > max_seconds:
                break
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        seconds = round(seconds, 6)  # the CSV holds the value env_fps was computed from
        row = dict(
            env_fps=cfg.num_envs * n / seconds,
            steps=n,
            seconds=seconds,
            make_s=round(make_s, 2),
            load1=_shared.load1(),
            sim_backend=backend,
        )
        if cuda:
            free_after, _ = torch.cuda.mem_get_info()
            row["peak_mem_gb"] = torch.cuda.max_memory_allocated() / 2**30
            row["gpu_mem_used_gb"] = (free_before - free_after) / 2**30
        return row
    finally:
        env.close()


def _error_note(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:200]


def _measure_isolated(args: Args, env_id: str, cfg: Config, steps: int, burn_in: int) -> dict:
    """Measure one configuration in a fresh `python bench/env_fps.py --isolate never` process and
    return its row (or the measured columns of an error row when the child died)."""
    with tempfile.TemporaryDirectory(prefix="env_fps_") as tmp:
        out = Path(tmp) / "row.csv"
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--env-id",
            env_id,
            "--obs",
            cfg.obs,
            "--num-envs",
            str(cfg.num_envs),
            "--steps",
            str(steps),
            "--burn-in",
            str(burn_in),
            "--max-seconds",
            str(args.max_seconds),
            "--control-mode",
            args.control_mode,
            "--sim-backend",
            args.sim_backend,
            "--seed",
            str(args.seed),
            "--sim-dr",
            cfg.sim_dr,
            "--isolate",
            "never",
            "--out",
            str(out),
        ]
        if cfg.res is not None:
            cmd += ["--res", str(cfg.res)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, cwd=_shared.REPO_ROOT)
        except subprocess.TimeoutExpired:
            return dict(error=f"timeout after {args.timeout:.0f} s")
        rows = _shared.read_rows(out)
        if rows:
            row = dict(rows[-1])
            for k in ("device", "date", "commit", "versions", "cpu_count"):  # the parent fills these
                row.pop(k, None)
            return row
        lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        return dict(error=f"exit code {proc.returncode}: {lines[-1][:180] if lines else 'no output'}")


def sweep(
    args: Args,
    env_id: str,
    grid: list[Config],
    steps: int,
    burn_in: int,
    isolate: bool,
    measure_fn: Optional[Callable[[Config], dict]] = None,
) -> list[dict]:
    """Measure every configuration, appending each row to args.out as soon as it is known. A failing
    configuration becomes a row with an `error` note; by default larger num_envs at the same
    obs/res are then skipped (they would fail too)."""
    if measure_fn is None:
        if isolate:

            def measure_fn(cfg):
                return _measure_isolated(args, env_id, cfg, steps, burn_in)
        else:

            def measure_fn(cfg):
                return measure(
                    env_id, cfg, steps, burn_in, args.max_seconds, args.control_mode, args.sim_backend, args.seed
                )

    machine = _shared.machine_fields()
    failed: dict[tuple, int] = {}
    rows = []
    for cfg in grid:
        if not args.keep_going and (cfg.obs, cfg.res) in failed:
            print(
                f"env_fps: skip {cfg.label()}: num_envs={failed[(cfg.obs, cfg.res)]} already failed at this setting "
                f"(--keep-going tries anyway)",
                flush=True,
            )
            continue
        base = dict(
            machine,
            date=_shared.now_iso(),
            env_id=config_env_id(env_id, cfg),
            obs=cfg.obs,
            res=cfg.res,
            num_envs=cfg.num_envs,
            sim_dr=cfg.sim_dr,
            control_mode=args.control_mode,
            burn_in=burn_in,
            sim_backend=resolve_sim_backend(args.sim_backend),
        )
        try:
            measured = measure_fn(cfg)
        except UserError as e:  # e.g. too little GPU memory for this many envs
            measured = dict(error=str(e)[:200])
        except Exception as e:  # noqa: BLE001  (one bad configuration must not end the sweep)
            measured = dict(error=_error_note(e))
        row = dict(base, **{k: v for k, v in measured.items() if v not in (None, "")})
        row.setdefault("load1", _shared.load1())
        if row.get("error"):
            failed[(cfg.obs, cfg.res)] = cfg.num_envs
            print(f"env_fps: {cfg.label()}: FAILED ({row['error']})", flush=True)
        else:
            print(
                f"env_fps: {cfg.label()}: {float(row['env_fps']):,.1f} env steps/s "
                f"({row['steps']} steps in {float(row['seconds']):.2f} s, load1 {row['load1']})",
                flush=True,
            )
        _shared.append_rows(args.out, COLUMNS, [row])
        rows.append(row)
    return rows


def main(args: Args) -> list[dict]:
    if args.isolate not in ("auto", "always", "never"):
        raise UserError(f"--isolate must be auto, always or never (got '{args.isolate}')")
    backend = resolve_sim_backend(args.sim_backend)
    if args.max_seconds is None:
        args = dataclasses.replace(args, max_seconds=20.0 if backend == "gpu" else 6.0)
    if args.max_seconds <= 0:
        raise UserError("--max-seconds must be > 0")
    grid = build_grid(args.obs, args.res, args.num_envs, backend, args.sim_dr)
    steps = args.steps if args.steps is not None else (200 if backend == "gpu" else 300)
    burn_in = args.burn_in if args.burn_in is not None else (20 if backend == "gpu" else 5)
    if steps < 1 or burn_in < 0:
        raise UserError("--steps must be >= 1 and --burn-in >= 0")
    if args.dry_run:
        for cfg in grid:
            print(f"env_fps: would measure {args.env_id} {cfg.label()}")
        print(f"env_fps: {len(grid)} configurations, backend={backend}, rows would go to {args.out}")
        return []
    env_id = resolve_env_id(args.env_id)
    for cfg in grid:  # a level on another task: one error line before anything is measured
        config_env_id(env_id, cfg)
    isolate = args.isolate == "always" or (args.isolate == "auto" and backend == "gpu")
    print(
        f"env_fps: {env_id} on {device_name()} ({backend}), {len(grid)} configurations, "
        f"{burn_in} burn-in + up to {steps} timed steps each, rows -> {args.out}",
        flush=True,
    )
    return sweep(args, env_id, grid, steps, burn_in, isolate)


if __name__ == "__main__":
    run(main, tyro.cli(Args))
