"""Finds source files on the machine the training runs on and splits them into train and
held-out sets by file.

Selection is deterministic: candidate paths are sorted, files are read and filtered, exact
duplicates are dropped (first path in sorted order wins), and the held-out split is decided by a
hash of the file *content*, so the same file lands on the same side on every machine whatever its
path. Sampling down to a byte budget uses a seeded shuffle of the sorted list.
"""
import hashlib
import os
import random
import sysconfig
from dataclasses import dataclass

CODE_EXTENSIONS = {
    ".py": "python", ".pyi": "python",
    ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript", ".jsx": "javascript",
    ".ts": "typescript", ".mts": "typescript", ".cts": "typescript", ".tsx": "typescript",
    ".c": "c", ".h": "c", ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".hh": "cpp", ".hpp": "cpp",
    ".hxx": "cpp", ".cu": "cuda", ".cuh": "cuda", ".sh": "shell",
}
SKIPPED_DIR_NAMES = {"__pycache__", ".git", "test_data", "testdata", "locale", "encodings"}
MIN_FILE_BYTES = 200
MAX_FILE_BYTES = 160_000
MAX_AVERAGE_LINE_LENGTH = 120   # minified or generated files
HELD_OUT_PER_MILLE = 20         # 2% of files by content hash


@dataclass(frozen=True)
class SourceFile:
    path: str        # path relative to its root, prefixed by the root's short name
    language: str
    text: str
    held_out: bool


def default_roots():
    """Source trees found on a typical Python machine: the standard library, installed
    packages, C headers and, where Node is installed, its global packages."""
    candidates = [
        ("stdlib", sysconfig.get_paths()["stdlib"]),
        ("site", sysconfig.get_paths()["purelib"]),
        ("include", "/usr/include"),
        ("node", "/usr/lib/node_modules"),
        ("node", "/usr/local/lib/node_modules"),
    ]
    roots, seen = [], set()
    for name, root in candidates:
        real = os.path.realpath(root)
        if os.path.isdir(real) and real not in seen:
            seen.add(real)
            roots.append((name, real))
    return roots


def _candidate_paths(roots):
    found = []
    for name, root in roots:
        for directory, dir_names, file_names in os.walk(root):
            dir_names[:] = sorted(d for d in dir_names if d not in SKIPPED_DIR_NAMES)
            for file_name in file_names:
                extension = os.path.splitext(file_name)[1].lower()
                if extension in CODE_EXTENSIONS:
                    full = os.path.join(directory, file_name)
                    found.append((f"{name}/{os.path.relpath(full, root)}", full, CODE_EXTENSIONS[extension]))
    found.sort()
    return found


def _readable_code(data):
    if not (MIN_FILE_BYTES <= len(data) <= MAX_FILE_BYTES):
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if "\x00" in text:
        return None
    lines = text.count("\n") + 1
    if len(text) / lines > MAX_AVERAGE_LINE_LENGTH:
        return None
    return text


def is_held_out(text):
    digest = hashlib.sha1(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "little") % 1000 < HELD_OUT_PER_MILLE


def load_corpus(roots=None, max_bytes=None, seed=0):
    """Returns SourceFile records. With max_bytes, a seeded sample of the sorted file list whose
    total size stays under the budget (held-out files included in the count)."""
    roots = roots if roots is not None else default_roots()
    paths = _candidate_paths(roots)
    order = list(range(len(paths)))
    random.Random(seed).shuffle(order)
    files, seen_digests, total = [], set(), 0
    for index in order:
        short_path, full_path, language = paths[index]
        if os.path.islink(full_path):
            continue
        try:
            with open(full_path, "rb") as handle:
                data = handle.read(MAX_FILE_BYTES + 1)
        except OSError:
            continue
        text = _readable_code(data)
        if text is None:
            continue
        digest = hashlib.sha1(data).digest()
        if digest in seen_digests:
            continue
        seen_digests.add(digest)
        if max_bytes is not None and total + len(data) > max_bytes:
            continue
        total += len(data)
        files.append(SourceFile(short_path, language, text, is_held_out(text)))
    return files


def split(files):
    train = [f for f in files if not f.held_out]
    held_out = [f for f in files if f.held_out]
    return train, held_out
