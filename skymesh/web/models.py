"""Request bodies of the JSON API (pydantic: wrong types and ranges answer 422 naming the field, and the models
document the API in OpenAPI). Unknown fields are refused, so a typo is an error rather than a silent default."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "CampaignIn",
    "CancelIn",
    "LoginIn",
    "ObservationIn",
    "SiteIn",
    "TargetIn",
    "TokenIn",
]

Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginIn(_Strict):
    username: Annotated[str, Field(min_length=1, max_length=64)]
    password: Annotated[str, Field(min_length=1, max_length=256)]


class TokenIn(_Strict):
    label: Annotated[str, Field(max_length=100)] = ""


class SiteIn(_Strict):
    site_id: Identifier
    name: Annotated[str, Field(max_length=200)] = ""
    kind: Literal["ground_station", "telescope"]
    latitude_deg: Annotated[float, Field(ge=-90, le=90)]
    longitude_deg: Annotated[float, Field(ge=-180, le=180)]
    altitude_m: Annotated[float, Field(ge=-500, le=9000)] = 0.0
    min_elevation_deg: Annotated[float, Field(ge=0, le=90)] = 0.0
    bands: list[Annotated[str, Field(max_length=16)]] = Field(default_factory=list, max_length=16)
    slew_rate_deg_s: Annotated[float, Field(ge=0, le=100)] = 0.0
    aperture_m: Annotated[float, Field(ge=0, le=50)] = 0.0
    filters: list[Annotated[str, Field(max_length=16)]] = Field(default_factory=list, max_length=32)
    limiting_magnitude: Annotated[float, Field(ge=-30, le=40)] = 0.0
    fov_deg: Annotated[float, Field(ge=0, le=180)] = 0.0


class TargetIn(_Strict):
    target_id: Identifier
    name: Annotated[str, Field(max_length=200)] = ""
    kind: Literal["satellite", "celestial"]
    priority: Annotated[int, Field(ge=1, le=10)] = 5
    campaign_id: Annotated[str, Field(max_length=64)] = ""
    # Satellites: a pasted two- or three-line element set, or the two lines separately.
    tle: Annotated[str, Field(max_length=300)] = ""
    tle_line1: Annotated[str, Field(max_length=80)] = ""
    tle_line2: Annotated[str, Field(max_length=80)] = ""
    band: Annotated[str, Field(max_length=16)] = ""
    downlink_frequency_hz: Annotated[float, Field(ge=0, le=1e12)] = 0.0
    # Celestial targets.
    ra_deg: Annotated[float, Field(ge=0, lt=360)] | None = None
    dec_deg: Annotated[float, Field(ge=-90, le=90)] | None = None
    magnitude: Annotated[float, Field(ge=-30, le=40)] = 0.0
    filters: list[Annotated[str, Field(max_length=16)]] = Field(default_factory=list, max_length=16)
    exposure_s: Annotated[float, Field(ge=0, le=86400)] = 0.0
    exposure_count: Annotated[int, Field(ge=0, le=10000)] = 0
    cadence_s: Annotated[float, Field(ge=0, le=1e8)] = 0.0


class CampaignIn(_Strict):
    campaign_id: Identifier
    name: Annotated[str, Field(max_length=200)] = ""
    description: Annotated[str, Field(max_length=2000)] = ""
    priority_boost: Annotated[float, Field(ge=-10, le=10)] = 0.0
    start: datetime | None = None
    end: datetime | None = None


class CancelIn(_Strict):
    reason: Annotated[str, Field(max_length=500)] = ""


class ObservationIn(_Strict):
    """DATAS "submit observation data": one measurement of a target from a site."""

    observation_id: Annotated[str, Field(max_length=64)] = ""
    target_id: Identifier
    site_id: Identifier
    observed_at: datetime
    exposure_s: Annotated[float, Field(ge=0, le=86400)] = 0.0
    filter: Annotated[str, Field(max_length=16)] = ""
    magnitude: Annotated[float, Field(ge=-30, le=40)] | None = None
    magnitude_error: Annotated[float, Field(ge=0, le=10)] = 0.0
    airmass: Annotated[float, Field(ge=1, le=40)] | None = None
    seeing_arcsec: Annotated[float, Field(ge=0, le=60)] = 0.0
    ra_deg: Annotated[float, Field(ge=0, lt=360)] | None = None
    dec_deg: Annotated[float, Field(ge=-90, le=90)] | None = None
    quality_flags: list[Annotated[str, Field(max_length=32)]] = Field(default_factory=list, max_length=32)
