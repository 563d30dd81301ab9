"""Packaging: Airflow discovers Druidflow as a provider (connection types, hooks, db-manager) and as a plugin."""

from __future__ import annotations

import json

from tests.airflow.conftest import airflow_env, run_airflow


def test_provider_info_is_valid_for_airflow():
    import importlib.metadata

    from airflow.providers_manager import _create_provider_info_schema_validator

    from druidflow.airflow.provider_info import get_provider_info

    info = get_provider_info()
    _create_provider_info_schema_validator().validate(info)
    # Airflow rejects a provider whose package-name is not its distribution name.
    assert info["package-name"] == importlib.metadata.distribution("druidflow").metadata["Name"]
    assert info["db-managers"] == ["druidflow.airflow.db_manager.DruidflowDBManager"]


def test_every_class_named_in_provider_info_imports():
    from airflow._shared.module_loading import import_string

    from druidflow.airflow.provider_info import get_provider_info

    info = get_provider_info()
    names = [c["hook-class-name"] for c in info["connection-types"]]
    names += [p["plugin-class"] for p in info["plugins"]] + info["db-managers"]
    for name in names:
        assert import_string(name)
    for group in ("hooks", "operators"):
        for entry in info[group]:
            for module in entry["python-modules"]:
                __import__(module)


def test_providers_manager_knows_the_connection_types_and_hooks():
    from airflow.providers_manager import ProvidersManager
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    pm = ProvidersManager()
    assert "druidflow" in pm.providers
    hooks = ProvidersManagerTaskRuntime().hooks
    assert hooks["druidflow"].hook_class_name == "druidflow.airflow.hooks.DruidflowMetadataHook"
    assert hooks["druidflow"].connection_id_attribute_name == "metadata_conn_id"
    assert hooks["druidflow_deep_storage"].hook_class_name == "druidflow.airflow.hooks.DeepStorageHook"
    assert "druidflow.airflow.db_manager.DruidflowDBManager" in pm.db_managers
    widgets = pm.connection_form_widgets
    assert "extra__druidflow__sqlalchemy_url" in widgets
    assert "extra__druidflow_deep_storage__uri" in widgets


def test_cli_providers_list_and_plugins_show_druidflow(tmp_path):
    env = airflow_env(tmp_path)
    providers = json.loads(_json_tail(run_airflow("providers", "list", "-o", "json", env=env).stdout))
    mine = [p for p in providers if p["package_name"] == "druidflow"]
    assert mine and mine[0]["version"]

    plugins = json.loads(_json_tail(run_airflow("plugins", "-o", "json", env=env).stdout))
    plugin = next(p for p in plugins if p["name"] == "druidflow")
    assert plugin["fastapi_apps"][0]["url_prefix"] == "/druidflow"
    assert plugin["external_views"][0]["destination"] == "nav"


def _json_tail(stdout: str) -> str:
    """The JSON document at the end of a CLI's stdout (Airflow may log lines before it)."""
    start = stdout.index("[")
    return stdout[start:]
