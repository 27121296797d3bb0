package main

import (
	"net"
	"slices"
	"testing"
	"time"
)

func TestHistQuantiles(t *testing.T) {
	var h hist
	for i := 1; i <= 10000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 5000 * time.Microsecond}, {0.99, 9900 * time.Microsecond}, {0.999, 9990 * time.Microsecond}} {
		got := h.quantile(tc.q)
		if d := float64(got-tc.want) / float64(tc.want); d > 0.01 || d < -0.01 {
			t.Errorf("quantile(%v) = %v, want %v ±1%%", tc.q, got, tc.want)
		}
	}
	if m := h.max(); m < 9900*time.Microsecond || m > 10100*time.Microsecond {
		t.Errorf("max = %v", m)
	}
	for v := uint64(0); v < 1<<20; v += 997 {
		if i := histIndex(v); histValue(i) < v*99/100 || histValue(i) > v*101/100+1 {
			t.Fatalf("bucket of %d is %d, value %d", v, i, histValue(i))
		}
	}
}

func TestParseSources(t *testing.T) {
	got, err := parseSources("auto", "127.0.0.1:5222")
	if err != nil || len(got) != 241 || !got[0].Equal(net.IPv4(127, 0, 0, 10)) {
		t.Fatalf("auto on loopback: %d addresses, %v", len(got), err)
	}
	if got, _ := parseSources("auto", "192.0.2.1:5222"); got != nil {
		t.Errorf("auto off loopback: %v, want none", got)
	}
	got, err = parseSources("127.0.0.2-127.0.0.4,127.0.0.9", "x:1")
	want := []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.9"}
	var s []string
	for _, ip := range got {
		s = append(s, ip.String())
	}
	if err != nil || !slices.Equal(s, want) {
		t.Errorf("range: %v %v, want %v", s, err, want)
	}
	if _, err := parseSources("127.0.0.9-127.0.1.2", "x:1"); err == nil {
		t.Error("a range across /24 accepted")
	}
}

func TestContactsAreMutual(t *testing.T) {
	const users, r = 7, 4
	for i := range users {
		cs := contactsOf(i, users, r)
		if len(cs) != r || slices.Contains(cs, i) {
			t.Fatalf("contacts of %d: %v", i, cs)
		}
		for _, j := range cs {
			if !slices.Contains(contactsOf(j, users, r), i) {
				t.Errorf("%d has %d as a contact but not the reverse", i, j)
			}
		}
	}
}
