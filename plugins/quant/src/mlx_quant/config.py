"""The quant plugin's config and its cross-cutting options. Pure pydantic: no torch here."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from mlx_core import Section
from mlx_torch.config import EngineTrainConfig, Schedule

from .gates import GateConfig, GateFields

Dtype = Literal["float32", "bfloat16", "float16"]
Scheme = Literal["none", "int8_weight_only", "int8_dynamic", "int8_static"]
PTQ_SCHEMES: tuple[str, ...] = ("int8_weight_only", "int8_dynamic", "int8_static")


class SourceConfig(Section):
    run: str | None = Field(
        None,
        description="a finished run of another plugin (runs/<plugin>/<run>) whose torch model to quantize "
        "post-training; none: the bitsandbytes language-model path",
    )
    schemes: list[Literal["int8_weight_only", "int8_dynamic", "int8_static"]] = Field(
        default_factory=lambda: list(PTQ_SCHEMES),
        min_length=1,
        description="post-training schemes applied to the source run's model (torchao int8 weight-only, torchao "
        "int8 dynamic-activation, PT2E static int8 with XNNPACKQuantizer lowered to ExecuTorch)",
    )
    calibration_batches: int = Field(
        8, ge=1, le=10_000, description="examples from the source data used to calibrate int8_static"
    )
    eval_examples: int = Field(
        8, ge=1, le=10_000, description="examples from the source data used to measure the quality delta"
    )


class DataConfig(Section):
    path: str | None = Field(
        None,
        description="a local .txt (one document per line) or .jsonl file (one object per line with a text field); "
        "none: generate a small English-like corpus in the run (written as .txt, read back by the same reader)",
    )
    text_field: str = Field("text", min_length=1, description="the field holding the text in a .jsonl file")
    eval_fraction: float = Field(0.25, gt=0, lt=1, description="share of the documents held out for perplexity")
    documents: int = Field(160, ge=8, le=1_000_000, description="generated corpus: number of documents (lines)")
    seq_len: int = Field(64, ge=8, le=4096, description="tokens per evaluation / training window")
    max_eval_windows: int = Field(16, ge=1, le=100_000, description="most evaluation windows scored for perplexity")


class ModelConfig(Section):
    path: str | None = Field(
        None,
        description="a local Hugging Face model folder (config.json + weights); none: create and save a small "
        "randomly initialised OPT-style causal LM inside the run (untrained, no download)",
    )
    trust_remote_code: bool = Field(
        False,
        description="let transformers run Python code shipped in model.path (auto_map); off: such a folder is refused",
    )
    load_in_8bit: bool = Field(True, description="bitsandbytes LLM.int8(): Linear layers in int8 (set false for 4-bit)")
    load_in_4bit: bool = Field(
        False, description="bitsandbytes 4-bit Linear layers (nf4 or fp4); needs load_in_8bit=false"
    )
    llm_int8_threshold: float = Field(
        6.0, ge=0, description="LLM.int8() outlier threshold: activations above it stay in fp16"
    )
    llm_int8_skip_modules: list[str] = Field(
        default_factory=list, description="module names (or suffixes, e.g. lm_head, fc2) left unquantized"
    )
    llm_int8_enable_fp32_cpu_offload: bool = Field(
        False, description="keep the modules named in cpu_fp32_modules on the CPU in float32 (custom device_map)"
    )
    cpu_fp32_modules: list[str] = Field(
        default_factory=list,
        description="modules mapped to 'cpu' in the custom device_map, kept unquantized in float32 "
        "(needs llm_int8_enable_fp32_cpu_offload=true), e.g. model.decoder.layers.1",
    )
    bnb_4bit_quant_type: Literal["nf4", "fp4"] = Field("nf4", description="4-bit data type: normal-float 4 or float 4")
    bnb_4bit_use_double_quant: bool = Field(False, description="also quantize the 4-bit quantization constants")
    bnb_4bit_compute_dtype: Dtype = Field("float32", description="dtype of the 4-bit matmuls")
    torch_dtype: Dtype = Field("float32", description="dtype of the modules that stay unquantized")
    hidden_size: int = Field(64, ge=8, le=4096, description="generated model: hidden size")
    layers: int = Field(2, ge=1, le=48, description="generated model: decoder layers")
    heads: int = Field(4, ge=1, le=64, description="generated model: attention heads (must divide hidden_size)")
    ffn_dim: int = Field(256, ge=8, le=16384, description="generated model: feed-forward width")


class TrainConfig(EngineTrainConfig):
    """LoRA on the shared engine (mlx_torch.fit): precision, early stopping, schedules and
    checkpoints are the engine's keys (docs/engine.md); these are quant's own."""

    epochs: int = Field(
        1, ge=0, le=100_000,
        description="LoRA passes over the training windows on the frozen quantized model, a checkpoint after each "
        "(0: no fine-tuning)",
    )  # fmt: skip
    batch_size: int = Field(4, ge=1, le=1024, description="windows per step (the global batch, split over processes)")
    lr: float = Field(5e-3, gt=0, le=1, description="AdamW learning rate of the adapters")
    lr_schedule: Schedule = Field(
        "constant", description="constant (the AdamW rate throughout), or the engine's poly / cosine decay to 0"
    )
    lora_r: int = Field(4, ge=1, le=256, description="LoRA rank")
    lora_alpha: int = Field(8, ge=1, le=1024, description="LoRA scaling alpha")
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "v_proj"], min_length=1, description="module names that get LoRA adapters"
    )
    # the step loop moved to the engine, which counts epochs: the old keys stay only to say so
    steps: int | None = Field(None, description="removed: use train.epochs (passes over the training windows)")
    checkpoint_every: int | None = Field(None, description="removed: a checkpoint is written after every epoch")

    @field_validator("steps", "checkpoint_every")
    @classmethod
    def _removed(cls, v: object, info: ValidationInfo) -> object:
        if v is None:
            return v
        raise ValueError(
            f"train.{info.field_name} was removed: LoRA runs on the shared engine, which counts "
            "epochs over the training windows and checkpoints after each one; use train.epochs "
            "(train.epochs=0: no fine-tuning)"
        )


class ExportConfig(Section):
    max_abs_diff: float = Field(
        1e-4, ge=0, description="parity: largest allowed |reloaded - in-memory| logit difference"
    )
    max_abs_diff_4bit: float = Field(
        1e-2,
        ge=0,
        description="parity for 4-bit models: bitsandbytes' CPU kernels repack the 4-bit scales to bfloat16 "
        "at the first forward pass, so the in-memory and the reloaded model differ at bfloat16 precision",
    )
    latency_repeats: int = Field(
        5, ge=1, le=1000, description="timed forward passes per model; the latency figure is the best of them"
    )


class PredictConfig(Section):
    mode: Literal["generate", "perplexity", "both"] = Field(
        "generate",
        description="mlx predict / mlx serve default: greedy continuation of each text, its perplexity under the "
        "quantized model, or both",
    )
    max_new_tokens: int = Field(32, ge=1, le=4096, description="tokens generated per text (greedy)")


class QuantConfig(Section):
    seed: int = Field(0, ge=0, lt=2**63, description="seed for the generated corpus, the generated model and LoRA init")
    source: SourceConfig = Field(default_factory=SourceConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    gate: GateConfig = Field(default_factory=GateConfig)
    predict: PredictConfig = Field(default_factory=PredictConfig)


def check_model_flags(cfg: ModelConfig) -> None:
    """Contradictions between model settings, refused before any stage does work."""
    from mlx_core import ConfigError

    if cfg.load_in_8bit and cfg.load_in_4bit:
        raise ConfigError(
            "model.load_in_8bit and model.load_in_4bit are both true: choose one "
            "(for 4-bit set model.load_in_8bit=false model.load_in_4bit=true)"
        )
    if cfg.cpu_fp32_modules and not cfg.llm_int8_enable_fp32_cpu_offload:
        raise ConfigError("model.cpu_fp32_modules needs model.llm_int8_enable_fp32_cpu_offload=true")
    if cfg.llm_int8_enable_fp32_cpu_offload and not cfg.cpu_fp32_modules:
        raise ConfigError(
            "model.llm_int8_enable_fp32_cpu_offload=true needs model.cpu_fp32_modules (the modules kept on the CPU)"
        )


def check_model_path(cfg: ModelConfig) -> None:
    """A wrong model folder fails before any stage does work (no heavy import needed for that)."""
    if cfg.path is None:
        return
    from pathlib import Path

    from mlx_core import DataError

    folder = Path(cfg.path).expanduser()
    if not folder.is_dir():
        raise DataError(f"model.path {folder} is not a directory (expected a Hugging Face model folder)")
    if not (folder / "config.json").is_file():
        raise DataError(f"model.path {folder} is not a transformers model folder: it has no config.json")


class QuantOptions(GateFields):
    """What a user gives quant when it wraps another plugin's export (``--set quant.scheme=int8_static``)."""

    scheme: Scheme = Field("none", description="post-training quantization added to the export (none: off)")
    calibration_batches: int = Field(8, ge=1, le=10_000, description="calibration examples for int8_static")
    eval_examples: int = Field(4, ge=1, le=10_000, description="examples used to measure the quality delta")
