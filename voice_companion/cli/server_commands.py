"""`voice-companion serve` and `voice-companion call`: the phone server and its test caller.

Security by default: the server binds to this computer only unless told
otherwise, and every WebSocket needs the token, on localhost too (`--no-token`
is refused for any other address).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import ipaddress
import json
import os
import signal
import sys
import threading
from pathlib import Path

from voice_companion.core.config import Settings
from voice_companion.core.errors import ConfigError

DEFAULT_PORT = 8765
QUIET_CLOSE_S = 1.0  # closing that ends sooner is not announced


def add_parsers(add, add_engine_flags) -> None:
    """The two commands' flags; `add(name, help)` is cli.py's subparser factory."""
    p = add("serve", "serve the companion to phones and browsers (WebSocket + web page)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind; 0.0.0.0 for the home network")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT}; 0 picks one)")
    p.add_argument("--token", help="the secret clients must present (default: generated and stored)")
    p.add_argument("--no-token", action="store_true", help="no token (allowed on 127.0.0.1 only)")
    p.add_argument("--tls-cert", help="PEM certificate for HTTPS")
    p.add_argument("--tls-key", help="PEM private key for --tls-cert")
    p.add_argument(
        "--tls-self-signed",
        action="store_true",
        help="make (once) and use a self-signed certificate; phones need HTTPS for the microphone",
    )
    p.add_argument("--max-sessions", type=int, default=16, help="calls at once (default 16)")
    p.add_argument("--language", help="the language you speak (default: detect)")
    add_engine_flags(p)

    p = add("call", "call a running server with a spoken question file and save the spoken reply")
    p.add_argument(
        "--url",
        default=f"ws://127.0.0.1:{DEFAULT_PORT}/v1/realtime",
        help="ws(s)://HOST:PORT/v1/realtime, or the page URL `serve` printed",
    )
    p.add_argument(
        "--token",
        help="the server's token (default: from the URL, $VOICE_COMPANION_TOKEN or this machine's stored token)",
    )
    p.add_argument("-i", "--input", required=True, help="the question (audio file)")
    p.add_argument("-o", "--output", help="WAV file for the reply")
    p.add_argument("--tls-ca", help="trust this certificate (e.g. the server's self-signed cert.pem)")
    p.add_argument("--insecure", action="store_true", help="do not verify the server's certificate")
    p.add_argument("--timeout", type=float, default=60, help="seconds to wait for the reply")


def serve(args: argparse.Namespace, settings: Settings) -> None:
    from voice_companion.companion.library import private_dir
    from voice_companion.transports.websocket import auth, tls

    private_dir(settings.paths.data_dir)  # before the token or a key is written into it
    loopback = _is_loopback(args.host)
    if args.no_token and not loopback:
        raise ConfigError("a server reachable from the network needs a token; drop --no-token")
    token = (
        None
        if args.no_token
        else (auth.check_token(args.token) if args.token else auth.load_or_create_token(settings.paths.data_dir))
    )
    context, certificate = None, None
    if args.tls_cert or args.tls_key:
        if not (args.tls_cert and args.tls_key):
            raise ConfigError("--tls-cert and --tls-key go together")
        context = tls.server_context(Path(args.tls_cert), Path(args.tls_key))
    elif args.tls_self_signed:
        certificate = tls.self_signed(settings.paths.data_dir / "tls", tls.names_for(args.host))
        context = tls.server_context(certificate.cert, certificate.key)
    app = _app(settings, token, args.max_sessions, getattr(args, "companion", None))
    try:
        asyncio.run(_run(app, args, context, certificate, token, loopback))
    finally:
        _close(app)


def _close(app) -> None:
    """Each call's learning and summary, then the memory database. The learning can keep
    the model busy for seconds: that is said, and Ctrl+C again ends it at the model's next
    step (pattern facts and summaries are kept; the turns stay saved)."""
    failed: list[BaseException] = []

    def close() -> None:
        try:
            app.close()
        except BaseException as exc:  # noqa: BLE001 - raised again in the main thread
            failed.append(exc)

    closing = threading.Thread(target=close, name="closing")
    closing.start()
    try:
        closing.join(QUIET_CLOSE_S)
        if closing.is_alive():
            print(
                f"Saving what {app.shared.companion_name} learned for next time… (Ctrl+C again to skip)",
                file=sys.stderr,
                flush=True,
            )
        closing.join()
    except KeyboardInterrupt:
        app.shared.llm.interrupt()
        closing.join()
    if failed:
        raise failed[0]


def _app(settings: Settings, token: str | None, max_sessions: int, companion: str | None):
    from voice_companion.transports.websocket.app import App
    from voice_companion.transports.websocket.shared import load_shared

    return App(load_shared(settings, companion), token, max_sessions)


async def _run(app, args, context, certificate, token: str | None, loopback: bool) -> None:
    from voice_companion.transports.websocket import tls

    server = await app.listen(args.host, args.port, context)
    port = server.sockets[0].getsockname()[1]
    host = (
        args.host if loopback or args.host not in ("0.0.0.0", "::", "") else (tls.lan_addresses() or ["127.0.0.1"])[0]
    )
    scheme = "https" if context else "http"
    page = f"{scheme}://{_netloc(host, port)}/"
    url = page + (f"#token={token}" if token else "")
    if args.json:
        print(
            json.dumps(
                {
                    "url": url,
                    "page": page,
                    "port": port,
                    "token": token,
                    "tls": bool(context),
                    "certificate": str(certificate.cert) if certificate else None,
                }
            ),
            flush=True,
        )
    else:
        _announce(url, page, loopback, context is not None, certificate)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
        app.stopping = True
        server.close()  # live calls get close code 1001
    print("server stopped", file=sys.stderr)


def _announce(url: str, page: str, loopback: bool, secure: bool, certificate) -> None:
    import qrcode

    print(f"voice-companion is listening on {page}", flush=True)
    print(f"Open this (the token is in the link):\n  {url}", flush=True)
    qr = qrcode.QRCode(border=1)
    qr.add_data(url)
    out = io.StringIO()
    qr.print_ascii(out=out, invert=True)
    print(out.getvalue(), flush=True)
    if loopback:
        print("Only this computer can connect. For your phone: --host 0.0.0.0 --tls-self-signed", flush=True)
    elif not secure:
        print("Warning: phone browsers open the microphone only over HTTPS; add --tls-self-signed", flush=True)
    if certificate:
        print(
            f"Self-signed certificate {certificate.cert}\n  SHA-256 {certificate.fingerprint}\n"
            "  your browser warns once: check that it shows this fingerprint",
            flush=True,
        )
    print("Ctrl+C stops the server.", flush=True)


def call(args: argparse.Namespace, settings: Settings) -> dict:
    from voice_companion.transports.websocket.auth import TOKEN_FILE
    from voice_companion.transports.websocket.client import call_file, realtime_url

    _, url_token = realtime_url(args.url)
    token = args.token or url_token or os.environ.get("VOICE_COMPANION_TOKEN")
    stored = settings.paths.data_dir / TOKEN_FILE
    if not token and stored.exists():
        token = stored.read_text().strip()
    result = asyncio.run(
        call_file(
            args.url, token, args.input, args.output, cafile=args.tls_ca, insecure=args.insecure, timeout_s=args.timeout
        )
    )
    if not args.json:
        v2v = f"{result.v2v_ms:.0f} ms" if result.v2v_ms is not None else "n/a"
        metrics = ", ".join(
            f"{k} {v:.0f} ms"
            for k, v in result.server_metrics.items()
            if k.endswith("_ms") and isinstance(v, (int, float))
        )
        print(
            f"you said:   {result.transcript}\ncompanion:  {result.reply}\n"
            f"answer:     {result.output or '(not saved)'} ({result.audio_s:.1f} s)\n"
            f"v2v:        {v2v} (end of your speech → first reply audio received)\n"
            f"server:     {metrics}",
            flush=True,
        )
    return result.as_dict()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
