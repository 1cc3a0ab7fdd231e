"""What an operator sees of the running service, one module per job.

``metrics``: the Prometheus collectors and their exposition; ``middleware``: per-request
observation (request ids, a metrics sample and an access log line); ``logs``: the formatters
and ``configure_logging``.
"""
