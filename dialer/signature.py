"""How Twilio signs the webhooks it sends, and how to check a signature.

What Twilio documents:

- X-Twilio-Signature is the base64 HMAC-SHA1, keyed by the account's auth token, of
  the full URL Twilio requested (scheme, host, port if it used one, path and query
  string) followed by every POST parameter as name then value, names in sorted order
  (a repeated name's values sorted and deduplicated, as the official libraries do).
  A GET webhook carries its parameters in the query string and signs no body
  parameters. The seeds show only the validating call,
  ``twilio.validateRequest(authToken, signature, url, params)``
  (``/work/shared/seeds/002_a75e34d4301f8205.txt``, section "Validação de Webhooks").
- Webhooks Rules (Twilio's "Sign webhooks with shared keys" page, public beta; the
  twilio-python and twilio-node validators): when a rule matches the URL, Twilio signs
  with the rule's SharedKey secret instead of the auth token, with the algorithm it
  names, and announces both in ``X-Twilio-Webhooks-Signature-Settings:
  key=<SharedKey id>,algorithm=HMAC_SHA256``. Only the hash and the key change; the
  signed string is the same. A header without ``algorithm=`` means HMAC_SHA1, as in
  the official libraries.
- Twilio is inconsistent about the port in the URL it signs (``https://host/`` versus
  ``https://host:443/``), so a validator accepts the URL as given and with the port
  toggled: the scheme's default port added when there is none, any port removed when
  there is one. The official helper libraries do this, and the official test vectors
  (``tests/data/signature-vectors.json``) include both forms.

What Twilio does not document: whether the ``#fragment`` of connection overrides
(``#rc=3&rp=all``) at the end of a StatusCallback URL is part of the URL it signs.
None of the seeds (``/work/shared/seeds/000``-``004``) mentions connection overrides
or the fragment at all. The official validators sign whatever string they are given,
so a peer that hands them the StatusCallback exactly as written signs the fragment
too. ``validate_signature`` therefore takes several candidate URLs: the caller passes
the URL with and without the one fragment it appended itself, never an arbitrary one.

Pure functions, no I/O: the simulator signs with this module and the daemon's
callback endpoint validates with it.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

Params = Mapping[str, str | Sequence[str]]

HMAC_SHA1 = "HMAC_SHA1"
HMAC_SHA256 = "HMAC_SHA256"
# Twilio's algorithm names -> hashlib's.
ALGORITHMS: Mapping[str, str] = {HMAC_SHA1: "sha1", HMAC_SHA256: "sha256"}
SIGNATURE_HEADER = "X-Twilio-Signature"
SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _values(value: str | Sequence[str]) -> Sequence[str]:
    # A str is itself a Sequence[str]; it is one value, not a list of characters.
    return (value,) if isinstance(value, str) else value


def signed_params(params: Params) -> str:
    """What follows the URL in the signed string: names and values, no separators;
    names sorted, then each name's distinct values sorted."""
    parts: list[str] = []
    for name in sorted(params):
        value = params[name]
        if isinstance(value, str):
            parts += (name, value)
        elif len(value) == 1:
            parts += (name, value[0])
        else:
            for one in sorted(set(value)):
                parts += (name, one)
    return "".join(parts)


def _digest(key: str, algorithm: str, text: str) -> bytes:
    try:
        digestmod = ALGORITHMS[algorithm]
    except KeyError:
        raise ValueError(f"unsupported signature algorithm {algorithm!r}") from None
    return hmac.new(key.encode(), text.encode(), digestmod).digest()


def compute_signature(
    url: str, params: Params, key: str, algorithm: str = HMAC_SHA1
) -> str:
    """The X-Twilio-Signature value Twilio sends for ``url`` with form ``params``,
    keyed by the auth token (HMAC_SHA1) or a Webhooks Rules shared key."""
    digest = _digest(key, algorithm, url + signed_params(params))
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


def validate_signature(
    urls: str | Sequence[str], params: Params, signature: str, key: str,
    algorithm: str = HMAC_SHA1,
) -> bool:
    """True if ``signature`` is Twilio's for one of ``urls`` (each as given or with the
    port toggled) and ``params``. An unsupported algorithm validates nothing."""
    if algorithm not in ALGORITHMS:
        return False
    given = signature.encode()
    body = signed_params(params)
    candidates = (urls,) if isinstance(urls, str) else urls
    return any(
        hmac.compare_digest(base64.b64encode(_digest(key, algorithm, url + body)), given)
        for candidate in candidates
        for url in (candidate, _port_toggled(candidate))
    )


@dataclass(frozen=True, slots=True)
class SignatureSettings:
    """What X-Twilio-Webhooks-Signature-Settings announces."""

    key_id: str | None
    algorithm: str


def parse_signature_settings(header: str | None) -> SignatureSettings | None:
    """The announced key and algorithm; None when the header is absent or blank (the
    request is then signed with the auth token). The algorithm is returned as sent,
    so an unknown one can be refused by name."""
    if header is None or not header.strip():
        return None
    fields: dict[str, str] = {}
    for part in header.split(","):
        name, separator, value = part.partition("=")
        if separator:
            fields.setdefault(name.strip().lower(), value.strip())
    return SignatureSettings(
        key_id=fields.get("key") or None, algorithm=fields.get("algorithm") or HMAC_SHA1
    )
