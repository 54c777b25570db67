"""The ``airflow hybrid ...`` commands; ``hybrid_executor.cli`` declares them, these modules run them."""
