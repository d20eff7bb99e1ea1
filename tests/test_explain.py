"""`boilerstrip explain`: one input shown line by line, and clear errors for what it cannot show."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from cleaners.rulepack import DEFAULT_RULES_DIR
from flows.cli import app

SEED = Path(__file__).resolve().parents[1] / "data" / "raw" / "420intel.com" / "000_09f1c496b2e8d967.txt"


def _explain(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["explain", *args], env={"COLUMNS": "200"})  # rich wraps at its width
    return result.exit_code, result.output


def test_explain_marks_each_removed_line_with_its_rule() -> None:
    code, output = _explain(str(SEED))
    assert code == 0, output
    # The folder names the site, and the input id is the one a run over data/raw writes.
    assert output.startswith("420intel.com/000_09f1c496b2e8d967.txt  source=420intel.com")
    assert "[420intel.region-tag]" in output  # the site pack's rule, named on the line it removed
    assert "[structure.title] the title: moved to the `title` column" in output
    assert "metadata: {'region': 'Mexico'}" in output
    assert "rule packs for source '420intel.com': site-420intel.com@" in output


def test_explain_says_when_no_site_pack_applies(tmp_path: Path) -> None:
    """A site pack whose `sites` misses the source (a typo, another host) shows as only the generic pack."""
    page = tmp_path / "valleyherald.com" / "story.txt"
    page.parent.mkdir()
    page.write_text("Council approves the bridge\n\nThe council voted on Tuesday to rebuild the old bridge.\n")
    code, output = _explain(str(page))
    assert code == 0, output
    assert "rule packs for source 'valleyherald.com': generic@" in output
    assert "(no site pack lists this source)" in output


def test_check_rules_lists_each_pack_and_names_a_broken_one(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["check-rules"])
    assert result.exit_code == 0, result.output
    assert "ok  site-420intel.com@" in result.output and "(sites 420intel.com;" in result.output
    assert "ok  generic@" in result.output and "(every source;" in result.output
    broken = tmp_path / "site.toml"
    broken.write_text('[pack]\nname = "s"\nversion = "1"\nsites = ["https://valleyherald.com"]\n')
    result = CliRunner().invoke(app, ["check-rules", "--rules", str(broken)])
    assert result.exit_code == 2
    assert str(broken) in result.output and "is not a source name" in result.output
    assert "warning:" not in result.output


def test_check_rules_warns_of_a_rule_that_makes_the_screen_costly(tmp_path: Path) -> None:
    """A byline rule with a Unicode class under a counted repeat loads and works, but its screen is ~60,000 RE2
    instructions: check-rules says so and names it (exit code 0: slow, not broken)."""
    pack = tmp_path / "riverside.toml"
    pack.write_text('[pack]\nname = "riverside"\nversion = "1"\nsites = ["riversidegazette.com"]\n\n[[rules]]\n'
                    'id = "riverside.byline"\nconcept = "byline"\nwhy = "The byline."\n'
                    "regex = 'By [\\p{L} .\\-]{3,40}?'\nzone = \"top\"\nexamples.drop = [\"By Jane Doe\"]\n"
                    'examples.keep = ["By the river the town grew for a hundred years, as the records show."]\n',
                    encoding="utf-8")
    result = CliRunner().invoke(app, ["check-rules", "--rules", str(DEFAULT_RULES_DIR), "--rules", str(pack)])
    assert result.exit_code == 0, result.output
    assert "ok  riverside@1" in result.output
    assert "warning: riversidegazette.com's packs: the near-edges screen compiles to" in result.output
    assert "Costliest rules: riverside.byline (" in result.output


def test_explain_refuses_a_folder_of_several_files_and_an_empty_one(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("One article.\n")
    (tmp_path / "b.txt").write_text("Another article.\n")
    code, output = _explain(str(tmp_path))
    assert code != 0 and "explain shows one file; this is 2 files (a.txt, b.txt)" in output
    (tmp_path / "empty").mkdir()
    code, output = _explain(str(tmp_path / "empty"))
    assert code != 0 and "no input file in it" in output


def test_explain_names_an_empty_jsonl_and_a_folder_that_is_not_an_output(tmp_path: Path) -> None:
    (tmp_path / "batch.jsonl").write_text("\n\n")
    code, output = _explain(str(tmp_path / "batch.jsonl"))
    assert code != 0 and "this input is a reject (empty): no records" in output
    code, output = _explain(str(SEED), "--output", str(tmp_path / "no-such-output"))
    assert code != 0 and "not an output folder of a run" in output


def test_explain_with_an_output_judges_a_file_as_the_run_named_its_source(tmp_path: Path) -> None:
    """A folder-path source ("feeds/wire") depends on the input root a run was given, which the file's path alone
    does not tell: with --output, explain takes the source the run's rows give the file."""
    from datetime import UTC, datetime

    from cleaners.readers import discover
    from cleaners.rulepack import load_rules
    from cleaners.shard import count_shard, plan_shards, process_shard
    from cleaners.store import OutputStore

    page = tmp_path / "in" / "feeds" / "wire" / "b.txt"
    page.parent.mkdir(parents=True)
    page.write_text("Council approves the bridge\n\nThe council voted on Tuesday to rebuild the old bridge.\n")
    store = OutputStore.open(str(tmp_path / "out"))
    for shard in plan_shards(discover([str(tmp_path / "in")])):
        count_shard(shard, store)
        process_shard(shard, store, load_rules(), datetime(2026, 1, 1, tzinfo=UTC), "ingest_date=2026-01-01", {})
    assert store.sources_of(str(page)) == {"feeds/wire"}
    code, output = _explain(str(page))
    assert code == 0 and "source=unknown" in output, output  # alone, its root is its own folder
    code, output = _explain(str(page), "--output", str(tmp_path / "out"))
    assert code == 0 and "b.txt  source=feeds/wire" in output, output
    code, output = _explain(str(page), "--output", str(tmp_path / "out"), "--source", "other.example")
    assert code == 0 and "source=other.example" in output, output


def test_run_refuses_an_output_it_cannot_write_before_starting_prefect(tmp_path: Path) -> None:
    """An output that cannot be created is refused at once, with the reason (Prefect's start took 10-20 s
    before the error came, with a traceback)."""
    (tmp_path / "a-file").write_text("not a folder\n")
    result = CliRunner().invoke(app, ["run", str(SEED), "--output", str(tmp_path / "a-file" / "out")],
                                env={"PREFECT_HOME": str(tmp_path / "prefect")})
    assert result.exit_code == 2
    assert f"--output {tmp_path / 'a-file' / 'out'}: cannot write there" in result.output
    assert "Starting temporary server" not in result.output, "Prefect was started before the check"


def test_run_refuses_a_runner_it_does_not_know_and_an_address_without_dask(tmp_path: Path) -> None:
    """A misspelt $BOILERSTRIP_TASK_RUNNER failed 20 s in, after Prefect started; a Dask address given with another
    runner was ignored (the cluster stood idle). Both are refused at once, naming what to change."""
    env = {"PREFECT_HOME": str(tmp_path / "prefect"), "COLUMNS": "200"}
    out = str(tmp_path / "out")
    result = CliRunner().invoke(app, ["run", str(SEED), "--output", out],
                                env={**env, "BOILERSTRIP_TASK_RUNNER": "dsak"})
    assert result.exit_code == 2 and "$BOILERSTRIP_TASK_RUNNER 'dsak': unknown task runner" in result.output
    result = CliRunner().invoke(app, ["run", str(SEED), "--output", out, "--task-runner", "threads", "--dask-address",
                                      "tcp://127.0.0.1:8786"], env=env)
    assert result.exit_code == 2
    assert "--dask-address is for the dask task runner, and this run uses threads" in result.output
    assert not (tmp_path / "out").exists()


def test_run_names_a_url_protocol_it_cannot_read_without_a_traceback(tmp_path: Path) -> None:
    env = {"PREFECT_HOME": str(tmp_path / "prefect"), "COLUMNS": "200"}
    result = CliRunner().invoke(app, ["run", "nosuchproto://bucket/raw", "--output", str(tmp_path / "out")], env=env)
    assert result.exit_code == 2 and "input 'nosuchproto://bucket/raw': Protocol not known" in result.output
    result = CliRunner().invoke(app, ["run", str(SEED), "--output", "nosuchproto://bucket/out"], env=env)
    assert result.exit_code == 2 and "--output nosuchproto://bucket/out: Protocol not known" in result.output


def test_run_refuses_sizes_over_the_flows_limits_before_starting_prefect(tmp_path: Path) -> None:
    """The flow takes at most 1024 MiB per shard and per document: the CLI says so at once (the flow refused them
    only after Prefect had started)."""
    for flag in ("--shard-mb", "--max-doc-mb"):
        result = CliRunner().invoke(app, ["run", str(SEED), "--output", str(tmp_path / "out"), flag, "2000"],
                                    env={"PREFECT_HOME": str(tmp_path / "prefect"), "COLUMNS": "200"})
        assert result.exit_code == 2, result.output
        assert f"Invalid value for '{flag}'" in result.output and "less than or equal to 1024" in result.output
        assert not (tmp_path / "out").exists()


def test_explain_piped_keeps_each_line_on_one_line(tmp_path: Path) -> None:
    """Piped into grep, a removed line and its rule are not wrapped at 80 columns."""
    result = CliRunner().invoke(app, ["explain", str(SEED)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    reason = next(line for line in result.output.splitlines() if "[420intel.footer-link-bar]" in line)
    assert len(reason) > 80 and reason.endswith("with any of its separators (|, · or •)."), reason


def test_explain_keeps_the_author_a_record_declares_as_the_run_does(tmp_path: Path) -> None:
    """A record's own ``author`` is the column's value in a run; explain shows the same: the "Author:" line goes, and
    its reason says the value was not moved (it claimed the line's value was)."""
    pack = tmp_path / "gazette.toml"
    pack.write_text('[pack]\nname = "gazette"\nversion = "1"\nsites = ["gazette.example"]\n\n[[rules]]\n'
                    'id = "gazette.author"\nconcept = "byline"\nwhy = "The author line."\n'
                    "regex = 'Author:\\s*(?P<value>\\w.*)'\naction = 'metadata'\nmetadata_column = 'author'\n"
                    'examples.drop = ["Author: Ann Lee"]\nexamples.keep = ["Authors vary"]\n', encoding="utf-8")
    records = tmp_path / "in.jsonl"
    text = ("Author: Ann Lee\n\nThis paragraph is the article itself, and it is long enough to be kept by every rule "
            "we have.")
    records.write_text(json.dumps({"id": "1", "source": "gazette.example", "author": "Bo Ma", "text": text}) + "\n",
                       encoding="utf-8")
    code, output = _explain(str(records), "--rules", str(DEFAULT_RULES_DIR), "--rules", str(pack))
    assert code == 0, output
    assert "[gazette.author]" in output
    assert "(not moved: `author` is 'Bo Ma', given with the input)" in output
    assert "metadata: {'author'" not in output


def test_explain_shows_a_pages_markup_and_escape_codes_as_text(tmp_path: Path) -> None:
    """A page's strings are shown, never interpreted: "[/]" in a title crashed explain (Rich markup), a
    "[link=...]" source was taken as a link, and an id's escape codes cleared the terminal."""
    records = tmp_path / "in.jsonl"
    text = "Budget [/] vote passes\n\nThe council voted on Tuesday to rebuild the old bridge, which had been closed."
    records.write_text(json.dumps({"id": "a\x1b[2Jb", "source": "[link=http://evil.example]x[/link]",
                                   "text": text}) + "\n", encoding="utf-8")
    code, output = _explain(str(records))
    assert code == 0, output
    assert "\x1b" not in output and "a\\x1b[2Jb" in output
    assert "source=[link=http://evil.example]x[/link]" in output
    assert "title='Budget [/] vote passes'" in output


def test_explain_finds_a_record_without_id_by_the_input_id_of_the_rows(tmp_path: Path) -> None:
    """A record without an id is "feeds/feed.jsonl:2" in the rows (its path below the run's input root) and
    "feed.jsonl:2" to explain given the file alone: both find it, and another line's id does not."""
    records = tmp_path / "in" / "feeds" / "feed.jsonl"
    records.parent.mkdir(parents=True)
    lines = [{"text": "First headline\n\nThe first record's body, long enough to be an article paragraph here."},
             {"text": "Second headline\n\nThe second record's body, long enough to be an article paragraph too."}]
    records.write_text("".join(json.dumps(record) + "\n" for record in lines))
    for record_id in ("feeds/feed.jsonl:2", "feed.jsonl:2"):
        code, output = _explain(str(records), "--id", record_id)
        assert code == 0 and "The second record's body" in output and "first record" not in output, output
    code, output = _explain(str(records), "--id", "feeds/feed.jsonl:3")
    assert code != 0 and "no record with id 'feeds/feed.jsonl:3'" in output
