# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
#   compressible:
#     figures: 0
# ---

# %% [markdown]
# # Running the paper scale
#
# This book is built at `ci` scale on two CPU cores. The `paper` scale is the authors' protocol:
# `bert-base-cased`, every task, every seed and every step -- hundreds of GPU runs for the two
# Deep LoRA chapters alone. This page says how to compute them on one GPU, on a machine with
# several GPUs, or on a cluster, and where the results go. Every run is one `(config, seed)`,
# stored as one file: a sweep can stop at any time and resume where it stopped, on any machine
# that sees the same store.

# %% tags=["parameters", "remove-cell"]
scale = "ci"

# %%
from IPython.display import Markdown, display
from myst_nb import glue

from compressible.experiments import paper_scale as experiment
from compressible.scales import scale_label
from compressible.summaries import save_summary

results = experiment.run(scale)  # reads the plans and the result store; trains nothing
summary = experiment.summarise(results)
save_summary(summary)

# %% [markdown]
# ## How many runs
#
# Unique runs of each sweep chapter at each scale (a run that two figures share counts once) and
# the training steps they add up to, counted from the chapters' frozen plans. The Table 1
# protocol alone is 8 tasks × 10 seeds × 2 methods × 1000 steps (SST-2: 600) of `bert-base-cased`.

# %%
display(experiment.counts_table(summary).style.hide(axis="index").set_caption(
    "Runs and training steps per chapter and scale (from the plans)"))

# %% [markdown]
# ## What a run costs
#
# The wall time that each stored run recorded where it was computed (the ledger's runs: the CPU or GPU
# its record names), per chapter. The GLUE chapters run at
# different steps, sequence lengths and evaluation sizes, so seconds per training step (evaluation
# included) is the more portable number. A CPU time says little about a GPU one: `make gpu-check` times a
# Fig. 6 run on a GPU when one is at hand.

# %%
display(experiment.costs_table(summary).style.hide(axis="index").set_caption(
    f"Measured cost per run ({scale_label(scale)})"))

# %% tags=["remove-cell"]
# what the table measured, or that the store holds nothing of this scale yet (summary.stored_runs)
glue("cost_note", Markdown(
    f"Measured in this build at {summary.scale} scale: the wall time each of the {summary.stored_runs} stored runs "
    "recorded (training, evaluations and spectra; a worker's first run also loads its data and backbone), on "
    f"{', '.join(summary.platforms) or 'an unrecorded platform'}." if summary.stored_runs else
    f"No run of the {summary.scale} scale is in the result store yet: build the GLUE chapters first (or "
    f"`python -m compressible.sweeps run all --scale {summary.scale}`), then execute this page again."),
    display=False)

# %% [markdown]
# {glue:md}`cost_note:myst`

# %% [markdown]
# ## The evidence plan of the few-shot claim
#
# {doc}`fewshot_evidence` is filled in the ledger rather than by a build: every method tuned at every $n$,
# then Fig. 6 at 500 steps on 10 seeds, PEFT's LoRA family at $n = 64$, then Fig. 8 and Table 1 at the
# tuned rates. What it costs per method, at the rate its held STS-B runs of the plan's steps were computed
# (processor time with one torch thread each, so a core-hour is one core busy for an hour, whatever else the
# machine did), and what is left:

# %%
from compressible.experiments.fewshot_evidence import tables as evidence_tables
from compressible.experiments.fewshot_evidence.summary import EvidenceSummary
from compressible.summaries import load_summary

evidence = load_summary(EvidenceSummary)
if evidence is None or evidence.scale != scale:
    display(Markdown("The evidence chapter did not run at this scale in this build."))
else:
    left = [h for h in evidence.core_hours_left.values() if h is not None]
    unmeasured = [m for m, h in evidence.core_hours_left.items() if h is None]
    display(evidence_tables.cost_table(evidence).style.hide(axis="index").set_caption(
        f"The evidence plan ({scale_label(scale)}, {evidence.steps} steps): {evidence.runs_held} of "
        f"{evidence.runs_planned} runs held, {sum(left):.1f} core-hours left for the methods measured so far"
        + (f" (not counting {len(unmeasured)} methods without a run yet)" if unmeasured else "")
        + f"; computed on {', '.join(evidence.platforms) or 'no platform yet'}"))

# %% [markdown]
# A method none of whose runs is held has no measured rate yet ("—"); its cost is known once its first runs
# are in the ledger. A missing run is costed at what the held runs of its own part cost (Fig. 8 runs 200 steps
# at $n = 16$; Table 1 runs other tasks at $n = 1024$), and at the rate above scaled by its steps while its part
# has none. Per part, what one run cost:

# %%
if evidence is not None and evidence.scale == scale:
    display(evidence_tables.part_cost_table(evidence).style.hide(axis="index").set_caption(
        f"Core-seconds per run of each part of the evidence plan ({scale_label(scale)}), as held in the ledger"))

# %% [markdown]
# ## On one GPU
#
# ```bash
# python -m compressible.sweeps plan fewshot_glue --scale paper        # what will run
# python -m compressible.sweeps run all --scale paper --device cuda    # compute what is missing
# make book SCALE=paper                                                # chapters load the stored runs
# ```
#
# The runs execute one after another (`--executor local`, the default). Stop the sweep at any
# time: finished runs stay stored and the next `run` computes only the missing ones.
#
# ## On one machine with several GPUs
#
# ```bash
# pip install 'compressible[cluster]'        # Ray; `make test` installs it too
# python -m compressible.sweeps run all --scale paper --device cuda --executor ray --gpus-per-run 1
# ```
#
# `--executor ray` starts a [Ray](https://docs.ray.io) instance on this machine with all its CPUs
# and GPUs and makes every missing run one Ray task that asks for `--gpus-per-run` GPUs and
# `--cpus-per-run` CPUs (default 1). Ray gives each task its own GPU (`cuda` inside a task is
# that GPU); `--gpus-per-run 0.5` puts two runs on each GPU. One progress bar counts finished runs,
# and the sweep ends with a summary line: runs done, skipped because already stored, and failed,
# with each failure's config key and error.
#
# ## On a cluster
#
# Start Ray on the nodes with the tool the cluster already runs, or by hand:
#
# ```bash
# ray start --head --port=6379                     # on the head node
# ray start --address=<head-node>:6379             # on every other node
# python -m compressible.sweeps run all --scale paper --device cuda \
#     --executor ray --address auto --gpus-per-run 1 --root s3://<bucket>/compressible-results
# ```
#
# `--address auto` joins the cluster started on this node; `--address ray://<head-node>:10001`
# joins it from another machine. Every node needs the package (`pip install 'compressible[cluster]'`)
# and the same data: either network access to the Hugging Face hub, or the offline mirrors and the
# environment variables of the README, set in the shell that ran `ray start`.
#
# ## Where the results go
#
# Workers write their results themselves; nothing is shipped back through the driver. So on
# several machines the store must be one that every node sees: a shared folder (`--root
# /shared/results`) or an object store URL (`--root s3://...`, `gs://...`, with the matching fsspec
# package such as `s3fs`). Each run is one file, `<root>/RunConfig/<config key>/seed-<seed>.json`,
# written atomically -- to a temporary file renamed when complete, or in one object-store put -- so a
# worker killed mid-run leaves nothing behind, and a rerun computes only what is missing. A worker
# that dies is retried (Ray's `max_retries`); a run that raises is recorded as
# `seed-<seed>.failed.json` with its traceback and the sweep goes on; Ctrl-C on the driver cancels
# the pending runs and keeps the finished ones.
#
# Every result records where and with what it was computed (`_environment`: host, device, package
# versions, git commit). Runs are reproducible wherever they execute: a task fixes torch's threads
# (`--threads`, by default `--cpus-per-run`) and each run draws from its own seed exactly as a local
# sweep does (for bit-identical numbers between two sweeps, give both the same `--threads`). The book reads a local folder: point `COMPRESSIBLE_RESULTS` at the shared folder, or
# copy an object store there first, then `make book SCALE=paper`.
