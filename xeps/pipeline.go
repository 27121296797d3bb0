package xeps

import (
	"context"
	"fmt"
	"strings"

	"github.com/xmppd/xmppd/session"
	"github.com/xmppd/xmppd/stanza"
)

// The stanza pipeline (docs/design/005-pipeline.md): named stages on a
// stanza's path where modules' hooks run. Inside a stage, hooks run in the
// order the modules are listed in cmd/xmppd/modules.go — there are no
// priority numbers to tie — and the first hook that does not pass ends the
// stage. The resolved chain is logged at startup (Host.Pipeline).

// Stage is a named point on a stanza's path.
type Stage int

const (
	// FromClient: a stanza a local client sent, 'from' stamped, before it
	// is routed (outbound presence too, from the presence module).
	FromClient Stage = iota
	// ForAccount: a stanza for a local account (bare or full JID), before it
	// is delivered to the account's resources, stored or answered. A hook
	// that stamps a message here (XEP-0359) stamps every copy of its fan-out.
	ForAccount
	// ForSession: a stanza about to be queued for one session (SessionHook).
	ForSession
	// Undeliverable: a message for a local account that no session took
	// (none available, or the one it went to failed). A hook that keeps it
	// (offline storage) consumes it; when none does, the router bounces it
	// as RFC 6121 §8 says.
	Undeliverable
	numStages
)

var stageNames = [numStages]string{"from-client", "for-account", "for-session", "undeliverable"}

func (s Stage) String() string {
	if s >= 0 && s < numStages {
		return stageNames[s]
	}
	return fmt.Sprintf("stage(%d)", int(s))
}

// Verdict is what a hook decides about a stanza.
type Verdict int

const (
	// Pass: go on (the hook may have changed the stanza in place).
	Pass Verdict = iota
	// Consume: the hook took the stanza (stored it, holds it back); the
	// path ends here and nobody is told.
	Consume
	// Refuse: the stanza is stopped; with an error, the sender gets it.
	Refuse
)

// Hook sees one stanza at one stage, from and to parsed. It may change el
// in place (add a child, an attribute) before it passes; el is shared with
// later stages and, at ForAccount, every copy of a fan-out.
type Hook func(ctx context.Context, el *stanza.Element, from, to stanza.JID) (Verdict, *stanza.Error)

// SessionHook sees a stanza about to be queued for session s (ForSession).
// Consume means the hook now owns it (it holds it back, to queue it later
// itself); Refuse drops it silently.
type SessionHook func(ctx context.Context, s *session.Session, el *stanza.Element) Verdict

type namedHook struct {
	module string
	fn     Hook
}

type namedSessionHook struct {
	module string
	fn     SessionHook
}

type pipeline struct {
	stages  [numStages][]namedHook
	session []namedSessionHook
}

// Hook adds fn to stage, after the hooks of the modules registered before
// this one. Use HookSession for ForSession.
func (h *Host) Hook(stage Stage, fn Hook) {
	if stage < 0 || stage >= numStages || stage == ForSession {
		panic(fmt.Sprintf("xeps: module %s hooks stage %s with a Hook", h.module, stage))
	}
	h.pipe.stages[stage] = append(h.pipe.stages[stage], namedHook{h.module, fn})
}

// HookSession adds fn to the ForSession stage.
func (h *Host) HookSession(fn SessionHook) {
	h.pipe.session = append(h.pipe.session, namedSessionHook{h.module, fn})
}

// HasHooks reports whether stage has any hook, so that the router can skip
// parsing addresses for it.
func (h *Host) HasHooks(stage Stage) bool {
	if stage == ForSession {
		return len(h.pipe.session) > 0
	}
	return len(h.pipe.stages[stage]) > 0
}

// HasSessionHooks reports whether the ForSession stage has any hook.
func (h *Host) HasSessionHooks() bool { return len(h.pipe.session) > 0 }

// Run runs stage's hooks on el in order; the first that does not pass
// decides.
func (h *Host) Run(ctx context.Context, stage Stage, el *stanza.Element, from, to stanza.JID) (Verdict, *stanza.Error) {
	for _, hk := range h.pipe.stages[stage] {
		if v, err := hk.fn(ctx, el, from, to); v != Pass {
			return v, err
		}
	}
	return Pass, nil
}

// RunSession runs the ForSession hooks for el on its way to s.
func (h *Host) RunSession(ctx context.Context, s *session.Session, el *stanza.Element) Verdict {
	for _, hk := range h.pipe.session {
		if v := hk.fn(ctx, s, el); v != Pass {
			return v
		}
	}
	return Pass
}

// Pipeline describes the resolved chain, stage by stage: the modules whose
// hooks run there, in order ("from-client: blocking; for-account: blocking;
// undeliverable: offline"). Startup logs it.
func (h *Host) Pipeline() string {
	var parts []string
	for st := Stage(0); st < numStages; st++ {
		var names []string
		if st == ForSession {
			for _, hk := range h.pipe.session {
				names = append(names, hk.module)
			}
		} else {
			for _, hk := range h.pipe.stages[st] {
				names = append(names, hk.module)
			}
		}
		if len(names) == 0 {
			names = []string{"-"}
		}
		parts = append(parts, st.String()+": "+strings.Join(names, ", "))
	}
	return strings.Join(parts, "; ")
}
