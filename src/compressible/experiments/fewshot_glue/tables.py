"""The chapter's tables, from its summary (and, for the runs and data cards, its results): the paper's numbers
beside ours, with column names and one-line cells; the words about them are the chapter's."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...reference import PROVENANCE, paper_value
from ...scales import scale_label
from ..glue_methods import ATTENTION_POOLER_TARGETS
from ..glue_runs import METHOD_LABELS
from ..glue_stats import mean_pm_std
from ..paired import PairedScores
from ..style import PAPER_LABEL
from .checks import PrecisionSummary, TrainingCheck
from .diagnosis import DiagnosisSummary
from .plan import SCALED, plan
from .run import FewshotGlueResults
from .summary import FewshotGlueSummary

__all__ = ["ours_label", "paper_protocol", "settings_table", "data_cards_table", "table1_table", "fig6_table",
           "fig7_table", "fig8_table", "per_seed_table", "fig8_probe_table", "precision_table", "training_table",
           "diagnosis_table"]


def ours_label(scale: str) -> str:
    """Column and legend label of this build's numbers, e.g. ``"ours (ci scale, all-MiniLM-L6-v2)"``."""
    return f"ours ({scale_label(scale)}, {plan(scale).backbone.split('/')[-1]})"


def paper_protocol() -> dict[str, dict]:
    """The paper's protocol of Table 1, Fig. 6 and Fig. 8 (seeds, steps, ...)."""
    return {
        "table1": paper_value("table1_glue_1024", "protocol"),
        "fig6": paper_value("figure6_stsb_fewshot", "protocol"),
        "fig8": paper_value("figure8_rank_sweep_stsb16", "protocol"),
    }



def settings_table(results: FewshotGlueResults) -> pd.DataFrame:
    """One row per experiment that ran (tuning grid first): part, method, task, n, r, steps, rates,
    targets, head and pooler, precision and seeds."""
    rows = results.experiments
    return pd.DataFrame([
        {"part": e.part, "method": e.label, "task": e.config.task, "n": e.config.n_train,
         "r": "full" if e.config.adapter.init == "full" else e.config.adapter.rank,
         "steps": e.config.steps, "lr (inner)": f"{e.config.lr:g}",
         "lr (outer)": f"{e.config.outer_lr:g}" if e.config.outer_lr is not None else "-",
         "targets": "attention + pooler" if e.config.adapter.targets == ATTENTION_POOLER_TARGETS else e.config.adapter.targets,
         "head / pooler": (f"trained, lr {e.config.head_lr:g}" if e.config.train_head else "frozen (random)")
                          + f" / {e.config.pooler}",
         "autocast": e.config.autocast, "seeds": len(e.seeds)}
        for e in rows
    ])


def data_cards_table(results: FewshotGlueResults) -> pd.DataFrame:
    """One data card per task the chapter uses, with the filtered pool and evaluation sizes of its stored runs."""
    cards = []
    for task, r in results.sizes.items():
        card = results.cards[task]
        cards.append({
            "task": task,
            "source": "offline mirror" if card["local_mirror"] else card["hub_id"],
            "train rows (official)": f"{card['splits'].get('train', 0):,} ({card['official_sizes']['train']:,})",
            "train pool ≤ 128 tokens": f"{r['train_pool']:,}",
            "eval split": card["eval_split"],
            "eval rows (official)": f"{card['splits'].get(card['eval_split'], 0):,} "
                                    f"({card['official_sizes'][card['eval_split']]:,})",
            "eval rows used": f"{r['n_eval']:,}" + (" (subset)" if results.plan.methods.eval_limit else ""),
            "dropped by filter": r["eval_dropped_by_filter"],
            "labels": "regression" if card["regression"] else card["num_labels"],
            "caveats": len(card["caveats"]),
        })
    return pd.DataFrame(cards)



def _ours_columns(s: PairedScores, ours: str, digits: int) -> dict:
    return {
        f"LoRA — {ours}": mean_pm_std(s.lora, s.lora_std, digits), f"Deep LoRA — {ours}": mean_pm_std(s.deep, s.deep_std, digits),
        f"Deep − LoRA — {ours}": mean_pm_std(s.gain, s.gain_std, digits), f"Deep ahead — {ours}": f"{s.deep_wins}/{s.seeds}",
    }



def table1_table(summary: FewshotGlueSummary) -> pd.DataFrame:
    """Table 1: per task and on average, the paper's LoRA, Deep LoRA, difference and wins beside ours."""
    ours, t = ours_label(summary.scale), summary.table1
    pv = {m: paper_value("table1_glue_1024", m) for m in ("vanilla", "deep", "delta_std_over_seeds", "seeds_with_deep_better")}
    metric_of, seeds = paper_value("table1_glue_1024", "metric"), paper_protocol()["table1"]["seeds"]
    dagger = summary.mirror
    rows = []
    for task, s in t.by_task.items():
        rows.append({
            "task": task + (" †" if task == "qqp" and dagger else ""), "metric": metric_of[task], "chance": f"{s.chance:.1f}",
            f"LoRA — {PROVENANCE}": f"{pv['vanilla'][task]:.2f}", f"Deep LoRA — {PROVENANCE}": f"{pv['deep'][task]:.2f}",
            f"Deep − LoRA — {PROVENANCE}": f"{pv['deep'][task] - pv['vanilla'][task]:+.2f} ± {pv['delta_std_over_seeds'][task]:.2f}",
            f"Deep ahead — {PROVENANCE}": f"{pv['seeds_with_deep_better'][task]}/{seeds}",
            **_ours_columns(s, ours, 2),
        })
    paper_avg = {m: float(np.mean([pv[m][task] for task in t.tasks])) for m in ("vanilla", "deep")}
    rows.append({
        "task": f"average ({len(t.tasks)} tasks)", "metric": "",
        "chance": f"{np.mean([s.chance for s in t.by_task.values()]):.1f}",
        f"LoRA — {PROVENANCE}": f"{paper_avg['vanilla']:.2f}", f"Deep LoRA — {PROVENANCE}": f"{paper_avg['deep']:.2f}",
        f"Deep − LoRA — {PROVENANCE}": f"{paper_avg['deep'] - paper_avg['vanilla']:+.2f}", f"Deep ahead — {PROVENANCE}": "",
        **_ours_columns(t.average, ours, 2),
    })
    return pd.DataFrame(rows)


def _figure_table(by: dict[int, PairedScores], key: str, paper: dict, ours: str) -> pd.DataFrame:
    rows = []
    for k, s in by.items():
        has = str(k) in paper["deep"]
        mean = {m: (paper[m][str(k)]["mean"] if isinstance(paper[m].get(str(k)), dict) else paper[m].get(str(k)))
                for m in ("vanilla", "deep")}
        std = {m: paper[m][str(k)].get("std") if has and isinstance(paper[m][str(k)], dict) else None
               for m in ("vanilla", "deep")}
        rows.append({
            key: k,
            f"LoRA — {PROVENANCE}": mean_pm_std(mean["vanilla"], std["vanilla"], 3) if has else "—",
            f"Deep LoRA — {PROVENANCE}": mean_pm_std(mean["deep"], std["deep"], 3) if has else "—",
            f"Deep − LoRA — {PROVENANCE}": f"{mean['deep'] - mean['vanilla']:+.3f}" if has else "—",
            **_ours_columns(s, ours, 3),
        })
    return pd.DataFrame(rows)


def _interval(s: PairedScores) -> str:
    if s.gain is None:
        return "n/a"
    ci = "" if s.low is None else f" [{s.low:+.3f}, {s.high:+.3f}]"
    return f"{s.gain:+.3f}{ci}"


def fig6_table(summary: FewshotGlueSummary) -> pd.DataFrame:
    """Fig. 6: STS-B Pearson per ``n``: the paper's mean ± std, then ours with each paired difference's
    mean, 95 % t-interval and Wilcoxon p-value, for compressed and (where run) full-width Deep LoRA."""
    paper = {m: paper_value("figure6_stsb_fewshot", m) for m in ("vanilla", "deep")}
    table = _figure_table(summary.fig6.by_n, "n", paper, "ours")
    table = table.drop(columns=["Deep − LoRA — ours"])
    table["Deep − LoRA — ours, 95 % CI"] = [_interval(s) for s in summary.fig6.by_n.values()]
    table["Wilcoxon p"] = ["n/a" if s.wilcoxon_p is None else f"{s.wilcoxon_p:.2g}" for s in summary.fig6.by_n.values()]
    full = summary.fig6.full_by_n
    if full:
        table[f"{METHOD_LABELS['full']} — ours"] = [
            mean_pm_std(full[n].deep, full[n].deep_std, 3) if n in full else "—" for n in summary.fig6.by_n]
        table["full width − LoRA — ours, 95 % CI"] = [_interval(full[n]) if n in full else "—" for n in summary.fig6.by_n]
    return table


def fig8_table(summary: FewshotGlueSummary) -> pd.DataFrame:
    """Fig. 8: STS-B Pearson per adapter rank ``r``, the paper's means beside ours."""
    paper = {m: paper_value("figure8_rank_sweep_stsb16", m) for m in ("vanilla", "deep")}
    table = _figure_table(summary.fig8.by_rank, "r", paper, ours_label(summary.scale))
    scaled = summary.fig8.scaled_by_rank
    if scaled:
        table[f"{SCALED} — ours"] = [mean_pm_std(scaled[r].deep, scaled[r].deep_std, 3) if r in scaled else "—"
                                     for r in summary.fig8.by_rank]
        table["rate ∝ 1/r − LoRA — ours, 95 % CI"] = [_interval(scaled[r]) if r in scaled else "—"
                                                       for r in summary.fig8.by_rank]
    return table


def fig7_table(summary: FewshotGlueSummary) -> pd.DataFrame:
    """Fig. 7: the paper's claim beside our rank statistics."""
    f = summary.fig7
    return pd.DataFrame([
        {"": PAPER_LABEL, "claim": paper_value("figure7_numerical_rank", "paper_claim")},
        {"": ours_label(summary.scale), "claim": (
            f"{100 * f.lora_fraction_full_rank:.0f}% of LoRA updates have rank {f.rank_cap} (median {f.lora_median_rank:.0f}); "
            f"Deep LoRA: {100 * f.deep_fraction_rank0:.0f}% rank 0, {100 * f.deep_fraction_rank_le4:.0f}% rank ≤ 4, "
            f"median {f.deep_median_rank:.0f}")},
    ])


def per_seed_table(summary: FewshotGlueSummary) -> pd.DataFrame:
    """Deep LoRA - LoRA for every seed of every experiment (Table 1 in points, Figs. 6 and 8 in Pearson)."""
    rows = [(f"Table 1, {t}", s) for t, s in summary.table1.by_task.items()] if summary.table1 is not None else []
    rows += [(f"Fig. 6, n = {n}", s) for n, s in summary.fig6.by_n.items()]
    rows += [(f"Fig. 6, n = {n}, full width − LoRA", s) for n, s in summary.fig6.full_by_n.items()]
    rows += [(f"Fig. 8, r = {r}", s) for r, s in summary.fig8.by_rank.items()] if summary.fig8 is not None else []
    rows += [(f"Fig. 8, r = {r}, rate ∝ 1/r − LoRA", s) for r, s in summary.fig8.scaled_by_rank.items()
             ] if summary.fig8 is not None else []
    seeds = sorted({seed for _, s in rows for seed in s.differences})
    return pd.DataFrame([
        {"experiment": name,
         **{f"seed {seed}": "—" if s.differences.get(seed) is None else f"{s.differences[seed]:.3f}" for seed in seeds},
         "Deep ahead": f"{s.deep_wins}/{sum(v is not None for v in s.differences.values())}"}
        for name, s in rows
    ])


def fig8_probe_table(summary: FewshotGlueSummary) -> pd.DataFrame:
    """Per method and rank of Fig. 8: runs trained, the head input's final spread as a share of its start
    (per seed) and the final share of saturated pooler units (per seed)."""
    rows = []
    for m, by_rank in (summary.fig8.probes.items() if summary.fig8 is not None else ()):
        for rank, xs in by_rank.items():
            rows.append({"method": m, "r": rank, "trained": f"{sum(x.trained for x in xs)} of {len(xs)}",
                         "final spread / start": " / ".join(f"{x.final_spread / x.start_spread:.3f}" for x in xs),
                         "saturated pooler units at the end": " / ".join(
                             "n/a" if x.final_saturated is None else f"{x.final_saturated:.0%}" for x in xs)})
    return pd.DataFrame(rows)


def precision_table(summary: PrecisionSummary) -> pd.DataFrame:
    """Per seed: float32 and bf16 scores and their difference, then the seed-to-seed spread."""
    rows = [{"seed": str(s), "float32": f"{summary.float32[s]:.3f}", "bf16 autocast": f"{summary.bf16[s]:.3f}",
             "bf16 − float32": f"{summary.bf16[s] - summary.float32[s]:+.3f}"} for s in summary.seeds]
    rows.append({"seed": "seed-to-seed std (float32)", "float32": f"{summary.seed_std:.3f}", "bf16 autocast": "",
                 "bf16 − float32": f"mean {summary.mean_difference:+.3f}"})
    return pd.DataFrame(rows)


def training_table(check: TrainingCheck) -> pd.DataFrame:
    """Per part, method and ``n``: runs, how many trained, and the mean final and baseline losses."""
    frame = pd.DataFrame([r.model_dump() for r in check.runs])
    g = frame.groupby(["part", "task", "method", "n", "rank"], sort=False)
    return pd.DataFrame({
        "runs": g.size(), "trained": g["trained"].sum(),
        "final train loss (mean)": g["final_train_loss"].mean().map("{:.3f}".format),
        "constant-predictor loss (mean)": g["loss_baseline"].mean().map("{:.3f}".format),
    }).reset_index().astype({"trained": int})


def diagnosis_table(summary: DiagnosisSummary) -> pd.DataFrame:
    """One row per method or variant: final training loss and validation Pearson per seed, runs trained."""
    rows = []
    for label, runs in summary.runs.items():
        row = {"": label}
        for r in runs:
            row[f"seed {r.seed}: loss / baseline"] = f"{r.final_train_loss:.2f} / {r.loss_baseline:.2f}"
        row["trained"] = f"{sum(r.trained for r in runs)} of {len(runs)}"
        spectra = [r for r in runs if r.modules]  # runs that stored update spectra
        row["rank-one updates"] = (f"{sum(r.rank_one for r in spectra)} of {sum(r.modules for r in spectra)}"
                                   if spectra else "n/a")
        row["head input spread, end / start"] = " / ".join(
            "n/a" if r.spread_ratio is None else f"{r.spread_ratio:.3f}" for r in runs)
        values = [r.validation for r in runs if r.validation is not None]
        row["validation Pearson (mean)"] = f"{np.mean(values):.3f}" if values else "n/a"
        rows.append(row)
    return pd.DataFrame(rows)
