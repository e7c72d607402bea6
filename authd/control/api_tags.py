"""Route 53 tags: ChangeTagsForResource, ListTagsForResource, ListTagsForResources.

Pure XML shaping and rules (top) and thin handlers (bottom) that the control API's route
table calls; each handler does all its store work in one `app.call`, so it runs as one step
on the store's single worker thread.

Tags live in the shared resource store: kind "tags", id "<resourcetype>/<resourceid>",
doc {"owner": ..., "tags": {key: value}}. `owner` is the tagged resource's CallerReference,
so a hosted zone deleted and created again under the same (name-derived) id starts with no
tags instead of inheriting the old zone's.

Route 53 rules (API reference, ChangeTagsForResource / ListTagsForResources): resource types
`hostedzone` and `healthcheck`; at most 10 tags added and 10 keys removed per request, and
"a maximum of 10 tags" on a health check or hosted zone; keys up to 128 characters, values
up to 256; at most 10 ResourceIds per ListTagsForResources. An unknown resource is
NoSuchHostedZone / NoSuchHealthCheck.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from authd.control import r53xml as X
from authd.control.api_base import ApiError, Response, invalid, read_request
from authd.model.changes import clean_zone_id
from authd.store.contract import NoSuchResource

if TYPE_CHECKING:
    from authd.control.app import ControlAPI

KIND = "tags"
RESOURCE_TYPES = ("hostedzone", "healthcheck")
MAX_TAGS_PER_RESOURCE = 10
MAX_PER_REQUEST = 10
MAX_KEY = 128
MAX_VALUE = 256

_TAG = {"Key": None, "Value": None}
CHANGE_GRAMMAR = {
    "AddTags": ("list", "Tag", _TAG, MAX_PER_REQUEST),
    "RemoveTagKeys": ("list", "Key", None, MAX_PER_REQUEST),
}
LIST_GRAMMAR = {"ResourceIds": ("list", "ResourceId", None, MAX_PER_REQUEST)}


def tags_id(resource_type: str, resource_id: str) -> str:
    return f"{resource_type}/{resource_id}"


def check_type(resource_type: str) -> None:
    if resource_type not in RESOURCE_TYPES:
        raise invalid(
            f"1 validation error detected: Value '{resource_type}' at 'resourceType' failed to "
            "satisfy constraint: Member must satisfy enum value set: [healthcheck, hostedzone]"
        )


def parse_change(body: bytes) -> tuple[dict[str, str], list[str]]:
    """The tags to add (in order, later keys win) and the keys to remove."""
    doc = read_request(body, "ChangeTagsForResourceRequest", CHANGE_GRAMMAR)
    add: dict[str, str] = {}
    for tag in doc.get("AddTags", []):
        key, value = tag.get("Key", ""), tag.get("Value", "")
        if not key:
            raise invalid("Invalid XML ; every Tag in AddTags needs a Key")
        if len(key) > MAX_KEY:
            raise invalid(f"Tag key {key[:20]!r}... is longer than {MAX_KEY} characters")
        if len(value) > MAX_VALUE:
            raise invalid(f"The value of tag {key!r} is longer than {MAX_VALUE} characters")
        add[key] = value
    remove = [k for k in doc.get("RemoveTagKeys", []) if k]
    if not add and not remove:
        raise invalid("Invalid XML ; the request must contain AddTags or RemoveTagKeys")
    return add, remove


def changed_tags(current: Mapping[str, str], add: Mapping[str, str], remove: list[str]) -> dict[str, str]:
    """The tag set after a change: keys removed first, then the added ones set (added keys
    that exist are edited, as Route 53 documents for AddTags)."""
    out = {k: v for k, v in current.items() if k not in remove}
    out.update(add)
    if len(out) > MAX_TAGS_PER_RESOURCE:
        raise invalid(
            f"The resource would have {len(out)} tags; Route 53 allows a maximum of "
            f"{MAX_TAGS_PER_RESOURCE} tags on a health check or a hosted zone"
        )
    return out


def tag_set_xml(resource_type: str, resource_id: str, tags: Mapping[str, str]) -> str:
    inner = "".join(f"<Tag>{X.element('Key', k)}{X.element('Value', v)}</Tag>" for k, v in tags.items())
    return (
        "<ResourceTagSet>" + X.element("ResourceType", resource_type) + X.element("ResourceId", resource_id)
        + "<Tags>" + inner + "</Tags></ResourceTagSet>"
    )


# --- store steps (run on the store's worker thread) ------------------------------------------


def owner_of(store: Any, resource_type: str, resource_id: str) -> str:
    """The resource's CallerReference; raises its Route 53 not-found error."""
    if resource_type == "hostedzone":
        return store.find_zone(resource_id).caller_reference
    check = store.get_resource("healthcheck", resource_id)
    if check is None:
        raise ApiError("NoSuchHealthCheck", f"No health check exists with the specified ID {resource_id}")
    return str(check.doc.get("CallerReference", check.doc.get("caller_reference", "")))


def read_tags(store: Any, resource_type: str, resource_id: str) -> dict[str, str]:
    owner = owner_of(store, resource_type, resource_id)
    res = store.get_resource(KIND, tags_id(resource_type, resource_id))
    if res is None or res.doc.get("owner") != owner:
        return {}
    return dict(res.doc.get("tags", {}))


def write_tags(store: Any, resource_type: str, resource_id: str, add: Mapping[str, str], remove: list[str]) -> dict[str, str]:
    owner = owner_of(store, resource_type, resource_id)
    key = tags_id(resource_type, resource_id)
    res = store.get_resource(KIND, key)
    current = res.doc.get("tags", {}) if res is not None and res.doc.get("owner") == owner else {}
    tags = changed_tags(current, add, remove)
    store.put_resource(KIND, key, {"owner": owner, "tags": tags})
    return tags


def forget_tags(store: Any, resource_type: str, resource_id: str) -> None:
    """Drop a deleted resource's tags (optional tidiness; `owner` already hides them)."""
    with contextlib.suppress(NoSuchResource):
        store.delete_resource(KIND, tags_id(resource_type, resource_id))


# --- handlers ---------------------------------------------------------------------------------


def _resource_id(resource_type: str, raw: str) -> str:
    return clean_zone_id(raw) if resource_type == "hostedzone" else raw


async def change_tags(app: ControlAPI, resource_type: str, resource_id: str, body: bytes) -> Response:
    check_type(resource_type)
    rid = _resource_id(resource_type, resource_id)
    add, remove = parse_change(body)
    await app.call(write_tags, app.store, resource_type, rid, add, remove)
    return 200, X.document("ChangeTagsForResourceResponse", ""), []


async def list_tags(app: ControlAPI, resource_type: str, resource_id: str) -> Response:
    check_type(resource_type)
    rid = _resource_id(resource_type, resource_id)
    tags = await app.call(read_tags, app.store, resource_type, rid)
    return 200, X.document("ListTagsForResourceResponse", tag_set_xml(resource_type, rid, tags)), []


async def list_tags_many(app: ControlAPI, resource_type: str, body: bytes) -> Response:
    check_type(resource_type)
    doc = read_request(body, "ListTagsForResourcesRequest", LIST_GRAMMAR)
    ids = [_resource_id(resource_type, r) for r in doc.get("ResourceIds", []) if r]
    if not ids:
        raise invalid("Invalid XML ; ResourceIds must hold at least one ResourceId")

    def every(store: Any) -> list[tuple[str, dict[str, str]]]:
        return [(rid, read_tags(store, resource_type, rid)) for rid in ids]

    sets = await app.call(every, app.store)
    inner = "<ResourceTagSets>" + "".join(tag_set_xml(resource_type, rid, t) for rid, t in sets) + "</ResourceTagSets>"
    return 200, X.document("ListTagsForResourcesResponse", inner), []
