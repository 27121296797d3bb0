// Package storage is xmppd's persistent state: one bbolt file holding
// accounts (SCRAM credentials only) and the named stores modules use
// (KeyValue, Queue, Log). stores.go declares the interfaces; the bbolt DB
// implements them, and later backends implement the same ones.
//
// Callers pass already-normalised identifiers (PRECIS UsernameCaseMapped
// localparts, lowercase domains); this package only stores bytes and does
// not normalise again, so that every lookup is an exact-key lookup.
package storage

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1" // #nosec G505 -- SCRAM-SHA-1 is still what many clients use.
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"golang.org/x/text/secure/precis"
)

var (
	// ErrLocked is returned (wrapped) by Open when another process holds the
	// database's file lock, typically a running xmppd.
	ErrLocked = errors.New("database is locked by another process")
	// ErrUserExists is returned by CreateUser for an existing account.
	ErrUserExists = errors.New("user already exists")
	// ErrNoSuchUser is returned for operations on an absent account.
	ErrNoSuchUser = errors.New("no such user")
)

const (
	// schemaVersion is the on-disk layout this code reads and writes. Bump it
	// (and add a migration in Open) whenever the layout changes incompatibly.
	schemaVersion uint32 = 1

	// DefaultIterations is the PBKDF2 iteration count used when a caller does
	// not choose one; 4096 is the minimum RFC 7677 allows.
	DefaultIterations = 4096

	// maxIterations bounds the work DeriveCredentials (and, later, PLAIN
	// verification against stored credentials) may cost per login.
	maxIterations = 10_000_000

	saltLen = 16

	kvPrefix = "kv:"

	// initialMmapSize is the address space bbolt maps at open. A growing
	// file past the mapping makes bbolt remap it, which waits for every
	// read transaction and blocks the writer meanwhile: with the archive
	// growing all the time, that was most of an Append's wait. Address
	// space only: pages are read from the file as used.
	initialMmapSize = 1 << 30
)

var (
	bucketMeta     = []byte("meta")
	bucketAccounts = []byte("accounts")
	keySchema      = []byte("schema")
)

// Options configures Open.
type Options struct {
	// Timeout is how long Open waits for the file lock; 0 means one second.
	Timeout time.Duration
}

// DB is an open database. It is safe for concurrent use.
type DB struct {
	bolt  *bolt.DB
	path  string
	group groupCommit // DB.batch
}

// Open opens (creating if needed) the database at path. The parent directory
// is created 0700 and the file 0600 because it holds credential material.
// If another process holds the lock for longer than opts.Timeout the error
// wraps ErrLocked.
func Open(path string, opts Options) (*DB, error) {
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = time.Second
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("storage: create directory for %s: %w", path, err)
	}
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout, InitialMmapSize: initialMmapSize})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("storage: open %s: %w (is xmppd running? use the admin socket instead)", path, ErrLocked)
		}
		return nil, fmt.Errorf("storage: open %s: %w", path, err)
	}
	db := &DB{bolt: b, path: path}
	if err := db.init(); err != nil {
		_ = b.Close()
		return nil, err
	}
	return db, nil
}

// init creates the fixed buckets and checks the schema version, refusing a
// file written by a newer xmppd rather than silently misreading it.
func (db *DB) init() error {
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if v := meta.Get(keySchema); v != nil {
			if len(v) != 4 {
				return fmt.Errorf("storage: corrupt schema version (%d bytes)", len(v))
			}
			got := binary.BigEndian.Uint32(v)
			if got > schemaVersion {
				return fmt.Errorf("storage: database schema version %d is newer than this xmppd supports (%d); upgrade xmppd", got, schemaVersion)
			}
			if got < 1 {
				return fmt.Errorf("storage: invalid schema version %d", got)
			}
		} else {
			var buf [4]byte
			binary.BigEndian.PutUint32(buf[:], schemaVersion)
			if err := meta.Put(keySchema, buf[:]); err != nil {
				return err
			}
		}
		_, err = tx.CreateBucketIfNotExists(bucketAccounts)
		return err
	})
	if err != nil {
		return fmt.Errorf("storage: initialise %s: %w", db.path, err)
	}
	return nil
}

// Close releases the file lock.
func (db *DB) Close() error {
	if err := db.bolt.Close(); err != nil {
		return fmt.Errorf("storage: close %s: %w", db.path, err)
	}
	return nil
}

// Path is the database file's path.
func (db *DB) Path() string { return db.path }

// Keys is one hash's SCRAM key pair (RFC 5802 §3).
type Keys struct{ StoredKey, ServerKey []byte }

// Credentials are SCRAM credentials. The password and the SaltedPassword are
// never stored: SaltedPassword is password-equivalent for SCRAM, whereas
// StoredKey/ServerKey only let the server verify (and, for PLAIN, the server
// re-derives from the presented password).
type Credentials struct {
	Salt       []byte
	Iterations int // >= 4096
	SHA1       Keys
	SHA256     Keys
}

// KeysFor returns the key pair for a SCRAM hash name ("SHA-1" or "SHA-256").
// ok is false when the hash is unknown or no keys were stored for it.
func (c Credentials) KeysFor(hash string) (Keys, bool) {
	var k Keys
	switch hash {
	case "SHA-1":
		k = c.SHA1
	case "SHA-256":
		k = c.SHA256
	default:
		return Keys{}, false
	}
	if len(k.StoredKey) == 0 || len(k.ServerKey) == 0 {
		return Keys{}, false
	}
	return k, true
}

// validate rejects credentials that could never verify, so that a bad import
// fails loudly at write time instead of as a mysterious login failure.
func (c Credentials) validate() error {
	if len(c.Salt) == 0 {
		return errors.New("storage: credentials have an empty salt")
	}
	if c.Iterations < DefaultIterations || c.Iterations > maxIterations {
		return fmt.Errorf("storage: iteration count %d outside [%d, %d]", c.Iterations, DefaultIterations, maxIterations)
	}
	check := func(name string, k Keys, size int) error {
		if len(k.StoredKey) == 0 && len(k.ServerKey) == 0 {
			return nil
		}
		if len(k.StoredKey) != size || len(k.ServerKey) != size {
			return fmt.Errorf("storage: %s keys must be %d bytes", name, size)
		}
		return nil
	}
	if err := check("SHA-1", c.SHA1, sha1.Size); err != nil {
		return err
	}
	if err := check("SHA-256", c.SHA256, sha256.Size); err != nil {
		return err
	}
	if len(c.SHA1.StoredKey) == 0 && len(c.SHA256.StoredKey) == 0 {
		return errors.New("storage: credentials hold no keys")
	}
	return nil
}

// DeriveCredentials computes SCRAM-SHA-1 and SCRAM-SHA-256 credentials for
// password with a fresh random salt. iterations 0 means DefaultIterations.
func DeriveCredentials(password string, iterations int) (Credentials, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return Credentials{}, fmt.Errorf("storage: generate salt: %w", err)
	}
	return deriveCredentials(password, salt, iterations)
}

// deriveCredentials is DeriveCredentials with a given salt, so that RFC test
// vectors can be checked.
func deriveCredentials(password string, salt []byte, iterations int) (Credentials, error) {
	if iterations == 0 {
		iterations = DefaultIterations
	}
	if iterations < DefaultIterations || iterations > maxIterations {
		return Credentials{}, fmt.Errorf("storage: iteration count %d outside [%d, %d]", iterations, DefaultIterations, maxIterations)
	}
	if password == "" {
		return Credentials{}, errors.New("storage: empty password")
	}
	// Prepare exactly as the SASL server does on PLAIN and as clients do for
	// SCRAM (RFC 7677 / RFC 8265), so that e.g. different Unicode forms of
	// the same password authenticate.
	prepared, err := precis.OpaqueString.String(password)
	if err != nil {
		return Credentials{}, fmt.Errorf("storage: invalid password: %w", err)
	}
	c := Credentials{Salt: append([]byte(nil), salt...), Iterations: iterations}
	if c.SHA1, err = DeriveKeys(sha1.New, prepared, salt, iterations); err != nil {
		return Credentials{}, err
	}
	if c.SHA256, err = DeriveKeys(sha256.New, prepared, salt, iterations); err != nil {
		return Credentials{}, err
	}
	return c, nil
}

// DeriveKeys computes one hash's SCRAM keys from an already PRECIS-prepared
// password. It is exported for the SASL server, which must re-derive keys
// from a PLAIN password exactly the way registration did.
func DeriveKeys(h func() hash.Hash, preparedPassword string, salt []byte, iterations int) (Keys, error) {
	salted, err := pbkdf2.Key(h, preparedPassword, salt, iterations, h().Size())
	if err != nil {
		return Keys{}, fmt.Errorf("storage: pbkdf2: %w", err)
	}
	clientKey := hmacSum(h, salted, "Client Key")
	stored := h()
	stored.Write(clientKey)
	return Keys{StoredKey: stored.Sum(nil), ServerKey: hmacSum(h, salted, "Server Key")}, nil
}

func hmacSum(h func() hash.Hash, key []byte, msg string) []byte {
	m := hmac.New(h, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// record is the on-disk form of an account. V lets a later schema change
// the encoding without a whole-database migration.
type record struct {
	V          int    `json:"v"`
	Salt       []byte `json:"salt"`
	Iterations int    `json:"i"`
	SHA1Stored []byte `json:"sha1_stored,omitempty"`
	SHA1Server []byte `json:"sha1_server,omitempty"`
	S256Stored []byte `json:"sha256_stored,omitempty"`
	S256Server []byte `json:"sha256_server,omitempty"`
}

const recordVersion = 1

func encodeCredentials(c Credentials) ([]byte, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(record{
		V: recordVersion, Salt: c.Salt, Iterations: c.Iterations,
		SHA1Stored: c.SHA1.StoredKey, SHA1Server: c.SHA1.ServerKey,
		S256Stored: c.SHA256.StoredKey, S256Server: c.SHA256.ServerKey,
	})
	if err != nil {
		return nil, fmt.Errorf("storage: encode credentials: %w", err)
	}
	return b, nil
}

func decodeCredentials(b []byte) (Credentials, error) {
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return Credentials{}, fmt.Errorf("storage: decode credentials: %w", err)
	}
	if r.V != recordVersion {
		return Credentials{}, fmt.Errorf("storage: unsupported credentials record version %d", r.V)
	}
	return Credentials{
		Salt: r.Salt, Iterations: r.Iterations,
		SHA1:   Keys{StoredKey: r.SHA1Stored, ServerKey: r.SHA1Server},
		SHA256: Keys{StoredKey: r.S256Stored, ServerKey: r.S256Server},
	}, nil
}

// accountKey builds the "local@domain" key. It rejects characters that would
// make the key ambiguous (so ListUsers and DeleteUser's prefix match stay
// exact); full normalisation is the caller's job.
func accountKey(domain, local string) ([]byte, error) {
	switch {
	case local == "" || domain == "":
		return nil, errors.New("storage: empty localpart or domain")
	case strings.ContainsAny(local, "@/\x00"):
		return nil, fmt.Errorf("storage: invalid localpart %q", local)
	case strings.ContainsAny(domain, "@/\x00"):
		return nil, fmt.Errorf("storage: invalid domain %q", domain)
	}
	return []byte(local + "@" + domain), nil
}

// UserKeyPrefix returns the prefix under which modules should store per-user
// keys in a KeyValue store (and the one Queue and Log keys start with): the bare JID followed by a NUL byte. DeleteUser
// removes, in every KeyValue store, the key equal to the bare JID and every
// key starting with the bare JID followed by NUL or "/" (a full JID). The
// separator matters: a plain prefix match on "a@example.com" would also
// delete "a@example.community".
func UserKeyPrefix(domain, local string) []byte {
	return []byte(local + "@" + domain + "\x00")
}

func (db *DB) update(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return db.bolt.Update(fn)
}

func (db *DB) view(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return db.bolt.View(fn)
}

// CreateUser adds an account; ErrUserExists if it already exists.
func (db *DB) CreateUser(ctx context.Context, domain, local string, c Credentials) error {
	key, err := accountKey(domain, local)
	if err != nil {
		return err
	}
	val, err := encodeCredentials(c)
	if err != nil {
		return err
	}
	err = db.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAccounts)
		if b.Get(key) != nil {
			return ErrUserExists
		}
		return b.Put(key, val)
	})
	if err != nil {
		return fmt.Errorf("storage: create user %s: %w", key, err)
	}
	return nil
}

// SetCredentials replaces an existing account's credentials (password change).
func (db *DB) SetCredentials(ctx context.Context, domain, local string, c Credentials) error {
	key, err := accountKey(domain, local)
	if err != nil {
		return err
	}
	val, err := encodeCredentials(c)
	if err != nil {
		return err
	}
	err = db.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAccounts)
		if b.Get(key) == nil {
			return ErrNoSuchUser
		}
		return b.Put(key, val)
	})
	if err != nil {
		return fmt.Errorf("storage: set credentials for %s: %w", key, err)
	}
	return nil
}

// DeleteUser removes the account and, in the same transaction, the user's
// data in every KeyValue, Queue and Log: the key equal to the bare JID and
// keys starting with the bare JID followed by NUL (UserKeyPrefix) or "/".
// Data keyed differently (e.g. by another user's JID) is not touched.
func (db *DB) DeleteUser(ctx context.Context, domain, local string) error {
	key, err := accountKey(domain, local)
	if err != nil {
		return err
	}
	err = db.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAccounts)
		if b.Get(key) == nil {
			return ErrNoSuchUser
		}
		if err := b.Delete(key); err != nil {
			return err
		}
		return tx.ForEach(func(name []byte, kb *bolt.Bucket) error {
			if !bytes.HasPrefix(name, []byte(kvPrefix)) && !bytes.HasPrefix(name, []byte(archivePrefix)) &&
				!bytes.HasPrefix(name, []byte(logPrefix)) {
				return nil
			}
			return deleteUserKeys(kb, key)
		})
	})
	if err != nil {
		return fmt.Errorf("storage: delete user %s: %w", key, err)
	}
	return nil
}

// deleteUserKeys deletes bare, bare+"\x00"..., and bare+"/"... from b. Keys
// are collected first because deleting while iterating a bbolt cursor skips
// entries.
func deleteUserKeys(b *bolt.Bucket, bare []byte) error {
	var doomed [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(bare); k != nil && bytes.HasPrefix(k, bare); k, _ = c.Next() {
		if len(k) == len(bare) || k[len(bare)] == 0 || k[len(bare)] == '/' {
			doomed = append(doomed, append([]byte(nil), k...))
		}
	}
	for _, k := range doomed {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// UserCredentials returns an account's credentials; ErrNoSuchUser if absent.
func (db *DB) UserCredentials(ctx context.Context, domain, local string) (Credentials, error) {
	key, err := accountKey(domain, local)
	if err != nil {
		// An unrepresentable name cannot be an account; say so in the way
		// the SASL layer already handles.
		return Credentials{}, fmt.Errorf("storage: %w: %w", ErrNoSuchUser, err)
	}
	var c Credentials
	err = db.view(ctx, func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketAccounts).Get(key)
		if v == nil {
			return ErrNoSuchUser
		}
		// json.Unmarshal copies into fresh slices, so nothing aliases the
		// mmap after the transaction ends.
		var err error
		c, err = decodeCredentials(v)
		return err
	})
	if err != nil {
		return Credentials{}, fmt.Errorf("storage: credentials for %s: %w", key, err)
	}
	return c, nil
}

// UserExists reports whether the account exists.
func (db *DB) UserExists(ctx context.Context, domain, local string) (bool, error) {
	_, err := db.UserCredentials(ctx, domain, local)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, ErrNoSuchUser):
		return false, nil
	}
	return false, err
}

// ListUsers returns the sorted bare JIDs of all accounts in domain, or of
// every domain when domain is "".
func (db *DB) ListUsers(ctx context.Context, domain string) ([]string, error) {
	users := []string{}
	suffix := "@" + domain
	err := db.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAccounts).ForEach(func(k, _ []byte) error {
			s := string(k)
			if domain == "" || strings.HasSuffix(s, suffix) {
				users = append(users, s)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("storage: list users: %w", err)
	}
	// bbolt already iterates in byte order; sorting again keeps the
	// documented contract independent of the key encoding.
	sort.Strings(users)
	return users, nil
}
