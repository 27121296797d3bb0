//go:build !linux

package stream

// Elsewhere an idle stream keeps its reading goroutine: arm declines, and
// the reader waits in its read as before.

func (p *parker) arm() bool { return false }

func (p *parker) release() {}

func (p *parker) pending() bool { return true }
