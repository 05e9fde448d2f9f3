"""Render docs/benchmarks.md (tables per device tier) and PNG plots from results/env_fps.csv and
results/train_sps.csv. Docs: docs/benchmarks.md

    python bench/report.py                    # rewrite docs/benchmarks.md, results/env_fps.png, results/train_sps.png
    python bench/report.py --headline         # also print the README headline table

Rows from every machine live side by side in the CSVs; the report groups them by the `device`
column (one tier per GPU model, and one per CPU), so rows appended from any GPU show up as a new
tier on the next render. Repeated measurements of one setting are summarised by their median over
the rows taken on a machine that was not oversubscribed (load1 <= cpu_count) when there are any, so a
quiet re-measurement replaces numbers taken under load instead of being averaged with them.
"""

from __future__ import annotations

import math
import os
import statistics
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import tyro

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import _shared, gpu_check, train_sps  # noqa: E402
from cleanrl_style.lib.runs import UserError, atomic_write_bytes, atomic_write_text, run  # noqa: E402

f = _shared.to_float


@dataclass
class Args:
    env_fps_csv: str = "results/env_fps.csv"
    """raw simulator throughput rows (bench/env_fps.py)"""
    train_sps_csv: str = "results/train_sps.csv"
    """training throughput rows (bench/train_sps.py)"""
    doc: str = "docs/benchmarks.md"
    """the markdown page to write"""
    plots_dir: str = "results"
    """where env_fps.png and train_sps.png are written"""
    headline: bool = False
    """print the headline table (for README.md) to stdout"""


# ----------------------------------------------------------------------------- aggregation
def is_gpu(device: str) -> bool:
    return not device.startswith("CPU")


def device_order(devices) -> list[str]:
    """GPU tiers first (by name), then CPU tiers."""
    return sorted(set(devices), key=lambda d: (not is_gpu(d), d))


DR_ORDER = {"off": 0, "light": 1, "heavy": 2}  # lib/sim_dr.LEVELS, the order the tables show them in


def res_label(obs: str, res, sim_dr: str = "off") -> str:
    """The column a setting goes in: state | rgb 64 | ..., plus its simulator randomization level."""
    r = _shared.parse_res(res)
    label = "state" if obs == "state" or r is None else f"{obs} {r}"
    return label if sim_dr in ("", "off") else f"{label} sim_dr={sim_dr}"


def aggregate_env_fps(rows: list[dict]) -> dict[str, list[dict]]:
    """device -> one summary per (env_id, obs, res, num_envs, control_mode, sim_backend, sim_dr): median env_fps
    over the error-free rows (the quiet ones when there are any, see _shared.quiet_rows), n, load1 range,
    median peak memory; or the last error when all failed. `src_rows`: the `_line` of each row the median
    used, for rows read with one (bench/make_report.py cites them)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        key = (
            r.get("device", "?"),
            r.get("env_id", "?"),
            r.get("obs", "?"),
            _shared.parse_res(r.get("res")),
            int(f(r.get("num_envs"))) if f(r.get("num_envs")) == f(r.get("num_envs")) else 0,
            r.get("control_mode", ""),
            r.get("sim_backend", ""),
            r.get("sim_dr") or "off",  # rows written before the column existed ran without randomization
        )
        groups[key].append(r)
    out: dict[str, list[dict]] = defaultdict(list)
    for key, rs in groups.items():
        device, env_id, obs, res, n, ctrl, backend, sim_dr = key
        valid = [r for r in rs if not r.get("error") and f(r.get("env_fps")) > 0]
        ok = _shared.quiet_rows(valid)
        s = dict(
            device=device,
            env_id=env_id,
            obs=obs,
            res=res,
            num_envs=n,
            control_mode=ctrl,
            sim_backend=backend,
            sim_dr=sim_dr,
            n=len(ok),
            n_skipped=len(valid) - len(ok),
            src_rows=[r["_line"] for r in ok if "_line" in r],  # bench/make_report.py cites them
            label=res_label(obs, res, sim_dr),
        )
        if ok:
            loads = [f(r.get("load1")) for r in ok if f(r.get("load1")) == f(r.get("load1"))]
            mems = [f(r.get("peak_mem_gb")) for r in ok if f(r.get("peak_mem_gb")) == f(r.get("peak_mem_gb"))]
            used = [
                f(r.get("gpu_mem_used_gb")) for r in ok if f(r.get("gpu_mem_used_gb")) == f(r.get("gpu_mem_used_gb"))
            ]
            s.update(
                env_fps=statistics.median(f(r["env_fps"]) for r in ok),
                load1=(min(loads), max(loads)) if loads else None,
                peak_mem_gb=statistics.median(mems) if mems else float("nan"),
                gpu_mem_used_gb=statistics.median(used) if used else float("nan"),
                date=max(r.get("date", "") for r in ok)[:10],
                commit=ok[-1].get("commit", "")[:7],
                versions=ok[-1].get("versions", ""),
            )
        else:
            s.update(
                env_fps=float("nan"), error=rs[-1].get("error") or "no valid rows", date=rs[-1].get("date", "")[:10]
            )
        out[device].append(s)
    for v in out.values():
        v.sort(
            key=lambda s: (
                s["env_id"],
                s["obs"] != "state",
                s["obs"],
                s["res"] or 0,
                DR_ORDER.get(s["sim_dr"], 9),
                s["num_envs"],
            )
        )
    return out


def aggregate_train_sps(rows: list[dict]) -> dict[str, list[dict]]:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        key = (
            r.get("device", "?"),
            r.get("script", "?"),
            r.get("env_id", "?"),
            r.get("obs", "?"),
            _shared.parse_res(r.get("res")),
            int(f(r.get("num_envs"))) if f(r.get("num_envs")) == f(r.get("num_envs")) else 0,
            r.get("mode", "?"),
            r.get("omp_num_threads") or "",
        )
        groups[key].append(r)
    out: dict[str, list[dict]] = defaultdict(list)
    order = {m: i for i, m in enumerate(train_sps.MODES)}
    for key, rs in groups.items():
        device, script, env_id, obs, res, n, mode, omp = key
        valid = [r for r in rs if not r.get("error") and f(r.get("train_sps")) > 0]
        ok = _shared.quiet_rows(valid)
        s = dict(
            device=device,
            script=script,
            env_id=env_id,
            obs=obs,
            res=res,
            num_envs=n,
            n=len(ok),
            n_skipped=len(valid) - len(ok),
            src_rows=[r["_line"] for r in ok if "_line" in r],  # bench/make_report.py cites them
            mode=mode + (f", OMP_NUM_THREADS={omp}" if omp else ""),
            label=res_label(obs, res),
        )

        def med(col, ok=ok):
            vals = [f(r.get(col)) for r in ok if f(r.get(col)) == f(r.get(col))]
            return statistics.median(vals) if vals else float("nan")

        if ok:
            loads = [f(r.get("load1")) for r in ok if f(r.get("load1")) == f(r.get("load1"))]
            s.update(
                {c: med(c) for c in ("train_sps", "collect_fps", "env_fps", "ratio", "update_s")},
                load1=(min(loads), max(loads)) if loads else None,
                date=max(r.get("date", "") for r in ok)[:10],
            )
        else:
            s.update(train_sps=float("nan"), error=rs[-1].get("error") or "no valid rows")
        out[device].append(s)
    for v in out.values():
        v.sort(
            key=lambda s: (
                s["script"],
                s["env_id"],
                s["num_envs"],
                "OMP" in s["mode"],
                order.get(s["mode"].split(",")[0], 9),
            )
        )
    return out


def rebase_ratios(env_rows: list[dict], train: dict[str, list[dict]]) -> None:
    """Give each training summary the raw env FPS of its setting as it is now in the env_fps CSV
    (train_sps.lookup_env_fps: median of the quiet rows when there are any) and ratio = collect FPS /
    that, instead of whatever the CSV held when the training row was measured. Settings without a raw
    measurement keep the values recorded with the row."""
    for device, summaries in train.items():
        for s in summaries:
            fps, n = train_sps.lookup_env_fps(env_rows, device, s["env_id"], s["obs"], s["res"], s["num_envs"], None)
            if n and s.get("collect_fps", math.nan) == s.get("collect_fps", math.nan):
                s["env_fps"], s["ratio"] = fps, s["collect_fps"] / fps


def fmt_runs(s: dict) -> str:
    """'2', or '1 (+3 under load)' when rows taken on an oversubscribed machine were left out."""
    return f"{s['n']} (+{s['n_skipped']} under load)" if s.get("n_skipped") else str(s["n"])


# ----------------------------------------------------------------------------- formatting
def fmt_num(x: float) -> str:
    if x != x:
        return "–"
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def fmt_load(load) -> str:
    if not load:
        return "–"
    lo, hi = load
    return f"{lo:.1f}" if abs(hi - lo) < 0.05 else f"{lo:.1f}–{hi:.1f}"


def env_fps_tables(summaries: list[dict]) -> list[str]:
    """Pivot per task: rows num_envs, columns obs/resolution, cells median env steps/s; then details."""
    lines: list[str] = []
    by_env: dict[str, list[dict]] = defaultdict(list)
    for s in summaries:
        by_env[s["env_id"]].append(s)
    for env_id, ss in by_env.items():
        cols = list(dict.fromkeys(s["label"] for s in ss))
        ns = sorted({s["num_envs"] for s in ss})
        cell = {(s["num_envs"], s["label"]): s for s in ss}
        lines += [
            f"Raw env steps/s, {env_id} (random actions, median over runs; `err` = failed, see details):",
            "",
            "| num_envs | " + " | ".join(cols) + " |",
            "|---:|" + "---:|" * len(cols),
        ]
        for n in ns:
            cells = []
            for c in cols:
                s = cell.get((n, c))
                cells.append("" if s is None else ("err" if s.get("error") else fmt_num(s["env_fps"])))
            lines.append(f"| {n} | " + " | ".join(cells) + " |")
        lines.append("")
        has_mem = any(s.get("peak_mem_gb", float("nan")) == s.get("peak_mem_gb", float("nan")) for s in ss)
        if has_mem:
            lines += [
                "GPU memory (GiB) torch peak / device-wide used by the run:",
                "",
                "| num_envs | " + " | ".join(cols) + " |",
                "|---:|" + "---:|" * len(cols),
            ]
            for n in ns:
                cells = []
                for c in cols:
                    s = cell.get((n, c))
                    cells.append(
                        ""
                        if s is None or s.get("error")
                        else f"{fmt_num(s['peak_mem_gb'])} / {fmt_num(s['gpu_mem_used_gb'])}"
                    )
                lines.append(f"| {n} | " + " | ".join(cells) + " |")
            lines.append("")
    lines += [
        "<details><summary>details: runs per setting, load, controller, date, commit, errors</summary>",
        "",
        "| task | obs | num_envs | env steps/s | runs | load1 | controller | backend | date | commit | note |",
        "|---|---|---:|---:|---:|---|---|---|---|---|---|",
    ]
    for s in summaries:
        lines.append(
            f"| {s['env_id']} | {s['label']} | {s['num_envs']} | {fmt_num(s['env_fps'])} | {fmt_runs(s)} | "
            f"{fmt_load(s.get('load1'))} | {s['control_mode']} | {s['sim_backend']} | {s.get('date', '')} | "
            f"{s.get('commit', '')} | {s.get('error', '')} |"
        )
    versions = sorted({s.get("versions", "") for s in summaries if s.get("versions")})
    lines += ["", f"Versions: {'; '.join(f'`{v}`' for v in versions) or 'unknown'}", "", "</details>", ""]
    return lines


def train_sps_table(summaries: list[dict]) -> list[str]:
    lines = [
        "| script | task | obs | num_envs | mode | train SPS | collect FPS | raw env FPS | ratio | update s/iter "
        "| runs | load1 | note |",
        "|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for s in summaries:
        lines.append(
            f"| {s['script']} | {s['env_id']} | {s['label']} | {s['num_envs']} | {s['mode']} | "
            f"{fmt_num(s['train_sps'])} | {fmt_num(s.get('collect_fps', math.nan))} | "
            f"{fmt_num(s.get('env_fps', math.nan))} | {fmt_num(s.get('ratio', math.nan))} | "
            f"{fmt_num(s.get('update_s', math.nan))} | {fmt_runs(s)} | {fmt_load(s.get('load1'))} | "
            f"{s.get('error', '')} |"
        )
    return lines + [""]


def headline_table(env: dict[str, list[dict]], train: dict[str, list[dict]]) -> list[str]:
    """One row per device tier: peak raw FPS per obs (with the num_envs it was reached at) and the
    best training SPS of each script (with its mode)."""

    def best_env(ss, label):
        c = [s for s in ss if s["label"] == label and s["env_fps"] == s["env_fps"]]
        if not c:
            return "–"
        b = max(c, key=lambda s: s["env_fps"])
        return f"{fmt_num(b['env_fps'])} @{b['num_envs']}"

    def best_train(ss, script):
        c = [s for s in ss if s["script"] == script and s["train_sps"] == s["train_sps"]]
        if not c:
            return "–"
        b = max(c, key=lambda s: s["train_sps"])
        return f"{fmt_num(b['train_sps'])} ({b['mode']}, {b['label']}, {b['num_envs']} envs)"

    labels = ["state", "rgb 64", "rgb 128"]
    lines = [
        "| device | " + " | ".join(f"raw {lab} env steps/s" for lab in labels) + " | ppo SPS | ppo_rgb SPS |",
        "|---|" + "---:|" * len(labels) + "---:|---:|",
    ]
    for d in device_order(list(env) + list(train)):
        ss, ts = env.get(d, []), train.get(d, [])
        lines.append(
            f"| {d} | "
            + " | ".join(best_env(ss, lab) for lab in labels)
            + f" | {best_train(ts, 'ppo')} | {best_train(ts, 'ppo_rgb')} |"
        )
    if not is_gpu_any(list(env) + list(train)):
        lines.append(
            "| GPU | not yet measured | not yet measured | not yet measured | not yet measured | not yet measured |"
        )
    return lines


def is_gpu_any(devices) -> bool:
    return any(is_gpu(d) for d in devices)


# ----------------------------------------------------------------------------- plots
def plot_env_fps(env: dict[str, list[dict]], path: Path) -> Optional[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels_all = [s for ss in env.values() for s in ss if s["env_fps"] == s["env_fps"]]
    if not labels_all:
        return None
    resolutions = sorted(
        {("state" if s["obs"] == "state" else str(s["res"])) for s in labels_all},
        key=lambda r: (r != "state", int(r) if r.isdigit() else 0),
    )
    fig, axes = plt.subplots(1, len(resolutions), figsize=(4.2 * len(resolutions), 3.6), squeeze=False)
    for ax, r in zip(axes[0], resolutions):
        for d in device_order(env):
            for obs in ("state", "rgb", "rgbd"):
                pts = sorted(
                    (s["num_envs"], s["env_fps"])
                    for s in env[d]
                    if s["obs"] == obs
                    and ("state" if obs == "state" else str(s["res"])) == r
                    and s["env_fps"] == s["env_fps"]
                )
                if pts:
                    ax.plot(*zip(*pts), marker="o", label=f"{d} {obs}" if len(env) > 1 else obs)
        ax.set_xscale("log", base=2)
        ns = sorted({s["num_envs"] for ss in env.values() for s in ss})
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.set_xlim(ns[0] / 1.5, ns[-1] * 1.5)
        _plain_log_y(ax)
        ax.set_xlabel("num_envs")
        ax.set_title("state obs" if r == "state" else f"{r}x{r} images")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("env steps / s (random actions)")
    fig.suptitle("Raw simulator + renderer throughput (bench/env_fps.py)", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_train_sps(train: dict[str, list[dict]], path: Path) -> Optional[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [
        s
        for ss in train.values()
        for s in ss
        if s["train_sps"] == s["train_sps"] and s.get("env_fps", math.nan) == s.get("env_fps", math.nan)
    ]
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4.8))
    markers = {"eager": "o", "compile": "s", "cudagraphs": "^"}
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    keys = sorted({(s["device"], s["script"]) for s in pts})
    for i, (d, script) in enumerate(keys):
        for s in (p for p in pts if (p["device"], p["script"]) == (d, script)):
            ax.scatter(
                s["env_fps"],
                s["train_sps"],
                marker=markers.get(s["mode"], "D"),
                color=colors[i % len(colors)],
                label=f"{d}: {script} {s['mode']}",
                s=40,
            )
            if s.get("collect_fps", math.nan) == s.get("collect_fps", math.nan):
                ax.scatter(
                    s["env_fps"],
                    s["collect_fps"],
                    marker=markers.get(s["mode"], "D"),
                    facecolors="none",
                    edgecolors=colors[i % len(colors)],
                    s=40,
                )
    lo = min(min(s["env_fps"], s["train_sps"]) for s in pts) / 2
    hi = max(max(s["env_fps"], s.get("collect_fps", 0) or 0) for s in pts) * 2
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8, label="training = raw env FPS")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(_plain())
    ax.xaxis.set_minor_formatter(_plain(minor=True))
    _plain_log_y(ax)
    ax.set_xlabel("raw env steps/s at the same setting (bench/env_fps.py)")
    ax.set_ylabel("training env steps/s (filled: overall SPS, hollow: collection)")
    ax.set_title("Training throughput vs the simulator ceiling (bench/train_sps.py)", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return _save(fig, path)


def _plain(minor: bool = False, all_minor: bool = False):
    """Tick labels as plain numbers; minor ticks labelled only at 2x and 5x, or all of them for axes
    spanning less than a decade (no 10^x notation)."""
    from matplotlib.ticker import FuncFormatter

    def fmt(v, _):
        if v <= 0:
            return ""
        mant = v / 10 ** math.floor(math.log10(v) + 1e-9)
        if minor and not all_minor and round(mant, 6) not in (2.0, 5.0):
            return ""
        return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"

    return FuncFormatter(fmt)


def _plain_log_y(ax) -> None:
    ax.set_yscale("log")
    lo, hi = ax.get_ylim()
    ax.yaxis.set_major_formatter(_plain())
    ax.yaxis.set_minor_formatter(_plain(minor=True, all_minor=hi / max(lo, 1e-9) < 10))


def _save(fig, path: Path) -> Path:
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


# ----------------------------------------------------------------------------- document
def fixed_configs_table() -> list[str]:
    lines = ["| script | tier | obs | num_envs | steps | burn-in steps | flags |", "|---|---|---|---:|---:|---:|---|"]
    for script, tiers in train_sps.FIXED.items():
        for tier, c in tiers.items():
            lines.append(
                f"| {script} | {tier} | {c.obs}{'' if c.res is None else f' {c.res}'} | {c.num_envs} | "
                f"{c.total_timesteps:,} | {c.burn_in:,} | `{' '.join(c.flags)}` |"
            )
    return lines


def render(args: Args, env: dict, train: dict, plots: dict[str, Optional[Path]]) -> str:
    env_csv, train_csv = _doc_path(_abs(args.env_fps_csv)), _doc_path(_abs(args.train_sps_csv))
    devices = device_order(list(env) + list(train))
    gpu = is_gpu_any(devices)
    L = [
        "# Benchmarks",
        "",
        f"<!-- Generated by `python bench/report.py` from {env_csv} and {train_csv}. "
        "Do not edit by hand: append rows and re-render. -->",
        "",
        f"Numbers on this page are generated by `bench/report.py` from `{env_csv}` and "
        f"`{train_csv}`; every row there names its device, date, commit, library versions and the "
        "1-minute load average (`load1`) at measurement time. Tiers are device names: each GPU model is a tier, "
        "and so is each CPU.",
        "",
    ]
    if not gpu:
        L += [
            "> **GPU rows: not yet measured.** This project's numbers so far come from a 2-core CPU machine "
            "(physx_cpu + software Vulkan). The commands under [Add your GPU](#add-your-gpu) fill the GPU tier.",
            "",
        ]
    L += ["## Headline", ""] + headline_table(env, train) + [""]
    L += [
        "`raw ... env steps/s`: peak over the measured num_envs (shown after `@`) of env steps per second summed "
        "over all envs, with random actions, observations returned as torch tensors as the training scripts get "
        "them. `SPS`: env steps per second of the whole training loop (collection + updates) after a burn-in, "
        "best mode.",
        "",
    ]
    L += [
        "## What is measured",
        "",
        "- **`bench/env_fps.py`** (the ceiling for any training loop): per configuration, make the envs, reset, "
        "burn-in steps (untimed), then time random-action steps: `env_fps = num_envs * steps / seconds`. Peak GPU "
        "memory: `peak_mem_gb` = `torch.cuda.max_memory_allocated` (torch's own tensors), `gpu_mem_used_gb` = the "
        "drop in free device memory over the run (`torch.cuda.mem_get_info`, includes the simulator's and "
        "renderer's allocations). On the GPU each configuration runs in its own process, so an out-of-memory "
        "configuration is recorded as a row with an `error` note and the sweep goes on.",
        "- **`bench/train_sps.py`**: each training script trains a few iterations at a fixed config (below) "
        "as a subprocess with `--eval-freq 0 --no-save-checkpoints`; its `metrics.csv` is read after a burn-in "
        "(env start-up, `torch.compile`, CUDA-graph capture excluded). `train SPS` = env steps / wall seconds "
        "across the measured iterations; `collect FPS` = env steps/s while collecting rollouts (policy inference "
        "included; harmonic mean of `time/env_fps`); `raw env FPS` = bench/env_fps.py at the same device, task, "
        "obs, resolution, num_envs and controller; `ratio` = collect FPS / raw env FPS. Modes: eager, "
        "`--compile`, `--cudagraphs` (CUDA only).",
        "- Repeated measurements of one setting are shown as their median; `runs` counts them. Rows taken on "
        "an oversubscribed machine (`load1` > number of cores) are left out of the median when the same setting "
        "also has rows from a machine that was not (`+k under load` in `runs`), and the `ratio` is recomputed "
        "against the raw env FPS shown in the same table, so a quiet re-measurement replaces busy numbers "
        "instead of being averaged with them.",
        "- **CPU rows** come from a shared 2-core machine: `load1` above ~2 means other jobs were running and "
        "the numbers are lower than an idle machine would give. CPU envs are one `physx_cpu` worker process "
        "each, rendered by software Vulkan (lavapipe), so pixel throughput barely grows with num_envs.",
        "- A `ratio` above 1 is a load artefact: the raw env FPS and the training run were measured under "
        "different load (compare their `load1`); on an idle machine collection cannot beat the raw simulator. "
        "Below 1 with the training row under load and the raw row quiet, it understates the script.",
        "- On a busy CPU, torch's intra-op threads (one per core by default) fight the other processes and "
        "the update step can slow down by one to two orders of magnitude; rows measured with "
        "`OMP_NUM_THREADS=1` in the environment are listed separately (mode `..., OMP_NUM_THREADS=1`). "
        "Compare modes only at similar `load1`.",
        "",
    ]
    L += [
        "Fixed training configs (`bench/train_sps.py`, `FIXED`):",
        "",
    ]
    L += fixed_configs_table() + [""]
    for d in devices:
        L += [f"## {d}" if d.startswith("CPU") else f"## GPU: {d}", ""]
        if d in env:
            L += ["### Raw simulator throughput", ""] + env_fps_tables(env[d])
        if d in train:
            L += ["### Training throughput", ""] + train_sps_table(train[d])
    if not devices:
        L += ["No rows yet: run the commands below.", ""]
    if not gpu:
        L += ["## GPU", "", "Not yet measured: no GPU rows in the CSVs yet. See [Add your GPU](#add-your-gpu).", ""]
    if plots.get("env_fps") or plots.get("train_sps"):
        L += ["## Plots", ""]
        for name, title in (
            ("env_fps", "Raw env throughput vs num_envs, per resolution"),
            ("train_sps", "Training SPS vs raw env FPS"),
        ):
            if plots.get(name):
                L += [f"![{title}]({os.path.relpath(plots[name], _abs(args.doc).parent)})", ""]
    L += [
        "## Reproduce these numbers",
        "",
        "CPU (what produced the CPU rows; each command takes 1-3 minutes on 2 cores):",
        "",
        "```bash",
        "python bench/env_fps.py                                   # PickCube: state and rgb 64/128, 1 and 2 envs",
        "python bench/train_sps.py --scripts ppo --modes eager compile",
        "python bench/train_sps.py --scripts ppo_rgb --modes eager compile",
        "python bench/report.py                                    # re-render this page and the plots",
        "```",
        "",
        *gpu_check.doc_section(),
        "## Add your GPU",
        "",
        "On a machine with an NVIDIA GPU (CUDA torch, ManiSkill's Vulkan renderer working; see "
        "docs/troubleshooting.md):",
        "",
        "```bash",
        "python bench/env_fps.py                     "
        "# 16..4096 envs x state/rgb/rgbd x 64/128/256 (35 configs, one process each)",
        "python bench/env_fps.py --obs rgb --res 128 --num-envs 256 1024   # or a part of the grid",
        "python bench/train_sps.py                   # ppo, ppo_rgb: eager, --compile, --cudagraphs",
        "python bench/train_sps.py --scripts sac sac_rgb",
        "python bench/report.py --headline           # re-render; prints the README table",
        "```",
        "",
        "Rows are appended to `results/env_fps.csv` and `results/train_sps.csv` (never overwritten), tagged with "
        "your device name (`torch.cuda.get_device_name`), so your GPU becomes a new tier on this page. Keep the "
        "machine otherwise idle while measuring. Then commit `results/env_fps.csv`, `results/train_sps.csv`, "
        "`results/*.png` and `docs/benchmarks.md` and open a pull request; please include `nvidia-smi` output "
        "(driver version) in the description. Settings that run out of GPU memory are recorded as rows with an "
        "`error` note (shown as `err`); larger num_envs at the same obs/resolution are then skipped "
        "(`--keep-going` tries them anyway).",
        "",
        "Writing somewhere else first (e.g. on a remote box) works too: `--out /path/env_fps.csv` and "
        "`--out /path/train_sps.csv --env-fps-csv /path/env_fps.csv`; append those rows (without the header "
        "line) to the files in `results/`.",
        "",
    ]
    return "\n".join(L)


def _rel(p: Path) -> str:
    try:
        return str(Path(p).resolve().relative_to(_shared.REPO_ROOT))
    except ValueError:
        return str(p)


def _abs(p: str) -> Path:
    path = Path(p)
    return path if path.is_absolute() else _shared.REPO_ROOT / path


def _doc_path(p: Path) -> str:
    """A path as the committed page may show it: relative to the repository, or only the file name for a
    file outside it (the page must not carry one machine's folders)."""
    try:
        return str(Path(p).resolve().relative_to(_shared.REPO_ROOT))
    except ValueError:
        return Path(p).name


def load(args: Args) -> tuple[list[dict], list[dict], dict, dict]:
    """The CSV rows (checked to be bench/ outputs) and their summaries per device tier."""
    env_rows = _shared.read_rows(_abs(args.env_fps_csv))
    train_rows = _shared.read_rows(_abs(args.train_sps_csv))
    for name, rows, need in (
        ("env_fps", env_rows, ("device", "env_id", "obs", "num_envs", "env_fps")),
        ("train_sps", train_rows, ("device", "script", "mode", "train_sps")),
    ):
        if rows and any(c not in rows[0] for c in need):
            missing = [c for c in need if c not in rows[0]]
            raise UserError(f"{name} CSV lacks column(s) {', '.join(missing)}; is it a bench/{name}.py output?")
    env, train = aggregate_env_fps(env_rows), aggregate_train_sps(train_rows)
    rebase_ratios(env_rows, train)
    return env_rows, train_rows, env, train


def rendered_doc(args: Args) -> str:
    """The page as it should read for the CSVs now, linking the plots already in --plots-dir; writes
    nothing (tests/test_bench.py compares it with the committed docs/benchmarks.md)."""
    _, _, env, train = load(args)
    plots_dir = _abs(args.plots_dir)
    plots = {
        n: (plots_dir / f"{n}.png") if (plots_dir / f"{n}.png").is_file() else None for n in ("env_fps", "train_sps")
    }
    return render(args, env, train, plots)


def main(args: Args) -> dict:
    env_rows, train_rows, env, train = load(args)
    plots_dir = _abs(args.plots_dir)
    plots = {
        "env_fps": plot_env_fps(env, plots_dir / "env_fps.png"),
        "train_sps": plot_train_sps(train, plots_dir / "train_sps.png"),
    }
    doc = _abs(args.doc)
    atomic_write_text(doc, render(args, env, train, plots))
    print(
        f"report: {len(env_rows)} env_fps rows, {len(train_rows)} train_sps rows, "
        f"{len(device_order(list(env) + list(train)))} device tier(s) -> {_rel(doc)}"
    )
    for p in plots.values():
        if p:
            print(f"report: plot {_rel(p)}")
    if args.headline:
        print("\n".join(headline_table(env, train)))
    return dict(env=env, train=train, plots=plots, doc=doc)


if __name__ == "__main__":
    run(main, tyro.cli(Args))
