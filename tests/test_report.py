"""bench/make_report.py (docs/report.md, its figures, README blocks), bench/frame_strip.py and the bc /
fine-tuning part of docs/reproduction.md, rendered from fixture CSVs in tmp_path. One test checks that the
committed docs/report.md and README.md are what the committed results/ render to."""

from __future__ import annotations

import json
import re
import shutil
import statistics
import sys

import numpy as np
import pytest
from conftest import REPO_ROOT

from cleanrl_style.lib.runs import UserError

sys.path.insert(0, str(REPO_ROOT))
from bench import (  # noqa: E402
    _shared,
    bc_results,
    env_fps,
    finetune_results,
    frame_strip,
    make_report,
    reproduce,
    train_sps,
)

CPU = "CPU: Fixture CPU x2"
URL = "https://example.org/a-public-baseline"
README = (
    "# Project\n\nprose before\n\n{b}headline -->\nstale\n{e}\n\n## Demo\n\n{b}demo -->\n{e}\n\n"
    "## Speed\n\n{b}throughput -->\nold table\n{e}\n\nprose after\n"
).format(b=make_report.BLOCK_BEGIN, e=make_report.BLOCK_END)


# ----------------------------------------------------------------------------- fixtures
def _finetune_rows():
    base = dict(
        device=CPU,
        commit="0123456789abcdef",
        env_id="PickCube-v1",
        script="sac_rgb",
        final_source="eval_last",
        test_episodes=100,
        test_seed=5000000,
        env_steps=2000,
        pretrain_s=0,
        date="2026-12-01T10:00:00+0000",
    )
    rows = []
    for row, finals in (("scratch", (0.1, 0.2, 0.3)), ("bc_init_demos", (0.6, 0.8)), ("bc", (0.5, 0.5, 0.5))):
        for seed, v in enumerate(finals, 1):
            rows.append(
                dict(
                    base,
                    row=row,
                    seed=seed,
                    final_success_once=v,
                    final_success_at_end=v / 2,
                    wall_s=100.0 * seed,
                    min_eval_success_once=0.0,
                    start_success_once=0.0,
                    run_dir=f"runs/ft/{row}/seed{seed}",
                    env_steps=0 if row == "bc" else 2000,
                    script="bc" if row == "bc" else "sac_rgb",
                )
            )
    return rows


def _curves(rows):
    out = []
    for r in rows:
        if r["row"] == "bc":
            continue
        for step, wall in ((0, 10.0), (1000, 50.0), (2000, 90.0)):
            out.append(
                dict(
                    row=r["row"],
                    seed=r["seed"],
                    env_steps=step,
                    wall_s=wall,
                    device=CPU,
                    run_dir=r["run_dir"],
                    success_once=r["final_success_once"] * step / 2000,
                    success_at_end=0.0,
                )
            )
    return out


def _bc_rows():
    base = dict(
        device=CPU,
        num_demos=200,
        control_mode="pd_ee_delta_pos",
        obs_mode="state",
        policy="chunk",
        chunk_size=16,
        temporal_ensemble=True,
        obs_horizon=1,
        drop_state_keys="agent/qvel",
        obs_noise=0,
        total_iters=5000,
        final_episodes=50,
        train_s=60.0,
        eval_success_by_iter="2500:0.5",
    )
    return [dict(base, variant="c16", seed=s, final_success_once=v) for s, v in ((1, 0.9), (2, 0.8), (3, 0.7))] + [
        dict(base, variant="single", seed=1, chunk_size=1, final_success_once=0.3)
    ]


def _env_rows():
    base = dict(
        device=CPU,
        date="2026-01-02T03:04:05+0000",
        env_id="PickCube-v1",
        control_mode="pd_joint_delta_pos",
        sim_backend="cpu",
        load1=1.0,
        cpu_count=2,
    )
    return [
        dict(base, obs="state", num_envs=2, env_fps=400.0),
        dict(base, obs="state", num_envs=2, env_fps=600.0),
        dict(base, obs="rgb", res=64, num_envs=2, env_fps=40.0),
    ]


def _train_rows():
    base = dict(device=CPU, date="2026-01-02T03:04:05+0000", env_id="PickCube-v1", load1=1.0, cpu_count=2)
    return [
        dict(
            base,
            script="ppo",
            obs="state",
            num_envs=2,
            mode="compile",
            train_sps=100.0,
            collect_fps=250.0,
            env_fps=500.0,
            ratio=0.5,
            update_s=0.1,
        ),
        dict(
            base,
            script="ppo_rgb",
            obs="rgb",
            res=64,
            num_envs=2,
            mode="eager",
            train_sps=20.0,
            collect_fps=30.0,
            env_fps=40.0,
            ratio=0.75,
            update_s=0.5,
        ),
    ]


def _repro_rows():
    rows = []
    for seed, final in ((1, 1.0), (2, 0.9), (3, 0.8)):
        base = dict(
            script="ppo",
            config="fast",
            env_id="PushCube-v1",
            seed=seed,
            device=CPU,
            commit="abc",
            run=f"r{seed}",
            complete=1,
        )
        rows.append(dict(base, kind="eval", step=100, wall_time=10.0, success_once=0.5, success_at_end=0.2))
        rows.append(dict(base, kind="final", step=100, wall_time=12.0, success_once=final, success_at_end=0.5))
    return rows


REF_ROWS = [
    dict(
        comparison="finetune",
        task="PickCube-v1",
        obs="rgb",
        method="Their PPO from RGB",
        metric="wall_time_min",
        value="15-45",
        setting="their command",
        hardware="a GPU",
        source_url=URL,
        retrieved="2026-12-04",
    ),
    dict(
        comparison="throughput_env_fps",
        task="PickCube-v1",
        obs="rgb 64",
        method="their simulator",
        metric="env_fps",
        value="12904",
        setting="1024 envs",
        hardware="Some GPU",
        source_url=URL,
        retrieved="2026-12-04",
    ),
    dict(
        comparison="learning",
        task="PushCube-v1",
        obs="state",
        method="their PPO from state",
        metric="wall_time_min",
        value="<1",
        setting="their command",
        hardware="a GPU",
        source_url=URL,
        retrieved="2026-12-04",
    ),
]
GEN_ROWS = [
    dict(training="none", seed=s, clean=c, train=c - 0.1, held_out=c - 0.5, device=CPU, commit="abc")
    for s, c in ((1, 0.9), (2, 0.8), (3, 0.7))
] + [
    dict(training="sim_dr", seed=s, clean=0.8, train=0.7, held_out=h, device=CPU, commit="abc")
    for s, h in ((1, 0.6), (2, 0.4))
]


def _results(tmp_path, filled=True):
    """A results/ folder (plus docs/ and README.md next to it) as the bench scripts write them."""
    res = tmp_path / "results"
    (res / "repro").mkdir(parents=True)
    (tmp_path / "docs").mkdir()
    w = _shared.append_rows
    w(res / "env_fps.csv", env_fps.COLUMNS, _env_rows())
    w(res / "train_sps.csv", train_sps.COLUMNS, _train_rows())
    w(res / "bc_pickcube_state_cpu.csv", bc_results.COLUMNS, _bc_rows())
    w(
        res / "bc_pickcube_rgb_cpu.csv",
        bc_results.COLUMNS,
        [dict(r, variant="pix", obs_mode="rgb") for r in _bc_rows()[:3]],
    )
    w(res / "repro" / "ppo__fast.csv", reproduce.REPRO_COLUMNS, _repro_rows())
    w(res / "reference_numbers.csv", make_report.REF_COLUMNS, REF_ROWS)
    ft, curves = res / make_report.FINETUNE_CSV, res / make_report._curves_name(make_report.FINETUNE_CSV)
    if filled:
        rows = _finetune_rows()
        w(ft, finetune_results.COLUMNS, rows)
        w(curves, finetune_results.CURVE_COLUMNS, _curves(rows))
        w(
            res / make_report.GENERALIZATION_CSV,
            ("training", "seed", "clean", "train", "held_out", "device", "commit"),
            GEN_ROWS,
        )
        w(
            res / "encoder_throughput.csv",
            ("device", "date", "encoder", "res", "images_per_s"),
            [dict(device=CPU, date="2026-01-01", encoder="nature", res=64, images_per_s=1234.5)],
        )
        w(
            res / "aug_throughput.csv",
            ("device", "impl", "res", "batch", "images_per_s", "load1"),
            [dict(device=CPU, impl="gather", res=64, batch=256, images_per_s=v, load1=1.0) for v in (100, 200, 300)],
        )
    else:  # what a fresh checkout has: header-only CSVs of experiments not run yet
        ft.write_text(",".join(finetune_results.COLUMNS) + "\n")
        curves.write_text(",".join(finetune_results.CURVE_COLUMNS) + "\n")
    (tmp_path / "README.md").write_text(README)
    return res


def _args(tmp_path, **kw):
    return make_report.Args(
        results_dir=str(tmp_path / "results"),
        doc=str(tmp_path / "docs" / "report.md"),
        figures_dir=str(tmp_path / "docs" / "figures"),
        readme=str(tmp_path / "README.md"),
        benchmarks_doc="",
        **kw,
    )


def _tables(md: str) -> list[list[list[str]]]:
    """Every markdown table of a page as rows of cells (header first, separator dropped)."""
    tables, cur = [], []
    for line in md.split("\n") + [""]:
        if line.startswith("|"):
            cur.append([c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
        elif cur:
            tables.append([cur[0]] + cur[2:])
            cur = []
    return tables


CITE = re.compile(r"([\w./+-]+\.csv)\]?(?:\([^)]*\))?: (L\d+(?:-\d+)?(?:, L\d+(?:-\d+)?)*)")


def _cited(cell: str) -> list[tuple[str, int]]:
    out = []
    for name, ranges in CITE.findall(cell):
        for part in ranges.split(", "):
            a, _, b = part[1:].partition("-")
            out += [(name, n) for n in range(int(a), int(b or a) + 1)]
    return out


def _assert_every_number_is_cited(md: str, results):
    """Each table ends in a source column; a row with a digit anywhere cites lines that exist (data lines,
    not the header) in the CSVs under results/."""
    tables = _tables(md)
    assert tables
    lines = {}
    for table in tables:
        assert table[0][-1] == "source", table[0]
        for row in table[1:]:
            if not any(ch.isdigit() for c in row[:-1] for ch in c):
                continue
            cites = _cited(row[-1])
            assert cites, f"a row with numbers cites nothing: {row}"
            for name, n in cites:
                if name not in lines:
                    lines[name] = (results / name).read_text().splitlines()
                assert 2 <= n <= len(lines[name]), (name, n, row)
    return tables


# ----------------------------------------------------------------------------- the report
def test_report_with_rows_has_every_table_figure_and_flag(tmp_path):
    res = _results(tmp_path)
    out = make_report.main(_args(tmp_path))
    md = (tmp_path / "docs" / "report.md").read_text()
    for heading in (
        "## 1. RL from scratch vs BC-initialised RL",
        "## 2. Encoder ladder",
        "## 3. Without vs with domain randomisation / augmentation",
        "## 4. Throughput: raw simulator and training, per device tier",
        "## 5. PPO and SAC from state",
        "## 6. Videos",
        "## References",
        "## Limitations",
    ):
        assert heading in md
    assert "Not yet measured" not in md.split("## References")[0].split("### Learning")[0]
    # 1. fine-tuning: mean ± std over seeds, n stated and < 3 flagged; rows without runs listed; curves
    assert "| scratch | SAC from pixels: random init, no demos | 3 (1, 2, 3) | 0.20 ± 0.10 (n=3) |" in md
    assert "| bc_init_demos | " in md and "2 (1, 2) **< 3 seeds** | 0.70 ± 0.14 (n=2) |" in md
    assert "| demos | demos in a second replay store, random init (RLPD) | not run yet |" in md
    assert "finetune_pickcube_rgb64_cpu.csv: L2-4 |" in md  # the scratch row cites its three lines
    assert "[R2](#references)" in md.split("## 1.")[1].split("### Behaviour")[0]  # the rgb finetune reference
    # BC, generalisation (flagged), encoder throughput (generic), aug median, throughput, learning
    assert "| c16 | state | 200 | chunk 16 + temporal ensembling | 5k | 3 (1, 2, 3) | 0.80 ± 0.10 (n=3) |" in md
    assert (
        f"| sim_dr | {CPU} | 2 (1, 2) **< 3 seeds** | 0.80 ± 0.00 (n=2) | 0.70 ± 0.00 (n=2) | 0.50 ± 0.14 (n=2) |" in md
    )
    assert "| CPU: Fixture CPU x2 | nature | 64 | 1234.5 | encoder_throughput.csv: L2 |" in md
    assert "| CPU: Fixture CPU x2 | 64x64 | 256 | 200 | aug_throughput.csv: L2-4 |" in md
    env_part = md.split("### Raw env throughput")[1]
    assert "| PickCube-v1 | state | 2 | 500 | 2 |" in env_part  # median of the two rows
    assert "| PickCube-v1 | rgb 64 | 2 | 40.0 | 1 | 1.0 | [R3](#references) | env_fps.csv: L4 |" in env_part
    assert "| PickCube-v1 | state | 2 | 500 | 2 | 1.0 | – | env_fps.csv: L2-3 |" in env_part  # rgb ref not on state
    assert "| 0.50 | 0.20 | 1 |" in md  # ppo: collect/raw 250/500, train/raw 100/500
    assert "| ppo.py | PushCube-v1 | fast | 3 (1, 2, 3) | 0.90 ± 0.10 (n=3) |" in md
    assert "GPU tier: not yet measured" in md and "Nothing has run on a GPU" in md
    # references: another system's number with its URL; limitations list the flagged rows
    assert f"<{URL}>" in md and "Other systems' numbers, on other hardware" in md
    limits = md.split("## Limitations")[1]
    assert "`bc_init_demos`: 2 seeds" in limits and "`single`: 1 seed" in limits and "`sim_dr, CPU" in limits
    for name in ("finetune_curves.png", "generalization.png", "env_fps.png", "train_sps.png"):
        png = tmp_path / "docs" / "figures" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"](figures/{name})" in md
    assert set(out["figures"]) == {"finetune_curves.png", "generalization.png", "env_fps.png", "train_sps.png"}
    _assert_every_number_is_cited(md, res)


def test_every_cited_line_holds_the_numbers_of_its_row(tmp_path):
    """The cited lines are the rows the numbers were computed from: recompute a mean from them."""
    res = _results(tmp_path)
    make_report.main(_args(tmp_path))
    md = (tmp_path / "docs" / "report.md").read_text()
    gen = next(t for t in _tables(md) if t[0][0] == "training")
    for row in gen[1:]:
        cited = [n for _, n in _cited(row[-1])]
        rows = {r["_line"]: r for r in make_report.load_csv(res / make_report.GENERALIZATION_CSV)}
        clean = [float(rows[n]["clean"]) for n in cited]
        assert {rows[n]["training"] for n in cited} == {row[0]}
        assert row[3].startswith(f"{statistics.fmean(clean):.2f}")


def test_report_placeholders_when_csvs_are_empty_or_missing(tmp_path):
    res = _results(tmp_path, filled=False)
    make_report.main(_args(tmp_path))
    md = (tmp_path / "docs" / "report.md").read_text()
    part1 = md.split("## 1.")[1].split("### Behaviour")[0]
    assert "**Not yet measured.** `results/finetune_pickcube_rgb64_cpu.csv` has no rows yet. Command: " in part1
    assert "bench/finetune_results.py" in part1 and "| scratch |" not in part1
    assert "`results/generalization_pickcube_rgb64_cpu.csv` does not exist yet. Command: " in md
    assert "`results/encoder_throughput.csv` does not exist yet" in md
    assert not (tmp_path / "docs" / "figures" / "finetune_curves.png").exists()
    pending = md.split("**Not yet measured** (placeholders above)")[1]
    assert "`results/finetune_pickcube_rgb64_cpu.csv`" in pending and "generalization" in pending
    assert "**No video.**" in pending and "bench/frame_strip.py" in md.split("## 6. Videos")[1]
    _assert_every_number_is_cited(md, res)
    # rows arrive: the placeholder turns into the table, and a figure that lost its data is removed again
    _shared.append_rows(res / make_report.FINETUNE_CSV, finetune_results.COLUMNS, _finetune_rows())
    make_report.main(_args(tmp_path))
    assert "| scratch |" in (tmp_path / "docs" / "report.md").read_text()
    (res / make_report.FINETUNE_CSV).write_text(",".join(finetune_results.COLUMNS) + "\n")
    make_report.main(_args(tmp_path))
    assert not (tmp_path / "docs" / "figures" / "finetune_curves.png").exists()


def test_rendering_twice_changes_no_byte(tmp_path, capsys):
    _results(tmp_path)
    make_report.main(_args(tmp_path))
    files = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    before = {p: p.read_bytes() for p in files}
    capsys.readouterr()
    make_report.main(_args(tmp_path))
    assert "unchanged" in capsys.readouterr().out
    assert {p: p.read_bytes() for p in sorted(p for p in tmp_path.rglob("*") if p.is_file())} == before


def test_readme_headline_puts_the_residual_row_under_its_chunking_base(tmp_path):
    res = _results(tmp_path)
    base = _finetune_rows()[0]
    extra = [
        dict(
            base,
            row=r,
            seed=seed,
            final_success_once=v,
            run_dir=f"runs/ft/{r}/seed{seed}",
            env_steps=steps,
            script=script,
        )
        for r, steps, script, finals in (
            ("bc_chunk", 0, "bc", (0.6, 0.7, 0.8)),
            ("residual", 2000, "sac_rgb", (0.9, 0.7)),
        )
        for seed, v in enumerate(finals, 1)
    ]
    _shared.append_rows(res / make_report.FINETUNE_CSV, finetune_results.COLUMNS, extra)
    make_report.main(_args(tmp_path))
    headline = (tmp_path / "README.md").read_text().split("headline -->")[1].split(make_report.BLOCK_END)[0]
    chunk = (
        "| its base: `bc.py --policy chunk` from rgb, PickCube-v1 (the fine-tuning `bc_chunk` row) | 0.70 ± 0.10 (n=3)"
    )
    residual = "BC -> RL residual on the frozen chunking policy (`--residual-of`), PickCube-v1 from RGB, 2k env steps"
    assert chunk in headline and f"{residual} | 0.80 ± 0.14 (n=2)" in headline
    # the base right above its residual, and both after the recipe's pair
    assert headline.index("BC -> RL fine-tuning (the recipe)") < headline.index(chunk) < headline.index(residual)
    _assert_every_number_is_cited(headline, res)


def test_readme_blocks_are_rendered_and_the_rest_kept(tmp_path):
    res = _results(tmp_path)
    make_report.main(_args(tmp_path))
    text = (tmp_path / "README.md").read_text()
    assert text.startswith("# Project\n\nprose before\n\n") and text.endswith("\n\nprose after\n")
    assert "stale" not in text and "old table" not in text
    headline = text.split("headline -->")[1].split(make_report.BLOCK_END)[0]
    assert "[docs/report.md](docs/report.md)" in headline and "nothing has run on a GPU yet" in headline
    assert (
        "| `ppo.py` from state, PushCube-v1, 100 env steps, 12 s | 0.90 ± 0.10 (n=3) | CPU: Fixture CPU x2 |"
        in headline
    )
    assert "[repro/ppo__fast.csv](results/repro/ppo__fast.csv): L3, L5, L7" in headline
    assert "BC -> RL fine-tuning (the recipe), PickCube-v1 from RGB, 2k env steps | 0.70 ± 0.14 (n=2)" in headline
    # the recipe's own start stands right above it, so the headline shows the lift or its absence
    start = (
        "| its start: `bc.py --policy gaussian` from rgb, PickCube-v1 (the fine-tuning `bc` row) | 0.50 ± 0.00 (n=3)"
    )
    assert start in headline and headline.index(start) < headline.index("BC -> RL fine-tuning (the recipe)")
    assert "`bc.py` from state, PickCube-v1, 200 demos (`c16`) | 0.80 ± 0.10 (n=3)" in headline
    _assert_every_number_is_cited(headline, res)
    assert "| device | raw state env steps/s |" in text.split("throughput -->")[1]
    assert "No frame strip yet" in text and "bench/frame_strip.py" in text
    # a strip with its evaluation next to it: the README shows it with a caption from the eval json
    video = _video(tmp_path / "run" / "eval_best_seed0.mp4")
    (video.with_suffix(".json")).write_text(
        json.dumps(
            dict(
                env_id="PickCube-v1",
                script="bc",
                success_once=0.75,
                success_at_end=0.5,
                episodes=4,
                device=CPU,
                seed=0,
                checkpoint="/x/best.pt",
            )
        )
    )
    frame_strip.main(
        frame_strip.Args(
            video=str(video),
            out=str(tmp_path / "docs" / "figures" / "demo_strip.png"),
            frames=4,
            height=32,
            label="The recipe's last policy, training seed 3",
        )
    )
    make_report.main(_args(tmp_path))
    demo = (tmp_path / "README.md").read_text().split("demo -->")[1].split(make_report.BLOCK_END)[0]
    assert "![a policy of ours, frame by frame](docs/figures/demo_strip.png)" in demo
    assert "`bc.py` policy `best.pt` on PickCube-v1, evaluate.py seed 0, success_once 0.75 over 4 episodes" in demo
    assert "episodes (CPU" in demo and ". The recipe's last policy, training seed 3." in demo
    videos = (tmp_path / "docs" / "report.md").read_text().split("## 6. Videos")[1].split("## References")[0]
    assert "](figures/demo_strip.png)" in videos and "success_once 0.75" in videos


def test_bad_inputs_are_one_line_errors(tmp_path):
    res = _results(tmp_path)
    _shared.append_rows(res / "reference_numbers.csv", make_report.REF_COLUMNS, [dict(REF_ROWS[0], source_url="")])
    with pytest.raises(UserError, match="line.s. L5 have no source_url"):
        make_report.main(_args(tmp_path))
    (res / "reference_numbers.csv").unlink()
    (tmp_path / "README.md").write_text(f"{make_report.BLOCK_BEGIN}nope -->\n{make_report.BLOCK_END}\n")
    with pytest.raises(UserError, match="'nope' is not one of"):
        make_report.main(_args(tmp_path))
    (tmp_path / "README.md").write_text(f"{make_report.BLOCK_BEGIN}demo -->\nno end\n")
    with pytest.raises(UserError, match="has no '<!-- end generated -->' line"):
        make_report.main(_args(tmp_path))


def test_committed_report_and_readme_are_what_results_render(tmp_path):
    """docs/report.md and README.md's generated blocks are exactly what the committed results/ render to
    (fails after a CSV changed without `make report`); no machine-local path in them."""
    shutil.copytree(REPO_ROOT / "results", tmp_path / "results")
    shutil.copytree(REPO_ROOT / "docs" / "figures", tmp_path / "docs" / "figures")  # the frame strip is an input
    for page in (REPO_ROOT / "docs").glob("*.md"):
        shutil.copy(page, tmp_path / "docs" / page.name)
    shutil.copy(REPO_ROOT / "README.md", tmp_path / "README.md")
    make_report.main(_args(tmp_path, configs_dir=str(REPO_ROOT / "configs")))
    for rel in ("docs/report.md", "README.md"):
        rendered = (tmp_path / rel).read_text()
        assert rendered == (REPO_ROOT / rel).read_text(), f"{rel} is stale: run make report"
        assert not re.search(r"(?<![\w.~])/(tmp|work|root|home|Users)/", rendered), rel


# ----------------------------------------------------------------------------- frame strip
def _video(path, frames=20, h=24, w=32):
    import imageio.v2 as imageio

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = imageio.get_writer(str(path), fps=10, codec="libx264", quality=8, macro_block_size=1)
    for i in range(frames):
        img = np.zeros((h, w, 3), dtype=np.uint8)
        img[:, : (i + 1) * w // frames] = (200, 40, 40)  # a bar that grows: frames differ
        writer.append_data(img)
    writer.close()
    return path


def test_frame_strip_from_a_synthetic_mp4(tmp_path, capsys):
    video = _video(tmp_path / "eval_last_seed3.mp4")
    out = tmp_path / "strip.png"
    r = frame_strip.main(frame_strip.Args(video=str(video), out=str(out), frames=5, height=48, gap=2))
    from PIL import Image

    img = Image.open(out)
    assert img.size == (5 * 64 + 4 * 2, 48) and r["bytes"] < 300 * 1024
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["frames"] == [0, 5, 10, 14, 19] and meta["video"] == "eval_last_seed3.mp4" and "eval" not in meta
    first = out.read_bytes()
    frame_strip.main(frame_strip.Args(video=str(video), out=str(out), frames=5, height=48, gap=2))
    assert out.read_bytes() == first  # same video, same bytes
    assert frame_strip.pick_indices(3, 6) == [0, 1, 2] and frame_strip.pick_indices(10, 1) == [0]
    with pytest.raises(UserError, match="video not found"):
        frame_strip.main(frame_strip.Args(video=str(tmp_path / "none.mp4"), out=str(out)))
    with pytest.raises(UserError, match="over --max-kb 1"):
        frame_strip.main(frame_strip.Args(video=str(video), out=str(tmp_path / "big.png"), height=512, max_kb=1))
    assert not (tmp_path / "big.png").exists()


# ----------------------------------------------------------------------------- reproduction.md: bc, fine-tuning
def test_reproduction_page_lists_every_bc_and_finetune_seed(tmp_path):
    configs = tmp_path / "configs"
    (configs / "bc").mkdir(parents=True)
    (configs / "finetune").mkdir()
    (configs / "bc" / "x_cpu.sh").write_text(
        "#!/usr/bin/env bash\n# tier: cpu\n# Results: docs/bc.md, "
        "results/bc_x.csv.\n#\n#   bash configs/bc/x_cpu.sh OUT_DIR [SEED]\n"
        "set -e\n# results/not_this.csv after the header\n"
    )
    (configs / "finetune" / "y_cpu.sh").write_text(
        "# tier: cpu\n# results/ft_y.csv\n#   bash configs/finetune/y_cpu.sh OUT\n"
    )
    bc_csv, ft_csv, empty = tmp_path / "bc_x.csv", tmp_path / "ft_y.csv", tmp_path / "ft_empty.csv"
    _shared.append_rows(bc_csv, bc_results.COLUMNS, _bc_rows())
    _shared.append_rows(ft_csv, finetune_results.COLUMNS, _finetune_rows())
    empty.write_text(",".join(finetune_results.COLUMNS) + "\n")
    pipelines = reproduce.discover_pipelines(configs)
    assert [(p.usage, p.results, p.pages) for p in pipelines] == [
        ("bash configs/bc/x_cpu.sh OUT_DIR [SEED]", ["results/bc_x.csv"], ["docs/bc.md"]),
        ("bash configs/finetune/y_cpu.sh OUT", ["results/ft_y.csv"], []),
    ]
    args = reproduce.Args(
        configs_dir=str(configs),
        results_dir=str(tmp_path / "none"),
        doc=str(tmp_path / "r.md"),
        bc_csvs=(str(bc_csv),),
        finetune_csvs=(str(ft_csv), str(empty)),
    )
    md = reproduce.render(tmp_path / "none", reproduce.discover_configs(configs), args)
    bc = md.split("## Behaviour cloning (`bc.py`)")[1].split("## BC -> RL")[0]
    assert (
        "| c16 | 200 | chunk 16 + temporal ensembling | 5k | 1, 2, 3 | @2.5k: 0.50 / 0.50 / 0.50 | 0.90 / 0.80 / 0.70 |"
        in bc
    )
    ft = md.split("## BC -> RL fine-tuning")[1].split("## Configs and commands")[0]
    assert "| scratch | 2 | 0.20 | 0.10 | 100 episodes (eval_last) |" in ft  # every seed's own row
    assert "| bc_init_demos | 2 | 0.80 |" in ft
    assert "**Not run yet**: `ft_empty.csv` holds no rows." in ft and "| demos | demos in a second replay" in ft
    commands = md.split("## Configs and commands")[1]
    assert "| `bash configs/bc/x_cpu.sh OUT_DIR [SEED]` | `results/bc_x.csv` |" in commands
    assert "not_this.csv" not in md
