"""Fan-out hub: N users over WebSocket, one upstream per market (see docs/hub-protocol.md)."""

from crossbook.hub.auth import FileUserStore, InMemoryUserStore, PgUserStore, User, UserStore
from crossbook.hub.demand import DemandTracker, MarketDataUpstream, Upstream
from crossbook.hub.feed import BookFeed, ExecuteStatePublisher, HubExecuteState, TopicPublisher
from crossbook.hub.protocol import HubError, ProtocolError
from crossbook.hub.proxies import Budget, NoProxyAvailable, ProxyBudgetExhausted, ProxyPool
from crossbook.hub.server import Hub, HubLimits
from crossbook.hub.tunnels import InMemoryCredentials, PolymarketApiCreds, TunnelManager, TunnelSettings

__all__ = [
    "BookFeed",
    "Budget",
    "DemandTracker",
    "ExecuteStatePublisher",
    "FileUserStore",
    "Hub",
    "HubError",
    "HubExecuteState",
    "HubLimits",
    "InMemoryCredentials",
    "InMemoryUserStore",
    "MarketDataUpstream",
    "NoProxyAvailable",
    "PgUserStore",
    "PolymarketApiCreds",
    "ProtocolError",
    "ProxyBudgetExhausted",
    "ProxyPool",
    "TopicPublisher",
    "TunnelManager",
    "TunnelSettings",
    "Upstream",
    "User",
    "UserStore",
]
