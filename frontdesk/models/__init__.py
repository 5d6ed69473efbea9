"""Every table of Frontdesk, one module per aggregate. Import from here."""

from frontdesk.db import Base
from frontdesk.models.audit import AuditEntry
from frontdesk.models.conversation import Attachment, Conversation, ConversationTag, Message
from frontdesk.models.customer import Consent, Customer, Identity
from frontdesk.models.event import CustomerEvent
from frontdesk.models.inbox import Inbox
from frontdesk.models.mailbox import MailboxState
from frontdesk.models.merge import CustomerMerge, MergeSuggestion
from frontdesk.models.queue import Queue
from frontdesk.models.rejected import RejectedInput
from frontdesk.models.user import ApiToken, Team, TeamMember, User, UserSession
from frontdesk.models.webchat import WebchatUpload, WebchatVisitor
from frontdesk.models.webhook import WebhookDelivery, WebhookSubscription
from frontdesk.models.work import OutboxItem, Timer

__all__ = [
    "ApiToken",
    "Attachment",
    "AuditEntry",
    "Base",
    "Consent",
    "Conversation",
    "ConversationTag",
    "Customer",
    "CustomerEvent",
    "CustomerMerge",
    "Identity",
    "Inbox",
    "MailboxState",
    "MergeSuggestion",
    "Message",
    "OutboxItem",
    "Queue",
    "RejectedInput",
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
