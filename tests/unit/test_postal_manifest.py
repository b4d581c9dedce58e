"""The e-그린우편 manifest (adapters.postal): written piece by piece, parsed back whole, every break of the
format refused naming its line; the sandbox post checks the PDF against it and answers the same receipt twice."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pypdfium2 as pdfium
import pytest

from adapters.postal import (
    MailPiece,
    ManifestError,
    ManifestHeader,
    ManifestWriter,
    PostalRefused,
    SandboxPostal,
    parse_manifest,
    write_manifest,
)

HEADER = ManifestHeader("11110", "서울특별시 종로구청", 42, date(2026, 11, 26), 3, "notices.pdf")


def pieces(count: int = 3) -> list[MailPiece]:
    return [
        MailPiece(n, f"사전통지-2026-{n:08d}", f"0315{n}", f"홍길{n}", f"서울특별시 종로구 종로 {n}, {n}01호", n, n)
        for n in range(1, count + 1)
    ]


def blank_pdf(path: Path, pages: int) -> Path:
    document = pdfium.PdfDocument.new()
    for _ in range(pages):
        document.new_page(595, 842)
    document.save(str(path))
    document.close()
    return path


def test_a_manifest_round_trips_with_its_header_pieces_and_trailer(tmp_path: Path) -> None:
    path = tmp_path / "manifest.txt"
    write_manifest(path, HEADER, pieces())

    data = path.read_bytes()
    manifest = parse_manifest(data)

    assert manifest.header == HEADER and list(manifest.pieces) == pieces() and manifest.total_pages == 3
    lines = data.decode("utf-8").split("\r\n")
    assert lines[0] == "H|EGREEN1|11110|서울특별시 종로구청|42|20261126|3|notices.pdf"
    assert lines[1] == "D|1|사전통지-2026-00000001|03151|홍길1|서울특별시 종로구 종로 1, 101호|1|1|1"
    assert lines[-2:] == ["T|3|3", ""]


def test_separators_and_line_breaks_inside_values_become_spaces(tmp_path: Path) -> None:
    path = tmp_path / "manifest.txt"
    odd = MailPiece(1, "사전통지-2026-00000001", "", "홍|길동", "종로 1\r\n101호\t(종로동)", 1, 1)
    write_manifest(path, ManifestHeader("11110", "종로구청", 1, date(2026, 1, 2), 1, "a.pdf"), [odd])

    [piece] = parse_manifest(path.read_bytes()).pieces

    assert (piece.name, piece.address, piece.postal_code) == ("홍 길동", "종로 1 101호 (종로동)", "")


def test_a_pieces_repr_leaves_out_name_and_address() -> None:
    assert "홍길1" not in repr(pieces(1)[0]) and "종로" not in repr(pieces(1)[0])


@pytest.mark.parametrize(
    ("mangle", "line"),
    [
        (lambda t: t.replace("H|EGREEN1", "H|EGREEN9"), 1),
        (lambda t: t.replace("|20261126|", "|20261399|"), 1),
        (lambda t: t.replace("D|2|", "D|3|"), 3),
        (lambda t: t.replace("|2|2\r\n", "|3|3\r\n"), 3),
        (lambda t: t.replace("|03152|", "|3152|"), 3),
        (lambda t: t.replace("|홍길2|", "||"), 3),
        (lambda t: t.replace("T|3|3", "T|3|4"), 5),
        (lambda t: t.replace("T|3|3", "T|2|3"), 5),
        (lambda t: t.replace("|42|20261126|3|", "|42|20261126|4|"), 5),
        (lambda t: t[:-2], 0),
    ],
)
def test_every_break_of_the_format_is_refused_naming_the_line(tmp_path: Path, mangle, line: int) -> None:
    path = tmp_path / "manifest.txt"
    write_manifest(path, HEADER, pieces())
    text = mangle(path.read_bytes().decode("utf-8"))

    with pytest.raises(ManifestError) as refused:
        parse_manifest(text.encode("utf-8"))

    assert refused.value.line == line


def test_the_writer_refuses_gaps_and_a_count_other_than_announced(tmp_path: Path) -> None:
    with pytest.raises(ManifestError):
        with ManifestWriter(tmp_path / "a.txt", HEADER) as writer:
            writer.add(pieces()[1])  # seq 2 first
    writer = ManifestWriter(tmp_path / "b.txt", HEADER)
    writer.add(pieces()[0])
    with pytest.raises(ManifestError, match="announced 3"):
        writer.close()


def test_the_sandbox_post_checks_the_pdf_and_answers_the_same_receipt_for_the_same_run(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.txt"
    write_manifest(manifest, HEADER, pieces())
    post = SandboxPostal(tmp_path / "postal")

    receipt = post.submit(manifest, blank_pdf(tmp_path / "ok.pdf", 3))

    assert receipt.startswith("EGP-SBX-00000042-")
    assert (tmp_path / "postal" / f"{receipt}.txt").read_bytes() == manifest.read_bytes()
    assert post.submit(manifest, tmp_path / "ok.pdf") == receipt
    with pytest.raises(PostalRefused, match="2 pages"):
        post.submit(manifest, blank_pdf(tmp_path / "short.pdf", 2))
