"""X-Twilio-Signature: how Twilio signs the webhooks it sends, and how to check one.

The signed string is the full URL Twilio requested (scheme, host, port if it used one,
path and query string), followed by every POST parameter as name then value, names in
sorted order, a repeated name's values sorted and deduplicated. The signature is the
base64 HMAC-SHA1 of that string keyed by the account's auth token. A GET webhook
carries its parameters in the URL's query string and signs no body parameters.

Twilio is inconsistent about the port in the URL it signs (``https://host/`` versus
``https://host:443/``), so a validator accepts the URL as given and also with the
port toggled: the scheme's default port added when there is none, any port removed
when there is one. That is what the official helper libraries do, and the official
test vectors (``tests/data/signature-vectors.json``) include both forms.

Pure functions, no I/O: the simulator signs with this module and the daemon's
callback endpoint validates with it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit, urlunsplit

Params = Mapping[str, str | Sequence[str]]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _values(value: str | Sequence[str]) -> Sequence[str]:
    # A str is itself a Sequence[str]; it is one value, not a list of characters.
    return (value,) if isinstance(value, str) else value


def compute_signature(url: str, params: Params, auth_token: str) -> str:
    """The X-Twilio-Signature value Twilio sends for ``url`` with form ``params``."""
    parts = [url]
    for name in sorted(params):
        for value in sorted(set(_values(params[name]))):
            parts.append(name)
            parts.append(value)
    digest = hmac.new(auth_token.encode(), "".join(parts).encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def _port_toggled(url: str) -> str:
    """``url`` with the scheme's default port added if it has none, else without its port."""
    split = urlsplit(url)
    try:
        port = split.port
    except ValueError:  # not a number: nothing sensible to toggle
        return url
    host_and_port = split.netloc.rpartition("@")
    userinfo = host_and_port[0] + host_and_port[1]
    hostport = host_and_port[2]
    if port is not None:
        host = hostport[: hostport.rindex(":")]
    else:
        default = _DEFAULT_PORTS.get(split.scheme)
        if default is None:
            return url
        host = f"{hostport}:{default}"
    return urlunsplit(split._replace(netloc=userinfo + host))


def validate_signature(url: str, params: Params, signature: str, auth_token: str) -> bool:
    """True if ``signature`` is Twilio's for ``url`` (as given or with the port toggled)."""
    given = signature.encode()
    return any(
        hmac.compare_digest(compute_signature(candidate, params, auth_token).encode(), given)
        for candidate in (url, _port_toggled(url))
    )
