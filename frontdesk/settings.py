"""Configuration: ``FRONTDESK_*`` environment variables, then an optional ``frontdesk.toml``.

Environment variables win over the file. ``FRONTDESK_CONFIG`` names another file.
``frontdesk config`` prints the effective values with secrets masked.
"""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_DATA_DIR = Path("var")


def _config_file() -> Path:
    return Path(os.environ.get("FRONTDESK_CONFIG", "frontdesk.toml"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FRONTDESK_", extra="ignore")

    data_dir: Path = Field(DEFAULT_DATA_DIR, description="Where the SQLite file, attachments and secrets live.")
    database_url: str = Field(
        "",
        description="SQLAlchemy URL. Default: a SQLite file under data_dir. "
        "Use postgresql+asyncpg://… for the scaled mode.",
    )
    redis_url: str | None = Field(None, description="Redis URL for the realtime hub; unset = in-process hub.")
    redis_prefix: str = Field(
        "fd",
        pattern=r"^[A-Za-z0-9_.-]{1,32}$",
        description="First part of every Redis key and channel name: deployments (or test runs) sharing "
        "one Redis database stay apart.",
    )
    secret_key: SecretStr | None = Field(
        None, description="Signs cookies and visitor tokens. Default: generated once into data_dir/secret_key."
    )
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str = Field("", description="Base URL users reach this server at (for links in emails).")
    auto_migrate: bool | None = Field(
        None, description="Migrate on start. Default: on for SQLite (embedded mode), off otherwise."
    )
    cookie_secure: bool | None = Field(
        None,
        description="Mark the session cookie Secure. Default: on, except for a request over plain http to a "
        "host that is not loopback (unless public_url is https).",
    )
    session_hours: int = Field(12, ge=1, description="How long a browser session lasts without use.")
    login_attempts_per_minute: int = Field(10, ge=1, description="Failed sign-ins allowed per account (email).")
    login_attempts_per_ip_per_minute: int = Field(
        100, ge=1, description="Failed sign-ins allowed per client address, whatever the account."
    )
    attachments_backend: str = Field("local", description="local | s3")
    attachments_dir: Path | None = None
    s3_endpoint: str | None = None
    s3_bucket: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key: str | None = None
    s3_secret_key: SecretStr | None = None
    max_attachment_mb: int = 25
    timers_poll_seconds: float = Field(0.5, gt=0)
    timers_lease_seconds: float = Field(60.0, gt=0)
    timers_backoff_seconds: float = Field(2.0, gt=0, description="First retry delay; doubles per attempt.")
    ws_heartbeat_seconds: float = Field(20.0, gt=0, description="Ping interval on /ws connections.")
    run_loops: bool = Field(True, description="Run the timer/outbox loops inside `serve`.")
    ingest_batch_max: int = Field(256, ge=1, description="Most inbound messages written in one commit.")
    ingest_concurrent_batches: int = Field(
        2,
        ge=1,
        le=8,
        description="Most group commits one process writes at once on PostgreSQL (SQLite: always one). "
        "A second starts only while the first is written and enough messages wait for it.",
    )
    # -- channels -----------------------------------------------------------------------------
    smtp_listen: str | None = Field(
        None, description="host:port of the built-in SMTP receiver for inbound email; unset = off."
    )
    smtp_relay: SecretStr | None = Field(
        None,
        description="Outbound mail relay: smtp://user:pass@host:port (STARTTLS when offered), "
        "smtps://… (TLS from the start), smtp://host:port?starttls=require.",
    )
    mail_domain: str = Field("frontdesk.localhost", description="Domain of reply addresses (reply+<token>@domain).")
    mail_from: str | None = Field(None, description="Default From address for outbound email.")
    imap_poll_seconds: float = Field(60.0, gt=0, description="How often IMAP mailboxes are polled.")
    # -- inbound email: the SMTP receiver's limits and sender authentication (channels/email) --
    smtp_max_sessions: int = Field(
        100, ge=1, description="Concurrent SMTP sessions the receiver serves; one more is answered 421 and closed."
    )
    mail_auth_enabled: bool = Field(
        True,
        description="Check SPF, DKIM and DMARC of inbound mail. Off: every message's verdict is 'none' "
        "(and mail never proves its sender, so it never joins a customer who holds the address verified).",
    )
    routing_tick_seconds: float = Field(0.25, gt=0, le=10, description="How often the routing leader decides.")
    routing_step_gap_seconds: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Least time between two routing steps: wake-ups that come sooner are handled together.",
    )
    routing_lock_retry_seconds: float = Field(
        1.0, gt=0, le=60, description="How often a standby process tries to become the routing leader."
    )
    routing_disconnect_grace_seconds: float = Field(
        15.0, ge=0, description="An agent with no desk open this long is set offline and their offers return."
    )
    routing_max_missed_offers: int = Field(3, ge=1, description="Offers missed in a row before an agent is set away.")
    widget_max_attachment_mb: int = Field(10, ge=1, description="Largest file a web-chat visitor may send.")
    widget_messages_per_minute: int = Field(30, ge=1, description="Per visitor; per IP it is 5x this.")
    # -- request size (frontdesk/limits.py) --------------------------------------------------------
    max_body_kb: int = Field(
        1024, ge=64, description="Largest request body of an ordinary API call, in KB (counted as it arrives)."
    )
    max_bulk_body_mb: int = Field(
        16, ge=1, description="Largest body of an event batch, inbound message, API-channel message or reply, in MB."
    )
    max_identities_per_customer: int = Field(
        100, ge=1, description="Most identities one customer may hold (adding more is refused, merges too)."
    )
    # -- identity (issue 9): the link e-mailed to prove an address a web-chat visitor gave --------
    email_link_minutes: int = Field(
        60, ge=5, le=7 * 24 * 60, description="How long an e-mailed confirmation link works (it works once)."
    )
    email_links_per_hour: int = Field(
        3, ge=1, description="Confirmation links sent per visitor, and per address, in any hour."
    )
    # -- rejected inputs: what the intakes refused (frontdesk/rejected; issue 9) ------------------
    rejected_max_body_kb: int = Field(
        1024, ge=1, description="Most of one refused input kept when its sender named a real inbox or authenticated."
    )
    rejected_excerpt_bytes: int = Field(
        512, ge=0, le=65536, description="Most of one refused input kept from an anonymous sender (0 = none)."
    )
    rejected_per_sender_per_minute: int = Field(
        120, ge=1, description="Refused inputs kept per known sender (token, inbox, SMTP peer) per minute."
    )
    rejected_anonymous_per_minute: int = Field(
        10, ge=0, description="Refused inputs kept per anonymous sender (client IP) per minute."
    )
    rejected_anonymous_max_rows: int = Field(
        1000, ge=0, description="Anonymous refused inputs kept in all; the oldest make room for new ones."
    )
    rejected_max_total_mb: int = Field(
        256, ge=1, description="Total size of kept bodies; beyond it only the reason of a refused input is kept."
    )
    # -- sockets and credentials (issue 9: revocation, connection limits) -------------------------
    auth_watch_seconds: float = Field(
        0.5,
        gt=0,
        le=10,
        description="How often each server process reads credential changes (sign-outs, disabled users, "
        "revoked tokens) made by other processes; the realtime hub usually brings them sooner.",
    )
    ws_auth_timeout_seconds: float = Field(
        10.0, gt=0, le=120, description="How long a WebSocket may take to send its first (auth) frame."
    )
    ws_max_connections_per_ip: int = Field(
        500, ge=1, description="Open WebSockets (desk and widget together) per client address, per server process."
    )
    http_header_timeout_seconds: float = Field(
        15.0,
        gt=0,
        le=600,
        description="`frontdesk serve` closes a connection whose request line and headers take longer than this.",
    )
    tune_gc: bool = Field(
        True,
        description="Server processes freeze start-up objects out of the garbage collector and collect "
        "the young generation less often (fewer, shorter pauses under load).",
    )
    log_level: str = "info"
    log_json: bool = False
    # -- outbound destinations: what admin-set URLs and hosts may reach (frontdesk/netguard.py) --
    outbound_allow: str | None = Field(
        None,
        description="Comma-separated networks (CIDR) and host names (*.suffix for a domain) that webhooks, "
        "API-inbox webhook_urls and IMAP hosts may reach besides public addresses, e.g. "
        "10.0.0.0/8,hooks.internal. Unset: loopback, private, link-local… destinations are refused.",
    )
    # -- DNS: the servers Frontdesk asks itself (mail authentication, outbound destinations) ------
    dns_servers: list[str] = Field(
        default_factory=list,
        description="DNS servers for the lookups Frontdesk makes itself (SPF/DKIM/DMARC of inbound mail, "
        'the addresses of webhooks, API-inbox URLs and IMAP hosts), e.g. ["10.0.0.53", "[::1]:5353"]; '
        "empty = the system resolver (/etc/resolv.conf).",
    )
    dns_timeout: float = Field(5.0, gt=0, le=60, description="Seconds one DNS lookup may take.")

    @field_validator("outbound_allow")
    @classmethod
    def _outbound(cls, v: str | None) -> str | None:
        from frontdesk.netguard import Policy

        if v is not None and v.strip():
            Policy.parse(allow=v)
        return v

    @field_validator("dns_servers")
    @classmethod
    def _dns_servers(cls, v: list[str]) -> list[str]:
        from frontdesk import nameservers

        nameservers.servers_of(v)
        return v

    @field_validator("database_url")
    @classmethod
    def _strip(cls, v: str) -> str:
        return v.strip()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _config_file()
        if path.is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    # -- derived values -------------------------------------------------------------------

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'frontdesk.db').as_posix()}"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    @property
    def should_auto_migrate(self) -> bool:
        return self.is_sqlite if self.auto_migrate is None else self.auto_migrate

    @property
    def effective_attachments_dir(self) -> Path:
        return self.attachments_dir or self.data_dir / "attachments"

    def secret(self) -> str:
        """The signing secret; generated and kept in ``data_dir/secret_key`` when not configured."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        path = self.data_dir / "secret_key"
        if path.is_file():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        value = secrets.token_urlsafe(48)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(value)
        return value

    def masked(self) -> dict[str, Any]:
        """The effective configuration with every secret masked (for ``frontdesk config``)."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = "********"
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, str) and "://" in value:
                value = mask_url(value)
            out[name] = value
        out["database_url"] = mask_url(self.effective_database_url)
        return out


def mask_url(url: str) -> str:
    """Hide the password in a URL: ``postgresql://u:secret@h/db`` → ``postgresql://u:****@h/db``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":****@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


@lru_cache
def get_settings() -> Settings:
    return Settings()
