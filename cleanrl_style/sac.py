"""SAC from privileged state on ManiSkill3 tasks, CleanRL style. Docs: docs/sac.md

    python cleanrl_style/sac.py --env-id PickCube                              # GPU: 512 envs
    python cleanrl_style/sac.py --env-id PushCube --num-envs 2 --total-timesteps 50_000   # CPU

Reads top to bottom: Args, networks (tanh-Gaussian actor, twin-Q ensemble evaluated with vmap),
TD targets (pure functions, unit-tested with hand-computed numbers), the replay buffer (a ring
on the env's device that stores each observation once), the memory check, update functions,
main loop. sac_rgb.py imports the buffer, the targets, the actor head and the memory check
from here.

Bootstrapping: the target bootstraps from the real final observation (`info["final_observation"]`)
on truncation (time limit), never from a terminal state; with `--bootstrap-at-done always` (default)
ManiSkill's success terminations count as truncations (common.bootstrap_flags explains why).
`--n-step k` sums k discounted rewards and stops early at the end of an episode.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Literal, Optional

import torch
import torch.nn as nn
import tyro
from tensordict import TensorDict

from cleanrl_style import common


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
    """evaluate every this many env steps (0 = only at the end)"""
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
    max_episode_steps: Optional[int] = None
    """override the task's episode length"""
    buffer_size: Optional[int] = None
    """replay capacity in transitions, summed over envs (default: 1_000_000 on GPU, 200_000 on CPU)"""
    buffer_device: str = "auto"
    """where the replay buffer lives: auto (the env's device), cuda or cpu"""
    batch_size: int = 1024
    """transitions per gradient step"""
    learning_starts: int = 4_000
    """env steps of uniform random actions before the first gradient step"""
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
    """entropy temperature (initial value with --autotune)"""
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
    torch_threads: Optional[int] = None
    """torch CPU threads (default: 1 on the CPU backend unless OMP_NUM_THREADS is set, torch's choice on GPU)"""
    log_freq: int = 5_000
    """log losses and training episode stats every this many env steps (each log reads the device once)"""
    compile: bool = False
    """torch.compile the update functions and the rollout policy (opt-in fast path)"""
    cudagraphs: bool = False
    """capture the update functions and the rollout policy in CUDA graphs (tensordict CudaGraphModule; needs CUDA)"""
    capture_video: bool = False
    """save an mp4 of the final evaluation episodes"""
    track: bool = False
    """log to Weights & Biases (set WANDB_MODE=offline to log without a network)"""
    wandb_project: str = "maniskill-pixels"
    """W&B project"""
    exp_name: Optional[str] = None
    """run name prefix (default: the script name)"""
    runs_dir: str = "runs"
    """where run directories are created"""
    save_checkpoints: bool = True
    """write best.pt / last.pt"""


# ----------------------------------------------------------------------------- networks
LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


def mlp(inp: int, hidden: int, out: int, layers: int = 3, layer_norm: bool = False) -> nn.Sequential:
    mods: list[nn.Module] = []
    for i in range(layers):
        mods.append(nn.Linear(inp if i == 0 else hidden, hidden))
        if layer_norm:
            mods.append(nn.LayerNorm(hidden))
        mods.append(nn.ReLU())
    mods.append(nn.Linear(hidden, out))
    return nn.Sequential(*mods)


class Actor(nn.Module):
    """Tanh-squashed Gaussian policy over a feature vector (state, or image features + state).
    The action bounds are buffers, so they travel in the state dict and the checkpoint."""

    def __init__(self, in_dim: int, action_dim: int, hidden_dim: int = 256):
        super().__init__()
        self.net = mlp(in_dim, hidden_dim, 2 * action_dim)
        self.register_buffer("action_scale", torch.ones(action_dim))
        self.register_buffer("action_bias", torch.zeros(action_dim))

    def set_action_bounds(self, low: torch.Tensor, high: torch.Tensor) -> "Actor":
        self.action_scale.copy_((high - low) / 2)
        self.action_bias.copy_((high + low) / 2)
        return self

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.net(x).chunk(2, dim=-1)
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (torch.tanh(log_std) + 1)
        return mean, log_std

    def sample(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterized action in the env's bounds and its log-probability (B,)."""
        mean, log_std = self(x)
        std = log_std.exp()
        u = mean + std * torch.randn_like(mean)
        y = torch.tanh(u)
        # Gaussian log-density of u, minus the log-Jacobian of a = scale * tanh(u) + bias
        log_prob = (-0.5 * ((u - mean) / std).pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_prob = log_prob - torch.log(self.action_scale * (1 - y.pow(2)) + 1e-6).sum(-1)
        return y * self.action_scale + self.action_bias, log_prob

    def deterministic(self, x: torch.Tensor) -> torch.Tensor:
        mean, _ = self(x)
        return torch.tanh(mean) * self.action_scale + self.action_bias


class QNetwork(nn.Module):
    def __init__(self, in_dim: int, action_dim: int, hidden_dim: int = 256, layer_norm: bool = True):
        super().__init__()
        self.net = mlp(in_dim + action_dim, hidden_dim, 1, layer_norm=layer_norm)

    def forward(self, x: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, action], dim=-1)).squeeze(-1)


class QEnsemble:
    """num_q critics with stacked parameters, evaluated in one call with `torch.vmap` over
    `torch.func.functional_call`, plus a target copy updated in place with a fused `lerp_`
    (LeanRL style: no Python loop over critics, nothing that reads the device).

        ens.q(x, a)          # (num_q, B), gradients reach the critics
        ens.q_frozen(x, a)   # same values, no gradients into the critics (actor loss)
        ens.q_target(x, a)   # target critics
    """

    def __init__(self, make: Callable[[], nn.Module], num_q: int, device: torch.device):
        stacked, _ = torch.func.stack_module_state([make().to(device) for _ in range(num_q)])
        self.params = {k: nn.Parameter(v.detach().clone()) for k, v in stacked.items()}
        self.target = {k: v.detach().clone() for k, v in self.params.items()}
        self.module = make().to("meta")  # a shell: only its forward is used, with the stacked params
        self._vmapped = torch.vmap(self._one, (0, None, None))

    def _one(self, params: dict, x: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(self.module, params, (x, action))

    def q(self, x: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self._vmapped(self.params, x, action)

    def q_frozen(self, x: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self._vmapped({k: v.detach() for k, v in self.params.items()}, x, action)

    def q_target(self, x: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self._vmapped(self.target, x, action)

    def parameters(self) -> list:
        return list(self.params.values())

    @torch.no_grad()
    def update_target(self, tau: float) -> None:
        torch._foreach_lerp_(list(self.target.values()), [p.detach() for p in self.params.values()], tau)


# ----------------------------------------------------------------------------- TD targets (pure)
def nstep_return(rewards: torch.Tensor, terminated: torch.Tensor, ended: torch.Tensor,
                 gamma: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """n-step return of a window of consecutive steps of one env, stopping at the first episode end.

    rewards, terminated, ended: (B, n) for steps t..t+n-1; `ended` = terminated | truncated.
    Returns (G, discount, k), each (B,):
      G        = sum_{j<=k} gamma^j r_{t+j}, where k is the first step in the window whose episode
                 ended (n-1 if none did);
      discount = gamma^(k+1) if the window ends without termination (bootstrap: truncation or no end),
                 0 if step k terminated (no bootstrap);
      k        = the step whose next observation is bootstrapped from (the real final observation
                 of the episode when step k was truncated).
    """
    b, n = rewards.shape
    ended_f = ended.float()
    # alive_j: no episode end strictly before step j of the window
    alive = torch.cat([torch.ones_like(ended_f[:, :1]), 1 - ended_f[:, :-1].cummax(dim=1).values], dim=1)
    powers = gamma ** torch.arange(n, device=rewards.device, dtype=rewards.dtype)
    g = (rewards * alive * powers).sum(1)
    k = (alive.sum(1) - 1).long()  # last alive step = first ended step, or n-1
    term_k = terminated.gather(1, k[:, None]).squeeze(1) & ended.gather(1, k[:, None]).squeeze(1)
    discount = torch.where(term_k, torch.zeros_like(g), gamma ** (k.to(rewards.dtype) + 1))
    return g, discount, k


def soft_td_target(returns: torch.Tensor, discount: torch.Tensor, next_q: torch.Tensor,
                   next_log_prob: torch.Tensor, alpha) -> torch.Tensor:
    """SAC's target: G + discount * (min_i Q_target_i(s', a') - alpha * log pi(a'|s')), a' ~ pi(s').
    discount is 0 after a termination, so nothing is bootstrapped there."""
    return returns + discount * (next_q - alpha * next_log_prob)


# ----------------------------------------------------------------------------- replay buffer
def _as_obs_dict(obs) -> dict:
    return obs if isinstance(obs, dict) else {"state": obs}


class ReplayBuffer:
    """Time-major ring of transitions for N parallel envs, stored on `device` (tensordict storage).

    Each observation is stored once: the observation that follows step t of env e is simply the
    one stored for step t+1 of env e. Only where an episode was truncated (time limit) does the
    next observation differ from the next stored one (the env has already reset): that real final
    observation goes to a small side ring of K rows per env, and step t records where it is
    (`next_row`). A truncation happens at most once per `max_episode_steps` steps per env, so
    K = T // max_episode_steps + 3 rows can never be overwritten while a step that points to
    them is still in the ring. After a termination nothing is bootstrapped, so nothing is stored.
    Where success terminations also bootstrap (`final_obs_gap`), pass max_episode_steps=None:
    any step may end an episode, so the side ring gets T rows.

    Layout: frames[key] has (T + K) * N rows (row r of env e at r * N + e; rows T.. are the side
    ring), steps[...] has T * N rows. Observation dtypes are kept (uint8 images stay uint8).
    """

    def __init__(self, num_envs: int, capacity: int, obs_specs: dict, action_dim: int, device,
                 max_episode_steps: Optional[int], gamma: float, n_step: int = 1):
        self.N, self.n_step, self.gamma = num_envs, n_step, gamma
        self.T, self.K = self.rows(num_envs, capacity, max_episode_steps, n_step)
        self.device = torch.device(device)
        self.obs_specs = {k: (tuple(s), d) for k, (s, d) in obs_specs.items()}
        rows = (self.T + self.K) * num_envs
        self.frames = TensorDict({k: torch.zeros((rows, *s), dtype=d, device=self.device)
                                  for k, (s, d) in self.obs_specs.items()}, batch_size=[rows], device=self.device)
        n = self.T * num_envs
        self.steps = TensorDict(action=torch.zeros((n, action_dim), device=self.device),
                                reward=torch.zeros(n, device=self.device),
                                terminated=torch.zeros(n, dtype=torch.bool, device=self.device),
                                ended=torch.zeros(n, dtype=torch.bool, device=self.device),
                                next_row=torch.zeros(n, dtype=torch.int32, device=self.device),
                                batch_size=[n], device=self.device)
        self.env_ids = torch.arange(num_envs, device=self.device)
        self.final_ptr = torch.zeros(num_envs, dtype=torch.long, device=self.device)
        self.ptr = 0  # next step row (host int: all envs advance together, so no device reads)
        self.size = 0  # step rows written, <= T

    @staticmethod
    def rows(num_envs: int, capacity: int, max_episode_steps: Optional[int], n_step: int = 1) -> tuple[int, int]:
        """(T, K): step rows per env and side-ring rows per env for a capacity in transitions."""
        t = max(math.ceil(capacity / num_envs), n_step + 2)
        k = t // max_episode_steps + 3 if max_episode_steps else t
        return t, min(k, t)

    @staticmethod
    def nbytes(num_envs: int, capacity: int, obs_specs: dict, action_dim: int,
               max_episode_steps: Optional[int], n_step: int = 1) -> int:
        """Bytes the buffer will allocate (computed before allocating, for the memory check)."""
        t, k = ReplayBuffer.rows(num_envs, capacity, max_episode_steps, n_step)
        obs_bytes = sum(math.prod(s) * torch.empty((), dtype=d).element_size() for s, d in obs_specs.values())
        step_bytes = 4 * action_dim + 4 + 1 + 1 + 4
        return (t + k) * num_envs * obs_bytes + t * num_envs * step_bytes + 8 * num_envs

    @property
    def num_transitions(self) -> int:
        """Transitions that can be sampled now (their n-step window and next observation are stored)."""
        return max(self.size - self.n_step, 0) * self.N

    def add(self, obs, action: torch.Tensor, reward: torch.Tensor, terminated: torch.Tensor,
            truncated: torch.Tensor, final_obs=None) -> None:
        """Store one step of all N envs: `obs` is the observation the action was taken in;
        `final_obs` is `info["final_observation"]` (needed whenever an env was truncated)."""
        self.add_obs(obs)
        self.add_step(action, reward, terminated, truncated, final_obs)

    def add_obs(self, obs) -> None:
        """First half of `add`: the observation the next action is taken in. The training loops
        call it before `env.step`, so the buffer copies the observation before the env can reuse
        its memory."""
        obs, N, p = _as_obs_dict(obs), self.N, self.ptr
        for k in self.obs_specs:
            self.frames[k][p * N:(p + 1) * N] = obs[k].to(self.device, non_blocking=True)

    def add_step(self, action: torch.Tensor, reward: torch.Tensor, terminated: torch.Tensor,
                 truncated: torch.Tensor, final_obs=None) -> None:
        """Second half of `add`: what `env.step` returned for the observation stored by `add_obs`."""
        dev, p, N, T = self.device, self.ptr, self.N, self.T
        terminated, truncated = terminated.to(dev), truncated.to(dev)
        bootstrap_final = truncated & ~terminated
        next_row = torch.where(bootstrap_final, T + self.final_ptr, torch.full_like(self.final_ptr, (p + 1) % T))
        sl = slice(p * N, (p + 1) * N)
        self.steps["action"][sl] = action.to(dev, non_blocking=True)
        self.steps["reward"][sl] = reward.to(dev, non_blocking=True)
        self.steps["terminated"][sl] = terminated
        self.steps["ended"][sl] = terminated | truncated
        self.steps["next_row"][sl] = next_row.to(torch.int32)
        if final_obs is not None:
            # every env writes its final obs into its next free side row; the pointer only advances
            # where the row is needed, so the other writes land in a free row (no masked indexing,
            # hence no host sync on the GPU)
            final_obs = _as_obs_dict(final_obs)
            idx = (T + self.final_ptr) * N + self.env_ids
            for k in self.obs_specs:
                self.frames[k].index_copy_(0, idx, final_obs[k].to(dev, non_blocking=True))
            self.final_ptr = (self.final_ptr + bootstrap_final.long()) % self.K
        self.ptr = (p + 1) % T
        self.size = min(self.size + 1, T)

    def sample(self, batch_size: int, generator: Optional[torch.Generator] = None) -> TensorDict:
        """Uniform over the transitions whose n-step window and next observation are stored."""
        valid = self.size - self.n_step
        if valid <= 0:
            raise RuntimeError(f"replay buffer has {self.size} steps per env; sampling needs more than n_step={self.n_step}")
        oldest = (self.ptr - self.size) % self.T
        age = torch.randint(valid, (batch_size,), device=self.device, generator=generator)
        env = torch.randint(self.N, (batch_size,), device=self.device, generator=generator)
        return self.gather((oldest + age) % self.T, env)

    def gather(self, step_rows: torch.Tensor, env_ids: torch.Tensor) -> TensorDict:
        """The transitions starting at (step row, env): obs, action, n-step reward, discount and
        the observation to bootstrap from (next_obs)."""
        N, T = self.N, self.T
        window = (step_rows[:, None] + torch.arange(self.n_step, device=self.device)) % T  # (B, n)
        flat = window * N + env_ids[:, None]
        g, discount, k = nstep_return(self.steps["reward"][flat], self.steps["terminated"][flat],
                                      self.steps["ended"][flat], self.gamma)
        last = window.gather(1, k[:, None]).squeeze(1)
        boot_row = self.steps["next_row"][last * N + env_ids].long()
        first = step_rows * N + env_ids
        return TensorDict(obs=self.frames[first], next_obs=self.frames[boot_row * N + env_ids],
                          action=self.steps["action"][first], reward=g, discount=discount,
                          batch_size=[step_rows.shape[0]], device=self.device)


def final_obs_gap(partial_reset: bool, bootstrap_at_done: str, max_episode_steps: Optional[int]) -> Optional[int]:
    """Fewest env steps between two episode ends whose final observation the buffer must keep:
    the time limit when only truncations bootstrap; None (any step) when partial resets end
    episodes at success and --bootstrap-at-done always bootstraps from those too."""
    return None if partial_reset and bootstrap_at_done == "always" else max_episode_steps


# ----------------------------------------------------------------------------- memory check
GB = 1e9


def host_available_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import psutil

    return int(psutil.virtual_memory().available)


def free_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    return host_available_bytes()


def check_memory(to_allocate: list, env_bytes: int, buffer_size: int, bytes_per_transition: float,
                 headroom: float = 0.9) -> None:
    """Print the memory plan and raise UserError (one line) if what is still to be allocated does
    not fit into what is free now. to_allocate: [(label, bytes, device)]; the replay buffer's label
    is "replay buffer". The training envs already exist, so their memory (env_bytes, measured at
    creation) is already taken and only reported."""
    where = lambda d: "GPU" if d.type == "cuda" else "host RAM"  # noqa: E731
    pools: dict[str, list] = {}
    for label, nbytes, dev in to_allocate:
        pools.setdefault(dev.type, [dev, 0, 0])
        pools[dev.type][1] += nbytes
        if label == "replay buffer":
            pools[dev.type][2] = nbytes
    free = {t: free_bytes(dev) for t, (dev, _, _) in pools.items()}
    plan = " + ".join(f"{label} {nbytes / GB:.2f} GB ({where(dev)})" for label, nbytes, dev in to_allocate)
    print(f"memory: to allocate {plan}; training envs ~{env_bytes / GB:.2f} GB (measured at creation); free now: "
          + ", ".join(f"{where(pools[t][0])} {free[t] / GB:.1f} GB" for t in pools), flush=True)
    for t, (dev, nbytes, buf) in pools.items():
        if nbytes <= headroom * free[t]:
            continue
        fits = int(max(0.0, headroom * free[t] - (nbytes - buf)) / bytes_per_transition) if buf else 0
        hint = (f"use a smaller --buffer-size (~{_round_down(fits):,} would fit) or fewer --num-envs" if fits > 0
                else "use a smaller --buffer-size, --batch-size or --num-envs")
        raise common.UserError(f"not enough {where(dev)} for --buffer-size {buffer_size:,}: needs {nbytes / GB:.1f} GB, "
                               f"only {free[t] / GB:.1f} GB free; {hint}")


def _round_down(n: int) -> int:
    """Down to two significant digits: 398_765 -> 390_000."""
    if n < 100:
        return n
    p = 10 ** (len(str(n)) - 2)
    return (n // p) * p


def eval_env_bytes(train_env_bytes: int, num_eval_envs: int, num_envs: int, device: torch.device) -> int:
    """Estimate for the eval envs from what the training envs took: scaled by the env count, but
    at least 0.5 GB on the GPU, where every ManiSkill GPU sim pays a fixed overhead."""
    scaled = train_env_bytes * num_eval_envs // max(num_envs, 1)
    return max(scaled, 500_000_000) if device.type == "cuda" else scaled


def measure_free(device: torch.device) -> int:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return free_bytes(device)


def resolve_buffer_device(name: str, env_device: torch.device) -> torch.device:
    """auto -> the env's device (checked by check_sac_args: auto, cpu or cuda)."""
    if name == "auto":
        return env_device
    return torch.device("cuda", torch.cuda.current_device()) if name == "cuda" else torch.device("cpu")


def check_sac_args(args, backend: str) -> None:
    """Flag values and combinations shared by sac.py and sac_rgb.py (one-line errors)."""
    if args.cudagraphs and backend != "gpu":
        raise common.UserError("--cudagraphs needs CUDA (GPU sim backend); use --compile on the CPU")
    for name in ("batch_size", "n_step", "policy_frequency", "target_network_frequency", "log_freq"):
        if getattr(args, name) < 1:
            raise common.UserError(f"--{name.replace('_', '-')} must be >= 1 (got {getattr(args, name)})")
    if args.buffer_size is not None and args.buffer_size < 1:
        raise common.UserError(f"--buffer-size must be >= 1 (got {args.buffer_size})")
    if args.buffer_device not in ("auto", "cpu", "cuda"):
        raise common.UserError(f"--buffer-device must be auto, cuda or cpu (got '{args.buffer_device}')")
    if args.buffer_device == "cuda" and not torch.cuda.is_available():
        raise common.UserError("--buffer-device cuda needs CUDA; use --buffer-device cpu")
    if args.utd <= 0:
        raise common.UserError(f"--utd must be > 0 (got {args.utd})")
    if not 0 < args.tau <= 1:
        raise common.UserError(f"--tau must be in (0, 1] (got {args.tau})")
    if not 0 <= args.gamma <= 1:
        raise common.UserError(f"--gamma must be in [0, 1] (got {args.gamma})")


def set_torch_threads(threads: Optional[int], backend: str) -> None:
    """--torch-threads N, or the project's default (common.configure_torch_threads: one thread on
    the CPU backend, where OpenMP threads spinning against the sim processes made one critic update
    5-35x slower on a shared 2-core machine: 19 ms with 1 thread vs 85-690 ms with 2)."""
    if threads is None:
        common.configure_torch_threads(backend)
        return
    if threads < 1:
        raise common.UserError(f"--torch-threads must be >= 1 (got {threads})")
    torch.set_num_threads(threads)


def maybe_fast(fn, args, tensordict_io: bool = True):
    """The opt-in fast paths: torch.compile and/or a CUDA graph around `fn` (each works alone)."""
    if args.compile:
        fn = torch.compile(fn)
    if args.cudagraphs:
        from tensordict.nn import CudaGraphModule

        fn = CudaGraphModule(fn, in_keys=[], out_keys=[]) if tensordict_io else CudaGraphModule(fn)
    return fn


# ----------------------------------------------------------------------------- updates
def make_updates(actor: Actor, qnets: QEnsemble, args, action_dim: int, device: torch.device):
    """The SAC update steps as functions of a replay batch (TensorDict in, TensorDict of detached
    logs out), so that they can be compiled or captured in a CUDA graph as they are."""
    capturable = args.cudagraphs and not args.compile
    q_optimizer = torch.optim.Adam(qnets.parameters(), lr=args.q_lr, capturable=capturable)
    actor_optimizer = torch.optim.Adam(actor.parameters(), lr=args.policy_lr, capturable=capturable)
    log_alpha = torch.full((1,), math.log(args.alpha), device=device, requires_grad=True)
    alpha = log_alpha.detach().exp()  # updated in place, so graphs see the new value
    a_optimizer = torch.optim.Adam([log_alpha], lr=args.alpha_lr, capturable=capturable)
    target_entropy = -float(action_dim)

    def update_critic(batch: TensorDict) -> TensorDict:
        obs, next_obs = batch["obs"]["state"], batch["next_obs"]["state"]
        with torch.no_grad():
            next_action, next_log_prob = actor.sample(next_obs)
            next_q = qnets.q_target(next_obs, next_action).min(0).values
            target = soft_td_target(batch["reward"], batch["discount"], next_q, next_log_prob, alpha)
        q = qnets.q(obs, batch["action"])  # (2, B)
        q_loss = (q - target).pow(2).mean(1)
        q_optimizer.zero_grad()
        q_loss.sum().backward()
        q_optimizer.step()
        q = q.detach()
        return TensorDict(qf1_loss=q_loss[0].detach(), qf2_loss=q_loss[1].detach(),
                          qf1_values=q[0].mean(), qf2_values=q[1].mean())

    def update_actor(batch: TensorDict) -> TensorDict:
        obs = batch["obs"]["state"]
        action, log_prob = actor.sample(obs)
        q = qnets.q_frozen(obs, action).min(0).values
        actor_loss = (alpha * log_prob - q).mean()
        actor_optimizer.zero_grad()
        actor_loss.backward()
        actor_optimizer.step()
        alpha_loss = torch.zeros((), device=device)
        if args.autotune:
            alpha_loss = (-log_alpha.exp() * (log_prob.detach() + target_entropy)).mean()
            a_optimizer.zero_grad()
            alpha_loss.backward()
            a_optimizer.step()
            alpha.copy_(log_alpha.detach().exp())
        return TensorDict(actor_loss=actor_loss.detach(), alpha=alpha.detach()[0], alpha_loss=alpha_loss.detach())

    return update_critic, update_actor


def load_policy(ckpt: dict, device: torch.device):
    """Rebuild the deterministic policy (tanh of the Gaussian mean) from a checkpoint (evaluate.py)."""
    actor = Actor(**ckpt["model_kwargs"]).to(device)
    actor.load_state_dict(ckpt["state_dict"])
    actor.eval()
    return actor.deterministic


# ----------------------------------------------------------------------------- main
def main(args: Args):
    backend = common.resolve_sim_backend(args.sim_backend)
    check_sac_args(args, backend)
    num_envs = args.num_envs or (512 if backend == "gpu" else 2)
    num_eval_envs = args.num_eval_envs or (16 if backend == "gpu" else 2)
    buffer_size = args.buffer_size or (1_000_000 if backend == "gpu" else 200_000)
    env_id = common.resolve_env_id(args.env_id)
    num_iterations = max(1, args.total_timesteps // num_envs)
    set_torch_threads(args.torch_threads, backend)
    common.seed_everything(args.seed)

    env_kw = dict(control_mode=args.control_mode, sim_backend=backend, max_episode_steps=args.max_episode_steps)
    env_device = torch.device("cuda", torch.cuda.current_device()) if backend == "gpu" else torch.device("cpu")
    free_before = measure_free(env_device)
    envs = common.make_env(env_id, num_envs, "state", partial_reset=args.partial_reset, **env_kw)
    obs, _ = envs.reset(seed=args.seed)
    device = envs.device
    env_bytes = max(0, free_before - measure_free(env_device))
    buffer_device = resolve_buffer_device(args.buffer_device, device)
    obs_dim, action_dim = envs.obs_shapes["state"][0], envs.action_dim
    obs_specs = {"state": ((obs_dim,), torch.float32)}
    gap = final_obs_gap(args.partial_reset, args.bootstrap_at_done, envs.max_episode_steps)
    buffer_bytes = ReplayBuffer.nbytes(num_envs, buffer_size, obs_specs, action_dim, gap, args.n_step)
    train_bytes = 4 * args.batch_size * (4 * obs_dim + 16 * args.hidden_dim) + 64 * 2**20
    check_memory([("replay buffer", buffer_bytes, buffer_device),
                  ("eval envs", eval_env_bytes(env_bytes, num_eval_envs, num_envs, env_device), env_device),
                  ("training", train_bytes, device)], env_bytes, buffer_size, buffer_bytes / buffer_size)

    run = common.RunLogger(args, "sac", env_id, args.seed, args.runs_dir, args.track, args.wandb_project,
                           total_steps=num_iterations * num_envs, exp_name=args.exp_name)
    eval_envs = common.make_env(env_id, num_eval_envs, "state", partial_reset=False, reconfiguration_freq=1,
                                video_dir=run.video_dir if args.capture_video else None, **env_kw)
    rb = ReplayBuffer(num_envs, buffer_size, obs_specs, action_dim, buffer_device, gap, args.gamma, args.n_step)

    model_kwargs = dict(in_dim=obs_dim, action_dim=action_dim, hidden_dim=args.hidden_dim)
    actor = Actor(**model_kwargs).to(device).set_action_bounds(envs.action_low, envs.action_high)
    qnets = QEnsemble(lambda: QNetwork(obs_dim, action_dim, args.hidden_dim, args.q_layer_norm), 2, device)
    update_critic, update_actor = make_updates(actor, qnets, args, action_dim, device)
    update_critic, update_actor = maybe_fast(update_critic, args), maybe_fast(update_actor, args)

    def explore(o):
        return actor.sample(o)[0]

    explore = maybe_fast(explore, args, tensordict_io=False)
    print(f"sac: {env_id} backend={backend} device={device} num_envs={num_envs} obs_dim={obs_dim} "
          f"action_dim={action_dim} buffer={buffer_size:,} ({rb.T} steps x {num_envs} envs) on {buffer_device} "
          f"batch={args.batch_size} utd={args.utd} n_step={args.n_step} iterations={num_iterations} "
          f"torch_threads={torch.get_num_threads()}", flush=True)

    evaluator = common.Evaluator(run, eval_envs, actor.deterministic, args, lambda: dict(
        script="sac", args=args, env=envs, model_kwargs=model_kwargs, state_dict=actor.state_dict()))
    global_step, last_log_step = 0, 0
    num_updates, grad_budget = 0, 0.0
    critic_logs: Optional[TensorDict] = None
    actor_logs: Optional[TensorDict] = None
    stats = common.EpisodeStats()
    rollout_s = update_s = 0.0
    start = time.time()
    for iteration in range(1, num_iterations + 1):
        global_step += num_envs
        log_now = global_step - last_log_step >= args.log_freq or iteration == num_iterations
        t0 = time.time()
        with torch.no_grad():
            action = envs.sample_actions() if global_step <= args.learning_starts else explore(obs)
        rb.add_obs(obs)
        next_obs, reward, terminated, truncated, info = envs.step(action)
        rb.add_step(action, reward, *common.bootstrap_flags(terminated, truncated, args.bootstrap_at_done),
                    info.get("final_observation"))
        stats.add(info)
        obs = next_obs
        rollout_s += time.time() - t0

        if global_step > args.learning_starts and rb.num_transitions > 0:
            grad_budget += args.utd * num_envs
            n_updates, grad_budget = int(grad_budget), grad_budget - int(grad_budget)
            if log_now and device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.time()
            for _ in range(n_updates):
                batch = rb.sample(args.batch_size).to(device, non_blocking=True)
                critic_logs = update_critic(batch)
                num_updates += 1
                if num_updates % args.policy_frequency == 0:
                    actor_logs = update_actor(batch)
                if num_updates % args.target_network_frequency == 0:
                    qnets.update_target(args.tau)
            if log_now and device.type == "cuda":
                torch.cuda.synchronize()
            update_s += time.time() - t0

        if log_now:
            iters = max(1, (global_step - last_log_step) // num_envs)
            logs = stats.read()
            for td in (critic_logs, actor_logs):
                if td is not None:
                    logs.update({f"losses/{k}": float(v) for k, v in td.items()})
            logs.update({"time/sps": global_step / (time.time() - start), "time/update_s": update_s / iters,
                         "time/rollout_s": rollout_s / iters,
                         "time/env_fps": iters * num_envs / max(rollout_s, 1e-9),
                         "charts/buffer_transitions": rb.num_transitions})
            run.log(global_step, logs)
            run.progress(global_step, sps=f"{logs['time/sps']:.0f}",
                         **({"train_success": logs["charts/success_once"]} if "charts/success_once" in logs else {}))
            last_log_step, rollout_s, update_s = global_step, 0.0, 0.0

        evaluator.maybe_evaluate(global_step, force=iteration == num_iterations)

    evaluator.finish(global_step)
    run.close()
    print(f"run dir: {run.dir}")
    envs.close()
    eval_envs.close()
    return run.dir


if __name__ == "__main__":
    common.run(main, tyro.cli(Args))
