"""Image configuration keys: defaults, validation naming key and value, and what the image
service is built from."""

from __future__ import annotations

import pathlib

import pytest
import yaml

from cri import config as configmod
from cri.service import image_service_config


def load(tmp_path: pathlib.Path, data: object) -> configmod.Config:
    path = tmp_path / "crib.yaml"
    path.write_text(yaml.safe_dump(data))
    return configmod.load(str(path))


def test_defaults(tmp_path: pathlib.Path) -> None:
    config = load(tmp_path, {})
    assert config.pull_progress_timeout_s == 300
    assert config.max_concurrent_downloads == 3
    assert config.pinned_images == ()


def test_deploy_file_matches_defaults() -> None:
    deployed = configmod.load(str(pathlib.Path(__file__).parents[2] / "deploy/crib.yaml"))
    defaults = configmod.Config()
    assert deployed.pull_progress_timeout_s == defaults.pull_progress_timeout_s
    assert deployed.max_concurrent_downloads == defaults.max_concurrent_downloads


@pytest.mark.parametrize(
    ("data", "key", "value"),
    [
        ({"pull_progress_timeout_s": 0}, "pull_progress_timeout_s", 0.0),
        ({"pull_progress_timeout_s": "5m"}, "pull_progress_timeout_s", "5m"),
        ({"max_concurrent_downloads": 0}, "max_concurrent_downloads", 0),
        ({"max_concurrent_downloads": 65}, "max_concurrent_downloads", 65),
        ({"pinned_images": ["Not A Ref"]}, "pinned_images[0]", "Not A Ref"),
        ({"registries": {"bad host!": {}}}, "registries.bad host!", "bad host!"),
        (
            {"registries": {"q.io": {"mirrors": ["ftp://m"]}}},
            "registries.q.io.mirrors[0]",
            "ftp://m",
        ),
        ({"registries": {"q.io": {"upstream": False}}}, "registries.q.io.upstream", False),
    ],
)
def test_bad_values_named(
    tmp_path: pathlib.Path, data: dict[str, object], key: str, value: object
) -> None:
    with pytest.raises(configmod.ConfigError) as err:
        load(tmp_path, data)
    assert err.value.key == key
    assert err.value.value == value
    assert repr(value) in str(err.value)


def test_image_service_config_from_config(tmp_path: pathlib.Path) -> None:
    config = load(
        tmp_path,
        {
            "root": str(tmp_path / "root"),
            "pinned_images": ["registry.k8s.io/pause:3.9", "sha256:" + "a" * 64],
            "pull_progress_timeout_s": 30,
            "max_concurrent_downloads": 5,
            "registries": {
                "docker.io": {"mirrors": ["http://127.0.0.1:5000"], "upstream": False},
                "10.0.0.5:5000": {"insecure": True},
            },
        },
    )
    images = image_service_config(config)
    assert images.root == str(tmp_path / "root" / "images")
    assert images.pinned_images == config.pinned_images
    assert images.pull_progress_timeout_s == 30
    assert images.max_concurrent_downloads == 5
    assert images.registries["docker.io"].mirrors == ("http://127.0.0.1:5000",)
    assert not images.registries["docker.io"].upstream
    assert images.registries["10.0.0.5:5000"].insecure
    assert images.user_agent.startswith("crib/")
