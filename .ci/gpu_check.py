#!/usr/bin/env python3
"""``make gpu-check``: check the package on a CUDA GPU inside one 10-minute command, and grow the ledger.

The package is written for GPUs as well as CPUs; this is how it gets checked on one whenever one is at hand
(a machine with a CUDA GPU and no network; torch, transformers and PEFT may be there at other versions).
In order, within ``GPU_CHECK_BUDGET`` seconds (default 540, inside a 10-minute command):

a. CUDA: without ``torch.cuda.is_available()`` it prints one line saying so and exits 2;
b. packages: imports what the package needs, prints the versions found beside ``requirements/lock.txt``,
   names what is missing and how to bring it (exit 2); wheels in ``.whl/`` are installed first, offline,
   into /tmp/compressible-site (pip never reaches the network here);
c. mirrors: finds the model (``sentence-transformers/all-MiniLM-L6-v2`` in a hub cache) and GLUE's
   parquet files that a ci run needs, through ``HF_HUB_CACHE`` / ``COMPRESSIBLE_GLUE``, or in ``../shared``,
   ``./shared``, or the two parts of ``.gpu-mirror/`` (below); says exactly what is missing (exit 2);
d. tests: ``pytest -q -x -m device`` on the device-aware tests with ``COMPRESSIBLE_TEST_DEVICE=cuda``;
e. timing: one Fig. 6 run of the ci plan (Deep LoRA, seed 0) through ``Runner(device="cuda")``;
f. ledger: ``timeout -s INT <rest> python -m compressible.sweeps run fewshot_evidence --scale ci --device cuda
   --into ledger --nice 0`` for the rest of the budget (the evidence plan, whose ledger is not complete;
   ``--chapter`` names another; finished runs stay: each is a sealed record labelled
   ``device: cuda`` with the GPU's name), then a verification of the grown chapter's ledger runs on cuda
   (:func:`compressible.ledger.verify`) in what time remains; the new records are packed into one tar.gz;
g. a summary table of every step's time and result.

Everything is written to ``$OUT`` when it is set (the device tool brings those files back), else to
``_build/gpu-check/``: gpu-check.log, pytest.log, fig6-timing.json, sweep.log, ledger-new.tar.gz,
verify.log, summary.json. Exit 0 when every step passed, 1 when a step failed, 2 when the machine lacks
what the check needs.

Bringing what the GPU machine lacks (the device tool sends the checkout only, at most 64 MiB)
------------------------------------------------------------------------------------------------
The mirrors: ``../shared`` does not travel. What a ci run needs, measured with ``du``:
``../shared/hf/hub/models--sentence-transformers--all-MiniLM-L6-v2`` is 88 MB, of which
``model.safetensors`` is 90,868,376 bytes (86.7 MiB: over the 64 MiB a call may carry, on its own) and
the files transformers reads besides it (config.json, tokenizer.json, tokenizer_config.json, vocab.txt,
special_tokens_map.json) 0.7 MB; ``../shared/data/glue`` is 10.2 MB for the eight tasks the evidence plan
uses (STS-B alone, all Few-shot GLUE needs at ci: 632 KB). So the mirror travels in two parts over two calls
on one warm machine (it keeps /tmp for 30 s after a call), each beside the checkout (4.8 MB with the
ledger in December 2026): part 1 the first 40 MiB of the weights and GLUE (~51 MiB), part 2 the rest of the
weights (~47 MiB) and the wheels::

    python3 .ci/gpu_check.py pack [--wheels]   # here: .gpu-mirror/1 and /2 (~51 and ~47 MiB, ignored by git)
    # device tool, first call:   command "python3 .ci/gpu_check.py stage"  carry [".gpu-mirror/1"]
    # within 30 s, second call:  command "make gpu-check"  carry [".gpu-mirror/2", ".whl"]  timeout_s 600

``stage`` copies part 1 to /tmp/compressible-gpu-mirror; the check joins the parts there and verifies
the weights' SHA-256. A ``shared/`` folder inside the checkout would travel with every call (ignored or
not), so it is used when present but only works for mirrors under the limit.

The packages: on the lent machines' image (Python 3.12) ``datasets`` (with ``dill`` and ``multiprocess``)
and ``pydantic`` (with ``pydantic-core``, ``annotated-types``, ``typing-inspection``) are missing.
``pack --wheels`` downloads them here at the versions of requirements/lock.txt into ``.whl/`` (the device
README's ``pip download --no-deps --only-binary=:all: --python-version 3.12 ...`` route); step b installs
them there from ``.whl/`` with ``--no-index``.

Results come back in ``$OUT``: unpack the new records here with ``tar -xzf <files_at>/ledger-new.tar.gz -C
ledger`` and check them like any other (``python -m compressible.ledger verify``): a record computed on
a GPU names ``device: cuda`` and the GPU in its provenance, and is verified within the tolerance of how
its platform differs from the verifying one.

``--device cpu --scale smoke`` runs every step on the CPU at smoke scale: a check of this script, not of a GPU.
"""

from __future__ import annotations

import argparse
import atexit
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
MODEL_DIR = "models--" + MODEL_ID.replace("/", "--")
MODEL_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")
WEIGHTS = "model.safetensors"
STAGE = Path(os.environ.get("GPU_CHECK_STAGE", "/tmp/compressible-gpu-mirror"))
SITE = Path("/tmp/compressible-site")
DEFAULT_BUDGET = 540
OUTPUTS = ("gpu-check.log", "pytest.log", "fig6-timing.json", "sweep.log", "ledger-new.tar.gz", "verify.log", "summary.json")
"""What a check writes into its output folder (the device tool brings back at most 8 files)."""
CHAPTER_VERIFIED = {"fewshot_glue": ("fewshot_tuning", "fewshot_glue"), "deep_lora_subspaces": ("deep_lora_subspaces",),
                    "fewshot_evidence": ("fewshot_evidence",)}
GLUE_TASKS = "cola,sst2,mrpc,qqp,stsb,mnli,qnli,rte"  # what the evidence plan's Table 1 reads

PACKAGES = (  # (import name, distribution name)
    ("torch", "torch"), ("transformers", "transformers"), ("peft", "peft"), ("datasets", "datasets"),
    ("safetensors", "safetensors"), ("pydantic", "pydantic"), ("fsspec", "fsspec"), ("scipy", "scipy"),
    ("pandas", "pandas"), ("sklearn", "scikit-learn"), ("matplotlib", "matplotlib"), ("tqdm", "tqdm"),
    ("pytest", "pytest"),
)
DEVICE_WHEELS = ("datasets", "dill", "multiprocess", "pydantic", "pydantic_core", "annotated-types", "typing-inspection")
"""What the lent GPU machines' image lacks of the package's needs (``.library/device/KINDS.md``, 2026-11)."""

PIP_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
                 "manylinux1_x86_64")


# --- small helpers -----------------------------------------------------------------------------------------

class Log:
    """Prints and appends to ``gpu-check.log`` in the output folder."""

    def __init__(self, path: Path | None):
        self.path = path

    def __call__(self, message: str = "") -> None:
        print(message, flush=True)
        if self.path is not None:
            with self.path.open("a") as handle:
                handle.write(message + "\n")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_versions() -> dict[str, str]:
    versions = {}
    lock = ROOT / "requirements" / "lock.txt"
    if lock.is_file():
        for line in lock.read_text().splitlines():
            if "==" in line and not line.startswith("#"):
                name, version = line.split("==", 1)
                versions[_norm(name)] = version.strip()
    return versions


def mib(path: Path) -> float:
    if path.is_file():
        return path.stat().st_size / 2**20
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def run_capped(cmd: list[str], cap: float, log_path: Path, env: dict) -> tuple[int, float, bool]:
    """``timeout -s INT -k 30 cap cmd`` with its output in ``log_path``: (exit code, seconds, timed out)."""
    tic = time.monotonic()
    with log_path.open("a") as log:
        log.write("$ " + " ".join(cmd) + f"   # capped at {cap:.0f} s\n")
        log.flush()
        rc = subprocess.call(["timeout", "-s", "INT", "-k", "30", f"{max(cap, 1):.0f}", *cmd], stdout=log,
                             stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    return rc, time.monotonic() - tic, rc in (124, 137)


def tail(path: Path, lines: int) -> list[str]:
    if not path.is_file():
        return []
    return [line for line in path.read_text(errors="replace").splitlines() if line.strip()][-lines:]


# --- the mirrors -------------------------------------------------------------------------------------------

def model_problems(hub: Path) -> list[str]:
    """What a hub cache lacks of the MiniLM snapshot transformers reads (empty: complete)."""
    folder = hub / MODEL_DIR
    ref = folder / "refs" / "main"
    if not ref.is_file():
        return [f"{ref} (the hub cache's pointer to the snapshot)"]
    snapshot = folder / "snapshots" / ref.read_text().strip()
    missing = [str(snapshot / name) for name in (*MODEL_FILES, WEIGHTS) if not (snapshot / name).is_file()]
    return missing


def glue_problems(glue: Path, tasks: list[str]) -> list[str]:
    missing = [] if (glue / "README.md").is_file() else [f"{glue / 'README.md'} (the configs of the parquet layout)"]
    for task in tasks:
        for split in ("train", "validation"):
            if not list((glue / task).glob(f"{split}*.parquet")):
                missing.append(f"{glue / task}/{split}-*.parquet")
    return missing


def gather_parts(log: Log) -> Path | None:
    """Join the parts of a packed mirror (``.gpu-mirror/<n>`` here or staged in /tmp) into ``STAGE/assembled``;
    returns that folder, or None when no part is there. Raises ``RuntimeError`` naming a part that is missing."""
    found: dict[int, Path] = {}
    manifest = None
    for base in (ROOT / ".gpu-mirror", STAGE / "parts"):
        for part in sorted(base.glob("*/manifest.json")) if base.is_dir() else ():
            data = json.loads(part.read_text())
            manifest = manifest or data
            found.setdefault(int(data["part"]), part.parent)
    if manifest is None:
        return None
    target = STAGE / "assembled"
    done = target / ".assembled"
    if done.is_file() and done.read_text().strip() == manifest["sha256"]:
        return target
    missing = [n for n in range(1, int(manifest["parts"]) + 1) if n not in found]
    if missing:
        raise RuntimeError(
            f"mirror part(s) {missing} of {manifest['parts']} are not here (found {sorted(found)} in .gpu-mirror/ and "
            f"{STAGE / 'parts'}): run `python3 .ci/gpu_check.py stage` carrying .gpu-mirror/{missing[0]} first, then "
            "this check within 30 s on the same warm machine, carrying the other part")
    shutil.rmtree(target, ignore_errors=True)
    for n in sorted(found):
        shutil.copytree(found[n], target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("manifest.json", "weights.*"))
    weights = target / manifest["weights"]
    weights.parent.mkdir(parents=True, exist_ok=True)
    with weights.open("wb") as out:
        for n in sorted(found):
            with (found[n] / f"weights.{n}").open("rb") as chunk:
                shutil.copyfileobj(chunk, out, 1 << 22)
    if weights.stat().st_size != manifest["size"] or sha256(weights) != manifest["sha256"]:
        raise RuntimeError(f"the joined {weights} does not match the packed one (size or SHA-256): pack again")
    done.write_text(manifest["sha256"] + "\n")
    log(f"  joined mirror parts {sorted(found)} into {target} (SHA-256 of {WEIGHTS} checked)")
    return target


def find_mirrors(tasks: list[str], need_weights: bool, log: Log) -> tuple[dict[str, str], list[str]]:
    """The environment that points the package at the mirrors, and what is missing (empty: all found)."""
    env_hub, env_glue = os.environ.get("HF_HUB_CACHE"), os.environ.get("COMPRESSIBLE_GLUE")
    roots = [Path(p) for p in (os.environ.get("GPU_CHECK_SHARED"),) if p]
    roots += [ROOT.parent / "shared", ROOT / "shared"]
    try:
        assembled = gather_parts(log)
    except RuntimeError as error:
        return {}, [str(error)]
    if assembled is not None:
        roots.append(assembled)
    hubs = [Path(env_hub)] if env_hub else [r / "hf" / "hub" for r in roots]
    glues = [Path(env_glue)] if env_glue else [r / "data" / "glue" for r in roots]

    def first(candidates, problems):
        report = {}
        for candidate in candidates:
            report[candidate] = problems(candidate)
            if not report[candidate]:
                return candidate, []
        return None, [f"{c}: missing {', '.join(p)}" for c, p in report.items()]

    if need_weights:
        hub, model_missing = first(hubs, model_problems)
    else:  # smoke scale: the tiny BERT borrows only the tokenizer
        hub, model_missing = first(hubs, lambda h: [p for p in model_problems(h) if not p.endswith(WEIGHTS)])
    glue, glue_missing = first(glues, lambda g: glue_problems(g, tasks))
    missing = []
    if hub is None:
        missing.append(f"model {MODEL_ID} (hub cache, HF_HUB_CACHE) not found; looked in " + "; ".join(model_missing))
    if glue is None:
        missing.append(f"GLUE {'/'.join(tasks)} parquet (COMPRESSIBLE_GLUE) not found; looked in " + "; ".join(glue_missing))
    env = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HUB_CACHE": str(hub), "COMPRESSIBLE_GLUE": str(glue)}
    return env, missing


# --- pack and stage (the two ends of the transfer) ---------------------------------------------------------

def _exclude(path: str) -> None:
    exclude = ROOT / ".git" / "info" / "exclude"
    if not (ROOT / ".git").is_dir():
        return
    exclude.parent.mkdir(parents=True, exist_ok=True)
    lines = exclude.read_text().splitlines() if exclude.is_file() else []
    if path not in lines:
        with exclude.open("a") as handle:
            handle.write(path + "\n")
        print(f"added {path} to {exclude}")


def _glue_readme(text: str, tasks: list[str]) -> str:
    """The GLUE mirror's README front matter with only the configs of ``tasks`` (datasets resolves every
    config it lists, so a partial copy lists only what it holds)."""
    head, sep, rest = text.partition("configs:\n")
    body, end, _ = rest.partition("\n---")
    blocks = re.split(r"(?m)^(?=- config_name: )", body)
    kept = [b for b in blocks if (m := re.match(r"- config_name: (\S+)", b)) and m.group(1) in tasks]
    return head + sep + "".join(kept).rstrip("\n") + "\n---\n"


def pack(args) -> int:
    shared, into = Path(args.shared).resolve(), Path(args.into).resolve()
    hub, glue = shared / "hf" / "hub", shared / "data" / "glue"
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    problems = model_problems(hub) + glue_problems(glue, tasks)
    if problems:
        print("pack needs the mirrors; missing: " + ", ".join(problems), file=sys.stderr)
        return 2
    snapshot_rel = Path("hf/hub") / MODEL_DIR / "snapshots" / (hub / MODEL_DIR / "refs/main").read_text().strip()
    shutil.rmtree(into, ignore_errors=True)
    one, two = into / "1", into / "2"
    (one / snapshot_rel).mkdir(parents=True)
    two.mkdir(parents=True)
    (one / "hf/hub" / MODEL_DIR / "refs").mkdir(parents=True)
    shutil.copy(hub / MODEL_DIR / "refs/main", one / "hf/hub" / MODEL_DIR / "refs/main")
    for name in MODEL_FILES:
        shutil.copy(shared / snapshot_rel / name, one / snapshot_rel / name)
    (one / "data/glue").mkdir(parents=True)
    (one / "data/glue/README.md").write_text(_glue_readme((glue / "README.md").read_text(), tasks))
    for task in tasks:
        shutil.copytree(glue / task, one / "data/glue" / task)
    weights = shared / snapshot_rel / WEIGHTS
    size = weights.stat().st_size
    first = min(size, int(args.chunk_mib * 2**20))
    with weights.open("rb") as source:
        (one / "weights.1").write_bytes(source.read(first))
        (two / "weights.2").write_bytes(source.read())
    manifest = {"parts": 2, "weights": str(snapshot_rel / WEIGHTS), "size": size, "sha256": sha256(weights),
                "source": str(shared)}
    for n, part in ((1, one), (2, two)):
        (part / "manifest.json").write_text(json.dumps({**manifest, "part": n}, indent=1) + "\n")
    if into.is_relative_to(ROOT):
        _exclude("/" + str(into.relative_to(ROOT)) + "/")
    rel = into.relative_to(ROOT) if into.is_relative_to(ROOT) else into
    print(f"packed {MODEL_ID} and GLUE {','.join(tasks)} into {into}: part 1 {mib(one):.1f} MiB, part 2 {mib(two):.1f} MiB")
    if args.wheels:
        rc = download_wheels(Path(args.wheel_dir).resolve())
        if rc:
            return rc
    print("then, with the device tool (one warm machine, the second call within 30 s of the first):")
    print(f'  run(command="python3 .ci/gpu_check.py stage", carry=["{rel}/1"])')
    print(f'  run(command="make gpu-check", carry=["{rel}/2", ".whl"], timeout_s=600)')
    return 0


def download_wheels(folder: Path) -> int:
    """``pip download`` (the device README's route) of what the lent machines lack, at the locked versions."""
    versions = lock_versions()
    folder.mkdir(parents=True, exist_ok=True)
    if folder.is_relative_to(ROOT):
        _exclude("/" + str(folder.relative_to(ROOT)) + "/")
    platforms = [a for p in PIP_PLATFORMS for a in ("--platform", p)]
    for name in DEVICE_WHEELS:
        spec = f"{name}=={versions[_norm(name)]}" if _norm(name) in versions else name
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "--python-version",
               "3.12", "--implementation", "cp", *platforms, "-d", str(folder), spec]
        print("$ " + " ".join(cmd))
        if subprocess.call(cmd):
            print(f"pip could not download {spec}; see the device README for other --platform tags", file=sys.stderr)
            return 1
    print(f"wheels in {folder}: {mib(folder):.1f} MiB")
    return 0


def stage(args) -> int:
    parts = sorted((ROOT / ".gpu-mirror").glob("*/manifest.json"))
    if not parts:
        print("stage: no .gpu-mirror/<n>/manifest.json here (carry a part packed by `gpu_check.py pack`)", file=sys.stderr)
        return 2
    for manifest in parts:
        shutil.copytree(manifest.parent, STAGE / "parts" / manifest.parent.name, dirs_exist_ok=True)
    print(f"staged mirror part(s) {[p.parent.name for p in parts]} in {STAGE / 'parts'}; "
          "run the check carrying the other part within 30 s, on this machine")
    return 0


# --- the steps that run in a subprocess --------------------------------------------------------------------

def probe(args) -> int:
    """Import the package's needs; print one JSON line: versions, errors, and the chapter's GLUE tasks."""
    import importlib
    import importlib.metadata

    out = {"versions": {}, "errors": {}}
    for module, dist in PACKAGES:
        try:
            importlib.import_module(module)
            out["versions"][dist] = importlib.metadata.version(dist)
        except Exception as error:  # noqa: BLE001 - report whatever breaks the import
            out["errors"][dist] = f"{type(error).__name__}: {error}".splitlines()[0][:300]
    if not out["errors"]:
        try:
            from compressible import __version__, sweeps

            out["versions"]["compressible"] = __version__
            out["tasks"] = sorted({e.config.task for e in sweeps.plan(args.chapter, args.scale)}
                                  | {e.config.task for e in sweeps.plan("fewshot_glue", args.scale, ["fig6"])})
        except Exception as error:  # noqa: BLE001
            out["errors"]["compressible"] = f"{type(error).__name__}: {error}".splitlines()[0][:300]
    print("PROBE " + json.dumps(out))
    return 0


def time_fig6(args) -> int:
    """One Fig. 6 run of ``args.chapter``'s plan at ``args.scale`` (compressed Deep LoRA, smallest n, seed 0) on
    ``args.device``: at ci, the evidence plan's is 500 steps, Few-shot GLUE's 200."""
    import torch

    from compressible import sweeps
    from compressible.finetune.classify import Runner, autocast_dtype
    from compressible.environment import environment_info
    from compressible.store import config_key

    experiments = sweeps.plan(args.chapter, args.scale, ["fig6"])
    experiment = next((e for e in experiments if e.label in ("Deep LoRA", "compressed")), experiments[0])
    config, seed = experiment.config, 0
    runner = Runner(device=args.device, progress=False)
    tic = time.perf_counter()
    result = runner.run(config, seed)
    if torch.device(args.device).type == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - tic
    timings = result["timings"]
    env = environment_info(args.device)
    out = {
        "what": f"one Fig. 6 run at {args.scale} scale", "method": experiment.label, "task": config.task,
        "n_train": config.n_train, "steps": config.steps, "seed": seed, "backbone": config.backbone,
        "config_key": config_key(config), "device": str(runner.device), "gpu": env.get("gpu"),
        "precision": str(autocast_dtype(config.autocast, runner.device) or "float32").removeprefix("torch."),
        "wall_s": round(wall, 3), "train_s": round(timings["train"], 3),
        "steps_per_s": round(config.steps / timings["train"], 2) if timings["train"] > 0 else None,
        "timings": {k: round(v, 3) for k, v in timings.items()}, "final": result["final"],
        "torch": env.get("torch"), "transformers": env.get("transformers"), "cpu": env.get("cpu"),
    }
    Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    print(f"FIG6 {out['wall_s']:.1f} s wall, {out['steps_per_s']} steps/s ({config.steps} steps, train {out['train_s']:.1f} s, "
          f"{out['precision']}, {out['method']} n={config.n_train}, {config.task} {result['metric']} "
          f"{result['final'][result['metric']]:.3f}) on {out['gpu'] or out['device']}")
    return 0


def verify_ledger(args) -> int:
    """Verify the ledger's runs of ``args.chapters`` by re-executing them on ``args.device``."""
    import pandas as pd

    from compressible.ledger.verify import verify

    pd.set_option("display.width", 250)
    pd.set_option("display.max_colwidth", 60)
    report = verify(args.ledger, device=args.device, scales=[args.scale], chapters=args.chapters.split(","),
                    raise_on_failure=False)
    table = report.table()
    print(f"=== ledger verification on {args.device} ({report.records} records) ===")
    print(table.to_string(index=False))
    print(f"VERIFY {'ok' if report.ok else 'FAILED'}: {int(table['ok'].sum())} of {len(table)} checks within tolerance")
    return 0 if report.ok else 1


# --- the check ---------------------------------------------------------------------------------------------

def _device_test_files() -> list[str]:
    """Test files with a device-aware test or fixture (an argument named ``device``): collecting only these
    keeps the other tests' imports (generation, Ray) out of the GPU check."""
    pattern = re.compile(r"def \w+\([^)]*\bdevice\b", re.S)
    return sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("test_*.py") if pattern.search(p.read_text()))


def check(args) -> int:
    start = time.monotonic()
    budget = float(args.budget)
    out = Path(args.out or os.environ.get("OUT") or ROOT / "_build" / "gpu-check").resolve()
    steps: list[dict] = []

    def remaining() -> float:
        return budget - (time.monotonic() - start)

    def record(step: str, tic: float, status: str, detail: str = "") -> None:
        steps.append({"step": step, "seconds": round(time.monotonic() - tic, 1), "status": status, "detail": detail})

    # a. CUDA, before anything is written
    try:
        import torch
    except ImportError:
        print(f"gpu-check needs a CUDA GPU and PyTorch: torch is not importable by {sys.executable}", file=sys.stderr)
        return 2
    if args.device.startswith("cuda"):
        if not torch.cuda.is_available():
            print(f"gpu-check needs a CUDA GPU: torch.cuda.is_available() is False on this machine (torch {torch.__version__})",
                  file=sys.stderr)
            return 2
        machine = f"{torch.cuda.get_device_name()} ({torch.cuda.device_count()} visible), torch {torch.__version__}, CUDA {torch.version.cuda}"
    else:
        machine = f"dry run on {args.device} (checks this script, not a GPU), torch {torch.__version__}"
    out.mkdir(parents=True, exist_ok=True)
    for name in OUTPUTS:  # this run's files only, not an earlier run's
        (out / name).unlink(missing_ok=True)
    log = Log(out / "gpu-check.log")
    log(f"gpu-check: {machine}; budget {budget:.0f} s; output {out}")
    record("a. CUDA", time.monotonic(), "ok", machine)

    # b. packages (wheels from .whl/ first, offline)
    tic = time.monotonic()
    env = dict(os.environ)
    paths = [str(ROOT / "src")]
    wheels = sorted((ROOT / ".whl").glob("*.whl"))
    if wheels:
        rc = subprocess.call([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                              "--no-cache-dir", "--upgrade", "--target", str(SITE), *map(str, wheels)])
        if rc:
            log(f"gpu-check: pip could not install the wheels of .whl/ offline (exit {rc})")
            return 2
        paths.insert(0, str(SITE))
        log(f"  installed {len(wheels)} wheels from .whl/ into {SITE}: {', '.join(w.name.split('-')[0] for w in wheels)}")
    env["PYTHONPATH"] = os.pathsep.join(paths + [p for p in [env.get("PYTHONPATH")] if p])
    results = tempfile.mkdtemp(prefix="gpu-check-results-")  # nothing the check computes goes to ./results
    atexit.register(shutil.rmtree, results, True)
    env.update({"PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false", "MPLBACKEND": "Agg",
                "COMPRESSIBLE_RESULTS": results})
    probe_run = subprocess.run([sys.executable, __file__, "_probe", "--chapter", args.chapter, "--scale", args.scale],
                               capture_output=True, text=True, env=env, cwd=ROOT)
    line = next((l for l in probe_run.stdout.splitlines() if l.startswith("PROBE ")), None)
    if line is None:
        log(f"gpu-check: the package check itself failed:\n{probe_run.stdout}{probe_run.stderr}")
        return 2
    found = json.loads(line[len("PROBE "):])
    locked = lock_versions()
    log("  package          found          requirements/lock.txt")
    for dist, version in found["versions"].items():
        lock = locked.get(_norm(dist), "-")
        log(f"  {dist:16s} {version:14s} {lock}{'' if lock in ('-', version.split('+')[0]) else '   (differs)'}")
    if found["errors"]:
        for dist, error in found["errors"].items():
            log(f"  {dist:16s} MISSING        {locked.get(_norm(dist), '-'):14s} {error}")
        names = ", ".join(dist + (f" (needs {m.group(1).split('.')[0]})" if (m := re.search(r"No module named '([^']+)'", error))
                                  and _norm(m.group(1).split(".")[0]) != _norm(dist) else "")
                          for dist, error in found["errors"].items())
        log(f"gpu-check needs Python packages that do not import here: {names}. Bring them as wheels (no network here): "
            "on a machine with pip, `python3 .ci/gpu_check.py pack --wheels` (or the device README's `pip download "
            "--no-deps --only-binary=:all: --python-version 3.12 ... -d .whl NAME==VERSION`, versions from "
            "requirements/lock.txt, each missing dependency named too), then carry .whl; this check installs them offline.")
        return 2
    record("b. packages", tic, "ok", f"{len(found['versions'])} import; compressible {found['versions'].get('compressible')}")

    # c. mirrors
    tic = time.monotonic()
    tasks = found.get("tasks") or ["stsb"]
    mirror_env, missing = find_mirrors(tasks, need_weights=args.scale != "smoke", log=log)
    if missing:
        for problem in missing:
            log(f"  {problem}")
        log(f"gpu-check needs the offline mirrors ({MODEL_ID}, GLUE {','.join(tasks)}): see the header of .ci/gpu_check.py "
            "(`python3 .ci/gpu_check.py pack` here, then carry .gpu-mirror/1 and /2)")
        return 2
    env.update(mirror_env)
    log(f"  mirrors: HF_HUB_CACHE={mirror_env['HF_HUB_CACHE']} COMPRESSIBLE_GLUE={mirror_env['COMPRESSIBLE_GLUE']}")
    record("c. mirrors", tic, "ok", f"{MODEL_ID}, GLUE {','.join(tasks)}")

    # d. the device-aware tests
    tic = time.monotonic()
    files = _device_test_files()
    cap = min(args.test_cap, remaining() - 60)
    if cap < 20:
        record("d. device tests", tic, "skipped", "no budget left")
    else:
        test_env = {**env, "COMPRESSIBLE_TEST_DEVICE": args.device}
        rc, seconds, timed_out = run_capped([sys.executable, "-m", "pytest", "-q", "-x", "-m", "device", "-p", "no:cacheprovider",
                                             *files], cap, out / "pytest.log", test_env)
        last = (tail(out / "pytest.log", 1) or ["(no output)"])[0]
        status = "timed out" if timed_out else ("ok" if rc == 0 else "FAILED")
        if rc:
            print("\n".join(tail(out / "pytest.log", 30)))
        log(f"  tests on {args.device} ({', '.join(files)}): {last}")
        record("d. device tests", tic, status, last)

    # e. one Fig. 6 run
    tic = time.monotonic()
    cap = min(args.fig6_cap, remaining() - 30)
    if cap < 20:
        record("e. Fig. 6 run", tic, "skipped", "no budget left")
    else:
        rc, seconds, timed_out = run_capped([sys.executable, __file__, "_fig6", "--device", args.device, "--scale", args.scale,
                                             "--chapter", args.chapter, "--json", str(out / "fig6-timing.json")],
                                            cap, out / "gpu-check.log", env)
        timing = json.loads((out / "fig6-timing.json").read_text()) if rc == 0 else None
        if rc:
            print("\n".join(tail(out / "gpu-check.log", 20)))
        detail = (f"{timing['wall_s']:.1f} s wall, {timing['steps_per_s']} steps/s ({timing['steps']} steps, {timing['precision']})"
                  if timing else (tail(out / "gpu-check.log", 1) or [""])[0][:150])
        log(f"  Fig. 6 run: {detail}")
        record("e. Fig. 6 run", tic, "timed out" if timed_out else ("ok" if timing else "FAILED"), detail)

    # f. grow the ledger for the rest of the budget, pack the new records, verify
    tic = time.monotonic()
    ledger = (ROOT / args.ledger).resolve()
    rest = remaining()
    if rest < 45:
        record("f. ledger sweep", tic, "skipped", "no budget left")
    else:
        verify_cap = min(150.0, max(30.0, 0.3 * rest))
        before = {p: p.stat().st_mtime_ns for p in ledger.rglob("*.json")} if ledger.is_dir() else {}
        sweep_cmd = [sys.executable, "-m", "compressible.sweeps", "run", args.chapter, "--scale", args.scale, "--device",
                     args.device, "--into", str(ledger), "--nice", "0", "--no-progress"]
        rc, seconds, timed_out = run_capped(sweep_cmd, rest - verify_cap - 10, out / "sweep.log", env)
        new = sorted(p for p in ledger.rglob("*.json") if before.get(p) != p.stat().st_mtime_ns) if ledger.is_dir() else []
        records = [p for p in new if p.name.startswith("seed-") and not p.name.endswith(".failed.json")]
        failures = [p for p in new if p.name.endswith(".failed.json")]
        kept = [p for p in new if p not in failures]
        if kept:
            with tarfile.open(out / "ledger-new.tar.gz", "w:gz") as tar:
                for path in kept:
                    tar.add(path, arcname=str(path.relative_to(ledger)))
        for failure in failures:
            log(f"  failed run {failure.relative_to(ledger)}: {json.loads(failure.read_text()).get('error', '?')[:200]}")
        finished = any(re.search(r" scale: \d+ runs computed", line) for line in tail(out / "sweep.log", 5))
        status = "FAILED" if failures or (rc not in (0, 124, 137)) else "ok"
        detail = (f"{len(records)} new records in {seconds:.0f} s"
                  + (", every planned run stored" if finished and not failures else ", stopped at the budget" if timed_out
                     else f", exit {rc}")
                  + (f", {len(failures)} failed runs" if failures else ""))
        if rc not in (0, 124, 137):
            print("\n".join(tail(out / "sweep.log", 20)))
        log(f"  ledger: {detail}")
        if kept:
            log(f"  new records: {out / 'ledger-new.tar.gz'}; unpack them here with: "
                f"tar -xzf <files_at>/ledger-new.tar.gz -C {args.ledger}")
        record("f. ledger sweep", tic, status, detail)

        tic = time.monotonic()
        cap = remaining() - 5
        chapters = ",".join(CHAPTER_VERIFIED.get(args.chapter, (args.chapter,)))
        if cap < 20 or not ledger.is_dir():
            record("f. ledger verify", tic, "skipped", "no budget left" if cap < 20 else "no ledger")
        else:
            rc, seconds, timed_out = run_capped([sys.executable, __file__, "_verify", "--device", args.device, "--scale",
                                                 args.scale, "--ledger", str(ledger), "--chapters", chapters],
                                                cap, out / "verify.log", env)
            for line in tail(out / "verify.log", 40):
                if not line.startswith("$ "):
                    log("  " + line)
            last = next((l for l in reversed(tail(out / "verify.log", 40)) if l.startswith("VERIFY")), "")
            status = "timed out" if timed_out else ("ok" if rc == 0 else "FAILED")
            record("f. ledger verify", tic, status, last.removeprefix("VERIFY ") or f"exit {rc}")

    # g. summary
    total = time.monotonic() - start
    log("")
    log(f"=== gpu-check summary ({machine}; {total:.0f} s of a {budget:.0f} s budget) ===")
    log(f"{'step':18s} {'seconds':>8s}  {'result':9s}  detail")
    for s in steps:
        log(f"{s['step']:18s} {s['seconds']:8.1f}  {s['status']:9s}  {s['detail']}")
    (out / "summary.json").write_text(json.dumps({"machine": machine, "budget_s": budget, "total_s": round(total, 1),
                                                  "steps": steps}, indent=1) + "\n")
    return 1 if any(s["status"] == "FAILED" for s in steps) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gpu_check.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command")
    parser.add_argument("--budget", type=float, default=float(os.environ.get("GPU_CHECK_BUDGET") or DEFAULT_BUDGET),
                        help=f"seconds for every step together ($GPU_CHECK_BUDGET, default {DEFAULT_BUDGET})")
    parser.add_argument("--out", default=None, help="output folder (default: $OUT, else _build/gpu-check)")
    parser.add_argument("--device", default="cuda", help="torch device (cuda; cpu checks the script itself)")
    parser.add_argument("--scale", default="ci", help="scale of the Fig. 6 run and of the sweep (default ci)")
    parser.add_argument("--chapter", default="fewshot_evidence",
                        help="the chapter whose sweep grows the ledger (default fewshot_evidence, whose ledger is not complete)")
    parser.add_argument("--ledger", default="ledger", help="the ledger folder, relative to the project (default ledger)")
    parser.add_argument("--test-cap", type=float, default=150.0, help="seconds at most for the tests (default 150)")
    parser.add_argument("--fig6-cap", type=float, default=180.0, help="seconds at most for the Fig. 6 run (default 180)")
    p = sub.add_parser("pack", help="here: pack the mirrors into .gpu-mirror/1 and /2 (and wheels into .whl/)")
    p.add_argument("--shared", default=str(ROOT.parent / "shared"))
    p.add_argument("--into", default=str(ROOT / ".gpu-mirror"))
    p.add_argument("--tasks", default=GLUE_TASKS, help="GLUE tasks to pack (default: the eight the evidence plan uses; "
                   "stsb is all Few-shot GLUE needs at ci)")
    p.add_argument("--chunk-mib", type=float, default=40.0, help="MiB of the weights in part 1 (default 40)")
    p.add_argument("--wheels", action="store_true", help="also pip download the wheels the lent machines lack")
    p.add_argument("--wheel-dir", default=str(ROOT / ".whl"))
    sub.add_parser("stage", help="there, first call: copy the carried mirror part(s) to /tmp for the next call")
    for name in ("_probe", "_fig6", "_verify"):  # the steps that run in their own process
        q = sub.add_parser(name)
        q.add_argument("--device", default="cuda")
        q.add_argument("--scale", default="ci")
        q.add_argument("--chapter", default="fewshot_evidence")
        q.add_argument("--chapters", default="fewshot_evidence")
        q.add_argument("--json", default=None)
        q.add_argument("--ledger", default="ledger")
    args = parser.parse_args(argv)
    commands = {"pack": pack, "stage": stage, "_probe": probe, "_fig6": time_fig6, "_verify": verify_ledger}
    return commands[args.command](args) if args.command else check(args)


if __name__ == "__main__":
    sys.exit(main())
