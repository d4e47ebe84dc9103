"""The tickets' PDF, opened for real: pypdf reads its text, pypdfium2 renders each page and
zxing-cpp decodes the QR code on it, which must give the code printed beside it."""

import io
import uuid

import pypdf
import pypdfium2
import zxingcpp

from .factories import create_event
from .test_tickets import buy


def pdf_of(testapp, order_id, status=200):
    return testapp.get(f"/api/orders/{order_id}/tickets.pdf", status=status)


def decoded_qr_codes(pdf):
    """The text of every QR code on each page, rendered at 100 dpi."""
    document = pypdfium2.PdfDocument(pdf)
    try:
        pages = []
        for page in document:
            image = page.render(scale=100 / 72).to_pil()
            found = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)
            pages.append([each.text for each in found])
        return pages
    finally:
        document.close()


def test_one_page_per_ticket_with_its_code_in_text_and_in_a_qr_code(testapp, dbengine):
    event = create_event(dbengine, name="Summer Festival", venue="Riverside Park")
    order = buy(testapp, event, quantity=3).json["data"]
    tickets = testapp.get(f"/api/orders/{order['id']}/tickets").json["data"]
    attendee = {"attendee_name": "Zoë Brontë", "attendee_email": "zoe@example.com"}
    testapp.put_json(
        f"/api/tickets/{tickets[1]['id']}", {"ticket": {"order_id": order["id"], **attendee}}
    )

    response = pdf_of(testapp, order["id"])

    assert response.content_type == "application/pdf"
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="tickets-{order["id"][:8]}.pdf"'
    )
    reader = pypdf.PdfReader(io.BytesIO(response.body))
    assert len(reader.pages) == 3
    for page, ticket in zip(reader.pages, tickets, strict=True):
        text = page.extract_text()
        assert ticket["code"] in text
        for shown in ("Summer Festival", "Riverside Park", "General admission", ticket["id"]):
            assert shown in text
    assert "Zoë Brontë" in reader.pages[1].extract_text()
    assert "Ann" in reader.pages[0].extract_text()
    assert decoded_qr_codes(response.body) == [[ticket["code"]] for ticket in tickets]


def test_the_decoded_qr_code_checks_the_ticket_in(testapp, dbengine):
    event = create_event(dbengine)
    order = buy(testapp, event, quantity=1).json["data"]
    [[scanned]] = decoded_qr_codes(pdf_of(testapp, order["id"]).body)
    response = testapp.post_json(
        f"/api/events/{event.id}/check-ins", {"code": scanned, "nonce": "n"}, status=201
    )
    assert response.json["data"]["order_id"] == order["id"]


def test_only_valid_tickets_print(testapp, dbengine):
    event = create_event(dbengine)
    order = buy(testapp, event).json["data"]
    testapp.post(f"/api/orders/{order['id']}/cancel")
    assert pdf_of(testapp, order["id"], 409).json["code"] == "order_has_no_tickets"
    assert pdf_of(testapp, uuid.uuid4(), 404).json["code"] == "order_not_found"


def test_characters_beyond_the_fonts_print_as_question_marks(testapp, dbengine):
    # The PDF's standard fonts have Latin-1 glyphs only; a name beyond it must not fail the PDF
    # (nor the confirmation email that attaches it).
    event = create_event(dbengine, name="Fête € Night")
    order = buy(testapp, event, quantity=1, customer_name="李雷").json["data"]
    [ticket] = testapp.get(f"/api/orders/{order['id']}/tickets").json["data"]

    body = pdf_of(testapp, order["id"]).body

    text = pypdf.PdfReader(io.BytesIO(body)).pages[0].extract_text()
    assert "Fête ? Night" in text and "Attendee: ?? <ann@example.com>" in text
    assert decoded_qr_codes(body) == [[ticket["code"]]]
