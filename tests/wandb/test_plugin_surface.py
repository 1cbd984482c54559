"""The plugin's public surface: exports, hook markers, sync-only hooks, spec validation."""

from __future__ import annotations

import inspect

import pluggy
import trackmux_spec
import trackmux_wandb
from trackmux_spec import hookspecs

HOOKS = {
    "tracker_info",
    "connect",
    "disconnect",
    "submit_job",
    "log_metrics",
    "finish_job",
    "get_job_status",
    "get_run_url",
    "get_history",
    "compare",
    "upload_artifact",
    "download_artifact",
}


def test_all_names_resolve():
    for name in trackmux_wandb.__all__:
        assert getattr(trackmux_wandb, name) is not None


def test_every_hook_is_implemented_and_validates_against_the_spec():
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    pm.register(trackmux_wandb, name="wandb")
    pm.check_pending()
    implemented = {
        name
        for name in HOOKS
        if any(impl.plugin is trackmux_wandb for impl in getattr(pm.hook, name).get_hookimpls())
    }
    assert implemented == HOOKS


def test_plain_function_hooks_are_not_coroutines():
    assert not inspect.iscoroutinefunction(trackmux_wandb.get_run_url)
    assert not inspect.iscoroutinefunction(trackmux_wandb.tracker_info)


def test_hooks_use_the_spec_marker():
    marker = trackmux_spec.hookimpl.project_name + "_impl"
    for name in HOOKS:
        assert hasattr(getattr(trackmux_wandb, name), marker)
