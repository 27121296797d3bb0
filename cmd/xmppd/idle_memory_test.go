package main

// The memory an idle authenticated TLS session costs the server (issue 5:
// the target is ≤ 16 KiB). The clients run in a child process (this test
// binary again), so that the server's heap holds only the server: the figure
// is the growth of the server process's Go heap and stacks, after GC, per
// session that logged in the way xmppbench's do (STARTTLS, SCRAM-SHA-256,
// bind, roster get, initial presence, ping) and then stays silent.
//
// It logs the figure and makes no assertion on it (timings and memory vary
// by machine); xmppbench idle measures the process RSS on a real run. It
// does check that idle sessions keep no goroutine (they park).
//
//	go test ./cmd/xmppd -run TestIdleSessionMemory -v
//	XMPPD_IDLE_SESSIONS=2000 XMPPD_IDLE_MEMPROFILE=/tmp/idle.pprof go test ./cmd/xmppd -run TestIdleSessionMemory -v
//	go tool pprof -sample_index=inuse_space -top /tmp/idle.pprof

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/sasl"

	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/storage"
)

const idleClientEnv = "XMPPD_IDLE_CLIENT" // set in the child: "addr n"

func TestIdleSessionMemory(t *testing.T) {
	if os.Getenv(idleClientEnv) != "" {
		idleClientMain(t)
		return
	}
	if testing.Short() {
		t.Skip("logs in hundreds of sessions")
	}
	n := 300
	if raceEnabled {
		n = 50 // the race detector's shadow memory makes the figure meaningless anyway
	}
	if v, err := strconv.Atoi(os.Getenv("XMPPD_IDLE_SESSIONS")); err == nil && v > 0 {
		n = v
	}
	if os.Getenv("XMPPD_IDLE_MEMPROFILE") != "" {
		runtime.MemProfileRate = 1 // every allocation, for a profile per session
	}
	srv := startTestServer(t, func(c *Config) { c.C2S.AuthTimeout = Duration(30 * time.Second) })
	creds, err := storage.DeriveCredentials("idlepass", 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range n {
		if err := srv.db.CreateUser(ctx, "localhost", fmt.Sprintf("idle%d", i), creds); err != nil {
			t.Fatal(err)
		}
	}
	before := serverMem()

	cmd := exec.Command(os.Args[0], "-test.run=^TestIdleSessionMemory$", "-test.v")
	cmd.Env = append(os.Environ(), idleClientEnv+"="+srv.c2sAddrs[0].String()+" "+strconv.Itoa(n))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close() // the child logs out and exits
		cmd.Wait()
	}()
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if line := sc.Text(); line == "IDLE-READY" {
				ready <- nil
				io.Copy(io.Discard, stdout)
				return
			} else if strings.HasPrefix(line, "IDLE-FAIL") {
				ready <- errors.New(line)
				return
			}
		}
		ready <- errors.New("the client process ended before its sessions were ready")
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Minute):
		t.Fatal("the sessions did not log in within 5 minutes")
	}
	// Let writers and handlers finish, and the sessions park (c2s parks a
	// session after 250 ms without input).
	time.Sleep(time.Second)
	after := serverMem()
	if f := os.Getenv("XMPPD_IDLE_MEMPROFILE"); f != "" {
		out, err := os.Create(f)
		if err != nil {
			t.Fatal(err)
		}
		runtime.GC()
		if err := pprof.Lookup("heap").WriteTo(out, 0); err != nil {
			t.Fatal(err)
		}
		out.Close()
	}
	per := func(a, b uint64) float64 { return (float64(b) - float64(a)) / float64(n) / 1024 }
	// Idle bound sessions park (stream/park.go): no goroutine each. One
	// still reading or writing here and there is fine; one per session is not.
	if g := float64(after.goroutines-before.goroutines) / float64(n); runtime.GOOS == "linux" && g > 0.5 {
		t.Errorf("%.2f goroutines per idle session: idle sessions should park", g)
	}
	t.Logf("%d idle sessions: %.1f KiB/session heap+stack in use (heap %.1f, stack %.1f; live heap objects %.1f KiB), %.2f goroutines/session",
		n, per(before.heap+before.stack, after.heap+after.stack), per(before.heap, after.heap), per(before.stack, after.stack),
		per(before.live, after.live), float64(after.goroutines-before.goroutines)/float64(n))
}

type memFigures struct {
	heap, stack, live uint64
	goroutines        int
}

func serverMem() memFigures {
	// Stacks shrink by half at most once per GC: a few cycles let the
	// sessions' stacks settle to what an idle read needs.
	for range 5 {
		runtime.GC()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memFigures{heap: ms.HeapInuse, stack: ms.StackInuse, live: ms.HeapAlloc, goroutines: runtime.NumGoroutine()}
}

// idleClientMain is the child: it logs in n sessions, says IDLE-READY and
// holds them until its stdin closes.
func idleClientMain(t *testing.T) {
	addr, ns, _ := strings.Cut(os.Getenv(idleClientEnv), " ")
	n, _ := strconv.Atoi(ns)
	conns := make([]net.Conn, n)
	var wg sync.WaitGroup
	var once sync.Once
	var failed error
	next := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				c, err := idleLogin(addr, fmt.Sprintf("idle%d", i), "idlepass")
				if err != nil {
					once.Do(func() { failed = fmt.Errorf("idle%d: %w", i, err) })
					continue
				}
				conns[i] = c
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if failed != nil {
		fmt.Println("IDLE-FAIL", failed)
		return
	}
	fmt.Println("IDLE-READY")
	io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		c.Close()
	}
}

// idleLogin logs in like xmppbench: STARTTLS, SCRAM-SHA-256, bind, roster,
// initial presence and a ping whose answer says the presence took effect.
func idleLogin(addr, user, pass string) (net.Conn, error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(time.Minute))
	var c net.Conn = conn
	dec := stanza.NewDecoder(c, clientLimits())
	send := func(s string) error { _, err := io.WriteString(c, s); return err }
	open := func() (*stanza.Element, error) {
		if err := send(fmt.Sprintf(clientHeader, "localhost")); err != nil {
			return nil, err
		}
		if _, err := dec.ReadHeader(); err != nil {
			return nil, err
		}
		return dec.Next()
	}
	fail := func(err error) (net.Conn, error) { conn.Close(); return nil, err }
	if _, err := open(); err != nil {
		return fail(err)
	}
	if err := send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"); err != nil {
		return fail(err)
	}
	if _, err := dec.Next(); err != nil {
		return fail(err)
	}
	tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
	if err := tc.Handshake(); err != nil {
		return fail(err)
	}
	c = tc
	dec.Reset(tc)
	if _, err := open(); err != nil {
		return fail(err)
	}
	neg := sasl.NewClient(sasl.ScramSha256, sasl.Credentials(func() ([]byte, []byte, []byte) {
		return []byte(user), []byte(pass), nil
	}))
	_, resp, err := neg.Step(nil)
	if err != nil {
		return fail(err)
	}
	if err := send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>" + base64.StdEncoding.EncodeToString(resp) + "</auth>"); err != nil {
		return fail(err)
	}
	for {
		el, err := dec.Next()
		if err != nil {
			return fail(err)
		}
		data, _ := base64.StdEncoding.DecodeString(el.Text())
		if el.Is(stanza.NSSASL, "success") {
			if _, _, err := neg.Step(data); err != nil {
				return fail(fmt.Errorf("server signature: %w", err))
			}
			break
		}
		if !el.Is(stanza.NSSASL, "challenge") {
			return fail(fmt.Errorf("SASL: %s", el))
		}
		if _, resp, err = neg.Step(data); err != nil {
			return fail(err)
		}
		if err := send("<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" + base64.StdEncoding.EncodeToString(resp) + "</response>"); err != nil {
			return fail(err)
		}
	}
	dec.Reset(c)
	if _, err := open(); err != nil {
		return fail(err)
	}
	if err := send("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>" +
		"<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>" +
		"<presence/><iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"); err != nil {
		return fail(err)
	}
	for {
		el, err := dec.Next()
		if err != nil {
			return fail(err)
		}
		if el.Local == "iq" && el.Get("id") == "p1" {
			break
		}
	}
	if os.Getenv("XMPPD_IDLE_SM") != "" {
		// Stream management with resumption on, the queue empty: the
		// issue's bound is 16 KiB for such a session.
		if err := send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>"); err != nil {
			return fail(err)
		}
		if el, err := dec.Next(); err != nil || el.Local != "enabled" {
			return fail(fmt.Errorf("enable: %v %v", el, err))
		}
	}
	conn.SetDeadline(time.Time{})
	return c, nil
}
