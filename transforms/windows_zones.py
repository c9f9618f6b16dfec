"""Windows time-zone names → IANA zones, as EVO names an entry's zone in ``timeZone``.

From the CLDR ``windowsZones`` mapping (unicode-org/cldr, ``common/supplemental/windowsZones.xml``
at commit 062dc06d16b0884bc42b0b04e5408aec6b85eb20, ``typeVersion="2021a"``): the first zone of
territory ``BR`` where the Windows zone has one, else the territory ``001`` (golden) zone. Kept:
every Windows zone with a Brazilian entry, and the golden zones of the Americas, UTC and western
Europe, where the branches of an EVO customer can be. A name not listed here is not guessed: its
records are read in ``source_timezone`` and the run summary counts them under that name. IANA
names are CLDR's (``America/Buenos_Aires`` is a link the tz database keeps).
"""

from __future__ import annotations

WINDOWS_ZONES: dict[str, str] = {
    # territory BR
    "E. South America Standard Time": "America/Sao_Paulo",  # Brasília, UTC-3
    "SA Eastern Standard Time": "America/Fortaleza",  # Fortaleza, Belém, Recife, UTC-3
    "Bahia Standard Time": "America/Bahia",  # Salvador, UTC-3
    "Tocantins Standard Time": "America/Araguaina",  # Araguaína, UTC-3
    "SA Western Standard Time": "America/Manaus",  # Manaus, Boa Vista, Porto Velho, UTC-4
    "Central Brazilian Standard Time": "America/Cuiaba",  # Cuiabá, Campo Grande, UTC-4
    "SA Pacific Standard Time": "America/Rio_Branco",  # Rio Branco, UTC-5
    "UTC-02": "America/Noronha",  # Fernando de Noronha, UTC-2
    # territory 001
    "UTC": "Etc/UTC",
    "Argentina Standard Time": "America/Buenos_Aires",
    "Montevideo Standard Time": "America/Montevideo",
    "Paraguay Standard Time": "America/Asuncion",
    "Pacific SA Standard Time": "America/Santiago",
    "Magallanes Standard Time": "America/Punta_Arenas",
    "Easter Island Standard Time": "Pacific/Easter",
    "Venezuela Standard Time": "America/Caracas",
    "Atlantic Standard Time": "America/Halifax",
    "Cuba Standard Time": "America/Havana",
    "Haiti Standard Time": "America/Port-au-Prince",
    "Eastern Standard Time": "America/New_York",
    "Eastern Standard Time (Mexico)": "America/Cancun",
    "Central America Standard Time": "America/Guatemala",
    "Central Standard Time": "America/Chicago",
    "Central Standard Time (Mexico)": "America/Mexico_City",
    "Mountain Standard Time": "America/Denver",
    "Mountain Standard Time (Mexico)": "America/Mazatlan",
    "US Mountain Standard Time": "America/Phoenix",
    "Pacific Standard Time": "America/Los_Angeles",
    "Pacific Standard Time (Mexico)": "America/Tijuana",
    "GMT Standard Time": "Europe/London",
    "Greenwich Standard Time": "Atlantic/Reykjavik",
    "Azores Standard Time": "Atlantic/Azores",
    "Cape Verde Standard Time": "Atlantic/Cape_Verde",
    "W. Europe Standard Time": "Europe/Berlin",
    "Romance Standard Time": "Europe/Paris",
}
