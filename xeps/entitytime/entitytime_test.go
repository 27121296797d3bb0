package entitytime_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/xeps"
	"github.com/xmppd/xmppd/xeps/entitytime"
)

func TestEntityTime(t *testing.T) {
	tests := []struct {
		name string
		now  time.Time
		utc  string
	}{
		{"utc", time.Date(2024, 3, 5, 14, 7, 9, 0, time.UTC), "2024-03-05T14:07:09.000Z"},
		// The server's own zone is never published: a +02:00 clock still answers in UTC.
		{"east of utc", time.Date(2024, 3, 5, 14, 7, 9, 123456789, time.FixedZone("EET", 2*3600)), "2024-03-05T12:07:09.123Z"},
		{"across midnight", time.Date(2023, 12, 31, 20, 30, 0, 999_999_999, time.FixedZone("X", -5*3600)), "2024-01-01T01:30:00.999Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := xeps.NewHost(xeps.Config{Domains: []string{"localhost"}})
			if err := h.Register(entitytime.Module{Now: func() time.Time { return tt.now }}); err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(h.Features(), entitytime.NS) {
				t.Errorf("features %q lack %s", h.Features(), entitytime.NS)
			}
			fn := h.IQHandler("get", entitytime.NS, "time", xeps.ToServer)
			if fn == nil {
				t.Fatal("no time handler")
			}
			iq, err := stanza.ParseIQ(stanza.New(stanza.NSClient, "iq").Set("type", "get").Set("id", "t1").
				Set("from", "alice@localhost/a").Set("to", "localhost").Append(stanza.New(entitytime.NS, "time")))
			if err != nil {
				t.Fatal(err)
			}
			el, err := fn(context.Background(), iq)
			if err != nil {
				t.Fatal(err)
			}
			if !el.Is(entitytime.NS, "time") {
				t.Fatalf("payload %s", el)
			}
			if got := el.Child(entitytime.NS, "tzo").Text(); got != "Z" {
				t.Errorf("tzo = %q, want Z", got)
			}
			if got := el.Child(entitytime.NS, "utc").Text(); got != tt.utc {
				t.Errorf("utc = %q, want %q", got, tt.utc)
			}
		})
	}
}

// Without Now the module uses the real clock.
func TestEntityTimeDefaultClock(t *testing.T) {
	h := xeps.NewHost(xeps.Config{Domains: []string{"localhost"}})
	if err := h.Register(entitytime.Module{}); err != nil {
		t.Fatal(err)
	}
	iq, err := stanza.ParseIQ(stanza.New(stanza.NSClient, "iq").Set("type", "get").Set("id", "t1").
		Append(stanza.New(entitytime.NS, "time")))
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now().UTC().Truncate(time.Millisecond)
	el, err := h.IQHandler("get", entitytime.NS, "time", xeps.ToServer)(context.Background(), iq)
	if err != nil {
		t.Fatal(err)
	}
	got, err := time.Parse("2006-01-02T15:04:05.000Z", el.Child(entitytime.NS, "utc").Text())
	if err != nil {
		t.Fatal(err)
	}
	if got.Before(before) || got.After(time.Now().UTC()) {
		t.Errorf("utc %v is not now", got)
	}
	if entitytime.XEP != "0202" {
		t.Errorf("XEP = %q", entitytime.XEP)
	}
}
