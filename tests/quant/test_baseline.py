"""int8_static's fp32 baseline is the network quant quantized: the domain plugin's own fp32 .pte
is reused only when the plugin exported that same network (segmentation's padding-tap rewrite
exports a different one, whose size and speed would make the ratios meaningless)."""

from __future__ import annotations

from types import SimpleNamespace

from mlx_quant.ptq import domain_fp32_pte


def _ctx(tmp_path, records):
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "model.pte").write_bytes(b"pte")
    manifest = SimpleNamespace(
        data={"records": records},
        artifacts=lambda kind: [{"path": "export/model.pte", "format": "executorch"}] if kind == "model" else [],
    )
    return SimpleNamespace(manifest=manifest, run_dir=tmp_path)


def test_the_plugins_pte_is_the_baseline_when_it_exported_the_same_network(tmp_path):
    assert domain_fp32_pte(_ctx(tmp_path, {})) == tmp_path / "export" / "model.pte"


def test_a_rewritten_export_is_not_the_baseline(tmp_path):
    rewrites = [{"module": "classifier.0.convs.3.0", "kind": "center_tap"}]
    assert domain_fp32_pte(_ctx(tmp_path, {"padding_tap_rewrites": rewrites})) is None
