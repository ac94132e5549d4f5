"""The fine-tuning wing: Deep LoRA (and LoRA) on pretrained transformers.

Builds on :mod:`compressible.deeplora`:

- :mod:`.backbones` -- every model the experiments adapt (one registry, one loader; :mod:`.smollm` reads the
  ``ci`` generator from its local 4-bit file);
- :mod:`.glue` and :mod:`.classify` -- GLUE few-shot classification and regression (paper Sec. 4);
- :mod:`.e2e` and :mod:`.generate` -- few-shot generation on E2E NLG (paper App. C);
- :mod:`.optim` -- the one optimiser (Adam with the authors' settings) and the learning-rate defaults;
- :mod:`.metrics` -- GLUE and NLG metrics and the paired statistics over seeds.
"""
