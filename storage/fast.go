package storage

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// FAST tokens (XEP-0484) are kept per account and per client (the SASL2
// <user-agent id/>), in the KeyValue bucket "fast" under
// UserKeyPrefix(domain, local) + hex(SHA-256(client id)), so DeleteUser
// removes them with the account. Each record also carries the tag of the
// credentials the client had proved when the token was issued: a password
// change makes every older token useless, with no race between the change
// and a login that was issuing a token at the time.

// FastToken is one issued token. Times are Unix seconds.
type FastToken struct {
	Secret    string `json:"s"`
	Mechanism string `json:"m"`
	Issued    int64  `json:"i"`
	Expires   int64  `json:"e"`
}

// FastTokens are a client's tokens: Current is the one it last logged in
// with, Next one issued since and not used yet (the client may not have
// received it, so Current stays valid until Next is used).
type FastTokens struct {
	Current *FastToken `json:"cur,omitempty"`
	Next    *FastToken `json:"new,omitempty"`
	// Creds is the tag (Credentials.Tag) of the password the tokens were
	// issued under.
	Creds []byte `json:"c,omitempty"`
}

func (t FastTokens) empty() bool { return t.Current == nil && t.Next == nil }

// ErrCredentialsChanged: the account's password changed (or the account is
// gone) since the client proved it; no token is issued on that proof.
var ErrCredentialsChanged = errors.New("storage: credentials changed")

var bucketFast = []byte(kvPrefix + "fast")

// Tag identifies this version of the credentials without revealing them:
// it changes with every password change (new salt and keys).
func (c Credentials) Tag() []byte {
	h := sha256.New()
	h.Write([]byte("xmppd credentials tag\x00"))
	h.Write(c.Salt)
	h.Write(c.SHA1.StoredKey)
	h.Write(c.SHA256.StoredKey)
	return h.Sum(nil)[:16]
}

func fastKey(domain, local, clientID string) []byte {
	id := sha256.Sum256([]byte(clientID))
	return hex.AppendEncode(UserKeyPrefix(domain, local), id[:])
}

// currentTag is the tag of the account's credentials in tx, or nil when
// there is no such account.
func currentTag(tx *bolt.Tx, domain, local string) ([]byte, error) {
	key, err := accountKey(domain, local)
	if err != nil {
		return nil, err
	}
	v := tx.Bucket(bucketAccounts).Get(key)
	if v == nil {
		return nil, nil
	}
	c, err := decodeCredentials(v)
	if err != nil {
		return nil, err
	}
	return c.Tag(), nil
}

// FastTokens returns the client's tokens that are still valid for the
// account's current password: none (and no error) when there are none, the
// account does not exist or its password changed since they were issued.
func (db *DB) FastTokens(ctx context.Context, domain, local, clientID string) (FastTokens, error) {
	var t FastTokens
	err := db.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketFast)
		if b == nil {
			return nil
		}
		v := b.Get(fastKey(domain, local, clientID))
		if v == nil {
			return nil
		}
		if err := json.Unmarshal(v, &t); err != nil {
			return fmt.Errorf("decode: %w", err)
		}
		tag, err := currentTag(tx, domain, local)
		if err != nil {
			return err
		}
		if tag == nil || subtle.ConstantTimeCompare(tag, t.Creds) != 1 {
			t = FastTokens{}
		}
		return nil
	})
	if err != nil {
		return FastTokens{}, fmt.Errorf("storage: FAST tokens of %s@%s: %w", local, domain, err)
	}
	return t, nil
}

// UpdateFastTokens changes the client's tokens with change, in a write
// that concurrent logins share (DB.batch: one commit for many; change
// may run more than once, so it must only set what it is given). creds is
// the tag of the credentials the client proved in this login: when the
// account's differ now, nothing is written and the error is
// ErrCredentialsChanged. Tokens kept from before a password change are
// dropped first; a record left empty is deleted.
func (db *DB) UpdateFastTokens(ctx context.Context, domain, local, clientID string, creds []byte, change func(*FastTokens)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	key := fastKey(domain, local, clientID)
	err := db.batch(func(tx *bolt.Tx) error {
		tag, err := currentTag(tx, domain, local)
		if err != nil {
			return err
		}
		if tag == nil || subtle.ConstantTimeCompare(tag, creds) != 1 {
			return ErrCredentialsChanged
		}
		b, err := tx.CreateBucketIfNotExists(bucketFast)
		if err != nil {
			return err
		}
		var t FastTokens
		if v := b.Get(key); v != nil {
			if err := json.Unmarshal(v, &t); err != nil {
				return fmt.Errorf("decode: %w", err)
			}
		}
		if subtle.ConstantTimeCompare(t.Creds, tag) != 1 {
			t = FastTokens{}
		}
		change(&t)
		if t.empty() {
			return b.Delete(key)
		}
		t.Creds = tag
		v, err := json.Marshal(t)
		if err != nil {
			return err
		}
		return b.Put(key, v)
	})
	if err != nil {
		return fmt.Errorf("storage: FAST tokens of %s@%s: %w", local, domain, err)
	}
	return nil
}
