"""The matrix wing: deep matrix factorisations and what the paper proves and measures on them.

Pure PyTorch (no Hugging Face): :mod:`.factorization` (Sec. 2.1-2.2), :mod:`.invariant` (Theorem 2.1),
:mod:`.compression` (the compression construction of Sec. 2.3), deep matrix completion (Sec. 3) in
three rooms -- :mod:`.problems` (low-rank targets and masks), :mod:`.chains` (full-width, narrow
and compressed chains of factors and their gradient kernels) and :mod:`.completion` (the trainer,
with a discrepant learning rate on the outer factors) -- its experiments :mod:`.track` (an original and its
compression side by side, Fig. 4), :mod:`.width` (depth and
width, Fig. 1), :mod:`.race` (original vs compressed, Fig. 5; vs random narrow, App. D.1) and
:mod:`.scaling` (the speed-up against ``d``), and :mod:`.nonlinear` (gradient spectra of a ReLU
network, Sec. 5).
"""
