"""The compiled kernels give exactly what the plain numpy / Python forms they replaced gave."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest

from cleaners import kernels, textbytes
from cleaners import linejudge as lj
from cleaners.boilerplate import MAX_COUNTED_CHARS, key_buffer, line_hash, line_keys
from cleaners.rulepack import canonical_line

TRICKY_LINES = [
    "Share  THIS\u00a0article", "share this article", "", "   ", "x" * MAX_COUNTED_CHARS, "x" * (MAX_COUNTED_CHARS + 1),
    "  padded  " + "y" * (MAX_COUNTED_CHARS - 1) + "\u3000 ", "a\x1cb", "A \t B", "ǅ x", "Straße", "STRASSE", "x\x85y",
    "😀 Share", "😀 Other", "ÀB\u00a0c", "x\u3000y", "Ωmega ΣΑΣ", "é" * MAX_COUNTED_CHARS, "ﬁne", "Home | News | Sport",
    "“Quoted” — dash…", "tab\tend\t", "İstanbul", "\u200bzero width",
]


def _reference_key(canonical: str) -> int:
    """The kernel's hash written plainly: 8-byte big-endian words mixed in, then the length and SplitMix64."""
    mask = (1 << 64) - 1
    data = canonical.encode("utf-8", "surrogatepass")
    h = 0x243F6A8885A308D3
    for start in range(0, len(data), 8):
        word = int.from_bytes(data[start:start + 8], "big")
        h ^= (word * 0x9E3779B97F4A7C15) & mask
        h = (((h << 31) | (h >> 33)) & mask) * 0xC2B2AE3D27D4EB4F & mask
    h ^= len(data)
    h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & mask
    h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & mask
    h ^= h >> 31
    return h - (1 << 64) if h >= 1 << 63 else h


def test_line_keys_hash_the_canonical_form_and_count_only_short_lines() -> None:
    lines = [line.strip() for line in TRICKY_LINES]
    keys, countable = line_keys(lines)
    for line, key, counted in zip(lines, keys.tolist(), countable.tolist(), strict=True):
        assert counted == (0 < len(line) <= MAX_COUNTED_CHARS), line
        assert key == (_reference_key(canonical_line(line)) if counted else 0), line
    assert line_hash("share this article") == keys[1] == keys[0]
    assert keys[TRICKY_LINES.index("Straße")] == keys[TRICKY_LINES.index("STRASSE")]  # case folding, in Python
    assert keys[TRICKY_LINES.index("😀 Share")] != keys[TRICKY_LINES.index("😀 Other")]


def test_keys_of_a_text_strip_each_line_as_str_strip_does() -> None:
    keyed = key_buffer(textbytes.encode("\n".join(TRICKY_LINES)))
    keys, countable = keyed.keys, keyed.countable
    expected_keys, expected_countable = line_keys([line.strip() for line in TRICKY_LINES])
    assert np.array_equal(keys, expected_keys) and np.array_equal(countable, expected_countable)
    with pytest.raises(ValueError, match="newline"):
        line_keys(["two\nlines"])


def _random_model(rng: np.random.Generator, n_features: int, n_trees: int, depth: int) -> lj.Oblivious:
    return lj.Oblivious({
        "features": [f"f{i}" for i in range(n_features)], "bias": 0.25,
        "split_f": rng.integers(0, n_features, (n_trees, depth)).tolist(),
        "split_b": rng.normal(size=(n_trees, depth)).astype(np.float32).tolist(),
        "leaves": rng.normal(size=(n_trees, 1 << depth)).astype(np.float32).tolist(),
        "weights": rng.integers(1, 50, (n_trees, 1 << depth)).tolist(),
    })


def test_tree_scores_and_leaves_match_a_plain_evaluation() -> None:
    rng = np.random.default_rng(7)
    model = _random_model(rng, n_features=9, n_trees=40, depth=5)
    columns = rng.normal(size=(9, 3000)).astype(np.float32)
    columns[2, ::7] = np.nan
    leaves = np.empty((40, 3000), np.uint8)
    scores = model.raw_columns(columns, leaves_out=leaves)
    expected = np.full(3000, np.float32(model.bias), np.float32)
    for t, (features, borders, values) in enumerate(zip(model.split_f, model.split_b, model.leaves, strict=True)):
        index = sum((columns[f] > b).astype(np.int64) << d for d, (f, b) in enumerate(zip(features, borders,
                                                                                          strict=True)))
        assert np.array_equal(leaves[t], index)
        expected += values[index]
    assert np.array_equal(scores, expected.astype(np.float64))


def test_top_attributions_match_summing_every_feature_and_sorting() -> None:
    from cleaners.linemodel import _leaf_deltas

    rng = np.random.default_rng(11)
    model = _random_model(rng, n_features=12, n_trees=30, depth=4)
    columns = rng.normal(size=(12, 700)).astype(np.float32)
    leaves = np.empty((30, 700), np.uint8)
    model.raw_columns(columns, leaves_out=leaves)
    deltas = _leaf_deltas(model)
    rows = np.arange(3, 700, 5)
    top, pushes = kernels.top_attributions(leaves, rows, model.split_f_table, deltas, 12, 3)
    sums = np.zeros((12, len(rows)), np.float32)
    for t in range(30):
        for d, feature in enumerate(model.split_f[t].tolist()):
            sums[feature] += deltas[t, d][leaves[t, rows]]
    order = np.argsort(-sums, axis=0, kind="stable")[:3]
    assert np.array_equal(top, order)
    assert np.array_equal(pushes, np.take_along_axis(sums, order, axis=0))


def _reference_byte_stats(b: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, ...]:
    """The numpy passes the byte kernel replaced (class histogram, words, letter-run hashes, symbols)."""
    n, size = len(starts), len(b)
    classes = lj._LUT[b]
    line_of = np.repeat(np.arange(n), ends - starts + 1)[:size]
    counts = np.bincount(line_of * lj.K + classes, minlength=n * lj.K).reshape(n, lj.K).astype(np.float32)
    wordish = lj._WORDISH[b]
    first = wordish.copy()
    first[1:] &= ~wordish[:-1]
    at = np.flatnonzero(first)
    words = np.bincount(line_of[at], minlength=n).astype(np.float32)
    upper = np.bincount(line_of[at][classes[at] == 2], minlength=n).astype(np.float32)
    letters = np.flatnonzero((classes == 1) | (classes == 2))
    run_starts = np.flatnonzero(np.concatenate([[True], letters[1:] != letters[:-1] + 1]))
    place = np.arange(len(letters)) - np.repeat(run_starts, np.diff(np.append(run_starts, len(letters))))
    contrib = (b[letters] | np.uint8(32)).astype(np.uint32) * lj._POW32[place & 31]
    hashes = np.add.reduceat(contrib, run_starts).astype(np.uint64) & np.uint64(0xFFFFFFFF)
    return counts, words, upper, hashes, line_of[letters[run_starts]]


def test_byte_stats_match_the_numpy_passes() -> None:
    lines = [line.strip() for line in TRICKY_LINES if line.strip()] + ["Hello World 42 times • menu » next", "ab\u00a9"]
    b = np.frombuffer("\n".join(lines).encode("utf-8", "surrogatepass"), np.uint8)
    breaks = np.flatnonzero(b == 10)
    starts, ends = np.concatenate([[0], breaks + 1]), np.concatenate([breaks, [len(b)]])
    counts, words, upper, _digits, symbols, hashes, run_lines = kernels.line_byte_stats(
        b, starts, ends, lj._LUT, lj._WORDISH, lj._POW32, lj._SYM2_K, lj._SYM3_K, lj.K)
    ref_counts, ref_words, ref_upper, ref_hashes, ref_lines = _reference_byte_stats(b, starts, ends)
    assert np.array_equal(counts, ref_counts) and np.array_equal(words, ref_words)
    assert np.array_equal(upper, ref_upper)
    assert np.array_equal(hashes, ref_hashes) and np.array_equal(run_lines, ref_lines)
    menu = len(lines) - 2
    assert symbols[menu] == 2 and symbols[-1] == 0  # • and », not the © in the buffer's last two bytes


def test_lexicon_counts_find_stopwords_keywords_and_phrases() -> None:
    lines = ["Share this on Facebook", "Sign up for our newsletter", "the cat sat", "sign", "up now"]
    features = lj.base_features(lj.Batch([lines], None))
    assert features["nstop"].tolist() == [2, 3, 1, 0, 1]  # this on | up for our | the | - | up
    assert features["kw_share"].tolist() == [2, 0, 0, 0, 0]  # share, facebook
    assert features["kw_subscribe"].tolist() == [0, 2, 0, 0, 0]  # "sign up" and newsletter; not across lines


def test_odd_characters_as_the_regex_form_replaced_them() -> None:
    from cleaners.normalize import _CONTROLS, _INVISIBLE, _ODD_SPACES, replace_odd_characters

    spaces = frozenset(_ODD_SPACES + "\x00\x1c\x1d\x1e\x1f")
    odd = re.compile(f"[{re.escape(_ODD_SPACES + _INVISIBLE + _CONTROLS)}]+")

    def reference(text: str) -> str:
        return odd.sub(lambda found: " " * sum(1 for c in found.group() if c in spaces), text)

    every_bmp_character = "".join(chr(c) for c in range(0x10000) if not 0xD800 <= c <= 0xDFFF)
    samples = [every_bmp_character, "plain text\nnext line", "a\u00a0\u200b\u00a0b\tc\x00d\x7f\x85e\ufeff",
               "\u3000\u1680\u205f\u2060\u202f\u00ad end", "emoji 😀\u200d😀 and \ud800 surrogate", "", "\r\n"]
    for text in samples:
        assert replace_odd_characters(text) == reference(text)
    assert replace_odd_characters("nothing odd") == "nothing odd"


def test_warm_up_command_compiles_or_loads_the_kernels() -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    result = CliRunner().invoke(app, ["warm-up"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("kernels ready in ")
    assert kernels.canonical_line_keys.signatures  # compiled (or loaded) for the types the cleaner uses


def test_word_units_count_a_word_per_two_characters_of_scripts_without_spaces() -> None:
    lines = ["Hello world  again", "京都の祇園祭は今年も多くの観光客でにぎわった。", "東京 2020 大会", "", "a",
             "ข่าวภาษาไทย", "Ünïcödé wörds, ok", "ab 京都", "京", "𠮷野家で食べた", "ｶﾀｶﾅ"]
    data = np.frombuffer("\n".join(lines).encode("utf-8"), np.uint8)
    starts, ends = textbytes.line_bounds(data)
    units = kernels.line_word_units(data, starts, ends, kernels.CHAR_CLASSES).tolist()
    # 22 CJK characters and a full stop: 11; a run of 2 and one of 2 with a number between; Thai: 11 characters.
    # Ideographs beyond U+FFFF (four UTF-8 bytes) and half-width katakana count too.
    assert units == [3, 11, 3, 0, 1, 6, 3, 2, 1, 4, 2]
    # Text without such scripts counts as str.split does.
    plain = [line for line in lines if line.isascii() or "ö" in line]
    data = np.frombuffer("\n".join(plain).encode("utf-8"), np.uint8)
    starts, ends = textbytes.line_bounds(data)
    assert kernels.line_word_units(data, starts, ends, kernels.CHAR_CLASSES).tolist() == [len(x.split()) for x in plain]
    # And on random lines of letters, digits and every kind of space str.split knows (no-break, ideographic, ...).
    import random

    rng = random.Random(3)
    alphabet = ["a", "Z", "é", "7", "-", " ", "\u00a0", "\u2003", "\u3000", "\x1c", "\u2028", "ß", "€"]
    lines = ["".join(rng.choices(alphabet, k=rng.randint(0, 30))).replace("\n", " ") for _ in range(500)]
    data = np.frombuffer("\n".join(lines).encode("utf-8"), np.uint8)
    starts, ends = textbytes.line_bounds(data)
    assert len(starts) == len(lines)
    assert kernels.line_word_units(data, starts, ends, kernels.CHAR_CLASSES).tolist() == [len(x.split()) for x in lines]


def test_strip_spaces_bounds_and_lengths_match_str_strip() -> None:
    lines = ["  two words  ", "", "   ", "é à ", " ☃x", "\ud800 lone", "plain"]
    data = np.frombuffer("\n".join(lines).encode("utf-8", "surrogatepass"), np.uint8)
    breaks = np.flatnonzero(data == 10)
    first, last, chars, surrogate = kernels.strip_spaces(data, np.concatenate([[0], breaks + 1]),
                                                          np.concatenate([breaks, [len(data)]]))
    for i, line in enumerate(lines):
        assert data[first[i]:last[i]].tobytes().decode("utf-8", "surrogatepass") == line.strip(" ")
        assert chars[i] == len(line.strip(" "))
        assert surrogate[i] == ("\ud800" in line)
    out, offsets = kernels.gather_lines(data, first, last, np.array([4, 0, 6], np.int64))
    assert [out[a:b].tobytes().decode() for a, b in itertools.pairwise(offsets.tolist())] == [
        "☃x", "two words", "plain"]


def test_document_features_match_the_numpy_passes() -> None:
    from pathlib import Path

    from tests.feature_reference import reference_base_features

    seed = (Path(__file__).parent.parent / "data" / "raw").glob("*.txt")
    docs = [path.read_text(encoding="utf-8").split("\n") for path in sorted(seed)]
    words = ["the", "council", "met", "on", "tuesday", "to", "discuss", "budget", "which", "has", "grown", "by",
             "four", "percent"]
    rng = np.random.default_rng(7)
    for d in range(40):  # titles repeated or prefixed, sentence blocks, section headers, duplicates, blank lines
        title = " ".join(rng.choice(words, int(rng.integers(1, 9))))
        lines = [title, "", f"{title} - Example News", title[: len(title) // 2], "Leave a comment", "Related stories"]
        lines += [" ".join(rng.choice(words, int(rng.integers(0, 30)))) + rng.choice(["", ".", ",", "!"])
                  for _ in range(int(rng.integers(0, 60)))]
        lines += ["Share this", "Copyright 2024 Example", lines[-1] if len(lines) > 6 else "x"] * (d % 3)
        docs.append(lines)
    docs.insert(3, ["", "  "])  # a document with no text
    source_share = [np.where(rng.random(len(doc)) < 0.3, rng.random(len(doc)), 0.0) for doc in docs]
    got = lj.base_features(lj.Batch(docs, source_share))
    expected = reference_base_features(lj.Batch(docs, source_share))
    assert got.keys() == expected.keys()
    for name, values in expected.items():
        if name == "_ctx":
            for part, array in values.items():
                assert np.array_equal(got[name][part], array), part
        else:
            assert np.array_equal(np.asarray(got[name], np.float32), np.asarray(values, np.float32)), name
    assert got["eq_title"].sum() > 0 and got["in_title"].sum() > 0 and got["hdr_cmt_after"].sum() > 0
    assert got["dup"].max() > 1 and got["blk_n"].max() > 1
    assert 0 < got["body_ovl"].mean() < 1 and 0 < got["body_ovl_idf"].mean() < 1


def test_body_overlap_counts_unicode_words_as_the_reference_does() -> None:
    from tests.feature_reference import reference_body_overlap

    article = ("Die Stadtverwaltung von Zürich hat am Dienstag über das Budget für 2024 beraten, das um vier Prozent "
               "gewachsen ist und Straßen, Schulen sowie Bäder betrifft; ÜBER die Hälfte geht an Schulen")
    lines = [article, "Zürich Budget 2024", "über Straßen", "2024 42 7", "Kommentare (3)", "İstanbul İSTANBUL",
             "東京の予算は増えた", "東京の予算は増えた 会議", "snake_case and_more 😀 emoji😀split", article.upper(),
             "ein anderes Thema ganz ohne Bezug", "SCHULEN und bäder"]
    doc_id = np.array([0] * 6 + [1] * 6, np.int64)
    data = np.frombuffer("\n".join(lines).encode("utf-8"), np.uint8)
    starts, ends = textbytes.line_bounds(data)
    long_line = np.array([len(line.split()) >= 25 for line in lines])
    plain, weighted = kernels.body_overlap(data, starts, ends, doc_id, long_line, kernels.WORD_CHARACTERS)
    expected_plain, expected_weighted = reference_body_overlap(lines, doc_id, long_line)
    assert np.array_equal(plain, expected_plain) and np.array_equal(weighted, expected_weighted)
    assert plain[1] == 1.0 and plain[2] == 1.0  # "Zürich", "Budget", "über", "Straßen": in the article
    assert plain[3] == 0.0 and plain[0] == 0.0  # digits only; the article alone is the only long line
    assert plain[10] == 0.0 < plain[11] == 1.0  # words of the upper-cased article (the long line), case aside
    assert plain[9] == 0.0  # the long line itself is not counted


def test_reasons_read_hundredths_as_decimals_without_trailing_zeros() -> None:
    from cleaners.linemodel import _hundredths

    def decimal(value: float) -> str:  # the plain form: 2 decimals, trailing zeros and point dropped, no "-0"
        text = f"{value:.2f}".rstrip("0").rstrip(".")
        return "0" if text in ("-0", "") else text

    values = np.array([0.0, -0.0, -0.001, 0.004, 0.005, 0.015, 0.1, 1.0, 12.5, -3.14159, 123456.789, 1e6, 0.996],
                      np.float64)
    names = [b"lw", b"kw_share", b"x"]
    n = len(values)
    top = np.array([[0] * n, [1] * n, [2] * n], np.int64)
    cube = np.stack([values, -values, values * 3])
    data, offsets = kernels.format_reasons(np.frombuffer(b"H:", np.uint8), np.frombuffer(b";A=", np.uint8),
                                           np.frombuffer(b";T:", np.uint8), np.frombuffer(b"".join(names), np.uint8),
                                           np.array([0, 2, 10, 11], np.int64), _hundredths(values),
                                           _hundredths(values[::-1]), top, _hundredths(cube), _hundredths(cube),
                                           cube >= 0)
    text = data.tobytes().decode("ascii")
    for r in range(n):
        rounded = [float(np.round(v * 100) / 100) for v in (values[r], values[::-1][r], *cube[:, r])]
        features = ", ".join(f"{name.decode()}={decimal(v)} ({'+' if c >= 0 else ''}{decimal(v)})"
                             for name, v, c in zip(names, rounded[2:], cube[:, r], strict=True))
        assert text[offsets[r]:offsets[r + 1]] == f"H:{decimal(rounded[0])};A={decimal(rounded[1])};T:{features}\n"


def test_the_judge_reads_the_same_lines_from_bytes_as_from_strings(judge) -> None:
    """The cleaner hands the classifier its stripped lines as UTF-8 (textbytes.LineBytes, joined by
    kernels.join_lines); the probabilities and reasons are the ones the strings give."""
    texts = ["Home | News | Sport\n\n  Story one is told here, with words.  \n   \nShare this\n",
             "\n".join(line for line in TRICKY_LINES if "\x1c" not in line and "\x85" not in line and "\t" not in line),
             "", "only line", "\u3000x\u3000\nÀ bientôt “1”. " * 20]
    texts = [text.replace("\u3000", " ").replace("\u00a0", " ").replace("\u200b", "") for text in texts]
    docs = [[line.strip() for line in text.split("\n")] for text in texts]
    data = np.frombuffer(textbytes.join(texts), np.uint8)
    starts, ends, _, _ = kernels.strip_spaces(data, *textbytes.line_bounds(data))
    joined, first, last = kernels.join_lines(data, starts, ends)
    assert joined.tobytes() == "\n".join(line for doc in docs for line in doc).encode("utf-8")
    assert [joined[a:b].tobytes().decode() for a, b in zip(first, last, strict=True)] == [
        line for doc in docs for line in doc]
    shares = [np.linspace(0, 1, len(doc)) for doc in docs]
    from_strings = judge.judge(docs, shares, stripped=True)
    from_bytes = judge.judge(docs, shares, stripped=True, utf8=textbytes.LineBytes(data, starts, ends))
    for a, b in zip(from_strings.probabilities, from_bytes.probabilities, strict=True):
        assert np.array_equal(a, b)
    doc_of = np.repeat(np.arange(len(docs)), [len(doc) for doc in docs])
    line_of = np.concatenate([np.arange(len(doc)) for doc in docs])
    assert from_strings.explain_many(doc_of, line_of) == from_bytes.explain_many(doc_of, line_of)
    with pytest.raises(ValueError, match="lines"):
        judge.judge(docs, shares, stripped=True, utf8=textbytes.LineBytes(data, starts[:-1], ends[:-1]))


def test_distinct_per_group_equals_a_lexsort_by_group_and_key() -> None:
    rng = np.random.default_rng(7)
    sizes = rng.integers(0, 40, 300)
    sizes[[0, 5, -1]] = 0  # empty groups, first and last among them
    keys = rng.integers(-50, 50, int(sizes.sum())).astype(np.int64)
    keys[:3] = [np.iinfo(np.int64).min, np.iinfo(np.int64).max, 0]
    group = np.repeat(np.arange(len(sizes)), sizes)
    order = np.lexsort((keys, group))
    sorted_keys, sorted_group = keys[order], group[order]
    fresh = np.ones(len(keys), bool)
    fresh[1:] = (sorted_keys[1:] != sorted_keys[:-1]) | (sorted_group[1:] != sorted_group[:-1])
    expected_keys, expected_group = sorted_keys[fresh], sorted_group[fresh]
    got, bounds = kernels.distinct_per_group(keys, np.concatenate([[0], np.cumsum(sizes)]))
    assert got.tolist() == expected_keys.tolist()
    assert bounds.tolist() == np.searchsorted(expected_group, np.arange(len(sizes) + 1)).tolist()


def test_an_mlp_stage_scores_feature_major_columns_and_the_cleaner_refuses_it(tmp_path) -> None:
    """``--model mlp`` models score as the trees do (feature-major columns, for out-of-fold comparisons); the
    cleaner, which names the features behind each removal from tree leaves, refuses one when it loads."""
    import json

    from cleaners.linemodel import LearnedLineJudge

    names = ["lw", "stop_frac", "endsent"]
    rng = np.random.default_rng(3)
    stage = {"type": "mlp", "features": names, "mu": [0.0] * 3, "sd": [1.0] * 3,
             "layers": [[rng.normal(size=(3, 4)).tolist(), [0.0] * 4], [rng.normal(size=(4, 1)).tolist(), [0.1]]]}
    mlp = lj.MLP(stage)
    rows = rng.random((50, 3)).astype(np.float32)
    assert np.array_equal(mlp.raw_columns(np.ascontiguousarray(rows.T)), mlp.raw(rows))
    path = tmp_path / "mlp.json"
    path.write_text(json.dumps({"version": 1, "threshold": 0.6, "stage1": stage}))
    batch, _, _, _, p = lj.LineJudge.load(str(path))._run([["Home | News", "A sentence of the story, told."]], None)
    assert p.shape == (batch.n_lines,) == (2,)
    with pytest.raises(ValueError, match=r"mlp\.json: the cleaner explains each removal from the leaves of oblivious"):
        LearnedLineJudge(path)
