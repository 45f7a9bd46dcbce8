"""The shipped reference catalogue is exactly what its generator makes (so it can be rebuilt and reviewed)."""

from __future__ import annotations

import numpy as np

from skymesh.products.catalog import TEST_FIELDS, generate_reference_catalogue, load_reference_catalogue


def test_shipped_catalogue_matches_generator() -> None:
    shipped = load_reference_catalogue().table
    fresh = generate_reference_catalogue()
    assert shipped.colnames == fresh.colnames
    assert list(shipped["star_id"]) == list(fresh["star_id"])
    for name in ("ra_deg", "dec_deg", "mag_B", "mag_V", "mag_R", "mag_I"):
        np.testing.assert_allclose(np.asarray(shipped[name]), np.asarray(fresh[name]), rtol=0, atol=1e-9)


def test_each_field_has_its_target_at_the_centre() -> None:
    catalogue = load_reference_catalogue()
    for field in TEST_FIELDS:
        near = catalogue.cone(field.ra_deg, field.dec_deg, 1.0 / 3600.0)
        assert list(near.table["star_id"]) == [f"{field.name}-target"]
        assert float(near.table["mag_V"][0]) == field.target_v_mag
