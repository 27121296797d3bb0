//go:build interop

package main

// Federation (issue 4) against real Prosody and ejabberd, both from Debian.
//
// The lab (shared/interop/README.md §1.3): Prosody serves a.test on
// 127.0.0.2, ejabberd b.test on 127.0.0.3, xmppd c.test on 127.0.0.4, each on
// the standard ports, so a server that finds no SRV record connects to
// <domain>:5269. Names come from the lab's own hosts file
// (testdata/interop/fed/hosts.tmpl): Prosody reads it through libunbound's
// hoststxt; ejabberd's inetrc names it too, but p1_xmpp falls back to glibc's
// getaddrinfo for A records, so ejabberd runs under
// testdata/interop/fed/hostsjail.sh (a private mount namespace where the lab's
// hosts file and a loopback-only resolv.conf are bind-mounted over /etc/hosts
// and /etc/resolv.conf for that process tree only). The machine's /etc/hosts
// is never touched and no DNS query leaves loopback (INTEROP_FED_LEAKCHECK=1
// checks that with tcpdump). xmppd needs no names at all: static routes.
//
// Every certificate is issued by a CA made in Go for the test. Two modes:
//
//	valid     each server trusts the CA and refuses unverified peers:
//	          s2s authenticates with SASL EXTERNAL (XEP-0178)
//	dialback  nobody trusts the CA: s2s authenticates with Server Dialback (XEP-0220)
//
// The peers' logs show which method authenticated each direction; the tests
// assert it.
//
//	go test -tags interop -count=1 -v ./cmd/xmppd/ -run InteropFederation
//
// TestInteropFederationPeersSelfTest proves the harness on its own: Prosody
// and ejabberd federate with each other and run the whole scenario. The other
// tests put xmppd on one side. Set INTEROP_FED_KEEP=1 to keep the lab folder
// (configs, logs) after the test.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	osuser "os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// Certificate modes.
const (
	fedValid    = "valid"    // trusted CA: SASL EXTERNAL
	fedDialback = "dialback" // untrusted certificates: Server Dialback
)

var fedModes = []string{fedValid, fedDialback}

// The lab's addresses (hosts.tmpl says the same).
const (
	prosodyDomain, prosodyIP   = "a.test", "127.0.0.2"
	ejabberdDomain, ejabberdIP = "b.test", "127.0.0.3"
	xmppdDomain, xmppdIP       = "c.test", "127.0.0.4"
)

// fedLab is one test's folder: the CA, every certificate, the hosts file and
// the servers' folders. It is world-readable (ejabberd runs as its own user).
type fedLab struct {
	Mode       string
	Dir        string
	CAFile     string
	HostsFile  string
	ResolvConf string // "nameserver 127.0.0.1": for libunbound
	// SRVPort, when set, moves Prosody's s2s listener to that port, drops
	// xmppd's static route to a.test and gives xmppd SRVDNS (a DNS server in
	// the test answering _xmpp-server._tcp.a.test with it): xmppd can then
	// only reach Prosody by following the SRV record.
	SRVPort int
	SRVDNS  string
}

// cert and key paths of a domain's certificate (SAN DNS:domain, DNS:*.domain).
func (l *fedLab) certFile(domain string) string { return filepath.Join(l.Dir, "ca", domain+".crt") }
func (l *fedLab) keyFile(domain string) string  { return filepath.Join(l.Dir, "ca", domain+".key") }

func fedTemplateDir(t *testing.T) string { return filepath.Join(interopDir(t), "fed") }

// newFedLab checks the prerequisites, makes the folder, the CA and the
// certificates for a.test, b.test and c.test, and the hosts file.
func newFedLab(t *testing.T, mode string) *fedLab {
	t.Helper()
	checkPlatform(t)
	if os.Geteuid() != 0 {
		msg := "federation interop tests run as root (ejabberdctl switches to user ejabberd; Prosody needs run_as_root)"
		if inCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	dir, err := os.MkdirTemp("", "xmppd-fed-")
	if err != nil {
		t.Fatal(err)
	}
	fedLeakCheck(t) // registered first: its cleanup runs after every server has stopped
	t.Cleanup(func() {
		if os.Getenv("INTEROP_FED_KEEP") != "" {
			t.Logf("lab kept in %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	l := &fedLab{
		Mode:       mode,
		Dir:        dir,
		CAFile:     filepath.Join(dir, "ca", "ca.crt"),
		HostsFile:  filepath.Join(dir, "hosts"),
		ResolvConf: filepath.Join(dir, "resolv.conf"),
	}
	hosts, err := os.ReadFile(filepath.Join(fedTemplateDir(t), "hosts.tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	fedWriteFile(t, l.HostsFile, hosts, 0o644)
	fedWriteFile(t, l.ResolvConf, []byte("# no resolver: any DNS query fails on loopback\nnameserver 127.0.0.1\n"), 0o644)
	l.makeCerts(t, prosodyDomain, ejabberdDomain, xmppdDomain)
	t.Logf("federation lab %s (mode %s)", dir, mode)
	return l
}

// fedLeakCheck, with INTEROP_FED_LEAKCHECK=1, captures DNS and XMPP
// packets that are not loopback traffic for the whole test (tcpdump -i any)
// and fails the test if one concerns the lab: a query naming a *.test
// domain, or XMPP ports. Other DNS traffic (other processes on the machine)
// is only logged. Off by default (needs tcpdump).
func fedLeakCheck(t *testing.T) {
	t.Helper()
	if os.Getenv("INTEROP_FED_LEAKCHECK") == "" {
		return
	}
	tcpdump := needTool(t, "tcpdump")
	pcap := filepath.Join(t.TempDir(), "leak.pcap")
	const filter = "(port 53 or port 5222 or port 5223 or port 5269 or port 5270) and not net 127.0.0.0/8 and not ip6 host ::1"
	cmd := exec.Command(tcpdump, "-i", "any", "-n", "-U", "-w", pcap, filter)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "listening on") {
				close(ready)
				break
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("tcpdump did not start capturing within 10s")
	}
	t.Cleanup(func() {
		time.Sleep(300 * time.Millisecond)
		cmd.Process.Signal(syscall.SIGINT)
		cmd.Wait()
		out, err := exec.Command(tcpdump, "-r", pcap, "-n").Output()
		if err != nil {
			t.Errorf("reading %s: %v", pcap, err)
			return
		}
		var ours, others []string
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			switch {
			case line == "":
			case strings.Contains(line, ".test.") || !strings.Contains(line, ".53:") && !strings.Contains(line, ".53 >"):
				ours = append(ours, line)
			default:
				others = append(others, line)
			}
		}
		if len(others) > 0 {
			t.Logf("LEAKCHECK: %d DNS packets off loopback not about the lab (other processes):\n%s", len(others), indent(strings.Join(others, "\n")))
		}
		if len(ours) > 0 {
			t.Errorf("LEAKCHECK: %d packets of the lab left loopback:\n%s", len(ours), indent(strings.Join(ours, "\n")))
		} else {
			t.Logf("LEAKCHECK: no lab packet off loopback (tcpdump -i any %q)", filter)
		}
	})
}

func fedWriteFile(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
}

// makeCerts writes the lab CA and one certificate per domain, ECDSA P-256.
// In mode "dialback" the same CA exists but nobody is told to trust it.
func (l *fedLab) makeCerts(t *testing.T, domains ...string) {
	t.Helper()
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "xmppd interop federation CA " + randomHex(4)},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(48 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	fedWriteFile(t, l.CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644)
	for i, d := range domains {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(int64(i + 2)),
			Subject:      pkix.Name{CommonName: d},
			DNSNames:     []string{d, "*." + d},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(48 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			// s2s uses the same certificate as TLS server and TLS client.
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		pk, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		fedWriteFile(t, l.certFile(d), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
		fedWriteFile(t, l.keyFile(d), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), 0o600)
	}
}

// render fills testdata/interop/fed/<name>.tmpl into path.
func renderFedTemplate(t *testing.T, name, path string, data any) {
	t.Helper()
	tmpl, err := template.ParseFiles(filepath.Join(fedTemplateDir(t), name+".tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, data); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	fedWriteFile(t, path, b.Bytes(), 0o644)
}

// fedUser is one account on one of the lab's servers.
type fedUser struct {
	JID, Password string
	Addr          string // the server's STARTTLS c2s address
}

// fedPeer is a running Prosody or ejabberd.
type fedPeer struct {
	Kind    string // "prosody" or "ejabberd"
	Domain  string
	IP      string
	Dir     string
	LogFile string
	Users   map[string]fedUser
}

func (p *fedPeer) log(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(p.LogFile)
	if err != nil {
		t.Fatalf("%s log: %v", p.Kind, err)
	}
	return string(b)
}

// fedCmd runs a command (a ctl tool) with a timeout and returns its output.
func fedCmd(t *testing.T, timeout time.Duration, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = nil
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	t0 := time.Now()
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after %v: %w", timeout, err)
	}
	t.Logf("$ %s %s  (%.2fs, err=%v)%s", filepath.Base(name), fedRedact(args), time.Since(t0).Seconds(), err, fedBrief(out.String()))
	return out.String(), err
}

// fedRedact hides the password argument of "register USER HOST PASSWORD".
func fedRedact(args []string) string {
	a := append([]string(nil), args...)
	for i := range a {
		if a[i] == "register" && i+3 < len(a) {
			a[i+3] = "***"
		}
	}
	return strings.Join(a, " ")
}

func fedBrief(out string) string {
	out = strings.TrimSpace(out)
	if out == "" {
		return ""
	}
	return "\n" + indent(out)
}

// fedWaitTCP waits until addr accepts a connection.
func fedWaitTCP(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: nothing listening within %v: %w", addr, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fedWaitTCPFree waits until nothing listens on addr any more (the previous
// test's server is gone).
func fedWaitTCPFree(t *testing.T, addrs ...string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for _, addr := range addrs {
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				break
			}
			c.Close()
			if time.Now().After(deadline) {
				t.Fatalf("%s is still in use (another federation server left running?)", addr)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func fedPidAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	// A zombie is as good as gone.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	if i := bytes.LastIndexByte(b, ')'); i > 0 && i+2 < len(b) && b[i+2] == 'Z' {
		return false
	}
	return true
}

func fedReadPid(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// fedWaitPidGone waits for pid to exit, then kills it (by PID) if it has not.
func fedWaitPidGone(t *testing.T, what string, pid int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for fedPidAlive(pid) {
		if time.Now().After(deadline) {
			t.Errorf("%s (pid %d) still running %v after stop: SIGKILL", what, pid, timeout)
			syscall.Kill(pid, syscall.SIGKILL)
			time.Sleep(200 * time.Millisecond)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// needProsody checks prosodyctl and libunbound: without lua-unbound Prosody
// falls back to its own resolver, which reads /etc/hosts and /etc/resolv.conf.
func needProsody(t *testing.T) string {
	t.Helper()
	ctl := needTool(t, "prosodyctl")
	if out, err := exec.Command("lua5.4", "-e", `require "lunbound"`).CombinedOutput(); err != nil {
		msg := fmt.Sprintf("Prosody needs lua-unbound here (apt-get install lua-unbound): %v %s", err, bytes.TrimSpace(out))
		if inCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return ctl
}

// startProsody runs Prosody for domain on ip with the given users (password
// random), and stops it at the end of the test.
func startProsody(t *testing.T, l *fedLab, domain, ip string, users ...string) *fedPeer {
	t.Helper()
	ctl := needProsody(t)
	fedWaitTCPFree(t, ip+":5222", ip+":5269")
	t0 := time.Now()
	p := &fedPeer{Kind: "prosody", Domain: domain, IP: ip, Dir: filepath.Join(l.Dir, "prosody-"+domain), Users: map[string]fedUser{}}
	p.LogFile = filepath.Join(p.Dir, "prosody.log")
	if err := os.MkdirAll(filepath.Join(p.Dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct{ from, to string }{{l.certFile(domain), domain + ".crt"}, {l.keyFile(domain), domain + ".key"}} {
		b, err := os.ReadFile(f.from)
		if err != nil {
			t.Fatal(err)
		}
		fedWriteFile(t, filepath.Join(p.Dir, f.to), b, 0o600)
	}
	cfg := filepath.Join(p.Dir, "prosody.cfg.lua")
	s2sPort := 5269
	if l.SRVPort != 0 {
		s2sPort = l.SRVPort
	}
	renderFedTemplate(t, "prosody.cfg.lua", cfg, map[string]any{
		"Dir": p.Dir, "Domain": domain, "IP": ip, "Valid": l.Mode == fedValid, "S2SPort": s2sPort,
		"CAFile": l.CAFile, "HostsFile": l.HostsFile, "ResolvConf": l.ResolvConf,
	})
	for _, u := range users {
		pw := u + "-" + randomHex(6)
		if out, err := fedCmd(t, 30*time.Second, nil, ctl, "--config", cfg, "register", u, domain, pw); err != nil {
			t.Fatalf("prosodyctl register %s: %v\n%s", u, err, out)
		}
		p.Users[u] = fedUser{JID: u + "@" + domain, Password: pw, Addr: ip + ":5222"}
	}
	pidFile := filepath.Join(p.Dir, "prosody.pid")
	out, err := fedCmd(t, 30*time.Second, nil, ctl, "--config", cfg, "start")
	pid := fedReadPid(pidFile)
	t.Cleanup(func() {
		t0 := time.Now()
		fedCmd(t, 30*time.Second, nil, ctl, "--config", cfg, "stop")
		fedWaitPidGone(t, "prosody", pid, 15*time.Second)
		t.Logf("prosody %s stopped in %.2fs", domain, time.Since(t0).Seconds())
		if t.Failed() {
			fedLogTail(t, "prosody "+domain, p.LogFile, 80)
		}
	})
	if err != nil {
		t.Fatalf("prosodyctl start: %v\n%s", err, out)
	}
	for _, a := range []string{ip + ":5222", fmt.Sprintf("%s:%d", ip, s2sPort)} {
		if err := fedWaitTCP(a, 15*time.Second); err != nil {
			fedLogTail(t, "prosody "+domain, p.LogFile, 80)
			t.Fatal(err)
		}
	}
	if pid == 0 {
		pid = fedReadPid(pidFile)
	}
	t.Logf("prosody %s up on %s (pid %d) in %.2fs", domain, ip, pid, time.Since(t0).Seconds())
	return p
}

// ejabberdCtl is one instance's ejabberdctl, run under hostsjail.sh: the
// node (and every ctl command) sees the lab's hosts file and a loopback-only
// resolv.conf as /etc/hosts and /etc/resolv.conf, because p1_xmpp falls
// back to glibc's getaddrinfo for A records, whatever inetrc says.
type ejabberdCtl struct {
	bin, dir string
	jail     []string // hostsjail.sh HOSTS RESOLV
}

func (e ejabberdCtl) run(t *testing.T, timeout time.Duration, args ...string) (string, error) {
	t.Helper()
	argv := append(append(e.jail[1:], e.bin, "--config-dir", e.dir, "--logs", filepath.Join(e.dir, "logs"), "--spool", filepath.Join(e.dir, "db")), args...)
	return fedCmd(t, timeout, nil, e.jail[0], argv...)
}

var reEjabberdStarted = regexp.MustCompile(`ejabberd \S+ is started in the node`)

// startEjabberd runs ejabberd for domain on ip with the given users, as user
// ejabberd (ejabberdctl switches to it), with a node name and distribution
// port of its own and no epmd, and stops it at the end of the test.
func startEjabberd(t *testing.T, l *fedLab, domain, ip string, users ...string) *fedPeer {
	t.Helper()
	bin := needTool(t, "ejabberdctl")
	needTool(t, "unshare")
	acct, err := osuser.Lookup("ejabberd")
	if err != nil {
		t.Fatalf("user ejabberd (made by the ejabberd package): %v", err)
	}
	uid, _ := strconv.Atoi(acct.Uid)
	gid, _ := strconv.Atoi(acct.Gid)
	fedWaitTCPFree(t, ip+":5222", ip+":5269")
	t0 := time.Now()
	p := &fedPeer{Kind: "ejabberd", Domain: domain, IP: ip, Dir: filepath.Join(l.Dir, "ejabberd-"+domain), Users: map[string]fedUser{}}
	p.LogFile = filepath.Join(p.Dir, "logs", "ejabberd.log")
	for _, d := range []string{"db", "logs"} {
		if err := os.MkdirAll(filepath.Join(p.Dir, d), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	var pemData []byte
	for _, f := range []string{l.keyFile(domain), l.certFile(domain)} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		pemData = append(pemData, b...)
	}
	fedWriteFile(t, filepath.Join(p.Dir, domain+".pem"), pemData, 0o600)
	node := fmt.Sprintf("ejabberd-%s-%s@localhost", strings.SplitN(domain, ".", 2)[0], randomHex(4))
	data := map[string]any{
		"Dir": p.Dir, "Domain": domain, "IP": ip, "Valid": l.Mode == fedValid, "CAFile": l.CAFile,
		"HostsFile": l.HostsFile, "Node": node, "DistPort": fedFreePort(t),
	}
	renderFedTemplate(t, "ejabberd.yml", filepath.Join(p.Dir, "ejabberd.yml"), data)
	renderFedTemplate(t, "ejabberdctl.cfg", filepath.Join(p.Dir, "ejabberdctl.cfg"), data)
	renderFedTemplate(t, "inetrc", filepath.Join(p.Dir, "inetrc"), data)
	err = filepath.Walk(p.Dir, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, gid)
	})
	if err != nil {
		t.Fatal(err)
	}
	ctl := ejabberdCtl{bin, p.Dir, []string{filepath.Join(fedTemplateDir(t), "hostsjail.sh"), l.HostsFile, l.ResolvConf}}
	epmdBefore := fedPidsNamed("epmd")
	pidFile := filepath.Join(p.Dir, "ejabberd.pid")
	out, err := ctl.run(t, 60*time.Second, "start")
	t.Cleanup(func() {
		t0 := time.Now()
		// Stop unless the node is known to be gone (no pid file yet: try anyway).
		pid := fedReadPid(pidFile)
		if pid == 0 || fedPidAlive(pid) {
			ctl.run(t, 60*time.Second, "stop")
			fedWaitPidGone(t, "ejabberd", pid, 30*time.Second)
		}
		// ejabberd must not have left an epmd behind; stop only one it started.
		for _, e := range fedPidsNamed("epmd") {
			if !fedContainsInt(epmdBefore, e) {
				t.Errorf("ejabberd left epmd (pid %d) running: SIGTERM", e)
				syscall.Kill(e, syscall.SIGTERM)
			}
		}
		t.Logf("ejabberd %s stopped in %.2fs", domain, time.Since(t0).Seconds())
		if t.Failed() {
			fedLogTail(t, "ejabberd "+domain, p.LogFile, 80)
		}
	})
	if err != nil {
		t.Fatalf("ejabberdctl start: %v\n%s", err, out)
	}
	// Wait for "is started" in the log instead of `ejabberdctl started`
	// (which polls every 2 s); give up early if the node died.
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, _ := os.ReadFile(p.LogFile)
		if reEjabberdStarted.Match(b) {
			break
		}
		if time.Now().After(deadline) {
			fedLogTail(t, "ejabberd "+domain, p.LogFile, 80)
			t.Fatalf("ejabberd %s did not start within 60s", domain)
		}
		if pid := fedReadPid(pidFile); pid != 0 && !fedPidAlive(pid) {
			fedLogTail(t, "ejabberd "+domain, p.LogFile, 80)
			t.Fatalf("ejabberd %s (pid %d) died while starting", domain, pid)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, a := range []string{ip + ":5222", ip + ":5269"} {
		if err := fedWaitTCP(a, 15*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range fedPidsNamed("epmd") {
		if !fedContainsInt(epmdBefore, e) {
			t.Errorf("ejabberd started epmd (pid %d): ERL_DIST_PORT should prevent that", e)
		}
	}
	for _, u := range users {
		pw := u + "-" + randomHex(6)
		if out, err := ctl.run(t, 30*time.Second, "register", u, domain, pw); err != nil {
			t.Fatalf("ejabberdctl register %s: %v\n%s", u, err, out)
		}
		p.Users[u] = fedUser{JID: u + "@" + domain, Password: pw, Addr: ip + ":5222"}
	}
	t.Logf("ejabberd %s up on %s (node %s, pid %d) in %.2fs", domain, ip, node, fedReadPid(pidFile), time.Since(t0).Seconds())
	return p
}

func fedFreePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// fedPidsNamed lists the processes whose command name is name.
func fedPidsNamed(name string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err == nil && strings.TrimSpace(string(b)) == name {
			pids = append(pids, pid)
		}
	}
	return pids
}

func fedContainsInt(xs []int, x int) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func fedLogTail(t *testing.T, what, path string, n int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Logf("%s log %s: %v", what, path, err)
		return
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	t.Logf("%s log (last %d lines of %s):\n%s", what, len(lines), path, indent(strings.Join(lines, "\n")))
}

// xmppdFedConfig is xmppd's configuration for the lab. writeXmppdFedConfig
// turns it into TOML with exactly the keys the s2s work implements.
type xmppdFedConfig struct {
	Domains          []string
	DataDir          string
	Certs            [][2]string // cert, key
	C2SListen        []string
	C2SDirectTLS     []string
	S2SListen        []string
	S2SDirectTLS     []string
	CAFile           string            // extra trust for s2s; "" writes no ca_file
	RequireValidCert bool              // refuse peers whose certificate does not verify (no dialback alone)
	DNSServer        string            // "" writes no dns_server
	Routes           map[string]string // domain -> host:port
}

func fedTOMLStrings(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = strconv.Quote(x)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// writeXmppdFedConfig writes c as xmppd's TOML config:
//
//	domains = ["c.test"]
//	data_dir = "..."
//	[log]  level = "debug", format = "text"
//	[[tls.certificates]]  cert = "...", key = "..."
//	[c2s]  listen = ["127.0.0.4:5222"], direct_tls = ["127.0.0.4:5223"]
//	[s2s]  listen = ["127.0.0.4:5269"], direct_tls = ["127.0.0.4:5270"],
//	       ca_file = "...", require_valid_cert = true|false, dns_server = "..."
//	[s2s.routes]  "a.test" = "127.0.0.2:5269", "b.test" = "127.0.0.3:5269"
func writeXmppdFedConfig(path string, c xmppdFedConfig) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# written by interop_fed_test.go\n")
	fmt.Fprintf(&b, "domains = %s\n", fedTOMLStrings(c.Domains))
	fmt.Fprintf(&b, "data_dir = %s\n\n", strconv.Quote(c.DataDir))
	fmt.Fprintf(&b, "[log]\nlevel = \"debug\"\nformat = \"text\"\n\n")
	for _, ck := range c.Certs {
		fmt.Fprintf(&b, "[[tls.certificates]]\ncert = %s\nkey = %s\n\n", strconv.Quote(ck[0]), strconv.Quote(ck[1]))
	}
	fmt.Fprintf(&b, "[c2s]\nlisten = %s\ndirect_tls = %s\n\n", fedTOMLStrings(c.C2SListen), fedTOMLStrings(c.C2SDirectTLS))
	fmt.Fprintf(&b, "[s2s]\nlisten = %s\ndirect_tls = %s\n", fedTOMLStrings(c.S2SListen), fedTOMLStrings(c.S2SDirectTLS))
	if c.CAFile != "" {
		fmt.Fprintf(&b, "ca_file = %s\n", strconv.Quote(c.CAFile))
	}
	fmt.Fprintf(&b, "require_valid_cert = %t\n", c.RequireValidCert)
	if c.DNSServer != "" {
		fmt.Fprintf(&b, "dns_server = %s\n", strconv.Quote(c.DNSServer))
	}
	if len(c.Routes) > 0 {
		fmt.Fprintf(&b, "\n[s2s.routes]\n")
		domains := make([]string, 0, len(c.Routes))
		for d := range c.Routes {
			domains = append(domains, d)
		}
		sort.Strings(domains)
		for _, d := range domains {
			fmt.Fprintf(&b, "%s = %s\n", strconv.Quote(d), strconv.Quote(c.Routes[d]))
		}
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

// xmppdFedConfigFor is the lab's xmppd config in mode l.Mode.
func xmppdFedConfigFor(l *fedLab, dir string) xmppdFedConfig {
	c := xmppdFedConfig{
		Domains:      []string{xmppdDomain},
		DataDir:      filepath.Join(dir, "data"),
		Certs:        [][2]string{{l.certFile(xmppdDomain), l.keyFile(xmppdDomain)}},
		C2SListen:    []string{xmppdIP + ":5222"},
		C2SDirectTLS: []string{xmppdIP + ":5223"},
		S2SListen:    []string{xmppdIP + ":5269"},
		S2SDirectTLS: []string{xmppdIP + ":5270"},
		Routes: map[string]string{
			prosodyDomain:  prosodyIP + ":5269",
			ejabberdDomain: ejabberdIP + ":5269",
		},
		// Nothing answers there: with the static routes xmppd needs no DNS,
		// and should it ask anyway, the query stays on loopback.
		DNSServer: "127.0.0.1:53",
	}
	if l.Mode == fedValid {
		c.CAFile = l.CAFile
		c.RequireValidCert = true
	}
	if l.SRVPort != 0 {
		delete(c.Routes, prosodyDomain)
		c.DNSServer = l.SRVDNS
	}
	return c
}

// fedXmppd is a running `xmppd serve` for c.test.
type fedXmppd struct {
	Dir, Config string
	Log         *logBuffer
	Users       map[string]fedUser
}

// startFedXmppd writes the config, checks it, adds the users with the CLI,
// starts `xmppd serve`, waits for the c2s and s2s listeners, and stops it
// with SIGTERM at the end of the test.
func startFedXmppd(t *testing.T, l *fedLab, users ...string) *fedXmppd {
	t.Helper()
	fedWaitTCPFree(t, xmppdIP+":5222", xmppdIP+":5269")
	t0 := time.Now()
	dir := filepath.Join(l.Dir, "xmppd-"+xmppdDomain)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	s := &fedXmppd{Dir: dir, Config: filepath.Join(dir, "xmppd.toml"), Log: newLogBuffer(), Users: map[string]fedUser{}}
	if err := writeXmppdFedConfig(s.Config, xmppdFedConfigFor(l, dir)); err != nil {
		t.Fatal(err)
	}
	cfgText, _ := os.ReadFile(s.Config)
	t.Logf("xmppd config %s:\n%s", s.Config, indent(string(cfgText)))
	xmppdCLI(t, "", "", "config", "check", s.Config)
	for _, u := range users {
		a := fedUser{JID: u + "@" + xmppdDomain, Password: u + "-" + randomHex(6), Addr: xmppdIP + ":5222"}
		out := xmppdCLI(t, s.Config, a.Password+"\n", "user", "add", a.JID, "--password-stdin")
		if want := "user " + a.JID + " created"; !strings.Contains(out, want) {
			t.Fatalf("user add: got %q, want %q", out, want)
		}
		s.Users[u] = a
	}
	cmd := exec.Command(interopBin, "--config", s.Config, "serve")
	cmd.Dir = dir
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = os.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logDone := make(chan struct{})
	go func() {
		s.Log.consume(stderr)
		close(logDone)
	}()
	exited := make(chan error, 1)
	go func() {
		<-logDone
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		t0 := time.Now()
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("xmppd serve exited with %v after SIGTERM, want status 0", err)
			}
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			t.Errorf("xmppd serve did not exit within 20s of SIGTERM")
			<-exited
		}
		if t.Failed() || os.Getenv("INTEROP_SERVER_LOG") != "" {
			t.Logf("xmppd log:\n%s", indent(s.Log.String()))
		}
		t.Logf("xmppd stopped in %.2fs", time.Since(t0).Seconds())
	})
	if _, err := s.Log.waitFor(reStartTLS, 15*time.Second); err != nil {
		t.Fatalf("c2s listener: %v\n%s", err, s.Log)
	}
	for _, a := range []string{xmppdIP + ":5222", xmppdIP + ":5223", xmppdIP + ":5269", xmppdIP + ":5270"} {
		if err := fedWaitTCP(a, 10*time.Second); err != nil {
			t.Fatalf("xmppd is not listening on every c2s and s2s address of its config: %v\n%s", err, s.Log)
		}
	}
	t.Logf("xmppd %s up on %s in %.2fs", xmppdDomain, xmppdIP, time.Since(t0).Seconds())
	return s
}

// startFedActor logs u in with testdata/interop/actor_slixmpp.py (STARTTLS,
// certificate not checked: client TLS is not what these tests are about).
func startFedActor(t *testing.T, name string, u fedUser) *actor {
	t.Helper()
	py := needPython(t)
	cmd := exec.Command(py, filepath.Join(interopDir(t), "actor_slixmpp.py"), u.JID, u.Password, u.Addr)
	return runActor(t, name, cmd)
}

// fedEnd is one side of a federation scenario: a user on one server.
type fedEnd struct {
	Name   string // for logs: "xmppd", "prosody", "ejabberd"
	Domain string
	User   fedUser
}

func fedEvIs(ev, jid string) func(imEvent) bool {
	return func(e imEvent) bool { return e.s("ev") == ev && e.s("jid") == jid }
}

func fedEvIsOp(op string) func(imEvent) bool {
	return func(e imEvent) bool { return e.s("ev") == "iq-error" && e.s("op") == op }
}

// fedExpectIQ waits for the answer to a ping or disco command: the event, or a
// failure naming the iq error.
func fedExpectIQ(t *testing.T, a *actor, what, ev, op, jid string) imEvent {
	t.Helper()
	e := a.expect(what, func(e imEvent) bool { return fedEvIs(ev, jid)(e) || fedEvIsOp(op)(e) })
	if e.s("ev") == "iq-error" {
		t.Fatalf("%s: %v", what, e)
	}
	return e
}

func fedHasString(v any, want string) bool {
	xs, _ := v.([]any)
	for _, x := range xs {
		if s, _ := x.(string); s == want {
			return true
		}
	}
	return false
}

// fedScenario: a user of x and a user of p, on two federated servers, add
// each other, see each other's presence, chat both ways, ping and disco each
// other's server and client across, and p's user writes to x's user while
// that user is offline: the message is stored by x's server and delivered,
// with a delay stamp, at login.
func fedScenario(t *testing.T, x, p fedEnd) {
	t.Helper()
	tok := randomHex(4)
	xj, pj := x.User.JID, p.User.JID
	t0 := time.Now()
	step := func(what string) {
		t.Logf("STEP %s done at %.2fs", what, time.Since(t0).Seconds())
	}

	X := startFedActor(t, x.Name+":"+xj, x.User)
	P := startFedActor(t, p.Name+":"+pj, p.User)
	X.do("presence")
	P.do("presence")
	step("both online")

	// Subscriptions both ways; requests and approvals cross the federation.
	X.do("subscribe %s", pj)
	P.expect("subscription request from "+xj, presenceFrom(xj, "subscribe"))
	step("first stanza across (s2s " + x.Domain + " -> " + p.Domain + " set up)")
	P.do("approve %s", xj)
	P.do("subscribe %s", xj)
	X.expect("subscription request from "+pj, presenceFrom(pj, "subscribe"))
	X.do("approve %s", pj)
	pPres := X.expect(pj+"'s presence", presenceFrom(pj+"/", "available"))
	xPres := P.expect(xj+"'s presence", presenceFrom(xj+"/", "available"))
	pFull, xFull := pPres.s("from"), xPres.s("from")
	step("subscribed both ways, presence seen both ways")
	for _, r := range []struct {
		a       *actor
		contact string
	}{{X, pj}, {P, xj}} {
		r.a.do("roster")
		item := r.a.expect("roster item "+r.contact, func(e imEvent) bool { return e.s("ev") == "item" && e.s("jid") == r.contact })
		if item.s("subscription") != "both" {
			t.Fatalf("%s's roster has %s with subscription %q, want both", r.a.name, r.contact, item.s("subscription"))
		}
		r.a.expect("end of roster", func(e imEvent) bool { return e.s("ev") == "roster-end" })
	}

	// Messages both ways.
	X.do("message %s hello from %s %s", pj, x.Domain, tok)
	m := P.expect("message from "+xj, messageWith("hello from "+x.Domain+" "+tok))
	if !strings.HasPrefix(m.s("from"), xj+"/") {
		t.Fatalf("message from %q, want %s/...", m.s("from"), xj)
	}
	P.do("message %s hello from %s %s", xj, p.Domain, tok)
	m = X.expect("message from "+pj, messageWith("hello from "+p.Domain+" "+tok))
	if !strings.HasPrefix(m.s("from"), pj+"/") {
		t.Fatalf("message from %q, want %s/...", m.s("from"), pj)
	}
	step("messages both ways")

	// Presence changes both ways.
	P.do("presence away at lunch %s", tok)
	pe := X.expect(pj+" away", func(e imEvent) bool { return presenceFrom(pj+"/", "available")(e) && e.s("show") == "away" })
	if pe.s("status") != "at lunch "+tok {
		t.Fatalf("status %q, want %q", pe.s("status"), "at lunch "+tok)
	}
	X.do("presence dnd in a meeting %s", tok)
	pe = P.expect(xj+" dnd", func(e imEvent) bool { return presenceFrom(xj+"/", "available")(e) && e.s("show") == "dnd" })
	if pe.s("status") != "in a meeting "+tok {
		t.Fatalf("status %q, want %q", pe.s("status"), "in a meeting "+tok)
	}
	step("presence changes both ways")

	// iq across: ping (XEP-0199) the remote server and the remote client,
	// disco#info (XEP-0030) of the remote server and the remote client.
	for _, r := range []struct {
		a                    *actor
		remoteDomain, remote string
	}{{X, p.Domain, pFull}, {P, x.Domain, xFull}} {
		for _, to := range []string{r.remoteDomain, r.remote} {
			r.a.do("ping %s", to)
			if e := fedExpectIQ(t, r.a, "ping "+to, "ping", "ping", to); e.s("type") != "result" {
				t.Fatalf("ping %s: %v", to, e)
			}
		}
		r.a.do("disco %s", r.remoteDomain)
		d := fedExpectIQ(t, r.a, "disco#info "+r.remoteDomain, "disco", "disco", r.remoteDomain)
		if !fedHasString(d["identities"], "server/im") || !fedHasString(d["features"], "urn:xmpp:ping") {
			t.Fatalf("disco#info of %s: want identity server/im and feature urn:xmpp:ping, got %v", r.remoteDomain, d)
		}
		r.a.do("disco %s", r.remote)
		d = fedExpectIQ(t, r.a, "disco#info "+r.remote, "disco", "disco", r.remote)
		if !fedHasString(d["features"], "urn:xmpp:ping") {
			t.Fatalf("disco#info of %s (slixmpp): want feature urn:xmpp:ping, got %v", r.remote, d)
		}
	}
	step("ping and disco#info across, servers and clients")

	// vcard-temp across: each publishes a vCard at home, the other reads it
	// through the federation (an iq to a remote bare JID, answered by that
	// user's server).
	for _, r := range []struct {
		owner, reader *actor
		jid, fn       string
	}{{X, P, xj, "Alice at " + x.Domain + " " + tok}, {P, X, pj, "Bob at " + p.Domain + " " + tok}} {
		r.owner.do("vcard-set %s", r.fn)
		r.owner.expect("vcard published", func(e imEvent) bool { return e.s("ev") == "vcard-set" })
		r.reader.do("vcard-get %s", r.jid)
		v := r.reader.expect("vcard of "+r.jid, func(e imEvent) bool { return e.s("ev") == "vcard" || e.s("ev") == "iq-error" })
		if v.s("fn") != r.fn {
			t.Fatalf("%s read %s's vCard FN %q, want %q (%v)", r.reader.name, r.jid, v.s("fn"), r.fn, v)
		}
	}
	step("vcard-temp across")

	// Offline across domains: x's user logs out, p's user writes, x's server
	// stores the message and delivers it at the next login.
	X.quit()
	P.expect(xj+" unavailable", presenceFrom(xj+"/", "unavailable"))
	P.do("message %s while you were away %s", xj, tok)
	// A ping to x's server after the message, on the same s2s stream: when it
	// is answered, the message has been handled (stored).
	P.do("ping %s", x.Domain)
	fedExpectIQ(t, P, "ping after the offline message", "ping", "ping", x.Domain)
	X = startFedActor(t, x.Name+":"+xj, x.User)
	X.do("presence")
	m = X.expect("the offline message", messageWith("while you were away "+tok))
	if m["delay"] != true {
		t.Fatalf("offline message without a delay stamp: %v", m)
	}
	if !strings.HasPrefix(m.s("from"), pj) {
		t.Fatalf("offline message from %q, want %s", m.s("from"), pj)
	}
	P.expect(xj+" back online", presenceFrom(xj+"/", "available"))
	step("offline message across domains stored and delivered at login")

	X.quit()
	P.quit()
}

// fedAuth is one authenticated s2s stream as a peer logged it.
type fedAuth struct {
	Dir    string // "out": the peer connected to the remote; "in": the remote connected
	Method string // "EXTERNAL", "dialback" or "unknown"
	Line   string // the log line that shows it
}

var (
	// Prosody 0.12 debug log: "Nov 22 01:47:45 s2sout55d547c20b40\tdebug\tmessage".
	reProsodyLine = regexp.MustCompile(`^\w{3} +\d+ [\d:]+ (\S+)\t(\w+)\t(.*)$`)
	reProsodyAuth = regexp.MustCompile(`^connection (\S+)->(\S+) is now authenticated for (\S+)$`)
	// s2s SASL is only ever EXTERNAL; the <success/> is on the stream itself.
	reProsodySASLOut = regexp.MustCompile(`^Received\[s2sout_unauthed\]: <success[^>]*urn:ietf:params:xml:ns:xmpp-sasl`)
	reProsodySASLIn  = regexp.MustCompile(`^Sending\[s2sin_unauthed\]: <success[^>]*urn:ietf:params:xml:ns:xmpp-sasl`)
	reProsodyDBOut   = regexp.MustCompile(`^sent dialback key on outgoing s2s stream`)
	reProsodyDBIn    = regexp.MustCompile(`^asking (\S+) if key \S+ belongs to them`)
	// ejabberd 23.01 info log.
	reEjabberdAuth = regexp.MustCompile(`Accepted (inbound|outbound) s2s (\S+) authentication (\S+) -> (\S+) `)
)

// fedAuths reads from p's log how each s2s stream between p and remote was
// authenticated. Prosody: every line of a stream carries the stream's id,
// so the "now authenticated" line is matched with that stream's SASL
// <success/> or dialback lines. ejabberd logs the method in one line.
func fedAuths(p *fedPeer, log, remote string) []fedAuth {
	var auths []fedAuth
	switch p.Kind {
	case "prosody":
		bySession := map[string][]string{}
		var order []string
		for _, line := range strings.Split(log, "\n") {
			m := reProsodyLine.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			if _, ok := bySession[m[1]]; !ok {
				order = append(order, m[1])
			}
			bySession[m[1]] = append(bySession[m[1]], m[3])
		}
		for _, id := range order {
			msgs := bySession[id]
			for _, msg := range msgs {
				m := reProsodyAuth.FindStringSubmatch(msg)
				if m == nil {
					continue
				}
				a := fedAuth{Method: "unknown", Line: id + " " + msg}
				var sasl, db *regexp.Regexp
				switch {
				case strings.HasPrefix(id, "s2sout") && m[1] == p.Domain && m[2] == remote:
					a.Dir, sasl, db = "out", reProsodySASLOut, reProsodyDBOut
				case strings.HasPrefix(id, "s2sin") && m[1] == remote && m[2] == p.Domain:
					a.Dir, sasl, db = "in", reProsodySASLIn, reProsodyDBIn
				default:
					continue
				}
				for _, x := range msgs {
					if sasl.MatchString(x) {
						a.Method = "EXTERNAL"
					} else if dm := db.FindStringSubmatch(x); dm != nil && (len(dm) == 1 || dm[1] == remote) && a.Method == "unknown" {
						a.Method = "dialback"
					}
				}
				auths = append(auths, a)
			}
		}
	case "ejabberd":
		for _, line := range strings.Split(log, "\n") {
			m := reEjabberdAuth.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			a := fedAuth{Method: m[2], Line: line[strings.Index(line, "Accepted"):]}
			switch {
			case m[1] == "outbound" && m[3] == p.Domain && m[4] == remote:
				a.Dir = "out"
			case m[1] == "inbound" && m[3] == remote && m[4] == p.Domain:
				a.Dir = "in"
			default:
				continue
			}
			auths = append(auths, a)
		}
	}
	return auths
}

// checkFedAuth asserts from p's log that the streams between p and remote
// were authenticated, in both directions, with the mode's method only.
func checkFedAuth(t *testing.T, p *fedPeer, remote, mode string) {
	t.Helper()
	want := "EXTERNAL"
	if mode == fedDialback {
		want = "dialback"
	}
	auths := fedAuths(p, p.log(t), remote)
	for _, dir := range []string{"out", "in"} {
		desc := fmt.Sprintf("%s %s -> %s", p.Kind, p.Domain, remote)
		if dir == "in" {
			desc = fmt.Sprintf("%s %s <- %s", p.Kind, p.Domain, remote)
		}
		n := 0
		for _, a := range auths {
			if a.Dir != dir {
				continue
			}
			n++
			if a.Method != want {
				t.Errorf("%s: authenticated with %s, want %s (mode %s): %s", desc, a.Method, want, mode, a.Line)
			} else {
				t.Logf("AUTH %s: %s (%s log: %s)", desc, a.Method, p.Kind, a.Line)
			}
		}
		if n == 0 {
			fedLogTail(t, p.Kind, p.LogFile, 150)
			t.Errorf("%s: the %s log shows no authenticated stream (mode %s, want %s)", desc, p.Kind, mode, want)
		}
	}
}

// TestInteropFederationPeersSelfTest proves the lab without xmppd: Prosody
// (a.test) and ejabberd (b.test) federate with each other in both modes,
// alice@a.test and carol@b.test run the whole scenario, and both logs show
// the expected auth method in both directions.
func TestInteropFederationPeersSelfTest(t *testing.T) {
	for _, mode := range fedModes {
		t.Run(mode, func(t *testing.T) {
			timing(t)
			l := newFedLab(t, mode)
			a := startProsody(t, l, prosodyDomain, prosodyIP, "alice")
			b := startEjabberd(t, l, ejabberdDomain, ejabberdIP, "carol")
			fedScenario(t,
				fedEnd{Name: "prosody", Domain: a.Domain, User: a.Users["alice"]},
				fedEnd{Name: "ejabberd", Domain: b.Domain, User: b.Users["carol"]})
			checkFedAuth(t, a, b.Domain, mode)
			checkFedAuth(t, b, a.Domain, mode)
		})
	}
}

// TestInteropFederationProsody: xmppd (c.test) and Prosody (a.test), in both
// certificate modes.
func TestInteropFederationProsody(t *testing.T) {
	for _, mode := range fedModes {
		t.Run(mode, func(t *testing.T) {
			timing(t)
			l := newFedLab(t, mode)
			needProsody(t)
			needPython(t)
			p := startProsody(t, l, prosodyDomain, prosodyIP, "bob")
			s := startFedXmppd(t, l, "alice")
			fedScenario(t,
				fedEnd{Name: "xmppd", Domain: xmppdDomain, User: s.Users["alice"]},
				fedEnd{Name: "prosody", Domain: p.Domain, User: p.Users["bob"]})
			checkFedAuth(t, p, xmppdDomain, mode)
		})
	}
}

// TestInteropFederationProsodySRV: xmppd finds Prosody through DNS: no
// static route, and Prosody's s2s listener is on 15269, which only the
// _xmpp-server._tcp.a.test SRV record (served by a DNS server in this test,
// on loopback) names. The A fallback (a.test:5269) would find nothing.
func TestInteropFederationProsodySRV(t *testing.T) {
	timing(t)
	l := newFedLab(t, fedDialback)
	needProsody(t)
	needPython(t)
	l.SRVPort = 15269
	l.SRVDNS = serveFedDNS(t, "a.test", prosodyIP, l.SRVPort)
	p := startProsody(t, l, prosodyDomain, prosodyIP, "bob")
	s := startFedXmppd(t, l, "alice")
	fedScenario(t,
		fedEnd{Name: "xmppd", Domain: xmppdDomain, User: s.Users["alice"]},
		fedEnd{Name: "prosody", Domain: p.Domain, User: p.Users["bob"]})
	if !strings.Contains(s.Log.String(), fmt.Sprintf("%s:%d", prosodyIP, l.SRVPort)) {
		t.Errorf("xmppd's log never mentions %s:%d, the SRV target", prosodyIP, l.SRVPort)
	}
}

// serveFedDNS answers, on a loopback UDP port, the SRV query for
// _xmpp-server._tcp.<domain> (target <domain>:port) and the A query for
// <domain> (ip); everything else is NXDOMAIN. It returns "127.0.0.1:PORT".
func serveFedDNS(t *testing.T, domain, ip string, port int) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	addr := net.ParseIP(ip).To4()
	srvName := "_xmpp-server._tcp." + domain + "."
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var m dnsmessage.Message
			if m.Unpack(buf[:n]) != nil || len(m.Questions) != 1 {
				continue
			}
			q := m.Questions[0]
			resp := dnsmessage.Message{Header: dnsmessage.Header{ID: m.ID, Response: true, Authoritative: true}, Questions: m.Questions}
			h := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60, Type: q.Type}
			name := strings.ToLower(q.Name.String())
			switch {
			case q.Type == dnsmessage.TypeSRV && name == srvName:
				resp.Answers = append(resp.Answers, dnsmessage.Resource{Header: h, Body: &dnsmessage.SRVResource{
					Priority: 0, Weight: 0, Port: uint16(port), Target: dnsmessage.MustNewName(domain + ".")}})
			case q.Type == dnsmessage.TypeA && name == domain+".":
				resp.Answers = append(resp.Answers, dnsmessage.Resource{Header: h, Body: &dnsmessage.AResource{A: [4]byte(addr)}})
			case name == domain+".":
				// the name exists, no records of this type
			default:
				resp.RCode = dnsmessage.RCodeNameError
			}
			if out, err := resp.Pack(); err == nil {
				pc.WriteTo(out, from)
			}
		}
	}()
	return pc.LocalAddr().String()
}

// TestInteropFederationEjabberd: xmppd (c.test) and ejabberd (b.test), in
// both certificate modes.
func TestInteropFederationEjabberd(t *testing.T) {
	for _, mode := range fedModes {
		t.Run(mode, func(t *testing.T) {
			timing(t)
			l := newFedLab(t, mode)
			needTool(t, "ejabberdctl")
			needPython(t)
			p := startEjabberd(t, l, ejabberdDomain, ejabberdIP, "bob")
			s := startFedXmppd(t, l, "alice")
			fedScenario(t,
				fedEnd{Name: "xmppd", Domain: xmppdDomain, User: s.Users["alice"]},
				fedEnd{Name: "ejabberd", Domain: p.Domain, User: p.Users["bob"]})
			checkFedAuth(t, p, xmppdDomain, mode)
		})
	}
}
