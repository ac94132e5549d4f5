"""Deep LoRA adapters under ``torch.nn.parallel.DistributedDataParallel`` (2 CPU processes, gloo).

Facts checked:

- Each rank computes the compressed initialisation from its own batch, so the adapters start out
  different; DDP broadcasts rank 0's parameters when it wraps the model, after which they agree.
- After a few Adam steps on different data per rank, the adapter parameters are identical on both
  ranks (compared with ``all_gather``) and have moved away from their initial values.
- DDP averages gradients, so with equal per-rank batches the DDP run equals a single-process run on
  the two batches concatenated (mean loss): rank 0 checks this against its own reference copy.
"""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

transformers = pytest.importorskip("transformers")

from compressible.deeplora import DeepLoRAConfig, adapter_layers, add_adapters, compress_from_batch  # noqa: E402

WORLD, STEPS, BATCH, SEQ, VOCAB = 2, 4, 4, 10, 64


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _model() -> torch.nn.Module:
    torch.manual_seed(0)  # the same base model on every rank, as from_pretrained would give
    config = transformers.BertConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=48, max_position_embeddings=32, num_labels=1,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )
    return transformers.BertForSequenceClassification(config)


def _batches(rank: int) -> list[dict[str, torch.Tensor]]:
    """Regression batches of rank ``rank`` (different data on every rank), one per step."""
    generator = torch.Generator().manual_seed(1000 + rank)
    return [
        {
            "input_ids": torch.randint(0, VOCAB, (BATCH, SEQ), generator=generator),
            "labels": torch.randn(BATCH, generator=generator),
        }
        for _ in range(STEPS)
    ]


def _adapter_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {
        f"{path}.factors.{i}": factor.detach().clone()
        for path, layer in adapter_layers(model).items()
        for i, factor in enumerate(layer.factors)
    }


def _train(model, batches_per_step) -> None:
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.Adam(params, lr=1e-2, eps=1e-6)
    model.train()
    for batch in batches_per_step:
        optimiser.zero_grad()
        model(**batch).loss.backward()
        optimiser.step()


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        model = _model()
        add_adapters(model, DeepLoRAConfig(init="compressed", rank=4, targets="attention-mlp"))
        batches = _batches(rank)
        compress_from_batch(model, batches[0])  # per-rank batch: the inits differ before DDP
        before_ddp = _adapter_state(model)
        ddp = torch.nn.parallel.DistributedDataParallel(model)  # broadcasts rank 0's parameters
        start = _adapter_state(model)
        _train(ddp, batches)
        end = _adapter_state(model)

        result = {"rank": rank, "init_differed": 0.0, "max_rank_diff": 0.0}
        for key in sorted(end):
            gathered = [torch.empty_like(end[key]) for _ in range(WORLD)]
            dist.all_gather(gathered, end[key])
            result["max_rank_diff"] = max(result["max_rank_diff"], float((gathered[0] - gathered[1]).abs().max()))
            init = [torch.empty_like(before_ddp[key]) for _ in range(WORLD)]
            dist.all_gather(init, before_ddp[key])
            result["init_differed"] = max(result["init_differed"], float((init[0] - init[1]).abs().max()))
        # Per adapter, the largest change of any factor. (An outer factor alone may not move in a
        # few steps: its gradient carries eps^L and Adam's update falls below float32 resolution.)
        moved: dict[str, float] = {}
        for key in end:
            path = key.rsplit(".factors.", 1)[0]
            moved[path] = max(moved.get(path, 0.0), float((end[key] - start[key]).abs().max()))
        result["moved"] = min(moved.values())
        trainable = [name for name, p in model.named_parameters() if p.requires_grad]
        result["trainable"] = bool(trainable) and all(".factors." in name for name in trainable)

        if rank == 0:
            # Single-process reference: rank 0's start, both ranks' batches concatenated.
            reference = _model()
            add_adapters(reference, DeepLoRAConfig(init="compressed", rank=4, targets="attention-mlp"))
            compress_from_batch(reference, batches[0])
            with torch.no_grad():
                for path, layer in adapter_layers(reference).items():
                    for i, factor in enumerate(layer.factors):
                        factor.copy_(start[f"{path}.factors.{i}"])
            other = _batches(1)
            joined = [{k: torch.cat([a[k], b[k]]) for k in a} for a, b in zip(batches, other)]
            _train(reference, joined)
            ref_end = _adapter_state(reference)
            result["max_reference_diff"] = max(float((ref_end[k] - end[k]).abs().max()) for k in end)
        torch.save(result, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.timeout(300)  # ~20 s on an idle 2-core machine; generous for shared CI runners
def test_adapters_train_identically_under_ddp(tmp_path):
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    for result in results:
        assert result["trainable"], "only adapter factors may require gradients"
        assert result["init_differed"] > 0, "per-rank compressed inits should differ before DDP syncs them"
        assert result["max_rank_diff"] == 0.0, f"adapters differ across ranks by {result['max_rank_diff']}"
        assert result["moved"] > 0, "every adapter must have been updated"
    assert results[0]["max_reference_diff"] < 1e-5, results[0]["max_reference_diff"]
