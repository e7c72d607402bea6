"""Route 53 health checks as data: the configuration, its validation, and stable ids.

Pure core (no trio, socket or time). `parse_config` turns the request's HealthCheckConfig
(the XML's shape, as a dict of strings) into a frozen `HealthCheckConfig`, refusing every
element authd does not implement by name, and every value Route 53 would refuse, with an
InvalidInput message in Route 53's style ("Invalid parameter : ..."). `apply_update` does
the same for UpdateHealthCheck (ResetElements included). The stored document is
`config.to_doc()`; the XML echo lists the members Route 53 returns, defaults filled in as
Route 53 fills them (RequestInterval 30, FailureThreshold 3, Port 80/443), so a client that
compares what it sent with what it reads back (octoDNS does) sees no difference.

Decisions, with the Route 53 behaviour they follow (API reference, HealthCheckConfig and
UpdateHealthCheck; Developer Guide, "Values that you specify when you create or update
health checks"):
- Types HTTP, HTTPS, HTTP_STR_MATCH, HTTPS_STR_MATCH, TCP and CALCULATED. CLOUDWATCH_METRIC
  and RECOVERY_CONTROL, AlarmIdentifier, InsufficientDataHealthStatus, RoutingControlArn,
  Regions (authd probes from one checker, this process), EndpointType and
  HealthCheckSourceId are refused by name: accepting them would silently change nothing.
- MeasureLatency is accepted, stored and returned: in Route 53 it only turns on CloudWatch
  latency graphs, which authd has none of; octoDNS sends it (true) on every check it makes.
- RequestInterval is 10 or 30 and, like MeasureLatency and Type, can't be changed later.
- An endpoint check needs IPAddress or FullyQualifiedDomainName; TCP needs a Port.
- Unlike Route 53, loopback IPAddresses are allowed (authd's prober probes only loopback
  unless the operator says otherwise; see `authd.health.prober`).
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

TYPES = ("HTTP", "HTTPS", "HTTP_STR_MATCH", "HTTPS_STR_MATCH", "TCP", "CALCULATED")
NOT_IMPLEMENTED_TYPES = ("CLOUDWATCH_METRIC", "RECOVERY_CONTROL")
HTTP_TYPES = ("HTTP", "HTTPS", "HTTP_STR_MATCH", "HTTPS_STR_MATCH")
TLS_TYPES = ("HTTPS", "HTTPS_STR_MATCH")
STR_MATCH_TYPES = ("HTTP_STR_MATCH", "HTTPS_STR_MATCH")

# Members authd does not implement: refused by name, never dropped (issue 11 section 4).
NOT_IMPLEMENTED = {
    "AlarmIdentifier": "CloudWatch alarms are not available in authd",
    "InsufficientDataHealthStatus": "CloudWatch alarms are not available in authd",
    "RoutingControlArn": "Application Recovery Controller is not available in authd",
    "Regions": "authd probes from one checker (this process); choosing checker regions is not available",
    "EndpointType": "private endpoints are not available in authd",
    "HealthCheckSourceId": "health check sources are not available in authd",
}
CREATE_MEMBERS = (
    "IPAddress", "Port", "Type", "ResourcePath", "FullyQualifiedDomainName", "SearchString",
    "RequestInterval", "FailureThreshold", "MeasureLatency", "Inverted", "Disabled",
    "HealthThreshold", "ChildHealthChecks", "EnableSNI",
)
# UpdateHealthCheckRequest's members (botocore model): no Type, RequestInterval, MeasureLatency.
UPDATE_MEMBERS = (
    "IPAddress", "Port", "ResourcePath", "FullyQualifiedDomainName", "SearchString",
    "FailureThreshold", "Inverted", "Disabled", "HealthThreshold", "ChildHealthChecks",
    "EnableSNI",
)
RESETTABLE = ("FullyQualifiedDomainName", "Regions", "ResourcePath", "ChildHealthChecks")
MAX_CALLER_REFERENCE = 64
MAX_CHILDREN = 256
DEFAULT_REQUEST_INTERVAL = 30
DEFAULT_FAILURE_THRESHOLD = 3


class HealthCheckInputError(Exception):
    """A request Route 53 refuses. `code` is the Route 53 error code (InvalidInput unless
    said otherwise); `messages` are what the response says."""

    def __init__(self, messages: Sequence[str] | str, code: str = "InvalidInput"):
        self.messages = [messages] if isinstance(messages, str) else list(messages)
        self.code = code
        super().__init__("; ".join(self.messages))


def _invalid(text: str) -> HealthCheckInputError:
    return HealthCheckInputError(f"Invalid parameter : {text}")


@dataclass(frozen=True, slots=True)
class HealthCheckConfig:
    type: str
    ip_address: str | None = None
    port: int | None = None
    resource_path: str | None = None
    fqdn: str | None = None
    search_string: str | None = None
    request_interval: int = DEFAULT_REQUEST_INTERVAL
    failure_threshold: int = DEFAULT_FAILURE_THRESHOLD
    measure_latency: bool = False
    inverted: bool = False
    disabled: bool = False
    health_threshold: int | None = None
    children: tuple[str, ...] = ()
    enable_sni: bool | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # reserved; always empty today

    @property
    def calculated(self) -> bool:
        return self.type == "CALCULATED"

    @property
    def target(self) -> str:
        """`tcp 127.0.0.1:9001`, `https 127.0.0.1:8443/health`: for log lines."""
        proto = "tcp" if self.type == "TCP" else ("https" if self.type in TLS_TYPES else "http")
        if self.calculated:
            return f"calculated {len(self.children)} children, threshold {self.health_threshold or 0}"
        host = self.ip_address or self.fqdn or "?"
        host = f"[{host}]" if ":" in host else host
        path = (self.resource_path or "/") if self.type in HTTP_TYPES else ""
        return f"{proto} {host}:{self.port}{path}"

    def to_doc(self) -> dict[str, Any]:
        """The Route 53 members as JSON: what is stored and what the XML echoes."""
        out: dict[str, Any] = {}
        if self.calculated:
            out["Type"] = self.type
            out["Inverted"] = self.inverted
            out["Disabled"] = self.disabled
            out["HealthThreshold"] = self.health_threshold or 0
            out["ChildHealthChecks"] = list(self.children)
            return out
        if self.ip_address is not None:
            out["IPAddress"] = self.ip_address
        out["Port"] = self.port
        out["Type"] = self.type
        if self.resource_path is not None:
            out["ResourcePath"] = self.resource_path
        if self.fqdn is not None:
            out["FullyQualifiedDomainName"] = self.fqdn
        if self.search_string is not None:
            out["SearchString"] = self.search_string
        out["RequestInterval"] = self.request_interval
        out["FailureThreshold"] = self.failure_threshold
        out["MeasureLatency"] = self.measure_latency
        out["Inverted"] = self.inverted
        out["Disabled"] = self.disabled
        if self.enable_sni is not None:
            out["EnableSNI"] = self.enable_sni
        return out

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> HealthCheckConfig:
        return cls(
            type=doc["Type"],
            ip_address=doc.get("IPAddress"),
            port=doc.get("Port"),
            resource_path=doc.get("ResourcePath"),
            fqdn=doc.get("FullyQualifiedDomainName"),
            search_string=doc.get("SearchString"),
            request_interval=doc.get("RequestInterval", DEFAULT_REQUEST_INTERVAL),
            failure_threshold=doc.get("FailureThreshold", DEFAULT_FAILURE_THRESHOLD),
            measure_latency=doc.get("MeasureLatency", False),
            inverted=doc.get("Inverted", False),
            disabled=doc.get("Disabled", False),
            health_threshold=doc.get("HealthThreshold"),
            children=tuple(doc.get("ChildHealthChecks", ())),
            enable_sni=doc.get("EnableSNI"),
        )


# --- reading request values -----------------------------------------------------------------


def _bool(raw: Any, name: str) -> bool:
    text = str(raw).strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise _invalid(f"{name} must be true or false, got {raw!r}.")


def _int(raw: Any, name: str, lo: int, hi: int) -> int:
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise _invalid(f"{name} must be an integer, got {raw!r}.") from None
    if not lo <= value <= hi:
        raise _invalid(f"{name} must be between {lo} and {hi}, got {value}.")
    return value


def _text(raw: Any, name: str, max_len: int) -> str:
    text = "" if raw is None else str(raw)
    if len(text) > max_len:
        raise _invalid(f"{name} must be at most {max_len} characters long.")
    return text


def _ip(raw: Any) -> str:
    text = str(raw).strip()
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        raise _invalid(f"Invalid IP address '{text}'.") from None
    # Route 53 stores an IPv6 address in its compressed form (octoDNS compares through
    # ip_address() for this very reason); so do we.
    return str(addr)


def _children(raw: Any) -> tuple[str, ...]:
    items = raw if isinstance(raw, list) else ([] if raw in (None, "") else [raw])
    out = tuple(str(i).strip() for i in items)
    if len(out) > MAX_CHILDREN:
        raise _invalid(f"ChildHealthChecks can list at most {MAX_CHILDREN} health checks.")
    if len(set(out)) != len(out):
        raise _invalid("ChildHealthChecks lists a health check more than once.")
    return out


def _refuse_unknown(given: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    problems = []
    for name in given:
        if name in NOT_IMPLEMENTED:
            problems.append(f"{name} is not supported by authd: {NOT_IMPLEMENTED[name]}.")
        elif name not in allowed:
            problems.append(f"Unknown or unsupported element {name} in {where}.")
    if problems:
        raise HealthCheckInputError(problems)


def parse_config(raw: Mapping[str, Any]) -> HealthCheckConfig:
    """A CreateHealthCheck HealthCheckConfig (member name -> text, lists as lists)."""
    _refuse_unknown(raw, CREATE_MEMBERS, "HealthCheckConfig")
    if "Type" not in raw or not str(raw["Type"]).strip():
        raise HealthCheckInputError("Invalid parameter : Type is required.")
    htype = str(raw["Type"]).strip()
    if htype in NOT_IMPLEMENTED_TYPES:
        raise HealthCheckInputError(f"Health checks of Type {htype} are not supported by authd.")
    if htype not in TYPES:
        raise _invalid(f"Type must be one of {', '.join(TYPES)}, got '{htype}'.")
    cfg = HealthCheckConfig(type=htype)
    if "RequestInterval" in raw:
        interval = _int(raw["RequestInterval"], "RequestInterval", 10, 30)
        if interval not in (10, 30):
            # Route 53 offers "fast" (10 s) and "standard" (30 s) intervals only.
            raise _invalid(f"RequestInterval must be 10 or 30, got {interval}.")
        cfg = replace(cfg, request_interval=interval)
    if "MeasureLatency" in raw:
        cfg = replace(cfg, measure_latency=_bool(raw["MeasureLatency"], "MeasureLatency"))
    if htype == "CALCULATED":
        for name in ("RequestInterval", "MeasureLatency"):
            if name in raw:
                raise _invalid(f"{name} is not valid for CALCULATED health checks.")
        cfg = replace(cfg, health_threshold=0)
    cfg = _merge(cfg, raw)
    return validate(cfg)


def _merge(cfg: HealthCheckConfig, raw: Mapping[str, Any]) -> HealthCheckConfig:
    """Apply the members common to Create and Update."""
    changes: dict[str, Any] = {}
    if "IPAddress" in raw:
        changes["ip_address"] = _ip(raw["IPAddress"])
    if "Port" in raw:
        changes["port"] = _int(raw["Port"], "Port", 1, 65535)
    if "ResourcePath" in raw:
        changes["resource_path"] = _text(raw["ResourcePath"], "ResourcePath", 255)
    if "FullyQualifiedDomainName" in raw:
        fqdn = _text(raw["FullyQualifiedDomainName"], "FullyQualifiedDomainName", 255).strip()
        changes["fqdn"] = fqdn or None
    if "SearchString" in raw:
        changes["search_string"] = _text(raw["SearchString"], "SearchString", 255)
    if "FailureThreshold" in raw:
        changes["failure_threshold"] = _int(raw["FailureThreshold"], "FailureThreshold", 1, 10)
    if "Inverted" in raw:
        changes["inverted"] = _bool(raw["Inverted"], "Inverted")
    if "Disabled" in raw:
        changes["disabled"] = _bool(raw["Disabled"], "Disabled")
    if "HealthThreshold" in raw:
        changes["health_threshold"] = _int(raw["HealthThreshold"], "HealthThreshold", 0, 256)
    if "ChildHealthChecks" in raw:
        changes["children"] = _children(raw["ChildHealthChecks"])
    if "EnableSNI" in raw:
        changes["enable_sni"] = _bool(raw["EnableSNI"], "EnableSNI")
    if cfg.calculated:
        for name in ("IPAddress", "Port", "ResourcePath", "FullyQualifiedDomainName",
                     "SearchString", "FailureThreshold", "EnableSNI"):
            if name in raw:
                raise _invalid(f"{name} is not valid for CALCULATED health checks.")
    else:
        for name in ("HealthThreshold", "ChildHealthChecks"):
            if name in raw:
                raise _invalid(f"{name} is valid only for CALCULATED health checks.")
    return replace(cfg, **changes)


def validate(cfg: HealthCheckConfig) -> HealthCheckConfig:
    """The rules across members; fills Route 53's defaults. Returns the config to store."""
    if cfg.calculated:
        return cfg
    if cfg.type == "TCP":
        if cfg.port is None:
            raise _invalid("Port is required for TCP health checks.")
        for name, value in (("ResourcePath", cfg.resource_path), ("SearchString", cfg.search_string)):
            if value is not None:
                raise _invalid(f"{name} is not valid for TCP health checks.")
    if cfg.port is None:
        cfg = replace(cfg, port=443 if cfg.type in TLS_TYPES else 80)
    if cfg.ip_address is None and cfg.fqdn is None:
        raise _invalid("Either IPAddress or FullyQualifiedDomainName is required.")
    if cfg.type in STR_MATCH_TYPES:
        if not cfg.search_string:
            raise _invalid(f"SearchString is required for {cfg.type} health checks.")
    elif cfg.search_string is not None:
        raise _invalid("SearchString is valid only for HTTP_STR_MATCH and HTTPS_STR_MATCH health checks.")
    if cfg.resource_path is not None and cfg.resource_path and not cfg.resource_path.startswith("/"):
        raise _invalid("ResourcePath must begin with a slash (/).")
    if cfg.type in TLS_TYPES and cfg.enable_sni is None:
        cfg = replace(cfg, enable_sni=True)  # Route 53's default for HTTPS checks
    return cfg


def parse_update(current: HealthCheckConfig, raw: Mapping[str, Any], reset: Sequence[str]) -> HealthCheckConfig:
    """UpdateHealthCheck: the members given replace the current ones; ResetElements clears
    FullyQualifiedDomainName, ResourcePath or ChildHealthChecks to their defaults."""
    for name in ("Type", "RequestInterval", "MeasureLatency"):
        if name in raw:
            raise _invalid(f"{name} can't be changed after the health check is created.")
    _refuse_unknown(raw, UPDATE_MEMBERS, "UpdateHealthCheckRequest")
    cfg = current
    for name in reset:
        if name not in RESETTABLE:
            raise _invalid(f"ResetElements: '{name}' is not one of {', '.join(RESETTABLE)}.")
        if name == "Regions":
            raise HealthCheckInputError(f"Regions is not supported by authd: {NOT_IMPLEMENTED['Regions']}.")
        if name in raw:
            raise _invalid(f"{name} can't be both given and reset.")
        if name == "FullyQualifiedDomainName":
            cfg = replace(cfg, fqdn=None)
        elif name == "ResourcePath":
            cfg = replace(cfg, resource_path=None)
        elif name == "ChildHealthChecks":
            cfg = replace(cfg, children=())
    return validate(_merge(cfg, raw))


def check_caller_reference(ref: Any) -> str:
    text = "" if ref is None else str(ref)
    if not text:
        raise HealthCheckInputError("Invalid parameter : CallerReference is required.")
    if len(text) > MAX_CALLER_REFERENCE:
        raise _invalid(f"CallerReference must be at most {MAX_CALLER_REFERENCE} characters long.")
    return text


def health_check_id(number: int, caller_reference: str) -> str:
    """`hc-0007-3f2a9c1e`: readable (creation order), stable (the hash of the caller
    reference), at most 64 characters as Route 53's HealthCheckId. boto3 and octoDNS treat
    ids as opaque strings, so a UUID is not needed."""
    digest = hashlib.sha256(caller_reference.encode()).hexdigest()[:8]
    return f"hc-{number:04d}-{digest}"


def id_number(hc_id: str) -> int:
    """The creation number in an id made by `health_check_id` (0 for any other form)."""
    parts = hc_id.split("-")
    if len(parts) == 3 and parts[0] == "hc" and parts[1].isdigit():
        return int(parts[1])
    return 0
