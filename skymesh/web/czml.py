"""A CZML document (the Cesium time-dynamic scene format) for the TALOS 3D view: satellites as sampled positions
(cartographic degrees and metres, from SGP4 via `skymesh.astro`), stations as fixed points coloured by state. Any
CZML viewer (CesiumJS from npm, served locally) can load it from `GET /api/v1/czml`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from skymesh.api.common.v1 import common_pb2
from skymesh.astro.frames import datetime_to_jd, ecef_to_geodetic, teme_to_ecef
from skymesh.astro.propagate import SatelliteBatch
from skymesh.astro.tle import parse_tle
from skymesh.core.errors import SkyMeshError

__all__ = ["czml_document"]

_STATE_RGBA = {
    common_pb2.STATION_STATE_ONLINE: [46, 204, 113, 255],
    common_pb2.STATION_STATE_STALE: [241, 196, 15, 255],
    common_pb2.STATION_STATE_DISCONNECTED: [230, 126, 34, 255],
}
_OFFLINE_RGBA = [127, 140, 141, 255]
_SATELLITE_RGBA = [199, 125, 255, 255]  # the map's satellite violet: no station state shares it
_PATH_MATERIAL = {"solidColor": {"color": {"rgba": [199, 125, 255, 128]}}}


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def czml_document(
    stations: list[common_pb2.Station], targets: list[common_pb2.Target], start: datetime, hours: float, step_s: float
) -> list[dict[str, Any]]:
    end = start + timedelta(hours=hours)
    interval = f"{_iso(start)}/{_iso(end)}"
    doc: list[dict[str, Any]] = [
        {"id": "document", "name": "SkyMesh", "version": "1.0",
         "clock": {"interval": interval, "currentTime": _iso(start), "multiplier": 60}},
    ]  # fmt: skip
    for s in stations:
        doc.append(
            {
                "id": f"station/{s.station_id}",
                "name": s.name or s.station_id,
                "position": {
                    "cartographicDegrees": [s.location.longitude_deg, s.location.latitude_deg, s.location.altitude_m]
                },
                "point": {"pixelSize": 8, "color": {"rgba": _STATE_RGBA.get(s.state, _OFFLINE_RGBA)}},
                "label": {"text": s.station_id, "font": "11px sans-serif", "pixelOffset": {"cartesian2": [0, -14]}},
            }
        )
    sats = []
    for t in targets:
        if t.WhichOneof("kind") == "satellite":
            try:
                sats.append((t, parse_tle(t.satellite.tle_line1, t.satellite.tle_line2, t.name)))
            except SkyMeshError:
                continue
    if not sats:
        return doc
    offsets = np.arange(0.0, hours * 3600.0 + step_s / 2, step_s)
    jd = datetime_to_jd(start) + offsets / 86400.0
    r, v, _err = SatelliteBatch([tle for _t, tle in sats]).propagate(jd)
    r_ecef, _v = teme_to_ecef(r, v, jd)
    lat, lon, alt_km = ecef_to_geodetic(r_ecef)
    for i, (t, _tle) in enumerate(sats):
        ok = np.isfinite(lat[i])
        samples: list[float] = []
        for k in np.nonzero(ok)[0]:
            samples += [
                float(offsets[k]),
                round(float(lon[i, k]), 5),
                round(float(lat[i, k]), 5),
                round(float(alt_km[i, k]) * 1000.0, 1),
            ]
        doc.append(
            {
                "id": f"satellite/{t.target_id}",
                "name": t.name or t.target_id,
                "availability": interval,
                "position": {"epoch": _iso(start), "cartographicDegrees": samples,
                             "interpolationAlgorithm": "LAGRANGE", "interpolationDegree": 5},
                "point": {"pixelSize": 5, "color": {"rgba": _SATELLITE_RGBA}},
                "path": {"leadTime": 2700, "trailTime": 2700, "width": 1, "material": _PATH_MATERIAL},
            }
        )  # fmt: skip
    return doc
