package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/xmppd/xmppd/storage"
)

// item is one entry of a Queue as List hands it out.
type item struct {
	seq   uint64
	value string
}

func list(t *testing.T, q storage.Queue, domain, local string) []item {
	t.Helper()
	var out []item
	must(t, q.List(ctx, domain, local, func(seq uint64, v []byte) error {
		out = append(out, item{seq, string(v)})
		return nil
	}))
	return out
}

func values(items []item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.value
	}
	return out
}

// Queue checks a storage.Queue.
func Queue(t *testing.T, open Opener[storage.Queue]) {
	t.Run("AppendListDelete", func(t *testing.T) {
		q, _ := open(t)
		var seqs []uint64
		for i := range 5 {
			seq, err := q.Append(ctx, "example.com", "alice", fmt.Appendf(nil, "m%d", i), 0)
			must(t, err)
			if len(seqs) > 0 && seq <= seqs[len(seqs)-1] {
				t.Fatalf("seq %d after %d", seq, seqs[len(seqs)-1])
			}
			seqs = append(seqs, seq)
		}
		// Users whose names share a prefix with alice's.
		for _, u := range [][2]string{{"example.com", "alic"}, {"example.co", "alice"}, {"example.community", "alice"}} {
			_, err := q.Append(ctx, u[0], u[1], []byte("other"), 0)
			must(t, err)
		}
		got := list(t, q, "example.com", "alice")
		if fmt.Sprint(values(got)) != "[m0 m1 m2 m3 m4]" {
			t.Fatalf("List = %q", values(got))
		}
		for i, it := range got {
			if it.seq != seqs[i] {
				t.Errorf("item %d: seq %d, Append said %d", i, it.seq, seqs[i])
			}
		}
		if n, err := q.Count(ctx, "example.com", "alice"); n != 5 || err != nil {
			t.Errorf("Count = %d, %v", n, err)
		}
		stop := errors.New("stop")
		calls := 0
		err := q.List(ctx, "example.com", "alice", func(uint64, []byte) error { calls++; return stop })
		if !errors.Is(err, stop) || calls != 1 {
			t.Errorf("List stopped by its callback: %v after %d calls", err, calls)
		}
		must(t, q.DeleteThrough(ctx, "example.com", "alice", seqs[2]))
		if got := values(list(t, q, "example.com", "alice")); fmt.Sprint(got) != "[m3 m4]" {
			t.Errorf("after DeleteThrough: %q", got)
		}
		must(t, q.DeleteThrough(ctx, "example.com", "alice", seqs[4]))
		if n, _ := q.Count(ctx, "example.com", "alice"); n != 0 {
			t.Errorf("after deleting all: %d left", n)
		}
		// Numbers are never reused.
		seq, err := q.Append(ctx, "example.com", "alice", []byte("m5"), 0)
		must(t, err)
		if seq <= seqs[4] {
			t.Errorf("a new item got %d, not after the deleted %d", seq, seqs[4])
		}
		for _, u := range [][2]string{{"example.com", "alic"}, {"example.co", "alice"}, {"example.community", "alice"}} {
			if got := values(list(t, q, u[0], u[1])); fmt.Sprint(got) != "[other]" {
				t.Errorf("%s@%s: %q", u[1], u[0], got)
			}
		}
		if n, _ := q.Count(ctx, "example.com", "nobody"); n != 0 {
			t.Errorf("Count of nobody = %d", n)
		}
	})

	t.Run("Full", func(t *testing.T) {
		q, _ := open(t)
		for i := range 3 {
			_, err := q.Append(ctx, "example.com", "alice", fmt.Appendf(nil, "m%d", i), 3)
			must(t, err)
		}
		_, err := q.Append(ctx, "example.com", "alice", []byte("m3"), 3)
		wantErr(t, "Append past max", err, storage.ErrFull)
		if got := values(list(t, q, "example.com", "alice")); fmt.Sprint(got) != "[m0 m1 m2]" {
			t.Errorf("a full queue changed: %q", got)
		}
		// Another user's limit is their own; max 0 is no limit.
		_, err = q.Append(ctx, "example.com", "bob", []byte("b"), 3)
		must(t, err)
		_, err = q.Append(ctx, "example.com", "alice", []byte("m3"), 0)
		must(t, err)
	})

	t.Run("Concurrent", func(t *testing.T) {
		q, _ := open(t)
		var wg sync.WaitGroup
		const workers, each, max = 8, 10, 50
		for range workers {
			wg.Go(func() {
				for range each {
					_, err := q.Append(ctx, "example.com", "alice", []byte("m"), max)
					if err != nil && !errors.Is(err, storage.ErrFull) {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		if n, _ := q.Count(ctx, "example.com", "alice"); n != max {
			t.Errorf("%d items after %d appends to a queue of %d", n, workers*each, max)
		}
	})

	t.Run("Reopen", func(t *testing.T) {
		q, reopen := open(t)
		if reopen == nil {
			t.Skip("the backend cannot reopen")
		}
		last, err := q.Append(ctx, "example.com", "alice", []byte("m0"), 0)
		must(t, err)
		must(t, q.DeleteThrough(ctx, "example.com", "alice", last))
		_, err = q.Append(ctx, "example.com", "alice", []byte("m1"), 0)
		must(t, err)
		q = reopen()
		got := list(t, q, "example.com", "alice")
		if fmt.Sprint(values(got)) != "[m1]" {
			t.Fatalf("after reopening: %q", values(got))
		}
		seq, err := q.Append(ctx, "example.com", "alice", []byte("m2"), 0)
		must(t, err)
		if seq <= got[0].seq {
			t.Errorf("after reopening, seq %d, not after %d", seq, got[0].seq)
		}
	})

	t.Run("Context", func(t *testing.T) {
		q, _ := open(t)
		c := cancelled()
		_, err := q.Append(c, "example.com", "alice", []byte("m"), 0)
		wantErr(t, "Append", err, context.Canceled)
		_, err = q.Count(c, "example.com", "alice")
		wantErr(t, "Count", err, context.Canceled)
		wantErr(t, "List", q.List(c, "example.com", "alice", func(uint64, []byte) error { return nil }), context.Canceled)
		wantErr(t, "DeleteThrough", q.DeleteThrough(c, "example.com", "alice", 1), context.Canceled)
	})
}
