"""Build authd/data/geolocations.json: the locations Route 53's ListGeoLocations lists.

Sources (public, cited in the output's "sources"):
- continents: the seven codes of Route 53's GeoLocation type (API reference, GeoLocation:
  AF, AN, AS, EU, OC, NA, SA);
- countries: ISO 3166-1 alpha-2, from Debian's iso-codes package
  (/usr/share/iso-codes/json/iso_3166-1.json; `common_name` where ISO gives one);
- subdivisions: the US states and the District of Columbia, from ISO 3166-2 in the same
  package (types "State" and "District"; the outlying areas are countries of their own in
  ISO 3166-1). Route 53's GeoLocationDetails: "Route 53 currently supports only states in
  the United States."
Run: python3 scripts/build-geolocations.py  (rewrites the file; it is committed).
"""

import json
from pathlib import Path

ISO = Path("/usr/share/iso-codes/json")
OUT = Path(__file__).resolve().parent.parent / "authd" / "data" / "geolocations.json"
CONTINENTS = {
    "AF": "Africa", "AN": "Antarctica", "AS": "Asia", "EU": "Europe",
    "NA": "North America", "OC": "Oceania", "SA": "South America",
}

countries = json.loads((ISO / "iso_3166-1.json").read_text())["3166-1"]
subdivisions = json.loads((ISO / "iso_3166-2.json").read_text())["3166-2"]
doc = {
    "sources": [
        "Route 53 API reference, GeoLocation data type (continent codes)",
        "ISO 3166-1 alpha-2 via Debian iso-codes (iso_3166-1.json)",
        "ISO 3166-2:US states and district via Debian iso-codes (iso_3166-2.json)",
    ],
    "continents": [{"code": c, "name": n} for c, n in sorted(CONTINENTS.items())],
    "countries": sorted(
        ({"code": c["alpha_2"], "name": c.get("common_name", c["name"])} for c in countries),
        key=lambda c: c["code"],
    ),
    "subdivisions": {
        "US": sorted(
            ({"code": s["code"].split("-", 1)[1], "name": s["name"]}
             for s in subdivisions if s["code"].startswith("US-") and s["type"] in ("State", "District")),
            key=lambda s: s["code"],
        )
    },
}
OUT.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
print(f"{OUT}: {len(doc['continents'])} continents, {len(doc['countries'])} countries, "
      f"{len(doc['subdivisions']['US'])} US subdivisions")
