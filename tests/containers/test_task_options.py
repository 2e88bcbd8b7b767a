"""``--resource-profile`` and ``--mount``: checked in one place, and what the local runtime enforces."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from atoll.config import ContainerManagerSection, ResourceProfile
from atoll.containers.local.limits import preexec, process_limits
from atoll.containers.spec import parse_mounts, profile_summary
from atoll.domain.records import TaskMount
from atoll.errors import ConfigError, UsageError


def test_a_host_path_a_volume_and_a_claim(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    mounts = parse_mounts([f"{tmp_path}/in:/mnt/in:ro", "shared:/srv/shared"], "swarm")
    assert mounts == [TaskMount(source=f"{tmp_path}/in", target="/mnt/in", read_only=True),
                      TaskMount(source="shared", target="/srv/shared", volume=True)]
    assert [str(m) for m in mounts] == [f"{tmp_path}/in:/mnt/in:ro", "shared:/srv/shared"]
    # Kubernetes: a name is a claim; a path is the node's, not checked here.
    claim, node = parse_mounts(["features-pvc:/features:ro", "/nowhere/on/this/host:/host"], "kubernetes")
    assert (claim.volume, claim.read_only, node.volume) == (True, True, False)


@pytest.mark.parametrize(("value", "manager", "why"), [
    ("/tmp", "local", "expected SRC:DST"),
    ("/tmp:/mnt/x:rx", "local", "expected SRC:DST"),
    ("/tmp:mnt/x", "local", "DST must be an absolute path"),
    ("/tmp:/", "local", "DST must be an absolute path"),
    ("/tmp:/mnt/../app", "local", "DST must be an absolute path"),
    ("/tmp:/app", "local", "inside Atoll's own layout"),
    ("/tmp:/data/extra", "swarm", "inside Atoll's own layout"),
    ("/tmp:/atoll/meta/x", "kubernetes", "inside Atoll's own layout"),
    ("/tmp:/model", "swarm", "inside Atoll's own layout"),
    ("shared:/mnt/x", "local", "the local runtime mounts host paths only"),
    ("./rel:/mnt/x", "swarm", "absolute host path or a volume name"),
    ("Bad_Claim:/mnt/x", "kubernetes", "absolute host path or a PersistentVolumeClaim name"),
    ("/no/such/dir/here:/mnt/x", "swarm", "does not exist on this host"),
])
def test_refused_mounts_say_why_in_one_line(value: str, manager: str, why: str) -> None:
    with pytest.raises(UsageError, match=why) as caught:
        parse_mounts([value], manager)
    assert "\n" not in str(caught.value) and value in str(caught.value)


def test_a_target_given_twice_is_refused() -> None:
    with pytest.raises(UsageError, match="DST /mnt/x is given twice"):
        parse_mounts(["/tmp:/mnt/x", "/var:/mnt/x/"], "local")


def test_a_lookalike_of_the_layout_is_not_the_layout() -> None:
    assert parse_mounts(["/tmp:/applications"], "local")[0].target == "/applications"


def test_profile_names_resolve_or_list_the_defined_ones() -> None:
    section = ContainerManagerSection(
        resource_profiles={"small": {"cpu_limit": 1}, "big": {"memory_limit": 4096}}, train_profile="small")
    assert section.pick_profile("train") == ("small", ResourceProfile(cpu_limit=1))
    assert section.pick_profile("train", "big") == ("big", ResourceProfile(memory_limit=4096))
    assert section.pick_profile("deploy") == (None, None)
    with pytest.raises(UsageError, match=r"^--resource-profile 'huge': .* \(defined: big, small\)$"):
        section.pick_profile("deploy", "huge")
    section.ide_profile = "gone"
    with pytest.raises(ConfigError, match="container_manager.ide_profile 'gone'"):
        section.pick_profile("ide")


def test_the_record_keeps_the_values_and_what_is_not_enforced() -> None:
    profile = ResourceProfile(cpu_limit=1.5, memory_limit=512, gpu=1)
    assert profile_summary("gpu-box", profile, "local", {"gpu", "cpu_request"}) == {
        "name": "gpu-box", "cpu_limit": 1.5, "memory_limit": 512, "gpu": 1, "note": "not enforced on local: gpu"}
    assert profile_summary("small", ResourceProfile(cpu_limit=1), "swarm", {"auto_scale"}) == {
        "name": "small", "cpu_limit": 1.0}
    assert profile_summary(None, None, "local") is None


def test_local_limits_reach_the_child_process() -> None:
    limits = process_limits(ResourceProfile(cpu_limit=0.5, memory_limit=300))
    assert limits == {"memory_bytes": 300 * 1024 * 1024, "cpus": 1}  # ceil(0.5): one whole core
    probe = ("import os, resource; print(resource.getrlimit(resource.RLIMIT_DATA)[0], len(os.sched_getaffinity(0)))\n"
             "try:\n    bytearray(600 * 1024 * 1024)\nexcept MemoryError:\n    print('MemoryError')")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60,
                          preexec_fn=preexec(limits))
    data, cpus, outcome = done.stdout.split()
    assert int(data) == 300 * 1024 * 1024 and int(cpus) == 1 and outcome == "MemoryError"
    assert resource.getrlimit(resource.RLIMIT_DATA)[0] != 300 * 1024 * 1024  # the caller is untouched
    assert preexec({}) is None and process_limits(None) == {}
    assert len(os.sched_getaffinity(0)) >= 1


def test_what_each_runtime_does_not_enforce_depends_on_the_kind(tmp_path: Path) -> None:
    from atoll.config import Config
    from atoll.containers.local.manager import LocalContainerManager
    from atoll.containers.swarm.manager import SwarmContainerManager
    from atoll.testing.memory import MemoryMetadataStore
    from atoll.testing.memory_files import MemoryFileStore

    config = Config()
    swarm = SwarmContainerManager(config, MemoryMetadataStore(), MemoryFileStore())  # no engine touched
    local = LocalContainerManager(config, MemoryMetadataStore(), MemoryFileStore())
    assert swarm.unenforced("deploy") == {"auto_scale"}
    assert swarm.unenforced("train") == {"auto_scale", "cpu_request"}
    assert local.unenforced("deploy") == {"cpu_request", "memory_request", "gpu", "auto_scale"}
