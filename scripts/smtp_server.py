"""The SMTP server of the email provider's tests (aiosmtpd): STARTTLS required before AUTH (or
implicit TLS with --implicit-tls), AUTH PLAIN/LOGIN against one user, each accepted message saved
as <dir>/<n>.eml (written whole, then renamed) with its envelope in <n>.json. Prints `ready` once
it listens; stops on SIGTERM."""

import argparse
import json
import os
import signal
import ssl
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Save:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.count += 1
            n = self.count
        base = os.path.join(self.directory, f"{n:06d}")
        with open(base + ".json.tmp", "w") as f:
            json.dump({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos}, f)
        os.rename(base + ".json.tmp", base + ".json")
        with open(base + ".eml.tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.rename(base + ".eml.tmp", base + ".eml")
        return "250 2.0.0 Message accepted for delivery"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--implicit-tls", action="store_true")
    a = p.parse_args()

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == a.user.encode()
            and auth_data.password == a.password.encode()
        )
        return AuthResult(success=ok, handled=False)

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(a.cert, a.key)
    common = dict(hostname="127.0.0.1", port=a.port, authenticator=authenticator, auth_require_tls=True)
    if a.implicit_tls:
        controller = Controller(Save(a.dir), ssl_context=ctx, **common)
    else:
        controller = Controller(Save(a.dir), tls_context=ctx, require_starttls=True, **common)
    controller.start()
    print("ready", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
