"""The line classifier's features and evaluators: what ``cleaners.linemodel`` (the cleaner's judge) and the
training scripts (``scripts/training/``) share, so a model is scored in the product exactly as it was trained.

- :class:`Batch` lays documents out as one flat array of non-blank lines; :func:`base_features` computes the
  stage-1 features of every line (byte classes, words, position, title, density, blocks, neighbours, topicality,
  the per-source recurrence ``src``), :func:`stage2_features` those over the neighbours' stage-1 probabilities.
- :class:`Oblivious` (CatBoost-style trees, scored by ``cleaners.kernels``) and :class:`MLP` evaluate a stage.
- :class:`LineJudge` loads a model file and runs both stages (``_run``).
- :func:`assemble` applies the cleaner's valve settings to bare probabilities, for training and evaluation.

Blank lines are not lines here: they carry no text and get no probability. The model file stores its decision
threshold; the valves' thresholds are in ``cleaners.linemodel`` and their shares in ``cleaners.document.CleanConfig``
(all chosen out of fold); docs/line-classifier.md describes features and training.
"""
from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from cleaners import kernels, textbytes

# A batch's features by name: arrays of one value per line, and ``_ctx`` (what stage 2 reads of the layout).
Features = dict[str, Any]

# ---------------------------------------------------------------- lexicons
STOPWORDS = (  # noqa: SIM905 (99 words: one string reads better than a list literal)
    "the of and to a in is that for it on with as was at by be this from or an are have has not but they "
    "which you his her he she we their its were been will would there can more one all also had who said "
    "if about than what when into after so them our i do out up some could other these time only new just "
    "over most may no because how those while him my your us me did such even where between then being "
    "very both much many any should through before"
).split()

KEYWORDS = {
    "share": (
        "share shares shared sharing tweet facebook twitter linkedin pinterest whatsapp reddit print "
        "printer bookmark email digg stumbleupon delicious|email this|e mail"
    ),
    "subscribe": (
        "subscribe subscription subscriptions newsletter newsletters signup rss feed feeds "
        "unsubscribe|sign up|follow us|follow on"
    ),
    "cookie": "cookie cookies privacy gdpr consent disclaimer|terms of|terms and|terms conditions",
    "copyright": "copyright trademark trademarks|rights reserved|all rights",
    "comment": (
        "comment comments commented reply replies permalink discuss discussion wrote said|report "
        "abuse|leave a|post a|add your|add comment"
    ),
    "related": (
        "related recommended popular trending next previous prev latest headlines archive archives "
        "more|read more|more from|you may|also like|most read|most viewed|more stories|see also|continue "
        "reading|top stories|more news|view all|see all"
    ),
    "login": "login logout register account password username profile|log in|log out|sign in|sign out|my profile",
    "menu": (
        "home menu navigation search contact about sitemap faq help careers advertise jobs skip|contact "
        "us|about us|site map|go to|back to|main content"
    ),
    "ad": "advertisement advertising sponsored promoted partner partners affiliate ads ad",
    "date": (
        "jan january feb february mar march apr april may jun june jul july aug august sep sept "
        "september oct october nov november dec december monday tuesday wednesday thursday friday "
        "saturday sunday am pm ago updated published posted gmt est edt pst utc"
    ),
    "byline": "by author authors writer editor reporter correspondent contributor staff|written by",
    "media": (
        "photo photos image images video videos getty reuters afp credit caption watch play gallery "
        "slideshow click tap enlarge listen podcast"
    ),
}
KW_NAMES = list(KEYWORDS)
_M64 = (1 << 64) - 1
_P = 1099511628211


def _whash(w: str) -> int:
    """32-bit polynomial hash of a lowercase ASCII word (same as the numpy path)."""
    h = 0
    for k, ch in enumerate(w.encode()):
        h = (h + (ch | 32) * pow(_P, k & 31, 1 << 32)) & 0xFFFFFFFF
    return h


_POW32 = np.array([pow(_P, k, 1 << 32) for k in range(32)], dtype=np.uint32)
_Q = np.uint64(11400714819323198485)
_Q2 = np.uint64(14029467366897019727)
_uni, _bi = {}, {}
for _i, (_k, _v) in enumerate(KEYWORDS.items()):
    _parts = _v.split("|")
    for _w in _parts[0].split():
        _uni.setdefault(_whash(_w), _i)
    for _ph in _parts[1:]:
        _a, _b = _ph.split()[:2]
        _bi[(_whash(_a) * int(_Q) + _whash(_b)) & _M64] = _i
_BI_H = np.array(sorted(_bi), dtype=np.uint64)
_BI_C = np.array([_bi[h] for h in sorted(_bi)], np.int64)
_POWW = np.array([pow(1469598103934665603, k + 1, 1 << 64) for k in range(64)], dtype=np.uint64)
_BI_FIRST = {_whash(_ph.split()[0]) for _v in KEYWORDS.values() for _ph in _v.split('|')[1:]}
# Stopwords, keyword words and first words of keyword phrases, by word hash (cleaners.kernels.word_table).
_WORD_TABLE = kernels.word_table({_whash(w) for w in STOPWORDS}, _uni, _BI_FIRST)


# byte classes
_LUT = np.zeros(256, np.uint8)
for _c in range(256):
    ch = chr(_c)
    if _c >= 0xC0:
        _LUT[_c] = 8
    elif _c >= 0x80:
        _LUT[_c] = 9
    elif ch.islower():
        _LUT[_c] = 1
    elif ch.isupper():
        _LUT[_c] = 2
    elif ch.isdigit():
        _LUT[_c] = 3
    elif ch in " \t\r\x0b\x0c":
        _LUT[_c] = 4
    elif ch in ".!?":
        _LUT[_c] = 5
    elif ch in ",;:'\"()-":
        _LUT[_c] = 6
    elif ch in "|>/*#=_~+<[]{}":
        _LUT[_c] = 7
_LUT[10] = 10
K = 11
_WORDISH = np.zeros(256, bool)
_WORDISH[[c for c in range(256) if _LUT[c] in (1, 2, 3, 8, 9)]] = True



def _source_frac_flat(H: np.ndarray, nwl: np.ndarray, doc_id: np.ndarray, sources: Sequence[str],
                      min_docs: int = 5) -> np.ndarray:
    """Per line: the share of the OTHER documents of its source that hold a line of the same hash ``H``
    (0 for lines without words, and in sources of fewer than ``min_docs`` documents)."""
    source_codes: dict[str, int] = {}
    source_of_doc = np.array([source_codes.setdefault(s, len(source_codes)) for s in sources], np.int64)
    docs_per_source = np.bincount(source_of_doc, minlength=len(source_codes))
    source_of_line = source_of_doc[doc_id]
    has_words = nwl > 0
    doc_line_key = H ^ (doc_id.astype(np.uint64) * _Q)
    # unique (document, H) pairs -> how many documents of each source hold each H
    _, first_ix = np.unique(doc_line_key, return_index=True)
    first_ix = first_ix[has_words[first_ix]]
    source_line_key = H ^ (source_of_line.astype(np.uint64) * _Q2)
    keys, docs_with_key = np.unique(source_line_key[first_ix], return_counts=True)
    pos = np.minimum(np.searchsorted(keys, source_line_key), len(keys) - 1)
    docs_with_line = np.where(keys[pos] == source_line_key, docs_with_key[pos], 1)
    docs_in_source = docs_per_source[source_of_line]
    share = (docs_with_line - 1) / np.maximum(docs_in_source - 1, 1)
    return np.where(has_words & (docs_in_source >= min_docs), share, 0.0).astype(np.float32)


# ---------------------------------------------------------------- features
def _seg_shift(x: np.ndarray, doc_id: np.ndarray, k: int, fill: float) -> np.ndarray:
    """x shifted by k within documents (value of line i+k), fill outside doc."""
    n = len(x)
    out = np.full(n, fill, dtype=np.float32)
    if k > 0:
        out[:-k] = x[k:]
        bad = np.ones(n, bool)
        bad[:-k] = doc_id[k:] != doc_id[:-k]
    else:
        k = -k
        out[k:] = x[:-k]
        bad = np.ones(n, bool)
        bad[k:] = doc_id[:-k] != doc_id[k:]
    out[bad] = fill
    return out


def _seg_window_mean(x: np.ndarray, doc_start: np.ndarray, doc_end: np.ndarray, idx_global: np.ndarray,
                     w: int) -> np.ndarray:
    """mean of x over lines [i-w, i+w] clipped to the document."""
    cs = np.concatenate([[0.0], np.cumsum(x, dtype=np.float64)])
    lo = np.maximum(idx_global - w, doc_start)
    hi = np.minimum(idx_global + w + 1, doc_end)
    return ((cs[hi] - cs[lo]) / (hi - lo)).astype(np.float32)


def _seg_cumsum_excl(x: np.ndarray, doc_start_per_line: np.ndarray, idx_global: np.ndarray) -> np.ndarray:
    cs = np.concatenate([[0.0], np.cumsum(x, dtype=np.float64)])
    return cs[idx_global] - cs[doc_start_per_line]


class Batch:
    """Flattened batch of documents (non-blank, stripped lines)."""

    def __init__(self, docs: Sequence[Sequence[str]], source_frac: Sequence[Sequence[float] | np.ndarray] | None = None,
                 sources: Sequence[str] | None = None, stripped: bool = False,
                 utf8: textbytes.LineBytes | None = None) -> None:
        """docs: per document its lines (``stripped=True``: already stripped); source_frac: per document,
        a sequence (or array) of one value per line. ``utf8``: the same stripped lines, end to end, as
        cleaners.textbytes.LineBytes; the features are read from its bytes, and ``lines`` is left None
        (joining and encoding the strings again was 5% of the cleaner's time on the dev set)."""
        self.sources = sources
        self.utf8 = None
        if utf8 is not None:
            sizes = np.fromiter(map(len, docs), np.int64, len(docs))
            nonblank = utf8.ends > utf8.starts
            keep = np.flatnonzero(nonblank)
            self.lines = None
            self.utf8 = kernels.join_lines(utf8.data, utf8.starts[keep], utf8.ends[keep])
        else:
            per_doc = docs if stripped else [list(map(str.strip, doc)) for doc in docs]
            sizes = np.fromiter(map(len, per_doc), np.int64, len(per_doc))
            flat = [line for doc in per_doc for line in doc]
            nonblank = np.fromiter(map(bool, flat), bool, len(flat))
            keep = np.flatnonzero(nonblank)
            self.lines = flat if len(keep) == len(flat) else list(itertools.compress(flat, nonblank))
        self.n_lines = len(keep)
        self.ndocs = len(docs)
        doc_of = np.repeat(np.arange(len(docs)), sizes)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64) if len(sizes) else np.zeros(0, np.int64)
        self.doc_id = doc_of[keep]
        self.line_ix = keep - starts[self.doc_id]
        if source_frac is not None and len(nonblank):
            self.src = np.concatenate([np.asarray(f, np.float32) for f in source_frac])[keep]
        else:
            self.src = np.zeros(self.n_lines, np.float32)
        # Filled by LineJudge._run: the stage-1 probabilities, and for oblivious trees each line's stage-1
        # leaf per tree (the explanations' attributions are table lookups on them).
        self.p1 = None
        self.leaves1 = None


_SYM2 = {(0xC2, x) for x in (0xBB, 0xAB, 0xB7, 0xA9, 0xAE)}          # » « · © ®
# • › ‹ ► ▶ → ™
_SYM3 = {(0x80, 0xA2), (0x80, 0xBA), (0x80, 0xB9), (0x96, 0xBA), (0x96, 0xB6), (0x86, 0x92), (0x84, 0xA2)}
_SYM2_K = np.array(sorted(a * 256 + b for a, b in _SYM2), np.int64)
_SYM3_K = np.array(sorted(a * 256 + b for a, b in _SYM3), np.int64)
_ENDQ3 = np.array(sorted([0x809D, 0x8099, 0x80A6]), np.int64)      # ” ’ …
# Section headers (short lines with a keyword of these lexicons), counted before and after each line.
_HEADER_NAMES = ("cmt", "rel", "copy", "share")
_HEADER_LEXICONS = ("comment", "related", "copyright", "share")
# Neighbour features: these features of the lines around, and the means of some over a window.
_SHIFTED = ("lw", "endsent", "stop_frac", "kwany", "up_frac", "sep_cnt", "blk_w", "src", "dup")
_SHIFTS = np.array([-2, -1, 1, 2], np.int64)
_WINDOWED_ROWS = np.array([_SHIFTED.index(name) for name in ("lw", "endsent", "stop_frac", "kwany", "src")], np.int64)
_WIDTHS = np.array([3, 10], np.int64)


def line_values(lines: list[str]) -> tuple[np.ndarray, ...]:
    """The per-line values the features are made of, each line on its own (non-empty, stripped ``lines``):
    byte-class counts, words (all, upper-case, digits), separator symbols, letter-run hashes and their lines,
    characters, stopwords, keyword lexicons, and how the line ends and starts (the names of the return)."""
    return line_values_utf8(*_joined_utf8(lines))


def _joined_utf8(lines: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``lines`` joined by one ``\\n`` as UTF-8, with each line's byte bounds."""
    data = np.frombuffer("\n".join(lines).encode("utf-8"), np.uint8)
    return data, *textbytes.line_bounds(data)


def line_values_utf8(b: np.ndarray, lstart: np.ndarray, lend: np.ndarray) -> tuple[np.ndarray, ...]:
    """:func:`line_values` of the lines ``b[lstart[i]:lend[i]]`` of UTF-8 ``b``, non-empty and joined by one
    ``\\n`` (the newline after a line counts in its byte classes)."""
    n = len(lstart)
    N = len(b)
    # Byte classes, words, letter-run hashes and separator symbols per line: one compiled pass
    # (cleaners.kernels.line_byte_stats; the same numbers as the numpy passes it replaced).
    cnt, nw, nupw, ndw, nsym, wh, wl = kernels.line_byte_stats(b, lstart, lend, _LUT, _WORDISH, _POW32,
                                                               _SYM2_K, _SYM3_K, K)
    nbytes = (lend - lstart).astype(np.float32)
    nchars = nbytes - cnt[:, 9]
    nstop, kw = kernels.word_lexicon_counts(wh, wl, n, *_WORD_TABLE, _BI_H, _BI_C, len(KW_NAMES), _Q)
    fb = b[lstart]  # each line's first byte
    lbt = b[lend - 1]  # and its last
    f_cls = _LUT[fb]
    l3 = np.where(lend - lstart >= 3, b[np.maximum(lend - 2, 0)].astype(np.int64) * 256 + lbt, 0)
    endq = ((lend - lstart >= 3) & (b[np.maximum(lend - 3, 0)] == 0xE2) & np.isin(l3, _ENDQ3)) | \
           ((lend - lstart >= 2) & (b[np.maximum(lend - 2, 0)] == 0xC2) & (lbt == 0xBB))
    endsent = (np.isin(lbt, list(map(ord, '.!?"\')'))) | endq).astype(np.float32)
    endstrict = (np.isin(lbt, list(map(ord, ".!?"))) | ((lbt == 0xA6) & endq)).astype(np.float32)
    endcolon = (lbt == ord(":")).astype(np.float32)
    endcomma = (lbt == ord(",")).astype(np.float32)
    endlow = (_LUT[lbt] == 1).astype(np.float32)
    startlow = (f_cls == 1).astype(np.float32)
    startup = (f_cls == 2).astype(np.float32)
    startdig = (f_cls == 3).astype(np.float32)
    startpunct = np.isin(fb, list(map(ord, ",.;:)!?'\""))).astype(np.float32)
    bullet = (np.isin(fb, list(map(ord, "-*>|"))) | ((fb == 0xE2) & (b[np.minimum(lstart + 1, N - 1)] != 0x80)) |
              ((fb == 0xE2) & (b[np.minimum(lstart + 2, N - 1)] == 0xA2)) |
              ((fb == 0xC2) & np.isin(b[np.minimum(lstart + 1, N - 1)], [0xBB, 0xB7]))).astype(np.float32)
    return (cnt, nw, nupw, ndw, nsym, wh, wl, nchars, nstop, kw, endsent, endstrict, endcolon, endcomma, endlow,
            startlow, startup, startdig, startpunct, bullet)


# From how many words a line counts as the article's body for the topicality features (kernels.body_overlap).
BODY_LINE_WORDS = 25


# From how many words a line counts as a sentence for ``sent_after``.
SENTENCE_LINE_WORDS = 4


def _document_relative(nw: np.ndarray, endsent: np.ndarray, dens: np.ndarray, maxw: np.ndarray, ds_doc: np.ndarray,
                       de_doc: np.ndarray, doc_id: np.ndarray) -> dict[str, np.ndarray]:
    """A line's length and density against its own document's, and how much sentence text follows it.
    The absolute values alone read a document of short lines (a listicle, a review's pros and cons, a
    results list) as a footer from some point on: real pages end in footers, those documents do not. The batch
    holds at least one line (``base_features`` returns before otherwise)."""
    nonempty = np.flatnonzero(de_doc > ds_doc)
    densest = np.zeros(len(ds_doc), np.float32)
    densest[nonempty] = np.maximum.reduceat(dens, ds_doc[nonempty])  # lines are grouped by document, in order
    dens_rel = dens / np.maximum(densest[doc_id], np.float32(1))
    lw_rel = nw / np.maximum(maxw, np.float32(1))
    sentence = ((endsent > 0) & (nw >= SENTENCE_LINE_WORDS)).astype(np.float64)
    running = np.cumsum(sentence)  # the sentence lines up to each line; below it: its document's total minus that
    sent_after = np.log1p(running[de_doc[doc_id] - 1] - running).astype(np.float32)
    return {"dens_rel": dens_rel.astype(np.float32), "lw_rel": lw_rel.astype(np.float32), "sent_after": sent_after}


def base_features(batch: Batch) -> Features:
    doc_id = batch.doc_id
    F = {}
    n = batch.n_lines
    if n == 0:
        return F
    utf8 = _joined_utf8(batch.lines) if batch.utf8 is None else batch.utf8
    (cnt, nw, nupw, ndw, nsym, wh, wl, nchars, nstop, kw, endsent, endstrict, endcolon, endcomma, endlow, startlow,
     startup, startdig, startpunct, bullet) = line_values_utf8(*utf8)

    # Document context (position, title, density, sentence blocks, section headers): one compiled pass
    # (cleaners.kernels.document_context; the same numbers as the numpy passes it replaced, 0.4 s of the
    # dev set's cleaning before).
    short = nw <= 6
    headers = np.stack([(short & (kw[KW_NAMES.index(cat)] > 0)) for cat in _HEADER_LEXICONS]).astype(np.float32)
    (ds_doc, de_doc, pos, pos_rev, rel, nd, doc_words, wrel, wshare, avg_wpl, H, nwl, is_title, eq_title, in_title,
     title_in, dup, dens, dist_dense, dist_long, maxw, blk, blk_w, blk_n, blk_stop, blk_end, hdr_before,
     hdr_after) = kernels.document_context(doc_id, batch.ndocs, nw, nstop, endsent, startlow, startpunct, headers,
                                           wh, wl, _POWW)
    batch.H = H
    batch.nwl = nwl
    if batch.sources is not None:
        batch.src = _source_frac_flat(H, nwl, doc_id, batch.sources)
    kwany = (kw.sum(0) > 0).astype(np.float32)
    # Topicality: how much of a line's vocabulary the document's long lines share. Comments, bios and teasers of
    # other articles after the article look like prose but share less of it.
    body_ovl, body_ovl_idf = kernels.body_overlap(*utf8, doc_id, nw >= BODY_LINE_WORDS, kernels.WORD_CHARACTERS)
    F.update({
        "lw": np.log1p(nw), "lchars": np.log1p(nchars), "wlen": nchars / np.maximum(nw, 1),
        "up_frac": nupw / np.maximum(nw, 1), "dig_frac": ndw / np.maximum(nw, 1),
        "lower_frac": cnt[:, 1] / np.maximum(nchars, 1), "digit_cfrac": cnt[:, 3] / np.maximum(nchars, 1),
        "punct_frac": (cnt[:, 5] + cnt[:, 6]) / np.maximum(nchars, 1), "sep_cnt": cnt[:, 7] + nsym,
        "nonascii_frac": cnt[:, 8] / np.maximum(nchars, 1), "commas": cnt[:, 6], "periods": cnt[:, 5],
        "stop_frac": nstop / np.maximum(nw, 1), "nstop": nstop,
        "endsent": endsent, "endstrict": endstrict, "endcolon": endcolon, "endcomma": endcomma, "endlow": endlow,
        "startlow": startlow, "startup": startup, "startdig": startdig, "startpunct": startpunct, "bullet": bullet,
        "pos": pos, "pos_rev": pos_rev, "rel": rel, "lnd": np.log1p(nd), "ldocw": np.log1p(doc_words),
        "wrel": wrel, "wshare": wshare, "avg_wpl": avg_wpl,
        "is_title": is_title, "eq_title": eq_title, "in_title": in_title, "title_in": title_in, "dup": dup,
        "dens": dens, "dist_dense": dist_dense, "dist_long": dist_long, "lmaxw": np.log1p(maxw),
        "blk_w": np.log1p(blk_w), "blk_n": blk_n, "blk_stop": blk_stop, "blk_end": blk_end,
        "blk_share": nw / np.maximum(blk_w, 1), "kwany": kwany, "src": batch.src,
        "body_ovl": body_ovl, "body_ovl_idf": body_ovl_idf,
    })
    F.update(_document_relative(nw, endsent, dens, maxw, ds_doc, de_doc, doc_id))
    for i, k in enumerate(KW_NAMES):
        F["kw_" + k] = kw[i]
    for j, name in enumerate(_HEADER_NAMES):
        F[f"hdr_{name}_before"] = hdr_before[j]
        F[f"hdr_{name}_after"] = hdr_after[j]
    # neighbour features: each of _SHIFTED at 2 lines either side, and _WINDOWED averaged over 3 and 10 lines
    values = np.stack([np.asarray(F[name], np.float32) for name in _SHIFTED])
    shifted, means = kernels.neighbour_features(values, doc_id, ds_doc, de_doc, _SHIFTS, _WINDOWED_ROWS, _WIDTHS)
    for f, name in enumerate(_SHIFTED):
        for s_, k in enumerate(_SHIFTS.tolist()):
            F[f"{name}_{k:+d}"] = shifted[f * len(_SHIFTS) + s_]
    for w, row in enumerate(_WINDOWED_ROWS.tolist()):
        for s_, width in enumerate(_WIDTHS.tolist()):
            F[f"{_SHIFTED[row]}_w{width}"] = means[w * len(_WIDTHS) + s_]
    gidx = np.arange(n)
    F["_ctx"] = dict(ds=ds_doc[doc_id], de=de_doc[doc_id], gidx=gidx, nw=nw, doc_id=doc_id, blk=blk)
    return F


def stage2_features(F: Features, p1: np.ndarray) -> Features:
    """features over stage-1 junk probabilities of neighbours / doc."""
    c = F["_ctx"]
    ds, de, gidx, nw, doc_id, blk = c["ds"], c["de"], c["gidx"], c["nw"], c["doc_id"], c["blk"]
    p = p1.astype(np.float32)
    G = {"p1": p}
    for k in (-3, -2, -1, 1, 2, 3):
        G[f"p1_{k:+d}"] = _seg_shift(p, doc_id, k, -1.0)
    for wdw in (2, 5, 15, 40):
        G[f"p1_w{wdw}"] = _seg_window_mean(p, ds, de, gidx, wdw)
    ndocs = int(doc_id.max()) + 1 if len(doc_id) else 0
    dn = np.bincount(doc_id, minlength=ndocs).astype(np.float32)
    G["p1_doc"] = (np.bincount(doc_id, weights=p, minlength=ndocs) / np.maximum(dn, 1))[doc_id]
    cw = nw * (p < 0.5)
    tot = np.bincount(doc_id, weights=cw, minlength=ndocs)[doc_id]
    before = _seg_cumsum_excl(cw, ds, gidx)
    G["cw_before"] = (before / np.maximum(tot, 1)).astype(np.float32)
    G["cw_after"] = ((tot - before - cw) / np.maximum(tot, 1)).astype(np.float32)
    G["lcw_doc"] = np.log1p(tot).astype(np.float32)
    wp = nw * p
    words_in_doc = np.bincount(doc_id, weights=nw, minlength=ndocs)
    G["p1_wdoc"] = (np.bincount(doc_id, weights=wp, minlength=ndocs) / np.maximum(words_in_doc, 1))[doc_id]
    bn = np.bincount(blk)
    G["p1_blk"] = (np.bincount(blk, weights=p) / np.maximum(bn, 1))[blk]
    # distance (in lines) to nearest confident content line with >= 10 words
    anchor = (p < 0.3) & (nw >= 10)
    idx = np.where(anchor, gidx, -10**9)
    last_a = np.maximum.accumulate(idx)
    idx2 = np.where(anchor, gidx, 10**9)
    next_a = np.minimum.accumulate(idx2[::-1])[::-1]
    dprev = np.where(last_a >= ds, gidx - last_a, 999)
    dnext = np.where(next_a < de, next_a - gidx, 999)
    G["d_anchor_prev"] = np.minimum(dprev, 999).astype(np.float32)
    G["d_anchor_next"] = np.minimum(dnext, 999).astype(np.float32)
    for name in ("lw", "rel", "wrel", "src", "endsent", "stop_frac", "kwany", "is_title", "eq_title", "in_title",
                 "blk_w", "lnd", "avg_wpl", "body_ovl", "body_ovl_idf"):
        G[name] = F[name]
    return G


def to_matrix(F: Features, names: Sequence[str]) -> np.ndarray | None:
    return np.column_stack([np.asarray(F[k], np.float32) for k in names]) if names else None


def to_columns(F: Features, names: Sequence[str]) -> np.ndarray:
    """Feature-major (n_features, n_rows) float32 matrix: what the tree evaluator reads, built without
    the row-major copy and transpose of ``to_matrix``."""
    n = len(F[names[0]])
    out = np.empty((len(names), n), np.float32)
    for i, k in enumerate(names):
        out[i] = F[k]
    return out


# ---------------------------------------------------------------- oblivious tree ensemble
class Oblivious:
    """numpy evaluator for a CatBoost-style oblivious tree ensemble."""

    def __init__(self, d: dict[str, Any]) -> None:
        self.features = d["features"]
        self.bias = float(d["bias"])
        self.split_f = [np.asarray(t, np.int64) for t in d["split_f"]]
        self.split_b = [np.asarray(t, np.float32) for t in d["split_b"]]
        self.leaves = [np.asarray(t, np.float32) for t in d["leaves"]]
        self.weights = [np.asarray(t, np.float32) for t in d.get("weights", [[]] * len(self.leaves))]
        depths = {len(t) for t in self.split_f}
        if len(depths) > 1:
            raise ValueError(f"oblivious trees of one depth expected, got depths {sorted(depths)}")
        # The same trees as (n_trees, depth) and (n_trees, leaves) tables for the compiled evaluator.
        self.split_f_table = np.asarray(self.split_f, np.int64).reshape(len(self.split_f), -1)
        self.split_b_table = np.asarray(self.split_b, np.float32).reshape(len(self.split_b), -1)
        self.leaf_table = np.asarray(self.leaves, np.float32).reshape(len(self.leaves), -1)

    def raw(self, X: np.ndarray) -> np.ndarray:
        """X: (n, F) matrix."""
        return self.raw_columns(np.ascontiguousarray(np.asarray(X, np.float32).T))

    def raw_columns(self, XT: np.ndarray, leaves_out: np.ndarray | None = None) -> np.ndarray:
        """XT: feature-major (F, n) float32 matrix (compiled: cleaners.kernels.oblivious_scores). ``leaves_out``:
        an optional (n_trees, n) uint8 array that receives each row's leaf in each tree (for attributions
        without re-evaluating)."""
        XT = np.ascontiguousarray(XT, np.float32)
        record = leaves_out if leaves_out is not None else np.zeros((0, 0), np.uint8)
        return kernels.oblivious_scores(XT, self.split_f_table, self.split_b_table, self.leaf_table,
                                        self.bias, record)


class MLP:
    """numpy evaluator for a small ReLU MLP over signed-log, standardized features."""

    def __init__(self, d: dict[str, Any]) -> None:
        self.features = d["features"]
        self.mu = np.asarray(d["mu"], np.float32)
        self.sd = np.asarray(d["sd"], np.float32)
        self.layers = [(np.asarray(W, np.float32), np.asarray(b, np.float32)) for W, b in d["layers"]]

    def transform(self, X: np.ndarray) -> np.ndarray:
        return (np.sign(X) * np.log1p(np.abs(X)) - self.mu) / self.sd

    def _forward(self, Z: np.ndarray) -> np.ndarray:
        h = Z
        for i, (W, b) in enumerate(self.layers):
            h = h @ W + b
            if i < len(self.layers) - 1:
                np.maximum(h, 0, out=h)
        return h[:, 0]

    def raw(self, X: np.ndarray) -> np.ndarray:
        return self._forward(self.transform(np.asarray(X, np.float32))).astype(np.float64)

    def raw_columns(self, XT: np.ndarray, leaves_out: np.ndarray | None = None) -> np.ndarray:
        """XT: feature-major (F, n) matrix, as :meth:`Oblivious.raw_columns` takes it (an MLP has no leaves to
        record: ``leaves_out`` is left as it is)."""
        return self.raw(np.asarray(XT, np.float32).T)


def make_evaluator(d: dict[str, Any]) -> Oblivious | MLP:
    return MLP(d) if d.get("type") == "mlp" else Oblivious(d)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


class LineJudge:
    def __init__(self, model: dict[str, Any]) -> None:
        self.m = model
        self.s1 = make_evaluator(model["stage1"])
        self.s2 = make_evaluator(model["stage2"]) if model.get("stage2") else None
        self.threshold = float(model.get("threshold", 0.5))

    @classmethod
    def load(cls, path: str) -> LineJudge:
        with open(path) as f:
            return cls(json.load(f))

    def _run(self, docs: Sequence[Sequence[str]], source_frac: Sequence[Sequence[float] | np.ndarray] | None,
             sources: Sequence[str] | None = None, stripped: bool = False, utf8: textbytes.LineBytes | None = None
             ) -> tuple[Batch, Features, np.ndarray | None, np.ndarray | None, np.ndarray]:
        batch = Batch(docs, source_frac, sources, stripped, utf8)
        F = base_features(batch)
        if not batch.n_lines:
            return batch, F, None, None, np.zeros(0)
        C1 = to_columns(F, self.s1.features)
        if isinstance(self.s1, Oblivious):
            batch.leaves1 = np.empty((len(self.s1.leaves), C1.shape[1]), np.uint8)
            p1 = sigmoid(self.s1.raw_columns(C1, leaves_out=batch.leaves1))
        else:
            p1 = sigmoid(self.s1.raw_columns(C1))
        batch.p1 = p1  # the line-alone probability, kept for explanations
        if self.s2 is None:
            return batch, F, C1, None, p1
        G = stage2_features(F, p1)
        C2 = to_columns(G, self.s2.features)
        p2 = sigmoid(self.s2.raw_columns(C2))
        return batch, F, C1, C2, p2


def assemble(batch: Batch, p: np.ndarray, ndocs: int, thr: float, max_removed_share: float | None = None,
             fallback_threshold: float | None = None, cautious_threshold: float | None = None,
             max_uncertain_share: float | None = None, keep_all_if_eaten: bool = False,
             keep_if_only_uncertain: bool = False) -> list[str]:
    """Joined kept lines per document, with the cleaner's valve settings in its order (cleaners.document._finalize;
    the classifier alone: no rule packs, template lines, title or short-sentence rule):
    drops at `thr`; at `cautious_threshold` instead when the lines dropped below it hold more than
    `max_uncertain_share` of the words, or (keep_if_only_uncertain) when no line is at or above it (with no rule packs
    or template lines here, the classifier's uncertain drops are then the only evidence of junk);
    at `fallback_threshold` when more than `max_removed_share` would go;
    and (keep_all_if_eaten) nothing when even that would remove more than `max_removed_share`.
    Words are ``str.split``'s here; the cleaner counts two characters of a script written without spaces as a word
    (cleaners.kernels.line_word_units): the same on the dev set's pages but for a few Chinese and Japanese ones."""
    if (max_uncertain_share is None) != (cautious_threshold is None) or \
            (max_removed_share is None) != (fallback_threshold is None):
        raise ValueError("give max_uncertain_share with cautious_threshold, max_removed_share with fallback_threshold")
    keep = p < thr
    nw = np.fromiter((len(line.split()) for line in batch.lines), np.float64, count=len(batch.lines))
    tot = np.bincount(batch.doc_id, weights=nw, minlength=ndocs)

    def words_in(mask: np.ndarray) -> np.ndarray:
        return np.bincount(batch.doc_id, weights=nw * mask, minlength=ndocs)

    def removed(kept: np.ndarray) -> np.ndarray:
        return tot - words_in(kept)

    if max_uncertain_share is not None:
        unsure = words_in(~keep & (p < cautious_threshold)) > max_uncertain_share * tot
        if keep_if_only_uncertain:
            unsure |= np.bincount(batch.doc_id, weights=p >= cautious_threshold, minlength=ndocs) == 0
        keep = np.where(unsure[batch.doc_id], p < cautious_threshold, keep)
    if max_removed_share is not None:
        bad = removed(keep) > max_removed_share * tot
        keep = np.where(bad[batch.doc_id], p < fallback_threshold, keep)
        if keep_all_if_eaten:
            keep |= (removed(keep) > max_removed_share * tot)[batch.doc_id]
    out = [[] for _ in range(ndocs)]
    for d, line, k in zip(batch.doc_id.tolist(), batch.lines, keep.tolist(), strict=False):
        if k:
            out[d].append(line)
    return ["\n".join(x) for x in out]
