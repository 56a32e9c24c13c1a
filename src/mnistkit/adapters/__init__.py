"""Framework glue, one module per framework, each imported only when used.

``torch`` (a ``Dataset`` over the memory-mapped cache, ready ``DataLoader``\\ s),
``tf`` (a ``tf.data.Dataset`` builder) and ``jax`` (mini-batches as device
arrays).  Each imports its framework inside its functions and raises
:class:`~mnistkit.errors.MissingDependencyError` naming the extra to install
when it is absent, so ``import mnistkit`` never pays for a framework.
"""
