package main

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xeps/mam"
)

// TestArchiveSurvivesSIGKILL: the recipient's archive copy is durable before
// the message is delivered, so killing the real binary with SIGKILL in the
// middle of a chat at full speed loses no message the recipient got from
// the archive, and stores none twice. Alice writes 400 messages to bob in
// one go; once bob has read 100 of them the server is killed; every message
// bob read must be in his archive, each once.
func TestArchiveSurvivesSIGKILL(t *testing.T) {
	if !hasModule("archive") {
		t.Skip("no archive module")
	}
	bin, config, data := crashSetup(t)

	srv := startCrashServer(t, bin, config)
	bob := dialWire(t, srv.addr, false)
	bob.login("localhost", "bob", "b", false)
	bob.send("<presence/>")
	bob.sync2("bob online")
	alice := dialWire(t, srv.addr, false)
	alice.login("localhost", "alice", "a", false)
	const sent, readBeforeKill = 400, 100
	var burst strings.Builder
	for i := range sent {
		fmt.Fprintf(&burst, "<message to='bob@localhost' type='chat' id='m%d'><body>message %d</body></message>", i, i)
	}
	alice.send(burst.String())
	got := map[string]bool{}
	for len(got) < readBeforeKill {
		if el := bob.next(); el.Is(stanza.NSClient, "message") {
			got[el.Get("id")] = true
		}
	}
	srv.kill()

	db, err := storage.Open(filepath.Join(data, "xmppd.db"), storage.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	reID := regexp.MustCompile(`id=["'](m\d+)["']`)
	archived := map[string]int{}
	var after storage.LogID
	for {
		page, err := db.Log(mam.LogName).Query(context.Background(), "bob@localhost", storage.LogQuery{After: after})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Entries {
			if m := reID.FindSubmatch(e.Data); m != nil {
				archived[string(m[1])]++
			}
			after = e.ID
		}
		if page.Complete || len(page.Entries) == 0 {
			break
		}
	}
	for id := range got {
		if archived[id] == 0 {
			t.Errorf("bob read %s before the kill, but it is not in his archive", id)
		}
	}
	for id, n := range archived {
		if n > 1 {
			t.Errorf("%s is in bob's archive %d times", id, n)
		}
	}
	t.Logf("sent %d, bob read %d before SIGKILL, bob's archive holds %d", sent, len(got), len(archived))
}
