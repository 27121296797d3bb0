package main

import (
	"runtime/debug"
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
