package storage

import (
	"context"
	"errors"
	"testing"
)

// TestFastTokens: tokens are per account and client, end with a password
// change, cannot be issued on a proof of the old password, and go with the
// account: an account made again under the same name (even with the same
// credentials) does not find them.
func TestFastTokens(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	creds := mustDerive(t, "pw")
	if err := db.CreateUser(ctx, "example.org", "alice", creds); err != nil {
		t.Fatal(err)
	}
	tok := &FastToken{Secret: "s1", Mechanism: "HT-SHA-256-NONE", Issued: 1, Expires: 2}
	issue := func(t *FastTokens) { t.Next = tok }
	if err := db.UpdateFastTokens(ctx, "example.org", "alice", "phone", creds.Tag(), issue); err != nil {
		t.Fatal(err)
	}
	get := func(local, client string) FastTokens {
		t.Helper()
		ts, err := db.FastTokens(ctx, "example.org", local, client)
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	if ts := get("alice", "phone"); ts.Next == nil || *ts.Next != *tok || ts.Current != nil {
		t.Fatalf("issued: %+v", ts)
	}
	if ts := get("alice", "laptop"); !ts.empty() {
		t.Errorf("another client sees %+v", ts)
	}
	if ts := get("bob", "phone"); !ts.empty() {
		t.Errorf("another account sees %+v", ts)
	}

	// A change that leaves nothing deletes the record.
	if err := db.UpdateFastTokens(ctx, "example.org", "alice", "phone", creds.Tag(), func(t *FastTokens) { t.Next = nil }); err != nil {
		t.Fatal(err)
	}
	if ts := get("alice", "phone"); !ts.empty() {
		t.Errorf("after dropping the only token: %+v", ts)
	}

	// Password change.
	if err := db.UpdateFastTokens(ctx, "example.org", "alice", "phone", creds.Tag(), issue); err != nil {
		t.Fatal(err)
	}
	newCreds := mustDerive(t, "pw2")
	if err := db.SetCredentials(ctx, "example.org", "alice", newCreds); err != nil {
		t.Fatal(err)
	}
	if ts := get("alice", "phone"); !ts.empty() {
		t.Errorf("after a password change: %+v", ts)
	}
	if err := db.UpdateFastTokens(ctx, "example.org", "alice", "phone", creds.Tag(), issue); !errors.Is(err, ErrCredentialsChanged) {
		t.Errorf("issue on the old password's proof: %v", err)
	}
	// Issued under the new password, the old record is replaced, not merged.
	if err := db.UpdateFastTokens(ctx, "example.org", "alice", "phone", newCreds.Tag(), func(t *FastTokens) {}); err != nil {
		t.Fatal(err)
	}
	if ts := get("alice", "phone"); !ts.empty() {
		t.Errorf("a change under the new password kept the old tokens: %+v", ts)
	}

	// The account goes, the tokens with it.
	if err := db.UpdateFastTokens(ctx, "example.org", "alice", "phone", newCreds.Tag(), issue); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteUser(ctx, "example.org", "alice"); err != nil {
		t.Fatal(err)
	}
	if ts := get("alice", "phone"); !ts.empty() {
		t.Errorf("after deleting the account: %+v", ts)
	}
	if err := db.UpdateFastTokens(ctx, "example.org", "alice", "phone", newCreds.Tag(), issue); !errors.Is(err, ErrCredentialsChanged) {
		t.Errorf("issue for a deleted account: %v", err)
	}
	if err := db.CreateUser(ctx, "example.org", "alice", newCreds); err != nil {
		t.Fatal(err)
	}
	if ts := get("alice", "phone"); !ts.empty() {
		t.Errorf("the account made again finds %+v", ts)
	}
}
