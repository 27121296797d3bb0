package auth

// FAST (XEP-0484): a client that logged in with its password asks for a
// token, and logs in with it next time in one round trip, with the Hashed
// Token mechanisms HT-SHA-256-* (draft-ietf-kitten-sasl-ht). The client
// proves it holds the token with HMAC-SHA-256(token, "Initiator" ||
// channel-binding data) and the server answers HMAC-SHA-256(token,
// "Responder" || the same data), so each side knows the other has the token.
//
// A token belongs to one account and one client (the SASL2 <user-agent
// id/>). A newly issued token is kept as Next next to the one in use
// (Current) until the client logs in with it: should the <success/> that
// carried it be lost, the client still has a token that works. A token is
// replaced once it is older than RotateAfter, at a login made with it, and
// stops working after TTL. A password change ends them all
// (storage.FastTokens checks the credentials' tag).

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/xmppd/xmppd/storage"
	"golang.org/x/text/secure/precis"
)

const (
	mechHTExpr = "HT-SHA-256-EXPR" // bound to tls-exporter (TLS 1.3)
	mechHTUniq = "HT-SHA-256-UNIQ" // bound to tls-unique (TLS 1.2)
	mechHTEndp = "HT-SHA-256-ENDP" // bound to tls-server-end-point
	mechHTNone = "HT-SHA-256-NONE" // no channel binding

	// DefaultFastTTL is how long a token works: a client that does not log
	// in with it for that long must use its password again.
	DefaultFastTTL = 21 * 24 * time.Hour
	// DefaultFastRotate is the age after which a login with a token gets a
	// new one.
	DefaultFastRotate = 24 * time.Hour

	fastSecretLen = 32 // random bytes in a token
)

// FastStore keeps the tokens (storage.DB).
type FastStore interface {
	FastTokens(ctx context.Context, domain, local, clientID string) (storage.FastTokens, error)
	UpdateFastTokens(ctx context.Context, domain, local, clientID string, creds []byte, change func(*storage.FastTokens)) error
}

// FastConfig is FAST in one SASL2 exchange.
type FastConfig struct {
	Store FastStore
	// ClientID is the client's SASL2 <user-agent id/>. Tokens are kept per
	// client: without an id none is used or issued.
	ClientID string
	// Invalidate is the client's <fast invalidate='true'/>: the token it
	// logs in with is revoked by this login.
	Invalidate bool
	// TTL and RotateAfter default to DefaultFastTTL and DefaultFastRotate.
	TTL, RotateAfter time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (f *FastConfig) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

// FastMechanisms lists the token mechanisms offered on this connection in
// SASL2's <fast/>, channel-bound ones first (the same bindings SCRAM -PLUS
// offers), HT-SHA-256-NONE last.
func FastMechanisms(state *tls.ConnectionState, serverCertDER []byte) []string {
	if state == nil || !state.HandshakeComplete {
		return nil
	}
	var out []string
	for _, t := range ChannelBindings(state) {
		switch {
		case t == cbExporter:
			out = append(out, mechHTExpr)
		case t == cbUnique:
			out = append(out, mechHTUniq)
		case t == cbServerEndPoint && serverCertDER != nil:
			out = append(out, mechHTEndp)
		}
	}
	return append(out, mechHTNone)
}

// IsFastMechanism reports whether name is one of the HT-* mechanisms, which
// are only offered inside SASL2's <fast/>.
func IsFastMechanism(name string) bool {
	switch name {
	case mechHTExpr, mechHTUniq, mechHTEndp, mechHTNone:
		return true
	}
	return false
}

func htBinding(mech string) string {
	switch mech {
	case mechHTExpr:
		return cbExporter
	case mechHTUniq:
		return cbUnique
	case mechHTEndp:
		return cbServerEndPoint
	}
	return ""
}

// htServer is the server side of one HT-SHA-256-* exchange: a single
// message, "authcid NUL HMAC(token, "Initiator" || cb-data)".
type htServer struct {
	srv      *Server
	used     *storage.FastToken // the token that authenticated
	usedNext bool               // it was Next (its first use)
}

func newHTServer(ctx context.Context, mechanism string, cfg Config) (*Server, error) {
	if cfg.Fast.Store == nil || cfg.Domain == "" {
		return nil, failure("temporary-auth-failure", "")
	}
	if cfg.Fast.ClientID == "" {
		return nil, failure("malformed-request", "a token login needs the client's <user-agent id/>")
	}
	s := &Server{ctx: ctx, cfg: cfg, mech: mechanism}
	s.ht = &htServer{srv: s}
	return s, nil
}

func (h *htServer) step(in []byte) ([]byte, *Failure) {
	authcid, proof, ok := bytes.Cut(in, []byte{0})
	if !ok || len(authcid) == 0 || !utf8.Valid(authcid) {
		return nil, malformed("expected username NUL hashed token")
	}
	s := h.srv
	local, err := precis.UsernameCaseMapped.String(string(authcid))
	if err != nil || local == "" {
		return nil, errAuth()
	}
	s.attempted = local
	var cb []byte
	if t := htBinding(s.mech); t != "" {
		if cb, err = channelBindingData(t, s.cfg.TLS, s.cfg.ServerCertDER); err != nil {
			return nil, failure("temporary-auth-failure", "")
		}
	}
	// Tokens are too long to guess, but a check is a check (throttle.go).
	tk, tf := s.admit(local)
	if tf != nil {
		return nil, tf
	}
	out, wrong, tf := h.check(local, proof, cb)
	tk.finish(wrong)
	return out, tf
}

// check compares proof with the client's tokens. wrong: it matched none of
// them, not even an expired one.
func (h *htServer) check(local string, proof, cb []byte) (out []byte, wrong bool, _ *Failure) {
	s := h.srv
	f := s.cfg.Fast
	tokens, err := f.Store.FastTokens(s.ctx, s.cfg.Domain, local, f.ClientID)
	if err != nil {
		return nil, false, failure("temporary-auth-failure", "")
	}
	now := f.now().Unix()
	expired := false
	for i, t := range []*storage.FastToken{tokens.Next, tokens.Current} {
		if t == nil || t.Mechanism != s.mech || !hmac.Equal(htProof(t.Secret, "Initiator", cb), proof) {
			continue
		}
		if now >= t.Expires {
			expired = true
			continue
		}
		h.used, h.usedNext = t, i == 0
		s.username, s.credsTag = local, tokens.Creds
		return htProof(t.Secret, "Responder", cb), false, nil
	}
	if expired {
		return nil, false, failure("credentials-expired", "")
	}
	return nil, true, errAuth()
}

func htProof(secret, who string, cb []byte) []byte {
	return hmacSum(sha256.New, []byte(secret), append([]byte(who), cb...))
}

// FinishFast records what this successful SASL2 exchange changes in the
// client's tokens, and returns the token to send in <success/> (nil for
// none): a new one when the client asked for one with
// <request-token mechanism=requested/>, or when the token it logged in with
// is due for rotation. A first login with Next makes it Current; with
// Invalidate, the token used is dropped. A login that changes nothing
// writes nothing.
func (s *Server) FinishFast(requested string) (*storage.FastToken, error) {
	f := s.cfg.Fast
	if f == nil || !s.done || f.ClientID == "" || (s.credsTag == nil && s.creds == nil) {
		return nil, nil
	}
	now := f.now()
	mech := ""
	switch {
	case requested != "" && slices.Contains(FastMechanisms(s.cfg.TLS, s.cfg.ServerCertDER), requested):
		mech = requested
	case s.ht != nil && !f.Invalidate && now.Unix()-s.ht.used.Issued >= int64(or(f.RotateAfter, DefaultFastRotate)/time.Second):
		mech = s.mech
	}
	var issued *storage.FastToken
	if mech != "" {
		secret := make([]byte, fastSecretLen)
		rand.Read(secret)
		issued = &storage.FastToken{
			Secret:    base64.RawURLEncoding.EncodeToString(secret),
			Mechanism: mech,
			Issued:    now.Unix(),
			Expires:   now.Add(or(f.TTL, DefaultFastTTL)).Unix(),
		}
	}
	used := ""
	if s.ht != nil && (s.ht.usedNext || f.Invalidate) {
		used = s.ht.used.Secret
	}
	if issued == nil && used == "" {
		return nil, nil
	}
	tag := s.credsTag
	if tag == nil {
		tag = s.creds.Tag()
	}
	err := f.Store.UpdateFastTokens(s.ctx, s.cfg.Domain, s.username, f.ClientID, tag, func(t *storage.FastTokens) {
		// Only what this login decided is set here: the change may run twice.
		if used != "" {
			isUsed := func(x *storage.FastToken) bool { return x != nil && x.Secret == used }
			switch {
			case f.Invalidate && isUsed(t.Current):
				t.Current = nil
			case f.Invalidate && isUsed(t.Next):
				t.Next = nil
			case isUsed(t.Next):
				t.Current, t.Next = t.Next, nil
			}
		}
		if t.Current != nil && t.Current.Expires <= now.Unix() {
			t.Current = nil
		}
		if issued != nil {
			t.Next = issued
		}
	})
	if err != nil {
		return nil, err
	}
	return issued, nil
}

func or(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
