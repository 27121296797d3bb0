package storage

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The archive at scale (issue 13): one account with 1,000,000 archived
// messages, paged and searched, in a database of 1,000,000 messages or, with
// XMPPD_BENCH_ARCHIVE_TOTAL=10000000, of ten million (the other owners
// hold the rest; building it takes a while). XMPPD_BENCH_ARCHIVE_DIR keeps
// the database between runs (it is rebuilt when its sizes differ);
// otherwise it lives in a temporary directory for one `go test` process.
//
//	go test ./storage -run '^$' -bench Archive -benchtime 300x
//	XMPPD_BENCH_ARCHIVE_TOTAL=10000000 XMPPD_BENCH_ARCHIVE_DIR=/var/tmp/xa go test ./storage -run '^$' -bench Archive -benchtime 300x -timeout 2h
//
// The owners' messages are interleaved as a server receives them, which
// makes every transaction of the build write all over the file (a 10M build
// took hours on the shared VM); XMPPD_BENCH_ARCHIVE_ORDER=owners fills them
// one after the other instead, for a quick ten-million database.
//
// Messages are ~200 bytes of XML with a body of about twelve words drawn
// from a Zipf vocabulary of 30,000 words (so a few words are in most
// messages and most words are rare, as in chat), to one of 40 contacts,
// 1 to 60 seconds apart.

const (
	archiveOwner = "alice@example.org"
	archiveVocab = 30_000
)

type archiveFixture struct {
	db       *DB
	log      Log
	perOwner int
	total    int
	ids      []LogID // every 1000th id of archiveOwner
	first    time.Time
	last     time.Time
	rawBytes int64 // the XML of all the messages
	words    []string
	contacts []string
	// built is how long filling took, when this process built it.
	built time.Duration
}

// TestMain removes the benchmarks' temporary archive.
func TestMain(m *testing.M) {
	code := m.Run()
	if archive != nil {
		_ = archive.db.Close()
	}
	if archiveTempDir != "" {
		_ = os.RemoveAll(archiveTempDir)
	}
	os.Exit(code)
}

var (
	archiveTempDir string
	archiveOnce    sync.Once
	archive        *archiveFixture
	archiveErr     error
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// archiveWords is the vocabulary: pronounceable, distinct, 3 to 10 letters.
func archiveWords() []string {
	syll := []string{"ka", "lo", "mi", "ne", "ru", "sa", "te", "vo", "zi", "pa", "do", "gu", "be", "fi", "ho", "ja", "xe", "wy"}
	words := make([]string, archiveVocab)
	for i := range words {
		n := i
		w := ""
		for {
			w += syll[n%len(syll)]
			n /= len(syll)
			if n == 0 {
				break
			}
		}
		words[i] = w + "s"[:i%2] // vary the length a little
	}
	return words
}

// message makes the i-th message of an owner and its body.
func archiveMessage(rng *rand.Rand, zipf *rand.Zipf, words, contacts []string, owner string, i int) (with string, body string, xml []byte) {
	with = contacts[rng.IntN(len(contacts))]
	b := make([]byte, 0, 96)
	for n := 8 + rng.IntN(8); n > 0; n-- {
		if len(b) > 0 {
			b = append(b, ' ')
		}
		b = append(b, words[zipf.Uint64()]...)
	}
	body = string(b)
	xml = fmt.Appendf(nil, "<message xmlns='jabber:client' from='%s/phone' to='%s' type='chat' id='%08x'><body>%s</body></message>", with, owner, i, body)
	return with, body, xml
}

func openArchiveFixture(tb testing.TB) *archiveFixture {
	archiveOnce.Do(func() { archive, archiveErr = buildArchive(tb) })
	if archiveErr != nil {
		tb.Fatal(archiveErr)
	}
	return archive
}

func buildArchive(tb testing.TB) (*archiveFixture, error) {
	perOwner := envInt("XMPPD_BENCH_ARCHIVE_MESSAGES", 1_000_000)
	total := envInt("XMPPD_BENCH_ARCHIVE_TOTAL", perOwner)
	dir := os.Getenv("XMPPD_BENCH_ARCHIVE_DIR")
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "xmppd-archive-bench"); err != nil {
			return nil, err
		}
		archiveTempDir = dir // removed by TestMain
	}
	byOwner := os.Getenv("XMPPD_BENCH_ARCHIVE_ORDER") == "owners"
	path := filepath.Join(dir, fmt.Sprintf("archive-%d-%d-%v.db", perOwner, total, byOwner))
	f := &archiveFixture{perOwner: perOwner, total: total, words: archiveWords()}
	for i := range 40 {
		f.contacts = append(f.contacts, fmt.Sprintf("contact%02d@example.net", i))
	}
	// A database whose building ended is reused (done exists); any other
	// is built again.
	done := path + ".done"
	_, statErr := os.Stat(done)
	reuse := statErr == nil
	if !reuse {
		if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
			return nil, err
		}
	}
	db, err := Open(path, Options{})
	if err != nil {
		return nil, err
	}
	f.db, f.log = db, db.Log("archive")
	start := time.Now()
	// Owners: the account, then others for the rest of the total, each
	// with up to perOwner messages; all written in one pass over time, so
	// that the database grows as a server's would (owners interleaved).
	owners := []string{archiveOwner}
	for n := total - perOwner; n > 0; n -= perOwner {
		owners = append(owners, fmt.Sprintf("user%04d@example.org", len(owners)))
	}
	rng := rand.New(rand.NewPCG(42, 7))
	zipf := rand.NewZipf(rng, 1.07, 2, archiveVocab-1)
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	const perTx = 20_000
	type ownerState struct {
		n    int
		at   time.Time
		high []byte
	}
	states := make([]ownerState, len(owners))
	for i := range states {
		states[i] = ownerState{at: t0, high: logKey(owners[i], logHigh, 0)}
	}
	written := 0
	f.first = t0
	for written < total {
		err := db.bolt.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte(logPrefix + "archive"))
			if err != nil {
				return err
			}
			for range perTx {
				if written == total {
					return nil
				}
				// The account gets its share of every transaction, unless
				// the owners are filled one after the other (faster: each
				// transaction writes one owner's part of the file).
				o := 0
				if byOwner {
					o = written / perOwner
				} else if len(owners) > 1 {
					o = written % len(owners)
					if states[o].n == perOwner || (o == 0 && states[0].n*len(owners) > written+len(owners)) {
						o = 1 + rng.IntN(len(owners)-1)
					}
					for states[o].n == perOwner {
						o = (o + 1) % len(owners)
					}
				}
				st := &states[o]
				st.at = st.at.Add(time.Duration(1+rng.IntN(60)) * time.Second).Add(time.Duration(rng.IntN(1000)) * time.Millisecond)
				with, body, xml := archiveMessage(rng, zipf, f.words, f.contacts, owners[o], st.n)
				if !reuse { // else only the choices are replayed
					id, err := appendIn(b, owners[o], st.high, LogID(st.at.UnixMilli())<<16, encodeLogValue(owners[o], with, body, xml), newEntryIndex(owners[o], with, body))
					if err != nil {
						return err
					}
					if o == 0 && st.n%1000 == 0 {
						f.ids = append(f.ids, id)
					}
				}
				if o == 0 {
					f.rawBytes += int64(len(xml))
					f.last = st.at
				}
				st.n++
				written++
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if reuse {
		if err := f.sampleIDs(); err != nil {
			return nil, err
		}
		return f, nil
	}
	// Not timed: the fsync of the last transaction is, the rest is
	// writing the file.
	f.built = time.Since(start)
	if err := os.WriteFile(done, nil, 0o600); err != nil {
		return nil, err
	}
	return f, nil
}

// sampleIDs reads every 1000th id of the account from the database.
func (f *archiveFixture) sampleIDs() error {
	f.ids = f.ids[:0]
	return f.db.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket([]byte(logPrefix + "archive")).Cursor()
		prefix := logKey(archiveOwner, logEntry, 8)
		i := 0
		for k, _ := c.Seek(prefix); len(k) == len(prefix)+8 && string(k[:len(prefix)]) == string(prefix); k, _ = c.Next() {
			if i%1000 == 0 {
				f.ids = append(f.ids, LogID(binary.BigEndian.Uint64(k[len(prefix):])))
			}
			i++
		}
		return nil
	})
}

// percentiles reports the p50 and p99 of ds as metrics, in milliseconds.
func percentiles(b *testing.B, ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	at := func(p float64) float64 {
		return float64(ds[min(len(ds)-1, int(p*float64(len(ds))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
	b.ReportMetric(float64(ds[len(ds)-1])/float64(time.Millisecond), "max-ms")
}

// BenchmarkArchiveSize reports the database's bytes per archived message
// and their ratio to the messages' XML.
func BenchmarkArchiveSize(b *testing.B) {
	f := openArchiveFixture(b)
	st, err := os.Stat(f.db.Path())
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
	}
	raw := float64(f.rawBytes) / float64(f.perOwner)
	b.ReportMetric(float64(st.Size())/float64(f.total), "db-bytes/msg")
	b.ReportMetric(raw, "xml-bytes/msg")
	b.ReportMetric(float64(st.Size())/float64(f.total)/raw, "db/xml")
	if f.built > 0 {
		b.ReportMetric(float64(f.total)/f.built.Seconds(), "fill-msg/s")
	}
}

// BenchmarkArchivePage: a page of 50 of the account's 1,000,000.
func BenchmarkArchivePage(b *testing.B) {
	f := openArchiveFixture(b)
	ctx := context.Background()
	span := f.last.Sub(f.first)
	queries := []struct {
		name string
		q    func(rng *rand.Rand) LogQuery
	}{
		{"newest", func(*rand.Rand) LogQuery { return LogQuery{Limit: 50, Backward: true} }},
		{"before-id", func(rng *rand.Rand) LogQuery {
			return LogQuery{Limit: 50, Backward: true, Before: f.ids[1+rng.IntN(len(f.ids)-1)]}
		}},
		{"after-id", func(rng *rand.Rand) LogQuery {
			return LogQuery{Limit: 50, After: f.ids[rng.IntN(len(f.ids)-1)]}
		}},
		{"with", func(rng *rand.Rand) LogQuery {
			return LogQuery{Limit: 50, Backward: true, With: f.contacts[rng.IntN(len(f.contacts))]}
		}},
		{"with before-id", func(rng *rand.Rand) LogQuery {
			return LogQuery{Limit: 50, Backward: true, With: f.contacts[rng.IntN(len(f.contacts))], Before: f.ids[1+rng.IntN(len(f.ids)-1)]}
		}},
		{"time range", func(rng *rand.Rand) LogQuery {
			start := f.first.Add(time.Duration(rng.Int64N(int64(span))))
			return LogQuery{Limit: 50, Start: start, End: start.Add(7 * 24 * time.Hour)}
		}},
	}
	runQueries(b, ctx, f, queries)
}

// BenchmarkArchiveSearch: full-text queries (the newest page of 50
// matches, as a client searching asks) over the account's 1,000,000.
func BenchmarkArchiveSearch(b *testing.B) {
	f := openArchiveFixture(b)
	ctx := context.Background()
	w := f.words
	// Zipf ranks: rank 0 is in most messages, rank 100 in a few percent,
	// rank 5000 in a few hundred, the last ones in almost none.
	queries := []struct {
		name string
		q    func(rng *rand.Rand) LogQuery
	}{
		{"common word", func(rng *rand.Rand) LogQuery { return LogQuery{Limit: 50, Backward: true, Text: w[rng.IntN(3)]} }},
		{"medium word", func(rng *rand.Rand) LogQuery { return LogQuery{Limit: 50, Backward: true, Text: w[50+rng.IntN(100)]} }},
		{"rare word", func(rng *rand.Rand) LogQuery {
			return LogQuery{Limit: 50, Backward: true, Text: w[3000+rng.IntN(5000)]}
		}},
		{"absent word", func(rng *rand.Rand) LogQuery {
			return LogQuery{Limit: 50, Backward: true, Text: "zzz" + w[rng.IntN(100)]}
		}},
		{"two words", func(rng *rand.Rand) LogQuery {
			return LogQuery{Limit: 50, Backward: true, Text: w[rng.IntN(10)] + " " + w[20+rng.IntN(200)]}
		}},
		{"two medium words", func(rng *rand.Rand) LogQuery {
			return LogQuery{Limit: 50, Backward: true, Text: w[50+rng.IntN(100)] + " " + w[50+rng.IntN(100)]}
		}},
		{"word with contact", func(rng *rand.Rand) LogQuery {
			return LogQuery{Limit: 50, Backward: true, Text: w[10+rng.IntN(100)], With: f.contacts[rng.IntN(len(f.contacts))]}
		}},
		{"word before-id", func(rng *rand.Rand) LogQuery {
			return LogQuery{Limit: 50, Backward: true, Text: w[10+rng.IntN(100)], Before: f.ids[1+rng.IntN(len(f.ids)-1)]}
		}},
	}
	runQueries(b, ctx, f, queries)
}

func runQueries(b *testing.B, ctx context.Context, f *archiveFixture, queries []struct {
	name string
	q    func(rng *rand.Rand) LogQuery
}) {
	for _, qq := range queries {
		b.Run(qq.name, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 1))
			var ds []time.Duration
			entries := 0
			b.ReportAllocs()
			for b.Loop() {
				q := qq.q(rng)
				start := time.Now()
				p, err := f.log.Query(ctx, archiveOwner, q)
				ds = append(ds, time.Since(start))
				if err != nil {
					b.Fatal(err)
				}
				entries += len(p.Entries)
			}
			b.ReportMetric(float64(entries)/float64(len(ds)), "entries/op")
			percentiles(b, ds)
		})
	}
}

// BenchmarkArchiveAppend: Append's latency alone (one writer: each waits
// for its own commit) and the throughput of 100 to 400 concurrent writers
// (sessions archiving at once: a chat message is archived twice, once per
// party), with the database's fsyncs.
func BenchmarkArchiveAppend(b *testing.B) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 3))
	words := archiveWords()
	zipf := rand.NewZipf(rng, 1.07, 2, archiveVocab-1)
	contacts := []string{"bob@example.net", "carol@example.net"}
	type msg struct {
		with, body string
		xml        []byte
	}
	msgs := make([]msg, 4096)
	for i := range msgs {
		w, body, xml := archiveMessage(rng, zipf, words, contacts, archiveOwner, i)
		msgs[i] = msg{w, body, xml}
	}
	b.Run("serial", func(b *testing.B) {
		_, l := benchLog(b)
		var ds []time.Duration
		i := 0
		for b.Loop() {
			m := msgs[i%len(msgs)]
			i++
			start := time.Now()
			if _, err := l.Append(ctx, archiveOwner, LogEntry{With: m.with, Text: m.body, Data: m.xml}); err != nil {
				b.Fatal(err)
			}
			ds = append(ds, time.Since(start))
		}
		percentiles(b, ds)
	})
	for _, bb := range []struct {
		writers int
		text    bool
	}{{100, true}, {400, true}, {400, false}} {
		writers := bb.writers
		name := fmt.Sprintf("writers=%d", writers)
		if !bb.text {
			name += "/no-text" // what the full-text index costs
		}
		b.Run(name, func(b *testing.B) {
			db, l := benchLog(b)
			b.SetParallelism((writers + 1) / 2) // × GOMAXPROCS (2)
			var users atomic.Int64
			var mu sync.Mutex
			var all []time.Duration
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				u := users.Add(1)
				owner := fmt.Sprintf("user%d@example.org", u) // one per writer
				var ds []time.Duration
				i := int(u)
				for pb.Next() {
					m := msgs[i%len(msgs)]
					i++
					if !bb.text {
						m.body = ""
					}
					t := time.Now()
					if _, err := l.Append(ctx, owner, LogEntry{With: m.with, Text: m.body, Data: m.xml}); err != nil {
						b.Error(err)
						return
					}
					ds = append(ds, time.Since(t))
				}
				mu.Lock()
				all = append(all, ds...)
				mu.Unlock()
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "appends/s")
			percentiles(b, all)
			st := db.bolt.Stats()
			b.ReportMetric(float64(st.TxStats.GetWrite())/float64(b.N), "pages-written/append")
			b.ReportMetric(float64(b.N)/float64(st.TxN-st.OpenTxN+1), "appends/tx-approx")
			b.Logf("commits %d, write time %v, spill %v, rebalance %v", st.TxN, st.TxStats.GetWriteTime(), st.TxStats.GetSpillTime(), st.TxStats.GetRebalanceTime())
		})
	}
}
