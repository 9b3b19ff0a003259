"""APA, Adapter Partition and Aggregation (Hu et al., "Exact and Efficient Unlearning for Large Language
Model-based Recommendation", arXiv 2404.10327, TKDE 2025): one frozen LLM and one LoRA adapter per user shard.

No reference code is public; this follows the paper's description, and says where it chooses:

- **Partition** (`train.apa.grouping`): users, a whole history each, into `train.shards` disjoint shards; holdout
  users reach none. `kmeans` is APA's semantic partition: balanced k-means (`partition.balanced_kmeans`, capacity
  ⌈n/S⌉) on each user's mean base-model representation of their training prompts; `random` is SISA's.
  The partition is fixed at training time: after unlearning, a k-means partition is the one computed while the
  forgotten users were present (as in SISA, RecEraser and APA), so the exact claim is "equal to training the
  same shards without them"; `random` depends on the user list and seed only.
- **Adapters**: shard k's adapter is `llm.train` with `model.finetune=lora`, `model.lora.merge=false`, the shard's
  users only (`train.only_users`), the recipe's seed: so retraining it on the same users gives the same bytes.
- **Aggregation** at scoring (`train.apa.aggregation`, kept in apa.json; `ApaEnsemble.load(aggregation=...)`
  overrides it). With ΔW_k = s·B_k A_k adapter k's weight update of a layer:
  - `adaptive` (APA's sample-adaptive, parameter-level aggregation): sample x is scored with W + Σ_k w_k(x) ΔW_k,
    w(x) = softmax_k(cos(h(x), c_k) / temperature), h(x) the frozen base's last hidden state at the answer position
    and c_k the mean of the unit-normalised h over shard k's training samples. The paper weights adapters by the
    test sample's similarity to the shards; its exact similarity and temperature are not public: cosine to the
    shard centroid and temperature 0.05 are ours. Cost: one base forward for h(x), then one forward with every
    adapter active and each low-rank term scaled per sample (`weighted_adapters`), the same as merging per sample.
  - `merge`: W + (1/S) Σ_k ΔW_k for every sample, built once by peft's `add_weighted_adapter(combination_type="cat")`
    (exact: rank S·r); one forward.
  - `mean`: mean of the S adapters' P(yes) (output level, as SISA); S forwards.
- **Base**: `model.name_or_path` when it names a model (pretrained; copied in unchanged), else (`tiny`) a tiny
  Llama whose tokenizer and causal-LM pretraining (`train.apa.base_epochs`) use a user-free corpus: prompts built
  from the item catalogue alone, random histories, stars and answers (`catalogue_corpus`). No user of the data
  shapes the base, so no request can reach it. (A tiny Llama from a random init is not "pretrained": with it a
  LoRA adapter reached valid AUC 0.656 where full fine-tuning reached 0.749, demo data, one epoch.)

Layout of model/: `apa.json` (base, aggregation, shards: adapter path, users, sha256, centroid), `base/` (the
frozen HF model + tokenizer), `adapters/adapter-<k>/` (peft adapters), the tokenizer and llmrec_model.json.
Everything is inside model/, so its `directory_hash` covers the whole ensemble.
"""

from __future__ import annotations

import json
import shutil
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

from llmrec.config import Recipe, to_dict, to_yaml
from llmrec.data.prompts import render_prompt
from llmrec.data.samples import load_interactions, prepare_splits, training_split
from llmrec.data.tokenize import AnswerCollator, tokenize
from llmrec.ensemble.partition import balanced_kmeans, shard_users
from llmrec.errors import ConfigError, LlmrecError
from llmrec.io import atomic_dir, write_json, write_text
from llmrec.llm import train as single
from llmrec.llm.backbone import (
    AnswerTokens,
    build_tiny_backbone,
    is_encoder_decoder,
    load_model,
    load_tokenizer,
)
from llmrec.llm.scoring import answer_logits, make_loader
from llmrec.progress import progress
from llmrec.store import APA_FILE, directory_hash, read_model_card, verified_hash, write_model_card

LINEAR_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


# ---- pure maths -------------------------------------------------------------------------------------------------

def adaptive_weights(hidden: torch.Tensor, centroids: torch.Tensor, temperature: float) -> torch.Tensor:
    """APA's per-sample adapter weights: softmax over shards of cos(h, c_k) / temperature.

    hidden: [batch, dim] base representations; centroids: [shards, dim]; returns [batch, shards], rows sum to 1."""
    similarity = F.normalize(hidden.float(), dim=-1) @ F.normalize(centroids.float(), dim=-1).T
    return (similarity / temperature).softmax(-1)


def centroid(vectors: torch.Tensor) -> torch.Tensor:
    """[dim] mean of the unit-normalised rows of vectors [n, dim]: a shard's place among the representations."""
    return F.normalize(vectors.float(), dim=-1).mean(0)


# ---- the base and its representations -------------------------------------------------------------------------

def catalogue_corpus(recipe: Recipe, prompts_per_item: int) -> list[str]:
    """Prompts that no user wrote: each catalogue item (the items file, whether rated or not) is the target of
    `prompts_per_item` prompts with a random history of other catalogue items, random stars and a random answer,
    drawn from a generator seeded by `model.tiny.seed`. They teach a base the prompt's form and the titles, and
    nothing about any user."""
    interactions, _ = load_interactions(recipe.data)
    titles = [str(t) for t in interactions.items["title"].tolist()]
    generator = torch.Generator().manual_seed(recipe.model.tiny.seed)
    corpus = []
    for _ in range(prompts_per_item):
        for title in titles:
            picks = torch.randint(len(titles), (recipe.data.history_len,), generator=generator).tolist()
            stars = (torch.randint(1, 6, (len(picks),), generator=generator)).tolist()
            answer = recipe.prompt.yes if torch.rand((), generator=generator) < 0.5 else recipe.prompt.no
            sample = {"age": "", "gender": "", "occupation": "", "target_title": title,
                      "history_titles": [titles[i] for i in picks], "history_ratings": [float(s) for s in stars]}
            corpus.append(render_prompt(sample, recipe.prompt) + " " + answer)
    return corpus


def pretrain_base(model, tokenizer, corpus: list[str], epochs: int, learning_rate: float, batch_size: int,
                  seed: int, max_length: int) -> float:
    """Causal-LM pretraining of a freshly built base on `corpus` (next-token cross-entropy over every token, nats);
    returns the last epoch's mean loss. Seeded: the same corpus and seed give the same weights."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    model.train()
    loss_sum, batches = 0.0, 0
    for epoch in range(epochs):
        order = torch.randperm(len(corpus), generator=generator).tolist()
        loss_sum, batches = 0.0, 0
        for start in progress(range(0, len(order), batch_size), desc=f"base pretraining {epoch + 1}/{epochs}"):
            texts = [corpus[i] for i in order[start:start + batch_size]]
            batch = tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=max_length)
            labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
            position_ids = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)
            loss = model(**batch, position_ids=position_ids, labels=labels, use_cache=False).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            loss_sum, batches = loss_sum + loss.item(), batches + 1
    model.eval()
    return loss_sum / max(batches, 1)


def build_base(recipe: Recipe, target: Path) -> dict:
    """The frozen base in `target`: the named model copied in, or for `tiny` one built and pretrained on
    `catalogue_corpus`. Returns what was done (for train_metrics.json). Raises ConfigError for an
    encoder-decoder: APA's representation is a decoder's answer-position hidden state."""
    name, settings = recipe.model.name_or_path, recipe.train.apa
    if name != "tiny":
        model = load_model(name)
        if is_encoder_decoder(model):
            raise ConfigError("train.partition=apa needs a decoder-only model (its representation is the answer "
                              f"position's hidden state); {name} is an encoder-decoder")
        with atomic_dir(target) as tmp:
            model.save_pretrained(tmp, safe_serialization=True)
            load_tokenizer(name).save_pretrained(tmp)
        return {"base": name, "pretrained_here": False}
    if recipe.model.tiny.architecture != "llama":
        raise ConfigError("train.partition=apa needs a decoder-only model: model.tiny.architecture=llama")
    corpus = catalogue_corpus(recipe, settings.base_prompts_per_item)
    build_tiny_backbone(corpus, recipe.model.tiny, recipe.model.max_length, target)
    model, tokenizer = load_model(str(target)), load_tokenizer(str(target))
    tokenizer.padding_side = "right"  # causal-LM pretraining: every row starts at position 0
    loss = pretrain_base(model, tokenizer, corpus, settings.base_epochs, settings.base_learning_rate,
                         recipe.train.batch_size, recipe.model.tiny.seed, recipe.model.max_length)
    with atomic_dir(target) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        load_tokenizer(str(target)).save_pretrained(tmp)
    return {"base": "tiny", "pretrained_here": True, "corpus_prompts": len(corpus),
            "pretraining_loss_nats": loss}


def answer_hidden(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """[batch, dim] last-layer hidden state at the answer position (prompts are left-padded: the last one)."""
    position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                output_hidden_states=True, logits_to_keep=1, use_cache=False)
    return out.hidden_states[-1][:, -1, :].float()


@torch.no_grad()
def representations(model, tokenizer, dataset, recipe: Recipe, desc: str = "representations") -> torch.Tensor:
    """[len(dataset), dim] `answer_hidden` of every sample of a 🤗 split, in its order, by the base alone."""
    model.eval()
    tokenized = tokenize(dataset, tokenizer, recipe.prompt, recipe.model.max_length)
    loader = make_loader(tokenized, AnswerCollator(tokenizer), recipe.eval.batch_size)
    return torch.cat([answer_hidden(model, b["input_ids"], b["attention_mask"]) for b in progress(loader, desc=desc)])


def user_groups(users: list[str], rows: dict[str, list[int]], vectors: torch.Tensor, recipe: Recipe) -> list[list[str]]:
    """The shards' users, each sorted: seeded random (`shard_users`, which also bounds train.shards), or balanced
    k-means on each user's centroid of their samples' representations (vectors: [samples, dim]; rows: each user's
    row numbers in it). The caller has checked train.shards with `shard_users` before building the base."""
    shards, settings = recipe.train.shards, recipe.train.apa
    if settings.grouping == "random":
        return shard_users(users, shards, recipe.train.seed)
    points = torch.stack([centroid(vectors[rows[user]]) for user in users])
    assignment = balanced_kmeans(points, shards, settings.kmeans_iterations, recipe.train.seed).tolist()
    return [sorted(u for u, k in zip(users, assignment) if k == shard) for shard in range(shards)]


def shard_centroid(model, tokenizer, recipe: Recipe, splits, users: list[str]) -> list[float]:
    """Centroid of the base representations of `users`' training samples (what adaptive aggregation compares to)."""
    wanted = set(users)
    train = training_split(splits, recipe.train.train_on)
    subset = train.select([i for i, u in enumerate(train["user_id"]) if u in wanted])
    return centroid(representations(model, tokenizer, subset, recipe, desc="shard centroid")).tolist()


# ---- training ---------------------------------------------------------------------------------------------------

def shard_recipe(recipe: Recipe, base: Path, users_file: Path, folder: Path) -> Recipe:
    """The recipe of one adapter: LoRA on `base` (peft's LoRA on every linear layer unless model.lora.target_modules
    names some), the adapter kept apart (lora.merge=false), only `users_file`'s users, at train.apa.learning_rate
    when set, every other setting (seed included) the ensemble's."""
    lora = recipe.model.lora
    lora = replace(lora, merge=False, target_modules=lora.target_modules or LINEAR_MODULES)
    return replace(recipe, output_dir=str(folder),
                   model=replace(recipe.model, name_or_path=str(base), finetune="lora", lora=lora),
                   train=replace(recipe.train, shards=1, partition="sisa", only_users=str(users_file), resume=False,
                                 learning_rate=recipe.train.apa.learning_rate or recipe.train.learning_rate))


def train_adapter(recipe: Recipe, base: Path, users: list[str], folder: Path) -> dict:
    """One shard's adapter into folder/model (its users in folder/users.txt), from `recipe` (an APA recipe, or a
    shard's recorded one). Returns llm.train's summary."""
    write_text(folder / "users.txt", "\n".join(users) + "\n")
    return single.train(shard_recipe(recipe, base, folder / "users.txt", folder))


def write_apa(target: Path, base: Path, adapters: list[Path], groups: list[list[str]], centroids: list[list[float]],
              settings: dict, recipe: dict | None, place=None) -> None:
    """model/ of an APA ensemble in `target` (a temporary sibling of the final dir): base and adapters copied in
    (`place(source, target)`, default shutil.copytree), apa.json, tokenizer and card (the first adapter's, its
    recipe replaced by the ensemble's)."""
    place = place or shutil.copytree
    place(base, target / "base")
    shards = []
    for k, (adapter, users, point) in enumerate(zip(adapters, groups, centroids)):
        folder = target / "adapters" / f"adapter-{k}"
        place(adapter, folder)
        shards.append({"adapter": f"adapters/adapter-{k}", "users": users, "sha256": directory_hash(folder),
                       "centroid": point})
    load_tokenizer(str(target / "base")).save_pretrained(target)
    card = {key: value for key, value in read_model_card(adapters[0]).items()
            if key not in ("recipe", "adapter_of", "adapter_of_sha256")}
    write_model_card(target, {**card, "apa_shards": len(adapters), **({"recipe": recipe} if recipe else {})})
    write_json(target / APA_FILE, {"base": "base", "base_sha256": directory_hash(target / "base"),
                                    **settings, "shards": shards})


def train_apa(recipe: Recipe) -> dict:
    """`llmrec train` with train.partition=apa: base in output_dir/base, adapters trained under output_dir/shards/,
    the ensemble in output_dir/model."""
    out = Path(recipe.output_dir)
    started = time.perf_counter()
    splits = prepare_splits(recipe.data, recipe.forget)
    train = training_split(splits, recipe.train.train_on)  # never the holdout users
    users = sorted(set(train["user_id"]))
    shard_users(users, recipe.train.shards, recipe.train.seed)  # bounds, before anything is built
    base_info = build_base(recipe, out / "base")
    base_seconds = time.perf_counter() - started
    model, tokenizer = load_model(str(out / "base")), load_tokenizer(str(out / "base"))
    vectors = representations(model, tokenizer, train, recipe)
    row_of: dict[str, list[int]] = {}
    for row, user in enumerate(train["user_id"]):
        row_of.setdefault(user, []).append(row)
    groups = user_groups(users, row_of, vectors, recipe)
    centroids = [centroid(vectors[[r for u in group for r in row_of[u]]]).tolist() for group in groups]
    summaries = []
    for k, group in enumerate(groups):
        print(f"[apa] adapter {k + 1}/{len(groups)}: {len(group)} users")
        summaries.append(train_adapter(recipe, out / "base", group, out / "shards" / f"shard-{k}"))
    settings = {"aggregation": recipe.train.apa.aggregation, "temperature": recipe.train.apa.temperature,
                "grouping": recipe.train.apa.grouping, "seed": recipe.train.seed}
    with atomic_dir(out / "model") as tmp:
        write_apa(tmp, out / "base", [out / "shards" / f"shard-{k}" / "model" for k in range(len(groups))], groups,
                  centroids, settings, to_dict(recipe))
    write_text(out / "config.yaml", to_yaml(recipe))
    summary = {"base": {**base_info, "seconds": base_seconds}, "shards": summaries,
               "train_seconds_this_run": time.perf_counter() - started,
               "parameters": summaries[0]["parameters"] - summaries[0]["trainable_parameters"]
               + sum(s["trainable_parameters"] for s in summaries),
               "trainable_parameters": sum(s["trainable_parameters"] for s in summaries),
               "model_dir": str(out / "model")}
    write_json(out / "train_metrics.json", summary)
    return summary


# ---- scoring ----------------------------------------------------------------------------------------------------

def read_apa(model_dir: Path) -> dict:
    path = Path(model_dir) / APA_FILE
    if not path.is_file():
        raise LlmrecError(f"{model_dir}: method=apa needs an APA ensemble (train one with train.partition=apa "
                          f"train.shards=4); no {APA_FILE} here")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise LlmrecError(f"{path}: not valid JSON ({exc})") from None


def check_apa(model_dir: Path, spec: dict) -> None:
    """The base and every adapter are the ones apa.json was written with (their directory_hash). Raises
    LlmrecError naming the first one missing or changed."""
    parts = [("base", Path(model_dir) / spec["base"], spec["base_sha256"])]
    parts += [(f"adapter {k}", Path(model_dir) / s["adapter"], s["sha256"]) for k, s in enumerate(spec["shards"])]
    for label, path, expected in parts:
        if not path.is_dir():
            raise LlmrecError(f"{model_dir}: the {label} ({path}) is missing")
        if verified_hash(path) != expected:
            raise LlmrecError(f"{model_dir}: the {label} ({path}) changed since the ensemble was written (sha256 "
                              f"{verified_hash(path)[:12]}…, recorded {expected[:12]}…)")


@contextmanager
def weighted_adapters(peft_model, names: list[str], weights: torch.Tensor):
    """Every adapter in `names` active, adapter k's low-rank term of every LoRA layer scaled by weights[:, k] per
    sample (weights: [batch, len(names)]): the layer computes W x + Σ_k w_k s_k B_k A_k x, i.e. x through the
    per-sample merged update. Forward hooks on peft's `lora_B[name]` modules; removed on exit."""
    from peft.tuners.lora import LoraLayer

    hooks = []
    for module in peft_model.modules():
        if isinstance(module, LoraLayer):
            for k, name in enumerate(names):
                if name in module.lora_B:
                    column = weights[:, k]
                    hooks.append(module.lora_B[name].register_forward_hook(
                        lambda _m, _i, out, column=column: out * column.view(-1, *[1] * (out.dim() - 1)).to(out.dtype)))
    previous = peft_model.base_model.active_adapter
    peft_model.base_model.set_adapter(names)
    try:
        yield
    finally:
        for hook in hooks:
            hook.remove()
        peft_model.base_model.set_adapter(previous)


class ApaEnsemble(nn.Module):
    """The base with its S adapters behind one forward (`aggregation`: adaptive | merge | mean, module docstring).

    centroids: [S, dim]. forward returns [batch, 1, vocab] logits; for `mean` log of the mean P(yes), P(no) at the
    answer pair and -1e4 elsewhere, as `SisaEnsemble`."""

    def __init__(self, model, names: list[str], centroids: torch.Tensor, answer: AnswerTokens, aggregation: str,
                 temperature: float):
        super().__init__()
        self.model, self.names, self.answer = model, names, answer
        self.aggregation, self.temperature = aggregation, temperature
        self.register_buffer("centroids", centroids)
        if aggregation == "merge":
            model.add_weighted_adapter(names, [1.0 / len(names)] * len(names), "merged", combination_type="cat")
            model.set_adapter("merged")

    @classmethod
    def load(cls, model_dir: Path, aggregation: str | None = None) -> ApaEnsemble:
        """Raises LlmrecError when apa.json is missing, damaged, or its base or an adapter changed."""
        from peft import PeftModel

        model_dir = Path(model_dir)
        spec = read_apa(model_dir)
        check_apa(model_dir, spec)
        aggregation = aggregation or spec["aggregation"]
        if aggregation not in ("adaptive", "merge", "mean"):
            raise LlmrecError(f"APA aggregation must be adaptive, merge or mean, got {aggregation!r}")
        card = read_model_card(model_dir)
        names = [f"shard-{k}" for k in range(len(spec["shards"]))]
        model = PeftModel.from_pretrained(load_model(str(model_dir / spec["base"])),
                                          model_dir / spec["shards"][0]["adapter"], adapter_name=names[0])
        for name, shard in zip(names[1:], spec["shards"][1:]):
            model.load_adapter(model_dir / shard["adapter"], adapter_name=name)
        centroids = torch.tensor([shard["centroid"] for shard in spec["shards"]])
        return cls(model, names, centroids, AnswerTokens(**card["answer"]), aggregation, spec["temperature"]).eval()

    def forward(self, input_ids, attention_mask=None, **ignored):
        """input_ids, attention_mask: [batch, seq], left-padded; what a caller adds for one kind of model is ignored."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if self.aggregation == "merge":
            return SimpleNamespace(logits=answer_logits(self.model, input_ids, attention_mask)[:, None, :])
        if self.aggregation == "adaptive":
            with self.model.disable_adapter():
                hidden = answer_hidden(self.model, input_ids, attention_mask)
            weights = adaptive_weights(hidden, self.centroids, self.temperature)
            with weighted_adapters(self.model, self.names, weights):
                logits = answer_logits(self.model, input_ids, attention_mask)
            return SimpleNamespace(logits=logits[:, None, :])
        pair, probs = [self.answer.yes_id, self.answer.no_id], []
        for name in self.names:
            self.model.set_adapter(name)
            logits = answer_logits(self.model, input_ids, attention_mask)
            probs.append(logits[:, pair].float().softmax(-1))
        mean = torch.stack(probs).mean(0)
        out = torch.full((input_ids.shape[0], 1, logits.shape[-1]), -1e4, device=input_ids.device)
        out[:, 0, pair] = mean.clamp_min(1e-12).log()
        return SimpleNamespace(logits=out)
