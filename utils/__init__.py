"""Helpers for *Scaling Laws from Scratch*: one module per idea the course builds.

Data flows one way: ``runtime`` → ``data`` → ``ngram``/``bpe`` → ``attention`` → ``model``
→ ``train`` → ``sweep`` → ``scaling``; ``plotting`` is used by all. No module imports a later one.
"""
__version__ = "0.1.0"
