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
//	-- alice is disconnected --  the server closes the connection (what arrives
//	                             before the close is not checked)
//	-- alice drops --            close the TCP connection without </stream:stream>
//	-- alice syncs --            ping the server and wait for the answer: everything
//	                             alice sent before has been routed (sessions are
//	                             independent, so ordering across actors needs this);
//	                             nothing else may arrive before the answer
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
//
// Updating: `go test ./cmd/xmppd/ -run TestTranscripts -update` runs every
// transcript against the server and rewrites the files whose receives steps
// no longer hold; review the result with `git diff testdata/transcripts`
// before committing it: the update records what the server does, right or
// wrong. Only receives and syncs steps change; the comment and every other
// step are kept byte for byte, and a receives step that still matches is
// kept as written. In a receives step that does not:
//   - an expected element that arrived unchanged (placeholders and all) is
//     kept as written, in the order the elements arrived;
//   - an element that arrived changed (same name, and the same id, from, to,
//     var, jid and node where the expectation has them) is rewritten on one
//     line: attribute values, texts and children that still match keep their
//     placeholders and etc markers; what differs is written as it arrived,
//     except values that change from run to run, written ${*}: id
//     attributes that no sends or logs in step names, stamp attributes,
//     timestamps, JIDs whose resource no such step names, and the
//     human-readable <text/> of stanza and stream errors. A value equal to
//     one captured earlier (not a login's own JID) is written ${name};
//   - an element that arrived where none was expected (also before a syncs
//     step's answer) becomes a new "-- alice receives --" step at that point,
//     written by the same rules; a step is split around one that arrived
//     between two expected elements. It sits where the stanza arrived in
//     that run: if what caused it and what follows it come from different
//     actors' sessions with no syncs step between, the order may differ in
//     the next run, so move it next to what fixes its place (for an echo of
//     one's own presence: the step that reads the answers sent before it).
//
// An expected element that never arrives (a read times out after 5s), a
// </stream:stream> that comes early, or a changed stream header still fail
// the test, and a transcript that fails is not rewritten: fix it by hand.
// What arrives before "is disconnected" is logged in update mode, not recorded.

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
	"flag"
	"fmt"
	"io"
	"maps"
	"math/big"
	"net"
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

// updateTranscripts rewrites the transcripts from what the server sends
// (see the package comment above).
var updateTranscripts = flag.Bool("update", false, "rewrite testdata/transcripts from what the server sends; review the diff")

func TestTranscripts(t *testing.T) {
	files, err := filepath.Glob("../../testdata/transcripts/*.txtar")
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts found: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txtar"), func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			ar := txtar.Parse(data)
			out := runTranscript(t, ar, *updateTranscripts)
			if !*updateTranscripts || t.Failed() {
				return
			}
			if b := txtar.Format(out); string(b) != string(data) {
				if err := os.WriteFile(f, b, 0o644); err != nil {
					t.Fatal(err)
				}
				t.Logf("updated %s", f)
			}
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

	// Update mode (-update).
	update bool
	// fixed names the variables whose value the file itself determines (a
	// login's JID with the resource the step asked for): written literally.
	fixed map[string]bool
	// source is the text of the steps other than receives, where ids and
	// resources the client chose appear.
	source string
	// out collects the steps to write; a step that emits nothing is kept.
	out []txtar.File
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

// runTranscript runs ar against a new test server. In update mode it returns
// the archive to write; otherwise ar.
func runTranscript(t *testing.T, ar *txtar.Archive, update bool) *txtar.Archive {
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
	tr := newTranscript(t, update)
	tr.srv = startTestServer(t, edit)
	tr.peerCert = peer
	return tr.run(ar)
}

func newTranscript(t *testing.T, update bool) *transcript {
	return &transcript{t: t, actors: map[string]*wireClient{}, vars: map[string]string{}, update: update, fixed: map[string]bool{}}
}

// run runs the steps of ar in order and returns the archive as it is to be
// written (ar's own steps unless in update mode).
func (tr *transcript) run(ar *txtar.Archive) *txtar.Archive {
	var src strings.Builder
	for _, f := range ar.Files {
		src.WriteString(f.Name + "\n")
		if !strings.HasSuffix(f.Name, " receives") {
			src.Write(f.Data)
		}
	}
	tr.source = src.String()
	tr.out = nil
	for i, f := range ar.Files {
		tr.stepIdx = i
		actor, verb, ok := strings.Cut(f.Name, " ")
		if !ok {
			tr.t.Fatalf("step %q: want \"ACTOR VERB\"", f.Name)
		}
		n := len(tr.out)
		tr.step(actor, verb, strings.TrimSpace(string(f.Data)))
		if len(tr.out) == n {
			tr.out = append(tr.out, f)
		}
	}
	if !tr.update {
		return ar
	}
	return &txtar.Archive{Comment: ar.Comment, Files: tr.out}
}

// emit adds a step to the archive being written.
func (tr *transcript) emit(name string, lines []string) {
	f := txtar.File{Name: name}
	if len(lines) > 0 {
		f.Data = []byte(strings.Join(lines, "\n") + "\n")
	}
	tr.out = append(tr.out, f)
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
	addr := func() net.Addr {
		if direct {
			return tr.srv.directAddr[0]
		}
		return tr.srv.c2sAddrs[0]
	}
	switch verb {
	case "connects":
		tr.actors[actor] = dialWire(tr.t, addr(), direct)
	case "connects to s2s":
		tr.actors[actor] = dialWire(tr.t, tr.srv.s2sAddrs[0], false)
	case "logs in":
		c := dialWire(tr.t, addr(), direct)
		tr.actors[actor] = c
		resource := strings.TrimSpace(strings.ReplaceAll(body, "direct-tls", ""))
		if resource == "" {
			resource = actor
		}
		tr.vars[actor] = c.login("localhost", user(actor), resource, direct)
		tr.fixed[actor] = strings.HasSuffix(tr.vars[actor], "/"+resource)
	case "sends":
		tr.client(actor).send(tr.expand(body))
	case "starttls":
		if body == "cert" {
			tr.client(actor).startTLSWith(tr.peerCert)
		} else {
			tr.client(actor).startTLS()
		}
	case "receives":
		tr.receive(actor, tr.client(actor), body)
	case "is disconnected":
		c := tr.client(actor)
		if tr.update {
			// What comes before the close is not checked, so not recorded
			// either: shown for the review.
			for {
				e, err := c.nextErr()
				if err != nil {
					break
				}
				tr.t.Logf("step %d: %s got before the close (not recorded): %s", tr.stepIdx+1, actor, e)
			}
		}
		c.expectClosed()
	case "drops":
		// An unclean disconnect: the socket closes with no </stream:stream>.
		tr.client(actor).conn.Close()
		delete(tr.actors, actor)
	case "syncs":
		tr.sync(actor, tr.client(actor))
	default:
		tr.fatalf("unknown verb %q", verb)
	}
}

// sync pings the server and waits for the answer. In update mode what comes
// before it is recorded as a receives step ahead of the syncs step.
func (tr *transcript) sync(actor string, c *wireClient) {
	tr.t.Helper()
	id := fmt.Sprintf("sync%d", tr.stepIdx)
	c.send("<iq type='get' id='" + id + "' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
	var extra []string
	for {
		r, err := c.nextErr()
		if err != nil {
			tr.fatalf("sync: got error %v", err)
		}
		if r.Get("id") == id && r.Get("type") == "result" {
			break
		}
		if !tr.update {
			tr.fatalf("sync: got %s", r)
		}
		extra = append(extra, tr.render(tr.merge(nil, r), contentNS(c)))
	}
	if len(extra) > 0 {
		tr.emit(actor+" receives", extra)
		tr.emit(actor+" syncs", nil)
	}
}

const nsTranscript = "urn:xmppd:transcript"

const nsDialback = "jabber:server:dialback"

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

// contentNS is the default namespace of what c receives: the content
// namespace of its stream (jabber:server on s2s).
func contentNS(c *wireClient) string {
	if c.header.NS != "" {
		return c.header.NS
	}
	return stanza.NSClient
}

// wantItem is one expected element of a receives body, or the stream end
// (el nil), with its text as written.
type wantItem struct {
	el  *stanza.Element
	src string
}

// countingReader counts what the decoder took, to cut the expected body
// into the text of each element.
type countingReader struct {
	r io.Reader
	n int
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.n += n
	return n, err
}

// parseWant splits a receives body into an optional stream header and the
// items after it.
func (tr *transcript) parseWant(body, ns string) (hdr *stanza.StreamHeader, hdrSrc string, items []wantItem) {
	tr.t.Helper()
	text := body
	withHeader := strings.HasPrefix(body, "<?xml") || strings.HasPrefix(body, "<stream:stream")
	if !withHeader {
		// Bind the stream prefixes for the expected elements, in the
		// content namespace of the actor's stream.
		text = "<stream:stream xmlns='" + ns + "' xmlns:stream='" + stanza.NSStream + "' xmlns:db='" + nsDialback + "'>" + body
	}
	cr := &countingReader{r: strings.NewReader(text)}
	want := stanza.NewDecoder(cr, clientLimits())
	h, err := want.ReadHeader()
	if err != nil {
		tr.fatalf("bad expected header: %v", err)
	}
	pos := cr.n - want.Buffered()
	if withHeader {
		hdr, hdrSrc = &h, strings.TrimSpace(text[:pos])
	}
	for {
		el, err := want.Next()
		end := cr.n - want.Buffered()
		switch {
		case errors.Is(err, stanza.ErrStreamClosed):
			el = nil
		case err != nil && strings.Contains(err.Error(), "EOF"):
			return hdr, hdrSrc, items
		case err != nil:
			tr.fatalf("bad expected body: %v", err)
		}
		items = append(items, wantItem{el: el, src: strings.TrimSpace(text[pos:end])})
		pos = end
	}
}

// receive reads the items the body lists (a stream header, elements, the
// stream end) and matches each against the body, in order. In update mode
// it records what arrived instead (see the package comment).
func (tr *transcript) receive(actor string, c *wireClient, body string) {
	tr.t.Helper()
	wh, hdrSrc, items := tr.parseWant(body, contentNS(c))
	if wh != nil {
		got := c.readHeader()
		for _, f := range [][3]string{{"from", wh.From, got.From}, {"id", wh.ID, got.ID}, {"version", wh.Version, got.Version}, {"ns", wh.NS, got.NS}} {
			if f[1] != "" && !tr.match(f[1], f[2]) {
				tr.fatalf("stream header %s = %q, want %q", f[0], f[2], f[1])
			}
		}
	}
	if tr.update {
		tr.receiveUpdate(actor, c, hdrSrc, items)
		return
	}
	for _, w := range items {
		g, gerr := c.nextErr()
		if w.el == nil {
			if !errors.Is(gerr, stanza.ErrStreamClosed) {
				tr.fatalf("expected </stream:stream>, got %v %v", g, gerr)
			}
			continue
		}
		if gerr != nil {
			tr.fatalf("expected %s, got error %v", w.el, gerr)
		}
		if why := tr.matchElement(w.el, g); why != "" {
			tr.fatalf("%s\n got: %s\nwant: %s", why, g, w.el)
		}
	}
}

// receiveUpdate reads until every expected item has arrived, matched or
// changed, and emits the step (or steps, around unexpected elements) as it
// is to be written. A step where everything arrived as written, in order,
// emits nothing: it is kept as it is.
func (tr *transcript) receiveUpdate(actor string, c *wireClient, hdrSrc string, items []wantItem) {
	tr.t.Helper()
	type seg struct {
		extra bool
		text  string
	}
	var segs []seg
	if hdrSrc != "" {
		segs = append(segs, seg{text: hdrSrc})
	}
	pending := make([]int, len(items))
	for i := range pending {
		pending[i] = i
	}
	changed := false
	var arrived []string
	for len(pending) > 0 {
		g, gerr := c.nextErr()
		if errors.Is(gerr, stanza.ErrStreamClosed) {
			if k := pending[0]; items[k].el == nil {
				segs = append(segs, seg{text: items[k].src})
				pending = pending[1:]
				continue
			}
			tr.fatalf("</stream:stream> arrived; still expected:\n%s\narrived before it:\n%s", wantList(items, pending), strings.Join(arrived, "\n"))
		}
		if gerr != nil {
			tr.fatalf("got error %v; still expected:\n%s\narrived before it:\n%s", gerr, wantList(items, pending), strings.Join(arrived, "\n"))
		}
		arrived = append(arrived, g.String())
		found := -1
		for j, k := range pending {
			if items[k].el != nil && tr.tryMatch(items[k].el, g) == "" {
				found = j
				segs = append(segs, seg{text: items[k].src})
				break
			}
		}
		if found < 0 {
			for j, k := range pending {
				if items[k].el != nil && tr.corresponds(items[k].el, g) {
					found = j
					segs = append(segs, seg{text: tr.render(tr.merge(items[k].el, g), contentNS(c))})
					changed = true
					break
				}
			}
		}
		if found < 0 {
			segs = append(segs, seg{extra: true, text: tr.render(tr.merge(nil, g), contentNS(c))})
			changed = true
			continue
		}
		if found > 0 {
			changed = true // arrived ahead of an item listed before it
		}
		pending = slices.Delete(pending, found, found+1)
	}
	if !changed {
		return
	}
	for i := 0; i < len(segs); {
		var lines []string
		j := i
		for ; j < len(segs) && segs[j].extra == segs[i].extra; j++ {
			lines = append(lines, segs[j].text)
		}
		tr.emit(actor+" receives", lines)
		i = j
	}
	if len(segs) == 0 {
		tr.emit(actor+" receives", nil)
	}
}

func wantList(items []wantItem, idx []int) string {
	var s []string
	for _, k := range idx {
		s = append(s, items[k].src)
	}
	return strings.Join(s, "\n")
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

// peek is match without capturing.
func (tr *transcript) peek(pattern, got string) bool {
	if m := varRE.FindStringSubmatch(pattern); m != nil && m[0] == pattern {
		v, ok := tr.vars[m[1]]
		return m[1] == "*" || !ok || v == got
	}
	return pattern == got
}

// tryMatch is matchElement that captures nothing unless w matches.
func (tr *transcript) tryMatch(w, g *stanza.Element) string {
	saved := maps.Clone(tr.vars)
	why := tr.matchElement(w, g)
	if why != "" {
		tr.vars = saved
	}
	return why
}

func (tr *transcript) matchElement(w, g *stanza.Element) string {
	if w.Space != g.Space || w.Local != g.Local {
		return fmt.Sprintf("element {%s}%s, want {%s}%s", g.Space, g.Local, w.Space, w.Local)
	}
	if len(w.Attr) != len(g.Attr) {
		return fmt.Sprintf("<%s> has attributes %v, want %v", g.Local, attrNames(g), attrNames(w))
	}
	for _, a := range w.Attr {
		i := attrIndex(g, a)
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
			if j < len(wc) && tr.tryMatch(wc[j], c) == "" {
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

func attrIndex(e *stanza.Element, a stanza.Attr) int {
	return slices.IndexFunc(e.Attr, func(b stanza.Attr) bool { return b.Space == a.Space && b.Local == a.Local })
}

func attrNames(e *stanza.Element) []string {
	var out []string
	for _, a := range e.Attr {
		out = append(out, a.Local)
	}
	return out
}

// keyAttrs name what an element is (rather than what it says): an element
// that arrived with other values of these is another element, not a changed one.
var keyAttrs = map[string]bool{"id": true, "from": true, "to": true, "var": true, "jid": true, "node": true}

// corresponds reports whether g is w changed: the same element, and the same
// values (or a placeholder that takes them) for w's key attributes.
func (tr *transcript) corresponds(w, g *stanza.Element) bool {
	if w.Space != g.Space || w.Local != g.Local {
		return false
	}
	for _, a := range w.Attr {
		if a.Space != "" || !keyAttrs[a.Local] {
			continue
		}
		i := attrIndex(g, a)
		if i < 0 || !tr.peek(a.Value, g.Attr[i].Value) {
			return false
		}
	}
	return true
}

// merge returns g as it is to be written, given the expectation w it
// corresponds to (nil: none): attribute values, texts and children of w that
// still match are kept as written (placeholders, etc markers), the rest is
// what arrived, with run-dependent values as placeholders (fresh).
func (tr *transcript) merge(w, g *stanza.Element) *stanza.Element {
	out := &stanza.Element{Space: g.Space, Local: g.Local}
	var wc []*stanza.Element
	if w != nil {
		for _, a := range w.Attr {
			i := attrIndex(g, a)
			if i < 0 {
				continue
			}
			if v := g.Attr[i].Value; !tr.match(a.Value, v) {
				a.Value = tr.fresh(g, a.Local, v)
			}
			out.Attr = append(out.Attr, a)
		}
		wc = w.Children()
	}
	for _, a := range g.Attr {
		if w == nil || attrIndex(w, a) < 0 {
			a.Value = tr.fresh(g, a.Local, a.Value)
			out.Attr = append(out.Attr, a)
		}
	}
	gc := g.Children()
	if n := len(wc); n > 0 && wc[n-1].Is(nsTranscript, "etc") {
		// Keep the listed children that are still there, then the marker;
		// one that is gone is dropped (the diff shows it).
		j := 0
		for _, x := range wc[:n-1] {
			if k := tr.findChild(x, gc[j:]); k >= 0 {
				out.Append(tr.mergeChild(x, gc[j+k]))
				j += k + 1
			}
		}
		return out.Append(wc[n-1])
	}
	i := 0 // the next expected child
	for _, c := range gc {
		k := -1
		if i < len(wc) {
			for x := i; x < len(wc) && k < 0; x++ {
				if tr.tryMatch(wc[x], c) == "" {
					k = x
				}
			}
			for x := i; x < len(wc) && k < 0; x++ {
				if tr.corresponds(wc[x], c) {
					k = x
				}
			}
		}
		if k < 0 {
			out.Append(tr.merge(nil, c))
			continue
		}
		out.Append(tr.mergeChild(wc[k], c))
		i = k + 1
	}
	if len(gc) == 0 && len(wc) == 0 {
		gt := strings.TrimSpace(g.Text())
		if w != nil {
			if wt := strings.TrimSpace(w.Text()); tr.match(wt, gt) {
				gt = wt
			} else {
				gt = tr.fresh(g, "", gt)
			}
		} else {
			gt = tr.fresh(g, "", gt)
		}
		if gt != "" {
			out.AppendText(gt)
		}
	}
	return out
}

// findChild returns the index in gc of the first child that matches x, else
// of the first that corresponds to it, else -1.
func (tr *transcript) findChild(x *stanza.Element, gc []*stanza.Element) int {
	for k, c := range gc {
		if tr.tryMatch(x, c) == "" {
			return k
		}
	}
	for k, c := range gc {
		if tr.corresponds(x, c) {
			return k
		}
	}
	return -1
}

// mergeChild is x as written if c matches it (already captured by the
// search), else the merge of both.
func (tr *transcript) mergeChild(x, c *stanza.Element) *stanza.Element {
	if tr.tryMatch(x, c) == "" {
		return x
	}
	return tr.merge(x, c)
}

var (
	timestampRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d`)
	fullJIDRE   = regexp.MustCompile(`^(?:[^@/\s:'"<>]+@)?[^@/\s:'"<>]+/(\S+)$`)
)

// fresh is how a value that arrived (attribute attr of e, or its text when
// attr is "") is written where nothing written matches it: literally, unless
// it changes from run to run.
func (tr *transcript) fresh(e *stanza.Element, attr, v string) string {
	switch {
	case v == "":
		return v
	case attr == "" && e.Local == "text" && (e.Space == stanza.NSStanzas || e.Space == stanza.NSStreams):
		return "${*}" // for people; its wording is not part of the protocol
	case attr == "stamp" || timestampRE.MatchString(v):
		return "${*}"
	}
	if len(v) >= 4 {
		names := slices.Sorted(maps.Keys(tr.vars))
		for _, n := range names {
			if tr.vars[n] == v && !tr.fixed[n] {
				return "${" + n + "}"
			}
		}
	}
	if attr == "id" && !strings.Contains(tr.source, "'"+v+"'") && !strings.Contains(tr.source, `"`+v+`"`) {
		return "${*}"
	}
	if m := fullJIDRE.FindStringSubmatch(v); m != nil && (attr == "" || attr == "from" || attr == "to" || attr == "jid") && !strings.Contains(tr.source, m[1]) {
		return "${*}" // a resource the server made up
	}
	return v
}

// render writes an element on one line, in the conventions of the
// transcripts: stream: and db: prefixes, xmlns only where it changes,
// single quotes.
func (tr *transcript) render(e *stanza.Element, defaultNS string) string {
	var b strings.Builder
	renderTo(&b, e, defaultNS)
	return b.String()
}

var (
	attrEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "'", "&apos;", "\n", "&#10;", "\r", "&#13;", "\t", "&#9;")
	textEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")
)

func renderTo(b *strings.Builder, e *stanza.Element, defaultNS string) {
	name := e.Local
	switch e.Space {
	case stanza.NSStream:
		name = "stream:" + name
	case nsDialback:
		name = "db:" + name
	}
	b.WriteString("<" + name)
	if name == e.Local && e.Space != defaultNS {
		b.WriteString(" xmlns='" + attrEscaper.Replace(e.Space) + "'")
		defaultNS = e.Space
	}
	for i, a := range e.Attr {
		b.WriteString(" ")
		switch a.Space {
		case "":
		case stanza.NSXML:
			b.WriteString("xml:")
		default:
			p := "a" + strconv.Itoa(i)
			b.WriteString("xmlns:" + p + "='" + attrEscaper.Replace(a.Space) + "' " + p + ":")
		}
		b.WriteString(a.Local + "='" + attrEscaper.Replace(a.Value) + "'")
	}
	children := e.Children()
	text := ""
	if len(children) == 0 {
		text = e.Text()
	}
	if len(children) == 0 && text == "" {
		b.WriteString("/>")
		return
	}
	b.WriteString(">")
	for _, c := range children {
		renderTo(b, c, defaultNS)
	}
	b.WriteString(textEscaper.Replace(text))
	b.WriteString("</" + name + ">")
}

// fakeWire connects a wireClient to a scripted server over net.Pipe: the
// script's elements are written in order; "SYNC" waits for the client's
// next ping and answers it.
func fakeWire(t *testing.T, script []string) *wireClient {
	cli, srv := net.Pipe()
	t.Cleanup(func() { cli.Close(); srv.Close() })
	pings := make(chan string, 16)
	go func() {
		d := stanza.NewDecoder(io.MultiReader(strings.NewReader(fmt.Sprintf(clientHeader, "localhost")), srv), clientLimits())
		if _, err := d.ReadHeader(); err != nil {
			return
		}
		for {
			el, err := d.Next()
			if err != nil {
				close(pings)
				return
			}
			if el.Child("urn:xmpp:ping", "ping") != nil {
				pings <- el.Get("id")
			}
		}
	}()
	go func() {
		io.WriteString(srv, "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' from='localhost' id='s1' version='1.0'>")
		for _, s := range script {
			if s == "SYNC" {
				id, ok := <-pings
				if !ok {
					return
				}
				s = "<iq type='result' id='" + id + "' from='localhost' to='alice@localhost/alice'/>"
			}
			if _, err := io.WriteString(srv, s); err != nil {
				return
			}
		}
	}()
	c := &wireClient{t: t, conn: cli, dec: stanza.NewDecoder(cli, clientLimits())}
	c.readHeader()
	return c
}

// TestTranscriptUpdate runs the update logic on a small transcript against a
// scripted server, then the result in normal mode against the same script.
func TestTranscriptUpdate(t *testing.T) {
	const in = `The comment stays as it is,
  with its <presence/> and ${alice} untouched.

-- alice sends --
<presence id='p1'><status>here</status></presence>
-- alice receives --
<message type='error' id='m1' from='bob@localhost' to='alice@localhost/alice'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>
-- alice receives --
<iq type='set' id='${push}' to='alice@localhost/alice'><query xmlns='jabber:iq:roster' ver='1'><item jid='bob@localhost' subscription='none'/></query></iq>
<message from='bob@localhost/bob' to='alice@localhost/alice' id='m2'><body>hi</body><delay xmlns='urn:xmpp:delay' from='localhost' stamp='${*}'/></message>
-- alice syncs --
-- alice receives --
<iq type='result' id='i1' from='localhost' to='${alice}'>
  <query xmlns='http://jabber.org/protocol/disco#info'>
    <feature var='urn:xmpp:ping'/>
    <etc xmlns='urn:xmppd:transcript'/>
  </query>
</iq>
-- alice sends --
<iq type='result' id='${push}'/>
`
	script := []string{
		// The echo of alice's presence: a new step before the first receives.
		"<presence id='p1' from='alice@localhost/alice' to='alice@localhost/alice'><status>here</status></presence>",
		// An error text is added: rewritten, the text as ${*}.
		"<message type='error' id='m1' from='bob@localhost' to='alice@localhost/alice'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>Not here.</text></error></message>",
		// m2 comes first now and matches: kept as written. The push has a
		// new ver: rewritten, its id still ${push}.
		"<message from='bob@localhost/bob' to='alice@localhost/alice' id='m2'><body>hi</body><delay xmlns='urn:xmpp:delay' from='localhost' stamp='2026-12-04T16:00:00Z'/></message>",
		"<iq type='set' id='a1b2c3d4' to='alice@localhost/alice'><query xmlns='jabber:iq:roster' ver='2'><item jid='bob@localhost' subscription='none'/></query></iq>",
		// Before the sync's answer: a resource and an id the server made up.
		"<presence from='bob@localhost/3f9a1c7e' to='alice@localhost/alice'><delay xmlns='urn:xmpp:delay' stamp='2026-12-04T16:00:00Z'/></presence>",
		"<iq type='get' id='q9x' from='localhost' to='alice@localhost/alice'><ping xmlns='urn:xmpp:ping'/></iq>",
		"SYNC",
		// Still matches, with more features: the step is kept byte for byte.
		"<iq type='result' id='i1' from='localhost' to='alice@localhost/alice'><query xmlns='http://jabber.org/protocol/disco#info'><identity category='server' type='im'/><feature var='urn:xmpp:ping'/><feature var='urn:xmpp:time'/></query></iq>",
	}
	const want = `The comment stays as it is,
  with its <presence/> and ${alice} untouched.

-- alice sends --
<presence id='p1'><status>here</status></presence>
-- alice receives --
<presence id='p1' from='alice@localhost/alice' to='alice@localhost/alice'><status>here</status></presence>
-- alice receives --
<message type='error' id='m1' from='bob@localhost' to='alice@localhost/alice'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>${*}</text></error></message>
-- alice receives --
<message from='bob@localhost/bob' to='alice@localhost/alice' id='m2'><body>hi</body><delay xmlns='urn:xmpp:delay' from='localhost' stamp='${*}'/></message>
<iq type='set' id='${push}' to='alice@localhost/alice'><query xmlns='jabber:iq:roster' ver='2'><item jid='bob@localhost' subscription='none'/></query></iq>
-- alice receives --
<presence from='${*}' to='alice@localhost/alice'><delay xmlns='urn:xmpp:delay' stamp='${*}'/></presence>
<iq type='get' id='${*}' from='localhost' to='alice@localhost/alice'><ping xmlns='urn:xmpp:ping'/></iq>
-- alice syncs --
-- alice receives --
<iq type='result' id='i1' from='localhost' to='${alice}'>
  <query xmlns='http://jabber.org/protocol/disco#info'>
    <feature var='urn:xmpp:ping'/>
    <etc xmlns='urn:xmppd:transcript'/>
  </query>
</iq>
-- alice sends --
<iq type='result' id='${push}'/>
`
	run := func(ar *txtar.Archive, update bool) *txtar.Archive {
		tr := newTranscript(t, update)
		tr.actors["alice"] = fakeWire(t, script)
		tr.vars["alice"] = "alice@localhost/alice"
		tr.fixed["alice"] = true
		return tr.run(ar)
	}
	out := txtar.Format(run(txtar.Parse([]byte(in)), true))
	if string(out) != want {
		t.Fatalf("updated transcript:\n%s\nwant:\n%s", out, want)
	}
	// What the update wrote holds against the same server.
	run(txtar.Parse(out), false)
	// And a second update changes nothing.
	if again := txtar.Format(run(txtar.Parse(out), true)); string(again) != string(out) {
		t.Fatalf("second update:\n%s", again)
	}
}
