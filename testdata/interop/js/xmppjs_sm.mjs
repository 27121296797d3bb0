// Stream management (XEP-0198) interop for xmppd with @xmpp/client 0.14's
// stream-management: it enables SM inline in Bind 2 and resumes inline in
// SASL2 (XEP-0388), as Conversations and Monal do.
//
// usage: node xmppjs_sm.mjs SERVICE DOMAIN USER_A PASS_A USER_B PASS_B
//
// B logs in with SM, gets m0..m4 from A, then B's socket is destroyed with
// a TCP reset (no FIN, no </stream:stream>); A sends m5..m9; @xmpp/client
// reconnects and resumes: B must have m0..m9, each exactly once, on the same
// full JID. Lines the Go test parses start with "RESULT". Exit 0 on success.

process.env.NODE_TLS_REJECT_UNAUTHORIZED = "0"; // the server's certificate is self-signed
const { client, xml } = await import("@xmpp/client");

const [service, domain, userA, passA, userB, passB] = process.argv.slice(2);
const say = (...a) => console.log("xmpp.js:", ...a);
const die = (e) => {
  say("FAIL", e?.stack ?? e?.message ?? e);
  process.exit(1);
};
setTimeout(() => die("timeout after 40s"), 40000).unref();
process.on("unhandledRejection", die);
process.on("uncaughtException", die);

const a = client({ service, domain, username: userA, password: passA, resource: "a" });
const b = client({ service, domain, username: userB, password: passB, resource: "phone" });
for (const c of [a, b]) c.on("error", (e) => say("error (ignored while reconnecting):", e?.message ?? e));
b.on("element", (el) => {
  if (el.name === "success" || el.name === "resumed" || el.name === "failed") say("B got", el.toString());
});
const got = [];
let wake = null;
b.on("stanza", (s) => {
  if (s.is("message") && s.getChildText("body")) {
    got.push(s.getChildText("body"));
    wake?.();
  }
});
const until = (pred, ms) => new Promise((resolve, reject) => {
  const t = setTimeout(() => reject(new Error(`waited ${ms}ms; got ${JSON.stringify(got)}`)), ms);
  const look = () => (pred() ? (clearTimeout(t), (wake = null), resolve()) : (wake = look));
  look();
});
let sent = [];
b.on("send", (el) => {
  sent.push(el.name);
  if (el.name === "authenticate") say("B sends", el.toString().replace(/<initial-response>[^<]*/, "<initial-response>…"));
});

const [jidA, jidB] = (await Promise.all([a.start(), b.start()])).map(String);
const sm = b.streamManagement;
for (let i = 0; i < 100 && !(sm.enabled && sm.id); i++) await new Promise((r) => setTimeout(r, 50));
if (!sm.enabled || !sm.id) die(`SM not enabled on B (enabled=${sm.enabled} id=${sm.id})`);
say(`B online as ${jidB} with SM id ${sm.id} (inline in Bind 2: ${sent.includes("authenticate")})`);
const chat = (i) => xml("message", { type: "chat", to: jidB }, xml("body", {}, "m" + i));
for (let i = 0; i < 5; i++) await a.send(chat(i));
await until(() => got.length >= 5, 10000);
say(`B got ${JSON.stringify(got)}, inbound h ${sm.inbound}; resetting its TCP connection`);

const resumed = new Promise((resolve) => sm.once("resumed", resolve));
// A reset needs the TCP socket under TLS (STARTTLS keeps it as _parent);
// over Direct TLS there is none to reach, and the socket is destroyed
// without a TLS close_notify or </stream:stream>: the same to the server.
const tls = b.socket.socket ?? b.socket;
const tcp = tls._parent;
if (tcp && typeof tcp.resetAndDestroy === "function") {
  tcp.resetAndDestroy();
  say("B's TCP connection reset (RST)");
} else {
  tls.destroy();
  say("B's socket destroyed (no close_notify, no </stream:stream>)");
}
await new Promise((r) => setTimeout(r, 300));
for (let i = 5; i < 10; i++) await a.send(chat(i));
await resumed;
say(`B resumed; SM id ${sm.id}`);
await until(() => got.length >= 10, 10000);
await new Promise((r) => setTimeout(r, 500)); // duplicates would come now
const want = Array.from({ length: 10 }, (_, i) => "m" + i);
if (JSON.stringify(got) !== JSON.stringify(want)) die(`B got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
say(`RESULT sm=ok resumed=${jidB} got=${got.length}`);
await Promise.all([a.stop(), b.stop()]).catch(() => {});
process.exit(0);
