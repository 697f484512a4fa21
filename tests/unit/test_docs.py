"""The README's configuration table lists every setting."""

from __future__ import annotations

from pathlib import Path

import yaml

from runner_sizer.options import env_var
from runner_sizer.recommender import settings as recommender_settings
from runner_sizer.recorder import settings as recorder_settings
from runner_sizer.webhook.settings import OPTIONS, env_name

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_every_webhook_flag_is_documented() -> None:
    for flag, *_ in OPTIONS:
        assert f"`--{flag}`" in README and f"`{env_name(flag)}`" in README, flag


def test_every_recorder_flag_is_documented() -> None:
    for flag, *_ in recorder_settings.OPTIONS:
        variable = env_var(recorder_settings.ENV_PREFIX, flag)
        assert f"`--{flag}`" in README and f"`{variable}`" in README, flag


def test_docker_compose_sets_only_real_settings() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
    known = {env_name(flag) for flag, *_ in OPTIONS} | {
        env_var(module.ENV_PREFIX, flag)
        for module in (recorder_settings, recommender_settings)
        for flag, *_ in module.OPTIONS
    }
    for name, service in compose["services"].items():
        for variable in service.get("environment", {}):
            assert variable in known, f"{name}: {variable}"


def test_every_recommender_flag_is_documented() -> None:
    for flag, *_ in recommender_settings.OPTIONS:
        variable = env_var(recommender_settings.ENV_PREFIX, flag)
        assert f"`--{flag}`" in README and f"`{variable}`" in README, flag
