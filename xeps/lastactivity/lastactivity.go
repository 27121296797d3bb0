// Package lastactivity implements XEP-0012: Last Activity (version 2.0),
// server side.
//
//   - To the server (§5): seconds since the module started (the server's
//     uptime), no text.
//   - To a user's bare JID (§3), answered by the server: only the user and
//     entities the user's roster gives a subscription of "from" or "both"
//     (allowed to see the user's presence) get an answer; anyone else gets
//     forbidden (§3, §8). Checked before anything else, so the answer says
//     nothing about whether the account exists.
//     With an available resource: seconds='0' (§3 SHOULD). Otherwise the
//     seconds since the user's last available resource went unavailable,
//     with the status text of that unavailable presence as character data
//     (§3 MAY). Never seen offline (or no such user): service-unavailable,
//     as Prosody and ejabberd answer.
//   - To a full JID (§4) the router delivers the query to the client.
//
// Availability comes from xeps.Host.Announced, which the presence module
// keeps through ResourceAvailable/ResourceUnavailable; the OnUnavailable hook
// says when to record the time. The time of the last unavailable is kept in
// KeyValue "lastactivity", key = bare JID (removed with the account), value
// = JSON {"t": unix seconds, "status": text}, so it survives restarts. A
// user still online when the server stops gets the time of the shutdown if
// the presence module reports the resources going unavailable then; after a
// crash the previous record stays.
//
// The hooks do not carry the unavailable presence itself, so the status text
// stays empty until they do (wentUnavailable already takes it).
package lastactivity

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/xeps"
)

// XEP is the number of the extension this package implements.
const XEP = "0012"

// NS is the last activity namespace.
const NS = "jabber:iq:last"

// Module answers last activity queries.
type Module struct {
	// Now is the clock (nil: time.Now); tests set it.
	Now func() time.Time
}

var _ xeps.Module = Module{}

// Name implements xeps.Module.
func (Module) Name() string { return "lastactivity" }

type record struct {
	T      int64  `json:"t"`
	Status string `json:"status,omitempty"`
}

type service struct {
	h interface {
		xeps.Directory
		xeps.Providers
	}
	log   *slog.Logger
	kv    xeps.KeyValue // PutBatched: concurrent logouts share one commit
	now   func() time.Time
	start time.Time
}

// Register implements xeps.Module.
func (m Module) Register(h *xeps.Host) error {
	now := m.Now
	if now == nil {
		now = time.Now
	}
	s := &service{h: h, log: h.Logger(), kv: h.KeyValue("lastactivity"), now: now, start: now()}
	h.AdvertiseFeature(NS)
	h.AdvertiseAccountFeature(NS)
	h.HandleIQ("get", NS, "query", xeps.ToServer, s.uptime)
	h.HandleIQ("get", NS, "query", xeps.ToAccount, s.last)
	h.OnUnavailable(s.onUnavailable)
	return nil
}

func seconds(d time.Duration) string {
	return strconv.FormatInt(max(0, int64(d/time.Second)), 10)
}

func (s *service) uptime(context.Context, *stanza.IQ) (*stanza.Element, error) {
	return stanza.New(NS, "query").Set("seconds", seconds(s.now().Sub(s.start))), nil
}

func (s *service) last(ctx context.Context, iq *stanza.IQ) (*stanza.Element, error) {
	requester := iq.From.Bare()
	user := requester
	if iq.To.String() != "" {
		user = iq.To.Bare()
	}
	if !user.Equal(requester) {
		sub, err := s.h.Roster().Subscription(ctx, user, requester)
		if err != nil {
			return nil, err
		}
		if sub != "from" && sub != "both" {
			return nil, stanza.NewError("forbidden")
		}
	}
	if online := len(s.h.Announced(user)) > 0; online {
		return stanza.New(NS, "query").Set("seconds", "0"), nil
	}
	b, err := s.kv.Get(ctx, []byte(user.String()))
	if err != nil {
		return nil, err
	}
	if b == nil {
		return nil, stanza.NewError("service-unavailable")
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("lastactivity: record of %s: %w", user, err)
	}
	return stanza.New(NS, "query").Set("seconds", seconds(s.now().Sub(time.Unix(r.T, 0)))).AppendText(r.Status), nil
}

func (s *service) onUnavailable(ctx context.Context, full stanza.JID, last bool) {
	s.wentUnavailable(ctx, full, last, "")
}

// wentUnavailable records that full went unavailable with status text; when
// it was the user's last available resource, the time and text are stored.
func (s *service) wentUnavailable(ctx context.Context, full stanza.JID, last bool, status string) {
	// The host has already taken full out of Announced (and, with last, all
	// of the user's resources).
	if len(s.h.Announced(full)) > 0 {
		return
	}
	bare := full.Bare().String()
	b, _ := json.Marshal(record{T: s.now().Unix(), Status: status})
	if err := s.kv.PutBatched(ctx, []byte(bare), b); err != nil {
		s.log.Error("cannot store last activity", "user", bare, "err", err)
	}
}
