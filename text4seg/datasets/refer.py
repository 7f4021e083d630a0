"""RefCOCO, RefCOCO+, RefCOCOg and RefCLEF (the ``refer`` API layout), read without pickle's code execution.

Layout under the data root (as in the Text4Seg README)::

    refer_seg/<dataset>/refs(<split_by>).p     list of refs: ref_id, ann_id, image_id, split, sentences[...]
    refer_seg/<dataset>/instances.json         COCO-style images (with height/width), annotations, categories
    refer_seg/images/coco_2014/train2014/...   images of refcoco, refcoco+, refcocog
    refer_seg/images/saiapr_tc-12/...          images of refclef

``refs(*).p`` files are pickles; :func:`load_refs_pickle` reads them with an unpickler that admits only plain
containers and scalars, so a crafted file cannot run code. Image sizes come from ``instances.json``; images are
never decoded.
"""

from __future__ import annotations

import io
import os
import pickle
from collections.abc import Iterator
from pathlib import Path

from text4seg.datasets.coco_masks import SkipLog, read_json, segmentation_to_mask, skip_or_raise
from text4seg.datasets.samples import ReferringSample

__all__ = [
    "REFER_DATASETS",
    "IMAGE_DIRS",
    "DEFAULT_SPLIT_BY",
    "RestrictedUnpickler",
    "load_instances",
    "load_refs_pickle",
    "ref_sentences",
    "refs_path",
    "read_refer",
    "count_refer",
]

REFER_DATASETS = ("refcoco", "refcoco+", "refcocog", "refclef")
DEFAULT_SPLIT_BY = {"refcoco": "unc", "refcoco+": "unc", "refcocog": "umd", "refclef": "unc"}
IMAGE_DIRS = {
    "refcoco": "refer_seg/images/coco_2014/train2014",
    "refcoco+": "refer_seg/images/coco_2014/train2014",
    "refcocog": "refer_seg/images/coco_2014/train2014",
    "refclef": "refer_seg/images/saiapr_tc-12",
}
_LAYOUT = "RefCOCO layout: <root>/refer_seg/<dataset>/{refs(<split_by>).p, instances.json}"

# The only globals a refs pickle may name: containers that protocol-2 pickles build through a constructor.
_ALLOWED_GLOBALS = {
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("__builtin__", "set"),
    ("__builtin__", "frozenset"),
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler admitting only plain containers and scalars (dict, list, tuple, set, str, bytes, numbers, None).

    Any attempt to import a callable (``os.system``, a class, ``copyreg._reconstructor``, ...) raises
    ``pickle.UnpicklingError`` before anything runs.
    """

    def find_class(self, module: str, name: str):  # noqa: D401 - pickle API
        if (module, name) in _ALLOWED_GLOBALS:
            return set if name == "set" else frozenset
        raise pickle.UnpicklingError(
            f"forbidden global {module}.{name} (only plain containers/scalars allowed)"
        )

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persistent ids are not allowed")


def load_refs_pickle(path: str | os.PathLike) -> list[dict]:
    """Read a ``refs(*).p`` file safely.

    Python 2 ``str`` objects are decoded as UTF-8 (Latin-1 if that fails).

    Args:
        path: the pickle file.

    Returns:
        The list of ref dicts.

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: the pickle names a forbidden global, is corrupt, or is not a list of dicts.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"refs file {path} not found ({_LAYOUT})")
    data = path.read_bytes()
    last_error: Exception | None = None
    for encoding in ("utf-8", "latin-1"):
        try:
            refs = RestrictedUnpickler(io.BytesIO(data), encoding=encoding).load()
            break
        except UnicodeDecodeError as err:
            last_error = err
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError) as err:
            raise ValueError(f"{path}: refused or unreadable pickle ({err})") from err
    else:
        raise ValueError(f"{path}: cannot decode strings ({last_error})")
    if not isinstance(refs, list) or not all(isinstance(r, dict) for r in refs):
        raise ValueError(f"{path}: expected a list of ref dicts, got {type(refs).__name__}")
    return refs


def refs_path(root: str | os.PathLike, dataset: str, split_by: str) -> Path:
    """``<root>/refer_seg/<dataset>/refs(<split_by>).p``."""
    return Path(root) / "refer_seg" / dataset / f"refs({split_by}).p"


def _split_matches(ref_split: str, split: str) -> bool:
    # Same selection as the refer API: testA also takes testAB, "test" takes every test split.
    if split in ("testA", "testB", "testC"):
        return split[-1] in ref_split and ref_split.startswith("test")
    if split == "test":
        return "test" in ref_split
    return ref_split == split


def _check_dataset(dataset: str, split_by: str | None) -> str:
    if dataset not in REFER_DATASETS:
        raise ValueError(f"unknown refer dataset {dataset!r}; expected one of {', '.join(REFER_DATASETS)}")
    return split_by or DEFAULT_SPLIT_BY[dataset]


def load_instances(path: str | os.PathLike, layout: str = _LAYOUT) -> dict:
    """Read a COCO-style ``instances.json`` (``images`` with height/width, ``annotations``).

    Raises:
        FileNotFoundError: missing file (the message names ``layout``).
        ValueError: invalid JSON or no ``images``/``annotations`` lists.
    """
    path = Path(path)
    instances = read_json(path, "instances", layout, object)
    for key in ("images", "annotations"):
        if not isinstance(instances, dict) or not isinstance(instances.get(key), list):
            raise ValueError(f"{path}: expected a COCO instances object with an {key!r} list")
    return instances


def _selected_refs(refs: list[dict], split: str, source: Path) -> list[dict]:
    out = []
    for i, ref in enumerate(refs):
        for key in ("ref_id", "image_id", "split", "sentences"):
            if key not in ref:
                raise ValueError(f"{source}: ref #{i} has no {key!r} field")
        if _split_matches(str(ref["split"]), split):
            out.append(ref)
    # Grouped by image (the builders pair refs of one image), stable by ref id inside an image.
    out.sort(key=lambda r: (r["image_id"], r["ref_id"]))
    return out


def ref_sentences(ref: dict) -> list[str]:
    """The non-empty sentences (``sent``, else ``raw``) of a ref, stripped."""
    out = []
    for sentence in ref.get("sentences") or []:
        text = sentence.get("sent", sentence.get("raw")) if isinstance(sentence, dict) else sentence
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        if isinstance(text, str) and text.strip():
            out.append(text.strip())
    return out


def read_refer(
    root: str | os.PathLike,
    split: str,
    dataset: str = "refcoco",
    split_by: str | None = None,
    strict: bool = False,
    skips: SkipLog | None = None,
) -> Iterator[ReferringSample]:
    """Iterate the refs of one split of a RefCOCO-family dataset lazily, grouped by image.

    Args:
        root: data root holding ``refer_seg/``.
        split: ``"train"``, ``"val"``, ``"test"``, ``"testA"``, ``"testB"`` (``"testC"`` for refclef).
        dataset: ``"refcoco"``, ``"refcoco+"``, ``"refcocog"`` or ``"refclef"``.
        split_by: ``"unc"``, ``"google"`` or ``"umd"``; default ``"umd"`` for refcocog, else ``"unc"``.
        strict: raise :class:`~text4seg.datasets.coco_masks.AnnotationError` on a malformed ref/annotation
            instead of skipping it.
        skips: where skipped refs are counted by reason.

    Yields:
        One :class:`ReferringSample` per ref (all its sentences in ``expressions``; ``(height, width)`` bool
        mask, the union of the annotation's parts). ``extra`` holds ``ref_id``, ``ann_id``, ``image_id``,
        ``category_id``.
    """
    split_by = _check_dataset(dataset, split_by)
    root = Path(root)
    refs_file = refs_path(root, dataset, split_by)
    refs = _selected_refs(load_refs_pickle(refs_file), split, refs_file)
    instances_file = root / "refer_seg" / dataset / "instances.json"
    instances = load_instances(instances_file)
    images = {img["id"]: img for img in instances["images"] if isinstance(img, dict) and "id" in img}
    anns = {ann["id"]: ann for ann in instances["annotations"] if isinstance(ann, dict) and "id" in ann}
    del instances
    image_dir = IMAGE_DIRS[dataset]
    for ref in refs:
        ref_id = ref["ref_id"]
        sample_id = f"{dataset}_{split_by}_{split}_{ref_id}"
        image = images.get(ref["image_id"])
        ann = anns.get(ref.get("ann_id"))
        sentences = ref_sentences(ref)
        problem = None
        if image is None:
            problem = "image id missing from instances.json"
        elif ann is None:
            problem = "annotation id missing from instances.json"
        elif not sentences:
            problem = "ref without sentences"
        elif not all(isinstance(image.get(k), int) and image.get(k) > 0 for k in ("height", "width")):
            problem = "image without a valid height/width"
        elif "file_name" not in image:
            problem = "image without file_name"
        if problem is None:
            try:
                mask = segmentation_to_mask(ann.get("segmentation"), image["height"], image["width"])
            except ValueError as err:
                problem = f"bad segmentation ({err})"
        if problem is not None:
            skip_or_raise(problem, f"{sample_id} (ref_id {ref_id})", str(refs_file), strict, skips)
            continue
        yield ReferringSample(
            id=sample_id,
            image=f"{image_dir}/{image['file_name']}",
            height=int(image["height"]),
            width=int(image["width"]),
            expressions=sentences,
            mask=mask,
            extra={
                "ref_id": ref_id,
                "ann_id": ref.get("ann_id"),
                "image_id": ref["image_id"],
                "category_id": ref.get("category_id"),
            },
        )


def count_refer(
    root: str | os.PathLike, split: str, dataset: str = "refcoco", split_by: str | None = None, **_: object
) -> int:
    """Number of refs of a split (from the pickle alone; skipped refs are not subtracted)."""
    split_by = _check_dataset(dataset, split_by)
    path = refs_path(root, dataset, split_by)
    return sum(1 for ref in load_refs_pickle(path) if _split_matches(str(ref.get("split", "")), split))
