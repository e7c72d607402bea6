"""GetDNSSEC and the DNSSEC mutations: authd does not sign zones, and says so.

Thin handlers. GetDNSSEC answers what Route 53 answers for a zone that was never signed:
Status/ServeSignature NOT_SIGNING and no key-signing keys. Each mutation is refused with
the Route 53 error that is literally true of such a zone, and a message saying why:

- EnableHostedZoneDNSSEC: KeySigningKeyWithActiveStatusNotFound (no KSK can exist here);
- DisableHostedZoneDNSSEC: DNSSECNotFound (the zone has no DNSSEC resources);
- CreateKeySigningKey: InvalidKMSArn (there is no KMS key authd could sign with);
- Activate/Deactivate/DeleteKeySigningKey: NoSuchKeySigningKey.

GetDNSSEC, Enable, Disable and CreateKeySigningKey check the hosted zone first
(NoSuchHostedZone, which they declare); nothing changes state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from authd.control import r53xml as X
from authd.control.api_base import ApiError, Response, read_request, require

if TYPE_CHECKING:
    from authd.control.app import ControlAPI

NOT_SIGNING = "authd does not sign zones (DNSSEC signing is not implemented); answers are served unsigned"
KSK_GRAMMAR = {
    "CallerReference": None, "HostedZoneId": None, "KeyManagementServiceArn": None, "Name": None,
    "Status": None,
}


async def get_dnssec(app: ControlAPI, zone_id: str) -> Response:
    await app.call(app.store.find_zone, zone_id)
    inner = (
        "<Status>" + X.element("ServeSignature", "NOT_SIGNING") + X.element("StatusMessage", NOT_SIGNING)
        + "</Status><KeySigningKeys></KeySigningKeys>"
    )
    return 200, X.document("GetDNSSECResponse", inner), []


async def enable(app: ControlAPI, zone_id: str) -> Response:
    await app.call(app.store.find_zone, zone_id)
    raise ApiError("KeySigningKeyWithActiveStatusNotFound",
                   f"A key-signing key (KSK) with ACTIVE status wasn't found: {NOT_SIGNING}")


async def disable(app: ControlAPI, zone_id: str) -> Response:
    await app.call(app.store.find_zone, zone_id)
    raise ApiError("DNSSECNotFound", f"The hosted zone doesn't have any DNSSEC resources: {NOT_SIGNING}")


async def create_ksk(app: ControlAPI, body: bytes) -> Response:
    doc = read_request(body, "CreateKeySigningKeyRequest", KSK_GRAMMAR)
    require(doc, list(KSK_GRAMMAR), "CreateKeySigningKeyRequest")
    await app.call(app.store.find_zone, doc["HostedZoneId"])
    raise ApiError("InvalidKMSArn",
                   f"The KeyManagementServiceArn {doc['KeyManagementServiceArn']} can't be used "
                   f"for DNSSEC signing: {NOT_SIGNING}")


async def no_such_ksk(app: ControlAPI, zone_id: str, name: str) -> Response:
    # these three declare no NoSuchHostedZone: an unknown zone has no such key either
    raise ApiError("NoSuchKeySigningKey",
                   f"The specified key-signing key (KSK) doesn't exist: {name} in {zone_id}; {NOT_SIGNING}")
