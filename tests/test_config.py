from pathlib import Path

import pytest

from atoll.config import load_config, mask_url
from atoll.errors import ConfigError


def test_defaults_point_at_the_embedded_stores(tmp_path: Path) -> None:
    config = load_config(cwd=tmp_path, environ={"ATOLL_HOME": str(tmp_path / "home")})
    assert config.metadata_url == f"sqlite:///{tmp_path / 'home' / 'atoll.db'}"
    assert config.file_store_path == tmp_path / "home" / "files"
    assert config.container_manager.type == "local"
    assert config.router.host == "127.0.0.1"


def test_layers_apply_in_order(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "atoll.yaml").write_text("router:\n  port: 31000\nide:\n  port: 31001\n")
    (tmp_path / "atoll.yaml").write_text("router:\n  port: 32000\n")
    config = load_config(cwd=tmp_path, environ={"ATOLL_HOME": str(home), "ATOLL_IDE__PORT": "33000"})
    assert config.router.port == 32000
    assert config.ide.port == 33000


def test_unknown_key_is_named(tmp_path: Path) -> None:
    (tmp_path / "atoll.yaml").write_text("router:\n  prot: 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(cwd=tmp_path, environ={"ATOLL_HOME": str(tmp_path)})
    assert "router.prot" in str(info.value)
    assert "atoll.yaml" in str(info.value)


def test_wrong_type_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(cwd=tmp_path, environ={"ATOLL_HOME": str(tmp_path), "ATOLL_ROUTER__PORT": "many"})
    assert "router.port" in str(info.value)
    assert "environment" in str(info.value)


def test_malformed_yaml_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "atoll.yaml").write_text("router: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load_config(cwd=tmp_path, environ={"ATOLL_HOME": str(tmp_path)})
    assert "not valid YAML" in str(info.value)
    assert "\n" not in str(info.value)


def test_passwords_in_urls_are_masked() -> None:
    assert mask_url("postgresql://atoll:s3cret@127.0.0.1:5432/atoll") == "postgresql://atoll:***@127.0.0.1:5432/atoll"
    assert mask_url("sqlite:////tmp/a.db") == "sqlite:////tmp/a.db"


def test_masked_config_hides_the_password(tmp_path: Path) -> None:
    config = load_config(
        cwd=tmp_path,
        environ={"ATOLL_HOME": str(tmp_path), "ATOLL_METADATA__URL": "postgresql://u:pw@127.0.0.1/db"},
    )
    assert "pw" not in str(config.masked())


def test_a_setting_nothing_reads_is_refused(tmp_path: Path) -> None:
    # web_server configured nothing (there is no web UI yet): naming it is an unknown key.
    (tmp_path / "atoll.yaml").write_text("web_server:\n  host: 0.0.0.0\n")
    with pytest.raises(ConfigError) as info:
        load_config(cwd=tmp_path, environ={"ATOLL_HOME": str(tmp_path)})
    assert "web_server" in str(info.value)


def test_task_profiles_name_resource_profiles(tmp_path: Path) -> None:
    (tmp_path / "atoll.yaml").write_text(
        "container_manager:\n"
        "  resource_profiles:\n"
        "    small: {cpu_limit: 0.5, memory_limit: 256}\n"
        "  ide_profile: small\n"
        "  deploy_profile: huge\n"
    )
    section = load_config(cwd=tmp_path, environ={"ATOLL_HOME": str(tmp_path)}).container_manager
    ide = section.profile("ide")
    assert ide is not None and ide.cpu_limit == 0.5 and ide.memory_limit == 256
    assert section.profile("train") is None
    with pytest.raises(ConfigError) as info:
        section.profile("deploy")
    assert "container_manager.deploy_profile 'huge'" in str(info.value)
    assert "small" in str(info.value)
