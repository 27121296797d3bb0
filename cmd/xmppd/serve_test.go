package main

import (
	"os"
	"runtime/debug"
	"strings"
	"testing"
)

func TestServeGCPercent(t *testing.T) {
	prev := debug.SetGCPercent(100)
	defer debug.SetGCPercent(prev)
	for _, tt := range []struct {
		gogc string
		want int
	}{
		{"", gcPercent}, // xmppd's default
		{"200", 100},    // GOGC set: the runtime's reading of it stays (here: 100)
		{"off", 100},
	} {
		debug.SetGCPercent(100)
		setGCPercent(func(k string) string {
			if k == "GOGC" {
				return tt.gogc
			}
			return ""
		})
		if got := debug.SetGCPercent(100); got != tt.want {
			t.Errorf("GOGC=%q: GC percent %d, want %d", tt.gogc, got, tt.want)
		}
	}
}

// TestStartProfile: XMPPD_CPUPROFILE writes a profile; unset, nothing
// happens; a file that cannot be made is an error naming the variable.
func TestStartProfile(t *testing.T) {
	stop, err := startProfile(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	stop()
	path := t.TempDir() + "/cpu.prof"
	stop, err = startProfile(func(string) string { return path })
	if err != nil {
		t.Fatal(err)
	}
	stop()
	if st, err := os.Stat(path); err != nil || st.Size() == 0 {
		t.Fatalf("no profile written: %v", err)
	}
	if _, err := startProfile(func(string) string { return t.TempDir() + "/no/such/dir/p" }); err == nil || !strings.Contains(err.Error(), profileEnv) {
		t.Fatalf("error %v", err)
	}
}
