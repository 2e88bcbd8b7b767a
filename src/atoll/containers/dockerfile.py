"""What Atoll reads in a project's ``Dockerfile``: Noronha's base image, and pip installs for local builds.

A project written for Noronha starts ``FROM noronhadataops/noronha[:tag]``
(no registry is asked for it): the Docker runtimes build it on Atoll's base
image instead (:func:`map_noronha_base`), which defines the variables such a
Dockerfile uses (``CONDA_HOME``, ``CONDA_VENV``, ``APP_HOME``). The local
runtime runs no Dockerfile; it installs the pip packages of its ``RUN`` lines
into the build's environment (:func:`local_installs`) and says what else it
does not do. ``container_manager.noronha_compat: false`` refuses Noronha's
base image (:func:`check_noronha_base`).
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from atoll.config import Config
from atoll.containers.spec import TASK_USER
from atoll.errors import UsageError

NORONHA_IMAGE = re.compile(r"^(?:docker\.io/)?noronhadataops/noronha(?::[\w][\w.-]*)?(?:@sha256:[0-9a-f]{64})?$")
_FROM = re.compile(r"^(\s*FROM\s+(?:--\S+\s+)*)(\S+)(.*)$", re.IGNORECASE)
# Variables Noronha's base image defines, as Atoll's base image defines them (base.Dockerfile).
_IMAGE_ENV = {"APP_HOME": "/app"}
# pip options followed by a value (so the value is not taken for a package).
_VALUE_OPTIONS = frozenset({
    "-c", "--constraint", "-e", "--editable", "-i", "--index-url", "--extra-index-url", "-f", "--find-links",
    "--trusted-host", "-t", "--target", "--prefix", "--root", "--platform", "--python-version", "--src",
    "--progress-bar", "--log", "--proxy", "--retries", "--timeout", "--cert", "--client-cert", "--cache-dir",
    "--only-binary", "--no-binary", "--upgrade-strategy", "-C", "--config-settings", "--exists-action",
})
_SEPARATORS = frozenset({"&&", "||", ";", "|", "&"})
_HARMLESS = frozenset({"source", ".", "true", "echo", "set", "cd"})


@dataclass(frozen=True)
class Instruction:
    """One logical instruction (continuation lines joined) and the line it starts on."""

    line: int
    keyword: str
    args: str


@dataclass
class LocalInstalls:
    """What a local build installs from the Dockerfile's ``RUN`` lines, and what it does not do."""

    requirement_files: list[str] = field(default_factory=list)  # relative to the project root
    packages: list[str] = field(default_factory=list)
    not_done: list[str] = field(default_factory=list)  # one line each, for the build log


def instructions(text: str) -> list[Instruction]:
    """The Dockerfile's instructions (comments dropped, ``\\`` continuations joined)."""
    out: list[Instruction] = []
    parts: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not parts and (not stripped or stripped.startswith("#")):
            continue
        if parts and stripped.startswith("#"):  # a comment inside a continued instruction
            continue
        if not parts:
            start = number
        if stripped.endswith("\\"):
            parts.append(stripped[:-1])
            continue
        parts.append(stripped)
        keyword, _, args = " ".join(p for p in parts if p).partition(" ")
        out.append(Instruction(start, keyword.upper(), args.strip()))
        parts = []
    if parts:
        keyword, _, args = " ".join(p for p in parts if p).partition(" ")
        out.append(Instruction(start, keyword.upper(), args.strip()))
    return out


def noronha_bases(text: str) -> list[str]:
    """The images of ``FROM`` lines naming Noronha's base image."""
    found = []
    for line in text.splitlines():
        match = _FROM.match(line)
        if match and NORONHA_IMAGE.match(match.group(2)):
            found.append(match.group(2))
    return found


def check_noronha_base(text: str, config: Config) -> list[str]:
    """:func:`noronha_bases`, refused when ``container_manager.noronha_compat`` is off.

    Raises:
        UsageError: the Dockerfile starts from Noronha's image and the compatibility is off.
    """
    found = noronha_bases(text)
    if found and not config.container_manager.noronha_compat:
        raise UsageError(
            f"the project's Dockerfile starts FROM {found[0]}, Noronha's base image, and "
            "container_manager.noronha_compat is off: start it FROM ${ATOLL_BASE_IMAGE} or turn that setting on"
        )
    return found


def map_noronha_base(text: str, base: str) -> str:
    """``text`` with every ``FROM noronhadataops/noronha[:tag]`` building on ``base`` instead.

    Noronha's image builds and runs as root; Atoll's runs as ``TASK_USER``. So a
    mapped stage's steps run as root (``USER root`` after its ``FROM``, as they
    did on Noronha's image: ``pip install`` into the image's environment), and
    the image ends as ``TASK_USER`` again unless the Dockerfile says otherwise.
    """
    lines = []
    mapped = False
    for line in text.splitlines(keepends=True):
        match = _FROM.match(line.rstrip("\r\n"))
        if match and NORONHA_IMAGE.match(match.group(2)):
            line = f"{match.group(1)}{base}{match.group(3)}\nUSER root\n"
            mapped = True
        lines.append(line if line.endswith("\n") else line + "\n")
    if mapped and not any(i.keyword == "USER" for i in instructions(text)):
        lines.append(f"USER {TASK_USER[0]}:{TASK_USER[1]}\n")
    return "".join(lines)


def local_installs(text: str, source_dir: Path) -> LocalInstalls:
    """The pip installs of the ``RUN`` lines (``bash -c "source ... && pip install -r requirements.txt"``
    included), as project files and package specs a local environment gets; the rest noted as not done."""
    found = LocalInstalls()
    for item in instructions(text):
        if item.keyword != "RUN":
            if item.keyword not in ("FROM", "ADD", "COPY", "WORKDIR", "ARG", "LABEL", "CMD", "ENTRYPOINT", "EXPOSE"):
                found.not_done.append(f"line {item.line}: {item.keyword} {item.args}")
            continue
        command = _exec_form(item.args)
        for words in _commands(command):
            _interpret(words, source_dir, found, item.line)
    return found


def _exec_form(args: str) -> str:
    """``RUN ["bash", "-c", "..."]`` as the shell command it runs; the shell form as is."""
    if args.startswith("["):
        try:
            words = json.loads(args)
        except ValueError:
            return args
        if isinstance(words, list) and all(isinstance(w, str) for w in words):
            return shlex.join(words)
    return args


def _commands(command: str) -> list[list[str]]:
    """The simple commands of a shell command line (split at ``&&``, ``;``, ``|``...), ``sh -c`` unwrapped."""
    try:
        lexer = shlex.shlex(command, posix=True, punctuation_chars=";&|")
        lexer.whitespace_split = True
        tokens = list(lexer)
    except ValueError:
        return [[command]]
    out: list[list[str]] = []
    current: list[str] = []
    for token in [*tokens, ";"]:
        if token in _SEPARATORS:
            if current:
                name = Path(current[0]).name
                if name in ("bash", "sh") and "-c" in current[1:-1]:
                    out.extend(_commands(current[current.index("-c") + 1]))
                else:
                    out.append(current)
            current = []
        else:
            current.append(token)
    return out


def _interpret(words: list[str], source_dir: Path, found: LocalInstalls, line: int) -> None:
    name = Path(words[0]).name
    args = words[1:]
    if name.startswith("python") and args[:2] == ["-m", "pip"]:
        name, args = "pip", args[2:]
    if name in ("pip", "pip3") and args[:1] == ["install"]:
        _pip_install(args[1:], source_dir, found, line)
    elif name not in _HARMLESS:
        found.not_done.append(f"line {line}: {shlex.join(words)}")


def _pip_install(args: list[str], source_dir: Path, found: LocalInstalls, line: int) -> None:
    index = 0
    while index < len(args):
        arg = args[index]
        value: str | None = None
        if arg in ("-r", "--requirement"):
            index += 1
            value = args[index] if index < len(args) else ""
        elif arg.startswith("--requirement="):
            value = arg.split("=", 1)[1]
        elif arg.startswith("-r") and len(arg) > 2:
            value = arg[2:]
        if value is not None:
            _requirement_file(value, source_dir, found, line)
        elif arg in _VALUE_OPTIONS:
            found.not_done.append(f"line {line}: pip install {arg} {args[index + 1] if index + 1 < len(args) else ''}")
            index += 1
        elif arg.startswith("-"):
            pass  # --no-cache-dir, -U, -q...: nothing to carry over
        elif arg.startswith((".", "/", "$")):
            found.not_done.append(f"line {line}: pip install {arg} (a path in the image)")
        elif arg not in found.packages:
            found.packages.append(arg)
        index += 1


def _requirement_file(value: str, source_dir: Path, found: LocalInstalls, line: int) -> None:
    """A ``-r`` file as a project-relative path (``./x``, ``/app/x``, ``${APP_HOME}/x`` are the project's ``x``)."""
    path = value
    for var, where in _IMAGE_ENV.items():
        path = path.replace("${" + var + "}", where).replace("$" + var, where)
    for prefix in ("/app/", "./"):
        path = path.removeprefix(prefix)
    if path and not path.startswith("/") and ".." not in Path(path).parts and (source_dir / path).is_file():
        if path not in found.requirement_files:
            found.requirement_files.append(path)
    else:
        found.not_done.append(f"line {line}: pip install -r {value} (not a file of the project)")


__all__ = [
    "NORONHA_IMAGE",
    "Instruction",
    "LocalInstalls",
    "check_noronha_base",
    "instructions",
    "local_installs",
    "map_noronha_base",
    "noronha_bases",
]
