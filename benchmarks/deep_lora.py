"""Deep LoRA (compressed, r = 8) against PEFT LoRA (r = 8) on a real backbone, in one run.

What is measured (medians over interleaved repetitions, so that load from other processes hits
every arm alike; ratios are within this run):

1. **Train step** (forward, backward, Adam step) of Deep LoRA and of PEFT LoRA on the same
   targets and the same batches: time, and peak memory above the level at the start of the step.
   Targets: time ratio <= 1.10, memory ratio <= 1.05.
2. **Compressed initialisation** (``add_adapters`` + ``compress_from_batch``) against one forward +
   backward of the adapted model on the same batch. Target: <= 1.5x.
3. **The explicit full-width construction** as the authors' code does it: materialise the
   width-``max(m, n)`` depth-3 factors, take the gradient of the square end factor, full SVD,
   the intersection of subspaces of paper Sec. 2.3, ``left = ΔW(0) right / eps^3``. Time and peak
   memory against ours.
4. **How exact each SVD choice is** (``--svd-only`` runs this section alone): for the gradient of
   every adapted weight on the first batch, the residual of its exact top ``r/2`` left / right
   singular subspaces (float64 SVD) outside ``span(left)`` / ``span(right)``
   (:func:`~compressible.deeplora.analysis.subspace_residual`, the sine of the largest principal
   angle), the time of ``compressed_outer_factors`` summed over the modules, and the whole
   compressed initialisation against one forward + backward, for ``svd="full"``, today's
   ``svd="lowrank"`` (4 power iterations) and ``svd="lowrank", svd_tol=1e-6``; plus the gap
   ``s_{h+1} / s_h`` of the gradients.

The 7B-class layer (LLaMA-7B MLP shape) has its own script, ``benchmarks/compressed_init_7b.py``.

Memory method: on CUDA ``torch.cuda.max_memory_allocated`` minus the allocated bytes at the start;
on CPU the profiler's allocation records (``torch.profiler.profile(profile_memory=True)``: every
allocation and free of the CPU allocator, with its time stamp), summed in time order, peak above
the start. Both count tensor memory only (not Python objects or the allocator's cache).

Run (online; or offline with the mirrors of a ``../shared`` folder beside the project, as the
README's "Offline mirrors" section describes)::

    .venv/bin/python benchmarks/deep_lora.py --device cpu
    HF_HUB_OFFLINE=1 HF_HUB_CACHE=../shared/hf/hub COMPRESSIBLE_GLUE=../shared/data/glue \\
        .venv/bin/python benchmarks/deep_lora.py --device cpu

Prints a table and writes JSON to ``benchmarks/output/deep_lora_<lengths>_<device>.json``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import logging
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from compressible.deeplora import (
    DeepLoRAConfig,
    adapter_layers,
    add_adapters,
    compress_from_batch,
    compressed_outer_factors,
    param_groups,
    resolve_targets,
    subspace_residual,
)
from compressible.hub import load_dataset, load_pretrained

logger = logging.getLogger("benchmarks.deep_lora")

OUTPUT = Path(__file__).resolve().parent / "output"


# --------------------------------------------------------------------------------------------
# measurement helpers
# --------------------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> float:
    """Wall time of ``fn()`` in seconds (device work included)."""
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def peak_bytes(fn: Callable[[], object], device: torch.device) -> int:
    """Peak tensor memory of ``fn()`` above the level at its start, in bytes (see module docstring)."""
    if device.type == "cuda":
        _sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        fn()
        _sync(device)
        return int(torch.cuda.max_memory_allocated(device) - start)
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    records = [
        event
        for event in prof.profiler.kineto_results.events()
        if event.name() == "[memory]" and event.device_type() == DeviceType.CPU
    ]
    records.sort(key=lambda event: event.start_ns())
    level = peak = 0
    for event in records:
        level += event.nbytes()
        peak = max(peak, level)
    return int(peak)


def median(values: list[float]) -> float:
    return float(statistics.median(values))


# --------------------------------------------------------------------------------------------
# data and models
# --------------------------------------------------------------------------------------------


def stsb_batches(tokenizer, lengths: str, n_batches: int, batch_size: int, seed: int, device) -> list[dict]:
    """``n_batches`` batches of real STS-B training pairs (regression labels).

    ``lengths="stsb"``: padded to the longest pair of each batch (truncated at 128 tokens), the
    lengths a fine-tuning run sees; an integer: every pair padded/truncated to that length.
    """
    data = load_dataset("nyu-mll/glue", "stsb")["train"]
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(data), generator=generator)[: n_batches * batch_size].tolist()
    padding = dict(padding="longest", truncation=True, max_length=128)
    if lengths != "stsb":
        padding = dict(padding="max_length", truncation=True, max_length=int(lengths))
    batches = []
    for b in range(n_batches):
        rows = data.select(order[b * batch_size : (b + 1) * batch_size])
        enc = tokenizer(list(rows["sentence1"]), list(rows["sentence2"]), return_tensors="pt", **padding)
        enc = {k: v.to(device) for k, v in enc.items()}
        enc["labels"] = torch.tensor(list(rows["label"]), dtype=torch.float32, device=device)
        batches.append(enc)
    return batches


def peft_lora(base: nn.Module, targets: list[str], rank: int) -> nn.Module:
    """PEFT LoRA with rank ``rank`` on exactly the modules ``targets`` (full paths), scaling 1."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=rank, lora_alpha=rank, target_modules=targets, lora_dropout=0.0, bias="none")
    return get_peft_model(base, config)


def train_step(model: nn.Module, optimiser: torch.optim.Optimizer, batch: dict) -> None:
    optimiser.zero_grad(set_to_none=True)
    model(**batch).loss.backward()
    optimiser.step()


def forward_backward(model: nn.Module, batch: dict) -> None:
    """One training-mode forward and backward (gradients of the trainable parameters), no step."""
    model(**batch).loss.backward()
    model.zero_grad(set_to_none=True)


# --------------------------------------------------------------------------------------------
# the authors' explicit full-width construction
# --------------------------------------------------------------------------------------------


def authors_outer_factors(
    w1: torch.Tensor, g1: torch.Tensor, delta0: torch.Tensor, half: int, epsilon: float, transposed: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(left, right)`` from the square end factor ``w1 (d, d)``, its gradient ``g1`` and
    ``ΔW(0) = F_3 F_2 F_1 (m, n)``, as the authors' code computes them (paper Sec. 2.3, notes Sec. 4).

    Full SVD ``g1 = U S V^T``; ``Va = w1^T U[:, h:] / eps``, ``Vb = V[:, h:]``;
    ``S = span(Va) ∩ span(Vb)`` from the principal vectors of ``Va^T Vb`` with cosine 1
    (``d - 2h`` of them); an orthonormal basis of ``S^⊥`` from a complete QR; the other side is
    ``ΔW(0)`` applied to it, divided by ``eps^3``.
    """
    d = w1.shape[0]
    u_g, _, vh_g = torch.linalg.svd(g1)
    va = w1.T @ u_g[:, half:] / epsilon  # (d, d - h), orthonormal columns
    vb = vh_g[half:].T  # (d, d - h)
    p, cosines, _ = torch.linalg.svd(va.T @ vb)
    inter = va @ p[:, : d - 2 * half]  # (d, d - 2h): S = span(va) ∩ span(vb)
    complete = torch.linalg.qr(inter, mode="complete").Q  # (d, d)
    basis = complete[:, d - 2 * half :]  # (d, 2h): orthonormal basis of S^⊥
    logger.debug("smallest intersection cosine %.3g", float(cosines[d - 2 * half - 1]))
    if transposed:
        return basis, delta0.T @ basis / epsilon**3
    return delta0 @ basis / epsilon**3, basis


def explicit_full_width_init(
    model: nn.Module, batch: dict, targets, rank: int, epsilon: float, seed: int
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{module: (left (m, r), right (n, r))}`` built the way the authors' code builds them.

    Every adapted weight gets a full-width depth-3 factorisation ``F_3 F_2 F_1`` (width
    ``w = max(m, n)``, scaled Haar-orthogonal, materialised). One forward/backward with dropout off
    gives the gradient ``G_1`` of the square end factor (``F_1`` if ``n >= m``, else ``F_3^T`` of
    the transposed problem); :func:`authors_outer_factors` does the rest. The model keeps its
    full-width adapters.
    """
    add_adapters(model, DeepLoRAConfig(init="full", depth=3, epsilon=epsilon, seed=seed, targets=targets))
    layers = adapter_layers(model)
    training = model.training
    model.eval()
    model.zero_grad(set_to_none=True)
    model(**batch).loss.backward()
    model.train(training)
    out = {}
    with torch.no_grad():
        for name, layer in layers.items():
            factors = list(layer.factors)
            transposed = layer.in_features < layer.out_features
            w1 = factors[-1].T if transposed else factors[0]  # (d, d)
            g1 = factors[-1].grad.T if transposed else factors[0].grad  # (d, d)
            delta0 = layer.delta_weight() / layer.scaling  # ΔW(0) = F_3 F_2 F_1, (m, n)
            out[name] = authors_outer_factors(w1, g1, delta0, rank // 2, epsilon, transposed)
    model.zero_grad(set_to_none=True)
    return out


# --------------------------------------------------------------------------------------------
# how exact each SVD choice of the compressed initialisation is
# --------------------------------------------------------------------------------------------

#: (label, DeepLoRAConfig.svd, DeepLoRAConfig.svd_tol) of the compared choices. The default svd_tol="auto"
#: is the second in float32 and the third in float64.
SVD_CHOICES = [
    ("full SVD", "full", None),
    ("lowrank, 4 power it. (svd_tol=None)", "lowrank", None),
    ("lowrank, svd_tol=1e-6", "lowrank", 1e-6),
]


def base_gradients(base: nn.Module, batch: dict, targets) -> dict[str, torch.Tensor]:
    """``{module: dloss/dW (m, n)}`` of the base weights at ``ΔW = 0`` in eval mode: what
    ``compress_from_batch`` reduces (``(out, in)`` layout, the model's dtype)."""
    model = copy.deepcopy(base).eval()
    names = resolve_targets(model, targets)
    for p in model.parameters():
        p.requires_grad_(False)
    weights = {name: model.get_submodule(name).weight for name in names}
    for weight in weights.values():
        weight.requires_grad_(True)
    model(**batch).loss.backward()
    return {name: w.grad.detach().clone() for name, w in weights.items()}


def svd_choices(base: nn.Module, batch: dict, config: DeepLoRAConfig, reps: int, device: torch.device) -> dict:
    """Residual of the exact top ``r/2`` subspaces outside the outer factors, and time, per SVD choice."""
    half = config.rank // 2
    grads = base_gradients(base, batch, config.targets)
    exact, gaps = {}, []
    for name, g in grads.items():
        u, s, vh = torch.linalg.svd(g.double().cpu(), full_matrices=False)
        exact[name] = (u[:, :half], vh[:half].T)
        gaps.append(float(s[half] / s[half - 1]))
    out: dict = {
        "modules": len(grads),
        "shapes": sorted({tuple(g.shape) for g in grads.values()}),
        "gap_ratio_s_h1_over_s_h": {"min": min(gaps), "median": median(gaps), "max": max(gaps)},
        "choices": {},
    }
    dtypes = [("gradient dtype", None), ("float64", torch.float64)]
    for label, svd, tol in SVD_CHOICES:
        for dtype_label, dtype in dtypes:
            residuals, seconds = [], 0.0
            for index, (name, g) in enumerate(grads.items()):
                g = g if dtype is None else g.to(dtype)
                generator = torch.Generator().manual_seed(config.seed + index)
                start = time.perf_counter()
                left, right = compressed_outer_factors(g, config.rank, svd=svd, svd_tol=tol, generator=generator)
                _sync(device)
                seconds += time.perf_counter() - start
                u_h, v_h = exact[name]
                residuals.append(max(subspace_residual(left, u_h), subspace_residual(right, v_h)))
            out["choices"][f"{label} | {dtype_label}"] = {
                "svd": svd,
                "svd_tol": tol,
                "dtype": str(next(iter(grads.values())).dtype if dtype is None else dtype),
                "max_residual": max(residuals),
                "median_residual": median(residuals),
                "outer_factors_seconds": seconds,
            }
    # the whole compressed initialisation per choice against one forward + backward, interleaved
    probe = copy.deepcopy(base).train()
    add_adapters(probe, config)
    init_times: dict[str, list[float]] = {"forward_backward": []} | {label: [] for label, _, _ in SVD_CHOICES}

    def init(svd: str, tol: float | None) -> None:
        model = fresh.pop()
        add_adapters(model, dataclasses.replace(config, svd=svd, svd_tol=tol))
        compress_from_batch(model, batch)

    for rep in range(reps):
        fresh = [copy.deepcopy(base).train() for _ in SVD_CHOICES]
        jobs = {"forward_backward": lambda: forward_backward(probe, batch)}
        jobs |= {label: (lambda svd=svd, tol=tol: init(svd, tol)) for label, svd, tol in SVD_CHOICES}
        names = list(jobs) if rep % 2 == 0 else list(jobs)[::-1]
        for name in names:
            init_times[name].append(timed(jobs[name], device))
    fb = median(init_times["forward_backward"])
    out["init_over_forward_backward"] = {label: median(init_times[label]) / fb for label, _, _ in SVD_CHOICES}
    out["init_seconds"] = init_times
    return out


def svd_table(result: dict) -> str:
    svd = result["svd_choices"]
    gap = svd["gap_ratio_s_h1_over_s_h"]
    lines = [
        f"SVD choices of the compressed init on {result['model']} ({svd['modules']} gradients, shapes {svd['shapes']}, "
        f"r = {result['rank']}); gap s_(h+1)/s_h: min {gap['min']:.3f}, median {gap['median']:.3f}, max {gap['max']:.3f}",
        f"{'choice':34s} {'arithmetic':>10s} {'max resid.':>11s} {'median':>9s} {'outer [ms]':>11s} {'init / f+b':>11s}",
    ]
    for key, row in svd["choices"].items():
        label, _ = key.split(" | ")
        ratio = svd["init_over_forward_backward"][label] if row["dtype"] != "torch.float64" else None
        lines.append(
            f"{label:34s} {row['dtype'].removeprefix('torch.'):>10s} {row['max_residual']:11.1e} "
            f"{row['median_residual']:9.1e} {row['outer_factors_seconds'] * 1e3:11.1f} "
            f"{'' if ratio is None else f'{ratio:.2f}':>11s}"
        )
    lines.append("(residual: sine of the largest principal angle of the exact top r/2 subspace outside span(left), "
                 "span(right); init / f+b: whole compressed init over one forward+backward, budget <= 1.5)")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# the benchmark
# --------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    tokenizer = load_pretrained(AutoTokenizer, args.model)
    base = load_pretrained(AutoModelForSequenceClassification, args.model, num_labels=1).to(device)
    batches = stsb_batches(tokenizer, args.lengths, args.reps, args.batch, args.seed, device)
    tokens = [int(b["input_ids"].shape[1]) for b in batches]
    logger.info("batch lengths %s", tokens)
    config = DeepLoRAConfig(
        init="compressed", depth=3, rank=args.rank, targets=args.targets, seed=args.seed, svd=args.svd,
        svd_tol=args.svd_tol,
    )
    header = {
        "benchmark": "deep_lora",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": args.model,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "batch_size": args.batch,
        "lengths": args.lengths,
        "batch_tokens": tokens,
        "rank": args.rank,
        "targets": args.targets,
        "svd": args.svd,
        "svd_tol": args.svd_tol,
    }
    logger.info("section 4: SVD choices of the compressed init")
    svd_section = svd_choices(base, batches[0], config, args.init_reps, device)
    if args.svd_only:
        return header | {"svd_choices": svd_section}

    # --- the two arms, built from the same base -------------------------------------------
    deep = copy.deepcopy(base).train()
    add_adapters(deep, config)
    compress_from_batch(deep, batches[0])
    targets = list(adapter_layers(deep))
    deep_opt = torch.optim.Adam(param_groups(deep, lr=1e-2), betas=(0.9, 0.999), eps=1e-6)
    lora = peft_lora(copy.deepcopy(base), targets, args.rank).train()
    lora_opt = torch.optim.Adam(
        [p for p in lora.parameters() if p.requires_grad], lr=1e-4, betas=(0.9, 0.999), eps=1e-6
    )
    deep_params = sum(p.numel() for p in deep.parameters() if p.requires_grad)
    lora_params = sum(p.numel() for p in lora.parameters() if p.requires_grad)
    arms = {
        "deep_lora": lambda batch: train_step(deep, deep_opt, batch),
        "peft_lora": lambda batch: train_step(lora, lora_opt, batch),
    }
    for _ in range(args.warmup):
        for step in arms.values():
            step(batches[0])
    logger.info("built both arms and warmed up; timing %d interleaved train steps", args.reps)

    # --- 1. train step: time and memory, interleaved --------------------------------------
    step_times: dict[str, list[float]] = {name: [] for name in arms}
    step_memory: dict[str, list[int]] = {name: [] for name in arms}
    for rep in range(args.reps):
        order = list(arms) if rep % 2 == 0 else list(arms)[::-1]
        for name in order:
            step_times[name].append(timed(lambda: arms[name](batches[rep]), device))
    logger.info("profiling the memory of %d interleaved train steps", args.memory_reps)
    for rep in range(args.memory_reps):
        order = list(arms) if rep % 2 == 0 else list(arms)[::-1]
        for name in order:
            step_memory[name].append(peak_bytes(lambda: arms[name](batches[rep % len(batches)]), device))
    paired = [d / p for d, p in zip(step_times["deep_lora"], step_times["peft_lora"])]

    # --- 2./3. initialisation cost, interleaved ------------------------------------------
    init_batch = batches[0]

    def compressed_init() -> nn.Module:
        model = fresh.pop()
        add_adapters(model, config)
        compress_from_batch(model, init_batch)
        return model

    def explicit_init() -> None:
        model = fresh.pop()
        explicit_full_width_init(model, init_batch, args.targets, args.rank, config.epsilon, args.seed)

    # The explicit construction costs minutes on CPU: it gets its own (fewer) repetitions, each
    # between a forward+backward and a compressed init so that all three see similar load.
    init_times: dict[str, list[float]] = {"forward_backward": [], "compressed_init": [], "explicit_init": []}
    for rep in range(max(args.init_reps, args.explicit_reps)):
        logger.info("initialisation repetition %d/%d", rep + 1, max(args.init_reps, args.explicit_reps))
        fresh = [copy.deepcopy(base).train() for _ in range(2)]  # copies are not timed
        jobs = {"forward_backward": lambda: forward_backward(deep, init_batch)}
        if rep < args.init_reps:
            jobs["compressed_init"] = compressed_init
        if rep < args.explicit_reps:
            jobs["explicit_init"] = explicit_init
        names = list(jobs) if rep % 2 == 0 else list(jobs)[::-1]
        for name in names:
            init_times[name].append(timed(jobs[name], device))
            logger.info("  %s: %.2f s", name, init_times[name][-1])
        del fresh
    logger.info("profiling the memory of the initialisations")
    fresh = [copy.deepcopy(base).train()]
    memory_compressed = peak_bytes(compressed_init, device)
    fresh = [copy.deepcopy(base).train()]
    memory_explicit = peak_bytes(explicit_init, device)
    memory_forward_backward = peak_bytes(lambda: forward_backward(deep, init_batch), device)

    med = {name: median(values) for name, values in step_times.items()}
    mem = {name: median([float(v) for v in values]) for name, values in step_memory.items()}
    init = {name: median(values) for name, values in init_times.items()}
    result = header | {
        "adapted_modules": len(targets),
        "trainable_params": {"deep_lora": deep_params, "peft_lora": lora_params},
        "memory_method": (
            "torch.cuda.max_memory_allocated - memory_allocated at start"
            if device.type == "cuda"
            else "torch.profiler profile_memory allocation records, running sum, peak above start"
        ),
        "train_step": {
            "seconds": step_times,
            "median_seconds": med,
            "time_ratio": med["deep_lora"] / med["peft_lora"],
            "median_paired_time_ratio": median(paired),
            "peak_bytes": step_memory,
            "median_peak_bytes": mem,
            "memory_ratio": mem["deep_lora"] / mem["peft_lora"],
            "targets": {"time_ratio": 1.10, "memory_ratio": 1.05},
        },
        "initialisation": {
            "seconds": init_times,
            "median_seconds": init,
            "compressed_over_forward_backward": init["compressed_init"] / init["forward_backward"],
            "explicit_over_compressed": init["explicit_init"] / init["compressed_init"],
            "peak_bytes": {
                "forward_backward": memory_forward_backward,
                "compressed_init": memory_compressed,
                "explicit_init": memory_explicit,
            },
            "targets": {"compressed_over_forward_backward": 1.5},
        },
        "svd_choices": svd_section,
    }
    return result


def table(result: dict) -> str:
    step, init = result["train_step"], result["initialisation"]
    mb = 2**20
    rows = [
        ("train step time [ms]", step["median_seconds"]["deep_lora"] * 1e3, step["median_seconds"]["peft_lora"] * 1e3,
         step["time_ratio"], "<= 1.10"),
        ("  (median of paired ratios)", None, None, step["median_paired_time_ratio"], ""),
        ("train step peak memory [MB]", step["median_peak_bytes"]["deep_lora"] / mb,
         step["median_peak_bytes"]["peft_lora"] / mb, step["memory_ratio"], "<= 1.05"),
        ("trainable parameters", result["trainable_params"]["deep_lora"], result["trainable_params"]["peft_lora"],
         result["trainable_params"]["deep_lora"] / result["trainable_params"]["peft_lora"], ""),
    ]
    lines = [
        f"Deep LoRA (compressed, r={result['rank']}, svd={result.get('svd', 'auto')}, {result['targets']}, "
        f"{result['adapted_modules']} modules) "
        f"vs PEFT LoRA (r={result['rank']}) on {result['model']}, {result['device']}, {result['threads']} threads, "
        f"batch {result['batch_size']}, lengths {result['lengths']} (tokens per batch: {result['batch_tokens']})",
        f"memory: {result['memory_method']}",
        "",
        f"{'':32s} {'Deep LoRA':>12s} {'PEFT LoRA':>12s} {'ratio':>8s} {'target':>8s}",
    ]
    for label, a, b, ratio, target in rows:
        fa = "" if a is None else f"{a:12.1f}" if isinstance(a, float) else f"{a:12d}"
        fb = "" if b is None else f"{b:12.1f}" if isinstance(b, float) else f"{b:12d}"
        lines.append(f"{label:32s} {fa:>12s} {fb:>12s} {ratio:8.3f} {target:>8s}")
    lines += [
        "",
        f"{'initialisation (one batch)':32s} {'time [ms]':>12s} {'peak [MB]':>12s}",
    ]
    for key, label in [
        ("forward_backward", "one forward + backward"),
        ("compressed_init", "compressed init (ours)"),
        ("explicit_init", "explicit full-width (authors')"),
    ]:
        lines.append(
            f"{label:32s} {init['median_seconds'][key] * 1e3:12.1f} {init['peak_bytes'][key] / mb:12.1f}"
        )
    lines += [
        f"compressed init / forward+backward = {init['compressed_over_forward_backward']:.2f} (target <= 1.5)",
        f"explicit / compressed init = {init['explicit_over_compressed']:.1f}x time, "
        f"{init['peak_bytes']['explicit_init'] / max(init['peak_bytes']['compressed_init'], 1):.1f}x peak memory",
        "",
        svd_table(result),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2", help="hub id or folder")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0 (default cpu)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lengths", default="stsb", help="'stsb' (real pairs, padded per batch) or a fixed length")
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--targets", default="attention-mlp")
    parser.add_argument(
        "--svd", default="auto", choices=["auto", "full", "lowrank"], help="DeepLoRAConfig.svd of the compressed init"
    )
    parser.add_argument(
        "--svd-tol", type=lambda v: v if v == "auto" else (None if v == "none" else float(v)), default="auto",
        help="DeepLoRAConfig.svd_tol: 'auto' (default), 'none' or a float such as 1e-6",
    )
    parser.add_argument("--svd-only", action="store_true", help="run only section 4 (SVD choices)")
    parser.add_argument("--reps", type=int, default=9, help="interleaved train-step repetitions")
    parser.add_argument("--memory-reps", type=int, default=3, help="interleaved profiled train steps")
    parser.add_argument("--init-reps", type=int, default=5, help="interleaved compressed-init repetitions")
    parser.add_argument("--explicit-reps", type=int, default=1, help="repetitions of the explicit full-width init")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/output/...)")
    args = parser.parse_args(argv)
    for flag in ("reps", "memory_reps", "init_reps", "explicit_reps"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")
    if args.lengths != "stsb" and not args.lengths.isdigit():
        parser.error(f"--lengths must be 'stsb' or a positive integer, got {args.lengths!r}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")

    result = run(args)
    suffix = "_svd" if args.svd_only else ""
    out = args.out or OUTPUT / f"deep_lora_{args.lengths}_{torch.device(args.device).type}{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(svd_table(result) if args.svd_only else table(result))
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
