// One XMPP user driven line by line, on @xmpp/client (xmpp.js) 0.14.0.
//
// usage: node actor_xmppjs.mjs SERVICE JID PASSWORD
//   SERVICE is xmpp://HOST:PORT (STARTTLS) or xmpps://HOST:PORT (Direct TLS).
//
// Same line protocol as actor_slixmpp.py (commands on stdin, "EVENT {json}"
// lines on stdout), so the Go interop test can pair any two clients. xmpp.js
// handles nothing by itself: every stanza here is written out.

process.env.NODE_TLS_REJECT_UNAUTHORIZED = "0"; // the server's certificate is self-signed
const { client, xml } = await import("@xmpp/client");
import readline from "node:readline";

const [service, jid, password] = process.argv.slice(2);
const [local, domain] = jid.split("@");
const event = (o) => console.log("EVENT " + JSON.stringify(o));
const NS_BLOCK = "urn:xmpp:blocking";
const NS_ROSTER = "jabber:iq:roster";

const c = client({ service, domain, username: local, password, resource: "xmppjs-" + Math.random().toString(36).slice(2, 8) });
c.reconnect.stop(); // a test decides when a user comes back
c.on("error", (e) => event({ ev: "client-error", error: String(e?.message ?? e) }));
c.on("offline", () => { event({ ev: "offline" }); process.exit(0); });
c.on("stanza", (s) => {
  if (s.is("presence")) {
    event({ ev: "presence", from: s.attrs.from ?? "", type: s.attrs.type ?? "available",
      show: s.getChildText("show") ?? "", status: s.getChildText("status") ?? "" });
  } else if (s.is("message")) {
    if (s.attrs.type === "error") {
      const err = s.getChild("error");
      event({ ev: "error", kind: "message", from: s.attrs.from ?? "", conditions: (err?.children ?? []).filter((x) => x.name).map((x) => x.name) });
      return;
    }
    event({ ev: "message", from: s.attrs.from ?? "", type: s.attrs.type ?? "normal",
      body: s.getChildText("body") ?? "", delay: !!s.getChild("delay", "urn:xmpp:delay") });
  }
});
// Roster pushes must be acknowledged (RFC 6121 §2.1.6).
c.iqCallee.set(NS_ROSTER, "query", () => undefined);

async function blocking(verb, who) {
  try {
    await c.iqCaller.set(xml(verb, { xmlns: NS_BLOCK }, xml("item", { jid: who })));
    event({ ev: "iq", op: verb, type: "result" });
  } catch (e) {
    event({ ev: "iq", op: verb, type: "error", condition: e?.condition ?? String(e) });
  }
}

async function roster() {
  const q = await c.iqCaller.get(xml("query", { xmlns: NS_ROSTER }));
  for (const item of q?.getChildren("item") ?? []) {
    event({ ev: "item", jid: item.attrs.jid, subscription: item.attrs.subscription ?? "none", ask: item.attrs.ask === "subscribe" });
  }
  event({ ev: "roster-end" });
}

const address = await c.start();
event({ ev: "online", jid: address.toString() });

const rl = readline.createInterface({ input: process.stdin });
for await (const line of rl) {
  const [cmd, ...args] = line.trim().split(/\s+/);
  switch (cmd) {
    case "presence": {
      const show = args[0] && args[0] !== "-" ? args[0] : undefined;
      const status = args.slice(1).join(" ");
      await c.send(xml("presence", {}, show && xml("show", {}, show), status && xml("status", {}, status)));
      break;
    }
    case "subscribe": case "unsubscribe":
      await c.send(xml("presence", { to: args[0], type: cmd }));
      break;
    case "approve":
      await c.send(xml("presence", { to: args[0], type: "subscribed" }));
      break;
    case "deny":
      await c.send(xml("presence", { to: args[0], type: "unsubscribed" }));
      break;
    case "message":
      await c.send(xml("message", { to: args[0], type: "chat" }, xml("body", {}, args.slice(1).join(" "))));
      break;
    case "block": case "unblock":
      await blocking(cmd, args[0]);
      break;
    case "roster":
      await roster();
      break;
    case "quit":
      await c.stop();
      break;
    case undefined:
      break;
    default:
      event({ ev: "bad-command", line });
  }
}
