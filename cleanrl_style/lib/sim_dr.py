"""Simulator domain randomization: what is randomized, the ranges of each level and of the held-out
split, the per-env draws, and the `--sim-dr` / `--variation` flags. Docs: docs/generalization.md

Pure numpy (no ManiSkill import): lib/pickcube_dr.py applies these draws to the PickCubeDR-v1 task.

Splits. A *level* (`--sim-dr off|light|heavy`) picks the training ranges (light inside heavy); a
*variation* picks what an env shows: `clean` (PickCube-v1 itself, no randomization), `train` (the
level's ranges) or `held-out` (ranges disjoint from heavy's, hence from light's too: other hues, other
table/floor patterns, lighting and camera offsets outside the training ranges). Every quantity in
`DISJOINT` has held-out intervals that do not overlap heavy's (`tests/test_sim_dr.py` checks the
constants and the draws); saturation, value, pattern period and tint hue are shared by all splits.

Draws. Each env owns two generators seeded from its episode seed: `np.random.default_rng([seed,
SCENE_STREAM])` for what is built at reconfiguration (`draw_scene`) and `[seed, CAMERA_STREAM]` for
the camera pose of each episode (`draw_camera`). They never touch torch's or ManiSkill's RNGs, so
the task's own initial states (cube pose, goal, robot noise) are those of PickCube-v1 for the same
seed. Unseeded resets (auto-resets) continue the generators: a new draw per episode, reproducible
from the last seeded reset.
"""

from __future__ import annotations

import colorsys
import math
from typing import Optional, Sequence

import numpy as np

from cleanrl_style.lib.runs import UserError

ENV_ID = "PickCubeDR-v1"
BASE_ENV_ID = "PickCube-v1"  # PickCubeDR-v1 with variation clean is this task, observation for observation
LEVELS = ("off", "light", "heavy")
VARIATIONS = ("clean", "train", "held-out")
DEFAULT_EVAL_LEVEL = "heavy"  # the train variation of a checkpoint trained without --sim-dr
SCENE_STREAM, CAMERA_STREAM = 0x5D51, 0xCA3E  # second word of the per-env generators' seeds

# hue bands (fractions of the colour wheel; an interval may run past 0/1 and wraps)
HUES_TRAIN = ((-0.05, 0.12), (0.25, 0.42), (0.55, 0.70))  # reds/oranges/browns, greens, blues
HUES_HELD_OUT = ((0.15, 0.22), (0.45, 0.52), (0.75, 0.90))  # yellows, cyans, purples/magentas

_SHARED = dict(
    cube_sat=((0.55, 1.0),),
    cube_val=((0.45, 1.0),),
    table_sat=((0.35, 0.9),),
    table_val=((0.3, 0.9),),
    floor_sat=((0.35, 0.9),),
    floor_val=((0.2, 0.8),),
    pattern_dark=((0.45, 0.75),),  # value of a pattern's second colour, relative to the first
    table_period_m=((0.04, 0.3),),  # one repeat of the table's pattern, metres
    floor_period_m=((0.3, 1.5),),
    tint_hue=((0.0, 1.0),),
)
RANGES: dict[str, dict[str, tuple]] = {
    "light": dict(
        _SHARED,
        cube_hue=((-0.03, 0.03),),  # around PickCube's red
        cube_sat=((0.75, 1.0),),
        cube_val=((0.6, 1.0),),
        table_hue=((0.04, 0.10),),  # wood-like browns
        table_sat=((0.4, 0.7),),
        table_val=((0.35, 0.7),),
        table_pattern=("plain", "stripes"),
        table_period_m=((0.08, 0.2),),
        floor_hue=((0.55, 0.65),),
        floor_pattern=("plain", "checker"),
        ambient=((0.2, 0.4),),  # PickCube: 0.3
        light_tint=((0.0, 0.1),),  # saturation of the lights' colour (0 = white)
        key_intensity=((0.75, 1.25),),  # PickCube: 1 for both directional lights
        fill_intensity=((0.75, 1.25),),
        key_azimuth_deg=((-30.0, 30.0),),  # offset from PickCube's key light direction (1, 1, -1)
        key_elevation_deg=((25.0, 45.0),),  # below the horizon; PickCube: 35.3
        camera_eye_m=((0.0, 0.03),),  # distance of the camera position from PickCube's
        camera_target_m=((0.0, 0.02),),  # distance of the look-at point from PickCube's
        fov_deg=((-3.0, 3.0),),  # offset from PickCube's 90 degrees
    ),
    "heavy": dict(
        _SHARED,
        cube_hue=HUES_TRAIN,
        table_hue=HUES_TRAIN,
        table_pattern=("plain", "checker", "stripes"),
        floor_hue=HUES_TRAIN,
        floor_pattern=("plain", "checker", "stripes"),
        ambient=((0.1, 0.5),),
        light_tint=((0.0, 0.25),),
        key_intensity=((0.5, 1.5),),
        fill_intensity=((0.5, 1.5),),
        key_azimuth_deg=((-60.0, 60.0),),
        key_elevation_deg=((15.0, 65.0),),
        camera_eye_m=((0.0, 0.07),),
        camera_target_m=((0.0, 0.05),),
        fov_deg=((-8.0, 8.0),),
    ),
    "held-out": dict(
        _SHARED,
        cube_hue=HUES_HELD_OUT,
        table_hue=HUES_HELD_OUT,
        table_pattern=("dots", "grid", "noise"),
        floor_hue=HUES_HELD_OUT,
        floor_pattern=("dots", "grid", "noise"),
        ambient=((0.02, 0.07), (0.55, 0.7)),
        light_tint=((0.35, 0.5),),
        key_intensity=((0.2, 0.4), (1.7, 2.2)),
        fill_intensity=((0.2, 0.4), (1.7, 2.2)),
        key_azimuth_deg=((90.0, 180.0), (-180.0, -90.0)),  # from behind the robot's side of the scene
        key_elevation_deg=((3.0, 10.0), (75.0, 88.0)),
        camera_eye_m=((0.09, 0.13),),
        camera_target_m=((0.07, 0.10),),
        fov_deg=((-16.0, -11.0), (11.0, 16.0)),
    ),
}
# held-out never overlaps heavy (and light lies inside heavy) in these; hues compare modulo 1
DISJOINT = (
    "cube_hue",
    "table_hue",
    "floor_hue",
    "table_pattern",
    "floor_pattern",
    "ambient",
    "light_tint",
    "key_intensity",
    "fill_intensity",
    "key_azimuth_deg",
    "key_elevation_deg",
    "camera_eye_m",
    "camera_target_m",
    "fov_deg",
)
PATTERNS = ("plain", "checker", "stripes", "dots", "grid", "noise")
# what each quantity is, and its value in PickCube-v1 (variation clean), for the docs' table
DESCRIPTIONS = dict(
    cube_hue=("cube hue (fraction of the colour wheel)", "0 (red)"),
    cube_sat=("cube saturation", "1"),
    cube_val=("cube value (brightness)", "1"),
    table_hue=("table surface hue", "wood texture"),
    table_sat=("table surface saturation", "wood texture"),
    table_val=("table surface value", "wood texture"),
    table_pattern=("table surface pattern", "wood texture"),
    table_period_m=("table pattern repeat, m", "-"),
    floor_hue=("floor hue", "grey grid"),
    floor_sat=("floor saturation", "grey grid"),
    floor_val=("floor value", "grey grid"),
    floor_pattern=("floor pattern", "grey grid"),
    floor_period_m=("floor pattern repeat, m", "4 (grid)"),
    pattern_dark=("pattern's second colour, value relative to the first", "-"),
    ambient=("ambient light intensity", "0.3"),
    light_tint=("light colour saturation (all lights, each its own hue)", "0 (white)"),
    tint_hue=("light colour hue", "-"),
    key_intensity=("key (directional) light intensity", "1"),
    fill_intensity=("fill (overhead directional) light intensity", "1"),
    key_azimuth_deg=("key light azimuth offset, degrees", "0 (direction (1, 1, -1))"),
    key_elevation_deg=("key light elevation below the horizon, degrees", "35.3"),
    camera_eye_m=("camera position offset (distance, random direction), m", "0"),
    camera_target_m=("camera look-at point offset (distance, random direction), m", "0"),
    fov_deg=("camera field of view offset, degrees", "0 (fov 90)"),
)
KEY_AZIMUTH_DEG, KEY_ELEVATION_DEG = 45.0, math.degrees(math.atan(1 / math.sqrt(2)))  # (1, 1, -1)
TEXTURE_PX = 32  # one period of a pattern


# ----------------------------------------------------------------------------- splits and flags
def split_of(level: str, variation: str) -> Optional[str]:
    """The ranges an env draws from: None (clean: nothing randomized), 'light', 'heavy' or 'held-out'."""
    if level not in LEVELS:
        raise ValueError(f"sim_dr must be one of {LEVELS} (got {level!r})")
    if variation not in VARIATIONS:
        raise ValueError(f"variation must be one of {VARIATIONS} (got {variation!r})")
    if variation == "clean" or (variation == "train" and level == "off"):
        return None
    return "held-out" if variation == "held-out" else level


def check_flags(env_id: str, sim_dr: Optional[str] = None, variation: Optional[str] = None) -> None:
    """The --sim-dr / --variation combination a run asks for is possible (UserError, exit 2, if not):
    a training level needs PickCubeDR-v1; a randomized evaluation needs a PickCube task."""
    resolve(env_id, sim_dr, None)
    if variation is not None:
        resolve(env_id, sim_dr, variation)


def resolve(
    env_id: str, sim_dr: Optional[str] = None, variation: Optional[str] = None, env_kwargs: Optional[dict] = None
) -> tuple[str, Optional[dict]]:
    """(env id, env kwargs) of an env made with the randomization level `sim_dr` (None: as `env_kwargs`
    say, else off) and, for evaluation envs, a `variation` (None: a training env).

    - training env (variation None): PickCubeDR-v1 gets {"sim_dr": level, "variation": "train"}; a
      level other than off on any other task is a UserError (exit 2); other tasks pass through;
    - variation clean: PickCubeDR-v1 gets variation clean; other tasks (PickCube-v1 too) pass through;
    - variation train / held-out: PickCube-v1 or PickCubeDR-v1 -> PickCubeDR-v1 with that variation
      and `sim_dr`'s ranges (train with level off: DEFAULT_EVAL_LEVEL's); other tasks: UserError (exit 2).
    """
    kw = dict(env_kwargs or {})
    if sim_dr is not None and sim_dr not in LEVELS:
        raise UserError(f"--sim-dr must be one of {', '.join(LEVELS)} (got '{sim_dr}')")
    if variation is not None and variation not in VARIATIONS:
        raise UserError(f"--variation / --eval-variation must be one of {', '.join(VARIATIONS)} (got '{variation}')")
    level = sim_dr or kw.get("sim_dr") or "off"
    if variation is None:  # a training env
        if env_id == ENV_ID:
            return ENV_ID, dict(kw, sim_dr=level, variation="train")
        if level != "off":
            raise UserError(
                f"--sim-dr {level} randomizes the simulator of {ENV_ID} only (got --env-id {env_id}); "
                f"use --env-id PickCubeDR (PickCube-v1 with randomized lighting, colours and camera)"
            )
        return env_id, env_kwargs
    if variation == "clean":
        return (ENV_ID, dict(kw, sim_dr=level, variation="clean")) if env_id == ENV_ID else (env_id, env_kwargs)
    if env_id not in (ENV_ID, BASE_ENV_ID):
        raise UserError(
            f"variation {variation} (--variation / --eval-variation) exists for {BASE_ENV_ID} and {ENV_ID} only, "
            f"not {env_id}: use clean"
        )
    if variation == "train" and level == "off":
        level = DEFAULT_EVAL_LEVEL
    return ENV_ID, dict(kw, sim_dr=level, variation=variation)


# ----------------------------------------------------------------------------- draws
def uniform(rng: np.random.Generator, intervals: Sequence[tuple[float, float]]) -> float:
    """Uniform over a union of intervals (each picked with probability proportional to its length)."""
    lengths = np.array([hi - lo for lo, hi in intervals], dtype=np.float64)
    k = int(rng.choice(len(intervals), p=lengths / lengths.sum())) if len(intervals) > 1 else 0
    lo, hi = intervals[k]
    return float(rng.uniform(lo, hi))


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=np.float64)


def _unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=3)
    return v / max(np.linalg.norm(v), 1e-9)


def draw_scene(rng: np.random.Generator, split: str) -> dict:
    """What one env builds at reconfiguration: colours and patterns (cube, table top, floor),
    lighting (ambient and two directional lights: colour, intensity, the key light's direction) and
    the cameras' field-of-view offset. Raw draws (hues, intensities, angles) are kept next to the
    derived colours so tests can check them against RANGES."""
    r = RANGES[split]
    d: dict = {}
    for obj in ("cube", "table", "floor"):
        d[f"{obj}_hue"] = uniform(rng, r[f"{obj}_hue"]) % 1.0
        d[f"{obj}_rgb"] = _hsv(d[f"{obj}_hue"], uniform(rng, r[f"{obj}_sat"]), uniform(rng, r[f"{obj}_val"]))
    for obj in ("table", "floor"):
        d[f"{obj}_pattern"] = str(r[f"{obj}_pattern"][int(rng.integers(len(r[f"{obj}_pattern"])))])
        d[f"{obj}_rgb2"] = d[f"{obj}_rgb"] * uniform(rng, r["pattern_dark"])
        d[f"{obj}_period_m"] = uniform(rng, r[f"{obj}_period_m"])
        d[f"{obj}_texture_seed"] = int(rng.integers(2**31))
    d["light_tint"] = uniform(rng, r["light_tint"])
    for light in ("ambient", "key", "fill"):
        name = "ambient" if light == "ambient" else f"{light}_intensity"
        d[name] = uniform(rng, r[name])
        tint = _hsv(uniform(rng, r["tint_hue"]), d["light_tint"], 1.0)
        d[f"{light}_rgb"] = d[name] * tint
    d["key_azimuth_deg"] = uniform(rng, r["key_azimuth_deg"])
    d["key_elevation_deg"] = uniform(rng, r["key_elevation_deg"])
    az, el = math.radians(KEY_AZIMUTH_DEG + d["key_azimuth_deg"]), math.radians(d["key_elevation_deg"])
    d["key_direction"] = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), -math.sin(el)])
    d["fov_deg"] = uniform(rng, r["fov_deg"])
    return d


def draw_camera(rng: np.random.Generator, split: str) -> dict:
    """One episode's camera pose offset: the camera position and its look-at point each move by a
    distance drawn from the split's range, in a uniformly random direction."""
    r = RANGES[split]
    d = dict(camera_eye_m=uniform(rng, r["camera_eye_m"]), camera_target_m=uniform(rng, r["camera_target_m"]))
    d["eye_offset"] = d["camera_eye_m"] * _unit(rng)
    d["target_offset"] = d["camera_target_m"] * _unit(rng)
    return d


def episode_rngs(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """(scene generator, camera generator) of an env whose episode seed is `seed`."""
    s = int(seed) & (2**63 - 1)
    return np.random.default_rng([s, SCENE_STREAM]), np.random.default_rng([s, CAMERA_STREAM])


def texture(pattern: str, rgb, rgb2, seed: int, px: int = TEXTURE_PX) -> Optional[np.ndarray]:
    """One period of a pattern as an RGBA uint8 (px, px, 4) image, tiled by the renderer; None for plain."""
    if pattern == "plain":
        return None
    y, x = (np.mgrid[0:px, 0:px] + 0.5) / px
    if pattern == "checker":
        mask = (x < 0.5) ^ (y < 0.5)
    elif pattern == "stripes":
        mask = x < 0.5
    elif pattern == "dots":
        mask = (x - 0.5) ** 2 + (y - 0.5) ** 2 < 0.3**2
    elif pattern == "grid":
        mask = (np.minimum(x, 1 - x) < 0.08) | (np.minimum(y, 1 - y) < 0.08)
    elif pattern == "noise":  # blotches: a coarse random field, bilinearly upsampled, thresholded
        coarse = np.random.default_rng(seed).random((5, 5))
        coarse[-1], coarse[:, -1] = coarse[0], coarse[:, 0]  # wraps: seamless when tiled
        u, v = x * 4, y * 4
        i, j = np.floor(v).astype(int), np.floor(u).astype(int)
        fv, fu = v - i, u - j
        field = (
            coarse[i, j] * (1 - fv) * (1 - fu)
            + coarse[i + 1, j] * fv * (1 - fu)
            + coarse[i, j + 1] * (1 - fv) * fu
            + coarse[i + 1, j + 1] * fv * fu
        )
        mask = field > 0.5
    else:
        raise ValueError(f"unknown pattern {pattern!r} (have {PATTERNS})")
    rgb_img = np.where(mask[..., None], np.asarray(rgb2), np.asarray(rgb))
    out = np.empty((px, px, 4), dtype=np.uint8)
    out[..., :3] = np.clip(np.round(rgb_img * 255), 0, 255).astype(np.uint8)
    out[..., 3] = 255
    return out


def _fmt(ranges) -> str:
    if isinstance(ranges[0], str):
        return ", ".join(ranges)
    return " or ".join(f"{lo:g} to {hi:g}" for lo, hi in ranges)


def ranges_markdown() -> str:
    """The table of RANGES in docs/generalization.md (tests/test_sim_dr.py checks the page holds it)."""
    lines = [
        "| quantity | PickCube-v1 (clean) | light | heavy | held-out | held-out disjoint from heavy |",
        "|---|---|---|---|---|---|",
    ]
    for key, (what, clean) in DESCRIPTIONS.items():
        cells = [_fmt(RANGES[s][key]) for s in ("light", "heavy", "held-out")]
        lines.append(f"| {what} | {clean} | {' | '.join(cells)} | {'yes' if key in DISJOINT else 'shared'} |")
    return "\n".join(lines)


def in_ranges(value, ranges: Sequence, wrap: Optional[float] = None) -> bool:
    """Whether `value` lies in one of `ranges` (intervals, or a tuple of names); `wrap` compares
    modulo that period (hues: 1)."""
    if isinstance(value, str):
        return value in ranges
    for lo, hi in ranges:
        if wrap is None:
            if lo <= value <= hi:
                return True
        elif any(lo <= value + k * wrap <= hi for k in (-1, 0, 1)):
            return True
    return False
