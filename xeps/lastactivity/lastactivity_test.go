package lastactivity_test

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xeps"
	"github.com/xmppd/xmppd/xeps/lastactivity"
	"github.com/xmppd/xmppd/xeps/xepstest"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// roster answers Subscription from a table keyed "user contact".
type roster map[string]string

func (r roster) Subscription(_ context.Context, user, contact stanza.JID) (string, error) {
	if s, ok := r[user.String()+" "+contact.String()]; ok {
		return s, nil
	}
	return "none", nil
}

// rosterModule stands in for the roster module: it provides the reader.
type rosterModule struct{ r xeps.RosterReader }

func (rosterModule) Name() string { return "roster" }
func (m rosterModule) Register(h *xeps.Host) error {
	h.ProvideRoster(m.r)
	return nil
}

func newDB(t *testing.T) *storage.DB {
	t.Helper()
	db, err := storage.Open(filepath.Join(t.TempDir(), "xmppd.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newHost(t *testing.T, db *storage.DB, c *clock, mods ...xeps.Module) *xeps.Host {
	t.Helper()
	h := xeps.NewHost(xeps.Config{Domains: []string{"localhost"}, DB: db})
	if err := h.Register(append(mods, lastactivity.Module{Now: c.now})...); err != nil {
		t.Fatal(err)
	}
	return h
}

func jid(t *testing.T, s string) stanza.JID {
	t.Helper()
	j, err := stanza.ParseJID(s)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// query asks for last activity; it returns "seconds|text" or the error condition.
func query(t *testing.T, h *xeps.Host, target xeps.Target, from, to string) string {
	t.Helper()
	iq, err := stanza.ParseIQ(stanza.New(stanza.NSClient, "iq").Set("type", "get").Set("id", "l").
		Set("from", from).Set("to", to).Append(stanza.New(lastactivity.NS, "query")))
	if err != nil {
		t.Fatal(err)
	}
	res, err := h.IQHandler("get", lastactivity.NS, "query", target)(context.Background(), iq)
	if err != nil {
		return stanza.AsError(err).Condition
	}
	if !res.Is(lastactivity.NS, "query") {
		t.Fatalf("result %s", res)
	}
	return res.Get("seconds") + "|" + res.Text()
}

func TestFeaturesAndXEP(t *testing.T) {
	h := newHost(t, newDB(t), &clock{t: time.Unix(1e9, 0)})
	if !slices.Contains(h.Features(), lastactivity.NS) || !slices.Contains(h.AccountFeatures(), lastactivity.NS) {
		t.Errorf("features %q / %q", h.Features(), h.AccountFeatures())
	}
	if lastactivity.XEP != "0012" {
		t.Errorf("XEP = %q", lastactivity.XEP)
	}
}

func TestUptime(t *testing.T) {
	c := &clock{t: time.Unix(1e9, 0)}
	h := newHost(t, newDB(t), c)
	if got := query(t, h, xeps.ToServer, "alice@localhost/a", "localhost"); got != "0|" {
		t.Errorf("at start: %s", got)
	}
	c.add(90*time.Minute + 1500*time.Millisecond)
	if got := query(t, h, xeps.ToServer, "alice@localhost/a", "localhost"); got != "5401|" {
		t.Errorf("after 90m1.5s: %s", got)
	}
}

func TestUserLastActivity(t *testing.T) {
	db := newDB(t)
	c := &clock{t: time.Unix(1e9, 0)}
	r := roster{
		"alice@localhost bob@localhost":   "from",
		"alice@localhost carol@localhost": "both",
		"alice@localhost dave@localhost":  "to",
	}
	h := newHost(t, db, c, rosterModule{r})
	ctx := context.Background()

	// Never seen: authorized entities hear service-unavailable, others forbidden.
	for from, want := range map[string]string{
		"bob@localhost/b":    "service-unavailable",
		"carol@localhost/c":  "service-unavailable",
		"dave@localhost/d":   "forbidden",
		"erin@localhost/e":   "forbidden",
		"bob@remote.example": "forbidden",
	} {
		if got := query(t, h, xeps.ToAccount, from, "alice@localhost"); got != want {
			t.Errorf("never seen, asked by %s: %s, want %s", from, got, want)
		}
	}
	// A missing account looks like an unauthorized query.
	if got := query(t, h, xeps.ToAccount, "bob@localhost/b", "nobody@localhost"); got != "forbidden" {
		t.Errorf("missing account: %s", got)
	}

	// Online: 0 seconds.
	xepstest.Bind(h, jid(t, "alice@localhost/phone"))
	h.ResourceAvailable(ctx, jid(t, "alice@localhost/phone"))
	xepstest.Bind(h, jid(t, "alice@localhost/laptop"))
	h.ResourceAvailable(ctx, jid(t, "alice@localhost/laptop"))
	c.add(time.Hour)
	if got := query(t, h, xeps.ToAccount, "bob@localhost/b", "alice@localhost"); got != "0|" {
		t.Errorf("online: %s", got)
	}
	// One resource left: still online.
	h.ResourceUnavailable(ctx, jid(t, "alice@localhost/phone"), false)
	c.add(time.Minute)
	if got := query(t, h, xeps.ToAccount, "carol@localhost/c", "alice@localhost"); got != "0|" {
		t.Errorf("one resource left: %s", got)
	}
	// The last one goes: seconds since then.
	h.ResourceUnavailable(ctx, jid(t, "alice@localhost/laptop"), true)
	c.add(903 * time.Second)
	if got := query(t, h, xeps.ToAccount, "bob@localhost/b", "alice@localhost"); got != "903|" {
		t.Errorf("offline: %s", got)
	}
	if got := query(t, h, xeps.ToAccount, "dave@localhost/d", "alice@localhost"); got != "forbidden" {
		t.Errorf("subscription 'to' only: %s", got)
	}
	// The user may ask about themselves, with or without 'to'.
	if got := query(t, h, xeps.ToAccount, "alice@localhost/x", ""); got != "903|" {
		t.Errorf("own, no to: %s", got)
	}
	if got := query(t, h, xeps.ToAccount, "alice@localhost/x", "alice@localhost"); got != "903|" {
		t.Errorf("own, to bare: %s", got)
	}

	// A restart keeps the time (a new Host on the same file, nobody online).
	c.add(100 * time.Second)
	h2 := newHost(t, db, c, rosterModule{r})
	if got := query(t, h2, xeps.ToAccount, "bob@localhost/b", "alice@localhost"); got != "1003|" {
		t.Errorf("after restart: %s", got)
	}
	if got := query(t, h2, xeps.ToServer, "bob@localhost/b", "localhost"); got != "0|" {
		t.Errorf("uptime after restart: %s", got)
	}
}

// last=true from the presence module ends the user's availability even if a
// hook was missed before.
func TestLastIsFinal(t *testing.T) {
	c := &clock{t: time.Unix(1e9, 0)}
	h := newHost(t, newDB(t), c)
	ctx := context.Background()
	xepstest.Bind(h, jid(t, "alice@localhost/a"))
	h.ResourceAvailable(ctx, jid(t, "alice@localhost/a"))
	xepstest.Bind(h, jid(t, "alice@localhost/b"))
	h.ResourceAvailable(ctx, jid(t, "alice@localhost/b"))
	h.ResourceUnavailable(ctx, jid(t, "alice@localhost/a"), true)
	c.add(5 * time.Second)
	if got := query(t, h, xeps.ToAccount, "alice@localhost/x", ""); got != "5|" {
		t.Errorf("got %s", got)
	}
}
