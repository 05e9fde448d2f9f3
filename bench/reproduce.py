"""Reproduction as code: the flag sets in configs/ over fixed seeds -> results/repro/*.csv -> docs/reproduction.md.
Docs: docs/reproduction.md

    python bench/reproduce.py                        # dry run: list the runs this machine's tier would do
    python bench/reproduce.py --execute              # run them (finished seeds are skipped), then --gather
    python bench/reproduce.py --gather               # collect runs/repro/*/metrics.csv, render the docs
    python bench/reproduce.py --render               # only re-render the docs from results/ (no runs, no gathering)
    python bench/reproduce.py --all --seeds 1 2 3 4 5

Flag files: configs/<script>/<name>.args runs cleanrl_style/<script>.py (configs/quickstart/*.args run
ppo.py; a comment line `# script: sac_rgb` overrides the folder); one flag or "--flag value" per line,
`#` starts a comment. A comment line `# tier: cpu` or
`# tier: gpu` says which machines the config is for (quickstart's cpu.args / gpu.args are tiered by
name); only configs of this machine's tier run unless --all. --seed, --runs-dir and --exp-name are
set here (a file's own values are dropped), so every run lands in
runs/repro/<script>__<config>/<env>__<script>__<config>__<seed>__<time>/.

--gather reads each run's eval/success_once, eval/success_at_end (vs env step and wall time) and its
final_eval.json into results/repro/<script>__<config>.csv (one file per config, rewritten), then renders
docs/reproduction.md from every results/repro/*.csv: per script x task, success_once mean +- std over
seeds at step budgets, wall time, and the hardware named in each run's config.yaml; then every training
seed's evaluations; then every seed of the behaviour-cloning and fine-tuning CSVs (--bc-csvs,
--finetune-csvs), with the configs/*/*.sh pipeline whose header names each CSV.

Generated tables in other pages: a block in docs/*.md between
    <!-- generated: bench/reproduce.py bc results/bc_pickcube_state_cpu.csv -->
    <!-- end generated -->
is re-rendered by --gather and --render from the CSV it names (path from the repository root). Kinds:
`bc` = a bench/bc_results.py CSV (one row per variant, every seed's evaluations and final success);
`aug` = a bench/aug_throughput.py CSV (images/s per resolution x batch x implementation);
`finetune` = a bench/finetune_results.py CSV (one row per experiment row of docs/finetune.md: final
success mean +- std over seeds, the dip and the start of the in-training curve, env steps, wall time,
hardware; rows without runs say "not run yet", also for a CSV that holds only its header);
`generalization` = a bench/generalization_results.py CSV (one row per training row of docs/generalization.md:
success_once on the clean, train and held-out variations, mean +- std over seeds, hardware; rows without
runs say "not yet measured");
`encoders` = a bench/encoder_ladder_results.py CSV (one row per encoder-ladder row of docs/encoders.md:
success_once on the clean task and on held-out variations, mean +- std over seeds, hardware; rows without
runs say "not run yet", those needing published weights name the fetch command). So a page's
results table has one source, the CSV, and never holds numbers typed by hand.
tests/test_bench.py checks that re-rendering the committed docs changes nothing.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import shlex
import statistics
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import tyro

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import _shared  # noqa: E402
from cleanrl_style.lib.runs import UserError, atomic_write_text, run  # noqa: E402

REPRO_COLUMNS = (
    "script",
    "config",
    "env_id",
    "seed",
    "device",
    "commit",
    "run",
    "complete",
    "kind",
    "step",
    "wall_time",
    "success_once",
    "success_at_end",
    "return",
)
OVERRIDDEN = ("--seed", "--runs-dir", "--exp-name")
TIER_RE = re.compile(r"^\s*#\s*tier\s*:\s*(\w+)", re.IGNORECASE)
SCRIPT_RE = re.compile(r"^\s*#\s*script\s*:\s*([A-Za-z0-9_]+)", re.IGNORECASE)
FOLDER_SCRIPT = {"quickstart": "ppo"}  # config folders that are not named after their script
# what the docs show in command lines: the defaults, never this machine's interpreter or folders
DOC_PYTHON, DOC_RUNS_DIR = ".venv/bin/python", "runs/repro"
BLOCK_BEGIN, BLOCK_END = "<!-- generated: bench/reproduce.py ", "<!-- end generated -->"


@dataclass
class Args:
    seeds: tuple[int, ...] = (1, 2, 3)
    """seeds every config runs with"""
    execute: bool = False
    """run the listed training runs (default: dry run, print them), then gather"""
    gather: bool = False
    """collect finished runs into results/repro/*.csv and render docs/reproduction.md (and the generated
    tables of --pages-dir)"""
    render: bool = False
    """only re-render docs/reproduction.md and the generated tables in --pages-dir from results/ (no runs,
    no gathering)"""
    all: bool = False
    """include configs of every tier, not only this machine's (cpu/gpu)"""
    scripts: tuple[str, ...] = ()
    """only configs of these scripts (default: all)"""
    configs_dir: str = "configs"
    """where the flag files live (<configs_dir>/<script>/<name>.args)"""
    runs_dir: str = "runs/repro"
    """where the runs are written and gathered from"""
    results_dir: str = "results/repro"
    """where the gathered CSVs go (one per script x config)"""
    doc: str = "docs/reproduction.md"
    """the rendered markdown"""
    pages_dir: str = "docs"
    """pages whose `<!-- generated: bench/reproduce.py ... -->` blocks are re-rendered (*.md)"""
    bc_csvs: tuple[str, ...] = ("results/bc_pickcube_state_cpu.csv", "results/bc_pickcube_rgb_cpu.csv")
    """bench/bc_results.py CSVs listed seed by seed in docs/reproduction.md (made by configs/bc/*.sh)"""
    finetune_csvs: tuple[str, ...] = ("results/finetune_pickcube_rgb64_cpu.csv",)
    """bench/finetune_results.py CSVs listed seed by seed in docs/reproduction.md (configs/finetune/*.sh)"""
    budgets: tuple[int, ...] = ()
    """env-step budgets for the table rows (default: up to 6 of the evaluation steps, always the last)"""
    force: bool = False
    """with --execute: run seeds again even when a finished run exists"""
    python: str = field(
        default_factory=lambda: (
            ".venv/bin/python" if (_shared.REPO_ROOT / ".venv/bin/python").exists() else sys.executable
        )
    )
    """interpreter in the command lines (default: the project's .venv if present)"""


@dataclass
class ConfigFile:
    script: str
    name: str  # config id: file stem, or <folder>-<stem> when the folder is not the script's name
    path: Path
    tier: str  # cpu, gpu or any
    flags: list[str]
    dropped: list[str]  # flags of the file that this tool sets itself
    description: list[str]

    @property
    def key(self) -> str:
        return f"{self.script}__{self.name}"


# ----------------------------------------------------------------------------- configs and commands
def parse_args_file(path: Path) -> tuple[list[str], str, list[str], str]:
    """flags, tier ('' when undeclared), description (the leading comment lines) and script ('' when
    undeclared: the folder decides) of one flag file."""
    flags: list[str] = []
    tier, desc, leading, script = "", [], True, ""
    for ln, line in enumerate(path.read_text().splitlines(), 1):
        m = TIER_RE.match(line)
        if m:
            tier = m.group(1).lower()
            continue
        m = SCRIPT_RE.match(line)
        if m:
            script = m.group(1)
            continue
        if line.strip().startswith("#"):
            if leading:
                desc.append(line.strip().lstrip("#").strip())
            continue
        if line.strip():
            leading = False
        try:
            flags += shlex.split(line, comments=True)
        except ValueError as e:
            raise UserError(f"{path}:{ln}: cannot parse flags ({e})") from e
    return flags, tier, desc, script


def drop_flags(flags: list[str], names=OVERRIDDEN) -> tuple[list[str], list[str]]:
    """Remove `--name value` / `--name=value` for the given names; returns (kept, dropped)."""
    kept, dropped, i = [], [], 0
    while i < len(flags):
        f = flags[i]
        name = f.split("=", 1)[0]
        if name in names:
            if "=" in f or i + 1 >= len(flags) or flags[i + 1].startswith("--"):
                dropped.append(f)
                i += 1
            else:
                dropped += [f, flags[i + 1]]
                i += 2
            continue
        kept.append(f)
        i += 1
    return kept, dropped


def discover_configs(configs_dir: Path, scripts: tuple[str, ...] = ()) -> list[ConfigFile]:
    if not configs_dir.is_dir():
        raise UserError(f"configs directory not found: {configs_dir}")
    out = []
    for path in sorted(configs_dir.glob("*/*.args")):
        folder, stem = path.parent.name, path.stem
        flags, tier, desc, declared = parse_args_file(path)
        script = declared or FOLDER_SCRIPT.get(folder, folder)
        if scripts and script not in scripts:
            continue
        if not tier:
            tier = stem if stem in ("cpu", "gpu") else "any"
        if tier not in ("cpu", "gpu", "any"):
            raise UserError(f"{path}: tier must be cpu, gpu or any (got '{tier}')")
        kept, dropped = drop_flags(flags)
        name = stem if folder == script else f"{folder}-{stem}"
        out.append(ConfigFile(script, name, path, tier, kept, dropped, desc))
    return out


def command(args: Args, cfg: ConfigFile, seed: int) -> list[str]:
    return [
        args.python,
        f"cleanrl_style/{cfg.script}.py",
        *cfg.flags,
        "--seed",
        str(seed),
        "--runs-dir",
        f"{args.runs_dir}/{cfg.key}",
        "--exp-name",
        cfg.key,
    ]


def _rel(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(_shared.REPO_ROOT))
    except ValueError:
        return str(p)


def _doc_path(p: Path) -> str:
    """A path as a committed page may show it: relative to the repository, or only the file name for a
    file outside it (a page must not carry one machine's folders)."""
    try:
        return str(Path(p).resolve().relative_to(_shared.REPO_ROOT))
    except ValueError:
        return Path(p).name


def plan_runs(args: Args, tier: str) -> list[tuple[ConfigFile, int]]:
    """The (config, seed) pairs to run, printing why any config is left out."""
    plan = []
    for cfg in discover_configs(_abs(args.configs_dir), args.scripts):
        where = _rel(cfg.path)
        if not _shared.script_path(cfg.script).is_file():
            print(f"reproduce: skip {where}: cleanrl_style/{cfg.script}.py does not exist")
            continue
        if not args.all and cfg.tier not in ("any", tier):
            print(f"reproduce: skip {where}: tier {cfg.tier}, this machine is {tier} (--all includes it)")
            continue
        if cfg.dropped:
            print(f"reproduce: {where}: ignoring {' '.join(cfg.dropped)} (set per run here)")
        plan += [(cfg, s) for s in args.seeds]
    return plan


def _abs(p: str) -> Path:
    path = Path(p)
    return path if path.is_absolute() else _shared.REPO_ROOT / path


# ----------------------------------------------------------------------------- gather
def _load_yaml(path: Path) -> dict:
    import yaml

    with open(path) as f:
        return yaml.safe_load(f) or {}


def finished_runs(runs_dir: Path) -> dict[tuple[str, int], Path]:
    """(exp_name, seed) -> the newest finished run directory (one with final_eval.json)."""
    out: dict[tuple[str, int], Path] = {}
    for cfg_path in sorted(runs_dir.glob("*/*/config.yaml")):
        run = cfg_path.parent
        if not (run / "final_eval.json").is_file():
            continue
        c = _load_yaml(cfg_path)
        out[(str(c.get("args", {}).get("exp_name") or run.parent.name), int(c.get("seed", -1)))] = run
    return out


def gather_run(run: Path) -> list[dict]:
    """The eval rows (and the final evaluation) of one run directory."""
    c = _load_yaml(run / "config.yaml")
    exp = str(c.get("args", {}).get("exp_name") or run.parent.name)
    script, _, config = exp.partition("__")
    base = dict(
        script=c.get("script", script),
        config=config or exp,
        env_id=c.get("env_id", ""),
        seed=c.get("seed", ""),
        device=c.get("device", "unknown"),
        commit=c.get("git_commit", ""),
        run=run.name,
        complete=int((run / "final_eval.json").is_file()),
    )
    per_step: dict[int, dict] = {}
    for r in _shared.read_rows(run / "metrics.csv"):
        if not r["name"].startswith("eval/"):
            continue
        d = per_step.setdefault(int(float(r["step"])), dict(base, kind="eval", step=int(float(r["step"]))))
        d["wall_time"] = float(r["wall_time"])
        key = r["name"][5:]
        if key in ("success_once", "success_at_end", "return"):
            d[key] = float(r["value"])
    rows = [per_step[s] for s in sorted(per_step)]
    if base["complete"]:
        fe = json.loads((run / "final_eval.json").read_text())
        rows.append(
            dict(
                base,
                kind="final",
                step=fe.get("step", rows[-1]["step"] if rows else ""),
                wall_time=fe.get("wall_time_s", ""),
                success_once=fe.get("success_once"),
                success_at_end=fe.get("success_at_end"),
                **{"return": fe.get("return")},
            )
        )
    return rows


def gather(runs_dir: Path, results_dir: Path) -> list[Path]:
    """runs_dir/<script>__<config>/<run>/ -> results_dir/<script>__<config>.csv (newest run per seed,
    finished runs preferred). Returns the CSVs written."""
    by_key: dict[str, dict[int, Path]] = defaultdict(dict)
    if runs_dir.is_dir():
        for cfg_path in sorted(runs_dir.glob("*/*/config.yaml"), key=lambda p: p.parent.name):
            run = cfg_path.parent
            if not (run / "metrics.csv").is_file():
                continue
            c = _load_yaml(cfg_path)
            key = str(c.get("args", {}).get("exp_name") or run.parent.name)
            seed = int(c.get("seed", -1))
            prev = by_key[key].get(seed)
            done = (run / "final_eval.json").is_file()
            if prev is None or done or not (prev / "final_eval.json").is_file():
                by_key[key][seed] = run  # names end in a timestamp: sorted order = start order
    written = []
    for key, runs in sorted(by_key.items()):
        rows = [r for seed in sorted(runs) for r in gather_run(runs[seed])]
        if not rows:
            print(f"reproduce: {key}: no evaluations logged yet, nothing gathered")
            continue
        path = results_dir / f"{_safe(key)}.csv"
        # rows recorded elsewhere (another machine, or runs no longer on disk) are kept, unless a run
        # gathered now has the same device and seed (then the local run is the newer record)
        fresh = {(str(r["device"]), str(r["seed"])) for r in rows}
        kept = [r for r in _shared.read_rows(path) if (r.get("device"), r.get("seed")) not in fresh]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=REPRO_COLUMNS, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows(kept)
        w.writerows({k: _shared.fmt_cell(v) for k, v in r.items()} for r in rows)
        atomic_write_text(path, buf.getvalue())
        print(
            f"reproduce: gathered {len(runs)} seed(s) of {key} -> {_rel(path)}"
            + (f" (kept {len(kept)} row(s) recorded elsewhere)" if kept else "")
        )
        written.append(path)
    return written


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", name)


# ----------------------------------------------------------------------------- render
def mean_std(values: list[float]) -> str:
    vals = [v for v in values if v == v]
    if not vals:
        return "–"
    if len(vals) == 1:
        return f"{vals[0]:.2f} (n=1)"
    return f"{statistics.fmean(vals):.2f} ± {statistics.stdev(vals):.2f} (n={len(vals)})"


def fmt_steps(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1e6:g}M"
    if n >= 1_000:
        return f"{n / 1e3:g}k"
    return str(n)


def fmt_wall(seconds: list[float]) -> str:
    vals = [s for s in seconds if s == s]
    if not vals:
        return "–"
    m = statistics.fmean(vals)
    return f"{m / 60:.1f} min" if m >= 120 else f"{m:.0f} s"


def pick_budgets(steps: list[int], budgets: tuple[int, ...], k: int = 6) -> list[int]:
    if budgets:
        return sorted(budgets)
    steps = sorted(set(steps))
    if len(steps) <= k:
        return steps
    idx = sorted({round(i * (len(steps) - 1) / (k - 1)) for i in range(k)})
    return [steps[i] for i in idx]


def budget_table(rows: list[dict], budgets: tuple[int, ...]) -> list[str]:
    """Markdown rows: for each budget b, per seed the last evaluation at step <= b (only seeds whose
    runs reached b), then mean ± std over seeds; plus the final evaluation on fresh seeds."""
    by_seed: dict[str, list[dict]] = defaultdict(list)
    finals = []
    for r in rows:
        (finals if r["kind"] == "final" else by_seed[r["seed"]]).append(r)
    for v in by_seed.values():
        v.sort(key=lambda r: int(r["step"]))
    out = ["| env steps | success_once | success_at_end | wall time | seeds |", "|---:|---|---|---:|---:|"]
    all_steps = [int(r["step"]) for v in by_seed.values() for r in v]
    for b in pick_budgets(all_steps, budgets):
        picked = []
        for v in by_seed.values():
            if int(v[-1]["step"]) < b:
                continue
            before = [r for r in v if int(r["step"]) <= b]
            if before:
                picked.append(before[-1])
        if not picked:
            continue
        f = _shared.to_float
        out.append(
            f"| {fmt_steps(b)} | {mean_std([f(r['success_once']) for r in picked])} | "
            f"{mean_std([f(r['success_at_end']) for r in picked])} | "
            f"{fmt_wall([f(r['wall_time']) for r in picked])} | {len(picked)} |"
        )
    if finals:
        f = _shared.to_float
        out.append(
            f"| final ({fmt_steps(int(f(finals[0]['step'])))}, fresh eval seeds) | "
            f"{mean_std([f(r['success_once']) for r in finals])} | "
            f"{mean_std([f(r['success_at_end']) for r in finals])} | "
            f"{fmt_wall([f(r['wall_time']) for r in finals])} | {len(finals)} |"
        )
    return out


def _seed_key(s: str) -> float:
    v = _shared.to_float(s)
    return v if v == v else float("inf")


def fmt2(x: float) -> str:
    return "–" if x != x else f"{x:.2f}"


def seed_table(rows: list[dict]) -> list[str]:
    """Markdown rows: per training seed, success_once at every evaluation (– where a seed has none at that
    step), the final evaluation on fresh seeds, the wall time to it and the commit of the run."""
    f = _shared.to_float
    evals: dict[str, dict[int, dict]] = defaultdict(dict)
    finals: dict[str, dict] = {}
    for r in rows:
        if r["kind"] == "final":
            finals[r["seed"]] = r
        else:
            evals[r["seed"]][int(f(r["step"]))] = r
    steps = sorted({s for v in evals.values() for s in v})
    head = " / ".join(fmt_steps(s) for s in steps)
    out = [
        f"| seed | eval success_once at {head} env steps | final success_once | final success_at_end "
        "| wall time | commit |",
        "|---:|---|---|---|---:|---|",
    ]
    for seed in sorted(set(evals) | set(finals), key=_seed_key):
        at = evals.get(seed, {})
        cells = " / ".join(fmt2(f(at[s]["success_once"])) if s in at else "–" for s in steps)
        fin = finals.get(seed)
        last = fin or (at[max(at)] if at else {})
        wall = fmt_wall([f(last.get("wall_time"))]) + ("" if fin else " (no final eval)")
        so, sae = (f(fin["success_once"]), f(fin["success_at_end"])) if fin else (math.nan, math.nan)
        out.append(f"| {seed} | {cells} | {fmt2(so)} | {fmt2(sae)} | {wall} | {str(last.get('commit', ''))[:12]} |")
    return out


def render(results_dir: Path, configs: list[ConfigFile], args: Args) -> str:
    csvs = sorted(results_dir.glob("*.csv")) if results_dir.is_dir() else []
    lines = [
        "# Reproduction",
        "",
        "<!-- Generated by `python bench/reproduce.py --gather` (or `--render`) from results/repro/*.csv. "
        "Do not edit by hand. -->",
        "",
        "Each config in `configs/` is trained over fixed seeds; every run's evaluations "
        "(`eval/success_once` on fixed evaluation seeds, ManiSkill's fair protocol: no partial resets, "
        "reconfiguration every reset) are gathered into `results/repro/<script>__<config>.csv` and "
        "summarised here as mean ± sample std over training seeds (n = seeds). "
        "Wall time is from the run's start (env creation included) to that evaluation. "
        "The last row of each table is the final evaluation of the last policy on fresh seeds "
        "(`final_eval.json`). Below it, every training seed's own evaluations.",
        "",
    ]
    tables = []  # (csv path, device, rows): runs on different hardware are never pooled
    for path in csvs:
        by_device: dict[str, list[dict]] = defaultdict(list)
        for r in _shared.read_rows(path):
            by_device[r.get("device") or "unknown"].append(r)
        tables += [(path, d, by_device[d]) for d in sorted(by_device)]
    f = _shared.to_float
    if not tables:
        lines += [
            "**No runs recorded yet.** Nothing in `results/repro/` so far: no config has been run over "
            "seeds with `bench/reproduce.py`. The commands below produce the first rows.",
            "",
        ]
    else:
        lines += [
            "## Summary",
            "",
            "| script | task | config | hardware | seeds | final success_once | env steps | wall time |",
            "|---|---|---|---|---:|---|---:|---:|",
        ]
        for path, device, rows in tables:
            finals = [r for r in rows if r["kind"] == "final"]
            seeds = {r["seed"] for r in rows}
            steps = max((int(f(r["step"])) for r in (finals or rows)), default=0)
            final = mean_std([f(r["success_once"]) for r in finals]) if finals else "running"
            lines.append(
                f"| {rows[0]['script']} | {rows[0]['env_id']} | [{rows[0]['config']}](#{_anchor(path.stem)}) | "
                f"{device} | {len(seeds)} | {final} | "
                f"{fmt_steps(steps)} | {fmt_wall([f(r['wall_time']) for r in finals])} |"
            )
        lines.append("")
        for path in dict.fromkeys(p for p, _, _ in tables):
            parts = [(d, rows) for p, d, rows in tables if p == path]
            r0 = parts[0][1][0]
            lines += [
                f"## {path.stem}",
                "",
                f"`{r0['script']}.py` on {r0['env_id']}, config `{r0['config']}`. Data: `{_doc_path(path)}`.",
                "",
            ]
            for device, rows in parts:
                seeds = sorted({r["seed"] for r in rows}, key=lambda s: int(float(s)) if s else 0)
                incomplete = sorted({r["seed"] for r in rows if r.get("complete") == "0"})
                lines += [
                    f"### {device}",
                    "",
                    f"Seeds {', '.join(seeds)}"
                    + (f" (still running or stopped early: {', '.join(incomplete)})" if incomplete else "")
                    + ". "
                    f"Commit: {', '.join(sorted({r['commit'][:12] for r in rows if r.get('commit')})) or 'unknown'}.",
                    "",
                ]
                lines += budget_table(rows, args.budgets) + [""]
                lines += ["Per training seed:", ""] + seed_table(rows) + [""]
    pipelines = discover_pipelines(_abs(args.configs_dir))
    lines += pipeline_sections(args, pipelines)
    lines += [
        "## Configs and commands",
        "",
        "`python bench/reproduce.py` lists the runs for this machine's tier (dry run); `--execute` runs them "
        "(seeds that already finished are skipped) and gathers; `--gather` collects finished runs and "
        "re-renders this page; `--render` only re-renders it from the CSVs. "
        "`--all` includes configs of the other tier; `--seeds 1 2 3 4 5` changes the seeds.",
        "",
        "| config | script | tier | flags |",
        "|---|---|---|---|",
    ]
    for cfg in configs:
        lines.append(f"| `{_doc_path(cfg.path)}` | {cfg.script}.py | {cfg.tier} | `{' '.join(cfg.flags)}` |")
    lines += [
        "",
        *pipeline_table(pipelines),
        "Runs for each config are launched as (`--runs-dir` of this tool moves the parent folder)",
        "",
        "```bash",
        f"{DOC_PYTHON} cleanrl_style/<script>.py <flags from the file> --seed S "
        f"--runs-dir {DOC_RUNS_DIR}/<script>__<config> --exp-name <script>__<config>",
        "```",
        "",
        "To add results from your machine: run `python bench/reproduce.py --execute` (or `--all`), "
        "commit the new `results/repro/*.csv` and this page, and open a pull request. Gathering keeps the "
        "rows other machines recorded in those files; runs on different hardware (the `device` in each "
        "run's config.yaml) get separate tables and are never averaged together.",
        "",
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- pipelines (configs/*/*.sh)
USAGE_RE = re.compile(r"^#\s+(bash\s+configs/\S+\.sh.*)$")
RESULTS_CSV_RE = re.compile(r"results/[A-Za-z0-9_.+-]+\.csv")
DOCS_PAGE_RE = re.compile(r"docs/[A-Za-z0-9_.-]+\.md")


@dataclass
class Pipeline:
    path: Path
    tier: str
    usage: str  # the `bash configs/... OUT_DIR [SEED]` line of its header
    results: list[str]  # the results/*.csv its header names
    pages: list[str]  # the docs/*.md pages its header names


def discover_pipelines(configs_dir: Path) -> list[Pipeline]:
    """The shell pipelines in configs/ (bc.py and fine-tuning: several scripts chained), with the usage line,
    tier and results CSVs their header comments name."""
    out = []
    for path in sorted(configs_dir.glob("*/*.sh")) if configs_dir.is_dir() else []:
        tier, usage, results, pages = "any", "", [], []
        for line in path.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                break  # the header ends at the first command
            m = TIER_RE.match(line)
            if m:
                tier = m.group(1).lower()
            m = USAGE_RE.match(line)
            if m and not usage:
                usage = m.group(1).strip()
            results += [c for c in RESULTS_CSV_RE.findall(line) if c not in results]
            pages += [c for c in DOCS_PAGE_RE.findall(line) if c not in pages]
        out.append(Pipeline(path, tier, usage or f"bash {_doc_path(path)}", results, pages))
    return out


def pipeline_table(pipelines: list[Pipeline]) -> list[str]:
    if not pipelines:
        return []
    lines = [
        "Pipelines that chain several scripts (demo collection, conversion, `bc.py`, `sac_rgb.py`, held-out "
        "`evaluate.py`) are shell scripts; each run of one is a seed:",
        "",
        "| pipeline | tier | usage | results |",
        "|---|---|---|---|",
    ]
    for p in pipelines:
        res = ", ".join(f"`{c}`" for c in p.results) or "–"
        lines.append(f"| `{_doc_path(p.path)}` | {p.tier} | `{p.usage}` | {res} |")
    return lines + [""]


def finetune_seed_table(rows: list[dict]) -> list[str]:
    """Markdown rows of a bench/finetune_results.py CSV, one per run that counts (finetune_runs): every
    seed's final and in-training numbers, in FINETUNE_ROWS order."""
    f = _shared.to_float
    groups, _ = finetune_runs(rows)
    order = list(FINETUNE_ROWS)
    out = [
        "| row | seed | final success_once | final success_at_end | final evaluation | min eval success_once "
        "| eval success_once during training | env steps | wall time | device | commit |",
        "|---|---:|---|---|---|---|---|---:|---:|---|---|",
    ]
    for (device, row, size), rs in sorted(groups.items(), key=lambda kv: (order.index(kv[0][1]) if kv[0][1] in
                                                                          order else len(order), kv[0])):  # fmt: skip
        for r in rs:
            curve = "; ".join(
                f"@{fmt_steps(int(f(k)))}: {fmt2(f(v))}"
                for k, _, v in (item.partition(":") for item in (r.get("eval_curve") or "").split(";") if item)
            )
            out.append(
                f"| {finetune_label(row, size)} | {r.get('seed', '')} | {fmt2(f(r.get('final_success_once')))} | "
                f"{fmt2(f(r.get('final_success_at_end')))} | {r.get('test_episodes', '?')} episodes "
                f"({r.get('final_source', '?')}) | {fmt2(f(r.get('min_eval_success_once')))} | {curve or '–'} | "
                f"{_fmt_steps_cell(r.get('env_steps'))} | {fmt_wall([f(r.get('wall_s'))])} | {device} | "
                f"{_short_commit(r.get('commit') or '') or 'unknown'} |"
            )
    return out


def pipeline_sections(args: Args, pipelines: list[Pipeline]) -> list[str]:
    """Every seed of the behaviour-cloning and fine-tuning CSVs, with the pipeline that makes them and the
    pages (its header names them) that discuss them."""
    made_by = {c: p for p in pipelines for c in p.results}
    lines: list[str] = []
    for title, csvs, writer, tables in (
        ("Behaviour cloning (`bc.py`)", args.bc_csvs, "bench/bc_results.py", (bc_table,)),
        ("BC -> RL fine-tuning (`bc.py` then `sac_rgb.py`)", args.finetune_csvs, "bench/finetune_results.py",
         (finetune_table, finetune_seed_table)),
    ):  # fmt: skip
        if not csvs:
            continue
        lines += [f"## {title}", ""]
        for c in csvs:
            path = _abs(c)
            rows = _shared.read_rows(path)
            p = made_by.get(_doc_path(path))
            lines += [f"### {_doc_path(path)}", ""]
            pages = ", ".join(f"[{Path(d).name}]({Path(d).name})" for d in (p.pages if p else []))
            lines += [
                (f"Made by `{p.usage}` (one seed per run), gathered by `{writer}`." if p else f"Rows: `{writer}`.")
                + (f" Discussed in {pages}." if pages else ""),
                "",
            ]
            if not rows:  # finetune_table still lists each experiment row as not run yet
                lines += [f"**Not run yet**: `{_doc_path(path)}` holds no rows.", ""]
                tables = tuple(t for t in tables if t in RENDERS_EMPTY_TABLES)
            for table in tables:
                lines += table(rows) + [""]
    return lines


def _anchor(title: str) -> str:
    return re.sub(r"[^a-z0-9_ -]", "", title.lower()).replace(" ", "-")


# ----------------------------------------------------------------------------- generated blocks in other pages
def bc_method(r: dict) -> str:
    """What a bench/bc_results.py row trained, from its columns (defaults left out): the head, chunking,
    temporal ensembling, history, state keys, input noise, control mode, and for pixels the encoder, the
    augmentation and the auxiliary loss."""
    f = _shared.to_float
    chunk = int(f(r.get("chunk_size")) if f(r.get("chunk_size")) == f(r.get("chunk_size")) else 1)
    if r.get("policy") == "gaussian":
        parts = ["gaussian (tanh-Gaussian actor, 1 action)"]
    elif chunk <= 1:
        parts = ["single step (chunk 1)"]
    else:
        te = str(r.get("temporal_ensemble")).lower() not in ("false", "0")
        parts = [f"chunk {chunk} + " + ("temporal ensembling" if te else "open loop")]
    if f(r.get("obs_horizon")) > 1:
        parts.append(f"history {int(f(r['obs_horizon']))}")
    if r.get("drop_state_keys") in ("", "none", "[]"):
        parts.append("joint velocities kept")
    if f(r.get("obs_noise")) > 0:
        parts.append(f"obs noise {r['obs_noise']}")
    if r.get("control_mode") not in (None, "", "pd_ee_delta_pos"):
        parts.append(r["control_mode"])
    if r.get("obs_mode") not in (None, "", "state"):
        if r.get("encoder") not in (None, "", "nature"):
            parts.append(f"{r['encoder']} encoder")
        if r.get("aug") not in (None, "", "shift"):
            parts.append(f"aug {r['aug']}")
        if f(r.get("aux_coef")) > 0:
            parts.append(f"aux position loss {r['aux_coef']}")
        if "--head-input aux" in r.get("command", ""):  # no column of its own in the CSV
            parts.append("head sees state + predicted position only")
    return ", ".join(parts)


def _evals_by_iter(cell: str) -> dict[int, float]:
    """'2500:0.99 5000:0.98' -> {2500: 0.99, 5000: 0.98}."""
    out = {}
    for item in (cell or "").split():
        it, _, v = item.partition(":")
        out[int(_shared.to_float(it))] = _shared.to_float(v)
    return out


def bc_table(rows: list[dict]) -> list[str]:
    """Markdown rows of a bench/bc_results.py CSV: one per variant (its --exp-name; per device when the CSV
    holds several), in CSV order, every seed's values in seed order; training time is the mean over seeds."""
    f = _shared.to_float
    devices = list(dict.fromkeys(r.get("device", "") for r in rows))
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r.get("device", ""), r.get("variant") or "?"), []).append(r)
    dev_col = len(devices) > 1
    out = [
        ("| hardware " if dev_col else "")
        + "| variant | demos | method | gradient steps | seeds | eval success_once during training "
        "| final success_once | mean ± std | episodes | training time |",
        ("|---" if dev_col else "") + "|---|---:|---|---:|---|---|---|---|---:|---:|",
    ]
    for (device, variant), rs in groups.items():
        rs = sorted(rs, key=lambda r: _seed_key(r.get("seed", "")))
        per_seed = [_evals_by_iter(r.get("eval_success_by_iter", "")) for r in rs]
        iters = sorted({i for d in per_seed for i in d})
        evals = "; ".join(f"@{fmt_steps(i)}: " + " / ".join(fmt2(d.get(i, math.nan)) for d in per_seed) for i in iters)
        finals = [f(r.get("final_success_once")) for r in rs]

        def uniq(col, fmt=str, rs=rs):
            return ", ".join(dict.fromkeys(fmt(r.get(col, "")) for r in rs))

        out.append(
            (f"| {device} " if dev_col else "") + f"| {variant} | {uniq('num_demos')} | {bc_method(rs[0])} | "
            f"{uniq('total_iters', lambda v: fmt_steps(int(f(v))) if f(v) == f(v) else '–')} | "
            f"{', '.join(r.get('seed', '') for r in rs)} | {evals or '–'} | "
            f"{' / '.join(fmt2(x) for x in finals)} | {mean_std(finals)} | {uniq('final_episodes')} | "
            f"{fmt_wall([f(r.get('train_s')) for r in rs])} |"
        )
    return out


def _fmt_rate(x: float) -> str:
    """Frames/s with the digits that mean something: 6,094 / 991 / 16.3 / 4.2."""
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


def _loads_and_commits(rs: list[dict]) -> tuple[str, str]:
    f = _shared.to_float
    loads = [f(r.get("load1")) for r in rs if f(r.get("load1")) == f(r.get("load1"))]
    commits = ", ".join(sorted({r["commit"][:7] for r in rs if r.get("commit")})) or "unknown"
    return (f"{min(loads):.1f}-{max(loads):.1f}" if loads else "unknown"), commits


def aug_table(rows: list[dict]) -> list[str]:
    """Markdown lines of a bench/aug_throughput.py CSV: per device, images/s (median over the rows of a
    setting) with resolution x batch as rows and the implementations as columns, in CSV order."""
    f = _shared.to_float
    out: list[str] = []
    for device in dict.fromkeys(r.get("device", "") for r in rows):
        rs = [r for r in rows if r.get("device", "") == device and f(r.get("images_per_s")) > 0]
        impls = list(dict.fromkeys(r.get("impl", "?") for r in rs))
        load, commits = _loads_and_commits(rs)
        out += [
            f"**{device}**, images/s (median over runs), 1-minute load average {load}, commit {commits}:",
            "",
            "| res | batch | " + " | ".join(impls) + " |",
            "|---|---:|" + "---:|" * len(impls),
        ]
        for res, batch in sorted({(int(f(r["res"])), int(f(r["batch"]))) for r in rs}):
            cells = []
            for impl in impls:
                vals = [
                    f(r["images_per_s"])
                    for r in rs
                    if r.get("impl") == impl and int(f(r["res"])) == res and int(f(r["batch"])) == batch
                ]
                cells.append(f"{statistics.median(vals):,.0f}" if vals else "–")
            out.append(f"| {res}x{res} | {batch} | " + " | ".join(cells) + " |")
        out.append("")
    return out[:-1]


def encoder_throughput_table(rows: list[dict]) -> list[str]:
    """Markdown lines of a bench/encoder_throughput.py CSV: per (device, batch, torch threads), frames/s
    (median over the rows of a setting) with (encoder, adapter, input size) as rows and the modes as
    columns; a row's notes (e.g. a shared machine) are listed under its table."""
    f = _shared.to_float
    modes_order = ("forward", "train-frozen", "train")
    out: list[str] = []
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if f(r.get("frames_per_s")) > 0:
            groups.setdefault((r.get("device", ""), r.get("batch", ""), r.get("torch_threads", "")), []).append(r)
    for (device, batch, threads), rs in groups.items():
        present = {r.get("mode") for r in rs}
        modes = [m for m in modes_order if m in present] + sorted(present - set(modes_order))
        load, commits = _loads_and_commits(rs)
        out += [
            f"**{device}**, batch {batch}, {threads} torch thread(s): frames/s (median over runs), 1-minute load "
            f"average {load}, commit {commits}:",
            "",
            "| encoder | adapter | camera | input | " + " | ".join(modes) + " |",
            "|---|---|---:|---:|" + "---:|" * len(modes),
        ]
        by_setting: dict[tuple, dict[str, list[float]]] = {}
        for r in rs:
            setting = (r.get("encoder"), r.get("adapter"), r.get("camera"), r.get("input_size"))
            by_setting.setdefault(setting, {}).setdefault(r.get("mode"), []).append(f(r["frames_per_s"]))
        for (enc, adapter, camera, size), vals in by_setting.items():
            cells = [_fmt_rate(statistics.median(vals[m])) if m in vals else "–" for m in modes]
            out.append(f"| {enc} | {adapter} | {camera} | {size} | " + " | ".join(cells) + " |")
        notes = sorted({r["notes"] for r in rs if r.get("notes")})
        out += [""] + [f"Note: {n}." for n in notes] + ([""] if notes else [])
    return out[:-1] if out else out


def feature_cache_table(rows: list[dict]) -> list[str]:
    """Markdown lines of the feature-cache timing CSV (results/encoder_feature_cache_*.csv): per (device,
    script, encoder, input, adapter), one line per pair of back-to-back runs, with and without the cache,
    and the update-phase speed-up of each pair."""
    f = _shared.to_float
    out: list[str] = []
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        key = (r.get("device", ""), r.get("script"), r.get("encoder"), r.get("input_size"), r.get("adapter"))
        groups.setdefault(key, []).append(r)
    for (device, script, enc, size, adapter), rs in groups.items():
        load, commits = _loads_and_commits(rs)
        out += [
            f"**{device}**, {script}.py, frozen {enc} at {size} px, {adapter} adapter, 1-minute load average {load}, "
            f"commit {commits}:",
            "",
            "| pair | cache | update phase (s / iteration) | rollout (s / iteration) | env steps/s at the end | "
            "update speed-up |",
            "|---:|---|---:|---:|---:|---:|",
        ]
        for pair in dict.fromkeys(r.get("pair") for r in rs):
            by = {str(r.get("cache_features")).lower() == "true": r for r in rs if r.get("pair") == pair}
            for cached in (True, False):
                r = by.get(cached)
                if r is None:
                    continue
                speedup = "–"
                if cached and False in by and f(r.get("update_s_mean")) > 0:
                    speedup = f"{f(by[False]['update_s_mean']) / f(r['update_s_mean']):.0f}x"
                out.append(
                    f"| {pair} | {'on' if cached else 'off'} | {f(r.get('update_s_mean')):.3f} | "
                    f"{f(r.get('rollout_s_mean')):.2f} | {f(r.get('sps_final')):.2f} | {speedup} |"
                )
        cmd = next((r["command"] for r in rs if r.get("command")), "")
        out += [""] + ([f"Command: `{cmd}`", ""] if cmd else [])
    return out[:-1] if out else out


# the rows of the fine-tuning experiment (bench/finetune_results.py decides a run's row from its flags)
FINETUNE_ROWS = {
    "bc": "the BC policy alone (bc.py --policy gaussian), no RL",
    "scratch": "SAC from pixels: random init, no demos",
    "demos": "demos in a second replay store, random init (RLPD)",
    "bc_init": "actor and encoder from BC, no demos",
    "bc_init_demos": "BC init (std held at 0.05) + demos + BC term (the recipe)",
    "bc_chunk": "the action-chunking BC policy alone (bc.py --policy chunk), no RL: the residual row's base",
    "residual": "SAC correction on the frozen chunking BC policy (--residual-of), no demos",
    "bc_init_demos_frozen": "the recipe with the critics' BC encoder frozen too (convs; its fc adapter trains)",
    "bc_init_demos_unfreeze": "the same, the critics' last conv block unfrozen halfway, at its own --encoder-lr",
}
# the encoder ladder of the fine-tuning (docs/encoders.md): what the critics' image encoder is during RL
# (the BC-started rows hold the actor's encoder as BC trained it: --critic-encoder separate)
FINETUNE_LADDER_ROWS = {
    "demos": "NatureCNN, random init, trained end to end (RLPD: demos in replay, no BC start)",
    "bc_init_demos": "NatureCNN from the BC policy, trained end to end (the recipe)",
    "bc_init_demos_frozen": "NatureCNN from the BC policy, convs frozen, fc adapter trains",
    "bc_init_demos_unfreeze": "the same, its last conv block unfrozen halfway, at its own --encoder-lr",
}
BC_ROWS = ("bc", "bc_chunk")  # rows of a policy alone: no env steps, their final success drawn as a level


# the size of the fine-tuning protocol (configs/finetune/pickcube_rgb64_cpu.sh's NUM_DEMOS and BC_ITERS): the
# demos behind a row and its BC start's gradient steps; a run of another size is a row of its own
FINETUNE_SIZE = {"num_demos": 500, "bc_iters": 5000}


def finetune_size(r: dict) -> str:
    """'' for a line of the protocol's size (FINETUNE_SIZE; an empty cell matches: a scratch run has no demos,
    a CSV from before the columns has none), else its size as 'N demos / K BC steps'."""
    f = _shared.to_float
    cells = {c: f(r.get(c)) for c in FINETUNE_SIZE}
    if all(v != v or v == FINETUNE_SIZE[c] for c, v in cells.items()):
        return ""
    n, k = cells["num_demos"], cells["bc_iters"]
    return f"{int(n) if n == n else '–'} demos / {fmt_steps(int(k)) if k == k else 'no'} BC steps"


def finetune_label(row: str, size: str) -> str:
    """A table's row cell: the experiment row, with its size when it is not the protocol's."""
    return f"{row} ({size})" if size else row


def finetune_runs(rows: list[dict]) -> tuple[dict[tuple[str, str, str], list[dict]], dict[tuple[str, str, str], int]]:
    """The lines of a bench/finetune_results.py CSV that count, as (device, row, size) -> lines in seed order
    (size: finetune_size, '' for the protocol's): the last line of each run_dir (a held-out evaluation
    supersedes a final_eval.json line), then per (device, row, size, seed) the newest run (by start date).
    Also how many older runs of a seed were left out."""
    last: dict[str, dict] = {}
    for i, r in enumerate(rows):
        last[r.get("run_dir") or f"#{i}"] = r
    newest: dict[tuple[str, str, str, str], dict] = {}
    left_out: dict[tuple[str, str, str], int] = defaultdict(int)
    for r in last.values():
        key = (r.get("device") or "unknown", r.get("row") or "?", finetune_size(r), r.get("seed", ""))
        prev = newest.get(key)
        if prev is not None:
            left_out[key[:3]] += 1
        if prev is None or r.get("date", "") >= prev.get("date", ""):
            newest[key] = r
    groups: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    for (device, row, size, _), r in newest.items():
        groups[(device, row, size)].append(r)
    for v in groups.values():
        v.sort(key=lambda r: _seed_key(r.get("seed", "")))
    return dict(groups), dict(left_out)


def _short_commit(commit: str) -> str:
    """12 hex digits, keeping git_commit()'s -dirty mark (uncommitted changes were in the run)."""
    return commit[:12] + ("-dirty" if commit.endswith("-dirty") else "")


def _fmt_steps_cell(cell) -> str:
    n = _shared.to_float(cell)
    return fmt_steps(int(n)) if n == n else "–"


def _ranked(groups: dict, rows: list[dict], order) -> list[tuple]:
    """The keys (device, row, ...) of a seeded table's groups in display order: devices as they first
    appear in the CSV, then the experiment's own row order (unknown rows last)."""
    devices, order = list(dict.fromkeys(r.get("device") or "unknown" for r in rows)), list(order)
    return sorted(
        groups, key=lambda k: (devices.index(k[0]), order.index(k[1]) if k[1] in order else len(order), k[1:])
    )


def _seed_cell(rs: list[dict], older: int) -> str:
    """'N (s1, s2)' with a flag under 3 seeds and a count of older runs of a seed left out."""
    cell = f"{len(rs)} ({', '.join(r.get('seed', '') for r in rs)})" + ("; fewer than 3" if len(rs) < 3 else "")
    return cell + (f"; {older} older run(s) of the same seed not counted" if older else "")


def finetune_table(rows: list[dict], what: dict[str, str] | None = None) -> list[str]:
    """Markdown rows of a bench/finetune_results.py CSV: one per experiment row (per device when the CSV
    holds several), in the order of `what` (row -> description; default FINETUNE_ROWS, every row); rows of
    `what` without runs are listed as not run yet, rows not in it are left out."""
    f = _shared.to_float
    groups, left_out = finetune_runs(rows)
    if what is None:  # every row, unknown ones last
        what = FINETUNE_ROWS
    else:
        groups = {k: v for k, v in groups.items() if k[1] in what}
    out = [
        "| row | what | seeds | final success_once | final success_at_end | final evaluation "
        "| min eval success_once (mean) | start success_once (mean) | env steps | wall time: mean, min "
        "| device | commit |",
        "|---|---|---|---|---|---|---|---|---:|---|---|---|",
    ]
    for key in _ranked(groups, rows, what):
        device, row, size = key
        rs = groups[key]
        seed_cell = _seed_cell(rs, left_out.get(key, 0))

        def uniq(fmt, rs=rs):
            return ", ".join(dict.fromkeys(fmt(r) for r in rs))

        def evaluation(r):
            if str(r.get("final_source", "")).startswith("eval_last"):
                return f"{r.get('test_episodes', '?')} held-out episodes (seeds {r.get('test_seed', '?')}+)"
            return f"{r.get('test_episodes', '?')} episodes (final_eval.json)"

        def mean_of(col, rs=rs):
            vals = [f(r.get(col)) for r in rs if f(r.get(col)) == f(r.get(col))]
            return fmt2(statistics.fmean(vals)) if vals else "–"

        walls = [f(r.get("wall_s")) for r in rs if f(r.get("wall_s")) == f(r.get("wall_s"))]
        wall = f"{fmt_wall(walls)} (min {fmt_wall([min(walls)])})" if walls else "–"
        pre = [f(r.get("pretrain_s")) for r in rs if f(r.get("pretrain_s")) > 0]
        if pre:
            wall += f"; + BC training {fmt_wall(pre)}"
        commits = [
            c
            for r in rs
            for c in [r.get("commit") or ""] + [x.partition("@")[2] for x in (r.get("resumed") or "").split(";")]
        ]
        steps = "0 (no RL)" if row in BC_ROWS else uniq(lambda r: _fmt_steps_cell(r.get("env_steps")))
        out.append(
            f"| {finetune_label(row, size)} | {what.get(row, '?')} | {seed_cell} | "
            f"{mean_std([f(r.get('final_success_once')) for r in rs])} | "
            f"{mean_std([f(r.get('final_success_at_end')) for r in rs])} | {uniq(evaluation)} | "
            f"{mean_of('min_eval_success_once')} | {mean_of('start_success_once')} | {steps} | {wall} | "
            f"{device} | {', '.join(dict.fromkeys(_short_commit(c) for c in commits if c)) or 'unknown'} |"
        )
    ran = {row for _, row, size in groups if not size}  # of the protocol's size
    for row, desc in what.items():
        if row not in ran:
            out.append(f"| {row} | {desc} | not run yet | – | – | – | – | – | – | – | – | – |")
    return out


def finetune_ladder_table(rows: list[dict]) -> list[str]:
    """The encoder ladder of the fine-tuning: the FINETUNE_LADDER_ROWS of a bench/finetune_results.py CSV,
    described by what the critics' image encoder is during RL (the other rows are left out)."""
    return finetune_table(rows, FINETUNE_LADDER_ROWS)


# the rows of the generalization table (bench/generalization_results.py decides a run's row from its config)
GENERALIZATION_ROWS = {
    "none": "clean demos, no randomization",
    "image": "clean demos, image-space randomization of the training batches (`bc.py --dr`)",
    "sim": "demos rendered under simulator randomization (`collect_demos.py --sim-dr`, PickCubeDR-v1)",
    "sim+image": "both: randomized demos and `bc.py --dr`",
}


GENERALIZATION_LEVELS = ("demo_sim_dr", "image_dr", "sim_dr_level")  # a row's setting besides its name...
GENERALIZATION_SIZES = ("num_demos", "total_iters")  # ... and its size: runs of other sizes are other table rows


# bc.py policies of the generalization table (any other policy is a fine-tuning row): the table's own (chunk)
# and the single-step gaussian head the fine-tuning pipelines start from, another policy and so another row;
# each -> (what its row's name gets, what its "what" cell gets)
GENERALIZATION_BC_POLICIES = {
    "bc": ("", ""),
    "bc_gaussian": (
        ", BC gaussian",
        "; `bc.py --policy gaussian` (single-step tanh-Gaussian head, the fine-tuning start)",
    ),
}


def gen_policy(r: dict) -> str:
    """The policy column of a generalization line: `bc` (also for lines written before the column existed),
    `bc_gaussian`, or the fine-tuning row of a BC-started RL run (docs/finetune.md). make_report reads it the
    same way."""
    return r.get("policy") or "bc"


def _gen_size(v: str) -> float:
    """A size cell (num_demos, total_iters) as a number that sorts; inf when empty (after every size)."""
    x = _shared.to_float(v)
    return x if x == x else math.inf


def generalization_runs(rows: list[dict]) -> tuple[dict[tuple, list[dict]], dict[tuple, int]]:
    """The lines of a bench/generalization_results.py CSV that count, as (device, training, policy, demos'
    --sim-dr, --dr, train ranges, demos and BC gradient steps as numbers) -> lines in seed order: the last line of each
    run_dir, then per setting and seed the newest run (by start date). Also how many older runs of a seed were
    left out."""
    last: dict[str, dict] = {}
    for i, r in enumerate(rows):
        last[r.get("run_dir") or f"#{i}"] = r
    newest: dict[tuple, dict] = {}
    left_out: dict[tuple, int] = defaultdict(int)
    for r in last.values():
        setting = (r.get("device") or "unknown", r.get("training") or "?", gen_policy(r))
        setting += tuple(r.get(c) or "?" for c in GENERALIZATION_LEVELS)
        setting += tuple(_gen_size(r.get(c)) for c in GENERALIZATION_SIZES)  # numbers: smaller runs rank first
        key = setting + (r.get("seed", ""),)
        prev = newest.get(key)
        if prev is not None:
            left_out[setting] += 1
        if prev is None or r.get("date", "") >= prev.get("date", ""):
            newest[key] = r
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for key, r in newest.items():
        groups[key[:-1]].append(r)
    for v in groups.values():
        v.sort(key=lambda r: _seed_key(r.get("seed", "")))
    return dict(groups), dict(left_out)


def generalization_table(rows: list[dict]) -> list[str]:
    """Markdown rows of a bench/generalization_results.py CSV: one per training row, policy and setting (per
    device when the CSV holds several), in GENERALIZATION_ROWS order with the bc.py policies before the
    fine-tuned ones of each row, success_once on each variation as mean ± std over seeds; training rows
    without a run of the table's own policy (`bc`, chunk BC) say "not yet measured"."""
    f = _shared.to_float
    groups, left_out = generalization_runs(rows)
    out = [
        "| training | what | seeds | clean | train | held_out | test episodes "
        "| demos' --sim-dr / --dr / train ranges | demos / BC steps | training time | device | commit |",
        "|---|---|---|---|---|---|---|---|---:|---:|---|---|",
    ]
    for key in _ranked(groups, rows, GENERALIZATION_ROWS):
        device, training, policy, *levels = key[: 3 + len(GENERALIZATION_LEVELS)]
        size = " / ".join(str(int(v)) if v != math.inf else "–" for v in key[3 + len(GENERALIZATION_LEVELS) :])
        rs = groups[key]
        what = GENERALIZATION_ROWS.get(training, "?")
        if policy in GENERALIZATION_BC_POLICIES:
            name, more = GENERALIZATION_BC_POLICIES[policy]
            training, what = training + name, what + more
        else:
            training += f", fine-tuned (`{policy}`)"
            what += f"; then BC -> SAC fine-tuning, the `{policy}` row of docs/finetune.md (sac_rgb.py)"
        seed_cell = _seed_cell(rs, left_out.get(key, 0))
        commits = ", ".join(dict.fromkeys(_short_commit(r.get("commit") or "") for r in rs if r.get("commit")))
        episodes = ", ".join(
            dict.fromkeys(f"{r.get('episodes') or '?'} (seeds {r.get('test_seed') or '?'}+)" for r in rs)
        )
        out.append(
            f"| {training} | {what} | {seed_cell} | "
            + " | ".join(mean_std([f(r.get(m)) for r in rs]) for m in ("clean", "train", "held_out"))
            + f" | {episodes} | {' / '.join(levels)} | {size} | "
            f"{fmt_wall([f(r.get('wall_s')) for r in rs])} | {device} | {commits or 'unknown'} |"
        )
    ran = {key[1] for key in groups if key[2] == "bc"}
    for training, what in GENERALIZATION_ROWS.items():
        if training not in ran:
            out.append(f"| {training} | {what} | not yet measured | – | – | – | – | – | – | – | – | – |")
    return out


# the rows of the encoder ladder (bench/encoder_ladder_results.py decides a run's row from its encoder flags):
# what each is, and the encoder whose published weights it needs (None: none)
ENCODER_LADDER_ROWS = {
    "nature_scratch": ("NatureCNN, random init, trained end to end", None),
    "nature_inDomain_frozen": ("NatureCNN from the pretraining BC run, convs frozen, fc adapter trains", None),
    "nature_inDomain_unfreeze": ("the same, its last conv unfrozen at half the gradient steps (lr 1e-4)", None),
    "resnet18_imagenet_frozen": ("ResNet-18, published ImageNet weights, frozen, attn-pool adapter", "resnet18"),
    "dinov2_frozen": ("DINOv2 ViT-S/14, published weights, frozen, attn-pool adapter", "dinov2-vits14"),
}


def _ladder_what(r: dict) -> str:
    """A row not in ENCODER_LADDER_ROWS, described from its columns."""
    mode = "frozen" if str(r.get("frozen")).lower() == "true" else "trained"
    if r.get("unfreeze_after") not in (None, ""):
        mode += f", unfrozen at step {r['unfreeze_after']}"
    return f"{r.get('encoder') or '?'}, weights {r.get('weights') or '?'}, {mode}"


def encoder_ladder_table(rows: list[dict]) -> list[str]:
    """Markdown rows of a bench/encoder_ladder_results.py CSV: one per ladder row (per device when the CSV
    holds several), in ENCODER_LADDER_ROWS order, success_once on the clean task and on the held-out
    variations as mean ± std over seeds; rows without runs say "not run yet", or for the published-weight
    rows "not measured" with the command that fetches their weights."""
    f = _shared.to_float
    groups, left_out = finetune_runs(rows)  # same columns: the last line per run_dir, the newest run per seed
    out = [
        "| row | what | seeds | clean success_once | held-out success_once | test episodes | gradient steps "
        "| BC training time | device | commit |",
        "|---|---|---|---|---|---|---:|---|---|---|",
    ]
    for key in _ranked(groups, rows, ENCODER_LADDER_ROWS):
        device, row, size = key
        rs = groups[key]
        seed_cell = _seed_cell(rs, left_out.get(key, 0))
        what = ENCODER_LADDER_ROWS[row][0] if row in ENCODER_LADDER_ROWS else _ladder_what(rs[0])
        episodes = ", ".join(
            dict.fromkeys(f"{r.get('episodes') or '?'} (seeds {r.get('test_seed') or '?'}+)" for r in rs)
        )
        steps = ", ".join(dict.fromkeys(_fmt_steps_cell(r.get("bc_iters")) for r in rs))
        wall = fmt_wall([f(r.get("train_s")) for r in rs])
        pre = [f(r.get("pretrain_s")) for r in rs if f(r.get("pretrain_s")) > 0]
        if pre:
            wall += f"; + pretraining {fmt_wall(pre)}"
        commits = ", ".join(dict.fromkeys(_short_commit(r.get("commit") or "") for r in rs if r.get("commit")))
        out.append(
            f"| {finetune_label(row, size)} | {what} | {seed_cell} | {mean_std([f(r.get('clean')) for r in rs])} | "
            f"{mean_std([f(r.get('held_out')) for r in rs])} | {episodes} | {steps} | {wall} | {device} | "
            f"{commits or 'unknown'} |"
        )
    ran = {row for _, row, size in groups if not size}  # of the protocol's size
    for row, (what, published) in ENCODER_LADDER_ROWS.items():
        if row in ran:
            continue
        fetch = f"python scripts/fetch_encoder_weights.py --encoder {published}"
        state = f"not measured: needs `{fetch}`" if published else "not run yet"
        out.append(f"| {row} | {what} | {state} | – | – | – | – | – | – | – |")
    return out


BLOCK_KINDS = {
    "bc": (bc_table, "bench/bc_results.py"),
    "aug": (aug_table, "bench/aug_throughput.py"),
    "finetune": (finetune_table, "bench/finetune_results.py"),
    "generalization": (generalization_table, "bench/generalization_results.py"),
    "encoders": (encoder_ladder_table, "bench/encoder_ladder_results.py"),
    "finetune_ladder": (finetune_ladder_table, "bench/finetune_results.py"),
    "encoder_throughput": (encoder_throughput_table, "bench/encoder_throughput.py"),
    "feature_cache": (feature_cache_table, "bench/feature_cache.py"),
}
# kinds whose table says which rows have not run yet, even for a header-only CSV
RENDERS_EMPTY = ("finetune", "generalization", "encoders", "finetune_ladder")
RENDERS_EMPTY_TABLES = (finetune_table, generalization_table, encoder_ladder_table, finetune_ladder_table)


def render_block(spec: str, page: Path) -> list[str]:
    """The lines between the markers of one generated block: `KIND CSV` (CSV relative to the repository)."""
    words = spec.split()
    if len(words) != 2 or words[0] not in BLOCK_KINDS:
        raise UserError(
            f"{_doc_path(page)}: generated block '{spec}' is not one of: "
            + ", ".join(f"'{k} <csv>'" for k in BLOCK_KINDS),
            code=1,
        )
    kind, csv_path = words
    path = _abs(csv_path)
    if not path.is_file():
        raise UserError(f"{_doc_path(page)}: generated block names {csv_path}, which does not exist", code=1)
    table, writer = BLOCK_KINDS[kind]
    rows = _shared.read_rows(path)
    return [
        f"<!-- Rendered by `python bench/reproduce.py --render` from {_doc_path(path)} ({writer} rows). "
        "Edit the CSV, not this table. -->",
        "",
        *(table(rows) if rows or kind in RENDERS_EMPTY else [f"No rows in `{_doc_path(path)}` yet."]),
        "",
    ]


def refresh_page(text: str, page: Path) -> str:
    """`text` with every generated block re-rendered (everything outside the markers is kept as is)."""
    return _shared.refresh_blocks(text, BLOCK_BEGIN, BLOCK_END, lambda spec: render_block(spec, page), _doc_path(page))


def rendered_docs(args: Args) -> dict[Path, str]:
    """Every doc this tool renders from results/, as it should read: the reproduction page and each page
    of --pages-dir with generated blocks. Writes nothing."""
    doc = _abs(args.doc)
    out = {doc: render(_abs(args.results_dir), discover_configs(_abs(args.configs_dir)), args)}
    pages_dir = _abs(args.pages_dir)
    for page in sorted(pages_dir.glob("*.md")) if pages_dir.is_dir() else []:
        if page.resolve() == doc.resolve():
            continue
        text = page.read_text()
        if BLOCK_BEGIN in text:
            out[page] = refresh_page(text, page)
    return out


def write_docs(args: Args) -> list[Path]:
    """Render the docs and write those whose text changed; returns them."""
    changed = []
    for path, text in rendered_docs(args).items():
        if not path.is_file() or path.read_text() != text:
            atomic_write_text(path, text)
            changed.append(path)
        print(f"reproduce: {'wrote' if path in changed else 'unchanged'} {_doc_path(path)}")
    return changed


# ----------------------------------------------------------------------------- main
def main(args: Args) -> int:
    tier = _shared.machine_tier()
    if not args.seeds:
        raise UserError("--seeds needs at least one seed")
    runs_dir, results_dir = _abs(args.runs_dir), _abs(args.results_dir)
    if args.render and not (args.gather or args.execute):
        write_docs(args)
        return 0
    if args.gather and not args.execute:
        return _gather_and_render(args, runs_dir, results_dir)
    plan = plan_runs(args, tier)
    done = finished_runs(runs_dir) if runs_dir.is_dir() else {}
    todo = []
    for cfg, seed in plan:
        prev = done.get((cfg.key, seed))
        todo.append((cfg, seed, prev if (prev and not args.force) else None))
    if not args.execute:
        print(
            f"reproduce: dry run ({tier} machine): {len(plan)} run(s); --execute runs them, --gather collects results"
        )
        for cfg, seed, prev in todo:
            note = f"   # done: {_rel(prev)}" if prev else ""
            print(shlex.join(command(args, cfg, seed)) + note)
        return 0
    failed = []
    for i, (cfg, seed, prev) in enumerate(todo, 1):
        if prev:
            print(f"reproduce: [{i}/{len(todo)}] {cfg.key} seed {seed}: already finished ({_rel(prev)}), skipped")
            continue
        cmd = command(args, cfg, seed)
        print(f"reproduce: [{i}/{len(todo)}] {shlex.join(cmd)}", flush=True)
        rc = subprocess.run(cmd, cwd=_shared.REPO_ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1")).returncode
        if rc != 0:
            print(f"reproduce: {cfg.key} seed {seed} FAILED (exit code {rc})", flush=True)
            failed.append(f"{cfg.key}/seed{seed}")
    _gather_and_render(args, runs_dir, results_dir)
    if failed:
        raise UserError(f"{len(failed)} run(s) failed: {', '.join(failed)}", code=1)
    return 0


def _gather_and_render(args: Args, runs_dir: Path, results_dir: Path) -> int:
    gather(runs_dir, results_dir)
    write_docs(args)
    return 0


if __name__ == "__main__":
    run(main, tyro.cli(Args))
