"""Reproduction: the scorecard that judges our chapters' summaries against the paper
(:mod:`.scorecard`, with every verdict rule in :mod:`.verdicts`), and the pipeline that executes
the chapters and builds the book (:mod:`.bookbuild`). The paper's reference numbers themselves
live lower, in :mod:`compressible.reference`, since the experiments put them beside ours."""
