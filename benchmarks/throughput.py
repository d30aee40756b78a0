"""Throughput against the hardware floor, measured side by side in one run on the machine at hand.

    python -m benchmarks.throughput [--quick] [--json FILE] [--threads N]

Cases (each a record {case, metric, value, unit, floor, ratio}; ratio = value / floor, so 1.0 is the floor):
  roofline     float32 matmul GFLOP/s at the update's shapes: the best of them is the compute floor
  update       each agent's FLOPs per env step (counted op by op with torch's FlopCounterMode on a real update + act)
               and its measured env steps/s of act + update at dog-run sizes, against roofline / FLOPs
  env          raw dm_control steps/s against the project's wrapper (dog-run, cartpole-swingup), interleaved
  sampler      each solver / path / flow_steps: time per action batch against NFE x one velocity evaluation
  kan          each critic first layer of ideas/sinckan_critic, fwd+bwd for both critics, against the Linear
  qss          td3 / d3g / qss n=3 of ideas/qss_chunking at cheetah and dog sizes against roofline / FLOPs
Writes benchmarks/results/throughput.json and throughput.md (or --json FILE and FILE with .md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "disable")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
BUSY_LOAD = 0.5  # a 1-min load average above this before the run: other processes share the CPU
DOG_OBS, DOG_ACT, WIDTH, BATCH = 223, 38, 512, 256  # dog-run sizes, FlowRL's width and batch


def record(case: str, metric: str, value: float, unit: str, floor: float | None = None) -> dict:
    ratio = value / floor if floor else None
    return dict(case=case, metric=metric, value=round(value, 4), unit=unit,
                floor=round(floor, 4) if floor else None, ratio=round(ratio, 4) if ratio else None)


def best_time(fn, reps: int, warmup: int = 2) -> float:
    """Median seconds per call of fn over `reps` calls (after warm-up)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


# ----------------------------------------------------------------------------- roofline
def roofline(reps: int) -> tuple[float, list[dict]]:
    """GFLOP/s of the matmuls an update at dog-run sizes runs (forward NN, backward NT and TN, batched twins)."""
    a, w = torch.randn(BATCH, WIDTH), torch.randn(WIDTH, WIDTH)
    g = torch.randn(BATCH, WIDTH)
    a2, w2 = torch.randn(2, BATCH, WIDTH), torch.randn(2, WIDTH, WIDTH)
    flops = 2 * BATCH * WIDTH * WIDTH
    shapes = {
        "mm 256x512 @ 512x512 (forward)": (lambda: a @ w, flops),
        "mm 256x512 @ (512x512)^T (input grad)": (lambda: g @ w.T, flops),
        "mm (256x512)^T @ 256x512 (weight grad)": (lambda: a.T @ g, flops),
        "bmm 2x256x512 @ 2x512x512 (twin critics)": (lambda: torch.bmm(a2, w2), 2 * flops),
    }
    records = []
    for name, (fn, n) in shapes.items():
        gflops = n / best_time(fn, reps * 10) / 1e9
        records.append(record("roofline", name, gflops, "GFLOP/s"))
    peak = max(r["value"] for r in records)
    return peak, records


# ----------------------------------------------------------------------------- agents at dog-run sizes
def make_agent(kind: str, solver: str = "midpoint", flow_steps: int = 1, compile: bool = False):
    device = torch.device("cpu")
    if kind == "sac":
        from core.sac import SAC, SACConfig

        return SAC(SACConfig(hidden=WIDTH, batch_size=BATCH), DOG_OBS, DOG_ACT, device)
    from ideas.ode_solvers.agent import FlowRLAgent, FlowRLConfig

    cfg = FlowRLConfig(hidden=WIDTH, batch_size=BATCH, solver=solver, flow_steps=flow_steps, compile=compile)
    return FlowRLAgent(cfg, DOG_OBS, DOG_ACT, device)


def full_step_rate(agent, env, buffer, steps: int) -> float:
    """env steps/s of the training loop's work per step: act, env.step, buffer.add, one update."""
    obs = env.reset()
    for _ in range(3):  # warm-up (compilation, allocator)
        agent.update(agent.sample(buffer))
    t0 = time.perf_counter()
    for _ in range(steps):
        action = agent.act(torch.as_tensor(obs).unsqueeze(0), explore=True)[0].numpy()
        next_obs, reward, terminated, truncated, _ = env.step(action)
        buffer.add(obs, action, reward, next_obs, terminated, truncated)
        obs = env.reset() if terminated or truncated else next_obs
        agent.update(agent.sample(buffer))
    return steps / (time.perf_counter() - t0)


def flops_per_env_step(agent, buffer) -> float:
    """FLOPs of one env step's learning work, counted op by op: the mean over two updates (the policy step runs
    every second one) plus one action."""
    obs = torch.randn(1, DOG_OBS)
    with FlopCounterMode(display=False) as counter:
        for _ in range(2):
            agent.update(agent.sample(buffer))
        agent.act(obs, explore=True)
        agent.act(obs, explore=True)
    return counter.get_total_flops() / 2


def update_cases(peak_gflops: float, steps: int, solvers: list[tuple[str, int]], compile: bool) -> list[dict]:
    from core.buffers import ReplayBuffer
    from core.envs import make_env

    env = make_env("dog-run", seed=0)
    buffer = ReplayBuffer(DOG_OBS, DOG_ACT, 20_000, recent_fraction=0.2)
    rng = np.random.default_rng(0)
    obs = env.reset()
    for _ in range(2_000):
        action = rng.uniform(-1, 1, DOG_ACT).astype(np.float32)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        buffer.add(obs, action, reward, next_obs, terminated, truncated)
        obs = env.reset() if terminated or truncated else next_obs
    records = []
    variants = [("sac", "-", 0, False)] + [("flowrl", s, k, False) for s, k in solvers]
    if compile:
        variants += [("flowrl", s, k, True) for s, k in solvers[:1]]
    for kind, solver, k, compiled in variants:
        agent = make_agent(kind, solver, k or 1, compiled)
        flops = flops_per_env_step(agent, buffer)
        floor = peak_gflops * 1e9 / flops  # env steps/s if every FLOP ran at the roofline
        rate = full_step_rate(agent, env, buffer, steps)
        name = "SAC" if kind == "sac" else f"FlowRL {solver} x{k}" + (" compiled" if compiled else "")
        records.append(record("update", f"{name}: GFLOP per env step", flops / 1e9, "GFLOP"))
        records.append(record("update", f"{name}: act+update env steps/s (dog-run, w512, b256)", rate, "steps/s",
                              floor))
    return records


# ----------------------------------------------------------------------------- environments
def time_episode(reset, step, actions: np.ndarray) -> float:
    """Seconds to reset and step through `actions`."""
    t0 = time.perf_counter()
    reset()
    for a in actions:
        step(a)
    return time.perf_counter() - t0


def env_cases(steps: int, rounds: int) -> list[dict]:
    from dm_control import suite

    from core.envs import make_env

    records = []
    for task in ("cartpole-swingup", "dog-run"):
        domain, name = task.split("-")
        raw = suite.load(domain, name, task_kwargs={"random": 0})
        ours = make_env(task, seed=0)
        spec = raw.action_spec()
        actions = np.random.default_rng(0).uniform(-1, 1, (steps, spec.shape[0])).astype(np.float32)

        raw_t, ours_t = [], []
        for _ in range(rounds):  # interleaved, so both see the same machine state
            raw_t.append(time_episode(raw.reset, raw.step, actions))
            ours_t.append(time_episode(ours.reset, ours.step, actions))
        raw_rate, ours_rate = steps / np.median(raw_t), steps / np.median(ours_t)
        records.append(record("env", f"{task}: raw dm_control steps/s", raw_rate, "steps/s"))
        records.append(record("env", f"{task}: wrapper steps/s (floor = raw)", ours_rate, "steps/s", raw_rate))
    return records


# ----------------------------------------------------------------------------- samplers
def sampler_cases(reps: int, grid: list[tuple[str, str, int]]) -> list[dict]:
    from ideas.ode_solvers.agent import VelocityField
    from ideas.ode_solvers.paths import ProbabilityPath
    from ideas.ode_solvers.samplers import FlowSampler

    torch.manual_seed(0)
    net = VelocityField(DOG_OBS, DOG_ACT, WIDTH)
    obs, x0 = torch.randn(BATCH, DOG_OBS), torch.randn(BATCH, DOG_ACT).clamp(-1, 1)
    t = torch.full((BATCH, 1), 0.5)

    def velocity(x, tt):
        return net(obs, x, tt)

    records = []
    with torch.no_grad():
        one_eval = best_time(lambda: velocity(x0, t), reps * 4)
        records.append(record("sampler", "one velocity evaluation (batch 256)", one_eval * 1e3, "ms"))
        for solver, path, k in grid:
            sampler = FlowSampler(solver, k, ProbabilityPath(path))
            ms = best_time(lambda s=sampler: s(velocity, x0), reps) * 1e3
            nfe = sampler.nfe
            # floor: the bare evaluations; value/floor > 1 is the solver's overhead
            records.append(record("sampler", f"{solver}/{path}/{k} steps: ms per action batch (NFE {nfe:g})", ms,
                                  "ms", nfe * one_eval * 1e3))
    return records


# ----------------------------------------------------------------------------- KAN
KAN_SIZES = (("dog-run", DOG_OBS + DOG_ACT, WIDTH), ("cartpole", 5 + 1, 256))  # critic input -> first hidden layer


def interleaved_ms(steps: dict, rounds: int) -> dict[str, float]:
    """Median ms per call of each step, timed in interleaved rounds (every step once per round), so all see the same
    machine state; each timing repeats its step enough times to last ~20 ms."""
    repeats = {}
    for name, fn in steps.items():
        fn()  # warm-up (allocator, lazy init)
        t0 = time.perf_counter()
        fn()
        repeats[name] = max(1, round(0.02 / (time.perf_counter() - t0)))
    times = {name: [] for name in steps}
    for _ in range(rounds):
        for name, fn in steps.items():
            t0 = time.perf_counter()
            for _ in range(repeats[name]):
                fn()
            times[name].append((time.perf_counter() - t0) / repeats[name])
    return {name: float(np.median(t)) * 1e3 for name, t in times.items()}


SINC_DEGREES = (4, 1)  # besides the default 8: where the cost meets 3x a Linear (degree 1: 2 nodes + skip = 3x FLOPs)


def kan_cases(reps: int) -> list[dict]:
    """Every critic first layer of ideas/sinckan_critic (linear, linear_matched, fourier, sinc, pykan) and the sinc
    layer at smaller degrees, forward + backward for both critics at batch 256, against the EnsembleLinear of the same
    in/out, side by side."""
    from ideas.sinckan_critic.layers import FIRST_LAYERS, make_first_layer

    records = []
    for size, in_dim, out_dim in KAN_SIZES:
        torch.manual_seed(0)
        x = torch.randn(BATCH, in_dim).expand(2, BATCH, in_dim)  # one input for both critics, as SAC's critic sees
        layers = {name: make_first_layer(name, out_dim)(2, in_dim, out_dim) for name in FIRST_LAYERS}
        for degree in SINC_DEGREES:  # the basis size sets the FLOPs: (degree + 1 + skip) x a Linear's
            layers[f"sinc degree {degree}"] = make_first_layer("sinc", out_dim, degree=degree)(2, in_dim, out_dim)

        def step(layer, x=x):
            layer(x).sum().backward()

        flops = {}
        for name, layer in layers.items():
            with FlopCounterMode(display=False) as counter:
                step(layer)
            flops[name] = counter.get_total_flops()
        ms = interleaved_ms({name: (lambda layer=layer: step(layer)) for name, layer in layers.items()},
                            rounds=max(3, reps))
        for name in layers:
            params = sum(p.numel() for p in layers[name].parameters() if p.requires_grad)
            shape = f"{in_dim}->{out_dim}"
            if name == "linear":
                records.append(record("kan", f"{size} EnsembleLinear {shape} x2 critics fwd+bwd (batch 256)",
                                      ms[name], "ms"))
                continue
            records.append(record("kan", f"{size} {name} {shape} x2 fwd+bwd; {params / 1e3:.0f}k params, "
                                         f"{flops[name] / flops['linear']:.1f}x the matmul FLOPs (floor = Linear)",
                                  ms[name], "ms", ms["linear"]))
    return records


# ----------------------------------------------------------------------------- QSS chunking
QSS_SIZES = ("cheetah-run", "dog-run")  # 17 obs / 6 actions; 223 / 38
QSS_ARMS = (("td3", 1, "mlp"), ("d3g", 1, "mlp"), ("qss", 3, "mlp"), ("qss", 3, "gru"))
QSS_WIDTH = 256  # TD3 / D3G networks: 2 x 256 ReLU, batch 256


def qss_cases(peak_gflops: float, steps: int) -> list[dict]:
    """td3, d3g and qss (n = 3, MLP and GRU decoders) of ideas/qss_chunking at cheetah-run and dog-run sizes: FLOPs
    per env step (counted over 2n updates and 2n actions: chunk agents plan once per n actions) and act+update env
    steps/s against roofline / FLOPs."""
    from core.buffers import ReplayBuffer
    from core.envs import make_env
    from ideas.qss_chunking.config import ChunkingConfig
    from ideas.qss_chunking.run import make_agent

    records = []
    for task in QSS_SIZES:
        env = make_env(task, seed=0)
        buffer = ReplayBuffer(env.obs_dim, env.act_dim, 20_000)
        rng = np.random.default_rng(0)
        obs = env.reset()
        for _ in range(2_000):
            action = rng.uniform(-1, 1, env.act_dim).astype(np.float32)
            next_obs, reward, terminated, truncated, _ = env.step(action)
            buffer.add(obs, action, reward, next_obs, terminated, truncated)
            obs = env.reset() if terminated or truncated else next_obs
        for name, horizon, decoder in QSS_ARMS:
            cfg = ChunkingConfig(agent=name, horizon=horizon, decoder=decoder, hidden=QSS_WIDTH, batch_size=BATCH)
            agent = make_agent(cfg, env.obs_dim, env.act_dim, torch.device("cpu"))
            agent.reset(explore=True)
            obs_t = torch.as_tensor(obs).unsqueeze(0)
            with FlopCounterMode(display=False) as counter:
                for _ in range(2 * horizon):
                    agent.update(agent.sample(buffer))
                    agent.act(obs_t, explore=True)
            flops = counter.get_total_flops() / (2 * horizon)
            rate = full_step_rate(agent, env, buffer, steps)
            label = f"qss n={horizon} {decoder}" if name == "qss" else name
            size = f"{task}, {env.obs_dim} obs, {env.act_dim} act, w{QSS_WIDTH}, b{BATCH}"
            records.append(record("qss", f"{label}: GFLOP per env step ({size})", flops / 1e9, "GFLOP"))
            records.append(record("qss", f"{label}: act+update env steps/s ({size})", rate, "steps/s",
                                  peak_gflops * 1e9 / flops))
    return records


# ----------------------------------------------------------------------------- report
def write(records: list[dict], path: Path, meta: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, indent=2) + "\n")
    lines = [f"# Throughput ({meta['command']})", "",
             f"Machine: {meta['machine']}; torch {meta['torch']}, {meta['threads']} threads; {meta['date']}; 1-min "
             f"load average {meta['load']:.2f} before the run, {meta['load_after']:.2f} after"
             f"{' (BUSY: not an idle machine)' if meta['load'] > BUSY_LOAD else ''}.", "",
             "ratio = value / floor. update: floor = roofline GFLOP/s / FLOPs per env step (1.0 = every FLOP at the "
             "best matmul rate). env: floor = raw dm_control. sampler: floor = NFE x one velocity evaluation "
             "(ratio - 1 = solver overhead). kan: floor = the EnsembleLinear of the same in/out (both critics). "
             "qss: floor = roofline / FLOPs.", "",
             "| case | metric | value | unit | floor | ratio |", "|---|---|---|---|---|---|"]
    for r in records:
        lines.append(f"| {r['case']} | {r['metric']} | {r['value']:g} | {r['unit']} | "
                     f"{'' if r['floor'] is None else format(r['floor'], 'g')} | "
                     f"{'' if r['ratio'] is None else format(r['ratio'], '.3f')} |")
    path.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Throughput against the hardware floor.")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and cases (about 3 minutes)")
    parser.add_argument("--json", type=Path, default=RESULTS / "throughput.json", help="where to write records")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--compile", action="store_true", help="also time the torch.compile'd FlowRL update")
    parser.add_argument("--skip", nargs="*", default=[], choices=["update", "env", "sampler", "kan", "qss"],
                        help="cases to leave out (the roofline always runs: it is every floor)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    quick = args.quick
    reps = 5 if quick else 20
    solvers = [("midpoint", 1), ("rk4", 1), ("midpoint", 4), ("rk4", 4), ("implicit_adams", 4)]
    grid = [(s, p, k) for s in ("euler", "midpoint", "heun2", "heun3", "rk4", "explicit_adams", "implicit_adams")
            for p in ("linear", "plv") for k in (1, 4, 10)]
    if quick:
        solvers = solvers[:2] + solvers[3:4]
        grid = [(s, p, k) for s, p, k in grid if k == 4 and p == "linear"] + [("midpoint", "plv", 4)]
    load = os.getloadavg()[0]  # other work on the machine slows the roofline (every floor) and the cases unequally
    if load > BUSY_LOAD:
        print(f"warning: 1-min load average {load:.2f} before the run: other processes share the CPU, so the roofline "
              f"and the ratios against it are not an idle machine's", file=sys.stderr)
    peak, records = roofline(reps)
    if "update" not in args.skip:
        records += update_cases(peak, 15 if quick else 40, solvers, args.compile)
    if "env" not in args.skip:
        records += env_cases(1000, 10)  # one 1000-frame episode per round, rounds interleaved
    if "sampler" not in args.skip:
        records += sampler_cases(reps, grid)
    if "kan" not in args.skip:
        records += kan_cases(reps)
    if "qss" not in args.skip:
        records += qss_cases(peak, 15 if quick else 40)
    command = "python -m benchmarks.throughput" + " ".join([""] + (argv if argv is not None else sys.argv[1:]))
    meta = dict(command=command, machine=f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                torch=torch.__version__, threads=torch.get_num_threads(), date=time.strftime("%Y-%m-%d"),
                load=load, load_after=os.getloadavg()[0])
    write(records, args.json, meta)
    for r in records:
        ratio = f"  ratio {r['ratio']:.3f}" if r["ratio"] is not None else ""
        print(f"{r['case']:9s} {r['metric']:75s} {r['value']:>10.3f} {r['unit']}{ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
