from picows import WSFrame, WSListener, WSTransport

from kaizen.ext.core import DecisionCore

class CoreListener(WSListener):
    core: DecisionCore
    frames: int
    fragments: int
    last_flags: int
    closed_by_peer: bool
    def __init__(self, core: DecisionCore) -> None: ...
    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None: ...
