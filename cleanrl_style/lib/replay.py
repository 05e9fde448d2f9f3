"""Replay: the device-resident replay buffer of the SAC scripts and the memory plan that sizes it.

The buffer is a time-major ring that stores each observation once (see ReplayBuffer); images stay
uint8. `check_memory` prints what is about to be allocated and refuses, in one line, what does not fit.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from tensordict import TensorDict

from cleanrl_style.lib.returns import nstep_return
from cleanrl_style.lib.runs import UserError


def to_device(x, device):
    """`x` (tensor or TensorDict) on `device`. Asynchronous only from host to CUDA, where the copy is
    ordered before every later kernel on the stream. A copy that lands in host memory is always
    synchronous: a non-blocking device-to-host copy returns before its data has arrived, so the buffer
    (or a CPU learner reading a batch) would see stale or half-written frames, actions and rewards."""
    device = torch.device(device)
    return x.to(device, non_blocking=device.type == "cuda" and x.device.type == "cpu")


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

    def __init__(
        self,
        num_envs: int,
        capacity: int,
        obs_specs: dict,
        action_dim: int,
        device,
        max_episode_steps: Optional[int],
        gamma: float,
        n_step: int = 1,
    ):
        self.N, self.n_step, self.gamma = num_envs, n_step, gamma
        self.T, self.K = self.rows(num_envs, capacity, max_episode_steps, n_step)
        self.device = torch.device(device)
        self.obs_specs = {k: (tuple(s), d) for k, (s, d) in obs_specs.items()}
        rows = (self.T + self.K) * num_envs
        self.frames = TensorDict(
            {k: torch.zeros((rows, *s), dtype=d, device=self.device) for k, (s, d) in self.obs_specs.items()},
            batch_size=[rows],
            device=self.device,
        )
        n = self.T * num_envs
        self.steps = TensorDict(
            action=torch.zeros((n, action_dim), device=self.device),
            reward=torch.zeros(n, device=self.device),
            terminated=torch.zeros(n, dtype=torch.bool, device=self.device),
            ended=torch.zeros(n, dtype=torch.bool, device=self.device),
            next_row=torch.zeros(n, dtype=torch.int32, device=self.device),
            batch_size=[n],
            device=self.device,
        )
        self.env_ids = torch.arange(num_envs, device=self.device)
        self.final_ptr = torch.zeros(num_envs, dtype=torch.long, device=self.device)
        self.ptr = 0  # next step row (host int: all envs advance together, so no device reads)
        self.size = 0  # step rows written, <= T
        # the same two counters on the device, written (never read back) after every step: sample() draws
        # from them, so a sampling step captured once in a CUDA graph sees the buffer grow
        self._ptr_t = torch.zeros((), dtype=torch.long, device=self.device)
        self._size_t = torch.zeros((), dtype=torch.long, device=self.device)

    @staticmethod
    def rows(num_envs: int, capacity: int, max_episode_steps: Optional[int], n_step: int = 1) -> tuple[int, int]:
        """(T, K): step rows per env and side-ring rows per env for a capacity in transitions."""
        t = max(math.ceil(capacity / num_envs), n_step + 2)
        k = t // max_episode_steps + 3 if max_episode_steps else t
        return t, min(k, t)

    @staticmethod
    def nbytes(
        num_envs: int,
        capacity: int,
        obs_specs: dict,
        action_dim: int,
        max_episode_steps: Optional[int],
        n_step: int = 1,
    ) -> int:
        """Bytes the buffer will allocate (computed before allocating, for the memory check)."""
        t, k = ReplayBuffer.rows(num_envs, capacity, max_episode_steps, n_step)
        obs_bytes = sum(math.prod(s) * torch.empty((), dtype=d).element_size() for s, d in obs_specs.values())
        step_bytes = 4 * action_dim + 4 + 1 + 1 + 4
        return (t + k) * num_envs * obs_bytes + t * num_envs * step_bytes + 8 * num_envs

    @property
    def num_transitions(self) -> int:
        """Transitions that can be sampled now (their n-step window and next observation are stored)."""
        return max(self.size - self.n_step, 0) * self.N

    def add(
        self,
        obs,
        action: torch.Tensor,
        reward: torch.Tensor,
        terminated: torch.Tensor,
        truncated: torch.Tensor,
        final_obs=None,
    ) -> None:
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
            self.frames[k][p * N : (p + 1) * N] = to_device(obs[k], self.device)

    def add_step(
        self,
        action: torch.Tensor,
        reward: torch.Tensor,
        terminated: torch.Tensor,
        truncated: torch.Tensor,
        final_obs=None,
    ) -> None:
        """Second half of `add`: what `env.step` returned for the observation stored by `add_obs`."""
        dev, p, N, T = self.device, self.ptr, self.N, self.T
        terminated, truncated = terminated.to(dev), truncated.to(dev)
        bootstrap_final = truncated & ~terminated
        next_row = torch.where(bootstrap_final, T + self.final_ptr, torch.full_like(self.final_ptr, (p + 1) % T))
        sl = slice(p * N, (p + 1) * N)
        self.steps["action"][sl] = to_device(action, dev)
        self.steps["reward"][sl] = to_device(reward, dev)
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
                self.frames[k].index_copy_(0, idx, to_device(final_obs[k], dev))
            self.final_ptr = (self.final_ptr + bootstrap_final.long()) % self.K
        self.ptr = (p + 1) % T
        self.size = min(self.size + 1, T)
        self._ptr_t.fill_(self.ptr)
        self._size_t.fill_(self.size)

    def sample(self, batch_size: int, generator: Optional[torch.Generator] = None) -> TensorDict:
        """Uniform over the transitions whose n-step window and next observation are stored. Computed
        from the device-side counters, with no host value that changes between calls, so the same
        kernels sample correctly at every replay of a captured CUDA graph (--cudagraphs)."""
        if self.size - self.n_step <= 0:
            raise RuntimeError(
                f"replay buffer has {self.size} steps per env; sampling needs more than n_step={self.n_step}"
            )
        valid = self._size_t - self.n_step
        oldest = (self._ptr_t - self._size_t) % self.T
        u = torch.rand(batch_size, device=self.device, generator=generator)
        age = torch.minimum((u * valid).long(), valid - 1)  # floor(u * valid) in [0, valid)
        env = torch.randint(self.N, (batch_size,), device=self.device, generator=generator)
        return self.gather((oldest + age) % self.T, env)

    def gather(self, step_rows: torch.Tensor, env_ids: torch.Tensor) -> TensorDict:
        """The transitions starting at (step row, env): obs, action, n-step reward, discount and
        the observation to bootstrap from (next_obs)."""
        N, T = self.N, self.T
        window = (step_rows[:, None] + torch.arange(self.n_step, device=self.device)) % T  # (B, n)
        flat = window * N + env_ids[:, None]
        g, discount, k = nstep_return(
            self.steps["reward"][flat], self.steps["terminated"][flat], self.steps["ended"][flat], self.gamma
        )
        last = window.gather(1, k[:, None]).squeeze(1)
        boot_row = self.steps["next_row"][last * N + env_ids].long()
        first = step_rows * N + env_ids
        return TensorDict(
            obs=self.frames[first],
            next_obs=self.frames[boot_row * N + env_ids],
            action=self.steps["action"][first],
            reward=g,
            discount=discount,
            batch_size=[step_rows.shape[0]],
            device=self.device,
        )

    # -- persistence (--save-replay): the ring and its pointers, so a resumed run samples what it had
    def save(self, path, pending_obs) -> None:
        """Write the buffer to `path` (temp file + rename: a kill mid-write leaves the old file).
        `pending_obs` is the observation that followed the last stored step (the one the next action
        would be taken in): a resumed run starts new episodes, so load() stores it as that step's
        final observation and marks the step truncated."""
        import os
        from pathlib import Path

        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        torch.save(
            dict(
                frames=self.frames.to("cpu"),
                steps=self.steps.to("cpu"),
                final_ptr=self.final_ptr.cpu(),
                ptr=self.ptr,
                size=self.size,
                T=self.T,
                K=self.K,
                N=self.N,
                pending_obs={k: v.cpu() for k, v in _as_obs_dict(pending_obs).items()},
            ),
            tmp,
        )
        os.replace(tmp, path)

    def load(self, path) -> None:
        """Refill from a file written by save() for a buffer of the same layout (UserError otherwise)."""
        try:
            s = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as e:  # noqa: BLE001
            raise UserError(f"could not read the saved replay buffer {path} ({type(e).__name__})", code=1) from e
        if (s["T"], s["K"], s["N"]) != (self.T, self.K, self.N) or set(s["frames"].keys()) != set(self.frames.keys()):
            raise UserError(
                f"saved replay buffer {path} has another layout (T, K, N = {s['T']}, {s['K']}, {s['N']}; "
                f"this run: {self.T}, {self.K}, {self.N})",
                code=1,
            )
        self.frames.update_(s["frames"].to(self.device))
        self.steps.update_(s["steps"].to(self.device))
        self.final_ptr.copy_(s["final_ptr"].to(self.device))
        self.ptr, self.size = int(s["ptr"]), int(s["size"])
        self._ptr_t.fill_(self.ptr)
        self._size_t.fill_(self.size)
        if self.size:  # the episode in progress was cut by the resume: a truncation at the last step
            N, T, last = self.N, self.T, (self.ptr - 1) % self.T
            sl = slice(last * N, (last + 1) * N)
            idx = (T + self.final_ptr) * N + self.env_ids
            for k in self.obs_specs:
                self.frames[k].index_copy_(0, idx, s["pending_obs"][k].to(self.device))
            self.steps["next_row"][sl] = torch.where(
                self.steps["terminated"][sl], self.steps["next_row"][sl], (T + self.final_ptr).to(torch.int32)
            )
            self.steps["ended"][sl] = True
            self.final_ptr = (self.final_ptr + 1) % self.K


class DemoReplay:
    """Demonstration transitions on the learner's device, sampled next to the online buffer and never
    overwritten by it (RLPD's second store). Episodes are contiguous: episode i has T_i + 1 frames, its
    step s goes from frame `step_frame[s]` to the next one. Each frame is stored once (uint8 images stay
    uint8).

    Episode ends bootstrap like online ones (`bootstrap_flags`): the recorded `terminated`/`truncated`
    flags of the last step, and an end the recorder made without either flag (the demo stopped) counts
    as a truncation: the target bootstraps from the episode's last frame. `sample` returns the same keys
    as ReplayBuffer.gather (obs, next_obs, action, reward = n-step return, discount)."""

    def __init__(self, data: dict, device, gamma: float, n_step: int = 1, bootstrap_at_done: str = "always"):
        from cleanrl_style.lib.returns import bootstrap_flags

        self.device, self.gamma, self.n_step = torch.device(device), gamma, n_step
        keys = [k for k in ("rgb", "state") if k in data]
        self.frames = TensorDict({k: data[k] for k in keys}, batch_size=[len(data["state"])]).to(self.device)
        S = len(data["actions"])
        last = torch.zeros(S, dtype=torch.bool)
        last[data["ep_last"].unique()] = True
        terminated, truncated = data["terminated"] & last, (data["truncated"] | ~data["terminated"]) & last
        terminated, truncated = bootstrap_flags(terminated, truncated, bootstrap_at_done)
        self.steps = TensorDict(
            action=data["actions"].float(),
            reward=data["rewards"].float(),
            terminated=terminated,
            ended=last,
            frame=data["step_frame"].long(),
            ep_last=data["ep_last"].long(),
            batch_size=[S],
        ).to(self.device)
        self.num_transitions = S
        self.num_episodes = int(last.sum())

    @property
    def nbytes(self) -> int:
        """Bytes the store holds (frames and steps), for the memory plan."""
        return sum(t.numel() * t.element_size() for td in (self.frames, self.steps) for t in td.values())

    def sample(self, batch_size: int, generator: Optional[torch.Generator] = None) -> TensorDict:
        idx = torch.randint(self.num_transitions, (batch_size,), device=self.device, generator=generator)
        return self.gather(idx)

    def gather(self, idx: torch.Tensor) -> TensorDict:
        """Transitions starting at demo steps `idx`, n-step windows clipped at the episode's last step."""
        st = self.steps
        window = torch.minimum(idx[:, None] + torch.arange(self.n_step, device=self.device), st["ep_last"][idx, None])
        g, discount, k = nstep_return(st["reward"][window], st["terminated"][window], st["ended"][window], self.gamma)
        last = window.gather(1, k[:, None]).squeeze(1)
        return TensorDict(
            obs=self.frames[st["frame"][idx]],
            next_obs=self.frames[st["frame"][last] + 1],
            action=st["action"][idx],
            reward=g,
            discount=discount,
            batch_size=[idx.shape[0]],
            device=self.device,
        )


def mixed_sample(online, demos: Optional[DemoReplay], batch_size: int, demo_ratio: float) -> TensorDict:
    """One batch of `batch_size` transitions: round(demo_ratio * batch_size) from the demonstrations,
    the rest from the online buffer (RLPD's symmetric sampling at 0.5), with a bool `demo` key marking
    the demo rows (they come first). Without demos (or at ratio 0) all rows are online."""
    n_demo = int(round(demo_ratio * batch_size)) if demos is not None else 0
    n_online = batch_size - n_demo
    parts = []
    if n_demo:
        d = demos.sample(n_demo)
        d["demo"] = torch.ones(n_demo, dtype=torch.bool, device=d.device)
        parts.append(d)
    if n_online:
        o = online.sample(n_online)
        o["demo"] = torch.zeros(n_online, dtype=torch.bool, device=o.device)
        parts.append(to_device(o, parts[0].device) if parts else o)
    return parts[0] if len(parts) == 1 else torch.cat(parts, 0)


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


def check_memory(
    to_allocate: list,
    env_bytes: int,
    buffer_size: int,
    bytes_per_transition: float,
    headroom: float = 0.9,
    held: tuple = (),
) -> None:
    """Print the memory plan and raise UserError (one line) if what is still to be allocated does
    not fit into what is free now. to_allocate: [(label, bytes, device)]; the replay buffer's label
    is "replay buffer". The training envs already exist, so their memory (env_bytes, measured at
    creation) is already taken and only reported; so is `held` ([(label, bytes, device)], e.g. a
    demo store loaded before the check): free memory already excludes it."""
    where = lambda d: "GPU" if d.type == "cuda" else "host RAM"  # noqa: E731
    pools: dict[str, list] = {}
    for label, nbytes, dev in to_allocate:
        pools.setdefault(dev.type, [dev, 0, 0])
        pools[dev.type][1] += nbytes
        if label == "replay buffer":
            pools[dev.type][2] = nbytes
    free = {t: free_bytes(dev) for t, (dev, _, _) in pools.items()}
    plan = " + ".join(f"{label} {nbytes / GB:.2f} GB ({where(dev)})" for label, nbytes, dev in to_allocate)
    plan += "".join(
        f"; {label} {nbytes / GB:.2f} GB ({where(dev)}) already held" for label, nbytes, dev in held if nbytes
    )
    print(
        f"memory: to allocate {plan}; training envs ~{env_bytes / GB:.2f} GB (measured at creation); free now: "
        + ", ".join(f"{where(pools[t][0])} {free[t] / GB:.1f} GB" for t in pools),
        flush=True,
    )
    for t, (dev, nbytes, buf) in pools.items():
        if nbytes <= headroom * free[t]:
            continue
        fits = int(max(0.0, headroom * free[t] - (nbytes - buf)) / bytes_per_transition) if buf else 0
        hint = (
            f"use a smaller --buffer-size (~{_round_down(fits):,} would fit) or fewer --num-envs"
            if fits > 0
            else "use a smaller --buffer-size, --batch-size or --num-envs"
        )
        raise UserError(
            f"not enough {where(dev)} for --buffer-size {buffer_size:,}: needs {nbytes / GB:.1f} GB, "
            f"only {free[t] / GB:.1f} GB free; {hint}"
        )


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
    """--buffer-device auto -> the env's device; cuda or cpu as named (UserError otherwise)."""
    if name not in ("auto", "cpu", "cuda"):
        raise UserError(f"--buffer-device must be auto, cuda or cpu (got '{name}')")
    if name == "auto":
        return env_device
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--buffer-device cuda needs CUDA; use --buffer-device cpu")
    return torch.device("cuda", torch.cuda.current_device()) if name == "cuda" else torch.device("cpu")


def restore_replay(rb: ReplayBuffer, path, save_replay: bool) -> bool:
    """For a resumed SAC run: refill `rb` from replay.pt when the run saved one (--save-replay) and
    say so; otherwise say that the buffer is refilled from fresh interaction. Returns whether loaded."""
    from pathlib import Path

    path = Path(path)
    if save_replay and path.is_file():
        rb.load(path)
        print(f"resume: replay buffer loaded from {path} ({rb.num_transitions:,} transitions)", flush=True)
        return True
    print(
        "resume: replay buffer refilled from fresh interaction with the current policy "
        "(--learning-starts env steps before updates resume)",
        flush=True,
    )
    return False
