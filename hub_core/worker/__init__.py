"""Running at scale: Celery workers (``hub worker``), dispatching (``hub dispatch``) and the
scheduler (``hub schedule``). Needs the ``worker`` extra: ``pip install 'hub-core[worker]'``.
"""
