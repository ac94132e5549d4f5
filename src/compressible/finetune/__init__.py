"""The fine-tuning wing: Deep LoRA (and LoRA) on pretrained transformers.

Builds on :mod:`compressible.deeplora`: GLUE few-shot classification and regression
(:mod:`.glue`, :mod:`.classify`), few-shot generation on E2E NLG (:mod:`.generate`) and the
metrics both report (:mod:`.metrics`).
"""
