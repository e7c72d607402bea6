"""The CIDR collections API of the control plane: CreateCidrCollection, ChangeCidrCollection,
ListCidrBlocks, ListCidrCollections, ListCidrLocations, DeleteCidrCollection.

Trio shell (called by `authd.control.app.ControlAPI._route`): it moves bytes and makes store
calls through the API's one worker thread (`app.call`); the documents and their rules are
in `authd.model.cidr`. Collections are resources of kind `cidrcollection`, written with
`journal=True`, so every serving index (this process's and replica processes') learns the
blocks through the journal, as it learns record sets.
"""

from __future__ import annotations

import re
import uuid
from functools import partial
from typing import Any

from authd.control import api_routes
from authd.control import r53xml as X
from authd.model import cidr as C
from authd.store.contract import NoSuchResource, ResourceConflict

PREFIX = "/2013-04-01/cidrcollection"
_ONE = re.compile(PREFIX + r"/([^/]+)")
_BLOCKS = re.compile(PREFIX + r"/([^/]+)/cidrblocks")

Response = tuple[int, bytes, list[tuple[bytes, bytes]]]


api_routes.declare("CreateCidrCollection", "ChangeCidrCollection", "ListCidrBlocks",
                   "ListCidrCollections", "ListCidrLocations", "DeleteCidrCollection")


def _error(code: str, message: str) -> Exception:
    from authd.control.app import HttpError  # the API's error type (control imports this module)

    return HttpError(code, [message])


def _missing(cid: str) -> Exception:
    return _error("NoSuchCidrCollectionException", f"The CIDR collection with ID {cid} does not exist.")


async def route(app: Any, method: str, path: str, query: dict[str, str], body: bytes) -> Response | None:
    """The response to a CIDR collections request, or None if `path` is not one of them."""
    try:
        if path == PREFIX:
            if method == "POST":
                return await create(app, body)
            if method == "GET":
                return await list_collections(app, query)
        elif m := _BLOCKS.fullmatch(path):
            if method == "GET":
                return await list_blocks(app, m.group(1), query)
        elif m := _ONE.fullmatch(path):
            if method == "POST":
                return await change(app, m.group(1), body)
            if method == "GET":
                return await list_locations(app, m.group(1), query)
            if method == "DELETE":
                return await delete(app, m.group(1))
    except C.CidrError as exc:
        raise _error(exc.code, exc.message) from exc
    return None


async def _find(app: Any, cid: str) -> Any:
    C.check_id(cid)
    res = await app.call(app.store.get_resource, C.KIND, cid)
    if res is None:
        raise _missing(cid)
    return res


async def create(app: Any, body: bytes) -> Response:
    name, ref = C.parse_create(body)
    doc = C.new_collection(name, ref)
    for res in await app.call(app.store.list_resources, C.KIND):
        if res.doc.get("Name") == name:
            if res.doc.get("CallerReference") != ref:
                raise _error("CidrCollectionAlreadyExistsException",
                             f"A CIDR collection with the name {name} already exists.")
            found = res  # the same request again: idempotent by CallerReference
            break
    else:
        cid = str(uuid.uuid4())
        found = await app.call(partial(app.store.put_resource, C.KIND, cid, doc,
                                       expect_version=0, journal=True))
    inner = C.collection_xml("Collection", found.id, found.doc, found.version)
    location = f"{PREFIX}/{found.id}".encode()
    return 201, X.document("CreateCidrCollectionResponse", inner), [(b"location", location)]


async def change(app: Any, cid: str, body: bytes) -> Response:
    version, changes = C.parse_change(body)
    res = await _find(app, cid)
    doc = C.apply_changes(res.doc, changes)
    expect = version if version is not None else res.version
    try:
        await app.call(partial(app.store.put_resource, C.KIND, cid, doc,
                               expect_version=expect, journal=True))
    except ResourceConflict as exc:
        raise _error("CidrCollectionVersionMismatchException",
                     f"The CIDR collection version {version} does not match the current version "
                     f"{res.version}.") from exc
    except NoSuchResource as exc:
        raise _missing(cid) from exc
    return 200, X.document("ChangeCidrCollectionResponse", X.element("Id", f"{cid}-{expect + 1}")), []


async def delete(app: Any, cid: str) -> Response:
    res = await _find(app, cid)
    if res.doc.get("Locations"):
        raise _error("CidrCollectionInUseException",
                     f"The CIDR collection {cid} is in use, and isn't empty.")
    try:
        await app.call(partial(app.store.delete_resource, C.KIND, cid,
                               expect_version=res.version, journal=True))
    except (NoSuchResource, ResourceConflict) as exc:
        raise _missing(cid) from exc
    return 200, X.document("DeleteCidrCollectionResponse", ""), []


async def list_collections(app: Any, query: dict[str, str]) -> Response:
    items = await app.call(app.store.list_resources, C.KIND)
    chunk, token = C.page(items, query)
    inner = (X.element("NextToken", token) if token else "") + "<CidrCollections>" + "".join(
        C.collection_xml("member", r.id, r.doc, r.version) for r in chunk) + "</CidrCollections>"
    return 200, X.document("ListCidrCollectionsResponse", inner), []


async def list_locations(app: Any, cid: str, query: dict[str, str]) -> Response:
    res = await _find(app, cid)
    chunk, token = C.page(sorted(res.doc.get("Locations") or {}), query)
    inner = (X.element("NextToken", token) if token else "") + "<CidrLocations>" + "".join(
        "<member>" + X.element("LocationName", loc) + "</member>" for loc in chunk) + "</CidrLocations>"
    return 200, X.document("ListCidrLocationsResponse", inner), []


async def list_blocks(app: Any, cid: str, query: dict[str, str]) -> Response:
    res = await _find(app, cid)
    locations = res.doc.get("Locations") or {}
    wanted = query.get("location")
    if wanted is not None and wanted not in locations:
        raise _error("NoSuchCidrLocationException",
                     f"The CIDR location {wanted} does not exist in collection {cid}.")
    blocks = [(b, loc) for loc, bs in sorted(locations.items()) if wanted in (None, loc) for b in bs]
    chunk, token = C.page(blocks, query)
    inner = (X.element("NextToken", token) if token else "") + "<CidrBlocks>" + "".join(
        "<member>" + X.element("CidrBlock", b) + X.element("LocationName", loc) + "</member>"
        for b, loc in chunk) + "</CidrBlocks>"
    return 200, X.document("ListCidrBlocksResponse", inner), []
