package router_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/xmppd/xmppd/router"
	"github.com/xmppd/xmppd/stanza"
)

// TestServerIQAnswers: the server's own requests (xeps.Host.SendIQ) get the
// answer a client routes to the server, only from the JID asked, and the
// router's own bounce when the JID asked has no session.
func TestServerIQAnswers(t *testing.T) {
	w := &world{}
	w.add(t, alice+" 0")
	h := testHost(t)
	r := router.New(h, w, nil, nil)
	h.SetSender(r.Route)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	var res *stanza.Element
	var rerr error
	called := 0
	h.SendIQAsync(ctx, parse(t, `<iq type='get' to='alice@localhost/a'><ping xmlns='urn:xmpp:ping'/></iq>`),
		func(el *stanza.Element, err error) { res, rerr = el, err; called++ })
	if len(w.log) != 1 || w.log[0].at != alice {
		t.Fatalf("request not delivered:\n%s", dump(w.log))
	}
	id := w.log[0].el.Get("id")
	// The right id from bob (stamped by c2s, so not alice) is dropped.
	r.Route(ctx, parse(t, `<iq type='result' id='`+id+`' from='bob@localhost/b' to='localhost'/>`))
	if called != 0 {
		t.Fatal("an answer from another JID was taken")
	}
	r.Route(ctx, parse(t, `<iq type='result' id='`+id+`' from='alice@localhost/a' to='localhost'/>`))
	if called != 1 || rerr != nil || res.Get("from") != alice {
		t.Fatalf("answer: called %d, %v, %v", called, res, rerr)
	}
	if len(w.log) != 1 {
		t.Errorf("the answers went somewhere:\n%s", dump(w.log))
	}

	// To a resource with no session: the router's bounce is the answer.
	called = 0
	h.SendIQAsync(ctx, parse(t, `<iq type='get' to='alice@localhost/gone'><ping xmlns='urn:xmpp:ping'/></iq>`),
		func(el *stanza.Element, err error) { res, rerr = el, err; called++ })
	var se *stanza.Error
	if called != 1 || !errors.As(rerr, &se) || se.Condition != "service-unavailable" {
		t.Errorf("to a gone resource: called %d, %v, %v", called, res, rerr)
	}
	if h.PendingIQs() != 0 {
		t.Errorf("PendingIQs = %d", h.PendingIQs())
	}
}
