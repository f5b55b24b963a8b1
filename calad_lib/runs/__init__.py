"""The run spine every grid shares: one result store (:mod:`.store`: atomic writes, validated entries,
claims), one model cache (:mod:`.cache`: :func:`cached_fit`) and one executor (:mod:`.executor`:
:func:`run_all`, local or Dask, with a progress bar)."""
from .cache import CacheWarning, cached_fit, fingerprint, load_model, model_path
from .executor import ENGINES, ExecutorError, RunSummary, check_engine, run_all
from .store import (CorruptResultError, ResultStore, ResultWarning, StoreError, atomic_write_bytes, atomic_write_text,
                    config_key, ensure_writable)

__all__ = ["ResultStore", "CorruptResultError", "ResultWarning", "StoreError", "config_key", "atomic_write_bytes",
           "atomic_write_text", "ensure_writable", "CacheWarning", "cached_fit", "fingerprint", "load_model",
           "model_path", "run_all", "RunSummary", "ExecutorError", "ENGINES", "check_engine"]
