"""Plain numpy forms of the line classifier's features: the reference the compiled kernels are checked against."""
# ruff: noqa: E702, UP031

from __future__ import annotations

from collections import Counter

import numpy as np

from cleaners.linejudge import (
    _POWW,
    _Q,
    KW_NAMES,
    SENTENCE_LINE_WORDS,
    Batch,
    _seg_cumsum_excl,
    _seg_shift,
    _seg_window_mean,
    _source_frac_flat,
    line_values,
)


def _distinct_words(line: str) -> set[str]:
    """Runs of word characters (``\\w``, below U+10000), each lower-cased on its own; all-digit runs left out."""
    words: set[str] = set()
    word: list[str] = []
    for char in line + " ":
        if ord(char) < 0x10000 and (char.isalnum() or char == "_"):
            lower = char.lower()
            word.append(lower if len(lower) == 1 else char)
        elif word:
            if not all(c.isdecimal() for c in word):
                words.add("".join(word))
            word = []
    return words


def reference_body_overlap(lines: list[str], doc_id: np.ndarray, long_line: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per line, the share of its distinct words that a long line of its document other than itself has, plain and
    weighted by 1 / log(1 + the word's line count in the document): sets and counters, line by line."""
    plain = np.zeros(len(lines), np.float32)
    weighted = np.zeros(len(lines), np.float32)
    for doc in np.unique(doc_id).tolist():
        rows = np.flatnonzero(doc_id == doc).tolist()
        words = {i: _distinct_words(lines[i]) for i in rows}
        lines_with = Counter(w for i in rows for w in words[i])
        long_lines_with = Counter(w for i in rows if long_line[i] for w in words[i])
        for i in rows:
            if words[i]:
                shared = [w for w in words[i] if long_lines_with[w] - int(long_line[i]) > 0]
                total = sum(1.0 / np.log1p(lines_with[w]) for w in words[i])
                plain[i] = len(shared) / len(words[i])
                weighted[i] = sum(1.0 / np.log1p(lines_with[w]) for w in shared) / total
    return plain, weighted


def reference_base_features(batch: Batch) -> dict:
    """``cleaners.linejudge.base_features`` with its document context in numpy, as it was before that part was
    compiled (cleaners.kernels.document_context, neighbour_features)."""
    n = len(batch.lines)
    doc_id = batch.doc_id
    F = {}
    if n == 0:
        return F
    # The per-line values are shared with the library; only the document context is written out here.
    (cnt, nw, nupw, ndw, nsym, wh, wl, nchars, nstop, kw, endsent, endstrict, endcolon, endcomma, endlow, startlow,
     startup, startdig, startpunct, bullet) = line_values(batch.lines)

    # document structure
    counts = np.bincount(doc_id, minlength=batch.ndocs)
    doc_start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    doc_end = doc_start + counts
    gidx = np.arange(n)
    ds = doc_start[doc_id]; de = doc_end[doc_id]
    pos = gidx - ds
    nd = (de - ds).astype(np.float32)
    doc_words = np.bincount(doc_id, weights=nw, minlength=batch.ndocs)[doc_id].astype(np.float32)
    wbefore = _seg_cumsum_excl(nw, ds, gidx).astype(np.float32)

    # line hashes over letter-words (digits/punctuation ignored) for title/dup/source checks
    nwords_l = len(wh)
    fw = np.searchsorted(wl, np.arange(n)) if nwords_l else np.zeros(n, np.int64)
    fe = np.searchsorted(wl, np.arange(n), "right") if nwords_l else np.zeros(n, np.int64)
    nwl = fe - fw
    if nwords_l:
        wpos = np.arange(nwords_l) - fw[wl]
        wc = wh * _POWW[np.minimum(wpos, 63)]
        CS0 = np.concatenate([np.zeros(1, np.uint64), np.cumsum(wc)])
    else:
        CS0 = np.zeros(1, np.uint64)
    H = CS0[fe] - CS0[fw]
    tl_ = doc_start[doc_id]
    th = H[tl_]; tm = nwl[tl_]
    valid = (nwl > 0) & (pos > 0)
    is_title = (pos == 0).astype(np.float32)
    eq_title = (valid & (th == H) & (nwl == tm)).astype(np.float32)
    m = nwl
    ok = valid & (m >= 3) & (m < tm)
    pref = CS0[np.minimum(fw[tl_] + m, len(CS0) - 1)] - CS0[fw[tl_]]
    in_title = (ok & (pref == H)).astype(np.float32)
    ok2 = valid & (tm >= 3) & (m > tm)
    pref2 = CS0[np.minimum(fw + tm, len(CS0) - 1)] - CS0[fw]
    title_in = (ok2 & (pref2 == th)).astype(np.float32)
    key = H ^ (doc_id.astype(np.uint64) * _Q)
    _, inv, cts = np.unique(key, return_inverse=True, return_counts=True)
    dup = np.where(nwl > 0, cts[inv], 1).astype(np.float32)
    batch.H = H; batch.nwl = nwl
    if batch.sources is not None:
        batch.src = _source_frac_flat(H, nwl, doc_id, batch.sources)

    # densest region
    lw = np.log1p(nw)
    dens = _seg_window_mean(nw, ds, de, gidx, 3)
    # argmax per doc of dens
    order = np.lexsort((-dens, doc_id))
    firsts = order[doc_start[counts > 0]]
    amax = np.zeros(batch.ndocs, np.int64); amax[counts > 0] = firsts
    dist_dense = (gidx - amax[doc_id]).astype(np.float32) / np.maximum(nd, 1)
    order2 = np.lexsort((-nw, doc_id))
    lmax = np.zeros(batch.ndocs, np.int64); lmax[counts > 0] = order2[doc_start[counts > 0]]
    dist_long = (gidx - lmax[doc_id]).astype(np.float32) / np.maximum(nd, 1)
    maxw = nw[lmax[doc_id]]

    # sentence blocks (re-join lines split at links)
    prev_endsent = _seg_shift(endsent, doc_id, -1, 1.0)
    cont = (prev_endsent == 0) & ((startlow == 1) | (startpunct == 1))
    cont &= pos > 0
    blk = np.cumsum(~cont) - 1
    bw = np.bincount(blk, weights=nw)
    bstop = np.bincount(blk, weights=nstop)
    bn = np.bincount(blk)
    blast = np.zeros(len(bn), np.int64); blast[blk] = gidx  # last line index of block
    blk_w = bw[blk].astype(np.float32)
    blk_n = bn[blk].astype(np.float32)
    blk_stop = (bstop[blk] / np.maximum(bw[blk], 1)).astype(np.float32)
    blk_end = endsent[blast[blk]]

    kwany = (kw.sum(0) > 0).astype(np.float32)
    F.update({
        "lw": lw, "lchars": np.log1p(nchars), "wlen": nchars / np.maximum(nw, 1),
        "up_frac": nupw / np.maximum(nw, 1), "dig_frac": ndw / np.maximum(nw, 1),
        "lower_frac": cnt[:, 1] / np.maximum(nchars, 1), "digit_cfrac": cnt[:, 3] / np.maximum(nchars, 1),
        "punct_frac": (cnt[:, 5] + cnt[:, 6]) / np.maximum(nchars, 1), "sep_cnt": cnt[:, 7] + nsym,
        "nonascii_frac": cnt[:, 8] / np.maximum(nchars, 1), "commas": cnt[:, 6], "periods": cnt[:, 5],
        "stop_frac": nstop / np.maximum(nw, 1), "nstop": nstop,
        "endsent": endsent, "endstrict": endstrict, "endcolon": endcolon, "endcomma": endcomma, "endlow": endlow,
        "startlow": startlow, "startup": startup, "startdig": startdig, "startpunct": startpunct, "bullet": bullet,
        "pos": pos.astype(np.float32), "pos_rev": (nd - 1 - pos).astype(np.float32),
        "rel": pos / np.maximum(nd - 1, 1), "lnd": np.log1p(nd), "ldocw": np.log1p(doc_words),
        "wrel": wbefore / np.maximum(doc_words, 1), "wshare": nw / np.maximum(doc_words, 1),
        "avg_wpl": doc_words / np.maximum(nd, 1),
        "is_title": is_title, "eq_title": eq_title, "in_title": in_title, "title_in": title_in, "dup": dup,
        "dens": dens, "dist_dense": dist_dense, "dist_long": dist_long, "lmaxw": np.log1p(maxw),
        "blk_w": np.log1p(blk_w), "blk_n": blk_n, "blk_stop": blk_stop, "blk_end": blk_end,
        "blk_share": nw / np.maximum(blk_w, 1), "kwany": kwany, "src": batch.src,
    })
    F["body_ovl"], F["body_ovl_idf"] = reference_body_overlap(batch.lines, doc_id, nw >= 25)
    # document-relative values, one document at a time (the library: np.maximum.reduceat and suffix sums)
    dens32 = np.asarray(dens, np.float32)
    dens_rel = np.zeros(n, np.float32)
    sent_after = np.zeros(n, np.float32)
    for d in range(batch.ndocs):
        rows = np.flatnonzero(doc_id == d)
        if not len(rows):
            continue
        dens_rel[rows] = dens32[rows] / max(dens32[rows].max(), np.float32(1))
        sentence = (endsent[rows] > 0) & (nw[rows] >= SENTENCE_LINE_WORDS)
        sent_after[rows] = np.log1p([int(sentence[k + 1:].sum()) for k in range(len(rows))])
    F["dens_rel"], F["lw_rel"], F["sent_after"] = dens_rel, nw / np.maximum(maxw, np.float32(1)), sent_after
    for i, k in enumerate(KW_NAMES):
        F["kw_" + k] = kw[i]
    # section headers seen before / after the line (comments, related, footer)
    short = nw <= 6
    for name, cat in (("cmt", "comment"), ("rel", "related"), ("copy", "copyright"), ("share", "share")):
        h = (short & (kw[KW_NAMES.index(cat)] > 0)).astype(np.float32)
        before = _seg_cumsum_excl(h, ds, gidx)
        tot = np.bincount(doc_id, weights=h, minlength=batch.ndocs)[doc_id]
        F[f"hdr_{name}_before"] = np.minimum(before, 5).astype(np.float32)
        F[f"hdr_{name}_after"] = np.minimum(tot - before - h, 5).astype(np.float32)
    # neighbour features
    for name in ("lw", "endsent", "stop_frac", "kwany", "up_frac", "sep_cnt", "blk_w", "src", "dup"):
        x = F[name].astype(np.float32)
        for k in (-2, -1, 1, 2):
            F["%s_%+d" % (name, k)] = _seg_shift(x, doc_id, k, -1.0)
    for name in ("lw", "endsent", "stop_frac", "kwany", "src"):
        x = F[name].astype(np.float32)
        for wdw in (3, 10):
            F["%s_w%d" % (name, wdw)] = _seg_window_mean(x, ds, de, gidx, wdw)
    F["_ctx"] = dict(ds=ds, de=de, gidx=gidx, nw=nw, doc_id=doc_id, blk=blk)
    return F
