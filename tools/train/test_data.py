"""Checks of the training rows' structure (data.py), with the shipped model's tokenizer and
this repository's own sources as the corpus. run_long_gpu.sh runs them before it trains, on the
machine that has numpy and tokenizers:
    python3 tools/train/test_data.py
"""
import os
import random
import sys
import unittest

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import corpus  # noqa: E402
import data  # noqa: E402
from special_tokens import FILE_SEP  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(HERE))
TOKENIZER = os.path.join(ROOT, "models", "tidal-code-mini", "tokenizer.json")


def repository_files():
    files = []
    for folder in ("src", "native/src", "tools"):
        for directory, _, names in sorted(os.walk(os.path.join(ROOT, folder))):
            for name in sorted(names):
                extension = os.path.splitext(name)[1]
                if extension not in corpus.CODE_EXTENSIONS:
                    continue
                path = os.path.join(directory, name)
                with open(path, encoding="utf-8") as handle:
                    text = handle.read()
                language = corpus.CODE_EXTENSIONS[extension]
                files.append(corpus.SourceFile(os.path.relpath(path, ROOT), language, text, False))
    return files


class RowTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tokens = data.Tokens(TOKENIZER)
        cls.files = repository_files()

    def builder(self, seed):
        return data.RowBuilder(self.tokens, self.files, seed=seed)

    def test_crossfile_reach_lies_between_the_helper_and_the_caller(self):
        builder = self.builder(7)
        sep = self.tokens.special[FILE_SEP]
        for trial in range(40):
            rng = random.Random(trial)
            helper = data.random_helper(rng)
            distractors = [data.random_helper(rng) for _ in range(trial % 4)]
            depth = rng.random()
            ids, answer_start, (first, last) = builder.crossfile_ids(8192, depth, helper, distractors, rng)
            self.assertEqual(len(ids), 8192)
            self.assertLessEqual(first, last)
            text_before = self.tokens.decode(ids[:first])
            # The helper's file ends exactly at `first`: its whole text is before, and it is last.
            self.assertTrue(text_before.endswith(f"{helper.helper_path}\n{helper.helper_text}"), trial)
            self.assertIn(ids[first], (sep,), "a file starts right after the helper's")
            # The caller's file starts exactly at `last` and runs to the answer.
            self.assertEqual(ids[last], sep)
            self.assertEqual(self.tokens.decode(ids[last + 1:answer_start]), f"{helper.query_path}\n{helper.query_text}")
            self.assertEqual(self.tokens.decode(ids[answer_start:]), helper.answer)
            self.assertNotIn(helper.name, self.tokens.decode(ids[first:answer_start]))

    def test_retrieval_reach_lies_between_the_key_and_the_query(self):
        builder = self.builder(11)
        for trial in range(40):
            rng = random.Random(100 + trial)
            needle = data.random_needle(rng)
            distractors = [data.random_needle(rng) for _ in range(trial % 3)]
            ids, answer_start, (first, last) = builder.retrieval_ids(4096, rng.random(), needle, distractors, rng)
            self.assertEqual(len(ids), 4096)
            self.assertTrue(self.tokens.decode(ids[:first]).endswith(needle.definition), trial)
            self.assertEqual(self.tokens.decode(ids[last:answer_start]), "\n" + needle.query)
            self.assertEqual(self.tokens.decode(ids[answer_start:]), needle.answer)

    def test_pinned_cut_falls_inside_the_reach(self):
        rng = random.Random(3)
        for trial in range(200):
            length, span = 1024, 8192
            first = rng.randint(1, length - 2)
            last = rng.randint(first, length - 1)
            positions = data.stretched_positions(rng, length, span, (first, last))
            steps = np.diff(positions)
            jumps = np.flatnonzero(steps != 1)
            self.assertTrue((steps >= 1).all())
            self.assertLessEqual(positions[-1], span - 1)
            if len(jumps):  # a gap of 0 leaves no jump
                cut = int(jumps[0]) + 1
                self.assertEqual(len(jumps), 1)
                self.assertTrue(first <= cut <= last, (first, last, cut))
        with self.assertRaises(ValueError):
            data.stretched_positions(rng, 1024, 8192, (900, 800))

    def test_far_share_pins_every_planted_row_and_zero_draws_as_before(self):
        stages = [(0.0, 2048, 0.5, 0.5, 65536)]
        pinned = data.Curriculum(stages, fim_probability=0.0, far_share=1.0)
        distances = []
        for seed in range(4):
            ids, _, positions, length, _ = data.make_batch(self.builder(seed), pinned, 0.5, 4 * 2048)
            self.assertEqual(length, 2048)
            # The same rows again, from a builder in the same state: make_batch draws its rows
            # first (a stream draw, then the row), then the cuts.
            replay = self.builder(seed)
            rows = []
            for _ in range(4):
                draw = replay.rng.random()
                rows.append(replay.retrieval_row(2048) if draw < 0.5 else replay.crossfile_row(2048))
            for row, row_ids, row_positions in zip(rows, ids, positions):
                np.testing.assert_array_equal(row.ids, row_ids)
                jumps = np.flatnonzero(np.diff(row_positions) != 1)
                if len(jumps):
                    cut = int(jumps[0]) + 1
                    self.assertTrue(row.reach[0] <= cut <= row.reach[1])
                    distances.append(row_positions[row.reach[1]] - row_positions[row.reach[0] - 1])
        self.assertGreater(max(distances), 2048)

        # A share of 0 draws the same random numbers as a curriculum without one.
        plain = data.Curriculum(stages, fim_probability=0.0)
        zero = data.Curriculum(stages, fim_probability=0.0, far_share=0.0)
        a = data.make_batch(self.builder(9), plain, 0.5, 4 * 2048)
        b = data.make_batch(self.builder(9), zero, 0.5, 4 * 2048)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[2], b[2])
        with self.assertRaises(ValueError):
            data.Curriculum(stages, far_share=1.5)


if __name__ == "__main__":
    unittest.main(verbosity=2)
