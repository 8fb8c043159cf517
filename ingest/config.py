"""Sources declared in TOML: `[[source]]` tables of kind file, rss or kafka (see sources.example.toml).

`load_sources` raises `ConfigError` with one line naming the file, the source (index and name) and the field.
Relative file paths are read from the TOML file's folder, so a config works from any working directory.
"""

from __future__ import annotations

import tomllib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from ingest.sources.files import FieldMapping

if TYPE_CHECKING:
    import httpx

    from ingest.sources.rss import FeedPoller

KINDS = ("file", "rss", "kafka")


class ConfigError(ValueError):
    """A sources file that cannot be used; the text is one line naming the source and field."""


class _Source(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200)  # the `sources` table's name (and the feed job's id)


class FileSourceConfig(_Source):
    """A CSV or JSON Lines file, read once (a backfill or a replay)."""

    kind: Literal["file"]
    path: Path
    mapping: dict[str, str] = Field(default_factory=dict)  # our field -> column name

    @field_validator("mapping")
    @classmethod
    def _known_fields(cls, value: dict[str, str]) -> dict[str, str]:
        FieldMapping.from_columns(value)  # the rules of `finsent backfill --map` too (MappingError is a ValueError)
        return value

    def field_mapping(self) -> FieldMapping:
        """The mapping as a FieldMapping (defaults for the fields not named)."""
        return FieldMapping.from_columns(self.mapping)


class RssSourceConfig(_Source):
    """An RSS 2.0 or Atom feed, polled every interval_s seconds."""

    kind: Literal["rss"]
    url: str
    interval_s: float = Field(300, gt=0)
    timeout_s: float = Field(10, gt=0)
    max_backoff_s: float = Field(3600, gt=0)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value

    def poller(self, *, client: httpx.Client | None = None) -> FeedPoller:
        """A FeedPoller for this feed."""
        from ingest.sources.rss import FeedPoller

        return FeedPoller(
            self.name,
            self.url,
            interval_s=self.interval_s,
            timeout_s=self.timeout_s,
            max_backoff_s=self.max_backoff_s,
            client=client,
        )


class KafkaSourceConfig(_Source):
    """An outside producer writing JSON to the raw topic itself; declared so health and docs know it."""

    kind: Literal["kafka"]
    description: str | None = None


SourceConfig = Annotated[FileSourceConfig | RssSourceConfig | KafkaSourceConfig, Field(discriminator="kind")]
_ADAPTER: TypeAdapter[Any] = TypeAdapter(SourceConfig)


def load_sources(path: str | Path) -> list[SourceConfig]:
    """The sources declared in a TOML file; ConfigError (one line) when the file or any source is invalid."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax error: {exc}") from None
    return parse_sources(data, base_dir=path.resolve().parent, origin=str(path))


def describe_sources(configs: Sequence[SourceConfig]) -> str:
    """One line for `finsent doctor`: how many sources of each kind."""
    kinds = Counter(c.kind for c in configs)
    return f"{len(configs)} source(s): " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))


def parse_sources(data: dict[str, Any], *, base_dir: Path, origin: str = "<sources>") -> list[SourceConfig]:
    """Validate parsed TOML (`{"source": [...]}`); relative file paths are resolved against base_dir."""
    unknown = sorted(set(data) - {"source"})
    if unknown:
        raise ConfigError(f"{origin}: unknown top-level key {unknown[0]!r} (sources are [[source]] tables)")
    tables = data.get("source", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(f"{origin}: `source` must be an array of tables, written [[source]]")
    sources: list[SourceConfig] = []
    names: dict[str, int] = {}
    for index, table in enumerate(tables, start=1):
        label = f"{origin}: source #{index}" + (f" ({table['name']!r})" if isinstance(table.get("name"), str) else "")
        try:
            source = _ADAPTER.validate_python(table)
        except ValidationError as exc:
            raise ConfigError(f"{label}: {_describe(exc, table)}") from None
        if source.name in names:
            raise ConfigError(f"{label}: name: duplicate of source #{names[source.name]}")
        names[source.name] = index
        if isinstance(source, FileSourceConfig) and not source.path.is_absolute():
            source = source.model_copy(update={"path": (base_dir / source.path).resolve()})
        sources.append(source)
    return sources


def _describe(exc: ValidationError, table: dict[str, Any]) -> str:
    parts = []
    for error in exc.errors(include_url=False):
        kind, loc = error["type"], [str(part) for part in error["loc"]]
        if kind == "union_tag_not_found":
            parts.append(f"kind: missing (one of {', '.join(KINDS)})")
            continue
        if kind == "union_tag_invalid":
            parts.append(f"kind: {table.get('kind')!r} is not one of {', '.join(KINDS)}")
            continue
        field = ".".join(loc[1:]) or "source"  # loc[0] is the kind the union picked
        if kind == "missing":
            parts.append(f"{field}: missing (required for kind {table.get('kind')!r})")
        elif kind == "extra_forbidden":
            parts.append(f"{field}: unknown key for kind {table.get('kind')!r}")
        else:
            message = error["msg"].removeprefix("Value error, ")
            shown = repr(error["input"])
            parts.append(f"{field}: {message} (got {shown if len(shown) <= 80 else shown[:77] + '...'})")
    return "; ".join(parts)
