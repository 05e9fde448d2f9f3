"""SAC from privileged state on ManiSkill3 tasks, CleanRL style. Docs: docs/sac.md

    python cleanrl_style/sac.py --env-id PickCube                              # GPU: 512 envs
    python cleanrl_style/sac.py --env-id PushCube --num-envs 2 --total-timesteps 50_000   # CPU

Reads top to bottom: Args, flag resolution, the update functions, the main loop, load_policy.
The networks (tanh-Gaussian actor, twin-Q ensemble evaluated with vmap) are in lib/nets.py, the
TD targets in lib/returns.py, the replay buffer (a ring on the env's device that stores each
observation once) and the memory check in lib/replay.py, all shared with sac_rgb.py.

Bootstrapping: the target bootstraps from the real final observation (`info["final_observation"]`)
on truncation (time limit), never from a terminal state; with `--bootstrap-at-done always` (default)
ManiSkill's success terminations count as truncations (lib/returns.bootstrap_flags explains why).
`--n-step k` sums k discounted rewards and stops early at the end of an episode.

Resuming (`--resume RUN_DIR`): last.pt carries the critics, the optimizers, the temperature, the RNG
states and the counters. The replay buffer is only saved with `--save-replay`; without it the
resumed run refills the buffer with the current policy for `--learning-starts` env steps before it
updates again.

Fine-tuning from demonstrations (docs/finetune.md), with the flags of sac_rgb.py: `--init-from` a
bc.py `--policy gaussian` checkpoint from state (state normalisation and actor), `--demos`,
`--critic-warmup-steps`, `--bc-coef`/`--bc-decay-steps`, `--num-q`. The policy is a fixed StateNorm
(identity unless it comes from BC) in front of the actor; the critics see the same normalised state.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal, Optional

import torch
import torch.nn as nn
import tyro

from cleanrl_style.lib import envs as envs_lib
from cleanrl_style.lib.checkpoints import restore_common, save_checkpoint, start_run, train_state
from cleanrl_style.lib.evaluation import EpisodeStats, Evaluator
from cleanrl_style.lib.fast import check_fast_flags, maybe_fast
from cleanrl_style.lib.finetune import check_finetune_flags, init_spec, load_demo_replay, load_init, load_init_learner
from cleanrl_style.lib.nets import Actor, QEnsemble, QNetwork, StateNorm
from cleanrl_style.lib.replay import (
    ReplayBuffer,
    check_memory,
    eval_env_bytes,
    final_obs_gap,
    measure_free,
    resolve_buffer_device,
    restore_replay,
)
from cleanrl_style.lib.returns import bootstrap_flags
from cleanrl_style.lib.runs import (
    RunLogger,
    UserError,
    check_non_negative,
    check_positive,
    check_unit_interval,
    close_run,
    run,
)
from cleanrl_style.lib.sac_update import SacLog, SacUpdater, make_sac_updates


@dataclass
class Args:
    env_id: str = "PickCube"
    """ManiSkill task id; short names like PickCube resolve to PickCube-v1"""
    num_envs: Optional[int] = None
    """parallel training envs (default: 512 on GPU, 2 on CPU)"""
    num_eval_envs: Optional[int] = None
    """parallel evaluation envs (default: 16 on GPU, 2 on CPU)"""
    total_timesteps: int = 1_000_000
    """total env steps (summed over all envs)"""
    eval_freq: int = 100_000
    """evaluate (and write last.pt / best.pt) every this many env steps (0 = only at the end)"""
    num_eval_episodes: int = 16
    """episodes per evaluation (and for final_eval.json)"""
    seed: int = 1
    """seed of torch/numpy and of the training envs; evaluation uses seeds derived from it"""
    control_mode: str = "pd_joint_delta_pos"
    """ManiSkill controller"""
    partial_reset: bool = False
    """end and reset each env at success (True), or let every episode run to the time limit (False,
    ManiSkill's SAC default: no terminations, and the buffer keeps only a few final observations)"""
    bootstrap_at_done: Literal["always", "truncation"] = "always"
    """which episode ends the value targets bootstrap from V(final obs): always (success terminations
    too, as ManiSkill's baselines; see docs/foundation.md#bootstrapping) or truncation (time limit only)"""
    sim_backend: str = "auto"
    """auto (GPU if CUDA is present), gpu or cpu"""
    sim_dr: str = "off"
    """simulator domain randomization of the training envs: off | light | heavy (lighting, colours,
    textures, camera pose and fov; needs --env-id PickCubeDR; docs/generalization.md)"""
    eval_variation: str = "clean"
    """what the evaluation envs show: clean | train (the --sim-dr ranges, heavy's with --sim-dr off) |
    held-out (ranges disjoint from training's); PickCube or PickCubeDR only (docs/generalization.md)"""
    max_episode_steps: Optional[int] = None
    """override the task's episode length"""
    buffer_size: Optional[int] = None
    """replay capacity in transitions, summed over envs (default: 1_000_000 on GPU, 200_000 on CPU)"""
    buffer_device: str = "auto"
    """where the replay buffer lives: auto (the env's device), cuda or cpu"""
    batch_size: int = 1024
    """transitions per gradient step"""
    learning_starts: int = 4_000
    """env steps before the first gradient step, acting with uniform random actions (with --init-from:
    with the loaded policy; after a --resume without a saved buffer: env steps of the current policy
    that refill the buffer before updates resume)"""
    utd: float = 0.5
    """gradient steps per env step (update-to-data ratio); fractions carry over between iterations"""
    gamma: float = 0.8
    """discount (ManiSkill's SAC uses 0.8 for its short tabletop tasks)"""
    tau: float = 0.01
    """target network update rate (Polyak averaging)"""
    n_step: int = 1
    """n-step returns: sum this many discounted rewards before bootstrapping (stops at episode ends)"""
    policy_lr: float = 3e-4
    """actor learning rate"""
    q_lr: float = 3e-4
    """critic learning rate"""
    alpha_lr: float = 3e-4
    """entropy temperature learning rate (with --autotune)"""
    alpha: float = 0.2
    """entropy temperature (initial value with --autotune); 0 with --no-autotune drops the entropy terms"""
    autotune: bool = True
    """learn the entropy temperature towards a target entropy of -action_dim"""
    policy_frequency: int = 1
    """update the actor (and temperature) every this many critic updates"""
    target_network_frequency: int = 1
    """update the target critics every this many critic updates"""
    hidden_dim: int = 256
    """MLP width (3 hidden layers for actor and critics)"""
    q_layer_norm: bool = True
    """LayerNorm in the critics (ManiSkill's SAC default)"""
    num_q: int = 2
    """critics in the ensemble; above 2 the target takes the minimum of a random pair and the actor the
    ensemble mean (RLPD uses 10)"""
    demos: Optional[str] = None
    """ManiSkill trajectory file (collect_demos.py --obs-mode state) of this task and control mode, with
    rewards: loaded into a second replay store that every batch samples from"""
    demo_ratio: float = 0.5
    """fraction of every batch drawn from --demos (RLPD's symmetric sampling: 0.5); in [0, 1)"""
    init_from: Optional[str] = None
    """start from this checkpoint: a bc.py --policy gaussian one from state (state normalisation and
    actor; its hidden size is adopted) or a sac.py one (policy; critics and temperature too from a
    last.pt). The loaded policy is evaluated before any update (the curve's first point)"""
    init_log_std: Optional[float] = None
    """with --init-from: set the loaded actor's log-std to this for every input (a BC actor never learned
    its std; the std it happens to have decides how much exploration destroys), e.g. -3 (std 0.05)"""
    fixed_log_std: Optional[float] = None
    """keep the actor's log-std at this value for every input and never train it (loaded or fresh actor),
    e.g. -3 (std 0.05): the exploration noise of a BC-started actor stays what keeps its success, where
    the entropy term alone let it grow to ~1 (docs/finetune.md). Needs --no-autotune; replaces --init-log-std"""
    target_entropy: Optional[float] = None
    """the entropy --autotune steers the policy to (default -action_dim); lower keeps a loaded actor's
    exploration noise small"""
    critic_warmup_steps: int = 0
    """gradient steps that train only the critics before the first actor step"""
    bc_coef: float = 0.0
    """weight of a BC term ||mu(s) - a_demo||^2 on the demo rows of each batch in the actor loss (needs --demos)"""
    bc_decay_steps: int = 0
    """anneal --bc-coef linearly to 0 over this many actor steps (0: constant)"""
    torch_threads: Optional[int] = None
    """torch CPU threads (default: 1 on the CPU backend unless OMP_NUM_THREADS is set, torch's choice on GPU)"""
    log_freq: int = 5_000
    """log losses and training episode stats every this many env steps (each log reads the device once)"""
    compile: bool = False
    """torch.compile the update functions and the rollout policy (opt-in fast path)"""
    cudagraphs: bool = False
    """capture each whole gradient step (replay sampling, augmentation, critic, actor, target update) in one
    CUDA graph replayed without device syncs (lib/fast.CapturedStep), and the rollout policy with tensordict's
    CudaGraphModule; needs CUDA and the buffer on the GPU. Not yet run on a GPU"""
    capture_video: bool = False
    """save an mp4 of the first batch of final-evaluation episodes (videos/final_eval.mp4)"""
    track: bool = False
    """log to Weights & Biases (set WANDB_MODE=offline to log without a network)"""
    wandb_project: str = "maniskill-pixels"
    """W&B project"""
    exp_name: Optional[str] = None
    """run name prefix (default: the script name)"""
    runs_dir: str = "runs"
    """where run directories are created"""
    save_checkpoints: bool = True
    """write best.pt / last.pt (last.pt carries the training state for --resume)"""
    save_replay: bool = False
    """also write the replay buffer to replay.pt next to last.pt at every evaluation, so --resume
    continues with it; without it a resumed run refills the buffer from fresh interaction"""
    resume: Optional[str] = None
    """continue the run in this run directory from its last.pt, with the flags it was started with (a
    larger --total-timesteps extends it); metrics.csv and TensorBoard continue in place"""


# ----------------------------------------------------------------------------- networks
class StatePolicy(nn.Module):
    """A fixed StateNorm (identity, or a BC checkpoint's state selection and statistics) in front of the
    tanh-Gaussian actor: everything a checkpoint needs to act. The critics see the same StateNorm output."""

    def __init__(self, in_dim: int, action_dim: int, hidden_dim: int = 256, state_in_dim: Optional[int] = None):
        super().__init__()
        self.state_norm = StateNorm(state_in_dim or in_dim, in_dim)
        self.actor = Actor(in_dim, action_dim, hidden_dim)

    def deterministic(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor.deterministic(self.state_norm(obs))

    def explore(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor.sample(self.state_norm(obs))[0]


def upgrade_state_dict(sd: dict, in_dim: int) -> dict:
    """Checkpoints written before StatePolicy held the bare actor: the same actor behind an identity StateNorm."""
    if any(k.startswith("actor.") for k in sd):
        return sd
    return {
        "state_norm.keep": torch.arange(in_dim),
        "state_norm.mean": torch.zeros(in_dim),
        "state_norm.std": torch.ones(in_dim),
        **{f"actor.{k}": v for k, v in sd.items()},
    }


# ----------------------------------------------------------------------------- flags
def resolve_args(args: Args, backend: str) -> Args:
    """Check every numeric flag (one line, exit 2) and write the backend-dependent defaults back
    into args, so config.yaml and checkpoints record the values used."""
    check_positive(
        args,
        "num_envs",
        "num_eval_envs",
        "total_timesteps",
        "num_eval_episodes",
        "buffer_size",
        "batch_size",
        "utd",
        "n_step",
        "policy_frequency",
        "target_network_frequency",
        "log_freq",
        "hidden_dim",
        "max_episode_steps",
        "torch_threads",
        "policy_lr",
        "q_lr",
        "alpha_lr",
    )
    check_non_negative(args, "learning_starts", "eval_freq", "alpha")
    if args.autotune and args.alpha == 0:
        raise UserError("--alpha 0 needs --no-autotune (the learned temperature starts from --alpha, in log space)")
    check_unit_interval(args, "tau", low_open=True)
    check_unit_interval(args, "gamma")
    check_finetune_flags(args)
    check_fast_flags(args, backend)
    resolve_buffer_device(args.buffer_device, envs_lib.env_device(backend))  # auto|cpu|cuda, and cuda present
    args.env_id = envs_lib.resolve_env_id(args.env_id)
    args.num_envs = args.num_envs or (512 if backend == "gpu" else 2)
    args.num_eval_envs = args.num_eval_envs or (16 if backend == "gpu" else 2)
    args.buffer_size = args.buffer_size or (1_000_000 if backend == "gpu" else 200_000)
    return args


# ----------------------------------------------------------------------------- updates
# ----------------------------------------------------------------------------- main
def main(args: Args):
    args, backend, ckpt = start_run(args, "sac", resolve_args)
    num_envs, env_id, buffer_size = args.num_envs, args.env_id, args.buffer_size
    num_iterations = max(1, args.total_timesteps // num_envs)
    env_device = envs_lib.env_device(backend)
    start_step = ckpt["train_state"]["global_step"] if ckpt else 0

    env_kw = dict(control_mode=args.control_mode, sim_backend=backend, max_episode_steps=args.max_episode_steps)
    env_kw.update(sim_dr=args.sim_dr)  # the training level; eval envs add their variation
    free_before = measure_free(env_device)
    envs = envs_lib.make_env(env_id, num_envs, "state", partial_reset=args.partial_reset, **env_kw)
    obs, _ = envs.reset(seed=args.seed + start_step)  # a resumed run starts fresh episodes
    device = envs.device
    env_bytes = max(0, free_before - measure_free(env_device))
    buffer_device = resolve_buffer_device(args.buffer_device, device)
    obs_dim, action_dim = envs.obs_shapes["state"][0], envs.action_dim
    in_dim, init = obs_dim, None
    if args.init_from:  # the policy takes the checkpoint's architecture (written back into args)
        spec = dict(env_id=env_id, obs_mode="state", control_mode=args.control_mode, action_dim=action_dim)
        init = init_spec(args.init_from, "sac", dict(spec, obs_shapes=envs.obs_shapes))
        args.hidden_dim, in_dim = init["hidden_dim"], init["state_dim"]
    demo_rb = load_demo_replay(args.demos, envs, "state", args, device) if args.demos else None
    obs_specs = {"state": ((obs_dim,), torch.float32)}
    gap = final_obs_gap(args.partial_reset, args.bootstrap_at_done, envs.max_episode_steps)
    buffer_bytes = ReplayBuffer.nbytes(num_envs, buffer_size, obs_specs, action_dim, gap, args.n_step)
    train_bytes = 4 * args.batch_size * (4 * obs_dim + 16 * args.hidden_dim) + 64 * 2**20
    check_memory(
        [
            ("replay buffer", buffer_bytes, buffer_device),
            ("eval envs", eval_env_bytes(env_bytes, args.num_eval_envs, num_envs, env_device), env_device),
            ("training", train_bytes, device),
        ],
        env_bytes,
        buffer_size,
        buffer_bytes / buffer_size,
        held=[("demo store", demo_rb.nbytes, device)] if demo_rb else (),
    )

    run_log = RunLogger(
        args,
        "sac",
        env_id,
        args.seed,
        args.runs_dir,
        args.track,
        args.wandb_project,
        total_steps=num_iterations * num_envs,
        exp_name=args.exp_name,
        resume_dir=args.resume,
        resume_step=start_step,
    )
    eval_envs = envs_lib.make_env(
        env_id,
        args.num_eval_envs,
        "state",
        partial_reset=False,
        reconfigure=True,
        video_dir=run_log.video_dir if args.capture_video else None,
        variation=args.eval_variation,
        **env_kw,
    )
    rb = ReplayBuffer(num_envs, buffer_size, obs_specs, action_dim, buffer_device, gap, args.gamma, args.n_step)

    model_kwargs = dict(in_dim=in_dim, action_dim=action_dim, hidden_dim=args.hidden_dim, state_in_dim=obs_dim)
    policy = StatePolicy(**model_kwargs).to(device)
    if args.fixed_log_std is not None:  # again after --init-from's load below; a resumed run's weights hold it
        policy.actor.fix_log_std(args.fixed_log_std)
    policy.actor.set_action_bounds(envs.action_low, envs.action_high)
    qnets = QEnsemble(lambda: QNetwork(in_dim, action_dim, args.hidden_dim, args.q_layer_norm), args.num_q, device)
    upd = make_sac_updates(policy.actor, qnets, args, action_dim, device, encoder=policy.state_norm)
    explore = maybe_fast(policy.explore, args, tensordict_io=False)
    print(
        f"sac: {env_id} backend={backend} device={device} num_envs={num_envs} obs_dim={obs_dim} "
        f"action_dim={action_dim} buffer={buffer_size:,} ({rb.T} steps x {num_envs} envs) on {buffer_device} "
        f"batch={args.batch_size} utd={args.utd} n_step={args.n_step} iterations={num_iterations} "
        f"torch_threads={args.torch_threads}",
        flush=True,
    )

    updater = SacUpdater(upd, qnets, args, device, demos=demo_rb)
    replay_path = run_log.dir / "replay.pt"
    global_step = start_step

    def save(path, step, metrics, resumable):
        ts = None
        if resumable:
            if args.save_replay:  # before last.pt: a kill in between leaves a buffer one evaluation newer
                rb.save(replay_path, obs)
            ts = train_state(step, evaluator, **updater.state())
        save_checkpoint(
            path,
            script="sac",
            args=args,
            env=envs,
            model_kwargs=model_kwargs,
            state_dict=policy.state_dict(),
            step=step,
            extra=dict(eval=metrics),
            train_state=ts,
        )

    evaluator = Evaluator(run_log, eval_envs, policy.deterministic, args, save)
    if ckpt:  # the actor, critics, optimizers, counters
        ckpt["state_dict"] = upgrade_state_dict(ckpt["state_dict"], in_dim)
        updater.load_state(restore_common(ckpt, policy, evaluator))
        if not restore_replay(rb, replay_path, args.save_replay):
            updater.updates_from = start_step + args.learning_starts
    elif init:  # the starting policy's own success is the curve's first point
        loaded = load_init(init, policy, args.init_log_std)
        if args.fixed_log_std is not None:
            policy.actor.fix_log_std(args.fixed_log_std)
        loaded = " with its ".join(filter(None, (loaded, load_init_learner(init, updater))))
        print(f"sac: --init-from {args.init_from}: loaded the {loaded}", flush=True)
        evaluator.maybe_evaluate(0, force=True)
    if demo_rb is not None:
        print(
            f"sac: --demos {args.demos}: {demo_rb.num_episodes} episodes, {demo_rb.num_transitions:,} "
            f"transitions on {device}; {args.demo_ratio:.0%} of every batch",
            flush=True,
        )

    stats = EpisodeStats()
    sac_log = SacLog(run_log, args.log_freq, start_step, num_envs)
    for iteration in range(start_step // num_envs + 1, num_iterations + 1):
        global_step += num_envs
        t0 = time.time()
        with torch.no_grad():
            # uniform random actions only in a run's first --learning-starts steps: a run resumed later
            # than that acts with its policy, also while it refills an unsaved buffer
            random_phase = global_step <= args.learning_starts and not args.init_from
            action = envs.sample_actions() if random_phase else explore(obs)
        rb.add_obs(obs)
        next_obs, reward, terminated, truncated, info = envs.step(action)
        rb.add_step(
            action,
            reward,
            *bootstrap_flags(terminated, truncated, args.bootstrap_at_done),
            info.get("final_observation"),
        )
        stats.add(info)
        obs = next_obs
        sac_log.rollout_s += time.time() - t0

        # ---- updates (--utd gradient steps per env step), logging
        updater.maybe_update(rb, num_envs, global_step)
        sac_log.maybe_log(global_step, stats, updater, rb, force=iteration == num_iterations)

        # ---- evaluation + checkpoints (last.pt every eval, best.pt by eval success)
        evaluator.maybe_evaluate(global_step, force=iteration == num_iterations)

    evaluator.finish(global_step)
    return close_run(run_log, envs, eval_envs)


def load_policy(ckpt: dict, device: torch.device):
    """Rebuild the deterministic policy (tanh of the Gaussian mean) from a checkpoint (evaluate.py)."""
    mk = ckpt["model_kwargs"]
    policy = StatePolicy(**mk).to(device)
    policy.load_state_dict(upgrade_state_dict(ckpt["state_dict"], mk["in_dim"]))
    policy.eval()
    return policy.deterministic


if __name__ == "__main__":
    run(main, tyro.cli(Args))
