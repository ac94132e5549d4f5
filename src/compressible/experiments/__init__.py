"""One module per book chapter: its frozen per-scale plan, ``run()`` and ``summarise()``."""
