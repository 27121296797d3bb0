package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/xmppd/xmppd/storage"
)

// asciiWords is the model's idea of the words of text, for the ASCII texts
// of the paging tests: runs of letters and digits, lower-cased. (Folding
// beyond ASCII is checked case by case in logTextFolding.)
func asciiWords(text string) []string {
	return strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
}

// hasWords reports whether text holds every word of query.
func hasWords(text, query string) bool {
	have := asciiWords(text)
	for _, w := range asciiWords(query) {
		found := false
		for _, h := range have {
			if h == w {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// fillText appends n entries like fill, with texts: every second holds
// "alpha" (in varied case), every third "beta", every fifth "gamma", and
// each its own "word<i>"; the data is the text inside a body element, or,
// for every seventh, something else entirely (the text is then not part of
// the data).
func fillText(t *testing.T, l storage.Log, owner string, n int, withs ...string) *model {
	t.Helper()
	m := &model{owner: owner}
	for i := range n {
		var ws []string
		if i%2 == 0 {
			ws = append(ws, []string{"alpha", "Alpha", "ALPHA!"}[i%3])
		}
		if i%3 == 0 {
			ws = append(ws, "beta,")
		}
		if i%5 == 0 {
			ws = append(ws, "(gamma)")
		}
		ws = append(ws, fmt.Sprintf("word%d", i))
		text := strings.Join(ws, " ")
		e := storage.LogEntry{Time: base.Add(time.Duration(i/2) * time.Second), Text: text, Data: []byte("<body>" + text + "</body>")}
		if i%7 == 3 {
			e.Data = fmt.Appendf(nil, "%d", i)
		}
		if len(withs) > 0 {
			e.With = withs[i%len(withs)]
		}
		m.add(t, l, e)
	}
	return m
}

// logText: full-text search alone and with the other filters, paged both
// ways, per owner.
func logText(t *testing.T, open Opener[storage.Log]) {
	l, _ := open(t)
	withs := []string{"bob@example.com", "carol@example.com", ""}
	m := fillText(t, l, "alice@example.com", 60, withs...)
	other := fillText(t, l, "alice@example.co", 30, withs...)
	// Entries of another owner with words alice's never hold.
	for i := range 5 {
		other.add(t, l, storage.LogEntry{Time: base.Add(time.Duration(i) * time.Second), Text: "delta alpha", Data: []byte("x")})
	}
	mid := m.entries[30].ID
	tests := []storage.LogQuery{
		{Text: "alpha"},
		{Text: "ALPHA"},
		{Text: "alpha beta"},
		{Text: "Beta, (GAMMA)"},
		{Text: "alpha beta gamma"},
		{Text: "gamma gamma gamma"},
		{Text: "word7"},
		{Text: "word7 alpha"}, // word7's entry has no alpha
		{Text: "word8 alpha"},
		{Text: "delta"},   // another owner's word
		{Text: "alp"},     // whole words only
		{Text: "nothere"}, // no such word
		{Text: "alpha", With: "bob@example.com"},
		{Text: "beta gamma", With: "carol@example.com"},
		{Text: "alpha", After: mid},
		{Text: "beta", Before: mid},
		{Text: "alpha", After: m.entries[5].ID, Before: m.entries[50].ID},
		{Text: "alpha", Start: base.Add(5 * time.Second), End: base.Add(20 * time.Second)},
		{Text: "beta", With: "bob@example.com", Start: base.Add(3 * time.Second), Before: m.entries[55].ID},
		{Text: "?!"}, // no words: no text filter
	}
	for _, q := range tests {
		want := m.match(q)
		if q.Text == "delta" {
			want = nil
		}
		for _, limit := range []int{1, 4, 100} {
			checkEntries(t, fmt.Sprintf("%+v limit %d", q, limit), walk(t, l, m.owner, q, limit), want)
			qb := q
			qb.Backward = true
			checkEntries(t, fmt.Sprintf("%+v backward, limit %d", q, limit), walk(t, l, m.owner, qb, limit), want)
		}
	}
	checkEntries(t, "the other owner's delta", walk(t, l, other.owner, storage.LogQuery{Text: "delta"}, 2), other.entries[30:])
	checkEntries(t, "the other owner's alpha", walk(t, l, other.owner, storage.LogQuery{Text: "alpha"}, 2), other.match(storage.LogQuery{Text: "alpha"}))
	// Get returns the text too.
	for _, e := range m.entries[:8] {
		got, err := l.Get(ctx, m.owner, e.ID)
		must(t, err)
		if d := sameEntry(got, e); d != "" {
			t.Errorf("Get: %s", d)
		}
	}
}

// logTextFolding: words match across case, accents, compatibility forms
// and scripts; CJK by character.
func logTextFolding(t *testing.T, open Opener[storage.Log]) {
	tests := []struct {
		text, query string
		match       bool
	}{
		{"Crème Brûlée for two", "creme brulee", true},
		{"creme brulee", "CRÈME", true},
		{"naïve café", "naive cafe", true},
		{"Привет, мир!", "ПРИВЕТ", true},
		{"Ёлка", "елка", true},
		{"Οδυσσεύς", "ΟΔΥΣΣΕΥΣ", true},
		{"ﬁle ＡＢＣ", "file abc", true},
		{"東京に行きます", "東京", true},
		{"東京に行きます", "京都", false},
		{"서울에서", "서울", true},
		{"don't stop", "stop", true},
		{"mail alice@example.com now", "example", true},
		{"catalog", "cat", false},
		{"cat", "catalog", false},
		{"straße", "strasse", false}, // folding is per rune, not full case folding
		{"", "anything", false},
	}
	for i, tt := range tests {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			l, _ := open(t)
			const owner = "alice@example.com"
			id, err := l.Append(ctx, owner, storage.LogEntry{Time: base, Text: tt.text, Data: []byte("x")})
			must(t, err)
			// A second entry that matches nothing, so a match is not "everything".
			_, err = l.Append(ctx, owner, storage.LogEntry{Time: base, Text: "unrelated", Data: []byte("y")})
			must(t, err)
			p, err := l.Query(ctx, owner, storage.LogQuery{Text: tt.query})
			must(t, err)
			got := len(p.Entries) == 1 && p.Entries[0].ID == id
			if got != tt.match || (!tt.match && len(p.Entries) != 0) {
				t.Errorf("text %q, query %q: %s, want match %v", tt.text, tt.query, idList(p.Entries), tt.match)
			}
		})
	}
}

// logTextLimits: an oversized search is refused, quickly, with ErrBadQuery.
func logTextLimits(t *testing.T, open Opener[storage.Log]) {
	l, _ := open(t)
	const owner = "alice@example.com"
	fillText(t, l, owner, 10)
	many := func(n int) string {
		ws := make([]string, n)
		for i := range ws {
			ws[i] = fmt.Sprintf("w%d", i)
		}
		return strings.Join(ws, " ")
	}
	tests := []struct {
		name string
		text string
		ok   bool
	}{
		{"1 MB", strings.Repeat("alpha ", 1<<20/6), false},
		{"one byte too many", strings.Repeat(" ", storage.MaxLogText-5) + "alpha!", false},
		{"the longest", strings.Repeat(" ", storage.MaxLogText-5) + "alpha", true},
		{"too many words", many(storage.MaxLogTextWords + 1), false},
		{"the most words", many(storage.MaxLogTextWords), true},
		{"the same word many times", strings.Repeat("alpha ", 100), true},
	}
	for _, tt := range tests {
		start := time.Now()
		_, err := l.Query(ctx, owner, storage.LogQuery{Text: tt.text})
		if tt.ok {
			must(t, err)
			continue
		}
		wantErr(t, tt.name, err, storage.ErrBadQuery)
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s: refused after %v", tt.name, d)
		}
	}
}

// logReplace: Replace changes data and text in place and the search
// follows; id, time and with stay.
func logReplace(t *testing.T, open Opener[storage.Log]) {
	// An old entry and the newest: a backend may index them differently
	// (bbolt indexes the words of the newest few in bulk, later).
	for _, i := range []int{4, 38} {
		t.Run(fmt.Sprint(i), func(t *testing.T) { logReplaceOne(t, open, i) })
	}
}

func logReplaceOne(t *testing.T, open Opener[storage.Log], i int) {
	l, _ := open(t)
	m := fillText(t, l, "alice@example.com", 40, "bob@example.com", "")
	other := fillText(t, l, "bob@example.com", 12)
	target := &m.entries[i] // "alpha beta word<i>"
	word := fmt.Sprintf("word%d", i)
	must(t, l.Replace(ctx, m.owner, target.ID, storage.LogEntry{
		ID: 1, Time: base.Add(time.Hour), With: "mallory@example.com", // ignored
		Text: "retracted tombstone alpha", Data: []byte("<retracted/>"),
	}))
	target.Text, target.Data = "retracted tombstone alpha", []byte("<retracted/>")
	got, err := l.Get(ctx, m.owner, target.ID)
	must(t, err)
	if d := sameEntry(got, *target); d != "" {
		t.Errorf("after Replace, Get: %s", d)
	}
	for _, q := range []storage.LogQuery{{Text: "tombstone"}, {Text: "beta"}, {Text: word}, {Text: "alpha"}, {Text: "retracted", With: "bob@example.com"}, {}} {
		checkEntries(t, fmt.Sprintf("after Replace, %+v", q), walk(t, l, m.owner, q, 2), m.match(q))
		checkEntries(t, fmt.Sprintf("after Replace, %+v backward", q), walk(t, l, m.owner, storage.LogQuery{Text: q.Text, With: q.With, Backward: true}, 2), m.match(q))
	}
	// To no text at all, and back.
	must(t, l.Replace(ctx, m.owner, target.ID, storage.LogEntry{Data: []byte("<gone/>")}))
	target.Text, target.Data = "", []byte("<gone/>")
	checkEntries(t, "text removed", walk(t, l, m.owner, storage.LogQuery{Text: "tombstone"}, 2), nil)
	must(t, l.Replace(ctx, m.owner, target.ID, storage.LogEntry{Text: word + " again", Data: []byte("<body>" + word + " again</body>")}))
	target.Text, target.Data = word+" again", []byte("<body>"+word+" again</body>")
	checkEntries(t, "text back", walk(t, l, m.owner, storage.LogQuery{Text: word}, 2), []storage.LogEntry{*target})
	checkEntries(t, "text back, backward", walk(t, l, m.owner, storage.LogQuery{Text: "again", Backward: true}, 1), []storage.LogEntry{*target})
	// No such entry, here or for another owner.
	wantErr(t, "Replace of an absent id", l.Replace(ctx, m.owner, target.ID+0x100, storage.LogEntry{Data: []byte("x")}), storage.ErrNotFound)
	wantErr(t, "Replace of another owner's id", l.Replace(ctx, "carol@example.com", target.ID, storage.LogEntry{Data: []byte("x")}), storage.ErrNotFound)
	wantErr(t, "Replace with a cancelled context", l.Replace(cancelled(), m.owner, target.ID, storage.LogEntry{Data: []byte("x")}), context.Canceled)
	checkEntries(t, "everything, after", walk(t, l, m.owner, storage.LogQuery{}, 5), m.entries)
	checkEntries(t, "the other owner's, after", walk(t, l, other.owner, storage.LogQuery{Text: "beta"}, 5), other.match(storage.LogQuery{Text: "beta"}))
}

// logExpire: ExpireBefore removes the old entries of every owner, at most
// max per call, and the searches forget them.
func logExpire(t *testing.T, open Opener[storage.Log]) {
	l, _ := open(t)
	owners := []string{"a@example.com", "a@example.co", "b@example.com", "room@conference.example.com"}
	models := map[string]*model{}
	for i, o := range owners {
		models[o] = fillText(t, l, o, 10+3*i, "x@example.com", "")
	}
	if n, more, err := l.ExpireBefore(ctx, time.Time{}, 3); n != 0 || more || err != nil {
		t.Errorf("ExpireBefore(zero) = %d, %v, %v", n, more, err)
	}
	if _, _, err := l.ExpireBefore(cancelled(), base.Add(time.Hour), 3); !errors.Is(err, context.Canceled) {
		t.Errorf("ExpireBefore(cancelled): %v", err)
	}
	cut := base.Add(4 * time.Second) // entries 0..7 of each owner go
	want := 0
	for _, o := range owners {
		want += len(models[o].match(storage.LogQuery{End: cut.Add(-time.Millisecond)}))
	}
	total, calls := 0, 0
	for {
		n, more, err := l.ExpireBefore(ctx, cut, 3)
		must(t, err)
		if n > 3 {
			t.Fatalf("ExpireBefore(max 3) removed %d", n)
		}
		total += n
		calls++
		if !more {
			break
		}
		if calls > 100 {
			t.Fatal("ExpireBefore: more forever")
		}
	}
	if total != want || calls < want/3 {
		t.Errorf("ExpireBefore removed %d in %d calls, want %d", total, calls, want)
	}
	if n, more, err := l.ExpireBefore(ctx, cut, 0); n != 0 || more || err != nil {
		t.Errorf("ExpireBefore again = %d, %v, %v", n, more, err)
	}
	for _, o := range owners {
		m := models[o]
		m.entries = m.match(storage.LogQuery{Start: cut})
		for _, q := range []storage.LogQuery{{}, {Text: "alpha"}, {Text: "word1"}, {Text: "word9"}, {Text: "beta", With: "x@example.com"}, {With: "x@example.com"}} {
			checkEntries(t, fmt.Sprintf("%s after expiry, %+v", o, q), walk(t, l, o, q, 2), m.match(q))
			q.Backward = true
			checkEntries(t, fmt.Sprintf("%s after expiry, %+v", o, q), walk(t, l, o, q, 2), m.match(q))
		}
	}
}

// logTextAfterDeleteOwner: an owner deleted and begun again (its ids start
// over, so they can be the old ones) finds none of its old words.
func logTextAfterDeleteOwner(t *testing.T, open Opener[storage.Log]) {
	l, _ := open(t)
	const owner = "alice@example.com"
	fillText(t, l, owner, 10, "bob@example.com")
	must(t, l.DeleteOwner(ctx, owner))
	m := &model{owner: owner}
	for i := range 10 {
		m.add(t, l, storage.LogEntry{Time: base.Add(time.Duration(i/2) * time.Second), Text: "new", Data: []byte("new")})
	}
	for _, q := range []storage.LogQuery{{Text: "alpha"}, {Text: "word3"}, {With: "bob@example.com"}, {Text: "new"}} {
		checkEntries(t, fmt.Sprintf("%+v", q), walk(t, l, owner, q, 3), m.match(q))
	}
}
