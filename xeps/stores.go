package xeps

import (
	"context"

	"github.com/xmppd/xmppd/storage"
)

// The stores a module asks the Host for in Register, one interface per kind
// of data, declared once in storage/ and re-exported here as aliases:
// xeps/* packages may not import storage (deps_test.go). A module keeps the
// interface it is handed (a field of type xeps.KeyValue, say), so that a
// later storage backend changes no module.
type (
	// KeyValue is a named store of keys and values (storage.KeyValue).
	KeyValue = storage.KeyValue
	// Txn is one KeyValue read-write transaction (storage.Txn).
	Txn = storage.Txn
	// Queue is a named store of per-user lists in order (storage.Queue).
	Queue = storage.Queue
	// Log is a named append-only per-owner store paged by id and time (storage.Log).
	Log = storage.Log
	// LogEntry is one entry of a Log.
	LogEntry = storage.LogEntry
	// LogQuery selects a page of a Log.
	LogQuery = storage.LogQuery
	// LogPage is a page of a Log.
	LogPage = storage.LogPage
	// LogID identifies a Log entry; its String is the XEP-0359 stanza-id.
	LogID = storage.LogID
)

// The stores' sentinel errors, for errors.Is.
var (
	// ErrNotFound: no such record (Log.Get, ParseLogID).
	ErrNotFound = storage.ErrNotFound
	// ErrFull: a bounded store is at its limit (Queue.Append).
	ErrFull = storage.ErrFull
	// ErrNoSuchUser: no such account.
	ErrNoSuchUser = storage.ErrNoSuchUser
	// ErrBadQuery: a LogQuery refused rather than run (an oversized
	// full-text search); answer it with the XEP's error.
	ErrBadQuery = storage.ErrBadQuery
)

// MaxLogPage is the most entries one LogQuery returns.
const MaxLogPage = storage.MaxLogPage

// MaxLogText and MaxLogTextWords bound LogQuery.Text (storage.MaxLogText).
const (
	MaxLogText      = storage.MaxLogText
	MaxLogTextWords = storage.MaxLogTextWords
)

// ParseLogID parses a LogID's string form; anything else wraps ErrNotFound.
func ParseLogID(s string) (LogID, error) { return storage.ParseLogID(s) }

// UserKeyPrefix is the prefix of a user's keys in a KeyValue (the bare JID,
// then NUL): keys under it are removed with the account.
func UserKeyPrefix(domain, local string) []byte { return storage.UserKeyPrefix(domain, local) }

// KeyValue returns the named key-value store. Modules ask for it in Register.
func (h *Host) KeyValue(name string) KeyValue { return h.cfg.DB.KeyValue(name) }

// Queue returns the named per-user queue. Modules ask for it in Register.
func (h *Host) Queue(name string) Queue { return h.cfg.DB.Queue(name) }

// Log returns the named append-only log. Modules ask for it in Register.
func (h *Host) Log(name string) Log { return h.cfg.DB.Log(name) }

// UserExists reports whether a local account exists.
func (h *Host) UserExists(ctx context.Context, domain, local string) (bool, error) {
	return h.cfg.DB.UserExists(ctx, domain, local)
}
