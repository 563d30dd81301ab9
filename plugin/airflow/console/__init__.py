"""The Druidflow console: a page set in the Airflow UI over Druidflow's tables (see ``app``)."""
