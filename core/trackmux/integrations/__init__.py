"""trackmux where training code already is: one module per framework.

* :mod:`trackmux.integrations.transformers`: ``TrackmuxCallback`` for the Hugging Face
  ``Trainer``.
* :mod:`trackmux.integrations.lightning`: ``TrackmuxLogger`` for Lightning's ``Trainer``.
* :mod:`trackmux.integrations.accelerate`: ``TrackmuxTracker`` for ``Accelerator(log_with=...)``.
* :mod:`trackmux.integrations.keras`: ``TrackmuxCallback`` for Keras 3's ``fit``.

Each module imports its framework; this package imports none, and ``import trackmux``
does not import this package. Every integration logs to the current run of the module API
(``trackmux.run``), starting one with ``trackmux.init`` if there is none, so the trackers
come from the configuration like everything else.
"""
