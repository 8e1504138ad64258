"""The gateway's pure parsing: API tokens, job options, upload names, and the CLI's file handling."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from bulkocr.contracts import JobOptions, utcnow
from bulkocr.mongo import new_job
from bulkocr.settings import load
from bulkocr_client.client import GatewayError, collect_files
from bulkocr_client.submit import output_path
from bulkocr_gateway.options import InvalidOptions, parse_options
from bulkocr_gateway.settings import GatewaySettings
from bulkocr_gateway.upload import clean_filename
from bulkocr_gateway.views import eta_seconds, progress_of


def test_api_tokens_come_from_a_comma_list_or_a_secret_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """`owner:token,owner:token` is read from BULKOCR_API_TOKENS, or from the secret file of that name."""
    monkeypatch.setenv("BULKOCR_API_TOKENS", "alice:a-1, bob:b:2")
    assert load(GatewaySettings).owners_by_token() == {"a-1": "alice", "b:2": "bob"}
    monkeypatch.delenv("BULKOCR_API_TOKENS")
    (tmp_path / "bulkocr_api_tokens").write_text("carol:c3\n")
    monkeypatch.setenv("BULKOCR_SECRETS_DIR", str(tmp_path))
    assert load(GatewaySettings).api_tokens == {"carol": "c3"}


@pytest.mark.parametrize("tokens", ["alice", "alice:", ":tok", "alice:same,bob:same"])
def test_malformed_or_shared_tokens_stop_the_gateway_at_start(monkeypatch: pytest.MonkeyPatch, tokens: str):
    """A token without an owner, an owner without a token, or one token for two owners is refused."""
    monkeypatch.setenv("BULKOCR_API_TOKENS", tokens)
    with pytest.raises(ValidationError, match="api_tokens"):
        load(GatewaySettings)


def test_tokens_stay_out_of_the_settings_repr():
    """Settings may be logged; the tokens must not appear."""
    assert "s3cret" not in repr(GatewaySettings(api_tokens={"alice": "s3cret"}))


def test_options_default_from_settings_and_parse_form_values():
    """Missing fields take the defaults; present ones are parsed, formats deduplicated."""
    settings = GatewaySettings(engine="null", default_dpi=200)
    defaults = parse_options({}, settings)
    assert (defaults.engine, defaults.dpi, defaults.formats, defaults.auto_push) == (
        "null",
        200,
        ("txt", "json"),
        False,
    )
    given = parse_options({"dpi": "150", "formats": "ALTO, txt,alto", "auto_push": "yes", "language": "en"}, settings)
    assert (given.dpi, given.formats, given.auto_push, given.language) == (150, ("alto", "txt"), True, "eng")


def test_languages_are_stored_as_iso_639_3_codes():
    """A job names its languages by ISO 639-3 code (Archipelago's spelling), separated by commas,
    `+` or spaces; two-letter codes become their 639-3 form; repeats count once."""
    settings = GatewaySettings()
    assert parse_options({"language": "rus, ELL+ara eng"}, settings).language == "rus,ell,ara,eng"
    assert parse_options({"language": "ru,rus,heb"}, settings).language == "rus,heb"
    assert parse_options({"language": " "}, settings).language is None


def test_an_unknown_language_code_is_refused_with_the_reason():
    with pytest.raises(InvalidOptions, match=r"unknown language code 'xx'.*ISO 639-3"):
        parse_options({"language": "rus,xx"}, GatewaySettings())


@pytest.mark.parametrize(
    "fields",
    [{"dpi": "1000"}, {"engine": "tesserakt"}, {"formats": ","}, {"language": "en; rm -rf"}, {"language": "eng," * 60}],
)
def test_options_out_of_bounds_are_refused(fields: dict[str, str]):
    """Values the gateway does not accept raise InvalidOptions with a reason."""
    with pytest.raises(InvalidOptions):
        parse_options(fields, GatewaySettings())


def test_upload_names_become_safe_relative_paths():
    """Escapes are decoded, then absolute parts, `..` and backslashes cannot climb out."""
    assert clean_filename("scans%2Fa.pdf", "d0001") == "scans/a.pdf"
    assert clean_filename("../../etc/passwd", "d0001") == "etc/passwd"
    assert clean_filename("C:\\scans\\b.tif", "d0001") == "scans/b.tif"
    assert clean_filename(None, "d0002") == "d0002"


def test_progress_and_eta_of_a_job_document():
    """No pages yet means 0%; eta is remaining pages at the pace so far."""
    job = new_job("j1", "alice", JobOptions(), 1)
    assert progress_of(job).percent == 0.0
    job["status"], job["pages_total"], job["pages_done"], job["pages_failed"] = "processing", 10, 4, 1
    job["started_at"] = utcnow() - timedelta(seconds=50)
    assert progress_of(job).percent == 50.0
    eta = eta_seconds(job, utcnow())
    assert eta is not None
    assert 49 <= eta <= 52


def test_cli_collects_folders_sorted_without_hidden_files(tmp_path: Path):
    """A folder expands to its files, recursively and sorted, named from the folder down."""
    (tmp_path / "scans" / "b").mkdir(parents=True)
    for name in ("scans/z.png", "scans/b/a.png", "scans/.hidden", "one.pdf"):
        (tmp_path / name).write_bytes(b"x")
    uploads = collect_files([tmp_path / "one.pdf", tmp_path / "scans"])
    assert [u.name for u in uploads] == ["one.pdf", "scans/b/a.png", "scans/z.png"]
    with pytest.raises(GatewayError, match="no such file"):
        collect_files([tmp_path / "missing"])


def test_cli_output_paths_stay_inside_the_folder_and_never_collide(tmp_path: Path):
    """Texts go to `<filename>.txt`; a repeated name gets the document id; `..` is dropped."""
    taken: set[Path] = set()
    assert output_path(tmp_path, "a.pdf", "d0001", taken) == tmp_path / "a.pdf.txt"
    assert output_path(tmp_path, "a.pdf", "d0002", taken) == tmp_path / "a.pdf.d0002.txt"
    assert output_path(tmp_path, "../../x.pdf", "d0003", taken) == tmp_path / "x.pdf.txt"
