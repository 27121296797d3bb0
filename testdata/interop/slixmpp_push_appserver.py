#!/usr/bin/python3
"""Push (XEP-0357) across federation, for xmppd, with Debian's
python3-slixmpp (run it with /usr/bin/python3).

An app server logs in to the federated peer (Prosody) as a plain account
with a resource; alice, on xmppd, registers that full JID as her push
service (with a secret in the publish-options form) and goes offline; bob,
also on xmppd, writes to her. xmppd then publishes a notification to the
app server, which reaches it over s2s through Prosody: the app server
checks the summary form (no body, no sender: xmppd's default) and the
secret, and answers with a result.

Lines the Go test parses are "RESULT key=value"; exit status 0 means every
check held.

usage: slixmpp_push_appserver.py --app-addr H:P --app-jid FULLJID --app-pass P
         --addr H:P --jid-a JID --pass-a P --jid-b JID --pass-b P
"""
import argparse
import asyncio
import logging
import os
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import slixmpp_interop as base  # noqa: E402
from slixmpp.exceptions import IqError, IqTimeout  # noqa: E402
from slixmpp.xmlstream.handler import Callback  # noqa: E402
from slixmpp.xmlstream.matcher import MatchXPath  # noqa: E402
from slixmpp.xmlstream import ET  # noqa: E402

say = base.say
TIMEOUT = base.TIMEOUT
PUBSUB = "{http://jabber.org/protocol/pubsub}"
PUSH = "{urn:xmpp:push:0}"
DATA = "{jabber:x:data}"


def form_values(x):
    return {f.get("var"): [v.text or "" for v in f.findall(DATA + "value")] for f in x.findall(DATA + "field")}


async def main(args):
    t0 = time.monotonic()
    node = "node-" + uuid.uuid4().hex[:8]
    secret = "s3cret-" + uuid.uuid4().hex[:8]
    app = base.Client(args.app_jid, args.app_pass)
    got = asyncio.get_event_loop().create_future()

    def on_publish(iq):
        if iq["type"] != "set":
            return
        iq.reply().send()  # the result goes back over s2s
        if not got.done():
            got.set_result(iq)
    app.register_handler(Callback("push notification", MatchXPath("{jabber:client}iq/%spubsub" % PUBSUB), on_publish))
    base.connect(app, args.app_addr, False)
    await asyncio.wait_for(app.online, TIMEOUT)
    say("app server online as %s" % app.boundjid)

    alice = base.Client(args.jid_a, args.pass_a)
    base.connect(alice, args.addr, False)
    await asyncio.wait_for(alice.online, TIMEOUT)
    iq = alice.make_iq_set()
    enable = ET.Element(PUSH + "enable", {"jid": app.boundjid.full, "node": node})
    x = ET.SubElement(enable, DATA + "x", {"type": "submit"})
    for var, val in (("FORM_TYPE", "http://jabber.org/protocol/pubsub#publish-options"), ("secret", secret)):
        f = ET.SubElement(x, DATA + "field", {"var": var})
        ET.SubElement(f, DATA + "value").text = val
    iq.append(enable)
    await iq.send(timeout=TIMEOUT)
    say("alice enabled push with %s node %s" % (app.boundjid.full, node))
    await alice.disconnect()
    await asyncio.sleep(0.5)  # alice's session is gone

    bob = base.Client(args.jid_b, args.pass_b)
    base.connect(bob, args.addr, False)
    await asyncio.wait_for(bob.online, TIMEOUT)
    body = "wake up " + uuid.uuid4().hex[:8]
    bob.send_message(mto=alice.boundjid.bare, mbody=body, mtype="chat")
    t1 = time.monotonic()
    n = await asyncio.wait_for(got, TIMEOUT)
    say("app server got the notification %.3fs after bob's message" % (time.monotonic() - t1))

    if n["from"].bare != alice.boundjid.bare:
        raise RuntimeError("notification from %s, want %s" % (n["from"], alice.boundjid.bare))
    ps = n.xml.find(PUBSUB + "pubsub")
    pub = ps.find(PUBSUB + "publish")
    if pub is None or pub.get("node") != node:
        raise RuntimeError("publish to the wrong node: %s" % n)
    summary = pub.find(PUBSUB + "item/" + PUSH + "notification/" + DATA + "x")
    if summary is None:
        raise RuntimeError("no summary form: %s" % n)
    vals = form_values(summary)
    if vals.get("FORM_TYPE") != ["urn:xmpp:push:summary"] or vals.get("message-count") != ["1"]:
        raise RuntimeError("summary %r" % vals)
    if "last-message-body" in vals or body in str(n):
        raise RuntimeError("the body leaked into the notification: %s" % n)
    opts = ps.find(PUBSUB + "publish-options/" + DATA + "x")
    if opts is None or form_values(opts).get("secret") != [secret]:
        raise RuntimeError("publish-options without the secret: %s" % n)
    say("summary %r, secret passed on" % vals)

    await asyncio.gather(app.disconnect(), bob.disconnect())
    say("RESULT push=ok")
    say("OK in %.3fs" % (time.monotonic() - t0))
    return 0


def parse_args():
    p = argparse.ArgumentParser()
    for a in ("--app-addr", "--app-jid", "--app-pass", "--addr", "--jid-a", "--pass-a", "--jid-b", "--pass-b"):
        p.add_argument(a, required=True)
    p.add_argument("--debug", action="store_true")
    return p.parse_args()


if __name__ == "__main__":
    args = parse_args()
    base.CB_MODE = "none"
    logging.basicConfig(level=logging.DEBUG if (args.debug or os.environ.get("SLIXMPP_DEBUG")) else logging.ERROR,
                        format="slixmpp-log: %(levelname)s %(name)s %(message)s")
    if not args.debug:
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    loop = asyncio.get_event_loop()
    try:
        rc = loop.run_until_complete(main(args))
    except (RuntimeError, asyncio.TimeoutError, IqError, IqTimeout) as e:
        say("FAIL: %s: %s" % (type(e).__name__, e))
        rc = 1
    sys.exit(rc)
