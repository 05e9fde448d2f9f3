"""Gather the runs of the BC -> RL fine-tuning experiment into results CSVs and a learning-curve plot.
Docs: docs/finetune.md

    python bench/finetune_results.py runs/ft                       # an OUT_DIR of configs/finetune/*.sh
    python bench/finetune_results.py runs/ft other/ft --no-plot    # several OUT_DIRs (or run directories)
    python bench/finetune_results.py runs/ft --test-seed 5000000   # pick the held-out evaluation by seed

Every path is a run directory (it holds config.yaml) or a folder searched for them (OUT_DIR/bc/...,
OUT_DIR/rl/<row>/seed<S>/<run>/). A run's row comes from its config.yaml, never from the folder it
sits in: a bc.py run is `bc` (--policy gaussian) or `bc_chunk` (an action-chunking policy); a sac_rgb.py
run with --residual-of is `residual`; a sac_rgb.py (or sac.py) run with --init-from and --demos is
`bc_init_demos`, with --init-from only `bc_init`, with --demos only `demos`, with neither `scratch`;
--freeze-encoder adds `_frozen` (`_unfreeze` with --unfreeze-after): the encoder ladder's rungs.

One CSV holds one task (env_id): runs of another task are refused with one error line, nothing written.
One line per finished run (one with final_eval.json) is appended to --out, one line per in-training
evaluation to --curves-out; nothing is ever rewritten. A run whose run_dir is already in a file is
skipped, so gathering again appends nothing, with one exception: a run recorded while it had only its
final_eval.json gets a second line once its held-out evaluation (evaluate.py's
eval_last_seed<S>.json, the pipeline's step 4) exists; readers take the last line of a run_dir.
final_* come from that held-out evaluation where it exists, else from final_eval.json (the
final_source column names the file). The bc row has env_steps 0, its final_* from the BC
checkpoint's held-out evaluation and min_eval_success_once = final_success_once; rows that start from
a BC checkpoint carry that BC run's training time (final_eval.json train_s) as pretrain_s.

--plot (default on) writes success_once vs env steps and vs wall time (BC-started rows shifted by
their pretrain_s) per row: mean over seeds, ± std where >= 2 seeds, the bc row as a dashed line.
The table in docs/finetune.md is rendered from --out by `python bench/reproduce.py --render`.
"""

from __future__ import annotations

import json
import math
import re
import shlex
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import tyro

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import _shared, reproduce  # noqa: E402
from cleanrl_style.lib.runs import UserError, atomic_write_bytes, run  # noqa: E402

COLUMNS = (
    "row",
    "seed",
    "env_steps",
    "final_success_once",
    "final_success_at_end",
    "final_source",
    "test_episodes",
    "test_seed",
    "min_eval_success_once",
    "start_success_once",
    "wall_s",
    "pretrain_s",
    "eval_curve",
    "device",
    "commit",
    "date",
    "script",
    "env_id",
    "exp_name",
    "flags",
    "init_from",
    "resumed",
    "test_device",
    "run_dir",
    "command",
    "num_demos",
    "bc_iters",
)
CURVE_COLUMNS = ("row", "seed", "env_steps", "wall_s", "success_once", "success_at_end", "device", "run_dir")
RL_SCRIPTS = ("sac_rgb", "sac")
# the flags that tell the rows apart or that every row must share, in the order the flags cell lists them
RL_FLAGS = (
    "total_timesteps",
    "num_envs",
    "batch_size",
    "utd",
    "alpha",
    "autotune",
    "policy_lr",
    "init_log_std",
    "fixed_log_std",
    "num_q",
    "critic_encoder",
    "critic_warmup_steps",
    "demo_ratio",
    "bc_coef",
    "bc_decay_steps",
)
BC_FLAGS = ("policy", "total_iters", "batch_size", "aux_coef", "hidden_dim", "feature_dim")
EVAL_LAST_RE = re.compile(r"^eval_last_seed(-?\d+)\.json$")


@dataclass
class Args:
    paths: tyro.conf.Positional[list[str]]
    """OUT_DIRs of configs/finetune/pickcube_rgb64_cpu.sh (searched for run directories) or run directories"""
    out: str = "results/finetune_pickcube_rgb64_cpu.csv"
    """CSV to append one line per run to"""
    curves_out: Optional[str] = None
    """CSV to append one line per in-training evaluation to (default: <out without .csv>_curves.csv)"""
    plot: bool = True
    """write the learning-curve plot (matplotlib, Agg) from the whole of --out and --curves-out"""
    plot_out: Optional[str] = None
    """where the plot goes (default: <out without .csv>.png)"""
    test_seed: Optional[int] = None
    """take the held-out evaluation from eval_last_seed<TEST_SEED>.json (default: the run's
    eval_last_seed*.json with the most episodes)"""
    stopped: bool = False
    """also gather RL runs stopped before their final evaluation (no final_eval.json; diagnostics CSVs):
    final_* stay empty, final_source says so, env_steps is the last in-training evaluation's"""


# ----------------------------------------------------------------------------- one run
def classify(cfg: dict) -> Optional[str]:
    """The experiment row of a run from its config.yaml (None: not a run of this experiment)."""
    script, a = cfg.get("script"), cfg.get("args") or {}
    if script == "bc":  # the policy alone: the gaussian one BC-started rows load, or a residual row's base
        return "bc" if a.get("policy") == "gaussian" else "bc_chunk"
    if script in RL_SCRIPTS:
        if a.get("residual_of"):
            row = "residual"
        else:
            row = {
                (True, True): "bc_init_demos",
                (True, False): "bc_init",
                (False, True): "demos",
                (False, False): "scratch",
            }[(bool(a.get("init_from")), bool(a.get("demos")))]
        if a.get("freeze_encoder"):  # the encoder ladder's rungs (docs/encoders.md)
            row += "_unfreeze" if a.get("unfreeze_after") is not None else "_frozen"
        return row
    return None


def _rel(p: Path) -> str:
    """A path relative to the repository when inside it, else absolute."""
    p = Path(p).resolve()
    try:
        return str(p.relative_to(_shared.REPO_ROOT))
    except ValueError:
        return str(p)


def _load_json(path: Path) -> Optional[dict]:
    try:
        out = json.loads(path.read_text())
        return out if isinstance(out, dict) else None
    except (OSError, ValueError):
        return None


def eval_curve(run_dir: Path) -> list[dict]:
    """The in-training evaluations of a run (metrics.csv eval/* rows), one dict per step, in step order:
    step, wall_s (the run's clock), success_once, success_at_end. A step logged twice keeps its last value."""
    by_step: dict[int, dict] = {}
    for r in _shared.read_rows(run_dir / "metrics.csv"):
        name = r.get("name", "")
        if name not in ("eval/success_once", "eval/success_at_end"):
            continue
        step = int(_shared.to_float(r["step"]))
        d = by_step.setdefault(step, dict(step=step, success_once=math.nan, success_at_end=math.nan))
        d["wall_s"] = _shared.to_float(r.get("wall_time"))
        d[name[len("eval/") :]] = _shared.to_float(r.get("value"))
    return [by_step[s] for s in sorted(by_step)]


def held_out_eval(run_dir: Path, test_seed: Optional[int]) -> tuple[Optional[Path], Optional[dict]]:
    """The evaluate.py result of the run's last.pt (eval_last_seed<S>.json): the one of --test-seed, else
    the one with the most episodes (then the lowest seed)."""
    found = []
    for path in run_dir.glob("eval_last_seed*.json"):
        m = EVAL_LAST_RE.match(path.name)
        if not m or (test_seed is not None and int(m.group(1)) != test_seed):
            continue
        data = _load_json(path)
        if data is None or "success_once" not in data:
            print(f"finetune_results: {_rel(path)} is not an evaluate.py result, ignored", file=sys.stderr)
            continue
        found.append((-int(data.get("episodes") or 0), int(m.group(1)), path, data))
    if not found:
        return None, None
    found.sort(key=lambda t: t[:2])
    if len(found) > 1:
        print(f"finetune_results: {_rel(run_dir)}: {len(found)} held-out evaluations, using {found[0][2].name}")
    return found[0][2], found[0][3]


def command_of(cfg: dict) -> str:
    """The command line config.yaml recorded, or one rebuilt from its args (every flag spelled out)."""
    if cfg.get("command"):
        return str(cfg["command"])
    parts = [f"cleanrl_style/{cfg.get('script', '?')}.py"]
    for k, v in (cfg.get("args") or {}).items():
        flag = "--" + k.replace("_", "-")
        if v is None:
            continue
        if isinstance(v, bool):
            parts.append(flag if v else "--no-" + k.replace("_", "-"))
        elif isinstance(v, (list, tuple)):
            parts += [flag, *map(str, v)] if v else []
        else:
            parts += [flag, str(v)]
    return shlex.join(parts)


def flags_of(cfg: dict, final: dict) -> str:
    a = cfg.get("args") or {}
    keys = BC_FLAGS if cfg.get("script") == "bc" else RL_FLAGS
    out = [f"{k}={a[k]}" for k in keys if k in a and a[k] is not None]
    if cfg.get("script") == "bc" and final.get("num_demos") is not None:
        out.append(f"num_demos={final['num_demos']}")
    return " ".join(out)


def _resolve_init(init_from: str, bc_runs: dict[str, Path]) -> Optional[Path]:
    """The run directory of an --init-from checkpoint: the path as recorded (absolute, or relative to
    the repository or the current folder), else a gathered bc.py run of the same name (runs moved)."""
    p = Path(init_from)
    for cand in [p] if p.is_absolute() else [_shared.REPO_ROOT / p, Path.cwd() / p]:
        if (cand.parent / "config.yaml").is_file():
            return cand.parent
    return bc_runs.get(p.parent.name)


def demo_json(cfg: dict) -> Optional[dict]:
    """The json next to the run's demo file (bc.py --demo-path, an RL run's --demos), None when there is none
    or it cannot be read."""
    a = cfg.get("args") or {}
    demo = a.get("demo_path") or a.get("demos") or ""
    if not demo:
        return None
    p = Path(demo).with_suffix(".json")
    for cand in [p] if p.is_absolute() else [_shared.REPO_ROOT / p, Path.cwd() / p]:
        meta = _load_json(cand)
        if meta is not None:
            return meta
    return None


def demo_count(cfg: dict):
    """Episodes in the run's demo file ('' when its json cannot be read)."""
    return len((demo_json(cfg) or {}).get("episodes") or []) or ""


def _bc_size(cfg: dict, final: dict) -> tuple:
    """(demos, gradient steps) of a bc.py run: final_eval.json's num_demos (else its demo file's), --total-iters."""
    return final.get("num_demos") or demo_count(cfg), (cfg.get("args") or {}).get("total_iters") or ""


def size_of(cfg: dict, run_dir: Path, bc_runs: dict[str, Path]) -> tuple:
    """The CSV's (num_demos, bc_iters) of a run: a bc.py run's own; an RL run started from a BC checkpoint
    (--init-from, --residual-of) has that BC run's; with --demos only, the demo file's episodes and no BC
    steps; a scratch run neither. A size other than the protocol's makes a row of its own in the tables
    (reproduce.finetune_runs), so a 1000-demo run never joins the 500-demo seeds."""
    import yaml

    if cfg.get("script") == "bc":
        return _bc_size(cfg, _load_json(run_dir / "final_eval.json") or {})
    start = start_checkpoint(cfg)
    if start:
        init_run = _resolve_init(str(start), bc_runs)
        try:
            init_cfg = yaml.safe_load((init_run / "config.yaml").read_text()) if init_run else None
        except (OSError, yaml.YAMLError):
            init_cfg = None
        if not isinstance(init_cfg, dict):
            print(f"finetune_results: {_rel(run_dir)}: {start}: its run not found, num_demos and bc_iters left empty")
            return "", ""
        return _bc_size(init_cfg, _load_json(init_run / "final_eval.json") or {})
    return (demo_count(cfg) if (cfg.get("args") or {}).get("demos") else ""), ""


def start_checkpoint(cfg: dict) -> Optional[str]:
    """The checkpoint a run started from: --init-from, or the frozen base of --residual-of (None: neither)."""
    a = cfg.get("args") or {}
    return a.get("init_from") or a.get("residual_of")


def pretrain_seconds(cfg: dict, run_dir: Path, bc_runs: dict[str, Path]) -> float:
    """Training time of the checkpoint the run started from (--init-from, or the base of --residual-of;
    0 without either, NaN if not found)."""
    init_from = start_checkpoint(cfg)
    if not init_from:
        return 0.0
    init_run = _resolve_init(str(init_from), bc_runs)
    final = _load_json(init_run / "final_eval.json") if init_run else None
    if final is None:
        print(
            f"finetune_results: {_rel(run_dir)}: {init_from}: its run (final_eval.json) not found, "
            "pretrain_s left empty",
            file=sys.stderr,
        )
        return math.nan
    return float(final.get("train_s", final.get("wall_time_s", math.nan)))


def _resumed(cfg: dict) -> str:
    return ";".join(f"{r.get('step')}@{r.get('git_commit', '')}" for r in cfg.get("resumed") or [])


def gather_run(run_dir: Path, cfg: dict, row: str, test_seed: Optional[int], bc_runs: dict[str, Path]):
    """(results line, curve lines) of one finished run."""
    a = cfg.get("args") or {}
    final = _load_json(run_dir / "final_eval.json") or {}
    start_from = start_checkpoint(cfg)
    test_path, test = held_out_eval(run_dir, test_seed)
    src = test if test is not None else final
    seeds = src.get("seeds") or []
    curve = eval_curve(run_dir)
    evals = [c["success_once"] for c in curve if c["success_once"] == c["success_once"]]
    final_once = _shared.to_float(str(src.get("success_once", "")))
    base = dict(
        row=row,
        seed=cfg.get("seed", a.get("seed")),
        device=cfg.get("device", "unknown"),
        commit=cfg.get("git_commit", ""),
        date=cfg.get("start_time", ""),
        script=cfg.get("script", ""),
        env_id=cfg.get("env_id", a.get("env_id", "")),
        exp_name=a.get("exp_name") or "",
        run_dir=_rel(run_dir),
    )
    line = dict(
        base,
        final_success_once=final_once,
        final_success_at_end=_shared.to_float(str(src.get("success_at_end", ""))),
        final_source=(
            test_path.name if test is not None else "final_eval.json" if final else "stopped: no final evaluation"
        ),
        test_episodes=src.get("episodes"),
        test_seed=seeds[0] if seeds else (EVAL_LAST_RE.match(test_path.name).group(1) if test_path else ""),
        test_device=(test or {}).get("device", ""),
        flags=flags_of(cfg, final),
        init_from=_rel(Path(start_from)) if start_from else "",
        resumed=_resumed(cfg),
        command=command_of(cfg),
    )
    line["num_demos"], line["bc_iters"] = size_of(cfg, run_dir, bc_runs)
    # the policy alone: no env steps; its in-training evals count gradient steps, not env steps
    if row in reproduce.BC_ROWS:
        return dict(
            line,
            env_steps=0,
            min_eval_success_once=final_once,
            start_success_once=None,
            wall_s=_shared.to_float(str(final.get("wall_time_s", ""))),
            pretrain_s=0.0,
            eval_curve="",
        ), []
    start = [c["success_once"] for c in curve if c["step"] == 0]
    wall = _shared.to_float(str(final.get("wall_time_s", "")))
    if wall != wall and curve:
        wall = curve[-1]["wall_s"]
    line.update(
        env_steps=final.get("step", curve[-1]["step"] if curve else a.get("total_timesteps")),
        min_eval_success_once=min(evals) if evals else None,
        start_success_once=start[0] if start else None,
        wall_s=wall,
        pretrain_s=pretrain_seconds(cfg, run_dir, bc_runs),
        eval_curve=";".join(f"{c['step']}:{c['success_once']:g}" for c in curve),
    )
    curves = [
        dict(
            row=row,
            seed=base["seed"],
            env_steps=c["step"],
            wall_s=c["wall_s"],
            success_once=c["success_once"],
            success_at_end=c["success_at_end"],
            device=base["device"],
            run_dir=base["run_dir"],
        )
        for c in curve
    ]
    return line, curves


# ----------------------------------------------------------------------------- discovery
def find_runs(paths: list[str]) -> list[tuple[Path, dict]]:
    """(run dir, config) of every run directory at or under `paths`, each once, in path order."""
    import yaml

    seen, out = set(), []
    for p in map(Path, paths):
        if (p / "config.yaml").is_file():
            cfgs = [p / "config.yaml"]
        elif p.is_dir():
            cfgs = sorted(p.rglob("config.yaml"))
            if not cfgs:
                raise UserError(f"{p}: no run directories (with config.yaml) under it", code=1)
        else:
            raise UserError(f"{p}: no such directory", code=1)
        for c in cfgs:
            run_dir = c.parent.resolve()
            if run_dir in seen:
                continue
            seen.add(run_dir)
            try:
                cfg = yaml.safe_load(c.read_text())
                assert isinstance(cfg, dict) and "args" in cfg
            except Exception as e:  # noqa: BLE001
                print(f"finetune_results: skip {_rel(run_dir)}: config.yaml unreadable ({type(e).__name__})")
                continue
            out.append((run_dir, cfg))
    return out


def _is_test(source: str) -> bool:
    return str(source).startswith("eval_last")


def _already(line: dict, recorded: dict[str, list[dict]]) -> bool:
    """A run's line is not appended again unless it upgrades a final_eval.json line to a held-out one."""
    prev = recorded.get(line["run_dir"])
    if not prev:
        return False
    return any(_is_test(p.get("final_source", "")) for p in prev) or not _is_test(line["final_source"])


# ----------------------------------------------------------------------------- plot
def plot(rows: list[dict], curves: list[dict], path: Path) -> Optional[Path]:
    """Two panels: success_once vs env steps and vs wall time (+ pretrain_s), per row and device: the
    mean over seeds with a ± std band where >= 2 seeds evaluated; the bc row as a dashed line."""
    try:
        import matplotlib
    except ImportError:
        print("finetune_results: matplotlib is not installed, no plot (pip install matplotlib)")
        return None
    matplotlib.use("Agg")
    import io

    import matplotlib.pyplot as plt

    groups, _ = reproduce.finetune_runs(rows)
    if not groups:
        return None
    by_run: dict[str, dict[int, dict]] = {}
    for c in curves:  # later lines of the same run and step win, as in the results CSV
        by_run.setdefault(c.get("run_dir", ""), {})[int(_shared.to_float(c["env_steps"]))] = c
    devices = list(dict.fromkeys(d for d, _, _ in groups))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    order = list(reproduce.FINETUNE_ROWS)
    fig, (ax_steps, ax_wall) = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    f = _shared.to_float
    for (device, row, size), lines in sorted(
        groups.items(), key=lambda kv: (devices.index(kv[0][0]), _row_index(kv[0][1]), kv[0][2])
    ):
        color = colors[(order.index(row) if row in order else len(order)) % len(colors)]
        style = "-" if devices.index(device) == 0 and not size else ":"  # another device or size: dotted
        label = f"{reproduce.finetune_label(row, size)} (n={len(lines)})" + (f", {device}" if len(devices) > 1 else "")
        if row in reproduce.BC_ROWS:
            finals = [f(r.get("final_success_once")) for r in lines if f(r.get("final_success_once")) >= 0]
            for ax in (ax_steps, ax_wall) if finals else ():
                level = statistics.fmean(finals)
                ax.axhline(
                    level, color=color, ls="--" if style == "-" else ":", lw=1.2, label=label + ", final success"
                )
            continue
        pts = [
            (
                by_run.get(r["run_dir"], {}),
                0.0 if f(r.get("pretrain_s")) != f(r.get("pretrain_s")) else f(r["pretrain_s"]),
            )
            for r in lines
        ]
        steps = sorted({s for c, _ in pts for s in c})
        if not steps:
            continue
        mean, std, wall, n = [], [], [], []
        for s in steps:
            vals = [(f(c[s]["success_once"]), f(c[s]["wall_s"]) + pre) for c, pre in pts if s in c]
            vals = [(v, w) for v, w in vals if v == v] or [(math.nan, math.nan)]
            so = [v for v, _ in vals]
            mean.append(statistics.fmean(so))
            std.append(statistics.stdev(so) if len(so) >= 2 else 0.0)
            wall.append(statistics.fmean(w for _, w in vals) / 60)
            n.append(len(so))
        for ax, xs in ((ax_steps, steps), (ax_wall, wall)):
            ax.plot(xs, mean, style, marker="o", ms=3, color=color, label=label)
            lo = [m - s for m, s in zip(mean, std)]
            hi = [m + s for m, s in zip(mean, std)]
            ax.fill_between(xs, lo, hi, where=[k >= 2 for k in n], color=color, alpha=0.2, lw=0)
    env = ", ".join(sorted({r.get("env_id", "") for ls in groups.values() for r in ls} - {""}))
    ax_steps.set_xlabel("env steps")
    ax_wall.set_xlabel("wall time, min (rows started from BC include its training time)")
    ax_steps.set_ylabel("eval success_once (mean ± std over seeds)")
    for ax in (ax_steps, ax_wall):
        ax.set_ylim(-0.03, 1.03)
        ax.grid(True, alpha=0.3)
    ax_wall.legend(fontsize=7, loc="best")
    fig.suptitle(f"BC -> RL fine-tuning {env} (bench/finetune_results.py)", fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def _row_index(row: str) -> int:
    order = list(reproduce.FINETUNE_ROWS)
    return order.index(row) if row in order else len(order)


# ----------------------------------------------------------------------------- main
def check_one_task(out: Path, recorded: list[dict], lines: list[dict]) -> None:
    """One CSV holds one task: its table, means and plot pool every run of a row. UserError (nothing written)
    when the new lines would put a second env_id into `out`."""
    have = sorted({r.get("env_id", "") for r in recorded} - {""})
    new = sorted({ln.get("env_id", "") for ln in lines} - {""} - set(have))
    if len(have) + len(new) > 1:
        held = f"{out} holds {', '.join(have)} runs and " if have else ""
        raise UserError(
            f"{held}the runs to gather are of {', '.join(new)}: one CSV per task, give each task its own --out "
            f"(e.g. results/finetune_<task>_rgb64_<device>.csv)",
            code=1,
        )


def _derived(out: Path, given: Optional[str], suffix: str) -> Path:
    if given:
        return Path(given)
    stem = out.name[: -len(".csv")] if out.name.endswith(".csv") else out.name
    return out.with_name(stem + suffix)


def main(args: Args) -> int:
    if not args.paths:
        raise UserError("give at least one OUT_DIR or run directory")
    out = Path(args.out)
    curves_out, plot_out = _derived(out, args.curves_out, "_curves.csv"), _derived(out, args.plot_out, ".png")
    found = find_runs(args.paths)
    bc_runs = {run_dir.name: run_dir for run_dir, cfg in found if cfg.get("script") == "bc"}
    recorded: dict[str, list[dict]] = {}
    for r in _shared.read_rows(out):
        recorded.setdefault(r.get("run_dir", ""), []).append(r)
    curve_runs = {r.get("run_dir", "") for r in _shared.read_rows(curves_out)}
    lines, curve_lines, finished = [], [], 0
    for run_dir, cfg in found:
        row = classify(cfg)
        if row is None:
            print(f"finetune_results: skip {_rel(run_dir)}: made by {cfg.get('script')}.py, not bc.py or sac_rgb.py")
            continue
        if not (run_dir / "final_eval.json").is_file() and not (
            args.stopped and row not in reproduce.BC_ROWS and eval_curve(run_dir)
        ):
            print(f"finetune_results: skip {_rel(run_dir)}: no final_eval.json yet (unfinished run)")
            continue
        finished += 1
        exp = str((cfg.get("args") or {}).get("exp_name") or "")
        if exp.startswith("finetune_") and exp[len("finetune_") :] != row:
            print(f"finetune_results: note: {_rel(run_dir)} is named {exp} but its flags make it row {row}")
        line, curve = gather_run(run_dir, cfg, row, args.test_seed, bc_runs)
        if not _already(line, recorded):
            lines.append(line)
            print(
                f"finetune_results: {row} seed {line['seed']}: final success_once {line['final_success_once']:.2f} "
                f"({line['test_episodes']} episodes, {line['final_source']}) {line['run_dir']}"
                + (" (replaces its final_eval.json line)" if line["run_dir"] in recorded else "")
            )
        if curve and line["run_dir"] not in curve_runs:
            curve_lines += curve
    if not finished:
        raise UserError(f"no finished runs (with final_eval.json) under {' '.join(args.paths)}", code=1)
    check_one_task(out, [r for ls in recorded.values() for r in ls], lines)
    _shared.append_rows(out, COLUMNS, lines)
    _shared.append_rows(curves_out, CURVE_COLUMNS, curve_lines)
    print(
        f"finetune_results: appended {len(lines)} run(s) to {out} and {len(curve_lines)} evaluation(s) to {curves_out}"
        + (" (everything was recorded already)" if not lines and not curve_lines else "")
    )
    all_rows = _shared.read_rows(out)
    print("\n".join(reproduce.finetune_table(all_rows)))
    if args.plot and all_rows:
        written = plot(all_rows, _shared.read_rows(curves_out), plot_out)
        if written:
            print(f"finetune_results: wrote {written}")
    return 0


if __name__ == "__main__":
    run(main, tyro.cli(Args))
