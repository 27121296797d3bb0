// Package caps implements the client side of XEP-0115: Entity Capabilities
// (version 1.6) as a server uses it: it learns what each local client
// supports from the <c/> in its presence. For every hash+ver it has not
// seen, it asks the client that advertised it for disco#info of node#ver,
// once, verifies the answer against the ver (§5.1, §5.4, with XEP-0128
// extended forms) and caches it keyed by hash and ver: in memory (bounded,
// least recently used first out) and in a key-value store, so a restart does
// not ask again. A ver that does not verify is not cached. Legacy caps (no
// 'hash') and hashes we cannot compute are ignored.
//
// Other modules ask through xeps.Host.Caps (Supports, Features). The
// server's own capabilities in the stream features are xeps/disco's.
package caps

import (
	"container/list"
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/xeps"
)

// XEP is the number of the extension this package implements.
const XEP = "0115"

// Defaults of the Module's limits.
const (
	DefaultMaxEntries = 1024
	DefaultMaxStored  = 10000
	DefaultMaxQueries = 64
	DefaultTimeout    = 30 * time.Second
	// MaxInfoSize bounds the serialized disco#info answer cached for one ver.
	MaxInfoSize = 64 << 10
	// maxVer bounds the length of a ver (base64 of SHA-512 is 88 bytes).
	maxVer = 128
)

// Module caches clients' capabilities. Make it with New; the zero limits
// are the defaults.
type Module struct {
	// MaxEntries bounds the verified vers kept in memory.
	MaxEntries int
	// MaxStored bounds the vers persisted; past it new ones live in memory only.
	MaxStored int
	// MaxQueries bounds the disco#info queries waiting for an answer.
	MaxQueries int
	// Timeout is how long one query waits for its answer.
	Timeout time.Duration

	h   xeps.Sender
	kv  xeps.KeyValue
	log *slog.Logger

	mu       sync.Mutex
	lru      *list.List               // of *entry, most recently used first
	entries  map[string]*list.Element // key (hash + " " + ver) →
	jids     map[string]string        // full JID → key, while available
	inflight map[string]bool          // keys being asked for
	stored   int                      // entries in kv
}

// entry is one verified ver.
type entry struct {
	key      string
	features []string // sorted
}

var (
	_ xeps.Module     = (*Module)(nil)
	_ xeps.CapsReader = (*Module)(nil)
)

// New returns the caps module with the default limits.
func New() *Module { return &Module{} }

// Name implements xeps.Module.
func (*Module) Name() string { return "caps" }

// Register implements xeps.Module.
func (m *Module) Register(h *xeps.Host) error {
	m.h, m.log = h, h.Logger()
	if m.MaxEntries <= 0 {
		m.MaxEntries = DefaultMaxEntries
	}
	if m.MaxStored <= 0 {
		m.MaxStored = DefaultMaxStored
	}
	if m.MaxQueries <= 0 {
		m.MaxQueries = DefaultMaxQueries
	}
	if m.Timeout <= 0 {
		m.Timeout = DefaultTimeout
	}
	m.lru = list.New()
	m.entries = map[string]*list.Element{}
	m.jids = map[string]string{}
	m.inflight = map[string]bool{}
	kv := h.KeyValue("caps")
	m.kv = kv
	if err := kv.Scan(context.Background(), nil, func(_, _ []byte) error { m.stored++; return nil }); err != nil {
		return err
	}
	h.ProvideCaps(m)
	h.OnPresence(m.presence)
	h.OnUnavailable(func(_ context.Context, full stanza.JID, _ bool) { m.forget(full) })
	h.OnSessionClosed(func(_ context.Context, s xeps.Session) { m.forget(s.Address()) })
	return nil
}

func (m *Module) forget(full stanza.JID) {
	m.mu.Lock()
	delete(m.jids, full.String())
	m.mu.Unlock()
}

// presence reads the caps of a broadcast available presence (on the
// sender's reader goroutine, so it never waits for the client).
func (m *Module) presence(ctx context.Context, full stanza.JID, el *stanza.Element) {
	c := el.Child(NS, "c")
	if c == nil {
		return // no caps this time: what we know still holds
	}
	hashName, node, ver := c.Get("hash"), c.Get("node"), c.Get("ver")
	if hashName == "" || !Supported(hashName) || node == "" || ver == "" || len(ver) > maxVer {
		return // legacy caps (no hash, XEP-0115 §1.2) or not verifiable
	}
	key := hashName + " " + ver
	m.mu.Lock()
	if m.jids[full.String()] == key {
		m.mu.Unlock()
		return // an update with the same caps: already known, asked or refused
	}
	m.jids[full.String()] = key
	_, known := m.entries[key]
	m.mu.Unlock()
	if known || m.load(ctx, key) != nil {
		return
	}

	m.mu.Lock()
	if m.inflight[key] || len(m.inflight) >= m.MaxQueries {
		// Asked already (the answer serves this JID too), or too busy: a
		// later presence with these caps from another resource asks again.
		m.mu.Unlock()
		return
	}
	m.inflight[key] = true
	m.mu.Unlock()

	q := stanza.New(stanza.NSClient, "iq").Set("type", "get").Set("to", full.String()).
		Set("from", full.Domainpart()).Append(stanza.New(NSInfo, "query").Set("node", node+"#"+ver))
	qctx, cancel := context.WithTimeout(ctx, m.Timeout)
	m.h.SendIQAsync(qctx, q, func(res *stanza.Element, err error) {
		cancel()
		m.answer(ctx, full, key, res, err)
	})
}

// answer handles the client's answer to the disco#info query for key.
func (m *Module) answer(ctx context.Context, full stanza.JID, key string, res *stanza.Element, err error) {
	defer func() {
		m.mu.Lock()
		delete(m.inflight, key)
		m.mu.Unlock()
	}()
	log := m.log
	if err != nil {
		log.Debug("caps query failed", "jid", full.String(), "err", err)
		return
	}
	q := res.Child(NSInfo, "query")
	if q == nil {
		log.Debug("caps answer without a disco#info query", "jid", full.String())
		return
	}
	q = q.Copy()
	q.Set("node", "")
	raw := q.AppendXML(nil, "")
	if len(raw) > MaxInfoSize {
		log.Info("caps answer too large to cache", "jid", full.String(), "size", len(raw))
		return
	}
	e, err := verify(key, q)
	if err != nil {
		log.Info("caps answer does not match its ver", "jid", full.String(), "key", key, "err", err)
		return
	}
	m.mu.Lock()
	m.insert(e)
	persist := m.stored < m.MaxStored
	if persist {
		m.stored++
	}
	m.mu.Unlock()
	if persist {
		if err := m.kv.Put(context.WithoutCancel(ctx), []byte(key), raw); err != nil {
			log.Error("caps: store", "err", err)
			m.mu.Lock()
			m.stored--
			m.mu.Unlock()
		}
	}
}

// verify checks a disco#info query against key's hash and ver.
func verify(key string, q *stanza.Element) (*entry, error) {
	hashName, ver, _ := strings.Cut(key, " ")
	got, err := Ver(hashName, q)
	if err != nil {
		return nil, err
	}
	if got != ver {
		return nil, errMismatch{got: got}
	}
	e := &entry{key: key}
	for _, f := range q.Children() {
		if f.Is(NSInfo, "feature") {
			e.features = append(e.features, f.Get("var"))
		}
	}
	slices.Sort(e.features)
	return e, nil
}

type errMismatch struct{ got string }

func (e errMismatch) Error() string { return "caps: the answer hashes to " + e.got }

// insert adds e to the memory cache, evicting the least recently used
// entry past MaxEntries. m.mu is held.
func (m *Module) insert(e *entry) {
	if le, ok := m.entries[e.key]; ok {
		m.lru.MoveToFront(le)
		return
	}
	m.entries[e.key] = m.lru.PushFront(e)
	for m.lru.Len() > m.MaxEntries {
		old := m.lru.Back()
		m.lru.Remove(old)
		delete(m.entries, old.Value.(*entry).key)
	}
}

// load returns the entry for key from memory or from the store (verified
// again, then kept in memory), or nil.
func (m *Module) load(ctx context.Context, key string) *entry {
	m.mu.Lock()
	if le, ok := m.entries[key]; ok {
		m.lru.MoveToFront(le)
		m.mu.Unlock()
		return le.Value.(*entry)
	}
	m.mu.Unlock()
	raw, err := m.kv.Get(ctx, []byte(key))
	if err != nil {
		m.log.Error("caps: load", "err", err)
		return nil
	}
	if raw == nil {
		return nil
	}
	q, err := stanza.ParseElement(raw)
	if err != nil {
		m.log.Error("caps: stored entry unreadable", "key", key, "err", err)
		return nil
	}
	e, err := verify(key, q)
	if err != nil {
		m.log.Error("caps: stored entry does not verify", "key", key, "err", err)
		return nil
	}
	m.mu.Lock()
	m.insert(e)
	m.mu.Unlock()
	return e
}

// lookup returns the verified entry of an available resource, or nil.
func (m *Module) lookup(full stanza.JID) *entry {
	m.mu.Lock()
	key, ok := m.jids[full.String()]
	m.mu.Unlock()
	if !ok {
		return nil
	}
	return m.load(context.Background(), key)
}

// Supports implements xeps.CapsReader.
func (m *Module) Supports(full stanza.JID, feature string) bool {
	e := m.lookup(full)
	if e == nil {
		return false
	}
	_, found := slices.BinarySearch(e.features, feature)
	return found
}

// Features implements xeps.CapsReader.
func (m *Module) Features(full stanza.JID) []string {
	if e := m.lookup(full); e != nil {
		return e.features
	}
	return nil
}
