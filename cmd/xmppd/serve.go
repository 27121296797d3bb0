package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/time/rate"

	"github.com/xmppd/xmppd/c2s"
	"github.com/xmppd/xmppd/c2s/auth"
	"github.com/xmppd/xmppd/router"
	"github.com/xmppd/xmppd/s2s"
	"github.com/xmppd/xmppd/s2s/srv"
	"github.com/xmppd/xmppd/session"
	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xeps"
)

// gcPercent is the serve process's garbage-collection target, unless GOGC
// is set in the environment. Idle sessions are most of a server's memory,
// and the process's RSS follows the heap's peak, which Go's default of 100
// lets grow to twice what is live between collections. Measured with
// xmppbench (5000 idle TLS sessions, one per user; runs vary by ±0.4 KiB):
// 100 → 17.5 KiB of RSS per session, 75 → 16.1-16.3, 60 → 15.6-16.4, with no
// difference in logins/s or chat messages/s that stood out of the noise; 50
// saves a little more and costs 10-20 % of both (docs/performance.md).
const gcPercent = 60

// setGCPercent applies gcPercent unless the environment sets GOGC.
func setGCPercent(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
}

func newServeCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the XMPP server",
		Long: "Serve runs the server until SIGINT or SIGTERM. Its config comes from --config, else\n" +
			"$" + configEnv + ", else " + systemConfigPath + " if it exists; with none it serves localhost,\n" +
			"keeps its data in ./xmppd-data and generates a self-signed certificate there.\n" +
			"`xmppd config example` prints every setting with its default.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, src, err := loadConfigSource(cmd)
			if err != nil {
				return err
			}
			log := cfg.Logger(os.Stderr)
			log.Info("config", "file", src.String(), "data", absPath(cfg.DataDir))
			setGCPercent(os.Getenv)
			stopProfile, err := startProfile(os.Getenv)
			if err != nil {
				return err
			}
			defer stopProfile()
			srv, err := startServer(cmd.Context(), cfg, log)
			if err != nil {
				return err
			}
			<-cmd.Context().Done()
			log.Info("shutting down")
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return srv.Shutdown(ctx)
		},
	}
}

// server is one running xmppd: the wiring of storage, modules, router and listeners.
type server struct {
	cfg        Config
	log        *slog.Logger
	db         *storage.DB
	host       *xeps.Host
	c2s        *c2s.Server
	s2s        *s2s.Server
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	c2sAddrs   []net.Addr // STARTTLS listeners, as bound (port 0 resolved)
	directAddr []net.Addr // Direct TLS listeners
	s2sAddrs   []net.Addr // federation listeners (STARTTLS, then Direct TLS)
}

// startServer opens everything and starts listening. It is the only place the
// packages are wired together; tests start the same server in-process.
func startServer(parent context.Context, cfg Config, log *slog.Logger) (*server, error) {
	return startServerWith(parent, cfg, log, modules(cfg))
}

// startServerWith is startServer with the modules given: tests add a module
// of their own to the list of modules.go.
func startServerWith(parent context.Context, cfg Config, log *slog.Logger, mods []xeps.Module) (_ *server, err error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data folder: %w", err)
	}
	db, err := storage.Open(cfg.DBPath(), storage.Options{Timeout: time.Second})
	if err != nil {
		if errors.Is(err, storage.ErrLocked) {
			return nil, fmt.Errorf("%s is in use: is another xmppd running with this data folder? %w", cfg.DBPath(), err)
		}
		return nil, err
	}
	ctx, cancel := context.WithCancel(parent)
	s := &server{cfg: cfg, log: log, db: db, cancel: cancel}
	defer func() {
		if err != nil {
			cancel()
			s.wg.Wait()
			db.Close()
		}
	}()
	tlsCfg, err := LoadTLS(cfg, log)
	if err != nil {
		return nil, err
	}

	// The one registry of client sessions: c2s binds into it, the router
	// delivers through it, presence and the modules read it.
	sessions := session.NewRegistry()
	host := xeps.NewHost(xeps.Config{Domains: cfg.Domains, Logger: log, DB: db, Sessions: sessions})
	if err := host.Register(mods...); err != nil {
		return nil, err
	}
	names := make([]string, len(mods))
	for i, m := range mods {
		names[i] = m.Name()
	}

	limits := stanza.DefaultLimits
	limits.MaxStanza = cfg.C2S.MaxStanzaSize
	pre := limits
	pre.MaxStanza = cfg.C2S.PreAuthStanzaSize
	c2sCfg := c2s.Config{
		Domains:         cfg.Domains,
		TLS:             tlsCfg,
		RequireTLS:      cfg.C2S.RequireTLS,
		Limits:          limits,
		PreAuthLimits:   pre,
		AuthTimeout:     cfg.C2S.AuthTimeout.D(),
		MaxAuthFailures: cfg.C2S.MaxAuthFailures,
		QueueSize:       cfg.C2S.QueueSize,
		ResumeTimeout:   cfg.C2S.ResumeTimeout.D(),
		MaxUnacked:      cfg.C2S.MaxUnacked,
		// Resumable sessions outlive a restart (XEP-0198, c2s/smsave.go).
		SavedSessions: db.KeyValue("c2s_sessions"),
		Credentials:   db,
		Throttle: auth.NewThrottle(auth.ThrottleConfig{
			AddrBurst: cfg.C2S.AuthChecksBurst,
			AddrRate:  rate.Limit(float64(cfg.C2S.AuthChecksPerMin) / 60),
		}),
		MaxPreAuthConns: cfg.C2S.MaxPreAuthConns,
		Features:        host.StreamFeatures,
		Sessions:        sessions,
		OnBound:         host.SessionBound,
		OnClosed:        host.SessionClosed,
		Logger:          log.With("component", "c2s"),
	}
	if d := cfg.C2S.FastTokenLifetime.D(); d > 0 {
		c2sCfg.FastTokens, c2sCfg.FastTokenLifetime = db, d
	}
	s.c2s = c2s.New(c2sCfg)
	roots, err := peerRoots(cfg.S2S.CAFile)
	if err != nil {
		return nil, err
	}
	s2sLimits := limits
	s2sLimits.MaxStanza = cfg.S2S.MaxStanzaSize
	s.s2s = s2s.New(s2s.Config{
		Domains:          cfg.Domains,
		TLS:              tlsCfg,
		RootCAs:          roots,
		RequireValidCert: cfg.S2S.RequireValidCert,
		Resolver:         resolver{&srv.Resolver{Routes: cfg.S2S.Routes, DNSServer: cfg.S2S.DNSServer}},
		Limits:           s2sLimits,
		ConnectTimeout:   min(10*time.Second, cfg.S2S.ConnectTimeout.D()),
		AuthTimeout:      cfg.S2S.ConnectTimeout.D(),
		IdleTimeout:      cfg.S2S.IdleTimeout.D(),
		QueueSize:        cfg.S2S.QueueSize,
		// Service domains (conference., upload., ...) are ours too for
		// federation: stanzas to them are accepted, streams from them made.
		IsLocal: host.Serves,
		Logger:  log, // s2s scopes it itself
	})
	rt := router.New(host, sessions, s.s2s, log.With("component", "router"))
	s.c2s.SetRouter(rt)
	s.c2s.SetUndeliverable(rt.Undeliverable)
	s.s2s.SetRouter(rt)
	host.SetSender(rt.Route)
	host.SetDeliverer(rt.Deliver)
	host.SetBacklogDeliverer(rt.DeliverBacklog)
	// Sessions saved at the last shutdown are back, hibernated, before a
	// client can try to resume them.
	if err := s.c2s.Restore(ctx); err != nil {
		return nil, err
	}

	for _, l := range []struct {
		addrs  []string
		direct bool
		out    *[]net.Addr
	}{{cfg.C2S.Listen, false, &s.c2sAddrs}, {cfg.C2S.DirectTLS, true, &s.directAddr}} {
		for _, a := range l.addrs {
			ln, err := net.Listen("tcp", a)
			if err != nil {
				return nil, fmt.Errorf("c2s listener: %w", err)
			}
			*l.out = append(*l.out, ln.Addr())
			kind := "starttls"
			if l.direct {
				kind = "direct-tls"
			}
			log.Info("listening", "service", "c2s", "kind", kind, "addr", ln.Addr().String())
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				if err := s.c2s.Serve(ctx, ln, l.direct); err != nil {
					log.Error("c2s listener stopped", "addr", ln.Addr().String(), "err", err)
				}
			}()
		}
	}

	for _, l := range []struct {
		addrs  []string
		direct bool
	}{{cfg.S2S.Listen, false}, {cfg.S2S.DirectTLS, true}} {
		for _, a := range l.addrs {
			ln, err := net.Listen("tcp", a)
			if err != nil {
				return nil, fmt.Errorf("s2s listener: %w", err)
			}
			s.s2sAddrs = append(s.s2sAddrs, ln.Addr())
			kind := "starttls"
			if l.direct {
				kind = "direct-tls"
			}
			log.Info("listening", "service", "s2s", "kind", kind, "addr", ln.Addr().String())
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				if err := s.s2s.Serve(ctx, ln, l.direct); err != nil {
					log.Error("s2s listener stopped", "addr", ln.Addr().String(), "err", err)
				}
			}()
		}
	}

	admin := &AdminServer{DB: db, Domains: cfg.Domains, Log: log.With("component", "admin"),
		OnUserDeleted: func(domain, local string) {
			s.c2s.Kick(local+"@"+domain, &stanza.StreamError{Condition: "not-authorized", Text: "the account was deleted"})
			// Every module drops what it kept for the user (caches included),
			// so an account made again under the name starts empty.
			if err := host.AccountDeleted(ctx, accountJID(domain, local)); err != nil {
				log.Error("account deleted: a module failed to drop the user's data", "user", local+"@"+domain, "err", err)
			}
		},
		OnUserCreated: func(domain, local string) {
			if err := host.AccountCreated(ctx, accountJID(domain, local)); err != nil {
				log.Error("account created: a module failed", "user", local+"@"+domain, "err", err)
			}
		}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := admin.ListenAndServe(ctx, cfg.AdminSocket()); err != nil {
			log.Error("admin socket stopped", "err", err)
		}
	}()
	if err := host.Start(ctx); err != nil {
		return nil, err
	}
	s.host = host
	log.Info("xmppd started", "domains", cfg.Domains, "data", cfg.DataDir, "modules", names, "pipeline", host.Pipeline())
	return s, nil
}

// Shutdown sends <system-shutdown/> to every stream, stops the listeners and
// the admin socket, and closes the database cleanly.
func (s *server) Shutdown(ctx context.Context) error {
	s.c2s.Shutdown(ctx)
	s.s2s.Shutdown(ctx)
	if err := s.host.Stop(ctx); err != nil {
		s.log.Error("stopping modules", "err", err)
	}
	s.cancel()
	s.wg.Wait()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("closing the database: %w", err)
	}
	s.log.Info("stopped")
	return nil
}

// accountJID is the bare JID of an account the admin socket changed (its
// parts were checked there).
func accountJID(domain, local string) stanza.JID {
	j, _ := stanza.NewJID(local, domain, "")
	return j
}

// resolver adapts srv.Resolver to what the s2s package asks for.
type resolver struct{ r *srv.Resolver }

func (r resolver) Targets(ctx context.Context, domain string) ([]s2s.Target, error) {
	ts, err := r.r.Targets(ctx, domain)
	out := make([]s2s.Target, len(ts))
	for i, t := range ts {
		out[i] = s2s.Target{Host: t.Host, Port: t.Port, DirectTLS: t.DirectTLS}
	}
	return out, err
}

// peerRoots is what federation trusts: the system roots plus caFile, if set.
func peerRoots(caFile string) (*x509.CertPool, error) {
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	if caFile == "" {
		return roots, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("s2s.ca_file: %w", err)
	}
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("s2s.ca_file: %s holds no PEM certificate", caFile)
	}
	return roots, nil
}
