#!/usr/bin/python3
"""Summaries of bench/compare.sh results (the JSON that `xmppbench ... --json` writes).

  report.py --brief FILE NAME RC SECONDS   one line per scenario run, while compare.sh runs
  report.py --table RESULTS_DIR            the comparison table, plain text
  report.py --markdown RESULTS_DIR         the same table in Markdown (for docs/performance.md)

RESULTS_DIR holds SERVER-SCENARIO.json and meta.json. Standard library only.
"""
import json
import os
import sys

PEERS = ("prosody", "ejabberd")
ORDER = ("xmppd", "prosody", "ejabberd")

KIB, MIB = 1024.0, 1024.0 * 1024.0


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def fig(r, key, scale=1.0):
    if r is None:
        return None
    f = r.get("figures", {}).get(key)
    if f is None:
        return None
    return f["value"] * scale


def distinct_presence_rate(r):
    total, rate, distinct = fig(r, "presence_deliveries"), fig(r, "presence_per_s"), fig(r, "presence_distinct")
    if not total or not rate or distinct is None:
        return None
    return distinct / (total / rate)  # the same span as presence_per_s


def duplicates_per_presence(r):
    total, distinct = fig(r, "presence_deliveries"), fig(r, "presence_distinct")
    if not total or not distinct:
        return None
    return (total - distinct) / distinct


def server_cores(r):
    if r is None or not r.get("server_process"):
        return None
    return r["server_process"].get("cores_used")


def tool_cores(r):
    if r is None:
        return None
    return r.get("tool", {}).get("cores_used")


def median(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    m = len(xs) // 2
    return xs[m] if len(xs) % 2 else (xs[m - 1] + xs[m]) / 2


def per_round(f, *runs):
    """f of each round's runs (the rounds of one scenario are lists, in the same order)."""
    return [f(*rs) for rs in zip(*runs)] if all(runs) else []


def login_per_tls(login, tls):
    l, t = fig(login, "logins_per_s"), fig(tls, "handshakes_per_s")
    return l / t if l is not None and t else None


def server_cpu_per_op(r):
    """The server's CPU time per handshake or login, in µs."""
    if r is None or not r.get("server_process"):
        return None
    f = r.get("figures", {})
    n = (f.get("logins_ok") or f.get("handshakes_ok") or {}).get("value")
    cpu = r["server_process"].get("cpu_s")
    return cpu / n * 1e6 if n and cpu is not None else None


def handshake_per_login_cpu(login, tls):
    l, t = server_cpu_per_op(login), server_cpu_per_op(tls)
    return t / l if l and t is not None else None


def median_of(f):
    return lambda *runs: median(per_round(f, *runs))


def range_of(f):
    def get(*runs):
        xs = [x for x in per_round(f, *runs) if x is not None]
        if len(xs) < 2:
            return None
        return f"{fmt(min(xs))}–{fmt(max(xs))} ({len(xs)} rounds)"
    return get


# Scenarios that compare.sh runs in rounds (NAME.json, then NAME.2.json, NAME.3.json, ...).
ROUNDS = ("tls", "login-dtls", "login-sasl2", "login-fast")


SCENARIOS = ("idle", "login", "tls", "login-dtls", "login-sasl2", "login-fast", "chat-max", "chat-half", "chat-own", "chat-peerhalf",
             "presence")


# Rows: (label, scenario, getter, direction, target)
#   scenario: a run's name, or a tuple of names whose runs the getter takes in that order.
#   direction +1: higher is better; -1: lower is better; 0: information, no ratio.
#   target: None, ("ratio>=", x) on xmppd/best-peer, ("ratio<=", x), or ("abs<=", x), ("abs>=", x) on xmppd's value.
def rows(meta):
    idle = meta.get("idle", "N")
    rounds = meta.get("ratio_rounds", 1)
    return [
        ("Idle", None, None, None, None),
        (f"server RSS per idle session, KiB ({idle} sessions)", "idle",
         lambda r: fig(r, "server_rss_per_session", 1 / KIB), -1, ("abs<=", 16)),
        (f"server RSS holding {idle} sessions, MiB", "idle", lambda r: fig(r, "server_rss_held", 1 / MIB), -1, None),
        ("Login storm", None, None, None, None),
        ("logins/s", "login", lambda r: fig(r, "logins_per_s"), +1, ("ratio>=", 2)),
        ("login time p50, ms", "login", lambda r: fig(r, "login_p50_ms"), -1, None),
        ("login time p99, ms", "login", lambda r: fig(r, "login_p99_ms"), -1, None),
        ("server CPU, cores", "login", server_cores, 0, None),
        ("tool CPU, cores", "login", tool_cores, 0, None),
        (f"Logins against the raw TLS handshake rate (Direct TLS, same server; {rounds} rounds in turn, median)",
         None, None, None, None),
        ("TLS handshakes/s (connect, handshake, close)", ("tls",),
         median_of(lambda r: fig(r, "handshakes_per_s")), +1, None),
        ("logins/s, RFC 6120 (SASL, restart, bind)", ("login-dtls",),
         median_of(lambda r: fig(r, "logins_per_s")), +1, None),
        ("  ÷ TLS handshakes/s (each round's own)", ("login-dtls", "tls"), median_of(login_per_tls), +1, ("abs>=", 0.7)),
        ("    range over the rounds", ("login-dtls", "tls"), range_of(login_per_tls), 0, None),
        ("logins/s, SASL2 + Bind 2 where offered", ("login-sasl2",),
         median_of(lambda r: fig(r, "logins_per_s")), +1, None),
        ("  ÷ TLS handshakes/s (each round's own)", ("login-sasl2", "tls"), median_of(login_per_tls), +1, ("abs>=", 0.7)),
        ("    range over the rounds", ("login-sasl2", "tls"), range_of(login_per_tls), 0, None),
        ("logins/s, SASL2 + Bind 2 with a FAST token where offered", ("login-fast",),
         median_of(lambda r: fig(r, "logins_per_s")), +1, None),
        ("  ÷ TLS handshakes/s (each round's own)", ("login-fast", "tls"), median_of(login_per_tls), +1, ("abs>=", 0.7)),
        ("    range over the rounds", ("login-fast", "tls"), range_of(login_per_tls), 0, None),
        ("server CPU per TLS handshake, µs", ("tls",), median_of(server_cpu_per_op), -1, None),
        ("server CPU per login, µs, RFC 6120", ("login-dtls",), median_of(server_cpu_per_op), -1, None),
        ("server CPU per login, µs, SASL2 where offered", ("login-sasl2",), median_of(server_cpu_per_op), -1, None),
        ("server CPU per login, µs, FAST where offered", ("login-fast",), median_of(server_cpu_per_op), -1, None),
        ("  server's own handshake ÷ login CPU, RFC 6120 (the ratio with the tool elsewhere)", ("login-dtls", "tls"),
         median_of(handshake_per_login_cpu), +1, None),
        ("  server's own handshake ÷ login CPU, SASL2", ("login-sasl2", "tls"),
         median_of(handshake_per_login_cpu), +1, None),
        ("  server's own handshake ÷ login CPU, FAST", ("login-fast", "tls"),
         median_of(handshake_per_login_cpu), +1, None),
        ("SASL used", "login-sasl2", None, 0, None),
        ("SASL used with --fast", "login-fast", None, 0, None),
        ("1:1 chat, as fast as possible (window 100 per sender)", None, None, None, None),
        ("delivered messages/s", "chat-max", lambda r: fig(r, "messages_per_s"), +1, ("ratio>=", 2)),
        ("latency p50, ms", "chat-max", lambda r: fig(r, "latency_p50_ms"), -1, None),
        ("latency p99, ms", "chat-max", lambda r: fig(r, "latency_p99_ms"), -1, None),
        ("server CPU, cores", "chat-max", server_cores, 0, None),
        ("tool CPU, cores", "chat-max", tool_cores, 0, None),
        ("1:1 chat at half of xmppd's peak (same offered load everywhere)", None, None, None, None),
        ("offered messages/s", "chat-half", lambda r: fig(r, "send_rate"), 0, None),
        ("delivered messages/s", "chat-half", lambda r: fig(r, "messages_per_s"), 0, None),
        ("latency p50, ms", "chat-half", lambda r: fig(r, "latency_p50_ms"), -1, None),
        ("latency p99, ms", "chat-half", lambda r: fig(r, "latency_p99_ms"), -1, ("ratio<=", 0.5)),
        ("latency p99.9, ms", "chat-half", lambda r: fig(r, "latency_p999_ms"), -1, None),
        ("server CPU, cores", "chat-half", server_cores, 0, None),
        ("1:1 chat at half of each server's own peak", None, None, None, None),
        ("offered messages/s", "chat-own", lambda r: fig(r, "send_rate"), 0, None),
        ("latency p50, ms", "chat-own", lambda r: fig(r, "latency_p50_ms"), -1, None),
        ("latency p99, ms", "chat-own", lambda r: fig(r, "latency_p99_ms"), -1, ("ratio<=", 0.5)),
        (f"1:1 chat at half of the best peer's peak ({meta['peerhalf_peer']}'s), the same offered load for xmppd and "
         "that peer" if meta.get("peerhalf_peer") else "1:1 chat at half of the best peer's peak (not run)",
         None, None, None, None),
        ("offered messages/s", "chat-peerhalf", lambda r: fig(r, "send_rate"), 0, None),
        ("latency p50, ms", "chat-peerhalf", lambda r: fig(r, "latency_p50_ms"), -1, None),
        ("latency p99, ms", "chat-peerhalf", lambda r: fig(r, "latency_p99_ms"), -1, ("ratio<=", 0.5)),
        ("latency p99.9, ms", "chat-peerhalf", lambda r: fig(r, "latency_p999_ms"), -1, None),
        ("server CPU, cores", "chat-peerhalf", server_cores, 0, None),
        (f"Presence storm ({meta.get('presence_users')} users × {meta.get('presence_contacts')} contacts log in at once)",
         None, None, None, None),
        ("presence deliveries/s", "presence", lambda r: fig(r, "presence_per_s"), +1, None),
        # The row above counts every presence a client got, duplicates included (ejabberd sends a
        # contact's presence twice at a storm: the broadcast and the probe's answer); this one
        # counts each contact's presence once per user, over the same span.
        ("  distinct contact presences/s (duplicates not counted)", "presence", distinct_presence_rate, +1, None),
        ("  duplicate presences per distinct one", "presence", duplicates_per_presence, -1, None),
        ("time until a user has all contacts' presence, p99, ms", "presence",
         lambda r: fig(r, "full_presence_p99_ms"), -1, None),
        ("storm logins/s", "presence", lambda r: fig(r, "logins_per_s"), +1, None),
        ("status changes, everyone online: deliveries/s (the broadcast alone)", "presence",
         lambda r: fig(r, "update_per_s"), +1, None),
        ("  time until a user has all contacts' status change, p99, ms", "presence",
         lambda r: fig(r, "update_full_p99_ms"), -1, None),
        ("  server CPU per status-change delivery, µs", "presence", lambda r: fig(r, "update_cpu_us"), -1, None),
        ("server CPU, cores", "presence", server_cores, 0, None),
        ("Checks", None, None, None, None),
        ("anomalies, all runs (failed logins, lost/duplicated/reordered messages, drops)", "*", None, 0, None),
        ("SASL mechanism", "login", None, 0, None),
    ]


# --modern (issue 13): the servers with archive, carbons and stream management on.
MODERN_SCENARIOS = ("chat-archive", "chat-archive-own", "chat-archive-peerhalf", "chat-plain-own", "chat-sm-own",
                    "resume", "resume-sasl2", "hibernate", "archive")


def sm_cpu_ratio(plain, sm):
    """Server CPU per message with stream management ÷ without, at the same offered load."""
    a, b = fig(plain, "server_cpu_per_msg_us"), fig(sm, "server_cpu_per_msg_us")
    return b / a if a and b is not None else None


def rows_modern(meta):
    peer = meta.get("peerhalf_peer")
    return [
        ("1:1 chat with the archive on, as fast as possible (window 100 per sender; xmppd: durable before delivered)",
         None, None, None, None),
        ("delivered messages/s", "chat-archive", lambda r: fig(r, "messages_per_s"), +1, ("ratio>=", 5)),
        ("latency p50, ms", "chat-archive", lambda r: fig(r, "latency_p50_ms"), -1, None),
        ("latency p99, ms", "chat-archive", lambda r: fig(r, "latency_p99_ms"), -1, None),
        ("server CPU per message, µs", "chat-archive", lambda r: fig(r, "server_cpu_per_msg_us"), -1, None),
        ("server CPU, cores", "chat-archive", server_cores, 0, None),
        (f"1:1 chat with the archive on at half of the best peer's peak ({peer}'s), the same offered load for xmppd "
         "and that peer" if peer else "1:1 chat with the archive on at half of the best peer's peak (not run)",
         None, None, None, None),
        ("offered messages/s", "chat-archive-peerhalf", lambda r: fig(r, "send_rate"), 0, None),
        ("latency p50, ms", "chat-archive-peerhalf", lambda r: fig(r, "latency_p50_ms"), -1, None),
        ("latency p99, ms", "chat-archive-peerhalf", lambda r: fig(r, "latency_p99_ms"), -1, ("ratio<=", 0.5)),
        ("latency p99.9, ms", "chat-archive-peerhalf", lambda r: fig(r, "latency_p999_ms"), -1, None),
        ("Stream management's cost: chat at half of each server's own peak, without and with XEP-0198", None, None, None, None),
        ("offered messages/s", "chat-plain-own", lambda r: fig(r, "send_rate"), 0, None),
        ("server CPU per message without SM, µs", "chat-plain-own", lambda r: fig(r, "server_cpu_per_msg_us"), -1, None),
        ("server CPU per message with SM, µs", "chat-sm-own", lambda r: fig(r, "server_cpu_per_msg_us"), -1, None),
        ("  with ÷ without", ("chat-plain-own", "chat-sm-own"), sm_cpu_ratio, -1, ("abs<=", 1.1)),
        ("latency p99 with SM, ms", "chat-sm-own", lambda r: fig(r, "latency_p99_ms"), -1, None),
        ("stanzas unacknowledged after the final <r/>", "chat-sm-own", lambda r: fig(r, "sm_unacked_end"), -1, None),
        (f"Resumption: {meta.get('resume_n')} sessions cut at once (silently), messages sent meanwhile, all resumed",
         None, None, None, None),
        ("sessions resumed", "resume", lambda r: fig(r, "resumed"), +1, None),
        ("resumptions failed", "resume", lambda r: fig(r, "resume_failed"), -1, ("abs<=", 0)),
        ("messages lost", "resume", lambda r: fig(r, "lost"), -1, ("abs<=", 0)),
        ("messages duplicated", "resume", lambda r: fig(r, "duplicated"), -1, ("abs<=", 0)),
        ("time from the cut until all resumed, s", "resume", lambda r: fig(r, "cut_to_resumed_s"), -1, ("abs<=", 60)),
        ("resume time p50, ms (connect, TLS, SASL, <resumed/>)", "resume", lambda r: fig(r, "resume_p50_ms"), -1, None),
        ("resume time p99, ms", "resume", lambda r: fig(r, "resume_p99_ms"), -1, None),
        ("server CPU per resumption, µs (TLS and SASL included)", "resume", lambda r: fig(r, "resume_cpu_us"), -1, None),
        ("resumed inside SASL2's <authenticate/> where offered: sessions resumed", "resume-sasl2",
         lambda r: fig(r, "resumed"), +1, None),
        ("  messages lost + duplicated", "resume-sasl2", lambda r: none_sum(fig(r, "lost"), fig(r, "duplicated")), -1, ("abs<=", 0)),
        ("  resume time p50, ms", "resume-sasl2", lambda r: fig(r, "resume_p50_ms"), -1, None),
        ("  resume time p99, ms", "resume-sasl2", lambda r: fig(r, "resume_p99_ms"), -1, None),
        ("  SASL used", "resume-sasl2", None, 0, None),
        (f"Hibernation: {meta.get('hibernate_n')} sessions cut (RST) and held {meta.get('hibernate_hold')}",
         None, None, None, None),
        ("server RSS per hibernated session, KiB", "hibernate",
         lambda r: fig(r, "server_rss_per_hibernated", 1 / KIB), -1, ("abs<=", 16)),
        ("sessions still resumable after the hold", "hibernate", lambda r: fig(r, "resumed"), +1, None),
        (f"Archive: one user's, filled with {meta.get('archive_fill')} messages, then pages of 50 and full-text queries",
         None, None, None, None),
        ("fill: delivered messages/s (one pair, archive on)", "archive", lambda r: fig(r, "fill_per_s"), +1, None),
        ("fill: messages archived (sent)", "archive", lambda r: fig(r, "fill_sent"), 0, None),
        ("disk per archived copy, bytes (data folder growth ÷ 2 × messages)", "archive",
         lambda r: fig(r, "disk_per_archived"), -1, None),
        ("  ÷ the raw stanza's bytes", "archive", disk_ratio, -1, ("abs<=", 2)),
        ("newest page p99, ms", "archive", lambda r: fig(r, "q_newest_p99_ms"), -1, ("abs<=", 10)),
        ("by with p99, ms", "archive", lambda r: fig(r, "q_with_p99_ms"), -1, ("abs<=", 10)),
        ("by time range p99, ms", "archive", lambda r: fig(r, "q_range_p99_ms"), -1, ("abs<=", 10)),
        ("by before-id p99, ms", "archive", lambda r: fig(r, "q_before_id_p99_ms"), -1, ("abs<=", 10)),
        ("full-text p50, ms", "archive", fulltext("q_fulltext_p50_ms"), -1, None),
        ("full-text p99, ms", "archive", fulltext("q_fulltext_p99_ms"), -1, ("abs<=", 100)),
        ("Checks", None, None, None, None),
        ("anomalies, all runs (failed logins or resumptions, lost/duplicated messages, refused queries, drops)", "*",
         None, 0, None),
    ]


def disk_ratio(r):
    d, raw = fig(r, "disk_per_archived"), fig(r, "stanza_bytes")
    return d / raw if d is not None and raw else None


def none_sum(*xs):
    return None if any(x is None for x in xs) else sum(xs)


def fulltext(key):
    """A full-text figure, or why there is none: the server refused the field, or ignored it."""
    def get(r):
        if r is None:
            return None
        if fig(r, "q_fulltext_errors"):
            return "refused"
        if fig(r, "q_fulltext_wrong"):
            return "ignored"
        return fig(r, key)
    return get


def fmt(v):
    if v is None:
        return "—"
    if isinstance(v, str):
        return v
    if isinstance(v, int):
        return f"{v:,}"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def build(res):
    meta = load(os.path.join(res, "meta.json")) or {}
    servers = [s for s in ORDER if s in meta.get("servers", " ".join(ORDER)).split()]
    modern = bool(meta.get("modern"))
    scenarios = MODERN_SCENARIOS if modern else SCENARIOS
    runs = {}
    rounds = {}  # (server, scenario) → the runs of each round, for ROUNDS
    for s in servers:
        for name in scenarios:
            runs[(s, name)] = load(os.path.join(res, f"{s}-{name}.json"))
        for name in () if modern else ROUNDS:
            rs = [runs[(s, name)]]
            for k in range(2, int(meta.get("ratio_rounds", 1)) + 1):
                rs.append(load(os.path.join(res, f"{s}-{name}.{k}.json")))
            rounds[(s, name)] = rs if all(r is not None for r in rs) else []
    # xmppd's "own half" run is its chat-half run.
    runs[("xmppd", "chat-own")] = runs.get(("xmppd", "chat-half"))
    # At half of the best peer's peak: xmppd's extra run, and that peer's own-half run (the same
    # load). Other peers did not run at that load.
    pre = "chat-archive" if modern else "chat"
    peerhalf = load(os.path.join(res, f"{pre}-peerhalf.json" if modern else "peerhalf.json")) or {}
    meta["peerhalf_peer"] = peerhalf.get("peer")
    for s in servers:
        if s != "xmppd":
            runs[(s, f"{pre}-peerhalf")] = runs.get((s, f"{pre}-own")) if s == peerhalf.get("peer") else None
    # A peer whose own peak is below half of xmppd's is not run at that rate (compare.sh).
    saturated = {s: load(os.path.join(res, f"{s}-chat-half.skipped")) for s in servers}
    out = []
    for label, sc, get, direction, target in (rows_modern if modern else rows)(meta):
        if sc is None:
            out.append(("section", label))
            continue
        vals = {}
        for s in servers:
            if isinstance(sc, tuple) and modern:  # the getter takes the runs of those scenarios
                vals[s] = get(*[runs.get((s, n)) for n in sc])
            elif isinstance(sc, tuple):  # scenarios run in rounds: the getter takes each one's rounds
                vals[s] = get(*[rounds.get((s, n)) for n in sc])
            elif sc == "*":
                rs = [runs.get((s, n)) for n in scenarios] + [r for n in ROUNDS for r in rounds.get((s, n), [])[1:]]
                rs = [r for r in rs if r is not None]
                vals[s] = sum(r.get("anomalies", 0) + sum((r.get("errors") or {}).values()) for r in rs) if rs else None
            elif get is None:  # SASL
                r = runs.get((s, sc))
                vals[s] = "/".join(r.get("sasl") or []) if r else None
            elif sc == "chat-half" and saturated.get(s):
                vals[s] = "saturated"
            else:
                r = runs.get((s, sc))
                vals[s] = get(r)
                if r is not None and r.get("anomalies") and direction and not vals[s]:
                    vals[s] = "failed"  # e.g. no login succeeded: a 0 here is no figure
        ratio = verdict = None
        peer_vals = [vals[p] for p in PEERS if p in vals and isinstance(vals[p], (int, float))]
        x = vals.get("xmppd")
        if direction and peer_vals and isinstance(x, (int, float)):
            best = max(peer_vals) if direction > 0 else min(peer_vals)
            if best:
                ratio = x / best
        if target and isinstance(x, (int, float)):
            kind, t = target
            if kind == "abs<=":
                verdict = ("met" if x <= t else "NOT met") + f" (≤ {t})"
            elif kind == "abs>=":
                verdict = ("met" if x >= t else "NOT met") + f" (≥ {t})"
            elif ratio is not None:
                ok = ratio >= t if kind == "ratio>=" else ratio <= t
                verdict = ("met" if ok else "NOT met") + (f" (≥ {t}×)" if kind == "ratio>=" else f" (≤ {t}×)")
            elif any(vals.get(p) == "saturated" for p in PEERS):
                verdict = "met: the peers cannot carry this load"
        arrow = {1: " ↑", -1: " ↓"}.get(direction or 0, "")
        out.append(("row", label + arrow, [vals.get(s) for s in servers], ratio, verdict))
    return meta, servers, out


def table(res, markdown):
    meta, servers, out = build(res)
    head = ["figure (↑ higher is better, ↓ lower is better)"] + servers + ["xmppd ÷ best peer", "target"]
    lines = []
    for item in out:
        if item[0] == "section":
            lines.append(("section", item[1]))
        else:
            _, label, vals, ratio, verdict = item
            lines.append(("row", [label] + [fmt(v) for v in vals] +
                          [f"{ratio:.2f}×" if ratio is not None else "", verdict or ""]))
    if markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" + "---:|" * (len(head) - 2) + "---|")
        for kind, l in lines:
            if kind == "section":
                print(f"| **{l}** |" + " |" * (len(head) - 1))
            else:
                print("| " + " | ".join(l) + " |")
        return
    widths = [len(h) for h in head]
    for kind, l in lines:
        if kind == "row":
            widths = [max(w, len(c)) for w, c in zip(widths, l)]
    def line(cells):
        return "  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) if i < len(cells) - 1 else c
                         for i, c in enumerate(cells))
    print(line(head))
    print("-" * (sum(widths) + 2 * (len(widths) - 1)))
    for kind, l in lines:
        if kind == "section":
            print(f"{l}:")
        else:
            print(line(l))
    if meta.get("modern"):
        print(f"\nsizes: {meta.get('pairs')} chat pairs for {meta.get('chat_duration')}, {meta.get('resume_n')} sessions resumed, "
              f"{meta.get('hibernate_n')} hibernated for {meta.get('hibernate_hold')}, an archive of {meta.get('archive_fill')} "
              f"messages with {meta.get('archive_queries')} queries of each kind; domain {meta.get('domain')}, STARTTLS")
        print("servers: Prosody with mod_mam (default storage), mod_carbons, mod_smacks; ejabberd with mod_mam (Mnesia), "
              "mod_carboncopy, mod_stream_mgmt; xmppd with its archive and stream management (defaults)")
        return
    print(f"\nsizes: {meta.get('idle')} idle sessions held {meta.get('idle_hold')}, {meta.get('logins')} logins "
          f"({meta.get('concurrency')} in flight), {meta.get('pairs')} chat pairs for {meta.get('chat_duration')}, "
          f"presence {meta.get('presence_users')} users × {meta.get('presence_contacts')} contacts; "
          f"domain {meta.get('domain')}, {meta.get('cert')} certificate, STARTTLS")
    print("tuning: Prosody with Lua's generational GC (gc = { mode = \"generational\" }), as its operators "
          "run it; ejabberd as shipped; xmppd on its defaults")


def brief(path, name, rc, secs):
    r = load(path)
    if r is None:
        print(f"  {name}: no result (xmppbench exit {rc}, {secs} s)")
        return
    f = {k: v["value"] for k, v in r.get("figures", {}).items()}
    pick = {
        "idle": [("sessions_ok", "sessions", "{:.0f}"), ("server_rss_per_session", "RSS/session KiB", "{:.1f}", 1 / KIB),
                 ("logins_per_s", "logins/s", "{:.0f}")],
        "login": [("logins_per_s", "logins/s", "{:.0f}"), ("login_p50_ms", "p50 ms", "{:.1f}"), ("login_p99_ms", "p99 ms", "{:.1f}")],
        "tls": [("handshakes_per_s", "handshakes/s", "{:.0f}"), ("handshake_p50_ms", "p50 ms", "{:.1f}")],
        "resume": [("resumed", "resumed", "{:.0f}"), ("resume_failed", "failed", "{:.0f}"), ("lost", "lost", "{:.0f}"),
                   ("duplicated", "dup", "{:.0f}"), ("resume_p99_ms", "resume p99 ms", "{:.0f}"),
                   ("cut_to_resumed_s", "cut→all resumed s", "{:.1f}")],
        "hibernate": [("server_rss_per_hibernated", "RSS/hibernated KiB", "{:.1f}", 1 / KIB), ("resumed", "resumed", "{:.0f}")],
        "archive": [("fill_per_s", "fill msg/s", "{:.0f}"), ("q_newest_p99_ms", "newest p99 ms", "{:.1f}"),
                    ("q_before_id_p99_ms", "before-id p99 ms", "{:.1f}"), ("q_fulltext_p99_ms", "full-text p99 ms", "{:.1f}")],
        "presence": [("presence_per_s", "presence/s", "{:.0f}"), ("presence_distinct", "distinct", "{:.0f}"),
                     ("full_presence_p99_ms", "all-contacts p99 ms", "{:.0f}"), ("setup_s", "setup s", "{:.1f}")],
    }.get(r.get("scenario"), [("send_rate", "offered/s", "{:.0f}"), ("messages_per_s", "delivered/s", "{:.0f}"),
                              ("latency_p50_ms", "p50 ms", "{:.2f}"), ("latency_p99_ms", "p99 ms", "{:.2f}"),
                              ("latency_p999_ms", "p99.9 ms", "{:.2f}"), ("lost", "lost", "{:.0f}"),
                              ("server_cpu_per_msg_us", "server CPU/msg µs", "{:.0f}")])
    parts = []
    for p in pick:
        key, label, form = p[0], p[1], p[2]
        if key in f:
            parts.append(f"{label} " + form.format(f[key] * (p[3] if len(p) > 3 else 1)))
    su = r.get("server_process") or {}
    parts.append(f"server {su.get('cores_used', 0):.2f} cores, tool {r.get('tool', {}).get('cores_used', 0):.2f} cores, "
                 f"others {r.get('tool', {}).get('other_processes_cores', 0):.2f}")
    if r.get("anomalies") or r.get("errors"):
        parts.append(f"ANOMALIES {r.get('anomalies')} errors {r.get('errors')}")
    print(f"  {name}: " + ", ".join(parts) + f"  [{secs} s, exit {rc}]")


def main(argv):
    if len(argv) == 6 and argv[1] == "--brief":
        brief(argv[2], argv[3], argv[4], argv[5])
    elif len(argv) == 3 and argv[1] in ("--table", "--markdown"):
        table(argv[2], argv[1] == "--markdown")
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
