#!/usr/bin/python3
"""Carbons (XEP-0280) and CSI (XEP-0352) interop for xmppd on Debian's
python3-slixmpp (run it with /usr/bin/python3), with slixmpp's own
xep_0280, xep_0352 and xep_0085 plugins.

Alice logs in twice (phone, laptop), both enable carbons with xep_0280;
Bob writes to the phone: the laptop gets a received carbon. The phone
writes to Bob: the laptop gets a sent carbon. Then the phone goes inactive
with xep_0352 (which needs the server's <csi/> stream feature): Bob's chat
states to it are held (nothing arrives for a second), and when the phone
says it is active again only the latest of them arrives.

Lines the Go test parses are "RESULT key=value"; exit status 0 means every
check held.

usage: slixmpp_carbons_csi.py --addr HOST:PORT --jid-a BAREJID --pass-a P --jid-b JID --pass-b P
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

say = base.say
TIMEOUT = base.TIMEOUT


def client(jid, password):
    c = base.Client(jid, password)
    for p in ("xep_0085", "xep_0297", "xep_0280", "xep_0352"):
        c.register_plugin(p)
    c.received = asyncio.Queue()
    c.sent = asyncio.Queue()
    c.states = asyncio.Queue()
    c.add_event_handler("carbon_received", lambda m: c.received.put_nowait(m))
    c.add_event_handler("carbon_sent", lambda m: c.sent.put_nowait(m))
    c.add_event_handler("chatstate", lambda m: c.states.put_nowait(m["chat_state"]))
    return c


async def main(args):
    t0 = time.monotonic()
    phone = client(args.jid_a + "/phone", args.pass_a)
    laptop = client(args.jid_a + "/laptop", args.pass_a)
    bob = client(args.jid_b, args.pass_b)
    for c in (phone, laptop, bob):
        base.connect(c, args.addr, False)
    await asyncio.wait_for(asyncio.gather(phone.online, laptop.online, bob.online), TIMEOUT)
    for c in (phone, laptop):
        await c["xep_0280"].enable(timeout=TIMEOUT)
    for c in (phone, laptop, bob):
        c.send_presence()
    tok = uuid.uuid4().hex[:8]

    # Received carbon: bob writes to the phone's full JID.
    body = "to the phone " + tok
    bob.send_message(mto=phone.boundjid.full, mbody=body, mtype="chat")
    await asyncio.wait_for(base.next_matching(phone.inbox, lambda m: m["body"] == body), TIMEOUT)
    m = await asyncio.wait_for(laptop.received.get(), TIMEOUT)
    inner = m["carbon_received"]
    if m["from"].full != args.jid_a or inner["body"] != body or inner["from"].bare != bob.boundjid.bare:
        raise RuntimeError("received carbon: %s" % m)
    say("laptop got the received carbon of %r" % body)

    # Sent carbon: the phone writes to bob.
    body = "from the phone " + tok
    phone.send_message(mto=bob.boundjid.full, mbody=body, mtype="chat")
    await asyncio.wait_for(base.next_matching(bob.inbox, lambda m: m["body"] == body), TIMEOUT)
    m = await asyncio.wait_for(laptop.sent.get(), TIMEOUT)
    inner = m["carbon_sent"]
    if inner["body"] != body or inner["to"].bare != bob.boundjid.bare or inner["from"].full != phone.boundjid.full:
        raise RuntimeError("sent carbon: %s" % m)
    say("laptop got the sent carbon of %r" % body)

    # CSI: the phone goes inactive; bob's chat states wait, the latest wins.
    if not phone["xep_0352"].enabled:
        raise RuntimeError("slixmpp did not see the <csi/> stream feature")
    phone["xep_0352"].send_inactive()
    await phone["xep_0199"].ping(jid=phone.boundjid.domain, timeout=TIMEOUT)  # the nonza is processed
    for state in ("composing", "paused", "composing", "inactive"):
        msg = bob.make_message(mto=phone.boundjid.full, mtype="chat")
        msg["chat_state"] = state
        msg.send()
    await bob["xep_0199"].ping(jid=bob.boundjid.domain, timeout=TIMEOUT)  # routed
    await asyncio.sleep(1)
    if not phone.states.empty():
        raise RuntimeError("the inactive phone got chat state %r" % phone.states.get_nowait())
    say("inactive phone got no chat states for a second")
    phone["xep_0352"].send_active()
    got = await asyncio.wait_for(phone.states.get(), TIMEOUT)
    await phone["xep_0199"].ping(jid=phone.boundjid.domain, timeout=TIMEOUT)
    rest = []
    while not phone.states.empty():
        rest.append(phone.states.get_nowait())
    if got != "inactive" or rest:
        raise RuntimeError("after <active/> the phone got %r then %r, want only 'inactive'" % (got, rest))
    say("active again: only the latest chat state arrived")

    await asyncio.gather(phone.disconnect(), laptop.disconnect(), bob.disconnect())
    say("RESULT carbons=ok csi=ok")
    say("OK in %.3fs" % (time.monotonic() - t0))
    return 0


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--addr", required=True)
    p.add_argument("--jid-a", required=True)
    p.add_argument("--pass-a", required=True)
    p.add_argument("--jid-b", required=True)
    p.add_argument("--pass-b", required=True)
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
