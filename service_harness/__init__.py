"""The service as a real process, for tests and benchmarks alike (never imported by ``app``).

``process``: start ``uvicorn app.main:app`` (or any server command) with an environment and
a log file, wait until it answers, stop it; its RSS and CPU time. ``soak``: the load client
that drives a running server with a weighted mix of good and bad uploads and counts what came
back (``python -m service_harness.soak``).
"""
