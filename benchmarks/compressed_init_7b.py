"""The compressed initialisation at a 7B-class layer: LLaMA-7B's MLP shape, ours vs the authors'.

One linear layer of LLaMA-7B's MLP, ``(m, n) = (11008, 4096)`` (``up_proj`` / ``gate_proj``, out x in)
and its transpose ``(4096, 11008)`` (``down_proj``), rank ``r = 8``, with a synthetic gradient of
realistic spectrum: ``G = U diag(s) V^T`` with exact Haar singular vectors, a power-law bulk
``s_i = i^(-1/2)`` and a rank-4 spike (``s_1..s_4`` from 2 to 1 times ``s_5 / 0.8``, so
``s_5 / s_4 = 0.8``, the median gap of the MiniLM gradients in ``benchmarks/deep_lora.py``). The
top ``r/2 = 4`` singular subspaces are known exactly, so every choice is checked against them.

What is measured (1 thread by default; the machine is shared):

1. **Ours** (:func:`compressible.deeplora.compressed_outer_factors`, the construction of
   ``compress_from_batch`` after the gradient) for each SVD choice: ``svd="lowrank"`` with today's 4
   power iterations, ``svd="lowrank", svd_tol=1e-6``, and ``svd="full"``; in the gradient's float32
   and in float64. Time, peak tensor memory above the start (the gradient already exists, so this
   is the *extra* memory; compared with ``(m + n) r`` numbers), and the residual of the exact top-4
   subspaces outside ``span(left)`` / ``span(right)``
   (:func:`compressible.deeplora.subspace_residual`).
2. **The authors' explicit full-width construction** (width ``d = 11008``: factors
   ``F_1 (d, n)``, ``F_2 (d, d)``, ``F_3 (m, d)``, scaled Haar-orthogonal; gradient of the square
   end factor; full SVD; intersection of subspaces; complete QR; as
   ``benchmarks/deep_lora.py:authors_outer_factors``). Its cost grows as ``d^3``, so its
   feasibility is estimated first by running the same steps at widths ``d/8`` and ``d/4`` (shape
   scaled alike) and extrapolating time by ``d^3`` and memory by ``d^2``; it is run at full size only
   if the estimate fits the budget (``--budget-seconds``, default 600) and the memory
   (``--memory-gib``, default 12 of the machine's 24 GiB, which others share).

Memory method: ``torch.profiler`` allocation records (``benchmarks/deep_lora.py:peak_bytes``):
tensor memory only. Run::

    .venv/bin/python benchmarks/compressed_init_7b.py            # about 8 minutes on 1 thread

Prints a table and writes JSON to ``benchmarks/output/compressed_init_7b.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from compressible.deeplora import compressed_outer_factors, subspace_residual
from compressible.deeplora.layer import haar_stiefel

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deep_lora import authors_outer_factors, peak_bytes  # noqa: E402  (a sibling script)

logger = logging.getLogger("benchmarks.compressed_init_7b")

OUTPUT = Path(__file__).resolve().parent / "output"
LLAMA_7B_MLP = (11008, 4096)  # (intermediate, hidden): up_proj / gate_proj as (out, in)
RANK, EPSILON, GAP = 8, 1e-3, 0.8
CHOICES = [
    ("lowrank, 4 power it. (svd_tol=None)", "lowrank", None),
    ("lowrank, svd_tol=1e-6", "lowrank", 1e-6),
    ("full SVD", "full", None),
]
GIB = 2**30


def synthetic_gradient(m: int, n: int, h: int, seed: int = 0):
    """``G (m, n)`` float64 with a power-law bulk and a rank-``h`` spike, and its exact ``U_h``, ``V_h``."""
    gen = torch.Generator().manual_seed(seed)
    k = min(m, n)
    u = haar_stiefel(m, k, generator=gen)
    v = haar_stiefel(n, k, generator=gen)
    s = torch.arange(1, k + 1, dtype=torch.float64) ** -0.5
    s[:h] = s[h] / GAP * torch.linspace(2, 1, h, dtype=torch.float64)
    return (u * s) @ v.T, u[:, :h].clone(), v[:, :h].clone()


def measured(fn) -> tuple[float, int, object]:
    """(seconds, peak tensor bytes above the start, result) of one profiled call of ``fn()``."""
    box = {}

    def call():
        start = time.perf_counter()
        box["result"] = fn()
        box["seconds"] = time.perf_counter() - start

    peak = peak_bytes(call, torch.device("cpu"))
    return box["seconds"], peak, box["result"]


def ours(g: torch.Tensor, u_h: torch.Tensor, v_h: torch.Tensor, dtype_label: str) -> list[dict]:
    rows = []
    m, n = g.shape
    for label, svd, tol in CHOICES:
        if svd == "full" and g.dtype == torch.float64:
            continue  # exact either way; float64 full SVDs at this size cost minutes on one thread
        generator = torch.Generator().manual_seed(1)
        seconds, peak, (left, right) = measured(
            lambda: compressed_outer_factors(g, RANK, svd=svd, svd_tol=tol, generator=generator)
        )
        residual = max(subspace_residual(left, u_h), subspace_residual(right, v_h))
        rows.append({
            "shape": [m, n], "choice": label, "arithmetic": dtype_label, "seconds": seconds, "peak_bytes": peak,
            "peak_over_(m+n)r_elements": peak / ((m + n) * RANK * g.element_size()),
            "gradient_bytes": g.numel() * g.element_size(), "residual": residual,
        })
        logger.info("%s %s %s: %.2f s, %.1f MB, residual %.1e", (m, n), label, dtype_label, seconds, peak / 2**20, residual)
    return rows


def explicit(m: int, n: int, g: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The authors' construction for one layer with gradient ``g = dloss/dΔW (m, n)``, float32."""
    d = max(m, n)
    gen = torch.Generator().manual_seed(seed)
    f1 = EPSILON * haar_stiefel(d, n, generator=gen, dtype=torch.float32)  # (d, n)
    f2 = EPSILON * haar_stiefel(d, d, generator=gen, dtype=torch.float32)  # (d, d)
    f3 = EPSILON * haar_stiefel(m, d, generator=gen, dtype=torch.float32)  # (m, d)
    delta0 = f3 @ (f2 @ f1)  # (m, n)
    transposed = n < m
    if transposed:  # the last factor is the square one: w1 = F_3^T, g1 = (dloss/dF_3)^T = (F_2 F_1) G^T
        w1, g1 = f3.T, (f2 @ f1) @ g.T
    else:  # g1 = dloss/dF_1 = (F_3 F_2)^T G
        w1, g1 = f1, (f3 @ f2).T @ g
    return authors_outer_factors(w1, g1, delta0, RANK // 2, EPSILON, transposed)


def explicit_estimate(m: int, n: int, budget: float, memory_gib: float) -> dict:
    """Run the explicit construction at widths d/8 and d/4; extrapolate to d by d^3 (time), d^2 (memory)."""
    d = max(m, n)
    probes = []
    for divisor in (8, 4):
        ms, ns = m // divisor, n // divisor
        g = synthetic_gradient(ms, ns, RANK // 2)[0].float()
        seconds, peak, _ = measured(lambda: explicit(ms, ns, g))
        probes.append({"shape": [ms, ns], "width": max(ms, ns), "seconds": seconds, "peak_bytes": peak})
        logger.info("explicit at %s: %.1f s, %.2f GiB", (ms, ns), seconds, peak / GIB)
    last = probes[-1]
    scale = d / last["width"]
    estimate = {
        "probes": probes,
        "observed_time_exponent": float(
            torch.log(torch.tensor(probes[1]["seconds"] / probes[0]["seconds"])) / torch.log(torch.tensor(2.0))
        ),
        "estimated_seconds": last["seconds"] * scale**3,
        "estimated_peak_bytes": last["peak_bytes"] * scale**2,
        "factor_bytes": 4 * (d * n + d * d + m * d),
        "budget_seconds": budget,
        "memory_budget_bytes": memory_gib * GIB,
    }
    estimate["fits"] = estimate["estimated_seconds"] <= budget and estimate["estimated_peak_bytes"] <= memory_gib * GIB
    return estimate


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    result: dict = {
        "benchmark": "compressed_init_7b",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "rank": RANK,
        "gap_s5_over_s4": GAP,
        "ours": [],
        "explicit": {},
    }
    g64, u_h, v_h = synthetic_gradient(*LLAMA_7B_MLP, RANK // 2)
    for transposed in (False, True):
        g = g64.T.contiguous() if transposed else g64
        exact = (v_h, u_h) if transposed else (u_h, v_h)
        m, n = g.shape
        result["ours"].extend(ours(g.float(), *exact, "float32"))
        result["ours"].extend(ours(g, *exact, "float64"))
        estimate = explicit_estimate(m, n, args.budget_seconds, args.memory_gib)
        if estimate["fits"]:
            g32 = g.float()
            seconds, peak, (left, right) = measured(lambda: explicit(m, n, g32))
            estimate |= {"seconds": seconds, "peak_bytes": peak,
                         "residual": max(subspace_residual(left, exact[0]), subspace_residual(right, exact[1]))}
        result["explicit"][f"{m}x{n}"] = estimate
    return result


def table(result: dict) -> str:
    mb = 2**20
    lines = [
        f"Compressed init at LLaMA-7B MLP shapes, r = {result['rank']}, synthetic gradient (power law + rank-4 spike, "
        f"s5/s4 = {result['gap_s5_over_s4']}), {result['threads']} thread(s)",
        "",
        f"{'(m, n)':>14s} {'ours: choice':32s} {'arith.':>7s} {'time [s]':>9s} {'extra [MB]':>11s} "
        f"{'/ (m+n)r':>9s} {'residual':>9s}",
    ]
    for row in result["ours"]:
        lines.append(
            f"{str(tuple(row['shape'])):>14s} {row['choice']:32s} {row['arithmetic']:>7s} {row['seconds']:9.2f} "
            f"{row['peak_bytes'] / mb:11.1f} {row['peak_over_(m+n)r_elements']:9.1f} {row['residual']:9.1e}"
        )
    lines += ["", "(extra: peak tensor memory above the start, the gradient excluded; / (m+n)r: that peak in units "
              "of (m+n) r elements of the gradient's dtype; gradient itself: "
              f"{result['ours'][0]['gradient_bytes'] / mb:.0f} MB in float32)", ""]
    for shape, est in result["explicit"].items():
        probes = ", ".join(
            f"{tuple(p['shape'])}: {p['seconds']:.1f} s, {p['peak_bytes'] / GIB:.2f} GiB" for p in est["probes"]
        )
        lines.append(f"authors' explicit full-width construction at {shape} (float32; factors alone "
                     f"{est['factor_bytes'] / GIB:.2f} GiB):")
        lines.append(f"  measured at reduced width: {probes} (time grows as width^{est['observed_time_exponent']:.2f})")
        lines.append(
            f"  estimated at full width: {est['estimated_seconds']:.0f} s, {est['estimated_peak_bytes'] / GIB:.1f} GiB "
            f"(budget {est['budget_seconds']:.0f} s, {est['memory_budget_bytes'] / GIB:.0f} GiB)"
        )
        if "seconds" in est:
            lines.append(f"  run: {est['seconds']:.1f} s, {est['peak_bytes'] / GIB:.2f} GiB, residual {est['residual']:.1e}")
        else:
            lines.append("  not run: it does not fit the budget (" + ", ".join(
                what for what, over in (
                    (f"time {est['estimated_seconds'] / 60:.0f} min > {est['budget_seconds'] / 60:.0f} min",
                     est["estimated_seconds"] > est["budget_seconds"]),
                    (f"memory {est['estimated_peak_bytes'] / GIB:.1f} GiB > {est['memory_budget_bytes'] / GIB:.0f} GiB",
                     est["estimated_peak_bytes"] > est["memory_budget_bytes"]),
                ) if over
            ) + ")")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the machine is shared)")
    parser.add_argument("--budget-seconds", type=float, default=600.0, help="time budget of the explicit construction")
    parser.add_argument("--memory-gib", type=float, default=12.0, help="memory budget of the explicit construction")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/output/...)")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    result = run(args)
    out = args.out or OUTPUT / "compressed_init_7b.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
