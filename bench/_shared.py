"""What the bench/ scripts share: machine facts for every CSV row, and CSV append/read.

Rows are appended (never rewritten) so results from many machines accumulate in one file; a file
whose header lacks some of our columns is rewritten once, atomically, with the union of columns.
"""

from __future__ import annotations

import csv
import io
import math
import os
import sys
import time
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # `python bench/x.py` puts bench/ first on the path, not the repo root
    sys.path.insert(0, str(REPO_ROOT))

from cleanrl_style.lib.runs import UserError, atomic_write_text, device_name, git_commit, versions  # noqa: E402

SCRIPTS_DIR = REPO_ROOT / "cleanrl_style"
RESULTS_DIR = REPO_ROOT / "results"
VERSION_KEYS = ("python", "torch", "mani_skill", "sapien", "gymnasium", "numpy")


def compact_versions() -> str:
    """`python=3.11.7;torch=2.13.0+cpu;mani_skill=3.0.1;...` (one CSV cell)."""
    v = versions()
    return ";".join(f"{k}={v[k]}" for k in VERSION_KEYS if v.get(k))


def machine_tier() -> str:
    """'gpu' where CUDA is usable, else 'cpu'."""
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def load1() -> float:
    """1-minute load average: numbers taken on a busy (shared) machine are recognisable by it."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return float("nan")


def quiet_rows(rows: list[dict]) -> list[dict]:
    """The rows measured on a machine that was not oversubscribed (load1 <= cpu_count), when there are
    any; otherwise all rows. A row taken while other jobs competed for the cores measures the load, not
    the code, so it only counts when nothing better of that setting exists."""
    quiet = [r for r in rows if to_float(r.get("load1")) <= to_float(r.get("cpu_count"))]
    return quiet or rows


def machine_fields() -> dict:
    """The columns that say where and with what a row was measured."""
    return dict(
        device=device_name(), date=now_iso(), commit=git_commit(), versions=compact_versions(), cpu_count=os.cpu_count()
    )


def script_path(script: str) -> Path:
    return SCRIPTS_DIR / f"{script}.py"


def fmt_cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        return f"{v:.6g}"
    return str(v)


def read_rows(path: os.PathLike) -> list[dict]:
    """All rows of a CSV as dicts of strings ([] when the file does not exist)."""
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def append_rows(path: os.PathLike, columns: Sequence[str], rows: Iterable[dict]) -> int:
    """Append rows to a CSV, creating it with a header if missing. If the existing header lacks
    some of `columns`, the file is rewritten atomically with the union (old rows get empty cells)."""
    rows = [{c: fmt_cell(r.get(c)) for c in set(columns) | set(r)} for r in rows]
    if not rows:
        return 0
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header: list[str] = []
    if path.is_file() and path.stat().st_size > 0:
        with open(path, newline="") as f:
            header = next(csv.reader(f), [])
    wanted = list(columns) + sorted({k for r in rows for k in r} - set(columns))
    if header and all(c in header for c in wanted):
        with open(path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=header, extrasaction="ignore", lineterminator="\n")
            w.writerows(rows)
        return len(rows)
    old = read_rows(path) if header else []
    fieldnames = header + [c for c in wanted if c not in header]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fieldnames, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(old)
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())
    return len(rows)


def to_float(s: Optional[str]) -> float:
    """CSV cell -> float (NaN for empty or unparsable)."""
    try:
        return float(s) if s not in (None, "") else float("nan")
    except ValueError:
        return float("nan")


def parse_res(s) -> Optional[int]:
    """'' / None (state obs) -> None; '64' -> 64."""
    if s in (None, "", "nan"):
        return None
    return int(float(s))


def refresh_blocks(text: str, begin: str, end: str, render: Callable[[str], list], where: str) -> str:
    """`text` with every generated block re-rendered: a line `<begin><spec> -->` up to the next `end` line
    is replaced by render(spec) between the two (everything outside the markers is kept as it is). A block
    without its end line is a UserError naming `where` and the line."""
    lines, out, i = text.split("\n"), [], 0
    while i < len(lines):
        line = lines[i]
        out.append(line)
        i += 1
        if not (line.startswith(begin) and line.rstrip().endswith("-->")):
            continue
        spec = line.strip()[len(begin) : -len("-->")].strip()
        stop = next((j for j in range(i, len(lines)) if lines[j].strip() == end), None)
        if stop is None:
            raise UserError(f"{where}:{i}: generated block '{spec}' has no '{end}' line", code=1)
        out += list(render(spec)) + [lines[stop]]
        i = stop + 1
    return "\n".join(out)
