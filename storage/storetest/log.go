package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmppd/xmppd/storage"
)

// base is the time of the first entry the Log tests append.
var base = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

// Log checks a storage.Log.
func Log(t *testing.T, open Opener[storage.Log]) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open Opener[storage.Log])
	}{
		{"AppendGet", logAppendGet},
		{"IDs", logIDs},
		{"Invalid", logInvalid},
		{"Paging", logPaging},
		{"Limit", logLimit},
		{"DeleteRange", logDeleteRange},
		{"DeleteOwner", logDeleteOwner},
		{"Owners", logOwners},
		{"Reopen", logReopen},
		{"Concurrent", logConcurrent},
		{"Context", logContext},
		{"Text", logText},
		{"TextFolding", logTextFolding},
		{"TextLimits", logTextLimits},
		{"Replace", logReplace},
		{"Expire", logExpire},
		{"TextAfterDeleteOwner", logTextAfterDeleteOwner},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open) })
	}
}

// model is what a test appended, in order, for checking answers.
type model struct {
	owner   string
	entries []storage.LogEntry // with the ids Append returned
}

// add appends e and records it.
func (m *model) add(t *testing.T, l storage.Log, e storage.LogEntry) storage.LogID {
	t.Helper()
	id, err := l.Append(ctx, m.owner, e)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	n := len(m.entries)
	if n > 0 && id <= m.entries[n-1].ID {
		t.Fatalf("Append returned %s after %s: ids must grow", id, m.entries[n-1].ID)
	}
	// The id carries the time given, unless that is before the owner's
	// newest (then it carries a later one).
	given := e.Time.Truncate(time.Millisecond)
	switch {
	case e.Time.IsZero():
	case n == 0 || !e.Time.Before(m.entries[n-1].Time):
		if !id.Time().Equal(given) {
			t.Fatalf("Append at %v returned %s, which carries %v", e.Time, id, id.Time())
		}
	case id.Time().Before(given):
		t.Fatalf("Append at %v returned %s, which carries the earlier %v", e.Time, id, id.Time())
	}
	e.ID, e.Time = id, id.Time()
	m.entries = append(m.entries, e)
	return id
}

// fill appends n entries: entry i at base + i/2 seconds (so every two share
// a timestamp), with the JID withs[i%len(withs)] and data "i".
func fill(t *testing.T, l storage.Log, owner string, n int, withs ...string) *model {
	t.Helper()
	m := &model{owner: owner}
	for i := range n {
		e := storage.LogEntry{Time: base.Add(time.Duration(i/2) * time.Second), Data: fmt.Appendf(nil, "%d", i)}
		if len(withs) > 0 {
			e.With = withs[i%len(withs)]
		}
		m.add(t, l, e)
	}
	return m
}

// match is what q selects of m (ignoring Limit and Backward), in order.
func (m *model) match(q storage.LogQuery) []storage.LogEntry {
	var out []storage.LogEntry
	for _, e := range m.entries {
		switch {
		case q.After != 0 && e.ID <= q.After,
			q.Before != 0 && e.ID >= q.Before,
			!q.Start.IsZero() && e.Time.Before(q.Start),
			!q.End.IsZero() && e.Time.After(q.End),
			q.With != "" && e.With != q.With,
			!hasWords(e.Text, q.Text):
			continue
		}
		out = append(out, e)
	}
	return out
}

// sameEntry reports how got differs from want, or "".
func sameEntry(got, want storage.LogEntry) string {
	switch {
	case got.ID != want.ID:
		return fmt.Sprintf("id %s, want %s", got.ID, want.ID)
	case !got.Time.Equal(want.Time.Truncate(time.Millisecond)):
		return fmt.Sprintf("%s: time %v, want %v", got.ID, got.Time, want.Time)
	case !got.Time.Equal(got.ID.Time()):
		return fmt.Sprintf("%s: time %v, but the id says %v", got.ID, got.Time, got.ID.Time())
	case got.With != want.With:
		return fmt.Sprintf("%s: with %q, want %q", got.ID, got.With, want.With)
	case !bytes.Equal(got.Data, want.Data):
		return fmt.Sprintf("%s: data %q, want %q", got.ID, got.Data, want.Data)
	case got.Text != want.Text:
		return fmt.Sprintf("%s: text %q, want %q", got.ID, got.Text, want.Text)
	}
	return ""
}

func checkEntries(t *testing.T, what string, got, want []storage.LogEntry) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d entries %s, want %d %s", what, len(got), idList(got), len(want), idList(want))
		return
	}
	for i := range got {
		if d := sameEntry(got[i], want[i]); d != "" {
			t.Errorf("%s: entry %d: %s", what, i, d)
		}
	}
}

func idList(es []storage.LogEntry) string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = string(e.Data)
	}
	return "[" + strings.Join(s, " ") + "]"
}

// walk pages through q forward (After moving on) or backward (Before
// moving back), checking every page's size and Complete, and returns the
// entries in order, oldest first.
func walk(t *testing.T, l storage.Log, owner string, q storage.LogQuery, limit int) []storage.LogEntry {
	t.Helper()
	q.Limit = limit
	var pages [][]storage.LogEntry
	for range 1000 {
		p, err := l.Query(ctx, owner, q)
		if err != nil {
			t.Fatalf("Query(%+v): %v", q, err)
		}
		if len(p.Entries) > limit {
			t.Fatalf("Query(%+v): %d entries, more than the limit", q, len(p.Entries))
		}
		if !p.Complete && len(p.Entries) < limit {
			t.Fatalf("Query(%+v): a short page (%d) not complete", q, len(p.Entries))
		}
		for i := 1; i < len(p.Entries); i++ {
			if p.Entries[i].ID <= p.Entries[i-1].ID {
				t.Fatalf("Query(%+v): page not oldest first: %s", q, idList(p.Entries))
			}
		}
		pages = append(pages, p.Entries)
		if p.Complete {
			break
		}
		if len(p.Entries) == 0 {
			t.Fatalf("Query(%+v): an empty page not complete", q)
		}
		if q.Backward {
			q.Before = p.Entries[0].ID
		} else {
			q.After = p.Entries[len(p.Entries)-1].ID
		}
	}
	if q.Backward {
		slices.Reverse(pages)
	}
	var all []storage.LogEntry
	for _, p := range pages {
		all = append(all, p...)
	}
	return all
}

func logAppendGet(t *testing.T, open Opener[storage.Log]) {
	l, _ := open(t)
	m := &model{owner: "alice@example.com"}
	entries := []storage.LogEntry{
		{Time: base, With: "bob@example.com", Data: []byte("<message/>")},
		{Time: base.Add(1500 * time.Microsecond), With: "", Data: nil},
		{Time: base.Add(time.Hour), With: "room@conference.example.com/nick", Data: bytes.Repeat([]byte("x"), 100_000)},
		{Time: base.Add(time.Hour), ID: 12345, Data: []byte("ID is ignored")},
	}
	for _, e := range entries {
		m.add(t, l, e)
	}
	for _, want := range m.entries {
		got, err := l.Get(ctx, m.owner, want.ID)
		if err != nil {
			t.Fatalf("Get(%s): %v", want.ID, err)
		}
		if d := sameEntry(got, want); d != "" {
			t.Error(d)
		}
		if got.Time.Location() != time.UTC {
			t.Errorf("Get(%s): time in %v, want UTC", want.ID, got.Time.Location())
		}
		if len(got.Data) > 0 {
			got.Data[0] ^= 0xff // a copy, not the store's memory
			again, _ := l.Get(ctx, m.owner, want.ID)
			if d := sameEntry(again, want); d != "" {
				t.Errorf("after changing what Get returned: %s", d)
			}
		}
		parsed, err := storage.ParseLogID(want.ID.String())
		if err != nil || parsed != want.ID {
			t.Errorf("ParseLogID(%q) = %s, %v", want.ID.String(), parsed, err)
		}
	}
	// The string forms sort as the ids do.
	for i := 1; i < len(m.entries); i++ {
		if m.entries[i-1].ID.String() >= m.entries[i].ID.String() {
			t.Errorf("%q sorts after %q", m.entries[i-1].ID.String(), m.entries[i].ID.String())
		}
	}
	last := m.entries[len(m.entries)-1].ID
	for _, tt := range []struct {
		owner string
		id    storage.LogID
	}{
		{m.owner, last + 1},
		{m.owner, 0},
		{"bob@example.com", m.entries[0].ID},
	} {
		_, err := l.Get(ctx, tt.owner, tt.id)
		wantErr(t, fmt.Sprintf("Get(%s, %s)", tt.owner, tt.id), err, storage.ErrNotFound)
	}
	for _, s := range []string{"", "0", "0000000000000000", "zzzzzzzzzzzzzzzz", strings.ToUpper(last.String()), last.String() + "0"} {
		if _, err := storage.ParseLogID(s); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("ParseLogID(%q): %v, want ErrNotFound", s, err)
		}
	}
}

// logIDs: ids are time-ordered and never go back, whatever the times given.
func logIDs(t *testing.T, open Opener[storage.Log]) {
	l, _ := open(t)
	m := &model{owner: "alice@example.com"}
	t1 := base.Add(10 * time.Second)
	id1 := m.add(t, l, storage.LogEntry{Time: t1})
	if !id1.Time().Equal(t1) {
		t.Errorf("id %s carries %v, want %v", id1, id1.Time(), t1)
	}
	// Equal times: distinct ids in order, the same time.
	id2 := m.add(t, l, storage.LogEntry{Time: t1})
	// A clock that stepped back: the id still grows, the time stays at the newest.
	id3 := m.add(t, l, storage.LogEntry{Time: t1.Add(-time.Hour)})
	for _, id := range []storage.LogID{id2, id3} {
		e, err := l.Get(ctx, m.owner, id)
		must(t, err)
		if !e.Time.Equal(t1) {
			t.Errorf("entry %s at %v, want %v", id, e.Time, t1)
		}
	}
	// Before the epoch: still after the newest.
	m.add(t, l, storage.LogEntry{Time: time.Unix(-5, 0)})
	// A later time moves on.
	t2 := t1.Add(time.Millisecond)
	if id := m.add(t, l, storage.LogEntry{Time: t2}); !id.Time().Equal(t2) {
		t.Errorf("after a clock step back, a later time: %v, want %v", id.Time(), t2)
	}

	// Zero time: now, by the backend's clock (ordering only: no margins).
	other := &model{owner: "bob@example.com"}
	before := time.Now().Truncate(time.Millisecond)
	id := other.add(t, l, storage.LogEntry{})
	after := time.Now()
	if got := id.Time(); got.Before(before) || got.After(after) {
		t.Errorf("an entry appended between %v and %v has time %v", before, after, got)
	}
	// Ids are per owner: another owner's may be smaller than this owner's.
	if _, err := l.Get(ctx, m.owner, id); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("bob's id found in alice's log: %v", err)
	}
}

func logInvalid(t *testing.T, open Opener[storage.Log]) {
	l, _ := open(t)
	long := strings.Repeat("a", storage.MaxJIDLen+1)
	appends := []struct {
		name  string
		owner string
		e     storage.LogEntry
	}{
		{"empty owner", "", storage.LogEntry{}},
		{"NUL in owner", "a\x00b@example.com", storage.LogEntry{}},
		{"long owner", long, storage.LogEntry{}},
		{"NUL in with", "alice@example.com", storage.LogEntry{With: "b\x00@example.com"}},
		{"long with", "alice@example.com", storage.LogEntry{With: long}},
	}
	for _, tt := range appends {
		if id, err := l.Append(ctx, tt.owner, tt.e); err == nil {
			t.Errorf("%s: Append succeeded with id %s", tt.name, id)
		}
	}
	if _, err := l.Query(ctx, "", storage.LogQuery{}); err == nil {
		t.Error("Query with an empty owner succeeded")
	}
	if _, err := l.Query(ctx, "alice@example.com", storage.LogQuery{With: "a\x00"}); err == nil {
		t.Error("Query with NUL in With succeeded")
	}
	// Nothing was stored by the refused calls.
	p, err := l.Query(ctx, "alice@example.com", storage.LogQuery{})
	must(t, err)
	if len(p.Entries) != 0 || !p.Complete {
		t.Errorf("after refused appends: %s complete=%v", idList(p.Entries), p.Complete)
	}
	// The largest owner and with are fine.
	longest := strings.Repeat("a", storage.MaxJIDLen)
	id, err := l.Append(ctx, longest, storage.LogEntry{Time: base, With: longest})
	must(t, err)
	e, err := l.Get(ctx, longest, id)
	must(t, err)
	if e.With != longest {
		t.Errorf("long with read back as %d bytes", len(e.With))
	}
}

// logPaging walks every query of a table forward and backward, page by
// page, and compares with what the model selects.
func logPaging(t *testing.T, open Opener[storage.Log]) {
	l, _ := open(t)
	withs := []string{"a@example.com", "b@example.com", "a@example.com", "c@example.com", ""}
	m := fill(t, l, "alice@example.com", 23, withs...)
	// Noise: another owner's entries, at the same times, with the same withs.
	fill(t, l, "alice@example.com.evil", 23, withs...)
	fill(t, l, "alicf@example.com", 7, withs...)
	id := func(i int) storage.LogID { return m.entries[i].ID }
	at := func(i int) time.Time { return m.entries[i].Time } // entries 2k and 2k+1 share a time
	tests := []struct {
		name   string
		q      storage.LogQuery
		limits []int
	}{
		{"all", storage.LogQuery{}, []int{1, 2, 5, 22, 23, 24, 0}},
		{"with a", storage.LogQuery{With: "a@example.com"}, []int{1, 3, 10}},
		{"with c", storage.LogQuery{With: "c@example.com"}, []int{1, 4, 5}},
		{"with nobody", storage.LogQuery{With: "z@example.com"}, []int{1, 5}},
		{"after", storage.LogQuery{After: id(3)}, []int{1, 4, 19, 20}},
		{"before", storage.LogQuery{Before: id(10)}, []int{1, 4, 10}},
		{"after and before", storage.LogQuery{After: id(3), Before: id(10)}, []int{1, 2, 6, 7}},
		{"after the last", storage.LogQuery{After: id(22)}, []int{1, 5}},
		{"before the first", storage.LogQuery{Before: id(0)}, []int{1, 5}},
		{"after an id not stored", storage.LogQuery{After: id(3) + 1}, []int{4}},
		{"start", storage.LogQuery{Start: at(5)}, []int{1, 3, 5}},
		{"end", storage.LogQuery{End: at(5)}, []int{1, 3, 5}},
		{"start and end, equal times", storage.LogQuery{Start: at(6), End: at(6)}, []int{1, 2, 3}},
		{"start and end", storage.LogQuery{Start: at(4), End: at(15)}, []int{1, 4, 12}},
		{"start just after a time", storage.LogQuery{Start: at(4).Add(time.Nanosecond)}, []int{3}},
		{"end just before a time", storage.LogQuery{End: at(4).Add(-time.Nanosecond)}, []int{3}},
		{"end inside the millisecond", storage.LogQuery{End: at(4).Add(999 * time.Microsecond)}, []int{3}},
		{"start after all", storage.LogQuery{Start: at(22).Add(time.Millisecond)}, []int{1, 5}},
		{"end before all", storage.LogQuery{End: at(0).Add(-time.Millisecond)}, []int{1, 5}},
		{"end before start", storage.LogQuery{Start: at(10), End: at(5)}, []int{5}},
		{"before the epoch", storage.LogQuery{End: time.Unix(-1, 0)}, []int{5}},
		{"far future", storage.LogQuery{Start: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)}, []int{5}},
		{"with, time and ids", storage.LogQuery{With: "a@example.com", Start: at(2), End: at(20), After: id(4), Before: id(20)}, []int{1, 2, 3}},
	}
	for _, tt := range tests {
		want := m.match(tt.q)
		for _, limit := range tt.limits {
			for _, backward := range []bool{false, true} {
				name := fmt.Sprintf("%s, limit %d", tt.name, limit)
				if backward {
					name += ", backward"
				}
				t.Run(name, func(t *testing.T) {
					q := tt.q
					q.Backward = backward
					page := limit
					if page <= 0 {
						page = storage.MaxLogPage
					}
					checkEntries(t, "walk", walk(t, l, m.owner, q, page), want)
					// The first page alone, with the limit as given.
					q.Limit = limit
					p, err := l.Query(ctx, m.owner, q)
					must(t, err)
					first := want
					if len(first) > page {
						if backward {
							first = first[len(first)-page:]
						} else {
							first = first[:page]
						}
					}
					checkEntries(t, "first page", p.Entries, first)
					if p.Complete != (len(want) <= page) {
						t.Errorf("first page complete=%v, %d of %d entries", p.Complete, len(p.Entries), len(want))
					}
				})
			}
		}
	}
}

// logLimit: no page is longer than MaxLogPage, however many entries match.
func logLimit(t *testing.T, open Opener[storage.Log]) {
	l, _ := open(t)
	const owner = "alice@example.com"
	n := storage.MaxLogPage + 20
	appendConcurrently(t, l, owner, 10, n/10, "bob@example.com")
	for _, limit := range []int{0, -1, storage.MaxLogPage, storage.MaxLogPage + 1, 1 << 30} {
		p, err := l.Query(ctx, owner, storage.LogQuery{Limit: limit})
		must(t, err)
		if len(p.Entries) != storage.MaxLogPage || p.Complete {
			t.Errorf("limit %d: %d entries, complete=%v; want %d, not complete", limit, len(p.Entries), p.Complete, storage.MaxLogPage)
		}
	}
	all := walk(t, l, owner, storage.LogQuery{With: "bob@example.com"}, storage.MaxLogPage)
	if len(all) != n {
		t.Errorf("walked %d entries, want %d", len(all), n)
	}
}

// appendConcurrently appends perWorker entries (time: now) from each of
// workers goroutines and returns the ids.
func appendConcurrently(t *testing.T, l storage.Log, owner string, workers, perWorker int, with string) []storage.LogID {
	t.Helper()
	ids := make([][]storage.LogID, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				id, err := l.Append(ctx, owner, storage.LogEntry{With: with, Data: fmt.Appendf(nil, "%d/%d", w, i)})
				if err != nil {
					t.Error(err)
					return
				}
				ids[w] = append(ids[w], id)
			}
		})
	}
	wg.Wait()
	return slices.Concat(ids...)
}

func logDeleteRange(t *testing.T, open Opener[storage.Log]) {
	l, _ := open(t)
	withs := []string{"a@example.com", "", "b@example.com"}
	m := fill(t, l, "alice@example.com", 12, withs...)
	other := fill(t, l, "bob@example.com", 12, withs...)
	tests := []struct {
		before time.Time
		want   int // entries of m left
	}{
		{time.Time{}, 12},
		{base.Add(-time.Second), 12},
		{base.Add(time.Second), 10},                         // removes the two at base
		{base.Add(2 * time.Second).Add(time.Nanosecond), 6}, // and those at base+1s, base+2s
		{base.Add(2 * time.Second), 6},                      // nothing more
		{base.Add(4*time.Second + 999*time.Microsecond), 2},
		{base.Add(time.Hour), 0},
	}
	left := m.entries
	for _, tt := range tests {
		n, err := l.DeleteRange(ctx, m.owner, tt.before)
		must(t, err)
		if removed := len(left) - tt.want; n != removed {
			t.Errorf("DeleteRange(%v) = %d, want %d", tt.before, n, removed)
		}
		left = left[len(left)-tt.want:]
		for _, e := range left {
			if e.Time.Before(tt.before) {
				t.Fatalf("test table: %s at %v kept by DeleteRange(%v)", e.Data, e.Time, tt.before)
			}
		}
		checkEntries(t, fmt.Sprintf("after DeleteRange(%v)", tt.before), walk(t, l, m.owner, storage.LogQuery{}, 5), left)
		for _, w := range withs[:1] {
			mq := &model{owner: m.owner, entries: left}
			checkEntries(t, "with "+w, walk(t, l, m.owner, storage.LogQuery{With: w}, 2), mq.match(storage.LogQuery{With: w}))
			checkEntries(t, "with "+w+" backward", walk(t, l, m.owner, storage.LogQuery{With: w, Backward: true}, 2), mq.match(storage.LogQuery{With: w}))
		}
	}
	for _, e := range m.entries {
		if _, err := l.Get(ctx, m.owner, e.ID); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("deleted entry %s: Get: %v", e.ID, err)
		}
	}
	checkEntries(t, "the other owner's", walk(t, l, other.owner, storage.LogQuery{}, 5), other.entries)
	// Ids go on growing after the newest was deleted, even with an old time.
	last := m.entries[len(m.entries)-1].ID
	if id := m.add(t, l, storage.LogEntry{Time: base}); id <= last {
		t.Errorf("after deleting everything, id %s <= the last %s", id, last)
	}
}

func logDeleteOwner(t *testing.T, open Opener[storage.Log]) {
	l, _ := open(t)
	owners := []string{"alice@example.com", "alice@example.co", "alice@example.community", "alic@example.com"}
	models := map[string]*model{}
	for _, o := range owners {
		models[o] = fill(t, l, o, 5, "bob@example.com", "")
	}
	must(t, l.DeleteOwner(ctx, owners[0]))
	must(t, l.DeleteOwner(ctx, "nobody@example.com"))
	for _, q := range []storage.LogQuery{{}, {With: "bob@example.com"}} {
		p, err := l.Query(ctx, owners[0], q)
		must(t, err)
		if len(p.Entries) != 0 || !p.Complete {
			t.Errorf("deleted owner, query %+v: %s complete=%v", q, idList(p.Entries), p.Complete)
		}
	}
	for _, o := range owners[1:] {
		checkEntries(t, o, walk(t, l, o, storage.LogQuery{}, 3), models[o].entries)
		checkEntries(t, o+" with bob", walk(t, l, o, storage.LogQuery{With: "bob@example.com"}, 3), models[o].match(storage.LogQuery{With: "bob@example.com"}))
	}
	// The deleted owner can start again.
	again := &model{owner: owners[0]}
	again.add(t, l, storage.LogEntry{Time: base, With: "bob@example.com", Data: []byte("new")})
	checkEntries(t, "a new log", walk(t, l, owners[0], storage.LogQuery{With: "bob@example.com"}, 3), again.entries)
}

// logOwners: owners whose names share a prefix see only their own entries.
func logOwners(t *testing.T, open Opener[storage.Log]) {
	l, _ := open(t)
	owners := []string{"a@example.com", "a@example.co", "a@example.com.au", "aa@example.com", "room@conference.example.com"}
	models := map[string]*model{}
	for i, o := range owners {
		models[o] = fill(t, l, o, 3+i, "x@example.com", "y@example.com")
	}
	for _, o := range owners {
		for _, q := range []storage.LogQuery{{}, {With: "x@example.com"}, {Backward: true}, {With: "y@example.com", Backward: true}} {
			checkEntries(t, fmt.Sprintf("%s %+v", o, q), walk(t, l, o, q, 2), models[o].match(q))
		}
	}
}

func logReopen(t *testing.T, open Opener[storage.Log]) {
	l, reopen := open(t)
	if reopen == nil {
		t.Skip("the backend cannot reopen")
	}
	m := fill(t, l, "alice@example.com", 5, "bob@example.com")
	l = reopen()
	checkEntries(t, "after reopening", walk(t, l, m.owner, storage.LogQuery{}, 2), m.entries)
	checkEntries(t, "with, after reopening", walk(t, l, m.owner, storage.LogQuery{With: "bob@example.com"}, 2), m.entries)
	// Ids keep growing across a restart, even with an older time.
	m.add(t, l, storage.LogEntry{Time: base})
	must(t, func() error { _, err := l.DeleteRange(ctx, m.owner, base.Add(time.Hour)); return err }())
	l = reopen()
	m.add(t, l, storage.LogEntry{Time: base})
	checkEntries(t, "after delete, reopen and append", walk(t, l, m.owner, storage.LogQuery{}, 2), m.entries[len(m.entries)-1:])
}

// logConcurrent: appends from many goroutines, to one owner and to several,
// get unique ids, and a query returns each once, in order.
func logConcurrent(t *testing.T, open Opener[storage.Log]) {
	l, _ := open(t)
	var wg sync.WaitGroup
	got := map[string][]storage.LogID{}
	var mu sync.Mutex
	for _, o := range []string{"alice@example.com", "bob@example.com", "carol@example.com"} {
		wg.Go(func() {
			ids := appendConcurrently(t, l, o, 8, 15, "dave@example.com")
			mu.Lock()
			got[o] = ids
			mu.Unlock()
		})
	}
	wg.Wait()
	for o, ids := range got {
		slices.Sort(ids)
		if len(slices.Compact(slices.Clone(ids))) != len(ids) {
			t.Errorf("%s: duplicate ids", o)
		}
		all := walk(t, l, o, storage.LogQuery{}, 50)
		if len(all) != len(ids) {
			t.Fatalf("%s: %d entries, %d appended", o, len(all), len(ids))
		}
		for i, e := range all {
			if e.ID != ids[i] {
				t.Fatalf("%s: entry %d is %s, want %s", o, i, e.ID, ids[i])
			}
			if i > 0 && e.Time.Before(all[i-1].Time) {
				t.Errorf("%s: entry %d at %v, before the previous %v", o, i, e.Time, all[i-1].Time)
			}
		}
		withs := walk(t, l, o, storage.LogQuery{With: "dave@example.com", Backward: true}, 50)
		checkEntries(t, o+" with dave", withs, all)
	}
}

func logContext(t *testing.T, open Opener[storage.Log]) {
	l, _ := open(t)
	const owner = "alice@example.com"
	id, err := l.Append(ctx, owner, storage.LogEntry{Time: base})
	must(t, err)
	c := cancelled()
	_, err = l.Append(c, owner, storage.LogEntry{Time: base})
	wantErr(t, "Append", err, context.Canceled)
	_, err = l.Get(c, owner, id)
	wantErr(t, "Get", err, context.Canceled)
	_, err = l.Query(c, owner, storage.LogQuery{})
	wantErr(t, "Query", err, context.Canceled)
	_, err = l.DeleteRange(c, owner, base.Add(time.Hour))
	wantErr(t, "DeleteRange", err, context.Canceled)
	wantErr(t, "DeleteOwner", l.DeleteOwner(c, owner), context.Canceled)
	// Nothing changed.
	p, err := l.Query(ctx, owner, storage.LogQuery{})
	must(t, err)
	if len(p.Entries) != 1 || p.Entries[0].ID != id {
		t.Errorf("after cancelled calls: %s", idList(p.Entries))
	}
}
