"""Notices to bytes: pure functions of plain data (``Slip``), importing nothing else of Jingsu and no database.

- ``printing.slip``: ``Slip`` (the input), Korean text helpers, ``slip_content`` (the words every format prints)
- ``printing.escpos``: ``render_escpos(slip, width_mm=80)`` for 58/80 mm Korean belt printers
- ``printing.escpos_reader``: ``read_escpos(data)`` parses that ESC/POS subset back (tests, text preview)
- ``printing.png``: ``render_png(slip, width_px=576)`` preview of the belt-printer slip
- ``printing.pdf``: ``render_pdf(slips, layout="receipt" | "a4")``, one page per slip
- ``printing.qr``: the payment QR as a matrix or a Pillow image
- ``printing.errors``: ``PrintingError`` and its subclasses

Import the module you need: this package imports none of them, so the device's ESC/POS path does not load
Pillow or reportlab.
"""
