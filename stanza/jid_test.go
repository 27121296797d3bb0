package stanza

import "testing"

func TestParseJID(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"Alice@LocalHost/Phone", "alice@localhost/Phone", true},
		{"localhost", "localhost", true},
		{"@localhost", "", false},
		{"alice@", "", false},
		{"a b@localhost", "", false},
		{"alice@localhost/", "", false},
	}
	for _, tt := range tests {
		j, err := ParseJID(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("ParseJID(%q) err = %v, want ok=%v", tt.in, err, tt.ok)
			continue
		}
		if tt.ok && j.String() != tt.want {
			t.Errorf("ParseJID(%q) = %q, want %q", tt.in, j, tt.want)
		}
	}
}

// FuzzJID checks that normalisation is stable: parse → String → parse is a fixed point.
func FuzzJID(f *testing.F) {
	for _, s := range []string{"alice@localhost/phone", "LOCALHOST", "ÄLICE@example.org", "a@b/c/d", "x@[::1]", "@", "a@b@c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		j, err := ParseJID(s)
		if err != nil {
			return
		}
		again, err := ParseJID(j.String())
		if err != nil {
			t.Fatalf("%q parsed, but its string %q does not: %v", s, j.String(), err)
		}
		if again.String() != j.String() {
			t.Fatalf("not stable: %q → %q → %q", s, j.String(), again.String())
		}
	})
}
