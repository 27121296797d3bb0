package storage

// SetPendingMax makes Append index words every n appends per owner, for
// the contract tests to run with most entries indexed, and returns the
// function that restores it. Not safe with tests in parallel.
func SetPendingMax(n int) (restore func()) {
	old := pendingMax
	pendingMax = n
	return func() { pendingMax = old }
}
