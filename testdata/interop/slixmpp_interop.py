#!/usr/bin/python3
"""Interop client for xmppd built on Debian's python3-slixmpp (run it with /usr/bin/python3).

Two modes:

  exchange  log in two accounts on two connections, both send presence, A sends
            directed presence to B's full JID, A->B chat, B->A reply, A pings the
            server (XEP-0199), A asks B's full JID for disco#info (B's slixmpp
            answers it by itself) and the server for its disco#info.
  login     log in one account and report success or failure (used for forced
            SASL mechanisms and for a wrong password).

Every line printed starts with "slixmpp:"; lines the Go test parses are
"RESULT key=value". Exit status 0 means the mode's expectation was met.

Environment/arguments: see parse_args(). Nothing here looks anything up in DNS:
slixmpp 1.8.3 asks the system resolver for "." when default_domain is empty, so
we set it to the IP literal we connect to and turn aiodns off.
"""
import argparse
import asyncio
import logging
import ssl
import sys
import time
import uuid

import hashlib

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.util.sasl import mechanisms as sasl_mechanisms

TIMEOUT = 20


def say(*a):
    print("slixmpp:", *a, flush=True)


# Channel binding (--cb). slixmpp 1.8.3 knows only "tls-unique", which RFC 9266
# leaves undefined under TLS 1.3, and it ignores the XEP-0440 list of types the
# server offers. It then also sends the gs2 flag "y" ("I can bind but think you
# can't") with plain SCRAM although the server offered -PLUS, which RFC 5802 §6
# says the server MUST reject as a downgrade. The modes:
#   stock                 slixmpp exactly as Debian ships it
#   none                  a client without channel binding: no -PLUS, gs2 flag "n"
#   tls-server-end-point  -PLUS with RFC 5929 tls-server-end-point (SHA-256 of the
#                         server's certificate; the test certificate is ECDSA-SHA256),
#                         gs2 flag "n" when plain SCRAM is forced
CB_MODES = ("stock", "none", "tls-server-end-point")
CB_MODE = "stock"

_orig_scram_process_1 = sasl_mechanisms.SCRAM.process_1


def _scram_process_1(self, challenge):
    out = _orig_scram_process_1(self, challenge)
    if CB_MODE == "stock":
        return out
    flag = b"p=" + CB_MODE.encode() if self.use_channel_binding else b"n"
    self.gs2_header = flag + self.gs2_header[self.gs2_header.index(b","):]
    self.client_first_message = self.gs2_header + self.client_first_message_bare
    return self.client_first_message


sasl_mechanisms.SCRAM.process_1 = _scram_process_1


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid, password, mech=None):
        super().__init__(jid, password, sasl_mech=mech)
        fm = self["feature_mechanisms"]
        default_creds, default_send = fm.sasl_callback, fm._send_auth

        def creds(required, optional):
            r = default_creds(required, optional)
            if "channel_binding" in r and CB_MODE != "stock":
                r["channel_binding"] = b""
                if CB_MODE == "tls-server-end-point" and isinstance(self.socket, (ssl.SSLSocket, ssl.SSLObject)):
                    r["channel_binding"] = hashlib.sha256(self.socket.getpeercert(binary_form=True)).digest()
            return r

        def send_auth():
            if CB_MODE == "none":
                fm.mech_list = {m for m in fm.mech_list if not m.endswith("-PLUS")}
            return default_send()

        fm.sasl_callback, fm._send_auth = creds, send_auth
        # The server's certificate is self-signed: do not verify it.
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        self.register_plugin("xep_0030")  # disco (answers disco#info queries itself)
        self.register_plugin("xep_0199")  # ping
        loop = asyncio.get_event_loop()
        self.online = loop.create_future()
        self.inbox = asyncio.Queue()
        self.presences = asyncio.Queue()
        self.failures = []
        self.add_event_handler("session_start", self._on_start)
        self.add_event_handler("failed_auth", self._on_failed_auth)
        self.add_event_handler("failed_all_auth", lambda _: self._fail("all SASL mechanisms failed"))
        self.add_event_handler("no_auth", lambda _: self._fail("no usable SASL mechanism"))
        self.add_event_handler("disconnected", lambda r: self._fail("disconnected before session start: %s" % (r,)))
        self.add_event_handler("connection_failed", lambda e: self._fail("connection failed: %s" % (e,)))
        self.add_event_handler("message", lambda m: m["body"] and self.inbox.put_nowait(m))
        self.add_event_handler("presence", lambda p: self.presences.put_nowait(p))

    def _fail(self, why):
        if not self.online.done():
            self.online.set_exception(RuntimeError(why))

    def _on_failed_auth(self, stanza):
        # slixmpp goes on with the next mechanism after a failure, so this is
        # not final by itself; failed_all_auth is.
        mech = self["feature_mechanisms"].mech
        self.failures.append("%s:%s" % (mech.name if mech else "?", stanza["condition"]))
        say("%s: SASL failure with %s: %s" % (self.requested_jid, mech.name if mech else "?", stanza["condition"]))

    async def _on_start(self, _):
        if not self.online.done():
            self.online.set_result(True)

    def mechanism(self):
        m = self["feature_mechanisms"].mech
        return m.name if m else "none"

    def tls_version(self):
        s = self.socket
        return s.version() if isinstance(s, (ssl.SSLSocket, ssl.SSLObject)) else "none"


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["exchange", "login"])
    p.add_argument("--addr", required=True, help="HOST:PORT (IP literal)")
    p.add_argument("--direct-tls", action="store_true", help="TLS from the first byte (XEP-0368) instead of STARTTLS")
    p.add_argument("--mech", default=None, help="force one SASL mechanism")
    p.add_argument("--jid-a", required=True)
    p.add_argument("--pass-a", required=True)
    p.add_argument("--jid-b")
    p.add_argument("--pass-b")
    p.add_argument("--cb", choices=CB_MODES, default="stock", help="channel binding mode, see CB_MODES")
    p.add_argument("--expect-fail", action="store_true", help="login mode: authentication must fail")
    p.add_argument("--debug", action="store_true")
    return p.parse_args()


def connect(c, addr, direct):
    host, port = addr.rsplit(":", 1)
    c.use_aiodns = False
    c.default_domain, c.default_port = host, int(port)
    # slixmpp 1.8.3: use_ssl=True is Direct TLS; the default is STARTTLS (force_starttls=True).
    c.connect(address=(host, int(port)), use_ssl=direct)


async def next_matching(q, pred):
    while True:
        x = await q.get()
        if pred(x):
            return x


async def login(args):
    t0 = time.monotonic()
    c = Client(args.jid_a, args.pass_a, args.mech)
    connect(c, args.addr, args.direct_tls)
    try:
        await asyncio.wait_for(c.online, TIMEOUT)
    except (RuntimeError, asyncio.TimeoutError) as e:
        if isinstance(e, asyncio.TimeoutError):
            e = "timeout"
        say("login of %s failed: %s (failures: %s)" % (args.jid_a, e, ",".join(c.failures) or "none"))
        say("RESULT login=failed failures=%s" % (",".join(c.failures) or "none"))
        c.disconnect()
        return 0 if args.expect_fail and c.failures else 1
    say("logged in as %s with %s over %s in %.3fs" % (c.boundjid, c.mechanism(), c.tls_version(), time.monotonic() - t0))
    say("RESULT login=ok mech=%s tls=%s" % (c.mechanism(), c.tls_version()))
    await c.disconnect()
    return 1 if args.expect_fail else 0


async def exchange(args):
    t0 = time.monotonic()
    a = Client(args.jid_a, args.pass_a, args.mech)
    b = Client(args.jid_b, args.pass_b, args.mech)
    for c in (a, b):
        connect(c, args.addr, args.direct_tls)
    await asyncio.wait_for(asyncio.gather(a.online, b.online), TIMEOUT)
    say("both online in %.3fs: %s and %s" % (time.monotonic() - t0, a.boundjid, b.boundjid))
    for c in (a, b):
        say("%s: SASL %s, %s" % (c.boundjid.bare, c.mechanism(), c.tls_version()))
        say("RESULT jid=%s mech=%s tls=%s" % (c.boundjid.bare, c.mechanism(), c.tls_version()))
    tok = uuid.uuid4().hex[:12]

    # Presence: initial broadcast from both, then directed presence A -> B's full JID.
    a.send_presence()
    b.send_presence()
    a.send_presence(pto=b.boundjid.full, pstatus="here " + tok)
    p = await asyncio.wait_for(next_matching(
        b.presences, lambda p: p["from"] == a.boundjid and tok in (p["status"] or "")), TIMEOUT)
    say("B saw presence from %s, status %r" % (p["from"], p["status"]))

    # Messages.
    t1 = time.monotonic()
    a.send_message(mto=b.boundjid.bare, mbody="ping " + tok, mtype="chat")
    m = await asyncio.wait_for(next_matching(b.inbox, lambda m: m["body"] == "ping " + tok), TIMEOUT)
    if m["from"] != a.boundjid:
        raise RuntimeError("B got the message from %s, want %s" % (m["from"], a.boundjid))
    say("B got %r from %s" % (m["body"], m["from"]))
    b.send_message(mto=m["from"], mbody="pong " + tok, mtype="chat")
    m = await asyncio.wait_for(next_matching(a.inbox, lambda m: m["body"] == "pong " + tok), TIMEOUT)
    if m["from"] != b.boundjid:
        raise RuntimeError("A got the reply from %s, want %s" % (m["from"], b.boundjid))
    say("A got %r from %s (round trip %.3fs)" % (m["body"], m["from"], time.monotonic() - t1))

    # XEP-0199 ping to the server.
    t1 = time.monotonic()
    await a["xep_0199"].send_ping(a.boundjid.domain, timeout=TIMEOUT)
    say("A pinged %s: result in %.3fs" % (a.boundjid.domain, time.monotonic() - t1))

    # disco#info to B's full JID, answered by B's client.
    info = await a["xep_0030"].get_info(jid=b.boundjid.full, timeout=TIMEOUT)
    if info["type"] != "result" or info["from"] != b.boundjid:
        raise RuntimeError("disco#info from B: %s" % info)
    feats = info["disco_info"]["features"]
    if "http://jabber.org/protocol/disco#info" not in feats:
        raise RuntimeError("B's disco#info lacks disco#info: %s" % feats)
    say("A got disco#info from %s: %d features, identities %s" % (
        info["from"], len(feats), [tuple(i[:2]) for i in info["disco_info"]["identities"]]))

    # disco#info to the server.
    info = await a["xep_0030"].get_info(jid=a.boundjid.domain, timeout=TIMEOUT)
    feats = info["disco_info"]["features"]
    if "urn:xmpp:ping" not in feats:
        raise RuntimeError("server disco#info lacks urn:xmpp:ping: %s" % feats)
    say("server disco#info features: %s" % " ".join(sorted(feats)))

    await asyncio.gather(a.disconnect(), b.disconnect())
    say("RESULT exchange=ok token=%s" % tok)
    say("OK in %.3fs" % (time.monotonic() - t0))
    return 0


def main():
    global CB_MODE
    args = parse_args()
    CB_MODE = args.cb
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.ERROR,
                        format="slixmpp-log: %(levelname)s %(name)s %(message)s")
    if not args.debug:
        # slixmpp 1.8.3 leaves its run_filters task pending at exit ("Task was destroyed").
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    if args.mode == "exchange" and not (args.jid_b and args.pass_b):
        sys.exit("exchange needs --jid-b and --pass-b")
    loop = asyncio.get_event_loop()
    try:
        rc = loop.run_until_complete(exchange(args) if args.mode == "exchange" else login(args))
    except (RuntimeError, asyncio.TimeoutError, IqError, IqTimeout) as e:
        say("FAIL: %s: %s" % (type(e).__name__, e))
        rc = 1
    sys.exit(rc)


if __name__ == "__main__":
    main()
