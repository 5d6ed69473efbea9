"""E-mail as the app registers it (see ``frontdesk.channels.base.ChannelSpec``)."""

from __future__ import annotations

from frontdesk.channels.base import ChannelSpec
from frontdesk.channels.email import api, catcher_api, imap, smtp_server
from frontdesk.channels.email.outbound import EmailAdapter
from frontdesk.models.enums import Channel

CHANNEL = ChannelSpec(
    name=Channel.email.value,
    adapter=EmailAdapter,
    routes=((api.router, "/api/v1"), (catcher_api.router, "/api/v1")),
    listeners=(imap.start_imap_poller, smtp_server.start),
)
