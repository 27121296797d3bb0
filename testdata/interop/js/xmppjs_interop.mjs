// Interop client for xmppd built on @xmpp/client (xmpp.js) 0.14.0.
//
// usage: node xmppjs_interop.mjs SERVICE DOMAIN USER_A PASS_A USER_B PASS_B
//   SERVICE is xmpp://HOST:PORT (STARTTLS) or xmpps://HOST:PORT (Direct TLS).
//
// Logs in A and B on two connections, both send presence, A sends directed
// presence to B's full JID, A->B chat, B->A reply, A pings the server
// (XEP-0199), A asks B's full JID for disco#info (B answers it from a handler
// registered here) and the server for its disco#info. Lines the Go test parses
// start with "RESULT". Exit 0 on success.
//
// With an explicit service URL xmpp.js does no DNS lookup.

process.env.NODE_TLS_REJECT_UNAUTHORIZED = "0"; // the server's certificate is self-signed
const { client, xml } = await import("@xmpp/client");

const [service, domain, userA, passA, userB, passB] = process.argv.slice(2);
if (!passB) {
  console.error("usage: node xmppjs_interop.mjs SERVICE DOMAIN USER_A PASS_A USER_B PASS_B");
  process.exit(2);
}
const say = (...a) => console.log("xmpp.js:", ...a);
let stopping = false;
const die = (e) => {
  if (stopping) return say("warning while stopping:", e?.message ?? e);
  say("FAIL", e?.stack ?? e?.message ?? e);
  process.exit(1);
};
setTimeout(() => die("timeout after 30s"), 30000).unref();

const tok = Math.random().toString(36).slice(2, 12);
const DISCO_INFO = "http://jabber.org/protocol/disco#info";

function mk(username, password) {
  const c = client({ service, domain, username, password, resource: "xmppjs-" + tok });
  c.queues = { message: [], presence: [] };
  c.waiters = [];
  c.mech = "?";
  c.on("error", die);
  c.on("stanza", (s) => {
    if (s.is("message") && s.getChildText("body")) c.queues.message.push(s);
    else if (s.is("presence")) c.queues.presence.push(s);
    else return;
    for (const w of c.waiters.splice(0)) w();
  });
  // Record which SASL profile and mechanism xmpp.js picked, and how it bound
  // its resource: watch our own <auth/> (RFC 6120) or <authenticate/>
  // (SASL2, XEP-0388) with or without an inline <bind/> (XEP-0386).
  c.profile = "?";
  c.bind = "iq";
  c.on("send", (el) => {
    if (el.name === "auth" && el.attrs.xmlns === "urn:ietf:params:xml:ns:xmpp-sasl") {
      c.mech = el.attrs.mechanism;
      c.profile = "sasl";
    } else if (el.name === "authenticate" && el.attrs.xmlns === "urn:xmpp:sasl:2") {
      c.mech = el.attrs.mechanism;
      c.profile = "sasl2";
      if (el.getChild("bind", "urn:xmpp:bind:0")) c.bind = "bind2";
      if (el.getChild("request-token", "urn:xmpp:fast:0")) c.requested = true;
    }
  });
  // B (and A) answer disco#info themselves.
  c.iqCallee.get(DISCO_INFO, "query", () =>
    xml("query", { xmlns: DISCO_INFO },
      xml("identity", { category: "client", type: "bot", name: "xmpp.js interop" }),
      xml("feature", { var: DISCO_INFO }),
      xml("feature", { var: "urn:xmpp:ping" })));
  // Wait for the first queued stanza of a kind that matches pred.
  c.next = (kind, pred) => new Promise((resolve) => {
    const look = () => {
      const q = c.queues[kind];
      const i = q.findIndex(pred);
      if (i >= 0) return resolve(q.splice(i, 1)[0]);
      c.waiters.push(look);
    };
    look();
  });
  return c;
}

const t0 = Date.now();
const a = mk(userA, passA);
const b = mk(userB, passB);
const [jidA, jidB] = (await Promise.all([a.start(), b.start()])).map(String);
say(`both online in ${Date.now() - t0}ms: ${jidA} and ${jidB}`);
for (const [c, j] of [[a, jidA], [b, jidB]]) {
  say(`RESULT jid=${j.split("/")[0]} full=${j} mech=${c.mech} profile=${c.profile} bind=${c.bind}`);
}

// Presence: initial broadcast from both, then directed presence A -> B's full JID.
await Promise.all([a.send(xml("presence")), b.send(xml("presence"))]);
await a.send(xml("presence", { to: jidB }, xml("status", {}, "here " + tok)));
let p = await b.next("presence", (s) => s.attrs.from === jidA && s.getChildText("status") === "here " + tok);
say(`B saw presence from ${p.attrs.from}, status ${JSON.stringify(p.getChildText("status"))}`);

// Messages.
let t1 = Date.now();
const chat = (to, body) => xml("message", { type: "chat", to }, xml("body", {}, body));
await a.send(chat(`${userB}@${domain}`, "ping " + tok));
let m = await b.next("message", (s) => s.getChildText("body") === "ping " + tok);
if (m.attrs.from !== jidA) die(`B got the message from ${m.attrs.from}, want ${jidA}`);
say(`B got ${JSON.stringify(m.getChildText("body"))} from ${m.attrs.from}`);
await b.send(chat(m.attrs.from, "pong " + tok));
m = await a.next("message", (s) => s.getChildText("body") === "pong " + tok);
if (m.attrs.from !== jidB) die(`A got the reply from ${m.attrs.from}, want ${jidB}`);
say(`A got ${JSON.stringify(m.getChildText("body"))} from ${m.attrs.from} (round trip ${Date.now() - t1}ms)`);

// XEP-0199 ping to the server: request() resolves with the result iq, rejects on an error.
t1 = Date.now();
const pong = await a.iqCaller.request(xml("iq", { type: "get", to: domain }, xml("ping", { xmlns: "urn:xmpp:ping" })));
if (pong.attrs.type !== "result") die("ping: " + pong.toString());
say(`A pinged ${domain}: result in ${Date.now() - t1}ms`);

// disco#info to B's full JID, answered by B's handler above.
const features = (q) => q.getChildren("feature").map((f) => f.attrs.var);
let q = await a.iqCaller.get(xml("query", { xmlns: DISCO_INFO }), jidB);
if (!features(q).includes(DISCO_INFO)) die("B's disco#info: " + q.toString());
say(`A got disco#info from ${jidB}: ${features(q).length} features, identity ${q.getChild("identity")?.attrs.name}`);

// disco#info to the server.
q = await a.iqCaller.get(xml("query", { xmlns: DISCO_INFO }), domain);
if (!features(q).includes("urn:xmpp:ping")) die("server disco#info lacks urn:xmpp:ping: " + q.toString());
say(`server disco#info features: ${features(q).sort().join(" ")}`);

stopping = true;
await Promise.all([a.stop(), b.stop()]);
say(`RESULT exchange=ok token=${tok}`);

// FAST (XEP-0484): xmpp.js asked for a token in its password login and keeps
// what the server sent; logging in again, it uses that token
// (HT-SHA-256-NONE) instead of the password, in one round trip.
const saved = await a.fast.fetch();
say(`A asked for a FAST token: ${!!a.requested}; got one for ${saved?.mechanism ?? "nothing"}, expiry ${saved?.expiry}`);
if (!saved) die("no FAST token after the password login");
stopping = false;
a.mech = "?";
const again = String(await a.start());
const pong2 = await a.iqCaller.request(xml("iq", { type: "get", to: domain }, xml("ping", { xmlns: "urn:xmpp:ping" })));
if (pong2.attrs.type !== "result") die("ping after the token login: " + pong2.toString());
say(`RESULT fast=${saved.mechanism} relogin=${again.split("/")[0]} mech=${a.mech} profile=${a.profile}`);
stopping = true;
await a.stop();
say(`OK in ${Date.now() - t0}ms`);
