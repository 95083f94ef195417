"""Stage 3, the model: CatBoost on the features, judged against persistence.

Owns the estimator and the one predict path used by training, evaluation and serving (``estimator``), the
forecast metrics and tests (``metrics``), training with its promotion gate (``training``), walk-forward
evaluation (``evaluation``), the versioned model registry over BentoML's model store (``registry``,
``served_model``) and feature drift (``drift``).

May import: ``hourcast.features``, ``hourcast.data`` and the top-level modules.
"""
