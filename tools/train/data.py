"""Training and evaluation streams for tidal-code-mini.

Three kinds of rows, each exactly `length` tokens with a per-token loss weight:
  code       repository-style concatenation of whole files: <|file_sep|>path\\ncontent ...
  fim        fill-in-the-middle examples in PSM order, packed back to back:
             <|fim_prefix|>prefix<|fim_suffix|>suffix<|fim_middle|>middle<|endoftext|>
  retrieval  a long window of real code with a key line planted at a random depth, and at the
             end a code line that asks for it; the answer tokens carry a larger loss weight.
  crossfile  a long window of real code with a small helper file planted at a file boundary, and
             at the end a file whose comment says what the helper does and which stops where the
             call begins; the helper's name and its call are the weighted answer. Its words (verbs,
             nouns, results) are disjoint from those of `tidal-eval --crossfile-trials`, so the
             eval measures whether the skill carries over, not recall of its sentences. In
             half of the rows the three words are made up of syllables, a new set each row,
             so that no word can be learned as a cue: only matching the request's words to
             the doc comment's and copying the name next to them pays.
Rows are drawn from train files only; evaluation builds the same rows from held-out files.

Retrieval and cross-file rows carry their reach: the span of cut points that leave the planted
key (or helper file) wholly before the cut and the request wholly after it. A stage that stretches
positions (stretched_positions) can pin its cut inside the reach (Curriculum's far share), so
that every such row teaches a key-to-request distance beyond the row's length, not only the rows
whose random cut happens to fall between the two.
"""
import os
import random
import sys
from dataclasses import dataclass

import numpy as np
from tokenizers import Tokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corpus  # noqa: E402
from special_tokens import (END_OF_TEXT, FILE_SEP, FIM_MIDDLE, FIM_PREFIX,  # noqa: E402
                            FIM_SUFFIX, SPECIAL_TOKENS)

ANSWER_WEIGHT = 5.0
MAX_FIM_FILE_CHARS = 6000
SYLLABLES = ["ka", "zo", "ri", "mu", "te", "lan", "vor", "qui", "ber", "ost", "nix", "dal", "pre",
             "sul", "gam", "tor", "wen", "yel", "fap", "hob", "jid", "cru", "ely", "mon"]


@dataclass
class Row:
    ids: np.ndarray      # int64 [length]
    weights: np.ndarray  # float32 [length]; weight of predicting ids[t] from ids[:t]
    kind: str
    # (first, last): a position jump at any index in [first, last] falls after the planted key
    # (or helper file) and before the request; None for rows without one.
    reach: tuple = None


@dataclass
class Needle:
    """One planted key: the line placed in the context, the query line, and the answer."""
    definition: str
    query: str
    answer: str


def random_needle(rng, name=None):
    """A key/value line in one of a few code shapes, and the matching query line. The value is a
    5-8 digit number; the query ends with '# ->' and expects ' <value>' next."""
    name = name or "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))).upper()
    value = str(rng.randint(10_000, 99_999_999))
    value = value[:rng.randint(5, 8)] if len(value) > 5 else value
    shape = rng.randrange(3)
    if shape == 0:
        return Needle(f'SECRET_KEY_{name} = "{value}"\n', f"print(SECRET_KEY_{name})  # ->", f' "{value}"\n')
    if shape == 1:
        return Needle(f'    "{name.lower()}": {value},\n', f'print(CONFIG["{name.lower()}"])  # ->', f" {value}\n")
    return Needle(f"#define PASSKEY_{name} {value}\n", f"printf(\"%d\", PASSKEY_{name});  // ->", f" {value}\n")


CROSSFILE_VERBS = ["normalize", "compress", "hash", "reverse", "tally", "shuffle", "sort", "trim",
                   "weigh", "render", "parse", "flatten", "sample", "clamp", "mirror", "stitch"]
CROSSFILE_NOUNS = ["orchard", "kettle", "glacier", "compass", "anchor", "pebble", "thistle", "marble",
                   "canyon", "beacon", "cobalt", "juniper", "lagoon", "prism", "raven", "spindle"]
CROSSFILE_RESULTS = ["total", "key", "label", "vector", "score", "tag", "fingerprint", "profile",
                     "sketch", "tally"]
CROSSFILE_LANGUAGES = ["python", "typescript", "javascript", "c"]
# Share of cross-file rows whose verb, noun and result are made-up syllable words.
CROSSFILE_INVENTED_SHARE = 0.5


@dataclass
class Helper:
    """One planted helper file and the last file that must call it."""
    helper_path: str
    helper_text: str
    query_path: str
    query_text: str
    answer: str
    name: str
    what: tuple


def _third_person(verb):
    if len(verb) > 1 and verb.endswith("y") and verb[-2] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + ("es" if verb.endswith(("sh", "ch", "s", "x")) else "s")


def _syllable_word(rng, count):
    return "".join(rng.choice(SYLLABLES) for _ in range(count))


def random_helper(rng, language=None):
    """A helper with a made-up name whose doc comment says what it does, in one of a few
    languages, and the caller's file up to the call. The answer is the name and its call."""
    language = language or rng.choice(CROSSFILE_LANGUAGES)
    if rng.random() < CROSSFILE_INVENTED_SHARE:
        verb = noun = result = ""
        while len({verb, noun, result}) < 3:
            verb, noun, result = (_syllable_word(rng, rng.randint(2, 3)) for _ in range(3))
    else:
        verb, noun, result = rng.choice(CROSSFILE_VERBS), rng.choice(CROSSFILE_NOUNS), rng.choice(CROSSFILE_RESULTS)
    if result == verb:
        result = "total"
    folder = _syllable_word(rng, 2)
    first, second = _syllable_word(rng, 2), _syllable_word(rng, rng.randint(1, 2))
    factor = rng.randint(3, 99)
    caller = rng.choice(CROSSFILE_NOUNS)
    phrasing = rng.randrange(3)
    said = [f"{verb} the {noun} into its {result}", f"{result} of the {noun} ({verb})",
            f"{_third_person(verb)} a {noun} and gives its {result}"][phrasing]
    doc = f"{_third_person(verb).capitalize()} a {noun} into its {result}."
    if language == "python":
        name = f"{first}_{second}"
        helper_path = f"{folder}/{name}.py"
        helper_text = (f"def {name}({noun}):\n    \"\"\"{doc}\"\"\"\n    {result} = {factor}\n"
                       f"    for value in {noun}:\n        {result} = ({result} * {factor} + value) % 65521\n"
                       f"    return {result}\n")
        query_path = f"app/{caller}_report.py"
        query_text = f"def report({noun}):\n    # {said}\n    {result} ="
        answer = f" {name}({noun})\n"
    elif language == "c":
        name = f"{first}_{second}"
        helper_path = f"src/{folder}/{name}.c"
        helper_text = (f"/* {doc} */\nint {name}(const int *{noun}, int count) {{\n  int {result} = {factor};\n"
                       f"  for (int i = 0; i < count; i++) {result} = ({result} * {factor} + {noun}[i]) % 65521;\n"
                       f"  return {result};\n}}\n")
        query_path = f"src/app/{caller}_report.c"
        query_text = f"int report(const int *{noun}, int count) {{\n  /* {said} */\n  int {result} ="
        answer = f" {name}({noun}, count);\n"
    else:
        name = first + second.capitalize()
        typed = language == "typescript"
        extension = "ts" if typed else "js"
        parameter = f"{noun}: readonly number[]" if typed else noun
        returns = ": number" if typed else ""
        helper_path = f"src/{folder}/{name}.{extension}"
        helper_text = (f"/** {doc} */\nexport function {name}({parameter}){returns} {{\n  let {result} = {factor};\n"
                       f"  for (const value of {noun}) {result} = ({result} * {factor} + value) % 65521;\n"
                       f"  return {result};\n}}\n")
        query_path = f"src/app/{caller}Report.{extension}"
        query_text = f"export function report({parameter}){': string' if typed else ''} {{\n  // {said}\n  const {result} ="
        answer = f" {name}({noun});\n"
    return Helper(helper_path, helper_text, query_path, query_text, answer, name, (verb, noun, result))


class Tokens:
    """Thin wrapper over the tokenizer with the ids this module needs."""

    def __init__(self, tokenizer_path):
        self.tokenizer = Tokenizer.from_file(tokenizer_path)
        self.special = {token: self.tokenizer.token_to_id(token) for token in SPECIAL_TOKENS}
        self.eos = self.special[END_OF_TEXT]
        vocab = self.tokenizer.get_vocab()
        # ids whose text ends a line ("Ċ" is the byte-level newline)
        self.line_end_ids = np.array(sorted(i for t, i in vocab.items() if t.endswith("Ċ")), dtype=np.int64)

    def encode(self, text):
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts):
        return [e.ids for e in self.tokenizer.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids):
        return self.tokenizer.decode(list(ids), skip_special_tokens=False)


class CodeBuffer:
    """All files of one split as one token array, repository-style."""

    def __init__(self, tokens, files):
        headers = [f"{f.path}\n" for f in files]
        encoded = tokens.encode_batch([h + f.text for h, f in zip(headers, files)])
        sep = tokens.special[FILE_SEP]
        pieces = []
        for ids in encoded:
            pieces.append([sep])
            pieces.append(ids)
        self.ids = np.array([i for piece in pieces for i in piece], dtype=np.int64)
        self.line_end = np.isin(self.ids, tokens.line_end_ids)

    def window(self, rng, length):
        start = rng.randrange(0, len(self.ids) - length)
        return self.ids[start:start + length], start


def _with_pieces(context, places, planted, tail):
    """The context's ids with each (relative depth, piece) of `planted` inserted at the first of
    `places` (ascending indexes into the context) at or after that depth (the last place when
    none is; the end when there are no places), then `tail`. Returns (ids, first_end): first_end
    is the index just after the first planted piece."""
    if len(places) == 0:
        places = np.array([len(context)])
    cuts = sorted(((int(places[min(np.searchsorted(places, relative * len(context)), len(places) - 1)]), index, piece)
                   for index, (relative, piece) in enumerate(planted)), key=lambda cut: cut[0])
    out, previous, first_end = [], 0, None
    for at, index, piece in cuts:
        out += context[previous:at].tolist() + piece
        previous = at
        if index == 0:
            first_end = len(out)
    return out + context[previous:].tolist() + tail, first_end


class RowBuilder:
    def __init__(self, tokens, files, seed):
        self.tokens = tokens
        self.files = files
        self.buffer = CodeBuffer(tokens, files)
        self.rng = random.Random(seed)

    # -- code ------------------------------------------------------------------------------
    def code_row(self, length):
        ids, _ = self.buffer.window(self.rng, length)
        return Row(ids.copy(), np.ones(length, np.float32), "code")

    # -- fill in the middle ----------------------------------------------------------------
    def fim_example(self, rng=None, line_span=None):
        """Returns (prefix, suffix, middle) cut from a random file. Half the examples cut on
        line boundaries (1-3 whole lines as the middle), half at random characters."""
        rng = rng or self.rng
        text = ""
        while len(text) < 64:
            text = rng.choice(self.files).text
        if len(text) > MAX_FIM_FILE_CHARS:
            start = rng.randrange(0, len(text) - MAX_FIM_FILE_CHARS)
            text = text[start:start + MAX_FIM_FILE_CHARS]
        line_span = rng.random() < 0.5 if line_span is None else line_span
        if line_span:
            lines = text.splitlines(keepends=True)
            candidates = [i for i, line in enumerate(lines) if line.strip()]
            if len(candidates) >= 4:
                first = rng.choice(candidates[1:-1])
                count = rng.randint(1, 3)
                return ("".join(lines[:first]), "".join(lines[first + count:]),
                        "".join(lines[first:first + count]))
        a, b = sorted(rng.sample(range(len(text) + 1), 2))
        return text[:a], text[b:], text[a:b]

    def fim_ids(self, prefix, suffix, middle):
        s = self.tokens.special
        prompt = ([s[FIM_PREFIX]] + self.tokens.encode(prefix) + [s[FIM_SUFFIX]] +
                  self.tokens.encode(suffix) + [s[FIM_MIDDLE]])
        return prompt, self.tokens.encode(middle) + [self.tokens.eos]

    def fim_row(self, length):
        ids, weights = [], []
        while len(ids) < length:
            prompt, answer = self.fim_ids(*self.fim_example())
            ids += prompt + answer
            weights += [1.0] * len(prompt) + [2.0] * len(answer)
        return Row(np.array(ids[:length], np.int64), np.array(weights[:length], np.float32), "fim")

    # -- long-range retrieval --------------------------------------------------------------
    def retrieval_ids(self, length, depth, needle, distractors=(), rng=None):
        """A `length`-token row: code context with `needle` planted at relative `depth`, the
        distractor needles at random depths, then the query and the answer. Returns (ids,
        answer_start, reach): the answer is ids[answer_start:], and reach (see Row) runs from
        the end of the needle's line to the start of the query."""
        rng = rng or self.rng
        query = self.tokens.encode("\n" + needle.query)
        answer = self.tokens.encode(needle.answer)
        planted = [(depth, self.tokens.encode(needle.definition))]
        planted += [(rng.random(), self.tokens.encode(d.definition)) for d in distractors]
        context_length = length - len(query) - len(answer) - sum(len(p) for _, p in planted)
        context, start = self.buffer.window(rng, context_length)
        line_end = self.buffer.line_end[start:start + context_length]
        out, key_end = _with_pieces(context, np.flatnonzero(line_end) + 1, planted, query)  # after a line break
        return out + answer, len(out), (key_end, len(out) - len(query))

    # -- cross-file completion --------------------------------------------------------------
    def crossfile_ids(self, length, depth, helper, distractors=(), rng=None):
        """A `length`-token row: code context with the helper's file inserted at the file boundary
        nearest relative `depth`, distractor helpers at random boundaries, then the caller's file
        and the answer. Returns (ids, answer_start, reach): reach (see Row) runs from the end of
        the helper's file to the start of the caller's."""
        rng = rng or self.rng
        sep = self.tokens.special[FILE_SEP]
        def file_ids(path, text):
            return [sep] + self.tokens.encode(f"{path}\n{text}")
        planted = [(depth, file_ids(helper.helper_path, helper.helper_text))]
        planted += [(rng.random(), file_ids(d.helper_path, d.helper_text)) for d in distractors]
        query = file_ids(helper.query_path, helper.query_text)
        answer = self.tokens.encode(helper.answer)
        context_length = length - len(query) - len(answer) - sum(len(p) for _, p in planted)
        if context_length < length // 2:
            raise ValueError(f"a {length}-token cross-file row is too short for its planted files")
        context, _ = self.buffer.window(rng, context_length)
        out, helper_end = _with_pieces(context, np.flatnonzero(context == sep), planted, query)  # before a file
        return out + answer, len(out), (helper_end, len(out) - len(query))

    def crossfile_row(self, length):
        rng = self.rng
        helper = random_helper(rng)
        names, whats = {helper.name}, {helper.what}
        distractors = []
        for _ in range(rng.randint(0, 4) if length >= 8192 else 0):
            other = random_helper(rng)
            if other.name not in names and other.what not in whats:
                names.add(other.name)
                whats.add(other.what)
                distractors.append(other)
        ids, answer_start, reach = self.crossfile_ids(length, rng.random(), helper, distractors)
        weights = np.ones(length, np.float32)
        weights[answer_start:] = ANSWER_WEIGHT
        return Row(np.array(ids, np.int64), weights, "crossfile", reach)

    def retrieval_row(self, length):
        rng = self.rng
        needle = random_needle(rng)
        names = {needle.query}
        distractors = []
        for _ in range(rng.randint(0, 3)):
            other = random_needle(rng)
            if other.query not in names:
                names.add(other.query)
                distractors.append(other)
        ids, answer_start, reach = self.retrieval_ids(length, rng.random(), needle, distractors)
        weights = np.ones(length, np.float32)
        weights[answer_start:] = ANSWER_WEIGHT
        return Row(np.array(ids, np.int64), weights, "retrieval", reach)


class Curriculum:
    """Sequence length and stream mix as a function of training progress (0..1). `stages` is a
    list of (progress_start, length, retrieval_probability[, crossfile_probability[, span]]);
    FIM probability is fixed. A span longer than the length stretches each row's positions
    (see stretched_positions): the row's tokens are `length` long, the distances they see reach
    `span`, at the cost of a `length` row. `far_share` is the share of stretched rows with a
    reach (retrieval, cross-file) whose cut is pinned inside it; the others cut anywhere."""

    def __init__(self, stages, fim_probability=0.25, far_share=0.0):
        self.stages = sorted(tuple(stage) + (0.0, 0)[len(stage) - 3:] for stage in stages)
        self.fim_probability = fim_probability
        if not 0.0 <= far_share <= 1.0:
            raise ValueError(f"the far share must lie in [0, 1], got {far_share}")
        self.far_share = far_share
        for _, length, retrieval, crossfile, span in self.stages:
            if retrieval + crossfile + fim_probability > 1.0:
                raise ValueError("a stage's retrieval, cross-file and FIM probabilities add up to more than 1")
            if span and span < length:
                raise ValueError(f"a stage's span ({span}) is shorter than its length ({length})")

    def at(self, progress):
        """(length, retrieval probability, cross-file probability, span) at `progress`."""
        current = self.stages[0]
        for stage in self.stages:
            if progress >= stage[0]:
                current = stage
        return current[1], current[2], current[3], int(current[4]) or current[1]


def stretched_positions(rng, length, span, reach=None):
    """Position ids of a `length`-token row whose distances reach `span` (positional skip-wise
    training): positions count up from 0, and at one cut, drawn uniformly inside the row (inside
    `reach`, a (first, last) range of indexes, when given), they jump ahead by a gap drawn
    uniformly from [0, span - length]. Tokens after the cut see those before it that much further
    away, so a planted key before the cut and its query after it teach a distance of up to `span`
    at the cost of a `length` row. RoPE makes attention depend only on distances, so nothing else
    in the row changes. With span <= length: 0..length-1."""
    positions = np.arange(length, dtype=np.int64)
    if span > length and length > 1:
        first, last = 1, length - 1
        if reach is not None:
            first, last = max(first, reach[0]), min(last, reach[1])
            if first > last:
                raise ValueError(f"reach {reach} holds no cut inside a {length}-token row")
        cut = rng.randint(first, last)
        positions[cut:] += rng.randint(0, span - length)
    return positions


def make_batch(builder, curriculum, progress, tokens_per_batch):
    """(ids, weights, positions, length, kinds): positions is None unless the stage stretches
    its rows' positions to a longer span."""
    length, retrieval_probability, crossfile_probability, span = curriculum.at(progress)
    rows = []
    for _ in range(max(1, tokens_per_batch // length)):
        draw = builder.rng.random()
        if draw < retrieval_probability:
            rows.append(builder.retrieval_row(length))
        elif draw < retrieval_probability + crossfile_probability:
            rows.append(builder.crossfile_row(length))
        elif draw < retrieval_probability + crossfile_probability + curriculum.fim_probability:
            rows.append(builder.fim_row(length))
        else:
            rows.append(builder.code_row(length))
    ids = np.stack([r.ids for r in rows])
    weights = np.stack([r.weights for r in rows])
    positions = None
    if span > length:
        def reach(row):
            # The far-share draw is made only when it can matter, so that a share of 0 draws the
            # same random numbers (and rows) as before the share existed.
            pinned = row.reach is not None and curriculum.far_share > 0 and builder.rng.random() < curriculum.far_share
            return row.reach if pinned else None
        positions = np.stack([stretched_positions(builder.rng, length, span, reach(row)) for row in rows])
    return ids, weights, positions, length, [r.kind for r in rows]


def load_splits(tokenizer_path, max_bytes, seed):
    tokens = Tokens(tokenizer_path)
    files = corpus.load_corpus(max_bytes=max_bytes, seed=seed)
    train_files, held_out_files = corpus.split(files)
    return tokens, train_files, held_out_files
