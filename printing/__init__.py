"""Notices to bytes: pure functions of plain data (``Slip``), importing nothing else of Jingsu and no database.

- ``printing.slip``: ``Slip`` (the input), Korean text helpers, ``slip_content`` (the words every format prints)
- ``printing.escpos``: ``render_escpos(slip, width_mm=80)`` for 58/80 mm Korean belt printers
- ``printing.escpos_reader``: ``read_escpos(data)`` parses that ESC/POS subset back (tests, text preview)
- ``printing.png``: ``render_png(slip, width_px=576)`` preview of the belt-printer slip
- ``printing.pdf``: ``render_pdf(slips, layout="receipt" | "a4")``, one page per slip
- ``printing.qr``: the payment QR as a matrix or a Pillow image
- ``printing.errors``: ``PrintingError`` and its subclasses
- ``printing.documents``: the citizen documents besides the slip (``PersonNotice`` 현장 사전통지, ``AdvanceNotice``
  사전통지서, ``ImpositionNotice`` 부과 고지서, ``DemandNotice`` 독촉장, ``Receipt`` 영수증) and what each says
- ``printing.a4``: ``render_documents_pdf(documents, progress=…)`` A4 window-envelope pages merged into one PDF,
  ``render_document_png(document)`` its preview
- ``printing.field``: ``render_document_escpos`` / ``_slip_png`` / ``_slip_pdf`` for the 사전통지 and 영수증 on 58/80 mm
- ``printing.payment_number``: the 19-digit 전자납부번호 (``build``, ``parse``, ``check``, ``format``; provisional check
  digit)

Import the module you need: this package imports none of them, so the device's ESC/POS path does not load
Pillow or reportlab.
"""
