"""IQ recording during a satellite pass, written as SigMF (the `sigmf` package, in the `iq` extra): short snippets
of complex baseband, one every `interval_s`, each a SigMF capture with its own UTC time and the frequency the radio
was tuned to, plus the pass metadata (target, NORAD id, TLE, nominal downlink frequency, station position) in the
global object under the `skymesh` extension, so the server can measure the signal against the orbit.

A radio records when it implements `SupportsIqRecording` and its `record_iq` is true (the simulated radio's
`record_iq` parameter; an SDR driver would do the same). Without the `sigmf` package nothing is recorded and the pass
goes on.

Imports: stdlib, `sigmf` (optional), `skymesh.core`; numpy only once something is recorded (a ground-station agent
that records nothing never loads it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from skymesh.core.model import GeoLocation

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["IqRecorder", "SupportsIqRecording", "sigmf_available"]

_log = logging.getLogger(__name__)


@runtime_checkable
class SupportsIqRecording(Protocol):
    record_iq: bool
    iq_sample_rate_hz: float
    iq_interval_s: float

    def iq_snippet(self, sample_count: int) -> NDArray[np.complex64]:
        """`sample_count` complex baseband samples at `iq_sample_rate_hz`, centred on the tuned frequency."""
        ...


def sigmf_available() -> bool:
    from importlib.util import find_spec

    return find_spec("sigmf") is not None


@dataclass
class IqRecorder:
    sample_rate_hz: float
    snippets: list[NDArray[np.complex64]] = field(default_factory=list)
    times: list[datetime] = field(default_factory=list)
    frequencies_hz: list[float] = field(default_factory=list)

    def add(self, when: datetime, tuned_hz: float, samples: NDArray[np.complex64]) -> None:
        import numpy as np

        self.snippets.append(np.asarray(samples, dtype=np.complex64))
        self.times.append(when)
        self.frequencies_hz.append(tuned_hz)

    def __len__(self) -> int:
        return len(self.snippets)

    def write(
        self,
        path: Path,
        *,
        target_id: str,
        target_name: str,
        norad_id: int,
        tle_line1: str,
        tle_line2: str,
        nominal_hz: float,
        location: GeoLocation,
    ) -> Path:
        """Write the recording as a SigMF archive (`<path>.sigmf`) and return its path."""
        import numpy as np
        from sigmf import SigMFFile

        path.parent.mkdir(parents=True, exist_ok=True)
        data_path = path.with_suffix(".sigmf-data")
        np.concatenate(self.snippets).astype(np.complex64).tofile(data_path)
        global_info: dict[str, Any] = {
            "core:datatype": "cf32_le",
            "core:sample_rate": self.sample_rate_hz,
            "core:description": f"pass of {target_name} (NORAD {norad_id})",
            "core:recorder": "skymesh agent",
            "core:geolocation": {
                "type": "Point",
                "coordinates": [location.longitude_deg, location.latitude_deg, location.altitude_m],
            },
            "core:extensions": [{"name": "skymesh", "version": "1.0.0", "optional": True}],
            "skymesh:target_id": target_id,
            "skymesh:norad_id": norad_id,
            "skymesh:tle_line1": tle_line1,
            "skymesh:tle_line2": tle_line2,
            "skymesh:nominal_frequency_hz": nominal_hz,
        }
        meta = SigMFFile(data_file=str(data_path), global_info=global_info)
        start = 0
        for snippet, when, tuned_hz in zip(self.snippets, self.times, self.frequencies_hz, strict=True):
            meta.add_capture(
                start,
                metadata={
                    "core:frequency": tuned_hz,
                    "core:datetime": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                },
            )
            start += len(snippet)
        archive = path.with_suffix(".sigmf")
        meta.tofile(str(archive), toarchive=True, overwrite=True)
        data_path.unlink(missing_ok=True)
        return archive
