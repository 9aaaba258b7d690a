"""``spinedesk service users``: registering users by the NHS user UUID printed on their smartcard, through the
real entry point (``main``), over both stores."""

from __future__ import annotations

import io

import pytest

from app.__main__ import main
from app.service.storage import open_store


@pytest.fixture
def spinedesk(tmp_path, monkeypatch, store_url):
    monkeypatch.setenv("SPINEDESK_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("SPINEDESK_SITE_CONFIG", raising=False)

    def run(*argv: str) -> tuple[int, str]:
        out = io.StringIO()
        return main(["service", "--database", store_url, "users", *argv], stdout=out), out.getvalue()
    return run


def test_users_are_registered_and_linked_by_nhs_user_uuid(spinedesk, store_url):
    assert spinedesk("add", "--id", "ada", "--name", "Dr Ada Lovelace", "--uuid", "555000111222") == (
        0, "Added user ada (Dr Ada Lovelace), NHS user UUID 555000111222.\n")
    assert spinedesk("add", "--id", "ada", "--name", "Dr Ada Lovelace", "--uuid", " 555000111333 ",
                     "--uuid", "555000111444") == (
        0, "Linked NHS user UUID 555000111333 and NHS user UUID 555000111444 to user ada.\n")
    code, listed = spinedesk("list")
    assert code == 0
    assert "ada  Dr Ada Lovelace  NHS user UUIDs: 555000111222, 555000111333, 555000111444  cards: -" in listed
    with open_store(store_url) as store:
        assert store.user_by_nhs_uuid("555000111444").id == "ada"


@pytest.mark.parametrize("bad", ["55500011122", "5550001112223", "55500O111222", "555-000-111-222"])
def test_a_uuid_that_is_not_12_digits_is_refused_plainly(spinedesk, store_url, capsys, bad):
    code, _ = spinedesk("add", "--id", "ada", "--name", "Dr Ada Lovelace", "--uuid", bad)
    assert code == 1
    assert f"'{bad}' is not an NHS user UUID: it must be exactly 12 digits" in capsys.readouterr().err
    with open_store(store_url) as store:
        assert store.get_user("ada") is None  # nothing written


def test_a_second_user_cannot_take_a_registered_uuid(spinedesk, store_url, capsys):
    assert spinedesk("add", "--id", "ada", "--name", "Dr Ada Lovelace", "--uuid", "555000111222")[0] == 0
    code, _ = spinedesk("add", "--id", "bob", "--name", "Dr Bob", "--uuid", "555000111222")
    assert code == 1
    assert "the NHS user UUID '555000111222' is already registered to user 'ada'" in capsys.readouterr().err
    assert spinedesk("add", "--id", "bob", "--name", "Dr Bob", "--uuid", "555000111333")[0] == 0
    code, _ = spinedesk("add", "--id", "bob", "--name", "Dr Bob", "--uuid", "555000111222")  # linking it: no
    assert code == 1 and "already registered to user 'ada'" in capsys.readouterr().err
    with open_store(store_url) as store:
        assert store.get_user("bob").nhs_uuids == ("555000111333",)


def test_a_user_needs_some_credential_and_an_nhs_uuid_is_not_a_card_uuid(spinedesk, capsys):
    assert spinedesk("add", "--id", "ada", "--name", "Dr Ada Lovelace")[0] == 1
    assert "--uuid (the NHS user UUID printed on an NHS smartcard)" in capsys.readouterr().err
    assert spinedesk("add", "--id", "ada", "--name", "Dr Ada Lovelace", "--card-uuid", "555000111222")[0] == 1
    assert "for the 12-digit NHS user UUID printed on an NHS smartcard use --uuid" in capsys.readouterr().err
