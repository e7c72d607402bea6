"""AWS Signature Version 4 verification for the control API (header form).

Pure core: no I/O and no clock (`now` is a parameter). The control API hands over the
request as received (method, raw path, raw query, headers, body); `verify` rebuilds the
canonical request exactly as botocore signs it (AWS General Reference, "Create a canonical
request for Signature Version 4") and compares signatures in constant time. It returns None
when the request is authentic, else an `AuthFailure` with Route 53-style code and message.

Credentials map access key ids to secrets. On loopback the default is `test`/`test` (what
LocalStack and moto accept), so boto3 and the AWS CLI work out of the box.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote

ALGORITHM = "AWS4-HMAC-SHA256"
DEFAULT_CREDENTIALS = {"test": "test"}
MAX_SKEW_SECONDS = 15 * 60  # AWS rejects requests whose X-Amz-Date is further off than this


@dataclass(frozen=True, slots=True)
class AuthFailure:
    code: str
    message: str


MISSING = AuthFailure("MissingAuthenticationToken", "Missing Authentication Token")
BAD_SIGNATURE = AuthFailure(
    "SignatureDoesNotMatch",
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service "
    "documentation for details.",
)


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    k = _hmac(("AWS4" + secret).encode(), date)
    k = _hmac(k, region)
    k = _hmac(k, service)
    return _hmac(k, "aws4_request")


def canonical_path(raw_path: str) -> str:
    """botocore: remove dot segments and empty segments, then percent-encode the (already
    encoded) path once more, keeping '/' and '~' (non-S3 services double-encode)."""
    segments: list[str] = []
    for seg in raw_path.split("/"):
        if not seg or seg == ".":
            continue
        if seg == "..":
            if segments:
                segments.pop()
        else:
            segments.append(seg)
    path = "/" + "/".join(segments)
    if raw_path.endswith("/") and segments:
        path += "/"
    return quote(path, safe="/~")


def canonical_query(raw_query: str) -> str:
    pairs = []
    for part in raw_query.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        pairs.append(
            (quote(unquote(key.replace("+", " ")), safe="-_.~"),
             quote(unquote(value.replace("+", " ")), safe="-_.~"))
        )
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def _parse_authorization(value: str) -> dict[str, str] | None:
    if not value.startswith(ALGORITHM + " "):
        return None
    fields: dict[str, str] = {}
    for item in value[len(ALGORITHM) + 1:].split(","):
        key, sep, val = item.strip().partition("=")
        if not sep:
            return None
        fields[key] = val
    if not {"Credential", "SignedHeaders", "Signature"} <= fields.keys():
        return None
    return fields


def verify(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    credentials: Mapping[str, str],
    now: float,
) -> AuthFailure | None:
    """None if the request carries a valid SigV4 signature by a key in `credentials`."""
    by_name: dict[str, list[str]] = {}
    for name, value in headers:
        by_name.setdefault(name.lower(), []).append(value)
    auth = by_name.get("authorization", [""])[0]
    if not auth:
        return MISSING
    fields = _parse_authorization(auth)
    if fields is None:
        return AuthFailure("IncompleteSignature", "Authorization header requires 'Credential', "
                           "'Signature' and 'SignedHeaders' parameters (AWS4-HMAC-SHA256).")
    scope = fields["Credential"].split("/")
    if len(scope) != 5 or scope[4] != "aws4_request":
        return AuthFailure("IncompleteSignature", f"Credential is malformed: {fields['Credential']}")
    access_key, date, region, service, _ = scope
    secret = credentials.get(access_key)
    if secret is None:
        return AuthFailure("InvalidClientTokenId", "The security token included in the request is invalid.")
    amz_date = by_name.get("x-amz-date", [""])[0]
    try:
        when = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return AuthFailure("IncompleteSignature", "Missing or malformed X-Amz-Date header")
    if abs(when.timestamp() - now) > MAX_SKEW_SECONDS or not amz_date.startswith(date):
        return AuthFailure("SignatureDoesNotMatch", "Signature expired: " + amz_date + " is not "
                           "within 15 minutes of the server time, or does not match the credential date")
    signed = fields["SignedHeaders"].split(";")
    if "host" not in signed:
        return AuthFailure("SignatureDoesNotMatch", "The host header must be signed")
    canon_headers = "".join(
        f"{h}:{','.join(' '.join(v.split()) for v in by_name.get(h, []))}\n" for h in signed
    )
    # The payload hash is always the hash of the body received, never the client's word for
    # it: `UNSIGNED-PAYLOAD` exists only for S3 (AWS General Reference, "Create a canonical
    # request": HashedPayload is the SHA-256 of the request body), so a signature over any
    # other value cannot cover this body. A claimed hash that differs is refused outright.
    payload = hashlib.sha256(body).hexdigest()
    claimed = by_name.get("x-amz-content-sha256", [payload])[0]
    if claimed != payload:
        return BAD_SIGNATURE
    canonical = "\n".join(
        [method.upper(), canonical_path(raw_path), canonical_query(raw_query), canon_headers,
         fields["SignedHeaders"], payload]
    )
    to_sign = "\n".join(
        [ALGORITHM, amz_date, "/".join(scope[1:]), hashlib.sha256(canonical.encode()).hexdigest()]
    )
    expected = hmac.new(signing_key(secret, date, region, service), to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, fields["Signature"]):
        return BAD_SIGNATURE
    return None
