"""The matrix wing: deep matrix factorisations and what the paper proves and measures on them.

Pure PyTorch (no Hugging Face): :mod:`.factorization` (Sec. 2.1-2.2, Theorem 2.1),
:mod:`.compression` (the compression construction of Sec. 2.3), deep matrix completion (Sec. 3) in
three rooms -- :mod:`.problems` (low-rank targets and masks), :mod:`.chains` (full-width, narrow
and compressed chains of factors and their gradient kernels) and :mod:`.completion` (the trainer,
with a discrepant learning rate on the outer factors) -- and :mod:`.nonlinear` (gradient spectra
of a ReLU network, Sec. 5).
"""
