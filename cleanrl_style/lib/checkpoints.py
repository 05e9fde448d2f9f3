"""Checkpoints: the file format every script writes and evaluate.py reads.

A checkpoint is a dict: format, script (the script that wrote it: its module has `load_policy`),
args, env (the env spec: task, obs mode, image size, cameras, controller, episode length, obs
shapes, action dim), model_kwargs, state_dict (the deployable policy, with its normalisation
statistics as buffers), obs_norm, step, extra, versions, and for resumable training checkpoints
`train_state` (optimizers, other networks, RNG states, counters; see each script's `resume`).
Files are written to a temp file and renamed, so a crash never leaves a half-written one.
"""

from __future__ import annotations

import importlib
import io
from pathlib import Path
from typing import Any, Callable, Optional, Union

import torch

from cleanrl_style.lib.envs import VecEnv, env_spec
from cleanrl_style.lib.runs import UserError, args_dict, atomic_write_bytes, versions

CHECKPOINT_FORMAT = 1
SCRIPTS = ("ppo", "ppo_rgb", "sac", "sac_rgb", "bc")


def save_checkpoint(
    path: Union[str, Path],
    *,
    script: str,
    args: Any,
    env: Union[VecEnv, dict],
    model_kwargs: dict,
    state_dict: dict,
    step: int,
    obs_norm: Optional[dict] = None,
    extra: Optional[dict] = None,
    train_state: Optional[dict] = None,
) -> None:
    payload = dict(
        format=CHECKPOINT_FORMAT,
        script=script,
        args=args_dict(args),
        env=env_spec(env) if isinstance(env, VecEnv) else dict(env),
        model_kwargs=model_kwargs,
        state_dict=state_dict,
        obs_norm=obs_norm,
        step=int(step),
        extra=extra or {},
        versions=versions(),
    )
    if train_state is not None:
        payload["train_state"] = train_state
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: Union[str, Path], map_location: Union[str, torch.device] = "cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}", code=1)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # noqa: BLE001
        raise UserError(
            f"could not read checkpoint {path}: corrupt or not a torch file ({type(e).__name__})", code=1
        ) from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT or "script" not in ckpt:
        raise UserError(f"{path} is not a checkpoint written by cleanrl_style (format {CHECKPOINT_FORMAT})", code=1)
    return ckpt


def check_obs_compatible(ckpt: dict, env: VecEnv) -> None:
    """A checkpoint only runs on envs with the observation and action shapes it was trained on."""
    want = {k: tuple(v) for k, v in ckpt["env"]["obs_shapes"].items()}
    have = {k: tuple(v) for k, v in env.obs_shapes.items()}
    if want != have or ckpt["env"]["action_dim"] != env.action_dim:
        raise UserError(
            f"checkpoint/env mismatch: checkpoint expects obs {want} and action dim "
            f"{ckpt['env']['action_dim']}, env gives obs {have} and action dim {env.action_dim}",
            code=1,
        )


def policy_loader(ckpt: dict) -> Callable[[dict, torch.device], Callable]:
    """The `load_policy(ckpt, device)` of the script that wrote `ckpt`. This runtime lookup by the
    recorded script name is how evaluate.py and collect_demos.py --teacher reach a script's
    networks without importing any script statically (scripts stay leaves)."""
    script = ckpt["script"]
    if script not in SCRIPTS:
        raise UserError(f"checkpoint was written by '{script}', which is not one of {', '.join(SCRIPTS)}", code=1)
    try:
        return importlib.import_module(f"cleanrl_style.{script}").load_policy
    except (ImportError, AttributeError) as e:
        raise UserError(f"checkpoint was written by '{script}', which has no load_policy here", code=1) from e


def load_policy_checked(ckpt: dict, device: torch.device, path: Union[str, Path]) -> Callable:
    """policy_loader(ckpt)(ckpt, device), with a mismatch between the checkpoint and the script's
    networks reported as one line."""
    load = policy_loader(ckpt)
    try:
        return load(ckpt, device)
    except (RuntimeError, KeyError, TypeError) as e:
        raise UserError(
            f"checkpoint {path} does not match its script's networks: {str(e).splitlines()[0]}", code=1
        ) from e


def load_resume_checkpoint(run_dir: Union[str, Path], script: str, device: torch.device) -> dict:
    """last.pt of a run directory, checked to be a resumable checkpoint of `script`."""
    path = Path(run_dir) / "last.pt"
    if not path.is_file():
        raise UserError(
            f"--resume {run_dir}: no last.pt yet (a run writes it at its first evaluation, "
            f"every --eval-freq); start the run again instead",
            code=1,
        )
    ckpt = load_checkpoint(path, map_location=device)
    if ckpt["script"] != script:
        raise UserError(f"--resume {run_dir}: last.pt was written by {ckpt['script']}.py, not {script}.py", code=1)
    if "train_state" not in ckpt:
        raise UserError(
            f"--resume {run_dir}: last.pt holds no training state (written by an older version, or with "
            f"resumable checkpoints off)",
            code=1,
        )
    return ckpt


# ----------------------------------------------------------------------------- starting / resuming a run
def start_run(args: Any, script: str, resolve: Callable[[Any, str], Any]) -> tuple[Any, str, Optional[dict]]:
    """The first lines of every training script's main: with --resume, the run's own flags; the sim
    backend; the script's `resolve(args, backend)` (flag checks + resolved defaults written back into
    args); the seeds; and the checkpoint to resume from (None for a new run). Returns (args, backend, ckpt)."""
    from cleanrl_style.lib.envs import configure_torch_threads, env_device, resolve_sim_backend
    from cleanrl_style.lib.runs import resume_args, seed_everything
    from cleanrl_style.lib.sim_dr import check_flags as check_sim_dr_flags

    if args.resume:
        args, _ = resume_args(args, script)
    backend = resolve_sim_backend(args.sim_backend)
    args = resolve(args, backend)
    if hasattr(args, "sim_dr"):  # --sim-dr / --eval-variation need a PickCube task (one line, exit 2)
        check_sim_dr_flags(args.env_id, args.sim_dr, getattr(args, "eval_variation", None))
    threads = configure_torch_threads(backend, getattr(args, "torch_threads", None))
    if hasattr(args, "torch_threads"):
        args.torch_threads = threads
    seed_everything(args.seed)
    ckpt = load_resume_checkpoint(args.resume, script, env_device(backend)) if args.resume else None
    return args, backend, ckpt


def train_state(step: int, evaluator: Any, **learner: Any) -> dict:
    """The resumable part of last.pt: the script's learner state (optimizers, counters, ...) plus what
    every script saves: the step, the evaluator's selection state and the RNG states."""
    from cleanrl_style.lib.runs import rng_state

    return dict(learner, global_step=int(step), evaluator=evaluator.state(), rng=rng_state())


def restore_common(ckpt: dict, policy: torch.nn.Module, evaluator: Any) -> dict:
    """Load the policy weights, the evaluator's state and the RNG states of a resumable checkpoint;
    returns its train_state for the script's own parts (optimizers, counters)."""
    from cleanrl_style.lib.runs import set_rng_state

    ts = ckpt["train_state"]
    policy.load_state_dict(ckpt["state_dict"])
    evaluator.load_state(ts["evaluator"])
    set_rng_state(ts["rng"])
    return ts
