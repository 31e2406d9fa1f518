"""The PhysicalAI-AV converter on small folders in the data set's layout
(``tests/log_fixtures_physicalai_av.py``)."""

import json

import numpy as np
import pytest
from log_fixtures_physicalai_av import (
    ABSENT_CLIP_ID,
    CAMERAS,
    CLIP_ID,
    EVENT_TEXT,
    SPEED,
    FixtureClip,
    ego_state,
    frame_level,
    frame_times_us,
    write_physicalai_av,
)

from vla.convert.physicalai_av import PhysicalAIConfig, convert_physicalai_av
from vla.data.build import load_dataset_dir


def convert(tmp_path, clips=None, **fixture):
    root = write_physicalai_av(tmp_path / "src", clips, **fixture)
    meta = convert_physicalai_av(PhysicalAIConfig(root, tmp_path / "out"))
    dataset, saved = load_dataset_dir(tmp_path / "out")
    rows = [row for split in dataset.values() for row in split]
    return meta, saved, rows


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    return convert(tmp_path_factory.mktemp("physicalai_av"))


def test_converts_the_clip_with_its_reasoning_event_and_grid(converted):
    meta, saved, rows = converted
    assert saved == meta and meta["source"] == "physicalai_av"
    by_id = {row["sample_id"]: row for row in rows}
    # the event at 3.0 s; the grid on the multiples of 2 s from 2.05 s on (2 s of history),
    # away from the events at 3.0 and 8.0 s, up to the last with 3 s of future (not 10 s, 12 s)
    assert sorted(by_id) == [f"{CLIP_ID}-{ms}" for ms in (3000, 4000, 6000)]
    event = by_id[f"{CLIP_ID}-3000"]
    assert event["scenario"] == "reasoning_event" and event["reasoning"] == EVENT_TEXT
    for ms in (4000, 6000):
        assert by_id[f"{CLIP_ID}-{ms}"]["scenario"] == "log"
        assert by_id[f"{CLIP_ID}-{ms}"]["reasoning"] == ""
    for row in rows:
        assert row["source"] == "physicalai_av" and row["road"] == "log"
        assert row["episode_id"] == 0
        assert row["camera_names"] == list(CAMERAS) * 2
        assert row["frame_times"] == [-0.5] * 4 + [0.0] * 4
        assert len(row["images"]) == 8 and row["images"][0].size == (224, 112)
        cache = json.loads(row["metric_cache"])
        assert cache["agents"] == [] and cache["agents_annotated"] is False
    assert meta["skipped"] == {
        "clip: chunk not on disk": 1,                                # ABSENT_CLIP_ID
        "reasoning event: less than 2.0 s of history": 1,            # the event at 1.0 s
        "reasoning event: less than 6.4 s of log after it": 1,       # the event at 8.0 s
    }
    assert meta["clips"] == {"listed": 2, "converted": 1}
    assert meta["samples_by_scenario"] == {"log": 2, "reasoning_event": 1}
    assert ABSENT_CLIP_ID not in " ".join(by_id)
    assert 0 < meta["frame_offset_max_ms"] <= 1000 / 30 / 2 + 0.1


def test_each_camera_gives_the_frames_nearest_its_nominal_times(converted):
    _, _, rows = converted
    for row in rows:
        for image, camera, dt in zip(row["images"], row["camera_names"], row["frame_times"],
                                     strict=True):
            stamps = frame_times_us(camera, 12.0)
            index = int(np.argmin(np.abs(stamps - (row["t0"] + dt) * 1e6)))
            level = float(np.median(np.asarray(image.convert("L"))))
            assert abs(level - frame_level(index)) <= 1.5, (row["sample_id"], camera, dt)


def test_future_and_history_follow_the_egomotion(converted):
    _, _, rows = converted
    for row in rows:
        t0 = row["t0"]
        x0, y0, yaw0, _, _ = ego_state(t0)
        c, s = np.cos(yaw0), np.sin(yaw0)
        future = np.asarray(row["future"])
        for step in range(5, 61, 5):  # every 0.5 s
            x, y, yaw, _, _ = ego_state(t0 + step / 10)
            dx, dy = x - x0, y - y0
            expected = np.array([c * dx + s * dy, -s * dx + c * dy])
            assert np.linalg.norm(future[step - 1, :2] - expected) <= 0.05, (row["sample_id"],
                                                                             step)
            assert abs(future[step - 1, 2] - (yaw - yaw0)) <= 0.01
        history = np.asarray(row["history"])
        assert history.shape == (21, 4) and np.allclose(history[-1, :3], 0.0)
        x, y, _, _, _ = ego_state(t0 - 2.0)
        dx, dy = x - x0, y - y0
        assert np.allclose(history[0, :2], [c * dx + s * dy, -s * dx + c * dy], atol=0.05)
        assert np.allclose(history[:, 3], SPEED, atol=1e-3)
        assert row["ego_speed"] == pytest.approx(SPEED, abs=1e-3)


def test_event_start_frame_and_cot_are_read_without_features_csv(tmp_path):
    meta, _, rows = convert(tmp_path, event_style="frame_cot", features_csv=False)
    events = [row for row in rows if row["scenario"] == "reasoning_event"]
    assert len(events) == 1 and events[0]["reasoning"] == EVENT_TEXT
    stamps = frame_times_us(CAMERAS[0], 12.0)
    frame_t0 = stamps[np.argmin(np.abs(stamps - 3.0e6))] * 1e-6  # the front wide frame at 3 s
    assert events[0]["t0"] == pytest.approx(frame_t0, abs=0.006)
    assert events[0]["sample_id"] == f"{CLIP_ID}-{int(round(frame_t0 * 1000))}"
    assert meta["samples_by_scenario"]["reasoning_event"] == 1


def test_a_truncated_video_skips_its_clip_and_names_the_file(tmp_path):
    bad = "5c9e0d1a-2b3c-4d5e-9f60-7a8b9c0d1e2f"
    clips = [FixtureClip(), FixtureClip(clip_id=bad, truncated=("camera_front_tele_30fov",))]
    meta, _, rows = convert(tmp_path, clips)
    assert meta["skipped"]["clip: unreadable video"] == 1
    assert meta["clips"] == {"listed": 3, "converted": 1}
    assert {row["sample_id"].rsplit("-", 1)[0] for row in rows} == {CLIP_ID}
    (named,) = meta["unreadable_videos"]
    assert f"{bad}.camera_front_tele_30fov.mp4" in named


def test_short_clips_and_clips_lacking_a_camera_are_skipped_and_counted(tmp_path):
    clips = [FixtureClip(),
             FixtureClip(clip_id="short-clip", duration_s=2.5),
             FixtureClip(clip_id="no-tele", missing=("camera_front_tele_30fov",))]
    meta, _, rows = convert(tmp_path, clips)
    assert meta["skipped"]["clip: shorter than 5.0 s (2.0 s of history + 3.0 s of future)"] == 1
    assert meta["skipped"]["clip: lacks camera_front_tele_30fov"] == 1
    assert {row["episode_id"] for row in rows} == {0}


def test_a_missing_clip_index_is_an_error_naming_it_and_writes_nothing(tmp_path):
    root = write_physicalai_av(tmp_path / "src", clip_index=False)
    with pytest.raises(FileNotFoundError, match="clip_index.parquet"):
        convert_physicalai_av(PhysicalAIConfig(root, tmp_path / "out"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_a_damaged_egomotion_chunk_is_an_error_naming_it(tmp_path):
    root = write_physicalai_av(tmp_path / "src")
    chunk = root / "labels/egomotion/egomotion.chunk_0000.zip"
    chunk.write_bytes(chunk.read_bytes()[:100])
    with pytest.raises(ValueError, match="egomotion.chunk_0000.zip: not a readable zip"):
        convert_physicalai_av(PhysicalAIConfig(root, tmp_path / "out"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_an_unknown_camera_is_an_error_naming_it(tmp_path):
    root = write_physicalai_av(tmp_path / "src")
    with pytest.raises(FileNotFoundError, match="camera_rear_tele_30fov"):
        convert_physicalai_av(PhysicalAIConfig(root, tmp_path / "out",
                                               cameras=("camera_rear_tele_30fov",)))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("bad, match", [
    ({"cameras": ()}, "at least one camera"),
    ({"cameras": "camera_front_wide_120fov"}, "sequence of camera names"),
    ({"cameras": ("front_wide",)}, "not a PhysicalAI-AV camera"),
    ({"image_width": 100}, "image_width"),
    ({"grid_s": 0.0}, "grid_s"),
])
def test_config_refuses_bad_values(tmp_path, bad, match):
    with pytest.raises(ValueError, match=match):
        PhysicalAIConfig(tmp_path, tmp_path / "out", **bad)
