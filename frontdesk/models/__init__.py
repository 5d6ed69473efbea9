"""Every table of Frontdesk, one module per aggregate. Import from here."""

from frontdesk.db import Base
from frontdesk.models.audit import AuditEntry
from frontdesk.models.canned import CannedResponse
from frontdesk.models.conversation import Attachment, Conversation, ConversationTag, Message
from frontdesk.models.customer import Consent, Customer, Identity
from frontdesk.models.event import CustomerEvent
from frontdesk.models.inbox import Inbox
from frontdesk.models.mailbox import MailboxState
from frontdesk.models.mailcatcher import CaughtMail
from frontdesk.models.merge import CustomerMerge, MergeSuggestion
from frontdesk.models.queue import AgentPresence, Queue
from frontdesk.models.rejected import RejectedInput
from frontdesk.models.routing import (
    AgentSkill,
    CapacityShift,
    QueueSkill,
    RoutingDecision,
    RoutingInboxEvent,
    RoutingItem,
    RoutingLeadership,
    RoutingOffer,
    RoutingProfile,
    RoutingQueueStatus,
    RoutingRule,
    Skill,
)
from frontdesk.models.user import ApiToken, CredentialChange, Team, TeamMember, User, UserSession
from frontdesk.models.webchat import EmailConfirmation, WebchatUpload, WebchatVisitor
from frontdesk.models.webhook import WebhookDelivery, WebhookSubscription
from frontdesk.models.work import OutboxItem, Timer
from frontdesk.search import ddl as _search_ddl  # noqa: F401  (full-text index DDL after create_all)

__all__ = [
    "AgentPresence",
    "AgentSkill",
    "ApiToken",
    "Attachment",
    "AuditEntry",
    "Base",
    "CannedResponse",
    "CapacityShift",
    "CaughtMail",
    "Consent",
    "Conversation",
    "ConversationTag",
    "CredentialChange",
    "Customer",
    "CustomerEvent",
    "CustomerMerge",
    "EmailConfirmation",
    "Identity",
    "Inbox",
    "MailboxState",
    "MergeSuggestion",
    "Message",
    "OutboxItem",
    "Queue",
    "QueueSkill",
    "RejectedInput",
    "RoutingDecision",
    "RoutingInboxEvent",
    "RoutingItem",
    "RoutingLeadership",
    "RoutingOffer",
    "RoutingProfile",
    "RoutingQueueStatus",
    "RoutingRule",
    "Skill",
    "Team",
    "TeamMember",
    "Timer",
    "User",
    "UserSession",
    "WebchatUpload",
    "WebchatVisitor",
    "WebhookDelivery",
    "WebhookSubscription",
]
