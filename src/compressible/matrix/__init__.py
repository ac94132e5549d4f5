"""The matrix wing: deep matrix factorisations and what the paper proves and measures on them.

Pure PyTorch (no Hugging Face): :mod:`.factorization` (Sec. 2.1-2.2, Theorem 2.1),
:mod:`.compression` (the compression construction of Sec. 2.3), :mod:`.completion` (deep matrix
completion with a discrepant learning rate on the outer factors, Sec. 3) and :mod:`.nonlinear`
(gradient spectra of a ReLU network, Sec. 5).
"""
