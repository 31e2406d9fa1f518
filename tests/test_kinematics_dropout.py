"""Kinematics dropout: training samples shown without the ego's own motion, explained from the
cameras alone."""

import pytest

from vla.data.build import load_dataset_dir
from vla.model.collator import IGNORE, SPANS, Collator
from vla.model.loading import load_model_dir
from vla.model.prompting import HIDDEN, chat_prompt, hide_kinematics
from vla.training.config import RunConfig


@pytest.fixture(scope="module")
def loaded_and_samples(tiny_model_dir, small_data_dir):
    dataset, _ = load_dataset_dir(small_data_dir)
    return load_model_dir(tiny_model_dir), [dataset["train"][i] for i in range(8)]


def test_a_hidden_sample_prompt_quotes_no_motion(loaded_and_samples):
    loaded, samples = loaded_and_samples
    sample = samples[0]
    images = [im.convert("RGB") for im in sample["images"]]
    shown = chat_prompt(loaded.processor, sample, images)
    hidden = chat_prompt(loaded.processor, hide_kinematics(sample), images)
    speed = f"{sample['ego_speed']:.1f}"
    assert f"Current speed: {speed} m/s" in shown and HIDDEN not in shown
    assert f"Ego history (x forward m, y left m, speed m/s; the last row is now): {HIDDEN}" \
        in hidden
    assert "Current speed: ? m/s, acceleration: ? m/s^2 (not given), yaw rate: ? rad/s." \
        in hidden
    # the cameras and the command stay
    assert hidden.count("<|video_pad|>") == shown.count("<|video_pad|>") > 0
    assert sample["command"].replace("_", " ") in hidden


def test_dropout_hides_a_share_of_samples_and_drops_their_trajectory_loss(loaded_and_samples):
    loaded, samples = loaded_and_samples
    plain = Collator(loaded.processor, loaded.codec)(samples)
    dropped = Collator(loaded.processor, loaded.codec, kinematics_dropout=0.5, seed=3)(samples)
    hidden_rows = []
    for row in range(len(samples)):
        text = loaded.tokenizer.decode(dropped["input_ids"][row])
        is_hidden = HIDDEN in text
        hidden_rows.append(is_hidden)
        traj = plain["span_ids"][row] == SPANS["trajectory"]
        reasoning = plain["span_ids"][row] == SPANS["reasoning"]
        assert traj.sum() > 0
        if is_hidden:  # no trajectory loss; the reasoning and the meta-action keep theirs
            learned = int((dropped["labels"][row] != IGNORE).sum())
            assert learned == int((plain["labels"][row] != IGNORE).sum()) - int(traj.sum())
            assert int((dropped["span_ids"][row] == SPANS["trajectory"]).sum()) == 0
            assert int((dropped["span_ids"][row] == SPANS["reasoning"]).sum()) \
                == int(reasoning.sum())
        else:  # the same tokens and labels (the batches may pad to different widths)
            mask_d = dropped["attention_mask"][row].bool()
            mask_p = plain["attention_mask"][row].bool()
            assert dropped["labels"][row][mask_d].tolist() == plain["labels"][row][mask_p].tolist()
    assert 0 < sum(hidden_rows) < len(samples)  # seed 3 hides some, not all, of 8
    again = Collator(loaded.processor, loaded.codec, kinematics_dropout=0.5, seed=3)(samples)
    assert again["labels"].tolist() == dropped["labels"].tolist()  # the draw is seeded


def test_dropout_out_of_range_is_refused(tmp_path):
    with pytest.raises(ValueError, match="kinematics_dropout must be in"):
        Collator(None, None, kinematics_dropout=1.0)
    with pytest.raises(ValueError, match="kinematics_dropout must be in"):
        RunConfig(stage="sft", model=str(tmp_path), data=str(tmp_path), out=str(tmp_path),
                    kinematics_dropout=-0.1)
