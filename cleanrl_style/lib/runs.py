"""Runs: one-line user errors, the process wrapper, flag checks, seeding, the run directory
(config.yaml, metrics.csv, TensorBoard, W&B), resuming, and atomic file writes.

A run directory is `runs/<env>__<exp_name or script>__<seed>__<timestamp>/`. `RunLogger(resume=True)`
reopens one: rows of metrics.csv logged after the checkpoint being resumed from are dropped, new rows
are appended, and TensorBoard purges events at or after that step, so a killed and resumed run reads
as one run.
"""

from __future__ import annotations

import csv
import dataclasses
import gc
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Union

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent.parent


# ----------------------------------------------------------------------------- user errors
class UserError(Exception):
    """An error the user can fix (bad flag, bad id, bad file). Printed as one line, no traceback."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


_CLEANUPS: list[Callable[[], None]] = []


def on_exit(fn: Callable[[], None]) -> None:
    """Register `fn` to run when `run()` ends, however it ends (envs.py closes its envs this way)."""
    if fn not in _CLEANUPS:
        _CLEANUPS.append(fn)


def run(main: Callable[[Any], Any], args: Any) -> Any:
    """Call `main(args)`; a UserError ends the process with one line on stderr and its exit code.
    Envs the run left open are closed either way."""
    try:
        return main(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    finally:
        for fn in _CLEANUPS:
            fn()
        # The process is about to end: exempt every object from the interpreter's final GC pass,
        # which was seen spinning for minutes under heavy load after a run had written its results.
        gc.freeze()


# ----------------------------------------------------------------------------- flag checks
def check_positive(args: Any, *names: str) -> None:
    """Each named field of `args` that is not None must be >= 1 (counts) or > 0 (floats).
    None means "the default"; 0 or a negative value is a UserError (exit 2) naming the flag."""
    for name in names:
        v = getattr(args, name)
        if v is not None and not v > 0:
            raise UserError(f"--{name.replace('_', '-')} must be > 0 (got {v})")


def check_non_negative(args: Any, *names: str) -> None:
    for name in names:
        v = getattr(args, name)
        if v is not None and v < 0:
            raise UserError(f"--{name.replace('_', '-')} must be >= 0 (got {v})")


def check_choice(flag: str, value: Any, choices: Iterable[Any]) -> None:
    choices = tuple(choices)
    if value not in choices:
        raise UserError(f"--{flag} must be one of {', '.join(map(str, choices))} (got '{value}')")


def check_unit_interval(args: Any, name: str, low_open: bool = False, high_open: bool = False) -> None:
    """getattr(args, name) in [0, 1], with open ends as asked."""
    v = getattr(args, name)
    lo_ok = v > 0 if low_open else v >= 0
    hi_ok = v < 1 if high_open else v <= 1
    if not (lo_ok and hi_ok):
        interval = ("(" if low_open else "[") + "0, 1" + (")" if high_open else "]")
        raise UserError(f"--{name.replace('_', '-')} must be in {interval} (got {v})")


# ----------------------------------------------------------------------------- seeding / RNG
def seed_everything(seed: int, torch_deterministic: bool = True) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = torch_deterministic


def rng_state() -> dict:
    """The global RNG states (python, numpy, torch CPU and CUDA), for a resumable checkpoint."""
    out = dict(python=random.getstate(), numpy=np.random.get_state(), torch=torch.get_rng_state())
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


# ----------------------------------------------------------------------------- atomic files
def atomic_write_bytes(path: Union[str, Path], data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Union[str, Path], text: str) -> None:
    atomic_write_bytes(path, text.encode())


def write_json(path: Union[str, Path], obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n")


def _jsonable(x):
    if torch.is_tensor(x):
        return x.tolist()
    if isinstance(x, (np.ndarray, np.generic)):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"not JSON serializable: {type(x)}")


# ----------------------------------------------------------------------------- provenance
def git_commit() -> str:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return (sha + ("-dirty" if dirty else "")) if sha else "unknown"
    except Exception:  # noqa: BLE001
        return "unknown"


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return f"CPU: {line.split(':', 1)[1].strip()} x{os.cpu_count()}"
    except OSError:
        pass
    return f"CPU: {platform.processor() or platform.machine()} x{os.cpu_count()}"


def versions() -> dict:
    out = {"python": platform.python_version(), "torch": str(torch.__version__), "numpy": str(np.__version__)}
    for mod in ("mani_skill", "sapien", "gymnasium", "tensordict", "torchrl", "kornia"):
        try:
            out[mod] = str(__import__(mod).__version__)
        except Exception:  # noqa: BLE001
            out[mod] = None
    return out


def args_dict(args: Any) -> dict:
    return dataclasses.asdict(args) if dataclasses.is_dataclass(args) else dict(args)


# ----------------------------------------------------------------------------- run directory
def read_run_config(run_dir: Union[str, Path]) -> dict:
    """config.yaml of a run directory (UserError if missing or unreadable)."""
    import yaml

    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise UserError(f"--resume {run_dir}: no config.yaml there (not a run directory)", code=1)
    try:
        cfg = yaml.safe_load(path.read_text())
        assert isinstance(cfg, dict) and "args" in cfg and "script" in cfg
    except Exception as e:  # noqa: BLE001
        raise UserError(f"--resume {run_dir}: config.yaml is corrupt ({type(e).__name__})", code=1) from e
    return cfg


def resume_args(args: Any, script: str) -> tuple[Any, Path]:
    """For `--resume RUN_DIR`: the Args the run was started with (from its config.yaml, so the
    resumed run trains exactly as the killed one did), with `resume` kept. Flags given on the
    command line next to --resume are ignored, except --total-timesteps/--total-iters, which may
    extend the run. Returns (args, run_dir)."""
    run_dir = Path(args.resume)
    cfg = read_run_config(run_dir)
    if cfg["script"] != script:
        raise UserError(f"--resume {run_dir}: that run was made by {cfg['script']}.py, not {script}.py", code=1)
    saved = dict(cfg["args"])
    known = {f.name for f in dataclasses.fields(args)}
    unknown = sorted(set(saved) - known)
    if unknown:
        raise UserError(f"--resume {run_dir}: its config has flags this {script}.py does not know: {unknown}", code=1)
    for budget in ("total_timesteps", "total_iters"):
        if budget in known and getattr(args, budget) != _default_of(args, budget):
            saved[budget] = getattr(args, budget)
    saved["resume"] = str(run_dir)
    return dataclasses.replace(args, **saved), run_dir


def _default_of(args: Any, name: str) -> Any:
    f = next(f for f in dataclasses.fields(args) if f.name == name)
    return f.default


def _tensorboard_writer(run_dir: Path, purge_step: Optional[int]):
    """TensorBoard's writer, or None with one warning where tensorboard is not installed (the offline GPU
    bundle may lack it): metrics.csv, which every result is read from, is written either way."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:
        print(f"warning: no TensorBoard logging ({e}); metrics.csv is written as usual", file=sys.stderr)
        return None
    return SummaryWriter(str(run_dir), purge_step=purge_step)


class RunLogger:
    """runs/<env>__<script>__<seed>__<timestamp>/ with config.yaml, metrics.csv (long format:
    step, wall_time, name, value), TensorBoard events, W&B with track=True, and a progress bar.

    resume_dir/resume_step: reopen an existing run directory instead of making one; metrics.csv rows
    with step > resume_step are dropped (they came after the checkpoint), TensorBoard events at or
    after resume_step + 1 are purged, and wall_time continues from the last kept row."""

    def __init__(
        self,
        args: Any,
        script: str,
        env_id: str,
        seed: int,
        runs_dir: str = "runs",
        track: bool = False,
        wandb_project: str = "maniskill-pixels",
        total_steps: Optional[int] = None,
        exp_name: Optional[str] = None,
        resume_dir: Optional[Union[str, Path]] = None,
        resume_step: int = 0,
    ):
        import yaml

        self.wall_offset = 0.0
        if resume_dir is not None:
            self.dir = Path(resume_dir)
            self.wall_offset = self._truncate_metrics(resume_step)
            config = read_run_config(self.dir)
            config.setdefault("resumed", []).append(
                dict(
                    step=int(resume_step),
                    time=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    command=" ".join(sys.argv),
                    git_commit=git_commit(),
                )
            )
            config["args"] = args_dict(args)
            self.config = config
        else:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            name = f"{env_id}__{exp_name or script}__{seed}__{stamp}"
            self.dir = Path(runs_dir) / name
            i = 1
            while self.dir.exists():
                self.dir = Path(runs_dir) / f"{name}-{i}"
                i += 1
            self.dir.mkdir(parents=True)
            self.config = dict(
                script=script,
                env_id=env_id,
                seed=seed,
                command=" ".join(sys.argv),
                args=args_dict(args),
                git_commit=git_commit(),
                versions=versions(),
                device=device_name(),
                start_time=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            )
        self.name = self.dir.name
        self.start = time.time()
        atomic_write_text(self.dir / "config.yaml", yaml.safe_dump(self.config, sort_keys=False))
        self.tb = _tensorboard_writer(self.dir, (resume_step + 1) if resume_dir is not None else None)
        new_csv = not (self.dir / "metrics.csv").exists()
        self._csv_file = open(self.dir / "metrics.csv", "a", newline="")
        self._csv = csv.writer(self._csv_file)
        if new_csv:
            self._csv.writerow(["step", "wall_time", "name", "value"])
        self.wandb = None
        if track:
            try:
                import wandb
            except ImportError as e:
                raise UserError("--track needs wandb: pip install wandb") from e
            self.wandb = wandb.init(
                project=wandb_project,
                name=self.name,
                config=self.config,
                dir=str(self.dir),
                sync_tensorboard=False,
                mode=os.environ.get("WANDB_MODE", "online"),
                id=self.name,
                resume="allow",
            )
        self.pbar = None
        self.total_steps = total_steps
        self._last_step = resume_step
        self._postfix: dict[str, str] = {}
        print(
            f"run dir: {self.dir}" + (f" (resumed at step {resume_step})" if resume_dir is not None else ""), flush=True
        )

    def _truncate_metrics(self, step: int) -> float:
        """Drop metrics.csv rows logged after `step` (atomically); returns the last kept wall time."""
        path = self.dir / "metrics.csv"
        if not path.exists():
            return 0.0
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
        header, body = rows[:1], [r for r in rows[1:] if len(r) == 4]
        kept = [r for r in body if _int_or_none(r[0]) is not None and int(r[0]) <= step]
        buf = _csv_text(header + kept)
        atomic_write_text(path, buf)
        return max((float(r[1]) for r in kept), default=0.0)

    @property
    def video_dir(self) -> str:
        return str(self.dir / "videos")

    def log(self, step: int, metrics: dict) -> None:
        wall = time.time() - self.start + self.wall_offset
        clean = {}
        for k, v in metrics.items():
            v = float(v.item() if torch.is_tensor(v) else v)
            clean[k] = v
            if self.tb is not None:
                self.tb.add_scalar(k, v, step)
            self._csv.writerow([int(step), f"{wall:.6f}", k, f"{v:.6g}"])  # us: timing maths must not round
        self._csv_file.flush()
        if self.wandb is not None:
            self.wandb.log(clean, step=int(step))

    def progress(self, step: int, **postfix) -> None:
        if self.pbar is None:
            if not self.total_steps:
                return
            from tqdm import tqdm

            self.pbar = tqdm(
                total=self.total_steps, initial=self._last_step, unit="step", dynamic_ncols=True, mininterval=2.0
            )
        self.pbar.update(max(0, step - self._last_step))
        self._last_step = step
        self._postfix.update({k: (f"{v:.3g}" if isinstance(v, float) else str(v)) for k, v in postfix.items()})
        self.pbar.set_postfix(self._postfix, refresh=False)

    def close(self) -> None:
        if self.pbar is not None:
            self.pbar.close()
        if self.tb is not None:
            self.tb.close()
        self._csv_file.close()
        if self.wandb is not None:
            self.wandb.finish()


def _int_or_none(s: str) -> Optional[int]:
    try:
        return int(s)
    except ValueError:
        return None


def _csv_text(rows: list) -> str:
    import io

    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    return buf.getvalue()


def close_run(run_log: RunLogger, *envs: Any) -> Path:
    """End of a training script: close the logger and the envs, print and return the run directory."""
    run_log.close()
    print(f"run dir: {run_log.dir}")
    for env in envs:
        env.close()
    return run_log.dir
