package c2s

import (
	"strings"
	"testing"

	"github.com/xmppd/xmppd/stanza"
)

func TestBind2Resource(t *testing.T) {
	tests := []struct {
		tag        string // "" = no <tag/>
		wantPrefix string
	}{
		{"AwesomeXMPP", "AwesomeXMPP/"},
		{"  Conversations.im  ", "Conversations.im/"},
		{"", "xmppd-"},
		{strings.Repeat("x", 65), "xmppd-"}, // too long to be a useful tag
		{"bad\x00tag", "xmppd-"},            // not a valid resourcepart
	}
	for _, tt := range tests {
		req := stanza.New(stanza.NSBind2, "bind")
		if tt.tag != "" {
			req.Append(stanza.New(stanza.NSBind2, "tag").AppendText(tt.tag))
		}
		a, b := bind2Resource(req), bind2Resource(req)
		if !strings.HasPrefix(a, tt.wantPrefix) || len(a) != len(tt.wantPrefix)+12 {
			t.Errorf("tag %q: resource %q, want %q and 12 random characters", tt.tag, a, tt.wantPrefix)
		}
		if a == b {
			t.Errorf("tag %q: two binds got the same resource %q", tt.tag, a)
		}
		if _, err := stanza.NewJID("alice", "example.org", a); err != nil {
			t.Errorf("tag %q: resource %q is not valid: %v", tt.tag, a, err)
		}
	}
}
