"""A/B parity tool: compare two "sides" (pipelines, inference-models classes, recordings) frame by frame.

- :mod:`~inference_accel.ab.compare`: the comparison core (``sv.Detections`` pairs -> per-frame records, summary).
- :mod:`~inference_accel.ab.sides`: side specs (``ours:...``, ``stock-im``, ``accel-im``, ``recorded:DIR``,
  ``venv:PATH[@SIDE]``, ``git:REF[@SIDE]``), runners, recordings.
- :mod:`~inference_accel.ab.git_side`: a git ref of this package, exported and installed into a cached venv
  that reuses the running environment's dependencies.
- :mod:`~inference_accel.ab.report`: summary JSON, Markdown report and XOR images of the worst frames.

The CLI is ``inference-accel parity A B`` (:func:`inference_accel.cli.cmd_parity`).
"""
