"""Compiled inner loops (numba): the line classifier's byte-level features, tree scoring and attributions,
and the line keys of the learned per-source step.

Why compiled: the numpy forms made one pass over memory per elementary operation (a comparison, a shift,
a gather per tree and depth, a class per byte) and wrote a temporary for each; the line keys were Python
string work per line. Fused into one loop, each runs from registers. Each kernel gives exactly what the
form it replaced gave (float32 additions in the same order), so probabilities, explanations and line keys
are unchanged; ``tests/test_kernels.py`` checks them against plain reference forms. What each step took
before and after, on the dev set: docs/performance.md.

``cache=True`` compiles once per installation (a few seconds on first use, then loaded from numba's cache
next to this file or in the user's cache directory); ``nogil=True`` lets threads score shards at once.
"""

from __future__ import annotations

import numba
import numpy as np

_JIT = {"cache": True, "nogil": True, "nopython": True}


@numba.jit(**_JIT)
def oblivious_scores(columns: np.ndarray, split_features: np.ndarray, split_borders: np.ndarray,
                     leaf_values: np.ndarray, bias: float, leaves_out: np.ndarray) -> np.ndarray:
    """Raw scores of an oblivious-tree ensemble.

    ``columns``: (n_features, n_rows) float32; ``split_features``/``split_borders``: (n_trees, depth);
    ``leaf_values``: (n_trees, 2**depth) float32. Leaf index bit d is split d's outcome (value > border).
    ``leaves_out``: (n_trees, n_rows) uint8 that receives each row's leaf per tree, or a (0, 0) array.
    Returns float64 scores, summed in float32 from ``bias`` in tree order (as the numpy evaluator did).
    Rows go in blocks of 2,048, so each tree's comparisons run over short contiguous vectors (branch-free,
    vectorized by LLVM) and the block's leaf indices stay in L1 cache.
    """
    n_trees, depth = split_features.shape
    n_rows = columns.shape[1]
    record = leaves_out.shape[0] > 0
    out = np.empty(n_rows, np.float64)
    block = 2048
    acc = np.empty(block, np.float32)
    index = np.empty(block, np.uint8)
    for start in range(0, n_rows, block):
        stop = min(start + block, n_rows)
        m = stop - start
        acc[:m] = np.float32(bias)
        for t in range(n_trees):
            row = columns[split_features[t, 0], start:stop]
            border = split_borders[t, 0]
            for r in range(m):
                index[r] = np.uint8(row[r] > border)
            for d in range(1, depth):
                row = columns[split_features[t, d], start:stop]
                border = split_borders[t, d]
                shift = np.uint8(d)
                for r in range(m):
                    index[r] |= np.uint8(row[r] > border) << shift
            values = leaf_values[t]
            for r in range(m):
                acc[r] += values[index[r]]
            if record:
                leaves_out[t, start:stop] = index[:m]
        out[start:stop] = acc[:m]
    return out


@numba.jit(**_JIT)
def top_attributions(leaves: np.ndarray, rows: np.ndarray, split_features: np.ndarray, deltas: np.ndarray,
                     n_features: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """For each of ``rows``: the ``k`` features with the largest Saabas path attribution, largest first.

    ``leaves``: (n_trees, n_all_rows) uint8, each row's leaf per tree; ``deltas``: (n_trees, depth, 2**depth)
    float32, how much split d moved the expected leaf value on the path to each leaf. Attributions add up
    in float32 in tree, then depth order; ties go to the lower feature index (as numpy's argmax).
    Returns (top feature indices (k, n), their attributions (k, n)). Rows go in blocks of 512 whose
    (features, rows) sums stay in cache; one row at a time read the leaves 3x slower (a cache miss per tree).
    """
    n_trees, depth = split_features.shape
    n = len(rows)
    top = np.empty((k, n), np.int64)
    pushes = np.empty((k, n), np.float32)
    block = 512
    work = np.zeros((n_features, block), np.float32)
    leaf = np.empty(block, np.int64)
    best = np.empty(block, np.int64)
    best_value = np.empty(block, np.float32)
    for start in range(0, n, block):
        stop = min(start + block, n)
        m = stop - start
        work[:, :m] = 0.0
        for t in range(n_trees):
            tree_leaves = leaves[t]
            for r in range(m):
                leaf[r] = tree_leaves[rows[start + r]]
            for d in range(depth):
                delta = deltas[t, d]
                sums = work[split_features[t, d]]
                for r in range(m):
                    sums[r] += delta[leaf[r]]
        for i in range(k):
            # Feature-outer, row-inner: contiguous in ``work`` (a row-outer scan touched a cache line per
            # feature and row, and took most of the kernel's time). Strict ">" in feature order keeps the
            # lower index on ties.
            best[:m] = 0
            best_value[:m] = work[0, :m]
            for f in range(1, n_features):
                sums = work[f]
                for r in range(m):
                    if sums[r] > best_value[r]:
                        best_value[r] = sums[r]
                        best[r] = f
            for r in range(m):
                top[i, start + r] = best[r]
                pushes[i, start + r] = best_value[r]
                work[best[r], r] = -np.inf
    return top, pushes


# Per BMP code point, how a line's canonical form (cleaners.rulepack.canonical_line: str.split, then
# str.casefold) treats it: KEEP as it is, SPACE (str.split splits there), or FOLD (casefold changes it: the
# line goes through Python). Code points above U+FFFF are FOLD too (rare; emoji, old scripts).
CHAR_KEEP, CHAR_SPACE, CHAR_FOLD = 0, 1, 2


def char_classes() -> np.ndarray:
    """The per-code-point table of :func:`canonical_line_keys` (built once at import, ~30 ms)."""
    table = np.zeros(0x10000, np.uint8)
    for code in range(0x10000):
        char = chr(code)
        if char.isspace():
            table[code] = CHAR_SPACE
        elif char.casefold() != char:
            table[code] = CHAR_FOLD
    return table


CHAR_CLASSES = char_classes()
_K1 = np.uint64(0x9E3779B97F4A7C15)
_K2 = np.uint64(0xC2B2AE3D27D4EB4F)


@numba.jit(**_JIT)
def _mix(h: np.uint64, word: np.uint64) -> np.uint64:
    h ^= word * _K1
    h = (h << np.uint64(31)) | (h >> np.uint64(33))
    return h * _K2


@numba.jit(**_JIT)
def _decode(buf: np.ndarray, p: int, end: int) -> tuple[int, int]:
    """The code point starting at ``buf[p]`` (0x10000 for any above U+FFFF) and its width in bytes."""
    c = buf[p]
    if c < 0x80:
        return np.int64(c), 1
    if c >= 0xF0:
        return 0x10000, 4
    if c >= 0xE0 and p + 2 < end:
        return ((np.int64(c) & 0x0F) << 12) | ((np.int64(buf[p + 1]) & 0x3F) << 6) | (np.int64(buf[p + 2]) & 0x3F), 3
    if c >= 0xC0 and p + 1 < end:
        return ((np.int64(c) & 0x1F) << 6) | (np.int64(buf[p + 1]) & 0x3F), 2
    return np.int64(c), 1


@numba.jit(**_JIT)
def _whitespace_bounds(buf: np.ndarray, start: int, end: int, classes: np.ndarray) -> tuple[int, int]:
    """The bounds of ``buf[start:end]`` without the whitespace at its edges, as ``str.strip`` sees whitespace
    (``classes`` == CHAR_SPACE; nothing above U+FFFF is whitespace)."""
    p = start
    while p < end:  # leading whitespace
        code, width = _decode(buf, p, end)
        if code >= 0x10000 or classes[code] != CHAR_SPACE:
            break
        p += width
    q = end
    while q > p:  # trailing whitespace: back to the last character's first byte
        first = q - 1
        while first > p and (buf[first] & 0xC0) == 0x80:
            first -= 1
        code, _ = _decode(buf, first, q)
        if code >= 0x10000 or classes[code] != CHAR_SPACE:
            break
        q = first
    return p, q


@numba.jit(**_JIT)
def _stripped_chars(buf: np.ndarray, start: int, end: int, classes: np.ndarray) -> int:
    """How many code points ``buf[start:end]`` has without the whitespace at its edges."""
    p, q = _whitespace_bounds(buf, start, end, classes)
    chars = 0
    for r in range(p, q):
        chars += (buf[r] & 0xC0) != 0x80
    return chars


@numba.jit(**_JIT)
def _hash_bytes(data: np.ndarray, size: int) -> np.int64:
    """64-bit hash of ``data[:size]``: 8 bytes at a time (big-endian words; a multiply per word, not per
    byte), then the length and the SplitMix64 finalizer."""
    h = np.uint64(0x243F6A8885A308D3)
    for start in range(0, size, 8):
        word = np.uint64(0)
        for q in range(start, min(start + 8, size)):
            word = (word << np.uint64(8)) | np.uint64(data[q])
        h = _mix(h, word)
    h ^= np.uint64(size)
    h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    h = h ^ (h >> np.uint64(31))
    return np.int64(h)


@numba.jit(**_JIT)
def canonical_line_keys(buf: np.ndarray, max_chars: int, classes: np.ndarray, folded: bool, keys: np.ndarray,
                        starts: np.ndarray, ends: np.ndarray, countable: np.ndarray, needs_python: np.ndarray) -> None:
    """64-bit keys of the canonical forms of the lines ``buf[starts[i]:ends[i]]`` of UTF-8 ``buf``.

    Canonical form (as cleaners.rulepack.canonical_line): split at whitespace (``classes`` == CHAR_SPACE,
    the characters ``str.split`` and ``str.strip`` see), joined by one space, ASCII letters lower-cased.
    A line is ``countable`` when its stripped form has 1 to ``max_chars`` code points; only those get a key.
    A line with a character that case folding changes (``classes`` == CHAR_FOLD, or above U+FFFF) is marked
    ``needs_python``: the caller folds it with ``str.casefold`` and keys the folded form with this kernel
    again, ``folded=True`` (every character taken as it is: a canonical form keys as itself).
    Each line's canonical bytes are written to a scratch buffer, then hashed by :func:`_hash_bytes`.
    """
    longest = 0
    for i in range(len(starts)):
        longest = max(longest, ends[i] - starts[i])
    canonical = np.empty(longest + 1, np.uint8)  # never longer than the line: a space replaces >= 1 byte
    for i in range(len(starts)):
        end = ends[i]
        if end - starts[i] > max_chars and _stripped_chars(buf, starts[i], end, classes) > max_chars:
            continue  # too long to count (most of the bytes are in such paragraphs): not hashed
        size = 0
        chars = 0  # code points since the first non-space one
        stripped_chars = 0  # ... up to the last non-space one
        pending_space = False
        p = starts[i]
        while p < end:
            c = buf[p]
            if c < 0x80:  # ASCII, most of the bytes: no decoding (the keys took half the time without this)
                width = 1
                kind = classes[c]
            else:
                code, width = _decode(buf, p, end)
                kind = CHAR_FOLD if code >= 0x10000 else classes[code]
                if kind == CHAR_FOLD and not folded:
                    needs_python[i] = True  # the caller keys it (and decides whether it is countable)
                    break
            if kind == CHAR_SPACE:
                pending_space = chars > 0
                chars += chars > 0
                p += width
                continue
            chars += 1
            stripped_chars = chars
            if pending_space:
                canonical[size] = 32
                size += 1
                pending_space = False
            for q in range(p, min(p + width, end)):
                byte = buf[q]
                canonical[size] = byte + 32 if 65 <= byte <= 90 else byte
                size += 1
            p += width
        if needs_python[i]:
            continue
        countable[i] = 0 < stripped_chars <= max_chars
        if countable[i]:
            keys[i] = _hash_bytes(canonical, size)


@numba.jit(**_JIT)
def line_byte_stats(b: np.ndarray, line_starts: np.ndarray, line_ends: np.ndarray, byte_class: np.ndarray,
                    wordish: np.ndarray, powers: np.ndarray, symbols2: np.ndarray, symbols3: np.ndarray,
                    n_classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                             np.ndarray]:
    """The byte-level counts of the line classifier's features, in one pass over the batch's UTF-8 bytes
    ``b`` (lines ``b[line_starts[i]:line_ends[i]]``, one ``\\n`` between them).

    Per line: bytes per ``byte_class`` (the newline after a line counts in it), words (runs of ``wordish``
    bytes) and those starting upper-case (class 2) or with a digit (class 3), and non-ASCII separator
    symbols (2-byte sequences in ``symbols2``, 3-byte ones by their last two bytes in ``symbols3``, never in
    the buffer's last two bytes). Per run of ASCII letters: its line and its 32-bit hash, the sum of each
    lower-cased byte times ``powers[k % 32]`` modulo 2**32 (k: the byte's place in the run).
    Returns (counts (n, n_classes) float32, words, upper words, digit words, symbols (n,) float32,
    letter-run hashes uint64, letter-run lines int64).
    """
    n = len(line_starts)
    total = len(b)
    counts = np.zeros((n, n_classes), np.float32)
    words = np.zeros(n, np.float32)
    upper_words = np.zeros(n, np.float32)
    digit_words = np.zeros(n, np.float32)
    symbols = np.zeros(n, np.float32)
    run_hash = np.empty(total // 2 + 1, np.uint64)
    run_line = np.empty(total // 2 + 1, np.int64)
    runs = 0
    mask32 = np.uint64(0xFFFFFFFF)
    for i in range(n):
        start = line_starts[i]
        end = min(line_ends[i] + 1, total)  # with the newline after it
        previous_wordish = False
        previous_letter = False
        h = np.uint64(0)
        k = 0
        for p in range(start, end):
            c = b[p]
            kind = byte_class[c]
            counts[i, kind] += 1
            is_wordish = wordish[c]
            if is_wordish and not previous_wordish:
                words[i] += 1
                if kind == 2:
                    upper_words[i] += 1
                elif kind == 3:
                    digit_words[i] += 1
            previous_wordish = is_wordish
            is_letter = kind == 1 or kind == 2
            if is_letter:
                if not previous_letter:
                    h = np.uint64(0)
                    k = 0
                    run_line[runs] = i
                    runs += 1
                h += (np.uint64(c | 32) * powers[k & 31]) & mask32
                k += 1
                run_hash[runs - 1] = h & mask32
            previous_letter = is_letter
            if c >= 0xC2 and p + 2 < total:
                b1 = np.int64(b[p + 1])
                b2 = np.int64(b[p + 2])
                hit = False
                if c == 0xC2:
                    for s in symbols2:
                        hit |= s == 0xC2 * 256 + b1
                elif c == 0xE2:
                    for s in symbols3:
                        hit |= s == b1 * 256 + b2
                if hit:
                    symbols[i] += 1
    return counts, words, upper_words, digit_words, symbols, run_hash[:runs].copy(), run_line[:runs].copy()



def word_characters() -> np.ndarray:
    """Per BMP code point: its lower-case form when a regex ``\\w`` matches it (letters, digits, ``_``), 0 when
    not, and bit 30 set on decimal digits (the table of :func:`body_overlap`; built once at import, ~25 ms)."""
    table = np.zeros(0x10000, np.int32)
    for code in range(0x10000):
        char = chr(code)
        if char.isalnum() or char == "_":
            lower = char.lower()
            table[code] = (ord(lower) if len(lower) == 1 else code) | ((1 << 30) if char.isdecimal() else 0)
    return table


WORD_CHARACTERS = word_characters()


# The columns of body_overlap's word table: one row per word, so a lookup touches one cache line.
_KEY, _LINES, _LONG_LINES, _LAST_LINE = 0, 1, 2, 3


@numba.jit(**_JIT)
def _slot(table: np.ndarray, key: np.int64, mask: int) -> int:
    """The row of ``key`` in an open-addressing table of ``mask + 1`` rows (linear probing; never full); a row
    is taken when its word was counted on a line (``_LINES`` > 0)."""
    s = key & mask
    while table[s, _LINES] > 0 and table[s, _KEY] != key:
        s = (s + 1) & mask
    return s


@numba.jit(**_JIT)
def body_overlap(b: np.ndarray, line_starts: np.ndarray, line_ends: np.ndarray, doc_id: np.ndarray,
                 long_line: np.ndarray, word_chars: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per line, how much of its vocabulary the document's long lines share (topicality without a language):
    the share of its distinct words that also occur in one of the document's ``long_line`` lines other than
    itself, plain and weighted by 1 / log(1 + the word's line count in the document).

    Words are runs of ``\\w`` characters (``word_chars``: :data:`WORD_CHARACTERS`), lower-cased, all-digit
    words left out; code points above U+FFFF end a word. Lines ``b[line_starts[i]:line_ends[i]]`` of UTF-8
    ``b``, ``doc_id`` ascending. A per-document hash table of word line counts; one pass to count, one to
    score. Returns two float32 arrays (0 for lines without words)."""
    n = len(line_starts)
    plain = np.zeros(n, np.float32)
    weighted = np.zeros(n, np.float32)
    if n == 0:
        return plain, weighted
    hashes = np.empty(len(b) // 2 + 1, np.uint64)
    first = np.zeros(n + 1, np.int64)
    words = 0
    digit_bit = np.int32(1 << 30)
    for i in range(n):
        p = line_starts[i]
        end = line_ends[i]
        h = np.uint64(0)
        length = 0
        all_digits = True
        while p < end:
            c = b[p]
            if c < 0x80:
                folded = word_chars[c]
                p += 1
            else:
                code, width = _decode(b, p, end)
                folded = word_chars[code] if code < 0x10000 else np.int32(0)
                p += width
            if folded != 0:
                h = (h ^ np.uint64(folded & ~digit_bit)) * _K1  # one multiply a character; mixed at the end
                all_digits &= (folded & digit_bit) != 0
                length += 1
            elif length:
                if not all_digits:
                    hashes[words] = _mix(h, np.uint64(length))
                    words += 1
                h = np.uint64(0)
                length = 0
                all_digits = True
        if length and not all_digits:
            hashes[words] = _mix(h, np.uint64(length))
            words += 1
        first[i + 1] = words
    doc_first = [0]  # each document's first line, then n
    for i in range(1, n):
        if doc_id[i] != doc_id[i - 1]:
            doc_first.append(i)
    doc_first.append(n)
    most = 0  # the most words in one document: the table's size
    for d in range(len(doc_first) - 1):
        most = max(most, first[doc_first[d + 1]] - first[doc_first[d]])
    size = 16
    while size < 2 * (most + 1):
        size *= 2
    taken = np.empty(most + 1, np.int64)  # the slots this document filled
    slot_of = np.empty(most + 1, np.int64)  # each of its words' slot
    inverse_log = np.zeros(1024)  # 1 / log(1 + k), looked up rather than computed per word
    for k in range(1, len(inverse_log)):
        inverse_log[k] = 1.0 / np.log1p(k)
    table = np.zeros((size, 4), np.int64)
    for d in range(len(doc_first) - 1):
        doc_start = doc_first[d]
        doc_end = doc_first[d + 1]
        mask = 15  # a table sized for this document's words, so a short one stays in cache
        while mask + 1 < 2 * (first[doc_end] - first[doc_start] + 1):
            mask = 2 * mask + 1
        filled = 0
        for i in range(doc_start, doc_end):  # each word's lines and long lines in this document
            for w in range(first[i], first[i + 1]):
                key = np.int64(hashes[w])
                s = _slot(table, key, mask)
                slot_of[w - first[doc_start]] = s
                if table[s, _LINES] == 0:
                    table[s, _KEY] = key
                    table[s, _LAST_LINE] = -1
                    taken[filled] = s
                    filled += 1
                if table[s, _LAST_LINE] != i:
                    table[s, _LAST_LINE] = i
                    table[s, _LINES] += 1
                    table[s, _LONG_LINES] += long_line[i]
        for i in range(doc_start, doc_end):  # each line's distinct words, scored (marked with -2 - i)
            distinct = 0
            shared = 0
            weight_sum = 0.0
            shared_weight = 0.0
            own = np.int64(long_line[i])
            for w in range(first[i], first[i + 1]):
                s = slot_of[w - first[doc_start]]
                if table[s, _LAST_LINE] == -2 - i:
                    continue
                table[s, _LAST_LINE] = -2 - i
                distinct += 1
                count = table[s, _LINES]
                weight = inverse_log[count] if count < len(inverse_log) else 1.0 / np.log1p(count)
                weight_sum += weight
                if table[s, _LONG_LINES] - own > 0:
                    shared += 1
                    shared_weight += weight
            if distinct:
                plain[i] = shared / distinct
                weighted[i] = shared_weight / weight_sum
        for t in range(filled):  # empty the table for the next document
            table[taken[t], _LINES] = 0
            table[taken[t], _LONG_LINES] = 0
    return plain, weighted


@numba.jit(**_JIT)
def _member(sorted_values: np.ndarray, value: np.uint64) -> int:
    """Index of ``value`` in ``sorted_values``, or -1."""
    at = np.searchsorted(sorted_values, value)
    if at < len(sorted_values) and sorted_values[at] == value:
        return at
    return -1


def word_table(stop_hashes: set[int], unigram_lexicon: dict[int, int], bigram_first: set[int],
               size: int = 8192) -> tuple[np.ndarray, ...]:
    """An open-addressing table of the lexicons' word hashes for :func:`word_lexicon_counts`: (keys, used,
    is stopword, unigram lexicon or -1, starts a phrase), ``size`` slots, slot ``hash % size`` then the next."""
    keys = np.zeros(size, np.uint64)
    used = np.zeros(size, bool)
    stop = np.zeros(size, bool)
    unigram = np.full(size, -1, np.int64)
    first = np.zeros(size, bool)
    for h in sorted(stop_hashes | set(unigram_lexicon) | bigram_first):
        slot = h % size
        while used[slot]:
            slot = (slot + 1) % size
        keys[slot], used[slot] = h, True
        stop[slot] = h in stop_hashes
        unigram[slot] = unigram_lexicon.get(h, -1)
        first[slot] = h in bigram_first
    return keys, used, stop, unigram, first


@numba.jit(**_JIT)
def word_lexicon_counts(run_hash: np.ndarray, run_line: np.ndarray, n_lines: int, table_keys: np.ndarray,
                        table_used: np.ndarray, table_stop: np.ndarray, table_unigram: np.ndarray,
                        table_phrase_first: np.ndarray, bigram_hashes: np.ndarray, bigram_lexicon: np.ndarray,
                        n_lexicons: int, bigram_multiplier: np.uint64) -> tuple[np.ndarray, np.ndarray]:
    """Per line: stopwords, and words or two-word phrases of each keyword lexicon, from the letter-run hashes
    of :func:`line_byte_stats`, looked up in a :func:`word_table` (most words are in no lexicon: one probe).
    A phrase's hash is ``first * bigram_multiplier + second`` (uint64, wrapping), both words on one line.
    Returns (stopwords (n_lines,), lexicon counts (n_lexicons, n_lines)), float32."""
    stops = np.zeros(n_lines, np.float32)
    lexicons = np.zeros((n_lexicons, n_lines), np.float32)
    n = len(run_hash)
    size = np.uint64(len(table_keys))
    for i in range(n):
        h = run_hash[i]
        slot = np.int64(h % size)
        while table_used[slot] and table_keys[slot] != h:
            slot = (slot + 1) % len(table_keys)
        if not table_used[slot]:
            continue
        line = run_line[i]
        if table_stop[slot]:
            stops[line] += 1
        if table_unigram[slot] >= 0:
            lexicons[table_unigram[slot], line] += 1
        if table_phrase_first[slot] and i + 1 < n and run_line[i + 1] == line:
            at = _member(bigram_hashes, h * bigram_multiplier + run_hash[i + 1])
            if at >= 0:
                lexicons[bigram_lexicon[at], line] += 1
    return stops, lexicons


# The bytes that may start a character replace_odd_characters changes: controls but LF and CR, DEL, and the
# lead bytes of the 2- and 3-byte sequences it looks at. Every other byte is copied as it is.
_MAY_CHANGE = np.zeros(256, np.bool_)
_MAY_CHANGE[[c for c in range(0x20) if c not in (10, 13)] + [0x7F, 0xC2, 0xE1, 0xE2, 0xE3, 0xEF]] = True


@numba.jit(**_JIT)
def replace_odd_characters(data: np.ndarray, out: np.ndarray) -> int:
    """Copy UTF-8 ``data`` into ``out`` (as long) with odd spaces as one space each and invisible or control
    characters left out (cleaners.normalize: ``_ODD_SPACES`` plus NUL and U+001C-001F, ``_INVISIBLE``, ``_CONTROLS``);
    ``\\n`` stays. Returns the length written, or -1 when nothing changed (``out`` is then not filled).
    Only the bytes in ``_MAY_CHANGE`` (a constant of the compiled code) are looked at; the runs between
    changes are copied as slices (byte by byte, the pass took 3 ns a byte on the dev set)."""
    n = len(data)
    p = 0
    w = 0
    copied = 0  # data[:copied] is in out[:w]
    while p < n:
        c = data[p]
        if not _MAY_CHANGE[c]:
            p += 1
            continue
        width = 1
        action = 0  # 0 keep, 1 space, 2 drop
        if c < 0x80:
            action = 1 if c == 9 or c == 0 or 0x1C <= c <= 0x1F else 2
        elif c == 0xC2 and p + 1 < n:
            width = 2
            d = data[p + 1]
            if d == 0xA0:
                action = 1
            elif d < 0xA0 or d == 0xAD:  # C1 controls U+0080-009F; soft hyphen U+00AD
                action = 2
        elif c == 0xE1 and p + 2 < n and data[p + 1] == 0x9A and data[p + 2] == 0x80:
            width = 3
            action = 1  # U+1680
        elif c == 0xE2 and p + 2 < n:
            width = 3
            d = data[p + 1]
            e = data[p + 2]
            if d == 0x80 and (e <= 0x8A or e == 0xAF):  # U+2000-200A, U+202F
                action = 1
            elif d == 0x80 and 0x8B <= e <= 0x8D:  # U+200B-200D
                action = 2
            elif d == 0x81 and e == 0x9F:  # U+205F
                action = 1
            elif d == 0x81 and e == 0xA0:  # U+2060
                action = 2
        elif c == 0xE3 and p + 2 < n and data[p + 1] == 0x80 and data[p + 2] == 0x80:
            width = 3
            action = 1  # U+3000
        elif c == 0xEF and p + 2 < n and data[p + 1] == 0xBB and data[p + 2] == 0xBF:
            width = 3
            action = 2  # U+FEFF
        if action == 0:
            p += width
            continue
        out[w:w + p - copied] = data[copied:p]
        w += p - copied
        if action == 1:
            out[w] = 32
            w += 1
        p += width
        copied = p
    if copied == 0:  # set only after a change
        return -1
    out[w:w + n - copied] = data[copied:n]
    return w + n - copied


@numba.jit(**_JIT)
def _unspaced_script(code: int) -> bool:
    """Whether a code point belongs to a script written without spaces between words: kana, CJK ideographs, Thai,
    Lao, Myanmar, Khmer, the ideographs beyond U+FFFF, half-width katakana (Korean is written with spaces)."""
    return (0x3040 <= code <= 0x30FF or 0x3400 <= code <= 0x4DBF or 0x4E00 <= code <= 0x9FFF
            or 0xF900 <= code <= 0xFAFF or 0x0E00 <= code <= 0x0EFF or 0x1000 <= code <= 0x109F
            or 0x1780 <= code <= 0x17FF or 0x3005 <= code <= 0x3007 or 0xFF66 <= code <= 0xFF9F
            or 0x20000 <= code <= 0x3FFFF)


@numba.jit(**_JIT)
def line_word_units(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Per line ``buf[starts[i]:ends[i]]`` of UTF-8 ``buf``: its words, the runs of characters that are not
    ``classes`` == CHAR_SPACE (``len(line.split())``), except that a run holding characters of a script written
    without spaces (:func:`_unspaced_script`) counts one word per two of them (at least one). A Japanese paragraph
    of 120 characters is one run of ``str.split``: counted as one word, its loss weighed nothing next to an English
    menu's, and the valves that weigh removed words never saw it go."""
    counts = np.zeros(len(starts), np.int64)
    for i in range(len(starts)):
        words = 0
        in_word = False
        unspaced = 0
        p = starts[i]
        end = ends[i]
        while p < end:
            c = buf[p]
            if c < 0x80:
                space = classes[c] == CHAR_SPACE
                p += 1
            else:
                code, width = _decode(buf, p, end)
                space = code < 0x10000 and classes[code] == CHAR_SPACE
                if width == 4 and p + 3 < end:  # _decode gives 0x10000 for all of them: the ideographs are here
                    code = (((np.int64(c) & 0x07) << 18) | ((np.int64(buf[p + 1]) & 0x3F) << 12)
                            | ((np.int64(buf[p + 2]) & 0x3F) << 6) | (np.int64(buf[p + 3]) & 0x3F))
                if not space and _unspaced_script(code):
                    unspaced += 1
                p += width
            if space and in_word:
                words += max(1, (unspaced + 1) // 2)
                unspaced = 0
            in_word = not space
        if in_word:
            words += max(1, (unspaced + 1) // 2)
        counts[i] = words
    return counts


@numba.jit(**_JIT)
def strip_spaces(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                                  np.ndarray]:
    """Per line ``buf[starts[i]:ends[i]]`` of UTF-8 ``buf``: the bounds without the spaces at its edges, its
    length in code points once stripped, and whether it holds a lone surrogate (``surrogatepass`` bytes
    ED A0-BF: not UTF-8, so Arrow must not read it). Spaces are the only whitespace left in normalized
    text (cleaners.normalize turns every other kind into a space or a newline), so this is ``str.strip``."""
    n = len(starts)
    first = np.empty(n, np.int64)
    last = np.empty(n, np.int64)
    chars = np.zeros(n, np.int64)
    surrogate = np.zeros(n, np.bool_)
    for i in range(n):
        p = starts[i]
        q = ends[i]
        while p < q and buf[p] == 32:
            p += 1
        while q > p and buf[q - 1] == 32:
            q -= 1
        first[i] = p
        last[i] = q
        count = 0
        for r in range(p, q):
            c = buf[r]
            count += (c & 0xC0) != 0x80
            if c == 0xED and r + 1 < q and buf[r + 1] >= 0xA0:
                surrogate[i] = True
        chars[i] = count
    return first, last, chars, surrogate


@numba.jit(**_JIT)
def distinct_per_group(keys: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct ``keys`` of each group ``keys[bounds[g]:bounds[g + 1]]``, sorted, groups in order, and the
    bounds of each group's run in the result: what a lexsort by (group, key) and dropping repeats give. Sorting
    each document's hundred-odd keys on its own took a third of the lexsort's time over a batch's lines."""
    out = np.empty(len(keys), np.int64)
    out_bounds = np.zeros(len(bounds), np.int64)
    w = 0
    for g in range(len(bounds) - 1):
        if bounds[g + 1] > bounds[g]:
            part = np.sort(keys[bounds[g]:bounds[g + 1]])
            out[w] = part[0]
            w += 1
            for q in range(1, len(part)):
                if part[q] != part[q - 1]:
                    out[w] = part[q]
                    w += 1
        out_bounds[g + 1] = w
    return out[:w].copy(), out_bounds


@numba.jit(**_JIT)
def gather_lines(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray,
                                                                                                   np.ndarray]:
    """The lines ``buf[starts[r]:ends[r]]`` for ``r`` in ``rows``, end to end, with their int64 offsets: the
    buffers of an Arrow string array (cleaners.textbytes.arrow_strings), no Python string per line."""
    offsets = np.empty(len(rows) + 1, np.int64)
    offsets[0] = 0
    total = 0
    for k in range(len(rows)):
        total += ends[rows[k]] - starts[rows[k]]
        offsets[k + 1] = total
    out = np.empty(total, np.uint8)
    for k in range(len(rows)):
        out[offsets[k]:offsets[k + 1]] = buf[starts[rows[k]]:ends[rows[k]]]
    return out, offsets


@numba.jit(**_JIT)
def join_lines(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The lines ``buf[starts[i]:ends[i]]`` joined by ``\\n`` into a new buffer, with each line's start and end
    in it: the layout the line classifier's byte-level features read (cleaners.linejudge.line_values_utf8)."""
    n = len(starts)
    total = max(n - 1, 0)
    for i in range(n):
        total += ends[i] - starts[i]
    out = np.empty(total, np.uint8)
    first = np.empty(n, np.int64)
    last = np.empty(n, np.int64)
    p = 0
    for i in range(n):
        if i:
            out[p] = 10
            p += 1
        size = ends[i] - starts[i]
        first[i] = p
        out[p:p + size] = buf[starts[i]:ends[i]]
        p += size
        last[i] = p
    return out, first, last


@numba.jit(**_JIT)
def document_context(doc_id: np.ndarray, n_docs: int, nw: np.ndarray, nstop: np.ndarray, endsent: np.ndarray,
                     starts_lower: np.ndarray, starts_punct: np.ndarray, headers: np.ndarray, run_hash: np.ndarray,
                     run_line: np.ndarray, powers: np.ndarray) -> tuple:
    """The line classifier's document-context features (cleaners.linejudge.base_features), for lines grouped by
    document (``doc_id`` non-decreasing), in one compiled pass per group of features. Each value is computed
    with the dtypes and the order of additions of the numpy form it replaced, so the features are identical
    (tests/test_kernels.py compares them); only the per-line loops moved here.

    ``headers``: (4, n) float32, the lines that are section headers of each kind (short, with a keyword).
    ``run_hash``/``run_line``: the letter-run hashes of :func:`line_byte_stats`; ``powers``: uint64 weights of a
    run by its place in the line (capped at 63). Returns a tuple of per-line arrays, in the order unpacked by
    ``base_features``.
    """
    n = len(doc_id)
    doc_start = np.zeros(n_docs, np.int64)
    doc_end = np.zeros(n_docs, np.int64)
    for d in range(n_docs):
        doc_start[d] = n
    for i in range(n - 1, -1, -1):
        doc_start[doc_id[i]] = i
    for i in range(n):
        doc_end[doc_id[i]] = i + 1
    for d in range(n_docs):
        if doc_start[d] == n:  # a document without lines
            doc_start[d] = 0
            doc_end[d] = 0
    pos = np.empty(n, np.float32)
    pos_rev = np.empty(n, np.float32)
    rel = np.empty(n, np.float32)
    nd = np.empty(n, np.float32)
    doc_words = np.empty(n, np.float32)
    wrel = np.empty(n, np.float32)
    wshare = np.empty(n, np.float32)
    avg_wpl = np.empty(n, np.float32)
    dens = np.empty(n, np.float32)
    dist_dense = np.empty(n, np.float32)
    dist_long = np.empty(n, np.float32)
    maxw = np.empty(n, np.float32)
    # Letter-word hashes per line: each run weighted by its place in the line, summed (wrapping uint64).
    first_run = np.zeros(n + 1, np.int64)
    for r in range(len(run_line)):
        first_run[run_line[r] + 1] += 1
    for i in range(n):
        first_run[i + 1] += first_run[i]
    line_hash = np.zeros(n, np.uint64)
    nwl = np.empty(n, np.int64)
    for i in range(n):
        h = np.uint64(0)
        for r in range(first_run[i], first_run[i + 1]):
            h += run_hash[r] * powers[min(r - first_run[i], 63)]
        line_hash[i] = h
        nwl[i] = first_run[i + 1] - first_run[i]
    is_title = np.zeros(n, np.float32)
    eq_title = np.zeros(n, np.float32)
    in_title = np.zeros(n, np.float32)
    title_in = np.zeros(n, np.float32)
    dup = np.ones(n, np.float32)
    headers_before = np.empty((4, n), np.float32)
    headers_after = np.empty((4, n), np.float32)
    for d in range(n_docs):
        a = doc_start[d]
        b = doc_end[d]
        if a == b:
            continue
        lines = b - a
        nd_value = np.float32(lines)
        words = 0.0  # float64, as np.bincount's weighted sums
        for i in range(a, b):
            words += np.float64(nw[i])
        doc_words_value = np.float32(words)
        before = 0.0
        best_dense = -1
        best_long = -1
        for i in range(a, b):
            p = i - a
            pos[i] = np.float32(p)
            pos_rev[i] = np.float32(np.float64(nd_value - np.float32(1)) - np.float64(p))
            rel[i] = np.float32(np.float64(p) / np.float64(max(nd_value - np.float32(1), np.float32(1))))
            nd[i] = nd_value
            doc_words[i] = doc_words_value
            wrel[i] = np.float32(before) / max(doc_words_value, np.float32(1))
            wshare[i] = nw[i] / max(doc_words_value, np.float32(1))
            avg_wpl[i] = doc_words_value / max(nd_value, np.float32(1))
            before += np.float64(nw[i])
            lo = max(i - 3, a)
            hi = min(i + 4, b)
            window = 0.0
            for j in range(lo, hi):
                window += np.float64(nw[j])
            dens[i] = np.float32(window / (hi - lo))
            if best_dense < 0 or dens[i] > dens[best_dense]:
                best_dense = i
            if best_long < 0 or nw[i] > nw[best_long]:
                best_long = i
        for i in range(a, b):
            dist_dense[i] = np.float32(i - best_dense) / max(nd_value, np.float32(1))
            dist_long[i] = np.float32(i - best_long) / max(nd_value, np.float32(1))
            maxw[i] = nw[best_long]
        # The title (first line) against each later line, by letter-word hashes.
        title_hash = line_hash[a]
        title_words = nwl[a]
        is_title[a] = 1.0
        for i in range(a + 1, b):
            m = nwl[i]
            if m == 0:
                continue
            if line_hash[i] == title_hash and m == title_words:
                eq_title[i] = 1.0
            if 3 <= m < title_words:
                prefix = np.uint64(0)
                for k in range(m):
                    prefix += run_hash[first_run[a] + k] * powers[min(k, 63)]
                in_title[i] = prefix == line_hash[i]
            if title_words >= 3 and m > title_words:
                prefix = np.uint64(0)
                for k in range(title_words):
                    prefix += run_hash[first_run[i] + k] * powers[min(k, 63)]
                title_in[i] = prefix == title_hash
        # Lines of the document with the same letter-word hash.
        order = np.argsort(line_hash[a:b])
        k = 0
        while k < lines:
            e = k
            while e + 1 < lines and line_hash[a + order[e + 1]] == line_hash[a + order[k]]:
                e += 1
            for q in range(k, e + 1):
                i = a + order[q]
                if nwl[i] > 0:
                    dup[i] = np.float32(e - k + 1)
            k = e + 1
        # Section headers seen before and after each line.
        for kind in range(4):
            total = 0.0
            for i in range(a, b):
                total += np.float64(headers[kind, i])
            seen = 0.0
            for i in range(a, b):
                h = np.float64(headers[kind, i])
                headers_before[kind, i] = np.float32(min(seen, 5.0))
                headers_after[kind, i] = np.float32(min(total - seen - h, 5.0))
                seen += h
    # Sentence blocks: a line continues the block above when that one does not end a sentence and this one
    # starts lower-case or with punctuation.
    block = np.empty(n, np.int64)
    current = -1
    for i in range(n):
        continues = (pos[i] > 0 and endsent[i - 1] == 0
                     and (starts_lower[i] == 1 or starts_punct[i] == 1))
        if not continues:
            current += 1
        block[i] = current
    n_blocks = current + 1
    block_words = np.zeros(n_blocks, np.float64)
    block_stops = np.zeros(n_blocks, np.float64)
    block_lines = np.zeros(n_blocks, np.int64)
    block_last = np.zeros(n_blocks, np.int64)
    for i in range(n):
        block_words[block[i]] += np.float64(nw[i])
        block_stops[block[i]] += np.float64(nstop[i])
        block_lines[block[i]] += 1
        block_last[block[i]] = i
    blk_w = np.empty(n, np.float32)
    blk_n = np.empty(n, np.float32)
    blk_stop = np.empty(n, np.float32)
    blk_end = np.empty(n, np.float32)
    for i in range(n):
        g = block[i]
        blk_w[i] = np.float32(block_words[g])
        blk_n[i] = np.float32(block_lines[g])
        blk_stop[i] = np.float32(block_stops[g] / max(block_words[g], 1.0))
        blk_end[i] = endsent[block_last[g]]
    return (doc_start, doc_end, pos, pos_rev, rel, nd, doc_words, wrel, wshare, avg_wpl, line_hash, nwl, is_title,
            eq_title, in_title, title_in, dup, dens, dist_dense, dist_long, maxw, block, blk_w, blk_n, blk_stop,
            blk_end, headers_before, headers_after)


@numba.jit(**_JIT)
def neighbour_features(values: np.ndarray, doc_id: np.ndarray, doc_start: np.ndarray, doc_end: np.ndarray,
                       shifts: np.ndarray, windowed: np.ndarray, widths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row of ``values`` (float32, lines of documents end to end) at each of ``shifts`` within the line's
    document (-1 outside it), and the rows ``windowed`` averaged over each of ``widths`` lines either side
    (clipped to the document). The averages take differences of one float64 running sum over all lines, as the
    numpy form did, so they are identical to it. Returns ((rows x shifts, n), (windowed x widths, n)) float32."""
    m, n = values.shape
    shifted = np.empty((m * len(shifts), n), np.float32)
    for f in range(m):
        for s in range(len(shifts)):
            k = shifts[s]
            out = shifted[f * len(shifts) + s]
            for i in range(n):
                j = i + k
                if 0 <= j < n and doc_id[j] == doc_id[i]:
                    out[i] = values[f, j]
                else:
                    out[i] = np.float32(-1.0)
    means = np.empty((len(windowed) * len(widths), n), np.float32)
    running = np.empty(n + 1, np.float64)
    for w in range(len(windowed)):
        row = values[windowed[w]]
        running[0] = 0.0
        for i in range(n):
            running[i + 1] = running[i] + np.float64(row[i])
        for s in range(len(widths)):
            width = widths[s]
            out = means[w * len(widths) + s]
            for i in range(n):
                d = doc_id[i]
                lo = max(i - width, doc_start[d])
                hi = min(i + width + 1, doc_end[d])
                out[i] = np.float32((running[hi] - running[lo]) / (hi - lo))
    return shifted, means


@numba.jit(**_JIT)
def _put_hundredths(out: np.ndarray, w: int, k: int) -> int:
    """Write the integer ``k`` / 100 in decimal: no trailing zeros or point ("1", "0.5", "-3.14"); zero is "0"."""
    if k < 0:
        out[w] = 45  # "-"
        w += 1
        k = -k
    whole = k // 100
    frac = k % 100
    size = 1
    rest = whole // 10
    while rest:
        size += 1
        rest //= 10
    for q in range(size - 1, -1, -1):  # the integer part's digits, written from the last
        out[w + q] = 48 + whole % 10
        whole //= 10
    w += size
    if frac:
        out[w] = 46  # "."
        out[w + 1] = 48 + frac // 10
        w += 2
        if frac % 10:
            out[w] = 48 + frac % 10
            w += 1
    return w


@numba.jit(**_JIT)
def _put(out: np.ndarray, w: int, text: np.ndarray) -> int:
    """Copy ``text`` to ``out`` at ``w``; returns where it ends."""
    for q in range(len(text)):
        out[w + q] = text[q]
    return w + len(text)


@numba.jit(**_JIT)
def format_reasons(head: np.ndarray, alone: np.ndarray, towards: np.ndarray, names: np.ndarray,
                   name_offsets: np.ndarray, p: np.ndarray, p_alone: np.ndarray, top: np.ndarray, values: np.ndarray,
                   pushes: np.ndarray, push_sign: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The line classifier's reasons, as ASCII bytes, each ended by a newline, with offsets (row ``r`` is
    ``out[offsets[r]:offsets[r + 1] - 1]``; cleaners.linemodel._reasons splits them at the newlines):
    ``{head}{p}{alone}{p_alone}{towards}`` then per top feature ``{name}={value} ({+ when push_sign}{push})``,
    joined by ", ". Numbers come as hundredths (int64: the value rounded to 2 decimals, times 100) and read
    as decimals without trailing zeros. ``names``: the feature names' bytes end to end, name ``f`` at
    ``names[name_offsets[f]:name_offsets[f + 1]]``; ``top``/``values``/``pushes``/``push_sign``: (k, n)."""
    n = len(p)
    k = top.shape[0]
    longest = 0
    for f in range(len(name_offsets) - 1):
        longest = max(longest, name_offsets[f + 1] - name_offsets[f])
    per_row = len(head) + len(alone) + len(towards) + 2 * 22 + k * (2 + longest + 1 + 22 + 3 + 22 + 1) + 1
    out = np.empty(n * per_row, np.uint8)
    offsets = np.empty(n + 1, np.int64)
    offsets[0] = 0
    w = 0
    for r in range(n):
        w = _put(out, w, head)
        w = _put_hundredths(out, w, p[r])
        w = _put(out, w, alone)
        w = _put_hundredths(out, w, p_alone[r])
        w = _put(out, w, towards)
        for j in range(k):
            if j:
                out[w] = 44
                out[w + 1] = 32
                w += 2
            f = top[j, r]
            w = _put(out, w, names[name_offsets[f]:name_offsets[f + 1]])
            out[w] = 61  # "="
            w += 1
            w = _put_hundredths(out, w, values[j, r])
            out[w] = 32
            out[w + 1] = 40  # " ("
            w += 2
            if push_sign[j, r]:
                out[w] = 43  # "+"
                w += 1
            w = _put_hundredths(out, w, pushes[j, r])
            out[w] = 41  # ")"
            w += 1
        out[w] = 10  # the newline that ends each reason
        w += 1
        offsets[r + 1] = w
    return out[:w], offsets


@numba.jit(**_JIT)
def lay_out(data: np.ndarray, starts: np.ndarray, ends: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """The UTF-8 text of the lines ``data[starts[i]:ends[i]]`` not ``removed``, laid out: trailing spaces out,
    blank lines (only spaces: normalized text has no other whitespace) left out at the edges and between two
    kept lines folded into one (paragraph breaks kept), lines joined by newlines."""
    size = 0
    for i in range(len(starts)):
        size += ends[i] - starts[i] + 2
    out = np.empty(size, np.uint8)
    w = 0
    written = False
    gap = False
    for i in range(len(starts)):
        if removed[i]:
            continue
        start = starts[i]
        end = ends[i]
        while end > start and data[end - 1] == 32:
            end -= 1
        if end == start:
            gap = True
            continue
        if written:
            out[w] = 10
            w += 1
            if gap:
                out[w] = 10
                w += 1
        out[w:w + end - start] = data[start:end]
        w += end - start
        written = True
        gap = False
    return out[:w]


@numba.jit(**_JIT)
def strip_whitespace(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray,
                                                                                                          np.ndarray]:
    """Per line ``buf[starts[i]:ends[i]]`` of UTF-8 ``buf``: its bounds without the whitespace at its edges
    (:func:`_whitespace_bounds`)."""
    first = np.empty(len(starts), np.int64)
    last = np.empty(len(starts), np.int64)
    for i in range(len(starts)):
        first[i], last[i] = _whitespace_bounds(buf, starts[i], ends[i], classes)
    return first, last
