"""The local demo: a whole Airflow 3 deployment with HybridExecutor on one machine (``make demo``)."""
