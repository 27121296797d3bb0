package xeps

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/xmppd/xmppd/stanza"
)

// TestFullJIDs: resources added and removed in any order leave exactly the
// ones still there, under their bare JID, and nothing once the last is gone.
func TestFullJIDs(t *testing.T) {
	for _, tt := range []struct {
		name string
		ops  []string // "+full" adds, "-full" removes
		want map[string][]string
	}{
		{"one", []string{"+a@x/1", "-a@x/1"}, map[string][]string{}},
		{"first in, first out", []string{"+a@x/1", "+a@x/2", "+a@x/3", "-a@x/1", "-a@x/2", "-a@x/3"}, map[string][]string{}},
		{"last in, first out", []string{"+a@x/1", "+a@x/2", "+a@x/3", "-a@x/3", "-a@x/2", "-a@x/1"}, map[string][]string{}},
		{"middle first", []string{"+a@x/1", "+a@x/2", "+a@x/3", "-a@x/2", "-a@x/1", "-a@x/3"}, map[string][]string{}},
		{"re-added", []string{"+a@x/1", "+a@x/2", "-a@x/1", "+a@x/1", "-a@x/2", "-a@x/1"}, map[string][]string{}},
		{"added twice", []string{"+a@x/1", "+a@x/1", "-a@x/1"}, map[string][]string{}},
		{"some left", []string{"+a@x/1", "+a@x/2", "+a@x/3", "-a@x/1"}, map[string][]string{"a@x": {"a@x/2", "a@x/3"}}},
		{"unknown removed", []string{"+a@x/1", "-a@x/2", "-b@x/1"}, map[string][]string{"a@x": {"a@x/1"}}},
		{"two users", []string{"+a@x/1", "+b@x/1", "+a@x/2", "-a@x/1"}, map[string][]string{"a@x": {"a@x/2"}, "b@x": {"b@x/1"}}},
		{"resource with a slash", []string{"+a@x/1/2", "+a@x/1", "-a@x/1/2"}, map[string][]string{"a@x": {"a@x/1"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := FullJIDs{}
			for _, op := range tt.ops {
				full, err := stanza.ParseJID(op[1:])
				if err != nil {
					t.Fatal(err)
				}
				if op[0] == '+' {
					m.Add(full)
				} else {
					m.Remove(full)
				}
				for bare, fs := range m {
					for _, f := range fs {
						if !strings.HasPrefix(f, bare+"/") {
							t.Fatalf("after %s: %s filed under %s", op, f, bare)
						}
					}
				}
			}
			got := maps.Clone(m)
			for _, fs := range got {
				slices.Sort(fs)
			}
			if !maps.EqualFunc(got, tt.want, slices.Equal) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
