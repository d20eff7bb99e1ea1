"""Every rule's own examples, and the loader's refusal of broken packs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cleaners import clean_document, load_rules
from cleaners.document import TITLE_RULE, DocumentInput, clean_documents
from cleaners.rulepack import (
    DEFAULT_RULES_DIR,
    SCREEN_PROGRAM_LIMITS,
    Action,
    Rule,
    RulePackError,
    RuleSet,
    in_pipe_table,
    pipe_table_rows,
)

ALL_RULES = load_rules().all_rules()


# Each rule's drop and keep examples are checked when its pack loads (rulepack._check_examples; the broken-pack
# cases below show it refusing both kinds of failure), so loading the shipped packs above is that check for them.


SHIPPED_PACKS = {pack.name: pack for pack in load_rules().packs}


def _source_of(pack_name: str) -> str:
    """A source the pack applies to: its first site, or any host for a generic pack."""
    sites = SHIPPED_PACKS[pack_name].sites
    return sites[0] if sites else "example.org"


@pytest.mark.parametrize("rule", ALL_RULES, ids=[r.id for r in ALL_RULES])
def test_drop_examples_leave_the_document_in_context(rule, rules) -> None:
    """In a document of the pack's site, the example goes where its zone allows and the article paragraph stays."""
    _check_drop_examples_in_context(rule, rules, _source_of(rule.pack))


def _check_drop_examples_in_context(rule: Rule, rules: RuleSet, source: str) -> None:
    """A keep rule's drop examples are the lines it protects: they stay."""
    article = "This paragraph is the article itself, and it is long enough to be kept by every rule we have."
    for example in rule.examples_drop:
        text = f"{article}\n\n{example}" if rule.zone.value == "bottom" else f"{example}\n\n{article}"
        result = clean_document(text, rules, source=source)
        assert article in result.text
        if rule.action is Action.KEEP:  # in the text, or its first line taken for the title (moved, not removed)
            assert example.strip() in [*result.text.split("\n"), result.title], f"{rule.id} did not protect {example!r}"
            assert not any(r.text == example.strip() and r.rule != TITLE_RULE for r in result.removed)
        else:
            assert example.strip() not in result.text.split("\n")
            assert any(r.text == example.strip() for r in result.removed)


def test_a_site_pack_of_any_name_with_a_keep_rule_passes_the_context_check(tmp_path: Path) -> None:
    """A site pack named for its site without the `site-` prefix, with a keep rule whose drop example is a line a
    generic rule takes (`related.read-more`): the check cleans it as that site's page, where the keep rule wins."""
    keep = _rule('literal = "Read more"\naction = "keep"', drop="Read more", rule_id="riverside.keep-read-more-heading",
                 keep="Read more of the council's minutes at the library.")
    masthead = _rule('literal = "Riverside Gazette"\nzone = "top"', drop="Riverside Gazette",
                     rule_id="riverside.masthead",
                     keep="The Riverside Gazette was founded in 1871 by two printers from Leeds.")
    pack = _pack(tmp_path, keep + masthead, name="riverside", sites=["riversidegazette.com"])
    rules = load_rules([DEFAULT_RULES_DIR, pack])
    page = "Read more\n\nThis paragraph is the article itself, and it is long enough to be kept by every rule we have."
    assert "Read more" not in clean_document(page, load_rules(), source="riversidegazette.com").text  # generic
    for rule in rules.all_rules():
        if rule.pack == "riverside":
            _check_drop_examples_in_context(rule, rules, "riversidegazette.com")


def test_versions_are_in_the_ruleset_version(rules) -> None:
    assert "generic@" in rules.version and "site-420intel.com@" in rules.version


def test_editing_a_pack_changes_the_rules_version_even_without_a_version_bump(tmp_path: Path) -> None:
    """``rules_version`` (in every row, and what makes the next run clean every input again) holds a digest of the
    packs' content, so an edit that forgets to bump the pack's version still reprocesses."""
    before = load_rules([_pack(tmp_path, RULE.format(pattern='literal = "Drop me"'))]).version
    after = load_rules([_pack(tmp_path, RULE.format(pattern='literal = "Drop me"').replace("because", "why"))]).version
    assert before.split("#")[0] == after.split("#")[0] == "t@1"
    assert before != after


def test_site_pack_applies_only_to_its_site(rules) -> None:
    assert any(r.id == "420intel.region-tag" for r in rules.rules_for("420intel.com"))
    assert any(r.id == "420intel.region-tag" for r in rules.rules_for("news.420intel.com"))
    assert not any(r.pack.startswith("site-") for r in rules.rules_for("example.org"))


def _pack(tmp_path: Path, body: str, name: str = "t", sites: list[str] | None = None) -> Path:
    """A pack file of ``body``'s rules; with ``sites``, a site pack (each named pack in its own file)."""
    path = tmp_path / ("pack.toml" if name == "t" else f"{name}.toml")
    listed = f"sites = {json.dumps(sites)}\n" if sites else ""
    path.write_text(f'[pack]\nname = "{name}"\nversion = "1"\n{listed}' + body, encoding="utf-8")
    return path


RULE = '''
[[rules]]
id = "x.y"
concept = "c"
why = "because"
{pattern}
examples.drop = ["Drop me"]
examples.keep = ["Keep me"]
'''


def _rule(pattern: str, drop: str = "Drop me", keep: str = "Keep me", rule_id: str = "x.y") -> str:
    """One [[rules]] entry of RULE with its own pattern lines, examples and id."""
    return (RULE.format(pattern=pattern).replace('"x.y"', f'"{rule_id}"')
            .replace('"Drop me"', repr(drop)).replace('"Keep me"', repr(keep)))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (RULE.format(pattern='literal = ""'), "empty"),
        (RULE.format(pattern='regex = "(unclosed"'), "invalid regex"),
        (RULE.format(pattern='literal = "a"\nregex = "b"'), "exactly one"),
        (RULE.format(pattern='literal = "a"\nzone = "middle"'), "zone"),
        (RULE.format(pattern='literal = "a"\ncolour = "red"'), "unknown keys"),
        (RULE.format(pattern='literal = "a"').replace('examples.keep = ["Keep me"]', ""), "examples"),
        (RULE.format(pattern='literal = "a"') + RULE.format(pattern='literal = "b"'), "is defined twice in"),
        (RULE.format(pattern='regex = "a"\naction = "metadata"\nmetadata_column = "region"'), "value"),
        (RULE.format(pattern='literal = "a"\nkeep_table_rows = "yes"'), "true or false"),
        (RULE.format(pattern='literal = "Drop me"\nzone_lines = "three"'), "zone_lines must be a whole number"),
        (RULE.format(pattern='literal = "Drop me"\nmax_chars = 0'), "max_chars must be a whole number"),
        ('sites = "example.com"\n' + RULE.format(pattern='literal = "Drop me"'), "sites must be a list"),
        (RULE.format(pattern='literal = "a"'), "does not match its drop example 'Drop me'"),
        (RULE.format(pattern="regex = '.*me'"), "matches its keep example 'Keep me'"),
        (RULE.format(pattern='literal = "Drop me"\nmax_chars = 3'), "is 7 characters, over the rule's max_chars = 3"),
        (RULE.format(pattern='literal = "Drop me"').replace('["Keep me"]', '"Keep me"'), "lists of strings"),
        (RULE.format(pattern='literal = "Drop me"').replace('["Keep me"]', '5'), "lists of strings"),
        (RULE.format(pattern='literal = "Drop me"').replace('["Keep me"]', '["Keep me", 5]'), "lists of strings"),
        (RULE.format(pattern="regex = 'Drop(?P<value> you)?.*'\naction = 'metadata'\nmetadata_column = 'region'"),
         "empty `value` group"),
        (RULE.format(pattern='literal = "Drop me"\ncase_sensitive = "false"'), "case_sensitive must be true or false"),
        (RULE.format(pattern='regex = ["Drop", "me"]'), "`regex` must be a string"),
        ('sites = []\n' + RULE.format(pattern='literal = "Drop me"'), "sites = \\[\\] names no site"),
        ('[defaults]\nmax_chars = "80"\n' + RULE.format(pattern='literal = "Drop me"'),
         "\\[defaults\\]: max_chars must be a whole number"),
        (RULE.format(pattern='literal = "drop me"\ncase_sensitive = true'), "check the letter case"),
        (RULE.format(pattern='regex = "Drop\\s+me"'), "write regexes in single quotes"),
        ('disable = ["legal.copyright"]\n' + RULE.format(pattern='literal = "Drop me"'), "disable is for a site pack"),
        ('sites = ["a.example"]\ndisable = "legal.copyright"\n' + RULE.format(pattern='literal = "Drop me"'),
         "disable must be a list of rule ids"),
        (RULE.format(pattern="regex = '.*'\nmax_chars = 7").replace('"Keep me"', '"Keep this line: it is long"'),
         "every keep example is longer than max_chars = 7, so none tests the pattern"),
        (RULE.format(pattern='literal = "Drop me"\nzone_lines = 3'), "zone_lines = 3 needs a zone"),
        (RULE.format(pattern='literal = "\\u200b"\nmatch = "prefix"'), "empty once read as text"),
        (RULE.format(pattern='literal = "\\u00ad"'), "empty once read as text"),
        (RULE.format(pattern="regex = \"Drop[\\u200b\\u00ad]* me\""), "holds characters the cleaner removes"),
        (RULE.format(pattern='literal = "Drop me"').replace('id = "x.y"\n', ""),
         "rule 1 \\(a \\[\\[rules\\]\\] entry with pattern 'Drop me'\\) has no `id`"),
        (RULE.format(pattern='literal = "Drop me"').replace("[[rules]]", "[rules]"), "under its own \\[\\[rules\\]\\]"),
        *[(f'sites = ["{site}"]\n' + RULE.format(pattern='literal = "Drop me"'), "is not a source name")
          for site in ["https://valleyherald.com", "valleyherald.com/", "*.valleyherald.com", "valleyherald.com.",
                       "valleyherald.com:443"]],
    ],
)
def test_broken_packs_are_refused_with_the_file_named(tmp_path: Path, body: str, message: str) -> None:
    path = _pack(tmp_path, body)
    with pytest.raises(RulePackError, match=message) as info:
        load_rules([path])
    assert str(path) in str(info.value)


def test_patterns_and_examples_are_read_as_the_cleaner_reads_text(tmp_path: Path) -> None:
    """A pattern pasted with a decomposed "é", a no-break space or a zero-width space matches the text as the cleaner
    has it (NFC, odd spaces as spaces, invisible characters out): its examples passed, and it never matched."""
    # TOML's own escapes: a decomposed "é" (e + U+0301), a no-break space, a zero-width space.
    body = r"""
[[rules]]
id = "x.y"
concept = "c"
why = "because"
regex = "Re\u0301gion\u00a0:\\s*(?P<value>.+)"
action = "metadata"
metadata_column = "region"
max_chars = 40
examples.drop = ["Re\u0301gion\u00a0: Côte"]
examples.keep = ["Région"]

[[rules]]
id = "x.share"
concept = "c"
why = "because"
literal = "Partager\u200b l’article"
examples.drop = ["Partager\u200b l’article"]
examples.keep = ["Partager"]
"""
    rules = load_rules([_pack(tmp_path, body)])
    text = ("Tempête sur la côte\n\nLa tempête a touché toute la côte hier soir, selon les autorités locales.\n"
            "Partager l’article\nRégion : Côte\n")
    result = clean_document(text, rules, source="example.fr")
    assert result.metadata == {"region": "Côte"}
    assert {r.rule for r in result.removed} >= {"x.y", "x.share"}


def test_literal_patterns_are_escaped(tmp_path: Path) -> None:
    path = _pack(tmp_path, RULE.format(pattern='literal = "Read more..."').replace("Drop me", "Read more...")
                 .replace("Keep me", "Read more!!!"))
    rule = load_rules([path]).all_rules()[0]
    assert rule.matches("Read more...")
    assert not rule.matches("Read more!!!")


def test_catastrophic_backtracking_pattern_cannot_hang_a_run(tmp_path: Path) -> None:
    """Patterns run on RE2 (linear time): a classic ReDoS pattern on a long line returns at once."""
    import time

    path = _pack(tmp_path, RULE.format(pattern="regex = '(a+)+b'\nmax_chars = 1000000")
                 .replace("Drop me", "aab").replace("Keep me", "aaa"))
    rules = load_rules([path])
    line = "a" * 200_000 + "c"
    started = time.perf_counter()
    result = clean_document(f"A title line\n\n{line}\n\nThe article body is here.", rules, source="x")
    assert time.perf_counter() - started < 5
    assert line in result.text


def test_lookaround_and_bad_syntax_are_refused_with_a_clear_message(tmp_path: Path, capfd) -> None:
    """The message names the construct RE2 lacks and shows the pattern as written; nothing else reaches stderr
    (RE2 logged each refusal there in C++'s format)."""
    path = _pack(tmp_path, RULE.format(pattern="regex = 'foo\\s+(?=bar)'"))
    with pytest.raises(RulePackError, match=r"regex `foo\\s\+\(\?=bar\)` uses `\(\?=`, which the RE2 engine"):
        load_rules([path])
    path = _pack(tmp_path, RULE.format(pattern="regex = 'Drop (me'"))
    with pytest.raises(RulePackError, match=r"invalid regex `Drop \(me`: missing \)"):
        load_rules([path])
    assert capfd.readouterr().err == ""


def test_pipe_tables_are_told_from_menus() -> None:
    table = ["Results", "Quarter | Passengers | Revenue", "Q3 2023 | 2.9 million | €371m",
             "Q3 2024 | 3.3 million | €412m", "", "Home | News | Sport", "About | Contact | Jobs",
             "420 Intel News | 420 Advertising | Cannabis Business News", "", "Archive | 2023 | 2024", "",
             "| Year | Wins | Losses |", "| 2024 | 12 | 3 |"]
    assert [in_pipe_table(table, i) for i in range(len(table))] == [
        False, True, True, True,  # a header and rows of figures
        False, False, False, False,  # menus: no row with figures after the first cell; a lone footer bar
        False, False, False,  # a line of years between blank lines is one line, not a table
        True, True]  # outer pipes
    # Rows of words are a table when a column repeats a value (a menu never lists a link twice in one place); a
    # menu printed three times over is not.
    days = ["Street | Old day | New day", "Mill Lane | Monday | Tuesday", "Quay Road | Monday | Wednesday",
            "Church Walk | Friday | Thursday", "", *["Home | News | Sport"] * 3]
    assert [in_pipe_table(days, i) for i in range(len(days))] == [True] * 4 + [False] * 4
    # Nor are menus whose rows differ in case or outer pipes only, breadcrumb trails (one first item), or footer
    # menus ending in the same item on every row.
    menus = [["Home | News | Sport | Weather", "HOME | NEWS | SPORT | WEATHER", "| Home | News | Sport | Weather |"],
             ["Home | News | Politics", "Home | News | Local", "Home | Sport | Local"],
             ["About us | Contact | More", "Careers | Advertise | More", "Terms | Privacy | More"]]
    for menu in menus:
        assert not any(in_pipe_table(menu, i) for i in range(len(menu))), menu
    # The document's rows in one walk (what the cleaner asks) are the same lines.
    labelled = ["Prep: 15 min | Cook: 1 hr | Serves: 6", "Home | News | Sport"]
    for lines in (table, labelled, [*table, *labelled], days):
        assert pipe_table_rows(lines) == {i for i in range(len(lines)) if in_pipe_table(lines, i)}
    # And on random documents of such lines (runs of rows broken by blank lines, prose and lines of other widths).
    import random

    rng = random.Random(5)
    kinds = [*table, *labelled, *days, "Prose, without a pipe.", "|", "a | b", "1 | 2 | 3 | 4", "| x | 1 | 2 |"]
    for _ in range(300):
        lines = rng.choices(kinds, k=rng.randint(0, 25))
        assert pipe_table_rows(lines) == {i for i in range(len(lines)) if in_pipe_table(lines, i)}, lines


def test_the_pipe_menu_rule_keeps_the_rows_of_a_table_near_the_top(rules) -> None:
    text = ("Ferry operator lifts forecast\n\nQuarter | Passengers | Revenue | Profit\n"
            "Q3 2023 | 2.9 million | €371m | €41m\nQ3 2024 | 3.3 million | €412m | €63m\n\n"
            "Home | News | Sport | Contact\n\nThe company raised its forecast on Thursday.")
    result = clean_document(text, rules)
    removed = {text: rule for _, text, rule, _ in result.removed_rows}
    assert "Q3 2024 | 3.3 million | €412m | €63m" in result.text
    assert removed.get("Home | News | Sport | Contact") == "nav.pipe-menu"


def test_batch_matching_agrees_with_each_rule_line_by_line() -> None:
    """RuleProgram.match_lines (one Arrow RE2 call per rule over a batch) finds, for every line, exactly the
    rules that Rule.matches finds one by one: on every example, at and past each rule's length limit, with odd
    whitespace and case, and non-ASCII text. A line with a lone surrogate (never screened: it is not UTF-8)
    is left out."""
    from cleaners.rulepack import RuleProgram

    for program_rules in {pack.name: pack.rules for pack in load_rules().packs}.values():
        examples = [e.strip() for rule in program_rules for e in (*rule.examples_drop, *rule.examples_keep)]
        lines = [*examples, *(e.upper() for e in examples), *(e.replace(" ", "\u00a0") for e in examples),
                 *(e + " x" * 150 for e in examples[:5]), "Région : Québec", "", "x"]
        fresh = RuleProgram.of(program_rules)
        fresh.match_lines([*lines, "Share \ud800 this"])
        assert "Share \ud800 this" not in fresh._matching
        for line in lines:
            expected = tuple(rule for rule in program_rules if rule.matches(line) is not None)
            assert line in fresh._matching  # found by the batch form, not by matching_rules' fallback
            assert fresh.matching_rules(line) == expected, line


def test_a_metadata_rule_whose_value_is_missing_keeps_the_line(tmp_path: Path) -> None:
    """A value group that may be empty ("Region:" with nothing after it) is no match: the line stays, no crash."""
    path = _pack(tmp_path, RULE.format(pattern="regex = 'Region:\\s*(?P<value>\\w.*)?'\naction = 'metadata'\n"
                                               "metadata_column = 'region'")
                 .replace("Drop me", "Region: Mexico").replace("Keep me", "The region is Mexico."))
    rules = load_rules([path])
    article = "This paragraph is the article itself, and it is long enough to be kept by every rule we have."
    result = clean_document(f"Region:\n\n{article}\n\nRegion: Mexico", rules, source="x")
    assert result.metadata == {"region": "Mexico"}
    assert result.text.split("\n")[0] == "Region:" and article in result.text


def test_unicode_classes_and_re2_only_syntax_are_accepted(tmp_path: Path) -> None:
    """Patterns are RE2's: a class such as \\p{Lu} or the end anchor \\z is fine, though Python's `re` lacks them."""
    path = _pack(tmp_path, RULE.format(pattern="regex = '\\p{Lu}\\p{Ll}+ung teilen\\z'\ncase_sensitive = true")
                 .replace("Drop me", "Wohnung teilen").replace("Keep me", "wohnung teilen"))
    rule = load_rules([path]).all_rules()[0]
    assert rule.matches("Zeitung teilen") and not rule.matches("Zeitung teilen!")


def test_a_prefix_or_suffix_literal_matches_whole_words_only(tmp_path: Path) -> None:
    """A prefix literal "Share" takes "Share this story", never "Shares of Acme rose 5%" (real text)."""
    prefix = _pack(tmp_path, RULE.format(pattern='literal = "Share"\nmatch = "prefix"')
                   .replace("Drop me", "Share this story").replace("Keep me", "Shares of Acme rose 5%"))
    rule = load_rules([prefix]).all_rules()[0]
    assert rule.matches("Share") and rule.matches("Share: Facebook") and rule.matches("share on X")
    assert not rule.matches("Shareholders approved it.")
    suffix = tmp_path / "suffix"
    suffix.mkdir()
    rule = load_rules([_pack(suffix, RULE.format(pattern='literal = "Comments"\nmatch = "suffix"')
                             .replace("Drop me", "12 Comments").replace("Keep me", "NoComments"))]).all_rules()[0]
    assert rule.matches("Comments") and rule.matches("Read all 40 comments")
    assert not rule.matches("NoComments")


def test_a_metadata_line_below_a_cut_marker_still_gives_its_value(tmp_path: Path) -> None:
    """A cut-rest marker removes what follows it, but a metadata line there still moves its value to its column."""
    cut = RULE.format(pattern='literal = "Leave a Reply"\naction = "cut_rest"').replace("Drop me", "Leave a Reply")
    region = (RULE.format(pattern="regex = 'Region:\\s*(?P<value>\\w.*)'\naction = 'metadata'\n"
                                  "metadata_column = 'region'")
              .replace('"x.y"', '"x.region"').replace("Drop me", "Region: Mexico").replace("Keep me", "Regions vary"))
    rules = load_rules([_pack(tmp_path, cut + region)])
    article = "This paragraph is the article itself, and it is long enough to be kept by every rule we have."
    result = clean_document(f"{article}\n\nLeave a Reply\n\nNice post!\n\nRegion: Mexico", rules, source="x")
    assert result.text == article
    assert result.metadata == {"region": "Mexico"}
    assert [r.rule for r in result.removed] == ["x.y", "x.y", "x.region"]


@pytest.mark.parametrize("junk", ["Skip to content", "Advertisement", "Home | News | Sport | Weather"])
def test_a_line_a_rule_removes_is_never_the_title(rules, junk: str) -> None:
    """The first short line is the title only when no rule would remove it: the headline below it is."""
    headline = "Harbour ferry timetable changes from Monday"
    article = "The ferry will leave the harbour twenty minutes later from Monday, the operator said today."
    result = clean_document(f"{junk}\n\n{headline}\n\n{article}", rules, source="example.org")
    assert result.title == headline
    assert result.text == article
    assert junk in [r.text for r in result.removed if r.rule != "structure.title"]
    # With only one line after the junk, that line is the article, not a title (more text must follow a title).
    alone = clean_document(f"{junk}\n\n{article}", rules, source="example.org")
    assert (alone.title, alone.text) == (None, article)


def test_any_number_of_ruled_lines_above_the_headline_are_skipped(rules) -> None:
    """The title zone widens past ruled lines until none is left in it: with six junk lines above the headline
    (more than the zone's four), the headline is still the title, not the last junk line."""
    headline = "Council approves the bridge"
    article = "The council voted on Tuesday to rebuild the old bridge, which had been closed for two years."
    junk = ["Skip to content", "Advertisement", "Share this article", "Menu", "Back to top", "Read more"]
    for count in range(1, len(junk) + 1):
        result = clean_document("\n".join([*junk[:count], headline, article]), rules, source="example.org")
        assert (result.title, result.text) == (headline, article), count
        assert [r.text for r in result.removed if r.rule != "structure.title"] == junk[:count]


def test_a_declared_title_is_the_title_and_no_body_line_is_taken_for_one(rules) -> None:
    """With a declared title (a record's `title`), a body given without it keeps its first line, however short;
    its copy at the top goes, and so does a page title made of it and the site name. A blank one is no title."""
    body = "WASHINGTON —\nThe Senate passed the farm bill 61-39 late on Thursday after two weeks of debate."
    result = clean_document(body, rules, source="wire.example", known_title="Senate passes farm bill")
    assert result.title == "Senate passes farm bill"
    assert "structure.title" not in [r.rule for r in result.removed]
    printed = clean_document("Senate passes farm bill | Wire Example\n" + body, rules, source="wire.example",
                             known_title="  Senate passes farm bill ")
    assert printed.title == "Senate passes farm bill"
    assert [(r.line_no, r.rule) for r in printed.removed][:1] == [(1, "structure.page-title")]
    sentences = "The Senate passed the farm bill on Thursday.\nThe House votes next week, its leaders said."
    for blank in ("", "   "):  # as no declared title: a first line that reads as a sentence is not a title
        assert clean_document(sentences, rules, source="wire.example", known_title=blank).title is None


def test_a_title_from_the_pages_metadata_does_not_stop_the_headline_being_found(rules, tmp_path: Path) -> None:
    """An HTML page's own <title> or og:title often differs from the headline printed in its text: the headline is
    still found and moved out (a record's declared title, by contrast, is the title)."""
    from cleaners.readers import discover, read_file

    page = tmp_path / "news.example" / "story.html"
    page.parent.mkdir()
    page.write_text("<html><head><title>Bridge vote: council says yes | News Example</title><meta "
                    "property=\"og:title\" content=\"Bridge vote: council says yes\"></head><body><article>"
                    "<h1>Council approves the bridge rebuild</h1><p>The council voted on Tuesday to rebuild the old "
                    "bridge, which had been closed for two years after the flood.</p><p>Work starts in spring and "
                    "should take eighteen months, the mayor said at the meeting.</p></article></body></html>")
    [doc] = list(read_file(discover([str(page)])[0]))
    assert doc.title == "Bridge vote: council says yes" and doc.title_from_page
    result = clean_document(doc.text, rules, source=doc.source, known_title=doc.title,
                            title_declared=not doc.title_from_page)
    assert result.title == "Council approves the bridge rebuild"
    assert not result.text.startswith("Council approves")


def _metadata_rules(tmp_path: Path, label: str, column: str, value: str) -> RuleSet:
    """A pack of one metadata rule, id ``x.y``: "<label>: <value>" lines fill ``column``."""
    pattern = f"regex = '{label}:\\s*(?P<value>\\w.*)'\naction = 'metadata'\nmetadata_column = '{column}'"
    body = RULE.format(pattern=pattern).replace("Drop me", f"{label}: {value}").replace("Keep me", f"{label}s vary")
    return load_rules([_pack(tmp_path, body)])


def test_a_second_metadata_value_is_removed_and_its_reason_says_it_was_not_moved(tmp_path: Path) -> None:
    """The first value found is the column's; a later line of the same rule goes, and says it was not moved."""
    rules = _metadata_rules(tmp_path, "Region", "region", "Mexico")
    article = "This paragraph is the article itself, and it is long enough to be kept by every rule we have."
    result = clean_document(f"Region: Mexico\n\n{article}\n\nRegion: Canada", rules, source="x")
    assert result.metadata == {"region": "Mexico"}
    reasons = [r.reason for r in result.removed if r.rule == "x.y"]
    assert reasons[0].endswith("(moved to `region`: 'Mexico')")
    assert reasons[1].endswith("(not moved: `region` is 'Mexico', found above)")


def test_the_printed_form_of_the_pages_title_is_the_title_not_a_category_label_above_it(rules) -> None:
    """A page's own title is often the headline with the site name or a small edit. The title-like line at the top
    that shares most of its words is the headline, not the short category label printed above it; a page title
    that no line resembles leaves the guess as it was."""
    text = ("Local politics\n\nCouncil approves the bridge rebuild\n\nThe council voted on Tuesday to rebuild the "
            "old bridge, which had been closed for two years after the flood.\n\nWork starts in spring, the mayor "
            "said.")
    matched = clean_document(text, rules, source="news.example", title_declared=False,
                             known_title="Council approves bridge rebuild | Daily Gazette")
    assert matched.title == "Council approves the bridge rebuild"
    assert "Council approves" not in matched.text
    unlike = clean_document(text, rules, source="news.example", title_declared=False,
                            known_title="Gazette: your town, every day")
    assert unlike.title == "Local politics"  # the first short line, guessed as without a page title
    # The page <title> printed with the site name above the bare headline says more than word overlap: the bare
    # headline is the title and the printed <title> goes, though it shares more of the page title's words.
    printed = clean_document("Council approves bridge rebuild - Daily Gazette\n\nCouncil approves bridge rebuild\n\n"
                             + text.split("\n\n", 2)[2], rules, source="news.example", title_declared=False,
                             known_title="Council approves bridge rebuild | Gazette")
    assert printed.title == "Council approves bridge rebuild"
    assert [(r.line_no, r.rule) for r in printed.removed][:2] == [(1, "structure.page-title"), (3, "structure.title")]


def test_a_metadata_line_does_not_replace_the_value_the_input_declares(tmp_path: Path) -> None:
    """A record that has an ``author`` keeps it (the row's column is the record's); the "Author:" line still goes,
    and its reason says the value was not moved and why, instead of claiming it was."""
    rules = _metadata_rules(tmp_path, "Author", "author", "Ann Lee")
    article = "This paragraph is the article itself, and it is long enough to be kept by every rule we have."
    text = f"Author: Ann Lee\n\n{article}"
    [declared, alone] = clean_documents([DocumentInput(text, "x", declared_metadata={"author": "Bo Ma"}),
                                         DocumentInput(text, "x")], rules)
    assert declared.text == alone.text == article
    assert declared.metadata == {} and alone.metadata == {"author": "Ann Lee"}
    [reason] = [r.reason for r in declared.removed if r.rule == "x.y"]
    assert reason.endswith("(not moved: `author` is 'Bo Ma', given with the input)")
    [reason] = [r.reason for r in alone.removed if r.rule == "x.y"]
    assert reason.endswith("(moved to `author`: 'Ann Lee')")


def test_the_articles_row_keeps_the_records_author_and_the_reason_says_so(tmp_path: Path) -> None:
    """The same through the shard's cleaning, as a run writes the row: the record's author fills the column."""
    from datetime import UTC, datetime

    from cleaners.shard import clean_raw
    from cleaners.types import RawDocument

    rules = _metadata_rules(tmp_path, "Author", "author", "Ann Lee")
    text = "Author: Ann Lee\n\nThis paragraph is the article itself, and it is long enough to be kept by every rule."
    row = clean_raw(RawDocument("1", "x", "a.jsonl", text, len(text), author="Bo Ma"), rules, datetime.now(UTC))
    assert isinstance(row, dict) and row["author"] == "Bo Ma"
    [reason] = [reason for _line, _text, rule, reason in row["removed"] if rule == "x.y"]
    assert reason.endswith("(not moved: `author` is 'Bo Ma', given with the input)")


def test_a_rules_folder_without_packs_is_refused_and_a_pack_given_twice_is_read_once(tmp_path: Path) -> None:
    with pytest.raises(RulePackError, match="no rule packs"):
        load_rules([tmp_path])
    path = _pack(tmp_path, RULE.format(pattern='literal = "Drop me"'))
    assert len(load_rules([tmp_path, path]).packs) == 1


def test_a_cut_marker_above_the_article_cuts_nothing_and_a_lower_one_still_cuts(tmp_path: Path) -> None:
    """A "3 Comments" count under the byline is not where the comments begin: cutting there would take the
    article. Only the marker goes, the row is flagged and the reason says why, and the rules go on below it:
    the "Leave a Reply" under the article cuts. A short article above a long thread is still cut from its marker."""
    cut = _rule("regex = '\\d+ Comments?|Leave a Reply'\naction = 'cut_rest'", "3 Comments",
                "Comments are closed on weekends for moderation.")
    rules = load_rules([_pack(tmp_path, cut)])
    body = [f"Paragraph {n} of the story, with enough words in it to be a real part of the article text." for n in
            range(6)]
    high = clean_document("\n\n".join(["By Ann Lee", "3 Comments", *body, "Leave a Reply", "Great piece!"]),
                          rules, source="x")
    assert all(paragraph in high.text for paragraph in body) and "Great piece!" not in high.text
    assert high.low_confidence
    [held, cut_at] = [r for r in high.removed if r.rule == "x.y"][:2]
    assert held.text == "3 Comments" and "nothing below it was cut" in held.reason
    assert cut_at.text == "Leave a Reply"
    # A dek above the count of a full-length article is no article either; nor is a line a rule removed.
    promo_rule = _rule("regex = 'Subscribe to our newsletter.*'\nmax_chars = 300", "Subscribe to our newsletter today",
                       "Subscribers said the newsletter was late.", "x.promo")
    rules = load_rules([_pack(tmp_path, cut + promo_rule)])
    dek = "The council voted on Tuesday to rebuild the old bridge over the river by 2027."
    promo = "Subscribe to our newsletter for the latest news from the council, every morning."
    article = body * 4  # ~430 words
    for above in ([dek], [promo, "By Ann Lee"]):
        page = clean_document("\n\n".join(["Bridge vote", *above, "3 Comments", *article]), rules, source="x")
        assert all(paragraph in page.text for paragraph in body) and page.low_confidence
    # A short article above a long thread: kept whole and flagged (junk kept rather than text eaten).
    thread = [f"Comment {n}: I agree with every word of this, and I have more to say about it." for n in range(40)]
    short = clean_document("\n\n".join([body[0], "Leave a Reply", *thread]), rules, source="x")
    assert short.text.startswith(body[0]) and thread[-1] in short.text and short.low_confidence


def test_a_pack_in_a_sites_folder_must_name_its_sites(tmp_path: Path) -> None:
    """Without `sites`, a pack applies to every source: in sites/ that is a forgotten line, not a generic pack."""
    (tmp_path / "sites").mkdir()
    path = _pack(tmp_path / "sites", RULE.format(pattern='literal = "Drop me"'))
    with pytest.raises(RulePackError, match="needs `sites") as info:
        load_rules([path])
    assert str(path) in str(info.value)


def test_rules_that_remove_most_of_a_document_flag_the_row(tmp_path: Path) -> None:
    """Rule removals are the writer's intent and stay, but a prefix rule that takes paragraphs shows in the row."""
    prefix = _rule('literal = "ADVERTISEMENT"\nmatch = "prefix"\nmax_chars = 400', "ADVERTISEMENT here")
    rules = load_rules([_pack(tmp_path, prefix)])
    body = [f"ADVERTISEMENT Paragraph {n} of the story, joined to the label by the scrape, with its words." for n in
            range(6)]
    result = clean_document("\n\n".join(["A short lede.", *body]), rules, source="x")
    assert result.kept_ratio < 0.15 and result.low_confidence
    fine = clean_document("\n\n".join(["A short lede.", "ADVERTISEMENT", *[b[14:] for b in body]]), rules, source="x")
    assert not fine.low_confidence and fine.kept_ratio > 0.95  # only the label line went


def test_a_keep_rule_wins_over_a_drop_rule_listed_before_it(tmp_path: Path) -> None:
    drop = _rule('literal = "Editor\'s note"\nmatch = "prefix"\nmax_chars = 300', "Editor's note: ad", "Editors notes")
    keep = _rule("regex = 'Editor.s note: this story was updated.*'\naction = 'keep'\nmax_chars = 300",
                 "Editor's note: this story was updated on Monday.", "Editor's note: sponsored", "x.keep")
    rules = load_rules([_pack(tmp_path, drop + keep)])
    note = "Editor's note: this story was updated on Monday to correct the date of the vote."
    body = "The council voted to rebuild the bridge, with work to begin in the spring of next year."
    result = clean_document(f"{body}\n\n{note}\n\nEditor's note: sponsored content below.", rules, source="x")
    assert note in result.text and "sponsored content" not in result.text


@pytest.mark.parametrize("site", ["feeds/wire", "Acme Inc.", "Reuters: Business", "news.bbc.co.uk"])
def test_source_names_that_are_not_hosts_are_accepted_in_sites(tmp_path: Path, site: str) -> None:
    rules = load_rules([_pack(tmp_path, f'sites = ["{site}"]\n' + RULE.format(pattern='literal = "Drop me"'))])
    assert rules.packs[0].applies_to(site) and not rules.packs[0].applies_to("other.example")


def test_a_pack_named_for_a_site_without_sites_is_refused_wherever_it_is(tmp_path: Path) -> None:
    """Given with --rules from any folder, a site's pack (named site-...) that forgot `sites` would act on every
    source; a generic pack whose file is named like a host is loaded."""
    body = RULE.format(pattern='literal = "Drop me"')
    by_name = tmp_path / "mine.toml"
    by_name.write_text('[pack]\nname = "site-examplenews"\nversion = "1"\n' + body, encoding="utf-8")
    with pytest.raises(RulePackError, match=r"named for a site .* without `sites`"):
        load_rules([by_name])
    generic = tmp_path / "consent.eu.toml"  # a generic pack may be named like a host
    generic.write_text('[pack]\nname = "consent-eu"\nversion = "1"\n' + body, encoding="utf-8")
    assert not load_rules([generic]).packs[0].sites


def test_the_readme_example_pack_loads_and_passes_its_examples(tmp_path: Path) -> None:
    from tests.conftest import ROOT

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    example = readme.split("```toml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "examplenews.org.toml"
    path.write_text(example, encoding="utf-8")
    [pack] = load_rules([path]).packs
    assert pack.sites == ("examplenews.org",) and [rule.id for rule in pack.rules] == ["examplenews.filed-under"]


_LEDE = ("Tern opened in June in a former net loft on the harbour arm, and it already feels as if it has always "
         "been there. The room is all whitewashed boards and salt-stained windows; the kitchen is open, and the staff "
         "are young.")
_BODY = "The menu changes daily and runs to about a dozen plates, most of them fish from the boats that morning."


def _edge_rule_hits(rules: RuleSet, text: str) -> list[tuple[str, str]]:
    return [(r.text, r.rule) for r in clean_document(text, rules, source="example.org").removed
            if r.rule not in ("structure.title", "structure.title-repeat")]


def test_a_menu_heading_inside_the_article_stays(rules) -> None:
    """nav.menu-button spares a line inside the article (spare_inside_article): under 40 words or more of prose, with
    prose below it, nearer the top than the bottom; so in a document short enough for both zones to cover it too.
    Above the prose, or under a standfirst of fewer words, it is a menu button."""
    headline = "Review: Tern, Whitstable"
    assert _edge_rule_hits(rules, f"{headline}\n\n{_LEDE}\n\nMenu\n\n{_BODY}") == []
    assert _edge_rule_hits(rules, f"Menu\n\n{headline}\n\n{_LEDE}\n\n{_BODY}") == [("Menu", "nav.menu-button")]
    standfirst = "A former net loft on the harbour arm becomes the best new restaurant on the Kent coast."
    assert _edge_rule_hits(rules, f"{headline}\n\n{standfirst}\n\nMenu\n\n{_BODY}\n\n{_LEDE}") == [
        ("Menu", "nav.menu-button")]


def test_a_page_description_printed_twice_is_not_article_prose(rules) -> None:
    """A long description at the top of a page, printed twice (the <title> and the page), is not where the article
    begins: the menu button under it is still a menu button."""
    text = f"{_LEDE}\n{_LEDE}\nMenu\n\n{_BODY}\n\n{_BODY} Twice."
    assert ("Menu", "nav.menu-button") in _edge_rule_hits(rules, text)


def test_a_menu_line_nearer_the_bottom_is_in_the_footer(rules) -> None:
    """Nearer the bottom than the top, a menu line with article prose above and a disclaimer below is the footer's."""
    disclaimer = "Products and services referenced here are for general information only and are not advice."
    text = f"Harbour news\n\n{_LEDE}\n\n{_BODY}\n\nMenu\n\n{disclaimer}"
    assert _edge_rule_hits(rules, text) == [("Menu", "nav.menu-button")]


def test_only_rules_that_opt_in_spare_the_article_interior(rules, tmp_path: Path) -> None:
    """Page furniture under a long consent text or standfirst still goes (their rules do not opt in); and a keep
    rule's zone is its zone wherever the article begins."""
    consent = ("We and our partners store and access information on your device, such as cookies, and process personal "
               "data such as unique identifiers and standard information sent by your device to personalise ads and "
               "content, to measure them and to develop and improve our products, as you choose in the settings.")
    assert len(consent.split()) >= 45  # article prose by length: only the rule's choice keeps the button going
    text = f"{consent}\n\nAccept all cookies\n\n{_BODY}\n\n{_LEDE}"
    assert ("Accept all cookies", "consent.cookie-notice") in _edge_rule_hits(rules, text)
    keep = _pack(tmp_path, _rule("literal = 'Advertisement'\naction = 'keep'\nzone = 'top'", drop="Advertisement",
                                 keep="Advertisements"))
    with_keep = load_rules([DEFAULT_RULES_DIR, keep])
    assert _edge_rule_hits(with_keep, f"{_LEDE}\n\nAdvertisement\n\n{_BODY}") == []


def test_a_breadcrumb_above_the_headline_goes_and_is_not_the_title(rules) -> None:
    """nav.breadcrumb, anywhere in the page: a trail above the headline was taken for the title on pages of the dev
    set ('Homepage > Bits > ...'); a table row starting with 'Home' stays."""
    headline = "Council approves the bridge"
    article = "The council voted on Tuesday to rebuild the old bridge, which had been closed for two years."
    text = f"Home > News > Local politics\n{headline}\n{article}"
    result = clean_document(text, rules, source="example.org")
    assert (result.title, result.text) == (headline, article)
    assert _edge_rule_hits(rules, text) == [("Home > News > Local politics", "nav.breadcrumb")]
    table = "Venue | Won | Lost | Drawn\nHome | 11 | 4 | 3\nAway | 7 | 8 | 3"
    assert clean_document(f"{headline}\n{article}\n{table}\n{article} Again.", rules).text.count("Home | 11") == 1


def test_the_shipped_packs_screen_stays_cheap() -> None:
    """Every line of every document goes through the combined screen of the rules that may match anywhere: its RE2
    program must stay small. Counted repeats inside repeats ('(?:> [^>]{1,80}){1,8}') made it 25,037 instructions
    and the whole cleaner ~30% slower; a plain '.*' under the rule's max_chars does the same work. The same limits
    make a run and check-rules warn of a costly pack (RuleSet.costly_screens)."""
    rules = load_rules()
    sizes = rules.program_for("example.org").screen_sizes()
    assert sizes["anywhere"] < SCREEN_PROGRAM_LIMITS["anywhere"]
    assert sizes["near_edges"] < SCREEN_PROGRAM_LIMITS["near_edges"]
    assert rules.costly_screens() == []


def _byline_pack(tmp_path: Path, name: str, sites: list[str], regex: str) -> Path:
    """A pack with one top-zone byline rule of ``regex`` (generic without ``sites``)."""
    rule = _rule(f"regex = '{regex}'\nzone = \"top\"", drop="By Jo", rule_id=f"{name}.byline",
                 keep="By the river the town grew for a hundred years, as the records show.")
    return _pack(tmp_path, rule, name=name, sites=sites)


def test_costly_screens_checks_sources_under_two_site_packs_and_says_a_generic_one_once(tmp_path: Path) -> None:
    """Each pack's byline rule alone keeps its site's near-edges screen under the limit; a source under both packs
    (news.example.com is under example.com too) combines them over it. A costly generic pack is said once."""
    a = _byline_pack(tmp_path, "a", ["example.com"], r"By [\p{L} ]{2,5}")
    b = _byline_pack(tmp_path, "b", ["other.org", "news.example.com"], r"By [\p{L} ]{2,5}")
    rules = load_rules([DEFAULT_RULES_DIR, a, b])
    sizes = {site: rules.program_for(site).screen_sizes()["near_edges"] for site in ("example.com", "other.org",
                                                                                      "news.example.com")}
    limit = SCREEN_PROGRAM_LIMITS["near_edges"]
    assert sizes["example.com"] < limit and sizes["other.org"] < limit < sizes["news.example.com"]
    [warning] = rules.costly_screens()
    assert warning.startswith("news.example.com's packs: the near-edges screen")
    generic = _byline_pack(tmp_path, "g", [], r"By [\p{L} ]{2,9}")
    warnings = load_rules([DEFAULT_RULES_DIR, generic, a]).costly_screens()
    assert len(warnings) == 1 and warnings[0].startswith("the generic packs: the near-edges screen"), warnings


def test_a_site_packs_source_is_reported_after_many_other_sources_in_a_shard(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A shard reports the sources its site packs applied to, for the run's 'site packs that applied to none' note: a
    feed of many hosts before the pack's site must not crowd it out of that report."""
    from datetime import UTC, datetime

    from cleaners import shard as shard_module
    from cleaners.readers import discover
    from cleaners.shard import plan_shards, process_shard
    from cleaners.store import OutputStore, partition_of

    monkeypatch.setattr(shard_module, "MAX_SOURCES_PER_SHARD", 2)
    body = "The council met on Tuesday and agreed the budget for the coming year after a long debate."
    records = [{"id": f"r{i}", "source": f"host{i}.example", "text": f"Story {i}\n\n{body}"} for i in range(5)]
    records.append({"id": "r5", "source": "420intel.com", "text": f"Story 5\n\n{body}"})
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "feed.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    rules = load_rules()
    now = datetime.now(UTC)
    [shard] = plan_shards(discover([str(tmp_path / "in")]))
    stats = process_shard(shard, OutputStore.open(str(tmp_path / "out")), rules, now, partition_of(now), {})
    assert stats.n_articles == 6
    assert stats.sources == ["420intel.com"]
    assert [pack.name for pack in rules.idle_site_packs(stats.sources) if "420intel.com" in pack.sites] == []


def _site_pages(top: list[str], headlines: list[str], bottom: list[str] = ()) -> list[str]:
    """Pages of one site: the same ``top`` and ``bottom`` lines (its template) around each headline and a story."""
    return ["\n".join([*(line.format(headline=headline) for line in top), headline,
                       f"The story of {headline.lower()} was told by residents on day {day}, who said the town had "
                       f"not seen anything like it since the flood of {1990 + day}.", *bottom])
            for day, headline in enumerate(headlines)]


HEADLINES = ["Harbour ferry timetable changes from Monday", "Council approves the old bridge rebuild",
             "School choir wins the regional final", "Market square reopens after repairs",
             "Library extends its weekend opening hours", "Night buses return to the valley route"]


def test_a_masthead_on_most_of_a_sources_pages_is_not_its_title(rules) -> None:
    """With a source's history, its masthead ("Cape Argus", at the top of every page) is its template, not each
    article's title."""
    from cleaners.batch import BatchItem, clean_batch

    pages = _site_pages(["Cape Argus", "Latest news"], HEADLINES)
    results = clean_batch([BatchItem("argus.example", page) for page in pages], rules)
    assert [result.title for result in results] == HEADLINES


def test_a_masthead_printed_twice_or_under_a_skip_link_is_not_the_title(rules) -> None:
    """A masthead printed twice (the logo's text and the name) would be a headline printed twice; under a line a rule
    removes ("Skip to content") it is still at the top of every page."""
    from cleaners.batch import BatchItem, clean_batch

    for top in (["Cape Argus", "Cape Argus", "Latest news"], ["Skip to content", "Cape Argus", "Latest news"]):
        results = clean_batch([BatchItem("argus.example", page) for page in _site_pages(top, HEADLINES)], rules)
        assert [result.title for result in results] == HEADLINES, top
        assert all("Cape Argus" not in result.text for result in results)


def test_under_a_masthead_a_dateline_or_byline_is_not_the_title(rules) -> None:
    """The headline under a masthead is the first line of a headline's length that is not a dateline or a byline; a
    masthead padded with spaces, or under a line of spaces, is still seen at the top."""
    from cleaners.batch import BatchItem, clean_batch

    days = ["Saturday, 28 November 2026", "Last updated at 10:32 GMT on 27 November 2026",
            "Nov. 26, 2026, 9:15 a.m. ET", "Published: 2026-11-25 10:32", "Posted on Nov 24, 2026 at 8:00 am",
            "Monday 23/11/2026"]
    names = ["By Jane Smith and Tom Brown", "by Ann Lee, Raj Patel", "By Li Wei and Sam Cole", "Written by Ed Hart",
             "By Jo Kay and Bo Dee", "By Cy Fox and Di Ray"]
    for under in (days, names):
        pages = ["\n".join(["Cape Argus", "Latest news", line, page]) for line, page in
                 zip(under, _site_pages([], HEADLINES), strict=True)]
        results = clean_batch([BatchItem("argus.example", page) for page in pages], rules)
        assert [result.title for result in results] == HEADLINES, under[0]
    padded = _site_pages([" " * 130, "Cape Argus   ", "Latest news"], HEADLINES)
    results = clean_batch([BatchItem("argus.example", page) for page in padded], rules)
    assert [result.title for result in results] == HEADLINES


def test_a_headline_at_the_top_of_the_sites_other_pages_stays_its_pages_title(rules) -> None:
    """A headline shown at the top of every page (a "Trending" bar), or in a "Most read" list within the first lines of
    short pages, is at the top of most pages it is on, as a masthead; with nothing under it that reads as a headline,
    a line of a headline's length stays its own page's title (the other pages get theirs)."""
    from cleaners.batch import BatchItem, clean_batch

    trending = _site_pages([HEADLINES[0]], HEADLINES)
    short = ["\n".join([headline, f"Residents gathered on day {day} to see it.", "The mayor said more would follow.",
                        "Most read", *HEADLINES[:3]]) for day, headline in enumerate(HEADLINES)]
    sidebar = _site_pages([], HEADLINES)
    sidebar = ["\n".join([page.split("\n")[0], "Most read", *HEADLINES[:3], *page.split("\n")[1:]]) for page in sidebar]
    # A line of a headline's length under it (a byline without "By") does not replace it on its own page.
    bylined = ["\n".join([page.split("\n")[0], f"Reporter {chr(65 + day)}, Chief Reporter, Cape Town",
                          *page.split("\n")[1:]]) for day, page in enumerate(short)]
    for pages in (trending, short, sidebar, bylined):
        results = clean_batch([BatchItem("gazette.example", page) for page in pages], rules)
        assert [result.title for result in results] == HEADLINES


def test_under_a_masthead_a_short_headline_ends_the_look_and_headlines_like_bylines_are_found(rules) -> None:
    """Under a masthead, a short line is not passed over for the line below it (a short headline, then its standfirst:
    no title, the text whole); headlines that start like bylines or hold a date are headlines."""
    from cleaners.batch import BatchItem, clean_batch

    short = ["Mayor resigns", "Ferry strike ends", "Budget day", "Derby drawn", "Fog lifts", "Rain returns"]
    decks = [f"Councillors call for an early election after the row of day {day}" for day in range(len(short))]
    pages = ["\n".join(["Cape Argus", "Latest news", headline, deck,
                        f"The story of day {day} was told by residents, who had not seen anything like it before."])
             for day, (headline, deck) in enumerate(zip(short, decks, strict=True))]
    results = clean_batch([BatchItem("argus.example", page) for page in pages], rules)
    assert [result.title for result in results] == [None] * len(short)
    assert [result.text.splitlines()[:2] for result in results] == [[*pair] for pair in zip(short, decks, strict=True)]
    headlines = ["Von der Leyen visits Kyiv today", "Por qué sube el precio de la luz",
                 "By the numbers: 2026 in review", "Lotto results: Wednesday, November 25, 2026",
                 "Storm hits the coast on March 3", "Dow falls 500 points to 33,000"]
    results = clean_batch([BatchItem("argus.example", page)
                           for page in _site_pages(["Cape Argus", "Latest news"], headlines)], rules)
    assert [result.title for result in results] == headlines


def test_a_pages_own_title_naming_the_site_is_not_its_title(rules) -> None:
    """An HTML page's <title> that is the site's masthead says nothing of the headline: the headline under the
    masthead is the title (scripts written without spaces count their word units)."""
    from cleaners.boilerplate import LineCounter
    from cleaners.document import DocumentInput, clean_documents

    chinese = ["国务院发布新政策支持中小企业发展", "北京冬季供暖今日正式开始运行", "上海地铁新线路下月开通试运营",
               "广州举办国际美食节吸引游客", "深圳科技园新增三家研发中心", "杭州西湖景区延长夜间开放时间"]
    for masthead, headlines, own_title in (("Cape Argus", HEADLINES, "CAPE  argus"), ("人民网", chinese, "人民网")):
        pages = _site_pages([masthead, "Latest news"], headlines)
        counter = LineCounter()
        counter.add_many([("argus.example", page) for page in pages])
        items = [DocumentInput(page, "argus.example", own_title, False) for page in pages]
        results = clean_documents(items, rules, line_stats=counter.to_stats())
        assert [result.title for result in results] == headlines


def test_a_top_line_is_its_own_pages_headline_only_when_printed_again_in_its_top(rules) -> None:
    """A short headline in a "Trending" slot above the menu of every page is printed again under the menu on its own
    page: it stays that page's title. A copy in a footer's "Most read" list is not printed again in the top: the line
    at the top of every page stays set aside there, and each page gets its own headline."""
    from cleaners.batch import BatchItem, clean_batch

    headlines = ["Budget 2026 explained", *HEADLINES[1:]]
    pages = _site_pages(["Budget 2026 explained", "Home", "News", "Sport"], headlines)
    results = clean_batch([BatchItem("argus.example", page) for page in pages], rules)
    assert [result.title for result in results] == headlines
    trending = "Mayor resigns after budget row at city hall"
    pages = _site_pages([trending, "Home", "News"], HEADLINES, ["Most read", trending, "Contact us"])
    results = clean_batch([BatchItem("argus.example", page) for page in pages], rules)
    assert [result.title for result in results] == HEADLINES


def test_under_a_masthead_a_short_line_of_other_pages_is_passed_over(rules) -> None:
    """A short line under the masthead that the source's other pages print too (a blog's name, a section kicker) is
    passed over for the headline under it; Title Case and German headlines that start like bylines are headlines."""
    from cleaners.batch import BatchItem, clean_batch

    blogs = ["Neurobonkers", "Ideafeed", "Neurobonkers", "Ideafeed", "Neurobonkers", "Ideafeed"]
    headlines = ["Von Kiel bis Konstanz: Bahnstreik legt Verkehr lahm", "By The Numbers: Tourism In 2026",
                 "Door To Door Service Returns To Town", *HEADLINES[3:]]
    pages = ["\n".join(["Big Think", "Latest news", blog, page]) for blog, page in
             zip(blogs, _site_pages([], headlines), strict=True)]
    results = clean_batch([BatchItem("bigthink.example", page) for page in pages], rules)
    assert [result.title for result in results] == headlines


def test_under_a_masthead_no_article_line_is_taken_for_a_missing_headline(rules) -> None:
    """The first article line under a masthead is not its headline when it ends like a sentence ("!", "?") or goes on
    in the next line (a sentence split at a link), nor when the page's own headline is a line at the top of the other
    pages too (a "Trending" list): the line under it is its standfirst. The page then has no title; no line leaves the
    text. A headline in a Trending slot just above its own copy stays its page's title, and the caption under it stays
    in the text."""
    from cleaners.batch import BatchItem, clean_batch

    story = "The story was told by residents on day {day}, who said the town had not seen anything like it before."
    firsts = [["After years of delays the councillors now say the town will get what it asked for on day {day}!"],
              ["What does the bridge rebuild on day {day} mean for the commuters?"],
              ["Residents who spoke to the city council on day {day} said that the", "timetable would change soon."]]
    for first in firsts:
        pages = ["\n".join(["Cape Argus", "Latest news", *(line.format(day=day) for line in first),
                            story.format(day=day)]) for day in range(6)]
        results = clean_batch([BatchItem("argus.example", page) for page in pages], rules)
        assert [result.title for result in results] == [None] * 6, first
        assert all(result.text.startswith(first[0].format(day=day)) for day, result in enumerate(results))
    decks = [f"Commuters who rely on the early sailing face changes on day {day}" for day in range(6)]
    pages = ["\n".join(["Cape Argus", "Trending", *HEADLINES[:3], headline, deck, story.format(day=day)])
             for day, (headline, deck) in enumerate(zip(HEADLINES, decks, strict=True))]
    results = clean_batch([BatchItem("argus.example", page) for page in pages], rules)
    # Under a Trending list of headlines the shape look stops on every page (the cautious side: no title, all text).
    assert [result.title for result in results] == [None] * 6
    assert all(deck in result.text for deck, result in zip(decks, results, strict=True))
    captions = [f"Residents gather at the harbour on day {day}" for day in range(6)]
    pages = ["\n".join([HEADLINES[0], headline, caption, story.format(day=day)])
             for day, (headline, caption) in enumerate(zip(HEADLINES, captions, strict=True))]
    results = clean_batch([BatchItem("argus.example", page) for page in pages], rules)
    assert [result.title for result in results] == HEADLINES
    assert all(caption in result.text for caption, result in zip(captions, results, strict=True))


def test_with_counts_of_version_3_a_masthead_is_still_taken_for_the_title(rules) -> None:
    """Counts written before version 4 do not say where a line stands: the masthead is the title, as it was, until the
    source is counted again (the README says a drop rule fixes it meanwhile)."""
    import pyarrow.compute as pc

    from cleaners.boilerplate import LineCounter, LineStats
    from cleaners.document import DocumentInput, clean_documents

    pages = _site_pages(["Cape Argus", "Latest news"], HEADLINES)
    counter = LineCounter()
    counter.add_many([("argus.example", page) for page in pages])
    table = counter.to_table()
    old = table.filter(pc.not_equal(table["kind"], "top"))
    old = old.replace_schema_metadata({**table.schema.metadata, b"boilerstrip.schema_version": b"3"})
    items = [DocumentInput(page, "argus.example") for page in pages]
    for stats, expected in ((LineStats.from_tables([old]), ["Cape Argus"] * len(pages)),
                            (LineStats.from_tables([table]), HEADLINES)):
        assert [result.title for result in clean_documents(items, rules, line_stats=stats)] == expected


def test_the_headline_printed_again_under_the_sites_menu_goes(rules) -> None:
    """The page title on the first line (the bare headline), a menu longer than the title zone, then the headline
    again: with the source's history the menu is its template, and the copy under it goes as the title's repeat. A
    declared title printed at the top and under the menu loses both copies."""
    from cleaners.batch import BatchItem, clean_batch

    menu = ["Valley Times", "Home", "Local", "Region", "Business", "Weather", "Obituaries", "Events"]
    pages = _site_pages(["{headline}", *menu], HEADLINES)
    for declared in (False, True):
        items = [BatchItem("valley.example", page, title=headline if declared else None)
                 for page, headline in zip(pages, HEADLINES, strict=True)]
        for result, headline in zip(clean_batch(items, rules), HEADLINES, strict=True):
            assert result.title == headline
            assert [(r.line_no, r.rule) for r in result.removed if r.text == headline] == [
                (1, "structure.title"), (2 + len(menu), "structure.title-repeat")]
            assert result.text.startswith("The story of")


def test_short_headlines_linked_from_most_read_stay_titles(rules) -> None:
    """A short headline ("Mayor resigns") linked from "Most read" on every page of its site is a template line of at
    most 3 words, as a masthead is; but it is at the top of its own page only, so it stays the title."""
    from cleaners.batch import BatchItem, clean_batch

    short = ["Tornado hits Ohio", "Budget day arrives", "Ferry strike ends", "Mayor resigns", "Floods close schools",
             "Derby ends level"]
    pages = _site_pages([], short, ["Most read", *short[:4]])
    results = clean_batch([BatchItem("gazette.example", page) for page in pages], rules)
    assert [result.title for result in results] == short


def test_a_name_printed_twice_under_a_linked_headline_is_not_the_title(rules) -> None:
    """Below the template lines, a line printed twice bears out a headline only when it has a headline's length: the
    author's name under an avatar and as a link does not replace the headline (linked from "Most read")."""
    from cleaners.batch import BatchItem, clean_batch

    names = ["Jane Smith", "Tom Brown", "Ann Lee", "Raj Patel", "Li Wei", "Sam Cole"]
    pages = ["\n".join([headline, names[day], names[day], f"{day + 3} March 2024",
                        f"The story of {headline.lower()} was told by residents on day {day}, who said the town had "
                        "not seen anything like it.", "Most read", *HEADLINES[:5]])
             for day, headline in enumerate(HEADLINES)]
    results = clean_batch([BatchItem("gazette.example", page) for page in pages], rules)
    assert [result.title for result in results] == HEADLINES


def test_a_declared_titles_copy_under_the_sites_menu_goes(rules) -> None:
    """A record's declared title printed again under a menu longer than the title zone: with the source's history the
    menu is its template, and the copy below it goes as the title's."""
    from cleaners.batch import BatchItem, clean_batch

    menu = ["Valley Times", "Home", "Local", "Region", "Business", "Weather", "Obituaries", "Events"]
    pages = _site_pages(menu, HEADLINES)
    results = clean_batch([BatchItem("valley.example", page, title=headline)
                           for page, headline in zip(pages, HEADLINES, strict=True)], rules)
    for result, headline in zip(results, HEADLINES, strict=True):
        assert result.title == headline
        assert [r.rule for r in result.removed if r.text == headline] == ["structure.title"]
        assert result.text.startswith("The story of")


def test_a_page_title_far_above_its_headline_is_matched_below_the_sites_menu(rules) -> None:
    """"Headline — Site" on the first line and the bare headline under a menu longer than the title zone: with the
    source's history the menu is its template, the headline below it is the title and the page title goes."""
    from cleaners.batch import BatchItem, clean_batch

    menu = ["Valley Times", "Home", "Local", "Region", "Business", "Weather", "Obituaries", "Events"]
    pages = _site_pages(["{headline} — Valley Times", *menu], HEADLINES)
    results = clean_batch([BatchItem("valley.example", page) for page in pages], rules)
    assert [result.title for result in results] == HEADLINES
    for result, headline in zip(results, HEADLINES, strict=True):
        assert (result.removed[0].line_no, result.removed[0].rule) == (1, "structure.page-title")
        assert [r.rule for r in result.removed if r.text == headline] == ["structure.title"]
        assert result.text.startswith("The story of")


def test_a_headline_other_pages_link_to_stays_the_title(rules) -> None:
    """A headline is often a template line itself, printed on most of its site's pages in a "Most read" list: a line
    longer than a masthead stays the title when only its shape says so."""
    from cleaners.batch import BatchItem, clean_batch

    pages = _site_pages([], HEADLINES, ["Most read", *HEADLINES[:3]])
    results = clean_batch([BatchItem("gazette.example", page) for page in pages], rules)
    assert [result.title for result in results[:3]] == HEADLINES[:3]
    assert all(result.removed[0].rule == "structure.title" for result in results)


def test_titles_do_not_depend_on_which_pages_share_a_batch(rules) -> None:
    """The title step reads the source's template from the run-wide counts only: the same pages give the same rows
    cleaned in one batch, one page per batch, or in reverse order."""
    from cleaners.batch import BatchItem, clean_batch

    menu = ["Valley Times", "Home", "Local", "Region", "Business", "Weather", "Obituaries", "Events"]
    pages = [*_site_pages(["{headline} — Valley Times", *menu], HEADLINES), *_site_pages(["{headline}", *menu],
                                                                                       HEADLINES)]
    items = [BatchItem("valley.example", page) for page in pages]
    together = clean_batch(items, rules)
    assert clean_batch(items, rules, batch_docs=1) == together
    assert clean_batch(items[::-1], rules)[::-1] == together
    assert {result.title for result in together} == set(HEADLINES)
