"""Stage 2, features: from stored candles to the model's inputs, offline and online.

Owns the pure feature functions and the one list of feature columns (``compute``), the training dataset
loader (``dataset``), the incremental offline feature table (``feature_table``) and the Feast edge: the
store, materialization and online reads (``featurestore``, ``feast_redis``).

May import: ``hourcast.data`` and the top-level modules.
"""
