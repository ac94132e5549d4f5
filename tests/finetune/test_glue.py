"""Tests of compressible.finetune.glue: the authors' length filter, few-shot sampling, data cards
(batching: test_batches.py).

Most tests build a tiny GLUE-layout folder and a word-level tokenizer in a temporary directory, so
that lengths are known exactly (a sentence of k words is k + 2 tokens, a pair k1 + k2 + 3).
"""

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from compressible.finetune import glue
from compressible.finetune.glue import data_card, derived_seed, load_glue, sample_indices

WORDS = [f"w{i}" for i in range(40)]


def _tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, **{w: i + 4 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )


def _sentence(k: int) -> str:
    return " ".join(WORDS[i % len(WORDS)] for i in range(k))


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A GLUE-layout folder with RTE (pairs) and CoLA (single sentences) of known token lengths."""
    root = tmp_path / "glue"
    # RTE: pair lengths k1 + k2 + 3 = 5 + (2 * i) + 3 -> 8, 10, ..., 46 for i = 0..19
    rte_train = pd.DataFrame({
        "sentence1": [_sentence(5)] * 20,
        "sentence2": [_sentence(2 * i) for i in range(20)],
        "label": [i % 2 for i in range(20)],
        "idx": np.arange(20, dtype=np.int32),
    })
    rte_val = pd.DataFrame({
        "sentence1": [_sentence(3)] * 6,
        "sentence2": [_sentence(10 * i) for i in range(6)],  # lengths 6, 16, 26, 36, 46, 56
        "label": [0, 1, 0, 1, 0, 1],
        "idx": np.arange(6, dtype=np.int32),
    })
    cola_train = pd.DataFrame({"sentence": [_sentence(i + 1) for i in range(30)], "label": [i % 2 for i in range(30)],
                               "idx": np.arange(30, dtype=np.int32)})
    for task, splits in {"rte": {"train": rte_train, "validation": rte_val},
                         "cola": {"train": cola_train, "validation": cola_train.iloc[:5]}}.items():
        (root / task).mkdir(parents=True)
        for split, frame in splits.items():
            frame.to_parquet(root / task / f"{split}-00000-of-00001.parquet", index=False)
    configs = "".join(
        f"- config_name: {task}\n  data_files:\n"
        + "".join(f"  - split: {split}\n    path: {task}/{split}-*\n" for split in ("train", "validation"))
        for task in ("rte", "cola")
    )
    (root / "README.md").write_text(f"---\nconfigs:\n{configs}---\n")  # the hub's config layout
    monkeypatch.setenv("COMPRESSIBLE_GLUE", str(root))
    return root


def test_filter_drops_examples_longer_than_max_length_in_every_split(mirror):
    """The authors filter train AND validation to <= max_length tokens (dlt/data.py)."""
    data = load_glue("rte", _tokenizer(), max_length=20)
    assert sorted(data.train.lengths().tolist()) == list(range(8, 21, 2))  # 8, 10, ..., 20
    assert data.train.idx.tolist() == list(range(7))
    assert data.eval.lengths().tolist() == [6, 16]
    assert data.raw_sizes == {"train": 20, "validation": 6}
    assert data.train.token_type_ids is not None and data.train.labels.dtype == np.int64
    kept = load_glue("rte", _tokenizer(), max_length=20, filter_eval=False)
    assert len(kept.eval) == 6 and len(kept.train) == 7


def test_sampling_depends_only_on_task_n_seed():
    a = sample_indices("stsb", 5000, 64, seed=3)
    assert np.array_equal(a, sample_indices("stsb", 5000, 64, seed=3))
    assert not np.array_equal(a, sample_indices("stsb", 5000, 64, seed=4))
    assert not np.array_equal(a, sample_indices("rte", 5000, 64, seed=3))
    assert a.min() >= 0 and a.max() < 5000
    # Known values pin the derivation: changing it would silently change every stored subset.
    assert derived_seed("sample", "stsb", 64, 3, True) == 4913479350287485052
    assert a[:5].tolist() == [1229, 1079, 1188, 4846, 806]
    assert derived_seed("a", 1) != derived_seed("a", 2)


def test_with_and_without_replacement():
    # With replacement, 200 draws from 100 rows must repeat some (pigeonhole).
    drawn = sample_indices("cola", 100, 200, seed=0, replace=True)
    assert len(np.unique(drawn)) < 200
    unique = sample_indices("cola", 100, 100, seed=0, replace=False)
    assert sorted(unique.tolist()) == list(range(100))  # a permutation: every row exactly once
    with pytest.raises(ValueError, match="cannot draw n=101 examples without replacement from 100"):
        sample_indices("cola", 100, 101, seed=0, replace=False)


def test_sample_uses_filtered_pool_and_is_method_independent(mirror):
    data = load_glue("cola", _tokenizer(), max_length=12)  # sentences of <= 10 words
    assert len(data.train) == 10
    s1 = data.sample(16, seed=1)
    s2 = data.sample(16, seed=1)
    assert s1.idx.tolist() == s2.idx.tolist() and len(s1) == 16
    assert set(s1.idx.tolist()) <= set(data.train.idx.tolist())
    assert data.sample(None, seed=1) is data.train
    sub = data.eval_subset(3)
    assert len(sub) == 3 and sub.idx.tolist() == data.eval_subset(3).idx.tolist()


def test_holdout_is_fixed_and_disjoint_from_every_sample(mirror):
    data = load_glue("cola", _tokenizer(), max_length=12)  # 10 training sentences
    held = data.holdout(3)
    assert len(held) == 3 and held.idx.tolist() == data.holdout(3).idx.tolist()  # a fixed draw per task
    for seed in range(5):
        sample = data.sample(16, seed=seed, holdout=3)
        assert not set(sample.idx.tolist()) & set(held.idx.tolist())
    rest = data.sample(None, seed=0, holdout=3)
    assert sorted(rest.idx.tolist() + held.idx.tolist()) == sorted(data.train.idx.tolist())
    with pytest.raises(ValueError, match=r"holdout must be a whole number in \[1, 9\] .* has 10 examples\), got 10"):
        data.holdout(10)


def test_bad_arguments_name_the_value():
    with pytest.raises(ValueError, match=r"unknown GLUE task 'wnli'; valid tasks are \('cola'"):
        glue.check_task("wnli")
    with pytest.raises(ValueError, match="n .* must be a positive int, got 0"):
        sample_indices("rte", 10, 0, seed=0)
    with pytest.raises(ValueError, match="max_length must be an int >= 2, got 0"):
        load_glue("rte", _tokenizer(), max_length=0)


def test_data_card_of_a_complete_mirror(mirror):
    card = data_card("rte")
    assert card["local_mirror"] and card["eval_split"] == "validation"
    assert card["splits"] == {"train": 20, "validation": 6}
    assert any("subset: 20 of the official 2,490" in c for c in card["caveats"])
    assert card["text_fields"] == ["sentence1", "sentence2"] and card["num_labels"] == 2


SHARED_GLUE = Path(os.environ.get("COMPRESSIBLE_GLUE", "/nonexistent"))


@pytest.mark.skipif(not (SHARED_GLUE / "qqp").is_dir(), reason="needs the GLUE mirror (COMPRESSIBLE_GLUE)")
def test_data_card_names_the_mirror_caveats():
    qqp = data_card("qqp")
    assert any("not comparable" in c for c in qqp["caveats"])
    assert any("train is a subset" in c for c in qqp["caveats"])
    assert any("train is a subset" in c for c in data_card("qnli")["caveats"])
    mnli = data_card("mnli")
    assert mnli["eval_split"] == "validation_matched" and mnli["num_labels"] == 3
    assert data_card("cola")["caveats"] == []
    assert data_card("stsb")["regression"] and data_card("stsb")["num_labels"] == 1
