package main

import (
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"hash"
	"testing"

	"mellium.im/sasl"
)

// TestScramAgainstMellium runs our SCRAM client against mellium.im/sasl's
// SCRAM server: right password, wrong password, and the cache.
func TestScramAgainstMellium(t *testing.T) {
	salt := []byte("0123456789abcdef")
	const iter = 4096
	for _, tc := range []struct {
		name string
		mech sasl.Mechanism
		h    func() hash.Hash
	}{
		{"SCRAM-SHA-256", sasl.ScramSha256, sha256.New},
		{"SCRAM-SHA-1", sasl.ScramSha1, sha1.New},
	} {
		t.Run(tc.name, func(t *testing.T) {
			salted, err := pbkdf2.Key(tc.h, "pencil", salt, iter, tc.h().Size())
			if err != nil {
				t.Fatal(err)
			}
			cache := newScramCache()
			auth := func(user, password string) error {
				srv := sasl.NewServer(tc.mech, func(*sasl.Negotiator) bool { return true },
					sasl.SaltedCredentials(func(u, _ []byte, _ string) ([]byte, []byte, int64, error) {
						if string(u) != "user1" {
							return nil, nil, 0, sasl.ErrAuthn
						}
						return salt, salted, iter, nil
					}))
				c, err := newScramClient(tc.name, user, password, cache)
				if err != nil {
					return err
				}
				_, serverFirst, err := srv.Step(c.first())
				if err != nil {
					return err
				}
				final, err := c.final(serverFirst)
				if err != nil {
					return err
				}
				_, serverFinal, err := srv.Step(final)
				if err != nil {
					return err
				}
				return c.verify(serverFinal)
			}
			// (mellium's server refuses escaped "=2C"/"=3D" usernames, so saslName is tested apart.)
			if err := auth("user1", "pencil"); err != nil {
				t.Fatalf("right password: %v", err)
			}
			if err := auth("user1", "pencil"); err != nil {
				t.Fatalf("right password, cached: %v", err)
			}
			if h, m := cache.hits.Load(), cache.misses.Load(); h != 1 || m != 1 {
				t.Errorf("cache hits/misses = %d/%d, want 1/1", h, m)
			}
			if err := auth("user1", "crayon"); err == nil {
				t.Fatal("wrong password accepted")
			}
		})
	}
}

func TestScramCacheFile(t *testing.T) {
	path := t.TempDir() + "/cache"
	c := newScramCache()
	if _, err := c.salted("SCRAM-SHA-256", sha256.New, "u1", "p", []byte("salt"), 4096); err != nil {
		t.Fatal(err)
	}
	if err := c.save(path); err != nil {
		t.Fatal(err)
	}
	d := newScramCache()
	if err := d.load(path); err != nil {
		t.Fatal(err)
	}
	if _, err := d.salted("SCRAM-SHA-256", sha256.New, "u1", "p", []byte("salt"), 4096); err != nil {
		t.Fatal(err)
	}
	if _, err := d.salted("SCRAM-SHA-256", sha256.New, "u1", "other", []byte("salt"), 4096); err != nil {
		t.Fatal(err)
	}
	if d.hits.Load() != 1 || d.misses.Load() != 1 {
		t.Errorf("after load: hits/misses = %d/%d, want 1/1 (a changed password must miss)", d.hits.Load(), d.misses.Load())
	}
}

func TestSaslName(t *testing.T) {
	if got := saslName("a,b=c"); got != "a=2Cb=3Dc" {
		t.Errorf("saslName = %q", got)
	}
}
