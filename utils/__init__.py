"""Helpers for *Scaling Laws from Scratch*: one module per idea the course builds.

Data flows one way: ``runtime`` → ``data`` → ``ngram``/``bpe`` → ``attention`` → ``model``
→ the trainer (``schedule``, ``batches``, ``precision``, ``evaluation``, ``hardware``, ``parallel``,
``checkpoints``, ``branches``; ``train`` joins them, ``train_cli`` is its command line, ``bench`` times it)
→ the sweep (``grids`` → ``sweep_results`` → ``sweep_run`` → ``cluster``/``sweep_bench``; ``sweep`` joins
them) → the fits (``validate`` → ``bootstrap`` → ``fitting`` → ``isoflop``/``chinchilla`` with ``published``;
``scaling`` joins them) → the allocation (``noise`` → ``allocation_core`` → ``sensitivity``/``heldout``/
``recovery``; ``allocation`` joins them). ``gpucheck`` (with ``gpucheck_sections``) measures the GPU claims;
``plotting`` is used by all; ``colab``, ``assignments`` and ``grading`` serve the set-up cell and the
autograder. No module imports a later one, and the chapters import the joining modules.
"""
__version__ = "0.1.0"
