package main

// The resume and hibernate scenarios (XEP-0198): sessions with stream
// management are cut at once, messages are sent to them while they are
// gone, and each resumes from a new connection.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xmppd/xmppd/stanza"
)

// resState is what one resuming session received from its sender:
// sequence numbers, to tell lost from duplicated.
type resState struct {
	mu       sync.Mutex // the cut session's reader may still be in a handler when the resumed one starts
	seen     []uint64   // bitset of sequence numbers received
	distinct int64
	dups     int64
	foreign  int64
	sent     atomic.Uint64 // highest sequence number sent to it
}

// record notes sequence number sq; it reports whether it was new.
func (st *resState) record(sq uint64) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	w, bit := sq/64, uint64(1)<<(sq%64)
	for uint64(len(st.seen)) <= w {
		st.seen = append(st.seen, 0)
	}
	if st.seen[w]&bit != 0 {
		st.dups++
		return false
	}
	st.seen[w] |= bit
	st.distinct++
	return true
}

func (st *resState) counts() (distinct, dups, foreign int64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.distinct, st.dups, st.foreign
}

const resPrefix = "xr "

// parseResBody reads "xr RUNID SEQ" and returns the run id and sequence
// number (ok false for anything else).
func parseResBody(body string) (run string, sq uint64, ok bool) {
	rest, ok := strings.CutPrefix(body, resPrefix)
	if !ok {
		return "", 0, false
	}
	run, seqS, ok := strings.Cut(rest, " ")
	if !ok {
		return "", 0, false
	}
	sq, err := strconv.ParseUint(seqS, 10, 64)
	if err != nil || sq == 0 || sq > 1<<24 {
		return "", 0, false
	}
	return run, sq, true
}

type resRun struct {
	runID string
	stale atomic.Int64
	got   atomic.Int64 // distinct deliveries, all sessions

	foreignSeen atomic.Int64
	mu          sync.Mutex
	foreignEx   []string // the first unexpected messages, for the notes
}

func (rr *resRun) onMessage(c *client, el *stanza.Element) {
	st := c.res
	if st == nil || el.Local != "message" {
		return
	}
	run, sq, ok := parseResBody(el.Child(stanza.NSClient, "body").Text())
	if ok && run != rr.runID {
		rr.stale.Add(1) // stored offline in an earlier run
		return
	}
	if !ok || el.Get("type") == "error" {
		st.mu.Lock()
		st.foreign++
		st.mu.Unlock()
		if rr.foreignSeen.Add(1) <= 3 {
			rr.mu.Lock()
			rr.foreignEx = append(rr.foreignEx, fmt.Sprintf("from %s type %q: %.80s", el.Get("from"), el.Get("type"), el.String()))
			rr.mu.Unlock()
		}
		return
	}
	if st.record(sq) {
		rr.got.Add(1)
	}
}

// runResume runs the resume scenario, or with hibernate the hibernate one
// (server RSS per hibernated session; the sessions are resumed at the end
// to show they were held).
func (b *bench) runResume(ctx context.Context, hibernate bool) {
	n, ns := b.cfg.N, b.cfg.Senders
	mode := b.cfg.Cut
	b.r.Params["sessions"] = n
	b.r.Params["senders"] = ns
	b.r.Params["cut"] = string(mode)
	b.r.Params["messages_before"] = b.cfg.Before
	b.r.Params["messages_during"] = b.cfg.During
	b.r.Params["concurrency"] = b.cfg.Concurrency
	if hibernate {
		b.r.Params["hold"] = b.cfg.Duration.String()
	} else {
		b.r.Params["offline"] = b.cfg.Duration.String()
	}
	if !b.d.sm {
		b.d.sm = true
	}
	pid := b.cfg.ServerPID
	rr := &resRun{runID: randomID()}
	phase := "connecting"
	var phaseMu sync.Mutex
	setPhase := func(s string) { phaseMu.Lock(); phase = s; phaseMu.Unlock() }
	var resumedN, failedN atomic.Int64
	p := startProgress(b.cfg.Progress, b.cfg.Scenario, func() string {
		phaseMu.Lock()
		defer phaseMu.Unlock()
		return fmt.Sprintf("%s: logins %d/%d failed %d, resumed %d failed %d, delivered %d", phase, b.done.Load(), n+ns, b.failed.Load(),
			resumedN.Load(), failedN.Load(), rr.got.Load())
	})
	defer p.end()
	var rss0 int64
	if pid > 0 {
		rss0, _ = procStatus(pid, "VmRSS")
	}
	states := make([]*resState, n)
	for i := range states {
		states[i] = &resState{}
	}
	var lat hist
	targets, treaders := b.connectAll(ctx, seq(n), rr.onMessage, true, &lat, func(c *client) { c.res = states[c.idx] })
	failed := b.failed.Load()
	var senders []*client
	var sreaders *sync.WaitGroup
	if failed == 0 {
		senders, sreaders = b.connectAll(ctx, seqFrom(n, ns), nil, true, &lat, nil)
		failed = b.failed.Load()
	}
	if failed > 0 {
		closeAll(targets, treaders)
		if sreaders != nil {
			closeAll(senders, sreaders)
		}
		b.r.add("logins_failed", "logins failed", float64(failed), "")
		b.r.Anomalies += int(failed)
		b.r.Notes = append(b.r.Notes, "not all clients logged in; nothing cut")
		return
	}
	var rss1 int64
	if pid > 0 {
		sleepCtx(ctx, b.cfg.Settle)
		rss1, _ = procStatus(pid, "VmRSS")
	}

	// Chat a little: each sender sends Before messages to each of its
	// sessions (full JID), each session as many back; then every session
	// asks for an ack and waits for all of it.
	setPhase("before the cut")
	var sendErrs atomic.Int64
	sendTo := func(count int) {
		var wg sync.WaitGroup
		for si, s := range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := range count {
					for t := si; t < n; t += ns {
						st := states[t]
						sq := st.sent.Add(1)
						body := "<message type='chat' to='" + escapeAttr(targets[t].full) + "'><body>" + resPrefix + rr.runID + " " + strconv.FormatUint(sq, 10) + "</body></message>"
						if err := s.sendWith(1, func(b []byte) []byte { return append(b, body...) }); err != nil {
							sendErrs.Add(1)
							b.r.addError(fmt.Errorf("send: %w", err))
							return
						}
					}
					_ = k
				}
			}()
		}
		wg.Wait()
	}
	sendTo(b.cfg.Before)
	for _, c := range targets {
		to := escapeAttr(senders[c.idx%ns].bare)
		_ = c.sendWith(b.cfg.Before, func(buf []byte) []byte {
			for k := range b.cfg.Before {
				buf = append(buf, "<message type='chat' to='"+to+"'><body>xb reply "+strconv.Itoa(k)+"</body></message>"...)
			}
			return append(buf, "<r xmlns='"+nsSM+"'/>"...)
		})
	}
	wantBefore := int64(n * b.cfg.Before)
	b.waitFor(ctx, func() bool {
		if rr.got.Load() < wantBefore {
			return false
		}
		for _, c := range targets {
			if c.sm.unacked() != 0 {
				return false
			}
		}
		return true
	}, rr.got.Load)
	unackedAtCut := 0
	for _, c := range targets {
		if c.sm.unacked() != 0 {
			unackedAtCut++
		}
	}
	deliveredBefore := rr.got.Load()

	// The cut: every session at once.
	setPhase("cut")
	for _, c := range targets {
		c.cut(mode)
	}
	tCut := time.Now()
	var rss2 int64
	if hibernate {
		setPhase("hibernated")
		sleepCtx(ctx, b.cfg.Settle)
		sleepCtx(ctx, b.cfg.Duration)
		if pid > 0 {
			rss2, _ = procStatus(pid, "VmRSS")
		}
	}
	setPhase("sending to the cut sessions")
	sendTo(b.cfg.During)
	if !hibernate {
		sleepCtx(ctx, b.cfg.Duration)
	}

	// Every session resumes from a new connection.
	setPhase("resuming")
	cpu0, _ := procCPU(pid)
	var rlat hist
	var serverMissed atomic.Int64 // our stanzas the server says it did not get
	resumed := make([]*client, n)
	rreaders := &sync.WaitGroup{}
	var resumes sync.WaitGroup
	sem := make(chan struct{}, b.cfg.Concurrency)
	tRes := time.Now()
	for i, old := range targets {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		resumes.Add(1)
		go func() {
			c, unacked, err := b.d.resume(ctx, old, b.cfg.Password)
			<-sem
			if err != nil {
				failedN.Add(1)
				if !errors.Is(err, errResumeFailed) {
					err = fmt.Errorf("resume: %w", err)
				}
				b.r.addError(err)
				resumes.Done()
				return
			}
			resumedN.Add(1)
			serverMissed.Add(int64(unacked))
			rlat.record(c.loggedIn)
			resumed[i] = c
			rreaders.Add(1)
			resumes.Done()
			c.readLoop()
			rreaders.Done()
		}()
	}
	resumes.Wait()
	resumeSpan := time.Since(tRes)
	cutToResumed := time.Since(tCut)
	var resumeCPU time.Duration
	if pid > 0 {
		if cpu1, err := procCPU(pid); err == nil {
			resumeCPU = cpu1 - cpu0
		}
	}
	setPhase("draining")
	want := int64(n * (b.cfg.Before + b.cfg.During))
	b.waitFor(ctx, func() bool { return rr.got.Load() >= want }, rr.got.Load)
	dropped := b.countDropped(resumed) + b.countDropped(senders)
	closeAll(resumed, rreaders)
	closeAll(senders, sreaders)
	for _, c := range targets {
		c.abandon()
	}
	treaders.Wait()

	var lost, dups, foreign int64
	for _, st := range states {
		d, du, f := st.counts()
		lost += max(int64(st.sent.Load())-d, 0)
		dups += du
		foreign += f
	}
	b.r.add("sessions", "sessions with stream management", float64(n), "")
	b.r.add("unacked_at_cut", "sessions with our stanzas unacknowledged at the cut", float64(unackedAtCut), "")
	b.r.add("delivered_before_cut", "messages delivered before the cut", float64(deliveredBefore), "")
	b.r.add("resumed", "sessions resumed", float64(resumedN.Load()), "")
	b.r.add("resume_failed", "resumptions failed", float64(failedN.Load()), "")
	b.r.add("resume_per_s", "resumptions/s", rate(resumedN.Load(), resumeSpan), "1/s")
	b.r.add("resume_phase_s", "time until every session resumed (or failed)", resumeSpan.Seconds(), "s")
	b.r.add("cut_to_resumed_s", "time from the cut until every session resumed", cutToResumed.Seconds(), "s")
	b.r.addDur("resume_p50_ms", "resume time p50 (connect, TLS, SASL, <resumed/>)", rlat.quantile(0.50))
	b.r.addDur("resume_p99_ms", "resume time p99", rlat.quantile(0.99))
	b.r.add("messages_sent", "messages sent to the sessions", float64(want), "")
	b.r.add("messages_delivered", "messages delivered (distinct)", float64(rr.got.Load()), "")
	b.r.add("lost", "messages lost", float64(lost), "")
	b.r.add("duplicated", "messages duplicated", float64(dups), "")
	b.r.add("unexpected", "unexpected/error messages received", float64(foreign), "")
	b.r.add("server_missed", "our stanzas the server did not get (h in <resumed/>)", float64(serverMissed.Load()), "")
	b.r.add("stale", "messages of earlier runs received (ignored)", float64(rr.stale.Load()), "")
	for _, ex := range rr.foreignEx {
		b.r.Notes = append(b.r.Notes, "unexpected message "+ex)
	}
	b.r.add("sessions_dropped", "sessions dropped by the server after resuming", float64(dropped), "")
	if pid > 0 && resumedN.Load() > 0 && resumeCPU > 0 {
		b.r.add("resume_cpu_us", "server CPU per resumption (TLS and SASL included)", float64(resumeCPU.Microseconds())/float64(resumedN.Load()), "µs")
	}
	if hibernate && pid > 0 {
		b.r.add("server_rss_before", "server RSS before connecting", float64(rss0), "B")
		b.r.add("server_rss_connected", "server RSS with every session live", float64(rss1), "B")
		b.r.add("server_rss_hibernated", "server RSS at the end of the hold, every session hibernated", float64(rss2), "B")
		b.r.add("server_rss_per_hibernated", "server RSS per hibernated session (over the baseline; the senders' few sessions included)",
			float64(rss2-rss0)/float64(n), "B")
	} else if hibernate {
		b.r.Notes = append(b.r.Notes, "no --server-pid: server RSS per hibernated session not measured")
	}
	b.r.Anomalies += int(failedN.Load()+lost+dups+foreign+serverMissed.Load()+sendErrs.Load()) + dropped + unackedAtCut
}

// waitFor polls done until it is true, or until progress (a counter) has
// not moved for --drain.
func (b *bench) waitFor(ctx context.Context, done func() bool, progress func() int64) {
	last, lastT := progress(), time.Now()
	for !done() && time.Since(lastT) < b.cfg.Drain && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
		if v := progress(); v != last {
			last, lastT = v, time.Now()
		}
	}
}

func seqFrom(first, n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = first + i
	}
	return s
}
