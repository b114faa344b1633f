"""Save / load for lsr's small weighted modules: a JSON config plus safetensors weights."""
from __future__ import annotations


class ConfigAndWeights:
    """Mixed into a sentence-transformers ``Module`` whose ``__init__`` takes its ``config_keys``."""

    def save(self, output_path: str, *args, safe_serialization: bool = True, **kwargs) -> None:
        self.save_config(output_path)
        self.save_torch_weights(output_path, safe_serialization=safe_serialization)

    @classmethod
    def load(cls, model_name_or_path: str, subfolder: str = "", **kwargs):
        config = cls.load_config(model_name_or_path, subfolder=subfolder)
        module = cls(**config)
        cls.load_torch_weights(model_name_or_path, subfolder=subfolder, model=module)
        return module
