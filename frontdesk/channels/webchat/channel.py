"""The web chat as the app registers it (see ``frontdesk.channels.base.ChannelSpec``)."""

from __future__ import annotations

from frontdesk.channels.base import ChannelSpec
from frontdesk.channels.webchat.api import router
from frontdesk.channels.webchat.outbound import WebchatAdapter
from frontdesk.channels.webchat.runtime import start_webchat
from frontdesk.models.enums import Channel

# /widget.js, /widget/ws and its own /api/v1/widget/… paths: mounted at the root.
CHANNEL = ChannelSpec(
    name=Channel.webchat.value, adapter=WebchatAdapter, routes=((router, ""),), listeners=(start_webchat,)
)
