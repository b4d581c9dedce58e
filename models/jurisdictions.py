"""자치단체: the city and its districts, by their 5-digit 시군구 code."""

from __future__ import annotations

from sqlalchemy import ForeignKey, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base

CITY_LEVEL, DISTRICT_LEVEL = "city", "district"


class Jurisdiction(Base):
    __tablename__ = "jurisdictions"

    code: Mapped[str] = mapped_column(String(5), primary_key=True)
    name: Mapped[str] = mapped_column(String(40))
    level: Mapped[str] = mapped_column(String(10))
    parent_code: Mapped[str | None] = mapped_column(ForeignKey("jurisdictions.code"))
    address: Mapped[str | None] = mapped_column(String(200))


def upsert_jurisdiction(
    session: Session, code: str, name: str, level: str, parent_code: str | None, address: str | None = None
) -> Jurisdiction:
    row = session.get(Jurisdiction, code)
    if row is None:
        row = Jurisdiction(code=code, name=name, level=level, parent_code=parent_code, address=address)
        session.add(row)
    else:
        row.name, row.level, row.parent_code, row.address = name, level, parent_code, address
    session.flush()
    return row


def is_city(session: Session, code: str) -> bool:
    return session.scalar(select(Jurisdiction.level).where(Jurisdiction.code == code)) == CITY_LEVEL
