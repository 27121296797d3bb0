#!/usr/bin/python3
"""One XMPP user driven line by line, on Debian's python3-slixmpp (run with /usr/bin/python3).

usage: actor_slixmpp.py JID PASSWORD HOST:PORT [--direct-tls]

Commands, one per line on stdin (the Go interop test writes them):
  presence [SHOW [STATUS...]]   broadcast presence (SHOW "-" for none)
  subscribe JID | approve JID | unsubscribe JID | deny JID
  message JID BODY...           a chat message
  block JID | unblock JID       XEP-0191, answered by an "iq" event
  roster                        fetch the roster: one "item" event per contact, then "roster-end"
  vcard-set FULLNAME...         publish own vCard (XEP-0054)        -> "vcard-set" event
  vcard-get JID                 fetch a vCard                       -> "vcard" event (fn)
  private-set TEXT              store bookmarks-like private XML (XEP-0049) -> "private-set"
  private-get                   read it back                        -> "private" event (text)
  last JID                      last activity (XEP-0012)            -> "last" event (seconds) or "iq-error"
  ping JID                      XEP-0199 ping                       -> "ping" event or "iq-error"
  disco JID                     disco#info (XEP-0030)               -> "disco" event (features, identities) or "iq-error"
  quit                          close the stream cleanly and exit

Events, one JSON object per line on stdout after the word EVENT:
  online, presence, message, error, iq, item, roster-end, offline.
The script answers nothing on its own: automatic subscription handling is off,
so every approval in the test is an explicit command. Nothing looks up DNS.
"""
import asyncio
import json
import ssl
import sys

import slixmpp


class Note(slixmpp.xmlstream.ElementBase):
    """The private XML the test stores (XEP-0049 payloads are slixmpp stanza plugins)."""
    name = "note"
    namespace = "urn:example:xmppd-interop"
    plugin_attrib = "note"
    interfaces = {"text"}

    def get_text(self):
        return self.xml.text

    def set_text(self, value):
        self.xml.text = value


def event(**kw):
    print("EVENT " + json.dumps(kw), flush=True)


class Actor(slixmpp.ClientXMPP):
    def __init__(self, jid, password):
        super().__init__(jid, password)
        self.auto_authorize = None  # subscription requests become events only
        self.auto_subscribe = False
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0203")
        self.register_plugin("xep_0054")  # vcard-temp
        self.register_plugin("xep_0049")  # private XML storage
        self["xep_0049"].register(Note)
        self.register_plugin("xep_0012")  # last activity
        self.register_plugin("xep_0199")  # answers pings (no keepalive)
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("presence", self.on_presence)
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("message_error", self.on_message)
        self.add_event_handler("disconnected", lambda _: event(ev="offline"))
        self.add_event_handler("failed_all_auth", lambda _: (event(ev="auth-failed"), sys.exit(1)))

    async def on_start(self, _):
        event(ev="online", jid=str(self.boundjid))

    def on_presence(self, p):
        x = p.xml
        show = x.find("{jabber:client}show")
        status = x.find("{jabber:client}status")
        event(ev="presence", **{"from": x.get("from", ""), "type": x.get("type", "available"),
                                "show": show.text if show is not None else "",
                                "status": status.text if status is not None else ""})

    def on_message(self, m):
        x = m.xml
        if x.get("type") == "error":
            cond = [c.tag.split("}")[1] for c in x.find("{jabber:client}error")]
            event(ev="error", kind="message", **{"from": x.get("from", ""), "conditions": cond})
            return
        body = x.find("{jabber:client}body")
        delay = x.find("{urn:xmpp:delay}delay")
        event(ev="message", **{"from": x.get("from", ""), "type": x.get("type", "normal"),
                               "body": body.text if body is not None else "", "delay": delay is not None})

    async def blocking(self, verb, jid):
        iq = self.make_iq_set()
        el = slixmpp.ET.Element("{urn:xmpp:blocking}" + verb)
        item = slixmpp.ET.SubElement(el, "{urn:xmpp:blocking}item")
        item.set("jid", jid)
        iq.append(el)
        try:
            await iq.send(timeout=10)
            event(ev="iq", op=verb, type="result")
        except slixmpp.exceptions.IqError as e:
            event(ev="iq", op=verb, type="error", condition=e.iq["error"]["condition"])

    async def dump_roster(self):
        await self.get_roster()
        for jid in self.client_roster:
            if jid == self.boundjid.bare:
                continue
            item = self.client_roster[jid]
            event(ev="item", jid=jid, subscription=item["subscription"], ask=bool(item["pending_out"]))
        event(ev="roster-end")

    async def account_data(self, cmd, args):
        try:
            if cmd == "vcard-set":
                vcard = self["xep_0054"].make_vcard()
                vcard["FN"] = " ".join(args)
                await self["xep_0054"].publish_vcard(vcard)
                event(ev="vcard-set")
            elif cmd == "vcard-get":
                iq = await self["xep_0054"].get_vcard(args[0], cached=False, local=False)
                event(ev="vcard", jid=args[0], fn=iq["vcard_temp"]["FN"])
            elif cmd == "private-set":
                note = Note()
                note["text"] = " ".join(args)
                await self["xep_0049"].store(note)
                event(ev="private-set")
            elif cmd == "private-get":
                iq = await self["xep_0049"].retrieve("note")
                event(ev="private", text=iq["private"]["note"]["text"])
            elif cmd == "last":
                iq = await self["xep_0012"].get_last_activity(args[0])
                event(ev="last", jid=args[0], seconds=int(iq["last_activity"]["seconds"]))
            elif cmd == "ping":
                iq = await self["xep_0199"].send_ping(args[0], timeout=10)
                event(ev="ping", jid=args[0], **{"from": iq["from"].full, "type": iq["type"]})
            elif cmd == "disco":
                iq = self.make_iq_get(queryxmlns="http://jabber.org/protocol/disco#info", ito=args[0])
                iq = await iq.send(timeout=10)
                q = iq.xml.find("{http://jabber.org/protocol/disco#info}query")
                event(ev="disco", jid=args[0], **{"from": iq["from"].full},
                      features=[f.get("var") for f in q.findall("{http://jabber.org/protocol/disco#info}feature")],
                      identities=[i.get("category", "") + "/" + i.get("type", "")
                                  for i in q.findall("{http://jabber.org/protocol/disco#info}identity")])
        except slixmpp.exceptions.IqError as e:
            event(ev="iq-error", op=cmd, condition=e.iq["error"]["condition"])
        except slixmpp.exceptions.IqTimeout:
            event(ev="iq-error", op=cmd, condition="timeout")

    async def run_commands(self):
        loop = asyncio.get_event_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while True:
            line = (await reader.readline()).decode()
            if not line:
                return
            words = line.split()
            if not words:
                continue
            cmd, args = words[0], words[1:]
            if cmd == "presence":
                show = args[0] if args and args[0] != "-" else None
                self.send_presence(pshow=show, pstatus=" ".join(args[1:]) or None)
            elif cmd in ("subscribe", "unsubscribe"):
                self.send_presence(pto=args[0], ptype=cmd)
            elif cmd == "approve":
                self.send_presence(pto=args[0], ptype="subscribed")
            elif cmd == "deny":
                self.send_presence(pto=args[0], ptype="unsubscribed")
            elif cmd == "message":
                self.send_message(mto=args[0], mbody=" ".join(args[1:]), mtype="chat")
            elif cmd in ("block", "unblock"):
                await self.blocking(cmd, args[0])
            elif cmd == "roster":
                await self.dump_roster()
            elif cmd in ("vcard-set", "vcard-get", "private-set", "private-get", "last", "ping", "disco"):
                await self.account_data(cmd, args)
            elif cmd == "quit":
                await self.disconnect()
                return
            else:
                event(ev="bad-command", line=line.strip())


async def main():
    jid, password, addr = sys.argv[1:4]
    host, port = addr.rsplit(":", 1)
    a = Actor(jid, password)
    # slixmpp 1.8.3 would ask the system resolver for "." with an IP-literal
    # address: give it the literal and no aiodns, so nothing leaves loopback.
    a.use_aiodns = False
    a.default_domain, a.default_port = host, int(port)
    a.connect(address=(host, int(port)), use_ssl="--direct-tls" in sys.argv[4:], force_starttls="--direct-tls" not in sys.argv[4:])
    await a.run_commands()


asyncio.get_event_loop().run_until_complete(main())
