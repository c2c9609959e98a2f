"""``keyless migrate report``: every export shape, the per-caller view, the verdict, and bad input."""

from __future__ import annotations

import gzip
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from keyless.cli.migrate_cmd import migrate_group
from keyless.migrate.logs import read_logs
from keyless.migrate.records import Key, ReadStats, from_row, parse_time
from keyless.migrate.report import Report, key_signed

FIXTURES = Path(__file__).parent / "fixtures"
ORACLE_OID = "fde5ba15-4355-4223-b811-cccccccccccc"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(migrate_group, ["report", *args])
    return result.exit_code, result.stdout, result.stderr


def report_json(*args: str) -> tuple[int, dict[str, Any]]:
    code, out, _ = run(*args, "--json")
    return code, json.loads(out)


def test_diagnostic_settings_lines_from_microsofts_examples() -> None:
    code, data = report_json(str(FIXTURES / "PT1H.json"))
    assert code == 1 and data["ready"] is False
    assert data["input"]["records"] == 3 and data["input"]["malformed"] == 1
    assert "PT1H.json:4" in data["input"]["malformed_examples"][0]
    acct = data["accounts"]["testaccount1"]
    # "SAS Key" (the diagnostic spelling) is the SAS of the table; signed with key1, so key-signed
    assert acct["requests_by_authentication_type"] == {"OAuth": 1, "AccountKey": 1, "SAS": 1}
    assert acct["shares"] == {"share1": {"OAuth": 1, "AccountKey": 1}, "share2": {"SAS": 1}}
    assert acct["key_signed_requests"] == 2
    callers = {c["caller_ip"]: c for c in acct["non_identity_callers"]}
    assert set(callers) == {"192.100.0.102", "10.20.30.40"}
    key_user = callers["192.100.0.102"]
    assert key_user["user_agent"] == "WA-Storage/6.2.0 (.NET CLR 4.0.30319.42000; Win32NT 6.2.9200.0)"
    assert key_user["operations"] == {"GetFile": 1} and key_user["first_seen"] == "2019-02-28T19:12:40Z"
    (identity,) = acct["identity_callers"]
    assert identity["object_id"] == ORACLE_OID
    assert identity["tenant_id"] == "72f988bf-86f1-41af-91ab-dddddddddddd"
    assert identity["app_id"] == "691458b9-1327-4635-9f55-bbbbbbbbbbbb"


def test_log_analytics_csv_and_json_exports_agree() -> None:
    code_csv, csv_data = report_json(str(FIXTURES / "loganalytics.csv"))
    code_json, json_data = report_json(str(FIXTURES / "loganalytics.json"))
    assert code_csv == code_json == 1
    assert csv_data["input"]["malformed"] == 1  # the row with the wrong number of fields
    assert json_data["input"]["malformed"] == 0
    assert csv_data["accounts"] == json_data["accounts"]
    acct = csv_data["accounts"]["contosofiles"]
    assert acct["requests_by_authentication_type"] == {"AccountKey": 1, "OAuth": 1, "Kerberos": 1}
    (key_user,) = [c for c in acct["non_identity_callers"] if c["key_signed_requests"]]
    assert key_user["caller_ip"] == "10.1.2.3" and key_user["user_agent"].startswith("azsdk-python-storage")
    # the portal's "12/1/2026, 9:07:56.123 PM" is the same instant as the JSON export's ISO time
    assert key_user["first_seen"] == "2026-12-01T21:07:56.123000Z"
    assert {c["object_id"] for c in acct["identity_callers"]} == {
        "5b4f7d2e-0000-4000-8000-00000000a001", "5b4f7d2e-0000-4000-8000-00000000a002"}


def test_text_report_names_the_callers_and_the_verdict() -> None:
    code, out, _ = run(str(FIXTURES / "PT1H.json"))
    assert code == 1
    assert "Verdict: not ready" in out
    assert "move: testaccount1 <- 192.100.0.102 WA-Storage/6.2.0" in out
    assert ORACLE_OID in out and "Malformed lines skipped: 1" in out


def test_since_drops_earlier_key_use_and_says_ready() -> None:
    code, data = report_json(str(FIXTURES / "loganalytics.json"), "--since", "2026-12-01T21:08:00Z")
    assert code == 0 and data["ready"] is True
    assert data["input"]["outside_window"] == 1 and data["input"]["in_window"] == 2
    code, data = report_json(str(FIXTURES / "loganalytics.json"), "--until", "2026-12-01T21:08:00Z")
    assert code == 1 and data["accounts"]["contosofiles"]["key_signed_requests"] == 1


def test_directories_gzip_and_the_query_api_tables_shape(tmp_path: Path) -> None:
    tree = tmp_path / "insights-logs-storageread" / "y=2019" / "m=02"
    tree.mkdir(parents=True)
    with gzip.open(tree / "PT1H.json.gz", "wb") as out:
        out.write((FIXTURES / "PT1H.json").read_bytes())
    rows = json.loads((FIXTURES / "loganalytics.json").read_text())
    columns = list(rows[0])
    api = {"tables": [{"name": "PrimaryResult", "columns": [{"name": c, "type": "string"} for c in columns],
                       "rows": [[r[c] for c in columns] for r in rows] + [["short row"]]}]}
    (tmp_path / "api.json").write_text(json.dumps(api, indent=2))
    code, data = report_json(str(tmp_path))
    assert data["input"]["files"] == 2 and data["input"]["records"] == 6
    assert data["input"]["malformed"] == 2  # the cut line of the PT1H blob, the short API row
    assert set(data["accounts"]) == {"testaccount1", "contosofiles"} and code == 1


def test_sas_hash_decides_whether_a_sas_is_key_signed() -> None:
    def req(auth: str, digest: str = "") -> Key:
        row = {"TimeGenerated": "2026-01-01T00:00:00Z", "AccountName": "a", "AuthenticationType": auth,
               "AuthenticationHash": digest, "CallerIpAddress": "1.2.3.4:5", "ObjectKey": "/a/s/f"}
        request = from_row(row)
        assert request is not None
        return request[1]

    assert key_signed(req("AccountKey"))
    assert key_signed(req("SAS", "key1(ABC),SasSignature(DEF)"))
    assert key_signed(req("SAS Key", "key2(ABC),SasSignature(DEF)"))
    assert key_signed(req("SAS"))  # logs that say only "SAS" cannot rule out a key: the safe side
    assert not key_signed(req("SAS", "UserDelegationKey(ABC),SasSignature(DEF)"))
    assert not any(key_signed(req(kind)) for kind in ("OAuth", "Kerberos", "Anonymous", "DelegationSas"))


def test_no_records_is_unknown_not_ready(tmp_path: Path) -> None:
    empty = tmp_path / "empty.json"
    empty.write_text("")
    code, data = report_json(str(empty))
    assert code == 1 and data["verdict"].startswith("unknown")


def test_unreadable_or_missing_input_is_reported_and_blocks_ready(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    rows = json.loads((FIXTURES / "loganalytics.json").read_text())
    good.write_text("\n".join(json.dumps(r) for r in rows if r["AuthenticationType"] != "AccountKey") + "\n")
    code, data = report_json(str(good))
    assert code == 0 and data["ready"]
    code, data = report_json(str(good), str(tmp_path / "missing.json"))
    assert code == 1 and "missing.json: no such file" in data["input"]["unreadable"][0]
    assert data["verdict"].startswith("not ready")


def test_garbage_never_crashes(tmp_path: Path) -> None:
    junk = tmp_path / "junk.log"
    junk.write_bytes(b'{"TimeGenerated": "yesterday", "AuthenticationType": "OAuth"}\n[1, 2]\n{"a": 1}\n'
                     b'\xff\xfe not json\n{"TimeGenerated": "2026-01-01T00:00:00Z"}\n')
    code, data = report_json(str(junk))
    assert code == 1 and data["input"]["records"] == 0
    # bad time, array, no AuthenticationType, undecodable; {"a": 1} is well-formed but not a request
    assert data["input"]["malformed"] == 4 and data["input"]["skipped_non_request_lines"] == 1
    array = tmp_path / "cut.json"
    array.write_text('[{"TimeGenerated": "2026-01-01T00:00:00Z", "AuthenticationType": "OAuth"}, {"Ti')
    code, data = report_json(str(array))
    assert data["input"]["records"] == 1 and data["input"]["malformed"] == 1


def test_bad_since_is_a_usage_error() -> None:
    code, _, err = run(str(FIXTURES / "PT1H.json"), "--since", "last tuesday")
    assert code == 2 and "--since" in err and "ISO 8601" in err


def test_time_formats() -> None:
    expected = datetime(2018, 11, 8, 21, 9, 36, 690011, tzinfo=UTC)
    assert parse_time("2018/11/08 21:09:36.6900118") == expected
    assert parse_time("2018-11-08T21:09:36.6900118Z") == expected
    assert parse_time("11/8/2018, 9:09:36.690 PM") == expected.replace(microsecond=690000)


def test_emulator_token_lines_are_skipped_not_malformed() -> None:
    line = {"TimeGenerated": "2026-01-01T00:00:00Z", "Type": "TokenIssuance", "source": "imds"}
    assert from_row(line) is None


def test_streaming_keeps_memory_to_the_callers(tmp_path: Path) -> None:
    """200,000 rows from 3 callers leave 3 callers in memory, whatever the row count."""
    path = tmp_path / "big.json"
    base = json.loads((FIXTURES / "loganalytics.json").read_text())
    with path.open("w") as out:
        for i in range(200_000):
            out.write(json.dumps(base[i % 3]) + "\n")
    stats = ReadStats()
    report = Report()
    report.add_all(read_logs([path], stats))
    assert stats.records == 200_000
    assert len(report.groups) == 3
    _, callers, identities, _ = report.fold()
    assert len(callers) + len(identities) == 3
    shutil.rmtree(tmp_path)


def test_parallel_slices_give_the_same_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Cut into many slices (a line straddling every boundary), read by 2 processes: the same answer."""
    from keyless.migrate import parallel

    base = json.loads((FIXTURES / "loganalytics.json").read_text())
    big = tmp_path / "big.json"
    with big.open("w") as out:
        out.write("\ufeff")  # a BOM on the first line, as some exporters write
        for i in range(3000):
            out.write(json.dumps({**base[i % 3], "TimeGenerated": f"2026-12-01T21:{i // 60 % 60:02d}:"
                                                                  f"{i % 60:02d}Z"}) + "\n")
            if i % 500 == 250:
                out.write('{"TimeGenerated": "2026-12-01T21:00:00Z", "AuthenticationType": \n')
    diag = tmp_path / "PT1H.json"
    shutil.copy(FIXTURES / "PT1H.json", diag)
    monkeypatch.setattr(parallel, "SLICE_BYTES", 4096)
    monkeypatch.setattr(parallel, "PARALLEL_MIN_BYTES", 1)
    units, _ = parallel.plan([big, diag], ReadStats(), workers=2)
    assert len([u for u in units if u[0] == str(big)]) == 8 and (str(diag), 0, -1) in units
    one, one_stats = parallel.build_report([big, diag], workers=1)
    two, two_stats = parallel.build_report([big, diag], workers=2)
    assert one_stats.records == two_stats.records == 3003
    assert one_stats.malformed == two_stats.malformed == 7 and two_stats.files == 2
    assert any("big.json@byte" in e for e in two_stats.examples)
    assert one.to_dict(one_stats)["accounts"] == two.to_dict(two_stats)["accounts"]
    since = datetime(2026, 12, 1, 21, 30, tzinfo=UTC)
    windowed, _ = parallel.build_report([big], since=since, workers=2)
    assert windowed.outside_window == 1800 and sum(g[0] for g in windowed.groups.values()) == 1200
