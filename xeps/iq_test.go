package xeps_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/xeps"
)

// sender records what the Host sends.
type sender struct {
	mu   sync.Mutex
	sent []*stanza.Element
	ch   chan *stanza.Element
}

func newSender(h *xeps.Host) *sender {
	s := &sender{ch: make(chan *stanza.Element, 16)}
	h.SetSender(func(_ context.Context, el *stanza.Element) {
		s.mu.Lock()
		s.sent = append(s.sent, el)
		s.mu.Unlock()
		select {
		case s.ch <- el:
		default:
		}
	})
	return s
}

func answer(req *stanza.Element, from, typ string) *stanza.Element {
	return stanza.New(stanza.NSClient, "iq").Set("type", typ).Set("id", req.Get("id")).
		Set("from", from).Set("to", req.Get("from"))
}

func TestSendIQ(t *testing.T) {
	h := newHost()
	s := newSender(h)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	type out struct {
		el  *stanza.Element
		err error
	}
	done := make(chan out, 1)
	go func() {
		el, err := h.SendIQ(ctx, stanza.New(stanza.NSClient, "iq").Set("type", "get").
			Set("to", "alice@localhost/a").Set("id", "mine").Append(stanza.New("urn:xmpp:ping", "ping")))
		done <- out{el, err}
	}()
	req := <-s.ch
	if req.Get("from") != "localhost" || req.Get("to") != "alice@localhost/a" || req.Get("id") == "mine" || len(req.Get("id")) < 20 {
		t.Fatalf("request %s: want from localhost, a fresh random id", req)
	}
	if h.PendingIQs() != 1 {
		t.Fatalf("PendingIQs = %d", h.PendingIQs())
	}
	// The right id from someone else, or to someone else, is not the answer
	// (CVE-2024-46957-style spoofing); neither is a request with that id.
	for _, bad := range []*stanza.Element{
		answer(req, "mallory@localhost/m", "result"),
		answer(req, "alice@localhost/b", "result"),
		answer(req, "alice@localhost", "result"),
		answer(req, "alice@localhost/a", "result").Set("to", "alice@localhost"),
		answer(req, "alice@localhost/a", "get"),
		answer(req, "alice@localhost/a", "result").Set("id", "other"),
	} {
		if h.IQResponse(bad) {
			t.Errorf("IQResponse(%s) = true", bad)
		}
	}
	select {
	case o := <-done:
		t.Fatalf("SendIQ returned %v, %v after spoofed answers", o.el, o.err)
	case <-time.After(20 * time.Millisecond):
	}
	// The real answer, with no 'to' (allowed) and the JID in another case.
	good := answer(req, "Alice@localhost/a", "result").Set("to", "")
	if !h.IQResponse(good) {
		t.Fatal("the real answer was not taken")
	}
	if o := <-done; o.err != nil || o.el != good {
		t.Fatalf("SendIQ = %v, %v", o.el, o.err)
	}
	if h.IQResponse(good) {
		t.Error("a second answer was taken")
	}
	if h.PendingIQs() != 0 {
		t.Errorf("PendingIQs = %d after the answer", h.PendingIQs())
	}

	// An error answer comes back with its condition.
	go func() {
		el, err := h.SendIQ(ctx, stanza.New(stanza.NSClient, "iq").Set("type", "get").Set("to", "bob@localhost/b").
			Append(stanza.New("urn:xmpp:ping", "ping")))
		done <- out{el, err}
	}()
	req = <-s.ch
	e := stanza.ErrorReply(req, stanza.NewError("service-unavailable"))
	if !h.IQResponse(e) {
		t.Fatal("error answer not taken")
	}
	o := <-done
	var se *stanza.Error
	if !errors.As(o.err, &se) || se.Condition != "service-unavailable" || o.el == nil {
		t.Errorf("error answer: %v, %v", o.el, o.err)
	}
}

func TestSendIQTimeoutAndBound(t *testing.T) {
	h := newHost()
	newSender(h)
	ping := func() *stanza.Element {
		return stanza.New(stanza.NSClient, "iq").Set("type", "get").Set("to", "alice@localhost/a").
			Append(stanza.New("urn:xmpp:ping", "ping"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := h.SendIQ(ctx, ping()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("SendIQ without answer: %v", err)
	}
	if h.PendingIQs() != 0 {
		t.Fatalf("PendingIQs = %d after the timeout", h.PendingIQs())
	}

	long, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(xeps.MaxPendingIQs)
	for range xeps.MaxPendingIQs {
		h.SendIQAsync(long, ping(), func(_ *stanza.Element, err error) {
			if !errors.Is(err, context.Canceled) {
				t.Errorf("pending request ended with %v", err)
			}
			wg.Done()
		})
	}
	var got error
	h.SendIQAsync(long, ping(), func(_ *stanza.Element, err error) { got = err })
	if !errors.Is(got, xeps.ErrTooManyIQs) {
		t.Errorf("request past the bound: %v", got)
	}
	stop()
	wg.Wait()
	if h.PendingIQs() != 0 {
		t.Errorf("PendingIQs = %d after cancel", h.PendingIQs())
	}

	// Not an iq get/set, or no 'to': refused at once.
	for _, bad := range []*stanza.Element{
		stanza.New(stanza.NSClient, "iq").Set("type", "result").Set("to", "alice@localhost/a"),
		stanza.New(stanza.NSClient, "iq").Set("type", "get"),
		stanza.New(stanza.NSClient, "message").Set("type", "get").Set("to", "alice@localhost/a"),
	} {
		if _, err := h.SendIQ(context.Background(), bad); err == nil {
			t.Errorf("SendIQ(%s) sent", bad)
		}
	}
}
