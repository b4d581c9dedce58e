"""HTTP to the server (PROTOCOL.md §0–§3), with transport failures translated into ``Unreachable``."""

from __future__ import annotations

from typing import Any

import httpx

from pda_client.errors import Refused, ResetRequired, Unreachable
from protocol import PROTOCOL_VERSION


class Transport:
    """A thin client of the sync API; every method answers the parsed JSON body or raises a ``PdaError``."""

    def __init__(self, base_url: str, token: str | None = None, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self._client = httpx.Client(base_url=self.base_url, timeout=httpx.Timeout(timeout, connect=5.0))

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _headers(self) -> dict[str, str]:
        headers = {"Jingsu-Protocol": str(PROTOCOL_VERSION)}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def _call(
        self, method: str, path: str, extra_headers: dict[str, str] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        headers = {**self._headers(), **(extra_headers or {})}
        try:
            response = self._client.request(method, path, headers=headers, **kwargs)
        except httpx.TransportError as exc:
            raise Unreachable(f"the server at {self.base_url} could not be reached: {exc}") from exc
        if response.status_code >= 500:
            raise Unreachable(f"the server answered {response.status_code}; try again later")
        try:
            body: dict[str, Any] = response.json()
        except ValueError as exc:
            raise Unreachable(f"the server answered {response.status_code} without JSON") from exc
        if response.status_code >= 400:
            code = str(body.get("code", "error"))
            detail = str(body.get("detail", ""))
            if code == "reset_required":
                raise ResetRequired(response.status_code, code, detail)
            raise Refused(response.status_code, code, detail)
        return body

    def enroll(self, code: str, model: str, app_version: str) -> dict[str, Any]:
        return self._call(
            "POST", "/sync/v1/enroll", json={"enrollment_code": code, "model": model, "app_version": app_version}
        )

    def session(self, device_id: str, device_secret: str, officer_login: str, password: str) -> dict[str, Any]:
        return self._call(
            "POST",
            "/sync/v1/session",
            json={
                "device_id": device_id,
                "device_secret": device_secret,
                "officer_login": officer_login,
                "password": password,
            },
        )

    def push_raw(self, body: bytes) -> dict[str, Any]:
        """Push a batch whose JSON text was built by the caller (the events' exact text is their hash)."""
        return self._call("POST", "/sync/v1/push", content=body, extra_headers={"Content-Type": "application/json"})

    def changes(self, cursor: str | None, limit: int = 500) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        return self._call("GET", "/sync/v1/changes", params=params)
