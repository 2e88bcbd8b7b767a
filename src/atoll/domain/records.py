"""The records Atoll keeps, as pydantic models.

References vs snapshots (DESIGN.md §1): a *reference* is a name pointing at
the live record (``Project.models``, ``Dataset.model``); a *snapshot* is an
embedded copy of the record as it was when written (``Training.bvers``,
``ModelVersion.train``/``dataset``, ``Deployment.movers``/``bvers``), so it
still answers "what exactly produced this?" after the source changed or was
deleted.

Every record has a *scope* (the model or project it belongs to, ``""`` for
top-level records) and a name; ``(kind, scope, name)`` is unique.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from enum import Enum
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from atoll.domain.names import validate_name
from atoll.domain.values import check_json_value, check_text
from atoll.errors import ValidationError as AtollValidationError


def _plain_json(value: dict[str, Any]) -> dict[str, Any]:
    try:
        return check_json_value(value, "value")
    except AtollValidationError as exc:  # pydantic reports ValueErrors with the field's location
        raise ValueError(exc.message.removeprefix("value: ")) from None


#: ``details`` / ``params``: free-form, but plain JSON (no NaN, no lone surrogate, bounded depth).
JsonDict = Annotated[dict[str, Any], AfterValidator(_plain_json)]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class _Strict(BaseModel):
    # revalidate_instances: an embedded record is copied, so a snapshot never
    # aliases the live object it was taken from.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, revalidate_instances="always")


class Record(_Strict):
    """Base of every stored record.

    ``revision`` grows by one on every write; a store refuses a write whose
    revision is not the stored one (no silent overwrite).
    """

    kind: ClassVar[str] = "record"
    scope_field: ClassVar[str | None] = None
    secret_fields: ClassVar[frozenset[str]] = frozenset()

    name: str
    created_at: datetime = Field(default_factory=utcnow)
    modified_at: datetime = Field(default_factory=utcnow)
    revision: int = 0

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return validate_name(value, f"{cls.kind} name")

    @property
    def scope(self) -> str:
        return str(getattr(self, self.scope_field)) if self.scope_field else ""

    def key(self) -> tuple[str, str]:
        """``(scope, name)``: unique among records of this kind."""
        return (self.scope, self.name)

    @property
    def ref(self) -> str:
        """Human form of the key: ``name`` or ``scope:name``."""
        return f"{self.scope}:{self.name}" if self.scope else self.name

    def public_dump(self) -> dict[str, Any]:
        """JSON-ready dict without secret fields: what ``info``/``list`` show."""
        return self.model_dump(mode="json", exclude=set(self.secret_fields))


class FileSpec(_Strict):
    """One file a model version or dataset holds."""

    name: str = Field(min_length=1)
    desc: str = ""
    required: bool = False
    max_mb: float = Field(default=64, gt=0, allow_inf_nan=False)

    @field_validator("name", "desc")
    @classmethod
    def _valid_text(cls, value: str) -> str:
        return check_text(value, "file spec")

    @field_validator("name")
    @classmethod
    def _plain_file_name(cls, value: str) -> str:
        if "\0" in value or "\n" in value or "\r" in value:
            raise ValueError(f"file name {value!r} must not hold NUL or line breaks")
        if "/" in value or "\\" in value or value in {".", ".."}:
            raise ValueError(f"file name {value!r} must be a plain file name, not a path")
        return value


_HEX64 = re.compile(r"[0-9a-f]{64}")


class StoredFile(_Strict):
    """A file as stored: name relative to the artifact root, size, and one digest.

    The digest sits in the field named after its algorithm, exactly one of:

    - ``blake3``: files published since BLAKE3 became the default
      (``file_store.digest: blake3``; a verified fetch of BLAKE3 runs faster
      than the copy it checks, sha256 does not);
    - ``sha256``: files recorded before, or with ``file_store.digest: sha256``.

    Two optional fields rather than one ``digest: "blake3:<hex>"`` string,
    because records already stored (SQLite and PostgreSQL JSON, MongoDB
    documents, the snapshots other records embed) hold ``sha256`` and read
    as they are, with no migration; and because ``info`` and ``--output
    json`` then name the algorithm by its key: a reader knows whether to
    compare with ``sha256sum`` or ``b3sum``, and a script that read
    ``files[].sha256`` finds no value instead of a BLAKE3 one it would take
    for a sha256. The unset field is left out of dumps, so an old record
    dumps as before. :attr:`algorithm` and :attr:`digest` read whichever is set.
    """

    name: str
    size: int
    sha256: str | None = None
    blake3: str | None = None

    @field_validator("sha256", "blake3")
    @classmethod
    def _hex(cls, value: str | None) -> str | None:
        if value is not None and not _HEX64.fullmatch(value):
            raise ValueError("a file digest is 64 lowercase hex digits")
        return value

    @model_validator(mode="after")
    def _one_digest(self) -> StoredFile:
        if (self.sha256 is None) == (self.blake3 is None):
            raise ValueError(f"stored file {self.name!r} needs exactly one digest: blake3 or sha256")
        return self

    @model_serializer(mode="wrap")
    def _without_unset_digest(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for field in ("sha256", "blake3"):
            if data.get(field, "") is None:
                del data[field]
        return data

    @property
    def algorithm(self) -> str:
        """``"blake3"`` or ``"sha256"``: what :attr:`digest` was computed with."""
        return "blake3" if self.blake3 is not None else "sha256"

    @property
    def digest(self) -> str:
        """The recorded hex digest (of :attr:`algorithm`)."""
        return str(self.blake3 if self.blake3 is not None else self.sha256)


class Model(Record):
    kind: ClassVar[str] = "model"
    desc: str = ""
    model_files: list[FileSpec] = Field(default_factory=list)
    data_files: list[FileSpec] = Field(default_factory=list)


class Project(Record):
    kind: ClassVar[str] = "project"
    desc: str = ""
    models: list[str] = Field(default_factory=list)  # references
    home_dir: str | None = None
    git_repo: str | None = None
    docker_repo: str | None = None


class BuildVersion(Record):
    """One build of a project; ``name`` is the tag."""

    kind: ClassVar[str] = "bvers"
    scope_field: ClassVar[str | None] = "proj"
    proj: str
    container_manager: str = "local"
    built_from: str = "here"  # here | home | git | pre-built
    code_hash: str = ""
    git_commit: str | None = None
    image: str | None = None  # repository:tag (docker)
    image_id: str | None = None
    digest: str | None = None  # what tasks run
    location: str | None = None  # local runtime: build directory
    env_hash: str | None = None  # local runtime: requirements hash
    details: JsonDict = Field(default_factory=dict)

    @property
    def tag(self) -> str:
        return self.name


class ArtifactRecord(Record):
    """Shared shape of datasets and model versions: files kept in the file store."""

    scope_field: ClassVar[str | None] = "model"
    model: str
    details: JsonDict = Field(default_factory=dict)
    stored: bool = True
    compressed: bool = False
    files: list[StoredFile] = Field(default_factory=list)
    store_key: str | None = None  # prefix (or archive key) in the file store


class Dataset(ArtifactRecord):
    kind: ClassVar[str] = "ds"


class TaskState(str, Enum):
    WAITING = "WAITING"
    DEPLOYING = "DEPLOYING"  # deployments: a roll-out nobody waits for (`depl new -b`) goes on
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def ended(self) -> bool:
        return self in (TaskState.FINISHED, TaskState.FAILED, TaskState.CANCELLED)


class Task(_Strict):
    """Progress document of a training (or a deployment's roll-out)."""

    state: TaskState = TaskState.WAITING
    progress: float = Field(default=0.0, ge=0.0, le=1.0)
    start_time: datetime | None = None
    update_time: datetime = Field(default_factory=utcnow)
    error: str | None = None
    failed_cell: int | None = None


class TaskMount(_Strict):
    """What a task sees at ``target`` (``--mount SRC:DST[:ro]``): a host path, or a named
    volume (swarm) / PersistentVolumeClaim (kubernetes) when ``volume`` is set."""

    source: str = Field(min_length=1)
    target: str = Field(min_length=2)
    read_only: bool = False
    volume: bool = False

    def __str__(self) -> str:
        return f"{self.source}:{self.target}" + (":ro" if self.read_only else "")


class Training(Record):
    kind: ClassVar[str] = "train"
    scope_field: ClassVar[str | None] = "proj"
    proj: str
    notebook: str
    params: JsonDict = Field(default_factory=dict)
    env_keys: list[str] = Field(default_factory=list)  # values are not recorded
    bvers: BuildVersion  # snapshot
    datasets: list[Dataset] = Field(default_factory=list)  # snapshots
    pretrained: list[str] = Field(default_factory=list)  # "model:version"
    task: Task = Field(default_factory=Task)
    container_manager: str = "local"
    task_id: str | None = None  # pid / container id
    output_notebook: str | None = None  # file-store key of the executed notebook
    #: The resource profile it ran with: ``{"name", <the values set>, "note"}`` (None: no profile).
    resource_profile: JsonDict | None = None
    mounts: list[TaskMount] = Field(default_factory=list)
    details: JsonDict = Field(default_factory=dict)


class ModelVersion(ArtifactRecord):
    kind: ClassVar[str] = "movers"
    dataset: Dataset | None = None  # snapshot
    train: Training | None = None  # snapshot
    pretrained: str | None = None  # "model:version" reference


class Deployment(Record):
    kind: ClassVar[str] = "depl"
    scope_field: ClassVar[str | None] = "proj"
    proj: str
    notebook: str
    params: JsonDict = Field(default_factory=dict)
    env_keys: list[str] = Field(default_factory=list)
    n_tasks: int = Field(default=1, ge=1)
    port: int | None = Field(default=None, ge=1, le=65535)
    bvers: BuildVersion  # snapshot
    movers: list[ModelVersion] = Field(default_factory=list)  # snapshots
    container_manager: str = "local"
    task: Task = Field(default_factory=Task)
    resource_profile: JsonDict | None = None  # as Training.resource_profile
    mounts: list[TaskMount] = Field(default_factory=list)
    details: JsonDict = Field(default_factory=dict)


class TreasureChest(Record):
    """A named credential; ``secret`` holds the Fernet token, never the plain text."""

    kind: ClassVar[str] = "tchest"
    secret_fields: ClassVar[frozenset[str]] = frozenset({"secret"})
    desc: str = ""
    details: JsonDict = Field(default_factory=dict)
    user: str = ""
    secret: str = ""


class ApiKey(Record):
    """A key that lets prediction requests through the router (see ``atoll key``).

    Only an HMAC of the key is kept (``hash``, hidden from output); ``prefix``,
    the key's first characters, identifies it in listings and logs.
    """

    kind: ClassVar[str] = "apikey"
    scope_field: ClassVar[str | None] = "proj"
    secret_fields: ClassVar[frozenset[str]] = frozenset({"hash"})
    proj: str
    deploy: str | None = None  # None: every deployment of the project
    expires_at: datetime | None = None
    prefix: str
    hash: str

    @field_validator("proj", "deploy")
    @classmethod
    def _check_target(cls, value: str | None) -> str | None:
        return value if value is None else validate_name(value, "API key target name")


RECORD_TYPES: dict[str, type[Record]] = {
    cls.kind: cls
    for cls in (Model, Project, BuildVersion, Dataset, Training, ModelVersion, Deployment, TreasureChest, ApiKey)
}
