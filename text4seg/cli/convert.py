"""``text4seg convert``: official checkpoints -> self-describing transformers directories
(:mod:`text4seg.modeling.convert`)."""

from __future__ import annotations

import argparse

EPILOG = (
    "examples:\n"
    "  text4seg convert text4seg-llava lmc22/text4seg-llava-7b-p24 --out models/t4s-7b-p24 \\\n"
    "      --vision-tower openai/clip-vit-large-patch14-336\n"
    "  text4seg convert text4seg-llava ckpt-lora-p16 --base lmsys/vicuna-7b-v1.5 --out models/t4s-p16\n"
    "  text4seg convert ms-swift-llava swift-adapter --base llava-hf/llava-1.5-7b-hf --grid 16 --out models/swift\n"
)
KINDS = ("text4seg-llava", "ms-swift-llava")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=KINDS, help="text4seg-llava: the Text4Seg LLaVA codebase (profile "
                        "reference); ms-swift-llava: an ms-swift LoRA adapter on llava-hf/llava-1.5-*-hf "
                        "(profile ms-swift)")
    parser.add_argument("src", help="checkpoint directory or hub id")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory (required)")
    parser.add_argument("--grid", type=int, default=None, metavar="N",
                        help="descriptor grid side (default: p16/p24/p32 in the name)")
    parser.add_argument("--vision-tower", default=None, metavar="DIR|ID",
                        help="CLIP tower when mm_vision_tower does not exist (default: the checkpoint's own path, "
                        "else the copy inside the checkpoint, with a warning)")
    parser.add_argument("--base", default=None, metavar="DIR|ID",
                        help="base model: vicuna for a LoRA-form text4seg-llava checkpoint, llava-hf for "
                        "ms-swift-llava (default: none)")
    parser.add_argument("--force", action="store_true", default=False,
                        help="replace an existing --out (default: refuse)")


def run(args: argparse.Namespace) -> int:
    import logging

    from text4seg.modeling.convert import convert_ms_swift_llava, convert_text4seg_llava

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.kind == "text4seg-llava":
        out = convert_text4seg_llava(args.src, args.out, grid=args.grid, vision_tower=args.vision_tower,
                                     base=args.base, force=args.force)
    else:
        if args.base is None:
            raise ValueError("ms-swift-llava: pass --base (llava-hf/llava-1.5-7b-hf or its directory)")
        out = convert_ms_swift_llava(args.src, args.out, base=args.base, grid=args.grid, force=args.force)
    print(f"converted: {out}")
    return 0
