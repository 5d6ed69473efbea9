"""Every channel folder has the same shape: inbound, outbound, api and schemas modules, and one
``ChannelSpec`` whose adapter serves the channel it names (docs/architecture/channels.md)."""

from __future__ import annotations

import importlib

import pytest

from frontdesk.channels.base import ChannelAdapter, ChannelContext, ChannelSpec
from frontdesk.models.enums import Channel

FOLDERS = ["webchat", "email", "apichannel"]


@pytest.mark.parametrize("folder", FOLDERS)
def test_a_channel_folder_has_the_common_modules_and_a_spec(folder: str) -> None:
    for module in ("inbound", "outbound", "api", "schemas"):
        importlib.import_module(f"frontdesk.channels.{folder}.{module}")
    spec = importlib.import_module(f"frontdesk.channels.{folder}.channel").CHANNEL
    assert isinstance(spec, ChannelSpec)
    assert spec.name in {c.value for c in Channel}
    adapter = spec.adapter(ChannelContext())
    assert isinstance(adapter, ChannelAdapter)
    assert adapter.name == spec.name
    assert spec.routes, "a channel has at least one route (inbound or its admin side)"
