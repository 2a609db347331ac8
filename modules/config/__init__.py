"""Training configuration: the typed YAML schema, presets and the run plan.

Light to import (no torch): the UI builds, validates and saves configs through
``modules.config.schema`` exactly like ``python -m modules config`` does.
"""

from modules.config.schema import (  # noqa: F401
    RESUME_SAFE_KEYS,
    ConfigError,
    LRSchedule,
    TrainConfig,
    apply_overrides,
    changed_keys,
    config_from_dict,
    config_hash,
    config_to_dict,
    config_to_yaml,
    default_config,
    load_config,
    save_config,
)
