"""Run discovery and management for the UI (no Gradio here).

The run folder on disk is the single source of truth: configs under
``training/*/configs``, runs under ``training/*/runs``, ``status.json``,
``train.lock``, ``metrics.jsonl``, ``states/`` sidecars and ``samples/``.
The UI only reads those and launches/stops trainer processes, so a restarted
UI (or a second browser tab) sees exactly what a trainer is doing.
"""

from modules.run_manager.discovery import (
    config_label,
    list_base_models,
    list_checkpoints,
    list_configs,
    list_runs,
    read_config_yaml,
    run_dir_for_config,
)
from modules.run_manager.manage import delete_old_states, delete_run, write_exports
from modules.run_manager.metrics import (
    MetricsReader,
    best_marker,
    metric_frames,
    progress,
    read_metrics,
)
from modules.run_manager.probes import lock_holder, pid_alive
from modules.run_manager.process import LaunchResult, StopResult, build_train_command, launch, stop
from modules.run_manager.samples import list_sample_steps, sample_clips, sample_info
from modules.run_manager.status import RunStatus, log_tail, run_status, run_summary
from modules.run_manager.tensorboard import start_tensorboard, stop_all_tensorboards
from modules.trainer.runfolder import StateInfo, list_states

__all__ = [
    "StateInfo", "config_label", "list_base_models", "list_checkpoints", "list_configs", "list_runs",
    "list_states", "read_config_yaml", "run_dir_for_config", "run_summary",
    "delete_old_states", "delete_run", "write_exports",
    "MetricsReader", "best_marker", "metric_frames", "progress", "read_metrics",
    "LaunchResult", "RunStatus", "StopResult", "build_train_command", "launch", "lock_holder", "log_tail",
    "pid_alive", "run_status", "stop",
    "list_sample_steps", "sample_clips", "sample_info",
    "start_tensorboard", "stop_all_tensorboards",
]
