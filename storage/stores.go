package storage

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// The stores, one interface per kind of data. They are what modules and the
// rest of the server see (xeps re-exports them for modules, which may not
// import this package); the bbolt DB implements them now, and a later
// backend (PostgreSQL through pgx) implements the same interfaces, checked by
// the contract tests in storage/storetest. So: a context on every call, no
// bbolt type in any signature, and failures a caller must tell apart as the
// sentinel errors below, wrapped with %w (test them with errors.Is).

var (
	// ErrNotFound: the record asked for does not exist (Log.Get).
	ErrNotFound = errors.New("not found")
	// ErrFull: a bounded store is at its limit (Queue.Append); nothing
	// stored is dropped to make room.
	ErrFull = errors.New("store full")
	// ErrBadQuery: a LogQuery the store refuses rather than run (a
	// full-text Text longer than MaxLogText or with more than
	// MaxLogTextWords words, a search that would examine more than the
	// store's budget). A module answers it with the XEP's error (MAM:
	// not-acceptable or resource-constraint), not an internal one.
	ErrBadQuery = errors.New("query refused")
)

// Backend is all the stores of one database: what the server opens at
// start and hands out. *DB (bbolt) implements it.
type Backend interface {
	Accounts
	FastStore
	// KeyValue returns the key/value store called name.
	KeyValue(name string) KeyValue
	// Queue returns the per-user queue called name.
	Queue(name string) Queue
	// Log returns the append-only log called name.
	Log(name string) Log
	// Close releases the database.
	Close() error
}

// Accounts are the server's user accounts with their SCRAM credentials
// (never a password). Domains and localparts are passed already normalised.
type Accounts interface {
	// CreateUser adds an account; ErrUserExists if it exists.
	CreateUser(ctx context.Context, domain, local string, c Credentials) error
	// SetCredentials replaces an account's credentials (a password
	// change); ErrNoSuchUser if there is no such account.
	SetCredentials(ctx context.Context, domain, local string, c Credentials) error
	// DeleteUser removes the account and, in the same transaction, its
	// data in every KeyValue, Queue and Log of the backend (see
	// UserKeyPrefix); ErrNoSuchUser if there is no such account.
	DeleteUser(ctx context.Context, domain, local string) error
	// UserCredentials returns an account's credentials; ErrNoSuchUser if
	// there is no such account.
	UserCredentials(ctx context.Context, domain, local string) (Credentials, error)
	// UserExists reports whether the account exists.
	UserExists(ctx context.Context, domain, local string) (bool, error)
	// ListUsers returns the sorted bare JIDs of the accounts in domain, or
	// of every domain when domain is "".
	ListUsers(ctx context.Context, domain string) ([]string, error)
}

// FastStore keeps the FAST tokens (XEP-0484) issued per account and client;
// see DB.FastTokens and DB.UpdateFastTokens for the contract.
type FastStore interface {
	FastTokens(ctx context.Context, domain, local, clientID string) (FastTokens, error)
	UpdateFastTokens(ctx context.Context, domain, local, clientID string, creds []byte, change func(*FastTokens)) error
}

// KeyValue is a named store of opaque keys and values, for a module's
// records (a roster item, a vCard, a blocklist). Per-user keys start with
// the user's bare JID (UserKeyPrefix) so that DeleteUser removes them.
// Values handed out are copies the caller may keep.
type KeyValue interface {
	// Get returns the value for key, or nil and no error when there is none.
	Get(ctx context.Context, key []byte) ([]byte, error)
	// Put stores value under key, durably before it returns. An empty key
	// is an error.
	Put(ctx context.Context, key, value []byte) error
	// PutBatched is Put for writes many sessions make at once and that no
	// reply waits on (a last-activity stamp at every logout): a backend may
	// commit concurrent calls together. Durable when it returns, as Put.
	PutBatched(ctx context.Context, key, value []byte) error
	// Delete removes key; deleting an absent key is not an error.
	Delete(ctx context.Context, key []byte) error
	// Scan calls fn for every key starting with prefix, in byte order of
	// the keys, from one consistent snapshot. An error from fn stops the
	// scan and is returned (wrapped).
	Scan(ctx context.Context, prefix []byte, fn func(key, value []byte) error) error
	// Update runs fn in one read-write transaction: all its changes are
	// committed together, durably, before Update returns, or none are if
	// fn (or the commit) fails. fn must not keep t.
	Update(ctx context.Context, fn func(t Txn) error) error
}

// Txn is one KeyValue read-write transaction (KeyValue.Update). It sees its
// own writes. Its calls take no context: the one given to Update governs the
// transaction. A backend whose reads can fail (a network database) remembers
// the first failure, fails every later call, and Update returns it with the
// transaction rolled back, so a Get that returned nil because of a failure
// never leads to a commit.
type Txn interface {
	// Get returns a copy of the value for key, or nil.
	Get(key []byte) []byte
	// Put stores value under key.
	Put(key, value []byte) error
	// Delete removes key.
	Delete(key []byte) error
	// Scan calls fn with copies of the keys and values under prefix, in order.
	Scan(prefix []byte, fn func(key, value []byte) error) error
}

// Queue is a named store of per-user lists kept in the order they were
// added: offline messages (XEP-0160). Items are numbered by a sequence that
// only grows, so a reader can delete what it has handed out.
type Queue interface {
	// Append adds value at the end of the user's list, durably before it
	// returns, and returns its sequence number. With max > 0 a list already
	// holding max items is left alone and the error wraps ErrFull.
	Append(ctx context.Context, domain, local string, value []byte, max int) (seq uint64, err error)
	// Count returns how many items the user's list holds.
	Count(ctx context.Context, domain, local string) (int, error)
	// List calls fn for the user's items in order, with copies of the
	// values. An error from fn stops the listing and is returned (wrapped).
	List(ctx context.Context, domain, local string, fn func(seq uint64, value []byte) error) error
	// DeleteThrough removes the user's items numbered up to and including seq.
	DeleteThrough(ctx context.Context, domain, local string, seq uint64) error
}

// Log is a named append-only store of per-owner entries ordered by time:
// the message archive (XEP-0313), a room's history, a push queue. The owner
// is a bare JID ("user@domain", "room@conference.domain"); DeleteUser
// removes a user's entries from every Log. Entries are read a page at a
// time (MaxLogPage at most), so no read is unbounded.
type Log interface {
	// Append adds e at the end of owner's log, durably before it returns,
	// and returns its id. e.ID is ignored. e.Time is the entry's time; zero
	// means now. Ids only grow, per owner: an entry whose time is before the
	// owner's newest (a clock that stepped back) gets the newest's time, so
	// the order of ids is the order of times. Owner and e.With must not
	// contain NUL, nor be longer than MaxJIDLen; owner must not be empty.
	Append(ctx context.Context, owner string, e LogEntry) (LogID, error)
	// Get returns owner's entry with this id; the error wraps ErrNotFound
	// when there is none.
	Get(ctx context.Context, owner string, id LogID) (LogEntry, error)
	// Query returns one page of owner's entries matching q, oldest first.
	Query(ctx context.Context, owner string, q LogQuery) (LogPage, error)
	// DeleteRange removes owner's entries older than before (retention) and
	// returns how many it removed. Ids of later entries still only grow.
	DeleteRange(ctx context.Context, owner string, before time.Time) (int, error)
	// DeleteOwner removes all of owner's entries (a deleted account or room).
	DeleteOwner(ctx context.Context, owner string) error
	// Replace replaces the Data and Text of owner's entry id with e's
	// (a XEP-0424 retraction's tombstone), keeping its id, time and With
	// (e's are ignored); the full-text index follows. The error wraps
	// ErrNotFound when there is no such entry.
	Replace(ctx context.Context, owner string, id LogID, e LogEntry) error
	// ExpireBefore removes entries older than before, of every owner
	// (the retention loop), at most max of them (<= 0: a default of a few
	// thousand) in one short write transaction, index entries included,
	// and reports how many it removed and whether older entries remain:
	// the caller loops while more, letting other writers in between.
	ExpireBefore(ctx context.Context, before time.Time, max int) (n int, more bool, err error)
}

// MaxLogPage is the most entries one LogQuery returns.
const MaxLogPage = 1000

// MaxLogText is the longest LogQuery.Text, in bytes, and
// MaxLogTextWords the most distinct words it may hold; a longer one is
// refused with ErrBadQuery, never searched.
const (
	MaxLogText      = 1024
	MaxLogTextWords = 16
)

// MaxJIDLen bounds a Log's owner and With: a JID's three parts are at most
// 1023 bytes each (RFC 7622 §3.1).
const MaxJIDLen = 3071

// LogEntry is one entry of a Log.
type LogEntry struct {
	// ID is the entry's id, unique in its owner's log and set by Append.
	ID LogID
	// Time is when the entry was appended, to the millisecond (ID.Time()).
	Time time.Time
	// With is the JID the entry concerns (the other party of a message), as
	// the module stores it: LogQuery.With matches it exactly. May be "".
	With string
	// Data is the payload (a serialized stanza).
	Data []byte
	// Text is the entry's searchable text, chosen by the module (a
	// message's <body>, say); "" when it has none. Its words (see
	// LogQuery.Text) are indexed at Append and Replace. Get and Query
	// return it. A backend need not store it twice: bbolt keeps only its
	// offset when it appears verbatim in Data.
	Text string
}

// LogQuery selects a page of a Log. The zero LogQuery is the oldest
// MaxLogPage entries.
type LogQuery struct {
	// After and Before, when not zero, keep only entries with ids strictly
	// after or before them (XEP-0059 <after/> and <before/>, XEP-0313
	// after-id and before-id). The ids need not exist (any more).
	After, Before LogID
	// Start and End, when not zero, keep only entries with Start <= Time
	// <= End (XEP-0313 start and end).
	Start, End time.Time
	// With, when not "", keeps only the entries whose With equals it.
	With string
	// Text, when it has words, keeps only the entries whose Text contains
	// every one of them, as whole words (XEP-0431 full-text search),
	// combined with the other filters and paged as they are. Words are
	// compared case- and accent-insensitively after Unicode word
	// segmentation (letters and digits; a run of CJK characters counts as
	// one word per character). At most MaxLogText bytes and
	// MaxLogTextWords words, else the error wraps ErrBadQuery. Answered
	// from an index, never by reading every entry.
	Text string
	// Limit is the most entries returned; <= 0 or more than MaxLogPage
	// means MaxLogPage.
	Limit int
	// Backward takes the page from the newest end of the selection instead
	// of the oldest: the entries just before Before (XEP-0059 paging
	// backwards; with Before zero, the last page). The page is still
	// returned oldest first.
	Backward bool
}

// LogPage is the answer to a LogQuery.
type LogPage struct {
	// Entries, oldest first. RSM's <first/> and <last/> are the ids of the
	// first and last entry.
	Entries []LogEntry
	// Complete is true when no further entry matches in the direction of
	// paging: none newer than the page going forward, none older going
	// Backward (XEP-0313 complete='true').
	Complete bool
}

// LogID identifies a Log entry: the milliseconds since the Unix epoch in
// the high 48 bits, a sequence in the low 16. Ids are unique per owner and
// increase with time. Zero is never an id.
type LogID uint64

// logIDLen is the length of a LogID's string form.
const logIDLen = 16

// String is the id as an opaque string (the XEP-0359 stanza-id, the
// XEP-0313 archive id): 16 lowercase hex digits, so that strings sort as
// the ids do.
func (id LogID) String() string {
	var b [8]byte
	for i := range b {
		b[i] = byte(id >> (56 - 8*i))
	}
	return hex.EncodeToString(b[:])
}

// Time is the time the id carries, to the millisecond, in UTC.
func (id LogID) Time() time.Time { return time.UnixMilli(int64(id >> 16)).UTC() }

// ParseLogID parses what LogID.String returns. Anything else, and the zero
// id, is an error (wrapping ErrNotFound: no entry has such an id).
func ParseLogID(s string) (LogID, error) {
	if len(s) != logIDLen {
		return 0, fmt.Errorf("storage: log id %q: %w", s, ErrNotFound)
	}
	var b [8]byte
	if _, err := hex.Decode(b[:], []byte(s)); err != nil || s != hex.EncodeToString(b[:]) {
		// The second check refuses upper case: one id, one string.
		return 0, fmt.Errorf("storage: log id %q: %w", s, ErrNotFound)
	}
	var id LogID
	for _, c := range b {
		id = id<<8 | LogID(c)
	}
	if id == 0 {
		return 0, fmt.Errorf("storage: log id %q: %w", s, ErrNotFound)
	}
	return id, nil
}

// The bbolt DB implements every store.
var (
	_ Backend   = (*DB)(nil)
	_ Accounts  = (*DB)(nil)
	_ FastStore = (*DB)(nil)
	_ KeyValue  = (*boltKV)(nil)
	_ Txn       = (*boltTxn)(nil)
	_ Queue     = (*boltQueue)(nil)
	_ Log       = (*boltLog)(nil)
)
