"""Tests of compressible.finetune.runner: the one Runner computes and replays runs of either kind (GLUE runs:
test_classify.py; generation runs through the chapter: tests/experiments/test_generation.py)."""

import pytest

from compressible.finetune.generate import AdapterSpec, GenerationConfig
from compressible.finetune.runner import Runner

from .tiny import backbone, rows


def test_one_runner_replays_a_generation_run_as_it_ran():
    """The Runner's replay of the first steps gives the run's own losses and few-shot rows; the backbone
    and the data are loaded once and shared by every run."""
    runner = Runner(progress=False)
    runner.backbones[("tiny-llama", None)] = backbone("causal")
    runner.splits = {"train": rows(), "validation": rows()}
    config = GenerationConfig(backbone="tiny-llama", adapter=AdapterSpec("Deep LoRA", "compressed", 3, rank=4, lr=1e-2),
                              n_train=4, steps=2, batch_size=4, num_beams=1, max_new_tokens=3, n_eval=3)
    whole = runner(config, 0)
    first = runner.replay(config, 0, 1)
    assert first["train_loss"] == whole["train_loss"][:1] and first["train_indices"] == whole["train_indices"]
    assert runner.data(config) is runner.data(config) and len(runner.data(config).eval_set) == 3
    with pytest.raises(ValueError, match=r"steps must be an int in \[1, 2\]"):
        runner.replay(config, 0, 3)
    with pytest.raises(TypeError, match="config must be a RunConfig or a GenerationConfig"):
        runner.run({"backbone": "tiny-llama"}, 0)
    with pytest.raises(ValueError, match="threads must be an int >= 1, got 0"):
        Runner(threads=0)
