"""The camera rig: Alpamayo-R1-like front cameras, the horizon row, image sides in whole
vision tokens (multiples of 28 px)."""

import numpy as np
import pytest

from vla.render.camera import CAMERA_PRESETS, ROAD, SKY, camera_specs, render_camera
from vla.render.scene import AgentBox, RoadGeometry
from vla.sim.observation import SampleConfig
from vla.sim.recipes import CAMERA_RIG_KEYS, recipe_names

CAR_LENGTH_M, CAR_WIDTH_M = 5.0, 2.0  # highway-env's vehicle size
EGO = AgentBox(0, 0.0, 0.0, 0.0, CAR_LENGTH_M, CAR_WIDTH_M, False)
NO_ROAD = RoadGeometry([], [], np.zeros((0, 4, 2)))


def _straight_road(length_m: float = 300.0, half_width_m: float = 6.0) -> RoadGeometry:
    """A straight road surface along +x, one point per metre on each edge."""
    x = np.arange(-10.0, length_m)
    left = np.stack([x, np.full_like(x, half_width_m)], axis=1)
    right = np.stack([x, np.full_like(x, -half_width_m)], axis=1)
    return RoadGeometry([(left, right)], [], np.zeros((0, 4, 2)))


def _car_ahead(distance_m: float) -> AgentBox:
    """A car straight ahead whose rear face is ``distance_m`` in front of the cameras."""
    camera_x = EGO.x + CAMERA_PRESETS["front"].forward_m
    return AgentBox(1, camera_x + distance_m + CAR_LENGTH_M / 2, 0.0, 0.0,
                    CAR_LENGTH_M, CAR_WIDTH_M, False)


def test_front_wide_and_tele_beside_the_90_degree_cameras():
    wide, tele = CAMERA_PRESETS["front_wide"], CAMERA_PRESETS["front_tele"]
    assert (wide.yaw_deg, wide.hfov_deg) == (0, 120) and (tele.yaw_deg, tele.hfov_deg) == (0, 30)
    assert CAMERA_PRESETS["front"].hfov_deg == 90
    assert [CAMERA_PRESETS[n].yaw_deg for n in ("front_left", "front_right", "rear")] == [
        60, -60, 180]
    assert all(CAMERA_PRESETS[n].hfov_deg == 90 for n in ("front_left", "front_right", "rear"))


@pytest.mark.parametrize("distance_m", [20.0, 40.0])
def test_tele_camera_shows_a_distant_car_over_several_tokens(distance_m):
    """A 2 m wide car covers focal * 2 m / d pixels: with the telephoto's 30° over 224 px
    (focal 112 / tan 15° = 418 px) that is 21 px at 40 m and 42 px at 20 m (the 120° wide
    camera: 3 px at 40 m), measured on the rendered image within a pixel or two."""
    tele, wide = camera_specs(["front_tele", "front_wide"], 224, 112, horizon_row=0.25)
    expected = tele.focal * CAR_WIDTH_M / distance_m
    assert expected == pytest.approx(41.8 * 20 / distance_m, abs=0.1)
    car = _car_ahead(distance_m)
    for cam, width_px in ((tele, expected), (wide, wide.focal * CAR_WIDTH_M / distance_m)):
        empty = render_camera(cam, EGO, [], NO_ROAD)
        with_car = render_camera(cam, EGO, [car], NO_ROAD)
        columns = np.flatnonzero((empty != with_car).any(axis=(0, 2)))
        assert len(columns) == pytest.approx(width_px, abs=2)
        assert columns.mean() == pytest.approx(cam.width / 2, abs=1.5)  # centred: straight ahead
    assert wide.focal * CAR_WIDTH_M / 40.0 < 4  # why the rig has a telephoto camera


@pytest.mark.parametrize("horizon_row", [0.5, 0.25])
def test_horizon_row_places_the_horizon(horizon_row):
    """A level camera sees a far road point on the horizon row; the sky ends there."""
    road = _straight_road()
    for cam in camera_specs(["front", "front_tele"], 224, 112, horizon_row=horizon_row):
        row = horizon_row * cam.height
        assert cam.principal_point == (cam.width / 2, row)
        image = render_camera(cam, EGO, [], road)
        centre = image[:, cam.width // 2]
        road_rows = np.flatnonzero((centre == ROAD).all(axis=1))
        # the road is drawn to 160 m: its far end lies focal * 1.5 m / 160 m below the horizon
        far_end = row + cam.focal * cam.height_m / 160.0
        assert road_rows[0] == pytest.approx(far_end, abs=1.5)
        assert road_rows[-1] == cam.height - 1
        sky_rows = np.flatnonzero((centre == SKY).all(axis=1))
        assert sky_rows[-1] == int(row) and (centre[int(row) + 1:] != SKY).any(axis=1).all()


def test_the_rig_horizon_keeps_car_roofs_and_shows_more_road():
    """At horizon_row 0.25 the roof of a car 10 m to 60 m ahead is inside the image, and the
    telephoto sees the road closer than at 0.5 (7.5 m instead of 11.2 m)."""
    tele = camera_specs(["front_tele"], 224, 112, horizon_row=0.25)[0]
    for distance in (10.0, 60.0):
        image = render_camera(tele, EGO, [_car_ahead(distance)], NO_ROAD)
        empty = render_camera(tele, EGO, [], NO_ROAD)
        rows = np.flatnonzero((image != empty).any(axis=(1, 2)))
        assert rows[0] > 0, f"the roof of a car {distance} m ahead is cut off"
    for horizon_row, nearest_m in ((0.25, 7.46), (0.5, 11.2)):
        cam = camera_specs(["front_tele"], 224, 112, horizon_row=horizon_row)[0]
        below = cam.height - horizon_row * cam.height
        assert cam.focal * cam.height_m / below == pytest.approx(nearest_m, abs=0.01)


def test_image_sides_are_whole_vision_tokens():
    config = SampleConfig()
    assert config.cameras == ("front_left", "front_wide", "front_tele", "front_right")
    assert (config.image_width, config.image_height, config.frames) == (224, 112, 2)
    assert config.frame_gap_s == 0.5 and config.horizon_row == 0.25
    SampleConfig(image_width=56, image_height=28)
    for field, value in (("image_width", 160), ("image_height", 96), ("image_width", 0),
                         ("image_height", 1036)):
        with pytest.raises(ValueError, match=f"{field} must be a multiple of 28 px .* got {value}"):
            SampleConfig(**{field: value})
    with pytest.raises(ValueError, match="horizon_row must be in"):
        SampleConfig(horizon_row=1.2)
    with pytest.raises(ValueError, match="camera front: horizon_row"):
        camera_specs(["front"], horizon_row=-0.1)


def test_every_packaged_recipe_uses_the_default_rig():
    from vla.data.build import rig_sample_config
    from vla.sim.recipes import load_recipe

    assert "horizon_row" in CAMERA_RIG_KEYS
    for name in recipe_names():
        recipe = load_recipe(name)
        assert set(recipe.camera_rig) == set(CAMERA_RIG_KEYS), name
        assert rig_sample_config(recipe) == SampleConfig(), name


def test_a_served_rig_follows_the_data_set_cameras_frames_and_gap():
    from vla.data.build import served_rig

    meta = {"cameras": ["front_wide", "front_tele"], "frames": 2,
            "config": {"samples": {"frame_gap_s": 0.3}}}
    rig = served_rig(meta)
    assert rig["images_per_prompt"] == 4 and abs(rig["video_fps"] - 1 / 0.3) < 1e-12
