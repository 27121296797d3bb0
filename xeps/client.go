package xeps

import (
	"context"
	"fmt"

	"github.com/xmppd/xmppd/stanza"
)

// Two seams for modules that speak to a bound client's stream itself
// rather than through stanzas (docs/design/009-stream-management.md, top):
//
//   - nonzas: top-level elements that are not stanzas, such as XEP-0352's
//     <active/>/<inactive/>. A module claims a namespace with HandleNonza;
//     c2s hands it what a bound client sends in it, with the session.
//     What no module claims keeps c2s's answer (unsupported-stanza-type).
//   - Bind 2 (XEP-0386) inline features: HandleBind2 advertises a namespace
//     in SASL2's <inline><bind/> and is called, once the resource is bound,
//     with the module's child of the client's <bind/> (carbons enables,
//     CSI starts inactive); it may return a child for <bound/>.
//
// c2s reaches both through the router (router.Modules), never xeps.

// NonzaFunc handles one top-level element a bound client sent, on that
// client's reader goroutine (s is its session; ctx carries it too). It
// must not block; it may deliver to s (s.Deliver) to answer.
type NonzaFunc func(ctx context.Context, s Session, el *stanza.Element)

// Bind2Func runs after an inline bind (XEP-0386) bound s, with the module's
// child of the client's <bind/> (never nil: it is called only when the
// client sent one). It runs before the client can send anything on the
// new session. A non-nil result is added to <bound/>.
type Bind2Func func(ctx context.Context, s Session, req *stanza.Element) *stanza.Element

// HandleNonza hands the top-level elements in namespace space that bound
// clients send to fn. Claiming a namespace twice panics at startup, as
// HandleIQ does; advertise the feature with StreamFeature.
func (h *Host) HandleNonza(space string, fn NonzaFunc) {
	if h.nonzas == nil {
		h.nonzas = map[string]NonzaFunc{}
	}
	if _, dup := h.nonzas[space]; dup {
		panic(fmt.Sprintf("xeps: module %s: nonzas of %s are handled already", h.module, space))
	}
	h.nonzas[space] = fn
}

// Nonza returns the handler of a nonza namespace, or nil.
func (h *Host) Nonza(space string) NonzaFunc { return h.nonzas[space] }

// HandleBind2 advertises space as an inline feature of Bind 2 and hands fn
// the client's <bind/> child in it. Twice for one namespace panics.
func (h *Host) HandleBind2(space string, fn Bind2Func) {
	for _, b := range h.bind2 {
		if b.space == space {
			panic(fmt.Sprintf("xeps: module %s: Bind 2 feature %s is handled already", h.module, space))
		}
	}
	h.bind2 = append(h.bind2, bind2Handler{space, fn})
}

// Bind2Features lists the namespaces HandleBind2 registered, in module order.
func (h *Host) Bind2Features() []string {
	out := make([]string, len(h.bind2))
	for i, b := range h.bind2 {
		out[i] = b.space
	}
	return out
}

// Bind2 returns the handler of a Bind 2 feature, or nil.
func (h *Host) Bind2(space string) Bind2Func {
	for _, b := range h.bind2 {
		if b.space == space {
			return b.fn
		}
	}
	return nil
}

type bind2Handler struct {
	space string
	fn    Bind2Func
}
