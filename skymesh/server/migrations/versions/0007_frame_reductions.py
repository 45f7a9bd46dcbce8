"""frame reductions: the data-products pipeline's results per uploaded frame and per observation

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 16:20:00

A `frame_reductions` table (one row per reduced FITS artifact), a `pass_reductions` table (one row per analysed IQ
recording) and nullable columns on `observations` with the aggregate over them (state, calibrated magnitude and
error, filter, airmass, zero point and error, FWHM, WCS RMS, flags, time; a pass's quality score, Doppler offset and
peak SNR). Additive: existing rows stay valid on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OBSERVATION_COLUMNS = (
    ("reduced_magnitude", sa.Float()),
    ("reduced_magnitude_error", sa.Float()),
    ("reduced_filter", sa.String(length=32)),
    ("reduced_airmass", sa.Float()),
    ("zero_point_mag", sa.Float()),
    ("zero_point_error_mag", sa.Float()),
    ("fwhm_arcsec", sa.Float()),
    ("wcs_rms_arcsec", sa.Float()),
    ("reduction_flags", sa.JSON()),
    ("reduced_at", sa.DateTime(timezone=True)),
    ("pass_quality_score", sa.Float()),
    ("doppler_offset_hz", sa.Float()),
    ("peak_snr_db", sa.Float()),
)


def upgrade() -> None:
    op.add_column(
        "observations", sa.Column("reduction_state", sa.String(length=16), nullable=False, server_default="")
    )
    for name, type_ in _OBSERVATION_COLUMNS:
        op.add_column("observations", sa.Column(name, type_, nullable=True))
    op.create_table(
        "frame_reductions",
        sa.Column("resource_name", sa.String(length=300), nullable=False),
        sa.Column("observation_id", sa.String(length=64), nullable=False),
        sa.Column("station_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("filter", sa.String(length=32), nullable=False),
        sa.Column("date_obs", sa.DateTime(timezone=True), nullable=True),
        sa.Column("exposure_s", sa.Float(), nullable=True),
        sa.Column("airmass", sa.Float(), nullable=True),
        sa.Column("magnitude", sa.Float(), nullable=True),
        sa.Column("magnitude_error", sa.Float(), nullable=True),
        sa.Column("instrumental_magnitude", sa.Float(), nullable=True),
        sa.Column("zero_point_mag", sa.Float(), nullable=True),
        sa.Column("zero_point_error_mag", sa.Float(), nullable=True),
        sa.Column("zero_point_airmass1_mag", sa.Float(), nullable=True),
        sa.Column("comparison_stars", sa.Integer(), nullable=False),
        sa.Column("comparison_ids", sa.JSON(), nullable=False),
        sa.Column("target_ra_deg", sa.Float(), nullable=True),
        sa.Column("target_dec_deg", sa.Float(), nullable=True),
        sa.Column("wcs_rms_arcsec", sa.Float(), nullable=True),
        sa.Column("matched_stars", sa.Integer(), nullable=False),
        sa.Column("star_count", sa.Integer(), nullable=False),
        sa.Column("fwhm_arcsec", sa.Float(), nullable=True),
        sa.Column("ellipticity", sa.Float(), nullable=True),
        sa.Column("sky_e_per_s_px", sa.Float(), nullable=True),
        sa.Column("saturated_fraction", sa.Float(), nullable=True),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.Column("wcs", sa.JSON(), nullable=False),
        sa.Column("reduced_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["station_id"], ["stations.station_id"], name=op.f("fk_frame_reductions_station_id_stations")
        ),
        sa.PrimaryKeyConstraint("resource_name", name=op.f("pk_frame_reductions")),
    )
    op.create_index(
        op.f("ix_frame_reductions_observation_id"), "frame_reductions", ["observation_id"], unique=False
    )
    op.create_index("ix_frame_reductions_station_filter", "frame_reductions", ["station_id", "filter"], unique=False)
    op.create_table(
        "pass_reductions",
        sa.Column("resource_name", sa.String(length=300), nullable=False),
        sa.Column("observation_id", sa.String(length=64), nullable=False),
        sa.Column("station_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("captures", sa.Integer(), nullable=False),
        sa.Column("detected", sa.Integer(), nullable=False),
        sa.Column("max_elevation_deg", sa.Float(), nullable=True),
        sa.Column("peak_snr_db", sa.Float(), nullable=True),
        sa.Column("mean_snr_db", sa.Float(), nullable=True),
        sa.Column("snr_elevation_correlation", sa.Float(), nullable=True),
        sa.Column("doppler_offset_hz", sa.Float(), nullable=True),
        sa.Column("doppler_rms_hz", sa.Float(), nullable=True),
        sa.Column("quality_score", sa.Float(), nullable=True),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.Column("waterfall_path", sa.Text(), nullable=False),
        sa.Column("reduced_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["station_id"], ["stations.station_id"], name=op.f("fk_pass_reductions_station_id_stations")
        ),
        sa.PrimaryKeyConstraint("resource_name", name=op.f("pk_pass_reductions")),
    )
    op.create_index(op.f("ix_pass_reductions_observation_id"), "pass_reductions", ["observation_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_pass_reductions_observation_id"), table_name="pass_reductions")
    op.drop_table("pass_reductions")
    op.drop_index("ix_frame_reductions_station_filter", table_name="frame_reductions")
    op.drop_index(op.f("ix_frame_reductions_observation_id"), table_name="frame_reductions")
    op.drop_table("frame_reductions")
    with op.batch_alter_table("observations") as batch:  # SQLite cannot drop columns in place
        for name, _type in reversed(_OBSERVATION_COLUMNS):
            batch.drop_column(name)
        batch.drop_column("reduction_state")
