#!/usr/bin/python3
"""Stream management (XEP-0198) interop for xmppd on Debian's
python3-slixmpp (run it with /usr/bin/python3), with slixmpp's own
xep_0198 plugin.

Bob logs in with xep_0198 (it enables SM with resumption after bind) and
gets m0..m4 from Alice. Then his TCP connection is cut without FIN
(SO_LINGER 0 and an abort: the server sees a reset); Alice sends m5..m9
while he is away. Bob connects again and slixmpp resumes with its previd
and h: he must end up with m0..m9, each exactly once, and be the same
resource. With --restart-file, after the cut the script writes "cut" to
that file and waits for the file to say "go" (the Go test restarts the
server in between) before reconnecting to the --addr2 address.

Lines the Go test parses are "RESULT key=value"; exit status 0 means every
check held.
"""
import argparse
import asyncio
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import slixmpp_interop as base  # noqa: E402

say = base.say
TIMEOUT = base.TIMEOUT


async def wait_file(path, want):
    while True:
        try:
            with open(path) as f:
                if f.read().strip() == want:
                    return
        except FileNotFoundError:
            pass
        await asyncio.sleep(0.05)


async def main(args):
    bob = base.Client(args.jid_b + "/phone", args.pass_b)
    bob.register_plugin("xep_0198")
    alice = base.Client(args.jid_a, args.pass_a)
    enabled = asyncio.get_event_loop().create_future()
    resumed = asyncio.get_event_loop().create_future()
    bob.add_event_handler("sm_enabled", lambda e: enabled.done() or enabled.set_result(e))
    bob.add_event_handler("session_resumed", lambda e: resumed.done() or resumed.set_result(e))
    base.connect(bob, args.addr, False)
    base.connect(alice, args.addr, False)
    await asyncio.wait_for(asyncio.gather(bob.online, alice.online), TIMEOUT)
    await asyncio.wait_for(enabled, TIMEOUT)
    full = bob.boundjid.full
    say("bob enabled SM as %s, id %s" % (full, bob["xep_0198"].sm_id))
    got = []
    for i in range(5):
        alice.send_message(mto=full, mbody="m%d" % i, mtype="chat")
    while len(got) < 5:
        m = await asyncio.wait_for(bob.inbox.get(), TIMEOUT)
        got.append(m["body"])
    say("bob got %s; handled=%d; cutting" % (got, bob["xep_0198"].handled))

    # The cut: RST, no </stream:stream>, no TLS close_notify.
    sock = bob.transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    bob.transport.abort()
    await asyncio.sleep(0.3)
    for i in range(5, 10):
        alice.send_message(mto=full, mbody="m%d" % i, mtype="chat")
    await asyncio.sleep(0.3)
    addr = args.addr
    if args.restart_file:
        with open(args.restart_file, "w") as f:
            f.write("cut")
        await asyncio.wait_for(wait_file(args.restart_file, "go"), 60)
        addr = args.addr2
        if addr == "wait-for-gate":  # the restarted server's address, from the test
            with open(args.restart_file + ".addr") as f:
                addr = f.read().strip()
    base.connect(bob, addr, False)
    await asyncio.wait_for(resumed, TIMEOUT)
    say("bob resumed as %s" % bob.boundjid.full)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            m = await asyncio.wait_for(bob.inbox.get(), 0.5)
            got.append(m["body"])
        except asyncio.TimeoutError:
            if len(got) >= 10:
                break
    want = ["m%d" % i for i in range(10)]
    if got != want:
        say("bob got %s, want %s" % (got, want))
        say("RESULT sm=failed")
        return 1
    if bob.boundjid.full != full:
        say("resumed as %s, not %s" % (bob.boundjid.full, full))
        return 1
    say("RESULT sm=ok resumed=%s" % full)
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--addr", required=True)
    p.add_argument("--addr2", default="")
    p.add_argument("--restart-file", default="")
    p.add_argument("--jid-a", required=True)
    p.add_argument("--pass-a", required=True)
    p.add_argument("--jid-b", required=True)
    p.add_argument("--pass-b", required=True)
    args = p.parse_args()
    sys.exit(asyncio.get_event_loop().run_until_complete(main(args)))
