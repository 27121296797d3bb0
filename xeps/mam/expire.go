package mam

import (
	"context"
	"time"
)

// expireBatch is how many entries one expiry transaction removes: small,
// so that the archive's writers (every message) wait little behind it.
const expireBatch = 2000

// defaultExpireEvery is how often the retention loop runs.
const defaultExpireEvery = time.Hour

// Start implements xeps.Starter: the retention loop, when messages expire.
func (m *Module) Start(ctx context.Context) error {
	if m.a == nil || m.a.retained <= 0 {
		return nil
	}
	every := m.ExpireEvery
	if every <= 0 {
		every = defaultExpireEvery
	}
	ctx, m.cancel = context.WithCancel(context.WithoutCancel(ctx))
	m.done.Add(1)
	go func() {
		defer m.done.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			m.a.expire(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return nil
}

// Stop implements xeps.Stopper: it ends the retention loop and waits for it.
func (m *Module) Stop(ctx context.Context) error {
	if m.cancel == nil {
		return nil
	}
	m.cancel()
	ch := make(chan struct{})
	go func() { m.done.Wait(); close(ch) }()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// expire removes the entries older than the retention, a small batch per
// transaction, until none is left or ctx ends.
func (a *archive) expire(ctx context.Context) {
	before := a.now().Add(-a.retained)
	total := 0
	for {
		n, more, err := a.log.ExpireBefore(ctx, before, expireBatch)
		total += n
		if err != nil {
			if ctx.Err() == nil {
				a.logger.Error("expiring archived messages", "err", err)
			}
			return
		}
		if !more {
			break
		}
		// Let the message path's appends in between two batches.
		select {
		case <-ctx.Done():
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
	if total > 0 {
		a.logger.Info("archived messages expired", "count", total, "before", before.UTC().Format(time.RFC3339))
	}
}
