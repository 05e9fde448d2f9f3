"""Render docs/report.md (the three comparisons, throughput, learning runs, references, limitations), its
figures in docs/figures/ and README.md's generated blocks, from results/ only. Docs: docs/report.md

    python bench/make_report.py                # all of it; also docs/benchmarks.md via bench/report.py
    make report                                # bench/reproduce.py --render, then this

Every table row ends in a `source` cell: the CSV under results/ and the lines of it the row was computed
from (line numbers of the file, header = line 1), so no number in a table stands without a row behind
it. Numbers of other systems (on other hardware) come from results/reference_numbers.csv, one row each
with the URL it was read at; a table gets a `reference` column when that file has rows for it. A CSV
that does not exist or has no rows renders as "Not yet measured" with the command that measures it.
Comparisons over seeds flag rows with fewer than 3 seeds, and the Limitations section lists them.
The output is deterministic: rendering twice changes no byte (PNGs through bench/report.py's writer:
matplotlib Agg, no timestamp in a PNG).

README.md: the text between `<!-- generated: bench/make_report.py KIND -->` and `<!-- end generated -->`
is replaced (KIND: headline, throughput, demo); everything else is kept. A README without markers is
left alone.
"""

from __future__ import annotations

import csv
import math
import os
import re
import statistics
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import tyro

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import _shared, finetune_results, report, reproduce  # noqa: E402
from cleanrl_style.lib.runs import UserError, atomic_write_text, run  # noqa: E402

f = _shared.to_float
mean_std, fmt_steps, fmt_wall, fmt2 = reproduce.mean_std, reproduce.fmt_steps, reproduce.fmt_wall, reproduce.fmt2
MIN_SEEDS = 3
BLOCK_BEGIN, BLOCK_END = "<!-- generated: bench/make_report.py ", "<!-- end generated -->"
# columns that say where/when a row was made, not what it measured: left out of generic tables
META_COLUMNS = ("date", "commit", "versions", "command", "cpu_count", "run_dir", "load1_note", "checkpoint", "flags")
FIGURES = ("finetune_curves.png", "generalization.png", "env_fps.png", "train_sps.png")  # what this script owns


@dataclass
class Args:
    results_dir: str = "results"
    """where the CSVs are (the only input besides configs/ and bench/ file names)"""
    doc: str = "docs/report.md"
    """the report to write"""
    figures_dir: str = "docs/figures"
    """where the report's PNGs go (demo_strip.png there is bench/frame_strip.py's)"""
    readme: str = "README.md"
    """a page with `<!-- generated: bench/make_report.py KIND -->` blocks to refresh ('' = none)"""
    benchmarks_doc: str = "docs/benchmarks.md"
    """bench/report.py's page (and its results/*.png), re-rendered first ('' = leave it)"""
    configs_dir: str = "configs"
    """flag files and pipelines: named in placeholders and the GPU limitations"""


# ----------------------------------------------------------------------------- rows with their lines
def load_csv(path: Path) -> list[dict]:
    """All rows of a CSV, each with `_line`: the file line the record ends on (header = line 1)."""
    if not path.is_file():
        return []
    rows = []
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        for r in reader:
            r["_line"] = reader.line_num
            rows.append(r)
    return rows


def _ranges(lines: list[int]) -> str:
    """[2, 3, 4, 7] -> 'L2-4, L7'."""
    out, nums = [], sorted(set(lines))
    i = 0
    while i < len(nums):
        j = i
        while j + 1 < len(nums) and nums[j + 1] == nums[j] + 1:
            j += 1
        out.append(f"L{nums[i]}" + (f"-{nums[j]}" if j > i else ""))
        i = j + 1
    return ", ".join(out)


@dataclass
class Ctx:
    """Paths and what the render collects on the way: flagged seed counts, devices, pending measurements."""

    results: Path
    doc: Path
    figures: Path
    configs: Path
    refs: list[dict] = field(default_factory=list)
    few_seeds: list[tuple[str, str, int]] = field(default_factory=list)  # (section, row, n)
    devices: dict[str, set] = field(default_factory=lambda: defaultdict(set))  # device -> CSV names
    pending: list[tuple[str, str]] = field(default_factory=list)  # (what, CSV)
    figures_written: dict[str, Path] = field(default_factory=dict)
    no_video: bool = False
    _cache: dict[str, list[dict]] = field(default_factory=dict)

    def name(self, path: Path) -> str:
        """A CSV as the report names it: relative to results/."""
        try:
            return str(path.resolve().relative_to(self.results.resolve()))
        except ValueError:
            return path.name

    def rows(self, name: str) -> list[dict]:
        """The rows of results/<name> (cached), noting the devices they came from."""
        if name not in self._cache:
            rows = load_csv(self.results / name)
            self._cache[name] = rows
            for r in rows:
                d = r.get("device") or ""
                if d:
                    self.devices[d].add(name)
        return self._cache[name]

    def cite(self, name: str, rows) -> str:
        lines = [r["_line"] if isinstance(r, dict) else r for r in rows]
        return f"{name}: {_ranges(lines)}" if lines else ""

    def link(self, target: Path) -> str:
        """`target` relative to the report's folder."""
        return os.path.relpath(target.resolve(), self.doc.parent.resolve())

    def page(self, name: str) -> str:
        """A docs/ page relative to the report (they are siblings unless --doc moves the report)."""
        return self.link(_shared.REPO_ROOT / "docs" / name) if not (self.doc.parent / name).is_file() else name

    def csv_link(self, name: str) -> str:
        return f"[`results/{name}`]({self.link(self.results / name)})"

    def seeds_cell(self, section: str, label: str, seeds: list[str]) -> str:
        n = len(seeds)
        if n < MIN_SEEDS:
            self.few_seeds.append((section, label, n))
        return f"{n} ({', '.join(seeds)})" + (f" **< {MIN_SEEDS} seeds**" if n < MIN_SEEDS else "")

    def ref_ids(self, comparison: str, task: str, obs: Optional[str] = None) -> str:
        """The references of a table row: same comparison and task, and (when the row has an observation
        label) an `obs` that is empty or a prefix of it ('rgb' matches 'rgb 64', 'rgb 128' only itself)."""
        ids = [
            f"[R{r['_line']}](#references)"
            for r in self.refs
            if r["comparison"] == comparison
            and r["task"] == task
            and (obs is None or not r.get("obs") or obs == r["obs"] or obs.startswith(r["obs"] + " "))
        ]
        return ", ".join(ids) or "–"

    def has_refs(self, comparison: str) -> bool:
        return any(r["comparison"] == comparison for r in self.refs)


class Table:
    """A markdown table whose every row carries its source (CSV file and lines) in the last column."""

    def __init__(self, header: list[str], align: Optional[str] = None):
        self.header, self.align, self.rows = header, align, []

    def add(self, cells: list, source: str) -> None:
        self.rows.append([str(c) for c in cells] + [source or "–"])

    def lines(self) -> list[str]:
        align = self.align or "|---" * len(self.header) + "|"
        out = ["| " + " | ".join(self.header + ["source"]) + " |", align + "---|"]
        out += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in self.rows]
        return out + [""]


def pending(ctx: Ctx, what: str, name: str, command: str) -> list[str]:
    """The placeholder of a measurement whose CSV is missing or empty."""
    path = ctx.results / name
    state = "has no rows yet" if path.is_file() else "does not exist yet"
    ctx.pending.append((what, name))
    return [f"**Not yet measured.** `results/{name}` {state}. Command: {command}", ""]


def pipeline_command(ctx: Ctx, name: str, gather: str) -> str:
    """How a results CSV is made: the configs/ pipeline whose header names it, then its gatherer."""
    for p in reproduce.discover_pipelines(ctx.configs):
        if f"results/{name}" in p.results:
            return f"`{p.usage}`, then `{gather}`"
    return f"`{gather}`"


def bench_command(pattern: str, page: str, ctx: Ctx) -> str:
    """The bench/ script(s) matching `pattern` and the docs page, for measurements other sessions add."""
    scripts = sorted(p.name for p in (_shared.REPO_ROOT / "bench").glob(pattern))
    parts = [f"`python bench/{s}`" for s in scripts]
    doc = ctx.doc.parent / page
    if doc.is_file():
        parts.append(f"see [{page}]({page})")
    return ", ".join(parts) or f"the runs of `{page}` (not written yet)"


# ----------------------------------------------------------------------------- generic seeded tables
def _numeric(rows: list[dict], col: str) -> bool:
    vals = [r.get(col, "") for r in rows if r.get(col, "") != ""]
    return bool(vals) and all(f(v) == f(v) for v in vals)


def seeded_table(
    ctx: Ctx,
    section: str,
    name: str,
    rows: list[dict],
    metrics: Optional[list[str]] = None,
    keys: Optional[list[str]] = None,
):
    """One row per setting (the `keys` columns the CSV has; default every column but seed, the metrics and
    META_COLUMNS), the metrics as mean ± std over its seeds. Metrics default to the numeric columns named like
    success, return or clean/train/held_out. Returns (table, groups) or (None, None) when the CSV has no seed
    column or no metric."""
    cols = [c for c in rows[0] if not c.startswith("_")]
    if "seed" not in cols:
        return None, None
    if metrics is None:
        metrics = [
            c
            for c in cols
            if _numeric(rows, c) and (any(k in c for k in ("success", "return")) or c in ("clean", "train", "held_out"))
        ]
    metrics = [m for m in metrics if m in cols]
    if not metrics:
        return None, None
    if keys is None:
        keys = [c for c in cols if c not in metrics and c != "seed" and c not in META_COLUMNS]
    else:
        keys = [c for c in keys if c in cols]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r.get(k, "") for k in keys), []).append(r)
    table = Table(keys + ["seeds"] + [f"{m} (mean ± std)" for m in metrics])
    for key, rs in groups.items():
        label = ", ".join(v for v in key if v) or name
        seeds = [r.get("seed", "") for r in rs]
        table.add(
            list(key)
            + [ctx.seeds_cell(section, label, seeds)]
            + [mean_std([f(r.get(m)) for r in rs]) for m in metrics],
            ctx.cite(name, rs),
        )
    return table, groups


def plain_table(ctx: Ctx, name: str, rows: list[dict]) -> Table:
    """Every row of a CSV of unknown layout, its META_COLUMNS left out, numbers as they are in the file."""
    cols = [c for c in rows[0] if not c.startswith("_") and c not in META_COLUMNS]
    table = Table(cols)
    for r in rows:
        table.add([r.get(c, "") for c in cols], ctx.cite(name, [r]))
    return table


# ----------------------------------------------------------------------------- 1. scratch vs BC-initialised
FINETUNE_CSV = "finetune_pickcube_rgb64_cpu.csv"
DIAG_CSV = "finetune_diagnostics_pickcube_rgb64_cpu.csv"
EXPLORE_CSV = "finetune_exploration.csv"
BC_CSVS = ("bc_pickcube_state_cpu.csv", "bc_pickcube_rgb_cpu.csv")


def _curves_name(name: str) -> str:
    return name[: -len(".csv")] + "_curves.csv"


def section_finetune(ctx: Ctx) -> list[str]:
    L = ["## 1. RL from scratch vs BC-initialised RL", ""]
    L += [
        f"The rows of the fine-tuning experiment ([finetune.md]({ctx.page('finetune.md')})): "
        "`bc` alone, SAC from pixels from scratch, with demos only (RLPD-style), from a BC start only, and the "
        "recipe (BC start + demos + BC term); the same env-step budget for every RL row, final success on "
        f"held-out seeds. Data: {ctx.csv_link(FINETUNE_CSV)} and {ctx.csv_link(_curves_name(FINETUNE_CSV))}.",
        "",
    ]
    rows = ctx.rows(FINETUNE_CSV)
    curves = ctx.rows(_curves_name(FINETUNE_CSV))
    if not rows:
        L += pending(
            ctx,
            "RL from scratch vs BC-initialised RL",
            FINETUNE_CSV,
            pipeline_command(ctx, FINETUNE_CSV, "python bench/finetune_results.py OUT_DIR")
            + " for each ROW in "
            + ", ".join(r for r in reproduce.FINETUNE_ROWS if r not in reproduce.BC_ROWS)
            + " and each SEED",
        )
    else:
        L += finetune_table(ctx, rows) + finetune_figure(ctx, rows, curves)
    L += section_bc(ctx) + section_diagnostics(ctx)
    return L


def finetune_table(ctx: Ctx, rows: list[dict]) -> list[str]:
    groups, left_out = reproduce.finetune_runs(rows)
    order = list(reproduce.FINETUNE_ROWS)
    refs = ctx.has_refs("finetune")
    table = Table(
        [
            "row",
            "what",
            "seeds",
            "final success_once",
            "final success_at_end",
            "final evaluation",
            "env steps",
            "wall time (mean)",
            "device",
        ]
        + (["reference"] if refs else []),
    )
    for (device, row, size), rs in sorted(
        groups.items(), key=lambda kv: (order.index(kv[0][1]) if kv[0][1] in order else len(order), kv[0])
    ):
        episodes = ", ".join(dict.fromkeys(f"{r.get('test_episodes', '?')} ({r.get('final_source', '?')})" for r in rs))
        walls = [f(r.get("wall_s")) + (f(r.get("pretrain_s")) if f(r.get("pretrain_s")) > 0 else 0.0) for r in rs]
        steps = (
            "0 (no RL)"
            if row in reproduce.BC_ROWS
            else ", ".join(dict.fromkeys(reproduce._fmt_steps_cell(r.get("env_steps")) for r in rs))
        )
        task = rs[0].get("env_id", "")
        label = reproduce.finetune_label(row, size)
        table.add(
            [
                label,
                reproduce.FINETUNE_ROWS.get(row, "?"),
                ctx.seeds_cell("1. fine-tuning", label, [r.get("seed", "") for r in rs]),
                mean_std([f(r.get("final_success_once")) for r in rs]),
                mean_std([f(r.get("final_success_at_end")) for r in rs]),
                episodes,
                steps,
                fmt_wall(walls),
                device,
            ]
            + ([ctx.ref_ids("finetune", task)] if refs else []),
            ctx.cite(FINETUNE_CSV, rs),
        )
    ran = {row for _, row, size in groups if not size}  # of the protocol's size
    for row, what in reproduce.FINETUNE_ROWS.items():
        if row not in ran:
            table.add([row, what, "not run yet", "–", "–", "–", "–", "–", "–"] + (["–"] if refs else []), "")
    out = table.lines()
    if any(left_out.values()):
        out += ["Older runs of a seed are superseded by its newest run (their lines are not cited).", ""]
    out += [
        "Wall time of a row started from BC includes the BC training (`pretrain_s`). Final evaluation: episodes "
        "and the file it came from (`eval_last...`: held-out seeds; `final_eval.json`: the run's own).",
        "",
    ]
    return out


def finetune_figure(ctx: Ctx, rows: list[dict], curves: list[dict]) -> list[str]:
    path = ctx.figures / "finetune_curves.png"
    written = finetune_results.plot(rows, curves, path)
    if not written:
        return []
    ctx.figures_written[path.name] = path
    groups, _ = reproduce.finetune_runs(rows)
    used = {r.get("run_dir") for rs in groups.values() for r in rs}
    cited = [c for c in curves if c.get("run_dir") in used]
    return [
        f"![success_once vs env steps and vs wall time]({ctx.link(path)})",
        "",
        "Eval success_once (deterministic policy, the runs' own evaluation seeds) against env steps (left) and "
        "wall time (right): mean over seeds, band ± std where at least two seeds evaluated, n per row in the "
        f"legend; the `bc` row is its final success (dashed). Data: {ctx.cite(_curves_name(FINETUNE_CSV), cited)}.",
        "",
    ]


def section_bc(ctx: Ctx) -> list[str]:
    L = [
        "### Behaviour cloning alone",
        "",
        "The BC policies RL starts from, and what BC reaches by itself on PickCube-v1 (final success_once of the "
        "last policy on fresh seeds). One row per variant; `seeds` counts training seeds.",
        "",
    ]
    for name in BC_CSVS:
        rows = ctx.rows(name)
        if not rows:
            L += pending(
                ctx,
                f"behaviour cloning ({name})",
                name,
                pipeline_command(ctx, name, "python bench/bc_results.py --runs RUN_DIR ... --out results/" + name),
            )
            continue
        groups: dict[tuple, list[dict]] = {}
        for r in rows:
            groups.setdefault((r.get("device", ""), r.get("variant") or "?"), []).append(r)
        table = Table(
            [
                "variant",
                "obs",
                "demos",
                "method",
                "gradient steps",
                "seeds",
                "final success_once",
                "episodes",
                "training time (mean)",
                "device",
            ]
        )
        for (device, variant), rs in groups.items():
            rs = sorted(rs, key=lambda r: reproduce._seed_key(r.get("seed", "")))
            uniq = lambda col, rs=rs: ", ".join(dict.fromkeys(r.get(col, "") for r in rs))  # noqa: E731
            table.add(
                [
                    variant,
                    uniq("obs_mode"),
                    uniq("num_demos"),
                    reproduce.bc_method(rs[0]),
                    ", ".join(dict.fromkeys(reproduce._fmt_steps_cell(r.get("total_iters")) for r in rs)),
                    ctx.seeds_cell("1. behaviour cloning", variant, [r.get("seed", "") for r in rs]),
                    mean_std([f(r.get("final_success_once")) for r in rs]),
                    uniq("final_episodes"),
                    fmt_wall([f(r.get("train_s")) for r in rs]),
                    device,
                ],
                ctx.cite(name, rs),
            )
        L += [
            f"{ctx.csv_link(name)} (every seed's evaluations: [reproduction.md]({ctx.page('reproduction.md')})):",
            "",
        ]
        L += table.lines()
    if not ctx.has_refs("bc"):
        L += [
            "No public success number for these settings was found (results/reference_numbers.csv has no `bc` "
            "row): ManiSkill's imitation baselines publish their commands, not a results table, in the sources read.",
            "",
        ]
    return L


def section_diagnostics(ctx: Ctx) -> list[str]:
    L = []
    rows = ctx.rows(DIAG_CSV)
    if rows:
        L += [
            "### Single-seed diagnostics (not a comparison)",
            "",
            "Short runs that chose the recipe's flags, one seed each: read them as a check of one setting, not "
            f"as a result over seeds. Data: {ctx.csv_link(DIAG_CSV)}.",
            "",
        ]
        table = Table(
            [
                "run",
                "row",
                "seed",
                "bc_coef, bc_decay_steps",
                "env steps",
                "start / min / final success_once",
                "eval success_once during training",
                "final evaluation",
                "device",
            ]
        )
        for r in rows:
            flags = dict(kv.partition("=")[::2] for kv in (r.get("flags") or "").split())
            curve = "; ".join(
                f"@{fmt_steps(int(f(k)))}: {fmt2(f(v))}"
                for k, _, v in (item.partition(":") for item in (r.get("eval_curve") or "").split(";") if item)
            )
            table.add(
                [
                    r.get("exp_name", ""),
                    r.get("row", ""),
                    r.get("seed", ""),
                    f"{flags.get('bc_coef', '–')}, {flags.get('bc_decay_steps', '–')}",
                    reproduce._fmt_steps_cell(r.get("env_steps")),
                    " / ".join(
                        fmt2(f(r.get(c))) for c in ("start_success_once", "min_eval_success_once", "final_success_once")
                    ),
                    curve or "–",
                    f"{r['test_episodes']} episodes ({r.get('final_source', '?')})"
                    if r.get("test_episodes")
                    else r.get("final_source", "?"),
                    r.get("device", ""),
                ],
                ctx.cite(DIAG_CSV, [r]),
            )
        L += table.lines()
    rows = ctx.rows(EXPLORE_CSV)
    if rows:
        L += [
            f"Exploration noise around one BC start ({ctx.csv_link(EXPLORE_CSV)}): the same checkpoint evaluated "
            "with deterministic and sampled actions; one checkpoint, one seed range.",
            "",
        ]
        table = Table(
            ["log_std", "noise_scale", "mean std", "episodes", "eval seed", "success_once", "success_at_end", "device"]
        )
        for r in rows:
            table.add(
                [
                    r.get("log_std", ""),
                    r.get("noise_scale", ""),
                    fmt2(f(r.get("mean_std"))),
                    r.get("episodes", ""),
                    r.get("seed", ""),
                    fmt2(f(r.get("success_once"))),
                    fmt2(f(r.get("success_at_end"))),
                    r.get("device", ""),
                ],
                ctx.cite(EXPLORE_CSV, [r]),
            )
        L += table.lines()
    return L


# ----------------------------------------------------------------------------- 2. encoder ladder
ENCODER_THROUGHPUT_CSV = "encoder_throughput.csv"
# bench/encoder_ladder_results.py's --out (every results/encoder_ladder_*.csv is rendered)
LADDER_CSV = "encoder_ladder_pickcube_rgb64_cpu.csv"
LADDER_METRICS = ["clean", "held_out", "train_s"]
# what makes one ladder setting; the other columns (pretrain_s, commit, run_dir, ...) differ from run to run
LADDER_KEYS = ["row", "encoder", "weights", "frozen", "unfreeze_after", "num_demos", "bc_iters", "episodes", "device"]


def section_encoders(ctx: Ctx) -> list[str]:
    L = ["## 2. Encoder ladder", ""]
    command = bench_command("*encoder*.py", "encoders.md", ctx)
    rows = ctx.rows(ENCODER_THROUGHPUT_CSV)
    L += ["### Throughput", ""]
    if rows:
        L += [f"Every row of {ctx.csv_link(ENCODER_THROUGHPUT_CSV)}:", ""] + plain_table(
            ctx, ENCODER_THROUGHPUT_CSV, rows
        ).lines()
    else:
        L += pending(ctx, "encoder throughput", ENCODER_THROUGHPUT_CSV, command)
    others = sorted(
        ctx.name(p)
        for p in ctx.results.glob("encoder*.csv")
        if p.name != ENCODER_THROUGHPUT_CSV and not p.name.startswith("encoder_ladder_")
    )
    for name in others:  # timings of other encoder paths (the feature cache): not learning results
        rows = ctx.rows(name)
        if rows:
            L += [f"{ctx.csv_link(name)}:", ""] + plain_table(ctx, name, rows).lines()
    L += ["### Learning", ""]
    ladder = sorted(ctx.name(p) for p in ctx.results.glob("encoder_ladder_*.csv"))
    found = False
    for name in ladder:
        rows = ctx.rows(name)
        if not rows:
            continue
        found = True
        table, _ = seeded_table(ctx, "2. encoder ladder", name, rows, LADDER_METRICS, LADDER_KEYS)
        L += [f"{ctx.csv_link(name)}:", ""] + (table or plain_table(ctx, name, rows)).lines()
    if not found:
        gather = "python bench/encoder_ladder_results.py OUT_DIR"
        L += pending(
            ctx,
            "encoder ladder learning",
            ladder[0] if ladder else LADDER_CSV,
            pipeline_command(ctx, LADDER_CSV, gather) + " for each ROW and SEED",
        )
    L += [
        "The ladder's rungs inside BC -> RL fine-tuning (`"
        + "`, `".join(reproduce.FINETUNE_LADDER_ROWS)
        + "`) are rows of the fine-tuning table, [section 1](#1-rl-from-scratch-vs-bc-initialised-rl).",
        "",
    ]
    return L


# ----------------------------------------------------------------------------- 3. DR / augmentation
GENERALIZATION_CSV = "generalization_pickcube_rgb64_cpu.csv"
# the same experiment with the train column (and the sim rows' demos) at --sim-dr light (docs/generalization.md)
GENERALIZATION_LIGHT_CSV = "generalization_light_pickcube_rgb64_cpu.csv"
GEN_METRICS = ["clean", "train", "held_out"]
# what makes one setting of bench/generalization_results.py's rows; its other columns (the *_at_end metrics,
# wall_s, test_device, ...) differ from run to run and would split a setting's seeds
GEN_KEYS = [
    "training",
    "policy",
    "demo_sim_dr",
    "image_dr",
    "sim_dr_level",
    "num_demos",
    "total_iters",
    "episodes",
    "device",
]
AUG_CSV = "aug_throughput.csv"


def section_generalization(ctx: Ctx) -> list[str]:
    L = [
        "## 3. Without vs with domain randomisation / augmentation",
        "",
        "Success on the clean task, on the training distribution and on held-out variations, per way of "
        f"training; mean ± std over training seeds. Data: {ctx.csv_link(GENERALIZATION_CSV)}.",
        "",
    ]
    rows = _gen_rows(ctx, GENERALIZATION_CSV)
    if not rows:
        L += pending(
            ctx,
            "generalisation without vs with randomisation",
            GENERALIZATION_CSV,
            pipeline_command(ctx, GENERALIZATION_CSV, "python bench/generalization_results.py OUT_DIR")
            + " for each ROW in none, image, sim, sim+image and each SEED",
        )
    else:
        table, groups = seeded_table(ctx, "3. generalisation", GENERALIZATION_CSV, rows, GEN_METRICS, GEN_KEYS)
        if table is None:
            raise UserError(f"results/{GENERALIZATION_CSV} needs the columns seed, {', '.join(GEN_METRICS)}", code=1)
        L += table.lines()
        L += generalization_figure(ctx, table, groups)
    L += generalization_light(ctx)
    L += ["### Augmentation throughput", ""]
    rows = ctx.rows(AUG_CSV)
    if not rows:
        L += pending(ctx, "augmentation throughput", AUG_CSV, "`python bench/aug_throughput.py`")
    else:
        L += aug_tables(ctx, rows)
    return L


def _gen_rows(ctx: Ctx, name: str) -> list[dict]:
    """The lines of a generalization CSV in the docs table's row order (none, image, sim, sim+image; a stable
    sort, so within a row the CSV's order); an empty policy cell (a line older than the column) is bc's, as in
    the docs table."""
    rows = ctx.rows(name)
    if rows and "policy" in rows[0]:
        rows = [dict(r, policy=reproduce.gen_policy(r)) for r in rows]
    order = list(reproduce.GENERALIZATION_ROWS)
    return sorted(rows, key=lambda r: order.index(r.get("training")) if r.get("training") in order else len(order))


def generalization_light(ctx: Ctx) -> list[str]:
    """The light-ranges diagnostic: the same rows with the sim rows' demos and every train column at
    --sim-dr light. Nothing when its CSV is absent (it is not one of the issue's tables)."""
    rows = _gen_rows(ctx, GENERALIZATION_LIGHT_CSV)
    if not rows:
        return []
    table, _ = seeded_table(ctx, "3. generalisation (light)", GENERALIZATION_LIGHT_CSV, rows, GEN_METRICS, GEN_KEYS)
    if table is None:
        raise UserError(f"results/{GENERALIZATION_LIGHT_CSV} needs the columns seed, {', '.join(GEN_METRICS)}", code=1)
    return [
        "### Light ranges (diagnostic)",
        "",
        "The same experiment with the `sim` rows' demos rendered under `--sim-dr light` and the `train` "
        "column drawn from light's narrower ranges (`sim_dr_level`); clean and held-out are the same "
        f"distributions as above. Data: {ctx.csv_link(GENERALIZATION_LIGHT_CSV)}.",
        "",
        *table.lines(),
    ]


def generalization_figure(ctx: Ctx, table: Table, groups: dict) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [", ".join(v for v in key if v) for key in groups]
    fig, ax = plt.subplots(figsize=(7, 3.8))
    width = 0.8 / max(1, len(groups))
    for i, (label, rs) in enumerate(zip(labels, groups.values())):
        means, stds = [], []
        for m in GEN_METRICS:
            vals = [f(r.get(m)) for r in rs if f(r.get(m)) == f(r.get(m))]
            means.append(statistics.fmean(vals) if vals else math.nan)
            stds.append(statistics.stdev(vals) if len(vals) >= 2 else 0.0)
        xs = [j + (i - (len(groups) - 1) / 2) * width for j in range(len(GEN_METRICS))]
        ax.bar(xs, means, width, yerr=stds, capsize=3, label=f"{label} (n={len(rs)})")
    ax.set_xticks(range(len(GEN_METRICS)), GEN_METRICS)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("success (mean ± std over seeds)")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("Without vs with randomisation (bench/make_report.py)", fontsize=10)
    fig.tight_layout()
    path = report._save(fig, ctx.figures / "generalization.png")
    ctx.figures_written[path.name] = path
    return [
        f"![success on clean / train / held-out]({ctx.link(path)})",
        "",
        "Bars: mean over seeds, whiskers ± std (n per bar in the legend). "
        f"Data: {ctx.cite(GENERALIZATION_CSV, [r for rs in groups.values() for r in rs])}.",
        "",
    ]


def aug_tables(ctx: Ctx, rows: list[dict]) -> list[str]:
    """Images/s per resolution x batch (rows) and implementation (columns), median over the rows of a setting."""
    L = [f"Augmentation of uint8 image batches, images/s (median over runs). Data: {ctx.csv_link(AUG_CSV)}.", ""]
    for device in dict.fromkeys(r.get("device", "") for r in rows):
        rs = [r for r in rows if r.get("device", "") == device and f(r.get("images_per_s")) > 0]
        impls = list(dict.fromkeys(r.get("impl", "?") for r in rs))
        table = Table(["device", "res", "batch"] + impls)
        for res, batch in sorted({(int(f(r["res"])), int(f(r["batch"]))) for r in rs}):
            cells, used = [], []
            for impl in impls:
                hits = [
                    r for r in rs if r.get("impl") == impl and int(f(r["res"])) == res and int(f(r["batch"])) == batch
                ]
                used += hits
                cells.append(f"{statistics.median(f(r['images_per_s']) for r in hits):,.0f}" if hits else "–")
            table.add([device, f"{res}x{res}", batch] + cells, ctx.cite(AUG_CSV, used))
        L += table.lines()
    return L


# ----------------------------------------------------------------------------- 4. throughput
ENV_CSV, TRAIN_CSV = "env_fps.csv", "train_sps.csv"


def load_throughput(ctx: Ctx):
    env_rows, train_rows = ctx.rows(ENV_CSV), ctx.rows(TRAIN_CSV)
    env, train = report.aggregate_env_fps(env_rows), report.aggregate_train_sps(train_rows)
    report.rebase_ratios(env_rows, train)
    return env_rows, train_rows, env, train


def section_throughput(ctx: Ctx) -> list[str]:
    L = [
        "## 4. Throughput: raw simulator and training, per device tier",
        "",
        "Raw env steps/s with random actions (`bench/env_fps.py`) and training env steps/s of each script "
        "(`bench/train_sps.py`), as summarised by `bench/report.py`: the median of the repeated measurements of "
        "a setting, over the rows of a machine that was not oversubscribed when there are any. Full tables "
        f"and the method: [benchmarks.md]({ctx.page('benchmarks.md')}).",
        "",
    ]
    env_rows, train_rows, env, train = load_throughput(ctx)
    devices = report.device_order(list(env) + list(train))
    if not env_rows:
        L += pending(ctx, "raw env throughput", ENV_CSV, "`python bench/env_fps.py`")
    if not train_rows:
        L += pending(ctx, "training throughput", TRAIN_CSV, "`python bench/train_sps.py`")
    refs = ctx.has_refs("throughput_env_fps")
    if env_rows:
        table = Table(
            ["device", "task", "obs", "num_envs", "raw env steps/s", "runs", "load1"] + (["reference"] if refs else [])
        )
        for d in devices:
            for s in env.get(d, []):
                fps = "err" if s.get("error") else report.fmt_num(s["env_fps"])
                table.add(
                    [
                        d,
                        s["env_id"],
                        s["label"],
                        s["num_envs"],
                        fps,
                        report.fmt_runs(s),
                        report.fmt_load(s.get("load1")),
                    ]
                    + ([ctx.ref_ids("throughput_env_fps", s["env_id"], s["label"])] if refs else []),
                    ctx.cite(ENV_CSV, s["src_rows"]),
                )
        L += ["### Raw env throughput", ""] + table.lines()
    if train_rows:
        refs = ctx.has_refs("throughput_train")
        table = Table(
            [
                "device",
                "script",
                "task",
                "obs",
                "num_envs",
                "mode",
                "train SPS",
                "collect FPS",
                "raw env FPS",
                "collect / raw",
                "train SPS / raw",
                "runs",
            ]
            + (["reference"] if refs else [])
        )
        for d in devices:
            for s in train.get(d, []):
                raw = s.get("env_fps", math.nan)
                raw_src = [
                    line
                    for e in env.get(d, [])
                    if (e["env_id"], e["obs"], e["res"], e["num_envs"])
                    == (s["env_id"], s["obs"], s["res"], s["num_envs"])
                    for line in e["src_rows"]
                ]
                src = "; ".join(c for c in (ctx.cite(TRAIN_CSV, s["src_rows"]), ctx.cite(ENV_CSV, raw_src)) if c)
                table.add(
                    [
                        d,
                        s["script"],
                        s["env_id"],
                        s["label"],
                        s["num_envs"],
                        s["mode"],
                        report.fmt_num(s["train_sps"]),
                        report.fmt_num(s.get("collect_fps", math.nan)),
                        report.fmt_num(raw),
                        report.fmt_num(s.get("ratio", math.nan)),
                        report.fmt_num(s["train_sps"] / raw if raw == raw and raw > 0 else math.nan),
                        report.fmt_runs(s),
                    ]
                    + ([ctx.ref_ids("throughput_train", s["env_id"], s["label"])] if refs else []),
                    src,
                )
        L += ["### Training throughput and its ratio to raw", ""] + table.lines()
        L += [
            "`collect / raw`: env steps/s while collecting (policy inference included) over the raw simulator at "
            "the same setting; `train SPS / raw`: the whole loop (collection + updates) over the same. A ratio "
            "above 1 is a load artefact (the two were measured under different load).",
            "",
        ]
    if not report.is_gpu_any(devices):
        L += [
            "**GPU tier: not yet measured.** No row of either CSV comes from a GPU; the commands are in "
            f"[benchmarks.md#add-your-gpu]({ctx.page('benchmarks.md')}#add-your-gpu).",
            "",
        ]
    for name, fn, title in (
        ("env_fps.png", report.plot_env_fps, "raw env throughput vs num_envs"),
        ("train_sps.png", report.plot_train_sps, "training SPS vs raw env FPS"),
    ):
        data = env if name == "env_fps.png" else train
        path = fn(data, ctx.figures / name) if any(data.values()) else None
        if path:
            ctx.figures_written[name] = path
            L += [f"![{title}]({ctx.link(path)})", ""]
    return L


# ----------------------------------------------------------------------------- 5. learning runs (reproduce.py)
def repro_groups(ctx: Ctx) -> list[tuple[str, str, list[dict]]]:
    """(csv name, device, rows) per results/repro/*.csv and device."""
    out = []
    for path in sorted((ctx.results / "repro").glob("*.csv")):
        name = ctx.name(path)
        by_device: dict[str, list[dict]] = defaultdict(list)
        for r in ctx.rows(name):
            by_device[r.get("device") or "unknown"].append(r)
        out += [(name, d, by_device[d]) for d in sorted(by_device)]
    return out


def section_learning(ctx: Ctx) -> list[str]:
    L = [
        "## 5. PPO and SAC from state (the reproduction runs)",
        "",
        "The configs `bench/reproduce.py` runs over fixed seeds: the final evaluation of each seed's last policy "
        f"on fresh seeds, mean ± std over seeds. Every seed's curve: [reproduction.md]({ctx.page('reproduction.md')}).",
        "",
    ]
    groups = repro_groups(ctx)
    if not groups:
        return L + pending(ctx, "PPO / SAC reproduction runs", "repro/*.csv", "`python bench/reproduce.py --execute`")
    refs = ctx.has_refs("learning")
    table = Table(
        [
            "script",
            "task",
            "config",
            "seeds",
            "final success_once",
            "final success_at_end",
            "env steps",
            "wall time (mean)",
            "device",
        ]
        + (["reference"] if refs else [])
    )
    for name, device, rows in groups:
        finals = [r for r in rows if r.get("kind") == "final"]
        r0 = rows[0]
        cited = finals or rows
        table.add(
            [
                f"{r0.get('script')}.py",
                r0.get("env_id", ""),
                r0.get("config", ""),
                ctx.seeds_cell(
                    "5. learning",
                    f"{r0.get('script')} {r0.get('config')}",
                    sorted({r["seed"] for r in finals}, key=reproduce._seed_key),
                )
                if finals
                else "running",
                mean_std([f(r["success_once"]) for r in finals]),
                mean_std([f(r["success_at_end"]) for r in finals]),
                fmt_steps(max(int(f(r["step"])) for r in cited)),
                fmt_wall([f(r["wall_time"]) for r in finals]),
                device,
            ]
            + (
                [ctx.ref_ids("learning", r0.get("env_id", ""), "rgb" if "_rgb" in r0.get("script", "") else "state")]
                if refs
                else []
            ),
            ctx.cite(name, cited),
        )
    return L + table.lines()


# ----------------------------------------------------------------------------- 6. videos
def section_videos(ctx: Ctx) -> list[str]:
    """The frame strip of an evaluation video (bench/frame_strip.py), or how to make one."""
    L = ["## 6. Videos", ""]
    if not (ctx.figures / "demo_strip.png").is_file():
        ctx.no_video = True
    return L + readme_demo(ctx, ctx.doc.parent)


# ----------------------------------------------------------------------------- references, limitations
REFS_CSV = "reference_numbers.csv"
REF_COLUMNS = (
    "comparison",
    "task",
    "obs",
    "method",
    "metric",
    "value",
    "setting",
    "hardware",
    "source_url",
    "retrieved",
)


def load_refs(ctx: Ctx) -> None:
    rows = load_csv(ctx.results / REFS_CSV)
    if rows and any(c not in rows[0] for c in REF_COLUMNS):
        missing = [c for c in REF_COLUMNS if c not in rows[0]]
        raise UserError(f"results/{REFS_CSV} lacks column(s) {', '.join(missing)}", code=1)
    bad = [r["_line"] for r in rows if not r.get("source_url", "").startswith(("http://", "https://"))]
    if bad:
        raise UserError(f"results/{REFS_CSV}: line(s) {_ranges(bad)} have no source_url: a reference needs one", code=1)
    ctx.refs = rows


def section_references(ctx: Ctx) -> list[str]:
    L = [
        "## References",
        "",
        "**Other systems' numbers, on other hardware.** Each row is a number read in the public source its URL "
        "names, copied with its setting into "
        f"{ctx.csv_link(REFS_CSV)}. None of them was measured by this project or on its machine, most name no "
        "exact GPU, and settings differ (task version, controller, image size, env count): they place our "
        "numbers, they are not like-for-like comparisons. `R<n>` is the line of the row in that file.",
        "",
    ]
    if not ctx.refs:
        return L + [f"`results/{REFS_CSV}` has no rows yet.", ""]
    table = Table(["id", *REF_COLUMNS[:-2], "source URL", "retrieved"])
    for r in ctx.refs:
        table.add(
            [f"R{r['_line']}"]
            + [r.get(c, "") for c in REF_COLUMNS[:-2]]
            + [f"<{r['source_url']}>", r.get("retrieved", "")],
            ctx.cite(REFS_CSV, [r]),
        )
    return L + table.lines()


def section_limitations(ctx: Ctx) -> list[str]:
    L = ["## Limitations", ""]
    devices = sorted(ctx.devices)
    gpu = [d for d in devices if report.is_gpu(d)]
    cpu = [d for d in devices if not report.is_gpu(d)]
    L += ["**What was measured, and where.** Every row of results/ names the machine it ran on:", ""]
    for d in devices:
        L.append(f"- {d}: {', '.join(f'`{n}`' for n in sorted(ctx.devices[d]))}")
    L.append("")
    if cpu:
        L += [
            f"The CPU machines ({'; '.join(cpu)}) ran the physx_cpu simulator with software Vulkan rendering, shared "
            "with other jobs of this project (the throughput CSVs record the load average of each row; "
            "wall times there are upper bounds). Pixel learning that needs many env steps does not fit on them.",
            "",
        ]
    gpu_configs = (
        sorted(reproduce._doc_path(p) for p in ctx.configs.glob("*/*gpu*.args")) if ctx.configs.is_dir() else []
    )
    if not gpu:
        L += [
            "**Nothing has run on a GPU.** No row of any CSV comes from a GPU, so every GPU number of this project is "
            "unmeasured: simulator and training throughput at GPU env counts, the CUDA replay buffer and "
            "`--compile`/`--cudagraphs` speed-ups, and all learning results at GPU scale"
            + (f" (configs waiting for one: {', '.join(f'`{c}`' for c in gpu_configs)})" if gpu_configs else "")
            + ". The reference numbers above are the only GPU numbers in this report, and they are other systems'.",
            "",
        ]
    else:
        L += [f"GPU rows exist from: {'; '.join(gpu)}.", ""]
    if ctx.few_seeds:
        L += [
            f"**Too few seeds** (fewer than {MIN_SEEDS}, flagged in the tables): differences involving these rows "
            "are not established.",
            "",
        ]
        for section, label, n in ctx.few_seeds:
            L.append(f"- {section}: `{label}`: {n} seed{'s' if n != 1 else ''}")
        L.append("")
    spread = [r for r in ctx.refs if r["comparison"] == "seed_variance"]
    if spread:
        L += [
            "How far one seed can be from another: "
            + "; ".join(
                f"[R{r['_line']}](#references) {r['method']} on {r['task']}: {r['metric']} {r['value']}" for r in spread
            )
            + " (other systems' runs, see References).",
            "",
        ]
    else:
        L += [f"Every seeded row has at least {MIN_SEEDS} seeds.", ""]
    if ctx.pending:
        L += ["**Not yet measured** (placeholders above):", ""]
        for what, name in ctx.pending:
            L.append(f"- {what}: `results/{name}`")
        L.append("")
    if ctx.no_video:
        L += [
            "**No video.** No evaluation video of a trained policy is in this report: the checkpoints and videos "
            "live in `runs/`, which is not committed ([6. Videos](#6-videos) says how to add a frame strip).",
            "",
        ]
    L += [
        "Single-seed diagnostics and the exploration check are one seed or one checkpoint by design; the "
        "evaluation episode counts in the tables bound how precise each success rate is.",
        "",
    ]
    return L


# ----------------------------------------------------------------------------- the page
def render(ctx: Ctx) -> str:
    load_refs(ctx)
    body: list[str] = []
    for section in (
        section_finetune,
        section_encoders,
        section_generalization,
        section_throughput,
        section_learning,
        section_videos,
    ):
        body += section(ctx)
    body += section_references(ctx)
    tail = section_limitations(ctx) + [
        "## Regenerate",
        "",
        "```bash",
        "make report     # bench/reproduce.py --render, then bench/make_report.py (this page, docs/figures/, "
        "README blocks, docs/benchmarks.md)",
        "```",
        "",
        "The inputs are the CSVs under results/ (and the names of configs/ files); append rows there, never "
        "edit this page. `tests/test_report.py` renders it from fixture CSVs and checks that every table row "
        "cites existing lines.",
        "",
    ]
    head = [
        "# Report",
        "",
        "<!-- Generated by `python bench/make_report.py` (`make report`) from results/*.csv. Do not edit by hand. -->",
        "",
        "What this project measured, in one place: three comparisons (RL from scratch vs BC-initialised RL; the "
        "encoder ladder; without vs with randomisation), throughput per device tier, the PPO/SAC reproduction runs, "
        "public reference numbers and the limits of all of it. **Every number in a table comes from a CSV row**: "
        "the last column names the file under results/ and its lines (header = line 1). Numbers of other systems "
        "are in [References](#references), each with its URL.",
        "",
        "Contents: [1. scratch vs BC-initialised](#1-rl-from-scratch-vs-bc-initialised-rl) · "
        "[2. encoders](#2-encoder-ladder) · "
        "[3. randomisation](#3-without-vs-with-domain-randomisation--augmentation) · "
        "[4. throughput](#4-throughput-raw-simulator-and-training-per-device-tier) · "
        "[5. PPO/SAC](#5-ppo-and-sac-from-state-the-reproduction-runs) · [6. videos](#6-videos) · "
        "[References](#references) · "
        "[Limitations](#limitations)",
        "",
    ]
    return "\n".join(head + body + tail)


# ----------------------------------------------------------------------------- README blocks
def readme_headline(ctx: Ctx, readme_dir: Path) -> list[str]:
    """The best measured numbers per experiment, each with its hardware and source lines."""

    def rel(name: str) -> str:
        return os.path.relpath((ctx.results / name).resolve(), readme_dir.resolve())

    table = Table(["result", "success (mean ± std over seeds)", "hardware"])
    for name, device, rows in repro_groups(ctx):
        finals = [r for r in rows if r.get("kind") == "final"]
        if finals:
            r0 = finals[0]
            table.add(
                [
                    f"`{r0['script']}.py` from state, {r0['env_id']}, {fmt_steps(int(f(r0['step'])))} env steps, "
                    f"{fmt_wall([f(r['wall_time']) for r in finals])}",
                    mean_std([f(r["success_once"]) for r in finals]),
                    device,
                ],
                ctx.cite(name, finals),
            )
    for name in BC_CSVS:
        groups: dict[tuple, list[dict]] = {}
        for r in ctx.rows(name):
            groups.setdefault((r.get("device", ""), r.get("variant", "")), []).append(r)
        enough = {k: v for k, v in groups.items() if len(v) >= MIN_SEEDS} or groups
        if enough:
            (device, variant), rs = max(
                enough.items(), key=lambda kv: statistics.fmean(f(r.get("final_success_once")) for r in kv[1])
            )
            table.add(
                [
                    f"`bc.py` from {rs[0].get('obs_mode')}, PickCube-v1, {rs[0].get('num_demos')} demos (`{variant}`)",
                    mean_std([f(r.get("final_success_once")) for r in rs]),
                    device,
                ],
                ctx.cite(name, rs),
            )
    rows = ctx.rows(FINETUNE_CSV)
    groups, _ = reproduce.finetune_runs(rows)
    # each fine-tuning row right under the policy it starts from, on the same held-out seeds, so the
    # headline shows the lift or its absence
    pairs = (
        (
            "bc_init_demos",
            "bc",
            "BC -> RL fine-tuning (the recipe)",
            "its start: `bc.py --policy gaussian` from rgb, PickCube-v1 (the fine-tuning `bc` row)",
        ),
        (
            "residual",
            "bc_chunk",
            "BC -> RL residual on the frozen chunking policy (`--residual-of`)",
            "its base: `bc.py --policy chunk` from rgb, PickCube-v1 (the fine-tuning `bc_chunk` row)",
        ),
    )
    measured = False
    for rl_row, start_row, what, start_what in pairs:
        found = [(k, v) for k, v in groups.items() if k[1] == rl_row and not k[2]]  # the protocol's size
        if not found:
            continue
        measured = True
        (device, _, _), rs = found[0]
        steps = ", ".join(dict.fromkeys(reproduce._fmt_steps_cell(r.get("env_steps")) for r in rs))
        start = groups.get((device, start_row, ""), [])
        if start:
            table.add(
                [start_what, mean_std([f(r.get("final_success_once")) for r in start]), device],
                ctx.cite(FINETUNE_CSV, start),
            )
        table.add(
            [
                f"{what}, PickCube-v1 from RGB, {steps} env steps",
                mean_std([f(r.get("final_success_once")) for r in rs]),
                device,
            ],
            ctx.cite(FINETUNE_CSV, rs),
        )
    if not measured:
        table.add(["BC -> RL fine-tuning, PickCube-v1 from RGB", "not yet measured", "–"], "")
    lines = table.lines()
    # README-relative links for the cited files
    out = []
    for line in lines:
        out.append(re.sub(r"(?<=\| )([\w./+-]+\.csv): ", lambda m: f"[{m.group(1)}]({rel(m.group(1))}): ", line))
    devices = sorted(ctx.devices)
    gpu = any(report.is_gpu(d) for d in devices)
    return [
        f"Measured on {'; '.join(devices) or 'no machine yet'}"
        + ("" if gpu else "; nothing has run on a GPU yet")
        + f". The full report, with the comparisons, curves, reference numbers and limits: "
        f"[docs/report.md]({os.path.relpath(ctx.doc.resolve(), readme_dir.resolve())}).",
        "",
        *out,
    ]


def readme_throughput(ctx: Ctx) -> list[str]:
    _, _, env, train = load_throughput(ctx)
    return report.headline_table(env, train) + [
        "",
        f"From `results/{ENV_CSV}` and `results/{TRAIN_CSV}` (medians per setting, `bench/report.py`); `@N` = "
        "parallel envs.",
        "",
    ]


def readme_demo(ctx: Ctx, readme_dir: Path) -> list[str]:
    import json

    strip = ctx.figures / "demo_strip.png"
    meta_path = strip.with_suffix(".json")
    if strip.is_file():
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        ev = meta.get("eval") or {}
        caption = f"Frames {', '.join(str(i) for i in meta.get('frames', []))} of `{meta.get('video', strip.name)}`"
        if ev:
            caption += (
                f": `{ev.get('script', '?')}.py` policy `{ev.get('checkpoint', '?')}` on {ev.get('env_id', '?')}, "
                f"evaluate.py seed {ev.get('seed', '?')}, success_once {fmt2(f(ev.get('success_once')))} over "
                f"{ev.get('episodes', '?')} episodes ({ev.get('device', '?')}; `{ev.get('eval_json', '')}`)"
            )
        if meta.get("label"):
            caption += f". {meta['label']}"
        rel = os.path.relpath(strip.resolve(), readme_dir.resolve())
        return [f"![a policy of ours, frame by frame]({rel})", "", caption.rstrip(".") + ".", ""]
    return [
        "No frame strip yet: it is made from an evaluation video of a trained policy, and this checkout holds none "
        "(`runs/` is not committed). To make one:",
        "",
        "```bash",
        "make quickstart                                   # or any training run; prints its run directory",
        ".venv/bin/python cleanrl_style/evaluate.py --checkpoint runs/<run>/best.pt --num-episodes 2 --seed 0 --video",
        ".venv/bin/python bench/frame_strip.py runs/<run>/eval_best_seed0.mp4   # -> docs/figures/demo_strip.png",
        "make report                                       # this block then shows it",
        "```",
        "",
    ]


def refresh_readme(text: str, blocks: dict[str, Callable[[], list[str]]], where: str) -> str:
    def render(kind: str) -> list[str]:
        if kind not in blocks:
            raise UserError(f"{where}: generated block '{kind}' is not one of {', '.join(blocks)}", code=1)
        return blocks[kind]()

    return _shared.refresh_blocks(text, BLOCK_BEGIN, BLOCK_END, render, where)


# ----------------------------------------------------------------------------- main
def _abs(p: str) -> Path:
    path = Path(p)
    return path if path.is_absolute() else _shared.REPO_ROOT / path


def main(args: Args) -> dict:
    results = _abs(args.results_dir)
    if args.benchmarks_doc:
        report.main(
            report.Args(
                env_fps_csv=str(results / ENV_CSV),
                train_sps_csv=str(results / TRAIN_CSV),
                doc=str(_abs(args.benchmarks_doc)),
                plots_dir=str(results),
            )
        )
    ctx = Ctx(results=results, doc=_abs(args.doc), figures=_abs(args.figures_dir), configs=_abs(args.configs_dir))
    text = render(ctx)
    written = []
    if not ctx.doc.is_file() or ctx.doc.read_text() != text:
        atomic_write_text(ctx.doc, text)
        written.append(ctx.doc)
    for name in FIGURES:  # a figure whose data is gone does not linger
        stale = ctx.figures / name
        if name not in ctx.figures_written and stale.is_file():
            stale.unlink()
    if args.readme:
        readme = _abs(args.readme)
        old = readme.read_text()
        blocks = {
            "headline": lambda: readme_headline(ctx, readme.parent),
            "throughput": lambda: readme_throughput(ctx),
            "demo": lambda: readme_demo(ctx, readme.parent),
        }
        new = refresh_readme(old, blocks, readme.name)
        if BLOCK_BEGIN not in old:
            print(f"make_report: {readme.name} has no '{BLOCK_BEGIN}KIND -->' blocks, left as is")
        elif new != old:
            atomic_write_text(readme, new)
            written.append(readme)
    print(
        f"make_report: {'wrote' if ctx.doc in written else 'unchanged'} {reproduce._doc_path(ctx.doc)}; "
        f"{len(ctx.figures_written)} figure(s) in {reproduce._doc_path(ctx.figures)}; "
        f"{len(ctx.pending)} placeholder(s); {len(ctx.few_seeds)} row(s) with < {MIN_SEEDS} seeds"
        + (
            f"; refreshed {args.readme}"
            if args.readme and any(p.name == Path(args.readme).name for p in written)
            else ""
        )
    )
    return dict(doc=ctx.doc, text=text, figures=dict(ctx.figures_written), ctx=ctx)


if __name__ == "__main__":
    run(main, tyro.cli(Args))
