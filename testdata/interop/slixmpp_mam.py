#!/usr/bin/python3
"""MAM interop for xmppd on Debian's python3-slixmpp (run it with /usr/bin/python3).

Alice and Bob log in (slixmpp_interop.Client, no channel binding), chat, and
then query their archives with slixmpp's own xep_0313 plugin:

  - Bob's client checks that every message it received carries a XEP-0359
    stanza-id by bob's account, and that his archive returns those same ids;
  - Alice pages through her conversation with Bob forwards and backwards
    with slixmpp's RSM iterator (xep_0059), pages of --page;
  - Alice asks for the query form and the archive's metadata (#extended).

Lines the Go test parses are "RESULT key=value"; exit status 0 means every
check held.

usage: slixmpp_mam.py --addr HOST:PORT --jid-a JID --pass-a P --jid-b JID --pass-b P [--count N] [--page N]
       slixmpp_mam.py --archive --addr HOST:PORT --jid-a JID --pass-a P --with JID --body TEXT

--archive: only log in A and look for a message from --with whose body
contains TEXT in A's archive (a federated user's message: RESULT archived=yes).
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
    for p in ("xep_0004", "xep_0059", "xep_0297", "xep_0313", "xep_0359"):
        c.register_plugin(p)
    return c


def body_of(result_msg):
    return result_msg["mam_result"]["forwarded"]["stanza"]["body"]


async def main(args):
    t0 = time.monotonic()
    a, b = client(args.jid_a, args.pass_a), client(args.jid_b, args.pass_b)
    for c in (a, b):
        base.connect(c, args.addr, False)
    await asyncio.wait_for(asyncio.gather(a.online, b.online), TIMEOUT)
    a.send_presence()
    b.send_presence()
    tok = uuid.uuid4().hex[:8]

    # The conversation: alice sends count messages, bob answers every fifth.
    sent = []
    got_ids = {}
    for i in range(args.count):
        body = "%s a%02d" % (tok, i)
        a.send_message(mto=b.boundjid.bare, mbody=body, mtype="chat")
        sent.append(body)
        m = await asyncio.wait_for(base.next_matching(b.inbox, lambda m: m["body"] == body), TIMEOUT)
        sid = m.xml.find("{urn:xmpp:sid:0}stanza-id")
        if sid is None or sid.get("by") != b.boundjid.bare:
            raise RuntimeError("bob's copy of %r has no stanza-id by %s: %s" % (body, b.boundjid.bare, m))
        got_ids[body] = sid.get("id")
        if i % 5 == 4:
            reply = "%s b%02d" % (tok, i)
            b.send_message(mto=a.boundjid.bare, mbody=reply, mtype="chat")
            sent.append(reply)
            await asyncio.wait_for(base.next_matching(a.inbox, lambda m: m["body"] == reply), TIMEOUT)
    say("%d messages exchanged" % len(sent))

    # Alice, forwards, with slixmpp's iterator over RSM pages.
    forward = []
    pages = 0
    async for page in a["xep_0313"].retrieve(with_jid=b.boundjid.bare, iterator=True, rsm={"max": args.page}):
        pages += 1
        forward += [body_of(m) for m in page["mam"]["results"]]
    if forward != sent:
        raise RuntimeError("forward paging returned %r, want %r" % (forward, sent))
    say("alice paged forwards: %d messages in %d pages" % (len(forward), pages))

    # Alice, backwards from the end.
    backward = []
    bpages = 0
    async for page in a["xep_0313"].retrieve(with_jid=b.boundjid.bare, iterator=True, reverse=True, rsm={"max": args.page}):
        bpages += 1
        backward = [body_of(m) for m in page["mam"]["results"]] + backward
    if backward != sent:
        raise RuntimeError("backward paging returned %r, want %r" % (backward, sent))
    say("alice paged backwards: %d messages in %d pages" % (len(backward), bpages))

    # Bob's archive: the ids are the stanza-ids his client saw.
    ids = {}
    async for m in b["xep_0313"].iterate(with_jid=a.boundjid.bare, rsm={"max": args.page}):
        ids[body_of(m)] = m["mam_result"]["id"]
    for body, sid in got_ids.items():
        if ids.get(body) != sid:
            raise RuntimeError("bob's archive has id %r for %r; his client saw stanza-id %r" % (ids.get(body), body, sid))
    say("bob's archive ids match the %d stanza-ids his client saw" % len(got_ids))

    # The form and the metadata.
    form = await a["xep_0313"].get_fields(timeout=TIMEOUT)
    fields = {f.get("var") for f in form.xml.findall("{jabber:x:data}field")}
    for f in ("FORM_TYPE", "with", "start", "end"):
        if f not in fields:
            raise RuntimeError("query form lacks %s: %s" % (f, sorted(fields)))
    md = await a["xep_0313"].get_archive_metadata(timeout=TIMEOUT)
    first, last = md["mam_metadata"]["start"]["id"], md["mam_metadata"]["end"]["id"]
    if not first or not last or first > last:
        raise RuntimeError("metadata start %r end %r" % (first, last))
    say("form fields %s; metadata %s..%s" % (" ".join(sorted(fields)), first, last))

    await asyncio.gather(a.disconnect(), b.disconnect())
    say("RESULT mam=ok messages=%d forward_pages=%d backward_pages=%d" % (len(sent), pages, bpages))
    say("OK in %.3fs" % (time.monotonic() - t0))
    return 0


async def archive(args):
    a = client(args.jid_a, args.pass_a)
    base.connect(a, args.addr, False)
    await asyncio.wait_for(a.online, TIMEOUT)
    found = None
    n = 0
    async for m in a["xep_0313"].iterate(with_jid=args.with_jid, rsm={"max": args.page}):
        n += 1
        fwd = m["mam_result"]["forwarded"]["stanza"]
        if args.body in (fwd["body"] or "") and fwd["from"].bare == args.with_jid:
            found = m
    await a.disconnect()
    if found is None:
        say("RESULT archived=no results=%d" % n)
        return 1
    say("found %r from %s in %s's archive, id %s" % (args.body, args.with_jid, args.jid_a, found["mam_result"]["id"]))
    say("RESULT archived=yes results=%d" % n)
    return 0


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--addr", required=True)
    p.add_argument("--jid-a", required=True)
    p.add_argument("--pass-a", required=True)
    p.add_argument("--jid-b")
    p.add_argument("--pass-b")
    p.add_argument("--archive", action="store_true")
    p.add_argument("--with", dest="with_jid")
    p.add_argument("--body")
    p.add_argument("--count", type=int, default=25)
    p.add_argument("--page", type=int, default=7)
    p.add_argument("--debug", action="store_true")
    return p.parse_args()


if __name__ == "__main__":
    args = parse_args()
    base.CB_MODE = "none"
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.ERROR,
                        format="slixmpp-log: %(levelname)s %(name)s %(message)s")
    if not args.debug:
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    loop = asyncio.get_event_loop()
    try:
        rc = loop.run_until_complete(archive(args) if args.archive else main(args))
    except (RuntimeError, asyncio.TimeoutError, IqError, IqTimeout) as e:
        say("FAIL: %s: %s" % (type(e).__name__, e))
        rc = 1
    sys.exit(rc)
