"""Fan-out hub: N users over WebSocket, one upstream per market (see docs/hub-protocol.md)."""

from crossbook.hub.auth import FileUserStore, InMemoryUserStore, User, UserStore
from crossbook.hub.demand import DemandTracker, MarketDataUpstream, Upstream
from crossbook.hub.feed import BookFeed, ExecuteStatePublisher, HubExecuteState, TopicPublisher
from crossbook.hub.protocol import HubError, ProtocolError
from crossbook.hub.server import Hub, HubLimits

__all__ = [
    "BookFeed",
    "DemandTracker",
    "ExecuteStatePublisher",
    "FileUserStore",
    "Hub",
    "HubError",
    "HubExecuteState",
    "HubLimits",
    "InMemoryUserStore",
    "MarketDataUpstream",
    "ProtocolError",
    "TopicPublisher",
    "Upstream",
    "User",
    "UserStore",
]
