"""A local Hugging Face checkpoint folder as the model (and tokenizer) instead of the random T5."""

from .conftest import ok, run_cli
from .test_bad_input import _tiny_t5_folder


def test_local_checkpoint_folder_is_loaded_with_its_tokenizer(tmp_path):
    folder = tmp_path / "ckpt"
    n = _tiny_t5_folder(folder, vocab_size=160)
    m = ok(run_cli("model", tmp_path / "runs", f"model.path={folder}"))
    model = m.data["records"]["model"]
    assert model["source"] == "pretrained" and model["path"] == str(folder.resolve())
    assert model["class"] == "T5ForConditionalGeneration"
    assert m.data["records"]["trained"] is True  # a checkpoint counts as trained; no random-init note
    assert not any("randomly initialised" in note for note in m.data["notes"])
    assert not (m.run_dir / "data" / "tokenizer").exists()  # the folder's own tokenizer, none trained here
    assert m.data["records"]["tokenizer"] == {"kind": "from model.path", "class": "T5Tokenizer", "vocab": n}
    assert m.data["metrics"]["records"] == 120
