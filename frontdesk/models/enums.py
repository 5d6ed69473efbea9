"""Closed vocabularies shared by models, schemas and services."""

from enum import StrEnum


class Role(StrEnum):
    admin = "admin"
    supervisor = "supervisor"
    agent = "agent"


class Channel(StrEnum):
    webchat = "webchat"
    email = "email"
    api = "api"
    sms = "sms"
    whatsapp = "whatsapp"
    telegram = "telegram"
    voice = "voice"


class IdentityKind(StrEnum):
    email = "email"
    phone = "phone"
    webchat_visitor = "webchat_visitor"
    external_id = "external_id"
    messenger = "messenger"


class ConversationStatus(StrEnum):
    open = "open"
    pending = "pending"
    snoozed = "snoozed"
    resolved = "resolved"


class Priority(StrEnum):
    low = "low"
    normal = "normal"
    high = "high"
    urgent = "urgent"


class Direction(StrEnum):
    inbound = "in"
    outbound = "out"
    note = "note"


class AuthorType(StrEnum):
    customer = "customer"
    agent = "agent"
    bot = "bot"
    system = "system"


class DeliveryStatus(StrEnum):
    received = "received"  # inbound, stored
    queued = "queued"  # outbound, waiting in the outbox
    sent = "sent"  # handed to the provider
    delivered = "delivered"
    read = "read"
    failed = "failed"  # gave up after retries; visible to the agent
    caught = "caught"  # e-mail kept in the local mail catcher: no relay is configured, nobody got it


class ConsentStatus(StrEnum):
    granted = "granted"
    denied = "denied"
    withdrawn = "withdrawn"


class SatisfactionTier(StrEnum):
    unknown = "unknown"
    promoter = "promoter"
    passive = "passive"
    detractor = "detractor"


class JobStatus(StrEnum):
    pending = "pending"
    running = "running"
    done = "done"
    failed = "failed"


class PresenceStatus(StrEnum):
    available = "available"
    busy = "busy"
    away = "away"
    after_call_work = "after_call_work"
    offline = "offline"
