"""Parameter sweeps: many variants of a case, their stages as Dask tasks (``adnstudy sweep``, docs/sweep.md)."""
