"""Naming rules shared by every record, container, service and host name."""

from __future__ import annotations

import re
import secrets

from atoll.errors import InvalidNameError

# \Z, not $: "$" also matches before a final newline, which let "abc\n" through.
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,62}\Z")

_ADJECTIVES = (
    "amber", "bold", "brisk", "calm", "clever", "crisp", "eager", "fancy", "gentle", "happy",
    "jolly", "keen", "lively", "lucky", "mellow", "nimble", "proud", "quick", "quiet", "rapid",
    "shiny", "silent", "steady", "sunny", "swift", "tidy", "vivid", "warm", "wise", "witty",
)
_NOUNS = (
    "albatross", "beacon", "coral", "delta", "dune", "ember", "falcon", "fjord", "gecko", "harbor",
    "heron", "island", "lagoon", "lantern", "marlin", "meadow", "nebula", "otter", "pelican", "quartz",
    "reef", "river", "sparrow", "summit", "tide", "tundra", "walrus", "willow", "yarrow", "zephyr",
)


def is_valid_name(name: str) -> bool:
    """True when ``name`` is DNS-safe: a-z, 0-9, '-', 1-63 chars, no leading dash."""
    return bool(NAME_PATTERN.fullmatch(name)) and not name.endswith("-")


def validate_name(name: str, what: str = "name") -> str:
    """Return ``name`` unchanged, or raise InvalidNameError saying why it is refused."""
    if not isinstance(name, str) or not is_valid_name(name):
        raise InvalidNameError(
            f"invalid {what} {name!r}: use 1-63 lowercase letters, digits and dashes, "
            "starting with a letter or digit and not ending with a dash"
        )
    return name


def random_name() -> str:
    """A readable random name such as ``swift-heron-4821`` (always valid)."""
    return f"{secrets.choice(_ADJECTIVES)}-{secrets.choice(_NOUNS)}-{secrets.randbelow(10000):04d}"
