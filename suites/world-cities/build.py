"""Build the world-cities forgetting panel from the tz database's zone1970.tab and iso3166.tab.

    python suites/world-cities/build.py [TZDIR]     # default /usr/share/zoneinfo; writes
                                                    # world_cities.jsonl and build.json

Each row of zone1970.tab names a timezone by its principal location ("Europe/Paris") and lists the
countries it covers, the principal location's country first. The question is "In which country is
<location>?" with that country and three distractors. Distractors are countries from the same tz
region (Europe, Asia, America, ...) that the timezone does not cover, so "Paris" is weighed against
other European countries rather than against Fiji; they are ranked by a SHA-256 of the timezone and
country code, and the four choices are ordered the same way: no random generator, no drift.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SKIP_REGIONS = {"Antarctica", "Etc", "Arctic"}


def rank(*parts: str) -> int:
    return int(hashlib.sha256(":".join(parts).encode()).hexdigest()[:12], 16)


def read_tab(path: Path) -> list[list[str]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            rows.append(line.split("\t"))
    return rows


def tzdata_version(tzdir: Path) -> str:
    for name in ("tzdata.zi", "+VERSION", "version"):
        f = tzdir / name
        if f.is_file():
            first = f.read_text(encoding="utf-8", errors="replace").splitlines()[0]
            return first.removeprefix("# version").strip()
    return "unknown"


def questions(tzdir: Path) -> list[dict[str, object]]:
    countries = {code: name for code, name in read_tab(tzdir / "iso3166.tab")}
    zones = read_tab(tzdir / "zone1970.tab")
    by_region: dict[str, set[str]] = {}
    for codes, _coords, tz, *_ in zones:
        # Antarctica shares some zones with New Zealand and others; it is no answer to "country".
        by_region.setdefault(tz.split("/")[0], set()).update(set(codes.split(",")) - {"AQ"})
    out: list[dict[str, object]] = []
    for codes_text, _coords, tz, *_ in zones:
        parts = tz.split("/")
        # Three-part names ("America/Argentina/Salta", "America/North_Dakota/Center") either
        # give the country away or name a county, not a place anyone would be asked about.
        if parts[0] in SKIP_REGIONS or len(parts) != 2:
            continue
        place = parts[1].replace("_", " ")
        codes = codes_text.split(",")
        country = countries[codes[0]]
        if place.casefold() in country.casefold():  # "Andorra", "Singapore": no question
            continue
        pool = sorted(by_region[parts[0]] - set(codes), key=lambda c: rank(tz, c))
        if len(pool) < 3:
            rest = set(countries) - set(codes) - set(pool) - {"AQ"}
            pool += sorted(rest, key=lambda c: rank(tz, c))
        picked = [codes[0], *pool[:3]]
        picked.sort(key=lambda c: rank("order", tz, c))
        out.append(
            {
                "id": tz,
                "city": place,
                "answer": country,
                "choices": [countries[c] for c in picked],
                "gold": picked.index(codes[0]),
            }
        )
    return out


def main() -> None:
    tzdir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/usr/share/zoneinfo")
    rows = questions(tzdir)
    with open(HERE / "world_cities.jsonl", "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    info = {"source": str(tzdir), "tzdata": tzdata_version(tzdir), "questions": len(rows)}
    (HERE / "build.json").write_text(json.dumps(info, indent=2) + "\n", "utf-8")
    print(json.dumps(info))


if __name__ == "__main__":
    main()
