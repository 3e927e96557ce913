"""Sizing, pre-trade limits and the kill switch."""

from kaizen.risk.limits import HALT_FILE, RiskManager, position_headroom
from kaizen.risk.sizing import size_position

__all__ = ["HALT_FILE", "RiskManager", "position_headroom", "size_position"]
