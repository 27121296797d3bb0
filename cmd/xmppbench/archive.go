package main

// The archive scenario (XEP-0313 MAM): one user's archive is filled by a
// chat with a second user at full speed (the fill rate is "chat with the
// archive on"), then that user queries it through XMPP: pages of 50 (the
// newest, by 'with', by a time range, walking back by before-id) and
// full-text queries (XEP-0431), each timed.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xmppd/xmppd/stanza"
)

const (
	nsMAM      = "urn:xmpp:mam:2"
	nsRSM      = "http://jabber.org/protocol/rsm"
	nsForward  = "urn:xmpp:forward:0"
	nsData     = "jabber:x:data"
	fulltextFV = "{urn:xmpp:fulltext:0}fulltext"
	archPrefix = "xa "
)

type archiveConfig struct {
	Fill     int // messages exchanged to fill the archive (half each way); 0: query what is there
	Window   int // messages in flight per sender during the fill
	Queries  int // queries of each kind
	Page     int // page size (RSM max)
	Words    int // vocabulary of the bodies (full-text queries pick one word of it)
	BodyWord int // words per body
	FullText bool
	FillTime time.Duration // stop sending after this long (0: no limit)
	DataDir  string        // the server's data folder: disk used per archived message
}

func archiveFlags(fs *flag.FlagSet, a *archiveConfig) {
	fs.IntVar(&a.Fill, "fill", 10000, "messages the two users exchange first, as fast as the window allows (the fill rate is the figure "+
		"'chat with the archive on'); 0: no fill, query the archive as it is (full-text and range queries need a fill)")
	fs.IntVar(&a.Window, "window", 100, "fill: messages a sender may have in flight")
	fs.IntVar(&a.Queries, "queries", 200, "queries of each kind")
	fs.IntVar(&a.Page, "page", 50, "page size (RSM <max/>)")
	fs.IntVar(&a.Words, "words", 2000, "vocabulary of the message bodies: words w1..wN, so a full-text query for one word matches about fill×body-words÷words messages")
	fs.IntVar(&a.BodyWord, "body-words", 16, "words per body (with 16 and the default --words, a message stanza is about 200 bytes)")
	fs.DurationVar(&a.FillTime, "fill-time", 0, "stop the fill's sending after this long, whatever --fill says (a slow server then "+
		"gets a smaller archive, reported); 0: no limit")
	fs.StringVar(&a.DataDir, "data-dir", "", "the server's data folder (read only): disk space used per archived message, "+
		"from the blocks allocated before and after the fill (each message is archived for both users)")
	fs.BoolVar(&a.FullText, "fulltext", true, "run the full-text queries (XEP-0431 field "+fulltextFV+")")
}

func (a *archiveConfig) check() error {
	if a.Fill < 0 || a.Window < 1 || a.Queries < 0 || a.Page < 1 || a.Words < 1 || a.BodyWord < 1 {
		return errors.New("archive sizes must be positive (--window, --page, --words, --body-words at least 1)")
	}
	return nil
}

// archBody is the body of fill message sq: the run, the sequence number,
// the send time and words of the vocabulary.
func archBody(b []byte, run string, sq uint64, words, n int) []byte {
	b = append(b, archPrefix...)
	b = append(b, run...)
	b = append(b, ' ')
	b = strconv.AppendUint(b, sq, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, time.Now().UnixNano(), 10)
	for range n {
		b = append(b, " w"...)
		b = strconv.AppendInt(b, int64(1+rand.IntN(words)), 10)
	}
	return b
}

// parseArchBody reads run, sequence number and send time of a fill body.
func parseArchBody(body string) (run string, sq uint64, ts int64, ok bool) {
	rest, ok := strings.CutPrefix(body, archPrefix)
	if !ok {
		return "", 0, 0, false
	}
	f := strings.SplitN(rest, " ", 4)
	if len(f) < 3 {
		return "", 0, 0, false
	}
	sq, err1 := strconv.ParseUint(f[1], 10, 64)
	ts, err2 := strconv.ParseInt(f[2], 10, 64)
	if err1 != nil || err2 != nil || sq == 0 {
		return "", 0, 0, false
	}
	return f[0], sq, ts, true
}

// mamPage is one query's answer.
type mamPage struct {
	ids      []string
	bodies   []string
	first    string // <fin><set><first/>, else the first result's id
	complete bool
	errCond  string // the stanza error's condition, if the query failed
}

// parseMAMResult reads a <message/> carrying a MAM result for queryid q:
// the archive id and the archived body (ok false for anything else).
func parseMAMResult(el *stanza.Element, q string) (id, body string, ok bool) {
	r := el.Child(nsMAM, "result")
	if r == nil || r.Get("queryid") != q {
		return "", "", false
	}
	fw := r.Child(nsForward, "forwarded")
	inner := fw.Child(stanza.NSClient, "message")
	return r.Get("id"), inner.Child(stanza.NSClient, "body").Text(), true
}

// parseFin completes page p from the query's IQ result.
func parseFin(el *stanza.Element, p *mamPage) {
	if el.Get("type") != "result" {
		p.errCond = stanzaErrCond(el)
		if p.errCond == "" {
			p.errCond = "error"
		}
		return
	}
	fin := el.Child(nsMAM, "fin")
	c := fin.Get("complete")
	p.complete = c == "true" || c == "1"
	if f := fin.Child(nsRSM, "set").Child(nsRSM, "first").Text(); f != "" {
		p.first = f
	} else if len(p.ids) > 0 {
		p.first = p.ids[0]
	}
}

// mamQuery builds a query: form fields (var, value pairs) and an RSM set
// asking for the last max items before 'before' ("" = from the end).
func mamQuery(id, qid string, fields [][2]string, max int, before string) []byte {
	var b strings.Builder
	b.WriteString("<iq type='set' id='" + id + "'><query xmlns='" + nsMAM + "' queryid='" + qid + "'>")
	if len(fields) > 0 {
		b.WriteString("<x xmlns='" + nsData + "' type='submit'><field var='FORM_TYPE' type='hidden'><value>" + nsMAM + "</value></field>")
		for _, f := range fields {
			b.WriteString("<field var='" + escapeAttr(f[0]) + "'><value>" + escapeAttr(f[1]) + "</value></field>")
		}
		b.WriteString("</x>")
	}
	b.WriteString("<set xmlns='" + nsRSM + "'><max>" + strconv.Itoa(max) + "</max>")
	if before == "" {
		b.WriteString("<before/>")
	} else {
		b.WriteString("<before>" + escapeAttr(before) + "</before>")
	}
	b.WriteString("</set></query></iq>")
	return []byte(b.String())
}

// query runs one MAM query on a client that has no reader goroutine.
func (c *client) query(n int, fields [][2]string, max int, before string) (mamPage, error) {
	id := "q" + strconv.Itoa(n)
	var p mamPage
	if err := c.writeStanzas(1, mamQuery(id, id, fields, max, before)); err != nil {
		return p, errf("mam query", err)
	}
	_ = c.conn.SetReadDeadline(time.Now().Add(c.d.timeout))
	defer c.conn.SetReadDeadline(time.Time{})
	for {
		el, err := c.expect("mam query")
		if err != nil {
			return p, err
		}
		if el.Local == "message" {
			if rid, body, ok := parseMAMResult(el, id); ok {
				p.ids = append(p.ids, rid)
				p.bodies = append(p.bodies, body)
				continue
			}
		}
		if el.Local == "iq" && el.Get("id") == id {
			parseFin(el, &p)
			return p, nil
		}
		c.dispatch(el)
	}
}

func (b *bench) runArchive(ctx context.Context) {
	a := b.cfg.Archive
	b.r.Params["fill"] = a.Fill
	b.r.Params["window"] = a.Window
	b.r.Params["queries"] = a.Queries
	b.r.Params["page"] = a.Page
	b.r.Params["words"] = a.Words
	b.r.Params["body_words"] = a.BodyWord
	b.r.Params["sm"] = b.cfg.SM
	run := randomID()
	var received, stale, foreign atomic.Int64
	var lat hist
	phase := "connecting"
	var phaseMu sync.Mutex
	setPhase := func(s string) { phaseMu.Lock(); phase = s; phaseMu.Unlock() }
	var sent atomic.Int64
	var queriesDone atomic.Int64
	p := startProgress(b.cfg.Progress, "archive", func() string {
		phaseMu.Lock()
		defer phaseMu.Unlock()
		return fmt.Sprintf("%s: sent %d delivered %d, queries %d", phase, sent.Load(), received.Load(), queriesDone.Load())
	})
	defer p.end()

	// The fill: users 0 and 1, each sends half, a window each.
	credit := [2]chan struct{}{make(chan struct{}, a.Window), make(chan struct{}, a.Window)}
	onMsg := func(c *client, el *stanza.Element) {
		if el.Local != "message" {
			return
		}
		r, _, ts, ok := parseArchBody(el.Child(stanza.NSClient, "body").Text())
		switch {
		case ok && r != run:
			stale.Add(1)
			return
		case !ok || el.Get("type") == "error":
			foreign.Add(1)
			return
		}
		received.Add(1)
		lat.record(time.Since(time.Unix(0, ts)))
		select {
		case <-credit[c.idx^1]:
		default:
		}
	}
	var fillSpan time.Duration
	var fillStart, fillEnd time.Time
	var sendErrs atomic.Int64
	var disk0 int64
	if a.DataDir != "" {
		var err error
		if disk0, err = diskUsage(a.DataDir); err != nil {
			b.r.addError(err)
		}
	}
	if a.Fill > 0 {
		var llat hist
		clients, readers := b.connectAll(ctx, []int{0, 1}, onMsg, true, &llat, nil)
		if b.failed.Load() > 0 {
			closeAll(clients, readers)
			b.r.add("logins_failed", "logins failed", float64(b.failed.Load()), "")
			b.r.Anomalies += int(b.failed.Load())
			return
		}
		setPhase("filling")
		fillStart = time.Now()
		var stopAt time.Time
		if a.FillTime > 0 {
			stopAt = fillStart.Add(a.FillTime)
		}
		var wg sync.WaitGroup
		for k, c := range clients {
			count := a.Fill / 2
			if k == 0 {
				count += a.Fill % 2
			}
			to := escapeAttr(clients[k^1].bare)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for sq := uint64(1); sq <= uint64(count); sq++ {
					if !stopAt.IsZero() && time.Now().After(stopAt) {
						return
					}
					select {
					case credit[k] <- struct{}{}:
					case <-ctx.Done():
						return
					}
					err := c.sendWith(1, func(buf []byte) []byte {
						buf = append(buf, "<message type='chat' to='"+to+"'><body>"...)
						buf = archBody(buf, run, sq, a.Words, a.BodyWord)
						return append(buf, "</body></message>"...)
					})
					if err != nil {
						sendErrs.Add(1)
						b.r.addError(fmt.Errorf("send: %w", err))
						return
					}
					sent.Add(1)
				}
			}()
		}
		wg.Wait()
		b.waitFor(ctx, func() bool { return received.Load() >= sent.Load() }, received.Load)
		if sent.Load() < int64(a.Fill) {
			b.r.Notes = append(b.r.Notes, fmt.Sprintf("fill stopped by --fill-time %v after %d of %d messages", a.FillTime, sent.Load(), a.Fill))
		}
		fillEnd = time.Now()
		fillSpan = fillEnd.Sub(fillStart)
		dropped := b.countDropped(clients)
		closeAll(clients, readers)
		b.r.add("fill_sent", "fill: messages sent", float64(sent.Load()), "")
		b.r.add("fill_delivered", "fill: messages delivered", float64(received.Load()), "")
		b.r.add("fill_per_s", "fill: delivered messages/s (chat with the archive on)", rate(received.Load(), fillSpan), "1/s")
		b.r.addDur("fill_latency_p50_ms", "fill: latency p50", lat.quantile(0.50))
		b.r.addDur("fill_latency_p99_ms", "fill: latency p99", lat.quantile(0.99))
		b.r.add("fill_lost", "fill: messages lost", float64(max(sent.Load()-received.Load(), 0)), "")
		b.r.add("unexpected", "unexpected/error messages received", float64(foreign.Load()), "")
		b.r.Anomalies += int(max(sent.Load()-received.Load(), 0)+foreign.Load()+sendErrs.Load()) + dropped
		if a.DataDir != "" && disk0 > 0 && sent.Load() > 0 {
			// Written to disk by now? The servers commit before delivering
			// (xmppd) or soon after; give the lazy ones a moment.
			sleepCtx(ctx, 2*time.Second)
			if disk1, err := diskUsage(a.DataDir); err == nil {
				b.r.add("disk_before", "server data folder before the fill", float64(disk0), "B")
				b.r.add("disk_after", "server data folder after the fill", float64(disk1), "B")
				b.r.add("disk_per_archived", "disk per archived copy (growth ÷ 2 × messages)", float64(disk1-disk0)/float64(2*sent.Load()), "B")
				b.r.add("stanza_bytes", "bytes of one sent message stanza (the raw XML)", float64(sampleStanzaLen(b.jid(1), a)), "B")
			}
		}
	}

	// The queries, from a new session of user 0.
	setPhase("querying")
	q, err := b.d.login(ctx, 0, b.user(0), b.cfg.Password, nil)
	if err != nil {
		b.r.addError(err)
		b.r.Anomalies++
		return
	}
	defer q.close()
	with := b.jid(1)
	type kind struct {
		key, label string
		fields     func(i int) [][2]string
		walk       bool // before-id: each query pages back from the last one's first id
		check      func(p mamPage, fields [][2]string) bool
	}
	kinds := []kind{
		{key: "newest", label: "the newest page", fields: func(int) [][2]string { return nil }},
		{key: "with", label: "the newest page with the partner", fields: func(int) [][2]string { return [][2]string{{"with", with}} }},
		{key: "before_id", label: "paging back by before-id", fields: func(int) [][2]string { return nil }, walk: true},
	}
	if a.Fill > 0 {
		window := fillSpan * time.Duration(a.Page) / time.Duration(max(sent.Load(), 1))
		window = max(window, time.Second) // whole seconds, for servers that read no fractions
		kinds = append(kinds, kind{key: "range", label: "a time range", fields: func(int) [][2]string {
			t := fillStart.Add(time.Duration(rand.Int64N(int64(max(fillSpan-window, 1)))))
			return [][2]string{{"start", t.UTC().Format(time.RFC3339)}, {"end", t.Add(window).UTC().Format(time.RFC3339)}}
		}})
		if a.FullText {
			kinds = append(kinds, kind{key: "fulltext", label: "full-text, one word", fields: func(int) [][2]string {
				return [][2]string{{fulltextFV, "w" + strconv.Itoa(1+rand.IntN(a.Words))}}
			}, check: func(p mamPage, fields [][2]string) bool {
				// A server that ignores the field returns the newest page:
				// every body must hold the word.
				for _, body := range p.bodies {
					if !strings.Contains(body+" ", " "+fields[0][1]+" ") {
						return false
					}
				}
				return true
			}})
		}
	}
	n := 0
	for _, k := range kinds {
		var h hist
		var errs, short, wrong, results int64
		var conds []string
		before := ""
		for i := 0; i < a.Queries && ctx.Err() == nil; i++ {
			fields := k.fields(i)
			n++
			t0 := time.Now()
			pg, err := q.query(n, fields, a.Page, before)
			d := time.Since(t0)
			queriesDone.Add(1)
			if err != nil {
				b.r.addError(err)
				errs++
				break
			}
			if pg.errCond != "" {
				errs++
				if len(conds) < 3 {
					conds = append(conds, pg.errCond)
				}
				continue
			}
			h.record(d)
			results += int64(len(pg.ids))
			if len(pg.ids) < a.Page && !pg.complete && k.key != "range" && k.key != "fulltext" {
				short++
			}
			if k.check != nil && !k.check(pg, fields) {
				wrong++
			}
			if k.walk {
				before = pg.first
				if pg.complete || pg.first == "" {
					before = "" // at the start of the archive: from the end again
				}
			}
		}
		b.r.addDur("q_"+k.key+"_p50_ms", "query p50: "+k.label, h.quantile(0.50))
		b.r.addDur("q_"+k.key+"_p99_ms", "query p99: "+k.label, h.quantile(0.99))
		b.r.add("q_"+k.key+"_results", "results per query: "+k.label, float64(results)/float64(max(h.n.Load(), 1)), "")
		if errs > 0 {
			b.r.add("q_"+k.key+"_errors", "queries refused: "+k.label, float64(errs), "")
			b.r.Notes = append(b.r.Notes, fmt.Sprintf("%s: %d queries refused (%s)", k.key, errs, strings.Join(conds, ", ")))
		}
		if short > 0 {
			b.r.add("q_"+k.key+"_short", "pages shorter than --page and not complete: "+k.label, float64(short), "")
		}
		if wrong > 0 {
			b.r.add("q_"+k.key+"_wrong", "answers with a body that lacks the word: "+k.label, float64(wrong), "")
			b.r.Notes = append(b.r.Notes, fmt.Sprintf("%s: %d answers hold messages without the word (the field ignored?)", k.key, wrong))
		}
		if k.key == "fulltext" {
			continue // a peer without full-text search: reported, not an anomaly of the run
		}
		b.r.Anomalies += int(errs + short)
	}
	b.r.add("stale", "messages of earlier runs received (ignored)", float64(stale.Load()), "")
}

// diskUsage sums the blocks allocated to the files under dir (sparse or
// preallocated files count what they really take).
func diskUsage(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // vanished or unreadable (the server's own): skip
		}
		if d.Type().IsRegular() {
			total += allocated(path)
		}
		return nil
	})
	return total, err
}

// sampleStanzaLen is the length of a fill message as sent.
func sampleStanzaLen(to string, a archiveConfig) int {
	b := []byte("<message type='chat' to='" + escapeAttr(to) + "'><body>")
	b = archBody(b, "abcdefgh", 12345, a.Words, a.BodyWord)
	return len(b) + len("</body></message>")
}
