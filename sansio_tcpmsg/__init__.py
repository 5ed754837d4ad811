"""sansio-tcpmsg: the NestJS TCP microservice transport as a Sans-IO protocol core.

The core never touches a socket, a thread or a clock. Bindings (``tcpmsg_anyio``,
``tcpmsg_gevent``, ``tcpmsg_threads``) move the bytes; everything the protocol decides
is decided here, once.
"""

from .balancing import Balancer, EndpointInfo, EndpointState, Strategy
from .client import ClientConnection, DispatchHook
from .codec import Codec, JsonCodec, PacketCodec
from .connection import Connection
from .errors import (
    ConnectionClosedError,
    ForeignProtocolError,
    FrameError,
    FrameTooLarge,
    IncompleteFrameTimeout,
    LocalProtocolError,
    NoHandlerError,
    PatternError,
    ProxyHeaderError,
    RemoteError,
    RemoteProtocolError,
    RequestTimeout,
    RpcError,
    SendBufferExceeded,
    TcpMsgError,
    UnserializableError,
)
from .events import (
    ConnectionClosed,
    Event,
    EventReceived,
    PacketDropped,
    ProtocolErrorOccurred,
    RemoteErrorReceived,
    RequestReceived,
    RequestTimedOut,
    ResponseReceived,
    StreamEnded,
    StreamItemReceived,
)
from .framing import FrameDecoder, encode_frame, utf16_length
from .keepalive import Keepalive
from .limits import Limits
from .patterns import normalize_pattern
from .proxy import ProxyHeader, ProxyHeaderReader
from .routing import Context, Handler, Middleware, Router
from .server import ServerConnection
from .status import ConnectionStatus

__version__ = "0.1.0"

__all__ = [
    "Balancer",
    "ClientConnection",
    "Codec",
    "Connection",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionStatus",
    "Context",
    "DispatchHook",
    "EndpointInfo",
    "EndpointState",
    "Event",
    "EventReceived",
    "ForeignProtocolError",
    "FrameDecoder",
    "FrameError",
    "FrameTooLarge",
    "Handler",
    "IncompleteFrameTimeout",
    "JsonCodec",
    "Keepalive",
    "Limits",
    "LocalProtocolError",
    "Middleware",
    "NoHandlerError",
    "PacketCodec",
    "PacketDropped",
    "PatternError",
    "ProtocolErrorOccurred",
    "ProxyHeader",
    "ProxyHeaderError",
    "ProxyHeaderReader",
    "RemoteError",
    "RemoteErrorReceived",
    "RemoteProtocolError",
    "RequestReceived",
    "RequestTimedOut",
    "RequestTimeout",
    "ResponseReceived",
    "Router",
    "RpcError",
    "SendBufferExceeded",
    "ServerConnection",
    "StreamEnded",
    "StreamItemReceived",
    "Strategy",
    "TcpMsgError",
    "UnserializableError",
    "__version__",
    "encode_frame",
    "normalize_pattern",
    "utf16_length",
]
