"""Typed settings, read once from the environment / `.env` (prefix `SIYU_`) and passed down."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from siyu.core.errors import SiyuError
from siyu.ingest.bounds import EARLIEST, MAX_FUTURE, TimeBounds
from siyu.lake.tables import local_path
from siyu.messaging.settings import ChannelSettings
from siyu.privacy.crypto import Keyring

DEV_PII_KEY = "siyu-dev-key"  # published in this repository: fine for a demo, never for real customers


class DefaultPiiKeyError(SiyuError):
    code = "default_pii_key"
    exit_code = 2


class Settings(BaseSettings):
    """Everything siyu can be configured with. No secrets have defaults that matter in production."""

    model_config = SettingsConfigDict(env_prefix="SIYU_", env_file=".env", extra="ignore", env_nested_delimiter="__")

    home: Path = Field(default=Path(".siyu"), description="Workspace folder: lake and default store")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL of the store; default sqlite:///$SIYU_HOME/siyu.db"
    )
    lake_uri: str | None = Field(
        default=None, description="The lake: a folder, file://… or s3://bucket/prefix; default $SIYU_HOME/lake"
    )
    lake_storage_options: dict[str, str] = Field(
        default_factory=dict, description="deltalake storage options for the lake URI (JSON: endpoint, region, …)"
    )
    lake_vacuum_retain_hours: int = Field(
        default=168, ge=1, description="`siyu lake optimize` keeps time travel this long (files of older versions go)"
    )
    lake_optimize_every_hours: float = Field(
        default=24.0, ge=0, description="`siyu worker` optimizes the lake this often (0 = off)"
    )
    import_chunk_rows: int = Field(
        default=500_000, ge=1, description="`siyu import` reads a file this many rows at a time (memory bound)"
    )
    engine: str = Field(default="duckdb", description="Compute engine for Ibis expressions: duckdb | pyspark")
    spark_master: str = Field(default="local[*]", description="Spark master URL (SIYU_ENGINE=pyspark)")
    spark_conf: str = Field(default="", description="Extra Spark settings: key=value pairs separated by commas")
    engine_memory_limit: str = Field(
        default="4GB", description="DuckDB memory limit; larger work spills to $SIYU_HOME/tmp"
    )
    timezone: str = Field(default="Asia/Shanghai", description="Default brand time zone")
    # One-ID: a strong identifier value shared by more source customers than this is junk.
    identity_max_share: int = 50
    identity_full_every_hours: float = Field(
        default=24.0, description="`siyu worker` re-runs One-ID in full this often (the loader runs it incrementally)"
    )
    identity_blocklist: Path | None = Field(default=None, description="Extra placeholder blocklist file")
    env: str = Field(default="production", description="`dev` lets servers run with the development PII key")
    pii_key: str = Field(default=DEV_PII_KEY, description="Key for PII hashes and encryption; set it in production")
    pii_key_file: Path | None = Field(
        default=None, description="PII keyring (JSON: current, hash, keys); replaces SIYU_PII_KEY (docs/privacy.md)"
    )
    pii_encryption: bool = Field(
        default=True, description="Encrypt PII at rest; `off` only to measure its cost (docs/privacy.md)"
    )
    # HTTP API and the inbox loader (siyu serve / siyu worker).
    api_loader: bool = Field(default=True, description="Run the inbox loader inside each `siyu serve` process")
    api_rate_limit: int = Field(
        default=1000, description="Requests per second per API key, shared by every server process"
    )
    api_compute_engines: int = Field(default=2, ge=1, description="Concurrent customer / metric reads per API process")
    api_audience_engines: int = Field(
        default=2, ge=1, description="Concurrent audience counts, previews and exports per API process (own engines)"
    )
    api_engine_wait: float = Field(
        default=10.0, gt=0, description="Seconds a request waits for a free engine before 503 engine_busy"
    )
    api_audience_timeout: float = Field(
        default=30.0, ge=0, description="Seconds an audience request may compile and run before 503 (0 = no limit)"
    )
    console_secure_cookie: bool | None = Field(
        default=None, description="Console cookies `Secure`: unset = yes except plain HTTP to 127.0.0.1/localhost"
    )
    # Audience and tag rules: size limits checked before anything compiles (docs/api.md).
    rule_max_depth: int = Field(default=20, ge=1, le=100, description="Nested all / any / not levels in a rule")
    rule_max_nodes: int = Field(default=200, ge=1, le=5_000, description="Conditions and combinators in a rule")
    rule_max_values: int = Field(default=1_000, ge=1, description="Values in one list of a rule")
    rule_max_chars: int = Field(default=20_000, ge=100, description="Characters of a rule's text or JSON")
    loader_batch_messages: int = Field(default=20_000, description="Load when this many messages wait")
    loader_max_age: float = Field(default=1.0, description="…or when the oldest has waited this many seconds")
    loader_resolve_every: float = Field(default=5.0, description="Re-run One-ID at most this often (seconds)")
    ready_max_pending_age: float = Field(
        default=300.0, description="/ready is 503 when the oldest pending inbox message waited longer (s; 0 = off)"
    )
    wecom_api_base: str = Field(
        default="https://qyapi.weixin.qq.com", description="WeCom API host (a local fake in tests and the demo)"
    )
    # Business timestamps outside [earliest, now + max_future] are rejected at the door (docs/import-schema.md).
    ingest_earliest: datetime = Field(default=EARLIEST, description="Earliest accepted business timestamp")
    ingest_max_future: timedelta = Field(default=MAX_FUTURE, description="How far past now a timestamp may be")

    # Outbound channels: SIYU_SMTP_*, SIYU_SMS_*, SIYU_WECHAT_*, SIYU_MESSAGING_* (docs/messaging.md).
    channels: ChannelSettings = Field(default_factory=ChannelSettings)

    @field_validator("ingest_earliest")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=UTC)  # a bare date means UTC midnight

    @model_validator(mode="after")
    def _keyring_hash_key(self) -> Settings:
        # Everything keyed by SIYU_PII_KEY (hashes, unsubscribe tokens) uses the keyring's hash key.
        if self.pii_key_file is not None:
            self.pii_key = self.pii_keyring.hash_key
        return self

    @cached_property
    def pii_keyring(self) -> Keyring:
        return Keyring.load(self.pii_key_file) if self.pii_key_file is not None else Keyring.single(self.pii_key)

    @property
    def pii_sealing_ring(self) -> Keyring | None:
        """The keyring new PII is sealed with; None only when SIYU_PII_ENCRYPTION=off (benchmarks)."""
        return self.pii_keyring if self.pii_encryption else None

    @property
    def time_bounds(self) -> TimeBounds:
        return TimeBounds(self.ingest_earliest, self.ingest_max_future)

    def require_own_pii_key(self) -> None:
        """Servers refuse the published development key outside `SIYU_ENV=dev`: hashes made with it
        (One-ID merge records) can be reversed by anyone who reads this repository."""
        if self.pii_key == DEV_PII_KEY and self.env != "dev":
            raise DefaultPiiKeyError(
                "SIYU_PII_KEY is the published development key; set your own, e.g. "
                'export SIYU_PII_KEY=$(python -c "import secrets; print(secrets.token_hex(32))") '
                "(keep it: hashes depend on it), or SIYU_ENV=dev for a local trial (请设置 SIYU_PII_KEY)"
            )

    @property
    def lake_dir(self) -> Path:
        """The lake's local folder ($SIYU_LAKE_URI when it is a path or file://, else $SIYU_HOME/lake)."""
        return (local_path(self.lake_uri) if self.lake_uri else None) or self.home / "lake"

    @property
    def lake_location(self) -> str:
        """The lake as `Lake` takes it: $SIYU_LAKE_URI, or the folder $SIYU_HOME/lake."""
        return self.lake_uri or str(self.home / "lake")

    @property
    def store_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'siyu.db').resolve()}"
