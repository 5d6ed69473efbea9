"""The web-chat channel: an outbound message is pushed to the customer's widget.

The widget listens on hub topic ``widget:<conversation_id>``; a widget that was away resumes
from its last event id (or reloads the conversation), so a push is as good as delivered.
The widget socket (``channels/webchat/socket.py``) turns the event into a ``message`` frame by
reading the message from the database (author name, attachments, offer), so the payload only
has to name it; its ``seq`` is the event id. A retried delivery may publish twice: the widget
dedupes by message id.
"""

from __future__ import annotations

from frontdesk.channels.base import ChannelContext, OutboundMessage, SendResult, TransientError
from frontdesk.events import MESSAGE_CREATED, widget_topic


class WebchatAdapter:
    name = "webchat"

    def __init__(self, ctx: ChannelContext) -> None:
        self.ctx = ctx

    async def send(self, message: OutboundMessage) -> SendResult:
        hub = self.ctx.hub
        if hub is None:
            raise TransientError("no realtime hub to reach the widget")
        payload = message.as_payload()["message"]
        await hub.publish(widget_topic(message.conversation_id), MESSAGE_CREATED, payload)
        return SendResult(status="delivered", external_id=None, detail="pushed to widget")
