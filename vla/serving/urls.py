"""One URL convention for a vla server: what ``vla serve`` prints is what every client takes.

``vla serve`` prints ``http://HOST:PORT/v1``, the base URL of its OpenAI-compatible API (what
an OpenAI client takes as ``base_url``). Everything that talks to a server (``VLAClient``,
``vla rollout --endpoint``, ``vla eval ... --endpoint``, GRPO's ``server_url`` and its adapter
calls, the demo) passes the URL it was given through :func:`api_base`, which accepts it with
or without ``/v1`` and with or without a trailing slash. :func:`served_models` asks the
server what it serves and turns every way of not reaching one into a single line,
:class:`ServerUnreachable`: ``cannot reach a vla server at <URL tried>: <reason>``.
"""

from __future__ import annotations

from urllib.parse import urlsplit

API_SUFFIX = "/v1"


class ServerUnreachable(RuntimeError):
    """No vla (vLLM) server answered at a URL; the message is one line saying what was tried."""

    def __init__(self, tried: str, reason: str):
        super().__init__(f"cannot reach a vla server at {tried}: {reason}")
        self.tried, self.reason = tried, reason

    def __reduce__(self):  # raised in a worker process, it must cross back whole
        return type(self), (self.tried, self.reason)


def api_base(url: str) -> str:
    """``http://HOST:PORT[/prefix][/v1][/]`` → ``http://HOST:PORT[/prefix]/v1``.

    A ``ValueError`` names what is wrong with a URL that is not ``http(s)://HOST[:PORT]...``
    (a query or fragment is refused too: nothing would be sent with it)."""
    if not isinstance(url, str) or not url.strip():
        raise ValueError(f"expected a server URL like http://127.0.0.1:8000/v1, got {url!r}")
    text = url.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{url!r} is not an http(s) URL; expected e.g. "
                         f"http://127.0.0.1:8000/v1 (what `vla serve` prints)")
    if parts.query or parts.fragment:
        raise ValueError(f"{url!r}: a server URL has no query or fragment")
    path = parts.path.rstrip("/")
    if not path.endswith(API_SUFFIX):
        path += API_SUFFIX
    return f"{parts.scheme}://{parts.netloc}{path}"


def server_root(url: str) -> str:
    """The server's root (where vLLM's ``/health`` is): :func:`api_base` without ``/v1``."""
    return api_base(url)[:-len(API_SUFFIX)]


def served_models(url: str, api_key: str | None = None, timeout_s: float = 30.0) -> list[str]:
    """The model names the server at ``url`` serves (the base model first, then adapters), or
    :class:`ServerUnreachable` when nothing there answers as a vLLM server would: connection
    refused or timed out, an HTTP error status (e.g. 404: not an OpenAI-compatible API at
    that path), or an answer that is not a model list."""
    import httpx

    tried = f"{api_base(url)}/models"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = httpx.get(tried, headers=headers, timeout=timeout_s)
    except httpx.ConnectError as exc:
        raise ServerUnreachable(tried, f"connection failed ({_one_line(exc)})") from None
    except httpx.TimeoutException:
        raise ServerUnreachable(tried, f"no answer within {timeout_s:g} s") from None
    except httpx.HTTPError as exc:
        raise ServerUnreachable(tried, _one_line(exc) or type(exc).__name__) from None
    if response.status_code != 200:
        raise ServerUnreachable(tried, f"HTTP {response.status_code} "
                                       f"{_one_line(response.text)[:200]}".rstrip())
    try:
        names = [m["id"] for m in response.json()["data"]]
    except (ValueError, KeyError, TypeError):
        raise ServerUnreachable(tried, "the answer is not a vLLM model list "
                                       "(not an OpenAI-compatible server?)") from None
    if not names:
        raise ServerUnreachable(tried, "the server serves no model")
    return names


def _one_line(value) -> str:
    return " ".join(str(value).split())
