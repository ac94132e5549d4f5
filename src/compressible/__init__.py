"""compressible: the executable companion of *Compressible Dynamics in Deep Overparameterized
Low-Rank Learning & Adaptation* (Yaras, Wang, Balzano, Qu; ICML 2024).

Modules, one per idea of the paper:

- :mod:`compressible.matrix.factorization` -- deep matrix factorisations, orthogonal initialisation,
  gradient descent, and the singular-value recursion of Theorem 2.1 (Sec. 2.1-2.2).
- :mod:`compressible.matrix.compression` -- the compression construction from the gradient at
  initialisation (Sec. 2.3).
- :mod:`compressible.matrix.completion` -- deep matrix completion with a discrepant learning rate on the
  outer factors (Sec. 3).
- :mod:`compressible.deeplora` -- Deep LoRA: compressed three-layer adapters for Hugging Face
  models, with export to PEFT LoRA adapters (Sec. 4).
- :mod:`compressible.matrix.nonlinear` -- gradient spectra of a ReLU factorisation (Sec. 5).
- :mod:`compressible.finetune.glue`, :mod:`compressible.finetune.classify`, :mod:`compressible.sweeps` -- the few-shot
  GLUE experiments of Sec. 4 (data, the authors' training protocol, resumable sweeps).
- :mod:`compressible.finetune.generate` -- few-shot generation on E2E NLG (App. C).
- :mod:`compressible.store`, :mod:`compressible.summaries`, :mod:`compressible.reproduction.scorecard` -- results
  that survive interruption, and the reproduction scorecard.
- :mod:`compressible.hub` -- where models and data sets come from (hub ids, offline mirrors).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
