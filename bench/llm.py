"""LLM benchmark: both engines on a GGUF with LLaMA-2-7B's exact shape, through scopebot and called directly.

    python bench/llm.py            # the 7B shape (writes a 3.6 GiB file once to ~/.cache/scopebot-bench)
    python bench/llm.py --quick    # a small shape, for trying the script out
    python bench/llm.py --engines llama.cpp --no-sweep

Measures the machine's memory bandwidth and the generation speed it allows (bandwidth ÷ weight bytes read
per token), then, each in a fresh process so load time and peak memory are its own: load time, peak RSS,
prompt tokens/s, time to first token for a 300-token prompt cold and warm (the scope's fixed instructions
already in the cache), and generated tokens/s, for each engine via scopebot's engine class and via the
library's own generation API. A sweep of threads and batch sizes shows which defaults are best.
Appends the figures, the machine and how busy it was to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import CpuWatch, append_results, peak_rss_mib, table
from llm_model import LLAMA2_7B, SMALL, fixed_prefix_tokens, memory_bandwidth, model_file, prompts

from bot.config import ModelConfig
from tests.gguf_factory import EOS

# --- one measurement, in its own process -----------------------------------------------------------------


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """Load one engine one way, run the cold and warm prompts, and report timings and peak memory."""
    path = Path(spec["model"])
    engine, via = spec["engine"], spec["via"]
    threads, batch, ctx, n_gen = spec["threads"], spec["batch_size"], spec["context_length"], spec["gen_tokens"]
    runs: list[list[int]] = spec["prompts"]
    started = time.perf_counter()
    gens: list[Any]
    if via in ("scopebot", "ab"):
        gen, llm = _scopebot(engine, path, ctx, threads, batch)
        # "ab": the same loaded model, alternately through scopebot and through the library's own loop.
        gens = [gen, _library_gen(engine, llm)] if via == "ab" else [gen]
    elif engine == "ctransformers":
        gens = [_ctransformers_direct(path, ctx, threads, batch)]
    else:
        gens = [_llama_cpp_direct(path, ctx, threads, batch)]
    load_s = time.perf_counter() - started
    results = []
    for i, tokens in enumerate(runs):
        # A B B A A B …: neither way always goes first.
        which = (i + i // 2) % len(gens)
        first, last, count, reused = gens[which](tokens, n_gen)
        results.append(
            {"first": first, "last": last, "count": count, "reused": reused, "prompt": len(tokens), "way": which}
        )
    return {"load_s": load_s, "peak_rss_mib": peak_rss_mib(), "runs": results}


_SAMPLING = {"top_k": 40, "top_p": 0.95, "temperature": 0.7, "repetition_penalty": 1.1, "last_n_tokens": 64}


def _scopebot(engine: str, path: Path, ctx: int, threads: int, batch: int) -> Any:
    from bot.llm.engine import GenerationStats, SamplingParams, load_engine

    e: Any = load_engine(engine, path, context_length=ctx, threads=threads, batch_size=batch)

    def gen(tokens: list[int], n: int) -> tuple[float, float, int, int]:
        stats = GenerationStats()
        for _ in e.generate(tokens, SamplingParams(max_new_tokens=n, **_SAMPLING), should_stop=bool, stats=stats):
            pass
        # The engine times its first token itself; it ends right after yielding its last one.
        return stats.first_token_ms / 1000, stats.total_ms / 1000, stats.completion_tokens, stats.reused_tokens

    return gen, e._llm


def _library_gen(engine: str, llm: Any) -> Any:
    return _ctransformers_gen(llm) if engine == "ctransformers" else _llama_cpp_gen(llm)


def _ctransformers_direct(path: Path, ctx: int, threads: int, batch: int) -> Any:
    from ctransformers.llm import LLM, Config

    # As a user would: the library's defaults, including its own CPU detection (no `lib`).
    llm = LLM(str(path), "llama", config=Config(context_length=ctx, threads=threads, batch_size=batch, reset=True))
    return _ctransformers_gen(llm)


def _ctransformers_gen(llm: Any) -> Any:
    def gen(tokens: list[int], n: int) -> tuple[float, float, int, int]:
        t0, stamps = time.perf_counter(), []
        # LLM.generate evaluates each token before it yields it (and prefix-matches the cache itself).
        for _token in llm.generate(tokens, reset=True, **_SAMPLING):
            stamps.append(time.perf_counter() - t0)
            if len(stamps) == n:
                break
        return stamps[0], stamps[-1], len(stamps), -1

    return gen


def _llama_cpp_direct(path: Path, ctx: int, threads: int, batch: int) -> Any:
    import llama_cpp

    llm = llama_cpp.Llama(
        model_path=str(path),
        n_ctx=ctx,
        n_batch=batch,
        n_ubatch=batch,
        n_threads=threads,
        n_threads_batch=threads,
        verbose=False,
    )
    return _llama_cpp_gen(llm)


def _llama_cpp_gen(llm: Any) -> Any:
    def gen(tokens: list[int], n: int) -> tuple[float, float, int, int]:
        t0, stamps = time.perf_counter(), []
        # Llama.generate prefix-matches the KV cache and yields each token before evaluating it.
        steps = llm.generate(tokens, top_k=40, top_p=0.95, min_p=0.0, temp=0.7, repeat_penalty=1.1, reset=True)
        for token in steps:
            if token == EOS:
                break
            stamps.append(time.perf_counter() - t0)
            if len(stamps) == n:
                break
        steps.close()
        return stamps[0], stamps[-1], len(stamps), -1

    return gen


def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    """Run `child(spec)` in a fresh Python process and return its report."""
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True, check=False
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{spec['engine']} via {spec['via']} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return dict(json.loads(lines[-1]))


def measure(
    path: Path, engine: str, via: str, *, threads: int, batch: int, ctx: int, n_gen: int, prompts: list[list[int]]
) -> dict[str, Any]:
    """One measurement in a fresh process (see `child`): `via` is scopebot, direct or ab."""
    spec = {
        "model": str(path),
        "engine": engine,
        "via": via,
        "threads": threads,
        "batch_size": batch,
        "context_length": ctx,
        "gen_tokens": n_gen,
        "prompts": prompts,
    }
    return run_child(spec)


# --- figures ---------------------------------------------------------------------------------------------


def figures(report: dict[str, Any]) -> dict[str, float]:
    """Prompt tok/s, TTFT cold and warm, generated tok/s from a child's report."""
    cold = report["runs"][0]
    warm = report["runs"][-1]  # a sweep runs only the cold prompt
    n = cold["count"]
    span = cold["last"] - cold["first"]
    return {
        "load_s": report["load_s"],
        "rss_gib": report["peak_rss_mib"] / 1024,
        # The first token's time is the prompt's evaluation plus one sampling step (a millisecond).
        "prompt_tps": cold["prompt"] / cold["first"],
        "ttft_cold": cold["first"],
        "ttft_warm": warm["first"],
        "reused": warm["reused"],
        "gen_tps": (n - 1) / span if n > 1 and span > 0 else float("nan"),
        "gen_n": n,
    }


def best_of(old: dict[str, float] | None, new: dict[str, float]) -> dict[str, float]:
    """The better of two runs, figure by figure: shorter times, higher speeds."""
    if old is None:
        return new
    lower = ("load_s", "rss_gib", "ttft_cold", "ttft_warm")
    return {k: (min if k in lower else max)(old[k], new[k]) for k in new}


def _distinct(ids: list[int], count: int, length: int) -> list[list[int]]:
    """`count` prompts of `length` ids that share only their first (BOS), cut from rotations of `ids`."""
    body = ids[1:]
    return [[ids[0], *(body[(i * 7 + j) % len(body)] for j in range(length - 1))] for i in range(count)]


def pct(a: float, b: float) -> str:
    """How much `a` differs from `b`, signed, in percent."""
    return f"{(a / b - 1) * 100:+.1f} %" if b else "n/a"


LIBRARY = {"ctransformers": "LLM.generate", "llama.cpp": "Llama.generate"}


def sweep(
    path: Path, engines: list[str], prompt: list[int], ctx: int, *, quick: bool
) -> list[tuple[str, int, int, float, float]]:
    """Prompt and generation speed of each engine on 2 threads at a few batch sizes, then on 1 at the best."""
    rows: list[tuple[str, int, int, float, float]] = []
    for engine in engines:
        for batch in (8, 32, 128, 512) if quick else (8, 64, 512):
            rows.append(_sweep_one(path, engine, threads=2, batch=batch, prompt=prompt, ctx=ctx))
        best = max((r for r in rows if r[0] == engine), key=lambda r: r[3])[2]
        rows.append(_sweep_one(path, engine, threads=1, batch=best, prompt=prompt, ctx=ctx))
    return rows


def _sweep_one(
    path: Path, engine: str, *, threads: int, batch: int, prompt: list[int], ctx: int
) -> tuple[str, int, int, float, float]:
    print(f"sweep {engine} threads={threads} batch_size={batch} …", flush=True)
    f = figures(measure(path, engine, "scopebot", threads=threads, batch=batch, ctx=ctx, n_gen=8, prompts=[prompt]))
    print(f"  prompt {f['prompt_tps']:.1f} tok/s, generation {f['gen_tps']:.1f} tok/s", flush=True)
    return (engine, threads, batch, f["prompt_tps"], f["gen_tps"])


def same_model(
    path: Path, engine: str, *, threads: int, batch: int, ctx: int, prompts: list[list[int]], n_gen: int
) -> tuple[str, float, float, float, float]:
    """Prompt and generation speed through scopebot and through the library, alternating on one loaded model."""
    print(f"{engine}: scopebot and {LIBRARY[engine]} alternating on one model …", flush=True)
    runs = measure(path, engine, "ab", threads=threads, batch=batch, ctx=ctx, n_gen=n_gen, prompts=prompts)["runs"]
    best = {}
    for name, way in (("ours", 0), ("lib", 1)):
        mine = [r for r in runs if r["way"] == way]
        prompt = max(r["prompt"] / r["first"] for r in mine)
        gen = max((r["count"] - 1) / (r["last"] - r["first"]) for r in mine if r["count"] > 1)
        best[name] = (prompt, gen)
    print(f"  {best}", flush=True)
    return (engine, best["ours"][0], best["lib"][0], best["ours"][1], best["lib"][1])


def report(
    results: dict[tuple[str, str], dict[str, float]], chosen: dict[str, tuple[int, int]], bound: float
) -> list[str]:
    """The results table, scopebot against each library, and the issue's targets."""
    rows = []
    for (engine, via), f in results.items():
        rows.append(
            (
                engine,
                "scopebot engine" if via == "scopebot" else LIBRARY[engine],
                "{}/{}".format(*chosen[engine]),
                f"{f['load_s']:.2f}",
                f"{f['rss_gib']:.2f}",
                f"{f['prompt_tps']:.1f}",
                f"{f['ttft_cold']:.2f}",
                f"{f['ttft_warm']:.2f}" + (f" ({int(f['reused'])} cached)" if f["reused"] >= 0 else ""),
                f"{f['gen_tps']:.2f}",
                f"{f['gen_tps'] / bound:.0%}",
            )
        )
    headers = ["engine", "via", "threads/batch", "load s", "peak RSS GiB", "prompt tok/s", "TTFT cold s"]
    headers += ["TTFT warm s", "generated tok/s", "% of bound"]
    out = [table(headers, rows)]
    notes = []
    for engine in chosen:
        ours, theirs = results.get((engine, "scopebot")), results.get((engine, "direct"))
        if ours and theirs:
            notes.append(
                f"- {engine}, scopebot vs {LIBRARY[engine]}: prompt {pct(ours['prompt_tps'], theirs['prompt_tps'])}, "
                f"generation {pct(ours['gen_tps'], theirs['gen_tps'])}, TTFT cold "
                f"{pct(ours['ttft_cold'], theirs['ttft_cold'])}, warm {pct(ours['ttft_warm'], theirs['ttft_warm'])}, "
                f"load {pct(ours['load_s'], theirs['load_s'])}, peak RSS {pct(ours['rss_gib'], theirs['rss_gib'])}."
            )
    ours_only = {e: f for (e, via), f in results.items() if via == "scopebot"}
    if ours_only:
        fastest = min(ours_only, key=lambda e: ours_only[e]["ttft_warm"])
        warm = ours_only[fastest]["ttft_warm"]
        notes.append(f"- Target warm TTFT ≤ 6 s with the faster engine: {fastest} {warm:.2f} s — {_met(warm <= 6)}.")
        for engine, f in ours_only.items():
            share = f["gen_tps"] / bound
            notes.append(f"- Target generation ≥ 80 % of the bound: {engine} {share:.0%} — {_met(share >= 0.8)}.")
    out.append("\n".join(notes))
    return out


def _met(ok: bool) -> str:
    return "met" if ok else "missed"


def main() -> int:
    """Run the benchmark and append the results."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a small model shape and short runs")
    ap.add_argument("--engines", default="ctransformers,llama.cpp", help="comma-separated engines to measure")
    ap.add_argument("--no-sweep", action="store_true", help="skip the threads/batch-size sweep")
    ap.add_argument("--threads", type=int, help="threads for the main runs (default: the sweep's best, else [model])")
    ap.add_argument("--batch-size", type=int, help="batch size for the main runs (default: as --threads)")
    ap.add_argument("--prompt-tokens", type=int, default=300)
    ap.add_argument("--gen-tokens", type=int, default=0, help="tokens to generate (default 32, quick 16)")
    ap.add_argument("--repeat", type=int, default=0, help="runs of each engine and way, best kept (default 1, quick 3)")
    ap.add_argument("--no-append", action="store_true", help="print only; do not append to bench/RESULTS.md")
    ap.add_argument("--no-ab", action="store_true", help="skip the same-model scopebot/library comparison")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))), flush=True)
        return 0

    watch = CpuWatch()
    shape = SMALL if args.quick else LLAMA2_7B
    n_gen = args.gen_tokens or (16 if args.quick else 32)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if "llama.cpp" in engines:
        try:
            import llama_cpp  # noqa: F401
        except ImportError:
            print("llama-cpp-python is not installed (pip install 'scopebot[llamacpp]'); skipping llama.cpp")
            engines.remove("llama.cpp")
    path = model_file(shape)
    ctx = ModelConfig().context_length
    chars, fixed = fixed_prefix_tokens()
    cold_prompt, warm_prompt, other = prompts(args.prompt_tokens, fixed)

    print("measuring memory bandwidth …", flush=True)
    bw = memory_bandwidth()
    bandwidth = max(bw["read1"], bw["read2"])
    per_token = shape.bytes_per_token()
    bound = bandwidth * 1e9 / per_token
    print(f"  copy {bw['copy']:.1f} GB/s, read {bw['read1']:.1f} (1 process) / {bw['read2']:.1f} (2 processes) GB/s")

    sections: list[str] = []
    sections.append(
        f"Model: {shape.name} shape ({shape.n_layer} layers, {shape.n_embd} wide, {shape.n_ff} feed-forward, "
        f"{shape.n_head} heads, {shape.n_vocab} tokens), Q4_0, random weights, {path.stat().st_size / 2**30:.2f} GiB "
        f"file; {per_token / 1e9:.2f} GB of weights read per generated token. Context {ctx}.\n\n"
        f"Memory bandwidth (numpy): copy {bw['copy']:.1f} GB/s (read + write), read {bw['read1']:.1f} GB/s with "
        f"1 process and {bw['read2']:.1f} GB/s with 2. Bound on generation: {bandwidth:.1f} GB/s ÷ "
        f"{per_token / 1e9:.2f} GB = **{bound:.1f} tokens/s**.\n\n"
        f"Prompt: {args.prompt_tokens} tokens; the warm run shares the first {fixed} (the example scope's fixed "
        f"instructions, {chars} characters ≈ {fixed} LLaMA-2 tokens) with the cold run before it. "
        f"{n_gen} tokens generated per run; best of {args.repeat or (3 if args.quick else 1)} run(s) each. Load time is with the file in the page cache."
    )

    chosen = {e: (args.threads or ModelConfig().threads, args.batch_size or ModelConfig().batch_size) for e in engines}
    if not args.no_sweep:
        rows = sweep(path, engines, other[:64], ctx, quick=args.quick)
        sections.append(
            "Sweep (scopebot engine, 64-token prompt, 8 tokens generated):\n\n"
            + table(
                ["engine", "threads", "batch_size", "prompt tok/s", "generated tok/s"],
                [(e, t, b, f"{p:.1f}", f"{g:.1f}") for e, t, b, p, g in rows],
            )
        )
        for engine in engines:
            # Best for a whole answer: a 300-token prompt, then the generated tokens.
            mine = [r for r in rows if r[0] == engine]
            _, t, b, _, _ = min(mine, key=lambda r: args.prompt_tokens / r[3] + n_gen / r[4])
            chosen[engine] = (args.threads or t, args.batch_size or b)

    results: dict[tuple[str, str], dict[str, float]] = {}
    repeat = args.repeat or (3 if args.quick else 1)
    for engine in engines:
        threads, batch = chosen[engine]
        # Alternate the two ways and keep each one's best figures: other work on the machine only slows runs down.
        for _ in range(repeat):
            for via in ("scopebot", "direct"):
                print(f"{engine} via {via} (threads={threads}, batch_size={batch}) …", flush=True)
                pair = [cold_prompt, warm_prompt]
                f = figures(
                    measure(path, engine, via, threads=threads, batch=batch, ctx=ctx, n_gen=n_gen, prompts=pair)
                )
                print(
                    f"  load {f['load_s']:.2f} s, peak RSS {f['rss_gib']:.2f} GiB, prompt {f['prompt_tps']:.1f} "
                    f"tok/s, TTFT cold {f['ttft_cold']:.2f} s warm {f['ttft_warm']:.2f} s, generation "
                    f"{f['gen_tps']:.2f} tok/s",
                    flush=True,
                )
                results[(engine, via)] = best_of(results.get((engine, via)), f)
    sections += report(results, chosen, bound)

    if not args.no_ab:
        reps = args.repeat or 3
        ab_prompts = _distinct(other, 2 * reps, 64)
        rows = [
            same_model(path, e, threads=chosen[e][0], batch=chosen[e][1], ctx=ctx, prompts=ab_prompts, n_gen=16)
            for e in engines
        ]
        sections.append(
            f"Overhead of the scopebot engine over the library's own loop, measured on one loaded model, "
            f"alternating, best of {reps} (64-token prompts sharing only BOS, 16 tokens generated):\n\n"
            + table(
                [
                    "engine",
                    "prompt tok/s scopebot",
                    "library",
                    "difference",
                    "generated tok/s scopebot",
                    "library",
                    "difference",
                ],
                [
                    (e, f"{po:.2f}", f"{pl:.2f}", pct(po, pl), f"{go:.2f}", f"{gl:.2f}", pct(go, gl))
                    for e, po, pl, go, gl in rows
                ],
            )
        )

    body = "\n\n".join(sections)
    print("\n" + body)
    if not args.no_append:
        where = append_results(f"bench/llm.py{' --quick' if args.quick else ''}", body, watch=watch)
        print(f"\nappended to {where}")
    else:
        print("\n" + watch.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
