package main

// Golden XML transcripts: testdata/transcripts/*.txtar, after Prosody's
// scansion. The comment says what the transcript shows. Each file entry is
// one step of one actor:
//
//	-- alice connects --         open a TCP connection ("direct-tls" in the body: TLS first)
//	-- peer connects to s2s --   open a TCP connection to the federation listener
//	-- alice logs in --          connect, STARTTLS, SASL PLAIN, bind (body: resource; "direct-tls")
//	-- alice sends --            write the body as is, after ${var} substitution
//	-- alice receives --         read what the body holds, compared structurally
//	-- alice starttls --         upgrade to TLS (after <proceed/>); body "cert": present
//	                             the federation peer's certificate (peer.test, trusted)
//	-- alice is disconnected --  the server closes the connection
//	-- alice drops --            close the TCP connection without </stream:stream>
//	-- alice syncs --            ping the server and wait for the answer: everything
//	                             alice sent before has been routed (sessions are
//	                             independent, so ordering across actors needs this)
//
// In a receives body, an attribute value or text "${name}" matches anything
// and captures it, or must equal the value captured earlier under that name
// ("${*}" matches anything and captures nothing);
// after a login ${alice} is alice's full JID. Attribute order, namespace
// prefixes and white space between elements do not matter. An expected
// element whose last child is <etc xmlns='urn:xmppd:transcript'/> matches when
// the children listed appear in that order among possibly more. In a sends body,
// ${repeat:N:s} stands for s repeated N times, and ${ht:USER:NAME} for the
// base64 HT-SHA-256-NONE message of USER with the FAST token captured as
// NAME (XEP-0484: USER NUL HMAC-SHA-256(token, "Initiator")).
//
// A comment line "config: KEY = VALUE" (a TOML line with a dotted key, e.g.
// "config: offline.max_messages = 2") changes the test server's config.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"golang.org/x/tools/txtar"

	"github.com/xmppd/xmppd/stanza"
)

func TestTranscripts(t *testing.T) {
	files, err := filepath.Glob("../../testdata/transcripts/*.txtar")
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts found: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txtar"), func(t *testing.T) {
			t.Parallel()
			ar, err := txtar.ParseFile(f)
			if err != nil {
				t.Fatal(err)
			}
			runTranscript(t, ar)
		})
	}
}

type transcript struct {
	t        *testing.T
	srv      *server
	actors   map[string]*wireClient
	vars     map[string]string
	stepIdx  int
	peerCert *tls.Certificate // for federation transcripts
}

// peerCertificate makes a CA (written to a file the server can trust) and a
// certificate for domain signed by it.
func peerCertificate(t *testing.T, domain string) (caFile string, cert tls.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "xmppd transcript CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: domain}, DNSNames: []string{domain},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	caCert, _ := x509.ParseCertificate(caDER)
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return caFile, tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: key}
}

func runTranscript(t *testing.T, ar *txtar.Archive) {
	edit := transcriptConfig(t, ar.Comment)
	var peer *tls.Certificate
	if strings.Contains(string(txtar.Format(ar)), " connects to s2s --") {
		// A federation peer "peer.test" with a certificate from a CA the
		// server trusts (s2s.ca_file), presented by "-- X starttls --" with
		// the body "cert".
		caFile, cert := peerCertificate(t, "peer.test")
		peer = &cert
		inner := edit
		edit = func(c *Config) {
			c.S2S.CAFile = caFile
			if inner != nil {
				inner(c)
			}
		}
	}
	tr := &transcript{t: t, srv: startTestServer(t, edit), actors: map[string]*wireClient{}, vars: map[string]string{}, peerCert: peer}
	for i, f := range ar.Files {
		tr.stepIdx = i
		actor, verb, ok := strings.Cut(f.Name, " ")
		if !ok {
			t.Fatalf("step %q: want \"ACTOR VERB\"", f.Name)
		}
		body := strings.TrimSpace(string(f.Data))
		tr.step(actor, verb, body)
	}
}

// transcriptConfig returns the edit made by the comment's "config:" lines, or nil.
func transcriptConfig(t *testing.T, comment []byte) func(*Config) {
	var doc []string
	for line := range strings.Lines(string(comment)) {
		if v, ok := strings.CutPrefix(line, "config:"); ok {
			doc = append(doc, strings.TrimSpace(v))
		}
	}
	if len(doc) == 0 {
		return nil
	}
	return func(c *Config) {
		md, err := toml.Decode(strings.Join(doc, "\n"), c)
		if err != nil {
			t.Fatalf("config lines: %v", err)
		}
		if u := md.Undecoded(); len(u) > 0 {
			t.Fatalf("config lines: unknown keys %v", u)
		}
	}
}

func (tr *transcript) fatalf(format string, args ...any) {
	tr.t.Helper()
	tr.t.Fatalf("step %d: %s", tr.stepIdx+1, fmt.Sprintf(format, args...))
}

func (tr *transcript) client(actor string) *wireClient {
	c := tr.actors[actor]
	if c == nil {
		tr.fatalf("%s is not connected", actor)
	}
	return c
}

// user maps an actor to its account: "alice2" is a second connection of alice.
func user(actor string) string { return strings.TrimRight(actor, "0123456789") }

func (tr *transcript) step(actor, verb, body string) {
	tr.t.Helper()
	direct := strings.Contains(body, "direct-tls")
	addr := tr.srv.c2sAddrs[0]
	if direct {
		addr = tr.srv.directAddr[0]
	}
	switch verb {
	case "connects":
		tr.actors[actor] = dialWire(tr.t, addr, direct)
	case "connects to s2s":
		tr.actors[actor] = dialWire(tr.t, tr.srv.s2sAddrs[0], false)
	case "logs in":
		c := dialWire(tr.t, addr, direct)
		tr.actors[actor] = c
		resource := strings.TrimSpace(strings.ReplaceAll(body, "direct-tls", ""))
		if resource == "" {
			resource = actor
		}
		tr.vars[actor] = c.login("localhost", user(actor), resource, direct)
	case "sends":
		tr.client(actor).send(tr.expand(body))
	case "starttls":
		if body == "cert" {
			tr.client(actor).startTLSWith(tr.peerCert)
		} else {
			tr.client(actor).startTLS()
		}
	case "receives":
		tr.receive(tr.client(actor), body)
	case "is disconnected":
		tr.client(actor).expectClosed()
	case "drops":
		// An unclean disconnect: the socket closes with no </stream:stream>.
		tr.client(actor).conn.Close()
		delete(tr.actors, actor)
	case "syncs":
		c := tr.client(actor)
		id := fmt.Sprintf("sync%d", tr.stepIdx)
		c.send("<iq type='get' id='" + id + "' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
		if r := c.next(); r.Get("id") != id || r.Get("type") != "result" {
			tr.fatalf("sync: got %s", r)
		}
	default:
		tr.fatalf("unknown verb %q", verb)
	}
}

const nsTranscript = "urn:xmppd:transcript"

var repeatRE = regexp.MustCompile(`\$\{repeat:(\d+):([^}]*)\}`)
var htRE = regexp.MustCompile(`\$\{ht:([^:}]+):([a-zA-Z0-9_-]+)\}`)
var varRE = regexp.MustCompile(`\$\{([a-zA-Z0-9_*-]+)\}`)

func (tr *transcript) expand(s string) string {
	s = repeatRE.ReplaceAllStringFunc(s, func(m string) string {
		p := repeatRE.FindStringSubmatch(m)
		n, _ := strconv.Atoi(p[1])
		return strings.Repeat(p[2], n)
	})
	s = htRE.ReplaceAllStringFunc(s, func(m string) string {
		p := htRE.FindStringSubmatch(m)
		token, ok := tr.vars[p[2]]
		if !ok {
			tr.fatalf("undefined variable %s in %s", p[2], m)
		}
		mac := hmac.New(sha256.New, []byte(token))
		mac.Write([]byte("Initiator"))
		return base64.StdEncoding.EncodeToString(append([]byte(p[1]+"\x00"), mac.Sum(nil)...))
	})
	return varRE.ReplaceAllStringFunc(s, func(m string) string {
		name := m[2 : len(m)-1]
		v, ok := tr.vars[name]
		if !ok {
			tr.fatalf("undefined variable %s", m)
		}
		return v
	})
}

// receive reads the items the body lists (a stream header, elements, the
// stream end) and matches each against the body.
func (tr *transcript) receive(c *wireClient, body string) {
	tr.t.Helper()
	want := stanza.NewDecoder(strings.NewReader(body), clientLimits())
	if strings.HasPrefix(body, "<?xml") || strings.HasPrefix(body, "<stream:stream") {
		wh, err := want.ReadHeader()
		if err != nil {
			tr.fatalf("bad expected header: %v", err)
		}
		got := c.readHeader()
		for _, f := range [][3]string{{"from", wh.From, got.From}, {"id", wh.ID, got.ID}, {"version", wh.Version, got.Version}, {"ns", wh.NS, got.NS}} {
			if f[1] != "" && !tr.match(f[1], f[2]) {
				tr.fatalf("stream header %s = %q, want %q", f[0], f[2], f[1])
			}
		}
	} else {
		// Bind the stream prefix for the expected elements.
		// Bind the stream prefixes for the expected elements, in the
		// content namespace of the actor's stream (jabber:server on s2s).
		ns := c.header.NS
		if ns == "" {
			ns = stanza.NSClient
		}
		head := "<stream:stream xmlns='" + ns + "' xmlns:stream='" + stanza.NSStream + "' xmlns:db='jabber:server:dialback'>"
		want = stanza.NewDecoder(strings.NewReader(head+body), clientLimits())
		if _, err := want.ReadHeader(); err != nil {
			tr.fatalf("bad expected body: %v", err)
		}
	}
	for {
		w, werr := want.Next()
		if werr != nil && !errors.Is(werr, stanza.ErrStreamClosed) {
			if strings.Contains(werr.Error(), "EOF") {
				return
			}
			tr.fatalf("bad expected body: %v", werr)
		}
		g, gerr := c.nextErr()
		if errors.Is(werr, stanza.ErrStreamClosed) {
			if !errors.Is(gerr, stanza.ErrStreamClosed) {
				tr.fatalf("expected </stream:stream>, got %v %v", g, gerr)
			}
			continue
		}
		if gerr != nil {
			tr.fatalf("expected %s, got error %v", w, gerr)
		}
		if why := tr.matchElement(w, g); why != "" {
			tr.fatalf("%s\n got: %s\nwant: %s", why, g, w)
		}
	}
}

// match compares a value with a pattern that may be a ${name} placeholder.
func (tr *transcript) match(pattern, got string) bool {
	if pattern == "${*}" {
		return true
	}
	if m := varRE.FindStringSubmatch(pattern); m != nil && m[0] == pattern {
		if v, ok := tr.vars[m[1]]; ok {
			return v == got
		}
		tr.vars[m[1]] = got
		return true
	}
	return pattern == got
}

func (tr *transcript) matchElement(w, g *stanza.Element) string {
	if w.Space != g.Space || w.Local != g.Local {
		return fmt.Sprintf("element {%s}%s, want {%s}%s", g.Space, g.Local, w.Space, w.Local)
	}
	if len(w.Attr) != len(g.Attr) {
		return fmt.Sprintf("<%s> has attributes %v, want %v", g.Local, attrNames(g), attrNames(w))
	}
	for _, a := range w.Attr {
		i := slices.IndexFunc(g.Attr, func(b stanza.Attr) bool { return b.Space == a.Space && b.Local == a.Local })
		if i < 0 {
			return fmt.Sprintf("<%s> lacks attribute %s", g.Local, a.Local)
		}
		if !tr.match(a.Value, g.Attr[i].Value) {
			return fmt.Sprintf("<%s %s='%s'>, want '%s'", g.Local, a.Local, g.Attr[i].Value, a.Value)
		}
	}
	wc, gc := w.Children(), g.Children()
	if n := len(wc); n > 0 && wc[n-1].Is(nsTranscript, "etc") {
		// The listed children, in order, among others.
		wc = wc[:n-1]
		j := 0
		for _, c := range gc {
			if j < len(wc) && tr.matchElement(wc[j], c) == "" {
				j++
			}
		}
		if j < len(wc) {
			return fmt.Sprintf("<%s> lacks %s", g.Local, wc[j])
		}
		return ""
	}
	if len(wc) != len(gc) {
		return fmt.Sprintf("<%s> has %d children, want %d", g.Local, len(gc), len(wc))
	}
	for i := range wc {
		if why := tr.matchElement(wc[i], gc[i]); why != "" {
			return why
		}
	}
	if len(wc) == 0 && !tr.match(strings.TrimSpace(w.Text()), strings.TrimSpace(g.Text())) {
		return fmt.Sprintf("<%s> text %q, want %q", g.Local, g.Text(), w.Text())
	}
	return ""
}

func attrNames(e *stanza.Element) []string {
	var out []string
	for _, a := range e.Attr {
		out = append(out, a.Local)
	}
	return out
}
