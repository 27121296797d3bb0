package main

// The SCRAM client (RFC 5802, RFC 7677) is ours rather than mellium.im/sasl's
// because of one cost: mellium's client runs PBKDF2 (4096 rounds, ≈0.7 ms of
// CPU here) on every login, while a real client such as Conversations caches
// the salted password. A login storm would then measure the tool's PBKDF2,
// not the server. This client caches the salted password per (mechanism,
// user, salt, iterations), in memory and optionally in a file, and is checked
// against mellium's SCRAM server in scram_test.go. It never uses channel
// binding (gs2 header "n,,"), which is valid whatever the server offers.

import (
	"bytes"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// scramCache holds salted passwords so that a user's PBKDF2 runs once.
type scramCache struct {
	mu     sync.Mutex
	m      map[string][]byte
	misses atomic.Int64 // PBKDF2 computations
	hits   atomic.Int64
	dirty  bool
}

func newScramCache() *scramCache { return &scramCache{m: map[string][]byte{}} }

func cacheKey(mech, user, password string, salt []byte, iter int) string {
	// The password is part of the key so that a changed password is a miss,
	// not a failed login; only its SHA-256 is kept.
	ph := sha256.Sum256([]byte(password))
	return mech + " " + user + " " + base64.StdEncoding.EncodeToString(salt) + " " + strconv.Itoa(iter) + " " +
		base64.RawStdEncoding.EncodeToString(ph[:8])
}

func (c *scramCache) salted(mech string, h func() hash.Hash, user, password string, salt []byte, iter int) ([]byte, error) {
	k := cacheKey(mech, user, password, salt, iter)
	c.mu.Lock()
	v, ok := c.m[k]
	c.mu.Unlock()
	if ok {
		c.hits.Add(1)
		return v, nil
	}
	c.misses.Add(1)
	v, err := pbkdf2.Key(h, password, salt, iter, h().Size())
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.m[k] = v
	c.dirty = true
	c.mu.Unlock()
	return v, nil
}

// A FAST token (XEP-0484) of the account user is kept in the same cache
// under "fast " + user, as "MECHANISM SECRET": like a salted password, it is
// what a real client keeps to log in again without the password.
func fastKey(user string) string { return "fast " + user }

func (c *scramCache) token(user string) (mech, secret string, ok bool) {
	c.mu.Lock()
	v, ok := c.m[fastKey(user)]
	c.mu.Unlock()
	if !ok {
		return "", "", false
	}
	mech, secret, ok = strings.Cut(string(v), " ")
	return mech, secret, ok
}

func (c *scramCache) setToken(user, mech, secret string) {
	c.mu.Lock()
	c.m[fastKey(user)] = []byte(mech + " " + secret)
	c.dirty = true
	c.mu.Unlock()
}

func (c *scramCache) dropToken(user string) {
	c.mu.Lock()
	if _, ok := c.m[fastKey(user)]; ok {
		delete(c.m, fastKey(user))
		c.dirty = true
	}
	c.mu.Unlock()
}

// load reads a cache file written by save; a missing file is an empty cache.
func (c *scramCache) load(path string) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var m map[string][]byte
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("scram cache %s: %w", path, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, v := range m {
		c.m[k] = v
	}
	return nil
}

// save writes the cache (mode 0600: salted passwords are password equivalents
// for the bench accounts) if anything was added.
func (c *scramCache) save(path string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.dirty {
		return nil
	}
	b, err := json.Marshal(c.m)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// scramClient is one SCRAM exchange: first() gives the client-first message,
// final(serverFirst) the client-final message, verify(serverFinal) checks the
// server's signature.
type scramClient struct {
	mech      string
	h         func() hash.Hash
	user      string
	password  string
	cache     *scramCache
	nonce     string
	bare      string // client-first-message-bare
	serverSig []byte
}

func newScramClient(mech, user, password string, cache *scramCache) (*scramClient, error) {
	var h func() hash.Hash
	switch mech {
	case "SCRAM-SHA-256":
		h = sha256.New
	case "SCRAM-SHA-1":
		h = sha1.New
	default:
		return nil, fmt.Errorf("unsupported mechanism %s", mech)
	}
	if cache == nil {
		cache = newScramCache()
	}
	return &scramClient{mech: mech, h: h, user: user, password: password, cache: cache}, nil
}

// saslName escapes '=' and ',' in a username (RFC 5802 §5.1).
func saslName(s string) string {
	s = strings.ReplaceAll(s, "=", "=3D")
	return strings.ReplaceAll(s, ",", "=2C")
}

func (s *scramClient) first() []byte {
	var nb [18]byte
	_, _ = rand.Read(nb[:])
	s.nonce = base64.RawStdEncoding.EncodeToString(nb[:])
	s.bare = "n=" + saslName(s.user) + ",r=" + s.nonce
	return []byte("n,," + s.bare)
}

func (s *scramClient) final(serverFirst []byte) ([]byte, error) {
	var nonce, saltB64 string
	iter := -1
	for _, f := range strings.Split(string(serverFirst), ",") {
		if len(f) < 2 || f[1] != '=' {
			continue
		}
		switch f[0] {
		case 'r':
			nonce = f[2:]
		case 's':
			saltB64 = f[2:]
		case 'i':
			n, err := strconv.Atoi(f[2:])
			if err != nil {
				return nil, fmt.Errorf("scram: bad iteration count %q", f)
			}
			iter = n
		case 'm':
			return nil, errors.New("scram: server sent the reserved m attribute")
		}
	}
	salt, err := base64.StdEncoding.DecodeString(saltB64)
	switch {
	case err != nil || len(salt) == 0:
		return nil, errors.New("scram: bad or empty salt")
	case iter < 1:
		return nil, errors.New("scram: missing iteration count")
	case !strings.HasPrefix(nonce, s.nonce) || len(nonce) == len(s.nonce):
		return nil, errors.New("scram: server nonce does not extend ours")
	}
	salted, err := s.cache.salted(s.mech, s.h, s.user, s.password, salt, iter)
	if err != nil {
		return nil, err
	}
	withoutProof := "c=biws,r=" + nonce // biws = base64("n,,")
	authMsg := s.bare + "," + string(serverFirst) + "," + withoutProof
	clientKey := s.hmac(salted, "Client Key")
	h := s.h()
	h.Write(clientKey)
	storedKey := h.Sum(nil)
	sig := s.hmac(storedKey, authMsg)
	proof := make([]byte, len(clientKey))
	for i := range proof {
		proof[i] = clientKey[i] ^ sig[i]
	}
	s.serverSig = s.hmac(s.hmac(salted, "Server Key"), authMsg)
	return []byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof)), nil
}

func (s *scramClient) verify(serverFinal []byte) error {
	v, ok := bytes.CutPrefix(serverFinal, []byte("v="))
	if !ok {
		if e, ok := bytes.CutPrefix(serverFinal, []byte("e=")); ok {
			return fmt.Errorf("scram: server error %s", e)
		}
		return errors.New("scram: no server signature")
	}
	got, err := base64.StdEncoding.DecodeString(string(v))
	if err != nil || !hmac.Equal(got, s.serverSig) {
		return errors.New("scram: wrong server signature")
	}
	return nil
}

func (s *scramClient) hmac(key []byte, msg string) []byte {
	m := hmac.New(s.h, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}
