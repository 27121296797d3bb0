package xeps

import (
	"context"
	"errors"
	"fmt"

	"github.com/xmppd/xmppd/stanza"
)

// Starter is a module with background work (timers, expiry, a queue
// worker): Start runs once after every module registered, before any
// listener accepts; the work must stop when ctx ends or at Stop.
type Starter interface {
	Start(ctx context.Context) error
}

// Stopper is a module with something to finish at shutdown (flush a batch,
// wait for its goroutines). Stop runs after the listeners closed, in the
// reverse order of the modules.
type Stopper interface {
	Stop(ctx context.Context) error
}

// Start starts the modules that are Starters, in order. When one fails, the
// ones started are stopped again and the error names the module.
func (h *Host) Start(ctx context.Context) error {
	for i, m := range h.modules {
		st, ok := m.(Starter)
		if !ok {
			continue
		}
		if err := st.Start(ctx); err != nil {
			h.stop(ctx, h.modules[:i])
			return fmt.Errorf("module %s: start: %w", m.Name(), err)
		}
	}
	return nil
}

// Stop stops the modules that are Stoppers, last registered first.
func (h *Host) Stop(ctx context.Context) error { return h.stop(ctx, h.modules) }

func (h *Host) stop(ctx context.Context, mods []Module) error {
	var errs []error
	for i := len(mods) - 1; i >= 0; i-- {
		if st, ok := mods[i].(Stopper); ok {
			if err := st.Stop(ctx); err != nil {
				errs = append(errs, fmt.Errorf("module %s: stop: %w", mods[i].Name(), err))
			}
		}
	}
	return errors.Join(errs...)
}

// AccountFunc hears about an account (its bare JID) being created or deleted.
type AccountFunc func(ctx context.Context, user stanza.JID) error

type accountHooks struct {
	created, deleted []namedAccountFunc
}

type namedAccountFunc struct {
	module string
	fn     AccountFunc
}

// OnAccountCreated runs fn after an account is created.
func (h *Host) OnAccountCreated(fn AccountFunc) {
	h.accounts.created = append(h.accounts.created, namedAccountFunc{h.module, fn})
}

// OnAccountDeleted runs fn after an account is deleted: the module drops
// what it stored and cached for the user, so that an account made again
// under the same name starts empty.
func (h *Host) OnAccountDeleted(fn AccountFunc) {
	h.accounts.deleted = append(h.accounts.deleted, namedAccountFunc{h.module, fn})
}

// AccountCreated runs the OnAccountCreated hooks (the admin side calls it).
func (h *Host) AccountCreated(ctx context.Context, user stanza.JID) error {
	return runAccount(ctx, h.accounts.created, user)
}

// AccountDeleted runs the OnAccountDeleted hooks; every hook runs, and the
// errors are joined, naming the modules.
func (h *Host) AccountDeleted(ctx context.Context, user stanza.JID) error {
	return runAccount(ctx, h.accounts.deleted, user)
}

func runAccount(ctx context.Context, hooks []namedAccountFunc, user stanza.JID) error {
	var errs []error
	for _, hk := range hooks {
		if err := hk.fn(ctx, user.Bare()); err != nil {
			errs = append(errs, fmt.Errorf("module %s: %w", hk.module, err))
		}
	}
	return errors.Join(errs...)
}
