"""The TLS state as a Secret's `data`, and back.

`tls.crt`/`tls.key` serve; `ca.crt` is the trust bundle (what the webhook
configuration's caBundle carries, and what a webhook outside the cluster in URL
mode needs). The CA keys live beside them: whoever reads this Secret holds the
serving key already, and the CA is trusted by this one webhook configuration only.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

from runner_sizer.certs.authority import Pair, parse, split_pem
from runner_sizer.certs.plan import TlsState

SERVING = ("tls.crt", "tls.key")
SIGNER = ("ca-signer.crt", "ca-signer.key")
NEXT_SIGNER = ("ca-next.crt", "ca-next.key")
BUNDLE = "ca.crt"


def _bytes(data: Mapping[str, str], key: str) -> bytes:
    try:
        return base64.b64decode(data.get(key) or "", validate=True)
    except (binascii.Error, ValueError):
        return b""


def pair_from(data: Mapping[str, str], keys: tuple[str, str]) -> Pair | None:
    """The pair stored under `keys`, if both are there and belong together."""
    cert, key = (_bytes(data, k) for k in keys)
    return parse(Pair(cert, key)) if cert and key else None


def decode(data: Mapping[str, str] | None) -> TlsState:
    data = data or {}
    return TlsState(
        signer=pair_from(data, SIGNER),
        next_signer=pair_from(data, NEXT_SIGNER),
        serving=pair_from(data, SERVING),
        trusted=split_pem(_bytes(data, BUNDLE)),
    )


def encode(state: TlsState) -> dict[str, str]:
    raw: dict[str, bytes] = {BUNDLE: state.bundle}
    pairs = ((SERVING, state.serving), (SIGNER, state.signer), (NEXT_SIGNER, state.next_signer))
    for (cert_key, key_key), pair in pairs:
        if pair is not None:
            raw[cert_key], raw[key_key] = pair.cert_pem, pair.key_pem
    return {key: base64.b64encode(value).decode() for key, value in raw.items()}
