"""Valkey URLs read the way the Rust side reads them (ops/src/redis_url.rs,
the WHATWG grammar redis-rs connects by): a fragment is cut before the user
information is looked for, a password is hidden in anything shown, and a
text that is not a Valkey URL is never shown at all. Both sides are tested
against ops/testdata/redis-urls.json, so they cannot drift apart."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

# Scheme -> whether it is TLS.
SCHEMES = {"redis": False, "rediss": True, "valkey": False, "valkeys": True}
HIDDEN = "***"
NOT_A_URL = "<not a Valkey URL>"


@dataclass(frozen=True)
class RedisUrl:
    scheme: str
    userinfo: str
    hostport: str
    host: str
    port: int | None
    tail: str  # path, ?query and #fragment as written
    fragment: str

    @property
    def tls(self) -> bool:
        return SCHEMES[self.scheme]

    @property
    def address(self) -> str:
        """host[:port] as written, the host in lower case."""
        return self.host if self.port is None else f"{self.host}:{self.port}"

    @property
    def bare_host(self) -> str:
        """The host without an IPv6 address's brackets."""
        return self.host.strip("[]")

    def redacted(self) -> str:
        user, colon, password = self.userinfo.partition(":")
        if colon and password:
            userinfo = f"{user}:{HIDDEN}@"
        elif self.userinfo:
            userinfo = f"{HIDDEN}@"
        else:
            userinfo = ""
        return f"{self.scheme}://{userinfo}{self.hostport}{self.tail}"


def parse(text: str) -> RedisUrl | None:
    """The Valkey URL `text` is, or None."""
    text = text.strip()
    try:
        parts = urlsplit(text)
    except ValueError:
        return None
    if parts.scheme not in SCHEMES or not text[len(parts.scheme) + 1 :].startswith("//"):
        return None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            return None
        host, rest = hostport[: end + 1], hostport[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:]
    else:
        host, _, port_text = hostport.partition(":")
    if not host:
        return None
    port = None
    if port_text:
        if not port_text.isdigit() or int(port_text) > 65535:
            return None
        port = int(port_text)
    tail = parts.path + (f"?{parts.query}" if parts.query else "") + (f"#{parts.fragment}" if parts.fragment else "")
    return RedisUrl(parts.scheme, userinfo, hostport, host.lower(), port, tail, parts.fragment)


def redact(text: str) -> str:
    """`text` for a message: a Valkey URL without its secrets, else a placeholder."""
    url = parse(text)
    return url.redacted() if url else NOT_A_URL
