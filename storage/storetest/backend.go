package storetest

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/xmppd/xmppd/storage"
)

// creds makes valid credentials without the cost of PBKDF2.
func creds(tag byte) storage.Credentials {
	key := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = tag + byte(i)
		}
		return b
	}
	return storage.Credentials{
		Salt: []byte{tag, 1, 2, 3}, Iterations: storage.DefaultIterations,
		SHA1:   storage.Keys{StoredKey: key(sha1.Size), ServerKey: key(sha1.Size)},
		SHA256: storage.Keys{StoredKey: key(sha256.Size), ServerKey: key(sha256.Size)},
	}
}

// Backend checks a storage.Backend as a whole: its accounts, and that
// deleting an account deletes the user's data in every store, and only theirs.
func Backend(t *testing.T, open BackendOpener) {
	t.Run("Accounts", func(t *testing.T) {
		b := open(t)
		c1, c2 := creds(1), creds(2)
		steps := []struct {
			name string
			op   func() error
			want error
		}{
			{"create alice", func() error { return b.CreateUser(ctx, "example.com", "alice", c1) }, nil},
			{"create alice again", func() error { return b.CreateUser(ctx, "example.com", "alice", c2) }, storage.ErrUserExists},
			{"alice of another domain", func() error { return b.CreateUser(ctx, "example.org", "alice", c1) }, nil},
			{"create bob", func() error { return b.CreateUser(ctx, "example.com", "bob", c1) }, nil},
			{"change alice's", func() error { return b.SetCredentials(ctx, "example.com", "alice", c2) }, nil},
			{"change nobody's", func() error { return b.SetCredentials(ctx, "example.com", "zed", c2) }, storage.ErrNoSuchUser},
			{"delete bob", func() error { return b.DeleteUser(ctx, "example.com", "bob") }, nil},
			{"delete bob again", func() error { return b.DeleteUser(ctx, "example.com", "bob") }, storage.ErrNoSuchUser},
		}
		for _, s := range steps {
			if err := s.op(); !errors.Is(err, s.want) || (s.want == nil && err != nil) {
				t.Fatalf("%s: %v, want %v", s.name, err, s.want)
			}
		}
		got, err := b.UserCredentials(ctx, "example.com", "alice")
		must(t, err)
		if !reflect.DeepEqual(got, c2) {
			t.Errorf("credentials read back as %+v, want %+v", got, c2)
		}
		_, err = b.UserCredentials(ctx, "example.com", "bob")
		wantErr(t, "credentials of a deleted user", err, storage.ErrNoSuchUser)
		for _, tt := range []struct {
			domain, local string
			want          bool
		}{{"example.com", "alice", true}, {"example.com", "bob", false}, {"example.net", "alice", false}} {
			if ok, err := b.UserExists(ctx, tt.domain, tt.local); ok != tt.want || err != nil {
				t.Errorf("UserExists(%s@%s) = %v, %v", tt.local, tt.domain, ok, err)
			}
		}
		for domain, want := range map[string][]string{
			"example.com": {"alice@example.com"},
			"example.net": {},
			"":            {"alice@example.com", "alice@example.org"},
		} {
			got, err := b.ListUsers(ctx, domain)
			must(t, err)
			if fmt.Sprint(got) != fmt.Sprint(want) || got == nil {
				t.Errorf("ListUsers(%q) = %q, want %q", domain, got, want)
			}
		}
		_, err = b.UserExists(cancelled(), "example.com", "alice")
		wantErr(t, "UserExists", err, context.Canceled)
	})

	t.Run("DeleteUser", func(t *testing.T) {
		b := open(t)
		users := [][2]string{{"example.com", "a"}, {"example.com", "aa"}, {"example.co", "a"}, {"example.community", "a"}}
		for _, u := range users {
			must(t, b.CreateUser(ctx, u[0], u[1], creds(1)))
		}
		kv, q, l := b.KeyValue("roster"), b.Queue("offline"), b.Log("archive")
		keys := []struct {
			key  string
			gone bool
		}{
			{"a@example.com", true},
			{"a@example.com\x00contact", true},
			{"a@example.com/phone", true},
			{"a@example.community", false},
			{"a@example.co\x00x", false},
			{"aa@example.com\x00x", false},
			{"b@example.com\x00a@example.com", false}, // about a, but b's
		}
		for _, k := range keys {
			must(t, kv.Put(ctx, []byte(k.key), []byte("v")))
		}
		ids := map[string]storage.LogID{}
		for _, u := range users {
			_, err := q.Append(ctx, u[0], u[1], []byte("offline"), 0)
			must(t, err)
			owner := u[1] + "@" + u[0]
			ids[owner], err = l.Append(ctx, owner, storage.LogEntry{Time: base, With: "b@example.com", Data: []byte("archived")})
			must(t, err)
		}

		must(t, b.DeleteUser(ctx, "example.com", "a"))

		for _, k := range keys {
			v, err := kv.Get(ctx, []byte(k.key))
			must(t, err)
			if (v == nil) != k.gone {
				t.Errorf("key %q: gone=%v, want %v", k.key, v == nil, k.gone)
			}
		}
		for _, u := range users {
			owner := u[1] + "@" + u[0]
			gone := owner == "a@example.com"
			if n, _ := q.Count(ctx, u[0], u[1]); (n == 0) != gone {
				t.Errorf("%s: %d queued, gone=%v", owner, n, gone)
			}
			_, err := l.Get(ctx, owner, ids[owner])
			if errors.Is(err, storage.ErrNotFound) != gone || (!gone && err != nil) {
				t.Errorf("%s: log entry: %v, gone=%v", owner, err, gone)
			}
			for _, lq := range []storage.LogQuery{{}, {With: "b@example.com"}} {
				p, err := l.Query(ctx, owner, lq)
				must(t, err)
				if (len(p.Entries) == 0) != gone {
					t.Errorf("%s: query %+v: %d entries, gone=%v", owner, lq, len(p.Entries), gone)
				}
			}
		}
		// An account made again under the name starts empty.
		must(t, b.CreateUser(ctx, "example.com", "a", creds(2)))
		p, err := l.Query(ctx, "a@example.com", storage.LogQuery{})
		must(t, err)
		if len(p.Entries) != 0 {
			t.Errorf("the new account has %d log entries", len(p.Entries))
		}
		if _, err := l.Append(ctx, "a@example.com", storage.LogEntry{Time: base.Add(-time.Hour)}); err != nil {
			t.Error(err)
		}
	})
}
