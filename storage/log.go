package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
	"unsafe"

	bolt "go.etcd.io/bbolt"
)

// A Log lives in bucket "log:<name>". Every key of an owner starts with the
// owner and a NUL (UserKeyPrefix's form, so DeleteUser finds them), then a
// kind byte:
//
//	owner NUL 'e' id                    the entry (encodeLogValue)
//	owner NUL 'h'                       the owner's newest id ever issued
//	owner NUL 'w' with NUL first-id     the 'with' index: a posting chunk
//	owner NUL 't' word NUL first-id     the full-text index: a posting chunk
//
// Ids are 8 bytes big-endian, so a cursor walks an owner's entries in id
// order, which is time order: Query seeks to its first id and reads no more
// than the page (and one more entry, to tell whether the page is the
// last). The indexes are posting lists (postings.go): the ids of the
// entries with one 'with', or with one word (words.go) in their Text, a
// chunk of ids per key. A Query with a 'with' or words walks their lists
// together (a leapfrog join: each list seeks to the largest id any other
// proposed), so it reads about as many chunks as the rarest list needs for
// the page, never the whole archive. Owners, 'with' JIDs and words contain
// no NUL, so no prefix is ambiguous. Every index key of an entry is
// written and deleted in the transaction that writes or deletes the entry.
const (
	logPrefix = "log:"

	logEntry = 'e'
	logHigh  = 'h'
	logWith  = 'w'
	logWord  = 't'
	// logPending is the list of entries whose words are not indexed yet.
	logPending = 'r'

	// logValueV1 is an entry without text: 0x01, uvarint len(with), with,
	// data. logValueV2 adds the text after with: uvarint 0 (none), or 1,
	// uvarint len, the text, or 2, uvarint offset, uvarint len: the text
	// is data[offset:offset+len] (a body without escapes), not stored twice.
	logValueV1 = 1
	logValueV2 = 2
	logValueV3 = 3 // as V2, the data packed (xmlpack.go)

	textNone    = 0
	textLiteral = 1
	textInData  = 2

	// maxLogMillis is the largest time an id can carry (year 10889).
	maxLogMillis = 1<<48 - 1

	// deleteChunk bounds the keys one write transaction of DeleteRange or
	// DeleteOwner deletes, so that removing years of archive neither holds
	// the single writer for long nor builds one huge transaction.
	deleteChunk = 10_000
)

type boltLog struct {
	db     *DB
	bucket []byte
	now    func() time.Time
}

// Log returns the log called name. Its bucket is created on the first Append.
func (db *DB) Log(name string) Log {
	return &boltLog{db: db, bucket: []byte(logPrefix + name), now: time.Now}
}

// checkJID rejects what would make keys ambiguous or oversized.
func checkJID(what, s string) error {
	switch {
	case len(s) > MaxJIDLen:
		return fmt.Errorf("storage: %s longer than %d bytes", what, MaxJIDLen)
	case strings.IndexByte(s, 0) >= 0:
		return fmt.Errorf("storage: %s %q contains NUL", what, s)
	}
	return nil
}

func checkOwner(owner string) error {
	if owner == "" {
		return errors.New("storage: empty log owner")
	}
	return checkJID("log owner", owner)
}

// logKey is owner NUL kind, with room for what follows.
func logKey(owner string, kind byte, extra int) []byte {
	k := make([]byte, 0, len(owner)+2+extra)
	k = append(k, owner...)
	return append(k, 0, kind)
}

func entryKey(owner string, id LogID) []byte {
	return binary.BigEndian.AppendUint64(logKey(owner, logEntry, 8), uint64(id))
}

// withPrefix is the index prefix of owner's entries with this 'with'.
func withPrefix(owner, with string) []byte {
	k := append(logKey(owner, logWith, len(with)+9), with...)
	return append(k, 0)
}

// wordPrefix is the index prefix of owner's entries holding word.
func wordPrefix(owner, word string) []byte {
	k := append(logKey(owner, logWord, len(word)+9), word...)
	return append(k, 0)
}

func encodeLogValue(owner, with, text string, data []byte) []byte {
	v := make([]byte, 0, 1+3*binary.MaxVarintLen64+len(with)+len(data))
	v = append(v, logValueV2)
	v = binary.AppendUvarint(v, uint64(len(with)))
	v = append(v, with...)
	switch i := bytes.Index(data, []byte(text)); {
	case text == "":
		v = append(v, textNone)
	case i >= 0:
		v = append(v, textInData)
		v = binary.AppendUvarint(v, uint64(i))
		v = binary.AppendUvarint(v, uint64(len(text)))
	default:
		v = append(v, textLiteral)
		v = binary.AppendUvarint(v, uint64(len(text)))
		v = append(v, text...)
	}
	if packed, ok := packXML(v, data, with, owner); ok {
		packed[0] = logValueV3
		return packed
	}
	return append(v, data...)
}

// logValue is a stored entry, parsed; its slices are the stored value's.
type logValue struct {
	with   []byte
	data   []byte // as stored: packed (xmlpack.go) when packed
	packed bool
	text   []byte // the text when stored on its own
	// The text within the (unpacked) data, when inData.
	textOff, textLen uint64
	inData           bool
}

// parseLogValue parses a stored entry.
func parseLogValue(id LogID, v []byte) (lv logValue, err error) {
	lv, ok := parseLogValueOK(v)
	if !ok {
		if len(v) == 0 || v[0] < logValueV1 || v[0] > logValueV3 {
			return lv, fmt.Errorf("storage: log entry %s: unknown encoding", id)
		}
		return lv, fmt.Errorf("storage: log entry %s: corrupt", id)
	}
	return lv, nil
}

// parseLogValueOK is parseLogValue without the error's allocation: every
// entry of every page goes through it.
func parseLogValueOK(v []byte) (lv logValue, ok bool) {
	if len(v) == 0 || v[0] < logValueV1 || v[0] > logValueV3 {
		return lv, false
	}
	version := v[0]
	v = v[1:]
	n, k := binary.Uvarint(v)
	if k <= 0 || n > uint64(len(v)-k) {
		return lv, false
	}
	lv.with, v = v[k:k+int(n)], v[k+int(n):]
	if version == logValueV1 {
		lv.data = v
		return lv, true
	}
	lv.packed = version == logValueV3
	if len(v) == 0 {
		return lv, false
	}
	kind := v[0]
	v = v[1:]
	switch kind {
	case textNone:
	case textLiteral:
		n, k := binary.Uvarint(v)
		if k <= 0 || n > uint64(len(v)-k) {
			return lv, false
		}
		lv.text, v = v[k:k+int(n)], v[k+int(n):]
	case textInData:
		off, k1 := binary.Uvarint(v)
		if k1 <= 0 {
			return lv, false
		}
		n, k2 := binary.Uvarint(v[k1:])
		if k2 <= 0 || off > 1<<32 || n > 1<<32 {
			return lv, false
		}
		lv.inData, lv.textOff, lv.textLen = true, off, n
		v = v[k1+k2:]
	default:
		return lv, false
	}
	lv.data = v
	if !lv.packed && lv.inData && lv.textOff+lv.textLen > uint64(len(v)) {
		return lv, false
	}
	return lv, true
}

// appendData appends the entry's data, unpacked, to dst, and returns it
// and the text (a slice of what it appended, or of the stored value).
func (lv logValue) appendData(dst []byte, owner string) (out, text []byte, err error) {
	start := len(dst)
	if lv.packed {
		if dst, err = unpackXML(dst, lv.data, string(lv.with), owner); err != nil {
			return dst, nil, err
		}
	} else {
		dst = append(dst, lv.data...)
	}
	if !lv.inData {
		return dst, lv.text, nil
	}
	data := dst[start:]
	if lv.textOff+lv.textLen > uint64(len(data)) {
		return dst, nil, errPacked
	}
	return dst, data[lv.textOff : lv.textOff+lv.textLen], nil
}

// entryText returns the 'with' and the text of the stored entry v, both
// in v or in a new buffer.
func entryText(id LogID, owner string, v []byte) (with, text []byte, err error) {
	lv, err := parseLogValue(id, v)
	if err != nil {
		return nil, nil, err
	}
	if !lv.inData {
		return lv.with, lv.text, nil
	}
	if !lv.packed {
		return lv.with, lv.data[lv.textOff : lv.textOff+lv.textLen], nil
	}
	_, text, err = lv.appendData(nil, owner)
	return lv.with, text, err
}

// decodeLogValue is owner's entry stored as v, copied out of it.
func decodeLogValue(id LogID, owner string, v []byte) (LogEntry, error) {
	lv, err := parseLogValue(id, v)
	if err != nil {
		return LogEntry{}, err
	}
	data, text, err := lv.appendData(nil, owner)
	if err != nil {
		return LogEntry{}, fmt.Errorf("storage: log entry %s: %w", id, err)
	}
	return LogEntry{ID: id, Time: id.Time(), With: string(lv.with), Data: data, Text: string(text)}, nil
}

// withCache hands out one string per 'with' among the last few seen, so a
// page of a conversation or two does not copy the same JID per entry.
type withCache struct {
	s [8]string
	n int
}

func (c *withCache) intern(b []byte) string {
	for _, s := range c.s[:min(c.n, len(c.s))] {
		if string(b) == s {
			return s
		}
	}
	s := string(b)
	c.s[c.n%len(c.s)] = s
	c.n++
	return s
}

// ceilMillis is t in milliseconds since the epoch, rounded up, within [0, maxLogMillis+1].
func ceilMillis(t time.Time) int64 {
	ms := t.UnixMilli()
	if t.Nanosecond()%int(time.Millisecond) != 0 && t.UnixNano() > 0 {
		ms++
	}
	return min(max(ms, 0), maxLogMillis+1)
}

// Append implements Log. Concurrent Appends share commits (DB.batch): one
// fsync for many messages.
func (l *boltLog) Append(ctx context.Context, owner string, e LogEntry) (LogID, error) {
	if err := checkOwner(owner); err != nil {
		return 0, err
	}
	if err := checkJID("log 'with'", e.With); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	t := e.Time
	if t.IsZero() {
		t = l.now()
	}
	ms := t.UnixMilli()
	if ms > maxLogMillis {
		return 0, fmt.Errorf("storage: %s append: time %v out of range", l.bucket, t)
	}
	// Everything but the writes is done here, outside the single writer.
	want := LogID(max(ms, 0)) << 16
	ix := newEntryIndex(owner, e.With, e.Text)
	value := encodeLogValue(owner, e.With, e.Text, e.Data)
	high := logKey(owner, logHigh, 0)
	var id LogID
	// The batch may run fn more than once (when another fn of its batch
	// fails): every run starts again from what the transaction holds, and
	// id is the committed run's.
	err := l.db.batch(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(l.bucket)
		if err != nil {
			return err
		}
		id, err = appendIn(b, owner, high, want, value, ix)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("storage: %s append: %w", l.bucket, err)
	}
	return id, nil
}

// appendIn writes an entry (value, ix) of owner at the time of want or
// after the newest, in b's transaction, and returns its id. high is owner's
// high-water key.
func appendIn(b *bolt.Bucket, owner string, high []byte, want LogID, value []byte, ix entryIndex) (LogID, error) {
	// Entries go at the end of their owner's range: pages split full.
	b.FillPercent = appendFillPercent
	next := max(want, 1)
	if v := b.Get(high); len(v) == 8 {
		last := LogID(binary.BigEndian.Uint64(v))
		if last == math.MaxUint64 {
			return 0, errors.New("ids exhausted")
		}
		next = max(next, last+1)
	}
	if err := b.Put(entryKey(owner, next), value); err != nil {
		return 0, err
	}
	if err := ix.add(b, next); err != nil {
		return 0, err
	}
	if err := b.Put(high, binary.BigEndian.AppendUint64(nil, uint64(next))); err != nil {
		return 0, err
	}
	return next, nil
}

// appendFillPercent is the bucket's fill when Append splits a page: keys
// mostly arrive in order (an owner's ids, a list's last chunk), so the
// left page stays nearly full rather than bbolt's default half.
const appendFillPercent = 0.95

// entryIndex is the posting lists one entry belongs to: its 'with' and its
// pending words.
type entryIndex struct {
	owner   string
	lists   [][]byte
	hasText bool
}

func newEntryIndex(owner, with, text string) entryIndex {
	ix := entryIndex{owner: owner, hasText: text != ""}
	if with != "" {
		ix.lists = append(ix.lists, withPrefix(owner, with))
	}
	return ix
}

// The words of an entry are not indexed by its Append: each word's list
// lies elsewhere in the owner's part of the bucket, so a dozen words would
// dirty a dozen pages, for every message (the commit writes them all: four
// times the pages of the entry alone). Append adds the id to the owner's
// pending list (owner NUL 'r', next to the high-water key, whose page is
// written anyway), and every pendingMax appends the owner's pending
// entries are indexed together: their common words share chunks and
// pages. A text Query reads the pending entries (at most pendingMax) and
// matches their text itself. Pending ids are always newer than every
// indexed one (pending entries are indexed all at once, and Append only
// issues newer ids), so a query takes the indexed matches and then the
// pending ones, or the reverse going backward. The text is read from the
// entry when indexed, so a Replace of a pending entry changes nothing else.
//
// 128: measured with 400 writers, 32 wrote 3.9 pages per append and 128
// 3.0; a text query matches at most this many entries by reading them.
var pendingMax = 128 // a variable for the tests, which make it small

// pendingPrefix is the prefix of owner's pending list.
func pendingPrefix(owner string) []byte { return logKey(owner, logPending, 8) }

// add puts id in the entry's lists.
func (ix entryIndex) add(b *bolt.Bucket, id LogID) error {
	p := postings{b: b, ids: make([]LogID, 0, 64)}
	for _, list := range ix.lists {
		if err := p.add(list, id); err != nil {
			return err
		}
	}
	if !ix.hasText {
		return nil
	}
	pending := pendingPrefix(ix.owner)
	if err := p.add(pending, id); err != nil {
		return err
	}
	ids, err := readList(b, pending, nil)
	if err != nil || len(ids) < pendingMax {
		return err
	}
	return indexPending(b, &p, ix.owner, ids)
}

// readList appends the ids of list prefix to ids.
func readList(b *bolt.Bucket, prefix []byte, ids []LogID) ([]LogID, error) {
	c := b.Cursor()
	for k, v := c.Seek(prefix); ; k, v = c.Next() {
		first, ok := chunkFirst(prefix, k)
		if !ok {
			return ids, nil
		}
		var err error
		if ids, err = decodeChunk(ids, first, v); err != nil {
			return ids, err
		}
	}
}

// indexPending adds owner's pending entries (ids, ascending) to the lists
// of their words and empties the pending list.
func indexPending(b *bolt.Bucket, p *postings, owner string, ids []LogID) error {
	lists := make(map[string][]LogID)
	var words []string
	for _, id := range ids {
		v := b.Get(entryKey(owner, id))
		if v == nil {
			continue
		}
		_, text, err := entryText(id, owner, v)
		if err != nil {
			continue // indexed without its words: it cannot be read anyway
		}
		words = appendWords(words[:0], string(text))
		for _, w := range words {
			lists[w] = append(lists[w], id)
		}
	}
	for _, w := range slices.Sorted(maps.Keys(lists)) {
		prefix := wordPrefix(owner, w)
		for _, id := range lists[w] {
			if err := p.add(prefix, id); err != nil {
				return err
			}
		}
	}
	return p.remove(pendingPrefix(owner), ids)
}

// isPending reports whether owner's entry id waits to be indexed.
func isPending(b *bolt.Bucket, owner string, id LogID) bool {
	loads := 0
	pc := postCursor{c: b.Cursor(), prefix: pendingPrefix(owner), loads: &loads}
	return pc.ge(id) == id
}

// Get implements Log.
func (l *boltLog) Get(ctx context.Context, owner string, id LogID) (LogEntry, error) {
	if err := checkOwner(owner); err != nil {
		return LogEntry{}, err
	}
	var e LogEntry
	err := l.db.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(l.bucket)
		if b == nil {
			return ErrNotFound
		}
		v := b.Get(entryKey(owner, id))
		if v == nil {
			return ErrNotFound
		}
		var err error
		e, err = decodeLogValue(id, owner, v)
		return err
	})
	if err != nil {
		return LogEntry{}, fmt.Errorf("storage: %s get %s: %w", l.bucket, id, err)
	}
	return e, nil
}

// bounds turns q into the inclusive range of ids it selects; ok is false
// when the range is empty.
func (q LogQuery) bounds() (lo, hi LogID, ok bool) {
	lo, hi = 1, math.MaxUint64
	if q.After != 0 {
		if q.After == math.MaxUint64 {
			return 0, 0, false
		}
		lo = max(lo, q.After+1)
	}
	if !q.Start.IsZero() {
		ms := ceilMillis(q.Start)
		if ms > maxLogMillis {
			return 0, 0, false
		}
		lo = max(lo, LogID(ms)<<16)
	}
	if q.Before != 0 {
		hi = q.Before - 1
	}
	if !q.End.IsZero() {
		ms := q.End.UnixMilli() // an entry at End's millisecond is not after End
		if ms < 0 {
			return 0, 0, false
		}
		if ms < maxLogMillis {
			hi = min(hi, LogID(ms+1)<<16-1)
		}
	}
	return lo, hi, lo <= hi
}

// maxQueryLoads bounds the posting chunks one Query decodes (~1 µs each):
// a search whose words are each common but rarely together would
// otherwise walk their lists to the end. Past it the error wraps
// ErrBadQuery; a page of one or two words takes a few dozen.
const maxQueryLoads = 100_000

// queryWords checks q.Text and returns its words.
func queryWords(q LogQuery) ([]string, error) {
	if q.Text == "" {
		return nil, nil
	}
	if len(q.Text) > MaxLogText {
		return nil, fmt.Errorf("storage: full-text search of %d bytes, more than %d: %w", len(q.Text), MaxLogText, ErrBadQuery)
	}
	words := appendWords(nil, q.Text)
	if len(words) > MaxLogTextWords {
		return nil, fmt.Errorf("storage: full-text search of %d words, more than %d: %w", len(words), MaxLogTextWords, ErrBadQuery)
	}
	return words, nil
}

// Query implements Log.
func (l *boltLog) Query(ctx context.Context, owner string, q LogQuery) (LogPage, error) {
	if err := checkOwner(owner); err != nil {
		return LogPage{}, err
	}
	if err := checkJID("log 'with'", q.With); err != nil {
		return LogPage{}, err
	}
	words, err := queryWords(q)
	if err != nil {
		return LogPage{}, err
	}
	limit := q.Limit
	if limit <= 0 || limit > MaxLogPage {
		limit = MaxLogPage
	}
	page := LogPage{Complete: true}
	lo, hi, ok := q.bounds()
	if !ok {
		return page, ctx.Err()
	}
	// The posting lists the entries must all be in.
	var lists [][]byte
	if q.With != "" {
		lists = append(lists, withPrefix(owner, q.With))
	}
	for _, w := range words {
		lists = append(lists, wordPrefix(owner, w))
	}
	err = l.db.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(l.bucket)
		if b == nil {
			return nil
		}
		page.Entries = make([]LogEntry, 0, min(limit, 64))
		var withs withCache
		withs.intern([]byte(q.With))
		// The page's stored values, unpacked below into one buffer.
		values := make([]logValue, 0, cap(page.Entries))
		size := 0
		add := func(id LogID, v []byte) error {
			lv, err := parseLogValue(id, v)
			if err != nil {
				return err
			}
			size += len(lv.data)
			if lv.packed {
				size += len(lv.data) // about what packing saves
			}
			values = append(values, lv)
			page.Entries = append(page.Entries, LogEntry{ID: id, Time: id.Time(), With: withs.intern(lv.with)})
			return nil
		}
		var err error
		switch {
		case len(lists) == 0:
			page.Complete, err = l.scanEntries(b, owner, lo, hi, limit, q.Backward, add)
		case len(words) == 0:
			page.Complete, err = l.joinLists(b, owner, lists, lo, hi, limit, q.Backward, add)
		default:
			page.Complete, err = l.search(b, owner, lists, words, q.With, lo, hi, limit, q.Backward, add)
		}
		if err != nil {
			return err
		}
		// One copy out of the mmap for the whole page; each Data capped, so
		// that an append to one cannot overwrite the next.
		arena := make([]byte, 0, size)
		ends := make([]int, len(values))
		for i, lv := range values {
			var text []byte
			if arena, text, err = lv.appendData(arena, owner); err != nil {
				return fmt.Errorf("log entry %s: %w", page.Entries[i].ID, err)
			}
			if len(text) > 0 {
				page.Entries[i].Text = string(text)
			}
			ends[i] = len(arena)
		}
		start := 0
		for i, end := range ends {
			page.Entries[i].Data = arena[start:end:end]
			start = end
		}
		return nil
	})
	if err != nil {
		return LogPage{}, fmt.Errorf("storage: %s query: %w", l.bucket, err)
	}
	if q.Backward {
		slices.Reverse(page.Entries)
	}
	return page, nil
}

// scanEntries hands add the entries of owner in [lo, hi], at most limit,
// from the oldest or (backward) the newest, and reports whether no more
// matched.
func (l *boltLog) scanEntries(b *bolt.Bucket, owner string, lo, hi LogID, limit int, backward bool, add func(LogID, []byte) error) (complete bool, err error) {
	prefix := logKey(owner, logEntry, 8)
	c := b.Cursor()
	var k, v []byte
	step := c.Next
	if !backward {
		k, v = c.Seek(binary.BigEndian.AppendUint64(prefix, uint64(lo)))
	} else {
		// The last key at or before the upper bound.
		target := binary.BigEndian.AppendUint64(prefix, uint64(hi))
		k, v = c.Seek(target)
		switch {
		case k == nil:
			k, v = c.Last()
		case !bytes.Equal(k, target):
			k, v = c.Prev()
		}
		step = c.Prev
	}
	for n := 0; ; k, v = step() {
		if len(k) != len(prefix)+8 || !bytes.HasPrefix(k, prefix) {
			return true, nil
		}
		id := LogID(binary.BigEndian.Uint64(k[len(prefix):]))
		if id < lo || id > hi {
			return true, nil
		}
		if n == limit {
			return false, nil // one more matches
		}
		if err := add(id, v); err != nil {
			return false, err
		}
		n++
	}
}

// search is joinLists for a query with words: the indexed matches and the
// pending entries that match (all newer than any indexed one), in order.
func (l *boltLog) search(b *bolt.Bucket, owner string, lists [][]byte, words []string, with string, lo, hi LogID, limit int, backward bool, add func(LogID, []byte) error) (complete bool, err error) {
	type match struct {
		id LogID
		v  []byte
	}
	var pending []match
	ids, err := readList(b, pendingPrefix(owner), nil)
	if err != nil {
		return false, err
	}
	var scratch []byte // each pending entry's data, unpacked in turn
	for _, id := range ids {
		if id < lo || id > hi {
			continue
		}
		v := b.Get(entryKey(owner, id))
		if v == nil {
			continue
		}
		lv, err := parseLogValue(id, v)
		if err != nil {
			return false, err
		}
		if with != "" && string(lv.with) != with {
			continue
		}
		var text []byte
		if scratch, text, err = lv.appendData(scratch[:0], owner); err != nil {
			return false, err
		}
		if !hasWords(unsafeString(text), words) {
			continue
		}
		pending = append(pending, match{id, v})
	}
	n := 0
	if !backward {
		counted := func(id LogID, v []byte) error { n++; return add(id, v) }
		if complete, err = l.joinLists(b, owner, lists, lo, hi, limit, false, counted); err != nil || !complete {
			return complete, err
		}
		for _, m := range pending {
			if n == limit {
				return false, nil
			}
			if err := add(m.id, m.v); err != nil {
				return false, err
			}
			n++
		}
		return true, nil
	}
	for i := len(pending) - 1; i >= 0; i-- {
		if n == limit {
			return false, nil
		}
		if err := add(pending[i].id, pending[i].v); err != nil {
			return false, err
		}
		n++
	}
	// With no room left (limit-n is 0), joinLists still reports whether
	// an older match exists.
	return l.joinLists(b, owner, lists, lo, hi, limit-n, true, add)
}

// unsafeString is b as a string without a copy, for reading only while b
// is (a value in the mmap, during its transaction).
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// joinLists hands add the entries of owner in [lo, hi] that are in every
// one of lists, at most limit, from the oldest or (backward) the newest,
// and reports whether no more matched. It leapfrogs: the candidate is the
// largest (backward: smallest) id some list proposed, each list seeks to
// it in turn, and an id all of them agree on is a match.
func (l *boltLog) joinLists(b *bolt.Bucket, owner string, lists [][]byte, lo, hi LogID, limit int, backward bool, add func(LogID, []byte) error) (complete bool, err error) {
	loads := 0
	curs := make([]postCursor, len(lists))
	for i, prefix := range lists {
		curs[i] = postCursor{c: b.Cursor(), prefix: prefix, loads: &loads}
	}
	entries := b.Cursor()
	entry := logKey(owner, logEntry, 8)
	x := lo
	if backward {
		x = hi
	}
	for n := 0; ; {
		agree := 0
		for i := 0; agree < len(curs); i = (i + 1) % len(curs) {
			var y LogID
			if backward {
				y = curs[i].le(x)
			} else {
				y = curs[i].ge(x)
			}
			if err := curs[i].err; err != nil {
				return false, err
			}
			if y == 0 || y < lo || y > hi {
				return true, nil
			}
			if loads > maxQueryLoads {
				return false, fmt.Errorf("search reads more than %d index chunks: %w", maxQueryLoads, ErrBadQuery)
			}
			if y == x {
				agree++
			} else {
				x, agree = y, 1
			}
		}
		if n == limit {
			return false, nil
		}
		entry = binary.BigEndian.AppendUint64(entry[:len(owner)+2], uint64(x))
		if k, v := entries.Seek(entry); bytes.Equal(k, entry) { // else an index key without its entry; never written so
			if err := add(x, v); err != nil {
				return false, err
			}
			n++
		}
		if backward {
			if x == lo {
				return true, nil
			}
			x--
		} else {
			if x == hi {
				return true, nil
			}
			x++
		}
	}
}

// endOf is the first id not before t: ids below it are older than t.
// ok is false when no id is.
func endOf(t time.Time) (end LogID, ok bool) {
	ms := ceilMillis(t)
	if t.IsZero() || ms == 0 {
		return 0, false
	}
	if ms > maxLogMillis {
		return math.MaxUint64, true
	}
	return LogID(ms) << 16, true
}

// DeleteRange implements Log, in write transactions of at most deleteChunk
// entries each.
func (l *boltLog) DeleteRange(ctx context.Context, owner string, before time.Time) (int, error) {
	if err := checkOwner(owner); err != nil {
		return 0, err
	}
	end, ok := endOf(before)
	if !ok {
		return 0, ctx.Err()
	}
	total := 0
	for {
		n, more := 0, false
		err := l.db.update(ctx, func(tx *bolt.Tx) error {
			b := tx.Bucket(l.bucket)
			if b == nil {
				return nil
			}
			var err error
			n, more, err = expireOwner(b, []byte(owner), end, deleteChunk)
			return err
		})
		if err != nil {
			return total, fmt.Errorf("storage: %s delete range: %w", l.bucket, err)
		}
		total += n
		if !more {
			return total, nil
		}
	}
}

// defaultExpireMax is ExpireBefore's max when none is given: a few
// milliseconds of writing.
const defaultExpireMax = 2000

// ExpireBefore implements Log: one write transaction, visiting the owners
// in key order (a seek each, to the first key past the owner's) until max
// entries are removed.
func (l *boltLog) ExpireBefore(ctx context.Context, before time.Time, max int) (int, bool, error) {
	if max <= 0 {
		max = defaultExpireMax
	}
	end, ok := endOf(before)
	if !ok {
		return 0, false, ctx.Err()
	}
	n, more := 0, false
	err := l.db.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(l.bucket)
		if b == nil {
			return nil
		}
		k, _ := b.Cursor().First()
		for k != nil {
			i := bytes.IndexByte(k, 0)
			if i < 0 {
				// Not a Log key; none is written so. Step over it.
				k, _ = seekPast(b, k, nil)
				continue
			}
			owner := bytes.Clone(k[:i])
			m, stopped, err := expireOwner(b, owner, end, max-n)
			if err != nil {
				return err
			}
			n += m
			if stopped {
				more = true
				return nil
			}
			// Past every key of owner: owner NUL ... < owner 0x01.
			k, _ = seekPast(b, owner, []byte{1})
		}
		return nil
	})
	if err != nil {
		return 0, false, fmt.Errorf("storage: %s expire: %w", l.bucket, err)
	}
	return n, more, nil
}

// seekPast returns the first key at or after k+suffix (k itself when
// suffix is nil and k is present: then the key after it).
func seekPast(b *bolt.Bucket, k, suffix []byte) ([]byte, []byte) {
	c := b.Cursor()
	if suffix == nil {
		target := append(bytes.Clone(k), 0)
		return c.Seek(target)
	}
	return c.Seek(append(bytes.Clone(k), suffix...))
}

// expireOwner removes owner's entries with ids below end, at most max of
// them, with their index entries, in b's transaction. stopped is true when
// it stopped at max with more such entries left.
func expireOwner(b *bolt.Bucket, owner []byte, end LogID, max int) (n int, stopped bool, err error) {
	prefix := logKey(string(owner), logEntry, 8)
	var doomed [][]byte
	lists := make(map[string][]LogID) // list prefix -> ids to remove, ascending
	var words []string
	c := b.Cursor()
	for k, v := c.Seek(prefix); ; k, v = c.Next() {
		if len(k) != len(prefix)+8 || !bytes.HasPrefix(k, prefix) {
			break
		}
		id := LogID(binary.BigEndian.Uint64(k[len(prefix):]))
		if id >= end {
			break
		}
		if len(doomed) == max {
			stopped = true
			break
		}
		doomed = append(doomed, bytes.Clone(k))
		with, text, err := entryText(id, string(owner), v)
		if err != nil {
			continue // delete what cannot be read, without its index keys
		}
		if len(with) > 0 {
			l := string(withPrefix(string(owner), string(with)))
			lists[l] = append(lists[l], id)
		}
		if len(text) > 0 {
			// In the pending list or in its words' lists.
			l := string(pendingPrefix(string(owner)))
			lists[l] = append(lists[l], id)
			words = appendWords(words[:0], string(text))
			for _, w := range words {
				l := string(wordPrefix(string(owner), w))
				lists[l] = append(lists[l], id)
			}
		}
	}
	for _, k := range doomed {
		if err := b.Delete(k); err != nil {
			return 0, false, err
		}
	}
	p := postings{b: b}
	// In key order, so that the index pages are visited in order.
	for _, l := range slices.Sorted(maps.Keys(lists)) {
		if err := p.remove([]byte(l), lists[l]); err != nil {
			return 0, false, err
		}
	}
	return len(doomed), stopped, nil
}

// Replace implements Log.
func (l *boltLog) Replace(ctx context.Context, owner string, id LogID, e LogEntry) error {
	if err := checkOwner(owner); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	newWords := appendWords(nil, e.Text)
	err := l.db.batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(l.bucket)
		if b == nil {
			return ErrNotFound
		}
		key := entryKey(owner, id)
		v := b.Get(key)
		if v == nil {
			return ErrNotFound
		}
		with, text, err := entryText(id, owner, v)
		if err != nil {
			return err
		}
		value := encodeLogValue(owner, string(with), e.Text, e.Data)
		if err := b.Put(key, value); err != nil {
			return err
		}
		p := postings{b: b}
		if isPending(b, owner, id) {
			// Its words are read when it is indexed; one without text
			// any more is then indexed under none. (An entry that had no
			// text was never pending: it is indexed below, not made
			// pending, since pending ids must stay newer than indexed ones.)
			return nil
		}
		oldWords := appendWords(nil, string(text))
		for _, w := range oldWords {
			if _, found := slices.BinarySearch(newWords, w); !found {
				if err := p.remove(wordPrefix(owner, w), []LogID{id}); err != nil {
					return err
				}
			}
		}
		for _, w := range newWords {
			if _, found := slices.BinarySearch(oldWords, w); !found {
				if err := p.add(wordPrefix(owner, w), id); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage: %s replace %s: %w", l.bucket, id, err)
	}
	return nil
}

// DeleteOwner implements Log, in write transactions of at most deleteChunk
// keys each.
func (l *boltLog) DeleteOwner(ctx context.Context, owner string) error {
	if err := checkOwner(owner); err != nil {
		return err
	}
	prefix := append([]byte(owner), 0)
	_, err := l.deleteChunks(ctx, "delete owner", owner, func(b *bolt.Bucket) (doomed [][]byte) {
		c := b.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(doomed) < deleteChunk; k, _ = c.Next() {
			doomed = append(doomed, bytes.Clone(k))
		}
		return doomed
	})
	return err
}

// deleteChunks deletes what collect picks from the bucket (at most about
// deleteChunk keys of owner's), one write transaction per pick, until a
// pick comes short of deleteChunk. It reports how many of the deleted keys
// were entries (not index keys or the high-water mark).
func (l *boltLog) deleteChunks(ctx context.Context, op, owner string, collect func(b *bolt.Bucket) [][]byte) (int, error) {
	total := 0
	for {
		n, more := 0, false
		err := l.db.update(ctx, func(tx *bolt.Tx) error {
			b := tx.Bucket(l.bucket)
			if b == nil {
				return nil
			}
			doomed := collect(b)
			for _, k := range doomed {
				if k[len(owner)+1] == logEntry {
					n++
				}
				if err := b.Delete(k); err != nil {
					return err
				}
			}
			more = len(doomed) >= deleteChunk
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("storage: %s %s: %w", l.bucket, op, err)
		}
		total += n
		if !more {
			return total, nil
		}
	}
}
