"""Build tooling, apart from the science: the chapter runner (papermill), the offline book renderer, the
``calad`` command line and the benchmark glue of the performance chapter."""
