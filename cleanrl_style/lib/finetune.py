"""BC -> RL fine-tuning: demonstrations as a second replay store, and an RL policy started from a
bc.py (or sac*.py) checkpoint. Shared by sac.py and sac_rgb.py. Docs: docs/finetune.md

`load_demo_replay` reads a ManiSkill trajectory file written by collect_demos.py into a DemoReplay on
the learner's device, after checking that it holds this run's task, obs mode, control mode, image size
and reward mode (rewards are never mixed across reward modes).

`init_spec` reads the checkpoint given to `--init-from` and says which architecture the RL policy must
have to take its weights (a run adopts the checkpoint's feature/hidden sizes and state selection);
`load_init` copies the weights in: from bc.py `--policy gaussian` the encoder (pixels), the state
normalisation and the tanh-Gaussian actor; from a sac*.py checkpoint its policy, and the critics and
temperature too when it is a last.pt. Anything that does not fit is one UserError line.
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from cleanrl_style.lib.checkpoints import load_checkpoint
from cleanrl_style.lib.demos import demo_image_spec, load_demos, read_demo_info
from cleanrl_style.lib.replay import DemoReplay
from cleanrl_style.lib.runs import UserError


# ----------------------------------------------------------------------------- demonstrations
def default_reward_mode(env_id: str) -> str:
    """The reward mode ManiSkill picks when none is given (the first supported one): the one every
    training script here uses."""
    from mani_skill.utils.registration import REGISTERED_ENVS

    return REGISTERED_ENVS[env_id].cls.SUPPORTED_REWARD_MODES[0]


def load_demo_replay(path: str, env: Any, obs_mode: str, args: Any, device: torch.device) -> DemoReplay:
    """`path`'s demos as a DemoReplay on `device`, checked against the training env `env` (a VecEnv)."""
    info = read_demo_info(path)
    where = f"--demos {path}"
    if info["env_id"] != env.env_id:
        raise UserError(f"{where} holds {info['env_id']} demos, this run trains {env.env_id}", code=1)
    want_obs = {"state": ("state",), "rgb": ("rgb",), "rgbd": ("rgbd", "rgb+depth")}[obs_mode]
    if (info["obs_mode"] or "none") not in want_obs:
        raise UserError(
            f"{where} has obs mode '{info['obs_mode']}', this run uses '{obs_mode}': convert it with "
            f"collect_demos.py --convert-only --obs-mode {obs_mode} --control-mode {env.cfg['control_mode']}",
            code=1,
        )
    if info["control_mode"] != env.cfg["control_mode"]:
        raise UserError(
            f"{where} has control mode '{info['control_mode']}', this run uses '{env.cfg['control_mode']}' "
            f"(--control-mode): the actions would mean something else",
            code=1,
        )
    run_reward = default_reward_mode(env.env_id)
    demo_reward = (info.get("env_kwargs") or {}).get("reward_mode") or run_reward
    if demo_reward != run_reward:
        raise UserError(
            f"{where} records '{demo_reward}' rewards, this run trains on '{run_reward}' "
            f"rewards; convert the demos again (collect_demos.py --convert-only records the default mode)",
            code=1,
        )
    pixels = obs_mode != "state"
    if pixels:
        _, hw = demo_image_spec(path, info)
        have = list(env.obs_shapes["rgb"][1:])
        if list(hw) != have:
            raise UserError(
                f"{where} has {hw[0]}x{hw[1]} images, this run renders {have[0]}x{have[1]} "
                f"(--image-size); convert with collect_demos.py --convert-only --image-size {have[0]}",
                code=1,
            )
    data = load_demos(path, obs_mode, None, env.state_layout() if pixels else None, rewards=True)
    if data["actions"].shape[1] != env.action_dim:
        raise UserError(f"{where}: actions have {data['actions'].shape[1]} dims, the env's {env.action_dim}", code=1)
    if data["state"].shape[1] != env.obs_shapes["state"][0]:
        raise UserError(
            f"{where}: the state has {data['state'].shape[1]} dims, the env's {env.obs_shapes['state'][0]}", code=1
        )
    if pixels and tuple(data["rgb"].shape[1:]) != tuple(env.obs_shapes["rgb"]):
        raise UserError(
            f"{where}: images are {tuple(data['rgb'].shape[1:])}, the env's {tuple(env.obs_shapes['rgb'])}", code=1
        )
    return DemoReplay(data, device, args.gamma, args.n_step, args.bootstrap_at_done)


# ----------------------------------------------------------------------------- starting policy
def init_spec(path: str, script: str, env_spec: dict) -> dict:
    """What the RL policy must look like to take the weights of checkpoint `path` (--init-from).
    env_spec: env_id, obs_mode, control_mode, obs_shapes, action_dim of this run's training env.
    Returns dict(ckpt, kind="bc"|"sac", feature_dim, hidden_dim, state_dim, encoder_config) (feature_dim None
    for state; encoder_config: lib/encoders.encoder_config of its image encoder, None for NatureCNN)."""
    ckpt = load_checkpoint(path)
    where = f"--init-from {path}"
    ce = ckpt["env"]
    for key, name in (("env_id", "task"), ("obs_mode", "obs mode"), ("control_mode", "control mode")):
        if ce.get(key) != env_spec[key]:
            raise UserError(f"{where}: its {name} is '{ce.get(key)}', this run's is '{env_spec[key]}'", code=1)
    if ce["action_dim"] != env_spec["action_dim"]:
        raise UserError(f"{where}: action dim {ce['action_dim']}, this run's {env_spec['action_dim']}", code=1)
    want = {k: list(v) for k, v in ce["obs_shapes"].items()}
    have = {k: list(v) for k, v in env_spec["obs_shapes"].items()}
    if want != have:
        raise UserError(f"{where}: trained on observations {want}, this run's are {have}", code=1)
    mk = ckpt["model_kwargs"]
    if ckpt["script"] == "bc":
        m = mk["model"]
        problems = []
        if m["head"] != "gaussian":
            problems.append(f"policy '{m['head']}' (train it with bc.py --policy gaussian)")
        if m["obs_horizon"] != 1:
            problems.append(f"--obs-horizon {m['obs_horizon']} (RL acts on one frame)")
        if m.get("image_shape"):
            if m.get("encoder", "nature") == "keypoints":
                problems.append("encoder 'keypoints' (the RL scripts use nature or a timm backbone)")
            if m.get("head_input", "features") != "features":
                problems.append(f"--head-input {m['head_input']}")
        if problems:
            raise UserError(f"{where}: this BC policy cannot start an RL actor: " + "; ".join(problems), code=1)
        return dict(
            ckpt=ckpt,
            kind="bc",
            feature_dim=m.get("feature_dim") if m.get("image_shape") else None,
            encoder_config=m.get("encoder_config"),
            hidden_dim=m["hidden_dim"],
            state_dim=m["state_dim"],
        )
    if ckpt["script"] == script:
        state_dim = mk.get("state_dim", mk.get("in_dim"))
        return dict(
            ckpt=ckpt,
            kind="sac",
            feature_dim=mk.get("feature_dim"),
            hidden_dim=mk["hidden_dim"],
            state_dim=state_dim,
            encoder_config=mk.get("encoder"),
        )
    raise UserError(f"{where} was written by {ckpt['script']}.py; {script}.py starts from bc.py or {script}.py", code=1)


def load_init(spec: dict, policy: torch.nn.Module, log_std: Optional[float] = None) -> str:
    """Copy the policy weights described by `spec` (init_spec) into `policy`, which has `.actor` (lib/nets
    Actor), `.state_norm` (lib/nets StateNorm) and, from pixels, `.encoder` (lib/nets PixelEncoder, whose
    state_norm is policy.state_norm); with `log_std` (--init-log-std) the actor's std is then set to that
    for every input. Returns a one-line description of what was loaded."""
    what = _load_init(spec, policy)
    if log_std is not None:
        policy.actor.set_log_std(log_std)
        what += f" (log-std set to {log_std:g})"
    return what


def _load_init(spec: dict, policy: torch.nn.Module) -> str:
    sd = spec["ckpt"]["state_dict"]
    if spec["kind"] == "sac":
        _load(policy, sd, "the policy")
        return "policy of a SAC checkpoint"
    actor = {k[len("model.actor.") :]: v for k, v in sd.items() if k.startswith("model.actor.")}
    _load(policy.actor, actor, "the actor")
    with torch.no_grad():
        norm = policy.state_norm
        if norm.out_dim != len(sd["norm.keep"]):
            raise UserError(f"--init-from: BC keeps {len(sd['norm.keep'])} state dims, this policy {norm.out_dim}")
        norm.keep.copy_(sd["norm.keep"])
        norm.mean.copy_(sd["norm.state_mean"])
        norm.std.copy_(sd["norm.state_std"])
    parts = "actor and state normalisation"
    if getattr(policy, "encoder", None) is not None:
        cnn = {k[len("model.encoder.cnn.") :]: v for k, v in sd.items() if k.startswith("model.encoder.cnn.")}
        _load(policy.encoder.cnn, cnn, "the image encoder")
        parts = "image encoder, " + parts
    return f"{parts} of a BC checkpoint"


def load_init_learner(spec: dict, updater: Any) -> str:
    """From a SAC last.pt also the critics (and a separate critic encoder) and the temperature; the
    optimizers and counters start fresh. Returns what was loaded ('' for anything else)."""
    ts = spec["ckpt"].get("train_state")
    if spec["kind"] != "sac" or not ts:
        return ""
    try:
        updater.load_learned(ts)
    except (RuntimeError, KeyError, UserError) as e:
        raise UserError(
            f"--init-from: its critics do not fit this run's (--num-q, --critic-encoder?): {e}", code=1
        ) from e
    return "critics and temperature"


def _load(module: torch.nn.Module, state: dict, what: str) -> None:
    try:
        module.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"--init-from: {what} does not fit this run's network ({first[:200]})", code=1) from e


def check_finetune_flags(args: Any) -> None:
    """The fine-tuning flags of sac.py / sac_rgb.py (one line, exit 2)."""
    from cleanrl_style.lib.runs import check_non_negative, check_positive, check_unit_interval

    check_unit_interval(args, "demo_ratio", high_open=True)
    check_non_negative(args, "critic_warmup_steps", "bc_coef", "bc_decay_steps")
    check_positive(args, "num_q")
    if args.num_q < 2:
        raise UserError(f"--num-q must be >= 2 (the target takes the minimum of two critics; got {args.num_q})")
    if args.bc_coef > 0 and not args.demos:
        raise UserError("--bc-coef needs --demos: the BC term is computed on the batch's demonstration rows")
    if getattr(args, "init_log_std", None) is not None and not args.init_from:
        raise UserError("--init-log-std sets the std of a loaded actor: it needs --init-from")
    if getattr(args, "fixed_log_std", None) is not None:
        from cleanrl_style.lib.nets import LOG_STD_MAX, LOG_STD_MIN

        if not LOG_STD_MIN < args.fixed_log_std < LOG_STD_MAX:
            raise UserError(f"--fixed-log-std must be in ({LOG_STD_MIN}, {LOG_STD_MAX}) (got {args.fixed_log_std})")
        if args.init_log_std is not None:
            raise UserError("--fixed-log-std sets and keeps the std: drop --init-log-std")
        if args.autotune:
            raise UserError("--fixed-log-std needs --no-autotune: the temperature would steer a fixed entropy")
    if args.demos and args.demo_ratio == 0:
        raise UserError("--demos with --demo-ratio 0 would never sample a demonstration; drop --demos or raise it")
