"""Reproduction: the paper's reference numbers, the scorecard that judges our summaries against
them, and the pipeline that executes the chapters and builds the book."""
