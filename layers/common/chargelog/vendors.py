"""The vendor platforms chargelog knows, and what a source is on each."""

from __future__ import annotations

from typing import Literal, get_args

Vendor = Literal["plugchoice", "ocpplab", "chargepilot", "evenergy"]
SourceKind = Literal["charger", "site", "evse"]

VENDORS: tuple[str, ...] = get_args(Vendor)

# What one source is on each platform: the unit its log API is addressed by.
SOURCE_KIND: dict[str, SourceKind] = {
    "plugchoice": "charger",
    "ocpplab": "charger",
    "chargepilot": "site",
    "evenergy": "evse",
}
