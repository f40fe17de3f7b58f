"""``model.weights``: torchmultimodal and Hugging Face FLAVA checkpoints with their real key names.

The checkpoints are the real classes' ``state_dict()`` at a tiny size (transformers' ``FlavaModel`` /
``FlavaForPreTraining`` with a tiny ``FlavaConfig``; torchmultimodal's ``flava_model_for_pretraining``
and ``flava_model_for_classification``), written the way each project ships them."""

from __future__ import annotations

import json
import types

import pytest
import torch
from mlx_multimodal.model import build_model, flava_kwargs, make_classifier
from mlx_multimodal.weights import load_flava_weights

from mlx_core import DataError

from .conftest import stage_ctx

H, LAYERS, IMG, PATCH, VOCAB, LEN = 16, 1, 16, 8, 50, 8


def tiny(num_classes: int = 5):
    torch.manual_seed(0)
    kw = flava_kwargs("reduced", hidden=H, heads=2, image_layers=LAYERS, text_layers=LAYERS, mm_layers=LAYERS,
                      image_size=IMG, patch_size=PATCH, vocab_size=VOCAB, max_length=LEN)  # fmt: skip
    return make_classifier(num_classes, kw).eval()


def hf_config():
    from transformers import FlavaConfig

    enc = {"hidden_size": H, "num_hidden_layers": LAYERS, "num_attention_heads": 2, "intermediate_size": 4 * H}
    return FlavaConfig(
        image_config={**enc, "image_size": IMG, "patch_size": PATCH},
        text_config={**enc, "vocab_size": VOCAB, "max_position_embeddings": LEN},
        multimodal_config=enc,
        image_codebook_config={"hidden_size": 4, "num_groups": 1, "num_blocks_per_group": 1, "vocab_size": 8},
        projection_dim=H,
        hidden_size=H,
    )


def test_hugging_face_flava_safetensors_folder_maps_onto_the_encoders(tmp_path):
    from safetensors.torch import save_file
    from transformers import FlavaModel

    torch.manual_seed(1)
    hf = FlavaModel(hf_config()).eval()
    folder = tmp_path / "flava-full"
    folder.mkdir()
    save_file({k: v.contiguous() for k, v in hf.state_dict().items()}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"architectures": ["FlavaModel"]}))
    model = tiny()
    report = load_flava_weights(model, folder)
    assert report["layout"] == "hf"
    assert report["skipped_pretraining_heads"] == ["logit_scale"]
    assert report["skipped_shape_mismatch"] == [] and report["skipped_unknown"] == []
    # everything but the VQA classifier head (2 linear layers) comes from the file
    assert report["left_random_names"] == [
        f"flava.classifier.model.{i}.{p}" for i in (0, 3) for p in ("bias", "weight")
    ]
    assert report["loaded"] == len(hf.state_dict()) - 1 == len(model.state_dict()) - 4
    # the mapped weights compute what Hugging Face computes
    image, text = torch.randn(2, 3, IMG, IMG), torch.randint(5, VOCAB, (2, LEN))
    with torch.no_grad():
        ours_img = model.flava.model.encode_image(image).last_hidden_state
        ours_txt = model.flava.model.encode_text(text).last_hidden_state
        theirs_img = hf.image_model(pixel_values=image).last_hidden_state
        theirs_txt = hf.text_model(input_ids=text).last_hidden_state
    torch.testing.assert_close(ours_img, theirs_img, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(ours_txt, theirs_txt, atol=1e-5, rtol=1e-4)


def test_hugging_face_pretraining_bin_skips_the_heads(tmp_path):
    from transformers import FlavaForPreTraining

    hf = FlavaForPreTraining(hf_config())
    folder = tmp_path / "hf"
    folder.mkdir()
    torch.save(hf.state_dict(), folder / "pytorch_model.bin")
    report = load_flava_weights(tiny(), folder)
    heads = {k.split(".")[0] for k in report["skipped_pretraining_heads"]}
    assert heads == {"image_codebook", "mim_head", "mlm_head", "itm_head", "mmm_image_head", "mmm_text_head", "flava"}
    assert report["left_random"] == 4 and report["skipped_unknown"] == []


def test_torchmultimodal_checkpoints_pretraining_and_classification(tmp_path):
    from torchmultimodal.models.flava.model import DalleEncoder, DalleVAEEncoder, FLAVAForPreTraining, flava_model
    from torchmultimodal.modules.losses.flava import FLAVAPretrainingLoss

    kw = flava_kwargs("reduced", hidden=H, heads=2, image_layers=LAYERS, text_layers=LAYERS, mm_layers=LAYERS,
                      image_size=IMG, patch_size=PATCH, vocab_size=VOCAB, max_length=LEN)  # fmt: skip
    pre_kw = {k: v for k, v in kw.items() if not k.startswith("classifier_")}
    torch.manual_seed(2)
    # what flava_model_for_pretraining builds, with a tiny DALL-E codebook (its builder downloads one)
    codebook = DalleVAEEncoder(image_size=IMG, pretrained=False)
    codebook.encoder = DalleEncoder(group_count=4, n_hid=8, n_blk_per_group=1, vocab_size=8)
    pre = FLAVAForPreTraining(
        model=flava_model(**pre_kw), image_codebook=codebook, loss=FLAVAPretrainingLoss(hidden_size=H)
    )
    torch.save(pre.state_dict(), tmp_path / "flava_for_pretraining.pt")
    model = tiny()
    report = load_flava_weights(model, tmp_path / "flava_for_pretraining.pt")
    assert report["layout"] == "torchmultimodal"
    assert {k.split(".")[0] for k in report["skipped_pretraining_heads"]} == {"loss", "image_codebook"}
    assert report["left_random"] == 4 and report["skipped_unknown"] == []
    for k, v in pre.model.state_dict().items():
        assert torch.equal(model.state_dict()[f"flava.model.{k}"], v), k
    # a classification checkpoint with another answer count: all but the last classifier layer
    other = tiny(num_classes=7).flava
    torch.save({"state_dict": other.state_dict()}, tmp_path / "cls.pt")
    report = load_flava_weights(tiny(), tmp_path / "cls.pt")
    assert report["skipped_shape_mismatch"] == ["classifier.model.3.bias [7] (model: [5])",
                                                "classifier.model.3.weight [7, 16] (model: [5, 16])"]  # fmt: skip
    assert report["left_random_names"] == ["flava.classifier.model.3.bias", "flava.classifier.model.3.weight"]


def test_mlx_checkpoint_round_trip_and_bad_files(tmp_path):
    model = tiny()
    torch.save({"model": model.state_dict(), "epoch": 3}, tmp_path / "ckpt.pt")
    other = tiny()
    with torch.no_grad():
        for p in other.parameters():
            p.add_(1.0)
    assert load_flava_weights(other, tmp_path / "ckpt.pt")["left_random"] == 0
    for a, b in zip(model.state_dict().values(), other.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match=r"junk.pt: not a torch checkpoint .*; expected a torchmultimodal FLAVA"):
        load_flava_weights(other, tmp_path / "junk.pt")
    torch.save({"conv.weight": torch.zeros(2)}, tmp_path / "resnet.pt")
    with pytest.raises(DataError, match=r"resnet.pt: no FLAVA parameter names \(first key 'conv.weight'\)"):
        load_flava_weights(other, tmp_path / "resnet.pt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty: folder has neither model.safetensors nor pytorch_model.bin"):
        load_flava_weights(other, tmp_path / "empty")
    with pytest.raises(DataError, match="nothere.pt does not exist"):
        load_flava_weights(other, tmp_path / "nothere.pt")


def test_model_stage_records_the_load_report(tmp_path):
    torch.save({"model": tiny().state_dict()}, tmp_path / "ckpt.pt")
    ctx = stage_ctx(tmp_path, model={"hidden_size": H, "image_layers": 1, "text_layers": 1,
                                     "weights": str(tmp_path / "ckpt.pt")})  # fmt: skip
    data = types.SimpleNamespace(answers=list("abcde"), preprocess={"image_size": IMG, "max_length": LEN},
                                 vocab_size=VOCAB, pad_token_id=0)  # fmt: skip
    build_model(ctx, data)
    records = json.loads((tmp_path / "run" / "run.json").read_text())["records"]
    assert records["weights"]["layout"] == "mlx" and records["weights"]["left_random"] == 0
    assert records["weights"]["loaded"] == len(tiny().state_dict())
    assert records["trained"] is True


def test_hugging_face_sharded_folder_and_single_file(tmp_path):
    from safetensors.torch import save_file
    from transformers import FlavaModel

    state = {k: v.contiguous() for k, v in FlavaModel(hf_config()).state_dict().items()}
    keys = sorted(state)
    shards = {"model-00001-of-00002.safetensors": keys[::2], "model-00002-of-00002.safetensors": keys[1::2]}
    folder = tmp_path / "sharded"
    folder.mkdir()
    for name, part in shards.items():
        save_file({k: state[k] for k in part}, str(folder / name))
    index = {"metadata": {}, "weight_map": {k: name for name, part in shards.items() for k in part}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    assert load_flava_weights(tiny(), folder)["loaded"] == len(state) - 1  # all but logit_scale
    save_file(state, str(tmp_path / "flava.safetensors"))
    assert load_flava_weights(tiny(), tmp_path / "flava.safetensors")["loaded"] == len(state) - 1
    (folder / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(DataError, match="model-00002-of-00002.safetensors: missing shard named by"):
        load_flava_weights(tiny(), folder)
