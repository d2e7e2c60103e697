"""The fps benchmark suite behind ``inference-accel bench --matrix`` (issue 11).

One module per job: :mod:`.machine` (what the numbers ran on), :mod:`.matrix`
(cells, runs, timing), :mod:`.sidebyside` (stock vs accelerated
inference-models vs our pipeline), :mod:`.synthetic` (synthetic engine
outputs shaped like a trained model's), :mod:`.report` (JSON -> the Markdown
section of ``docs/BENCHMARKS.md``), :mod:`.charts` (PNG charts, matplotlib)
and :mod:`.guard` (the quick regression guard).
"""
