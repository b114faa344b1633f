"""Echo decoder: a causal LM as a SPLADE-style sparse encoder (Mistral-SPLADE).

A causal LM's token at position t sees only positions <= t, so the hidden
state of an early word knows nothing of what follows. Echo input repeats
the text ("Passage: x\\nPassage again: x") and pools only over the second
copy, whose tokens have seen the whole text once. The LM head (the model's
own vocabulary projection) gives logits over the LM's vocabulary; the term
weight of token v is ``log1p(relu(max over second-copy positions of logit_v + b_v))``
(max pooling; the activation is monotonic, so it is applied once after the
max). Top-k pruning is a separate module (``FocusingWindow``).

``b`` (``term_bias``) is one learned offset per vocabulary entry, zero when
the encoder is built, so an untrained encoder is the plain LM head. A
language model's head scores *likely next tokens*: function words and
punctuation get the largest logits after almost any text, and they fill
every vector's top-k. BERT's MLM head has such a per-token bias; SmolLM2's
has none. A bias lets training push generic tokens below zero in a few
steps (the document FLOPS regulariser pulls hardest on exactly those),
without first having to retrain the backbone; it trains at its own
learning rate (recipe key ``model.term_bias_lr``), and alone when the
backbone is frozen (``model.freeze_backbone``: forward passes only).

The module saves the backbone with ``save_pretrained`` in its own folder
(sentence-transformers format: listed in ``modules.json``), so a trained
encoder loads with ``SparseEncoder(path)`` and with ``lsr index --model path``.
"""
from __future__ import annotations

import json
import os

import torch
from sentence_transformers.base.modules.input_module import InputModule

QUERY_TEMPLATE = ("Query: ", "\nQuery again: ", "")
DOCUMENT_TEMPLATE = ("Passage: ", "\nPassage again: ", "")


class EchoDecoder(InputModule):
    """Causal LM + echo input + LM-head max pooling -> (batch, vocab) term weights.

    ``query_template`` / ``document_template`` are (prefix, middle, suffix):
    the input is ``prefix + text + middle + text + suffix``. ``max_seq_length``
    bounds the tokens of *one* copy of the text. ``autocast`` runs the
    backbone in bfloat16 (about 2x faster on CPUs with AVX512-BF16; weights
    stay float32, so training is unaffected in kind).
    """

    config_file_name = "lsr_echo_decoder.json"
    bias_file_name = "term_bias.safetensors"
    config_keys = ["max_seq_length", "query_template", "document_template", "autocast"]
    save_in_root = False
    forward_kwargs = {"task"}

    def __init__(self, model_name_or_path: str, max_seq_length: int = 128,
                 query_template=QUERY_TEMPLATE, document_template=DOCUMENT_TEMPLATE,
                 autocast: bool = True, auto_model=None, tokenizer=None, dtype=torch.float32):
        super().__init__()
        from transformers import AutoModelForCausalLM, AutoTokenizer
        self.auto_model = auto_model or AutoModelForCausalLM.from_pretrained(model_name_or_path, dtype=dtype)
        self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(model_name_or_path)
        self.max_seq_length = int(max_seq_length)
        self.query_template = list(query_template)
        self.document_template = list(document_template)
        self.autocast = bool(autocast)
        self._template_ids = {}
        for side, parts in (("query", self.query_template), ("document", self.document_template)):
            if len(parts) != 3:
                raise ValueError(f"{side}_template must be (prefix, middle, suffix), got {parts!r}")
            self._template_ids[side] = [self._ids(p) for p in parts]
        head = self.auto_model.get_output_embeddings()
        if head is None:
            raise ValueError(f"{model_name_or_path}: the model has no LM head (output embeddings)")
        self.vocab_size = head.weight.shape[0]
        if len(self.tokenizer) > self.vocab_size:
            raise ValueError(f"{model_name_or_path}: tokenizer has {len(self.tokenizer)} tokens, "
                             f"LM head only {self.vocab_size}")
        self.term_bias = torch.nn.Parameter(torch.zeros(self.vocab_size))

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    # ------------------------------------------------------------ preprocess
    def preprocess(self, inputs, prompt: str | None = None, task: str | None = None, max_length=None, **kwargs):
        """Token ids of the echoed texts, plus ``pool_mask`` marking the second copy."""
        texts = [prompt + t if prompt else t for t in inputs]
        side = "query" if task == "query" else "document"
        prefix, middle, suffix = self._template_ids[side]
        limit = int(max_length or self.max_seq_length)
        bodies = self.tokenizer(texts, add_special_tokens=False, truncation=True, max_length=limit)["input_ids"]
        rows, pools = [], []
        for body in bodies:
            rows.append(prefix + body + middle + body + suffix)
            start = len(prefix) + len(body) + len(middle)
            pools.append((start, start + len(body)))
        width = max(1, max(len(r) for r in rows))
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        pool = torch.zeros((len(rows), width), dtype=torch.bool)
        for i, (row, (a, b)) in enumerate(zip(rows, pools)):
            ids[i, :len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, :len(row)] = 1
            pool[i, a:b] = True
        return {"input_ids": ids, "attention_mask": mask, "pool_mask": pool, "task": side}

    # --------------------------------------------------------------- forward
    def forward(self, features: dict, task: str | None = None, **kwargs) -> dict:
        ids, mask, pool = features["input_ids"], features["attention_mask"], features["pool_mask"]
        body = self.auto_model.get_decoder()
        head = self.auto_model.get_output_embeddings()
        use_autocast = self.autocast and ids.device.type in ("cpu", "cuda")
        with torch.autocast(ids.device.type, dtype=torch.bfloat16, enabled=use_autocast):
            hidden = body(input_ids=ids, attention_mask=mask).last_hidden_state
            rows = []
            for i in range(ids.shape[0]):
                h = hidden[i][pool[i]]  # second copy only
                if h.shape[0] == 0:  # empty text: nothing to weight (-inf stays 0 whatever the bias)
                    rows.append(torch.full((self.vocab_size,), float("-inf"), device=ids.device))
                    continue
                rows.append(head(h).float().amax(0))
        logits = torch.stack(rows) + self.term_bias
        features["token_embeddings"] = hidden.float()
        features["sentence_embedding"] = torch.log1p(torch.relu(logits))
        features["task"] = task or features.get("task")
        return features

    def add_lora(self, r: int = 16, alpha: int = 32, dropout: float = 0.05,
                 target_modules=("q_proj", "k_proj", "v_proj", "o_proj")) -> None:
        """Train low-rank adapters instead of the whole backbone (needs ``peft``).

        The LM head stays frozen too: it is tied to the input embeddings in
        SmolLM2, and the vocabulary projection is what the sparse space means.
        """
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError:
            raise ImportError("LoRA training needs peft: pip install peft") from None
        config = LoraConfig(r=int(r), lora_alpha=int(alpha), lora_dropout=float(dropout),
                            target_modules=list(target_modules), bias="none")
        self.auto_model = get_peft_model(self.auto_model, config)

    def freeze_backbone(self) -> None:
        """Train only ``term_bias``: the LM (body and head) gets no gradients."""
        for p in self.auto_model.parameters():
            p.requires_grad_(False)

    def get_sentence_embedding_dimension(self) -> int:
        return self.vocab_size

    @property
    def hidden_size(self) -> int:
        return self.auto_model.config.hidden_size

    # ------------------------------------------------------------ save / load
    def save(self, output_path: str, *args, safe_serialization: bool = True, **kwargs) -> None:
        os.makedirs(output_path, exist_ok=True)
        model = self.auto_model
        if hasattr(model, "merge_and_unload"):
            # A LoRA-wrapped backbone is saved merged (a plain model folder); merging a
            # copy leaves the adapters in place when a checkpoint is saved mid-training.
            import copy
            model = copy.deepcopy(model).merge_and_unload()
        model.save_pretrained(output_path, safe_serialization=safe_serialization)
        self.tokenizer.save_pretrained(output_path)
        from safetensors.torch import save_file
        save_file({"term_bias": self.term_bias.detach().float().cpu().contiguous()},
                  os.path.join(output_path, self.bias_file_name))
        with open(os.path.join(output_path, self.config_file_name), "w") as f:
            json.dump(self.get_config_dict(), f, indent=2)

    @classmethod
    def load(cls, model_name_or_path: str, subfolder: str = "", **kwargs):
        path = os.path.join(model_name_or_path, subfolder)
        with open(os.path.join(path, cls.config_file_name)) as f:
            config = json.load(f)
        module = cls(path, **config)
        bias_path = os.path.join(path, cls.bias_file_name)
        if os.path.exists(bias_path):  # absent in folders saved before the bias existed: zero
            from safetensors.torch import load_file
            bias = load_file(bias_path).get("term_bias")
            if bias is None or bias.shape != module.term_bias.shape:
                raise ValueError(f"{bias_path}: expected a 'term_bias' tensor of shape "
                                 f"({module.vocab_size},), found {None if bias is None else tuple(bias.shape)}")
            if not torch.isfinite(bias).all():
                raise ValueError(f"{bias_path}: term_bias has NaN or infinite entries")
            with torch.no_grad():
                module.term_bias.copy_(bias)
        return module
