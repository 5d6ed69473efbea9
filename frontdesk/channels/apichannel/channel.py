"""The API channel as the app registers it (see ``frontdesk.channels.base.ChannelSpec``)."""

from __future__ import annotations

from frontdesk.channels.apichannel.api import router
from frontdesk.channels.apichannel.outbound import WebhookAdapter
from frontdesk.channels.base import ChannelSpec
from frontdesk.models.enums import Channel

CHANNEL = ChannelSpec(name=Channel.api.value, adapter=WebhookAdapter, routes=((router, "/api/v1"),))
